/* pkg/controller: the reconcile loop. Watches GitSyncs, Clusters and Secrets
 * in the management cluster, fetches each GitSync's revision once, and for
 * every (GitSync, Cluster) pair renders, applies, prunes and reports.
 *
 * Work items (queue keys):
 *   src|<ns>|<gitsync>                 fetch + validate the revision
 *   sync|<ns>|<gitsync>|<ns>|<cluster>  render + apply to one cluster
 *   probe|<ns>|<cluster>               /version of a target, Cluster status
 *
 * Threads: the watch hub (every watch stream of every cluster), the workers
 * (only while leading), the events sender, and the caller's. c->lock guards
 * the caches and the GitSync states; each target has its own lock for its
 * live cache; status writes of one GitSync are serialised by its status_lock.
 */
#include "controller/internal.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "diff/diff.h"
#include "manifest/manifest.h"

#define REQUESTED_AT "plumb.dev/requested-at"
/* A standby hands a webhook to the leader through the GitSync's status (the
 * install grants patch on gitsyncs/status, not on gitsyncs): its own field
 * manager, so the leader's status applies never remove the field. */
#define WEBHOOK_RECEIVED_AT "status.webhookReceivedAt"
#define WEBHOOK_FIELD_MANAGER "plumb-webhook"
#define MANAGED_SELECTOR APPLY_LABEL_MANAGED_BY "=" APPLY_FIELD_MANAGER
#define MAX_DRIFT_LIST 50
#define MAX_DRIFT_FIELDS 20
#define PROBE_PERIOD 60.0
#define DRIFT_WINDOW 0.1      /* seconds: coalescing of watch events in targets */
#define PENDING_MAX (2u << 20) /* bytes of changed objects a target's cache holds whole */

/* ---- state ------------------------------------------------------------------- */

/* A validated revision. Its files are not kept: each render reads them again
 * from the local mirror (no network), which costs milliseconds and saves
 * holding every manifest of every GitSync in memory between syncs. */
typedef struct {
	int refs;                 /* under c->lock */
	char commit[41];
	char *url;
	char *cred_id;            /* the mirror's credential id (source_credentials_id) */
	char *path;
	double first_seen;        /* wall clock the source stage first saw commit */
} revision;

typedef struct {
	int refs;
	char *key;                /* "ns/name" */
	char *ns, *name;
	char label[64];           /* plumb.dev/gitsync value */
	cJSON *obj;               /* latest from the watch */
	revision *rev;            /* last good revision */
	char fetched[41];
	char *stall_reason, *stall_msg;
	char *handled_req;
	long fetched_generation;
	plumb_map clusters;       /* cluster name -> controller_cluster_status* */
	pthread_mutex_t status_lock;
	cJSON *last_written;      /* status we last wrote (under status_lock) */
	int deleted;
	long clamp_logged;        /* generation whose clamped interval/timeout was logged */
} gitsync_state;

typedef struct controller controller;
typedef struct target target;

/* What a target's cache keeps of a live object plumb manages: what decides
 * whether it needs a look, not the object. A changed object (a watch event
 * that is not the echo of plumb's own write) is kept whole until the next
 * reconcile takes it, up to PENDING_MAX bytes a target; past that, or after
 * a relist, the engine reads what it needs. */
typedef struct {
	char *body;               /* compact JSON, or NULL */
	size_t body_len;
	const char *label;        /* interned in target.labels, or NULL */
	unsigned char hash[32];   /* plumb.dev/desired-hash */
	unsigned has_hash : 1, prune_disabled : 1, deleting : 1;
	char rv[24];
} live_entry;

typedef struct {
	controller *c;
	target *t;
	kube_resource res;
	char ns[254];             /* "" = all namespaces; identity targets watch per namespace */
	kube_watch *w;
	int synced;               /* under t->lock */
} target_watch;

/* A target is a Cluster as one identity sees it: plumbd's own credentials
 * (identity NULL; the map key is the Cluster's key), or, for GitSyncs with
 * a service account (spec.serviceAccountName or --default-service-account),
 * a client impersonating it (map key "<cluster key>|<user>"), with its own
 * watches, live cache and engines. Nothing a GitSync does in a target goes
 * through another identity's client, cache or watches, so it never acts or
 * reads with more rights than its own. */
struct target {
	int refs;                 /* under c->lock */
	char *key;                /* Cluster "ns/name" */
	char *name;
	char *cred_id;            /* what the client was built from */
	char *identity;           /* impersonated user, NULL = plumbd's own credentials */
	kube_client *client;
	controller *c;
	pthread_mutex_t lock;
	plumb_map cache;          /* "group|resource|ns|name" -> live_entry* */
	plumb_map labels;         /* interned plumb.dev/gitsync values */
	size_t pending;           /* bytes of live_entry bodies held */
	size_t cache_bytes;       /* bytes of cache entries (estimated, with their keys) */
	size_t label_bytes;       /* bytes of interned labels (kept until the target goes) */
	plumb_map label_counts;   /* interned label -> (uintptr_t) cache entries with it */
	atomic_int over_cap;      /* the cache hit a cap: Failed, rebuilt later */
	double over_since;        /* monotonic, set before over_cap */
	char cap_msg[256];        /* why, under t->lock */
	target_watch **watches;
	size_t nwatches;
	plumb_map engines;        /* gitsync key -> apply_engine* */
	char version[64];
	int up;
};

typedef struct {
	server_family *lag, *duration, *reconciles, *applied, *pruned, *drifted, *corrections,
		*depth, *retries, *fetch_duration, *fetch_errors, *cluster_up, *leader,
		*gs_ready, *gs_stalled;
} metrics_set;

struct controller {
	controller_opts o;
	kube_resource gitsync_res, cluster_res, secret_res;
	kube_watch_hub *hub;
	pthread_t hub_thread;
	int hub_started;
	source_cache *sources;
	controller_queue *queue;
	controller_events *events;
	metrics_set m;
	unsigned long last_retries;

	pthread_mutex_t lock;
	plumb_map gitsyncs;       /* "ns/name" -> gitsync_state* */
	plumb_map clusters;       /* "ns/name" -> cJSON* */
	plumb_map secrets;        /* "ns/name" -> cJSON*: only referenced Secrets,
	                             reduced to the keys read (secret_reduce_locked) */
	unsigned long secret_epoch; /* bumped on every change of c->secrets */
	plumb_map secret_misses;  /* "ns/name" -> double*: when a GET last found no such Secret */
	plumb_map targets;        /* "ns/name" -> target* */
	kube_watch *mgmt_watches[3];
	int synced[3];

	pthread_t *workers;
	unsigned nworkers;
	pthread_cond_t lead_cond;
	atomic_int leading;
	atomic_int stopping;
	atomic_int in_flight;
};

/* ---- small helpers -------------------------------------------------------------- */

static int jbool(const cJSON *o, const char *path, int dflt)
{
	const cJSON *v = plumb_json_get(o, path);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static double jduration(const cJSON *o, const char *path, double dflt)
{
	const char *s = plumb_json_str(o, path);
	double d;
	if (!s || plumb_duration_parse(&d, s) != 0)
		return dflt;
	return d;
}

/* spec.git.interval has a floor and spec.git.timeout a ceiling, as the CRD
 * validates; applied here too for objects stored before that validation (or
 * with it bypassed), so no tenant polls its Git host every second or holds a
 * worker for an hour. */
#define GIT_INTERVAL_MIN 10.0
#define GIT_TIMEOUT_MAX 600.0

static double git_interval(const cJSON *gs)
{
	double d = jduration(gs, "spec.git.interval", 60);
	return d < GIT_INTERVAL_MIN ? GIT_INTERVAL_MIN : d;
}

static double git_timeout(const cJSON *gs)
{
	double d = jduration(gs, "spec.git.timeout", 60);
	return d > GIT_TIMEOUT_MAX ? GIT_TIMEOUT_MAX : d;
}

static const char *annotation(const cJSON *obj, const char *name)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(plumb_json_get(obj, "metadata.annotations"), name);
	return cJSON_IsString(a) ? a->valuestring : NULL;
}

static char *obj_key(const cJSON *obj)
{
	const char *ns = plumb_json_str(obj, "metadata.namespace"), *name = plumb_json_str(obj, "metadata.name");
	return plumb_asprintf("%s/%s", ns ? ns : "", name ? name : "");
}

static int streq(const char *a, const char *b)
{
	return (a ? a : "")[0] == (b ? b : "")[0] && strcmp(a ? a : "", b ? b : "") == 0;
}

static void set_str(char **dst, const char *src)
{
	char *n = plumb_strdup(src);
	free(*dst);
	*dst = n;
}

/* ---- metrics ------------------------------------------------------------------ */

static void metrics_init(controller *c)
{
	server_metrics *r = c->o.metrics;
	const char *cl[] = { "cluster" }, *clres[] = { "cluster", "result" },
		*gscl[] = { "gitsync", "cluster" }, *gs[] = { "gitsync" };
	static const double lag_b[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };
	static const double dur_b[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
	if (!r)
		return;
	c->m.lag = server_histogram(r, "plumb_sync_lag_seconds",
		"Seconds from a commit first seen to applied in a cluster.", 1, cl, 10, lag_b);
	c->m.duration = server_histogram(r, "plumb_reconcile_duration_seconds",
		"Duration of one (GitSync, Cluster) reconcile.", 1, cl, 11, dur_b);
	c->m.reconciles = server_counter(r, "plumb_reconcile_total",
		"Reconciles of (GitSync, Cluster) items by result.", 2, clres);
	c->m.applied = server_counter(r, "plumb_objects_applied_total",
		"Objects created or updated.", 1, cl);
	c->m.pruned = server_counter(r, "plumb_objects_pruned_total", "Objects pruned.", 1, cl);
	c->m.drifted = server_gauge(r, "plumb_drifted_objects",
		"Objects drifted and not corrected.", 2, gscl);
	c->m.corrections = server_counter(r, "plumb_drift_corrections_total",
		"Drifted objects re-applied.", 1, cl);
	c->m.depth = server_gauge(r, "plumb_workqueue_depth", "Items waiting in the work queue.", 0, NULL);
	c->m.retries = server_counter(r, "plumb_workqueue_retries_total", "Items retried after a failure.", 0, NULL);
	c->m.fetch_duration = server_histogram(r, "plumb_git_fetch_duration_seconds",
		"Duration of git fetches.", 1, gs, 11, dur_b);
	c->m.fetch_errors = server_counter(r, "plumb_git_fetch_errors_total", "Failed git fetches.", 1, gs);
	c->m.cluster_up = server_gauge(r, "plumb_cluster_up", "1 when the cluster's API answers.", 1, cl);
	c->m.leader = server_gauge(r, "plumb_leader", "1 while this replica leads.", 0, NULL);
	c->m.gs_ready = server_gauge(r, "plumb_gitsync_ready",
		"1 when the GitSync's Ready condition is True (as last written by the leader).", 1, gs);
	c->m.gs_stalled = server_gauge(r, "plumb_gitsync_stalled",
		"1 while the GitSync is Stalled (fetch, credentials or an invalid revision).", 1, gs);
	server_gauge_set(c->m.leader, 0);
}

/* ---- GitSync states ------------------------------------------------------------ */

static void revision_unref(revision *r)
{
	if (!r || --r->refs > 0)
		return;
	free(r->url);
	free(r->cred_id);
	free(r->path);
	free(r);
}

static void cluster_status_free(controller_cluster_status *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->message);
	cJSON_Delete(s->drifted_objects);
	free(s);
}

static void gitsync_unref(gitsync_state *g)
{
	if (!g || --g->refs > 0)
		return;
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&g->clusters, &i, &k, &v))
		cluster_status_free(v);
	plumb_map_free(&g->clusters, NULL);
	revision_unref(g->rev);
	cJSON_Delete(g->obj);
	cJSON_Delete(g->last_written);
	pthread_mutex_destroy(&g->status_lock);
	free(g->key);
	free(g->ns);
	free(g->name);
	free(g->stall_reason);
	free(g->stall_msg);
	free(g->handled_req);
	free(g);
}

static void free_gitsync(void *g) { gitsync_unref(g); }

/* Seeds per-cluster entries from the status a previous leader wrote, so a
 * restart that finds nothing to do writes nothing either. */
static void seed_from_status(gitsync_state *g)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, plumb_json_get(g->obj, "status.clusters")) {
		const char *name = plumb_json_str(e, "name"), *state = plumb_json_str(e, "state"), *commit = plumb_json_str(e, "commit");
		if (!name || plumb_map_get(&g->clusters, name))
			continue;
		controller_cluster_status *s = calloc(1, sizeof(*s));
		if (!s)
			continue;
		s->name = plumb_strdup(name);
		s->state = CONTROLLER_PENDING;
		for (int st = CONTROLLER_PENDING; st <= CONTROLLER_UNREACHABLE; st++)
			if (state && strcmp(state, controller_state_name(st)) == 0)
				s->state = st;
		snprintf(s->commit, sizeof(s->commit), "%s", commit ? commit : "");
		const cJSON *n = plumb_json_get(e, "objects");
		s->objects = cJSON_IsNumber(n) ? (long)n->valuedouble : 0;
		n = plumb_json_get(e, "drifted.count");
		s->drifted_count = cJSON_IsNumber(n) ? (long)n->valuedouble : 0;
		const cJSON *d = plumb_json_get(e, "drifted.objects");
		s->drifted_objects = d ? cJSON_Duplicate(d, 1) : NULL;
		const char *ts = plumb_json_str(e, "lastSyncTime");
		if (ts)
			plumb_time_parse(&s->last_sync_time, ts);
		n = plumb_json_get(e, "lagSeconds");
		s->lag_seconds = cJSON_IsNumber(n) ? n->valuedouble : -1;
		s->message = plumb_strdup(plumb_json_str(e, "message"));
		plumb_map_put(&g->clusters, name, s, NULL);
	}
	const char *handled = plumb_json_str(g->obj, "status.lastHandledRequestedAt");
	if (handled && !g->handled_req)
		g->handled_req = plumb_strdup(handled);
	const char *fetched = plumb_json_str(g->obj, "status.lastFetchedCommit");
	if (fetched && !g->fetched[0])
		snprintf(g->fetched, sizeof(g->fetched), "%s", fetched);
}

/* ---- queue keys ---------------------------------------------------------------- */

/* Queues "<kind>|<a>|<b>" with every '/' of the object keys made '|'. */
static void enqueue(controller *c, const char *kind, const char *a, const char *b, double debounce)
{
	char key[1300];
	snprintf(key, sizeof(key), "%s|%s%s%s", kind, a, b ? "|" : "", b ? b : "");
	for (char *p = key; *p; p++)
		if (*p == '/')
			*p = '|';
	controller_queue_trigger(c->queue, key, debounce);
}

static void trigger_src(controller *c, const char *gs_key, double debounce)
{
	enqueue(c, "src", gs_key, NULL, debounce);
}

static void trigger_sync(controller *c, const char *gs_key, const char *cl_key, double debounce)
{
	enqueue(c, "sync", gs_key, cl_key, debounce);
}

static void trigger_probe(controller *c, const char *cl_key)
{
	enqueue(c, "probe", cl_key, NULL, 0);
}

/* ---- cluster selection ------------------------------------------------------------ */

