/*
 * test_sched.c - coordinator choice, longest-first order, slot-based
 * assignment: exact answers.
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
test_order(void **state)
{
	struct sched_module m[] = {
		{ "0/tests/test_c.py", -1 }, { "0/tests/test_a.py", 2.0 },
		{ "0/tests/test_b.py", -1 }, { "1/tests/test_x.py", 9.5 },
		{ "1/tests/test_y.py", 2.0 },
	};
	const char *want[] = { "1/tests/test_x.py", "0/tests/test_a.py", "1/tests/test_y.py",
		"0/tests/test_b.py", "0/tests/test_c.py" };

	(void)state;
	sched_order(m, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(m[i].key, want[i]);
}

static void
test_assign(void **state)
{
	struct sched_node nodes[] = { { "a", 1 }, { "b", 3 }, { "c", 0 } };
	struct sched_assignment out[10];
	size_t n;

	(void)state;
	n = sched_assign(6, nodes, 3, out, 10);
	assert_int_equal(n, 4); /* only 4 free slots */
	/* Most free slots first: b, b (2 left vs a 1: b), then a/b tie -> a, then b. */
	assert_int_equal(out[0].node, 1);
	assert_int_equal(out[1].node, 1);
	assert_int_equal(out[2].node, 0);
	assert_int_equal(out[3].node, 1);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(out[i].module, i);
	assert_int_equal(nodes[0].free_slots + nodes[1].free_slots + nodes[2].free_slots, 0);
	/* Nothing free: nothing assigned; a cap on assignments holds. */
	assert_int_equal(sched_assign(3, nodes, 3, out, 10), 0);
	nodes[2].free_slots = 5;
	assert_int_equal(sched_assign(3, nodes, 3, out, 2), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coordinator),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_assign),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
