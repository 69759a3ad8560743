/*
 * runner.c - how the node runs submitted code: start-up (folders, the
 * embedded Python files, the sandbox decision, leftovers of a previous run),
 * the helpers the other runner files share (runner_int.h), cold runs (one
 * interpreter per module, runner_run_module) and batches (runner_run_batch:
 * warm runs through warm.c, sessions, runs alone, retries and reruns).
 *
 * Owns <work>/lib (the embedded Python files: runner_py) and
 * <work>/slot-<n>/cold (a cold run's copy, home and /tmp). Environments are
 * env.c's, set-up commands setupcmd.c's, warm workers warm.c's.
 *
 * Threads: runner_init runs once at start-up; then the slot threads call
 * runner_run_batch (one batch per slot at a time) and any thread may call
 * runner_abort_all. The state is read-only after init.
 */
#include "runner/runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "embedded.h"
#include "runner/env.h"
#include "runner/launch.h"
#include "runner/report.h"
#include "runner/rerun.h"
#include "runner/runner_int.h"
#include "runner/sandbox.h"
#include "runner/setup.h"
#include "runner/warm.h"
#include "runner/worker.h"

#define RUNNER_INFRA_TRIES 3

struct runner_state runner;
int runner_cancel;
int runner_slot_cancel[RUNNER_SLOTS_MAX];
static pthread_mutex_t runner_setup_mutex = PTHREAD_MUTEX_INITIALIZER;

void
runner_setup_lock(void)
{
	pthread_mutex_lock(&runner_setup_mutex);
}

void
runner_setup_unlock(void)
{
	pthread_mutex_unlock(&runner_setup_mutex);
}

/*
 * Kill what a run of uid left behind. Only without the sandbox: bubblewrap's
 * pid namespace takes every process of a run along, and a uid-wide sweep
 * would also hit the slot's idle workers.
 */
void
runner_sweep(uid_t uid)
{
	if (!runner.sandboxed)
		(void)launch_kill_uid(uid);
}

int
runner_aborted(void)
{
	return __atomic_load_n(&runner_cancel, __ATOMIC_SEQ_CST);
}

void
runner_abort_all(void)
{
	/* the global flag first: runner_slot_reset looks at it after clearing its own */
	__atomic_store_n(&runner_cancel, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < RUNNER_SLOTS_MAX; i++)
		__atomic_store_n(&runner_slot_cancel[i], 1, __ATOMIC_SEQ_CST);
	env_abort_wake();
}

int
runner_stopped(int slot)
{
	return runner_aborted() || (slot >= 0 && slot < RUNNER_SLOTS_MAX &&
	    __atomic_load_n(&runner_slot_cancel[slot], __ATOMIC_SEQ_CST));
}

void
runner_stop_slot(int slot)
{
	if (slot >= 0 && slot < RUNNER_SLOTS_MAX)
		__atomic_store_n(&runner_slot_cancel[slot], 1, __ATOMIC_SEQ_CST);
}

void
runner_slot_reset(int slot)
{
	if (slot < 0 || slot >= RUNNER_SLOTS_MAX)
		return;
	__atomic_store_n(&runner_slot_cancel[slot], 0, __ATOMIC_SEQ_CST);
	/* a shutdown that came meanwhile stays */
	if (runner_aborted())
		__atomic_store_n(&runner_slot_cancel[slot], 1, __ATOMIC_SEQ_CST);
}

int
runner_isolated(void)
{
	return runner.isolated;
}

const char *
runner_sandbox_name(void)
{
	return runner.sandboxed ? "bwrap" : "none";
}

uid_t
runner_slot_uid(int slot)
{
	return runner.isolated ? (uid_t)(runner.uid_base + slot) : (uid_t)-1;
}

uid_t
runner_setup_uid(void)
{
	return runner.isolated ? (uid_t)(runner.uid_base + runner.slots) : (uid_t)-1;
}

/* The uid a sandbox runs as: the slot's, or ours when we are not root. */
uid_t
runner_sandbox_uid(uid_t uid)
{
	return uid == (uid_t)-1 ? getuid() : uid;
}

/*
 * The prefix of the interpreter (/opt/py for /opt/py/bin/python3), which the
 * sandbox must show read-only; NULL when it lives under /usr, already shown.
 */
static char *
runner_python_prefix(const char *python)
{
	char *real = realpath(python, NULL), *slash;

	if (real == NULL || util_starts_with(real, "/usr/")) {
		free(real);
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		slash = strrchr(real, '/');
		if (slash != NULL)
			*slash = '\0';
	}
	if (real[0] != '/') {
		free(real);
		return NULL;
	}
	return real;
}

/*
 * The interpreter's and pytest's versions, as a run sees them ("3.11.2
 * pytest-7.2.1"), into runner.versions: part of what makes two runs of
 * one project the same run. "unknown" when the probe fails.
 */
