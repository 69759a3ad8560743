/*
 * buf.h - a growable byte buffer with a hard size cap.
 *
 * Every buffer that holds outside input has a cap: appending past it fails
 * with -ENOSPC and leaves the buffer as it was (or, with buf_append_trunc,
 * keeps what fits and counts what was dropped). The data is always
 * NUL-terminated, so text can be used as a C string.
 */
#ifndef MESHTEST_BUF_H
#define MESHTEST_BUF_H

#include <stddef.h>

struct buf {
	char *data;      /* NULL until the first append; NUL-terminated */
	size_t len;      /* bytes held, not counting the terminator */
	size_t alloc;    /* bytes allocated */
	size_t max;      /* cap on len */
	size_t dropped;  /* bytes refused by buf_append_trunc */
};

void buf_init(struct buf *b, size_t max);
/* Append n bytes; -ENOSPC past the cap (nothing appended), -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Append what fits under the cap; the rest is counted in b->dropped. */
int buf_append_trunc(struct buf *b, const void *p, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
/*
 * Read what a non-blocking descriptor has now into b (what passes the cap is
 * counted in b->dropped); at end of file or on an error other than EAGAIN
 * and EINTR the descriptor is closed and *fd set to -1. For a poll loop.
 */
void buf_drain_fd(struct buf *b, int *fd);
/* Hand the data to the caller (who frees it) and reset the buffer. */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

#endif
