/*
 * test_cli_certs.c - meshtest certs: which host a node address names, and
 * whether it becomes an IP or a DNS subjectAltName (and a file name).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "cli/cli.h"

static void
test_host(void **state)
{
	static const struct {
		const char *addr;
		const char *host;   /* NULL: refused */
		int is_ip;
	} cases[] = {
		{ "10.213.4.1:7000", "10.213.4.1", 1 },
		{ "10.213.4.1", "10.213.4.1", 1 },
		{ "node-1.example.org:7000", "node-1.example.org", 0 },
		{ "localhost", "localhost", 0 },
		{ "[::1]:7000", "::1", 1 },
		{ "[fd00::5]", "fd00::5", 1 },
		{ "::1", NULL, 0 },                 /* IPv6 needs brackets */
		{ "[::1]x", NULL, 0 },
		{ "[::1", NULL, 0 },
		{ "", NULL, 0 },
		{ ":7000", NULL, 0 },
		{ "host:", NULL, 0 },
		{ "host:0", NULL, 0 },
		{ "host:65536", NULL, 0 },
		{ "host:70x", NULL, 0 },
		{ "ca:7000", NULL, 0 },             /* would overwrite ca.pem */
		{ "../etc:7000", NULL, 0 },         /* a file name too */
		{ "a/b:7000", NULL, 0 },
		{ "-x:7000", NULL, 0 },
		{ ".x:7000", NULL, 0 },
		{ "under_score:7000", NULL, 0 },
	};
	char host[64];
	int ip;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r;

		ip = -1;
		host[0] = '\0';
		r = cli_certs_host(cases[i].addr, host, sizeof(host), &ip);
		if (cases[i].host == NULL) {
			assert_int_equal(r, -EINVAL);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(host, cases[i].host);
		assert_int_equal(ip, cases[i].is_ip);
	}
	/* a host longer than the buffer */
	assert_int_equal(cli_certs_host("aaaaaaaaaaaa:7000", host, 8, &ip), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
