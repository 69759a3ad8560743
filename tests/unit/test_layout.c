/*
 * test_layout.c - the project and module rules of fetch/layout.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "fetch/layout.h"

static void
test_is_test_module(void **state)
{
	static const struct { const char *path; int want; } cases[] = {
		{ "tests/test_a.py", 1 },
		{ "tests/sub/b_test.py", 1 },
		{ "tests/a/b/c/test_deep.py", 1 },
		{ "tests/helper.py", 0 },
		{ "tests/conftest.py", 0 },
		{ "src/test_x.py", 0 },
		{ "test_x.py", 0 },
		{ "tests/test_a.txt", 0 },
		{ "tests/test_a.pyc", 0 },
		{ "teststest_a.py", 0 },
		{ "x/tests/test_a.py", 0 },
		{ "", 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(layout_is_test_module(cases[i].path), cases[i].want);
}

static void
test_path_skipped(void **state)
{
	(void)state;
	assert_int_equal(layout_path_skipped("tests/test_a.py"), 0);
	assert_int_equal(layout_path_skipped("tests/.hidden/test_a.py"), 1);
	assert_int_equal(layout_path_skipped("tests/__pycache__/test_a.py"), 1);
	assert_int_equal(layout_path_skipped("tests/node_modules/x/test_a.py"), 1);
	assert_int_equal(layout_path_skipped("tests/.test_a.py"), 0); /* files are not folders */
}

static void
test_clean_path(void **state)
{
	static const struct { const char *in; int rc; const char *out; } cases[] = {
		{ "../x", -EINVAL, NULL },
		{ "/etc/passwd", -EINVAL, NULL },
		{ "a/../../b", -EINVAL, NULL },
		{ "a/..", -EINVAL, NULL },
		{ "./a//b", 0, "a/b" },
		{ "a/./b/", 0, "a/b" },
		{ "./././a", 0, "a" },
		{ "C:\\x", -EINVAL, NULL },
		{ "c:x", -EINVAL, NULL },
		{ "..\\evil", -EINVAL, NULL },
		{ "win\\dir\\f.py", 0, "win/dir/f.py" },
		{ "a/\x01b", -EINVAL, NULL },
		{ "a/b\x7f", -EINVAL, NULL },
		{ "./", -EINVAL, NULL },
		{ "", -EINVAL, NULL },
		{ "..foo/b..", 0, "..foo/b.." },
		{ "alice/tests/test_a.py", 0, "alice/tests/test_a.py" },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = layout_clean_path(cases[i].in, out, sizeof(out));
		assert_int_equal(rc, cases[i].rc);
		if (rc == 0)
			assert_string_equal(out, cases[i].out);
	}
	assert_int_equal(layout_clean_path("abcdefgh/ijk", out, 12), -ENAMETOOLONG);
	assert_int_equal(layout_clean_path("abcdefgh/ij", out, 12), 0);
	assert_string_equal(out, "abcdefgh/ij");
}

static void
test_link_inside(void **state)
{
	static const struct { const char *link, *target; int want; } cases[] = {
		{ "venv/bin/python", "../lib/x", 1 },
		{ "venv/bin/python3", "python", 1 },
		{ "a", "../../etc", 0 },
		{ "a", "..", 0 },
		{ "a", ".", 1 },
		{ "x/y/a", "../../b", 1 },
		{ "x/y/a", "../../../b", 0 },
		{ "l", "/usr/bin/python3", 0 },
		{ "l", "", 0 },
		{ "l", "sub/../x", 0 }, /* sub may be a link: refused */
		{ "l", "./sub//x", 1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(layout_link_inside(cases[i].link, cases[i].target), cases[i].want);
}

struct proj_case {
	const char *name;
	const char *paths[12];
	const char *root_name;
	size_t n;
	const char *want_name[4];
	const char *want_prefix[4];
};

static void
test_find_projects(void **state)
{
	static const struct proj_case cases[] = {
		{ "root project", { "tests/", "tests/test_a.py", "app.py", "alice/tests/test_x.py" },
		  "upload", 1, { "upload" }, { "" } },
		{ "root project, default name", { "tests/test_a.py" }, NULL, 1, { "project" }, { "" } },
		{ "top-level projects",
		  { "bob/", "bob/tests/test_b.py", "alice/tests/", "alice/tests/test_a.py",
		    "carol/src/x.py", "README.md" },
		  "up", 2, { "alice", "bob" }, { "alice/", "bob/" } },
		{ "bulk download wrapper",
		  { "wrap/", "wrap/zed/tests/test_z.py", "wrap/alice/tests/a_test.py",
		    "wrap/alice/src/m.py", "wrap/notes/readme.txt", "__MACOSX/wrap/._x" },
		  "up", 2, { "alice", "zed" }, { "wrap/alice/", "wrap/zed/" } },
		{ "__MACOSX and hidden ignored",
		  { "__MACOSX/tests/test_a.py", ".hidden/tests/test_b.py", "real/tests/test_c.py" },
		  "up", 1, { "real" }, { "real/" } },
		{ "hidden inside wrapper ignored",
		  { "w/.git/tests/test_a.py", "w/p/tests/test_c.py" },
		  "up", 1, { "p" }, { "w/p/" } },
		{ "no tests folder", { "alice/src/x.py", "bob/test_a.py", "README" }, "up", 0, { NULL },
		  { NULL } },
		{ "two top-level folders, projects one level deeper are not found",
		  { "a/p/tests/test_x.py", "b/q/tests/test_y.py" }, "up", 0, { NULL }, { NULL } },
		{ "tests folder entry without slash",
		  { "alice/tests", "bob/x.py" }, "up", 1, { "alice" }, { "alice/" } },
	};
	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct layout_project *p = NULL;
		size_t np = 99, n = 0;

		while (n < 12 && cases[c].paths[n])
			n++;
		assert_int_equal(layout_find_projects(cases[c].paths, n, cases[c].root_name, &p, &np), 0);
		if (np != cases[c].n)
			fail_msg("%s: %zu projects, want %zu", cases[c].name, np, cases[c].n);
		for (size_t i = 0; i < np; i++) {
			assert_string_equal(p[i].name, cases[c].want_name[i]);
			assert_string_equal(p[i].prefix, cases[c].want_prefix[i]);
		}
		layout_projects_free(p, np);
	}
}

static void
test_dedupe_ids(void **state)
{
	static const struct { const char *in[5]; const char *out[5]; size_t n; } cases[] = {
		{ { "a", "a", "b", "a" }, { "a", "a-2", "b", "a-3" }, 4 },
		{ { "x", "y" }, { "x", "y" }, 2 },
		{ { "a", "a-2", "a" }, { "a", "a-2", "a-3" }, 3 },
	};
	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char *ids[5];

		for (size_t i = 0; i < cases[c].n; i++)
			ids[i] = xstrdup(cases[c].in[i]);
		layout_dedupe_ids(ids, cases[c].n);
		for (size_t i = 0; i < cases[c].n; i++) {
			assert_string_equal(ids[i], cases[c].out[i]);
			free(ids[i]);
		}
	}
}

