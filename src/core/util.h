/*
 * util.h - small helpers shared by every module: time, ids, files, hashing.
 *
 * All functions are thread-safe. Errors are negative errno values.
 */
#ifndef MESHTEST_UTIL_H
#define MESHTEST_UTIL_H

#include <stddef.h>
#include <sys/types.h>

#define UUID_STR_LEN 37 /* 36 characters and the NUL */
#define SHA256_HEX_LEN 65

/* Wall-clock seconds since the epoch, with sub-second precision. */
double util_now(void);
/* Monotonic seconds, for timeouts. */
double util_mono(void);
void util_sleep(double seconds);

/*
 * Name the calling thread "mt-<role>" (15 characters at most, cut), so that
 * top -H, ps -L and perf tell a node's threads apart.
 */
void util_thread_name(const char *role);

/*
 * An ISO 8601 time: YYYY-MM-DD, optionally THH:MM[:SS[.fff]] (or a space
 * for T), then Z, +HH:MM, -HH:MM, +HHMM or nothing (UTC). Seconds since the
 * epoch into *out; 0, or -EINVAL.
 */
int util_parse_time(const char *s, double *out);
/* t as "YYYY-MM-DDTHH:MM:SSZ" into out (21 bytes at least). */
void util_format_time(double t, char *out, size_t outlen);

/* A random (version 4) UUID in lowercase canonical form. */
void util_uuid4(char out[UUID_STR_LEN]);
/* 1 if s is a canonical lowercase or uppercase UUID. */
int util_is_uuid(const char *s);

/* Fill with bytes from getrandom(2). */
int util_random(void *p, size_t n);

/* mkdir -p with the given mode for every folder it creates. */
int util_mkdir_p(const char *path, mode_t mode);
/* rm -rf; never follows symbolic links; missing path is not an error. */
int util_rm_rf(const char *path);
/*
 * rm -rf every entry of dir whose name starts with prefix or contains infix
 * (either may be NULL); failures are logged, not returned.
 */
void util_rm_matching(const char *dir, const char *prefix, const char *infix);
/*
 * Copy a tree: regular files, folders and symbolic links (copied as links,
 * never followed). Everything created is owned by uid:gid when uid is not
 * (uid_t)-1. Other file types are skipped.
 */
int util_copy_tree(const char *src, const char *dst, uid_t uid, gid_t gid);
/* chown -R without following links. */
int util_chown_tree(const char *path, uid_t uid, gid_t gid);

/* Read a whole file, at most max bytes (-EFBIG past it); NUL-terminated. */
int util_read_file(const char *path, size_t max, char **out, size_t *len);
/* Write all of len bytes to fd (retrying short writes and EINTR): 0 or -errno. */
int util_write_all(int fd, const void *data, size_t len);
/* Write a file atomically (temp file, fsync, rename). */
int util_write_file(const char *path, const void *data, size_t len, mode_t mode);
/* fsync a file or folder by path. */
int util_fsync_path(const char *path);

/* SHA-256 of a buffer, as 64 lowercase hex characters and a NUL. */
void util_sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN]);
/*
 * SHA-256 of what an open file holds, read from its start with pread (the
 * descriptor's offset stays), in pieces: 0 or -errno.
 */
int util_sha256_fd_hex(int fd, char out[SHA256_HEX_LEN]);
/* Feed what an open file holds (as above) into an OpenSSL digest: 0 or -errno. */
struct evp_md_ctx_st;
int util_digest_fd(struct evp_md_ctx_st *ctx, int fd);

/* printf into an error buffer (nothing when err is NULL or errlen 0). */
void util_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* malloc'ed printf; aborts on out-of-memory (like every x* function). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xstrdup(const char *s);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);

/* Lowercase hex of n random bytes into out (2n+1 bytes). */
void util_random_hex(char *out, size_t n);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void util_hex(const unsigned char *b, size_t n, char *out);

/* 1 if s starts with prefix. */
int util_starts_with(const char *s, const char *prefix);
/* 1 if s ends with suffix. */
int util_ends_with(const char *s, const char *suffix);

/* Close every file descriptor >= lowfd (in a child before exec). */
void util_close_from(int lowfd);

#endif
