/*
 * membership.h - cluster membership as a pure state machine: SWIM failure
 * detection with Lifeguard's refinements.
 *
 * No I/O, no clock, no threads: the caller (gossip.c) feeds it incoming
 * messages and the time, asks it what to send now, and tells it how each
 * probe ended. Times are seconds on any monotonic clock; incarnations are
 * numbers chosen by the caller at start (gossip.c uses the start time in
 * milliseconds, so a restarted node always comes back with a higher one).
 *
 * Members are keyed by "host:port". The member table never shrinks: dead and
 * left members stay, so they can come back with a higher incarnation, and
 * they are pinged every reconnect_interval so a restarted node is found again
 * even when it has no seeds.
 *
 * Messages are JSON objects (docs/protocols/protocol.md section 2):
 *   {"type": "ping"|"ping-req"|"ack"|"nack"|"leave", "from": "host:port",
 *    "incarnation": N, "seq": N, "target": "host:port", "sync": true,
 *    "updates": [{"address", "state", "incarnation", "from"}, ...],
 *    "members": [same records: the sender's whole table, on a sync]}
 *
 * Not thread-safe: the caller holds one lock around every call.
 */
#ifndef MESHTEST_MEMBERSHIP_H
#define MESHTEST_MEMBERSHIP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define MEMBERSHIP_ADDR_MAX 256      /* "host:port" and its NUL */
#define MEMBERSHIP_MAX_MEMBERS 1024  /* the table never grows past this */
#define MEMBERSHIP_MAX_SEEDS 64

enum membership_state {
	MEMBERSHIP_ALIVE,
	MEMBERSHIP_SUSPECT,
	MEMBERSHIP_DEAD,
	MEMBERSHIP_LEFT,
};

struct membership_params {
	double probe_interval;      /* between probe starts, times LHM+1 */
	double probe_timeout;       /* direct ack, times LHM+1 */
	double indirect_timeout;    /* acks through helpers, times LHM+1 */
	int indirect_helpers;       /* members asked to ping-req */
	double suspicion_min;       /* suspicion timeout with k confirmations */
	double suspicion_max;       /* suspicion timeout with none */
	int suspicion_k;            /* confirmations that bring it to the min */
	int retransmit_mult;        /* lambda: each update is sent lambda*log2(n+1) times */
	int max_piggyback;          /* updates per message */
	int lhm_max;                /* local health multiplier cap */
	double reconnect_interval;  /* ping to dead/left members and unknown seeds */
	double sync_interval;       /* a probe ping asks for the full table */
	uint64_t seed;              /* PRNG seed for target order and helpers */
};

struct membership;

/* A message to send now; msg belongs to the caller (membership_action_clear). */
enum membership_action_kind { MEMBERSHIP_PING, MEMBERSHIP_PING_REQ };

struct membership_action {
	enum membership_action_kind kind;
	uint64_t seq;                     /* hand back to membership_probe_result */
	char to[MEMBERSHIP_ADDR_MAX];     /* POST msg to this node */
	char target[MEMBERSHIP_ADDR_MAX]; /* the member probed (== to for a ping) */
	double timeout;                   /* seconds for the whole exchange */
	json_t *msg;
};

enum membership_result {
	MEMBERSHIP_ACK,    /* the answer was an ack */
	MEMBERSHIP_NACK,   /* a helper answered: target did not ack */
	MEMBERSHIP_FAIL,   /* no answer (refused, timed out, garbage) */
};

struct membership_member {
	char address[MEMBERSHIP_ADDR_MAX];
	enum membership_state state;
	uint64_t incarnation;
	double since;                     /* time of the last state change */
};

/* A state change, for the log. */
struct membership_event {
	char address[MEMBERSHIP_ADDR_MAX];
	enum membership_state state;
	uint64_t incarnation;
	char reason[160];
};

/*
 * Defaults: probe 0.5 s, timeout 0.3 s, indirect 0.6 s with 3 helpers,
 * suspicion 1.5..3 s with k = 3, lambda 3, 8 updates per message, LHM cap 8,
 * reconnect 1 s, sync 10 s.
 */
void membership_params_default(struct membership_params *p);

/*
 * A new table holding only self (alive at the given incarnation). p may be
 * NULL for the defaults. -EINVAL when self is not "host:port".
 */
int membership_new(const char *self, const struct membership_params *p,
    uint64_t incarnation, double now, struct membership **out);
void membership_free(struct membership *m);

/* Add a seed to contact until it is a member; self is ignored. -EINVAL, -ENOSPC. */
int membership_add_seed(struct membership *m, const char *addr);

/*
 * An incoming message: merge its sender, updates and table. *reply gets the
 * answer to send back (new reference) or NULL: an ack for a ping or a leave,
 * a leave for anything once we left, NULL for ack, nack and ping-req (a
 * ping-req is carried out by the caller: membership_message "ping" to the
 * target, then "ack" or "nack" back). -EINVAL on a malformed message.
 */
int membership_handle(struct membership *m, const json_t *msg, double now, json_t **reply);

/*
 * Build a message of the given type to node "to", with piggybacked updates
 * (those about "to" first when it is not alive here: the buddy system).
 * target and seq are echoed; sync asks for (and carries) the whole table.
 */
json_t *membership_message(struct membership *m, const char *type, const char *to,
    const char *target, uint64_t seq, int sync);

/*
 * What to send now: expired suspicions become dead, the current probe moves
 * on (direct -> indirect -> suspect), a new probe starts every
 * probe_interval*(LHM+1), unknown seeds and dead members get a reconnect
 * ping. Fills up to max actions and returns their number.
 */
size_t membership_tick(struct membership *m, double now, struct membership_action *actions,
    size_t max);
void membership_action_clear(struct membership_action *a);

/* How the exchange of the action with this seq ended; stale seqs are ignored. */
void membership_probe_result(struct membership *m, uint64_t seq, enum membership_result r,
    double now);

/* Every member, self included: [{"address","state","incarnation","since"}] (new reference). */
json_t *membership_members(const struct membership *m);
/* One member (self too); -ENOENT when unknown. */
int membership_get(const struct membership *m, const char *addr, struct membership_member *out);
/*
 * The addresses of alive and suspect members, self included, sorted. The
 * array and strings belong to the caller: membership_addrs_free.
 */
int membership_alive(const struct membership *m, char ***addrs, size_t *n);
void membership_addrs_free(char **addrs, size_t n);
/* Members in state s, self included (alive, or left once it said goodbye). */
size_t membership_count(const struct membership *m, enum membership_state s);

/* Leave: self becomes left; returns the goodbye message to send to every alive member. */
json_t *membership_leave(struct membership *m);

/* Take up to max logged state changes, oldest first. */
size_t membership_take_events(struct membership *m, struct membership_event *ev, size_t max);

const char *membership_self(const struct membership *m);
uint64_t membership_incarnation(const struct membership *m);
int membership_lhm(const struct membership *m);
/* When a suspect member is declared dead if nothing changes; -1 if it is not suspect. */
double membership_suspicion_deadline(const struct membership *m, const char *addr);
/* Probe timeout scaled by the local health multiplier. */
double membership_probe_timeout(const struct membership *m);
const char *membership_state_name(enum membership_state s);
/* Number of updates waiting to be piggybacked. */
size_t membership_pending_updates(const struct membership *m);

#endif
