/*
 * test_fetch_zip.c - ZIP intake: scan, safe extraction, limits, and the
 * folder-to-ZIP writer. Every ZIP is built at test time with libarchive in a
 * mkdtemp folder, and every artifact stays in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "fetch/fetch_zip.h"
#include "fetch/layout.h"

/* libarchive's ZIP writer refuses special files: M_DEV is written as an empty
 * regular file whose central-directory mode is then patched to S_IFBLK
 * (libarchive's reader turns a FIFO mode into a regular file, a device not). */
enum member_type { M_FILE, M_DIR, M_LINK, M_ZEROS, M_NOISE, M_DEV };

struct member {
	enum member_type type;
	const char *name;
	const char *data;    /* file contents, or link target */
	size_t zeros;        /* M_ZEROS, M_NOISE: this many zero / pseudo-random bytes */
	unsigned perm;
};

static char *tmp_root;

static int
setup(void **state)
{
	char tmpl[] = "/tmp/test_fetch_zip_XXXXXX";

	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	tmp_root = xstrdup(tmpl);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	util_rm_rf(tmp_root);
	free(tmp_root);
	return 0;
}

static char *
tpath(const char *rel)
{
	return xasprintf("%s/%s", tmp_root, rel);
}

/* Set the Unix mode of member name in the ZIP's central directory. */
static void
patch_mode(const char *path, const char *name, unsigned mode)
{
	char *data = NULL;
	size_t len, nl = strlen(name);
	int patched = 0;

	assert_int_equal(util_read_file(path, 1 << 26, &data, &len), 0);
	for (size_t i = 0; i + 46 + nl <= len; i++) {
		unsigned char *h = (unsigned char *)data + i;
		if (memcmp(h, "PK\1\2", 4) != 0)
			continue;
		if ((size_t)(h[28] | h[29] << 8) != nl || memcmp(h + 46, name, nl) != 0)
			continue;
		h[40] = (unsigned char)(mode & 0xff);
		h[41] = (unsigned char)(mode >> 8);
		patched = 1;
	}
	assert_true(patched);
	assert_int_equal(util_write_file(path, data, len, 0644), 0);
	free(data);
}

/* Build a ZIP at path from the member table. */
static void
make_zip(const char *path, const struct member *m, size_t n)
{
	struct archive *a = archive_write_new();

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();

		archive_entry_set_pathname(e, m[i].name);
		switch (m[i].type) {
		case M_FILE:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, m[i].perm ? m[i].perm : 0644);
			archive_entry_set_size(e, (la_int64_t)strlen(m[i].data));
			break;
		case M_ZEROS:
		case M_NOISE:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
			archive_entry_set_size(e, (la_int64_t)m[i].zeros);
			break;
		case M_DIR:
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, 0755);
			break;
		case M_LINK:
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_perm(e, 0777);
			archive_entry_set_symlink(e, m[i].data);
			break;
		case M_DEV:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
			archive_entry_set_size(e, 0);
			break;
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (m[i].type == M_FILE) {
			assert_int_equal(archive_write_data(a, m[i].data, strlen(m[i].data)),
			    (la_ssize_t)strlen(m[i].data));
		} else if (m[i].type == M_ZEROS || m[i].type == M_NOISE) {
			static char zero[65536];
			uint32_t x = 12345;
			for (size_t left = m[i].zeros; left > 0;) {
				size_t k = left < sizeof(zero) ? left : sizeof(zero);
				for (size_t j = 0; m[i].type == M_NOISE && j < k; j++) {
					x = x * 1103515245u + 12345u;
					zero[j] = (char)(x >> 24);
				}
				assert_int_equal(archive_write_data(a, zero, k), (la_ssize_t)k);
				left -= k;
			}
		}
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	for (size_t i = 0; i < n; i++)
		if (m[i].type == M_DEV)
			patch_mode(path, m[i].name, S_IFBLK | 0644);
}

