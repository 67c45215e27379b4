#!/usr/bin/env python3
"""The installed tree (`cmake --install` into a fresh prefix) works from any working
directory: every program's --help names the example configuration, which exists under
etc/caresignal; the defaults of rules.file and schema.registry resolve to the installed
share/caresignal files; an installed caresignal-publish validates a partner's event with
the installed schemas; installed consumers started from / become ready on a dev stack
(the normaliser with the installed example location directory)."""
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request

import cstest
from cstest import wait_until

PROGRAMS = ["caresignal-normalise", "caresignal-score", "caresignal-page", "caresignal-publish",
            "caresignal-replay", "caresignal-cat"]


def ready(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


class Install(cstest.StackTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.prefix = tempfile.mkdtemp(prefix="cs-install-")
        subprocess.run(["cmake", "--install", cstest.BUILD, "--prefix", cls.prefix],
                       check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)
        super().tearDownClass()

    def run_installed(self, name, *args, input=None):
        return subprocess.run([os.path.join(self.prefix, "bin", name), *args], cwd="/",
                              input=input, capture_output=True, timeout=60)

    def test_layout_and_help(self):
        share = os.path.join(self.prefix, "share", "caresignal")
        for f in ["rules.json", "schemas/registry.json", "directory.example.csv",
                  "caresignal.rules.yml"]:
            self.assertTrue(os.path.isfile(os.path.join(share, f)), f)
        example = os.path.join(self.prefix, "etc", "caresignal", "caresignal.properties")
        self.assertTrue(os.path.isfile(example))
        for name in PROGRAMS:
            p = self.run_installed(name, "--help")
            self.assertEqual(p.returncode, 0, name)
            out = p.stdout.decode()
            self.assertIn("/caresignal/caresignal.properties", out, name)
            for key, rel in [("rules.file", "rules.json"),
                             ("schema.registry", "schemas/registry.json")]:
                m = re.search(r"^  %s .*\[default (.*)\]$" % re.escape(key), out, re.M)
                if m:  # the program reads the key: its default is the installed file
                    self.assertEqual(m.group(1), os.path.realpath(os.path.join(share, rel)),
                                     name)
        # the example configuration holds only keys the programs know: each program
        # loads it (its unknown-key check would exit 2 naming the key)
        p = self.run_installed("caresignal-cat", "--config", example, "--help")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_publish_dry_run_uses_installed_schemas(self):
        sample = os.path.join(cstest.SOURCE, "deploy/dev/data/samples/nhse-incident.json")
        p = self.run_installed("caresignal-publish", "--source", "nhse", "--dry-run", sample)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_consumers_ready_from_root(self):
        s = self.stack
        share = os.path.join(self.prefix, "share", "caresignal")
        procs = []
        for name in ["caresignal-normalise", "caresignal-score"]:
            port = cstest.free_port()
            cmd = [os.path.join(self.prefix, "bin", name), "--config", s.config,
                   "--set", "metrics.listen=127.0.0.1:%d" % port]
            if name == "caresignal-normalise":
                cmd += ["--set", "directory.file=" + os.path.join(share, "directory.example.csv")]
            log = open(os.path.join(s.dir, name + ".installed.log"), "wb")
            procs.append((subprocess.Popen(cmd, cwd="/", stdout=subprocess.DEVNULL, stderr=log),
                          log, port))
        try:
            for proc, log, port in procs:
                wait_until(lambda: ready(port) or proc.poll() is not None, 60, interval=0.2,
                           what="an installed consumer ready")
                self.assertIsNone(proc.poll(), open(log.name).read())
        finally:
            for proc, log, _ in procs:
                proc.terminate()
                self.assertEqual(proc.wait(60), 0)
                log.close()


if __name__ == "__main__":
    cstest.main()
