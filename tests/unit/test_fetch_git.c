/*
 * test_fetch_git.c - URL checks and cloning a local repository made at test
 * time (file:// with allow_file_urls). Everything lives in a mkdtemp folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "fetch/fetch_git.h"
#include "fetch/layout.h"

static char *tmp_root;
static char *repo_dir;

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int
setup(void **state)
{
	char tmpl[] = "/tmp/test_fetch_git_XXXXXX";
	char *cmd;
	int rc;

	(void)state;
	if (mkdtemp(tmpl) == NULL)
		return -1;
	tmp_root = xstrdup(tmpl);
	repo_dir = xasprintf("%s/origin", tmp_root);
	/* A small repository with a test module and a link, committed with a
	 * throwaway identity and no global configuration. */
	cmd = xasprintf(
	    "set -e; export HOME='%s' GIT_CONFIG_NOSYSTEM=1; mkdir -p '%s/tests'; cd '%s';"
	    "git init -q .; printf 'def test_a():\\n    assert 1\\n' > tests/test_a.py;"
	    "printf 'x' > app.py; ln -s app.py link.py;"
	    "git add -A; git -c user.name=t -c user.email=t@t commit -q -m init",
	    tmp_root, repo_dir, repo_dir);
	rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	util_rm_rf(tmp_root);
	free(tmp_root);
	free(repo_dir);
	return 0;
}

static void
test_check_url(void **state)
{
	static const char *const hosts[] = { "github.com", NULL };
	static const struct { const char *url; int allow_file; int limit_hosts; int rc; } cases[] = {
		{ "https://github.com/org/repo", 0, 0, 0 },
		{ "http://example.org:8080/r.git", 0, 0, 0 },
		{ "git://example.org/r.git", 0, 0, 0 },
		{ "ssh://git@example.org:22/org/r.git", 0, 0, 0 },
		{ "git@github.com:org/repo.git", 0, 0, 0 },
		{ "https://user:pw@[::1]:8443/r", 0, 0, 0 },
		{ "-uhelp", 0, 0, -EINVAL },
		{ "--upload-pack=touch /tmp/x", 0, 0, -EINVAL },
		{ "ext::sh -c touch% /tmp/pwned", 0, 0, -EINVAL },
		{ "ext::sh", 1, 0, -EINVAL },
		{ "fd::17", 0, 0, -EINVAL },
		{ "file:///etc", 0, 0, -EINVAL },
		{ "file:///srv/repo", 1, 0, 0 },
		{ "/srv/repo", 0, 0, -EINVAL },
		{ "/srv/repo", 1, 0, 0 },
		{ "./repo", 0, 0, -EINVAL },
		{ "https://github.com/a b", 0, 0, -EINVAL },
		{ "https://github.com/a\nb", 0, 0, -EINVAL },
		{ "ssh://-oProxyCommand=x/r", 0, 0, -EINVAL },
		{ "-oProxyCommand=x:r", 0, 0, -EINVAL },
		{ "ftp://example.org/r", 0, 0, -EINVAL },
		{ "justaword", 0, 0, -EINVAL },
		{ "", 0, 0, -EINVAL },
		{ "https://github.com/org/repo", 0, 1, 0 },
		{ "https://GitHub.com/org/repo", 0, 1, 0 },
		{ "https://evil.com/org/repo", 0, 1, -EINVAL },
		{ "https://github.com@evil.com/org/repo", 0, 1, -EINVAL },
		{ "git@evil.com:org/repo", 0, 1, -EINVAL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fetch_git_opts o;
		char err[256] = "";
		int rc;

		fetch_git_opts_default(&o);
		o.allow_file_urls = cases[i].allow_file;
		o.allowed_hosts = cases[i].limit_hosts ? hosts : NULL;
		rc = fetch_git_check_url(cases[i].url, &o, err, sizeof(err));
		if (rc != cases[i].rc)
			fail_msg("%s: rc %d, want %d (%s)", cases[i].url, rc, cases[i].rc, err);
		if (rc < 0)
			assert_true(err[0] != '\0');
	}
	{
		char *long_url = xmalloc(FETCH_GIT_MAX_URL + 2);
		char err[256];

		memcpy(long_url, "https://h/", 10);
		memset(long_url + 10, 'a', FETCH_GIT_MAX_URL - 9);
		long_url[FETCH_GIT_MAX_URL + 1] = '\0';
		assert_int_equal(fetch_git_check_url(long_url, NULL, err, sizeof(err)), -EINVAL);
		long_url[FETCH_GIT_MAX_URL] = '\0';
		assert_int_equal(fetch_git_check_url(long_url, NULL, err, sizeof(err)), 0);
		free(long_url);
	}
}

static void
test_split_credentials(void **state)
{
	static const struct {
		const char *url, *clean, *user, *pass;
	} cases[] = {
		{ "https://u:p%40ss@h.example/o/r.git", "https://h.example/o/r.git", "u", "p%40ss" },
		{ "https://tok@h.example/r", "https://h.example/r", "tok", NULL },
		{ "https://h.example/a@b", "https://h.example/a@b", NULL, NULL },
		{ "git@h.example:o/r.git", "git@h.example:o/r.git", NULL, NULL },
		{ "https://@h/r", "https://h/r", "", NULL },
	};
	char *user, *pass, *clean;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		clean = fetch_git_split_credentials(cases[i].url, &user, &pass);
		assert_string_equal(clean, cases[i].clean);
		if (cases[i].user)
			assert_string_equal(user, cases[i].user);
		else
			assert_null(user);
		if (cases[i].pass)
			assert_string_equal(pass, cases[i].pass);
		else
			assert_null(pass);
		free(clean);
		free(user);
		free(pass);
	}
	clean = fetch_git_split_credentials("https://u:p@h/r", NULL, NULL);
	assert_string_equal(clean, "https://h/r");
	free(clean);
}

