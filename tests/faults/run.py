#!/usr/bin/env python3
"""The fault suite: the whole pipeline (normalise, score, page) under a continuous feed
while faults are injected (docs/contract/guarantees.md), then the invariants checked.

Faults: kill -9 of each consumer at random moments (mid-batch, mid-delivery, during a
rebalance), SIGTERM mid-batch, Redis kill -9 and a restart from its AOF (appendonly yes,
appendfsync everysec), Redis down for 20 s, a broker down and up, request errors on
Produce / Fetch / OffsetCommit / JoinGroup, 300 ms round trips, a rebalance storm (three
scorers joining and leaving), and a webhook receiver that is down, then answers 500, then
hangs.

Invariants, checked after the run:
  - every Redis key of the risk state equals a fault-free run of the same feed (a digest of
    every key, pipeline run again afterwards into another namespace) and the independent
    model (tests/integration/riskmodel.py);
  - every expected alert paged, each alert_id once on its route;
  - no partition stuck: every group committed to the end of its topics;
  - the dead-letter topic holds exactly the feed's malformed messages, with their reasons.

  tests/faults/run.sh [--kills N] [--seed S] [--build DIR] [--out FILE] [--keep]
                     [--set KEY=VALUE ...]

--kills N: at least N kill -9 of each consumer (default: the CI size, 3). --set: a
configuration setting for every consumer under faults (repeatable), e.g. --set
state.layout=2 --set state.engine=scorer; the fault-free reference run keeps the
defaults, so the two are compared across engines and layouts (through --show). The last
line is "faults: PASS ..." or "faults: FAIL ..."; the exit status says the same.
"""
import argparse
import csv
import hashlib
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import cstest  # noqa: E402
import riskmodel  # noqa: E402
from cstest import kcat_consume, kcat_produce, wait_until  # noqa: E402

RULES = os.path.join(cstest.SOURCE, "deploy/config/rules.json")
DIRECTORY = os.path.join(cstest.SOURCE, "deploy/dev/data/directory.csv")
SECRET = "fault-suite-webhook-secret"
CANARY = "CANARY-FAULTS-Whistle-Q"
DAY = riskmodel.DAY
PARTITIONS = {"intel.raw.nhse": 4, "intel.raw.ccg": 4, "intel.raw.ofsted-send": 2,
              "intel.events": 8, "intel.alerts": 2, "intel.deadletter": 2}
RAW = {"nhse": "intel.raw.nhse", "ccg": "intel.raw.ccg", "ofsted": "intel.raw.ofsted-send"}
# docs/contract/canonical-event.md as a partner-facing table (independent of the rules file's layout)
HARM = {"NO_HARM": "INFO", "LOW": "LOW", "MODERATE": "MEDIUM", "SEVERE": "HIGH", "DEATH": "CRITICAL"}
RAG = {"GREEN": "LOW", "AMBER": "MEDIUM", "RED": "HIGH"}
CONCERN = {"SAFEGUARDING_REFERRAL": "SAFEGUARDING"}
OUTCOME = {"POSITIVE": "INFO", "INCONSISTENT": "MEDIUM", "SYSTEMIC_FAILINGS": "HIGH",
           "WRITTEN_STATEMENT_OF_ACTION": "HIGH"}
# fields of a subject's state that depend on where its events sat on intel.events (a
# normaliser crash re-publishes events at new offsets), not on the events themselves
POSITIONAL = {"last_partition", "last_offset", "duplicates"}  # of a --show object


def log(*a):
    print("faults:", *a, flush=True)


def iso(ms):
    return cstest.iso(ms)


# ----------------------------------------------------------------------------- the feed

