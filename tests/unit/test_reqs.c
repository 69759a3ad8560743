/*
 * test_reqs.c - requirement files read as pip reads them, and what a node
 * keeps of them: exact entries, constraints, options and warnings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "runner/reqs.h"

/* An in-memory project: path -> text; "LINK" stands for a symbolic link. */
struct files {
	const char *path[8];
	const char *text[8];
};

static int
files_read(void *ctx, const char *path, char **text, size_t *len)
{
	const struct files *f = ctx;

	for (size_t i = 0; i < 8 && f->path[i] != NULL; i++) {
		if (strcmp(f->path[i], path) != 0)
			continue;
		if (strcmp(f->text[i], "LINK") == 0)
			return -EINVAL;
		*text = xstrdup(f->text[i]);
		*len = strlen(f->text[i]);
		return 0;
	}
	return -ENOENT;
}

/* The whole outcome as one string, to compare exactly. */
static char *
dump(const struct reqs *r)
{
	char *file = reqs_file_text(r), *cons = reqs_constraints_text(r), *out;
	size_t total = strlen(file) + strlen(cons) + 64;

	for (size_t i = 0; i < r->nwarnings; i++)
		total += strlen(r->warnings[i]) + 1;
	out = xmalloc(total);
	snprintf(out, total, "%s--\n%s--%s\n", file, cons, r->hashed ? " hashed" : "");
	for (size_t i = 0; i < r->nwarnings; i++) {
		strcat(out, r->warnings[i]);
		strcat(out, "\n");
	}
	free(file);
	free(cons);
	return out;
}

static void
check(const struct files *f, const char *want)
{
	struct reqs r;
	char err[256] = "", *got;

	assert_int_equal(reqs_parse(&r, "requirements.txt", files_read, (void *)f, err,
				    sizeof(err)), 0);
	got = dump(&r);
	assert_string_equal(got, want);
	free(got);
	reqs_free(&r);
}

static void
test_pip_reading(void **state)
{
	/* comments, continuations, CRLF, blanks, sorting and repeats */
	struct files f = { { "requirements.txt" }, {
		"# a comment\r\n"
		"zeta>=1.0   # why\r\n"
		"alpha \\\n"
		"  [extra] == 2.0 ; python_version >= \"3.8\"\n"
		"\n"
		"beta#not-a-comment\n"
		"zeta>=1.0\n"
		"gamma \\\n"
		"# a comment line ends the continuation\n"
		"delta\\" } };

	(void)state;
	check(&f, "alpha [extra] == 2.0 ; python_version >= \"3.8\"\n"
		  "beta#not-a-comment\n"
		  "delta\n"
		  "gamma\n"
		  "zeta>=1.0\n"
		  "--\n--\n");
}

static void
test_sources_dropped(void **state)
{
	struct files f = { { "requirements.txt" }, {
		"-i http://127.0.0.1:9/simple\n"
		"--index-url=http://127.0.0.1:9/simple\n"
		"--extra-index-url http://x\n"
		"--extra-index http://x\n"
		"-f ./wheels\n"
		"-fhttp://x\n"
		"--find-links=/tmp\n"
		"--no-index\n"
		"--trusted-host x\n"
		"--pre --prefer-binary --only-binary :all:\n"
		"--use-feature=truststore\n"
		"ok==1\n" } };

	(void)state;
	check(&f, "--only-binary=:all:\n--pre\n--prefer-binary\nok==1\n--\n--\n"
		  "requirements.txt:1: dropped '-i http://127.0.0.1:9/simple': a project's"
		  " requirements never choose where the node installs from or what it trusts\n"
		  "requirements.txt:2: dropped '--index-url=http://127.0.0.1:9/simple': a"
		  " project's requirements never choose where the node installs from or what"
		  " it trusts\n"
		  "requirements.txt:3: dropped '--extra-index-url http://x': a project's"
		  " requirements never choose where the node installs from or what it trusts\n"
		  "requirements.txt:4: dropped '--extra-index http://x': a project's"
		  " requirements never choose where the node installs from or what it trusts\n"
		  "requirements.txt:5: dropped '-f ./wheels': a project's requirements never"
		  " choose where the node installs from or what it trusts\n"
		  "requirements.txt:6: dropped '-fhttp://x': a project's requirements never"
		  " choose where the node installs from or what it trusts\n"
		  "requirements.txt:7: dropped '--find-links=/tmp': a project's requirements"
		  " never choose where the node installs from or what it trusts\n"
		  "requirements.txt:8: dropped '--no-index': a project's requirements never"
		  " choose where the node installs from or what it trusts\n"
		  "requirements.txt:9: dropped '--trusted-host x': a project's requirements"
		  " never choose where the node installs from or what it trusts\n"
		  "requirements.txt:11: dropped the option '--use-feature=truststore': not"
		  " accepted in a project's requirements\n");
}

