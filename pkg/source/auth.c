/*
 * pkg/source: what a fetch asks of the credentials — libgit2's credential
 * callback (SSH key, username/password; a bearer token goes as a header,
 * fetch.c) and certificate callback (SSH host key against known_hosts, the
 * TLS certificate against the caFile or the system store).
 *
 * Threads: the callbacks run on the fetching thread inside
 * git_remote_fetch(); they read ctx->wd->fired (atomic, set by the
 * watchdog) and record the first failure in ctx (ctx_fail), which
 * fetch_error() turns into the fetch's code after it returns.
 */
#include "source/internal.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <git2.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "base/base.h"

static int ctx_fail(fetch_ctx *ctx, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ctx_fail(fetch_ctx *ctx, int code, const char *fmt, ...)
{
	va_list ap;

	if (!ctx->failed_code) {
		ctx->failed_code = code;
		va_start(ap, fmt);
		vsnprintf(ctx->failed_msg, sizeof(ctx->failed_msg), fmt, ap);
		va_end(ap);
	}
	return code == PLUMB_EAUTH ? GIT_EAUTH : GIT_ECERTIFICATE;
}

int source_cb_credentials(git_credential **out, const char *url,
	const char *username_from_url, unsigned int allowed, void *payload)
{
	fetch_ctx *ctx = payload;
	const source_credentials *c = ctx->creds;
	const char *user;
	int error;

	(void)url;
	if (atomic_load(&ctx->wd->fired))
		return GIT_EUSER;
	user = username_from_url && *username_from_url ? username_from_url :
		(c && c->username ? c->username : "git");

	if (allowed & (GIT_CREDENTIAL_SSH_KEY | GIT_CREDENTIAL_SSH_MEMORY)) {
		if (!c || !c->identity)
			return ctx_fail(ctx, PLUMB_EAUTH, "ssh authentication to %s needs a private key (identity)", ctx->shown);
		if (ctx->key_tries++ > 0)
			return ctx_fail(ctx, PLUMB_EAUTH, "ssh authentication to %s failed: the server refused the key", ctx->shown);
		error = git_credential_ssh_key_memory_new(out, user, NULL, c->identity, c->password);
		if (error < 0) {
			/* libssh2 without in-memory keys: a private 0600 file, removed after the fetch */
			if (!ctx->keyfile) {
				int fd;
				size_t len = strlen(c->identity);
				char *tmpl = plumb_asprintf("%s", "/tmp/plumb-key-XXXXXX");
				if (!tmpl)
					return ctx_fail(ctx, PLUMB_EAUTH, "out of memory");
				fd = mkstemp(tmpl);
				if (fd < 0 || write(fd, c->identity, len) != (ssize_t)len) {
					if (fd >= 0) {
						close(fd);
						unlink(tmpl);
					}
					free(tmpl);
					return ctx_fail(ctx, PLUMB_EAUTH, "cannot write the private key to a temporary file");
				}
				close(fd);
				ctx->keyfile = tmpl;
			}
			error = git_credential_ssh_key_new(out, user, NULL, ctx->keyfile, c->password);
		}
		return error;
	}
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user);
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		if (c && c->bearer_token)
			return ctx_fail(ctx, PLUMB_EAUTH, "authentication to %s failed: the bearer token was rejected", ctx->shown);
		if (!c || !c->username || !c->password)
			return ctx_fail(ctx, PLUMB_EAUTH, "authentication to %s failed: the server wants credentials and none were given", ctx->shown);
		if (ctx->pass_tries++ > 0)
			return ctx_fail(ctx, PLUMB_EAUTH, "authentication to %s failed: username/password rejected", ctx->shown);
		return git_credential_userpass_plaintext_new(out, c->username, c->password);
	}
	return ctx_fail(ctx, PLUMB_EAUTH, "authentication to %s failed: unsupported method asked by the server", ctx->shown);
}

static const char *ssh_keytype(git_cert_ssh_raw_type_t t)
{
	switch (t) {
	case GIT_CERT_SSH_RAW_TYPE_RSA: return "ssh-rsa";
	case GIT_CERT_SSH_RAW_TYPE_DSS: return "ssh-dss";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256: return "ecdsa-sha2-nistp256";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384: return "ecdsa-sha2-nistp384";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521: return "ecdsa-sha2-nistp521";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519: return "ssh-ed25519";
	default: return NULL;
	}
}

static void ssh_fingerprint(char *out, size_t outlen, const unsigned char *key, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *b64 = NULL;
	size_t n;

	SHA256(key, len, md);
	if (plumb_base64_encode(&b64, md, sizeof(md)) < 0) {
		snprintf(out, outlen, "SHA256:?");
		return;
	}
	n = strlen(b64);
	while (n && b64[n - 1] == '=')
		b64[--n] = '\0';
	snprintf(out, outlen, "SHA256:%s", b64);
	free(b64);
}

