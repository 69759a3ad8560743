/*
 * fetch_git.c - clone a repository with git(1) (see fetch_git.h).
 *
 * What it guards against: URLs that git would read as options or as a
 * command ("-u...", "ext::sh -c ..."), local files read through file:// or
 * plain paths, the node's own git configuration and credential helpers
 * (HOME is an empty temp folder, GIT_CONFIG_NOSYSTEM), prompts that would
 * hang (GIT_TERMINAL_PROMPT=0, ssh BatchMode), clones that never end or
 * fill the disk (process-group kill on a deadline and a size limit checked
 * every 200 ms), and token leaks: the token only travels as an
 * http.extraHeader set through GIT_CONFIG_* environment variables of the
 * child, and is scrubbed from every message we return.
 *
 * Owns no global state. fetch_git_clone blocks the calling thread for the
 * whole clone; git starts through posix_spawn (no code of ours runs in the
 * child), so any thread may call it.
 */
#include "fetch/fetch_git.h"

#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FETCH_GIT_OUT_MAX 16384
#define FETCH_GIT_TOKEN_MAX 4096
#define FETCH_GIT_POLL_MS 200
#define FETCH_GIT_DU_DEPTH 256
#define FETCH_GIT_LINE_MAX 300

#define FETCH_GIT_SSH "ssh -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile=/dev/null " \
	"-o StrictHostKeyChecking=accept-new -F /dev/null"

void
fetch_git_opts_default(struct fetch_git_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout = 300;
	o->max_bytes = (uint64_t)1 << 30;
}

/* ---- URL checks ---------------------------------------------------------- */

static int
fetch_git_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '.' || c == '-' || c == '_';
}

/*
 * Check the host [start, end) and copy it to host. Accepts names, IPv4 and
 * bracketed IPv6 literals; never a host starting with '-' (an ssh option).
 */
static int
fetch_git_take_host(const char *start, const char *end, char *host, size_t hostlen)
{
	size_t len = (size_t)(end - start);

	if (len == 0 || len >= hostlen || start[0] == '-')
		return -EINVAL;
	if (start[0] == '[') {
		if (end[-1] != ']' || len < 3)
			return -EINVAL;
		for (const char *p = start + 1; p < end - 1; p++)
			if (!(fetch_git_host_char(*p) || *p == ':'))
				return -EINVAL;
	} else {
		for (const char *p = start; p < end; p++)
			if (!fetch_git_host_char(*p))
				return -EINVAL;
	}
	memcpy(host, start, len);
	host[len] = '\0';
	return 0;
}

static int
fetch_git_host_allowed(const char *host, const struct fetch_git_opts *o)
{
	if (o == NULL || o->allowed_hosts == NULL)
		return 1;
	for (const char *const *h = o->allowed_hosts; *h; h++)
		if (strcasecmp(*h, host) == 0)
			return 1;
	return 0;
}

char *
fetch_git_split_credentials(const char *url, char **user, char **pass)
{
	const char *scheme = strstr(url, "://"), *host, *at, *slash, *colon;

	if (user != NULL)
		*user = NULL;
	if (pass != NULL)
		*pass = NULL;
	if (scheme == NULL)
		return xstrdup(url);
	host = scheme + 3;
	slash = strchr(host, '/');
	at = strchr(host, '@');
	if (at == NULL || (slash != NULL && at > slash))
		return xstrdup(url);
	colon = memchr(host, ':', (size_t)(at - host));
	if (user != NULL)
		*user = xasprintf("%.*s", (int)((colon ? colon : at) - host), host);
	if (pass != NULL && colon != NULL)
		*pass = xasprintf("%.*s", (int)(at - colon - 1), colon + 1);
	return xasprintf("%.*s%s", (int)(host - url), url, at + 1);
}

