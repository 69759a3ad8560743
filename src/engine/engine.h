/*
 * engine.h - the node's work: accepting evaluations (intake.h), fetching
 * projects, running their test modules on the node's slots and coordinating
 * the evaluations this node is responsible for.
 *
 * Everything after the 201 happens on the engine's own threads (fetchers,
 * one thread per slot, the coordinator), driven by the state in the store,
 * so a restarted node picks up where it died.
 */
#ifndef MESHTEST_ENGINE_H
#define MESHTEST_ENGINE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct engine;
struct store;

int engine_start(const struct config *cfg, struct store *st, struct engine **out,
    char *err, size_t errlen);
/* Stop the threads; modules still running go back to pending. */
void engine_stop(struct engine *eng);

/*
 * Called (on the engine's or the HTTP server's threads) after every local
 * change of an evaluation's state, e.g. to replicate it. news: the change
 * is work that other nodes may take (a project became ready, modules went
 * back to pending), which they should learn of at once.
 */
typedef void (*engine_change_fn)(void *ctx, const char *eval_id, int news);
void engine_set_change_hook(struct engine *eng, engine_change_fn fn, void *ctx);

/*
 * The live nodes, this one included, as malloc'ed strings (the membership
 * layer's view). Without it the engine works alone.
 */
typedef int (*engine_alive_fn)(void *ctx, char ***addrs, size_t *n);
void engine_set_alive_fn(struct engine *eng, engine_alive_fn fn, void *ctx);

/*
 * POST /task/claim: a batch of modules for worker node (which has `slots`
 * slots): {"claim": first or null, "claims": [...]} (new reference).
 */
json_t *engine_claim_for(struct engine *eng, const char *node, int slots);
/* POST /task/fetch: a project of eval_id node may prepare for us, or {"job": null}. */
json_t *engine_fetch_lend(struct engine *eng, const char *node, const char *eval_id);
/* POST /task/fetch/back: node gives back a project it did not prepare. */
void engine_fetch_give_back(struct engine *eng, const char *node, const char *eval_id,
    int idx);
/* GET /task/running: what this node's slots run now (new reference). */
json_t *engine_running_json(struct engine *eng);
/* POST /task: work may be waiting; slots look now. */
void engine_wake(struct engine *eng);
/*
 * The evaluation was cancelled or deleted on this node (its store says so
 * already): this node's batches of it stop, every live peer is told now
 * (the evaluation's header with its cancel, or its tombstone; best effort:
 * one that misses it learns it by anti-entropy) and the coordinator round
 * settles it. Blocks for the pushes (5 s per peer at most).
 */
void engine_eval_stopped_here(struct engine *eng, const char *eval_id);
/* A cancel or delete of the evaluation came from another node: stop its batches here. */
void engine_eval_stop(struct engine *eng, const char *eval_id);
/* Where blobs live (for GET/PUT /blob/<digest>). */
const char *engine_blobs_dir(const struct engine *eng);

const char *engine_address(const struct engine *eng);
struct store *engine_store(const struct engine *eng);
/* Facts for GET /health (new reference). */
json_t *engine_health(struct engine *eng);
/* The node's slots, and how many run a batch now (GET /metrics). */
void engine_slots(struct engine *eng, long *busy, long *total);
/* The disk budget in bytes (--max-disk or its default; 0 before the first measure). */
uint64_t engine_disk_budget(struct engine *eng);

#endif
