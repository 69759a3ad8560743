/*
 * fuzz_api_decode.c - libFuzzer target: POST /evaluation JSON bodies.
 */
#include <stddef.h>
#include <stdint.h>

#include "api/api_evaluation.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_git_submission s;
	char err[512];

	if (api_evaluation_decode((const char *)data, size, &s, err, sizeof(err)) == 0)
		api_git_submission_free(&s);
	return 0;
}
