#!/usr/bin/env python3
"""deploy/kafka/ checked offline (no Apache Kafka runs here): topics.sh and acls.sh are run
with --dry-run and their printed commands parsed, then held against the contract
(docs/contract/topics.md, docs/contract/canonical-event.md, docs/contract/guarantees.md, docs/contract/configuration.md) and the code (the devbroker's partition counts, the
producers' message.max.bytes, redrive's target topics, the readers' group prefix).
A real run is exercised against stub kafka-*.sh tools. Standard library only; seconds.
Prints one line per check and "N passed, M failed"; exits 1 on any failure."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import checks  # tests/deploy/checks.py: the runner of these checks

ROOT = os.environ.get("CS_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KDIR = os.path.join(ROOT, "deploy", "kafka")
TOPICS_SH = os.path.join(KDIR, "topics.sh")
ACLS_SH = os.path.join(KDIR, "acls.sh")
SCRIPTS = [TOPICS_SH, ACLS_SH, os.path.join(KDIR, "common.sh")]

PRINCIPALS = {
    "normalise": "User:caresignal-normalise", "score": "User:caresignal-score",
    "page": "User:caresignal-page", "ops": "User:caresignal-ops",
    "partner-nhse": "User:partner-nhse", "partner-ccg": "User:partner-ccg",
    "partner-ofsted": "User:partner-ofsted",
}
HEADER_HEADROOM = 65536  # what a dead letter may add to the value it carries


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("CS_", "KAFKA_")) or k in ("BOOTSTRAP", "COMMAND_CONFIG"))}
    env.update(extra)
    return env


def run(script, *args, **env):
    return subprocess.run(["bash", script, *args], capture_output=True, text=True,
                          env=clean_env(**env), timeout=30)


_DRY = {}


def commands(script, *args, **env):
    """The commands a dry run prints, each split as the shell would (memoised)."""
    key = (script, args, tuple(sorted(env.items())))
    if key not in _DRY:
        _DRY[key] = _dry_run(script, *args, **env)
    return [list(c) for c in _DRY[key]]


def _dry_run(script, *args, **env):
    p = run(script, "--dry-run", *args, **env)
    if p.returncode != 0:
        raise AssertionError(f"{os.path.basename(script)} --dry-run: exit {p.returncode}: "
                             f"{p.stderr}")
    return [shlex.split(line) for line in p.stdout.splitlines() if line.strip()]


def options(argv):
    """--opt value pairs of one command (flags without a value map to True), as lists."""
    out, i = {}, 1
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            raise AssertionError(f"unexpected word {a!r} in {argv}")
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out.setdefault(a, []).append(argv[i + 1])
            i += 2
        else:
            out.setdefault(a, []).append(True)
            i += 1
    return out


# ------------------------------------------------------------------ the contract, parsed

def design_topics():
    """Topic names in the first column of docs/contract/topics.md's table."""
    text = read("docs", "DESIGN.md")
    m = re.search(r"^## 3\. Topics\n(.*?)^## ", text, re.M | re.S)
    assert m, "DESIGN.md has no '## 3. Topics' section"
    rows = [l for l in m.group(1).splitlines() if l.startswith("|")]
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    assert head[0] == "topic", f"§3's table starts with {head[0]!r}, not 'topic'"
    names = []
    for row in rows[2:]:  # past the header and the |---| line
        cell = row.strip("|").split("|")[0].strip()
        names.append(cell.strip("`"))
    assert len(names) >= 6, f"§3's table lists {names}"
    return names


def config_topic_defaults():
    """cs_config_t field -> default topic name (lib/config.c)."""
    text = read("lib", "config.c")
    found = dict((field, name) for name, field in re.findall(
        r'\{"topic\.[^"]+",\s*CS_CFG_STRING,\s*"([^"]+)",\s*OFF\((topic_\w+)\)', text))
    assert len(found) == 6, f"topic defaults in lib/config.c: {found}"
    return found


