/*
 * pkg/controller — plumbd's brain: the work queue of (GitSync, Cluster)
 * items with debounce and backoff, leader election on a Lease, and the
 * reconcile loop that ties source, manifest, diff and apply together and
 * writes status.
 */
#ifndef PLUMB_CONTROLLER_H
#define PLUMB_CONTROLLER_H

#include <stddef.h>

#include "base/base.h"
#include "kube/kube.h"
#include "metrics/metrics.h"
#include "render/render.h"

/* ---- work queue --------------------------------------------------------------
 * Items are string keys. Guarantees: a key is never handed to two workers at
 * once; a key triggered while a worker holds it runs again after
 * controller_queue_done(). Thread-safe.
 *
 * Debounce: a key runs at most once per `debounce` seconds. The first
 * trigger of a quiet key runs at once (a commit or a drift is acted on
 * without waiting); triggers that arrive while it runs or within `debounce`
 * of its last start coalesce into one more run when that window closes.
 * A steady trickle of triggers therefore cannot starve a key: it runs every
 * `debounce`, and the last trigger of a burst is always followed by a run.
 * Failures back off per key: base x 2^failures with jitter, capped at max;
 * a failure replaces what was scheduled, so a down cluster gets no retry storm.
 */
typedef struct controller_queue controller_queue;

/* backoff_base/backoff_max in seconds (<= 0: 1 s and 300 s). */
int controller_queue_new(controller_queue **out, double backoff_base, double backoff_max);
void controller_queue_free(controller_queue *q);

/* A debounced trigger (webhook, watch event, spec change...). */
void controller_queue_trigger(controller_queue *q, const char *key, double debounce);
/* The same with an explicit monotonic "now" (tests). */
void controller_queue_trigger_at(controller_queue *q, const char *key, double debounce, double now);
/* Run no later than delay seconds from now (poll interval, Retry-After). */
void controller_queue_add_after(controller_queue *q, const char *key, double delay);
/* Records a failure and schedules the retry after the key's backoff, or
 * at_least seconds (Retry-After) when longer. Returns the delay chosen. */
double controller_queue_backoff(controller_queue *q, const char *key, double at_least);
/* Success: reset the key's failure count. */
void controller_queue_forget(controller_queue *q, const char *key);
unsigned controller_queue_failures(controller_queue *q, const char *key);
/* Drops whatever is scheduled for key (the item went away). */
void controller_queue_remove(controller_queue *q, const char *key);

/* Blocks up to timeout seconds for a due key no worker holds. 0 and a
 * malloc'd key in *out (caller frees, then calls controller_queue_done());
 * PLUMB_ETIMEOUT; PLUMB_ECANCELED after shutdown. */
int controller_queue_get(controller_queue *q, char **out, double timeout);
/* Non-blocking: hands out the earliest key due at `now` (monotonic), or
 * PLUMB_ENOTFOUND; *next_due (may be NULL) gets the earliest due time of any
 * waiting key, -1 when none. */
int controller_queue_pop_ready(controller_queue *q, char **out, double now, double *next_due);
void controller_queue_done(controller_queue *q, const char *key);
/* Wakes every controller_queue_get() with PLUMB_ECANCELED. */
void controller_queue_shutdown(controller_queue *q);
size_t controller_queue_depth(controller_queue *q);
unsigned long controller_queue_retries(controller_queue *q);

/* ---- leader election ------------------------------------------------------------
 * client-go's algorithm on a coordination.k8s.io/v1 Lease: GET (404 -> create);
 * another holder's lease counts as valid until leaseDuration after *we* saw
 * its record change (no clock comparison); otherwise PUT with the GET's
 * resourceVersion (a 409 means another candidate won). A leader that cannot
 * renew within renew_deadline stops leading (on_stop) at once. Freeing a
 * leader that holds the lease releases it (empty holder, 1 s duration), so a
 * standby takes over within its retry period.
 */
typedef struct controller_leader controller_leader;

