#!/usr/bin/env python3
"""deploy/container, deploy/compose and deploy/k8s checked offline: no image is built or
run here (no image registry), so the definitions are parsed and held against each other,
against the code (lib/config.c's key table, CMakeLists.txt's programs and install rules,
deploy/kafka/topics.sh) and, when $CS_BUILD_DIR is set, against a real install tree
(`cmake --install $CS_BUILD_DIR --prefix <tmp>`). Tools found on the machine are used as
well, each skipped with a notice when absent: promtool, shellcheck, kubectl kustomize,
docker-compose / docker compose, dpkg and apt-cache.

Run with Debian's /usr/bin/python3 (needs python3-yaml). Prints one line per check and
"N passed, M failed"; exits 1 on any failure. Seconds."""
import base64
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import checks  # tests/deploy/checks.py: the runner of these checks

try:
    import yaml
except ImportError:
    print("test_container_defs: the Python module 'yaml' is missing: install Debian's "
          "python3-yaml (deploy/dev/install-deps.sh installs it) and run with "
          "/usr/bin/python3")
    print("0 passed, 1 failed")
    sys.exit(1)

ROOT = os.environ.get("CS_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("CS_BUILD_DIR") or None
CONTAINER = os.path.join(ROOT, "deploy", "container")
CONTAINERFILE = os.path.join(CONTAINER, "Containerfile")
IGNOREFILE = os.path.join(CONTAINER, "Containerfile.dockerignore")
COMPOSE_DIR = os.path.join(ROOT, "deploy", "compose")
COMPOSE = os.path.join(COMPOSE_DIR, "compose.yaml")
K8S = os.path.join(ROOT, "deploy", "k8s")
CONSUMERS = {"normalise": "caresignal-normalise", "score": "caresignal-score",
             "page": "caresignal-page"}
DRAIN_S = 20  # SIGTERM drains up to 20 s (docs/contract/guarantees.md, the runtime)
PROBE_PATHS = {"livenessProbe": "/healthz", "startupProbe": "/healthz",
               "readinessProbe": "/readyz"}


def path(*parts):
    return os.path.join(ROOT, *parts)


def read(*parts):
    with open(path(*parts), encoding="utf-8") as f:
        return f.read()


def notice(msg):
    print(f"  notice: {msg}")


_memo = {}


def memo(fn):
    def wrapper():
        if fn.__name__ not in _memo:
            _memo[fn.__name__] = fn()
        return _memo[fn.__name__]
    wrapper.__name__ = fn.__name__
    return wrapper


# ------------------------------------------------------------------ the code's contract
def strip_c_comments(src):
    return re.sub(r"/\*.*?\*/", " ", src, flags=re.S)


@memo
def prog_bits():
    """CS_PROG_* of include/caresignal/config.h, plus lib/config.c's P_K/P_R shorthands."""
    src = strip_c_comments(read("include", "caresignal", "config.h"))
    body = re.search(r"enum\s*\{([^}]*CS_PROG_NORMALISE[^}]*)\}", src).group(1)
    bits = {}
    for name, expr in re.findall(r"(CS_PROG_\w+)\s*=\s*([^,]+),", body + ","):
        bits[name] = eval_bits(expr, bits)
    for alias, target in re.findall(r"#define\s+(P_\w+)\s+(CS_PROG_\w+)",
                                    read("lib", "config.c")):
        bits[alias] = bits[target]
    return bits


def eval_bits(expr, bits):
    e = " ".join(expr.split())
    for name in sorted(bits, key=len, reverse=True):
        e = re.sub(r"\b%s\b" % name, str(bits[name]), e)
    if not re.fullmatch(r"[0-9xa-fA-F<|() \n]+", e):
        raise AssertionError(f"cannot evaluate program mask {expr!r}")
    return eval(e)  # noqa: S307 - digits, <<, | and parentheses only (checked above)


@memo
def config_keys():
    """lib/config.c's cs_keys[] table: name -> type, min, max, choices, uses, required,
    secret (the CS_CFG_SECRET flag)."""
    src = strip_c_comments(read("lib", "config.c"))
    m = re.search(r"cs_keys\[\]\s*=\s*\{(.*?)\{NULL", src, re.S)
    assert m, "lib/config.c: no cs_keys[] table found"
    row = re.compile(
        r'\{"(?P<name>[^"]+)",\s*(?P<type>CS_CFG_\w+),\s*(?P<def>NULL|"[^"]*"),\s*'
        r'OFF\(\w+\),\s*(?P<min>-?\d+),\s*(?P<max>-?\d+),\s*(?P<choices>NULL|"[^"]*"),\s*'
        r'(?P<uses>[^,]+),\s*(?P<required>[^,]+),\s*(?P<flags>[^,]+),', re.S)
    bits = prog_bits()
    keys = {}
    for r in row.finditer(m.group(1)):
        keys[r["name"]] = {
            "type": r["type"], "min": int(r["min"]), "max": int(r["max"]),
            "choices": None if r["choices"] == "NULL" else r["choices"].strip('"').split("|"),
            "uses": eval_bits(r["uses"], bits), "required": eval_bits(r["required"], bits),
            "secret": bool(re.search(r"\bCS_CFG_SECRET\b", r["flags"])),
        }
    rows = len(re.findall(r'\{"[a-z]', m.group(1)))
    assert len(keys) == rows and rows > 20, \
        f"lib/config.c: parsed {len(keys)} of {rows} rows of cs_keys[]"
    return keys


@memo
def kafka_secret_props():
    """librdkafka properties lib/config.c treats as secrets (cs_kafka_secret)."""
    src = read("lib", "config.c")
    m = re.search(r"cs_kafka_secret\(const char \*name\)\s*\{.*?\{(.*?)NULL\}", src, re.S)
    assert m, "lib/config.c: cs_kafka_secret's list not found"
    names = re.findall(r'"([^"]+)"', m.group(1))
    assert "sasl.password" in names, names
    return set(names)


@memo
def librdkafka_props():
    """Property names of Debian's librdkafka CONFIGURATION.md, or None when absent."""
    for doc in ("/usr/share/doc/librdkafka-dev/CONFIGURATION.md.gz",
                "/usr/share/doc/librdkafka1/CONFIGURATION.md.gz"):
        if os.path.exists(doc):
            with gzip.open(doc, "rt", encoding="utf-8") as f:
                return {m.group(1) for m in
                        (re.match(r"^([a-z][a-z0-9._]+)\s+\|", line) for line in f) if m}
    return None


def program_bit(program):
    return prog_bits()["CS_PROG_" + program[len("caresignal-"):].upper()]


@memo
def cmake_text():
    """The top-level CMakeLists.txt as a CS_TESTS=OFF, CS_FUZZ=OFF build reads it:
    comments and the if(CS_TESTS) / if(CS_FUZZ) blocks removed."""
    txt = "\n".join(line.split("#", 1)[0] for line in read("CMakeLists.txt").splitlines())
    return re.sub(r"if\((CS_TESTS|CS_FUZZ)\).*?endif\(\)", " ", txt, flags=re.S)


@memo
def cmake_programs():
    """Programs CMakeLists.txt installs (cs_program() adds install(TARGETS ...))."""
    txt = cmake_text()
    fn = re.search(r"function\(cs_program.*?endfunction\(\)", txt, re.S)
    assert fn and "install(TARGETS" in fn.group(0), "cs_program() no longer installs"
    progs = set(re.findall(r"cs_program\((caresignal-[\w-]+)", txt))
    assert set(CONSUMERS.values()) <= progs, progs
    return progs


# ------------------------------------------------------------------ properties
def parse_properties(text, where, commented=False):
    """[(lineno, key, value)] of a caresignal properties file (lib/config.c's reader:
    '#' or '!' starts a comment line; key=value, both trimmed). commented=True also
    returns lines like '#key=value' (what an operator would enable)."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s:
            continue
        if s[0] in "#!":
            if commented:
                m = re.match(r"^[#!]\s*([a-z][a-z0-9._-]*)=(.*)$", s)
                if m:
                    out.append((n, m.group(1), m.group(2).strip()))
            continue
        if commented:
            continue
        assert "=" in s, f"{where} line {n}: expected key=value"
        k, v = s.split("=", 1)
        out.append((n, k.strip(), v.strip()))
    return out


def is_secret_key(key):
    if key.startswith("kafka."):
        prop = key[len("kafka."):]
        return not prop.endswith(".file") and prop in kafka_secret_props()
    k = config_keys().get(key)
    return bool(k and k["secret"] and k["type"] != "CS_CFG_SECRET_FILE")


def check_key_value(key, value, where):
    """The key is one lib/config.c knows (or kafka.<librdkafka property>) and the value
    is one it would accept; never a secret given as a value."""
    assert not is_secret_key(key), \
        f"{where}: '{key}' holds a secret value: use {key}.file (a mounted secret file)"
    if key.startswith("kafka."):
        prop = key[len("kafka."):]
        if prop.endswith(".file"):
            prop = prop[:-len(".file")]
        assert prop, f"{where}: 'kafka.' without a property"
        known = librdkafka_props()
        if known is not None:
            assert prop in known, f"{where}: '{key}': librdkafka has no property '{prop}'"
        return
    k = config_keys().get(key)
    assert k, f"{where}: '{key}' is not a key of lib/config.c's table (nor kafka.*)"
    if k["type"] == "CS_CFG_INT":
        assert re.fullmatch(r"-?\d+", value) and k["min"] <= int(value) <= k["max"], \
            f"{where}: {key}={value}: expected an integer from {k['min']} to {k['max']}"
    elif k["type"] == "CS_CFG_CHOICE":
        assert value in k["choices"], f"{where}: {key}={value}: expected one of {k['choices']}"
    elif k["type"] == "CS_CFG_LISTEN":
        assert listen_port(value) is not None, f"{where}: {key}={value}: expected host:port"
    elif k["type"] == "CS_CFG_SECRET_FILE":
        assert value.startswith("/"), f"{where}: {key}={value}: expected an absolute path"


def listen_port(value):
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(\d{1,5})", value)
    return int(m.group(2)) if m and int(m.group(2)) <= 65535 else None


def split_args(argv, where):
    """(--config files, --set pairs) of a program's argument list (lib/cli.c's forms)."""
    configs, sets = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        for opt, dest in (("--config", configs), ("--set", sets)):
            if a == opt:
                assert i + 1 < len(argv), f"{where}: {opt} without a value"
                dest.append(argv[i + 1])
                i += 1
            elif a.startswith(opt + "="):
                dest.append(a[len(opt) + 1:])
        i += 1
    pairs = []
    for s in sets:
        assert "=" in s, f"{where}: --set {s}: expected key=value"
        k, v = s.split("=", 1)
        pairs.append((k.strip(), v.strip()))
    return configs, pairs


def effective_config(layers):
    """Merged key -> value of [(where, [(key, value)])] in order (later wins)."""
    cfg = {}
    for where, pairs in layers:
        for k, v in pairs:
            check_key_value(k, v, where)
            cfg[k] = v
    return cfg


def check_required(cfg, program, where):
    if program_bit(program) & prog_bits()["CS_PROG_KAFKA"]:
        assert cfg.get("kafka.bootstrap.servers"), \
            f"{where}: {program} needs kafka.bootstrap.servers"
    for name, k in config_keys().items():
        if k["required"] & program_bit(program):
            assert cfg.get(name), f"{where}: {program} requires {name}, not set"


def file_keys(cfg):
    """Secret-file keys (kafka.<property>.file, the table's CS_CFG_SECRET_FILE rows):
    files every program reads at start-up, whether it uses the key or not."""
    return {k: v for k, v in cfg.items()
            if k.startswith("kafka.") and k.endswith(".file")
            or config_keys().get(k, {}).get("type") == "CS_CFG_SECRET_FILE"}


# ------------------------------------------------------------------ Containerfile
@memo
def containerfile():
    """Stages of the Containerfile: [{'name', 'base', 'instrs': [(KEYWORD, rest)]}],
    with line continuations joined and comment lines dropped (as the builders do), and
    ${ARG} of the global ARGs substituted in FROM."""
    logical, cur = [], ""
    for line in read("deploy", "container", "Containerfile").splitlines():
        s = line.strip()
        if s.startswith("#") or (not s and not cur):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        if cur.strip():
            logical.append(cur.strip())
        cur = ""
    assert not cur, "Containerfile ends in a line continuation"
    global_args, stages = {}, []
    for ln in logical:
        kw, _, rest = ln.partition(" ")
        kw = kw.upper()
        if kw == "ARG" and not stages:
            n, _, d = rest.partition("=")
            global_args[n.strip()] = d.strip().strip('"')
            continue
        if kw == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                          lambda m: global_args.get(m.group(1) or m.group(2), m.group(0)),
                          words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "base": base, "instrs": []})
            continue
        assert stages, f"Containerfile: {kw} before the first FROM"
        stages[-1]["instrs"].append((kw, rest))
    return stages


def instr(stage, kw):
    return [rest for k, rest in stage["instrs"] if k == kw]


def parse_copy(rest):
    """(flags, sources, dest) of a COPY/ADD (shell or JSON form)."""
    words = json.loads(rest) if rest.lstrip().startswith("[") else shlex.split(rest)
    flags = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        flags[k] = v
    assert len(words) >= 2, f"COPY {rest}: needs a source and a destination"
    return flags, words[:-1], words[-1]


def apt_packages(stage):
    pkgs = []
    for rest in instr(stage, "RUN"):
        for seg in re.findall(r"apt-get\s+install\s+([^&;|]*)", rest):
            pkgs += [w for w in seg.split() if not w.startswith("-") and "=" not in w]
    return pkgs


def exec_form(rest, what):
    assert rest.lstrip().startswith("["), \
        f"Containerfile: {what} {rest}: shell form (runs under /bin/sh -c, which then " \
        f"gets SIGTERM instead of the program): use the JSON exec form"
    argv = json.loads(rest)
    assert argv and all(isinstance(a, str) for a in argv), f"{what} {rest}"
    return argv


class Ignore:
    """A .dockerignore as BuildKit reads it: patterns relative to the context root,
    cleaned (a trailing '/' dropped), '**' any number of directories, '!' re-includes,
    the last matching pattern wins, a path is excluded when it or a parent matches."""

    def __init__(self, text):
        self.rules = []
        for line in text.splitlines():
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            neg = s.startswith("!")
            pat = os.path.normpath(s[1:].strip() if neg else s).lstrip("/")
            self.rules.append((neg, re.compile(self._regex(pat))))

    @staticmethod
    def _regex(pat):
        out, i = "", 0
        while i < len(pat):
            if pat.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                out += ".*"
                i += 2
            elif pat[i] == "*":
                out += "[^/]*"
                i += 1
            elif pat[i] == "?":
                out += "[^/]"
                i += 1
            else:
                out += re.escape(pat[i])
                i += 1
        return "^" + out + "$"

    def excluded(self, rel):
        rel = os.path.normpath(rel).lstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        state = False
        for neg, rx in self.rules:
            if any(rx.match(p) for p in prefixes):
                state = not neg
        return state


def context_copies():
    """Repo paths the builder stage copies from the context (COPY without --from)."""
    srcs = []
    for st in containerfile():
        for rest in instr(st, "COPY") + instr(st, "ADD"):
            flags, sources, _ = parse_copy(rest)
            if "from" not in flags:
                srcs += [s.rstrip("/") or "." for s in sources]
    return srcs


# ------------------------------------------------------------------ install tree
@memo
def install_tree():
    """<tmp> of `cmake --install $CS_BUILD_DIR --prefix <tmp>`, or None without a build."""
    if not BUILD:
        return None
    tmp = tempfile.mkdtemp(prefix="cs-container-defs-")
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix", tmp],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"cmake --install {BUILD}: {p.stdout}{p.stderr}"
    return tmp


def installed_programs():
    tree = install_tree()
    if tree is None:
        return None
    return set(os.listdir(os.path.join(tree, "bin")))


# ------------------------------------------------------------------ compose
@memo
def compose():
    with open(COMPOSE, encoding="utf-8") as f:
        return yaml.safe_load(f)


def compose_image_services():
    """Services that run the caresignal image built from the Containerfile."""
    out = {}
    for name, svc in compose()["services"].items():
        b = svc.get("build")
        if isinstance(b, dict) and b.get("dockerfile", "").endswith("deploy/container/Containerfile"):
            out[name] = svc
    return out


def compose_path(p):
    return os.path.normpath(os.path.join(COMPOSE_DIR, p))


def compose_secret_targets(svc):
    out = {}
    for s in svc.get("secrets", []) or []:
        src, tgt = (s, s) if isinstance(s, str) else (s["source"], s.get("target", s["source"]))
        out[tgt if tgt.startswith("/") else "/run/secrets/" + tgt] = src
    return out


def compose_config_targets(svc):
    out = {}
    for c in svc.get("configs", []) or []:
        src, tgt = (c, "/" + c) if isinstance(c, str) else (c["source"], c.get("target", "/" + c["source"]))
        out[tgt] = compose_path(compose()["configs"][src]["file"])
    return out


def compose_bind_mounts(svc):
    """container path -> repo path of the service's bind mounts."""
    out = {}
    for v in svc.get("volumes", []) or []:
        if isinstance(v, str):
            parts = v.split(":")
            src, tgt = parts[0], parts[1] if len(parts) > 1 else parts[0]
            if src.startswith((".", "/", "~")):
                out[tgt] = compose_path(src)
        elif v.get("type") == "bind":
            out[v["target"]] = compose_path(v["source"])
    return out


def compose_command(svc, name):
    cmd = svc.get("command")
    assert isinstance(cmd, list) and cmd, \
        f"compose {name}: command must be a list (exec form, no shell): {cmd!r}"
    return cmd


def compose_properties_for(svc, name):
    """The effective configuration a caresignal service starts with (its --config files,
    read from the repo through its configs/bind mounts, then its --set pairs)."""
    cmd = compose_command(svc, name)
    configs, sets = split_args(cmd[1:], f"compose {name}")
    mounts = {**compose_config_targets(svc), **compose_bind_mounts(svc)}
    layers = []
    for c in configs:
        src = mounts.get(c)
        assert src, f"compose {name}: --config {c} is neither a config nor a bind mount"
        with open(src, encoding="utf-8") as f:
            text = f.read()
        rel = os.path.relpath(src, ROOT)
        layers.append((rel, [(k, v) for _, k, v in parse_properties(text, rel)]))
    layers.append((f"compose {name} --set", sets))
    return effective_config(layers)


# ------------------------------------------------------------------ k8s
@memo
def kustomization():
    with open(os.path.join(K8S, "kustomization.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


@memo
def k8s_objects():
    """Every object of the kustomization's resources: [(file, obj)]."""
    out = []
    for res in kustomization().get("resources", []):
        with open(os.path.join(K8S, res), encoding="utf-8") as f:
            out += [(res, o) for o in yaml.safe_load_all(f) if o]
    return out


def k8s(kind):
    return [o for _, o in k8s_objects() if o.get("kind") == kind]


def k8s_named(kind, name):
    found = [o for o in k8s(kind) if o["metadata"]["name"] == name]
    return found[0] if found else None


def generated_configmaps():
    return {g["name"] for g in kustomization().get("configMapGenerator", []) or []}


def configmap_keys(name):
    cm = k8s_named("ConfigMap", name)
    assert cm, f"k8s: ConfigMap {name} is not in the kustomization's resources"
    return {**(cm.get("data") or {}), **(cm.get("binaryData") or {})}


def secret_keys(name):
    s = k8s_named("Secret", name)
    assert s, f"k8s: Secret {name} is not in the kustomization's resources"
    return {**(s.get("stringData") or {}),
            **{k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}}


def volume_files(vol, where):
    """relative path -> (kind, object, key) of the files a configMap/secret volume shows."""
    for kind, field, objkey, keys in (
            ("ConfigMap", "configMap", "name", configmap_keys),
            ("Secret", "secret", "secretName", secret_keys)):
        if field in vol:
            src = vol[field]
            obj = src[objkey]
            data = keys(obj)
            if src.get("items"):
                out = {}
                for it in src["items"]:
                    assert it["key"] in data, \
                        f"{where}: volume {vol['name']}: {kind} {obj} has no key {it['key']}"
                    out[it["path"]] = (kind, obj, it["key"])
                return out
            return {k: (kind, obj, k) for k in data}
    return None


def resolve_in_pod(container, volumes, file_path, where):
    """(volume, relative path) a path in the container lies in, or None."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if file_path == mp or file_path.startswith(mp + "/"):
            if best is None or len(mp) > len(best[0]["mountPath"].rstrip("/")):
                best = (m, file_path[len(mp) + 1:])
    if best is None:
        return None
    m, rel = best
    if m.get("subPath"):
        rel = os.path.join(m["subPath"], rel) if rel else m["subPath"]
    return volumes[m["name"]], rel


def pod_file(container, volumes, file_path, where):
    """The content of a file a Deployment's container reads, from its ConfigMap/Secret."""
    hit = resolve_in_pod(container, volumes, file_path, where)
    assert hit, f"{where}: {file_path} is under no volumeMount"
    vol, rel = hit
    files = volume_files(vol, where)
    assert files is not None, f"{where}: {file_path} is on volume {vol['name']}, which is " \
        f"neither a ConfigMap nor a Secret"
    assert rel in files, f"{where}: {file_path}: volume {vol['name']} has no file {rel!r} " \
        f"(has {sorted(files)})"
    kind, obj, key = files[rel]
    return (configmap_keys if kind == "ConfigMap" else secret_keys)(obj)[key]


def deployments():
    return k8s("Deployment")


def pod_labels(d):
    return d["spec"]["template"]["metadata"].get("labels") or {}


def selects(selector, labels):
    ml = selector.get("matchLabels") or {}
    assert ml or selector.get("matchExpressions"), "an empty selector selects everything"
    return all(labels.get(k) == v for k, v in ml.items())


def k8s_quantity(q):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T|m)?", str(q))
    assert m, f"quantity {q!r}"
    mult = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 1e3,
            "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}[m.group(2)]
    return float(m.group(1)) * mult


# ================================================================== checks: files
def test_yaml_files_parse():
    n = 0
    for d in ("deploy/compose", "deploy/k8s", "deploy/prometheus"):
        for dirpath, _, files in os.walk(path(d)):
            for f in files:
                if f.endswith((".yaml", ".yml")):
                    with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                        docs = [x for x in yaml.safe_load_all(fh) if x is not None]
                    assert docs, f"{os.path.join(dirpath, f)}: no YAML document"
                    n += 1
    assert n >= 10, f"only {n} YAML files found"


def test_config_table_parsed():
    keys = config_keys()
    for k in ("redis.host", "redis.password.file", "directory.file", "metrics.listen",
              "page.webhook.secret.file", "group.id"):
        assert k in keys, f"lib/config.c: {k} missing from the parsed table"
    assert keys["redis.password"]["secret"] and keys["page.webhook.secret"]["secret"]
    assert keys["redis.password.file"]["type"] == "CS_CFG_SECRET_FILE"
    assert keys["directory.file"]["required"] & program_bit("caresignal-normalise")


# ================================================================== checks: Containerfile
def test_containerfile_stages():
    stages = containerfile()
    assert len(stages) >= 2, "Containerfile: expected a builder and a runtime stage"
    build, runtime = stages[0], stages[-1]
    assert build["base"] == "debian:12", f"builder FROM {build['base']}, expected debian:12"
    assert runtime["base"] == "debian:12-slim", \
        f"runtime FROM {runtime['base']}, expected debian:12-slim"
    assert build["name"], "the builder stage needs a name (AS build) for COPY --from"
    for st in stages:
        assert not instr(st, "HEALTHCHECK"), \
            "Containerfile: HEALTHCHECK: orchestrators probe /healthz and /readyz themselves"
        assert not instr(st, "ADD"), "Containerfile: ADD: use COPY"
    users = instr(runtime, "USER")
    assert users, "runtime stage: no USER (it would run as root)"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, \
        f"runtime USER {users[-1]}: must be a numeric non-root uid (runAsNonRoot checks it)"
    labels = {}
    for rest in instr(runtime, "LABEL"):
        for w in shlex.split(rest):
            k, _, v = w.partition("=")
            labels[k] = v
    for k in ("title", "description", "version", "revision", "source", "created"):
        assert f"org.opencontainers.image.{k}" in labels, \
            f"runtime stage: label org.opencontainers.image.{k} missing"
    stop = instr(runtime, "STOPSIGNAL")
    assert not stop or stop[-1].strip() in ("SIGTERM", "15"), \
        f"STOPSIGNAL {stop}: the programs drain on SIGTERM"


def test_containerfile_runtime_command():
    runtime = containerfile()[-1]
    progs = cmake_programs()
    eps = instr(runtime, "ENTRYPOINT")
    cmds = instr(runtime, "CMD")
    assert cmds, "runtime stage: no default CMD"
    for what, rests in (("ENTRYPOINT", eps), ("CMD", cmds)):
        for rest in rests:
            argv = exec_form(rest, what)
            if what == "CMD" and eps:
                continue  # arguments to the entrypoint
            assert argv[0] in progs, \
                f"runtime {what} {argv}: {argv[0]} is not a program CMakeLists.txt installs"
    workdir = instr(runtime, "WORKDIR")
    # a default file found relative to the working directory wins over the installed one
    assert workdir and workdir[-1].strip() == "/", \
        "runtime stage: WORKDIR / (rules.file's default deploy/config/rules.json would " \
        "be looked up relative to it first)"


def test_containerfile_copy_sources():
    stages = containerfile()
    names = {st["name"] for st in stages if st["name"]}
    with open(IGNOREFILE, encoding="utf-8") as f:
        ign = Ignore(f.read())
    for st in stages:
        for rest in instr(st, "COPY"):
            flags, sources, dest = parse_copy(rest)
            if "from" in flags:
                assert flags["from"] in names, f"COPY --from={flags['from']}: no such stage"
                assert st is stages[-1], "COPY --from outside the runtime stage"
                for s in sources:
                    assert s.startswith("/staging/"), \
                        f"COPY --from {s}: the runtime copies from the staged install only"
                continue
            for s in sources:
                assert not re.search(r"[*?\[]", s), f"COPY {s}: no wildcards (name what is copied)"
                assert os.path.exists(path(s)), f"COPY {s}: not in the repository"
                assert not ign.excluded(s.rstrip("/")), \
                    f"COPY {s}: excluded by {os.path.relpath(IGNOREFILE, ROOT)}"


def test_containerfile_copies_what_cmake_reads():
    """Every file or directory CMakeLists.txt names (a CS_TESTS=OFF build) is inside what
    the builder copies and not dropped by the ignore file, so an install rule or source
    added by another change cannot break the image build unnoticed."""
    copied = context_copies()
    with open(IGNOREFILE, encoding="utf-8") as f:
        ign = Ignore(f.read())
    txt = cmake_text()
    refs = set()
    for tok in re.findall(r"[A-Za-z0-9_./${}+-]+", txt):
        tok = re.sub(r"^\$\{(CMAKE_CURRENT_SOURCE_DIR|PROJECT_SOURCE_DIR|CMAKE_SOURCE_DIR)\}/",
                     "", tok)
        if "$" in tok or "/" not in tok and "." not in tok:
            continue
        if os.path.exists(path(tok)) and tok not in (".", ".."):
            refs.add(tok.rstrip("/"))
    assert "lib/config.c" in refs and "deploy/config/rules.json" in refs, sorted(refs)
    for ref in sorted(refs):
        assert any(c == "." or ref == c or ref.startswith(c + "/") for c in copied), \
            f"CMakeLists.txt reads {ref}, which the Containerfile does not COPY"
        assert not ign.excluded(ref), \
            f"CMakeLists.txt reads {ref}, which {os.path.relpath(IGNOREFILE, ROOT)} excludes"
        if os.path.isdir(path(ref)):
            for dirpath, _, files in os.walk(path(ref)):
                for fn in files:
                    rel = os.path.relpath(os.path.join(dirpath, fn), ROOT)
                    if rel.endswith((".c", ".h", ".lua", ".cmake", ".json", ".avsc")):
                        assert not ign.excluded(rel), f"{rel}: excluded from the context"


def test_containerfile_configures_like_the_build():
    build = containerfile()[0]
    runs = " ".join(instr(build, "RUN"))
    assert re.search(r"-DCS_TESTS=OFF\b", runs), "builder: configure with -DCS_TESTS=OFF"
    assert re.search(r"\boption\(CS_TESTS\b", read("CMakeLists.txt")), \
        "CMakeLists.txt has no CS_TESTS option any more"
    assert "-DCMAKE_BUILD_TYPE=Release" in runs
    assert re.search(r"cmake --install build[^&]*--prefix /usr", runs), \
        "builder: cmake --install build --prefix /usr"
    assert "DESTDIR=/staging" in runs, "builder: stage the install with DESTDIR=/staging"


def dpkg_owners(paths):
    """path -> {package} for the paths dpkg knows (one dpkg -S for all of them; merged
    /usr: a path is also looked up with /lib and /usr/lib swapped, and resolved)."""
    variants = {}
    for p in paths:
        for v in {p, os.path.realpath(p), re.sub(r"^/usr/lib/", "/lib/", p),
                  re.sub(r"^/lib/", "/usr/lib/", p)}:
            variants.setdefault(v, set()).add(p)
    r = subprocess.run(["dpkg", "-S", *sorted(variants)], capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("diversion") or ": " not in line:
            continue
        pkgs, f = line.split(": ", 1)
        for orig in variants.get(f.strip(), ()):
            out.setdefault(orig, set()).update(x.split(":")[0].strip() for x in pkgs.split(","))
    return out


def test_containerfile_build_packages():
    """Each pkg_check_modules() module of a CS_TESTS=OFF build comes from a -dev package
    the builder installs (looked up with pkg-config and dpkg on this machine)."""
    build_pkgs = set(apt_packages(containerfile()[0]))
    for p in ("build-essential", "cmake", "pkg-config"):
        assert p in build_pkgs, f"builder: {p} not installed"
    mods = set()
    for m in re.finditer(r"pkg_check_modules\(\w+\s+REQUIRED\s+(?:IMPORTED_TARGET\s+)?([^)]*)\)",
                         cmake_text()):
        mods.update(w for w in m.group(1).split() if w.isidentifier() or "-" in w)
    assert {"rdkafka", "hiredis", "libmicrohttpd"} <= mods, mods
    if not (shutil.which("pkg-config") and shutil.which("dpkg")):
        notice("pkg-config or dpkg missing: the -dev package of each module not looked up")
        return
    pcs = {}
    for mod in sorted(mods):
        p = subprocess.run(["pkg-config", "--variable=pcfiledir", mod], capture_output=True,
                           text=True)
        if p.returncode != 0:
            notice(f"pkg-config does not know {mod} here: not looked up")
            continue
        pcs[mod] = os.path.join(p.stdout.strip(), mod + ".pc")
    owners_of = dpkg_owners(pcs.values())
    for mod, pc in pcs.items():
        owners = owners_of.get(pc)
        assert owners, f"{mod}.pc belongs to no Debian package here"
        assert owners & build_pkgs, \
            f"pkg_check_modules({mod}): {sorted(owners)} is not among the builder's packages"


def test_containerfile_packages_exist():
    """The packages of both stages exist in Debian (apt-cache, when its lists are there)."""
    stages = containerfile()
    pkgs = sorted(set(apt_packages(stages[0]) + apt_packages(stages[-1])))
    runtime = set(apt_packages(stages[-1]))
    assert "ca-certificates" in runtime, "runtime: ca-certificates (TLS to Kafka, webhooks)"
    assert not any(p.endswith("-dev") or p in ("build-essential", "cmake", "gcc")
                   for p in runtime), f"runtime installs build packages: {sorted(runtime)}"
    lists = "/var/lib/apt/lists"
    if not shutil.which("apt-cache") or not os.path.isdir(lists) or not any(
            "_Packages" in f for f in os.listdir(lists)):
        notice("no apt lists here (apt-get update): package names not looked up")
        return
    p = subprocess.run(["apt-cache", "policy", *pkgs], capture_output=True, text=True)
    cand = dict(re.findall(r"^(\S+):\n(?:.*\n)*?\s+Candidate: (\S+)", p.stdout, re.M))
    for pkg in pkgs:
        assert cand.get(pkg) not in (None, "(none)"), f"Debian has no package {pkg}"


def test_containerfile_runtime_libraries():
    """Every shared library the installed programs link is in a package the runtime
    stage installs (or in debian:12-slim's libc6). Needs $CS_BUILD_DIR."""
    tree = install_tree()
    if tree is None:
        notice("CS_BUILD_DIR unset: the programs' shared libraries not checked")
        return
    if not (shutil.which("readelf") and shutil.which("ldd") and shutil.which("dpkg")):
        notice("readelf, ldd or dpkg missing: the programs' shared libraries not checked")
        return
    runtime = set(apt_packages(containerfile()[-1])) | {"libc6"}
    links = []  # (program, soname, resolved path)
    for prog in sorted(os.listdir(os.path.join(tree, "bin"))):
        exe = os.path.join(tree, "bin", prog)
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            subprocess.run(["readelf", "-d", exe], capture_output=True,
                                           text=True).stdout)
        resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(
            ["ldd", exe], capture_output=True, text=True).stdout, re.M))
        for lib in needed:
            if re.match(r"lib(a|ub|l|t)san\.so", lib):
                continue  # a CS_SANITIZE build's runtime, never in an image build
            assert lib in resolved, f"{prog}: {lib} not found by ldd"
            links.append((prog, lib, resolved[lib]))
    assert links, "the installed programs link no shared library?"
    owners_of = dpkg_owners({p for _, _, p in links})
    for prog, lib, p in links:
        owners = owners_of.get(p)
        assert owners, f"{prog}: {p} belongs to no Debian package"
        assert owners & runtime, \
            f"{prog} links {lib} from {sorted(owners)}, which the runtime stage does not " \
            f"install"


