/*
 * diskuse.h - the bytes a folder takes on disk, measured on demand in the
 * background and cached.
 *
 * Walking a big data folder costs seconds of disk reads, so a reader never
 * walks it: diskuse_get answers the last measure at once and, when that is
 * older than the period, asks the folder's thread for a new one. Only the
 * very first call waits (a bounded time) for a measure to exist. Nobody
 * asking means no walk at all.
 */
#ifndef MESHTEST_DISKUSE_H
#define MESHTEST_DISKUSE_H

#include <stdint.h>

struct diskuse;

/* Watch dir (walked at most once per period seconds). 0 or -EAGAIN. */
int diskuse_start(const char *dir, double period, struct diskuse **out);
/* Stop the thread (a walk under way ends early). NULL is fine. */
void diskuse_stop(struct diskuse *d);

/*
 * The folder's bytes (allocated blocks, like du -x: files, folders and
 * links, without crossing into other file systems) as last measured; asks
 * for a new measure when it is older than the period. Before any measure
 * exists it waits up to wait seconds. 0, or -EAGAIN when there is no
 * measure yet.
 */
int diskuse_get(struct diskuse *d, double wait, uint64_t *bytes);

/* Walk dir now on the calling thread (what the thread does); 0 or -errno. */
int diskuse_measure(const char *dir, uint64_t *bytes);

#endif
