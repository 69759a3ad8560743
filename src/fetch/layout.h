/*
 * layout.h - the rules that say what a project is and which files are its test
 * modules, shared by ZIP intake, git intake and the runner.
 *
 * Everything here is pure (no I/O) except layout_list_modules, which walks a
 * folder on disk with the same rules the archive scan uses, and
 * layout_module_info, which reads one module.
 */
#ifndef MESHTEST_LAYOUT_H
#define MESHTEST_LAYOUT_H

#include <stddef.h>

#define LAYOUT_MAX_MODULES 10000
#define LAYOUT_MAX_DEPTH 32

/* 1 if relpath (relative to a project root, '/'-separated) is a test module:
 * under "tests/" (any depth) and basename matches test_*.py or *_test.py. */
int layout_is_test_module(const char *relpath);

/* 1 if some folder on relpath (not the last component) is one the module
 * search skips: ".git", hidden folders, "__pycache__", "node_modules". */
int layout_path_skipped(const char *relpath);

/* Normalise an archive member name: strip leading "./", collapse "//" and "/./".
 * Backslashes are treated as '/' (ZIPs made on Windows), and a trailing '/'
 * is dropped. Returns 0 and writes the clean relative path to out; -EINVAL when
 * the name is absolute, contains a ".." component, a NUL/control char, a
 * drive ("C:"), or is empty after cleaning; -ENAMETOOLONG past outlen. */
int layout_clean_path(const char *name, char *out, size_t outlen);

/* 1 if a symlink stored at linkpath (clean, relative to the project root) with
 * the given target stays inside the project root; 0 if the target is absolute
 * or climbs out. Conservative: a ".." after a normal component (e.g. "a/../x")
 * is refused too, because "a" may itself be a link and make ".." land
 * somewhere a lexical check cannot see. */
int layout_link_inside(const char *linkpath, const char *target);

/* Project discovery per SPEC section 1 "Projects and ids", from the list of clean
 * member paths of a ZIP (files and dirs, dirs may or may not end in '/'):
 * the projects are the folders nearest the root that hold a `tests/` folder: the
 * root itself (root prefix ""), else each top-level folder, else (a bulk download
 * wrapped in one folder) each folder inside that single top-level folder;
 * `__MACOSX/` and hidden folders (name starting with '.') are ignored. A folder
 * "holds a tests/ folder" if any path starts with "<folder>/tests/".
 * Output: array of struct layout_project {char *name; char *prefix;} where
 * prefix is "" or "alice/" or "wrap/alice/", and name is the folder name (for
 * the root-is-project case: the name passed as root_name, e.g. the ZIP's file
 * name without ".zip", or "project" if NULL). Sorted by name. Returns 0 (n may be 0). */
struct layout_project { char *name; char *prefix; };
int layout_find_projects(const char *const *paths, size_t n, const char *root_name,
                         struct layout_project **out, size_t *nout);
void layout_projects_free(struct layout_project *p, size_t n);

/* Make project ids unique in submission order: a repeated name gets "-2", "-3", ...
 * (in place; each ids[i] is malloc'ed and may be replaced). */
void layout_dedupe_ids(char **ids, size_t n);

/* The repository name of a git URL as the project id: last path component without
 * ".git" and trailing '/', e.g. "https://h/org/repo.git" -> "repo",
 * "git@host:org/repo" -> "repo". A query or fragment is ignored; characters
 * outside [A-Za-z0-9._-] become '_'. Returns malloc'ed string or NULL when none. */
char *layout_repo_name(const char *url);

/* Walk a project folder on disk (never following symlinks, skipping .git, hidden
 * folders, __pycache__, node_modules, and any folder that contains pyvenv.cfg (a
 * committed virtualenv)), and return the sorted relative paths of its test
 * modules (layout_is_test_module). Caps: at most 10000 modules (-E2BIG past
 * it), depth 32 (deeper folders are not searched). A project without a tests/
 * folder gives 0 modules. */
int layout_list_modules(const char *project_dir, char ***out, size_t *nout);
void layout_strv_free(char **v, size_t n);

/*
 * What the scheduler needs to know of a module, read once after fetching:
 * the name pytest's default import mode gives it (the dotted path through
 * the enclosing folders that hold an __init__.py, else the bare file name;
 * two modules with the same name cannot share a session) and an estimate of
 * its duration from the number of its test functions. *iname is malloc'ed.
 */
void layout_module_info(const char *project_dir, const char *relpath, double *est,
    char **iname);
/* The estimate for a module source: pure. */
double layout_estimate(const char *text, size_t len);
/* The import name for relpath, given which folders are packages: pure. */
char *layout_import_name(const char *relpath, int (*is_package)(void *ctx, const char *dir),
    void *ctx);

#endif
