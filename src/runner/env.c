/*
 * env.c - virtual environments. A project's requirements are resolved
 * once, on the node that prepares the project, into the set of packages
 * that installed (pins: "name==version" lines) and a warning for each one
 * that did not; every node then runs the project in the environment of
 * exactly those pins, shared by every project with the same pins and
 * read-only once built.
 *
 * Owns <work>/venvs: <pinkey>/ (an environment; key: SHA-256 of the
 * interpreter and the pins), <reqkey>.resolved (what a requirement set
 * resolved to: pins and warnings; key: SHA-256 of the interpreter and the
 * requirement files as reqs.c reduced them), and the node's memory of keys
 * being built and of failed builds (env_lock). Builds run as an
 * unprivileged uid inside the sandbox (runner_step): `python -m venv`
 * (seeing the node's site packages), pip with the host's network, a check
 * that pytest imports; then the folder is handed to root, made read-only
 * and renamed into place. Concurrent calls for one key wait for a single
 * build. Any thread.
 */
#include "runner/env.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "runner/launch.h"
#include "runner/reqs.h"
#include "runner/runner_int.h"

#define ENV_VENV_TIMEOUT 300.0
#define ENV_PIP_TIMEOUT 600.0         /* one pip call */
#define ENV_RESOLVE_BUDGET 1800.0     /* every pip call of one resolution */
#define ENV_CHECK_TIMEOUT 60.0
#define ENV_FAIL_TTL 600.0            /* seconds a failed build is remembered */
#define ENV_PARTIAL_TTL 3600.0        /* seconds a partly installed set is remembered */
#define ENV_READY ".meshtest-ready"
#define ENV_RESOLVED_MAX (1u << 20)

static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t env_cond = PTHREAD_COND_INITIALIZER;
static json_t *env_building;  /* key -> true while one thread builds it */
static json_t *env_failures;  /* key -> [message, util_mono() of the failure] */
static json_t *env_holds;     /* key -> callers of env_prepare that have not released it */

void
env_init(void)
{
	pthread_mutex_lock(&env_lock);
	if (env_building == NULL)
		env_building = json_object();
	if (env_failures == NULL)
		env_failures = json_object();
	if (env_holds == NULL)
		env_holds = json_object();
	json_object_clear(env_failures);
	pthread_mutex_unlock(&env_lock);
}

void
env_abort_wake(void)
{
	/* waiters for a build see the runner's abort flag and give up */
	pthread_mutex_lock(&env_lock);
	pthread_cond_broadcast(&env_cond);
	pthread_mutex_unlock(&env_lock);
}

/* ------------------------------------------------------------ one build per key */

/*
 * Wait until no thread builds key, then: 1 when it is ready (ready_path
 * exists), -EIO with err set when it failed recently, -ECANCELED at
 * shutdown, or 0: key is now this thread's to build (env_end it).
 */
static int
env_begin(const char *key, const char *ready_path, char *err, size_t errlen)
{
	json_t *failed;

	pthread_mutex_lock(&env_lock);
	while (json_object_get(env_building, key) != NULL && !runner_aborted())
		pthread_cond_wait(&env_cond, &env_lock);
	if (runner_aborted()) {
		pthread_mutex_unlock(&env_lock);
		util_seterr(err, errlen, "the node is shutting down");
		return -ECANCELED;
	}
	if (ready_path != NULL && access(ready_path, F_OK) == 0) {
		pthread_mutex_unlock(&env_lock);
		return 1;
	}
	failed = json_object_get(env_failures, key);
	if (failed != NULL &&
	    util_mono() - json_real_value(json_array_get(failed, 1)) < ENV_FAIL_TTL) {
		util_seterr(err, errlen, "%s", json_string_value(json_array_get(failed, 0)));
		pthread_mutex_unlock(&env_lock);
		return -EIO;
	}
	json_object_set_new(env_building, key, json_true());
	pthread_mutex_unlock(&env_lock);
	return 0;
}

