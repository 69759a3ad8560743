/*
 * membership.c - the SWIM + Lifeguard state machine (see membership.h).
 *
 * Owns the member table, the queue of updates to piggyback, the current
 * probe and the local health multiplier (LHM). Pure: every input comes in as
 * an argument (messages, the time, probe outcomes), every output goes out as
 * a return value (replies, actions, events). The caller serialises calls.
 *
 * Rules (SWIM section 4 with Lifeguard):
 *  - one probe at a time, round robin over alive and suspect members in a
 *    shuffled order; direct ping, then ping-req through up to k helpers,
 *    then suspect;
 *  - precedence: alive(i) beats suspect/dead/left(j) when i > j; suspect(i)
 *    beats alive(j) when i >= j; dead and left beat alive/suspect when i >= j;
 *    left beats dead at the same incarnation; suspicions about dead or left
 *    members are ignored;
 *  - a node that hears itself suspected, dead or left refutes: incarnation
 *    becomes the heard one plus one and an alive update goes out;
 *  - Lifeguard: LHM +1 on a failed probe (+1 per helper that did not even
 *    nack), +1 on a refutation, -1 on a direct ack; probe interval and
 *    timeouts are multiplied by LHM+1; a ping to a member we suspect carries
 *    that suspicion (buddy system); the suspicion timeout shrinks from max to
 *    min as independent confirmations arrive:
 *      max - (max - min) * log(C + 1) / log(K + 1), K = clamp(n - 2, 1, k).
 */
#include "cluster/membership.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/util.h"

#define MEMBERSHIP_MAX_CONFIRM 8      /* confirmers remembered per suspicion */
#define MEMBERSHIP_MAX_UPDATES (2 * MEMBERSHIP_MAX_MEMBERS)
#define MEMBERSHIP_MAX_EVENTS 64
#define MEMBERSHIP_MAX_HELPERS 8
#define MEMBERSHIP_MAX_IN_UPDATES 256 /* records read from one message's "updates" */

struct member {
	char addr[MEMBERSHIP_ADDR_MAX];
	enum membership_state state;
	uint64_t inc;
	double since;
	double suspect_start;
	char suspecter[MEMBERSHIP_ADDR_MAX];   /* who started the suspicion */
	int nconfirm;                          /* independent confirmations */
	char confirmers[MEMBERSHIP_MAX_CONFIRM][MEMBERSHIP_ADDR_MAX];
	double next_reconnect;
};

struct update {
	char addr[MEMBERSHIP_ADDR_MAX];
	enum membership_state state;
	uint64_t inc;
	char from[MEMBERSHIP_ADDR_MAX];
	int transmits;
	uint64_t order;                        /* larger is newer */
	int bulk;                              /* learnt from a whole table, not news */
};

enum probe_phase { PROBE_IDLE, PROBE_DIRECT, PROBE_INDIRECT };

struct probe {
	enum probe_phase phase;
	char target[MEMBERSHIP_ADDR_MAX];
	uint64_t seq;                          /* the direct ping */
	uint64_t req_seq0;                     /* ping-reqs: req_seq0 .. req_seq0+nreq-1 */
	int nreq;
	int nacks;
	int nfails;
	unsigned answered;                     /* bit per helper */
	int direct_failed;
	double deadline;
};

struct seed {
	char addr[MEMBERSHIP_ADDR_MAX];
	double next;
};

struct membership {
	char self[MEMBERSHIP_ADDR_MAX];
	uint64_t inc;
	int leaving;
	double self_since;
	struct membership_params p;
	struct member *members;
	size_t n, alloc;
	uint32_t index[2 * MEMBERSHIP_MAX_MEMBERS];  /* by address hash: member + 1, 0 empty */
	size_t nstate[4];                      /* members by state */
	int in_table;                          /* merging a whole table ("members") */
	struct update *updates;
	size_t nupd, updalloc;
	uint64_t upd_order;
	struct seed seeds[MEMBERSHIP_MAX_SEEDS];
	size_t nseeds;
	struct probe probe;
	double next_probe;
	double next_sync;
	uint64_t seq;
	uint64_t rng;
	int lhm;
	size_t *order;                         /* probe order: member indices */
	size_t norder, order_pos;
	struct membership_event events[MEMBERSHIP_MAX_EVENTS];
	size_t nev;
};

/* ---------------------------------------------------------------- helpers */

static const char *const membership_state_names[] = { "alive", "suspect", "dead", "left" };

const char *
membership_state_name(enum membership_state s)
{
	if ((unsigned)s > MEMBERSHIP_LEFT)
		return "unknown";
	return membership_state_names[s];
}