def test_ignore_file_semantics():
    ign = Ignore("*\n!lib/\n**/*.o\nbench/results\n")
    assert ign.excluded("docs/DESIGN.md") and ign.excluded("tests")
    assert not ign.excluded("lib/config.c") and ign.excluded("lib/config.o")
    assert ign.excluded("bench/results/x.json") is True


# ================================================================== checks: compose
def test_compose_services():
    svcs = compose()["services"]
    for s in ("kafka", "kafka-topics", "redis", "prometheus", *CONSUMERS.values()):
        assert s in svcs, f"compose: no service {s}"
    imgs = compose_image_services()
    for prog in CONSUMERS.values():
        assert prog in imgs, f"compose {prog}: not built from deploy/container/Containerfile"
    for name, svc in imgs.items():
        b = svc["build"]
        ctx = compose_path(b["context"])
        assert os.path.samefile(ctx, ROOT), f"compose {name}: build context {ctx} is not the repo root"
        assert os.path.isfile(os.path.join(ctx, b["dockerfile"])), f"compose {name}: no {b['dockerfile']}"
    assert svcs["kafka"]["image"].startswith("apache/kafka:"), "compose kafka: the apache/kafka image"
    assert re.match(r"redis:7[.\-]", svcs["redis"]["image"]), "compose redis: a Redis 7 image"
    assert svcs["prometheus"]["image"].startswith("prom/prometheus:")
    for name, svc in svcs.items():
        img = svc.get("image", "")
        assert "build" in svc or (":" in img and not img.endswith(":latest")), \
            f"compose {name}: pin the image's tag ({img})"


