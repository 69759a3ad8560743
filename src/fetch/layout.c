/*
 * layout.c - project and test-module rules (see layout.h).
 *
 * Owns nothing global; every function is reentrant and safe from any thread.
 * All functions except layout_list_modules are pure string logic so they can
 * be unit-tested and fuzzed; layout_list_modules walks a folder with
 * openat(O_NOFOLLOW) so a planted link never takes it outside the project.
 */
#include "fetch/layout.h"

#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LAYOUT_PATH_MAX 4096

static const char *
layout_basename(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

int
layout_is_test_module(const char *relpath)
{
	const char *base;
	size_t len;

	if (relpath == NULL || !util_starts_with(relpath, "tests/"))
		return 0;
	base = layout_basename(relpath);
	len = strlen(base);
	if (len < 8 || !util_ends_with(base, ".py"))
		return 0;
	if (util_starts_with(base, "test_") || util_ends_with(base, "_test.py"))
		return 1;
	return 0;
}

/* 1 if a folder with this name is never searched for modules. */
static int
layout_dir_skipped(const char *name, size_t len)
{
	if (len == 0)
		return 0;
	if (name[0] == '.')
		return 1; /* .git, .venv, .pytest_cache and every hidden folder */
	if (len == 11 && memcmp(name, "__pycache__", 11) == 0)
		return 1;
	if (len == 12 && memcmp(name, "node_modules", 12) == 0)
		return 1;
	return 0;
}

int
layout_path_skipped(const char *relpath)
{
	const char *p = relpath, *slash;

	while ((slash = strchr(p, '/')) != NULL) {
		if (layout_dir_skipped(p, (size_t)(slash - p)))
			return 1;
		p = slash + 1;
	}
	return 0;
}

int
layout_clean_path(const char *name, char *out, size_t outlen)
{
	size_t o = 0;
	const char *p;

	if (name == NULL || out == NULL || outlen == 0)
		return -EINVAL;
	if (name[0] == '/' || name[0] == '\\')
		return -EINVAL;
	/* A drive letter: "C:" or "C:\x" (Windows absolute or drive-relative). */
	if (((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z')) &&
	    name[1] == ':')
		return -EINVAL;
	for (p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			return -EINVAL;
	}

	p = name;
	while (*p) {
		const char *start;
		size_t len;

		while (*p == '/' || *p == '\\')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && *p != '/' && *p != '\\')
			p++;
		len = (size_t)(p - start);
		if (len == 1 && start[0] == '.')
			continue;
		if (len == 2 && start[0] == '.' && start[1] == '.')
			return -EINVAL;
		/* Separator, component and the NUL must fit. */
		if (o + (o ? 1 : 0) + len + 1 > outlen)
			return -ENAMETOOLONG;
		if (o)
			out[o++] = '/';
		memcpy(out + o, start, len);
		o += len;
	}
	out[o] = '\0';
	if (o == 0)
		return -EINVAL;
	return 0;
}

int
layout_link_inside(const char *linkpath, const char *target)
{
	long depth = 0;
	int seen_name = 0;
	const char *p;

	if (linkpath == NULL || target == NULL || target[0] == '\0' || target[0] == '/')
		return 0;
	/* The link lives in dirname(linkpath): count its folders. */
	for (p = linkpath; *p; p++)
		if (*p == '/' && p[1] != '\0' && p[1] != '/')
			depth++;

	p = target;
	while (*p) {
		const char *start;
		size_t len;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && *p != '/')
			p++;
		len = (size_t)(p - start);
		if (len == 1 && start[0] == '.')
			continue;
		if (len == 2 && start[0] == '.' && start[1] == '.') {
			if (seen_name)
				return 0;
			if (--depth < 0)
				return 0;
			continue;
		}
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)start[i] < 0x20)
				return 0;
		seen_name = 1;
		depth++;
	}
	return 1;
}

/* 1 if some path starts with "<folder>/tests/" (folder is "" or ends with '/'). */
static int
layout_holds_tests(const char *const *paths, size_t n, const char *folder)
{
	size_t fl = strlen(folder);

	for (size_t i = 0; i < n; i++) {
		const char *p = paths[i];
		if (p == NULL || strncmp(p, folder, fl) != 0)
			continue;
		p += fl;
		if (strncmp(p, "tests", 5) == 0 && (p[5] == '/' || p[5] == '\0'))
			return 1;
	}
	return 0;
}

static int
layout_name_ignored(const char *name, size_t len)
{
	if (len == 0 || name[0] == '.')
		return 1;
	return len == 8 && memcmp(name, "__MACOSX", 8) == 0;
}

/*
 * The distinct folder names directly below folder ("" or "x/"): the first
 * component after the prefix of every path that continues with a '/'.
 * Ignored names are left out. Returns the count, names in *out (malloc'ed).
 */
