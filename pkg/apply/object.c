/*
 * pkg/apply: one object — the action names, the GitSync label value, the
 * desired hash, apply and prune classes, Secret stringData folded into
 * data, and the small metadata helpers every file of the engine uses.
 * Pure functions: any thread.
 */
#include "apply/apply_internal.h"

#include <stdlib.h>
#include <string.h>

#define CRD_GROUP "apiextensions.k8s.io"
#define CRD_KIND "CustomResourceDefinition"

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
int apply_sort_keys(cJSON *v, int depth)
{
	cJSON *c, **arr;
	size_t n = 0, i;
	if (depth > 200)
		return plumb_error_set(PLUMB_ETOOBIG, "object nested too deeply");
	for (c = v ? v->child : NULL; c; c = c->next) {
		int err = apply_sort_keys(c, depth + 1);
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
	if ((err = apply_sort_keys(copy, 0)))
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

const char *apply_meta_get(const cJSON *obj, const char *field)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, field);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *apply_map_get(const cJSON *obj, const char *map, const char *key)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(m, map);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int apply_owned(const run *R, const cJSON *live)
{
	const char *mb = apply_map_get(live, "labels", APPLY_LABEL_MANAGED_BY);
	const char *gs = apply_map_get(live, "labels", APPLY_LABEL_GITSYNC);
	return mb && gs && !strcmp(mb, "plumb") && !strcmp(gs, R->e->label);
}

char *apply_make_key(const char *group, const char *kind, const char *ns, const char *name)
{
	return plumb_asprintf("%s/%s/%s/%s", group, kind, ns ? ns : "", name);
}

cJSON *apply_ensure_map(cJSON *obj, const char *name)
{
	cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (cJSON_IsObject(m))
		return m;
	if (m)
		cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
	return cJSON_AddObjectToObject(obj, name);
}

int apply_set_str(cJSON *map, const char *key, const char *val)
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

/* Items of a JSON List come without apiVersion and kind: put them back so
 * that live objects compare with desired ones. */
void apply_fill_type(cJSON *obj, const kube_resource *res)
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
