#!/usr/bin/env python3
"""Seed corpora and dictionaries for the fuzz targets, from the project's own data.

    tests/fuzz/seed.py --out DIR [--build BUILD] [--target NAME]...

Writes DIR/<target>/seed-<name> (the inputs of each target, in that target's input
format: see the comment at the top of tests/fuzz/fuzz_<target>.c) and DIR/<target>.dict
where a dictionary helps. Existing files are overwritten, other files (the corpus a
fuzzer grew) are left alone. Avro seeds are encoded by BUILD/fuzz/cs-fuzz-json2avro,
the test tool tests/support/json2avro.c built by the fuzz build; without it they are
skipped. Standard library only.
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import re
import struct
import subprocess
import sys

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TARGETS = ["avro", "json_convert", "normalise", "directory", "rules", "properties", "registry"]
# the normalise target's topic byte (fuzz_normalise.c): index into these
TOPICS = ["intel.raw.nhse", "intel.raw.ccg", "intel.raw.ofsted-send"]
# each raw topic's partner schema ids in schemas/registry.json (the topic fixes the source)
TOPIC_SUBJECT = {"intel.raw.nhse": "nhse.Incident", "intel.raw.ccg": "ccg.Concern",
                 "intel.raw.ofsted-send": "ofsted.SendAreaOutcome"}
EDGE_TIMESTAMPS = [-1, 0, -2**63, 2**63 - 1]
SMALL = 8192  # the -max_len of the file targets (run.sh): longer seeds are cut to it


def src(*parts):
    return os.path.join(TOP, *parts)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def iso_ms(text):
    """ISO-8601 with an offset (or Z) -> epoch milliseconds."""
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(t.timestamp() * 1000)


class Seeds:
    """Collects named inputs per target and writes them."""

    def __init__(self, out, wanted):
        self.out, self.wanted, self.count = out, wanted, {}

    def add(self, target, name, data):
        if target not in self.wanted:
            return
        if isinstance(data, str):
            data = data.encode()
        d = os.path.join(self.out, target)
        os.makedirs(d, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60]
        # a content hash keeps two seeds of one name apart
        fname = "seed-%s-%s" % (safe, hashlib.sha1(data).hexdigest()[:8])
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)
        self.count[target] = self.count.get(target, 0) + 1

    def dict(self, target, tokens):
        if target not in self.wanted:
            return
        os.makedirs(self.out, exist_ok=True)
        with open(os.path.join(self.out, target + ".dict"), "w") as f:
            for t in sorted(set(tokens)):
                f.write('"%s"\n' % "".join(c if 32 <= ord(c) < 127 and c not in '"\\'
                                           else "\\x%02x" % ord(c) for c in t))


class Json2Avro:
    """JSON values -> Avro wire messages with the build's cs-fuzz-json2avro."""

    def __init__(self, build):
        self.tool = os.path.join(build, "fuzz", "cs-fuzz-json2avro") if build else None
        if self.tool and not os.access(self.tool, os.X_OK):
            self.tool = None

    def encode(self, schema_id, values):
        """@returns one wire message (bytes) or None (did not convert) per value."""
        if not self.tool or not values:
            return [None] * len(values)
        lines = "".join(json.dumps(v) + "\n" for v in values)
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        r = subprocess.run([self.tool, src("schemas", "registry.json"), str(schema_id)],
                           input=lines.encode(), capture_output=True, env=env)
        if r.returncode:
            sys.stderr.write("seed.py: cs-fuzz-json2avro failed: %s\n" % r.stderr.decode())
            return [None] * len(values)
        out = r.stdout.decode().splitlines()
        return [None if l.startswith("ERR") else bytes.fromhex(l) for l in out]


def registry():
    reg = json.load(open(src("schemas", "registry.json")))
    return reg["schemas"]


def schema_walk(node, names, symbols):
    """Field names and enum symbols of an .avsc, for the JSON dictionary."""
    if isinstance(node, list):
        for n in node:
            schema_walk(n, names, symbols)
    elif isinstance(node, dict):
        if "name" in node:
            names.add(node["name"])
        symbols.update(node.get("symbols", []))
        for k in ("fields", "items", "values", "type"):
            if k in node:
                schema_walk(node[k], names, symbols)


