/*
 * The apply engine: ordering, ownership, server-side apply, drift, prune
 * and the inventory round trip. See apply.h for the behaviour.
 */
#include "apply/apply_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CRD_GROUP "apiextensions.k8s.io"
#define CRD_KIND "CustomResourceDefinition"
#define EXISTENCE_LIST_MIN 16   /* missing objects of one (kind, ns) before one LIST beats GETs */

/* ---- engine --------------------------------------------------------------- */

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

static void proj_entry_free(void *p)
{
	proj_entry *e = p;
	if (e)
		plumb_keep_free(e->proj);
	plumb_keep_free(e);
}

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

const char *apply_action_name(apply_action a)
{
	static const char *const names[] = { "unchanged", "created", "updated", "drifted",
		"corrected", "pruned", "conflict", "skipped", "failed" };
	return (unsigned)a < APPLY_ACTION_COUNT ? names[a] : "unknown";
}

static int label_value_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
		if (!alnum && ((i == 0 || i == n - 1) || (ch != '-' && ch != '_' && ch != '.')))
			return 0;
	}
	return 1;
}

void apply_gitsync_label(char *out, size_t outlen, const char *ns, const char *name)
{
	char full[600], sum[65], prefix[64];
	size_t n;

	snprintf(full, sizeof(full), "%s.%s", ns, name);
	if (label_value_ok(full)) {
		snprintf(out, outlen, "%s", full);
		return;
	}
	snprintf(full, sizeof(full), "%s/%s", ns, name);
	plumb_sha256_hex(sum, full, strlen(full));
	snprintf(full, sizeof(full), "%s.%s", ns, name);
	n = 0;
	for (const char *p = full; *p && n < 52; p++) {
		char ch = *p;
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
		if (!alnum && ch != '-' && ch != '_' && ch != '.')
			ch = '-';
		if (n == 0 && !alnum)
			continue;
		prefix[n++] = ch;
	}
	while (n > 0 && (prefix[n - 1] == '-' || prefix[n - 1] == '_' || prefix[n - 1] == '.'))
		n--;
	prefix[n] = 0;
	if (n)
		snprintf(out, outlen, "%s-%.10s", prefix, sum);
	else
		snprintf(out, outlen, "h%.10s", sum);
}

static int key_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(x->string, y->string);
}

/* Sorts object keys recursively (in place). */
static int sort_keys(cJSON *v, int depth)
{
	cJSON *c, **arr;
	size_t n = 0, i;
	if (depth > 200)
		return plumb_error_set(PLUMB_ETOOBIG, "object nested too deeply");
	for (c = v ? v->child : NULL; c; c = c->next) {
		int err = sort_keys(c, depth + 1);
		if (err)
			return err;
		n++;
	}
	if (!cJSON_IsObject(v) || n < 2)
		return 0;
	arr = malloc(n * sizeof(*arr));
	if (!arr)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (c = v->child, i = 0; c; c = c->next)
		arr[i++] = c;
	if (n > 1)
		qsort(arr, n, sizeof(*arr), key_cmp);
	for (i = 0; i < n; i++) {
		arr[i]->prev = i ? arr[i - 1] : arr[n - 1];
		arr[i]->next = i + 1 < n ? arr[i + 1] : NULL;
	}
	v->child = arr[0];
	free(arr);
	return 0;
}

int apply_desired_hash(char out[65], const cJSON *obj)
{
	cJSON *copy = cJSON_Duplicate(obj, 1), *meta, *ann;
	char *text = NULL;
	int err;

	if (!copy)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	meta = cJSON_GetObjectItemCaseSensitive(copy, "metadata");
	ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
	cJSON_DeleteItemFromObjectCaseSensitive(ann, APPLY_ANNOTATION_HASH);
	if (ann && !ann->child)
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "annotations");
	if ((err = sort_keys(copy, 0)))
		goto cleanup;
	if (!(text = cJSON_PrintUnformatted(copy))) {
		err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	plumb_sha256_hex(out, text, strlen(text));
cleanup:
	cJSON_free(text);
	cJSON_Delete(copy);
	return err;
}

static int is_crd(const char *group, const char *kind)
{
	return !strcmp(group, CRD_GROUP) && !strcmp(kind, CRD_KIND);
}

static int is_namespace(const char *group, const char *kind)
{
	return !*group && !strcmp(kind, "Namespace");
}

int apply_object_class(const char *group, const char *kind, int namespaced)
{
	if (is_crd(group, kind))
		return 0;
	if (is_namespace(group, kind))
		return 1;
	return namespaced ? 3 : 2;
}

int apply_prune_class(const char *group, const char *kind, int namespaced)
{
	if (is_namespace(group, kind))
		return 3;
	if (is_crd(group, kind))
		return 2;
	return namespaced ? 0 : 1;
}

int apply_is_secret(const cJSON *obj)
{
	const cJSON *av = cJSON_GetObjectItemCaseSensitive(obj, "apiVersion");
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(obj, "kind");
	return cJSON_IsString(av) && cJSON_IsString(k) && !strcmp(av->valuestring, "v1") &&
	       !strcmp(k->valuestring, "Secret");
}

int apply_secret_normalize(cJSON *obj)
{
	cJSON *sd, *data, *v;
	if (!apply_is_secret(obj) || !(sd = cJSON_GetObjectItemCaseSensitive(obj, "stringData")))
		return 0;
	if (cJSON_IsNull(sd)) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, "stringData");
		return 0;
	}
	if (!cJSON_IsObject(sd))
		return plumb_error_set(PLUMB_EINVALID, "Secret stringData must be a map of strings");
	cJSON_ArrayForEach(v, sd)
		if (!cJSON_IsString(v))
			return plumb_error_set(PLUMB_EINVALID, "Secret stringData.%s must be a string", v->string);
	data = cJSON_GetObjectItemCaseSensitive(obj, "data");
	if (!cJSON_IsObject(data)) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, "data");
		if (!(data = cJSON_AddObjectToObject(obj, "data")))
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	cJSON_ArrayForEach(v, sd) {
		char *b64 = NULL;
		cJSON *n;
		int err = plumb_base64_encode(&b64, v->valuestring, strlen(v->valuestring));
		if (err)
			return err;
		n = cJSON_CreateString(b64);
		free(b64);
		if (!n)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		if (cJSON_GetObjectItemCaseSensitive(data, v->string))
			cJSON_ReplaceItemInObjectCaseSensitive(data, v->string, n);
		else
			cJSON_AddItemToObject(data, v->string, n);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "stringData");
	return 0;
}

int apply_engine_new(apply_engine **out, kube_client *c, const char *gs_ns,
	const char *gs_name)
{
	apply_engine *e;
	char sum[65];

	if (!c || !gs_ns || !gs_name || !*gs_ns || !*gs_name)
		return plumb_error_set(PLUMB_EINVALID, "apply: client, namespace and name are required");
	if (!(e = calloc(1, sizeof(*e))))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	e->c = c;
	e->gs_ns = plumb_strdup(gs_ns);
	e->gs_name = plumb_strdup(gs_name);
	e->gitsync_id = plumb_asprintf("%s/%s", gs_ns, gs_name);
	apply_gitsync_label(e->label, sizeof(e->label), gs_ns, gs_name);
	e->selector = plumb_asprintf("%s=%s", APPLY_LABEL_GITSYNC, e->label);
	if (!e->gs_ns || !e->gs_name || !e->gitsync_id || !e->selector) {
		apply_engine_free(e);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	plumb_sha256_hex(sum, e->gitsync_id, strlen(e->gitsync_id));
	snprintf(e->head_name, sizeof(e->head_name), "plumb-inventory-%.16s", sum);
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->run_lock, NULL);
	e->state.keep = 1;
	e->proj.keep = 1;
	e->inv.inv.keep = 1;
	*out = e;
	return 0;
}

void apply_engine_forget(apply_engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	plumb_map_free(&e->state, plumb_keep_free);
	plumb_map_free(&e->proj, proj_entry_free);
	e->proj_bytes = 0;
	apply_inv_state_clear(&e->inv);
	pthread_mutex_unlock(&e->lock);
}

static char *make_key(const char *group, const char *kind, const char *ns, const char *name);

int apply_engine_verified(apply_engine *e, const kube_resource *res, const char *ns,
	const char *name, const char *rv)
{
	char *key;
	int yes = 0;
	if (!e || !res || !name || !rv || !*rv)
		return 0;
	if (!(key = make_key(res->group, res->kind, res->namespaced && ns ? ns : "", name)))
		return 0;
	pthread_mutex_lock(&e->lock);
	obj_state *st = plumb_map_get(&e->state, key);
	yes = st && st->rv[0] && !strcmp(st->rv, rv);
	pthread_mutex_unlock(&e->lock);
	free(key);
	return yes;
}

int apply_engine_tracks(apply_engine *e, const kube_resource *res, const char *ns,
	const char *name)
{
	char *key;
	int yes;
	if (!e || !res || !name)
		return 0;
	if (!(key = make_key(res->group, res->kind, res->namespaced && ns ? ns : "", name)))
		return 0;
	pthread_mutex_lock(&e->lock);
	yes = plumb_map_has(&e->state, key);
	pthread_mutex_unlock(&e->lock);
	free(key);
	return yes;
}

void apply_engine_free(apply_engine *e)
{
	if (!e)
		return;
	plumb_map_free(&e->state, plumb_keep_free);
	plumb_map_free(&e->proj, proj_entry_free);
	apply_inv_state_clear(&e->inv);
	if (e->gitsync_id) {
		pthread_mutex_destroy(&e->lock);
		pthread_mutex_destroy(&e->run_lock);
	}
	free(e->gs_ns);
	free(e->gs_name);
	free(e->gitsync_id);
	free(e->selector);
	free(e);
}