static void
runner_probe_versions(void)
{
	const char *argv[] = { runner.python, "-c", "import sys, pytest; print(sys.version.split()[0],"
			       " 'pytest-' + pytest.__version__)", NULL };
	struct launch_result res;

	free(runner.versions);
	runner.versions = NULL;
	if (runner_step(runner_setup_uid(), argv, "/", "/", 60, NULL, 0, NULL, 0, &res) == 0 &&
	    runner_step_ok(&res))
		runner.versions = runner_last_line(&res.out);
	launch_result_free(&res);
	if (runner.versions == NULL || runner.versions[0] == '\0') {
		free(runner.versions);
		runner.versions = xstrdup("unknown");
	}
	log_info("runner: %s runs Python %s", runner.python, runner.versions);
}

const char *
runner_versions(void)
{
	return runner.versions != NULL ? runner.versions : "unknown";
}

/*
 * Decide whether runs use bubblewrap: mode "none" never, "bwrap" always (or
 * fail), "auto" when the probe works. Loud when runs are not isolated.
 */
static int
runner_sandbox_init(const struct runner_config *cfg, char *err, size_t errlen)
{
	int mode = sandbox_mode_parse(cfg->sandbox != NULL ? cfg->sandbox : "auto");
	char why[512];
	uid_t uid = runner_sandbox_uid(runner_slot_uid(0));

	runner.sandboxed = 0;
	if (mode < 0) {
		util_seterr(err, errlen, "unknown sandbox mode '%s' (auto, bwrap or none)",
			      cfg->sandbox);
		return -EINVAL;
	}
	free(runner.bwrap);
	free(runner.py_prefix);
	runner.bwrap = xstrdup(cfg->bwrap != NULL ? cfg->bwrap : "/usr/bin/bwrap");
	runner.py_prefix = runner_python_prefix(runner.python);
	runner.nsys = sandbox_sys_detect(runner.sys, SANDBOX_SYS_MAX);
	if (mode == SANDBOX_NONE) {
		log_warn("runs are NOT isolated: --sandbox none; test code runs as "
			 "unprivileged users with limits but sees the host's filesystem and "
			 "network");
		return 0;
	}
	if (sandbox_probe(runner.bwrap, runner_slot_uid(0), why, sizeof(why)) < 0) {
		if (mode == SANDBOX_BWRAP) {
			util_seterr(err, errlen, "--sandbox bwrap: bubblewrap does not work "
				      "here as uid %lu: %s", (unsigned long)uid, why);
			return -EPERM;
		}
		log_warn("runs are NOT isolated: bubblewrap does not work here (%s); test "
			 "code runs as unprivileged users with limits but sees the host's "
			 "filesystem and network", why);
		return 0;
	}
	runner.sandboxed = 1;
	log_info("runner: every run goes through %s (own user, pid, ipc and network "
		 "namespaces, read-only system)", runner.bwrap);
	return 0;
}

void
runner_view_fill(struct sandbox_spec *sb, const char **ro, const char **rw,
		 const struct runner_view *v, uid_t uid)
{
	size_t nro = 0, nrw = 0;

	for (size_t i = 0; i < sizeof(v->ro) / sizeof(v->ro[0]); i++)
		if (v->ro[i] != NULL && strcmp(v->ro[i], "/") != 0)
			ro[nro++] = v->ro[i];
	ro[nro] = NULL;
	for (size_t i = 0; i < sizeof(v->rw) / sizeof(v->rw[0]); i++)
		if (v->rw[i] != NULL && strcmp(v->rw[i], "/") != 0)
			rw[nrw++] = v->rw[i];
	rw[nrw] = NULL;
	memset(sb, 0, sizeof(*sb));
	sb->bwrap = runner.bwrap;
	sb->uid = runner_sandbox_uid(uid);
	sb->gid = (gid_t)sb->uid;
	sb->sys = runner.sys;
	sb->nsys = runner.nsys;
	sb->ro_paths = ro;
	sb->rw_paths = rw;
}

/* The last non-empty line of b (malloc'ed), capped at 300 bytes. */
char *
runner_last_line(const struct buf *b)
{
	const char *s = b->data ? b->data : "";
	size_t end = b->len, start;

	while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r' || s[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	if (end - start > 300)
		start = end - 300;
	char *line = xmalloc(end - start + 1);
	memcpy(line, s + start, end - start);
	line[end - start] = '\0';
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return line;
}

int
runner_check_reachable(const char *path, char *err, size_t errlen)
{
	char *p = xstrdup(path);
	int r = 0;

	for (char *slash = p + strlen(p); slash != NULL; slash = strrchr(p, '/')) {
		struct stat st;
		*slash = '\0';
		const char *dir = *p ? p : "/";
		if (stat(dir, &st) == 0 && !(st.st_mode & S_IXOTH)) {
			util_seterr(err, errlen, "data folder %s is not reachable by the slot "
				      "users: %s is not searchable by others (chmod o+x it or "
				      "choose another --data-dir)", path, dir);
			r = -EACCES;
			break;
		}
		if (*p == '\0')
			break;
	}
	free(p);
	return r;
}

static int
runner_mkdir(const char *path, mode_t mode, char *err, size_t errlen)
{
	int r = util_mkdir_p(path, mode);

	if (r == 0 && chmod(path, mode) < 0)
		r = -errno;
	if (r < 0)
		util_seterr(err, errlen, "cannot create %s: %s", path, strerror(-r));
	return r;
}

