/*
 * test_setup.c - set-up settings, the per-project settings file, instructor
 * tests, set-up and configuration error messages, merging reruns, and the
 * set-up commands that run once after fetching (setupcmd_run, for real:
 * as root it runs them through bubblewrap as the set-up uid).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "runner/runner.h"
#include "runner/setupcmd.h"
#include "runner/rerun.h"
#include "runner/setup.h"

static char *
dumps(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

static void
assert_parse_error(const char *text, const char *want)
{
	char err[512] = "";
	json_t *in = json_string(text), *out = (json_t *)1;

	assert_int_equal(setup_parse(in, &out, err, sizeof(err)), -EINVAL);
	assert_null(out);
	assert_string_equal(err, want);
	json_decref(in);
}

static void
test_parse_normalizes(void **state)
{
	char err[512] = "";
	json_t *out = NULL, *in;
	char *s;

	(void)state;
	in = json_loads("{\"commands\": [\"make\"], \"services\": [{\"command\": \"python3 "
			"server.py\", \"ready\": {\"port\": 5000}}, {\"name\": \"dht\", "
			"\"command\": \"./dht\", \"ready\": {\"delay\": 15}, \"timeout\": 60}]}",
			0, NULL);
	assert_int_equal(setup_parse(in, &out, err, sizeof(err)), 0);
	s = dumps(out);
	assert_string_equal(s, "{\"commands\":[\"make\"],\"services\":[{\"command\":\"python3 "
			    "server.py\",\"name\":\"service-1\",\"ready\":{\"port\":5000},"
			    "\"timeout\":30.0},{\"command\":\"./dht\",\"name\":\"dht\",\"ready\":"
			    "{\"delay\":15.0},\"timeout\":60.0}]}");
	free(s);
	json_decref(out);
	json_decref(in);

	/* a form field holds the JSON as text; ready defaults to a 1 s delay */
	in = json_string("{\"services\": [{\"name\": \"a\", \"command\": \"x\"}]}");
	assert_int_equal(setup_parse(in, &out, err, sizeof(err)), 0);
	s = dumps(out);
	assert_string_equal(s, "{\"commands\":[],\"services\":[{\"command\":\"x\",\"name\":\"a\","
			    "\"ready\":{\"delay\":1.0},\"timeout\":30.0}]}");
	free(s);
	json_decref(out);
	json_decref(in);
}

static void
test_parse_errors(void **state)
{
	(void)state;
	assert_parse_error("[1]", "setup must be a JSON object");
	assert_parse_error("{not json", "setup must be a JSON object");
	assert_parse_error("{\"command\": []}", "setup: unknown key 'command' (commands, services)");
	assert_parse_error("{\"commands\": \"make\"}",
			   "setup: commands must be a list of at most 32 strings");
	assert_parse_error("{\"commands\": [\"\"]}",
			   "setup: command 1 must be a non-empty string of at most 4096 bytes");
	assert_parse_error("{\"services\": [{\"name\": \"a b\", \"command\": \"x\"}]}",
			   "setup: service 1: name must be 1 to 64 of A-Z a-z 0-9 _ . -");
	assert_parse_error("{\"services\": [{\"name\": \"a\"}]}",
			   "setup: service 'a' needs a command (a string of at most 4096 bytes)");
	assert_parse_error("{\"services\": [{\"name\": \"a\", \"command\": \"x\", \"ready\": "
			   "{\"port\": 0}}]}", "setup: service 'a': ready must be {\"port\": "
			   "1..65535} or {\"delay\": 0..600 seconds}");
	assert_parse_error("{\"services\": [{\"name\": \"a\", \"command\": \"x\", \"ready\": "
			   "{\"port\": 1, \"delay\": 2}}]}", "setup: service 'a': ready must be "
			   "{\"port\": 1..65535} or {\"delay\": 0..600 seconds}");
	assert_parse_error("{\"services\": [{\"name\": \"a\", \"command\": \"x\", \"timeout\": "
			   "0.5}]}", "setup: service 'a': timeout must be 1 to 600 seconds");
	assert_parse_error("{\"services\": [{\"name\": \"a\", \"command\": \"x\"}, {\"name\": "
			   "\"a\", \"command\": \"y\"}]}", "setup: two services are named 'a'");
	assert_parse_error("{\"services\": [{\"name\": \"a\", \"command\": \"x\", \"port\": 1}]}",
			   "setup: service 1: unknown key 'port' (name, command, ready, timeout)");
}