def devbroker_partitions():
    text = read("deploy", "dev", "devbroker.c")
    names = config_topic_defaults()
    got = {names[f]: int(n) for f, n in
           re.findall(r"add_topic\([^;]*?cfg->(topic_\w+),\s*(\d+)\)", text)}
    assert len(got) == 6, f"devbroker.c's parse_topics: {got}"
    return got


def redrive_targets():
    """The origin topics caresignal-replay redrive republishes to (redrivable())."""
    text = read("producers", "replay", "redrive.c")
    m = re.search(r"static int redrivable\(.*?\n\}", text, re.S)
    assert m, "redrive.c has no redrivable()"
    names = config_topic_defaults()
    fields = set(re.findall(r"strcmp\(origin, cfg->(topic_\w+)\)", m.group(0)))
    assert fields, "redrivable() names no topic"
    return {names[f] for f in fields}


def producer_max_bytes():
    m = re.search(r'#define CS_KAFKA_PRODUCER_MAX_BYTES "(\d+)"',
                  read("include", "caresignal", "kafka.h"))
    assert m, "include/caresignal/kafka.h has no CS_KAFKA_PRODUCER_MAX_BYTES"
    return int(m.group(1))


def reader_group_prefix():
    m = re.search(r'"(caresignal-reader-)%', read("lib", "reader.c"))
    assert m, "lib/reader.c no longer names its group caresignal-reader-<pid>"
    return m.group(1)


NAMES = {}  # role -> topic name, filled in main()


def raw_topics():
    return [NAMES["raw.nhse"], NAMES["raw.ccg"], NAMES["raw.ofsted-send"]]


# ------------------------------------------------------------------ topics.sh

def created_topics(**env):
    out = {}
    for argv in commands(TOPICS_SH, **env):
        o = options(argv)
        if "--create" not in o:
            continue
        assert os.path.basename(argv[0]).startswith("kafka-topics"), argv[0]
        topic = o["--topic"][0]
        assert topic not in out, f"{topic} created twice"
        cfg = {}
        for kv in o.get("--config", []):
            k, _, v = kv.partition("=")
            assert k not in cfg, f"{topic}: --config {k} twice"
            cfg[k] = v
        out[topic] = {"partitions": int(o["--partitions"][0]),
                      "rf": int(o["--replication-factor"][0]),
                      "if_not_exists": "--if-not-exists" in o,
                      "bootstrap": o["--bootstrap-server"], "cc": o["--command-config"],
                      "config": cfg}
    return out


def test_every_design_topic_created():
    got = created_topics()
    want = design_topics()
    missing = [t for t in want if t not in got]
    assert not missing, f"topics in docs/contract/topics.md not created: {missing}"
    extra = [t for t in got if t not in want]
    assert not extra, f"topics created that docs/contract/topics.md does not name: {extra}"


def test_idempotent_create():
    for t, d in created_topics().items():
        assert d["if_not_exists"], f"{t}: --create without --if-not-exists"


def test_replication_and_min_isr_everywhere():
    for t, d in created_topics().items():
        assert d["rf"] == 3, f"{t}: replication factor {d['rf']}"
        assert d["config"].get("min.insync.replicas") == "2", f"{t}: {d['config']}"
        assert d["config"].get("cleanup.policy") == "delete", f"{t}: {d['config']}"
        assert d["config"].get("unclean.leader.election.enable") == "false", t


def test_partitions_as_devbroker():
    want = devbroker_partitions()
    got = {t: d["partitions"] for t, d in created_topics().items()}
    assert got == want, f"partitions {got} != devbroker.c's {want}"


