/*
 * gossip.c - runs the membership state machine (membership.c) on the wire.
 *
 * Owns: the struct membership (behind g->mu), the tick thread, the probe
 * threads, and the cache of peers' last views for GET /network.
 *
 * Threads:
 *  - the tick thread calls membership_tick every GOSSIP_TICK seconds and
 *    hands each action to a short-lived detached probe thread, so a slow or
 *    silent peer never stalls the loop;
 *  - a probe thread POSTs one message through peer_request, feeds the answer
 *    back (membership_handle, membership_probe_result) and exits;
 *  - HTTP server threads call gossip_handle_message (a ping-req blocks its
 *    thread for at most the probe timeout), gossip_view, gossip_network;
 *  - gossip_stop runs on the main thread.
 * Every access to the membership holds g->mu; no network call does. The
 * object is reference counted (owner + each probe thread), so a probe still
 * in flight at shutdown never touches freed memory.
 */
#include "cluster/gossip.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/membership.h"
#include "cluster/peer.h"
#include "core/log.h"
#include "core/util.h"

#define GOSSIP_TICK 0.05            /* seconds between ticks */
#define GOSSIP_MAX_ACTIONS 32       /* actions per tick */
#define GOSSIP_MAX_INFLIGHT 64      /* probe threads at once */
#define GOSSIP_MAX_FANOUT 64        /* parallel requests of stop and network */
#define GOSSIP_GOODBYE_TIMEOUT 0.5
#define GOSSIP_PATH "/network/gossip"

struct gossip {
	pthread_mutex_t mu;
	struct membership *m;
	char self[MEMBERSHIP_ADDR_MAX];
	pthread_t tick;
	int tick_started;
	int stop;                   /* under mu */
	int refs;                   /* under mu: owner + probe threads */
	int inflight;               /* under mu */
	json_t *views;              /* under mu: addr -> last "peers" array */
};

struct gossip_job {
	struct gossip *g;
	struct membership_action a;
};

struct gossip_fetch {
	const char *addr;
	const char *method;
	const char *path;
	json_t *body;               /* borrowed */
	double timeout;
	json_t *answer;
	long status;
	int r;
	pthread_t th;
	int started;
};

/* --------------------------------------------------------------- helpers */

static double
gossip_now(void)
{
	return util_mono();
}

static void
gossip_release(struct gossip *g)
{
	int last;

	pthread_mutex_lock(&g->mu);
	last = --g->refs == 0;
	pthread_mutex_unlock(&g->mu);
	if (!last)
		return;
	membership_free(g->m);
	json_decref(g->views);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* Log the state changes collected so far; call with g->mu held, logs after. */
static size_t
gossip_take_events(struct gossip *g, struct membership_event *ev, size_t max)
{
	return membership_take_events(g->m, ev, max);
}

static void
gossip_log_events(const struct membership_event *ev, size_t n)
{
	for (size_t i = 0; i < n; i++)
		log_info("membership: %s %s", ev[i].address, ev[i].reason);
}

static const char *
gossip_type(const json_t *msg)
{
	const char *t = json_string_value(json_object_get(msg, "type"));

	return t != NULL ? t : "";
}

/* ------------------------------------------------------------ probe jobs */

static void *
gossip_probe_main(void *arg)
{
	struct gossip_job *job = arg;
	struct gossip *g = job->g;
	struct membership_event ev[16];
	json_t *answer = NULL;
	long status = 0;
	size_t nev;
	int r;
	enum membership_result res = MEMBERSHIP_FAIL;

	util_thread_name("probe");
	r = peer_request(job->a.to, "POST", GOSSIP_PATH, job->a.msg, job->a.timeout, &answer,
	    &status);
	pthread_mutex_lock(&g->mu);
	if (r == 0 && status == 200 && answer != NULL &&
	    membership_handle(g->m, answer, gossip_now(), NULL) == 0) {
		const char *t = gossip_type(answer);

		if (strcmp(t, "ack") == 0 || strcmp(t, "leave") == 0)
			res = MEMBERSHIP_ACK;
		else if (strcmp(t, "nack") == 0)
			res = MEMBERSHIP_NACK;
	}
	membership_probe_result(g->m, job->a.seq, res, gossip_now());
	nev = gossip_take_events(g, ev, sizeof(ev) / sizeof(ev[0]));
	g->inflight--;
	pthread_mutex_unlock(&g->mu);
	gossip_log_events(ev, nev);
	if (r < 0 || status != 200)
		log_debug("membership: %s to %s (target %s): %s", gossip_type(job->a.msg),
		    job->a.to, job->a.target, r < 0 ? strerror(-r) : "bad status");
	json_decref(answer);
	membership_action_clear(&job->a);
	free(job);
	gossip_release(g);
	return NULL;
}

/* Hand one action to a probe thread; on failure report it failed at once. */
static void
gossip_dispatch(struct gossip *g, struct membership_action *a)
{
	struct gossip_job *job;
	pthread_attr_t attr;
	pthread_t th;
	int ok = 0;

	if (a->kind == MEMBERSHIP_PING_REQ)
		json_object_set_new(a->msg, "timeout", json_real(a->timeout));
	job = xcalloc(1, sizeof(*job));
	job->g = g;
	job->a = *a;
	a->msg = NULL;
	pthread_mutex_lock(&g->mu);
	if (g->inflight < GOSSIP_MAX_INFLIGHT) {
		g->inflight++;
		g->refs++;
		ok = 1;
	}
	pthread_mutex_unlock(&g->mu);
	if (ok) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		if (pthread_create(&th, &attr, gossip_probe_main, job) != 0)
			ok = -1;
		pthread_attr_destroy(&attr);
		if (ok == 1)
			return;
	}
	pthread_mutex_lock(&g->mu);
	membership_probe_result(g->m, job->a.seq, MEMBERSHIP_FAIL, gossip_now());
	if (ok == -1) {
		g->inflight--;
		g->refs--;
	}
	pthread_mutex_unlock(&g->mu);
	log_warn("membership: cannot start a probe of %s (%s)", job->a.target,
	    ok == -1 ? "thread creation failed" : "too many probes in flight");
	membership_action_clear(&job->a);
	free(job);
}

