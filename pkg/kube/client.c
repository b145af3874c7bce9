/* pkg/kube: the HTTP client — libcurl handle pool, TLS and auth, rate limit,
 * retries, error mapping. */
#include "kube/kube_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define POOL_MAX 16
#define RETRY_BASE 0.2
#define RETRY_MAX 10.0
#define RETRY_AFTER_MAX 30.0

struct kube_client {
	atomic_int refs;          /* the owner's, plus one per live watch stream */
	kube_config *cfg;
	char *name;
	char *user_agent;
	double timeout;
	int max_retries;
	size_t max_body;
	size_t max_watch_line;
	kube_request_hook hook;
	void *hook_data;

	/* An impersonating client (kube_client_impersonate) has a base whose
	 * connection pool, TLS sessions, rate limit and discovery cache it
	 * uses (root()); its own pool, share and cache stay empty. */
	kube_client *base;
	char *imp_user;           /* Impersonate-User, or NULL */
	char **imp_groups;        /* Impersonate-Group values, NULL-terminated, or NULL */

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX];
	int npool;

	pthread_mutex_t rl_lock;
	kube_ratelimit rl;

	/* discovery cache, see discovery.c */
	pthread_mutex_t disc_lock;
	kube_resource_set disc;
	int disc_loaded;
	double disc_at;
};

/* The client that owns the connections, rate limit and discovery cache. */
static kube_client *root(kube_client *c)
{
	return c->base ? c->base : c;
}

/* discovery.c reaches the cache through these. */
kube_resource_set *kube_client_disc(kube_client *c, pthread_mutex_t **lock, int **loaded, double **at);
kube_resource_set *kube_client_disc(kube_client *c, pthread_mutex_t **lock, int **loaded, double **at)
{
	c = root(c);
	*lock = &c->disc_lock;
	*loaded = &c->disc_loaded;
	*at = &c->disc_at;
	return &c->disc;
}

/* ---- last status per thread ----------------------------------------------- */
static _Thread_local int last_status;
static _Thread_local char last_reason[64];

int kube_last_http_status(void) { return last_status; }
const char *kube_last_reason(void) { return last_reason; }

void kube_set_last(int http_status, const char *reason)
{
	last_status = http_status;
	snprintf(last_reason, sizeof(last_reason), "%s", reason ? reason : "");
}

static const char *http_phrase(int s)
{
	switch (s) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Request Entity Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

int kube_status_error(int http_status, const char *body, size_t len, const char *what)
{
	cJSON *st = NULL;
	const char *reason = NULL, *message = NULL;
	int code, fieldconflict = 0;

	if (body && len > 0 && len <= KUBE_ERRBODY_MAX)
		st = cJSON_ParseWithLength(body, len);
	if (st) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(st, "reason");
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(st, "message");
		const cJSON *causes = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(st, "details"), "causes");
		const cJSON *cause;
		if (cJSON_IsString(r) && r->valuestring[0])
			reason = r->valuestring;
		if (cJSON_IsString(m) && m->valuestring[0])
			message = m->valuestring;
		cJSON_ArrayForEach(cause, causes) {
			/* Go's StatusCause.Type is "reason" on the wire; accept both. */
			const cJSON *t = cJSON_GetObjectItemCaseSensitive(cause, "reason");
			const cJSON *t2 = cJSON_GetObjectItemCaseSensitive(cause, "type");
			if ((cJSON_IsString(t) && !strcmp(t->valuestring, "FieldManagerConflict")) ||
			    (cJSON_IsString(t2) && !strcmp(t2->valuestring, "FieldManagerConflict")))
				fieldconflict = 1;
		}
	}

	switch (http_status) {
	case 400: case 422: code = PLUMB_EINVALID; break;
	case 401: code = PLUMB_EAUTH; break;
	case 403: code = PLUMB_EFORBIDDEN; break;
	case 404: code = PLUMB_ENOTFOUND; break;
	case 409:
		if (fieldconflict)
			code = PLUMB_EFIELDCONFLICT;
		else if (reason && !strcmp(reason, "AlreadyExists"))
			code = PLUMB_EEXISTS;
		else
			code = PLUMB_ECONFLICT;
		break;
	case 410: code = PLUMB_EEXPIRED; break;
	case 429: code = PLUMB_ETHROTTLED; break;
	default:
		if (http_status >= 500 && http_status <= 599)
			code = PLUMB_EUNAVAILABLE;
		else if (http_status == 408)
			code = PLUMB_ETIMEOUT;
		else if (http_status == 413)
			code = PLUMB_ETOOBIG;
		else
			code = PLUMB_ERROR;
	}
	kube_set_last(http_status, reason);
	if (message)
		plumb_error_set(code, "%s: %d %s: %s", what, http_status, reason ? reason : http_phrase(http_status), message);
	else
		plumb_error_set(code, "%s: %d %s", what, http_status, reason ? reason : http_phrase(http_status));
	cJSON_Delete(st);
	return code;
}

