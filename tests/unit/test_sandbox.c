/*
 * test_sandbox.c - the bwrap command line (exact words for given specs), the
 * system view, the probe's verdict, and, when run as root with bwrap
 * installed, real sandboxed runs through launch_run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "runner/launch.h"
#include "runner/sandbox.h"

#define TEST_BWRAP "/usr/bin/bwrap"
#define TEST_UID 61500

/* The words of argv joined by single spaces (malloc'ed). */
static char *
test_join(char **argv)
{
	size_t len = 1;
	char *s, *p;

	for (char **a = argv; *a; a++)
		len += strlen(*a) + 1;
	s = p = malloc(len);
	assert_non_null(s);
	*p = '\0';
	for (char **a = argv; *a; a++) {
		size_t l = strlen(*a);
		if (p != s)
			*p++ = ' ';
		memcpy(p, *a, l);
		p += l;
		*p = '\0';
	}
	return s;
}

static const struct sandbox_sys_entry test_sys[] = {
	{ "/usr", "" }, { "/etc", "" }, { "/bin", "usr/bin" }, { "/lib64", "usr/lib64" },
};

static void
test_sandbox_argv_run(void **state)
{
	const char *ro[] = { "/srv/lib", "/srv/venvs/k", NULL };
	const char *rw[] = { "/srv/work/slot-0", NULL };
	const char *cmd[] = { "/srv/venvs/k/bin/python", "-m", "pytest", "tests/test a.py", NULL };
	struct sandbox_spec sb = {
		.bwrap = TEST_BWRAP, .uid = 61001, .gid = 61002,
		.sys = test_sys, .nsys = 4, .ro_paths = ro, .rw_paths = rw,
		.tmp_dir = "/srv/work/slot-0/tmp", .chdir = "/srv/work/slot-0/project",
	};
	char **argv = NULL;
	(void)state;

	assert_int_equal(sandbox_argv(&sb, cmd, &argv), 0);
	char *got = test_join(argv);
	assert_string_equal(got,
		"/usr/bin/bwrap --unshare-user --unshare-ipc --unshare-pid --unshare-net "
		"--unshare-uts --unshare-cgroup-try --die-with-parent --new-session "
		"--cap-drop ALL --uid 61001 --gid 61002 "
		"--ro-bind /usr /usr --ro-bind /etc /etc --symlink usr/bin /bin "
		"--symlink usr/lib64 /lib64 --proc /proc --dev /dev "
		"--bind /srv/work/slot-0/tmp /tmp "
		"--ro-bind /srv/lib /srv/lib --ro-bind /srv/venvs/k /srv/venvs/k "
		"--bind /srv/work/slot-0 /srv/work/slot-0 --remount-ro / "
		"--chdir /srv/work/slot-0/project -- "
		"/srv/venvs/k/bin/python -m pytest tests/test a.py");
	/* a word with a space stays one word */
	size_t n = 0;
	while (argv[n] != NULL)
		n++;
	assert_int_equal(n, 52);
	assert_string_equal(argv[n - 1], "tests/test a.py");
	free(got);
	sandbox_argv_free(argv);
}

static void
test_sandbox_argv_install(void **state)
{
	const char *rw[] = { "/srv/venvs/k.tmp-1", "/srv/venvs/k.tmp-1.home", NULL };
	const char *cmd[] = { "/usr/bin/true", NULL };
	struct sandbox_spec sb = {
		.bwrap = TEST_BWRAP, .uid = 7, .gid = 7, .sys = test_sys, .nsys = 1,
		.rw_paths = rw, .share_net = 1,
	};
	char **argv = NULL;
	(void)state;

	assert_int_equal(sandbox_argv(&sb, cmd, &argv), 0);
	char *got = test_join(argv);
	/* the host's network (no --unshare-net), an empty /tmp, / as cwd */
	assert_string_equal(got,
		"/usr/bin/bwrap --unshare-user --unshare-ipc --unshare-pid "
		"--unshare-uts --unshare-cgroup-try --die-with-parent --new-session "
		"--cap-drop ALL --uid 7 --gid 7 --ro-bind /usr /usr --proc /proc --dev /dev "
		"--tmpfs /tmp --bind /srv/venvs/k.tmp-1 /srv/venvs/k.tmp-1 "
		"--bind /srv/venvs/k.tmp-1.home /srv/venvs/k.tmp-1.home --remount-ro / "
		"--chdir / -- /usr/bin/true");
	free(got);
	sandbox_argv_free(argv);
}

