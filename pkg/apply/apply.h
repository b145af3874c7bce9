/*
 * pkg/apply — makes one cluster match the rendered objects of one GitSync:
 * server-side apply (field manager "plumb", force), the inventory of what
 * this GitSync applied there, safe pruning and drift detection.
 *
 * One apply_engine per (GitSync, cluster). It keeps, per object, what the
 * server made of the desired object ("projection", DESIGN.md §3a) so that a
 * steady-state pass sends no write request at all. The engine is not meant
 * to run twice at once (the controller never hands one key to two workers);
 * a mutex serialises apply_engine_run() calls anyway.
 *
 * Ownership. Every applied object carries
 *   labels       app.kubernetes.io/managed-by: plumb
 *                plumb.dev/gitsync: <label value, see apply_gitsync_label()>
 *   annotation   plumb.dev/desired-hash: <sha256 of the rendered object>
 * The hash covers the rendered object (keys sorted) plus the two labels,
 * nothing per commit: a new commit that leaves an object unchanged does not
 * write it. A live object whose desired-hash differs from the rendered
 * object's is "desired changed" (applied whatever the drift policy); a live
 * object with the same hash is compared for drift.
 *
 * Drift (DESIGN.md §3a). The projection P of an object is the object the
 * server returned for the last apply, restricted to the paths the rendered
 * object sets (maps recursively, lists whole). Drift = the live object,
 * restricted to P's paths, differs from P. What the engine remembers of P
 * is keyed by the desired hash. With nothing remembered (new engine,
 * restart): if the live object was written by nobody but "plumb" (managers
 * that own only status ignored) and holds every path of the rendered
 * object, P is the live object's projection; otherwise one dryRun=All apply
 * computes it. Either way, once P is known a steady-state pass sends zero
 * write requests.
 *
 * Memory. Per object the engine keeps a 128-bit hash of the projection it
 * accepts as not drifted and the resourceVersion at which it last applied or
 * verified the object. An object still at that version is unchanged without
 * being read at all; one that moved is read and its projection hashed: the
 * same hash is no drift. A different hash is compared with P, which is not
 * stored when it equals the rendered object (the server changed nothing
 * plumb sets: ConfigMaps, Secrets, most objects) and otherwise kept as text
 * (up to APPLY_MAX_PROJ_BYTES an engine; past that a dry run computes it).
 *
 * The field manager named for a drifted path is the managedFields entry
 * that owns it; for a removed field (owned by nobody) the most recent
 * non-plumb manager still listed, or "" (unknown): a removal by an Update
 * leaves no entry behind.
 *
 * Inventory. Stored in the target cluster, in namespace
 * opts.inventory_namespace (default "plumb-system", created when missing):
 *   ConfigMap plumb-inventory-<id>           the head: data.gitsync
 *            ("<ns>/<name>"), data.format ("plumb.dev/inventory-v1"),
 *            data.count, data.entries (shard 0), data.shards (names of
 *            the other shards, one a line, in order; absent when one shard)
 *   ConfigMap plumb-inventory-<id>-<sha12>   further shards, named by the
 *            sha256 of their content (immutable once written)
 * <id> = first 16 hex chars of sha256("<gitsync ns>/<gitsync name>").
 * Entries are text (apply_inventory_encode()); a shard holds at most
 * APPLY_INVENTORY_SHARD bytes, so 10,000 entries take one or two ConfigMaps.
 * Writes happen only when the set changes: new shards first, then the head,
 * then shards the old head referenced and the new one does not are deleted
 * — a crash at any point leaves a readable head. Before applying, the
 * inventory is widened to old ∪ desired (so a crash mid-apply loses no
 * object); after pruning it is narrowed to what is owned.
 *
 * A revision applies whole or not at all (DESIGN.md §4, invariants 2 and 8).
 * A real run first validates, then writes:
 *   1. every kind is resolved (discovery refreshed once for an unknown one);
 *      a kind that is neither served nor defined by a CRD of the revision
 *      fails the revision;
 *   2. every object whose desired hash changed (or that is new, or drifted
 *      under Correct) is planned; those with a desired change are sent as a
 *      dryRun=All apply, in apply order: schema, admission, RBAC and missing
 *      namespaces are judged by the server;
 *   3. any failure: nothing of the revision is written, nothing is pruned,
 *      every planned object is SKIPPED and apply_result.invalid counts the
 *      failed ones;
 *   4. otherwise the writes go out: CRDs and Namespaces first (CRDs waited
 *      for until Established). Objects whose kind comes from a CRD the
 *      revision creates or changes, and objects in a Namespace it creates,
 *      are dry-run only then, because the server cannot judge them before
 *      — the one exception to "validated before the first write"; a failure
 *      there stops the run with only those CRDs and Namespaces written;
 *   5. the rest is written; the first failed write stops the run (writes in
 *      flight finish, nothing new starts, apply_result.stopped is set);
 *   6. prune runs only when every object of the revision was applied or
 *      found unchanged: no failure, no conflict, no skip.
 * Unchanged objects are never dry-run (they were validated when applied), so
 * steady state costs zero writes and zero dry runs, and a commit that
 * changes one object costs one dry run and one apply.
 *
 * Secrets: stringData is folded into data (base64; a key in both takes the
 * stringData value, as the server does) before hashing and applying, so
 * ownership, projection and drift are on data.<key>. Diffs of a Secret
 * show "***" in place of every value (apply_unified_diff()).
 *
 * Prune order: namespaced objects, then cluster-scoped ones, then
 * CustomResourceDefinitions, then Namespaces. Never pruned: objects
 * annotated plumb.dev/prune: disabled (dropped from the inventory, left in
 * the cluster), objects that no longer carry this GitSync's labels. An
 * empty desired set with a non-empty inventory prunes nothing unless
 * opts.allow_empty.
 */
