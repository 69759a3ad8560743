/*
 * sandbox.c - the bubblewrap command line for one run of submitted code, and
 * the start-up probe that tells whether bubblewrap works on this host.
 *
 * What a sandboxed run sees: its own user, pid, ipc, uts, cgroup and network
 * namespaces (a private loopback only, unless share_net for package installs),
 * no capabilities, a read-only /usr and /etc (and the merged-/usr links), a
 * fresh /proc and /dev, a private /tmp, the paths the caller lists (the
 * project copy read-write; the environment and the plugin read-only), a
 * read-only root, and nothing else of the host: no data folder, no other
 * project or evaluation. (A listed path under /tmp gets its mount point made
 * inside the private /tmp, which is the run's own scratch space anyway.)
 *
 * sandbox_argv and sandbox_probe_parse are pure; sandbox_sys_detect reads
 * the root folder; sandbox_probe runs bwrap through launch_run. All may be
 * called from any thread.
 */
#include "runner/sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "runner/launch.h"

#define SANDBOX_ARGV_MAX 256
#define SANDBOX_PROBE_TIMEOUT 20.0

int
sandbox_mode_parse(const char *name)
{
	if (name == NULL)
		return -1;
	if (strcmp(name, "auto") == 0)
		return SANDBOX_AUTO;
	if (strcmp(name, "bwrap") == 0)
		return SANDBOX_BWRAP;
	if (strcmp(name, "none") == 0)
		return SANDBOX_NONE;
	return -1;
}

const char *
sandbox_mode_name(enum sandbox_mode mode)
{
	switch (mode) {
	case SANDBOX_AUTO: return "auto";
	case SANDBOX_BWRAP: return "bwrap";
	case SANDBOX_NONE: return "none";
	}
	return "none";
}

struct sandbox_words {
	char **v;
	size_t n;
	int err;
};

static void
sandbox_add(struct sandbox_words *w, const char *word)
{
	if (w->err != 0)
		return;
	if (word == NULL) {
		w->err = -EINVAL;
		return;
	}
	if (w->n + 1 >= SANDBOX_ARGV_MAX) {
		w->err = -E2BIG;
		return;
	}
	w->v[w->n++] = xstrdup(word);
	w->v[w->n] = NULL;
}

static void
sandbox_add_path(struct sandbox_words *w, const char *opt, const char *src, const char *dst)
{
	if (src == NULL || dst == NULL || src[0] != '/' || dst[0] != '/') {
		if (w->err == 0)
			w->err = -EINVAL;
		return;
	}
	sandbox_add(w, opt);
	sandbox_add(w, src);
	sandbox_add(w, dst);
}

void
sandbox_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **p = argv; *p != NULL; p++)
		free(*p);
	free(argv);
}

int
sandbox_argv(const struct sandbox_spec *spec, const char *const *cmd, char ***out)
{
	struct sandbox_words w = { NULL, 0, 0 };
	char num[32];

	*out = NULL;
	if (spec == NULL || spec->bwrap == NULL || spec->bwrap[0] != '/' ||
	    cmd == NULL || cmd[0] == NULL)
		return -EINVAL;
	w.v = xcalloc(SANDBOX_ARGV_MAX, sizeof(*w.v));

	sandbox_add(&w, spec->bwrap);
	sandbox_add(&w, "--unshare-user");
	sandbox_add(&w, "--unshare-ipc");
	sandbox_add(&w, "--unshare-pid");
	if (spec->as_pid1)
		sandbox_add(&w, "--as-pid-1");
	if (!spec->share_net)
		sandbox_add(&w, "--unshare-net");
	sandbox_add(&w, "--unshare-uts");
	sandbox_add(&w, "--unshare-cgroup-try");
	sandbox_add(&w, "--die-with-parent");
	sandbox_add(&w, "--new-session");
	sandbox_add(&w, "--cap-drop");
	sandbox_add(&w, "ALL");
	snprintf(num, sizeof(num), "%lu", (unsigned long)spec->uid);
	sandbox_add(&w, "--uid");
	sandbox_add(&w, num);
	snprintf(num, sizeof(num), "%lu", (unsigned long)spec->gid);
	sandbox_add(&w, "--gid");
	sandbox_add(&w, num);

	for (size_t i = 0; i < spec->nsys; i++) {
		const struct sandbox_sys_entry *e = &spec->sys[i];
		if (e->path == NULL || e->path[0] != '/') {
			w.err = -EINVAL;
			break;
		}
		if (e->link[0] != '\0') {
			sandbox_add(&w, "--symlink");
			sandbox_add(&w, e->link);
			sandbox_add(&w, e->path);
		} else {
			sandbox_add_path(&w, "--ro-bind", e->path, e->path);
		}
	}
	sandbox_add(&w, "--proc");
	sandbox_add(&w, "/proc");
	sandbox_add(&w, "--dev");
	sandbox_add(&w, "/dev");
	/* /tmp before the listed paths, which may lie under the host's /tmp */
	if (spec->tmp_dir != NULL) {
		sandbox_add_path(&w, "--bind", spec->tmp_dir, "/tmp");
	} else {
		sandbox_add(&w, "--tmpfs");
		sandbox_add(&w, "/tmp");
	}
	/* read-only first, so a writable path inside a read-only one stays writable */
	for (const char *const *p = spec->ro_paths; p != NULL && *p != NULL; p++)
		sandbox_add_path(&w, "--ro-bind", *p, *p);
	for (const char *const *p = spec->rw_paths; p != NULL && *p != NULL; p++)
		sandbox_add_path(&w, "--bind", *p, *p);
	/* the skeleton bwrap made for the mount points is no one's scratch space */
	sandbox_add(&w, "--remount-ro");
	sandbox_add(&w, "/");
	if (spec->chdir != NULL && spec->chdir[0] != '/')
		w.err = w.err ? w.err : -EINVAL;
	sandbox_add(&w, "--chdir");
	sandbox_add(&w, spec->chdir != NULL ? spec->chdir : "/");
	sandbox_add(&w, "--");
	for (const char *const *p = cmd; *p != NULL; p++)
		sandbox_add(&w, *p);

	if (w.err != 0) {
		int r = w.err;
		sandbox_argv_free(w.v);
		return r;
	}
	*out = w.v;
	return 0;
}

