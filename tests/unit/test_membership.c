/*
 * test_membership.c - the SWIM + Lifeguard state machine of
 * cluster/membership.c, driven as a pure function of messages and time.
 *
 * Part one feeds single messages and probe outcomes by hand and checks exact
 * states, incarnations, deadlines and the local health multiplier. Part two
 * runs a small simulated cluster (zero-latency delivery, links that can be
 * cut) through the failure scenarios of the end-to-end suite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/membership.h"

#define assert_near(a, b) assert_true((a) - (b) < 1e-6 && (b) - (a) < 1e-6)

#define A "10.0.0.1:7000"
#define B "10.0.0.2:7000"
#define C "10.0.0.3:7000"
#define D "10.0.0.4:7000"
#define E "10.0.0.5:7000"

static struct membership *
mk(const char *self, uint64_t inc)
{
	struct membership *m = NULL;

	assert_int_equal(membership_new(self, NULL, inc, 0.0, &m), 0);
	return m;
}

static enum membership_state
state_of(const struct membership *m, const char *addr)
{
	struct membership_member x;

	if (membership_get(m, addr, &x) < 0)
		return (enum membership_state)-1;
	return x.state;
}

static uint64_t
inc_of(const struct membership *m, const char *addr)
{
	struct membership_member x;

	assert_int_equal(membership_get(m, addr, &x), 0);
	return x.incarnation;
}

/* A message from "from" at incarnation inc carrying one update record. */
static json_t *
msg_with(const char *type, const char *from, uint64_t inc, const char *addr,
    const char *state, uint64_t rinc, const char *rfrom)
{
	json_t *msg = json_pack("{s:s, s:s, s:I, s:I, s:[]}", "type", type, "from", from,
	    "incarnation", (json_int_t)inc, "seq", (json_int_t)0, "updates");

	if (addr != NULL)
		json_array_append_new(json_object_get(msg, "updates"),
		    json_pack("{s:s, s:s, s:I, s:s}", "address", addr, "state", state,
		    "incarnation", (json_int_t)rinc, "from", rfrom));
	return msg;
}

/* Feed a message; drop any reply. */
static void
feed(struct membership *m, json_t *msg, double now)
{
	json_t *reply = NULL;

	assert_int_equal(membership_handle(m, msg, now, &reply), 0);
	json_decref(reply);
	json_decref(msg);
}

/* Make m know each of the given members alive (implicit alive of a sender). */
static void
know(struct membership *m, const char *const *addrs, const uint64_t *incs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		feed(m, msg_with("ack", addrs[i], incs[i], NULL, NULL, 0, NULL), 0.0);
}

static void
clear_actions(struct membership_action *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		membership_action_clear(&a[i]);
}

