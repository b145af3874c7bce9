/*
 * pkg/kube — the Kubernetes REST client: kubeconfig and in-cluster config,
 * a thread-safe client per cluster (libcurl + OpenSSL, connections reused,
 * a timeout on every request, client-side rate limit, retries), discovery,
 * CRUD / server-side apply / merge patch / status on cJSON objects, and a
 * watch hub that drives many watch streams over many clusters on one thread
 * (libcurl multi).
 *
 * Errors: every int-returning function returns 0 or a negative PLUMB_E*
 * code with a one-line message in plumb_error_last(). HTTP answers map as:
 *   400, 422 -> EINVALID        401 -> EAUTH          403 -> EFORBIDDEN
 *   404 -> ENOTFOUND            409 AlreadyExists -> EEXISTS
 *   409 with a FieldManagerConflict cause -> EFIELDCONFLICT
 *   other 409 -> ECONFLICT      410 -> EEXPIRED       429 -> ETHROTTLED
 *   5xx, connection refused/reset -> EUNAVAILABLE      TLS verification -> ETLS
 *   request timeout -> ETIMEOUT  unresolvable host -> EUNREACHABLE
 *   garbled or truncated body/stream -> EPROTO          over a size cap -> ETOOBIG
 * Messages look like
 *   PATCH configmaps "x" in ns "y": 409 Conflict: Apply failed with 1 conflict: ...
 * The HTTP status and Status reason of the last request on this thread are
 * also kept: kube_last_http_status(), kube_last_reason().
 * Credentials never appear in messages or logs.
 */
#ifndef PLUMB_KUBE_H
#define PLUMB_KUBE_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* ---- config ---------------------------------------------------------------
 * A resolved connection config: one cluster + one user (+ namespace) out of a
 * kubeconfig, or the in-cluster service account. Immutable after load except
 * for credentials that refresh themselves (token files, exec plugins), which
 * are guarded internally. Reference-counted: a kube_client keeps its own
 * reference, so the caller may kube_config_free() right after
 * kube_client_new().
 */
typedef struct kube_config kube_config;

/* Loads a kubeconfig file (YAML or JSON). context NULL = current-context.
 * Relative file paths inside it (certificate-authority, tokenFile, ...)
 * resolve against the file's directory. *out: caller frees with
 * kube_config_free(). PLUMB_EINVALID naming the field on a malformed file,
 * e.g. "kubeconfig /x/kc: users[0].user.client-key-data: not valid base64". */
int kube_config_load_file(kube_config **out, const char *path, const char *context);

/* What a kubeconfig that someone else wrote (a tenant's Secret) may hold.
 * The zero value (or a NULL policy) is the lockdown: inline material only —
 * server (https://), certificate-authority-data, client-certificate-data,
 * client-key-data, token, username/password, tls-server-name (extensions
 * and disable-compression are ignored). exec, auth-provider, tokenFile,
 * certificate-authority, client-certificate, client-key, impersonation and
 * every other field are refused with PLUMB_EINSECURE and a message naming
 * each refused field, before any file is read or any command looked up. */
typedef struct {
	int trusted;          /* every field, as for the operator's own file
	                         (kube_config_load_file); for tests and tools */
	int allow_insecure;   /* insecure-skip-tls-verify: true, http:// servers */
	int allow_proxy;      /* proxy-url */
	/* Command names (no '/') an exec plugin may name, NULL-terminated; NULL
	 * = none. The command is looked up in this process's PATH only; a
	 * kubeconfig command holding a '/' is refused, and so are exec.env
	 * entries that steer the loader or the shell (PATH, LD_*, ...). */
	const char *const *exec_plugins;
} kube_config_policy;

/* From bytes (a Secret's value), under policy (NULL = the lockdown). origin
 * names it in error messages (e.g. "secret plumb-system/prod-eu"); NULL =
 * "kubeconfig". With a trusted policy relative paths resolve against the
 * current directory. A refused field gives PLUMB_EINSECURE, e.g.
 * "kubeconfig secret t/x: users[0].user.exec: refused: ...". */
