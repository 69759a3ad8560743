/*
 * gc_budget.c - the node's disk budget (--max-disk) and retention
 * (--retention-days), beside gc.c's collector of deleted evaluations.
 *
 * What counts: the files this node keeps to run projects, in four
 * categories: blobs (<data>/blobs), unpacked projects (<data>/projects),
 * work folders (<work>/work: the slots' pristine copies and run scratch)
 * and environments (<work>/venvs). The SQLite store is reported beside
 * them, never counted or touched: results, grades and /stats live there.
 *
 * Accounting without walking the tree every round: each refresh (at most
 * every GC_BUDGET_REFRESH seconds) lists the category folders and their
 * direct entries only. An entry that is done changing (a blob, a project
 * folder, a slot's copy, an environment: each is renamed into place whole)
 * is measured once, when it first shows up or its inode or time changes;
 * what still changes (fetches, builds and runs under way) is measured at
 * every refresh.
 *
 * What may go: the files of a digest that no evaluation with work left in
 * the local store names (the store replicates every evaluation, so a blob
 * an unfinished evaluation needs anywhere is kept wherever it is), that no
 * slot runs, no fetch holds (gc_budget_hold) and that did not change since
 * that list was read (gc_files_remove); a digest no evaluation names at all
 * waits GC_GRACE first (a blob that came before its evaluation's rows). An
 * environment goes when no batch uses it and no warm worker runs in it
 * (env_evict, which first asks the slots to stop idle workers of it). Over
 * the budget these go least recently used first (last use: the time each
 * was last seen in use, else its files' time); past retention, the files
 * of digests whose evaluations all finished before the cutoff go, and
 * environments unused since then. Whatever goes is made again when needed:
 * a missing blob is fetched from a peer and unpacked, an environment is
 * built on demand.
 *
 * A submission that does not fit even after that is refused before
 * anything of it is written (gc_budget_make_room, 507 at the API).
 *
 * Threads: the coordinator's round (gc_budget_run) and HTTP threads
 * (gc_budget_make_room, gc_budget_json). lock guards the accounting and
 * serializes removals (taken before run_lock, env.c's lock and hold_lock);
 * show_lock guards the totals GET /health reads, so it never waits for a
 * removal; hold_lock guards the fetches' holds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "config/config.h"
#include "core/diskuse.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine_int.h"
#include "runner/env.h"
#include "store/store.h"

#define GC_BUDGET_REFRESH 1.0             /* seconds between two listings at most */
#define GC_BUDGET_RETAIN_EVERY 60.0       /* seconds between two retention passes */
#define GC_BUDGET_DEFAULT_CAP (20ULL << 30)
#define GC_BUDGET_DEFAULT_SHARE 0.8
#define GC_BUDGET_MIN (1ULL << 20)

enum gc_budget_cat {
	GC_BUDGET_BLOBS,
	GC_BUDGET_PROJECTS,
	GC_BUDGET_WORK,
	GC_BUDGET_ENVS,
	GC_BUDGET_NCAT
};

/* GET /health's names of the categories, and what the log calls one entry of each. */
static const char *const gc_budget_names[GC_BUDGET_NCAT] = {
	"blobs", "projects", "work", "envs"
};
static const char *const gc_budget_what[GC_BUDGET_NCAT] = {
	"the blob", "the project folder", "the slots' copies", "the environment"
};

/* One entry of a category folder (a slot's copy for work), as last measured. */
struct gc_budget_item {
	char *path;
	int cat;
	char key[65];          /* its digest, or environment key; "" when it never goes */
	int scratch;           /* still changing: measured at every refresh */
	ino_t ino;
	struct timespec mtime;
	uint64_t bytes;
	double last_used;      /* util_now() time */
	int in_use;            /* at the last refresh */
	int gone;              /* removed in this pass */
};

struct gc_budget {
	pthread_mutex_t lock;
	uint64_t budget;             /* 0 until the default is known */
	uint64_t avail;              /* free bytes at start, for the default */
	double retention;            /* seconds; 0: forever */
	struct gc_budget_item *items;  /* sorted by path */
	size_t nitems;
	uint64_t dirs[GC_BUDGET_NCAT];   /* the category folders themselves */
	double refreshed;            /* util_mono() of the last refresh, < 0: none */
	double snap;                 /* util_now() when pinned was read */
	struct store_digest *pinned; /* sorted */
	size_t npinned;
	double retain_next;          /* util_mono() of the next retention pass */
	char *venvs_dir, *work_dir;

