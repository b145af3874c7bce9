/*
 * pkg/kube internals shared by the module's .c files and its unit tests.
 * Not a public API: nothing outside pkg/kube and tests/unit/test_kube.c
 * includes this.
 */
#ifndef PLUMB_KUBE_INTERNAL_H
#define PLUMB_KUBE_INTERNAL_H

#include "base/base.h"
#include "kube/kube.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <curl/curl.h>

#define KUBE_CONFIG_MAX (4u * 1024 * 1024)    /* kubeconfig bytes */
#define KUBE_CRED_FILE_MAX (256u * 1024)      /* token, cert, key files */
#define KUBE_EXEC_OUTPUT_MAX (1024u * 1024)   /* exec plugin stdout */
#define KUBE_ERRBODY_MAX (1024u * 1024)       /* body kept for error messages */

/* Takes another reference on c: kube_client_free() drops one. */
void kube_client_ref(kube_client *c);

/* ---- config.c (the credentials: creds.c) ---- */
struct kube_config {
	atomic_int refs;
	char *origin;
	char *context;
	char *server;
	char *ns;
	char *tls_server_name;
	char *proxy_url;     /* proxy-url; NULL = libcurl's default (env) */
	int insecure;
	char *ca;            /* PEM bytes */
	size_t ca_len;
	char *cert;          /* PEM bytes */
	size_t cert_len;
	char *key;
	size_t key_len;
	char *token;         /* static token */
	char *token_file;    /* re-read about every minute and after a 401 */
	char *username;
	char *password;
	/* exec plugin */
	char *exec_command;  /* as the kubeconfig names it (messages) */
	char *exec_path;     /* resolved in our PATH (tenant kubeconfigs); NULL = posix_spawnp */
	char **exec_argv;    /* NULL-terminated, argv[0] = command */
	char **exec_env;     /* NULL-terminated "NAME=value" */
	char *exec_api_version;
	double exec_timeout;    /* seconds a run may take; 0 = 30 */

	pthread_mutex_t refresh_lock; /* one exec plugin run / token read at a time */
	pthread_mutex_t lock;   /* guards the dynamic credentials below */
	char *dyn_token;
	double dyn_token_at;    /* monotonic time read */
	double dyn_expiry;      /* wall time; 0 = none */
	char *dyn_cert;
	size_t dyn_cert_len;
	char *dyn_key;
	size_t dyn_key_len;
};

/* A snapshot of credentials for one request. Free with kube_creds_clear(). */
typedef struct {
	char *token;
	char *cert;
	size_t cert_len;
	char *key;
	size_t key_len;
	const char *username;   /* borrowed from cfg */
	const char *password;
} kube_creds;

/* Fills creds; force = re-read the token file / re-run the exec plugin.
 * KUBE_CREDS_NO_EXEC in force: never run an exec plugin (the watch hub
 * thread); PLUMB_EAUTH when its credential is missing or expired. */
#define KUBE_CREDS_FORCE 1
#define KUBE_CREDS_NO_EXEC 2
int kube_config_creds(kube_creds *out, kube_config *cfg, int force);
/* 1 when kube_config_creds(cfg, force) would run the exec plugin. */
int kube_config_creds_need_exec(kube_config *cfg, int force);
void kube_creds_clear(kube_creds *creds);
/* 1 when a 401 might be cured by kube_config_creds(.., force=1). */
int kube_config_refreshable(const kube_config *cfg);
kube_config *kube_config_ref(kube_config *cfg);

/* YAML (or JSON) text to cJSON with pkg/yamljson's YAMLJSON_KUBECONFIG
 * typing: plain scalars stay strings except true/True/TRUE, false/False/FALSE
 * and null/Null/NULL/~/empty; tags are not looked at. Reads the first
 * document only; caps size, depth, nodes and expanded bytes. origin names
 * errors ("kubeconfig ORIGIN: line L column C: ..."). */
int kube_yaml_to_json(cJSON **out, const char *data, size_t len, const char *origin);

/* ---- creds.c ---- */

/* Parses an ExecCredential JSON answer into cfg's dynamic credentials
 * (locks cfg). */
int kube_exec_credential_parse(kube_config *cfg, const char *data, size_t len);
/* Wipes n bytes of p (strlen(p) when n is 0) and frees it. NULL-safe. */
void kube_secure_free(char *p, size_t n);
/* A NUL-terminated copy of the n bytes at p (which may hold NULs); NULL on ENOMEM. */
char *kube_dup_bytes(const char *p, size_t n);

/* ---- client.c ---- */

/* Token bucket: qps refill, burst size. kube_ratelimit_reserve() takes one
 * token (the balance may go negative: a reservation) and returns how long
 * to wait before sending, in seconds. qps <= 0: never waits. */
typedef struct {
	double qps;
	double burst;
	double tokens;
	double last;
} kube_ratelimit;

void kube_ratelimit_init(kube_ratelimit *rl, double qps, int burst, double now);
double kube_ratelimit_reserve(kube_ratelimit *rl, double now);

/* Retry-After: delta-seconds or an HTTP-date; *out seconds from now (>= 0).
 * PLUMB_EINVALID when neither. */
