/*
 * fuzz_zip_intake.c - libFuzzer target: ZIP intake (scan, then extract every
 * planned project into a scratch folder that is removed after each input).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "fetch/fetch_zip.h"
#include "fetch/layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[] = "/tmp/meshtest-fuzz-XXXXXX";
	struct fetch_zip_plan *plan = NULL;
	struct fetch_limits lim;
	char err[512], *zip, *dest;
	FILE *f;

	log_set_level(LOG_ERROR);
	if (mkdtemp(dir) == NULL)
		return 0;
	zip = xasprintf("%s/in.zip", dir);
	f = fopen(zip, "wb");
	if (f != NULL) {
		fwrite(data, 1, size, f);
		fclose(f);
	}
	fetch_limits_default(&lim);
	lim.max_total_bytes = 8 << 20;
	lim.max_file_bytes = 4 << 20;
	if (fetch_zip_scan(zip, "root", &lim, &plan, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < plan->nprojects; i++) {
			char **w = NULL;
			size_t nw = 0;
			dest = xasprintf("%s/p%zu", dir, i);
			fetch_zip_extract(zip, plan->projects[i].prefix, dest, &lim, &w, &nw,
			    err, sizeof(err));
			layout_strv_free(w, nw);
			free(dest);
		}
		fetch_zip_plan_free(plan);
	}
	util_rm_rf(dir);
	free(zip);
	return 0;
}