static void
test_settings_parse(void **state)
{
	char err[512] = "";
	json_t *out = json_object(), *in;
	char *s;

	(void)state;
	in = json_pack("{s:s, s:s, s:s}", "reruns", "3", "instructor_tests",
		       "https://git.example/course/tests.git", "setup", "");
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), 0);
	s = dumps(out);
	assert_string_equal(s, "{\"instructor_tests\":\"https://git.example/course/tests.git\","
			    "\"reruns\":3}");
	free(s);
	json_decref(in);
	json_object_clear(out);

	in = json_pack("{s:i}", "reruns", 0);
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), 0);
	assert_int_equal(json_object_size(out), 0);
	json_decref(in);

	in = json_pack("{s:i}", "reruns", 6);
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "reruns must be a whole number from 0 to 5");
	json_decref(in);
	in = json_pack("{s:s}", "reruns", "-1");
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), -EINVAL);
	json_decref(in);
	in = json_pack("{s:s}", "instructor_tests", "--upload-pack=evil");
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "instructor_tests must be the URL of a git repository "
			    "holding the tests");
	json_decref(in);
	in = json_pack("{s:s}", "instructor_tests", "https://x/a b");
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), -EINVAL);
	json_decref(in);
	in = json_pack("{s:s}", "trust", "instructor");
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), 0);
	assert_string_equal(json_string_value(json_object_get(out, "trust")), "instructor");
	json_decref(in);
	json_object_clear(out);
	in = json_pack("{s:s}", "trust", "student");
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), 0);
	assert_int_equal(json_object_size(out), 0);
	json_decref(in);
	in = json_pack("{s:b}", "trust", 1);
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "trust must be \"student\" (the project's pytest configuration,"
			    " conftest files and plugins apply) or \"instructor\" (only the"
			    " instructor's tests and meshtest's plugin)");
	json_decref(in);
	in = json_pack("{s:{s:[i]}}", "setup", "commands", 1);
	assert_int_equal(setup_settings_parse(in, out, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "setup: command 1 must be a non-empty string of at most 4096 "
			    "bytes");
	json_decref(in);
	json_decref(out);
}

