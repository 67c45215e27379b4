"""Debian's Prometheus for the dev stack: the demo and the tests start one on a free
loopback port, scraping the consumers' metrics.listen every second with the operators'
rules (deploy/prometheus/caresignal.rules.yml) loaded, and read it through its HTTP
query API. Standard library only."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(TOP, "deploy/prometheus/caresignal.rules.yml")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(url, method="GET", timeout=10):
    """(status, body text, content type) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type", "")


class Prometheus:
    """prometheus scraping \\p targets ({job: port} on 127.0.0.1) every second."""

    def __init__(self, targets, rules=RULES, timeout=60):
        self.dir = tempfile.mkdtemp(prefix="cs-prom-")
        self.port = free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
            if rules and os.path.exists(rules):
                f.write("rule_files:\n  - %s\n" % rules)
            f.write("scrape_configs:\n")
            for job, port in targets.items():
                f.write("  - job_name: %s\n    static_configs:\n"
                        "      - targets: ['127.0.0.1:%d']\n" % (job, port))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + config,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("prometheus did not start in %d s" % timeout)
            time.sleep(0.3)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _ready(self):
        if self.proc.poll() is not None:
            with open(self.log.name) as f:
                raise RuntimeError("prometheus exited: " + f.read()[-2000:])
        try:
            return http(self.url + "/-/ready")[0] == 200
        except OSError:
            return False

    def api(self, path):
        status, body, _ = http(self.url + path)
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise RuntimeError("prometheus %s: %s" % (path, body))
        return doc["data"]

    def query(self, q):
        """{frozenset(labels): value} of an instant query."""
        data = self.api("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}

    def scalar(self, q):
        """The sum of an instant query's values, None when it has none."""
        r = self.query(q)
        return sum(r.values()) if r else None

    def by(self, q, label):
        """{label value: value} of an instant query."""
        return {dict(k).get(label, ""): v for k, v in self.query(q).items()}

    def targets_up(self):
        up = self.query("up")
        return bool(up) and all(v == 1 for v in up.values())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
