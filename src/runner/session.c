/*
 * session.c - bookkeeping of a shared pytest session (see session.h).
 *
 * The stream comes from code under test: any line may be garbage, any field
 * of the wrong type; nothing here trusts it beyond attributing events to the
 * modules the node asked for. A module counts from the session only when the
 * evidence says it ran to its end there; anything else runs again alone.
 */
#include "runner/session.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

#define SESSION_STREAM_CAP (64u << 20)

struct session_module {
	char *path;
	int collect_started;     /* its collection began */
	int collect_error;       /* it could not be collected (exactly it) */
	size_t ntests;           /* collected tests */
	size_t nfinished;        /* of which "finish" arrived */
	double used;             /* seconds it was the current module */
	json_t *exited;          /* its own process ended: the "module_exit" event */
};

struct session {
	struct session_module *m;
	size_t n;
	double timeout;
	long current;            /* index, or -1 */
	double since;            /* when current became current */
	int collected;           /* the "collected" event arrived */
	int ended;               /* session_end was called */
	int normal;              /* ... and said pytest ended by itself */
	int stray_error;         /* a collection error no single module owns */
	int one_by_one;          /* each module in a process of its own (session_one_by_one) */
	size_t nexited;          /* modules whose module_exit marker came, in order */
	json_t *tests;           /* nodeid -> [module index, finished] */
	json_t *index;           /* module path -> its index */
};

struct session *
session_new(const char *const *modules, size_t n, double timeout, double now)
{
	struct session *s = xcalloc(1, sizeof(*s));

	s->m = xcalloc(n ? n : 1, sizeof(*s->m));
	s->n = n;
	s->index = json_object();
	for (size_t i = 0; i < n; i++) {
		s->m[i].path = xstrdup(modules[i]);
		json_object_set_new(s->index, modules[i], json_integer((json_int_t)i));
	}
	s->timeout = timeout;
	s->current = n > 0 ? 0 : -1;
	s->since = now;
	s->tests = json_object();
	return s;
}

void
session_free(struct session *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->m[i].path);
		json_decref(s->m[i].exited);
	}
	free(s->m);
	json_decref(s->tests);
	json_decref(s->index);
	free(s);
}

size_t
session_count(const struct session *s)
{
	return s->n;
}

static long
session_find(const struct session *s, const char *path, size_t len)
{
	json_t *i = json_object_getn(s->index, path, len);

	return json_is_integer(i) ? (long)json_integer_value(i) : -1;
}

static long
session_find_path(const struct session *s, const char *path)
{
	return path != NULL ? session_find(s, path, strlen(path)) : -1;
}

long
session_module_of(const struct session *s, const char *nodeid)
{
	const char *sep;

	if (nodeid == NULL)
		return -1;
	sep = strstr(nodeid, "::");
	return session_find(s, nodeid, sep != NULL ? (size_t)(sep - nodeid) : strlen(nodeid));
}

/* Make module i the current one, charging the time so far to the old one. */
static void
session_switch(struct session *s, long i, double now)
{
	if (s->current == i)
		return;
	if (s->current >= 0 && now > s->since)
		s->m[s->current].used += now - s->since;
	s->current = i;
	s->since = now;
}

void
session_one_by_one(struct session *s)
{
	s->one_by_one = 1;
}

/*
 * One by one: only the markers count, each for the next module in order
 * (the zygote runs them so); any other event is that module's own business,
 * and cannot make another module current. Returns the module that ended, or -1.
 */
static long
session_on_marker(struct session *s, json_t *ev, const char *kind, double now)
{
	long i;

	if (strcmp(kind, "module_exit") != 0 || s->nexited >= s->n)
		return -1;
	i = session_find_path(s, json_string_value(json_object_get(ev, "path")));
	if (i != (long)s->nexited)
		return -1;
	s->m[i].exited = json_incref(ev);
	s->nexited++;
	/* the next module's clock runs from here: its process starts */
	session_switch(s, s->nexited < s->n ? (long)s->nexited : -1, now);
	return i;
}

