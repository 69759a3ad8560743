/*
 * reqs.h - a project's requirement files, read as pip reads them and
 * reduced to what a node may install (reqs.c). Pure: files come through a
 * callback, nothing runs.
 */
#ifndef MESHTEST_REQS_H
#define MESHTEST_REQS_H

#include <stddef.h>

#define REQS_MAX_ENTRIES 2000     /* requirements and constraints together */
#define REQS_MAX_INCLUDES 64      /* -r / -c files read, besides the root */
#define REQS_MAX_DEPTH 8          /* nesting of includes */
#define REQS_MAX_WARNINGS 200
#define REQS_MAX_BYTES (4u << 20) /* all files read */

/*
 * Read the project file at a relative path (no "..", never through a link)
 * into *text (malloc'ed, NUL-terminated): 0, -ENOENT when it is not there,
 * -EINVAL when it is a link or not a regular file, another negative errno.
 */
typedef int (*reqs_read_fn)(void *ctx, const char *path, char **text, size_t *len);

struct reqs {
	char **entries;        /* "spec[ --hash=alg:hex...]", sorted, unique */
	size_t nentries;
	char **constraints;    /* "spec" from -c files, sorted, unique */
	size_t nconstraints;
	char **options;        /* global options kept: --pre, --prefer-binary, ... */
	size_t noptions;
	char **warnings;       /* "<file>:<line>: <what was dropped and why>" */
	size_t nwarnings;
	int hashed;            /* some entry has --hash: pip checks every hash */
};

/*
 * Read the requirement file at root (e.g. "requirements.txt") and the files
 * it includes into r (zeroed first; reqs_free it whatever the result).
 *
 * As pip reads them: "\" joins lines, "#" at a line's start or after
 * blanks starts a comment, options come after the requirement. Kept:
 * named requirements with their version specifiers, extras and environment
 * markers (pip evaluates the markers), their --hash options, and the
 * global options --pre, --prefer-binary, --require-hashes, --only-binary
 * and --no-binary. Followed: -r/-c includes, relative to the including
 * file, only inside the project (no "..", no absolute path, no URL, never
 * through a link; read), at most REQS_MAX_INCLUDES of them. Dropped, each
 * with a warning: options that choose or widen where packages come from or
 * what is trusted (-i, --index-url, --extra-index-url, --no-index, -f,
 * --find-links, --trusted-host, any other option), direct URL and VCS
 * requirements (pkg @ https://..., git+https://...), editable and
 * local-path requirements (-e ., ./pkg, a wheel file), per-requirement
 * options other than --hash, includes that cannot be followed.
 *
 * Returns 0, or -EIO with err set when root itself cannot be read (absent
 * is not an error: r stays empty). Everything else is a warning.
 */
int reqs_parse(struct reqs *r, const char *root, reqs_read_fn read, void *ctx, char *err,
	       size_t errlen);

/*
 * Add requirement lines that come from somewhere other than a requirement
 * file (pyproject.toml's [project].dependencies, one per line), under the
 * same rules; options are not accepted there.
 */
void reqs_add_lines(struct reqs *r, const char *where, const char *text, size_t len);

/* The requirement file pip is given: options, then entries (malloc'ed; "" when empty). */
char *reqs_file_text(const struct reqs *r);
/* One entry as a requirement file, with the global options (malloc'ed). */
char *reqs_entry_text(const struct reqs *r, size_t i);
/* The constraints file (malloc'ed; "" when none). */
char *reqs_constraints_text(const struct reqs *r);
void reqs_free(struct reqs *r);

#endif