/* ---- results -------------------------------------------------------------- */

static void object_result_clear(apply_object_result *r)
{
	free(r->api_version);
	free(r->kind);
	free(r->ns);
	free(r->name);
	free(r->message);
	for (size_t i = 0; i < r->nfields; i++) {
		free(r->fields[i].path);
		free(r->fields[i].manager);
	}
	free(r->fields);
	free(r->diff);
	free(r->origin);
	memset(r, 0, sizeof(*r));
}

void apply_result_free(apply_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->count; i++)
		object_result_clear(&r->objects[i]);
	free(r->objects);
	free(r->message);
	memset(r, 0, sizeof(*r));
}

static void set_message(apply_object_result *r, const char *msg)
{
	free(r->message);
	r->message = plumb_strdup(msg ? msg : "");
}

static void set_outcome(apply_object_result *r, apply_action a, const char *msg)
{
	r->action = a;
	set_message(r, msg);
}

static void take_fields(apply_object_result *r, apply_fields *f)
{
	for (size_t i = 0; i < r->nfields; i++) {
		free(r->fields[i].path);
		free(r->fields[i].manager);
	}
	free(r->fields);
	r->fields = f->items;
	r->nfields = f->count;
	memset(f, 0, sizeof(*f));
}

int apply_result_report(char **out, const apply_result *r)
{
	static const char marks[APPLY_ACTION_COUNT] = { ' ', '+', '~', '!', '!', '-', '?', '.', 'x' };
	plumb_buf b = PLUMB_BUF_INIT(256u * 1024 * 1024);
	int err = 0;

	for (size_t i = 0; i < r->count && !err; i++) {
		const apply_object_result *o = &r->objects[i];
		if (o->action == APPLY_UNCHANGED)
			continue;
		err = plumb_buf_printf(&b, "%c %s %s %s%s%s", marks[o->action], apply_action_name(o->action),
			o->kind, *o->ns ? o->ns : "", *o->ns ? "/" : "", o->name);
		for (size_t k = 0; k < o->nfields && !err && o->action != APPLY_UPDATED; k++)
			err = plumb_buf_printf(&b, "%s%s%s%s%s", k ? ", " : ": ", o->fields[k].path,
				o->fields[k].manager && *o->fields[k].manager ? " (by " : "",
				o->fields[k].manager && *o->fields[k].manager ? o->fields[k].manager : "",
				o->fields[k].manager && *o->fields[k].manager ? ")" : "");
		if (!err && o->message && *o->message)
			err = plumb_buf_printf(&b, " — %s%s%s", o->origin ? o->origin : "", o->origin ? ": " : "",
				o->message);
		if (!err)
			err = plumb_buf_puts(&b, "\n");
		if (!err && o->diff)
			err = plumb_buf_puts(&b, o->diff);
	}
	if (!err && r->message && *r->message)
		err = plumb_buf_printf(&b, "note: %s\n", r->message);
	if (!err)
		err = plumb_buf_printf(&b,
			"%s%zu created, %zu updated, %zu unchanged, %zu drifted, %zu corrected, "
			"%zu pruned, %zu conflict, %zu skipped, %zu failed\n",
			r->dry_run ? "(dry run) " : "", r->totals[APPLY_CREATED], r->totals[APPLY_UPDATED],
			r->totals[APPLY_UNCHANGED], r->totals[APPLY_DRIFTED], r->totals[APPLY_CORRECTED],
			r->totals[APPLY_PRUNED], r->totals[APPLY_CONFLICT], r->totals[APPLY_SKIPPED],
			r->totals[APPLY_FAILED]);
	if (err) {
		plumb_buf_free(&b);
		return err;
	}
	*out = plumb_buf_detach(&b);
	return 0;
}

/* ---- a run ---------------------------------------------------------------- */

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

static const char *meta_get(const cJSON *obj, const char *field)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, field);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *map_get(const cJSON *obj, const char *map, const char *key)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(m, map);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int owned(const run *R, const cJSON *live)
{
	const char *mb = map_get(live, "labels", APPLY_LABEL_MANAGED_BY);
	const char *gs = map_get(live, "labels", APPLY_LABEL_GITSYNC);
	return mb && gs && !strcmp(mb, "plumb") && !strcmp(gs, R->e->label);
}

static char *make_key(const char *group, const char *kind, const char *ns, const char *name)
{
	return plumb_asprintf("%s/%s/%s/%s", group, kind, ns ? ns : "", name);
}

static cJSON *ensure_map(cJSON *obj, const char *name)
{
	cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (cJSON_IsObject(m))
		return m;
	if (m)
		cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
	return cJSON_AddObjectToObject(obj, name);
}

static int set_str(cJSON *map, const char *key, const char *val)
{
	cJSON *v = cJSON_CreateString(val);
	if (!v)
		return PLUMB_ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(map, key))
		cJSON_ReplaceItemInObjectCaseSensitive(map, key, v);
	else
		cJSON_AddItemToObject(map, key, v);
	return 0;
}

/* The copy plumb applies: ownership labels, then the hash annotation. */
static int prepare_object(run *R, item *it)
{
	cJSON *meta = ensure_map(it->obj, "metadata"), *labels, *ann;
	if (!meta || !(labels = ensure_map(meta, "labels")))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (set_str(labels, APPLY_LABEL_MANAGED_BY, "plumb") ||
	    set_str(labels, APPLY_LABEL_GITSYNC, R->e->label))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	int err = apply_desired_hash(it->hash, it->obj);
	if (err)
		return err;
	if (!(ann = ensure_map(meta, "annotations")) || set_str(ann, APPLY_ANNOTATION_HASH, it->hash))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	return 0;
}

typedef void (*work_fn)(run *R, size_t idx);
typedef struct {
	run *R;
	work_fn fn;
	const size_t *idx;
	size_t n;
	atomic_size_t next;
} pool;

static void *pool_main(void *p)
{
	pool *P = p;
	for (;;) {
		size_t i = atomic_fetch_add(&P->next, 1);
		if (i >= P->n)
			break;
		P->fn(P->R, P->idx[i]);
	}
	return NULL;
}

/* Runs fn over idx[0..n) on up to opts.parallel threads. */
static void run_parallel(run *R, work_fn fn, const size_t *idx, size_t n)
{
	pool P = { .R = R, .fn = fn, .idx = idx, .n = n };
	pthread_t th[64];
	/* dry runs write nothing to etcd: the API server takes more of them at once */
	size_t want = R->validating ? 2 * (size_t)R->o.parallel : R->o.parallel;
	size_t nt = want < n ? want : n, started = 0;

	atomic_init(&P.next, 0);
	if (nt > 64)
		nt = 64;
	for (size_t t = 1; t < nt; t++)
		if (pthread_create(&th[started], NULL, pool_main, &P) == 0)
			started++;
	pool_main(&P);
	for (size_t t = 0; t < started; t++)
		pthread_join(th[t], NULL);
}

/* Items of a JSON List come without apiVersion and kind: put them back so
 * that live objects compare with desired ones. */
static void fill_type(cJSON *obj, const kube_resource *res)
{
	char av[400];
	if (!cJSON_IsObject(obj))
		return;
	if (!cJSON_GetObjectItemCaseSensitive(obj, "apiVersion")) {
		kube_resource_api_version(av, sizeof(av), res);
		cJSON_AddStringToObject(obj, "apiVersion", av);
	}
	if (!cJSON_GetObjectItemCaseSensitive(obj, "kind"))
		cJSON_AddStringToObject(obj, "kind", res->kind);
}

/* Keeps a LIST answer for the run and indexes its items into m by
 * (group, kind, namespace, name). Takes list over. */
static int keep_list(run *R, cJSON *list, const kube_resource *res, plumb_map *m)
{
	const cJSON *item;
	int err;
	if (R->nlists == R->alists) {
		size_t na = R->alists ? R->alists * 2 : 16;
		cJSON **l = realloc(R->lists, na * sizeof(*l));
		if (!l) {
			cJSON_Delete(list);
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
		R->lists = l;
		R->alists = na;
	}
	R->lists[R->nlists++] = list;
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(list, "items")) {
		const char *ns = meta_get(item, "namespace"), *name = meta_get(item, "name");
		fill_type((cJSON *)item, res);
		char *key;
		if (!name)
			continue;
		if (!(key = make_key(res->group, res->kind, res->namespaced && ns ? ns : "", name)))
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		err = plumb_map_put(m, key, (void *)item, NULL);
		free(key);
		if (err)
			return err;
	}
	return 0;
}

/* One labelled LIST of res over all namespaces into R->live. */
static int list_labelled(run *R, const kube_resource *res)
{
	char gk[512];
	kube_list_opts lo = { .label_selector = R->e->selector };
	cJSON *list = NULL;
	int err;

	snprintf(gk, sizeof(gk), "%s/%s", res->group, res->kind);
	if (plumb_map_has(&R->listed, gk))
		return 0;
	if ((err = kube_list(&list, R->e->c, res, NULL, &lo)))
		return plumb_error_prefix(err, "listing %s", res->resource);
	if ((err = keep_list(R, list, res, &R->live)))
		return err;
	return plumb_map_put(&R->listed, gk, (void *)1, NULL);
}