static int expr_matches(const cJSON *expr, const cJSON *labels)
{
	const char *key = plumb_json_str(expr, "key"), *op = plumb_json_str(expr, "operator");
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(labels, key ? key : "");
	const char *val = cJSON_IsString(lv) ? lv->valuestring : NULL;
	int in = 0;
	const cJSON *v;
	if (!key || !op)
		return 0;
	cJSON_ArrayForEach(v, plumb_json_get(expr, "values"))
		if (val && cJSON_IsString(v) && strcmp(v->valuestring, val) == 0)
			in = 1;
	if (!strcmp(op, "In"))
		return in;
	if (!strcmp(op, "NotIn"))
		return !in;
	if (!strcmp(op, "Exists"))
		return val != NULL;
	if (!strcmp(op, "DoesNotExist"))
		return val == NULL;
	return 0;
}

/* 1 when GitSync gs targets Cluster cl: same namespace, and named in
 * clusterNames or matched by clusterSelector. */
static int selects(const cJSON *gs, const cJSON *cl)
{
	const char *gns = plumb_json_str(gs, "metadata.namespace"), *cns = plumb_json_str(cl, "metadata.namespace");
	const char *name = plumb_json_str(cl, "metadata.name");
	const cJSON *v;
	if (!streq(gns, cns) || !name)
		return 0;
	cJSON_ArrayForEach(v, plumb_json_get(gs, "spec.targets.clusterNames"))
		if (cJSON_IsString(v) && strcmp(v->valuestring, name) == 0)
			return 1;
	const cJSON *sel = plumb_json_get(gs, "spec.targets.clusterSelector");
	if (!cJSON_IsObject(sel))
		return 0;
	const cJSON *labels = plumb_json_get(cl, "metadata.labels");
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(sel, "matchLabels")) {
		const cJSON *lv = cJSON_GetObjectItemCaseSensitive(labels, v->string);
		if (!cJSON_IsString(v) || !cJSON_IsString(lv) || strcmp(v->valuestring, lv->valuestring))
			return 0;
	}
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions"))
		if (!expr_matches(v, labels))
			return 0;
	return 1;
}

/* Triggers the sync items of every GitSync that targets cluster cl_key.
 * Called with c->lock held. */
static void trigger_cluster_syncs_locked(controller *c, const char *cl_key, double debounce_override)
{
	const cJSON *cl = plumb_map_get(&c->clusters, cl_key);
	size_t i = 0;
	const char *k;
	void *v;
	if (!cl)
		return;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		if (selects(g->obj, cl))
			trigger_sync(c, g->key, cl_key, debounce_override >= 0 ? debounce_override :
				jduration(g->obj, "spec.debounce", 1));
	}
}

static controller_cluster_status *entry_locked(gitsync_state *g, const char *name);

/* Triggers sync items of gitsync g for every cluster it targets, and for
 * clusters it has a status entry for (so a deselected one leaves status).
 * Called with c->lock held. */
static void trigger_gitsync_syncs_locked(controller *c, gitsync_state *g, double debounce)
{
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->clusters, &i, &k, &v)) {
		if (selects(g->obj, v)) {
			/* Listed as Pending until its first sync says more. */
			const char *name = plumb_json_str(v, "metadata.name");
			if (name)
				entry_locked(g, name);
			trigger_sync(c, g->key, k, debounce);
		}
	}
	i = 0;
	while (plumb_map_next(&g->clusters, &i, &k, &v)) {
		char cl_key[600];
		snprintf(cl_key, sizeof(cl_key), "%s/%s", g->ns, k);
		if (!plumb_map_get(&c->clusters, cl_key))
			trigger_sync(c, g->key, cl_key, debounce);
	}
}

/* ---- management informers (hub thread) ------------------------------------------------ */

static void secrets_prune_locked(controller *c);

/* The Secret references of a GitSync or Cluster object, as one string: when
 * it changes, kept Secrets may have lost their last reference. */
static char *secret_refs(const cJSON *obj)
{
	return plumb_asprintf("%s|%s|%s|%s", plumb_json_str(obj, "spec.git.secretRef.name") ? plumb_json_str(obj, "spec.git.secretRef.name") : "",
		plumb_json_str(obj, "spec.webhook.secretRef.name") ? plumb_json_str(obj, "spec.webhook.secretRef.name") : "",
		plumb_json_str(obj, "spec.kubeConfigSecretRef.name") ? plumb_json_str(obj, "spec.kubeConfigSecretRef.name") : "",
		plumb_json_str(obj, "spec.kubeConfigSecretRef.key") ? plumb_json_str(obj, "spec.kubeConfigSecretRef.key") : "");
}

static void gitsync_upsert_locked(controller *c, const cJSON *obj)
{
	char *key = obj_key(obj);
	gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
	long gen = (long)(cJSON_IsNumber(plumb_json_get(obj, "metadata.generation")) ?
		plumb_json_get(obj, "metadata.generation")->valuedouble : 0);
	int is_new = 0, spec_changed = 0;
	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g) {
			free(key);
			return;
		}
		g->refs = 1;
		g->key = key;
		key = NULL;
		g->ns = plumb_strdup(plumb_json_str(obj, "metadata.namespace"));
		g->name = plumb_strdup(plumb_json_str(obj, "metadata.name"));
		apply_gitsync_label(g->label, sizeof(g->label), g->ns, g->name);
		pthread_mutex_init(&g->status_lock, NULL);
		g->fetched_generation = -1;
		plumb_map_put(&c->gitsyncs, g->key, g, NULL);
		is_new = 1;
	} else {
		const cJSON *old_gen = plumb_json_get(g->obj, "metadata.generation");
		spec_changed = !cJSON_IsNumber(old_gen) || (long)old_gen->valuedouble != gen;
	}
	const char *old_labels_req = g->obj ? annotation(g->obj, REQUESTED_AT) : NULL;
	char *old_req = plumb_strdup(old_labels_req);
	const char *hook = plumb_json_str(obj, WEBHOOK_RECEIVED_AT);
	int hooked = !is_new && hook && !streq(hook, plumb_json_str(g->obj, WEBHOOK_RECEIVED_AT));
	cJSON_Delete(g->obj);
	g->obj = cJSON_Duplicate(obj, 1);
	free(key);
	if (is_new)
		seed_from_status(g);
	const char *req = annotation(obj, REQUESTED_AT);
	int requested = req && !streq(req, g->handled_req) && !streq(req, old_req);
	free(old_req);
	if (is_new || spec_changed || requested) {
		trigger_src(c, g->key, 0);
		trigger_gitsync_syncs_locked(c, g, 0);
	} else if (hooked) {
		/* A standby received a webhook: fetch, as for one of our own. */
		trigger_src(c, g->key, jduration(g->obj, "spec.debounce", 1));
	}
}

/* Forgets a GitSync taken out of c->gitsyncs. */
static void gitsync_forget(void *v)
{
	gitsync_state *g = v;
	g->deleted = 1;
	plumb_info("gitsync deleted; its objects stay in the clusters", "gitsync", g->key);
	gitsync_unref(g);
}

static void gitsync_delete_locked(controller *c, const char *key)
{
	gitsync_state *g = plumb_map_del(&c->gitsyncs, key);
	if (g)
		gitsync_forget(g);
}

/* For a resync: a GitSync stays while the list (seen) holds it. */
static int gitsync_listed(const char *key, void *val, void *seen)
{
	(void)val;
	return plumb_map_has(seen, key);
}

static void on_gitsync(kube_watch_event type, const cJSON *obj, void *data)
{
	controller *c = data;
	pthread_mutex_lock(&c->lock);
	if (type == KUBE_WATCH_RESYNC) {
		/* Replace everything: forget GitSyncs that are gone. */
		plumb_map seen = { 0 };
		const cJSON *it;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items")) {
			char *k = obj_key(it);
			plumb_map_put(&seen, k, (void *)1, NULL);
			free(k);
			gitsync_upsert_locked(c, it);
		}
		plumb_map_retain(&c->gitsyncs, gitsync_listed, &seen, gitsync_forget);
		plumb_map_free(&seen, NULL);
		secrets_prune_locked(c);
		c->synced[0] = 1;
	} else if (type == KUBE_WATCH_ADDED || type == KUBE_WATCH_MODIFIED) {
		char *k = obj_key(obj);
		gitsync_state *g = plumb_map_get(&c->gitsyncs, k);
		char *before = g ? secret_refs(g->obj) : NULL, *after = secret_refs(obj);
		gitsync_upsert_locked(c, obj);
		if (before && !streq(before, after))
			secrets_prune_locked(c);
		free(before);
		free(after);
		free(k);
	} else if (type == KUBE_WATCH_DELETED) {
		char *k = obj_key(obj);
		gitsync_delete_locked(c, k);
		secrets_prune_locked(c);
		free(k);
	}
	pthread_mutex_unlock(&c->lock);
}

static void cache_replace_locked(plumb_map *m, const cJSON *obj)
{
	char *k = obj_key(obj);
	void *old = NULL;
	if (plumb_map_put(m, k, cJSON_Duplicate(obj, 1), &old) == 0)
		cJSON_Delete(old);
	free(k);
}

static void cache_resync_locked(plumb_map *m, const cJSON *list)
{
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(m, &i, &k, &v))
		cJSON_Delete(v);
	plumb_map_free(m, NULL);
	const cJSON *it;
	cJSON_ArrayForEach(it, plumb_json_get(list, "items"))
		cache_replace_locked(m, it);
}

static void on_cluster(kube_watch_event type, const cJSON *obj, void *data)
{
	controller *c = data;
	pthread_mutex_lock(&c->lock);
	if (type == KUBE_WATCH_RESYNC) {
		cache_resync_locked(&c->clusters, obj);
		size_t i = 0;
		const char *k;
		void *v;
		while (plumb_map_next(&c->clusters, &i, &k, &v)) {
			trigger_probe(c, k);
			trigger_cluster_syncs_locked(c, k, 0);
		}
		secrets_prune_locked(c);
		c->synced[1] = 1;
	} else if (type == KUBE_WATCH_ADDED || type == KUBE_WATCH_MODIFIED) {
		char *k = obj_key(obj);
		const cJSON *old = plumb_map_get(&c->clusters, k);
		/* Our own status writes need no reaction: only spec and labels matter. */
		int changed = !old || !diff_json_equal(plumb_json_get(old, "spec"), plumb_json_get(obj, "spec")) ||
			!diff_json_equal(plumb_json_get(old, "metadata.labels"), plumb_json_get(obj, "metadata.labels"));
		int refs_changed = old && !diff_json_equal(plumb_json_get(old, "spec.kubeConfigSecretRef"), plumb_json_get(obj, "spec.kubeConfigSecretRef"));
		cache_replace_locked(&c->clusters, obj);
		if (refs_changed)
			secrets_prune_locked(c);
		if (changed) {
			trigger_probe(c, k);
			trigger_cluster_syncs_locked(c, k, 0);
		}
		free(k);
	} else if (type == KUBE_WATCH_DELETED) {
		char *k = obj_key(obj);
		cJSON_Delete(plumb_map_del(&c->clusters, k));
		secrets_prune_locked(c);
		/* GitSyncs drop the cluster's status entry on their next sync. */
		size_t i = 0;
		const char *gk;
		void *v;
		while (plumb_map_next(&c->gitsyncs, &i, &gk, &v))
			if (plumb_map_get(&((gitsync_state *)v)->clusters, plumb_json_str(obj, "metadata.name") ? plumb_json_str(obj, "metadata.name") : ""))
				trigger_sync(c, gk, k, 0);
		free(k);
	}
	pthread_mutex_unlock(&c->lock);
}

/* Triggers what depends on Secret ns/name. Called with c->lock held. */
static void secret_changed_locked(controller *c, const char *ns, const char *name)
{
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->clusters, &i, &k, &v)) {
		if (streq(plumb_json_str(v, "metadata.namespace"), ns) &&
		    streq(plumb_json_str(v, "spec.kubeConfigSecretRef.name"), name)) {
			trigger_probe(c, k);
			trigger_cluster_syncs_locked(c, k, 0);
		}
	}
	i = 0;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		if (streq(g->ns, ns) && streq(plumb_json_str(g->obj, "spec.git.secretRef.name"), name))
			trigger_src(c, g->key, 0);
	}
}

/* ---- Secrets: only what a Cluster or GitSync references ------------------------------
 * plumbd may watch every Secret of a namespace (or of the cluster), most of
 * them none of its business and some large (Helm releases: up to 1 MiB). It
 * keeps a Secret only while a Cluster (kubeConfigSecretRef) or a GitSync
 * (git.secretRef, webhook.secretRef) in its namespace names it, and only the
 * data keys those read; "plumbKeys" in the kept object records which keys it
 * was reduced for. A reference that appears later, or wants other keys, is
 * filled by a GET (secret_ensure) from the worker or HTTP thread that needs
 * it. Lists of Secrets use small pages, so a relist never holds more than
 * SECRET_LIST_LIMIT whole Secrets at once. */

#define SECRET_LIST_LIMIT 16   /* Secrets are at most 1 MiB: a page is at most 16 MiB */
#define SECRET_MISS_TTL 5.0    /* seconds a GET's NotFound is believed (webhooks are unauthenticated) */

static void free_json(void *j);

static const char *const git_secret_keys[] = {
	"username", "password", "bearerToken", "identity", "known_hosts", "caFile",
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define SECRET_MAX_KEYS 64

/* Adds key to keys[*n] unless it is there: many GitSyncs sharing one Git
 * Secret still need only its six keys. */
static void add_key(const char **keys, size_t *n, const char *key)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(keys[i], key))
			return;
	if (*n < SECRET_MAX_KEYS)
		keys[(*n)++] = key;
}

/* The data keys plumbd reads from Secret ns/name, sorted, each followed by a
 * newline, in *out (caller frees); NULL when nothing references it. */
static char *secret_needs_locked(controller *c, const char *ns, const char *name)
{
	const char *keys[SECRET_MAX_KEYS];
	size_t n = 0, i = 0;
	int referenced = 0;
	const char *k;
	void *v;
	if (!ns || !name)
		return NULL;
	while (plumb_map_next(&c->clusters, &i, &k, &v)) {
		if (streq(plumb_json_str(v, "metadata.namespace"), ns) &&
		    streq(plumb_json_str(v, "spec.kubeConfigSecretRef.name"), name)) {
			const char *key = plumb_json_str(v, "spec.kubeConfigSecretRef.key");
			add_key(keys, &n, key ? key : "kubeconfig");
			referenced = 1;
		}
	}
	i = 0;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		if (!streq(g->ns, ns))
			continue;
		if (streq(plumb_json_str(g->obj, "spec.git.secretRef.name"), name)) {
			for (size_t j = 0; j < sizeof(git_secret_keys) / sizeof(*git_secret_keys); j++)
				add_key(keys, &n, git_secret_keys[j]);
			referenced = 1;
		}
		if (streq(plumb_json_str(g->obj, "spec.webhook.secretRef.name"), name)) {
			add_key(keys, &n, "token");
			referenced = 1;
		}
	}
	if (!referenced)
		return NULL;
	qsort(keys, n, sizeof(*keys), cmp_str);
	plumb_buf b;
	plumb_buf_init(&b, 64 * 1024);   /* 64 names of at most 253 bytes */
	for (size_t j = 0; j < n; j++) {
		if (plumb_buf_append(&b, keys[j], strlen(keys[j])) || plumb_buf_append(&b, "\n", 1)) {
			plumb_buf_free(&b);
			return NULL;
		}
	}
	return plumb_buf_detach(&b);
}