	pthread_mutex_t show_lock;
	uint64_t shown[GC_BUDGET_NCAT], shown_budget, evicted;

	pthread_mutex_t hold_lock;
	struct store_digest *holds;  /* with repeats: one per hold */
	size_t nholds;
};

/* ------------------------------------------------------------------ pure */

uint64_t
gc_budget_default(uint64_t used, uint64_t avail)
{
	/*
	 * What meshtest holds already counts as room it may use (a restart does
	 * not start by throwing it away), and a fifth of the rest stays free
	 * for everything else on the machine: the store, uploads on their way,
	 * logs. 20 GiB holds a term of projects and environments; beyond it
	 * the operator says so.
	 */
	double share = GC_BUDGET_DEFAULT_SHARE * ((double)used + (double)avail);
	uint64_t b = share >= (double)GC_BUDGET_DEFAULT_CAP ? GC_BUDGET_DEFAULT_CAP :
	    (uint64_t)share;

	return b < GC_BUDGET_MIN ? GC_BUDGET_MIN : b;
}

void
gc_budget_format(uint64_t bytes, char *out, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(out, len, "%llu B", (unsigned long long)bytes);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%.1f %s", v, units[u]);
}

static int
gc_budget_digest_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_digest *)a)->d, ((const struct store_digest *)b)->d);
}

static int
gc_budget_has(const struct store_digest *v, size_t n, const char *d)
{
	struct store_digest k;

	snprintf(k.d, sizeof(k.d), "%s", d);
	return n > 0 && bsearch(&k, v, n, sizeof(*v), gc_budget_digest_cmp) != NULL;
}

static int
gc_budget_hex64(const char *s)
{
	return strspn(s, "0123456789abcdef") == 64;
}

static double
gc_budget_time(struct timespec ts)
{
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --------------------------------------------------------------- holds */

void
gc_budget_hold(struct engine *eng, const char *digest)
{
	struct gc_budget *b = eng->budget;

	pthread_mutex_lock(&b->hold_lock);
	b->holds = xrealloc(b->holds, (b->nholds + 1) * sizeof(*b->holds));
	snprintf(b->holds[b->nholds++].d, sizeof(b->holds[0].d), "%s", digest);
	pthread_mutex_unlock(&b->hold_lock);
}

void
gc_budget_unhold(struct engine *eng, const char *digest)
{
	struct gc_budget *b = eng->budget;

	pthread_mutex_lock(&b->hold_lock);
	for (size_t i = 0; i < b->nholds; i++) {
		if (strcmp(b->holds[i].d, digest) == 0) {
			b->holds[i] = b->holds[--b->nholds];
			break;
		}
	}
	pthread_mutex_unlock(&b->hold_lock);
}

int
gc_budget_held(struct engine *eng, const char *digest)
{
	struct gc_budget *b = eng->budget;
	int held = 0;

	if (b == NULL)
		return 0;
	pthread_mutex_lock(&b->hold_lock);
	for (size_t i = 0; i < b->nholds && !held; i++)
		held = strcmp(b->holds[i].d, digest) == 0;
	pthread_mutex_unlock(&b->hold_lock);
	return held;
}

/* ---------------------------------------------------------- accounting */

/* A refresh under way: the new list of items, built from the old one. */
struct gc_budget_scan {
	struct gc_budget *b;
	struct gc_budget_item *items;
	size_t n, cap;
};

static int
gc_budget_item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gc_budget_item *)a)->path,
	    ((const struct gc_budget_item *)b)->path);
}

static const struct gc_budget_item *
gc_budget_find(const struct gc_budget *b, const char *path)
{
	struct gc_budget_item k = { .path = (char *)path };

	if (b->nitems == 0)
		return NULL;
	return bsearch(&k, b->items, b->nitems, sizeof(k), gc_budget_item_cmp);
}

/* Bytes of the entry name of dirfd (at path): a folder walked, a file's blocks. */
static uint64_t
gc_budget_measure(const char *path, const struct stat *st)
{
	uint64_t bytes = 0;

	if (S_ISDIR(st->st_mode) && diskuse_measure(path, &bytes) == 0)
		return bytes;
	return (uint64_t)st->st_blocks * 512;
}

