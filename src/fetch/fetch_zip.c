/*
 * fetch_zip.c - ZIP intake with libarchive (see fetch_zip.h).
 *
 * fetch_zip_scan reads only the member headers and applies the layout rules
 * (layout.c) to plan projects and modules. fetch_zip_extract writes one
 * project: every path is walked component by component with
 * openat(O_NOFOLLOW) below an open dest_dir descriptor, so no write can follow
 * a link or leave the folder, and the byte limits count what is really
 * written. fetch_zip_create_from_dir is the client side (`submit DIR`).
 *
 * Owns no global state; every call has its own libarchive handle, so any
 * thread may call these (they block on disk I/O).
 */
#include "fetch/fetch_zip.h"

#include "core/util.h"
#include "fetch/layout.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FETCH_ZIP_PATH_MAX 4096
#define FETCH_ZIP_BLOCK 10240
#define FETCH_ZIP_RATIO_MIN (1u << 20) /* ratio only checked past 1 MiB */
#define FETCH_ZIP_CREATE_MAX_ENTRIES 100000
#define FETCH_ZIP_CREATE_MAX_DEPTH 64

void
fetch_limits_default(struct fetch_limits *l)
{
	l->max_entries = 100000;
	l->max_total_bytes = (uint64_t)2 << 30;
	l->max_file_bytes = (uint64_t)512 << 20;
	l->max_ratio = 200;
}

/* libarchive's message, or a fallback; never NULL. */
static const char *
fetch_zip_aerr(struct archive *a)
{
	const char *s = archive_error_string(a);

	return s ? s : "unknown error";
}

static struct archive *
fetch_zip_open_read(const char *path, char *err, size_t errlen, int *rc)
{
	struct archive *a = archive_read_new();

	if (a == NULL) {
		*rc = -ENOMEM;
		util_seterr(err, errlen, "out of memory");
		return NULL;
	}
	archive_read_support_format_zip(a);
	if (archive_read_open_filename(a, path, FETCH_ZIP_BLOCK) != ARCHIVE_OK) {
		util_seterr(err, errlen, "upload is not a valid ZIP archive: %s",
		    fetch_zip_aerr(a));
		archive_read_free(a);
		*rc = -EINVAL;
		return NULL;
	}
	*rc = 0;
	return a;
}

/* The member name as stored (UTF-8 when libarchive can give it). */
static const char *
fetch_zip_entry_name(struct archive_entry *e)
{
	const char *s = archive_entry_pathname_utf8(e);

	if (s == NULL)
		s = archive_entry_pathname(e);
	return s;
}

/* ---- scan ---------------------------------------------------------------- */

struct fetch_zip_strv {
	char **v;
	size_t n;
	size_t cap;
};

static void
fetch_zip_strv_push(struct fetch_zip_strv *s, char *str)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = str;
}

static int
fetch_zip_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 if rel (relative to the project) lies in a folder holding pyvenv.cfg. */
static int
fetch_zip_in_venv(const char *rel, const struct fetch_zip_strv *venvs)
{
	for (size_t i = 0; i < venvs->n; i++) {
		size_t l = strlen(venvs->v[i]);
		if (strncmp(rel, venvs->v[i], l) == 0 && rel[l] == '/')
			return 1;
	}
	return 0;
}

/* Fill proj->modules from the regular files under proj->prefix; -E2BIG past
 * LAYOUT_MAX_MODULES. */
