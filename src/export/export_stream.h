/*
 * export_stream.h - an evaluation's export written as it is read from the
 * store, a project at a time: what a node holds is one project's results,
 * whatever the evaluation's size.
 */
#ifndef MESHTEST_EXPORT_STREAM_H
#define MESHTEST_EXPORT_STREAM_H

#include <stddef.h>

#include "export/export.h"

struct store;
struct export_stream;

/*
 * The export of evaluation id in format f (every project, or only the one
 * whose project_id is project when that is not NULL) from a snapshot of the
 * store taken now. 0; -ENOENT when there is no such evaluation, -ENODATA
 * when it has no such project, -EBUSY when the store has too many readers
 * open, -EIO.
 */
int export_stream_open(struct store *st, const char *id, enum export_format f,
    const char *project, struct export_stream **out);

/*
 * Up to max bytes of the export into buf: how many (0 at the end), or
 * -EIO (the store could not be read) or -EFBIG (a project's text past
 * EXPORT_MAX) when the rest cannot be written.
 */
long export_stream_read(struct export_stream *s, char *buf, size_t max);

/* The longest piece the stream held: the head, the tail or one project's text. */
size_t export_stream_max_piece(const struct export_stream *s);

void export_stream_close(struct export_stream *s);

#endif
