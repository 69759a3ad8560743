/*
 * test_sched.c - the scheduling policy: coordinator choice, fair share between
 * evaluations, longest-first order, batches for one slot: exact answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sched/sched.h"

static void
test_coordinator(void **state)
{
	const char *alive[] = { "10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000" };
	const char *rev[] = { "10.0.0.3:7000", "10.0.0.2:7000", "10.0.0.1:7000" };
	const char *id = "11111111-2222-4333-8444-555555555555";
	const char *c, *c2;
	int seen[3] = { 0, 0, 0 };

	(void)state;
	/* The accepting node while it lives. */
	assert_string_equal(sched_coordinator(id, "10.0.0.2:7000", alive, 3), "10.0.0.2:7000");
	/* Else the same successor whatever the order of the view. */
	c = sched_coordinator(id, "10.0.0.9:7000", alive, 3);
	c2 = sched_coordinator(id, "10.0.0.9:7000", rev, 3);
	assert_non_null(c);
	assert_string_equal(c, c2);
	/* Removing a node that is not the successor does not move it. */
	{
		const char *without[2];
		size_t k = 0;
		for (size_t i = 0; i < 3; i++)
			if (strcmp(alive[i], c) != 0 && k < 1)
				without[k++] = alive[i];
		without[k++] = c;
		assert_string_equal(sched_coordinator(id, NULL, without, 2), c);
	}
	assert_null(sched_coordinator(id, "x", NULL, 0));
	/* Successors spread over the nodes for many evaluations. */
	for (int i = 0; i < 300; i++) {
		char e[37];
		snprintf(e, sizeof(e), "11111111-2222-4333-8444-%012d", i);
		c = sched_coordinator(e, NULL, alive, 3);
		for (int k = 0; k < 3; k++)
			if (strcmp(c, alive[k]) == 0)
				seen[k]++;
	}
	for (int k = 0; k < 3; k++)
		assert_true(seen[k] > 50);
}

static void
test_pick_eval(void **state)
{
	struct sched_eval e[] = {
		{ "b", 2.0, 5, 1 }, { "a", 2.0, 5, 1 }, { "c", 1.0, 5, 3 }, { "d", 0.5, 0, 0 },
	};

	(void)state;
	/* fewest running first; equal: oldest, then id; nothing pending: never */
	assert_int_equal(sched_pick_eval(e, 4), 1);
	e[1].running = 4;
	assert_int_equal(sched_pick_eval(e, 4), 0);
	e[0].pending = 0;
	assert_int_equal(sched_pick_eval(e, 4), 2);
	e[2].pending = 0;
	e[1].pending = 0;
	assert_int_equal(sched_pick_eval(e, 4), -1);
	assert_int_equal(sched_pick_eval(e, 0), -1);
}

static void
test_order(void **state)
{
	struct sched_module m[] = {
		{ 0, "tests/test_c.py", 0, NULL, 0, 0 }, { 0, "tests/test_a.py", 2.0, NULL, 0, 0 },
		{ 0, "tests/test_b.py", -1, NULL, 0, 0 }, { 1, "tests/test_x.py", 9.5, NULL, 0, 0 },
		{ 1, "tests/test_y.py", 2.0, NULL, 0, 0 },
	};
	const char *want[] = { "tests/test_x.py", "tests/test_a.py", "tests/test_y.py",
		"tests/test_b.py", "tests/test_c.py" };
	size_t idx[5];

	(void)state;
	sched_order(m, 5, idx);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(m[idx[i]].key, want[i]);

	/*
	 * Among equal estimates the project with the most pending modules leads:
	 * the two left of project 0 wait behind project 1's eight, so that they
	 * do not take a slot while a whole project waits.
	 */
	struct sched_module eq[] = {
		{ 0, "p0/test_a.py", 0.1, NULL, 0, 2 }, { 1, "p1/test_a.py", 0.1, NULL, 0, 8 },
		{ 2, "p2/test_a.py", 0.1, NULL, 0, 8 }, { 3, "p3/test_a.py", 0.5, NULL, 0, 1 },
	};
	const char *want_eq[] = { "p3/test_a.py", "p1/test_a.py", "p2/test_a.py", "p0/test_a.py" };
	sched_order(eq, 4, idx);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(eq[idx[i]].key, want_eq[i]);
}

