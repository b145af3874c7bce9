/*
 * pkg/apply internals shared by its .c files. Not a public API: apply.h is
 * the module's one public header. Which lock guards what and which thread
 * runs what: apply.c's header comment (and pool.c's).
 */
#ifndef PLUMB_APPLY_INTERNAL_H
#define PLUMB_APPLY_INTERNAL_H

#include "base/base.h"
#include "apply/apply.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <strings.h>

/* ---- inventory.c ---- */
typedef struct {
	apply_inventory inv;   /* normalised */
	char **shard_names;    /* further shards the head references */
	size_t nshard_names;
	char *head_rv;         /* resourceVersion of the head we read/wrote */
	char *text;
	int exists;            /* a head exists in the cluster */
	int loaded;
} apply_inv_state;

void apply_inv_state_clear(apply_inv_state *st);
/* Reads the head (one GET) and, when its resourceVersion moved, the shards. */
int apply_inv_load(apply_inv_state *st, kube_client *c, const char *ns,
	const char *head_name, const char *gitsync_id);
/* Writes next (normalised) and updates st. writes counts requests. */
int apply_inv_store(apply_inv_state *st, kube_client *c, const char *ns,
	const char *head_name, const char *gitsync_id, const char *label,
	const apply_inventory *next, size_t *writes);
int apply_inv_equal(const apply_inventory *a, const apply_inventory *b);

/* ---- drift.c ---- */
/* A copy of obj restricted to the paths tmpl sets (maps recursively, other
 * values whole). NULL when obj lacks everything. */
cJSON *apply_project(const cJSON *obj, const cJSON *tmpl);

typedef struct {
	apply_field *items;
	size_t count;
	size_t alloc;
} apply_fields;
void apply_fields_free(apply_fields *f);

/* Compares live (restricted to want's paths) with want; appends every
 * differing path to out, with the responsible manager from live's
 * managedFields when with_manager. Returns the number of differences or a
 * negative code. */
int apply_compare(apply_fields *out, const cJSON *want, const cJSON *live, int with_manager);

/* 1 when every field manager of obj other than "plumb" (Apply) owns only
 * status; i.e. nobody but plumb has written the object's spec/data. */
int apply_only_plumb_wrote(const cJSON *obj);
/* 1 when every leaf path of tmpl (maps recursively; lists as leaves;
 * empty lists/maps and nulls ignored) exists in obj. */
int apply_has_paths(const cJSON *obj, const cJSON *tmpl);

/* Unified YAML diff of live (projected onto desired's fields) against
 * desired; *out NULL when equal. live may be NULL (creation). */
int apply_unified_diff(char **out, const cJSON *live, const cJSON *desired);

/* ---- the engine and its memory (apply.c, state.c) ---- */
/* What the engine remembers of an object it applied or verified: hashes, not
 * objects, so that 10,000s of objects cost little memory. */
typedef struct {
	unsigned char dhash[16];  /* the desired hash (first 128 bits) it holds for */
	unsigned char phash[16];  /* hash of the projection P */
	char rv[24];              /* applied or verified at this resourceVersion;
	                             "" = read it again next time */
	unsigned char p_desired;  /* P is the desired object itself (the server
	                             changed nothing plumb sets: ConfigMaps, most
	                             objects); otherwise P's text is in e->proj */
} obj_state;

/* P of an object the server normalised (defaults inside lists, quantities),
 * as compact JSON text. */
typedef struct {
	char hash[65];
	char *proj;
} proj_entry;

struct apply_engine {
	kube_client *c;
	char *gs_ns;
	char *gs_name;
	char *gitsync_id;     /* "ns/name" */
	char label[64];
	char head_name[64];
	char *selector;
	pthread_mutex_t run_lock;   /* one run at a time */
	pthread_mutex_t lock;       /* guards state, proj and proj_bytes */
	plumb_map state;            /* key -> obj_state */
	plumb_map proj;             /* key -> proj_entry, for objects without p_desired */
	size_t proj_bytes;          /* text held in proj, at most APPLY_MAX_PROJ_BYTES */
	apply_inv_state inv;
};

/* ---- a run (apply.c) ---- */

typedef struct {
	cJSON *obj;            /* the copy plumb applies (labels + hash) */
	char hash[65];
	char *group;           /* from apiVersion */
	char *version;
	char *kind;
	char *name;
	char *ns;              /* "" cluster-scoped */
	char *key;             /* group/kind/ns/name */
	const kube_resource *res;  /* once resolved: R->kinds owns it */
	int resolved;
	int cls;
	const cJSON *live;     /* borrowed (a list page) or owned_live */
	cJSON *owned_live;
	int live_state;        /* 0 unknown, 1 found, 2 not among labelled objects,
	                          3 labelled per the cache, not read yet */
	int done;              /* processed (or found unchanged without a read) */
	int fast;              /* unchanged: still at the version verified before */
	int established;       /* a CRD seen Established when it was read */
	int has_odigest;
	unsigned char odigest[16]; /* proj_digest() of obj, once needed */
	int attempted;         /* a real apply was sent */
	int in_old;            /* in the inventory before this run */
	int pending;           /* validated; its write is still to be sent */
	int deferred;          /* judged only once its CRD or Namespace is written */
	const char *origin;    /* "file:line" in Git, or NULL (borrowed) */
	size_t ri;             /* index into result objects */
} item;

typedef struct {
	apply_inventory_entry e;
	char *key;
	const kube_resource *res;  /* once resolved: R->kinds owns it */
	int resolved;
	int cls;
	int keep;              /* stays in the inventory */
	int hidden;            /* gone already: not reported */
	size_t ri;
} cand;