#ifndef PLUMB_APPLY_H
#define PLUMB_APPLY_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "kube/kube.h"

#define APPLY_FIELD_MANAGER "plumb"
#define APPLY_LABEL_MANAGED_BY "app.kubernetes.io/managed-by"
#define APPLY_LABEL_GITSYNC "plumb.dev/gitsync"
#define APPLY_ANNOTATION_HASH "plumb.dev/desired-hash"
#define APPLY_ANNOTATION_PRUNE "plumb.dev/prune"
#define APPLY_INVENTORY_NAMESPACE "plumb-system"
#define APPLY_INVENTORY_FORMAT "plumb.dev/inventory-v1"
/* Bytes of entry text per inventory ConfigMap (the API caps one at 1 MiB). */
#define APPLY_INVENTORY_SHARD (512u * 1024)
#define APPLY_MAX_DIFF_TEXT (256u * 1024)   /* per object in a report */
#define APPLY_MAX_PROJ_BYTES (16u << 20)     /* P text kept per engine */

typedef enum {
	APPLY_DRIFT_CORRECT = 0, /* re-apply drifted objects */
	APPLY_DRIFT_REPORT,      /* only report drift */
} apply_drift_policy;

typedef enum {
	APPLY_UNCHANGED = 0,
	APPLY_CREATED,
	APPLY_UPDATED,
	APPLY_DRIFTED,     /* drift seen and left (Report, or dry run) */
	APPLY_CORRECTED,   /* drift seen and re-applied */
	APPLY_PRUNED,
	APPLY_CONFLICT,    /* exists, not this GitSync's; left alone */
	APPLY_SKIPPED,     /* dependency failed, or prune not allowed */
	APPLY_FAILED,
	APPLY_ACTION_COUNT
} apply_action;

/* "created", "updated", ... Never NULL. */
const char *apply_action_name(apply_action a);

/* ---- results -------------------------------------------------------------- */
typedef struct {
	char *path;     /* "data.LOG_LEVEL", "metadata.labels[\"a.b/c\"]" */
	char *manager;  /* field manager responsible; "" when unknown; NULL for
	                   a desired change */
} apply_field;

typedef struct {
	char *api_version;
	char *kind;
	char *ns;       /* "" for cluster-scoped */
	char *name;
	apply_action action;
	char *message;  /* API message for failed, owner for conflict, reason for
	                   skipped; "" otherwise */
	apply_field *fields;   /* changed or drifted paths */
	size_t nfields;
	char *diff;     /* unified diff live -> desired (YAML), NULL when none */
	char *origin;   /* failed desired objects: apply_opts.origins[i], else NULL */
	int code;       /* failed: the PLUMB_E* code */
	int http_status;/* failed: the API server's HTTP status, 0 when it did
	                   not answer (an outage, not the revision's fault) */
} apply_object_result;

