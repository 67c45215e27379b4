#!/usr/bin/env python3
"""caresignal-normalise against the devbroker, as a real process, fed by kcat:
every raw message ends as >= 1 canonical event or exactly one dead letter (bytes
intact, reason in headers); free text and personal data never reach an output topic,
a header or a log line; kill -9 and restart loses nothing; a broker that no longer has
the data is reported loudly; the directory reloads on SIGHUP; bad configuration stops
the program with exit 2."""
import json
import os
import shutil
import signal
import time

import cstest
from cstest import cat, iso, json2avro, kcat_consume, kcat_produce, now_ms, wait_until

DIRECTORY = os.path.join(cstest.SOURCE, "tests/data/integration/directory.csv")
CANARIES = ["CANARY-DESC-51c0", "CANARY-NARR-9e2d", "CANARY-NAME-Agatha-Q-Whistle",
            "CANARY-VAX-77aa"]

NHSE_CATEGORIES = ["SERIOUS_INCIDENT", "NEVER_EVENT", "OUTBREAK", "VACCINATION_INCIDENT",
                   "WORKFORCE_SHORTFALL", "DNACPR_CONCERN", "IPC_CONCERN"]
HARMS = ["NO_HARM", "LOW", "MODERATE", "SEVERE", "DEATH"]
CONCERNS = ["COMPLAINT", "SAFEGUARDING_REFERRAL", "WHISTLEBLOWING", "QUALITY_CONCERN",
            "CONTRACT_BREACH", "POSITIVE_FEEDBACK"]


def nhse(ref, loc="RXQ02", category="SERIOUS_INCIDENT", harm="MODERATE", at=None, **extra):
    at = at if at is not None else now_ms() - 3600_000
    e = {"incident_id": ref, "reporting_org_ods": "RXQ", "location_id": loc,
         "category": category, "harm": harm, "occurred_at": iso(at), "reported_at": at,
         "description": CANARIES[0]}
    e.update(extra)
    return e


def ccg(ref, loc="1-101669119", concern="COMPLAINT", rag="AMBER", day=None):
    day = day or time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    return {"concern_ref": ref, "ccg_ods": "15E", "location_id": loc, "concern_type": concern,
            "rag": rag, "received_on": day, "whistleblower_name": CANARIES[2],
            "narrative": CANARIES[1]}


def ofsted(ref, la="E06000060", names=("RXQ02", "1-10000792582", "RXQ02"), outcome="SYSTEMIC_FAILINGS"):
    return {"inspection_ref": ref, "local_authority_code": la, "outcome": outcome,
            "published_at": now_ms() - 7200_000, "named_location_ids": list(names)}


def j(e):
    return json.dumps(e).encode()


def raw_index(stack, topics):
    """{(topic, partition, offset): Record} of everything on the raw topics."""
    out = {}
    for t in topics:
        for r in kcat_consume(stack.bootstrap, t):
            out[(t, r.partition, r.offset)] = r
    return out


def origin_of_event(e):
    o = e["value"]["origin"]
    return (o["topic"], o["partition"], o["offset"])


def origin_of_deadletter(d):
    h = d["headers"]
    return (h["cs.origin.topic"], int(h["cs.origin.partition"]), int(h["cs.origin.offset"]))


