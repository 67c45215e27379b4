#!/usr/bin/env python3
"""caresignal-score as a real process against redis-server and the devbroker: a generated
feed of canonical events produces exactly the alerts and scores an independent model
predicts; kill -9 at random points (>= 10 times), a Redis outage with lost writes, and a
second scorer killed mid-stream all end in the exact same state, with every alert
published at least once under its stable id."""
import json
import os
import random
import signal
import time

import cstest
import riskmodel
from cstest import cat, json2avro, kcat_produce, wait_until

RULES = os.path.join(cstest.SOURCE, "deploy/config/rules.json")
T0 = 1790000000000  # 2026-09-21
DAY = riskmodel.DAY


def make_feed(n, seed, subjects=80):
    """n canonical events for `subjects` subjects over 150 days, some resent (partner
    duplicates), in a random (not time-sorted) order."""
    rnd = random.Random(seed)
    rules = riskmodel.Rules(RULES)
    subs = []
    for i in range(subjects):
        if i % 8 == 7:
            subs.append(("LOCAL_AREA", "E0%d%06d" % (6 + i % 4, 100 + i)))
        else:
            subs.append(("LOCATION", "1-%09d" % (300000000 + i)))
    risky = set(rnd.sample(range(subjects), subjects // 4))
    events = []
    for k in range(n):
        i = rnd.randrange(subjects)
        kind, sid = subs[i]
        if kind == "LOCAL_AREA":
            sig = "SEND_OUTCOME"
        elif i in risky:
            sig = rnd.choice(["SAFEGUARDING", "WHISTLEBLOWING", "SERIOUS_INCIDENT", "NEVER_EVENT",
                              "DNACPR_CONCERN", "OUTBREAK", "COMPLAINT"])
        else:
            sig = rnd.choice(["COMPLAINT", "POSITIVE_FEEDBACK", "QUALITY_CONCERN", "IPC_CONCERN",
                              "WORKFORCE_SHORTFALL", "CONTRACT_BREACH", "SERIOUS_INCIDENT"])
        sev = rnd.choices(riskmodel.SEVERITIES, weights=[20, 35, 25, 15, 5 if i in risky else 1])[0]
        if sig == "NEVER_EVENT" and rnd.random() < 0.7:
            sig = "SERIOUS_INCIDENT"
        ev = {"event_key": "NHSE:RXQ:F%d-%06d" % (seed, k), "source": "NHSE", "source_org": "RXQ",
              "subject_kind": kind, "subject_id": sid, "signal": sig,
              "area": rules.area_of[sig], "severity": sev,
              "occurred_at": T0 + rnd.randrange(150 * DAY), "received_at": T0 + 150 * DAY,
              "origin": {"topic": "intel.raw.nhse", "partition": 0, "offset": k, "schema_id": -1},
              "region": "London", "local_authority_code": "E09000001"}
        events.append(ev)
        if rnd.random() < 0.03:
            events.append(dict(ev))  # the partner sends it again
    return events


def produce(stack, events, topic="intel.events"):
    values = json2avro(5, events)
    kcat_produce(stack.bootstrap, topic,
                 [("%s:%s" % (e["subject_kind"], e["subject_id"]), v) for e, v in zip(events, values)])


def model_of(events):
    m = riskmodel.Model(riskmodel.Rules(RULES))
    for e in events:
        m.apply(e)
    return m


def redis_state(r, ns):
    """Every key of a namespace, read type by type (TTLs left out)."""
    out = {}
    for key in r.scan_keys(ns + ":*"):
        t = r.cmd("TYPE", key)
        if t == "hash":
            out[key] = r.hgetall(key)
        elif t == "zset":
            out[key] = r.cmd("ZRANGE", key, 0, -1, "WITHSCORES")
        elif t == "set":
            out[key] = sorted(r.cmd("SMEMBERS", key))
        elif t == "string":
            out[key] = r.cmd("GET", key)
    return out


def alerts_on(stack, topic):
    return [a["value"] for a in cat(stack, topic)]


class Checks(cstest.StackTest):
    partitions = {"intel.events": 8, "intel.alerts": 4}

    def assert_state_matches_model(self, model, ns="cs"):
        state = self.stack.state(model.subjects, ns)
        for key, sub in model.subjects.items():
            h = state[key]
            self.assertAlmostEqual(float(h["score"]), sub.s, delta=1e-9 * max(1, sub.s), msg=key)
            self.assertEqual(int(h["as_of"]), sub.as_of, key)
            self.assertEqual(h["level"], sub.level, key)
            for a in riskmodel.AREAS:
                self.assertAlmostEqual(float(h["area." + a]), sub.areas[a],
                                       delta=1e-9 * max(1, sub.areas[a]), msg=key)
            self.assertEqual(int(h["events_total"]), len(sub.seen), key)

    def assert_alerts_match_model(self, model, alerts, exact=True):
        by_id = {}
        for a in alerts:
            by_id.setdefault(a["alert_id"], a)
        expected = {a["alert_id"]: a for a in model.alerts}
        self.assertEqual(set(by_id), set(expected))
        if exact:
            self.assertEqual(len(alerts), len(expected), "no alert twice in an uninterrupted run")
        for aid, e in expected.items():
            got = by_id[aid]
            self.assertEqual((got["kind"], got["level"], got["previous_level"], got["reason"],
                              got["triggered_by"], got["as_of"]),
                             (e["kind"], e["level"], e["previous_level"], e["reason"],
                              e["triggered_by"], e["as_of"]), aid)
            self.assertAlmostEqual(got["score"], e["score"], delta=1e-9 * max(1, e["score"]))
            self.assertEqual("%s:%s" % (got["subject_kind"], got["subject_id"]), e["subject"])


class FeedMatchesModel(Checks):
    def test_feed(self):
        s = self.stack
        events = make_feed(4000, seed=1)
        model = model_of(events)
        produce(s, events)
        scorer = s.program("caresignal-score")
        r = s.redis()
        wait_until(lambda: cstest.events_applied(s, model.subjects) == sum(len(x.seen) for x in model.subjects.values()),
                   120, interval=0.5, what="every event applied")
        wait_until(lambda: len(alerts_on(s, "intel.alerts")) >= len(model.alerts), 60,
                   what="the alerts")
        self.assertEqual(scorer.stop(), 0)
        self.assertGreater(len(model.alerts), 50)
        self.assert_alerts_match_model(model, alerts_on(s, "intel.alerts"))
        self.assert_state_matches_model(model)
        totals = [l for l in scorer.logs() if l.get("msg") == "score totals"][-1]
        self.assertEqual(totals["duplicates"], len(events) - sum(len(x.seen) for x in model.subjects.values()))
        # the rank set orders subjects by score decayed to any common time
        now = T0 + 200 * DAY
        ranked = cstest.ranked(s, "LOCATION", 10)
        best = sorted((k for k in model.subjects if k.startswith("LOCATION:")),
                      key=lambda k: -model.decayed(k, now))[:10]
        self.assertEqual(ranked, best)
        # the ops read path shows the same order
        p = cstest.run("caresignal-score", "--top", "10", "--json", "--at",
                       cstest.iso(now), stack=s)
        self.assertEqual(p.returncode, 0, p.stderr)
        top = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual([t["subject"] for t in top], best)
        self.assertAlmostEqual(top[0]["score_now"], model.decayed(best[0], now), delta=1e-6)
        p = cstest.run("caresignal-score", "--top", "3", "--kind", "LOCAL_AREA", stack=s)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"LOCAL_AREA:", p.stdout)
        r.close()
        self.check_show(model, events)

    def check_show(self, model, events):
        """caresignal-score --show: the documented shape, the model's values, the 90-day
        list newest first, the last alert with its id, event keys seen by month."""
        s = self.stack
        alerted = [a["subject"] for a in model.alerts]
        subject = max(set(alerted), key=alerted.count)
        sub = model.subjects[subject]
        view = s.show([subject])[subject]
        self.assertEqual(set(view), {
            "subject", "subject_kind", "subject_id", "exists", "score", "as_of", "area_scores",
            "level", "level_since", "immediate_at", "events_total", "duplicates", "assurance",
            "last_partition", "last_offset", "events", "last_alert", "pending_alerts",
            "seen_months"})
        self.assertTrue(view["exists"])
        self.assertEqual(view["as_of"], sub.as_of)
        self.assertEqual(view["level"], sub.level)
        self.assertAlmostEqual(view["score"], sub.s, delta=1e-9 * max(1, sub.s))
        last = [a for a in model.alerts if a["subject"] == subject][-1]
        self.assertEqual(view["last_alert"]["alert_id"], last["alert_id"])
        self.assertEqual(view["level_since"], last["as_of"])
        self.assertEqual(view["pending_alerts"], 0)
        mine = [e for e in events if "%s:%s" % (e["subject_kind"], e["subject_id"]) == subject]
        window = [e for e in {e["event_key"]: e for e in mine}.values()
                  if e["occurred_at"] >= sub.as_of - 90 * DAY]
        self.assertEqual(sorted(e["event_key"] for e in view["events"]),
                         sorted(e["event_key"] for e in window))
        times = [e["occurred_at"] for e in view["events"]]
        self.assertEqual(times, sorted(times, reverse=True))
        months = {}
        for k in sub.seen:
            e = next(e for e in mine if e["event_key"] == k)
            m = time.strftime("%Y-%m", time.gmtime(e["occurred_at"] / 1000))
            months[m] = months.get(m, 0) + 1
        self.assertEqual({m["month"]: m["event_keys"] for m in view["seen_months"]}, months)
        # a person's view, a subject with no state (exit 3), not a subject (exit 2)
        p = cstest.run("caresignal-score", "--show", subject, stack=s)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(("level %s since" % sub.level).encode(), p.stdout)
        self.assertIn(last["alert_id"].encode(), p.stdout)
        p = cstest.run("caresignal-score", "--show", "--json", subject, "LOCATION:1-999999999",
                       stack=s)
        self.assertEqual(p.returncode, 3, p.stderr)
        lines = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual([l["exists"] for l in lines], [True, False])
        p = cstest.run("caresignal-score", "--show", "NOT-A-SUBJECT", stack=s)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"not a subject", p.stderr)
        p = cstest.run("caresignal-score", "--show", stack=s)
        self.assertEqual(p.returncode, 2)


