/*
 * test_config.c - the option table: defaults, flags, environment, bounds,
 * the seed's container variables and the refusal to listen beyond loopback
 * without real secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static const char *const env_names[] = {
	"PORT", "HOST_IP", "NODE_ADDRESS", "SEED_NODES", "MESHTEST_SLOTS",
	"MESHTEST_CLUSTER_KEY", "MESHTEST_API_TOKEN", "MESHTEST_DATA_DIR",
	"MESHTEST_MODULE_TIMEOUT", "MESHTEST_TLS_CERT", "MESHTEST_TLS_KEY", "MESHTEST_TLS_CA",
};

static int
clear_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
	return 0;
}

static int
load(struct config *c, char *err, const char *a0, const char *a1, const char *a2,
    const char *a3)
{
	char *argv[4] = { (char *)a0, (char *)a1, (char *)a2, (char *)a3 };
	int argc = a0 == NULL ? 0 : a1 == NULL ? 1 : a2 == NULL ? 2 : a3 == NULL ? 3 : 4;

	return config_load(c, argc, argv, err, 512);
}

static void
test_defaults(void **state)
{
	struct config c;
	char err[512];

	(void)state;
	assert_int_equal(load(&c, err, NULL, NULL, NULL, NULL), 0);
	assert_string_equal(c.listen, "127.0.0.1:7000");
	assert_string_equal(c.advertise, "127.0.0.1:7000");
	assert_string_equal(c.data_dir, "./meshtest-data");
	assert_string_equal(c.python, "/usr/bin/python3");
	assert_true(c.module_timeout == 300.0);
	assert_true(c.slots >= 1);
	assert_int_equal(c.listen_all, 0);
	assert_int_equal(c.fetchers, 8);
	assert_null(c.cluster_key);
	config_free(&c);
}

static void
test_flags_and_env(void **state)
{
	struct config c;
	char err[512];

	(void)state;
	setenv("MESHTEST_SLOTS", "3", 1);
	setenv("SEED_NODES", "10.0.0.1:7000,10.0.0.2:7000", 1);
	assert_int_equal(load(&c, err, "--listen", "127.0.0.1:7100", "--module-timeout=5",
	    NULL), 0);
	assert_string_equal(c.listen, "127.0.0.1:7100");
	assert_string_equal(c.advertise, "127.0.0.1:7100");
	assert_int_equal(c.slots, 3);
	assert_true(c.module_timeout == 5.0);
	assert_string_equal(c.seeds, "10.0.0.1:7000,10.0.0.2:7000");
	config_free(&c);
	/* A flag beats the environment. */
	assert_int_equal(load(&c, err, "--slots", "1", NULL, NULL), 0);
	assert_int_equal(c.slots, 1);
	config_free(&c);
	setenv("MESHTEST_FETCHERS", "32", 1);
	assert_int_equal(load(&c, err, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(c.fetchers, 32);
	config_free(&c);
	unsetenv("MESHTEST_FETCHERS");
}

static void
test_bad_values(void **state)
{
	static const char *const bad[][2] = {
		{ "--slots", "-1" }, { "--slots", "abc" }, { "--module-timeout", "0" },
		{ "--listen", "nohost" }, { "--listen", "h:70000" }, { "--log-level", "loud" },
		{ "--nosuch", "1" }, { "--allow-file-urls=maybe", NULL }, { "--sandbox", "docker" },
		{ "--isolation", "per-test" }, { "--fetchers", "0" }, { "--fetchers", "257" },
	};
	struct config c;
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(load(&c, err, bad[i][0], bad[i][1], NULL, NULL), -EINVAL);
		assert_true(strlen(err) > 0);
		config_free(&c);
	}
	assert_int_equal(load(&c, err, "--slots", NULL, NULL, NULL), -EINVAL);
	assert_non_null(strstr(err, "needs a value"));
	config_free(&c);
}

