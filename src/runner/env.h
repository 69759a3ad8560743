/*
 * env.h - virtual environments for projects: one per interpreter and
 * requirement set, shared, read-only once built (env.c).
 */
#ifndef MESHTEST_ENV_H
#define MESHTEST_ENV_H

#include <stddef.h>

/*
 * Prepare (or reuse) the virtual environment for the project folder and
 * return the path of its python (malloc'ed) in *python_out. Identical
 * requirement sets (requirements.txt, else [project].dependencies of
 * pyproject.toml) share one read-only venv under <work>/venvs/<key>;
 * concurrent calls for one key wait for a single build, and a failed build
 * is remembered for 10 minutes. Builds run as slot's uid; slot -1 prepares it
 * ahead of time (right after fetching) as the set-up uid, and without the
 * sandbox does nothing (0, *python_out NULL). Errors: -EIO with err set,
 * e.g. "installing requirements failed: <last line of pip's stderr>" or
 * "pytest is not available in the project's environment: ..."; -EINVAL for
 * a bad slot; -ECANCELED at shutdown. Thread-safe.
 */
int env_prepare(const char *project_dir, int slot, char **python_out, char *err,
		size_t errlen);

#endif
