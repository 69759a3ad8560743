/*
 * report.c - the counting rules: pytest plugin events -> module result.
 *
 * Pure functions, no I/O and no shared state, so any thread may call them and
 * tests/unit/test_report.c can drive them with hand-written streams. The
 * stream comes from code under test: every line may be garbage, every field
 * may have the wrong type, and the whole thing may stop mid-line.
 */
#include "runner/report.h"

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

#define REPORT_MAX_TESTS 100000
#define REPORT_MSG_CAP 4000
#define REPORT_TAIL_CAP 500

enum { PH_SETUP = 0, PH_CALL = 1, PH_TEARDOWN = 2, PH_N = 3 };

static const char *const report_phase_names[PH_N] = { "setup", "call", "teardown" };

struct report_test {
	char *nodeid;
	int started, finished;
	double duration;
	int failed_mask;     /* 1 << phase for each failed phase */
	int strict_xpass;    /* the call failed as a strict xpass */
	int skipped, skip_wasxfail;
	int call_passed, call_wasxfail;
	int last_phase;      /* highest phase reported, -1 for none */
	char *fail_msg[PH_N];
	char *skip_msg;
};

struct report_state {
	struct report_test *tests;
	size_t n, alloc;
	json_t *index;          /* nodeid -> position in tests */
	json_t *collect_errors; /* [{"nodeid", "message"}] */
	int hello, end, exitstatus, collected;
	long current;           /* started and not finished, or -1 */
};