static void
test_sandbox_argv_errors(void **state)
{
	const char *cmd[] = { "/usr/bin/true", NULL };
	const char *empty[] = { NULL };
	const char *rel[] = { "relative/path", NULL };
	const char *many[300];
	struct sandbox_spec sb = { .bwrap = TEST_BWRAP, .uid = 7, .gid = 7 };
	char **argv = (char **)1;
	(void)state;

	assert_int_equal(sandbox_argv(&sb, empty, &argv), -EINVAL);
	assert_null(argv);
	assert_int_equal(sandbox_argv(&sb, NULL, &argv), -EINVAL);
	sb.bwrap = "bwrap";
	assert_int_equal(sandbox_argv(&sb, cmd, &argv), -EINVAL);
	sb.bwrap = TEST_BWRAP;
	sb.ro_paths = rel;
	assert_int_equal(sandbox_argv(&sb, cmd, &argv), -EINVAL);
	sb.ro_paths = NULL;
	sb.rw_paths = rel;
	assert_int_equal(sandbox_argv(&sb, cmd, &argv), -EINVAL);
	sb.rw_paths = NULL;
	sb.tmp_dir = "tmp";
	assert_int_equal(sandbox_argv(&sb, cmd, &argv), -EINVAL);
	sb.tmp_dir = NULL;
	sb.chdir = "project";
	assert_int_equal(sandbox_argv(&sb, cmd, &argv), -EINVAL);
	sb.chdir = NULL;
	for (size_t i = 0; i < 299; i++)
		many[i] = "x";
	many[299] = NULL;
	assert_int_equal(sandbox_argv(&sb, many, &argv), -E2BIG);
	assert_null(argv);
}

static void
test_sandbox_mode(void **state)
{
	(void)state;
	assert_int_equal(sandbox_mode_parse("auto"), SANDBOX_AUTO);
	assert_int_equal(sandbox_mode_parse("bwrap"), SANDBOX_BWRAP);
	assert_int_equal(sandbox_mode_parse("none"), SANDBOX_NONE);
	assert_int_equal(sandbox_mode_parse("BWRAP"), -1);
	assert_int_equal(sandbox_mode_parse(""), -1);
	assert_int_equal(sandbox_mode_parse(NULL), -1);
	assert_string_equal(sandbox_mode_name(SANDBOX_AUTO), "auto");
	assert_string_equal(sandbox_mode_name(SANDBOX_BWRAP), "bwrap");
	assert_string_equal(sandbox_mode_name(SANDBOX_NONE), "none");
}

static void
test_sandbox_sys_detect(void **state)
{
	static const char *const maybe[] = { "/bin", "/sbin", "/lib", "/lib32", "/lib64",
					     "/libx32" };
	struct sandbox_sys_entry sys[SANDBOX_SYS_MAX];
	size_t n = sandbox_sys_detect(sys, SANDBOX_SYS_MAX), k = 2;
	(void)state;

	assert_true(n >= 2);
	assert_string_equal(sys[0].path, "/usr");
	assert_string_equal(sys[0].link, "");
	assert_string_equal(sys[1].path, "/etc");
	assert_string_equal(sys[1].link, "");
	/* each of the others as what it is on this host, in order */
	for (size_t i = 0; i < sizeof(maybe) / sizeof(maybe[0]); i++) {
		struct stat st;
		char target[256];
		if (lstat(maybe[i], &st) < 0 || !(S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode)))
			continue;
		assert_true(k < n);
		assert_string_equal(sys[k].path, maybe[i]);
		if (S_ISLNK(st.st_mode)) {
			ssize_t l = readlink(maybe[i], target, sizeof(target) - 1);
			assert_true(l > 0);
			target[l] = '\0';
			assert_string_equal(sys[k].link, target);
		} else {
			assert_string_equal(sys[k].link, "");
		}
		k++;
	}
	assert_int_equal(n, k);
	assert_int_equal(sandbox_sys_detect(sys, 1), 1);
}

