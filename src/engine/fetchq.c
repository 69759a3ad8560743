/*
 * fetchq.c - the fetch queue: projects of accepted evaluations waiting to be
 * unpacked from their upload or cloned, and the --fetchers threads that
 * fetch them.
 *
 * A fetcher unpacks or clones a project into <data>/projects, installs the
 * instructor's tests and the evaluation's set-up file, runs the set-up
 * commands once, lists the test modules (with an estimate of each and the
 * name pytest imports it under), packs the project as a blob named by its
 * digest, gives the blob to a peer, prepares the project's environment on
 * this node, and marks the project ready in the store.
 *
 * The queue (a list under fetch_lock) alone holds access tokens, in memory
 * only; a project is in the in-flight set from the moment a submission
 * reserves it until its fetch ended, so a coordinator round never queues it
 * a second time.
 *
 * Preparing is work idle nodes share: a fetcher with nothing queued here
 * asks the coordinators of other evaluations still fetching (POST
 * /task/fetch), and a coordinator lends a queued project that needs no
 * token (tokens never leave the node that holds them). What it lent stays
 * in its in-flight set until the project is no longer to fetch (the
 * borrower's "ready" came by replication), or is taken back when the
 * borrower is no longer alive or took longer than a clone may.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/peer.h"
#include "config/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "engine/blob.h"
#include "engine/engine_int.h"
#include "fetch/fetch_git.h"
#include "fetch/fetch_zip.h"
#include "fetch/layout.h"
#include "runner/env.h"
#include "runner/runner.h"
#include "runner/setupcmd.h"
#include "runner/setup.h"
#include "store/store.h"

struct fetch_item {
	struct fetch_item *next;
	char eval_id[37];
	int idx;
	char *kind;
	char *source;        /* what to clone or the ZIP prefix's project */
	char *url;           /* git: the URL as submitted (may hold credentials); only
	                      * the submission's own items have it, never a retry */
	char *prefix;        /* zip: member prefix */
	char *upload_digest; /* zip: the upload's blob */
	char *token;         /* git: in memory only */
	int has_token;       /* git: the submission came with credentials */
	int no_lend;         /* given back once: the coordinator prepares it itself */
	char lender[256];    /* borrowed: the coordinator that lent it, else "" */
	/* "tree": a clone the node with its token made, set up to run its commands */
	char commit[FETCH_GIT_COMMIT_LEN];
	char source_digest[SHA256_HEX_LEN];
	char tests_digest[SHA256_HEX_LEN];
};

#define FETCHQ_IDLE_WAIT 1.0      /* seconds an idle fetcher waits before asking others */
#define FETCHQ_LEASE_MAX 900.0    /* a lent project is taken back after (a clone: 300 s) */

/*
 * A project of ours another node prepares: its in-flight key stays taken
 * meanwhile, and the lease keeps the item, to queue again if it comes back.
 */
struct fetch_lease {
	struct fetch_item *item;
	char node[256];
	double since;           /* util_mono() */
};

static void
fetchq_item_free(struct fetch_item *it)
{
	if (it == NULL)
		return;
	if (it->token != NULL) {
		OPENSSL_cleanse(it->token, strlen(it->token));
		free(it->token);
	}
	if (it->url != NULL) {
		OPENSSL_cleanse(it->url, strlen(it->url));
		free(it->url);
	}
	free(it->kind);
	free(it->source);
	free(it->prefix);
	free(it->upload_digest);
	free(it);
}

/* The in-flight index of eval_id/idx, or -1; fetch_lock held. */
static long
fetchq_inflight_find(struct engine *eng, const char *eval_id, int idx)
{
	char key[48];

	snprintf(key, sizeof(key), "%s/%d", eval_id, idx);
	for (size_t i = 0; i < eng->ninflight; i++)
		if (strcmp(eng->inflight[i], key) == 0)
			return (long)i;
	return -1;
}

/* Take eval_id/idx into the in-flight set: 0, or -EEXIST, -ENOSPC; fetch_lock held. */
static int
fetchq_inflight_add(struct engine *eng, const char *eval_id, int idx)
{
	if (fetchq_inflight_find(eng, eval_id, idx) >= 0)
		return -EEXIST;
	if (eng->ninflight >= ENGINE_MAX_INFLIGHT)
		return -ENOSPC;
	snprintf(eng->inflight[eng->ninflight++], sizeof(eng->inflight[0]), "%s/%d", eval_id,
	    idx);
	return 0;
}

static void
fetchq_release(struct engine *eng, const char *eval_id, int idx)
{
	long i;

	pthread_mutex_lock(&eng->fetch_lock);
	if ((i = fetchq_inflight_find(eng, eval_id, idx)) >= 0) {
		memmove(eng->inflight[i], eng->inflight[eng->ninflight - 1],
		    sizeof(eng->inflight[0]));
		eng->ninflight--;
	}
	pthread_mutex_unlock(&eng->fetch_lock);
}

static void
fetchq_done(struct engine *eng, const struct fetch_item *it)
{
	fetchq_release(eng, it->eval_id, it->idx);
}

/*
 * Reserve the fetch of projects 0..n-1 of a new evaluation before it is
 * stored, so that no coordinator round can queue them first (without the
 * token, which only the submission's items carry).
 */
void
fetchq_reserve(struct engine *eng, const char *eval_id, size_t n)
{
	pthread_mutex_lock(&eng->fetch_lock);
	for (size_t i = 0; i < n && eng->ninflight < ENGINE_MAX_INFLIGHT; i++)
		snprintf(eng->inflight[eng->ninflight++], sizeof(eng->inflight[0]), "%s/%zu",
		    eval_id, i);
	pthread_mutex_unlock(&eng->fetch_lock);
}

