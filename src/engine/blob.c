/*
 * blob.c - content-addressed project archives (see blob.h).
 *
 * Stateless; the file system is the state (and the byte counters of
 * core/metrics.h). Each write goes to a unique temporary name first, so
 * readers see whole blobs or none.
 */
#include "engine/blob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/peer.h"
#include "core/log.h"
#include "core/metrics.h"
#include "fetch/fetch_zip.h"
#include "fetch/layout.h"
#include "http/http_client.h"

#define BLOB_TIMEOUT 120.0

int
blob_digest_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 64;
}

char *
blob_path(const char *blobs_dir, const char *digest)
{
	return xasprintf("%s/%s.zip", blobs_dir, digest);
}

int
blob_has(const char *blobs_dir, const char *digest)
{
	char *p = blob_path(blobs_dir, digest);
	int r = access(p, R_OK) == 0;

	free(p);
	return r;
}

int
blob_touch(const char *blobs_dir, const char *digest)
{
	char *p = blob_path(blobs_dir, digest);
	int r = utimensat(AT_FDCWD, p, NULL, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;

	free(p);
	return r;
}

/* SHA-256 of a file, streamed. */
/* Feed the file at path (opened without following a link) into ctx. */
static int
sha256_feed_file(EVP_MD_CTX *ctx, int dirfd, const char *path)
{
	unsigned char b[65536];
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, b, sizeof(b));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, b, (size_t)n);
	}
	close(fd);
	return r;
}

