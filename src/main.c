/*
 * main.c - the meshtest binary: argv -> subcommand.
 *
 *   meshtest serve [options]     run a node
 *   meshtest submit ...          client: submit an evaluation
 *   meshtest status [ID]         client: show evaluations
 *   meshtest results ID          client: what failed
 *   meshtest export ID           client: CSV, JUnit XML, Gradescope JSON
 *   meshtest cancel|delete ID    client: stop, or remove, an evaluation
 *   meshtest keygen              print a fresh random key
 *   meshtest certs               make a cluster CA and node certificates (TLS)
 *
 * Only this file knows every module. "serve" wires the store, the engine and
 * the HTTP server together on the main thread, then waits for SIGINT or
 * SIGTERM and takes them down in the opposite order.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cluster/auth.h"
#include "cluster/replica.h"
#include "cluster/gossip.h"
#include "config/config.h"
#include "core/diskuse.h"
#include "core/log.h"
#include "core/util.h"
#include "core/version.h"
#include "engine/engine.h"
#include "http/http_server.h"
#include "http/http_tls.h"
#include "store/store.h"


/* The live peers for replication: every alive or suspect member but us. */
static int
replica_peers(void *ctx, char ***addrs, size_t *n)
{
	struct gossip *g = ctx;
	char **all = NULL;
	size_t nall = 0, k = 0;
	int r = gossip_alive(g, &all, &nall);

	if (r < 0)
		return r;
	for (size_t i = 0; i < nall; i++) {
		if (strcmp(all[i], gossip_self(g)) == 0)
			free(all[i]);
		else
			all[k++] = all[i];
	}
	*addrs = all;
	*n = k;
	return 0;
}

/* The live nodes for scheduling: every alive or suspect member, us included. */
static int
engine_alive_nodes(void *ctx, char ***addrs, size_t *n)
{
	return gossip_alive(ctx, addrs, n);
}

static void
replica_on_change(void *ctx, const char *eval_id, int news)
{
	(void)eval_id;
	if (news)
		replica_hurry(ctx);
	else
		replica_wake(ctx);
}

