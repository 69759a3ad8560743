/*
 * config.c - the option table and its parser.
 *
 * Every option is one row of config_options[]: long flag, environment
 * variable, type, default, bounds and help. Adding an option is adding a row
 * (and a field to struct config). Runs once on the main thread at start-up.
 */
#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

enum opt_type { OPT_STR, OPT_LONG, OPT_DOUBLE, OPT_BOOL };

struct config_option {
	const char *flag;       /* without the leading "--" */
	const char *env;        /* environment variable or NULL */
	enum opt_type type;
	size_t offset;          /* into struct config */
	const char *def;        /* default as text, NULL for none */
	double min, max;        /* bounds for numbers */
	const char *help;
};

#define OFF(f) offsetof(struct config, f)
#define CONFIG_MAX_DISK_MIN (1ULL << 20)   /* a smaller budget holds no project */

static const struct config_option config_options[] = {
	{ "listen", NULL, OPT_STR, OFF(listen), NULL, 0, 0,
	  "HOST:PORT to listen on (default 127.0.0.1:7000; PORT sets the port, "
	  "with HOST_IP or NODE_ADDRESS set it listens on all interfaces)" },
	{ "advertise", NULL, OPT_STR, OFF(advertise), NULL, 0, 0,
	  "HOST:PORT peers use to reach this node (NODE_ADDRESS, or HOST_IP:PORT; "
	  "default: the listen address)" },
	{ "seeds", "SEED_NODES", OPT_STR, OFF(seeds), "", 0, 0,
	  "comma-separated HOST:PORT of nodes to join" },
	{ "data-dir", "MESHTEST_DATA_DIR", OPT_STR, OFF(data_dir), "./meshtest-data", 0, 0,
	  "folder for the database, projects and environments" },
	{ "work-dir", "MESHTEST_WORK_DIR", OPT_STR, OFF(work_dir), NULL, 0, 0,
	  "folder for environments and module runs, reachable by the slot users"
	  " (default: the data folder, or /var/tmp/meshtest-<hash> when that is private)" },
	{ "slots", "MESHTEST_SLOTS", OPT_LONG, OFF(slots), "0", 0, 256,
	  "test modules run in parallel (default: number of cores)" },
	{ "python", "MESHTEST_PYTHON", OPT_STR, OFF(python), "/usr/bin/python3", 0, 0,
	  "Python interpreter for project environments" },
	{ "module-timeout", "MESHTEST_MODULE_TIMEOUT", OPT_DOUBLE, OFF(module_timeout), "300", 1, 86400,
	  "seconds a test module may run (an evaluation may set its own)" },
	{ "log-level", "MESHTEST_LOG_LEVEL", OPT_STR, OFF(log_level), "info", 0, 0,
	  "error, warn, info or debug" },
	{ "cluster-key-file", "MESHTEST_CLUSTER_KEY_FILE", OPT_STR, OFF(cluster_key_file), NULL, 0, 0,
	  "file holding the cluster key (or set MESHTEST_CLUSTER_KEY)" },
	{ "api-token-file", "MESHTEST_API_TOKEN_FILE", OPT_STR, OFF(api_token_file), NULL, 0, 0,
	  "file holding the API token (or set MESHTEST_API_TOKEN)" },
	{ "tls-cert", "MESHTEST_TLS_CERT", OPT_STR, OFF(tls_cert), NULL, 0, 0,
	  "PEM certificate of this node, naming its advertised address (with --tls-key and"
	  " --tls-ca: serve https only, mutual TLS between nodes)" },
	{ "tls-key", "MESHTEST_TLS_KEY", OPT_STR, OFF(tls_key), NULL, 0, 0,
	  "PEM private key of --tls-cert" },
	{ "tls-ca", "MESHTEST_TLS_CA", OPT_STR, OFF(tls_ca), NULL, 0, 0,
	  "PEM certificate of the cluster CA: peers must present one it signed" },
	{ "max-upload-mb", "MESHTEST_MAX_UPLOAD_MB", OPT_LONG, OFF(max_upload_mb), "512", 1, 65536,
	  "largest request body accepted, in MiB" },
	{ "max-projects", "MESHTEST_MAX_PROJECTS", OPT_LONG, OFF(max_projects), "1000", 1, 100000,
	  "most projects in one evaluation" },
	{ "output-kb", "MESHTEST_OUTPUT_KB", OPT_LONG, OFF(output_kb), "64", 1, 65536,
	  "stdout and stderr kept per module and stream, in KiB" },
	{ "uid-base", "MESHTEST_UID_BASE", OPT_LONG, OFF(uid_base), "0", 0, 2000000000,
	  "first uid of the unprivileged slot users (default: derived from the data folder)" },
	{ "allow-file-urls", "MESHTEST_ALLOW_FILE_URLS", OPT_BOOL, OFF(allow_file_urls), "0", 0, 1,
	  "accept file:// git URLs (for tests only)" },
	{ "allowed-hosts", "MESHTEST_ALLOWED_HOSTS", OPT_STR, OFF(allowed_hosts), "", 0, 0,
	  "comma-separated names a browser may reach this node by, beside IP addresses,"
	  " localhost and the advertised name (against DNS rebinding)" },
	{ "git-hosts", "MESHTEST_GIT_HOSTS", OPT_STR, OFF(git_hosts), "", 0, 0,
	  "comma-separated git hosts allowed (default: any)" },
	{ "sandbox", "MESHTEST_SANDBOX", OPT_STR, OFF(sandbox), "auto", 0, 0,
	  "auto (bubblewrap when it works), bwrap (refuse to start without it) or none" },
	{ "github-api", "MESHTEST_GITHUB_API", OPT_STR, OFF(github_api), "https://api.github.com",
	  0, 0, "base URL of the GitHub REST API, for organization submissions (GitHub"
	  " Enterprise: https://HOST/api/v3)" },
	{ "fetchers", "MESHTEST_FETCHERS", OPT_LONG, OFF(fetchers), "8", 1, 256,
	  "projects fetched at once (clones, unpacking, set-up, environments)" },
	{ "isolation", "MESHTEST_ISOLATION", OPT_STR, OFF(isolation), "project", 0, 0,
	  "project (modules of a project may share a pytest session) or module (each"
	  " module alone), for evaluations that do not choose" },
	{ "max-disk", "MESHTEST_MAX_DISK", OPT_STR, OFF(max_disk), NULL, 0, 0,
	  "disk budget for blobs, projects, work folders and environments, e.g. 500M or 20G"
	  " (default: the smaller of 20G and 80% of what those folders hold plus the free"
	  " space of the data folder's file system, at start)" },
	{ "retention-days", "MESHTEST_RETENTION_DAYS", OPT_LONG, OFF(retention_days), "0", 0,
	  36500, "remove the files of evaluations finished more than N days ago (their"
	  " results stay); 0 keeps them" },
};

