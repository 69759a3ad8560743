/*
 * replica.c - pushes of the change log and anti-entropy by buckets (see
 * replica.h).
 *
 * Threads: one replica thread does both jobs; replica_wake only signals it.
 * The counters are process-wide atomics (core/metrics.h), read by the API.
 * Network calls never run under the lock.
 */
#include "cluster/replica.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/peer.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "http/http_client.h"
#include "store/store.h"

#define REPLICA_PUSH_DELAY 0.15   /* seconds: gather changes before a push */
#define REPLICA_PUSH_BATCH 512    /* changes per round of pushes */
#define REPLICA_AE_PERIOD 2.0     /* seconds between anti-entropy rounds */
#define REPLICA_TIMEOUT 5.0       /* seconds for one request */
#define REPLICA_MAX_PULLS 32      /* evaluations compared per peer and round */
#define REPLICA_PAGE_BUCKETS 8    /* buckets per pulled page */
#define REPLICA_FANOUT 8          /* peers a push goes to at once */

struct replica {
	struct store *st;
	char *self;
	replica_peers_fn peers;
	void *peers_ctx;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int woken;
	int hurry;      /* push without REPLICA_PUSH_DELAY */
	int stopping;
	int sync_now;
	pthread_t thread;
};

/* The counters live in the metrics registry, which GET /metrics renders too. */
void
replica_counters(struct replica_counters *out)
{
	out->pushed_docs = metrics_get(METRICS_REPL_PUSHED_DOCS);
	out->pushed_bytes = metrics_get(METRICS_REPL_PUSHED_BYTES);
	out->received_docs = metrics_get(METRICS_REPL_RECEIVED_DOCS);
	out->received_bytes = metrics_get(METRICS_REPL_RECEIVED_BYTES);
	out->pulled_docs = metrics_get(METRICS_REPL_PULLED_DOCS);
	out->pulled_bytes = metrics_get(METRICS_REPL_PULLED_BYTES);
	out->served_docs = metrics_get(METRICS_REPL_SERVED_DOCS);
	out->served_bytes = metrics_get(METRICS_REPL_SERVED_BYTES);
}

void
replica_note_received(size_t len)
{
	metrics_add(METRICS_REPL_RECEIVED_DOCS, 1);
	metrics_add(METRICS_REPL_RECEIVED_BYTES, len);
}

void
replica_note_served(size_t len)
{
	metrics_add(METRICS_REPL_SERVED_DOCS, 1);
	metrics_add(METRICS_REPL_SERVED_BYTES, len);
}

static void
replica_signal(struct replica *r, int hurry)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->woken = 1;
	r->hurry |= hurry;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void
replica_wake(struct replica *r)
{
	replica_signal(r, 0);
}

void
replica_hurry(struct replica *r)
{
	replica_signal(r, 1);
}

