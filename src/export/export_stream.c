/*
 * export_stream.c - an export written as it is read.
 *
 * The projects of an evaluation come from one store snapshot a project at
 * a time (store_results_next_project) and leave as the export writer's
 * pieces (export.c): the head, each project's text, the tail. JUnit's root
 * element carries the totals of everything below it, so for JUnit the
 * projects are read twice, the first time only to sum them.
 */
#include "export/export_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store.h"

enum export_stage { STREAM_HEAD, STREAM_PROJECTS, STREAM_TAIL, STREAM_END };

struct export_stream {
	struct store_results *reader;
	struct export_writer writer;
	char id[UUID_STR_LEN];
	json_t *ahead;              /* a project read at open (one project's export) */
	enum export_stage stage;
	char *piece;                /* what is being handed out */
	size_t len, off, max_piece;
	int err;                    /* why the rest cannot be written, after what was */
};

/* Sum every project of the snapshot into the writer's totals, then rewind. */
static int
export_stream_count(struct export_stream *s)
{
	json_t *p;
	int rc;

	while ((rc = store_results_next_project(s->reader, &p)) > 0) {
		export_totals_add(&s->writer.totals, p);
		json_decref(p);
	}
	return rc < 0 ? rc : store_results_rewind(s->reader);
}

int
export_stream_open(struct store *st, const char *id, enum export_format f,
    const char *project, struct export_stream **out)
{
	struct export_stream *s = xcalloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->writer = (struct export_writer){ .format = f, .one = project != NULL,
	    .eval_id = s->id };
	rc = store_results_open_projects(st, id, project, &s->reader);
	if (rc == 0 && project != NULL) {
		rc = store_results_next_project(s->reader, &s->ahead);
		rc = rc == 0 ? -ENODATA : rc < 0 ? rc : 0;
		if (rc == 0 && f == EXPORT_JUNIT)
			export_totals_add(&s->writer.totals, s->ahead);
	} else if (rc == 0 && f == EXPORT_JUNIT) {
		rc = export_stream_count(s);
	}
	if (rc < 0) {
		export_stream_close(s);
		return rc;
	}
	s->stage = STREAM_HEAD;
	*out = s;
	return 0;
}

/* The next piece into s->piece: 0, -1 at the end, or a negative errno. */
static int
export_stream_next(struct export_stream *s)
{
	json_t *p = NULL;
	char *text = NULL;
	int rc;

	switch (s->stage) {
	case STREAM_HEAD:
		text = export_write_head(&s->writer, &s->len);
		s->stage = STREAM_PROJECTS;
		break;
	case STREAM_PROJECTS:
		if (s->ahead != NULL) {
			p = s->ahead;
			s->ahead = NULL;
		} else if ((rc = store_results_next_project(s->reader, &p)) < 0) {
			return rc;
		} else if (rc == 0) {
			s->stage = STREAM_TAIL;
			return export_stream_next(s);
		}
		text = export_write_project(&s->writer, p, &s->len);
		json_decref(p);
		break;
	case STREAM_TAIL:
		text = export_write_tail(&s->writer, &s->len);
		s->stage = STREAM_END;
		break;
	case STREAM_END:
		return -1;
	}
	if (text == NULL)
		return -EFBIG;
	free(s->piece);
	s->piece = text;
	s->off = 0;
	if (s->len > s->max_piece)
		s->max_piece = s->len;
	return 0;
}

long
export_stream_read(struct export_stream *s, char *buf, size_t max)
{
	size_t n = 0;

	while (n < max && s->err == 0) {
		size_t take;

		if (s->off == s->len) {
			int rc = export_stream_next(s);
			if (rc == -1)
				break;
			/* what this call wrote goes first; the next says why there is no more */
			if (rc < 0)
				s->err = rc;
			continue;
		}
		take = s->len - s->off < max - n ? s->len - s->off : max - n;
		memcpy(buf + n, s->piece + s->off, take);
		s->off += take;
		n += take;
	}
	return n == 0 && s->err < 0 ? s->err : (long)n;
}

size_t
export_stream_max_piece(const struct export_stream *s)
{
	return s->max_piece;
}

void
export_stream_close(struct export_stream *s)
{
	if (s == NULL)
		return;
	store_results_close(s->reader);
	json_decref(s->ahead);
	free(s->piece);
	free(s);
}