/* The build of key ended with r (err when it failed); wake the waiters. */
static int
env_end(const char *key, int r, char *err, size_t errlen)
{
	pthread_mutex_lock(&env_lock);
	json_object_del(env_building, key);
	if (r < 0 && runner_aborted()) {
		util_seterr(err, errlen, "the node is shutting down");
		r = -ECANCELED;
	} else if (r < 0) {
		json_object_set_new(env_failures, key, json_pack("[s, f]", err ? err : "",
								 util_mono()));
	} else {
		json_object_del(env_failures, key);
	}
	pthread_cond_broadcast(&env_cond);
	pthread_mutex_unlock(&env_lock);
	return r;
}

static int
env_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* SHA-256 of "<kind>\n<interpreter>\n<text>". */
static void
env_key(const char *kind, const char *text, char key[SHA256_HEX_LEN])
{
	char *s = xasprintf("%s\n%s\n%s", kind, runner.python, text);

	util_sha256_hex(s, strlen(s), key);
	free(s);
}

/*
 * Without the sandbox, work as the set-up uid takes the runner's set-up
 * lock, since what one such run leaves behind is swept by uid (always
 * before any build key: the lock comes first). 1 when taken.
 */
static int
env_setup_lock(uid_t uid)
{
	if (runner.sandboxed || uid != runner_setup_uid())
		return 0;
	runner_setup_lock();
	return 1;
}

/* ------------------------------------------------------------------ steps */

/* An environment being built: a temporary folder beside its final place. */
struct env_build {
	uid_t uid;
	char *tmp, *home, *vpy;
	double deadline;      /* util_mono() by which pip must be done */
};

/*
 * Run argv as a build step in b; 0 when it succeeded, -EIO with
 * "<what>: <why>" in err, or another negative errno. res is the caller's
 * to free when non-NULL, else freed here.
 */
static int
env_step(struct env_build *b, const char *const *argv, double timeout, int net,
	 const char *what, struct launch_result *keep, char *err, size_t errlen)
{
	struct launch_result res;
	int r;

	r = runner_step(b->uid, argv, b->home, b->home, timeout, NULL, 0, b->tmp, net, &res);
	if (r < 0) {
		util_seterr(err, errlen, "%s: %s", what, strerror(-r));
	} else if (!runner_step_ok(&res)) {
		runner_step_error(&res, timeout, what, err, errlen);
		r = res.cancelled ? -ECANCELED : -EIO;
	}
	runner_sweep(b->uid);
	if (keep != NULL)
		*keep = res;
	else
		launch_result_free(&res);
	return r;
}

/* A folder for key's build, owned by uid, and a venv in it (with pip when with_pip). */
static int
env_build_start(struct env_build *b, const char *key, uid_t uid, int with_pip, char *err,
		size_t errlen)
{
	char hex[17];
	int r;

	memset(b, 0, sizeof(*b));
	b->uid = uid;
	util_random_hex(hex, 8);
	b->tmp = xasprintf("%s/%s.tmp-%s", runner.venv_dir, key, hex);
	b->home = xasprintf("%s.home", b->tmp);
	b->vpy = xasprintf("%s/bin/python", b->tmp);
	b->deadline = util_mono() + ENV_RESOLVE_BUDGET;
	if (mkdir(b->tmp, 0755) < 0 || mkdir(b->home, 0700) < 0 ||
	    (uid != (uid_t)-1 && (chown(b->tmp, uid, (gid_t)uid) < 0 ||
				  chown(b->home, uid, (gid_t)uid) < 0))) {
		r = -errno;
		util_seterr(err, errlen, "cannot create the virtual environment folder: %s",
			    strerror(-r));
		return r;
	}
	const char *argv[] = { runner.python, "-m", "venv", "--system-site-packages",
			       with_pip ? b->tmp : "--without-pip", with_pip ? NULL : b->tmp,
			       NULL };
	return env_step(b, argv, ENV_VENV_TIMEOUT, 0, "creating the virtual environment failed",
			NULL, err, errlen);
}

