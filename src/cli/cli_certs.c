/*
 * cli_certs.c - meshtest certs: a cluster CA and one certificate per node,
 * for TLS between nodes (--tls-cert, --tls-key, --tls-ca).
 *
 *   meshtest certs --out DIR --node ADDR [--node ADDR ...] [--days N]
 *
 * Makes DIR/ca.pem and DIR/ca.key (the cluster CA), or signs with the ones
 * already in DIR, so that a node added later joins the same cluster. Each
 * node gets DIR/<host>.pem and DIR/<host>.key: an ECDSA P-256 key and a
 * certificate naming the host of ADDR (an IP address or a DNS name) as its
 * subjectAltName, good for a TLS server and a TLS client, since a node both
 * answers and asks its peers. Nodes on one host share the host's files.
 * Keys are written 0600, every file through a temporary one renamed into
 * place. OpenSSL's libcrypto; the client's main thread; owns nothing beyond
 * the call.
 */
#include "cli/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

#define CLI_CERTS_MAX_NODES 256
#define CLI_CERTS_DAYS 3650
#define CLI_CERTS_FILE_MAX (1u << 20)

static void
cli_certs_usage(FILE *f)
{
	fprintf(f,
		"usage: meshtest certs --out DIR --node ADDR [--node ADDR ...] [--days N]\n"
		"  make a cluster CA (DIR/ca.pem, DIR/ca.key), or use the one already in DIR,\n"
		"  and for each node DIR/HOST.pem and DIR/HOST.key: a certificate naming\n"
		"  HOST, the host of its advertised address ADDR (HOST:PORT or HOST)\n"
		"  --days  validity of new certificates in days (default %d)\n"
		"then start each node with --tls-cert DIR/HOST.pem --tls-key DIR/HOST.key\n"
		"--tls-ca DIR/ca.pem; keep ca.key off the nodes\n", CLI_CERTS_DAYS);
}

int
cli_certs_host(const char *addr, char *host, size_t hostlen, int *is_ip)
{
	unsigned char ipbuf[16];
	const char *end = NULL, *colon;
	size_t n;

	if (addr == NULL || addr[0] == '\0')
		return -EINVAL;
	if (addr[0] == '[') {                        /* [v6] or [v6]:port */
		end = strchr(addr, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -EINVAL;
		addr++;
	} else {
		colon = strchr(addr, ':');
		end = colon != NULL ? colon : addr + strlen(addr);
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return -EINVAL;      /* a bare IPv6 address needs brackets */
	}
	n = (size_t)(end - addr);
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	memcpy(host, addr, n);
	host[n] = '\0';
	if (end[0] == ':' || (end[0] == ']' && end[1] == ':')) {
		const char *p = end[0] == ':' ? end + 1 : end + 2;
		char *e;
		long port = strtol(p, &e, 10);

		if (*p == '\0' || *e != '\0' || port < 1 || port > 65535)
			return -EINVAL;
	}
	*is_ip = inet_pton(AF_INET, host, ipbuf) == 1 || inet_pton(AF_INET6, host, ipbuf) == 1;
	if (*is_ip)
		return 0;
	/* A DNS name, also a file name: letters, digits, '-' and '.', not "ca". */
	if (host[0] == '.' || host[0] == '-' || strcmp(host, "ca") == 0)
		return -EINVAL;
	for (const char *p = host; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return -EINVAL;
	return 0;
}

/* OpenSSL's last error, for a message. */
static const char *
cli_certs_ssl_error(void)
{
	unsigned long e = ERR_get_error();
	const char *s = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return s != NULL ? s : "unknown error";
}

/* Add extension nid=value (OpenSSL's config syntax) to x; 0 or -EINVAL. */
static int
cli_certs_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -EINVAL;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -EINVAL;
}

/* An extension in OpenSSL's config syntax: basicConstraints "CA:FALSE". */
struct cli_certs_ext_spec {
	int nid;
	const char *value;
};

/*
 * A certificate for key named cn, signed by issuer_key (issuer NULL: self-
 * signed, a CA), with the extensions of exts (ending at a zero nid). NULL
 * on failure.
 */

static X509 *
cli_certs_make(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long days,
    const struct cli_certs_ext_spec *exts)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	BIGNUM *bn = BN_new();
	ASN1_INTEGER *serial = NULL;
	int id = EVP_PKEY_get_id(issuer_key);
	/* Ed25519 and Ed448 sign without a separate digest. */
	const EVP_MD *md = id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? NULL : EVP_sha256();
	int ok = x != NULL && name != NULL && bn != NULL;

	ok = ok && X509_set_version(x, 2) == 1;
	/* 127 random bits: unique, positive, within the 20 bytes allowed */
	ok = ok && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1;
	ok = ok && (serial = BN_to_ASN1_INTEGER(bn, NULL)) != NULL;
	ok = ok && X509_set_serialNumber(x, serial) == 1;
	/* an hour back: clocks of the cluster's machines differ a little */
	ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL;
	ok = ok && X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) != NULL;
	ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"meshtest", -1, -1, 0) == 1;
	ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) == 1;
	ok = ok && X509_set_subject_name(x, name) == 1;
	ok = ok && X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) :
	    name) == 1;
	ok = ok && X509_set_pubkey(x, key) == 1;
	for (size_t i = 0; ok && exts[i].nid != 0; i++)
		ok = cli_certs_ext(x, issuer != NULL ? issuer : x, exts[i].nid, exts[i].value) == 0;
	ok = ok && X509_sign(x, issuer_key, md) > 0;
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Write a key (0600) or a certificate (0644) as PEM to path. */
static int
cli_certs_write(const char *path, EVP_PKEY *key, X509 *cert, char *err, size_t errlen)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	int r = -EIO;

	if (bio == NULL)
		goto out;
	if (key != NULL ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 :
	    PEM_write_bio_X509(bio, cert) != 1)
		goto out;
	len = BIO_get_mem_data(bio, &data);
	r = util_write_file(path, data, (size_t)len, key != NULL ? 0600 : 0644);