class MixedBatch(cstest.StackTest):
    """One batch of every kind of input, good and bad, JSON and Avro."""

    def test_every_raw_message_accounted_for(self):
        s = self.stack
        cases = {}  # key -> (topic, value bytes, expected reason or number of events)
        for i, c in enumerate(NHSE_CATEGORIES):
            cases["nhse-%d" % i] = ("intel.raw.nhse", j(nhse("INC-%d" % i, category=c,
                                                            harm=HARMS[i % 5])), 1)
        for i, c in enumerate(CONCERNS):
            cases["ccg-%d" % i] = ("intel.raw.ccg", j(ccg("C/%d" % i, concern=c,
                                                         rag=["GREEN", "AMBER", "RED"][i % 3])), 1)
        cases["ofsted-named"] = ("intel.raw.ofsted-send", j(ofsted("SEND.1")), 3)
        cases["ofsted-empty-area"] = ("intel.raw.ofsted-send",
                                      j(ofsted("SEND.2", la="E08000001", names=())), 1)
        v1, = json2avro(1, [nhse("AV-1", harm="SEVERE")])
        v2, = json2avro(2, [nhse("AV-2", vaccination_site_code=CANARIES[3])])
        cc, = json2avro(3, [ccg("AV/3", concern="WHISTLEBLOWING", rag="RED")])
        of, = json2avro(4, [ofsted("AV.4", names=["RAJ01"])])
        cases["avro-nhse-v1"] = ("intel.raw.nhse", v1, 1)
        cases["avro-nhse-v2"] = ("intel.raw.nhse", v2, 1)
        cases["avro-ccg"] = ("intel.raw.ccg", cc, 1)
        cases["avro-ofsted"] = ("intel.raw.ofsted-send", of, 2)
        # one or more bad inputs per reason code
        missing = nhse("BAD-1")
        del missing["harm"]
        cases["bad-syntax"] = ("intel.raw.nhse", b'{"incident_id": "x", ' + CANARIES[0].encode(), "JSON_SYNTAX")
        cases["bad-not-object"] = ("intel.raw.ccg", b'["' + CANARIES[2].encode() + b'"]', "NOT_OBJECT")
        cases["bad-schema-id"] = ("intel.raw.nhse", b"\x00\x00\x00\x00\x63" + b"\x02", "SCHEMA_UNKNOWN")
        cases["bad-other-partners-schema"] = ("intel.raw.nhse", cc, "SCHEMA_UNKNOWN")
        cases["bad-avro"] = ("intel.raw.nhse", v1[:5] + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "AVRO_DECODE")
        cases["bad-missing"] = ("intel.raw.nhse", j(missing), "FIELD_MISSING")
        cases["bad-type"] = ("intel.raw.nhse", j(nhse("BAD-2", harm=None)), "FIELD_TYPE")
        cases["bad-enum"] = ("intel.raw.ccg", j(ccg("BAD/3", concern="Whistleblowing")), "ENUM_UNKNOWN")
        cases["bad-id"] = ("intel.raw.nhse", j(nhse("BAD:4")), "ID_FORMAT")
        cases["bad-time"] = ("intel.raw.nhse", j(nhse("BAD-5", at=now_ms() + 86400_000)), "TIME_RANGE")
        cases["bad-large"] = ("intel.raw.nhse", j(nhse("BAD-6", description="x" * 70000)), "TOO_LARGE")
        cases["bad-location"] = ("intel.raw.nhse", j(nhse("BAD-7", loc="1-999999999")), "UNKNOWN_LOCATION")
        cases["bad-named-location"] = ("intel.raw.ofsted-send",
                                       j(ofsted("BAD.8", names=["RXQ02", "1-999999999"])),
                                       "UNKNOWN_LOCATION")
        for key, (topic, value, _) in cases.items():
            kcat_produce(s.bootstrap, topic, [(key, value)])

        norm = s.program("caresignal-normalise", config_extra={"directory.file": DIRECTORY,
                                                                "log.level": "debug"})
        expected_events = sum(x for _, _, x in cases.values() if isinstance(x, int))
        expected_dead = sum(1 for _, _, x in cases.values() if isinstance(x, str))
        wait_until(lambda: len(cat(s, "intel.events")) >= expected_events and
                   len(cat(s, "intel.deadletter")) >= expected_dead, 90,
                   what="all outputs")
        time.sleep(1)  # anything extra would show up now
        events = cat(s, "intel.events")
        dead = cat(s, "intel.deadletter")
        self.assertEqual(len(events), expected_events)
        self.assertEqual(len(dead), expected_dead)

        raws = raw_index(s, ["intel.raw.nhse", "intel.raw.ccg", "intel.raw.ofsted-send"])
        self.assertEqual(len(raws), len(cases))
        by_origin = {}
        for e in events:
            by_origin.setdefault(origin_of_event(e), []).append(e)
        dead_by_origin = {}
        for d in dead:
            dead_by_origin.setdefault(origin_of_deadletter(d), []).append(d)
        for origin, r in raws.items():
            key = r.key.decode()
            expect = cases[key][2]
            if isinstance(expect, int):
                self.assertEqual(len(by_origin.get(origin, [])), expect, key)
                self.assertNotIn(origin, dead_by_origin, key)
            else:
                self.assertNotIn(origin, by_origin, key)
                self.assertEqual(len(dead_by_origin.get(origin, [])), 1, key)
                h = dead_by_origin[origin][0]["headers"]
                self.assertEqual(h["cs.error"], expect, key)
                self.assertEqual(int(h["cs.origin.timestamp"]), r.timestamp)

        # dead letters keep the original key and value byte for byte
        raw_dead = kcat_consume(s.bootstrap, "intel.deadletter")
        for d in raw_dead:
            origin = (d.headers["cs.origin.topic"], int(d.headers["cs.origin.partition"]),
                      int(d.headers["cs.origin.offset"]))
            self.assertEqual(d.value, raws[origin].value)
            self.assertEqual(d.key, raws[origin].key)
        fields = {dd["key"]: dd["headers"]["cs.error.field"] for dd in dead}
        self.assertEqual(fields["bad-missing"], "harm")
        self.assertEqual(fields["bad-named-location"], "named_location_ids[1]")
        self.assertEqual(fields["bad-id"], "incident_id")

        # the mapping, spot-checked end to end
        byk = {e["value"]["event_key"]: e for e in events}
        area = byk["OFSTED_SEND:E08000001:SEND.2"]["value"]
        self.assertEqual((area["subject_kind"], area["region"]), ("LOCAL_AREA", "UNKNOWN"))
        self.assertIn("OFSTED_SEND:E06000060:SEND.1#RXQ02", byk)
        self.assertIn("OFSTED_SEND:E06000060:SEND.1#1-10000792582", byk)
        self.assertEqual(byk["OFSTED_SEND:E06000060:SEND.1#RXQ02"]["key"], "LOCATION:RXQ02")
        wb = byk["CCG:15E:AV/3"]["value"]
        self.assertEqual((wb["signal"], wb["area"], wb["severity"]),
                         ("WHISTLEBLOWING", "PROTECTION_FROM_ABUSE", "HIGH"))
        self.assertEqual(wb["origin"]["schema_id"], 3)
        self.assertEqual(wb["occurred_at"] % 86400000, 0)
        self.assertEqual(byk["NHSE:RXQ:AV-2"]["value"]["origin"]["schema_id"], 2)
        self.assertEqual(byk["NHSE:RXQ:INC-0"]["value"]["origin"]["schema_id"], -1)

        # canaries: nowhere in intel.events (bytes), dead-letter headers, or logs
        for r in kcat_consume(s.bootstrap, "intel.events"):
            for c in CANARIES:
                self.assertNotIn(c.encode(), r.value)
                self.assertNotIn(c.encode(), r.key)
        for d in raw_dead:
            for c in CANARIES:
                self.assertNotIn(c, json.dumps(d.headers))
        self.assertEqual(norm.stop(), 0)
        log = norm.log_text()
        self.assertIn('"dead letter"', log)  # debug lines were written...
        for c in CANARIES:
            self.assertNotIn(c, log)  # ...without partner text
        # the dead-letter topic's values stay hidden unless asked for
        self.assertFalse(any("value" in d for d in dead))