/* Unlabelled LIST of res in ns (existence check of many objects at once). */
static int list_existing(run *R, const kube_resource *res, const char *ns)
{
	char k[800];
	cJSON *list = NULL;
	int err;

	snprintf(k, sizeof(k), "%s/%s/%s", res->group, res->kind, ns);
	if (plumb_map_has(&R->exist_listed, k))
		return 0;
	if ((err = kube_list(&list, R->e->c, res, res->namespaced ? ns : NULL, NULL)))
		return err;
	if ((err = keep_list(R, list, res, &R->unowned)))
		return err;
	return plumb_map_put(&R->exist_listed, k, (void *)1, NULL);
}

static apply_object_result *res_of(run *R, size_t ri)
{
	return &R->res->objects[ri];
}

static void process_item(run *R, size_t i);
static int state_fast(run *R, const item *it, const char *rv);
static void drop_object(item *it);

typedef struct {
	run *R;
	const kube_resource *res;
	size_t *idx;
} page_ctx;

/* One page of a labelled LIST: the desired objects in it are processed while
 * the page is in memory, so a LIST of 10,000 objects never is at once. */
static int process_page(const cJSON *page, void *data)
{
	page_ctx *P = data;
	run *R = P->R;
	cJSON *o;
	size_t n = 0;

	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(page, "items")) {
		const char *ns = meta_get(o, "namespace"), *name = meta_get(o, "name");
		char *key;
		item *it;
		if (!name || !(key = make_key(P->res->group, P->res->kind,
			P->res->namespaced && ns ? ns : "", name)))
			continue;
		it = plumb_map_get(&R->want, key);
		free(key);
		if (!it || it->done || it->live || !it->resolved ||
		    res_of(R, it->ri)->action != APPLY_UNCHANGED)
			continue;
		fill_type(o, P->res);   /* the page is ours until we return */
		it->live = o;
		it->live_state = 1;
		P->idx[n++] = (size_t)(it - R->items);
	}
	run_parallel(R, process_item, P->idx, n);
	for (size_t k = 0; k < n; k++)
		R->items[P->idx[k]].live = NULL;
	return 0;
}

static int needs_read(const run *R, const item *it, size_t cls)
{
	return (size_t)it->cls == cls && it->resolved && !it->done && !it->live &&
	       (it->live_state == 0 || it->live_state == 3) &&
	       R->res->objects[it->ri].action == APPLY_UNCHANGED;
}

/* Finds out what is live for the items of one class: from the controller's
 * cache when it has one (no read at all for an object still at the version
 * plumb applied or verified), then, for a kind with many objects to read,
 * one labelled LIST processed page by page; the rest are read one by one. */
static void fetch_live(run *R, size_t cls, size_t *idx)
{
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		apply_live_info info;
		int got;
		if (!needs_read(R, it, cls) || it->live_state || !R->o.live)
			continue;
		memset(&info, 0, sizeof(info));
		got = R->o.live(&info, R->o.live_data, it->res, it->ns, it->name);
		if (got == 1 && !strcmp(info.label, R->e->label) && !strcmp(info.hash, it->hash) &&
		    state_fast(R, it, info.rv)) {
			/* still at the version plumb applied or verified */
			cJSON_Delete(info.obj);
			it->live_state = 1;
			it->fast = 1;
			it->done = 1;
			drop_object(it);
		} else if (got == 1 && info.obj) {
			fill_type(info.obj, it->res);
			it->owned_live = info.obj;
			it->live = info.obj;
			it->live_state = 1;
		} else if (got == 1) {
			it->live_state = 3;
		} else if (got == 0) {
			it->live_state = 2;
		}
	}
	/* many to read of one kind: one labelled LIST, page by page */
	for (size_t i = 0; i < R->n; i++)
		if ((size_t)R->items[i].cls == cls && R->items[i].resolved)
			plumb_map_put(&R->want, R->items[i].key, &R->items[i], NULL);
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		size_t same = 0;
		char gk[512];
		if (!needs_read(R, it, cls))
			continue;
		snprintf(gk, sizeof(gk), "paged:%s/%s", it->res->group, it->res->kind);
		if (plumb_map_has(&R->listed, gk))
			continue;
		for (size_t j = i; j < R->n && same < EXISTENCE_LIST_MIN; j++)
			if (needs_read(R, &R->items[j], cls) && !strcmp(R->items[j].res->group, it->res->group) &&
			    !strcmp(R->items[j].res->kind, it->res->kind))
				same++;
		if (same < EXISTENCE_LIST_MIN)
			continue;
		page_ctx P = { R, it->res, idx };
		kube_list_opts lo = { .label_selector = R->e->selector };
		kube_resource res = *it->res;
		P.res = &res;
		if (plumb_map_put(&R->listed, gk, (void *)1, NULL))
			continue;
		if (kube_list_pages(R->e->c, &res, NULL, &lo, process_page, &P, NULL, NULL)) {
			plumb_warn("labelled list failed; reading objects one by one", "resource",
				res.resource, "error", plumb_error_last());
			continue;
		}
		/* what the LIST did not have is not labelled for this GitSync */
		for (size_t j = 0; j < R->n; j++) {
			item *o = &R->items[j];
			if (needs_read(R, o, cls) && !strcmp(o->res->group, res.group) && !strcmp(o->res->kind, res.kind))
				o->live_state = 2;
		}
	}
	/* many missing objects in one (kind, ns): one LIST instead of GETs */
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		size_t same = 0;
		char k[800];
		if ((size_t)it->cls != cls || it->done || it->live_state != 2)
			continue;
		snprintf(k, sizeof(k), "%s/%s/%s", it->res->group, it->res->kind, it->ns);
		if (plumb_map_has(&R->exist_listed, k))
			continue;
		for (size_t j = i; j < R->n && same < EXISTENCE_LIST_MIN; j++) {
			item *o = &R->items[j];
			if (o->live_state == 2 && !o->done && o->resolved && !strcmp(o->res->group, it->res->group) &&
			    !strcmp(o->res->kind, it->res->kind) && !strcmp(o->ns, it->ns))
				same++;
		}
		if (same >= EXISTENCE_LIST_MIN && list_existing(R, it->res, it->ns))
			plumb_warn("existence list failed; falling back to GETs", "resource",
				it->res->resource, "error", plumb_error_last());
	}
}

static void fail_item(apply_object_result *r, int err)
{
	set_outcome(r, APPLY_FAILED, plumb_error_last());
	r->code = err;
	r->http_status = kube_last_http_status();
}

/* A failure of a desired object, with where it comes from in Git. err is
 * the code of the call that just failed on this thread. */
static void fail_desired(const item *it, apply_object_result *r, const char *msg, int err)
{
	set_outcome(r, APPLY_FAILED, msg);
	r->code = err;
	r->http_status = kube_last_http_status();
	if (it->origin && !r->origin)
		r->origin = plumb_strdup(it->origin);
}

