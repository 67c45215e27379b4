"""Shared helpers of caresignal's integration tests (Python 3 standard library only).

Each test starts its own private stack (redis-server + caresignal-devbroker) through
deploy/dev/stack.sh on free loopback ports, drives the real programs and the kcat
client, and stops everything at the end, on failure too (the stack's watchdog also
stops it if this process is killed). Stack(redis_cluster=True) (StackTest's
redis_cluster = True) runs a Redis Cluster of 3 masters + 3 replicas instead of the one
redis-server: Stack.redis() is then a ClusterRedis, which also kills, restarts and
reshards nodes.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE = os.environ.get("CS_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CS_BUILD_DIR") or os.path.join(SOURCE, "build")
sys.path.insert(0, os.path.join(SOURCE, "deploy", "dev"))
import prom  # noqa: E402  (deploy/dev/prom.py: free ports, Debian's Prometheus)
SANITIZED = os.path.exists(os.path.join(BUILD, "CMakeCache.txt")) and \
    "CS_SANITIZE:BOOL=ON" in open(os.path.join(BUILD, "CMakeCache.txt")).read()


def bin_path(name):
    return os.path.join(BUILD, name)


def wait_until(cond, timeout=30.0, interval=0.05, what="condition"):
    """Polls cond() until it returns a true value; returns it, or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ----------------------------------------------------------------------------- redis

class Redis:
    """A minimal RESP2 client: enough for assertions on caresignal's state."""

    def __init__(self, port, host="127.0.0.1"):
        self.addr = (host, port)
        self.sock = socket.create_connection(self.addr, timeout=10)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _read_line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read(self):
        line = self._read_line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._read_exact(n + 2)[:-2]
            return data
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise ConnectionError("bad RESP type %r" % t)

    @staticmethod
    def _encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def cmd(self, *args):
        self.sock.sendall(self._encode(args))
        return self._read()

    def pipeline(self, commands):
        self.sock.sendall(b"".join(self._encode(c) for c in commands))
        out = []
        for _ in commands:
            try:
                out.append(self._read())
            except RedisError as e:
                out.append(e)
        return out

    def hgetall(self, key):
        r = self.cmd("HGETALL", key)
        return {r[i].decode(): r[i + 1].decode() for i in range(0, len(r), 2)}

    def scan_keys(self, pattern):
        keys, cursor = [], b"0"
        while True:
            cursor, batch = self.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys.extend(k.decode() for k in batch)
            if cursor in (b"0", "0"):
                return sorted(keys)


class RedisError(Exception):
    pass


# ----------------------------------------------------------------------------- redis cluster

CLUSTER_SLOTS = 16384


def _crc16_table():
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC16 = _crc16_table()