void
fetchq_unreserve(struct engine *eng, const char *eval_id, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fetchq_release(eng, eval_id, (int)i);
}

/* Append to the queue and wake a fetcher; fetch_lock held. */
static void
fetchq_append_locked(struct engine *eng, struct fetch_item *it)
{
	it->next = NULL;
	if (eng->fetch_tail != NULL)
		eng->fetch_tail->next = it;
	else
		eng->fetch_head = it;
	eng->fetch_tail = it;
	pthread_cond_signal(&eng->fetch_cond);
}

/* Queue an item whose key fetchq_reserve took (never dropped, never deduplicated). */
static void
fetchq_push_reserved(struct engine *eng, struct fetch_item *it)
{
	pthread_mutex_lock(&eng->fetch_lock);
	fetchq_append_locked(eng, it);
	pthread_mutex_unlock(&eng->fetch_lock);
}

/*
 * Queue a project for fetching unless it is queued or being fetched already
 * (past ENGINE_MAX_INFLIGHT, the coordinator round queues it again later).
 */
static void
fetchq_enqueue(struct engine *eng, struct fetch_item *it)
{
	pthread_mutex_lock(&eng->fetch_lock);
	if (fetchq_inflight_add(eng, it->eval_id, it->idx) == 0) {
		fetchq_append_locked(eng, it);
		it = NULL;
	}
	pthread_mutex_unlock(&eng->fetch_lock);
	fetchq_item_free(it);
}

/* Take it out of the queue, after prev (NULL: it is the head); fetch_lock held. */
static void
fetchq_unlink_locked(struct engine *eng, struct fetch_item *prev, struct fetch_item *it)
{
	if (prev != NULL)
		prev->next = it->next;
	else
		eng->fetch_head = it->next;
	if (eng->fetch_tail == it)
		eng->fetch_tail = prev;
	it->next = NULL;
}

/* The next queued project, waiting up to wait seconds; NULL then, or when stopping. */
static struct fetch_item *
fetchq_dequeue(struct engine *eng, double wait)
{
	struct fetch_item *it = NULL;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)wait;
	ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&eng->fetch_lock);
	while (eng->fetch_head == NULL && !eng->stopping && !eng->borrow_more &&
	    pthread_cond_timedwait(&eng->fetch_cond, &eng->fetch_lock, &ts) == 0)
		;
	if (eng->fetch_head != NULL && !eng->stopping) {
		it = eng->fetch_head;
		fetchq_unlink_locked(eng, NULL, it);
	} else {
		eng->borrow_more = 0;   /* this fetcher asks now */
	}
	pthread_mutex_unlock(&eng->fetch_lock);
	return it;
}

/* ------------------------------------------------- lending and borrowing */

/* 1 when only the node holding the item's token may fetch it. */
static int
fetchq_needs_token(const struct fetch_item *it)
{
	return it->has_token || it->token != NULL ||
	    (it->url != NULL && strcmp(it->url, it->source) != 0);
}

/* A queued project of eval_id any node may prepare: no token, none in its URL. */
static int
fetchq_lendable(const struct fetch_item *it, const char *eval_id)
{
	return !fetchq_needs_token(it) && !it->no_lend && strcmp(it->eval_id, eval_id) == 0;
}

json_t *
fetchq_lend(struct engine *eng, const char *node, const char *eval_id)
{
	struct fetch_item *it, *prev = NULL;
	struct fetch_lease *l;
	char **alive = NULL;
	size_t nalive = 0;
	json_t *job = NULL;
	int member;

	engine_alive(eng, &alive, &nalive);
	member = engine_strv_has(alive, nalive, node) && strcmp(node, eng->address) != 0;
	engine_strv_free(alive, nalive);
	if (!member)            /* work goes to members only, as claims do */
		return json_pack("{s:n}", "job");
	pthread_mutex_lock(&eng->fetch_lock);
	for (it = eng->fetch_head; it != NULL && !fetchq_lendable(it, eval_id); it = it->next)
		prev = it;
	if (it != NULL && !eng->stopping) {
		fetchq_unlink_locked(eng, prev, it);
		eng->leases = xrealloc(eng->leases, (eng->nleases + 1) * sizeof(*eng->leases));
		l = &eng->leases[eng->nleases++];
		l->item = it;
		snprintf(l->node, sizeof(l->node), "%s", node);
		l->since = util_mono();
		job = json_pack("{s:s, s:i, s:s, s:s, s:s?, s:s?}", "eval_id", it->eval_id,
		    "idx", it->idx, "kind", it->kind, "source", it->source, "prefix", it->prefix,
		    "upload_digest", it->upload_digest);
		if (strcmp(it->kind, "tree") == 0) {
			json_object_set_new(job, "commit", json_string(it->commit));
			json_object_set_new(job, "source_digest", json_string(it->source_digest));
			json_object_set_new(job, "tests_digest", json_string(it->tests_digest));
		}
		log_info("engine: %s project %d lent to %s to prepare", it->eval_id, it->idx,
		    node);
	}
	pthread_mutex_unlock(&eng->fetch_lock);
	return json_pack("{s:o}", "job", job != NULL ? job : json_null());
}

/*
 * End lease k (fetch_lock held): its item queued again (its key stays
 * taken; NULL returned), or, with requeue 0, its key released and the item
 * returned for the caller to finish with (fetchq_finished) once unlocked.
 */