/* What plumbd keeps of Secret sec: its name, namespace and resourceVersion,
 * and the data keys secret_needs_locked() names; NULL when unreferenced. */
static cJSON *secret_reduce_locked(controller *c, const cJSON *sec)
{
	char *needs = secret_needs_locked(c, plumb_json_str(sec, "metadata.namespace"), plumb_json_str(sec, "metadata.name"));
	if (!needs)
		return NULL;
	cJSON *r = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(r, "metadata");
	cJSON *data = cJSON_AddObjectToObject(r, "data");
	const char *fields[] = { "name", "namespace", "resourceVersion" };
	for (size_t i = 0; i < 3; i++) {
		const cJSON *f = plumb_json_get(plumb_json_get(sec, "metadata"), fields[i]);
		if (cJSON_IsString(f))
			cJSON_AddStringToObject(m, fields[i], f->valuestring);
	}
	const cJSON *all = plumb_json_get(sec, "data");
	for (char *p = needs, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		const cJSON *val = cJSON_GetObjectItemCaseSensitive(all, p);
		if (val)
			cJSON_AddItemToObject(data, p, cJSON_Duplicate(val, 1));
		*nl = '\n';
	}
	cJSON_AddStringToObject(r, "plumbKeys", needs);
	free(needs);
	return r;
}

/* A kept Secret stays while a Cluster or GitSync references it; each one
 * dropped bumps the epoch. */
static int secret_referenced_locked(const char *key, void *val, void *data)
{
	controller *c = data;
	(void)key;
	char *needs = secret_needs_locked(c, plumb_json_str(val, "metadata.namespace"), plumb_json_str(val, "metadata.name"));
	int keep = needs != NULL;
	free(needs);
	if (!keep)
		c->secret_epoch++;
	return keep;
}

/* Drops kept Secrets that nothing references any more (after a Cluster or
 * GitSync changed or went away). */
static void secrets_prune_locked(controller *c)
{
	plumb_map_retain(&c->secrets, secret_referenced_locked, c, free_json);
}

/* List pages of Secrets go through this on the list's helper thread. */
static cJSON *reduce_secret(const cJSON *item, void *data)
{
	controller *c = data;
	pthread_mutex_lock(&c->lock);
	cJSON *r = secret_reduce_locked(c, item);
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* Makes sure c->secrets holds Secret ns/name as the references need it now:
 * GETs it when a reference is new or wants other keys. Call without c->lock.
 * Returns 0, or the GET's error (PLUMB_ENOTFOUND when it does not exist). */
static int secret_ensure(controller *c, const char *ns, const char *name)
{
	int rc = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		char sk[600];
		snprintf(sk, sizeof(sk), "%s/%s", ns ? ns : "", name ? name : "");
		pthread_mutex_lock(&c->lock);
		char *needs = secret_needs_locked(c, ns, name);
		const cJSON *have = plumb_map_get(&c->secrets, sk);
		int fine = !needs || (have && streq(plumb_json_str(have, "plumbKeys"), needs));
		unsigned long epoch = c->secret_epoch;
		const double *miss = plumb_map_get(&c->secret_misses, sk);
		int recent_miss = !fine && miss && plumb_time_mono() - *miss < SECRET_MISS_TTL;
		pthread_mutex_unlock(&c->lock);
		free(needs);
		if (fine)
			return 0;
		/* Anyone may POST to /hooks/…: a missing Secret costs one GET per
		 * SECRET_MISS_TTL, not one per request. */
		if (recent_miss)
			return plumb_error_set(PLUMB_ENOTFOUND, "secret %s not found", sk);
		cJSON *sec = NULL;
		rc = kube_get(&sec, c->o.mgmt, &c->secret_res, ns, name);
		pthread_mutex_lock(&c->lock);
		if (rc == PLUMB_ENOTFOUND) {
			double *t = malloc(sizeof(*t));
			void *old = NULL;
			if (t) {
				*t = plumb_time_mono();
				if (plumb_map_put(&c->secret_misses, sk, t, &old) == 0)
					free(old);
				else
					free(t);
			}
		} else {
			free(plumb_map_del(&c->secret_misses, sk));
		}
		if (c->secret_epoch != epoch) {
			/* A watch event came in meanwhile: it is at least as new. */
			pthread_mutex_unlock(&c->lock);
			cJSON_Delete(sec);
			continue;
		}
		cJSON *r = rc == 0 ? secret_reduce_locked(c, sec) : NULL;
		void *old = NULL;
		if (r) {
			if (plumb_map_put(&c->secrets, sk, r, &old) == 0)
				cJSON_Delete(old);
			else
				cJSON_Delete(r);
			c->secret_epoch++;
		} else if (rc == PLUMB_ENOTFOUND && plumb_map_get(&c->secrets, sk)) {
			cJSON_Delete(plumb_map_del(&c->secrets, sk));
			c->secret_epoch++;
		}
		pthread_mutex_unlock(&c->lock);
		cJSON_Delete(sec);
		return rc;
	}
	return rc;
}

/* secret_ensure() for the Secret named at path in GitSync/Cluster key's
 * object (kind: 'g' GitSync, 'c' Cluster). */
static int secret_ensure_ref(controller *c, char kind, const char *key, const char *path)
{
	char *ns = NULL, *name = NULL;
	pthread_mutex_lock(&c->lock);
	const cJSON *obj = NULL;
	if (kind == 'g') {
		gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
		obj = g ? g->obj : NULL;
	} else {
		obj = plumb_map_get(&c->clusters, key);
	}
	ns = plumb_strdup(plumb_json_str(obj, "metadata.namespace"));
	name = plumb_strdup(plumb_json_str(obj, path));
	pthread_mutex_unlock(&c->lock);
	int rc = ns && name ? secret_ensure(c, ns, name) : 0;
	free(ns);
	free(name);
	return rc;
}