void
replica_sync_now(struct replica *r)
{
	pthread_mutex_lock(&r->lock);
	r->sync_now = 1;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void
free_peers(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ------------------------------------------------------------------ push */

static int
replica_change_cmp(const void *a, const void *b)
{
	const struct store_sync_change *x = a, *y = b;
	int k = strcmp(x->eval_id, y->eval_id);

	if (k != 0)
		return k;
	if (x->key.project_idx != y->key.project_idx)
		return x->key.project_idx < y->key.project_idx ? -1 : 1;
	k = strcmp(x->key.path, y->key.path);
	if (k != 0)
		return k;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* POST a serialized document to one peer, counted as pushed when it got there. */
static int
replica_post_text(const char *peer, const char *path, const char *text, size_t len,
    double timeout, long *status)
{
	struct http_response resp;
	int r = peer_request_raw(peer, "POST", path, text, len, "application/json", timeout,
	    1 << 16, &resp);

	*status = r == 0 ? resp.status : 0;
	if (r == 0) {
		metrics_add(METRICS_REPL_PUSHED_DOCS, 1);
		metrics_add(METRICS_REPL_PUSHED_BYTES, len);
	}
	http_response_free(&resp);
	return r;
}

int
replica_post(const char *node, const char *eval_id, json_t *doc, double timeout, long *status)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	char *path = xasprintf("/evaluation/sync_result/%s", eval_id);
	int r = -ENOMEM;

	*status = 0;
	if (text != NULL)
		r = replica_post_text(node, path, text, strlen(text), timeout, status);
	free(path);
	free(text);
	return r;
}

/* One of the threads of a push: every REPLICA_FANOUT-th peer from its first. */
struct replica_sender {
	const char *eval_id, *path, *text;
	size_t len;
	char **peers;
	size_t npeers, first;
	pthread_t thread;
};

static void *
replica_sender_main(void *arg)
{
	struct replica_sender *s = arg;

	if (s->first > 0)       /* the first sender is the replica's own thread */
		util_thread_name("push");
	for (size_t k = s->first; k < s->npeers; k += REPLICA_FANOUT) {
		long status = 0;
		int r = replica_post_text(s->peers[k], s->path, s->text, s->len, REPLICA_TIMEOUT,
		    &status);

		if (r < 0 || status != 200)
			log_debug("replica: push of %s to %s failed (status %ld); anti-entropy"
			    " will carry it", s->eval_id, s->peers[k], status);
	}
	return NULL;
}

/*
 * Send one document, serialized once, to every peer, REPLICA_FANOUT at a
 * time: the last peer learns of new work as soon as the first.
 */
static void
replica_send(const char *eval_id, json_t *doc, char **peers, size_t npeers)
{
	struct replica_sender s[REPLICA_FANOUT];
	char *text = json_dumps(doc, JSON_COMPACT);
	char *path = xasprintf("/evaluation/sync_result/%s", eval_id);
	size_t nthreads = npeers < REPLICA_FANOUT ? npeers : REPLICA_FANOUT;
	size_t started = 0;

	for (size_t t = 0; text != NULL && t < nthreads; t++) {
		s[t] = (struct replica_sender){ eval_id, path, text, strlen(text), peers, npeers,
		    t, 0 };
		/* the first runs on this thread; the others only when a thread is there */
		if (t > 0 && pthread_create(&s[t].thread, NULL, replica_sender_main, &s[t]) == 0)
			started |= (size_t)1 << t;
	}
	for (size_t t = 0; text != NULL && t < nthreads; t++)
		if (!(started & ((size_t)1 << t)))
			replica_sender_main(&s[t]);
	for (size_t t = 1; t < nthreads; t++)
		if (started & ((size_t)1 << t))
			pthread_join(s[t].thread, NULL);
	free(path);
	free(text);
}

/*
 * Push the change log: each evaluation's changed rows as one document to
 * every live peer, then forget them (a lost push is anti-entropy's).
 * Returns how many changes were handled.
 */
static size_t
replica_push(struct replica *r)
{
	struct store_sync_change *c = NULL;
	struct store_sync_key *keys = NULL;
	char **peers = NULL;
	size_t n = 0, npeers = 0;

	if (store_sync_changes(r->st, REPLICA_PUSH_BATCH, &c, &n) < 0 || n == 0)
		goto out;
	if (r->peers(r->peers_ctx, &peers, &npeers) == 0 && npeers > 0) {
		struct store_sync_change *sorted = xcalloc(n, sizeof(*sorted));

		memcpy(sorted, c, n * sizeof(*c));
		qsort(sorted, n, sizeof(*sorted), replica_change_cmp);
		keys = xcalloc(n, sizeof(*keys));
		for (size_t i = 0; i < n;) {
			size_t j = i, nk = 0;
			json_t *doc;

			for (; j < n && strcmp(sorted[j].eval_id, sorted[i].eval_id) == 0; j++) {
				if (nk > 0 && keys[nk - 1].project_idx == sorted[j].key.project_idx &&
				    strcmp(keys[nk - 1].path, sorted[j].key.path) == 0)
					continue;   /* the row's state now covers every change of it */
				keys[nk++] = sorted[j].key;
			}
			doc = store_sync_export_keys(r->st, sorted[i].eval_id, keys, nk);
			if (doc != NULL)
				replica_send(sorted[i].eval_id, doc, peers, npeers);
			json_decref(doc);
			i = j;
		}
		free(sorted);
	}
	store_sync_changes_done(r->st, c, n);
out:
	free(keys);
	store_sync_changes_free(c, n);
	free_peers(peers, npeers);
	return n;
}

/* --------------------------------------------------------- anti-entropy */

/*
 * GET path from peer as JSON (counted as pulled); NULL unless a 200 with JSON.
 * The status in *status when not NULL (0: no answer).
 */
static json_t *
replica_get(const char *peer, const char *path, long *status)
{
	struct http_response resp;
	json_t *doc = NULL;

	if (status != NULL)
		*status = 0;
	if (peer_request_raw(peer, "GET", path, NULL, 0, NULL, REPLICA_TIMEOUT, PEER_MAX_ANSWER,
	    &resp) < 0)
		return NULL;
	if (status != NULL)
		*status = resp.status;
	if (resp.status == 200) {
		doc = json_loadb(resp.body, resp.len, 0, NULL);
		metrics_add(METRICS_REPL_PULLED_DOCS, 1);
		metrics_add(METRICS_REPL_PULLED_BYTES, resp.len);
	}
	http_response_free(&resp);
	return doc;
}

/* Pull the buckets of one evaluation that differ from the peer's. */
static int
replica_pull_eval(struct replica *r, const char *peer, const char *id)
{
	uint64_t mine[STORE_SYNC_BUCKETS];
	double last;
	int diff[STORE_SYNC_BUCKETS], ndiff = 0, merged = 0;
	char *path = xasprintf("/sync/evaluation/%s/buckets", id);
	long status;
	json_t *theirs = replica_get(peer, path, &status), *b = json_object_get(theirs, "buckets");

	free(path);
	if (status == 404) {
		/* A node of the release before (protocol 1) has no buckets: all of it. */
		int c;

		path = xasprintf("/sync/evaluation/%s", id);
		theirs = replica_get(peer, path, NULL);
		free(path);
		c = theirs != NULL ? store_sync_merge(r->st, theirs) : 0;
		json_decref(theirs);
		return c > 0;
	}
	if (json_array_size(b) != STORE_SYNC_BUCKETS ||
	    store_sync_buckets(r->st, id, mine, &last) < 0) {
		json_decref(theirs);
		return 0;
	}
	/* the evaluation's last event, in no bucket: the later one is kept */
	if (json_number_value(json_object_get(theirs, "last_event_at")) > last &&
	    store_sync_last_event(r->st, id, json_number_value(json_object_get(theirs,
	    "last_event_at"))) == 0)
		merged = 1;
	for (int i = 0; i < STORE_SYNC_BUCKETS; i++) {
		const char *t = json_string_value(json_array_get(b, (size_t)i));
		char hex[17];

		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)mine[i]);
		if (t == NULL || strcmp(t, hex) != 0)
			diff[ndiff++] = i;
	}
	json_decref(theirs);
	for (int i = 0; i < ndiff; i += REPLICA_PAGE_BUCKETS) {
		char list[REPLICA_PAGE_BUCKETS * 4 + 1] = "";
		size_t off = 0;
		json_t *doc;
		int c;

		for (int k = i; k < ndiff && k < i + REPLICA_PAGE_BUCKETS; k++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%d",
			    k > i ? "," : "", diff[k]);
		path = xasprintf("/sync/evaluation/%s/part/%s", id, list);
		doc = replica_get(peer, path, NULL);
		free(path);
		if (doc == NULL)
			break;
		c = store_sync_merge(r->st, doc);
		json_decref(doc);
		if (c < 0) {
			log_warn("replica: cannot merge evaluation %s from %s", id, peer);
			break;
		}
		merged += c > 0;
	}
	return merged > 0;
}

