#!/usr/bin/env python3
"""Poison size, named after what broke: a raw value of ~1 MB is legal for Kafka and
rightly TOO_LARGE, but its dead letter (value + headers) was larger than the producer's
message.max.bytes: the produce failed, the normaliser stopped without storing, restarted
on the same message, and that partition never moved again. A dead letter is always
producible: the producer is sized for the raw topics' limit plus headers, and when the
broker (or the producer's own limit) still refuses it, it goes without its value, with
cs.value.omitted (the length) and cs.value.sha256."""
import hashlib
import json
import os

import cstest
from cstest import cat, kcat_consume, now_ms, iso, wait_until

DIRECTORY = os.path.join(cstest.SOURCE, "tests/data/integration/directory.csv")
BIG = 1000209  # as reproduced: a value Kafka accepts, TOO_LARGE for caresignal


def incident(ref):
    at = now_ms() - 3600_000
    return {"incident_id": ref, "reporting_org_ods": "RXQ", "location_id": "RXQ02",
            "category": "OUTBREAK", "harm": "LOW", "occurred_at": iso(at), "reported_at": at}


def big_value(n, ref):
    head = json.dumps(incident(ref))[:-1] + ', "description": "'
    return (head + "x" * (n - len(head) - 2) + '"}').encode()


class PoisonSize(cstest.StackTest):
    partitions = {"intel.raw.nhse": 1}

    def normaliser(self, **extra):
        cfg = {"directory.file": DIRECTORY}
        cfg.update(extra)
        return self.stack.program("caresignal-normalise", config_extra=cfg)

    def dead(self, topic):
        return [d for d in cat(self.stack, "intel.deadletter", "--show-values")
                if d["headers"].get("cs.origin.topic") == topic]

    def events_for(self, refs):
        return [e for e in cat(self.stack, "intel.events")
                if e["value"]["event_key"].split(":")[-1] in refs]

    def produce_big_then_small(self, topic, size, refs):
        # kcat's own producer stops at 1,000,000 bytes: allow what Kafka allows
        value = big_value(size, refs[0])
        cstest.kcat_produce(self.stack.bootstrap, topic, [(b"big", value)], partition=0,
                            extra=["-X", "message.max.bytes=2000000"])
        cstest.kcat_produce(self.stack.bootstrap, topic,
                            [(b"small", json.dumps(incident(refs[1])).encode())], partition=0)
        return value

    def test_regression_one_megabyte_value_does_not_stop_the_partition(self):
        value = self.produce_big_then_small("intel.raw.nhse", BIG, ["BIG-1", "SMALL-1"])
        n = self.normaliser()
        wait_until(lambda: self.events_for({"SMALL-1"}), 60, what="the next message normalised")
        self.assertEqual(n.stop(), 0)
        dead = self.dead("intel.raw.nhse")
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0]["headers"]["cs.error"], "TOO_LARGE")
        raw = kcat_consume(self.stack.bootstrap, "intel.deadletter", extra=["-X", "fetch.message.max.bytes=2000000"])
        self.assertEqual([r.value for r in raw if r.headers.get("cs.origin.topic") == "intel.raw.nhse"],
                         [value])

    def test_regression_broker_refuses_the_dead_letter_sent_without_value(self):
        s = self.stack
        topic = "it.poison.broker"
        value = self.produce_big_then_small(topic, 200000, ["BIG-2", "SMALL-2"])
        # the next Produce request (the normaliser's dead letter) is refused for its size
        s.fault("errors", "Produce", "1", "MSG_SIZE_TOO_LARGE")
        n = self.normaliser(**{"topic.raw.nhse": topic, "group.id": "poison-broker"})
        wait_until(lambda: self.events_for({"SMALL-2"}), 60, what="the next message normalised")
        self.assertEqual(n.stop(), 0)
        self.assert_value_omitted(self.dead(topic), value)
        self.assertTrue(any("sent without its value" in l.get("msg", "") for l in n.logs()))

    def test_regression_larger_than_the_producer_sent_without_value(self):
        topic = "it.poison.local"
        value = self.produce_big_then_small(topic, 300000, ["BIG-3", "SMALL-3"])
        n = self.normaliser(**{"topic.raw.nhse": topic, "group.id": "poison-local",
                               "kafka.message.max.bytes": "200000"})
        wait_until(lambda: self.events_for({"SMALL-3"}), 60, what="the next message normalised")
        self.assertEqual(n.stop(), 0)
        self.assert_value_omitted(self.dead(topic), value)

    def assert_value_omitted(self, dead, value):
        self.assertEqual(len(dead), 1, dead)
        h = dead[0]["headers"]
        self.assertEqual(h["cs.error"], "TOO_LARGE")
        self.assertEqual(h["cs.value.omitted"], str(len(value)))
        self.assertEqual(h["cs.value.sha256"], hashlib.sha256(value).hexdigest())
        self.assertIsNone(dead[0]["value"])
        self.assertEqual(dead[0]["key"], "big")


if __name__ == "__main__":
    cstest.main()