/* Batch of modules as their keys, joined by spaces. */
static void
batch_keys(const struct sched_module *m, size_t n, int slots, size_t max, char *out,
	   size_t outlen)
{
	size_t idx[64], k = sched_batch(m, n, 0, slots, max, idx);

	out[0] = '\0';
	for (size_t i = 0; i < k; i++) {
		strncat(out, m[idx[i]].key, outlen - strlen(out) - 1);
		if (i + 1 < k)
			strncat(out, " ", outlen - strlen(out) - 1);
	}
}

static void
test_batch(void **state)
{
	/* ten equal modules of two projects */
	struct sched_module eq[10];
	char keys[10][16], got[512];

	(void)state;
	for (int i = 0; i < 10; i++) {
		snprintf(keys[i], sizeof(keys[i]), "m%d", i);
		eq[i] = (struct sched_module){ i < 6 ? 0 : 1, keys[i], 1.0, NULL, 0, 0 };
	}
	/* one slot: all the work, but of one project only (chosen longest
	 * first, run in pytest's order of the files) */
	batch_keys(eq, 10, 1, 64, got, sizeof(got));
	assert_string_equal(got, "m0 m1 m2 m3 m4 m5");
	/* four slots: a quarter of the work each, rounded up (2.5: three) */
	batch_keys(eq, 10, 4, 64, got, sizeof(got));
	assert_string_equal(got, "m0 m4 m5");
	/* eight slots: 1.25; two would be past 1.5 times it */
	batch_keys(eq, 10, 8, 64, got, sizeof(got));
	assert_string_equal(got, "m0");
	/* seven slots: 1.43, two (the last module short of the share is taken) */
	batch_keys(eq, 10, 7, 64, got, sizeof(got));
	assert_string_equal(got, "m0 m5");
	/* twelve slots: 0.83, one */
	batch_keys(eq, 10, 12, 64, got, sizeof(got));
	assert_string_equal(got, "m0");
	/* six slots: 1.67, two */
	batch_keys(eq, 10, 6, 64, got, sizeof(got));
	assert_string_equal(got, "m0 m5");
	/* as many slots as modules: each module alone */
	batch_keys(eq, 10, 10, 64, got, sizeof(got));
	assert_string_equal(got, "m0");
	/* the cap */
	batch_keys(eq, 10, 1, 2, got, sizeof(got));
	assert_string_equal(got, "m0 m5");

	/* two long modules of one project, two slots: not queued in one */
	struct sched_module two[] = {
		{ 0, "more", 17.0, NULL, 0, 0 }, { 0, "recipes", 7.0, NULL, 0, 0 },
		{ 1, "i1", 1.0, NULL, 0, 0 },
	};
	batch_keys(two, 3, 2, 64, got, sizeof(got));    /* share 12.5: 17 is past it */
	assert_string_equal(got, "more");

	/* two long modules under the share: not both in one slot (share 13.25) */
	struct sched_module longs[] = {
		{ 0, "a12", 12.0, NULL, 0, 0 }, { 0, "a11", 11.0, NULL, 0, 0 },
		{ 1, "b1", 10.0, NULL, 0, 0 }, { 1, "b2", 10.0, NULL, 0, 0 },
		{ 1, "b3", 10.0, NULL, 0, 0 },
	};
	batch_keys(longs, 5, 4, 64, got, sizeof(got));
	assert_string_equal(got, "a12");

	/* a long module goes alone; short ones gather behind another head */
	struct sched_module mix[] = {
		{ 0, "long", 20.0, NULL, 0, 0 }, { 0, "s1", 0.5, NULL, 0, 0 }, { 0, "s2", 0.5, NULL, 0, 0 },
		{ 0, "s3", 0.5, NULL, 0, 0 }, { 1, "t1", 0.5, NULL, 0, 0 },
	};
	batch_keys(mix, 5, 2, 64, got, sizeof(got));
	assert_string_equal(got, "long");
	/* half of 2 s on two slots: two modules of 0.5 s */
	batch_keys(mix + 1, 4, 2, 64, got, sizeof(got));
	assert_string_equal(got, "s1 s3");
	/* the longest leads; the shortest of its project fill up to the share */
	struct sched_module fill[] = {
		{ 0, "a", 1.0, NULL, 0, 0 }, { 0, "b", 0.1, NULL, 0, 0 }, { 0, "c", 0.1, NULL, 0, 0 },
		{ 0, "d", 1.0, NULL, 0, 0 }, { 1, "x", 0.05, NULL, 0, 0 }, { 0, "e", 1.0, NULL, 0, 0 },
		{ 0, "f", 1.0, NULL, 0, 0 },
	};
	batch_keys(fill, 7, 2, 64, got, sizeof(got));   /* share 4.25 / 2 = 2.1: f reaches it */
	assert_string_equal(got, "a b c f");
	batch_keys(fill, 7, 4, 64, got, sizeof(got));   /* share 1.06: c reaches it */
	assert_string_equal(got, "a c");

	/* same import name (test_x.py in two folders without packages): never together */
	struct sched_module clash[12];
	char ckeys[12][16];
	clash[0] = (struct sched_module){ 0, "a/test_x.py", 1.0, "test_x", 0, 0 };
	clash[1] = (struct sched_module){ 0, "b/test_x.py", 0.1, "test_x", 0, 0 };
	clash[2] = (struct sched_module){ 0, "m.py", 0.2, "m", 0, 0 };
	for (int i = 3; i < 12; i++) {
		snprintf(ckeys[i], sizeof(ckeys[i]), "k%d.py", i);
		clash[i] = (struct sched_module){ 0, ckeys[i], 1.0, ckeys[i], 0, 0 };
	}
	/* share 10.3 / 2 = 5.15: the head, then from the short end m and four more (b/test_x.py is skipped) */
	batch_keys(clash, 12, 2, 64, got, sizeof(got));
	assert_string_equal(got, "k6.py k7.py k8.py k9.py m.py a/test_x.py");

	/* measured short modules gather up to half a second, whatever the share */
	for (int i = 0; i < 10; i++) {
		eq[i].est = 0.04;
		eq[i].measured = 1;
		eq[i].project = 0;
	}
	batch_keys(eq, 10, 8, 64, got, sizeof(got));
	assert_string_equal(got, "m0 m1 m2 m3 m4 m5 m6 m7 m8 m9");
	eq[3].measured = 0;     /* one guess among them: balance first (share 0.05: one) */
	batch_keys(eq, 10, 8, 64, got, sizeof(got));
	assert_string_equal(got, "m0");

	/* modules of projects still being fetched count at the others' mean */
	{
		size_t idx[64], k;
		k = sched_batch(eq, 10, 0, 16, 64, idx);
		assert_int_equal(k, 1);                     /* 0.4 s / 16 < one module */
		k = sched_batch(eq, 10, 30, 16, 64, idx);
		assert_int_equal(k, 3);                     /* 1.6 s / 16: 0.1 s, three of 0.04 s */
	}

	/* nothing, or nothing allowed */
	assert_int_equal(sched_batch(eq, 0, 0, 1, 64, NULL), 0);
	assert_int_equal(sched_batch(eq, 10, 0, 1, 0, NULL), 0);
}

static void
test_path_order(void **state)
{
	(void)state;
	/* a folder's own files before those of the folders below it */
	assert_true(sched_path_cmp("tests/test_z.py", "tests/a/test_b.py") < 0);
	assert_true(sched_path_cmp("tests/a/test_b.py", "tests/test_z.py") > 0);
	assert_true(sched_path_cmp("test_z.py", "tests/test_a.py") < 0);
	/* by name, folder by folder; a shorter name first */
	assert_true(sched_path_cmp("tests/test_more.py", "tests/test_recipes.py") < 0);
	assert_true(sched_path_cmp("a/test_x.py", "b/test_x.py") < 0);
	assert_true(sched_path_cmp("ab/t.py", "a/t.py") > 0);
	assert_true(sched_path_cmp("tests/t.py", "tests/t.pyx") < 0);
	assert_int_equal(sched_path_cmp("tests/t.py", "tests/t.py"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coordinator),
		cmocka_unit_test(test_pick_eval),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_path_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