static struct fetch_item *
fetchq_end_lease_locked(struct engine *eng, size_t k, int requeue, int no_lend)
{
	struct fetch_item *it = eng->leases[k].item;
	long i;

	eng->leases[k] = eng->leases[--eng->nleases];
	if (requeue) {
		it->no_lend |= no_lend;
		fetchq_append_locked(eng, it);
		return NULL;
	}
	if ((i = fetchq_inflight_find(eng, it->eval_id, it->idx)) >= 0) {
		memmove(eng->inflight[i], eng->inflight[eng->ninflight - 1],
		    sizeof(eng->inflight[0]));
		eng->ninflight--;
	}
	return it;
}

/*
 * An item is done with: a tree this node packed (fetchq_hand_on) is let go,
 * the budget's hold and the blob, which no evaluation names. Then freed.
 */
static void
fetchq_finished(struct engine *eng, struct fetch_item *it)
{
	if (it != NULL && strcmp(it->kind, "tree") == 0 && it->lender[0] == '\0' &&
	    it->upload_digest != NULL) {
		char *path = blob_path(eng->blobs_dir, it->upload_digest);

		gc_budget_unhold(eng, it->upload_digest);
		unlink(path);
		free(path);
	}
	fetchq_item_free(it);
}

void
fetchq_give_back(struct engine *eng, const char *node, const char *eval_id, int idx)
{
	pthread_mutex_lock(&eng->fetch_lock);
	for (size_t k = 0; k < eng->nleases; k++) {
		const struct fetch_lease *l = &eng->leases[k];
		if (strcmp(l->node, node) == 0 && strcmp(l->item->eval_id, eval_id) == 0 &&
		    l->item->idx == idx) {
			log_info("engine: %s project %d: %s gave it back", eval_id, idx, node);
			(void)fetchq_end_lease_locked(eng, k, 1, 1);
			break;
		}
	}
	pthread_mutex_unlock(&eng->fetch_lock);
}

void
fetchq_check_leases(struct engine *eng, char *const *alive, size_t nalive)
{
	struct { char eval_id[37]; int idx; double since; int gone; } *copy;
	size_t n;
	double now = util_mono();

	pthread_mutex_lock(&eng->fetch_lock);
	n = eng->nleases;
	copy = xcalloc(n ? n : 1, sizeof(*copy));
	for (size_t k = 0; k < n; k++) {
		snprintf(copy[k].eval_id, sizeof(copy[k].eval_id), "%s",
		    eng->leases[k].item->eval_id);
		copy[k].idx = eng->leases[k].item->idx;
		copy[k].since = eng->leases[k].since;
		copy[k].gone = !engine_strv_has(alive, nalive, eng->leases[k].node);
	}
	pthread_mutex_unlock(&eng->fetch_lock);
	for (size_t i = 0; i < n; i++) {
		/* the store outside the lock; the lease found again by its start */
		int fetching = store_project_fetching(eng->st, copy[i].eval_id, copy[i].idx);
		int late = now - copy[i].since >= FETCHQ_LEASE_MAX;
		struct fetch_item *done = NULL;

		if (fetching < 0 || (fetching && !copy[i].gone && !late))
			continue;       /* a store that cannot say: ask again next round */
		pthread_mutex_lock(&eng->fetch_lock);
		for (size_t k = 0; k < eng->nleases; k++) {
			const struct fetch_lease *l = &eng->leases[k];
			if (l->since != copy[i].since || l->item->idx != copy[i].idx ||
			    strcmp(l->item->eval_id, copy[i].eval_id) != 0)
				continue;
			if (fetching)
				log_warn("engine: %s project %d: taken back from %s (%s)",
				    copy[i].eval_id, copy[i].idx, l->node, copy[i].gone ?
				    "no longer alive" : "too long");
			/* still to fetch: queued again here (not lent again when it was slow) */
			done = fetchq_end_lease_locked(eng, k, fetching, late);
			break;
		}
		pthread_mutex_unlock(&eng->fetch_lock);
		fetchq_finished(eng, done);
	}
	free(copy);
}

/*
 * A project this node was lent and does not prepare (it failed here, this
 * node does not know it yet, or it is stopping): back to its lender, which
 * prepares it itself. A lost message leaves it to the lender's lease check.
 */
static void
fetchq_return(struct engine *eng, const char *lender, const char *eval_id, int idx)
{
	json_t *body = json_pack("{s:s, s:s, s:i}", "node", eng->address, "eval_id", eval_id,
	    "idx", idx), *answer = NULL;
	long status = 0;

	if (peer_request(lender, "POST", "/task/fetch/back", body, 5.0, &answer, &status) < 0 ||
	    status != 200)
		log_warn("engine: %s project %d: cannot give it back to %s (%ld)", eval_id, idx,
		    lender, status);
	json_decref(body);
	json_decref(answer);
}

/* 1 when v is the string s. */
static int
fetchq_is(const json_t *v, const char *s)
{
	return json_string_value(v) != NULL && strcmp(json_string_value(v), s) == 0;
}

/* 1 when v is a string of lowercase hex digits, min to max of them. */
static int
fetchq_hex(const json_t *v, size_t min, size_t max)
{
	const char *p = json_string_value(v);
	size_t n = p != NULL ? strlen(p) : 0;

	if (p == NULL || n < min || n > max)
		return 0;
	return strspn(p, "0123456789abcdef") == n;
}