out:
	if (r < 0)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-r));
	BIO_free(bio);
	return r;
}

/* No passphrase prompt: an encrypted CA key is refused. */
static int
cli_certs_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Load DIR's CA when both files are there (1), none (0), else an error. */
static int
cli_certs_load_ca(const char *ca_pem, const char *ca_key, X509 **cert, EVP_PKEY **key,
    char *err, size_t errlen)
{
	int has_pem = access(ca_pem, F_OK) == 0, has_key = access(ca_key, F_OK) == 0;
	char *data = NULL;
	size_t len = 0;
	BIO *bio;
	int r;

	if (!has_pem && !has_key)
		return 0;
	if (!has_pem || !has_key) {
		snprintf(err, errlen, "%s is there but %s is not: give an empty folder for a new"
		    " CA, or one with both files", has_pem ? ca_pem : ca_key,
		    has_pem ? ca_key : ca_pem);
		return -EINVAL;
	}
	if ((r = util_read_file(ca_pem, CLI_CERTS_FILE_MAX, &data, &len)) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", ca_pem, strerror(-r));
		return r;
	}
	bio = BIO_new_mem_buf(data, (int)len);
	*cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, cli_certs_no_passphrase, NULL) : NULL;
	BIO_free(bio);
	free(data);
	if (*cert == NULL) {
		snprintf(err, errlen, "%s is not a PEM certificate (%s)", ca_pem,
		    cli_certs_ssl_error());
		return -EINVAL;
	}
	if ((r = util_read_file(ca_key, CLI_CERTS_FILE_MAX, &data, &len)) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", ca_key, strerror(-r));
		return r;
	}
	bio = BIO_new_mem_buf(data, (int)len);
	*key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, cli_certs_no_passphrase, NULL) :
	    NULL;
	BIO_free(bio);
	OPENSSL_cleanse(data, len);
	free(data);
	if (*key == NULL) {
		snprintf(err, errlen, "%s is not an unencrypted PEM private key (%s)", ca_key,
		    cli_certs_ssl_error());
		return -EINVAL;
	}
	if (X509_check_private_key(*cert, *key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s is not the key of %s", ca_key, ca_pem);
		return -EINVAL;
	}
	return 1;
}

/* What the command line asks: the folder, the hosts (each once) and days. */
struct cli_certs_args {
	const char *out;
	char hosts[CLI_CERTS_MAX_NODES][256];
	int is_ip[CLI_CERTS_MAX_NODES];
	size_t n;
	long days;
};

/* Parse argv into a; -EINVAL with err. */
static int
cli_certs_parse(int argc, char **argv, struct cli_certs_args *a, char *err, size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char host[256];
		int ip = 0;

		if (strcmp(argv[i], "--out") != 0 && strcmp(argv[i], "--node") != 0 &&
		    strcmp(argv[i], "--days") != 0) {
			snprintf(err, errlen, "unknown argument '%s'", argv[i]);
			return -EINVAL;
		}
		if (v == NULL) {
			snprintf(err, errlen, "%s needs a value", argv[i]);
			return -EINVAL;
		}
		i++;
		if (strcmp(argv[i - 1], "--out") == 0) {
			a->out = v;
		} else if (strcmp(argv[i - 1], "--days") == 0) {
			char *e;
			a->days = strtol(v, &e, 10);
			if (*v == '\0' || *e != '\0' || a->days < 1 || a->days > 36500) {
				snprintf(err, errlen, "--days takes a whole number from 1 to 36500,"
				    " not '%s'", v);
				return -EINVAL;
			}
		} else if (cli_certs_host(v, host, sizeof(host), &ip) < 0) {
			snprintf(err, errlen, "--node takes a node's advertised address HOST:PORT"
			    " (or HOST): an IP address or a DNS name, not '%s'", v);
			return -EINVAL;
		} else {
			size_t k = 0;
			while (k < a->n && strcmp(a->hosts[k], host) != 0)
				k++;
			if (k < a->n)
				continue;        /* nodes on one host share its certificate */
			if (a->n == CLI_CERTS_MAX_NODES) {
				snprintf(err, errlen, "at most %d hosts at once", CLI_CERTS_MAX_NODES);
				return -EINVAL;
			}
			snprintf(a->hosts[a->n], sizeof(a->hosts[0]), "%s", host);
			a->is_ip[a->n++] = ip;
		}
	}
	if (a->out == NULL || a->n == 0) {
		snprintf(err, errlen, "give --out DIR and at least one --node ADDR");
		return -EINVAL;
	}
	return 0;
}

