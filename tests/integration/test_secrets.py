#!/usr/bin/env python3
"""Secrets and configuration errors, named after what broke: `--set redis.password…`
stood in `ps` for the program's whole life, and configuration errors were plain text
while every other line on stderr is JSON."""
import json
import os

import cstest
from cstest import wait_until

CANARY = "CANARY-SECRET-ps-4417"
DIRECTORY = os.path.join(cstest.SOURCE, "tests/data/integration/directory.csv")


class Secrets(cstest.StackTest):
    def test_regression_secret_on_the_command_line_blanked(self):
        s = self.stack
        n = s.program("caresignal-normalise", config_extra={
            "directory.file": DIRECTORY, "page.webhook.secret": CANARY})
        wait_until(lambda: "normalise started" in n.log_text(), 60, what="the start")
        with open("/proc/%d/cmdline" % n.proc.pid, "rb") as f:
            cmdline = f.read()
        self.assertNotIn(CANARY.encode(), cmdline)
        self.assertIn(b"page.webhook.secret=xxxx", cmdline)
        self.assertEqual(n.stop(), 0)
        self.assertNotIn(CANARY, n.log_text())
        warning = [l for l in n.logs() if l.get("msg", "").startswith("a secret was given with --set")]
        self.assertEqual(warning[0]["level"], "warn")

    def test_secret_file_form(self):
        s = self.stack
        path = os.path.join(s.dir, "hook-secret")
        with open(path, "w") as f:
            f.write(CANARY + "\n")
        os.chmod(path, 0o600)
        n = s.program("caresignal-normalise", config_extra={
            "directory.file": DIRECTORY, "page.webhook.secret.file": path})
        wait_until(lambda: "normalise started" in n.log_text(), 60, what="the start")
        self.assertEqual(n.stop(), 0)
        self.assertNotIn("a secret was given", n.log_text())
        p = cstest.run("caresignal-normalise", "--set", "kafka.bootstrap.servers=x:1",
                       "--set", "redis.password.file=/nonexistent/" + CANARY[:6])
        self.assertEqual(p.returncode, 2)

    def test_regression_configuration_errors_are_json_lines(self):
        for args in (["--set", "score.batch.max=lots"], ["--set", "redis.passwordHUNTER2"],
                     ["--no-such-option"]):
            p = cstest.run("caresignal-score", "--set", "kafka.bootstrap.servers=x:1", *args)
            self.assertEqual(p.returncode, 2, p.stderr)
            lines = p.stderr.decode().strip().split("\n")
            self.assertEqual(len(lines), 1, lines)
            line = json.loads(lines[0])
            self.assertEqual((line["level"], line["program"], line["exit"]),
                             ("fatal", "caresignal-score", 2))
            self.assertNotIn("HUNTER2", lines[0])
        p = cstest.run("caresignal-score", "--set", "redis.passwordHUNTER2")
        self.assertIn("config key 'redis.password...'", p.stderr.decode())


if __name__ == "__main__":
    cstest.main()