class FeedMatchesModelLayout2(Checks):
    """The same through state layout 2 (one packed string per subject): the model's
    scores, levels and alerts, --show and --top, and a namespace keeps its layout."""
    extra = {"state.layout": "2"}

    def test_feed_layout_2(self):
        s = self.stack
        events = make_feed(2000, seed=2)
        model = model_of(events)
        produce(s, events)
        scorer = s.program("caresignal-score", config_extra=self.extra)
        wait_until(lambda: cstest.events_applied(s, model.subjects) == sum(len(x.seen) for x in model.subjects.values()),
                   120, interval=0.5, what="every event applied")
        wait_until(lambda: len(alerts_on(s, "intel.alerts")) >= len(model.alerts), 60,
                   what="the alerts")
        self.assertEqual(scorer.stop(), 0)
        self.assertGreater(len(model.alerts), 20)
        self.assert_alerts_match_model(model, alerts_on(s, "intel.alerts"))
        self.assert_state_matches_model(model)
        r = s.redis()
        self.assertEqual(r.cmd("GET", "cs:layout"), b"2")
        self.assertEqual(r.cmd("TYPE", "cs:{%s}:state" % next(iter(model.subjects))), "string")
        r.close()
        FeedMatchesModel.check_show(self, model, events)
        p = cstest.run("caresignal-score", "--top", "5", "--json", stack=s)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 5)
        # a scorer writing layout 1 refuses the namespace: exit 2, one line, the key
        p = cstest.run("caresignal-score", "--set", "state.layout=1", stack=s)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(len(p.stderr.decode().strip().split("\n")), 1, p.stderr)
        self.assertIn("'state.layout'", p.stderr.decode())


