/*
 * store_helpers.h - what the unit tests of the store need from the engine:
 * marking a project ready with plain module paths, and claiming one module
 * the way the coordinator does (src/engine/coord.c: fair share between
 * evaluations, then the scheduler's first pick).
 */
#ifndef MESHTEST_TEST_STORE_HELPERS_H
#define MESHTEST_TEST_STORE_HELPERS_H

#include <stdlib.h>

#include "core/util.h"
#include "sched/sched.h"
#include "store/store.h"

static inline int
helper_ready(struct store *st, const char *eval, int idx, const char *digest,
    const char *const *paths, size_t n)
{
	struct store_module_info *m = xcalloc(n ? n : 1, sizeof(*m));
	int r;

	for (size_t i = 0; i < n; i++)
		m[i].path = paths[i];
	{
		struct store_fetched f = { .digest = digest, .modules = m, .nmodules = n };
		r = store_project_ready(st, eval, idx, &f);
	}
	free(m);
	return r < 0 ? r : 0;
}

/* One module for node, as coord_claim picks it (1 claimed, 0 none). */
static inline int
helper_claim(struct store *st, const char *node, struct store_claim *c)
{
	struct store_work *w = NULL;
	struct sched_eval *ev;
	size_t nw = 0;
	int r = 0;

	if (store_work_list(st, &w, &nw) < 0)
		return -1;
	ev = xcalloc(nw ? nw : 1, sizeof(*ev));
	for (size_t i = 0; i < nw; i++)
		ev[i] = (struct sched_eval){ w[i].id, w[i].created_at, w[i].pending, w[i].running };
	for (;;) {
		long pick = sched_pick_eval(ev, nw);
		struct store_pending_summary sum;
		struct store_pending *p = NULL;
		struct sched_module *m;
		const struct store_pending *one;
		size_t np = 0, idx = 0, lead[4];

		if (pick < 0)
			break;
		ev[pick].pending = 0;
		if (store_pending_summary(st, w[pick].id, &sum) < 0 || sum.nlead == 0) {
			store_pending_summary_free(&sum);
			continue;
		}
		m = xcalloc(sum.nlead, sizeof(*m));
		for (size_t i = 0; i < sum.nlead; i++)
			m[i] = (struct sched_module){ sum.lead[i].project_idx, sum.lead[i].path,
			    sum.lead[i].est, sum.lead[i].iname,
			    sum.lead[i].known || sum.lead[i].measured, sum.lead[i].project_pending };
		sched_order(m, sum.nlead, lead);
		free(m);
		if (store_pending_project(st, w[pick].id, sum.lead[lead[0]].project_idx, sum.mean,
		    &p, &np) < 0 || np == 0) {
			store_pending_summary_free(&sum);
			continue;
		}
		m = xcalloc(np, sizeof(*m));
		for (size_t i = 0; i < np; i++)
			m[i] = (struct sched_module){ p[i].project_idx, p[i].path, p[i].est, p[i].iname,
			    p[i].known || p[i].measured, p[i].project_pending };
		(void)sched_batch(m, np, 0, 1, 1, &idx);
		one = &p[idx];
		r = store_claim_modules(st, w[pick].id, node, &one, 1, c);
		free(m);
		store_pending_free(p, np);
		store_pending_summary_free(&sum);
		if (r != 0)
			break;
	}
	free(ev);
	free(w);
	return r;
}

/*
 * Evaluation id of projects + unready projects (named p00000, ...), the
 * first `projects` ready with the same `modules` modules each
 * (tests/test_m000.py, ...); 0 or the store's error.
 */
static inline int
helper_eval(struct store *st, const char *id, size_t projects, size_t unready,
    size_t modules)
{
	size_t n = projects + unready;
	struct store_project_new *p = xcalloc(n ? n : 1, sizeof(*p));
	char **names = xcalloc(n ? n : 1, sizeof(*names));
	char **paths = xcalloc(modules ? modules : 1, sizeof(*paths));
	json_t *settings = json_object();
	int r;

	for (size_t i = 0; i < n; i++) {
		names[i] = xasprintf("p%05zu", i);
		p[i] = (struct store_project_new){ .project_id = names[i], .source = names[i] };
	}
	r = store_eval_create(st, id, 5.0, "zip", "n1:1", settings, 0, "/u", p, n);
	json_decref(settings);
	for (size_t k = 0; k < modules; k++)
		paths[k] = xasprintf("tests/test_m%03zu.py", k);
	for (size_t i = 0; i < projects && r == 0; i++) {
		char digest[32];
		snprintf(digest, sizeof(digest), "/d%zu", i);
		r = helper_ready(st, id, (int)i, digest, (const char *const *)paths, modules);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	for (size_t k = 0; k < modules; k++)
		free(paths[k]);
	free(names);
	free(paths);
	free(p);
	return r;
}

#endif
