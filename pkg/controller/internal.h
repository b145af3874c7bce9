/* pkg/controller internals shared by its .c files. Not a public API.
 *
 * The controller's files, by concern:
 *   controller.c    life cycle, workers, the public API
 *   work.c          work items and their queue keys
 *   queue.c         the work queue (debounce, backoff)
 *   informers.c     GitSyncs and Clusters: states, selection, what a change schedules
 *   secrets.c       the referenced Secrets
 *   targets.c       targets (clients, credentials, identities), the probe stage
 *   livecache.c     a target's watch cache of managed objects
 *   source_stage.c  the source stage (fetch, parse, keep the revision)
 *   sync_stage.c    the sync stage (render, apply, prune in one cluster)
 *   status.c        GitSync and Cluster status: building and writing
 *   events.c        Kubernetes Events, sent from a thread of their own
 *   leader.c        leader election on a Lease
 *
 * Threads: the watch hub's thread runs every watch callback (on_gitsync,
 * on_cluster, on_secret, on_target_event); the workers (opts.workers, only
 * while leading) run the stages; the apply engine's pool threads call
 * target_live; the HTTP server's threads call controller_webhook and
 * controller_webhook_secret; the events sender and the leader elector have
 * threads of their own.
 *
 * Locks, never taken the other way round:
 *   gitsync_state.status_lock   one GitSync's status build and write
 *     -> c->lock                c->gitsyncs, c->clusters, c->secrets,
 *                               c->secret_misses, c->targets, the refs of
 *                               states, revisions and targets, every field of a
 *                               gitsync_state but last_written
 *     -> target.lock            a target's cache, label counts, engines, up/version
 * The queue and the event sender lock inside themselves only. */
#ifndef PLUMB_CONTROLLER_INTERNAL_H
#define PLUMB_CONTROLLER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply/apply.h"
#include "controller/controller.h"
#include "gitsync/gitsync.h"
#include "kube/kube.h"
#include "manifest/manifest.h"
#include "metrics/metrics.h"
#include "source/source.h"

/* ---- events ------------------------------------------------------------------- */
typedef struct controller_events controller_events;
int controller_events_new(controller_events **out, kube_client *mgmt, const char *instance);
/* Queues an Event about GitSync ns/name (uid may be NULL). Never blocks:
 * drops the event when the queue is full. type: "Normal" or "Warning". */
void controller_events_post(controller_events *ev, const char *ns, const char *name,
	const char *uid, const char *type, const char *reason, const char *action, const char *note);
void controller_events_free(controller_events *ev);

#define REQUESTED_AT "plumb.dev/requested-at"
/* plumbctl rollout pause|resume|abort (rollout.c) */
#define ROLLOUT_PAUSED_ANNOTATION "plumb.dev/rollout-paused"
#define ROLLOUT_ABORT_ANNOTATION "plumb.dev/rollout-abort"
/* A standby hands a webhook to the leader through the GitSync's status (the
 * install grants patch on gitsyncs/status, not on gitsyncs): its own field
 * manager, so the leader's status applies never remove the field. */
#define WEBHOOK_RECEIVED_AT "status.webhookReceivedAt"
#define WEBHOOK_FIELD_MANAGER "plumb-webhook"
#define MANAGED_SELECTOR APPLY_LABEL_MANAGED_BY "=" APPLY_FIELD_MANAGER
#define MAX_DRIFT_LIST 50
#define MAX_DRIFT_FIELDS 20
#define MAX_DRIFT_FIELD_LEN 128   /* bytes of one field path in status */
#define PROBE_PERIOD 60.0
#define DRIFT_WINDOW 0.1      /* seconds: coalescing of watch events in targets */
#define HEALTH_WINDOW 1.0     /* seconds: coalescing of the echoes of plumb's writes into
                                 health items (10,000 of them after a big apply) */