static void
test_seed_container_env(void **state)
{
	struct config c;
	char err[512];
	const char *key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	(void)state;
	setenv("HOST_IP", "192.0.2.7", 1);
	setenv("PORT", "7001", 1);
	/* Beyond loopback without secrets: refused, and says how to fix it. */
	assert_int_equal(load(&c, err, NULL, NULL, NULL, NULL), -EINVAL);
	assert_non_null(strstr(err, "meshtest keygen"));
	config_free(&c);
	/* The samples of .env.example are refused too. */
	setenv("MESHTEST_CLUSTER_KEY", "change-me-change-me-change-me-change-me", 1);
	setenv("MESHTEST_API_TOKEN", key, 1);
	assert_int_equal(load(&c, err, NULL, NULL, NULL, NULL), -EINVAL);
	config_free(&c);
	setenv("MESHTEST_CLUSTER_KEY", key, 1);
	assert_int_equal(load(&c, err, NULL, NULL, NULL, NULL), 0);
	assert_string_equal(c.listen, "0.0.0.0:7001");
	assert_string_equal(c.advertise, "192.0.2.7:7001");
	assert_int_equal(c.listen_all, 1);
	config_free(&c);
	setenv("NODE_ADDRESS", "node1:7001", 1);
	assert_int_equal(load(&c, err, NULL, NULL, NULL, NULL), 0);
	assert_string_equal(c.advertise, "node1:7001");
	config_free(&c);
}

/* TLS is the three files or none; an empty variable is none. */
static void
test_tls_all_or_none(void **state)
{
	struct config c;
	char err[512];

	(void)state;
	assert_int_equal(load(&c, err, "--tls-cert", "n.pem", NULL, NULL), -EINVAL);
	assert_string_equal(err, "TLS needs all of --tls-cert, --tls-key and --tls-ca, or none;"
	    " missing: --tls-key --tls-ca");
	config_free(&c);
	setenv("MESHTEST_TLS_KEY", "n.key", 1);
	setenv("MESHTEST_TLS_CA", "", 1);
	assert_int_equal(load(&c, err, "--tls-cert", "n.pem", NULL, NULL), -EINVAL);
	assert_string_equal(err, "TLS needs all of --tls-cert, --tls-key and --tls-ca, or none;"
	    " missing: --tls-ca");
	config_free(&c);
	setenv("MESHTEST_TLS_CA", "ca.pem", 1);
	assert_int_equal(load(&c, err, "--tls-cert", "n.pem", NULL, NULL), 0);
	assert_string_equal(c.tls_cert, "n.pem");
	assert_string_equal(c.tls_key, "n.key");
	assert_string_equal(c.tls_ca, "ca.pem");
	config_free(&c);
	setenv("MESHTEST_TLS_KEY", "", 1);
	setenv("MESHTEST_TLS_CA", "", 1);
	assert_int_equal(load(&c, err, NULL, NULL, NULL, NULL), 0);
	assert_null(c.tls_cert);
	assert_null(c.tls_key);
	assert_null(c.tls_ca);
	config_free(&c);
}

static void
test_split_hostport(void **state)
{
	char host[64];
	int port = 0;

	(void)state;
	assert_int_equal(config_split_hostport("10.1.2.3:7000", host, sizeof(host), &port), 0);
	assert_string_equal(host, "10.1.2.3");
	assert_int_equal(port, 7000);
	assert_int_equal(config_split_hostport(":7000", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(config_split_hostport("h:0", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(config_split_hostport("h:12x", host, sizeof(host), &port), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, clear_env),
		cmocka_unit_test_setup(test_flags_and_env, clear_env),
		cmocka_unit_test_setup(test_bad_values, clear_env),
		cmocka_unit_test_setup(test_seed_container_env, clear_env),
		cmocka_unit_test_setup(test_tls_all_or_none, clear_env),
		cmocka_unit_test(test_split_hostport),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
