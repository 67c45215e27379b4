#!/usr/bin/env python3
"""The dev stack: devbroker and redis-server start on free ports, kcat produces and
consumes through the devbroker (plain and group consumer), a Redis function runs
through FCALL, programs reject bad configuration with exit 2, and stopping the stack
leaves no process behind. With --redis-cluster: 3 masters + 3 replicas serving every
slot, ClusterRedis routing by slot, FCALL on every master, a reshard, a master's
fail-over and its return as a replica, and no process left by a stop or a failed or
killed start."""
import os
import shutil
import socket
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


STACK_SH = os.path.join(cstest.SOURCE, "deploy/dev/stack.sh")


def _node_ports(d):
    """The ports of the cluster nodes stack.sh started in \\p d (their data directories)."""
    return sorted(int(n[len("redis-"):]) for n in os.listdir(d)
                  if n.startswith("redis-") and n[len("redis-"):].isdigit())


def _pid_files(d):
    return [n for n in os.listdir(d) if n.endswith(".pid")]


def _refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


class DevStackCluster(cstest.StackTest):
    """stack.sh start --redis-cluster: 3 masters + 3 replicas with every slot served, the
    properties and environment that name them, ClusterRedis routing by slot (MOVED and
    ASK followed), Redis functions run with FCALL on every master, and a reshard."""
    redis_cluster = True

    def cluster(self):
        r = self.stack.redis()
        self.addCleanup(r.close)
        return r

    def masters_by_slot(self, r):
        """{master port: the first slot it serves}."""
        out = {}
        for start, _, master, _ in r.slots():
            out.setdefault(master, start)
        return out

    def test_three_masters_three_replicas_every_slot_assigned(self):
        r = self.cluster()
        ports = set(self.stack.redis_ports)
        self.assertEqual(len(ports), 6)
        masters = [p for p, _ in r.masters()]
        self.assertEqual(len(masters), 3)
        replicas = []
        for port in masters:
            reps = [p for p, _ in r.replicas_of(port)]
            self.assertEqual(len(reps), 1, (port, reps))
            replicas += reps
        self.assertEqual(set(masters) | set(replicas), ports)
        # CLUSTER SLOTS: 0..16383 without a gap, each range on a master and its replica
        expect = 0
        for start, end, master, reps in r.slots():
            self.assertEqual(start, expect)
            expect = end + 1
            self.assertIn(master, masters)
            self.assertEqual(reps, [p for p, _ in r.replicas_of(master)])
        self.assertEqual(expect, cstest.CLUSTER_SLOTS)
        for port in ports:
            info = cstest._parse_info(r.node_cmd(port, "CLUSTER", "INFO"))
            self.assertEqual(info["cluster_state"], "ok", port)
            self.assertEqual(info["cluster_slots_assigned"], "16384", port)
            self.assertEqual(info["cluster_slots_ok"], "16384", port)
            self.assertEqual(info["cluster_known_nodes"], "6", port)
            self.assertEqual(r.node_cmd(port, "CONFIG", "GET", "appendonly")[1], b"yes")
            self.assertEqual(r.node_cmd(port, "CONFIG", "GET", "cluster-node-timeout")[1],
                             b"2000")
        for port in replicas:
            repl = cstest._parse_info(r.node_cmd(port, "INFO", "replication"))
            self.assertEqual(repl["role"], "slave")
            self.assertEqual(repl["master_link_status"], "up")
        r.wait_ok(5)

    def test_properties_env_and_status(self):
        env, d = self.stack.env, self.stack.dir
        nodes = ",".join("127.0.0.1:%d" % p for p in self.stack.redis_ports)
        self.assertEqual(env["CS_REDIS_CLUSTER_NODES"], nodes)
        self.assertEqual(env["CS_REDIS_HOST"], "127.0.0.1")
        self.assertEqual(env["CS_REDIS_PORT"], str(self.stack.redis_ports[0]))
        with open(os.path.join(d, "redis-%d.pid" % self.stack.redis_ports[0])) as f:
            self.assertEqual(env["CS_REDIS_PID"], f.read().strip())
        with open(self.stack.config) as f:
            props = f.read()
        self.assertIn("\nredis.cluster.nodes=%s\n" % nodes, props)
        self.assertNotIn("redis.host", props)
        self.assertNotIn("redis.port", props)
        self.assertIn("\nkafka.bootstrap.servers=%s\n" % self.stack.bootstrap, props)
        # a shell can source stack.env
        p = subprocess.run(["bash", "-c", '. "$1" && echo "$CS_REDIS_CLUSTER_PORTS"', "-",
                            os.path.join(d, "stack.env")], capture_output=True, check=True)
        self.assertEqual(p.stdout.split(), [str(x).encode() for x in self.stack.redis_ports])
        self.assertEqual(_node_ports(d), sorted(self.stack.redis_ports))
        p = subprocess.run([STACK_SH, "status", "--dir", d], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        # the one-redis-server helpers refuse, naming the node methods
        for f in (self.stack.kill_redis, self.stack.start_redis, self.stack.restart_redis):
            with self.assertRaisesRegex(RuntimeError, "kill_node"):
                f()
        self.assertEqual(len(self.stack.pids()), 7)
        self.assertTrue(all(cstest._alive(p) for p in self.stack.pids()))

    def test_slot_is_the_servers_keyslot(self):
        self.assertEqual(cstest.key_slot("123456789"), 0x31C3)
        self.assertEqual(cstest.key_slot(b"123456789"), 0x31C3)
        self.assertEqual(cstest.key_slot("{user1000}.following"), cstest.key_slot("user1000"))
        self.assertEqual(cstest.key_slot("foo{}{bar}"), cstest.crc16(b"foo{}{bar}") % 16384)
        self.assertEqual(cstest.key_slot("foo{{bar}}zap"), cstest.key_slot("{bar"))
        self.assertEqual(cstest.key_slot("foo{bar}{zap}"), cstest.key_slot("bar"))
        r = self.cluster()
        rng = cstest.random.Random(7)
        keys = [b"", b"{", b"}", b"{}", b"a{b", b"}{x}", "caf\u00e9:{s\u00e9}".encode()]
        keys += [bytes(rng.choice(b"ab{}:\x00\xff") for _ in range(rng.randrange(1, 12)))
                 for _ in range(300)]
        for k in keys:
            self.assertEqual(r.slot(k), r.node_cmd(r.ports[0], "CLUSTER", "KEYSLOT", k), k)

    def test_set_get_lands_on_the_slot_master(self):
        r = self.cluster()
        first = self.masters_by_slot(r)
        self.assertEqual(len(first), 3)
        for master, slot in first.items():
            key = "it:route:%s" % cstest.slot_tag(slot)
            self.assertEqual(r.cmd("SET", key, "on %d" % master), "OK")
            self.assertEqual(r.cmd("GET", key), b"on %d" % master)
            self.assertEqual(r.master_of(key), master)
            self.assertEqual(r.node_cmd(master, "GET", key), b"on %d" % master)
            for other in first:
                if other != master:
                    with self.assertRaisesRegex(cstest.RedisError,
                                                "^MOVED %d 127.0.0.1:%d$" % (slot, master)):
                        r.node_cmd(other, "GET", key)
        # keys without a hash tag spread over the masters, each on its slot's
        keys = ["it:route:plain:%d" % i for i in range(300)]
        for k in keys:
            self.assertEqual(r.cmd("SET", k, k), "OK")
        owners = {}
        for k in keys:
            owners.setdefault(r.master_of(k), []).append(k)
            self.assertEqual(r.node_cmd(r.master_of(k), "GET", k), k.encode())
        self.assertEqual(set(owners), set(first))
        self.assertEqual(r.pipeline([("GET", k) for k in keys[:5]]),
                         [k.encode() for k in keys[:5]])
        self.assertEqual(r.scan_keys("it:route:plain:*"), sorted(keys))
        self.assertEqual(r.cmd("PING"), "PONG")  # keyless: to a master

    def test_moved_and_ask_are_followed(self):
        r = self.cluster()
        first = self.masters_by_slot(r)
        (a, slot), (b, _) = sorted(first.items())[:2]
        key = "it:redirect:%s" % cstest.slot_tag(slot)
        r.cmd("SET", key, "x")
        # a stale slot map: MOVED is followed and corrects it
        r.slot_map[slot] = b
        self.assertEqual(r.cmd("GET", key), b"x")
        self.assertEqual(r.slot_map[slot], a)
        # the slot migrating from a to b: a key a does not hold is asked of b
        ids = dict(r.masters())
        r.node_cmd(b, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[a])
        r.node_cmd(a, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[b])
        try:
            new = "it:redirect:%s:new" % cstest.slot_tag(slot)
            with self.assertRaisesRegex(cstest.RedisError, "^ASK %d " % slot):
                r.node_cmd(a, "SET", new, "y")
            self.assertEqual(r.cmd("SET", new, "y"), "OK")  # on b, with ASKING
            self.assertEqual(r.node(b).pipeline([("ASKING",), ("GET", new)]), ["OK", b"y"])
            with self.assertRaisesRegex(cstest.RedisError, "^ASK %d " % slot):
                r.node_cmd(a, "GET", new)  # not on a
            self.assertEqual(r.cmd("GET", new), b"y")
            self.assertEqual(r.cmd("GET", key), b"x")  # still on a
            self.assertEqual(r.cmd("DEL", new), 1)
        finally:
            r.node_cmd(a, "CLUSTER", "SETSLOT", slot, "STABLE")
            r.node_cmd(b, "CLUSTER", "SETSLOT", slot, "STABLE")
        r.wait_ok(10)

    def test_fcall_on_each_master(self):
        r = self.cluster()
        code = ("#!lua name=itlib\n"
                "redis.register_function('it_add', function(keys, args)\n"
                "  return redis.call('INCRBY', keys[1], args[1]) end)\n"
                "redis.register_function('it_pair', function(keys, args)\n"
                "  redis.call('SET', keys[1], args[1])\n"
                "  return redis.call('INCRBY', keys[2], 1) end)\n")
        loaded = r.all_masters("FUNCTION", "LOAD", "REPLACE", code)
        self.assertEqual(sorted(loaded), sorted(p for p, _ in r.masters()))
        self.assertEqual(set(loaded.values()), {b"itlib"})
        for master, slot in self.masters_by_slot(r).items():
            tag = cstest.slot_tag(slot)
            key = "it:fn:%s:n" % tag
            self.assertEqual(r.cmd("FCALL", "it_add", 1, key, 41), 41)
            self.assertEqual(r.cmd("FCALL", "it_add", 1, key, 1), 42)
            self.assertEqual(r.node_cmd(master, "GET", key), b"42")
            # two keys of one hash tag: one slot, one call
            self.assertEqual(r.cmd("FCALL", "it_pair", 2, "it:fn:%s:a" % tag,
                                   "it:fn:%s:b" % tag, "v"), 1)
            self.assertEqual(r.node_cmd(master, "GET", "it:fn:%s:a" % tag), b"v")
        with self.assertRaisesRegex(cstest.RedisError, "CROSSSLOT"):
            r.cmd("FCALL", "it_pair", 2, "it:fn:{x}:a", "it:fn:{y}:b", "v")
        # the library reached the replicas too (a fail-over keeps it)
        for master, _ in r.masters():
            for replica, _ in r.replicas_of(master):
                cstest.wait_until(lambda: r.node_cmd(replica, "FUNCTION", "LIST",
                                                     "LIBRARYNAME", "itlib"), 10,
                                  what="the library on replica %d" % replica)

    def test_reshard_moves_slots_with_their_keys(self):
        r = self.cluster()
        # a key in every slot, written on its master directly
        for start, end, master, _ in r.slots():
            replies = r.node(master).pipeline(
                [("SET", "it:rs:%s" % cstest.slot_tag(s), s) for s in range(start, end + 1)])
            self.assertEqual(set(replies), {"OK"})

        def served(port):
            return {s for start, end, m, _ in r.slots() if m == port
                    for s in range(start, end + 1)}
        (a, _), (b, _) = r.masters()[:2]
        before_a, before_b = served(a), served(b)
        stale = self.cluster()
        stale.refresh()  # a slot map from before the reshard
        res = r.reshard(a, b, 40, timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout[-3000:] + res.stderr[-3000:])
        moved = before_a - served(a)
        self.assertEqual(len(moved), 40)
        self.assertEqual(served(b), before_b | moved)
        for s in sorted(moved):
            key = "it:rs:%s" % cstest.slot_tag(s)
            self.assertEqual(r.node_cmd(b, "GET", key), str(s).encode())
            self.assertEqual(stale.cmd("GET", key), str(s).encode())  # MOVED followed
        r.wait_ok(10)
        # and back, without waiting, reading all the while
        p = r.reshard_async(b, a, 40)
        rng = cstest.random.Random(3)
        reads = 0
        while p.poll() is None or reads < 200:
            s = rng.choice(sorted(moved)) if reads % 2 else rng.randrange(cstest.CLUSTER_SLOTS)
            key = "it:rs:%s" % cstest.slot_tag(s)
            self.assertEqual(stale.cmd("GET", key), str(s).encode())
            reads += 1
        with open(p.log_path, "rb") as f:
            self.assertEqual(p.wait(120), 0, f.read()[-3000:])
        self.assertEqual(len(served(a)), len(before_a))
        r.wait_ok(10)
        self.assertEqual(len(r.scan_keys("it:rs:*")), cstest.CLUSTER_SLOTS)


class ClusterFailover(cstest.StackTest):
    """A master killed: its replica takes over, the data it had replicated intact, and the
    old master started again rejoins as the new master's replica."""
    redis_cluster = True

    def test_kill_master_fail_over_and_rejoin(self):
        r = self.stack.redis()
        self.addCleanup(r.close)
        (old, old_id), others = r.masters()[0], r.masters()[1:]
        [(replica, _)] = r.replicas_of(old)
        slot = next(s for s, _, m, _ in r.slots() if m == old)
        key = "it:fo:%s" % cstest.slot_tag(slot)
        self.assertEqual(r.cmd("SET", key, "kept"), "OK")
        self.assertEqual(r.node_cmd(old, "WAIT", 1, 5000), 1)  # on the replica too
        r.kill_node(old)
        self.assertFalse(r.node_alive(old))
        self.assertTrue(_refuses(old))
        t0 = time.monotonic()
        self.assertEqual(r.wait_for_failover(old, 30), replica)
        took = time.monotonic() - t0
        self.assertLess(took, 20)
        self.assertEqual(r.cmd("GET", key), b"kept")  # routed to the new master
        self.assertEqual(r.master_of(key), replica)
        self.assertEqual(sorted(p for p, _ in r.masters()),
                         sorted([replica] + [p for p, _ in others]))
        self.assertEqual(r.cmd("SET", key, "after"), "OK")
        self.assertEqual(len(self.stack.pids()), 6)  # its pid file is gone
        # the old master again, from its nodes.conf and AOF: a replica of the new one
        pid = r.start_node(old)
        self.assertTrue(r.node_alive(old))
        self.assertIn(pid, self.stack.pids())
        r.wait_ok(30)
        self.assertEqual(r.replicas_of(replica), [(old, old_id)])
        repl = cstest._parse_info(r.node_cmd(old, "INFO", "replication"))
        self.assertEqual((repl["role"], repl["master_port"], repl["master_link_status"]),
                         ("slave", str(replica), "up"))
        self.assertEqual(r.node(old).pipeline([("READONLY",), ("GET", key)]),
                         ["OK", b"after"])
        self.assertEqual(len(r.masters()), 3)
        p = subprocess.run([STACK_SH, "status", "--dir", self.stack.dir], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)


class ClusterStartFailure(cstest.unittest.TestCase):
    """A cluster start that fails, or is killed half-way, leaves no process behind."""

    def test_failed_start_stops_the_nodes(self):
        d = cstest.tempfile.mkdtemp(prefix="cs-it-")
        self.addCleanup(shutil.rmtree, d, True)
        p = subprocess.run([STACK_SH, "start", "--dir", d, "--build", "/nonexistent",
                            "--redis-cluster", "--quiet"], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"caresignal-devbroker not found", p.stderr)
        ports = _node_ports(d)
        self.assertEqual(len(ports), 6)  # the cluster was up when the broker failed
        self.assertTrue(all(_refuses(port) for port in ports))
        self.assertEqual(_pid_files(d), [])

    def test_killed_start_stops_what_it_started(self):
        d = cstest.tempfile.mkdtemp(prefix="cs-it-")
        self.addCleanup(shutil.rmtree, d, True)
        p = subprocess.Popen([STACK_SH, "start", "--dir", d, "--build", cstest.BUILD,
                              "--redis-cluster", "--quiet"], stderr=subprocess.PIPE)
        try:
            cstest.wait_until(lambda: len(_pid_files(d)) >= 3 or p.poll() is not None, 60,
                              0.01, what="3 nodes started")
            p.send_signal(cstest.signal.SIGTERM)
            self.assertEqual(p.wait(60), 143, p.stderr.read())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        ports = _node_ports(d)
        self.assertGreaterEqual(len(ports), 3)
        cstest.wait_until(lambda: all(_refuses(port) for port in ports), 10,
                          what="the nodes to be stopped")
        self.assertEqual(_pid_files(d), [])

    def test_options(self):
        d = cstest.tempfile.mkdtemp(prefix="cs-it-")
        self.addCleanup(shutil.rmtree, d, True)
        for args, needle in ((["--cluster-node-timeout", "500"], b"needs --redis-cluster"),
                             (["--redis-cluster", "--cluster-node-timeout", "2s"],
                              b"milliseconds")):
            p = subprocess.run([STACK_SH, "start", "--dir", d] + args, capture_output=True)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(needle, p.stderr)
        self.assertEqual(os.listdir(d), [])


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

    def test_cluster_stop_and_watchdog(self):
        s = cstest.Stack(redis_cluster=True)
        pids = s.pids()
        self.assertEqual(len(pids), 7)  # 6 nodes and the devbroker
        self.assertTrue(all(cstest._alive(p) for p in pids))
        s.stop()
        cstest.wait_until(lambda: not any(cstest._alive(p) for p in pids), 10,
                          what="stack processes to exit")
        self.assertEqual(_pid_files(s.dir), [])
        self.assertTrue(all(_refuses(p) for p in s.redis_ports))
        # an owner that dies without stopping its stack: the watchdog stops every node
        d = cstest.tempfile.mkdtemp(prefix="cs-it-")
        owner = subprocess.Popen(["sleep", "60"])
        subprocess.run([STACK_SH, "start", "--dir", d, "--build", cstest.BUILD, "--owner",
                        str(owner.pid), "--redis-cluster", "--quiet"], check=True)
        ports = _node_ports(d)
        pids = []
        for name in ["broker.pid"] + ["redis-%d.pid" % p for p in ports]:
            with open(os.path.join(d, name)) as f:
                pids.append(int(f.read()))
        self.assertEqual(len(pids), 7)
        self.assertTrue(all(cstest._alive(p) for p in pids))
        owner.kill()
        owner.wait()
        cstest.wait_until(lambda: not any(cstest._alive(p) for p in pids), 20,
                          what="the watchdog to stop the stack")
        self.assertTrue(all(_refuses(p) for p in ports))


if __name__ == "__main__":
    cstest.main()
