#!/usr/bin/env python3
"""caresignal-replay rebuild and whatif on the dev stack: a rebuild of the same events is
bit-identical to the live namespace and moves no consumer group; a dry run writes
nothing; whatif with identical rules reports no difference, and with a lower INSPECT
threshold exactly the alerts an independent calculation predicts."""
import copy
import json
import os

import cstest
import riskmodel
from cstest import wait_until
from test_score import RULES, make_feed, model_of, produce, redis_state


class Replay(cstest.StackTest):
    partitions = {"intel.events": 8}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.stack
        cls.events = make_feed(3000, seed=11)
        cls.model = model_of(cls.events)
        produce(s, cls.events)
        scorer = s.program("caresignal-score")
        r = s.redis()
        total = sum(len(x.seen) for x in cls.model.subjects.values())
        wait_until(lambda: cstest.events_applied(s, cls.model.subjects) == total, 120, interval=0.5,
                   what="the live scorer to apply every event")
        # stop it once it has committed everything, so the live namespace and the group
        # stand still while the replays run
        wait_until(lambda: sum(max(o, 0) for o in cstest.committed(
            s, "intel.events", "caresignal-score").values()) == len(cls.events), 60,
            what="the live scorer's commits")
        assert scorer.stop() == 0
        r.close()

    def replay(self, *args):
        return cstest.run("caresignal-replay", *args, stack=self.stack, timeout=300)

    def test_rebuild(self):
        s = self.stack
        r = s.redis()
        before = cstest.committed(s, "intel.events", "caresignal-score")
        p = self.replay("rebuild", "--namespace", "rb")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"dry run: nothing written", p.stdout)
        self.assertIn(b"%d events to replay" % len(self.events), p.stdout)
        self.assertEqual(r.scan_keys("rb:*"), [])
        p = self.replay("rebuild", "--namespace", "rb", "--execute")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = p.stdout.decode()
        self.assertIn("verification: all %d subjects identical" % len(self.model.subjects), out)
        self.assertIn("state.namespace=rb", out)
        live = {k[3:]: v for k, v in redis_state(r, "cs").items()}
        rebuilt = {k[3:]: v for k, v in redis_state(r, "rb").items()}
        # everything but the pager's records is reproduced exactly, positions included
        self.assertEqual({k: v for k, v in live.items() if not k.startswith("paged:")}, rebuilt)
        self.assertEqual(cstest.committed(s, "intel.events", "caresignal-score"), before)
        # a namespace in use is refused
        p = self.replay("rebuild", "--namespace", "rb", "--execute")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"not empty", p.stdout)
        # a partial rebuild says it differs, as expected
        mid = sorted(e["occurred_at"] for e in self.events)[0]
        p = self.replay("rebuild", "--namespace", "rb2", "--execute", "--from-time",
                        cstest.iso(mid))
        self.assertEqual(p.returncode, 0, p.stderr)
        r.close()

    def whatif(self, rules):
        path = os.path.join(self.stack.dir, "whatif-rules.json")
        with open(path, "w") as f:
            json.dump(rules, f)
        p = self.replay("whatif", "--rules", path, "--execute", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout), path

    def test_whatif_identical_rules(self):
        with open(RULES) as f:
            rules = json.load(f)
        report, _ = self.whatif(rules)
        self.assertEqual((report["added"], report["removed"], report["changed"]), ([], [], []))
        self.assertEqual(report["alerts_live"], len(self.model.alerts))
        self.assertEqual(report["alerts_new"], len(self.model.alerts))
        r = self.stack.redis()
        self.assertEqual(r.scan_keys("cs-whatif-*"), [])  # scratch namespaces are gone
        r.close()

    def test_whatif_lower_inspect_threshold(self):
        with open(RULES) as f:
            rules = json.load(f)
        lower = copy.deepcopy(rules)
        lower["version"] = "lower-inspect"
        lower["risk"]["levels"]["LOCATION"]["inspect"]["raise"] = 80
        report, path = self.whatif(lower)
        # the independent prediction: both models over the same events, alerts matched by
        # (subject, triggering event) as the tool documents
        live = model_of(self.events)
        new = riskmodel.Model(riskmodel.Rules(path))
        for e in self.events:
            new.apply(e)
        key = lambda a: (a["subject"], a["triggered_by"])
        lv = {key(a): a for a in live.alerts}
        nw = {key(a): a for a in new.alerts}
        added = sorted(k for k in nw if k not in lv)
        removed = sorted(k for k in lv if k not in nw)
        changed = sorted(k for k in nw if k in lv and (nw[k]["kind"], nw[k]["level"], nw[k]["reason"])
                         != (lv[k]["kind"], lv[k]["level"], lv[k]["reason"]))
        self.assertGreater(len(added) + len(changed), 0, "the lower threshold changes something")
        self.assertEqual(sorted((a["subject"], a["triggered_by"]) for a in report["added"]), added)
        self.assertEqual(sorted((a["subject"], a["triggered_by"]) for a in report["removed"]), removed)
        self.assertEqual(sorted((c["new"]["subject"], c["new"]["triggered_by"])
                                for c in report["changed"]), changed)
        for a in report["added"]:
            self.assertEqual(a["level"], nw[(a["subject"], a["triggered_by"])]["level"])
        inspect_added = sum(1 for k in added if nw[k]["level"] == "INSPECT")
        self.assertEqual(report["counts"]["added"]["INSPECT"], inspect_added)
        # the text report says the same
        p = self.replay("whatif", "--rules", path, "--execute")
        self.assertIn(b"added (%d):" % len(added), p.stdout)

    def test_dry_runs_and_usage(self):
        p = self.replay("whatif", "--rules", RULES)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"dry run: nothing written", p.stdout)
        r = self.stack.redis()
        self.assertEqual(r.scan_keys("cs-whatif-*"), [])
        r.close()
        for args, needle in [(("rebuild",), b"--namespace"),
                             (("rebuild", "--namespace", "cs"), b"live namespace"),
                             (("rebuild", "--namespace", "a b"), b"state.namespace"),
                             (("whatif",), b"--rules"),
                             (("whatif", "--rules", "/nonexistent"), b"/nonexistent"),
                             (("rebuild", "--namespace", "x", "--rules", RULES), b"does not go with"),
                             (("frobnicate",), b"unknown sub-command"),
                             ((), b"expected one sub-command")]:
            p = self.replay(*args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(needle, p.stderr)


if __name__ == "__main__":
    cstest.main()