typedef struct {
	const char *ns;           /* lease namespace */
	const char *name;         /* lease name */
	const char *identity;     /* NULL = "<hostname>_<random>" */
	double lease_duration;    /* default 15 s */
	double renew_deadline;    /* default 10 s */
	double retry_period;      /* default 2 s */
	void (*on_start)(void *data);  /* called from the election thread */
	void (*on_stop)(void *data);
	void *data;
} controller_leader_opts;

/* Validates the timings (lease > renew > 1.2 x retry) and resolves the Lease
 * resource. Does not start campaigning: see controller_leader_run(). The
 * client is borrowed and must outlive the leader. */
int controller_leader_new(controller_leader **out, kube_client *c, const controller_leader_opts *opts);
/* Campaigns and renews on a thread of its own. */
int controller_leader_run(controller_leader *l);
/* One try-acquire-or-renew step without the thread (tests). */
int controller_leader_try(controller_leader *l, int *leader);
/* Releases the lease if we hold it. */
int controller_leader_release(controller_leader *l);
int controller_leader_is_leader(controller_leader *l);
const char *controller_leader_identity(const controller_leader *l);
/* Stops campaigning, releases a held lease, frees. NULL-safe. */
void controller_leader_free(controller_leader *l);

/* ---- the controller ------------------------------------------------------------ */
typedef struct controller controller;

/* ---- sharding (--shards) ------------------------------------------------------------
 * GitSyncs spread over the live replicas: one Lease per replica in plumb's
 * namespace, consistent hashing with bounded loads, and a GitSync worked on
 * only by the replica whose claim (status.owner) the API server accepted.
 * See shards.c. */
typedef struct controller_shards controller_shards;

typedef struct {
	const char *ns;           /* the Leases' namespace */
	const char *name;         /* prefix of the replicas' Lease names */
	const char *identity;     /* this replica (controller_opts.identity) */
	double lease_duration, renew_deadline, retry_period; /* as for leader election */
	unsigned max_owners;      /* at most this many replicas own GitSyncs (the oldest
	                             Leases), the others wait; 0 = every live replica */
} controller_shards_opts;

/* Marks c sharded: its workers then run only for GitSyncs it owns. */
int controller_shards_new(controller_shards **out, controller *c, kube_client *mgmt,
	const controller_shards_opts *opts);
int controller_shards_run(controller_shards *s);
/* Gives up every GitSync this replica owns, deletes its Lease, frees. Call
 * after controller_stop. NULL-safe. */
void controller_shards_free(controller_shards *s);

typedef struct {
	kube_client *mgmt;          /* the management cluster (borrowed) */
	kube_config *mgmt_config;   /* its config, for Clusters without a kubeconfig Secret (borrowed) */
	const char *ns;             /* watch one namespace; NULL = all */
	const char *cache_dir;      /* Git mirrors */
	unsigned workers;           /* default 4 */
	server_metrics *metrics;    /* registry for plumb_* metrics; may be NULL */
	const char *identity;       /* this replica, for Events */
	const char *user_agent;     /* of the target clients; NULL = pkg/kube's default */
	kube_request_hook on_request; /* installed on every target client; may be NULL */
	double kube_qps;            /* client-side limit per target; <= 0 = none (server-side
	                               priority and fairness, 429 + Retry-After honoured) */
	int kube_burst;
	void *hook_data;
	/* What kubeconfigs from Cluster Secrets may hold (borrowed); NULL = the
	 * lockdown (inline material only, https, TLS verified, no exec). */
	const kube_config_policy *tenant_policy;
	size_t git_max_fetch_bytes; /* bytes one Git fetch may receive; 0 = SOURCE_DEFAULT_FETCH_MAX */
	/* Trust boundary (README "Multi-tenancy and security"). */
	const char *default_service_account; /* impersonated in targets by GitSyncs that name
	                               no spec.serviceAccountName; NULL = plumbd's own credentials */
	const char *management_target_namespaces; /* comma-separated namespaces whose Clusters may
	                               omit kubeConfigSecretRef (the management cluster); NULL = none */
	int allow_file_urls;        /* accept file:// and local paths in spec.git.url */
	const char *kustomize_bin;  /* kustomize for rendered GitSyncs; NULL = "kustomize" in PATH */
	const char *helm_bin;       /* helm; NULL = "helm" in PATH */
	render_limits render_limits; /* of one kustomize or helm run; zero fields: pkg/render's defaults */
	/* What plumbd caches of one target's watched objects (a target's API
	 * server is untrusted input too): past either cap that target is Failed,
	 * its cache dropped, and it is tried again after a minute. 0 = defaults:
	 * CONTROLLER_TARGET_MAX_OBJECTS objects, CONTROLLER_TARGET_MAX_BYTES. */
	size_t target_max_objects;
	size_t target_max_bytes;
	/* Objects one GitSync's label may have in one target's cache: past it
	 * only that (GitSync, cluster) is Failed. 0 = CONTROLLER_GITSYNC_MAX_OBJECTS. */
	size_t gitsync_max_objects;
	double target_cache_retry;  /* seconds before a target over a cap is rebuilt;
	                               0 = CONTROLLER_TARGET_CACHE_RETRY */
} controller_opts;

