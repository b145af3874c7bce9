/* pkg/kube: operations on objects — get, paginated list, create, update,
 * delete, server-side apply, merge patch, /status. */
#include "kube/kube_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHAT_MAX 600

/* Percent-escapes everything but RFC 3986 unreserved characters. */
static int escape(plumb_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int rc;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			rc = plumb_buf_append(b, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			rc = plumb_buf_append(b, e, 3);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int kube_resource_path(char **out, const kube_resource *res, const char *ns,
	const char *name, const char *subresource)
{
	plumb_buf b = PLUMB_BUF_INIT(64 * 1024);
	int rc = 0;
	if (!res->version[0] || !res->resource[0])
		return plumb_error_set(PLUMB_EINVALID, "resource path: empty version or resource");
	if (res->group[0]) {
		rc = plumb_buf_puts(&b, "/apis/");
		if (!rc) rc = escape(&b, res->group);
		if (!rc) rc = plumb_buf_puts(&b, "/");
	} else {
		rc = plumb_buf_puts(&b, "/api/");
	}
	if (!rc) rc = escape(&b, res->version);
	if (!rc && res->namespaced && ns && *ns) {
		rc = plumb_buf_puts(&b, "/namespaces/");
		if (!rc) rc = escape(&b, ns);
	}
	if (!rc) rc = plumb_buf_puts(&b, "/");
	if (!rc) rc = escape(&b, res->resource);
	if (!rc && name) {
		if (!*name) {
			plumb_buf_free(&b);
			return plumb_error_set(PLUMB_EINVALID, "%s: empty object name", res->resource);
		}
		rc = plumb_buf_puts(&b, "/");
		if (!rc) rc = escape(&b, name);
	}
	if (!rc && subresource) {
		rc = plumb_buf_puts(&b, "/");
		if (!rc) rc = escape(&b, subresource);
	}
	if (rc < 0) {
		plumb_buf_free(&b);
		return plumb_error_set(rc, "resource path too long");
	}
	*out = plumb_buf_detach(&b);
	return *out ? 0 : plumb_error_set(PLUMB_ENOMEM, "out of memory");
}

static void describe(char *what, const char *method, const kube_resource *res, const char *ns, const char *name)
{
	int n = snprintf(what, WHAT_MAX, "%s %s", method, res->resource);
	if (name && n < WHAT_MAX)
		n += snprintf(what + n, WHAT_MAX - (size_t)n, " \"%s\"", name);
	if (res->namespaced && ns && n < WHAT_MAX)
		snprintf(what + n, WHAT_MAX - (size_t)n, " in ns \"%s\"", ns);
}

static const char *obj_str(const cJSON *obj, const char *field)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, field);
	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* The namespace for a write: explicit, else the object's, else the config's. */
static const char *write_ns(kube_client *c, const kube_resource *res, const char *ns, const cJSON *obj)
{
	if (!res->namespaced)
		return NULL;
	if (ns && *ns)
		return ns;
	if (obj && obj_str(obj, "namespace"))
		return obj_str(obj, "namespace");
	return kube_config_namespace(kube_client_config(c));
}

/* Sends one request; parses a JSON answer into *out when out != NULL. */
static int call(cJSON **out, kube_client *c, const char *method, const char *verb,
	const char *path, const char *ctype, const cJSON *body, const char *what)
{
	kube_resp resp;
	char *text = NULL;
	int rc;
	if (body && !(text = cJSON_PrintUnformatted(body)))
		return plumb_error_set(PLUMB_ENOMEM, "%s: cannot serialise the body", what);
	kube_req req = { method, verb, path, NULL, ctype ? ctype : "application/json",
		text, text ? strlen(text) : 0, what };
	rc = kube_client_do(c, &req, &resp);
	if (rc == 0 && out) {
		cJSON *j = resp.body.len ? cJSON_ParseWithLength(resp.body.ptr, resp.body.len) : NULL;
		if (!j)
			rc = plumb_error_set(PLUMB_EPROTO, "%s: %ld answer is not valid JSON (%zu bytes)", what, resp.status, resp.body.len);
		else
			*out = j;
	}
	plumb_buf_free(&resp.body);
	cJSON_free(text);
	return rc;
}

int kube_request(cJSON **out, kube_client *c, const char *method, const char *path, const cJSON *body)
{
	char what[WHAT_MAX];
	if (!method || !path || path[0] != '/')
		return plumb_error_set(PLUMB_EINVALID, "kube request: want a method and an absolute path");
	snprintf(what, sizeof(what), "%s %s", method, path);
	return call(out, c, method, method, path, NULL, body, what);
}

int kube_server_version(char *out, size_t outlen, kube_client *c)
{
	cJSON *v = NULL;
	int rc = kube_request(&v, c, "GET", "/version", NULL);
	if (rc < 0)
		return rc;
	const cJSON *gv = cJSON_GetObjectItemCaseSensitive(v, "gitVersion");
	if (!cJSON_IsString(gv))
		rc = plumb_error_set(PLUMB_EPROTO, "GET /version: no gitVersion");
	else
		snprintf(out, outlen, "%s", gv->valuestring);
	cJSON_Delete(v);
	return rc;
}

static int get_impl(cJSON **out, kube_client *c, const kube_resource *res, const char *ns,
	const char *name, const char *sub)
{
	char what[WHAT_MAX], *path = NULL;
	int rc;
	if (!name)
		return plumb_error_set(PLUMB_EINVALID, "get %s: no name", res->resource);
	if (res->namespaced && (!ns || !*ns))
		return plumb_error_set(PLUMB_EINVALID, "get %s \"%s\": namespaced resource needs a namespace", res->resource, name);
	if ((rc = kube_resource_path(&path, res, ns, name, sub)) < 0)
		return rc;
	describe(what, "GET", res, ns, name);
	rc = call(out, c, "GET", "get", path, NULL, NULL, what);
	free(path);
	return rc;
}

int kube_get(cJSON **out, kube_client *c, const kube_resource *res, const char *ns, const char *name)
{
	return get_impl(out, c, res, ns, name, NULL);
}

int kube_get_status(cJSON **out, kube_client *c, const kube_resource *res, const char *ns, const char *name)
{
	return get_impl(out, c, res, ns, name, "status");
}

/* ---- list ---- */

typedef int (*page_fn)(cJSON *page, void *data);

static int list_impl(kube_client *c, const kube_resource *res, const char *ns,
	const kube_list_opts *opts, page_fn fn, void *data, char **out_rv, unsigned *out_pages)
{
	kube_list_opts o = { 0 };
	char what[WHAT_MAX], *base = NULL, *cont = NULL, *rv = NULL;
	plumb_buf url = PLUMB_BUF_INIT(64 * 1024);
	unsigned pages = 0;
	int rc = 0;

	if (opts)
		o = *opts;
	if (!o.limit)
		o.limit = 500;
	if ((rc = kube_resource_path(&base, res, ns, NULL, NULL)) < 0)
		return rc;
	describe(what, "LIST", res, ns, NULL);
	for (;;) {
		cJSON *page = NULL;
		const cJSON *meta, *v;
		plumb_buf_reset(&url);
		rc = plumb_buf_printf(&url, "%s?limit=%u", base, o.limit);
		if (!rc && o.label_selector && *o.label_selector) {
			rc = plumb_buf_puts(&url, "&labelSelector=");
			if (!rc) rc = escape(&url, o.label_selector);
		}
		if (!rc && o.field_selector && *o.field_selector) {
			rc = plumb_buf_puts(&url, "&fieldSelector=");
			if (!rc) rc = escape(&url, o.field_selector);
		}
		if (!rc && cont) {
			rc = plumb_buf_puts(&url, "&continue=");
			if (!rc) rc = escape(&url, cont);
		} else if (!rc && o.resource_version) {
			rc = plumb_buf_puts(&url, "&resourceVersion=");
			if (!rc) rc = escape(&url, o.resource_version);
		}
		if (rc < 0) {
			rc = plumb_error_set(rc, "%s: query too long", what);
			goto cleanup;
		}
		rc = call(&page, c, "GET", "list", url.ptr, NULL, NULL, what);
		if (rc == PLUMB_EEXPIRED && cont) {
			rc = plumb_error_prefix(rc, "continue token expired after %u pages; restart the list", pages);
			goto cleanup;
		}
		if (rc < 0)
			goto cleanup;
		pages++;
		meta = cJSON_GetObjectItemCaseSensitive(page, "metadata");
		if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(page, "items")) &&
		    !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(page, "items")) &&
		    cJSON_GetObjectItemCaseSensitive(page, "items")) {
			cJSON_Delete(page);
			rc = plumb_error_set(PLUMB_EPROTO, "%s: items is not a list", what);
			goto cleanup;
		}
		if (!rv) {
			v = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
			rv = plumb_strdup(cJSON_IsString(v) ? v->valuestring : "");
		}
		free(cont);
		cont = NULL;
		v = cJSON_GetObjectItemCaseSensitive(meta, "continue");
		if (cJSON_IsString(v) && v->valuestring[0])
			cont = plumb_strdup(v->valuestring);
		rc = fn(page, data);
		cJSON_Delete(page);
		if (rc != 0)
			goto cleanup;
		if (!cont)
			break;
	}
	if (out_rv) {
		*out_rv = rv;
		rv = NULL;
	}
	if (out_pages)
		*out_pages = pages;
