/*
 * runner.c - per-project virtual environments and one supervised pytest run
 * per module.
 *
 * Owns <data>/lib (the embedded plugin and helper), <data>/venvs (shared,
 * read-only environments keyed by interpreter + requirement set) and
 * <data>/work/slot-<n> (one scratch folder per slot). Everything submitted
 * code does goes through launch_run as the slot's uid and, when bubblewrap
 * works (runner.sandboxed), inside a sandbox (sandbox.c) that sees the system
 * read-only, the environment and the plugin read-only, and only its own slot
 * folder (a module run) or build folder (an environment build) writable.
 * Module runs get a private network; package installs share the host's
 * network, since pip must reach the package index.
 *
 * Set-up commands run once per project, after fetching (runner_run_setup),
 * as a uid of their own (runner_setup_uid, no slot uses it) in
 * <data>/work/setup, one project at a time (runner_setup_lock).
 *
 * Threads: runner_init runs once at startup. Then slot worker threads call
 * runner_prepare_env and runner_run_module, one module per slot at a time,
 * and fetcher threads call runner_run_setup. The configuration is read-only
 * after init; the set of venv keys being built and the cache of failed
 * builds are behind runner_lock.
 */
#include "runner/runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include "runner/launch.h"
#include "runner/report.h"
#include "runner/sandbox.h"
#include "runner/session.h"
#include "runner/setup.h"
#include "runner/worker.h"

#define RUNNER_REQ_MAX (1 << 20)        /* requirements.txt / pyproject.toml */
#define RUNNER_REQ_LINES 10000
#define RUNNER_REPORT_CAP (32u << 20)
#define RUNNER_VENV_TIMEOUT 300.0
#define RUNNER_PIP_TIMEOUT 1200.0
#define RUNNER_CHECK_TIMEOUT 60.0
#define RUNNER_FAIL_TTL 600.0            /* seconds a failed build is remembered */
#define RUNNER_READY ".meshtest-ready"
#define RUNNER_SETUP_TIMEOUT 300.0       /* all set-up commands of a project */
#define RUNNER_SETUP_REPORT_CAP (64u << 10)
#define RUNNER_WORKERS_PER_SLOT 2        /* environments a slot keeps warm */
#define RUNNER_WORKER_IDLE 300.0         /* seconds before an idle worker stops */
#define RUNNER_WORKER_START 60.0
#define RUNNER_WORKER_RSS_KB (1024L * 1024)  /* a worker past 1 GiB starts afresh */
#define RUNNER_WARM_RETRY 60.0           /* after a worker failed to start, cold until */
#define RUNNER_COPIES_PER_SLOT 16        /* pristine project copies a slot keeps */
#define RUNNER_INFRA_TRIES 3

static struct {
	char *data_dir, *python, *lib_dir, *venv_dir, *work_dir;
	int slots;
	long uid_base;
	size_t output_cap;
	int isolated;
	int sandboxed;                 /* runs go through bwrap */
	char *bwrap;
	char *py_prefix;               /* the interpreter's prefix when outside /usr, else NULL */
	struct sandbox_sys_entry sys[SANDBOX_SYS_MAX];
	size_t nsys;
} runner;

/*
 * What one slot keeps between runs: its warm workers and a sequence for run
 * folders. Touched only by that slot's thread (runner_run_batch,
 * runner_slot_idle, runner_slot_close).
 */
struct runner_slot {
	struct worker *workers[RUNNER_WORKERS_PER_SLOT];
	unsigned seq;
	double cold_until;            /* no worker starts before (a start failed) */
	int nwarm;                    /* live workers, for other threads (atomic) */
};
static struct runner_slot *runner_slots;

static pthread_mutex_t runner_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t runner_setup_lock = PTHREAD_MUTEX_INITIALIZER; /* one set-up uid */
static pthread_cond_t runner_cond = PTHREAD_COND_INITIALIZER;
static json_t *runner_building;  /* key -> true while one thread builds it */
static json_t *runner_failures;  /* key -> [message, util_mono() of the failure] */
static int runner_cancel;        /* set by runner_abort_all; atomic access only */

/*
 * Kill what a run of uid left behind. Only without the sandbox: bubblewrap's
 * pid namespace takes every process of a run along, and a uid-wide sweep
 * would also hit the slot's idle workers.
 */
static void
runner_sweep(uid_t uid)
{
	if (!runner.sandboxed)
		(void)launch_kill_uid(uid);
}

static int
runner_aborted(void)
{
	return __atomic_load_n(&runner_cancel, __ATOMIC_SEQ_CST);
}

