/* pkg/kube: discovery — aggregated (apidiscovery.k8s.io/v2) or legacy
 * endpoints, cached per client, refreshed on a miss. */
#include "kube/kube_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGGREGATED_ACCEPT \
	"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"

kube_resource_set *kube_client_disc(kube_client *c, pthread_mutex_t **lock, int **loaded, double **at);

void kube_resource_set_free(kube_resource_set *set)
{
	free(set->items);
	free(set->strs);
	for (size_t i = 0; i < set->npreferred; i++)
		free(set->preferred[i]);
	free(set->preferred);
	memset(set, 0, sizeof(*set));
}

/* Offset of s in the pool, appended unless it is the string at hint (the
 * previous entry's group or version: entries come group by group). */
static int pool_add(uint32_t *off, kube_resource_set *set, const char *s, const uint32_t *hint)
{
	size_t n = strlen(s) + 1;
	if (hint && !strcmp(set->strs + *hint, s)) {
		*off = *hint;
		return 0;
	}
	if (set->strs_len + n > UINT32_MAX)
		return plumb_error_set(PLUMB_ETOOBIG, "discovery: names too long");
	if (set->strs_len + n > set->strs_cap) {
		size_t cap = set->strs_cap ? set->strs_cap : 2048;
		while (cap < set->strs_len + n)
			cap *= 2;
		char *p = realloc(set->strs, cap);
		if (!p)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		set->strs = p;
		set->strs_cap = cap;
	}
	memcpy(set->strs + set->strs_len, s, n);
	*off = (uint32_t)set->strs_len;
	set->strs_len += n;
	return 0;
}

static int set_add(kube_resource_set *set, const kube_resource *r)
{
	const kube_resource_entry *prev = set->len ? &set->items[set->len - 1] : NULL;
	kube_resource_entry e = { 0 };
	if (plumb_array_reserve(&set->items, &set->cap, set->len, sizeof(*set->items), 64))
		return PLUMB_ENOMEM;
	if (pool_add(&e.group, set, r->group, prev ? &prev->group : NULL) < 0 ||
	    pool_add(&e.version, set, r->version, prev ? &prev->version : NULL) < 0 ||
	    pool_add(&e.kind, set, r->kind, NULL) < 0 || pool_add(&e.resource, set, r->resource, NULL) < 0)
		return PLUMB_ENOMEM;
	e.namespaced = r->namespaced != 0;
	e.has_status = r->has_status != 0;
	e.verbs = r->verbs;
	set->items[set->len++] = e;
	return 0;
}

/* Gives back the slack of the arrays once a set is complete. */
static void set_trim(kube_resource_set *set)
{
	void *p;
	if (set->len && set->len < set->cap && (p = realloc(set->items, set->len * sizeof(*set->items)))) {
		set->items = p;
		set->cap = set->len;
	}
	if (set->strs_len && set->strs_len < set->strs_cap && (p = realloc(set->strs, set->strs_len))) {
		set->strs = p;
		set->strs_cap = set->strs_len;
	}
}

void kube_resource_set_get(kube_resource *out, const kube_resource_set *set, size_t i)
{
	const kube_resource_entry *e = &set->items[i];
	/* the names were checked against these sizes when they were added */
	memset(out, 0, sizeof(*out));
	snprintf(out->group, sizeof(out->group), "%s", set->strs + e->group);
	snprintf(out->version, sizeof(out->version), "%s", set->strs + e->version);
	snprintf(out->kind, sizeof(out->kind), "%s", set->strs + e->kind);
	snprintf(out->resource, sizeof(out->resource), "%s", set->strs + e->resource);
	out->namespaced = e->namespaced;
	out->has_status = e->has_status;
	out->verbs = e->verbs;
}

