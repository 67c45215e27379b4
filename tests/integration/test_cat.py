#!/usr/bin/env python3
"""caresignal-cat, named after what broke: it printed raw-topic values (narratives,
whistleblower names) by default. Only caresignal's own records (IntelEvent, RiskAlert)
are printed unless --show-values is given."""
import json

import cstest
from cstest import json2avro, kcat_produce

CANARY = "CANARY-WHISTLEBLOWER-Ada-Lovelock"


class Cat(cstest.StackTest):
    def test_regression_raw_values_hidden_by_default(self):
        s = self.stack
        concern = {"concern_ref": "CAT-1", "ccg_ods": "15E", "location_id": "1-101669119",
                   "concern_type": "WHISTLEBLOWING", "rag": "RED", "received_on": "2026-11-20",
                   "whistleblower_name": CANARY, "narrative": CANARY}
        kcat_produce(s.bootstrap, "intel.raw.ccg",
                     [(b"k1", json.dumps(concern).encode())] +
                     [(b"k2", v) for v in json2avro(3, [concern])])
        event = {"event_key": "CCG:15E:CAT-1", "source": "CCG", "source_org": "15E",
                 "subject_kind": "LOCATION", "subject_id": "1-101669119",
                 "signal": "WHISTLEBLOWING", "area": "PROTECTION_FROM_ABUSE", "severity": "HIGH",
                 "occurred_at": 1795000000000, "received_at": 1795000000000,
                 "origin": {"topic": "intel.raw.ccg", "partition": 0, "offset": 0, "schema_id": -1},
                 "region": "London", "local_authority_code": "E09000001"}
        kcat_produce(s.bootstrap, "intel.events", [(b"LOCATION:1-101669119", v)
                                                   for v in json2avro(5, [event])])
        p = cstest.run("caresignal-cat", "--topic", "intel.raw.ccg", stack=s)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(len(lines), 2)
        self.assertNotIn(CANARY.encode(), p.stdout + p.stderr)
        self.assertTrue(all("value" not in l and l["value_bytes"] > 0 for l in lines))
        p = cstest.run("caresignal-cat", "--topic", "intel.raw.ccg", "--show-values", stack=s)
        self.assertEqual(p.stdout.count(CANARY.encode()), 4)  # asked for: JSON and Avro
        p = cstest.run("caresignal-cat", "--topic", "intel.events", stack=s)
        got = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(got[0]["value"]["event_key"], "CCG:15E:CAT-1")


if __name__ == "__main__":
    cstest.main()