static void
sha256_hex_final(EVP_MD_CTX *ctx, char out[SHA256_HEX_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static int
file_sha256(const char *path, char out[SHA256_HEX_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r;

	if (ctx == NULL)
		return -ENOMEM;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	r = sha256_feed_file(ctx, AT_FDCWD, path);
	if (r == 0)
		sha256_hex_final(ctx, out);
	EVP_MD_CTX_free(ctx);
	return r;
}

static int
blob_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Feed the folder rel (under root) into ctx: its entries in name order,
 * each as a record of kind, path, mode and content (a file's bytes, a
 * link's target), folders recursively.
 */
static int
blob_tree_feed(EVP_MD_CTX *ctx, int rootfd, const char *rel, int depth)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int fd, r = 0;

	if (depth > 256)
		return -ELOOP;
	fd = openat(rootfd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), blob_name_cmp);
	for (size_t i = 0; i < n && r == 0; i++) {
		char *path = *rel ? xasprintf("%s/%s", rel, names[i]) : xstrdup(names[i]);
		struct stat st;
		char head[64];

		if (fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
		} else if (S_ISDIR(st.st_mode)) {
			EVP_DigestUpdate(ctx, "D", 1);
			EVP_DigestUpdate(ctx, path, strlen(path) + 1);
			r = blob_tree_feed(ctx, rootfd, path, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			int len = snprintf(head, sizeof(head), "%o:%lld", (unsigned)(st.st_mode & 0111),
					   (long long)st.st_size);
			EVP_DigestUpdate(ctx, "F", 1);
			EVP_DigestUpdate(ctx, path, strlen(path) + 1);
			EVP_DigestUpdate(ctx, head, (size_t)len + 1);
			r = sha256_feed_file(ctx, rootfd, path);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t tl = readlinkat(rootfd, path, target, sizeof(target));
			if (tl < 0) {
				r = -errno;
			} else {
				EVP_DigestUpdate(ctx, "L", 1);
				EVP_DigestUpdate(ctx, path, strlen(path) + 1);
				EVP_DigestUpdate(ctx, target, (size_t)tl);
				EVP_DigestUpdate(ctx, "", 1);
			}
		}
		free(path);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int
blob_tree_digest(const char *dir, char digest[SHA256_HEX_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (ctx == NULL || rootfd < 0) {
		r = rootfd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, "meshtest-tree-1", 16);
	r = blob_tree_feed(ctx, rootfd, "", 0);
	if (r == 0)
		sha256_hex_final(ctx, digest);
out:
	if (rootfd >= 0)
		close(rootfd);
	EVP_MD_CTX_free(ctx);
	return r;
}

static char *
tmp_name(const char *blobs_dir)
{
	char rnd[17];

	util_random_hex(rnd, 8);
	return xasprintf("%s/.tmp-%s", blobs_dir, rnd);
}

int
blob_adopt(const char *blobs_dir, const char *path, const char *digest)
{
	char got[SHA256_HEX_LEN];
	char *dst;
	int r;

	if (!blob_digest_valid(digest))
		return -EINVAL;
	r = file_sha256(path, got);
	if (r < 0)
		return r;
	if (strcmp(got, digest) != 0) {
		unlink(path);
		return -EBADMSG;
	}
	dst = blob_path(blobs_dir, digest);
	util_fsync_path(path);
	if (rename(path, dst) < 0)
		r = -errno;
	free(dst);
	return r;
}

int
blob_from_dir(const char *blobs_dir, const char *dir, char digest[SHA256_HEX_LEN],
    char *err, size_t errlen)
{
	char *tmp = tmp_name(blobs_dir);
	int r;

	util_mkdir_p(blobs_dir, 0700);
	r = fetch_zip_create_exact(dir, tmp, err, errlen);
	if (r == 0)
		r = file_sha256(tmp, digest);
	if (r == 0)
		r = blob_adopt(blobs_dir, tmp, digest);
	if (r < 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "cannot pack the project: %s", strerror(-r));
		unlink(tmp);
	}
	free(tmp);
	return r;
}

int
blob_from_file(const char *blobs_dir, const char *path, char digest[SHA256_HEX_LEN])
{
	int r;

	util_mkdir_p(blobs_dir, 0700);
	r = file_sha256(path, digest);
	if (r == 0)
		r = blob_adopt(blobs_dir, path, digest);
	return r;
}

int
blob_fetch(const char *blobs_dir, const char *digest, char *const *peers, size_t npeers,
    size_t max_bytes, char *err, size_t errlen)
{
	char *path = xasprintf("/blob/%s", digest);
	int r = -ENOENT;

	snprintf(err, errlen, "no live node has the project's files (%.12s)", digest);
	util_mkdir_p(blobs_dir, 0700);
	for (size_t i = 0; i < npeers && r < 0; i++) {
		struct http_response resp;
		char *tmp;

		if (peer_request_raw(peers[i], "GET", path, NULL, 0, NULL, BLOB_TIMEOUT,
		    max_bytes, &resp) < 0 || resp.status != 200) {
			http_response_free(&resp);
			continue;
		}
		metrics_add(METRICS_BLOB_RECEIVED_BYTES, resp.len);
		tmp = tmp_name(blobs_dir);
		r = util_write_file(tmp, resp.body, resp.len, 0600);
		http_response_free(&resp);
		if (r == 0)
			r = blob_adopt(blobs_dir, tmp, digest);
		if (r < 0) {
			log_warn("blob: %.12s from %s: %s", digest, peers[i], strerror(-r));
			unlink(tmp);
		}
		free(tmp);
	}
	free(path);
	if (r == 0)
		err[0] = '\0';
	return r;
}

int
blob_push(const char *blobs_dir, const char *digest, const char *peer, size_t max_bytes)
{
	struct http_response resp;
	char *file = blob_path(blobs_dir, digest), *path = xasprintf("/blob/%s", digest);
	char *data = NULL;
	size_t len = 0;
	int r;

	r = util_read_file(file, max_bytes, &data, &len);
	if (r == 0) {
		r = peer_request_raw(peer, "PUT", path, data, len, "application/zip",
		    BLOB_TIMEOUT, 4096, &resp);
		if (r == 0)
			metrics_add(METRICS_BLOB_SENT_BYTES, len);
		if (r == 0 && resp.status != 200 && resp.status != 201)
			r = -EIO;
		http_response_free(&resp);
	}
	free(data);
	free(file);
	free(path);
	return r;
}

int
blob_unpack(const char *blobs_dir, const char *digest, const char *dest,
    const struct fetch_limits *lim, char *err, size_t errlen)
{
	char *file = blob_path(blobs_dir, digest);
	char *tmp = NULL, rnd[17];
	char **warnings = NULL;
	size_t nwarnings = 0;
	struct stat st;
	int r = 0;

	if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode))
		goto out;
	util_random_hex(rnd, 8);
	tmp = xasprintf("%s.tmp-%s", dest, rnd);
	r = fetch_zip_extract(file, "", tmp, lim, &warnings, &nwarnings, err, errlen);
	layout_strv_free(warnings, nwarnings);
	if (r == 0 && rename(tmp, dest) < 0 && errno != ENOTEMPTY && errno != EEXIST)
		r = -errno;
	util_rm_rf(tmp);
out:
	free(tmp);
	free(file);
	return r;
}