typedef struct {
	apply_object_result *objects;  /* desired objects in the given order,
	                                  then prune candidates */
	size_t count;
	size_t totals[APPLY_ACTION_COUNT];
	int dry_run;
	size_t writes;            /* write requests this run sent (incl. dry runs) */
	size_t dry_runs;          /* of which dryRun=All requests */
	size_t invalid;           /* objects that failed validation: then
	                             nothing was written and nothing pruned */
	int stopped;              /* a write failed after a clean validation:
	                             the run stopped there, nothing pruned */
	int pruning_held;         /* prune candidates kept because not every
	                             object of the revision was applied */
	size_t inventory_entries; /* after the run */
	int inventory_written;
	char *message;            /* run-level note (e.g. empty set not pruned) */
} apply_result;

/* NULL-safe; leaves *r zeroed. */
void apply_result_free(apply_result *r);

/* The plan as text, as `plumbctl diff` prints it: one line per object that is
 * not unchanged ("+ created ConfigMap ns/name", "~ updated ...", "! drifted
 * ... data.X (by kubectl-patch)", "- pruned ...", "x failed ...: message"),
 * each changed object followed by its unified diff, then the totals.
 * Caller frees *out. */
int apply_result_report(char **out, const apply_result *r);

/* ---- engine --------------------------------------------------------------- */

/* What a watch cache can tell about a live object without keeping it whole. */
typedef struct {
	char rv[64];          /* metadata.resourceVersion ("" = unknown) */
	char label[64];       /* its plumb.dev/gitsync label ("" = none) */
	char hash[65];        /* its plumb.dev/desired-hash annotation ("" = none) */
	int prune_disabled;   /* annotated plumb.dev/prune: disabled */
	int deleting;         /* metadata.deletionTimestamp is set */
	cJSON *obj;           /* the whole object when the cache still holds it
	                         (the receiver frees it), else NULL */
} apply_live_info;

/* Fills info from a whole object (info->obj stays NULL). */
void apply_live_info_of(apply_live_info *info, const cJSON *obj);

/* Live-object lookup the controller can pass from its watch cache of objects
 * labelled managed-by=plumb. Returns 1 with *info filled when cached, 0 when
 * the cache covers res and holds no such object, -1 when the cache does not
 * cover res (the engine then reads the cluster). Without info->obj the engine
 * skips an object it verified at that resourceVersion, and reads it (one GET,
 * or a labelled LIST page by page when many) otherwise. */
typedef int (*apply_live_fn)(apply_live_info *info, void *data, const kube_resource *res,
	const char *ns, const char *name);

typedef struct {
	int prune;                   /* delete what is no longer desired */
	int allow_empty;             /* prune even when desired is empty */
	apply_drift_policy drift;
	int adopt;                   /* take over same-named unmanaged objects */
	int dry_run;                 /* plan only: dryRun=All applies, no writes */
	double crd_wait;             /* seconds to wait for Established; 0 = 60 */
	unsigned parallel;           /* concurrent requests; 0 = 8 */
	int no_diffs;                /* leave apply_object_result.diff NULL (a
	                                controller that shows only field paths) */
	const char *inventory_namespace; /* NULL = APPLY_INVENTORY_NAMESPACE */
	apply_live_fn live;          /* optional */
	void *live_data;
	const char *const *origins;  /* optional: origins[i] names where desired
	                                object i comes from ("apps/cm.yaml:12"),
	                                copied into the result of a failed one.
	                                Borrowed. */
	size_t norigins;
} apply_opts;

typedef struct apply_engine apply_engine;

/* An engine for GitSync gs_ns/gs_name on client c (borrowed: must outlive
 * the engine). *out: caller frees with apply_engine_free(). */
int apply_engine_new(apply_engine **out, kube_client *c, const char *gs_ns,
	const char *gs_name);
void apply_engine_free(apply_engine *e);

/* Makes the cluster match desired (a cJSON array of objects in apply order,
 * as pkg/manifest renders them; borrowed). Fills *out (caller frees with
 * apply_result_free()) even when some objects failed: per-object failures
 * are in the result, not the return code. Returns 0, or a negative code
 * when the run itself could not proceed (inventory unreadable, bad
 * arguments); *out then holds what was done before. */
int apply_engine_run(apply_result *out, apply_engine *e, const cJSON *desired,
	const apply_opts *opts);

/* The same, taking desired over: its objects are used in place rather than
 * copied (half the memory of a large revision), and it is freed. */
int apply_engine_run_take(apply_result *out, apply_engine *e, cJSON *desired,
	const apply_opts *opts);

/* Drops what the engine remembers of the objects (what a restart does). */
void apply_engine_forget(apply_engine *e);