/* 128 bits of sha256 over proj with keys sorted: equal for equal JSON. */
static int proj_digest(unsigned char out[16], const cJSON *proj)
{
	cJSON *copy = cJSON_Duplicate(proj, 1);
	char *text = NULL, sum[65];
	int err;
	if (!copy)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (!(err = sort_keys(copy, 0))) {
		if ((text = cJSON_PrintUnformatted(copy))) {
			plumb_sha256_hex(sum, text, strlen(text));
			plumb_hex_decode(out, 16, sum);
		} else {
			err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
	}
	cJSON_free(text);
	cJSON_Delete(copy);
	return err;
}

/* Remembers for it->key: P (proj) for the item's desired hash, ph the hash
 * of the projection accepted as not drifted (NULL: P's), seen at
 * resourceVersion rv ("" = read it again next time). */
static void state_set(run *R, item *it, const unsigned char *ph, const cJSON *proj, const char *rv)
{
	obj_state *st, fresh;
	proj_entry *pe = NULL, *oldp = NULL;
	unsigned char d[16];
	char *text = NULL;
	if (R->o.dry_run || !proj || proj_digest(d, proj))
		return;
	if (!it->has_odigest) {
		if (proj_digest(it->odigest, it->obj))
			return;
		it->has_odigest = 1;
	}
	memset(&fresh, 0, sizeof(fresh));
	plumb_hex_decode(fresh.dhash, 16, it->hash);
	memcpy(fresh.phash, ph ? ph : d, 16);
	if (rv && strlen(rv) < sizeof(fresh.rv))
		memcpy(fresh.rv, rv, strlen(rv) + 1);
	fresh.p_desired = !memcmp(d, it->odigest, 16);
	if (!fresh.p_desired && (text = cJSON_PrintUnformatted(proj))) {
		if ((pe = plumb_keep_alloc(sizeof(*pe)))) {
			snprintf(pe->hash, sizeof(pe->hash), "%s", it->hash);
			pe->proj = plumb_keep_strdup(text);
		}
		if (pe && !pe->proj) {
			plumb_keep_free(pe);
			pe = NULL;
		}
		cJSON_free(text);
	}
	pthread_mutex_lock(&R->e->lock);
	/* updated in place: no churn of long-lived records */
	if ((st = plumb_map_get(&R->e->state, it->key))) {
		*st = fresh;
	} else if ((st = plumb_keep_alloc(sizeof(*st)))) {
		*st = fresh;
		if (plumb_map_put(&R->e->state, it->key, st, NULL))
			plumb_keep_free(st);
	}
	{
		proj_entry *cur = plumb_map_get(&R->e->proj, it->key), *dropped = NULL;
		if (cur)
			R->e->proj_bytes -= strlen(cur->proj);
		if (pe && R->e->proj_bytes + strlen(pe->proj) > APPLY_MAX_PROJ_BYTES) {
			dropped = pe;   /* over budget: a dry run computes P when needed */
			pe = NULL;
		}
		/* a dropped entry keeps its slot, with no value, until the run's end */
		if ((pe || cur) && plumb_map_put(&R->e->proj, it->key, pe, (void **)&oldp)) {
			dropped = pe;   /* cur stays, unaccounted: counted again at the run's end */
			pe = NULL;
			oldp = NULL;
		}
		if (pe)
			R->e->proj_bytes += strlen(pe->proj);
		proj_entry_free(dropped);
	}
	pthread_mutex_unlock(&R->e->lock);
	proj_entry_free(oldp);
}

/* Moves the version the object was verified at, keeping the rest. */
static void state_set_rv(run *R, const item *it, const char *rv)
{
	if (R->o.dry_run)
		return;
	pthread_mutex_lock(&R->e->lock);
	obj_state *st = plumb_map_get(&R->e->state, it->key);
	if (st)
		snprintf(st->rv, sizeof(st->rv), "%s", rv && strlen(rv) < sizeof(st->rv) ? rv : "");
	pthread_mutex_unlock(&R->e->lock);
}

/* -1: nothing remembered for the item's desired hash; 0: remembered, and
 * ph differs; 1: the same projection. */
static int state_check(run *R, const item *it, const unsigned char ph[16])
{
	unsigned char d[16];
	int ret = -1;
	plumb_hex_decode(d, 16, it->hash);
	pthread_mutex_lock(&R->e->lock);
	obj_state *st = plumb_map_get(&R->e->state, it->key);
	if (st && !memcmp(st->dhash, d, 16))
		ret = !memcmp(st->phash, ph, 16);
	pthread_mutex_unlock(&R->e->lock);
	return ret;
}

/* 1 when the item was applied or verified at resourceVersion rv for its
 * current desired hash. */
static int state_fast(run *R, const item *it, const char *rv)
{
	unsigned char d[16];
	int yes;
	if (!rv || !*rv)
		return 0;
	plumb_hex_decode(d, 16, it->hash);
	pthread_mutex_lock(&R->e->lock);
	obj_state *st = plumb_map_get(&R->e->state, it->key);
	yes = st && st->rv[0] && !memcmp(st->dhash, d, 16) && !strcmp(st->rv, rv);
	pthread_mutex_unlock(&R->e->lock);
	return yes;
}

/* P as remembered for the item's desired hash (a new tree), or NULL. */
static cJSON *state_proj(run *R, const item *it)
{
	unsigned char d[16];
	char *text = NULL;
	int desired = 0;
	plumb_hex_decode(d, 16, it->hash);
	pthread_mutex_lock(&R->e->lock);
	obj_state *st = plumb_map_get(&R->e->state, it->key);
	if (st && !memcmp(st->dhash, d, 16)) {
		proj_entry *pe = plumb_map_get(&R->e->proj, it->key);
		desired = st->p_desired;
		if (!desired && pe && !strcmp(pe->hash, it->hash))
			text = plumb_strdup(pe->proj);
	}
	pthread_mutex_unlock(&R->e->lock);
	if (desired)
		return cJSON_Duplicate(it->obj, 1);
	cJSON *out = text ? cJSON_Parse(text) : NULL;
	free(text);
	return out;
}

static int do_apply(run *R, item *it, cJSON **out, int dry_run)
{
	kube_apply_opts ao = { .field_manager = APPLY_FIELD_MANAGER, .force = 1, .dry_run = dry_run };
	atomic_fetch_add(&R->writes, 1);
	if (dry_run)
		atomic_fetch_add(&R->dry_runs, 1);
	else
		it->attempted = 1;
	return kube_apply(out, R->e->c, it->res, *it->ns ? it->ns : NULL, it->obj, &ao);
}

static char *owner_of(const cJSON *live)
{
	const char *gs = map_get(live, "labels", APPLY_LABEL_GITSYNC);
	const char *mb = map_get(live, "labels", APPLY_LABEL_MANAGED_BY);
	const cJSON *mf = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(live, "metadata"),
		"managedFields"), *e;
	plumb_buf b = PLUMB_BUF_INIT(4096);
	int first = 1;

	if (gs && mb && !strcmp(mb, "plumb"))
		return plumb_asprintf("owned by GitSync %s", gs);
	plumb_buf_puts(&b, "exists and is not managed by this GitSync");
	cJSON_ArrayForEach(e, mf) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "manager");
		if (!cJSON_IsString(m))
			continue;
		plumb_buf_printf(&b, "%s%s", first ? " (field managers: " : ", ", m->valuestring);
		first = 0;
	}
	if (!first)
		plumb_buf_puts(&b, ")");
	return plumb_buf_detach(&b);
}

static int crd_established(const cJSON *crd);

/* A processed object is not needed again, except a CRD (dependents and dry
 * runs look at its spec): dropping it at once keeps a large revision from
 * sitting in memory for the whole run. */
static void drop_object(item *it)
{
	if (it->cls == 0)
		return;
	cJSON_Delete(it->obj);
	it->obj = NULL;
	cJSON_Delete(it->owned_live);
	it->owned_live = NULL;
	it->live = NULL;
}

/* The object after a real apply: remember its projection and version. */
static void remember_applied(run *R, item *it, const cJSON *proj, const cJSON *result)
{
	state_set(R, it, NULL, proj, meta_get(result, "resourceVersion"));
}

static void process_item(run *R, size_t i)
{
	item *it = &R->items[i];
	apply_object_result *r = res_of(R, it->ri);
	const cJSON *live = it->live;
	cJSON *got = NULL, *result = NULL, *proj = NULL, *q = NULL;
	apply_fields fields = { 0 };
	unsigned char qh[16];
	int adopting = 0, err, nd;

	if (r->action != APPLY_UNCHANGED || !it->resolved || it->done)
		return;
	it->done = 1;
	if (!live) {
		char k[800];
		snprintf(k, sizeof(k), "%s/%s/%s", it->res->group, it->res->kind, it->ns);
		if (it->live_state == 2 && plumb_map_has(&R->exist_listed, k)) {
			live = plumb_map_get(&R->unowned, it->key);
		} else {
			err = kube_get(&got, R->e->c, it->res, *it->ns ? it->ns : NULL, it->name);
			if (err && err != PLUMB_ENOTFOUND) {
				fail_desired(it, r, plumb_error_last(), err);
				goto cleanup;
			}
			if (got)
				fill_type(got, it->res);
			live = got;
		}
	}
	if (live && it->cls == 0)
		it->established = crd_established(live);
	if (live && !owned(R, live)) {
		if (!R->o.adopt) {
			char *who = owner_of(live);
			set_outcome(r, APPLY_CONFLICT, who ? who : "not managed by this GitSync");
			free(who);
			goto cleanup;
		}
		adopting = 1;
	}
	if (!live) {
		if (R->o.dry_run && *it->ns) {
			/* its Namespace comes with this revision: a dry run cannot go in it yet */
			for (size_t j = 0; j < R->n; j++) {
				item *p = &R->items[j];
				if (p->cls == 1 && !strcmp(p->name, it->ns) &&
				    res_of(R, p->ri)->action == APPLY_CREATED) {
					set_outcome(r, APPLY_CREATED, "its Namespace is created first");
					goto cleanup;
				}
			}
		}
		/* validating a creation: only the verdict matters, not the body */
		if ((err = do_apply(R, it, R->validating ? NULL : &result, R->o.dry_run || R->validating))) {
			fail_desired(it, r, plumb_error_last(), err);
			goto cleanup;
		}
		if (R->validating) {
			r->action = APPLY_CREATED;
			it->pending = 1;
			goto cleanup;
		}
		proj = apply_project(result, it->obj);
		/* the whole object as "+" lines: worth it in a plan, not after the fact */
		if (R->o.dry_run)
			apply_unified_diff(&r->diff, NULL, proj);
		r->action = APPLY_CREATED;
		if (R->validating)
			it->pending = 1;
		else
			remember_applied(R, it, proj, result);
		goto cleanup;
	}
	if (!adopting) {
		const char *lh = map_get(live, "annotations", APPLY_ANNOTATION_HASH);
		if (lh && !strcmp(lh, it->hash)) {
			/* same desired object: drift check */
			int known;
			if (!(q = apply_project(live, it->obj)) || (err = proj_digest(qh, q))) {
				fail_item(r, plumb_error_set(PLUMB_ENOMEM, "out of memory"));
				goto cleanup;
			}
			known = state_check(R, it, qh);
			if (known == 1) {
				state_set_rv(R, it, meta_get(live, "resourceVersion"));
				goto cleanup;  /* unchanged since plumb applied or verified it */
			}
			if (known < 0 && apply_only_plumb_wrote(live) && apply_has_paths(live, it->obj)) {
				/* nobody but plumb wrote it: what is there is P */
				state_set(R, it, qh, q, meta_get(live, "resourceVersion"));
				goto cleanup;
			}
			/* compare with P: remembered, or computed by a dry run */
			if (!(proj = known == 0 ? state_proj(R, it) : NULL)) {
				if ((err = do_apply(R, it, &result, 1))) {
					fail_desired(it, r, plumb_error_last(), err);
					goto cleanup;
				}
				proj = apply_project(result, it->obj);
				cJSON_Delete(result);
				result = NULL;
			}
			if (!proj || (nd = apply_compare(&fields, proj, live, 1)) < 0) {
				fail_item(r, plumb_error_set(PLUMB_ENOMEM, "out of memory"));
				goto cleanup;
			}
			if (nd == 0) {
				/* changed only where plumb does not look */
				state_set(R, it, qh, proj, meta_get(live, "resourceVersion"));
				goto cleanup;
			}
			if (!R->o.no_diffs)
				apply_unified_diff(&r->diff, live, proj);
			take_fields(r, &fields);
			if (R->o.drift == APPLY_DRIFT_CORRECT && !R->o.dry_run && R->validating) {
				/* the same object as applied before: written with the rest */
				r->action = APPLY_CORRECTED;
				it->pending = 1;
			} else if (R->o.drift == APPLY_DRIFT_CORRECT && !R->o.dry_run) {
				cJSON_Delete(proj);
				proj = NULL;
				if ((err = do_apply(R, it, &result, 0))) {
					fail_item(r, err);
					goto cleanup;
				}
				r->action = APPLY_CORRECTED;
				proj = apply_project(result, it->obj);
				remember_applied(R, it, proj, result);
			} else {
				/* left drifted: read it again next time */
				r->action = APPLY_DRIFTED;
				state_set(R, it, NULL, proj, "");
			}
			goto cleanup;
		}
	}
	/* desired changed (or adopting) */
	if (R->validating && R->o.no_diffs) {
		/* a controller reads neither the diff nor the changed paths of an
		 * update: the dry run is only a verdict */
		if ((err = do_apply(R, it, NULL, 1))) {
			fail_desired(it, r, plumb_error_last(), err);
			goto cleanup;
		}
		r->action = APPLY_UPDATED;
		if (adopting)
			set_message(r, "adopted");
		it->pending = 1;
		goto cleanup;
	}
	if ((err = do_apply(R, it, &result, R->o.dry_run || R->validating))) {
		fail_desired(it, r, plumb_error_last(), err);
		goto cleanup;
	}
	proj = apply_project(result, it->obj);
	if (proj && apply_compare(&fields, proj, live, 0) >= 0) {
		/* our own bookkeeping annotation is not news to the reader */
		size_t w = 0;
		for (size_t k = 0; k < fields.count; k++) {
			if (!strcmp(fields.items[k].path, "metadata.annotations[\"" APPLY_ANNOTATION_HASH "\"]")) {
				free(fields.items[k].path);
				free(fields.items[k].manager);
				continue;
			}
			fields.items[w++] = fields.items[k];
		}
		fields.count = w;
		take_fields(r, &fields);
	}
	if (!R->o.no_diffs)
		apply_unified_diff(&r->diff, live, proj);
	r->action = APPLY_UPDATED;
	if (adopting)
		set_message(r, "adopted");
	if (R->validating)
		it->pending = 1;
	else
		remember_applied(R, it, proj, result);
cleanup:
	apply_fields_free(&fields);
	cJSON_Delete(got);
	cJSON_Delete(result);
	cJSON_Delete(proj);
	cJSON_Delete(q);
	if (!it->pending)
		drop_object(it);
	else {
		/* the write needs only the object */
		cJSON_Delete(it->owned_live);
		it->owned_live = NULL;
		it->live = NULL;
	}
}