static void
test_urls_paths_editables(void **state)
{
	struct files f = { { "requirements.txt" }, {
		"pkg @ https://example.com/pkg.tar.gz\n"
		"git+https://example.com/x.git#egg=x\n"
		"https://example.com/y.whl\n"
		"-e .\n"
		"./local\n"
		"dist/thing-1.0-py3-none-any.whl\n"
		"thing.tar.gz\n"
		"pkg-resources==0.0.0\n"
		"bad${HOME}\n" } };

	(void)state;
	check(&f, "pkg-resources==0.0.0\n--\n--\n"
		  "requirements.txt:1: dropped 'pkg @ https://example.com/pkg.tar.gz': a direct"
		  " URL requirement would choose where the node installs from\n"
		  "requirements.txt:2: dropped 'git+https://example.com/x.git#egg=x': a VCS"
		  " requirement would choose where the node installs from\n"
		  "requirements.txt:3: dropped 'https://example.com/y.whl': a direct URL"
		  " requirement would choose where the node installs from\n"
		  "requirements.txt:4: skipped the editable requirement '.': environments are"
		  " shared, so a project's own code never goes into one (the project's root"
		  " and src/ are on the import path already)\n"
		  "requirements.txt:5: skipped './local': a local path would put the project's"
		  " own code into an environment other projects share (the project's root and"
		  " src/ are on the import path already)\n"
		  "requirements.txt:6: skipped 'dist/thing-1.0-py3-none-any.whl': a local path"
		  " would put the project's own code into an environment other projects share"
		  " (the project's root and src/ are on the import path already)\n"
		  "requirements.txt:7: skipped 'thing.tar.gz': a local path would put the"
		  " project's own code into an environment other projects share (the"
		  " project's root and src/ are on the import path already)\n"
		  "requirements.txt:9: dropped 'bad${HOME}': not a requirement pip can install\n");
}

static void
test_includes(void **state)
{
	struct files f = { {
		"requirements.txt", "req/base.txt", "req/more.txt", "req/cons.txt",
		"linked.txt", "req/self.txt"
	}, {
		"-r req/base.txt\n"
		"-c req/cons.txt\n"
		"-r ../../etc/x\n"
		"-r /etc/passwd\n"
		"--requirement=https://example.com/r.txt\n"
		"-r linked.txt\n"
		"-r missing.txt\n"
		"top\n",
		"base\n-r ./more.txt\n-r self.txt\n",
		"more\n",
		"capped<2\n-r more.txt\n",
		"LINK",
		"-r self.txt\nself\n"
	} };

	(void)state;
	check(&f, "base\nmore\nself\ntop\n--\ncapped<2\n--\n"
		  "requirements.txt:3: dropped the include of '../../etc/x': '..' leaves the"
		  " folder of the file that includes it\n"
		  "requirements.txt:4: dropped the include of '/etc/passwd': an absolute path is"
		  " outside the project\n"
		  "requirements.txt:5: dropped the include of 'https://example.com/r.txt': a"
		  " project's requirements are read from the project only\n"
		  "requirements.txt:6: dropped the include of 'linked.txt': a link or not a"
		  " regular file\n"
		  "requirements.txt:7: dropped the include of 'missing.txt': no such file in the"
		  " project\n");
}

static void
test_hashes(void **state)
{
	char line[512], want[1024];
	const char *h1 = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	const char *h2 = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	struct files f = { { "requirements.txt" }, { line } };

	(void)state;
	snprintf(line, sizeof(line), "pkg==1.0 \\\n    --hash=%s \\\n    --hash %s\n"
		 "other==2 --hash=md5:0123\n"
		 "third==3 --global-option=x\n", h2, h1);
	snprintf(want, sizeof(want), "pkg==1.0 --hash=%s --hash=%s\nthird==3\n--\n-- hashed\n"
		 "requirements.txt:4: dropped 'other==2': a --hash that is not sha256, sha384"
		 " or sha512 with its hex digest\n"
		 "requirements.txt:5: ignored the option '--global-option=x' of 'third==3':"
		 " only --hash is kept on a requirement\n", h1, h2);
	check(&f, want);
}

static void
test_root_errors(void **state)
{
	struct files absent = { { "other.txt" }, { "x\n" } };
	struct files link = { { "requirements.txt" }, { "LINK" } };
	struct reqs r;
	char err[256] = "";

	(void)state;
	assert_int_equal(reqs_parse(&r, "requirements.txt", files_read, &absent, err,
				    sizeof(err)), 0);
	assert_int_equal(r.nentries, 0);
	assert_int_equal(r.nwarnings, 0);
	reqs_free(&r);
	assert_int_equal(reqs_parse(&r, "requirements.txt", files_read, &link, err,
				    sizeof(err)), -EIO);
	assert_string_equal(err, "cannot read requirements.txt: a link or not a regular file");
	reqs_free(&r);
}

static void
test_pyproject_lines(void **state)
{
	struct reqs r;
	const char *deps = "requests>=2\n-r other.txt\nx @ file:///tmp/x\n";
	char *got;

	(void)state;
	memset(&r, 0, sizeof(r));
	reqs_add_lines(&r, "pyproject.toml", deps, strlen(deps));
	got = dump(&r);
	assert_string_equal(got, "requests>=2\n--\n--\n"
			    "pyproject.toml: dropped '-r other.txt': not a requirement\n"
			    "pyproject.toml: dropped 'x @ file:///tmp/x': a direct URL requirement"
			    " would choose where the node installs from\n");
	free(got);
	reqs_free(&r);
}

static void
test_caps(void **state)
{
	char *big = xmalloc(REQS_MAX_ENTRIES * 12 + 64), *p = big;
	struct files f = { { "requirements.txt" }, { big } };
	struct reqs r;
	char err[64];

	(void)state;
	for (int i = 0; i < REQS_MAX_ENTRIES + 5; i++)
		p += sprintf(p, "p%d\n", i);
	assert_int_equal(reqs_parse(&r, "requirements.txt", files_read, &f, err, sizeof(err)), 0);
	assert_int_equal(r.nentries, REQS_MAX_ENTRIES);
	assert_int_equal(r.nwarnings, 5);
	assert_string_equal(r.warnings[0], "requirements.txt:2001: dropped 'p2000': more than"
			    " 2000 requirements");
	reqs_free(&r);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pip_reading),
		cmocka_unit_test(test_sources_dropped),
		cmocka_unit_test(test_urls_paths_editables),
		cmocka_unit_test(test_includes),
		cmocka_unit_test(test_hashes),
		cmocka_unit_test(test_root_errors),
		cmocka_unit_test(test_pyproject_lines),
		cmocka_unit_test(test_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