#define SECRET_LIST_LIMIT 16   /* Secrets are at most 1 MiB: a page is at most 16 MiB */
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
	gitsync_spec *spec;       /* obj parsed, replaced with it (hub thread, under c->lock);
	                             a stage parses its own snapshot */
	revision *rev;            /* last good revision */
	char fetched[41];
	char *stall_reason, *stall_msg;
	char *handled_req;
	long fetched_generation;
	plumb_map clusters;       /* cluster name -> controller_cluster_status* */
	pthread_mutex_t status_lock;
	cJSON *last_written;      /* status we last wrote (under status_lock) */
	cJSON *rollout;           /* status.rollout as rollout_eval_locked last made it;
	                             NULL: read from obj's status (a new leader) */
	plumb_map intended;       /* spec.rollout: cluster name -> commit (malloc'd) it is meant to have */
	int deleted;
	/* --shards (shards.c), under c->lock: held, this replica owns it and its
	   work items run; releasing, it gave it up and removes status.owner once
	   inflight (its items running now) is 0 */
	int held, releasing, inflight;
	unsigned long long claim_rv; /* the resourceVersion this replica's claim made */
	long clamp_logged;        /* generation whose clamped interval/timeout was logged */
} gitsync_state;

/* A Cluster as the informer keeps it (c->clusters values, under c->lock). */
typedef struct {
	cJSON *obj;               /* latest from the watch (its status for the probe) */
	gitsync_cluster *spec;    /* obj parsed, replaced with it */
} cluster_state;

/* Which reference of a GitSync or Cluster names a Secret. */
typedef enum {
	SECRET_REF_GIT,           /* GitSync spec.git.secretRef */
	SECRET_REF_WEBHOOK,       /* GitSync spec.webhook.secretRef */
	SECRET_REF_KUBECONFIG,    /* Cluster spec.kubeConfigSecretRef */
} secret_ref;

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
	unsigned health : 3;      /* health_state of the object at rv (pkg/health) */
	char rv[24];
	char *health_msg;         /* why it is not Current ("Deployment shop/web: 1/3
	                             replicas available"); NULL when Current */
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
		*gs_ready, *gs_stalled, *health, *time_to_healthy, *rollout_wave, *rollout_halted;
} metrics_set;

struct controller {
	controller_opts o;
	kube_resource gitsync_res, cluster_res, secret_res;
	kube_watch_hub *hub;
	pthread_t hub_thread;
	int hub_started;
	source_cache *sources;
	gitsync_render_cache *render_cache; /* kustomize/helm outputs shared by clusters (own lock) */
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
	atomic_ulong health_epoch; /* orders health computations (health_stage.c) */
	/* --shards (shards.c): the live replicas that own GitSyncs, as the last
	   round listed them (under c->lock) */
	int sharded;
	controller_shards *shards;
	atomic_llong shard_active_until_us; /* monotonic µs: the replica's Lease was renewed in time
	                             up to here; past it nothing of it runs (shard_active) */
	char **shard_members;
	size_t shard_nmembers;
	char **shard_prev_members; /* the view before the last change, since shard_view_since */
	size_t shard_nprev;
	double shard_view_since, shard_lease_duration;
};

/* ---- small helpers -------------------------------------------------------------- */

static inline const char *annotation(const cJSON *obj, const char *name)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(plumb_json_get(obj, "metadata.annotations"), name);
	return cJSON_IsString(a) ? a->valuestring : NULL;
}

static inline char *obj_key(const cJSON *obj)
{
	const char *ns = plumb_json_str(obj, "metadata.namespace"), *name = plumb_json_str(obj, "metadata.name");
	return plumb_asprintf("%s/%s", ns ? ns : "", name ? name : "");
}

static inline int streq(const char *a, const char *b)
{
	return (a ? a : "")[0] == (b ? b : "")[0] && strcmp(a ? a : "", b ? b : "") == 0;
}

/* Selection and debounce through the parsed specs (NULL: an object that
 * could not be read selects nothing). Under c->lock. */
static inline int state_selects(const gitsync_state *g, const cluster_state *cl)
{
	return g->spec && cl && cl->spec && gitsync_selects(g->spec, cl->spec);
}

