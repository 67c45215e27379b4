#!/usr/bin/env python3
"""caresignal-page regressions, each named after what broke: the pager stopped polling for
its whole retry budget (a dead webhook delayed every route and got the member evicted);
a connection gone stale across a Redis restart made it page an alert an earlier instance
had paged; the exec sink handed the child every descriptor and the whole environment
and killed only `sh` on timeout; the webhook signature covered the body only (a captured
request replayed for ever) and http:// was taken silently; a ~1 MB undecodable alert
could not be dead-lettered."""
import hashlib
import hmac
import json
import os
import time

import cstest
from cstest import cat, kcat_consume, kcat_produce, wait_until
from test_page import SECRET, Receiver, alert, publish_alerts, verify


def write_routes(stack, routes):
    path = os.path.join(stack.dir, "routes-%d.json" % time.monotonic_ns())
    with open(path, "w") as f:
        json.dump({"routes": routes}, f)
    return path


def stdout_ids(pager):
    return [json.loads(l)["alert_id"] for l in pager.output().decode().splitlines()
            if l.startswith("{")]


class PageRegressions(cstest.StackTest):
    maxDiff = None

    def test_regression_dead_webhook_never_delays_stdout_and_polling_goes_on(self):
        s = self.stack
        closed = cstest.free_port()  # nothing listens there: every attempt fails
        routes = write_routes(s, [{"name": "dead", "match": {"subject_kind": ["LOCAL_AREA"]},
                                   "sink": "webhook", "url": "http://127.0.0.1:%d/x" % closed,
                                   "allow_http": True, "secret": SECRET, "timeout_ms": 500}])
        topics = {"topic.alerts": "it.page.dead", "topic.deadletter": "it.page.dead.dlq",
                  "group.id": "page-dead"}
        areas = [alert(10 + i, kind="LOCAL_AREA") for i in range(5)]
        locs = [alert(20 + i) for i in range(5)]
        publish_alerts(s, [x for pair in zip(areas, locs) for x in pair], topic="it.page.dead")
        # the retry budget (12 s) is longer than the poll interval the group allows (7 s):
        # a pager that stopped polling while it retried would be evicted
        pager = s.program("caresignal-page", config_extra=dict(topics, **{
            "page.routes.file": routes, "page.retries": "100", "page.retry.backoff.ms": "100",
            "page.retry.max.ms": "12000", "kafka.max.poll.interval.ms": "7000"}))
        wait_until(lambda: len(stdout_ids(pager)) == 5, 60, what="the stdout alerts")
        self.assertEqual(sorted(stdout_ids(pager)), sorted(a["alert_id"] for a in locs))
        self.assertEqual(cat(s, "it.page.dead.dlq"), [])  # the webhook ones still retry
        wait_until(lambda: len(cat(s, "it.page.dead.dlq")) == 5, 60,
                   what="the webhook alerts undeliverable")
        dead = cat(s, "it.page.dead.dlq", "--show-values")
        self.assertEqual({d["headers"]["cs.error"] for d in dead}, {"UNDELIVERABLE"})
        self.assertEqual({d["headers"]["cs.error.field"] for d in dead}, {"dead"})
        self.assertEqual(sorted(d["value"]["alert_id"] for d in dead),
                         sorted(a["alert_id"] for a in areas))
        wait_until(lambda: sum(cstest.committed(s, "it.page.dead", "page-dead").values()) == 10,
                   30, what="every offset committed")
        self.assertEqual(pager.stop(), 0)
        text = pager.log_text()
        self.assertNotIn("partitions revoked", text.split("page stopping")[0])
        self.assertNotIn("max.poll.interval", text)
        undeliverable = [l for l in pager.logs() if l.get("msg", "").startswith("alert undeliverable")]
        self.assertTrue(all(l["attempts"] > 5 for l in undeliverable))

    def test_regression_stale_redis_connection_does_not_repage(self):
        s = self.stack
        topics = {"topic.alerts": "it.page.stale", "group.id": "page-stale"}
        a, b = alert(30), alert(31)
        publish_alerts(s, [a], topic="it.page.stale")
        first = s.program("caresignal-page", config_extra=topics)
        wait_until(lambda: stdout_ids(first) == [a["alert_id"]], 60, what="the first page")
        self.assertEqual(first.stop(), 0)
        second = s.program("caresignal-page", config_extra=topics)
        wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in second.logs()),
                   60, what="the second pager to join")
        time.sleep(1.5)  # the paged record is in the AOF (appendfsync everysec)
        s.restart_redis()  # the second pager's connection is now stale
        publish_alerts(s, [a, b], topic="it.page.stale")  # a replay of a, and a new one
        wait_until(lambda: b["alert_id"] in stdout_ids(second), 60, what="the new alert")
        self.assertEqual(second.stop(), 0)
        self.assertEqual(stdout_ids(second), [b["alert_id"]])
        self.assertNotIn("without de-duplication", second.log_text())

    def test_regression_redis_down_pager_waits_rather_than_page_twice(self):
        s = self.stack
        topics = {"topic.alerts": "it.page.down", "group.id": "page-down"}
        a, b = alert(40), alert(41)
        publish_alerts(s, [a], topic="it.page.down")
        first = s.program("caresignal-page", config_extra=topics)
        wait_until(lambda: stdout_ids(first) == [a["alert_id"]], 60, what="the first page")
        self.assertEqual(first.stop(), 0)
        time.sleep(1.5)
        pager = s.program("caresignal-page", config_extra=topics)
        wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in pager.logs()),
                   60, what="the pager to join")
        s.kill_redis()
        try:
            publish_alerts(s, [a, b], topic="it.page.down")
            wait_until(lambda: "waiting for it rather than page twice" in pager.log_text(), 60,
                       what="the pager to wait for Redis")
            time.sleep(2)
            self.assertEqual(stdout_ids(pager), [])  # nothing paged while Redis cannot say
        finally:
            s.start_redis()
        wait_until(lambda: stdout_ids(pager) == [b["alert_id"]], 60, what="the new alert")
        self.assertEqual(pager.stop(), 0)
        self.assertEqual(stdout_ids(pager), [b["alert_id"]])  # a: paged once, before

    def test_regression_exec_child_gets_no_descriptor_secret_or_orphan(self):
        s = self.stack
        out = os.path.join(s.dir, "exec")
        command = ("ls /proc/self/fd > %s.fds; env > %s.env; "
                   "(sleep 300 & echo $! > %s.pid; wait); sleep 300") % (out, out, out)
        routes = write_routes(s, [{"name": "slow", "sink": "exec", "command": command,
                                   "timeout_ms": 1500},
                                  {"name": "hook", "match": {"region": ["Nowhere"]},
                                   "sink": "webhook", "url": "https://127.0.0.1:1/x",
                                   "secret_env": "CS_TEST_HOOK_SECRET"}])
        topics = {"topic.alerts": "it.page.exec", "topic.deadletter": "it.page.exec.dlq",
                  "group.id": "page-exec"}
        publish_alerts(s, [alert(50)], topic="it.page.exec")
        pager = s.program("caresignal-page", config_extra=dict(topics, **{
            "page.routes.file": routes, "page.retries": "0"}),
            env={"CS_TEST_HOOK_SECRET": "CANARY-HOOK-SECRET-77"})
        wait_until(lambda: len(cat(s, "it.page.exec.dlq")) == 1, 60, what="the timeout")
        self.assertEqual(pager.stop(), 0)
        with open(out + ".fds") as f:
            fds = sorted(int(x) for x in f.read().split())
        self.assertEqual(fds[:3], [0, 1, 2])
        self.assertLessEqual(len(fds), 4, fds)  # 0-2 and the one ls reads /proc/self/fd with
        with open(out + ".env") as f:
            env = dict(l.split("=", 1) for l in f.read().splitlines() if "=" in l)
        self.assertNotIn("CS_TEST_HOOK_SECRET", env)
        self.assertNotIn("CANARY-HOOK-SECRET-77", json.dumps(env))
        self.assertEqual(env["CS_ALERT_ID"], alert(50)["alert_id"])
        self.assertLessEqual(set(env) - {"PATH", "LANG", "PWD", "SHLVL", "_", "OLDPWD"},
                             {"CS_ALERT_ID", "CS_ALERT_LEVEL", "CS_ALERT_KIND",
                              "CS_SUBJECT_KIND", "CS_SUBJECT_ID", "CS_REGION"})
        with open(out + ".pid") as f:
            orphan = int(f.read())
        wait_until(lambda: not cstest._alive(orphan), 10, what="the command's child killed")
        self.assertIn("ran longer than 1500 ms", pager.log_text())
        self.assertNotIn("CANARY-HOOK-SECRET-77", pager.log_text())

    def test_regression_webhook_signature_covers_a_timestamp(self):
        s = self.stack
        rx = Receiver()
        captured = []
        try:
            topics = {"topic.alerts": "it.page.sig", "group.id": "page-sig"}
            publish_alerts(s, [alert(60)], topic="it.page.sig")
            pager = s.program("caresignal-page", config_extra=dict(topics, **{
                "page.sink": "webhook", "page.webhook.url": rx.url,
                "page.webhook.allow.http": "true", "page.webhook.secret": SECRET}))
            wait_until(lambda: rx.accepted, 60, what="the signed request")
            self.assertEqual(pager.stop(), 0)
            self.assertEqual(rx.bad_signatures, 0)
            # the body alone does not verify, and neither does an old timestamp: a
            # captured request cannot be replayed outside the receiver's tolerance
            body = json.dumps(rx.accepted[0]).encode()
            now = int(time.time())
            sig = "sha256=" + hmac.new(SECRET.encode(), ("%d." % (now - 3600)).encode() + body,
                                       hashlib.sha256).hexdigest()
            self.assertFalse(verify({"X-Caresignal-Timestamp": str(now - 3600),
                                     "X-Caresignal-Signature": sig}, body))
        finally:
            rx.close()

    def test_regression_http_refused_unless_allowed_and_unsigned_warned(self):
        s = self.stack
        p = cstest.run("caresignal-page", "--set", "kafka.bootstrap.servers=x:1",
                       "--set", "page.sink=webhook", "--set", "page.webhook.url=http://h/x")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("page.webhook.url", p.stderr.decode())
        self.assertIn("page.webhook.allow.http", p.stderr.decode())
        routes = write_routes(s, [{"name": "plain", "sink": "webhook", "url": "http://h/x"}])
        p = cstest.run("caresignal-page", "--set", "kafka.bootstrap.servers=x:1",
                       "--set", "page.routes.file=" + routes)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("routes[0]", p.stderr.decode())
        self.assertIn("allow_http", p.stderr.decode())
        routes = write_routes(s, [{"name": "unsigned", "sink": "webhook", "url": "https://h/x"}])
        pager = s.program("caresignal-page", config_extra={
            "page.routes.file": routes, "topic.alerts": "it.page.unsigned", "group.id": "page-u"})
        wait_until(lambda: "webhook route without a secret" in pager.log_text(), 30,
                   what="the warning")
        self.assertEqual(pager.stop(), 0)
        warning = [l for l in pager.logs() if l.get("msg", "").startswith("webhook route without")]
        self.assertEqual((warning[0]["level"], warning[0]["route"]), ("warn", "unsigned"))

    def test_regression_one_megabyte_undecodable_alert_dead_lettered(self):
        s = self.stack
        topics = {"topic.alerts": "it.page.big", "topic.deadletter": "it.page.big.dlq",
                  "group.id": "page-big"}
        garbage = b"\x00\x00\x00\x00\x06" + b"\xff" * 1000204  # 1,000,209 bytes
        kcat_produce(s.bootstrap, "it.page.big", [(b"big", garbage)], partition=0,
                     extra=["-X", "message.max.bytes=2000000"])
        publish_alerts(s, [alert(70)], topic="it.page.big")
        pager = s.program("caresignal-page", config_extra=topics)
        wait_until(lambda: alert(70)["alert_id"] in stdout_ids(pager), 60,
                   what="the next alert paged")
        self.assertEqual(pager.stop(), 0)
        dead = kcat_consume(s.bootstrap, "it.page.big.dlq",
                            extra=["-X", "fetch.message.max.bytes=2000000"])
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0].value, garbage)
        self.assertEqual(dead[0].headers["cs.error"], "AVRO_DECODE")


if __name__ == "__main__":
    cstest.main()