static int set_prefer(kube_resource_set *set, const char *group, const char *version)
{
	for (size_t i = 0; i < set->npreferred; i++) {
		size_t gl = strlen(group);
		if (!strncmp(set->preferred[i], group, gl) && set->preferred[i][gl] == '/')
			return 0;
	}
	char **n = realloc(set->preferred, (set->npreferred + 1) * sizeof(*n));
	if (!n)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	set->preferred = n;
	n[set->npreferred] = plumb_asprintf("%s/%s", group, version);
	if (!n[set->npreferred])
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	set->npreferred++;
	return 0;
}

static unsigned parse_verbs(const cJSON *verbs)
{
	static const char *names[] = { "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection" };
	unsigned v = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, verbs) {
		if (!cJSON_IsString(e))
			continue;
		for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(e->valuestring, names[i]))
				v |= 1u << i;
	}
	return v;
}

static int copy_field(char *dst, size_t dstlen, const char *src)
{
	size_t n = strlen(src);
	if (n >= dstlen)
		return -1;
	memcpy(dst, src, n + 1);
	return 0;
}

int kube_content_type_is_aggregated(const char *ct)
{
	return ct && strstr(ct, "g=apidiscovery.k8s.io") && strstr(ct, "v=v2") &&
		strstr(ct, "as=APIGroupDiscoveryList");
}

int kube_discovery_parse_aggregated(kube_resource_set *set, const char *data, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *items, *g;
	int rc = 0;
	if (!root)
		return plumb_error_set(PLUMB_EPROTO, "aggregated discovery: not JSON");
	items = cJSON_GetObjectItemCaseSensitive(root, "items");
	if (!cJSON_IsArray(items)) {
		rc = plumb_error_set(PLUMB_EPROTO, "aggregated discovery: no items list");
		goto cleanup;
	}
	cJSON_ArrayForEach(g, items) {
		const cJSON *gname = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "metadata"), "name");
		const char *group = cJSON_IsString(gname) ? gname->valuestring : "";
		const cJSON *versions = cJSON_GetObjectItemCaseSensitive(g, "versions"), *v;
		int first = 1;
		if (!cJSON_IsArray(versions)) {
			rc = plumb_error_set(PLUMB_EPROTO, "aggregated discovery: group \"%s\": no versions list", group);
			goto cleanup;
		}
		cJSON_ArrayForEach(v, versions) {
			const cJSON *vname = cJSON_GetObjectItemCaseSensitive(v, "version");
			const cJSON *resources = cJSON_GetObjectItemCaseSensitive(v, "resources"), *r;
			if (!cJSON_IsString(vname)) {
				rc = plumb_error_set(PLUMB_EPROTO, "aggregated discovery: group \"%s\": version without a name", group);
				goto cleanup;
			}
			/* Versions come in preference order. */
			if (first && (rc = set_prefer(set, group, vname->valuestring)) < 0)
				goto cleanup;
			first = 0;
			cJSON_ArrayForEach(r, resources) {
				kube_resource res;
				const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "resource");
				const cJSON *rk = cJSON_GetObjectItemCaseSensitive(r, "responseKind");
				const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rk, "kind");
				const cJSON *scope = cJSON_GetObjectItemCaseSensitive(r, "scope");
				const cJSON *subs = cJSON_GetObjectItemCaseSensitive(r, "subresources"), *s;
				memset(&res, 0, sizeof(res));
				if (!cJSON_IsString(name) || !cJSON_IsString(kind) || !kind->valuestring[0] || !cJSON_IsString(scope)) {
					rc = plumb_error_set(PLUMB_EPROTO,
						"aggregated discovery: %s/%s: a resource without resource, responseKind.kind or scope",
						group, vname->valuestring);
					goto cleanup;
				}
				if (copy_field(res.group, sizeof(res.group), group) < 0 ||
				    copy_field(res.version, sizeof(res.version), vname->valuestring) < 0 ||
				    copy_field(res.kind, sizeof(res.kind), kind->valuestring) < 0 ||
				    copy_field(res.resource, sizeof(res.resource), name->valuestring) < 0) {
					rc = plumb_error_set(PLUMB_EPROTO, "aggregated discovery: %s/%s: name too long", group, vname->valuestring);
					goto cleanup;
				}
				res.namespaced = !strcmp(scope->valuestring, "Namespaced");
				res.verbs = parse_verbs(cJSON_GetObjectItemCaseSensitive(r, "verbs"));
				cJSON_ArrayForEach(s, subs) {
					const cJSON *sn = cJSON_GetObjectItemCaseSensitive(s, "subresource");
					if (cJSON_IsString(sn) && !strcmp(sn->valuestring, "status"))
						res.has_status = 1;
				}
				if ((rc = set_add(set, &res)) < 0)
					goto cleanup;
			}
		}
	}