/* 1 if msg carries an update record about addr in the given state. */
static int
carries(const json_t *msg, const char *addr, const char *state)
{
	json_t *rec;
	size_t i;

	json_array_foreach(json_object_get(msg, "updates"), i, rec) {
		if (strcmp(json_string_value(json_object_get(rec, "address")), addr) == 0 &&
		    strcmp(json_string_value(json_object_get(rec, "state")), state) == 0)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ by hand */

static void
test_join_via_seed(void **state)
{
	struct membership *a = mk(A, 100), *b = mk(B, 200), *c = mk(C, 300);
	struct membership_action act[8];
	json_t *reply = NULL;
	size_t n;

	(void)state;
	/* b and c start with a as their seed; a has no seeds. */
	assert_int_equal(membership_add_seed(b, A), 0);
	assert_int_equal(membership_add_seed(b, B), 0);        /* self: ignored */
	assert_int_equal(membership_add_seed(b, "nonsense"), -EINVAL);
	assert_int_equal(membership_add_seed(c, A), 0);

	n = membership_tick(b, 0.0, act, 8);
	assert_int_equal(n, 1);
	assert_int_equal(act[0].kind, MEMBERSHIP_PING);
	assert_string_equal(act[0].to, A);
	assert_true(json_is_true(json_object_get(act[0].msg, "sync")));
	assert_int_equal(membership_handle(a, act[0].msg, 0.0, &reply), 0);
	assert_string_equal(json_string_value(json_object_get(reply, "type")), "ack");
	assert_int_equal(membership_handle(b, reply, 0.0, NULL), 0);
	json_decref(reply);
	clear_actions(act, n);
	assert_int_equal(state_of(a, B), MEMBERSHIP_ALIVE);
	assert_int_equal(inc_of(a, B), 200);
	assert_int_equal(state_of(b, A), MEMBERSHIP_ALIVE);
	assert_int_equal(inc_of(b, A), 100);

	/* c joins through a and learns b from a's table (the sync). */
	n = membership_tick(c, 0.0, act, 8);
	assert_int_equal(n, 1);
	assert_int_equal(membership_handle(a, act[0].msg, 0.0, &reply), 0);
	assert_int_equal(membership_handle(c, reply, 0.0, NULL), 0);
	json_decref(reply);
	clear_actions(act, n);
	assert_int_equal(state_of(c, A), MEMBERSHIP_ALIVE);
	assert_int_equal(state_of(c, B), MEMBERSHIP_ALIVE);
	assert_int_equal(inc_of(c, B), 200);

	/* The seed is a member now: no more join pings to it, only probes. */
	n = membership_tick(c, 1.5, act, 8);
	assert_int_equal(n, 1);
	assert_int_equal(act[0].kind, MEMBERSHIP_PING);
	assert_int_equal(act[0].seq, 2);      /* a probe, not a seed ping (seq 1 was) */
	clear_actions(act, n);

	{
		char **addrs = NULL;
		size_t na = 0;

		assert_int_equal(membership_alive(c, &addrs, &na), 0);
		assert_int_equal(na, 3);
		assert_string_equal(addrs[0], A);
		assert_string_equal(addrs[1], B);
		assert_string_equal(addrs[2], C);
		membership_addrs_free(addrs, na);
	}
	membership_free(a);
	membership_free(b);
	membership_free(c);
}

/* a probes someone; returns the target (B or C) of the direct ping. */
static const char *
start_probe(struct membership *a, double now, uint64_t *seq)
{
	static char target[MEMBERSHIP_ADDR_MAX];
	struct membership_action act[8];
	size_t n = membership_tick(a, now, act, 8);

	assert_int_equal(n, 1);
	assert_int_equal(act[0].kind, MEMBERSHIP_PING);
	assert_near(act[0].timeout, membership_probe_timeout(a));
	snprintf(target, sizeof(target), "%s", act[0].target);
	*seq = act[0].seq;
	clear_actions(act, n);
	return target;
}

static void
test_miss_pingreq_suspect_dead(void **state)
{
	static const char *const peers[] = { B, C };
	static const uint64_t incs[] = { 200, 300 };
	struct membership *a = mk(A, 100);
	struct membership_action act[8];
	char x[MEMBERSHIP_ADDR_MAX];
	const char *other;
	uint64_t seq;
	size_t n;

	(void)state;
	know(a, peers, incs, 2);
	snprintf(x, sizeof(x), "%s", start_probe(a, 0.0, &seq));
	other = strcmp(x, B) == 0 ? C : B;

	/* Before the probe timeout nothing happens. */
	assert_int_equal(membership_tick(a, 0.1, act, 8), 0);
	/* Past it: a ping-req through the only other member. */
	n = membership_tick(a, 0.31, act, 8);
	assert_int_equal(n, 1);
	assert_int_equal(act[0].kind, MEMBERSHIP_PING_REQ);
	assert_string_equal(act[0].to, other);
	assert_string_equal(act[0].target, x);
	assert_near(act[0].timeout, 0.6);
	assert_string_equal(json_string_value(json_object_get(act[0].msg, "target")), x);
	membership_probe_result(a, act[0].seq, MEMBERSHIP_NACK, 0.4);
	clear_actions(act, n);
	assert_int_equal(state_of(a, x), MEMBERSHIP_ALIVE);

	/* Every helper nacked: suspect now, and our health is not to blame. */
	n = membership_tick(a, 0.4, act, 8);
	clear_actions(act, n);
	assert_int_equal(state_of(a, x), MEMBERSHIP_SUSPECT);
	assert_int_equal(membership_lhm(a), 0);
	/* 3 live members: k = 1, no confirmation yet: the max, 3 s. */
	assert_near(membership_suspicion_deadline(a, x), 3.4);
	/* The suspicion is gossiped, and a ping to x itself carries it (buddy). */
	{
		json_t *m1 = membership_message(a, "ping", other, other, 9, 0);
		json_t *m2 = membership_message(a, "ping", x, x, 10, 0);

		assert_true(carries(m1, x, "suspect"));
		assert_true(carries(m2, x, "suspect"));
		assert_string_equal(json_string_value(json_object_get(
		    json_array_get(json_object_get(m2, "updates"), 0), "address")), x);
		json_decref(m1);
		json_decref(m2);
	}

	/* Still suspect just before the deadline, dead at it. */
	n = membership_tick(a, 3.39, act, 8);
	for (size_t i = 0; i < n; i++)
		membership_probe_result(a, act[i].seq, MEMBERSHIP_ACK, 3.39);
	clear_actions(act, n);
	assert_int_equal(state_of(a, x), MEMBERSHIP_SUSPECT);
	n = membership_tick(a, 3.4, act, 8);
	clear_actions(act, n);
	assert_int_equal(state_of(a, x), MEMBERSHIP_DEAD);
	assert_near(membership_suspicion_deadline(a, x), -1);
	{
		json_t *m1 = membership_message(a, "ping", other, other, 11, 0);

		assert_true(carries(m1, x, "dead"));
		json_decref(m1);
	}
	/* A dead member still gets a reconnect ping every second. */
	n = membership_tick(a, 4.39, act, 8);
	for (size_t i = 0; i < n; i++) {
		assert_string_not_equal(act[i].to, x);
		membership_probe_result(a, act[i].seq, MEMBERSHIP_ACK, 4.39);
	}
	clear_actions(act, n);
	n = membership_tick(a, 4.4, act, 8);
	assert_int_equal(n, 1);
	assert_string_equal(act[0].to, x);
	assert_int_equal(act[0].kind, MEMBERSHIP_PING);
	assert_true(json_is_true(json_object_get(act[0].msg, "sync")));
	/* ... telling it that it is held dead, so a live one refutes. */
	assert_true(carries(act[0].msg, x, "dead"));
	clear_actions(act, n);
	n = membership_tick(a, 5.39, act, 8);
	for (size_t i = 0; i < n; i++) {
		assert_string_not_equal(act[i].to, x);
		membership_probe_result(a, act[i].seq, MEMBERSHIP_ACK, 5.39);
	}
	clear_actions(act, n);
	n = membership_tick(a, 5.4, act, 8);
	assert_int_equal(n, 1);
	assert_string_equal(act[0].to, x);
	clear_actions(act, n);
	membership_free(a);
}

static void
test_indirect_ack_saves(void **state)
{
	static const char *const peers[] = { B, C };
	static const uint64_t incs[] = { 200, 300 };
	struct membership *a = mk(A, 100);
	struct membership_action act[8];
	char x[MEMBERSHIP_ADDR_MAX];
	uint64_t seq;
	size_t n;

	(void)state;
	know(a, peers, incs, 2);
	snprintf(x, sizeof(x), "%s", start_probe(a, 0.0, &seq));
	/* Connection refused: no need to wait for the timeout. */
	membership_probe_result(a, seq, MEMBERSHIP_FAIL, 0.01);
	n = membership_tick(a, 0.02, act, 8);
	assert_int_equal(n, 1);
	assert_int_equal(act[0].kind, MEMBERSHIP_PING_REQ);
	membership_probe_result(a, act[0].seq, MEMBERSHIP_ACK, 0.05);
	/* A late duplicate of the same answer changes nothing. */
	membership_probe_result(a, act[0].seq, MEMBERSHIP_NACK, 0.06);
	clear_actions(act, n);
	n = membership_tick(a, 2.0, act, 8);
	clear_actions(act, n);
	assert_int_equal(state_of(a, x), MEMBERSHIP_ALIVE);
	assert_int_equal(membership_lhm(a), 0);
	membership_free(a);
}

static void
test_refutation(void **state)
{
	struct membership *a = mk(A, 100), *b = mk(B, 200);
	json_t *msg;

	(void)state;
	feed(a, msg_with("ack", B, 200, NULL, NULL, 0, NULL), 0.0);
	/* a hears from c that b is suspect. */
	feed(a, msg_with("ack", C, 300, B, "suspect", 200, C), 0.0);
	assert_int_equal(state_of(a, B), MEMBERSHIP_SUSPECT);

	/* b hears it (the buddy record of a's ping) and refutes. */
	msg = membership_message(a, "ping", B, B, 5, 0);
	assert_true(carries(msg, B, "suspect"));
	feed(b, msg, 0.1);
	assert_int_equal(membership_incarnation(b), 201);
	assert_int_equal(membership_lhm(b), 1);
	/* An older or equal suspicion does not make it bump again. */
	feed(b, msg_with("ack", C, 300, B, "suspect", 200, C), 0.2);
	assert_int_equal(membership_incarnation(b), 201);

	/* b's next message clears it on a. */
	msg = membership_message(b, "ack", A, NULL, 5, 0);
	assert_true(carries(msg, B, "alive"));
	feed(a, msg, 0.3);
	assert_int_equal(state_of(a, B), MEMBERSHIP_ALIVE);
	assert_int_equal(inc_of(a, B), 201);
	/* The stale suspicion at 200 no longer applies. */
	feed(a, msg_with("ack", C, 300, B, "suspect", 200, C), 0.4);
	assert_int_equal(state_of(a, B), MEMBERSHIP_ALIVE);
	/* A node falsely declared dead refutes too. */
	feed(b, msg_with("ack", C, 300, B, "dead", 201, C), 0.5);
	assert_int_equal(membership_incarnation(b), 202);
	assert_int_equal(membership_lhm(b), 2);
	membership_free(a);
	membership_free(b);
}

static void
test_suspicion_shrinks_with_confirmations(void **state)
{
	static const char *const peers[] = { B, C, D, E };
	static const uint64_t incs[] = { 2, 3, 4, 5 };
	struct membership *a = mk(A, 1);

	(void)state;
	know(a, peers, incs, 4);
	/* 5 live members: k = min(3, 5 - 2) = 3. */
	feed(a, msg_with("ack", B, 2, E, "suspect", 5, B), 1.0);
	assert_int_equal(state_of(a, E), MEMBERSHIP_SUSPECT);
	assert_near(membership_suspicion_deadline(a, E), 1.0 + 3.0);
	/* Same voice again: no change. */
	feed(a, msg_with("ack", C, 3, E, "suspect", 5, B), 1.1);
	assert_near(membership_suspicion_deadline(a, E), 4.0);
	/* C confirms: 3 - 1.5 * ln 2 / ln 4 = 2.25. */
	feed(a, msg_with("ack", C, 3, E, "suspect", 5, C), 1.2);
	assert_near(membership_suspicion_deadline(a, E), 1.0 + 2.25);
	/* D confirms: 3 - 1.5 * ln 3 / ln 4. */
	feed(a, msg_with("ack", D, 4, E, "suspect", 5, D), 1.3);
	assert_near(membership_suspicion_deadline(a, E),
	    1.0 + 3.0 - 1.5 * 1.0986122886681098 / 1.3862943611198906);
	/* A third confirmation (a itself) reaches the min, 1.5 s; never below. */
	feed(a, msg_with("ack", D, 4, E, "suspect", 5, A), 1.4);
	assert_near(membership_suspicion_deadline(a, E), 2.5);
	feed(a, msg_with("ack", B, 2, E, "suspect", 5, "10.0.0.9:7000"), 1.5);
	assert_near(membership_suspicion_deadline(a, E), 2.5);
	membership_free(a);
}

static void
test_goodbye_is_left_not_dead(void **state)
{
	struct membership *a = mk(A, 100), *b = mk(B, 200), *c = mk(C, 300);
	struct membership_action act[8];
	json_t *bye, *reply = NULL, *msg;
	size_t n;

	(void)state;
	feed(b, msg_with("ack", A, 100, NULL, NULL, 0, NULL), 0.0);
	feed(b, msg_with("ack", C, 300, NULL, NULL, 0, NULL), 0.0);
	feed(c, msg_with("ack", A, 100, NULL, NULL, 0, NULL), 0.0);
	feed(c, msg_with("ack", B, 200, NULL, NULL, 0, NULL), 0.0);

	bye = membership_leave(a);
	assert_string_equal(json_string_value(json_object_get(bye, "type")), "leave");
	assert_int_equal(membership_handle(b, bye, 1.0, &reply), 0);
	assert_string_equal(json_string_value(json_object_get(reply, "type")), "ack");
	json_decref(reply);
	json_decref(bye);
	assert_int_equal(state_of(b, A), MEMBERSHIP_LEFT);
	/* A leaving node sends nothing more and answers pings with its goodbye. */
	assert_int_equal(membership_tick(a, 2.0, act, 8), 0);
	msg = msg_with("ping", B, 200, NULL, NULL, 0, NULL);
	assert_int_equal(membership_handle(a, msg, 2.0, &reply), 0);
	assert_string_equal(json_string_value(json_object_get(reply, "type")), "leave");
	json_decref(reply);
	json_decref(msg);

	/* b gossips it to c: left there too, never dead. */
	msg = membership_message(b, "ping", C, C, 1, 0);
	assert_true(carries(msg, A, "left"));
	feed(c, msg, 1.1);
	assert_int_equal(state_of(c, A), MEMBERSHIP_LEFT);
	feed(c, msg_with("ack", B, 200, A, "dead", 100, B), 1.2);
	assert_int_equal(state_of(c, A), MEMBERSHIP_LEFT);
	n = membership_tick(c, 30.0, act, 8);
	clear_actions(act, n);
	assert_int_equal(state_of(c, A), MEMBERSHIP_LEFT);
	/* ... and a left member is not a peer any more. */
	{
		char **addrs = NULL;
		size_t na = 0;

		membership_alive(c, &addrs, &na);
		assert_int_equal(na, 2);
		assert_string_equal(addrs[0], B);
		assert_string_equal(addrs[1], C);
		membership_addrs_free(addrs, na);
	}
	membership_free(a);
	membership_free(b);
	membership_free(c);
}

static void
test_restart_new_generation(void **state)
{
	struct membership *b = mk(B, 200), *a2;
	struct membership_action act[8];
	json_t *reply = NULL;
	size_t n;

	(void)state;
	feed(b, msg_with("ack", A, 1000, NULL, NULL, 0, NULL), 0.0);
	feed(b, msg_with("ack", C, 300, A, "dead", 1000, C), 0.5);
	assert_int_equal(state_of(b, A), MEMBERSHIP_DEAD);
	/* A stale message of the old process does not bring it back. */
	feed(b, msg_with("ack", A, 1000, NULL, NULL, 0, NULL), 0.6);
	assert_int_equal(state_of(b, A), MEMBERSHIP_DEAD);

	/* Restarted: a new generation (start time), seed b. */
	a2 = mk(A, 5000);
	membership_add_seed(a2, B);
	n = membership_tick(a2, 10.0, act, 8);
	assert_int_equal(n, 1);
	assert_int_equal(membership_handle(b, act[0].msg, 10.0, &reply), 0);
	clear_actions(act, n);
	assert_int_equal(state_of(b, A), MEMBERSHIP_ALIVE);
	assert_int_equal(inc_of(b, A), 5000);
	/* b's old verdict (dead at 1000) in the ack does not trouble a2. */
	assert_int_equal(membership_handle(a2, reply, 10.0, NULL), 0);
	json_decref(reply);
	assert_int_equal(membership_incarnation(a2), 5000);
	assert_int_equal(state_of(a2, B), MEMBERSHIP_ALIVE);
	membership_free(a2);
	membership_free(b);
}

static void
test_piggyback_retransmit_limit(void **state)
{
	struct membership *a = mk(A, 100);
	int sent = 0;

	(void)state;
	/* a knows b; c joins: "c alive" is news to spread. 3 live members:
	 * lambda * ceil(log2(3 + 1)) = 3 * 2 = 6 transmissions. */
	feed(a, msg_with("ack", B, 200, NULL, NULL, 0, NULL), 0.0);
	for (int i = 0; i < 20; i++) {
		json_t *msg = membership_message(a, "ping", B, B, (uint64_t)i, 0);

		if (i == 0)
			feed(a, msg_with("ack", C, 300, NULL, NULL, 0, NULL), 0.0);
		sent += carries(msg, C, "alive");
		json_decref(msg);
	}
	assert_int_equal(sent, 6);
	assert_int_equal(membership_pending_updates(a), 0);

	/* At most max_piggyback (8) updates per message, newest first. */
	{
		char addr[32];
		json_t *msg, *upd;

		for (int i = 0; i < 12; i++) {
			snprintf(addr, sizeof(addr), "10.0.1.%d:7000", i + 1);
			feed(a, msg_with("ack", addr, 1, NULL, NULL, 0, NULL), 1.0);
		}
		msg = membership_message(a, "ping", B, B, 99, 0);
		upd = json_object_get(msg, "updates");
		assert_int_equal(json_array_size(upd), 8);
		assert_string_equal(json_string_value(json_object_get(json_array_get(upd, 0),
		    "address")), "10.0.1.12:7000");
		json_decref(msg);
	}
	membership_free(a);
}

static void
test_lhm_rises_and_falls(void **state)
{
	static const char *const peers[] = { B, C };
	static const uint64_t incs[] = { 200, 300 };
	struct membership *a = mk(A, 100);
	struct membership_action act[8];
	uint64_t seq;
	size_t n;

	(void)state;
	know(a, peers, incs, 2);
	/* Direct fails and the helper does not even nack: we may be the sick one. */
	start_probe(a, 0.0, &seq);
	membership_probe_result(a, seq, MEMBERSHIP_FAIL, 0.01);
	n = membership_tick(a, 0.02, act, 8);
	assert_int_equal(n, 1);
	membership_probe_result(a, act[0].seq, MEMBERSHIP_FAIL, 0.03);
	clear_actions(act, n);
	n = membership_tick(a, 0.04, act, 8);
	clear_actions(act, n);
	assert_int_equal(membership_lhm(a), 1);
	/* Timeouts and the interval double with LHM 1. */
	assert_near(membership_probe_timeout(a), 0.6);
	/* The probe started at 0.0 with LHM 0: the next one is due at 0.5. */
	start_probe(a, 0.5, &seq);
	/* Stale ack for an old seq: ignored. */
	membership_probe_result(a, 1, MEMBERSHIP_ACK, 0.55);
	assert_int_equal(membership_lhm(a), 1);
	membership_probe_result(a, seq, MEMBERSHIP_ACK, 0.6);
	assert_int_equal(membership_lhm(a), 0);
	/* That probe started with LHM 1: the next is due at 0.5 + 1.0. */
	assert_int_equal(membership_tick(a, 1.49, act, 8), 0);
	n = membership_tick(a, 1.5, act, 8);
	assert_int_equal(n, 1);
	clear_actions(act, n);
	/* The cap: 8. */
	for (int i = 0; i < 20; i++)
		feed(a, msg_with("ack", B, 200, A, "suspect", membership_incarnation(a), B), 2.0);
	assert_int_equal(membership_lhm(a), 8);
	membership_free(a);
}

static void
test_malformed_messages(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"type\": \"ping\", \"incarnation\": 1}",
		"{\"type\": \"ping\", \"from\": \"nohost\", \"incarnation\": 1}",
		"{\"type\": \"ping\", \"from\": \"a b:1\", \"incarnation\": 1}",
		"{\"type\": \"ping\", \"from\": \"10.0.0.2:70000\", \"incarnation\": 1}",
		"{\"type\": \"ping\", \"from\": \"10.0.0.2:7000\", \"incarnation\": -1}",
		"{\"type\": \"ping\", \"from\": \"10.0.0.2:7000\", \"incarnation\": \"1\"}",
		"{\"type\": \"dance\", \"from\": \"10.0.0.2:7000\", \"incarnation\": 1}",
		"{\"type\": \"ping-req\", \"from\": \"10.0.0.2:7000\", \"incarnation\": 1}",
	};
	struct membership *a = mk(A, 100);
	json_t *reply = NULL, *msg;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg = json_loads(bad[i], 0, NULL);
		assert_non_null(msg);
		assert_int_equal(membership_handle(a, msg, 0.0, &reply), -EINVAL);
		assert_null(reply);
		json_decref(msg);
	}
	/* Bad records inside a good message are skipped, the rest applies. */
	msg = json_loads("{\"type\": \"ack\", \"from\": \"10.0.0.2:7000\", \"incarnation\": 1,"
	    " \"updates\": [1, {\"address\": \"x\"}, {\"address\": \"10.0.0.3:7000\","
	    " \"state\": \"zombie\", \"incarnation\": 1}, {\"address\": \"10.0.0.4:7000\","
	    " \"state\": \"alive\", \"incarnation\": 7}]}", 0, NULL);
	feed(a, msg, 0.0);
	assert_int_equal(state_of(a, B), MEMBERSHIP_ALIVE);
	assert_true((int)state_of(a, C) == -1);
	assert_int_equal(state_of(a, D), MEMBERSHIP_ALIVE);
	assert_int_equal(inc_of(a, D), 7);
	membership_free(a);
	assert_int_equal(membership_new("bad", NULL, 1, 0.0, &a), -EINVAL);
	assert_null(a);
}