static int
membership_state_parse(const char *s, enum membership_state *out)
{
	for (int i = 0; i <= MEMBERSHIP_LEFT; i++) {
		if (strcmp(s, membership_state_names[i]) == 0) {
			*out = (enum membership_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* "host:port" with a sane host: letters, digits, '.', '-', '_', ':', '[', ']'. */
static int
membership_addr_valid(const char *s)
{
	char host[MEMBERSHIP_ADDR_MAX];
	int port;

	if (s == NULL || strlen(s) >= MEMBERSHIP_ADDR_MAX)
		return 0;
	for (const char *c = s; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_' ||
		    *c == ':' || *c == '[' || *c == ']'))
			return 0;
	}
	return config_split_hostport(s, host, sizeof(host), &port) == 0;
}

static void
membership_copy(char *dst, const char *src)
{
	snprintf(dst, MEMBERSHIP_ADDR_MAX, "%s", src);
}

/* Updates one message carries at most (params.max_piggyback is capped to it). */
#define MEMBERSHIP_MAX_PIGGYBACK 64

/* Reconnect pings a dead member gets per reconnect_interval, in a big network. */
#define MEMBERSHIP_RECONNECT_SPREAD 8

/* xorshift64*: deterministic for a given params.seed. */
static uint64_t
membership_rand(struct membership *m)
{
	uint64_t x = m->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	m->rng = x;
	return x * 2685821657736338717ULL;
}

static size_t
membership_rand_below(struct membership *m, size_t n)
{
	return n == 0 ? 0 : (size_t)(membership_rand(m) % n);
}

/* Natural logarithms of 1..17, so the suspicion formula needs no libm. */
static const double membership_ln[] = {
	0.0, 0.0, 0.6931471805599453, 1.0986122886681098, 1.3862943611198906,
	1.6094379124341003, 1.791759469228055, 1.9459101090932196, 2.0794415416798357,
	2.1972245773362196, 2.302585092994046, 2.3978952727983707, 2.4849066497880004,
	2.5649493574615367, 2.6390573296152584, 2.70805020110221, 2.772588722239781,
	2.833213344056216,
};

static double
membership_ln_small(int x)
{
	if (x < 1)
		x = 1;
	if (x > 17)
		x = 17;
	return membership_ln[x];
}

static void
membership_event(struct membership *m, const char *addr, enum membership_state st,
    uint64_t inc, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
membership_event(struct membership *m, const char *addr, enum membership_state st,
    uint64_t inc, const char *fmt, ...)
{
	struct membership_event *e;
	va_list ap;

	if (m->nev == MEMBERSHIP_MAX_EVENTS) {
		/* Drop the oldest: the log is best-effort, the table is the truth. */
		memmove(&m->events[0], &m->events[1], sizeof(m->events[0]) * (m->nev - 1));
		m->nev--;
	}
	e = &m->events[m->nev++];
	membership_copy(e->address, addr);
	e->state = st;
	e->incarnation = inc;
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
}

/* The slot of addr in the index: where it is, or the empty one it would take. */
static size_t
membership_slot(const struct membership *m, const char *addr)
{
	const size_t cap = sizeof(m->index) / sizeof(m->index[0]);
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	for (i = (size_t)(h % cap); m->index[i] != 0; i = (i + 1) % cap)
		if (strcmp(m->members[m->index[i] - 1].addr, addr) == 0)
			break;
	return i;
}

/* A member by address, in constant time whatever the table's size. */
static struct member *
membership_find(const struct membership *m, const char *addr)
{
	size_t i = membership_slot(m, addr);

	return m->index[i] != 0 ? &m->members[m->index[i] - 1] : NULL;
}

static struct member *
membership_insert(struct membership *m, const char *addr)
{
	struct member *x;

	if (m->n == MEMBERSHIP_MAX_MEMBERS)
		return NULL;
	if (m->n == m->alloc) {
		size_t na = m->alloc ? m->alloc * 2 : 8;
		struct member *nm = realloc(m->members, na * sizeof(*nm));

		if (nm == NULL)
			return NULL;
		m->members = nm;
		m->alloc = na;
	}
	x = &m->members[m->n];
	memset(x, 0, sizeof(*x));
	membership_copy(x->addr, addr);
	m->index[membership_slot(m, addr)] = (uint32_t)++m->n;
	return x;
}

/* Members that count for the cluster size: alive and suspect, and self. */
static size_t
membership_live_count(const struct membership *m)
{
	return 1 + m->nstate[MEMBERSHIP_ALIVE] + m->nstate[MEMBERSHIP_SUSPECT];
}

static int
membership_retransmit_limit(const struct membership *m)
{
	size_t n = membership_live_count(m) + 1;
	int lg = 0;

	/* ceil(log2(n + 1)) */
	while (((size_t)1 << lg) < n)
		lg++;
	if (lg < 1)
		lg = 1;
	return m->p.retransmit_mult * lg;
}

static double
membership_scale(const struct membership *m)
{
	return (double)(m->lhm + 1);
}

static void
membership_lhm_add(struct membership *m, int delta)
{
	m->lhm += delta;
	if (m->lhm < 0)
		m->lhm = 0;
	if (m->lhm > m->p.lhm_max)
		m->lhm = m->p.lhm_max;
}

/* ---------------------------------------------------------------- updates */

/* Queue an update for piggybacking; a newer one about the same member replaces it. */
static void
membership_queue(struct membership *m, const char *addr, enum membership_state st,
    uint64_t inc, const char *from)
{
	struct update *u = NULL;

	for (size_t i = 0; i < m->nupd; i++) {
		if (strcmp(m->updates[i].addr, addr) == 0) {
			u = &m->updates[i];
			break;
		}
	}
	if (u == NULL) {
		if (m->nupd == MEMBERSHIP_MAX_UPDATES)
			return;
		if (m->nupd == m->updalloc) {
			size_t na = m->updalloc ? m->updalloc * 2 : 16;
			struct update *nu = realloc(m->updates, na * sizeof(*nu));

			if (nu == NULL)
				return;
			m->updates = nu;
			m->updalloc = na;
		}
		u = &m->updates[m->nupd++];
		membership_copy(u->addr, addr);
	}
	u->state = st;
	u->inc = inc;
	membership_copy(u->from, from);
	u->transmits = 0;
	u->order = ++m->upd_order;
	u->bulk = m->in_table;
}

static json_t *
membership_record(const char *addr, enum membership_state st, uint64_t inc, const char *from)
{
	return json_pack("{s:s, s:s, s:I, s:s}", "address", addr, "state",
	    membership_state_name(st), "incarnation", (json_int_t)inc, "from", from);
}

static int
membership_update_cmp(const void *a, const void *b)
{
	const struct update *x = a, *y = b;

	/*
	 * News first: what a whole table taught (a join's hundreds of members)
	 * goes only where news leaves room, so that a suspicion, a death or a
	 * refutation never waits behind it.
	 */
	if (x->bulk != y->bulk)
		return x->bulk ? 1 : -1;
	if (x->transmits != y->transmits)
		return x->transmits < y->transmits ? -1 : 1;
	if (x->order != y->order)
		return x->order > y->order ? -1 : 1;
	return 0;
}

/*
 * Append up to max_piggyback queued updates, news before what a whole table
 * taught, then least sent (newest) first, and count the transmission;
 * updates sent often enough leave the queue. Updates
 * about "skip" are left out (the caller put a fresher record first).
 */
static void
membership_piggyback(struct membership *m, json_t *arr, const char *skip)
{
	int limit = membership_retransmit_limit(m);
	size_t best[MEMBERSHIP_MAX_PIGGYBACK], nbest = 0, w = 0;
	size_t want = (size_t)m->p.max_piggyback;

	/*
	 * The want best by membership_update_cmp, in one pass (a message costs
	 * the length of the queue, not a sort of it).
	 */
	for (size_t i = 0; i < m->nupd; i++) {
		size_t j;

		if (skip != NULL && strcmp(m->updates[i].addr, skip) == 0)
			continue;
		if (nbest == want && membership_update_cmp(&m->updates[i],
		    &m->updates[best[nbest - 1]]) >= 0)
			continue;
		j = nbest < want ? nbest++ : nbest - 1;
		while (j > 0 && membership_update_cmp(&m->updates[i], &m->updates[best[j - 1]]) < 0) {
			best[j] = best[j - 1];
			j--;
		}
		best[j] = i;
	}
	for (size_t k = 0; k < nbest; k++) {
		struct update *u = &m->updates[best[k]];

		json_array_append_new(arr, membership_record(u->addr, u->state, u->inc, u->from));
		u->transmits++;
	}
	for (size_t i = 0; i < m->nupd; i++)
		if (m->updates[i].transmits < limit)
			m->updates[w++] = m->updates[i];
	m->nupd = w;
}

/* ------------------------------------------------------------- suspicion */

static double
membership_suspicion_timeout(const struct membership *m, const struct member *x)
{
	long k = (long)membership_live_count(m) - 2;
	double frac, t;

	if (k > m->p.suspicion_k)
		k = m->p.suspicion_k;
	if (k < 1)
		k = 1;
	frac = membership_ln_small(x->nconfirm + 1) / membership_ln_small((int)k + 1);
	if (frac > 1.0)
		frac = 1.0;
	t = m->p.suspicion_max - (m->p.suspicion_max - m->p.suspicion_min) * frac;
	return t < m->p.suspicion_min ? m->p.suspicion_min : t;
}

double
membership_suspicion_deadline(const struct membership *m, const char *addr)
{
	const struct member *x = membership_find(m, addr);

	if (x == NULL || x->state != MEMBERSHIP_SUSPECT)
		return -1;
	return x->suspect_start + membership_suspicion_timeout(m, x);
}

/* Count "from" as a confirmation of x's suspicion if it is a new voice. */
static int
membership_confirm(struct membership *m, struct member *x, const char *from)
{
	(void)m;
	if (strcmp(from, x->suspecter) == 0)
		return 0;
	for (int i = 0; i < x->nconfirm && i < MEMBERSHIP_MAX_CONFIRM; i++)
		if (strcmp(x->confirmers[i], from) == 0)
			return 0;
	if (x->nconfirm >= MEMBERSHIP_MAX_CONFIRM)
		return 0;
	membership_copy(x->confirmers[x->nconfirm++], from);
	return 1;
}

static void
membership_set_state(struct membership *m, struct member *x, enum membership_state st,
    uint64_t inc, double now)
{
	m->nstate[x->state]--;
	m->nstate[st]++;
	if (x->state != st)
		x->since = now;
	x->state = st;
	x->inc = inc;
	if (st != MEMBERSHIP_SUSPECT) {
		x->nconfirm = 0;
		x->suspecter[0] = '\0';
	}
	/* It just stopped answering: the first reconnect ping can wait a while. */
	if (st >= MEMBERSHIP_DEAD)
		x->next_reconnect = now + 1.0;
}

/* --------------------------------------------------------------- merging */

static void
membership_refute(struct membership *m, enum membership_state heard, uint64_t inc,
    const char *from)
{
	if (m->leaving || inc < m->inc)
		return;
	m->inc = inc + 1;
	membership_lhm_add(m, 1);
	membership_queue(m, m->self, MEMBERSHIP_ALIVE, m->inc, m->self);
	membership_event(m, m->self, MEMBERSHIP_ALIVE, m->inc,
	    "refuted: %s said it is %s, incarnation now %llu", from,
	    membership_state_name(heard), (unsigned long long)m->inc);
}

/*
 * Apply one record. from is who vouches for it (the original suspecter for a
 * suspicion). Returns 1 if the table changed (the record is then queued for
 * gossip), 0 if it was old news.
 */
static int
membership_apply(struct membership *m, const char *addr, enum membership_state st,
    uint64_t inc, const char *from, double now)
{
	struct member *x;

	if (strcmp(addr, m->self) == 0) {
		if (st != MEMBERSHIP_ALIVE)
			membership_refute(m, st, inc, from);
		return 0;
	}
	x = membership_find(m, addr);
	if (x == NULL) {
		/* Dead or left strangers are not worth a row (nor reconnect pings). */
		if (st >= MEMBERSHIP_DEAD)
			return 0;
		x = membership_insert(m, addr);
		if (x == NULL)
			return 0;
		x->state = st;
		m->nstate[st]++;
		x->inc = inc;
		x->since = now;
		if (st == MEMBERSHIP_SUSPECT) {
			x->suspect_start = now;
			membership_copy(x->suspecter, from);
		}
		membership_queue(m, addr, st, inc, from);
		membership_event(m, addr, st, inc, "joined (%s, heard from %s)",
		    membership_state_name(st), from);
		return 1;
	}
	switch (st) {
	case MEMBERSHIP_ALIVE:
		if (inc <= x->inc)
			return 0;
		if (x->state != MEMBERSHIP_ALIVE)
			membership_event(m, addr, st, inc, "is alive (was %s, incarnation %llu)",
			    membership_state_name(x->state), (unsigned long long)inc);
		membership_set_state(m, x, MEMBERSHIP_ALIVE, inc, now);
		break;
	case MEMBERSHIP_SUSPECT:
		if (inc < x->inc || x->state >= MEMBERSHIP_DEAD)
			return 0;
		if (x->state == MEMBERSHIP_SUSPECT) {
			if (inc > x->inc)
				x->inc = inc;
			if (!membership_confirm(m, x, from))
				return 0;
			/* Re-gossip so the others count this voice too. */
			membership_queue(m, addr, st, x->inc, from);
			return 1;
		}
		membership_set_state(m, x, MEMBERSHIP_SUSPECT, inc, now);
		x->suspect_start = now;
		membership_copy(x->suspecter, from);
		membership_event(m, addr, st, inc, "is suspect (reported by %s)", from);
		break;
	case MEMBERSHIP_DEAD:
		if (inc < x->inc || x->state >= MEMBERSHIP_DEAD)
			return 0;
		membership_event(m, addr, st, inc, "is dead (reported by %s)", from);
		membership_set_state(m, x, MEMBERSHIP_DEAD, inc, now);
		break;
	case MEMBERSHIP_LEFT:
		if (inc < x->inc || x->state == MEMBERSHIP_LEFT)
			return 0;
		membership_event(m, addr, st, inc, "left (goodbye, heard from %s)", from);
		membership_set_state(m, x, MEMBERSHIP_LEFT, inc, now);
		break;
	}
	membership_queue(m, addr, st, inc, from);
	return 1;
}

/* Read one {"address","state","incarnation","from"} record; -EINVAL if bad. */
static int
membership_apply_record(struct membership *m, const json_t *rec, const char *sender,
    double now)
{
	const char *addr, *state, *from = sender;
	json_t *inc, *jf;
	enum membership_state st;

	if (!json_is_object(rec))
		return -EINVAL;
	addr = json_string_value(json_object_get(rec, "address"));
	state = json_string_value(json_object_get(rec, "state"));
	inc = json_object_get(rec, "incarnation");
	jf = json_object_get(rec, "from");
	if (!membership_addr_valid(addr) || state == NULL ||
	    membership_state_parse(state, &st) < 0 || !json_is_integer(inc) ||
	    json_integer_value(inc) < 0)
		return -EINVAL;
	if (json_is_string(jf) && membership_addr_valid(json_string_value(jf)))
		from = json_string_value(jf);
	membership_apply(m, addr, st, (uint64_t)json_integer_value(inc), from, now);
	return 0;
}

/* ----------------------------------------------------------------- public */

void
membership_params_default(struct membership_params *p)
{
	memset(p, 0, sizeof(*p));
	p->probe_interval = 0.5;
	p->probe_timeout = 0.3;
	p->indirect_timeout = 0.6;
	p->indirect_helpers = 3;
	p->suspicion_min = 1.5;
	p->suspicion_max = 3.0;
	p->suspicion_k = 3;
	p->retransmit_mult = 3;
	p->max_piggyback = 8;
	p->lhm_max = 8;
	p->reconnect_interval = 1.0;
	p->sync_interval = 10.0;
	p->seed = 0x9e3779b97f4a7c15ULL;
}

int
membership_new(const char *self, const struct membership_params *p, uint64_t incarnation,
    double now, struct membership **out)
{
	struct membership *m;

	*out = NULL;
	if (!membership_addr_valid(self))
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	membership_copy(m->self, self);
	if (p != NULL)
		m->p = *p;
	else
		membership_params_default(&m->p);
	if (m->p.indirect_helpers > MEMBERSHIP_MAX_HELPERS)
		m->p.indirect_helpers = MEMBERSHIP_MAX_HELPERS;
	if (m->p.max_piggyback < 1)
		m->p.max_piggyback = 1;
	if (m->p.max_piggyback > MEMBERSHIP_MAX_PIGGYBACK)
		m->p.max_piggyback = MEMBERSHIP_MAX_PIGGYBACK;
	if (m->p.retransmit_mult < 1)
		m->p.retransmit_mult = 1;
	m->inc = incarnation;
	m->self_since = now;
	m->rng = m->p.seed ? m->p.seed : 1;
	m->next_probe = now;
	m->next_sync = now + m->p.sync_interval;
	m->seq = 1;
	*out = m;
	return 0;
}

void
membership_free(struct membership *m)
{
	if (m == NULL)
		return;
	free(m->members);
	free(m->updates);
	free(m->order);
	free(m);
}

int
membership_add_seed(struct membership *m, const char *addr)
{
	if (!membership_addr_valid(addr))
		return -EINVAL;
	if (strcmp(addr, m->self) == 0)
		return 0;
	for (size_t i = 0; i < m->nseeds; i++)
		if (strcmp(m->seeds[i].addr, addr) == 0)
			return 0;
	if (m->nseeds == MEMBERSHIP_MAX_SEEDS)
		return -ENOSPC;
	membership_copy(m->seeds[m->nseeds].addr, addr);
	m->seeds[m->nseeds].next = 0;
	m->nseeds++;
	return 0;
}

json_t *
membership_message(struct membership *m, const char *type, const char *to,
    const char *target, uint64_t seq, int sync)
{
	json_t *msg, *upd;
	const struct member *x = to != NULL ? membership_find(m, to) : NULL;
	const char *skip = NULL;

	const struct member *t = target != NULL && (to == NULL || strcmp(target, to) != 0) ?
	    membership_find(m, target) : NULL;

	upd = json_array();
	/*
	 * Buddy system: tell a member what we hold against it, so it can refute
	 * at once; a ping-req carries it for the helper to pass on.
	 */
	if (x != NULL && x->state != MEMBERSHIP_ALIVE) {
		json_array_append_new(upd, membership_record(x->addr, x->state, x->inc,
		    x->state == MEMBERSHIP_SUSPECT && x->suspecter[0] ? x->suspecter : m->self));
		skip = x->addr;
	}
	if (t != NULL && t->state != MEMBERSHIP_ALIVE)
		json_array_append_new(upd, membership_record(t->addr, t->state, t->inc,
		    t->state == MEMBERSHIP_SUSPECT && t->suspecter[0] ? t->suspecter : m->self));
	membership_piggyback(m, upd, skip);
	msg = json_pack("{s:s, s:s, s:I, s:I, s:o}", "type", type, "from", m->self,
	    "incarnation", (json_int_t)m->inc, "seq", (json_int_t)seq, "updates", upd);
	if (target != NULL)
		json_object_set_new(msg, "target", json_string(target));
	if (sync) {
		json_object_set_new(msg, "sync", json_true());
		json_object_set_new(msg, "members", membership_members(m));
	}
	return msg;
}

int
membership_handle(struct membership *m, const json_t *msg, double now, json_t **reply)
{
	const char *type, *from;
	json_t *inc, *seq, *arr, *rec;
	size_t i;
	uint64_t s = 0;

	if (reply != NULL)
		*reply = NULL;
	if (!json_is_object(msg))
		return -EINVAL;
	type = json_string_value(json_object_get(msg, "type"));
	from = json_string_value(json_object_get(msg, "from"));
	inc = json_object_get(msg, "incarnation");
	seq = json_object_get(msg, "seq");
	if (type == NULL || !membership_addr_valid(from) || !json_is_integer(inc) ||
	    json_integer_value(inc) < 0)
		return -EINVAL;
	if (strcmp(type, "ping") != 0 && strcmp(type, "ping-req") != 0 &&
	    strcmp(type, "ack") != 0 && strcmp(type, "nack") != 0 &&
	    strcmp(type, "leave") != 0)
		return -EINVAL;
	if (strcmp(type, "ping-req") == 0 &&
	    !membership_addr_valid(json_string_value(json_object_get(msg, "target"))))
		return -EINVAL;
	if (json_is_integer(seq) && json_integer_value(seq) >= 0)
		s = (uint64_t)json_integer_value(seq);

	/* The sender itself: alive at its incarnation, or left if saying goodbye. */
	membership_apply(m, from, strcmp(type, "leave") == 0 ? MEMBERSHIP_LEFT : MEMBERSHIP_ALIVE,
	    (uint64_t)json_integer_value(inc), from, now);
	arr = json_object_get(msg, "updates");
	if (json_is_array(arr)) {
		json_array_foreach(arr, i, rec) {
			if (i >= MEMBERSHIP_MAX_IN_UPDATES)
				break;
			membership_apply_record(m, rec, from, now);
		}
	}
	arr = json_object_get(msg, "members");
	if (json_is_array(arr)) {
		m->in_table = 1;
		json_array_foreach(arr, i, rec) {
			if (i >= MEMBERSHIP_MAX_MEMBERS)
				break;
			membership_apply_record(m, rec, from, now);
		}
		m->in_table = 0;
	}
	if (reply == NULL)
		return 0;
	if (m->leaving) {
		/* Whoever still talks to us learns that we left. */
		if (strcmp(type, "ping") == 0 || strcmp(type, "ping-req") == 0)
			*reply = membership_leave(m);
		return 0;
	}
	if (strcmp(type, "ping") == 0)
		*reply = membership_message(m, "ack", from, NULL, s,
		    json_is_true(json_object_get(msg, "sync")));
	else if (strcmp(type, "leave") == 0)
		*reply = membership_message(m, "ack", from, NULL, s, 0);
	return 0;
}

/* ----------------------------------------------------------------- probes */

static void
membership_action_set(struct membership_action *a, enum membership_action_kind kind,
    uint64_t seq, const char *to, const char *target, double timeout, json_t *msg)
{
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->seq = seq;
	membership_copy(a->to, to);
	membership_copy(a->target, target);
	a->timeout = timeout;
	a->msg = msg;
}

void
membership_action_clear(struct membership_action *a)
{
	json_decref(a->msg);
	a->msg = NULL;
}

/* Next member to probe: round robin over a shuffled list, reshuffled each round. */
static struct member *
membership_next_target(struct membership *m)
{
	for (int round = 0; round < 2; round++) {
		while (m->order_pos < m->norder) {
			size_t idx = m->order[m->order_pos++];

			if (idx < m->n && m->members[idx].state <= MEMBERSHIP_SUSPECT)
				return &m->members[idx];
		}
		free(m->order);
		m->order = NULL;
		m->norder = m->order_pos = 0;
		if (m->n == 0)
			return NULL;
		m->order = malloc(m->n * sizeof(*m->order));
		if (m->order == NULL)
			return NULL;
		for (size_t i = 0; i < m->n; i++)
			if (m->members[i].state <= MEMBERSHIP_SUSPECT)
				m->order[m->norder++] = i;
		for (size_t i = m->norder; i > 1; i--) {
			size_t j = membership_rand_below(m, i);
			size_t t = m->order[i - 1];

			m->order[i - 1] = m->order[j];
			m->order[j] = t;
		}
	}
	return NULL;
}

/* The probe found no ack: suspect the target (or confirm our suspicion). */
static void
membership_probe_failed(struct membership *m, double now)
{
	struct probe *pr = &m->probe;
	struct member *x = membership_find(m, pr->target);
	int delta;

	/* Helpers that did not even nack hint that we are the slow one. */
	delta = pr->nreq > 0 ? pr->nreq - pr->nacks : 1;
	membership_lhm_add(m, delta);
	pr->phase = PROBE_IDLE;
	if (x == NULL)
		return;
	if (x->state == MEMBERSHIP_ALIVE) {
		membership_set_state(m, x, MEMBERSHIP_SUSPECT, x->inc, now);
		x->suspect_start = now;
		membership_copy(x->suspecter, m->self);
		membership_queue(m, x->addr, MEMBERSHIP_SUSPECT, x->inc, m->self);
		membership_event(m, x->addr, MEMBERSHIP_SUSPECT, x->inc,
		    "is suspect (no ack to a direct probe nor through %d helpers, %d nacks)",
		    pr->nreq, pr->nacks);
	} else if (x->state == MEMBERSHIP_SUSPECT) {
		if (membership_confirm(m, x, m->self))
			membership_queue(m, x->addr, MEMBERSHIP_SUSPECT, x->inc, m->self);
	}
}

static size_t
membership_start_indirect(struct membership *m, double now,
    struct membership_action *actions, size_t max)
{
	struct probe *pr = &m->probe;
	size_t cand[MEMBERSHIP_MAX_MEMBERS];
	size_t nc = 0, k = 0;
	double timeout = m->p.indirect_timeout * membership_scale(m);

	for (size_t i = 0; i < m->n; i++)
		if (m->members[i].state == MEMBERSHIP_ALIVE &&
		    strcmp(m->members[i].addr, pr->target) != 0)
			cand[nc++] = i;
	pr->nreq = 0;
	pr->nacks = pr->nfails = 0;
	pr->answered = 0;
	pr->req_seq0 = m->seq;
	while (nc > 0 && k < max && pr->nreq < m->p.indirect_helpers) {
		size_t j = membership_rand_below(m, nc);
		struct member *h = &m->members[cand[j]];
		uint64_t s = m->seq++;
		json_t *msg = membership_message(m, "ping-req", h->addr, pr->target, s, 0);

		membership_action_set(&actions[k++], MEMBERSHIP_PING_REQ, s, h->addr, pr->target,
		    timeout, msg);
		pr->nreq++;
		cand[j] = cand[--nc];
	}
	if (pr->nreq == 0) {
		membership_probe_failed(m, now);
		return 0;
	}
	pr->phase = PROBE_INDIRECT;
	pr->deadline = now + timeout;
	return k;
}

size_t
membership_tick(struct membership *m, double now, struct membership_action *actions,
    size_t max)
{
	struct probe *pr = &m->probe;
	size_t k = 0;
	long alive = (long)(m->nstate[MEMBERSHIP_ALIVE] + m->nstate[MEMBERSHIP_SUSPECT]);

	if (m->leaving)
		return 0;
	/* 1. Suspicions that ran out. */
	for (size_t i = 0; m->nstate[MEMBERSHIP_SUSPECT] > 0 && i < m->n; i++) {
		struct member *x = &m->members[i];
		double t;

		if (x->state != MEMBERSHIP_SUSPECT)
			continue;
		t = membership_suspicion_timeout(m, x);
		if (now < x->suspect_start + t)
			continue;
		membership_event(m, x->addr, MEMBERSHIP_DEAD, x->inc,
		    "is dead (no refutation, suspected %.1f s, %d confirmations)",
		    now - x->suspect_start, x->nconfirm);
		membership_set_state(m, x, MEMBERSHIP_DEAD, x->inc, now);
		membership_queue(m, x->addr, MEMBERSHIP_DEAD, x->inc, m->self);
	}

	/* 2. The probe in flight. */
	if (pr->phase == PROBE_DIRECT && (pr->direct_failed || now >= pr->deadline))
		k += membership_start_indirect(m, now, actions + k, max - k);
	else if (pr->phase == PROBE_INDIRECT &&
	    (now >= pr->deadline || pr->nacks + pr->nfails >= pr->nreq))
		membership_probe_failed(m, now);

	/* 3. A new probe. */
	if (pr->phase == PROBE_IDLE && now >= m->next_probe && k < max) {
		struct member *x = membership_next_target(m);

		m->next_probe = now + m->p.probe_interval * membership_scale(m);
		if (x != NULL) {
			double timeout = m->p.probe_timeout * membership_scale(m);
			int sync = now >= m->next_sync;
			uint64_t s = m->seq++;

			if (sync)
				m->next_sync = now + m->p.sync_interval;
			memset(pr, 0, sizeof(*pr));
			pr->phase = PROBE_DIRECT;
			membership_copy(pr->target, x->addr);
			pr->seq = s;
			pr->deadline = now + timeout;
			membership_action_set(&actions[k++], MEMBERSHIP_PING, s, x->addr, x->addr,
			    timeout, membership_message(m, "ping", x->addr, x->addr, s, sync));
		}
	}

	/* 4. Seeds we do not know yet (or that are gone): join through them. */
	for (size_t i = 0; i < m->nseeds && k < max; i++) {
		struct seed *sd = &m->seeds[i];
		const struct member *x = membership_find(m, sd->addr);

		if ((x != NULL && x->state <= MEMBERSHIP_SUSPECT) || now < sd->next)
			continue;
		/* Dead or left seeds are covered by the reconnect pings below. */
		if (x != NULL)
			continue;
		sd->next = now + m->p.reconnect_interval;
		membership_action_set(&actions[k], MEMBERSHIP_PING, m->seq, sd->addr, sd->addr,
		    m->p.probe_timeout * 3,
		    membership_message(m, "ping", sd->addr, sd->addr, m->seq, 1));
		m->seq++;
		k++;
	}

	/*
	 * 5. Reconnect: dead and left members may have come back. Each live
	 * member asks every reconnect_interval times its share of the network
	 * (alive / MEMBERSHIP_RECONNECT_SPREAD, at least 1), jittered, so that a
	 * dead member hears about MEMBERSHIP_RECONNECT_SPREAD pings a
	 * reconnect_interval whatever the network's size, and a member's own
	 * traffic does not grow with the number of dead ones.
	 */
	for (size_t i = 0; m->nstate[MEMBERSHIP_DEAD] + m->nstate[MEMBERSHIP_LEFT] > 0 &&
	    i < m->n && k < max; i++) {
		struct member *x = &m->members[i];

		if (x->state < MEMBERSHIP_DEAD || now < x->next_reconnect)
			continue;
		x->next_reconnect = now + m->p.reconnect_interval;
		if (alive > MEMBERSHIP_RECONNECT_SPREAD)
			x->next_reconnect += m->p.reconnect_interval *
			    ((double)alive / MEMBERSHIP_RECONNECT_SPREAD - 1.0) *
			    (0.5 + (double)membership_rand_below(m, 1000) / 1000.0);
		membership_action_set(&actions[k], MEMBERSHIP_PING, m->seq, x->addr, x->addr,
		    m->p.probe_timeout * 3,
		    membership_message(m, "ping", x->addr, x->addr, m->seq, 1));
		m->seq++;
		k++;
	}
	return k;
}

void
membership_probe_result(struct membership *m, uint64_t seq, enum membership_result r,
    double now)
{
	struct probe *pr = &m->probe;

	(void)now;
	if (pr->phase == PROBE_IDLE)
		return;
	if (seq == pr->seq) {
		if (r == MEMBERSHIP_ACK) {
			membership_lhm_add(m, -1);
			pr->phase = PROBE_IDLE;
		} else {
			pr->direct_failed = 1;
		}
		return;
	}
	if (pr->phase != PROBE_INDIRECT || seq < pr->req_seq0 ||
	    seq >= pr->req_seq0 + (uint64_t)pr->nreq)
		return;
	if (pr->answered & (1u << (seq - pr->req_seq0)))
		return;
	pr->answered |= 1u << (seq - pr->req_seq0);
	if (r == MEMBERSHIP_ACK) {
		/* Reached through a helper: the missed direct ack and this success cancel out. */
		pr->phase = PROBE_IDLE;
	} else if (r == MEMBERSHIP_NACK) {
		pr->nacks++;
	} else {
		pr->nfails++;
	}
}

/* ------------------------------------------------------------ accessors */

json_t *
membership_members(const struct membership *m)
{
	json_t *arr = json_array();

	json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:f}", "address", m->self,
	    "state", m->leaving ? "left" : "alive", "incarnation", (json_int_t)m->inc,
	    "since", m->self_since));
	for (size_t i = 0; i < m->n; i++) {
		const struct member *x = &m->members[i];

		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:f}", "address", x->addr,
		    "state", membership_state_name(x->state), "incarnation",
		    (json_int_t)x->inc, "since", x->since));
	}
	return arr;
}

