#!/usr/bin/env python3
"""caresignal-score killed with SIGKILL at random points, at least ten times, beside an undisturbed
scorer: both end in the same Redis state, equal to the model's, every alert published."""
import random
import signal
import time

import cstest
from cstest import wait_until
from test_score import Checks, alerts_on, make_feed, model_of, produce, redis_state


class KillNine(Checks):
    """One scorer runs undisturbed (namespace a); another (namespace b, its own group and
    alert topic) is killed with SIGKILL at random points at least ten times and restarted.
    Both must end in the same Redis state, equal to the model's."""
    maxDiff = None

    def test_kill_9_repeatedly(self):
        s = self.stack
        rnd = random.Random(7)
        events = make_feed(5000, seed=2)
        model = model_of(events)
        calm = s.program("caresignal-score", config_extra={
            "state.namespace": "a", "group.id": "score-a", "topic.alerts": "it.alerts.a"})
        # a short session: a killed member is evicted (and a restart gets the partitions)
        # after ~2 s instead of the dev config's 6 (the mock delays by session - 1 s)
        cfg_b = {"state.namespace": "b", "group.id": "score-b", "topic.alerts": "it.alerts.b",
                 "score.batch.max": "50", "kafka.session.timeout.ms": "2500",
                 "kafka.heartbeat.interval.ms": "300"}
        victim = s.program("caresignal-score", config_extra=cfg_b)
        chunks = [events[i:i + 250] for i in range(0, len(events), 250)]
        kills = 0
        for i, chunk in enumerate(chunks):
            produce(s, chunk)
            if i % 2 == 0:  # 20 chunks: 10 kills, spread over the feed
                wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in victim.logs()),
                           60, what="the restarted scorer to get its partitions")
                time.sleep(rnd.uniform(0.05, 0.8))
                victim.proc.send_signal(signal.SIGKILL)
                victim.proc.wait()
                kills += 1
                victim = s.program("caresignal-score", config_extra=cfg_b)
        self.assertGreaterEqual(kills, 10)
        r = s.redis()
        total = sum(len(x.seen) for x in model.subjects.values())

        def applied(ns):
            return cstest.events_applied(s, model.subjects, ns)
        wait_until(lambda: applied("a") == total and applied("b") == total, 180, interval=1,
                   what="both namespaces complete")
        wait_until(lambda: len(set(a["alert_id"] for a in alerts_on(s, "it.alerts.b")))
                   >= len(model.alerts), 60, what="the alerts of b")
        self.assertEqual(calm.stop(), 0)
        self.assertEqual(victim.stop(), 0)
        state_a = {k[2:]: v for k, v in redis_state(r, "a").items() if not k.startswith("a:pos:")}
        state_b = {k[2:]: v for k, v in redis_state(r, "b").items() if not k.startswith("b:pos:")}
        self.assertEqual(set(state_a), set(state_b))
        diffs = []
        for k in sorted(state_a):
            if state_a[k] != state_b[k]:
                if isinstance(state_a[k], dict):
                    diffs.append((k, {f: (state_a[k].get(f), state_b[k].get(f))
                                      for f in set(state_a[k]) | set(state_b[k])
                                      if state_a[k].get(f) != state_b[k].get(f)}))
                else:
                    diffs.append((k, state_a[k], state_b[k]))
        self.assertEqual(diffs[:3], [], "%d keys differ" % len(diffs))
        self.assert_state_matches_model(model, ns="b")
        self.assert_alerts_match_model(model, alerts_on(s, "it.alerts.b"), exact=False)
        self.assert_alerts_match_model(model, alerts_on(s, "it.alerts.a"))
        print("killed the scorer %d times; %d alerts, %d published by the victim (re-emissions "
              "included)" % (kills, len(model.alerts), len(alerts_on(s, "it.alerts.b"))))
        r.close()


if __name__ == "__main__":
    cstest.main()