#define NOPTIONS (sizeof(config_options) / sizeof(config_options[0]))

void
config_usage(FILE *fp)
{
	fprintf(fp, "usage: meshtest serve [options]\n\noptions (flag / environment):\n");
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct config_option *o = &config_options[i];
		fprintf(fp, "  --%-18s %-26s %s\n", o->flag, o->env ? o->env : "",
		    o->help);
	}
	fprintf(fp, "  --help\n");
}

static int
config_set(struct config *cfg, const struct config_option *o, const char *val,
    char *err, size_t errlen)
{
	char *base = (char *)cfg + o->offset;
	char *end = NULL;

	switch (o->type) {
	case OPT_STR: {
		char **p = (char **)(void *)base;
		free(*p);
		*p = xstrdup(val);
		return 0;
	}
	case OPT_BOOL:
		if (strcmp(val, "1") == 0 || strcmp(val, "true") == 0 ||
		    strcmp(val, "yes") == 0) {
			*(long *)(void *)base = 1;
			return 0;
		}
		if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0 ||
		    strcmp(val, "no") == 0 || *val == '\0') {
			*(long *)(void *)base = 0;
			return 0;
		}
		snprintf(err, errlen, "--%s takes true or false, not '%s'", o->flag, val);
		return -EINVAL;
	case OPT_LONG: {
		errno = 0;
		long v = strtol(val, &end, 10);
		if (errno != 0 || end == val || *end != '\0' || v < (long)o->min ||
		    v > (long)o->max) {
			snprintf(err, errlen, "--%s takes a whole number from %.0f to %.0f, not '%s'",
			    o->flag, o->min, o->max, val);
			return -EINVAL;
		}
		*(long *)(void *)base = v;
		return 0;
	}
	case OPT_DOUBLE: {
		errno = 0;
		double v = strtod(val, &end);
		if (errno != 0 || end == val || *end != '\0' || !(v >= o->min) ||
		    !(v <= o->max)) {
			snprintf(err, errlen, "--%s takes a number from %g to %g, not '%s'",
			    o->flag, o->min, o->max, val);
			return -EINVAL;
		}
		*(double *)(void *)base = v;
		return 0;
	}
	}
	return -EINVAL;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "kmgt";
	const char *u, *p;
	char *end = NULL;
	double v, mul = 1;

	/* strtod would take hex, inf and nan: only digits and one point here */
	if (s == NULL || strspn(s, "0123456789.") == 0 || *s == '.')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end != s + strspn(s, "0123456789.") || !(v >= 0))
		return -EINVAL;
	p = end;
	if (*p != '\0' && (u = strchr(units, (char)(*p | 0x20))) != NULL) {
		for (long i = 0; i <= u - units; i++)
			mul *= 1024;
		p++;
		if ((*p | 0x20) == 'i' && (p[1] | 0x20) == 'b')
			p += 2;
		else if ((*p | 0x20) == 'b')
			p++;
	} else if ((*p | 0x20) == 'b') {
		p++;
	}
	if (*p != '\0' || v * mul >= 9223372036854775808.0)
		return -EINVAL;
	*out = (uint64_t)(v * mul);
	return 0;
}