int
membership_get(const struct membership *m, const char *addr, struct membership_member *out)
{
	const struct member *x;

	memset(out, 0, sizeof(*out));
	if (strcmp(addr, m->self) == 0) {
		membership_copy(out->address, m->self);
		out->state = m->leaving ? MEMBERSHIP_LEFT : MEMBERSHIP_ALIVE;
		out->incarnation = m->inc;
		out->since = m->self_since;
		return 0;
	}
	x = membership_find(m, addr);
	if (x == NULL)
		return -ENOENT;
	membership_copy(out->address, x->addr);
	out->state = x->state;
	out->incarnation = x->inc;
	out->since = x->since;
	return 0;
}

static int
membership_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
membership_alive(const struct membership *m, char ***addrs, size_t *n)
{
	char **v = xcalloc(m->n + 1, sizeof(*v));
	size_t c = 0;

	v[c++] = xstrdup(m->self);
	for (size_t i = 0; i < m->n; i++)
		if (m->members[i].state <= MEMBERSHIP_SUSPECT)
			v[c++] = xstrdup(m->members[i].addr);
	qsort(v, c, sizeof(*v), membership_str_cmp);
	*addrs = v;
	*n = c;
	return 0;
}

size_t
membership_count(const struct membership *m, enum membership_state s)
{
	enum membership_state self = m->leaving ? MEMBERSHIP_LEFT : MEMBERSHIP_ALIVE;

	if ((unsigned)s >= sizeof(m->nstate) / sizeof(m->nstate[0]))
		return 0;
	return m->nstate[s] + (s == self);
}