/*
 * The project a lender names in its answer (POST /task/fetch's "job"), as
 * this node's own store has it, taken into the in-flight set: what to fetch
 * comes from the replicated row, not from the answer. NULL when the answer
 * names none; a project this node cannot take (unknown here yet, needing a
 * token, being fetched here) goes back to the lender.
 */
static struct fetch_item *
fetchq_take_lent(struct engine *eng, const json_t *job, const char *lender)
{
	const char *eval_id = json_string_value(json_object_get(job, "eval_id"));
	json_t *jidx = json_object_get(job, "idx");
	struct store_fetch_job *jobs = NULL;
	struct fetch_item *it = NULL;
	struct store_id id;
	size_t n = 0;
	int idx, taken = 0, tree;

	if (eval_id == NULL || !util_is_uuid(eval_id) || !json_is_integer(jidx) ||
	    json_integer_value(jidx) < 0 || json_integer_value(jidx) > INT_MAX)
		return NULL;
	idx = (int)json_integer_value(jidx);
	/*
	 * A tree is a clone its lender made with the token, packed under its
	 * digest (checked when fetched); what else it says is checked here.
	 */
	tree = json_is_string(json_object_get(job, "kind")) &&
	    strcmp(json_string_value(json_object_get(job, "kind")), "tree") == 0;
	if (tree && (!blob_digest_valid(json_string_value(json_object_get(job, "upload_digest"))) ||
	    !fetchq_hex(json_object_get(job, "commit"), 0, FETCH_GIT_COMMIT_LEN - 1) ||
	    !fetchq_hex(json_object_get(job, "source_digest"), 0, SHA256_HEX_LEN - 1) ||
	    (!fetchq_hex(json_object_get(job, "tests_digest"), 0, SHA256_HEX_LEN - 1) &&
	    !fetchq_is(json_object_get(job, "tests_digest"), "unknown"))))
		tree = -1;      /* not one to take */
	snprintf(id.id, sizeof(id.id), "%s", eval_id);
	if (tree < 0 || store_fetch_jobs(eng->st, &id, 1, &jobs, &n) < 0)
		n = 0;
	for (size_t k = 0; k < n && it == NULL; k++) {
		if (jobs[k].idx != idx || (jobs[k].has_token && !tree))
			continue;
		it = xcalloc(1, sizeof(*it));
		snprintf(it->eval_id, sizeof(it->eval_id), "%s", eval_id);
		it->idx = idx;
		it->kind = xstrdup(tree ? "tree" : jobs[k].kind);
		it->source = xstrdup(jobs[k].source);
		it->prefix = jobs[k].prefix ? xstrdup(jobs[k].prefix) : NULL;
		it->upload_digest = tree ? xstrdup(json_string_value(json_object_get(job,
		    "upload_digest"))) : jobs[k].upload_digest && jobs[k].upload_digest[0] ?
		    xstrdup(jobs[k].upload_digest) : NULL;
		if (tree) {
			snprintf(it->commit, sizeof(it->commit), "%s",
			    json_string_value(json_object_get(job, "commit")));
			snprintf(it->source_digest, sizeof(it->source_digest), "%s",
			    json_string_value(json_object_get(job, "source_digest")));
			snprintf(it->tests_digest, sizeof(it->tests_digest), "%s",
			    json_string_value(json_object_get(job, "tests_digest")));
		}
		snprintf(it->lender, sizeof(it->lender), "%s", lender);
	}
	store_fetch_jobs_free(jobs, n);
	if (it != NULL) {
		pthread_mutex_lock(&eng->fetch_lock);
		taken = fetchq_inflight_add(eng, eval_id, idx) == 0;
		pthread_mutex_unlock(&eng->fetch_lock);
	}
	if (!taken) {
		log_info("engine: %s project %d: cannot take it from %s now; giving it back",
		    eval_id, idx, lender);
		fetchq_item_free(it);
		fetchq_return(eng, lender, eval_id, idx);
		return NULL;
	}
	log_info("engine: %s project %d: preparing it for %s", eval_id, idx, lender);
	return it;
}

/*
 * Nothing is queued here: a project the coordinator of another evaluation
 * still fetching lends (taken into this node's in-flight set), or NULL.
 * One fetcher asks at a time, each such coordinator once per evaluation.
 */
static struct fetch_item *
fetchq_borrow(struct engine *eng)
{
	struct store_work *work = NULL;
	struct fetch_item *it = NULL;
	char **alive = NULL;
	size_t nwork = 0, nalive = 0;

	pthread_mutex_lock(&eng->fetch_lock);
	if (eng->borrowing || eng->stopping || !engine_warm(eng)) {
		pthread_mutex_unlock(&eng->fetch_lock);
		return NULL;
	}
	eng->borrowing = 1;
	pthread_mutex_unlock(&eng->fetch_lock);
	engine_alive(eng, &alive, &nalive);
	if (store_work_list(eng->st, &work, &nwork) < 0)
		nwork = 0;
	for (size_t i = 0; i < nwork && it == NULL && !engine_is_stopping(eng); i++) {
		const char *coord = coord_of(&work[i], alive, nalive);
		json_t *answer = NULL, *body;
		long status = 0;

		if (work[i].fetching <= 0 || work[i].cancelled || coord == NULL ||
		    strcmp(coord, eng->address) == 0)
			continue;
		body = json_pack("{s:s, s:s}", "node", eng->address, "eval_id", work[i].id);
		if (peer_request(coord, "POST", "/task/fetch", body, 5.0, &answer, &status) == 0 &&
		    status == 200 && json_is_object(json_object_get(answer, "job")))
			it = fetchq_take_lent(eng, json_object_get(answer, "job"), coord);
		json_decref(body);
		json_decref(answer);
	}
	free(work);
	engine_strv_free(alive, nalive);
	pthread_mutex_lock(&eng->fetch_lock);
	eng->borrowing = 0;
	if (it != NULL) {
		/* there may be more: another idle fetcher asks at once */
		eng->borrow_more = 1;
		pthread_cond_signal(&eng->fetch_cond);
	}
	pthread_mutex_unlock(&eng->fetch_lock);
	return it;
}