def test_compose_referenced_files_exist():
    c = compose()
    named = set((c.get("volumes") or {}).keys())
    for name, svc in c["services"].items():
        for v in svc.get("volumes", []) or []:
            src = v.split(":")[0] if isinstance(v, str) else v.get("source")
            if isinstance(v, str) and not src.startswith((".", "/", "~")) or \
                    isinstance(v, dict) and v.get("type") == "volume":
                assert src in named, f"compose {name}: volume {src} is not declared"
                continue
            p = compose_path(src)
            assert p.startswith(ROOT + "/") and os.path.exists(p), \
                f"compose {name}: bind mount {src} does not exist in the repo"
        for s in svc.get("secrets", []) or []:
            src = s if isinstance(s, str) else s["source"]
            assert src in (c.get("secrets") or {}), f"compose {name}: secret {src} not declared"
        for cf in svc.get("configs", []) or []:
            src = cf if isinstance(cf, str) else cf["source"]
            assert src in (c.get("configs") or {}), f"compose {name}: config {src} not declared"
    for cname, cdef in (c.get("configs") or {}).items():
        assert os.path.isfile(compose_path(cdef["file"])), f"compose config {cname}: no {cdef['file']}"
    gitignore = read("deploy", "compose", ".gitignore").split()
    for sname, sdef in (c.get("secrets") or {}).items():
        f = compose_path(sdef["file"])
        rel = os.path.relpath(f, COMPOSE_DIR)
        assert os.path.isfile(f + ".example"), \
            f"compose secret {sname}: no {rel}.example beside the (uncommitted) real file"
        assert rel.startswith("secrets/") and "/secrets/*" in gitignore and \
            "!/secrets/*.example" in gitignore, \
            f"compose secret {sname}: {rel} must be ignored by deploy/compose/.gitignore"
        with open(f + ".example", encoding="utf-8") as fh:
            assert "CHANGE-ME" in fh.read(), f"{rel}.example: not an obvious placeholder"


