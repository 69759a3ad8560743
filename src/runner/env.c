/*
 * env.c - virtual environments: one per interpreter and requirement set,
 * shared by the projects that have that set, read-only once built.
 *
 * Owns <work>/venvs/<key> (key: the SHA-256 of the interpreter and the
 * normalized requirements) and the node's memory of builds in progress and
 * of failed builds (env_lock). Builds run as an unprivileged uid inside the
 * sandbox (runner_step): `python -m venv` (--without-pip and seeing the
 * node's site packages when there is nothing to install), `pip install` with
 * the host's network, a check that pytest imports; then the folder is handed
 * to root, made read-only and renamed into place. Concurrent calls for one
 * key wait for a single build. Any thread.
 */
#include "runner/env.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "runner/launch.h"
#include "runner/runner_int.h"

#define ENV_REQ_LINES 10000
#define ENV_VENV_TIMEOUT 300.0
#define ENV_PIP_TIMEOUT 1200.0
#define ENV_CHECK_TIMEOUT 60.0
#define ENV_FAIL_TTL 600.0            /* seconds a failed build is remembered */
#define ENV_READY ".meshtest-ready"

static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t env_cond = PTHREAD_COND_INITIALIZER;
static json_t *env_building;  /* key -> true while one thread builds it */
static json_t *env_failures;  /* key -> [message, util_mono() of the failure] */

void
env_init(void)
{
	pthread_mutex_lock(&env_lock);
	if (env_building == NULL)
		env_building = json_object();
	if (env_failures == NULL)
		env_failures = json_object();
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

static int
env_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Requirement lines without comments, blanks and surrounding whitespace,
 * sorted, one per line (malloc'ed; "" for none).
 */
static char *
env_normalize(const char *text, size_t len)
{
	char **lines = xcalloc(ENV_REQ_LINES, sizeof(*lines));
	size_t n = 0, total = 1;
	struct buf out;

	for (size_t i = 0; i < len && n < ENV_REQ_LINES;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t l = nl ? (size_t)(nl - (text + i)) : len - i;
		char *line = xmalloc(l + 1);
		memcpy(line, text + i, l);
		line[l] = '\0';
		i += l + 1;
		/* pip: '#' starts a comment at the line start or after whitespace */
		for (char *p = line; *p; p++) {
			if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
				*p = '\0';
				break;
			}
		}
		char *s = line, *e = line + strlen(line);
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\f' || *s == '\v')
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
				 e[-1] == '\f' || e[-1] == '\v'))
			e--;
		*e = '\0';
		if (*s == '\0' || memchr(s, '\0', (size_t)(e - s)) != NULL) {
			free(line);
			continue;
		}
		memmove(line, s, (size_t)(e - s) + 1);
		lines[n++] = line;
		total += strlen(line) + 1;
	}
	qsort(lines, n, sizeof(*lines), env_cmp);
	buf_init(&out, total + 1);
	for (size_t i = 0; i < n; i++) {
		(void)buf_append(&out, lines[i], strlen(lines[i]));
		(void)buf_append(&out, "\n", 1);
		free(lines[i]);
	}
	free(lines);
	return out.data ? buf_steal(&out) : xstrdup("");
}