/* The Python side, written to <work>/lib at start (embedded at build time). */
static const struct {
	const char *name;
	const char *text;
} runner_py[] = {
	{ "meshtest_plugin.py", embedded_meshtest_plugin },
	{ "meshtest_helper.py", embedded_meshtest_helper },
	{ "meshtest_supervisor.py", embedded_meshtest_supervisor },
	{ "meshtest_sandbox.py", embedded_meshtest_sandbox },
	{ "meshtest_each.py", embedded_meshtest_each },
	{ "meshtest_worker.py", embedded_meshtest_worker },
};

int
runner_init(const struct runner_config *cfg, char *err, size_t errlen)
{
	char *path = NULL;
	int r;

	if (cfg->data_dir == NULL || cfg->python == NULL || cfg->slots <= 0 ||
	    cfg->uid_base <= 0) {
		util_seterr(err, errlen, "invalid runner configuration");
		return -EINVAL;
	}
	free(runner.data_dir);
	free(runner.python);
	free(runner.lib_dir);
	free(runner.venv_dir);
	free(runner.work_dir);
	runner.data_dir = realpath(cfg->data_dir, NULL);
	if (runner.data_dir == NULL) {
		r = util_mkdir_p(cfg->data_dir, 0711);
		runner.data_dir = r == 0 ? realpath(cfg->data_dir, NULL) : NULL;
		if (runner.data_dir == NULL) {
			r = r < 0 ? r : -errno;
			util_seterr(err, errlen, "cannot create %s: %s", cfg->data_dir, strerror(-r));
			return r;
		}
	}
	runner.python = xstrdup(cfg->python);
	runner.lib_dir = xasprintf("%s/lib", runner.data_dir);
	runner.venv_dir = xasprintf("%s/venvs", runner.data_dir);
	runner.work_dir = xasprintf("%s/work", runner.data_dir);
	runner.slots = cfg->slots;
	runner.uid_base = cfg->uid_base;
	runner.output_cap = cfg->output_cap ? cfg->output_cap : 65536;
	runner.isolated = geteuid() == 0;
	runner.sandboxed = 0;
	if (cfg->slots < 1 || cfg->slots > RUNNER_SLOTS_MAX) {
		util_seterr(err, errlen, "slots must be 1 to %d", RUNNER_SLOTS_MAX);
		return -EINVAL;
	}
	__atomic_store_n(&runner_cancel, 0, __ATOMIC_SEQ_CST);
	for (int i = 0; i < RUNNER_SLOTS_MAX; i++)
		__atomic_store_n(&runner_slot_cancel[i], 0, __ATOMIC_SEQ_CST);
	warm_init(cfg->slots);
	env_init();

	/* slot users traverse the data folder, never list it */
	if ((r = runner_mkdir(runner.data_dir, 0711, err, errlen)) < 0 ||
	    (r = runner_mkdir(runner.lib_dir, 0755, err, errlen)) < 0 ||
	    (r = runner_mkdir(runner.venv_dir, 0755, err, errlen)) < 0 ||
	    (r = runner_mkdir(runner.work_dir, 0711, err, errlen)) < 0)
		goto out;
	for (size_t i = 0; r == 0 && i < sizeof(runner_py) / sizeof(runner_py[0]); i++) {
		free(path);
		path = xasprintf("%s/%s", runner.lib_dir, runner_py[i].name);
		r = util_write_file(path, runner_py[i].text, strlen(runner_py[i].text), 0644);
	}
	if (r == 0) {
		/* trust "instructor": the configuration runs take instead of the project's */
		static const char ini[] = "# meshtest: trust \"instructor\" runs use this, not the"
					  " project's configuration\n[pytest]\n";
		free(path);
		path = xasprintf("%s/%s", runner.lib_dir, RUNNER_TRUSTED_INI);
		r = util_write_file(path, ini, strlen(ini), 0644);
	}
	if (r < 0) {
		util_seterr(err, errlen, "cannot write %s: %s", path, strerror(-r));
		goto out;
	}
	if (runner.isolated) {
		if ((r = runner_check_reachable(runner.data_dir, err, errlen)) < 0)
			goto out;
		for (int i = 0; i < runner.slots; i++)
			(void)launch_kill_uid(runner_slot_uid(i));
		(void)launch_kill_uid(runner_setup_uid());
		log_info("runner: %d slots run as uids %ld..%ld, set-up commands as uid %ld",
			 runner.slots, runner.uid_base, runner.uid_base + runner.slots - 1,
			 runner.uid_base + runner.slots);
	} else {
		log_warn("not running as root: test code runs as this user, without separation "
			 "from the node or between projects (start the node as root for "
			 "per-slot users)");
	}
	if ((r = runner_sandbox_init(cfg, err, errlen)) < 0)
		goto out;
	runner_probe_versions();
	util_rm_matching(runner.work_dir, "slot-", NULL);
	util_rm_matching(runner.work_dir, "setup", NULL);
	util_rm_matching(runner.venv_dir, NULL, ".tmp-");
	r = 0;
out:
	free(path);
	return r;
}