def test_compose_depends_on():
    svcs = compose()["services"]
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in svcs.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            assert dep in svcs, f"compose {name}: depends_on {dep}: no such service"
            cond = spec.get("condition", "service_started")
            assert cond in conditions, f"compose {name}: depends_on {dep}: condition {cond}"
            if cond == "service_healthy":
                assert svcs[dep].get("healthcheck"), \
                    f"compose {name}: waits for {dep} healthy, which has no healthcheck"
            if cond == "service_completed_successfully":
                assert str(svcs[dep].get("restart", "no")) == "no", \
                    f"compose {name}: waits for one-shot {dep}, which restarts"
    for prog in CONSUMERS.values():
        deps = svcs[prog]["depends_on"]
        assert deps["kafka-topics"]["condition"] == "service_completed_successfully", \
            f"compose {prog}: must start after the topics exist (auto-create is off)"
        if prog != "caresignal-normalise":
            assert deps["redis"]["condition"] == "service_healthy", f"compose {prog}: Redis"


def test_compose_consumers():
    imgs = compose_image_services()
    progs = cmake_programs()
    installed = installed_programs()
    for name, svc in imgs.items():
        cmd = compose_command(svc, name)
        assert cmd[0] in progs, f"compose {name}: {cmd[0]} is not a program CMakeLists.txt installs"
        if installed is not None:
            assert cmd[0] in installed, f"compose {name}: {cmd[0]} not in the install tree"
        assert not svc.get("entrypoint"), f"compose {name}: give the program as the command"
    for prog in CONSUMERS.values():
        svc = imgs[prog]
        assert compose_command(svc, prog)[0] == prog, f"compose {prog}: runs {svc['command'][0]}"
        grace = svc.get("stop_grace_period", "10s")
        m = re.fullmatch(r"(\d+)s", str(grace))
        assert m and int(m.group(1)) >= DRAIN_S + 5, \
            f"compose {prog}: stop_grace_period {grace}: SIGTERM drains up to {DRAIN_S} s"
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), \
            f"compose {prog}: restart policy {svc.get('restart')}"
        assert svc.get("read_only") is True and "ALL" in (svc.get("cap_drop") or []), \
            f"compose {prog}: read_only and cap_drop ALL"