void
runner_abort_all(void)
{
	__atomic_store_n(&runner_cancel, 1, __ATOMIC_SEQ_CST);
	/* wake waiters for a build: they see the flag and give up */
	pthread_mutex_lock(&runner_lock);
	pthread_cond_broadcast(&runner_cond);
	pthread_mutex_unlock(&runner_lock);
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

static uid_t
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
static uid_t
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

/* Paths a sandbox shows read-only or read-write; NULL entries are skipped. */
struct runner_view {
	const char *ro[6];
	const char *rw[4];
};

static void
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
static char *
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
	__atomic_store_n(&runner_cancel, 0, __ATOMIC_SEQ_CST);
	free(runner_slots);
	runner_slots = xcalloc((size_t)cfg->slots, sizeof(*runner_slots));

	pthread_mutex_lock(&runner_lock);
	if (runner_building == NULL)
		runner_building = json_object();
	if (runner_failures == NULL)
		runner_failures = json_object();
	json_object_clear(runner_failures);
	pthread_mutex_unlock(&runner_lock);

	/* slot users traverse the data folder, never list it */
	if ((r = runner_mkdir(runner.data_dir, 0711, err, errlen)) < 0 ||
	    (r = runner_mkdir(runner.lib_dir, 0755, err, errlen)) < 0 ||
	    (r = runner_mkdir(runner.venv_dir, 0755, err, errlen)) < 0 ||
	    (r = runner_mkdir(runner.work_dir, 0711, err, errlen)) < 0)
		goto out;
	path = xasprintf("%s/meshtest_plugin.py", runner.lib_dir);
	r = util_write_file(path, embedded_meshtest_plugin, strlen(embedded_meshtest_plugin), 0644);
	if (r == 0) {
		free(path);
		path = xasprintf("%s/meshtest_helper.py", runner.lib_dir);
		r = util_write_file(path, embedded_meshtest_helper,
				    strlen(embedded_meshtest_helper), 0644);
	}
	if (r == 0) {
		free(path);
		path = xasprintf("%s/meshtest_supervisor.py", runner.lib_dir);
		r = util_write_file(path, embedded_meshtest_supervisor,
				    strlen(embedded_meshtest_supervisor), 0644);
	}
	if (r == 0) {
		free(path);
		path = xasprintf("%s/meshtest_worker.py", runner.lib_dir);
		r = util_write_file(path, embedded_meshtest_worker,
				    strlen(embedded_meshtest_worker), 0644);
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
	util_rm_matching(runner.work_dir, "slot-", NULL);
	util_rm_matching(runner.work_dir, "setup", NULL);
	util_rm_matching(runner.venv_dir, NULL, ".tmp-");
	r = 0;
out:
	free(path);
	return r;
}

/* Read dir/name without following a link; -ENOENT when absent. */
static int
runner_read_project_file(const char *dir, const char *name, char **out, size_t *len)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct buf b;
	struct stat st;
	int r = 0;

	free(path);
	buf_init(&b, RUNNER_REQ_MAX);
	if (fd < 0)
		return errno == ELOOP ? -EINVAL : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
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
	close(fd);
	buf_free(&b);
	return r;
}