static json_t *
fetchq_strv_json(char **v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/*
 * The folder to take tests from in an unpacked instructor archive: the
 * archive's root, or its only folder when that is all it holds and the root
 * has no tests/ (malloc'ed).
 */
static char *
fetchq_single_folder(const char *root)
{
	DIR *d = opendir(root);
	struct dirent *de;
	char *only = NULL, *tests = xasprintf("%s/tests", root);
	int n = 0;
	struct stat st;

	if (d == NULL || stat(tests, &st) == 0) {
		if (d != NULL)
			closedir(d);
		free(tests);
		return xstrdup(root);
	}
	free(tests);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		free(only);
		only = xasprintf("%s/%s", root, de->d_name);
	}
	closedir(d);
	if (n == 1 && only != NULL && lstat(only, &st) == 0 && S_ISDIR(st.st_mode))
		return only;
	free(only);
	return xstrdup(root);
}

/*
 * What makes two runs of a project the same run, so that one may take the
 * other's results (reuse): the submitted content before anything of the
 * evaluation's was added (source), the content of the instructor's tests
 * ("" without), the packages it runs against (pins), the interpreter and
 * pytest, and the evaluation's settings but for reuse itself and what only
 * chose the content (the deadline, where the instructor's tests came from).
 */
static void
fetchq_reuse_key(const char *source, json_t *settings, const char *tests_digest,
    const char *pins, char key[SHA256_HEX_LEN])
{
	json_t *same = json_deep_copy(settings);
	char *canon, *text;

	json_object_del(same, "reuse");
	json_object_del(same, "deadline");
	json_object_del(same, "instructor_tests");
	json_object_del(same, "instructor_tests_archive");
	canon = json_dumps(same, JSON_COMPACT | JSON_SORT_KEYS);
	text = xasprintf("meshtest-reuse-1\n%s\n%s\n%s\n%s\n%s", source, tests_digest,
	    pins != NULL ? pins : "", runner_versions(), canon != NULL ? canon : "");
	util_sha256_hex(text, strlen(text), key);
	free(text);
	free(canon);
	json_decref(same);
}

/*
 * The project cannot be prepared: its error, recorded for every node, when
 * this node coordinates it. A borrower records nothing (what failed may be
 * its own: its network, its --git-hosts) and gives the project back; the
 * coordinator then prepares it itself and records what it finds.
 */
static void
fetchq_fail(struct engine *eng, const struct fetch_item *it, const char *err, json_t *wj)
{
	if (it->lender[0] != '\0') {
		log_warn("engine: %s project %d: not prepared here (%s); giving it back to %s",
		    it->eval_id, it->idx, err, it->lender);
		return;
	}
	/* a project ready meanwhile (prepared twice, by a node it was lent to) stays ready */
	store_project_fetch_failed(eng->st, it->eval_id, it->idx, err, wj, util_now());
	engine_changed(eng, it->eval_id);
}

/*
 * The rest of preparing a clone that needed a token is work any node may do
 * when it has set-up commands: the set-up tree (clone, instructor's tests,
 * set-up file) goes into a blob and back into the queue as a "tree" item,
 * which needs no token and keeps the project's in-flight key. 1 when it was
 * handed on so, 0 when this node goes on itself.
 */
static int
fetchq_hand_on(struct engine *eng, const struct fetch_item *it, const char *tmp,
    const char *commit, const char *source, const char *tests_digest)
{
	char digest[SHA256_HEX_LEN], err[256];
	struct fetch_item *tree;
	char **alive = NULL;
	size_t nalive = 0;

	if (strcmp(it->kind, "git") != 0 || !fetchq_needs_token(it) || it->no_lend ||
	    it->lender[0] != '\0' || setup_has_commands(tmp) != 1)
		return 0;
	engine_alive(eng, &alive, &nalive);
	engine_strv_free(alive, nalive);
	if (nalive < 2 || blob_from_dir(eng->blobs_dir, tmp, digest, err, sizeof(err)) < 0)
		return 0;
	/* no evaluation names it: held from the budget until the tree is done with */
	gc_budget_hold(eng, digest);
	tree = xcalloc(1, sizeof(*tree));
	snprintf(tree->eval_id, sizeof(tree->eval_id), "%s", it->eval_id);
	tree->idx = it->idx;
	tree->kind = xstrdup("tree");
	tree->source = xstrdup(it->source);
	tree->upload_digest = xstrdup(digest);
	snprintf(tree->commit, sizeof(tree->commit), "%s", commit);
	snprintf(tree->source_digest, sizeof(tree->source_digest), "%s", source);
	snprintf(tree->tests_digest, sizeof(tree->tests_digest), "%s", tests_digest);
	fetchq_push_reserved(eng, tree);
	log_info("engine: %s project %d cloned; its set-up may run on any node (tree %.12s)",
	    it->eval_id, it->idx, digest);
	return 1;
}

