/*
 * test_membership_sim.c - the SWIM + Lifeguard state machine of
 * cluster/membership.c at scale: MESHTEST_SIM_MEMBERS members (SIM_MEMBERS by
 * default, up to 1,024) in one process, on a simulated clock and a simulated network that
 * loses messages and delays them, with 5 % of the members answering 10x
 * slower than the rest (overloaded nodes). Everything gossip.c does around
 * the state machine is done here the same way: ticks every 50 ms of
 * simulated time, each action an exchange with a deadline, a ping-req carried
 * out by its helper with a ping of its own.
 *
 * After a warm-up, three members are killed. The test asserts, and prints for
 * bench/bench_scale.py: every live member knows each death within 10 s;
 * every member sends at most 3 requests per second (each an HTTP POST and its
 * answer); no live member is ever declared dead, at 1 % message loss.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/membership.h"
#include "core/util.h"

/*
 * 300 members in `make unit` (seconds; the simulation costs the square of
 * the members, as every member's table is the whole network);
 * bench/bench_scale.py runs it with 1,000.
 */
#define SIM_MEMBERS 300
#define SIM_TICK 0.05
#define SIM_WARMUP 12.0          /* seconds before the kills (one full-table sync) */
#define SIM_AFTER 15.0           /* seconds after */
#define SIM_KILLS 3
#define SIM_LOSS 0.01            /* each message, each way */
#define SIM_SLOW_SHARE 0.05
#define SIM_DELAY_MIN 0.005      /* one way, seconds */
#define SIM_DELAY_MAX 0.015

enum sim_kind { EV_TICK, EV_REQ, EV_REP, EV_DEADLINE };

struct sim_ev {
	double t;
	enum sim_kind kind;
	int node;                    /* EV_TICK */
	int x;                       /* the exchange, other kinds */
	json_t *msg;                 /* EV_REQ, EV_REP: owned */
};

/* One request and its answer, as gossip.c's probe threads see them. */
struct sim_x {
	int from, to;
	uint64_t seq;
	int helper_for;              /* a helper's own ping for this ping-req, else -1 */
	double start, deadline;
	int done;
	char target[32];
};

struct sim {
	size_t n;
	struct membership **m;
	char (*addr)[32];
	int *dead, *slow;
	double *died_at, *known_at_all;
	long *dead_votes;
	struct sim_ev *heap;
	size_t nheap, capheap;
	struct sim_x *x;
	size_t nx, capx;
	uint64_t rng;
	double now;
	uint64_t requests_after_warmup;
	long false_deaths;
};

static double
sim_rand(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return (double)(s->rng >> 11) / 9007199254740992.0;
}

static void
sim_push(struct sim *s, struct sim_ev ev)
{
	size_t i;

	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 1024;
		s->heap = xrealloc(s->heap, s->capheap * sizeof(*s->heap));
	}
	i = s->nheap++;
	while (i > 0 && s->heap[(i - 1) / 2].t > ev.t) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = ev;
}

static struct sim_ev
sim_pop(struct sim *s)
{
	struct sim_ev top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && s->heap[c + 1].t < s->heap[c].t)
			c++;
		if (s->heap[c].t >= last.t)
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap > 0)
		s->heap[i] = last;
	return top;
}

static int
sim_index(const struct sim *s, const char *addr)
{
	unsigned a, b, c;

	if (sscanf(addr, "10.%u.%u.%u:7000", &a, &b, &c) != 3)
		return -1;
	return (int)((a * 256 + b) * 256 + c) - 1;
	(void)s;
}

/* One way from a to b: a slow member takes ten times as long (both ways). */
static double
sim_delay(struct sim *s, int a, int b)
{
	double d = SIM_DELAY_MIN + (SIM_DELAY_MAX - SIM_DELAY_MIN) * sim_rand(s);

	return s->slow[a] || s->slow[b] ? 10 * d : d;
}