def test_compose_config_and_secrets():
    """The consumers' effective configuration: known keys, valid values, the required
    ones set, every *.file a secret mounted into that very service, nothing more."""
    c = compose()
    tree = install_tree()
    for name, svc in compose_image_services().items():
        prog = compose_command(svc, name)[0]
        cfg = compose_properties_for(svc, name)
        if prog in CONSUMERS.values():
            check_required(cfg, prog, f"compose {name}")
        secrets = compose_secret_targets(svc)
        files = file_keys(cfg)
        for k, v in files.items():
            assert v in secrets, f"compose {name}: {k}={v} is not a secret mounted in {name}"
        used = set(files.values())
        for tgt in secrets:
            assert tgt in used, f"compose {name}: secret {tgt} mounted but not used"
        d = cfg.get("directory.file")
        if d and prog == "caresignal-normalise":
            share = "/usr/share/caresignal/"
            if d.startswith(share):
                assert tree is None or os.path.isfile(
                    os.path.join(tree, "share", "caresignal", d[len(share):])), \
                    f"compose {name}: directory.file {d} is not in the install tree"
                assert re.search(r"RENAME\s+" + re.escape(os.path.basename(d)), cmake_text()) or \
                    os.path.basename(d) in cmake_text(), \
                    f"compose {name}: directory.file {d}: CMakeLists.txt installs no such file"
            else:
                assert d in compose_bind_mounts(svc), f"compose {name}: {d} not mounted"
    # the redis host and the broker are the compose services
    cfg = compose_properties_for(c["services"]["caresignal-score"], "caresignal-score")
    assert cfg["redis.host"] == "redis" and cfg.get("redis.port", "6379") == "6379"
    host, port = cfg["kafka.bootstrap.servers"].split(",")[0].rsplit(":", 1)
    env = c["services"]["kafka"]["environment"]
    assert host == "kafka" and f"PLAINTEXT://{host}:{port}" in env["KAFKA_ADVERTISED_LISTENERS"], \
        f"kafka.bootstrap.servers {host}:{port} is not the broker's advertised listener"


def test_compose_kafka_kraft():
    env = compose()["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = str(env["KAFKA_NODE_ID"])
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(node + "@kafka:")
    ctrl_port = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].rsplit(":", 1)[1]
    assert f"CONTROLLER://:{ctrl_port}" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    cid = env["CLUSTER_ID"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid) and \
        len(base64.urlsafe_b64decode(cid + "==")) == 16, \
        f"CLUSTER_ID {cid}: Kafka wants a base64 UUID (kafka-storage.sh random-uuid)"
    for k in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
              "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
              "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert str(env[k]) == "1", f"compose kafka: {k} must be 1 on one broker"
    assert str(env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")).lower() == "false"
    vols = compose()["services"]["kafka"].get("volumes", [])
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in vols if isinstance(v, str)), \
        "compose kafka: KAFKA_LOG_DIRS must be on a volume"


def _dry(cmd, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CS_", "KAFKA_"))
         and k not in ("BOOTSTRAP", "COMMAND_CONFIG")}
    e.update(env or {})
    p = subprocess.run(["bash", *cmd, "--dry-run"], capture_output=True, text=True, env=e,
                       timeout=30)
    assert p.returncode == 0, f"{cmd} --dry-run: exit {p.returncode}: {p.stderr}"
    out = {}
    for line in p.stdout.splitlines():
        argv = shlex.split(line)
        if "--create" not in argv:
            continue
        opts = {"config": {}}
        for i, a in enumerate(argv):
            if a in ("--topic", "--partitions", "--replication-factor", "--bootstrap-server"):
                opts[a[2:]] = argv[i + 1]
            if a == "--config":
                k, v = argv[i + 1].split("=", 1)
                opts["config"][k] = v
        out[opts["topic"]] = opts
    return out


