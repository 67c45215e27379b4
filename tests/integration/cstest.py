"""Shared helpers of caresignal's integration tests (Python 3 standard library only).

Each test starts its own private stack (redis-server + caresignal-devbroker) through
deploy/dev/stack.sh on free loopback ports, drives the real programs and the kcat
client, and stops everything at the end, on failure too (the stack's watchdog also
stops it if this process is killed).
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


# ----------------------------------------------------------------------------- stack

class Stack:
    """The private dev stack of one test: redis-server + devbroker on free ports."""

    def __init__(self, brokers=1, partitions=None):
        self.dir = tempfile.mkdtemp(prefix="cs-it-")
        args = [os.path.join(SOURCE, "deploy/dev/stack.sh"), "start", "--dir", self.dir,
                "--build", BUILD, "--owner", str(os.getpid()), "--brokers", str(brokers),
                "--quiet"]
        for topic, n in (partitions or {}).items():
            args += ["--partitions", "%s=%d" % (topic, n)]
        subprocess.run(args, check=True)
        self.env = {}
        with open(os.path.join(self.dir, "stack.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                self.env[k] = v
        self.bootstrap = self.env["CS_BOOTSTRAP"]
        self.redis_port = int(self.env["CS_REDIS_PORT"])
        self.config = self.env["CS_CONFIG"]
        self.procs = []

    def redis(self):
        return Redis(self.redis_port)

    def stop(self):
        for p in self.procs:
            p.kill()
            p.close()
        subprocess.run([os.path.join(SOURCE, "deploy/dev/stack.sh"), "stop", "--dir",
                        self.dir, "--quiet"], check=False)

    def pids(self):
        return [int(self.env["CS_REDIS_PID"]), int(self.env["CS_BROKER_PID"])]

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
        self.kill_redis()
        time.sleep(down_seconds)
        self.start_redis()

    def kill_redis(self):
        """SIGKILL: Redis loses what its AOF (everysec) had not written yet."""
        pid = int(self.env["CS_REDIS_PID"])
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), what="redis to die")

    def start_redis(self, extra=()):
        """Starts redis-server again on the same port and data directory (its AOF)."""
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

    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(brokers=cls.brokers, partitions=cls.partitions)

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