typedef struct {
	apply_engine *e;
	apply_opts o;
	apply_result *res;
	item *items;
	size_t n;
	cand *cands;
	size_t ncands;
	plumb_map want;        /* key -> item* of every desired object */
	plumb_map kinds;       /* "apiVersion/kind" -> kube_resource* (resolved) */
	plumb_map live;        /* key -> const cJSON* (borrowed from lists) */
	plumb_map unowned;     /* key -> const cJSON* from existence lists */
	plumb_map listed;      /* "group/kind" -> 1: labelled LIST done */
	plumb_map exist_listed;     /* "group/kind/ns" -> 1 */
	cJSON **lists;
	size_t nlists, alists;
	atomic_size_t writes;
	atomic_size_t dry_runs;
	atomic_int stop;       /* a write failed: send no more */
	int validating;        /* real run, first pass: dry runs in place of writes */
	apply_action *actions; /* per result, for workers */
} run;

static inline apply_object_result *apply_res_of(run *R, size_t ri)
{
	return &R->res->objects[ri];
}

/* ---- apply.c ---- */
/* Adds every item of the run to out; final: only what the run leaves owned
 * (not conflicts, nor failed or skipped objects that never were in it). */
int apply_inventory_of_items(run *R, apply_inventory *out, int final);

/* ---- object.c ---- */
/* Sorts object keys recursively (in place). */
int apply_sort_keys(cJSON *v, int depth);
/* metadata.<field> / metadata.<map>.<key> of obj when a string, else NULL. */
const char *apply_meta_get(const cJSON *obj, const char *field);
const char *apply_map_get(const cJSON *obj, const char *map, const char *key);
/* 1 when live carries this GitSync's ownership labels. */
int apply_owned(const run *R, const cJSON *live);
/* "group/kind/ns/name"; NULL on ENOMEM. */
char *apply_make_key(const char *group, const char *kind, const char *ns, const char *name);
/* obj.<name> as a map, replacing what else is there; NULL on ENOMEM. */
cJSON *apply_ensure_map(cJSON *obj, const char *name);
/* map.<key> = val; PLUMB_ENOMEM (no message) on failure. */
int apply_set_str(cJSON *map, const char *key, const char *val);
/* Puts apiVersion and kind back into an item of a JSON List. */
void apply_fill_type(cJSON *obj, const kube_resource *res);

/* ---- result.c ---- */
void apply_object_result_clear(apply_object_result *r);
void apply_set_message(apply_object_result *r, const char *msg);
void apply_set_outcome(apply_object_result *r, apply_action a, const char *msg);
/* Moves f's fields into r (f is empty after). */
void apply_take_fields(apply_object_result *r, apply_fields *f);
/* r failed with err: this thread's last error message and HTTP status. */
void apply_fail_item(apply_object_result *r, int err);
/* The same for a desired object, with msg and where it comes from in Git. */
void apply_fail_desired(const item *it, apply_object_result *r, const char *msg, int err);

/* ---- state.c (all under e->lock) ---- */
void apply_proj_entry_free(void *p);
/* 128 bits of sha256 over proj with keys sorted: equal for equal JSON. */
int apply_proj_digest(unsigned char out[16], const cJSON *proj);
void apply_state_set(run *R, item *it, const unsigned char *ph, const cJSON *proj, const char *rv);
void apply_state_set_rv(run *R, const item *it, const char *rv);
int apply_state_check(run *R, const item *it, const unsigned char ph[16]);
int apply_state_fast(run *R, const item *it, const char *rv);
cJSON *apply_state_proj(run *R, const item *it);
void apply_remember_applied(run *R, item *it, const cJSON *proj, const cJSON *result);

/* ---- pool.c ---- */
typedef void (*work_fn)(run *R, size_t idx);
/* Runs fn over idx[0..n) on up to opts.parallel threads; returns when all are done. */
void apply_run_parallel(run *R, work_fn fn, const size_t *idx, size_t n);

/* ---- live.c ---- */
/* Room for one more entry in R->lists (the objects a run keeps alive until
 * its end): 0, or -1 without memory (nothing changed, no error recorded). */
int apply_lists_reserve(run *R);
/* One labelled LIST of res over all namespaces into R->live (once per kind). */
int apply_list_labelled(run *R, const kube_resource *res);
/* What is live for the items of class cls (idx: scratch of R->n entries). */
void apply_fetch_live(run *R, size_t cls, size_t *idx);

/* ---- write.c (pool threads) ---- */
void apply_drop_object(item *it);
void apply_process_item(run *R, size_t i);
void apply_write_item(run *R, size_t i);
void apply_wait_crd(run *R, size_t i);

/* ---- order.c ---- */
void apply_skip_dependents(run *R, size_t from_cls);
int apply_resolve_interned(const kube_resource **out, run *R, const char *api_version, const char *kind);
void apply_resolve_item(run *R, item *it, plumb_map *neg);
void apply_process_class(run *R, size_t cls, size_t *idx);
void apply_write_class(run *R, int cls, size_t *idx);
item *apply_crd_of(run *R, const item *it);

/* ---- plan.c ---- */
int apply_validate_and_write(run *R, plumb_map *neg, size_t *idx);
void apply_plan_dry_run(run *R, plumb_map *neg, size_t *idx);

/* ---- prune.c ---- */
void apply_prune(run *R, size_t *idx);

#endif
