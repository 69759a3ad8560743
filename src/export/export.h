/*
 * export.h - an evaluation's results in formats other tools read: a CSV
 * gradebook, JUnit XML and Gradescope results.json.
 *
 * Pure: every function reads a /results document, or one project of it,
 * and returns text or JSON; no I/O, no globals, any thread. The streamed
 * export (export_stream.c) and the command-line client's failure summary
 * (export_message_line) are its callers.
 */
#ifndef MESHTEST_EXPORT_H
#define MESHTEST_EXPORT_H

#include <jansson.h>
#include <stddef.h>

enum export_format {
	EXPORT_CSV,
	EXPORT_JUNIT,
	EXPORT_GRADESCOPE,
};

/* The names export_format_parse takes, for error messages. */
#define EXPORT_FORMAT_NAMES "csv, junit or gradescope"

/* Cap on an export's text (whole, or a streamed piece): far above any real one. */
#define EXPORT_MAX (512u << 20)

/* Cap on export_message_line's output, in bytes. */
#define EXPORT_LINE_MAX 200

/* "csv", "junit", "gradescope" into *out; -EINVAL for anything else. */
int export_format_parse(const char *name, enum export_format *out);

/* The Content-Type of a format's text. */
const char *export_content_type(enum export_format f);

/* The project object with this project_id in results, or NULL (borrowed). */
const json_t *export_project(const json_t *results, const char *project_id);

/*
 * Render results in format f. With project NULL: every project (gradescope:
 * {"projects": {"<id>": <results.json>, ...}}); else only that project
 * (gradescope: its results.json alone). 0 with *text (malloc'ed,
 * NUL-terminated) and *len; -ENOENT when there is no such project; -EFBIG
 * past EXPORT_MAX. The CSV gradebook (RFC 4180, CRLF line ends) has a header
 * row "id,passed,failed,skipped,percent,grade,error", then one row per
 * project; percent and grade have two decimals; a text cell a spreadsheet
 * would run as a formula gets a leading single quote. JUnit XML follows the
 * Jenkins junit-10.xsd: one <testsuite> per module ("<project>/<module
 * path>") that has a result, and one per project error (a single errored
 * testcase).
 */
int export_render(const json_t *results, enum export_format f, const char *project,
    char **text, size_t *len);

/* JUnit's totals: its root element carries them, before any project. */
struct export_totals {
	long long tests, failures, errors, skipped;
	double time;
};

/*
 * The same text a project at a time, for exports streamed from the store:
 * the head, a piece per project in the document's order, the tail; their
 * concatenation is export_render's text byte for byte. Set format, one (the
 * export of a single project) and eval_id; for JUnit, sum the totals first
 * with export_totals_add over the same projects. Each piece is malloc'ed,
 * NUL-terminated, its length in *len; NULL past EXPORT_MAX.
 */
struct export_writer {
	enum export_format format;
	int one;
	const char *eval_id;
	struct export_totals totals;
	size_t written;         /* projects written so far */
};
void export_totals_add(struct export_totals *t, const json_t *project);
char *export_write_head(struct export_writer *w, size_t *len);
char *export_write_project(struct export_writer *w, const json_t *project, size_t *len);
char *export_write_tail(struct export_writer *w, size_t *len);

/* A project's Gradescope results.json (new reference). */
json_t *export_gradescope_project(const json_t *project);

/*
 * The line that says what went wrong in a failure message: its first line
 * that starts with "E " (pytest's error line), without that prefix, else
 * its first non-blank line; trimmed, control characters turned into spaces,
 * cut to EXPORT_LINE_MAX bytes on a character boundary ("..." marks a cut).
 * "" for NULL or blank. out must hold EXPORT_LINE_MAX + 1 bytes.
 */
void export_message_line(const char *message, char *out, size_t outlen);

/*
 * s as one line for a terminal or a log: control characters (line breaks
 * too) become spaces, bytes that are not UTF-8 '?'; cut to outlen - 1 bytes
 * on a character boundary ("..." marks a cut). NULL is "".
 */
void export_clean_line(const char *s, char *out, size_t outlen);

#endif
