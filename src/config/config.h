/*
 * config.h - the node's options: one table of flag, environment variable,
 * default, bounds and help (config.c), parsed once at start-up.
 *
 * Precedence: command-line flag, then environment, then default. Secrets are
 * read from files or the environment only, never from the command line.
 */
#ifndef MESHTEST_CONFIG_H
#define MESHTEST_CONFIG_H

#include <stdint.h>
#include <stdio.h>

struct config {
	char *listen;           /* host:port the HTTP server binds */
	char *advertise;        /* host:port peers use to reach us */
	char *allowed_hosts;    /* names browsers may use for us, beside IPs (comma-separated) */
	char *seeds;            /* comma-separated host:port, may be empty */
	char *data_dir;
	char *work_dir;         /* environments and run folders; NULL: see engine */
	long slots;             /* modules run in parallel */
	long fetchers;          /* projects fetched in parallel */
	char *python;           /* interpreter for environments */
	double module_timeout;  /* seconds, default per module */
	char *log_level;
	char *cluster_key_file;
	char *api_token_file;
	long max_upload_mb;     /* cap on a request body */
	long max_projects;      /* cap on projects per evaluation */
	long output_kb;         /* captured stdout/stderr per module and stream */
	long uid_base;          /* first uid of the slot users; 0: derive from data dir */
	long allow_file_urls;   /* 1: accept file:// git URLs (tests only) */
	char *git_hosts;        /* comma-separated allowed git hosts; empty = any */
	char *sandbox;          /* auto, bwrap or none (checked by runner_init) */
	char *isolation;        /* project or module: for evaluations that do not say */
	char *github_api;       /* base URL of the GitHub REST API, without a trailing / */
	char *max_disk;         /* --max-disk as given (SIZE), NULL: the default (engine) */
	long retention_days;    /* 0: keep evaluations' files forever */
	/* TLS: all three PEM files or none (NULL) */
	char *tls_cert;
	char *tls_key;
	char *tls_ca;

	/* Derived at load time, not options. */
	char *cluster_key;      /* from the file or MESHTEST_CLUSTER_KEY */
	char *api_token;        /* from the file or MESHTEST_API_TOKEN */
	int listen_all;         /* listening beyond loopback */
	uint64_t max_disk_bytes;  /* --max-disk in bytes; 0: the default, set at start */
};

/*
 * Fill cfg from argv (the words after "serve") and the environment.
 * Returns 0, 1 when --help was printed, or -EINVAL with a message in err.
 */
int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);
void config_free(struct config *cfg);
void config_usage(FILE *fp);

/*
 * A size as --max-disk takes it: a number (decimals allowed) with an
 * optional unit K, M, G or T (powers of 1024; "B", "iB" after it and any
 * case accepted), bytes without one: "500M", "20G", "1.5g", "12MiB". 0 or
 * -EINVAL (not a size, or past 2^63 bytes).
 */
int config_parse_size(const char *s, uint64_t *out);

/* Split "host:port"; -EINVAL when it is not of that form (port 1..65535). */
int config_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
