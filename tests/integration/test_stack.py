#!/usr/bin/env python3
"""The dev stack: devbroker and redis-server start on free ports, kcat produces and
consumes through the devbroker (plain and group consumer), a Redis function runs
through FCALL, programs reject bad configuration with exit 2, and stopping the stack
leaves no process behind."""
import os
import subprocess
import time

import cstest
from cstest import kcat_consume, kcat_metadata, kcat_produce, run


class DevStack(cstest.StackTest):
    brokers = 3
    partitions = {"intel.events": 6, "it.extra": 2}

    def test_topics_precreated_with_their_partition_counts(self):
        meta = kcat_metadata(self.stack.bootstrap)
        self.assertEqual(meta["intel.raw.nhse"], 8)
        self.assertEqual(meta["intel.raw.ccg"], 8)
        self.assertEqual(meta["intel.raw.ofsted-send"], 4)
        self.assertEqual(meta["intel.events"], 6)  # overridden per topic
        self.assertEqual(meta["intel.alerts"], 4)
        self.assertEqual(meta["intel.deadletter"], 4)
        self.assertEqual(meta["it.extra"], 2)
        self.assertEqual(len(self.stack.bootstrap.split(",")), 3)

    def test_produce_and_consume_plain(self):
        records = [(b"k%d" % i, b"value \x00\x01\xff %d\nline" % i) for i in range(50)]
        kcat_produce(self.stack.bootstrap, "it.extra", records, partition=1)
        got = kcat_consume(self.stack.bootstrap, "it.extra", partition=1)
        self.assertEqual([(r.key, r.value) for r in got], records)
        self.assertEqual([r.offset for r in got], list(range(50)))

    def test_group_consumer(self):
        records = [(b"g%d" % i, b"group message %d" % i) for i in range(40)]
        kcat_produce(self.stack.bootstrap, "intel.alerts", records)
        got = kcat_consume(self.stack.bootstrap, "intel.alerts", group="it-group",
                           count=40, timeout=90)
        self.assertEqual(sorted((r.key, r.value) for r in got), sorted(records))
        # the group committed: a second run of the same group reads nothing new
        kcat_produce(self.stack.bootstrap, "intel.alerts", [(b"late", b"late")])
        got = kcat_consume(self.stack.bootstrap, "intel.alerts", group="it-group",
                           count=1, timeout=90)
        self.assertEqual([(r.key, r.value) for r in got], [(b"late", b"late")])

    def test_fcall(self):
        r = self.stack.redis()
        code = ("#!lua name=itlib\n"
                "redis.register_function('it_add', function(keys, args)\n"
                "  return redis.call('INCRBY', keys[1], args[1]) end)\n")
        self.assertEqual(r.cmd("FUNCTION", "LOAD", "REPLACE", code), b"itlib")
        self.assertEqual(r.cmd("FCALL", "it_add", 1, "{it}:n", 41), 41)
        self.assertEqual(r.cmd("FCALL", "it_add", 1, "{it}:n", 1), 42)
        # AOF is on, as in production
        self.assertEqual(r.cmd("CONFIG", "GET", "appendonly")[1], b"yes")


class Usage(cstest.unittest.TestCase):
    def test_help_and_version(self):
        p = run("caresignal-devbroker", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"--brokers N", p.stdout)
        self.assertIn(b"not Apache Kafka", p.stdout)
        p = run("caresignal-devbroker", "--version")
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b"caresignal-devbroker "))

    def assert_one_line_exit_2(self, p, needle):
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.decode().strip().split("\n")
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn(needle, lines[0])

    def test_bad_configuration_exits_2_naming_the_key(self):
        self.assert_one_line_exit_2(run("caresignal-devbroker", "--set", "topic.evnts=x"),
                                    "'topic.evnts'")
        self.assert_one_line_exit_2(run("caresignal-devbroker", "--set", "log.level=loud"),
                                    "'log.level'")
        self.assert_one_line_exit_2(run("caresignal-devbroker", "--brokers", "zero"),
                                    "--brokers")
        self.assert_one_line_exit_2(run("caresignal-devbroker", "--frobnicate"),
                                    "--frobnicate")
        self.assert_one_line_exit_2(run("caresignal-devbroker", "--config", "/nonexistent.properties"),
                                    "/nonexistent.properties")
        path = cstest.tempfile.mktemp()
        with open(path, "w") as f:
            f.write("# dev\nkafka.bootstrap.servers=127.0.0.1:1\nkafka.not.a.property=1\n")
        try:
            self.assert_one_line_exit_2(run("caresignal-devbroker", "--config", path),
                                        "'kafka.not.a.property'")
        finally:
            os.unlink(path)


class StopLeavesNothing(cstest.unittest.TestCase):
    def test_stop_and_watchdog(self):
        s = cstest.Stack()
        pids = s.pids()
        self.assertTrue(all(cstest._alive(p) for p in pids))
        s.stop()
        cstest.wait_until(lambda: not any(cstest._alive(p) for p in pids), 10,
                          what="stack processes to exit")
        # an owner that dies without stopping its stack: the watchdog cleans up
        d = cstest.tempfile.mkdtemp(prefix="cs-it-")
        owner = subprocess.Popen(["sleep", "60"])
        subprocess.run([os.path.join(cstest.SOURCE, "deploy/dev/stack.sh"), "start", "--dir", d,
                        "--build", cstest.BUILD, "--owner", str(owner.pid), "--quiet"], check=True)
        env = dict(l.strip().split("=", 1) for l in open(os.path.join(d, "stack.env")))
        pids = [int(env["CS_REDIS_PID"]), int(env["CS_BROKER_PID"])]
        self.assertTrue(all(cstest._alive(p) for p in pids))
        owner.kill()
        owner.wait()
        cstest.wait_until(lambda: not any(cstest._alive(p) for p in pids), 20,
                          what="the watchdog to stop the stack")


if __name__ == "__main__":
    cstest.main()
