/*
 * report.h - turn the meshtest pytest plugin's event stream and the way the
 * process ended into one module result (pure: no I/O, no globals).
 */
#ifndef MESHTEST_REPORT_H
#define MESHTEST_REPORT_H

#include <stddef.h>
#include <jansson.h>

enum report_outcome { REPORT_FINISHED, REPORT_TIMEOUT, REPORT_CRASHED, REPORT_OOM, REPORT_INFRA };

/* "finished", "timeout", "crashed", "oom", "infra_error". */
const char *report_outcome_name(enum report_outcome o);

struct report_exit {
	int started;             /* 0: the process could not be started */
	int exit_code;           /* valid when term_signal == 0 */
	int term_signal;         /* 0 if it exited */
	int timed_out;
	double duration;         /* seconds the process ran */
	double timeout;          /* the limit, for messages; 0: use duration */
	const char *start_error; /* when !started */
	const char *stderr_tail; /* stderr (or its end), for messages; may be NULL */
	const char *stdout_tail; /* stdout (or its end): pytest prints its internal
				  * errors there; used when stderr says nothing */
	const char *module;      /* module path, nodeid of a module-level error; NULL: "<collection>" */
	int oom_kill;            /* the kernel's OOM killer hit the run (e.g. a cgroup v2
				  * memory.events oom_kill counter rose); 0: unknown or no */
};

/*
 * Build the module result from the report stream (JSON lines; lines that do
 * not parse, such as a truncated last line, are ignored) and how the process
 * ended. The outcome is "timeout" when the deadline killed it; "oom" when it
 * died early (no end event, killed by a signal, or a pytest internal error)
 * and the last line of stderr shows MemoryError (or ENOMEM), or when it was
 * killed by SIGKILL with oom_kill set; "crashed" for any other early death;
 * "infra_error" when pytest could not start; else "finished" (a test that
 * catches MemoryError and fails is just a failed test). Tests count as for
 * "crashed". Returns a new object (caller owns; never NULL):
 * {"outcome": "finished|timeout|crashed|oom|infra_error", "message": str (only
 *  when not finished), "passed", "failed", "skipped", "errors": int,
 *  "duration": s, "exit_code": int|null, "signal": int|null,
 *  "tests": [{"nodeid", "outcome": "passed|failed|error|skipped|xfailed|xpassed",
 *             "counted": "passed|failed|skipped", "duration": s,
 *             "message": str (optional), "phase": "setup|call|teardown|collect"
 *             (for errors and failures)}]}
 * "failed" includes the errors; skipped tests are in no denominator.
 */
json_t *report_build(const char *stream, size_t len, const struct report_exit *ex);

/*
 * 1 when the report line (one JSON object) carries "k": key; with key NULL
 * every line counts. The report channel is a pipe that code under test can
 * write to as well: only the plugin knows the run's key.
 */
int report_line_keyed(const char *line, size_t len, const char *key);
/*
 * The lines of stream that carry key, as a new stream (malloc'ed, never
 * NULL; its length in *outlen).
 */
char *report_keep_keyed(const char *stream, size_t len, const char *key, size_t *outlen);

/*
 * The one constructor of a module result that is a single error: outcome
 * (e.g. "infra_error"), message, counts 0 passed / 1 failed / 0 skipped / 1
 * error, duration 0, and one test named module (nodeid) with outcome
 * "error", phase "collect" and the message. Returns a new object.
 */
json_t *report_error_result(const char *outcome, const char *module, const char *message);

/*
 * A JSON string holding n bytes of arbitrary text: invalid UTF-8 and NUL
 * bytes are replaced by '?', so hostile output always serializes. Never NULL.
 */
json_t *report_json_text(const char *p, size_t n);

#endif