/* ----------------------------------------------------- simulated cluster */

#define SIM_N 4
static const char *const sim_addr[SIM_N] = { A, B, C, D };

struct sim {
	struct membership *m[SIM_N];
	int up[SIM_N];
	int cut[SIM_N][SIM_N];   /* traffic from i to j is dropped */
};

static int
sim_index(const char *addr)
{
	for (int i = 0; i < SIM_N; i++)
		if (strcmp(sim_addr[i], addr) == 0)
			return i;
	return -1;
}

static int
sim_link(const struct sim *s, int i, int j)
{
	/* A TCP exchange needs both directions. */
	return j >= 0 && s->up[j] && !s->cut[i][j] && !s->cut[j][i];
}

/* Deliver msg from i to j; returns j's reply (new reference) or NULL. */
static json_t *
sim_send(struct sim *s, int i, int j, json_t *msg, double now)
{
	json_t *reply = NULL;

	if (!sim_link(s, i, j))
		return NULL;
	if (membership_handle(s->m[j], msg, now, &reply) < 0)
		return NULL;
	if (reply == NULL && strcmp(json_string_value(json_object_get(msg, "type")),
	    "ping-req") == 0) {
		/* j is the helper: ping the target, answer ack or nack (as gossip.c does). */
		const char *target = json_string_value(json_object_get(msg, "target"));
		int t = sim_index(target);
		json_t *ping = membership_message(s->m[j], "ping", target, target, 0, 0);
		json_t *ans = sim_send(s, j, t, ping, now);
		int ok = ans != NULL && membership_handle(s->m[j], ans, now, NULL) == 0 &&
		    strcmp(json_string_value(json_object_get(ans, "type")), "ack") == 0;

		json_decref(ping);
		json_decref(ans);
		reply = membership_message(s->m[j], ok ? "ack" : "nack", sim_addr[i], target,
		    (uint64_t)json_integer_value(json_object_get(msg, "seq")), 0);
	}
	return reply;
}

