/*
 * auth.h - node-to-node authentication with the cluster key.
 *
 * Every internal request carries X-Meshtest-Time (seconds), X-Meshtest-Nonce
 * (16 random bytes, hex) and X-Meshtest-Mac: HMAC-SHA256 with the cluster key
 * over "req\n" method "\n" path "\n" time "\n" nonce "\n" SHA-256(body). The
 * answer carries X-Meshtest-Mac over "ans\n" status "\n" nonce "\n"
 * SHA-256(body), so a forged answer is refused by the asking node. A request
 * whose time is more than AUTH_WINDOW seconds off, or whose nonce was seen
 * within the window (a replay), is refused.
 *
 * The key is process-wide, set once at start-up (auth_set_key) before any
 * thread uses it. The MAC functions are pure; the replay cache is one
 * mutex-protected table.
 */
#ifndef MESHTEST_AUTH_H
#define MESHTEST_AUTH_H

#include <stddef.h>

#define AUTH_WINDOW 30.0
#define AUTH_MAC_HEX 65
#define AUTH_NONCE_HEX 33

/* Use key (copied) from now on; NULL or "" turns authentication off. */
void auth_set_key(const char *key);
/*
 * The node's key: the cluster key; without one, a key derived from the API
 * token (HMAC-SHA256(token, a fixed label), hex), so that a node that guards
 * its data with a token never serves it unsigned on its internal routes;
 * without either, none. Returns 1 when the key came from the token.
 */
int auth_set_keys(const char *cluster_key, const char *api_token);
/* 1 when a cluster key is set. */
int auth_enabled(void);

/* The request MAC (64 hex characters and a NUL). body_sha is hex SHA-256. */
void auth_request_mac(const char *key, const char *method, const char *path,
    const char *time, const char *nonce, const char *body_sha, char out[AUTH_MAC_HEX]);
void auth_answer_mac(const char *key, long status, const char *nonce, const char *body_sha,
    char out[AUTH_MAC_HEX]);

/*
 * Sign a request with the process key: fills time, nonce and mac for the
 * X-Meshtest-* headers. Returns 0, or -ENOKEY without a key.
 */
int auth_sign_request(const char *method, const char *path, const void *body, size_t len,
    char time[32], char nonce[AUTH_NONCE_HEX], char mac[AUTH_MAC_HEX]);
/* The same over a known body hash (a body sent from a file). */
int auth_sign_request_sha(const char *method, const char *path, const char *body_sha,
    char time[32], char nonce[AUTH_NONCE_HEX], char mac[AUTH_MAC_HEX]);
/*
 * Check a request's headers (any may be NULL) against the process key at
 * time now. 0 when good; -EACCES (missing or wrong MAC), -ETIME (stale),
 * -EALREADY (replayed nonce), with a reason in why.
 */
int auth_check_request(const char *method, const char *path, const char *body_sha,
    const char *time, const char *nonce, const char *mac, double now, char *why,
    size_t whylen);
/* 1 when mac is the right answer MAC for (status, nonce, body). */
int auth_check_answer(long status, const char *nonce, const void *body, size_t len,
    const char *mac);
/* The same over a known body hash (an answer written to a file). */
int auth_check_answer_sha(long status, const char *nonce, const char *body_sha,
    const char *mac);
/* The answer MAC with the process key into out; -ENOKEY without a key. */
int auth_sign_answer(long status, const char *nonce, const void *body, size_t len,
    char out[AUTH_MAC_HEX]);

/* The answer MAC with the process key over a known body hash. */
int auth_answer_mac_with_sha(long status, const char *nonce, const char *body_sha,
    char out[AUTH_MAC_HEX]);

/* Forget every nonce (tests). */
void auth_reset_replay_cache(void);

#endif
