#!/usr/bin/env python3
"""caresignal on a real Redis Cluster under faults (3 masters + 3 replicas, deploy/dev/stack.sh
--redis-cluster): a master kill -9ed mid-stream and its replica promoted (nothing lost,
nothing counted twice, every alert paged); slots resharded while scoring (exact); the
cluster down for 20 s (paused, resumed, exact); the positions rule across masters
(docs/contract/redis-layout.md, "Positions on a cluster"); the library loaded again on a
master that lost it; state.engine=scorer on a cluster; bad seed lists refused."""
import json
import re
import time
import urllib.request

import cstest
from cstest import wait_until
from test_score import Checks, alerts_on, make_feed, model_of, produce

# ----------------------------------------------------------------------------- faults


def applied(stack, model):
    """Events applied over the model's subjects, or -1 while --show cannot answer (the
    cluster in a fail-over)."""
    try:
        return cstest.events_applied(stack, model.subjects)
    except AssertionError:
        return -1


def paged_ids(pager):
    return [json.loads(l)["alert_id"] for l in pager.output().splitlines() if l.strip()]


class FaultsMixin:
    def run_feed(self, events, chunk, during, scorer_extra=None, pager=True):
        """Produces \\p events in chunks of \\p chunk while the scorer (and the pager) run,
        calling during(i) after chunk i; then waits until every event is applied and every
        alert published (and paged). @returns (scorer, pager, model)."""
        s = self.stack
        model = model_of(events)
        extra = {"score.batch.max": "100"}
        extra.update(scorer_extra or {})
        scorer = s.program("caresignal-score", config_extra=extra)
        page = s.program("caresignal-page") if pager else None
        chunks = [events[i:i + chunk] for i in range(0, len(events), chunk)]
        produce(s, chunks[0])
        wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in scorer.logs()),
                   60, what="the scorer to start consuming")
        for i, c in enumerate(chunks[1:]):
            produce(s, c)
            during(i)
            time.sleep(0.2)
        total = sum(len(x.seen) for x in model.subjects.values())
        wait_until(lambda: applied(s, model) == total, 240, interval=1,
                   what="every event applied")
        wait_until(lambda: len(set(a["alert_id"] for a in alerts_on(s, "intel.alerts")))
                   >= len(model.alerts), 90, what="the alerts")
        if page:
            want = set(a["alert_id"] for a in model.alerts)
            wait_until(lambda: want <= set(paged_ids(page)), 120, interval=0.5,
                       what="every alert paged")
        return scorer, page, model

    def check_exact(self, scorer, page, model):
        self.assertEqual(scorer.stop(), 0)
        self.assert_state_matches_model(model)
        self.assert_alerts_match_model(model, alerts_on(self.stack, "intel.alerts"), exact=False)
        if page:
            self.assertEqual(page.stop(), 0)
            got = paged_ids(page)
            self.assertEqual(set(got), set(a["alert_id"] for a in model.alerts))



class ClusterFailover(FaultsMixin, Checks):
    redis_cluster = True

    def test_master_killed_and_replica_promoted(self):
        s = self.stack
        r = s.redis()
        victim = {}

        def kill(i):
            if i == 3:  # mid-stream
                victim["port"] = r.masters()[0][0]
                r.kill_node(victim["port"])
        events = make_feed(4000, seed=11)
        scorer, page, model = self.run_feed(events, 250, kill)
        promoted = r.wait_for_failover(victim["port"], 60)
        self.check_exact(scorer, page, model)
        msgs = [l.get("msg", "") for l in scorer.logs()]
        self.assertIn("redis answers again: consumption resumed", msgs)
        # the library is on the promoted master (replicated, and loaded again on connect)
        libs = r.node_cmd(promoted, "FUNCTION", "LIST")
        self.assertTrue(any(b"caresignal_" in x for lib in libs for x in lib
                            if isinstance(x, bytes)), libs)
        # the old master comes back as a replica of the promoted one
        r.start_node(victim["port"])
        r.wait_ok(60)
        self.assertIn(victim["port"], [p for p, _ in r.replicas_of(promoted)])
        r.close()