int
cli_certs_main(int argc, char **argv)
{
	static const struct cli_certs_ext_spec ca_exts[] = {
		{ NID_basic_constraints, "critical,CA:TRUE,pathlen:0" },
		{ NID_key_usage, "critical,keyCertSign,cRLSign" },
		{ NID_subject_key_identifier, "hash" },
		{ 0, NULL },
	};
	struct cli_certs_args *a = xcalloc(1, sizeof(*a));
	char err[1200] = "", san[300];
	char *ca_pem = NULL, *ca_key = NULL, *pem = NULL, *key = NULL;
	X509 *ca = NULL, *x = NULL;
	EVP_PKEY *cakey = NULL, *k = NULL;
	int rc = CLI_EXIT_USAGE, r;

	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		cli_certs_usage(stdout);
		free(a);
		return CLI_EXIT_OK;
	}
	a->days = CLI_CERTS_DAYS;
	if (cli_certs_parse(argc, argv, a, err, sizeof(err)) < 0) {
		fprintf(stderr, "meshtest: certs: %s\n", err);
		cli_certs_usage(stderr);
		free(a);
		return CLI_EXIT_USAGE;
	}
	if ((r = util_mkdir_p(a->out, 0700)) < 0) {
		snprintf(err, sizeof(err), "cannot create %s: %s", a->out, strerror(-r));
		goto out;
	}
	ca_pem = xasprintf("%s/ca.pem", a->out);
	ca_key = xasprintf("%s/ca.key", a->out);
	r = cli_certs_load_ca(ca_pem, ca_key, &ca, &cakey, err, sizeof(err));
	if (r < 0)
		goto out;
	if (r == 1) {
		printf("using the cluster CA %s\n", ca_pem);
	} else {
		cakey = EVP_EC_gen("P-256");
		ca = cakey != NULL ? cli_certs_make(cakey, "meshtest cluster CA", NULL, cakey,
		    a->days, ca_exts) : NULL;
		if (ca == NULL) {
			snprintf(err, sizeof(err), "cannot make the CA: %s", cli_certs_ssl_error());
			goto out;
		}
		if (cli_certs_write(ca_key, cakey, NULL, err, sizeof(err)) < 0 ||
		    cli_certs_write(ca_pem, NULL, ca, err, sizeof(err)) < 0)
			goto out;
		printf("made the cluster CA %s (its key %s: keep it off the nodes)\n", ca_pem,
		    ca_key);
	}
	for (size_t i = 0; i < a->n; i++) {
		const struct cli_certs_ext_spec exts[] = {
			{ NID_basic_constraints, "critical,CA:FALSE" },
			{ NID_key_usage, "critical,digitalSignature" },
			{ NID_ext_key_usage, "serverAuth,clientAuth" },
			{ NID_subject_alt_name, san },
			{ NID_subject_key_identifier, "hash" },
			{ NID_authority_key_identifier, "keyid:always" },
			{ 0, NULL },
		};

		snprintf(san, sizeof(san), "%s:%s", a->is_ip[i] ? "IP" : "DNS", a->hosts[i]);
		k = EVP_EC_gen("P-256");
		x = k != NULL ? cli_certs_make(k, a->hosts[i], ca, cakey, a->days, exts) : NULL;
		if (x == NULL) {
			snprintf(err, sizeof(err), "cannot make the certificate of %s: %s",
			    a->hosts[i], cli_certs_ssl_error());
			goto out;
		}
		pem = xasprintf("%s/%s.pem", a->out, a->hosts[i]);
		key = xasprintf("%s/%s.key", a->out, a->hosts[i]);
		if (cli_certs_write(key, k, NULL, err, sizeof(err)) < 0 ||
		    cli_certs_write(pem, NULL, x, err, sizeof(err)) < 0)
			goto out;
		printf("%s %s  (%s)\n", pem, key, san);
		free(pem);
		free(key);
		pem = key = NULL;
		X509_free(x);
		EVP_PKEY_free(k);
		x = NULL;
		k = NULL;
	}
	rc = CLI_EXIT_OK;
out:
	if (rc != CLI_EXIT_OK)
		fprintf(stderr, "meshtest: certs: %s\n", err);
	X509_free(x);
	EVP_PKEY_free(k);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	free(pem);
	free(key);
	free(ca_pem);
	free(ca_key);
	free(a);
	return rc;
}