cleanup:
	cJSON_Delete(root);
	return rc;
}

static void split_gv(char *group, size_t glen, char *version, size_t vlen, const char *gv)
{
	const char *slash = strchr(gv, '/');
	if (!slash) {
		group[0] = '\0';
		snprintf(version, vlen, "%s", gv);
	} else {
		snprintf(group, glen, "%.*s", (int)(slash - gv), gv);
		snprintf(version, vlen, "%s", slash + 1);
	}
}

int kube_discovery_parse_resource_list(kube_resource_set *set, const char *data, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *gv, *resources, *r;
	char group[256], version[64];
	size_t start = set->len;
	int rc = 0;
	if (!root)
		return plumb_error_set(PLUMB_EPROTO, "discovery: APIResourceList is not JSON");
	gv = cJSON_GetObjectItemCaseSensitive(root, "groupVersion");
	resources = cJSON_GetObjectItemCaseSensitive(root, "resources");
	if (!cJSON_IsString(gv) || !cJSON_IsArray(resources)) {
		rc = plumb_error_set(PLUMB_EPROTO, "discovery: APIResourceList without groupVersion or resources");
		goto cleanup;
	}
	split_gv(group, sizeof(group), version, sizeof(version), gv->valuestring);
	cJSON_ArrayForEach(r, resources) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "name");
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(r, "kind");
		const cJSON *nsd = cJSON_GetObjectItemCaseSensitive(r, "namespaced");
		const char *slash;
		kube_resource res;
		if (!cJSON_IsString(name) || !cJSON_IsString(kind)) {
			rc = plumb_error_set(PLUMB_EPROTO, "discovery: %s: a resource without name or kind", gv->valuestring);
			goto cleanup;
		}
		slash = strchr(name->valuestring, '/');
		if (slash) {
			/* "deployments/status": mark the parent. */
			if (!strcmp(slash + 1, "status")) {
				for (size_t i = start; i < set->len; i++) {
					const char *rn = set->strs + set->items[i].resource;
					if (!strncmp(rn, name->valuestring, (size_t)(slash - name->valuestring)) &&
					    rn[slash - name->valuestring] == '\0')
						set->items[i].has_status = 1;
				}
			}
			continue;
		}
		memset(&res, 0, sizeof(res));
		if (copy_field(res.kind, sizeof(res.kind), kind->valuestring) < 0 ||
		    copy_field(res.resource, sizeof(res.resource), name->valuestring) < 0) {
			rc = plumb_error_set(PLUMB_EPROTO, "discovery: %s: name too long", gv->valuestring);
			goto cleanup;
		}
		memcpy(res.group, group, sizeof(res.group));
		memcpy(res.version, version, sizeof(res.version));
		res.namespaced = cJSON_IsTrue(nsd);
		res.verbs = parse_verbs(cJSON_GetObjectItemCaseSensitive(r, "verbs"));
		if ((rc = set_add(set, &res)) < 0)
			goto cleanup;
	}
cleanup:
	cJSON_Delete(root);
	return rc;
}

