/*
 * http_tls.c - the node's optional TLS (see http_tls.h).
 *
 * Owns the process-wide TLS state: the three files' paths (libcurl reads
 * them for every peer request) and their PEM text (libmicrohttpd keeps the
 * pointers for the daemon's life). Written once by http_tls_init on the main
 * thread before the server or any peer thread starts; only read afterwards.
 *
 * The two ends use different libraries: libcurl (OpenSSL) asks peers,
 * libmicrohttpd (GnuTLS) answers. The start-up checks use OpenSSL, the
 * per-request check of a client certificate uses the GnuTLS session of the
 * connection. The log gates are the only state touched after start-up,
 * each behind its own mutex, from any thread.
 */
#include "http/http_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/log.h"
#include "core/util.h"
#include "http/http_client.h"

#define HTTP_TLS_FILE_MAX (1u << 20)   /* a PEM file: a certificate chain or a key */
#define HTTP_TLS_LOG_PERIOD 10.0       /* seconds between two lines of one gate */
/* TLS 1.2 and 1.3 only, as libcurl is told for the other end. */
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define HTTP_TLS_UNKNOWN_RECORD "Received record packet of unknown type"
/* libmicrohttpd's words for any failed handshake (0.9.x) */
#define HTTP_TLS_MHD_HANDSHAKE "received handshake message out of context"

static struct {
	int on;
	char *cert_path, *key_path, *ca_path;
	char *cert_pem, *key_pem, *ca_pem;
	struct http_client_tls client;
} http_tls;

/*
 * A warning that would repeat every probe (a misconfigured peer is retried
 * all the time) is logged at most once per HTTP_TLS_LOG_PERIOD, with the
 * count of the ones left out since.
 */
struct http_tls_gate {
	pthread_mutex_t mu;
	double last;
	unsigned long skipped;
};

static struct http_tls_gate http_tls_plain_gate = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };
static struct http_tls_gate http_tls_peer_gate = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };
static struct http_tls_gate http_tls_handshake_gate = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };
/*
 * Set by http_tls_audit for the handshake failing right after on the same
 * thread, whose report from libmicrohttpd then says nothing more.
 */
static _Thread_local int http_tls_explained;
#define HTTP_TLS_MORE(skipped) ((skipped) > 0 ? " (and more like it since the last such line)" : "")

/* 1 when a line may be logged now; *skipped: lines left out before it. */
static int
http_tls_gate_pass(struct http_tls_gate *g, unsigned long *skipped)
{
	double now = util_mono();
	int pass = 0;

	pthread_mutex_lock(&g->mu);
	if (g->last == 0 || now - g->last >= HTTP_TLS_LOG_PERIOD) {
		pass = 1;
		*skipped = g->skipped;
		g->skipped = 0;
		g->last = now;
	} else {
		g->skipped++;
	}
	pthread_mutex_unlock(&g->mu);
	return pass;
}

/* "ip:port" of a socket's other end, or "an unknown address". */
static void
http_tls_sock_peer(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "";

	memset(&ss, 0, sizeof(ss));
	snprintf(out, outlen, "an unknown address");
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, ntohs(a->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(a->sin6_port));
	}
}

/*
 * GnuTLS reports a record of no TLS type here (its audit log), on the
 * thread of the connection, with the session still open: the first bytes
 * of plain HTTP ("GET ", "POST") read as such a record. That is the one
 * failed handshake worth a clear line: a node or a client without TLS. The
 * record type is the first byte, a capital letter for an HTTP method.
 */
static void
http_tls_audit(gnutls_session_t s, const char *msg)
{
	char from[INET6_ADDRSTRLEN + 8];
	unsigned long skipped = 0;
	unsigned type = 0;

	if (s == NULL || strncmp(msg, HTTP_TLS_UNKNOWN_RECORD, strlen(HTTP_TLS_UNKNOWN_RECORD)) != 0)
		return;
	http_tls_explained = 1;
	if (!http_tls_gate_pass(&http_tls_plain_gate, &skipped))
		return;
	sscanf(msg + strlen(HTTP_TLS_UNKNOWN_RECORD), "%u", &type);
	http_tls_sock_peer(gnutls_transport_get_int(s), from, sizeof(from));
	log_warn("http: refused %s from %s: this node serves https only (a node started without"
	    " --tls-cert/--tls-key/--tls-ca, or a client using http://)%s",
	    type >= 'A' && type <= 'Z' ? "plain HTTP" : "a connection that is not TLS", from,
	    HTTP_TLS_MORE(skipped));
}

/* No passphrase prompt on a terminal: an encrypted key is refused. */
static int
http_tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int
http_tls_read(const char *path, const char *what, char **out, char *err, size_t errlen)
{
	size_t len = 0;
	int r = util_read_file(path, HTTP_TLS_FILE_MAX, out, &len);

	if (r < 0)
		snprintf(err, errlen, "cannot read the TLS %s %s: %s", what, path, strerror(-r));
	return r;
}