static int
runner_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Requirement lines without comments, blanks and surrounding whitespace,
 * sorted, one per line (malloc'ed; "" for none).
 */
static char *
runner_normalize(const char *text, size_t len)
{
	char **lines = xcalloc(RUNNER_REQ_LINES, sizeof(*lines));
	size_t n = 0, total = 1;
	struct buf out;

	for (size_t i = 0; i < len && n < RUNNER_REQ_LINES;) {
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
	qsort(lines, n, sizeof(*lines), runner_cmp);
	buf_init(&out, total + 1);
	for (size_t i = 0; i < n; i++) {
		(void)buf_append(&out, lines[i], strlen(lines[i]));
		(void)buf_append(&out, "\n", 1);
		free(lines[i]);
	}
	free(lines);
	return out.data ? buf_steal(&out) : xstrdup("");
}

/*
 * Run a build step as the slot user; env: a PATH, HOME/TMPDIR and pip's
 * settings. Sandboxed, it sees home and build (may be NULL) writable, the
 * plugin folder and a local PIP_FIND_LINKS folder read-only, and the host's
 * network only when net is set (pip install).
 */
static int
runner_step(uid_t uid, const char *const *argv, const char *home, const char *cwd,
	    double timeout, const char *in, size_t inlen, const char *build, int net,
	    struct launch_result *res)
{
	static const char *const pass[] = { "PIP_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX" };
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
static void
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

static int
runner_step_ok(const struct launch_result *res)
{
	return res->started && !res->timed_out && res->term_signal == 0 && res->exit_code == 0;
}

/* The requirement set of a project, normalized (malloc'ed). */
static int
runner_requirements(const char *project_dir, uid_t uid, char **out, char *err, size_t errlen)
{
	char *text = NULL, *home = NULL;
	size_t len = 0;
	int r;

	r = runner_read_project_file(project_dir, "requirements.txt", &text, &len);
	if (r == 0) {
		*out = runner_normalize(text, len);
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
	r = runner_step(uid, argv, home, "/", RUNNER_CHECK_TIMEOUT, text, len, NULL, 0, &res);
	if (r == 0 && runner_step_ok(&res) && res.out.dropped == 0) {
		*out = runner_normalize(res.out.data ? res.out.data : "", res.out.len);
	} else if (r == 0) {
		char *line = runner_last_line(&res.err);
		if (util_starts_with(line, "cannot read pyproject.toml"))
			util_seterr(err, errlen, "%s", line);
		else
			runner_step_error(&res, RUNNER_CHECK_TIMEOUT, "cannot read pyproject.toml",
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
runner_fix_scripts(const char *bindir, const char *from, const char *to)
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
runner_nftw_ro(const char *path, const struct stat *st, int flag, struct FTW *ftw)
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
runner_build_env(const char *key, const char *reqs, uid_t uid, char *err, size_t errlen)
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
	if ((r = runner_step(uid, venv_argv, home, home, RUNNER_VENV_TIMEOUT, NULL, 0, tmp, 0,
			     &res)) < 0)
		goto fail_msg;
	have_res = 1;
	if (!runner_step_ok(&res)) {
		runner_step_error(&res, RUNNER_VENV_TIMEOUT,
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
		if ((r = runner_step(uid, pip_argv, home, home, RUNNER_PIP_TIMEOUT, NULL, 0,
				     tmp, 1, &res)) < 0)
			goto fail_msg;
		have_res = 1;
		if (!runner_step_ok(&res)) {
			runner_step_error(&res, RUNNER_PIP_TIMEOUT, "installing requirements failed",
					  err, errlen);
			r = -EIO;
			goto fail;
		}
		launch_result_free(&res);
		have_res = 0;
	}

	const char *check_argv[] = { vpy, "-c", "import pytest", NULL };
	if ((r = runner_step(uid, check_argv, home, home, RUNNER_CHECK_TIMEOUT, NULL, 0,
			     tmp, 0, &res)) < 0)
		goto fail_msg;
	have_res = 1;
	if (!runner_step_ok(&res)) {
		runner_step_error(&res, RUNNER_CHECK_TIMEOUT,
				  "pytest is not available in the project's environment", err, errlen);
		r = -EIO;
		goto fail;
	}
	launch_result_free(&res);
	have_res = 0;
	(void)runner_sweep(uid);

	{
		char *bindir = xasprintf("%s/bin", tmp);
		runner_fix_scripts(bindir, tmp, final);
		free(bindir);
	}
	marker = xasprintf("%s/%s", tmp, RUNNER_READY);
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
	(void)nftw(final, runner_nftw_ro, 32, FTW_PHYS);
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

/* runner_prepare_env with the builds running as uid. */
static int
runner_env_as(const char *project_dir, uid_t uid, char **python_out, char *err,
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
	if ((r = runner_requirements(project_dir, uid, &reqs, err, errlen)) < 0)
		goto out;
	keytext = xasprintf("%s\n%s", runner.python, reqs);
	util_sha256_hex(keytext, strlen(keytext), key);
	marker = xasprintf("%s/%s/%s", runner.venv_dir, key, RUNNER_READY);

	pthread_mutex_lock(&runner_lock);
	while (json_object_get(runner_building, key) != NULL && !runner_aborted())
		pthread_cond_wait(&runner_cond, &runner_lock);
	if (runner_aborted()) {
		pthread_mutex_unlock(&runner_lock);
		util_seterr(err, errlen, "the node is shutting down");
		r = -ECANCELED;
		goto out;
	}
	if (access(marker, F_OK) == 0) {
		pthread_mutex_unlock(&runner_lock);
		r = 0;
		goto done;
	}
	json_t *failed = json_object_get(runner_failures, key);
	if (failed != NULL &&
	    util_mono() - json_real_value(json_array_get(failed, 1)) < RUNNER_FAIL_TTL) {
		util_seterr(err, errlen, "%s", json_string_value(json_array_get(failed, 0)));
		pthread_mutex_unlock(&runner_lock);
		r = -EIO;
		goto out;
	}
	json_object_set_new(runner_building, key, json_true());
	pthread_mutex_unlock(&runner_lock);

	r = runner_build_env(key, reqs, uid, err, errlen);

	pthread_mutex_lock(&runner_lock);
	json_object_del(runner_building, key);
	if (r < 0 && runner_aborted()) {
		util_seterr(err, errlen, "the node is shutting down");
		r = -ECANCELED;
	} else if (r < 0) {
		json_object_set_new(runner_failures, key,
				    json_pack("[s, f]", err ? err : "", util_mono()));
	} else {
		json_object_del(runner_failures, key);
	}
	pthread_cond_broadcast(&runner_cond);
	pthread_mutex_unlock(&runner_lock);
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
runner_prepare_env(const char *project_dir, int slot, char **python_out, char *err,
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
	return runner_env_as(project_dir, slot < 0 ? runner_setup_uid() : runner_slot_uid(slot),
			     python_out, err, errlen);
}

/* <venv>/bin/python -> <venv> (malloc'ed) when it is a venv, else NULL. */
static char *
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

#define RUNNER_ENV_MAX 16

/*
 * The environment of a module run (pytest and what its tests start): PATH
 * with the project's environment first (venv may be NULL), the run's HOME
 * and TMPDIR, the slot's user name, PYTHONPATH <cwd>/src (when the project
 * has a src/ folder: the submitted package, never a copy installed on the
 * node), <cwd> and the plugin folder, unbuffered output, no bytecode files,
 * the report on fd 3. Fills env with malloc'ed strings and a NULL; returns
 * how many.
 */
static size_t
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
	env[ne] = NULL;
	free(src);
	return ne;
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

static int
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
static int
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
	char *env[RUNNER_ENV_MAX + 1], *rootdir = NULL, *supervisor = NULL;
	size_t ne = 0;
	uid_t uid;
	struct launch_spec spec;
	struct launch_result res;
	int r, have_res = 0;

	*result = NULL;
	if (runner_aborted())
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

	rootdir = xasprintf("--rootdir=%s", copy);
	supervisor = xasprintf("%s/meshtest_supervisor.py", runner.lib_dir);
	const char *pytest_argv[] = { req->python, "-m", "pytest", "-p", "meshtest_plugin",
				      "-p", "no:cacheprovider", rootdir, "-q", "--color=no",
				      req->module_path, NULL };
	/* set-up commands and services: the supervisor runs them, then pytest */
	const char *sup_argv[] = { req->python, "-I", supervisor, "--", req->python, "-m",
				   "pytest", "-p", "meshtest_plugin", "-p", "no:cacheprovider",
				   rootdir, "-q", "--color=no", req->module_path, NULL };
	const char *const *argv = setup_needed(req->project_dir) ? sup_argv : pytest_argv;
	memset(&spec, 0, sizeof(spec));
	spec.argv = argv;
	spec.envp = (const char *const *)env;
	spec.cwd = copy;
	spec.uid = uid;
	spec.gid = (gid_t)uid;
	spec.timeout = req->timeout;
	spec.out_cap = runner.output_cap;
	spec.report_cap = RUNNER_REPORT_CAP;
	spec.cancel = &runner_cancel;
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
	json_t *j = report_build(res.report.data, res.report.len, &ex);
	(void)setup_fix_result(j, res.report.data, res.report.len, res.err.data, copy,
			       req->module_path);
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
	free(rootdir);
	free(supervisor);
	return r;
}

/* Read dir/SETUP_FILE as the fetcher wrote it (NULL when absent). */
static char *
runner_read_setup_file(const char *dir, size_t *len)
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
runner_setup_collect(const char *copy, const char *project_dir, const char *settings,
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
runner_setup_error(const struct launch_result *res, char *err, size_t errlen)
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
	runner_step_error(res, RUNNER_SETUP_TIMEOUT, "the set-up commands failed", err, errlen);
}

int
runner_run_setup(const char *project_dir, char *err, size_t errlen)
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
	pthread_mutex_lock(&runner_setup_lock);
	if (runner_aborted()) {
		util_seterr(err, errlen, "the node is shutting down");
		r = -ECANCELED;
		goto out;
	}
	/* the commands see the interpreter and packages the tests will see */
	if ((r = runner_env_as(project_dir, uid, &python, err, errlen)) < 0)
		goto out;
	dir = xasprintf("%s/setup", runner.work_dir);
	copy = xasprintf("%s/project", dir);
	home = xasprintf("%s/home", dir);
	tmpd = xasprintf("%s/tmp", dir);
	settings = runner_read_setup_file(project_dir, &settings_len);
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
	budget = xasprintf("%g", RUNNER_SETUP_TIMEOUT);
	const char *argv[] = { python, "-I", supervisor, "--commands", budget, NULL };
	memset(&spec, 0, sizeof(spec));
	spec.argv = argv;
	spec.envp = (const char *const *)env;
	spec.cwd = copy;
	spec.uid = uid;
	spec.gid = (gid_t)uid;
	spec.timeout = RUNNER_SETUP_TIMEOUT + 30; /* the supervisor keeps the budget itself */
	spec.out_cap = runner.output_cap;
	spec.report_cap = RUNNER_SETUP_REPORT_CAP;
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
		runner_setup_error(&res, err, errlen);
		r = res.cancelled ? -ECANCELED : -EIO;
		goto out;
	}
	r = runner_setup_collect(copy, project_dir, settings, settings_len, err, errlen);
out:
	if (dir != NULL) {
		(void)runner_sweep(uid);
		int e = util_rm_rf(dir);
		if (e < 0)
			log_warn("runner: cannot remove %s: %s", dir, strerror(-e));
	}
	pthread_mutex_unlock(&runner_setup_lock);
	if (have_res)
		launch_result_free(&res);
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	free(dir);
	free(copy);
	free(home);
	free(tmpd);
	free(python);
	free(venv);
	free(supervisor);
	free(settings);
	free(budget);
	return r;
}

/* ------------------------------------------------------------ warm runs */

/*
 * The slot's pristine copy of a project (owned by the slot's uid, read-only
 * in the sandbox): made once per slot and project, then every run of the
 * project on this slot mounts it under an overlay. Returns its path
 * (malloc'ed) or NULL. Keeps at most RUNNER_COPIES_PER_SLOT, dropping the
 * least recently used.
 */
static char *
runner_slot_copy(int slot, const char *digest, const char *project_dir)
{
	char *dir = xasprintf("%s/slot-%d/projects", runner.work_dir, slot);
	char *path = xasprintf("%s/%s", dir, digest), *tmp = NULL, hex[17];
	uid_t uid = runner_slot_uid(slot);
	DIR *d;
	struct dirent *de;
	int r, count = 0;
	char *oldest = NULL;
	struct timespec oldest_t = { 0, 0 };

	if (access(path, F_OK) == 0) {
		(void)utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
		free(dir);
		return path;
	}
	if (runner_slot_dirs(slot) < 0) {
		free(dir);
		free(path);
		return NULL;
	}
	util_random_hex(hex, 8);
	tmp = xasprintf("%s/.tmp-%s", dir, hex);
	r = util_copy_tree(project_dir, tmp, uid, (gid_t)uid);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		log_error("runner: cannot copy %s for slot %d: %s", project_dir, slot, strerror(-r));
		(void)util_rm_rf(tmp);
		free(tmp);
		free(dir);
		free(path);
		return NULL;
	}
	free(tmp);
	/* the least recently used copies go */
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct stat st;
			char *p;
			if (de->d_name[0] == '.')
				continue;
			p = xasprintf("%s/%s", dir, de->d_name);
			if (lstat(p, &st) == 0 && strcmp(p, path) != 0) {
				count++;
				if (oldest == NULL || st.st_mtim.tv_sec < oldest_t.tv_sec ||
				    (st.st_mtim.tv_sec == oldest_t.tv_sec &&
				     st.st_mtim.tv_nsec < oldest_t.tv_nsec)) {
					free(oldest);
					oldest = p;
					oldest_t = st.st_mtim;
					continue;
				}
			}
			free(p);
		}
		closedir(d);
	}
	if (count >= RUNNER_COPIES_PER_SLOT && oldest != NULL)
		(void)util_rm_rf(oldest);
	free(oldest);
	free(dir);
	return path;
}

/* Publish how many workers the slot keeps (read by GET /health's thread). */
static void
runner_slot_publish(struct runner_slot *rs)
{
	int n = 0;

	for (int i = 0; i < RUNNER_WORKERS_PER_SLOT; i++)
		n += rs->workers[i] != NULL;
	__atomic_store_n(&rs->nwarm, n, __ATOMIC_RELAXED);
}

static void
runner_slot_forget(struct runner_slot *rs, struct worker *w)
{
	for (int i = 0; i < RUNNER_WORKERS_PER_SLOT; i++)
		if (rs->workers[i] == w)
			rs->workers[i] = NULL;
	runner_slot_publish(rs);
}

/*
 * The slot's warm worker for an environment (python), started when there is
 * none: NULL when warm runs are not possible here (no sandbox, no user
 * namespaces inside it, or a start failed less than a minute ago), with the
 * reason logged once per failure.
 */
static struct worker *
runner_slot_worker(int slot, const char *python)
{
	struct runner_slot *rs = &runner_slots[slot];
	struct worker_spec ws;
	struct worker *w = NULL;
	struct sandbox_spec sb;
	const char *ro[8], *rw[6];
	char *venv = NULL, *env[12], *slot_dir, *projects, *rundir, *pdir, *wtmp, *script;
	char err[512];
	size_t ne = 0;
	int free_at = -1, lru = -1, r;
	uid_t uid = runner_slot_uid(slot);

	if (!runner.sandboxed || runner_aborted() || util_mono() < rs->cold_until)
		return NULL;
	for (int i = 0; i < RUNNER_WORKERS_PER_SLOT; i++) {
		struct worker *c = rs->workers[i];
		if (c == NULL) {
			free_at = free_at < 0 ? i : free_at;
			continue;
		}
		if (!worker_alive(c)) {
			worker_kill(c);
			rs->workers[i] = NULL;
			free_at = free_at < 0 ? i : free_at;
			continue;
		}
		if (strcmp(worker_key(c), python) == 0)
			return c;
		if (lru < 0 || worker_last_used(c) < worker_last_used(rs->workers[lru]))
			lru = i;
	}
	if (free_at < 0) {
		worker_stop(rs->workers[lru]);
		rs->workers[lru] = NULL;
		free_at = lru;
	}
	if (runner_slot_dirs(slot) < 0)
		return NULL;
	venv = runner_venv_of(python);
	slot_dir = xasprintf("%s/slot-%d", runner.work_dir, slot);
	projects = xasprintf("%s/projects", slot_dir);
	rundir = xasprintf("%s/run", slot_dir);
	pdir = xasprintf("%s/project", slot_dir);
	wtmp = xasprintf("%s/wtmp", slot_dir);
	script = xasprintf("%s/meshtest_worker.py", runner.lib_dir);

	if (venv != NULL)
		env[ne++] = xasprintf("PATH=%s/bin:/usr/local/bin:/usr/bin:/bin", venv);
	else
		env[ne++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	env[ne++] = xasprintf("HOME=%s", wtmp);
	env[ne++] = xasprintf("TMPDIR=%s", wtmp);
	env[ne++] = xstrdup("LANG=C.UTF-8");
	env[ne++] = xasprintf("PYTHONPATH=%s", runner.lib_dir);
	env[ne++] = xstrdup("PYTHONDONTWRITEBYTECODE=1");
	env[ne++] = xstrdup("PYTHONUNBUFFERED=1");   /* the std streams runs inherit */
	env[ne++] = xasprintf("MESHTEST_PROBE_DIR=%s/probe", rundir);
	if (venv != NULL)
		env[ne++] = xasprintf("VIRTUAL_ENV=%s", venv);
	env[ne] = NULL;

	struct runner_view view = {
		.ro = { runner.lib_dir, venv, runner.py_prefix, projects },
		.rw = { rundir, pdir },
	};
	runner_view_fill(&sb, ro, rw, &view, uid);
	sb.tmp_dir = wtmp;
	sb.chdir = "/";
	sb.as_pid1 = 1;     /* pid 1 of its namespace: no run can signal or stop it */
	memset(&ws, 0, sizeof(ws));
	ws.python = python;
	ws.script = script;
	ws.envp = (const char *const *)env;
	ws.uid = uid;
	ws.sandbox = &sb;
	ws.start_timeout = RUNNER_WORKER_START;
	ws.cancel = &runner_cancel;
	r = worker_start(&ws, python, &w, err, sizeof(err));
	if (r == 0 && !worker_has_ns(w)) {
		snprintf(err, sizeof(err), "runs cannot have their own namespaces here (%s)",
			 worker_why(w));
		worker_stop(w);
		w = NULL;
		r = -EPERM;
	}
	if (r < 0) {
		if (r != -ECANCELED)
			log_warn("runner: slot %d runs modules cold (one interpreter each) for "
				 "%g s: %s", slot, RUNNER_WARM_RETRY, err);
		rs->cold_until = util_mono() + RUNNER_WARM_RETRY;
		runner_slot_publish(rs);
	} else {
		rs->workers[free_at] = w;
		runner_slot_publish(rs);
		log_debug("runner: slot %d has a warm worker for %s%s", slot, python,
			  worker_has_overlay(w) ? "" : " (no overlays: a copy per run)");
	}
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	free(venv);
	free(slot_dir);
	free(projects);
	free(rundir);
	free(pdir);
	free(wtmp);
	free(script);
	return w;
}

void
runner_slot_idle(int slot)
{
	struct runner_slot *rs;
	double now = util_mono();

	if (runner_slots == NULL || slot < 0 || slot >= runner.slots)
		return;
	rs = &runner_slots[slot];
	for (int i = 0; i < RUNNER_WORKERS_PER_SLOT; i++) {
		struct worker *w = rs->workers[i];
		if (w != NULL && (!worker_alive(w) || now - worker_last_used(w) > RUNNER_WORKER_IDLE)) {
			worker_stop(w);
			rs->workers[i] = NULL;
		}
	}
	runner_slot_publish(rs);
}

void
runner_slot_close(int slot)
{
	struct runner_slot *rs;

	if (runner_slots == NULL || slot < 0 || slot >= runner.slots)
		return;
	rs = &runner_slots[slot];
	for (int i = 0; i < RUNNER_WORKERS_PER_SLOT; i++) {
		if (runner_aborted())
			worker_kill(rs->workers[i]);
		else
			worker_stop(rs->workers[i]);
		rs->workers[i] = NULL;
	}
	runner_slot_publish(rs);
}

int
runner_slot_warm_count(int slot)
{
	if (runner_slots == NULL || slot < 0 || slot >= runner.slots)
		return 0;
	return __atomic_load_n(&runner_slots[slot].nwarm, __ATOMIC_RELAXED);
}

static json_t *
runner_json_env(char **env)
{
	json_t *o = json_object();

	for (char **e = env; *e != NULL; e++) {
		char *eq = strchr(*e, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		json_object_set_new(o, *e, json_string(eq + 1));
		*eq = '=';
	}
	return o;
}

/* The message of a "worker_error" event in the stream (malloc'ed), or NULL. */
static char *
runner_worker_error(const char *stream, size_t len)
{
	for (size_t at = 0; stream != NULL && at < len;) {
		const char *nl = memchr(stream + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (stream + at)) : len - at;
		json_t *ev = json_loadb(stream + at, n, 0, NULL);
		const char *kind = json_string_value(json_object_get(ev, "ev"));
		if (kind != NULL && strcmp(kind, "worker_error") == 0) {
			const char *m = json_string_value(json_object_get(ev, "message"));
			char *msg = xstrdup(m ? m : "the worker could not prepare the run");
			json_decref(ev);
			return msg;
		}
		json_decref(ev);
		at += n + 1;
	}
	return NULL;
}

static void
runner_watch_line(void *ctx, const char *line, size_t len, double now)
{
	session_on_line(ctx, line, len, now);
}

static double
runner_watch_deadline(void *ctx, double now)
{
	return session_deadline(ctx, now);
}

/* stdout/stderr of a run into its result. */
static void
runner_attach_output(json_t *j, const struct buf *out, const struct buf *err)
{
	json_object_set_new(j, "stdout", report_json_text(out->data, out->len));
	json_object_set_new(j, "stderr", report_json_text(err->data, err->len));
	json_object_set_new(j, "stdout_dropped", json_integer((json_int_t)out->dropped));
	json_object_set_new(j, "stderr_dropped", json_integer((json_int_t)err->dropped));
}

/*
 * A new run's scratch folder in the slot (malloc'ed) and its environment and
 * sys.path as JSON for the worker (new references).
 */
static char *
runner_warm_env(int slot, const struct runner_batch *b, json_t **env_out, json_t **path_out)
{
	struct runner_slot *rs = &runner_slots[slot];
	char *cwd = xasprintf("%s/slot-%d/project", runner.work_dir, slot);
	char *scratch = xasprintf("%s/slot-%d/run/%u", runner.work_dir, slot, ++rs->seq);
	char *home = xasprintf("%s/home", scratch), *tmpd = xasprintf("%s/tmp", scratch);
	char *venv = runner_venv_of(b->python), *env[RUNNER_ENV_MAX + 1];
	size_t ne = runner_run_env(env, slot, venv, b->project_dir, cwd, home, tmpd);

	/* sys.path as `python -m pytest` builds it from that PYTHONPATH */
	*path_out = json_array();
	for (char **e = env; *e != NULL; e++) {
		if (!util_starts_with(*e, "PYTHONPATH="))
			continue;
		char *copy = xstrdup(*e + strlen("PYTHONPATH=")), *save = NULL;
		for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save))
			json_array_append_new(*path_out, json_string(t));
		free(copy);
	}
	*env_out = runner_json_env(env);
	for (size_t i = 0; i < ne; i++)
		free(env[i]);
	free(cwd);
	free(home);
	free(tmpd);
	free(venv);
	return scratch;
}

/* The request for a pytest process over mods[0..n), as meshtest_worker.py takes it. */
static json_t *
runner_warm_request(int slot, const struct runner_batch *b, const char *lower,
		    const char *const *mods, size_t n)
{
	char *cwd = xasprintf("%s/slot-%d/project", runner.work_dir, slot);
	char *rootdir = xasprintf("--rootdir=%s", cwd), *scratch;
	json_t *env, *path, *argv, *req;

	scratch = runner_warm_env(slot, b, &env, &path);
	argv = json_pack("[s, s, s, s, s, s, s]", "-p", "meshtest_plugin", "-p",
			 "no:cacheprovider", rootdir, "-q", "--color=no");
	if (n > 1)   /* one module's collection error stops no other */
		json_array_append_new(argv, json_string("--continue-on-collection-errors"));
	for (size_t i = 0; i < n; i++)
		json_array_append_new(argv, json_string(mods[i]));
	req = json_pack("{s:s, s:I, s:o, s:o, s:o, s:s, s:s, s:s, s:[s], s:b, s:b}",
			"op", "run", "id", (json_int_t)runner_slots[slot].seq, "argv", argv, "env",
			env, "path", path, "cwd", cwd, "lower", lower, "scratch", scratch,
			"keep", runner.data_dir, "services", setup_needed(b->project_dir),
			"fresh", 0);
	if (runner.py_prefix != NULL)
		json_array_append_new(json_object_get(req, "keep"), json_string(runner.py_prefix));
	free(scratch);
	free(rootdir);
	free(cwd);
	return req;
}

/*
 * Hand req (a pytest process over mods[0..n)) to the slot's worker *wp and
 * supervise it: per-module deadlines, then a result for each module that
 * counts from this run (all of them for one module; in a session those that
 * finished in it) into results[], the others left NULL. Returns 0,
 * -ECANCELED at shutdown, or -EAGAIN when the worker could not run it. A run
 * that timed out, crashed or left processes behind costs the worker (*wp
 * becomes NULL): the next run starts a fresh one.
 */
static int
runner_warm_supervise(int slot, struct worker **wp, const struct runner_batch *b,
		      json_t *req, const char *const *mods, size_t n, json_t **results)
{
	struct runner_slot *rs = &runner_slots[slot];
	struct worker *w = *wp;
	struct worker_result res;
	struct session *sess;
	struct worker_watch watch;
	char *cwd = xasprintf("%s/slot-%d/project", runner.work_dir, slot), *msg = NULL;
	int r, normal;

	sess = session_new(mods, n, b->timeout, util_mono());
	watch.ctx = sess;
	watch.on_line = runner_watch_line;
	watch.deadline = runner_watch_deadline;
	r = worker_run(w, req, &watch, runner.output_cap, RUNNER_REPORT_CAP, &res);
	if (res.cancelled || runner_aborted()) {
		r = -ECANCELED;
		goto out;
	}
	if (r < 0 || !res.started ||
	    (msg = runner_worker_error(res.report.data, res.report.len)) != NULL) {
		log_warn("runner: slot %d: the worker could not run %s: %s", slot, mods[0],
			 msg ? msg : res.error[0] ? res.error : strerror(-r));
		r = -EAGAIN;
		goto out;
	}
	normal = !res.timed_out && !res.worker_died && res.term_signal == 0 &&
		 (res.exit_code == 0 || res.exit_code == 1 || res.exit_code == 5);
	session_end(sess, normal, util_mono());
	if (n == 1) {
		struct report_exit ex = {
			.started = 1,
			.exit_code = res.exit_code,
			.term_signal = res.worker_died ? SIGKILL : res.term_signal,
			.timed_out = res.timed_out,
			.duration = res.duration,
			.timeout = b->timeout,
			.stderr_tail = res.err.data,
			.stdout_tail = res.out.data,
			.module = mods[0],
		};
		json_t *j = report_build(res.report.data, res.report.len, &ex);
		(void)setup_fix_result(j, res.report.data, res.report.len, res.err.data, cwd,
				       mods[0]);
		runner_attach_output(j, &res.out, &res.err);
		results[0] = j;
	} else {
		const char *first = NULL;
		for (size_t i = 0; i < n; i++) {
			size_t len;
			char *stream;
			json_t *j;
			if (!session_finished(sess, i))
				continue;
			stream = session_stream(sess, res.report.data, res.report.len, i, &len);
			struct report_exit ex = {
				.started = 1,
				.duration = session_duration(sess, i),
				.timeout = b->timeout,
				.module = mods[i],
			};
			j = report_build(stream, len, &ex);
			free(stream);
			/* the session's output once, with its first module */
			if (first == NULL) {
				first = mods[i];
				runner_attach_output(j, &res.out, &res.err);
			} else {
				json_object_set_new(j, "output_in", json_string(first));
			}
			json_object_set_new(j, "session", json_pack("{s:I, s:f}", "modules",
				(json_int_t)n, "wall", res.duration));
			results[i] = j;
		}
	}
	if (res.report.dropped > 0)
		log_warn("runner: report of %s cut at %u bytes", mods[0], RUNNER_REPORT_CAP);
out:
	if (worker_alive(w) && (res.term_signal != 0 || res.rss_kb > RUNNER_WORKER_RSS_KB ||
				r == -EAGAIN)) {
		runner_slot_forget(rs, w);
		worker_stop(w);
		*wp = NULL;
	} else if (!worker_alive(w)) {
		runner_slot_forget(rs, w);
		worker_kill(w);
		*wp = NULL;
	}
	worker_result_free(&res);
	session_free(sess);
	free(msg);
	free(cwd);
	return r;
}

/* One pytest process over mods[0..n) in the slot's worker (see runner_warm_supervise). */
static int
runner_warm_run(int slot, struct worker **wp, const struct runner_batch *b,
		const char *lower, const char *const *mods, size_t n, json_t **results)
{
	json_t *req = runner_warm_request(slot, b, lower, mods, n);
	int r = runner_warm_supervise(slot, wp, b, req, mods, n, results);

	json_decref(req);
	return r;
}

/* One module alone: warm when the slot has a worker, else cold. */
static int
runner_alone(int slot, const struct runner_batch *b, const char *lower, const char *module,
	     json_t **result)
{
	struct worker *w = lower != NULL ? runner_slot_worker(slot, b->python) : NULL;
	struct runner_module_req req;
	int r;

	*result = NULL;
	if (w != NULL) {
		const char *mods[1] = { module };
		r = runner_warm_run(slot, &w, b, lower, mods, 1, result);
		if (r != -EAGAIN)
			return r;
		runner_slots[slot].cold_until = util_mono() + RUNNER_WARM_RETRY;
	}
	memset(&req, 0, sizeof(req));
	req.project_dir = b->project_dir;
	req.module_path = module;
	req.python = b->python;
	req.timeout = b->timeout;
	req.slot = slot;
	return runner_run_module(&req, result);
}

static json_t *
runner_infra_result(const char *module, const char *msg)
{
	return json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:[{s:s, s:s, s:s, s:f, s:s, s:s}]}",
			 "outcome", "infra_error", "message", msg, "passed", 0, "failed", 1,
			 "skipped", 0, "errors", 1, "duration", 0.0, "tests", "nodeid", module,
			 "outcome", "error", "counted", "failed", "duration", 0.0, "phase",
			 "collect", "message", msg);
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
 * last run counts and the result keeps every run (setup_merge_runs).
 */
static int
runner_rerun(int slot, const struct runner_batch *b, const char *lower, const char *module,
	     int reruns, json_t **result)
{
	json_t *runs = json_array(), *cur = *result;
	int r = 0;

	json_array_append(runs, cur);
	for (int k = 0; k < reruns && setup_should_rerun(cur); k++) {
		json_t *again = NULL;
		log_info("runner: slot %d reruns %s (rerun %d of %d)", slot, module, k + 1, reruns);
		r = runner_alone(slot, b, lower, module, &again);
		if (r == -ECANCELED || runner_aborted()) {
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
	*result = setup_merge_runs(runs);
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
		if (r == -ECANCELED || runner_aborted()) {
			json_decref(j);
			return -ECANCELED;
		}
		if (r < 0 || j == NULL) {
			json_decref(j);
			j = runner_infra_result(module, "the runner failed on this node");
		}
		if (!runner_is_infra(j) || tries >= RUNNER_INFRA_TRIES)
			break;
		log_warn("runner: %s could not start (%s); trying again", module,
			 json_string_value(json_object_get(j, "message")));
		util_sleep(0.5);
	}
	*result = j;
	reruns = setup_project_reruns(b->project_dir);
	if (reruns > 0 && setup_should_rerun(j))
		return runner_rerun(slot, b, lower, module, reruns, result);
	return 0;
}

int
runner_run_batch(const struct runner_batch *b)
{
	json_t **results = NULL;
	char *lower = NULL;
	int r = 0, reruns;

	if (runner_aborted())
		return -ECANCELED;
	if (b->slot < 0 || b->slot >= runner.slots || runner.data_dir == NULL ||
	    b->python == NULL || b->project_dir == NULL || b->n == 0 || b->on_result == NULL)
		return -EINVAL;
	for (size_t i = 0; i < b->n; i++)
		if (!runner_module_ok(b->modules[i]))
			return -EINVAL;
	results = xcalloc(b->n, sizeof(*results));
	if (runner.sandboxed && b->digest != NULL)
		lower = runner_slot_copy(b->slot, b->digest, b->project_dir);
	if (lower != NULL && b->isolation == RUNNER_ISOLATION_PROJECT && b->n > 1) {
		struct worker *w = runner_slot_worker(b->slot, b->python);
		if (w != NULL) {
			r = runner_warm_run(b->slot, &w, b, lower, b->modules, b->n, results);
			if (r == -ECANCELED)
				goto out;
			if (r == -EAGAIN)
				runner_slots[b->slot].cold_until = util_mono() + RUNNER_WARM_RETRY;
			r = 0;
		}
		reruns = setup_project_reruns(b->project_dir);
		for (size_t i = 0; i < b->n; i++) {
			if (results[i] == NULL)
				continue;
			if (reruns > 0 && setup_should_rerun(results[i]) &&
			    (r = runner_rerun(b->slot, b, lower, b->modules[i], reruns,
					      &results[i])) < 0)
				goto out;
			b->on_result(b->ctx, i, results[i]);
		}
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
	free(lower);
	return r;
}
