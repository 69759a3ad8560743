/*
 * replica.h - every evaluation on every node: pushes of local changes and
 * anti-entropy pulls, both by change, never by whole evaluation.
 *
 * Every row this node changes itself (an accepted evaluation, a fetched
 * project, a claimed module, a recorded result) is in the store's change log;
 * within a fraction of a second the replica thread sends those rows, each
 * with its project's row and the evaluation's header, to every live peer
 * (POST /evaluation/sync_result/<id>), so a module result costs the same
 * bytes in an evaluation of ten modules or of twenty thousand. Pushes can be
 * lost, so every REPLICA_AE_PERIOD each node also compares evaluation digests
 * with one random live peer (GET /sync/digests), then, for an evaluation
 * that differs, its STORE_SYNC_BUCKETS bucket digests
 * (GET /sync/evaluation/<id>/buckets), and pulls only the buckets that
 * differ, a few at a time (GET /sync/evaluation/<id>/part/1,2,3): a node
 * that has nothing of an evaluation gets it in pages. Merging is the store's
 * deterministic merge, so the order in which documents arrive does not matter.
 */
#ifndef MESHTEST_REPLICA_H
#define MESHTEST_REPLICA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct replica;
struct store;

/* The live peers (not this node): a malloc'ed array of malloc'ed strings. */
typedef int (*replica_peers_fn)(void *ctx, char ***addrs, size_t *n);

int replica_start(struct store *st, const char *self, replica_peers_fn peers, void *ctx,
    struct replica **out);
void replica_stop(struct replica *r);
/* Something changed here: push the change log soon. Thread-safe, never blocks long. */
void replica_wake(struct replica *r);
/* Push the change log now, without gathering more changes first (new work). */
void replica_hurry(struct replica *r);
/* Run one anti-entropy round with every live peer now (tests, start-up). */
void replica_sync_now(struct replica *r);

/* What replication moved, since the process started (all of its replicas). */
struct replica_counters {
	uint64_t pushed_docs, pushed_bytes;       /* sent, per peer */
	uint64_t received_docs, received_bytes;   /* pushes taken in (POST sync_result) */
	uint64_t pulled_docs, pulled_bytes;       /* anti-entropy answers taken in */
	uint64_t served_docs, served_bytes;       /* anti-entropy answers given to peers */
};
void replica_counters(struct replica_counters *out);
/* A pushed document of len bytes arrived (api_sync.c). */
void replica_note_received(size_t len);
/* An anti-entropy answer of len bytes went to a peer (api_sync.c). */
void replica_note_served(size_t len);

/*
 * POST one evaluation document to node now (POST /evaluation/sync_result/<id>),
 * outside the push rounds: the engine's hand-overs (a new evaluation, a
 * remote batch's results). Counted as pushed. 0 with *status (the answer's),
 * or a negative errno as peer_request.
 */
int replica_post(const char *node, const char *eval_id, json_t *doc, double timeout,
    long *status);

#endif
