/*
 * intake.c - accepting evaluations: check the submission and its settings,
 * store the evaluation with its projects (and the modules known so far),
 * reserve and queue the projects' fetches, and hand the evaluation (and its
 * upload) to a live peer before the 201, so that this node may die right
 * after answering. Runs on the HTTP server's threads.
 */
#include "engine/intake.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/replica.h"
#include "config/config.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/blob.h"
#include "engine/engine_int.h"
#include "fetch/fetch_git.h"
#include "fetch/fetch_github.h"
#include "fetch/fetch_zip.h"
#include "fetch/layout.h"
#include "runner/setup.h"
#include "store/store.h"

json_t *
intake_settings_parse(json_t *in, char *err, size_t errlen)
{
	json_t *out = json_object();
	json_t *v = json_object_get(in, "module_timeout");

	if (v != NULL && !json_is_null(v)) {
		double t = -1;
		if (json_is_number(v)) {
			t = json_number_value(v);
		} else if (json_is_string(v)) {
			char *end = NULL;
			t = strtod(json_string_value(v), &end);
			if (end == json_string_value(v) || *end != '\0')
				t = -1;
		}
		if (!(t >= 1 && t <= 86400)) {
			snprintf(err, errlen, "module_timeout must be a number of seconds from 1"
			    " to 86400");
			json_decref(out);
			return NULL;
		}
		json_object_set_new(out, "module_timeout", json_real(t));
	}
	v = json_object_get(in, "isolation");
	if (v != NULL && !json_is_null(v)) {
		const char *iso = json_string_value(v);
		if (iso == NULL || (strcmp(iso, "project") != 0 && strcmp(iso, "module") != 0)) {
			snprintf(err, errlen, "isolation must be \"project\" (modules of a project"
			    " may share a pytest session) or \"module\" (each module alone)");
			json_decref(out);
			return NULL;
		}
		json_object_set_new(out, "isolation", json_string(iso));
	}
	v = json_object_get(in, "reuse");
	if (v != NULL && !json_is_null(v)) {
		const char *t = json_string_value(v);
		int on = json_is_true(v) || (t != NULL && (strcmp(t, "true") == 0 ||
		    strcmp(t, "1") == 0));
		if (!json_is_boolean(v) && (t == NULL || (!on && strcmp(t, "false") != 0 &&
		    strcmp(t, "0") != 0))) {
			snprintf(err, errlen, "reuse must be true or false");
			json_decref(out);
			return NULL;
		}
		if (on)
			json_object_set_new(out, "reuse", json_true());
	}
	v = json_object_get(in, "deadline");
	if (v != NULL && !json_is_null(v)) {
		char norm[32];
		double t;
		if (!json_is_string(v) || util_parse_time(json_string_value(v), &t) < 0) {
			snprintf(err, errlen, "deadline must be an ISO 8601 time, e.g."
			    " 2026-03-01T23:59:59Z (without a zone: UTC)");
			json_decref(out);
			return NULL;
		}
		util_format_time(t, norm, sizeof(norm));
		json_object_set_new(out, "deadline", json_string(norm));
	}
	/* setup, reruns, instructor_tests */
	if (setup_settings_parse(in, out, err, errlen) < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/*
 * An evaluation that does not choose its isolation gets this node's default,
 * written into its settings so that every node runs it alike.
 */
static void
intake_default_isolation(struct engine *eng, json_t *settings)
{
	if (json_object_get(settings, "isolation") == NULL)
		json_object_set_new(settings, "isolation", json_string(eng->cfg->isolation));
}

/* The URL without "user:password@", for storing and showing it; *had: there were some. */
static char *
intake_strip_credentials(const char *url, int *had)
{
	char *user = NULL, *clean = fetch_git_split_credentials(url, &user, NULL);

	*had = user != NULL;
	if (user != NULL)
		OPENSSL_cleanse(user, strlen(user));
	free(user);
	return clean;
}

static char *
intake_root_name(const char *filename)
{
	const char *base;
	char *name;

	if (filename == NULL || *filename == '\0')
		return xstrdup("project");
	base = strrchr(filename, '/');
	base = base ? base + 1 : filename;
	name = xstrdup(*base ? base : "project");
	if (util_ends_with(name, ".zip") || util_ends_with(name, ".ZIP"))
		name[strlen(name) - 4] = '\0';
	if (*name == '\0' || *name == '.' || strchr(name, '/') != NULL) {
		free(name);
		name = xstrdup("project");
	}
	return name;
}

/*
 * Before the 201: the evaluation (and its upload) on at least one other live
 * node, so that the accepting node may die right after answering. Tries the
 * live peers in turn until one has both. Without live peers (a one-node
 * network) the 201 promises this node's disk only.
 */
static void
intake_share_eval(struct engine *eng, const char *id, const char *upload_digest)
{
	char **alive = NULL;
	size_t n = 0;
	json_t *doc = store_sync_export(eng->st, id);
	const char *tests_digest = json_string_value(json_object_get(json_object_get(doc,
	    "settings"), "instructor_tests_archive"));
	int done = 0, peers = 0;

	engine_alive(eng, &alive, &n);
	for (size_t i = 0; i < n && !done && doc != NULL; i++) {
		long status = 0;
		if (strcmp(alive[i], eng->address) == 0)
			continue;
		peers++;
		if (upload_digest != NULL && blob_push(eng->blobs_dir, upload_digest, alive[i],
		    (size_t)eng->cfg->max_upload_mb << 20) < 0)
			continue;
		if (tests_digest != NULL && blob_push(eng->blobs_dir, tests_digest, alive[i],
		    (size_t)eng->cfg->max_upload_mb << 20) < 0)
			continue;
		if (replica_post(alive[i], id, doc, 10.0, &status) == 0 && status == 200)
			done = 1;
	}
	if (peers > 0 && !done)
		log_warn("engine: evaluation %s is on this node only: no live peer took it", id);
	json_decref(doc);
	engine_strv_free(alive, n);
}

/* The size of the file at path (0 for NULL or a file that is not there). */
static uint64_t
intake_file_bytes(const char *path)
{
	struct stat st;

	return path != NULL && stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* trust "instructor" grades on the instructor's tests: without them it means nothing. */
static int
intake_trust_check(json_t *settings, int has_archive, char *err, size_t errlen)
{
	if (json_object_get(settings, "trust") == NULL || has_archive ||
	    json_object_get(settings, "instructor_tests") != NULL)
		return 0;
	snprintf(err, errlen, "trust \"instructor\" needs the instructor's tests"
	    " (instructor_tests: a git URL, or a ZIP next to the projects)");
	return -EINVAL;
}

int
intake_submit_zip(struct engine *eng, const char *upload_path, const char *filename,
    const char *instructor_zip, json_t *settings, char id[37], char *err, size_t errlen)
{
	struct fetch_zip_plan *plan = NULL;
	struct store_project_new *projects = NULL;
	char **ids = NULL, **sources = NULL;
	char *root = intake_root_name(filename);
	char upload_digest[SHA256_HEX_LEN];
	int r, status = 0;

	if (json_object_get(settings, "deadline") != NULL) {
		snprintf(err, errlen, "deadline applies to git repositories (the commit to grade),"
		    " not to an uploaded ZIP");
		status = 400;
		goto out;
	}
	if (intake_trust_check(settings, instructor_zip != NULL, err, errlen) < 0) {
		status = 400;
		goto out;
	}
	r = fetch_zip_scan(upload_path, root, &eng->limits, &plan, err, errlen);
	if (r < 0) {
		status = r == -EINVAL ? 400 : r == -E2BIG ? 413 : 422;
		goto out;
	}
	if (plan->nprojects > (size_t)eng->cfg->max_projects) {
		snprintf(err, errlen, "the upload holds %zu projects, more than the limit of %ld",
		    plan->nprojects, eng->cfg->max_projects);
		status = 413;
		goto out;
	}
	/* Room in the disk budget for what the upload becomes, before any of it is kept. */
	if (gc_budget_make_room(eng, intake_file_bytes(upload_path) +
	    intake_file_bytes(instructor_zip), err, errlen) < 0) {
		status = 507;
		goto out;
	}
	projects = xcalloc(plan->nprojects, sizeof(*projects));
	ids = xcalloc(plan->nprojects, sizeof(*ids));
	sources = xcalloc(plan->nprojects, sizeof(*sources));
	for (size_t i = 0; i < plan->nprojects; i++)
		ids[i] = xstrdup(plan->projects[i].name);
	layout_dedupe_ids(ids, plan->nprojects);
	for (size_t i = 0; i < plan->nprojects; i++) {
		sources[i] = xasprintf("zip:%s", plan->projects[i].name);
		projects[i].project_id = ids[i];
		projects[i].source = sources[i];
		projects[i].prefix = plan->projects[i].prefix;
		projects[i].modules = (const char *const *)plan->projects[i].modules;
		projects[i].nmodules = plan->projects[i].nmodules;
	}
	if (instructor_zip != NULL) {
		char tdigest[SHA256_HEX_LEN];
		struct fetch_zip_plan *tplan = NULL;
		char terr[512];

		if (json_object_get(settings, "instructor_tests") != NULL) {
			snprintf(err, errlen, "give the instructor's tests as a git URL or as a ZIP"
			    " file field, not both");
			status = 400;
			goto out;
		}
		/* Any ZIP with files will do; it need not hold test modules itself. */
		r = fetch_zip_scan(instructor_zip, "tests", &eng->limits, &tplan, terr, sizeof(terr));
		fetch_zip_plan_free(tplan);
		if (r == -EINVAL || r == -E2BIG) {
			snprintf(err, errlen, "instructor_tests: %s", terr);
			status = r == -EINVAL ? 400 : 413;
			goto out;
		}
		if (blob_from_file(eng->blobs_dir, instructor_zip, tdigest) < 0) {
			snprintf(err, errlen, "cannot store the instructor's tests");
			status = 500;
			goto out;
		}
		json_object_set_new(settings, "instructor_tests_archive", json_string(tdigest));
	}
	util_uuid4(id);
	/* The upload becomes a blob: kept by digest, and given to a peer. */
	if (blob_from_file(eng->blobs_dir, upload_path, upload_digest) < 0) {
		snprintf(err, errlen, "cannot store the upload: %s", strerror(errno));
		status = 500;
		goto out;
	}
	fetchq_reserve(eng, id, plan->nprojects);
	intake_default_isolation(eng, settings);
	if (store_eval_create(eng->st, id, util_now(), "zip", eng->address, settings, 0,
	    upload_digest, projects, plan->nprojects) < 0) {
		snprintf(err, errlen, "cannot store the evaluation");
		fetchq_unreserve(eng, id, plan->nprojects);
		status = 500;
		goto out;
	}
	for (size_t i = 0; i < plan->nprojects; i++) {
		fetchq_push_new(eng, id, (int)i, "zip", sources[i], plan->projects[i].prefix,
		    upload_digest, NULL, NULL, 0);
	}
	intake_share_eval(eng, id, upload_digest);
	engine_changed(eng, id);
	log_info("engine: accepted evaluation %s: ZIP with %zu projects", id, plan->nprojects);
out:
	if (ids != NULL)
		for (size_t i = 0; plan != NULL && i < plan->nprojects; i++) {
			free(ids[i]);
			free(sources[i]);
		}
	free(ids);
	free(sources);
	free(projects);
	free(root);
	fetch_zip_plan_free(plan);
	return status;
}

int
intake_submit_git(struct engine *eng, const char *const *urls, size_t n,
    const char *token, json_t *settings, char id[37], char *err, size_t errlen)
{
	struct store_project_new *projects = NULL;
	struct fetch_git_opts o;
	char **ids = NULL, **sources = NULL;
	int status = 0, any_secret = token != NULL;

	if (n > (size_t)eng->cfg->max_projects) {
		snprintf(err, errlen, "%zu projects is more than the limit of %ld", n,
		    eng->cfg->max_projects);
		return 413;
	}
	if (intake_trust_check(settings, 0, err, errlen) < 0)
		return 400;
	memset(&o, 0, sizeof(o));
	o.allow_file_urls = eng->cfg->allow_file_urls != 0;
	o.allowed_hosts = (const char *const *)eng->git_hosts;
	projects = xcalloc(n, sizeof(*projects));
	ids = xcalloc(n, sizeof(*ids));
	sources = xcalloc(n, sizeof(*sources));
	for (size_t i = 0; i < n; i++) {
		char e[512];
		int had = 0;
		if (fetch_git_check_url(urls[i], &o, e, sizeof(e)) < 0) {
			sources[i] = intake_strip_credentials(urls[i], &had);
			snprintf(err, errlen, "project %zu (%s): %s", i + 1, sources[i], e);
			status = 400;
			goto out;
		}
		sources[i] = intake_strip_credentials(urls[i], &had);
		any_secret |= had;
		ids[i] = layout_repo_name(sources[i]);
		if (ids[i] == NULL)
			ids[i] = xasprintf("project-%zu", i + 1);
	}
	layout_dedupe_ids(ids, n);
	for (size_t i = 0; i < n; i++) {
		projects[i].project_id = ids[i];
		projects[i].source = sources[i];
	}
	/* Clones are sized only once fetched: a node already past its budget refuses. */
	if (gc_budget_make_room(eng, 0, err, errlen) < 0) {
		status = 507;
		goto out;
	}
	util_uuid4(id);
	fetchq_reserve(eng, id, n);
	intake_default_isolation(eng, settings);
	if (store_eval_create(eng->st, id, util_now(), "git", eng->address, settings,
	    any_secret, NULL, projects, n) < 0) {
		snprintf(err, errlen, "cannot store the evaluation");
		fetchq_unreserve(eng, id, n);
		status = 500;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		fetchq_push_new(eng, id, (int)i, "git", sources[i], NULL, NULL, urls[i], token,
		    any_secret);
	}
	intake_share_eval(eng, id, NULL);
	engine_changed(eng, id);
	log_info("engine: accepted evaluation %s: %zu git repositories", id, n);
out:
	for (size_t i = 0; i < n; i++) {
		free(ids[i]);
		free(sources[i]);
	}
	free(ids);
	free(sources);
	free(projects);
	return status;
}

int
intake_submit_org(struct engine *eng, const struct intake_org *org, const char *token,
    json_t *settings, char id[37], char *err, size_t errlen)
{
	struct fetch_github_query q = {
		.api = eng->cfg->github_api, .token = token, .org = org->organization,
		.prefix = org->prefix, .include_archived = org->include_archived,
		.include_templates = org->include_templates, .max = (size_t)eng->cfg->max_projects,
	};
	char **urls = NULL;
	size_t n = 0;
	int status;

	status = fetch_github_list(&q, &urls, &n, err, errlen);
	if (status == 0)
		status = intake_submit_git(eng, (const char *const *)urls, n, token, settings, id,
		    err, errlen);
	fetch_github_free(urls, n);
	return status;
}