static int
fetch_zip_plan_modules(struct fetch_zip_project *proj, const struct fetch_zip_strv *files)
{
	struct fetch_zip_strv venvs = { NULL, 0, 0 }, mods = { NULL, 0, 0 };
	size_t pl = strlen(proj->prefix);

	for (size_t i = 0; i < files->n; i++) {
		const char *rel = files->v[i];
		if (strncmp(rel, proj->prefix, pl) != 0)
			continue;
		rel += pl;
		if (strcmp(rel, "pyvenv.cfg") == 0 || util_ends_with(rel, "/pyvenv.cfg"))
			fetch_zip_strv_push(&venvs, xasprintf("%.*s",
			    (int)(strlen(rel) - strlen("pyvenv.cfg") - (strchr(rel, '/') ? 1 : 0)),
			    rel));
	}
	for (size_t i = 0; i < files->n; i++) {
		const char *rel = files->v[i];
		if (strncmp(rel, proj->prefix, pl) != 0)
			continue;
		rel += pl;
		if (!layout_is_test_module(rel) || layout_path_skipped(rel))
			continue;
		if (fetch_zip_in_venv(rel, &venvs))
			continue;
		fetch_zip_strv_push(&mods, xstrdup(rel));
	}
	if (mods.n > 1)
		qsort(mods.v, mods.n, sizeof(*mods.v), fetch_zip_str_cmp);
	/* Duplicate members name one module once. */
	for (size_t i = 1, k = 1; i <= mods.n; i++) {
		if (i == mods.n) {
			mods.n = mods.n ? k : 0;
			break;
		}
		if (strcmp(mods.v[i], mods.v[k - 1]) == 0)
			free(mods.v[i]);
		else
			mods.v[k++] = mods.v[i];
	}
	layout_strv_free(venvs.v, venvs.n);
	proj->modules = mods.v;
	proj->nmodules = mods.n;
	return mods.n > LAYOUT_MAX_MODULES ? -E2BIG : 0;
}

int
fetch_zip_scan(const char *path, const char *root_name, const struct fetch_limits *lim,
               struct fetch_zip_plan **out, char *err, size_t errlen)
{
	struct fetch_limits def;
	struct fetch_zip_strv all = { NULL, 0, 0 }, files = { NULL, 0, 0 };
	struct fetch_zip_plan *plan = NULL;
	struct layout_project *lp = NULL;
	struct archive_entry *e;
	struct archive *a;
	size_t nentries = 0, nlp = 0, nmods = 0;
	int rc, r;

	*out = NULL;
	if (lim == NULL) {
		fetch_limits_default(&def);
		lim = &def;
	}
	a = fetch_zip_open_read(path, err, errlen, &rc);
	if (a == NULL)
		return rc;
	for (;;) {
		char clean[FETCH_ZIP_PATH_MAX];
		const char *name;

		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			util_seterr(err, errlen, "upload is not a valid ZIP archive: %s",
			    fetch_zip_aerr(a));
			rc = -EINVAL;
			goto out;
		}
		if (++nentries > lim->max_entries) {
			util_seterr(err, errlen, "the ZIP archive has more than %zu members",
			    lim->max_entries);
			rc = -E2BIG;
			goto out;
		}
		name = fetch_zip_entry_name(e);
		if (name == NULL || layout_clean_path(name, clean, sizeof(clean)) < 0)
			continue;
		fetch_zip_strv_push(&all, xstrdup(clean));
		if (archive_entry_filetype(e) == AE_IFREG && archive_entry_hardlink(e) == NULL)
			fetch_zip_strv_push(&files, xstrdup(clean));
	}
	if (nentries == 0) {
		util_seterr(err, errlen, "the ZIP archive is empty");
		rc = -ENOENT;
		goto out;
	}
	layout_find_projects((const char *const *)all.v, all.n, root_name, &lp, &nlp);
	plan = xcalloc(1, sizeof(*plan));
	plan->nentries = nentries;
	if (nlp > 0)
		plan->projects = xcalloc(nlp, sizeof(*plan->projects));
	plan->nprojects = nlp;
	for (size_t i = 0; i < nlp; i++) {
		struct fetch_zip_project *p = &plan->projects[i];
		p->name = lp[i].name;
		p->prefix = lp[i].prefix;
		lp[i].name = lp[i].prefix = NULL;
		if (fetch_zip_plan_modules(p, &files) < 0) {
			util_seterr(err, errlen, "project %s has more than %d test modules",
			    p->name, LAYOUT_MAX_MODULES);
			rc = -E2BIG;
			goto out;
		}
		nmods += p->nmodules;
	}
	if (nmods == 0) {
		util_seterr(err, errlen, "no test modules found: a project needs a tests/ "
		    "folder with test_*.py or *_test.py files");
		rc = -ENOENT;
		goto out;
	}
	*out = plan;
	plan = NULL;
	rc = 0;