int kube_config_load_memory(kube_config **out, const char *data, size_t len,
	const char *context, const char *origin, const kube_config_policy *policy);

/* Parses "aws,gke-gcloud-auth-plugin" (the --allow-exec-plugins value) into
 * a NULL-terminated array for kube_config_policy.exec_plugins; a name that
 * is empty or holds a '/' is PLUMB_EINVALID. Caller frees with
 * kube_exec_plugins_free(). */
int kube_exec_plugins_parse(char ***out, const char *list);
void kube_exec_plugins_free(char **names);

/* In-cluster config: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 * (IPv6 bracketed), token/ca.crt/namespace from dir, NULL = the standard
 * /var/run/secrets/kubernetes.io/serviceaccount. The token is re-read about
 * every minute and after a 401. */
int kube_config_in_cluster(kube_config **out, const char *dir);

/* Borrowed strings, valid as long as cfg. namespace: the context's (or the
 * service account's) namespace, "default" when none. */
const char *kube_config_namespace(const kube_config *cfg);
const char *kube_config_server(const kube_config *cfg);
/* The context name used ("" for in-cluster). */
const char *kube_config_context(const kube_config *cfg);

/* Drops a reference. NULL-safe. */
void kube_config_free(kube_config *cfg);

/* ---- client --------------------------------------------------------------- */
typedef struct kube_client kube_client;

/* Called after every HTTP request a client makes (including each retry
 * attempt and watch connections), from the thread that made it. verb is the
 * Kubernetes verb (get, list, watch, create, update, patch, delete, apply)
 * or the HTTP method for raw requests; code is the HTTP status, or 0 when no
 * answer came (connection error, timeout). Must be cheap and thread-safe. */
typedef void (*kube_request_hook)(void *data, const char *cluster,
	const char *verb, int code, double seconds);

typedef struct {
	const char *name;       /* cluster name for logs/metrics; default "default" */
	double timeout;         /* seconds per request attempt; default 30 */
	double qps;             /* token bucket refill; default 50; < 0 = no limit */
	int burst;              /* bucket size; default 100 */
	int max_retries;        /* on connection errors/429/5xx; default 4; -1 = none */
	const char *user_agent; /* default "plumb/<version>" */
	size_t max_body;        /* response cap; default 64 MiB */
	size_t max_watch_line;  /* watch event cap; default 16 MiB */
	kube_request_hook on_request;
	void *hook_data;
} kube_client_opts;

/* Creates a client for cfg (the client takes its own reference). opts NULL
 * = defaults. Thread-safe: any function below may be called from several
 * threads at once on one client. *out: caller frees with kube_client_free(). */
int kube_client_new(kube_client **out, kube_config *cfg, const kube_client_opts *opts);
/* NULL-safe. Watch streams keep their own reference to the client, so it
 * may be freed right after kube_watch_stop(): the memory goes when the last
 * stream has wound down on the hub thread. */
void kube_client_free(kube_client *c);
/* Closes idle connections beyond the keep most recently used (a burst of
 * parallel requests leaves a connection, its TLS state and buffers per
 * request in flight; a quiet client needs one or two). */
void kube_client_shrink(kube_client *c, int keep);
const char *kube_client_name(const kube_client *c);
const kube_config *kube_client_config(const kube_client *c);

/* A client that acts as another identity: every request it makes, watches
 * and discovery included, carries "Impersonate-User: <user>" and one
 * "Impersonate-Group: <g>" per entry of groups (NULL-terminated; NULL or
 * empty = none, and the API server derives them: for a service account
 * system:serviceaccounts, system:serviceaccounts:<ns> and
 * system:authenticated, needing no impersonate right on groups). It
 * authenticates with base's credentials, which need the RBAC verb
 * "impersonate" on that user (resource serviceaccounts for
 * system:serviceaccount:<ns>:<name>, users otherwise) and on each group.
 * It shares base's connections, TLS sessions, rate limit and discovery
 * cache (discovery is the same document for every authenticated user) and
 * holds a reference on base. PLUMB_EINVALID when a name is empty, longer
 * than 512 bytes or not printable ASCII. *out: kube_client_free(). */
