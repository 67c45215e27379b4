#!/usr/bin/env python3
"""The demo: caresignal end to end on the private dev stack, with a realistic 90-day feed.

Starts redis-server and the devbroker (deploy/dev/stack.sh), runs caresignal-normalise,
caresignal-score and caresignal-page, publishes the partner feed of deploy/dev/gen-feed.py
with caresignal-publish (NHS England in JSON, the CCGs half JSON half Avro, Ofsted in
Avro) and the malformed partner messages with kcat, shows progress, then prints the
alerts paged, the ten highest-risk locations and the dead letters by reason, and stops
everything. Called by deploy/dev/demo.sh after the install and the build.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prom  # noqa: E402  (deploy/dev/prom.py: Debian's Prometheus on a free port)


def say(msg):
    print("demo: " + msg, flush=True)


class Demo:
    def __init__(self, build, keep):
        self.build = build
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="caresignal-demo-")
        self.procs = []
        self.metrics = {}  # program -> its metrics.listen port
        self.prometheus = None

    def bin(self, name):
        return os.path.join(self.build, name)

    # ------------------------------------------------------------------ the stack
    def start_stack(self):
        subprocess.run([os.path.join(TOP, "deploy/dev/stack.sh"), "start", "--dir", self.dir,
                        "--build", self.build, "--owner", str(os.getpid()), "--quiet"],
                       check=True)
        env = dict(l.strip().split("=", 1) for l in open(os.path.join(self.dir, "stack.env")))
        self.bootstrap = env["CS_BOOTSTRAP"]
        self.config = os.path.join(self.dir, "demo.properties")
        shutil.copy(env["CS_CONFIG"], self.config)
        with open(self.config, "a") as f:
            f.write("directory.file=%s\n" % os.path.join(TOP, "deploy/dev/data/directory.csv"))
            f.write("page.format=text\n")
        say("stack up: redis-server 127.0.0.1:%s, devbroker %s (in %s)"
            % (env["CS_REDIS_PORT"], self.bootstrap, self.dir))

    def start(self, name, *args):
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        out = open(os.path.join(self.dir, name + ".out"), "wb")
        self.metrics[name] = prom.free_port()
        args = ("--set", "metrics.listen=127.0.0.1:%d" % self.metrics[name]) + args
        p = subprocess.Popen([self.bin(name), "--config", self.config] + list(args), cwd=TOP,
                             stdout=out, stderr=log, stdin=subprocess.DEVNULL)
        self.procs.append((name, p))
        return p

    def stop(self):
        for name, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs:
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            if rc != 0:
                say("%s exited with status %d (log: %s)" % (name, rc,
                                                             os.path.join(self.dir, name + ".log")))
        self.procs = []
        if self.prometheus:
            self.prometheus.stop()
            self.prometheus = None
        subprocess.run([os.path.join(TOP, "deploy/dev/stack.sh"), "stop", "--dir", self.dir,
                        "--quiet"], check=False)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, name, *args, **kw):
        return subprocess.run([self.bin(name), "--config", self.config] + list(args), cwd=TOP,
                              capture_output=True, **kw)

    def lag(self, topic, group):
        """(consumed, total) messages of topic for a consumer group."""
        p = self.run("caresignal-cat", "--topic", topic, "--committed", group)
        done = total = 0
        for line in p.stdout.decode().splitlines():
            d = json.loads(line)
            total += d["high"] - max(d["low"], 0)
            done += max(d["committed"], d["low"], 0) - max(d["low"], 0) if d["committed"] >= 0 else 0
        return done, total

    # ------------------------------------------------------------------ the feed
    def make_feed(self):
        feed = os.path.join(self.dir, "feed")
        now = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime())
        subprocess.run([sys.executable, os.path.join(TOP, "deploy/dev/gen-feed.py"), "--out-dir",
                        feed, "--now", now], check=True, capture_output=True)
        manifest = json.load(open(os.path.join(feed, "manifest.json")))
        # caresignal-publish reads the partner events themselves, one per line
        for name in ("nhse", "ccg", "ofsted"):
            with open(os.path.join(feed, name + ".jsonl")) as src, \
                    open(os.path.join(feed, name + ".events.jsonl"), "w") as dst:
                for line in src:
                    dst.write(json.dumps(json.loads(line)["value"]) + "\n")
        ccg = open(os.path.join(feed, "ccg.events.jsonl")).read().splitlines()
        half = len(ccg) // 2
        open(os.path.join(feed, "ccg.json.jsonl"), "w").write("\n".join(ccg[:half]) + "\n")
        open(os.path.join(feed, "ccg.avro.jsonl"), "w").write("\n".join(ccg[half:]) + "\n")
        self.feed = feed
        return manifest

    def publish(self, source, path, avro=False):
        args = ["--source", source, path] + (["--avro"] if avro else [])
        p = self.run("caresignal-publish", *args)
        last = p.stdout.decode().strip().splitlines()[-1] if p.stdout else ""
        say("published %s" % last)
        if p.returncode != 0:
            say("caresignal-publish reported problems:\n" + p.stdout.decode())
        return p.returncode

    def publish_malformed(self):
        """The partners' mistakes, sent as they are (not through caresignal-publish, which
        would refuse them): each must end in the dead-letter topic with its reason."""
        topics = {"nhse": "intel.raw.nhse", "ccg": "intel.raw.ccg",
                  "ofsted-send": "intel.raw.ofsted-send"}
        n = 0
        for line in open(os.path.join(self.feed, "malformed.jsonl")):
            m = json.loads(line)
            value = bytes.fromhex(m["value_hex"]) if "value_hex" in m else m["value_text"].encode()
            path = os.path.join(self.dir, "bad.msg")
            with open(path, "wb") as f:
                f.write(value)
            subprocess.run(["kcat", "-b", self.bootstrap, "-P", "-t", topics[m["topic"]],
                            "-k", m.get("key") or "", path], check=True, capture_output=True)
            n += 1
        say("published %d malformed partner messages with kcat" % n)
        return n


def progress(demo, started):
    stages = [("normalised", ["intel.raw.nhse", "intel.raw.ccg", "intel.raw.ofsted-send"],
               "caresignal-normalise"),
              ("scored", ["intel.events"], "caresignal-score"),
              ("paged", ["intel.alerts"], "caresignal-page")]
    tty = sys.stdout.isatty()
    stable = 0
    last = None
    while True:
        parts, complete = [], True
        for label, topics, group in stages:
            done = total = 0
            for t in topics:
                d, tt = demo.lag(t, group)
                done += d
                total += tt
            parts.append("%s %d/%d" % (label, done, total))
            complete = complete and done == total
        line = "  %5.1fs  %s" % (time.monotonic() - started, "   ".join(parts))
        if tty:
            print("\r" + line + " " * 8, end="", flush=True)
        elif line != last:
            print(line, flush=True)
        last = line
        # complete twice in a row: nothing is still on its way between the stages
        stable = stable + 1 if complete else 0
        if stable >= 2:
            if tty:
                print()
            return
        if time.monotonic() - started > 150:
            print()
            say("giving up waiting after 150 s")
            return
        time.sleep(1)


def operators_view(p):
    """What the operators see in Prometheus once the feed is through."""
    time.sleep(2.5)  # two more scrapes
    say("the operators' view (Prometheus queries):")
    rows = [
        ("raw messages consumed by the normaliser",
         'sum(caresignal_messages_consumed_total{job="caresignal-normalise"})'),
        ("events produced", 'sum(caresignal_messages_produced_total{topic="intel.events"})'),
        ("events applied by the scorer", 'sum(caresignal_events_total{outcome="applied"})'),
        ("partner duplicates absorbed", 'sum(caresignal_events_total{outcome="duplicate"})'),
        ("alerts published", "sum(caresignal_alerts_total)"),
        ("alerts paged", 'sum(caresignal_page_deliveries_total{outcome="delivered"})'),
        ("consumer lag, all partitions", "sum(caresignal_consumer_lag)"),
        ("consumers ready", "sum(caresignal_ready)"),
        ("publish -> event delivered, p99 s (all at once)",
         'histogram_quantile(0.99, sum by (le) (caresignal_end_to_end_age_seconds_bucket'
         '{job="caresignal-normalise"}))'),
    ]
    for label, q in rows:
        v = p.scalar(q)
        print("  %-48s %s" % (label, "-" if v is None else ("%g" % v)))
    dead = p.by("sum by (reason) (caresignal_dead_letters_total)", "reason")
    print("  %-48s %s" % ("dead letters by reason", ", ".join(
        "%s %d" % (r, v) for r, v in sorted(dead.items())) or "none"))
    firing = sorted(dict(k)["alertname"] for k in p.query('ALERTS{alertstate="firing"}'))
    print("  %-48s %s" % ("operator alerts firing", ", ".join(firing) or "none"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--keep", action="store_true", help="keep the working directory and logs")
    args = ap.parse_args()
    demo = Demo(os.path.abspath(args.build), args.keep)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    started = time.monotonic()
    try:
        demo.start_stack()
        manifest = demo.make_feed()
        counts = manifest.get("counts", {})
        say("feed: 90 days, %s" % ", ".join("%s %s" % (k, v) for k, v in counts.items()))
        for name in ("caresignal-normalise", "caresignal-score", "caresignal-page"):
            demo.start(name)
        say("caresignal-normalise, caresignal-score and caresignal-page are running, "
            "metrics on %s" % ", ".join("127.0.0.1:%d" % p for p in demo.metrics.values()))
        if shutil.which("prometheus"):
            demo.prometheus = prom.Prometheus(demo.metrics)
            say("prometheus %s scrapes them every second, with the operators' alert rules"
                % demo.prometheus.url)
        problems = 0
        problems += demo.publish("nhse", os.path.join(demo.feed, "nhse.events.jsonl"))
        problems += demo.publish("ccg", os.path.join(demo.feed, "ccg.json.jsonl"))
        problems += demo.publish("ccg", os.path.join(demo.feed, "ccg.avro.jsonl"), avro=True)
        problems += demo.publish("ofsted-send", os.path.join(demo.feed, "ofsted.events.jsonl"), avro=True)
        demo.publish_malformed()
        say("waiting for the pipeline (messages consumed per stage):")
        progress(demo, started)

        paged = open(os.path.join(demo.dir, "caresignal-page.out")).read().splitlines()
        raised = [l for l in paged if " RAISED " in l]
        print()
        say("%d alerts paged (%d raised, %d cleared); inspections recommended first:"
            % (len(paged), len(raised), len(paged) - len(raised)))
        order = sorted(paged, key=lambda l: (" INSPECT " not in l, " CLEARED " in l, l))
        for l in order[:25]:
            print("  " + l)
        if len(order) > 25:
            print("  ... and %d more (all in %s)" % (len(order) - 25, "caresignal-page.out"
                                                     if not args.keep else
                                                     os.path.join(demo.dir, "caresignal-page.out")))
        print()
        say("the ten highest-risk locations now (caresignal-score --top 10):")
        print(demo.run("caresignal-score", "--top", "10").stdout.decode())
        say("dead letters by reason (caresignal-cat --topic intel.deadletter --count-by cs.error):")
        print(demo.run("caresignal-cat", "--topic", "intel.deadletter", "--count-by",
                       "cs.error").stdout.decode())
        if demo.prometheus:
            operators_view(demo.prometheus)
        say("done in %.0f s; stopping everything" % (time.monotonic() - started))
        return 1 if problems else 0
    finally:
        demo.stop()


if __name__ == "__main__":
    sys.exit(main())