cleanup:
	plumb_buf_free(&url);
	free(base);
	free(cont);
	free(rv);
	return rc;
}

typedef struct {
	kube_page_cb cb;
	void *data;
} user_pages;

static int call_user(cJSON *page, void *data)
{
	user_pages *u = data;
	return u->cb(page, u->data);
}

int kube_list_pages(kube_client *c, const kube_resource *res, const char *ns,
	const kube_list_opts *opts, kube_page_cb cb, void *data, char **out_rv, unsigned *out_pages)
{
	user_pages u = { cb, data };
	return list_impl(c, res, ns, opts, call_user, &u, out_rv, out_pages);
}

static int merge_page(cJSON *page, void *data)
{
	cJSON *items = data;
	cJSON *pitems = cJSON_GetObjectItemCaseSensitive(page, "items");
	while (cJSON_IsArray(pitems) && pitems->child) {
		cJSON *it = cJSON_DetachItemFromArray(pitems, 0);
		cJSON_AddItemToArray(items, it);
	}
	return 0;
}

int kube_list(cJSON **out, kube_client *c, const kube_resource *res, const char *ns, const kube_list_opts *opts)
{
	cJSON *list = cJSON_CreateObject(), *items = cJSON_CreateArray(), *meta = cJSON_CreateObject();
	char *rv = NULL, kind[160], av[320];
	int rc;
	if (!list || !items || !meta) {
		cJSON_Delete(list);
		cJSON_Delete(items);
		cJSON_Delete(meta);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	rc = list_impl(c, res, ns, opts, merge_page, items, &rv, NULL);
	if (rc < 0) {
		cJSON_Delete(list);
		cJSON_Delete(items);
		cJSON_Delete(meta);
		return rc;
	}
	kube_resource_api_version(av, sizeof(av), res);
	snprintf(kind, sizeof(kind), "%sList", res->kind);
	cJSON_AddStringToObject(list, "apiVersion", av);
	cJSON_AddStringToObject(list, "kind", kind);
	cJSON_AddStringToObject(meta, "resourceVersion", rv ? rv : "");
	cJSON_AddItemToObject(list, "metadata", meta);
	cJSON_AddItemToObject(list, "items", items);
	free(rv);
	*out = list;
	return 0;
}

/* ---- writes ---- */

int kube_create(cJSON **out, kube_client *c, const kube_resource *res, const char *ns, const cJSON *obj)
{
	char what[WHAT_MAX], *path = NULL;
	const char *name = obj_str(obj, "name");
	int rc;
	ns = write_ns(c, res, ns, obj);
	if ((rc = kube_resource_path(&path, res, ns, NULL, NULL)) < 0)
		return rc;
	describe(what, "POST", res, ns, name ? name : obj_str(obj, "generateName"));
	rc = call(out, c, "POST", "create", path, NULL, obj, what);
	free(path);
	return rc;
}

static int put_impl(cJSON **out, kube_client *c, const kube_resource *res, const char *ns,
	const cJSON *obj, const char *sub)
{
	char what[WHAT_MAX], *path = NULL;
	const char *name = obj_str(obj, "name");
	int rc;
	if (!name)
		return plumb_error_set(PLUMB_EINVALID, "PUT %s: object has no metadata.name", res->resource);
	ns = write_ns(c, res, ns, obj);
	if ((rc = kube_resource_path(&path, res, ns, name, sub)) < 0)
		return rc;
	describe(what, "PUT", res, ns, name);
	rc = call(out, c, "PUT", "update", path, NULL, obj, what);
	free(path);
	return rc;
}

int kube_update(cJSON **out, kube_client *c, const kube_resource *res, const char *ns, const cJSON *obj)
{
	return put_impl(out, c, res, ns, obj, NULL);
}

int kube_update_status(cJSON **out, kube_client *c, const kube_resource *res, const char *ns, const cJSON *obj)
{
	return put_impl(out, c, res, ns, obj, "status");
}

int kube_delete(kube_client *c, const kube_resource *res, const char *ns, const char *name, kube_propagation propagation)
{
	static const char *names[] = { NULL, "Background", "Foreground", "Orphan" };
	char what[WHAT_MAX], *path = NULL;
	cJSON *opts = NULL;
	int rc;
	if (!name)
		return plumb_error_set(PLUMB_EINVALID, "DELETE %s: no name", res->resource);
	if (res->namespaced && (!ns || !*ns))
		return plumb_error_set(PLUMB_EINVALID, "DELETE %s \"%s\": namespaced resource needs a namespace", res->resource, name);
	if ((unsigned)propagation > KUBE_PROPAGATION_ORPHAN)
		return plumb_error_set(PLUMB_EINVALID, "DELETE %s \"%s\": bad propagation policy", res->resource, name);
	if ((rc = kube_resource_path(&path, res, ns, name, NULL)) < 0)
		return rc;
	if (names[propagation]) {
		opts = cJSON_CreateObject();
		cJSON_AddStringToObject(opts, "kind", "DeleteOptions");
		cJSON_AddStringToObject(opts, "apiVersion", "v1");
		cJSON_AddStringToObject(opts, "propagationPolicy", names[propagation]);
	}
	describe(what, "DELETE", res, ns, name);
	rc = call(NULL, c, "DELETE", "delete", path, NULL, opts, what);
	cJSON_Delete(opts);
	free(path);
	return rc;
}

static int apply_impl(cJSON **out, kube_client *c, const kube_resource *res, const char *ns,
	const cJSON *obj, const kube_apply_opts *opts, const char *sub)
{
	kube_apply_opts o = { "plumb", 1, 0 };
	char what[WHAT_MAX], *path = NULL;
	plumb_buf url = PLUMB_BUF_INIT(64 * 1024);
	const char *name = obj_str(obj, "name");
	int rc;
	if (opts) {
		o = *opts;
		if (!o.field_manager || !*o.field_manager)
			o.field_manager = "plumb";
	}
	if (!name)
		return plumb_error_set(PLUMB_EINVALID, "apply %s: object has no metadata.name", res->resource);
	ns = write_ns(c, res, ns, obj);
	if ((rc = kube_resource_path(&path, res, ns, name, sub)) < 0)
		return rc;
	rc = plumb_buf_printf(&url, "%s?fieldManager=", path);
	if (!rc) rc = escape(&url, o.field_manager);
	if (!rc && o.force) rc = plumb_buf_puts(&url, "&force=true");
	if (!rc && o.dry_run) rc = plumb_buf_puts(&url, "&dryRun=All");
	if (rc < 0) {
		rc = plumb_error_set(rc, "apply: URL too long");
		goto cleanup;
	}
	describe(what, "PATCH", res, ns, name);
	rc = call(out, c, "PATCH", "apply", url.ptr, "application/apply-patch+yaml", obj, what);
cleanup:
	plumb_buf_free(&url);
	free(path);
	return rc;
}

int kube_apply(cJSON **out, kube_client *c, const kube_resource *res, const char *ns,
	const cJSON *obj, const kube_apply_opts *opts)
{
	return apply_impl(out, c, res, ns, obj, opts, NULL);
}

int kube_apply_status(cJSON **out, kube_client *c, const kube_resource *res, const char *ns,
	const cJSON *obj, const kube_apply_opts *opts)
{
	return apply_impl(out, c, res, ns, obj, opts, "status");
}

int kube_merge_patch(cJSON **out, kube_client *c, const kube_resource *res, const char *ns,
	const char *name, const cJSON *patch)
{
	char what[WHAT_MAX], *path = NULL;
	int rc;
	if (!name)
		return plumb_error_set(PLUMB_EINVALID, "PATCH %s: no name", res->resource);
	ns = write_ns(c, res, ns, NULL);
	if ((rc = kube_resource_path(&path, res, ns, name, NULL)) < 0)
		return rc;
	describe(what, "PATCH", res, ns, name);
	rc = call(out, c, "PATCH", "patch", path, "application/merge-patch+json", patch, what);
	free(path);
	return rc;
}