class CrashRestart(cstest.StackTest):
    """kill -9 in the middle of a large batch, restart: every raw message is accounted
    for. At-least-once (docs/contract/guarantees.md): outputs of messages after the last committed offset
    may appear twice, identical; nothing else may."""
    partitions = {"intel.raw.nhse": 8, "intel.events": 8}

    def test_kill_9_and_restart(self):
        s = self.stack
        locs = ["RXQ02", "RXQ50", "RAJ01", "1-101669119", "1-10000792582", "1-200000001"]
        n = 60000
        base = now_ms() - 86400_000
        records = [("k%d" % i, j(nhse("BULK-%06d" % i, loc=locs[i % len(locs)],
                                      category=NHSE_CATEGORIES[i % 7], harm=HARMS[i % 5],
                                      at=base + i)))
                   for i in range(n)]
        kcat_produce(s.bootstrap, "intel.raw.nhse", records)
        # the normaliser no longer waits for each batch's deliveries: small batches, a
        # small in-flight bound and frequent commits keep the kill below mid-stream on a
        # fast machine too (the assertions below judge only what was committed)
        extra = {"directory.file": DIRECTORY, "normalise.batch.max": "200",
                 "inflight.max.messages": "200", "kafka.auto.commit.interval.ms": "50"}
        norm = s.program("caresignal-normalise", config_extra=extra)
        # kill once the group has committed something, so the restart resumes mid-way
        wait_until(lambda: sum(max(o, 0) for o in cstest.committed(
            s, "intel.raw.nhse", "caresignal-normalise").values()) > 0, 120, interval=0.02,
            what="a first commit")
        norm.proc.send_signal(signal.SIGKILL)
        norm.proc.wait()
        at_kill = cstest.committed(s, "intel.raw.nhse", "caresignal-normalise")
        done_at_kill = len(kcat_consume(s.bootstrap, "intel.events"))
        self.assertLess(done_at_kill, n, "the kill came too late to test anything")
        self.assertGreater(sum(max(o, 0) for o in at_kill.values()), 0)

        norm2 = s.program("caresignal-normalise", config_extra=extra)
        wait_until(lambda: len({origin_of_event(e) for e in cat(s, "intel.events")}) >= n, 240,
                   interval=1, what="every raw message normalised")
        self.assertEqual(norm2.stop(), 0)
        events = cat(s, "intel.events")
        by_origin = {}
        for e in events:
            by_origin.setdefault(origin_of_event(e), []).append(e["value"])
        raws = raw_index(s, ["intel.raw.nhse"])
        self.assertEqual(set(by_origin), set(raws), "every raw message, no stray outputs")
        dups = 0
        for (topic, p, off), outs in by_origin.items():
            if len(outs) > 1:
                dups += 1
                # only beyond what the group had committed when it was killed
                self.assertGreaterEqual(off, max(at_kill.get(p, 0), 0), (p, off))
                self.assertTrue(all(o == outs[0] for o in outs))
        self.assertEqual(cat(s, "intel.deadletter"), [])
        print("normalised %d raw messages; %d were redelivered after kill -9 (allowed: after "
              "the committed offsets %s)" % (n, dups, at_kill))


