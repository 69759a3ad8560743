/*
 * reqs.c - a project's requirement files, read as pip reads them and
 * reduced to what a node may install.
 *
 * pip's reading, in order (pip/_internal/req/req_file.py): split into
 * lines; a line ending in "\" joins the next (a comment line ends the
 * join); "#" at a line's start or after blanks starts a comment; the words
 * before the first word starting with "-" are the requirement, the rest its
 * options (shell-quoted); a line of only options sets them (-r and -c
 * include other files). This file follows that reading and keeps only what
 * cannot change where the node's packages come from, what it trusts, or
 * whose code lands in a shared environment (see reqs.h).
 *
 * Owns nothing beyond the struct reqs it fills; no I/O but the callback.
 * Any thread.
 */
#include "runner/reqs.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

#define REQS_QUOTE_MAX 120       /* of a line quoted in a warning */
#define REQS_PATH_MAX 1024

struct reqs_ctx {
	struct reqs *r;
	reqs_read_fn read;
	void *rctx;
	char *seen[REQS_MAX_INCLUDES + 1];  /* files read, to read each once */
	size_t nseen;
	size_t bytes;
};

/* Where a line came from, for its warnings. */
struct reqs_where {
	const char *file;
	size_t line;     /* 0: no line numbers (pyproject.toml) */
};

static void
reqs_strv_add(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = s;
}

static void
reqs_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
reqs_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop repeats. */
static void
reqs_strv_uniq(char **v, size_t *n)
{
	size_t k = 0;

	if (*n == 0)
		return;
	qsort(v, *n, sizeof(*v), reqs_cmp);
	for (size_t i = 1; i < *n; i++) {
		if (strcmp(v[i], v[k]) == 0)
			free(v[i]);
		else
			v[++k] = v[i];
	}
	*n = k + 1;
}

/* s quoted for a warning: printable, capped (malloc'ed). */
static char *
reqs_quote(const char *s)
{
	size_t n = strlen(s), cap = n > REQS_QUOTE_MAX ? REQS_QUOTE_MAX : n;
	char *q = xmalloc(cap + 4);

	for (size_t i = 0; i < cap; i++)
		q[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	if (cap < n)
		memcpy(q + cap, "...", 4);
	else
		q[cap] = '\0';
	return q;
}

static void
reqs_warn(struct reqs_ctx *c, const struct reqs_where *w, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
reqs_warn(struct reqs_ctx *c, const struct reqs_where *w, const char *fmt, ...)
{
	struct reqs *r = c->r;
	char *msg, *full;
	va_list ap;
	int n;

	if (r->nwarnings > REQS_MAX_WARNINGS)
		return;
	if (r->nwarnings == REQS_MAX_WARNINGS) {
		reqs_strv_add(&r->warnings, &r->nwarnings,
			      xstrdup("requirements: more warnings not shown"));
		return;
	}
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	full = w->line ? xasprintf("%s:%zu: %s", w->file, w->line, msg)
		       : xasprintf("%s: %s", w->file, msg);
	free(msg);
	reqs_strv_add(&r->warnings, &r->nwarnings, full);
}

/*
 * Split s into words as a shell would (blanks separate, quotes group,
 * backslash escapes outside single quotes); pip splits options with shlex.
 */
static void
reqs_words(const char *s, char ***out, size_t *n)
{
	struct buf w;
	int in_word = 0;

	*out = NULL;
	*n = 0;
	buf_init(&w, REQS_MAX_BYTES);
	for (const char *p = s;; p++) {
		if (*p == '\0' || *p == ' ' || *p == '\t') {
			if (in_word) {
				(void)buf_append(&w, "", 1);
				reqs_strv_add(out, n, buf_steal(&w));
				buf_init(&w, REQS_MAX_BYTES);
				in_word = 0;
			}
			if (*p == '\0')
				break;
			continue;
		}
		in_word = 1;
		if (*p == '\'') {
			const char *e = strchr(p + 1, '\'');
			size_t l = e ? (size_t)(e - p - 1) : strlen(p + 1);
			(void)buf_append(&w, p + 1, l);
			p += l + (e ? 1 : 0);
		} else if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				(void)buf_append(&w, p, 1);
			}
			if (*p == '\0')
				p--;
		} else if (*p == '\\' && p[1] != '\0') {
			(void)buf_append(&w, ++p, 1);
		} else {
			(void)buf_append(&w, p, 1);
		}
	}
	buf_free(&w);
}

