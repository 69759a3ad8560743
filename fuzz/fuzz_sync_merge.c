/*
 * fuzz_sync_merge.c - libFuzzer target: replicated evaluation documents from
 * other nodes (POST /evaluation/sync_result, anti-entropy pulls) merged into a
 * store, then read back as the public documents.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *st;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc;

	if (st == NULL) {
		char dir[] = "/tmp/meshtest-fuzz-store-XXXXXX";
		char *path;
		log_set_level(LOG_ERROR);
		if (mkdtemp(dir) == NULL)
			abort();
		path = xasprintf("%s/f.db", dir);
		if (store_open(path, &st) < 0)
			abort();
		free(path);
	}
	doc = json_loadb((const char *)data, size, 0, NULL);
	if (doc == NULL)
		return 0;
	if (store_sync_merge(st, doc) > 0) {
		const char *id = json_string_value(json_object_get(doc, "id"));
		json_t *a = store_eval_status(st, id, 1e9);
		json_t *b = store_eval_results(st, id, 1e9);
		json_t *c = store_sync_export(st, id);
		json_decref(a);
		json_decref(b);
		json_decref(c);
	}
	json_decref(doc);
	return 0;
}
