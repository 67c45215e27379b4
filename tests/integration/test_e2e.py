#!/usr/bin/env python3
"""End to end, as the demo runs it but on a smaller feed: partner events published with
caresignal-publish (JSON and Avro) and malformed messages with kcat, through
caresignal-normalise, caresignal-score and caresignal-page. The alerts paged must be
exactly those an independent calculation in this test predicts: the docs/contract/canonical-event.md mapping
written here from the design, then the risk model of riskmodel.py."""
import datetime
import json
import os
import subprocess
import sys
import time

import cstest
import riskmodel
from cstest import cat, wait_until

RULES = os.path.join(cstest.SOURCE, "deploy/config/rules.json")
DIRECTORY = os.path.join(cstest.SOURCE, "deploy/dev/data/directory.csv")

# docs/contract/canonical-event.md, as a partner-facing table (independent of the rules file's layout)
HARM = {"NO_HARM": "INFO", "LOW": "LOW", "MODERATE": "MEDIUM", "SEVERE": "HIGH", "DEATH": "CRITICAL"}
RAG = {"GREEN": "LOW", "AMBER": "MEDIUM", "RED": "HIGH"}
CONCERN = {"SAFEGUARDING_REFERRAL": "SAFEGUARDING"}
OUTCOME = {"POSITIVE": "INFO", "INCONSISTENT": "MEDIUM", "SYSTEMIC_FAILINGS": "HIGH",
           "WRITTEN_STATEMENT_OF_ACTION": "HIGH"}


def ms(ts):
    if isinstance(ts, int):
        return ts
    d = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return int(d.timestamp()) * 1000 + d.microsecond // 1000


def day_ms(date):
    return int(datetime.datetime.strptime(date, "%Y-%m-%d")
               .replace(tzinfo=datetime.timezone.utc).timestamp()) * 1000


def canonical(source, e):
    """The canonical events of one valid partner event (docs/contract/canonical-event.md)."""
    if source == "nhse":
        return [{"event_key": "NHSE:%s:%s" % (e["reporting_org_ods"], e["incident_id"]),
                 "subject_kind": "LOCATION", "subject_id": e["location_id"],
                 "signal": e["category"], "severity": HARM[e["harm"]],
                 "occurred_at": ms(e["occurred_at"])}]
    if source == "ccg":
        return [{"event_key": "CCG:%s:%s" % (e["ccg_ods"], e["concern_ref"]),
                 "subject_kind": "LOCATION", "subject_id": e["location_id"],
                 "signal": CONCERN.get(e["concern_type"], e["concern_type"]),
                 "severity": RAG[e["rag"]], "occurred_at": day_ms(e["received_on"])}]
    key = "OFSTED_SEND:%s:%s" % (e["local_authority_code"], e["inspection_ref"])
    base = {"signal": "SEND_OUTCOME", "severity": OUTCOME[e["outcome"]],
            "occurred_at": ms(e["published_at"])}
    out = [dict(base, event_key=key, subject_kind="LOCAL_AREA",
                subject_id=e["local_authority_code"])]
    seen = set()
    for loc in e.get("named_location_ids", []):
        if loc not in seen:
            seen.add(loc)
            out.append(dict(base, event_key=key + "#" + loc, subject_kind="LOCATION",
                            subject_id=loc))
    return out


class EndToEnd(cstest.StackTest):
    def test_feed_to_pager(self):
        s = self.stack
        feed = cstest.gen_feed(s, 0.25, 3)
        extra = {"directory.file": DIRECTORY}
        norm = s.program("caresignal-normalise", config_extra=extra)
        score = s.program("caresignal-score")
        page = s.program("caresignal-page")
        model = riskmodel.Model(riskmodel.Rules(RULES))
        topics = {"nhse": "intel.raw.nhse", "ccg": "intel.raw.ccg",
                  "ofsted": "intel.raw.ofsted-send"}
        for name, source, avro in [("nhse", "nhse", False), ("ccg", "ccg", True),
                                   ("ofsted", "ofsted-send", True)]:
            events = cstest.feed_values(feed, name)
            path = os.path.join(s.dir, name + ".events.jsonl")
            with open(path, "w") as f:
                f.writelines(json.dumps(e) + "\n" for e in events)
            p = cstest.run("caresignal-publish", "--source", source, path,
                           *(["--avro"] if avro else []), stack=s)
            self.assertEqual(p.returncode, 0, p.stdout)
            for e in events:
                for c in canonical(name, e):
                    model.apply(c)
            # one source at a time, so each subject's events reach the scorer in the
            # order the model applies them
            wait_until(lambda: all(v == d for v, d in [
                (c, h) for c, h in self._committed_vs_high(topics[name])]), 90, interval=0.5,
                what="the normaliser to finish %s" % name)
        malformed = [json.loads(l) for l in open(os.path.join(feed, "malformed.jsonl"))]
        for m in malformed:
            value = bytes.fromhex(m["value_hex"]) if "value_hex" in m else m["value_text"].encode()
            cstest.kcat_produce(s.bootstrap, topics["ofsted" if m["topic"] == "ofsted-send" else m["topic"]],
                                [(m.get("key") or None, value)])
        wait_until(lambda: len(cat(s, "intel.deadletter")) >= len(malformed), 60,
                   what="the dead letters")
        expected = {a["alert_id"]: a for a in model.alerts}
        self.assertGreater(len(expected), 20)

        def paged():
            return [json.loads(l) for l in page.output().decode().splitlines() if l.strip()]
        wait_until(lambda: len(paged()) >= len(expected), 120, interval=1, what="the pages")
        time.sleep(2)  # anything unexpected would arrive now
        got = paged()
        self.assertEqual(sorted(a["alert_id"] for a in got), sorted(expected))  # each once
        for a in got:
            e = expected[a["alert_id"]]
            self.assertEqual((a["kind"], a["level"], a["previous_level"], a["reason"],
                              a["triggered_by"]),
                             (e["kind"], e["level"], e["previous_level"], e["reason"],
                              e["triggered_by"]))
            self.assertAlmostEqual(a["score"], e["score"], delta=1e-9 * max(1, e["score"]))
        dead = cat(s, "intel.deadletter")
        self.assertEqual(sorted(d["headers"]["cs.error"] for d in dead),
                         sorted(m["expect"] for m in malformed))
        # free text and names never reach an output topic or a log
        for topic in ("intel.events", "intel.alerts"):
            for r in cstest.kcat_consume(s.bootstrap, topic):
                self.assertNotIn(b"SYNTHETIC", r.value)
        for p in (norm, score, page):
            self.assertEqual(p.stop(), 0)
            self.assertNotIn("SYNTHETIC", p.log_text())
        self.assertNotIn(b"SYNTHETIC", page.output())
        print("%d alerts paged, as predicted; %d malformed messages dead-lettered"
              % (len(got), len(dead)))

    def _committed_vs_high(self, topic):
        p = cstest.run("caresignal-cat", "--topic", topic, "--committed",
                       "caresignal-normalise", stack=self.stack)
        return [(max(d["committed"], 0), d["high"]) for d in map(json.loads, p.stdout.splitlines())]


if __name__ == "__main__":
    cstest.main()