/* The write of an object validated before: the real apply, remembered. */
static void write_item(run *R, size_t i)
{
	item *it = &R->items[i];
	apply_object_result *r = res_of(R, it->ri);
	cJSON *result = NULL, *proj = NULL;
	int err;

	if (!it->pending)
		return;
	it->pending = 0;
	if (atomic_load(&R->stop)) {
		set_outcome(r, APPLY_SKIPPED, "not applied: an earlier write of this revision failed");
		drop_object(it);
		return;
	}
	if ((err = do_apply(R, it, &result, 0))) {
		atomic_store(&R->stop, 1);
		fail_desired(it, r, plumb_error_last(), err);
	} else {
		proj = apply_project(result, it->obj);
		remember_applied(R, it, proj, result);
	}
	cJSON_Delete(result);
	cJSON_Delete(proj);
	drop_object(it);
}

static int crd_established(const cJSON *crd)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(crd, "status");
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(st, "conditions")) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "type");
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "status");
		if (cJSON_IsString(t) && !strcmp(t->valuestring, "Established") &&
		    cJSON_IsString(s) && !strcmp(s->valuestring, "True"))
			return 1;
	}
	return 0;
}

static void wait_crd(run *R, size_t i)
{
	item *it = &R->items[i];
	apply_object_result *r = res_of(R, it->ri);
	double deadline = plumb_time_mono() + R->o.crd_wait, delay = 0.05;

	if (r->action == APPLY_FAILED || r->action == APPLY_CONFLICT || r->action == APPLY_SKIPPED)
		return;
	if (r->action == APPLY_UNCHANGED && (it->fast || it->established))
		return;
	for (;;) {
		cJSON *crd = NULL;
		int err = kube_get(&crd, R->e->c, it->res, NULL, it->name);
		int ok = !err && crd_established(crd);
		cJSON_Delete(crd);
		if (ok)
			return;
		if (plumb_time_mono() + delay > deadline) {
			char msg[256];
			snprintf(msg, sizeof(msg), "applied but not Established after %.0fs", R->o.crd_wait);
			set_outcome(r, APPLY_FAILED, msg);
			atomic_store(&R->stop, 1);
			return;
		}
		plumb_sleep(delay);
		if (delay < 0.5)
			delay *= 2;
	}
}

/* Skips items whose CRD or Namespace (in this revision) did not make it. */
static void skip_dependents(run *R, size_t from_cls)
{
	for (size_t i = 0; i < R->n; i++) {
		item *dep = &R->items[i];
		apply_object_result *dr = res_of(R, dep->ri);
		if ((size_t)dep->cls < from_cls || dr->action != APPLY_UNCHANGED)
			continue;
		for (size_t j = 0; j < R->n; j++) {
			item *p = &R->items[j];
			apply_object_result *pr = res_of(R, p->ri);
			char msg[700];
			/* a conflict means the CRD or Namespace exists: dependents can go in */
			if (pr->action != APPLY_FAILED && pr->action != APPLY_SKIPPED)
				continue;
			if (p->cls == 0) {
				const cJSON *spec = cJSON_GetObjectItemCaseSensitive(p->obj, "spec");
				const cJSON *g = cJSON_GetObjectItemCaseSensitive(spec, "group");
				const cJSON *k = cJSON_GetObjectItemCaseSensitive(
					cJSON_GetObjectItemCaseSensitive(spec, "names"), "kind");
				if (!cJSON_IsString(g) || !cJSON_IsString(k) || strcmp(g->valuestring, dep->group) ||
				    strcmp(k->valuestring, dep->kind))
					continue;
				snprintf(msg, sizeof(msg), "CustomResourceDefinition %s %s", p->name,
					apply_action_name(pr->action));
			} else if (p->cls == 1) {
				if (strcmp(p->name, dep->ns))
					continue;
				snprintf(msg, sizeof(msg), "Namespace %s %s", p->name, apply_action_name(pr->action));
			} else {
				continue;
			}
			set_outcome(dr, APPLY_SKIPPED, msg);
			break;
		}
	}
}

/* kube_resolve() once per (apiVersion, kind) of a run: items share the
 * answer instead of each carrying a copy. */
static int resolve_interned(const kube_resource **out, run *R, const char *api_version, const char *kind)
{
	char k[600];
	kube_resource *r;
	int err;
	snprintf(k, sizeof(k), "%s/%s", api_version, kind);
	if ((*out = plumb_map_get(&R->kinds, k)))
		return 0;
	if (!(r = calloc(1, sizeof(*r))))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if ((err = kube_resolve(r, R->e->c, api_version, kind)) || (err = plumb_map_put(&R->kinds, k, r, NULL))) {
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

static void resolve_item(run *R, item *it, plumb_map *neg)
{
	apply_object_result *r = res_of(R, it->ri);
	const cJSON *av = cJSON_GetObjectItemCaseSensitive(it->obj, "apiVersion");
	char nk[600];
	int err;

	if (it->resolved || r->action != APPLY_UNCHANGED)
		return;
	snprintf(nk, sizeof(nk), "%s/%s", av->valuestring, it->kind);
	if (plumb_map_has(neg, nk)) {
		fail_desired(it, r, plumb_map_get(neg, nk), PLUMB_ENOTFOUND);
		return;
	}
	err = resolve_interned(&it->res, R, av->valuestring, it->kind);
	if (err) {
		char *msg = err == PLUMB_ENOTFOUND ?
			plumb_asprintf("unknown kind %s %s: %s", av->valuestring, it->kind, plumb_error_last()) :
			plumb_asprintf("discovery for %s %s: %s", av->valuestring, it->kind, plumb_error_last());
		fail_desired(it, r, msg ? msg : "unknown kind", err);
		/* only "not served" is remembered: an outage is asked again */
		if (msg && (err != PLUMB_ENOTFOUND || plumb_map_put(neg, nk, msg, NULL)))
			free(msg);
		return;
	}
	it->resolved = 1;
	it->cls = apply_object_class(it->res->group, it->res->kind, it->res->namespaced);
	if (it->res->namespaced && !*it->ns) {
		const char *dns = kube_config_namespace(kube_client_config(R->e->c));
		free(it->ns);
		it->ns = plumb_strdup(dns);
		set_str(ensure_map(it->obj, "metadata"), "namespace", it->ns);
		apply_desired_hash(it->hash, it->obj);
		set_str(ensure_map(ensure_map(it->obj, "metadata"), "annotations"), APPLY_ANNOTATION_HASH, it->hash);
	} else if (!it->res->namespaced && *it->ns) {
		it->ns[0] = 0;
		cJSON_DeleteItemFromObjectCaseSensitive(ensure_map(it->obj, "metadata"), "namespace");
		apply_desired_hash(it->hash, it->obj);
		set_str(ensure_map(ensure_map(it->obj, "metadata"), "annotations"), APPLY_ANNOTATION_HASH, it->hash);
	}
	free(it->key);
	it->key = make_key(it->res->group, it->res->kind, it->ns, it->name);
}

static void process_class(run *R, size_t cls, size_t *idx)
{
	size_t n = 0;
	fetch_live(R, cls, idx);
	for (size_t i = 0; i < R->n; i++)
		if ((size_t)R->items[i].cls == cls && R->items[i].resolved && !R->items[i].deferred)
			idx[n++] = i;
	run_parallel(R, process_item, idx, n);
}

/* Sends the validated writes of one class. */
static void write_class(run *R, int cls, size_t *idx)
{
	size_t n = 0;
	for (size_t i = 0; i < R->n; i++)
		if (R->items[i].cls == cls && R->items[i].pending)
			idx[n++] = i;
	run_parallel(R, write_item, idx, n);
}

/* The CRD item of this revision that defines its kind, or NULL. */
static item *crd_of(run *R, const item *it)
{
	for (size_t j = 0; j < R->n; j++) {
		item *c = &R->items[j];
		if (c->cls != 0 || !c->obj)
			continue;
		const cJSON *spec = cJSON_GetObjectItemCaseSensitive(c->obj, "spec");
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(spec, "group");
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(spec, "names"), "kind");
		if (cJSON_IsString(g) && cJSON_IsString(k) && !strcmp(g->valuestring, it->group) &&
		    !strcmp(k->valuestring, it->kind))
			return c;
	}
	return NULL;
}

static size_t count_failed(run *R)
{
	size_t n = 0;
	for (size_t i = 0; i < R->n; i++)
		if (res_of(R, R->items[i].ri)->action == APPLY_FAILED)
			n++;
	return n;
}

/* Everything of the revision not written yet stays unwritten. */
static void skip_rest(run *R, const char *msg)
{
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		apply_object_result *r = res_of(R, it->ri);
		if (it->pending || (r->action == APPLY_UNCHANGED && !it->done)) {
			it->pending = 0;
			set_outcome(r, APPLY_SKIPPED, msg);
		}
	}
}

