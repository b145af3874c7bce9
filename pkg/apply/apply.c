/*
 * The apply engine: ordering, ownership, server-side apply, drift, prune
 * and the inventory round trip. See apply.h for the behaviour.
 *
 * This file holds the engine (apply_engine_new/free/forget, and what the
 * controller asks of it between runs) and a run from end to end
 * (engine_run: the desired items, the prune candidates from the inventory,
 * validate-then-write or the dry-run plan, prune, the inventory written
 * back). The rest, by concern:
 *   object.c     one object: labels, the desired hash, classes, Secrets
 *   result.c     per-object results and the report
 *   state.c      what the engine remembers between runs (hashes, P)
 *   pool.c       the worker pool a run's passes use
 *   live.c       finding out what is live: the cache, LISTs, GETs
 *   write.c      one object on a pool thread: judged, applied, written
 *   order.c      classes, kinds, dependents: the order of the passes
 *   plan.c       a real run (validate, then write) and the dry-run plan
 *   prune.c      deleting what is no longer desired
 *   drift.c      projection, comparison and the unified diff
 *   inventory.c  the inventory ConfigMaps
 *
 * Locks and threads: e->run_lock lets one run at a time use an engine (held
 * by engine_run from start to end, on the caller's thread). e->lock guards
 * e->state, e->proj and e->proj_bytes: pool threads take it in state.c, the
 * caller at a run's end, and any thread (the controller's watch handlers)
 * in apply_engine_verified/tracks/forget. Everything else of a run (run,
 * item, cand) belongs to the run: the caller's thread builds it and works on
 * it between passes; during a pass each pool thread writes only the items
 * and results it was handed (pool.c).
 */
#include "apply/apply_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
	plumb_map_free(&e->proj, apply_proj_entry_free);
	e->proj_bytes = 0;
	apply_inv_state_clear(&e->inv);
	pthread_mutex_unlock(&e->lock);
}

int apply_engine_verified(apply_engine *e, const kube_resource *res, const char *ns,
	const char *name, const char *rv)
{
	char *key;
	int yes = 0;
	if (!e || !res || !name || !rv || !*rv)
		return 0;
	if (!(key = apply_make_key(res->group, res->kind, res->namespaced && ns ? ns : "", name)))
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
	if (!(key = apply_make_key(res->group, res->kind, res->namespaced && ns ? ns : "", name)))
		return 0;
	pthread_mutex_lock(&e->lock);
	yes = plumb_map_has(&e->state, key);
	pthread_mutex_unlock(&e->lock);
	free(key);
	return yes;
}

size_t apply_engine_each(apply_engine *e, apply_each_fn fn, void *data)
{
	size_t n = 0, i = 0;
	const char *key;
	void *v;
	if (!e || !fn)
		return 0;
	pthread_mutex_lock(&e->lock);
	while (plumb_map_next(&e->state, &i, &key, &v)) {
		/* "group/kind/ns/name" (apply_make_key): no part holds a '/' */
		char buf[1024], *part[4];
		size_t len = strlen(key);
		if (len >= sizeof(buf))
			continue;
		memcpy(buf, key, len + 1);
		part[0] = buf;
		int k = 1;
		for (char *p = buf; *p && k < 4; p++)
			if (*p == '/') {
				*p = '\0';
				part[k++] = p + 1;
			}
		if (k < 4)
			continue;
		fn(data, part[0], part[1], part[2], part[3], ((const obj_state *)v)->rv);
		n++;
	}
	pthread_mutex_unlock(&e->lock);
	return n;
}

void apply_engine_free(apply_engine *e)
{
	if (!e)
		return;
	plumb_map_free(&e->state, plumb_keep_free);
	plumb_map_free(&e->proj, apply_proj_entry_free);
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

/* The copy plumb applies: ownership labels, then the hash annotation. */
static int prepare_object(run *R, item *it)
{
	cJSON *meta = apply_ensure_map(it->obj, "metadata"), *labels, *ann;
	if (!meta || !(labels = apply_ensure_map(meta, "labels")))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (apply_set_str(labels, APPLY_LABEL_MANAGED_BY, "plumb") ||
	    apply_set_str(labels, APPLY_LABEL_GITSYNC, R->e->label))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	int err = apply_desired_hash(it->hash, it->obj);
	if (err)
		return err;
	if (!(ann = apply_ensure_map(meta, "annotations")) || apply_set_str(ann, APPLY_ANNOTATION_HASH, it->hash))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	return 0;
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
		const char *name = apply_meta_get(src, "name"), *ns = apply_meta_get(src, "namespace");

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
		it->name = plumb_strdup(apply_meta_get(it->obj, "name"));
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
		it->key = apply_make_key(it->group, it->kind, it->ns, it->name);
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

int apply_inventory_of_items(run *R, apply_inventory *out, int final)
{
	int err;
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		apply_action a = apply_res_of(R, it->ri)->action;
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
			apply_object_result_clear(&res->objects[i]);
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
		char *key = apply_make_key(ie->group, ie->kind, ie->ns, ie->name);
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
		if ((err = apply_validate_and_write(&R, &neg, idx)))
			goto cleanup;
	} else {
		apply_plan_dry_run(&R, &neg, idx);
	}

	/* prune */
	prune_ok = R.o.prune;
	if (prune_ok && R.ncands) {
		/* prune only after every object of the revision went in */
		size_t bad = 0;
		for (size_t i = 0; i < R.n; i++) {
			apply_action a = apply_res_of(&R, R.items[i].ri)->action;
			bad += a == APPLY_FAILED || a == APPLY_CONFLICT || a == APPLY_SKIPPED;
		}
		if (bad) {
			prune_ok = 0;
			res->pruning_held = 1;
			for (size_t i = 0; i < R.ncands; i++)
				apply_set_outcome(apply_res_of(&R, R.cands[i].ri), APPLY_SKIPPED, res->invalid ?
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
		apply_prune(&R, idx);
	}
	for (size_t i = 0; i < R.ncands; i++) {
		cand *c = &R.cands[i];
		if (!prune_ok && !res->pruning_held)
			apply_set_outcome(apply_res_of(&R, c->ri), APPLY_SKIPPED, R.o.prune ? "desired set empty" : "prune off");
		if (c->keep && (err = apply_inventory_add(&next, c->e.group, c->e.version, c->e.kind,
			c->e.ns, c->e.name)))
			goto cleanup;
	}

	/* forget objects no longer desired (pruned, or left) */
	if (!R.o.dry_run) {
		pthread_mutex_lock(&e->lock);
		plumb_map_retain(&e->state, wanted, &R, plumb_keep_free);
		plumb_map_retain(&e->proj, wanted, &R, apply_proj_entry_free);
		e->proj_bytes = 0;
		for (size_t i = 0; i < e->proj.cap; i++)
			if (e->proj.keys[i] && e->proj.vals[i])
				e->proj_bytes += strlen(((proj_entry *)e->proj.vals[i])->proj);
		pthread_mutex_unlock(&e->lock);
	}

	/* narrow the inventory to what is owned now */
	if ((err = apply_inventory_of_items(&R, &next, 1)))
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