def canonical_values():
    """An IntelEvent and a RiskAlert as JSON, as cs-json2avro converts them."""
    event = {"event_key": "NHSE:RXQ:INC-2026-0001", "source": "NHSE", "source_org": "RXQ",
             "subject_kind": "LOCATION", "subject_id": "1-101669119",
             "signal": "SERIOUS_INCIDENT", "area": "SAFE_CARE", "severity": "MEDIUM",
             "occurred_at": "2026-11-19T08:30:00Z", "received_at": "2026-11-20T10:00:00Z",
             "origin": {"topic": "intel.raw.nhse", "partition": 0, "offset": 1,
                        "schema_id": -1},
             "region": "West Midlands", "local_authority_code": "E08000025"}
    area = dict(event, event_key="OFSTED_SEND:E06000060:OFS-SEND-204611",
                source="OFSTED_SEND", source_org="E06000060", subject_kind="LOCAL_AREA",
                subject_id="E06000060", signal="SEND_OUTCOME", area="PROTECTION_FROM_ABUSE",
                severity="HIGH", region="South East", local_authority_code="E06000060")
    alert = {"alert_id": "0123456789abcdef0123456789abcdef", "kind": "RAISED",
             "subject_kind": "LOCATION", "subject_id": "1-101669119", "level": "INSPECT",
             "previous_level": "WATCH", "score": 82.125,
             "area_scores": {"SAFE_CARE": 60.5, "STAFFING": 0.0,
                             "PROTECTION_FROM_ABUSE": 21.625, "ASSURANCE": -3.0},
             "as_of": "2026-11-20T10:00:00Z", "triggered_by": "NHSE:RXQ:INC-2026-0001",
             "reason": "IMMEDIATE",
             "recent": [{"event_key": "NHSE:RXQ:INC-2026-0001", "signal": "NEVER_EVENT",
                         "severity": "CRITICAL", "occurred_at": "2026-11-19T08:30:00Z"},
                        {"event_key": "CCG:QHL:C-1", "signal": "WHISTLEBLOWING",
                         "severity": "HIGH", "occurred_at": 1795000000000}],
             "rules_version": "2026-11-22.1", "region": "West Midlands",
             "local_authority_code": "E08000025"}
    cleared = dict(alert, kind="CLEARED", level="NONE", previous_level="INSPECT",
                   reason="THRESHOLD", area_scores={}, recent=[], score=0.0)
    return [event, area], [alert, cleared]


