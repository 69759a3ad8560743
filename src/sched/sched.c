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

long
sched_pick_eval(const struct sched_eval *e, size_t n)
{
	long best = -1;

	for (size_t i = 0; i < n; i++) {
		const struct sched_eval *b = best >= 0 ? &e[best] : NULL;
		if (e[i].pending <= 0)
			continue;
		if (b == NULL || e[i].running < b->running ||
		    (e[i].running == b->running && (e[i].created_at < b->created_at ||
		    (e[i].created_at == b->created_at && strcmp(e[i].id, b->id) < 0))))
			best = (long)i;
	}
	return best;
}

static double
sched_est(const struct sched_module *m)
{
	return m->est > 0 ? m->est : SCHED_DEFAULT_EST;
}

/* qsort has no context argument: the modules ride along in each element. */
struct sched_ref {
	const struct sched_module *m;
	size_t i;
};

static int
sched_cmp(const void *a, const void *b)
{
	const struct sched_ref *x = a, *y = b;
	double ex = sched_est(x->m), ey = sched_est(y->m);
	int k;

	if (ex != ey)
		return ex < ey ? 1 : -1;
	if (x->m->pending != y->m->pending)
		return x->m->pending < y->m->pending ? 1 : -1;
	if (x->m->project != y->m->project)
		return x->m->project < y->m->project ? -1 : 1;
	k = strcmp(x->m->key ? x->m->key : "", y->m->key ? y->m->key : "");
	if (k != 0)
		return k;
	return x->i < y->i ? -1 : x->i > y->i;
}

void
sched_order(const struct sched_module *m, size_t n, size_t *idx)
{
	struct sched_ref *r = malloc((n ? n : 1) * sizeof(*r));

	if (r == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		r[i] = (struct sched_ref){ &m[i], i };
	if (n > 1)
		qsort(r, n, sizeof(*r), sched_cmp);
	for (size_t i = 0; i < n; i++)
		idx[i] = r[i].i;
	free(r);
}

/* 1 when a module of that import name is in the batch already. */
static int
sched_clash(const struct sched_module *m, const size_t *out, size_t k, const char *iname)
{
	if (iname == NULL)
		return 0;
	for (size_t j = 0; j < k; j++)
		if (m[out[j]].iname != NULL && strcmp(m[out[j]].iname, iname) == 0)
			return 1;
	return 0;
}

int
sched_path_cmp(const char *a, const char *b)
{
	for (;;) {
		const char *sa = strchr(a, '/'), *sb = strchr(b, '/');
		size_t la = sa ? (size_t)(sa - a) : strlen(a), lb = sb ? (size_t)(sb - b) : strlen(b);
		int c;

		/* a file of this folder before anything in a folder below it */
		if ((sa == NULL) != (sb == NULL))
			return sa == NULL ? -1 : 1;
		c = strncmp(a, b, la < lb ? la : lb);
		if (c == 0 && la != lb)
			c = la < lb ? -1 : 1;
		if (c != 0 || sa == NULL)
			return c;
		a = sa + 1;
		b = sb + 1;
	}
}

/* The batch's run order: sched_path_cmp on module keys (qsort_r, m as arg). */
static int
sched_run_cmp(const void *x, const void *y, void *arg)
{
	const struct sched_module *m = arg;
	const struct sched_module *a = &m[*(const size_t *)x], *b = &m[*(const size_t *)y];

	return sched_path_cmp(a->key ? a->key : "", b->key ? b->key : "");
}

size_t
sched_batch(const struct sched_module *m, size_t n, size_t unready, int slots, size_t max,
    size_t *out)
{
	size_t *idx, k = 0;
	double total = 0, share, sum;
	int measured = 1;
	const struct sched_module *head;

	if (n == 0 || max == 0)
		return 0;
	idx = malloc(n * sizeof(*idx));
	if (idx == NULL)
		abort();
	sched_order(m, n, idx);
	for (size_t i = 0; i < n; i++) {
		total += sched_est(&m[i]);
		measured &= m[i].measured;
	}
	total += total / (double)n * (double)unready;
	share = total / (double)((slots > 0 ? slots : 1) * SCHED_ROUNDS);
	if (measured && share < SCHED_MIN_BATCH)
		share = SCHED_MIN_BATCH;
	head = &m[idx[0]];
	out[k++] = idx[0];
	sum = sched_est(head);
	/*
	 * then the shortest of the same project, from the end of the order, until
	 * the batch reaches its share (guided self-scheduling's ceil(pending /
	 * slots) for equal modules): every batch pays a session's start-up, and
	 * fewer, fuller batches finish together just as well. Taken from the
	 * short end, a batch passes its share by less than the last module it
	 * took, and never grows past half again its share: a module longer than
	 * the share goes alone, and two long modules never queue in one slot
	 * while another idles
	 */
	for (size_t j = n; j-- > 1 && k < max && sum < share * (1 - 1e-9);) {
		const struct sched_module *c = &m[idx[j]];
		if (c->project != head->project || sched_clash(m, out, k, c->iname))
			continue;
		if (sum + sched_est(c) > SCHED_MAX_OVER * share * (1 + 1e-9))
			break;   /* the rest of the order is no shorter */
		sum += sched_est(c);
		out[k++] = idx[j];
	}
	/*
	 * Chosen longest first, run in the order pytest on the project would run
	 * them: a session's modules meet each other as they do there (a module
	 * run after another one that it never follows in plain pytest can be
	 * slower, or fail, for what that one left behind)
	 */
	qsort_r(out, k, sizeof(*out), sched_run_cmp, (void *)m);
	free(idx);
	return k;
}
