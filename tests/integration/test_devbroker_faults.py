#!/usr/bin/env python3
"""Fault injection into a live dev stack through the devbroker's control socket: each
command has its effect on real clients (kcat): a broker down holds a produce until it is
up, rtt slows a round trip, injected Produce and JoinGroup errors are retried through,
broker-errors delay a request, leader / topic-error / coordinator show in what clients
see; status reflects the state, bad commands are answered "error ...", every fault is
logged, the socket is 0600, stack.sh fault drives it, and stopping the stack leaves no
process and no socket behind. Timings are only ever asserted as lower bounds."""
import json
import os
import socket
import stat
import subprocess
import time

import cstest
from cstest import run, wait_until

TOPIC = "it.faults"
STACK_SH = os.path.join(cstest.SOURCE, "deploy/dev/stack.sh")
# Short reconnect backoff: a client retries a broker soon after it is back up.
KCAT_X = ["-X", "reconnect.backoff.ms=50", "-X", "reconnect.backoff.max.ms=200",
          "-X", "fetch.wait.max.ms=5"]


def kcat_producer(bootstrap, partition, debug=None):
    cmd = ["kcat", "-b", bootstrap, "-P", "-t", TOPIC, "-p", str(partition)] + KCAT_X
    if debug:
        cmd += ["-d", debug]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def produce(bootstrap, partition, value, debug=None, timeout=60):
    """One message with kcat; @returns (exit status, stderr text, seconds taken)."""
    t0 = time.monotonic()
    p = kcat_producer(bootstrap, partition, debug)
    _, err = p.communicate(value + b"\n", timeout=timeout)
    return p.returncode, err.decode(errors="replace"), time.monotonic() - t0


def values(bootstrap, partition):
    out = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", TOPIC, "-p", str(partition),
                          "-o", "beginning", "-e", "-q", "-f", "%s\n"] + KCAT_X,
                         capture_output=True, check=True, timeout=60).stdout
    return out.splitlines()


def metadata(bootstrap):
    out = subprocess.run(["kcat", "-b", bootstrap, "-L", "-J", "-t", TOPIC],
                         capture_output=True, check=True, timeout=60).stdout
    return json.loads(out)["topics"][0]