const char *
report_outcome_name(enum report_outcome o)
{
	switch (o) {
	case REPORT_FINISHED: return "finished";
	case REPORT_TIMEOUT: return "timeout";
	case REPORT_CRASHED: return "crashed";
	case REPORT_OOM: return "oom";
	case REPORT_INFRA: return "infra_error";
	}
	return "infra_error";
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 if invalid. */
static size_t
report_utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	uint32_t cp;

	if (c >= 0x01 && c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

json_t *
report_json_text(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	char *out;
	size_t o = 0;
	json_t *j;

	if (p == NULL)
		n = 0;
	out = xmalloc(n + 1);
	for (size_t i = 0; i < n;) {
		size_t l = report_utf8_len(s + i, n - i);
		if (l == 0) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, s + i, l);
		o += l;
		i += l;
	}
	out[o] = '\0';
	j = json_stringn(out, o);
	free(out);
	return j != NULL ? j : json_string("");
}

/* The last `cap` bytes of s, starting on a character boundary (malloc'ed). */
static char *
report_keep_tail(const char *s, size_t cap)
{
	size_t len = strlen(s), start = 0;

	if (len > cap) {
		start = len - cap;
		while (start < len && ((unsigned char)s[start] & 0xc0) == 0x80)
			start++;
	}
	return xstrdup(s + start);
}

/* The last non-empty line of stderr, capped (malloc'ed; "" when none). */
static char *
report_stderr_line(const char *err)
{
	size_t end, start;

	if (err == NULL)
		return xstrdup("");
	end = strlen(err);
	while (end > 0 && (err[end - 1] == '\n' || err[end - 1] == '\r' ||
			   err[end - 1] == ' ' || err[end - 1] == '\t'))
		end--;
	start = end;
	while (start > 0 && err[start - 1] != '\n')
		start--;
	if (end - start > REPORT_TAIL_CAP)
		start = end - REPORT_TAIL_CAP;
	while (start < end && ((unsigned char)err[start] & 0xc0) == 0x80)
		start++;
	char *line = xmalloc(end - start + 1);
	memcpy(line, err + start, end - start);
	line[end - start] = '\0';
	return line;
}

/*
 * The last "INTERNALERROR> ..." line of stdout without its prefix, capped
 * (malloc'ed; "" when there is none).
 */
static char *
report_internal_line(const char *out)
{
	static const char tag[] = "INTERNALERROR>";
	const char *last = NULL, *p = out, *end;
	char *line;

	while ((p = strstr(p, tag)) != NULL) {
		if (p == out || p[-1] == '\n')
			last = p;
		p += sizeof(tag) - 1;
	}
	if (last == NULL)
		return xstrdup("");
	last += sizeof(tag) - 1;
	while (*last == ' ')
		last++;
	end = strchr(last, '\n');
	if (end == NULL)
		end = last + strlen(last);
	if (end - last > REPORT_TAIL_CAP)
		end = last + REPORT_TAIL_CAP;
	line = xmalloc((size_t)(end - last) + 1);
	memcpy(line, last, (size_t)(end - last));
	line[end - last] = '\0';
	return line;
}

static struct report_test *
report_test_get(struct report_state *st, const char *nodeid, long *pos)
{
	json_t *ix = json_object_get(st->index, nodeid);

	if (ix != NULL) {
		*pos = (long)json_integer_value(ix);
		return &st->tests[*pos];
	}
	if (st->n >= REPORT_MAX_TESTS)
		return NULL;
	if (st->n == st->alloc) {
		size_t na = st->alloc ? st->alloc * 2 : 64;
		struct report_test *nt = realloc(st->tests, na * sizeof(*nt));
		if (nt == NULL)
			return NULL;
		st->tests = nt;
		st->alloc = na;
	}
	struct report_test *t = &st->tests[st->n];
	memset(t, 0, sizeof(*t));
	t->nodeid = xstrdup(nodeid);
	t->last_phase = -1;
	if (json_object_set_new(st->index, nodeid, json_integer((json_int_t)st->n)) < 0) {
		free(t->nodeid);
		return NULL;
	}
	*pos = (long)st->n;
	st->n++;
	return t;
}

static const char *
report_str(json_t *ev, const char *key)
{
	return json_string_value(json_object_get(ev, key));
}

static void
report_on_report(struct report_state *st, json_t *ev)
{
	const char *nodeid = report_str(ev, "nodeid");
	const char *when = report_str(ev, "when");
	const char *outcome = report_str(ev, "outcome");
	const char *msg = report_str(ev, "message");
	int wasxfail = json_is_true(json_object_get(ev, "wasxfail"));
	double d = json_number_value(json_object_get(ev, "duration"));
	struct report_test *t;
	long pos;
	int ph = -1;

	if (nodeid == NULL || when == NULL || outcome == NULL)
		return;
	for (int i = 0; i < PH_N; i++)
		if (strcmp(when, report_phase_names[i]) == 0)
			ph = i;
	if (ph < 0)
		return;
	t = report_test_get(st, nodeid, &pos);
	if (t == NULL)
		return;
	if (isfinite(d) && d > 0 && d < 1e9)
		t->duration += d;
	if (ph > t->last_phase)
		t->last_phase = ph;
	if (strcmp(outcome, "failed") == 0) {
		t->failed_mask |= 1 << ph;
		if (ph == PH_CALL && json_is_true(json_object_get(ev, "strict_xpass")))
			t->strict_xpass = 1;
		if (msg != NULL && t->fail_msg[ph] == NULL)
			t->fail_msg[ph] = report_keep_tail(msg, REPORT_MSG_CAP);
	} else if (strcmp(outcome, "skipped") == 0) {
		if (ph == PH_TEARDOWN || t->skipped)
			return;
		t->skipped = 1;
		t->skip_wasxfail = wasxfail;
		if (msg != NULL)
			t->skip_msg = report_keep_tail(msg, REPORT_MSG_CAP);
	} else if (strcmp(outcome, "passed") == 0 && ph == PH_CALL) {
		t->call_passed = 1;
		t->call_wasxfail = wasxfail;
	}
}

static void
report_on_line(struct report_state *st, const char *line, size_t n)
{
	json_t *ev = json_loadb(line, n, 0, NULL);
	const char *kind = report_str(ev, "ev");
	struct report_test *t;
	long pos;

	if (kind == NULL)
		goto out;
	if (strcmp(kind, "hello") == 0) {
		st->hello = 1;
	} else if (strcmp(kind, "collect_error") == 0) {
		const char *nodeid = report_str(ev, "nodeid");
		const char *msg = report_str(ev, "message");
		if (nodeid == NULL || json_array_size(st->collect_errors) >= 1000)
			goto out;
		char *m = report_keep_tail(msg ? msg : "collection failed", REPORT_MSG_CAP);
		json_array_append_new(st->collect_errors,
				      json_pack("{s:s, s:s}", "nodeid", nodeid, "message", m));
		free(m);
	} else if (strcmp(kind, "collected") == 0) {
		json_t *ids = json_object_get(ev, "nodeids");
		size_t i;
		json_t *v;
		st->collected = 1;
		json_array_foreach(ids, i, v) {
			if (json_is_string(v))
				(void)report_test_get(st, json_string_value(v), &pos);
		}
	} else if (strcmp(kind, "start") == 0) {
		const char *nodeid = report_str(ev, "nodeid");
		if (nodeid == NULL || (t = report_test_get(st, nodeid, &pos)) == NULL)
			goto out;
		t->started = 1;
		st->current = pos;
	} else if (strcmp(kind, "report") == 0) {
		report_on_report(st, ev);
	} else if (strcmp(kind, "finish") == 0) {
		const char *nodeid = report_str(ev, "nodeid");
		if (nodeid == NULL || (t = report_test_get(st, nodeid, &pos)) == NULL)
			goto out;
		t->started = 1;
		t->finished = 1;
		if (st->current == pos)
			st->current = -1;
	} else if (strcmp(kind, "end") == 0) {
		json_t *es = json_object_get(ev, "exitstatus");
		st->end = 1;
		st->exitstatus = json_is_integer(es) ? (int)json_integer_value(es) : -1;
	}
out:
	json_decref(ev);
}

/*
 * The final outcome of a test that reported its phases; -1 when its reports
 * do not settle it (it never got to its call phase).
 */
static int
report_test_outcome(const struct report_test *t, const char **outcome,
		    const char **counted, const char **phase, const char **msg)
{
	*phase = NULL;
	*msg = NULL;
	if (t->failed_mask != 0) {
		*counted = "failed";
		if (t->failed_mask & (1 << PH_CALL)) {
			/* A strict xpass is a failure, as pytest reports it. */
			*outcome = "failed";
			*phase = "call";
			*msg = t->fail_msg[PH_CALL];
		} else {
			int ph = (t->failed_mask & (1 << PH_SETUP)) ? PH_SETUP : PH_TEARDOWN;
			*outcome = "error";
			*phase = report_phase_names[ph];
			*msg = t->fail_msg[ph];
		}
		return 0;
	}
	if (t->skipped) {
		*outcome = t->skip_wasxfail ? "xfailed" : "skipped";
		*counted = t->skip_wasxfail ? "passed" : "skipped";
		*msg = t->skip_msg;
		return 0;
	}
	if (t->call_passed) {
		*outcome = t->call_wasxfail ? "xpassed" : "passed";
		*counted = "passed";
		return 0;
	}
	return -1;
}

static void
report_add_test(json_t *tests, const char *nodeid, const char *outcome,
		const char *counted, double duration, const char *phase, const char *msg)
{
	json_t *t = json_object();

	json_object_set_new(t, "nodeid", report_json_text(nodeid, strlen(nodeid)));
	json_object_set_new(t, "outcome", json_string(outcome));
	json_object_set_new(t, "counted", json_string(counted));
	json_object_set_new(t, "duration", json_real(duration));
	if (msg != NULL && *msg != '\0')
		json_object_set_new(t, "message", report_json_text(msg, strlen(msg)));
	if (phase != NULL)
		json_object_set_new(t, "phase", json_string(phase));
	json_array_append_new(tests, t);
}

/* 1 when the last line of stderr says the interpreter ran out of memory. */
static int
report_memory_line(const char *line)
{
	return strstr(line, "MemoryError") != NULL ||
	       strstr(line, "Cannot allocate memory") != NULL ||
	       strstr(line, "out of memory") != NULL;
}

/* Why the process did not end normally, e.g. "timed out after 5 s" (malloc'ed). */
static char *
report_reason(const struct report_state *st, const struct report_exit *ex, int oom)
{
	if (oom)
		return xstrdup(ex->oom_kill ? "out of memory (killed by the OOM killer)"
				: "out of memory (MemoryError)");
	if (ex->timed_out)
		return xasprintf("timed out after %g s",
				 ex->timeout > 0 ? ex->timeout : (double)(long)ex->duration);
	if (ex->term_signal != 0) {
		const char *abbrev = sigabbrev_np(ex->term_signal);
		return xasprintf("killed by signal %d (SIG%s)", ex->term_signal,
				 abbrev ? abbrev : "UNKNOWN");
	}
	if (!st->end)
		return xasprintf("interpreter died (exit status %d)", ex->exit_code);
	return xasprintf("pytest stopped early (exit status %d)", st->exitstatus);
}

static void
report_set_counts(json_t *res, json_t *tests)
{
	long passed = 0, failed = 0, skipped = 0, errors = 0;
	size_t i;
	json_t *t;

	json_array_foreach(tests, i, t) {
		const char *c = json_string_value(json_object_get(t, "counted"));
		const char *o = json_string_value(json_object_get(t, "outcome"));
		if (strcmp(c, "passed") == 0)
			passed++;
		else if (strcmp(c, "failed") == 0)
			failed++;
		else
			skipped++;
		if (strcmp(o, "error") == 0)
			errors++;
	}
	json_object_set_new(res, "passed", json_integer(passed));
	json_object_set_new(res, "failed", json_integer(failed));
	json_object_set_new(res, "skipped", json_integer(skipped));
	json_object_set_new(res, "errors", json_integer(errors));
}

json_t *
report_build(const char *stream, size_t len, const struct report_exit *ex)
{
	struct report_state st = { .current = -1, .exitstatus = -1 };
	const char *module = ex->module != NULL ? ex->module : "<collection>";
	json_t *res = json_object(), *tests = json_array();
	enum report_outcome outcome = REPORT_FINISHED;
	char *message = NULL, *line = NULL, *reason = NULL;

	st.index = json_object();
	st.collect_errors = json_array();
	for (size_t i = 0; stream != NULL && i < len;) {
		const char *nl = memchr(stream + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (stream + i)) : len - i;
		/* A cut last line simply fails to parse. */
		report_on_line(&st, stream + i, n);
		i += n + 1;
	}

	line = report_stderr_line(ex->stderr_tail);
	if (*line == '\0' && ex->stdout_tail != NULL) {
		/* pytest writes its INTERNALERROR lines to stdout */
		free(line);
		line = report_internal_line(ex->stdout_tail);
	}
	if (!ex->started) {
		outcome = REPORT_INFRA;
		message = xstrdup(ex->start_error ? ex->start_error : "could not start");
		report_add_test(tests, module, "error", "failed", 0, "collect", message);
		goto done;
	}
	if (!st.hello && !ex->timed_out) {
		outcome = REPORT_INFRA;
		if (*line == '\0') {
			free(line);
			line = report_reason(&st, ex, 0);
		}
		message = xasprintf("pytest could not start: %s", line);
		report_add_test(tests, module, "error", "failed", 0, "collect", message);
		goto done;
	}
	/* out of memory: it died early, and said so or the OOM killer did it */
	int oom = !ex->timed_out &&
		  ((ex->oom_kill && ex->term_signal == SIGKILL) ||
		   ((!st.end || ex->term_signal != 0 || st.exitstatus == 3) &&
		    report_memory_line(line)));
	if (!oom && st.end && !ex->timed_out && ex->term_signal == 0 &&
	    !(st.exitstatus >= 0 && st.exitstatus <= 2) && st.exitstatus != 5) {
		outcome = REPORT_INFRA;
		if (st.exitstatus == 3)
			message = xasprintf("pytest internal error: %s", line);
		else if (st.exitstatus == 4)
			message = xasprintf("pytest usage error: %s", line);
		else
			message = xasprintf("pytest exited with status %d: %s", st.exitstatus, line);
		report_add_test(tests, module, "error", "failed", 0, "collect", message);
		goto done;
	}

	int abnormal = !st.end || ex->timed_out || ex->term_signal != 0 || oom;
	int settled = 0, all_done = 1;
	char *not_run;

	if (ex->timed_out)
		outcome = REPORT_TIMEOUT;
	else if (oom)
		outcome = REPORT_OOM;
	else if (abnormal)
		outcome = REPORT_CRASHED;
	reason = report_reason(&st, ex, oom);
	not_run = xasprintf("not run: %s", reason);
	for (size_t i = 0; i < st.n; i++) {
		struct report_test *t = &st.tests[i];
		const char *o, *c, *ph, *msg;
		int known = report_test_outcome(t, &o, &c, &ph, &msg) == 0;

		if (t->started && !t->finished && (long)i == st.current) {
			char *m = xasprintf("%s during this test", reason);
			ph = report_phase_names[t->last_phase + 1 < PH_N ? t->last_phase + 1 : PH_TEARDOWN];
			report_add_test(tests, t->nodeid, "error", "failed", t->duration, ph, m);
			free(m);
			all_done = 0;
		} else if (known) {
			report_add_test(tests, t->nodeid, o, c, t->duration, ph, msg);
			settled++;
		} else if (!t->started) {
			report_add_test(tests, t->nodeid, "error", "failed", 0, "setup", not_run);
			all_done = 0;
		} else {
			report_add_test(tests, t->nodeid, "error", "failed", t->duration,
					"setup", "no result reported");
			settled++;
		}
	}
	free(not_run);
	size_t k;
	json_t *ce;
	json_array_foreach(st.collect_errors, k, ce) {
		report_add_test(tests, json_string_value(json_object_get(ce, "nodeid")),
				"error", "failed", 0, "collect",
				json_string_value(json_object_get(ce, "message")));
		settled++;
	}
	if (abnormal && !st.collected && settled == 0 && json_array_size(tests) == 0) {
		char *m = xasprintf("%s during collection", reason);
		report_add_test(tests, module, "error", "failed", 0, "collect", m);
		free(m);
	}
	if (abnormal) {
		if (st.current >= 0 && !st.tests[st.current].finished)
			message = xasprintf("%s during %s", reason, st.tests[st.current].nodeid);
		else if (!st.collected)
			message = xasprintf("%s during collection", reason);
		else if (all_done)
			message = xasprintf("%s after the last test", reason);
		else
			message = xasprintf("%s between tests", reason);
	}

done:
	json_object_set_new(res, "outcome", json_string(report_outcome_name(outcome)));
	if (message != NULL)
		json_object_set_new(res, "message", report_json_text(message, strlen(message)));
	report_set_counts(res, tests);
	json_object_set_new(res, "duration", json_real(ex->duration));
	json_object_set_new(res, "exit_code", ex->started && ex->term_signal == 0
			    ? json_integer(ex->exit_code) : json_null());
	json_object_set_new(res, "signal", ex->started && ex->term_signal != 0
			    ? json_integer(ex->term_signal) : json_null());
	json_object_set_new(res, "tests", tests);

	for (size_t i = 0; i < st.n; i++) {
		free(st.tests[i].nodeid);
		for (int p = 0; p < PH_N; p++)
			free(st.tests[i].fail_msg[p]);
		free(st.tests[i].skip_msg);
	}
	free(st.tests);
	json_decref(st.index);
	json_decref(st.collect_errors);
	free(message);
	free(line);
	free(reason);
	return res;
}

json_t *
report_error_result(const char *outcome, const char *module, const char *message)
{
	json_t *res = json_object(), *tests = json_array();

	report_add_test(tests, module, "error", "failed", 0, "collect", message);
	json_object_set_new(res, "outcome", json_string(outcome));
	json_object_set_new(res, "message", report_json_text(message, strlen(message)));
	report_set_counts(res, tests);
	json_object_set_new(res, "duration", json_real(0));
	json_object_set_new(res, "tests", tests);
	return res;
}

int
report_line_keyed(const char *line, size_t len, const char *key)
{
	json_t *ev;
	const char *k;
	int r;

	if (key == NULL)
		return 1;
	/* cheap refusal first: most forged lines do not even name the key */
	if (len < strlen(key) || memmem(line, len, key, strlen(key)) == NULL)
		return 0;
	ev = json_loadb(line, len, 0, NULL);
	k = json_string_value(json_object_get(ev, "k"));
	r = k != NULL && strcmp(k, key) == 0;
	json_decref(ev);
	return r;
}

char *
report_keep_keyed(const char *stream, size_t len, const char *key, size_t *outlen)
{
	struct buf out;

	buf_init(&out, len + 1);
	for (size_t at = 0; stream != NULL && at < len;) {
		const char *nl = memchr(stream + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (stream + at)) : len - at;

		if (n > 0 && report_line_keyed(stream + at, n, key)) {
			(void)buf_append(&out, stream + at, n);
			(void)buf_append(&out, "\n", 1);
		}
		at += n + 1;
	}
	*outlen = out.len;
	return out.data != NULL ? buf_steal(&out) : xstrdup("");
}
