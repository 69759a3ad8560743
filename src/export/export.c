/*
 * export.c - the /results document as a CSV gradebook, JUnit XML and
 * Gradescope results.json (see export.h for the contracts).
 *
 * Pure and thread-safe: it owns nothing beyond the call. Text that comes
 * from a project (its name, test names, failure messages, captured output)
 * is hostile: the CSV neutralises what a spreadsheet would run as a formula,
 * the XML escapes markup and drops what XML 1.0 cannot hold.
 */
#include "export/export.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/score.h"
#include "core/util.h"

/* The grade scale of SPEC section 1, also the Gradescope max_score. */
#define EXPORT_GRADE_MAX 20.0

/* ---- common ------------------------------------------------------------ */

int
export_format_parse(const char *name, enum export_format *out)
{
	static const struct {
		const char *name;
		enum export_format f;
	} names[] = {
		{ "csv", EXPORT_CSV },
		{ "junit", EXPORT_JUNIT },
		{ "gradescope", EXPORT_GRADESCOPE },
	};

	for (size_t i = 0; name != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i].name) == 0) {
			*out = names[i].f;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
export_content_type(enum export_format f)
{
	switch (f) {
	case EXPORT_CSV:
		return "text/csv; charset=utf-8";
	case EXPORT_JUNIT:
		return "application/xml";
	case EXPORT_GRADESCOPE:
		break;
	}
	return "application/json";
}

/* Counts are integers in the document; tolerate reals and absence. */
static long long
export_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	return (long long)json_number_value(v);
}

static const char *
export_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

const json_t *
export_project(const json_t *results, const char *project_id)
{
	const json_t *projects = json_object_get(results, "projects");
	size_t i;
	json_t *p;

	json_array_foreach(projects, i, p) {
		const char *pid = export_str(p, "project_id");

		if (pid != NULL && strcmp(pid, project_id) == 0)
			return p;
	}
	return NULL;
}

/*
 * The UTF-8 character at s (n bytes left): its length, with the code point
 * in *cp; 0 when s does not start a valid, shortest-form character.
 */
static size_t
export_utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c, min;
	size_t len;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* C0, DEL and C1: what a terminal or a one-line cell must not get raw. */
