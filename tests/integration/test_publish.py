#!/usr/bin/env python3
"""caresignal-publish: valid, invalid and mixed files (exit codes, the summary's counts and
line numbers), arrays and pretty-printed objects, Avro through the devbroker decoded by
the normaliser, dry runs, undelivered events, and the C API example."""
import json
import os
import time

import cstest
from cstest import cat, iso, kcat_consume, now_ms, wait_until

DIRECTORY = os.path.join(cstest.SOURCE, "tests/data/integration/directory.csv")


def concern(ref, loc="1-101669119", **kw):
    e = {"concern_ref": ref, "ccg_ods": "15E", "location_id": loc, "concern_type": "COMPLAINT",
         "rag": "AMBER", "received_on": time.strftime("%Y-%m-%d", time.gmtime()),
         "narrative": "SYNTHETIC narrative text"}
    e.update(kw)
    return e


def incident(ref, loc="RXQ02", **kw):
    e = {"incident_id": ref, "reporting_org_ods": "RXQ", "location_id": loc,
         "category": "OUTBREAK", "harm": "LOW", "occurred_at": iso(now_ms() - 3600_000),
         "reported_at": now_ms() - 1800_000}
    e.update(kw)
    return e


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def summary(p):
    return p.stdout.decode().strip().split("\n")[-1]


