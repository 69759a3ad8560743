/*
 * warm.h - the slots' warm workers, as the engine's slot threads see them
 * (the runs themselves go through runner_run_batch).
 */
#ifndef MESHTEST_WARM_H
#define MESHTEST_WARM_H

/* In the slot's thread: stop its workers idle for five minutes. */
void warm_slot_idle(int slot);
/* In the slot's thread, before it ends: stop its workers. */
void warm_slot_close(int slot);
/* Warm workers the slot has now (any thread). */
int warm_count(int slot);
/*
 * Remove every slot's pristine copy of the project with this digest (a
 * deleted evaluation's). Any thread, but only while no slot runs it.
 */
void warm_drop_copies(const char *digest);

#endif