def test_compose_topics_match_topics_sh():
    """The compose topic job creates topics.sh's six topics with topics.sh's partitions
    and configs; only the replication differs (one broker)."""
    svc = compose()["services"]["kafka-topics"]
    script_in = svc["entrypoint"][-1]
    mounts = compose_bind_mounts(svc)
    assert script_in in mounts, f"compose kafka-topics: {script_in} is not mounted"
    script = mounts[script_in]
    ours = _dry([script], {"BOOTSTRAP": svc["environment"]["BOOTSTRAP"]})
    prod = _dry([path("deploy", "kafka", "topics.sh")])
    assert set(ours) == set(prod) and len(ours) == 6, f"topics {sorted(ours)} vs {sorted(prod)}"
    for t, o in ours.items():
        p = prod[t]
        assert o["partitions"] == p["partitions"], f"{t}: partitions {o['partitions']} vs {p['partitions']}"
        assert o["replication-factor"] == "1", f"{t}: replication {o['replication-factor']}"
        assert o["bootstrap-server"] == "kafka:9092"
        oc, pc = dict(o["config"]), dict(p["config"])
        assert oc.pop("min.insync.replicas") == "1", f"{t}: min.insync.replicas"
        pc.pop("min.insync.replicas")
        assert oc == pc, f"{t}: configs differ from topics.sh: {oc} vs {pc}"
    p = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert p.returncode == 0, f"bash -n {script}: {p.stderr}"
    if shutil.which("shellcheck"):
        p = subprocess.run(["shellcheck", script], capture_output=True, text=True)
        assert p.returncode == 0, f"shellcheck:\n{p.stdout}{p.stderr}"
    else:
        notice("shellcheck is not installed: create-topics.sh not linted")


def test_compose_redis():
    svc = compose()["services"]["redis"]
    mounts = compose_bind_mounts(svc)
    conf = [src for tgt, src in mounts.items() if tgt.endswith(".conf")]
    assert conf, "compose redis: no redis.conf mounted"
    with open(conf[0], encoding="utf-8") as f:
        settings = {}
        for line in f:
            s = line.split("#", 1)[0].split()
            if s:
                settings[s[0].lower()] = " ".join(s[1:])
    assert settings.get("appendonly") == "yes", "redis.conf: appendonly yes"
    assert settings.get("maxmemory-policy") == "noeviction", \
        "redis.conf: maxmemory-policy noeviction (the scorer refuses to start otherwise)"
    assert "requirepass" not in settings, "redis.conf: no password in the file"
    ep = " ".join(svc["entrypoint"])
    conf_target = [t for t, s in mounts.items() if s == conf[0]][0]
    assert conf_target in ep and "/run/secrets/redis_password" in ep, \
        "compose redis: started with its redis.conf and the password from its secret"
    assert any(isinstance(v, str) and v.endswith(":/data") for v in svc["volumes"]), \
        "compose redis: /data (the AOF) on a volume"


def test_compose_prometheus():
    svc = compose()["services"]["prometheus"]
    mounts = compose_bind_mounts(svc)
    cfg_src = mounts.get("/etc/prometheus/prometheus.yml")
    assert cfg_src == os.path.join(COMPOSE_DIR, "prometheus.yml"), mounts
    with open(cfg_src, encoding="utf-8") as f:
        prom = yaml.safe_load(f)
    rules_src = path("deploy", "prometheus", "caresignal.rules.yml")
    for rf in prom.get("rule_files", []):
        tgt = rf if rf.startswith("/") else os.path.join("/etc/prometheus", rf)
        assert mounts.get(tgt) == rules_src, f"prometheus rule_files {rf}: {tgt} is not " \
            f"deploy/prometheus/caresignal.rules.yml mounted"
    assert prom.get("rule_files"), "prometheus.yml loads no rules"
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    rule_jobs = set(re.findall(r'job="(caresignal-[a-z]+)"', read("deploy", "prometheus",
                                                                   "caresignal.rules.yml")))
    assert rule_jobs <= set(jobs), f"rules name jobs {sorted(rule_jobs - set(jobs))} not scraped"
    port = {}
    for name, svc_ in compose_image_services().items():
        if name in CONSUMERS.values():
            port[name] = listen_port(compose_properties_for(svc_, name)["metrics.listen"])
    for prog in CONSUMERS.values():
        assert prog in jobs, f"prometheus.yml: no job {prog}"
        j = jobs[prog]
        targets = [(n, d["port"]) for d in j.get("dns_sd_configs", []) for n in d["names"]] + \
            [tuple(t.rsplit(":", 1)) for s in j.get("static_configs", []) for t in s["targets"]]
        assert targets, f"prometheus.yml job {prog}: no targets"
        for host, p in targets:
            assert host == prog and int(p) == port[prog], \
                f"prometheus.yml job {prog}: target {host}:{p}, the service serves {prog}:{port[prog]}"
    if not shutil.which("promtool"):
        notice("promtool is not installed: prometheus.yml not checked with it")
        return
    with tempfile.TemporaryDirectory(prefix="cs-prom-") as d:  # the container's layout
        shutil.copy(cfg_src, os.path.join(d, "prometheus.yml"))
        for rf in prom.get("rule_files", []):
            shutil.copy(rules_src, os.path.join(d, os.path.basename(rf)))
        p = subprocess.run(["promtool", "check", "config", os.path.join(d, "prometheus.yml")],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"promtool check config:\n{p.stdout}{p.stderr}"


def test_compose_validates():
    """docker compose (v2) or Debian's docker-compose (v1) reads the file, when present."""
    v2 = shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True).returncode == 0
    if v2:
        p = subprocess.run(["docker", "compose", "-f", COMPOSE, "config", "-q"],
                           capture_output=True, text=True, timeout=60, cwd=COMPOSE_DIR)
        if p.returncode != 0 and "secret" in p.stderr and "not found" in p.stderr:
            notice("docker compose: secret files not made (README): not checked")
            return
        assert p.returncode == 0, f"docker compose config:\n{p.stderr}"
        return
    if not shutil.which("docker-compose"):
        notice("neither docker compose nor docker-compose here: compose.yaml not validated "
               "by compose itself")
        return
    # v1 (1.29) knows the compose spec but not the top-level name
    doc = dict(compose())
    doc.pop("name", None)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f)
    try:
        p = subprocess.run(["docker-compose", "--project-directory", COMPOSE_DIR, "-f", f.name,
                            "config", "-q"], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)
    assert p.returncode == 0, f"docker-compose config:\n{p.stdout}{p.stderr}"