static void
test_clone_local(void **state)
{
	struct fetch_git_opts o;
	char *url = xasprintf("file://%s", repo_dir), *dest = xasprintf("%s/clone", tmp_root);
	char err[256] = "", **mods = NULL, link[32];
	size_t n = 0;
	ssize_t ln;

	(void)state;
	fetch_git_opts_default(&o);
	o.allow_file_urls = 1;
	o.token = "s3cr3t-token";
	assert_int_equal(fetch_git_clone(url, dest, &o, err, sizeof(err)), 0);
	{
		char *g = xasprintf("%s/.git", dest), *l = xasprintf("%s/link.py", dest);
		assert_false(exists(g));
		ln = readlink(l, link, sizeof(link) - 1);
		assert_int_equal(ln, 6);
		link[ln] = '\0';
		assert_string_equal(link, "app.py");
		free(g);
		free(l);
	}
	assert_int_equal(layout_list_modules(dest, &mods, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(mods[0], "tests/test_a.py");
	layout_strv_free(mods, n);

	/* A bare repository given as a plain path. */
	{
		char *bare = xasprintf("%s/bare.git", tmp_root), *d2 = xasprintf("%s/clone5", tmp_root);
		char *cmd = xasprintf("HOME='%s' git clone -q --bare '%s' '%s'", tmp_root, repo_dir,
		    bare);
		char *t = xasprintf("%s/tests/test_a.py", d2), *g = xasprintf("%s/.git", d2);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(fetch_git_clone(bare, d2, &o, err, sizeof(err)), 0);
		assert_true(exists(t));
		assert_false(exists(g));
		free(bare);
		free(d2);
		free(cmd);
		free(t);
		free(g);
	}
	/* dest must not exist. */
	assert_int_equal(fetch_git_clone(url, dest, &o, err, sizeof(err)), -EEXIST);
	/* Without the option, the same URL is refused before git runs. */
	o.allow_file_urls = 0;
	assert_int_equal(util_rm_rf(dest), 0);
	assert_int_equal(fetch_git_clone(url, dest, &o, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "local repositories (file:// URLs and paths) are not allowed");
	assert_false(exists(dest));
	free(url);
	free(dest);
}

/* The first line of dir/name, without its newline, into out. */
static void
first_line(const char *dir, const char *name, char *out, size_t outlen)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	assert_non_null(fgets(out, (int)outlen, f));
	fclose(f);
	free(path);
	out[strcspn(out, "\n")] = '\0';
}

/*
 * A deadline picks the last commit at or before it (by committer date) and
 * the commit is reported; none before it is a clear error.
 */
static void
test_clone_at_deadline(void **state)
{
	struct fetch_git_opts o;
	char *hist = xasprintf("%s/hist", tmp_root), *url = xasprintf("file://%s", hist);
	char *d1 = xasprintf("%s/at1", tmp_root), *d2 = xasprintf("%s/at2", tmp_root);
	char *d3 = xasprintf("%s/at3", tmp_root), *cmd, *text = NULL, *f;
	char err[256] = "", c1[FETCH_GIT_COMMIT_LEN], want1[64] = "", want2[64] = "";
	size_t len;

	(void)state;
	/* v1 committed 2026-01-10, v2 on 2026-01-20 */
	cmd = xasprintf("set -e; mkdir -p '%s'; cd '%s'; export HOME='%s';"
	    " git init -q .; echo v1 > version.txt;"
	    " git add -A; GIT_COMMITTER_DATE='2026-01-10T12:00:00Z' git -c user.name=t"
	    " -c user.email=t@t commit -q -m one --date=2026-01-10T12:00:00Z;"
	    " git rev-parse HEAD > ../want1; echo v2 > version.txt;"
	    " GIT_COMMITTER_DATE='2026-01-20T12:00:00Z' git -c user.name=t -c user.email=t@t"
	    " commit -q -am two --date=2026-01-20T12:00:00Z; git rev-parse HEAD > ../want2",
	    hist, hist, tmp_root);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	first_line(tmp_root, "want1", want1, sizeof(want1));
	first_line(tmp_root, "want2", want2, sizeof(want2));

	fetch_git_opts_default(&o);
	o.allow_file_urls = 1;
	/* 2026-01-15T00:00:00Z: between the two */
	assert_int_equal(fetch_git_clone_at(url, d1, &o, 1768435200.0, c1, err, sizeof(err)), 0);
	assert_string_equal(c1, want1);
	f = xasprintf("%s/version.txt", d1);
	assert_int_equal(util_read_file(f, 64, &text, &len), 0);
	assert_string_equal(text, "v1\n");
	free(text);
	free(f);
	f = xasprintf("%s/.git", d1);
	assert_false(exists(f));
	free(f);
	/* no deadline: the tip */
	assert_int_equal(fetch_git_clone_at(url, d2, &o, 0, c1, err, sizeof(err)), 0);
	assert_string_equal(c1, want2);
	/* 2026-01-01T00:00:00Z: before the first commit */
	assert_int_equal(fetch_git_clone_at(url, d3, &o, 1767225600.0, c1, err, sizeof(err)),
	    -ENOENT);
	assert_string_equal(err, "no commit at or before the deadline 2026-01-01T00:00:00Z");
	assert_string_equal(c1, "");
	assert_false(exists(d3));
	free(hist);
	free(url);
	free(d1);
	free(d2);
	free(d3);
}

static void
test_clone_errors(void **state)
{
	struct fetch_git_opts o;
	char *url = xasprintf("file://%s/missing-s3cr3t-token", tmp_root);
	char *dest = xasprintf("%s/clone2", tmp_root);
	char err[512] = "";

	(void)state;
	fetch_git_opts_default(&o);
	o.allow_file_urls = 1;
	o.token = "s3cr3t-token";
	assert_int_equal(fetch_git_clone(url, dest, &o, err, sizeof(err)), -EIO);
	assert_true(util_starts_with(err, "git clone failed: repository not found ("));
	assert_null(strstr(err, "s3cr3t-token")); /* scrubbed, even from the path */
	assert_non_null(strstr(err, "missing-***"));
	assert_false(exists(dest));

	/* Options smuggled as URLs never reach git. */
	assert_int_equal(fetch_git_clone("--upload-pack=touch", dest, &o, err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(fetch_git_clone("ext::sh -c touch", dest, &o, err, sizeof(err)), -EINVAL);

	/* A size limit smaller than the repository. */
	free(url);
	url = xasprintf("file://%s", repo_dir);
	o.max_bytes = 10;
	assert_int_equal(fetch_git_clone(url, dest, &o, err, sizeof(err)), -EFBIG);
	assert_true(util_starts_with(err, "git clone failed: the repository is larger than 10"));
	assert_false(exists(dest));

	/* No git on PATH: said so, not "exited with status ..." */
	{
		char *old = xstrdup(getenv("PATH")), *empty = xasprintf("%s/no-git-here", tmp_root);

		assert_int_equal(mkdir(empty, 0700), 0);
		setenv("PATH", empty, 1);
		o.max_bytes = 0;
		assert_int_equal(fetch_git_clone(url, dest, &o, err, sizeof(err)), -ENOENT);
		setenv("PATH", old, 1);
		assert_string_equal(err, "git clone failed: git is not installed");
		assert_false(exists(dest));
		free(old);
		free(empty);
	}
	free(url);
	free(dest);
}

/* Put a fake git first on PATH; its body is a shell script. */
static char *
fake_git(const char *body)
{
	char *bin = xasprintf("%s/bin", tmp_root), *git = xasprintf("%s/git", bin);
	char *script = xasprintf("#!/bin/sh\n%s\n", body);
	const char *path = getenv("PATH");
	char *old = xstrdup(path ? path : "/usr/bin:/bin"), *np;

	assert_int_equal(util_mkdir_p(bin, 0755), 0);
	assert_int_equal(util_write_file(git, script, strlen(script), 0755), 0);
	np = xasprintf("%s:%s", bin, old);
	setenv("PATH", np, 1);
	free(np);
	free(bin);
	free(git);
	free(script);
	return old;
}

static void
test_token_and_env(void **state)
{
	struct fetch_git_opts o;
	char *argsf = xasprintf("%s/args", tmp_root), *envf = xasprintf("%s/env", tmp_root);
	char *dest = xasprintf("%s/clone3", tmp_root), *body, *old, *data = NULL;
	char err[512] = "";
	size_t len;

	(void)state;
	body = xasprintf("printf '%%s\\n' \"$@\" > '%s'; env > '%s';"
	    "echo 'remote: Invalid username or password. s3cr3t' >&2;"
	    "echo \"fatal: Authentication failed for 'https://h/r' $GIT_CONFIG_VALUE_0\" >&2;"
	    "exit 128", argsf, envf);
	old = fake_git(body);
	fetch_git_opts_default(&o);
	o.token = "s3cr3t";
	assert_int_equal(fetch_git_clone("https://example.invalid/org/repo", dest, &o, err,
	    sizeof(err)), -EIO);
	setenv("PATH", old, 1);
	assert_string_equal(err, "git clone failed: authentication failed (check the access "
	    "token) (fatal: Authentication failed for 'https://h/r' Authorization: Basic ***)");

	assert_int_equal(util_read_file(argsf, 1 << 16, &data, &len), 0);
	{
		char *want = xasprintf("-c\nprotocol.file.allow=never\n-c\nprotocol.ext.allow=never\n"
		    "-c\ncore.symlinks=true\nclone\n--depth\n1\n--no-tags\n--single-branch\n--\n"
		    "https://example.invalid/org/repo\n%s\n", dest);
		assert_string_equal(data, want);
		free(want);
	}
	free(data);
	assert_int_equal(util_read_file(envf, 1 << 16, &data, &len), 0);
	assert_non_null(strstr(data, "\nGIT_CONFIG_COUNT=1\n"));
	assert_non_null(strstr(data, "\nGIT_CONFIG_KEY_0=http.extraHeader\n"));
	assert_non_null(strstr(data,
	    "\nGIT_CONFIG_VALUE_0=Authorization: Basic eC1hY2Nlc3MtdG9rZW46czNjcjN0\n"));
	assert_non_null(strstr(data, "\nGIT_TERMINAL_PROMPT=0\n"));
	assert_non_null(strstr(data, "\nGIT_CONFIG_NOSYSTEM=1\n"));
	assert_non_null(strstr(data, "\nGIT_ALLOW_PROTOCOL=http:https:git:ssh\n"));
	assert_non_null(strstr(data, "\nHOME=/tmp/meshtest-git-"));
	assert_non_null(strstr(data, "BatchMode=yes"));
	free(data);
	assert_false(exists(dest));
	free(body);
	free(old);
	free(argsf);
	free(envf);
	free(dest);
}

static void
test_timeout_kills_group(void **state)
{
	struct fetch_git_opts o;
	char *pidf = xasprintf("%s/bgpid", tmp_root), *dest = xasprintf("%s/clone4", tmp_root);
	char *body, *old, *data = NULL, *procp;
	char err[256] = "";
	double t0;
	size_t len;

	(void)state;
	/* A helper in the background (like git-remote-https) and a hang. */
	body = xasprintf("mkdir -p \"${15}\"; sleep 60 & echo $! > '%s'; sleep 60", pidf);
	old = fake_git(body);
	fetch_git_opts_default(&o);
	o.timeout = 0.5;
	t0 = util_mono();
	assert_int_equal(fetch_git_clone("https://example.invalid/r", dest, &o, err, sizeof(err)),
	    -ETIMEDOUT);
	setenv("PATH", old, 1);
	assert_true(util_mono() - t0 < 3.0);
	assert_string_equal(err, "git clone failed: timed out after 0.5 seconds");
	assert_false(exists(dest));
	assert_int_equal(util_read_file(pidf, 64, &data, &len), 0);
	procp = xasprintf("/proc/%ld", strtol(data, NULL, 10));
	util_sleep(0.1);
	{
		/* Killed and reaped by init, or at most a zombie. */
		char *st = xasprintf("%s/stat", procp), *sd = NULL;
		size_t sl;
		if (util_read_file(st, 4096, &sd, &sl) == 0) {
			const char *rp = strrchr(sd, ')');
			assert_non_null(rp);
			assert_int_equal(rp[2], 'Z');
			free(sd);
		}
		free(st);
	}
	free(procp);
	free(data);
	free(body);
	free(old);
	free(pidf);
	free(dest);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_url),
		cmocka_unit_test(test_split_credentials),
		cmocka_unit_test(test_clone_local),
		cmocka_unit_test(test_clone_at_deadline),
		cmocka_unit_test(test_clone_errors),
		cmocka_unit_test(test_token_and_env),
		cmocka_unit_test(test_timeout_kills_group),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