class Publish(cstest.StackTest):
    def publish(self, *args):
        return cstest.run("caresignal-publish", *args, stack=self.stack)

    def test_valid_file(self):
        d = self.stack.dir
        lines = [json.dumps(concern("V/%d" % i, loc=["1-101669119", "1-200000001"][i % 2]))
                 for i in range(20)]
        path = write(os.path.join(d, "valid.jsonl"), "\n".join(lines) + "\n\n")
        p = self.publish("--source", "ccg", path)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(summary(p), "ccg -> intel.raw.ccg: 20 read, 20 sent, 0 rejected, 0 undelivered")
        got = [r for r in kcat_consume(self.stack.bootstrap, "intel.raw.ccg")
               if r.value.startswith(b'{"concern_ref": "V/')]
        self.assertEqual(sorted(r.value.decode() for r in got), sorted(lines))  # bytes as written
        self.assertEqual({r.key for r in got}, {b"1-101669119", b"1-200000001"})  # the location

    def test_invalid_and_mixed_files(self):
        d = self.stack.dir
        bad = [json.dumps(concern("B/1", rag="PURPLE")),
               '{"concern_ref": "B/2"',
               json.dumps(concern("B:3"))]
        path = write(os.path.join(d, "bad.jsonl"), "\n".join(bad) + "\n")
        p = self.publish("--source", "ccg", path)
        self.assertEqual(p.returncode, 1)
        out = p.stdout.decode()
        self.assertIn("rejected %s line 1: ENUM_UNKNOWN rag" % path, out)
        self.assertIn("rejected %s line 2: JSON_SYNTAX" % path, out)
        self.assertIn("rejected %s line 3: ID_FORMAT concern_ref" % path, out)
        self.assertEqual(summary(p), "ccg -> intel.raw.nhse: 3 read, 0 sent, 3 rejected, 0 undelivered"
                         .replace("intel.raw.nhse", "intel.raw.ccg"))
        mixed = [json.dumps(incident("M-1")), json.dumps(incident("M-2", harm="FATAL")),
                 json.dumps(incident("M-3")), json.dumps(incident("M-4", occurred_at=iso(now_ms() + 3600_000))),
                 json.dumps(incident("M-5"))]
        path = write(os.path.join(d, "mixed.jsonl"), "\n".join(mixed) + "\n")
        before = len(kcat_consume(self.stack.bootstrap, "intel.raw.nhse"))
        p = self.publish("--source", "nhse", path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("line 2: ENUM_UNKNOWN harm", p.stdout.decode())
        self.assertIn("line 4: TIME_RANGE occurred_at", p.stdout.decode())
        self.assertEqual(summary(p), "nhse -> intel.raw.nhse: 5 read, 3 sent, 2 rejected, 0 undelivered")
        self.assertEqual(len(kcat_consume(self.stack.bootstrap, "intel.raw.nhse")) - before, 3)

    def test_regression_event_dated_2100_rejected(self):
        """An event dated 2100 (ISO or epoch ms) would pin its subject's as_of: the
        publisher judges it against the clock exactly as the normaliser does."""
        d = self.stack.dir
        path = write(os.path.join(d, "future.jsonl"),
                     json.dumps(incident("F/1", occurred_at="2100-01-01T00:00:00Z")) + "\n" +
                     json.dumps(incident("F/2", occurred_at=4102444800000)) + "\n" +
                     json.dumps(incident("F/3")) + "\n")
        p = self.publish("--source", "nhse", "--dry-run", path)
        self.assertEqual(p.returncode, 1, p.stdout)
        out = p.stdout.decode()
        self.assertIn("line 1: TIME_RANGE occurred_at", out)
        self.assertIn("line 2: TIME_RANGE occurred_at", out)
        self.assertNotIn("line 3", out)

    def test_arrays_pretty_objects_and_stdin(self):
        d = self.stack.dir
        text = json.dumps([incident("A-1"), incident("A-2", category="SPILL")], indent=2) + "\n" + \
            json.dumps(incident("A-3"), indent=4) + "\n"
        path = write(os.path.join(d, "arr.json"), text)
        p = self.publish("--source", "nhse", "--dry-run", path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("line 1 element 1: ENUM_UNKNOWN category", p.stdout.decode())
        self.assertEqual(summary(p), "nhse (dry run): 3 read, 2 valid, 1 rejected")
        p = cstest.run("caresignal-publish", "--source", "nhse", "--dry-run", "-",
                       input=json.dumps(incident("S-1")).encode())
        self.assertEqual(p.returncode, 0)  # a dry run needs no broker
        self.assertEqual(summary(p), "nhse (dry run): 1 read, 1 valid, 0 rejected")

    def test_avro_round_trip_through_the_normaliser(self):
        d = self.stack.dir
        path = write(os.path.join(d, "avro.jsonl"),
                     json.dumps(incident("AV-1", vaccination_site_code="SITE-SYNTHETIC",
                                         description="SYNTHETIC text")) + "\n")
        p = self.publish("--source", "nhse", "--avro", path)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("(Avro)", summary(p))
        raw = [r for r in kcat_consume(self.stack.bootstrap, "intel.raw.nhse") if r.key == b"RXQ02"]
        self.assertTrue(any(r.value[:5] == b"\x00\x00\x00\x00\x02" for r in raw))  # nhse v2, wire format
        norm = self.stack.program("caresignal-normalise", config_extra={"directory.file": DIRECTORY,
                                                                        "group.id": "pub-avro"})
        wait_until(lambda: any(e["value"]["event_key"] == "NHSE:RXQ:AV-1"
                               for e in cat(self.stack, "intel.events")), 60, what="the event")
        self.assertEqual(norm.stop(), 0)
        ev = [e["value"] for e in cat(self.stack, "intel.events")
              if e["value"]["event_key"] == "NHSE:RXQ:AV-1"][0]
        self.assertEqual(ev["origin"]["schema_id"], 2)
        self.assertEqual((ev["signal"], ev["severity"], ev["region"]), ("OUTBREAK", "LOW", "South East"))
        self.assertNotIn("SYNTHETIC", json.dumps(ev))

    def test_undelivered(self):
        # a broker that is not there: every event is named as undelivered
        path = write(os.path.join(self.stack.dir, "u.jsonl"),
                     json.dumps(concern("U/1")) + "\n" + json.dumps(concern("U/2")) + "\n")
        p = cstest.run("caresignal-publish", "--source", "ccg",
                       "--set", "kafka.bootstrap.servers=127.0.0.1:%d" % cstest.free_port(),
                       "--set", "kafka.message.timeout.ms=1500", path)
        self.assertEqual(p.returncode, 1)
        out = p.stdout.decode()
        self.assertIn("undelivered %s line 1:" % path, out)
        self.assertIn("undelivered %s line 2:" % path, out)
        self.assertEqual(summary(p), "ccg -> intel.raw.ccg: 2 read, 0 sent, 0 rejected, 2 undelivered")

    def test_c_api_example(self):
        p = cstest.run("caresignal-publish-example", self.stack.bootstrap)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(b"EX/0001: delivered", p.stdout)

    def test_usage(self):
        p = cstest.run("caresignal-publish", "--dry-run")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--source", p.stderr)
        p = cstest.run("caresignal-publish", "--source", "ccg")
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"'kafka.bootstrap.servers'", p.stderr)
        p = cstest.run("caresignal-publish", "--help")
        self.assertEqual(p.returncode, 0)


if __name__ == "__main__":
    cstest.main()
