/*
 * test_launch.c - launch_run with /bin/sh scripts: exit codes, caps, the
 * deadline, the report pipe, exec failures, privilege drop, stdin, threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "embedded.h"
#include "runner/launch.h"
#include "runner/report.h"
#include "runner/sandbox.h"

static const char *const test_env[] = { "PATH=/usr/bin:/bin", "A=1", NULL };

static void
test_spec(struct launch_spec *s, const char *script)
{
	static __thread const char *argv[4];

	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = script;
	argv[3] = NULL;
	memset(s, 0, sizeof(*s));
	s->argv = argv;
	s->envp = test_env;
	s->uid = (uid_t)-1;
	s->gid = (gid_t)-1;
	s->timeout = 20;
	s->out_cap = 65536;
	launch_limits_default(&s->lim);
}

/* 1 if pid is alive (exists and is not a zombie). */
static int
test_alive(long pid)
{
	char path[64], text[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	const char *p = strrchr(text, ')');
	return p != NULL && p[2] != 'Z' && p[2] != 'X';
}

static void
test_launch_exit_code(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	(void)state;

	test_spec(&s, "echo out; echo err >&2; exit 7");
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.started, 1);
	assert_int_equal(r.exit_code, 7);
	assert_int_equal(r.term_signal, 0);
	assert_int_equal(r.timed_out, 0);
	assert_string_equal(r.out.data, "out\n");
	assert_string_equal(r.err.data, "err\n");
	launch_result_free(&r);

	test_spec(&s, "kill -SEGV $$");
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.term_signal, 11);
	launch_result_free(&r);
}

static void
test_launch_env_and_cwd(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	(void)state;

	test_spec(&s, "echo \"$A:$HOME:$(pwd)\"; /usr/bin/env | sort");
	s.cwd = "/usr/share";
	assert_int_equal(launch_run(&s, &r), 0);
	assert_string_equal(r.out.data, "1::/usr/share\nA=1\nPATH=/usr/bin:/bin\nPWD=/usr/share\n");
	launch_result_free(&r);

	test_spec(&s, "true");
	s.cwd = "/nonexistent-dir";
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.started, 0);
	assert_string_equal(r.start_error, "cannot enter /nonexistent-dir: No such file or directory");
	launch_result_free(&r);
}

static void
test_launch_caps(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	(void)state;

	test_spec(&s, "head -c 1048576 /dev/zero; head -c 5000 /dev/zero >&2");
	s.out_cap = 1000;
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.out.len, 1000);
	assert_int_equal(r.out.dropped, 1048576 - 1000);
	assert_int_equal(r.err.len, 1000);
	assert_int_equal(r.err.dropped, 4000);
	launch_result_free(&r);
}

static void
test_launch_timeout(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	(void)state;

	test_spec(&s, "sleep 100 & echo $! >&3; sleep 100");
	s.timeout = 0.5;
	s.report_cap = 100;
	double t0 = util_mono();
	assert_int_equal(launch_run(&s, &r), 0);
	double took = util_mono() - t0;
	assert_int_equal(r.started, 1);
	assert_int_equal(r.timed_out, 1);
	assert_int_equal(r.term_signal, 9);
	assert_true(took >= 0.5 && took < 1.5);
	assert_true(r.duration >= 0.5 && r.duration < 1.5);
	assert_non_null(r.report.data);
	long bg = strtol(r.report.data, NULL, 10);
	assert_true(bg > 1);
	/* SIGKILL is sent; dying takes the process a moment */
	for (int i = 0; i < 50 && test_alive(bg); i++)
		util_sleep(0.01);
	assert_int_equal(test_alive(bg), 0);
	launch_result_free(&r);
}

static void
test_launch_report_pipe(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	(void)state;

	test_spec(&s, "echo hi >&3; echo there >&3");
	s.report_cap = 1 << 20;
	assert_int_equal(launch_run(&s, &r), 0);
	assert_string_equal(r.report.data, "hi\nthere\n");
	assert_int_equal(r.report.dropped, 0);
	launch_result_free(&r);

	/* without a report pipe fd 3 is closed */
	test_spec(&s, "echo hi >&3");
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_not_equal(r.exit_code, 0);
	assert_int_equal(r.report.len, 0);
	launch_result_free(&r);
}