int kube_discovery_parse_group_list(char ***out, size_t *outlen, kube_resource_set *set,
	const char *data, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *groups, *g;
	char **gvs = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (!root)
		return plumb_error_set(PLUMB_EPROTO, "discovery: APIGroupList is not JSON");
	groups = cJSON_GetObjectItemCaseSensitive(root, "groups");
	if (!cJSON_IsArray(groups)) {
		rc = plumb_error_set(PLUMB_EPROTO, "discovery: APIGroupList without groups");
		goto cleanup;
	}
	cJSON_ArrayForEach(g, groups) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(g, "name");
		const cJSON *pref = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "preferredVersion"), "version");
		const cJSON *versions = cJSON_GetObjectItemCaseSensitive(g, "versions"), *v;
		if (!cJSON_IsString(name) || !cJSON_IsArray(versions)) {
			rc = plumb_error_set(PLUMB_EPROTO, "discovery: APIGroupList: a group without name or versions");
			goto cleanup;
		}
		if (cJSON_IsString(pref) && (rc = set_prefer(set, name->valuestring, pref->valuestring)) < 0)
			goto cleanup;
		cJSON_ArrayForEach(v, versions) {
			const cJSON *gv = cJSON_GetObjectItemCaseSensitive(v, "groupVersion");
			if (!cJSON_IsString(gv)) {
				rc = plumb_error_set(PLUMB_EPROTO, "discovery: group %s: a version without groupVersion", name->valuestring);
				goto cleanup;
			}
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 32;
				char **t = realloc(gvs, nc * sizeof(*t));
				if (!t) {
					rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
					goto cleanup;
				}
				gvs = t;
				cap = nc;
			}
			if (!(gvs[n++] = plumb_strdup(gv->valuestring))) {
				rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
				goto cleanup;
			}
		}
	}
	*out = gvs;
	*outlen = n;
	gvs = NULL;
	n = 0;
cleanup:
	for (size_t i = 0; i < n; i++)
		free(gvs[i]);
	free(gvs);
	cJSON_Delete(root);
	return rc;
}

int kube_resource_set_find(kube_resource *out, const kube_resource_set *set,
	const char *group, const char *version, const char *kind)
{
	const char *pref = NULL;
	const kube_resource_entry *first = NULL;
	size_t gl = strlen(group);
	if (!version) {
		for (size_t i = 0; i < set->npreferred; i++)
			if (!strncmp(set->preferred[i], group, gl) && set->preferred[i][gl] == '/')
				pref = set->preferred[i] + gl + 1;
	}
	for (size_t i = 0; i < set->len; i++) {
		const kube_resource_entry *r = &set->items[i];
		if (strcmp(set->strs + r->group, group) || strcmp(set->strs + r->kind, kind))
			continue;
		if (version) {
			if (!strcmp(set->strs + r->version, version)) {
				kube_resource_set_get(out, set, i);
				return 0;
			}
			continue;
		}
		if (pref && !strcmp(set->strs + r->version, pref)) {
			kube_resource_set_get(out, set, i);
			return 0;
		}
		if (!first)
			first = r;
	}
	if (first) {
		kube_resource_set_get(out, set, (size_t)(first - set->items));
		return 0;
	}
	return PLUMB_ENOTFOUND;
}

/* ---- fetching ---- */

static int get_doc(kube_client *c, kube_resp *resp, const char *path, const char *accept)
{
	char what[300];
	snprintf(what, sizeof(what), "discovery GET %s", path);
	kube_req req = { "GET", "get", path, accept, NULL, NULL, 0, what };
	return kube_client_do(c, &req, resp);
}

static int fetch_legacy_gv(kube_client *c, kube_resource_set *set, const char *gv, int core)
{
	kube_resp resp;
	char path[400];
	int rc;
	snprintf(path, sizeof(path), core ? "/api/%s" : "/apis/%s", gv);
	rc = get_doc(c, &resp, path, NULL);
	if (rc == 0)
		rc = kube_discovery_parse_resource_list(set, resp.body.ptr ? resp.body.ptr : "", resp.body.len);
	else if (rc == PLUMB_ENOTFOUND || rc == PLUMB_EUNAVAILABLE)
		rc = 0;  /* an unavailable aggregated API must not hide every other group */
	plumb_buf_free(&resp.body);
	return rc;
}