/* Read dir/name without following a link; -ENOENT when absent. */
int
runner_read_project_file(const char *dir, const char *name, char **out, size_t *len)
{
	char *rel = xstrdup(name), *save = NULL, *part, *next;
	int dfd, fd = -1, r = 0;
	struct buf b;
	struct stat st;

	*out = NULL;
	buf_init(&b, RUNNER_FILE_MAX);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		goto out;
	}
	/* one component at a time, never through a link, never up */
	for (part = strtok_r(rel, "/", &save); part != NULL; part = next) {
		int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
		int nfd;

		next = strtok_r(NULL, "/", &save);
		if (strcmp(part, "..") == 0 || strcmp(part, ".") == 0) {
			r = -EINVAL;
			goto out;
		}
		nfd = openat(dfd, part, next != NULL ? flags | O_DIRECTORY : flags);
		if (nfd < 0) {
			r = errno == ELOOP || errno == ENOTDIR ? -EINVAL : -errno;
			goto out;
		}
		close(dfd);
		dfd = -1;
		if (next != NULL)
			dfd = nfd;
		else
			fd = nfd;
	}
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	for (;;) {
		char chunk[16384];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if ((r = buf_append(&b, chunk, (size_t)n)) < 0)
			goto out;
	}
	*len = b.len;
	*out = b.data ? buf_steal(&b) : xstrdup("");
out:
	if (dfd >= 0)
		close(dfd);
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	free(rel);
	return r;
}

/*
 * Run a build step as the slot user; env: a PATH, HOME/TMPDIR and pip's
 * settings. Sandboxed, it sees home and build (may be NULL) writable, the
 * plugin folder and a local PIP_FIND_LINKS folder read-only, and the host's
 * network only when net is set (pip install).
 */
int
runner_step(uid_t uid, const char *const *argv, const char *home, const char *cwd,
	    double timeout, const char *in, size_t inlen, const char *build, int net,
	    struct launch_result *res)
{
	static const char *const pass[] = { "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
					     "PIP_NO_INDEX", "PIP_TRUSTED_HOST" };
	char *env[16];
	size_t ne = 0;
	struct launch_spec spec;
	int r;

	env[ne++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	env[ne++] = xasprintf("HOME=%s", home);
	env[ne++] = xasprintf("TMPDIR=%s", home);
	env[ne++] = xstrdup("LANG=C.UTF-8");
	env[ne++] = xstrdup("PIP_NO_CACHE_DIR=1");
	env[ne++] = xstrdup("PIP_DISABLE_PIP_VERSION_CHECK=1");
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
		const char *v = getenv(pass[i]);
		if (v != NULL)
			env[ne++] = xasprintf("%s=%s", pass[i], v);
	}
	env[ne] = NULL;

	memset(&spec, 0, sizeof(spec));
	spec.argv = argv;
	spec.envp = (const char *const *)env;
	spec.cwd = cwd;
	spec.uid = uid;
	spec.gid = (gid_t)spec.uid;
	spec.timeout = timeout;
	spec.out_cap = runner.output_cap;
	spec.stdin_data = in;
	spec.stdin_len = inlen;
	spec.cancel = &runner_cancel;
	launch_limits_default(&spec.lim);

	struct sandbox_spec sb;
	const char *ro[8], *rw[6];
	const char *links = getenv("PIP_FIND_LINKS");
	if (links != NULL && util_starts_with(links, "file://"))
		links += 7;
	struct runner_view view = {
		.ro = { runner.lib_dir, runner.py_prefix,
			links != NULL && links[0] == '/' && strchr(links, ' ') == NULL &&
			access(links, F_OK) == 0 ? links : NULL },
		.rw = { home, build },
	};
	if (runner.sandboxed) {
		runner_view_fill(&sb, ro, rw, &view, spec.uid);
		sb.chdir = cwd;
		sb.share_net = net;
		spec.sandbox = &sb;
	}
	r = launch_run(&spec, res);
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	return r;
}

/* Describe a failed step: "<what>: <why>" into err. */
void
runner_step_error(const struct launch_result *res, double timeout, const char *what,
		  char *err, size_t errlen)
{
	char *line;

	if (!res->started) {
		util_seterr(err, errlen, "%s: %s", what, res->start_error);
		return;
	}
	if (res->timed_out) {
		util_seterr(err, errlen, "%s: timed out after %g s", what, timeout);
		return;
	}
	line = runner_last_line(&res->err);
	if (*line == '\0') {
		free(line);
		line = runner_last_line(&res->out);
	}
	if (*line == '\0') {
		free(line);
		line = res->term_signal ? xasprintf("killed by signal %d", res->term_signal)
					: xasprintf("exit status %d", res->exit_code);
	}
	util_seterr(err, errlen, "%s: %s", what, line);
	free(line);
}

int
runner_step_ok(const struct launch_result *res)
{
	return res->started && !res->timed_out && res->term_signal == 0 && res->exit_code == 0;
}

/* <venv>/bin/python -> <venv> (malloc'ed) when it is a venv, else NULL. */
char *
runner_venv_of(const char *python)
{
	char *venv = xstrdup(python), *cfg, *slash;
	int ok;

	for (int i = 0; i < 2; i++) {
		slash = strrchr(venv, '/');
		if (slash == NULL) {
			free(venv);
			return NULL;
		}
		*slash = '\0';
	}
	cfg = xasprintf("%s/pyvenv.cfg", venv);
	ok = *venv != '\0' && access(cfg, F_OK) == 0;
	free(cfg);
	if (!ok) {
		free(venv);
		return NULL;
	}
	return venv;
}