class OffsetResetIsLoud(cstest.StackTest):
    """A committed offset the broker no longer has (the mock keeps 5 MiB a partition):
    the normaliser logs an error naming the partition and the skipped range, and goes on
    from the oldest message still there."""
    partitions = {"intel.raw.ccg": 1, "intel.deadletter": 4}

    def test_retention_skip_is_logged(self):
        s = self.stack
        extra = {"directory.file": DIRECTORY}
        kcat_produce(s.bootstrap, "intel.raw.ccg", [("first", j(ccg("FIRST/1")))])
        norm = s.program("caresignal-normalise", config_extra=extra)
        wait_until(lambda: cstest.committed(s, "intel.raw.ccg", "caresignal-normalise").get(0) == 1,
                   60, what="offset 1 committed")
        self.assertEqual(norm.stop(), 0)
        # 7 MiB more: the oldest messages fall out of the mock's 5 MiB
        blob = b"{" + b"x" * 1000
        for chunk in range(7):
            kcat_produce(s.bootstrap, "intel.raw.ccg", [("filler", blob)] * 1024, partition=0)
        lo = int(cstest.run("caresignal-cat", "--topic", "intel.raw.ccg", "--committed",
                            "caresignal-normalise", stack=s).stdout.decode().split('"low":')[1].split(",")[0])
        self.assertGreater(lo, 1, "retention did not drop anything")
        norm2 = s.program("caresignal-normalise", config_extra=extra)
        wait_until(lambda: any(l.get("msg", "").startswith("OFFSET RESET") for l in norm2.logs()),
                   60, what="the offset reset error")
        reset = [l for l in norm2.logs() if l.get("msg", "").startswith("OFFSET RESET")][0]
        self.assertEqual(reset["level"], "error")
        self.assertEqual((reset["topic"], reset["partition"], reset["requested_offset"]),
                         ("intel.raw.ccg", 0, 1))
        self.assertEqual(reset["resume_offset"], lo)
        self.assertEqual(reset["skipped"], lo - 1)
        # and it carries on from there to the end of the partition
        high = 1 + 7 * 1024
        wait_until(lambda: cstest.committed(s, "intel.raw.ccg", "caresignal-normalise").get(0) == high,
                   120, interval=1, what="the rest of the partition")
        self.assertEqual(norm2.stop(), 0)
        totals = [l for l in norm2.logs() if l.get("msg") == "normalise totals"][-1]
        self.assertEqual(totals["offset_resets"], 1)
        self.assertEqual(totals["raw"], high - lo)
        self.assertEqual(totals["dead_letters"], high - lo)