class FeedMatchesModelInScorer(FeedMatchesModelLayout2):
    """Layout 2 computed in the scorer (state.engine=scorer), Redis only storing under
    WATCH: the same model, the same alerts, the same reads."""
    extra = {"state.layout": "2", "state.engine": "scorer"}


class BadConfiguration(cstest.unittest.TestCase):
    def test_exit_2(self):
        for sets, needle in [((), "'kafka.bootstrap.servers': required"),
                             (("kafka.bootstrap.servers=x:1", "state.namespace=a b"), "state.namespace"),
                             (("kafka.bootstrap.servers=x:1", "score.batch.max=0"), "score.batch.max"),
                             (("kafka.bootstrap.servers=x:1", "rules.file=/nonexistent"), "rules.file"),
                             (("kafka.bootstrap.servers=x:1", "state.layout=3"), "state.layout"),
                             (("kafka.bootstrap.servers=x:1", "state.engine=scorer"), "state.engine"),
                             (("kafka.bootstrap.servers=x:1", "state.engine=lua"), "state.engine")]:
            args = []
            for kv in sets:
                args += ["--set", kv]
            p = cstest.run("caresignal-score", *args)
            self.assertEqual(p.returncode, 2, (sets, p.stderr))
            self.assertEqual(len(p.stderr.decode().strip().split("\n")), 1, p.stderr)
            self.assertIn(needle, p.stderr.decode())
        p = cstest.run("caresignal-score", "--top", "x")
        self.assertEqual(p.returncode, 2)
        p = cstest.run("caresignal-score", "--kind", "LOCATION")
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    cstest.main()
