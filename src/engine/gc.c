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
 * gc_files_remove, the removal with those checks, is shared with the disk
 * budget and retention (gc_budget.c).
 *
 * Threads: the coordinator's thread (and, for gc_files_remove, an HTTP
 * thread making room for a submission); run_lock is held while the files
 * go, so that no slot starts a batch of that project meanwhile.
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

#define GC_BATCH 32        /* digests looked at per round */

/* 1 when st changed (written, renamed into place, touched) at or after since. */
static int
gc_changed_since(const struct stat *st, double since)
{
	return (double)st->st_ctim.tv_sec + st->st_ctim.tv_nsec / 1e9 >= since;
}

/* 1 when path exists and changed at or after since. */
static int
gc_path_changed(const char *path, double since)
{
	struct stat st;

	return lstat(path, &st) == 0 && gc_changed_since(&st, since);
}

/*
 * Remove the digest's blob unless it changed at or after since: 1 gone (or
 * not there), 0 kept. It is taken out of place first and looked at again:
 * a copy renamed into place meanwhile (an upload of the very same bytes) is
 * another file, put back rather than removed.
 */
static int
gc_blob_remove(struct engine *eng, const char *digest, double since)
{
	char *blob = blob_path(eng->blobs_dir, digest), *away = NULL, rnd[17];
	struct stat before, after;
	int gone = 0;

	if (lstat(blob, &before) < 0) {
		gone = errno == ENOENT;
		goto out;
	}
	if (gc_changed_since(&before, since))
		goto out;
	util_random_hex(rnd, 8);
	away = xasprintf("%s/.tmp-gc-%s", eng->blobs_dir, rnd);
	if (rename(blob, away) < 0) {
		gone = errno == ENOENT;
		goto out;
	}
	if (lstat(away, &after) == 0 && after.st_ino != before.st_ino) {
		if (rename(away, blob) < 0)
			log_warn("engine: cannot put %s back: %s", blob, strerror(errno));
		goto out;
	}
	if (unlink(away) < 0 && errno != ENOENT)
		log_warn("engine: cannot remove %s: %s", away, strerror(errno));
	gone = 1;
out:
	free(away);
	free(blob);
	return gone;
}

int
gc_files_remove(struct engine *eng, const char *digest, unsigned what, double since)
{
	char *dir = engine_project_dir(eng, digest);
	int gone = 0;

	pthread_mutex_lock(&eng->run_lock);
	if (slot_runs_digest(eng, digest) || gc_budget_held(eng, digest))
		goto out;
	if ((what & GC_PROJECT) && gc_path_changed(dir, since))
		goto out;
	if ((what & GC_BLOB) && !gc_blob_remove(eng, digest, since))
		goto out;
	if (what & GC_PROJECT) {
		int r = util_rm_rf(dir);
		if (r < 0)
			log_warn("engine: cannot remove %s: %s", dir, strerror(-r));
	}
	if (what & GC_COPIES)
		warm_drop_copies(digest);
	gone = 1;
out:
	pthread_mutex_unlock(&eng->run_lock);
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
		if (used > 0) {
			store_gc_done(eng->st, d[i].d);
		} else if (gc_files_remove(eng, d[i].d, GC_ALL, now - GC_GRACE)) {
			log_info("engine: removed the files of %.12s (a deleted evaluation's, unused)",
			    d[i].d);
			store_gc_done(eng->st, d[i].d);
		}
	}
	free(d);
}