int
config_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	char *end = NULL;
	long p;
	size_t n;

	if (colon == NULL || colon == s)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (n >= hostlen)
		return -EINVAL;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
}

static int
read_secret(const char *path, const char *what, char **out, char *err, size_t errlen)
{
	char *data = NULL;
	size_t len = 0;
	int r = util_read_file(path, 4096, &data, &len);

	if (r < 0) {
		snprintf(err, errlen, "cannot read the %s file %s: %s", what, path,
		    strerror(-r));
		return r;
	}
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' ||
	    data[len - 1] == ' '))
		data[--len] = '\0';
	*out = data;
	return 0;
}

static int
is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || util_starts_with(host, "127.") ||
	    strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

/* Values shipped in .env.example: a node refuses to use them. */
static int
is_sample_secret(const char *s)
{
	return strstr(s, "change-me") != NULL || strstr(s, "CHANGE_ME") != NULL;
}

int
config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	char host[256];
	int port, r;
	const char *env_port = getenv("PORT");
	const char *env_host_ip = getenv("HOST_IP");
	const char *env_node = getenv("NODE_ADDRESS");

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct config_option *o = &config_options[i];
		const char *v = o->env ? getenv(o->env) : NULL;
		if (v == NULL)
			v = o->def;
		if (v != NULL && (r = config_set(cfg, o, v, err, errlen)) < 0)
			return r;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		const struct config_option *o = NULL;
		size_t n;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			config_usage(stdout);
			return 1;
		}
		if (!util_starts_with(a, "--")) {
			snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
			return -EINVAL;
		}
		a += 2;
		eq = strchr(a, '=');
		n = eq ? (size_t)(eq - a) : strlen(a);
		for (size_t k = 0; k < NOPTIONS; k++)
			if (strlen(config_options[k].flag) == n &&
			    strncmp(config_options[k].flag, a, n) == 0)
				o = &config_options[k];
		if (o == NULL) {
			snprintf(err, errlen, "unknown option '%s' (see --help)", argv[i]);
			return -EINVAL;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (o->type == OPT_BOOL)
			val = "1";
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			snprintf(err, errlen, "--%s needs a value", o->flag);
			return -EINVAL;
		}
		if ((r = config_set(cfg, o, val, err, errlen)) < 0)
			return r;
	}

	/* The seed's container environment: PORT, HOST_IP, NODE_ADDRESS. */
	if (cfg->listen == NULL) {
		const char *p = env_port ? env_port : "7000";
		if (env_host_ip != NULL || env_node != NULL)
			cfg->listen = xasprintf("0.0.0.0:%s", p);
		else
			cfg->listen = xasprintf("127.0.0.1:%s", p);
	}
	if (config_split_hostport(cfg->listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "--listen takes HOST:PORT, not '%s'", cfg->listen);
		return -EINVAL;
	}
	cfg->listen_all = !is_loopback(host);
	if (cfg->advertise == NULL) {
		if (env_node != NULL && *env_node)
			cfg->advertise = xstrdup(env_node);
		else if (env_host_ip != NULL && *env_host_ip)
			cfg->advertise = xasprintf("%s:%d", env_host_ip, port);
		else if (strcmp(host, "0.0.0.0") == 0)
			cfg->advertise = xasprintf("127.0.0.1:%d", port);
		else
			cfg->advertise = xstrdup(cfg->listen);
	}
	if (config_split_hostport(cfg->advertise, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "--advertise takes HOST:PORT, not '%s'", cfg->advertise);
		return -EINVAL;
	}
	if (log_level_parse(cfg->log_level) < 0) {
		snprintf(err, errlen, "--log-level takes error, warn, info or debug, not '%s'",
		    cfg->log_level);
		return -EINVAL;
	}
	if (strcmp(cfg->sandbox, "auto") != 0 && strcmp(cfg->sandbox, "bwrap") != 0 &&
	    strcmp(cfg->sandbox, "none") != 0) {
		snprintf(err, errlen, "--sandbox takes auto, bwrap or none, not '%s'", cfg->sandbox);
		return -EINVAL;
	}
	if (strcmp(cfg->isolation, "project") != 0 && strcmp(cfg->isolation, "module") != 0) {
		snprintf(err, errlen, "--isolation takes project or module, not '%s'",
		    cfg->isolation);
		return -EINVAL;
	}
	if (!util_starts_with(cfg->github_api, "http://") &&
	    !util_starts_with(cfg->github_api, "https://")) {
		snprintf(err, errlen, "--github-api takes an http:// or https:// URL, not '%s'",
		    cfg->github_api);
		return -EINVAL;
	}
	/* "" (an empty variable) is not given: the default budget */
	if (cfg->max_disk != NULL && *cfg->max_disk != '\0' &&
	    (config_parse_size(cfg->max_disk, &cfg->max_disk_bytes) < 0 ||
	    cfg->max_disk_bytes < CONFIG_MAX_DISK_MIN)) {
		snprintf(err, errlen, "--max-disk takes a size of at least 1M, such as 500M or"
		    " 20G, not '%s'", cfg->max_disk);
		return -EINVAL;
	}
	/* one form: no trailing slash, so "<api>/orgs/..." and the Link check agree */
	for (size_t n = strlen(cfg->github_api); n > 8 && cfg->github_api[n - 1] == '/'; n--)
		cfg->github_api[n - 1] = '\0';
	/* "" (an empty variable) is not given: TLS is all three files or none. */
	char **tls[] = { &cfg->tls_cert, &cfg->tls_key, &cfg->tls_ca };
	for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++) {
		if (*tls[i] != NULL && **tls[i] == '\0') {
			free(*tls[i]);
			*tls[i] = NULL;
		}
	}
	if ((cfg->tls_cert != NULL || cfg->tls_key != NULL || cfg->tls_ca != NULL) &&
	    (cfg->tls_cert == NULL || cfg->tls_key == NULL || cfg->tls_ca == NULL)) {
		snprintf(err, errlen, "TLS needs all of --tls-cert, --tls-key and --tls-ca, or"
		    " none; missing:%s%s%s", cfg->tls_cert == NULL ? " --tls-cert" : "",
		    cfg->tls_key == NULL ? " --tls-key" : "", cfg->tls_ca == NULL ? " --tls-ca" : "");
		return -EINVAL;
	}
	if (cfg->slots == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->slots = n > 0 ? n : 1;
	}

	/* Secrets: from files or the environment, never from argv. */
	if (cfg->cluster_key_file != NULL) {
		if ((r = read_secret(cfg->cluster_key_file, "cluster key", &cfg->cluster_key,
		    err, errlen)) < 0)
			return r;
	} else if (getenv("MESHTEST_CLUSTER_KEY") != NULL) {
		cfg->cluster_key = xstrdup(getenv("MESHTEST_CLUSTER_KEY"));
	}
	if (cfg->api_token_file != NULL) {
		if ((r = read_secret(cfg->api_token_file, "API token", &cfg->api_token,
		    err, errlen)) < 0)
			return r;
	} else if (getenv("MESHTEST_API_TOKEN") != NULL) {
		cfg->api_token = xstrdup(getenv("MESHTEST_API_TOKEN"));
	}
	if (cfg->cluster_key != NULL && *cfg->cluster_key == '\0') {
		free(cfg->cluster_key);
		cfg->cluster_key = NULL;
	}
	if (cfg->api_token != NULL && *cfg->api_token == '\0') {
		free(cfg->api_token);
		cfg->api_token = NULL;
	}
	if (cfg->listen_all) {
		if (cfg->cluster_key == NULL || cfg->api_token == NULL) {
			snprintf(err, errlen, "a node that listens beyond loopback needs a cluster "
			    "key and an API token: run 'meshtest keygen' twice and put the "
			    "results in MESHTEST_CLUSTER_KEY and MESHTEST_API_TOKEN (or in files "
			    "named by --cluster-key-file and --api-token-file)");
			return -EINVAL;
		}
		if (is_sample_secret(cfg->cluster_key) || is_sample_secret(cfg->api_token) ||
		    strlen(cfg->cluster_key) < 32 || strlen(cfg->api_token) < 32) {
			snprintf(err, errlen, "the cluster key and the API token must be real "
			    "secrets of at least 32 characters, not the sample values of "
			    ".env.example: make them with 'meshtest keygen'");
			return -EINVAL;
		}
	}
	return 0;
}

void
config_free(struct config *cfg)
{
	for (size_t i = 0; i < NOPTIONS; i++) {
		if (config_options[i].type == OPT_STR) {
			char **p = (char **)(void *)((char *)cfg + config_options[i].offset);
			free(*p);
			*p = NULL;
		}
	}
	free(cfg->cluster_key);
	free(cfg->api_token);
	cfg->cluster_key = cfg->api_token = NULL;
}
