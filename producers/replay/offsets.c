/* caresignal-replay offsets: moves a stopped consumer group's committed offsets on one
 * topic to the earliest or latest offset, or to the first message at or after a time —
 * exact on the dev broker too, which answers offsets-for-times with -1
 * (cs_offset_for_time then searches the partition's timestamps). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/kafka.h"
#include "caresignal/reader.h"
#include "caresignal/timeutil.h"
#include "replay.h"

/* "none" for a partition without a committed offset, else the number. */
static const char *offset_text(int64_t off, char *buf, size_t size)
{
    if (off < 0)
        snprintf(buf, size, "none");
    else
        snprintf(buf, size, "%" PRId64, off);
    return buf;
}

/* Refuses (returns 1) while the broker says the group has members; warns where the broker
 * cannot say (the dev broker implements neither ListGroups nor DescribeGroups). */
static int check_group_stopped(rd_kafka_t *rk, const char *group)
{
    const struct rd_kafka_group_list *groups = NULL;
    rd_kafka_resp_err_t err = rd_kafka_list_groups(rk, group, &groups, 5000);
    if (err || !groups) {
        printf(
            "warning: the broker cannot say whether group '%s' has active members (%s): "
            "make sure every consumer of the group is stopped, or it will overwrite "
            "these "
            "offsets with its own\n",
            group, rd_kafka_err2str(err));
        if (groups)
            rd_kafka_group_list_destroy(groups);
        return 0;
    }
    int members = 0;
    for (int i = 0; i < groups->group_cnt; i++) {
        const struct rd_kafka_group_info *g = &groups->groups[i];
        if (strcmp(g->group, group))
            continue;
        if (g->err) {
            printf("warning: the broker cannot describe group '%s' (%s): make sure every "
                   "consumer of the group is stopped\n",
                   group, rd_kafka_err2str(g->err));
            rd_kafka_group_list_destroy(groups);
            return 0;
        }
        members += g->member_cnt;
    }
    rd_kafka_group_list_destroy(groups);
    if (members > 0) {
        printf(
            "refused: group '%s' has %d active member%s: stop its consumers first (their "
            "commits would overwrite the new offsets)\n",
            group, members, members == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

int replay_offsets(const replay_ctx_t *ctx)
{
    const char *group = cs_cli_get(ctx->cli, ctx->spec, "group");
    const char *topic = cs_cli_get(ctx->cli, ctx->spec, "topic");
    const char *to = cs_cli_get(ctx->cli, ctx->spec, "to");
    if (!group || !*group)
        cs_cli_fail(ctx->spec, "offsets needs --group G (the consumer group to move)");
    if (!topic || !*topic)
        cs_cli_fail(ctx->spec, "offsets needs --topic T (the topic whose offsets move)");
    int64_t to_time = replay_time_option(ctx, "to-time");
    if ((to_time >= 0) == (to != NULL))
        cs_cli_fail(ctx->spec, "offsets needs exactly one of --to-time ISO-8601 and --to "
                               "earliest|latest");
    if (to && strcmp(to, "earliest") && strcmp(to, "latest"))
        cs_cli_fail(ctx->spec, "option --to: expected earliest or latest, got '%s'", to);

    char errstr[512];
    rd_kafka_conf_t *conf = cs_kafka_conf_new(ctx->cfg, errstr, sizeof(errstr));
    if (!conf)
        cs_cli_fail(ctx->spec, "%s", errstr);
    /* a member of no group: it reads and commits the group's offsets without joining */
    if (rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr,
                          sizeof(errstr)))
        cs_cli_fail(ctx->spec, "%s", errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "caresignal-replay: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);

    int rc = 1, n = 0;
    cs_partition_info_t *parts = NULL;
    rd_kafka_topic_partition_list_t *committed = NULL, *target = NULL;
    if (cs_topic_partitions(rk, topic, &parts, &n, errstr, sizeof(errstr))) {
        fprintf(stderr, "caresignal-replay: %s\n", errstr);
        goto done;
    }
    if (check_group_stopped(rk, group))
        goto done;
    committed = rd_kafka_topic_partition_list_new(n ? n : 1);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(committed, topic, parts[i].partition);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, committed, 10000);
    if (err) {
        fprintf(stderr, "caresignal-replay: group %s: committed offsets: %s\n", group,
                rd_kafka_err2str(err));
        goto done;
    }
    target = rd_kafka_topic_partition_list_new(n ? n : 1);
    for (int i = 0; i < n; i++) {
        int64_t new_off;
        if (to)
            new_off = strcmp(to, "earliest") ? parts[i].high : parts[i].low;
        else if (cs_offset_for_time(rk, topic, parts[i].partition, to_time, &new_off,
                                    errstr, sizeof(errstr))) {
            fprintf(stderr, "caresignal-replay: %s\n", errstr);
            goto done;
        }
        rd_kafka_topic_partition_list_add(target, topic, parts[i].partition)->offset =
            new_off;
    }

    char when[40] = "";
    if (to_time >= 0)
        cs_time_format(to_time, when, sizeof(when));
    printf("offsets: group '%s' on topic %s (%d partitions) to %s%s\n", group, topic, n,
           to ? to : "the first message at or after ", to ? "" : when);
    printf("  %-9s  %10s  %10s  %10s  %10s  %10s\n", "partition", "earliest", "latest",
           "old", "new", "lag after");
    int64_t lag_before = 0, lag_after = 0;
    int changes = 0;
    for (int i = 0; i < n; i++) {
        char a[24], b[24];
        int64_t old_off = committed->elems[i].offset, new_off = target->elems[i].offset;
        printf("  %-9d  %10" PRId64 "  %10" PRId64 "  %10s  %10s  %10" PRId64 "\n",
               (int)parts[i].partition, parts[i].low, parts[i].high,
               offset_text(old_off, a, sizeof(a)), offset_text(new_off, b, sizeof(b)),
               parts[i].high - new_off);
        lag_before += parts[i].high - (old_off >= 0 ? old_off : parts[i].low);
        lag_after += parts[i].high - new_off;
        changes += old_off != new_off;
    }
    printf("lag: %" PRId64 " messages before, %" PRId64
           " after; %d of %d partitions change\n",
           lag_before, lag_after, changes, n);
    if (!ctx->execute) {
        printf("dry run: nothing changed (add --execute)\n");
        rc = 0;
        goto done;
    }
    err = rd_kafka_commit(rk, target, 0);
    if (err) {
        fprintf(stderr, "caresignal-replay: group %s: commit: %s\n", group,
                rd_kafka_err2str(err));
        goto done;
    }
    /* read back what the broker now holds: the proof, not our intention */
    for (int i = 0; i < committed->cnt; i++)
        committed->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    err = rd_kafka_committed(rk, committed, 10000);
    int same = !err;
    for (int i = 0; same && i < n; i++)
        same = committed->elems[i].offset == target->elems[i].offset;
    if (!same) {
        fprintf(stderr,
                "caresignal-replay: group %s: the committed offsets read back differ "
                "from those written (%s): is a member of the group still running?\n",
                group, err ? rd_kafka_err2str(err) : "another commit");
        goto done;
    }
    printf("committed: group '%s' resumes %s from the new offsets when it starts\n",
           group, topic);
    rc = 0;
done:
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    if (target)
        rd_kafka_topic_partition_list_destroy(target);
    free(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