/* The requirement set of a project, normalized (malloc'ed). */
static int
env_requirements(const char *project_dir, uid_t uid, char **out, char *err, size_t errlen)
{
	char *text = NULL, *home = NULL;
	size_t len = 0;
	int r;

	r = runner_read_project_file(project_dir, "requirements.txt", &text, &len);
	if (r == 0) {
		*out = env_normalize(text, len);
		free(text);
		return 0;
	}
	if (r != -ENOENT) {
		util_seterr(err, errlen, "cannot read requirements.txt: %s",
			      r == -EINVAL ? "not a regular file" : strerror(-r));
		return -EIO;
	}
	r = runner_read_project_file(project_dir, "pyproject.toml", &text, &len);
	if (r == -ENOENT) {
		*out = xstrdup("");
		return 0;
	}
	if (r < 0) {
		util_seterr(err, errlen, "cannot read pyproject.toml: %s",
			      r == -EINVAL ? "not a regular file" : strerror(-r));
		return -EIO;
	}
	/* TOML is parsed by Python, as the slot user: the file is untrusted */
	struct launch_result res;
	char *helper = xasprintf("%s/meshtest_helper.py", runner.lib_dir);
	const char *argv[] = { runner.python, "-I", helper, "deps", NULL };
	home = xstrdup("/");
	r = runner_step(uid, argv, home, "/", ENV_CHECK_TIMEOUT, text, len, NULL, 0, &res);
	if (r == 0 && runner_step_ok(&res) && res.out.dropped == 0) {
		*out = env_normalize(res.out.data ? res.out.data : "", res.out.len);
	} else if (r == 0) {
		char *line = runner_last_line(&res.err);
		if (util_starts_with(line, "cannot read pyproject.toml"))
			util_seterr(err, errlen, "%s", line);
		else
			runner_step_error(&res, ENV_CHECK_TIMEOUT, "cannot read pyproject.toml",
					  err, errlen);
		free(line);
		r = -EIO;
	} else {
		util_seterr(err, errlen, "cannot read pyproject.toml: %s", strerror(-r));
	}
	launch_result_free(&res);
	free(helper);
	free(home);
	free(text);
	return r;
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
 * Build the venv for key in a temporary folder as the slot user, check that
 * pytest imports, hand it to root, make it read-only and rename it into place.
 */
static int
env_build(const char *key, const char *reqs, uid_t uid, char *err, size_t errlen)
{
	char hex[17];
	char *final = xasprintf("%s/%s", runner.venv_dir, key);
	char *tmp = NULL, *home = NULL, *reqfile = NULL, *vpy = NULL, *marker = NULL;
	struct launch_result res;
	int r, have_res = 0;

	util_random_hex(hex, 8);
	tmp = xasprintf("%s.tmp-%s", final, hex);
	home = xasprintf("%s.tmp-%s.home", final, hex);
	vpy = xasprintf("%s/bin/python", tmp);
	if (mkdir(tmp, 0755) < 0 || mkdir(home, 0700) < 0 ||
	    (uid != (uid_t)-1 && (chown(tmp, uid, (gid_t)uid) < 0 ||
				  chown(home, uid, (gid_t)uid) < 0))) {
		r = -errno;
		util_seterr(err, errlen, "cannot create the virtual environment folder: %s",
			      strerror(-r));
		goto fail;
	}
	log_info("runner: building environment %.12s (%s)", key,
		 *reqs ? "with requirements" : "no requirements");

	const char *venv_argv[] = { runner.python, "-m", "venv", "--system-site-packages",
				    *reqs ? tmp : "--without-pip", *reqs ? NULL : tmp, NULL };
	if ((r = runner_step(uid, venv_argv, home, home, ENV_VENV_TIMEOUT, NULL, 0, tmp, 0,
			     &res)) < 0)
		goto fail_msg;
	have_res = 1;
	if (!runner_step_ok(&res)) {
		runner_step_error(&res, ENV_VENV_TIMEOUT,
				  "creating the virtual environment failed", err, errlen);
		r = -EIO;
		goto fail;
	}
	launch_result_free(&res);
	have_res = 0;

	if (*reqs) {
		reqfile = xasprintf("%s/requirements.txt", home);
		if ((r = util_write_file(reqfile, reqs, strlen(reqs), 0644)) < 0)
			goto fail_msg;
		const char *pip_argv[] = { vpy, "-m", "pip", "install", "--no-input",
					   "--disable-pip-version-check", "-r", reqfile, NULL };
		/* the one step with the host's network: pip must reach the index */
		if ((r = runner_step(uid, pip_argv, home, home, ENV_PIP_TIMEOUT, NULL, 0,
				     tmp, 1, &res)) < 0)
			goto fail_msg;
		have_res = 1;
		if (!runner_step_ok(&res)) {
			runner_step_error(&res, ENV_PIP_TIMEOUT, "installing requirements failed",
					  err, errlen);
			r = -EIO;
			goto fail;
		}
		launch_result_free(&res);
		have_res = 0;
	}

	const char *check_argv[] = { vpy, "-c", "import pytest", NULL };
	if ((r = runner_step(uid, check_argv, home, home, ENV_CHECK_TIMEOUT, NULL, 0,
			     tmp, 0, &res)) < 0)
		goto fail_msg;
	have_res = 1;
	if (!runner_step_ok(&res)) {
		runner_step_error(&res, ENV_CHECK_TIMEOUT,
				  "pytest is not available in the project's environment", err, errlen);
		r = -EIO;
		goto fail;
	}
	launch_result_free(&res);
	have_res = 0;
	(void)runner_sweep(uid);

	{
		char *bindir = xasprintf("%s/bin", tmp);
		env_fix_scripts(bindir, tmp, final);
		free(bindir);
	}
	marker = xasprintf("%s/%s", tmp, ENV_READY);
	if ((r = util_write_file(marker, "", 0, 0444)) < 0)
		goto fail_msg;
	if (geteuid() == 0 && (r = util_chown_tree(tmp, 0, 0)) < 0)
		goto fail_msg;
	(void)util_rm_rf(final); /* a leftover without its marker */
	if (rename(tmp, final) < 0) {
		r = -errno;
		goto fail_msg;
	}
	/* one run must not be able to change what another sees */
	(void)nftw(final, env_nftw_ro, 32, FTW_PHYS);
	r = 0;
	goto out;

fail_msg:
	util_seterr(err, errlen, "cannot build the virtual environment: %s", strerror(-r));
	r = -EIO;
fail:
	(void)runner_sweep(uid);
	(void)util_rm_rf(tmp);
out:
	if (have_res)
		launch_result_free(&res);
	(void)util_rm_rf(home);
	free(final);
	free(tmp);
	free(home);
	free(reqfile);
	free(vpy);
	free(marker);
	return r;
}

/* env_prepare with the builds running as uid. */
int
env_prepare_as(const char *project_dir, uid_t uid, char **python_out, char *err,
	      size_t errlen)
{
	char key[SHA256_HEX_LEN];
	char *reqs = NULL, *keytext = NULL, *marker = NULL;
	int r;

	*python_out = NULL;
	if (runner_aborted()) {
		util_seterr(err, errlen, "the node is shutting down");
		return -ECANCELED;
	}
	if ((r = env_requirements(project_dir, uid, &reqs, err, errlen)) < 0)
		goto out;
	keytext = xasprintf("%s\n%s", runner.python, reqs);
	util_sha256_hex(keytext, strlen(keytext), key);
	marker = xasprintf("%s/%s/%s", runner.venv_dir, key, ENV_READY);

	pthread_mutex_lock(&env_lock);
	while (json_object_get(env_building, key) != NULL && !runner_aborted())
		pthread_cond_wait(&env_cond, &env_lock);
	if (runner_aborted()) {
		pthread_mutex_unlock(&env_lock);
		util_seterr(err, errlen, "the node is shutting down");
		r = -ECANCELED;
		goto out;
	}
	if (access(marker, F_OK) == 0) {
		pthread_mutex_unlock(&env_lock);
		r = 0;
		goto done;
	}
	json_t *failed = json_object_get(env_failures, key);
	if (failed != NULL &&
	    util_mono() - json_real_value(json_array_get(failed, 1)) < ENV_FAIL_TTL) {
		util_seterr(err, errlen, "%s", json_string_value(json_array_get(failed, 0)));
		pthread_mutex_unlock(&env_lock);
		r = -EIO;
		goto out;
	}
	json_object_set_new(env_building, key, json_true());
	pthread_mutex_unlock(&env_lock);

	r = env_build(key, reqs, uid, err, errlen);

	pthread_mutex_lock(&env_lock);
	json_object_del(env_building, key);
	if (r < 0 && runner_aborted()) {
		util_seterr(err, errlen, "the node is shutting down");
		r = -ECANCELED;
	} else if (r < 0) {
		json_object_set_new(env_failures, key,
				    json_pack("[s, f]", err ? err : "", util_mono()));
	} else {
		json_object_del(env_failures, key);
	}
	pthread_cond_broadcast(&env_cond);
	pthread_mutex_unlock(&env_lock);
	if (r == -ECANCELED)
		goto out;
	if (r < 0) {
		log_warn("runner: environment %.12s failed: %s", key, err ? err : "");
		goto out;
	}
done:
	*python_out = xasprintf("%s/%s/bin/python", runner.venv_dir, key);
out:
	free(reqs);
	free(keytext);
	free(marker);
	return r;
}

int
env_prepare(const char *project_dir, int slot, char **python_out, char *err,
		   size_t errlen)
{
	*python_out = NULL;
	if (slot < -1 || slot >= runner.slots || runner.data_dir == NULL) {
		util_seterr(err, errlen, "invalid slot %d", slot);
		return -EINVAL;
	}
	/* ahead of time (slot -1), as the set-up uid: only where no sweep can hit it */
	if (slot == -1 && !runner.sandboxed)
		return 0;
	return env_prepare_as(project_dir, slot < 0 ? runner_setup_uid() : runner_slot_uid(slot),
			     python_out, err, errlen);
}
