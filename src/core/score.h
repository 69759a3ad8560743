/*
 * score.h - grades and percentages by SPEC's counting rules. Pure.
 *
 * Skipped tests are in no denominator; anything with no counted tests scores
 * 0, never NaN.
 */
#ifndef MESHTEST_SCORE_H
#define MESHTEST_SCORE_H

/* 100 * part / whole, or 0 when whole is 0. */
double score_percent(long part, long whole);
/* 20 * passed / (passed + failed), or 0 when nothing counted. */
double score_grade(long passed, long failed);

#endif