static void on_secret(kube_watch_event type, const cJSON *obj, void *data)
{
	controller *c = data;
	pthread_mutex_lock(&c->lock);
	if (type == KUBE_WATCH_RESYNC) {
		/* Items were reduced page by page (reduce_secret); keep those that
		 * still fit today's references, the rest are fetched on demand. */
		plumb_map_free(&c->secrets, free_json);
		const cJSON *it;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items")) {
			char *needs = secret_needs_locked(c, plumb_json_str(it, "metadata.namespace"), plumb_json_str(it, "metadata.name"));
			if (needs && streq(needs, plumb_json_str(it, "plumbKeys")))
				cache_replace_locked(&c->secrets, it);
			free(needs);
		}
		c->secret_epoch++;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items"))
			secret_changed_locked(c, plumb_json_str(it, "metadata.namespace"), plumb_json_str(it, "metadata.name"));
		c->synced[2] = 1;
	} else if (type == KUBE_WATCH_ADDED || type == KUBE_WATCH_MODIFIED || type == KUBE_WATCH_DELETED) {
		char *k = obj_key(obj);
		free(plumb_map_del(&c->secret_misses, k));
		cJSON *r = type == KUBE_WATCH_DELETED ? NULL : secret_reduce_locked(c, obj);
		void *old = NULL;
		if (r) {
			if (plumb_map_put(&c->secrets, k, r, &old) == 0)
				cJSON_Delete(old);
			else
				cJSON_Delete(r);
			c->secret_epoch++;
		} else if (plumb_map_get(&c->secrets, k)) {
			cJSON_Delete(plumb_map_del(&c->secrets, k));
			c->secret_epoch++;
		}
		free(k);
		secret_changed_locked(c, plumb_json_str(obj, "metadata.namespace"), plumb_json_str(obj, "metadata.name"));
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- targets ---------------------------------------------------------------------- */

static void free_engine(void *e) { apply_engine_free(e); }
static void free_json(void *j) { cJSON_Delete(j); }

static void free_live_entry(void *p)
{
	live_entry *e = p;
	if (e)
		free(e->body);
	plumb_keep_free(e);
}

static void target_unref(controller *c, target *t)
{
	pthread_mutex_lock(&c->lock);
	int last = --t->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	for (size_t i = 0; i < t->nwatches; i++) {
		kube_watch_stop(t->watches[i]->w);
		free(t->watches[i]);
	}
	free(t->watches);
	plumb_map_free(&t->cache, free_live_entry);
	plumb_map_free(&t->label_counts, NULL);
	plumb_map_free(&t->labels, plumb_keep_free);
	plumb_map_free(&t->engines, free_engine);
	kube_client_free(t->client);
	pthread_mutex_destroy(&t->lock);
	free(t->key);
	free(t->name);
	free(t->cred_id);
	free(t->identity);
	free(t);
}

/* 1 when ns is one of the comma-separated names in list. */
static int in_list(const char *list, const char *ns)
{
	size_t n = ns ? strlen(ns) : 0;
	for (const char *p = list; p && *p && n;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && !strncmp(p, ns, n))
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

#define MANAGEMENT_TARGET_NOT_ALLOWED "ManagementTargetNotAllowed"

/* A Cluster without kubeConfigSecretRef targets the management cluster
 * with plumbd's own credentials: only from namespaces the operator names. */
static int management_target_allowed(const controller *c, const cJSON *cl)
{
	return in_list(c->o.management_target_namespaces, plumb_json_str(cl, "metadata.namespace"));
}

static int management_target_refused(const cJSON *cl)
{
	const char *ns = plumb_json_str(cl, "metadata.namespace");
	return plumb_error_set(PLUMB_EFORBIDDEN, "%s: Cluster %s/%s has no kubeConfigSecretRef, which makes "
		"the management cluster its target; plumbd allows that only in the namespaces of "
		"--management-target-namespaces, and \"%s\" is not one", MANAGEMENT_TARGET_NOT_ALLOWED,
		ns ? ns : "", plumb_json_str(cl, "metadata.name") ? plumb_json_str(cl, "metadata.name") : "", ns ? ns : "");
}

/* The target for Cluster cl_key, (re)built when its credentials changed.
 * *out holds a reference: target_unref() it. */
/* The fields every target starts with, whoever it acts as; takes *cred_id
 * over. refs = 2: the map's and the caller's. */
static void target_init(target *t, controller *c, const char *cl_key, const char *name,
	const char *identity, char **cred_id)
{
	t->refs = 2;
	t->key = plumb_strdup(cl_key);
	t->name = plumb_strdup(name);
	t->identity = identity ? plumb_strdup(identity) : NULL;
	t->cred_id = *cred_id;
	*cred_id = NULL;
	t->c = c;
	pthread_mutex_init(&t->lock, NULL);
	t->cache.keep = 1;
	t->labels.keep = 1;
	t->label_counts.keep = 1;
}

/* Puts t in the targets under mkey; returns the one it replaces (the
 * caller unrefs it) or NULL. */
static target *target_publish(controller *c, const char *mkey, target *t)
{
	target *old = NULL;
	pthread_mutex_lock(&c->lock);
	plumb_map_put(&c->targets, mkey, t, (void **)&old);
	pthread_mutex_unlock(&c->lock);
	return old;
}

static int target_get(target **out, controller *c, const char *cl_key)
{
	char *cred_id = NULL, *kc = NULL, *context = NULL, *origin = NULL, *name = NULL;
	size_t kclen = 0;
	int rc = 0, in_cluster = 0;
	kube_config *cfg = NULL;
	target *t = NULL;

	int erc = secret_ensure_ref(c, 'c', cl_key, "spec.kubeConfigSecretRef.name");
	char emsg[512] = "";
	if (erc < 0 && erc != PLUMB_ENOTFOUND)
		snprintf(emsg, sizeof(emsg), "%s", plumb_error_last());
	pthread_mutex_lock(&c->lock);
	const cJSON *cl = plumb_map_get(&c->clusters, cl_key);
	if (!cl) {
		pthread_mutex_unlock(&c->lock);
		return plumb_error_set(PLUMB_ENOTFOUND, "cluster %s not found", cl_key);
	}
	name = plumb_strdup(plumb_json_str(cl, "metadata.name"));
	const char *ns = plumb_json_str(cl, "metadata.namespace");
	const char *sname = plumb_json_str(cl, "spec.kubeConfigSecretRef.name");
	const char *skey = plumb_json_str(cl, "spec.kubeConfigSecretRef.key");
	context = plumb_strdup(plumb_json_str(cl, "spec.kubeConfigSecretRef.context"));
	if (!sname && !management_target_allowed(c, cl)) {
		rc = management_target_refused(cl);
	} else if (!sname) {
		in_cluster = 1;
		cred_id = plumb_strdup("management-cluster");
	} else {
		char sk[600];
		snprintf(sk, sizeof(sk), "%s/%s", ns ? ns : "", sname);
		const cJSON *sec = plumb_map_get(&c->secrets, sk);
		const cJSON *val = cJSON_GetObjectItemCaseSensitive(plumb_json_get(sec, "data"), skey ? skey : "kubeconfig");
		if (!sec && emsg[0]) {
			rc = plumb_error_set(erc, "kubeconfig secret %s: %s", sk, emsg);
		} else if (!sec) {
			rc = plumb_error_set(PLUMB_ENOTFOUND, "kubeconfig secret %s not found", sk);
		} else if (!cJSON_IsString(val)) {
			rc = plumb_error_set(PLUMB_EINVALID, "kubeconfig secret %s has no key \"%s\"",
				sk, skey ? skey : "kubeconfig");
		} else {
			cred_id = plumb_asprintf("%s|%s|%s|%s", sk, plumb_json_str(sec, "metadata.resourceVersion"),
				skey ? skey : "kubeconfig", context ? context : "");
			origin = plumb_asprintf("secret %s", sk);
			rc = plumb_base64_decode(&kc, &kclen, val->valuestring, strlen(val->valuestring));
			if (rc)
				plumb_error_set(rc, "kubeconfig secret %s: data is not base64", sk);
		}
	}
	if (!rc) {
		t = plumb_map_get(&c->targets, cl_key);
		/* A target over its cache cap is built afresh (relisting
		 * everything) once opts.target_cache_retry has passed. */
		if (t && streq(t->cred_id, cred_id) &&
		    !(t->over_cap && plumb_time_mono() - t->over_since >= c->o.target_cache_retry)) {
			t->refs++;
			pthread_mutex_unlock(&c->lock);
			*out = t;
			goto cleanup;
		}
		t = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc)
		goto cleanup;

	if (in_cluster) {
		cfg = c->o.mgmt_config;
		kube_config_free(NULL);
	} else if ((rc = kube_config_load_memory(&cfg, kc, kclen, context, origin, c->o.tenant_policy))) {
		goto cleanup;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	kube_client_opts ko = { .name = name, .timeout = 20, .on_request = c->o.on_request,
		.hook_data = c->o.hook_data, .qps = c->o.kube_qps > 0 ? c->o.kube_qps : -1,
		.burst = c->o.kube_burst };
	rc = kube_client_new(&t->client, cfg, &ko);
	if (rc) {
		free(t);
		t = NULL;
		goto cleanup;
	}
	target_init(t, c, cl_key, name, NULL, &cred_id);
	target *old = target_publish(c, cl_key, t);
	if (old) {
		if (old->over_cap)
			plumb_info("cluster was over its cache cap; reconnecting", "cluster", name);
		else
			plumb_info("cluster credentials changed; reconnecting", "cluster", name);
		target_unref(c, old);
	}
	*out = t;
cleanup:
	if (cfg && !in_cluster)
		kube_config_free(cfg);
	if (kc) {
		OPENSSL_cleanse(kc, kclen);
		free(kc);
	}
	free(cred_id);
	free(context);
	free(origin);
	free(name);
	return rc;
}

/* The user GitSync gs acts as in its targets: system:serviceaccount:<its
 * namespace>:<spec.serviceAccountName, else --default-service-account>;
 * "" = plumbd's own credentials (neither is set). PLUMB_EINVALID naming the
 * field for a name that is no service account name. */
static int gitsync_identity(char *out, size_t outlen, const controller *c, const cJSON *gs)
{
	const char *sa = plumb_json_str(gs, "spec.serviceAccountName");
	out[0] = '\0';
	if (!sa || !*sa)
		sa = c->o.default_service_account;
	if (!sa || !*sa)
		return 0;
	return kube_service_account_user(out, outlen, plumb_json_str(gs, "metadata.namespace"), sa);
}

/* The target for Cluster cl_key as user ("" or NULL: plumbd's own). An
 * identity's target is built on the Cluster's own (its client impersonates
 * user over the same connections) and rebuilt when that one is.
 * *out holds a reference: target_unref() it. */
static int target_for(target **out, controller *c, const char *cl_key, const char *user)
{
	target *base = NULL, *t = NULL, *old = NULL;
	char *mkey = NULL, *cred_id = NULL;
	int rc;
	if (!user || !*user)
		return target_get(out, c, cl_key);
	if ((rc = target_get(&base, c, cl_key)))
		return rc;
	mkey = plumb_asprintf("%s|%s", cl_key, user);
	cred_id = plumb_asprintf("%s|%s", base->cred_id, user);
	if (!mkey || !cred_id) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	pthread_mutex_lock(&c->lock);
	t = plumb_map_get(&c->targets, mkey);
	if (t && streq(t->cred_id, cred_id)) {
		t->refs++;
		pthread_mutex_unlock(&c->lock);
		*out = t;
		goto cleanup;
	}
	pthread_mutex_unlock(&c->lock);
	if (!(t = calloc(1, sizeof(*t)))) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	if ((rc = kube_client_impersonate(&t->client, base->client, user, NULL))) {
		free(t);
		goto cleanup;
	}
	target_init(t, c, cl_key, base->name, user, &cred_id);
	old = target_publish(c, mkey, t);
	if (old)
		target_unref(c, old);
	*out = t;
cleanup:
	target_unref(c, base);
	free(mkey);
	free(cred_id);
	return rc;
}

/* Drops GitSync gs_key's engine from every target of Cluster cl_key but
 * keep (NULL: all): the GitSync is gone or acts as another identity now.
 * An identity's target left without engines goes (its watches stop). */
static void drop_engines(controller *c, const char *cl_key, const char *gs_key, const target *keep)
{
	target *drop[64];
	size_t ndrop = 0;
	pthread_mutex_lock(&c->lock);
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->targets, &i, &k, &v)) {
		target *t = v;
		if (t == keep || !streq(t->key, cl_key))
			continue;
		pthread_mutex_lock(&t->lock);
		apply_engine_free(plumb_map_del(&t->engines, gs_key));
		int empty = t->identity && t->engines.count == 0;
		pthread_mutex_unlock(&t->lock);
		if (empty && ndrop < sizeof(drop) / sizeof(drop[0]))
			drop[ndrop++] = t;
	}
	for (size_t j = 0; j < ndrop; j++) {
		char *mkey = plumb_asprintf("%s|%s", drop[j]->key, drop[j]->identity);
		if (mkey && plumb_map_get(&c->targets, mkey) == drop[j])
			plumb_map_del(&c->targets, mkey);
		else
			drop[j] = NULL;
		free(mkey);
	}
	pthread_mutex_unlock(&c->lock);
	for (size_t j = 0; j < ndrop; j++)
		if (drop[j])
			target_unref(c, drop[j]);
}

static void cache_key(char *out, size_t outlen, const kube_resource *res, const char *ns, const char *name)
{
	snprintf(out, outlen, "%s|%s|%s|%s", res->group, res->resource, ns ? ns : "", name ? name : "");
}

/* The watch of res that covers namespace ns (NULL or "": a watch of all
 * namespaces, or any for a cluster-scoped kind). */
static target_watch *find_watch_locked(target *t, const kube_resource *res, const char *ns)
{
	for (size_t i = 0; i < t->nwatches; i++)
		if (!strcmp(t->watches[i]->res.group, res->group) &&
		    !strcmp(t->watches[i]->res.resource, res->resource) &&
		    (!t->watches[i]->ns[0] || !res->namespaced || streq(t->watches[i]->ns, ns ? ns : "")))
			return t->watches[i];
	return NULL;
}

/* Live lookup for the apply engine, from the target's watch cache. A whole
 * object held there is handed over (and no longer held). */
static int target_live(apply_live_info *info, void *data, const kube_resource *res,
	const char *ns, const char *name)
{
	target *t = data;
	char key[1200], *body = NULL;
	int ret = -1;
	cache_key(key, sizeof(key), res, res->namespaced ? ns : "", name);
	pthread_mutex_lock(&t->lock);
	target_watch *w = find_watch_locked(t, res, res->namespaced ? ns : NULL);
	if (w && w->synced) {
		live_entry *e = plumb_map_get(&t->cache, key);
		ret = e ? 1 : 0;
		if (e) {
			snprintf(info->rv, sizeof(info->rv), "%s", e->rv);
			snprintf(info->label, sizeof(info->label), "%s", e->label ? e->label : "");
			if (e->has_hash)
				plumb_hex_encode(info->hash, e->hash, sizeof(e->hash));
			else
				info->hash[0] = '\0';
			info->prune_disabled = e->prune_disabled;
			info->deleting = e->deleting;
			body = e->body;
			t->pending -= body ? e->body_len : 0;
			e->body = NULL;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (body) {
		info->obj = cJSON_Parse(body);
		free(body);
	}
	return ret;
}

/* What the target watches keep of each listed object (runs on the list's
 * helper thread): the fields live_entry holds. */
static cJSON *reduce_live(const cJSON *obj, void *data)
{
	/* data (the target_watch) may be gone: a stopped watch's list runs on */
	(void)data;
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
	const cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
	static const char *const fields[] = { "namespace", "name", "resourceVersion", "deletionTimestamp" };
	cJSON *o = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(o, "metadata");
	cJSON *l = cJSON_AddObjectToObject(m, "labels"), *a = cJSON_AddObjectToObject(m, "annotations");
	if (!o || !m || !l || !a) {
		cJSON_Delete(o);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, fields[i]);
		if (cJSON_IsString(v))
			cJSON_AddStringToObject(m, fields[i], v->valuestring);
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, APPLY_LABEL_GITSYNC);
	if (cJSON_IsString(v))
		cJSON_AddStringToObject(l, APPLY_LABEL_GITSYNC, v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(ann, APPLY_ANNOTATION_HASH);
	if (cJSON_IsString(v))
		cJSON_AddStringToObject(a, APPLY_ANNOTATION_HASH, v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(ann, APPLY_ANNOTATION_PRUNE);
	if (cJSON_IsString(v))
		cJSON_AddStringToObject(a, APPLY_ANNOTATION_PRUNE, v->valuestring);
	return o;
}

/* Marks t over its cache cap (t->lock held): Failed with why, its cache
 * given back, watches no longer trusted; rebuilt after opts.target_cache_retry.
 * Returns 1 when t was not over its cap before. */
static int target_over_cap_locked(target *t, const char *why)
{
	if (t->over_cap)
		return 0;
	snprintf(t->cap_msg, sizeof(t->cap_msg), "%s", why);
	t->over_since = plumb_time_mono();
	t->over_cap = 1;
	plumb_map_free(&t->cache, free_live_entry);
	plumb_map_free(&t->label_counts, NULL);
	t->pending = 0;
	t->cache_bytes = 0;
	for (size_t i = 0; i < t->nwatches; i++)
		t->watches[i]->synced = 0;
	plumb_warn("cluster over its cache cap; failing it", "cluster", t->name, "error", why);
	return 1;
}

/* Counts cache entries per GitSync label (t->lock held); label may be NULL. */
static void label_count_add_locked(target *t, const char *label, int d)
{
	if (!label)
		return;
	uintptr_t n = (uintptr_t)plumb_map_get(&t->label_counts, label);
	n = d < 0 ? (n ? n - 1 : 0) : n + 1;
	if (n)
		plumb_map_put(&t->label_counts, label, (void *)n, NULL);
	else
		plumb_map_del(&t->label_counts, label);
}

/* Puts what obj says into the cache (t->lock held); body (taken, may be
 * NULL) is kept when the pending budget allows. Returns 1 when this store
 * took t over its cache cap (target_over_cap_locked), else 0. */
static int cache_store_locked(target *t, const char *key, const cJSON *obj, char *body)
{
	apply_live_info info;
	if (t->over_cap) {
		free(body);
		return 0;
	}
	live_entry *e = plumb_map_get(&t->cache, key);
	int fresh = e == NULL;
	if (fresh) {
		size_t need = sizeof(*e) + 64 + strlen(key) + 1;
		const cJSON *lv = cJSON_GetObjectItemCaseSensitive(plumb_json_get(obj, "metadata.labels"), APPLY_LABEL_GITSYNC);
		if (cJSON_IsString(lv) && !plumb_map_get(&t->labels, lv->valuestring))
			need += strlen(lv->valuestring) + 1 + 64;
		const controller_opts *o = &t->c->o;
		if (t->cache.count + 1 > o->target_max_objects ||
		    t->cache_bytes + t->label_bytes + need > o->target_max_bytes) {
			char why[256];
			if (t->cache.count + 1 > o->target_max_objects)
				snprintf(why, sizeof(why), "the cluster has more than %zu objects plumbd would cache "
					"(--target-cache-max-objects)", o->target_max_objects);
			else
				snprintf(why, sizeof(why), "what plumbd would cache of the cluster's objects is over "
					"%zu bytes (--target-cache-max-bytes)", o->target_max_bytes);
			free(body);
			return target_over_cap_locked(t, why);
		}
	}
	if (fresh && !(e = plumb_keep_alloc(sizeof(*e)))) {
		free(body);
		return 0;
	}
	/* updated in place: no churn of long-lived records */
	if (e->body) {
		t->pending -= e->body_len;
		free(e->body);
	}
	const char *old_label = e->label;
	memset(e, 0, sizeof(*e));
	apply_live_info_of(&info, obj);
	snprintf(e->rv, sizeof(e->rv), "%s", strlen(info.rv) < sizeof(e->rv) ? info.rv : "");
	e->has_hash = strlen(info.hash) == 64 && plumb_hex_decode(e->hash, sizeof(e->hash), info.hash) == 0;
	if (info.label[0]) {
		e->label = plumb_map_get(&t->labels, info.label);
		if (!e->label) {
			char *l = plumb_keep_strdup(info.label);
			if (l && plumb_map_put(&t->labels, info.label, l, NULL) == 0) {
				e->label = l;
				t->label_bytes += strlen(l) + 1 + 64;
			} else {
				plumb_keep_free(l);
			}
		}
	}
	e->prune_disabled = (unsigned)info.prune_disabled;
	e->deleting = (unsigned)info.deleting;
	if (body) {
		size_t len = strlen(body) + 1;
		if (t->pending + len <= PENDING_MAX) {
			e->body = body;
			e->body_len = len;
			t->pending += len;
		} else {
			free(body);
		}
	}
	if (fresh && plumb_map_put(&t->cache, key, e, NULL) != 0) {
		if (e->body)
			t->pending -= e->body_len;
		free_live_entry(e);
		return 0;
	}
	if (fresh)
		t->cache_bytes += sizeof(*e) + 64 + strlen(key) + 1;
	if (old_label != e->label) {
		label_count_add_locked(t, old_label, -1);
		label_count_add_locked(t, e->label, 1);
	}
	return 0;
}

static void cache_drop_locked(target *t, const char *key)
{
	live_entry *old = plumb_map_del(&t->cache, key);
	if (old && old->body)
		t->pending -= old->body_len;
	if (old) {
		size_t n = sizeof(*old) + 64 + strlen(key) + 1;
		t->cache_bytes -= n < t->cache_bytes ? n : t->cache_bytes;
		label_count_add_locked(t, old->label, -1);
	}
	free_live_entry(old);
}

/* The key of the GitSync labelled lv, or NULL (malloc'd). */
static char *gitsync_of_label(controller *c, const char *lv)
{
	char *out = NULL;
	size_t i = 0;
	const char *k;
	void *v;
	pthread_mutex_lock(&c->lock);
	while (!out && plumb_map_next(&c->gitsyncs, &i, &k, &v))
		if (strcmp(((gitsync_state *)v)->label, lv) == 0)
			out = plumb_strdup(((gitsync_state *)v)->key);
	pthread_mutex_unlock(&c->lock);
	return out;
}

/* Whether a watch event about obj calls for a reconcile: not when it is the
 * echo of what the GitSync's engine applied or verified (the same
 * resourceVersion), nor the deletion of an object the engine no longer wants. */
static int event_needs_sync(target *t, kube_watch_event type, const kube_resource *res, const cJSON *obj)
{
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(plumb_json_get(obj, "metadata.labels"), APPLY_LABEL_GITSYNC);
	char *gk;
	int needs = 1;
	if (!cJSON_IsString(lv) || !(gk = gitsync_of_label(t->c, lv->valuestring)))
		return 1;
	pthread_mutex_lock(&t->lock);
	apply_engine *e = plumb_map_get(&t->engines, gk);
	if (e && type == KUBE_WATCH_DELETED)
		needs = apply_engine_tracks(e, res, plumb_json_str(obj, "metadata.namespace"), plumb_json_str(obj, "metadata.name"));
	else if (e)
		needs = !apply_engine_verified(e, res, plumb_json_str(obj, "metadata.namespace"),
			plumb_json_str(obj, "metadata.name"), plumb_json_str(obj, "metadata.resourceVersion"));
	pthread_mutex_unlock(&t->lock);
	free(gk);
	return needs;
}

/* Triggers sync items for the GitSync owning obj (by its label) on target t. */
static void trigger_owner(controller *c, target *t, const cJSON *obj)
{
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(plumb_json_get(obj, "metadata.labels"), APPLY_LABEL_GITSYNC);
	if (!cJSON_IsString(lv))
		return;
	pthread_mutex_lock(&c->lock);
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		char user[600];
		if (strcmp(g->label, lv->valuestring) == 0) {
			/* Only the watches of the GitSync's own identity speak for its
			 * objects (what plumbd's own watches see is not its to know). */
			if (gitsync_identity(user, sizeof(user), c, g->obj) != 0 ||
			    !streq(user, t->identity ? t->identity : ""))
				continue;
			/* A change in a target is acted on fast: a short window still
			 * gathers a burst of events into one run, but an edit never
			 * waits out a whole debounce. */
			double d = jduration(g->obj, "spec.debounce", 1);
			trigger_sync(c, g->key, t->key, d < DRIFT_WINDOW ? d : DRIFT_WINDOW);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

static void on_target_event(kube_watch_event type, const cJSON *obj, void *data)
{
	target_watch *tw = data;
	target *t = tw->t;
	char key[1200];
	switch (type) {
	case KUBE_WATCH_RESYNC: {
		/* items went through reduce_live: metadata only */
		char prefix[900];
		/* a watch of one namespace replaces that namespace only */
		snprintf(prefix, sizeof(prefix), "%s|%s|%s%s", tw->res.group, tw->res.resource,
			tw->ns, tw->ns[0] ? "|" : "");
		pthread_mutex_lock(&t->lock);
		size_t i = 0, plen = strlen(prefix);
		const char *k;
		void *v;
		char **drop = NULL;
		size_t ndrop = 0;
		while (plumb_map_next(&t->cache, &i, &k, &v)) {
			if (strncmp(k, prefix, plen) == 0) {
				char **p = realloc(drop, (ndrop + 1) * sizeof(*p));
				if (p) {
					drop = p;
					drop[ndrop++] = plumb_strdup(k);
				}
			}
		}
		for (size_t j = 0; j < ndrop; j++) {
			if (drop[j])
				cache_drop_locked(t, drop[j]);
			free(drop[j]);
		}
		free(drop);
		const cJSON *it;
		int went_over = 0;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items")) {
			cache_key(key, sizeof(key), &tw->res, plumb_json_str(it, "metadata.namespace"), plumb_json_str(it, "metadata.name"));
			went_over |= cache_store_locked(t, key, it, NULL);
		}
		int was = tw->synced;
		tw->synced = !t->over_cap;
		pthread_mutex_unlock(&t->lock);
		/* After an outage or an expiry: look at everything again. */
		if (was == 0 || went_over) {
			pthread_mutex_lock(&tw->c->lock);
			trigger_cluster_syncs_locked(tw->c, t->key, 0);
			pthread_mutex_unlock(&tw->c->lock);
		} else {
			cJSON_ArrayForEach(it, plumb_json_get(obj, "items"))
				if (event_needs_sync(t, KUBE_WATCH_MODIFIED, &tw->res, it))
					trigger_owner(tw->c, t, it);
		}
		break;
	}
	case KUBE_WATCH_ADDED:
	case KUBE_WATCH_MODIFIED:
	case KUBE_WATCH_DELETED: {
		int needs = event_needs_sync(t, type, &tw->res, obj);
		cache_key(key, sizeof(key), &tw->res, plumb_json_str(obj, "metadata.namespace"), plumb_json_str(obj, "metadata.name"));
		char *printed = type != KUBE_WATCH_DELETED && needs ? cJSON_PrintUnformatted(obj) : NULL;
		char *body = plumb_strdup(printed);   /* plain malloc: freed with free() */
		cJSON_free(printed);
		pthread_mutex_lock(&t->lock);
		int went_over = 0;
		if (type == KUBE_WATCH_DELETED)
			cache_drop_locked(t, key);
		else
			went_over = cache_store_locked(t, key, obj, body);
		pthread_mutex_unlock(&t->lock);
		if (went_over) {
			pthread_mutex_lock(&tw->c->lock);
			trigger_cluster_syncs_locked(tw->c, t->key, 0);
			pthread_mutex_unlock(&tw->c->lock);
		} else if (needs) {
			trigger_owner(tw->c, t, obj);
		}
		break;
	}
	case KUBE_WATCH_ERROR:
		/* Until the stream relists, the cache may be stale: the engine reads
		 * from the cluster instead (and sees an outage as one). */
		pthread_mutex_lock(&t->lock);
		tw->synced = 0;
		int over = streq(plumb_json_str(obj, "reason"), plumb_strerror(PLUMB_ETOOBIG));
		if (over) {
			/* kube_watch_opts.list_max_*: the list went past the caps */
			char why[300];
			snprintf(why, sizeof(why), "%s: more than plumbd caches for one cluster "
				"(--target-cache-max-objects %zu, --target-cache-max-bytes %zu)",
				plumb_json_str(obj, "message") ? plumb_json_str(obj, "message") : "list too big",
				tw->c->o.target_max_objects, tw->c->o.target_max_bytes);
			over = target_over_cap_locked(t, why);
		}
		pthread_mutex_unlock(&t->lock);
		if (over) {
			pthread_mutex_lock(&tw->c->lock);
			trigger_cluster_syncs_locked(tw->c, t->key, 0);
			pthread_mutex_unlock(&tw->c->lock);
		}
		plumb_debug("watch error", "cluster", t->name, "resource", tw->res.resource,
			"message", plumb_json_str(obj, "message"));
		break;
	case KUBE_WATCH_BOOKMARK:
		break;
	}
}

/* Starts a labelled watch on res in target t unless one runs. An
 * identity's target watches a namespaced kind in ns only (what a tenant's
 * service account may typically list and watch); plumbd's own watches all
 * namespaces. */
static void target_watch_kind(controller *c, target *t, const kube_resource *res, const char *ns)
{
	if (!t->identity || !res->namespaced || !ns)
		ns = "";
	pthread_mutex_lock(&t->lock);
	target_watch *w = find_watch_locked(t, res, ns);
	if (w || !(res->verbs & KUBE_VERB_WATCH)) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	target_watch **p = realloc(t->watches, (t->nwatches + 1) * sizeof(*p));
	w = calloc(1, sizeof(*w));
	if (!p || !w) {
		if (p)
			t->watches = p;
		free(w);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->watches = p;
	w->c = c;
	w->t = t;
	w->res = *res;
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	t->watches[t->nwatches++] = w;
	pthread_mutex_unlock(&t->lock);
	kube_watch_opts wo = { .label_selector = MANAGED_SELECTOR, .reduce = reduce_live,
		.ns = w->ns[0] ? w->ns : NULL,
		.list_max_items = c->o.target_max_objects, .list_max_bytes = c->o.target_max_bytes };
	if (kube_watch_start(&w->w, c->hub, t->client, res, &wo, on_target_event, w) != 0)
		plumb_warn("cannot watch", "cluster", t->name, "resource", res->resource,
			"error", plumb_error_last());
}

static apply_engine *target_engine(target *t, const gitsync_state *g)
{
	pthread_mutex_lock(&t->lock);
	apply_engine *e = plumb_map_get(&t->engines, g->key);
	if (!e && apply_engine_new(&e, t->client, g->ns, g->name) == 0)
		plumb_map_put(&t->engines, g->key, e, NULL);
	pthread_mutex_unlock(&t->lock);
	return e;
}

/* ---- status writing ---------------------------------------------------------------- */

static cJSON *status_body(const char *api_version, const char *kind, const char *ns,
	const char *name, cJSON *status)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "apiVersion", api_version);
	cJSON_AddStringToObject(b, "kind", kind);
	cJSON *m = cJSON_AddObjectToObject(b, "metadata");
	cJSON_AddStringToObject(m, "name", name);
	cJSON_AddStringToObject(m, "namespace", ns);
	cJSON_AddItemToObject(b, "status", status);
	return b;
}

/* Builds the GitSync's status and writes it when it differs from what is
 * there. Only the leader's workers call this. */
static void write_gitsync_status(controller *c, gitsync_state *g)
{
	cJSON *st = NULL, *prev = NULL;
	pthread_mutex_lock(&g->status_lock);
	pthread_mutex_lock(&c->lock);
	if (g->deleted) {
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&g->status_lock);
		return;
	}
	prev = g->last_written ? cJSON_Duplicate(g->last_written, 1) :
		cJSON_Duplicate(plumb_json_get(g->obj, "status"), 1);
	size_t n = g->clusters.count, k = 0, i = 0;
	controller_cluster_status *arr = calloc(n ? n : 1, sizeof(*arr));
	const char *key;
	void *v;
	while (arr && plumb_map_next(&g->clusters, &i, &key, &v) && k < n)
		arr[k++] = *(controller_cluster_status *)v;
	const cJSON *gen = plumb_json_get(g->obj, "metadata.generation");
	controller_gitsync_summary sum = {
		.generation = cJSON_IsNumber(gen) ? (long)gen->valuedouble : 0,
		.fetched_commit = g->fetched,
		.handled_requested_at = g->handled_req,
		.stalled_reason = g->stall_reason,
		.stalled_message = g->stall_msg,
	};
	int rc = arr ? controller_status_build(&st, &sum, arr, k, prev, plumb_time_real()) : PLUMB_ENOMEM;
	pthread_mutex_unlock(&c->lock);
	if (rc == 0) {
		const cJSON *cd;
		cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(st, "conditions")) {
			const char *type = plumb_json_str(cd, "type");
			int yes = streq(plumb_json_str(cd, "status"), "True");
			if (streq(type, "Ready"))
				server_gauge_set(c->m.gs_ready, yes, g->key);
			else if (streq(type, "Stalled"))
				server_gauge_set(c->m.gs_stalled, yes, g->key);
		}
	}
	free(arr);
	if (rc == 0 && !(prev && diff_json_equal(st, prev) && diff_json_equal(prev, st))) {
		cJSON *body = status_body(PLUMB_API_GROUP_VERSION, "GitSync", g->ns, g->name, cJSON_Duplicate(st, 1));
		kube_apply_opts ao = { .field_manager = APPLY_FIELD_MANAGER, .force = 1 };
		if (kube_apply_status(NULL, c->o.mgmt, &c->gitsync_res, g->ns, body, &ao) == 0) {
			cJSON_Delete(g->last_written);
			g->last_written = st;
			st = NULL;
		} else {
			plumb_warn("cannot write status", "gitsync", g->key, "error", plumb_error_last());
		}
		cJSON_Delete(body);
	}
	cJSON_Delete(st);
	cJSON_Delete(prev);
	pthread_mutex_unlock(&g->status_lock);
}

/* The GitSync with key, referenced (gitsync_unref under c->lock), or NULL. */
static gitsync_state *gitsync_get(controller *c, const char *key)
{
	pthread_mutex_lock(&c->lock);
	gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
	if (g)
		g->refs++;
	pthread_mutex_unlock(&c->lock);
	return g;
}

static void gitsync_put(controller *c, gitsync_state *g)
{
	pthread_mutex_lock(&c->lock);
	gitsync_unref(g);
	pthread_mutex_unlock(&c->lock);
}

/* Sets or clears (reason NULL) the GitSync's stall; posts an event when it
 * starts or ends. */
static void set_stall(controller *c, gitsync_state *g, const char *reason, const char *msg)
{
	pthread_mutex_lock(&c->lock);
	int was = g->stall_reason != NULL;
	int same = was && reason && streq(g->stall_reason, reason) && streq(g->stall_msg, msg);
	set_str(&g->stall_reason, reason);
	set_str(&g->stall_msg, reason ? msg : NULL);
	const char *uid = plumb_json_str(g->obj, "metadata.uid");
	char *uidc = plumb_strdup(uid);
	pthread_mutex_unlock(&c->lock);
	if (reason && !same) {
		plumb_warn("gitsync stalled", "gitsync", g->key, "reason", reason, "error", msg);
		controller_events_post(c->events, g->ns, g->name, uidc, "Warning", reason, "Stall", msg);
	} else if (!reason && was) {
		plumb_info("gitsync recovered", "gitsync", g->key);
		controller_events_post(c->events, g->ns, g->name, uidc, "Normal", "Recovered", "Fetch",
			"the revision is valid again");
	}
	free(uidc);
}

/* ---- source reconcile ------------------------------------------------------------------ */

static source_ref_kind ref_kind(const cJSON *gs, const char **name)
{
	if ((*name = plumb_json_str(gs, "spec.git.ref.tag")))
		return SOURCE_REF_TAG;
	if ((*name = plumb_json_str(gs, "spec.git.ref.commit")))
		return SOURCE_REF_COMMIT;
	*name = plumb_json_str(gs, "spec.git.ref.branch");
	return SOURCE_REF_BRANCH;
}

/* Joins the first errors into one message. */
static char *join_errors(const manifest_errors *errs)
{
	plumb_buf b = PLUMB_BUF_INIT(8192);
	for (size_t i = 0; i < errs->count && i < 5; i++)
		plumb_buf_printf(&b, "%s%s", i ? "; " : "", errs->msgs[i]);
	if (errs->count + errs->dropped > 5)
		plumb_buf_printf(&b, "; and %zu more", errs->count + errs->dropped - 5);
	return plumb_buf_detach(&b);
}

static int reconcile_source(controller *c, const char *gs_key, double *next)
{
	gitsync_state *g = gitsync_get(c, gs_key);
	char *url = NULL, *ref = NULL, *path = NULL, *secret_name = NULL, *req = NULL;
	source_credentials *creds = NULL;
	source_files *files = NULL;
	source_commit commit = { 0 };
	manifest_file *mf = NULL;
	manifest_errors errs = { 0 };
	char redacted[1024], cred_id[65] = "";
	int rc = 0, commit_ok = 0;
	long gen = 0;
	double timeout;
	source_ref_kind kind;
	if (!g)
		return 0;

	int erc = secret_ensure_ref(c, 'g', gs_key, "spec.git.secretRef.name");
	char emsg[512] = "";
	if (erc < 0 && erc != PLUMB_ENOTFOUND)
		snprintf(emsg, sizeof(emsg), "%s", plumb_error_last());
	pthread_mutex_lock(&c->lock);
	const char *refname = NULL;
	kind = ref_kind(g->obj, &refname);
	url = plumb_strdup(plumb_json_str(g->obj, "spec.git.url"));
	ref = plumb_strdup(refname);
	path = plumb_strdup(plumb_json_str(g->obj, "spec.git.path") ? plumb_json_str(g->obj, "spec.git.path") : "");
	secret_name = plumb_strdup(plumb_json_str(g->obj, "spec.git.secretRef.name"));
	req = plumb_strdup(annotation(g->obj, REQUESTED_AT));
	*next = git_interval(g->obj);
	timeout = git_timeout(g->obj);
	const cJSON *genj = plumb_json_get(g->obj, "metadata.generation");
	gen = cJSON_IsNumber(genj) ? (long)genj->valuedouble : 0;
	if (g->clamp_logged != gen && (*next != jduration(g->obj, "spec.git.interval", 60) ||
			timeout != jduration(g->obj, "spec.git.timeout", 60))) {
		g->clamp_logged = gen;
		plumb_warn("spec.git.interval below 10s or spec.git.timeout above 10m; using the bound",
			"gitsync", gs_key, "interval", plumb_json_str(g->obj, "spec.git.interval"),
			"timeout", plumb_json_str(g->obj, "spec.git.timeout"));
	}
	int suspended = jbool(g->obj, "spec.suspend", 0);
	if (secret_name && !suspended) {
		char sk[600];
		snprintf(sk, sizeof(sk), "%s/%s", g->ns, secret_name);
		const cJSON *sec = plumb_map_get(&c->secrets, sk);
		if (!sec && emsg[0])
			rc = plumb_error_set(erc, "git secret %s: %s", sk, emsg);
		else if (!sec)
			rc = plumb_error_set(PLUMB_ENOTFOUND, "git secret %s not found", sk);
		else
			rc = source_credentials_from_secret_data(&creds, plumb_json_get(sec, "data"));
	}
	pthread_mutex_unlock(&c->lock);
	if (suspended || !url || !ref)
		goto cleanup;
	source_url_redact(redacted, sizeof(redacted), url);
	if (rc) {
		set_stall(c, g, "CredentialsInvalid", plumb_error_last());
		goto done;
	}
	if (!c->o.allow_file_urls && source_url_is_local(url)) {
		/* a tenant's repository would be a path on plumbd's machine */
		char *msg = plumb_asprintf("spec.git.url %s: file:// URLs and local paths read plumbd's own "
			"file system; plumbd refuses them unless started with --allow-file-urls", redacted);
		set_stall(c, g, "FileURLNotAllowed", msg);
		free(msg);
		rc = 0; /* waits for a spec change */
		goto done;
	}
	/* The mirror this GitSync reads is the one its own credentials fetched. */
	source_credentials_id(cred_id, c->sources, creds);

	double t0 = plumb_time_mono();
	source_fetch_opts fo = { .kind = kind, .ref = ref, .max_bytes = c->o.git_max_fetch_bytes };
	rc = source_fetch_ref(NULL, c->sources, url, creds, timeout, &fo);
	server_histogram_observe(c->m.fetch_duration, plumb_time_mono() - t0, gs_key);
	if (rc) {
		server_counter_add(c->m.fetch_errors, 1, gs_key);
		char *msg = plumb_asprintf("fetch %s: %s", redacted, plumb_error_last());
		set_stall(c, g, rc == PLUMB_EAUTH ? "AuthenticationFailed" : "FetchFailed", msg);
		free(msg);
		goto done;
	}
	if ((rc = source_resolve(&commit, c->sources, url, cred_id, kind, ref))) {
		set_stall(c, g, "RefNotFound", plumb_error_last());
		goto done;
	}
	commit_ok = 1;

	pthread_mutex_lock(&c->lock);
	revision *cur = g->rev;
	int same = cur && !strcmp(cur->commit, commit.id) && streq(cur->path, path) &&
		streq(cur->cred_id, cred_id) && g->fetched_generation == gen;
	int invalid_again = !cur && !strcmp(g->fetched, commit.id) && g->stall_reason &&
		!strcmp(g->stall_reason, "InvalidRevision") && g->fetched_generation == gen;
	char old_commit[41] = "";
	if (cur)
		snprintf(old_commit, sizeof(old_commit), "%s", cur->commit);
	if (!same && cur && g->stall_reason && !strcmp(g->stall_reason, "InvalidRevision") &&
	    !strcmp(g->fetched, commit.id) && g->fetched_generation == gen)
		invalid_again = 1;
	pthread_mutex_unlock(&c->lock);
	if (same) {
		set_stall(c, g, NULL, NULL);
		goto done;
	}
	if (invalid_again)
		goto done;

	/* A commit that touches nothing under path costs no reconcile. */
	if (old_commit[0] && g->fetched_generation == gen) {
		int changed = 1;
		if (source_changed(&changed, c->sources, url, cred_id, old_commit, commit.id, path) == 0 && !changed) {
			pthread_mutex_lock(&c->lock);
			revision *r = g->rev;
			if (r && r->refs == 1 && streq(r->cred_id, cred_id)) {
				/* Nobody else holds it: renaming the revision is safe. */
				snprintf(r->commit, sizeof(r->commit), "%s", commit.id);
				snprintf(g->fetched, sizeof(g->fetched), "%s", commit.id);
				size_t i = 0;
				const char *k;
				void *v;
				while (plumb_map_next(&g->clusters, &i, &k, &v)) {
					controller_cluster_status *s = v;
					if (!strcmp(s->commit, old_commit))
						snprintf(s->commit, sizeof(s->commit), "%s", commit.id);
				}
				pthread_mutex_unlock(&c->lock);
				plumb_info("new commit changes nothing under path", "gitsync", gs_key,
					"commit", commit.id);
				set_stall(c, g, NULL, NULL);
				goto done;
			}
			pthread_mutex_unlock(&c->lock);
		}
	}

	if ((rc = source_read(&files, c->sources, url, cred_id, commit.id, path, NULL))) {
		set_stall(c, g, rc == PLUMB_ENOTFOUND ? "PathNotFound" : "InvalidRevision", plumb_error_last());
		pthread_mutex_lock(&c->lock);
		snprintf(g->fetched, sizeof(g->fetched), "%s", commit.id);
		g->fetched_generation = gen;
		pthread_mutex_unlock(&c->lock);
		goto done;
	}
	mf = calloc(files->count ? files->count : 1, sizeof(*mf));
	if (!mf) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < files->count; i++) {
		mf[i].file = files->items[i].path;
		mf[i].data = files->items[i].data;
		mf[i].len = files->items[i].len;
	}
	if (manifest_vet(mf, files->count, &errs) != 0) {
		/* The whole revision is refused; the last good one stays applied. */
		char *msg = join_errors(&errs);
		char *full = plumb_asprintf("commit %.12s: %s", commit.id, msg);
		set_stall(c, g, "InvalidRevision", full);
		free(msg);
		free(full);
		pthread_mutex_lock(&c->lock);
		snprintf(g->fetched, sizeof(g->fetched), "%s", commit.id);
		g->fetched_generation = gen;
		pthread_mutex_unlock(&c->lock);
		rc = 0;
		goto done;
	}

	revision *r = calloc(1, sizeof(*r));
	if (!r) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto done;
	}
	r->refs = 1;
	snprintf(r->commit, sizeof(r->commit), "%s", commit.id);
	r->path = plumb_strdup(path);
	r->url = plumb_strdup(url);
	r->cred_id = plumb_strdup(cred_id);
	r->first_seen = plumb_time_real();
	pthread_mutex_lock(&c->lock);
	revision_unref(g->rev);
	g->rev = r;
	snprintf(g->fetched, sizeof(g->fetched), "%s", commit.id);
	g->fetched_generation = gen;
	trigger_gitsync_syncs_locked(c, g, 0);
	pthread_mutex_unlock(&c->lock);
	plumb_info("new revision", "gitsync", gs_key, "commit", commit.id, "subject", commit.subject);
	set_stall(c, g, NULL, NULL);

done:
	if (commit_ok || rc == 0) {
		pthread_mutex_lock(&c->lock);
		if (req && !streq(req, g->handled_req))
			set_str(&g->handled_req, req);
		pthread_mutex_unlock(&c->lock);
	}
	write_gitsync_status(c, g);
cleanup:
	free(mf);
	manifest_errors_free(&errs);
	source_files_free(files);
	source_commit_clear(&commit);
	source_credentials_free(creds);
	free(url);
	free(ref);
	free(path);
	free(secret_name);
	free(req);
	gitsync_put(c, g);
	return rc;
}