long
session_on_line(struct session *s, const char *line, size_t len, double now)
{
	json_t *ev = json_loadb(line, len, 0, NULL), *t;
	const char *kind = json_string_value(json_object_get(ev, "ev"));
	const char *nodeid = json_string_value(json_object_get(ev, "nodeid"));
	long i, exited = -1;

	if (kind == NULL || s->ended)
		goto out;
	if (s->one_by_one) {
		exited = session_on_marker(s, ev, kind, now);
		goto out;
	}
	if (strcmp(kind, "collect_start") == 0) {
		i = session_module_of(s, json_string_value(json_object_get(ev, "path")));
		if (i >= 0) {
			s->m[i].collect_started = 1;
			session_switch(s, i, now);
		}
	} else if (strcmp(kind, "collect_error") == 0) {
		const char *sep = nodeid ? strstr(nodeid, "::") : NULL;
		i = nodeid != NULL ? session_find(s, nodeid, strlen(nodeid)) : -1;
		if (i >= 0 && sep == NULL)
			s->m[i].collect_error = 1;
		else
			s->stray_error = 1;
	} else if (strcmp(kind, "collected") == 0) {
		json_t *ids = json_object_get(ev, "nodeids"), *v;
		size_t k;
		s->collected = 1;
		json_array_foreach(ids, k, v) {
			const char *id = json_string_value(v);
			if (id == NULL || json_object_get(s->tests, id) != NULL)
				continue;
			i = session_module_of(s, id);
			if (i < 0) {
				s->stray_error = 1;   /* a test the node did not ask for */
				continue;
			}
			s->m[i].ntests++;
			json_object_set_new(s->tests, id, json_pack("[I, b]", (json_int_t)i, 0));
		}
	} else if (strcmp(kind, "start") == 0 || strcmp(kind, "report") == 0) {
		i = session_module_of(s, nodeid);
		if (i >= 0)
			session_switch(s, i, now);
	} else if (strcmp(kind, "finish") == 0) {
		t = json_object_get(s->tests, nodeid ? nodeid : "");
		if (t != NULL && !json_is_true(json_array_get(t, 1))) {
			i = (long)json_integer_value(json_array_get(t, 0));
			json_array_set_new(t, 1, json_true());
			s->m[i].nfinished++;
		}
	} else if (strcmp(kind, "end") == 0) {
		session_switch(s, -1, now);
	}
out:
	json_decref(ev);
	return exited;
}

double
session_deadline(const struct session *s, double now)
{
	(void)now;
	if (s->ended || s->current < 0 || s->timeout <= 0)
		return 0;
	return s->since + (s->timeout - s->m[s->current].used);
}

void
session_end(struct session *s, int normal, double now)
{
	if (s->ended)
		return;
	if (s->current >= 0 && now > s->since)
		s->m[s->current].used += now - s->since;
	s->since = now;
	s->ended = 1;
	s->normal = normal;
}

int
session_finished(const struct session *s, size_t i)
{
	const struct session_module *m;

	if (i >= s->n || !s->ended)
		return 0;
	m = &s->m[i];
	/* in a process of its own, its run ended: its part of the stream is its report */
	if (m->exited != NULL)
		return 1;
	/* an error no single module owns may have hidden any module's tests */
	if (s->stray_error)
		return 0;
	if (m->collect_error)
		return 1;
	/*
	 * Collection over, so its tests are known: it finished when every one
	 * of them did, whatever happened to the session afterwards.
	 */
	return s->collected && m->nfinished == m->ntests;
}

long
session_current(const struct session *s)
{
	return s->current;
}

double
session_duration(const struct session *s, size_t i)
{
	return i < s->n ? s->m[i].used : 0;
}

static void
session_put(struct buf *b, const char *line, size_t len)
{
	(void)buf_append(b, line, len);
	(void)buf_append(b, "\n", 1);
}

/*
 * The line of stream at *at (its start and length in *line, *n; *at moves
 * past it) parsed as JSON: a new reference, or NULL when it is not JSON.
 */