out:
	fetch_zip_plan_free(plan);
	layout_projects_free(lp, nlp);
	layout_strv_free(all.v, all.n);
	layout_strv_free(files.v, files.n);
	archive_read_free(a);
	return rc;
}

void
fetch_zip_plan_free(struct fetch_zip_plan *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nprojects; i++) {
		free(p->projects[i].name);
		free(p->projects[i].prefix);
		layout_strv_free(p->projects[i].modules, p->projects[i].nmodules);
	}
	free(p->projects);
	free(p);
}

/* ---- extract ------------------------------------------------------------- */

struct fetch_zip_warn {
	struct fetch_zip_strv v;
	size_t more;
};

/* A member name made printable and short, for a warning. */
static void
fetch_zip_show_name(const char *name, char *out, size_t outlen)
{
	size_t o = 0;

	if (name == NULL)
		name = "(unnamed member)";
	for (const char *p = name; *p && o + 4 < outlen; p++) {
		unsigned char c = (unsigned char)*p;
		out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (*name && o + 4 >= outlen && strlen(name) > o) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void
fetch_zip_warn(struct fetch_zip_warn *w, const char *name, const char *why)
{
	char shown[256];

	if (w->v.n >= FETCH_ZIP_MAX_WARNINGS) {
		w->more++;
		return;
	}
	fetch_zip_show_name(name, shown, sizeof(shown));
	fetch_zip_strv_push(&w->v, xasprintf("dropped %s: %s", shown, why));
}

/* Why a name that layout_clean_path refused is unsafe. */
static const char *
fetch_zip_name_reason(const char *name)
{
	const char *p;

	if (name == NULL)
		return "invalid file name";
	if (name[0] == '/' || name[0] == '\\' || (name[0] && name[1] == ':'))
		return "path leaves the project";
	for (p = name; *p; p++) {
		if ((p == name || p[-1] == '/' || p[-1] == '\\') && p[0] == '.' &&
		    p[1] == '.' && (p[2] == '\0' || p[2] == '/' || p[2] == '\\'))
			return "path leaves the project";
	}
	return "invalid file name";
}

/*
 * Open (creating with mode 0755 if asked) every folder of rel but the last
 * component, never following a link. Returns a descriptor for the parent
 * folder and points *last at the last component; -ELOOP/-ENOTDIR when a
 * component is a link or not a folder.
 */
static int
fetch_zip_open_parent(int root, char *rel, int create, const char **last)
{
	char *p = rel, *slash;
	int fd = dup(root);

	if (fd < 0)
		return -errno;
	while ((slash = strchr(p, '/')) != NULL) {
		int nfd;

		*slash = '\0';
		nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
				nfd = -errno;
				*slash = '/';
				close(fd);
				return nfd;
			}
			nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			struct stat st;

			/* O_NOFOLLOW on a link gives ELOOP, or ENOTDIR with O_DIRECTORY. */
			nfd = -errno;
			if (nfd == -ENOTDIR && fstatat(fd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				nfd = -ELOOP;
			*slash = '/';
			close(fd);
			return nfd;
		}
		*slash = '/';
		close(fd);
		fd = nfd;
		p = slash + 1;
	}
	*last = p;
	return fd;
}

static const char *
fetch_zip_parent_reason(int rc)
{
	if (rc == -ELOOP)
		return "path goes through a link";
	if (rc == -ENOTDIR || rc == -EEXIST)
		return "conflicts with another member";
	return "cannot create its folder";
}

/* Write the member's data into fd, enforcing the limits. */
static int
fetch_zip_copy_data(struct archive *a, int fd, const char *rel,
    const struct fetch_limits *lim, uint64_t *total, char *err, size_t errlen)
{
	int64_t packed0 = archive_filter_bytes(a, -1);
	uint64_t written = 0;

	for (;;) {
		const void *blk;
		size_t size;
		la_int64_t off;
		int r = archive_read_data_block(a, &blk, &size, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			util_seterr(err, errlen, "corrupt ZIP member %s: %s", rel, fetch_zip_aerr(a));
			return -EINVAL;
		}
		if (off < 0)
			return -EINVAL;
		written += size;
		*total += size;
		if ((uint64_t)off + size > lim->max_file_bytes || written > lim->max_file_bytes) {
			util_seterr(err, errlen, "archive too large when unpacked: member %s is "
			    "over %" PRIu64 " bytes", rel, lim->max_file_bytes);
			return -EFBIG;
		}
		if (*total > lim->max_total_bytes) {
			util_seterr(err, errlen, "archive too large when unpacked: over %" PRIu64
			    " bytes in total", lim->max_total_bytes);
			return -EFBIG;
		}
		if (lim->max_ratio > 0 && written > FETCH_ZIP_RATIO_MIN) {
			/* Compressed bytes consumed so far; read-ahead only makes
			 * this larger, so the check never fires early. */
			int64_t packed = archive_filter_bytes(a, -1) - packed0;
			if (packed < 1)
				packed = 1;
			if (written / (uint64_t)packed > lim->max_ratio) {
				util_seterr(err, errlen, "archive too large when unpacked: member %s "
				    "expands more than %u times", rel, lim->max_ratio);
				return -EFBIG;
			}
		}
		for (size_t done = 0; done < size;) {
			ssize_t w = pwrite(fd, (const char *)blk + done, size - done,
			    (off_t)off + (off_t)done);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				util_seterr(err, errlen, "cannot write %s: %s", rel, strerror(errno));
				return -errno;
			}
			done += (size_t)w;
		}
	}
	return 0;
}

/* Create the regular file rel (already a clean project path). */
static int
fetch_zip_write_file(struct archive *a, struct archive_entry *e, int root, char *rel,
    const struct fetch_limits *lim, uint64_t *total, struct fetch_zip_warn *w,
    char *err, size_t errlen)
{
	mode_t mode = (archive_entry_perm(e) & 0111) ? 0755 : 0644;
	const char *last;
	int pfd, fd, r;

	pfd = fetch_zip_open_parent(root, rel, 1, &last);
	if (pfd < 0) {
		fetch_zip_warn(w, rel, fetch_zip_parent_reason(pfd));
		return 0;
	}
	fd = openat(pfd, last, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* A repeated member: the later one wins, unless a folder is there. */
		if (unlinkat(pfd, last, 0) == 0)
			fd = openat(pfd, last, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
	}
	if (fd < 0) {
		fetch_zip_warn(w, rel, "conflicts with another member");
		close(pfd);
		return 0;
	}
	r = fetch_zip_copy_data(a, fd, rel, lim, total, err, errlen);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	close(pfd);
	return r;
}

static void
fetch_zip_write_dir(int root, char *rel, struct fetch_zip_warn *w)
{
	const char *last;
	struct stat st;
	int pfd;

	pfd = fetch_zip_open_parent(root, rel, 1, &last);
	if (pfd < 0) {
		fetch_zip_warn(w, rel, fetch_zip_parent_reason(pfd));
		return;
	}
	if (mkdirat(pfd, last, 0755) < 0 && errno == EEXIST &&
	    (fstatat(pfd, last, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)))
		fetch_zip_warn(w, rel, "conflicts with another member");
	close(pfd);
}

static void
fetch_zip_write_link(int root, char *rel, const char *target, struct fetch_zip_warn *w)
{
	const char *last;
	int pfd;

	if (target == NULL || !layout_link_inside(rel, target)) {
		fetch_zip_warn(w, rel, "link points outside the project");
		return;
	}
	pfd = fetch_zip_open_parent(root, rel, 1, &last);
	if (pfd < 0) {
		fetch_zip_warn(w, rel, fetch_zip_parent_reason(pfd));
		return;
	}
	if (symlinkat(target, pfd, last) < 0 &&
	    (errno != EEXIST || unlinkat(pfd, last, 0) < 0 || symlinkat(target, pfd, last) < 0))
		fetch_zip_warn(w, rel, "conflicts with another member");
	close(pfd);
}

int
fetch_zip_extract(const char *path, const char *prefix, const char *dest_dir,
                  const struct fetch_limits *lim, char ***warnings, size_t *nwarnings,
                  char *err, size_t errlen)
{
	struct fetch_limits def;
	struct fetch_zip_warn w = { { NULL, 0, 0 }, 0 };
	struct archive *a = NULL;
	struct archive_entry *e;
	uint64_t total = 0;
	size_t pl, nentries = 0;
	int root = -1, rc, r;

	*warnings = NULL;
	*nwarnings = 0;
	if (prefix == NULL)
		prefix = "";
	pl = strlen(prefix);
	if (lim == NULL) {
		fetch_limits_default(&def);
		lim = &def;
	}
	rc = util_mkdir_p(dest_dir, 0700);
	if (rc < 0) {
		util_seterr(err, errlen, "cannot create %s: %s", dest_dir, strerror(-rc));
		return rc;
	}
	root = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		rc = -errno;
		util_seterr(err, errlen, "cannot open %s: %s", dest_dir, strerror(errno));
		return rc;
	}
	a = fetch_zip_open_read(path, err, errlen, &rc);
	if (a == NULL)
		goto out;
	for (;;) {
		char clean[FETCH_ZIP_PATH_MAX];
		const char *name;
		char *rel;
		unsigned type;

		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			util_seterr(err, errlen, "upload is not a valid ZIP archive: %s",
			    fetch_zip_aerr(a));
			rc = -EINVAL;
			goto out;
		}
		if (++nentries > lim->max_entries) {
			util_seterr(err, errlen, "archive too large when unpacked: more than %zu "
			    "members", lim->max_entries);
			rc = -EFBIG;
			goto out;
		}
		name = fetch_zip_entry_name(e);
		if (name == NULL || layout_clean_path(name, clean, sizeof(clean)) < 0) {
			/* Only members that would belong to this project are reported. */
			if (pl == 0 || (name && strncmp(name, prefix, pl) == 0))
				fetch_zip_warn(&w, name, fetch_zip_name_reason(name));
			continue;
		}
		if (strncmp(clean, prefix, pl) != 0 || clean[pl] == '\0')
			continue;
		rel = clean + pl;
		type = archive_entry_filetype(e);
		if (archive_entry_is_encrypted(e)) {
			fetch_zip_warn(&w, rel, "encrypted members are not supported");
			continue;
		}
		if (archive_entry_hardlink(e) != NULL) {
			fetch_zip_warn(&w, rel, "hard links are not allowed");
			continue;
		}
		switch (type) {
		case AE_IFREG:
			rc = fetch_zip_write_file(a, e, root, rel, lim, &total, &w, err, errlen);
			if (rc < 0)
				goto out;
			break;
		case AE_IFDIR:
			fetch_zip_write_dir(root, rel, &w);
			break;
		case AE_IFLNK:
			fetch_zip_write_link(root, rel, archive_entry_symlink(e), &w);
			break;
		default:
			fetch_zip_warn(&w, rel, "special files are not allowed");
			break;
		}
	}
	rc = 0;
out:
	if (w.more > 0)
		fetch_zip_strv_push(&w.v, xasprintf("... and %zu more", w.more));
	*warnings = w.v.v;
	*nwarnings = w.v.n;
	if (a != NULL)
		archive_read_free(a);
	close(root);
	return rc;
}