int kube_client_impersonate(kube_client **out, kube_client *base, const char *user,
	const char *const *groups);
/* The user c impersonates; NULL when it acts as its own credentials. */
const char *kube_client_impersonated(const kube_client *c);
/* "system:serviceaccount:<ns>:<name>" into out; PLUMB_EINVALID naming the
 * field unless ns is a DNS-1123 label and name a DNS-1123 subdomain. */
int kube_service_account_user(char *out, size_t outlen, const char *ns, const char *name);

/* HTTP status and Status reason ("Conflict", "AlreadyExists", ...) of the
 * last request this thread made through any client; 0 / "" if none. */
int kube_last_http_status(void);
const char *kube_last_reason(void);

/* A raw request: path like "/version" or "/api/v1/namespaces/x/serviceaccounts/y/token"
 * (query string allowed). body NULL = none (sent as application/json otherwise).
 * *out (may be NULL when not wanted) gets the parsed JSON answer; caller
 * frees. Errors map as above. */
int kube_request(cJSON **out, kube_client *c, const char *method,
	const char *path, const cJSON *body);

/* gitVersion from /version ("v1.36.3") into out. */
int kube_server_version(char *out, size_t outlen, kube_client *c);

/* ---- discovery ------------------------------------------------------------ */
enum {
	KUBE_VERB_GET = 1 << 0,
	KUBE_VERB_LIST = 1 << 1,
	KUBE_VERB_WATCH = 1 << 2,
	KUBE_VERB_CREATE = 1 << 3,
	KUBE_VERB_UPDATE = 1 << 4,
	KUBE_VERB_PATCH = 1 << 5,
	KUBE_VERB_DELETE = 1 << 6,
	KUBE_VERB_DELETECOLLECTION = 1 << 7,
};

/* A plain value: copy it freely. group "" = core. */
typedef struct {
	char group[256];
	char version[64];
	char kind[128];
	char resource[256];   /* plural, e.g. "configmaps" */
	int namespaced;
	unsigned verbs;       /* KUBE_VERB_* bits */
	int has_status;       /* a /status subresource exists */
} kube_resource;

/* Resolves apiVersion ("v1", "apps/v1") + kind. Uses the client's discovery
 * cache (aggregated discovery when the server offers it, the legacy
 * endpoints otherwise); on a miss refreshes once and retries, so a CRD
 * applied a moment ago is found. PLUMB_ENOTFOUND when still unknown. */
int kube_resolve(kube_resource *out, kube_client *c, const char *api_version, const char *kind);
/* The same with apiVersion and kind read from obj. */
int kube_resolve_object(kube_resource *out, kube_client *c, const cJSON *obj);
/* The group's preferred version of kind (group "" = core). */
int kube_resolve_preferred(kube_resource *out, kube_client *c, const char *group, const char *kind);
/* Drops the cache and fetches discovery again. */
int kube_discovery_refresh(kube_client *c);
/* What the server serves, as Helm's .Capabilities.APIVersions lists it:
 * every "group/version" ("v1" for the core group) and "group/version/Kind",
 * sorted, without duplicates, from the discovery cache (fetched first when
 * it is empty). More than max strings is PLUMB_ETOOBIG. Caller frees with
 * kube_api_versions_free(). */
int kube_api_versions(char ***out, size_t *n, kube_client *c, size_t max);
void kube_api_versions_free(char **list, size_t n);

/* "apps/v1" or "v1" for res, into out (>= 320 bytes). */
void kube_resource_api_version(char *out, size_t outlen, const kube_resource *res);

