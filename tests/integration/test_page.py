#!/usr/bin/env python3
"""caresignal-page against the devbroker and redis-server: a local HTTP receiver that
checks the HMAC signature and fails the first requests gets every alert exactly once; a
receiver that never accepts sends alerts to the dead-letter topic, and re-driven after it
is fixed they page once; exec and stdout (JSON and text) sinks; routing; an alert
replayed twice pages once."""
import hashlib
import hmac
import http.server
import json
import os
import threading
import time

import cstest
import riskmodel
from cstest import cat, json2avro, kcat_produce, wait_until

SECRET = "s3cret-for-tests"


def alert(n, kind="LOCATION", sid=None, level="INSPECT", region="London", akind="RAISED"):
    sid = sid or ("1-2000000%02d" % n if kind == "LOCATION" else "E09000%03d" % n)
    trig = "NHSE:RXQ:PAGE-%d" % n
    return {"alert_id": riskmodel.alert_id("%s:%s" % (kind, sid), akind, level, trig),
            "kind": akind, "subject_kind": kind, "subject_id": sid, "level": level,
            "previous_level": "NONE" if akind == "RAISED" else "INSPECT", "score": 101.5 + n,
            "area_scores": {"SAFE_CARE": 101.5 + n, "STAFFING": 0.0,
                            "PROTECTION_FROM_ABUSE": 0.0, "ASSURANCE": 0.0},
            "as_of": 1795000000000 + n, "triggered_by": trig, "reason": "THRESHOLD",
            "recent": [{"event_key": trig, "signal": "SERIOUS_INCIDENT", "severity": "HIGH",
                        "occurred_at": 1795000000000 + n}],
            "rules_version": "test", "region": region, "local_authority_code": "E09000001"}


def publish_alerts(stack, alerts, topic="intel.alerts"):
    values = json2avro(6, alerts)
    kcat_produce(stack.bootstrap, topic,
                 [("%s:%s" % (a["subject_kind"], a["subject_id"]), v) for a, v in zip(alerts, values)])


