/*
 * util.c - time, ids, files and hashing helpers (see util.h).
 *
 * Stateless and thread-safe. The x* allocation wrappers abort on
 * out-of-memory: a node that cannot allocate a few bytes cannot go on safely.
 */
#include "core/util.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

double
util_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n digits of s as a number, or -1. */
static int
util_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int
util_parse_time(const char *s, double *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	struct tm tm;
	double frac = 0;
	int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
	time_t t;

	if (s == NULL || strlen(s) < 10 || s[4] != '-' || s[7] != '-')
		return -EINVAL;
	y = util_digits(s, 4);
	mo = util_digits(s + 5, 2);
	d = util_digits(s + 8, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return -EINVAL;
	s += 10;
	if (*s == 'T' || *s == 't' || *s == ' ') {
		s++;
		h = util_digits(s, 2);
		if (h < 0 || s[2] != ':' || (mi = util_digits(s + 3, 2)) < 0)
			return -EINVAL;
		s += 5;
		if (*s == ':') {
			if ((sec = util_digits(s + 1, 2)) < 0)
				return -EINVAL;
			s += 3;
			if (*s == '.' || *s == ',') {
				double scale = 0.1;
				if (s[1] < '0' || s[1] > '9')
					return -EINVAL;
				for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
					frac += (*s - '0') * scale;
			}
		}
		if (h > 23 || mi > 59 || sec > 60)
			return -EINVAL;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s == '-' ? -1 : 1, oh = util_digits(s + 1, 2), om;
		if (oh < 0)
			return -EINVAL;
		s += 3;
		if (*s == ':')
			s++;
		om = util_digits(s, 2);
		if (oh < 0 || om < 0 || oh > 23 || om > 59)
			return -EINVAL;
		s += 2;
		off = sign * (oh * 3600 + om * 60);
	}
	if (*s != '\0')
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (tm.tm_mday != d)      /* 29 February of a year without one */
		return -EINVAL;
	*out = (double)t - off + frac;
	return 0;
}

void
util_format_time(double t, char *out, size_t outlen)
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

double
util_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
util_thread_name(const char *role)
{
	char name[16];

	snprintf(name, sizeof(name), "mt-%s", role);
	pthread_setname_np(pthread_self(), name);
}

void
util_sleep(double seconds)
{
	struct timespec ts;

	if (seconds <= 0)
		return;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
util_random(void *p, size_t n)
{
	unsigned char *c = p;

	while (n > 0) {
		ssize_t r = getrandom(c, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

void
util_hex(const unsigned char *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		*out++ = hex[b[i] >> 4];
		*out++ = hex[b[i] & 15];
	}
	*out = '\0';
}

void
util_random_hex(char *out, size_t n)
{
	unsigned char b[64];

	while (n > 0) {
		size_t k = n < sizeof(b) ? n : sizeof(b);
		if (util_random(b, k) < 0)
			abort();
		util_hex(b, k, out);
		out += 2 * k;
		n -= k;
	}
	*out = '\0';
}

void
util_uuid4(char out[UUID_STR_LEN])
{
	unsigned char b[16];

	if (util_random(b, sizeof(b)) < 0)
		abort();
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, UUID_STR_LEN,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
	    b[10], b[11], b[12], b[13], b[14], b[15]);
}

int
util_is_uuid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F'))) {
			return 0;
		}
	}
	return s[36] == '\0';
}

int
util_mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int
rm_rf_at(int parent, const char *name)
{
	struct stat st;
	int fd, r = 0;
	DIR *d;
	struct dirent *de;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A folder without write or search permission (chmod by a test). */
	(void)fchmod(fd, 0700);
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int e = rm_rf_at(dirfd(d), de->d_name);
		if (e < 0 && r == 0)
			r = e;
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int
util_rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path);
}

void
util_rm_matching(const char *dir, const char *prefix, const char *infix)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if ((prefix != NULL && util_starts_with(de->d_name, prefix)) ||
		    (infix != NULL && strstr(de->d_name, infix) != NULL)) {
			char *p = xasprintf("%s/%s", dir, de->d_name);
			int r = util_rm_rf(p);
			if (r < 0)
				log_warn("cannot remove %s: %s", p, strerror(-r));
			free(p);
		}
	}
	closedir(d);
}

static int
copy_file_fd(int in, int out)
{
	char b[65536];

	for (;;) {
		ssize_t n = read(in, b, sizeof(b));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, b + off, (size_t)(n - off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			off += w;
		}
	}
}

static int
copy_at(int sfd, int dfd, const char *name, uid_t uid, gid_t gid)
{
	struct stat st;
	int r = 0;

	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlinkat(sfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = '\0';
		if (symlinkat(target, dfd, name) < 0 && errno != EEXIST)
			return -errno;
		if (uid != (uid_t)-1)
			(void)fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0)
			return -errno;
		int out = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC |
		    O_NOFOLLOW | O_CLOEXEC, st.st_mode & 0777);
		if (out < 0) {
			r = -errno;
			close(in);
			return r;
		}
		r = copy_file_fd(in, out);
		if (uid != (uid_t)-1)
			(void)fchown(out, uid, gid);
		(void)fchmod(out, st.st_mode & 0777);
		close(in);
		close(out);
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		DIR *d;
		struct dirent *de;
		int in, out;

		if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
			return -errno;
		in = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0)
			return -errno;
		out = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (out < 0) {
			r = -errno;
			close(in);
			return r;
		}
		d = fdopendir(in);
		if (d == NULL) {
			r = -errno;
			close(in);
			close(out);
			return r;
		}
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			int e = copy_at(dirfd(d), out, de->d_name, uid, gid);
			if (e < 0 && r == 0)
				r = e;
		}
		closedir(d);
		if (uid != (uid_t)-1)
			(void)fchown(out, uid, gid);
		(void)fchmod(out, (st.st_mode & 0777) | 0700);
		close(out);
		return r;
	}
	return 0; /* devices, fifos, sockets: never copied */
}

