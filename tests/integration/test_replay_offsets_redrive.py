#!/usr/bin/env python3
"""caresignal-replay offsets and redrive on the dev stack.

offsets: a group's committed offsets move exactly to the first message at or after the
time asked (the dev broker answers offsets-for-times with -1, so the tool searches the
timestamps; the test computes the answer independently from kcat's view of the
partitions), to earliest and to latest; a dry run changes nothing.

redrive: UNKNOWN_LOCATION dead letters, re-driven after the directory gained the location
(and the normaliser reloaded it on SIGHUP), become canonical events that are scored; their
key, value and timestamp on the raw topic are the originals; a second redrive re-drives
nothing; a dry run changes nothing."""
import os
import shutil
import signal
import time

import cstest
from cstest import cat, iso, kcat_consume, kcat_produce, now_ms, wait_until
from test_normalise import DIRECTORY, j, nhse

TOPIC = "intel.raw.ccg"


def replay(stack, *args):
    return cstest.run("caresignal-replay", *args, stack=stack, timeout=300)


def watermarks(stack, topic):
    """{partition: (count, last offset)} as kcat sees the topic."""
    out = {}
    for r in kcat_consume(stack.bootstrap, topic):
        n, _ = out.get(r.partition, (0, -1))
        out[r.partition] = (n + 1, r.offset)
    return out


class Offsets(cstest.StackTest):
    partitions = {TOPIC: 3}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.stack
        # four rounds of messages, the wall clock noted before each: a round's messages
        # carry producer timestamps at or after its mark
        cls.marks = []
        for rnd in range(4):
            cls.marks.append(now_ms())
            kcat_produce(s.bootstrap, TOPIC,
                         [("k%d-%d" % (rnd, i), "round %d message %d" % (rnd, i))
                          for i in range(40)])
            time.sleep(0.05)
        cls.records = kcat_consume(s.bootstrap, TOPIC)
        assert len(cls.records) == 160

    def expected_for(self, ts):
        """The independent answer: per partition, the first offset whose timestamp is >= ts
        (the partition's end if none)."""
        out = {}
        for p in range(3):
            recs = sorted((r for r in self.records if r.partition == p), key=lambda r: r.offset)
            after = [r.offset for r in recs if r.timestamp >= ts]
            out[p] = after[0] if after else (recs[-1].offset + 1 if recs else 0)
        return out

    def test_to_time_exact(self):
        s = self.stack
        group = "g-time"
        # the round marks, and the timestamp of one message in the middle of the data
        middle = sorted(r.timestamp for r in self.records)[77]
        for ts in self.marks[1:] + [middle]:
            want = self.expected_for(ts)
            p = replay(s, "offsets", "--group", group, "--topic", TOPIC, "--to-time", iso(ts),
                       "--execute")
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn(b"committed:", p.stdout)
            self.assertEqual(cstest.committed(s, TOPIC, group), want, iso(ts))
        # a group started there reads exactly the messages at or after that time
        got = kcat_consume(s.bootstrap, TOPIC, group=group)
        self.assertEqual(sorted((r.partition, r.offset) for r in got),
                         sorted((r.partition, r.offset) for r in self.records
                                if r.timestamp >= middle))

    def test_earliest_latest_and_dry_run(self):
        s = self.stack
        group = "g-ends"
        ends = {p: n for p, (n, _) in watermarks(s, TOPIC).items()}
        p = replay(s, "offsets", "--group", group, "--topic", TOPIC, "--to", "latest")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("dry run: nothing changed (add --execute)", out)
        self.assertIn("old", out)
        self.assertIn("lag: ", out)
        # the broker cannot say whether the group has members: the tool says so
        self.assertIn("warning: the broker cannot say whether group", out)
        self.assertEqual(set(cstest.committed(s, TOPIC, group).values()), {-1001})
        p = replay(s, "offsets", "--group", group, "--topic", TOPIC, "--to", "latest",
                   "--execute")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(cstest.committed(s, TOPIC, group), ends)
        # a dry run back to the start shows the move and leaves the offsets where they are
        p = replay(s, "offsets", "--group", group, "--topic", TOPIC, "--to", "earliest")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"lag: 0 messages before, 160 after; 3 of 3 partitions change",
                      p.stdout)
        self.assertEqual(cstest.committed(s, TOPIC, group), ends)
        self.assertEqual(len(kcat_consume(s.bootstrap, TOPIC)), 160)  # topic untouched
        p = replay(s, "offsets", "--group", group, "--topic", TOPIC, "--to", "earliest",
                   "--execute")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(cstest.committed(s, TOPIC, group), {0: 0, 1: 0, 2: 0})

    def test_usage(self):
        s = self.stack
        for args, needle in [
                (("offsets", "--topic", TOPIC, "--to", "latest"), b"--group"),
                (("offsets", "--group", "g", "--to", "latest"), b"--topic"),
                (("offsets", "--group", "g", "--topic", TOPIC), b"exactly one of"),
                (("offsets", "--group", "g", "--topic", TOPIC, "--to", "latest",
                  "--to-time", "2026-01-01T00:00:00Z"), b"exactly one of"),
                (("offsets", "--group", "g", "--topic", TOPIC, "--to", "middle"), b"--to"),
                (("offsets", "--group", "g", "--topic", TOPIC, "--to-time", "yesterday"),
                 b"--to-time"),
                (("redrive", "--where", "UNKNOWN_LOCATION"), b"error=CODE"),
                (("redrive", "--where", "error=NOPE"), b"NOPE"),
                (("redrive", "--since", "2026-02-01T00:00:00Z", "--until",
                  "2026-01-01T00:00:00Z"), b"--until"),
                (("redrive", "--group", "g"), b"does not go with")]:
            p = replay(s, *args)
            self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
            self.assertIn(needle, p.stderr)
            self.assertEqual(len(p.stderr.decode().strip().split("\n")), 1, p.stderr)
        p = replay(s, "offsets", "--group", "g", "--topic", "no.such.topic", "--to", "latest")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"no.such.topic", p.stderr)


