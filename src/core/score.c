/*
 * score.c - grades and percentages (see score.h). Pure and thread-safe.
 */
#include "core/score.h"

double
score_percent(long part, long whole)
{
	if (whole <= 0 || part <= 0)
		return 0.0;
	return 100.0 * (double)part / (double)whole;
}

double
score_grade(long passed, long failed)
{
	if (passed <= 0 || passed + failed <= 0)
		return 0.0;
	return 20.0 * (double)passed / (double)(passed + failed);
}
