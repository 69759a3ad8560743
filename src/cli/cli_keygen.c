/*
 * cli_keygen.c - meshtest keygen: print a fresh random 32-byte key as 64 hex
 * characters, for the cluster key and the API token. Main thread; no state.
 */
#include "cli/cli.h"

#include <string.h>

#include "core/util.h"

#define CLI_KEYGEN_BYTES 32

int
cli_keygen_main(int argc, char **argv)
{
	char key[2 * CLI_KEYGEN_BYTES + 1];

	if (argc > 1 && (strcmp(argv[1], "-h") == 0 ||
			 strcmp(argv[1], "--help") == 0)) {
		printf("usage: meshtest keygen\n"
		       "  print a random 32-byte key as 64 hex characters\n");
		return CLI_EXIT_OK;
	}
	if (argc > 1) {
		fprintf(stderr, "meshtest: keygen takes no arguments\n"
			"usage: meshtest keygen\n");
		return CLI_EXIT_USAGE;
	}
	util_random_hex(key, CLI_KEYGEN_BYTES);
	printf("%s\n", key);
	fflush(stdout);
	return CLI_EXIT_OK;
}
