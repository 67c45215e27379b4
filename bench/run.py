#!/usr/bin/env python3
"""caresignal's benchmarks, in one run on this machine: every figure beside the raw limit it
is measured against (same machine, same run), its docs/contract/targets.md target and the ratio.

  bench/run.py [--smoke] [--build DIR] [--out FILE] [--parts P,...] [--scales 1,10,100]
               [--runs 3] [--alert-feed 100000] [--lag 1000000] [--lag-seconds 45]

Measures: the raw limits (librdkafka consuming from the dev broker; redis-server running
the scorer's own function calls, pipelined); normalise in process (beside jansson's
json_loads on the same documents) and end to end through the broker, JSON and Avro, as a
ratio to its in-process rate; score end to end, as a ratio to Redis's rate for the same
calls, over --runs runs each (median and range), at 1x, 10x and 100x the events and
subjects, and on a feed where one event in ten raises an alert; latency, each figure on a
fresh dev broker: the broker's own hop alone (bench_hop) and raw publish -> alert on the
pager's stdout (three hops) at a fixed 5,000 events/s, caresignal's own share being the
difference, then both again idle (10 probes/s); the consumers' peak resident memory at
5,000 events/s and starting --lag messages behind; Redis memory per subject after the
90-day synthetic feed. Prints a table and writes it as JSON (with the machine's
description) to bench/results/. --smoke runs every part in about a minute (the test suite
runs it so the bench cannot rot); its figures are not measurements, and it writes to the
build directory unless --out says otherwise.

CS_BENCH_KEEP=1 keeps its temporary directory (the consumers' logs).

Every process it starts (the stack, the consumers, the tools) is stopped when it ends,
on failure and on SIGINT/SIGTERM too; the consumers and tools also die with it if it is
killed outright (PR_SET_PDEATHSIG), and the stack's watchdog stops the stack.
"""
import argparse
import calendar
import contextlib
import csv
import ctypes
import json
import os
import platform
import random
import re
import shutil
import socket
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import cstest  # noqa: E402  (the Redis client)

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """In the child before exec: killed when the bench process goes, however it goes."""
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_t0 = time.monotonic()


def log(msg):
    print("bench: %4.0f s  %s" % (time.monotonic() - _t0, msg), file=sys.stderr, flush=True)



# The stages' own end-to-end ages (now - the raw message's timestamp), from each consumer's
# /metrics: the normaliser's when an event is delivered, the scorer's when an event is
# applied and its alerts delivered and acknowledged, the pager's when an alert is paged.
STAGE_AGES = {"normalise": ("normalise", "caresignal_end_to_end_age_seconds"),
              "score": ("score", "caresignal_end_to_end_age_seconds"),
              "page": ("page", "caresignal_page_delivery_age_seconds")}


def stage_ages(ports):
    """{stage: {le: cumulative count}} of each stage's age histogram now ({} if down)."""
    out = {}
    for stage, (prog, metric) in STAGE_AGES.items():
        buckets = {}
        try:
            status, text, _ = cstest.prom.http("http://127.0.0.1:%d/metrics" % ports[prog])
        except OSError:
            continue
        if status != 200:
            continue
        for line in text.splitlines():
            if line.startswith(metric + "_bucket{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                le = float("inf") if le == "+Inf" else float(le)
                buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
        out[stage] = buckets
    return out


def histogram_quantile(q, buckets):
    """As PromQL's histogram_quantile: linear within the bucket holding rank q."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank, prev_b, prev_c = q * total, 0.0, 0.0
    for b in bounds:
        c = buckets[b]
        if c >= rank:
            if b == float("inf"):
                return prev_b
            return prev_b + (b - prev_b) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_b, prev_c = b, c
    return prev_b


def stage_split(before, after):
    """{stage: {"p50": ms, "p99": ms, "n": count}} of what each stage finished between
    the two scrapes."""
    split = {}
    for stage, b in after.items():
        delta = {le: c - before.get(stage, {}).get(le, 0) for le, c in b.items()}
        p50, p99 = histogram_quantile(0.5, delta), histogram_quantile(0.99, delta)
        if p50 is not None:
            split[stage] = {"p50": round(1000 * p50, 1), "p99": round(1000 * p99, 1),
                            "n": int(delta[max(delta)])}
    return split

class Stopped(Exception):
    pass


def _on_signal(signum, frame):
    raise Stopped("stopped by signal %d" % signum)


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(r):
    """Redis's own user + system CPU time so far (INFO cpu: getrusage, to the
    microsecond, where /proc counts 10 ms ticks)."""
    info = r.cmd("INFO", "cpu")
    info = info.decode() if isinstance(info, bytes) else info
    f = dict(l.split(":", 1) for l in info.splitlines() if ":" in l)
    return float(f["used_cpu_user"]) + float(f["used_cpu_sys"])


def cluster_port():
    """A free loopback port for a cluster node: at most 55535 (its bus is the port +
    10,000), with the bus port free too."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


def steady(n, n0, t0, t1, started):
    """The start of a throughput measurement: (t0, n0), the first output seen, unless it
    was most of the work (a smoke run); then the consumer's start with nothing done."""
    if n0 < 0 or n - n0 < n / 4 or t1 - t0 < 0.05:
        return started, 0
    return t0, n0


def pct(v, q):
    """The q quantile of the sorted list v (nearest rank)."""
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def spread(values):
    """Median and range of a few runs' figures."""
    return statistics.median(values), min(values), max(values)


def command_calls(r):
    """Calls so far of each Redis command (INFO commandstats)."""
    info = r.cmd("INFO", "commandstats")
    info = info.decode() if isinstance(info, bytes) else info
    out = {}
    for line in info.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            out[name] = int(rest.split(",")[0].split("=")[1])
    return out


def used_memory(r):
    info = r.cmd("INFO", "memory")
    info = info.decode() if isinstance(info, bytes) else info
    return int([l for l in info.splitlines() if l.startswith("used_memory:")][0].split(":")[1])


def subject_memory(r, ns, config):
    """MEMORY USAGE of every per-subject key of namespace \p ns: @returns bytes per
    subject, bytes per key type (state, events, seen) over all subjects, and each
    subject's events_total (read through the layout's owner, caresignal-score --show)."""
    per_subject, by_type = {}, {}
    keys = r.scan_keys(ns + ":{*")
    used = r.pipeline([("MEMORY", "USAGE", k, "SAMPLES", "0") for k in keys])
    for k, u in zip(keys, used):
        subject = k[len(ns + ":{"):k.index("}")]
        kind = k[k.index("}") + 2:].split(":")[0]
        per_subject[subject] = per_subject.get(subject, 0) + (u or 0)
        by_type[kind] = by_type.get(kind, 0) + (u or 0)
    views = cstest.show(config, sorted(per_subject), ns)
    events_per = {k: int(v.get("events_total", 0)) for k, v in views.items()}
    return per_subject, by_type, events_per