static inline double state_debounce(const gitsync_state *g)
{
	return g->spec ? g->spec->debounce : GITSYNC_DEBOUNCE_DEFAULT;
}

static inline void set_str(char **dst, const char *src)
{
	char *n = plumb_strdup(src);
	free(*dst);
	*dst = n;
}


/* ---- work items (work.c) ---------------------------------------------------------- */
typedef enum {
	WORK_SOURCE,              /* fetch and validate a GitSync's revision */
	WORK_SYNC,                /* render, apply and prune one GitSync in one Cluster */
	WORK_PROBE,               /* ask a Cluster's API server for /version, write its status */
	WORK_HEALTH,              /* look at the health of a GitSync's objects in one Cluster */
	WORK_ROLLOUT,             /* move a GitSync's rollout on (a bake ended, an annotation) */
} work_kind;

/* 63-character namespace, '/', 253-character name, NUL */
#define WORK_OBJECT_MAX 320
#define WORK_KEY_MAX (8 + 2 * WORK_OBJECT_MAX)

typedef struct {
	work_kind kind;
	char gitsync[WORK_OBJECT_MAX];   /* "ns/name" (WORK_SOURCE, WORK_SYNC), else "" */
	char cluster[WORK_OBJECT_MAX];   /* "ns/name" (WORK_SYNC, WORK_PROBE), else "" */
} work_item;

/* The queue key of w; PLUMB_EINVALID for an object key that is not ns/name. */
int work_key(char *out, size_t outlen, const work_item *w);
/* The item a queue key stands for; PLUMB_EINVALID for any other string. */
int work_parse(work_item *w, const char *key);
void work_trigger(controller *c, const work_item *w, double debounce);

/* ---- decisions (informers.c), pure ------------------------------------------------ */
typedef enum {
	GITSYNC_EVENT_NONE,       /* nothing to do (our own status write, a resync) */
	GITSYNC_EVENT_ALL,        /* fetch now and sync every cluster it targets now */
	GITSYNC_EVENT_FETCH,      /* fetch, debounced (a webhook a standby passed on) */
} gitsync_event_action;

/* What a GitSync's watch event schedules: old is the object before the
 * event (NULL: new to plumbd), handled_req the plumb.dev/requested-at value
 * last handled. New, a changed generation or a new request: everything;
 * a new status.webhookReceivedAt: a fetch; anything else: nothing. */
gitsync_event_action gitsync_event_decide(const cJSON *old, const cJSON *obj, const char *handled_req);
/* 1 when a Cluster's watch event asks for a probe and the syncs of the
 * GitSyncs that select it (new, spec or labels changed; not a status
 * write); *refs_changed: its kubeConfigSecretRef changed. */
int cluster_event_decide(const cJSON *old, const cJSON *obj, int *refs_changed);

/* ---- functions shared by the controller's files ---------------------------------- */

/* controller.c */

/* informers.c */
void revision_unref(revision *r);
void cluster_status_free(controller_cluster_status *s);
void free_gitsync(void *g);
void cluster_state_free(void *cs);
void trigger_cluster_syncs_locked(controller *c, const char *cl_key, double debounce_override);
void trigger_gitsync_syncs_locked(controller *c, gitsync_state *g, double debounce);
void on_gitsync(kube_watch_event type, const cJSON *obj, void *data);
void cache_replace_locked(plumb_map *m, const cJSON *obj);
void on_cluster(kube_watch_event type, const cJSON *obj, void *data);
gitsync_state *gitsync_get(controller *c, const char *key);
/* Forgets what this replica knew of g as its owner and starts over from
 * obj's status, as a new leader does (shards.c, when it gains g). */
void gitsync_reset_locked(controller *c, gitsync_state *g, const cJSON *obj);
void gitsync_put(controller *c, gitsync_state *g);

/* livecache.c */
int target_live(apply_live_info *info, void *data, const kube_resource *res,
	const char *ns, const char *name);
