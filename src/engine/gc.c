/*
 * gc.c - the files a deleted evaluation leaves on this node: its upload's
 * blob, its projects' blobs and unpacked folders, the slots' pristine copies
 * of them. The store queues the digests when the evaluation's tombstone is
 * applied here (store_cancel.c, file_gc); each coordinator round removes the
 * files of those no evaluation here uses any more.
 *
 * Never a file another evaluation uses: a digest that any evaluation in the
 * store still names is dropped from the queue, one a slot runs now waits,
 * and one whose files are younger than GC_GRACE waits too (a blob that just
 * arrived for a new evaluation whose rows have not yet: the same project
 * submitted again). A blob removed here that turns out to be needed after
 * all is fetched again from a peer, as any missing blob is.
 *
 * Threads: the coordinator's thread; run_lock is held while the files go,
 * so that no slot starts a batch of that project meanwhile.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "engine/blob.h"
#include "engine/engine_int.h"
#include "runner/warm.h"
#include "store/store.h"

#define GC_GRACE 15.0      /* seconds: files younger than this stay for now */
#define GC_BATCH 32        /* digests looked at per round */

/* 1 when path exists and changed less than GC_GRACE seconds ago. */
static int
gc_young(const char *path, double now)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0;
	return now - ((double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9) < GC_GRACE;
}

/* 1 when the digest's files went (or there were none), 0 when they wait. */
static int
gc_one(struct engine *eng, const char *digest, double now)
{
	char *blob = blob_path(eng->blobs_dir, digest);
	char *dir = engine_project_dir(eng, digest);
	int gone = 0;

	if (gc_young(blob, now) || gc_young(dir, now))
		goto out;
	pthread_mutex_lock(&eng->run_lock);
	if (!slot_runs_digest(eng, digest)) {
		if (unlink(blob) < 0 && errno != ENOENT)
			log_warn("engine: cannot remove %s: %s", blob, strerror(errno));
		util_rm_rf(dir);
		warm_drop_copies(digest);
		gone = 1;
	}
	pthread_mutex_unlock(&eng->run_lock);
	if (gone)
		log_info("engine: removed the files of %.12s (a deleted evaluation's, unused)",
		    digest);
out:
	free(blob);
	free(dir);
	return gone;
}

void
gc_run(struct engine *eng)
{
	struct store_digest *d = NULL;
	double now = util_now();
	size_t n = 0;

	if (store_gc_list(eng->st, GC_BATCH, &d, &n) < 0)
		return;
	for (size_t i = 0; i < n && !engine_is_stopping(eng); i++) {
		int used;

		/* digests come from other nodes too: only a real one names a path */
		if (!blob_digest_valid(d[i].d)) {
			store_gc_done(eng->st, d[i].d);
			continue;
		}
		used = store_digest_used(eng->st, d[i].d);
		if (used < 0)
			continue;
		if (used > 0 || gc_one(eng, d[i].d, now))
			store_gc_done(eng->st, d[i].d);
	}
	free(d);
}