static void
test_launch_missing_binary(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	const char *argv[] = { "/nonexistent/bin/x", NULL };
	(void)state;

	test_spec(&s, "");
	s.argv = argv;
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.started, 0);
	assert_string_equal(r.start_error,
			    "cannot execute /nonexistent/bin/x: No such file or directory");
	launch_result_free(&r);
}

static void
test_launch_stdin(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	size_t n = 300000;
	char *data = malloc(n);
	(void)state;

	for (size_t i = 0; i < n; i++)
		data[i] = (char)('a' + i % 26);
	test_spec(&s, "cat");
	s.stdin_data = data;
	s.stdin_len = n;
	s.out_cap = 1 << 20;
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.out.len, n);
	assert_memory_equal(r.out.data, data, n);
	launch_result_free(&r);

	/* a child that does not read its stdin does not block us */
	test_spec(&s, "exit 3");
	s.stdin_data = data;
	s.stdin_len = n;
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.exit_code, 3);
	launch_result_free(&r);
	free(data);
}

static void
test_launch_as_nobody(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	(void)state;

	if (geteuid() != 0)
		skip();
	test_spec(&s, "id -u; id -G; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
		  "ulimit -n; setsid sh -c 'echo $$ >&3; exec sleep 100 3>&-' "
		  ">/dev/null 2>&1 & sleep 0.3");
	s.uid = 65534;
	s.gid = 65534;
	s.report_cap = 100;
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.exit_code, 0);
	assert_string_equal(r.out.data, "65534\n65534\nCapEff:\t0000000000000000\n"
			    "NoNewPrivs:\t1\n1024\n");
	assert_non_null(r.report.data);
	long bg = strtol(r.report.data, NULL, 10);
	assert_true(bg > 1);
	launch_result_free(&r);
	/* the setsid'ed sleep left the process group; killing the uid gets it */
	for (int i = 0; i < 100 && !test_alive(bg); i++)
		util_sleep(0.01);
	assert_int_equal(test_alive(bg), 1);
	assert_int_equal(launch_kill_uid(65534), 0);
	assert_int_equal(test_alive(bg), 0);
	assert_int_equal(launch_kill_uid((uid_t)-1), 0);
	assert_int_equal(launch_kill_uid(0), 0);
}

static void *
test_thread(void *arg)
{
	long fails = 0;
	(void)arg;
	for (int i = 0; i < 10; i++) {
		struct launch_spec s;
		struct launch_result r;
		test_spec(&s, "echo $1; exit 5");
		if (launch_run(&s, &r) != 0 || r.exit_code != 5 || r.out.len == 0)
			fails++;
		launch_result_free(&r);
	}
	return (void *)fails;
}

static void
test_launch_threads(void **state)
{
	pthread_t th[4];
	(void)state;

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, test_thread, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_int_equal((long)ret, 0);
	}
}

static int test_cancel_flag;

