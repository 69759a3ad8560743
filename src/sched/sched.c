/*
 * sched.c - pure scheduling decisions (see sched.h). Thread-safe: no state.
 */
#include "sched/sched.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a 64 over "id\0node": the rendezvous weight of node for id. */
static uint64_t
rendezvous(const char *id, const char *node)
{
	uint64_t h = 14695981039346656037ULL;

	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0) * 1099511628211ULL;
	for (const char *p = node; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	/* Final avalanche (splitmix64), so near addresses spread. */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

const char *
sched_coordinator(const char *eval_id, const char *accepted_by,
    const char *const *alive, size_t nalive)
{
	const char *best = NULL;
	uint64_t best_w = 0;

	for (size_t i = 0; i < nalive; i++)
		if (accepted_by != NULL && strcmp(alive[i], accepted_by) == 0)
			return alive[i];
	for (size_t i = 0; i < nalive; i++) {
		uint64_t w = rendezvous(eval_id, alive[i]);
		if (best == NULL || w > best_w ||
		    (w == best_w && strcmp(alive[i], best) < 0)) {
			best = alive[i];
			best_w = w;
		}
	}
	return best;
}

static int
module_cmp(const void *a, const void *b)
{
	const struct sched_module *x = a, *y = b;
	int kx = x->duration >= 0, ky = y->duration >= 0;

	if (kx != ky)
		return ky - kx;           /* known durations first */
	if (kx && x->duration != y->duration)
		return x->duration < y->duration ? 1 : -1;
	return strcmp(x->key, y->key);
}

void
sched_order(struct sched_module *m, size_t n)
{
	if (n > 1)
		qsort(m, n, sizeof(*m), module_cmp);
}

size_t
sched_assign(size_t nmodules, struct sched_node *nodes, size_t nnodes,
    struct sched_assignment *out, size_t max)
{
	size_t k = 0;

	for (size_t m = 0; m < nmodules && k < max; m++) {
		size_t best = nnodes;
		for (size_t i = 0; i < nnodes; i++)
			if (nodes[i].free_slots > 0 &&
			    (best == nnodes || nodes[i].free_slots > nodes[best].free_slots))
				best = i;
		if (best == nnodes)
			break;
		nodes[best].free_slots--;
		out[k].module = m;
		out[k].node = best;
		k++;
	}
	return k;
}
