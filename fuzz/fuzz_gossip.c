/*
 * fuzz_gossip.c - libFuzzer target: membership messages (POST
 * /network/gossip bodies) fed to the SWIM state machine, then a tick.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/membership.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct membership_params p;
	struct membership *m = NULL;
	struct membership_action acts[8];
	json_t *msg, *reply = NULL;
	size_t n;

	msg = json_loadb((const char *)data, size, 0, NULL);
	if (msg == NULL)
		return 0;
	membership_params_default(&p);
	if (membership_new("127.0.0.1:7000", &p, 1000, 10.0, &m) == 0) {
		membership_add_seed(m, "127.0.0.1:7001");
		membership_handle(m, msg, 11.0, &reply);
		json_decref(reply);
		reply = NULL;
		/* The same message twice, later: updates, refutations, dead members. */
		membership_handle(m, msg, 20.0, &reply);
		json_decref(reply);
		n = membership_tick(m, 30.0, acts, 8);
		for (size_t i = 0; i < n; i++)
			membership_action_clear(&acts[i]);
		json_decref(membership_members(m));
		membership_free(m);
	}
	json_decref(msg);
	return 0;
}
