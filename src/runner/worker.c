/*
 * worker.c - warm pytest workers (see worker.h and meshtest_worker.py).
 *
 * Owns the worker process: started through launch_start inside the sandbox
 * spec it is given, with our end of an AF_UNIX SOCK_SEQPACKET socket pair as
 * the child's fd 3 (the control socket: one JSON message per packet, the
 * run's descriptors attached with SCM_RIGHTS). The node keeps the read ends
 * of every run's stdout, stderr and report pipes, so nothing a run writes
 * passes through the worker.
 *
 * Thread: a worker is used by one slot thread; nothing here is shared.
 */
#include "runner/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "runner/launch.h"

#define WORKER_MSG_MAX 65536
#define WORKER_LOG_CAP 8192
#define WORKER_DRAIN_SECONDS 1.0   /* after the child ended, for what it wrote */
#define WORKER_STOP_SECONDS 1.0

struct worker {
	struct launch_proc proc;
	int ctl;                 /* our end of the control socket */
	char *key;
	int ns, overlay, each;
	char why[256];
	double last_used;
	int dead;
	const int *cancel;       /* the node's shutdown flag */
	struct buf log;          /* the worker's own stdout and stderr */
};

static void
worker_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int
worker_has_ns(const struct worker *w)
{
	return w->ns;
}

int
worker_has_overlay(const struct worker *w)
{
	return w->overlay;
}

int
worker_has_each(const struct worker *w)
{
	return w->each;
}

const char *
worker_why(const struct worker *w)
{
	return w->why;
}

const char *
worker_key(const struct worker *w)
{
	return w->key;
}

int
worker_alive(const struct worker *w)
{
	return w != NULL && !w->dead;
}

double
worker_last_used(const struct worker *w)
{
	return w->last_used;
}