static void *
gossip_tick_main(void *arg)
{
	struct gossip *g = arg;
	struct membership_action actions[GOSSIP_MAX_ACTIONS];
	struct membership_event ev[32];

	util_thread_name("gossip");
	for (;;) {
		size_t n, nev;
		int stop;

		pthread_mutex_lock(&g->mu);
		stop = g->stop;
		n = stop ? 0 : membership_tick(g->m, gossip_now(), actions, GOSSIP_MAX_ACTIONS);
		nev = gossip_take_events(g, ev, sizeof(ev) / sizeof(ev[0]));
		pthread_mutex_unlock(&g->mu);
		gossip_log_events(ev, nev);
		if (stop)
			break;
		for (size_t i = 0; i < n; i++)
			gossip_dispatch(g, &actions[i]);
		util_sleep(GOSSIP_TICK);
	}
	return NULL;
}

/* ------------------------------------------------------- parallel fetches */

static void *
gossip_fetch_main(void *arg)
{
	struct gossip_fetch *f = arg;

	util_thread_name("gossip-fetch");
	f->r = peer_request(f->addr, f->method, f->path, f->body, f->timeout, &f->answer,
	    &f->status);
	return NULL;
}

/* Run the requests of f[0..n) in parallel and wait for all of them. */
static void
gossip_fetch_all(struct gossip_fetch *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		f[i].r = -EIO;
		f[i].started = pthread_create(&f[i].th, NULL, gossip_fetch_main, &f[i]) == 0;
	}
	for (size_t i = 0; i < n; i++)
		if (f[i].started)
			pthread_join(f[i].th, NULL);
}

/* ----------------------------------------------------------------- public */