int kube_curl_error(CURLcode rc, const char *what, const char *detail)
{
	int code;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		code = PLUMB_EUNREACHABLE;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		code = PLUMB_ETIMEOUT;
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
		code = PLUMB_ETLS;
		break;
	case CURLE_WRITE_ERROR:
		code = PLUMB_ETOOBIG;
		break;
	case CURLE_OUT_OF_MEMORY:
		code = PLUMB_ENOMEM;
		break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		code = PLUMB_EUNAVAILABLE;
		break;
	default:
		code = PLUMB_EUNAVAILABLE;
	}
	kube_set_last(0, NULL);
	return plumb_error_set(code, "%s: %s%s%s", what, curl_easy_strerror(rc),
		detail && *detail ? ": " : "", detail && *detail ? detail : "");
}

static int retryable(int code)
{
	return code == PLUMB_EUNAVAILABLE || code == PLUMB_ETHROTTLED || code == PLUMB_EUNREACHABLE;
}

/* ---- rate limit -------------------------------------------------------------- */

void kube_ratelimit_init(kube_ratelimit *rl, double qps, int burst, double now)
{
	rl->qps = qps;
	rl->burst = burst < 1 ? 1 : burst;
	rl->tokens = rl->burst;
	rl->last = now;
}

double kube_ratelimit_reserve(kube_ratelimit *rl, double now)
{
	if (rl->qps <= 0)
		return 0;
	if (now > rl->last) {
		rl->tokens += (now - rl->last) * rl->qps;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
		rl->last = now;
	}
	rl->tokens -= 1;
	return rl->tokens >= 0 ? 0 : -rl->tokens / rl->qps;
}

/* ---- Retry-After ---------------------------------------------------------------- */