static void
sim_step(struct sim *s, double now)
{
	struct membership_action act[32];

	for (int i = 0; i < SIM_N; i++) {
		size_t n;

		if (!s->up[i])
			continue;
		n = membership_tick(s->m[i], now, act, 32);
		for (size_t k = 0; k < n; k++) {
			json_t *reply = sim_send(s, i, sim_index(act[k].to), act[k].msg, now);
			enum membership_result r = MEMBERSHIP_FAIL;

			if (reply != NULL && membership_handle(s->m[i], reply, now, NULL) == 0) {
				const char *t = json_string_value(json_object_get(reply, "type"));

				r = strcmp(t, "nack") == 0 ? MEMBERSHIP_NACK : MEMBERSHIP_ACK;
			}
			membership_probe_result(s->m[i], act[k].seq, r, now);
			json_decref(reply);
			membership_action_clear(&act[k]);
		}
	}
}

static void
sim_start(struct sim *s, int i, uint64_t inc, double now)
{
	struct membership_params p;

	membership_params_default(&p);
	p.seed = (uint64_t)(i + 1) * 7919 + inc;
	membership_free(s->m[i]);
	assert_int_equal(membership_new(sim_addr[i], &p, inc, now, &s->m[i]), 0);
	membership_add_seed(s->m[i], A);
	s->up[i] = 1;
}