def group_consumer(bootstrap, group, log_path):
    """kcat -G reading TOPIC to its end, with the group protocol logged (cgrp)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            ["kcat", "-b", bootstrap, "-G", group, "-e", "-d", "cgrp", "-f", "%s\n",
             "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500",
             "-X", "auto.offset.reset=earliest"] + KCAT_X + [TOPIC],
            stdout=subprocess.PIPE, stderr=log)


def text_of(path):
    with open(path, errors="replace") as f:
        return f.read()


def send(control, *words):
    """caresignal-devbroker --send as a user runs it: (exit status, stdout, stderr)."""
    p = run("caresignal-devbroker", "--send", control, *[str(w) for w in words])
    return p.returncode, p.stdout.decode().strip(), p.stderr.decode().strip()


class Faults(cstest.StackTest):
    brokers = 3
    partitions = {TOPIC: 3}

    def status(self):
        reply = self.stack.fault("status")
        self.assertTrue(reply.startswith("ok {"), reply)
        return json.loads(reply[3:])

    def injected(self, command):
        return [l for l in self.stack.broker_logs()
                if l.get("msg") == "fault injected" and l.get("command") == command]

    def test_broker_down_holds_a_produce_until_up(self):
        b = self.stack.bootstrap
        self.assertIn("it.faults [0] leader is broker 2",
                      self.stack.fault("leader", TOPIC, 0, 2))
        self.assertEqual(metadata(b)["partitions"][0]["leader"], 2)
        self.assertEqual(self.stack.fault("down", 2), "ok broker 2 down")
        self.addCleanup(self.stack.fault, "up", "all")
        self.assertEqual(self.status()["down"], [2])
        p = kcat_producer(b, 0)
        p.stdin.write(b"sent while broker 2 was down\n")
        p.stdin.close()
        time.sleep(3)
        self.assertIsNone(p.poll(), "the produce completed with its leader down")
        self.assertEqual(self.stack.fault("up", 2), "ok broker 2 up")
        self.assertEqual(p.wait(60), 0, p.stderr.read())
        p.stderr.close()
        self.assertIn(b"sent while broker 2 was down", values(b, 0))
        self.assertEqual(self.status()["down"], [])
        self.assertEqual(len(self.injected("down 2")), 1)
        self.assertEqual(len(self.injected("up 2")), 1)

    def test_rtt_slows_a_round_trip(self):
        b = self.stack.bootstrap

        def metadata_seconds():
            t0 = time.monotonic()
            metadata(b)
            return time.monotonic() - t0
        before = min(metadata_seconds() for _ in range(3))
        self.assertEqual(self.stack.fault("rtt", "all", 300), "ok all 3 brokers rtt 300 ms")
        self.addCleanup(self.stack.fault, "rtt", "all", 0)
        self.assertEqual([x["rtt_ms"] for x in self.status()["brokers"]], [300, 300, 300])
        slow = metadata_seconds()
        self.assertGreaterEqual(slow - before, 0.25, (before, slow))
        self.assertEqual(self.stack.fault("rtt", "all", 0), "ok all 3 brokers rtt 0 ms")
        self.assertEqual([x["rtt_ms"] for x in self.status()["brokers"]], [0, 0, 0])

    def test_produce_errors_are_retried_through(self):
        b = self.stack.bootstrap
        # a leader never given broker-errors for Produce: one that was ignores 'errors'
        # for Produce from then on (librdkafka 2.0.2's mock, see the broker-errors test)
        self.stack.fault("leader", TOPIC, 2, 3)
        cmd = ("errors", "Produce", 3, "NOT_LEADER_FOR_PARTITION")
        self.assertTrue(self.stack.fault(*cmd).startswith(
            "ok the next 3 Produce requests fail with NOT_LEADER_FOR_PARTITION"))
        rc, err, _ = produce(b, 2, b"retried past three errors", debug="msg")
        self.assertEqual(rc, 0, err)
        # each of the three requests failed, the fourth went through
        self.assertEqual(err.count("Not leader for partition"), 3, err)
        self.assertIn(b"retried past three errors", values(b, 2))
        lines = self.injected("errors Produce 3 NOT_LEADER_FOR_PARTITION")
        self.assertEqual(len(lines), 1, self.stack.broker_logs())
        self.assertEqual(lines[0]["fault"], "errors")
        self.assertEqual(lines[0]["level"], "info")
        self.assertRegex(lines[0]["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_joingroup_errors_and_the_consumer_still_joins(self):
        b = self.stack.bootstrap
        rc, err, _ = produce(b, 2, b"for the group")
        self.assertEqual(rc, 0, err)
        self.assertIn("JoinGroup",
                      self.stack.fault("errors", "JoinGroup", 2, "COORDINATOR_NOT_AVAILABLE"))
        log = os.path.join(self.stack.dir, "kcat-join.log")
        p = group_consumer(b, "it-faults-join", log)
        out, _ = p.communicate(timeout=90)
        text = text_of(log)
        self.assertEqual(p.returncode, 0, text[-2000:])
        self.assertIn(b"for the group", out.splitlines())
        self.assertEqual(text.count("JoinGroup error: Broker: Coordinator not available"), 2,
                         text[-4000:])
        self.assertEqual(len(self.injected("errors JoinGroup 2 COORDINATOR_NOT_AVAILABLE")), 1)

    def test_coordinator_down_holds_the_group(self):
        b = self.stack.bootstrap
        rc, err, _ = produce(b, 0, b"for the coordinated group")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.stack.fault("coordinator", "group", "it-faults-coord", 3),
                         "ok group it-faults-coord: coordinator is broker 3")
        self.stack.fault("down", 3)
        self.addCleanup(self.stack.fault, "up", "all")
        log = os.path.join(self.stack.dir, "kcat-coord.log")
        p = group_consumer(b, "it-faults-coord", log)
        wait_until(lambda: 'Group "it-faults-coord" coordinator is' in
                   text_of(log), what="the coordinator answer")
        text = text_of(log)
        self.assertRegex(text, r'Group "it-faults-coord" coordinator is \S+ id 3')
        time.sleep(2)
        self.assertIsNone(p.poll(), "the group ran with its coordinator down")
        self.stack.fault("up", 3)
        out, _ = p.communicate(timeout=90)
        self.assertEqual(p.returncode, 0, text_of(log)[-2000:])
        self.assertIn(b"for the coordinated group", out.splitlines())

    def test_broker_errors_delay_one_request(self):
        b = self.stack.bootstrap
        self.stack.fault("leader", TOPIC, 1, 1)
        _, _, before = produce(b, 1, b"undelayed")
        self.assertIn("the next 1 Produce requests to broker 1 fail with NO_ERROR after 1500 ms",
                      self.stack.fault("broker-errors", 1, "Produce", 1, "NO_ERROR", 1500))
        self.assertEqual(self.status()["brokers"][0]["pending_errors"], {"Produce": 1})
        rc, err, slow = produce(b, 1, b"delayed 1.5 s")
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(slow - before, 1.4, (before, slow))
        self.assertEqual(self.status()["brokers"][0]["pending_errors"], {})
        self.assertIn(b"delayed 1.5 s", values(b, 1))
        # the mock's trap: broker 1 now answers Produce from its own (empty) queue only
        self.assertEqual(self.status()["brokers"][0]["ignores_errors_for"], ["Produce"])
        self.assertIn("except those to broker 1",
                      self.stack.fault("errors", "Produce", 1, "NOT_LEADER_FOR_PARTITION"))
        self.stack.fault("clear", "Produce")

    def test_clear_drops_queued_errors(self):
        b = self.stack.bootstrap
        self.stack.fault("errors", "Produce", 5, "MSG_SIZE_TOO_LARGE")  # not retriable
        self.assertIn("Produce errors queued by 'errors' cleared",
                      self.stack.fault("clear", "Produce"))
        rc, err, _ = produce(b, 2, b"after clear")
        self.assertEqual(rc, 0, err)
        self.assertIn(b"after clear", values(b, 2))

    def test_topic_error_in_metadata(self):
        b = self.stack.bootstrap
        self.assertEqual(self.stack.fault("topic-error", TOPIC, "LEADER_NOT_AVAILABLE"),
                         "ok Metadata answers topic it.faults with LEADER_NOT_AVAILABLE")
        self.addCleanup(self.stack.fault, "topic-error", TOPIC, "NO_ERROR")
        self.assertEqual(metadata(b).get("error"), "Broker: Leader not available")
        self.stack.fault("topic-error", TOPIC, "NO_ERROR")
        self.assertNotIn("error", metadata(b))

    def test_status_reflects_the_state(self):
        self.stack.fault("down", 1)
        self.addCleanup(self.stack.fault, "up", "all")
        self.stack.fault("rtt", 3, 40)
        self.addCleanup(self.stack.fault, "rtt", "all", 0)
        st = self.status()
        self.assertEqual(st["broker_count"], 3)
        self.assertEqual(st["down"], [1])
        self.assertEqual([(x["id"], x["down"], x["rtt_ms"]) for x in st["brokers"]],
                         [(1, True, 0), (2, False, 0), (3, False, 40)])
        self.stack.fault("up", "all")
        self.stack.fault("rtt", "all", 0)
        st = self.status()
        self.assertEqual(st["down"], [])
        self.assertEqual([x["rtt_ms"] for x in st["brokers"]], [0, 0, 0])

    def test_bad_commands_get_error(self):
        control = self.stack.env["CS_BROKER_CONTROL"]
        bad = [
            (("frobnicate",), "error unknown command 'frobnicate' (try help)"),
            (("down", 4), "error broker: expected an id from 1 to 3 or all, got '4'"),
            (("rtt", "all"), "error usage: rtt <broker-id|all> <ms>"),
            (("errors", "Produce", "many", "NOT_LEADER_FOR_PARTITION"),
             "error count: expected 1 to 10000, got 'many'"),
            (("errors", "Produce", 1, "NOT_A_REAL_ERROR"), "error unknown error name"),
            (("errors", "Metadata", 1, "LEADER_NOT_AVAILABLE"), "use topic-error"),
            (("errors", "Frobnicate", 1, "REQUEST_TIMED_OUT"), "error unknown Kafka API"),
            (("leader", TOPIC, 99, 1), "error topic it.faults has no partition 99"),
        ]
        for words, want in bad:
            rc, out, err = send(control, *words)
            self.assertEqual(rc, 1, (words, out, err))
            self.assertTrue(out.startswith("error "), (words, out))
            self.assertIn(want, out)
            with self.assertRaises(AssertionError) as cm:
                self.stack.fault(*words)
            self.assertIn(want, str(cm.exception))
        refused = [l for l in self.stack.broker_logs() if l.get("msg") == "control command refused"]
        self.assertTrue(any(l.get("command") == "frobnicate" for l in refused), refused)
        # usage of the client: exit 2 with one line
        p = run("caresignal-devbroker", "--send", control)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.decode().strip().split("\n")), 1, p.stderr)
        rc, out, err = send(os.path.join(self.stack.dir, "no.sock"), "status")
        self.assertEqual(rc, 1)
        self.assertIn("cannot connect to the control socket", err)
        self.assertIn("help", self.stack.fault("help"))

    def test_one_connection_many_commands_and_clients(self):
        control = self.stack.env["CS_BROKER_CONTROL"]
        a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        a.connect(control)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(control)
        try:
            # pipelined, a CRLF line, an empty one, an over-long one, a last without \n
            a.sendall(b"rtt 2 10\r\n\nbogus\n" + b"x" * 5000 + b"\nrtt 2 0\nstatus")
            c.sendall(b"help\n")
            c_reply = self.read_lines(c, 1)
            a.shutdown(socket.SHUT_WR)
            lines = self.read_lines(a, 6)
        finally:
            a.close()
            c.close()
        self.assertTrue(c_reply[0].startswith("ok commands: down"), c_reply)
        self.assertEqual(lines[0], "ok broker 2 rtt 10 ms")
        self.assertEqual(lines[1], "error empty command (try help)")
        self.assertEqual(lines[2], "error unknown command 'bogus' (try help)")
        self.assertEqual(lines[3], "error line longer than 1024 bytes")
        self.assertEqual(lines[4], "ok broker 2 rtt 0 ms")
        self.assertTrue(lines[5].startswith("ok {"), lines[5])

    @staticmethod
    def read_lines(sock, n):
        sock.settimeout(30)
        buf = b""
        while buf.count(b"\n") < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf.decode().split("\n")[:n]

    def test_socket_is_0600(self):
        st = os.stat(self.stack.env["CS_BROKER_CONTROL"])
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(self.stack.env["CS_BROKER_CONTROL"],
                         os.path.join(self.stack.dir, "broker.sock"))

    def test_stack_sh_fault(self):
        p = subprocess.run([STACK_SH, "fault", "--dir", self.stack.dir, "rtt", "1", "5"],
                           capture_output=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, b"ok broker 1 rtt 5 ms\n"), p.stderr)
        p = subprocess.run([STACK_SH, "fault", "--dir", self.stack.dir, "rtt", "1", "0"],
                           capture_output=True, timeout=60, cwd="/")
        self.assertEqual((p.returncode, p.stdout), (0, b"ok broker 1 rtt 0 ms\n"), p.stderr)
        p = subprocess.run([STACK_SH, "fault", "--dir", self.stack.dir, "down", "0"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stdout.startswith(b"error broker:"), p.stdout)
        p = subprocess.run([STACK_SH, "fault", "--dir", self.stack.dir],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"usage: stack.sh fault", p.stderr)
        self.assertEqual(len(self.injected("rtt 1 5")), 1)


class Usage(cstest.unittest.TestCase):
    def test_help_lists_control_and_every_command(self):
        p = run("caresignal-devbroker", "--help")
        self.assertEqual(p.returncode, 0)
        text = p.stdout.decode()
        for want in ["--control PATH", "--send PATH", "down <broker-id|all>",
                     "up <broker-id|all>", "rtt <broker-id|all> <ms>",
                     "errors <ApiName> <count> <ERROR_NAME>", "broker-errors <broker-id>",
                     "clear <ApiName>", "leader <topic> <partition>", "topic-error",
                     "coordinator", "status", "e.g. errors Produce 3 NOT_LEADER_FOR_PARTITION",
                     "exits 0 on \"ok\", 1 on \"error\""]:
            self.assertIn(want, text)

    def test_send_with_broker_options_is_bad_usage(self):
        p = run("caresignal-devbroker", "--send", "/tmp/x.sock", "--brokers", "2", "status")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--brokers does not apply", p.stderr.decode())


class StopLeavesNothing(cstest.unittest.TestCase):
    def test_stop_after_a_killed_devbroker_and_a_stale_socket(self):
        s = cstest.Stack()
        control = s.env["CS_BROKER_CONTROL"]
        pids = s.pids()
        broker = int(s.env["CS_BROKER_PID"])
        try:
            # a second devbroker must not take over a live control socket
            p = run("caresignal-devbroker", "--brokers", "1", "--control", control,
                    timeout=60)
            self.assertEqual(p.returncode, 1)
            self.assertIn("another devbroker is serving it", p.stderr.decode())
            self.assertTrue(s.fault("status").startswith("ok"))
            os.kill(broker, 9)  # leaves its socket file behind
            wait_until(lambda: not cstest._alive(broker), 10, what="the devbroker to die")
            self.assertTrue(os.path.exists(control))
            # a new devbroker replaces the stale socket
            d = cstest.tempfile.mkdtemp(prefix="cs-it-")
            again = subprocess.Popen([cstest.bin_path("caresignal-devbroker"), "--brokers",
                                      "1", "--control", control, "--bootstrap-file",
                                      os.path.join(d, "bootstrap")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_until(lambda: os.path.exists(os.path.join(d, "bootstrap")), 30,
                           what="the second devbroker")
                rc, out, _ = send(control, "status")
                self.assertEqual(rc, 0)
                self.assertIn('"broker_count":1', out)
                self.assertEqual(stat.S_IMODE(os.stat(control).st_mode), 0o600)
            finally:
                again.terminate()
                self.assertEqual(again.wait(30), 0)
            self.assertFalse(os.path.exists(control), "a stopped devbroker left its socket")
        finally:
            s.stop()
        wait_until(lambda: not any(cstest._alive(p) for p in pids), 20,
                   what="stack processes to exit")
        self.assertFalse(os.path.exists(control))
        self.assertFalse(os.path.exists(os.path.join(s.dir, "stack.env")))


if __name__ == "__main__":
    cstest.main()
