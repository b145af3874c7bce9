/*
 * pkg/apply: finding out what is live for the items of a class — from the
 * controller's watch cache (apply_opts.live), one labelled LIST processed
 * page by page for a kind with many objects, one unlabelled LIST for many
 * missing objects of one (kind, namespace), else a GET each (write.c).
 *
 * Threads: the caller's thread runs all of it and fills the run's maps
 * (R->live, R->unowned, R->listed, R->exist_listed) before a pass; a page
 * of a labelled LIST is handed to the pool (process_page) while it is in
 * memory, and pool threads only read those maps.
 */
#include "apply/apply_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXISTENCE_LIST_MIN 16   /* missing objects of one (kind, ns) before one LIST beats GETs */

int apply_lists_reserve(run *R)
{
	if (R->nlists == R->alists) {
		size_t na = R->alists ? R->alists * 2 : 16;
		cJSON **l = realloc(R->lists, na * sizeof(*l));
		if (!l)
			return -1;
		R->lists = l;
		R->alists = na;
	}
	return 0;
}

/* Keeps a LIST answer for the run and indexes its items into m by
 * (group, kind, namespace, name). Takes list over. */
static int keep_list(run *R, cJSON *list, const kube_resource *res, plumb_map *m)
{
	const cJSON *item;
	int err;
	if (apply_lists_reserve(R)) {
		cJSON_Delete(list);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	R->lists[R->nlists++] = list;
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(list, "items")) {
		const char *ns = apply_meta_get(item, "namespace"), *name = apply_meta_get(item, "name");
		apply_fill_type((cJSON *)item, res);
		char *key;
		if (!name)
			continue;
		if (!(key = apply_make_key(res->group, res->kind, res->namespaced && ns ? ns : "", name)))
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		err = plumb_map_put(m, key, (void *)item, NULL);
		free(key);
		if (err)
			return err;
	}
	return 0;
}

/* One labelled LIST of res over all namespaces into R->live. */
int apply_list_labelled(run *R, const kube_resource *res)
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
		const char *ns = apply_meta_get(o, "namespace"), *name = apply_meta_get(o, "name");
		char *key;
		item *it;
		if (!name || !(key = apply_make_key(P->res->group, P->res->kind,
			P->res->namespaced && ns ? ns : "", name)))
			continue;
		it = plumb_map_get(&R->want, key);
		free(key);
		if (!it || it->done || it->live || !it->resolved ||
		    apply_res_of(R, it->ri)->action != APPLY_UNCHANGED)
			continue;
		apply_fill_type(o, P->res);   /* the page is ours until we return */
		it->live = o;
		it->live_state = 1;
		P->idx[n++] = (size_t)(it - R->items);
	}
	apply_run_parallel(R, apply_process_item, P->idx, n);
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
void apply_fetch_live(run *R, size_t cls, size_t *idx)
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
		    apply_state_fast(R, it, info.rv)) {
			/* still at the version plumb applied or verified */
			cJSON_Delete(info.obj);
			it->live_state = 1;
			it->fast = 1;
			it->done = 1;
			apply_drop_object(it);
		} else if (got == 1 && info.obj) {
			apply_fill_type(info.obj, it->res);
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
