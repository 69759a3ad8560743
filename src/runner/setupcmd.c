/*
 * setupcmd.c - a project's set-up commands, run once right after it is
 * fetched (see setupcmd.h), as the set-up uid (runner_setup_uid: no slot
 * uses it) inside the sandbox, one project at a time (runner_setup_lock), in a
 * copy under <work>/setup that replaces the project when they succeed.
 */
#include "runner/setupcmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "runner/env.h"
#include "runner/launch.h"
#include "runner/runner_int.h"
#include "runner/sandbox.h"
#include "runner/setup.h"

#define SETUPCMD_TIMEOUT 300.0       /* all set-up commands of a project */
#define SETUPCMD_REPORT_CAP (64u << 10)

/* Read dir/SETUP_FILE as the fetcher wrote it (NULL when absent). */
static char *
setupcmd_read_file(const char *dir, size_t *len)
{
	char *text = NULL;

	if (runner_read_project_file(dir, SETUP_FILE, &text, len) < 0)
		return NULL;
	return text;
}

/*
 * Put the set-up's result in place of project_dir: root's again, and the
 * evaluation's settings file as the fetcher wrote it (the commands may have
 * changed or removed it).
 */
static int
setupcmd_collect(const char *copy, const char *project_dir, const char *settings,
		     size_t settings_len, char *err, size_t errlen)
{
	char *path = NULL;
	int r;

	if ((geteuid() == 0 && (r = util_chown_tree(copy, 0, 0)) < 0) ||
	    (r = util_rm_rf(project_dir)) < 0)
		goto fail;
	if (rename(copy, project_dir) < 0) {
		if (errno != EXDEV) {
			r = -errno;
			goto fail;
		}
		if ((r = util_copy_tree(copy, project_dir, geteuid() == 0 ? 0 : (uid_t)-1,
					geteuid() == 0 ? 0 : (gid_t)-1)) < 0)
			goto fail;
	}
	path = xasprintf("%s/%s", project_dir, SETUP_FILE);
	if ((r = util_rm_rf(path)) < 0)
		goto fail;
	if (settings != NULL && (r = util_write_file(path, settings, settings_len, 0644)) < 0)
		goto fail;
	free(path);
	return 0;
fail:
	util_seterr(err, errlen, "cannot keep what the set-up commands made: %s", strerror(-r));
	free(path);
	return r;
}

/* The one-line reason a set-up run failed, into err. */
static void
setupcmd_error(const struct launch_result *res, char *err, size_t errlen)
{
	char msg[1001];

	if (setup_stream_error(res->report.data, res->report.len, msg, sizeof(msg))) {
		util_seterr(err, errlen, "%s", msg);
		return;
	}
	if (res->cancelled) {
		util_seterr(err, errlen, "the node is shutting down");
		return;
	}
	runner_step_error(res, SETUPCMD_TIMEOUT, "the set-up commands failed", err, errlen);
}