static int
sim_all_see(const struct sim *s, int who, enum membership_state st)
{
	for (int i = 0; i < SIM_N; i++)
		if (i != who && s->up[i] && state_of(s->m[i], sim_addr[who]) != st)
			return 0;
	return 1;
}

static void
sim_free(struct sim *s)
{
	for (int i = 0; i < SIM_N; i++)
		membership_free(s->m[i]);
}

static double
sim_converge(struct sim *s, double t)
{
	for (double end = t + 5.0; t < end; t += 0.05) {
		int ok = 1;

		sim_step(s, t);
		for (int i = 0; i < SIM_N; i++)
			ok &= sim_all_see(s, i, MEMBERSHIP_ALIVE);
		if (ok)
			return t;
	}
	fail_msg("no convergence within 5 s");
	return t;
}

static void
test_sim_kill_restart(void **state)
{
	struct sim s;
	double t, t_kill;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < SIM_N; i++)
		sim_start(&s, i, 1000 + (uint64_t)i, 0.0);
	t = sim_converge(&s, 0.0);
	assert_true(t < 2.0);

	/* kill -9 of c: dead on every other node within 6 s. */
	s.up[2] = 0;
	t_kill = t;
	for (t += 0.05; t < t_kill + 6.0 && !sim_all_see(&s, 2, MEMBERSHIP_DEAD); t += 0.05)
		sim_step(&s, t);
	assert_true(sim_all_see(&s, 2, MEMBERSHIP_DEAD));
	assert_true(t - t_kill < 6.0);
	for (int i = 0; i < SIM_N; i++)
		if (i != 2)
			assert_int_equal(membership_lhm(s.m[i]), 0);

	/* Restarted with a new generation: alive everywhere within 6 s. */
	sim_start(&s, 2, 9000, t);
	t_kill = t;
	for (t += 0.05; t < t_kill + 6.0 && !sim_all_see(&s, 2, MEMBERSHIP_ALIVE); t += 0.05)
		sim_step(&s, t);
	assert_true(sim_all_see(&s, 2, MEMBERSHIP_ALIVE));
	assert_int_equal(inc_of(s.m[1], C), 9000);

	/* The seed itself killed and restarted (no other seed): found by reconnects. */
	s.up[0] = 0;
	for (double end = t + 6.0; t < end; t += 0.05)
		sim_step(&s, t);
	assert_true(sim_all_see(&s, 0, MEMBERSHIP_DEAD));
	sim_start(&s, 0, 20000, t);
	t_kill = t;
	for (t += 0.05; t < t_kill + 6.0 && !sim_all_see(&s, 0, MEMBERSHIP_ALIVE); t += 0.05)
		sim_step(&s, t);
	assert_true(sim_all_see(&s, 0, MEMBERSHIP_ALIVE));
	assert_int_equal(state_of(s.m[0], D), MEMBERSHIP_ALIVE);
	sim_free(&s);
}