static int fetch_root(kube_client *c, kube_resource_set *set, int core)
{
	kube_resp resp;
	int rc = get_doc(c, &resp, core ? "/api" : "/apis", AGGREGATED_ACCEPT);
	char **gvs = NULL;
	size_t n = 0;
	if (rc < 0)
		goto cleanup;
	if (kube_content_type_is_aggregated(resp.content_type)) {
		rc = kube_discovery_parse_aggregated(set, resp.body.ptr ? resp.body.ptr : "", resp.body.len);
		goto cleanup;
	}
	if (core) {
		/* APIVersions: {"versions":["v1"]} */
		cJSON *root = cJSON_ParseWithLength(resp.body.ptr ? resp.body.ptr : "", resp.body.len);
		const cJSON *vs = cJSON_GetObjectItemCaseSensitive(root, "versions"), *v;
		if (!cJSON_IsArray(vs)) {
			cJSON_Delete(root);
			rc = plumb_error_set(PLUMB_EPROTO, "discovery GET /api: no versions list");
			goto cleanup;
		}
		cJSON_ArrayForEach(v, vs) {
			if (cJSON_IsString(v)) {
				if (v == vs->child)
					set_prefer(set, "", v->valuestring);
				if ((rc = fetch_legacy_gv(c, set, v->valuestring, 1)) < 0)
					break;
			}
		}
		cJSON_Delete(root);
		goto cleanup;
	}
	if ((rc = kube_discovery_parse_group_list(&gvs, &n, set, resp.body.ptr ? resp.body.ptr : "", resp.body.len)) < 0)
		goto cleanup;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = fetch_legacy_gv(c, set, gvs[i], 0);
cleanup:
	for (size_t i = 0; i < n; i++)
		free(gvs[i]);
	free(gvs);
	plumb_buf_free(&resp.body);
	return rc;
}

int kube_discovery_refresh(kube_client *c)
{
	kube_resource_set fresh = { 0 }, *set;
	pthread_mutex_t *lock;
	int *loaded, rc;
	double *at;
	if ((rc = fetch_root(c, &fresh, 1)) < 0 || (rc = fetch_root(c, &fresh, 0)) < 0) {
		kube_resource_set_free(&fresh);
		return rc;
	}
	set_trim(&fresh);
	set = kube_client_disc(c, &lock, &loaded, &at);
	pthread_mutex_lock(lock);
	kube_resource_set_free(set);
	*set = fresh;
	*loaded = 1;
	*at = plumb_time_mono();
	pthread_mutex_unlock(lock);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void kube_api_versions_free(char **list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i]);
	free(list);
}

