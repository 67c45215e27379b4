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
from test_score import RULES, alerts_on, make_feed, model_of, produce, redis_state


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

    def test_rebuild_into_layout_2(self):
        """The way from one state layout to the other: a rebuild into a new namespace
        with state.layout=2, verified subject by subject against the live layout 1."""
        s = self.stack
        r = s.redis()
        p = self.replay("--set", "state.layout=2", "rebuild", "--namespace", "rbl2",
                        "--execute")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("verification: all %d subjects identical" % len(self.model.subjects),
                      p.stdout.decode())
        self.assertEqual(r.cmd("GET", "rbl2:layout"), b"2")
        self.assertEqual(r.cmd("GET", "cs:layout"), b"1")
        subject = next(iter(self.model.subjects))
        self.assertEqual(r.cmd("TYPE", "rbl2:{%s}:state" % subject), "string")
        self.assertEqual(r.cmd("TYPE", "cs:{%s}:state" % subject), "hash")
        self.assertEqual(s.show([subject], ns="rbl2")[subject],
                         s.show([subject], ns="cs")[subject])
        # computed in the replay itself (state.engine=scorer): the same values, byte
        # for byte, as the layout 2 function wrote (on a Redis Cluster written by the
        # compare-and-set function instead of WATCH/MULTI)
        p = self.replay("--set", "state.layout=2", "--set", "state.engine=scorer",
                        "rebuild", "--namespace", "rbl2c", "--execute")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("verification: all %d subjects identical" % len(self.model.subjects),
                      p.stdout.decode())
        for subject in self.model.subjects:
            self.assertEqual(r.cmd("GET", "rbl2c:{%s}:state" % subject),
                             r.cmd("GET", "rbl2:{%s}:state" % subject), subject)
        # and a what-if computed there reports no change for the same rules
        p = self.replay("--set", "state.layout=2", "--set", "state.engine=scorer",
                        "whatif", "--rules", RULES, "--execute", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        report = json.loads(p.stdout)
        self.assertEqual((report["added"], report["removed"], report["changed"]), ([], [], []))
        self.assertEqual(report["alerts_new"], len(self.model.alerts))
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

    def test_whatif_alert_ids_and_whole_alerts(self):
        """Every reported alert carries its alert_id, the one the scorer gives it; --json
        carries every RiskAlert field on both sides of a changed pair; and a pair that
        differs only in score or previous_level is not reported as changed."""
        with open(RULES) as f:
            rules = json.load(f)
        other = copy.deepcopy(rules)
        other["version"] = "whatif-ids"
        # Over this seeded feed (computed with riskmodel) these rules give added, removed
        # and changed alerts (an INSPECT at 65 turns some WATCH raises into INSPECT raises
        # at the same event), matched alerts whose score alone differs (COMPLAINT weighs
        # 5.05 instead of 5) and matched alerts whose previous_level alone differs (watch
        # at 35 instead of 40).
        levels = other["risk"]["levels"]["LOCATION"]
        levels["inspect"] = {"raise": 65, "clear": 60}
        levels["watch"] = {"raise": 35, "clear": 28}
        other["risk"]["base"]["COMPLAINT"] = 5.05
        report, path = self.whatif(other)
        live = model_of(self.events)
        new = riskmodel.Model(riskmodel.Rules(path))
        for e in self.events:
            new.apply(e)
        key = lambda a: (a["subject"], a["triggered_by"])
        decision = lambda a: (a["kind"], a["level"], a["reason"])
        lv = {key(a): a for a in live.alerts}
        nw = {key(a): a for a in new.alerts}
        matched = [k for k in nw if k in lv]
        changed = sorted(k for k in matched if decision(nw[k]) != decision(lv[k]))
        same = [k for k in matched if decision(nw[k]) == decision(lv[k])]
        score_only = [k for k in same if nw[k]["score"] != lv[k]["score"]
                      and nw[k]["previous_level"] == lv[k]["previous_level"]]
        previous_only = [k for k in same if nw[k]["previous_level"] != lv[k]["previous_level"]]
        self.assertGreater(len(changed), 0, "these rules change an alert")
        self.assertGreater(len(score_only), 0, "these rules move a score but not its level")
        self.assertGreater(len(previous_only), 0, "these rules move a previous_level")
        self.assertEqual(sorted(key(a) for a in report["added"]),
                         sorted(k for k in nw if k not in lv))
        self.assertEqual(sorted(key(a) for a in report["removed"]),
                         sorted(k for k in lv if k not in nw))
        self.assertEqual(sorted(key(c["new"]) for c in report["changed"]), changed)
        self.assertEqual(sorted(key(c["live"]) for c in report["changed"]), changed)
        reported = {key(c["new"]) for c in report["changed"]}
        self.assertEqual(reported & set(score_only), set())
        self.assertEqual(reported & set(previous_only), set())

        with open(os.path.join(cstest.SOURCE, "schemas/caresignal.RiskAlert.v1.avsc")) as f:
            fields = {x["name"] for x in json.load(f)["fields"]}
        on_topic = {a["alert_id"] for a in alerts_on(self.stack, "intel.alerts")}

        def check(got, want, version):
            # every RiskAlert field, plus the subject key it was matched by
            self.assertEqual(set(got), fields | {"subject"}, got)
            self.assertEqual(got["alert_id"], want["alert_id"], want)
            self.assertEqual(got["alert_id"], riskmodel.alert_id(
                got["subject"], got["kind"], got["level"], got["triggered_by"]))
            for f in ("kind", "level", "previous_level", "reason", "as_of", "triggered_by"):
                self.assertEqual(got[f], want[f], (f, want))
            self.assertAlmostEqual(got["score"], want["score"], delta=1e-9 * max(1, want["score"]))
            self.assertEqual(got["subject"], "%s:%s" % (got["subject_kind"], got["subject_id"]))
            self.assertEqual(set(got["area_scores"]), set(riskmodel.AREAS))
            self.assertGreater(len(got["recent"]), 0)
            for r in got["recent"]:
                self.assertEqual(set(r), {"event_key", "signal", "severity", "occurred_at"})
            self.assertEqual(got["rules_version"], version)
            self.assertEqual((got["region"], got["local_authority_code"]), ("London", "E09000001"))

        for a in report["added"]:
            check(a, nw[key(a)], "whatif-ids")
        for a in report["removed"]:
            check(a, lv[key(a)], rules["version"])
            self.assertIn(a["alert_id"], on_topic)  # the id the live scorer published
        for c in report["changed"]:
            check(c["live"], lv[key(c["live"])], rules["version"])
            check(c["new"], nw[key(c["new"])], "whatif-ids")
            self.assertIn(c["live"]["alert_id"], on_topic)
            self.assertNotEqual(c["live"]["alert_id"], c["new"]["alert_id"])
        # the text report names the same ids, one per line (both for a changed pair)
        p = self.replay("whatif", "--rules", path, "--execute")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.decode().splitlines()
        for a in report["added"] + report["removed"]:
            self.assertEqual(sum(1 for ln in lines if ln.endswith(" id " + a["alert_id"])), 1, a)
        for c in report["changed"]:
            self.assertEqual(sum(1 for ln in lines if ln.startswith("  ~ ")
                                 and " id %s -> " % c["live"]["alert_id"] in ln
                                 and ln.endswith(" id " + c["new"]["alert_id"])), 1, c)

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
