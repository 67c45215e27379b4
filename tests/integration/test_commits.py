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
        """With the cooperative protocol: the dev broker refuses a commit while an eager
        rebalance is in progress (REBALANCE_IN_PROGRESS; Apache Kafka accepts the current
        generation's commit then), so the eager revoke's commit can only be logged here."""
        self.topic = "it.commits.revoke"
        coop = {"kafka.partition.assignment.strategy": "cooperative-sticky"}
        a = self.normaliser("commits-revoke", **coop)
        self.produce(100, 30)
        wait_until(lambda: self.dead_letters() >= 30, 60, what="the dead letters")
        # a second member joins: the first one's partitions are revoked and committed
        b = self.normaliser("commits-revoke", **coop)
        wait_until(lambda: any(l.get("msg") == "partitions revoked" for l in a.logs()), 60,
                   what="the rebalance")
        wait_until(lambda: committed(self.stack, self.topic, "commits-revoke") == self.high_watermarks(),
                   30, interval=0.5, what="the revoked partitions committed")
        self.assertFalse([l for l in a.logs() if "commit" in l.get("msg", "")
                          and l.get("level") == "error"])
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.dead_letters(), 30)  # nothing read twice


if __name__ == "__main__":
    cstest.main()