static void
env_build_free(struct env_build *b)
{
	if (b->tmp != NULL)
		(void)util_rm_rf(b->tmp);
	if (b->home != NULL)
		(void)util_rm_rf(b->home);
	free(b->tmp);
	free(b->home);
	free(b->vpy);
	memset(b, 0, sizeof(*b));
}

/* Write name in the build's home folder; its path (malloc'ed) or NULL. */
static char *
env_home_file(struct env_build *b, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", b->home, name);

	if (util_write_file(path, text, strlen(text), 0644) < 0) {
		free(path);
		return NULL;
	}
	return path;
}

/*
 * pip's reason for a failed install: its last "ERROR: " line (without the
 * prefix), else the last line of its output (malloc'ed).
 */
static char *
env_pip_reason(const struct launch_result *res, double timeout)
{
	const char *s = res->err.data ? res->err.data : "";
	const char *hit = NULL;

	if (!res->started)
		return xstrdup(res->start_error);
	if (res->timed_out)
		return xasprintf("pip timed out after %g s", timeout);
	for (const char *p = s; (p = strstr(p, "ERROR: ")) != NULL; p++)
		if (p == s || p[-1] == '\n')
			hit = p;
	if (hit != NULL) {
		size_t l = strcspn(hit + 7, "\n");
		struct buf line = { .data = (char *)hit + 7, .len = l };
		return runner_last_line(&line);
	}
	return runner_last_line(res->err.len ? &res->err : &res->out);
}

/*
 * pip install -r <text> [-c constraints] in the build, with the host's
 * network. 0, -EIO with pip's reason in *why (malloc'ed), or -ECANCELED.
 */
static int
env_pip_install(struct env_build *b, const char *text, const char *constraints, int no_deps,
		char **why)
{
	char *reqfile = env_home_file(b, "requirements.txt", text);
	char *consfile = constraints && *constraints ? env_home_file(b, "constraints.txt",
								      constraints) : NULL;
	double left = b->deadline - util_mono(), timeout;
	struct launch_result res;
	const char *argv[12];
	size_t n = 0;
	char err[512];
	int r;

	*why = NULL;
	if (reqfile == NULL || (constraints && *constraints && consfile == NULL)) {
		*why = xstrdup("cannot write the requirement file for pip");
		r = -EIO;
		goto out;
	}
	if (left < 1) {
		*why = xstrdup("not tried: the environment's time budget ran out");
		r = -EIO;
		goto out;
	}
	timeout = left < ENV_PIP_TIMEOUT ? left : ENV_PIP_TIMEOUT;
	argv[n++] = b->vpy;
	argv[n++] = "-m";
	argv[n++] = "pip";
	argv[n++] = "install";
	argv[n++] = "--no-input";
	if (no_deps)
		argv[n++] = "--no-deps";
	argv[n++] = "-r";
	argv[n++] = reqfile;
	if (consfile != NULL) {
		argv[n++] = "-c";
		argv[n++] = consfile;
	}
	argv[n] = NULL;
	/* the one step with the host's network: pip must reach the node's sources */
	r = env_step(b, argv, timeout, 1, "pip", &res, err, sizeof(err));
	if (r == -EIO)
		*why = env_pip_reason(&res, timeout);
	else if (r < 0 && r != -ECANCELED)
		*why = xstrdup(err);
	launch_result_free(&res);
out:
	free(reqfile);
	free(consfile);
	return r == 0 || r == -ECANCELED ? r : -EIO;
}

/* pytest must import in the environment: the node's, or one a requirement brought. */
static int
env_check_pytest(struct env_build *b, char *err, size_t errlen)
{
	const char *argv[] = { b->vpy, "-c", "import pytest", NULL };

	return env_step(b, argv, ENV_CHECK_TIMEOUT, 0,
			"pytest is not available in the project's environment", NULL, err, errlen);
}

/*
 * The packages installed in the build's own site folder (not the node's),
 * "name==version" per line, sorted; pip itself left out (malloc'ed).
 */