static int
export_is_control(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/*
 * n bytes of p on one line into out (at most max bytes and a NUL): control
 * characters (line breaks too) become spaces, bytes that are not UTF-8 '?',
 * and a cut falls on a character boundary, marked with "...".
 */
static void
export_clean(const char *p, size_t n, char *out, size_t max)
{
	const char *end = p + n;
	size_t w = 0;

	while (p < end) {
		uint32_t c = 0;
		size_t len = export_utf8((const unsigned char *)p, (size_t)(end - p), &c);
		int bad = len == 0;

		if (bad)
			len = 1;
		if (w + (bad || export_is_control(c) ? 1 : len) > max) {
			/* cut on a character boundary, with room to say so */
			while (w > 0 && w + 3 > max) {
				w--;
				while (w > 0 && ((unsigned char)out[w] & 0xc0) == 0x80)
					w--;
			}
			if (w + 3 <= max) {
				memcpy(out + w, "...", 3);
				w += 3;
			}
			break;
		}
		if (bad)
			out[w++] = '?';
		else if (export_is_control(c))
			out[w++] = ' ';
		else
			memcpy(out + w, p, len), w += len;
		p += len;
	}
	out[w] = '\0';
}

void
export_clean_line(const char *s, char *out, size_t outlen)
{
	if (outlen > 0)
		export_clean(s != NULL ? s : "", s != NULL ? strlen(s) : 0, out, outlen - 1);
}

/* The line [p, end) where p starts: up to the next newline or the end. */
static const char *
export_line_end(const char *p)
{
	const char *end = strchr(p, '\n');

	return end != NULL ? end : p + strlen(p);
}

void
export_message_line(const char *message, char *out, size_t outlen)
{
	const char *line = NULL, *p, *end;
	size_t max = outlen > 0 ? outlen - 1 : 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (max > EXPORT_LINE_MAX)
		max = EXPORT_LINE_MAX;
	/* pytest marks the line that says what went wrong with "E " */
	for (p = message; p != NULL && *p != '\0' && line == NULL; p = *end ? end + 1 : end) {
		end = export_line_end(p);
		if (p[0] == 'E' && (p[1] == ' ' || p[1] == '\t'))
			line = p + 1;
	}
	/* else the first line that is not blank */
	for (p = message; p != NULL && *p != '\0' && line == NULL; p = *end ? end + 1 : end) {
		end = export_line_end(p);
		for (line = p; line < end && strchr(" \t\r", *line) != NULL; line++)
			;
		if (line == end)
			line = NULL;
	}
	if (line == NULL)
		return;
	end = export_line_end(line);
	while (line < end && (*line == ' ' || *line == '\t'))
		line++;
	while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	export_clean(line, (size_t)(end - line), out, max);
	/* a control character at either end is a space now: trim it too */
	for (size_t n = strlen(out); n > 0 && out[n - 1] == ' '; n--)
		out[n - 1] = '\0';
	if (out[0] == ' ')
		memmove(out, out + strspn(out, " "), strlen(out + strspn(out, " ")) + 1);
}

/*
 * Output under construction: a capped buffer and the first error, so the
 * writers append without checking every call.
 */
struct export_out {
	struct buf b;
	int err;
};

static void
out_add(struct export_out *o, const char *p, size_t n)
{
	int r;

	if (o->err == 0 && (r = buf_append(&o->b, p, n)) < 0)
		o->err = r;
}

static void
out_str(struct export_out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void
out_printf(struct export_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
out_printf(struct export_out *o, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= sizeof(tmp)) {
		if (o->err == 0)
			o->err = -EOVERFLOW;
		return;
	}
	out_add(o, tmp, (size_t)w);
}

/* The text, or NULL (freed) on an error; *len its length. */
static char *
out_finish(struct export_out *o, size_t *len)
{
	if (o->err != 0) {
		buf_free(&o->b);
		*len = 0;
		return NULL;
	}
	out_add(o, "", 0);      /* an empty export is "", not NULL */
	*len = o->b.len;
	return buf_steal(&o->b);
}

/* ---- CSV --------------------------------------------------------------- */

/*
 * A text cell. A cell that starts with = + - @ (or a tab or CR, which some
 * spreadsheets skip before looking) is a formula to Excel, LibreOffice and
 * Google Sheets; a leading single quote makes it text, and the quote shows.
 * RFC 4180: quoted when it holds a comma, a quote or a line break, with
 * quotes doubled.
 */
static void
export_csv_text(struct export_out *o, const char *s)
{
	int formula = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;
	int quote = strpbrk(s, ",\"\r\n") != NULL;

	if (quote)
		out_add(o, "\"", 1);
	if (formula)
		out_add(o, "'", 1);
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"')
			out_add(o, "\"", 1);
		out_add(o, p, 1);
	}
	if (quote)
		out_add(o, "\"", 1);
}

/* One project's row of the gradebook. */
static void
export_csv_row(struct export_out *o, const json_t *p)
{
	const char *pid = export_str(p, "project_id");
	const char *error = export_str(p, "error");
	long long passed = export_int(p, "passed"), failed = export_int(p, "failed");

	export_csv_text(o, pid != NULL ? pid : "");
	/* numbers are ours: never neutralised, so they stay numbers */
	out_printf(o, ",%lld,%lld,%lld,%.2f,%.2f,", passed, failed, export_int(p, "skipped"),
	    score_percent((long)passed, (long)(passed + failed)),
	    json_number_value(json_object_get(p, "grade")));
	export_csv_text(o, error != NULL ? error : "");
	out_str(o, "\r\n");
}

/* ---- JUnit XML ----------------------------------------------------------- */

static int
export_xml_legal(uint32_t c)
{
	return c == 0x9 || c == 0xa || c == 0xd || (c >= 0x20 && c <= 0xd7ff) ||
	    (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
}

/*
 * s escaped for XML 1.0: markup characters as entities; characters XML 1.0
 * cannot hold (most C0 controls, U+FFFE, U+FFFF) and bytes that are not
 * UTF-8 dropped. In an attribute, tab and line breaks are character
 * references, since a parser would turn them into spaces; CR is one
 * everywhere, since a parser would turn it into LF.
 */
static void
export_xml_text(struct export_out *o, const char *s, int attr)
{
	const unsigned char *p = (const unsigned char *)s, *run = p;
	size_t n = s != NULL ? strlen(s) : 0;

	/* plain characters go out in runs; the others one by one */
	while (n > 0) {
		uint32_t c = 0;
		size_t len = export_utf8(p, n, &c);
		const char *ent = NULL;

		if (len > 0 && c != '&' && c != '<' && c != '>' && c != '\r' &&
		    !(attr && (c == '"' || c == '\n' || c == '\t')) && export_xml_legal(c)) {
			p += len, n -= len;
			continue;
		}
		out_add(o, (const char *)run, (size_t)(p - run));
		if (len == 0)
			len = 1;        /* not UTF-8: dropped */
		else if (c == '&')
			ent = "&amp;";
		else if (c == '<')
			ent = "&lt;";
		else if (c == '>')
			ent = "&gt;";
		else if (c == '"')
			ent = "&quot;";
		else if (c == '\r')
			ent = "&#13;";
		else if (c == '\n')
			ent = "&#10;";
		else if (c == '\t')
			ent = "&#9;";
		if (ent != NULL)
			out_str(o, ent);
		p += len, n -= len;
		run = p;
	}
	out_add(o, (const char *)run, (size_t)(p - run));
}

/* name="value" with a leading space. */
static void
export_xml_attr(struct export_out *o, const char *name, const char *value)
{
	out_printf(o, " %s=\"", name);
	export_xml_text(o, value, 1);
	out_str(o, "\"");
}

enum export_kind { EXPORT_PASS, EXPORT_FAILURE, EXPORT_ERROR, EXPORT_SKIP };

/*
 * A test's JUnit outcome from its pytest outcome: failed (also a strict
 * xpass) is a failure; an error in setup, teardown or collection, or of a
 * module that timed out or crashed, is an error; xfailed and xpassed count
 * as passed, as in SPEC's counting rules.
 */
static enum export_kind
export_test_kind(const json_t *t)
{
	const char *outcome = export_str(t, "outcome");
	const char *counted = export_str(t, "counted");

	if (outcome != NULL && strcmp(outcome, "failed") == 0)
		return EXPORT_FAILURE;
	if (outcome != NULL && strcmp(outcome, "error") == 0)
		return EXPORT_ERROR;
	if (outcome != NULL && strcmp(outcome, "skipped") == 0)
		return EXPORT_SKIP;
	if (counted != NULL && strcmp(counted, "failed") == 0)
		return EXPORT_FAILURE;
	if (counted != NULL && strcmp(counted, "skipped") == 0)
		return EXPORT_SKIP;
	return EXPORT_PASS;
}

static void
export_count_module(const json_t *m, struct export_totals *c)
{
	const json_t *tests = json_object_get(m, "tests");
	size_t i;
	json_t *t;

	json_array_foreach(tests, i, t) {
		enum export_kind k = export_test_kind(t);

		c->tests++;
		c->failures += k == EXPORT_FAILURE;
		c->errors += k == EXPORT_ERROR;
		c->skipped += k == EXPORT_SKIP;
	}
	c->time += json_number_value(json_object_get(m, "duration"));
}

/* A module has a result once it has an outcome; pending ones are left out. */
static int
export_module_done(const json_t *m)
{
	return export_str(m, "outcome") != NULL;
}

/*
 * pytest's junitxml naming: "tests/a/test_x.py::TestY::test_z[1]" in
 * project p is classname "p.tests.a.test_x.TestY", name "test_z[1]"; a node
 * id without "::" (a module that could not be collected) is its own name.
 */
static void
export_junit_names(const char *project, const char *nodeid, struct export_out *o)
{
	const char *bracket = strchr(nodeid, '['), *sep = strstr(nodeid, "::");
	const char *last = NULL, *q;
	char *path, *cls;
	size_t plen;

	if (sep != NULL && bracket != NULL && sep > bracket)
		sep = NULL;     /* "::" inside a parameter id is not a separator */
	plen = sep != NULL ? (size_t)(sep - nodeid) : strlen(nodeid);
	path = xmalloc(plen + 1);
	memcpy(path, nodeid, plen);
	path[plen] = '\0';
	if (util_ends_with(path, ".py"))
		path[plen - 3] = '\0';
	for (char *c = path; *c != '\0'; c++)
		if (*c == '/')
			*c = '.';
	cls = xasprintf("%s.%s", project, path);
	if (sep != NULL) {
		/* classes between the path and the test name join the classname */
		for (q = sep; q != NULL && (bracket == NULL || q < bracket); q = strstr(q + 2, "::"))
			last = q;
		if (last > sep) {
			char *more = xmalloc((size_t)(last - sep) + 1);
			char *w = more;

			for (q = sep; q < last; q++) {
				if (q[0] == ':' && q[1] == ':') {
					*w++ = '.';
					q++;
				} else {
					*w++ = *q;
				}
			}
			*w = '\0';
			free(path);
			path = cls;
			cls = xasprintf("%s%s", path, more);
			free(more);
		}
	}
	export_xml_attr(o, "classname", cls);
	export_xml_attr(o, "name", sep != NULL ? last + 2 : nodeid);
	free(cls);
	free(path);
}

/* <failure>, <error> or <skipped> with message (its line) and the full text. */
static void
export_junit_outcome(struct export_out *o, const char *tag, const char *message,
    const char *type)
{
	char line[EXPORT_LINE_MAX + 1];

	out_printf(o, "      <%s", tag);
	if (message != NULL) {
		export_message_line(message, line, sizeof(line));
		export_xml_attr(o, "message", line);
	}
	if (type != NULL)
		export_xml_attr(o, "type", type);
	if (message == NULL || strcmp(tag, "skipped") == 0) {
		out_str(o, "/>\n");
		return;
	}
	out_str(o, ">");
	export_xml_text(o, message, 0);
	out_printf(o, "</%s>\n", tag);
}

static void
export_junit_module(struct export_out *o, const char *project, const json_t *m)
{
	struct export_totals c = { 0, 0, 0, 0, 0.0 };
	const json_t *tests = json_object_get(m, "tests");
	const char *node = export_str(m, "node");
	const char *stdout_text = export_str(m, "stdout");
	const char *stderr_text = export_str(m, "stderr");
	size_t i;
	json_t *t;

	export_count_module(m, &c);
	out_str(o, "  <testsuite");
	export_xml_attr(o, "name", export_str(m, "module"));
	out_printf(o, " tests=\"%lld\" failures=\"%lld\" errors=\"%lld\" skipped=\"%lld\""
	    " time=\"%.3f\"", c.tests, c.failures, c.errors, c.skipped, c.time);
	if (node != NULL)
		export_xml_attr(o, "hostname", node);
	out_str(o, ">\n");
	json_array_foreach(tests, i, t) {
		const char *nodeid = export_str(t, "nodeid");
		const char *message = export_str(t, "message");
		enum export_kind k = export_test_kind(t);

		out_str(o, "    <testcase");
		export_junit_names(project, nodeid != NULL ? nodeid : "", o);
		out_printf(o, " time=\"%.3f\"", json_number_value(json_object_get(t, "duration")));
		if (k == EXPORT_PASS) {
			out_str(o, "/>\n");
			continue;
		}
		out_str(o, ">\n");
		if (k == EXPORT_FAILURE)
			export_junit_outcome(o, "failure", message, export_str(t, "phase"));
		else if (k == EXPORT_ERROR)
			export_junit_outcome(o, "error", message, export_str(t, "phase"));
		else
			export_junit_outcome(o, "skipped", message, NULL);
		out_str(o, "    </testcase>\n");
	}
	if (stdout_text != NULL && stdout_text[0] != '\0') {
		out_str(o, "    <system-out>");
		export_xml_text(o, stdout_text, 0);
		out_str(o, "</system-out>\n");
	}
	if (stderr_text != NULL && stderr_text[0] != '\0') {
		out_str(o, "    <system-err>");
		export_xml_text(o, stderr_text, 0);
		out_str(o, "</system-err>\n");
	}
	out_str(o, "  </testsuite>\n");
}

/* A project that could not be fetched, unpacked or set up: one errored testcase. */
static void
export_junit_project_error(struct export_out *o, const char *project, const char *error)
{
	out_str(o, "  <testsuite");
	export_xml_attr(o, "name", project);
	out_str(o, " tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0.000\">\n");
	out_str(o, "    <testcase");
	export_xml_attr(o, "classname", project);
	out_str(o, " name=\"project error\" time=\"0.000\">\n");
	export_junit_outcome(o, "error", error, "project");
	out_str(o, "    </testcase>\n  </testsuite>\n");
}

void
export_totals_add(struct export_totals *t, const json_t *project)
{
	size_t k;
	json_t *m;

	if (export_str(project, "error") != NULL)
		t->tests++, t->errors++;
	json_array_foreach(json_object_get(project, "modules"), k, m)
		if (export_module_done(m))
			export_count_module(m, t);
}

/* The root element, with the totals of every project that follows. */
static void
export_junit_head(struct export_out *o, const char *eval_id, const struct export_totals *all)
{
	char *name = xasprintf("meshtest evaluation %s", eval_id != NULL ? eval_id : "");

	out_str(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
	export_xml_attr(o, "name", name);
	free(name);
	out_printf(o, " tests=\"%lld\" failures=\"%lld\" errors=\"%lld\" time=\"%.3f\">\n",
	    all->tests, all->failures, all->errors, all->time);
}

/* A project's error, if it has one, then a <testsuite> per module with a result. */
static void
export_junit_project(struct export_out *o, const json_t *p)
{
	const char *pid = export_str(p, "project_id");
	const char *error = export_str(p, "error");
	size_t k;
	json_t *m;

	if (pid == NULL)
		pid = "";
	if (error != NULL)
		export_junit_project_error(o, pid, error);
	json_array_foreach(json_object_get(p, "modules"), k, m)
		if (export_module_done(m))
			export_junit_module(o, pid, m);
}

/* ---- Gradescope ---------------------------------------------------------- */

/*
 * Scores on the grade scale: the project's score is its grade (0..20) out
 * of 20, and each counted test is worth 20 / (passed + failed), so the tests
 * add up to the grade. A skipped test is worth nothing and has no status
 * (Gradescope knows only "passed" and "failed"). A project error is one
 * failed test worth the whole 20.
 */
json_t *
export_gradescope_project(const json_t *project)
{
	long long passed = export_int(project, "passed"), failed = export_int(project, "failed");
	const char *error = export_str(project, "error");
	double each = passed + failed > 0 ? EXPORT_GRADE_MAX / (double)(passed + failed) : 0.0;
	json_t *doc = json_object(), *tests = json_array(), *t, *m, *w;
	struct buf out;
	size_t i, k;
	char *text;

	buf_init(&out, EXPORT_MAX);
	if (error != NULL) {
		buf_printf(&out, "error: %s\n", error);
		json_array_append_new(tests, json_pack("{s:s, s:s, s:f, s:f, s:s}", "name",
		    "project error", "status", "failed", "score", 0.0, "max_score",
		    EXPORT_GRADE_MAX, "output", error));
	} else {
		buf_printf(&out, "%lld passed, %lld failed, %lld skipped\n", passed, failed,
		    export_int(project, "skipped"));
	}
	json_array_foreach(json_object_get(project, "warnings"), i, w)
		if (json_is_string(w))
			buf_printf(&out, "warning: %s\n", json_string_value(w));
	json_array_foreach(json_object_get(project, "modules"), i, m) {
		json_array_foreach(json_object_get(m, "tests"), k, t) {
			enum export_kind kind = export_test_kind(t);
			const char *nodeid = export_str(t, "nodeid");
			const char *message = export_str(t, "message");
			json_t *g = json_pack("{s:s}", "name", nodeid != NULL ? nodeid : "");

			if (kind == EXPORT_SKIP) {
				json_object_set_new(g, "score", json_real(0.0));
				json_object_set_new(g, "max_score", json_real(0.0));
			} else {
				json_object_set_new(g, "status", json_string(kind == EXPORT_PASS ?
				    "passed" : "failed"));
				json_object_set_new(g, "score", json_real(kind == EXPORT_PASS ?
				    each : 0.0));
				json_object_set_new(g, "max_score", json_real(each));
			}
			if (message != NULL)
				json_object_set_new(g, "output", json_string(message));
			json_array_append_new(tests, g);
		}
	}
	json_object_set_new(doc, "score", json_real(json_number_value(json_object_get(project,
	    "grade"))));
	json_object_set_new(doc, "max_score", json_real(EXPORT_GRADE_MAX));
	text = buf_steal(&out);
	json_object_set_new(doc, "output", json_string(text != NULL ? text : ""));
	free(text);
	json_object_set_new(doc, "tests", tests);
	return doc;
}

/*
 * text with every line after the first indented by n more spaces: a
 * document jansson wrote with JSON_INDENT(2), moved n levels deeper. A line
 * break inside a string is escaped, so every raw one is the layout's.
 */
static void
export_indented(struct export_out *o, const char *text, int n)
{
	for (const char *p = text, *nl; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl == NULL) {
			out_str(o, p);
			return;
		}
		out_add(o, p, (size_t)(nl - p) + 1);
		out_printf(o, "%*s", n, "");
	}
}

/*
 * One project of {"projects": {"<id>": <results.json>, ...}} as jansson
 * writes the whole document with JSON_INDENT(2), or, in the export of one
 * project, its results.json alone. 1 when it wrote an entry; a project
 * without an id has none.
 */
static int
export_gradescope_piece(struct export_out *o, const struct export_writer *w, const json_t *p)
{
	const char *pid = export_str(p, "project_id");
	json_t *doc, *key;
	char *text, *name = NULL;

	if (pid == NULL && !w->one)
		return 0;
	doc = export_gradescope_project(p);
	text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	if (!w->one) {
		key = json_string(pid);
		name = json_dumps(key, JSON_ENCODE_ANY);
		json_decref(key);
	}
	if (text == NULL || (!w->one && name == NULL)) {
		if (o->err == 0)
			o->err = -ENOMEM;
	} else if (w->one) {
		out_str(o, text);
		out_str(o, "\n");      /* a file ends with a newline */
	} else {
		out_printf(o, "%s\n    %s: ", w->written > 0 ? "," : "", name);
		export_indented(o, text, 4);
	}
	free(text);
	free(name);
	return 1;
}

/* ---- the writer ----------------------------------------------------------- */

static void
export_begin(struct export_out *o)
{
	o->err = 0;
	buf_init(&o->b, EXPORT_MAX);
}

char *
export_write_head(struct export_writer *w, size_t *len)
{
	struct export_out o;

	export_begin(&o);
	switch (w->format) {
	case EXPORT_CSV:
		out_str(&o, "id,passed,failed,skipped,percent,grade,error\r\n");
		break;
	case EXPORT_JUNIT:
		export_junit_head(&o, w->eval_id, &w->totals);
		break;
	case EXPORT_GRADESCOPE:
		if (!w->one)
			out_str(&o, "{\n  \"projects\": {");
		break;
	}
	return out_finish(&o, len);
}

char *
export_write_project(struct export_writer *w, const json_t *project, size_t *len)
{
	struct export_out o;

	export_begin(&o);
	switch (w->format) {
	case EXPORT_CSV:
		export_csv_row(&o, project);
		break;
	case EXPORT_JUNIT:
		export_junit_project(&o, project);
		break;
	case EXPORT_GRADESCOPE:
		if (export_gradescope_piece(&o, w, project) == 0)
			return out_finish(&o, len);
		break;
	}
	w->written++;
	return out_finish(&o, len);
}

char *
export_write_tail(struct export_writer *w, size_t *len)
{
	struct export_out o;

	export_begin(&o);
	if (w->format == EXPORT_JUNIT)
		out_str(&o, "</testsuites>\n");
	else if (w->format == EXPORT_GRADESCOPE && !w->one)
		out_str(&o, w->written > 0 ? "\n  }\n}\n" : "}\n}\n");
	return out_finish(&o, len);
}

/* ---- whole ---------------------------------------------------------------- */

/* One of the writer's pieces onto the whole text; the piece is freed. */
static void
export_take(struct export_out *o, char *piece, size_t len)
{
	if (piece == NULL && o->err == 0)
		o->err = -EFBIG;
	if (piece != NULL)
		out_add(o, piece, len);
	free(piece);
}

int
export_render(const json_t *results, enum export_format f, const char *project,
    char **text, size_t *len)
{
	struct export_writer w = { .format = f, .one = project != NULL,
	    .eval_id = export_str(results, "id") };
	const json_t *projects = json_object_get(results, "projects"), *proj = NULL;
	struct export_out o;
	size_t i, n;
	char *piece;
	json_t *p;

	*text = NULL;
	*len = 0;
	if (project != NULL && (proj = export_project(results, project)) == NULL)
		return -ENOENT;
	json_array_foreach(projects, i, p)
		if (proj == NULL || p == proj)
			export_totals_add(&w.totals, p);
	export_begin(&o);
	piece = export_write_head(&w, &n);
	export_take(&o, piece, n);
	json_array_foreach(projects, i, p) {
		if (proj != NULL && p != proj)
			continue;
		piece = export_write_project(&w, p, &n);
		export_take(&o, piece, n);
	}
	piece = export_write_tail(&w, &n);
	export_take(&o, piece, n);
	*text = out_finish(&o, len);
	return *text != NULL ? 0 : -EFBIG;
}