static int check_ssh_host(fetch_ctx *ctx, git_cert_hostkey *hk)
{
	const char *type;
	char fp[80], name[300];
	source_hostkey_result r;

	if (!(hk->type & GIT_CERT_SSH_RAW) || !(type = ssh_keytype(hk->raw_type)))
		return ctx_fail(ctx, PLUMB_EHOSTKEY, "ssh host key of %s: key type not supported", ctx->shown);
	ssh_fingerprint(fp, sizeof(fp), (const unsigned char *)hk->hostkey, hk->hostkey_len);
	if (ctx->url.port == 22)
		snprintf(name, sizeof(name), "%s", ctx->url.host);
	else
		snprintf(name, sizeof(name), "[%s]:%d", ctx->url.host, ctx->url.port);
	if (!ctx->creds || !ctx->creds->known_hosts)
		return ctx_fail(ctx, PLUMB_EHOSTKEY,
			"ssh host key of %s is unknown: no known_hosts given (%s %s)", name, type, fp);
	r = source_known_hosts_check(ctx->creds->known_hosts, ctx->url.host, ctx->url.port,
		type, (const unsigned char *)hk->hostkey, hk->hostkey_len);
	switch (r) {
	case SOURCE_HOSTKEY_OK:
		return 0;
	case SOURCE_HOSTKEY_CHANGED:
		return ctx_fail(ctx, PLUMB_EHOSTKEY,
			"ssh host key of %s has CHANGED: known_hosts has another %s key, the server offers %s",
			name, type, fp);
	case SOURCE_HOSTKEY_REVOKED:
		return ctx_fail(ctx, PLUMB_EHOSTKEY, "ssh host key of %s is revoked in known_hosts (%s %s)",
			name, type, fp);
	default:
		return ctx_fail(ctx, PLUMB_EHOSTKEY, "ssh host key of %s is unknown: not in known_hosts (%s %s)",
			name, type, fp);
	}
}

static int is_ip_literal(const char *host)
{
	return strspn(host, "0123456789.") == strlen(host) || strchr(host, ':') != NULL;
}

static int check_x509(fetch_ctx *ctx, git_cert_x509 *cert, const char *host)
{
	const unsigned char *p = cert->data;
	X509 *x = NULL;
	X509_STORE_CTX *sc = NULL;
	X509_VERIFY_PARAM *param;
	int ok = 0, verr = 0;

	x = d2i_X509(NULL, &p, (long)cert->len);
	if (!x || !(sc = X509_STORE_CTX_new()) || X509_STORE_CTX_init(sc, ctx->ca, x, NULL) != 1)
		goto cleanup;
	param = X509_STORE_CTX_get0_param(sc);
	X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
	if (is_ip_literal(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1 :
		X509_VERIFY_PARAM_set1_host(param, host, 0) != 1)
		goto cleanup;
	ok = X509_verify_cert(sc) == 1;
	if (!ok)
		verr = X509_STORE_CTX_get_error(sc);
cleanup:
	X509_STORE_CTX_free(sc);
	X509_free(x);
	if (ok)
		return 0;
	return ctx_fail(ctx, PLUMB_ETLS, "TLS verification of %s failed: %s (checked against the given caFile)",
		ctx->shown, verr ? X509_verify_cert_error_string(verr) : "unreadable certificate");
}

int source_cb_certificate(git_cert *cert, int valid, const char *host, void *payload)
{
	fetch_ctx *ctx = payload;

	if (atomic_load(&ctx->wd->fired))
		return GIT_EUSER;
	if (cert->cert_type == GIT_CERT_HOSTKEY_LIBSSH2)
		return check_ssh_host(ctx, (git_cert_hostkey *)cert);
	if (cert->cert_type == GIT_CERT_X509) {
		if (ctx->ca)
			return check_x509(ctx, (git_cert_x509 *)cert, host);
		if (valid)
			return 0;
		return ctx_fail(ctx, PLUMB_ETLS,
			"TLS verification of %s failed: certificate not trusted by the system store (no caFile given)",
			ctx->shown);
	}
	return valid ? 0 : ctx_fail(ctx, PLUMB_ETLS, "certificate of %s not trusted", ctx->shown);
}

int source_load_ca(X509_STORE **out, const char *pem)
{
	X509_STORE *store = NULL;
	BIO *bio = NULL;
	X509 *x;
	int n = 0, error = 0;

	if (!(store = X509_STORE_new()) || !(bio = BIO_new_mem_buf(pem, -1))) {
		error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		goto cleanup;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509_STORE_add_cert(store, x);
		X509_free(x);
		n++;
	}
	if (!n) {
		error = plumb_error_set(PLUMB_EINVALID, "source: caFile holds no PEM certificate");
		goto cleanup;
	}
	*out = store;
	store = NULL;
cleanup:
	BIO_free(bio);
	X509_STORE_free(store);
	return error;
}