static void
test_sim_blackhole_never_dead(void **state)
{
	struct sim s;
	double t;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < SIM_N; i++)
		sim_start(&s, i, 1000 + (uint64_t)i, 0.0);
	t = sim_converge(&s, 0.0);
	/* Traffic from a to b dropped: indirect probes keep b alive for 30 s. */
	s.cut[0][1] = 1;
	for (double end = t + 30.0; t < end; t += 0.05) {
		sim_step(&s, t);
		for (int i = 0; i < SIM_N; i++)
			for (int j = 0; j < SIM_N; j++)
				if (i != j)
					assert_int_not_equal(state_of(s.m[i], sim_addr[j]),
					    MEMBERSHIP_DEAD);
	}
	sim_free(&s);
}

static void
test_sim_goodbye(void **state)
{
	struct sim s;
	json_t *bye;
	double t;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < SIM_N; i++)
		sim_start(&s, i, 1000 + (uint64_t)i, 0.0);
	t = sim_converge(&s, 0.0);
	/* d says goodbye to b only; the others learn it by gossip. */
	bye = membership_leave(s.m[3]);
	json_decref(sim_send(&s, 3, 1, bye, t));
	json_decref(bye);
	s.up[3] = 0;
	for (double end = t + 2.0; t < end; t += 0.05)
		sim_step(&s, t);
	assert_true(sim_all_see(&s, 3, MEMBERSHIP_LEFT));
	for (double end = t + 10.0; t < end; t += 0.05)
		sim_step(&s, t);
	assert_true(sim_all_see(&s, 3, MEMBERSHIP_LEFT));
	sim_free(&s);
}