int kube_parse_retry_after(double *out, const char *value, double now_real)
{
	const char *p = value;
	char *end = NULL;
	struct tm tm;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p >= '0' && *p <= '9') {
		long v = strtol(p, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (*end || v < 0)
			return plumb_error_set(PLUMB_EINVALID, "Retry-After \"%.40s\": not a number of seconds", value);
		*out = (double)v;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(p, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end)
		return plumb_error_set(PLUMB_EINVALID, "Retry-After \"%.40s\": neither seconds nor an HTTP date", value);
	while (*end == ' ' || *end == '\r' || *end == '\n')
		end++;
	if (*end)
		return plumb_error_set(PLUMB_EINVALID, "Retry-After \"%.40s\": trailing text", value);
	double t = (double)timegm(&tm) - now_real;
	*out = t > 0 ? t : 0;
	return 0;
}

/* ---- client ---------------------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a, void *u)
{
	(void)h; (void)a;
	kube_client *c = u;
	pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u)
{
	(void)h;
	kube_client *c = u;
	pthread_mutex_unlock(&c->share_locks[data]);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int kube_client_new(kube_client **out, kube_config *cfg, const kube_client_opts *opts)
{
	kube_client_opts d = { 0 };
	kube_client *c;
	if (!cfg)
		return plumb_error_set(PLUMB_EINVALID, "kube client: no config");
	if (opts)
		d = *opts;
	pthread_once(&curl_once, curl_init_once);
	c = calloc(1, sizeof(*c));
	if (c)
		atomic_init(&c->refs, 1);
	if (!c)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	c->cfg = kube_config_ref(cfg);
	c->name = plumb_strdup(d.name ? d.name : "default");
	c->user_agent = plumb_strdup(d.user_agent ? d.user_agent : "plumb/0.1");
	c->timeout = d.timeout > 0 ? d.timeout : 30;
	c->max_retries = d.max_retries == 0 ? 4 : d.max_retries < 0 ? 0 : d.max_retries;
	c->max_body = d.max_body ? d.max_body : 64u * 1024 * 1024;
	c->max_watch_line = d.max_watch_line ? d.max_watch_line : 16u * 1024 * 1024;
	c->hook = d.on_request;
	c->hook_data = d.hook_data;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_mutex_init(&c->rl_lock, NULL);
	pthread_mutex_init(&c->disc_lock, NULL);
	kube_ratelimit_init(&c->rl, d.qps == 0 ? 50 : d.qps, d.burst ? d.burst : 100, plumb_time_mono());
	c->share = curl_share_init();
	if (!c->name || !c->user_agent || !c->share) {
		kube_client_free(c);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = c;
	return 0;
}

void kube_client_ref(kube_client *c)
{
	atomic_fetch_add(&c->refs, 1);
}

void kube_client_free(kube_client *c)
{
	/* A watch stream stopped a moment ago may still be winding down on the
	 * hub thread (or its LIST thread): the last reference frees. */
	if (!c || atomic_fetch_sub(&c->refs, 1) > 1)
		return;
	for (int i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->rl_lock);
	pthread_mutex_destroy(&c->disc_lock);
	kube_resource_set_free(&c->disc);
	kube_config_free(c->cfg);
	free(c->name);
	free(c->user_agent);
	free(c->imp_user);
	for (size_t i = 0; c->imp_groups && c->imp_groups[i]; i++)
		free(c->imp_groups[i]);
	free(c->imp_groups);
	kube_client_free(c->base);
	free(c);
}

/* A header value plumb sends on a tenant's behalf: printable ASCII only, so
 * a name can never end a header line or start another. */
static int header_value_ok(const char *v)
{
	size_t n = v ? strlen(v) : 0;
	if (n == 0 || n > 512)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
			return 0;
	return 1;
}