class Redrive(cstest.StackTest):
    NEW = "1-300000001"

    def test_redrive_after_directory_update(self):
        s = self.stack
        directory = os.path.join(s.dir, "directory.csv")
        shutil.copy(DIRECTORY, directory)
        extra = {"directory.file": directory}
        norm = s.program("caresignal-normalise", config_extra=extra)
        scorer = s.program("caresignal-score")
        base = now_ms() - 3 * 86400_000
        unknown = [nhse("RD-%d" % i, loc=self.NEW, harm="SEVERE", at=base + i * 3600_000)
                   for i in range(3)]
        kcat_produce(s.bootstrap, "intel.raw.nhse",
                     [("rd%d" % i, j(e)) for i, e in enumerate(unknown)] +
                     [("ok", j(nhse("OK-1", at=base))), ("bad", b"{not json")])
        wait_until(lambda: len(cat(s, "intel.deadletter")) == 4, 60, what="the dead letters")
        wait_until(lambda: len(cat(s, "intel.events")) == 1, 60, what="the valid event")
        dead = kcat_consume(s.bootstrap, "intel.deadletter")
        self.assertEqual(sorted(d.headers["cs.error"] for d in dead),
                         ["JSON_SYNTAX"] + ["UNKNOWN_LOCATION"] * 3)
        raw_before = kcat_consume(s.bootstrap, "intel.raw.nhse")
        r = s.redis()

        # a dry run lists what it would do and changes nothing
        p = replay(s, "redrive", "--where", "error=UNKNOWN_LOCATION")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("would re-drive 3, already re-driven 0, skipped 0", out)
        self.assertEqual(out.count("would re-drive dead letter"), 3)
        self.assertIn("dry run: nothing changed (add --execute)", out)
        self.assertNotIn("CANARY", out + p.stderr.decode())
        self.assertEqual(len(kcat_consume(s.bootstrap, "intel.raw.nhse")), len(raw_before))
        self.assertEqual(r.scan_keys("cs:redriven:*"), [])

        # the directory learns the location; the normaliser reloads it
        with open(directory, "a") as f:
            f.write("%s,1-100000009,New Place,E06000060,South East,Care home\n" % self.NEW)
        norm.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(l.get("msg") == "directory reloaded" for l in norm.logs()), 30,
                   what="the reload")

        p = replay(s, "redrive", "--where", "error=UNKNOWN_LOCATION", "--execute")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(b"re-driven 3, already re-driven 0, skipped 0", p.stdout)
        # the originals, byte for byte and with their timestamps, are back on the raw topic
        raw_after = kcat_consume(s.bootstrap, "intel.raw.nhse")
        had = {(a.partition, a.offset) for a in raw_before}
        again = [a for a in raw_after if (a.partition, a.offset) not in had]
        self.assertEqual(len(again), 3)
        originals = {(d.key, d.value, int(d.headers["cs.origin.timestamp"]))
                     for d in dead if d.headers["cs.error"] == "UNKNOWN_LOCATION"}
        self.assertEqual({(a.key, a.value, a.timestamp) for a in again}, originals)
        for a in again:
            self.assertTrue(a.headers["cs.redrive.of"].startswith("intel.deadletter:"))
        # ... normalised and scored
        wait_until(lambda: len(cat(s, "intel.events")) == 4, 60, what="the re-driven events")
        key = "LOCATION:%s" % self.NEW
        wait_until(lambda: s.state([key])[key].get("events_total") == "3", 60,
                   what="the re-driven events scored")
        self.assertEqual(len(cat(s, "intel.deadletter")), 4)  # nothing new rejected

        # a second run re-drives nothing
        p = replay(s, "redrive", "--where", "error=UNKNOWN_LOCATION", "--execute")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"re-driven 0, already re-driven 3, skipped 0", p.stdout)
        self.assertEqual(len(kcat_consume(s.bootstrap, "intel.raw.nhse")), len(raw_after))
        # every reason: only the JSON_SYNTAX one is left; nothing before --since
        p = replay(s, "redrive")
        self.assertIn(b"would re-drive 1, already re-driven 3, skipped 0", p.stdout)
        self.assertIn(b"JSON_SYNTAX", p.stdout)
        p = replay(s, "redrive", "--since", iso(now_ms() + 3600_000))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"would re-drive 0, already re-driven 0, skipped 0", p.stdout)
        time.sleep(1)  # let the scorer commit before it stops
        self.assertEqual(s.state([key])[key].get("events_total"), "3")
        r.close()
        self.assertEqual(norm.stop(), 0)
        self.assertEqual(scorer.stop(), 0)


if __name__ == "__main__":
    cstest.main()