static char *
mktmp(void)
{
	char tmpl[] = "/tmp/test_setup.XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void
put(const char *dir, const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", dir, rel), *slash = strrchr(path, '/');

	*slash = '\0';
	assert_int_equal(util_mkdir_p(path, 0755), 0);
	*slash = '/';
	assert_int_equal(util_write_file(path, text, strlen(text), 0644), 0);
	free(path);
}

static int
exists(const char *dir, const char *rel)
{
	char *path = xasprintf("%s/%s", dir, rel);
	struct stat st;
	int r = lstat(path, &st) == 0;

	free(path);
	return r;
}

static void
test_project_file(void **state)
{
	char *dir = mktmp(), *path, *text = NULL;
	json_t *settings;
	size_t len;

	(void)state;
	/* nothing set, and the student's own file is removed (even a folder) */
	path = xasprintf("%s/" SETUP_FILE "/x", dir);
	assert_int_equal(util_mkdir_p(path, 0755), 0);
	free(path);
	settings = json_pack("{s:f}", "module_timeout", 5.0);
	assert_int_equal(setup_write_project(dir, settings), 0);
	assert_false(exists(dir, SETUP_FILE));
	assert_int_equal(setup_needed(dir), 0);
	assert_int_equal(setup_project_reruns(dir), 0);
	json_decref(settings);

	settings = json_pack("{s:i, s:{s:[s], s:[]}, s:s}", "reruns", 2, "setup", "commands",
			     "make", "services", "instructor_tests", "file:///x");
	assert_int_equal(setup_write_project(dir, settings), 0);
	path = xasprintf("%s/" SETUP_FILE, dir);
	assert_int_equal(util_read_file(path, 4096, &text, &len), 0);
	assert_string_equal(text, "{\"reruns\":2,\"setup\":{\"commands\":[\"make\"],"
			    "\"services\":[]}}");
	assert_int_equal(setup_needed(dir), 1);
	assert_int_equal(setup_project_reruns(dir), 2);
	json_decref(settings);
	free(text);

	/* reruns alone: no supervisor needed; a project file makes it needed */
	settings = json_pack("{s:i}", "reruns", 5);
	assert_int_equal(setup_write_project(dir, settings), 0);
	assert_int_equal(setup_needed(dir), 0);
	assert_int_equal(setup_project_reruns(dir), 5);
	put(dir, "meshtest.toml", "commands = []\n");
	assert_int_equal(setup_needed(dir), 1);
	json_decref(settings);

	/* a link named like the file is not followed */
	assert_int_equal(util_rm_rf(path), 0);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_int_equal(setup_project_reruns(dir), 0);
	free(path);
	util_rm_rf(dir);
	free(dir);
}

static void
test_install_tests(void **state)
{
	char *proj = mktmp(), *inst = mktmp(), err[256] = "";

	(void)state;
	put(proj, "tests/test_mine.py", "x");
	put(proj, "tests/conftest.py", "x");
	put(proj, "conftest.py", "root");
	/* a repository with a tests/ folder: only that folder is taken */
	put(inst, "tests/test_grade.py", "g");
	put(inst, "README.md", "r");
	assert_int_equal(setup_install_tests(proj, inst, err, sizeof(err)), 0);
	assert_true(exists(proj, "tests/test_grade.py"));
	assert_false(exists(proj, "tests/test_mine.py"));
	assert_false(exists(proj, "tests/conftest.py"));
	assert_false(exists(proj, "tests/README.md"));
	assert_true(exists(proj, "conftest.py"));
	util_rm_rf(inst);
	free(inst);

	/* a repository that is the tests folder itself, .git left out */
	inst = mktmp();
	put(inst, "test_x.py", "x");
	put(inst, ".git/HEAD", "h");
	assert_int_equal(setup_install_tests(proj, inst, err, sizeof(err)), 0);
	assert_true(exists(proj, "tests/test_x.py"));
	assert_false(exists(proj, "tests/test_grade.py"));
	assert_false(exists(proj, "tests/.git"));
	util_rm_rf(inst);
	util_rm_rf(proj);
	free(inst);
	free(proj);
}

static void
test_fix_setup_error(void **state)
{
	const char *stream = "{\"ev\":\"setup_error\",\"message\":\"service 'chat' not ready "
			     "after 15 s (nothing accepts connections on port 5000)\"}\n";
	json_t *res = json_pack("{s:s, s:i, s:i, s:[]}", "outcome", "infra_error", "passed", 0,
				"failed", 0, "tests");
	char *s;

	(void)state;
	assert_int_equal(setup_fix_result(res, stream, strlen(stream), "junk", "/w/p",
					  "tests/test_a.py"), 1);
	s = dumps(res);
	assert_string_equal(s, "{\"duration\":0.0,\"errors\":1,\"failed\":1,\"message\":\"service 'chat' not "
			    "ready after 15 s (nothing accepts connections on port 5000)\","
			    "\"outcome\":\"infra_error\",\"passed\":0,\"setup_failed\":true,"
			    "\"skipped\":0,\"tests\":[{\"counted\":\"failed\",\"duration\":0.0,"
			    "\"message\":\"service 'chat' not ready after 15 s (nothing accepts "
			    "connections on port 5000)\",\"nodeid\":\"tests/test_a.py\",\"outcome\":"
			    "\"error\",\"phase\":\"collect\"}]}");
	free(s);
	assert_int_equal(rerun_wanted(res), 0);
	json_decref(res);

	/* an ordinary stream is left alone */
	res = json_pack("{s:s, s:i}", "outcome", "finished", "failed", 1);
	stream = "{\"ev\":\"hello\"}\n{\"ev\":\"setup_error\"";
	assert_int_equal(setup_fix_result(res, stream, strlen(stream), "E   assert 1 == 2\n",
					  "/w/p", "tests/test_a.py"), 0);
	s = dumps(res);
	assert_string_equal(s, "{\"failed\":1,\"outcome\":\"finished\"}");
	free(s);
	assert_int_equal(rerun_wanted(res), 1);
	json_decref(res);
}

static void
test_fix_config_error(void **state)
{
	const char *err_text = "ERROR: usage: __main__.py [options] [file_or_dir]\n"
			       "__main__.py: error: unrecognized arguments: --cov=pkg --cov-report\n"
			       "  inifile: /data/work/slot-1/project/tox.ini\n"
			       "  rootdir: /data/work/slot-1/project\n";
	json_t *res = json_object();

	(void)state;
	assert_int_equal(setup_fix_result(res, NULL, 0, err_text, "/data/work/slot-1/project",
					  "tests/test_a.py"), 1);
	assert_string_equal(json_string_value(json_object_get(res, "message")),
			    "pytest configuration names an option no plugin provides: --cov=pkg "
			    "--cov-report (addopts in tox.ini); the environment lacks that plugin");
	assert_true(json_is_true(json_object_get(res, "config_error")));
	assert_int_equal(json_integer_value(json_object_get(res, "failed")), 1);
	json_decref(res);

	res = json_object();
	assert_int_equal(setup_fix_result(res, NULL, 0, "error: unrecognized arguments: -x9\n"
					  "  inifile: None\n", "/p", NULL), 1);
	assert_string_equal(json_string_value(json_object_get(res, "message")),
			    "pytest configuration names an option no plugin provides: -x9; the "
			    "environment lacks that plugin");
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(res, "tests"), 0), "nodeid")), "<collection>");
	json_decref(res);
}

