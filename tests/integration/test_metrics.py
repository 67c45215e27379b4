#!/usr/bin/env python3
"""Metrics, health and readiness with the real thing: Debian's Prometheus scrapes the three
consumers (metrics.listen) while a feed runs, and its HTTP query API must report what
was sent — raw messages consumed per topic, dead letters by reason, events and alerts
produced, alerts paged — with the lag back at zero. `promtool check metrics` passes on
every exposition; no exposition holds a location id or partner text; /readyz of the
scorer goes 503 while Redis is down and back to 200 after, and every consumer's while the
broker is down. Prometheus also loads
deploy/prometheus/caresignal.rules.yml, so the operators' rules evaluate on real data."""
import json
import os
import subprocess
import sys
import time

import cstest
from cstest import cat, wait_until

sys.path.insert(0, os.path.join(cstest.SOURCE, "deploy", "dev"))
from prom import Prometheus, http  # noqa: E402  (deploy/dev/prom.py)

DIRECTORY = os.path.join(cstest.SOURCE, "deploy/dev/data/directory.csv")
RULES = os.path.join(cstest.SOURCE, "deploy/prometheus/caresignal.rules.yml")
TOPICS = {"nhse": "intel.raw.nhse", "ccg": "intel.raw.ccg", "ofsted-send": "intel.raw.ofsted-send"}


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True)
    return p.returncode, (p.stdout + p.stderr).decode()