/* Send msg from a to b (taking it): arrives as kind for exchange x, unless lost. */
static void
sim_send(struct sim *s, enum sim_kind kind, int x, int a, int b, json_t *msg)
{
	if (sim_rand(s) < SIM_LOSS) {
		json_decref(msg);
		return;
	}
	sim_push(s, (struct sim_ev){ s->now + sim_delay(s, a, b), kind, b, x, msg });
}

static int
sim_exchange(struct sim *s, int from, int to, uint64_t seq, double timeout, int helper_for,
    const char *target)
{
	struct sim_x *x;

	if (s->nx == s->capx) {
		s->capx = s->capx ? s->capx * 2 : 4096;
		s->x = xrealloc(s->x, s->capx * sizeof(*s->x));
	}
	x = &s->x[s->nx];
	memset(x, 0, sizeof(*x));
	x->from = from;
	x->to = to;
	x->seq = seq;
	x->helper_for = helper_for;
	x->start = s->now;
	x->deadline = s->now + timeout;
	snprintf(x->target, sizeof(x->target), "%s", target);
	sim_push(s, (struct sim_ev){ x->deadline, EV_DEADLINE, from, (int)s->nx, NULL });
	if (s->now >= SIM_WARMUP)
		s->requests_after_warmup++;
	return (int)s->nx++;
}

/* The helper of ping-req p heard from its own ping: ack or nack back. */
static void
sim_helper_answers(struct sim *s, int p, int ok)
{
	struct sim_x *px = &s->x[p];
	json_t *r = membership_message(s->m[px->to], ok ? "ack" : "nack", s->addr[px->from],
	    px->target, px->seq, 0);

	sim_send(s, EV_REP, p, px->to, px->from, r);
}

static void
sim_finish(struct sim *s, int xi, enum membership_result res)
{
	struct sim_x *x = &s->x[xi];

	if (x->done)
		return;
	x->done = 1;
	if (x->helper_for >= 0)
		sim_helper_answers(s, x->helper_for, res == MEMBERSHIP_ACK);
	else if (!s->dead[x->from])
		membership_probe_result(s->m[x->from], x->seq, res, s->now);
}

static void
sim_tick(struct sim *s, int i)
{
	struct membership_action a[32];
	size_t n;

	if (s->dead[i])
		return;
	n = membership_tick(s->m[i], s->now, a, 32);
	for (size_t k = 0; k < n; k++) {
		int to = sim_index(s, a[k].to);
		int x;

		if (a[k].kind == MEMBERSHIP_PING_REQ)
			json_object_set_new(a[k].msg, "timeout", json_real(a[k].timeout));
		x = sim_exchange(s, i, to, a[k].seq, a[k].timeout, -1, a[k].target);
		if (to >= 0)
			sim_send(s, EV_REQ, x, i, to, a[k].msg);
		else
			json_decref(a[k].msg);
		a[k].msg = NULL;
		membership_action_clear(&a[k]);
	}
	sim_push(s, (struct sim_ev){ s->now + SIM_TICK, EV_TICK, i, 0, NULL });
}

static void
sim_request(struct sim *s, int xi, json_t *msg)
{
	struct sim_x *x = &s->x[xi];
	json_t *reply = NULL;
	int to = x->to;
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (s->dead[to] || membership_handle(s->m[to], msg, s->now, &reply) < 0)
		return;
	if (reply == NULL && type != NULL && strcmp(type, "ping-req") == 0) {
		/* The helper pings the target itself, answering before the asker gives up. */
		double timeout = membership_probe_timeout(s->m[to]);
		double asked = json_number_value(json_object_get(msg, "timeout"));
		char target[32];
		int t, h;

		snprintf(target, sizeof(target), "%s", x->target);   /* s->x may move */
		t = sim_index(s, target);
		if (asked > 0 && timeout > asked * 0.8)
			timeout = asked * 0.8;
		h = sim_exchange(s, to, t, 0, timeout, xi, target);
		if (t >= 0)
			sim_send(s, EV_REQ, h, to, t, membership_message(s->m[to], "ping", target,
			    target, 0, 0));
		return;
	}
	if (reply != NULL)
		sim_send(s, EV_REP, xi, to, x->from, reply);
}

