/*
 * sched.h - pure scheduling decisions: who coordinates an evaluation, in
 * which order its modules run, and which node runs which module now.
 *
 * No I/O, no clock, no locks: the coordinator feeds in what it knows (live
 * nodes, their free slots, pending modules with the durations seen in earlier
 * runs) and carries out the answer. Every node computes the same coordinator
 * from the same membership view.
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

struct sched_module {
	const char *key;        /* "<project_idx>/<path>" or any stable id */
	double duration;        /* seconds seen in an earlier run, < 0 unknown */
};

/*
 * Longest first: modules with a known duration in decreasing order, then
 * those without one, in key order. Stable and total, so every coordinator
 * orders alike.
 */
void sched_order(struct sched_module *m, size_t n);

struct sched_node {
	const char *address;
	int free_slots;         /* decremented as modules are assigned */
};

struct sched_assignment {
	size_t module;          /* index into the ordered modules */
	size_t node;            /* index into nodes */
};

/*
 * Hand out modules in order to the node with the most free slots (ties: the
 * lower index), until modules or free slots run out. Returns the number of
 * assignments written (at most max).
 */
size_t sched_assign(size_t nmodules, struct sched_node *nodes, size_t nnodes,
    struct sched_assignment *out, size_t max);

#endif