/* Read what the worker itself printed (tracebacks while starting). */
static void
worker_drain_log(struct worker *w, int *fd)
{
	char chunk[4096];
	ssize_t n = read(*fd, chunk, sizeof(chunk));

	if (n > 0) {
		if (w->log.len + (size_t)n > WORKER_LOG_CAP) {
			/* keep the end: the last lines say what went wrong */
			size_t keep = WORKER_LOG_CAP / 2;
			if (w->log.len > keep) {
				memmove(w->log.data, w->log.data + w->log.len - keep, keep);
				w->log.len = keep;
				w->log.data[keep] = '\0';
			}
		}
		(void)buf_append_trunc(&w->log, chunk, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		worker_close(fd);
	}
}

/* Kill the sandbox (bwrap's process group takes every process in it along). */
static void
worker_terminate(struct worker *w)
{
	int status;

	if (w->proc.pid > 0) {
		kill(-w->proc.pid, SIGKILL);
		kill(w->proc.pid, SIGKILL);
		while (waitpid(w->proc.pid, &status, 0) < 0 && errno == EINTR)
			;
		w->proc.pid = -1;
	}
	w->dead = 1;
}

static void
worker_free(struct worker *w)
{
	worker_close(&w->ctl);
	launch_proc_close(&w->proc);
	buf_free(&w->log);
	free(w->key);
	free(w);
}

void
worker_kill(struct worker *w)
{
	if (w == NULL)
		return;
	worker_terminate(w);
	worker_free(w);
}

void
worker_stop(struct worker *w)
{
	static const char msg[] = "{\"op\": \"stop\"}";
	double end;

	if (w == NULL)
		return;
	if (!w->dead && w->proc.pid > 0 &&
	    send(w->ctl, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) > 0) {
		end = util_mono() + WORKER_STOP_SECONDS;
		while (util_mono() < end) {
			int status;
			pid_t r = waitpid(w->proc.pid, &status, WNOHANG);
			if (r == w->proc.pid) {
				w->proc.pid = -1;
				break;
			}
			if (r < 0 && errno != EINTR)
				break;
			util_sleep(0.01);
		}
	}
	worker_terminate(w);
	worker_free(w);
}

/* One message from the control socket: 1 with *msg (caller decrefs), 0 at EOF, <0. */
static int
worker_recv(struct worker *w, json_t **msg)
{
	char *data = xmalloc(WORKER_MSG_MAX + 1);
	ssize_t n;

	*msg = NULL;
	do {
		n = recv(w->ctl, data, WORKER_MSG_MAX, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;
		free(data);
		return e == EAGAIN ? -EAGAIN : -e;
	}
	if (n == 0) {
		free(data);
		return 0;
	}
	*msg = json_loadb(data, (size_t)n, 0, NULL);
	free(data);
	if (*msg == NULL || !json_is_object(*msg)) {
		json_decref(*msg);
		*msg = NULL;
		return -EBADMSG;
	}
	return 1;
}

/* The last non-empty line of the worker's own output, for error messages. */
static void
worker_last_line(const struct worker *w, char *out, size_t outlen)
{
	const char *s = w->log.data ? w->log.data : "";
	size_t end = w->log.len, start;

	while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == ' ' || s[end - 1] == '\r'))
		end--;
	start = end;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	snprintf(out, outlen, "%.*s", (int)(end - start), s + start);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

int
worker_start(const struct worker_spec *spec, const char *key, struct worker **out,
	     char *err, size_t errlen)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	struct launch_spec ls;
	int sv[2] = { -1, -1 }, r;
	double deadline;
	char why[256] = "";
	const char *argv[] = { spec->python, spec->script, NULL };

	*out = NULL;
	w->ctl = -1;
	w->key = xstrdup(key);
	buf_init(&w->log, WORKER_LOG_CAP);
	w->proc.pid = -1;
	w->proc.pidfd = w->proc.in = w->proc.out = w->proc.err = w->proc.rep = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		util_seterr(err, errlen, "cannot create the worker's control socket: %s",
			    strerror(-r));
		goto fail;
	}
	memset(&ls, 0, sizeof(ls));
	ls.argv = argv;
	ls.envp = spec->envp;
	ls.cwd = "/";
	ls.uid = spec->uid;
	ls.gid = (gid_t)spec->uid;
	ls.sandbox = spec->sandbox;
	ls.fd3 = &sv[1];
	launch_limits_default(&ls.lim);
	r = launch_start(&ls, &w->proc, why, sizeof(why));
	worker_close(&sv[1]);
	w->ctl = sv[0];
	sv[0] = -1;
	w->cancel = spec->cancel;
	if (r == 1) {
		util_seterr(err, errlen, "cannot start a worker: %s", why);
		r = -ENOEXEC;
		goto fail;
	}
	if (r < 0) {
		util_seterr(err, errlen, "cannot start a worker: %s", strerror(-r));
		goto fail;
	}
	fcntl(w->proc.out, F_SETFL, O_NONBLOCK);
	fcntl(w->proc.err, F_SETFL, O_NONBLOCK);

	deadline = util_mono() + spec->start_timeout;
	for (;;) {
		struct pollfd pfd[4];
		json_t *msg = NULL;
		int nfd = 0, ctl_at = -1, gone = 0;
		double now = util_mono();

		if (now >= deadline) {
			util_seterr(err, errlen, "the worker did not get ready within %g s",
				    spec->start_timeout);
			r = -ETIMEDOUT;
			goto fail;
		}
		if (spec->cancel != NULL && __atomic_load_n(spec->cancel, __ATOMIC_SEQ_CST)) {
			util_seterr(err, errlen, "the node is shutting down");
			r = -ECANCELED;
			goto fail;
		}
		pfd[nfd++] = (struct pollfd){ .fd = w->ctl, .events = POLLIN };
		ctl_at = 0;
		if (w->proc.out >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = w->proc.out, .events = POLLIN };
		if (w->proc.err >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = w->proc.err, .events = POLLIN };
		int wait_ms = (int)((deadline - now) * 1000) + 1;
		if (wait_ms > 100)
			wait_ms = 100;
		if (poll(pfd, (nfds_t)nfd, wait_ms) < 0 && errno != EINTR) {
			r = -errno;
			util_seterr(err, errlen, "cannot wait for the worker: %s", strerror(-r));
			goto fail;
		}
		for (int k = 1; k < nfd; k++)
			if (pfd[k].revents)
				worker_drain_log(w, pfd[k].fd == w->proc.out ? &w->proc.out :
						 &w->proc.err);
		if (pfd[ctl_at].revents == 0)
			continue;
		r = worker_recv(w, &msg);
		if (r == -EAGAIN)
			continue;
		if (r <= 0)
			gone = 1;
		if (!gone) {
			const char *ev = json_string_value(json_object_get(msg, "ev"));
			if (ev != NULL && strcmp(ev, "ready") == 0) {
				const char *why_not = json_string_value(json_object_get(msg, "why"));
				w->ns = json_is_true(json_object_get(msg, "ns"));
				w->overlay = json_is_true(json_object_get(msg, "overlay"));
				w->each = json_is_true(json_object_get(msg, "each"));
				snprintf(w->why, sizeof(w->why), "%s", why_not ? why_not : "");
				json_decref(msg);
				break;
			}
			json_decref(msg);
			continue;
		}
		/* It died: what it printed last says why. */
		while (w->proc.err >= 0 || w->proc.out >= 0) {
			struct pollfd lp[2];
			int ln = 0;
			if (w->proc.out >= 0)
				lp[ln++] = (struct pollfd){ .fd = w->proc.out, .events = POLLIN };
			if (w->proc.err >= 0)
				lp[ln++] = (struct pollfd){ .fd = w->proc.err, .events = POLLIN };
			if (poll(lp, (nfds_t)ln, 500) <= 0)
				break;
			for (int k = 0; k < ln; k++)
				if (lp[k].revents)
					worker_drain_log(w, lp[k].fd == w->proc.out ? &w->proc.out :
							 &w->proc.err);
		}
		worker_last_line(w, why, sizeof(why));
		util_seterr(err, errlen, "the worker died while starting%s%s", why[0] ? ": " : "",
			    why);
		r = -EIO;
		goto fail;
	}
	w->last_used = util_mono();
	*out = w;
	return 0;