static void
sim_reply(struct sim *s, int xi, json_t *msg)
{
	struct sim_x *x = &s->x[xi];
	const char *type = json_string_value(json_object_get(msg, "type"));
	enum membership_result res = MEMBERSHIP_FAIL;

	if (x->done || s->dead[x->from] || s->now > x->deadline)
		return;
	if (membership_handle(s->m[x->from], msg, s->now, NULL) == 0 && type != NULL) {
		if (strcmp(type, "ack") == 0 || strcmp(type, "leave") == 0)
			res = MEMBERSHIP_ACK;
		else if (strcmp(type, "nack") == 0)
			res = MEMBERSHIP_NACK;
	}
	sim_finish(s, xi, res);
}

/*
 * What member i concluded since last asked: a live member declared dead is
 * a false death; a killed one is known to all when every live member has it
 * dead (a dead member never comes back here).
 */
static void
sim_events(struct sim *s, int i)
{
	struct membership_event ev[64];
	size_t n;

	while ((n = membership_take_events(s->m[i], ev, 64)) > 0) {
		for (size_t k = 0; k < n; k++) {
			int j = sim_index(s, ev[k].address);

			if (ev[k].state != MEMBERSHIP_DEAD || j < 0)
				continue;
			if (!s->dead[j]) {
				s->false_deaths++;
				continue;
			}
			if (++s->dead_votes[j] == (long)(s->n - SIM_KILLS))
				s->known_at_all[j] = s->now;
		}
	}
}

