#!/usr/bin/env python3
"""caresignal-score regressions, each named after what broke: new events of known subjects
dropped as "redeliveries" once intel.events started again at offset 0 (a dev broker
restarted under a Redis that kept its AOF); a committed start position above the
partition's high watermark read past silently instead of being refused; a canonical event
with a space in its event_key applied and then its reply unparseable (the scorer exited,
every restart again); one subject's failing call stopping the whole batch; Redis OOM
making the scorer exit instead of pausing; an evicting Redis accepted; a position that
Redis answered with an error taken as "replay from the beginning"; rank updates that
Redis refused ignored in silence."""
import os
import subprocess
import time

import cstest
from cstest import bin_path, cat, json2avro, kcat_produce, wait_until
from test_score import Checks, make_feed, model_of


def applied(stack, ns, model):
    return cstest.events_applied(stack, model.subjects, ns)


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
        wait_until(lambda: applied(s, "cs", m1) == total(m1), 120, interval=0.3,
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
            wait_until(lambda: applied(s, "cs", model) == total(model), 120, interval=0.3,
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
        wait_until(lambda: applied(s, "hw", model) == total(model), 60, interval=0.3,
                   what="every event applied")
        more = make_feed(10, seed=24, subjects=5)
        produce_to(s.bootstrap, more, topic="it.hw", partition=0)
        model = model_of(events + more)
        wait_until(lambda: applied(s, "hw", model) == total(model), 60, interval=0.3,
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

    def test_regression_bad_event_key_and_failing_subject_do_not_stop_the_batch(self):
        """An event_key with a space was applied and its reply could not be parsed: the
        scorer exited with the subject at INSPECT and no alert, on every restart. Now
        identifiers are checked at decode (ID_FORMAT dead letter), and a subject whose
        call fails (here: its state key has the wrong type) is dead-lettered STATE_ERROR
        while the rest of the batch is applied and alerted."""
        s = self.stack
        good = make_feed(300, seed=25, subjects=12)
        bad_key = dict(good[0], event_key="NHSE:RXQ:has space", signal="NEVER_EVENT",
                       severity="CRITICAL", subject_id="1-399999991")
        bad_subject = dict(good[1], event_key="NHSE:RXQ:OK-1", subject_id="BAD ID")
        wrong_type = dict(good[2], event_key="NHSE:RXQ:WT-1", subject_id="1-399999992")
        r = s.redis()
        r.cmd("SET", "bad:{LOCATION:1-399999992}:state", "not a hash")
        topic = "it.bad.events"
        produce_to(s.bootstrap, [bad_key, bad_subject, wrong_type] + good, topic=topic,
                   partition=0)
        model = model_of(good)
        scorer = s.program("caresignal-score", config_extra={
            "group.id": "score-bad", "state.namespace": "bad", "topic.events": topic,
            "topic.alerts": "it.bad.alerts"})
        wait_until(lambda: applied(s, "bad", model) == total(model), 60, interval=0.3,
                   what="the good events applied")
        wait_until(lambda: len(cat(s, "it.bad.alerts")) >= len(model.alerts), 60,
                   what="the good events' alerts")
        self.assertTrue(scorer.alive(), scorer.log_text()[-2000:])
        self.assertEqual(scorer.stop(), 0)
        self.assert_state_matches_model(model, ns="bad")
        self.assertEqual({a["value"]["alert_id"] for a in cat(s, "it.bad.alerts")},
                         {a["alert_id"] for a in model.alerts})
        dead = [d for d in cat(s, "intel.deadletter") if d["headers"].get("cs.origin.topic") == topic]
        got = sorted((d["offset"] if False else d["headers"]["cs.origin.offset"],
                      d["headers"]["cs.error"], d["headers"]["cs.error.field"]) for d in dead)
        self.assertEqual(got, [("0", "ID_FORMAT", "event_key"), ("1", "ID_FORMAT", "subject_id"),
                               ("2", "STATE_ERROR", "")])
        self.assertEqual(r.cmd("EXISTS", "bad:{LOCATION:1-399999991}:state"), 0)
        self.assertEqual(r.cmd("GET", "bad:{LOCATION:1-399999992}:state"), b"not a hash")
        r.close()

    def test_regression_redis_oom_pauses_instead_of_exiting(self):
        """OOM (and MISCONF, READONLY, NOREPLICAS...) made the scorer exit and crash-loop.
        It pauses and retries with backoff, then resumes exactly."""
        s = self.stack
        r = s.redis()
        events = make_feed(200, seed=26, subjects=10)
        model = model_of(events)
        scorer = s.program("caresignal-score", config_extra={
            "group.id": "score-oom", "state.namespace": "oom", "topic.events": "it.oom",
            "topic.alerts": "it.oom.alerts"})
        wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in scorer.logs()),
                   60, what="the scorer to join")
        r.cmd("CONFIG", "SET", "maxmemory", "1")
        try:
            produce_to(s.bootstrap, events, topic="it.oom")
            wait_until(lambda: any("OOM" in l.get("error", "") for l in scorer.logs()), 60,
                       what="the scorer to meet OOM")
            time.sleep(2)
            self.assertTrue(scorer.alive(), scorer.log_text()[-2000:])
            self.assertEqual(applied(s, "oom", model), 0)
        finally:
            r.cmd("CONFIG", "SET", "maxmemory", "0")
        wait_until(lambda: applied(s, "oom", model) == total(model), 60, interval=0.3,
                   what="every event applied once Redis has memory again")
        self.assertEqual(scorer.stop(), 0)
        self.assert_state_matches_model(model, ns="oom")
        msgs = [l.get("msg") for l in scorer.logs()]
        self.assertIn("redis unavailable: consumption paused, retrying with backoff", msgs)
        self.assertIn("redis answers again: consumption resumed", msgs)
        r.close()

    def test_regression_evicting_redis_refused_at_start(self):
        s = self.stack
        r = s.redis()
        r.cmd("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        try:
            p = cstest.run("caresignal-score", stack=s, timeout=60)
        finally:
            r.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.decode().strip().split("\n")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("maxmemory-policy is 'allkeys-lru'", lines[0])
        self.assertIn("noeviction", lines[0])
        r.close()

    def test_regression_position_error_reply_is_not_no_position(self):
        """A position Redis answers with an error (WRONGTYPE here) was taken as "no
        position": the partition was replayed from the beginning in silence. Now there is
        no safe place to resume: the scorer stops, naming the error."""
        s = self.stack
        r = s.redis()
        produce_to(s.bootstrap, make_feed(20, seed=27, subjects=3), topic="it.pos", partition=0)
        p = subprocess.run([bin_path("cs-commit"), s.bootstrap, "score-pos", "it.pos", "0", "5"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        r.cmd("HSET", "pos:pos:it.pos:0", "not", "a string")
        scorer = s.program("caresignal-score", config_extra={
            "group.id": "score-pos", "state.namespace": "pos", "topic.events": "it.pos",
            "topic.alerts": "it.pos.alerts"})
        wait_until(lambda: not scorer.alive(), 60, what="the scorer to stop")
        self.assertEqual(scorer.proc.returncode, 1)
        text = scorer.log_text()
        self.assertIn("WRONGTYPE", text)
        self.assertNotIn("replaying it from the beginning", text)
        self.assertEqual(r.scan_keys("pos:{*"), [])  # nothing applied
        r.close()

    def test_regression_rank_update_refused_is_logged(self):
        s = self.stack
        r = s.redis()
        r.cmd("SET", "rank:rank:LOCATION", "not a sorted set")
        events = [e for e in make_feed(100, seed=28, subjects=6) if e["subject_kind"] == "LOCATION"]
        model = model_of(events)
        produce_to(s.bootstrap, events, topic="it.rank")
        scorer = s.program("caresignal-score", config_extra={
            "group.id": "score-rank", "state.namespace": "rank", "topic.events": "it.rank",
            "topic.alerts": "it.rank.alerts"})
        wait_until(lambda: applied(s, "rank", model) == total(model), 60, interval=0.3,
                   what="every event applied")
        self.assertEqual(scorer.stop(), 0)
        refused = [l for l in scorer.logs() if l.get("msg", "").startswith("redis refused a rank update")]
        self.assertTrue(refused)
        self.assertIn("WRONGTYPE", refused[0]["error"])
        r.close()


    def test_function_failing_for_everyone_waits_instead_of_dead_lettering(self):
        """A subject whose call fails is dead-lettered, but a function that fails for
        every subject (here: replaced by one that raises) must not dead-letter the stream:
        the scorer waits and retries, and applies everything once it answers again."""
        s = self.stack
        r = s.redis()
        # Every event is on the topic before the scorer's first fetch, and the scorer
        # cannot join its group (no coordinator) until the function is broken: its first
        # batch holds every subject, so the failures "run on" (CS_ENGINE_SYSTEMIC_RUN)
        # at once. (A first poll of one or two subjects' events would dead-letter them
        # before that, by design: a test that let the poll decide flaked.)
        events = make_feed(300, seed=30, subjects=20)
        model = model_of(events)
        produce_to(s.bootstrap, events, topic="it.sys")
        s.fault("errors", "FindCoordinator", 1000, "COORDINATOR_NOT_AVAILABLE")
        scorer = s.program("caresignal-score", config_extra={
            "group.id": "score-sys", "state.namespace": "sys", "topic.events": "it.sys",
            "topic.alerts": "it.sys.alerts", "topic.deadletter": "it.sys.dlq"})
        wait_until(lambda: any(l.get("msg") == "score started" for l in scorer.logs()),
                   60, what="the scorer to load its library")
        fn = [l for l in scorer.logs() if l.get("msg") == "score started"][0]["function"]
        lib = "caresignal_" + fn[len("cs_apply_"):]
        listing = r.cmd("FUNCTION", "LIST", "LIBRARYNAME", lib, "WITHCODE")
        code = dict(zip(listing[0][::2], listing[0][1::2]))[b"library_code"]
        broken = ("#!lua name=%s\nredis.register_function('%s', function() error('broken') end)\n"
                  "redis.register_function('cs_ack_%s', function() return 0 end)\n") % (
                      lib, fn, fn[len("cs_apply_"):])
        r.cmd("FUNCTION", "LOAD", "REPLACE", broken)
        s.fault("clear", "FindCoordinator")
        wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in scorer.logs()),
                   60, what="the scorer to join")
        wait_until(lambda: "fails for every subject" in scorer.log_text(), 60,
                   what="the scorer to see the function fail for everyone")
        time.sleep(2)
        self.assertEqual(applied(s, "sys", model), 0)
        r.cmd("FUNCTION", "LOAD", "REPLACE", code)
        wait_until(lambda: applied(s, "sys", model) == total(model), 90, interval=0.5,
                   what="every event applied once the function answers")
        self.assertEqual(scorer.stop(), 0)
        self.assertEqual(cat(s, "it.sys.dlq"), [])
        self.assert_state_matches_model(model, ns="sys")
        r.close()


class PositionsWaitForABusyRedis(Checks):
    """Found by the fault suite's long run: a Redis still loading its AOF answered the
    positions read at assignment with LOADING, and the scorer gave up at once ("cannot
    read positions from redis: no safe place to resume", exit 1) instead of waiting, as
    the read had before the cluster change. Here Redis answers BUSY (a script running,
    busy-reply-threshold lowered) while the scorer takes its partitions: it waits, then
    scores everything."""

    def test_regression_positions_read_waits_for_a_busy_redis(self):
        s = self.stack
        r = s.redis()
        r.cmd("CONFIG", "SET", "busy-reply-threshold", "100")
        events = make_feed(300, seed=31, subjects=20)
        model = model_of(events)
        produce_to(s.bootstrap, events, topic="it.busy")
        # the group's join is held until Redis is busy, so the positions read meets it
        s.fault("errors", "FindCoordinator", 1000, "COORDINATOR_NOT_AVAILABLE")
        scorer = s.program("caresignal-score", config_extra={
            "group.id": "score-busy", "state.namespace": "busy", "topic.events": "it.busy",
            "topic.alerts": "it.busy.alerts", "topic.deadletter": "it.busy.dlq"})
        wait_until(lambda: any(l.get("msg") == "score started" for l in scorer.logs()),
                   60, what="the scorer to load its library")
        busy = subprocess.Popen(
            ["redis-cli", "-p", str(s.redis_port), "EVAL",
             "local t = redis.call('TIME') local e = t[1] + 5 "
             "while tonumber(redis.call('TIME')[1]) < e do end return 1", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: b"BUSY" in subprocess.run(
                ["redis-cli", "-p", str(s.redis_port), "PING"], capture_output=True).stdout,
                10, what="Redis to answer BUSY")
            s.fault("clear", "FindCoordinator")
            wait_until(lambda: busy.poll() is not None, 30, what="the script to end")
        finally:
            busy.kill()
            busy.wait()
        wait_until(lambda: applied(s, "busy", model) == total(model), 90, interval=0.5,
                   what="every event applied once Redis answers")
        self.assertEqual(scorer.stop(), 0)
        self.assertFalse([l for l in scorer.logs() if l.get("level") == "fatal"])
        self.assert_state_matches_model(model, ns="busy")
        r.close()


class OffsetResetKeepsTheResumeRule(Checks):
    """An offset reset on one partition re-assigned the other partitions at their committed
    offset, not at the lower of the Redis position and the committed offset: after a Redis
    restore, a gap on another partition was never re-applied. Partition 1 is led by a slow
    broker (2 s round trips), so partition 0's reset is handled before partition 1 has
    returned anything."""
    brokers = 2
    partitions = {"intel.events": 8, "intel.alerts": 4, "it.reset": 2}

    def test_regression_offset_reset_keeps_the_resume_rule(self):
        s = self.stack
        s.fault("leader", "it.reset", 0, 1)
        s.fault("leader", "it.reset", 1, 2)
        # partition 0: 7 values of 1 MiB; the dev broker keeps the last 5 MiB, so offsets
        # 0 and 1 are gone and a start at 0 is out of range (an offset reset)
        mib = b"\xff" * (1 << 20)
        kcat_produce(s.bootstrap, "it.reset", [(b"big", mib)] * 7, partition=0,
                     extra=["-X", "message.max.bytes=2000000"])
        events = [e for e in make_feed(40, seed=29, subjects=4)][:10]
        produce_to(s.bootstrap, events, topic="it.reset", partition=1)
        model = model_of(events)
        for part, off in ((0, 0), (1, 10)):
            p = subprocess.run([bin_path("cs-commit"), s.bootstrap, "score-reset", "it.reset",
                                str(part), str(off)], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
        r = s.redis()
        # Redis was restored from before partition 1's events were applied: position 0
        r.cmd("SET", "reset:pos:it.reset:0", "0")
        r.cmd("SET", "reset:pos:it.reset:1", "0")
        s.fault("rtt", 2, 2000)
        try:
            scorer = s.program("caresignal-score", config_extra={
                "group.id": "score-reset", "state.namespace": "reset", "topic.events": "it.reset",
                "topic.alerts": "it.reset.alerts", "topic.deadletter": "it.reset.dlq"})
            wait_until(lambda: any("OFFSET RESET" in l.get("msg", "") for l in scorer.logs()),
                       60, what="the offset reset on partition 0")
            wait_until(lambda: applied(s, "reset", model) == total(model), 90, interval=0.5,
                       what="partition 1's gap re-applied")
        finally:
            s.fault("rtt", 2, 0)
        self.assertEqual(scorer.stop(), 0)
        reset = [l for l in scorer.logs() if "OFFSET RESET" in l.get("msg", "")][0]
        self.assertEqual((reset["partition"], reset["requested_offset"]), (0, 0))
        self.assertGreater(reset["skipped"], 0)
        self.assert_state_matches_model(model, ns="reset")
        r.close()


if __name__ == "__main__":
    cstest.main()
