/*
 * sandbox.h - bubblewrap around submitted code: the bwrap command line for a
 * run (a pure function), the probe that decides whether bwrap works on this
 * host, and the node-wide sandbox mode.
 *
 * The caller (launch_run) drops to the slot's uid first and then execs bwrap
 * as that uid, so bwrap makes an unprivileged user namespace and never holds
 * root's powers.
 */
#ifndef MESHTEST_SANDBOX_H
#define MESHTEST_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

enum sandbox_mode { SANDBOX_AUTO = 0, SANDBOX_BWRAP = 1, SANDBOX_NONE = 2 };

/* "auto", "bwrap", "none" -> the mode; -1 for any other name (or NULL). */
int sandbox_mode_parse(const char *name);
const char *sandbox_mode_name(enum sandbox_mode mode);

#define SANDBOX_SYS_MAX 16
#define SANDBOX_LINK_MAX 256

/* One top-level entry of the host's system: a folder or a symbolic link. */
struct sandbox_sys_entry {
	const char *path;              /* absolute, static, e.g. "/usr", "/bin" */
	char link[SANDBOX_LINK_MAX];   /* link target ("usr/bin"), "" for a folder */
};

struct sandbox_spec {
	const char *bwrap;                     /* full path of bwrap */
	uid_t uid;                             /* uid and gid inside (same as outside) */
	gid_t gid;
	const struct sandbox_sys_entry *sys;   /* read-only system view, in order */
	size_t nsys;
	const char *const *ro_paths;           /* bound read-only at their own path; NULL-terminated or NULL */
	const char *const *rw_paths;           /* bound read-write at their own path; NULL-terminated or NULL */
	const char *tmp_dir;                   /* bound read-write at /tmp; NULL: an empty tmpfs */
	const char *chdir;                     /* NULL: "/" */
	int share_net;                         /* 1: keep the host's network (package installs only) */
	int as_pid1;                           /* 1: the command itself is pid 1 of the sandbox (a
						* warm worker: its children cannot signal it) */
};

/*
 * The full command line: spec->bwrap, its options, "--", then every word of
 * cmd. *out is a NULL-terminated vector (free with sandbox_argv_free).
 * -EINVAL when bwrap, cmd or a path is missing or not absolute, -E2BIG past
 * 256 words. Pure: no I/O.
 */
int sandbox_argv(const struct sandbox_spec *spec, const char *const *cmd, char ***out);
void sandbox_argv_free(char **argv);

/*
 * The host's system view for the sandbox: /usr and /etc as folders and each
 * of /bin, /sbin, /lib, /lib32, /lib64, /libx32 as what it is (a merged-/usr
 * link, a folder, or absent). Returns how many entries were written (at
 * most max).
 */
size_t sandbox_sys_detect(struct sandbox_sys_entry *out, size_t max);

/*
 * Judge the probe's output: the probe runs `cat /proc/self/status` in the
 * sandbox. 0 when it ran as uid with no effective capabilities; otherwise
 * -EPERM with a one-line reason in why (bwrap's own message when there is
 * one, e.g. "bwrap: setting up uid map: Permission denied"). Pure.
 */
int sandbox_probe_parse(int started, const char *start_error, int exit_code,
			int term_signal, const char *out, const char *err, uid_t uid,
			char *why, size_t whylen);

/*
 * Run bwrap once as uid ((uid_t)-1: as ourselves; else dropping to it first,
 * as every run does) with the
 * detected system view and judge it with sandbox_probe_parse. 0 when the
 * sandbox works; -EPERM (or another negative errno) with why set otherwise.
 */
int sandbox_probe(const char *bwrap, uid_t uid, char *why, size_t whylen);

#endif