/*
 * A deleted evaluation on one side: the tombstone goes to the side that
 * still has rows of it (pulled from the peer, or pushed to it), never the
 * rows back. 1 when this node took the peer's tombstone.
 */
static int
replica_tomb(struct replica *r, const char *peer, const char *id, int theirs_deleted)
{
	char *path = xasprintf("/sync/evaluation/%s", id);
	json_t *doc;
	int c = 0;

	if (theirs_deleted) {
		doc = replica_get(peer, path, NULL);
		c = doc != NULL ? store_sync_merge(r->st, doc) : 0;
	} else {
		char *peers[1] = { (char *)peer };

		doc = store_sync_export(r->st, id);
		if (doc != NULL)
			replica_send(id, doc, peers, 1);
	}
	json_decref(doc);
	free(path);
	return c > 0;
}

/* Compare evaluation digests with one peer and pull what differs. */
static void
replica_pull_from(struct replica *r, const char *peer)
{
	json_t *theirs = replica_get(peer, "/sync/digests", NULL), *mine = NULL, *v;
	const char *id;
	int pulls = 0, merged = 0;

	if (!json_is_object(theirs))
		goto out;
	mine = store_sync_digests(r->st);
	json_object_foreach(theirs, id, v) {
		json_t *mv = json_object_get(mine, id);
		int td, md;

		if (!json_is_string(v) || !util_is_uuid(id))
			continue;
		if (mv != NULL && json_equal(mv, v))
			continue;
		if (pulls++ >= REPLICA_MAX_PULLS)
			break;
		td = strcmp(json_string_value(v), STORE_SYNC_DELETED) == 0;
		md = mv != NULL && strcmp(json_string_value(mv), STORE_SYNC_DELETED) == 0;
		if (td || md)
			merged += replica_tomb(r, peer, id, td);
		else
			merged += replica_pull_eval(r, peer, id);
	}
	if (merged > 0)
		log_info("replica: caught up on %d evaluations from %s", merged, peer);
out:
	json_decref(theirs);
	json_decref(mine);
}