int
fetch_git_check_url(const char *url, const struct fetch_git_opts *o, char *err, size_t errlen)
{
	static const char *const schemes[] = { "https://", "http://", "git://", "ssh://" };
	int allow_file = o != NULL && o->allow_file_urls;
	char host[256];
	const char *p, *colon, *slash;
	size_t len;

	if (url == NULL || url[0] == '\0') {
		util_seterr(err, errlen, "empty repository URL");
		return -EINVAL;
	}
	len = strlen(url);
	if (len > FETCH_GIT_MAX_URL) {
		util_seterr(err, errlen, "repository URL is too long (over %d characters)",
		    FETCH_GIT_MAX_URL);
		return -EINVAL;
	}
	if (url[0] == '-') {
		util_seterr(err, errlen, "repository URL must not start with '-'");
		return -EINVAL;
	}
	for (p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c == 0x7f) {
			util_seterr(err, errlen, "repository URL contains whitespace or control "
			    "characters");
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		const char *auth, *aend, *at, *hend;
		size_t sl = strlen(schemes[i]);

		if (strncasecmp(url, schemes[i], sl) != 0)
			continue;
		auth = url + sl;
		aend = auth + strcspn(auth, "/?#");
		at = NULL;
		for (const char *q = auth; q < aend; q++)
			if (*q == '@')
				at = q;
		if (at != NULL) {
			if (auth[0] == '-') {
				util_seterr(err, errlen, "repository URL has an invalid user name");
				return -EINVAL;
			}
			auth = at + 1;
		}
		if (auth[0] == '[') {
			hend = memchr(auth, ']', (size_t)(aend - auth));
			hend = hend ? hend + 1 : aend;
		} else {
			hend = memchr(auth, ':', (size_t)(aend - auth));
			if (hend == NULL)
				hend = aend;
		}
		if (fetch_git_take_host(auth, hend, host, sizeof(host)) < 0) {
			util_seterr(err, errlen, "repository URL has an invalid host");
			return -EINVAL;
		}
		goto check_host;
	}
	if (strncasecmp(url, "file://", 7) == 0 || url[0] == '/' || url[0] == '.') {
		if (!allow_file) {
			util_seterr(err, errlen, "local repositories (file:// URLs and paths) "
			    "are not allowed");
			return -EINVAL;
		}
		return 0;
	}
	if (strstr(url, "::") != NULL || strstr(url, "://") != NULL) {
		util_seterr(err, errlen, "unsupported repository URL scheme: use https://, "
		    "http://, git://, ssh:// or user@host:path");
		return -EINVAL;
	}
	/* scp-like [user@]host:path: a colon before any slash. */
	colon = strchr(url, ':');
	slash = strchr(url, '/');
	if (colon != NULL && (slash == NULL || colon < slash) && colon[1] != '\0') {
		const char *start = url, *at = memchr(url, '@', (size_t)(colon - url));

		if (at != NULL)
			start = at + 1;
		if (fetch_git_take_host(start, colon, host, sizeof(host)) < 0) {
			util_seterr(err, errlen, "repository URL has an invalid host");
			return -EINVAL;
		}
		goto check_host;
	}
	if (allow_file)
		return 0; /* a relative local path */
	util_seterr(err, errlen, "unsupported repository URL: use https://, http://, "
	    "git://, ssh:// or user@host:path");
	return -EINVAL;
check_host:
	if (!fetch_git_host_allowed(host, o)) {
		util_seterr(err, errlen, "repository host %s is not allowed on this node", host);
		return -EINVAL;
	}
	return 0;
}

/* ---- output handling ----------------------------------------------------- */

struct fetch_git_out {
	char data[FETCH_GIT_OUT_MAX + 1]; /* the last bytes git wrote */
	size_t len;
};

static void
fetch_git_out_add(struct fetch_git_out *o, const char *p, size_t n)
{
	if (n >= FETCH_GIT_OUT_MAX) {
		memcpy(o->data, p + n - FETCH_GIT_OUT_MAX, FETCH_GIT_OUT_MAX);
		o->len = FETCH_GIT_OUT_MAX;
	} else {
		if (o->len + n > FETCH_GIT_OUT_MAX) {
			size_t drop = o->len + n - FETCH_GIT_OUT_MAX;
			memmove(o->data, o->data + drop, o->len - drop);
			o->len -= drop;
		}
		memcpy(o->data + o->len, p, n);
		o->len += n;
	}
	o->data[o->len] = '\0';
}