/* A tree item's files (fetchq_hand_on) into tmp, from its lender or any peer. */
static int
fetchq_unpack_tree(struct engine *eng, const struct fetch_item *it, const char *tmp,
    char *err, size_t errlen)
{
	int r = engine_get_blob(eng, it->upload_digest, it->lender[0] ? it->lender : NULL, err,
	    errlen);

	if (r == 0)
		r = blob_unpack(eng->blobs_dir, it->upload_digest, tmp, &eng->limits, err, errlen);
	if (it->lender[0] != '\0') {
		/* a borrower's copy: its lender keeps the blob until the project is done */
		char *path = blob_path(eng->blobs_dir, it->upload_digest);

		unlink(path);
		free(path);
	}
	return r;
}

/*
 * Fetch one project (unpack it from the upload's blob, or clone it), pack it
 * as a blob named by its digest, give the blob to a peer, and record the
 * project as ready (or its error) in the store: 1 when it is ready, 2 when
 * the rest was handed on (fetchq_hand_on: the in-flight key goes with it),
 * else 0.
 */
static int
fetchq_one(struct engine *eng, struct fetch_item *it)
{
	char err[1024] = "", rnd[17], digest[SHA256_HEX_LEN], commit[FETCH_GIT_COMMIT_LEN] = "";
	char source[SHA256_HEX_LEN] = "", reuse_key[SHA256_HEX_LEN];
	char tests_digest[SHA256_HEX_LEN] = "", *pins = NULL;
	struct store_fetched f;
	char *tmp, *final = NULL, *zip = NULL;
	char **warnings = NULL, **modules = NULL, **inames = NULL;
	struct store_module_info *infos = NULL;
	size_t nwarnings = 0, nmodules = 0;
	json_t *wj = NULL, *settings = NULL;
	int r, held = 0, ready = 0;

	/*
	 * A coordinator round may queue a project again from a snapshot taken
	 * just before an earlier fetch of it finished: fetch only what is still
	 * to fetch, so a second (token-less) fetch never undoes the first.
	 */
	if (store_project_fetching(eng->st, it->eval_id, it->idx) != 1)
		return 0;
	settings = store_eval_settings(eng->st, it->eval_id);
	util_random_hex(rnd, 8);
	tmp = xasprintf("%s/.fetch-%s", eng->projects_dir, rnd);
	if (strcmp(it->kind, "tree") == 0) {
		/* cloned and set up by the node with the token: its commands run here */
		wj = json_array();
		if ((r = fetchq_unpack_tree(eng, it, tmp, err, sizeof(err))) < 0) {
			fetchq_fail(eng, it, err, wj);
			goto out;
		}
		snprintf(commit, sizeof(commit), "%s", it->commit);
		snprintf(source, sizeof(source), "%s", it->source_digest);
		snprintf(tests_digest, sizeof(tests_digest), "%s", it->tests_digest);
		goto set_up;
	}
	if (strcmp(it->kind, "zip") == 0) {
		r = it->upload_digest != NULL && blob_digest_valid(it->upload_digest) ?
		    engine_get_blob(eng, it->upload_digest, NULL, err, sizeof(err)) : -ENOENT;
		if (r == 0) {
			zip = blob_path(eng->blobs_dir, it->upload_digest);
			r = fetch_zip_extract(zip, it->prefix ? it->prefix : "", tmp, &eng->limits,
			    &warnings, &nwarnings, err, sizeof(err));
		} else if (it->upload_digest != NULL) {
			/*
			 * The upload is on another node that this one cannot reach now
			 * (a partition, a restart): not the project's fault, and not
			 * final. The next coordinator round tries again.
			 */
			log_warn("engine: %s project %d waits for its upload: %s", it->eval_id,
			    it->idx, err);
			goto out;
		} else {
			snprintf(err, sizeof(err), "the uploaded archive is lost");
		}
	} else if (it->has_token && it->token == NULL && it->url == NULL) {
		snprintf(err, sizeof(err), "the node that accepted this repository stopped before"
		    " cloning it, and access tokens are kept in memory only: submit this"
		    " project again");
		r = -EAGAIN;
	} else {
		struct fetch_git_opts o;
		memset(&o, 0, sizeof(o));
		o.token = it->token;
		o.timeout = 300;
		o.max_bytes = 1ULL << 30;
		o.allow_file_urls = eng->cfg->allow_file_urls != 0;
		o.allowed_hosts = (const char *const *)eng->git_hosts;
		{
			/* user:password@ in the URL travels like a token, never in argv. */
			char *user = NULL, *pass = NULL;
			char *clean = fetch_git_split_credentials(it->url ? it->url : it->source, &user,
			    &pass);
			if (pass != NULL || user != NULL) {
				o.username = pass != NULL ? user : NULL;
				o.token = pass != NULL ? pass : user;
			}
			double before = 0;
			const char *deadline = json_string_value(json_object_get(settings, "deadline"));
			if (deadline != NULL && util_parse_time(deadline, &before) < 0)
				before = 0;
			r = fetch_git_clone_at(clean, tmp, &o, before, commit, err, sizeof(err));
			if (user != NULL)
				OPENSSL_cleanse(user, strlen(user));
			if (pass != NULL)
				OPENSSL_cleanse(pass, strlen(pass));
			free(user);
			free(pass);
			free(clean);
		}
	}
	wj = fetchq_strv_json(warnings, nwarnings);
	if (r < 0) {
		log_warn("engine: %s project %d: %s", it->eval_id, it->idx, err);
		fetchq_fail(eng, it, err[0] ? err : "cannot fetch the project", wj);
		goto out;
	}
	/* What was submitted, before anything of the evaluation's is added: for reuse. */
	if (blob_tree_digest(tmp, source) < 0)
		source[0] = '\0';
	/* The evaluation's tests replace the project's; its set-up rides in the blob. */
	if (json_string_value(json_object_get(settings, "instructor_tests_archive")) != NULL) {
		const char *td = json_string_value(json_object_get(settings,
		    "instructor_tests_archive"));
		char *itests = xasprintf("%s.tests", tmp), *zip_t = NULL, *src = NULL;
		char **tw = NULL;
		size_t ntw = 0;

		r = blob_digest_valid(td) ? engine_get_blob(eng, td, NULL, err, sizeof(err)) :
		    -EINVAL;
		if (r == 0) {
			zip_t = blob_path(eng->blobs_dir, td);
			r = fetch_zip_extract(zip_t, "", itests, &eng->limits, &tw, &ntw, err,
			    sizeof(err));
			layout_strv_free(tw, ntw);
		}
		if (r == 0) {
			/* A ZIP of tests/, of the test files, or of one folder holding either. */
			src = fetchq_single_folder(itests);
			if (blob_tree_digest(src, tests_digest) < 0)
				snprintf(tests_digest, sizeof(tests_digest), "unknown");
			r = setup_install_tests(tmp, src, err, sizeof(err));
		} else {
			char *m = xasprintf("cannot unpack the instructor's tests: %s", err);
			snprintf(err, sizeof(err), "%s", m);
			free(m);
		}
		util_rm_rf(itests);
		free(itests);
		free(zip_t);
		free(src);
		if (r < 0) {
			fetchq_fail(eng, it, err, wj);
			goto out;
		}
	} else if (json_string_value(json_object_get(settings, "instructor_tests")) != NULL) {
		struct fetch_git_opts o;
		char *itests = xasprintf("%s.tests", tmp);
		fetch_git_opts_default(&o);
		o.allow_file_urls = eng->cfg->allow_file_urls != 0;
		o.allowed_hosts = (const char *const *)eng->git_hosts;
		r = fetch_git_clone(json_string_value(json_object_get(settings, "instructor_tests")),
		    itests, &o, err, sizeof(err));
		if (r < 0) {
			char *m = xasprintf("cannot fetch the instructor's tests: %s", err);
			snprintf(err, sizeof(err), "%s", m);
			free(m);
		} else {
			if (blob_tree_digest(itests, tests_digest) < 0)
				snprintf(tests_digest, sizeof(tests_digest), "unknown");
			r = setup_install_tests(tmp, itests, err, sizeof(err));
		}
		util_rm_rf(itests);
		free(itests);
		if (r < 0) {
			fetchq_fail(eng, it, err, wj);
			goto out;
		}
	}
	if (setup_write_project(tmp, settings) < 0) {
		fetchq_fail(eng, it, "cannot write the evaluation's set-up into the project",
		    wj);
		goto out;
	}
	if (fetchq_hand_on(eng, it, tmp, commit, source, tests_digest)) {
		ready = 2;
		goto out;
	}
set_up:
	/* Set-up commands run once, here; what they make rides in the blob. */
	if ((r = setupcmd_run(tmp, err, sizeof(err))) < 0) {
		if (r == -ECANCELED)   /* shutting down: fetched again after a restart */
			goto out;
		log_warn("engine: %s project %d: %s", it->eval_id, it->idx, err);
		fetchq_fail(eng, it, err, wj);
		goto out;
	}
	/*
	 * trust "instructor": the student's conftest.py files do not come along
	 * (nor any the set-up commands made)
	 */
	if (setup_project_trusted(tmp)) {
		size_t removed = 0;
		if (setup_set_aside_student_config(tmp, &removed) < 0) {
			fetchq_fail(eng, it, "cannot set aside the project's conftest.py files",
			    wj);
			goto out;
		}
		if (removed > 0)
			json_array_append_new(wj, json_sprintf("trust instructor: set aside %zu"
			    " conftest.py file%s outside tests/", removed, removed == 1 ? "" : "s"));
	}
	r = layout_list_modules(tmp, &modules, &nmodules);
	if (r < 0 || nmodules == 0) {
		fetchq_fail(eng, it, r < 0 ? "cannot list the project's test modules" :
		    "no test modules found: a project needs a tests/ folder with test_*.py or"
		    " *_test.py files", wj);
		goto out;
	}
	/* The packages every node runs it against: resolved here, once; they ride in the blob. */
	{
		json_t *rw = NULL;

		r = env_resolve(tmp, &pins, &rw, err, sizeof(err));
		json_array_extend(wj, rw);
		json_decref(rw);
		if (r == 0 && (r = setup_write_packages(tmp, pins)) < 0)
			snprintf(err, sizeof(err), "cannot record the project's packages: %s",
			    strerror(-r));
		if (r == -ECANCELED)
			goto out;
		if (r < 0) {
			log_warn("engine: %s project %d: %s", it->eval_id, it->idx, err);
			fetchq_fail(eng, it, err, wj);
			goto out;
		}
	}
	if (blob_from_dir(eng->blobs_dir, tmp, digest, err, sizeof(err)) < 0) {
		fetchq_fail(eng, it, err, wj);
		goto out;
	}
	/* no evaluation names the files until the project is ready: the disk budget keeps them */
	gc_budget_hold(eng, digest);
	held = 1;
	final = engine_project_dir(eng, digest);
	if (rename(tmp, final) < 0)
		util_rm_rf(tmp);   /* the same files are there already */
	engine_share_blob(eng, digest);
	infos = xcalloc(nmodules, sizeof(*infos));
	inames = xcalloc(nmodules, sizeof(*inames));
	for (size_t i = 0; i < nmodules; i++) {
		infos[i].path = modules[i];
		layout_module_info(final, modules[i], &infos[i].est, &inames[i]);
		infos[i].iname = inames[i];
	}
	fetchq_reuse_key(source, settings, tests_digest, pins, reuse_key);
	f.digest = digest;
	f.commit = commit[0] ? commit : NULL;
	f.reuse_key = source[0] ? reuse_key : NULL;
	f.reuse = json_is_true(json_object_get(settings, "reuse"));
	f.modules = infos;
	f.nmodules = nmodules;
	f.warnings = wj;
	f.now = util_now();
	if (store_project_ready(eng->st, it->eval_id, it->idx, &f) == 1) {
		log_info("engine: %s project %d ready: %zu modules (%zu reused), %zu warnings,"
		    " blob %.12s", it->eval_id, it->idx, nmodules, f.reused,
		    json_array_size(wj), digest);
		engine_wake_slots(eng);
		engine_news(eng, it->eval_id);
		ready = 1;
	}
out:
	if (held)
		gc_budget_unhold(eng, digest);
	util_rm_rf(tmp);
	free(pins);
	json_decref(wj);
	json_decref(settings);
	for (size_t i = 0; inames != NULL && i < nmodules; i++)
		free(inames[i]);
	free(inames);
	free(infos);
	layout_strv_free(warnings, nwarnings);
	layout_strv_free(modules, nmodules);
	free(tmp);
	free(final);
	free(zip);
	return ready;
}