class Feed:
    """A deterministic feed. Each subject's events come from one partner and one raw
    partition (the key), so every run applies them in the same order and the alerts, which
    depend on the order within the hysteresis bands, are the same in every run."""

    def __init__(self, rnd, n_events, now_ms):
        locs = []
        with open(DIRECTORY, newline="") as f:
            for row in csv.DictReader(f):  # names hold quoted commas
                if row["location_id"].startswith("1-"):
                    locs.append((row["location_id"], row["local_authority_code"]))
        rnd.shuffle(locs)
        n = min(max(30, n_events // 12), len(locs) // 3)  # three disjoint sets
        nhse, ccg, named = locs[:n], locs[n:2 * n], locs[2 * n:3 * n]
        las = sorted({la for _, la in named})[:max(6, n // 6)]
        named = [l for l in named if l[1] in las]
        self.messages = []   # (topic, key bytes, value bytes, canonical events)
        self.malformed = {}  # key -> expected reason
        risky = set(rnd.sample(range(n), n // 4))
        seq = 0
        for i in range(n_events):
            seq += 1
            at = now_ms - rnd.randrange(80 * DAY)
            kind = rnd.random()
            if rnd.random() < 0.02:
                self._malformed(rnd, seq, nhse, now_ms)
                continue
            if kind < 0.45:
                k = rnd.randrange(n)
                loc = nhse[k][0]
                cat = rnd.choice(["SERIOUS_INCIDENT", "OUTBREAK", "IPC_CONCERN", "DNACPR_CONCERN",
                                  "WORKFORCE_SHORTFALL"] + (["NEVER_EVENT"] if k in risky and rnd.random() < 0.1 else []))
                harm = rnd.choices(list(HARM), weights=[15, 35, 30, 15 if k in risky else 3, 5 if k in risky else 1])[0]
                e = {"incident_id": "F-%06d" % seq, "reporting_org_ods": "RXQ", "location_id": loc,
                     "category": cat, "harm": harm, "occurred_at": iso(at), "reported_at": at,
                     "description": CANARY}
                canon = [{"event_key": "NHSE:RXQ:F-%06d" % seq, "subject_kind": "LOCATION",
                          "subject_id": loc, "signal": cat, "severity": HARM[harm], "occurred_at": at}]
                self._add("nhse", loc, e, canon, rnd)
            elif kind < 0.85:
                k = rnd.randrange(n)
                loc = ccg[k][0]
                ct = rnd.choice(["COMPLAINT", "SAFEGUARDING_REFERRAL", "WHISTLEBLOWING", "QUALITY_CONCERN",
                                 "CONTRACT_BREACH", "POSITIVE_FEEDBACK"])
                rag = rnd.choices(list(RAG), weights=[30, 40, 30 if k in risky else 8])[0]
                day = time.strftime("%Y-%m-%d", time.gmtime(at // 1000))
                e = {"concern_ref": "C-%06d" % seq, "ccg_ods": "15E", "location_id": loc,
                     "concern_type": ct, "rag": rag, "received_on": day,
                     "whistleblower_name": CANARY, "narrative": CANARY}
                day_ms = (at // DAY) * DAY
                canon = [{"event_key": "CCG:15E:C-%06d" % seq, "subject_kind": "LOCATION",
                          "subject_id": loc, "signal": CONCERN.get(ct, ct), "severity": RAG[rag],
                          "occurred_at": day_ms}]
                self._add("ccg", loc, e, canon, rnd)
            else:
                la = rnd.choice(las)
                names = [l for l, a in named if a == la]
                picked = rnd.sample(names, min(len(names), rnd.randrange(0, 3)))
                outcome = rnd.choice(list(OUTCOME))
                e = {"inspection_ref": "S-%06d" % seq, "local_authority_code": la, "outcome": outcome,
                     "published_at": at, "named_location_ids": picked}
                key = "OFSTED_SEND:%s:S-%06d" % (la, seq)
                base = {"signal": "SEND_OUTCOME", "severity": OUTCOME[outcome], "occurred_at": at}
                canon = [dict(base, event_key=key, subject_kind="LOCAL_AREA", subject_id=la)]
                canon += [dict(base, event_key=key + "#" + l, subject_kind="LOCATION", subject_id=l)
                          for l in picked]
                self._add("ofsted", la, e, canon, rnd)

    def _add(self, source, key, e, canon, rnd):
        self.messages.append((RAW[source], key.encode(), json.dumps(e).encode(), canon))
        if rnd.random() < 0.03:  # the partner sends it again: a duplicate, counted once
            self.messages.append((RAW[source], key.encode(), json.dumps(e).encode(), []))

    def _malformed(self, rnd, seq, nhse, now_ms):
        key = "bad-%06d" % seq
        loc = nhse[0][0]
        base = {"incident_id": "B-%06d" % seq, "reporting_org_ods": "RXQ", "location_id": loc,
                "category": "OUTBREAK", "harm": "LOW", "occurred_at": iso(now_ms - DAY),
                "reported_at": now_ms - DAY, "description": CANARY}
        kind = rnd.randrange(5)
        if kind == 0:
            value, reason = b"{not json " + CANARY.encode(), "JSON_SYNTAX"
        elif kind == 1:
            value, reason = json.dumps(dict(base, harm="CATASTROPHIC")).encode(), "ENUM_UNKNOWN"
        elif kind == 2:
            value, reason = json.dumps(dict(base, location_id="1-999999999")).encode(), "UNKNOWN_LOCATION"
        elif kind == 3:
            b = dict(base)
            del b["harm"]
            value, reason = json.dumps(b).encode(), "FIELD_MISSING"
        else:
            value, reason = json.dumps(dict(base, occurred_at="2100-01-01T00:00:00Z")).encode(), "TIME_RANGE"
        self.malformed[key] = reason
        self.messages.append((RAW["nhse"], key.encode(), value, []))

    def model(self):
        m = riskmodel.Model(riskmodel.Rules(RULES))
        for _, _, _, canon in self.messages:
            for c in canon:
                m.apply(c)
        return m


# ----------------------------------------------------------------------------- receiver

class Receiver:
    """The on-call webhook: mode ok, down (nothing listens), 500, or hang (answers after the
    pager's timeout). Counts each alert_id it accepted (2xx) after checking the signature."""

    def __init__(self):
        self.mode = "ok"
        self.accepted = {}
        self.bad = 0
        self.lock = threading.Lock()
        self.port = cstest.free_port()
        self.server = None
        self._serve()

    def _serve(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts = self.headers.get("X-Caresignal-Timestamp", "")
                want = "sha256=" + __import__("hmac").new(
                    SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                if outer.mode == "hang":
                    time.sleep(3)  # past the route's timeout: the pager counts it failed
                    self.send_response(204)
                    self.end_headers()
                    return
                if self.headers.get("X-Caresignal-Signature") != want:
                    outer.bad += 1
                    self.send_response(401)
                elif outer.mode == "500":
                    self.send_response(500)
                else:
                    aid = json.loads(body)["alert_id"]
                    with outer.lock:
                        outer.accepted[aid] = outer.accepted.get(aid, 0) + 1
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set_mode(self, mode):
        if mode == "down" and self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        elif mode != "down" and not self.server:
            self._serve()
        self.mode = mode

    def close(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


# ----------------------------------------------------------------------------- the run

class Run:
    def __init__(self, args):
        self.args = args
        self.rnd = random.Random(args.seed)
        self.counts = {}
        self.failures = []
        self.stack = cstest.Stack(brokers=3, partitions=PARTITIONS)
        self.receiver = Receiver()
        self.dir = self.stack.dir
        self.exec_out = os.path.join(self.dir, "exec-route.jsonl")
        self.routes = os.path.join(self.dir, "routes.json")
        with open(self.routes, "w") as f:
            json.dump({"routes": [
                {"name": "areas", "match": {"subject_kind": ["LOCAL_AREA"]}, "sink": "exec",
                 "command": "cat >> %s; echo >> %s" % (self.exec_out, self.exec_out),
                 "timeout_ms": 5000},
                {"name": "inspect", "match": {"level": ["INSPECT"], "kind": ["RAISED"]},
                 "sink": "webhook", "url": "http://127.0.0.1:%d/hook" % self.receiver.port,
                 "allow_http": True, "secret": SECRET, "timeout_ms": 1000}]}, f)
        common = {"kafka.session.timeout.ms": "3000", "kafka.heartbeat.interval.ms": "300"}
        self.configs = {
            "caresignal-normalise": dict(common, **{"directory.file": DIRECTORY}),
            "caresignal-score": dict(common, **{"score.batch.max": "100"}),
            "caresignal-page": dict(common, **{
                "page.routes.file": self.routes, "page.retries": "100",
                "page.retry.backoff.ms": "200", "page.retry.max.ms": "120000",
                "page.dedupe.wait.ms": "120000"}),
        }
        for kv in args.set or ():
            k, _, v = kv.partition("=")
            for cfg in self.configs.values():
                cfg[k.strip()] = v.strip()
        self.procs = {name: None for name in self.configs}
        self.pager_outputs = []
        self.extra_scorers = []
        self.stop_feed = False

    def bump(self, what, n=1):
        self.counts[what] = self.counts.get(what, 0) + n

    # --------------------------------------------------------------- consumers
    def start(self, name):
        p = self.stack.program(name, config_extra=self.configs[name])
        self.procs[name] = p
        if name == "caresignal-page":
            self.pager_outputs.append(p)
        return p

    def check_alive(self):
        """A consumer that stopped on its own is a failure (and is started again)."""
        for name, p in self.procs.items():
            if p and not p.alive():
                self.failures.append("%s exited on its own with status %s; last lines: %s" % (
                    name, p.proc.returncode, p.log_text()[-1500:]))
                self.start(name)

    def kill9(self, name):
        p = self.procs[name]
        p.proc.send_signal(signal.SIGKILL)
        p.proc.wait()
        self.bump("kill -9 " + name.replace("caresignal-", ""))
        time.sleep(self.rnd.uniform(0, 0.5))
        self.start(name)

    def sigterm(self, name):
        p = self.procs[name]
        rc = p.stop(timeout=90)
        if rc != 0:
            self.failures.append("%s exited %s after SIGTERM" % (name, rc))
        self.bump("SIGTERM " + name.replace("caresignal-", ""))
        self.start(name)

    # --------------------------------------------------------------- faults
    def redis_kill_restart(self):
        self.stack.restart_redis(down_seconds=self.rnd.uniform(0, 1))
        self.bump("redis kill -9 + restart from AOF")

    def redis_down(self, seconds):
        self.stack.kill_redis()
        time.sleep(seconds)
        self.stack.start_redis()
        self.bump("redis down %ds" % seconds)

    def broker_down(self):
        b = self.rnd.randrange(1, 4)
        self.stack.fault("down", b)
        time.sleep(self.rnd.uniform(2, 5))
        self.stack.fault("up", b)
        self.bump("broker down and up")

    def request_errors(self):
        kinds = [("Produce", "NOT_LEADER_FOR_PARTITION"), ("Fetch", "NOT_LEADER_FOR_PARTITION"),
                 ("OffsetCommit", "REQUEST_TIMED_OUT"), ("JoinGroup", "COORDINATOR_NOT_AVAILABLE")]
        # each kind in turn, so every run has all four
        api, err = kinds[sum(v for k, v in self.counts.items()
                             if k.startswith("request errors")) % len(kinds)]
        self.stack.fault("errors", api, self.rnd.randrange(2, 6), err)
        self.bump("request errors " + api)

    def slow_broker(self):
        self.stack.fault("rtt", "all", 300)
        time.sleep(self.rnd.uniform(3, 6))
        self.stack.fault("rtt", "all", 0)
        self.bump("300 ms round trips")

    def rebalance_storm(self):
        extra = [self.stack.program("caresignal-score", config_extra=self.configs["caresignal-score"])
                 for _ in range(2)]
        time.sleep(self.rnd.uniform(4, 7))
        for i, p in enumerate(extra):
            if i == 0:
                p.proc.send_signal(signal.SIGKILL)
                p.proc.wait()
            elif p.stop(timeout=90) != 0:
                self.failures.append("a storm scorer exited %s after SIGTERM" % p.proc.returncode)
        self.extra_scorers += extra
        self.bump("rebalance storm (3 scorers)")

    def webhook_cycle(self):
        for mode in ("down", "500", "hang"):
            self.receiver.set_mode(mode)
            time.sleep(self.rnd.uniform(3, 5))
        self.receiver.set_mode("ok")
        self.bump("webhook down, 500, hang")

    def schedule(self):
        """Every fault kind at least once (Redis down 20 s once); kills fill the rest."""
        kills = self.args.kills
        plan = [("kill9", n) for n in self.configs for _ in range(kills)]
        plan += [("sigterm", n) for n in self.configs]
        plan += [("redis_kill_restart", None)] * max(1, kills // 10)
        plan += [("broker_down", None)] * max(1, kills // 20)
        plan += [("request_errors", None)] * max(4, kills // 10)
        plan += [("slow_broker", None)] * max(1, kills // 25)
        plan += [("rebalance_storm", None)] * max(1, kills // 25)
        plan += [("webhook_cycle", None)] * max(1, kills // 30)
        self.rnd.shuffle(plan)
        plan.insert(self.rnd.randrange(len(plan) // 2 + 1), ("redis_down", 20))
        return plan

    def inject(self, action, arg):
        fn = getattr(self, action)
        fn(arg) if arg is not None else fn()

    # --------------------------------------------------------------- publishing
    def publish(self, feed, duration):
        """Publishes the feed in chunks spread over \\p duration seconds."""
        msgs = feed.messages
        chunks = max(1, int(duration / 0.5))
        size = (len(msgs) + chunks - 1) // chunks
        t0 = time.monotonic()
        for c in range(chunks):
            part = msgs[c * size:(c + 1) * size]
            by_topic = {}
            for topic, key, value, _ in part:
                by_topic.setdefault(topic, []).append((key, value))
            for topic, recs in by_topic.items():
                for attempt in range(10):
                    try:
                        kcat_produce(self.stack.bootstrap, topic, recs, timeout=120)
                        break
                    except (AssertionError, subprocess.TimeoutExpired) as e:
                        # a broker down: kcat gives up; at-least-once, so publish again
                        log("publish retry:", str(e)[:200])
                        time.sleep(1)
                else:
                    self.failures.append("could not publish a chunk of the feed")
            wait = t0 + (c + 1) * duration / chunks - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    # --------------------------------------------------------------- checks
    def committed_to_end(self, group, topics, bootstrap=None):
        for t in topics:
            p = cstest.run("caresignal-cat", "--topic", t, "--committed", group,
                           stack=self.stack)
            if p.returncode != 0:
                return False
            for d in map(json.loads, p.stdout.splitlines()):
                if d["high"] > 0 and d["committed"] != d["high"]:
                    return False
        return True

    def paged(self):
        """{route: {alert_id: times}} from every sink."""
        out = {"default": {}, "areas": {}, "inspect": dict(self.receiver.accepted)}
        for p in self.pager_outputs:
            for line in p.output().decode(errors="replace").splitlines():
                if line.startswith("{"):
                    aid = json.loads(line)["alert_id"]
                    out["default"][aid] = out["default"].get(aid, 0) + 1
        if os.path.exists(self.exec_out):
            with open(self.exec_out) as f:
                for line in f:
                    if line.strip():
                        aid = json.loads(line)["alert_id"]
                        out["areas"][aid] = out["areas"].get(aid, 0) + 1
        return out

    @staticmethod
    def route_of(a):
        if a["subject"].startswith("LOCAL_AREA:"):
            return "areas"
        if a["level"] == "INSPECT" and a["kind"] == "RAISED":
            return "inspect"
        return "default"

    def digest(self, ns, subjects):
        """{name: content} of a namespace's risk state: each subject as the layout's owner
        reads it (caresignal-score --show) without the positional fields, and every key
        that is not per subject (the rank sets) but the positions and the pager's
        records."""
        out = {}
        for key, view in self.stack.show(subjects, ns).items():
            if view.get("exists"):
                out["subject " + key] = {k: v for k, v in view.items() if k not in POSITIONAL}
        r = self.stack.redis()
        for key in r.scan_keys(ns + ":*"):
            rest = key[len(ns) + 1:]
            if rest.startswith(("pos:", "paged:", "redriven:", "{")) or rest == "layout":
                continue  # (the layout record: the reference may run another, --set)
            t = r.cmd("TYPE", key)
            if t == "zset":
                v = [x.decode() for x in r.cmd("ZRANGE", key, 0, -1, "WITHSCORES")]
            elif t == "set":
                v = sorted(x.decode() for x in r.cmd("SMEMBERS", key))
            else:
                v = (t, r.cmd("GET", key))
            out[rest] = v
        r.close()
        return out

    def check_model(self, model, state):
        bad = 0
        for key, sub in model.subjects.items():
            h = state.get("subject " + key)
            if not h:
                bad += 1
                continue
            ok = (abs(float(h["score"]) - sub.s) <= 1e-9 * max(1, sub.s) and
                  int(h["as_of"]) == sub.as_of and h["level"] == sub.level and
                  int(h["events_total"]) == len(sub.seen) and h["pending_alerts"] == 0 and
                  all(abs(float(h["area_scores"][a]) - sub.areas[a]) <= 1e-9 * max(1, sub.areas[a])
                      for a in riskmodel.AREAS))
            bad += not ok
        return bad

    def reference(self):
        """The same feed through a fault-free pipeline into namespace ref."""
        cfg = {"group.id": "ref-normalise", "topic.events": "it.ref.events",
               "topic.deadletter": "it.ref.dlq", "directory.file": DIRECTORY}
        n = self.stack.program("caresignal-normalise", config_extra=cfg)
        s = self.stack.program("caresignal-score", config_extra={
            "group.id": "ref-score", "topic.events": "it.ref.events", "state.namespace": "ref",
            "topic.alerts": "it.ref.alerts", "topic.deadletter": "it.ref.dlq"})
        wait_until(lambda: self.committed_to_end("ref-normalise", list(RAW.values())), 300,
                   interval=2, what="the reference normaliser")
        wait_until(lambda: self.committed_to_end("ref-score", ["it.ref.events"]), 300,
                   interval=2, what="the reference scorer")
        for p in (n, s):
            if p.stop() != 0:
                self.failures.append("the reference %s did not stop cleanly" % p.name)

    def run(self):
        args = self.args
        now = cstest.now_ms()
        feed = Feed(self.rnd, args.events, now)
        model = feed.model()
        log("feed: %d messages (%d malformed), %d subjects, %d alerts expected" % (
            len(feed.messages), len(feed.malformed), len(model.subjects), len(model.alerts)))
        for name in self.configs:
            self.start(name)
        plan = self.schedule()
        # the feed runs as long as the faults do (each takes about this long, plus a gap)
        took = {"kill9": 0.5, "sigterm": 2, "redis_kill_restart": 1, "broker_down": 3.5,
                "request_errors": 0.1, "slow_broker": 4.5, "rebalance_storm": 7,
                "webhook_cycle": 12, "redis_down": 20}
        duration = sum(took[a] + args.gap for a, _ in plan)
        publisher = threading.Thread(target=self.publish, args=(feed, duration), daemon=True)
        t0 = time.monotonic()
        publisher.start()
        for i, (action, arg) in enumerate(plan):
            time.sleep(self.rnd.uniform(0.2, 2 * args.gap - 0.2))
            self.check_alive()
            try:
                self.inject(action, arg)
            except AssertionError as e:
                self.failures.append("injecting %s: %s" % (action, e))
            if i % 10 == 9:
                log("%d/%d faults injected, %.0f s" % (i + 1, len(plan), time.monotonic() - t0))
        publisher.join()
        self.stack.fault("clear", "Produce")
        self.receiver.set_mode("ok")
        self.check_alive()
        log("feed published and faults done after %.0f s: draining" % (time.monotonic() - t0))
        groups = [("caresignal-normalise", list(RAW.values())), ("caresignal-score", ["intel.events"]),
                  ("caresignal-page", ["intel.alerts"])]
        expected = {a["alert_id"]: a for a in model.alerts}
        try:
            for g, topics in groups:
                wait_until(lambda: self.committed_to_end(g, topics), 300, interval=2,
                           what="%s to reach the end of %s" % (g, ",".join(topics)))
            wait_until(lambda: sum(len(v) for v in self.paged().values()) >= len(expected), 120,
                       interval=1, what="every expected alert paged")
        except AssertionError as e:
            self.failures.append("stuck: %s" % e)
        time.sleep(2)  # anything paged twice would show by now
        self.check_alive()
        for name, p in self.procs.items():
            if p.stop(timeout=90) != 0:
                self.failures.append("%s did not stop cleanly (status %s)" % (name, p.proc.returncode))
        self.bump("SIGTERM at the end", len(self.procs))

        # ---- invariants
        paged = self.paged()
        missing = [a for a in expected if paged[self.route_of(expected[a])].get(a, 0) == 0]
        twice = {a: n for route in paged.values() for a, n in route.items() if n > 1}
        unexpected = [a for route in paged.values() for a in route if a not in expected]
        if missing:
            self.failures.append("%d expected alerts never paged, e.g. %s" % (len(missing), missing[:3]))
        # at least once: a kill -9 of the pager between a delivery and its record (a few
        # microseconds) pages that alert again; more repeats than pager kills is a fault
        repeats = sum(n - 1 for n in twice.values())
        if repeats > self.counts.get("kill -9 page", 0):
            self.failures.append("%d alerts paged more than once on their route: %s" % (len(twice), list(twice.items())[:3]))
        if unexpected:
            self.failures.append("%d alerts paged that the model does not predict: %s" % (len(unexpected), unexpected[:3]))
        if self.receiver.bad:
            self.failures.append("%d webhook requests with a bad signature" % self.receiver.bad)
        state = self.digest("cs", model.subjects)
        wrong = self.check_model(model, state)
        if wrong:
            self.failures.append("%d subjects differ from the model" % wrong)
        self.reference()
        ref = self.digest("ref", model.subjects)
        differ = sorted(k for k in set(state) | set(ref) if state.get(k) != ref.get(k))
        if differ:
            self.failures.append("%d keys differ from the fault-free run, e.g. %s: %s vs %s" % (
                len(differ), differ[0], str(state.get(differ[0]))[:300], str(ref.get(differ[0]))[:300]))
        dead = kcat_consume(self.stack.bootstrap, "intel.deadletter")
        got = {}
        for d in dead:
            k = d.key.decode() if d.key else ""
            got.setdefault(k, set()).add(d.headers.get("cs.error"))
        wrong_dl = {k: v for k, v in got.items() if feed.malformed.get(k) not in v or len(v) != 1}
        lost_dl = [k for k in feed.malformed if k not in got]
        if wrong_dl or lost_dl:
            self.failures.append("dead letters: %d unexpected or with a wrong reason (%s), %d malformed "
                                 "messages without one (%s)" % (len(wrong_dl), list(wrong_dl.items())[:3],
                                                                len(lost_dl), lost_dl[:3]))
        leaks = [p.name for p in self.stack.procs if CANARY in p.log_text()]
        if leaks or any(CANARY.encode() in p.output() for p in self.pager_outputs):
            self.failures.append("partner free text reached a log or the pager's output: %s" % leaks)
        for topic in ("intel.events", "intel.alerts"):
            if any(CANARY.encode() in (r.value or b"") for r in kcat_consume(self.stack.bootstrap, topic)):
                self.failures.append("partner free text reached %s" % topic)
        applied = sum(len(s.seen) for s in model.subjects.values())
        got_applied = sum(int(state.get("subject " + k, {}).get("events_total", 0)) for k in model.subjects)
        result = {
            "seed": args.seed, "settings": args.set or [],
            "events": len(feed.messages), "malformed": len(feed.malformed),
            "subjects": len(model.subjects), "alerts_expected": len(expected),
            "faults": self.counts, "seconds": round(time.monotonic() - t0),
            "events_lost": max(0, applied - got_applied), "double_counted": max(0, got_applied - applied),
            "alerts_missing": len(missing), "alerts_paged_twice": len(twice),
            "dead_letters": len(dead), "dead_letters_duplicated": len(dead) - len(got),
            "keys_differing_from_fault_free_run": len(differ), "state_keys": len(state),
            "failures": self.failures,
        }
        return result

    def close(self):
        for p in self.extra_scorers:
            p.kill()
        self.receiver.close()
        if not self.args.keep:
            self.stack.stop()
        else:
            for p in self.stack.procs:
                p.kill()
            subprocess.run([os.path.join(cstest.SOURCE, "deploy/dev/stack.sh"), "stop", "--dir",
                            self.stack.dir, "--quiet"], check=False)
            log("kept", self.stack.dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=3, help="kill -9 of each consumer (default 3)")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CS_FAULTS_SEED", "1")))
    ap.add_argument("--events", type=int, default=0, help="feed size (default: from --kills)")
    ap.add_argument("--gap", type=float, default=1.2, help="mean seconds between faults")
    ap.add_argument("--out", help="write the result as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="a setting for every consumer under faults (repeatable); the "
                    "reference run keeps the defaults")
    args = ap.parse_args()
    if not args.events:
        args.events = 2500 if args.kills <= 5 else 400 * args.kills
    run = Run(args)
    try:
        result = run.run()
    finally:
        run.close()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    log("injected: " + ", ".join("%s x%d" % kv for kv in sorted(result["faults"].items())))
    log("events lost %d, double counted %d, alerts missing %d, alerts paged twice %d, keys "
        "differing from the fault-free run %d of %d, dead letters %d (%d duplicated)" % (
            result["events_lost"], result["double_counted"], result["alerts_missing"],
            result["alerts_paged_twice"], result["keys_differing_from_fault_free_run"],
            result["state_keys"], result["dead_letters"], result["dead_letters_duplicated"]))
    for f in result["failures"]:
        log("FAILED:", f)
    verdict = "FAIL" if result["failures"] else "PASS"
    log("%s in %d s (seed %d, %d events, %d alerts)" % (
        verdict, result["seconds"], args.seed, result["events"], result["alerts_expected"]))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