/* ---- sync reconcile ---------------------------------------------------------------------- */

static controller_cluster_status *entry_locked(gitsync_state *g, const char *name)
{
	controller_cluster_status *s = plumb_map_get(&g->clusters, name);
	if (!s && (s = calloc(1, sizeof(*s)))) {
		s->name = plumb_strdup(name);
		s->lag_seconds = -1;
		plumb_map_put(&g->clusters, name, s, NULL);
	}
	return s;
}

static void set_entry(controller *c, gitsync_state *g, const char *cluster,
	controller_cluster_state state, const char *message)
{
	pthread_mutex_lock(&c->lock);
	controller_cluster_status *s = entry_locked(g, cluster);
	if (s) {
		if (s->state != state)
			s->last_sync_time = plumb_time_real();
		s->state = state;
		s->invalid = 0;
		set_str(&s->message, message);
	}
	pthread_mutex_unlock(&c->lock);
}

static int is_unreachable(int rc)
{
	return rc == PLUMB_EUNAVAILABLE || rc == PLUMB_ETIMEOUT || rc == PLUMB_EUNREACHABLE ||
		rc == PLUMB_ETLS;
}

/* Renders the revision for one cluster into a cJSON array (caller frees).
 * On a render error, *errmsg gets the joined file:line messages. */