/* 1 when the engine applied or verified object (res, ns, name) exactly at
 * resourceVersion rv: a watch event carrying that version is the echo of its
 * own work and needs no reconcile. */
int apply_engine_verified(apply_engine *e, const kube_resource *res, const char *ns,
	const char *name, const char *rv);
/* 1 when the object is one the engine's last run wanted in the cluster. */
int apply_engine_tracks(apply_engine *e, const kube_resource *res, const char *ns,
	const char *name);

/* Calls fn for each object the engine's last run wanted in the cluster:
 * its group ("" core), kind, namespace ("" cluster-scoped), name, and the
 * resourceVersion the engine applied or verified it at ("" when it must be
 * read again). Runs under the engine's lock: fn must not call into the
 * engine. Returns how many objects fn saw. */
typedef void (*apply_each_fn)(void *data, const char *group, const char *kind, const char *ns,
	const char *name, const char *rv);
size_t apply_engine_each(apply_engine *e, apply_each_fn fn, void *data);

/* ---- pure helpers (exposed for tests and plumbctl) ------------------------ */

/* The plumb.dev/gitsync label value for GitSync ns/name: "<ns>.<name>" when
 * that is a valid label value (<= 63 chars, [A-Za-z0-9] at both ends,
 * [-_.A-Za-z0-9] inside); otherwise "<prefix>-<hash10>": the first 52 chars
 * of "<ns>.<name>" with trailing [-_.] trimmed, and the first 10 hex chars
 * of sha256("<ns>/<name>"). out >= 64 bytes. */
void apply_gitsync_label(char *out, size_t outlen, const char *ns, const char *name);

/* sha256 hex of obj with object keys sorted recursively, ignoring
 * metadata.annotations["plumb.dev/desired-hash"]. 0 or PLUMB_ENOMEM. */
int apply_desired_hash(char out[65], const cJSON *obj);

/* Apply class of an object: 0 CRD, 1 Namespace, 2 other cluster-scoped,
 * 3 namespaced. namespaced: 1/0 from discovery. */
int apply_object_class(const char *group, const char *kind, int namespaced);
/* Prune class (lower goes first): 0 namespaced, 1 cluster-scoped,
 * 2 CRD, 3 Namespace. */
int apply_prune_class(const char *group, const char *kind, int namespaced);

/* Folds a Secret's stringData into data (base64), stringData winning for a
 * key in both, and removes stringData. Other objects are left alone.
 * 0, or PLUMB_EINVALID when stringData holds a non-string value. */
int apply_secret_normalize(cJSON *obj);

/* 1 when obj is a core/v1 Secret (by apiVersion and kind). */
int apply_is_secret(const cJSON *obj);

/* ---- inventory ------------------------------------------------------------ */
typedef struct {
	char *group;    /* "" = core */
	char *version;
	char *kind;
	char *ns;       /* "" = cluster-scoped */
	char *name;
} apply_inventory_entry;

typedef struct {
	apply_inventory_entry *items;
	size_t count;
	size_t alloc;
	int keep;       /* entries are long-lived records (plumb_keep_alloc);
	                   set before the first add, kept by apply_inventory_free */
} apply_inventory;

void apply_inventory_free(apply_inventory *inv);
/* Appends a copy (the five strings of an entry share one allocation, owned
 * through entry.group). */
int apply_inventory_add(apply_inventory *inv, const char *group,
	const char *version, const char *kind, const char *ns, const char *name);
/* Sorts by (group, kind, ns, name, version) and drops duplicates of
 * (group, kind, ns, name) — the last added version wins. */
void apply_inventory_normalize(apply_inventory *inv);

/* Encodes a normalised inventory into shards of at most max_shard bytes each
 * (0 = APPLY_INVENTORY_SHARD). Format, one item a line:
 *   "@ <group> <version> <kind> <ns>" starts a block ("-" for an empty
 *   group/ns), then one "<name>" line per object of that block;
 * fields %-escape bytes <= 0x20, 0x7f and '%'. Each shard starts with a block
 * header. *out: array of NUL-terminated strings; free with
 * apply_inventory_shards_free(). An empty inventory gives one empty shard. */
int apply_inventory_encode(char ***out, size_t *nout, const apply_inventory *inv,
	size_t max_shard);
void apply_inventory_shards_free(char **shards, size_t n);
/* Appends the entries of one shard's text to inv. PLUMB_EINVALID with the
 * line number on malformed text. */
int apply_inventory_decode(apply_inventory *inv, const char *text, size_t len);

#endif