def test_retention_per_topic():
    got = created_topics()
    day = 86400000
    for t, d in got.items():
        c = d["config"]
        assert "retention.ms" in c, f"{t}: no retention.ms"
        assert c.get("retention.bytes") == "-1", f"{t}: retention.bytes {c.get('retention.bytes')}"
        # CreateTime kept: the normaliser judges TIME_RANGE by the partner's timestamp and
        # redrive republishes with the original one (docs/contract/canonical-event.md, docs/contract/configuration.md).
        assert c.get("message.timestamp.type") == "CreateTime", t
    for t in raw_topics():
        r = int(got[t]["config"]["retention.ms"])
        assert 7 * day <= r <= 90 * day, f"{t}: retention.ms {r}: partner bytes, replayable"
    ev = int(got[NAMES["events"]]["config"]["retention.ms"])
    # rebuild/what-if replay history; the state's horizon is 396 days (docs/contract/canonical-event.md, docs/contract/redis-layout.md)
    assert ev == -1 or ev >= 400 * day, f"intel.events retention.ms {ev}"
    dl = int(got[NAMES["deadletter"]]["config"]["retention.ms"])
    assert 0 < dl <= 90 * day, f"dead letters hold personal data: short retention, got {dl}"
    al = int(got[NAMES["alerts"]]["config"]["retention.ms"])
    assert al == -1 or al >= 28 * day, f"intel.alerts retention.ms {al}"


def test_raw_limit_below_deadletter_limit():
    got = created_topics()
    dlq = int(got[NAMES["deadletter"]]["config"]["max.message.bytes"])
    for t, d in got.items():
        assert "max.message.bytes" in d["config"], f"{t}: no max.message.bytes"
    for t in raw_topics():
        raw = int(got[t]["config"]["max.message.bytes"])
        assert raw < dlq, f"{t}: max.message.bytes {raw} not below the dead-letter topic's {dlq}"
    # every topic's messages can be dead-lettered (normalise: raw; score: events; page:
    # alerts): each must fit in the dead-letter topic with its headers
    for t, d in got.items():
        if t != NAMES["deadletter"]:
            b = int(d["config"]["max.message.bytes"])
            assert b + HEADER_HEADROOM <= dlq, f"{t}: {b} + headers > {dlq}"
    # and in what caresignal's producers may send (kafka.h), so its dead letter keeps
    # its value; the dead-letter topic takes anything the producers send
    cap = producer_max_bytes()
    for t in raw_topics():
        b = int(got[t]["config"]["max.message.bytes"])
        assert b + HEADER_HEADROOM <= cap, f"{t}: {b} + headers > producer cap {cap}"
    assert dlq >= cap, f"dead-letter topic {dlq} < the producers' message.max.bytes {cap}"


def test_connection_from_env_and_flags():
    got = created_topics(BOOTSTRAP="k1:9093,k2:9093", COMMAND_CONFIG="/etc/cs/admin.properties")
    for t, d in got.items():
        assert d["bootstrap"] == ["k1:9093,k2:9093"], (t, d["bootstrap"])
        assert d["cc"] == ["/etc/cs/admin.properties"], (t, d["cc"])
    for argv in commands(ACLS_SH, "--bootstrap-server", "k3:9093", "--command-config=/x.p",
                         BOOTSTRAP="ignored:1"):
        o = options(argv)
        assert o["--bootstrap-server"] == ["k3:9093"] and o["--command-config"] == ["/x.p"], argv


def test_topics_refuses_bad_limits():
    p = run(TOPICS_SH, "--dry-run", CS_MAX_BYTES_RAW="2097152")
    assert p.returncode == 2 and "dead-letter" in p.stderr, (p.returncode, p.stderr)
    p = run(TOPICS_SH, "--dry-run", CS_PARTITIONS_EVENTS="0")
    assert p.returncode == 2, (p.returncode, p.stderr)


# ------------------------------------------------------------------ acls.sh

OPS_IMPLYING_DESCRIBE = {"Read", "Write", "Delete", "Alter"}