/* Validation failed: nothing more is written. */
static void abort_invalid(run *R, size_t invalid)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "not applied: %zu object%s of this revision failed validation",
		invalid, invalid == 1 ? "" : "s");
	skip_rest(R, msg);
	R->res->invalid = invalid;
}

/* Validates the pending items of the classes >= 2 that were deferred until
 * their CRD or Namespace was written. */
static void validate_deferred(run *R, plumb_map *neg, size_t *idx)
{
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		if (!it->deferred)
			continue;
		it->deferred = 0;
		if (res_of(R, it->ri)->action == APPLY_UNCHANGED && !it->resolved)
			resolve_item(R, it, neg);
	}
	process_class(R, 2, idx);
	process_class(R, 3, idx);
}

static int inventory_of_items(run *R, apply_inventory *out, int final);

/* A real run: validate the whole revision, then write it (apply.h). */
static int validate_and_write(run *R, plumb_map *neg, size_t *idx)
{
	apply_engine *e = R->e;
	size_t invalid, changed = 0, n = 0, had_deferred = 0;
	apply_inventory next = { 0 };
	int err = 0;

	R->validating = 1;
	for (size_t i = 0; i < R->n; i++)
		if (R->items[i].cls == 0)
			resolve_item(R, &R->items[i], neg);
	process_class(R, 0, idx);
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		item *crd;
		kube_resource served;
		if (it->cls == 0 || it->resolved || res_of(R, it->ri)->action != APPLY_UNCHANGED)
			continue;
		crd = crd_of(R, it);
		if (crd && (crd->pending || kube_resolve_object(&served, e->c, it->obj) != 0)) {
			/* served once this revision's CRD is written */
			it->deferred = 1;
			continue;
		}
		resolve_item(R, it, neg);
		/* against the schema the revision brings, not the one being replaced */
		if (it->resolved && crd && crd->pending)
			it->deferred = 1;
	}
	process_class(R, 1, idx);
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		if (it->cls < 2 || !*it->ns || it->deferred)
			continue;
		for (size_t j = 0; j < R->n; j++) {
			item *p = &R->items[j];
			if (p->cls == 1 && p->pending && !strcmp(p->name, it->ns) &&
			    res_of(R, p->ri)->action == APPLY_CREATED) {
				it->deferred = 1;
				break;
			}
		}
	}
	for (size_t i = 0; i < R->n; i++)
		had_deferred += R->items[i].deferred;
	process_class(R, 2, idx);
	process_class(R, 3, idx);
	R->validating = 0;
	if ((invalid = count_failed(R))) {
		abort_invalid(R, invalid);
		return 0;
	}

	/* widen the inventory before writing anything */
	for (size_t i = 0; i < e->inv.inv.count; i++) {
		apply_inventory_entry *ie = &e->inv.inv.items[i];
		if ((err = apply_inventory_add(&next, ie->group, ie->version, ie->kind, ie->ns, ie->name)))
			goto cleanup;
	}
	if ((err = inventory_of_items(R, &next, 0)))
		goto cleanup;
	apply_inventory_normalize(&next);
	if (next.count != e->inv.inv.count) {
		size_t w = 0;
		err = apply_inv_store(&e->inv, e->c, R->o.inventory_namespace, e->head_name,
			e->gitsync_id, e->label, &next, &w);
		atomic_fetch_add(&R->writes, w);
		if (err) {
			skip_rest(R, "not applied: the inventory could not be written");
			goto cleanup;
		}
		R->res->inventory_written = 1;
	}

	/* CustomResourceDefinitions, waited for, then discovery again */
	write_class(R, 0, idx);
	for (size_t i = 0; i < R->n; i++) {
		apply_action a = res_of(R, R->items[i].ri)->action;
		if (R->items[i].cls != 0 || !R->items[i].resolved)
			continue;
		idx[n++] = i;
		if (a == APPLY_CREATED || a == APPLY_UPDATED || a == APPLY_CORRECTED)
			changed++;
	}
	if (!atomic_load(&R->stop))
		run_parallel(R, wait_crd, idx, n);
	if (changed && kube_discovery_refresh(e->c))
		plumb_warn("discovery refresh failed", "error", plumb_error_last());
	if (!atomic_load(&R->stop))
		write_class(R, 1, idx);
	/* The one exception to "validated before the first write": a custom
	 * resource cannot be dry-run before its CRD is served (and against the
	 * schema it brings, not the one it replaces), nor an object before its
	 * Namespace exists. So those CRDs and Namespaces, validated themselves,
	 * went in first; what depends on them is judged now, still before any
	 * other write. */
	if (!atomic_load(&R->stop) && had_deferred) {
		R->validating = 1;
		validate_deferred(R, neg, idx);
		R->validating = 0;
		if ((invalid = count_failed(R))) {
			abort_invalid(R, invalid);
			goto cleanup;
		}
	}
	if (!atomic_load(&R->stop))
		write_class(R, 2, idx);
	if (!atomic_load(&R->stop))
		write_class(R, 3, idx);
	if (atomic_load(&R->stop)) {
		size_t done = 0, todo = 0;
		skip_rest(R, "not applied: an earlier write of this revision failed");
		for (size_t i = 0; i < R->n; i++) {
			item *it = &R->items[i];
			apply_action a = res_of(R, it->ri)->action;
			if (it->attempted || a == APPLY_SKIPPED) {
				todo++;
				done += it->attempted && a != APPLY_FAILED;
			}
		}
		R->res->stopped = 1;
		R->res->message = plumb_asprintf("stopped at a failed write: %zu of %zu objects to write "
			"were applied; nothing pruned (the next attempt continues from there)", done, todo);
	}
cleanup:
	apply_inventory_free(&next);
	return err;
}

/* ---- prune ---------------------------------------------------------------- */

static void prune_one(run *R, size_t i)
{
	cand *c = &R->cands[i];
	apply_object_result *r = res_of(R, c->ri);
	const cJSON *live;
	cJSON *got = NULL;
	const char *pa;
	int err;

	if (!c->resolved || r->action != APPLY_UNCHANGED)
		return;
	live = plumb_map_get(&R->live, c->key);
	if (!live) {
		/* not among the labelled objects: gone, or someone took it over */
		err = kube_get(&got, R->e->c, c->res, *c->e.ns ? c->e.ns : NULL, c->e.name);
		if (err == PLUMB_ENOTFOUND) {
			c->hidden = 1;
			goto cleanup;
		}
		if (err) {
			fail_item(r, err);
			c->keep = 1;
			goto cleanup;
		}
		live = got;
	}
	if (!owned(R, live)) {
		set_outcome(r, APPLY_SKIPPED, "no longer carries this GitSync's labels; not deleted");
		goto cleanup;
	}
	pa = map_get(live, "annotations", APPLY_ANNOTATION_PRUNE);
	if (pa && !strcmp(pa, "disabled")) {
		set_outcome(r, APPLY_SKIPPED, "plumb.dev/prune: disabled; left in the cluster");
		goto cleanup;
	}
	if (meta_get(live, "deletionTimestamp") && !R->o.dry_run) {
		set_outcome(r, APPLY_PRUNED, "already being deleted");
		goto cleanup;
	}
	if (R->o.dry_run) {
		r->action = APPLY_PRUNED;
		goto cleanup;
	}
	atomic_fetch_add(&R->writes, 1);
	err = kube_delete(R->e->c, c->res, *c->e.ns ? c->e.ns : NULL, c->e.name, KUBE_PROPAGATION_BACKGROUND);
	if (err == PLUMB_ENOTFOUND) {
		c->hidden = 1;
	} else if (err) {
		fail_item(r, err);
		c->keep = 1;
	} else {
		r->action = APPLY_PRUNED;
	}
cleanup:
	cJSON_Delete(got);
}