def verify(headers, body, secret=SECRET, tolerance_s=300):
    """The receiver's check (README, Paging): HMAC-SHA256 of "<timestamp>.<body>" compared
    in constant time, and the timestamp within the tolerance, so a captured request cannot
    be replayed later."""
    ts = headers.get("X-Caresignal-Timestamp", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
        return False
    want = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Caresignal-Signature", ""), want)


class Receiver:
    """A webhook receiver on loopback: fails the first `fail_first` requests with 500
    (or all of them), records each accepted body, and checks the signature."""

    def __init__(self, fail_first=0, always_fail=False):
        self.fail_first, self.always_fail = fail_first, always_fail
        self.requests, self.accepted, self.bad_signatures = 0, [], 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                if not verify(self.headers, body):
                    outer.bad_signatures += 1
                    self.send_response(401)
                elif outer.always_fail or outer.requests <= outer.fail_first:
                    self.send_response(500)
                else:
                    outer.accepted.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Webhook(cstest.StackTest):
    def test_retries_then_exactly_once(self):
        s = self.stack
        rx = Receiver(fail_first=4)
        try:
            alerts = [alert(i) for i in range(6)]
            publish_alerts(s, alerts)
            pager = s.program("caresignal-page", config_extra={
                "page.sink": "webhook", "page.webhook.url": rx.url, "page.webhook.allow.http": "true",
                "page.webhook.secret": SECRET, "page.retries": "5",
                "page.retry.backoff.ms": "20", "group.id": "page-webhook"})
            wait_until(lambda: len(rx.accepted) >= 6, 60, what="every alert at the receiver")
            # the same alerts again (a replay, a re-emission): paged once only
            publish_alerts(s, alerts[:3])
            wait_until(lambda: sum(max(o, 0) for o in cstest.committed(
                s, "intel.alerts", "page-webhook").values()) == 9, 60,
                what="the replayed alerts to be consumed")
            self.assertEqual(pager.stop(), 0)
            ids = [a["alert_id"] for a in rx.accepted]
            self.assertEqual(sorted(ids), sorted(a["alert_id"] for a in alerts))  # once each
            self.assertEqual(rx.bad_signatures, 0)
            self.assertEqual(rx.requests, 6 + 4)  # four failures retried, nothing else
            totals = [l for l in pager.logs() if l.get("msg") == "page totals"][-1]
            self.assertEqual((totals["paged"], totals["duplicates"], totals["dead_letters"]), (6, 3, 0))
            got = rx.accepted[0]
            want = [a for a in alerts if a["alert_id"] == got["alert_id"]][0]
            self.assertEqual(got, want)  # the RiskAlert's fields by their schema names
            self.assertEqual(cat(s, "intel.deadletter"), [])
        finally:
            rx.close()

    def test_never_accepting_receiver_dead_letters(self):
        s = self.stack
        rx = Receiver(always_fail=True)
        try:
            alerts = [alert(50 + i) for i in range(2)]
            publish_alerts(s, alerts, topic="it.alerts.fail")
            pager = s.program("caresignal-page", config_extra={
                "page.sink": "webhook", "page.webhook.url": rx.url, "page.webhook.allow.http": "true",
                "page.webhook.secret": SECRET, "page.retries": "2",
                "page.retry.backoff.ms": "10", "group.id": "page-fail",
                "topic.alerts": "it.alerts.fail", "topic.deadletter": "it.dead.fail"})
            wait_until(lambda: len(cat(s, "it.dead.fail")) >= 2, 60, what="the dead letters")
            self.assertEqual(pager.stop(), 0)
            dead = cat(s, "it.dead.fail", "--show-values")
            self.assertEqual(len(dead), 2)
            self.assertEqual({d["headers"]["cs.error"] for d in dead}, {"UNDELIVERABLE"})
            self.assertEqual({d["headers"]["cs.error.field"] for d in dead}, {"default"})
            self.assertEqual({d["value"]["alert_id"] for d in dead}, {a["alert_id"] for a in alerts})
            self.assertEqual(rx.requests, 2 * 3)  # first try + 2 retries each
            # the receiver is fixed: ops re-drive the undeliverable alerts, which page once
            rx.always_fail = False
            topics = {"topic.alerts": "it.alerts.fail", "topic.deadletter": "it.dead.fail"}
            pager = s.program("caresignal-page", config_extra=dict(topics, **{
                "page.sink": "webhook", "page.webhook.url": rx.url, "page.webhook.allow.http": "true",
                "page.webhook.secret": SECRET, "group.id": "page-fail"}))
            for _ in range(2):  # the second run re-drives nothing
                p = cstest.run("caresignal-replay", "redrive", "--where", "error=UNDELIVERABLE",
                               "--execute", stack=s, config_extra=topics)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn(b"re-driven 0, already re-driven 2, skipped 0", p.stdout)
            wait_until(lambda: len(rx.accepted) >= 2, 60, what="the re-driven alerts paged")
            self.assertEqual(pager.stop(), 0)
            self.assertEqual(sorted(a["alert_id"] for a in rx.accepted),
                             sorted(a["alert_id"] for a in alerts))
            self.assertEqual(len(cat(s, "it.dead.fail")), 2)
        finally:
            rx.close()


class ExecStdoutAndRoutes(cstest.StackTest):
    def test_routes_exec_stdout_text(self):
        s = self.stack
        out = os.path.join(s.dir, "exec.out")
        routes = os.path.join(s.dir, "routes.json")
        with open(routes, "w") as f:
            json.dump({"routes": [
                {"name": "areas", "match": {"subject_kind": ["LOCAL_AREA"]}, "sink": "exec",
                 "command": "cat >> %s; echo \"$CS_ALERT_ID $CS_SUBJECT_KIND\" >> %s.env" % (out, out)},
                {"name": "failing", "match": {"region": ["North East"]}, "sink": "exec",
                 "command": "exit 3"},
                {"name": "readable", "match": {"level": ["WATCH"]}, "sink": "stdout",
                 "format": "text"}]}, f)
        area = alert(1, kind="LOCAL_AREA", level="WATCH")
        watch = alert(2, level="WATCH", sid="1-101669119", region="West Midlands")
        ne = alert(3, region="North East")
        other = alert(4, region="London")
        publish_alerts(s, [area, watch, ne, other])
        pager = s.program("caresignal-page", config_extra={
            "page.routes.file": routes, "page.retries": "1", "page.retry.backoff.ms": "10",
            "directory.file": os.path.join(cstest.SOURCE, "tests/data/integration/directory.csv")})
        wait_until(lambda: len(cat(s, "intel.deadletter")) == 1, 60, what="the failing route")
        wait_until(lambda: len(pager.output().splitlines()) >= 2, 30, what="stdout")
        self.assertEqual(pager.stop(), 0)
        lines = pager.output().decode().splitlines()
        text = [l for l in lines if not l.startswith("{")]
        js = [json.loads(l) for l in lines if l.startswith("{")]
        self.assertEqual([j["alert_id"] for j in js], [other["alert_id"]])  # default: JSON
        self.assertEqual(len(text), 1)
        self.assertIn("WATCH", text[0])
        self.assertIn("LOCATION 1-101669119 Rose Court, Care Home (West Midlands)", text[0])
        self.assertIn("score 103.5", text[0])
        self.assertIn("SERIOUS_INCIDENT/HIGH", text[0])
        with open(out) as f:
            self.assertEqual(json.loads(f.read())["alert_id"], area["alert_id"])
        with open(out + ".env") as f:
            self.assertEqual(f.read().split(), [area["alert_id"], "LOCAL_AREA"])
        dead = cat(s, "intel.deadletter")
        self.assertEqual(dead[0]["headers"]["cs.error.field"], "failing")

    def test_bad_routes_and_config(self):
        bad = os.path.join(cstest.tempfile.mkdtemp(), "r.json")
        for routes, needle in [({"routes": [{"name": "x", "sink": "webhook"}]}, "routes[0]: the webhook sink needs a url"),
                               ({"routes": [{"name": "x", "sink": "pager"}]}, "routes[0].sink"),
                               ({"routes": [{"name": "x", "sink": "stdout", "match": {"level": ["RED"]}}]}, "routes[0].match.level[0]"),
                               ({"routes": [{"sink": "stdout"}]}, "routes[0].name"),
                               ({"routes": [{"name": "x", "sink": "stdout", "colour": 1}]}, "routes[0].colour")]:
            with open(bad, "w") as f:
                json.dump(routes, f)
            p = cstest.run("caresignal-page", "--set", "kafka.bootstrap.servers=x:1",
                           "--set", "page.routes.file=" + bad)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(needle, p.stderr.decode())
        p = cstest.run("caresignal-page", "--set", "kafka.bootstrap.servers=x:1",
                       "--set", "page.sink=webhook")
        self.assertEqual(p.returncode, 2)
        self.assertIn("'page.webhook.url'", p.stderr.decode())


if __name__ == "__main__":
    cstest.main()