/*
 * The environment of a module run (pytest and what its tests start): PATH
 * with the project's environment first (venv may be NULL), the run's HOME
 * and TMPDIR, the slot's user name, PYTHONPATH <cwd>/src (when the project
 * has a src/ folder: the submitted package, never a copy installed on the
 * node), <cwd> and the plugin folder, unbuffered output, no bytecode files,
 * the report on fd 3. Fills env with malloc'ed strings and a NULL; returns
 * how many.
 */
size_t
runner_run_env(char **env, int slot, const char *venv, const char *project_dir,
	       const char *cwd, const char *home, const char *tmpd)
{
	char *src = xasprintf("%s/src", project_dir);
	struct stat st;
	size_t ne = 0;

	if (venv != NULL)
		env[ne++] = xasprintf("PATH=%s/bin:/usr/local/bin:/usr/bin:/bin", venv);
	else
		env[ne++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	env[ne++] = xasprintf("HOME=%s", home);
	env[ne++] = xasprintf("TMPDIR=%s", tmpd);
	env[ne++] = xasprintf("USER=meshtest-slot%d", slot);
	env[ne++] = xasprintf("LOGNAME=meshtest-slot%d", slot);
	env[ne++] = xstrdup("LANG=C.UTF-8");
	if (lstat(src, &st) == 0 && S_ISDIR(st.st_mode))
		env[ne++] = xasprintf("PYTHONPATH=%s/src:%s:%s", cwd, cwd, runner.lib_dir);
	else
		env[ne++] = xasprintf("PYTHONPATH=%s:%s", cwd, runner.lib_dir);
	env[ne++] = xstrdup("PYTHONUNBUFFERED=1");
	env[ne++] = xstrdup("PYTHONDONTWRITEBYTECODE=1");
	if (venv != NULL)
		env[ne++] = xasprintf("VIRTUAL_ENV=%s", venv);
	env[ne++] = xstrdup("MESHTEST_REPORT_FD=3");
	/* trust "instructor": no plugin but the ones named (-p meshtest_plugin) */
	if (setup_project_trusted(project_dir))
		env[ne++] = xstrdup("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1");
	env[ne] = NULL;
	free(src);
	return ne;
}

char **
runner_pytest_args(const char *project_dir, const char *cwd)
{
	char **v = xcalloc(RUNNER_PYTEST_ARGS + 1, sizeof(*v));
	size_t n = 0;

	v[n++] = xstrdup("-p");
	v[n++] = xstrdup("meshtest_plugin");
	v[n++] = xstrdup("-p");
	v[n++] = xstrdup("no:cacheprovider");
	v[n++] = xasprintf("--rootdir=%s", cwd);
	v[n++] = xstrdup("-q");
	v[n++] = xstrdup("--color=no");
	if (setup_project_trusted(project_dir)) {
		/* meshtest's configuration, not the student's; no conftest.py above tests/ */
		v[n++] = xstrdup("-c");
		v[n++] = xasprintf("%s/%s", runner.lib_dir, RUNNER_TRUSTED_INI);
		v[n++] = xasprintf("--confcutdir=%s/tests", cwd);
	}
	v[n] = NULL;
	return v;
}

void
runner_strv_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

void
runner_report_key(char key[RUNNER_KEY_LEN])
{
	util_random_hex(key, (RUNNER_KEY_LEN - 1) / 2);
}

/* A module path from the scheduler must stay inside the project copy. */
static int
runner_module_ok(const char *m)
{
	if (m == NULL || *m == '\0' || *m == '/' || *m == '-' || strlen(m) > 1024)
		return 0;
	for (const char *p = m; *p; p++)
		if ((unsigned char)*p < 0x20)
			return 0;
	return strcmp(m, "..") != 0 && !util_starts_with(m, "../") &&
	       strstr(m, "/../") == NULL && !util_ends_with(m, "/..");
}

int
runner_mkdir_owned(const char *path, uid_t uid)
{
	if (mkdir(path, 0700) < 0)
		return -errno;
	if (uid != (uid_t)-1 && chown(path, uid, (gid_t)uid) < 0)
		return -errno;
	return 0;
}

/*
 * The slot's folders: slot-<n>/ (root's, searchable), in it projects/
 * (pristine copies, read-only in the sandbox), run/ (one scratch folder per
 * run), project/ (where a run sees its project), wtmp/ (the worker's /tmp),
 * all but projects/ owned by the slot's uid; cold/ is made per cold run.
 */
int
runner_slot_dirs(int slot)
{
	static const char *const owned[] = { "run", "project", "wtmp" };
	uid_t uid = runner_slot_uid(slot);
	char *dir = xasprintf("%s/slot-%d", runner.work_dir, slot), *sub = NULL;
	struct stat st;
	int r = 0;

	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
		free(dir);
		return 0;
	}
	if (mkdir(dir, 0711) < 0 && errno != EEXIST) {
		r = -errno;
		goto out;
	}
	sub = xasprintf("%s/projects", dir);
	if (mkdir(sub, 0711) < 0 && errno != EEXIST) {
		r = -errno;
		goto out;
	}
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		free(sub);
		sub = xasprintf("%s/%s", dir, owned[i]);
		if ((r = runner_mkdir_owned(sub, uid)) < 0 && r != -EEXIST)
			goto out;
		r = 0;
	}