/* 200,000 objects: 20x the 10,000 a target of bench/ holds; at about 200
 * bytes an entry (key, resourceVersion, hash, flags) that is ~40 MiB, under
 * the 64 MiB byte cap, which also counts interned label values. */
#define CONTROLLER_TARGET_MAX_OBJECTS 200000
#define CONTROLLER_TARGET_MAX_BYTES (64u << 20)
/* Half a target: one GitSync fails alone before the target's cap fails all. */
#define CONTROLLER_GITSYNC_MAX_OBJECTS 100000
/* A minute: a target over its cap is listed whole again no more often. */
#define CONTROLLER_TARGET_CACHE_RETRY 60.0

/* Resolves the plumb.dev resources (fails with a hint when the CRDs are not
 * installed), opens the Git cache. *out: free with controller_free(). */
int controller_new(controller **out, const controller_opts *opts);
/* Starts the watches (caches fill even when not leading) and the workers. */
int controller_start(controller *c);
/* Workers take work only while leading; becoming leader looks at everything. */
void controller_set_leading(controller *c, int leading);
/* 1 when the GitSync, Cluster and Secret caches have been listed. */
int controller_ready(controller *c, char *why, size_t whylen);
/* A verified webhook for GitSync ns/name: fetch now. */
void controller_webhook(controller *c, const char *ns, const char *name);
/* The webhook secret of GitSync ns/name (Secret spec.webhook.secretRef, key
 * "token"). 0 and a malloc'd secret, or non-zero. */
int controller_webhook_secret(controller *c, char **out, size_t *outlen, const char *ns, const char *name);
/* Stops taking work and waits up to deadline seconds for running reconciles.
 * PLUMB_ETIMEOUT when some were still running. */
int controller_stop(controller *c, double deadline);
/* Stops every thread and frees. NULL-safe. */
void controller_free(controller *c);

/* ---- status ----------------------------------------------------------------- */
typedef enum {
	CONTROLLER_PENDING = 0,
	CONTROLLER_SYNCED,
	CONTROLLER_DRIFTED,
	CONTROLLER_FAILED,
	CONTROLLER_UNREACHABLE,
	/* spec.wait: applied, not yet healthy / not healthy past healthTimeout */
	CONTROLLER_PROGRESSING,
	CONTROLLER_DEGRADED,
} controller_cluster_state;

const char *controller_state_name(controller_cluster_state s);

/* The health of what a GitSync applied in one cluster (status.clusters[].health). */
typedef enum {
	CONTROLLER_HEALTH_UNKNOWN = 0,  /* not computed yet (nothing applied) */
	CONTROLLER_HEALTH_HEALTHY,      /* every object Current */
	CONTROLLER_HEALTH_PROGRESSING,  /* some not yet, within healthTimeout */
	CONTROLLER_HEALTH_DEGRADED,     /* one Failed, or not all Current past healthTimeout */
} controller_health;