/* Add entry name of folder dir (open as dfd) to the scan. */
static void
gc_budget_add(struct gc_budget_scan *sc, int dfd, const char *dir, const char *name, int cat,
    const char *key, int scratch)
{
	const struct gc_budget_item *old;
	struct gc_budget_item *it;
	struct stat st;
	double m;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;   /* gone meanwhile */
	if (sc->n == sc->cap) {
		sc->cap = sc->cap ? sc->cap * 2 : 64;
		sc->items = xrealloc(sc->items, sc->cap * sizeof(*sc->items));
	}
	it = &sc->items[sc->n++];
	memset(it, 0, sizeof(*it));
	it->path = xasprintf("%s/%s", dir, name);
	it->cat = cat;
	snprintf(it->key, sizeof(it->key), "%s", key);
	it->scratch = scratch;
	it->ino = st.st_ino;
	it->mtime = st.st_mtim;
	old = gc_budget_find(sc->b, it->path);
	if (old != NULL && !scratch && old->ino == st.st_ino &&
	    old->mtime.tv_sec == st.st_mtim.tv_sec && old->mtime.tv_nsec == st.st_mtim.tv_nsec)
		it->bytes = old->bytes;
	else
		it->bytes = gc_budget_measure(it->path, &st);
	m = gc_budget_time(st.st_mtim);
	it->last_used = old != NULL && old->last_used > m ? old->last_used : m;
}

/*
 * The key of a category's entry: 1 with key set (a digest's files, an
 * environment), 0 for a file that stays (an environment's resolution
 * record), -1 for what is still being made (temporary names).
 */
static int
gc_budget_classify(int cat, const char *name, char key[65])
{
	size_t len = strlen(name);

	key[0] = '\0';
	if (!gc_budget_hex64(name))
		return cat == GC_BUDGET_ENVS && util_ends_with(name, ".resolved") ? 0 : -1;
	if (cat == GC_BUDGET_BLOBS && (len != 68 || strcmp(name + 64, ".zip") != 0))
		return -1;
	if (cat != GC_BUDGET_BLOBS && len != 64)
		return -1;
	memcpy(key, name, 64);
	key[64] = '\0';
	return 1;
}

/* Open a folder of category cat and count its own blocks; NULL when it is not there. */
static DIR *
gc_budget_opendir(struct gc_budget_scan *sc, const char *dir, int cat)
{
	DIR *d = opendir(dir);
	struct stat st;

	if (d != NULL && fstat(dirfd(d), &st) == 0)
		sc->b->dirs[cat] += (uint64_t)st.st_blocks * 512;
	return d;
}

/* The next entry of d but "." and "..", or NULL. */
static struct dirent *
gc_budget_next(DIR *d)
{
	struct dirent *de;

	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			break;
	return de;
}

/* Add the entries of dir (of category cat) and the folder's own blocks. */
static void
gc_budget_scan_dir(struct gc_budget_scan *sc, const char *dir, int cat)
{
	DIR *d = gc_budget_opendir(sc, dir, cat);
	struct dirent *de;

	while (d != NULL && (de = gc_budget_next(d)) != NULL) {
		char key[65];
		int k = gc_budget_classify(cat, de->d_name, key);

		gc_budget_add(sc, dirfd(d), dir, de->d_name, cat, key, k < 0);
	}
	if (d != NULL)
		closedir(d);
}

/* <work>/work: each slot's pristine copies by digest, the rest (runs) as scratch. */
static void
gc_budget_scan_work(struct gc_budget_scan *sc)
{
	const char *work = sc->b->work_dir;
	DIR *d = gc_budget_opendir(sc, work, GC_BUDGET_WORK), *sd;
	struct dirent *de, *se;

	while (d != NULL && (de = gc_budget_next(d)) != NULL) {
		char *slot = xasprintf("%s/%s", work, de->d_name), *copies;

		sd = util_starts_with(de->d_name, "slot-") ?
		    gc_budget_opendir(sc, slot, GC_BUDGET_WORK) : NULL;
		if (sd == NULL)
			gc_budget_add(sc, dirfd(d), work, de->d_name, GC_BUDGET_WORK, "", 1);
		while (sd != NULL && (se = gc_budget_next(sd)) != NULL) {
			if (strcmp(se->d_name, "projects") != 0) {
				gc_budget_add(sc, dirfd(sd), slot, se->d_name, GC_BUDGET_WORK, "", 1);
				continue;
			}
			copies = xasprintf("%s/projects", slot);
			gc_budget_scan_dir(sc, copies, GC_BUDGET_WORK);
			free(copies);
		}
		if (sd != NULL)
			closedir(sd);
		free(slot);
	}
	if (d != NULL)
		closedir(d);
}