size_t
sandbox_sys_detect(struct sandbox_sys_entry *out, size_t max)
{
	static const char *const dirs[] = { "/usr", "/etc" };
	static const char *const maybe[] = { "/bin", "/sbin", "/lib", "/lib32", "/lib64",
					     "/libx32" };
	size_t n = 0;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && n < max; i++)
		out[n++] = (struct sandbox_sys_entry){ .path = dirs[i] };
	for (size_t i = 0; i < sizeof(maybe) / sizeof(maybe[0]) && n < max; i++) {
		struct stat st;
		if (lstat(maybe[i], &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t l = readlink(maybe[i], out[n].link, SANDBOX_LINK_MAX - 1);
			if (l <= 0)
				continue;
			out[n].link[l] = '\0';
			out[n++].path = maybe[i];
		} else if (S_ISDIR(st.st_mode)) {
			out[n++] = (struct sandbox_sys_entry){ .path = maybe[i] };
		}
	}
	return n;
}

/* The last non-empty line of text into why, control characters as spaces. */
static int
sandbox_last_line(const char *text, char *why, size_t whylen)
{
	size_t end, start;

	if (text == NULL)
		return 0;
	end = strlen(text);
	while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' ||
			   text[end - 1] == ' ' || text[end - 1] == '\t'))
		end--;
	start = end;
	while (start > 0 && text[start - 1] != '\n')
		start--;
	if (end == start)
		return 0;
	snprintf(why, whylen, "%.*s", (int)(end - start), text + start);
	for (char *p = why; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return 1;
}

int
sandbox_probe_parse(int started, const char *start_error, int exit_code, int term_signal,
		    const char *out, const char *err, uid_t uid, char *why, size_t whylen)
{
	char want[64];
	const char *capeff;

	if (!started) {
		snprintf(why, whylen, "%s", start_error && *start_error ? start_error
			 : "bwrap could not start");
		return -EPERM;
	}
	if (term_signal != 0 || exit_code != 0) {
		if (!sandbox_last_line(err, why, whylen)) {
			if (term_signal != 0)
				snprintf(why, whylen, "bwrap killed by signal %d", term_signal);
			else
				snprintf(why, whylen, "bwrap exited with status %d", exit_code);
		}
		return -EPERM;
	}
	snprintf(want, sizeof(want), "\nUid:\t%lu\t", (unsigned long)uid);
	capeff = out != NULL ? strstr(out, "\nCapEff:\t") : NULL;
	if (out == NULL || strstr(out, want) == NULL) {
		snprintf(why, whylen, "the sandbox does not run as uid %lu", (unsigned long)uid);
		return -EPERM;
	}
	if (capeff == NULL || strncmp(capeff + 9, "0000000000000000\n", 17) != 0) {
		snprintf(why, whylen, "the sandbox keeps capabilities");
		return -EPERM;
	}
	return 0;
}

int
sandbox_probe(const char *bwrap, uid_t uid, char *why, size_t whylen)
{
	static const char *const envp[] = { "PATH=/usr/bin:/bin", "LANG=C.UTF-8", NULL };
	const char *cmd[] = { "/bin/cat", "/proc/self/status", NULL };
	struct sandbox_sys_entry sys[SANDBOX_SYS_MAX];
	struct sandbox_spec sb;
	struct launch_spec spec;
	struct launch_result res;
	uid_t in = uid == (uid_t)-1 ? getuid() : uid; /* (uid_t)-1: as ourselves */
	int r;

	if (access(bwrap, X_OK) < 0) {
		r = -errno;
		snprintf(why, whylen, "cannot execute %s: %s", bwrap, strerror(-r));
		return r;
	}
	memset(&sb, 0, sizeof(sb));
	sb.bwrap = bwrap;
	sb.uid = in;
	sb.gid = uid == (uid_t)-1 ? getgid() : (gid_t)uid;
	sb.sys = sys;
	sb.nsys = sandbox_sys_detect(sys, SANDBOX_SYS_MAX);
	memset(&spec, 0, sizeof(spec));
	spec.argv = cmd;
	spec.envp = envp;
	spec.cwd = "/";
	spec.uid = uid;
	spec.gid = (gid_t)uid;
	spec.timeout = SANDBOX_PROBE_TIMEOUT;
	spec.out_cap = 65536;
	spec.sandbox = &sb;
	launch_limits_default(&spec.lim);
	r = launch_run(&spec, &res);
	if (r == 0)
		r = sandbox_probe_parse(res.started, res.start_error, res.exit_code,
					res.term_signal, res.out.data, res.err.data, in,
					why, whylen);
	else
		snprintf(why, whylen, "cannot run bwrap: %s", strerror(-r));
	launch_result_free(&res);
	(void)launch_kill_uid(uid);
	return r;
}
