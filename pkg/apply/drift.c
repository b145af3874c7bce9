/*
 * Projection (what the server made of the desired object, DESIGN.md §3a),
 * drift comparison and field-manager attribution on top of pkg/diff.
 */
#include "apply/apply_internal.h"
#include "diff/diff.h"

#include <stdlib.h>
#include <string.h>


/* ---- projection ----------------------------------------------------------- */

cJSON *apply_project(const cJSON *obj, const cJSON *tmpl)
{
	cJSON *out;
	const cJSON *t;

	if (!obj)
		return NULL;
	if (!cJSON_IsObject(tmpl) || !cJSON_IsObject(obj))
		return cJSON_Duplicate(obj, 1);
	out = cJSON_CreateObject();
	if (!out)
		return NULL;
	cJSON_ArrayForEach(t, tmpl) {
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, t->string);
		cJSON *p;
		if (!o)
			continue;
		p = apply_project(o, t);
		if (!p) {
			cJSON_Delete(out);
			return NULL;
		}
		cJSON_AddItemToObject(out, t->string, p);
	}
	return out;
}

int apply_has_paths(const cJSON *obj, const cJSON *tmpl)
{
	const cJSON *t;
	if (!cJSON_IsObject(tmpl))
		return obj != NULL;
	if (!cJSON_IsObject(obj))
		return 0;
	cJSON_ArrayForEach(t, tmpl) {
		const cJSON *o;
		if (cJSON_IsNull(t) || ((cJSON_IsArray(t) || cJSON_IsObject(t)) && !t->child))
			continue;
		o = cJSON_GetObjectItemCaseSensitive(obj, t->string);
		if (!o || !apply_has_paths(o, t))
			return 0;
	}
	return 1;
}

int apply_only_plumb_wrote(const cJSON *obj)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *mf = cJSON_GetObjectItemCaseSensitive(meta, "managedFields");
	const cJSON *e;

	cJSON_ArrayForEach(e, mf) {
		const cJSON *mgr = cJSON_GetObjectItemCaseSensitive(e, "manager");
		const cJSON *op = cJSON_GetObjectItemCaseSensitive(e, "operation");
		const cJSON *sub = cJSON_GetObjectItemCaseSensitive(e, "subresource");
		const cJSON *fs = cJSON_GetObjectItemCaseSensitive(e, "fieldsV1"), *f;
		int only_status = 1;

		if (cJSON_IsString(mgr) && !strcmp(mgr->valuestring, APPLY_FIELD_MANAGER) &&
		    cJSON_IsString(op) && !strcmp(op->valuestring, "Apply") &&
		    !(cJSON_IsString(sub) && *sub->valuestring))
			continue;
		if (cJSON_IsString(sub) && !strcmp(sub->valuestring, "status"))
			continue;
		cJSON_ArrayForEach(f, fs)
			if (strcmp(f->string, "f:status"))
				only_status = 0;
		if (!only_status)
			return 0;
	}
	return 1;
}

/* ---- comparison and managers (pkg/diff) ---------------------------------- */

/* The manager responsible for path in live: a non-plumb owner of the field;
 * when nobody owns it (a removed field), the most recent non-plumb manager;
 * else plumb itself. New string. */
static char *manager_for(const cJSON *live, const char *path)
{
	const cJSON *mf = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(live, "metadata"), "managedFields"), *e;
	diff_owner *owners = NULL;
	size_t n = 0;
	const char *recent = NULL, *recent_time = "";
	char *out = NULL;
	int plumb_owns = 0;

	if (diff_field_owners(&owners, &n, live, path) == 0) {
		for (size_t i = 0; i < n && !out; i++) {
			int is_plumb = !strcmp(owners[i].manager, APPLY_FIELD_MANAGER) &&
				       owners[i].operation && !strcmp(owners[i].operation, "Apply");
			if (is_plumb)
				plumb_owns = 1;
			else
				out = plumb_strdup(owners[i].manager);
		}
		diff_owners_free(owners, n);
	}
	if (out)
		return out;
	if (plumb_owns)
		return plumb_strdup(APPLY_FIELD_MANAGER);
	cJSON_ArrayForEach(e, mf) {
		const cJSON *mgr = cJSON_GetObjectItemCaseSensitive(e, "manager");
		const cJSON *op = cJSON_GetObjectItemCaseSensitive(e, "operation");
		const cJSON *tm = cJSON_GetObjectItemCaseSensitive(e, "time");
		if (!cJSON_IsString(mgr) || (!strcmp(mgr->valuestring, APPLY_FIELD_MANAGER) &&
		    cJSON_IsString(op) && !strcmp(op->valuestring, "Apply")))
			continue;
		if (cJSON_IsString(tm) && strcmp(tm->valuestring, recent_time) >= 0) {
			recent = mgr->valuestring;
			recent_time = tm->valuestring;
		}
	}
	return plumb_strdup(recent ? recent : "");
}

