/*
 * sched.h - the scheduling policy, in one place: who coordinates an
 * evaluation, which evaluation a claim serves, in which order its modules
 * run and which of them one slot takes at once (a batch, run as one pytest
 * session when the evaluation's isolation allows).
 *
 * No I/O, no clock, no locks: the coordinator (engine/coord.c) feeds in what
 * the store knows (pending modules with recorded or estimated durations, the
 * live nodes and their slots) and carries out the answer. Every node
 * computes the same coordinator from the same membership view.
 */
#ifndef MESHTEST_SCHED_H
#define MESHTEST_SCHED_H

#include <stddef.h>

/*
 * The coordinator of an evaluation: the node that accepted it while that node
 * is alive; else the live node with the highest rendezvous hash of
 * (evaluation id, node address). NULL when alive is empty. Returns a pointer
 * into alive (or accepted_by).
 */
const char *sched_coordinator(const char *eval_id, const char *accepted_by,
    const char *const *alive, size_t nalive);

/* An evaluation with pending work, for fair share between evaluations. */
struct sched_eval {
	const char *id;
	double created_at;
	long pending;           /* modules ready to run */
	long running;
};

/*
 * Fair share: the evaluation the next claim serves is the one with the
 * fewest running modules, then the oldest (created_at, then id). Returns its
 * index, or -1 when none has pending modules.
 */
long sched_pick_eval(const struct sched_eval *e, size_t n);

/* A pending module of one evaluation. */
struct sched_module {
	int project;            /* the project's index in its evaluation */
	const char *key;        /* its path: a stable tie-break */
	double est;             /* seconds: recorded for this module and content, or
				 * estimated from its tests; <= 0 unknown */
	const char *iname;      /* the name pytest imports it under; NULL: unique */
	int measured;           /* est was measured (this module earlier, or this
				 * evaluation's modules so far), not guessed */
	long pending;           /* its project's pending modules (0: unknown) */
};

/* Seconds assumed for a module without an estimate. */
#define SCHED_DEFAULT_EST 0.1
/*
 * A claim takes at most the evaluation's pending work divided by the live
 * slots and this (guided self-scheduling: big batches first, smaller ones as
 * the work runs out, which evens out the end).
 */
#define SCHED_ROUNDS 1
/*
 * Below this many measured seconds a batch is not worth splitting further:
 * each pytest session costs its start-up, which short modules share.
 */
#define SCHED_MIN_BATCH 0.5
/* A batch never grows past this many times its share (sched_batch). */
#define SCHED_MAX_OVER 1.5

/*
 * Longest first: by estimate, decreasing (unknown as SCHED_DEFAULT_EST), then
 * the project with the most pending modules (the longest project: its
 * batches go out first, so that the small rest of one project does not take
 * a slot while whole projects wait), then project, then key. Writes the
 * order as indexes into idx (n of them). Stable and total, so every
 * coordinator orders alike.
 */
void sched_order(const struct sched_module *m, size_t n, size_t *idx);

/*
 * pytest's order of two test files of one project (paths relative to it):
 * folder by folder, by name, a folder's own files before those of the
 * folders below it. Negative, zero or positive, as strcmp.
 */
int sched_path_cmp(const char *a, const char *b);

/*
 * The modules of one claim, for a slot that will run them one after the
 * other (or in one pytest session), chosen so: the longest pending module; then,
 * until the batch reaches its share of the work (the whole pending estimate,
 * with the `unready` modules of projects still being fetched at the mean
 * estimate of the others, divided by slots * SCHED_ROUNDS; when every
 * estimate was measured, at least SCHED_MIN_BATCH seconds, so short modules
 * gather in one session however little work is left), the shortest modules
 * of the same project, which is where a shared session saves the most
 * start-up. A module is added while the batch is short of its share (for
 * equal modules guided self-scheduling's ceil(pending / slots)), unless the
 * batch would pass SCHED_MAX_OVER times its share. Never two modules with the same import
 * name (pytest would refuse the second), never more than max. Writes
 * indexes into out in the order the slot runs them (sched_path_cmp: as
 * pytest on the project would), and returns how many (1 or more when n > 0).
 */
size_t sched_batch(const struct sched_module *m, size_t n, size_t unready, int slots,
    size_t max, size_t *out);

#endif
