/*
 * pkg/apply: the two ways through a revision. A real run validates the
 * whole revision with dry runs, widens the inventory, then writes it class
 * by class, CRDs waited for (apply_validate_and_write); plumbctl diff plans
 * it with dry runs only (apply_plan_dry_run).
 *
 * Threads: the caller's thread runs these and starts each pass on the pool
 * (pool.c); R->validating is set only between passes.
 */
#include "apply/apply_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t count_failed(run *R)
{
	size_t n = 0;
	for (size_t i = 0; i < R->n; i++)
		if (apply_res_of(R, R->items[i].ri)->action == APPLY_FAILED)
			n++;
	return n;
}

/* Everything of the revision not written yet stays unwritten. */
static void skip_rest(run *R, const char *msg)
{
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		apply_object_result *r = apply_res_of(R, it->ri);
		if (it->pending || (r->action == APPLY_UNCHANGED && !it->done)) {
			it->pending = 0;
			apply_set_outcome(r, APPLY_SKIPPED, msg);
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
		if (apply_res_of(R, it->ri)->action == APPLY_UNCHANGED && !it->resolved)
			apply_resolve_item(R, it, neg);
	}
	apply_process_class(R, 2, idx);
	apply_process_class(R, 3, idx);
}

/* A real run: validate the whole revision, then write it (apply.h). */
int apply_validate_and_write(run *R, plumb_map *neg, size_t *idx)
{
	apply_engine *e = R->e;
	size_t invalid, changed = 0, n = 0, had_deferred = 0;
	apply_inventory next = { 0 };
	int err = 0;

	R->validating = 1;
	for (size_t i = 0; i < R->n; i++)
		if (R->items[i].cls == 0)
			apply_resolve_item(R, &R->items[i], neg);
	apply_process_class(R, 0, idx);
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		item *crd;
		kube_resource served;
		if (it->cls == 0 || it->resolved || apply_res_of(R, it->ri)->action != APPLY_UNCHANGED)
			continue;
		crd = apply_crd_of(R, it);
		if (crd && (crd->pending || kube_resolve_object(&served, e->c, it->obj) != 0)) {
			/* served once this revision's CRD is written */
			it->deferred = 1;
			continue;
		}
		apply_resolve_item(R, it, neg);
		/* against the schema the revision brings, not the one being replaced */
		if (it->resolved && crd && crd->pending)
			it->deferred = 1;
	}
	apply_process_class(R, 1, idx);
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		if (it->cls < 2 || !*it->ns || it->deferred)
			continue;
		for (size_t j = 0; j < R->n; j++) {
			item *p = &R->items[j];
			if (p->cls == 1 && p->pending && !strcmp(p->name, it->ns) &&
			    apply_res_of(R, p->ri)->action == APPLY_CREATED) {
				it->deferred = 1;
				break;
			}
		}
	}
	for (size_t i = 0; i < R->n; i++)
		had_deferred += R->items[i].deferred;
	apply_process_class(R, 2, idx);
	apply_process_class(R, 3, idx);
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
	if ((err = apply_inventory_of_items(R, &next, 0)))
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
	apply_write_class(R, 0, idx);
	for (size_t i = 0; i < R->n; i++) {
		apply_action a = apply_res_of(R, R->items[i].ri)->action;
		if (R->items[i].cls != 0 || !R->items[i].resolved)
			continue;
		idx[n++] = i;
		if (a == APPLY_CREATED || a == APPLY_UPDATED || a == APPLY_CORRECTED)
			changed++;
	}
	if (!atomic_load(&R->stop))
		apply_run_parallel(R, apply_wait_crd, idx, n);
	if (changed && kube_discovery_refresh(e->c))
		plumb_warn("discovery refresh failed", "error", plumb_error_last());
	if (!atomic_load(&R->stop))
		apply_write_class(R, 1, idx);
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
		apply_write_class(R, 2, idx);
	if (!atomic_load(&R->stop))
		apply_write_class(R, 3, idx);
	if (atomic_load(&R->stop)) {
		size_t done = 0, todo = 0;
		skip_rest(R, "not applied: an earlier write of this revision failed");
		for (size_t i = 0; i < R->n; i++) {
			item *it = &R->items[i];
			apply_action a = apply_res_of(R, it->ri)->action;
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

/* plumbctl diff: what a real run would do, all of it dryRun=All. Kinds a
 * CRD of the revision will serve, and objects in a Namespace it creates,
 * cannot be judged before those exist: they are shown as created. */
void apply_plan_dry_run(run *R, plumb_map *neg, size_t *idx)
{
	for (size_t i = 0; i < R->n; i++)
		if (R->items[i].cls == 0)
			apply_resolve_item(R, &R->items[i], neg);
	apply_process_class(R, 0, idx);
	apply_skip_dependents(R, 1);
	for (size_t i = 0; i < R->n; i++) {
		item *it = &R->items[i];
		kube_resource served;
		if (it->cls == 0 || it->resolved || apply_res_of(R, it->ri)->action != APPLY_UNCHANGED)
			continue;
		/* Only a kind not served yet is "created with its CRD"; a kind the
		 * cluster already serves is planned like any other. */
		if (apply_crd_of(R, it) && kube_resolve_object(&served, R->e->c, it->obj) != 0) {
			apply_set_outcome(apply_res_of(R, it->ri), APPLY_CREATED, "its CustomResourceDefinition is applied first");
			continue;
		}
		apply_resolve_item(R, it, neg);
	}
	apply_process_class(R, 1, idx);
	apply_skip_dependents(R, 2);
	apply_process_class(R, 2, idx);
	apply_process_class(R, 3, idx);
}