static int
env_list_pins(struct env_build *b, char **pins, char *err, size_t errlen)
{
	const char *argv[] = { b->vpy, "-m", "pip", "list", "--local", "--format=freeze",
			       "--exclude", "pip", "--disable-pip-version-check", NULL };
	struct launch_result res;
	char **lines = NULL;
	size_t n = 0;
	struct buf out;
	int r;

	*pins = NULL;
	r = env_step(b, argv, ENV_CHECK_TIMEOUT, 0, "cannot list the installed packages", &res,
		     err, errlen);
	if (r == 0 && res.out.dropped > 0) {
		util_seterr(err, errlen, "cannot list the installed packages: too many");
		r = -EIO;
	}
	if (r < 0) {
		launch_result_free(&res);
		return r;
	}
	for (const char *l = res.out.data; l != NULL && *l != '\0';) {
		size_t len = strcspn(l, "\r\n");
		if (len > 0 && memmem(l, len, "==", 2) != NULL) {
			lines = xrealloc(lines, (n + 1) * sizeof(*lines));
			lines[n] = xmalloc(len + 1);
			memcpy(lines[n], l, len);
			lines[n++][len] = '\0';
		}
		l += len;
		l += strspn(l, "\r\n");
	}
	launch_result_free(&res);
	qsort(lines, n, sizeof(*lines), env_cmp);
	buf_init(&out, 2 * ENV_RESOLVED_MAX);
	for (size_t i = 0; i < n; i++) {
		(void)buf_printf(&out, "%s\n", lines[i]);
		free(lines[i]);
	}
	free(lines);
	*pins = out.data ? buf_steal(&out) : xstrdup("");
	return 0;
}

/* Replace every occurrence of from by to in the scripts of <venv>/bin. */
static void
env_fix_scripts(const char *bindir, const char *from, const char *to)
{
	DIR *d = opendir(bindir);
	struct dirent *de;
	size_t flen = strlen(from), tlen = strlen(to);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *path = xasprintf("%s/%s", bindir, de->d_name), *text = NULL;
		struct stat st;
		size_t len;

		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20) ||
		    util_read_file(path, 1 << 20, &text, &len) < 0 ||
		    memmem(text, len, from, flen) == NULL) {
			free(text);
			free(path);
			continue;
		}
		struct buf b;
		buf_init(&b, len * 2 + 4096);
		for (size_t i = 0; i < len;) {
			const char *hit = memmem(text + i, len - i, from, flen);
			size_t upto = hit ? (size_t)(hit - text) : len;
			(void)buf_append(&b, text + i, upto - i);
			if (hit == NULL)
				break;
			(void)buf_append(&b, to, tlen);
			i = upto + flen;
		}
		int r = util_write_file(path, b.data ? b.data : "", b.len, st.st_mode & 07777);
		if (r < 0)
			log_warn("runner: cannot rewrite %s: %s", path, strerror(-r));
		buf_free(&b);
		free(text);
		free(path);
	}
	closedir(d);
}

static int
env_nftw_ro(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag != FTW_SL && flag != FTW_SLN && (st->st_mode & 0222))
		(void)chmod(path, st->st_mode & 07555);
	return 0;
}

/*
 * Put the build in place as <venvs>/<key>: scripts pointing at the final
 * path, the ready marker, root's and read-only. The caller holds key
 * (env_begin), so a folder there without its marker is a leftover.
 */
static int
env_build_finish(struct env_build *b, const char *key, char *err, size_t errlen)
{
	char *final = xasprintf("%s/%s", runner.venv_dir, key);
	char *bindir = xasprintf("%s/bin", b->tmp);
	char *marker = xasprintf("%s/%s", b->tmp, ENV_READY);
	int r;

	env_fix_scripts(bindir, b->tmp, final);
	if ((r = util_write_file(marker, "", 0, 0444)) < 0 ||
	    (geteuid() == 0 && (r = util_chown_tree(b->tmp, 0, 0)) < 0))
		goto out;
	(void)util_rm_rf(final);
	if (rename(b->tmp, final) < 0) {
		r = -errno;
		goto out;
	}
	free(b->tmp);
	b->tmp = NULL;
	/* one run must not be able to change what another sees */
	(void)nftw(final, env_nftw_ro, 32, FTW_PHYS);
	metrics_add(METRICS_ENVS_BUILT, 1);
out:
	if (r < 0)
		util_seterr(err, errlen, "cannot build the virtual environment: %s", strerror(-r));
	free(final);
	free(bindir);
	free(marker);
	return r;
}