static void
gc_budget_items_free(struct gc_budget_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].path);
	free(items);
}

static uint64_t
gc_budget_used(const struct gc_budget *b, uint64_t used[GC_BUDGET_NCAT])
{
	uint64_t total = 0;

	for (int c = 0; c < GC_BUDGET_NCAT; c++)
		used[c] = b->dirs[c];
	for (size_t i = 0; i < b->nitems; i++)
		if (!b->items[i].gone)
			used[b->items[i].cat] += b->items[i].bytes;
	for (int c = 0; c < GC_BUDGET_NCAT; c++)
		total += used[c];
	return total;
}

/* Copy the totals for GET /health (lock held). */
static void
gc_budget_show(struct gc_budget *b, uint64_t freed)
{
	uint64_t used[GC_BUDGET_NCAT];

	gc_budget_used(b, used);
	pthread_mutex_lock(&b->show_lock);
	memcpy(b->shown, used, sizeof(used));
	b->shown_budget = b->budget;
	b->evicted += freed;
	pthread_mutex_unlock(&b->show_lock);
}

/*
 * What is in use now: the digests unfinished evaluations name (read at
 * b->snap), those a slot runs or a fetch holds, the environments a batch
 * runs in or that are being built. Their last use is now. (An environment
 * only idle warm workers keep is not in use: env_evict stops them.)
 */
static void
gc_budget_mark(struct engine *eng, struct gc_budget *b)
{
	double now = util_now();

	free(b->pinned);
	b->pinned = NULL;
	b->npinned = 0;
	b->snap = now;
	if (store_disk_pinned(eng->st, &b->pinned, &b->npinned) < 0) {
		/* without the list nothing of a digest may go this time */
		b->snap = -1;
	}
	if (b->npinned > 0)
		qsort(b->pinned, b->npinned, sizeof(*b->pinned), gc_budget_digest_cmp);
	pthread_mutex_lock(&eng->run_lock);
	for (size_t i = 0; i < b->nitems; i++) {
		struct gc_budget_item *it = &b->items[i];
		if (it->key[0] == '\0' || it->cat == GC_BUDGET_ENVS)
			continue;
		it->in_use = b->snap < 0 || gc_budget_has(b->pinned, b->npinned, it->key) ||
		    slot_runs_digest(eng, it->key) || gc_budget_held(eng, it->key);
	}
	pthread_mutex_unlock(&eng->run_lock);
	for (size_t i = 0; i < b->nitems; i++) {
		struct gc_budget_item *it = &b->items[i];
		if (it->key[0] != '\0' && it->cat == GC_BUDGET_ENVS)
			it->in_use = env_busy(it->key);
		if (it->in_use || it->scratch)
			it->last_used = now;
	}
}

/* List the category folders again (lock held); force: even when it is recent. */
static void
gc_budget_refresh(struct engine *eng, struct gc_budget *b, int force)
{
	struct gc_budget_scan sc = { b, NULL, 0, 0 };
	uint64_t used[GC_BUDGET_NCAT], total;

	if (!force && b->refreshed >= 0 && util_mono() - b->refreshed < GC_BUDGET_REFRESH)
		return;
	memset(b->dirs, 0, sizeof(b->dirs));
	gc_budget_scan_dir(&sc, eng->blobs_dir, GC_BUDGET_BLOBS);
	gc_budget_scan_dir(&sc, eng->projects_dir, GC_BUDGET_PROJECTS);
	gc_budget_scan_work(&sc);
	gc_budget_scan_dir(&sc, b->venvs_dir, GC_BUDGET_ENVS);
	if (sc.n > 0)
		qsort(sc.items, sc.n, sizeof(*sc.items), gc_budget_item_cmp);
	gc_budget_items_free(b->items, b->nitems);
	b->items = sc.items;
	b->nitems = sc.n;
	b->refreshed = util_mono();
	gc_budget_mark(eng, b);
	total = gc_budget_used(b, used);
	if (b->budget == 0) {
		char s[32], u[32];
		b->budget = gc_budget_default(total, b->avail);
		gc_budget_format(b->budget, s, sizeof(s));
		gc_budget_format(total, u, sizeof(u));
		log_info("engine: disk budget %s (the default: 80%% of the %s meshtest holds and"
		    " the free space, at most 20 GiB; --max-disk sets it)", s, u);
	}
	gc_budget_show(b, 0);
}