out:
	if (r < 0)
		log_error("runner: cannot prepare %s: %s", dir, strerror(-r));
	free(sub);
	free(dir);
	return r;
}

int
runner_run_module(const struct runner_module_req *req, json_t **result)
{
	char *slot_dir = NULL, *copy = NULL, *home = NULL, *tmpd = NULL, *venv = NULL;
	char *env[RUNNER_ENV_MAX + 1], *supervisor = NULL, **pargs = NULL;
	char key[RUNNER_KEY_LEN];
	const char *argv[RUNNER_PYTEST_ARGS + 10];
	size_t ne = 0;
	uid_t uid;
	struct launch_spec spec;
	struct launch_result res;
	int r, have_res = 0;

	*result = NULL;
	if (runner_stopped(req->slot))
		return -ECANCELED;
	if (req->slot < 0 || req->slot >= runner.slots || runner.data_dir == NULL ||
	    req->python == NULL || req->project_dir == NULL || !runner_module_ok(req->module_path))
		return -EINVAL;
	uid = runner_slot_uid(req->slot);
	if ((r = runner_slot_dirs(req->slot)) < 0)
		return r;
	slot_dir = xasprintf("%s/slot-%d/cold", runner.work_dir, req->slot);
	copy = xasprintf("%s/project", slot_dir);
	home = xasprintf("%s/home", slot_dir);
	tmpd = xasprintf("%s/tmp", slot_dir);

	(void)runner_sweep(uid);
	if ((r = util_rm_rf(slot_dir)) < 0 || (r = runner_mkdir_owned(slot_dir, uid)) < 0 ||
	    (r = runner_mkdir_owned(home, uid)) < 0 || (r = runner_mkdir_owned(tmpd, uid)) < 0) {
		log_error("runner: cannot prepare %s: %s", slot_dir, strerror(-r));
		goto out;
	}
	if ((r = util_copy_tree(req->project_dir, copy, uid, (gid_t)uid)) < 0) {
		log_error("runner: cannot copy %s to %s: %s", req->project_dir, copy, strerror(-r));
		goto out;
	}

	venv = runner_venv_of(req->python);
	ne = runner_run_env(env, req->slot, venv, req->project_dir, copy, home, tmpd);
	/* the report channel takes only events that carry this run's key */
	runner_report_key(key);
	env[ne++] = xasprintf("MESHTEST_REPORT_KEY=%s", key);
	env[ne] = NULL;

	pargs = runner_pytest_args(req->project_dir, copy);
	supervisor = xasprintf("%s/meshtest_supervisor.py", runner.lib_dir);
	{
		size_t na = 0;
		/* set-up commands and services: the supervisor runs them, then pytest */
		if (setup_needed(req->project_dir)) {
			argv[na++] = req->python;
			argv[na++] = "-I";
			argv[na++] = supervisor;
			argv[na++] = "--";
		}
		argv[na++] = req->python;
		argv[na++] = "-m";
		argv[na++] = "pytest";
		for (size_t i = 0; pargs[i] != NULL; i++)
			argv[na++] = pargs[i];
		argv[na++] = req->module_path;
		argv[na] = NULL;
	}
	memset(&spec, 0, sizeof(spec));
	spec.argv = argv;
	spec.envp = (const char *const *)env;
	spec.cwd = copy;
	spec.uid = uid;
	spec.gid = (gid_t)uid;
	spec.timeout = req->timeout;
	spec.out_cap = runner.output_cap;
	spec.report_cap = RUNNER_REPORT_CAP;
	spec.cancel = &runner_slot_cancel[req->slot];
	launch_limits_default(&spec.lim);

	/* the slot folder holds the copy, HOME and TMPDIR; its tmp is also /tmp */
	struct sandbox_spec sb;
	const char *ro[8], *rw[6];
	struct runner_view view = {
		.ro = { runner.lib_dir, venv, runner.py_prefix },
		.rw = { slot_dir },
	};
	if (runner.sandboxed) {
		runner_view_fill(&sb, ro, rw, &view, uid);
		sb.tmp_dir = tmpd;
		sb.chdir = copy;
		spec.sandbox = &sb;
	}
	if ((r = launch_run(&spec, &res)) < 0)
		goto out;
	have_res = 1;

	struct report_exit ex = {
		.started = res.started,
		.exit_code = res.exit_code,
		.term_signal = res.term_signal,
		.timed_out = res.timed_out,
		.duration = res.duration,
		.timeout = req->timeout,
		.start_error = res.start_error,
		.stderr_tail = res.err.data,
		.stdout_tail = res.out.data,
		.module = req->module_path,
	};
	size_t klen;
	char *keyed = report_keep_keyed(res.report.data, res.report.len, key, &klen);
	json_t *j = report_build(keyed, klen, &ex);
	(void)setup_fix_result(j, keyed, klen, res.err.data, copy, req->module_path);
	free(keyed);
	json_object_set_new(j, "stdout", report_json_text(res.out.data, res.out.len));
	json_object_set_new(j, "stderr", report_json_text(res.err.data, res.err.len));
	json_object_set_new(j, "stdout_dropped", json_integer((json_int_t)res.out.dropped));
	json_object_set_new(j, "stderr_dropped", json_integer((json_int_t)res.err.dropped));
	if (res.report.dropped > 0)
		log_warn("runner: report of %s cut at %u bytes", req->module_path,
			 RUNNER_REPORT_CAP);
	*result = j;
	r = 0;
out:
	/* stragglers such as background servers, then the copy */
	(void)runner_sweep(uid);
	if (slot_dir != NULL) {
		int e = util_rm_rf(slot_dir);
		if (e < 0)
			log_warn("runner: cannot remove %s: %s", slot_dir, strerror(-e));
	}
	if (have_res)
		launch_result_free(&res);
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	free(slot_dir);
	free(copy);
	free(home);
	free(tmpd);
	free(venv);
	runner_strv_free(pargs);
	free(supervisor);
	return r;
}