static int render_for(cJSON **out, char ***origins, char **errmsg, const revision *rev,
	const cJSON *gs, const cJSON *cl, controller *c)
{
	source_files *files = NULL;
	manifest_file *mf = NULL;
	manifest_var *vars = NULL, *labels = NULL;
	size_t nvars = 0, nlabels = 0;
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	const cJSON *v;
	int rc;
	if ((rc = source_read(&files, c->sources, rev->url, rev->cred_id, rev->commit, rev->path, NULL)))
		return plumb_error_prefix(rc, "reading commit %.12s from the mirror", rev->commit);
	if (!(mf = calloc(files->count ? files->count : 1, sizeof(*mf)))) {
		source_files_free(files);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < files->count; i++) {
		mf[i].file = files->items[i].path;
		mf[i].data = files->items[i].data;
		mf[i].len = files->items[i].len;
	}
	const cJSON *sub = plumb_json_get(gs, "spec.substitute"), *lab = plumb_json_get(cl, "metadata.labels");
	vars = calloc((size_t)cJSON_GetArraySize(sub) + 1, sizeof(*vars));
	labels = calloc((size_t)cJSON_GetArraySize(lab) + 1, sizeof(*labels));
	if (!vars || !labels) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	cJSON_ArrayForEach(v, sub)
		if (cJSON_IsString(v))
			vars[nvars++] = (manifest_var){ v->string, v->valuestring };
	cJSON_ArrayForEach(v, lab)
		if (cJSON_IsString(v))
			labels[nlabels++] = (manifest_var){ v->string, v->valuestring };
	const char *tns = plumb_json_str(gs, "spec.targetNamespace");
	manifest_render_opts ro = {
		.vars = { .enabled = 1, .vars = vars, .nvars = nvars,
			.cluster_name = plumb_json_str(cl, "metadata.name"), .labels = labels, .nlabels = nlabels },
		.default_namespace = tns ? tns : plumb_json_str(gs, "metadata.namespace"),
	};
	rc = manifest_render(&set, mf, files->count, &ro, &errs);
	if (rc) {
		*errmsg = join_errors(&errs);
		goto cleanup;
	}
	cJSON *arr = cJSON_CreateArray();
	char **orig = calloc(set.count + 1, sizeof(*orig));
	for (size_t i = 0; i < set.count; i++) {
		cJSON_AddItemToArray(arr, set.items[i].obj);
		set.items[i].obj = NULL;
		/* where each object comes from, for the messages of a failed run */
		if (orig)
			orig[i] = plumb_asprintf("%s:%d", set.items[i].file, set.items[i].line);
	}
	*out = arr;
	*origins = orig;
cleanup:
	manifest_set_free(&set);
	manifest_errors_free(&errs);
	free(vars);
	free(labels);
	free(mf);
	source_files_free(files);
	return rc;
}

static cJSON *drift_entry(const apply_object_result *o)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "apiVersion", o->api_version);
	cJSON_AddStringToObject(e, "kind", o->kind);
	if (o->ns && o->ns[0])
		cJSON_AddStringToObject(e, "namespace", o->ns);
	cJSON_AddStringToObject(e, "name", o->name);
	cJSON *f = cJSON_AddArrayToObject(e, "fields");
	const char *manager = NULL;
	for (size_t i = 0; i < o->nfields && i < MAX_DRIFT_FIELDS; i++) {
		cJSON_AddItemToArray(f, cJSON_CreateString(o->fields[i].path));
		if (!manager && o->fields[i].manager && o->fields[i].manager[0])
			manager = o->fields[i].manager;
	}
	if (manager)
		cJSON_AddStringToObject(e, "manager", manager);
	return e;
}

/* One line per object for events: "ConfigMap team-a/cfg (data.X by kubectl-edit)". */
static void describe(plumb_buf *b, const apply_result *r, apply_action action, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < r->count; i++) {
		const apply_object_result *o = &r->objects[i];
		if (o->action != action)
			continue;
		if (n++ >= max) {
			plumb_buf_printf(b, ", …");
			break;
		}
		plumb_buf_printf(b, "%s%s %s%s%s", n > 1 ? ", " : "", o->kind,
			o->ns && o->ns[0] ? o->ns : "", o->ns && o->ns[0] ? "/" : "", o->name);
		if (o->nfields && (action == APPLY_CORRECTED || action == APPLY_DRIFTED)) {
			plumb_buf_printf(b, " (%s", o->fields[0].path);
			if (o->fields[0].manager && o->fields[0].manager[0])
				plumb_buf_printf(b, " by %s", o->fields[0].manager);
			plumb_buf_puts(b, ")");
		}
	}
}

/* Logs (and posts as an Event when post) the objects of r with action. */
static void report(controller *c, gitsync_state *g, const char *uid, const char *cluster,
	const apply_result *r, apply_action action, const char *what, const char *type,
	const char *reason, const char *event_action, int post)
{
	if (!r->totals[action])
		return;
	plumb_buf b = PLUMB_BUF_INIT(1024);
	plumb_buf_printf(&b, "cluster %s: %s ", cluster, what);
	describe(&b, r, action, 10);
	plumb_info(what, "gitsync", g->key, "cluster", cluster, "detail", b.ptr);
	if (post)
		controller_events_post(c->events, g->ns, g->name, uid, type, reason, event_action, b.ptr);
	plumb_buf_free(&b);
}

/* The message of a cluster whose run had failures: the first three, each
 * "file:line: Kind ns/name (apiVersion): reason", and how many more, so the
 * status never grows with the size of the revision. */
static char *failure_message(const apply_result *res, size_t failed)
{
	plumb_buf b = PLUMB_BUF_INIT(8192);
	size_t n = 0;
	if (res->invalid)
		plumb_buf_printf(&b, "%zu object%s failed validation, nothing applied or pruned: ",
			res->invalid, res->invalid == 1 ? "" : "s");
	else if (res->stopped && res->message)
		plumb_buf_printf(&b, "%s: ", res->message);
	for (size_t i = 0; i < res->count && n < 3; i++) {
		const apply_object_result *o = &res->objects[i];
		char *why;
		if (o->action != APPLY_FAILED && o->action != APPLY_CONFLICT)
			continue;
		why = plumb_strndup(o->message ? o->message : "", 600);
		plumb_buf_printf(&b, "%s%s%s%s %s%s%s (%s): %s", n++ ? "; " : "", o->origin ? o->origin : "",
			o->origin ? ": " : "", o->kind, o->ns[0] ? o->ns : "", o->ns[0] ? "/" : "", o->name,
			o->api_version, why ? why : "");
		free(why);
	}
	if (failed > 3)
		plumb_buf_printf(&b, "; and %zu more", failed - 3);
	return plumb_buf_detach(&b);
}

