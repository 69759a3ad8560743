/*
 * replica.c - pushes and anti-entropy (see replica.h).
 *
 * Threads: one replica thread does both jobs. The set of evaluations changed
 * since the last push is shared with the engine's threads (lock). Network
 * calls go through peer_request, never under the lock.
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
#include "core/util.h"
#include "store/store.h"

#define REPLICA_PUSH_DELAY 0.15   /* seconds: batch changes before a push */
#define REPLICA_AE_PERIOD 2.0     /* seconds between anti-entropy rounds */
#define REPLICA_TIMEOUT 5.0       /* seconds for one request */
#define REPLICA_MAX_PULLS 32      /* evaluations pulled per round */
#define REPLICA_MAX_DIRTY 4096

struct replica {
	struct store *st;
	char *self;
	replica_peers_fn peers;
	void *peers_ctx;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	char (*dirty)[37];      /* evaluations changed since the last push */
	size_t ndirty;
	int stopping;
	int sync_now;
	pthread_t thread;
};

void
replica_changed(struct replica *r, const char *eval_id)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->ndirty; i++)
		if (strcmp(r->dirty[i], eval_id) == 0)
			goto out;
	if (r->ndirty < REPLICA_MAX_DIRTY) {
		/* Past the cap a change is left to anti-entropy. */
		snprintf(r->dirty[r->ndirty++], 37, "%s", eval_id);
		pthread_cond_signal(&r->cond);
	}
out:
	pthread_mutex_unlock(&r->lock);
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

/* Push the current state of each dirty evaluation to every live peer. */
static void
replica_push(struct replica *r, char (*ids)[37], size_t nids)
{
	char **peers = NULL;
	size_t npeers = 0;

	if (r->peers(r->peers_ctx, &peers, &npeers) < 0 || npeers == 0)
		goto out;
	for (size_t i = 0; i < nids; i++) {
		json_t *doc = store_eval_export(r->st, ids[i]);
		char *path;

		if (doc == NULL)
			continue;
		path = xasprintf("/evaluation/sync_result/%s", ids[i]);
		for (size_t k = 0; k < npeers; k++) {
			json_t *answer = NULL;
			long status = 0;
			if (peer_request(peers[k], "POST", path, doc, REPLICA_TIMEOUT, &answer,
			    &status) < 0 || status != 200)
				log_debug("replica: push of %s to %s failed (status %ld); anti-entropy"
				    " will carry it", ids[i], peers[k], status);
			json_decref(answer);
		}
		free(path);
		json_decref(doc);
	}
out:
	free_peers(peers, npeers);
}

/* Compare digests with one peer and pull what differs. */
static void
replica_pull_from(struct replica *r, const char *peer)
{
	json_t *theirs = NULL, *mine = NULL, *v;
	const char *id;
	long status = 0;
	int pulls = 0, merged = 0;

	if (peer_request(peer, "GET", "/sync/digests", NULL, REPLICA_TIMEOUT, &theirs,
	    &status) < 0 || status != 200 || !json_is_object(theirs))
		goto out;
	mine = store_eval_digests(r->st);
	json_object_foreach(theirs, id, v) {
		json_t *mv = json_object_get(mine, id);
		json_t *doc = NULL;
		char *path;
		int c;

		if (!json_is_string(v) || !util_is_uuid(id))
			continue;
		if (mv != NULL && json_equal(mv, v))
			continue;
		if (pulls++ >= REPLICA_MAX_PULLS)
			break;
		path = xasprintf("/sync/evaluation/%s", id);
		status = 0;
		if (peer_request(peer, "GET", path, NULL, REPLICA_TIMEOUT, &doc, &status) == 0 &&
		    status == 200) {
			c = store_eval_merge(r->st, doc);
			if (c > 0)
				merged++;
			else if (c < 0)
				log_warn("replica: cannot merge evaluation %s from %s", id, peer);
		}
		json_decref(doc);
		free(path);
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

static void *
replica_main(void *arg)
{
	struct replica *r = arg;
	double next_ae = util_mono() + 0.5;

	for (;;) {
		char (*ids)[37] = NULL;
		size_t nids = 0;
		int now_all;

		pthread_mutex_lock(&r->lock);
		while (!r->stopping && r->ndirty == 0 && !r->sync_now &&
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
		pthread_mutex_unlock(&r->lock);

		if (!now_all)
			util_sleep(REPLICA_PUSH_DELAY);
		pthread_mutex_lock(&r->lock);
		if (r->ndirty > 0) {
			ids = xcalloc(r->ndirty, sizeof(*ids));
			memcpy(ids, r->dirty, r->ndirty * sizeof(*ids));
			nids = r->ndirty;
			r->ndirty = 0;
		}
		pthread_mutex_unlock(&r->lock);
		if (nids > 0)
			replica_push(r, ids, nids);
		free(ids);
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
	r->dirty = xcalloc(REPLICA_MAX_DIRTY, sizeof(*r->dirty));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (pthread_create(&r->thread, NULL, replica_main, r) != 0) {
		free(r->dirty);
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
	free(r->dirty);
	free(r->self);
	free(r);
}