/* stdout/stderr of a run into its result. */
void
runner_attach_output(json_t *j, const struct buf *out, const struct buf *err)
{
	json_object_set_new(j, "stdout", report_json_text(out->data, out->len));
	json_object_set_new(j, "stderr", report_json_text(err->data, err->len));
	json_object_set_new(j, "stdout_dropped", json_integer((json_int_t)out->dropped));
	json_object_set_new(j, "stderr_dropped", json_integer((json_int_t)err->dropped));
}

/* One module alone: warm when the slot has a worker, else cold. */
static int
runner_alone(int slot, const struct runner_batch *b, const char *lower, const char *module,
	     json_t **result)
{
	struct worker *w = lower != NULL ? warm_worker(slot, b->python, setup_project_trusted(b->project_dir)) : NULL;
	struct runner_module_req req;
	int r;

	*result = NULL;
	if (w != NULL) {
		const char *mods[1] = { module };
		r = warm_run(slot, &w, b, lower, mods, 1, 0, NULL, result);
		if (r != -EAGAIN)
			return r;
		warm_cold_for(slot);
	}
	memset(&req, 0, sizeof(req));
	req.project_dir = b->project_dir;
	req.module_path = module;
	req.python = b->python;
	req.timeout = b->timeout;
	req.slot = slot;
	return runner_run_module(&req, result);
}

static int
runner_is_infra(json_t *result)
{
	const char *o = json_string_value(json_object_get(result, "outcome"));

	return o != NULL && strcmp(o, "infra_error") == 0 &&
	       !json_is_true(json_object_get(result, "setup_failed")) &&
	       !json_is_true(json_object_get(result, "config_error"));
}

/*
 * Run a failed module again alone, up to reruns times while it fails; the
 * last run counts and the result keeps every run (rerun_merge).
 */
static int
runner_rerun(int slot, const struct runner_batch *b, const char *lower, const char *module,
	     int reruns, json_t **result)
{
	json_t *runs = json_array(), *cur = *result;
	int r = 0;

	json_array_append(runs, cur);
	for (int k = 0; k < reruns && rerun_wanted(cur); k++) {
		json_t *again = NULL;
		log_info("runner: slot %d reruns %s (rerun %d of %d)", slot, module, k + 1, reruns);
		r = runner_alone(slot, b, lower, module, &again);
		if (r == -ECANCELED || runner_stopped(slot)) {
			json_decref(again);
			json_decref(runs);
			return -ECANCELED;
		}
		if (r < 0 || again == NULL) {
			json_decref(again);
			break;
		}
		json_array_append_new(runs, again);
		cur = again;
	}
	json_decref(*result);
	*result = rerun_merge(runs);
	json_decref(runs);
	return 0;
}

/*
 * A module alone, with the retries of a run that could not start and the
 * project's reruns of a failed module (the last run counts).
 */
static int
runner_alone_counted(int slot, const struct runner_batch *b, const char *lower,
		     const char *module, json_t **result)
{
	json_t *j = NULL;
	int r = 0, reruns;

	for (int tries = 1;; tries++) {
		json_decref(j);
		j = NULL;
		r = runner_alone(slot, b, lower, module, &j);
		if (r == -ECANCELED || runner_stopped(slot)) {
			json_decref(j);
			return -ECANCELED;
		}
		if (r < 0 || j == NULL) {
			json_decref(j);
			j = report_error_result("infra_error", module, "the runner failed on this node");
		}
		if (!runner_is_infra(j) || tries >= RUNNER_INFRA_TRIES)
			break;
		log_warn("runner: %s could not start (%s); trying again", module,
			 json_string_value(json_object_get(j, "message")));
		util_sleep(0.5);
	}
	*result = j;
	reruns = setup_project_reruns(b->project_dir);
	if (reruns > 0 && rerun_wanted(j))
		return runner_rerun(slot, b, lower, module, reruns, result);
	return 0;
}