/* ------------------------------------------------------------- removal */

/*
 * The order things go in (indexes into the items, qsort_r): least recently
 * used first; at the same time copies before what they are made from, and
 * environments (a build with pip) last.
 */
static int
gc_budget_lru_cmp(const void *a, const void *b, void *items)
{
	static const int rank[GC_BUDGET_NCAT] = { 2, 1, 0, 3 };
	const struct gc_budget_item *x = &((struct gc_budget_item *)items)[*(const size_t *)a];
	const struct gc_budget_item *y = &((struct gc_budget_item *)items)[*(const size_t *)b];

	if (x->last_used != y->last_used)
		return x->last_used < y->last_used ? -1 : 1;
	if (rank[x->cat] != rank[y->cat])
		return rank[x->cat] - rank[y->cat];
	return strcmp(x->path, y->path);
}

/* Mark gone every item of cat (-1: any digest category) with key; returns their bytes. */
static uint64_t
gc_budget_mark_gone(struct gc_budget *b, const char *key, int cat)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < b->nitems; i++) {
		struct gc_budget_item *it = &b->items[i];
		if (it->gone || strcmp(it->key, key) != 0 || (cat >= 0 && it->cat != cat) ||
		    (cat < 0 && it->cat == GC_BUDGET_ENVS))
			continue;
		it->gone = 1;
		bytes += it->bytes;
	}
	return bytes;
}

/* Drop the items marked gone (lock held). */
static void
gc_budget_compact(struct gc_budget *b)
{
	size_t k = 0;

	for (size_t i = 0; i < b->nitems; i++) {
		if (b->items[i].gone)
			free(b->items[i].path);
		else
			b->items[k++] = b->items[i];
	}
	b->nitems = k;
}

/*
 * The files of digest that one item stands for, unless in use (see the
 * header): 1 when they went. A digest no evaluation names waits GC_GRACE.
 */
static int
gc_budget_remove_digest(struct engine *eng, struct gc_budget *b, const char *key,
    unsigned what)
{
	double since = b->snap, young = util_now() - GC_GRACE;
	int named;

	if (since < 0 || gc_budget_has(b->pinned, b->npinned, key))
		return 0;
	named = store_digest_used(eng->st, key);
	if (named < 0)
		return 0;
	if (named == 0 && young < since)
		since = young;
	return gc_files_remove(eng, key, what, since);
}

/* Remove one item (and what goes with it); the bytes freed, 0 when it stays. */
static uint64_t
gc_budget_remove_item(struct engine *eng, struct gc_budget *b, struct gc_budget_item *it)
{
	static const unsigned what[GC_BUDGET_NCAT] = { GC_BLOB, GC_PROJECT, GC_COPIES, 0 };

	if (it->cat == GC_BUDGET_ENVS) {
		if (env_evict(it->key) < 0)
			return 0;
		it->gone = 1;
		return it->bytes;
	}
	if (!gc_budget_remove_digest(eng, b, it->key, what[it->cat]))
		return 0;
	/* the copies of every slot go together */
	return gc_budget_mark_gone(b, it->key, it->cat);
}

/*
 * Remove what is not in use, least recently used first, until what is
 * counted and need fit in the budget (lock held). Returns the bytes freed.
 */