/* ------------------------------------------------------------ in use */

/*
 * Count a user of the environment key in (delta 1) or out (-1). Taking it
 * also stamps the folder's time: its last use, which the disk budget's
 * least-recently-used order and retention read, also after a restart.
 */
static void
env_hold(const char *key, int delta)
{
	json_int_t n;

	pthread_mutex_lock(&env_lock);
	n = json_integer_value(json_object_get(env_holds, key)) + delta;
	if (n > 0)
		json_object_set_new(env_holds, key, json_integer(n));
	else
		json_object_del(env_holds, key);
	pthread_mutex_unlock(&env_lock);
	if (delta > 0) {
		char *dir = xasprintf("%s/%s", runner.venv_dir, key);
		(void)utimensat(AT_FDCWD, dir, NULL, AT_SYMLINK_NOFOLLOW);
		free(dir);
	}
}

/* The key of an environment's python (<venv_dir>/<key>/bin/python) into key; 0 or -EINVAL. */
static int
env_key_of(const char *python, char key[SHA256_HEX_LEN])
{
	size_t n = strlen(runner.venv_dir != NULL ? runner.venv_dir : "");

	/* the 64 digits first: past them the string is long enough to compare */
	if (python == NULL || n == 0 || strncmp(python, runner.venv_dir, n) != 0 ||
	    python[n] != '/' || strspn(python + n + 1, "0123456789abcdef") != 64 ||
	    strcmp(python + n + 1 + 64, "/bin/python") != 0)
		return -EINVAL;
	memcpy(key, python + n + 1, 64);
	key[64] = '\0';
	return 0;
}

void
env_release(const char *python)
{
	char key[SHA256_HEX_LEN];

	if (env_key_of(python, key) == 0)
		env_hold(key, -1);
}

/* 1 while key is built, held or a warm worker runs in it; env_lock held. */
static int
env_busy_locked(const char *key, const char *venv)
{
	return json_object_get(env_building, key) != NULL ||
	    json_object_get(env_holds, key) != NULL || warm_env_busy(venv);
}

static int
env_key_valid(const char *key)
{
	return strlen(key) == 64 && strspn(key, "0123456789abcdef") == 64;
}

int
env_busy(const char *key)
{
	int busy;

	pthread_mutex_lock(&env_lock);
	busy = json_object_get(env_building, key) != NULL ||
	    json_object_get(env_holds, key) != NULL;
	pthread_mutex_unlock(&env_lock);
	return busy;
}

int
env_evict(const char *key)
{
	char *venv, *gone = NULL, hex[17];
	int r = 0;

	if (!env_key_valid(key) || runner.venv_dir == NULL)
		return -EINVAL;
	venv = xasprintf("%s/%s", runner.venv_dir, key);
	pthread_mutex_lock(&env_lock);
	if (env_busy_locked(key, venv)) {
		/* idle warm workers alone keep it: their slots stop them when idle */
		if (json_object_get(env_building, key) == NULL &&
		    json_object_get(env_holds, key) == NULL)
			warm_drop_env(venv);
		r = -EBUSY;
	} else {
		/*
		 * Out of the way under the lock (the ready marker goes with it), so
		 * that the next env_prepare builds it afresh; removed outside.
		 */
		util_random_hex(hex, 8);
		gone = xasprintf("%s.tmp-gone-%s", venv, hex);
		if (rename(venv, gone) < 0)
			r = -errno;
	}
	pthread_mutex_unlock(&env_lock);
	if (r == 0) {
		int e = util_rm_rf(gone);
		if (e < 0)
			log_warn("runner: cannot remove %s: %s", gone, strerror(-e));
		log_info("runner: removed environment %.12s (unused)", key);
	}
	free(gone);
	free(venv);
	return r;
}

/* ------------------------------------------------------------ environments */

