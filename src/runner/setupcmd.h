/*
 * setupcmd.h - a project's set-up commands, once, right after fetching.
 */
#ifndef MESHTEST_SETUPCMD_H
#define MESHTEST_SETUPCMD_H

#include <stddef.h>

/*
 * Run the project's set-up commands ONCE, right after fetching, so that what
 * they make travels in the project's blob: the evaluation's commands (from
 * project_dir/SETUP_FILE), then those of the project's meshtest.toml or
 * meshtest.json, in order, each with sh -c in the project root, through
 * meshtest_supervisor.py --commands. Nothing to do (0) when the project has
 * no commands (setup_has_commands).
 *
 * They run as runner_setup_uid() inside the sandbox (no network, like module
 * runs) with the project's environment (built as that uid when missing), in
 * a copy of project_dir under <work>/setup owned by that uid, 300 s for all
 * of them, output capped; one project at a time. On success the copy,
 * handed back to root:root, replaces project_dir, with SETUP_FILE restored
 * as it was.
 *
 * 0, or a negative errno with err set to one line for the project's error:
 * "set-up command 2 failed (exit 1): <last line of its stderr>", "set-up
 * command 1 timed out (300 s for all set-up commands)", "meshtest.toml: ...",
 * an environment error (env_prepare), or -ECANCELED at shutdown.
 * project_dir is left as it was when a command failed. Thread-safe.
 */
int setupcmd_run(const char *project_dir, char *err, size_t errlen);

#endif