def acls(*args, **env):
    out = []
    for argv in commands(ACLS_SH, *args, **env):
        assert os.path.basename(argv[0]).startswith("kafka-acls"), argv[0]
        o = options(argv)
        assert "--add" in o, f"not an --add: {argv}"
        assert not any(k in o for k in ("--deny-principal", "--remove", "--producer",
                                        "--consumer")), argv
        pattern = o.get("--resource-pattern-type", ["literal"])[0]
        assert pattern in ("literal", "prefixed"), argv
        resources = ([("Topic", n) for n in o.get("--topic", [])] +
                     [("Group", n) for n in o.get("--group", [])] +
                     ([("Cluster", "kafka-cluster")] if "--cluster" in o else []) +
                     [("TransactionalId", n) for n in o.get("--transactional-id", [])])
        assert resources, f"no resource: {argv}"
        hosts = o.get("--allow-host", ["*"])
        for pr in o["--allow-principal"]:
            for op in o["--operation"]:
                for rtype, name in resources:
                    out.append({"principal": pr, "op": op, "type": rtype, "name": name,
                                "pattern": pattern if rtype != "Cluster" else "literal",
                                "hosts": hosts})
    return out


def allowed(rules, principal, op, rtype, name):
    """Kafka's authorizer, allow rules only: principal (or User:*), operation (All, or
    Describe implied by Read/Write/Delete/Alter, DescribeConfigs by AlterConfigs),
    resource literal (or *) or prefixed."""
    for r in rules:
        if r["principal"] not in (principal, "User:*") or r["type"] != rtype:
            continue
        if not (r["op"] in (op, "All") or
                (op == "Describe" and r["op"] in OPS_IMPLYING_DESCRIBE) or
                (op == "DescribeConfigs" and r["op"] == "AlterConfigs")):
            continue
        if r["pattern"] == "prefixed":
            if name.startswith(r["name"]):
                return True
        elif r["name"] in (name, "*"):
            return True
    return False


def all_principals(rules):
    return set(PRINCIPALS.values()) | {r["principal"] for r in rules}


def test_no_wildcards_or_broad_operations():
    for r in acls():
        assert "*" not in r["principal"], r
        assert r["name"] != "*", r
        assert r["op"] not in ("All", "Create", "Delete", "Alter", "AlterConfigs",
                               "ClusterAction"), r
        if r["type"] == "Topic":
            assert r["pattern"] == "literal", f"topic ACLs name their topic: {r}"


def test_partners_write_only_their_own_raw_topic():
    rules = acls()
    own = {"partner-nhse": NAMES["raw.nhse"], "partner-ccg": NAMES["raw.ccg"],
           "partner-ofsted": NAMES["raw.ofsted-send"]}
    everything = list(NAMES.values()) + ["intel.raw.other", "some.other.topic"]
    for role, topic in own.items():
        p = PRINCIPALS[role]
        assert allowed(rules, p, "Write", "Topic", topic), f"{p} cannot write {topic}"
        assert allowed(rules, p, "Describe", "Topic", topic), f"{p} cannot describe {topic}"
        for t in everything:
            if t != topic:
                assert not allowed(rules, p, "Write", "Topic", t), f"{p} may write {t}"
            assert not allowed(rules, p, "Read", "Topic", t), f"{p} may read {t}"
        for r in rules:
            if r["principal"] == p:
                assert (r["type"], r["name"]) == ("Topic", topic) or \
                    (r["type"], r["op"]) == ("Cluster", "IdempotentWrite"), \
                    f"{p} holds more than its topic: {r}"


def test_deadletter_readable_by_ops_only():
    rules = acls()
    dl = NAMES["deadletter"]
    readers = {p for p in all_principals(rules) if allowed(rules, p, "Read", "Topic", dl)}
    assert readers == {PRINCIPALS["ops"]}, f"Read on {dl}: {sorted(readers)}"
    writers = {p for p in all_principals(rules) if allowed(rules, p, "Write", "Topic", dl)}
    want = {PRINCIPALS["normalise"], PRINCIPALS["score"], PRINCIPALS["page"]}
    assert writers == want, f"Write on {dl}: {sorted(writers)}"


