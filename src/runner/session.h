/*
 * session.h - one pytest process over several test modules of one project
 * (a shared session): which module is running, when each must stop, which
 * finished, and each module's own part of the report stream.
 *
 * Pure bookkeeping: no I/O, no clock of its own (the caller passes `now`),
 * no globals. The worker's report lines go to session_on_line as they
 * arrive; session_deadline tells when to kill the run; after it ended,
 * session_finished says which modules count from this run (the others run
 * again alone) and session_streams gives each module's events, which
 * report_build turns into its result as if it had run alone.
 *
 * Time: a module's clock runs while it is the current one, from its
 * collection through its tests; before the first module starts collecting
 * (pytest starting, conftest files) the clock of the first module runs, as
 * it would if that module ran alone. Each module has the same limit.
 */
#ifndef MESHTEST_SESSION_H
#define MESHTEST_SESSION_H

#include <stddef.h>

#include <jansson.h>

struct session;

/* modules: paths relative to the project root (copied); timeout in seconds. */
struct session *session_new(const char *const *modules, size_t n, double timeout,
			    double now);
void session_free(struct session *s);

/*
 * One line of the report stream (JSON), as it arrived. Returns the index of
 * the module whose own process it says ended ("module_exit"), else -1.
 */
long session_on_line(struct session *s, const char *line, size_t len, double now);

/* When the run must be killed (monotonic seconds), or 0 when nothing runs. */
double session_deadline(const struct session *s, double now);

/*
 * After the run: how it ended (normal: pytest ended by itself, exit status
 * 0, 1 or 5, no signal, no deadline). The clock of the current module stops.
 */
void session_end(struct session *s, int normal, double now);

size_t session_count(const struct session *s);
/*
 * 1 when module i counts from this run: its collection failed, or its
 * collection ended and each of its tests finished (also when the session
 * died afterwards). 0 for the others, which run again alone.
 */
int session_finished(const struct session *s, size_t i);
/* The module that was running when the run ended or was killed, or -1. */
long session_current(const struct session *s);
/* Seconds module i was the current one. */
double session_duration(const struct session *s, size_t i);

/*
 * Every module's events from stream (the whole report stream of the run),
 * cut in one pass: out[i] is module i's "hello", its collection, its tests
 * ("collected" narrowed to them) and a closing "end", malloc'ed and
 * NUL-terminated, its length in outlen[i] (both arrays of
 * session_count(s)).
 */
void session_streams(const struct session *s, const char *stream, size_t len, char **out,
		     size_t *outlen);

/*
 * Isolation "module" (meshtest_each.py): the modules run one after the
 * other, each in a process of its own, and the stream holds {"ev":
 * "module_exit", "path", "status", "signal"} after each. Then only these
 * markers count, each for the next module in order: module i is current
 * from the marker of the one before it to its own, whatever its events say
 * (nothing it writes makes another module current). Call before any line.
 */
void session_one_by_one(struct session *s);
/*
 * 1 with its exit status (-1: none) and signal (0: none) when module i's
 * process ended; such a module counts (finished).
 */
int session_exit(const struct session *s, size_t i, int *status, int *signal);
/*
 * That "module_exit" event itself (borrowed; NULL when it has none): it also
 * holds the module's own output, "stdout" and "stderr" (text) with
 * "stdout_dropped" and "stderr_dropped" (bytes past the cap).
 */
json_t *session_exit_event(const struct session *s, size_t i);
/* The module a node id belongs to ("tests/test_a.py::test_x" -> index), or -1. */
long session_module_of(const struct session *s, const char *nodeid);

#endif
