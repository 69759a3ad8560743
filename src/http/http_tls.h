/*
 * http_tls.h - the node's optional TLS: its certificate, key and the
 * cluster's CA (--tls-cert, --tls-key, --tls-ca), for both ends of HTTP.
 *
 * With TLS the node serves https only; a public route takes any client
 * (server TLS), an internal one only a peer: a client that presented a
 * certificate of the cluster CA (mutual TLS). Every request to a peer is
 * https, presents this node's certificate and accepts only a peer whose
 * certificate the cluster CA signed for the address asked. Without TLS all
 * of this is off and peers speak plain http, as before.
 *
 * Process-wide, like the cluster key: set once at start-up (http_tls_init)
 * before any thread uses it, read-only afterwards, freed at exit.
 */
#ifndef MESHTEST_HTTP_TLS_H
#define MESHTEST_HTTP_TLS_H

#include <stddef.h>

struct MHD_Connection;
struct MHD_OptionItem;
struct http_client_tls;

#define HTTP_TLS_MHD_OPTIONS 4  /* entries http_tls_server_options fills at most */

/*
 * Turn TLS on with the PEM files cert, key and ca; all NULL leaves it off.
 * Checks now what would otherwise fail at the first handshake: the files
 * read and parse, the key is the certificate's, the cluster CA signed the
 * certificate, it is valid today and it names the host of advertise
 * ("host:port") as a subjectAltName; and libmicrohttpd speaks TLS.
 * Returns 0, or -EINVAL/-ENOENT/... with a message in err.
 */
int http_tls_init(const char *cert, const char *key, const char *ca, const char *advertise,
    char *err, size_t errlen);
void http_tls_free(void);
/* 1 when the node runs TLS. */
int http_tls_enabled(void);

/* "https" with TLS, else "http": the scheme of every URL to a peer. */
const char *http_tls_scheme(void);
/* What a request to a peer presents and trusts; NULL without TLS. */
const struct http_client_tls *http_tls_client(void);
/*
 * A request to a peer failed its TLS handshake or certificate check (why:
 * which peer, in libcurl's words). Logged as a warning, at most once every
 * few seconds: a misconfigured peer is retried all the time.
 */
void http_tls_peer_failed(const char *why);

/* MHD_start_daemon flags (MHD_USE_TLS) and options; none without TLS. */
unsigned int http_tls_server_flags(void);
/* Fill opts (HTTP_TLS_MHD_OPTIONS + 1 entries) up to an MHD_OPTION_END. */
void http_tls_server_options(struct MHD_OptionItem *opts);
/*
 * 1 when msg, a line of libmicrohttpd's log, is its report of a failed TLS
 * handshake, which this logs in its own words (at most once every few
 * seconds, like the rest); 0 for any other line, left to the caller.
 */
int http_tls_server_log(const char *msg);
/*
 * 0 when the client of conn presented a certificate of the cluster CA,
 * valid for client authentication (a peer); else -EACCES with why.
 */
int http_tls_peer_check(struct MHD_Connection *conn, char *why, size_t whylen);

#endif
