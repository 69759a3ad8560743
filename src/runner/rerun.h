/*
 * rerun.h - reruns of failed modules: the decision and the merged result.
 */
#ifndef MESHTEST_RERUN_H
#define MESHTEST_RERUN_H

#include <jansson.h>

/*
 * 1 when a result is worth a rerun: finished, timeout or crashed with
 * failed > 0, and not a set-up or configuration error (those fail the same
 * way again).
 */
int rerun_wanted(json_t *result);

/*
 * The result to record after reruns: the last run (a new reference) with
 * "runs": [{"outcome", "passed", "failed", "skipped", "duration"}] for every
 * run in order, "flaky": true when the first run failed and the last did
 * not, and "first_result": the first run's counts, outcome, message and
 * tests. runs holds every run's result (at least one); with one run it is
 * returned as it is.
 */
json_t *rerun_merge(json_t *runs);

#endif