static int
serve_main(int argc, char **argv)
{
	struct config cfg;
	struct store *st = NULL;
	struct engine *eng = NULL;
	struct http_server *srv = NULL;
	struct gossip *gossip = NULL;
	struct replica *replica = NULL;
	struct node_ctx nctx = { NULL, NULL, NULL };
	struct http_server_config hc;
	char err[1024] = "";
	char *db_path = NULL, *upload_dir = NULL;
	sigset_t set;
	int r, sig = 0, rc = 1, keyed_by_token;
	static const struct http_route *const routes[] = {
		api_sync_routes, api_task_routes, api_evaluation_routes, api_cancel_routes,
		api_events_routes, api_stats_routes,
		api_export_routes, api_network_routes, api_web_routes, api_metrics_routes, NULL,
	};

	r = config_load(&cfg, argc - 1, argv + 1, err, sizeof(err));
	if (r == 1) {
		config_free(&cfg);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		config_free(&cfg);
		return 2;
	}
	log_set_level((enum log_level)log_level_parse(cfg.log_level));
	/* Node-to-node requests and answers are signed with the cluster key (or the token's). */
	keyed_by_token = auth_set_keys(cfg.cluster_key, cfg.api_token);
	/* With TLS: https only, and peers are nodes with a certificate of the cluster CA. */
	if (http_tls_init(cfg.tls_cert, cfg.tls_key, cfg.tls_ca, cfg.advertise, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: %s\n", err);
		auth_set_key(NULL);
		config_free(&cfg);
		return 2;
	}
	if (keyed_by_token)
		log_info("no cluster key: node-to-node requests are signed with a key derived from"
		    " the API token (every node of the network needs the same token)");
	else if (cfg.cluster_key == NULL)
		log_warn("no cluster key: node-to-node requests are not authenticated (fine on"
		    " loopback; set MESHTEST_CLUSTER_KEY for a real network)");

	/* Block the stop signals in every thread; main waits for them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((r = util_mkdir_p(cfg.data_dir, 0711)) < 0) {
		log_error("cannot create the data folder %s: %s", cfg.data_dir, strerror(-r));
		goto out;
	}
	chmod(cfg.data_dir, 0711);
	db_path = xasprintf("%s/meshtest.db", cfg.data_dir);
	/* Uploads cut off by a crash were never accepted: drop them. */
	upload_dir = xasprintf("%s/incoming", cfg.data_dir);
	util_rm_rf(upload_dir);
	util_mkdir_p(upload_dir, 0700);
	if (store_open(db_path, &st) < 0) {
		log_error("cannot open the database %s", db_path);
		goto out;
	}
	chmod(db_path, 0600);
	if (engine_start(&cfg, st, &eng, err, sizeof(err)) < 0) {
		log_error("cannot start: %s", err);
		goto out;
	}
	memset(&hc, 0, sizeof(hc));
	hc.listen = cfg.listen;
	hc.api_token = cfg.api_token;
	hc.advertise = cfg.advertise;
	hc.allowed_hosts = cfg.allowed_hosts;
	hc.max_body = (uint64_t)cfg.max_upload_mb << 20;
	hc.upload_dir = upload_dir;
	/* Gossip handlers (a ping-req waits for its probe) must not starve the rest. */
	hc.threads = 16;
	nctx.eng = eng;
	/* GET /metrics reports the data folder's size: walked on demand, off the request. */
	if (diskuse_start(cfg.data_dir, API_DISK_PERIOD, &nctx.disk) < 0)
		log_warn("cannot measure the data folder: GET /metrics leaves its size out");
	if (http_server_start(&hc, routes, &nctx, &srv, err, sizeof(err)) < 0) {
		log_error("cannot start: %s", err);
		goto out;
	}
	/* Membership starts once we can answer probes; handlers see it from here on. */
	if (gossip_start(cfg.advertise, cfg.seeds, &gossip) < 0) {
		log_error("cannot start membership as %s", cfg.advertise);
		goto out;
	}
	__atomic_store_n(&nctx.gossip, gossip, __ATOMIC_RELEASE);
	/* Every evaluation on every node: push local changes, pull what we missed. */
	if (replica_start(st, cfg.advertise, replica_peers, gossip, &replica) < 0) {
		log_error("cannot start replication");
		goto out;
	}
	engine_set_change_hook(eng, replica_on_change, replica);
	engine_set_alive_fn(eng, engine_alive_nodes, gossip);
	log_info("meshtest %s serving %s on %s as %s, data in %s", MESHTEST_VERSION,
	    http_tls_scheme(), cfg.listen, cfg.advertise, cfg.data_dir);
	while (sigwait(&set, &sig) != 0)
		;
	log_info("stopping on signal %d", sig);
	rc = 0;
out:
	/* Goodbye first, while we still answer; then no handler can be running. */
	gossip_stop(gossip);
	http_server_stop(srv);
	diskuse_stop(nctx.disk);
	engine_stop(eng);
	replica_stop(replica);
	gossip_free(gossip);
	store_close(st);
	free(db_path);
	free(upload_dir);
	auth_set_key(NULL);
	http_tls_free();
	config_free(&cfg);
	return rc;
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: meshtest <command> [options]\n\n"
	    "commands:\n"
	    "  serve      run a node (meshtest serve --help for its options)\n"
	    "  submit     submit PROJECTS.zip, a folder, or git URLs to a node\n"
	    "  status     list evaluations, or show one\n"
	    "  results    list what failed in an evaluation\n"
	    "  export     an evaluation as CSV, JUnit XML or Gradescope JSON\n"
	    "  cancel     stop an evaluation everywhere (finished results are kept)\n"
	    "  delete     remove an evaluation and its files from every node\n"
	    "  keygen     print a fresh random key (cluster key, API token)\n"
	    "  certs      make a cluster CA and node certificates for TLS\n"
	    "  version    print the version\n");
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} commands[] = {
		{ "serve", serve_main },
		{ "submit", cli_submit_main },
		{ "status", cli_status_main },
		{ "results", cli_results_main },
		{ "export", cli_export_main },
		{ "cancel", cli_cancel_main },
		{ "delete", cli_delete_main },
		{ "keygen", cli_keygen_main },
		{ "certs", cli_certs_main },
	};

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	/*
	 * The local time zone, named: without TZ, glibc checks /etc/localtime
	 * again at every conversion (libarchive's of every ZIP entry's time, every
	 * strftime), a stat and often a read each; with it, once.
	 */
	if (getenv("TZ") == NULL)
		setenv("TZ", ":/etc/localtime", 1);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("meshtest %s\n", MESHTEST_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "meshtest: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