static void *
fetchq_main(void *arg)
{
	struct engine *eng = arg;
	struct fetch_item *it;
	double wait = FETCHQ_IDLE_WAIT;

	util_thread_name("fetch");
	while (!engine_is_stopping(eng)) {
		int borrowed = 0;

		/* after a project lent to us, ask again at once: there may be more */
		if ((it = fetchq_dequeue(eng, wait)) == NULL) {
			it = fetchq_borrow(eng);
			borrowed = it != NULL;
		}
		wait = borrowed ? 0 : FETCHQ_IDLE_WAIT;
		if (it == NULL)
			continue;
		switch (fetchq_one(eng, it)) {
		case 1:
			metrics_add(METRICS_PROJECTS_PREPARED, 1);
			if (borrowed)
				metrics_add(METRICS_PROJECTS_BORROWED, 1);
			break;
		case 2:         /* handed on: the queue's tree item holds the key now */
			fetchq_item_free(it);
			continue;
		default:
			if (borrowed)
				fetchq_return(eng, it->lender, it->eval_id, it->idx);
			break;
		}
		fetchq_done(eng, it);
		fetchq_finished(eng, it);
	}
	return NULL;
}

void
fetchq_push_new(struct engine *eng, const char *eval_id, int idx, const char *kind,
    const char *source, const char *prefix, const char *upload_digest, const char *url,
    const char *token, int has_token)
{
	struct fetch_item *it = xcalloc(1, sizeof(*it));

	snprintf(it->eval_id, sizeof(it->eval_id), "%s", eval_id);
	it->idx = idx;
	it->kind = xstrdup(kind);
	it->source = xstrdup(source);
	it->prefix = prefix ? xstrdup(prefix) : NULL;
	it->upload_digest = upload_digest ? xstrdup(upload_digest) : NULL;
	it->url = url ? xstrdup(url) : NULL;
	it->token = token ? xstrdup(token) : NULL;
	it->has_token = has_token;
	fetchq_push_reserved(eng, it);
}