int
setupcmd_run(const char *project_dir, char *err, size_t errlen)
{
	char *dir = NULL, *copy = NULL, *home = NULL, *tmpd = NULL, *python = NULL;
	char *venv = NULL, *supervisor = NULL, *settings = NULL, *budget = NULL, *env[16];
	size_t ne = 0, settings_len = 0;
	uid_t uid = runner_setup_uid();
	struct launch_spec spec;
	struct launch_result res;
	struct sandbox_spec sb;
	const char *ro[8], *rw[6];
	int r, have_res = 0;

	if (runner.data_dir == NULL || project_dir == NULL) {
		util_seterr(err, errlen, "the runner is not ready");
		return -EINVAL;
	}
	if (!setup_has_commands(project_dir))
		return 0;
	/* the commands see the interpreter and packages the tests will see */
	{
		char *pins = NULL;
		json_t *warnings = NULL;
		r = env_resolve_as(project_dir, uid, &pins, &warnings, err, errlen);
		if (r == 0)
			r = env_prepare_as(pins, uid, &python, err, errlen);
		free(pins);
		json_decref(warnings);
		if (r < 0)
			return r;
	}
	runner_setup_lock();
	if (runner_aborted()) {
		util_seterr(err, errlen, "the node is shutting down");
		r = -ECANCELED;
		goto out;
	}
	dir = xasprintf("%s/setup", runner.work_dir);
	copy = xasprintf("%s/project", dir);
	home = xasprintf("%s/home", dir);
	tmpd = xasprintf("%s/tmp", dir);
	settings = setupcmd_read_file(project_dir, &settings_len);
	(void)runner_sweep(uid);
	if ((r = util_rm_rf(dir)) < 0 || (r = runner_mkdir_owned(dir, uid)) < 0 ||
	    (r = runner_mkdir_owned(home, uid)) < 0 || (r = runner_mkdir_owned(tmpd, uid)) < 0 ||
	    (r = util_copy_tree(project_dir, copy, uid, (gid_t)uid)) < 0) {
		util_seterr(err, errlen, "cannot prepare the set-up folder: %s", strerror(-r));
		goto out;
	}

	/* <venv>/bin/python -> <venv> */
	venv = xstrdup(python);
	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(venv, '/');
		if (slash != NULL)
			*slash = '\0';
	}
	env[ne++] = xasprintf("PATH=%s/bin:/usr/local/bin:/usr/bin:/bin", venv);
	env[ne++] = xasprintf("HOME=%s", home);
	env[ne++] = xasprintf("TMPDIR=%s", tmpd);
	env[ne++] = xstrdup("USER=meshtest-setup");
	env[ne++] = xstrdup("LOGNAME=meshtest-setup");
	env[ne++] = xstrdup("LANG=C.UTF-8");
	{
		char *src = xasprintf("%s/src", project_dir);
		struct stat st;
		if (lstat(src, &st) == 0 && S_ISDIR(st.st_mode))
			env[ne++] = xasprintf("PYTHONPATH=%s/src:%s", copy, copy);
		else
			env[ne++] = xasprintf("PYTHONPATH=%s", copy);
		free(src);
	}
	env[ne++] = xstrdup("PYTHONUNBUFFERED=1");
	env[ne++] = xstrdup("PYTHONDONTWRITEBYTECODE=1");
	env[ne++] = xasprintf("VIRTUAL_ENV=%s", venv);
	env[ne++] = xstrdup("MESHTEST_REPORT_FD=3");
	env[ne] = NULL;

	supervisor = xasprintf("%s/meshtest_supervisor.py", runner.lib_dir);
	budget = xasprintf("%g", SETUPCMD_TIMEOUT);
	const char *argv[] = { python, "-I", supervisor, "--commands", budget, NULL };
	memset(&spec, 0, sizeof(spec));
	spec.argv = argv;
	spec.envp = (const char *const *)env;
	spec.cwd = copy;
	spec.uid = uid;
	spec.gid = (gid_t)uid;
	spec.timeout = SETUPCMD_TIMEOUT + 30; /* the supervisor keeps the budget itself */
	spec.out_cap = runner.output_cap;
	spec.report_cap = SETUPCMD_REPORT_CAP;
	spec.cancel = &runner_cancel;
	launch_limits_default(&spec.lim);
	struct runner_view view = {
		.ro = { runner.lib_dir, venv, runner.py_prefix },
		.rw = { dir },
	};
	if (runner.sandboxed) {
		runner_view_fill(&sb, ro, rw, &view, uid);
		sb.tmp_dir = tmpd;
		sb.chdir = copy;
		spec.sandbox = &sb;   /* no network, like module runs */
	}
	log_info("runner: running the set-up commands of %s as uid %ld", project_dir,
		 (long)runner_sandbox_uid(uid));
	r = launch_run(&spec, &res);
	have_res = 1;
	if (r < 0) {
		util_seterr(err, errlen, "cannot run the set-up commands: %s", strerror(-r));
		goto out;
	}
	(void)runner_sweep(uid);
	if (!runner_step_ok(&res)) {
		setupcmd_error(&res, err, errlen);
		r = res.cancelled ? -ECANCELED : -EIO;
		goto out;
	}
	r = setupcmd_collect(copy, project_dir, settings, settings_len, err, errlen);
out:
	if (dir != NULL) {
		(void)runner_sweep(uid);
		int e = util_rm_rf(dir);
		if (e < 0)
			log_warn("runner: cannot remove %s: %s", dir, strerror(-e));
	}
	runner_setup_unlock();
	if (have_res)
		launch_result_free(&res);
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	free(dir);
	free(copy);
	free(home);
	free(tmpd);
	if (python != NULL)
		env_release(python);
	free(python);
	free(venv);
	free(supervisor);
	free(settings);
	free(budget);
	return r;
}