/* ------------------------------------------------------------ classification */

enum reqs_kind { REQS_NAMED, REQS_URL, REQS_VCS, REQS_PATH, REQS_BAD };

/*
 * What a requirement is: a named one (name, extras, versions, marker), a
 * direct URL (name @ url, or a bare URL), a VCS URL, a local path or file,
 * or nothing pip would accept.
 */
static enum reqs_kind
reqs_classify(const char *spec)
{
	static const char *const vcs[] = { "git+", "hg+", "svn+", "bzr+" };
	static const char *const archives[] = { ".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2",
						".tar.xz", ".tar" };
	const char *semi = strchr(spec, ';');
	size_t head = semi ? (size_t)(semi - spec) : strlen(spec);

	for (size_t i = 0; i < sizeof(vcs) / sizeof(vcs[0]); i++)
		if (strncasecmp(spec, vcs[i], strlen(vcs[i])) == 0)
			return REQS_VCS;
	if (strstr(spec, "://") != NULL || strncasecmp(spec, "file:", 5) == 0)
		return REQS_URL;
	if (memchr(spec, '@', head) != NULL)
		return REQS_URL;
	if (spec[0] == '.' || spec[0] == '/' || spec[0] == '~' ||
	    memchr(spec, '/', head) != NULL || memchr(spec, '\\', head) != NULL)
		return REQS_PATH;
	while (head > 0 && spec[head - 1] == ' ')
		head--;
	for (size_t i = 0; i < sizeof(archives) / sizeof(archives[0]); i++) {
		size_t l = strlen(archives[i]);
		if (head > l && strncasecmp(spec + head - l, archives[i], l) == 0)
			return REQS_PATH;
	}
	if (!isalnum((unsigned char)spec[0]))
		return REQS_BAD;
	for (const char *p = spec; *p != '\0'; p++) {
		/* pip would expand ${VAR} and read a backtick or control byte as is */
		if (!isprint((unsigned char)*p) || *p == '$' || *p == '`' || *p == '\\')
			return REQS_BAD;
	}
	return REQS_NAMED;
}

/* "sha256:<64 hex>" and the other algorithms pip accepts for --hash. */
static int
reqs_hash_valid(const char *v)
{
	static const struct { const char *alg; size_t hex; } algs[] = {
		{ "sha256:", 64 }, { "sha384:", 96 }, { "sha512:", 128 },
	};

	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		size_t l = strlen(algs[i].alg);
		if (strncmp(v, algs[i].alg, l) != 0)
			continue;
		if (strlen(v + l) != algs[i].hex)
			return 0;
		for (const char *p = v + l; *p; p++)
			if (!isxdigit((unsigned char)*p))
				return 0;
		return 1;
	}
	return 0;
}

/* An option's value: "--opt=V" or "-xV" in word, else the next word. */
static const char *
reqs_value(char **words, size_t n, size_t *i, const char *word, size_t optlen)
{
	if (word[optlen] == '=')
		return word + optlen + 1;
	if (word[optlen] != '\0')
		return word + optlen;
	if (*i + 1 < n)
		return words[++*i];
	return NULL;
}

/* 1 when word is opt, or "opt=...", or (short option) "-xVALUE". */
static int
reqs_is_opt(const char *word, const char *opt)
{
	size_t l = strlen(opt);

	if (strncmp(word, opt, l) != 0)
		return 0;
	if (word[l] == '\0' || word[l] == '=')
		return 1;
	return opt[1] != '-' && l == 2;
}

