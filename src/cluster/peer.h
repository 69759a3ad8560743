/*
 * peer.h - the one function every node-to-node request goes through.
 *
 * All internal traffic (gossip, views, later tasks and replication) calls
 * peer_request, so that authentication of internal requests (a MAC over
 * method, path, body and a timestamp with the cluster key) can be added here
 * and in its server-side twin without touching the callers.
 */
#ifndef MESHTEST_PEER_H
#define MESHTEST_PEER_H

#include <jansson.h>
#include <stddef.h>

#define PEER_MAX_ANSWER (256u << 20)  /* bytes of a peer's answer (replicated documents) */

/*
 * The node-to-node protocol's version, sent with every internal request
 * (X-Meshtest-Protocol; a request without it is version 1, the release
 * before). A node serves peers of PEER_PROTOCOL_MIN..PEER_PROTOCOL, so two
 * adjacent releases run together; any other is refused with 409 and a log
 * line, never half-understood. Version 2: replication by change and by bucket.
 */
#define PEER_PROTOCOL 2
#define PEER_PROTOCOL_MIN 1
#define PEER_PROTOCOL_HEADER "X-Meshtest-Protocol"
/* 0 when a request's header value (NULL: none) is a version this node serves, else -EPROTO with why. */
int peer_protocol_check(const char *value, char *why, size_t whylen);

/*
 * Send method path to the node at addr ("host:port") with body (borrowed,
 * may be NULL) as JSON, waiting at most timeout seconds in all. On any HTTP
 * answer returns 0 with *status set and *answer the parsed JSON body (new
 * reference; NULL when the body is empty or not JSON). answer and status may
 * be NULL. Otherwise a negative errno: -ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH, -EINVAL (bad address), -EFBIG, -EKEYREJECTED (TLS: the peer's
 * certificate is not one of the cluster CA's, or it speaks no TLS), -EIO.
 */
int peer_request(const char *addr, const char *method, const char *path, json_t *body,
    double timeout, json_t **answer, long *status);

struct http_response;

/*
 * The raw form every internal request goes through (peer_request is built on
 * it): body of len bytes with content_type (NULL: no body), the answer in
 * resp (capped at max_answer; free with http_response_free). Same errors.
 */
int peer_request_raw(const char *addr, const char *method, const char *path,
    const void *body, size_t len, const char *content_type, double timeout,
    size_t max_answer, struct http_response *resp);

/*
 * The same with files, never whole in memory: the body, when body_fd >= 0,
 * read from it (a file opened for this, read whole; body_sha is its SHA-256
 * in hex, which the request's MAC covers), and the answer's body, when
 * answer_fd >= 0, written to it (resp->body is then ""). The answer file,
 * open for reading too, is hashed once from its start into answer_sha
 * (SHA256_HEX_LEN bytes; NULL without answer_fd), and its MAC is checked
 * over that hash.
 */
int peer_request_files(const char *addr, const char *method, const char *path, int body_fd,
    const char *body_sha, const char *content_type, int answer_fd, double timeout,
    size_t max_answer, struct http_response *resp, char *answer_sha);

#endif