void apply_live_info_of(apply_live_info *info, const cJSON *obj)
{
	const char *rv = meta_get(obj, "resourceVersion");
	const char *lb = map_get(obj, "labels", APPLY_LABEL_GITSYNC);
	const char *h = map_get(obj, "annotations", APPLY_ANNOTATION_HASH);
	const char *pa = map_get(obj, "annotations", APPLY_ANNOTATION_PRUNE);
	memset(info, 0, sizeof(*info));
	snprintf(info->rv, sizeof(info->rv), "%s", rv && strlen(rv) < sizeof(info->rv) ? rv : "");
	snprintf(info->label, sizeof(info->label), "%s", lb && strlen(lb) < sizeof(info->label) ? lb : "");
	snprintf(info->hash, sizeof(info->hash), "%s", h && strlen(h) < sizeof(info->hash) ? h : "");
	info->prune_disabled = pa && !strcmp(pa, "disabled");
	info->deleting = meta_get(obj, "deletionTimestamp") != NULL;
}

/* What prune_one() looks at, from what the cache knows: ownership labels,
 * the prune annotation and whether deletion started. */
static cJSON *skeleton_of(const apply_live_info *info)
{
	cJSON *o = cJSON_CreateObject(), *m, *l, *a;
	if (!o || !(m = cJSON_AddObjectToObject(o, "metadata")) ||
	    !(l = cJSON_AddObjectToObject(m, "labels")) ||
	    !(a = cJSON_AddObjectToObject(m, "annotations"))) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddStringToObject(l, APPLY_LABEL_MANAGED_BY, APPLY_FIELD_MANAGER);
	if (info->label[0])
		cJSON_AddStringToObject(l, APPLY_LABEL_GITSYNC, info->label);
	if (info->prune_disabled)
		cJSON_AddStringToObject(a, APPLY_ANNOTATION_PRUNE, "disabled");
	if (info->deleting)
		cJSON_AddStringToObject(m, "deletionTimestamp", "set");
	return o;
}

static void prune(run *R, size_t *idx)
{
	for (size_t i = 0; i < R->ncands; i++) {
		cand *c = &R->cands[i];
		apply_object_result *r = res_of(R, c->ri);
		char av[400];
		int err;

		snprintf(av, sizeof(av), "%s%s%s", c->e.group, *c->e.group ? "/" : "", c->e.version);
		err = resolve_interned(&c->res, R, av, c->e.kind);
		if (err == PLUMB_ENOTFOUND) {
			c->hidden = 1;   /* its kind is gone, and the objects with it */
			continue;
		}
		if (err) {
			fail_item(r, err);
			c->keep = 1;
			continue;
		}
		c->resolved = 1;
		c->cls = apply_prune_class(c->res->group, c->res->kind, c->res->namespaced);
		int got = -1;
		cJSON *obj = NULL;
		if (R->o.live) {
			apply_live_info info;
			memset(&info, 0, sizeof(info));
			got = R->o.live(&info, R->o.live_data, c->res, c->e.ns, c->e.name);
			obj = got == 1 ? (info.obj ? info.obj : skeleton_of(&info)) : NULL;
			if (got == 1 && !obj)
				got = -1;
		}
		if (got < 0 && (err = list_labelled(R, c->res))) {
			fail_item(r, err);
			c->keep = 1;
			c->resolved = 0;
		} else if (got == 1) {
			/* kept alive with the lists */
			if (R->nlists == R->alists) {
				size_t na = R->alists ? R->alists * 2 : 16;
				cJSON **l = realloc(R->lists, na * sizeof(*l));
				if (l) {
					R->lists = l;
					R->alists = na;
				}
			}
			if (R->nlists < R->alists && !plumb_map_put(&R->live, c->key, obj, NULL)) {
				R->lists[R->nlists++] = obj;
				obj = NULL;
			}
		}
		cJSON_Delete(obj);
	}
	for (int cls = 0; cls < 4; cls++) {
		size_t n = 0;
		for (size_t i = 0; i < R->ncands; i++)
			if (R->cands[i].resolved && R->cands[i].cls == cls)
				idx[n++] = i;
		run_parallel(R, prune_one, idx, n);
	}
}

/* ---- the run -------------------------------------------------------------- */

static int result_init(apply_object_result *r, const char *av, const char *kind,
	const char *ns, const char *name)
{
	r->api_version = plumb_strdup(av);
	r->kind = plumb_strdup(kind);
	r->ns = plumb_strdup(ns ? ns : "");
	r->name = plumb_strdup(name);
	r->message = plumb_strdup("");
	r->action = APPLY_UNCHANGED;
	if (!r->api_version || !r->kind || !r->ns || !r->name || !r->message)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	return 0;
}

static int build_items(run *R, cJSON *desired, int take)
{
	cJSON *src, *next;
	size_t i = 0;
	int err;

	R->n = (size_t)cJSON_GetArraySize(desired);
	R->items = calloc(R->n ? R->n : 1, sizeof(*R->items));
	if (!R->items)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (src = desired->child; src; src = next) {
		item *it = &R->items[i];
		next = src->next;
		const cJSON *av = cJSON_GetObjectItemCaseSensitive(src, "apiVersion");
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(src, "kind");
		const char *name = meta_get(src, "name"), *ns = meta_get(src, "namespace");

		if (!cJSON_IsString(av) || !cJSON_IsString(kind) || !name || !*name)
			return plumb_error_set(PLUMB_EINVALID, "apply: desired object %zu lacks apiVersion, kind or metadata.name", i);
		if (!(it->obj = take ? cJSON_DetachItemViaPointer(desired, src) : cJSON_Duplicate(src, 1)))
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(it->obj, "metadata"),
			"managedFields");
		cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(it->obj, "metadata"),
			"resourceVersion");
		cJSON_DeleteItemFromObjectCaseSensitive(it->obj, "status");
		/* owned: the object itself is dropped once processed */
		it->kind = plumb_strdup(cJSON_GetObjectItemCaseSensitive(it->obj, "kind")->valuestring);
		it->name = plumb_strdup(meta_get(it->obj, "name"));
		if (!it->kind || !it->name)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		{
			const char *slash = strchr(av->valuestring, '/');
			it->group = slash ? plumb_strndup(av->valuestring, (size_t)(slash - av->valuestring)) : plumb_strdup("");
			it->version = plumb_strdup(slash ? slash + 1 : av->valuestring);
			if (!it->group || !it->version)
				return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
		it->ns = plumb_strdup(ns ? ns : "");
		it->key = make_key(it->group, it->kind, it->ns, it->name);
		if (!it->ns || !it->key)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		it->cls = apply_object_class(it->group, it->kind, *it->ns != 0);
		it->ri = i;
		it->origin = i < R->o.norigins && R->o.origins ? R->o.origins[i] : NULL;
		if ((err = apply_secret_normalize(it->obj)))
			return it->origin ? plumb_error_prefix(err, "%s", it->origin) : err;
		if ((err = prepare_object(R, it)))
			return err;
		i++;
	}
	return 0;
}

static int inventory_of_items(run *R, apply_inventory *out, int final)
{
	int err;
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		apply_action a = res_of(R, it->ri)->action;
		if (final) {
			if (a == APPLY_CONFLICT)
				continue;
			if ((a == APPLY_FAILED || a == APPLY_SKIPPED) && !it->in_old && !it->attempted)
				continue;
		}
		if ((err = apply_inventory_add(out, it->resolved ? it->res->group : it->group,
			it->resolved ? it->res->version : it->version, it->kind, it->ns, it->name)))
			return err;
	}
	return 0;
}

static void run_free(run *R)
{
	for (size_t i = 0; i < R->n; i++) {
		cJSON_Delete(R->items[i].obj);
		cJSON_Delete(R->items[i].owned_live);
		free(R->items[i].group);
		free(R->items[i].version);
		free(R->items[i].kind);
		free(R->items[i].name);
		free(R->items[i].ns);
		free(R->items[i].key);
	}
	free(R->items);
	for (size_t i = 0; i < R->ncands; i++) {
		cand *c = &R->cands[i];
		free(c->key);
		free(c->e.group);
		free(c->e.version);
		free(c->e.kind);
		free(c->e.ns);
		free(c->e.name);
	}
	free(R->cands);
	for (size_t i = 0; i < R->nlists; i++)
		cJSON_Delete(R->lists[i]);
	free(R->lists);
	plumb_map_free(&R->want, NULL);
	plumb_map_free(&R->kinds, free);
	plumb_map_free(&R->live, NULL);
	plumb_map_free(&R->unowned, NULL);
	plumb_map_free(&R->listed, NULL);
	plumb_map_free(&R->exist_listed, NULL);
}

/* An entry stays while it has a value (a dropped entry keeps its key, with no
 * value, until the run's end) and the revision still holds the object. */
static int wanted(const char *key, void *val, void *data)
{
	return val && plumb_map_has(&((run *)data)->want, key);
}