class ClusterReshard(FaultsMixin, Checks):
    redis_cluster = True

    def test_reshard_while_scoring(self):
        s = self.stack
        r = s.redis()
        masters = [port for port, _ in r.masters()]
        job = {}

        def reshard(i):
            if i == 2:
                job["p"] = r.reshard_async(masters[0], masters[1], 2000)
        port = cstest.free_port()
        scorer, page, model = self.run_feed(make_feed(4000, seed=12), 250, reshard,
                                            scorer_extra={"metrics.listen":
                                                          "127.0.0.1:%d" % port},
                                            pager=False)
        self.assertEqual(job["p"].wait(180), 0)
        # the redirections it followed are counted (a moving slot answers ASK, a moved
        # one MOVED)
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=10).read().decode()
        got = {k: float(v) for k, v in re.findall(
            r'^caresignal_redis_redirects_total\{kind="(\w+)"\} (\S+)$', text, re.M)}
        self.assertEqual(set(got), {"moved", "ask"}, text[:2000])
        self.assertGreater(got["moved"] + got["ask"], 0, got)
        self.assertIn("caresignal_redis_unreplicated_total", text)
        self.check_exact(scorer, page, model)
        # the slots did move, and the scorer followed them
        owned = {port: 0 for port in masters}
        for start, end, port, _ in r.slots():
            owned[port] = owned.get(port, 0) + end - start + 1
        self.assertGreaterEqual(owned[masters[1]], 5461 + 2000 - 1)
        # a scorer started after the reshard finds every master's position (under the
        # tags of its slot ranges now): it resumes where the first stopped, replaying
        # nothing from the beginning
        again = s.program("caresignal-score")
        wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in again.logs()),
                   60, what="the second scorer's partitions")
        produce(s, make_feed(200, seed=22))
        wait_until(lambda: any(l.get("msg") == "score totals" for l in again.logs()) or
                   again.stop() == 0, 60, what="the second scorer to stop")
        msgs = [l.get("msg", "") for l in again.logs()]
        self.assertFalse([m for m in msgs if "from the beginning" in m], msgs)
        r.close()



class ClusterDown(FaultsMixin, Checks):
    redis_cluster = True

    def test_cluster_down_20s(self):
        """One shard's master and replica both down for 20 s: the cluster refuses
        (CLUSTERDOWN, its slots have no master), the scorer pauses; both back from their
        AOF: it resumes, exact."""
        s = self.stack
        r = s.redis()
        port, _ = r.masters()[0]
        replica = r.replicas_of(port)[0][0]
        down = {}

        def outage(i):
            if i == 2:
                r.kill_node(replica)
                r.kill_node(port)
                down["at"] = time.time()
                time.sleep(20)
                r.start_node(port)
                r.start_node(replica)
        scorer, page, model = self.run_feed(make_feed(3000, seed=13), 250, outage)
        r.wait_ok(60)
        self.check_exact(scorer, page, model)
        msgs = [l.get("msg", "") for l in scorer.logs()]
        self.assertEqual(sum(m.startswith("redis unavailable") for m in msgs), 1, "logged once")
        self.assertIn("redis answers again: consumption resumed", msgs)
        r.close()


class ClusterPositionsBehind(Checks):
    """The gap re-read: one master's positions set back (its replica had not yet the last
    batches' writes nor their positions), its subjects' state rewound with them."""
    redis_cluster = True

    def test_gap_reread(self):
        s = self.stack
        r = s.redis()
        events = make_feed(3000, seed=15)
        model = model_of(events)
        # master M is made to hold what a replica promoted with nothing after offset 0
        # would: none of its subjects' keys, and positions of 0
        produce(s, events)
        scorer = s.program("caresignal-score")
        total = sum(len(x.seen) for x in model.subjects.values())
        wait_until(lambda: applied(s, model) == total, 180, interval=1, what="every event applied")
        self.assertEqual(scorer.stop(), 0)
        # every master holds its own position of every partition
        for port, _ in r.masters():
            self.assertEqual(len([k for k in r.node(port).scan_keys("cs:pos:*")]), 8, port)
        port, _ = r.masters()[2]
        node = r.node(port)
        for k in node.scan_keys("cs:*"):
            if ":pos:" in k:
                node.cmd("SET", k, "0")
            elif not k.startswith("cs:rank"):
                node.cmd("DEL", k)
        scorer = s.program("caresignal-score")
        wait_until(lambda: applied(s, model) == total, 180, interval=1, what="the gap re-read")
        wait_until(lambda: any(l.get("msg", "").startswith("redis position is behind")
                               for l in scorer.logs()), 60, what="the re-read logged")
        self.assertEqual(scorer.stop(), 0)
        self.assert_state_matches_model(model)
        r.close()


