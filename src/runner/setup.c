/*
 * setup.c - evaluation set-up settings, the per-project settings file,
 * instructor tests, reruns and set-up error messages (see setup.h).
 *
 * Owns the format of SETUP_FILE and the C side of the set-up rules (the
 * Python side, meshtest_supervisor.py, applies the same checks to the
 * project's own meshtest.toml / meshtest.json). No threads or globals: the
 * fetcher threads call setup_write_project and setup_install_tests, slot
 * threads the rest; every function is safe to call from any thread.
 */
#include "runner/setup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "runner/report.h"

#define SETUP_FILE_MAX (1 << 20)
#define SETUP_DEFAULT_TIMEOUT 30.0
#define SETUP_DEFAULT_DELAY 1.0

static int
setup_fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

static int
setup_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
			return 0;
	return 1;
}

/* A command: a non-empty string of at most SETUP_CMD_MAX bytes without NUL. */
static int
setup_cmd_ok(json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0 &&
	       json_string_length(v) <= SETUP_CMD_MAX &&
	       strlen(json_string_value(v)) == json_string_length(v);
}

static int
setup_number(json_t *v, double lo, double hi, double *out)
{
	double d;

	if (!json_is_number(v))
		return -EINVAL;
	d = json_number_value(v);
	if (!isfinite(d) || d < lo || d > hi)
		return -EINVAL;
	*out = d;
	return 0;
}

static int
setup_service(json_t *s, size_t i, json_t *out, char *err, size_t errlen)
{
	const char *key, *name;
	json_t *v, *ready, *nready;
	char defname[32];
	double timeout = SETUP_DEFAULT_TIMEOUT, d;

	if (!json_is_object(s)) {
		snprintf(err, errlen, "setup: service %zu is not an object", i + 1);
		return -EINVAL;
	}
	json_object_foreach(s, key, v) {
		if (strcmp(key, "name") != 0 && strcmp(key, "command") != 0 &&
		    strcmp(key, "ready") != 0 && strcmp(key, "timeout") != 0) {
			snprintf(err, errlen, "setup: service %zu: unknown key '%.64s' (name, "
				 "command, ready, timeout)", i + 1, key);
			return -EINVAL;
		}
	}
	snprintf(defname, sizeof(defname), "service-%zu", i + 1);
	v = json_object_get(s, "name");
	name = v != NULL ? json_string_value(v) : defname;
	if (name == NULL || !setup_name_ok(name)) {
		snprintf(err, errlen, "setup: service %zu: name must be 1 to 64 of A-Z a-z 0-9 "
			 "_ . -", i + 1);
		return -EINVAL;
	}
	if (!setup_cmd_ok(json_object_get(s, "command"))) {
		snprintf(err, errlen, "setup: service '%s' needs a command (a string of at most "
			 "%d bytes)", name, SETUP_CMD_MAX);
		return -EINVAL;
	}
	ready = json_object_get(s, "ready");
	if (ready == NULL) {
		nready = json_pack("{s:f}", "delay", SETUP_DEFAULT_DELAY);
	} else if (json_is_object(ready) && json_object_size(ready) == 1 &&
		   json_is_integer(v = json_object_get(ready, "port")) &&
		   json_integer_value(v) >= 1 && json_integer_value(v) <= 65535) {
		nready = json_pack("{s:I}", "port", json_integer_value(v));
	} else if (json_is_object(ready) && json_object_size(ready) == 1 &&
		   setup_number(json_object_get(ready, "delay"), 0, SETUP_TIMEOUT_MAX, &d) == 0) {
		nready = json_pack("{s:f}", "delay", d);
	} else {
		snprintf(err, errlen, "setup: service '%s': ready must be {\"port\": 1..65535} "
			 "or {\"delay\": 0..600 seconds}", name);
		return -EINVAL;
	}
	v = json_object_get(s, "timeout");
	if (v != NULL && setup_number(v, 1, SETUP_TIMEOUT_MAX, &timeout) < 0) {
		json_decref(nready);
		snprintf(err, errlen, "setup: service '%s': timeout must be 1 to 600 seconds",
			 name);
		return -EINVAL;
	}
	json_array_append_new(out, json_pack("{s:s, s:O, s:o, s:f}", "name", name, "command",
					     json_object_get(s, "command"), "ready", nready,
					     "timeout", timeout));
	return 0;
}