int
gossip_start(const char *self, const char *seeds_csv, struct gossip **out)
{
	struct membership_params p;
	struct gossip *g;
	char *list = NULL, *save = NULL, *tok;
	int r;

	*out = NULL;
	g = xcalloc(1, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	g->refs = 1;
	g->views = json_object();
	membership_params_default(&p);
	util_random(&p.seed, sizeof(p.seed));
	/* Start time in ms: a restarted node always comes back with a higher one. */
	r = membership_new(self, &p, (uint64_t)(util_now() * 1000.0), gossip_now(), &g->m);
	if (r < 0) {
		log_error("membership: '%s' is not a host:port address", self);
		goto fail;
	}
	snprintf(g->self, sizeof(g->self), "%s", self);
	if (seeds_csv != NULL && *seeds_csv) {
		list = xstrdup(seeds_csv);
		for (tok = strtok_r(list, ", \t", &save); tok != NULL;
		    tok = strtok_r(NULL, ", \t", &save)) {
			if (membership_add_seed(g->m, tok) < 0)
				log_warn("membership: ignoring seed '%s' (not host:port, or too many)",
				    tok);
		}
		free(list);
	}
	if (pthread_create(&g->tick, NULL, gossip_tick_main, g) != 0) {
		r = -EAGAIN;
		log_error("membership: cannot start the probe thread");
		goto fail;
	}
	g->tick_started = 1;
	log_info("membership: %s joining through seeds [%s], incarnation %llu", self,
	    seeds_csv != NULL ? seeds_csv : "",
	    (unsigned long long)membership_incarnation(g->m));
	*out = g;
	return 0;
fail:
	gossip_release(g);
	return r;
}

void
gossip_stop(struct gossip *g)
{
	struct gossip_fetch f[GOSSIP_MAX_FANOUT];
	struct membership_event ev[8];
	char **addrs = NULL;
	size_t n = 0, nf = 0, nev;
	json_t *bye;

	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	if (g->stop) {
		pthread_mutex_unlock(&g->mu);
		return;
	}
	g->stop = 1;
	pthread_mutex_unlock(&g->mu);
	if (g->tick_started)
		pthread_join(g->tick, NULL);
	pthread_mutex_lock(&g->mu);
	membership_alive(g->m, &addrs, &n);
	bye = membership_leave(g->m);
	nev = membership_take_events(g->m, ev, sizeof(ev) / sizeof(ev[0]));
	pthread_mutex_unlock(&g->mu);
	gossip_log_events(ev, nev);
	memset(f, 0, sizeof(f));
	for (size_t i = 0; i < n && nf < GOSSIP_MAX_FANOUT; i++) {
		if (strcmp(addrs[i], g->self) == 0)
			continue;
		f[nf].addr = addrs[i];
		f[nf].method = "POST";
		f[nf].path = GOSSIP_PATH;
		f[nf].body = bye;
		f[nf].timeout = GOSSIP_GOODBYE_TIMEOUT;
		nf++;
	}
	gossip_fetch_all(f, nf);
	for (size_t i = 0; i < nf; i++)
		json_decref(f[i].answer);
	log_info("membership: said goodbye to %zu peers", nf);
	json_decref(bye);
	membership_addrs_free(addrs, n);
}

void
gossip_free(struct gossip *g)
{
	if (g == NULL)
		return;
	gossip_stop(g);
	gossip_release(g);
}

int
gossip_handle_message(struct gossip *g, json_t *body, json_t **reply)
{
	struct membership_event ev[16];
	json_t *ping = NULL, *answer = NULL;
	const char *target = NULL, *from;
	char target_buf[MEMBERSHIP_ADDR_MAX], from_buf[MEMBERSHIP_ADDR_MAX];
	double timeout = 0, asked;
	json_int_t seq;
	long status = 0;
	size_t nev;
	int r, ok = 0;

	*reply = NULL;
	pthread_mutex_lock(&g->mu);
	r = membership_handle(g->m, body, gossip_now(), reply);
	if (r == 0 && *reply == NULL && strcmp(gossip_type(body), "ping-req") == 0) {
		target = json_string_value(json_object_get(body, "target"));
		snprintf(target_buf, sizeof(target_buf), "%s", target);
		target = target_buf;
		timeout = membership_probe_timeout(g->m);
		/* Answer before the requester gives up on us. */
		asked = json_number_value(json_object_get(body, "timeout"));
		if (asked > 0 && timeout > asked * 0.8)
			timeout = asked * 0.8;
		ping = membership_message(g->m, "ping", target, target, 0, 0);
	}
	nev = membership_take_events(g->m, ev, sizeof(ev) / sizeof(ev[0]));
	pthread_mutex_unlock(&g->mu);
	gossip_log_events(ev, nev);
	if (r < 0 || ping == NULL)
		return r;

	if (peer_request(target, "POST", GOSSIP_PATH, ping, timeout, &answer, &status) == 0 &&
	    status == 200 && answer != NULL)
		ok = 1;
	from = json_string_value(json_object_get(body, "from"));
	snprintf(from_buf, sizeof(from_buf), "%s", from != NULL ? from : "");
	seq = json_integer_value(json_object_get(body, "seq"));
	pthread_mutex_lock(&g->mu);
	if (ok)
		ok = membership_handle(g->m, answer, gossip_now(), NULL) == 0 &&
		    strcmp(gossip_type(answer), "ack") == 0;
	*reply = membership_message(g->m, ok ? "ack" : "nack", from_buf, target,
	    seq >= 0 ? (uint64_t)seq : 0, 0);
	nev = membership_take_events(g->m, ev, sizeof(ev) / sizeof(ev[0]));
	pthread_mutex_unlock(&g->mu);
	gossip_log_events(ev, nev);
	json_decref(ping);
	json_decref(answer);
	return 0;
}

int
gossip_alive(struct gossip *g, char ***addrs, size_t *n)
{
	int r;

	pthread_mutex_lock(&g->mu);
	r = membership_alive(g->m, addrs, n);
	pthread_mutex_unlock(&g->mu);
	return r;
}

void
gossip_addrs_free(char **addrs, size_t n)
{
	membership_addrs_free(addrs, n);
}

void
gossip_counts(struct gossip *g, size_t counts[4])
{
	pthread_mutex_lock(&g->mu);
	for (int s = MEMBERSHIP_ALIVE; s <= MEMBERSHIP_LEFT; s++)
		counts[s] = membership_count(g->m, (enum membership_state)s);
	pthread_mutex_unlock(&g->mu);
}

/* Alive peers, self excluded, as a JSON array; call with g->mu held. */
static json_t *
gossip_peers_locked(struct gossip *g)
{
	json_t *peers = json_array();
	char **addrs = NULL;
	size_t n = 0;

	membership_alive(g->m, &addrs, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(addrs[i], g->self) != 0)
			json_array_append_new(peers, json_string(addrs[i]));
	membership_addrs_free(addrs, n);
	return peers;
}

json_t *
gossip_view(struct gossip *g)
{
	double wall = util_now(), mono = gossip_now();
	json_t *view, *members, *x;
	size_t i;

	pthread_mutex_lock(&g->mu);
	members = membership_members(g->m);
	view = json_pack("{s:s, s:I, s:i, s:o}", "address", g->self, "incarnation",
	    (json_int_t)membership_incarnation(g->m), "lhm", membership_lhm(g->m), "peers",
	    gossip_peers_locked(g));
	pthread_mutex_unlock(&g->mu);
	/* "since" on the wire is wall-clock time, not our monotonic clock. */
	json_array_foreach(members, i, x) {
		double since = json_real_value(json_object_get(x, "since"));

		json_object_set_new(x, "since", json_real(wall - (mono - since)));
	}
	json_object_set_new(view, "members", members);
	return view;
}

json_t *
gossip_network(struct gossip *g, double timeout)
{
	struct gossip_fetch f[GOSSIP_MAX_FANOUT];
	char **addrs = NULL;
	size_t n = 0, nf = 0;
	json_t *graph = json_object(), *peers;

	memset(f, 0, sizeof(f));
	pthread_mutex_lock(&g->mu);
	membership_alive(g->m, &addrs, &n);
	json_object_set_new(graph, g->self, gossip_peers_locked(g));
	pthread_mutex_unlock(&g->mu);
	for (size_t i = 0; i < n && nf < GOSSIP_MAX_FANOUT; i++) {
		if (strcmp(addrs[i], g->self) == 0)
			continue;
		f[nf].addr = addrs[i];
		f[nf].method = "GET";
		f[nf].path = "/network/peers";
		f[nf].timeout = timeout;
		nf++;
	}
	gossip_fetch_all(f, nf);
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < nf; i++) {
		peers = json_object_get(f[i].answer, "peers");
		if (f[i].r == 0 && f[i].status == 200 && json_is_array(peers)) {
			json_object_set_new(g->views, f[i].addr, json_deep_copy(peers));
		} else {
			peers = json_object_get(g->views, f[i].addr);
			json_object_set_new(graph, f[i].addr,
			    peers != NULL ? json_deep_copy(peers) : json_array());
			continue;
		}
		json_object_set_new(graph, f[i].addr, json_deep_copy(peers));
	}
	pthread_mutex_unlock(&g->mu);
	for (size_t i = 0; i < nf; i++)
		json_decref(f[i].answer);
	membership_addrs_free(addrs, n);
	return graph;
}

const char *
gossip_self(const struct gossip *g)
{
	return g->self;
}
