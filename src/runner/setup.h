/*
 * setup.h - what real projects need around their tests: set-up commands (run
 * once after fetching, setupcmd_run) and services (started before each
 * module by meshtest_supervisor.py inside the module's sandbox), the reruns
 * setting (rerun.h runs them), instructor tests that replace a project's
 * own, and clear messages for set-ups and pytest configurations that cannot
 * work.
 *
 * The evaluation's settings travel inside each project's blob, as the file
 * SETUP_FILE at the project root (written by the fetcher, which first removes
 * whatever the submission had under that name), so every node that runs a
 * module sees them without asking the evaluation's coordinator.
 */
#ifndef MESHTEST_SETUP_H
#define MESHTEST_SETUP_H

#include <stddef.h>
#include <jansson.h>

#define SETUP_FILE ".meshtest-evaluation.json"
#define SETUP_RERUNS_MAX 5
#define SETUP_COMMANDS_MAX 32
#define SETUP_SERVICES_MAX 8
#define SETUP_CMD_MAX 4096
#define SETUP_TIMEOUT_MAX 600.0
#define SETUP_URL_MAX 2048

/*
 * Check a set-up section: {"commands": [str], "services": [{"name": str,
 * "command": str, "ready": {"port": N} | {"delay": S}, "timeout": S}]}.
 * in may also be a string holding that JSON (a form field). Returns a new,
 * normalized object in *out (defaults filled in: ready {"delay": 1}, timeout
 * 30, name "service-<n>"), or -EINVAL with a message in err.
 */
int setup_parse(json_t *in, json_t **out, char *err, size_t errlen);

/*
 * The keys of the evaluation settings this module owns, from in (JSON values,
 * or strings from form fields) into out: "setup" (setup_parse), "reruns"
 * (integer 0..SETUP_RERUNS_MAX), "trust" ("student" or "instructor"; only
 * "instructor" is kept) and "instructor_tests" (a git URL: no
 * whitespace or control characters, not starting with '-', at most
 * SETUP_URL_MAX bytes; the fetcher checks it fully). Absent or null keys are
 * left out. 0, or -EINVAL with a message in err.
 */
int setup_settings_parse(json_t *in, json_t *out, char *err, size_t errlen);

/*
 * Make dir/SETUP_FILE say what settings say ("setup", "reruns", "trust"): remove
 * what is there under that name (file, folder or link), then write the file
 * when there is anything to say. 0 or negative errno.
 */
int setup_write_project(const char *dir, json_t *settings);

/*
 * Record in dir/SETUP_FILE the packages the project runs against (pins
 * from env_resolve, "" for none), beside what is there. 0 or negative errno.
 */
int setup_write_packages(const char *dir, const char *pins);
/* The packages recorded by setup_write_packages (malloc'ed), or NULL when none were. */
char *setup_project_packages(const char *dir);

/* 1 when a module run of this project needs the supervisor (any set-up). */
int setup_needed(const char *dir);

/*
 * 1 when the project may have set-up commands to run once after fetching:
 * the evaluation's set-up in dir/SETUP_FILE lists commands, or the project
 * has its own meshtest.toml / meshtest.json (which only Python reads).
 */
int setup_has_commands(const char *dir);

/*
 * 1 when the report stream (JSON lines) holds {"ev": "setup_error",
 * "message": m}: m (or "the set-up failed" when empty) goes to msg,
 * truncated to msglen. 0 otherwise. Pure.
 */
int setup_stream_error(const char *stream, size_t len, char *msg, size_t msglen);

/* "reruns" from dir/SETUP_FILE: 0..SETUP_RERUNS_MAX (0 when absent or bad). */
int setup_project_reruns(const char *dir);

/*
 * 1 when dir/SETUP_FILE says trust "instructor": runs then take meshtest's
 * own pytest configuration (not the project's), load no conftest.py above
 * tests/ and no plugin but meshtest's (runner_pytest_args, runner_run_env).
 */
int setup_project_trusted(const char *dir);
/*
 * For trust "instructor", at fetch time: remove every conftest.py of the
 * project outside its (the instructor's) tests/ folder; *removed counts
 * them. 0 or negative errno.
 */
int setup_set_aside_student_config(const char *dir, size_t *removed);

/*
 * Replace dir/tests by the instructor's tests in src: src/tests when that is
 * a folder, else all of src except .git. The student's tests/ goes first.
 * 0, or negative errno with a message in err.
 */
int setup_install_tests(const char *dir, const char *src, char *err, size_t errlen);

/*
 * Turn a module result whose set-up failed into one clear error: when the
 * report stream holds {"ev": "setup_error", "message": m}, the result becomes
 * outcome "infra_error", message m, one error test named module, and
 * "setup_failed": true (not worth retrying). Else, when pytest refused its
 * command line because the project's configuration names an option no
 * installed plugin provides (stderr: "error: unrecognized arguments: X" with
 * "inifile: <copy_dir>/F"), the message becomes "pytest configuration names
 * an option no plugin provides: X (addopts in F); the environment lacks that
 * plugin" and "config_error": true. Returns 1 when the result was changed,
 * 0 otherwise. Pure.
 */
int setup_fix_result(json_t *result, const char *stream, size_t len, const char *err_text,
		     const char *copy_dir, const char *module);

#endif