static void
test_repo_name(void **state)
{
	static const struct { const char *url, *want; } cases[] = {
		{ "https://h/org/repo.git", "repo" },
		{ "https://github.com/org/repo", "repo" },
		{ "https://github.com/org/repo/", "repo" },
		{ "https://github.com/org/repo.git/", "repo" },
		{ "git@host:org/repo", "repo" },
		{ "git@host:repo.git", "repo" },
		{ "ssh://git@host:22/org/my-repo.git", "my-repo" },
		{ "https://h/org/repo?x=1#frag", "repo" },
		{ "file:///tmp/a b/proj", "proj" },
		{ "https://h/org/we$ird", "we_ird" },
		{ "", NULL },
		{ "https://h/org/..", NULL },
		{ ".git", NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = layout_repo_name(cases[i].url);
		if (cases[i].want == NULL) {
			assert_null(got);
		} else {
			assert_non_null(got);
			assert_string_equal(got, cases[i].want);
		}
		free(got);
	}
}

static void
touch(const char *root, const char *rel)
{
	char *p = xasprintf("%s/%s", root, rel);
	char *slash = strrchr(p, '/');

	*slash = '\0';
	assert_int_equal(util_mkdir_p(p, 0755), 0);
	*slash = '/';
	assert_int_equal(util_write_file(p, "x", 1, 0644), 0);
	free(p);
}

static void
test_list_modules(void **state)
{
	char tmpl[] = "/tmp/test_layout_XXXXXX";
	char *root = mkdtemp(tmpl), *p;
	char **v = NULL;
	size_t n = 0;
	static const char *const want[] = {
		"tests/a_test.py", "tests/sub/deeper/test_d.py", "tests/test_b.py",
	};

	(void)state;
	assert_non_null(root);
	touch(root, "tests/test_b.py");
	touch(root, "tests/a_test.py");
	touch(root, "tests/helper.py");
	touch(root, "tests/sub/deeper/test_d.py");
	touch(root, "tests/__pycache__/test_b.py");
	touch(root, "tests/.hidden/test_h.py");
	touch(root, "tests/node_modules/test_n.py");
	touch(root, "tests/venv/pyvenv.cfg");
	touch(root, "tests/venv/lib/test_v.py");
	touch(root, "src/test_s.py");
	touch(root, ".git/tests/test_g.py");
	/* A link to a folder with modules is never followed. */
	touch(root, "other/test_o.py");
	p = xasprintf("%s/tests/linked", root);
	assert_int_equal(symlink("../other", p), 0);
	free(p);
	p = xasprintf("%s/tests/test_link.py", root);
	assert_int_equal(symlink("a_test.py", p), 0);
	free(p);

	assert_int_equal(layout_list_modules(root, &v, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i], want[i]);
	layout_strv_free(v, n);

	assert_int_equal(util_rm_rf(root), 0);
	assert_int_equal(layout_list_modules(root, &v, &n), -ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_test_module),
		cmocka_unit_test(test_path_skipped),
		cmocka_unit_test(test_clean_path),
		cmocka_unit_test(test_link_inside),
		cmocka_unit_test(test_find_projects),
		cmocka_unit_test(test_dedupe_ids),
		cmocka_unit_test(test_repo_name),
		cmocka_unit_test(test_list_modules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