/* 1 when word names one of the long options, or an abbreviation pip would accept. */
static int
reqs_is_long(const char *word, const char *const *opts, size_t nopts)
{
	size_t l = strcspn(word, "=");

	if (l < 3 || strncmp(word, "--", 2) != 0)
		return 0;
	for (size_t i = 0; i < nopts; i++)
		if (strncmp(opts[i], word, l) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ lines */

static void reqs_file(struct reqs_ctx *c, const char *path, int constraint, int depth,
		      const struct reqs_where *from);

/*
 * An include: path relative to the including file's folder, kept inside
 * the project. The result (malloc'ed) or NULL with a warning.
 */
static char *
reqs_include_path(struct reqs_ctx *c, const struct reqs_where *w, const char *path)
{
	struct buf out;
	const char *slash = strrchr(w->file, '/');
	char *q;

	if (path == NULL || *path == '\0') {
		reqs_warn(c, w, "an include without a file name was dropped");
		return NULL;
	}
	q = reqs_quote(path);
	if (strstr(path, "://") != NULL || strncasecmp(path, "file:", 5) == 0) {
		reqs_warn(c, w, "dropped the include of '%s': a project's requirements are"
			  " read from the project only", q);
		free(q);
		return NULL;
	}
	if (path[0] == '/') {
		reqs_warn(c, w, "dropped the include of '%s': an absolute path is outside the"
			  " project", q);
		free(q);
		return NULL;
	}
	buf_init(&out, REQS_PATH_MAX);
	if (slash != NULL)
		(void)buf_append(&out, w->file, (size_t)(slash - w->file) + 1);
	for (const char *p = path; *p != '\0';) {
		size_t l = strcspn(p, "/");
		if ((l == 2 && p[0] == '.' && p[1] == '.')) {
			reqs_warn(c, w, "dropped the include of '%s': '..' leaves the folder of"
				  " the file that includes it", q);
			free(q);
			buf_free(&out);
			return NULL;
		}
		if (l > 0 && !(l == 1 && p[0] == '.')) {
			if (buf_append(&out, p, l) < 0 || buf_append(&out, "/", 1) < 0) {
				reqs_warn(c, w, "dropped the include of '%s': the path is too long", q);
				free(q);
				buf_free(&out);
				return NULL;
			}
		}
		p += l;
		while (*p == '/')
			p++;
	}
	free(q);
	if (out.len == 0 || out.data[out.len - 1] != '/') {
		buf_free(&out);
		reqs_warn(c, w, "an include without a file name was dropped");
		return NULL;
	}
	out.data[--out.len] = '\0';
	return buf_steal(&out);
}

static void
reqs_include(struct reqs_ctx *c, const struct reqs_where *w, const char *path, int constraint,
	     int depth)
{
	char *rel = reqs_include_path(c, w, path);

	if (rel == NULL)
		return;
	if (depth + 1 > REQS_MAX_DEPTH) {
		char *q = reqs_quote(rel);
		reqs_warn(c, w, "dropped the include of '%s': includes nest deeper than %d", q,
			  REQS_MAX_DEPTH);
		free(q);
	} else {
		reqs_file(c, rel, constraint, depth + 1, w);
	}
	free(rel);
}

/* A requirement line: spec (its words before the options) and its options. */
static void
reqs_requirement(struct reqs_ctx *c, const struct reqs_where *w, const char *spec,
		 char **opts, size_t nopts, int constraint)
{
	struct reqs *r = c->r;
	char **hashes = NULL, *q = reqs_quote(spec);
	size_t nhashes = 0;
	struct buf e;

	switch (reqs_classify(spec)) {
	case REQS_NAMED:
		break;
	case REQS_URL:
		reqs_warn(c, w, "dropped '%s': a direct URL requirement would choose where"
			  " the node installs from", q);
		goto out;
	case REQS_VCS:
		reqs_warn(c, w, "dropped '%s': a VCS requirement would choose where the node"
			  " installs from", q);
		goto out;
	case REQS_PATH:
		reqs_warn(c, w, "skipped '%s': a local path would put the project's own code"
			  " into an environment other projects share (the project's root and"
			  " src/ are on the import path already)", q);
		goto out;
	case REQS_BAD:
		reqs_warn(c, w, "dropped '%s': not a requirement pip can install", q);
		goto out;
	}
	for (size_t i = 0; i < nopts; i++) {
		if (reqs_is_opt(opts[i], "--hash")) {
			const char *v = reqs_value(opts, nopts, &i, opts[i], 6);
			if (v == NULL || !reqs_hash_valid(v)) {
				reqs_warn(c, w, "dropped '%s': a --hash that is not sha256, sha384"
					  " or sha512 with its hex digest", q);
				goto out;
			}
			reqs_strv_add(&hashes, &nhashes, xasprintf("--hash=%s", v));
		} else {
			char *o = reqs_quote(opts[i]);
			reqs_warn(c, w, "ignored the option '%s' of '%s': only --hash is kept on a"
				  " requirement", o, q);
			free(o);
		}
	}
	if (r->nentries + r->nconstraints >= REQS_MAX_ENTRIES) {
		reqs_warn(c, w, "dropped '%s': more than %d requirements", q, REQS_MAX_ENTRIES);
		goto out;
	}
	if (constraint) {
		reqs_strv_add(&r->constraints, &r->nconstraints, xstrdup(spec));
		goto out;
	}
	reqs_strv_uniq(hashes, &nhashes);
	buf_init(&e, REQS_MAX_BYTES);
	(void)buf_append(&e, spec, strlen(spec));
	for (size_t i = 0; i < nhashes; i++)
		(void)buf_printf(&e, " %s", hashes[i]);
	(void)buf_append(&e, "", 1);
	reqs_strv_add(&r->entries, &r->nentries, buf_steal(&e));
	if (nhashes > 0)
		r->hashed = 1;
out:
	reqs_strv_free(hashes, nhashes);
	free(q);
}

/* An options line: includes, the global options kept, the rest dropped. */
static void
reqs_options(struct reqs_ctx *c, const struct reqs_where *w, char **words, size_t n, int depth)
{
	static const char *const sources[] = { "--index-url", "--extra-index-url", "--no-index",
					       "--find-links", "--trusted-host" };
	static const char *const kept[] = { "--pre", "--prefer-binary", "--require-hashes" };
	struct reqs *r = c->r;

	for (size_t i = 0; i < n; i++) {
		const char *word = words[i], *v;
		char *q = reqs_quote(word);
		size_t k;

		if (reqs_is_opt(word, "-r") || reqs_is_opt(word, "--requirement") ||
		    reqs_is_opt(word, "-c") || reqs_is_opt(word, "--constraint")) {
			int cons = word[1] == 'c' || strncmp(word, "--c", 3) == 0;
			v = reqs_value(words, n, &i, word, word[1] == '-' ? strcspn(word, "=") : 2);
			reqs_include(c, w, v, cons, depth);
		} else if (reqs_is_opt(word, "-e") || reqs_is_opt(word, "--editable")) {
			v = reqs_value(words, n, &i, word, word[1] == '-' ? strcspn(word, "=") : 2);
			char *qv = reqs_quote(v ? v : "");
			reqs_warn(c, w, "skipped the editable requirement '%s': environments are"
				  " shared, so a project's own code never goes into one (the"
				  " project's root and src/ are on the import path already)", qv);
			free(qv);
		} else if (reqs_is_opt(word, "-i") || reqs_is_opt(word, "-f") ||
			   reqs_is_long(word, sources, sizeof(sources) / sizeof(sources[0]))) {
			size_t l = strcspn(word, "=");
			char *shown;
			v = strncmp(word, "--no-i", 6) == 0 ? NULL :
			    reqs_value(words, n, &i, word, word[1] == '-' ? l : 2);
			shown = v != NULL && v != word + l + 1 && v != word + 2 ?
				xasprintf("%s %s", word, v) : xstrdup(word);
			free(q);
			q = reqs_quote(shown);
			free(shown);
			reqs_warn(c, w, "dropped '%s': a project's requirements never choose where"
				  " the node installs from or what it trusts", q);
		} else if ((k = 0, reqs_is_opt(word, "--only-binary")) ||
			   (k = 1, reqs_is_opt(word, "--no-binary"))) {
			v = reqs_value(words, n, &i, word, strcspn(word, "="));
			if (v != NULL && *v != '\0' && strspn(v, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._,:-") == strlen(v))
				reqs_strv_add(&r->options, &r->noptions, xasprintf("%s=%s",
					      k ? "--no-binary" : "--only-binary", v));
			else
				reqs_warn(c, w, "dropped '%s' without a list of packages", q);
		} else {
			for (k = 0; k < sizeof(kept) / sizeof(kept[0]); k++)
				if (strcmp(word, kept[k]) == 0)
					break;
			if (k < sizeof(kept) / sizeof(kept[0]))
				reqs_strv_add(&r->options, &r->noptions, xstrdup(kept[k]));
			else
				reqs_warn(c, w, "dropped the option '%s': not accepted in a project's"
					  " requirements", q);
		}
		free(q);
	}
}

/* One logical line (joined, without its comment, stripped). */
static void
reqs_line(struct reqs_ctx *c, const struct reqs_where *w, const char *line, int constraint,
	  int depth, int options_ok)
{
	char **words = NULL;
	size_t n = 0, nargs = 0;
	struct buf spec;

	/* pip: the words before the first one starting with "-" are the requirement */
	buf_init(&spec, REQS_MAX_BYTES);
	for (const char *p = line; *p != '\0';) {
		size_t l;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '-')
			break;
		l = strcspn(p, " \t");
		if (nargs++ > 0)
			(void)buf_append(&spec, " ", 1);
		(void)buf_append(&spec, p, l);
		p += l;
		line = p;
	}
	(void)buf_append(&spec, "", 1);
	reqs_words(line, &words, &n);
	if (nargs > 0) {
		reqs_requirement(c, w, spec.data, words, n, constraint);
	} else if (!options_ok) {
		char *q = reqs_quote(line);
		reqs_warn(c, w, "dropped '%s': not a requirement", q);
		free(q);
	} else {
		reqs_options(c, w, words, n, depth);
	}
	reqs_strv_free(words, n);
	buf_free(&spec);
}

/* pip's COMMENT_RE.match: the line is a comment ("#" first, maybe after blanks). */
static int
reqs_is_comment(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && isspace((unsigned char)s[i]))
		i++;
	return i < len && s[i] == '#';
}

/* Cut a comment ("#" at the start or after a blank) and strip the line, in place. */
static char *
reqs_strip(char *s)
{
	char *e;

	for (char *p = s; *p != '\0'; p++) {
		if (*p == '#' && (p == s || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			break;
		}
	}
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Read text as pip does and hand each logical line to reqs_line. */
static void
reqs_text(struct reqs_ctx *c, const char *file, const char *text, size_t len, int constraint,
	  int depth, int options_ok)
{
	struct buf joined;
	struct reqs_where w = { file, 0 };
	size_t lineno = 0, i = 0;
	int open = 0;    /* a logical line is being joined */

	buf_init(&joined, REQS_MAX_BYTES);
	while (i < len || open) {
		const char *line = i < len ? text + i : "", *s = line, *e;
		size_t l = 0;

		while (i + l < len && memchr("\n\r\v\f", text[i + l], 4) == NULL)
			l++;
		e = line + l;
		i += l;
		if (i < len && text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
			i++;
		i++;
		if (!open)
			w.line = options_ok ? lineno + 1 : 0;
		lineno++;
		if (l > 0 && e[-1] == '\\' && !reqs_is_comment(line, l)) {
			/* continued: pip strips backslashes at both ends of the line */
			while (s < e && *s == '\\')
				s++;
			while (e > s && e[-1] == '\\')
				e--;
			(void)buf_append(&joined, s, (size_t)(e - s));
			open = 1;
			continue;
		}
		/* a comment line ends a continuation, and stays a comment */
		if (open && reqs_is_comment(line, l))
			(void)buf_append(&joined, " ", 1);
		(void)buf_append(&joined, s, (size_t)(e - s));
		open = 0;
		if (joined.data != NULL) {
			char *t = reqs_strip(joined.data);
			if (*t != '\0')
				reqs_line(c, &w, t, constraint, depth, options_ok);
		}
		buf_reset(&joined);
	}
	buf_free(&joined);
}

/* Read one requirement file of the project (once) and its lines. */
static void
reqs_file(struct reqs_ctx *c, const char *path, int constraint, int depth,
	  const struct reqs_where *from)
{
	char *text = NULL, *q = reqs_quote(path);
	size_t len = 0;
	int r;

	for (size_t i = 0; i < c->nseen; i++) {
		if (strcmp(c->seen[i], path) == 0) {
			free(q);
			return;   /* read already: a cycle, or two files including one */
		}
	}
	if (c->nseen >= REQS_MAX_INCLUDES + 1) {
		reqs_warn(c, from, "dropped the include of '%s': more than %d included files",
			  q, REQS_MAX_INCLUDES);
		free(q);
		return;
	}
	c->seen[c->nseen++] = xstrdup(path);
	r = c->read(c->rctx, path, &text, &len);
	if (r == 0 && c->bytes + len > REQS_MAX_BYTES)
		r = -EFBIG;
	if (r < 0) {
		reqs_warn(c, from, "dropped the include of '%s': %s", q,
			  r == -ENOENT ? "no such file in the project" :
			  r == -EINVAL ? "a link or not a regular file" :
			  r == -EFBIG ? "the requirement files are too large" : strerror(-r));
		free(q);
		free(text);
		return;
	}
	c->bytes += len;
	reqs_text(c, path, text, strnlen(text, len), constraint, depth, 1);
	free(text);
	free(q);
}

/* ------------------------------------------------------------------ public */

static void
reqs_finish(struct reqs *r)
{
	reqs_strv_uniq(r->entries, &r->nentries);
	reqs_strv_uniq(r->constraints, &r->nconstraints);
	reqs_strv_uniq(r->options, &r->noptions);
	for (size_t i = 0; i < r->noptions; i++)
		if (strcmp(r->options[i], "--require-hashes") == 0)
			r->hashed = 1;
}

int
reqs_parse(struct reqs *r, const char *root, reqs_read_fn read, void *ctx, char *err,
	   size_t errlen)
{
	struct reqs_ctx c = { .r = r, .read = read, .rctx = ctx };
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = read(ctx, root, &text, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc == 0 && len > REQS_MAX_BYTES)
		rc = -EFBIG;
	if (rc < 0) {
		util_seterr(err, errlen, "cannot read %s: %s", root,
			    rc == -EINVAL ? "a link or not a regular file" :
			    rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
		free(text);
		return -EIO;
	}
	c.seen[c.nseen++] = xstrdup(root);
	c.bytes = len;
	reqs_text(&c, root, text, strnlen(text, len), 0, 0, 1);
	free(text);
	for (size_t i = 0; i < c.nseen; i++)
		free(c.seen[i]);
	reqs_finish(r);
	return 0;
}

void
reqs_add_lines(struct reqs *r, const char *where, const char *text, size_t len)
{
	struct reqs_ctx c = { .r = r };

	reqs_text(&c, where, text, strnlen(text, len), 0, 0, 0);
	reqs_finish(r);
}

static char *
reqs_join(char *const *a, size_t na, char *const *b, size_t nb)
{
	struct buf out;

	buf_init(&out, 2 * REQS_MAX_BYTES);
	for (size_t i = 0; i < na; i++)
		(void)buf_printf(&out, "%s\n", a[i]);
	for (size_t i = 0; i < nb; i++)
		(void)buf_printf(&out, "%s\n", b[i]);
	return out.data ? buf_steal(&out) : xstrdup("");
}

char *
reqs_file_text(const struct reqs *r)
{
	if (r->nentries == 0)
		return xstrdup("");
	return reqs_join(r->options, r->noptions, r->entries, r->nentries);
}

char *
reqs_entry_text(const struct reqs *r, size_t i)
{
	return reqs_join(r->options, r->noptions, r->entries + i, 1);
}

char *
reqs_constraints_text(const struct reqs *r)
{
	return reqs_join(NULL, 0, r->constraints, r->nconstraints);
}

void
reqs_free(struct reqs *r)
{
	reqs_strv_free(r->entries, r->nentries);
	reqs_strv_free(r->constraints, r->nconstraints);
	reqs_strv_free(r->options, r->noptions);
	reqs_strv_free(r->warnings, r->nwarnings);
	memset(r, 0, sizeof(*r));
}