/* ---- operations -------------------------------------------------------------
 * ns: for a namespaced resource, the namespace; NULL on create/update/apply
 * takes metadata.namespace of the object, and then the config's namespace.
 * Ignored for cluster-scoped resources. Objects passed in are borrowed; every
 * *out is a new cJSON the caller frees with cJSON_Delete().
 */

/* GET one object. PLUMB_ENOTFOUND when absent. */
int kube_get(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const char *name);
/* GET .../name/status. */
int kube_get_status(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const char *name);

typedef struct {
	const char *label_selector;   /* NULL = all */
	const char *field_selector;   /* NULL = all */
	unsigned limit;               /* page size; 0 = 500 */
	const char *resource_version; /* NULL = most recent (quorum read) */
} kube_list_opts;

/* Called per page (a List object, borrowed). Return non-zero to stop early;
 * that value is returned by kube_list_pages(). */
typedef int (*kube_page_cb)(const cJSON *page, void *data);

/* Paginated LIST (limit/continue). ns NULL = all namespaces. out_rv (may be
 * NULL) receives the list's resourceVersion (caller frees); out_pages (may
 * be NULL) the number of pages. An expired continue token gives
 * PLUMB_EEXPIRED: restart the list. */
int kube_list_pages(kube_client *c, const kube_resource *res, const char *ns,
	const kube_list_opts *opts, kube_page_cb cb, void *data,
	char **out_rv, unsigned *out_pages);
/* All pages merged into one List object {"kind":"<Kind>List","metadata":
 * {"resourceVersion":...},"items":[...]}. */
int kube_list(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const kube_list_opts *opts);

/* POST. PLUMB_EEXISTS when the name is taken. */
int kube_create(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const cJSON *obj);
/* PUT; obj carries metadata.name and metadata.resourceVersion. A stale
 * resourceVersion gives PLUMB_ECONFLICT. */
int kube_update(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const cJSON *obj);
/* PUT .../status. */
int kube_update_status(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const cJSON *obj);

typedef enum {
	KUBE_PROPAGATION_DEFAULT = 0,  /* server's default for the kind */
	KUBE_PROPAGATION_BACKGROUND,
	KUBE_PROPAGATION_FOREGROUND,
	KUBE_PROPAGATION_ORPHAN,
} kube_propagation;

/* DELETE. PLUMB_ENOTFOUND when already gone. */
int kube_delete(kube_client *c, const kube_resource *res, const char *ns,
	const char *name, kube_propagation propagation);

typedef struct {
	const char *field_manager;  /* NULL = "plumb" */
	int force;                  /* take over conflicting fields */
	int dry_run;                /* dryRun=All: nothing is persisted */
} kube_apply_opts;

/* Server-side apply of obj (apiVersion, kind, metadata.name, ...): PATCH
 * with application/apply-patch+yaml (a JSON body). *out (may be NULL) gets
 * the object the server made. A field-manager conflict without force gives
 * PLUMB_EFIELDCONFLICT. opts NULL = {"plumb", force, no dry run}. */
int kube_apply(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const cJSON *obj, const kube_apply_opts *opts);
/* The same on the /status subresource. */
int kube_apply_status(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const cJSON *obj, const kube_apply_opts *opts);
/* JSON merge patch (RFC 7386) of the named object. */
int kube_merge_patch(cJSON **out, kube_client *c, const kube_resource *res,
	const char *ns, const char *name, const cJSON *patch);

/* URL path for res (+ns, +name, +subresource; each may be NULL), escaped:
 * "/api/v1/namespaces/x/configmaps/y", "/apis/apps/v1/deployments". */
int kube_resource_path(char **out, const kube_resource *res, const char *ns,
	const char *name, const char *subresource);