static void
test_has_commands(void **state)
{
	char *dir = mktmp(), *path;
	json_t *settings;

	(void)state;
	assert_int_equal(setup_has_commands(dir), 0);
	/* services alone: nothing to run after fetching */
	settings = json_pack("{s:{s:[], s:[{s:s}]}}", "setup", "commands", "services",
			     "command", "./srv");
	assert_int_equal(setup_write_project(dir, settings), 0);
	assert_int_equal(setup_has_commands(dir), 0);
	assert_int_equal(setup_needed(dir), 1);
	json_decref(settings);
	settings = json_pack("{s:{s:[s]}}", "setup", "commands", "make");
	assert_int_equal(setup_write_project(dir, settings), 0);
	assert_int_equal(setup_has_commands(dir), 1);
	json_decref(settings);
	settings = json_pack("{s:i}", "reruns", 1);
	assert_int_equal(setup_write_project(dir, settings), 0);
	assert_int_equal(setup_has_commands(dir), 0);
	json_decref(settings);
	/* the project's own file: only Python reads it, so maybe */
	put(dir, "meshtest.json", "{\"commands\": [\"make\"]}");
	assert_int_equal(setup_has_commands(dir), 1);
	path = xasprintf("%s/meshtest.json", dir);
	assert_int_equal(unlink(path), 0);
	/* a link is not a project file */
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_int_equal(setup_has_commands(dir), 0);
	free(path);
	put(dir, "meshtest.toml", "commands = []\n");
	assert_int_equal(setup_has_commands(dir), 1);
	util_rm_rf(dir);
	free(dir);
}