#define STATUS_OK "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nUid:\t61500\t61500\t61500\t61500\n" \
	"Gid:\t61500\t61500\t61500\t61500\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n" \
	"CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n"

static void
test_sandbox_probe_parse(void **state)
{
	static const struct {
		int started;
		const char *start_error;
		int exit_code, term_signal;
		const char *out, *err;
		int want;
		const char *why;
	} cases[] = {
		{ 1, NULL, 0, 0, STATUS_OK, "", 0, "" },
		{ 0, "cannot execute /usr/bin/bwrap: No such file or directory", 0, 0, NULL, NULL,
		  -EPERM, "cannot execute /usr/bin/bwrap: No such file or directory" },
		{ 0, "", 0, 0, NULL, NULL, -EPERM, "bwrap could not start" },
		{ 1, NULL, 1, 0, "", "bwrap: setting up uid map: Permission denied\n", -EPERM,
		  "bwrap: setting up uid map: Permission denied" },
		{ 1, NULL, 1, 0, "", "warning\nbwrap: Can't mount proc on /newroot/proc: "
		  "Operation not permitted\n\n", -EPERM,
		  "bwrap: Can't mount proc on /newroot/proc: Operation not permitted" },
		{ 1, NULL, 1, 0, "", "", -EPERM, "bwrap exited with status 1" },
		{ 1, NULL, 0, 9, "", NULL, -EPERM, "bwrap killed by signal 9" },
		{ 1, NULL, 0, 0, "Name:\tcat\nUid:\t0\t0\t0\t0\nCapEff:\t0000000000000000\n", "",
		  -EPERM, "the sandbox does not run as uid 61500" },
		{ 1, NULL, 0, 0, "Name:\tcat\nUid:\t61500\t61500\t61500\t61500\n"
		  "CapEff:\t000001ffffffffff\n", "", -EPERM, "the sandbox keeps capabilities" },
		{ 1, NULL, 0, 0, "Name:\tcat\nUid:\t615000\t615000\t615000\t615000\n"
		  "CapEff:\t0000000000000000\n", "", -EPERM, "the sandbox does not run as uid 61500" },
		{ 1, NULL, 0, 0, "", "", -EPERM, "the sandbox does not run as uid 61500" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char why[256] = "";
		int r = sandbox_probe_parse(cases[i].started, cases[i].start_error,
					    cases[i].exit_code, cases[i].term_signal,
					    cases[i].out, cases[i].err, TEST_UID, why, sizeof(why));
		printf("case %zu: %d %s\n", i, r, why);
		assert_int_equal(r, cases[i].want);
		assert_string_equal(why, cases[i].why);
	}
}

/* ---------------------------------------------------- real runs (root) */

static int
test_live_ok(void)
{
	return geteuid() == 0 && access(TEST_BWRAP, X_OK) == 0;
}

static void
test_sandbox_probe_live(void **state)
{
	char why[256] = "";
	(void)state;

	assert_int_equal(sandbox_probe("/nonexistent/bwrap", TEST_UID, why, sizeof(why)),
			 -ENOENT);
	assert_string_equal(why, "cannot execute /nonexistent/bwrap: No such file or directory");
	if (!test_live_ok()) {
		skip();
		return;
	}
	why[0] = '\0';
	assert_int_equal(sandbox_probe(TEST_BWRAP, TEST_UID, why, sizeof(why)), 0);
	assert_string_equal(why, "");
}

static void
test_sandbox_run_live(void **state)
{
	static const char *const envp[] = { "PATH=/usr/bin:/bin", NULL };
	char base[] = "/tmp/test_sandbox.XXXXXX";
	char *ro = NULL, *rw = NULL, *hidden = NULL, *script = NULL;
	struct sandbox_sys_entry sys[SANDBOX_SYS_MAX];
	struct launch_spec spec;
	struct launch_result res;
	(void)state;

	if (!test_live_ok()) {
		skip();
		return;
	}
	assert_non_null(mkdtemp(base));
	assert_int_equal(chmod(base, 0755), 0);
	ro = xasprintf("%s/ro", base);
	rw = xasprintf("%s/rw", base);
	hidden = xasprintf("%s/hidden", base);
	assert_int_equal(mkdir(ro, 0777), 0);
	assert_int_equal(chmod(ro, 0777), 0);  /* writable by anyone, yet bound read-only */
	assert_int_equal(mkdir(rw, 0700), 0);
	assert_int_equal(chown(rw, TEST_UID, TEST_UID), 0);
	assert_int_equal(mkdir(hidden, 0755), 0);
	assert_int_equal(util_write_file("/tmp/test_sandbox_hidden_marker", "x", 1, 0644), 0);

	const char *ro_paths[] = { ro, NULL };
	const char *rw_paths[] = { rw, NULL };
	struct sandbox_spec sb = {
		.bwrap = TEST_BWRAP, .uid = TEST_UID, .gid = TEST_UID, .sys = sys,
		.nsys = sandbox_sys_detect(sys, SANDBOX_SYS_MAX),
		.ro_paths = ro_paths, .rw_paths = rw_paths, .chdir = rw,
	};
	script = xasprintf(
		"id -u; id -g; echo /proc/[0-9]*; pwd; "
		"test -e %s || echo hidden-invisible; "
		"test -e /tmp/test_sandbox_hidden_marker || echo host-tmp-invisible; "
		"echo x > %s/f && echo rw-ok; "
		"(echo x > %s/f) 2>/dev/null || echo ro-denied; "
		"(echo x > /evil) 2>/dev/null || echo root-denied; "
		"grep CapEff /proc/self/status; "
		"kill -TERM $$", hidden, rw, ro);
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	memset(&spec, 0, sizeof(spec));
	spec.argv = argv;
	spec.envp = envp;
	spec.cwd = "/";
	spec.uid = TEST_UID;
	spec.gid = TEST_UID;
	spec.timeout = 20;
	spec.out_cap = 65536;
	spec.sandbox = &sb;
	launch_limits_default(&spec.lim);
	assert_int_equal(launch_run(&spec, &res), 0);
	printf("out: %s\nerr: %s\n", res.out.data ? res.out.data : "",
	       res.err.data ? res.err.data : "");
	assert_int_equal(res.started, 1);
	char *want = xasprintf("61500\n61500\n/proc/1 /proc/2\n%s\nhidden-invisible\n"
			       "host-tmp-invisible\nrw-ok\nro-denied\nroot-denied\n"
			       "CapEff:\t0000000000000000\n", rw);
	assert_string_equal(res.out.data, want);
	/* bwrap's 128 + 15 comes back as the signal */
	assert_int_equal(res.term_signal, 15);
	assert_int_equal(res.exit_code, 0);
	launch_result_free(&res);
	free(want);

	/* the deadline takes the whole sandbox down, background children too */
	const char *bg[] = { "/bin/sh", "-c", "sleep 100 & sleep 100 & wait", NULL };
	spec.argv = bg;
	spec.timeout = 0.5;
	assert_int_equal(launch_run(&spec, &res), 0);
	assert_int_equal(res.timed_out, 1);
	assert_int_equal(res.term_signal, 9);
	assert_true(res.duration < 3);
	launch_result_free(&res);
	assert_int_equal(launch_kill_uid(TEST_UID), 0);

	unlink("/tmp/test_sandbox_hidden_marker");
	assert_int_equal(util_rm_rf(base), 0);
	free(ro);
	free(rw);
	free(hidden);
	free(script);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sandbox_argv_run),
		cmocka_unit_test(test_sandbox_argv_install),
		cmocka_unit_test(test_sandbox_argv_errors),
		cmocka_unit_test(test_sandbox_mode),
		cmocka_unit_test(test_sandbox_sys_detect),
		cmocka_unit_test(test_sandbox_probe_parse),
		cmocka_unit_test(test_sandbox_probe_live),
		cmocka_unit_test(test_sandbox_run_live),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