int kube_client_impersonate(kube_client **out, kube_client *base, const char *user,
	const char *const *groups)
{
	kube_client *c = NULL;
	size_t ngroups = 0;
	if (!base)
		return plumb_error_set(PLUMB_EINVALID, "kube client: no base client");
	if (!header_value_ok(user))
		return plumb_error_set(PLUMB_EINVALID, "impersonate: user name \"%.64s\" is empty, "
			"longer than 512 bytes or not printable ASCII", user ? user : "");
	while (groups && groups[ngroups]) {
		if (!header_value_ok(groups[ngroups]))
			return plumb_error_set(PLUMB_EINVALID, "impersonate: group \"%.64s\" is empty, "
				"longer than 512 bytes or not printable ASCII", groups[ngroups]);
		ngroups++;
	}
	base = root(base);
	c = calloc(1, sizeof(*c));
	if (!c)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	atomic_init(&c->refs, 1);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_mutex_init(&c->rl_lock, NULL);
	pthread_mutex_init(&c->disc_lock, NULL);
	kube_client_ref(base);
	c->base = base;
	c->cfg = kube_config_ref(base->cfg);
	c->name = plumb_strdup(base->name);
	c->user_agent = plumb_strdup(base->user_agent);
	c->timeout = base->timeout;
	c->max_retries = base->max_retries;
	c->max_body = base->max_body;
	c->max_watch_line = base->max_watch_line;
	c->hook = base->hook;
	c->hook_data = base->hook_data;
	c->imp_user = plumb_strdup(user);
	c->imp_groups = calloc(ngroups + 1, sizeof(*c->imp_groups));
	int oom = !c->name || !c->user_agent || !c->imp_user || !c->imp_groups;
	for (size_t i = 0; !oom && i < ngroups; i++)
		oom = !(c->imp_groups[i] = plumb_strdup(groups[i]));
	if (oom) {
		kube_client_free(c);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	*out = c;
	return 0;
}

const char *kube_client_impersonated(const kube_client *c)
{
	return c ? c->imp_user : NULL;
}

/* DNS-1123 label (namespaces): [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63. */
static int dns_label_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

int kube_service_account_user(char *out, size_t outlen, const char *ns, const char *name)
{
	size_t nlen = name ? strlen(name) : 0;
	if (!ns || !dns_label_ok(ns, strlen(ns)))
		return plumb_error_set(PLUMB_EINVALID, "service account namespace \"%.64s\" is not a valid "
			"namespace name", ns ? ns : "");
	/* DNS-1123 subdomain: dot-separated labels, at most 253 bytes */
	int ok = nlen > 0 && nlen <= 253;
	for (size_t i = 0, start = 0; ok && i <= nlen; i++)
		if (i == nlen || name[i] == '.') {
			ok = dns_label_ok(name + start, i - start);
			start = i + 1;
		}
	if (!ok)
		return plumb_error_set(PLUMB_EINVALID, "serviceAccountName \"%.64s\" is not a valid service "
			"account name (lowercase letters, digits, '-' and '.', at most 253)", name ? name : "");
	if ((size_t)snprintf(out, outlen, "system:serviceaccount:%s:%s", ns, name) >= outlen)
		return plumb_error_set(PLUMB_EINVALID, "service account user name too long");
	return 0;
}

const char *kube_client_name(const kube_client *c) { return c->name; }
const kube_config *kube_client_config(const kube_client *c) { return c->cfg; }
kube_config *kube_client_cfg(kube_client *c) { return c->cfg; }
size_t kube_client_max_body(const kube_client *c) { return c->max_body; }
size_t kube_client_max_watch_line(const kube_client *c) { return c->max_watch_line; }

void kube_client_hook(kube_client *c, const char *verb, int code, double seconds)
{
	if (c->hook)
		c->hook(c->hook_data, c->name, verb, code, seconds);
}

static CURL *pool_get(kube_client *c)
{
	CURL *h = NULL;
	c = root(c);
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool > 0)
		h = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_reset(h);   /* keeps live connections and the session cache */
	else
		h = curl_easy_init();
	return h;
}

void kube_client_shrink(kube_client *c, int keep)
{
	CURL *drop[POOL_MAX];
	int n = 0;
	if (!c)
		return;
	c = root(c);
	if (keep < 0)
		keep = 0;
	pthread_mutex_lock(&c->pool_lock);
	/* the most recently used stay (they are at the top) */
	while (c->npool > keep) {
		drop[n++] = c->pool[0];
		memmove(&c->pool[0], &c->pool[1], (size_t)(c->npool - 1) * sizeof(c->pool[0]));
		c->npool--;
	}
	pthread_mutex_unlock(&c->pool_lock);
	for (int i = 0; i < n; i++)
		curl_easy_cleanup(drop[i]);
}

