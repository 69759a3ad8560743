/*
 * fuzz_reqs.c - libFuzzer target: requirement files. The input is the
 * root file, and every include it names reads the input again from the
 * first newline on, so continuations, options, includes and caps all meet
 * arbitrary bytes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "runner/reqs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	const uint8_t *data;
	size_t size;
};

static int
fuzz_read(void *ctx, const char *path, char **text, size_t *len)
{
	const struct input *in = ctx;
	const uint8_t *p = in->data;
	size_t n = in->size;

	if (strcmp(path, "requirements.txt") != 0) {
		const uint8_t *nl = memchr(p, '\n', n);
		if (nl == NULL || (path[0] & 1))
			return -ENOENT;
		n -= (size_t)(nl + 1 - p);
		p = nl + 1;
	}
	*text = xmalloc(n + 1);
	memcpy(*text, p, n);
	(*text)[n] = '\0';
	*len = n;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct reqs r;
	char err[256];

	if (reqs_parse(&r, "requirements.txt", fuzz_read, &in, err, sizeof(err)) == 0) {
		free(reqs_file_text(&r));
		free(reqs_constraints_text(&r));
		for (size_t i = 0; i < r.nentries; i++)
			free(reqs_entry_text(&r, i));
	}
	reqs_free(&r);
	memset(&r, 0, sizeof(r));
	reqs_add_lines(&r, "pyproject.toml", (const char *)data, size);
	reqs_free(&r);
	return 0;
}