def log_tail(path, lines=15):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        cstest.BUILD = self.build  # its helpers (--show) run this build's programs
        self.smoke = args.smoke
        self.dir = tempfile.mkdtemp(prefix="caresignal-bench-")
        self.procs = []
        self.rows = []      # (section, figure, value, unit, target, ratio)
        self.results = {}
        self.stack_started = False

    def bin(self, name):
        path = os.path.join(self.build, name)
        if not os.access(path, os.X_OK):
            raise RuntimeError("%s not found: build first (cmake --build %s)" % (path, self.build))
        return path

    # ------------------------------------------------------------------ stack
    def start_stack(self, topics):
        args = [os.path.join(TOP, "deploy/dev/stack.sh"), "start", "--dir", self.dir, "--build",
                self.build, "--owner", str(os.getpid()), "--brokers", "1", "--quiet"]
        for t, n in topics.items():
            args += ["--partitions", "%s=%d" % (t, n)]
        self.stack_started = True
        self.topics = topics
        subprocess.run(args, check=True, timeout=120)
        env = dict(l.strip().split("=", 1) for l in open(os.path.join(self.dir, "stack.env")))
        self.bootstrap = env["CS_BOOTSTRAP"]
        self.redis_port = int(env["CS_REDIS_PORT"])
        self.redis_pid = int(env["CS_REDIS_PID"])
        self.broker_pid = int(env["CS_BROKER_PID"])
        self.config = env["CS_CONFIG"]

    def stop_stack(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.stack_started:
            subprocess.run([os.path.join(TOP, "deploy/dev/stack.sh"), "stop", "--dir", self.dir,
                            "--quiet"], check=False, timeout=60)
        if os.environ.get("CS_BENCH_KEEP"):  # the consumers' logs, for a look afterwards
            log("logs kept in %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    @contextlib.contextmanager
    def fresh_broker(self, topics, what):
        """A new dev broker, its own process with only empty topics (\\p topics {name:
        partitions}), for one measurement: the mock's fetches walk a partition's whole
        history, so it slows as its topics grow. Inside the block the consumers, the tools
        and the CPU accounting use it; it is stopped when the block ends."""
        d = tempfile.mkdtemp(prefix="broker-", dir=self.dir)
        bfile = os.path.join(d, "bootstrap")
        cmd = [self.bin("caresignal-devbroker"), "--brokers", "1", "--bootstrap-file", bfile]
        for t, n in topics.items():
            cmd += ["--partitions", "%s=%d" % (t, n)]
        log_path = os.path.join(d, "devbroker.log")
        with open(log_path, "wb") as logf:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=logf,
                                 stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        p.log_path, p.name = log_path, "caresignal-devbroker (%s)" % what
        self.procs.append(p)

        def ready():
            try:
                with open(bfile) as f:
                    v = f.read()
                return v.endswith("\n") and v.strip()
            except OSError:
                return None
        bootstrap = self.wait_for(ready, 30, "a fresh dev broker", [p])
        saved = (self.bootstrap, self.broker_pid, self.topics)
        self.bootstrap, self.broker_pid, self.topics = bootstrap, p.pid, dict(topics)
        try:
            yield p
        finally:
            self.bootstrap, self.broker_pid, self.topics = saved
            self.stop(p)

    @contextlib.contextmanager
    def fresh_redis(self, what):
        """A new redis-server (AOF everysec, as the stack's), for one measurement: the
        stack's Redis carries what the earlier parts wrote (an append-only file grown by
        the 800,000-event runs, rewritten in the background). Inside the block the
        consumers, the tools and the CPU accounting use it; it is stopped when the block
        ends."""
        d = tempfile.mkdtemp(prefix="redis-", dir=self.dir)
        for _ in range(5):
            port = cstest.free_port()
            p = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                 "--daemonize", "no", "--appendonly", "yes", "--appendfsync", "everysec",
                 "--save", "", "--logfile", os.path.join(d, "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent)
            p.log_path, p.name = os.path.join(d, "redis.log"), "redis-server (%s)" % what
            self.procs.append(p)

            def up():
                if p.poll() is not None:
                    return "exited"
                try:
                    r = cstest.Redis(port)
                    r.cmd("PING")
                    r.close()
                    return "up"
                except OSError:
                    return None
            if self.wait_for(up, 30, "a fresh redis-server") == "up":
                break
        else:
            raise RuntimeError("a fresh redis-server did not start (see %s)" % p.log_path)
        saved = (self.redis_port, self.redis_pid)
        self.redis_port, self.redis_pid = port, p.pid
        try:
            yield p
        finally:
            self.redis_port, self.redis_pid = saved
            self.stop(p)

    @contextlib.contextmanager
    def fresh_cluster(self, masters, what):
        """A new Redis Cluster of \p masters masters and no replicas (a replica's
        replication would cost CPU one node does not pay; the fail-over path is the
        tests'), each redis-server as the stack's (AOF everysec). Inside the block the
        consumers use it (redis.cluster.nodes) and self.cluster_ports lists its ports."""
        d = tempfile.mkdtemp(prefix="cluster-", dir=self.dir)
        ports, procs = [], []
        for i in range(masters):
            port = cluster_port()
            nd = os.path.join(d, str(port))
            os.makedirs(nd)
            p = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", nd,
                 "--daemonize", "no", "--cluster-enabled", "yes", "--cluster-config-file",
                 "nodes.conf", "--cluster-node-timeout", "5000", "--appendonly", "yes",
                 "--appendfsync", "everysec", "--save", "", "--logfile",
                 os.path.join(nd, "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent)
            p.log_path, p.name = os.path.join(nd, "redis.log"), "redis-server (%s)" % what
            self.procs.append(p)
            procs.append(p)
            ports.append(port)

        def up(port):
            try:
                r = cstest.Redis(port)
                r.cmd("PING")
                r.close()
                return True
            except (OSError, cstest.RedisError):
                return False
        for port in ports:
            self.wait_for(lambda: up(port), 30, "a cluster redis-server", procs)
        self.run("redis-cli", "--cluster", "create",
                 *["127.0.0.1:%d" % port for port in ports],
                 "--cluster-replicas", "0", "--cluster-yes", timeout=120)

        def ok():
            for port in ports:
                r = cstest.Redis(port)
                info = r.cmd("CLUSTER", "INFO")
                r.close()
                info = info.decode() if isinstance(info, bytes) else info
                if "cluster_state:ok" not in info:
                    return False
            return True
        self.wait_for(ok, 60, "the cluster to be ok", procs)
        self.cluster_ports, self.cluster_pids = ports, [p.pid for p in procs]
        try:
            yield procs
        finally:
            self.cluster_ports = self.cluster_pids = None
            for p in procs:
                self.stop(p)

    def setting(self, key, default):
        """The value of \p key among the command line's --set (the last wins)"""
        value = default
        for kv in self.args.set or ():
            k, _, v = kv.partition("=")
            if k.strip() == key:
                value = v.strip()
        return value

    def program(self, name, sets, stdout=None):
        """Starts a consumer with the stack's configuration plus \\p sets, on the broker in
        use (the stack's, or a fresh one); its log is kept."""
        cmd = [self.bin(name), "--config", self.config, "--set",
               "kafka.bootstrap.servers=" + self.bootstrap, "--set",
               "redis.port=%d" % self.redis_port]
        if getattr(self, "cluster_ports", None):
            cmd += ["--set", "redis.cluster.nodes=" +
                    ",".join("127.0.0.1:%d" % port for port in self.cluster_ports)]
        for k, v in sets.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        for kv in self.args.set or ():  # the command line's, for experiments: last wins
            cmd += ["--set", kv]
        log_path = os.path.join(self.dir, "%s-%d.log" % (name, len(self.procs)))
        with open(log_path, "wb") as logf:
            p = subprocess.Popen(cmd, cwd=TOP, stdout=stdout or subprocess.DEVNULL, stderr=logf,
                                 stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        p.log_path = log_path
        p.name = name
        self.procs.append(p)
        return p

    def check_alive(self, procs):
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError("%s exited with %d; its log ends:\n%s"
                                   % (p.name, p.returncode, log_tail(p.log_path)))

    def wait_for(self, cond, timeout, what, procs=()):
        """Polls cond() until it is true (returns its value); fails after \\p timeout s or
        as soon as one of \\p procs has exited."""
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            self.check_alive(procs)
            if time.monotonic() > deadline:
                tails = "".join("\n%s log ends:\n%s" % (p.name, log_tail(p.log_path))
                                for p in procs)
                raise RuntimeError("timed out after %.0f s waiting for %s%s" % (timeout, what, tails))
            time.sleep(0.02)

    def assigned_at(self, p, timeout=60):
        """Wall-clock time (epoch s) of the program's 'partitions assigned' log line."""
        def seen():
            with open(p.log_path, "rb") as f:
                for line in f:
                    if b'"partitions assigned"' in line:
                        ts = json.loads(line)["ts"]  # 2026-11-29T07:04:31.911Z
                        return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) \
                            + int(ts[20:23]) / 1000.0
            return None
        return self.wait_for(seen, timeout, "%s to get its partitions" % p.name, [p])

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def run(self, *cmd, timeout=600):
        r = subprocess.run(list(cmd), cwd=TOP, capture_output=True, timeout=timeout,
                           preexec_fn=_die_with_parent)
        if r.returncode:
            raise RuntimeError("%s exited with %d:\n%s" % (" ".join(cmd), r.returncode,
                                                           r.stderr.decode(errors="replace")[-3000:]))
        return r.stdout

    def tool_json(self, *cmd, timeout=600):
        out = self.run(*cmd, timeout=timeout).decode().strip().splitlines()
        return json.loads([l for l in out if l.startswith('{"bench"')][-1])

    def until(self, topic, n, timeout=300):
        """Waits until \p topic holds \p n messages. @returns (wall-clock time of the
        first new message, messages then, time it held n)."""
        r = self.tool_json(self.bin("bench_consume"), "--bootstrap", self.bootstrap, "--topic",
                           topic, "--until", str(n), "--timeout", str(timeout),
                           timeout=timeout + 30)
        return r["first_at"], r["first_messages"], r["at"]

    def count(self, topic):
        return int(self.run(self.bin("bench_consume"), "--bootstrap", self.bootstrap, "--topic",
                            topic, "--watermarks", timeout=60))

    def positions(self, r, ns, topic):
        """Events the scorer has applied from \p topic: its positions in Redis, summed.
        (GETs of the known keys: a KEYS over millions of subject keys would block Redis
        for most of the time it is meant to be measured.)"""
        keys = ["%s:pos:%s:%d" % (ns, topic, p) for p in range(self.topics[topic])]
        return sum(int(v) for v in r.cmd("MGET", *keys) if v is not None)

    def cpu_start(self, pids):
        """Starts counting the CPU time of \p pids {name: pid}, Redis and the broker."""
        pids = dict(pids, **{"redis-server": self.redis_pid,
                             "caresignal-devbroker": self.broker_pid})
        return (time.monotonic(), pids, {k: cpu_seconds(pid) for k, pid in pids.items()})

    def cpu_share(self, started):
        """CPU seconds per wall second of each process since cpu_start (1.0 = a core)."""
        t0, pids, cpu0 = started
        wall = time.monotonic() - t0
        return {k: round((cpu_seconds(pid) - cpu0[k]) / wall, 3) for k, pid in pids.items()}

    def row(self, section, figure, value, unit, target=None, ratio=None, key=None):
        self.rows.append((section, figure, value, unit, target, ratio))
        if key:
            self.results[key] = value

    # ------------------------------------------------------------------ parts
    def raw_limits(self, n):
        log("raw limits: librdkafka consuming, redis-server running the scorer's calls")
        self.run(self.bin("bench_load"), "--bootstrap", self.bootstrap, "--topic", "bench.raw",
                 "--format", "intel", "--count", str(n))
        c = self.tool_json(self.bin("bench_consume"), "--bootstrap", self.bootstrap, "--topic",
                           "bench.raw")
        self.consume_rate = c["messages_per_s"]
        self.row("raw limits", "librdkafka consume from the dev broker (no processing)",
                 c["messages_per_s"], "msg/s", key="raw_consume_per_s")
        r = self.tool_json(self.bin("bench_redis"), "--port", str(self.redis_port), "--events",
                           str(n), "--subjects", "3000", "--batch", "500", "--namespace",
                           "bench-raw", "--json")
        self.row("raw limits", "redis-server: scorer FCALLs, one per event, pipelined x500",
                 r["per_event_events_per_s"], "events/s", key="redis_per_event_per_s")
        self.row("raw limits", "  the same, us per FCALL", r["per_event_us_per_call"], "us",
                 key="redis_us_per_event_call")
        self.row("raw limits", "redis-server: as the scorer (1 call/subject/batch)",
                 r["per_subject_events_per_s"], "events/s", key="redis_per_subject_per_s")
        self.results["redis_calls"] = r

    def normalise_in_process(self):
        log("normalise in process (one core) beside json_loads")
        n = self.tool_json(self.bin("bench_normalise"), "--seconds", "0.3" if self.smoke else "3",
                           "--json")
        self.row("normalise", "jansson json_loads alone, same documents (raw limit)",
                 n["json_loads_per_s"], "docs/s", key="json_loads_per_s")
        self.row("normalise", "in process, JSON: parse+validate+map+encode", n["normalise_json_per_s"],
                 "events/s", ">= 0.80 of json_loads", n["json_ratio"], key="normalise_json_per_s")
        self.row("normalise", "in process, Avro: check+decode+map+encode", n["normalise_avro_per_s"],
                 "events/s", ">= 500000", n["normalise_avro_per_s"] / 500000.0,
                 key="normalise_avro_per_s")
        # what normalise end to end is held against (the ratio is in the scaling rows)
        self.normalise_in_process_per_s = {"json": n["normalise_json_per_s"],
                                           "avro": n["normalise_avro_per_s"]}

    def normalise_through_broker(self, scale, n, fmt, directory):
        topic_in = "bench.s%d.raw.%s" % (scale, fmt)
        topic_out = "bench.s%d.events.%s" % (scale, fmt)
        self.run(self.bin("bench_load"), "--bootstrap", self.bootstrap, "--topic", topic_in,
                 "--format", fmt, "--count", str(n), "--directory", directory)
        p = self.program("caresignal-normalise", {
            "topic.raw.nhse": topic_in, "topic.raw.ccg": "bench.unused.ccg",
            "topic.raw.ofsted-send": "bench.unused.ofsted", "topic.events": topic_out,
            "topic.deadletter": "bench.dead", "directory.file": directory,
            "group.id": "bench-norm-%d-%s" % (scale, fmt)})
        assigned = self.assigned_at(p)
        cpu = self.cpu_start({"caresignal-normalise": p.pid})
        # from the first output to the last: the rate once running, not the time a
        # consumer takes to start fetching
        t0, n0, t1 = self.until(topic_out, n)
        t0, n0 = steady(n, n0, t0, t1, assigned)
        self.results["normalise_%s_cpu_share_x%d" % (fmt, scale)] = self.cpu_share(cpu)
        self.check_alive([p])
        self.stop(p)
        return (n - n0) / (t1 - t0), topic_out

    def score_through_broker(self, tag, topic, n, run):
        """One run of caresignal-score on \\p topic's \\p n events, then bench_redis running
        exactly those events as the scorer's calls, each on an emptied Redis (FLUSHALL: the
        same starting state, and no earlier run's keys or AOF growth in the way).
        @returns (events/s end to end, events/s of Redis alone, details)."""
        ns = "bench-%s-r%d" % (tag, run)
        alerts_topic = "bench.alerts.%s.r%d" % (tag, run)
        r = cstest.Redis(self.redis_port)
        r.cmd("FLUSHALL")
        r.close()
        p = self.program("caresignal-score", {"topic.events": topic, "state.namespace": ns,
                                              "group.id": "bench-score-%s-r%d" % (tag, run),
                                              "topic.deadletter": "bench.dead",
                                              "topic.alerts": alerts_topic})
        assigned = self.assigned_at(p)
        r = cstest.Redis(self.redis_port)
        try:
            # from the first batch applied to the last (as for normalise)
            n0 = self.wait_for(lambda: self.positions(r, ns, topic), 120,
                               "the scorer's first batch", [p])
            t0 = time.time()
            cpu = self.cpu_start({"caresignal-score": p.pid})
            calls0 = command_calls(r)
            self.wait_for(lambda: self.positions(r, ns, topic) >= n, 600,
                          "the scorer to apply %d events" % n, [p])
            calls1 = command_calls(r)
        finally:
            r.close()
        t1 = time.time()
        share = self.cpu_share(cpu)
        t0, n0 = steady(n, n0, t0, t1, assigned)
        self.stop(p)
        try:  # the topic is created by the first alert produced
            alerts = self.count(alerts_topic)
        except RuntimeError:
            alerts = 0
        r = cstest.Redis(self.redis_port)
        r.cmd("FLUSHALL")
        redis0 = cpu_seconds(self.redis_pid)
        calls2 = command_calls(r)
        own = self.tool_json(self.bin("bench_redis"), "--port", str(self.redis_port),
                             "--from-topic", topic, "--bootstrap", self.bootstrap, "--namespace",
                             "bench-own-%s-r%d" % (tag, run), "--only", "subject",
                             "--layout", self.setting("state.layout", "1"),
                             "--engine", self.setting("state.engine", "redis"), "--json")
        # Redis CPU per event in both runs: the same work, whatever else the machine ran
        own["redis_cpu_us_per_event"] = round(1e6 * (cpu_seconds(self.redis_pid) - redis0) / n, 1)
        calls3 = command_calls(r)
        r.close()
        # how the two cut the same events into commands (the scorer's batches are what
        # its polls return, up to score.batch.max)
        own["commands_per_event_e2e"] = {k: round((calls1.get(k, 0) - calls0.get(k, 0)) / max(1, n - n0), 3)
                                         for k in ("fcall", "exec", "set", "zadd")}
        own["commands_per_event_alone"] = {k: round((calls3.get(k, 0) - calls2.get(k, 0)) / n, 3)
                                           for k in ("fcall", "exec", "set", "zadd")}
        own["redis_cpu_us_per_event_e2e"] = round(1e6 * share["redis-server"] * (t1 - t0) / max(1, n - n0), 1)
        own["redis_busy_e2e"] = share["redis-server"]
        own["cpu_share_e2e"] = share
        own["alerts"] = alerts
        rate = (n - n0) / (t1 - t0)
        own["score_e2e_per_s"] = round(rate, 1)
        return rate, own["per_subject_events_per_s"], own

    def score_runs(self, section, tag, topic, n, runs, what):
        """\\p runs runs of score end to end and of Redis alone for the same calls,
        alternating; rows: the medians, the ratio's median and range, Redis's busy share."""
        per = [self.score_through_broker(tag, topic, n, k) for k in range(runs)]
        self.results["score_runs_%s" % tag] = [d for _, _, d in per]
        e2e, e2e_lo, e2e_hi = spread([x for x, _, _ in per])
        alone, alone_lo, alone_hi = spread([o for _, o, _ in per])
        ratio, ratio_lo, ratio_hi = spread([x / o for x, o, _ in per])
        busy, busy_lo, busy_hi = spread([d["redis_busy_e2e"] for _, _, d in per])
        self.row(section, "score end to end, %s, median of %d (%.0f-%.0f)"
                 % (what, runs, e2e_lo, e2e_hi), e2e, "events/s", ">= 0.90 of Redis alone",
                 ratio, key="score_e2e_per_s_%s" % tag)
        self.row(section, "redis-server alone, the same calls, median (%.0f-%.0f)"
                 % (alone_lo, alone_hi), alone, "events/s", key="score_redis_same_calls_per_s_%s" % tag)
        self.row(section, "  score / Redis alone, run by run: median (range %.2f-%.2f)"
                 % (ratio_lo, ratio_hi), ratio, "", ">= 0.90", ratio / 0.90,
                 key="score_ratio_%s" % tag)
        self.row(section, "  Redis busy during score end to end (CPU s/s), median (%.2f-%.2f)"
                 % (busy_lo, busy_hi), busy, "", "1.0 if Redis bounds it",
                 key="score_redis_busy_%s" % tag)
        return per

    def replays(self, section, tag, topic, n, alone):
        """caresignal-replay rebuild and whatif (the same rules both sides) over \p topic's
        \p n events, each on an emptied Redis, beside Redis alone for the same calls
        (\p alone events/s; what-if makes every call twice, once per side, so its Redis
        alone is half that). The rate is the replay's own (its log line "replayed": from
        its first batch to the last event applied and acknowledged, as the scorer's is
        timed from its first batch)."""
        rules = "deploy/config/rules.json"  # the default, then the stack's, then --set's
        for line in open(self.config):
            k, _, v = line.partition("=")
            if k.strip() == "rules.file":
                rules = v.strip()
        rules = self.setting("rules.file", rules)
        for what in ("rebuild", "whatif"):
            r = cstest.Redis(self.redis_port)
            r.cmd("FLUSHALL")
            r.close()
            cmd = [self.bin("caresignal-replay"), "--config", self.config, "--set",
                   "topic.events=" + topic, "--set", "state.namespace=bench-live-" + tag]
            for kv in self.args.set or ():
                cmd += ["--set", kv]
            if what == "rebuild":
                cmd += ["rebuild", "--namespace", "bench-rebuild-" + tag, "--execute"]
            else:
                cmd += ["whatif", "--rules", rules, "--execute"]
            p = subprocess.run(cmd, cwd=TOP, capture_output=True, timeout=1800,
                               preexec_fn=_die_with_parent)
            err = p.stderr.decode(errors="replace")
            m = re.findall(r"^%s: (\d+)/\d+ \S+ ([\d.]+)/s done$" % what, err, re.M)
            if p.returncode or not m:
                raise RuntimeError("caresignal-replay %s exited with %d:\n%s"
                                   % (what, p.returncode, err[-3000:]))
            done = int(m[-1][0])
            # its rate from its first batch, as the scorer's (the log line "replayed")
            logged = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
            logged = [l for l in logged if l.get("msg") == "replayed"]
            rate = float(logged[-1]["events_per_s"]) if logged else float(m[-1][1])
            if done != n:
                raise RuntimeError("caresignal-replay %s read %d of %d events" % (what, done, n))
            limit = alone if what == "rebuild" else alone / 2
            self.row(section, "%s, %d events (Redis alone for its calls: %.0f/s)"
                     % ("rebuild" if what == "rebuild" else "what-if, both sides", n, limit),
                     rate, "events/s", ">= 0.90 of Redis alone", rate / limit,
                     key="%s_per_s_%s" % (what, tag))

    def score_alerts(self, n, subjects, runs):
        """Score with alerts: canonical events over \\p subjects locations, one in ten a
        NEVER_EVENT of the last hour on a location of its own (bench_load --alert-every
        10), so one event in ten raises an alert (a level change to INSPECT) that the
        scorer publishes, waits for and acknowledges."""
        log("score with alerts: %d events over %d locations, one in ten raising an alert, "
            "%d runs" % (n, subjects, runs))
        topic = "bench.alertfeed.events"
        self.run(self.bin("bench_load"), "--bootstrap", self.bootstrap, "--topic", topic,
                 "--format", "intel", "--count", str(n), "--subjects", str(subjects),
                 "--alert-every", "10")
        per = self.score_runs("score alerts", "alerts", topic, n, runs,
                              "%d events, 1 in 10 an alert" % n)
        alerts = [d["alerts"] for _, _, d in per]
        self.row("score alerts", "  alerts raised per run (expected %d)" % (n // 10),
                 statistics.median(alerts), "alerts", key="score_alerts_raised")

    def lag(self, n, partitions, cap_s):
        """Each consumer's peak resident memory when it starts with \\p n messages it has not
        read (a fresh broker; \\p partitions per topic, the mock keeping 5 MiB of each):
        normalise on NHSE JSON incidents, score on canonical events over n/10 locations,
        page (page.sink=stdout, read and counted) on n RiskAlerts; VmHWM once it has
        caught up, or after \\p cap_s s."""
        log("peak RSS with a lag of %d messages per consumer (fresh broker, %d partitions)"
            % (n, partitions))
        topics = {"bench.lag.raw": partitions, "bench.lag.events": partitions,
                  "bench.lag.alerts": partitions, "bench.lag.out": partitions}
        directory = os.path.join(TOP, "deploy/dev/data/directory.csv")
        ns = "benchlag"
        sets = {"directory.file": directory, "topic.raw.nhse": "bench.lag.raw",
                "topic.raw.ccg": "bench.lag.ccg", "topic.raw.ofsted-send": "bench.lag.ofsted",
                "topic.deadletter": "bench.dead", "state.namespace": ns}
        with self.fresh_broker(topics, "lag"):
            t = time.monotonic()
            for topic, fmt in (("bench.lag.raw", "json"), ("bench.lag.events", "intel"),
                               ("bench.lag.alerts", "alert")):
                self.run(self.bin("bench_load"), "--bootstrap", self.bootstrap, "--topic", topic,
                         "--format", fmt, "--count", str(n), "--directory", directory,
                         "--subjects", str(max(1, n // 10)), timeout=1200)
            held = {topic: self.count(topic) for topic in
                    ("bench.lag.raw", "bench.lag.events", "bench.lag.alerts")}
            self.results["lag_fill_seconds"] = round(time.monotonic() - t, 1)
            self.results["lag_held"] = held
            r = cstest.Redis(self.redis_port)
            lines = [0]

            def counter(p):
                fd = p.stdout.fileno()
                while True:
                    b = os.read(fd, 1 << 16)
                    if not b:
                        return
                    lines[0] += b.count(b"\n")
            runs = (
                ("caresignal-normalise", "bench.lag.raw", "raw NHSE events",
                 {"topic.events": "bench.lag.out", "group.id": "bench-lag-n"},
                 lambda: self.count("bench.lag.out")),
                ("caresignal-score", "bench.lag.events", "canonical events",
                 {"topic.events": "bench.lag.events", "topic.alerts": "bench.lag.scored",
                  "group.id": "bench-lag-s"},
                 lambda: self.positions(r, ns, "bench.lag.events")),
                ("caresignal-page", "bench.lag.alerts", "alerts",
                 {"topic.alerts": "bench.lag.alerts", "page.sink": "stdout",
                  "group.id": "bench-lag-p"},
                 lambda: lines[0]))
            try:
                for name, topic, what, extra, progress in runs:
                    page = name == "caresignal-page"
                    p = self.program(name, dict(sets, **extra),
                                     stdout=subprocess.PIPE if page else None)
                    if page:
                        threading.Thread(target=counter, args=(p,), daemon=True).start()
                    start = self.assigned_at(p, timeout=120)
                    t0 = time.monotonic() - max(0.0, time.time() - start)
                    done = 0
                    while time.monotonic() - t0 < cap_s:
                        self.check_alive([p])
                        done = progress()
                        if done >= held[topic]:
                            break
                        time.sleep(0.25)
                    secs = time.monotonic() - t0
                    status = {}
                    with open("/proc/%d/status" % p.pid) as f:
                        for l in f:
                            if l.startswith(("VmHWM", "VmRSS")):
                                status[l.split(":")[0]] = int(l.split()[1]) / 1024.0
                    self.stop(p)
                    caught = done >= held[topic]
                    self.results["lag_%s" % name] = {
                        "lag": held[topic], "done": done, "seconds": round(secs, 1),
                        "caught_up": caught, "vmhwm_mb": status["VmHWM"],
                        "vmrss_mb_at_end": status["VmRSS"]}
                    how = ("caught up in %.0f s" % secs) if caught else \
                        ("%d read in %.0f s" % (done, secs))
                    self.row("memory", "%s peak RSS, %d %s behind (%s)"
                             % (name, held[topic], what, how), status["VmHWM"], "MB",
                             "<= 50 MB", 50.0 / status["VmHWM"], key="lag_rss_mb_" + name)
            finally:
                r.cmd("FLUSHALL")  # the scorer's and the pager's keys
                r.close()

    LAT_TOPICS = {"bench.lat.nhse": 16, "bench.lat.events": 8, "bench.lat.alerts": 4}

    def hop_alone(self, rate, count, probe_every, warmup, what):
        """The dev broker's own hop, alone, on a fresh broker: bench_hop's probe producer ->
        probe consumer (the consumers' client settings) at \\p rate, every \\p probe_every-th
        message a probe, after \\p warmup messages and one delivered before them."""
        with self.fresh_broker({"bench.hop": 16}, what):
            cpu = self.cpu_start({})
            r = self.tool_json(self.bin("bench_hop"), "--bootstrap", self.bootstrap, "--topic",
                               "bench.hop", "--rate", str(rate), "--count", str(count),
                               "--probe-every", str(probe_every), "--warmup", str(warmup),
                               "--config", self.config, timeout=int(count / rate) + 180)
            r["cpu_share"] = self.cpu_share(cpu)
        return r

    def pipeline(self, rate, count, probe_every, warm_count, ns, directory, tag):
        """raw publish -> alert on the pager's stdout, three broker hops, on a fresh broker:
        normalise, score and page (page.sink=stdout) running; after a warm-up,
        bench_load sends \\p count NHSE incidents at \\p rate, every \\p probe_every-th a
        NEVER_EVENT on a fresh location (an immediate INSPECT). @returns the probes'
        latencies (ms, sorted), the per-stage split, the consumers' peak RSS and CPU."""
        with self.fresh_broker(self.LAT_TOPICS, "latency, " + tag):
            sets = {"directory.file": directory, "topic.raw.nhse": "bench.lat.nhse",
                    "topic.raw.ccg": "bench.lat.ccg", "topic.raw.ofsted-send": "bench.lat.ofsted",
                    "topic.events": "bench.lat.events", "topic.alerts": "bench.lat.alerts",
                    "topic.deadletter": "bench.dead", "state.namespace": ns}
            # each consumer's own end-to-end age histograms (docs/operations.md) split
            # the pipeline by stage from the inside
            mport = {n: cstest.free_port() for n in ("normalise", "score", "page")}
            norm = self.program("caresignal-normalise",
                                dict(sets, **{"group.id": "bench-lat-n-" + tag,
                                              "metrics.listen": "127.0.0.1:%d" % mport["normalise"]}))
            score = self.program("caresignal-score",
                                 dict(sets, **{"group.id": "bench-lat-s-" + tag,
                                               "metrics.listen": "127.0.0.1:%d" % mport["score"]}))
            page = self.program("caresignal-page",
                                dict(sets, **{"group.id": "bench-lat-p-" + tag,
                                              "metrics.listen": "127.0.0.1:%d" % mport["page"]}),
                                stdout=subprocess.PIPE)
            procs = (norm, score, page)
            arrivals, arrivals_wall = {}, {}

            def reader():
                for line in page.stdout:
                    t, wall = time.monotonic_ns(), time.time()
                    try:
                        k = json.loads(line)["triggered_by"]
                    except (ValueError, KeyError):
                        continue
                    arrivals[k] = t
                    arrivals_wall[k] = wall
            th = threading.Thread(target=reader, daemon=True)
            th.start()
            for p in procs:
                self.assigned_at(p)
            probe_info = {}

            def load(count, base, probes_file):
                # bench_load writes each probe's send time (CLOCK_MONOTONIC, as monotonic_ns)
                self.run(self.bin("bench_load"), "--bootstrap", self.bootstrap, "--topic",
                         "bench.lat.nhse", "--format", "json", "--count", str(count), "--rate",
                         str(rate), "--directory", directory, "--probe-every", str(probe_every),
                         "--probe-base", str(base), "--probes-out", probes_file)
                probes = {}
                for line in open(probes_file):
                    k, t, loc, wall = line.split()
                    probes[k] = int(t)
                    probe_info[k] = (loc, int(wall) / 1000.0)
                return probes
            # warm-up: the first messages meet cold clients (metadata, first fetches and
            # produces of each stage); the figure is the steady state at this rate
            warm = load(warm_count, 0, os.path.join(self.dir, "warm-%s.txt" % tag))
            self.wait_for(lambda: all(k in arrivals for k in warm), 60,
                          "the warm-up probes' alerts on the pager's stdout", procs)
            cpu = self.cpu_start({p.name: p.pid for p in procs})
            ages0 = stage_ages(mport)
            probes = load(count, len(warm) + 1, os.path.join(self.dir, "probes-%s.txt" % tag))
            try:
                self.wait_for(lambda: all(k in arrivals for k in probes), 30,
                              "the probes' alerts on the pager's stdout", procs)
            except RuntimeError as e:
                log("latency: %s (reporting the probes that arrived)" % str(e).split("\n")[0])
            cpu = self.cpu_share(cpu)
            stages = stage_split(ages0, stage_ages(mport))
            # peak resident memory of each consumer over the run
            rss = {}
            for p in procs:
                with open("/proc/%d/status" % p.pid) as f:
                    hwm = [l for l in f if l.startswith("VmHWM")][0]
                rss[p.name] = int(hwm.split()[1]) / 1024.0
            for p in procs:
                self.stop(p)
            hops = self.latency_hops(probes, probe_info, arrivals_wall)
        t_first = min(probes.values())
        series = [  # (s after the first probe, ms) in send order
            [round((t - t_first) / 1e9, 2), round((arrivals[k] - t) / 1e6, 1) if k in arrivals else None]
            for k, t in sorted(probes.items(), key=lambda kv: kv[1])]
        lat = sorted((arrivals[k] - t) / 1e6 for k, t in probes.items() if k in arrivals)
        if not lat:
            raise RuntimeError("no probe alert arrived (%s)" % tag)
        return {"lat": lat, "probes": len(probes), "missing": len(probes) - len(lat),
                "hops": hops, "stages": stages, "rss": rss, "cpu": cpu, "series": series}

    def latency(self, seconds, rate, directory, idle_seconds, idle_rate=10):
        """docs/contract/targets.md's latency targets, judged on caresignal rather than on the dev broker
        (the mock's fetches walk a partition's whole history, so it slows as a topic
        grows): each measurement on a fresh broker; under load the broker's own hop alone
        (bench_hop) and the pipeline's three hops at the same rate, caresignal's own share
        being the pipeline's percentile minus three times the hop's; then both idle. The
        pipeline runs on a fresh Redis too, not on one the earlier parts have filled."""
        n = rate * seconds
        log("latency: the dev broker's hop alone at %d msg/s for %d s (fresh broker)" % (rate, seconds))
        hop = self.hop_alone(rate, n, 250, rate // 2, "hop, %d/s" % rate)
        log("latency: raw publish -> alert on the pager's stdout at %d events/s for %d s "
            "(fresh broker)" % (rate, seconds))
        with self.fresh_redis("latency, load"):
            pipe = self.pipeline(rate, n, 250, rate // 2, "benchlat", directory, "load")
        n_idle = idle_rate * idle_seconds
        log("latency, idle: the hop alone, then the pipeline, %d probes/s for %d s (fresh brokers)"
            % (idle_rate, idle_seconds))
        hop_i = self.hop_alone(idle_rate, n_idle, 1, idle_rate, "hop, idle")
        with self.fresh_redis("latency, idle"):
            pipe_i = self.pipeline(idle_rate, n_idle, 1, idle_rate, "benchidle", directory,
                                   "idle")
        self.results["latency_hop_alone"] = hop
        self.results["latency_hop_alone_idle"] = hop_i
        self.results["latency_cpu_share"] = pipe["cpu"]
        self.results["latency_cpu_share_idle"] = pipe_i["cpu"]
        self.results["latency_series"] = pipe["series"]
        self.results["latency_series_idle"] = pipe_i["series"]
        self.results["latency_probes"] = pipe["probes"]
        self.results["latency_probes_missing"] = pipe["missing"]
        self.results["latency_probes_idle"] = pipe_i["probes"]
        self.results["latency_probes_missing_idle"] = pipe_i["missing"]
        self.results["latency_hops_ms"] = pipe["hops"]
        self.results["latency_hops_ms_idle"] = pipe_i["hops"]
        self.results["latency_stages_ms"] = pipe["stages"]
        self.results["latency_stages_ms_idle"] = pipe_i["stages"]

        sec = "end to end"
        self.row(sec, "dev broker alone, one hop, p50 (%d probes at %d msg/s, %d missing)"
                 % (hop["probes"], rate, hop["missing"]), hop["p50_ms"], "ms", key="hop_p50_ms")
        self.row(sec, "dev broker alone, one hop, p95", hop["p95_ms"], "ms", key="hop_p95_ms")
        self.row(sec, "dev broker alone, one hop, p99", hop["p99_ms"], "ms", key="hop_p99_ms")
        lat = pipe["lat"]
        self.row(sec, "raw publish -> pager stdout, p50 (%d probes, %d missing)"
                 % (pipe["probes"], pipe["missing"]), pct(lat, 0.50), "ms", key="latency_p50_ms")
        self.row(sec, "raw publish -> pager stdout, p95", pct(lat, 0.95), "ms", key="latency_p95_ms")
        self.row(sec, "raw publish -> pager stdout, p99", pct(lat, 0.99), "ms", key="latency_p99_ms")
        for q, name in ((0.50, "p50"), (0.95, "p95"), (0.99, "p99")):
            own = pct(lat, q) - 3 * hop[name + "_ms"]
            target = "<= 10 ms" if name == "p99" else None
            self.row(sec, "caresignal's own share (pipeline - 3 x hop), %s" % name, own, "ms",
                     target, 10.0 / own if target and own > 0 else None,
                     key="latency_own_%s_ms" % name)
        for h, v in pipe["hops"].items():
            self.row(sec, "  of which %s, p50 (p99)" % h, v["p50"], "ms", "(p99 %.0f ms)" % v["p99"])
        self.stage_rows(sec, pipe["stages"])

        sec = "idle"
        self.row(sec, "dev broker alone, one hop, p50 (%d probes at %d/s, %d missing)"
                 % (hop_i["probes"], idle_rate, hop_i["missing"]), hop_i["p50_ms"], "ms",
                 key="hop_idle_p50_ms")
        self.row(sec, "dev broker alone, one hop, p99", hop_i["p99_ms"], "ms", key="hop_idle_p99_ms")
        lat = pipe_i["lat"]
        p50, p99 = pct(lat, 0.50), pct(lat, 0.99)
        self.row(sec, "raw publish -> pager stdout, p50 (%d probes at %d/s, %d missing)"
                 % (pipe_i["probes"], idle_rate, pipe_i["missing"]), p50, "ms", "<= 5 ms",
                 5.0 / p50 if p50 > 0 else None, key="latency_idle_p50_ms")
        self.row(sec, "raw publish -> pager stdout, p99", p99, "ms", "<= 10 ms",
                 10.0 / p99 if p99 > 0 else None, key="latency_idle_p99_ms")
        self.row(sec, "caresignal's own share (pipeline - 3 x hop), p50",
                 p50 - 3 * hop_i["p50_ms"], "ms", key="latency_idle_own_p50_ms")
        self.row(sec, "caresignal's own share (pipeline - 3 x hop), p99",
                 p99 - 3 * hop_i["p99_ms"], "ms", key="latency_idle_own_p99_ms")
        for h, v in pipe_i["hops"].items():
            self.row(sec, "  of which %s, p50 (p99)" % h, v["p50"], "ms", "(p99 %.0f ms)" % v["p99"])
        self.stage_rows(sec, pipe_i["stages"])
        for name, mb in pipe["rss"].items():
            self.row("memory", "%s peak resident memory (5,000 events/s)" % name, mb, "MB",
                     "<= 50 MB", 50.0 / mb, key="rss_mb_" + name)

    STAGE_LABELS = {"normalise": "publish -> event delivered (normaliser's age histogram)",
                    "score": "publish -> applied, alerts acknowledged (scorer's)",
                    "page": "publish -> paged (pager's)"}

    def stage_rows(self, sec, stages):
        """Each stage's own view of the age of what it finished (all messages, not only the
        probes; from its histogram, so within a bucket's width)."""
        for stage, v in stages.items():
            self.row(sec, "  stage %s, p50 (p99), %d messages"
                     % (self.STAGE_LABELS[stage], v["n"]), v["p50"], "ms",
                     "(p99 %.1f ms)" % v["p99"])

    def latency_hops(self, probes, probe_info, arrivals_wall):
        """Where the probes' time goes: the Kafka timestamp (CreateTime, ms, set when the
        scorer produced it) of each probe's alert, keyed by the probe's location, which no
        other message uses, splits it into publish -> alert produced (normalise and score,
        two broker hops) and alert -> stdout (page, one broker hop). (Canonical events
        carry their occurred_at as timestamp, so they cannot split it further.)
        @returns {stage: {"p50": ms, "p99": ms}}."""
        try:
            out = subprocess.run(["kcat", "-C", "-b", self.bootstrap, "-t", "bench.lat.alerts",
                                  "-e", "-q", "-f", "%k %T\n"], capture_output=True, text=True,
                                 timeout=120, preexec_fn=_die_with_parent).stdout
        except (OSError, subprocess.SubprocessError) as e:
            log("latency: no per-stage breakdown (%s)" % e)
            return {}
        alerts = {}
        for line in out.splitlines():
            k, t = line.rsplit(" ", 1)
            alerts.setdefault(k.split(":", 1)[-1], int(t) / 1000.0)
        hops = {"publish -> alert produced": [], "alert -> pager stdout": []}
        for k in probes:
            loc, sent = probe_info[k]
            if loc in alerts and k in arrivals_wall:
                hops["publish -> alert produced"].append(1000 * (alerts[loc] - sent))
                hops["alert -> pager stdout"].append(1000 * (arrivals_wall[k] - alerts[loc]))
        split = {}
        for h, v in hops.items():
            if not v:
                continue
            v.sort()
            p50, p99 = statistics.median(v), v[min(len(v) - 1, int(0.99 * len(v)))]
            split[h] = {"p50": round(p50, 1), "p99": round(p99, 1)}
        return split

    # the ways of keeping state the engine part compares: (key suffix, label, layout, engine)
    ENGINES = (("layout1", "layout 1", 1, "redis"), ("layout2", "layout 2", 2, "redis"),
               ("scorer", "layout 2 computed in the scorer", 2, "scorer"))
    # what Redis runs per subject and batch, by engine (INFO commandstats)
    ENGINE_COMMANDS = {"redis": ("fcall",), "scorer": ("watch", "mget", "multi", "set", "exec")}

    def engine(self):
        """The state layouts (docs/contract/redis-layout.md) and layout 2 computed in the
        scorer (state.engine=scorer), on the same calls, each on a fresh Redis: Redis CPU per
        applied event (the server's CPU time over the run, INFO cpu, which includes the positions,
        rank updates and acknowledgements the scorer also sends) and the per-subject
        commands' own time (INFO commandstats: the FCALL, or the WATCH, MGET, MULTI, SETs
        and EXEC), at ~1 and ~5 events per call over typical 90-day subjects and at ~1 per
        call over heavy subjects; then callgrind's count of redis-server's instructions per
        event (deterministic)."""
        n = 2000 if self.smoke else 50000
        heavy = 1000 if self.smoke else 20000
        shapes = [("~1 event per call", n, 3000, 500, 90),
                  ("~5 events per call", n, 3000, 15000, 90),
                  ("heavy subjects (2,000 events over 396 days each), ~1 per call",
                   heavy, max(1, heavy // 2000), max(1, heavy // 2000), 396)]
        log("state layouts and engines: Redis CPU per event")
        for tag, (what, events, subjects, batch, days) in enumerate(shapes):
            per = {}
            for name, label, layout, eng in self.ENGINES:
                with self.fresh_redis(label):
                    r = cstest.Redis(self.redis_port)
                    r.cmd("CONFIG", "RESETSTAT")
                    cpu0 = redis_cpu_seconds(r)
                    out = self.tool_json(
                        self.bin("bench_redis"), "--port", str(self.redis_port), "--events",
                        str(events), "--subjects", str(subjects), "--batch", str(batch),
                        "--days", str(days), "--namespace", "eng-" + name, "--only",
                        "subject", "--layout", str(layout), "--engine", eng, "--json")
                    cpu = redis_cpu_seconds(r) - cpu0
                    stats = r.cmd("INFO", "commandstats").decode()
                    r.close()
                usec = 0.0
                for line in stats.splitlines():
                    cmd = line.split(":", 1)[0][len("cmdstat_"):]
                    if cmd in self.ENGINE_COMMANDS[eng]:
                        usec += float(line.split(",usec=")[1].split(",")[0])
                calls = out["per_subject_calls"]
                per[name] = 1e6 * cpu / events
                self.row("state layouts", "%s, %s: Redis CPU per applied event"
                         % (label, what), per[name], "us", "<= 10" if eng == "scorer" else None,
                         10.0 / per[name] if eng == "scorer" else None,
                         key="redis_cpu_us_per_event_%s_%d" % (name, tag))
                self.row("state layouts", "  its %s, per call (%.1f events a call)"
                         % ("function" if eng == "redis" else "transactions' commands",
                            events / calls), usec / calls, "us",
                         key="per_call_us_%s_%d" % (name, tag))
            self.row("state layouts", "  layout 2 / layout 1, Redis CPU per event",
                     per["layout2"] / per["layout1"], "", key="layout_cpu_ratio_%d" % tag)
            self.row("state layouts", "  computed in the scorer / layout 1, Redis CPU per event",
                     per["scorer"] / per["layout1"], "", key="scorer_cpu_ratio_%d" % tag)
        if not shutil.which("valgrind"):
            raise RuntimeError("valgrind is not installed (deploy/dev/install-deps.sh)")
        log("state layouts and engines: callgrind instructions per event")
        # subjects with ~17 events of state first (not counted), then the counted calls:
        # batches of 500 (~1 event a call) or one batch of 5 events a subject
        subjects = 60 if self.smoke else 1000
        for tag, (what, batch) in enumerate([("~1 event per call", 500),
                                              ("~5 events per call", 5 * subjects)]):
            counted = (100 if self.smoke else 2000) if tag == 0 else 5 * subjects
            ir = {}
            for name, label, layout, eng in self.ENGINES:
                ir[name] = self.callgrind_redis(17 * subjects, counted, subjects, batch,
                                                layout, eng)
                self.row("state layouts", "%s, %s: redis-server instructions per "
                         "event (callgrind, %d events)" % (label, what, counted),
                         ir[name], "instr",
                         key="redis_instr_per_event_%s_%d" % (name, tag))
            self.row("state layouts", "  layout 2 / layout 1, instructions per event",
                     ir["layout2"] / ir["layout1"], "", key="layout_instr_ratio_%d" % tag)
            self.row("state layouts", "  computed in the scorer / layout 1, instructions per "
                     "event", ir["scorer"] / ir["layout1"], "",
                     key="scorer_instr_ratio_%d" % tag)

    def callgrind_redis(self, populate, events, subjects, batch, layout, eng="redis"):
        """redis-server under callgrind, counting only while bench_redis applies \p events
        (callgrind_control -i) after \p populate uncounted ones over the same subjects:
        its instructions per event, everything included."""
        d = tempfile.mkdtemp(prefix="callgrind-", dir=self.dir)
        port = cstest.free_port()
        out = os.path.join(d, "callgrind.out")
        p = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             "--callgrind-out-file=" + out, "redis-server", "--port", str(port), "--bind",
             "127.0.0.1", "--dir", d, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        p.log_path, p.name = os.path.join(d, "none"), "redis-server (callgrind)"
        self.procs.append(p)
        try:
            def up():
                try:
                    r = cstest.Redis(port)
                    r.cmd("PING")
                    r.close()
                    return True
                except OSError:
                    return None
            self.wait_for(up, 120, "redis-server under callgrind")
            common = ("--port", str(port), "--subjects", str(subjects), "--namespace", "cg",
                      "--only", "subject", "--layout", str(layout), "--engine", eng, "--json")
            self.run(self.bin("bench_redis"), "--events", str(populate), "--batch", "500",
                     *common, timeout=1800)
            self.run("callgrind_control", "-i", "on", str(p.pid))
            self.run(self.bin("bench_redis"), "--events", str(events), "--batch", str(batch),
                     "--key-base", "100000000", *common, timeout=1800)
            self.run("callgrind_control", "-i", "off", str(p.pid))
        finally:
            self.stop(p)
        total = 0
        for name in os.listdir(d):
            if name.startswith("callgrind.out"):
                with open(os.path.join(d, name)) as f:
                    for line in f:
                        if line.startswith("summary:") or line.startswith("totals:"):
                            total = max(total, int(line.split()[1]))
        if not total:
            raise RuntimeError("callgrind wrote no totals (in %s)" % d)
        return round(total / events)

    def redis_memory(self):
        log("Redis memory per subject after the 90-day synthetic feed")
        feed = os.path.join(self.dir, "feed")
        now = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime())
        self.run(sys.executable, os.path.join(TOP, "deploy/dev/gen-feed.py"), "--out-dir", feed,
                 "--now", now, *(["--scale", "0.2"] if self.smoke else []))
        directory = os.path.join(TOP, "deploy/dev/data/directory.csv")
        ns = "benchmem"
        sets = {"topic.raw.nhse": "bench.mem.nhse", "topic.raw.ccg": "bench.mem.ccg",
                "topic.raw.ofsted-send": "bench.mem.ofsted", "topic.events": "bench.mem.events",
                "topic.alerts": "bench.mem.alerts", "topic.deadletter": "bench.dead",
                "directory.file": directory, "state.namespace": ns}
        r = cstest.Redis(self.redis_port)
        used0 = used_memory(r)
        norm = self.program("caresignal-normalise", dict(sets, **{"group.id": "bench-mem-n"}))
        score = self.program("caresignal-score", dict(sets, **{"group.id": "bench-mem-s"}))
        for name, source in (("nhse", "nhse"), ("ccg", "ccg"), ("ofsted", "ofsted-send")):
            src = os.path.join(self.dir, name + ".events.jsonl")
            with open(os.path.join(feed, name + ".jsonl")) as f, open(src, "w") as out:
                for line in f:
                    out.write(json.dumps(json.loads(line)["value"]) + "\n")
            self.run(self.bin("caresignal-publish"), "--config", self.config, "--set",
                     "topic.raw.%s=bench.mem.%s" % (source, name), "--source", source, src)
        expected = json.load(open(os.path.join(feed, "manifest.json")))["canonical_events"]
        # every canonical event of the feed normalised, then applied by the scorer
        self.wait_for(lambda: self.count("bench.mem.events") >= expected, 120,
                      "%d canonical events" % expected, [norm, score])
        self.wait_for(lambda: self.positions(r, ns, "bench.mem.events") >= expected, 120,
                      "the scorer to apply them", [norm, score])
        # the same events into layout 2 (one packed string per subject)
        used2 = used_memory(r)
        score2 = self.program("caresignal-score", dict(sets, **{
            "group.id": "bench-mem-s2", "state.namespace": ns + "2", "state.layout": "2"}))
        self.wait_for(lambda: self.positions(r, ns + "2", "bench.mem.events") >= expected,
                      120, "the layout 2 scorer to apply them", [score2])
        self.stop(score2)
        grown2 = used_memory(r) - used2
        self.stop(norm)
        self.stop(score)
        grown = used_memory(r) - used0 - grown2
        per_subject, by_type, events_per = subject_memory(r, ns, self.config)
        rank = sum(r.cmd("MEMORY", "USAGE", k, "SAMPLES", "0") or 0
                   for k in r.scan_keys(ns + ":rank:*"))
        # docs/contract/targets.md's typical subject also has <= 100 events in 13 months, which a
        # 90-day feed cannot show (the seen sets live 400 days): 100 events each over
        # 396 days, applied directly as the scorer would
        n13 = 20 if self.smoke else 200
        self.run(self.bin("bench_redis"), "--port", str(self.redis_port), "--events",
                 str(100 * n13), "--subjects", str(n13), "--days", "396", "--namespace",
                 "benchmem13", "--only", "subject", "--json")
        per13, by13, _ = subject_memory(r, "benchmem13-s", self.config)
        self.run(self.bin("bench_redis"), "--port", str(self.redis_port), "--events",
                 str(100 * n13), "--subjects", str(n13), "--days", "396", "--namespace",
                 "benchmem13l2", "--only", "subject", "--layout", "2", "--json")
        per13_2, _, _ = subject_memory(r, "benchmem13l2-s", self.config)
        per_subject2, _, events_per2 = subject_memory(r, ns + "2", self.config)
        r.close()
        sizes = sorted(per_subject.values())
        typical = sorted(v for s, v in per_subject.items() if events_per.get(s, 0) <= 20)
        self.results["redis_memory_subjects"] = len(sizes)
        self.results["redis_bytes_per_subject_by_key_type"] = {
            k: round(v / len(sizes), 1) for k, v in sorted(by_type.items())}
        self.results["redis_bytes_per_subject_rank_sets"] = round(rank / len(sizes), 1)
        self.row("memory", "Redis per subject, median (%d subjects)" % len(sizes),
                 statistics.median(sizes), "bytes", "<= 2048", 2048.0 / statistics.median(sizes),
                 key="redis_bytes_per_subject_median")
        self.row("memory", "Redis per subject, mean", statistics.mean(sizes), "bytes",
                 key="redis_bytes_per_subject_mean")
        for kind, v in sorted(by_type.items()):
            self.row("memory", "  of which %s keys (mean per subject)" % kind, v / len(sizes),
                     "bytes")
        self.row("memory", "  plus its share of the rank sets", rank / len(sizes), "bytes")
        self.row("memory", "  cross-check: INFO used_memory growth / subjects", grown / len(sizes),
                 "bytes", key="redis_used_memory_growth_per_subject")
        if typical:
            p90 = typical[int(0.9 * (len(typical) - 1))]
            self.row("memory", "Redis per typical subject (<= 20 events), p90", p90, "bytes",
                     "<= 2048", 2048.0 / p90, key="redis_bytes_per_typical_subject_p90")
        m13 = statistics.median(per13.values())
        self.results["redis_bytes_per_subject_13_months_by_key_type"] = {
            k: round(v / len(per13), 1) for k, v in sorted(by13.items())}
        self.row("memory", "Redis per subject, 100 events over 13 months, median", m13,
                 "bytes", "<= 2048", 2048.0 / m13, key="redis_bytes_per_subject_13_months")
        for kind, v in sorted(by13.items()):
            self.row("memory", "  of which %s keys (mean per subject)" % kind, v / len(per13),
                     "bytes")
        # layout 2: the same subjects
        sizes2 = sorted(per_subject2.values())
        self.row("memory", "layout 2: Redis per subject, median (%d subjects)" % len(sizes2),
                 statistics.median(sizes2), "bytes", "<= 2048",
                 2048.0 / statistics.median(sizes2), key="redis_bytes_per_subject_median_l2")
        self.row("memory", "layout 2: cross-check: INFO used_memory growth / subjects",
                 grown2 / len(sizes2), "bytes")
        typical2 = sorted(v for s_, v in per_subject2.items() if events_per2.get(s_, 0) <= 20)
        if typical2:
            p90 = typical2[int(0.9 * (len(typical2) - 1))]
            self.row("memory", "layout 2: Redis per typical subject (<= 20 events), p90", p90,
                     "bytes", "<= 2048", 2048.0 / p90,
                     key="redis_bytes_per_typical_subject_p90_l2")
        m13_2 = statistics.median(per13_2.values())
        self.row("memory", "layout 2: Redis per subject, 100 events over 13 months, median",
                 m13_2, "bytes", "<= 2048", 2048.0 / m13_2,
                 key="redis_bytes_per_subject_13_months_l2")

    def directory(self, scale, count):
        """A location directory of \p count locations: deploy/dev/gen-directory.py's (it
        makes up to ~40,000), extended with copies of its rows under new location ids."""
        path = os.path.join(self.dir, "directory-%d.csv" % scale)
        made = min(count, 30000)
        self.run(sys.executable, os.path.join(TOP, "deploy/dev/gen-directory.py"),
                 "--count", str(made), "--out", path)
        if count > made:
            with open(path, newline="") as f:
                rows = list(csv.reader(f))[1:]
            with open(path, "a", newline="") as f:
                w = csv.writer(f, lineterminator="\n")
                for i in range(count - made):
                    row = list(rows[i % len(rows)])
                    row[0] = "1-%d" % (900000000 + i)
                    row[2] += " %d" % i
                    w.writerow(row)
        return path

    def scaling(self, scales, base_events, base_subjects, runs):
        for scale in scales:
            n = base_events * scale
            subjects = base_subjects * scale
            log("throughput at %dx: %d events over %d locations" % (scale, n, subjects))
            directory = self.directory(scale, subjects)
            section = "scaling x%d" % scale
            for fmt in ("json", "avro"):
                rate, topic = self.normalise_through_broker(scale, n, fmt, directory)
                self.results["normalise_%s_e2e_over_raw_consume_x%d" % (fmt, scale)] = \
                    round(rate / self.consume_rate, 3)
                inproc = getattr(self, "normalise_in_process_per_s", {}).get(fmt)
                if inproc:  # docs/contract/targets.md: each consumer end to end >= 0.80 of in process
                    self.row(section, "normalise end to end, %s, %d events" % (fmt, n), rate,
                             "events/s", ">= 0.80 of in process", rate / inproc,
                             key="normalise_%s_e2e_per_s_x%d" % (fmt, scale))
                else:
                    self.row(section, "normalise end to end, %s, %d events" % (fmt, n), rate,
                             "events/s", "(raw consume %.0f/s)" % self.consume_rate,
                             rate / self.consume_rate, key="normalise_%s_e2e_per_s_x%d" % (fmt, scale))
                if fmt == "json":
                    events_topic = topic
            log("score at %dx: %d runs end to end and of Redis alone" % (scale, runs))
            per = self.score_runs(section, "x%d" % scale, events_topic, n, runs,
                                  "%d events" % n)
            log("rebuild and what-if at %dx" % scale)
            self.replays(section, "x%d" % scale, events_topic, n,
                         statistics.median([o for _, o, _ in per]))

    # ------------------------------------------------------------------ cluster
    def cluster_applied(self, ns, topic):
        """Events a scorer group has applied from \p topic on the cluster: each master's
        positions summed (under the tag of its lowest slot: docs/contract/redis-layout.md),
        the lowest over the masters."""
        sums = []
        for port in self.cluster_ports:
            r = cstest.Redis(port)
            try:
                slots = r.cmd("CLUSTER", "SLOTS")
                me = [e for e in slots if int(e[2][1]) == port]
                low = min(int(e[0]) for e in me)
                tag = cstest.slot_tag(low)[1:-1]  # the contract's tag, without braces
                keys = ["%s:pos:{%s}:%s:%d" % (ns, tag, topic, p)
                        for p in range(self.topics[topic])]
                sums.append(sum(int(v) for v in r.cmd("MGET", *keys) if v is not None))
            finally:
                r.close()
        return min(sums)

    def cluster_redis_cpu(self):
        total = 0.0
        for port in self.cluster_ports:
            r = cstest.Redis(port)
            total += redis_cpu_seconds(r)
            r.close()
        return total

    def score_group(self, tag, topic, n, scorers, on_cluster):
        """\p scorers caresignal-score processes in one group over \p topic's \p n events,
        on one node (a fresh redis-server) or on the cluster in use. @returns (events/s from
        the first batch to the last, Redis CPU us per event summed over the nodes, the
        CPU share of every process)."""
        ns = "bench-cl-%s" % tag
        sets = {"topic.events": topic, "state.namespace": ns, "group.id": "bench-cl-" + tag,
                "topic.deadletter": "bench.dead", "topic.alerts": "bench.cl.alerts." + tag}
        if on_cluster:
            applied = lambda: self.cluster_applied(ns, topic)
            rcpu = self.cluster_redis_cpu
        else:
            r = cstest.Redis(self.redis_port)
            applied = lambda: self.positions(r, ns, topic)
            rcpu = lambda: redis_cpu_seconds(r)
        cpu0 = rcpu()  # Redis CPU per event: over all of the events
        procs = [self.program("caresignal-score", sets) for _ in range(scorers)]
        assigned = max(self.assigned_at(p) for p in procs)
        # every scorer has its partitions: from then on the group's work is measured
        if scorers > 1:
            time.sleep(1.0)
        n0 = self.wait_for(applied, 120, "the group's first batch", procs)
        t0 = time.time()
        pids = {"caresignal-score-%d" % i: p.pid for i, p in enumerate(procs)}
        if on_cluster:
            pids.update({"redis-server-%d" % i: pid for i, pid in enumerate(self.cluster_pids)})
        share0 = self.cpu_start(pids)
        self.wait_for(lambda: applied() >= n, 900, "the group to apply %d events" % n, procs)
        t1 = time.time()
        cpu1 = rcpu()
        share = self.cpu_share(share0)
        if not on_cluster:
            r.close()
        for p in procs:
            self.stop(p)
        t0s, n0s = steady(n, n0, t0, t1, assigned)
        rate = (n - n0s) / (t1 - t0s)
        return rate, 1e6 * (cpu1 - cpu0) / n, share

    def cluster(self, n, subjects, masters=3):
        """Score on one node and on a Redis Cluster of \p masters masters, with one and
        with \p masters scorer processes: events/s, Redis CPU per event, and the ratio
        to masters x one node's rate."""
        log("cluster: %d events over %d locations, one node and %d masters" % (n, subjects, masters))
        section = "redis cluster"
        topic = "bench.cl.events"
        directory = self.directory(100 + masters, subjects)
        self.run(self.bin("bench_load"), "--bootstrap", self.bootstrap, "--topic", "bench.cl.raw",
                 "--format", "avro", "--count", str(n), "--directory", directory)
        p = self.program("caresignal-normalise", {
            "topic.raw.nhse": "bench.cl.raw", "topic.raw.ccg": "bench.unused.ccg",
            "topic.raw.ofsted-send": "bench.unused.ofsted", "topic.events": topic,
            "topic.deadletter": "bench.dead", "directory.file": directory,
            "group.id": "bench-cl-norm"})
        self.until(topic, n)
        self.stop(p)
        got = {}
        # a smoke run: one scorer only (the code paths are the same; seconds saved)
        counts = (1,) if self.smoke else (1, masters)
        for scorers in counts:
            with self.fresh_redis("one node, %d scorers" % scorers):
                got[("node", scorers)] = self.score_group("node%d" % scorers, topic, n,
                                                          scorers, False)
            with self.fresh_cluster(masters, "%d masters, %d scorers" % (masters, scorers)):
                got[("cluster", scorers)] = self.score_group("cl%d" % scorers, topic, n,
                                                             scorers, True)
        self.results["cluster_runs"] = {"%s_%d" % k: {"events_per_s": round(v[0], 1),
                                                      "redis_cpu_us_per_event": round(v[1], 2),
                                                      "cpu_share": v[2]}
                                        for k, v in got.items()}
        one = max(got[("node", k)][0] for k in counts)
        for (where, scorers), (rate, cpu, share) in sorted(got.items()):
            label = "one node" if where == "node" else "%d masters" % masters
            self.row(section, "score, %s, %d scorer%s" % (label, scorers, "s" * (scorers > 1)),
                     rate, "events/s", key="cluster_%s_%d_per_s" % (where, scorers))
            self.row(section, "  Redis CPU per event (summed over the nodes)", cpu, "us",
                     key="cluster_%s_%d_redis_us" % (where, scorers))
        best = max(got[("cluster", k)][0] for k in counts)
        self.row(section, "%d masters / (%d x one node), events/s" % (masters, masters), best,
                 "events/s", ">= 0.8 x %d x %.0f" % (masters, one), best / (masters * one),
                 key="cluster_ratio_rate")
        # Redis's capacity: CPU per event on one node over the cluster's, summed over its
        # masters, with the same scorers: with a core per master, the cluster's rate is
        # masters x this x one node's (on two cores the masters share what one node had)
        for scorers in counts:
            node_cpu, cl_cpu = got[("node", scorers)][1], got[("cluster", scorers)][1]
            ratio = node_cpu / cl_cpu if cl_cpu else 0
            self.row(section, "Redis CPU per event, one node / %d masters summed, %d scorer%s"
                     % (masters, scorers, "s" * (scorers > 1)), ratio, "",
                     ">= 0.8 (capacity x masters)", ratio / 0.8,
                     key="cluster_ratio_cpu_%d" % scorers)
        busy = sum(v for k, v in got[("cluster", 1)][2].items() if k.startswith("redis-server-"))
        self.row(section, "  the %d masters' CPU during the 1-scorer run (of %d cores)"
                 % (masters, os.cpu_count()), busy, "cores", key="cluster_masters_busy")
        self.results["cpus"] = os.cpu_count()

    # ------------------------------------------------------------------ report
    def machine(self):
        cpu = ""
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0].split()[1]

        def version(cmd):
            try:
                return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().split("\n")[0]
            except OSError:
                return "?"
        cache = os.path.join(self.build, "CMakeCache.txt")
        cache = open(cache).read() if os.path.exists(cache) else ""
        build_type = [l.split("=", 1)[1] for l in cache.splitlines()
                      if l.startswith("CMAKE_BUILD_TYPE:")]
        return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(int(mem) / 1048576, 1),
                "kernel": platform.release(), "librdkafka": version(["pkg-config", "--modversion", "rdkafka"]),
                "avro-c": version(["pkg-config", "--modversion", "avro-c"]),
                "jansson": version(["pkg-config", "--modversion", "jansson"]),
                "redis": version(["redis-server", "--version"]),
                "build_type": build_type[0] if build_type else "?",
                # other work on the machine skews every figure: the load when it ended
                "loadavg": open("/proc/loadavg").read().split()[:3],
                "sanitized": "CS_SANITIZE:BOOL=ON" in cache, "smoke": self.smoke}

    def report(self, started):
        m = self.machine()
        print("\ncaresignal bench%s — %s, %d cores, %s build%s"
              % (" (SMOKE: not measurements)" if self.smoke else "", m["cpu"], os.cpu_count(),
                 m["build_type"], ", sanitized" if m["sanitized"] else ""))
        print("%-12s %-74s %14s  %-9s %-24s %s" % ("section", "figure", "value", "unit", "target", "ratio"))
        for section, figure, value, unit, target, ratio in self.rows:
            if value is None:
                v = "%14s" % "-"
            elif isinstance(value, float) and abs(value) < 10:
                v = "%14.2f" % value
            else:
                v = ("%14.1f" if isinstance(value, float) and abs(value) < 1000 else "%14.0f") % value
            print("%-12s %-74s %s  %-9s %-24s %s" % (section, figure[:74], v, unit, target or "",
                                                     "%.2f" % ratio if ratio is not None else ""))
        out = self.args.out
        if not out and self.smoke:
            out = os.path.join(self.build, "bench-smoke.json")
        elif not out:
            out = os.path.join(TOP, "bench", "results", time.strftime("%Y-%m-%dT%H%M%S") + ".json")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        doc = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": m,
               "command": " ".join([os.path.relpath(__file__, TOP)] + sys.argv[1:]),
               "seconds": round(time.monotonic() - started, 1), "results": self.results,
               "table": [dict(zip(("section", "figure", "value", "unit", "target", "ratio"), r))
                         for r in self.rows]}
        with open(out, "w") as f:
            json.dump(doc, f, indent=1)
        print("\nwritten to %s (%.0f s)" % (out, time.monotonic() - started))


PARTS = ("raw", "normalise", "scaling", "alerts", "engine", "latency", "lag", "memory",
         "cluster")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="every part, in seconds (for the test suite)")
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--out", help="results file (default bench/results/<time>.json; "
                    "with --smoke, <build>/bench-smoke.json)")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="which parts to run (comma-separated; the table needs them all): "
                    + ",".join(PARTS))
    ap.add_argument("--scales", default="1,10,100",
                    help="multiples of the base work (8,000 events over 2,000 locations)")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs of score end to end and of Redis alone at each scale and for "
                    "the alert feed (median and range; --smoke: 1)")
    ap.add_argument("--alert-feed", type=int, default=100000,
                    help="events of the score feed where one in ten raises an alert, over a "
                    "tenth as many locations (--smoke: 2,000)")
    ap.add_argument("--lag", type=int, default=1000000,
                    help="messages each consumer starts behind for the peak-RSS part "
                    "(--smoke: 5,000)")
    ap.add_argument("--lag-seconds", type=float, default=45,
                    help="how long each consumer of the lag part runs at most (--smoke: 15)")
    ap.add_argument("--cluster-events", type=int, default=200000,
                    help="events of the Redis Cluster part, over a quarter as many "
                    "locations (--smoke: 2,000)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="a configuration setting for every consumer the bench starts "
                    "(repeatable; for trying a setting, e.g. inflight.max.messages=50000)")
    args = ap.parse_args()
    scales = [1] if args.smoke else [int(x) for x in args.scales.split(",")]
    base_events, base_subjects = (1000, 1000) if args.smoke else (8000, 2000)
    runs = 1 if args.smoke else max(1, args.runs)
    alert_feed = 2000 if args.smoke else args.alert_feed
    lag, lag_seconds = (5000, 15) if args.smoke else (args.lag, args.lag_seconds)
    # the mock keeps 5 MiB of each partition: ~400-byte messages need ~1 partition per
    # 10,000 to be held whole
    lag_partitions = 8 if args.smoke else max(8, min(256, 2 ** (lag // 10000).bit_length()))
    b = Bench(args)
    started = time.monotonic()
    b.results["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    b.results["sizes"] = {"scales": scales, "runs": runs, "alert_feed_events": alert_feed,
                          "lag_messages": lag, "lag_partitions": lag_partitions,
                          "lag_seconds_max": lag_seconds}
    # the latency and lag parts start fresh brokers of their own
    topics = {"bench.raw": 16, "bench.alertfeed.events": 16, "bench.cl.raw": 24,
              "bench.cl.events": 24, "bench.mem.nhse": 8,
              "bench.mem.ccg": 8, "bench.mem.ofsted": 4, "bench.mem.events": 16}
    for s in scales:
        parts = max(8, 2 * s)
        for fmt in ("json", "avro"):
            topics["bench.s%d.raw.%s" % (s, fmt)] = parts
            topics["bench.s%d.events.%s" % (s, fmt)] = parts
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    ok = False
    try:
        parts = args.parts.split(",")
        unknown = [p for p in parts if p not in PARTS]
        if unknown:
            raise RuntimeError("unknown part(s) %s (parts: %s)" % (",".join(unknown), ",".join(PARTS)))
        b.start_stack(topics)
        b.raw_limits(5000 if args.smoke else 100000)  # scaling needs the consume rate
        if "normalise" in parts:
            b.normalise_in_process()
        if "scaling" in parts:
            b.scaling(scales, base_events, base_subjects, runs)
        if "alerts" in parts:
            b.score_alerts(alert_feed, max(1, alert_feed // 10), runs)
        if "engine" in parts:
            b.engine()
        if "latency" in parts:
            b.latency(2 if args.smoke else 20, 5000,
                      os.path.join(TOP, "deploy/dev/data/directory.csv"),
                      2 if args.smoke else 20)
        if "lag" in parts:
            b.lag(lag, lag_partitions, lag_seconds)
        if "memory" in parts:
            b.redis_memory()
        if "cluster" in parts:
            b.cluster(2000 if args.smoke else args.cluster_events,
                      1000 if args.smoke else max(1, args.cluster_events // 4))
        b.report(started)
        ok = True
    except (RuntimeError, Stopped, subprocess.SubprocessError, OSError) as e:
        log("FAILED: %s" % e)
    except Exception:  # a bug here: say where, and still clean up
        log("FAILED:\n" + traceback.format_exc())
    finally:
        # no signal may interrupt the clean-up
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        b.stop_stack()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