static void pool_put(kube_client *c, CURL *h)
{
	c = root(c);
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool < POOL_MAX) {
		c->pool[c->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* Splits "https://host:port" into host and port for CONNECT_TO. */
static int server_host_port(char *host, size_t hostlen, char *port, size_t portlen, const char *server)
{
	const char *p = strstr(server, "://");
	const char *hs, *he, *ps;
	p = p ? p + 3 : server;
	hs = p;
	if (*p == '[') {
		he = strchr(p, ']');
		if (!he)
			return -1;
		he++;
	} else {
		he = p + strcspn(p, ":/");
	}
	if ((size_t)(he - hs) >= hostlen)
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	if (*he == ':') {
		ps = he + 1;
		size_t n = strcspn(ps, "/");
		if (n >= portlen)
			return -1;
		memcpy(port, ps, n);
		port[n] = '\0';
	} else {
		snprintf(port, portlen, "%s", strncmp(server, "http://", 7) ? "443" : "80");
	}
	return 0;
}

int kube_client_setup(kube_client *c, CURL *h, const char *path,
	const char *accept, double timeout, const kube_creds *creds,
	struct curl_slist **headers, struct curl_slist **connect_to)
{
	kube_config *cfg = c->cfg;
	char *url = NULL, *hdr = NULL;
	struct curl_slist *l = NULL;
	int rc = 0;

	*headers = NULL;
	*connect_to = NULL;

	if (cfg->tls_server_name) {
		/* Verify the certificate against tls-server-name: address the
		 * request to that name and connect it to the real host. */
		char host[300], port[16], mapping[700];
		if (server_host_port(host, sizeof(host), port, sizeof(port), cfg->server) < 0)
			return plumb_error_set(PLUMB_EINVALID, "kube client %s: cannot parse server URL", c->name);
		url = plumb_asprintf("https://%s:%s%s", cfg->tls_server_name, port, path);
		snprintf(mapping, sizeof(mapping), "%s:%s:%s:%s", cfg->tls_server_name, port, host, port);
		*connect_to = curl_slist_append(NULL, mapping);
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, *connect_to);
	} else {
		url = plumb_asprintf("%s%s", cfg->server, path);
	}
	if (!url) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_SHARE, root(c)->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (cfg->proxy_url)
		curl_easy_setopt(h, CURLOPT_PROXY, cfg->proxy_url);
	{
		double ct = timeout > 0 && timeout < 10 ? timeout : 10;
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(ct * 1000));
	}
	if (timeout > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
	else
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);

	if (cfg->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
		if (cfg->ca) {
			struct curl_blob b = { cfg->ca, cfg->ca_len, CURL_BLOB_COPY };
			curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
		}
	}
	if (creds->cert && creds->key) {
		struct curl_blob cb = { creds->cert, creds->cert_len, CURL_BLOB_COPY };
		struct curl_blob kb = { creds->key, creds->key_len, CURL_BLOB_COPY };
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (creds->token) {
		hdr = plumb_asprintf("Authorization: Bearer %s", creds->token);
		if (!hdr) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		l = curl_slist_append(l, hdr);
		explicit_bzero(hdr, strlen(hdr));
	} else if (creds->username && creds->password) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, creds->username);
		curl_easy_setopt(h, CURLOPT_PASSWORD, creds->password);
	}
	free(hdr);
	hdr = NULL;
	/* The identity this client acts as (validated in kube_client_impersonate). */
	if (c->imp_user) {
		hdr = plumb_asprintf("Impersonate-User: %s", c->imp_user);
		l = hdr ? curl_slist_append(l, hdr) : NULL;
		free(hdr);
		hdr = NULL;
		for (size_t i = 0; l && c->imp_groups && c->imp_groups[i]; i++) {
			hdr = plumb_asprintf("Impersonate-Group: %s", c->imp_groups[i]);
			struct curl_slist *nl = hdr ? curl_slist_append(l, hdr) : NULL;
			free(hdr);
			hdr = NULL;
			if (!nl) {
				curl_slist_free_all(l);
				l = NULL;
			} else {
				l = nl;
			}
		}
		if (!l) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
	}
	hdr = plumb_asprintf("Accept: %s", accept ? accept : "application/json");
	l = curl_slist_append(l, hdr);
	*headers = l;
	l = NULL;
cleanup:
	free(url);
	free(hdr);
	curl_slist_free_all(l);
	return rc;
}

typedef struct {
	kube_resp *resp;
	int overflow;
	double retry_after;
	int have_retry_after;
} xfer;

