/*
 * pkg/apply: the order of a run — resolving each item's kind (once per
 * apiVersion/kind, failures remembered), its class (CRDs, Namespaces,
 * cluster-scoped, namespaced), the CRD of the revision that serves a kind,
 * skipping what depends on a CRD or Namespace that did not make it, and one
 * pass over a class (process_class, write_class).
 *
 * Threads: the caller's thread runs all of it, between passes; the passes
 * themselves run on the pool (pool.c).
 */
#include "apply/apply_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when crd (a CustomResourceDefinition object, may be NULL) defines the
 * kind group/kind. */
static int crd_defines(const cJSON *crd, const char *group, const char *kind)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(crd, "spec");
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(spec, "group");
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(spec, "names"), "kind");
	return cJSON_IsString(g) && cJSON_IsString(k) && !strcmp(g->valuestring, group) &&
	       !strcmp(k->valuestring, kind);
}

/* Skips items whose CRD or Namespace (in this revision) did not make it. */
void apply_skip_dependents(run *R, size_t from_cls)
{
	for (size_t i = 0; i < R->n; i++) {
		item *dep = &R->items[i];
		apply_object_result *dr = apply_res_of(R, dep->ri);
		if ((size_t)dep->cls < from_cls || dr->action != APPLY_UNCHANGED)
			continue;
		for (size_t j = 0; j < R->n; j++) {
			item *p = &R->items[j];
			apply_object_result *pr = apply_res_of(R, p->ri);
			char msg[700];
			/* a conflict means the CRD or Namespace exists: dependents can go in */
			if (pr->action != APPLY_FAILED && pr->action != APPLY_SKIPPED)
				continue;
			if (p->cls == 0) {
				if (!crd_defines(p->obj, dep->group, dep->kind))
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
			apply_set_outcome(dr, APPLY_SKIPPED, msg);
			break;
		}
	}
}

/* kube_resolve() once per (apiVersion, kind) of a run: items share the
 * answer instead of each carrying a copy. */
int apply_resolve_interned(const kube_resource **out, run *R, const char *api_version, const char *kind)
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

void apply_resolve_item(run *R, item *it, plumb_map *neg)
{
	apply_object_result *r = apply_res_of(R, it->ri);
	const cJSON *av = cJSON_GetObjectItemCaseSensitive(it->obj, "apiVersion");
	char nk[600];
	int err;

	if (it->resolved || r->action != APPLY_UNCHANGED)
		return;
	snprintf(nk, sizeof(nk), "%s/%s", av->valuestring, it->kind);
	if (plumb_map_has(neg, nk)) {
		apply_fail_desired(it, r, plumb_map_get(neg, nk), PLUMB_ENOTFOUND);
		return;
	}
	err = apply_resolve_interned(&it->res, R, av->valuestring, it->kind);
	if (err) {
		char *msg = err == PLUMB_ENOTFOUND ?
			plumb_asprintf("unknown kind %s %s: %s", av->valuestring, it->kind, plumb_error_last()) :
			plumb_asprintf("discovery for %s %s: %s", av->valuestring, it->kind, plumb_error_last());
		apply_fail_desired(it, r, msg ? msg : "unknown kind", err);
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
		apply_set_str(apply_ensure_map(it->obj, "metadata"), "namespace", it->ns);
		apply_desired_hash(it->hash, it->obj);
		apply_set_str(apply_ensure_map(apply_ensure_map(it->obj, "metadata"), "annotations"), APPLY_ANNOTATION_HASH, it->hash);
	} else if (!it->res->namespaced && *it->ns) {
		it->ns[0] = 0;
		cJSON_DeleteItemFromObjectCaseSensitive(apply_ensure_map(it->obj, "metadata"), "namespace");
		apply_desired_hash(it->hash, it->obj);
		apply_set_str(apply_ensure_map(apply_ensure_map(it->obj, "metadata"), "annotations"), APPLY_ANNOTATION_HASH, it->hash);
	}
	free(it->key);
	it->key = apply_make_key(it->res->group, it->res->kind, it->ns, it->name);
}

void apply_process_class(run *R, size_t cls, size_t *idx)
{
	size_t n = 0;
	apply_fetch_live(R, cls, idx);
	for (size_t i = 0; i < R->n; i++)
		if ((size_t)R->items[i].cls == cls && R->items[i].resolved && !R->items[i].deferred)
			idx[n++] = i;
	apply_run_parallel(R, apply_process_item, idx, n);
}

/* Sends the validated writes of one class. */
void apply_write_class(run *R, int cls, size_t *idx)
{
	size_t n = 0;
	for (size_t i = 0; i < R->n; i++)
		if (R->items[i].cls == cls && R->items[i].pending)
			idx[n++] = i;
	apply_run_parallel(R, apply_write_item, idx, n);
}

/* The CRD item of this revision that defines its kind, or NULL. */
item *apply_crd_of(run *R, const item *it)
{
	for (size_t j = 0; j < R->n; j++) {
		item *c = &R->items[j];
		if (c->cls != 0 || !c->obj)
			continue;
		if (crd_defines(c->obj, it->group, it->kind))
			return c;
	}
	return NULL;
}
