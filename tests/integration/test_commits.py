#!/usr/bin/env python3
"""Commits, named after what broke: the revoke callback committed the revoked list's
INVALID offsets (a no-op whose error was ignored), so only auto-commit ever committed,
and with kafka.enable.auto.commit=false nothing was ever committed: every restart
replayed everything. The stored offsets are committed on revoke and on close."""
import os

import cstest
from cstest import cat, committed, kcat_consume, kcat_produce, wait_until

DIRECTORY = os.path.join(cstest.SOURCE, "tests/data/integration/directory.csv")


class Commits(cstest.StackTest):
    """Each test reads its own raw topic (topic.raw.ccg), so counts do not mix."""

    def high_watermarks(self):
        hw = {}
        for rec in kcat_consume(self.stack.bootstrap, self.topic):
            hw[rec.partition] = max(hw.get(rec.partition, 0), rec.offset + 1)
        return hw

    def dead_letters(self):
        return len([d for d in cat(self.stack, "intel.deadletter")
                    if d["headers"].get("cs.origin.topic") == self.topic])

    def normaliser(self, group, **extra):
        return self.stack.program("caresignal-normalise", config_extra={
            "directory.file": DIRECTORY, "group.id": group, "topic.raw.ccg": self.topic, "kafka.enable.auto.commit": "false",
            "kafka.session.timeout.ms": "6000", **extra})

    def produce(self, first, n):
        # not JSON: each becomes one dead letter, whichever member reads it
        kcat_produce(self.stack.bootstrap, self.topic,
                     [(b"k%d" % i, b"not json %d" % i) for i in range(first, first + n)])

    def test_regression_nothing_committed_without_auto_commit(self):
        self.topic = "it.commits.close"
        a = self.normaliser("commits-close")
        self.produce(0, 40)
        wait_until(lambda: self.dead_letters() >= 40, 60, what="the dead letters")
        self.assertEqual(a.stop(), 0)
        self.assertEqual(committed(self.stack, self.topic, "commits-close"), self.high_watermarks())
        # a restart re-reads nothing
        b = self.normaliser("commits-close")
        wait_until(lambda: any(l.get("msg") == "partitions assigned" for l in b.logs()), 60,
                   what="the restart to join")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.dead_letters(), 40)

    def test_regression_revoke_commits_what_was_stored(self):
        """A rebalance revokes the first member's partitions: it commits what it stored,
        and a refusal is an error in the log, never silent. The dev broker refuses every
        commit while an eager rebalance is in progress (REBALANCE_IN_PROGRESS; Apache
        Kafka accepts the current generation's commit then), and librdkafka 2.0.2's
        cooperative-sticky assignor aborts at close (rdkafka_sticky_assignor.c:1896), so
        here the revoke's commit can only be shown refused and said; the commit on
        leaving the group (close) is what lands, and nothing is lost."""
        self.topic = "it.commits.revoke"
        a = self.normaliser("commits-revoke")
        self.produce(100, 30)
        wait_until(lambda: self.dead_letters() >= 30, 60, what="the dead letters")
        b = self.normaliser("commits-revoke")  # the first one's partitions are revoked
        wait_until(lambda: any(l.get("msg") == "partitions revoked" for l in a.logs()), 60,
                   what="the rebalance")
        wait_until(lambda: len([l for l in b.logs() if l.get("msg") == "partitions assigned"]) >= 1,
                   60, what="the second member's assignment")
        # the second member re-reads what the refused commit did not cover: wait for it
        assigned = [l for l in b.logs() if l.get("msg") == "partitions assigned"][-1]
        hw = self.high_watermarks()
        again = sum(hw.get(p, 0) for p in range(4)
                    if "%s[%d]@" % (self.topic, p) in assigned["partitions"])
        wait_until(lambda: self.dead_letters() >= 30 + again, 60, what="the re-reads")
        commits = [l for l in a.logs() if l.get("when") == "revoke"]
        for l in commits:  # refused: said as an error, with the broker's reason
            self.assertEqual((l["level"], l["error"]), ("error", "REBALANCE_IN_PROGRESS"))
        self.assertTrue(commits, "the revoke committed (or tried to)")
        self.assertEqual(a.stop(), 0)
        # the group settles on b before b leaves: librdkafka 2.0.2 may abort a consumer
        # closed in the middle of a rebalance (rd_kafka_cgrp_terminated's assertion)
        wait_until(lambda: len([l for l in b.logs() if l.get("msg") == "partitions assigned"]) >= 2,
                   60, what="the group to settle on the second member")
        self.assertEqual(b.stop(), 0)
        dead = [d for d in cat(self.stack, "intel.deadletter")
                if d["headers"].get("cs.origin.topic") == self.topic]
        self.assertEqual(len({(d["headers"]["cs.origin.partition"], d["headers"]["cs.origin.offset"])
                              for d in dead}), 30)  # every one, at least once


if __name__ == "__main__":
    cstest.main()