static int reconcile_sync(controller *c, const char *gs_key, const char *cl_key, double *next)
{
	gitsync_state *g = gitsync_get(c, gs_key);
	target *t = NULL;
	revision *rev = NULL;
	cJSON *gs = NULL, *cl = NULL, *desired = NULL;
	char *errmsg = NULL, *cl_name = NULL, **origins = NULL;
	apply_result res = { 0 };
	plumb_region *rg = NULL;   /* the render's and the run's JSON */
	int rc = 0;
	double t0 = plumb_time_mono();
	const char *slash = strchr(cl_key, '/');
	cl_name = plumb_strdup(slash ? slash + 1 : cl_key);

	if (!g) {
		/* The GitSync is gone: drop its engine (objects stay), whichever
		 * identity's target holds it. */
		drop_engines(c, cl_key, gs_key, NULL);
		free(cl_name);
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	gs = cJSON_Duplicate(g->obj, 1);
	const cJSON *clo = plumb_map_get(&c->clusters, cl_key);
	cl = clo ? cJSON_Duplicate(clo, 1) : NULL;
	int selected = cl && selects(gs, cl);
	if (!selected) {
		controller_cluster_status *s = plumb_map_del(&g->clusters, cl_name);
		cluster_status_free(s);
	}
	rev = g->rev;
	if (rev)
		rev->refs++;
	*next = git_interval(gs);
	pthread_mutex_unlock(&c->lock);
	if (!selected) {
		write_gitsync_status(c, g);
		goto cleanup;
	}
	if (jbool(gs, "spec.suspend", 0) || jbool(cl, "spec.suspend", 0))
		goto cleanup;
	if (!rev) {
		set_entry(c, g, cl_name, CONTROLLER_PENDING, "waiting for the first revision");
		write_gitsync_status(c, g);
		goto cleanup;
	}

	/* Every request for this GitSync goes through its identity's client. */
	char user[600];
	if ((rc = gitsync_identity(user, sizeof(user), c, gs))) {
		set_entry(c, g, cl_name, CONTROLLER_FAILED, plumb_error_last());
		server_counter_add(c->m.reconciles, 1, cl_name, "failure");
		write_gitsync_status(c, g);
		rc = 0; /* waits for a spec change */
		goto cleanup;
	}
	if ((rc = target_for(&t, c, cl_key, user))) {
		set_entry(c, g, cl_name, CONTROLLER_FAILED, plumb_error_last());
		server_counter_add(c->m.reconciles, 1, cl_name, "failure");
		write_gitsync_status(c, g);
		goto cleanup;
	}
	drop_engines(c, cl_key, gs_key, t);
	pthread_mutex_lock(&t->lock);
	size_t mine = (size_t)(uintptr_t)plumb_map_get(&t->label_counts, g->label);
	if (t->over_cap)   /* its cache is not whole: nothing is decided from it */
		rc = plumb_error_set(PLUMB_ETOOBIG, "%s", t->cap_msg);
	else if (mine > c->o.gitsync_max_objects)
		rc = plumb_error_set(PLUMB_ETOOBIG, "the cluster has %zu objects labelled for this GitSync, "
			"more than plumbd caches for one GitSync (--gitsync-cache-max-objects %zu)",
			mine, c->o.gitsync_max_objects);
	pthread_mutex_unlock(&t->lock);
	if (rc) {
		set_entry(c, g, cl_name, CONTROLLER_FAILED, plumb_error_last());
		server_counter_add(c->m.reconciles, 1, cl_name, "failure");
		write_gitsync_status(c, g);
		goto cleanup;
	}
	/* The revision's objects live in a region of their own, given back whole
	 * at the end: they stay for the whole run, and in the heap they would
	 * pin its pages under whatever else the run leaves behind. Only plain
	 * strings leave the region (errmsg). The run itself allocates from the
	 * heap: what it parses and builds per object is freed as it goes, which
	 * a region would keep until the end. */
	rg = plumb_region_new();
	plumb_region_enter(rg);
	rc = render_for(&desired, &origins, &errmsg, rev, gs, cl, c);
	plumb_region_leave();
	if (rc && !errmsg) {
		/* not the revision's fault (the mirror could not be read): retried */
		set_entry(c, g, cl_name, CONTROLLER_FAILED, plumb_error_last());
		server_counter_add(c->m.reconciles, 1, cl_name, "failure");
		write_gitsync_status(c, g);
		goto cleanup;
	}
	if (rc) {
		char *msg = plumb_asprintf("render for %s at %.12s: %s", cl_name, rev->commit,
			errmsg ? errmsg : plumb_error_last());
		set_entry(c, g, cl_name, CONTROLLER_FAILED, msg);
		controller_events_post(c->events, g->ns, g->name, plumb_json_str(gs, "metadata.uid"),
			"Warning", "RenderFailed", "Render", msg);
		free(msg);
		server_counter_add(c->m.reconciles, 1, cl_name, "stalled");
		write_gitsync_status(c, g);
		rc = 0; /* a render error waits for a new commit, not a retry */
		goto cleanup;
	}

	apply_engine *e = target_engine(t, g);
	const char *policy = plumb_json_str(gs, "spec.driftPolicy");
	apply_opts ao = {
		.prune = jbool(gs, "spec.prune", 1),
		.allow_empty = jbool(gs, "spec.allowEmpty", 0),
		.drift = policy && !strcmp(policy, "Report") ? APPLY_DRIFT_REPORT : APPLY_DRIFT_CORRECT,
		.adopt = jbool(gs, "spec.adopt", 0),
		.live = target_live,
		.live_data = t,
		.no_diffs = 1,   /* status and events name fields; plumbctl diff shows diffs */
		.origins = (const char *const *)origins,
		.norigins = origins ? (size_t)cJSON_GetArraySize(desired) : 0,
	};
	/* the kinds to watch, before the engine takes the objects over */
	cJSON *kinds = cJSON_CreateObject();
	const cJSON *obj;
	long nobjects = cJSON_GetArraySize(desired);
	cJSON_ArrayForEach(obj, desired) {
		char gvk[900];
		/* an identity's target watches per namespace: the kinds per namespace */
		const char *ons = t->identity ? plumb_json_str(obj, "metadata.namespace") : NULL;
		snprintf(gvk, sizeof(gvk), "%s|%s|%s", plumb_json_str(obj, "apiVersion") ? plumb_json_str(obj, "apiVersion") : "",
			plumb_json_str(obj, "kind") ? plumb_json_str(obj, "kind") : "", ons ? ons : "");
		if (kinds && !cJSON_GetObjectItemCaseSensitive(kinds, gvk)) {
			cJSON *k = cJSON_AddObjectToObject(kinds, gvk);
			cJSON_AddStringToObject(k, "apiVersion", plumb_json_str(obj, "apiVersion") ? plumb_json_str(obj, "apiVersion") : "");
			cJSON_AddStringToObject(k, "kind", plumb_json_str(obj, "kind") ? plumb_json_str(obj, "kind") : "");
			cJSON_AddStringToObject(k, "namespace", ons ? ons : g->ns);
		}
	}
	rc = e ? apply_engine_run_take(&res, e, desired, &ao) : PLUMB_ENOMEM;
	if (!e)
		cJSON_Delete(desired);
	desired = NULL;
	/* the run's parallel connections are not needed until the next one */
	kube_client_shrink(t->client, 2);

	/* Watch what we manage so drift is seen at once (and no LIST is needed).
	 * An identity watches only the kinds (per namespace) it could apply:
	 * what it may not touch it may usually not watch either, and a watch
	 * refused with 403 would retry for ever. */
	cJSON *applied = t->identity ? cJSON_CreateObject() : NULL;
	for (size_t i = 0; applied && i < res.count; i++) {
		const apply_object_result *o = &res.objects[i];
		char gvk[900];
		if (o->action == APPLY_FAILED)
			continue;
		snprintf(gvk, sizeof(gvk), "%s|%s|%s", o->api_version ? o->api_version : "",
			o->kind ? o->kind : "", o->ns && o->ns[0] ? o->ns : g->ns);
		if (!cJSON_GetObjectItemCaseSensitive(applied, gvk))
			cJSON_AddBoolToObject(applied, gvk, 1);
	}
	cJSON_ArrayForEach(obj, kinds) {
		kube_resource kr;
		char gvk[900];
		snprintf(gvk, sizeof(gvk), "%s|%s|%s", plumb_json_str(obj, "apiVersion"), plumb_json_str(obj, "kind"),
			plumb_json_str(obj, "namespace"));
		if (applied && !cJSON_GetObjectItemCaseSensitive(applied, gvk))
			continue;
		if (kube_resolve_object(&kr, t->client, obj) == 0)
			target_watch_kind(c, t, &kr, plumb_json_str(obj, "namespace"));
	}
	cJSON_Delete(applied);
	cJSON_Delete(kinds);

	size_t failed = res.totals[APPLY_FAILED] + res.totals[APPLY_CONFLICT];
	size_t changed = res.totals[APPLY_CREATED] + res.totals[APPLY_UPDATED] +
		res.totals[APPLY_PRUNED] + res.totals[APPLY_CORRECTED];
	controller_cluster_state state;
	char *message = NULL;
	int refused = 0;   /* the revision itself was refused by this cluster */
	if (rc) {
		state = is_unreachable(rc) ? CONTROLLER_UNREACHABLE : CONTROLLER_FAILED;
		message = plumb_strdup(plumb_error_last());
	} else if (failed) {
		state = CONTROLLER_FAILED;
		message = failure_message(&res, failed);
		/* Failures without an answer from the API server are an outage, not
		 * a bad object (and say nothing about the revision). */
		size_t outage = 0;
		for (size_t i = 0; i < res.count; i++)
			if (res.objects[i].action == APPLY_FAILED && is_unreachable(res.objects[i].code) &&
			    res.objects[i].http_status == 0)
				outage++;
		if (outage && outage == res.totals[APPLY_FAILED])
			state = CONTROLLER_UNREACHABLE;
		refused = res.invalid && !outage;
	} else if (res.totals[APPLY_DRIFTED]) {
		state = CONTROLLER_DRIFTED;
	} else {
		state = CONTROLLER_SYNCED;
	}
	if (!message && res.message)
		message = plumb_strdup(res.message);

	double now = plumb_time_real();
	pthread_mutex_lock(&c->lock);
	controller_cluster_status *s = entry_locked(g, cl_name);
	int new_commit = 0, news = 0;
	if (s) {
		news = message && (!s->message || strcmp(s->message, message));
		if (s->state != state || changed)
			s->last_sync_time = now;
		if ((state == CONTROLLER_SYNCED || state == CONTROLLER_DRIFTED) && strcmp(s->commit, rev->commit)) {
			new_commit = 1;
			snprintf(s->commit, sizeof(s->commit), "%s", rev->commit);
			s->lag_seconds = now - rev->first_seen;
			s->last_sync_time = now;
		}
		s->state = state;
		s->invalid = refused;
		s->objects = nobjects;
		s->drifted_count = (long)res.totals[APPLY_DRIFTED];
		cJSON_Delete(s->drifted_objects);
		s->drifted_objects = NULL;
		if (res.totals[APPLY_DRIFTED]) {
			s->drifted_objects = cJSON_CreateArray();
			for (size_t i = 0, n = 0; i < res.count && n < MAX_DRIFT_LIST; i++)
				if (res.objects[i].action == APPLY_DRIFTED) {
					cJSON_AddItemToArray(s->drifted_objects, drift_entry(&res.objects[i]));
					n++;
				}
		}
		set_str(&s->message, message);
	}
	double lag = s ? s->lag_seconds : -1;
	pthread_mutex_unlock(&c->lock);

	/* Metrics, events, logs. */
	server_counter_add(c->m.applied, (double)(res.totals[APPLY_CREATED] + res.totals[APPLY_UPDATED]), cl_name);
	server_counter_add(c->m.pruned, (double)res.totals[APPLY_PRUNED], cl_name);
	server_counter_add(c->m.corrections, (double)res.totals[APPLY_CORRECTED], cl_name);
	server_gauge_set(c->m.drifted, (double)res.totals[APPLY_DRIFTED], gs_key, cl_name);
	if (new_commit && lag >= 0)
		server_histogram_observe(c->m.lag, lag, cl_name);
	const char *uid = plumb_json_str(gs, "metadata.uid");
	char shortc[13];
	snprintf(shortc, sizeof(shortc), "%.12s", rev->commit);
	if (res.totals[APPLY_CREATED] + res.totals[APPLY_UPDATED]) {
		char note[512];
		snprintf(note, sizeof(note), "cluster %s, commit %s: %zu created, %zu updated", cl_name,
			shortc, res.totals[APPLY_CREATED], res.totals[APPLY_UPDATED]);
		controller_events_post(c->events, g->ns, g->name, uid, "Normal", "Applied", "Apply", note);
		plumb_info("applied", "gitsync", gs_key, "cluster", cl_name, "commit", rev->commit, "detail", note);
	}
	report(c, g, uid, cl_name, &res, APPLY_PRUNED, "pruned", "Normal", "Pruned", "Prune", 1);
	report(c, g, uid, cl_name, &res, APPLY_CORRECTED, "corrected drift in", "Normal",
		"DriftCorrected", "Correct", 1);
	/* Reported drift is an event when it is news, not on every look. */
	report(c, g, uid, cl_name, &res, APPLY_DRIFTED, "drift in", "Warning", "DriftDetected",
		"Detect", res.writes || changed || new_commit);
	if (state == CONTROLLER_FAILED || state == CONTROLLER_UNREACHABLE)
		plumb_warn("sync failed", "gitsync", gs_key, "cluster", cl_name, "error", message);
	if (news && (refused || res.stopped)) {
		/* once per new failure, not on every retry */
		char *note = plumb_asprintf("cluster %s, commit %s: %s", cl_name, shortc, message);
		controller_events_post(c->events, g->ns, g->name, uid, "Warning",
			refused ? "ValidationFailed" : "ApplyFailed", refused ? "Validate" : "Apply",
			note ? note : message);
		free(note);
	}
	if (state == CONTROLLER_UNREACHABLE)
		trigger_probe(c, cl_key); /* so the Cluster's Ready condition says so too */
	free(message);
	server_counter_add(c->m.reconciles, 1, cl_name,
		state == CONTROLLER_SYNCED || state == CONTROLLER_DRIFTED ? "success" : "failure");
	server_histogram_observe(c->m.duration, plumb_time_mono() - t0, cl_name);
	write_gitsync_status(c, g);
	if (rc == 0 && failed)
		rc = state == CONTROLLER_UNREACHABLE ? PLUMB_EUNAVAILABLE : PLUMB_ERROR;
cleanup:
	apply_result_free(&res);
	cJSON_Delete(desired);
	for (size_t i = 0; origins && origins[i]; i++)
		free(origins[i]);
	free(origins);
	plumb_region_free(rg);
	cJSON_Delete(gs);
	cJSON_Delete(cl);
	free(errmsg);
	free(cl_name);
	if (t)
		target_unref(c, t);
	if (rev) {
		pthread_mutex_lock(&c->lock);
		revision_unref(rev);
		pthread_mutex_unlock(&c->lock);
	}
	gitsync_put(c, g);
	return rc;
}

/* ---- cluster probe ---------------------------------------------------------------------- */

static int reconcile_probe(controller *c, const char *cl_key, double *next)
{
	target *t = NULL;
	char version[64] = "", *msg = NULL;
	const char *slash = strchr(cl_key, '/');
	char ns[300] = "", name[300] = "";
	snprintf(ns, sizeof(ns), "%.*s", slash ? (int)(slash - cl_key) : 0, cl_key);
	snprintf(name, sizeof(name), "%s", slash ? slash + 1 : cl_key);
	*next = PROBE_PERIOD;

	pthread_mutex_lock(&c->lock);
	const cJSON *cl = plumb_map_get(&c->clusters, cl_key);
	cJSON *prev = cl ? cJSON_Duplicate(plumb_json_get(cl, "status"), 1) : NULL;
	const cJSON *genj = plumb_json_get(cl, "metadata.generation");
	long gen = cJSON_IsNumber(genj) ? (long)genj->valuedouble : 0;
	int exists = cl != NULL;
	int mgmt_refused = cl && !plumb_json_str(cl, "spec.kubeConfigSecretRef.name") && !management_target_allowed(c, cl);
	pthread_mutex_unlock(&c->lock);
	if (!exists)
		return 0;

	int rc = target_get(&t, c, cl_key);
	if (rc == 0)
		rc = kube_server_version(version, sizeof(version), t->client);
	int up = rc == 0;
	if (!up)
		msg = plumb_strdup(plumb_error_last());
	server_gauge_set(c->m.cluster_up, up ? 1 : 0, name);
	int was_up = 0;
	if (t) {
		pthread_mutex_lock(&t->lock);
		was_up = t->up;
		t->up = up;
		if (up)
			snprintf(t->version, sizeof(t->version), "%s", version);
		pthread_mutex_unlock(&t->lock);
	}

	cJSON *st = cJSON_CreateObject();
	cJSON_AddNumberToObject(st, "observedGeneration", (double)gen);
	const char *old_version = plumb_json_str(prev, "serverVersion");
	if (up)
		cJSON_AddStringToObject(st, "serverVersion", version);
	else if (old_version)
		cJSON_AddStringToObject(st, "serverVersion", old_version);
	cJSON *conds = cJSON_AddArrayToObject(st, "conditions");
	controller_condition_add(conds, prev, "Ready", up, up ? "Connected" :
		rc == PLUMB_EINSECURE ? "InsecureKubeconfig" :
		mgmt_refused ? MANAGEMENT_TARGET_NOT_ALLOWED :
		rc == PLUMB_EAUTH || rc == PLUMB_EFORBIDDEN ? "Unauthorized" :
		rc == PLUMB_ENOTFOUND || rc == PLUMB_EINVALID ? "KubeconfigInvalid" : "Unreachable",
		up ? "the API server answers" : msg, gen, plumb_time_real());
	/* lastProbeTime moves with what the probe found, so a steady cluster
	 * costs no status write. */
	cJSON *cmp = cJSON_Duplicate(prev, 1);
	if (cmp)
		cJSON_DeleteItemFromObjectCaseSensitive(cmp, "lastProbeTime");
	if (!cmp || !diff_json_equal(st, cmp) || !diff_json_equal(cmp, st)) {
		char ts[48];
		plumb_time_rfc3339(ts, sizeof(ts), plumb_time_real());
		cJSON_AddStringToObject(st, "lastProbeTime", ts);
		cJSON *body = status_body(PLUMB_API_GROUP_VERSION, "Cluster", ns, name, st);
		st = NULL;
		kube_apply_opts ao = { .field_manager = APPLY_FIELD_MANAGER, .force = 1 };
		if (kube_apply_status(NULL, c->o.mgmt, &c->cluster_res, ns, body, &ao) != 0)
			plumb_warn("cannot write cluster status", "cluster", cl_key, "error", plumb_error_last());
		cJSON_Delete(body);
		plumb_info(up ? "cluster ready" : "cluster not ready", "cluster", cl_key,
			"version", up ? version : NULL, "error", msg);
	}
	cJSON_Delete(cmp);
	cJSON_Delete(st);
	cJSON_Delete(prev);
	if (up && !was_up) {
		/* Back (or new): everything targeting it gets a look at once. */
		pthread_mutex_lock(&c->lock);
		trigger_cluster_syncs_locked(c, cl_key, 0);
		pthread_mutex_unlock(&c->lock);
	}
	free(msg);
	if (t)
		target_unref(c, t);
	return up ? 0 : (rc ? rc : PLUMB_EUNAVAILABLE);
}

/* ---- workers ---------------------------------------------------------------------------- */

static void update_queue_metrics(controller *c)
{
	server_gauge_set(c->m.depth, (double)controller_queue_depth(c->queue));
	unsigned long r = controller_queue_retries(c->queue);
	pthread_mutex_lock(&c->lock);
	unsigned long delta = r - c->last_retries;
	c->last_retries = r;
	pthread_mutex_unlock(&c->lock);
	if (delta)
		server_counter_add(c->m.retries, (double)delta);
}

/* Splits "a|b|c|d" in place into parts; returns how many. */
static int split(char *s, char **parts, int max)
{
	int n = 0;
	while (s && n < max) {
		parts[n++] = s;
		s = strchr(s, '|');
		if (s)
			*s++ = '\0';
	}
	return n;
}

static void process(controller *c, const char *key)
{
	char *copy = plumb_strdup(key), *p[6];
	int n = split(copy, p, 6), rc = 0;
	double next = 0;
	char a[600], b[600];
	if (n == 3 && !strcmp(p[0], "src")) {
		snprintf(a, sizeof(a), "%s/%s", p[1], p[2]);
		rc = reconcile_source(c, a, &next);
	} else if (n == 5 && !strcmp(p[0], "sync")) {
		snprintf(a, sizeof(a), "%s/%s", p[1], p[2]);
		snprintf(b, sizeof(b), "%s/%s", p[3], p[4]);
		rc = reconcile_sync(c, a, b, &next);
	} else if (n == 3 && !strcmp(p[0], "probe")) {
		snprintf(a, sizeof(a), "%s/%s", p[1], p[2]);
		rc = reconcile_probe(c, a, &next);
	}
	if (rc) {
		double d = controller_queue_backoff(c->queue, key, 0);
		char ds[32];
		snprintf(ds, sizeof(ds), "%.1fs", d);
		plumb_debug("retrying", "item", key, "after", ds, "error", plumb_error_last());
	} else {
		controller_queue_forget(c->queue, key);
		if (next > 0)
			controller_queue_add_after(c->queue, key, next);
	}
	free(copy);
}

static void *worker(void *arg)
{
	controller *c = arg;
	char why[128];
	while (!c->stopping) {
		/* Only the leader works, and only once GitSyncs, Clusters and
		 * Secrets are all listed: a Cluster looked at before its Secret is
		 * known would be reported broken for nothing. */
		if (!c->leading || !controller_ready(c, why, sizeof(why))) {
			plumb_sleep(0.2);
			continue;
		}
		char *key = NULL;
		int rc = controller_queue_get(c->queue, &key, 0.5);
		if (rc == PLUMB_ECANCELED)
			break;
		if (rc)
			continue;
		if (!c->leading) {
			/* Lost the lease while waiting: leave it for the next leader. */
			controller_queue_done(c->queue, key);
			controller_queue_add_after(c->queue, key, 0);
			free(key);
			continue;
		}
		c->in_flight++;
		process(c, key);
		c->in_flight--;
		/* A reconcile parses and drops whole revisions: hand the freed
		 * memory back instead of keeping the peak for good. */
		malloc_trim(0);
		if (plumb_log_enabled(PLUMB_LOG_DEBUG)) {
			struct mallinfo2 mi = mallinfo2();
			char inuse[32], heap[32], keep[32];
			snprintf(inuse, sizeof(inuse), "%zu", mi.uordblks + mi.hblkhd);
			snprintf(heap, sizeof(heap), "%zu", mi.arena + mi.hblkhd);
			snprintf(keep, sizeof(keep), "%zu", plumb_keep_mapped());
			plumb_debug("memory after reconcile", "item", key, "heap_in_use", inuse,
				"heap", heap, "keep_mapped", keep);
		}
		controller_queue_done(c->queue, key);
		update_queue_metrics(c);
		free(key);
	}
	return NULL;
}

static void *hub_main(void *arg)
{
	controller *c = arg;
	kube_watch_hub_run(c->hub);
	return NULL;
}

/* ---- public API ---------------------------------------------------------------------------- */

int controller_new(controller **out, const controller_opts *opts)
{
	controller *c = calloc(1, sizeof(*c));
	int rc;
	if (!c)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	c->o = *opts;
	if (!c->o.workers)
		c->o.workers = 4;
	if (!c->o.target_max_objects)
		c->o.target_max_objects = CONTROLLER_TARGET_MAX_OBJECTS;
	if (!c->o.target_max_bytes)
		c->o.target_max_bytes = CONTROLLER_TARGET_MAX_BYTES;
	if (!c->o.gitsync_max_objects)
		c->o.gitsync_max_objects = CONTROLLER_GITSYNC_MAX_OBJECTS;
	if (c->o.target_cache_retry <= 0)
		c->o.target_cache_retry = CONTROLLER_TARGET_CACHE_RETRY;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->lead_cond, NULL);
	metrics_init(c);
	if ((rc = kube_resolve(&c->gitsync_res, opts->mgmt, PLUMB_API_GROUP_VERSION, "GitSync")) ||
	    (rc = kube_resolve(&c->cluster_res, opts->mgmt, PLUMB_API_GROUP_VERSION, "Cluster"))) {
		plumb_error_prefix(rc, "the " PLUMB_API_GROUP " CRDs are not installed (kubectl apply -f manifests/crds/)");
		goto fail;
	}
	if ((rc = kube_resolve(&c->secret_res, opts->mgmt, "v1", "Secret")))
		goto fail;
	if ((rc = controller_queue_new(&c->queue, 1, 300)) ||
	    (rc = kube_watch_hub_new(&c->hub)) ||
	    (rc = source_cache_new(&c->sources, opts->cache_dir)) ||
	    (rc = controller_events_new(&c->events, opts->mgmt, opts->identity)))
		goto fail;
	*out = c;
	return 0;
fail:
	controller_free(c);
	return rc;
}

