/*
 * blob.h - content-addressed project archives: <data>/blobs/<sha256>.zip.
 *
 * A project's files travel between nodes as one deterministic ZIP named by
 * its SHA-256. Any node that holds a blob serves it (GET /blob/<digest>); a
 * worker fetches it once, checks the digest, keeps it and unpacks it once
 * per node. All functions are thread-safe (files are written under a
 * temporary name and renamed into place).
 */
#ifndef MESHTEST_BLOB_H
#define MESHTEST_BLOB_H

#include <stddef.h>

#include "core/util.h"

struct fetch_limits;

/* Pack the folder into a blob; writes its digest. */
int blob_from_dir(const char *blobs_dir, const char *dir, char digest[SHA256_HEX_LEN],
    char *err, size_t errlen);
/*
 * The SHA-256 of a folder's content, without packing it: every entry in
 * name order with its path, kind, executable bits and content (a link's
 * target, never followed). Equal folders, equal digests. 0 or negative errno.
 */
int blob_tree_digest(const char *dir, char digest[SHA256_HEX_LEN]);
/* The blob's path (malloc'ed), whether or not it exists. */
char *blob_path(const char *blobs_dir, const char *digest);
/* 1 if the blob is here. */
int blob_has(const char *blobs_dir, const char *digest);
/*
 * Stamp the blob as just written (a peer counts on this copy: the disk
 * budget keeps what changed since it last looked). 0, or -ENOENT when it
 * is not here.
 */
int blob_touch(const char *blobs_dir, const char *digest);
/* 1 if s is 64 lowercase hex characters. */
int blob_digest_valid(const char *s);
/*
 * Take the file at path as blob digest: its SHA-256 must match (-EBADMSG
 * otherwise, and the file is removed). The file is renamed into place.
 */
int blob_adopt(const char *blobs_dir, const char *path, const char *digest);
/* Take the file at path as a blob (moved into place); writes its digest. */
int blob_from_file(const char *blobs_dir, const char *path, char digest[SHA256_HEX_LEN]);
/* Get the blob from the first of peers that has it (GET /blob/<digest>). */
int blob_fetch(const char *blobs_dir, const char *digest, char *const *peers, size_t npeers,
    size_t max_bytes, char *err, size_t errlen);
/* Send the blob to peer (PUT /blob/<digest>). */
int blob_push(const char *blobs_dir, const char *digest, const char *peer, size_t max_bytes);
/*
 * Unpack the blob into dest (once: an existing dest is reused). Warnings are
 * dropped: the node that made the blob reported them already.
 */
int blob_unpack(const char *blobs_dir, const char *digest, const char *dest,
    const struct fetch_limits *lim, char *err, size_t errlen);

#endif