class ReloadDirectory(cstest.StackTest):
    def test_sighup_reloads_directory(self):
        s = self.stack
        path = os.path.join(s.dir, "directory.csv")
        shutil.copy(DIRECTORY, path)
        norm = s.program("caresignal-normalise", config_extra={"directory.file": path})
        kcat_produce(s.bootstrap, "intel.raw.nhse", [("new", j(nhse("NEW-1", loc="1-300000001")))])
        wait_until(lambda: len(cat(s, "intel.deadletter")) == 1, 60, what="the dead letter")
        self.assertEqual(cat(s, "intel.deadletter")[0]["headers"]["cs.error"], "UNKNOWN_LOCATION")
        with open(path, "a") as f:
            f.write("1-300000001,1-100000009,New Place,E06000060,South East,Care home\n")
        norm.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(l.get("msg") == "directory reloaded" for l in norm.logs()), 30,
                   what="the reload")
        kcat_produce(s.bootstrap, "intel.raw.nhse", [("new", j(nhse("NEW-1", loc="1-300000001")))])
        wait_until(lambda: len(cat(s, "intel.events")) == 1, 60, what="the event")
        self.assertEqual(cat(s, "intel.events")[0]["value"]["region"], "South East")
        # a broken file is refused and the last good directory stays
        with open(path, "a") as f:
            f.write("not,a,valid,row\n")
        norm.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(l.get("msg", "").startswith("directory reload failed")
                               for l in norm.logs()), 30, what="the refusal")
        self.assertTrue(norm.alive())
        self.assertEqual(norm.stop(), 0)


class BadConfiguration(cstest.unittest.TestCase):
    def one_line_exit_2(self, needle, *sets):
        args = ["--set", "kafka.bootstrap.servers=127.0.0.1:1"]
        for kv in sets:
            args += ["--set", kv]
        p = cstest.run("caresignal-normalise", *args)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.decode().strip().split("\n")
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn(needle, lines[0])

    def test_exit_2(self):
        self.one_line_exit_2("'directory.file': required")
        self.one_line_exit_2("directory file '/nonexistent.csv'", "directory.file=/nonexistent.csv")
        d = cstest.tempfile.mkdtemp()
        rules = json.load(open(os.path.join(cstest.SOURCE, "deploy/config/rules.json")))
        rules["risk"]["half_life_days"] = -1
        path = os.path.join(d, "rules.json")
        json.dump(rules, open(path, "w"))
        self.one_line_exit_2("$.risk.half_life_days", "directory.file=" + DIRECTORY,
                             "rules.file=" + path)
        shutil.copytree(os.path.join(cstest.SOURCE, "schemas"), os.path.join(d, "schemas"))
        with open(os.path.join(d, "schemas", "ccg.Concern.v1.avsc"), "w") as f:
            f.write('{"type": "record", "name": "Concern", "namespace": "ccg", "fields": [')
        self.one_line_exit_2("ccg.Concern.v1.avsc", "directory.file=" + DIRECTORY,
                             "schema.registry=" + os.path.join(d, "schemas", "registry.json"))
        p = cstest.run("caresignal-normalise", "--help")
        self.assertEqual(p.returncode, 0)
        for key in [b"directory.file", b"normalise.max.bytes", b"topic.deadletter", b"SIGHUP"]:
            self.assertIn(key, p.stdout)
        shutil.rmtree(d)


if __name__ == "__main__":
    cstest.main()