void
fetchq_enqueue_job(struct engine *eng, const struct store_fetch_job *job)
{
	struct fetch_item *it = xcalloc(1, sizeof(*it));

	snprintf(it->eval_id, sizeof(it->eval_id), "%s", job->eval_id);
	it->idx = job->idx;
	it->kind = xstrdup(job->kind);
	it->source = xstrdup(job->source);
	it->prefix = xstrdup(job->prefix);
	it->upload_digest = job->upload_digest[0] ? xstrdup(job->upload_digest) : NULL;
	it->has_token = job->has_token;
	fetchq_enqueue(eng, it);
}

int
fetchq_start(struct engine *eng)
{
	size_t n = eng->cfg->fetchers > 0 ? (size_t)eng->cfg->fetchers : 1;

	eng->fetchers = xcalloc(n, sizeof(*eng->fetchers));
	for (eng->nfetchers = 0; eng->nfetchers < n; eng->nfetchers++)
		if (pthread_create(&eng->fetchers[eng->nfetchers], NULL, fetchq_main, eng) != 0)
			return -EAGAIN;
	return 0;
}

void
fetchq_join(struct engine *eng)
{
	for (size_t i = 0; i < eng->nfetchers; i++)
		pthread_join(eng->fetchers[i], NULL);
	eng->nfetchers = 0;
	free(eng->fetchers);
	eng->fetchers = NULL;
}

void
fetchq_free(struct engine *eng)
{
	struct fetch_item *it;

	while ((it = eng->fetch_head) != NULL) {
		eng->fetch_head = it->next;
		fetchq_item_free(it);
	}
	eng->fetch_tail = NULL;
	free(eng->inflight);
	eng->inflight = NULL;
	for (size_t k = 0; k < eng->nleases; k++)
		fetchq_item_free(eng->leases[k].item);
	free(eng->leases);
	eng->leases = NULL;
	eng->nleases = 0;
}