int kube_api_versions(char ***out, size_t *n, kube_client *c, size_t max)
{
	pthread_mutex_t *lock;
	int *loaded, rc = 0;
	double *at;
	kube_resource_set *set = kube_client_disc(c, &lock, &loaded, &at);
	char **list = NULL;
	size_t len = 0;
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(lock);
	int was_loaded = *loaded;
	pthread_mutex_unlock(lock);
	if (!was_loaded && (rc = kube_discovery_refresh(c)) < 0)
		return rc;
	pthread_mutex_lock(lock);
	size_t cap = set->len * 2;
	if (!(list = calloc(cap ? cap : 1, sizeof(*list))))
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (size_t i = 0; !rc && i < set->len && len + 2 <= cap; i++) {
		const kube_resource_entry *e = &set->items[i];
		const char *g = set->strs + e->group, *v = set->strs + e->version, *k = set->strs + e->kind;
		list[len] = g[0] ? plumb_asprintf("%s/%s", g, v) : plumb_strdup(v);
		list[len + 1] = g[0] ? plumb_asprintf("%s/%s/%s", g, v, k) : plumb_asprintf("%s/%s", v, k);
		len += 2;
		if (!list[len - 2] || !list[len - 1])
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(lock);
	if (!rc) {
		qsort(list, len, sizeof(*list), cmp_str);
		size_t k = 0;
		for (size_t i = 0; i < len; i++) {
			if (k && !strcmp(list[k - 1], list[i])) {
				free(list[i]);
				continue;
			}
			list[k++] = list[i];
		}
		len = k;
		if (len > max)
			rc = plumb_error_set(PLUMB_ETOOBIG, "cluster %s serves more than %zu API versions and kinds",
				kube_client_name(c), max);
	}
	if (rc) {
		kube_api_versions_free(list, len);
		return rc;
	}
	*out = list;
	*n = len;
	return 0;
}

static int resolve(kube_resource *out, kube_client *c, const char *group, const char *version, const char *kind)
{
	pthread_mutex_t *lock;
	int *loaded, rc, was_loaded;
	double *at, seen_at;
	kube_resource_set *set = kube_client_disc(c, &lock, &loaded, &at);

	pthread_mutex_lock(lock);
	was_loaded = *loaded;
	seen_at = *at;
	rc = was_loaded ? kube_resource_set_find(out, set, group, version, kind) : PLUMB_ENOTFOUND;
	pthread_mutex_unlock(lock);
	if (rc == 0)
		return 0;
	/* Unknown: maybe a CRD applied a moment ago. Refresh once, unless another
	 * thread refreshed since we looked. */
	pthread_mutex_lock(lock);
	int fresh = *loaded && *at > seen_at;
	pthread_mutex_unlock(lock);
	if (!fresh && (rc = kube_discovery_refresh(c)) < 0)
		return rc;
	pthread_mutex_lock(lock);
	rc = kube_resource_set_find(out, set, group, version, kind);
	pthread_mutex_unlock(lock);
	if (rc < 0)
		return plumb_error_set(PLUMB_ENOTFOUND, "kind %s%s%s%s%s is not served by cluster %s", kind,
			group[0] || version ? " in " : "", group, version ? "/" : "", version ? version : "",
			kube_client_name(c));
	return 0;
}

int kube_resolve(kube_resource *out, kube_client *c, const char *api_version, const char *kind)
{
	char group[256], version[64];
	if (!api_version || !*api_version || !kind || !*kind)
		return plumb_error_set(PLUMB_EINVALID, "resolve: apiVersion and kind are required");
	if (strlen(api_version) >= sizeof(group))
		return plumb_error_set(PLUMB_EINVALID, "resolve: apiVersion too long");
	split_gv(group, sizeof(group), version, sizeof(version), api_version);
	return resolve(out, c, group, version, kind);
}

int kube_resolve_object(kube_resource *out, kube_client *c, const cJSON *obj)
{
	const cJSON *av = cJSON_GetObjectItemCaseSensitive(obj, "apiVersion");
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(obj, "kind");
	if (!cJSON_IsString(av) || !cJSON_IsString(k))
		return plumb_error_set(PLUMB_EINVALID, "object without apiVersion or kind");
	return kube_resolve(out, c, av->valuestring, k->valuestring);
}

int kube_resolve_preferred(kube_resource *out, kube_client *c, const char *group, const char *kind)
{
	if (!group || !kind || !*kind)
		return plumb_error_set(PLUMB_EINVALID, "resolve: group and kind are required");
	return resolve(out, c, group, NULL, kind);
}

void kube_resource_api_version(char *out, size_t outlen, const kube_resource *res)
{
	if (res->group[0])
		snprintf(out, outlen, "%s/%s", res->group, res->version);
	else
		snprintf(out, outlen, "%s", res->version);
}