int
setup_parse(json_t *in, json_t **out, char *err, size_t errlen)
{
	json_t *doc = in, *parsed = NULL, *cmds, *svcs, *ncmds = NULL, *nsvcs = NULL, *v;
	const char *key;
	size_t i;
	int r = -EINVAL;

	*out = NULL;
	if (json_is_string(in)) {
		parsed = json_loads(json_string_value(in), JSON_REJECT_DUPLICATES, NULL);
		if (parsed == NULL)
			return setup_fail(err, errlen, "setup must be a JSON object");
		doc = parsed;
	}
	if (!json_is_object(doc)) {
		setup_fail(err, errlen, "setup must be a JSON object");
		goto out;
	}
	json_object_foreach(doc, key, v) {
		if (strcmp(key, "commands") != 0 && strcmp(key, "services") != 0) {
			snprintf(err, errlen, "setup: unknown key '%.64s' (commands, services)", key);
			goto out;
		}
	}
	cmds = json_object_get(doc, "commands");
	svcs = json_object_get(doc, "services");
	ncmds = json_array();
	nsvcs = json_array();
	if (cmds != NULL && (!json_is_array(cmds) || json_array_size(cmds) > SETUP_COMMANDS_MAX)) {
		snprintf(err, errlen, "setup: commands must be a list of at most %d strings",
			 SETUP_COMMANDS_MAX);
		goto out;
	}
	json_array_foreach(cmds, i, v) {
		if (!setup_cmd_ok(v)) {
			snprintf(err, errlen, "setup: command %zu must be a non-empty string of at "
				 "most %d bytes", i + 1, SETUP_CMD_MAX);
			goto out;
		}
		json_array_append(ncmds, v);
	}
	if (svcs != NULL && (!json_is_array(svcs) || json_array_size(svcs) > SETUP_SERVICES_MAX)) {
		snprintf(err, errlen, "setup: services must be a list of at most %d objects",
			 SETUP_SERVICES_MAX);
		goto out;
	}
	json_array_foreach(svcs, i, v) {
		if (setup_service(v, i, nsvcs, err, errlen) < 0)
			goto out;
		for (size_t k = 0; k + 1 < json_array_size(nsvcs); k++) {
			if (strcmp(json_string_value(json_object_get(json_array_get(nsvcs, k), "name")),
				   json_string_value(json_object_get(json_array_get(nsvcs, i), "name")))
			    == 0) {
				snprintf(err, errlen, "setup: two services are named '%s'",
					 json_string_value(json_object_get(json_array_get(nsvcs, i),
									   "name")));
				goto out;
			}
		}
	}
	*out = json_pack("{s:O, s:O}", "commands", ncmds, "services", nsvcs);
	r = 0;
out:
	json_decref(ncmds);
	json_decref(nsvcs);
	json_decref(parsed);
	return r;
}

/* An integer from a JSON integer or a string of digits (a form field); -1 if not. */
static long
setup_int(json_t *v)
{
	if (json_is_integer(v))
		return (long)json_integer_value(v);
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end = NULL;
		long n;
		if (*s < '0' || *s > '9')
			return -1;
		errno = 0;
		n = strtol(s, &end, 10);
		if (errno != 0 || *end != '\0')
			return -1;
		return n;
	}
	return -1;
}

int
setup_settings_parse(json_t *in, json_t *out, char *err, size_t errlen)
{
	json_t *v;

	v = json_object_get(in, "setup");
	if (v != NULL && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0)) {
		json_t *s = NULL;
		int r = setup_parse(v, &s, err, errlen);
		if (r < 0)
			return r;
		json_object_set_new(out, "setup", s);
	}
	v = json_object_get(in, "reruns");
	if (v != NULL && !json_is_null(v)) {
		long n = setup_int(v);
		if (n < 0 || n > SETUP_RERUNS_MAX) {
			snprintf(err, errlen, "reruns must be a whole number from 0 to %d",
				 SETUP_RERUNS_MAX);
			return -EINVAL;
		}
		if (n > 0)
			json_object_set_new(out, "reruns", json_integer(n));
	}
	v = json_object_get(in, "trust");
	if (v != NULL && !json_is_null(v)) {
		const char *t = json_string_value(v);
		if (t == NULL || (strcmp(t, "student") != 0 && strcmp(t, "instructor") != 0)) {
			snprintf(err, errlen, "trust must be \"student\" (the project's pytest"
				 " configuration, conftest files and plugins apply) or \"instructor\""
				 " (only the instructor's tests and meshtest's plugin)");
			return -EINVAL;
		}
		if (strcmp(t, "instructor") == 0)
			json_object_set_new(out, "trust", json_string(t));
	}
	v = json_object_get(in, "instructor_tests");
	if (v != NULL && !json_is_null(v)) {
		const char *u = json_string_value(v);
		int ok = u != NULL && *u != '\0' && *u != '-' &&
			 json_string_length(v) <= SETUP_URL_MAX &&
			 strlen(u) == json_string_length(v);
		for (const char *p = u; ok && *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				ok = 0;
		if (!ok) {
			snprintf(err, errlen, "instructor_tests must be the URL of a git "
				 "repository holding the tests");
			return -EINVAL;
		}
		json_object_set_new(out, "instructor_tests", json_string(u));
	}
	return 0;
}

