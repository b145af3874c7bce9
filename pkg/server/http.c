/* pkg/server: the HTTP server (libmicrohttpd) and webhook verification. */
#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_Result;
#else
typedef enum MHD_Result MHD_Result;
#endif

/* The same body for a missing GitSync and a bad signature, so a caller can't
 * probe which GitSyncs exist. */
static const char unauthorized_body[] = "webhook signature or token not accepted\n";

struct server {
	struct MHD_Daemon *daemon;
	server_opts opts;
	int port;
};

typedef struct {
	plumb_buf body;
	int too_big;
} request_ctx;

int server_webhook_verify(const char *github_sig256, const char *gitlab_token,
	const void *body, size_t body_len, const char *secret, size_t secret_len)
{
	if (!secret || secret_len == 0)
		return 0;
	if (github_sig256) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;
		char want[7 + 2 * EVP_MAX_MD_SIZE + 1];
		if (!HMAC(EVP_sha256(), secret, (int)secret_len, body, body_len, mac, &maclen))
			return 0;
		memcpy(want, "sha256=", 7);
		for (unsigned int i = 0; i < maclen; i++)
			snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
		size_t wantlen = 7 + 2 * (size_t)maclen;
		/* GitHub sends lowercase hex; accept uppercase too without leaking timing. */
		char got[sizeof(want)];
		size_t gotlen = strlen(github_sig256);
		if (gotlen == wantlen) {
			for (size_t i = 0; i < gotlen; i++)
				got[i] = (char)(i < 7 ? github_sig256[i] :
					(github_sig256[i] >= 'A' && github_sig256[i] <= 'F' ?
						github_sig256[i] + 32 : github_sig256[i]));
			if (plumb_ct_equal(got, gotlen, want, wantlen))
				return 1;
		}
	}
	if (gitlab_token && plumb_ct_equal(gitlab_token, strlen(gitlab_token), secret, secret_len))
		return 1;
	return 0;
}

static MHD_Result respond(struct MHD_Connection *conn, unsigned status,
	const char *content_type, const char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body,
		MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", content_type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return respond(conn, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Splits "/hooks/<ns>/<name>" into its parts. 0 on success. */
static int parse_hook_path(const char *url, char *ns, size_t nslen, char *name, size_t namelen)
{
	const char *p = url + strlen("/hooks/");
	const char *slash = strchr(p, '/');
	if (!slash || slash == p || !slash[1] || strchr(slash + 1, '/'))
		return -1;
	size_t n1 = (size_t)(slash - p), n2 = strlen(slash + 1);
	if (n1 >= nslen || n2 >= namelen)
		return -1;
	memcpy(ns, p, n1);
	ns[n1] = '\0';
	memcpy(name, slash + 1, n2 + 1);
	for (const char *c = ns; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
			return -1;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
			return -1;
	return 0;
}

static MHD_Result handle_hook(server *s, struct MHD_Connection *conn, const char *url,
	request_ctx *ctx)
{
	char ns[254], name[254];
	char *secret = NULL;
	size_t secret_len = 0;
	if (ctx->too_big)
		return respond_text(conn, 413, "webhook body too large\n");
	if (parse_hook_path(url, ns, sizeof(ns), name, sizeof(name)) != 0)
		return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	const char *gh = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Hub-Signature-256");
	const char *gl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Gitlab-Token");
	int ok = 0;
	if (s->opts.secret(&secret, &secret_len, ns, name, s->opts.data) == 0) {
		ok = server_webhook_verify(gh, gl, ctx->body.ptr ? ctx->body.ptr : "",
			ctx->body.len, secret, secret_len);
		OPENSSL_cleanse(secret, secret_len);
		free(secret);
	}
	char who[512];
	snprintf(who, sizeof(who), "%s/%s", ns, name);
	if (!ok) {
		plumb_info("webhook rejected", "gitsync", who);
		return respond_text(conn, MHD_HTTP_UNAUTHORIZED, unauthorized_body);
	}
	plumb_info("webhook accepted", "gitsync", who);
	if (s->opts.trigger)
		s->opts.trigger(ns, name, s->opts.data);
	return respond(conn, MHD_HTTP_ACCEPTED, "application/json", "{\"accepted\":true}\n", 18);
}

static MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
	const char *method, const char *version, const char *upload_data,
	size_t *upload_data_size, void **con_cls)
{
	(void)version;
	server *s = cls;
	request_ctx *ctx = *con_cls;
	int is_hook = s->opts.secret && strncmp(url, "/hooks/", 7) == 0;

	if (!ctx) {
		ctx = calloc(1, sizeof(*ctx));
		if (!ctx)
			return MHD_NO;
		plumb_buf_init(&ctx->body, s->opts.max_body ? s->opts.max_body : 1024 * 1024);
		*con_cls = ctx;
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* Keep reading past the cap (discarding) so the answer can be sent. */
		if (!is_hook || ctx->too_big ||
		    plumb_buf_append(&ctx->body, upload_data, *upload_data_size) != 0)
			ctx->too_big = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}

	if (is_hook) {
		if (strcmp(method, "POST") != 0)
			return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST\n");
		return handle_hook(s, conn, url, ctx);
	}
	/* What this listener does not serve is not there, whatever the method:
	 * a webhook-only listener answers /metrics like any unknown path. */
	int served = (s->opts.metrics && strcmp(url, "/metrics") == 0) ||
		(s->opts.ready && (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0));
	if (!served)
		return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (s->opts.metrics && strcmp(url, "/metrics") == 0) {
		plumb_buf b = PLUMB_BUF_INIT(64 * 1024 * 1024);
		server_metrics_render(s->opts.metrics, &b);
		MHD_Result r = respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
			b.ptr ? b.ptr : "", b.len);
		plumb_buf_free(&b);
		return r;
	}
	if (s->opts.ready && strcmp(url, "/healthz") == 0)
		return respond_text(conn, MHD_HTTP_OK, "ok\n");
	if (s->opts.ready && strcmp(url, "/readyz") == 0) {
		char why[256] = "";
		if (s->opts.ready(why, sizeof(why), s->opts.data))
			return respond_text(conn, MHD_HTTP_OK, "ok\n");
		char body[300];
		snprintf(body, sizeof(body), "not ready: %s\n", why);
		return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
	}
	return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)conn, (void)toe;
	request_ctx *ctx = *con_cls;
	if (ctx) {
		plumb_buf_free(&ctx->body);
		free(ctx);
		*con_cls = NULL;
	}
}

