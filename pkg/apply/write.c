/*
 * pkg/apply: one desired object on a pool thread. apply_process_item()
 * judges it against what is live (created, updated, unchanged, drifted or
 * corrected, conflict, failed), with a dry run in place of the write while
 * the revision is validated; apply_write_item() sends the write of a
 * validated object; apply_wait_crd() waits for a CRD to be Established.
 *
 * Threads: pool threads (pool.c) run these, each on the items it was
 * handed; they set only those items' fields and results, remember through
 * state.c (under e->lock), and count requests in the run's atomics. A
 * failed write sets R->stop (atomic): no further write is sent.
 */
#include "apply/apply_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	const char *gs = apply_map_get(live, "labels", APPLY_LABEL_GITSYNC);
	const char *mb = apply_map_get(live, "labels", APPLY_LABEL_MANAGED_BY);
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

/* Lets go of what is live for it (read, or borrowed from a LIST page). */
static void drop_live(item *it)
{
	cJSON_Delete(it->owned_live);
	it->owned_live = NULL;
	it->live = NULL;
}

/* A processed object is not needed again, except a CRD (dependents and dry
 * runs look at its spec): dropping it at once keeps a large revision from
 * sitting in memory for the whole run. */
void apply_drop_object(item *it)
{
	if (it->cls == 0)
		return;
	cJSON_Delete(it->obj);
	it->obj = NULL;
	drop_live(it);
}

void apply_process_item(run *R, size_t i)
{
	item *it = &R->items[i];
	apply_object_result *r = apply_res_of(R, it->ri);
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
				apply_fail_desired(it, r, plumb_error_last(), err);
				goto cleanup;
			}
			if (got)
				apply_fill_type(got, it->res);
			live = got;
		}
	}
	if (live && it->cls == 0)
		it->established = crd_established(live);
	if (live && !apply_owned(R, live)) {
		if (!R->o.adopt) {
			char *who = owner_of(live);
			apply_set_outcome(r, APPLY_CONFLICT, who ? who : "not managed by this GitSync");
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
				    apply_res_of(R, p->ri)->action == APPLY_CREATED) {
					apply_set_outcome(r, APPLY_CREATED, "its Namespace is created first");
					goto cleanup;
				}
			}
		}
		/* validating a creation: only the verdict matters, not the body */
		if ((err = do_apply(R, it, R->validating ? NULL : &result, R->o.dry_run || R->validating))) {
			apply_fail_desired(it, r, plumb_error_last(), err);
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
			apply_remember_applied(R, it, proj, result);
		goto cleanup;
	}
	if (!adopting) {
		const char *lh = apply_map_get(live, "annotations", APPLY_ANNOTATION_HASH);
		if (lh && !strcmp(lh, it->hash)) {
			/* same desired object: drift check */
			int known;
			if (!(q = apply_project(live, it->obj)) || (err = apply_proj_digest(qh, q))) {
				apply_fail_item(r, plumb_error_set(PLUMB_ENOMEM, "out of memory"));
				goto cleanup;
			}
			known = apply_state_check(R, it, qh);
			if (known == 1) {
				apply_state_set_rv(R, it, apply_meta_get(live, "resourceVersion"));
				goto cleanup;  /* unchanged since plumb applied or verified it */
			}
			if (known < 0 && apply_only_plumb_wrote(live) && apply_has_paths(live, it->obj)) {
				/* nobody but plumb wrote it: what is there is P */
				apply_state_set(R, it, qh, q, apply_meta_get(live, "resourceVersion"));
				goto cleanup;
			}
			/* compare with P: remembered, or computed by a dry run */
			if (!(proj = known == 0 ? apply_state_proj(R, it) : NULL)) {
				if ((err = do_apply(R, it, &result, 1))) {
					apply_fail_desired(it, r, plumb_error_last(), err);
					goto cleanup;
				}
				proj = apply_project(result, it->obj);
				cJSON_Delete(result);
				result = NULL;
			}
			if (!proj || (nd = apply_compare(&fields, proj, live, 1)) < 0) {
				apply_fail_item(r, plumb_error_set(PLUMB_ENOMEM, "out of memory"));
				goto cleanup;
			}
			if (nd == 0) {
				/* changed only where plumb does not look */
				apply_state_set(R, it, qh, proj, apply_meta_get(live, "resourceVersion"));
				goto cleanup;
			}
			if (!R->o.no_diffs)
				apply_unified_diff(&r->diff, live, proj);
			apply_take_fields(r, &fields);
			if (R->o.drift == APPLY_DRIFT_CORRECT && !R->o.dry_run && R->validating) {
				/* the same object as applied before: written with the rest */
				r->action = APPLY_CORRECTED;
				it->pending = 1;
			} else if (R->o.drift == APPLY_DRIFT_CORRECT && !R->o.dry_run) {
				cJSON_Delete(proj);
				proj = NULL;
				if ((err = do_apply(R, it, &result, 0))) {
					apply_fail_item(r, err);
					goto cleanup;
				}
				r->action = APPLY_CORRECTED;
				proj = apply_project(result, it->obj);
				apply_remember_applied(R, it, proj, result);
			} else {
				/* left drifted: read it again next time */
				r->action = APPLY_DRIFTED;
				apply_state_set(R, it, NULL, proj, "");
			}
			goto cleanup;
		}
	}
	/* desired changed (or adopting) */
	if (R->validating && R->o.no_diffs) {
		/* a controller reads neither the diff nor the changed paths of an
		 * update: the dry run is only a verdict */
		if ((err = do_apply(R, it, NULL, 1))) {
			apply_fail_desired(it, r, plumb_error_last(), err);
			goto cleanup;
		}
		r->action = APPLY_UPDATED;
		if (adopting)
			apply_set_message(r, "adopted");
		it->pending = 1;
		goto cleanup;
	}
	if ((err = do_apply(R, it, &result, R->o.dry_run || R->validating))) {
		apply_fail_desired(it, r, plumb_error_last(), err);
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
		apply_take_fields(r, &fields);
	}
	if (!R->o.no_diffs)
		apply_unified_diff(&r->diff, live, proj);
	r->action = APPLY_UPDATED;
	if (adopting)
		apply_set_message(r, "adopted");
	if (R->validating)
		it->pending = 1;
	else
		apply_remember_applied(R, it, proj, result);
