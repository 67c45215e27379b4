#!/usr/bin/env python3
"""caresignal on a real Redis Cluster (3 masters + 3 replicas, deploy/dev/stack.sh
--redis-cluster): the same end-to-end, scoring (exact against the model, --top merging the
rank shards, --show), rebuild and what-if, re-drive and pager assertions as on one node.
The faults are in test_cluster_faults.py."""
import cstest
import test_e2e
import test_page
import test_replay_offsets_redrive
import test_replay_rebuild_whatif
import test_score

# ----------------------------------------------------------------------------- the same
# assertions as on one node


class EndToEndOnCluster(test_e2e.EndToEnd):
    redis_cluster = True


class FeedOnCluster(test_score.FeedMatchesModel):
    redis_cluster = True


class ReplayOnCluster(test_replay_rebuild_whatif.Replay):
    redis_cluster = True


class RedriveOnCluster(test_replay_offsets_redrive.Redrive):
    redis_cluster = True


class PagerOnCluster(test_page.Webhook):
    redis_cluster = True


if __name__ == "__main__":
    cstest.main()