static uint64_t
gc_budget_evict(struct engine *eng, struct gc_budget *b, uint64_t need)
{
	uint64_t used[GC_BUDGET_NCAT], total = gc_budget_used(b, used), freed = 0;
	size_t *idx, n = 0;
	double now = util_now();

	if (total + need <= b->budget)
		return 0;
	idx = xcalloc(b->nitems ? b->nitems : 1, sizeof(*idx));
	for (size_t i = 0; i < b->nitems; i++)
		if (b->items[i].key[0] != '\0' && !b->items[i].in_use)
			idx[n++] = i;
	if (n > 0)
		qsort_r(idx, n, sizeof(*idx), gc_budget_lru_cmp, b->items);
	for (size_t i = 0; i < n && total + need > b->budget && !engine_is_stopping(eng); i++) {
		struct gc_budget_item *it = &b->items[idx[i]];
		char size[32], left[32];
		uint64_t f;

		if (it->gone || (f = gc_budget_remove_item(eng, b, it)) == 0)
			continue;
		total = total > f ? total - f : 0;
		freed += f;
		gc_budget_format(f, size, sizeof(size));
		gc_budget_format(total, left, sizeof(left));
		log_info("engine: disk budget: removed %s %.12s (%s, unused for %.0f s); %s used",
		    gc_budget_what[it->cat], it->key, size, now - it->last_used, left);
	}
	free(idx);
	gc_budget_compact(b);
	return freed;
}

/*
 * Retention (lock held): the files of digests whose evaluations all finished
 * more than the retention ago, and environments unused for as long. Their
 * results stay in the store. Returns the bytes freed.
 */
static uint64_t
gc_budget_retain(struct engine *eng, struct gc_budget *b)
{
	struct store_digest *old = NULL, *done = NULL;
	double cutoff = util_now() - b->retention;
	size_t nold = 0, ndone = 0;
	uint64_t freed = 0;

	if (store_disk_expired(eng->st, cutoff, &old, &nold) < 0)
		return 0;
	if (nold > 0)
		qsort(old, nold, sizeof(*old), gc_budget_digest_cmp);
	done = xcalloc(b->nitems ? b->nitems : 1, sizeof(*done));
	for (size_t i = 0; i < b->nitems; i++) {
		struct gc_budget_item *it = &b->items[i];

		if (it->gone || it->key[0] == '\0' || it->in_use)
			continue;
		if (it->cat == GC_BUDGET_ENVS) {
			if (it->last_used < cutoff && env_evict(it->key) == 0) {
				it->gone = 1;
				freed += it->bytes;
			}
			continue;
		}
		if (!gc_budget_has(old, nold, it->key) || gc_budget_has(done, ndone, it->key))
			continue;
		if (!gc_budget_remove_digest(eng, b, it->key, GC_ALL))
			continue;
		/* kept sorted for gc_budget_has: insert in place */
		{
			size_t at = 0;
			while (at < ndone && strcmp(done[at].d, it->key) < 0)
				at++;
			memmove(&done[at + 1], &done[at], (ndone - at) * sizeof(*done));
			snprintf(done[at].d, sizeof(done[at].d), "%s", it->key);
			ndone++;
		}
	}
	for (size_t i = 0; i < ndone; i++)
		freed += gc_budget_mark_gone(b, done[i].d, -1);
	if (ndone > 0 || freed > 0) {
		char size[32];
		gc_budget_format(freed, size, sizeof(size));
		log_info("engine: retention: removed the files of %zu project%s and upload%s whose"
		    " evaluations finished more than %g days ago, and unused environments (%s)",
		    ndone, ndone == 1 ? "" : "s", ndone == 1 ? "" : "s", b->retention / 86400.0,
		    size);
	}
	free(done);
	free(old);
	gc_budget_compact(b);
	return freed;
}

/* --------------------------------------------------------------- entry */

int
gc_budget_start(struct engine *eng)
{
	struct gc_budget *b = xcalloc(1, sizeof(*b));
	struct statvfs vfs;

	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->show_lock, NULL);
	pthread_mutex_init(&b->hold_lock, NULL);
	b->budget = eng->cfg->max_disk_bytes;
	b->shown_budget = b->budget;   /* the default is known at the first measure */
	b->retention = (double)eng->cfg->retention_days * 86400.0;
	b->refreshed = -1;
	b->snap = -1;
	b->venvs_dir = xasprintf("%s/venvs", eng->work_dir);
	b->work_dir = xasprintf("%s/work", eng->work_dir);
	if (statvfs(eng->data_dir, &vfs) == 0)
		b->avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	eng->budget = b;
	return 0;
}

