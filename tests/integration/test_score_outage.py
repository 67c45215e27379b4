#!/usr/bin/env python3
"""caresignal-score through a Redis outage with lost writes, and through the loss of one of two
scorers in a group: exact state, every alert published."""
import random
import signal
import time

import cstest
from cstest import wait_until
from test_score import Checks, alerts_on, make_feed, model_of, produce, redis_state


class RedisOutage(Checks):
    """Redis killed (SIGKILL: AOF everysec may lose its last writes) and kept down for
    several seconds mid-stream: the scorer pauses, waits, resumes from the lowest of its
    Redis positions and the committed offsets, and ends exact."""

    def test_redis_down_and_back(self):
        s = self.stack
        events = make_feed(4000, seed=3)
        model = model_of(events)
        scorer = s.program("caresignal-score", config_extra={"score.batch.max": "100"})
        chunks = [events[i:i + 500] for i in range(0, len(events), 500)]
        produce(s, chunks[0])
        wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in scorer.logs()),
                   60, what="the scorer to start consuming")
        for i, chunk in enumerate(chunks[1:]):
            produce(s, chunk)
            if i == 2:
                s.restart_redis(down_seconds=5)  # mid-stream: the scorer is busy
        r = s.redis()
        total = sum(len(x.seen) for x in model.subjects.values())
        wait_until(lambda: cstest.events_applied(s, model.subjects) == total, 180, interval=1,
                   what="every event applied")
        wait_until(lambda: len(set(a["alert_id"] for a in alerts_on(s, "intel.alerts")))
                   >= len(model.alerts), 60, what="the alerts")
        self.assertEqual(scorer.stop(), 0)
        self.assert_state_matches_model(model)
        self.assert_alerts_match_model(model, alerts_on(s, "intel.alerts"), exact=False)
        msgs = [l.get("msg", "") for l in scorer.logs()]
        self.assertEqual(sum(m.startswith("redis unavailable") for m in msgs), 1, "logged once")
        self.assertIn("redis answers again: consumption resumed", msgs)
        r.close()


class TwoScorers(Checks):
    def test_one_of_two_killed(self):
        s = self.stack
        events = make_feed(4000, seed=4)
        model = model_of(events)
        fast = {"score.batch.max": "100", "kafka.session.timeout.ms": "2500",
                "kafka.heartbeat.interval.ms": "300"}
        one = s.program("caresignal-score", config_extra=fast)
        two = s.program("caresignal-score", config_extra=fast)
        chunks = [events[i:i + 200] for i in range(0, len(events), 200)]
        for i, chunk in enumerate(chunks):
            produce(s, chunk)
            if i == 4:
                wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in two.logs()),
                           60, what="the second scorer to take partitions")
            if i == 8:
                two.proc.send_signal(signal.SIGKILL)
                two.proc.wait()
            time.sleep(0.2)
        r = s.redis()
        total = sum(len(x.seen) for x in model.subjects.values())
        wait_until(lambda: cstest.events_applied(s, model.subjects) == total, 180, interval=1,
                   what="every event applied")
        wait_until(lambda: len(set(a["alert_id"] for a in alerts_on(s, "intel.alerts")))
                   >= len(model.alerts), 60, what="the alerts")
        self.assertEqual(one.stop(), 0)
        self.assert_state_matches_model(model)
        self.assert_alerts_match_model(model, alerts_on(s, "intel.alerts"), exact=False)
        r.close()


if __name__ == "__main__":
    cstest.main()
