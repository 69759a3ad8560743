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

/* Feed the file at path (opened without following a link) into ctx. */
static int
sha256_feed_file(EVP_MD_CTX *ctx, int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r;

	if (fd < 0)
		return -errno;
	r = util_digest_fd(ctx, fd);
	close(fd);
	return r;
}

static void
sha256_hex_final(EVP_MD_CTX *ctx, char out[SHA256_HEX_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_DigestFinal_ex(ctx, md, &mdlen);
	util_hex(md, 32, out);
}

/* SHA-256 of the file at path (not followed if a link), streamed. */
static int
file_sha256(const char *path, char out[SHA256_HEX_LEN])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r;

	if (fd < 0)
		return -errno;
	r = util_sha256_fd_hex(fd, out);
	close(fd);
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

/* blob_adopt with the file's hash known (got): checked against digest, then moved. */
static int
blob_adopt_hashed(const char *blobs_dir, const char *path, const char *digest,
    const char *got)
{
	char *dst;
	int r = 0;

	if (!blob_digest_valid(digest))
		return -EINVAL;
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
blob_adopt(const char *blobs_dir, const char *path, const char *digest)
{
	char got[SHA256_HEX_LEN];
	int r = file_sha256(path, got);

	return r < 0 ? r : blob_adopt_hashed(blobs_dir, path, digest, got);
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
	/* written to a file of its own as it comes, never whole in memory */
	for (size_t i = 0; i < npeers && r < 0; i++) {
		struct http_response resp;
		char *tmp = tmp_name(blobs_dir), got[SHA256_HEX_LEN];
		/* read too: the answer's MAC is checked over what the file holds */
		int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (fd < 0) {
			r = -errno;
			log_warn("blob: %s: %s", tmp, strerror(errno));
			free(tmp);
			break;
		}
		r = peer_request_files(peers[i], "GET", path, -1, NULL, NULL, fd, BLOB_TIMEOUT,
		    max_bytes, &resp, got);
		if (r == 0 && resp.status != 200)
			r = -ENOENT;
		if (r == 0)
			metrics_add(METRICS_BLOB_RECEIVED_BYTES, resp.len);
		http_response_free(&resp);
		close(fd);
		/* hashed once as it was read back, for its MAC: that is the digest to check */
		if (r == 0)
			r = blob_adopt_hashed(blobs_dir, tmp, digest, got);
		if (r < 0 && r != -ENOENT)
			log_warn("blob: %.12s from %s: %s", digest, peers[i], strerror(-r));
		if (r < 0)
			unlink(tmp);
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
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0;
	struct stat sb;

	/* sent from the file as it is read (the digest is its hash, which the MAC covers) */
	if (fd < 0 || fstat(fd, &sb) < 0)
		r = -errno;
	else if ((uint64_t)sb.st_size > max_bytes)
		r = -EFBIG;
	if (r == 0) {
		r = peer_request_files(peer, "PUT", path, fd, digest, "application/zip", -1,
		    BLOB_TIMEOUT, 4096, &resp, NULL);
		if (r == 0)
			metrics_add(METRICS_BLOB_SENT_BYTES, (uint64_t)sb.st_size);
		if (r == 0 && resp.status != 200 && resp.status != 201)
			r = -EIO;
		http_response_free(&resp);
	}
	if (fd >= 0)
		close(fd);
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