/* ---- create -------------------------------------------------------------- */

struct fetch_zip_writer {
	struct archive *a;
	struct stat out_st;   /* the ZIP being written, never packed into itself */
	size_t nentries;
	char *err;
	size_t errlen;
	int exact;            /* everything, no prefix, fixed times (project blobs) */
};

static int
fetch_zip_skip_dir(int pfd, const char *name)
{
	int fd;
	int venv;

	if (strcmp(name, ".git") == 0 || strcmp(name, "__pycache__") == 0 ||
	    strcmp(name, "node_modules") == 0 || strcmp(name, ".pytest_cache") == 0)
		return 1;
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 1;
	venv = faccessat(fd, "pyvenv.cfg", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	close(fd);
	return venv;
}

static int
fetch_zip_add(struct fetch_zip_writer *zw, int pfd, const char *name, const char *member,
    const struct stat *st)
{
	struct archive_entry *e = archive_entry_new();
	char target[FETCH_ZIP_PATH_MAX];
	int fd = -1, rc = 0;

	if (e == NULL)
		return -ENOMEM;
	if (++zw->nentries > FETCH_ZIP_CREATE_MAX_ENTRIES) {
		util_seterr(zw->err, zw->errlen, "too many files (more than %d)",
		    FETCH_ZIP_CREATE_MAX_ENTRIES);
		rc = -E2BIG;
		goto out;
	}
	archive_entry_set_pathname(e, member);
	archive_entry_set_mtime(e, zw->exact ? 0 : st->st_mtim.tv_sec, 0);
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlinkat(pfd, name, target, sizeof(target) - 1);
		if (n < 0)
			goto out; /* vanished: skip */
		target[n] = '\0';
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_perm(e, 0777);
		archive_entry_set_symlink(e, target);
	} else if (S_ISDIR(st->st_mode)) {
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_perm(e, 0755);
	} else {
		fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			goto out;
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, (st->st_mode & 0111) ? 0755 : 0644);
		archive_entry_set_size(e, st->st_size);
	}
	if (archive_write_header(zw->a, e) != ARCHIVE_OK) {
		util_seterr(zw->err, zw->errlen, "cannot add %s: %s", member,
		    fetch_zip_aerr(zw->a));
		rc = -EIO;
		goto out;
	}
	if (fd >= 0) {
		char blk[65536];
		off_t left = st->st_size;

		while (left > 0) {
			ssize_t n = read(fd, blk, sizeof(blk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (n > left)
				n = (ssize_t)left; /* the file grew: keep the size we promised */
			if (archive_write_data(zw->a, blk, (size_t)n) < 0) {
				util_seterr(zw->err, zw->errlen, "cannot add %s: %s", member,
				    fetch_zip_aerr(zw->a));
				rc = -EIO;
				goto out;
			}
			left -= n;
		}
		/* A file that shrank while being read is padded with zeros. */
		memset(blk, 0, sizeof(blk));
		while (left > 0) {
			size_t n = left > (off_t)sizeof(blk) ? sizeof(blk) : (size_t)left;
			if (archive_write_data(zw->a, blk, n) < 0) {
				rc = -EIO;
				goto out;
			}
			left -= (off_t)n;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	archive_entry_free(e);
	return rc;
}

/* Add the contents of the folder open at dfd (consumed), named prefix in the ZIP. */
static int
fetch_zip_add_dir(struct fetch_zip_writer *zw, int dfd, const char *prefix, int depth)
{
	struct fetch_zip_strv v = { NULL, 0, 0 };
	struct dirent *de;
	DIR *d;
	int rc = 0;

	d = fdopendir(dfd);
	if (d == NULL) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	/* Sorted, so the same folder always gives the same ZIP. */
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		fetch_zip_strv_push(&v, xstrdup(de->d_name));
	}
	if (v.n > 1)
		qsort(v.v, v.n, sizeof(*v.v), fetch_zip_str_cmp);
	for (size_t i = 0; i < v.n && rc == 0; i++) {
		char member[FETCH_ZIP_PATH_MAX];
		struct stat st;
		int n;

		n = *prefix ? snprintf(member, sizeof(member), "%s/%s", prefix, v.v[i]) :
		    snprintf(member, sizeof(member), "%s", v.v[i]);
		if (n < 0 || (size_t)n >= sizeof(member))
			continue;
		if (fstatat(dirfd(d), v.v[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (st.st_dev == zw->out_st.st_dev && st.st_ino == zw->out_st.st_ino)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int cfd;

			if ((!zw->exact && fetch_zip_skip_dir(dirfd(d), v.v[i])) ||
			    depth + 1 >= FETCH_ZIP_CREATE_MAX_DEPTH)
				continue;
			rc = fetch_zip_add(zw, dirfd(d), v.v[i], member, &st);
			if (rc < 0)
				break;
			cfd = openat(dirfd(d), v.v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0)
				continue;
			rc = fetch_zip_add_dir(zw, cfd, member, depth + 1);
		} else if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
			rc = fetch_zip_add(zw, dirfd(d), v.v[i], member, &st);
		}
	}
	layout_strv_free(v.v, v.n);
	closedir(d);
	return rc;
}

static int
fetch_zip_create(const char *dir, const char *zip_path, int exact, char *err, size_t errlen)
{
	struct fetch_zip_writer zw;
	char *real = NULL, *base;
	int dfd = -1, rc;

	memset(&zw, 0, sizeof(zw));
	zw.err = err;
	zw.errlen = errlen;
	zw.exact = exact;
	real = realpath(dir, NULL);
	if (real == NULL) {
		rc = -errno;
		util_seterr(err, errlen, "cannot open %s: %s", dir, strerror(errno));
		return rc;
	}
	base = strrchr(real, '/');
	base = (base && base[1]) ? base + 1 : "project";
	dfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		util_seterr(err, errlen, "cannot open %s: %s", dir, strerror(errno));
		goto out;
	}
	zw.a = archive_write_new();
	if (zw.a == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	archive_write_set_format_zip(zw.a);
	archive_write_zip_set_compression_deflate(zw.a);
	if (archive_write_open_filename(zw.a, zip_path) != ARCHIVE_OK) {
		util_seterr(err, errlen, "cannot create %s: %s", zip_path, fetch_zip_aerr(zw.a));
		rc = -EIO;
		goto out;
	}
	if (stat(zip_path, &zw.out_st) < 0)
		memset(&zw.out_st, 0, sizeof(zw.out_st));
	rc = fetch_zip_add_dir(&zw, dfd, exact ? "" : base, 0);
	dfd = -1; /* consumed */
	if (rc < 0)
		goto out;
	if (archive_write_close(zw.a) != ARCHIVE_OK) {
		util_seterr(err, errlen, "cannot write %s: %s", zip_path, fetch_zip_aerr(zw.a));
		rc = -EIO;
		goto out;
	}
	rc = 0;
out:
	if (zw.a != NULL)
		archive_write_free(zw.a);
	if (rc < 0 && zw.out_st.st_ino != 0)
		unlink(zip_path); /* no half-written ZIP */
	if (dfd >= 0)
		close(dfd);
	free(real);
	return rc;
}

int
fetch_zip_create_from_dir(const char *dir, const char *zip_path, char *err, size_t errlen)
{
	return fetch_zip_create(dir, zip_path, 0, err, errlen);
}

int
fetch_zip_create_exact(const char *dir, const char *zip_path, char *err, size_t errlen)
{
	return fetch_zip_create(dir, zip_path, 1, err, errlen);
}