def test_pipeline_flows():
    rules = acls()
    flows = {  # role: (group, topics read, topics written)
        "normalise": ("caresignal-normalise", raw_topics(),
                      [NAMES["events"], NAMES["deadletter"]]),
        "score": ("caresignal-score", [NAMES["events"]],
                  [NAMES["alerts"], NAMES["deadletter"]]),
        "page": ("caresignal-page", [NAMES["alerts"]], [NAMES["deadletter"]]),
    }
    for role, (group, reads, writes) in flows.items():
        p = PRINCIPALS[role]
        assert allowed(rules, p, "Read", "Group", group), f"{p}: no Read on group {group}"
        assert allowed(rules, p, "Describe", "Group", group), f"{p}: Describe {group}"
        for t in reads:
            assert allowed(rules, p, "Read", "Topic", t), f"{p} cannot read {t}"
        for t in writes:
            assert allowed(rules, p, "Write", "Topic", t), f"{p} cannot write {t}"
        for t in NAMES.values():
            if t not in reads:
                assert not allowed(rules, p, "Read", "Topic", t), f"{p} may read {t}"
            if t not in writes:
                assert not allowed(rules, p, "Write", "Topic", t), f"{p} may write {t}"
        assert allowed(rules, p, "IdempotentWrite", "Cluster", "kafka-cluster"), p
    # the raw topics: only their partner and ops (redrive) write them
    for t in raw_topics():
        writers = {p for p in all_principals(rules) if allowed(rules, p, "Write", "Topic", t)}
        assert len(writers) == 2 and PRINCIPALS["ops"] in writers, (t, writers)


def test_ops_tools():
    rules = acls()
    ops = PRINCIPALS["ops"]
    for t in NAMES.values():
        assert allowed(rules, ops, "Read", "Topic", t), f"ops cannot read {t}"
        assert allowed(rules, ops, "Describe", "Topic", t), t
    # caresignal-replay redrive: back to every topic redrivable() accepts, and only those
    targets = redrive_targets()
    for t in NAMES.values():
        assert allowed(rules, ops, "Write", "Topic", t) == (t in targets), \
            f"ops Write on {t}: redrive targets {sorted(targets)}"
    # offsets --group G: Read on each consumer's group (OffsetCommit)
    for g in ("caresignal-normalise", "caresignal-score", "caresignal-page"):
        assert allowed(rules, ops, "Read", "Group", g), f"ops cannot move {g}"
    # replay's readers and caresignal-cat
    assert allowed(rules, ops, "Read", "Group", reader_group_prefix() + "4242")
    assert allowed(rules, ops, "Describe", "Group", "caresignal-cat")
    assert allowed(rules, ops, "Read", "Group", "ops-adhoc")
    assert not allowed(rules, ops, "Read", "Group", "unrelated-group")


def test_idempotent_write_optional():
    rules = acls("--no-idempotent-write")
    assert not any(r["type"] == "Cluster" for r in rules), "cluster ACLs left"
    assert len(rules) > 0


def test_acls_refuse_shared_or_wildcard_principals():
    p = run(ACLS_SH, "--dry-run", CS_PRINCIPAL_PARTNER_CCG="User:partner-nhse")
    assert p.returncode == 2 and "CS_PRINCIPAL_PARTNER_CCG" in p.stderr, (p.returncode, p.stderr)
    p = run(ACLS_SH, "--dry-run", CS_PRINCIPAL_OPS="User:*")
    assert p.returncode == 2, (p.returncode, p.stderr)
    # another principal given: the grants follow it
    rules = acls(CS_PRINCIPAL_PARTNER_NHSE="User:CN=nhse-gw,O=NHS England")
    assert allowed(rules, "User:CN=nhse-gw,O=NHS England", "Write", "Topic", NAMES["raw.nhse"])
    assert not allowed(rules, "User:partner-nhse", "Write", "Topic", NAMES["raw.nhse"])


# ------------------------------------------------------------------ both scripts

def test_help_and_usage():
    for s in (TOPICS_SH, ACLS_SH):
        p = run(s, "--help")
        assert p.returncode == 0 and "--dry-run" in p.stdout, (s, p.returncode, p.stderr)
        p = run(s, "--frobnicate")
        assert p.returncode == 2 and "--frobnicate" in p.stderr, (s, p.returncode)
        p = run(s)  # a real run needs a cluster and a client config
        assert p.returncode == 2 and "BOOTSTRAP" in p.stderr, (s, p.returncode, p.stderr)
        p = run(s, BOOTSTRAP="k:9093", COMMAND_CONFIG="/nonexistent/admin.properties")
        assert p.returncode == 2 and "/nonexistent" in p.stderr, (s, p.returncode, p.stderr)