# ================================================================== checks: k8s
def test_k8s_kustomization_files():
    k = kustomization()
    res = k.get("resources", [])
    assert res, "kustomization.yaml: no resources"
    for r in res:
        assert os.path.isfile(os.path.join(K8S, r)), f"kustomization.yaml: {r} does not exist"
    for g in k.get("configMapGenerator", []) or []:
        for f in g.get("files", []):
            assert os.path.isfile(os.path.join(K8S, f.split("=", 1)[-1])), \
                f"kustomization.yaml: generator file {f} does not exist"
    listed = set(res) | {"kustomization.yaml"}
    for f in os.listdir(K8S):
        if f.endswith((".yaml", ".yml")):
            assert f in listed, f"deploy/k8s/{f} is not listed in kustomization.yaml"
    assert k.get("namespace") == "caresignal"
    ns = k8s("Namespace")
    assert ns and ns[0]["metadata"]["name"] == k["namespace"]
    used = {c["image"].split(":")[0] for d in deployments()
            for c in d["spec"]["template"]["spec"]["containers"]}
    for img in k.get("images", []) or []:
        assert img["name"] in used, f"kustomization.yaml images: {img['name']} is used by no container"
    if shutil.which("kubectl"):
        p = subprocess.run(["kubectl", "kustomize", K8S], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, f"kubectl kustomize:\n{p.stderr}"
        rendered = [o for o in yaml.safe_load_all(p.stdout) if o]
        assert len(rendered) == len(k8s_objects()), "kubectl kustomize renders other objects"
    else:
        notice("kubectl is not installed: the kustomization not rendered")


def test_k8s_objects_well_formed():
    api = {"Namespace": "v1", "ServiceAccount": "v1", "ConfigMap": "v1", "Secret": "v1",
           "Service": "v1", "Deployment": "apps/v1", "PodDisruptionBudget": "policy/v1",
           "NetworkPolicy": "networking.k8s.io/v1"}
    seen = set()
    for f, o in k8s_objects():
        kind = o.get("kind")
        assert kind in api, f"{f}: unexpected kind {kind}"
        assert o.get("apiVersion") == api[kind], f"{f}: {kind} apiVersion {o.get('apiVersion')}"
        name = o["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) and len(name) <= 63, name
        assert (kind, name) not in seen, f"{f}: {kind} {name} defined twice"
        seen.add((kind, name))
        assert "namespace" not in o["metadata"] or kind == "Namespace", \
            f"{f}: {kind} {name}: leave the namespace to kustomization.yaml"
    for name in CONSUMERS.values():
        assert ("Deployment", name) in seen, f"k8s: no Deployment {name}"


CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "args", "ports", "env",
                    "envFrom", "resources", "securityContext", "startupProbe",
                    "livenessProbe", "readinessProbe", "volumeMounts", "workingDir",
                    "lifecycle", "terminationMessagePolicy"}
POD_FIELDS = {"serviceAccountName", "automountServiceAccountToken", "enableServiceLinks",
              "terminationGracePeriodSeconds", "securityContext", "containers",
              "initContainers", "volumes", "topologySpreadConstraints", "affinity",
              "nodeSelector", "tolerations", "priorityClassName", "imagePullSecrets"}
PROBE_FIELDS = {"httpGet", "periodSeconds", "timeoutSeconds", "failureThreshold",
                "successThreshold", "initialDelaySeconds"}


def test_k8s_deployments():
    progs = cmake_programs()
    installed = installed_programs()
    uid = int(instr(containerfile()[-1], "USER")[-1].split(":")[0])
    for d in deployments():
        name = d["metadata"]["name"]
        spec = d["spec"]
        pod = spec["template"]["spec"]
        assert selects(spec["selector"], pod_labels(d)), f"{name}: selector misses its pods"
        assert spec.get("replicas", 1) >= 1 and spec.get("strategy", {}).get("type") in (
            "RollingUpdate", "Recreate"), f"{name}: replicas and strategy"
        assert set(pod) <= POD_FIELDS, f"{name}: unknown pod fields {set(pod) - POD_FIELDS}"
        assert pod.get("terminationGracePeriodSeconds", 30) >= 45, \
            f"{name}: terminationGracePeriodSeconds >= 45 (SIGTERM drains {DRAIN_S} s)"
        psc = pod.get("securityContext") or {}
        assert psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot"
        assert psc.get("runAsUser", uid) == uid, f"{name}: runAsUser {psc.get('runAsUser')} " \
            f"is not the image's USER {uid}"
        assert (psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault"
        assert pod.get("automountServiceAccountToken") is False, f"{name}: no API token"
        assert len(pod["containers"]) == 1, f"{name}: one container"
        for c in pod["containers"]:
            where = f"{name}/{c['name']}"
            assert set(c) <= CONTAINER_FIELDS, f"{where}: unknown fields {set(c) - CONTAINER_FIELDS}"
            cmd = c.get("command") or []
            assert cmd and cmd[0] in progs, f"{where}: command {cmd}: not an installed program"
            if installed is not None:
                assert cmd[0] in installed, f"{where}: {cmd[0]} not in the install tree"
            assert cmd[0] == name, f"{where}: Deployment {name} runs {cmd[0]}"
            sc = c.get("securityContext") or {}
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
            assert (sc.get("capabilities") or {}).get("drop") == ["ALL"], f"{where}: drop ALL"
            assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
            assert (sc.get("seccompProfile") or psc.get("seccompProfile"))["type"] == "RuntimeDefault"
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    assert r in (res.get(part) or {}), f"{where}: resources.{part}.{r}"
            assert k8s_quantity(res["limits"]["memory"]) >= 128 * 2**20, \
                f"{where}: memory limit {res['limits']['memory']} < 128Mi"
            assert k8s_quantity(res["requests"]["memory"]) <= k8s_quantity(res["limits"]["memory"])
            assert not any(e.get("value") and is_secret_key(e["name"].lower().replace("_", "."))
                           for e in c.get("env", []) or []), f"{where}: a secret in env"


def test_k8s_probes():
    for d in deployments():
        name = d["metadata"]["name"]
        for c in d["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            numbers = set(ports.values())
            assert ports.get("metrics"), f"{name}: no containerPort named metrics"
            for probe, want in PROBE_PATHS.items():
                pr = c.get(probe)
                assert pr, f"{name}: no {probe}"
                assert set(pr) <= PROBE_FIELDS, f"{name}: {probe}: unknown fields"
                hg = pr.get("httpGet")
                assert hg, f"{name}: {probe} is not an httpGet"
                assert hg["path"] == want, f"{name}: {probe} path {hg['path']}, expected {want}"
                port = hg["port"]
                assert port in ports or port in numbers, \
                    f"{name}: {probe} port {port} is not a declared containerPort"
            sp = c["startupProbe"]
            assert sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3) >= 30, \
                f"{name}: the startupProbe gives less than 30 s"


def test_k8s_volumes_and_references():
    """Every volumeMount has a volume, every volume is mounted, no mount inside another,
    every ConfigMap and Secret a Deployment names is a resource of the kustomization,
    with the keys it projects."""
    gen = generated_configmaps()
    for d in deployments():
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        mounted = set()
        for c in pod["containers"]:
            paths = []
            for m in c.get("volumeMounts", []):
                assert m["name"] in vols, f"{name}: volumeMount {m['name']} has no volume"
                mounted.add(m["name"])
                paths.append(m["mountPath"].rstrip("/"))
            for a in paths:
                for b in paths:
                    assert a == b or not b.startswith(a + "/"), \
                        f"{name}: {b} is mounted inside {a}"
            assert len(paths) == len(set(paths)), f"{name}: a mountPath twice"
            for e in c.get("envFrom", []) or []:
                ref = e.get("configMapRef") or e.get("secretRef")
                kind = "ConfigMap" if "configMapRef" in e else "Secret"
                assert k8s_named(kind, ref["name"]) or ref["name"] in gen, \
                    f"{name}: envFrom {kind} {ref['name']} not in the kustomization"
        assert mounted == set(vols), f"{name}: volumes never mounted: {set(vols) - mounted}"
        for v in vols.values():
            if "configMap" in v:
                assert k8s_named("ConfigMap", v["configMap"]["name"]) or \
                    v["configMap"]["name"] in gen, \
                    f"{name}: ConfigMap {v['configMap']['name']} not in the kustomization"
            if "secret" in v:
                assert k8s_named("Secret", v["secret"]["secretName"]), \
                    f"{name}: Secret {v['secret']['secretName']} not in the kustomization"
                assert not v["secret"].get("defaultMode", 0o644) & 0o007, \
                    f"{name}: secret files readable by others"
            volume_files(v, name)  # projected keys exist


def test_k8s_configuration():
    """Each consumer's effective configuration (its --config files out of the ConfigMap
    mounted where its args say, then its --set pairs): known keys, valid values, the
    required ones set; every *.file and directory.file is a file its volumes provide,
    and every secret it mounts is one it uses."""
    for d in deployments():
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        c = pod["containers"][0]
        configs, sets = split_args(c.get("args", []) + (c.get("command") or [])[1:], name)
        assert configs, f"{name}: no --config"
        layers = []
        for cf in configs:
            text = pod_file(c, vols, cf, name)
            layers.append((f"{name} {cf}", [(k, v) for _, k, v in
                                            parse_properties(text, f"{name} {cf}")]))
        layers.append((f"{name} --set", sets))
        cfg = effective_config(layers)
        check_required(cfg, name, name)
        used_secret_files = set()
        for k, v in {**file_keys(cfg), **{k: cfg[k] for k in ("directory.file",
                                                              "page.routes.file")
                                           if k in cfg}}.items():
            content = pod_file(c, vols, v, f"{name} {k}")
            hit = resolve_in_pod(c, vols, v, name)
            if "secret" in hit[0]:
                used_secret_files.add(v)
            if k == "directory.file":
                assert content.startswith(
                    "location_id,provider_id,name,local_authority_code,region,service_type"), \
                    f"{name}: {v}: not a location directory (docs/contract/canonical-event.md header)"
        port = listen_port(cfg.get("metrics.listen", ""))
        assert port is not None, f"{name}: metrics.listen unset: no probes, no metrics"
        assert port in {p["containerPort"] for p in c["ports"]}, \
            f"{name}: metrics.listen port {port} is not a containerPort"
        # a secret file mounted but never configured is only allowed for the commented
        # kafka.sasl.password.file (enabled by uncommenting the program's lines)
        for m in c.get("volumeMounts", []):
            v = vols[m["name"]]
            if "secret" not in v:
                continue
            for rel in volume_files(v, name):
                full = m["mountPath"].rstrip("/") + "/" + rel
                if full in used_secret_files:
                    continue
                commented = [val for cf in configs for _, k, val in parse_properties(
                    pod_file(c, vols, cf, name), cf, commented=True) if k.endswith(".file")]
                assert full in commented, f"{name}: secret file {full} mounted, never used"


def test_k8s_pdb_services_networkpolicy():
    deps = deployments()
    for kind in ("PodDisruptionBudget", "Service"):
        objs = k8s(kind)
        for o in objs:
            sel = o["spec"]["selector"]
            sel = sel if kind == "PodDisruptionBudget" else {"matchLabels": sel}
            hit = [d for d in deps if selects(sel, pod_labels(d))]
            assert len(hit) == 1, f"{kind} {o['metadata']['name']}: selects " \
                f"{[d['metadata']['name'] for d in hit]}, expected one Deployment"
        for d in deps:
            assert any(selects(o["spec"]["selector"] if kind == "PodDisruptionBudget"
                               else {"matchLabels": o["spec"]["selector"]}, pod_labels(d))
                       for o in objs), f"{d['metadata']['name']}: no {kind}"
    for pdb in k8s("PodDisruptionBudget"):
        s = pdb["spec"]
        assert ("minAvailable" in s) != ("maxUnavailable" in s), pdb["metadata"]["name"]
        d = [x for x in deps if selects(s["selector"], pod_labels(x))][0]
        if "minAvailable" in s:
            assert int(s["minAvailable"]) < d["spec"].get("replicas", 1), \
                f"PDB {pdb['metadata']['name']}: minAvailable blocks every drain"
    for svc in k8s("Service"):
        d = [x for x in deps if selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(x))][0]
        c = d["spec"]["template"]["spec"]["containers"][0]
        cports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            assert tp in cports or tp in cports.values(), \
                f"Service {svc['metadata']['name']}: targetPort {tp} is no containerPort"
        # the alert rules' job names are the Services' names (the README's scrape config)
        assert svc["metadata"]["name"] in CONSUMERS.values()
    for np in k8s("NetworkPolicy"):
        sel = np["spec"]["podSelector"]
        assert all(selects(sel, pod_labels(d)) for d in deps), "NetworkPolicy misses a consumer"
        ports = [p["port"] for r in np["spec"].get("ingress", []) for p in r.get("ports", [])]
        assert "metrics" in ports or 9464 in ports, "NetworkPolicy: the metrics port is not open"


def test_k8s_secret_example():
    for s in k8s("Secret"):
        assert not s.get("data"), f"Secret {s['metadata']['name']}: use stringData placeholders"
        for k, v in (s.get("stringData") or {}).items():
            assert "CHANGE-ME" in v, f"Secret {s['metadata']['name']}: {k} is not a placeholder"
    for cm in k8s("ConfigMap"):
        for k, v in (cm.get("data") or {}).items():
            if k.endswith(".properties"):
                continue  # checked key by key (test_no_secret_values)
            assert not re.search(r"(?i)(password|secret|token)\s*[=:]\s*\S", v), \
                f"ConfigMap {cm['metadata']['name']}/{k}: looks like a secret"


def test_k8s_prometheus_example():
    """deploy/k8s/examples/prometheus-scrape.yml keeps the consumers' Services and names
    each job after its Service (the rules' job names); promtool checks it where its
    build has Kubernetes discovery (Debian's has not)."""
    f = os.path.join(K8S, "examples", "prometheus-scrape.yml")
    with open(f, encoding="utf-8") as fh:
        prom = yaml.safe_load(fh)
    services = {s["metadata"]["name"] for s in k8s("Service")}
    [job] = [j for j in prom["scrape_configs"] if j.get("kubernetes_sd_configs")]
    rl = job["relabel_configs"]
    keep = [r for r in rl if r.get("action") == "keep"
            and r["source_labels"] == ["__meta_kubernetes_service_name"]]
    assert keep, "the example keeps no Service by name"
    for svc in services:
        assert re.fullmatch(keep[0]["regex"], svc), f"the example drops Service {svc}"
    assert any(r.get("target_label") == "job" and r["source_labels"] ==
               ["__meta_kubernetes_service_name"] for r in rl), "job is not the Service name"
    ns = job["kubernetes_sd_configs"][0].get("namespaces", {}).get("names", [])
    assert ns == [kustomization()["namespace"]], f"the example discovers namespaces {ns}"
    rule_jobs = set(re.findall(r'job="(caresignal-[a-z]+)"', read("deploy", "prometheus",
                                                                   "caresignal.rules.yml")))
    assert rule_jobs <= services, f"rules name jobs {sorted(rule_jobs - services)}, no Service"
    if not shutil.which("promtool"):
        notice("promtool is not installed: the Kubernetes scrape example not checked")
        return
    with tempfile.TemporaryDirectory(prefix="cs-prom-") as d:
        shutil.copy(f, os.path.join(d, "prometheus.yml"))
        for rf in prom.get("rule_files", []):
            shutil.copy(path("deploy", "prometheus", "caresignal.rules.yml"),
                        os.path.join(d, os.path.basename(rf)))
        p = subprocess.run(["promtool", "check", "config", os.path.join(d, "prometheus.yml")],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0 and "kubernetes_sd_configs not found" in p.stdout + p.stderr:
            notice("this promtool has no Kubernetes discovery (Debian builds it without): "
                   "the scrape example checked by structure only")
            return
        assert p.returncode == 0, f"promtool check config:\n{p.stdout}{p.stderr}"


# ================================================================== checks: keys
def all_properties_texts():
    """(where, text) of every properties file of deploy/compose and the k8s ConfigMaps."""
    out = [("deploy/compose/caresignal.properties", read("deploy", "compose",
                                                         "caresignal.properties"))]
    for cm in k8s("ConfigMap"):
        for k, v in (cm.get("data") or {}).items():
            if k.endswith(".properties"):
                out.append((f"ConfigMap {cm['metadata']['name']}/{k}", v))
    return out


def test_properties_keys_known():
    """Every key in the properties (and every key of a commented-out example line) is a
    key of lib/config.c's table or a kafka.<librdkafka property>, with a valid value."""
    if librdkafka_props() is None:
        notice("librdkafka's CONFIGURATION.md not found: kafka.* property names not checked")
    n = 0
    for where, text in all_properties_texts():
        for lineno, k, v in parse_properties(text, where):
            check_key_value(k, v, f"{where} line {lineno}")
            n += 1
        for lineno, k, v in parse_properties(text, where, commented=True):
            check_key_value(k, v, f"{where} line {lineno} (commented)")
    assert n >= 10, f"only {n} keys found"
    for name, svc in compose_image_services().items():
        _, sets = split_args(compose_command(svc, name)[1:], f"compose {name}")
        for k, v in sets:
            check_key_value(k, v, f"compose {name} --set")
    for d in deployments():
        c = d["spec"]["template"]["spec"]["containers"][0]
        _, sets = split_args(c.get("args", []), d["metadata"]["name"])
        for k, v in sets:
            check_key_value(k, v, f"{d['metadata']['name']} --set")


def test_no_secret_values():
    """No secret as a value anywhere in the definitions: only the *.file forms."""
    secret_keys_ = {k for k, v in config_keys().items()
                    if v["secret"] and v["type"] != "CS_CFG_SECRET_FILE"}
    assert {"redis.password", "page.webhook.secret"} <= secret_keys_
    for where, text in all_properties_texts():
        for lineno, k, _ in parse_properties(text, where) + parse_properties(
                text, where, commented=True):
            assert not is_secret_key(k), f"{where} line {lineno}: {k}: use {k}.file"
    for name, svc in compose()["services"].items():
        env = svc.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for k, v in items:
            assert not re.search(r"(?i)pass|secret|token", k), \
                f"compose {name}: environment {k}: secrets come from files"
        words = svc.get("command") or []
        words = words if isinstance(words, list) else shlex.split(words)
        for w in words:
            m = re.match(r"([a-z][a-z0-9._-]*)=", w)
            assert not (m and is_secret_key(m.group(1))), f"compose {name}: {w.split('=')[0]}"
    with open(COMPOSE, encoding="utf-8") as f:
        assert not re.search(r"(?i)requirepass\s+[\"']?[A-Za-z0-9]", f.read().replace(
            'requirepass "$$(cat', "")), "compose.yaml: a literal Redis password"


# ================================================================== checks: install tree
def test_install_tree_has_everything_named():
    """With $CS_BUILD_DIR: every program the Containerfile, compose and k8s name is in
    the install tree's bin/, and what the runtime stage copies from the staged install
    exists in it (<prefix>/bin, share/caresignal, etc/caresignal)."""
    tree = install_tree()
    if tree is None:
        notice("CS_BUILD_DIR unset: the install tree is not checked (set it to a build "
               "directory to run cmake --install into a temporary prefix)")
        return
    named = set()
    runtime = containerfile()[-1]
    for rest in instr(runtime, "CMD") + instr(runtime, "ENTRYPOINT"):
        named.add(exec_form(rest, "CMD")[0])
    for name, svc in compose_image_services().items():
        named.add(compose_command(svc, name)[0])
    for d in deployments():
        for c in d["spec"]["template"]["spec"]["containers"]:
            named.add(c["command"][0])
    have = set(os.listdir(os.path.join(tree, "bin")))
    missing = named - have
    assert not missing, f"not installed by cmake --install: {sorted(missing)}"
    assert set(CONSUMERS.values()) <= named
    for rest in instr(runtime, "COPY"):
        flags, sources, _ = parse_copy(rest)
        if "from" not in flags:
            continue
        for s in sources:
            rel = re.sub(r"^/staging/(usr/)?", "", s).rstrip("/")
            assert os.path.exists(os.path.join(tree, rel)), \
                f"COPY --from={flags['from']} {s}: the install tree has no {rel}"
    share = os.path.join(tree, "share", "caresignal")
    for f in ("rules.json", "schemas/registry.json"):
        assert os.path.isfile(os.path.join(share, f)), f"install tree: share/caresignal/{f}"


# ================================================================== main
def main():
    try:
        return checks.run(globals())
    finally:
        tree = _memo.get("install_tree")
        if tree:
            shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