def raw_cases():
    """(name, topic, timestamp ms, value bytes or JSON, schema ids to encode it with,
    valid) from tests/data/normalise and the dev samples."""
    out = []
    ids = {}
    for s in registry():
        ids.setdefault(s["subject"], []).append(s["id"])
    valid = json.load(open(src("tests", "data", "normalise", "valid.json")))
    for c in valid["cases"]:
        fmts = c.get("formats", ["json"] + ids[TOPIC_SUBJECT[c["topic"]]])
        out.append((c["name"], c["topic"], iso_ms(c["timestamp"]), c["value"], fmts, True))
    invalid = json.load(open(src("tests", "data", "normalise", "invalid.json")))
    default_ts = iso_ms(invalid["default_timestamp"])
    for c in invalid["cases"]:
        ts = iso_ms(c["timestamp"]) if "timestamp" in c else default_ts
        if "value_hex" in c:
            value, fmts = bytes.fromhex(c["value_hex"]), ["raw"]
        elif isinstance(c["value"], str):
            value, fmts = c["value"].encode(), ["raw"]
        else:
            value, fmts = c["value"], c.get("formats", ["json"])
        out.append((c["name"], c["topic"], ts, value, fmts, False))
    samples = src("deploy", "dev", "data", "samples")
    topic_of = {"nhse": "intel.raw.nhse", "ccg": "intel.raw.ccg",
                "ofsted": "intel.raw.ofsted-send"}
    for path in sorted(glob.glob(os.path.join(samples, "*.json"))):
        base = os.path.basename(path)
        key = base.split("-")[0] if not base.startswith("bad-") else None
        topic = topic_of.get(key)
        if not topic:  # the bad-* samples: the README says which topic
            topic = "intel.raw.ccg" if "enum" in base else "intel.raw.nhse"
        value = json.load(open(path))
        out.append((base, topic, iso_ms("2026-11-20T10:00:00Z"), value,
                    ["json"] + ids[TOPIC_SUBJECT[topic]], not base.startswith("bad-")))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default=None)
    ap.add_argument("--target", action="append", default=[])
    args = ap.parse_args()
    wanted = set(args.target or TARGETS)
    seeds = Seeds(args.out, wanted)
    j2a = Json2Avro(args.build)
    schemas = registry()
    index_of = {s["id"]: i for i, s in enumerate(schemas)}
    n = len(schemas)

    # ---- raw partner messages: normalise, json_convert and avro
    cases = raw_cases()
    by_id = {}  # schema id -> [(case index, JSON value)]
    for i, (_, _, _, value, fmts, _) in enumerate(cases):
        for f in fmts:
            if isinstance(f, int):
                by_id.setdefault(f, []).append((i, value))
    encoded = {}  # (case index, schema id) -> wire bytes
    for sid, items in sorted(by_id.items()):
        for (i, _), wire in zip(items, j2a.encode(sid, [v for _, v in items])):
            if wire is not None:
                encoded[(i, sid)] = wire
    for i, (name, topic, ts, value, fmts, valid) in enumerate(cases):
        head = bytes([TOPICS.index(topic)]) + struct.pack(">q", ts)
        for f in fmts:
            if f == "raw":
                seeds.add("normalise", name, head + value)
            elif f == "json":
                text = json.dumps(value, separators=(",", ":"))
                seeds.add("normalise", name, head + text.encode())
                # the Kafka timestamp is the producer's to set: its edges as well,
                # on messages that reach the TIME_RANGE check
                for edge in EDGE_TIMESTAMPS if valid else []:
                    seeds.add("normalise", "%s-ts%d" % (name, edge), bytes([head[0]]) +
                              struct.pack(">q", edge) + text.encode())
                seeds.add("json_convert", name, text)
            elif (i, f) in encoded:
                wire = encoded[(i, f)]
                seeds.add("normalise", "%s-avro%d" % (name, f), head + wire)
                seeds.add("avro", "%s-avro%d" % (name, f), bytes([index_of[f]]) + wire[5:])
    # hostile Avro (tests/data/codec/invalid: nhse.Incident v1 in the wire format)
    for path in sorted(glob.glob(src("tests", "data", "codec", "invalid", "*.bin"))):
        data, name = read(path), os.path.basename(path)
        seeds.add("avro", name, bytes([index_of[1]]) + data[5:])
        seeds.add("avro", name + "-as-event", bytes([n]) + data)
        seeds.add("normalise", name,
                  bytes([0]) + struct.pack(">q", iso_ms("2026-11-20T10:00:00Z")) + data)
    # canonical messages for the scorer's and pager's decoders
    events, alerts = canonical_values()
    ids = {s["subject"]: s["id"] for s in schemas}
    for k, (subject, values) in enumerate([("caresignal.IntelEvent", events),
                                           ("caresignal.RiskAlert", alerts)]):
        sid = ids[subject]
        for v, wire in zip(values, j2a.encode(sid, values)):
            seeds.add("json_convert", subject, json.dumps(v))
            if wire is None:
                continue
            seeds.add("avro", subject + "-wire", bytes([n + k]) + wire)
            seeds.add("avro", subject + "-datum", bytes([index_of[sid]]) + wire[5:])

    # ---- files an operator writes
    csvs = sorted(glob.glob(src("tests", "data", "directory", "*.csv")) +
                  glob.glob(src("tests", "data", "normalise", "*.csv")) +
                  glob.glob(src("tests", "data", "integration", "*.csv")))
    for path in csvs:
        seeds.add("directory", os.path.basename(path), read(path))
    big = read(src("deploy", "dev", "data", "directory.csv"))
    seeds.add("directory", "dev-directory-head", big[:big.rfind(b"\n", 0, SMALL) + 1])
    seeds.add("directory", "dev-directory-crlf",
              big[:big.rfind(b"\n", 0, SMALL // 2) + 1].replace(b"\n", b"\r\n"))

    rules = read(src("deploy", "config", "rules.json"))
    seeds.add("rules", "rules.json", rules)
    seeds.add("rules", "rules-compact", json.dumps(json.loads(rules), separators=(",", ":")))

    readme = open(src("README.md")).read()
    props, keys = [], set()
    for m in re.finditer(r"^\| (`[a-z.-]+`(?: \[[^\]]*\])?(?:, )?)+", readme, re.M):
        for k, d in re.findall(r"`([a-z]+\.[a-z.-]+)`(?: \[([^\]]*)\])?", m.group(0)):
            keys.add(k)
            props.append("%s=%s" % (k, d if d and not d.startswith("the ") else "x"))
    seeds.add("properties", "readme-keys", "\n".join(props) + "\n")
    seeds.add("properties", "dev-stack",
              "# written by stack.sh\nkafka.bootstrap.servers=127.0.0.1:9092\n"
              "redis.host=127.0.0.1\nredis.port=6390\nstate.namespace=cs\n"
              "directory.file=deploy/dev/data/directory.csv\n! comment\n\n"
              "kafka.fetch.wait.max.ms = 5\nkafka.session.timeout.ms=6000\n")
    seeds.add("properties", "crlf-and-spaces",
              "  log.level = debug \r\nscore.batch.max=100000\r\npage.sink=exec\r\n")

    seeds.add("registry", "registry.json", read(src("schemas", "registry.json")))
    # each schema as its own registry file: the fuzzer can then write schemas
    for s in schemas:
        doc = json.load(open(src("schemas", s["file"])))
        doc["schemas"] = [{"id": s["id"], "subject": s["subject"], "version": 1,
                           "file": "registry.json"}]
        seeds.add("registry", "self-" + s["file"], json.dumps(doc))
    for path in sorted(glob.glob(src("tests", "data", "registry", "*", "registry.json"))):
        seeds.add("registry", os.path.basename(os.path.dirname(path)), read(path))

    # ---- dictionaries
    names, symbols = set(), set()
    for s in schemas:
        schema_walk(json.load(open(src("schemas", s["file"]))), names, symbols)
    json_tokens = ["{", "}", "[", "]", ":", ",", "true", "false", "null", "\"\"", "-1",
                   "1e309", "0.5", "9223372036854775807", "\\u0000", "\\ud800",
                   "2026-11-20T10:00:00Z", "2026-11-20", "+01:00", "1-101669119",
                   "E06000060", "RXQ02"]
    quoted = ['"%s"' % t for t in names | symbols]
    seeds.dict("json_convert", json_tokens + quoted)
    seeds.dict("normalise", json_tokens + quoted + ["\x00\x00\x00\x00\x01",
                                                     "\x00\x00\x00\x00\x02"])
    rule_words = set(re.findall(r'"([A-Za-z_.]+)"', rules.decode()))
    seeds.dict("rules", json_tokens + ['"%s"' % w for w in rule_words])
    seeds.dict("registry", json_tokens + ['"%s"' % w for w in ["schemas", "id", "subject",
               "version", "file"]] + ['"%s"' % s["file"] for s in schemas] +
               ['"%s"' % s["subject"] for s in schemas])
    seeds.dict("directory", [",", "\"", "\"\"", "\r\n", "\n",
                             "location_id,provider_id,name,local_authority_code,region,"
                             "service_type", "1-101669119", "E08000025", "West Midlands",
                             "Care home", "RXQ02", "1-"])
    seeds.dict("properties", ["=", "\n", "#", "!", " ", "kafka.", "2147483648", "-1"] +
               sorted(keys) + ["kafka.bootstrap.servers", "kafka.security.protocol"])

    for t in sorted(wanted):
        print("seed: %-12s %d seeds" % (t, seeds.count.get(t, 0)))


if __name__ == "__main__":
    main()
