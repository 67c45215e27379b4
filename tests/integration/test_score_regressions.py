#!/usr/bin/env python3
"""caresignal-score regressions, each named after what broke: new events of known subjects
dropped as "redeliveries" once intel.events started again at offset 0 (a dev broker
restarted under a Redis that kept its AOF), and a committed start position above the
partition's high watermark read past silently instead of being refused."""
import os
import subprocess

import cstest
from cstest import bin_path, json2avro, kcat_produce, wait_until
from test_score import Checks, make_feed, model_of


def applied(r, ns, model):
    return sum(int(r.hgetall("%s:{%s}:state" % (ns, k)).get("events_total", 0))
               for k in model.subjects)


def total(model):
    return sum(len(x.seen) for x in model.subjects.values())


def produce_to(bootstrap, events, topic="intel.events", partition=None):
    values = json2avro(5, events)
    kcat_produce(bootstrap, topic, [("%s:%s" % (e["subject_kind"], e["subject_id"]), v)
                                    for e, v in zip(events, values)], partition=partition)


class ScoreRegressions(Checks):
    maxDiff = None

    def test_regression_broker_restarted_new_events_applied(self):
        """The dev broker keeps nothing: after its restart intel.events starts again at
        offset 0 while Redis still holds every subject's last offset. The new events must
        be applied (they are not in the seen sets), not skipped as redeliveries."""
        s = self.stack
        feed1 = make_feed(600, seed=21, subjects=30)
        produce_to(s.bootstrap, feed1)
        r = s.redis()
        first = s.program("caresignal-score")
        m1 = model_of(feed1)
        wait_until(lambda: applied(r, "cs", m1) == total(m1), 120, interval=0.3,
                   what="the first feed applied")
        self.assertEqual(first.stop(), 0)

        # a fresh broker: every topic, message and committed offset is gone
        bfile = os.path.join(s.dir, "broker2.bootstrap")
        broker = subprocess.Popen(
            [bin_path("caresignal-devbroker"), "--brokers", "1", "--partitions", "intel.events=8",
             "--partitions", "intel.alerts=4", "--bootstrap-file", bfile],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(s.dir, "broker2.log"), "wb"),
            env=cstest._program_env())
        try:
            wait_until(lambda: os.path.exists(bfile) and open(bfile).read().strip(), 30,
                       what="the second broker")
            bootstrap = open(bfile).read().strip()
            feed2 = make_feed(600, seed=22, subjects=30)  # the same subjects, new events
            produce_to(bootstrap, feed2)
            model = model_of(feed1 + feed2)
            second = s.program("caresignal-score",
                               config_extra={"kafka.bootstrap.servers": bootstrap})
            wait_until(lambda: applied(r, "cs", model) == total(model), 120, interval=0.3,
                       what="every event of the second feed applied")
            self.assertEqual(second.stop(), 0)
            self.assert_state_matches_model(model)
            totals = [l for l in second.logs() if l.get("msg") == "score totals"][-1]
            self.assertGreater(totals["offset_regressions"], 0)
            self.assertEqual(totals["applied"], total(model) - total(m1))
            # the alerts the second feed triggers are published on the new broker
            p = cstest.run("caresignal-cat", "--topic", "intel.alerts", stack=s,
                           config_extra={"kafka.bootstrap.servers": bootstrap})
            got = {a["value"]["alert_id"] for a in map(cstest.json.loads, p.stdout.splitlines())}
            keys2 = {e["event_key"] for e in feed2}
            want = {a["alert_id"] for a in model.alerts if a["triggered_by"] in keys2}
            self.assertTrue(want, "the second feed changes some level")
            self.assertEqual(got, want)
        finally:
            broker.terminate()
            broker.wait(30)
        r.close()

    def test_regression_committed_offset_above_high_watermark_refused(self):
        """A group's committed offset above what the partition holds (a topic recreated or
        migrated under its group) is refused at assignment, loudly, and the partition is
        read from its beginning: nothing past it is skipped."""
        s = self.stack
        events = make_feed(40, seed=23, subjects=5)
        produce_to(s.bootstrap, events, topic="it.hw", partition=0)
        model = model_of(events)
        p = subprocess.run([bin_path("cs-commit"), s.bootstrap, "score-hw", "it.hw", "0", "5000"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = s.redis()
        r.cmd("SET", "hw:pos:it.hw:0", "5000")  # and Redis kept the same position
        scorer = s.program("caresignal-score", config_extra={
            "group.id": "score-hw", "state.namespace": "hw", "topic.events": "it.hw",
            "topic.alerts": "it.hw.alerts"})
        wait_until(lambda: applied(r, "hw", model) == total(model), 60, interval=0.3,
                   what="every event applied")
        more = make_feed(10, seed=24, subjects=5)
        produce_to(s.bootstrap, more, topic="it.hw", partition=0)
        model = model_of(events + more)
        wait_until(lambda: applied(r, "hw", model) == total(model), 60, interval=0.3,
                   what="the later events applied")
        self.assertEqual(scorer.stop(), 0)
        refused = [l for l in scorer.logs() if l.get("msg", "").startswith(
            "stored position above the partition's high watermark")]
        self.assertEqual(len(refused), 1, refused)
        self.assertEqual((refused[0]["level"], refused[0]["topic"], refused[0]["partition"],
                          refused[0]["position"], refused[0]["resume_offset"]),
                         ("error", "it.hw", 0, 5000, 0))
        self.assertFalse([l for l in scorer.logs() if "OFFSET RESET" in l.get("msg", "")])
        totals = [l for l in scorer.logs() if l.get("msg") == "score totals"][-1]
        self.assertEqual(totals["positions_refused"], 1)
        self.assert_state_matches_model(model, ns="hw")
        r.close()


if __name__ == "__main__":
    cstest.main()