/* The first of OpenSSL's queued errors, for a message. */
static const char *
http_tls_ssl_error(void)
{
	unsigned long e = ERR_get_error();
	const char *s = e != 0 ? ERR_reason_error_string(e) : "no PEM data";

	ERR_clear_error();
	return s != NULL ? s : "unknown error";
}

/*
 * Verify cert against the CAs of store for one purpose; 0 or -EINVAL with
 * OpenSSL's words in err.
 */
static int
http_tls_verify(X509_STORE *store, X509 *cert, int purpose, const char *paths, char *err,
    size_t errlen)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	if (ctx != NULL && X509_STORE_CTX_init(ctx, store, cert, NULL) == 1) {
		X509_STORE_CTX_set_purpose(ctx, purpose);
		ok = X509_verify_cert(ctx) == 1;
		if (!ok)
			snprintf(err, errlen, "%s: %s", paths,
			    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	} else {
		snprintf(err, errlen, "%s: cannot set up the check", paths);
	}
	X509_STORE_CTX_free(ctx);
	return ok ? 0 : -EINVAL;
}

/* The start-up checks of http_tls_init, with OpenSSL. */
static int
http_tls_check(const char *cert, const char *key, const char *ca, const char *advertise,
    char *err, size_t errlen)
{
	BIO *bio = NULL;
	X509 *x = NULL, *c;
	EVP_PKEY *pk = NULL;
	X509_STORE *store = NULL;
	char host[256], paths[1100];
	unsigned char ipbuf[16];
	int port, r = -EINVAL, nca = 0, ip;

	bio = BIO_new_mem_buf(http_tls.cert_pem, -1);
	x = bio != NULL ? PEM_read_bio_X509(bio, NULL, http_tls_no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (x == NULL) {
		snprintf(err, errlen, "the TLS certificate %s is not a PEM certificate (%s)", cert,
		    http_tls_ssl_error());
		goto out;
	}
	bio = BIO_new_mem_buf(http_tls.key_pem, -1);
	pk = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, http_tls_no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (pk == NULL) {
		snprintf(err, errlen, "the TLS key %s is not an unencrypted PEM private key (%s)", key,
		    http_tls_ssl_error());
		goto out;
	}
	if (X509_check_private_key(x, pk) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "the TLS key %s is not the key of the certificate %s", key,
		    cert);
		goto out;
	}
	store = X509_STORE_new();
	bio = BIO_new_mem_buf(http_tls.ca_pem, -1);
	while (store != NULL && bio != NULL &&
	    (c = PEM_read_bio_X509(bio, NULL, http_tls_no_passphrase, NULL)) != NULL) {
		X509_STORE_add_cert(store, c);
		X509_free(c);
		nca++;
	}
	BIO_free(bio);
	ERR_clear_error();
	if (nca == 0) {
		snprintf(err, errlen, "the TLS CA file %s holds no PEM certificate", ca);
		goto out;
	}
	/* A node's certificate serves both ends: it answers peers and asks them. */
	snprintf(paths, sizeof(paths), "the certificate %s is not one the cluster CA %s signed"
	    " for a server and a client", cert, ca);
	if (http_tls_verify(store, x, X509_PURPOSE_SSL_SERVER, paths, err, errlen) < 0 ||
	    http_tls_verify(store, x, X509_PURPOSE_SSL_CLIENT, paths, err, errlen) < 0)
		goto out;
	/* Peers check the name they dialled: the advertised host must be in it. */
	if (config_split_hostport(advertise, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "bad advertised address '%s'", advertise);
		goto out;
	}
	ip = inet_pton(AF_INET, host, ipbuf) == 1 || inet_pton(AF_INET6, host, ipbuf) == 1;
	if ((ip && X509_check_ip_asc(x, host, 0) != 1) ||
	    (!ip && X509_check_host(x, host, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) != 1)) {
		snprintf(err, errlen, "the TLS certificate %s does not name this node's advertised"
		    " address %s (a subjectAltName %s:%s): peers would refuse it; make one with"
		    " 'meshtest certs --node %s'", cert, host, ip ? "IP" : "DNS", host, advertise);
		goto out;
	}
	r = 0;
out:
	X509_STORE_free(store);
	EVP_PKEY_free(pk);
	X509_free(x);
	return r;
}