void
membership_addrs_free(char **addrs, size_t n)
{
	if (addrs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(addrs[i]);
	free(addrs);
}

json_t *
membership_leave(struct membership *m)
{
	json_t *upd;

	if (!m->leaving) {
		m->leaving = 1;
		membership_event(m, m->self, MEMBERSHIP_LEFT, m->inc, "left (goodbye)");
	}
	upd = json_array();
	json_array_append_new(upd, membership_record(m->self, MEMBERSHIP_LEFT, m->inc, m->self));
	return json_pack("{s:s, s:s, s:I, s:I, s:o}", "type", "leave", "from", m->self,
	    "incarnation", (json_int_t)m->inc, "seq", (json_int_t)0, "updates", upd);
}

size_t
membership_take_events(struct membership *m, struct membership_event *ev, size_t max)
{
	size_t c = m->nev < max ? m->nev : max;

	memcpy(ev, m->events, c * sizeof(*ev));
	memmove(&m->events[0], &m->events[c], (m->nev - c) * sizeof(*ev));
	m->nev -= c;
	return c;
}

const char *
membership_self(const struct membership *m)
{
	return m->self;
}

uint64_t
membership_incarnation(const struct membership *m)
{
	return m->inc;
}

int
membership_lhm(const struct membership *m)
{
	return m->lhm;
}

double
membership_probe_timeout(const struct membership *m)
{
	return m->p.probe_timeout * membership_scale(m);
}

size_t
membership_pending_updates(const struct membership *m)
{
	return m->nupd;
}
