/*
 * fetch_git.h - clone one repository with git(1), safely: no shell, no
 * inherited git configuration or credentials, the token only in the child's
 * environment, a time limit and a size limit.
 */
#ifndef MESHTEST_FETCH_GIT_H
#define MESHTEST_FETCH_GIT_H

#include <stddef.h>
#include <stdint.h>

#define FETCH_GIT_MAX_URL 2048
#define FETCH_GIT_COMMIT_LEN 65   /* a SHA-1 or SHA-256 commit id in hex, and the NUL */

struct fetch_git_opts {
	const char *token;        /* may be NULL; NEVER on a command line, in a URL, a log line, or on disk */
	const char *username;     /* with token: the Basic user (NULL: x-access-token) */
	double timeout;           /* seconds, default 300 (0 = default): kill the clone's process group after */
	uint64_t max_bytes;       /* stop and fail if the clone folder grows past it (checked every 200 ms; 0 = default 1 GiB) */
	int allow_file_urls;      /* file:// and plain paths only when set (tests) */
	const char *const *allowed_hosts; /* NULL = any; else host must match one exactly (NULL-terminated) */
};

/* The defaults: no token, 300 s, 1 GiB, no file URLs, any host. */
void fetch_git_opts_default(struct fetch_git_opts *o);

/* 0 if url is acceptable: scheme http://, https://, git://, ssh:// or scp-like
 * [user@]host:path; file:// and plain paths only with allow_file_urls; never
 * starts with '-'; no "<transport>::" form; no control characters or
 * whitespace; length <= 2048. Else -EINVAL with err. o may be NULL. */
int fetch_git_check_url(const char *url, const struct fetch_git_opts *o, char *err, size_t errlen);

/*
 * Split "scheme://user:password@host/..." into the URL without credentials
 * (returned, malloc'ed) and the user and password as written (malloc'ed,
 * NULL when absent; user and pass may themselves be NULL to drop them).
 * Pure; the caller cleanses what it keeps.
 */
char *fetch_git_split_credentials(const char *url, char **user, char **pass);

/* Clone url (depth 1, no submodules, no tags) into dest (must not exist; its
 * parent must). Runs git via fork/execvp (no shell) in its own process group
 * with stdin /dev/null, output captured (last 16 KiB), a clean environment
 * (LC_ALL=C, GIT_TERMINAL_PROMPT=0, GIT_CONFIG_NOSYSTEM=1, HOME an empty
 * private temp folder, GIT_ALLOW_PROTOCOL, batch-mode ssh), and the token as
 * an http.extraHeader given through GIT_CONFIG_COUNT/KEY/VALUE only.
 * On failure dest is removed and the result is -EIO, -ETIMEDOUT or -EFBIG
 * (or -EEXIST / -EINVAL for a bad call) with a clear err message that quotes
 * git's last line with the token scrubbed, e.g. "git clone failed:
 * authentication failed (check the access token)". After a successful clone
 * dest/.git is removed (we grade the checkout, not the history).
 * Blocking; any thread; o may be NULL (defaults). */
int fetch_git_clone(const char *url, const char *dest, const struct fetch_git_opts *o,
                    char *err, size_t errlen);

/*
 * fetch_git_clone, and the commit that was checked out into commit (may be
 * NULL). With before > 0 (seconds since the epoch) the whole branch is
 * fetched and the checkout is its last commit whose committer date is at or
 * before it (git rev-list -1 --before); none is -ENOENT with err "no commit
 * at or before the deadline <time>Z". The token is given to the clone only,
 * never to the local steps after it.
 */
int fetch_git_clone_at(const char *url, const char *dest, const struct fetch_git_opts *o,
		       double before, char commit[FETCH_GIT_COMMIT_LEN], char *err, size_t errlen);

#endif
