/*
 * test_auth.c - cluster MACs: a known vector, missing / wrong / stale /
 * replayed requests, answers, and no key at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster/auth.h"
#include "core/util.h"

static const char *key = "0123456789abcdef0123456789abcdef";

static void
test_vector(void **state)
{
	char mac[AUTH_MAC_HEX];

	(void)state;
	/* HMAC-SHA256(key, "req\nPOST\n/x\n1.000\nn\n" + sha256("")) computed with Python's hmac. */
	auth_request_mac(key, "POST", "/x", "1.000", "n",
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", mac);
	assert_int_equal(strlen(mac), 64);
	assert_string_equal(mac, "2444ee2b6fdb387dccd3db439cdd361ddf7acd0a38f602bc7bac1a8cc650e47a");
}

static void
test_requests(void **state)
{
	char t[32], nonce[AUTH_NONCE_HEX], mac[AUTH_MAC_HEX], sha[SHA256_HEX_LEN], why[160];
	const char *body = "{\"a\":1}";
	double now = util_now();

	(void)state;
	auth_set_key(key);
	auth_reset_replay_cache();
	assert_int_equal(auth_sign_request("POST", "/network/gossip", body, strlen(body), t, nonce,
	    mac), 0);
	util_sha256_hex(body, strlen(body), sha);
	/* Missing headers. */
	assert_int_equal(auth_check_request("POST", "/network/gossip", sha, NULL, nonce, mac, now,
	    why, sizeof(why)), -EACCES);
	assert_int_equal(auth_check_request("POST", "/network/gossip", sha, t, nonce, NULL, now,
	    why, sizeof(why)), -EACCES);
	/* Wrong MAC: another path, another body. */
	assert_int_equal(auth_check_request("POST", "/task/claim", sha, t, nonce, mac, now, why,
	    sizeof(why)), -EACCES);
	assert_string_equal(why, "wrong cluster MAC");
	util_sha256_hex("{}", 2, why);
	assert_int_equal(auth_check_request("POST", "/network/gossip", why, t, nonce, mac, now,
	    why + 80, 80), -EACCES);
	/* Stale: checked at a time far from the signature's. */
	assert_int_equal(auth_check_request("POST", "/network/gossip", sha, t, nonce, mac,
	    now + 3 * AUTH_WINDOW, why, sizeof(why)), -ETIME);
	/* Good once, then a replay. */
	assert_int_equal(auth_check_request("POST", "/network/gossip", sha, t, nonce, mac, now,
	    why, sizeof(why)), 0);
	assert_int_equal(auth_check_request("POST", "/network/gossip", sha, t, nonce, mac, now,
	    why, sizeof(why)), -EALREADY);
	/* A fresh signature passes. */
	assert_int_equal(auth_sign_request("POST", "/network/gossip", body, strlen(body), t, nonce,
	    mac), 0);
	assert_int_equal(auth_check_request("POST", "/network/gossip", sha, t, nonce, mac, now,
	    why, sizeof(why)), 0);
	auth_set_key(NULL);
}

static void
test_answers(void **state)
{
	char mac[AUTH_MAC_HEX];
	const char *nonce = "00112233445566778899aabbccddeeff";

	(void)state;
	auth_set_key(key);
	assert_int_equal(auth_sign_answer(200, nonce, "ok", 2, mac), 0);
	assert_true(auth_check_answer(200, nonce, "ok", 2, mac));
	assert_false(auth_check_answer(200, nonce, "no", 2, mac));     /* forged body */
	assert_false(auth_check_answer(401, nonce, "ok", 2, mac));     /* forged status */
	assert_false(auth_check_answer(200, "ffffffffffffffffffffffffffffffff", "ok", 2, mac));
	assert_false(auth_check_answer(200, nonce, "ok", 2, NULL));    /* unsigned */
	auth_set_key(NULL);
	/* Without a key nothing is signed or checked. */
	assert_false(auth_enabled());
	assert_int_equal(auth_sign_answer(200, nonce, "ok", 2, mac), -ENOKEY);
	assert_true(auth_check_answer(200, nonce, "ok", 2, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