static void
test_thousand_members(void **state)
{
	struct sim s;
	const char *env = getenv("MESHTEST_SIM_MEMBERS");
	json_t *table = json_array(), *hello;
	double worst = 0;
	int killed[SIM_KILLS];

	(void)state;
	memset(&s, 0, sizeof(s));
	s.n = env != NULL && atoi(env) > 10 ? (size_t)atoi(env) : SIM_MEMBERS;
	if (s.n > MEMBERSHIP_MAX_MEMBERS)
		s.n = MEMBERSHIP_MAX_MEMBERS;
	s.rng = 0x2545f4914f6cdd1dULL;
	s.m = xcalloc(s.n, sizeof(*s.m));
	s.addr = xcalloc(s.n, sizeof(*s.addr));
	s.dead = xcalloc(s.n, sizeof(*s.dead));
	s.slow = xcalloc(s.n, sizeof(*s.slow));
	s.died_at = xcalloc(s.n, sizeof(*s.died_at));
	s.known_at_all = xcalloc(s.n, sizeof(*s.known_at_all));
	s.dead_votes = xcalloc(s.n, sizeof(*s.dead_votes));
	for (size_t i = 0; i < s.n; i++) {
		struct membership_params p;
		unsigned v = (unsigned)i + 1;

		snprintf(s.addr[i], sizeof(s.addr[i]), "10.%u.%u.%u:7000", v >> 16, (v >> 8) & 255,
		    v & 255);
		membership_params_default(&p);
		p.seed = 0x9e3779b97f4a7c15ULL + i;
		assert_int_equal(membership_new(s.addr[i], &p, 1000 + i, 0.0, &s.m[i]), 0);
		s.slow[i] = sim_rand(&s) < SIM_SLOW_SHARE;
		s.known_at_all[i] = -1;
		json_array_append_new(table, json_pack("{s:s, s:s, s:I, s:s}", "address",
		    s.addr[i], "state", "alive", "incarnation", (json_int_t)(1000 + i), "from",
		    s.addr[i]));
	}
	/* Every member starts knowing the whole table, as after a join. */
	hello = json_pack("{s:s, s:s, s:I, s:I, s:[], s:O}", "type", "ack", "from", s.addr[0],
	    "incarnation", (json_int_t)1000, "seq", (json_int_t)0, "updates", "members", table);
	for (size_t i = 0; i < s.n; i++) {
		assert_int_equal(membership_handle(s.m[i], hello, 0.0, NULL), 0);
		sim_events(&s, (int)i);
		sim_push(&s, (struct sim_ev){ sim_rand(&s) * SIM_TICK, EV_TICK, (int)i, 0, NULL });
	}
	json_decref(hello);
	json_decref(table);

	for (int k = 0; k < SIM_KILLS; k++)
		do {
			killed[k] = (int)(sim_rand(&s) * (double)s.n);
		} while (s.dead[killed[k]] || s.slow[killed[k]] || killed[k] == 0);
	while (s.nheap > 0) {
		struct sim_ev ev = sim_pop(&s);

		if (ev.t > SIM_WARMUP + SIM_AFTER) {
			json_decref(ev.msg);
			break;
		}
		s.now = ev.t;
		for (int k = 0; k < SIM_KILLS && s.now >= SIM_WARMUP; k++)
			if (!s.dead[killed[k]]) {
				s.dead[killed[k]] = 1;
				s.died_at[killed[k]] = s.now;
			}
		switch (ev.kind) {
		case EV_TICK:
			sim_tick(&s, ev.node);
			sim_events(&s, ev.node);
			break;
		case EV_REQ:
			sim_request(&s, ev.x, ev.msg);
			sim_events(&s, s.x[ev.x].to);
			break;
		case EV_REP:
			sim_reply(&s, ev.x, ev.msg);
			sim_events(&s, s.x[ev.x].from);
			break;
		case EV_DEADLINE:
			sim_finish(&s, ev.x, MEMBERSHIP_FAIL);
			sim_events(&s, s.x[ev.x].from);
			sim_events(&s, s.x[ev.x].to);
			break;
		}
		json_decref(ev.msg);
	}
	for (int k = 0; k < SIM_KILLS; k++)
		if (s.known_at_all[killed[k]] < 0)
			for (size_t i = 0; i < s.n; i++) {
				struct membership_member mm;
				if (s.dead[i] || membership_get(s.m[i], s.addr[killed[k]], &mm) < 0 ||
				    mm.state == MEMBERSHIP_DEAD)
					continue;
				print_message("  %s (%s) still has %s %s, incarnation %llu\n",
				    s.addr[i], s.slow[i] ? "slow" : "normal", s.addr[killed[k]],
				    membership_state_name(mm.state),
				    (unsigned long long)mm.incarnation);
			}
	for (int k = 0; k < SIM_KILLS; k++) {
		double took = s.known_at_all[killed[k]] < 0 ? 1e9 :
		    s.known_at_all[killed[k]] - s.died_at[killed[k]];
		if (took > worst)
			worst = took;
	}
	print_message("membership simulation: %zu members (%.0f %% slow x10), %.0f %% loss:"
	    " %d deaths known to all within %.2f s, %.2f requests per member per second,"
	    " %ld false deaths\n", s.n, SIM_SLOW_SHARE * 100, SIM_LOSS * 100, SIM_KILLS, worst,
	    (double)s.requests_after_warmup / (double)(s.n - SIM_KILLS) / SIM_AFTER,
	    s.false_deaths);
	assert_true(worst <= 10.0);
	assert_true((double)s.requests_after_warmup / (double)(s.n - SIM_KILLS) / SIM_AFTER <= 3.0);
	assert_int_equal(s.false_deaths, 0);

	for (size_t i = 0; i < s.nheap; i++)
		json_decref(s.heap[i].msg);
	for (size_t i = 0; i < s.n; i++)
		membership_free(s.m[i]);
	free(s.heap);
	free(s.x);
	free(s.m);
	free(s.addr);
	free(s.dead);
	free(s.slow);
	free(s.died_at);
	free(s.known_at_all);
	free(s.dead_votes);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thousand_members),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
