/*
 * pkg/apply: prune — deleting the inventory objects a revision no longer
 * holds, in reverse class order (namespaced objects first, Namespaces
 * last), and only those still labelled for this GitSync and not marked
 * plumb.dev/prune: disabled.
 *
 * Threads: the caller's thread resolves the candidates and finds what is
 * live (cache or one labelled LIST per kind); prune_one() runs on the pool
 * (pool.c), each candidate on one thread.
 */
#include "apply/apply_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void prune_one(run *R, size_t i)
{
	cand *c = &R->cands[i];
	apply_object_result *r = apply_res_of(R, c->ri);
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
			apply_fail_item(r, err);
			c->keep = 1;
			goto cleanup;
		}
		live = got;
	}
	if (!apply_owned(R, live)) {
		apply_set_outcome(r, APPLY_SKIPPED, "no longer carries this GitSync's labels; not deleted");
		goto cleanup;
	}
	pa = apply_map_get(live, "annotations", APPLY_ANNOTATION_PRUNE);
	if (pa && !strcmp(pa, "disabled")) {
		apply_set_outcome(r, APPLY_SKIPPED, "plumb.dev/prune: disabled; left in the cluster");
		goto cleanup;
	}
	if (apply_meta_get(live, "deletionTimestamp") && !R->o.dry_run) {
		apply_set_outcome(r, APPLY_PRUNED, "already being deleted");
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
		apply_fail_item(r, err);
		c->keep = 1;
	} else {
		r->action = APPLY_PRUNED;
	}
cleanup:
	cJSON_Delete(got);
}

void apply_live_info_of(apply_live_info *info, const cJSON *obj)
{
	const char *rv = apply_meta_get(obj, "resourceVersion");
	const char *lb = apply_map_get(obj, "labels", APPLY_LABEL_GITSYNC);
	const char *h = apply_map_get(obj, "annotations", APPLY_ANNOTATION_HASH);
	const char *pa = apply_map_get(obj, "annotations", APPLY_ANNOTATION_PRUNE);
	memset(info, 0, sizeof(*info));
	snprintf(info->rv, sizeof(info->rv), "%s", rv && strlen(rv) < sizeof(info->rv) ? rv : "");
	snprintf(info->label, sizeof(info->label), "%s", lb && strlen(lb) < sizeof(info->label) ? lb : "");
	snprintf(info->hash, sizeof(info->hash), "%s", h && strlen(h) < sizeof(info->hash) ? h : "");
	info->prune_disabled = pa && !strcmp(pa, "disabled");
	info->deleting = apply_meta_get(obj, "deletionTimestamp") != NULL;
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

void apply_prune(run *R, size_t *idx)
{
	for (size_t i = 0; i < R->ncands; i++) {
		cand *c = &R->cands[i];
		apply_object_result *r = apply_res_of(R, c->ri);
		char av[400];
		int err;

		snprintf(av, sizeof(av), "%s%s%s", c->e.group, *c->e.group ? "/" : "", c->e.version);
		err = apply_resolve_interned(&c->res, R, av, c->e.kind);
		if (err == PLUMB_ENOTFOUND) {
			c->hidden = 1;   /* its kind is gone, and the objects with it */
			continue;
		}
		if (err) {
			apply_fail_item(r, err);
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
		if (got < 0 && (err = apply_list_labelled(R, c->res))) {
			apply_fail_item(r, err);
			c->keep = 1;
			c->resolved = 0;
		} else if (got == 1) {
			/* kept alive with the lists */
			if (!apply_lists_reserve(R) && !plumb_map_put(&R->live, c->key, obj, NULL)) {
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
		apply_run_parallel(R, prune_one, idx, n);
	}
}