/* ---- watch -----------------------------------------------------------------
 * A hub drives any number of watch streams, over any number of clients, on
 * the one thread that calls kube_watch_hub_run(). Each stream: an initial
 * paginated LIST (unless a resourceVersion is given) delivered as one
 * KUBE_WATCH_RESYNC, then WATCH with allowWatchBookmarks and a random
 * timeoutSeconds in [300, 600]; after a normal end it resumes from the last
 * resourceVersion; on expiry (HTTP 410, or an ERROR event with code 410 /
 * reason Expired or Gone) it relists and delivers a fresh RESYNC (the
 * consumer replaces everything it had). Connection failures reconnect with
 * backoff 800 ms doubling to 30 s, reset after 2 min of health; each failure
 * is reported as KUBE_WATCH_ERROR. LISTs run on a short-lived helper thread
 * so a slow cluster never stalls the hub.
 */
typedef enum {
	KUBE_WATCH_ADDED,
	KUBE_WATCH_MODIFIED,
	KUBE_WATCH_DELETED,
	KUBE_WATCH_BOOKMARK,  /* object has only metadata.resourceVersion */
	KUBE_WATCH_RESYNC,    /* object: a List with every current item; replace all */
	KUBE_WATCH_ERROR,     /* object: {"code":N,"reason":..,"message":..}; the
	                         stream retries by itself */
} kube_watch_event;

/* Runs on the hub thread. obj is borrowed for the call only. */
typedef void (*kube_watch_cb)(kube_watch_event type, const cJSON *obj, void *data);
/* Optional: shrinks each item of a (re)list before it is kept. Runs on the
 * list's helper thread, page by page, so a relist never holds more than one
 * page of whole objects. Returns a new object (what the RESYNC List will
 * hold) or NULL to leave the item out. res is the watched resource (list
 * items carry no apiVersion or kind of their own); data is the stream's
 * callback data. */
typedef cJSON *(*kube_watch_reduce_fn)(const cJSON *item, const kube_resource *res, void *data);

typedef struct kube_watch_hub kube_watch_hub;
typedef struct kube_watch kube_watch;

typedef struct {
	const char *ns;               /* NULL = all namespaces */
	const char *label_selector;   /* NULL = all */
	const char *resource_version; /* start watching from here (no initial
	                                 LIST / RESYNC); NULL = list first */
	unsigned timeout_seconds;     /* per watch request; 0 = random [300, 600] */
	unsigned list_limit;          /* page size of (re)lists; 0 = 500 */
	kube_watch_reduce_fn reduce;  /* NULL = RESYNC holds whole objects */
	/* With reduce: a (re)list keeping more than list_max_items reduced items,
	 * or more than list_max_bytes of their strings, fails with PLUMB_ETOOBIG
	 * (a KUBE_WATCH_ERROR with reason "ETOOBIG"; retried with backoff).
	 * 0 = no cap. */
	size_t list_max_items;
	size_t list_max_bytes;
} kube_watch_opts;

/* *out: caller frees with kube_watch_hub_free() after the run returned. */
int kube_watch_hub_new(kube_watch_hub **out);
/* Drives all streams until kube_watch_hub_stop(). Returns 0 after a stop. */
int kube_watch_hub_run(kube_watch_hub *hub);
/* From any thread (or a callback): makes kube_watch_hub_run() return soon. */
void kube_watch_hub_stop(kube_watch_hub *hub);
/* Stops and frees every remaining watch. NULL-safe. */
void kube_watch_hub_free(kube_watch_hub *hub);

/* Adds a stream (from any thread, before or during run). res and opts are
 * copied. *out is a handle owned by the hub, valid until kube_watch_stop(). */
int kube_watch_start(kube_watch **out, kube_watch_hub *hub, kube_client *c,
	const kube_resource *res, const kube_watch_opts *opts,
	kube_watch_cb cb, void *data);
/* Stops a stream. From any thread; once it returns the callback is not
 * called again (when called from inside a callback: after that callback
 * returns). The handle is invalid afterwards. NULL-safe. */
void kube_watch_stop(kube_watch *w);
/* The last resourceVersion this stream saw ("" before any). Copies into out. */
void kube_watch_resource_version(char *out, size_t outlen, kube_watch *w);

#endif
