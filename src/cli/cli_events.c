/*
 * cli_events.c - following an evaluation through its event stream (GET
 * /evaluation/<id>/events, Server-Sent Events) for `submit --wait` and
 * `status --wait`: every event is a reason to show progress, evaluation_done
 * ends the wait, a cut stream is resumed with Last-Event-ID.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/util.h"
#include "http/http_client.h"

#define CLI_EVENTS_LINE_MAX (1u << 20)   /* one line of an event */
#define CLI_EVENTS_QUIET 60L             /* seconds without a byte: the stream is dead */

struct cli_follow {
	struct buf line;
	char kind[64];
	char id[64];               /* of the event being read */
	char last[64];             /* of the last whole event */
	int done;
	void (*on_event)(void *arg, const char *kind);
	void *arg;
};

/* One line of the stream (without its newline). */
static void
cli_events_line(struct cli_follow *f, const char *s)
{
	if (*s == '\0') {                         /* the end of an event */
		if (f->kind[0] != '\0') {
			if (f->id[0] != '\0')
				snprintf(f->last, sizeof(f->last), "%s", f->id);
			if (strcmp(f->kind, "evaluation_done") == 0)
				f->done = 1;
			f->on_event(f->arg, f->kind);
		}
		f->kind[0] = f->id[0] = '\0';
	} else if (util_starts_with(s, "event: ")) {
		snprintf(f->kind, sizeof(f->kind), "%s", s + 7);
	} else if (util_starts_with(s, "id: ")) {
		snprintf(f->id, sizeof(f->id), "%s", s + 4);
	}
}

static size_t
cli_events_write(char *p, size_t size, size_t n, void *arg)
{
	struct cli_follow *f = arg;
	size_t len = size * n;

	for (size_t i = 0; i < len && !f->done; i++) {
		if (p[i] == '\n') {
			cli_events_line(f, f->line.data ? f->line.data : "");
			buf_reset(&f->line);
		} else if (p[i] != '\r' && buf_append(&f->line, &p[i], 1) < 0) {
			return 0;                 /* a line past the cap: give up */
		}
	}
	return f->done ? 0 : len;                 /* 0 ends the transfer at the end */
}

/* One connection; the HTTP status, or a negative errno. */
static long
cli_events_once(const struct cli_conn *c, const char *url, struct cli_follow *f,
    char *err, size_t errlen)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char last[96];
	long code = 0;
	CURLcode cr;

	if (h == NULL) {
		snprintf(err, errlen, "cannot start libcurl");
		return -ENOMEM;
	}
	if (c->auth[0] != '\0')
		hdrs = curl_slist_append(hdrs, c->auth);
	hdrs = curl_slist_append(hdrs, "Accept: text/event-stream");
	if (f->last[0] != '\0') {
		snprintf(last, sizeof(last), "Last-Event-ID: %s", f->last);
		hdrs = curl_slist_append(hdrs, last);
	}
	http_client_defaults(h, url);              /* MESHTEST_CA, no proxy, as every request */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cli_events_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, CLI_EVENTS_QUIET);
	buf_reset(&f->line);
	f->kind[0] = f->id[0] = '\0';
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (cr != CURLE_OK && !(cr == CURLE_WRITE_ERROR && f->done)) {
		snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(cr));
		if (code == 0)
			code = -EIO;
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return code;
}

int
cli_events_follow(const struct cli_conn *c, const char *id,
    void (*on_event)(void *arg, const char *kind), void *arg, char *err, size_t errlen)
{
	struct cli_follow f;
	char *url = xasprintf("%s/evaluation/%s/events", c->base, id);
	double last_ok = util_mono();
	int r = -EIO;

	memset(&f, 0, sizeof(f));
	buf_init(&f.line, CLI_EVENTS_LINE_MAX);
	f.on_event = on_event;
	f.arg = arg;
	for (;;) {
		long code = cli_events_once(c, url, &f, err, errlen);

		if (f.done || code == 204) {
			r = 0;
			break;
		}
		if (code == 404 || code == 405) {         /* no such stream here: poll */
			r = -ENOTSUP;
			break;
		}
		if (code >= 400 && code < 500) {
			snprintf(err, errlen, "node answered %ld to %s", code, url);
			r = -EPROTO;
			break;
		}
		if (code == 200)
			last_ok = util_mono();
		/* cut off or a restarting node: resume after the last event */
		if (util_mono() - last_ok > CLI_RETRY_WINDOW) {
			r = code < 0 ? (int)code : -EIO;
			break;
		}
		util_sleep(1.0);
	}
	buf_free(&f.line);
	free(url);
	return r;
}