def crc16(data):
    """CRC16/XMODEM (poly 0x1021, init 0), the checksum of Redis Cluster's key slots."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ b]
    return crc


def key_slot(key):
    """The cluster slot of \\p key (bytes or str), per the Redis Cluster spec: only the
    hash tag is hashed, the part between the first "{" and the next "}", when there is
    one and it is not empty."""
    if not isinstance(key, bytes):
        key = str(key).encode()
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key) % CLUSTER_SLOTS


_SLOT_TAGS = None


def slot_tag(slot):
    """A hash tag ("{N}") whose keys all land in cluster slot \p slot."""
    global _SLOT_TAGS
    if _SLOT_TAGS is None:
        tags, i = [None] * CLUSTER_SLOTS, 0
        left = CLUSTER_SLOTS
        while left:
            s = crc16(b"%d" % i) % CLUSTER_SLOTS
            if tags[s] is None:
                tags[s] = "{%d}" % i
                left -= 1
            i += 1
        _SLOT_TAGS = tags
    return _SLOT_TAGS[slot]


def _parse_info(text):
    """An INFO or CLUSTER INFO reply (bytes) as {field: str}."""
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.splitlines():
        k, sep, v = line.strip().partition(":")
        if sep and not k.startswith("#"):
            out[k] = v
    return out


class ClusterRedis:
    """A Redis Cluster client for the stack's cluster (Stack(redis_cluster=True)), over
    the Redis class's connections, so its replies are the same (bytes, int, str for a
    status, lists, RedisError). cmd() routes a command by the hash slot of its key and
    follows MOVED and ASK; the node methods kill and restart nodes the way stack.sh
    starts them, with DIR/redis-PORT.pid, DIR/redis-PORT/ and DIR/redis-PORT.log."""

    # args[1] is not a key: cmd() sends these to one master (all_masters() to each)
    KEYLESS = {
        "ACL", "ASKING", "AUTH", "BGREWRITEAOF", "BGSAVE", "CLIENT", "CLUSTER", "COMMAND",
        "CONFIG", "DBSIZE", "DEBUG", "DISCARD", "ECHO", "EXEC", "FLUSHALL", "FLUSHDB",
        "FUNCTION", "HELLO", "INFO", "KEYS", "LASTSAVE", "LATENCY", "MEMORY", "MULTI", "PING",
        "PUBLISH", "RANDOMKEY", "READONLY", "READWRITE", "ROLE", "SAVE", "SCAN", "SCRIPT",
        "SELECT", "SLOWLOG", "TIME", "WAIT"}
    # the keys follow a number of keys at args[2]
    NUMKEYS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}

    def __init__(self, ports, dir=None, node_timeout=2000, host="127.0.0.1", shared=None):
        self.ports = [int(p) for p in ports]
        self.host = host
        self.dir = dir
        self.node_timeout = int(node_timeout)
        self.conns = {}
        self.slot_map = None  # slot -> the port of its master, from CLUSTER SLOTS
        # what every ClusterRedis of one stack shares (Stack.redis() passes its own):
        shared = shared if shared is not None else {}
        # the processes started here (start_node, reshard_async): Stack.stop ends them
        self.spawned = shared.setdefault("spawned", [])
        # port -> (node id, [ports of its replicas]) when kill_node killed it
        self._before_kill = shared.setdefault("before_kill", {})

    # ------------------------------------------------------------------ connections

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _drop(self, port):
        c = self.conns.pop(port, None)
        if c is not None:
            try:
                c.close()
            except OSError:
                pass

    def node(self, port):
        """The (cached) Redis connection to one node."""
        c = self.conns.get(port)
        if c is None:
            c = self.conns[port] = Redis(port, self.host)
        return c

    def node_cmd(self, port, *args):
        """One command on one node. A cached connection the node closed (it was restarted)
        is replaced once."""
        cached = port in self.conns
        try:
            return self.node(port).cmd(*args)
        except (OSError, ConnectionError):
            self._drop(port)
            if not cached:
                raise
        try:
            return self.node(port).cmd(*args)
        except (OSError, ConnectionError):
            self._drop(port)
            raise

    def _live_ports(self, exclude=()):
        """The nodes whose process is alive (by their pid files), or without a stack
        directory every node; those in \\p exclude left out."""
        ports = [p for p in self.ports if p not in exclude]
        if self.dir is None:
            return ports
        return [p for p in ports if self.node_alive(p)]

    # ------------------------------------------------------------------ topology

    def refresh(self):
        """Reads the slot map (CLUSTER SLOTS) from the first node that answers."""
        last = None
        for port in self._live_ports():
            try:
                reply = self.node_cmd(port, "CLUSTER", "SLOTS")
            except (OSError, ConnectionError, RedisError) as e:
                last = e
                continue
            m = [None] * CLUSTER_SLOTS
            for entry in reply:
                start, end, master = entry[0], entry[1], entry[2]
                for s in range(start, end + 1):
                    m[s] = int(master[1])
            self.slot_map = m
            return m
        raise ConnectionError("no node of the cluster answered CLUSTER SLOTS: %s" % last)

    def slot(self, key):
        return key_slot(key)

    def slots(self):
        """CLUSTER SLOTS as [(start, end, master port, [replica ports])], by start."""
        for port in self._live_ports():
            try:
                reply = self.node_cmd(port, "CLUSTER", "SLOTS")
            except (OSError, ConnectionError, RedisError):
                continue
            return sorted((e[0], e[1], int(e[2][1]), sorted(int(r[1]) for r in e[3:]))
                          for e in reply)
        raise ConnectionError("no node of the cluster answered CLUSTER SLOTS")

    def nodes(self, port=None):
        """CLUSTER NODES as seen by \\p port (default: the first live node): [{"id",
        "port", "flags" (set, "myself" included), "master" (its master's id, or None),
        "link", "slots" ([(start, end)], migrating/importing ones left out)}]."""
        if port is None:
            last = None
            for p in self._live_ports():
                try:
                    return self.nodes(p)
                except (OSError, ConnectionError, RedisError) as e:
                    last = e
            raise ConnectionError("no node of the cluster answered CLUSTER NODES: %s" % last)
        out = []
        for line in self.node_cmd(port, "CLUSTER", "NODES").decode().splitlines():
            f = line.split()
            if len(f) < 8:
                continue
            slots = []
            for s in f[8:]:
                if s.startswith("["):
                    continue
                a, _, b = s.partition("-")
                slots.append((int(a), int(b or a)))
            out.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                        "flags": set(f[2].split(",")), "master": None if f[3] == "-" else f[3],
                        "link": f[7], "slots": slots})
        return out

    @staticmethod
    def _failed(n):
        return bool(n["flags"] & {"fail", "fail?", "handshake", "noaddr"})

    def _node_id(self, port, nodes=None):
        for n in nodes or self.nodes():
            if n["port"] == port:
                return n["id"]
        raise AssertionError("no node on port %d in the cluster" % port)

    def masters(self):
        """The masters not failed, [(port, node id)] by port."""
        return sorted((n["port"], n["id"]) for n in self.nodes()
                      if "master" in n["flags"] and not self._failed(n))

    def replicas_of(self, port):
        """The replicas (not failed) of the master on \\p port, [(port, node id)] by port."""
        nodes = self.nodes()
        mid = self._node_id(port, nodes)
        return sorted((n["port"], n["id"]) for n in nodes
                      if "slave" in n["flags"] and n["master"] == mid and not self._failed(n))

    def master_of(self, key):
        """The port of the master serving \\p key's slot (the slot map, read afresh)."""
        return self.refresh()[key_slot(key)]

    # ------------------------------------------------------------------ commands

    @classmethod
    def _key(cls, args):
        name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        name = name.upper()
        if name in cls.NUMKEYS:
            return args[3] if len(args) > 3 and int(args[2]) > 0 else None
        if name in ("OBJECT", "XINFO"):
            return args[2] if len(args) > 2 else None
        if name in ("XREAD", "XREADGROUP"):
            words = [(a.decode(errors="replace") if isinstance(a, bytes) else str(a)).upper()
                     for a in args]
            i = words.index("STREAMS") if "STREAMS" in words else -1
            return args[i + 1] if 0 <= i < len(args) - 1 else None
        if name in cls.KEYLESS or len(args) < 2:
            return None
        return args[1]

    def cmd(self, *args):
        """One command, sent to the master of the slot of its key (args[1]; the first key
        of EVAL/FCALL), or to the first master for a keyless one. MOVED re-reads the slot
        map and goes to the node named, ASK sends ASKING and the command to the node
        named; a node that does not answer makes it re-read the map and try again (a few
        times: not across a fail-over, see wait_for_failover)."""
        key = self._key(args)
        if self.slot_map is None:
            self.refresh()
        if key is None:
            slot = None
            port = self.masters()[0][0]
        else:
            slot = key_slot(key)
            port = self.slot_map[slot]
            if port is None:
                raise RedisError("CLUSTERDOWN slot %d is not served (slot map)" % slot)
        asking = False
        conn_errors = 0
        for _ in range(32):
            try:
                if asking:
                    reply = self.node(port).pipeline([("ASKING",), args])[1]
                    if isinstance(reply, RedisError):
                        raise reply
                    return reply
                return self.node(port).cmd(*args)
            except RedisError as e:
                words = str(e).split()
                asking = False
                if words and words[0] in ("MOVED", "ASK") and len(words) >= 3:
                    target = int(words[2].rsplit(":", 1)[1])
                    if words[0] == "MOVED":
                        try:
                            self.refresh()
                        except ConnectionError:
                            pass
                        self.slot_map[int(words[1])] = target
                    else:
                        asking = True
                    port = target
                    continue
                if words and words[0] == "TRYAGAIN":  # a multi-key command mid-migration
                    time.sleep(0.05)
                    continue
                raise
            except (OSError, ConnectionError):
                self._drop(port)
                conn_errors += 1
                if conn_errors > 3:
                    raise
                time.sleep(0.1 * conn_errors)
                self.refresh()
                if slot is not None:
                    port = self.slot_map[slot] or port
                else:
                    port = self.masters()[0][0]
        raise RedisError("too many redirections for %r" % (args[:2],))

    def pipeline(self, commands):
        """Each command through cmd(), in order: the replies, a RedisError in place of
        one that failed (as Redis.pipeline)."""
        out = []
        for c in commands:
            try:
                out.append(self.cmd(*c))
            except RedisError as e:
                out.append(e)
        return out

    hgetall = Redis.hgetall  # through this cmd(): routed by the key

    def all_masters(self, *args):
        """One command on every master (FUNCTION LOAD, FLUSHALL, ...): {port: reply}."""
        return {port: self.node_cmd(port, *args) for port, _ in self.masters()}

    def scan_keys(self, pattern):
        """SCAN MATCH \\p pattern on every master: the keys (str), sorted."""
        keys = set()
        for port, _ in self.masters():
            try:
                keys.update(self.node(port).scan_keys(pattern))
            except (OSError, ConnectionError):  # a connection from before a restart
                self._drop(port)
                keys.update(self.node(port).scan_keys(pattern))
        return sorted(keys)

    # ------------------------------------------------------------------ nodes

    def _need_dir(self):
        if self.dir is None:
            raise RuntimeError("ClusterRedis without the stack's directory: no node control")

    def _pid_path(self, port):
        self._need_dir()
        return os.path.join(self.dir, "redis-%d.pid" % port)

    def node_pid(self, port):
        """The pid recorded for the node on \\p port, or None."""
        try:
            with open(self._pid_path(port)) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def node_alive(self, port):
        """The node's recorded process is alive and is a redis-server."""
        pid = self.node_pid(port)
        if pid is None or not _alive(pid):
            return False
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return b"redis-server" in f.read()
        except OSError:
            return False

    def kill_node(self, port):
        """SIGKILL to the node on \\p port (by its pid file; its AOF loses what everysec had
        not written), and waits until it is dead. Its pid file is removed."""
        if port not in self.ports:
            raise ValueError("port %d is not a node of this cluster" % port)
        pid = self.node_pid(port)
        if pid is None or not self.node_alive(port):
            raise AssertionError("the node on port %d is not running" % port)
        try:
            nodes = self.nodes()
            mid = self._node_id(port, nodes)
            self._before_kill[port] = (mid, sorted(n["port"] for n in nodes
                                                   if n["master"] == mid))
        except (OSError, ConnectionError, RedisError, AssertionError):
            pass
        os.kill(pid, signal.SIGKILL)
        self._drop(port)
        for p in self.spawned:  # reap it if it is our child (start_node)
            if p.pid == pid:
                p.wait()

        def dead():
            # all its threads: the main one is a zombie while the others still exit, and
            # its sockets are closed only then
            try:
                tasks = os.listdir("/proc/%d/task" % pid)
            except OSError:
                tasks = []
            if any(_alive(int(t)) for t in tasks):
                return False
            try:
                socket.create_connection((self.host, port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            except OSError:
                pass
            return False
        wait_until(dead, 20, what="redis-server on port %d to die" % port)
        os.unlink(self._pid_path(port))

    def node_command(self, port):
        """The command line of the node on \\p port, the one deploy/dev/stack.sh runs."""
        self._need_dir()
        return ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                "--dir", os.path.join(self.dir, "redis-%d" % port), "--daemonize", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout),
                "--repl-diskless-sync-delay", "0",
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--protected-mode", "yes",
                "--logfile", os.path.join(self.dir, "redis-%d.log" % port)]

    def start_node(self, port, extra=()):
        """Starts the node on \\p port again, with stack.sh's command line and its data
        directory, so it rejoins the cluster from its nodes.conf (a master that was
        failed over comes back as a replica: wait_ok); returns when it answers PING."""
        if port not in self.ports:
            raise ValueError("port %d is not a node of this cluster" % port)
        if self.node_alive(port):
            raise AssertionError("the node on port %d is running already" % port)
        p = subprocess.Popen(self.node_command(port) + list(extra), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        p.cs_node_port = port
        self.spawned.append(p)
        with open(self._pid_path(port), "w") as f:
            f.write("%d\n" % p.pid)
        self._drop(port)

        def up():
            if p.poll() is not None:
                raise AssertionError("redis-server on port %d exited %d (see %s)" % (
                    port, p.returncode, os.path.join(self.dir, "redis-%d.log" % port)))
            try:
                c = Redis(port, self.host)
            except OSError:  # not listening yet
                return False
            try:
                return c.cmd("PING") == "PONG"
            except (OSError, ConnectionError, RedisError):  # LOADING
                return False
            finally:
                c.close()
        wait_until(up, 30, what="redis-server on port %d to start" % port)
        return p.pid

    def _node_ok(self, port):
        info = _parse_info(self.node_cmd(port, "CLUSTER", "INFO"))
        if info.get("cluster_state") != "ok" or \
                info.get("cluster_slots_assigned") != str(CLUSTER_SLOTS):
            return False
        repl = _parse_info(self.node_cmd(port, "INFO", "replication"))
        return repl.get("role") != "slave" or repl.get("master_link_status") == "up"

    def _view(self, port):
        """The cluster as \\p port sees it, its nodes not failed: {(id, port, role,
        master, slots)}."""
        return frozenset((n["id"], n["port"], "master" if "master" in n["flags"] else "slave",
                          n["master"], tuple(n["slots"]))
                         for n in self.nodes(port) if not self._failed(n))

    def wait_ok(self, timeout=30.0):
        """Waits until every live node reports cluster_state:ok with all slots assigned,
        every live replica has its link to its master up, and all of them see the same
        nodes alive in the same roles (a restarted node has rejoined). Returns the live
        ports."""
        def ok():
            live = self._live_ports()
            try:
                if not live or not all(self._node_ok(p) for p in live):
                    return None
                views = {self._view(p) for p in live}
            except (OSError, ConnectionError, RedisError):
                return None
            if len(views) != 1 or {v[1] for v in next(iter(views))} != set(live):
                return None
            return live
        live = wait_until(ok, timeout, 0.1, what="the Redis Cluster to be ok")
        self.slot_map = None
        return live

    def wait_for_failover(self, dead_port, timeout=30.0):
        """Waits until a former replica of the (killed) master on \\p dead_port is a master
        in CLUSTER NODES of every live node and every live node reports cluster_state:ok.
        Returns the promoted node's port."""
        if dead_port in self._before_kill:
            former = self._before_kill[dead_port][1]
        else:
            nodes = self.nodes()
            dead_id = self._node_id(dead_port, nodes)
            former = [n["port"] for n in nodes if n["master"] == dead_id]
        if not former:
            raise AssertionError("the node on port %d had no replica to fail over to"
                                 % dead_port)

        def promoted():
            live = self._live_ports(exclude=(dead_port,))
            found = None
            try:
                for p in live:
                    info = _parse_info(self.node_cmd(p, "CLUSTER", "INFO"))
                    if info.get("cluster_state") != "ok":
                        return None
                    ms = [n["port"] for n in self.nodes(p) if n["port"] in former and
                          "master" in n["flags"] and not self._failed(n)]
                    if not ms or (found is not None and ms[0] != found):
                        return None
                    found = ms[0]
            except (OSError, ConnectionError, RedisError):
                return None
            return found
        port = wait_until(promoted, timeout, 0.1,
                          what="a replica of port %d to take over" % dead_port)
        self.slot_map = None
        return port

    def _reshard_args(self, from_port, to_port, slots):
        nodes = self.nodes()
        froms = [from_port] if isinstance(from_port, int) else list(from_port)
        any_port = next(p for p, _ in self.masters())
        return ["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % any_port,
                "--cluster-from", ",".join(self._node_id(p, nodes) for p in froms),
                "--cluster-to", self._node_id(to_port, nodes),
                "--cluster-slots", str(int(slots)), "--cluster-yes"]

    def reshard(self, from_port, to_port, slots, timeout=120):
        """Moves \\p slots slots (and their keys) from the master on \\p from_port (a port
        or a list of them) to the one on \\p to_port with redis-cli --cluster reshard.
        Returns the CompletedProcess (check its returncode); raises
        subprocess.TimeoutExpired (redis-cli killed) after \\p timeout seconds."""
        r = subprocess.run(self._reshard_args(from_port, to_port, slots),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        self.slot_map = None
        return r

    def reshard_async(self, from_port, to_port, slots):
        """reshard() without waiting: the Popen of redis-cli, its output in the file
        p.log_path (a pipe could fill and stall it); Stack.stop kills it if still running."""
        args = self._reshard_args(from_port, to_port, slots)
        self._need_dir()
        log_path = os.path.join(self.dir, "reshard-%d.log" % random.randrange(1 << 30))
        with open(log_path, "wb") as log:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT)
        p.log_path = log_path
        self.spawned.append(p)
        self.slot_map = None
        return p


# ----------------------------------------------------------------------------- stack

class Stack:
    """The private dev stack of one test: redis-server (with redis_cluster=True a Redis
    Cluster of 3 masters + 3 replicas) + devbroker on free ports."""

    def __init__(self, brokers=1, partitions=None, redis_cluster=False,
                 cluster_node_timeout=None):
        self.dir = tempfile.mkdtemp(prefix="cs-it-")
        args = [os.path.join(SOURCE, "deploy/dev/stack.sh"), "start", "--dir", self.dir,
                "--build", BUILD, "--owner", str(os.getpid()), "--brokers", str(brokers),
                "--quiet"]
        for topic, n in (partitions or {}).items():
            args += ["--partitions", "%s=%d" % (topic, n)]
        if redis_cluster:
            args += ["--redis-cluster"]
            if cluster_node_timeout is not None:
                args += ["--cluster-node-timeout", str(cluster_node_timeout)]
        subprocess.run(args, check=True)
        self.env = {}
        with open(os.path.join(self.dir, "stack.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if len(v) >= 2 and v[0] == v[-1] == '"':  # CS_REDIS_CLUSTER_PORTS="p1 p2 ..."
                    v = v[1:-1]
                self.env[k] = v
        self.bootstrap = self.env["CS_BOOTSTRAP"]
        self.redis_port = int(self.env["CS_REDIS_PORT"])
        self.config = self.env["CS_CONFIG"]
        self.procs = []
        self.redis_cluster = "CS_REDIS_CLUSTER_PORTS" in self.env
        # the cluster's nodes, CS_REDIS_CLUSTER_PORTS; [redis_port] with one redis-server
        self.redis_ports = [int(p) for p in self.env.get("CS_REDIS_CLUSTER_PORTS",
                                                         str(self.redis_port)).split()]
        self._cluster = {"spawned": []}  # shared by its ClusterRedis (Stack.redis())

    def redis(self):
        """A Redis connection, or with a cluster a ClusterRedis over all its nodes."""
        if self.redis_cluster:
            return ClusterRedis(self.redis_ports, self.dir,
                                int(self.env.get("CS_REDIS_CLUSTER_NODE_TIMEOUT", 2000)),
                                shared=self._cluster)
        return Redis(self.redis_port)

    def stop(self):
        for p in self.procs:
            p.kill()
            p.close()
        spawned = self._cluster["spawned"]
        for p in spawned:
            if not hasattr(p, "cs_node_port") and p.poll() is None:
                p.kill()  # a redis-cli --cluster reshard still running
        subprocess.run([os.path.join(SOURCE, "deploy/dev/stack.sh"), "stop", "--dir",
                        self.dir, "--quiet"], check=False)
        for p in spawned:  # reaped: nodes restarted here are our children
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def pids(self):
        """The stack's processes: redis-server (every node of a cluster, as their pid
        files record them now) and the devbroker."""
        if self.redis_cluster:
            pids = []
            for port in self.redis_ports:
                try:
                    with open(os.path.join(self.dir, "redis-%d.pid" % port)) as f:
                        pids.append(int(f.read().strip()))
                except (OSError, ValueError):  # killed (ClusterRedis.kill_node)
                    pass
            return pids + [int(self.env["CS_BROKER_PID"])]
        return [int(self.env["CS_REDIS_PID"]), int(self.env["CS_BROKER_PID"])]

    def _single_redis(self, what):
        if self.redis_cluster:
            raise RuntimeError("%s: the stack runs a Redis Cluster; use the node methods of "
                               "Stack.redis() (ClusterRedis.kill_node, start_node, "
                               "wait_for_failover, wait_ok)" % what)

    def show(self, subjects, ns="cs", config_extra=None):
        """What the risk state holds for each subject ("KIND:id"), read through the
        layout's owner (caresignal-score --show --json): {subject: its JSON object}."""
        return show(self.config, subjects, ns, config_extra)

    def state(self, subjects, ns="cs"):
        """Each subject's state as flat text fields (score, as_of, level, level_since,
        imm_at, events_total, assurance, duplicates, area.<AREA>, last_partition,
        last_offset): {subject: fields}, {} for a subject with no state."""
        return {k: state_fields(v) for k, v in self.show(subjects, ns).items()}

    def fault(self, *words):
        """Sends one control command to the devbroker (caresignal-devbroker --send), e.g.
        fault("down", 2), and returns its reply line ("ok ..."); raises AssertionError
        with the reply on "error ..." or when no reply came."""
        p = subprocess.run([bin_path("caresignal-devbroker"), "--send",
                            self.env["CS_BROKER_CONTROL"]] + [str(w) for w in words],
                           capture_output=True, timeout=60, env=_program_env())
        reply = p.stdout.decode(errors="replace").strip()
        if p.returncode != 0 or not reply.startswith("ok"):
            raise AssertionError("fault %s: exit %d: %s %s" % (
                " ".join(map(str, words)), p.returncode, reply,
                p.stderr.decode(errors="replace").strip()))
        return reply

    def broker_logs(self):
        """The devbroker's JSON log lines so far: [dict]."""
        out = []
        with open(os.path.join(self.dir, "devbroker.log"), "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"raw": line.decode(errors="replace")})
        return out

    def restart_redis(self, down_seconds=0.0):
        """Stops redis-server (SIGKILL: no final AOF flush) and starts it again on the
        same port and data directory."""
        self._single_redis("restart_redis")
        self.kill_redis()
        time.sleep(down_seconds)
        self.start_redis()

    def kill_redis(self):
        """SIGKILL: Redis loses what its AOF (everysec) had not written yet."""
        self._single_redis("kill_redis")
        pid = int(self.env["CS_REDIS_PID"])
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), what="redis to die")

    def start_redis(self, extra=()):
        """Starts redis-server again on the same port and data directory (its AOF)."""
        self._single_redis("start_redis")
        p = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--dir", os.path.join(self.dir, "redis"), "--daemonize", "no",
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--logfile", os.path.join(self.dir, "redis.log")] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        with open(os.path.join(self.dir, "redis.pid"), "w") as f:
            f.write(str(p.pid))
        self.env["CS_REDIS_PID"] = str(p.pid)

        def up():
            try:
                return Redis(self.redis_port).cmd("PING") == "PONG"
            except (OSError, RedisError):
                return False
        wait_until(up, what="redis to restart")

    def program(self, name, *args, config_extra=None, stdin=None, stdout=None, env=None):
        p = Program(self, name, list(args), config_extra or {}, stdin=stdin, stdout=stdout,
                    env=env)
        self.procs.append(p)
        return p


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Program:
    """One caresignal program run against the stack; stderr (JSON logs) to a file."""

    def __init__(self, stack, name, args, config_extra, stdin=None, stdout=None, env=None):
        self.name = name
        self.stack = stack
        self.log_path = os.path.join(stack.dir, "%s-%d.log" % (name, random.randrange(1 << 30)))
        self.out_path = self.log_path[:-4] + ".out"
        cmd = [bin_path(name), "--config", stack.config]
        for k, v in config_extra.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        cmd += args
        self.cmd = cmd
        self.log = open(self.log_path, "wb")
        self.out = open(self.out_path, "wb") if stdout is None else stdout
        self.proc = subprocess.Popen(cmd, cwd=SOURCE, stdin=stdin or subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.log,
                                     env=dict(_program_env(), **(env or {})))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=60):
        """SIGTERM and wait: a clean shutdown must exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not stop within %ds after SIGTERM" % (self.name, timeout))
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.log.close()
        if hasattr(self.out, "close") and self.out.name == self.out_path:
            self.out.close()

    def logs(self):
        self.log.flush()
        out = []
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"raw": line.decode(errors="replace")})
        return out

    def log_text(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def output(self):
        if hasattr(self.out, "flush"):
            self.out.flush()
        with open(self.out_path, "rb") as f:
            return f.read()


def _program_env():
    env = dict(os.environ)
    supp = os.path.join(SOURCE, "tests", "lsan.supp")
    env.setdefault("LSAN_OPTIONS", "suppressions=%s:print_suppressions=0" % supp)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def run(name, *args, stack=None, input=None, timeout=120, config_extra=None):
    """Runs a program to completion; returns CompletedProcess (bytes)."""
    cmd = [bin_path(name)]
    if stack is not None:
        cmd += ["--config", stack.config]
    for k, v in (config_extra or {}).items():
        cmd += ["--set", "%s=%s" % (k, v)]
    cmd += list(args)
    return subprocess.run(cmd, cwd=SOURCE, input=input, capture_output=True, timeout=timeout,
                          env=_program_env())


def show(config, subjects, ns="cs", config_extra=None):
    """caresignal-score --show --json for \\p subjects in namespace \\p ns, in chunks:
    {subject: its JSON object (docs/contract/redis-layout.md, "Reading a subject")}."""
    out = {}
    subjects = list(subjects)
    for i in range(0, len(subjects), 400):
        chunk = subjects[i:i + 400]
        extra = dict(config_extra or {}, **{"state.namespace": ns})
        cmd = [bin_path("caresignal-score"), "--config", config]
        for k, v in extra.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        r = subprocess.run(cmd + ["--show", "--json"] + chunk, cwd=SOURCE, capture_output=True,
                           timeout=120, env=_program_env())
        if r.returncode not in (0, 3):
            raise AssertionError("caresignal-score --show: exit %d: %s"
                                 % (r.returncode, r.stderr.decode(errors="replace")[-2000:]))
        for line in r.stdout.decode().splitlines():
            j = json.loads(line)
            out[j["subject"]] = j
    return out


RANK_SHARDS = 16  # docs/contract/redis-layout.md, "Rank sets": on a cluster


def ranked(stack, kind, n, ns="cs"):
    """The \p n highest ranked subjects of \p kind in the rank set, read from Redis: one
    sorted set on one node, its 16 shards merged on a cluster (highest rank first, then
    the member bytewise high to low, as ZREVRANGE orders one set)."""
    r = stack.redis()
    try:
        if not stack.redis_cluster:
            return [k.decode() for k in r.cmd("ZREVRANGE", "%s:rank:%s" % (ns, kind), 0, n - 1)]
        got = []
        for shard in range(RANK_SHARDS):
            reply = r.cmd("ZREVRANGE", "%s:rank:{%s:%d}" % (ns, kind, shard), 0, n - 1,
                          "WITHSCORES")
            for member, score in zip(reply[::2], reply[1::2]):
                got.append((float(score), member.decode()))
        got.sort(key=lambda x: (-x[0], [-b for b in x[1].encode()]))
        return [m for _, m in got[:n]]
    finally:
        r.close()


def events_applied(stack, subjects, ns="cs"):
    """Events applied to \\p subjects in namespace \\p ns (their events_total, summed)."""
    try:
        return sum(int(f.get("events_total", 0)) for f in stack.state(subjects, ns).values())
    except AssertionError:  # Redis not answering (yet): a wait_until polls again
        return -1


def state_fields(view):
    """A --show object as flat text fields, the numbers as the state keeps them."""
    if not view.get("exists"):
        return {}
    f = {"score": repr(float(view["score"])), "as_of": str(view["as_of"]),
         "level": view["level"], "events_total": str(view["events_total"]),
         "assurance": str(view["assurance"]), "duplicates": str(view["duplicates"])}
    for a, v in view["area_scores"].items():
        f["area." + a] = repr(float(v))
    for k, name in (("level_since", "level_since"), ("immediate_at", "imm_at"),
                    ("last_partition", "last_partition"), ("last_offset", "last_offset")):
        if view.get(k) is not None:
            f[name] = str(view[k])
    return f


# ----------------------------------------------------------------------------- kcat

class Record:
    def __init__(self, topic, partition, offset, timestamp, key, value, headers):
        self.topic, self.partition, self.offset = topic, partition, offset
        self.timestamp, self.key, self.value, self.headers = timestamp, key, value, headers

    def __repr__(self):
        return "Record(%s[%d]@%d key=%r len=%s headers=%r)" % (
            self.topic, self.partition, self.offset, self.key,
            None if self.value is None else len(self.value), self.headers)


def _delimiter(payloads):
    while True:
        # no NUL and no backslash: kcat reads the delimiter as an escaped C string, and a
        # 0x5c byte followed by "x" would be read as the start of another \xNN escape
        d = bytes(b for b in (random.randrange(1, 255) for _ in range(16)) if b != 0x5C)[:12]
        if len(d) < 12:
            continue
        if not any(d in p for p in payloads if p):
            return d


def kcat_produce(bootstrap, topic, records, partition=None, headers=None, timeout=60,
                 extra=None):
    """Produces [(key bytes|None, value bytes)] with kcat, in order. Keys and values are
    arbitrary bytes (a random delimiter that occurs in none of them frames them)."""
    records = [(k if k is None or isinstance(k, bytes) else k.encode(),
                v if isinstance(v, bytes) else v.encode()) for k, v in records]
    kd = _delimiter([k for k, _ in records] + [v for _, v in records])
    md = _delimiter([k for k, _ in records] + [v for _, v in records] + [kd])
    esc = lambda d: "".join("\\x%02x" % b for b in d)
    body = b"".join((k or b"") + kd + v + md for k, v in records)
    cmd = ["kcat", "-b", bootstrap, "-P", "-t", topic, "-K", esc(kd), "-D", esc(md), "-q"]
    if partition is not None:
        cmd += ["-p", str(partition)]
    for h in (headers or []):
        cmd += ["-H", h]
    cmd += extra or []
    p = subprocess.run(cmd, input=body, timeout=timeout, capture_output=True)
    if p.returncode != 0:
        raise AssertionError("kcat -P %s exited %d: %s" % (topic, p.returncode,
                                                          p.stderr.decode(errors="replace")))


def kcat_consume(bootstrap, topic, partition=None, offset="beginning", group=None,
                 timeout=60, extra=None, count=None):
    """Reads a topic to its current end with kcat and returns [Record] (bytes)."""
    fmt = r"%t\x1f%p\x1f%o\x1f%T\x1f%K\x1f%S\x1f%h\n%k%s\n"
    cmd = ["kcat", "-b", bootstrap, "-C", "-e", "-q", "-f", fmt]
    if group:
        cmd = ["kcat", "-b", bootstrap, "-G", group, "-e", "-q", "-f", fmt,
               "-X", "session.timeout.ms=6000", "-X", "auto.offset.reset=earliest",
               "-X", "fetch.wait.max.ms=5", topic]
    else:
        cmd += ["-t", topic, "-o", str(offset), "-X", "fetch.wait.max.ms=5"]
        if partition is not None:
            cmd += ["-p", str(partition)]
    if count is not None:
        cmd += ["-c", str(count)]
    cmd += extra or []
    out = subprocess.run(cmd, check=True, timeout=timeout, capture_output=True).stdout
    return parse_kcat(out)


def parse_kcat(out):
    records, pos = [], 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        fields = out[pos:nl].split(b"\x1f")
        topic = fields[0].decode()
        partition, offset, ts, klen, vlen = (int(x) for x in fields[1:6])
        hdrs = {}
        if len(fields) > 6 and fields[6]:
            for kv in fields[6].split(b","):
                k, _, v = kv.partition(b"=")
                hdrs[k.decode()] = v.decode()
        pos = nl + 1
        key = out[pos:pos + klen] if klen >= 0 else None
        pos += max(klen, 0)
        value = out[pos:pos + vlen] if vlen >= 0 else None
        pos += max(vlen, 0) + 1
        records.append(Record(topic, partition, offset, ts, key, value, hdrs))
    return records


def kcat_metadata(bootstrap):
    """{topic: partition count} from kcat -L -J."""
    out = subprocess.run(["kcat", "-b", bootstrap, "-L", "-J"], check=True,
                         capture_output=True, timeout=30).stdout
    meta = json.loads(out)
    return {t["topic"]: len(t["partitions"]) for t in meta["topics"]}


class StackTest(unittest.TestCase):
    """Base class: one stack per test class (setUpClass), stopped at the end."""
    brokers = 1
    partitions = None
    redis_cluster = False  # True: a Redis Cluster of 3 masters + 3 replicas

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(brokers=cls.brokers, partitions=cls.partitions,
                          redis_cluster=cls.redis_cluster)

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()


def main():
    unittest.main(verbosity=2)


# ----------------------------------------------------------------------------- caresignal

def cat(stack, topic, *args):
    """Every message of topic as decoded by caresignal-cat: [dict]."""
    p = run("caresignal-cat", "--topic", topic, *args, stack=stack, timeout=120)
    if p.returncode != 0:
        raise AssertionError("caresignal-cat failed: %s" % p.stderr.decode(errors="replace"))
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def committed(stack, topic, group):
    """{partition: committed offset (-1001 if none)} of a consumer group."""
    p = run("caresignal-cat", "--topic", topic, "--committed", group, stack=stack)
    if p.returncode != 0:
        raise AssertionError("caresignal-cat --committed failed: %s" % p.stderr.decode())
    return {d["partition"]: d["committed"] for d in map(json.loads, p.stdout.splitlines())}


def json2avro(schema_id, events):
    """Avro wire-format bytes of each JSON event, written with registered schema_id."""
    lines = "".join(json.dumps(e) + "\n" for e in events).encode()
    p = subprocess.run([bin_path("cs-json2avro"), os.path.join(SOURCE, "schemas/registry.json"),
                        str(schema_id)], input=lines, capture_output=True, check=True,
                       env=_program_env())
    out = []
    for line in p.stdout.decode().splitlines():
        if line.startswith("ERR"):
            raise AssertionError("cs-json2avro: %s" % line)
        out.append(bytes.fromhex(line))
    return out


def iso(ms):
    """Epoch ms -> ISO-8601 UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def now_ms():
    return int(time.time() * 1000)


def free_port():
    return prom.free_port()


def gen_feed(stack, scale, seed):
    """A synthetic partner feed (deploy/dev/gen-feed.py) ending at this minute, in the
    stack's directory: the directory's path, holding nhse/ccg/ofsted/malformed.jsonl."""
    feed = os.path.join(stack.dir, "feed")
    now = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime())
    subprocess.run([sys.executable, os.path.join(SOURCE, "deploy/dev/gen-feed.py"),
                    "--out-dir", feed, "--now", now, "--scale", str(scale), "--seed",
                    str(seed)], check=True, capture_output=True)
    return feed


def feed_values(feed, name):
    """The partner events (values) of \p name.jsonl in \p feed."""
    with open(os.path.join(feed, name + ".jsonl")) as f:
        return [json.loads(line)["value"] for line in f]