static void *
test_cancel_thread(void *arg)
{
	(void)arg;
	util_sleep(0.2);
	__atomic_store_n(&test_cancel_flag, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Setting *cancel kills the child like a deadline, without timed_out. */
static void
test_launch_cancel(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	pthread_t th;
	(void)state;

	test_spec(&s, "sleep 100");
	s.cancel = &test_cancel_flag;
	assert_int_equal(pthread_create(&th, NULL, test_cancel_thread, NULL), 0);
	double t0 = util_mono();
	assert_int_equal(launch_run(&s, &r), 0);
	double took = util_mono() - t0;
	pthread_join(th, NULL);
	assert_int_equal(r.cancelled, 1);
	assert_int_equal(r.timed_out, 0);
	assert_int_equal(r.term_signal, 9);
	assert_true(took >= 0.2 && took < 0.6);
	launch_result_free(&r);
}

/* The real plugin under the real pytest, its stream through report_build. */
static void
test_launch_plugin_for_real(void **state)
{
	char dir[] = "/tmp/meshtest-plugin-XXXXXX";
	(void)state;

	if (access("/usr/bin/python3", X_OK) != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	char *lib = xasprintf("%s/lib", dir), *tests = xasprintf("%s/tests", dir);
	char *plugin = xasprintf("%s/meshtest_plugin.py", lib);
	char *mod = xasprintf("%s/test_m.py", tests);
	char *pp = xasprintf("PYTHONPATH=%s", lib);
	const char *src =
		"import pytest\n"
		"def test_pass(): assert 1 == 1\n"
		"def test_fail(): assert 1 == 2\n"
		"@pytest.mark.skip(reason='not today')\n"
		"def test_skip(): pass\n"
		"@pytest.mark.xfail(reason='known')\n"
		"def test_xfail(): assert 0\n"
		"@pytest.mark.xfail(strict=True)\n"
		"def test_strict(): pass\n"
		"@pytest.fixture\n"
		"def bad():\n"
		"    yield 1\n"
		"    raise RuntimeError('teardown boom')\n"
		"def test_td(bad): pass\n";
	assert_int_equal(util_mkdir_p(lib, 0755), 0);
	assert_int_equal(util_mkdir_p(tests, 0755), 0);
	assert_int_equal(util_write_file(plugin, embedded_meshtest_plugin,
					 strlen(embedded_meshtest_plugin), 0644), 0);
	assert_int_equal(util_write_file(mod, src, strlen(src), 0644), 0);

	const char *argv[] = { "/usr/bin/python3", "-m", "pytest", "-p", "meshtest_plugin",
			       "-p", "no:cacheprovider", "-q", "--color=no", "tests/test_m.py", NULL };
	const char *env[] = { "PATH=/usr/bin:/bin", pp, "MESHTEST_REPORT_FD=3",
			      "PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", NULL };
	struct launch_spec s;
	struct launch_result r;
	test_spec(&s, "");
	s.argv = argv;
	s.envp = env;
	s.cwd = dir;
	s.report_cap = 1 << 20;
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.exit_code, 1);

	struct report_exit ex = { .started = r.started, .exit_code = r.exit_code,
				  .duration = r.duration, .stderr_tail = r.err.data,
				  .module = "tests/test_m.py" };
	json_t *res = report_build(r.report.data, r.report.len, &ex);
	assert_string_equal(json_string_value(json_object_get(res, "outcome")), "finished");
	assert_int_equal(json_integer_value(json_object_get(res, "passed")), 2);
	assert_int_equal(json_integer_value(json_object_get(res, "failed")), 3);
	assert_int_equal(json_integer_value(json_object_get(res, "skipped")), 1);
	assert_int_equal(json_integer_value(json_object_get(res, "errors")), 1);
	json_t *t = json_object_get(res, "tests");
	const char *want[] = { "passed", "failed", "skipped", "xfailed", "failed", "error" };
	assert_int_equal(json_array_size(t), 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(t, i),
								      "outcome")), want[i]);
	assert_string_equal(json_string_value(json_object_get(json_array_get(t, 2), "message")),
			    "not today");
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(t, 1),
								 "message")), "assert 1 == 2"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(t, 5), "phase")),
			    "teardown");
	json_decref(res);
	launch_result_free(&r);
	assert_int_equal(util_rm_rf(dir), 0);
	free(lib);
	free(tests);
	free(plugin);
	free(mod);
	free(pp);
}

/* A sandbox whose command line cannot be built fails before any fork. */
static void
test_launch_bad_sandbox(void **state)
{
	struct launch_spec s;
	struct launch_result r;
	struct sandbox_spec sb;
	(void)state;

	memset(&sb, 0, sizeof(sb));
	sb.bwrap = "bwrap"; /* not absolute */
	test_spec(&s, "true");
	s.sandbox = &sb;
	assert_int_equal(launch_run(&s, &r), -EINVAL);
	assert_int_equal(r.started, 0);
	launch_result_free(&r);

	/* a missing bwrap is a start error, like any missing binary */
	sb.bwrap = "/nonexistent/bwrap";
	assert_int_equal(launch_run(&s, &r), 0);
	assert_int_equal(r.started, 0);
	assert_string_equal(r.start_error,
			    "cannot execute /nonexistent/bwrap: No such file or directory");
	launch_result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_launch_exit_code),
		cmocka_unit_test(test_launch_env_and_cwd),
		cmocka_unit_test(test_launch_caps),
		cmocka_unit_test(test_launch_timeout),
		cmocka_unit_test(test_launch_report_pipe),
		cmocka_unit_test(test_launch_missing_binary),
		cmocka_unit_test(test_launch_stdin),
		cmocka_unit_test(test_launch_as_nobody),
		cmocka_unit_test(test_launch_threads),
		cmocka_unit_test(test_launch_plugin_for_real),
		cmocka_unit_test(test_launch_cancel),
		cmocka_unit_test(test_launch_bad_sandbox),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