int controller_start(controller *c)
{
	kube_watch_opts wo = { .ns = c->o.ns };
	kube_watch_opts swo = { .ns = c->o.ns, .list_limit = SECRET_LIST_LIMIT, .reduce = reduce_secret };
	int rc;
	if ((rc = kube_watch_start(&c->mgmt_watches[0], c->hub, c->o.mgmt, &c->gitsync_res, &wo, on_gitsync, c)) ||
	    (rc = kube_watch_start(&c->mgmt_watches[1], c->hub, c->o.mgmt, &c->cluster_res, &wo, on_cluster, c)) ||
	    (rc = kube_watch_start(&c->mgmt_watches[2], c->hub, c->o.mgmt, &c->secret_res, &swo, on_secret, c)))
		return rc;
	if (pthread_create(&c->hub_thread, NULL, hub_main, c) != 0)
		return plumb_error_set(PLUMB_EIO, "cannot start the watch thread");
	c->hub_started = 1;
	c->workers = calloc(c->o.workers, sizeof(pthread_t));
	if (!c->workers)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (unsigned i = 0; i < c->o.workers; i++) {
		if (pthread_create(&c->workers[i], NULL, worker, c) != 0)
			return plumb_error_set(PLUMB_EIO, "cannot start worker threads");
		c->nworkers++;
	}
	return 0;
}

void controller_set_leading(controller *c, int leading)
{
	c->leading = leading;
	server_gauge_set(c->m.leader, leading ? 1 : 0);
	if (!leading)
		return;
	/* A new leader looks at everything once. */
	pthread_mutex_lock(&c->lock);
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		trigger_src(c, k, 0);
		trigger_gitsync_syncs_locked(c, v, 0);
	}
	i = 0;
	while (plumb_map_next(&c->clusters, &i, &k, &v))
		trigger_probe(c, k);
	pthread_mutex_unlock(&c->lock);
}

int controller_ready(controller *c, char *why, size_t whylen)
{
	static const char *const names[] = { "GitSyncs", "Clusters", "Secrets" };
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < 3; i++) {
		if (!c->synced[i]) {
			pthread_mutex_unlock(&c->lock);
			snprintf(why, whylen, "%s not listed yet", names[i]);
			return 0;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return 1;
}

void controller_webhook(controller *c, const char *ns, const char *name)
{
	char key[600];
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&c->lock);
	gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
	double debounce = g ? jduration(g->obj, "spec.debounce", 1) : 0;
	pthread_mutex_unlock(&c->lock);
	if (!g)
		return;
	if (c->leading) {
		trigger_src(c, key, debounce);
		return;
	}
	/* The Service may route a delivery to a standby: pass it on to the
	 * leader through status.webhookReceivedAt, which the leader's GitSync
	 * informer sees change. A write to the status subresource is what the
	 * install's RBAC grants; the GitSync's spec and metadata stay the
	 * tenant's. */
	char now[48];
	plumb_time_micro(now, sizeof(now), plumb_time_real());
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "webhookReceivedAt", now);
	cJSON *body = status_body(PLUMB_API_GROUP_VERSION, "GitSync", ns, name, st);
	kube_apply_opts ao = { .field_manager = WEBHOOK_FIELD_MANAGER, .force = 1 };
	if (kube_apply_status(NULL, c->o.mgmt, &c->gitsync_res, ns, body, &ao) != 0)
		plumb_warn("standby could not pass a webhook on", "gitsync", key, "error", plumb_error_last());
	else
		plumb_info("webhook passed on to the leader", "gitsync", key);
	cJSON_Delete(body);
}

int controller_webhook_secret(controller *c, char **out, size_t *outlen, const char *ns, const char *name)
{
	char key[600];
	int rc = PLUMB_ENOTFOUND;
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	secret_ensure_ref(c, 'g', key, "spec.webhook.secretRef.name");
	pthread_mutex_lock(&c->lock);
	gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
	const char *sname = g ? plumb_json_str(g->obj, "spec.webhook.secretRef.name") : NULL;
	if (sname) {
		char sk[600];
		snprintf(sk, sizeof(sk), "%s/%s", ns, sname);
		const cJSON *tok = cJSON_GetObjectItemCaseSensitive(plumb_json_get(plumb_map_get(&c->secrets, sk), "data"), "token");
		if (cJSON_IsString(tok))
			rc = plumb_base64_decode(out, outlen, tok->valuestring, strlen(tok->valuestring));
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int controller_stop(controller *c, double deadline)
{
	c->leading = 0;
	double until = plumb_time_mono() + deadline;
	while (c->in_flight > 0 && plumb_time_mono() < until)
		plumb_sleep(0.05);
	int drained = c->in_flight == 0;
	c->stopping = 1;
	controller_queue_shutdown(c->queue);
	return drained ? 0 : plumb_error_set(PLUMB_ETIMEOUT,
		"%d reconcile(s) still running after %.0fs", (int)c->in_flight, deadline);
}

void controller_free(controller *c)
{
	if (!c)
		return;
	c->stopping = 1;
	if (c->queue)
		controller_queue_shutdown(c->queue);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	free(c->workers);
	if (c->hub_started) {
		kube_watch_hub_stop(c->hub);
		pthread_join(c->hub_thread, NULL);
	}
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->targets, &i, &k, &v)) {
		target *t = v;
		t->refs = 1;
		target_unref(c, t);
	}
	plumb_map_free(&c->targets, NULL);
	kube_watch_hub_free(c->hub);
	plumb_map_free(&c->gitsyncs, free_gitsync);
	plumb_map_free(&c->clusters, free_json);
	plumb_map_free(&c->secrets, free_json);
	plumb_map_free(&c->secret_misses, free);
	controller_events_free(c->events);
	source_cache_free(c->sources);
	controller_queue_free(c->queue);
	pthread_cond_destroy(&c->lead_cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