static size_t
layout_subfolders(const char *const *paths, size_t n, const char *folder, char ***out)
{
	size_t fl = strlen(folder), cnt = 0, cap = 0;
	char **v = NULL;

	for (size_t i = 0; i < n; i++) {
		const char *p = paths[i], *slash;
		size_t len;
		int dup = 0;

		if (p == NULL || strncmp(p, folder, fl) != 0)
			continue;
		p += fl;
		slash = strchr(p, '/');
		if (slash == NULL || slash[1] == '\0')
			continue; /* a file, or a bare folder entry: no tests/ under it */
		len = (size_t)(slash - p);
		if (layout_name_ignored(p, len))
			continue;
		for (size_t j = 0; j < cnt && !dup; j++)
			dup = strlen(v[j]) == len && memcmp(v[j], p, len) == 0;
		if (dup)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[cnt] = xmalloc(len + 1);
		memcpy(v[cnt], p, len);
		v[cnt][len] = '\0';
		cnt++;
	}
	*out = v;
	return cnt;
}

static int
layout_project_cmp(const void *a, const void *b)
{
	const struct layout_project *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Add the folders below parent that hold tests/ as projects. */
static size_t
layout_collect(const char *const *paths, size_t n, const char *parent,
    char **names, size_t nnames, struct layout_project *res)
{
	size_t k = 0;

	for (size_t i = 0; i < nnames; i++) {
		char *prefix = xasprintf("%s%s/", parent, names[i]);
		if (!layout_holds_tests(paths, n, prefix)) {
			free(prefix);
			continue;
		}
		res[k].name = xstrdup(names[i]);
		res[k].prefix = prefix;
		k++;
	}
	return k;
}

int
layout_find_projects(const char *const *paths, size_t n, const char *root_name,
                     struct layout_project **out, size_t *nout)
{
	struct layout_project *res = NULL;
	char **top = NULL, **inner = NULL;
	size_t ntop = 0, ninner = 0, k = 0;

	*out = NULL;
	*nout = 0;
	if (layout_holds_tests(paths, n, "")) {
		res = xcalloc(1, sizeof(*res));
		res[0].name = xstrdup(root_name ? root_name : "project");
		res[0].prefix = xstrdup("");
		k = 1;
		goto out;
	}
	ntop = layout_subfolders(paths, n, "", &top);
	if (ntop > 0) {
		res = xcalloc(ntop, sizeof(*res));
		k = layout_collect(paths, n, "", top, ntop, res);
	}
	if (k == 0 && ntop == 1) {
		char *wrap = xasprintf("%s/", top[0]);
		free(res);
		res = NULL;
		ninner = layout_subfolders(paths, n, wrap, &inner);
		if (ninner > 0) {
			res = xcalloc(ninner, sizeof(*res));
			k = layout_collect(paths, n, wrap, inner, ninner, res);
		}
		free(wrap);
	}
	if (k == 0) {
		free(res);
		res = NULL;
	}
out:
	if (k > 1)
		qsort(res, k, sizeof(*res), layout_project_cmp);
	layout_strv_free(top, ntop);
	layout_strv_free(inner, ninner);
	*out = res;
	*nout = k;
	return 0;
}

void
layout_projects_free(struct layout_project *p, size_t n)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].prefix);
	}
	free(p);
}

void
layout_dedupe_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *cand = NULL;
		int taken = 0;

		for (size_t j = 0; j < i && !taken; j++)
			taken = strcmp(ids[j], ids[i]) == 0;
		if (!taken)
			continue;
		for (unsigned k = 2;; k++) {
			cand = xasprintf("%s-%u", ids[i], k);
			taken = 0;
			for (size_t j = 0; j < i && !taken; j++)
				taken = strcmp(ids[j], cand) == 0;
			if (!taken)
				break;
			free(cand);
		}
		free(ids[i]);
		ids[i] = cand;
	}
}

char *
layout_repo_name(const char *url)
{
	const char *end, *start;
	char *name;
	size_t len;

	if (url == NULL)
		return NULL;
	end = url + strcspn(url, "?#");
	while (end > url && end[-1] == '/')
		end--;
	if ((size_t)(end - url) >= 4 && memcmp(end - 4, ".git", 4) == 0)
		end -= 4;
	while (end > url && end[-1] == '/')
		end--;
	start = end;
	while (start > url && start[-1] != '/' && start[-1] != ':')
		start--;
	len = (size_t)(end - start);
	if (len == 0 || len > 200)
		return NULL;
	if ((len == 1 && start[0] == '.') || (len == 2 && start[0] == '.' && start[1] == '.'))
		return NULL;
	name = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		char c = start[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		name[i] = ok ? c : '_';
	}
	name[len] = '\0';
	return name;
}