static void
replica_anti_entropy(struct replica *r, int all)
{
	char **peers = NULL;
	size_t npeers = 0;

	if (r->peers(r->peers_ctx, &peers, &npeers) < 0 || npeers == 0)
		goto out;
	if (all) {
		for (size_t i = 0; i < npeers; i++)
			replica_pull_from(r, peers[i]);
	} else {
		unsigned pick;
		util_random(&pick, sizeof(pick));
		replica_pull_from(r, peers[pick % npeers]);
	}
out:
	free_peers(peers, npeers);
}

/* ---------------------------------------------------------------- thread */

/* Let changes gather for REPLICA_PUSH_DELAY, unless news or a stop comes first. */
static void
replica_gather(struct replica *r)
{
	struct timespec ts;
	long ns = (long)(REPLICA_PUSH_DELAY * 1e9);

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (ts.tv_nsec + ns) / 1000000000L;
	ts.tv_nsec = (ts.tv_nsec + ns) % 1000000000L;
	while (!r->hurry && !r->stopping && !r->sync_now)
		if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT)
			break;
}

static void *
replica_main(void *arg)
{
	struct replica *r = arg;
	double next_ae = util_mono() + 0.5;
	int more = 1;   /* a change log left from before a restart is pushed first */

	util_thread_name("replica");
	for (;;) {
		int now_all;

		pthread_mutex_lock(&r->lock);
		while (!r->stopping && !r->woken && !more && !r->sync_now &&
		    util_mono() < next_ae) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		}
		if (r->stopping) {
			pthread_mutex_unlock(&r->lock);
			break;
		}
		now_all = r->sync_now;
		r->sync_now = 0;
		if (r->woken && !now_all && !r->hurry)
			replica_gather(r);
		r->woken = 0;
		r->hurry = 0;
		pthread_mutex_unlock(&r->lock);

		more = replica_push(r) == REPLICA_PUSH_BATCH;
		if (now_all || util_mono() >= next_ae) {
			replica_anti_entropy(r, now_all);
			next_ae = util_mono() + REPLICA_AE_PERIOD;
		}
	}
	return NULL;
}

int
replica_start(struct store *st, const char *self, replica_peers_fn peers, void *ctx,
    struct replica **out)
{
	struct replica *r = xcalloc(1, sizeof(*r));

	r->st = st;
	r->self = xstrdup(self);
	r->peers = peers;
	r->peers_ctx = ctx;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (pthread_create(&r->thread, NULL, replica_main, r) != 0) {
		free(r->self);
		free(r);
		return -EAGAIN;
	}
	*out = r;
	return 0;
}

void
replica_stop(struct replica *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = 1;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r->self);
	free(r);
}