cleanup:
	apply_fields_free(&fields);
	cJSON_Delete(got);
	cJSON_Delete(result);
	cJSON_Delete(proj);
	cJSON_Delete(q);
	if (!it->pending)
		apply_drop_object(it);
	else
		drop_live(it);   /* the write needs only the object */
}

/* The write of an object validated before: the real apply, remembered. */
void apply_write_item(run *R, size_t i)
{
	item *it = &R->items[i];
	apply_object_result *r = apply_res_of(R, it->ri);
	cJSON *result = NULL, *proj = NULL;
	int err;

	if (!it->pending)
		return;
	it->pending = 0;
	if (atomic_load(&R->stop)) {
		apply_set_outcome(r, APPLY_SKIPPED, "not applied: an earlier write of this revision failed");
		apply_drop_object(it);
		return;
	}
	if ((err = do_apply(R, it, &result, 0))) {
		atomic_store(&R->stop, 1);
		apply_fail_desired(it, r, plumb_error_last(), err);
	} else {
		proj = apply_project(result, it->obj);
		apply_remember_applied(R, it, proj, result);
	}
	cJSON_Delete(result);
	cJSON_Delete(proj);
	apply_drop_object(it);
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

void apply_wait_crd(run *R, size_t i)
{
	item *it = &R->items[i];
	apply_object_result *r = apply_res_of(R, it->ri);
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
			apply_set_outcome(r, APPLY_FAILED, msg);
			atomic_store(&R->stop, 1);
			return;
		}
		plumb_sleep(delay);
		if (delay < 0.5)
			delay *= 2;
	}
}
