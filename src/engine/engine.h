/*
 * engine.h - the node's work: accepting evaluations, fetching projects and
 * running their test modules on the node's slots.
 *
 * The API layer calls engine_submit_*; everything after the 201 happens on
 * the engine's own threads (fetchers and one thread per slot), driven by the
 * state in the store, so a restarted node picks up where it died.
 */
#ifndef MESHTEST_ENGINE_H
#define MESHTEST_ENGINE_H

#include <jansson.h>
#include <stddef.h>

struct config;
struct engine;
struct store;

int engine_start(const struct config *cfg, struct store *st, struct engine **out,
    char *err, size_t errlen);
/* Stop the threads; modules still running go back to pending. */
void engine_stop(struct engine *eng);

/*
 * Called (on the engine's or the HTTP server's threads) after every local
 * change of an evaluation's state, e.g. to replicate it.
 */
typedef void (*engine_change_fn)(void *ctx, const char *eval_id);
void engine_set_change_hook(struct engine *eng, engine_change_fn fn, void *ctx);

/*
 * The live nodes, this one included, as malloc'ed strings (the membership
 * layer's view). Without it the engine works alone.
 */
typedef int (*engine_alive_fn)(void *ctx, char ***addrs, size_t *n);
void engine_set_alive_fn(struct engine *eng, engine_alive_fn fn, void *ctx);

/* POST /task/claim: a module for worker node, or {"claim": null} (new reference). */
json_t *engine_claim_for(struct engine *eng, const char *node);
/* GET /task/running: what this node's slots run now (new reference). */
json_t *engine_running_json(struct engine *eng);
/* POST /task: work may be waiting; slots look now. */
void engine_wake(struct engine *eng);
/* Where blobs live (for GET/PUT /blob/<digest>). */
const char *engine_blobs_dir(const struct engine *eng);

const char *engine_address(const struct engine *eng);
struct store *engine_store(const struct engine *eng);
/* Facts for GET /health (new reference). */
json_t *engine_health(const struct engine *eng);

/*
 * Accept a ZIP upload. The file at upload_path is moved into the data
 * folder on success (the caller must then not delete it). filename is the
 * client's name for it (for a ZIP whose root is one project), may be NULL.
 * instructor_zip, when not NULL, is a ZIP of the instructor's tests (moved
 * into the data folder too) that replace each project's tests/.
 * On success returns 0 and writes the id; on refusal returns the HTTP status
 * (4xx/5xx) with a message in err.
 */
int engine_submit_zip(struct engine *eng, const char *upload_path, const char *filename,
    const char *instructor_zip, json_t *settings, char id[37], char *err, size_t errlen);
/* Accept git URLs; token may be NULL and is kept in memory only. */
int engine_submit_git(struct engine *eng, const char *const *urls, size_t n,
    const char *token, json_t *settings, char id[37], char *err, size_t errlen);

/*
 * Check and normalise the optional evaluation settings (module_timeout):
 * numbers or numeric strings (form fields). Returns a new settings object, or
 * NULL with a message in err.
 */
json_t *engine_settings_parse(json_t *in, char *err, size_t errlen);

#endif