class Metrics(cstest.StackTest):
    def test_prometheus_scrapes_the_pipeline(self):
        s = self.stack
        feed = cstest.gen_feed(s, 0.1, 5)
        ports = {"caresignal-normalise": cstest.free_port(), "caresignal-score": cstest.free_port(),
                 "caresignal-page": cstest.free_port()}
        procs = {}
        for name, port in ports.items():
            extra = {"metrics.listen": "127.0.0.1:%d" % port}
            if name == "caresignal-normalise":
                extra["directory.file"] = DIRECTORY
            procs[name] = s.program(name, config_extra=extra)
        base = {name: "http://127.0.0.1:%d" % port for name, port in ports.items()}
        for name in ports:
            wait_until(lambda: self._status(base[name] + "/readyz") == 200, 60, interval=0.2,
                       what="%s ready" % name)
        prom = Prometheus(ports, RULES)
        self.addCleanup(prom.stop)
        wait_until(prom.targets_up, 60, interval=0.5, what="every target up in prometheus")

        # the feed: valid events through caresignal-publish, malformed ones with kcat
        published = {}
        for name, source in [("nhse", "nhse"), ("ccg", "ccg"), ("ofsted", "ofsted-send")]:
            events = cstest.feed_values(feed, name)
            path = os.path.join(s.dir, name + ".events.jsonl")
            with open(path, "w") as f:
                f.writelines(json.dumps(e) + "\n" for e in events)
            p = cstest.run("caresignal-publish", "--source", source, path, stack=s)
            self.assertEqual(p.returncode, 0, p.stdout)
            published[TOPICS[source]] = len(events)
        with open(os.path.join(feed, "malformed.jsonl")) as f:
            malformed = [json.loads(l) for l in f]
        for m in malformed:
            value = bytes.fromhex(m["value_hex"]) if "value_hex" in m else m["value_text"].encode()
            topic = TOPICS[m["topic"]]
            cstest.kcat_produce(s.bootstrap, topic, [(m.get("key") or None, value)])
            published[topic] += 1
        expected_dead = {}
        for m in malformed:
            expected_dead[m["expect"]] = expected_dead.get(m["expect"], 0) + 1

        # what the topics hold once the pipeline has caught up
        wait_until(lambda: len(cat(s, "intel.deadletter")) >= len(malformed), 90,
                   interval=0.5, what="the dead letters")
        nevents = len(cat(s, "intel.events"))

        def paged():
            return [l for l in procs["caresignal-page"].output().decode().splitlines() if l.strip()]

        def caught_up():
            return (prom.scalar('sum(caresignal_events_total{job="caresignal-score"})') == nevents
                    and prom.scalar('sum(caresignal_consumer_lag)') == 0)
        wait_until(caught_up, 120, interval=1, what="prometheus to see the scorer caught up")
        nalerts = len(cat(s, "intel.alerts"))
        self.assertGreater(nalerts, 0)
        wait_until(lambda: len(paged()) >= nalerts, 60, interval=0.5, what="the pages")
        time.sleep(3)  # three more scrapes

        # the counts Prometheus holds are what was sent
        by = prom.by
        consumed = by('sum by (topic) (caresignal_messages_consumed_total'
                      '{job="caresignal-normalise"})', "topic")
        self.assertEqual(consumed, {t: float(n) for t, n in published.items()})
        dead = by('sum by (reason) (caresignal_dead_letters_total)', "reason")
        self.assertEqual(dead, {r: float(n) for r, n in expected_dead.items()})
        self.assertEqual(prom.scalar('caresignal_messages_produced_total'
                                     '{job="caresignal-normalise",topic="intel.events"}'),
                         nevents)
        self.assertEqual(prom.scalar('caresignal_messages_consumed_total'
                                     '{job="caresignal-score"}'), nevents)
        self.assertEqual(prom.scalar('sum(caresignal_alerts_total)'), nalerts)
        self.assertEqual(prom.scalar('caresignal_messages_produced_total'
                                     '{job="caresignal-score",topic="intel.alerts"}'), nalerts)
        self.assertEqual(prom.scalar('caresignal_messages_consumed_total'
                                     '{job="caresignal-page"}'), nalerts)
        self.assertEqual(prom.scalar('sum(caresignal_page_deliveries_total'
                                     '{outcome="delivered"})'), len(paged()))
        self.assertEqual(prom.scalar('sum(caresignal_consumer_lag)'), 0)
        self.assertEqual(prom.scalar('min(caresignal_ready)'), 1)
        self.assertGreater(prom.scalar('caresignal_last_event_time_seconds'), 1.5e9)
        # the loop's last turn, worked out at each scrape: a moment ago
        self.assertLess(abs(prom.scalar('min(caresignal_last_turn_timestamp_seconds)')
                            - time.time()), 60)
        # the end-to-end age: every raw message counted once by the normaliser, and the
        # scorer's inputs carry the raw timestamp (cs.raw.timestamp) on to the pager
        self.assertEqual(prom.scalar('caresignal_end_to_end_age_seconds_count'
                                     '{job="caresignal-normalise"}'), sum(published.values()))
        self.assertEqual(prom.scalar('caresignal_end_to_end_age_seconds_count'
                                     '{job="caresignal-score"}'), nevents)
        self.assertGreater(prom.scalar('caresignal_redis_pipeline_seconds_count'), 0)
        for name, url in base.items():
            status, text, ctype = http(url + "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
            rc, out = promtool_check(text)
            self.assertEqual(rc, 0, "%s: promtool check metrics: %s" % (name, out))
            # no location id, no partner free text in any series
            self.assertNotIn("SYNTHETIC", text)
            self.assertNotRegex(text, r'"1-\d{6,}"')
            # CS_METRICS_OUT=DIR keeps each exposition (for a look, or a closing note)
            keep = os.environ.get("CS_METRICS_OUT")
            if keep:
                os.makedirs(keep, exist_ok=True)
                with open(os.path.join(keep, name + ".metrics.txt"), "w") as f:
                    f.write(text)
        # the rules load and evaluate on real data without error
        if os.path.exists(RULES):
            status, body, _ = http("http://127.0.0.1:%d/api/v1/rules" % prom.port)
            groups = json.loads(body)["data"]["groups"]
            self.assertTrue(groups)
            for g in groups:
                for r in g["rules"]:
                    self.assertEqual(r.get("health"), "ok", r)

        # probes: methods and paths
        self.assertEqual(http(base["caresignal-score"] + "/healthz")[0], 200)
        self.assertEqual(http(base["caresignal-score"] + "/nope")[0], 404)
        self.assertEqual(http(base["caresignal-score"] + "/metrics", method="POST")[0], 405)

        # Redis down: the scorer cannot apply, pauses, and is not ready; back after
        score_url = base["caresignal-score"]
        s.kill_redis()
        extra = os.path.join(s.dir, "late.jsonl")
        ev = cstest.feed_values(feed, "nhse")[0]
        ev["incident_id"] = "LATE-1"
        with open(extra, "w") as f:
            f.write(json.dumps(ev) + "\n")
        self.assertEqual(cstest.run("caresignal-publish", "--source", "nhse", extra,
                                    stack=s).returncode, 0)
        wait_until(lambda: self._status(score_url + "/readyz") == 503, 60, interval=0.2,
                   what="the scorer not ready while Redis is down")
        self.assertEqual(http(score_url + "/healthz")[0], 200)  # still turning: live
        wait_until(lambda: prom.scalar('caresignal_redis_up{job="caresignal-score"}') == 0,
                   30, interval=0.5, what="prometheus to see Redis down")
        s.start_redis()
        wait_until(lambda: self._status(score_url + "/readyz") == 200, 90, interval=0.2,
                   what="the scorer ready again")
        wait_until(lambda: prom.scalar('caresignal_events_total{job="caresignal-score",'
                                       'outcome="applied"}') is not None and
                   prom.scalar('sum(caresignal_events_total{job="caresignal-score"})') == nevents + 1,
                   60, interval=0.5, what="the late event applied")
        self.assertGreater(prom.scalar('caresignal_retries_total{what="redis"}'), 0)

        # the broker down: every consumer not ready (still live), and ready again after
        s.fault("down", 1)
        for name, url in base.items():
            wait_until(lambda: self._status(url + "/readyz") == 503, 90, interval=0.5,
                       what="%s not ready while the broker is down" % name)
            self.assertEqual(http(url + "/healthz")[0], 200)
        wait_until(lambda: prom.scalar('max(caresignal_kafka_up)') == 0, 30, interval=0.5,
                   what="prometheus to see the broker down")
        s.fault("up", 1)
        for name, url in base.items():
            wait_until(lambda: self._status(url + "/readyz") == 200, 90, interval=0.5,
                       what="%s ready again once the broker is back" % name)
        for p in procs.values():
            self.assertEqual(p.stop(), 0)
        print("prometheus saw %d raw messages, %d dead letters, %d events, %d alerts paged"
              % (sum(published.values()), len(malformed), nevents, nalerts))
        print("asserted: consumed by topic %s; dead letters by reason %s"
              % (json.dumps(consumed, sort_keys=True), json.dumps(dead, sort_keys=True)))

    @staticmethod
    def _status(url):
        try:
            return http(url)[0]
        except OSError:
            return None


if __name__ == "__main__":
    cstest.main()