STUB = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$STUB_LOG"
[ -n "${STUB_FAIL:-}" ] && exit 3
case " $* " in *" --describe "*)
  args="$*"; t=${args##*--topic }; t=${t%% *}
  p=$(printf '%s\n' "$STUB_PARTS" | tr ' ' '\n' | sed -n "s/^$t=//p")
  printf 'Topic: %s\tTopicId: AAAA\tPartitionCount: %s\tReplicationFactor: 3\tConfigs: x\n' "$t" "$p"
  printf '\tTopic: %s\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\n' "$t" ;;
esac
"""


def test_real_run_against_stub_tools():
    tmp = tempfile.mkdtemp(prefix="cs-kafka-defs-")
    try:
        for tool in ("kafka-topics.sh", "kafka-acls.sh", "kafka-configs.sh"):
            path = os.path.join(tmp, tool)
            with open(path, "w") as f:
                f.write(STUB)
            os.chmod(path, 0o755)
        cc = os.path.join(tmp, "admin.properties")
        with open(cc, "w") as f:
            f.write("security.protocol=SASL_SSL\n")
        log = os.path.join(tmp, "log")
        parts = " ".join(f"{t}={n}" for t, n in devbroker_partitions().items())
        env = dict(PATH=tmp + os.pathsep + os.environ["PATH"], STUB_LOG=log,
                   STUB_PARTS=parts, BOOTSTRAP="k1:9093", COMMAND_CONFIG=cc)
        p = run(TOPICS_SH, "--update-configs", **env)
        assert p.returncode == 0, (p.returncode, p.stderr)
        lines = open(log).read().splitlines()
        assert sum("--create --if-not-exists" in l for l in lines) == 6, lines
        assert sum("--describe" in l for l in lines) == 6, lines
        assert sum("--entity-type topics" in l for l in lines) == 6, lines
        # an existing topic with another partition count is reported, never changed
        os.unlink(log)
        bad = parts.replace(f"{NAMES['events']}=16", f"{NAMES['events']}=1")
        p = run(TOPICS_SH, **dict(env, STUB_PARTS=bad))
        assert p.returncode == 1 and NAMES["events"] in p.stderr and "1 partitions" in p.stderr, \
            (p.returncode, p.stderr)
        # acls: the commands run are those a dry run prints
        os.unlink(log)
        p = run(ACLS_SH, **env)
        assert p.returncode == 0, (p.returncode, p.stderr)
        ran = [shlex.split(l) for l in open(log).read().splitlines()]
        dry = [c[1:] for c in commands(ACLS_SH, **env)]
        assert ran == dry, "a real run differs from its dry run"
        # a failing tool stops the script with exit 1, naming the command
        p = run(ACLS_SH, **dict(env, STUB_FAIL="1"))
        assert p.returncode == 1 and "failed (exit 3)" in p.stderr, (p.returncode, p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_bash_n():
    for s in SCRIPTS:
        p = subprocess.run(["bash", "-n", s], capture_output=True, text=True)
        assert p.returncode == 0, f"bash -n {s}: {p.stderr}"


def test_shellcheck():
    sc = shutil.which("shellcheck")
    if not sc:
        print("  shellcheck is not installed: shellcheck check skipped")
        return
    p = subprocess.run([sc, "-x", "-P", KDIR, *SCRIPTS], capture_output=True, text=True,
                       cwd=ROOT)
    assert p.returncode == 0, f"shellcheck:\n{p.stdout}{p.stderr}"


def main():
    names = config_topic_defaults()
    NAMES.update({f[len("topic_"):].replace("_", ".").replace("ofsted.send", "ofsted-send"): n
                  for f, n in names.items()})
    return checks.run(globals())


if __name__ == "__main__":
    sys.exit(main())
