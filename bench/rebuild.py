#!/usr/bin/env python3
"""Rebuild speed: `caresignal-replay rebuild` over an intel.events of N canonical events
(default 1,000,000) on the dev broker, beside librdkafka's bare consume rate of the same
topic in the same run.

  bench/rebuild.py [--build DIR] [--count N] [--subjects S] [--partitions P]

The dev broker keeps only the last 5 MiB per partition (docs/contract/environment.md): the topic gets enough
partitions (default 128) to hold every event. Prints one JSON line; starts and stops its
own stack.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--subjects", type=int, default=20_000)
    ap.add_argument("--partitions", type=int, default=128)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    d = tempfile.mkdtemp(prefix="caresignal-rebuild-bench-")
    stack = os.path.join(TOP, "deploy/dev/stack.sh")
    subprocess.run([stack, "start", "--dir", d, "--build", build, "--owner", str(os.getpid()),
                    "--brokers", "1", "--quiet", "--partitions",
                    "intel.events=%d" % args.partitions], check=True)
    try:
        env = dict(l.strip().split("=", 1) for l in open(os.path.join(d, "stack.env")))
        boot, config = env["CS_BOOTSTRAP"], env["CS_CONFIG"]
        run = lambda *c: subprocess.run(list(c), cwd=TOP, capture_output=True, check=True)
        print("rebuild bench: producing %d events for %d subjects" % (args.count, args.subjects),
              file=sys.stderr, flush=True)
        run(os.path.join(build, "bench_load"), "--bootstrap", boot, "--topic", "intel.events",
            "--format", "intel", "--count", str(args.count), "--subjects", str(args.subjects))
        held = int(run(os.path.join(build, "bench_consume"), "--bootstrap", boot, "--topic",
                       "intel.events", "--watermarks").stdout)
        raw = json.loads(run(os.path.join(build, "bench_consume"), "--bootstrap", boot,
                             "--topic", "intel.events").stdout.decode().strip().splitlines()[-1])
        print("rebuild bench: %d events held; rebuilding" % held, file=sys.stderr, flush=True)
        t0 = time.monotonic()
        p = subprocess.run([os.path.join(build, "caresignal-replay"), "--config", config,
                            "rebuild", "--namespace", "rb", "--execute"], cwd=TOP,
                           capture_output=True)
        secs = time.monotonic() - t0
        out = p.stdout.decode()
        if p.returncode != 0:
            sys.exit("rebuild failed:\n" + out + p.stderr.decode()[-2000:])
        m = re.search(r"rebuilt: (\d+) events read, (\d+) applied", out)
        res = {"bench": "rebuild", "events_held": held, "events_read": int(m.group(1)),
               "applied": int(m.group(2)), "subjects": args.subjects,
               "partitions": args.partitions, "seconds": round(secs, 2),
               "events_per_s": round(int(m.group(1)) / secs),
               "raw_consume_per_s": raw["messages_per_s"],
               "ratio_to_raw_consume": round(int(m.group(1)) / secs / raw["messages_per_s"], 3)}
        print(json.dumps(res))
    finally:
        subprocess.run([stack, "stop", "--dir", d, "--quiet"], check=False)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