/* Replace every occurrence of needle in s (capacity cap) with "***". */
static void
fetch_git_scrub(char *s, size_t cap, const char *needle)
{
	size_t nl;
	char *hit;

	if (needle == NULL || (nl = strlen(needle)) == 0)
		return;
	while ((hit = strstr(s, needle)) != NULL) {
		size_t tail = strlen(hit + nl);
		size_t pos = (size_t)(hit - s);

		if (pos + 3 + tail + 1 > cap)
			tail = cap > pos + 4 ? cap - pos - 4 : 0;
		memmove(hit + 3, hit + nl, tail);
		memcpy(hit, "***", 3);
		hit[3 + tail] = '\0';
	}
}

/*
 * The line of git's output that says what went wrong: the first "fatal:"
 * line (later ones are generic, e.g. "Could not read from remote
 * repository"), else the last non-empty line (after the last '\r' of it, as
 * progress lines are redrawn). Printable and capped.
 */
static void
fetch_git_last_line(const char *s, char *out, size_t outlen)
{
	const char *start = NULL, *end, *fatal = strstr(s, "fatal:");
	size_t o = 0;

	while (fatal != NULL && fatal != s && fatal[-1] != '\n' && fatal[-1] != '\r')
		fatal = strstr(fatal + 1, "fatal:");
	if (fatal != NULL) {
		start = fatal;
		end = start + strcspn(start, "\r\n");
	} else {
		end = s + strlen(s);
		while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
			end--;
		start = end;
		while (start > s && start[-1] != '\n' && start[-1] != '\r')
			start--;
	}
	for (const char *p = start; p < end && o + 1 < outlen && o < FETCH_GIT_LINE_MAX; p++) {
		unsigned char c = (unsigned char)*p;
		out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	out[o] = '\0';
}

/* A short reason for a failed clone from git's output, or NULL. */
static const char *
fetch_git_classify(const char *s)
{
	static const struct { const char *needle; const char *reason; } rules[] = {
		{ "authentication failed", "authentication failed (check the access token)" },
		{ "invalid username or password", "authentication failed (check the access token)" },
		{ "could not read username", "authentication failed (check the access token)" },
		{ "could not read password", "authentication failed (check the access token)" },
		{ "returned error: 401", "authentication failed (check the access token)" },
		{ "returned error: 403", "authentication failed (check the access token)" },
		{ "permission denied (publickey", "ssh authentication failed (this node has no "
		  "key for the repository: use an https URL and an access token)" },
		{ "repository not found", "repository not found" },
		{ "does not appear to be a git repository", "repository not found" },
		{ "returned error: 404", "repository not found" },
		{ "not found", "repository not found" },
		{ "could not resolve host", "could not resolve the repository host" },
		{ "name or service not known", "could not resolve the repository host" },
		{ "connection refused", "could not connect to the repository host" },
		{ "failed to connect", "could not connect to the repository host" },
		{ "connection timed out", "could not connect to the repository host" },
		{ "network is unreachable", "could not connect to the repository host" },
		{ "remote branch", "the requested branch does not exist" },
	};

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (strcasestr(s, rules[i].needle) != NULL)
			return rules[i].reason;
	return NULL;
}

/* ---- size walk ----------------------------------------------------------- */

/* Add the apparent size of everything under the folder open at dfd (consumed). */
static void
fetch_git_du_dir(int dfd, uint64_t *total, uint64_t stop, int depth)
{
	struct dirent *de;
	DIR *d = fdopendir(dfd);

	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL && *total <= stop) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		*total += st.st_size > 0 ? (uint64_t)st.st_size : 0;
		if (S_ISDIR(st.st_mode) && depth < FETCH_GIT_DU_DEPTH) {
			int cfd = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd >= 0)
				fetch_git_du_dir(cfd, total, stop, depth + 1);
		}
	}
	closedir(d);
}

