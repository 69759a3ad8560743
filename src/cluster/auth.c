/*
 * auth.c - cluster-key MACs and the replay cache (see auth.h).
 *
 * Owns the process-wide key (written once before threads start, read-only
 * after) and the replay cache: an open-addressing table of nonces seen within
 * the window, guarded by replay_lock.
 */
#include "cluster/auth.h"

#include <errno.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define AUTH_CACHE_SLOTS 65536   /* power of two */

static char *auth_key;

struct replay_entry {
	char nonce[AUTH_NONCE_HEX];
	double seen;
};

static pthread_mutex_t replay_lock = PTHREAD_MUTEX_INITIALIZER;
static struct replay_entry *replay_cache;

void
auth_set_key(const char *key)
{
	if (auth_key != NULL) {
		OPENSSL_cleanse(auth_key, strlen(auth_key));
		free(auth_key);
		auth_key = NULL;
	}
	if (key != NULL && *key != '\0')
		auth_key = xstrdup(key);
}

int
auth_set_keys(const char *cluster_key, const char *api_token)
{
	static const char label[] = "meshtest: the cluster key of nodes that share an API token";
	unsigned char md[32];
	unsigned int n = 0;
	char hex[2 * sizeof(md) + 1];

	if ((cluster_key != NULL && *cluster_key != '\0') || api_token == NULL ||
	    *api_token == '\0') {
		auth_set_key(cluster_key);
		return 0;
	}
	HMAC(EVP_sha256(), api_token, (int)strlen(api_token), (const unsigned char *)label,
	    sizeof(label) - 1, md, &n);
	for (unsigned int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	auth_set_key(hex);
	OPENSSL_cleanse(md, sizeof(md));
	OPENSSL_cleanse(hex, sizeof(hex));
	return 1;
}

int
auth_enabled(void)
{
	return auth_key != NULL;
}

static void
hex_of(const unsigned char *md, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
hmac_hex(const char *key, const char *msg, char out[AUTH_MAC_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, strlen(msg), md,
	    &mdlen);
	hex_of(md, 32, out);
}

void
auth_request_mac(const char *key, const char *method, const char *path,
    const char *time, const char *nonce, const char *body_sha, char out[AUTH_MAC_HEX])
{
	char *msg = xasprintf("req\n%s\n%s\n%s\n%s\n%s", method, path, time, nonce, body_sha);

	hmac_hex(key, msg, out);
	free(msg);
}

void
auth_answer_mac(const char *key, long status, const char *nonce, const char *body_sha,
    char out[AUTH_MAC_HEX])
{
	char *msg = xasprintf("ans\n%ld\n%s\n%s", status, nonce, body_sha);

	hmac_hex(key, msg, out);
	free(msg);
}

int
auth_sign_request(const char *method, const char *path, const void *body, size_t len,
    char time[32], char nonce[AUTH_NONCE_HEX], char mac[AUTH_MAC_HEX])
{
	char sha[SHA256_HEX_LEN];

	util_sha256_hex(body != NULL ? body : "", body != NULL ? len : 0, sha);
	return auth_sign_request_sha(method, path, sha, time, nonce, mac);
}

int
auth_sign_request_sha(const char *method, const char *path, const char *body_sha,
    char time[32], char nonce[AUTH_NONCE_HEX], char mac[AUTH_MAC_HEX])
{
	if (auth_key == NULL)
		return -ENOKEY;
	snprintf(time, 32, "%.3f", util_now());
	util_random_hex(nonce, 16);
	auth_request_mac(auth_key, method, path, time, nonce, body_sha, mac);
	return 0;
}

static int
mac_equal(const char *a, const char *b)
{
	size_t n = strlen(a);

	return strlen(b) == n && CRYPTO_memcmp(a, b, n) == 0;
}

/*
 * 1 when nonce was seen within the window (and remember it otherwise). The
 * whole probe chain (up to a never-used slot) is searched before a nonce
 * counts as new; a table full of fresh nonces refuses (1), never accepts.
 */
static int
replay_seen(const char *nonce, double now)
{
	unsigned long h = 5381;
	struct replay_entry *free_slot = NULL;
	int seen = 1;

	for (const char *p = nonce; *p; p++)
		h = h * 33 + (unsigned char)*p;
	pthread_mutex_lock(&replay_lock);
	if (replay_cache == NULL)
		replay_cache = xcalloc(AUTH_CACHE_SLOTS, sizeof(*replay_cache));
	for (unsigned long i = 0; i < AUTH_CACHE_SLOTS; i++) {
		struct replay_entry *e = &replay_cache[(h + i) & (AUTH_CACHE_SLOTS - 1)];
		if (e->nonce[0] == '\0') {
			if (free_slot == NULL)
				free_slot = e;
			seen = 0;
			break;
		}
		if (now - e->seen > 2 * AUTH_WINDOW) {
			if (free_slot == NULL)
				free_slot = e;
			continue;
		}
		if (strcmp(e->nonce, nonce) == 0)
			goto out;
	}
	if (free_slot == NULL)
		goto out;   /* full of fresh nonces: refuse rather than forget */
	seen = 0;
	snprintf(free_slot->nonce, sizeof(free_slot->nonce), "%s", nonce);
	free_slot->seen = now;
out:
	pthread_mutex_unlock(&replay_lock);
	return seen;
}

int
auth_check_request(const char *method, const char *path, const char *body_sha,
    const char *time, const char *nonce, const char *mac, double now, char *why,
    size_t whylen)
{
	char want[AUTH_MAC_HEX];
	char *end = NULL;
	double t;

	if (auth_key == NULL)
		return 0;
	if (time == NULL || nonce == NULL || mac == NULL) {
		snprintf(why, whylen, "no cluster MAC");
		return -EACCES;
	}
	if (strlen(nonce) != AUTH_NONCE_HEX - 1) {
		snprintf(why, whylen, "malformed nonce");
		return -EACCES;
	}
	auth_request_mac(auth_key, method, path, time, nonce, body_sha, want);
	if (!mac_equal(want, mac)) {
		snprintf(why, whylen, "wrong cluster MAC");
		return -EACCES;
	}
	t = strtod(time, &end);
	if (end == time || *end != '\0' || !isfinite(t) || fabs(now - t) > AUTH_WINDOW) {
		snprintf(why, whylen, "stale timestamp %s (now %.3f)", time, now);
		return -ETIME;
	}
	if (replay_seen(nonce, now)) {
		snprintf(why, whylen, "replayed request (nonce seen before)");
		return -EALREADY;
	}
	return 0;
}

int
auth_sign_answer(long status, const char *nonce, const void *body, size_t len,
    char out[AUTH_MAC_HEX])
{
	char sha[SHA256_HEX_LEN];

	if (auth_key == NULL)
		return -ENOKEY;
	util_sha256_hex(body != NULL ? body : "", body != NULL ? len : 0, sha);
	auth_answer_mac(auth_key, status, nonce, sha, out);
	return 0;
}

int
auth_answer_mac_with_sha(long status, const char *nonce, const char *body_sha,
    char out[AUTH_MAC_HEX])
{
	if (auth_key == NULL)
		return -ENOKEY;
	auth_answer_mac(auth_key, status, nonce, body_sha, out);
	return 0;
}

int
auth_check_answer(long status, const char *nonce, const void *body, size_t len,
    const char *mac)
{
	char sha[SHA256_HEX_LEN];

	if (auth_key == NULL)
		return 1;
	util_sha256_hex(body != NULL ? body : "", body != NULL ? len : 0, sha);
	return auth_check_answer_sha(status, nonce, sha, mac);
}

int
auth_check_answer_sha(long status, const char *nonce, const char *body_sha, const char *mac)
{
	char want[AUTH_MAC_HEX];

	if (auth_key == NULL)
		return 1;
	if (mac == NULL || auth_answer_mac_with_sha(status, nonce, body_sha, want) < 0)
		return 0;
	return mac_equal(want, mac);
}

void
auth_reset_replay_cache(void)
{
	pthread_mutex_lock(&replay_lock);
	free(replay_cache);
	replay_cache = NULL;
	pthread_mutex_unlock(&replay_lock);
}