fail:
	worker_close(&sv[0]);
	worker_close(&sv[1]);
	worker_kill(w);
	return r;
}

/* Send the request with the three write ends attached. */
static int
worker_send(struct worker *w, json_t *req, const int fds[3])
{
	char *text = json_dumps(req, JSON_COMPACT);
	char cbuf[CMSG_SPACE(3 * sizeof(int))];
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;
	int r = 0;

	if (text == NULL)
		return -ENOMEM;
	if (strlen(text) > WORKER_MSG_MAX) {
		free(text);
		return -E2BIG;
	}
	memset(&mh, 0, sizeof(mh));
	memset(cbuf, 0, sizeof(cbuf));
	iov.iov_base = text;
	iov.iov_len = strlen(text);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, 3 * sizeof(int));
	do {
		n = sendmsg(w->ctl, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		r = -errno;
	free(text);
	return r;
}

/* Feed the complete lines of what arrived on the report pipe to the watcher. */
static void
worker_feed_lines(const struct worker_watch *watch, struct buf *rep, size_t *fed,
		  double now)
{
	if (watch == NULL || watch->on_line == NULL)
		return;
	while (*fed < rep->len) {
		const char *start = rep->data + *fed;
		const char *nl = memchr(start, '\n', rep->len - *fed);
		if (nl == NULL)
			break;
		watch->on_line(watch->ctx, start, (size_t)(nl - start), now);
		*fed = (size_t)(nl - rep->data) + 1;
	}
}

int
worker_run(struct worker *w, json_t *req, const struct worker_watch *watch,
	   size_t out_cap, size_t report_cap, struct worker_result *res)
{
	int op[2] = { -1, -1 }, ep[2] = { -1, -1 }, rp[2] = { -1, -1 };
	int exit_seen = 0, r = 0;
	size_t fed = 0;
	double start, drain_until = 0;
	const int *cancel = w->cancel;

	memset(res, 0, sizeof(*res));
	buf_init(&res->out, out_cap);
	buf_init(&res->err, out_cap);
	buf_init(&res->report, report_cap);
	if (w->dead) {
		snprintf(res->error, sizeof(res->error), "the worker is gone");
		return -EPIPE;
	}
	if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 || pipe2(rp, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(res->error, sizeof(res->error), "cannot create pipes: %s", strerror(-r));
		goto out;
	}
	{
		int fds[3] = { op[1], ep[1], rp[1] };
		start = util_mono();
		r = worker_send(w, req, fds);
	}
	worker_close(&op[1]);
	worker_close(&ep[1]);
	worker_close(&rp[1]);
	if (r < 0) {
		snprintf(res->error, sizeof(res->error), "cannot hand the run to the worker: %s",
			 strerror(-r));
		worker_terminate(w);
		goto out;
	}
	res->started = 1;
	fcntl(op[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	fcntl(rp[0], F_SETFL, O_NONBLOCK);

	for (;;) {
		struct pollfd pfd[7];
		int *fds[5] = { &op[0], &ep[0], &rp[0], &w->proc.out, &w->proc.err };
		int nfd = 0, idx[7], timeout_ms;
		double now = util_mono(), dl = 0, wait;

		if ((exit_seen || w->dead) && op[0] < 0 && ep[0] < 0 && rp[0] < 0)
			break;
		if (drain_until > 0 && now >= drain_until)
			break;
		if (!w->dead && watch != NULL && watch->deadline != NULL)
			dl = watch->deadline(watch->ctx, now);
		if (!w->dead && !exit_seen && dl > 0 && now >= dl) {
			res->timed_out = 1;
			worker_terminate(w);
			drain_until = util_mono() + WORKER_DRAIN_SECONDS;
			continue;
		}
		if (!w->dead && !exit_seen && cancel != NULL &&
		    __atomic_load_n(cancel, __ATOMIC_SEQ_CST)) {
			res->cancelled = 1;
			worker_terminate(w);
			drain_until = util_mono() + WORKER_DRAIN_SECONDS;
			continue;
		}
		wait = 0.1;
		if (dl > 0 && !exit_seen && dl - now < wait)
			wait = dl - now;
		if (drain_until > 0 && drain_until - now < wait)
			wait = drain_until - now;
		timeout_ms = wait > 0 ? (int)(wait * 1000) + 1 : 0;

		for (int i = 0; i < 5; i++) {
			if (*fds[i] >= 0) {
				pfd[nfd] = (struct pollfd){ .fd = *fds[i], .events = POLLIN };
				idx[nfd++] = i;
			}
		}
		if (!w->dead && !exit_seen) {
			pfd[nfd] = (struct pollfd){ .fd = w->ctl, .events = POLLIN };
			idx[nfd++] = 5;
		}
		int pr = poll(pfd, (nfds_t)nfd, timeout_ms);
		if (pr < 0 && errno != EINTR) {
			r = -errno;
			snprintf(res->error, sizeof(res->error), "poll failed: %s", strerror(-r));
			worker_terminate(w);
			goto out;
		}
		now = util_mono();
		for (int k = 0; pr > 0 && k < nfd; k++) {
			if (pfd[k].revents == 0)
				continue;
			if (idx[k] < 2) {
				buf_drain_fd(idx[k] == 0 ? &res->out : &res->err, fds[idx[k]]);
			} else if (idx[k] == 2) {
				buf_drain_fd(&res->report, fds[2]);
				worker_feed_lines(watch, &res->report, &fed, now);
			} else if (idx[k] < 5) {
				worker_drain_log(w, fds[idx[k]]);
			} else {
				json_t *msg = NULL;
				int rr = worker_recv(w, &msg);
				const char *ev = json_string_value(json_object_get(msg, "ev"));
				if (rr == -EAGAIN)
					continue;
				if (rr <= 0) {
					/* the worker itself ended while the run was on */
					res->worker_died = 1;
					worker_terminate(w);
					drain_until = now + WORKER_DRAIN_SECONDS;
				} else if (ev != NULL && strcmp(ev, "exit") == 0) {
					json_t *st = json_object_get(msg, "status");
					json_t *sg = json_object_get(msg, "signal");
					const char *e = json_string_value(json_object_get(msg, "error"));
					exit_seen = 1;
					res->duration = now - start;
					res->exit_code = json_is_integer(st) ? (int)json_integer_value(st) : 0;
					res->term_signal = json_is_integer(sg) ?
					    (int)json_integer_value(sg) : 0;
					res->leftover = (int)json_integer_value(json_object_get(msg,
					    "leftover"));
					res->rss_kb = (long)json_integer_value(json_object_get(msg,
					    "rss_kb"));
					if (e != NULL) {
						snprintf(res->error, sizeof(res->error), "%s", e);
						res->started = 0;
					}
					drain_until = now + WORKER_DRAIN_SECONDS;
				}
				json_decref(msg);
			}
		}
	}
	worker_feed_lines(watch, &res->report, &fed, util_mono());
	if (!exit_seen && res->duration == 0)
		res->duration = util_mono() - start;
	/* a process still holding the run's pipes outlived it: start afresh */
	if (!w->dead && (res->leftover > 0 || op[0] >= 0 || ep[0] >= 0 || rp[0] >= 0)) {
		if (res->leftover == 0)
			res->leftover = 1;
		worker_terminate(w);
	}
	w->last_used = util_mono();
out:
	worker_close(&op[0]);
	worker_close(&op[1]);
	worker_close(&ep[0]);
	worker_close(&ep[1]);
	worker_close(&rp[0]);
	worker_close(&rp[1]);
	return r;
}

void
worker_result_free(struct worker_result *res)
{
	buf_free(&res->out);
	buf_free(&res->err);
	buf_free(&res->report);
}