int kube_parse_retry_after(double *out, const char *value, double now_real);

/* Maps an HTTP error answer to a code and sets the message
 * "<what>: <status> <reason>: <message>". body may be NULL or not JSON.
 * Also records kube_last_http_status()/kube_last_reason(). */
int kube_status_error(int http_status, const char *body, size_t len, const char *what);
void kube_set_last(int http_status, const char *reason);

/* Maps a libcurl failure to a code and sets "<what>: <curl message>". */
int kube_curl_error(CURLcode rc, const char *what, const char *detail);

typedef struct {
	const char *method;
	const char *verb;          /* for the request hook */
	const char *path;          /* after the server URL */
	const char *accept;        /* NULL = application/json */
	const char *content_type;  /* with body */
	const char *body;
	size_t body_len;
	const char *what;          /* "GET configmaps \"x\" in ns \"y\"" */
} kube_req;

typedef struct {
	long status;
	plumb_buf body;
	char content_type[160];
} kube_resp;

/* One request with rate limit, retries and error mapping. resp->body is
 * initialised here; the caller frees it with plumb_buf_free() (also on
 * error). Returns 0 on 2xx. */
int kube_client_do(kube_client *c, const kube_req *req, kube_resp *resp);

/* Prepares a fresh or pooled easy handle with URL, TLS, auth and timeouts
 * (timeout <= 0: no total timeout, used by watches). headers and connect_to
 * receive lists the caller frees with curl_slist_free_all() after the transfer. */
int kube_client_setup(kube_client *c, CURL *easy, const char *path,
	const char *accept, double timeout, const kube_creds *creds,
	struct curl_slist **headers, struct curl_slist **connect_to);

size_t kube_client_max_body(const kube_client *c);
size_t kube_client_max_watch_line(const kube_client *c);
kube_config *kube_client_cfg(kube_client *c);
void kube_client_hook(kube_client *c, const char *verb, int code, double seconds);

/* ---- discovery.c ---- */
/* One resource of a discovery cache, its names as offsets into the set's
 * string pool: a kube_resource is ~720 bytes of fixed arrays, and a server
 * serves 60 and more resources (every CRD adds some), in every target. */
typedef struct {
	uint32_t group, version, kind, resource;
	unsigned char namespaced, has_status;
	unsigned verbs;
} kube_resource_entry;

typedef struct {
	kube_resource_entry *items;
	size_t len;
	size_t cap;
	char *strs;          /* NUL-terminated names the entries point into */
	size_t strs_len;
	size_t strs_cap;
	/* preferred version per group: "group\0version" pairs */
	char **preferred;    /* "group/version" strings ("" group = "v1") */
	size_t npreferred;
} kube_resource_set;

/* The entry at i as a kube_resource value. */
void kube_resource_set_get(kube_resource *out, const kube_resource_set *set, size_t i);

void kube_resource_set_free(kube_resource_set *set);
/* Parses an APIGroupDiscoveryList (v2 aggregated) into set (appending). */
int kube_discovery_parse_aggregated(kube_resource_set *set, const char *data, size_t len);
/* Parses a legacy APIResourceList for groupVersion ("v1", "apps/v1"). */
int kube_discovery_parse_resource_list(kube_resource_set *set, const char *data, size_t len);
/* Parses a legacy APIGroupList: fills *out with "group/version" strings of
 * every served version (preferred first per group) and records preferred
 * versions in set. Caller frees the array and strings. */
int kube_discovery_parse_group_list(char ***out, size_t *outlen, kube_resource_set *set,
	const char *data, size_t len);
/* Looks up group/version/kind; version NULL = the group's preferred one
 * (else the first found). 0 or PLUMB_ENOTFOUND (no message set). */
int kube_resource_set_find(kube_resource *out, const kube_resource_set *set,
	const char *group, const char *version, const char *kind);
int kube_content_type_is_aggregated(const char *content_type);

/* ---- watch.c ---- */

/* Splits a byte stream into lines and decodes each as a watch event. */
typedef struct {
	plumb_buf line;
} kube_watch_decoder;

typedef int (*kube_watch_event_cb)(kube_watch_event type, cJSON *obj, void *data);

void kube_watch_decoder_init(kube_watch_decoder *d, size_t max_line);
/* Feeds bytes; calls cb for every complete line (obj owned by the decoder,
 * freed after cb). A non-zero cb result stops and is returned. A garbled
 * line -> PLUMB_EPROTO, a line over the cap -> PLUMB_ETOOBIG. */
int kube_watch_decoder_feed(kube_watch_decoder *d, const char *data, size_t len,
	kube_watch_event_cb cb, void *cbdata);
/* At end of stream: PLUMB_EPROTO when a partial line is left (truncated). */
int kube_watch_decoder_finish(kube_watch_decoder *d);
void kube_watch_decoder_free(kube_watch_decoder *d);
/* Decodes one line. *obj: caller frees. Empty/blank lines are not events:
 * PLUMB_ENOTFOUND. */
int kube_watch_decode_line(kube_watch_event *type, cJSON **obj, const char *line, size_t len);
/* 1 when an ERROR event's Status means "resourceVersion too old". */
int kube_watch_status_expired(const cJSON *status);

#endif