int
util_copy_tree(const char *src, const char *dst, uid_t uid, gid_t gid)
{
	char *sdir = xstrdup(src), *ddir = xstrdup(dst);
	char *sbase = strrchr(sdir, '/'), *dbase = strrchr(ddir, '/');
	int sfd = -1, dfd = -1, r;

	if (sbase == NULL || dbase == NULL) {
		r = -EINVAL;
		goto out;
	}
	*sbase++ = '\0';
	*dbase++ = '\0';
	sfd = open(*sdir ? sdir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dfd = open(*ddir ? ddir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || dfd < 0) {
		r = -errno;
		goto out;
	}
	/* Copy under the destination's own name. */
	if (strcmp(sbase, dbase) == 0) {
		r = copy_at(sfd, dfd, sbase, uid, gid);
	} else {
		struct stat st;
		if (fstatat(sfd, sbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			goto out;
		}
		if (!S_ISDIR(st.st_mode)) {
			r = -ENOTDIR;
			goto out;
		}
		if (mkdirat(dfd, dbase, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			goto out;
		}
		int in = openat(sfd, sbase, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int outfd = openat(dfd, dbase, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = in >= 0 ? fdopendir(in) : NULL;
		struct dirent *de;
		r = 0;
		if (d == NULL || outfd < 0) {
			r = -EIO;
		} else {
			while ((de = readdir(d)) != NULL) {
				if (strcmp(de->d_name, ".") == 0 ||
				    strcmp(de->d_name, "..") == 0)
					continue;
				int e = copy_at(dirfd(d), outfd, de->d_name, uid, gid);
				if (e < 0 && r == 0)
					r = e;
			}
			if (uid != (uid_t)-1)
				(void)fchown(outfd, uid, gid);
			(void)fchmod(outfd, (st.st_mode & 0777) | 0700);
		}
		if (d != NULL)
			closedir(d);
		else if (in >= 0)
			close(in);
		if (outfd >= 0)
			close(outfd);
	}
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	free(sdir);
	free(ddir);
	return r;
}

static int
chown_at(int parent, const char *name, uid_t uid, gid_t gid)
{
	struct stat st;
	int r = 0;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	if (S_ISDIR(st.st_mode)) {
		int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		if (d == NULL) {
			if (fd >= 0)
				close(fd);
			return -errno;
		}
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			int e = chown_at(dirfd(d), de->d_name, uid, gid);
			if (e < 0 && r == 0)
				r = e;
		}
		closedir(d);
	}
	return r;
}

int
util_chown_tree(const char *path, uid_t uid, gid_t gid)
{
	return chown_at(AT_FDCWD, path, uid, gid);
}

int
util_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd, r = 0;
	char *p = NULL;
	size_t n = 0, alloc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (alloc - n < 4097) {
			size_t na = alloc ? alloc * 2 : 8192;
			char *q = realloc(p, na);
			if (q == NULL) {
				r = -ENOMEM;
				goto fail;
			}
			p = q;
			alloc = na;
		}
		ssize_t k = read(fd, p + n, alloc - n - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > max) {
			r = -EFBIG;
			goto fail;
		}
	}
	if (p == NULL)
		p = xcalloc(1, 1);
	p[n] = '\0';
	close(fd);
	*out = p;
	if (len != NULL)
		*len = n;
	return 0;
fail:
	free(p);
	close(fd);
	return r;
}

int
util_fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int
util_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
util_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char rnd[17];
	char *tmp;
	int fd, r = 0;

	/*
	 * A fresh random name, created exclusively and never through a link:
	 * the folder may be one that submitted code could write to before.
	 */
	util_random_hex(rnd, 8);
	tmp = xasprintf("%s.tmp.%s", path, rnd);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = util_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
out:
	free(tmp);
	return r;
}

void
util_sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	util_hex(md, 32, out);
}

int
util_digest_fd(EVP_MD_CTX *ctx, int fd)
{
	unsigned char b[65536];
	off_t off = 0;

	for (;;) {
		ssize_t n = pread(fd, b, sizeof(b), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		EVP_DigestUpdate(ctx, b, (size_t)n);
		off += n;
	}
}

int
util_sha256_fd_hex(int fd, char out[SHA256_HEX_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int r;

	if (ctx == NULL)
		return -ENOMEM;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	r = util_digest_fd(ctx, fd);
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (r == 0)
		util_hex(md, 32, out);
	return r;
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		abort();
	return q;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		abort();
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	return p;
}

int
util_starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

int
util_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

void
util_close_from(int lowfd)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
		return;
#endif
	for (int fd = lowfd; fd < 65536; fd++)
		close(fd);
}

void
util_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