const char *controller_health_name(controller_health h);

/* One entry of GitSync status.clusters. */
typedef struct {
	char *name;
	controller_cluster_state state;
	char commit[41];
	long objects;
	long drifted_count;
	cJSON *drifted_objects;   /* capped array of {apiVersion, kind, namespace, name, fields, manager} */
	double last_sync_time;    /* wall clock; 0 = never */
	double lag_seconds;       /* commit first seen -> applied; < 0 = unknown */
	char *message;
	int invalid;              /* the revision failed validation in this cluster:
	                             nothing of it written, nothing pruned */
	int wait;                 /* spec.wait: Synced only once healthy (see
	                             controller_effective_state) */
	controller_health health;
	long unhealthy_count;
	cJSON *unhealthy;         /* capped array of {kind, namespace, name, state, message} */
	char *health_message;     /* "2 of 14 objects not healthy: Deployment shop/web: ..." */
	double progress_start;    /* wall clock the last change was applied: the
	                             healthTimeout runs from here; 0 = never */
	double healthy_since;     /* wall clock it became healthy; 0 = it is not */
	unsigned long health_epoch; /* of the computation health came from */
	char attempted[41];       /* the commit its last sync tried to apply */
	char wave[64];            /* spec.rollout: the wave it belongs to ("" none) */
	int seeded;               /* read from the status a previous leader wrote, not
	                             synced by this one yet */
	int health_unsure;        /* health is no verdict: not computed since the last
	                             change applied (or since this leader started), or
	                             it counts objects the watches do not show (yet) at
	                             the applied version */
} controller_cluster_status;

/* The state status.clusters[].state shows: with wait, a Synced cluster is
 * Progressing until its health is Healthy, Degraded once it is Degraded. */
controller_cluster_state controller_effective_state(const controller_cluster_status *s);

/* What the status needs from a GitSync besides its clusters. */
typedef struct {
	long generation;
	const char *fetched_commit;
	const char *handled_requested_at;
	const char *stalled_reason;   /* NULL when not stalled */
	const char *stalled_message;
	const cJSON *rollout;         /* status.rollout, NULL without spec.rollout */
} controller_gitsync_summary;

/* Appends a metav1.Condition to the conditions array; lastTransitionTime is
 * kept from prev_status when the condition's status did not change.
 * status: 1 True, 0 False, -1 Unknown. */
void controller_condition_add(cJSON *conditions, const cJSON *prev_status, const char *type,
	int status, const char *reason, const char *message, long generation, double now);

/* status.clusters[] stays bounded however many clusters a GitSync targets
 * (etcd keeps objects of at most 1.5 MiB). An entry is at most
 * STATUS_CLUSTER_MAX bytes of JSON (its drift and unhealthy lists shortened
 * from the end, then its message cut; the counts stay). Entries keep their
 * lists while all entries so far (clusters not Synced first, then by name)
 * take at most STATUS_DETAIL_BUDGET bytes, their message (cut to
 * STATUS_MESSAGE_CUT) within STATUS_MESSAGE_BUDGET; past that an entry is
 * name, state, health, wave, commit and the counts (~100-400 bytes). */
#define STATUS_CLUSTER_MAX (8u * 1024)
#define STATUS_DETAIL_BUDGET (256u * 1024)
#define STATUS_MESSAGE_BUDGET (512u * 1024)
#define STATUS_MESSAGE_CUT 256u

/* The whole GitSync status: observedGeneration, lastFetchedCommit,
 * lastHandledRequestedAt, clusters (sorted by name), summary (short commit,
 * "synced/total", drifted objects) and the conditions Ready, Reconciling,
 * Stalled and Drifted; status.clusters[] bounded as above. Nothing in it
 * changes unless something happened, so
 * comparing it with the live status tells whether a write is needed.
 * Caller frees *out. */
int controller_status_build(cJSON **out, const controller_gitsync_summary *g,
	const controller_cluster_status *clusters, size_t n, const cJSON *prev_status, double now);

#endif
