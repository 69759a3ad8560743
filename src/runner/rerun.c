/*
 * rerun.c - the reruns of a failed module (the evaluation's "reruns"
 * setting): which results deserve one, and the result that is recorded
 * after them (the last run counts; every run is kept). Pure: no I/O, no
 * globals; runner.c runs the reruns themselves.
 */
#include "runner/rerun.h"

#include <string.h>

int
rerun_wanted(json_t *result)
{
	const char *o = json_string_value(json_object_get(result, "outcome"));

	if (o == NULL || json_is_true(json_object_get(result, "setup_failed")) ||
	    json_is_true(json_object_get(result, "config_error")))
		return 0;
	if (strcmp(o, "finished") != 0 && strcmp(o, "timeout") != 0 && strcmp(o, "crashed") != 0)
		return 0;
	return json_integer_value(json_object_get(result, "failed")) > 0;
}

json_t *
rerun_merge(json_t *runs)
{
	size_t n = json_array_size(runs), i;
	json_t *first = json_array_get(runs, 0), *last = json_array_get(runs, n - 1);
	json_t *out, *attempts = json_array(), *r, *slim;
	static const char *const keep[] = { "outcome", "message", "passed", "failed",
					    "skipped", "errors", "duration", "tests" };

	if (n == 0) {
		json_decref(attempts);
		return NULL;
	}
	out = json_deep_copy(last);
	if (n == 1) {
		json_decref(attempts);
		return out;
	}
	json_array_foreach(runs, i, r) {
		json_array_append_new(attempts, json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}",
			"outcome", json_object_get(r, "outcome"),
			"passed", json_object_get(r, "passed"),
			"failed", json_object_get(r, "failed"),
			"skipped", json_object_get(r, "skipped"),
			"duration", json_object_get(r, "duration")));
	}
	slim = json_object();
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		json_t *v = json_object_get(first, keep[i]);
		if (v != NULL)
			json_object_set(slim, keep[i], v);
	}
	json_object_set_new(out, "runs", attempts);
	json_object_set_new(out, "first_result", slim);
	json_object_set_new(out, "flaky", json_boolean(
		json_integer_value(json_object_get(first, "failed")) > 0 &&
		json_integer_value(json_object_get(last, "failed")) == 0));
	return out;
}