/* Bytes under path, stopping early once past stop. */
static uint64_t
fetch_git_du(const char *path, uint64_t stop)
{
	uint64_t total = 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0)
		fetch_git_du_dir(fd, &total, stop, 0);
	return total;
}

/* ---- clone --------------------------------------------------------------- */

/* "Authorization: Basic base64(<user>:<token>)"; *b64 gets the base64 part. */
static char *
fetch_git_auth_header(const char *user, const char *token, char **b64)
{
	char *plain = xasprintf("%s:%s", user != NULL ? user : "x-access-token", token);
	size_t pl = strlen(plain);
	unsigned char *enc = xmalloc(4 * ((pl + 2) / 3) + 1);
	char *hdr;

	EVP_EncodeBlock(enc, (const unsigned char *)plain, (int)pl);
	hdr = xasprintf("Authorization: Basic %s", (char *)enc);
	OPENSSL_cleanse(plain, pl);
	free(plain);
	*b64 = (char *)enc;
	return hdr;
}

static void
fetch_git_free_secret(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* The password of an URL's userinfo ("https://user:pass@host/..."), or NULL. */
static char *
fetch_git_url_password(const char *url)
{
	const char *auth = strstr(url, "://"), *aend, *at = NULL, *colon;

	if (auth == NULL)
		return NULL;
	auth += 3;
	aend = auth + strcspn(auth, "/?#");
	for (const char *q = auth; q < aend; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
		return NULL;
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon == NULL || colon + 1 >= at)
		return NULL;
	return xasprintf("%.*s", (int)(at - colon - 1), colon + 1);
}

/* One git command of a clone, run to its end under the clone's limits. */
struct fetch_git_step {
	char **envp;             /* the child's environment */
	const char *dest;        /* the clone folder: its size is capped while git runs */
	uint64_t max;
	double deadline;         /* util_mono() by which every step is done */
	double timeout;          /* for the message */
	struct fetch_git_out *out;  /* what the step wrote (stdout and stderr), last bytes */
};

/*
 * Run argv (git ...) in cwd (NULL: ours) in its own process group, stdin
 * /dev/null, output into st->out (emptied first). 0 when it ran to its end
 * with *status its wait status; -ETIMEDOUT or -EFBIG with err (the group is
 * killed); another negative errno when it could not start.
 */
static int
fetch_git_exec(struct fetch_git_step *st, char *const *argv, const char *cwd, int *status,
	       char *err, size_t errlen)
{
	int pfd[2] = { -1, -1 }, rc = 0, exited = 0, pidfd;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	double next_du;
	pid_t pid;

	*status = 0;
	st->out->len = 0;
	st->out->data[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rc = -errno;
		util_seterr(err, errlen, "cannot start git: %s", strerror(errno));
		return rc;
	}
	/*
	 * posix_spawn, not fork: the child shares the node's memory until it
	 * runs git, instead of a copy of its page tables for every step.
	 */
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	if (cwd != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, cwd);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setpgroup(&attr, 0);     /* its own group, to kill whole */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&pid, "git", &fa, &attr, argv, st->envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		util_seterr(err, errlen, "cannot start git: %s", strerror(rc));
		close(pfd[0]);
		close(pfd[1]);
		return -rc;
	}
	close(pfd[1]);
	pfd[1] = -1;
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	/*
	 * Its exit wakes the poll (a step ends when it ends, not at the next
	 * tick: a clone is three steps); without pidfds, every tick looks.
	 */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	next_du = util_mono() + FETCH_GIT_POLL_MS / 1000.0;
	for (;;) {
		struct pollfd pl[2];
		nfds_t npl = 0;
		siginfo_t si;
		double now;

		if (pfd[0] >= 0)
			pl[npl++] = (struct pollfd){ pfd[0], POLLIN, 0 };
		if (pidfd >= 0)
			pl[npl++] = (struct pollfd){ pidfd, POLLIN, 0 };
		if (npl > 0) {
			if (poll(pl, npl, FETCH_GIT_POLL_MS) > 0 && pfd[0] >= 0 &&
			    pl[0].revents != 0) {
				char tmp[4096];
				ssize_t n;

				while ((n = read(pfd[0], tmp, sizeof(tmp))) > 0)
					fetch_git_out_add(st->out, tmp, (size_t)n);
				if (n == 0) {
					close(pfd[0]);
					pfd[0] = -1;
				}
			}
		} else {
			util_sleep(FETCH_GIT_POLL_MS / 1000.0);
		}
		/* Look at the exit without reaping, so the group id stays ours to kill. */
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid) {
			exited = 1;
			break;
		}
		now = util_mono();
		if (now >= st->deadline) {
			util_seterr(err, errlen, "git clone failed: timed out after %g seconds",
			    st->timeout);
			rc = -ETIMEDOUT;
			break;
		}
		if (now >= next_du) {
			if (fetch_git_du(st->dest, st->max) > st->max) {
				util_seterr(err, errlen, "git clone failed: the repository is larger "
				    "than %llu bytes", (unsigned long long)st->max);
				rc = -EFBIG;
				break;
			}
			next_du = util_mono() + FETCH_GIT_POLL_MS / 1000.0;
		}
	}
	kill(-pid, SIGKILL); /* whatever is left of the group (helpers, ssh) */
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	if (pidfd >= 0)
		close(pidfd);
	if (pfd[0] >= 0) {
		char tmp[4096];
		ssize_t n;

		while ((n = read(pfd[0], tmp, sizeof(tmp))) > 0)
			fetch_git_out_add(st->out, tmp, (size_t)n);
		close(pfd[0]);
	}
	if (rc == 0 && !exited)
		rc = -EIO;
	return rc;
}