static void
assert_file(const char *dir, const char *rel, const char *want, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, rel), *data = NULL;
	struct stat st;
	size_t len;

	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, mode);
	assert_int_equal(util_read_file(p, 1 << 20, &data, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(data, want, len);
	free(data);
	free(p);
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void
test_two_projects(void **state)
{
	static const struct member m[] = {
		{ M_DIR, "alice/", NULL, 0, 0 },
		{ M_FILE, "alice/tests/test_chat.py", "def test_a(): pass\n", 0, 0 },
		{ M_FILE, "alice/tests/helper.py", "X = 1\n", 0, 0 },
		{ M_FILE, "alice/tests/sub/net_test.py", "def test_n(): pass\n", 0, 0 },
		{ M_FILE, "alice/run.sh", "#!/bin/sh\n", 0, 04755 },
		{ M_FILE, "alice/tests/__pycache__/test_chat.py", "junk", 0, 0 },
		{ M_FILE, "bob/tests/test_b.py", "def test_b(): assert 0\n", 0, 0 },
		{ M_FILE, "bob/.venv/pyvenv.cfg", "home = /usr\n", 0, 0 },
		{ M_FILE, "bob/tests/venv/pyvenv.cfg", "home = /usr\n", 0, 0 },
		{ M_FILE, "bob/tests/venv/lib/test_site.py", "x", 0, 0 },
		{ M_FILE, "__MACOSX/alice/tests/._test_chat.py", "junk", 0, 0 },
		{ M_FILE, "README.md", "hello\n", 0, 0 },
	};
	char *zip = tpath("two.zip"), *dest = tpath("out-alice"), *dest2 = tpath("out-bob");
	struct fetch_zip_plan *plan = NULL;
	char err[256] = "", **warn = NULL;
	size_t nwarn = 99;

	(void)state;
	make_zip(zip, m, sizeof(m) / sizeof(m[0]));
	assert_int_equal(fetch_zip_scan(zip, "two", NULL, &plan, err, sizeof(err)), 0);
	assert_int_equal(plan->nentries, 12);
	assert_int_equal(plan->nprojects, 2);
	assert_string_equal(plan->projects[0].name, "alice");
	assert_string_equal(plan->projects[0].prefix, "alice/");
	assert_int_equal(plan->projects[0].nmodules, 2);
	assert_string_equal(plan->projects[0].modules[0], "tests/sub/net_test.py");
	assert_string_equal(plan->projects[0].modules[1], "tests/test_chat.py");
	assert_string_equal(plan->projects[1].name, "bob");
	assert_string_equal(plan->projects[1].prefix, "bob/");
	assert_int_equal(plan->projects[1].nmodules, 1);
	assert_string_equal(plan->projects[1].modules[0], "tests/test_b.py");
	fetch_zip_plan_free(plan);

	assert_int_equal(fetch_zip_extract(zip, "alice/", dest, NULL, &warn, &nwarn, err,
	    sizeof(err)), 0);
	assert_int_equal(nwarn, 0);
	layout_strv_free(warn, nwarn);
	assert_file(dest, "tests/test_chat.py", "def test_a(): pass\n", 0644);
	assert_file(dest, "tests/helper.py", "X = 1\n", 0644);
	assert_file(dest, "tests/sub/net_test.py", "def test_n(): pass\n", 0644);
	assert_file(dest, "run.sh", "#!/bin/sh\n", 0755); /* setuid dropped, x kept */
	{
		char *p = tpath("out-alice/tests/test_b.py"), *q = tpath("out-alice/README.md");
		assert_false(exists(p)); /* bob's files stay out */
		assert_false(exists(q));
		free(p);
		free(q);
	}
	{
		struct stat st;
		assert_int_equal(stat(dest, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
	}

	assert_int_equal(fetch_zip_extract(zip, "bob/", dest2, NULL, &warn, &nwarn, err,
	    sizeof(err)), 0);
	assert_int_equal(nwarn, 0);
	layout_strv_free(warn, nwarn);
	assert_file(dest2, "tests/test_b.py", "def test_b(): assert 0\n", 0644);
	free(zip);
	free(dest);
	free(dest2);
}

static void
test_root_project(void **state)
{
	static const struct member m[] = {
		{ M_FILE, "./tests/test_r.py", "x", 0, 0 },
		{ M_FILE, "app.py", "y", 0, 0 },
	};
	char *zip = tpath("root.zip"), *dest = tpath("out-root");
	struct fetch_zip_plan *plan = NULL;
	char err[256], **warn = NULL;
	size_t nwarn = 0;

	(void)state;
	make_zip(zip, m, 2);
	assert_int_equal(fetch_zip_scan(zip, "myproj", NULL, &plan, err, sizeof(err)), 0);
	assert_int_equal(plan->nprojects, 1);
	assert_string_equal(plan->projects[0].name, "myproj");
	assert_string_equal(plan->projects[0].prefix, "");
	assert_int_equal(plan->projects[0].nmodules, 1);
	assert_string_equal(plan->projects[0].modules[0], "tests/test_r.py");
	fetch_zip_plan_free(plan);
	assert_int_equal(fetch_zip_extract(zip, "", dest, NULL, &warn, &nwarn, err,
	    sizeof(err)), 0);
	assert_int_equal(nwarn, 0);
	assert_file(dest, "tests/test_r.py", "x", 0644);
	assert_file(dest, "app.py", "y", 0644);
	layout_strv_free(warn, nwarn);
	free(zip);
	free(dest);
}

static void
test_hostile_members(void **state)
{
	static const struct member m[] = {
		{ M_FILE, "tests/test_ok.py", "ok", 0, 0 },
		{ M_FILE, "../evil.txt", "evil", 0, 0 },
		{ M_FILE, "/abs_evil.txt", "evil", 0, 0 },
		{ M_FILE, "tests/../../evil2.txt", "evil", 0, 0 },
		{ M_LINK, "passwd", "/etc/passwd", 0, 0 },
		{ M_LINK, "lnk", "../..", 0, 0 },
		{ M_FILE, "venv/bin/python", "#!", 0, 0755 },
		{ M_LINK, "venv/bin/python3", "python", 0, 0 },
		{ M_DEV, "dev", NULL, 0, 0 },
	};
	static const char *const want[] = {
		"dropped ../evil.txt: path leaves the project",
		"dropped /abs_evil.txt: path leaves the project",
		"dropped tests/../../evil2.txt: path leaves the project",
		"dropped passwd: link points outside the project",
		"dropped lnk: link points outside the project",
		"dropped dev: special files are not allowed",
	};
	char *zip = tpath("evil/hostile.zip"), *dest = tpath("evil/a/b/out");
	char err[256], **warn = NULL, link[64];
	size_t nwarn = 0;
	ssize_t n;

	(void)state;
	{
		char *d = tpath("evil/a/b");
		assert_int_equal(util_mkdir_p(d, 0755), 0);
		free(d);
	}
	make_zip(zip, m, sizeof(m) / sizeof(m[0]));
	assert_int_equal(fetch_zip_extract(zip, "", dest, NULL, &warn, &nwarn, err,
	    sizeof(err)), 0);
	assert_int_equal(nwarn, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < nwarn; i++)
		assert_string_equal(warn[i], want[i]);
	layout_strv_free(warn, nwarn);

	/* Nothing landed next to or above dest. */
	{
		static const char *const outside[] = {
			"evil/a/b/evil.txt", "evil/a/evil.txt", "evil/a/b/evil2.txt",
			"evil/a/evil2.txt", "evil/abs_evil.txt", "abs_evil.txt",
		};
		for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
			char *p = tpath(outside[i]);
			assert_false(exists(p));
			free(p);
		}
		assert_false(exists("/abs_evil.txt"));
	}
	{
		char *p = xasprintf("%s/passwd", dest), *q = xasprintf("%s/lnk", dest);
		char *f = xasprintf("%s/dev", dest);
		assert_false(exists(p));
		assert_false(exists(q));
		assert_false(exists(f));
		free(p);
		free(q);
		free(f);
	}
	assert_file(dest, "tests/test_ok.py", "ok", 0644);
	assert_file(dest, "venv/bin/python", "#!", 0755);
	{
		char *p = xasprintf("%s/venv/bin/python3", dest);
		struct stat st;
		assert_int_equal(lstat(p, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		n = readlink(p, link, sizeof(link) - 1);
		assert_int_equal(n, 6);
		link[n] = '\0';
		assert_string_equal(link, "python");
		free(p);
	}
	free(zip);
	free(dest);
}

static void
test_link_then_file(void **state)
{
	/* "a2" is first a link out of the tree, then a folder to write into. Even
	 * an inside link ("b2 -> sub") is never written through. */
	static const struct member m[] = {
		{ M_FILE, "a", "a", 0, 0 },
		{ M_LINK, "a2", "/tmp", 0, 0 },
		{ M_FILE, "a2/x", "owned", 0, 0 },
		{ M_DIR, "sub/", NULL, 0, 0 },
		{ M_LINK, "b2", "sub", 0, 0 },
		{ M_FILE, "b2/y", "y", 0, 0 },
		{ M_FILE, "a/z", "z", 0, 0 },
	};
	char *zip = tpath("lnk.zip"), *dest = tpath("out-lnk");
	char err[256], **warn = NULL;
	size_t nwarn = 0;

	struct stat before, after;
	int had = lstat("/tmp/x", &before) == 0;

	(void)state;
	make_zip(zip, m, sizeof(m) / sizeof(m[0]));
	assert_int_equal(fetch_zip_extract(zip, "", dest, NULL, &warn, &nwarn, err,
	    sizeof(err)), 0);
	assert_int_equal(nwarn, 3);
	assert_string_equal(warn[0], "dropped a2: link points outside the project");
	assert_string_equal(warn[1], "dropped b2/y: path goes through a link");
	assert_string_equal(warn[2], "dropped a/z: conflicts with another member");
	layout_strv_free(warn, nwarn);
	assert_file(dest, "a", "a", 0644);
	assert_file(dest, "a2/x", "owned", 0644); /* a real folder, inside dest */
	if (had) {
		assert_int_equal(lstat("/tmp/x", &after), 0);
		assert_int_equal(after.st_ino, before.st_ino);
		assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	} else {
		assert_false(exists("/tmp/x"));
	}
	{
		char *p = xasprintf("%s/sub/y", dest), *q = xasprintf("%s/b2", dest);
		struct stat st;
		assert_false(exists(p));
		assert_int_equal(lstat(q, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		free(p);
		free(q);
	}
	free(zip);
	free(dest);
}

static void
test_planted_link_same_name(void **state)
{
	/* The link is extracted first, then a folder member of the same name:
	 * the file must never be written through the link to outside. */
	static const struct member m[] = {
		{ M_LINK, "tests", "../../outside", 0, 0 },
		{ M_LINK, "t2", "x", 0, 0 },
		{ M_FILE, "t2/test_a.py", "evil", 0, 0 },
	};
	char *zip = tpath("plant.zip"), *dest = tpath("plant/out"), *x = tpath("plant/out/x");
	char *out = tpath("outside");
	char err[256], **warn = NULL;
	size_t nwarn = 0;

	(void)state;
	assert_int_equal(util_mkdir_p(out, 0755), 0);
	assert_int_equal(util_mkdir_p(x, 0755), 0); /* the inside link's target exists */
	make_zip(zip, m, sizeof(m) / sizeof(m[0]));
	assert_int_equal(fetch_zip_extract(zip, "", dest, NULL, &warn, &nwarn, err,
	    sizeof(err)), 0);
	assert_int_equal(nwarn, 2);
	assert_string_equal(warn[0], "dropped tests: link points outside the project");
	assert_string_equal(warn[1], "dropped t2/test_a.py: path goes through a link");
	layout_strv_free(warn, nwarn);
	{
		char *p = tpath("plant/out/x/test_a.py");
		assert_false(exists(p));
		free(p);
	}
	free(zip);
	free(dest);
	free(x);
	free(out);
}

static void
test_not_a_zip(void **state)
{
	char *p = tpath("notzip.zip");
	struct fetch_zip_plan *plan = (void *)1;
	char err[256] = "", **warn = NULL;
	size_t nwarn = 0;

	(void)state;
	assert_int_equal(util_write_file(p, "hello, this is text\n", 20, 0644), 0);
	assert_int_equal(fetch_zip_scan(p, "x", NULL, &plan, err, sizeof(err)), -EINVAL);
	assert_null(plan);
	assert_true(util_starts_with(err, "upload is not a valid ZIP archive: "));
	err[0] = '\0';
	{
		char *d = tpath("out-notzip");
		assert_int_equal(fetch_zip_extract(p, "", d, NULL, &warn, &nwarn, err,
		    sizeof(err)), -EINVAL);
		assert_true(util_starts_with(err, "upload is not a valid ZIP archive: "));
		layout_strv_free(warn, nwarn);
		free(d);
	}
	/* A zero-byte upload is not a ZIP either. */
	assert_int_equal(util_write_file(p, "", 0, 0644), 0);
	assert_int_equal(fetch_zip_scan(p, "x", NULL, &plan, err, sizeof(err)), -EINVAL);
	free(p);
}

static void
test_empty_and_no_tests(void **state)
{
	static const struct member m[] = {
		{ M_FILE, "alice/src/app.py", "x", 0, 0 },
		{ M_FILE, "alice/tests/helper.py", "x", 0, 0 },
	};
	char *p = tpath("empty.zip"), *q = tpath("notests.zip");
	struct fetch_zip_plan *plan = NULL;
	char err[256] = "";

	(void)state;
	make_zip(p, NULL, 0);
	assert_int_equal(fetch_zip_scan(p, "x", NULL, &plan, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "the ZIP archive is empty");
	assert_null(plan);

	make_zip(q, m, 2);
	assert_int_equal(fetch_zip_scan(q, "x", NULL, &plan, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "no test modules found: a project needs a tests/ folder "
	    "with test_*.py or *_test.py files");
	assert_null(plan);
	free(p);
	free(q);
}

static void
test_too_many_entries(void **state)
{
	static const struct member m[] = {
		{ M_FILE, "tests/test_1.py", "1", 0, 0 },
		{ M_FILE, "tests/test_2.py", "2", 0, 0 },
		{ M_FILE, "tests/test_3.py", "3", 0, 0 },
	};
	char *p = tpath("many.zip");
	struct fetch_limits lim;
	struct fetch_zip_plan *plan = NULL;
	char err[256] = "";

	(void)state;
	make_zip(p, m, 3);
	fetch_limits_default(&lim);
	lim.max_entries = 2;
	assert_int_equal(fetch_zip_scan(p, "x", &lim, &plan, err, sizeof(err)), -E2BIG);
	lim.max_entries = 3;
	assert_int_equal(fetch_zip_scan(p, "x", &lim, &plan, err, sizeof(err)), 0);
	assert_int_equal(plan->projects[0].nmodules, 3);
	fetch_zip_plan_free(plan);
	free(p);
}

static void
test_bomb(void **state)
{
	static const struct member m[] = {
		{ M_FILE, "tests/test_a.py", "ok", 0, 0 },
		{ M_ZEROS, "tests/zeros.bin", NULL, 20u << 20, 0 },
	};
	static const struct member ok[] = {
		{ M_NOISE, "tests/noise.bin", NULL, 3u << 20, 0 },
		{ M_ZEROS, "tests/small_zeros.bin", NULL, 1u << 20, 0 },
	};
	char *p = tpath("bomb.zip"), *d1 = tpath("bomb1"), *d2 = tpath("bomb2");
	char *d3 = tpath("bomb3"), *d4 = tpath("bomb4");
	struct fetch_limits lim;
	char err[256] = "", **warn = NULL;
	size_t nwarn = 0;
	struct stat st;

	(void)state;
	make_zip(p, m, 2);
	assert_int_equal(stat(p, &st), 0);
	assert_true(st.st_size < (1 << 20)); /* it really is compressed */

	/* One member over max_file_bytes. */
	fetch_limits_default(&lim);
	lim.max_file_bytes = 1u << 20;
	assert_int_equal(fetch_zip_extract(p, "", d1, &lim, &warn, &nwarn, err, sizeof(err)),
	    -EFBIG);
	assert_true(util_starts_with(err, "archive too large when unpacked: "));
	layout_strv_free(warn, nwarn);

	/* The ratio alone. */
	fetch_limits_default(&lim);
	assert_int_equal(fetch_zip_extract(p, "", d2, &lim, &warn, &nwarn, err, sizeof(err)),
	    -EFBIG);
	assert_string_equal(err, "archive too large when unpacked: member tests/zeros.bin "
	    "expands more than 200 times");
	layout_strv_free(warn, nwarn);

	/* The total alone. */
	fetch_limits_default(&lim);
	lim.max_ratio = 0;
	lim.max_total_bytes = 10u << 20;
	assert_int_equal(fetch_zip_extract(p, "", d3, &lim, &warn, &nwarn, err, sizeof(err)),
	    -EFBIG);
	assert_true(util_starts_with(err, "archive too large when unpacked: over 10485760 bytes"));
	layout_strv_free(warn, nwarn);

	/* Within every limit, the whole file is written. */
	fetch_limits_default(&lim);
	lim.max_ratio = 0;
	assert_int_equal(fetch_zip_extract(p, "", d4, &lim, &warn, &nwarn, err, sizeof(err)), 0);
	layout_strv_free(warn, nwarn);
	{
		char *z = xasprintf("%s/tests/zeros.bin", d4);
		assert_int_equal(stat(z, &st), 0);
		assert_int_equal(st.st_size, 20 << 20);
		free(z);
	}
	/* Incompressible data past 1 MiB and a small bomb-like member are fine
	 * under the default limits. */
	make_zip(p, ok, 2);
	assert_int_equal(util_rm_rf(d4), 0);
	assert_int_equal(fetch_zip_extract(p, "", d4, NULL, &warn, &nwarn, err, sizeof(err)), 0);
	assert_int_equal(nwarn, 0);
	layout_strv_free(warn, nwarn);
	{
		char *z = xasprintf("%s/tests/noise.bin", d4);
		assert_int_equal(stat(z, &st), 0);
		assert_int_equal(st.st_size, 3 << 20);
		free(z);
	}
	free(p);
	free(d1);
	free(d2);
	free(d3);
	free(d4);
}

static void
test_warning_cap(void **state)
{
	struct member m[130];
	char names[130][32];
	char *p = tpath("warncap.zip"), *d = tpath("out-warncap");
	char err[256], **warn = NULL;
	size_t nwarn = 0;

	(void)state;
	for (int i = 0; i < 130; i++) {
		snprintf(names[i], sizeof(names[i]), "../evil%d", i);
		m[i] = (struct member){ M_FILE, names[i], "x", 0, 0 };
	}
	make_zip(p, m, 130);
	assert_int_equal(fetch_zip_extract(p, "", d, NULL, &warn, &nwarn, err, sizeof(err)), 0);
	assert_int_equal(nwarn, 101);
	assert_string_equal(warn[0], "dropped ../evil0: path leaves the project");
	assert_string_equal(warn[99], "dropped ../evil99: path leaves the project");
	assert_string_equal(warn[100], "... and 30 more");
	layout_strv_free(warn, nwarn);
	free(p);
	free(d);
}

static void
test_create_from_dir(void **state)
{
	char *src = tpath("mysub"), *zip = tpath("mysub.zip"), *dest = tpath("out-mysub");
	struct fetch_zip_plan *plan = NULL;
	char err[256] = "", **warn = NULL, *f;
	size_t nwarn = 0;

	(void)state;
	f = xasprintf("%s/tests", src);
	assert_int_equal(util_mkdir_p(f, 0755), 0);
	free(f);
	f = xasprintf("%s/.git/objects", src);
	assert_int_equal(util_mkdir_p(f, 0755), 0);
	free(f);
	f = xasprintf("%s/venv", src);
	assert_int_equal(util_mkdir_p(f, 0755), 0);
	free(f);
	f = xasprintf("%s/tests/__pycache__", src);
	assert_int_equal(util_mkdir_p(f, 0755), 0);
	free(f);
	f = xasprintf("%s/tests/test_x.py", src);
	assert_int_equal(util_write_file(f, "def test_x(): pass\n", 19, 0644), 0);
	free(f);
	f = xasprintf("%s/run.sh", src);
	assert_int_equal(util_write_file(f, "#!/bin/sh\n", 10, 0755), 0);
	free(f);
	f = xasprintf("%s/.git/HEAD", src);
	assert_int_equal(util_write_file(f, "ref\n", 4, 0644), 0);
	free(f);
	f = xasprintf("%s/venv/pyvenv.cfg", src);
	assert_int_equal(util_write_file(f, "home\n", 5, 0644), 0);
	free(f);
	f = xasprintf("%s/tests/__pycache__/x.pyc", src);
	assert_int_equal(util_write_file(f, "pyc", 3, 0644), 0);
	free(f);
	f = xasprintf("%s/tests/link_test.py", src);
	assert_int_equal(symlink("test_x.py", f), 0);
	free(f);

	assert_int_equal(fetch_zip_create_from_dir(src, zip, err, sizeof(err)), 0);
	assert_int_equal(fetch_zip_scan(zip, "ignored", NULL, &plan, err, sizeof(err)), 0);
	/* mysub/run.sh, mysub/tests/, tests/link_test.py, tests/test_x.py */
	assert_int_equal(plan->nentries, 4);
	assert_int_equal(plan->nprojects, 1);
	assert_string_equal(plan->projects[0].name, "mysub");
	assert_string_equal(plan->projects[0].prefix, "mysub/");
	assert_int_equal(plan->projects[0].nmodules, 1);
	assert_string_equal(plan->projects[0].modules[0], "tests/test_x.py");
	fetch_zip_plan_free(plan);

	assert_int_equal(fetch_zip_extract(zip, "mysub/", dest, NULL, &warn, &nwarn, err,
	    sizeof(err)), 0);
	assert_int_equal(nwarn, 0);
	layout_strv_free(warn, nwarn);
	assert_file(dest, "tests/test_x.py", "def test_x(): pass\n", 0644);
	assert_file(dest, "run.sh", "#!/bin/sh\n", 0755);
	{
		char *g = xasprintf("%s/.git", dest), *v = xasprintf("%s/venv", dest);
		char *c = xasprintf("%s/tests/__pycache__", dest);
		char *l = xasprintf("%s/tests/link_test.py", dest);
		struct stat st;
		assert_false(exists(g));
		assert_false(exists(v));
		assert_false(exists(c));
		assert_int_equal(lstat(l, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		free(g);
		free(v);
		free(c);
		free(l);
	}
	/* A folder that does not exist. */
	f = tpath("nope");
	assert_int_equal(fetch_zip_create_from_dir(f, zip, err, sizeof(err)), -ENOENT);
	free(f);
	free(src);
	free(zip);
	free(dest);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_projects),
		cmocka_unit_test(test_root_project),
		cmocka_unit_test(test_hostile_members),
		cmocka_unit_test(test_link_then_file),
		cmocka_unit_test(test_planted_link_same_name),
		cmocka_unit_test(test_not_a_zip),
		cmocka_unit_test(test_empty_and_no_tests),
		cmocka_unit_test(test_too_many_entries),
		cmocka_unit_test(test_bomb),
		cmocka_unit_test(test_warning_cap),
		cmocka_unit_test(test_create_from_dir),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