class ClusterLibraryAndEngine(Checks):
    redis_cluster = True

    def test_library_reloaded_on_a_master_that_lost_it(self):
        s = self.stack
        r = s.redis()
        events = make_feed(2000, seed=16)
        model = model_of(events)
        scorer = s.program("caresignal-score")
        produce(s, events[:1000])
        first = model_of(events[:1000])
        wait_until(lambda: applied(s, first) == sum(len(x.seen) for x in first.subjects.values()),
                   120, interval=0.5, what="the first half")
        for port, _ in r.masters():
            r.node_cmd(port, "FUNCTION", "FLUSH")
        produce(s, events[1000:])
        total = sum(len(x.seen) for x in model.subjects.values())
        wait_until(lambda: applied(s, model) == total, 120, interval=0.5, what="the rest")
        self.assertEqual(scorer.stop(), 0)
        self.assert_state_matches_model(model)
        self.assertTrue(any("function missing" in l.get("msg", "") for l in scorer.logs()))
        r.close()

    def test_scorer_engine_on_a_cluster_and_bad_nodes(self):
        """state.engine=scorer on a cluster: each value written by the compare-and-set
        function (a transaction cannot span slots); exact against the model, with two
        scorers at once on the same partitions (the fence: a write computed from a value
        that moved is refused and computed again)."""
        s = self.stack
        events = make_feed(2000, seed=17)
        model = model_of(events)
        # a topic of its own (only these events), made by the scorers' subscriptions;
        # both scorers have it before the first event
        eng = {"state.layout": "2", "state.engine": "scorer", "state.namespace": "eng",
               "score.batch.max": "50", "topic.events": "it.eng"}
        one = s.program("caresignal-score", config_extra=dict(eng, **{"group.id": "eng-a"}))
        two = s.program("caresignal-score", config_extra=dict(eng, **{"group.id": "eng-b"}))
        for p in (one, two):
            wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in p.logs()),
                       60, what="both scorers' partitions")
        produce(s, events, topic="it.eng")
        total = sum(len(x.seen) for x in model.subjects.values())
        wait_until(lambda: cstest.events_applied(s, model.subjects, ns="eng") == total, 120,
                   interval=0.5, what="every event applied by the scorer engine")
        self.assertEqual(one.stop(), 0)
        self.assertEqual(two.stop(), 0)
        self.assert_state_matches_model(model, ns="eng")
        # both applied the feed: each event once, the other's turn a duplicate or a
        # redelivery
        totals = [[l for l in p.logs() if l.get("msg") == "score totals"][-1] for p in (one, two)]
        self.assertEqual(sum(t["applied"] for t in totals), total, totals)
        self.assertTrue(all(t["events"] == len(events) for t in totals), totals)
        r = s.redis()
        self.assertEqual(r.cmd("GET", "eng:layout"), b"2")
        r.close()
        p = cstest.run("caresignal-score", stack=s,
                       config_extra={"redis.cluster.nodes": "127.0.0.1:70000"})
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"redis.cluster.nodes", p.stderr)


class SingleNodeAsCluster(cstest.StackTest):
    """redis.cluster.nodes naming a node that is not in cluster mode: exit 2, naming the
    key (a configuration mistake, not an outage to wait out)."""

    def test_not_a_cluster_node(self):
        s = self.stack
        p = cstest.run("caresignal-score", "--top", "3", stack=s,
                       config_extra={"redis.cluster.nodes": "127.0.0.1:%d" % s.redis_port})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"redis.cluster.nodes", p.stderr)


if __name__ == "__main__":
    cstest.main()