static char *
env_ready_path(const char *key)
{
	return xasprintf("%s/%s/%s", runner.venv_dir, key, ENV_READY);
}

/* Build the environment of exactly these pins under pinkey, as uid. */
static int
env_build_pinned(const char *pinkey, const char *pins, uid_t uid, char *err, size_t errlen)
{
	struct env_build b;
	char *why = NULL;
	int r;

	log_info("runner: building environment %.12s (%s)", pinkey,
		 *pins ? "pinned packages" : "no packages");
	r = env_build_start(&b, pinkey, uid, *pins != '\0', err, errlen);
	if (r == 0 && *pins) {
		r = env_pip_install(&b, pins, NULL, 1, &why);
		if (r == -EIO)
			util_seterr(err, errlen, "cannot install the project's packages on this"
				    " node: %s", why);
	}
	if (r == 0)
		r = env_check_pytest(&b, err, errlen);
	if (r == 0)
		r = env_build_finish(&b, pinkey, err, errlen);
	free(why);
	env_build_free(&b);
	return r;
}

/* pins as env_list_pins writes them: "name==version" lines, nothing else. */
static int
env_pins_valid(const char *pins)
{
	static const char name[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789._-";
	static const char version[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789._-+!";

	for (const char *p = pins; *p != '\0';) {
		size_t n = strspn(p, name), v;
		if (n == 0 || strncmp(p + n, "==", 2) != 0)
			return 0;
		v = strspn(p + n + 2, version);
		if (v == 0 || p[n + 2 + v] != '\n')
			return 0;
		p += n + 2 + v + 1;
	}
	return 1;
}

int
env_prepare_as(const char *pins, uid_t uid, char **python_out, char *err, size_t errlen)
{
	char key[SHA256_HEX_LEN];
	char *ready;
	int r, locked;

	*python_out = NULL;
	if (!env_pins_valid(pins)) {
		util_seterr(err, errlen, "the project's package list is damaged");
		return -EINVAL;
	}
	locked = env_setup_lock(uid);
	env_key("pins", pins, key);
	ready = env_ready_path(key);
	r = env_begin(key, ready, err, errlen);
	if (r == 0) {
		r = env_end(key, env_build_pinned(key, pins, uid, err, errlen), err, errlen);
		if (r < 0 && r != -ECANCELED)
			log_warn("runner: environment %.12s failed: %s", key, err);
	}
	if (r >= 0) {
		*python_out = xasprintf("%s/%s/bin/python", runner.venv_dir, key);
		env_hold(key, 1);
	}
	if (locked)
		runner_setup_unlock();
	free(ready);
	return r < 0 ? r : 0;
}

/* ------------------------------------------------------------ resolution */

struct env_reader {
	const char *dir;
	int missing;     /* the root file is not there */
};

static int
env_read_file(void *ctx, const char *path, char **text, size_t *len)
{
	struct env_reader *rd = ctx;
	int r = runner_read_project_file(rd->dir, path, text, len);

	if (r == -ENOENT && strcmp(path, "requirements.txt") == 0)
		rd->missing = 1;
	return r;
}

/*
 * The project's requirements into r: requirements.txt (and what it
 * includes), else [project].dependencies of pyproject.toml, which Python
 * reads as uid (the file is untrusted).
 */
static int
env_requirements(const char *project_dir, uid_t uid, struct reqs *r, char *err, size_t errlen)
{
	struct env_reader rd = { project_dir, 0 };
	struct launch_result res;
	char *text = NULL, *helper;
	size_t len = 0;
	int rc;

	rc = reqs_parse(r, "requirements.txt", env_read_file, &rd, err, errlen);
	if (rc < 0 || !rd.missing)
		return rc;
	rc = runner_read_project_file(project_dir, "pyproject.toml", &text, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		util_seterr(err, errlen, "cannot read pyproject.toml: %s",
			    rc == -EINVAL ? "not a regular file" : strerror(-rc));
		return -EIO;
	}
	helper = xasprintf("%s/meshtest_helper.py", runner.lib_dir);
	const char *argv[] = { runner.python, "-I", helper, "deps", NULL };
	rc = runner_step(uid, argv, "/", "/", ENV_CHECK_TIMEOUT, text, len, NULL, 0, &res);
	if (rc == 0 && runner_step_ok(&res) && res.out.dropped == 0) {
		reqs_add_lines(r, "pyproject.toml", res.out.data ? res.out.data : "", res.out.len);
	} else if (rc == 0) {
		char *line = runner_last_line(&res.err);
		if (util_starts_with(line, "cannot read pyproject.toml"))
			util_seterr(err, errlen, "%s", line);
		else
			runner_step_error(&res, ENV_CHECK_TIMEOUT, "cannot read pyproject.toml",
					  err, errlen);
		free(line);
		rc = -EIO;
	} else {
		util_seterr(err, errlen, "cannot read pyproject.toml: %s", strerror(-rc));
	}
	launch_result_free(&res);
	free(helper);
	free(text);
	return rc;
}

/* The entry's requirement without its hashes, for a warning (malloc'ed). */
static char *
env_entry_shown(const char *entry)
{
	const char *h = strstr(entry, " --hash=");
	size_t l = h ? (size_t)(h - entry) : strlen(entry);
	char *s = xmalloc(l + 1);

	memcpy(s, entry, l);
	s[l] = '\0';
	return s;
}

/*
 * Install r best effort in a new build as uid: the whole set in one pip
 * call; when that fails, each requirement alone (without its dependencies
 * in pip's hash-checking mode, where the file lists them all), a warning
 * for each that fails. Then pytest must import, and the pins are what
 * installed. The build is put in place under its pins' key.
 */
static int
env_build_resolved(const struct reqs *rq, uid_t uid, char **pins, json_t *warnings, char *err,
		   size_t errlen)
{
	struct env_build b;
	char pinkey[SHA256_HEX_LEN], *all = reqs_file_text(rq);
	char *cons = reqs_constraints_text(rq), *why = NULL, *ready = NULL;
	int r;

	*pins = NULL;
	r = env_build_start(&b, "resolve", uid, 1, err, errlen);
	if (r < 0)
		goto out;
	r = env_pip_install(&b, all, cons, 0, &why);
	if (r == -EIO) {
		log_info("runner: installing the requirements together failed (%s); one at a"
			 " time now", why);
		for (size_t i = 0; i < rq->nentries && r != -ECANCELED; i++) {
			char *one = reqs_entry_text(rq, i);
			free(why);
			why = NULL;
			r = env_pip_install(&b, one, cons, rq->hashed, &why);
			if (r == -EIO) {
				char *shown = env_entry_shown(rq->entries[i]);
				json_array_append_new(warnings, json_sprintf(
				    "requirements: '%s' was not installed: %s", shown, why));
				free(shown);
			}
			free(one);
		}
		r = r == -ECANCELED ? r : 0;
	}
	if (r == 0)
		r = env_check_pytest(&b, err, errlen);
	if (r == 0)
		r = env_list_pins(&b, pins, err, errlen);
	if (r < 0)
		goto out;
	env_key("pins", *pins, pinkey);
	ready = env_ready_path(pinkey);
	r = env_begin(pinkey, ready, err, errlen);
	if (r == 0)
		r = env_end(pinkey, env_build_finish(&b, pinkey, err, errlen), err, errlen);
	if (r > 0)
		r = 0;   /* another set resolved to the same pins first */
out:
	if (r < 0) {
		free(*pins);
		*pins = NULL;
	}
	free(why);
	free(all);
	free(cons);
	free(ready);
	env_build_free(&b);
	return r;
}

/* What key resolved to before, when still good: 0 with pins and warnings, else -ENOENT. */
static int
env_resolved_load(const char *key, char **pins, json_t *warnings)
{
	char *path = xasprintf("%s/%s.resolved", runner.venv_dir, key), *text = NULL;
	json_t *doc = NULL, *w;
	const char *p;
	size_t len, i;
	int r = -ENOENT;

	if (util_read_file(path, ENV_RESOLVED_MAX, &text, &len) < 0)
		goto out;
	doc = json_loadb(text, len, 0, NULL);
	p = json_string_value(json_object_get(doc, "pins"));
	if (p == NULL || !json_is_array(json_object_get(doc, "warnings")))
		goto out;
	if (json_array_size(json_object_get(doc, "warnings")) > 0 &&
	    util_now() - json_number_value(json_object_get(doc, "at")) > ENV_PARTIAL_TTL)
		goto out;   /* partly installed a while ago: try the set again */
	json_array_foreach(json_object_get(doc, "warnings"), i, w)
		json_array_append(warnings, w);
	*pins = xstrdup(p);
	r = 0;
out:
	json_decref(doc);
	free(text);
	free(path);
	return r;
}

static void
env_resolved_save(const char *key, const char *pins, json_t *warnings)
{
	char *path = xasprintf("%s/%s.resolved", runner.venv_dir, key);
	json_t *doc = json_pack("{s:s, s:O, s:f}", "pins", pins, "warnings", warnings, "at",
				util_now());
	char *text = json_dumps(doc, JSON_COMPACT);
	int r = util_write_file(path, text, strlen(text), 0644);

	if (r < 0)
		log_warn("runner: cannot write %s: %s", path, strerror(-r));
	free(text);
	json_decref(doc);
	free(path);
}

int
env_resolve_as(const char *project_dir, uid_t uid, char **pins, json_t **warnings, char *err,
	       size_t errlen)
{
	char key[SHA256_HEX_LEN], *text = NULL, *cons = NULL, *keytext = NULL;
	json_t *installed = json_array();
	struct reqs rq;
	int r, locked = env_setup_lock(uid);

	memset(&rq, 0, sizeof(rq));
	*pins = NULL;
	*warnings = json_array();
	if (runner_aborted()) {
		util_seterr(err, errlen, "the node is shutting down");
		r = -ECANCELED;
		goto out;
	}
	if ((r = env_requirements(project_dir, uid, &rq, err, errlen)) < 0)
		goto out;
	for (size_t i = 0; i < rq.nwarnings; i++)
		json_array_append_new(*warnings, json_string(rq.warnings[i]));
	if (rq.nentries == 0) {
		*pins = xstrdup("");   /* nothing to install (constraints alone install nothing) */
		goto out;
	}
	text = reqs_file_text(&rq);
	cons = reqs_constraints_text(&rq);
	keytext = xasprintf("%s\n--constraints--\n%s", text, cons);
	env_key("requirements", keytext, key);
	r = env_begin(key, NULL, err, errlen);
	if (r < 0)
		goto out;
	if (env_resolved_load(key, pins, installed) == 0) {
		(void)env_end(key, 0, err, errlen);
	} else {
		log_info("runner: resolving requirement set %.12s (%zu requirements)", key,
			 rq.nentries);
		r = env_build_resolved(&rq, uid, pins, installed, err, errlen);
		if (r == 0)
			env_resolved_save(key, *pins, installed);
		r = env_end(key, r, err, errlen);
		if (r < 0 && r != -ECANCELED)
			log_warn("runner: requirement set %.12s failed: %s", key, err);
	}
	json_array_extend(*warnings, installed);
out:
	if (r < 0) {
		free(*pins);
		*pins = NULL;
	}
	if (locked)
		runner_setup_unlock();
	reqs_free(&rq);
	json_decref(installed);
	free(text);
	free(cons);
	free(keytext);
	return r;
}

int
env_resolve(const char *project_dir, char **pins, json_t **warnings, char *err, size_t errlen)
{
	return env_resolve_as(project_dir, runner_setup_uid(), pins, warnings, err, errlen);
}

int
env_prepare(const char *pins, int slot, char **python_out, char *err, size_t errlen)
{
	*python_out = NULL;
	if (slot < 0 || slot >= runner.slots || runner.data_dir == NULL || pins == NULL) {
		util_seterr(err, errlen, "invalid slot %d", slot);
		return -EINVAL;
	}
	return env_prepare_as(pins, runner_slot_uid(slot), python_out, err, errlen);
}