int
setup_write_project(const char *dir, json_t *settings)
{
	char *path = xasprintf("%s/%s", dir, SETUP_FILE);
	json_t *doc = json_object(), *v;
	char *text = NULL;
	int r;

	if ((r = util_rm_rf(path)) < 0)
		goto out;
	if ((v = json_object_get(settings, "setup")) != NULL)
		json_object_set(doc, "setup", v);
	if ((v = json_object_get(settings, "reruns")) != NULL)
		json_object_set(doc, "reruns", v);
	if ((v = json_object_get(settings, "trust")) != NULL)
		json_object_set(doc, "trust", v);
	if (json_object_size(doc) == 0) {
		r = 0;
		goto out;
	}
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	r = text != NULL ? util_write_file(path, text, strlen(text), 0644) : -ENOMEM;
out:
	free(text);
	json_decref(doc);
	free(path);
	return r;
}

/* dir/SETUP_FILE as JSON (never through a link), or NULL. */
static json_t *
setup_read_project(const char *dir)
{
	char *path = xasprintf("%s/%s", dir, SETUP_FILE);
	struct stat st;
	json_t *doc = NULL;
	char *text = NULL;
	size_t len;

	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    util_read_file(path, SETUP_FILE_MAX, &text, &len) == 0)
		doc = json_loadb(text, len, 0, NULL);
	free(text);
	free(path);
	return doc;
}

int
setup_write_packages(const char *dir, const char *pins)
{
	char *path = xasprintf("%s/%s", dir, SETUP_FILE), *text;
	json_t *doc = setup_read_project(dir);
	int r;

	if (!json_is_object(doc)) {
		json_decref(doc);
		doc = json_object();
	}
	json_object_set_new(doc, "packages", json_string(pins));
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	r = text != NULL ? util_write_file(path, text, strlen(text), 0644) : -ENOMEM;
	free(text);
	json_decref(doc);
	free(path);
	return r;
}

char *
setup_project_packages(const char *dir)
{
	json_t *doc = setup_read_project(dir);
	const char *p = json_string_value(json_object_get(doc, "packages"));
	char *pins = p != NULL ? xstrdup(p) : NULL;

	json_decref(doc);
	return pins;
}

static int
setup_regular(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct stat st;
	int r = lstat(path, &st) == 0 && S_ISREG(st.st_mode);

	free(path);
	return r;
}

int
setup_needed(const char *dir)
{
	json_t *doc;
	int r;

	if (setup_regular(dir, "meshtest.toml") || setup_regular(dir, "meshtest.json"))
		return 1;
	doc = setup_read_project(dir);
	r = json_object_get(doc, "setup") != NULL;
	json_decref(doc);
	return r;
}

int
setup_has_commands(const char *dir)
{
	json_t *doc;
	int r;

	if (setup_regular(dir, "meshtest.toml") || setup_regular(dir, "meshtest.json"))
		return 1;
	doc = setup_read_project(dir);
	r = json_array_size(json_object_get(json_object_get(doc, "setup"), "commands")) > 0;
	json_decref(doc);
	return r;
}

int
setup_stream_error(const char *stream, size_t len, char *msg, size_t msglen)
{
	int found = 0;

	for (size_t i = 0; stream != NULL && i < len && !found;) {
		const char *nl = memchr(stream + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (stream + i)) : len - i;
		if (n > 0 && memmem(stream + i, n, "\"setup_error\"", 13) != NULL) {
			json_t *ev = json_loadb(stream + i, n, 0, NULL);
			const char *kind = json_string_value(json_object_get(ev, "ev"));
			const char *m = json_string_value(json_object_get(ev, "message"));
			if (kind != NULL && strcmp(kind, "setup_error") == 0) {
				snprintf(msg, msglen, "%s", m != NULL && *m ? m : "the set-up failed");
				found = 1;
			}
			json_decref(ev);
		}
		i += n + 1;
	}
	return found;
}

int
setup_project_reruns(const char *dir)
{
	json_t *doc = setup_read_project(dir);
	long n = setup_int(json_object_get(doc, "reruns"));

	json_decref(doc);
	return n < 0 ? 0 : n > SETUP_RERUNS_MAX ? SETUP_RERUNS_MAX : (int)n;
}

int
setup_project_trusted(const char *dir)
{
	json_t *doc = setup_read_project(dir);
	const char *t = json_string_value(json_object_get(doc, "trust"));
	int r = t != NULL && strcmp(t, "instructor") == 0;

	json_decref(doc);
	return r;
}