void target_watch_kind(controller *c, target *t, const kube_resource *res, const char *ns);

/* secrets.c */
void secrets_prune_locked(controller *c);
cJSON *reduce_secret(const cJSON *item, const kube_resource *res, void *data);
int secret_ensure_ref(controller *c, secret_ref which, const char *key);
void on_secret(kube_watch_event type, const cJSON *obj, void *data);

/* source_stage.c */
int reconcile_source(controller *c, const char *gs_key, double *next);

/* status_write.c */
cJSON *status_body(const char *api_version, const char *kind, const char *ns,
	const char *name, cJSON *status);
void write_gitsync_status(controller *c, gitsync_state *g);
/* What one sync found in one cluster, for its status entry. */
typedef struct {
	controller_cluster_state state;
	const char *message;
	int refused;              /* the cluster refused the revision itself */
	size_t changed;           /* objects created, updated, pruned or corrected */
	long objects;             /* objects of the revision */
	const apply_result *res;
	const revision *rev;
	int wait;                 /* spec.wait */
} sync_outcome;
void set_entry_result(controller *c, gitsync_state *g, const char *cl_name, const sync_outcome *o,
	int *new_commit, int *news, double *lag);
void write_cluster_status(controller *c, const char *ns, const char *name, cJSON *status);
void pass_webhook_on(controller *c, const char *ns, const char *name);
void set_stall(controller *c, gitsync_state *g, const char *reason, const char *msg);
controller_cluster_status *entry_locked(gitsync_state *g, const char *name);
void set_entry(controller *c, gitsync_state *g, const char *cluster,
	controller_cluster_state state, const char *message);
void report(controller *c, gitsync_state *g, const char *uid, const char *cluster,
	const apply_result *r, apply_action action, const char *what, const char *type,
	const char *reason, const char *event_action, int post);
char *failure_message(const apply_result *res, size_t failed);

/* health_stage.c */
/* 1 when cluster entry s of g is Synced at g's commit and healthy (what
 * dependsOn and the rollout wait for). Under c->lock. */
int entry_ready_locked(const gitsync_state *g, const controller_cluster_status *s);
/* Recomputes the health of g's objects in t into the status entry of
 * cl_name (see the file's comment). Takes t->lock, then c->lock. */
void health_update(controller *c, gitsync_state *g, target *t, const char *cl_name);
int reconcile_health(controller *c, const char *gs_key, const char *cl_key, double *next);

/* depends.c (all under c->lock) */
/* 1 with *why (malloc'd) when a dependency of g is not ready in cl_name. */
int depends_wait_locked(controller *c, const gitsync_state *g, const gitsync_spec *gs,
	const char *cl_name, char **why);
/* 1 with the cycle (or an over-long chain) in out when g's dependsOn
 * leads back to g. */
int depends_cycle_locked(controller *c, const gitsync_state *g, char *out, size_t n);
/* Triggers the syncs in cl_key of the GitSyncs that depend on g. */
void trigger_waiting_locked(controller *c, const gitsync_state *g, const char *cl_key);

/* rollout.c */
typedef enum {
	ROLLOUT_PROGRESSING = 0,
	ROLLOUT_PAUSED,
	ROLLOUT_SUCCEEDED,
	ROLLOUT_HALTED,
	ROLLOUT_ABORTED,
} rollout_phase;
const char *rollout_phase_name(rollout_phase p);

/* One cluster as the rollout sees it (in: name..why; out: intended, wave_name). */
typedef struct {
	char name[254];
	char key[WORK_OBJECT_MAX];   /* the Cluster's "ns/name" */
	size_t wave;              /* gitsync_wave_of */
	char commit[41];          /* what it has ("" nothing yet) */
	char attempted[41];       /* what its last sync tried to apply */
	int known;                /* synced by this leader since it took over */
	int settled;              /* and its health is a verdict (the watches show every object) */
	int ready;                /* synced (at commit) and healthy */
	int failed;               /* its last sync (of attempted) failed, or it is Degraded at commit */
	char why[300];            /* the failure, for the rollout's message */
	char intended[41];        /* out: the commit it is meant to have ("" none yet) */
	char wave_name[64];       /* out */
} rollout_cluster;