/* The end of the run of modules from from on that lie in one folder. */
static size_t
runner_same_folder(const char *const *modules, size_t from, size_t n)
{
	const char *slash = strrchr(modules[from], '/');
	size_t dlen = slash != NULL ? (size_t)(slash - modules[from]) : 0, to = from + 1;

	for (; to < n; to++) {
		const char *s = strrchr(modules[to], '/');
		size_t l = s != NULL ? (size_t)(s - modules[to]) : 0;
		if (l != dlen || strncmp(modules[to], modules[from], dlen) != 0)
			break;
	}
	return to;
}

/* A group's modules whose results were recorded as they came (delivered[]). */
struct runner_live {
	const struct runner_batch *b;
	size_t from;
	unsigned char *delivered;
};

static void
runner_deliver(void *ctx, size_t i, json_t *result)
{
	struct runner_live *rl = ctx;

	rl->b->on_result(rl->b->ctx, rl->from + i, result);
	rl->delivered[rl->from + i] = 1;
}

/*
 * Modules [from, to) of the batch in one warm pytest process (warm_run):
 * their results into results[] for those that count from it. With each
 * (isolation "module") and no reruns, each result is recorded as soon as
 * its module's process ended (delivered[] says which). -ECANCELED when the
 * slot was stopped, else 0 (the others run alone).
 */
static int
runner_warm_group(const struct runner_batch *b, const char *lower, int each, size_t from,
		  size_t to, json_t **results, unsigned char *delivered)
{
	struct worker *w = warm_worker(b->slot, b->python, setup_project_trusted(b->project_dir));
	struct runner_live rl = { b, from, delivered };
	struct warm_live live = { runner_deliver, &rl };
	int r;

	if (w == NULL || (each && !worker_has_each(w)))
		return 0;
	if (each)
		log_debug("runner: slot %d runs %zu modules, each in a process of its own"
			  " (pytest started once)", b->slot, to - from);
	r = warm_run(b->slot, &w, b, lower, b->modules + from, to - from, each,
		     setup_project_reruns(b->project_dir) > 0 ? NULL : &live, results + from);
	if (r == -EAGAIN)
		warm_cold_for(b->slot);
	return r == -ECANCELED ? r : 0;
}

int
runner_run_batch(const struct runner_batch *b)
{
	json_t **results = NULL;
	unsigned char *delivered = NULL;
	char *lower = NULL;
	int r = 0, reruns;

	if (runner_stopped(b->slot))
		return -ECANCELED;
	if (b->slot < 0 || b->slot >= runner.slots || runner.data_dir == NULL ||
	    b->python == NULL || b->project_dir == NULL || b->n == 0 || b->on_result == NULL)
		return -EINVAL;
	for (size_t i = 0; i < b->n; i++)
		if (!runner_module_ok(b->modules[i]))
			return -EINVAL;
	results = xcalloc(b->n, sizeof(*results));
	delivered = xcalloc(b->n, 1);
	if (runner.sandboxed && b->digest != NULL)
		lower = warm_copy(b->slot, b->digest, b->project_dir);
	if (lower != NULL && b->n > 1) {
		/*
		 * Isolation "project": one shared session. "module": pytest
		 * started once per folder (its conftest files are what each
		 * module alone would load), each module in a child of its own;
		 * not for a project with services (each module starts its own).
		 */
		int each = b->isolation == RUNNER_ISOLATION_MODULE;
		size_t from = 0, to;

		for (; from < b->n; from = to) {
			to = each ? runner_same_folder(b->modules, from, b->n) : b->n;
			if (to - from < 2 || (each && setup_needed(b->project_dir)))
				continue;
			r = runner_warm_group(b, lower, each, from, to, results, delivered);
			if (r == -ECANCELED) {
				/* stopped (its evaluation was cancelled): what finished counts */
				for (size_t i = 0; i < b->n && !runner_aborted(); i++)
					if (results[i] != NULL && !delivered[i])
						b->on_result(b->ctx, i, results[i]);
				goto out;
			}
		}
		/* the session's results, handed over together (its reruns first) */
		size_t *done = xcalloc(b->n, sizeof(*done)), ndone = 0;

		reruns = setup_project_reruns(b->project_dir);
		for (size_t i = 0; i < b->n; i++) {
			if (results[i] == NULL || delivered[i])
				continue;
			if (reruns > 0 && rerun_wanted(results[i]) &&
			    (r = runner_rerun(b->slot, b, lower, b->modules[i], reruns,
					      &results[i])) < 0)
				break;
			done[ndone++] = i;
		}
		if (b->on_results != NULL && ndone > 1)
			b->on_results(b->ctx, done, results, ndone);
		else
			for (size_t k = 0; k < ndone; k++)
				b->on_result(b->ctx, done[k], results[done[k]]);
		free(done);
		if (r < 0)
			goto out;
	}
	/* one at a time: isolation "module", or what did not finish in the session */
	for (size_t i = 0; i < b->n; i++) {
		if (results[i] != NULL)
			continue;
		if ((r = runner_alone_counted(b->slot, b, lower, b->modules[i], &results[i])) < 0)
			goto out;
		b->on_result(b->ctx, i, results[i]);
	}
out:
	for (size_t i = 0; i < b->n; i++)
		json_decref(results[i]);
	free(results);
	free(delivered);
	free(lower);
	return r;
}
