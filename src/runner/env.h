/*
 * env.h - virtual environments for projects (env.c): a project's
 * requirements resolved once into the packages that installed, and one
 * shared, read-only environment per such set.
 */
#ifndef MESHTEST_ENV_H
#define MESHTEST_ENV_H

#include <stddef.h>
#include <jansson.h>

/*
 * Resolve the project's requirements (requirements.txt and what it
 * includes, else [project].dependencies of pyproject.toml; see reqs.h for
 * what is kept) into *pins, the packages that installed, "name==version"
 * per line ("" when nothing needed installing), and *warnings, a new array
 * of strings: each line reqs.c dropped, and each requirement pip could not
 * install, with pip's reason. Best effort: the whole set in one pip call,
 * then one requirement at a time. Runs as the set-up uid, with the host's
 * network for pip only and the node's own pip settings (PIP_INDEX_URL,
 * PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, PIP_TRUSTED_HOST in
 * its environment). The environment of the pins is built on the way, so
 * env_prepare finds it. A set's resolution is remembered on disk: for good
 * when everything installed, an hour when something did not.
 *
 * 0; -EIO with err set when no environment can be made at all (no Python,
 * a full disk, pytest that does not import, an unreadable requirement
 * file): the project's error; -ECANCELED at shutdown. Thread-safe.
 */
int env_resolve(const char *project_dir, char **pins, json_t **warnings, char *err,
		size_t errlen);

/*
 * The environment of exactly these pins (from env_resolve, possibly on
 * another node) for a run in slot: its python (malloc'ed) in *python_out.
 * Built as the slot's uid when missing (pip install --no-deps of the pins);
 * concurrent calls for one set wait for a single build, a failed build is
 * remembered for 10 minutes. -EIO with err set ("cannot install the
 * project's packages on this node: <pip's reason>"): this node cannot run
 * the project, an infrastructure error; -EINVAL for a bad slot or pins that
 * are not "name==version" lines; -ECANCELED at shutdown. Thread-safe.
 */
int env_prepare(const char *pins, int slot, char **python_out, char *err, size_t errlen);

/*
 * Done with an environment env_prepare gave (its python): one user less.
 * An environment with users, one being built and one a warm worker runs in
 * are in use; env_evict never removes those.
 */
void env_release(const char *python);
/*
 * 1 while a batch uses the environment key (its folder's name in
 * <work>/venvs) or it is being built; warm workers idle in it do not count
 * (env_evict has them stopped).
 */
int env_busy(const char *key);
/*
 * Remove the environment key unless it is in use (-EBUSY; when only idle
 * warm workers keep it, their slots are asked to stop them, so a later call
 * may succeed). The next env_prepare of its pins builds it again. 0,
 * -EBUSY, -ENOENT, or -EINVAL for a key that is not 64 hex digits.
 */
int env_evict(const char *key);

#endif