void
layout_strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

struct layout_walk {
	char **v;
	size_t n;
	size_t cap;
};

static int
layout_walk_add(struct layout_walk *w, const char *rel)
{
	if (w->n >= LAYOUT_MAX_MODULES)
		return -E2BIG;
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
	}
	w->v[w->n++] = xstrdup(rel);
	return 0;
}

/* Walk the folder open at dfd (consumed), whose path from the root is rel. */
static int
layout_walk_dir(struct layout_walk *w, int dfd, const char *rel, int depth)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	/* A committed virtualenv: nothing in it is the project's tests. */
	if (faccessat(dfd, "pyvenv.cfg", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		close(dfd);
		return 0;
	}
	d = fdopendir(dfd);
	if (d == NULL) {
		r = -errno;
		close(dfd);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		char path[LAYOUT_PATH_MAX];
		struct stat st;
		size_t nl = strlen(de->d_name);
		int n;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n = snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int cfd;

			if (layout_dir_skipped(de->d_name, nl) || depth + 1 >= LAYOUT_MAX_DEPTH)
				continue;
			/* Test modules live under tests/: nothing else is searched. */
			if (depth == 0 && strcmp(de->d_name, "tests") != 0)
				continue;
			cfd = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0)
				continue;
			r = layout_walk_dir(w, cfd, path, depth + 1);
			if (r < 0)
				break;
		} else if (S_ISREG(st.st_mode) && layout_is_test_module(path)) {
			r = layout_walk_add(w, path);
			if (r < 0)
				break;
		}
	}
	closedir(d);
	return r;
}

static int
layout_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
layout_list_modules(const char *project_dir, char ***out, size_t *nout)
{
	struct layout_walk w = { NULL, 0, 0 };
	int dfd, r;

	*out = NULL;
	*nout = 0;
	dfd = open(project_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = layout_walk_dir(&w, dfd, "", 0);
	if (r < 0) {
		layout_strv_free(w.v, w.n);
		return r;
	}
	if (w.n > 1)
		qsort(w.v, w.n, sizeof(*w.v), layout_str_cmp);
	*out = w.v;
	*nout = w.n;
	return 0;
}

/* Seconds a module takes, guessed from how many tests it defines. */
#define LAYOUT_EST_BASE 0.05
#define LAYOUT_EST_PER_TEST 0.01
#define LAYOUT_EST_READ_MAX (1 << 20)

double
layout_estimate(const char *text, size_t len)
{
	size_t tests = 0;

	for (size_t i = 0; i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len, j = i;
		while (j < end && (text[j] == ' ' || text[j] == '\t'))
			j++;
		if (end - j >= 8 && strncmp(text + j, "async ", 6) == 0)
			j += 6;
		if (end - j >= 8 && strncmp(text + j, "def test", 8) == 0)
			tests++;
		i = end + 1;
	}
	return LAYOUT_EST_BASE + LAYOUT_EST_PER_TEST * (double)tests;
}

char *
layout_import_name(const char *relpath, int (*is_package)(void *ctx, const char *dir),
    void *ctx)
{
	char *dir = xstrdup(relpath), *slash, *name;
	const char *base = strrchr(relpath, '/');
	size_t blen;

	base = base ? base + 1 : relpath;
	blen = strlen(base);
	if (blen > 3 && strcmp(base + blen - 3, ".py") == 0)
		blen -= 3;
	name = xasprintf("%.*s", (int)blen, base);
	/* up through the folders that are packages */
	for (;;) {
		slash = strrchr(dir, '/');
		if (slash == NULL)
			break;
		*slash = '\0';
		if (!is_package(ctx, dir))
			break;
		const char *part = strrchr(dir, '/');
		char *longer = xasprintf("%s.%s", part ? part + 1 : dir, name);
		free(name);
		name = longer;
	}
	free(dir);
	return name;
}

static int
layout_dir_is_package(void *ctx, const char *dir)
{
	char *init = xasprintf("%s/%s/__init__.py", (const char *)ctx, dir);
	struct stat st;
	int r = lstat(init, &st) == 0 && S_ISREG(st.st_mode);

	free(init);
	return r;
}

void
layout_module_info(const char *project_dir, const char *relpath, double *est, char **iname)
{
	char *path = xasprintf("%s/%s", project_dir, relpath), *text = NULL;
	size_t len = 0;

	*est = LAYOUT_EST_BASE;
	if (util_read_file(path, LAYOUT_EST_READ_MAX, &text, &len) == 0)
		*est = layout_estimate(text, len);
	free(text);
	free(path);
	*iname = layout_import_name(relpath, layout_dir_is_package, (void *)project_dir);
}