/* Remove every conftest.py under dir/rel but in rel/tests (rel "" is the root). */
static int
setup_drop_conftests(const char *dir, const char *rel, int depth, size_t *n)
{
	char *path = *rel ? xasprintf("%s/%s", dir, rel) : xstrdup(dir);
	DIR *d = opendir(path);
	struct dirent *de;
	int r = 0;

	if (d == NULL) {
		r = errno == ENOENT ? 0 : -errno;
		free(path);
		return r;
	}
	while ((de = readdir(d)) != NULL && r == 0) {
		char *sub = *rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
		char *full = xasprintf("%s/%s", dir, sub);
		struct stat st;

		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    lstat(full, &st) == 0) {
			if (S_ISDIR(st.st_mode) && depth < 64 && strcmp(sub, "tests") != 0) {
				r = setup_drop_conftests(dir, sub, depth + 1, n);
			} else if (!S_ISDIR(st.st_mode) && strcmp(de->d_name, "conftest.py") == 0) {
				r = unlink(full) < 0 ? -errno : 0;
				*n += r == 0;
			}
		}
		free(sub);
		free(full);
	}
	closedir(d);
	free(path);
	return r;
}

int
setup_set_aside_student_config(const char *dir, size_t *removed)
{
	*removed = 0;
	return setup_drop_conftests(dir, "", 0, removed);
}

int
setup_install_tests(const char *dir, const char *src, char *err, size_t errlen)
{
	char *sub = xasprintf("%s/tests", src), *dst = xasprintf("%s/tests", dir);
	char *git = xasprintf("%s/tests/.git", dir);
	struct stat st;
	int r, whole = !(lstat(sub, &st) == 0 && S_ISDIR(st.st_mode));

	if ((r = util_rm_rf(dst)) < 0) {
		snprintf(err, errlen, "cannot remove the project's tests: %s", strerror(-r));
		goto out;
	}
	if ((r = util_copy_tree(whole ? src : sub, dst, (uid_t)-1, (gid_t)-1)) < 0) {
		snprintf(err, errlen, "cannot copy the instructor's tests: %s", strerror(-r));
		goto out;
	}
	if (whole && (r = util_rm_rf(git)) < 0) {
		snprintf(err, errlen, "cannot copy the instructor's tests: %s", strerror(-r));
		goto out;
	}
	r = 0;
out:
	free(sub);
	free(dst);
	free(git);
	return r;
}

/* The value after "prefix" on the line of text that holds it (malloc'ed), or NULL. */
static char *
setup_line_after(const char *text, const char *prefix)
{
	const char *p = strstr(text, prefix), *e;

	if (p == NULL)
		return NULL;
	p += strlen(prefix);
	e = strchr(p, '\n');
	if (e == NULL)
		e = p + strlen(p);
	while (e > p && (e[-1] == ' ' || e[-1] == '\r' || e[-1] == '\t'))
		e--;
	if (e - p > 300)
		e = p + 300;
	char *s = xmalloc((size_t)(e - p) + 1);
	memcpy(s, p, (size_t)(e - p));
	s[e - p] = '\0';
	for (char *q = s; *q; q++)
		if ((unsigned char)*q < 0x20)
			*q = ' ';
	return s;
}

/* Turn result into one error (report_error_result), keeping its other fields. */
static void
setup_make_error(json_t *result, const char *module, const char *msg)
{
	json_t *err = report_error_result("infra_error", module, msg);

	if (json_object_get(result, "duration") != NULL)
		json_object_del(err, "duration");   /* the run's own */
	json_object_update(result, err);
	json_decref(err);
}

int
setup_fix_result(json_t *result, const char *stream, size_t len, const char *err_text,
		 const char *copy_dir, const char *module)
{
	char *msg = NULL, *opt = NULL, *ini = NULL, smsg[1001];
	int changed = 0;

	if (module == NULL)
		module = "<collection>";
	if (setup_stream_error(stream, len, smsg, sizeof(smsg))) {
		setup_make_error(result, module, smsg);
		json_object_set_new(result, "setup_failed", json_true());
		changed = 1;
		goto out;
	}
	if (err_text == NULL || (opt = setup_line_after(err_text, "error: unrecognized "
							 "arguments: ")) == NULL)
		goto out;
	ini = setup_line_after(err_text, "inifile: ");
	const char *file = ini;
	if (ini != NULL && copy_dir != NULL && util_starts_with(ini, copy_dir) &&
	    ini[strlen(copy_dir)] == '/')
		file = ini + strlen(copy_dir) + 1;
	if (file != NULL && *file != '\0' && strcmp(file, "None") != 0)
		msg = xasprintf("pytest configuration names an option no plugin provides: %s "
				"(addopts in %s); the environment lacks that plugin", opt, file);
	else
		msg = xasprintf("pytest configuration names an option no plugin provides: %s; "
				"the environment lacks that plugin", opt);
	setup_make_error(result, module, msg);
	json_object_set_new(result, "config_error", json_true());
	changed = 1;
out:
	free(msg);
	free(opt);
	free(ini);
	return changed;
}