#define ROLLOUT_MAX_EVENTS 8
#define ROLLOUT_ABORT_MAX 128     /* bytes of plumb.dev/rollout-abort kept as lastHandledAbort */
typedef struct {
	char type[16], reason[32], message[700];
} rollout_event;

typedef struct {
	rollout_phase phase;
	size_t wave;              /* the current wave's index (nwaves + 1 when done) */
	double next_check;        /* seconds until a bake ends; < 0 = none */
	int started;              /* a new rollout started */
	rollout_event events[ROLLOUT_MAX_EVENTS];
	size_t nevents;
} rollout_result;

/* The rollout's next state (a new object in *out, status.rollout's shape)
 * from prev (the last one, NULL for none), the spec, the newest commit, the
 * clusters (their intended and wave_name are written), the annotations and
 * the clock. Pure. 0 or PLUMB_ENOMEM. */
int rollout_next(cJSON **out, rollout_result *res, const cJSON *prev, const gitsync_rollout *spec,
	const char *commit, rollout_cluster *clusters, size_t n, int paused, const char *abort_req, double now);
/* Runs rollout_next for g and keeps its result (see rollout.c). Under c->lock. */
void rollout_eval_locked(controller *c, gitsync_state *g);
int reconcile_rollout(controller *c, const char *gs_key, double *next);

/* shards.c */
#define SHARD_NONE ((size_t)-1)
typedef struct {
	const char *key;          /* the sharding key (a GitSync's, or its dependsOn group's) */
	unsigned weight;          /* GitSyncs in it (0 counts as 1) */
	size_t owner;             /* out: index of its replica, SHARD_NONE when there are none */
} shard_unit;
uint64_t shard_hash(const char *s);
/* Consistent hashing with bounded loads: each unit's owner among members
 * (identities, in any order; the result does not depend on it), loads at
 * most ceil(total weight / m) but for a unit heavier than any room left.
 * Pure. 0 or PLUMB_ENOMEM. */
int shard_assign(shard_unit *units, size_t n, const char *const *members, size_t m);
/* The member rendezvous hashing picks for key; SHARD_NONE when m is 0. */
size_t shard_rendezvous(const char *key, const char *const *members, size_t m);
void controller_shards_poke(controller_shards *s);
/* --shards: 1 while this replica's own Lease is renewed within the renew
 * deadline; its workers take no item otherwise. */
int shard_active(controller *c);
/* 1 when this replica writes Cluster cl_key's status (always without --shards). */
int shard_cluster_is_mine(controller *c, const char *cl_key);

/* sync_stage.c */
int reconcile_sync(controller *c, const char *gs_key, const char *cl_key, double *next);

/* targets.c */
void free_json(void *j);
void free_live_entry(void *p);
void target_unref(controller *c, target *t);
int target_for(target **out, controller *c, const char *cl_key, const char *user);
/* The target of Cluster cl_key as user ("" plumbd's own) if there is one
 * (a reference the caller gives back with target_unref), else NULL. */
target *target_lookup(controller *c, const char *cl_key, const char *user);
void drop_engines(controller *c, const char *cl_key, const char *gs_key, const target *keep);
/* Drops gs_key's engines in every target. */
void drop_engines_of(controller *c, const char *gs_key);
apply_engine *target_engine(target *t, const gitsync_state *g);
int reconcile_probe(controller *c, const char *cl_key, double *next);

/* work.c */
void trigger_src(controller *c, const char *gs_key, double debounce);
void trigger_sync(controller *c, const char *gs_key, const char *cl_key, double debounce);
void trigger_probe(controller *c, const char *cl_key);
void trigger_health(controller *c, const char *gs_key, const char *cl_key, double debounce);
void trigger_rollout_after(controller *c, const char *gs_key, double delay);

#endif