static void
test_stream_error(void **state)
{
	char msg[64] = "";
	const char *s1 = "{\"ev\":\"start\"}\n{\"ev\":\"setup_error\",\"message\":\"set-up "
			 "command 2 failed (exit 1): bad\"}\n";
	const char *s2 = "{\"ev\":\"setup_error\",\"message\":\"\"}";
	const char *s3 = "{\"ev\":\"test\",\"nodeid\":\"setup_error\"}\n"
			 "{\"ev\":\"setup_error\",\"message\":\"0123456789012345678901234567"
			 "8901234567890123456789012345678901234567890123456789\"}\n";
	const char *s4 = "{\"ev\":\"note\",\"message\":\"\\\"setup_error\\\"\"}\n";

	(void)state;
	assert_int_equal(setup_stream_error(s1, strlen(s1), msg, sizeof(msg)), 1);
	assert_string_equal(msg, "set-up command 2 failed (exit 1): bad");
	assert_int_equal(setup_stream_error(s2, strlen(s2), msg, sizeof(msg)), 1);
	assert_string_equal(msg, "the set-up failed");
	assert_int_equal(setup_stream_error(s3, strlen(s3), msg, sizeof(msg)), 1);
	assert_string_equal(msg, "012345678901234567890123456789012345678901234567890123456789"
			    "012");
	strcpy(msg, "untouched");
	assert_int_equal(setup_stream_error(s4, strlen(s4), msg, sizeof(msg)), 0);
	assert_int_equal(setup_stream_error(NULL, 0, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "untouched");
}

static char *
slurp(const char *dir, const char *rel)
{
	char *path = xasprintf("%s/%s", dir, rel), *text = NULL;
	size_t len;

	if (util_read_file(path, 1 << 16, &text, &len) < 0)
		text = NULL;
	free(path);
	return text;
}

/* Real set-up runs: only as root (the set-up uid) and with /usr/bin/python3. */
static void
test_run_setup(void **state)
{
	char *data = mktmp(), *proj = mktmp(), err[1024] = "", *t;
	struct runner_config rc;
	json_t *settings;
	struct stat st;
	long base = 400000 + (long)(getpid() % 1000) * 64;

	(void)state;
	if (geteuid() != 0 || access("/usr/bin/python3", X_OK) < 0) {
		util_rm_rf(data);
		util_rm_rf(proj);
		free(data);
		free(proj);
		skip();
	}
	memset(&rc, 0, sizeof(rc));
	rc.data_dir = data;
	rc.python = "/usr/bin/python3";
	rc.slots = 2;
	rc.uid_base = base;
	assert_int_equal(chmod(data, 0711), 0);
	assert_int_equal(runner_init(&rc, err, sizeof(err)), 0);
	assert_int_equal(runner_setup_uid(), (uid_t)(base + 2));

	/* nothing to run: the folder is left alone */
	put(proj, "tests/test_a.py", "def test_a():\n    pass\n");
	assert_int_equal(setupcmd_run(proj, err, sizeof(err)), 0);

	/* evaluation commands first, then the project's; the settings file survives */
	settings = json_pack("{s:{s:[s]}}", "setup", "commands", "echo eval >> order.txt");
	assert_int_equal(setup_write_project(proj, settings), 0);
	json_decref(settings);
	put(proj, "meshtest.toml", "commands = [\"echo x >> generated.txt\", "
	    "\"id -u > uid.txt\", \"echo project >> order.txt\", "
	    "\"echo junk > .meshtest-evaluation.json\", \"echo to-stdout\"]\n");
	assert_int_equal(setupcmd_run(proj, err, sizeof(err)), 0);
	t = slurp(proj, "generated.txt");
	assert_string_equal(t, "x\n");
	free(t);
	t = slurp(proj, "order.txt");
	assert_string_equal(t, "eval\nproject\n");
	free(t);
	t = slurp(proj, "uid.txt");
	char want[32];
	snprintf(want, sizeof(want), "%ld\n", base + 2);
	assert_string_equal(t, want);
	free(t);
	t = slurp(proj, SETUP_FILE);
	assert_string_equal(t, "{\"setup\":{\"commands\":[\"echo eval >> order.txt\"]}}");
	free(t);
	t = xasprintf("%s/generated.txt", proj);
	assert_int_equal(lstat(t, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, 0);
	free(t);
	assert_int_equal(lstat(proj, &st), 0);
	assert_int_equal(st.st_uid, 0);

	/* a failing command: one line, and the folder as it was; commands are
	 * numbered in run order, the evaluation's (1) first */
	put(proj, "meshtest.toml", "commands = [\"echo y >> generated.txt\", "
	    "\"echo first >&2; echo 'no such tool' >&2; exit 1\", \"echo z >> generated.txt\"]\n");
	assert_int_equal(setupcmd_run(proj, err, sizeof(err)), -EIO);
	assert_string_equal(err, "set-up command 3 failed (exit 1): no such tool");
	t = slurp(proj, "generated.txt");
	assert_string_equal(t, "x\n");
	free(t);

	/* a bad project file is the project's error too */
	put(proj, "meshtest.toml", "commands = [\n");
	assert_int_equal(setupcmd_run(proj, err, sizeof(err)), -EIO);
	assert_true(util_starts_with(err, "meshtest.toml: "));

	/* nothing of the set-up uid is left running */
	put(proj, "meshtest.toml", "commands = [\"(sleep 100 &) ; true\"]\n");
	assert_int_equal(setupcmd_run(proj, err, sizeof(err)), 0);
	t = xasprintf("%s/work/setup", data);
	assert_int_equal(access(t, F_OK), -1);
	free(t);

	util_rm_rf(data);
	util_rm_rf(proj);
	free(data);
	free(proj);
}

/* trust "instructor": recorded in the project, conftest.py set aside but in tests/ */
static void
test_trust_instructor(void **state)
{
	char *dir = mktmp();
	json_t *settings = json_pack("{s:s}", "trust", "instructor");
	size_t removed = 99;

	(void)state;
	put(dir, "conftest.py", "x = 1\n");
	put(dir, "src/pkg/conftest.py", "x = 1\n");
	put(dir, "src/pkg/mod.py", "x = 1\n");
	put(dir, "tests/conftest.py", "x = 1\n");
	put(dir, "tests/sub/conftest.py", "x = 1\n");
	assert_int_equal(setup_project_trusted(dir), 0);
	assert_int_equal(setup_write_project(dir, settings), 0);
	assert_int_equal(setup_project_trusted(dir), 1);
	assert_int_equal(setup_set_aside_student_config(dir, &removed), 0);
	assert_int_equal(removed, 2);
	assert_false(exists(dir, "conftest.py"));
	assert_false(exists(dir, "src/pkg/conftest.py"));
	assert_true(exists(dir, "src/pkg/mod.py"));
	assert_true(exists(dir, "tests/conftest.py"));
	assert_true(exists(dir, "tests/sub/conftest.py"));
	json_decref(settings);
	util_rm_rf(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_normalizes),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_settings_parse),
		cmocka_unit_test(test_project_file),
		cmocka_unit_test(test_install_tests),
		cmocka_unit_test(test_fix_setup_error),
		cmocka_unit_test(test_fix_config_error),
		cmocka_unit_test(test_has_commands),
		cmocka_unit_test(test_stream_error),
		cmocka_unit_test(test_run_setup),
		cmocka_unit_test(test_trust_instructor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
