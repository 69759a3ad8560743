/*
 * diskuse.c - a folder's size on disk, walked by one thread per watched
 * folder when a reader asks and the last measure is stale (see diskuse.h).
 *
 * Threads: the folder's thread walks; readers (HTTP threads) take the cached
 * value and may ask for a walk. Everything in struct diskuse is guarded by
 * its lock, except the stop flag, which the walk polls without it.
 */
#include "core/diskuse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

#define DISKUSE_MAX_DEPTH 64     /* deeper folders are not counted (no run makes them) */

struct diskuse {
	char *dir;
	double period;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;         /* CLOCK_MONOTONIC */
	int asked;                   /* a reader wants a new measure */
	int have;                    /* bytes holds a measure */
	double asked_at;             /* util_mono() of the last ask; < 0: never */
	uint64_t bytes;
	atomic_int stopping;
};

/* Add what the folder fd (dev: its file system) holds below it. */
static void
diskuse_walk(int fd, dev_t dev, int depth, const atomic_int *stop, uint64_t *sum)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;

	if (d == NULL) {
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL && !atomic_load(stop)) {
		struct stat st;
		int sub;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		/* what vanished meanwhile (a run's folder) simply is not counted */
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* a mount below (a run's overlay) belongs to another file system */
		if (st.st_dev != dev)
			continue;
		*sum += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode) || depth >= DISKUSE_MAX_DEPTH)
			continue;
		sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			diskuse_walk(sub, dev, depth + 1, stop, sum);
	}
	closedir(d);
}

static int
diskuse_measure_until(const char *dir, const atomic_int *stop, uint64_t *bytes)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	uint64_t sum;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	sum = (uint64_t)st.st_blocks * 512;
	diskuse_walk(fd, st.st_dev, 1, stop, &sum);
	if (atomic_load(stop))
		return -ECANCELED;
	*bytes = sum;
	return 0;
}

int
diskuse_measure(const char *dir, uint64_t *bytes)
{
	static const atomic_int never = 0;

	return diskuse_measure_until(dir, &never, bytes);
}

static void *
diskuse_main(void *arg)
{
	struct diskuse *d = arg;

	util_thread_name("diskuse");
	pthread_mutex_lock(&d->lock);
	for (;;) {
		uint64_t bytes = 0;
		int r;

		while (!atomic_load(&d->stopping) && !d->asked)
			pthread_cond_wait(&d->cond, &d->lock);
		if (atomic_load(&d->stopping))
			break;
		pthread_mutex_unlock(&d->lock);
		r = diskuse_measure_until(d->dir, &d->stopping, &bytes);
		pthread_mutex_lock(&d->lock);
		d->asked = 0;
		if (r == 0) {
			d->bytes = bytes;
			d->have = 1;
		}
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int
diskuse_start(const char *dir, double period, struct diskuse **out)
{
	struct diskuse *d = xcalloc(1, sizeof(*d));
	pthread_condattr_t ca;

	d->dir = xstrdup(dir);
	d->period = period;
	d->asked_at = -1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&d->thread, NULL, diskuse_main, d) != 0) {
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
		free(d->dir);
		free(d);
		return -EAGAIN;
	}
	*out = d;
	return 0;
}

void
diskuse_stop(struct diskuse *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	atomic_store(&d->stopping, 1);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d->dir);
	free(d);
}

int
diskuse_get(struct diskuse *d, double wait, uint64_t *bytes)
{
	double now = util_mono();
	struct timespec until;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)wait;
	until.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&d->lock);
	if (!d->asked && (d->asked_at < 0 || now - d->asked_at >= d->period)) {
		d->asked = 1;
		d->asked_at = now;
		pthread_cond_broadcast(&d->cond);
	}
	while (!d->have && d->asked && !atomic_load(&d->stopping) &&
	    pthread_cond_timedwait(&d->cond, &d->lock, &until) == 0)
		;
	*bytes = d->bytes;
	r = d->have ? 0 : -EAGAIN;
	pthread_mutex_unlock(&d->lock);
	return r;
}