int
http_tls_init(const char *cert, const char *key, const char *ca, const char *advertise,
    char *err, size_t errlen)
{
	int r;

	if (cert == NULL && key == NULL && ca == NULL)
		return 0;
	if (cert == NULL || key == NULL || ca == NULL) {
		snprintf(err, errlen, "TLS needs a certificate, its key and the cluster CA");
		return -EINVAL;
	}
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		snprintf(err, errlen, "this libmicrohttpd was built without TLS: install one built"
		    " with GnuTLS (Debian's libmicrohttpd12 is) or run without --tls-*");
		return -ENOTSUP;
	}
	if ((r = http_tls_read(cert, "certificate", &http_tls.cert_pem, err, errlen)) < 0 ||
	    (r = http_tls_read(key, "key", &http_tls.key_pem, err, errlen)) < 0 ||
	    (r = http_tls_read(ca, "CA file", &http_tls.ca_pem, err, errlen)) < 0 ||
	    (r = http_tls_check(cert, key, ca, advertise, err, errlen)) < 0) {
		http_tls_free();
		return r;
	}
	http_tls.cert_path = xstrdup(cert);
	http_tls.key_path = xstrdup(key);
	http_tls.ca_path = xstrdup(ca);
	http_tls.client.cert = http_tls.cert_path;
	http_tls.client.key = http_tls.key_path;
	http_tls.client.ca = http_tls.ca_path;
	gnutls_global_set_audit_log_function(http_tls_audit);
	http_tls.on = 1;
	return 0;
}

void
http_tls_free(void)
{
	if (http_tls.key_pem != NULL)
		OPENSSL_cleanse(http_tls.key_pem, strlen(http_tls.key_pem));
	free(http_tls.cert_pem);
	free(http_tls.key_pem);
	free(http_tls.ca_pem);
	free(http_tls.cert_path);
	free(http_tls.key_path);
	free(http_tls.ca_path);
	memset(&http_tls, 0, sizeof(http_tls));
}

int
http_tls_enabled(void)
{
	return http_tls.on;
}

const char *
http_tls_scheme(void)
{
	return http_tls.on ? "https" : "http";
}

const struct http_client_tls *
http_tls_client(void)
{
	return http_tls.on ? &http_tls.client : NULL;
}

void
http_tls_peer_failed(const char *why)
{
	unsigned long skipped = 0;

	if (!http_tls_gate_pass(&http_tls_peer_gate, &skipped))
		return;
	log_warn("peer: %s (every node needs TLS and a certificate of this cluster's CA that"
	    " names its advertised address)%s", why, HTTP_TLS_MORE(skipped));
}

int
http_tls_server_log(const char *msg)
{
	unsigned long skipped = 0;

	if (!http_tls.on || strstr(msg, HTTP_TLS_MHD_HANDSHAKE) == NULL)
		return 0;
	if (http_tls_explained) {
		http_tls_explained = 0;
		return 1;
	}
	if (http_tls_gate_pass(&http_tls_handshake_gate, &skipped))
		log_warn("http: a TLS handshake failed: a client that does not trust this node's"
		    " certificate (of another cluster's CA?), or one that speaks no TLS%s",
		    HTTP_TLS_MORE(skipped));
	return 1;
}

unsigned int
http_tls_server_flags(void)
{
	return http_tls.on ? MHD_USE_TLS : 0;
}

void
http_tls_server_options(struct MHD_OptionItem *opts)
{
	size_t k = 0;

	if (http_tls.on) {
		opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, http_tls.key_pem };
		opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, http_tls.cert_pem };
		/* A trust list makes the server ask for (not require) a client certificate. */
		opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0, http_tls.ca_pem };
		opts[k++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
		    (void *)HTTP_TLS_PRIORITIES };
	}
	opts[k] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
}

int
http_tls_peer_check(struct MHD_Connection *conn, char *why, size_t whylen)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t s = ci != NULL ? (gnutls_session_t)ci->tls_session : NULL;
	/* The certificate must also be meant for a TLS client. */
	gnutls_typed_vdata_st purpose = { GNUTLS_DT_KEY_PURPOSE_OID,
	    (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0 };
	gnutls_datum_t text = { NULL, 0 };
	unsigned int status = 0, n = 0;
	int r;

	if (s == NULL) {
		snprintf(why, whylen, "not a TLS connection");
		return -EACCES;
	}
	if (gnutls_certificate_get_peers(s, &n) == NULL || n == 0) {
		snprintf(why, whylen, "no client certificate: internal routes answer only nodes"
		    " with a certificate of the cluster CA");
		return -EACCES;
	}
	r = gnutls_certificate_verify_peers(s, &purpose, 1, &status);
	if (r < 0) {
		snprintf(why, whylen, "cannot check the client certificate: %s", gnutls_strerror(r));
		return -EACCES;
	}
	if (status != 0) {
		size_t len;

		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
		snprintf(why, whylen, "the client certificate is not one of the cluster CA's (%s",
		    text.data != NULL ? (const char *)text.data : "not trusted");
		len = strlen(why);
		while (len > 0 && why[len - 1] == ' ')
			why[--len] = '\0';
		snprintf(why + len, whylen - len, ")");
		gnutls_free(text.data);
		return -EACCES;
	}
	return 0;
}