void
gc_budget_free(struct engine *eng)
{
	struct gc_budget *b = eng->budget;

	if (b == NULL)
		return;
	gc_budget_items_free(b->items, b->nitems);
	free(b->pinned);
	free(b->holds);
	free(b->venvs_dir);
	free(b->work_dir);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->show_lock);
	pthread_mutex_destroy(&b->hold_lock);
	free(b);
	eng->budget = NULL;
}

void
gc_budget_run(struct engine *eng)
{
	struct gc_budget *b = eng->budget;
	uint64_t freed = 0;
	double before;

	pthread_mutex_lock(&b->lock);
	before = b->refreshed;
	gc_budget_refresh(eng, b, 0);
	/*
	 * Until membership settled, the store may lack evaluations a peer
	 * accepted meanwhile: nothing goes before (engine_warm).
	 */
	if (b->refreshed != before && engine_warm(eng)) {
		if (b->retention > 0 && util_mono() >= b->retain_next) {
			freed += gc_budget_retain(eng, b);
			b->retain_next = util_mono() + GC_BUDGET_RETAIN_EVERY;
		}
		freed += gc_budget_evict(eng, b, 0);
		gc_budget_show(b, freed);
	}
	pthread_mutex_unlock(&b->lock);
}

int
gc_budget_make_room(struct engine *eng, uint64_t need, char *err, size_t errlen)
{
	struct gc_budget *b = eng->budget;
	uint64_t used[GC_BUDGET_NCAT], total;
	char s[GC_BUDGET_NCAT + 3][32];
	int r = 0;

	pthread_mutex_lock(&b->lock);
	gc_budget_refresh(eng, b, 1);
	gc_budget_format(b->budget, s[0], sizeof(s[0]));
	gc_budget_format(need, s[1], sizeof(s[1]));
	if (need > b->budget) {
		util_seterr(err, errlen, "the upload (%s) is larger than this node's whole disk"
		    " budget (%s, --max-disk)", s[1], s[0]);
		r = -ENOSPC;
		goto out;
	}
	gc_budget_show(b, gc_budget_evict(eng, b, need));
	total = gc_budget_used(b, used);
	if (total + need <= b->budget)
		goto out;
	gc_budget_format(total, s[2], sizeof(s[2]));
	for (int c = 0; c < GC_BUDGET_NCAT; c++)
		gc_budget_format(used[c], s[3 + c], sizeof(s[3 + c]));
	util_seterr(err, errlen, "not enough room within this node's disk budget: %s of %s"
	    " used (blobs %s, projects %s, work folders %s, environments %s) after removing"
	    " what nothing uses%s%s%s; the rest could not be freed: it is in use by unfinished"
	    " evaluations, running modules or fetches, or was written moments ago. Try again"
	    " later, or raise --max-disk", s[2], s[0], s[3], s[4], s[5], s[6],
	    need > 0 ? ", and this upload needs " : "", need > 0 ? s[1] : "",
	    need > 0 ? " more" : "");
	r = -ENOSPC;
out:
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		log_warn("engine: refused a submission: %s", err);
	return r;
}

json_t *
gc_budget_json(struct engine *eng)
{
	struct gc_budget *b = eng->budget;
	json_t *o = json_object();
	uint64_t total = 0;

	pthread_mutex_lock(&b->show_lock);
	for (int c = 0; c < GC_BUDGET_NCAT; c++) {
		json_object_set_new(o, gc_budget_names[c], json_integer((json_int_t)b->shown[c]));
		total += b->shown[c];
	}
	json_object_set_new(o, "used", json_integer((json_int_t)total));
	json_object_set_new(o, "budget", json_integer((json_int_t)b->shown_budget));
	json_object_set_new(o, "evicted", json_integer((json_int_t)b->evicted));
	pthread_mutex_unlock(&b->show_lock);
	json_object_set_new(o, "retention_days",
	    json_integer((json_int_t)eng->cfg->retention_days));
	return o;
}

uint64_t
gc_budget_bytes(struct engine *eng)
{
	struct gc_budget *b = eng->budget;
	uint64_t v;

	pthread_mutex_lock(&b->show_lock);
	v = b->shown_budget;
	pthread_mutex_unlock(&b->show_lock);
	return v;
}