void apply_fields_free(apply_fields *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->count; i++) {
		free(f->items[i].path);
		free(f->items[i].manager);
	}
	free(f->items);
	memset(f, 0, sizeof(*f));
}

int apply_compare(apply_fields *out, const cJSON *want, const cJSON *live, int with_manager)
{
	diff_result d = { 0 };
	int err = diff_objects(&d, want, live, NULL);

	if (err)
		return err;
	for (size_t i = 0; i < d.count && out; i++) {
		apply_field *f;
		if (out->count == out->alloc) {
			size_t na = out->alloc ? out->alloc * 2 : 8;
			apply_field *items = realloc(out->items, na * sizeof(*items));
			if (!items) {
				diff_result_free(&d);
				return plumb_error_set(PLUMB_ENOMEM, "out of memory");
			}
			out->items = items;
			out->alloc = na;
		}
		f = &out->items[out->count++];
		f->path = plumb_strdup(d.paths[i]);
		f->manager = with_manager ? manager_for(live, d.paths[i]) : NULL;
	}
	err = (int)(d.count + d.dropped);
	diff_result_free(&d);
	return err;
}

/* Replaces the values of a Secret's data on both sides, as kubectl diff
 * does: "***" where before and after agree, "*** (before)" and
 * "*** (after)" where they differ. Keys stay: they say what changed. */
static void mask_secret_values(cJSON *live, cJSON *desired)
{
	cJSON *ld = live ? cJSON_GetObjectItemCaseSensitive(live, "data") : NULL;
	cJSON *dd = cJSON_GetObjectItemCaseSensitive(desired, "data");
	cJSON *nl = cJSON_CreateObject(), *nd = cJSON_CreateObject();
	const cJSON *v, *dmap = cJSON_IsObject(dd) ? dd : NULL, *lmap = cJSON_IsObject(ld) ? ld : NULL;
	if (!nl || !nd) {
		cJSON_Delete(nl);
		cJSON_Delete(nd);
		nl = nd = NULL;   /* out of memory: drop the values, keep nothing */
	}
	cJSON_ArrayForEach(v, dmap) {
		const cJSON *o = cJSON_IsObject(ld) ? cJSON_GetObjectItemCaseSensitive(ld, v->string) : NULL;
		int same = o && cJSON_Compare(o, v, 1);
		cJSON_AddStringToObject(nd, v->string, same ? "***" : "*** (after)");
		if (o)
			cJSON_AddStringToObject(nl, v->string, same ? "***" : "*** (before)");
	}
	cJSON_ArrayForEach(v, lmap)
		if (!cJSON_IsObject(dd) || !cJSON_GetObjectItemCaseSensitive(dd, v->string))
			cJSON_AddStringToObject(nl, v->string, "*** (before)");
	cJSON_DeleteItemFromObjectCaseSensitive(desired, "stringData");
	if (live)
		cJSON_DeleteItemFromObjectCaseSensitive(live, "stringData");
	if (dd) {
		cJSON_DeleteItemFromObjectCaseSensitive(desired, "data");
		if (nd)
			cJSON_AddItemToObject(desired, "data", nd), nd = NULL;
	}
	if (ld) {
		cJSON_DeleteItemFromObjectCaseSensitive(live, "data");
		if (nl)
			cJSON_AddItemToObject(live, "data", nl), nl = NULL;
	}
	cJSON_Delete(nl);
	cJSON_Delete(nd);
}

int apply_unified_diff(char **out, const cJSON *live, const cJSON *desired)
{
	char *text = NULL;
	cJSON *ml = NULL, *md = NULL;
	int err;
	*out = NULL;
	if (apply_is_secret(desired) || (live && apply_is_secret(live))) {
		/* no Secret value ever reaches a diff (CI logs, plumbctl output) */
		md = cJSON_Duplicate(desired, 1);
		ml = live ? cJSON_Duplicate(live, 1) : NULL;
		if (!md || (live && !ml)) {
			cJSON_Delete(md);
			cJSON_Delete(ml);
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
		mask_secret_values(ml, md);
		desired = md;
		live = ml;
	}
	err = diff_render(&text, desired, live, NULL);
	cJSON_Delete(md);
	cJSON_Delete(ml);
	if (err)
		return err;
	if (text && !*text) {
		free(text);
		text = NULL;
	}
	*out = text;
	return 0;
}
