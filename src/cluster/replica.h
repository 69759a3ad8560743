/*
 * replica.h - every evaluation on every node: pushes of local changes and
 * anti-entropy pulls.
 *
 * Local changes (an accepted evaluation, a fetched project, a claimed module,
 * a recorded result) are pushed to every live peer within a fraction of a
 * second (POST /evaluation/sync_result/<id>). Pushes can be lost, so every
 * REPLICA_AE_PERIOD each node also compares digests with one random live peer
 * (GET /sync/digests) and pulls every evaluation that differs
 * (GET /sync/evaluation/<id>). A node that was down or cut off catches up
 * this way. Merging is the store's deterministic merge, so the order in which
 * documents arrive does not matter.
 */
#ifndef MESHTEST_REPLICA_H
#define MESHTEST_REPLICA_H

#include <jansson.h>
#include <stddef.h>

struct replica;
struct store;

/* The live peers (not this node): a malloc'ed array of malloc'ed strings. */
typedef int (*replica_peers_fn)(void *ctx, char ***addrs, size_t *n);

int replica_start(struct store *st, const char *self, replica_peers_fn peers, void *ctx,
    struct replica **out);
void replica_stop(struct replica *r);
/* An evaluation changed here: push it soon. Thread-safe, never blocks long. */
void replica_changed(struct replica *r, const char *eval_id);
/* Run one anti-entropy round with every live peer now (tests, start-up). */
void replica_sync_now(struct replica *r);

#endif
