/*
 * gossip.h - membership transport: the probe loop, POST /network/gossip, the
 * node's view and the network graph.
 *
 * Wraps the pure state machine of membership.h with a mutex, a tick thread
 * and short-lived probe threads; all traffic goes through peer_request.
 */
#ifndef MESHTEST_GOSSIP_H
#define MESHTEST_GOSSIP_H

#include <jansson.h>
#include <stddef.h>

struct gossip;

/*
 * Start as self ("host:port", the advertised address) with seeds_csv
 * ("host:port,host:port", may be NULL or empty; self among them is fine).
 * Bad seeds are logged and skipped. -EINVAL when self is not host:port.
 */
int gossip_start(const char *self, const char *seeds_csv, struct gossip **out);
/*
 * Say goodbye to every alive member (best-effort, in parallel, < 1 s) and
 * stop the probe loop. The object stays valid for handlers still running:
 * free it with gossip_free once the HTTP server is down. NULL is fine.
 */
void gossip_stop(struct gossip *g);
void gossip_free(struct gossip *g);

/*
 * A POST /network/gossip body. *reply is the answer (new reference, may be
 * NULL for an empty 200). A ping-req is carried out here: the target is
 * pinged with the probe timeout and the answer is an ack or a nack.
 * -EINVAL on a malformed message.
 */
int gossip_handle_message(struct gossip *g, json_t *body, json_t **reply);

/* Alive (and suspect) members, self included, sorted: gossip_addrs_free. */
int gossip_alive(struct gossip *g, char ***addrs, size_t *n);
void gossip_addrs_free(char **addrs, size_t n);
/* Members by state, self included: counts[s] for each enum membership_state (4). */
void gossip_counts(struct gossip *g, size_t counts[4]);

/*
 * GET /network/peers: {"address": self, "incarnation": N, "lhm": N,
 * "peers": [alive peers], "members": [{"address","state","incarnation",
 * "since"}]} (since: wall-clock seconds). New reference.
 */
json_t *gossip_view(struct gossip *g);

/*
 * GET /network: {"<node>": [its peers], ...} for every alive node, asking
 * each for its view in parallel (timeout seconds); a node that does not
 * answer is listed with the last view it gave, or []. New reference.
 */
json_t *gossip_network(struct gossip *g, double timeout);

const char *gossip_self(const struct gossip *g);

#endif