/* 1 when the wait status is a clean exit 0. */
static int
fetch_git_ok(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The commit git printed (the last line, 40 or 64 hex digits) into commit; 0 or -ENOENT. */
static int
fetch_git_commit_of(const struct fetch_git_out *out, char commit[FETCH_GIT_COMMIT_LEN])
{
	char line[FETCH_GIT_LINE_MAX + 1];
	size_t n;

	fetch_git_last_line(out->data, line, sizeof(line));
	n = strlen(line);
	if ((n != 40 && n != 64) || strspn(line, "0123456789abcdef") != n)
		return -ENOENT;
	memcpy(commit, line, n + 1);
	return 0;
}

/*
 * After the clone: the commit to grade. Without a deadline, HEAD; with one,
 * the last commit of the branch whose committer date is at or before it,
 * checked out. 0, or -ENOENT / -EIO with err.
 */
static int
fetch_git_pick_commit(struct fetch_git_step *st, const char *dest, double before,
		      char commit[FETCH_GIT_COMMIT_LEN], char *err, size_t errlen)
{
	char when[64], *arg = NULL;
	int status, rc;

	if (before <= 0) {
		char *const head[] = { "git", "rev-parse", "HEAD", NULL };
		rc = fetch_git_exec(st, head, dest, &status, err, errlen);
		if (rc == 0 && (!fetch_git_ok(status) || fetch_git_commit_of(st->out, commit) < 0)) {
			util_seterr(err, errlen, "cannot read the cloned commit");
			rc = -EIO;
		}
		return rc;
	}
	{
		time_t t = (time_t)before;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S +0000", &tm);
	}
	arg = xasprintf("--before=%s", when);
	{
		char *const list[] = { "git", "rev-list", "-1", arg, "HEAD", NULL };
		rc = fetch_git_exec(st, list, dest, &status, err, errlen);
	}
	free(arg);
	if (rc < 0)
		return rc;
	if (!fetch_git_ok(status)) {
		util_seterr(err, errlen, "cannot read the repository's history");
		return -EIO;
	}
	if (fetch_git_commit_of(st->out, commit) < 0) {
		when[19] = '\0';
		when[10] = 'T';
		util_seterr(err, errlen, "no commit at or before the deadline %sZ", when);
		return -ENOENT;
	}
	{
		char *const co[] = { "git", "-c", "advice.detachedHead=false", "checkout", "-q",
				     "--detach", commit, NULL };
		rc = fetch_git_exec(st, co, dest, &status, err, errlen);
	}
	if (rc == 0 && !fetch_git_ok(status)) {
		char line[FETCH_GIT_LINE_MAX + 1];
		fetch_git_last_line(st->out->data, line, sizeof(line));
		util_seterr(err, errlen, "cannot check out %.12s: %s", commit, line);
		rc = -EIO;
	}
	return rc;
}

int
fetch_git_clone(const char *url, const char *dest, const struct fetch_git_opts *o,
                char *err, size_t errlen)
{
	return fetch_git_clone_at(url, dest, o, 0, NULL, err, errlen);
}

int
fetch_git_clone_at(const char *url, const char *dest, const struct fetch_git_opts *o,
		   double before, char commit[FETCH_GIT_COMMIT_LEN], char *err, size_t errlen)
{
	struct fetch_git_opts def;
	struct fetch_git_out *out = NULL;
	struct fetch_git_step st;
	char home[] = "/tmp/meshtest-git-XXXXXX";
	char *envp[24], *local_envp[24], *argv[16], *hdr = NULL, *b64 = NULL, *pass = NULL;
	char *secret_env = NULL, *owned[24], picked[FETCH_GIT_COMMIT_LEN];
	size_t nowned = 0, nlocal;
	int have_home = 0, rc, status = 0;
	struct stat sb;
	size_t ne = 0, na = 0;

	if (o == NULL) {
		fetch_git_opts_default(&def);
		o = &def;
	}
	if (commit != NULL)
		commit[0] = '\0';
	rc = fetch_git_check_url(url, o, err, errlen);
	if (rc < 0)
		return rc;
	if (dest == NULL || dest[0] == '\0' || dest[0] == '-') {
		util_seterr(err, errlen, "invalid clone destination");
		return -EINVAL;
	}
	if (lstat(dest, &sb) == 0) {
		util_seterr(err, errlen, "clone destination %s already exists", dest);
		return -EEXIST;
	}
	if (o->token != NULL) {
		size_t tl = strlen(o->token);
		if (tl == 0 || tl > FETCH_GIT_TOKEN_MAX || strpbrk(o->token, "\r\n") != NULL) {
			util_seterr(err, errlen, "invalid access token");
			return -EINVAL;
		}
	}
	if (mkdtemp(home) == NULL) {
		rc = -errno;
		util_seterr(err, errlen, "cannot create a temporary folder: %s", strerror(errno));
		goto out;
	}
	have_home = 1;
	out = xcalloc(1, sizeof(*out));
	pass = fetch_git_url_password(url);

	/* Everything the children need is built before they start. */
	argv[na++] = "git";
	argv[na++] = "-c";
	argv[na++] = o->allow_file_urls ? "protocol.file.allow=always" : "protocol.file.allow=never";
	argv[na++] = "-c";
	argv[na++] = "protocol.ext.allow=never";
	argv[na++] = "-c";
	argv[na++] = "core.symlinks=true";
	argv[na++] = "clone";
	if (before > 0) {
		/* the history, to find the commit of the deadline; checked out after */
		argv[na++] = "--no-checkout";
	} else {
		argv[na++] = "--depth";
		argv[na++] = "1";
	}
	argv[na++] = "--no-tags";
	argv[na++] = "--single-branch";
	argv[na++] = "--";
	argv[na++] = (char *)url;
	argv[na++] = (char *)dest;
	argv[na] = NULL;

	{
		static const char *const pass_env[] = {
			"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
			"NO_PROXY", "all_proxy", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
		};
		const char *path = getenv("PATH");

		owned[nowned++] = envp[ne++] = xasprintf("PATH=%s",
		    path ? path : "/usr/local/bin:/usr/bin:/bin");
		owned[nowned++] = envp[ne++] = xasprintf("HOME=%s", home);
		envp[ne++] = "LC_ALL=C";
		envp[ne++] = "GIT_TERMINAL_PROMPT=0";
		envp[ne++] = "GIT_CONFIG_NOSYSTEM=1";
		envp[ne++] = "GIT_SSH_COMMAND=" FETCH_GIT_SSH;
		envp[ne++] = o->allow_file_urls ? "GIT_ALLOW_PROTOCOL=http:https:git:ssh:file" :
		    "GIT_ALLOW_PROTOCOL=http:https:git:ssh";
		for (size_t i = 0; i < sizeof(pass_env) / sizeof(pass_env[0]); i++) {
			const char *v = getenv(pass_env[i]);
			if (v != NULL)
				owned[nowned++] = envp[ne++] = xasprintf("%s=%s", pass_env[i], v);
		}
		/* the steps after the clone need no network, and never see the token */
		nlocal = ne;
		memcpy(local_envp, envp, nlocal * sizeof(*envp));
		local_envp[nlocal] = NULL;
		if (o->token != NULL) {
			hdr = fetch_git_auth_header(o->username, o->token, &b64);
			envp[ne++] = "GIT_CONFIG_COUNT=1";
			envp[ne++] = "GIT_CONFIG_KEY_0=http.extraHeader";
			secret_env = envp[ne++] = xasprintf("GIT_CONFIG_VALUE_0=%s", hdr);
		}
		envp[ne] = NULL;
	}

	st.envp = envp;
	st.dest = dest;
	st.max = o->max_bytes ? o->max_bytes : (uint64_t)1 << 30;
	st.timeout = o->timeout > 0 ? o->timeout : 300;
	st.deadline = util_mono() + st.timeout;
	st.out = out;
	rc = fetch_git_exec(&st, argv, NULL, &status, err, errlen);
	if (rc == -ETIMEDOUT || rc == -EFBIG)
		goto out;
	if (rc == -ENOENT) {    /* no git to start */
		util_seterr(err, errlen, "git clone failed: git is not installed");
		goto out;
	}
	if (rc < 0)             /* it could not start: fetch_git_exec said why */
		goto out;
	if (!fetch_git_ok(status)) {
		char line[FETCH_GIT_LINE_MAX + 1];
		const char *why;

		/* Scrub before looking at the text: nothing secret leaves here. */
		fetch_git_scrub(out->data, sizeof(out->data), o->token);
		fetch_git_scrub(out->data, sizeof(out->data), b64);
		fetch_git_scrub(out->data, sizeof(out->data), pass);
		fetch_git_last_line(out->data, line, sizeof(line));
		why = fetch_git_classify(out->data);
		if (why != NULL)
			util_seterr(err, errlen, "git clone failed: %s (%s)", why, line);
		else if (line[0] != '\0')
			util_seterr(err, errlen, "git clone failed: %s", line);
		else
			util_seterr(err, errlen, "git clone failed: git exited with status %d",
			    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		rc = -EIO;
		goto out;
	}
	st.envp = local_envp;
	rc = fetch_git_pick_commit(&st, dest, before, picked, err, errlen);
	if (rc < 0)
		goto out;
	{
		char *git = xasprintf("%s/.git", dest);

		rc = util_rm_rf(git);
		free(git);
		if (rc < 0) {
			util_seterr(err, errlen, "cannot remove the clone's .git: %s", strerror(-rc));
			goto out;
		}
		if (fetch_git_du(dest, st.max) > st.max) {
			util_seterr(err, errlen, "git clone failed: the repository is larger than "
			    "%llu bytes", (unsigned long long)st.max);
			rc = -EFBIG;
			goto out;
		}
	}
	if (commit != NULL)
		memcpy(commit, picked, sizeof(picked));
	rc = 0;
out:
	if (rc < 0 && lstat(dest, &sb) == 0)
		util_rm_rf(dest);
	if (have_home)
		util_rm_rf(home);
	for (size_t i = 0; i < nowned; i++)
		free(owned[i]);
	fetch_git_free_secret(secret_env);
	fetch_git_free_secret(hdr);
	fetch_git_free_secret(b64);
	fetch_git_free_secret(pass);
	if (out != NULL) {
		OPENSSL_cleanse(out->data, sizeof(out->data));
		free(out);
	}
	if (rc < 0)
		log_debug("git clone failed (%d)", rc);
	return rc;
}