static void compact_results(run *R)
{
	apply_result *res = R->res;
	size_t w = 0;
	unsigned char *hidden = calloc(res->count + 1, 1);
	if (!hidden)
		return;   /* keep them all: reported, not lost */
	for (size_t c = 0; c < R->ncands; c++)
		if (R->cands[c].hidden && R->cands[c].ri < res->count)
			hidden[R->cands[c].ri] = 1;
	for (size_t i = 0; i < res->count; i++) {
		if (hidden[i]) {
			object_result_clear(&res->objects[i]);
			continue;
		}
		res->objects[w++] = res->objects[i];
	}
	res->count = w;
	free(hidden);
}

static int engine_run(apply_result *out, apply_engine *e, cJSON *desired, int take,
	const apply_opts *opts);

int apply_engine_run(apply_result *out, apply_engine *e, const cJSON *desired,
	const apply_opts *opts)
{
	/* not taken: build_items() only reads it */
	return engine_run(out, e, (cJSON *)desired, 0, opts);
}

int apply_engine_run_take(apply_result *out, apply_engine *e, cJSON *desired,
	const apply_opts *opts)
{
	int err = engine_run(out, e, desired, 1, opts);
	cJSON_Delete(desired);
	return err;
}

/* plumbctl diff: what a real run would do, all of it dryRun=All. Kinds a
 * CRD of the revision will serve, and objects in a Namespace it creates,
 * cannot be judged before those exist: they are shown as created. */
static void plan_dry_run(run *R, plumb_map *neg, size_t *idx)
{
	for (size_t i = 0; i < R->n; i++)
		if (R->items[i].cls == 0)
			resolve_item(R, &R->items[i], neg);
	process_class(R, 0, idx);
	skip_dependents(R, 1);
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		kube_resource served;
		if (it->cls == 0 || it->resolved || res_of(R, it->ri)->action != APPLY_UNCHANGED)
			continue;
		/* Only a kind not served yet is "created with its CRD"; a kind the
		 * cluster already serves is planned like any other. */
		if (crd_of(R, it) && kube_resolve_object(&served, R->e->c, it->obj) != 0) {
			set_outcome(res_of(R, it->ri), APPLY_CREATED, "its CustomResourceDefinition is applied first");
			continue;
		}
		resolve_item(R, it, neg);
	}
	process_class(R, 1, idx);
	skip_dependents(R, 2);
	process_class(R, 2, idx);
	process_class(R, 3, idx);
}

static int engine_run(apply_result *out, apply_engine *e, cJSON *desired, int take,
	const apply_opts *opts)
{
	run R;
	apply_result *res = out;
	apply_inventory next = { 0 };
	plumb_map neg = { 0 };
	size_t *idx = NULL;
	int err = 0, prune_ok;

	memset(out, 0, sizeof(*out));
	memset(&R, 0, sizeof(R));
	if (!e || !cJSON_IsArray(desired))
		return plumb_error_set(PLUMB_EINVALID, "apply: desired objects must be an array");
	R.e = e;
	if (opts)
		R.o = *opts;
	if (R.o.crd_wait <= 0)
		R.o.crd_wait = 60;
	if (!R.o.parallel)
		R.o.parallel = 8;
	if (!R.o.inventory_namespace)
		R.o.inventory_namespace = APPLY_INVENTORY_NAMESPACE;
	R.res = res;
	res->dry_run = R.o.dry_run;
	atomic_init(&R.writes, 0);
	atomic_init(&R.dry_runs, 0);
	atomic_init(&R.stop, 0);

	pthread_mutex_lock(&e->run_lock);
	if ((err = build_items(&R, desired, take)))
		goto cleanup;
	if ((err = apply_inv_load(&e->inv, e->c, R.o.inventory_namespace, e->head_name, e->gitsync_id)))
		goto cleanup;

	/* what is desired, and what of the inventory is not */
	for (size_t i = 0; i < R.n; i++)
		if ((err = plumb_map_put(&R.want, R.items[i].key, &R.items[i], NULL)))
			goto cleanup;
	R.cands = calloc(e->inv.inv.count ? e->inv.inv.count : 1, sizeof(*R.cands));
	if (!R.cands) {
		err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < e->inv.inv.count; i++) {
		apply_inventory_entry *ie = &e->inv.inv.items[i];
		char *key = make_key(ie->group, ie->kind, ie->ns, ie->name);
		item *it;
		if (!key) {
			err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		if ((it = plumb_map_get(&R.want, key))) {
			it->in_old = 1;
			free(key);
			continue;
		}
		{
			cand *c = &R.cands[R.ncands++];
			c->key = key;
			c->e.group = plumb_strdup(ie->group);
			c->e.version = plumb_strdup(ie->version);
			c->e.kind = plumb_strdup(ie->kind);
			c->e.ns = plumb_strdup(ie->ns);
			c->e.name = plumb_strdup(ie->name);
			if (!c->e.group || !c->e.version || !c->e.kind || !c->e.ns || !c->e.name) {
				err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
				goto cleanup;
			}
		}
	}
	res->objects = calloc(R.n + R.ncands + 1, sizeof(*res->objects));
	idx = calloc(R.n + R.ncands + 1, sizeof(*idx));
	if (!res->objects || !idx) {
		err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < R.n; i++) {
		item *it = &R.items[i];
		const cJSON *av = cJSON_GetObjectItemCaseSensitive(it->obj, "apiVersion");
		if ((err = result_init(&res->objects[res->count++], av->valuestring, it->kind, it->ns, it->name)))
			goto cleanup;
	}
	for (size_t i = 0; i < R.ncands; i++) {
		cand *c = &R.cands[i];
		char av[400];
		snprintf(av, sizeof(av), "%s%s%s", c->e.group, *c->e.group ? "/" : "", c->e.version);
		c->ri = res->count;
		c->keep = 1;
		if ((err = result_init(&res->objects[res->count++], av, c->e.kind, c->e.ns, c->e.name)))
			goto cleanup;
	}

	if (!R.o.dry_run) {
		if ((err = validate_and_write(&R, &neg, idx)))
			goto cleanup;
	} else {
		plan_dry_run(&R, &neg, idx);
	}

	/* prune */
	prune_ok = R.o.prune;
	if (prune_ok && R.ncands) {
		/* prune only after every object of the revision went in */
		size_t bad = 0;
		for (size_t i = 0; i < R.n; i++) {
			apply_action a = res_of(&R, R.items[i].ri)->action;
			bad += a == APPLY_FAILED || a == APPLY_CONFLICT || a == APPLY_SKIPPED;
		}
		if (bad) {
			prune_ok = 0;
			res->pruning_held = 1;
			for (size_t i = 0; i < R.ncands; i++)
				set_outcome(res_of(&R, R.cands[i].ri), APPLY_SKIPPED, res->invalid ?
					"not pruned: the revision failed validation" :
					"not pruned: not every object of the revision was applied");
		}
	}
	if (prune_ok && R.n == 0 && R.ncands && !R.o.allow_empty) {
		prune_ok = 0;
		res->message = plumb_asprintf("the desired set is empty: %zu inventory objects kept "
			"(pass allow-empty to prune them)", R.ncands);
	}
	if (prune_ok) {
		for (size_t i = 0; i < R.ncands; i++)
			R.cands[i].keep = 0;
		prune(&R, idx);
	}
	for (size_t i = 0; i < R.ncands; i++) {
		cand *c = &R.cands[i];
		if (!prune_ok && !res->pruning_held)
			set_outcome(res_of(&R, c->ri), APPLY_SKIPPED, R.o.prune ? "desired set empty" : "prune off");
		if (c->keep && (err = apply_inventory_add(&next, c->e.group, c->e.version, c->e.kind,
			c->e.ns, c->e.name)))
			goto cleanup;
	}

	/* forget objects no longer desired (pruned, or left) */
	if (!R.o.dry_run) {
		pthread_mutex_lock(&e->lock);
		plumb_map_retain(&e->state, wanted, &R, plumb_keep_free);
		plumb_map_retain(&e->proj, wanted, &R, proj_entry_free);
		e->proj_bytes = 0;
		for (size_t i = 0; i < e->proj.cap; i++)
			if (e->proj.keys[i] && e->proj.vals[i])
				e->proj_bytes += strlen(((proj_entry *)e->proj.vals[i])->proj);
		pthread_mutex_unlock(&e->lock);
	}

	/* narrow the inventory to what is owned now */
	if ((err = inventory_of_items(&R, &next, 1)))
		goto cleanup;
	apply_inventory_normalize(&next);
	res->inventory_entries = next.count;
	if (!R.o.dry_run && !(res->invalid && !res->inventory_written) &&
	    (!apply_inv_equal(&next, &e->inv.inv) || (!e->inv.exists && next.count))) {
		size_t w = 0;
		err = apply_inv_store(&e->inv, e->c, R.o.inventory_namespace, e->head_name,
			e->gitsync_id, e->label, &next, &w);
		atomic_fetch_add(&R.writes, w);
		if (err) {
			plumb_warn("writing the inventory failed", "gitsync", e->gitsync_id, "error", plumb_error_last());
			goto cleanup;
		}
		res->inventory_written = 1;
	}
	err = 0;
cleanup:
	compact_results(&R);
	for (size_t i = 0; i < res->count; i++)
		res->totals[res->objects[i].action]++;
	res->writes = atomic_load(&R.writes);
	res->dry_runs = atomic_load(&R.dry_runs);
	run_free(&R);
	apply_inventory_free(&next);
	plumb_map_free(&neg, free);
	free(idx);
	pthread_mutex_unlock(&e->run_lock);
	return err;
}