static size_t on_body(char *data, size_t size, size_t n, void *u)
{
	xfer *x = u;
	if (plumb_buf_append(&x->resp->body, data, size * n) < 0) {
		x->overflow = 1;
		return 0;
	}
	return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *u)
{
	xfer *x = u;
	size_t len = size * n;
	char line[256];
	if (len >= sizeof(line))
		return len;
	memcpy(line, data, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (!strncasecmp(line, "HTTP/", 5)) {
		x->have_retry_after = 0;
		x->resp->content_type[0] = '\0';
	} else if (!strncasecmp(line, "content-type:", 13)) {
		const char *v = line + 13;
		while (*v == ' ')
			v++;
		snprintf(x->resp->content_type, sizeof(x->resp->content_type), "%s", v);
	} else if (!strncasecmp(line, "retry-after:", 12)) {
		double s;
		if (kube_parse_retry_after(&s, line + 12, plumb_time_real()) == 0) {
			x->retry_after = s;
			x->have_retry_after = 1;
		}
	}
	return len;
}

int kube_client_do(kube_client *c, const kube_req *req, kube_resp *resp)
{
	int rc = 0, refreshed = 0;
	int attempt = 0;
	kube_creds creds;
	CURL *h = NULL;
	struct curl_slist *headers = NULL, *connect_to = NULL;

	memset(&creds, 0, sizeof(creds));
	resp->status = 0;
	resp->content_type[0] = '\0';
	plumb_buf_init(&resp->body, c->max_body);

	for (;;) {
		xfer x = { resp, 0, 0, 0 };
		char errbuf[CURL_ERROR_SIZE] = "";
		double wait, t0;
		CURLcode cc;

		pthread_mutex_lock(&root(c)->rl_lock);
		wait = kube_ratelimit_reserve(&root(c)->rl, plumb_time_mono());
		pthread_mutex_unlock(&root(c)->rl_lock);
		if (wait > 0)
			plumb_sleep(wait);

		kube_creds_clear(&creds);
		if ((rc = kube_config_creds(&creds, c->cfg, 0)) < 0)
			goto cleanup;
		h = pool_get(c);
		if (!h) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		if ((rc = kube_client_setup(c, h, req->path, req->accept, c->timeout, &creds, &headers, &connect_to)) < 0)
			goto cleanup;
		/* One request at a time on a pooled handle's own connection:
		 * HTTP/2 would multiplex nothing and costs ~40 KiB a connection
		 * (curl's 32 KiB frame buffer, the nghttp2 session); watches on
		 * the hub keep the default. */
		curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		if (req->body) {
			char *ct = plumb_asprintf("Content-Type: %s", req->content_type ? req->content_type : "application/json");
			headers = curl_slist_append(headers, ct);
			free(ct);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		}
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		if (!strcmp(req->method, "GET"))
			curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		plumb_buf_reset(&resp->body);

		t0 = plumb_time_mono();
		cc = curl_easy_perform(h);
		resp->status = 0;
		if (cc == CURLE_OK) {
			long st = 0;
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
			resp->status = st;
		}
		kube_client_hook(c, req->verb, (int)resp->status, plumb_time_mono() - t0);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, NULL);
		curl_slist_free_all(headers);
		curl_slist_free_all(connect_to);
		headers = connect_to = NULL;
		pool_put(c, h);
		h = NULL;

		if (cc != CURLE_OK) {
			if (x.overflow)
				rc = plumb_error_set(PLUMB_ETOOBIG, "%s: response larger than %zu bytes", req->what, c->max_body);
			else
				rc = kube_curl_error(cc, req->what, errbuf);
		} else if (resp->status >= 200 && resp->status < 300) {
			kube_set_last((int)resp->status, NULL);
			rc = 0;
			goto cleanup;
		} else {
			rc = kube_status_error((int)resp->status, resp->body.ptr, resp->body.len, req->what);
		}

		if (rc == PLUMB_EAUTH && !refreshed && kube_config_refreshable(c->cfg)) {
			kube_creds tmp;
			int rrc;
			refreshed = 1;
			/* A rotated token or an expired exec credential: fetch anew, try again. */
			rrc = kube_config_creds(&tmp, c->cfg, 1);
			if (rrc == 0) {
				kube_creds_clear(&tmp);
				continue;
			}
			goto cleanup;
		}
		if (!retryable(rc) || attempt >= c->max_retries)
			goto cleanup;
		wait = plumb_backoff((unsigned)attempt, RETRY_BASE, RETRY_MAX, 0.5);
		if (x.have_retry_after)
			wait = x.retry_after > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : x.retry_after;
		plumb_debug("kube request retry", "cluster", c->name, "request", req->what, "error", plumb_error_last());
		plumb_sleep(wait);
		attempt++;
	}
cleanup:
	if (h)
		curl_easy_cleanup(h);
	curl_slist_free_all(headers);
	curl_slist_free_all(connect_to);
	kube_creds_clear(&creds);
	return rc;
}