/* Parses "host:port", ":port", "port" or "[v6]:port" into a socket address. */
static int parse_addr(struct sockaddr_storage *ss, socklen_t *sslen, const char *addr)
{
	char host[128] = "";
	const char *port = addr;
	memset(ss, 0, sizeof(*ss));
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof(host))
			goto bad;
		memcpy(host, addr + 1, (size_t)(end - addr - 1));
		port = end + 2;
	} else if (strchr(addr, ':')) {
		const char *colon = strrchr(addr, ':');
		if ((size_t)(colon - addr) >= sizeof(host))
			goto bad;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
		port = colon + 1;
	}
	char *end;
	long p = strtol(port, &end, 10);
	if (*port == '\0' || *end || p < 0 || p > 65535)
		goto bad;
	if (strchr(host, ':')) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)p);
		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			goto bad;
		*sslen = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)p);
		if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
			a4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (strcmp(host, "localhost") == 0)
			a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			goto bad;
		*sslen = sizeof(*a4);
	}
	return 0;
bad:
	return plumb_error_set(PLUMB_EINVALID,
		"listen address \"%s\": want host:port, :port or [v6]:port", addr);
}

int server_start(server **out, const server_opts *opts)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	int rc = parse_addr(&ss, &sslen, opts->addr ? opts->addr : ":0");
	if (rc)
		return rc;
	if ((opts->secret == NULL) != (opts->trigger == NULL))
		return plumb_error_set(PLUMB_EINVALID, "server: webhooks need both secret and trigger");
	server *s = calloc(1, sizeof(*s));
	if (!s)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	s->opts = *opts;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, &handler, s,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_NOTIFY_COMPLETED, &completed, s,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)15,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)16,
		MHD_OPTION_END);
	if (!s->daemon) {
		free(s);
		return plumb_error_set(PLUMB_EIO, "server: cannot listen on %s", opts->addr);
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	*out = s;
	return 0;
}

int server_port(const server *s)
{
	return s ? s->port : 0;
}

void server_free(server *s)
{
	if (!s)
		return;
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	free(s);
}
