/*
 * fetch_zip.h - ZIP intake: plan the projects of an uploaded ZIP, extract one
 * project safely, and build a ZIP from a folder (for `meshtest submit DIR`).
 */
#ifndef MESHTEST_FETCH_ZIP_H
#define MESHTEST_FETCH_ZIP_H

#include <stddef.h>
#include <stdint.h>

#define FETCH_ZIP_MAX_WARNINGS 100

struct fetch_limits {
	size_t max_entries;        /* default 100000 */
	uint64_t max_total_bytes;  /* total unpacked, default 2 GiB */
	uint64_t max_file_bytes;   /* one member unpacked, default 512 MiB */
	unsigned max_ratio;        /* unpacked/compressed per member, default 200 (only enforced for members > 1 MiB unpacked) */
};
void fetch_limits_default(struct fetch_limits *l);

struct fetch_zip_project {
	char *name;          /* project id before de-duplication */
	char *prefix;        /* member prefix in the archive ("" or "alice/") */
	char **modules;      /* sorted relative test module paths, e.g. "tests/test_a.py" */
	size_t nmodules;
};
struct fetch_zip_plan { struct fetch_zip_project *projects; size_t nprojects; size_t nentries; };

/* Read only the headers (fast) of the ZIP at path and plan the projects.
 * Errors (negative errno + a clear lowercase message in err):
 *  not a ZIP / corrupt -> -EINVAL "upload is not a valid ZIP archive: ..."
 *  zero entries -> -ENOENT "the ZIP archive is empty"
 *  no project with any test module -> -ENOENT "no test modules found: a project needs a tests/ folder with test_*.py or *_test.py files"
 *  over max_entries -> -E2BIG.
 * Members whose names are unsafe are ignored here (extraction reports them). The
 * modules list only counts regular-file members that are safe, and applies the
 * layout_list_modules rules (hidden folders, __pycache__, node_modules and
 * folders holding pyvenv.cfg are skipped). A project found by the layout rules
 * but without any module is kept with nmodules == 0 (the caller reports it).
 * lim may be NULL (defaults). */
int fetch_zip_scan(const char *path, const char *root_name, const struct fetch_limits *lim,
                   struct fetch_zip_plan **out, char *err, size_t errlen);
void fetch_zip_plan_free(struct fetch_zip_plan *p);

/* Extract the members under prefix into dest_dir (created 0700 if missing),
 * stripping the prefix. Never writes outside dest_dir: members with unsafe names
 * (absolute, "..", etc.), symlinks whose target leaves the project (layout_link_inside
 * relative to the project root), hardlinks, device/fifo members are NOT written
 * and each adds a warning string like "dropped ../evil.txt: path leaves the project"
 * (cap 100 warnings, then one "... and N more"). Links that stay inside are created
 * as symlinks. Every path component is opened with openat(O_NOFOLLOW) relative
 * to dest_dir, so a member below a link (even one planted earlier in the same
 * archive) is dropped, never written through the link. File modes: 0644, or
 * 0755 when any executable bit is set; folders 0755. Limits are enforced on
 * the bytes really written: on a bomb extraction stops with -EFBIG and err
 * "archive too large when unpacked: ..."; what was written so far stays in
 * dest_dir (the caller removes it). A corrupt member gives -EINVAL.
 * Warnings are returned as a malloc'ed string array (free with
 * layout_strv_free), also on error. lim may be NULL (defaults). */
int fetch_zip_extract(const char *path, const char *prefix, const char *dest_dir,
                      const struct fetch_limits *lim, char ***warnings, size_t *nwarnings,
                      char *err, size_t errlen);

/* Create a ZIP at zip_path from the folder dir (used by `meshtest submit DIR`):
 * members are "<basename of dir>/<relative path>", skipping .git, __pycache__,
 * .pytest_cache, folders holding pyvenv.cfg (virtualenvs), node_modules;
 * symlinks stored as symlinks; other special files skipped. Caps: 100000
 * members, depth 64. Returns 0 or negative errno with err. */
int fetch_zip_create_from_dir(const char *dir, const char *zip_path, char *err, size_t errlen);

/*
 * A ZIP of everything under dir (nothing skipped), members relative to dir,
 * in sorted order with fixed times: the same tree always gives the same
 * bytes. Used for content-addressed project archives.
 */
int fetch_zip_create_exact(const char *dir, const char *zip_path, char *err, size_t errlen);

#endif