/* Members by state for GET /metrics: self counts as alive, then as left. */
static void
test_count_by_state(void **state)
{
	struct membership *m = mk(A, 1);
	json_t *bye;

	(void)state;
	assert_int_equal(membership_count(m, MEMBERSHIP_ALIVE), 1);
	feed(m, msg_with("ack", D, 1, NULL, NULL, 0, NULL), 0.0);
	feed(m, msg_with("ack", E, 1, NULL, NULL, 0, NULL), 0.0);
	feed(m, msg_with("ack", B, 1, C, "suspect", 1, B), 0.0);
	feed(m, msg_with("ack", B, 1, D, "dead", 1, B), 0.0);
	feed(m, msg_with("leave", E, 1, NULL, NULL, 0, NULL), 0.0);
	assert_int_equal(state_of(m, C), MEMBERSHIP_SUSPECT);
	assert_int_equal(membership_count(m, MEMBERSHIP_ALIVE), 2);
	assert_int_equal(membership_count(m, MEMBERSHIP_SUSPECT), 1);
	assert_int_equal(membership_count(m, MEMBERSHIP_DEAD), 1);
	assert_int_equal(membership_count(m, MEMBERSHIP_LEFT), 1);
	assert_int_equal(membership_count(m, (enum membership_state)7), 0);
	bye = membership_leave(m);
	json_decref(bye);
	assert_int_equal(membership_count(m, MEMBERSHIP_ALIVE), 1);
	assert_int_equal(membership_count(m, MEMBERSHIP_LEFT), 2);
	membership_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_count_by_state),
		cmocka_unit_test(test_join_via_seed),
		cmocka_unit_test(test_miss_pingreq_suspect_dead),
		cmocka_unit_test(test_indirect_ack_saves),
		cmocka_unit_test(test_refutation),
		cmocka_unit_test(test_suspicion_shrinks_with_confirmations),
		cmocka_unit_test(test_goodbye_is_left_not_dead),
		cmocka_unit_test(test_restart_new_generation),
		cmocka_unit_test(test_piggyback_retransmit_limit),
		cmocka_unit_test(test_lhm_rises_and_falls),
		cmocka_unit_test(test_malformed_messages),
		cmocka_unit_test(test_sim_kill_restart),
		cmocka_unit_test(test_sim_blackhole_never_dead),
		cmocka_unit_test(test_sim_goodbye),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