static json_t *
session_next(const char *stream, size_t len, size_t *at, const char **line, size_t *n)
{
	const char *nl = memchr(stream + *at, '\n', len - *at);

	*line = stream + *at;
	*n = nl ? (size_t)(nl - *line) : len - *at;
	*at += *n + 1;
	return json_loadb(*line, *n, 0, NULL);
}

void
session_streams(const struct session *s, const char *stream, size_t len, char **out,
		size_t *outlen)
{
	struct buf *b = xcalloc(s->n ? s->n : 1, sizeof(*b));
	json_t **mine = xcalloc(s->n ? s->n : 1, sizeof(*mine));
	int *failed = xcalloc(s->n ? s->n : 1, sizeof(*failed));

	for (size_t i = 0; i < s->n; i++) {
		buf_init(&b[i], SESSION_STREAM_CAP);
		mine[i] = json_array();
	}
	/* each line parsed once, and put where it belongs */
	for (size_t at = 0; stream != NULL && at < len;) {
		const char *line;
		size_t n;
		json_t *ev = session_next(stream, len, &at, &line, &n);
		const char *kind = json_string_value(json_object_get(ev, "ev"));
		long i;

		if (kind == NULL) {
			/* not an event: nothing to carry */
		} else if (strcmp(kind, "hello") == 0) {
			for (size_t k = 0; k < s->n; k++)
				session_put(&b[k], line, n);
		} else if (strcmp(kind, "collect_start") == 0) {
			i = session_module_of(s, json_string_value(json_object_get(ev, "path")));
			if (i >= 0)
				session_put(&b[i], line, n);
		} else if (strcmp(kind, "collected") == 0) {
			json_t *v;
			size_t k;
			json_array_foreach(json_object_get(ev, "nodeids"), k, v)
				if ((i = session_module_of(s, json_string_value(v))) >= 0)
					json_array_append(mine[i], v);
			for (k = 0; k < s->n; k++) {
				json_t *c = json_pack("{s:s, s:O}", "ev", "collected", "nodeids",
				    mine[k]);
				char *text = json_dumps(c, JSON_COMPACT);
				if (text != NULL)
					session_put(&b[k], text, strlen(text));
				free(text);
				json_decref(c);
			}
		} else if (strcmp(kind, "end") != 0 &&
		    (i = session_module_of(s, json_string_value(json_object_get(ev, "nodeid")))) >= 0) {
			const char *outcome = json_string_value(json_object_get(ev, "outcome"));
			if (strcmp(kind, "collect_error") == 0 ||
			    (strcmp(kind, "report") == 0 && outcome != NULL &&
			     strcmp(outcome, "failed") == 0))
				failed[i] = 1;
			session_put(&b[i], line, n);
		}
		json_decref(ev);
	}
	for (size_t i = 0; i < s->n; i++) {
		/* as pytest on this module alone would end */
		char end[64];
		int status = failed[i] ? 1 : json_array_size(mine[i]) == 0 ? 5 : 0;
		snprintf(end, sizeof(end), "{\"ev\": \"end\", \"exitstatus\": %d}", status);
		session_put(&b[i], end, strlen(end));
		json_decref(mine[i]);
		outlen[i] = b[i].len;
		out[i] = b[i].data ? buf_steal(&b[i]) : xstrdup("");
	}
	free(failed);
	free(mine);
	free(b);
}

int
session_exit(const struct session *s, size_t i, int *status, int *signal)
{
	json_t *ev = session_exit_event(s, i), *st, *sig;

	if (ev == NULL)
		return 0;
	st = json_object_get(ev, "status");
	sig = json_object_get(ev, "signal");
	*status = json_is_integer(st) ? (int)json_integer_value(st) : -1;
	*signal = json_is_integer(sig) ? (int)json_integer_value(sig) : 0;
	return 1;
}

json_t *
session_exit_event(const struct session *s, size_t i)
{
	return i < s->n ? s->m[i].exited : NULL;
}
