/*
 * pkg/manifest: object sets, revision validation, per-cluster rendering,
 * apply order and reading a folder of manifests. YAML conversion lives in
 * yaml.c, label selectors in selector.c.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "manifest/internal.h"

/* ---- errors -------------------------------------------------------------- */

void manifest_errors_free(manifest_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->count; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	memset(errs, 0, sizeof(*errs));
}

int manifest_errors_addf(manifest_errors *errs, const char *file, int line, int col,
		const char *fmt, ...)
{
	plumb_buf b = PLUMB_BUF_INIT(4096);
	va_list ap;

	if (!errs)
		return 0;
	if (errs->count >= MANIFEST_MAX_ERRORS) {
		errs->dropped++;
		return 0;
	}
	if (errs->count == errs->alloc) {
		size_t na = errs->alloc ? errs->alloc * 2 : 8;
		char **p = realloc(errs->msgs, na * sizeof(*p));
		if (!p)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		errs->msgs = p;
		errs->alloc = na;
	}
	plumb_buf_printf(&b, "%s:%d:%d: ", file ? file : "<input>", line > 0 ? line : 1, col > 0 ? col : 1);
	va_start(ap, fmt);
	plumb_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (!b.ptr)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	errs->msgs[errs->count++] = plumb_buf_detach(&b);
	return 0;
}

/* ---- sets ---------------------------------------------------------------- */

void manifest_set_free(manifest_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->count; i++)
		cJSON_Delete(set->items[i].obj);
	free(set->items);
	for (size_t i = 0; i < set->nfiles; i++)
		free(set->files[i]);
	free(set->files);
	memset(set, 0, sizeof(*set));
}

const char *manifest_set_intern_file(manifest_set *set, const char *file)
{
	if (set->nfiles && !strcmp(set->files[set->nfiles - 1], file))
		return set->files[set->nfiles - 1];
	char **p = realloc(set->files, (set->nfiles + 1) * sizeof(*p));
	if (!p)
		return NULL;
	set->files = p;
	if (!(set->files[set->nfiles] = plumb_strdup(file)))
		return NULL;
	return set->files[set->nfiles++];
}

int manifest_set_push(manifest_set *set, cJSON *obj, const char *file, int line, int col)
{
	if (set->count == set->alloc) {
		size_t na = set->alloc ? set->alloc * 2 : 64;
		manifest_object *p = realloc(set->items, na * sizeof(*p));
		if (!p) {
			cJSON_Delete(obj);
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
		set->items = p;
		set->alloc = na;
	}
	manifest_object *o = &set->items[set->count++];
	o->obj = obj;
	o->file = file;
	o->line = line;
	o->col = col;
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static const char *str_field(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *meta_field(const cJSON *obj, const char *name)
{
	return str_field(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), name);
}

/* The group part of an apiVersion ("apps/v1" → "apps", "v1" → ""). */
static void api_group(char *out, size_t outlen, const char *api_version)
{
	const char *slash = api_version ? strchr(api_version, '/') : NULL;
	size_t n = slash ? (size_t)(slash - api_version) : 0;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, api_version ? api_version : "", n);
	out[n] = '\0';
}

static int dns_label(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return s[0] != '-' && s[n - 1] != '-';
}

static int dns_subdomain(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return 0;
	const char *p = s;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		char part[64];
		if (len == 0 || len > 63)
			return 0;
		memcpy(part, p, len);
		part[len] = '\0';
		if (!dns_label(part))
			return 0;
		if (!dot)
			return 1;
		p = dot + 1;
	}
}

/* Kubernetes' path-segment rule (RBAC names may hold ':' and more). */
static int path_segment(const char *s)
{
	return *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && !strchr(s, '%');
}

/* ---- cluster scope ------------------------------------------------------- */

static const struct {
	const char *group, *kind;
} cluster_scoped[] = {
	{ "", "Namespace" }, { "", "Node" }, { "", "PersistentVolume" }, { "", "ComponentStatus" },
	{ "rbac.authorization.k8s.io", "ClusterRole" },
	{ "rbac.authorization.k8s.io", "ClusterRoleBinding" },
	{ "apiextensions.k8s.io", "CustomResourceDefinition" },
	{ "apiregistration.k8s.io", "APIService" },
	{ "admissionregistration.k8s.io", "MutatingWebhookConfiguration" },
	{ "admissionregistration.k8s.io", "ValidatingWebhookConfiguration" },
	{ "admissionregistration.k8s.io", "ValidatingAdmissionPolicy" },
	{ "admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding" },
	{ "admissionregistration.k8s.io", "MutatingAdmissionPolicy" },
	{ "admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding" },
	{ "storage.k8s.io", "StorageClass" }, { "storage.k8s.io", "CSIDriver" },
	{ "storage.k8s.io", "CSINode" }, { "storage.k8s.io", "VolumeAttachment" },
	{ "storage.k8s.io", "VolumeAttributesClass" },
	{ "scheduling.k8s.io", "PriorityClass" },
	{ "node.k8s.io", "RuntimeClass" },
	{ "certificates.k8s.io", "CertificateSigningRequest" },
	{ "certificates.k8s.io", "ClusterTrustBundle" },
	{ "networking.k8s.io", "IngressClass" }, { "networking.k8s.io", "IPAddress" },
	{ "networking.k8s.io", "ServiceCIDR" },
	{ "flowcontrol.apiserver.k8s.io", "FlowSchema" },
	{ "flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration" },
	{ "resource.k8s.io", "DeviceClass" }, { "resource.k8s.io", "ResourceSlice" },
	{ "policy", "PodSecurityPolicy" },
};

int manifest_kind_is_cluster_scoped(const char *api_version, const char *kind)
{
	char group[256];
	if (!kind)
		return 0;
	api_group(group, sizeof(group), api_version);
	for (size_t i = 0; i < sizeof(cluster_scoped) / sizeof(cluster_scoped[0]); i++)
		if (!strcmp(cluster_scoped[i].kind, kind) && !strcmp(cluster_scoped[i].group, group))
			return 1;
	return 0;
}

static int is_cluster_scoped(const manifest_render_opts *opts, const char *av, const char *kind)
{
	if (opts && opts->scope) {
		int r = opts->scope(opts->scope_ctx, av, kind);
		if (r >= 0)
			return r;
	}
	return manifest_kind_is_cluster_scoped(av, kind);
}

/* ---- validation ---------------------------------------------------------- */

static int validate_object(const manifest_object *o, manifest_errors *errs, int vet)
{
	const cJSON *obj = o->obj;
	const char *av = str_field(obj, "apiVersion"), *kind = str_field(obj, "kind");
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	int bad = 0;

	if (!av || !*av) {
		manifest_errors_addf(errs, o->file, o->line, o->col, "apiVersion is missing or not a string");
		bad++;
	}
	if (!kind || !*kind) {
		manifest_errors_addf(errs, o->file, o->line, o->col, "kind is missing or not a string");
		bad++;
	}
	if (!cJSON_IsObject(meta)) {
		manifest_errors_addf(errs, o->file, o->line, o->col, "metadata is missing or not a mapping");
		return bad + 1;
	}
	const char *name = str_field(meta, "name"), *ns = NULL;
	const cJSON *nsv = cJSON_GetObjectItemCaseSensitive(meta, "namespace");
	if (!name || !*name) {
		manifest_errors_addf(errs, o->file, o->line, o->col, "metadata.name is missing or not a string");
		bad++;
	} else if (kind) {
		char group[256];
		api_group(group, sizeof(group), av);
		int label = !*group && (!strcmp(kind, "Namespace") || !strcmp(kind, "Service"));
		int segment = !strcmp(group, "rbac.authorization.k8s.io");
		/* vet sees the text before substitution: a name made by a variable
		 * is checked once render has substituted it. */
		if (!(vet && strstr(name, "${")) &&
		    (label ? !dns_label(name) : segment ? !path_segment(name) : !dns_subdomain(name))) {
			manifest_errors_addf(errs, o->file, o->line, o->col,
					"metadata.name \"%.300s\" of %s is not a valid %s", name, kind,
					label ? "DNS-1123 label (lowercase letters, digits and '-', at most 63)"
					: segment ? "path segment name"
					: "DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)");
			bad++;
		}
	}
	if (nsv && !cJSON_IsNull(nsv)) {
		ns = cJSON_IsString(nsv) ? nsv->valuestring : NULL;
		if (!ns || (*ns && !(vet && strstr(ns, "${")) && !dns_label(ns))) {
			manifest_errors_addf(errs, o->file, o->line, o->col,
					"metadata.namespace \"%.300s\" is not a valid DNS-1123 label", ns ? ns : "");
			bad++;
		}
	}
	const cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
	const cJSON *sel = cJSON_GetObjectItemCaseSensitive(ann, MANIFEST_SELECTOR_ANNOTATION);
	if (sel) {
		manifest_selector *s = NULL;
		if (!cJSON_IsString(sel)) {
			manifest_errors_addf(errs, o->file, o->line, o->col, "annotation %s must be a string",
					MANIFEST_SELECTOR_ANNOTATION);
			bad++;
		} else if (manifest_selector_parse(&s, sel->valuestring)) {
			manifest_errors_addf(errs, o->file, o->line, o->col, "annotation %s: %s",
					MANIFEST_SELECTOR_ANNOTATION, plumb_error_last());
			bad++;
		}
		manifest_selector_free(s);
	}
	return bad;
}

typedef struct {
	char *key;
	size_t index;
} id_entry;

static int id_cmp(const void *a, const void *b)
{
	const id_entry *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Reports every (group, kind, namespace, name) that appears twice. With
 * skip_selected, objects with a cluster-selector annotation are left out
 * (only rendering for a cluster knows whether two of them collide). */
static int check_duplicates(const manifest_set *set, manifest_errors *errs, int skip_selected)
{
	id_entry *ids = calloc(set->count ? set->count : 1, sizeof(*ids));
	size_t n = 0;
	int bad = 0;

	if (!ids)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (size_t i = 0; i < set->count; i++) {
		const cJSON *obj = set->items[i].obj;
		const char *av = str_field(obj, "apiVersion"), *kind = str_field(obj, "kind");
		const char *name = meta_field(obj, "name"), *ns = meta_field(obj, "namespace");
		const cJSON *ann = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "annotations");
		char group[256];
		if (!av || !kind || !name)
			continue;
		if (skip_selected && cJSON_GetObjectItemCaseSensitive(ann, MANIFEST_SELECTOR_ANNOTATION))
			continue;
		api_group(group, sizeof(group), av);
		if (!(ids[n].key = plumb_asprintf("%s/%s/%s/%s", group, kind, ns ? ns : "", name))) {
			bad = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		ids[n++].index = i;
	}
	if (n > 1)
		qsort(ids, n, sizeof(*ids), id_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(ids[i].key, ids[i - 1].key))
			continue;
		const manifest_object *first = &set->items[ids[i - 1].index], *o = &set->items[ids[i].index];
		size_t k = i - 1;
		while (k > 0 && !strcmp(ids[k - 1].key, ids[i].key))
			first = &set->items[ids[--k].index];
		const char *ns = meta_field(o->obj, "namespace");
		manifest_errors_addf(errs, o->file, o->line, o->col,
				"duplicate object %s %s%s%s (also defined at %s:%d:%d)",
				str_field(o->obj, "kind"), ns && *ns ? ns : "", ns && *ns ? "/" : "",
				meta_field(o->obj, "name"), first->file, first->line, first->col);
		bad++;
	}
cleanup:
	for (size_t i = 0; i < n; i++)
		free(ids[i].key);
	free(ids);
	return bad;
}

static int validate_set(const manifest_set *set, manifest_errors *errs, int skip_selected)
{
	int bad = 0, rc;
	for (size_t i = 0; i < set->count; i++)
		bad += validate_object(&set->items[i], errs, skip_selected);
	if ((rc = check_duplicates(set, errs, skip_selected)) < 0)
		return rc;
	bad += rc;
	if (bad)
		return plumb_error_set(PLUMB_EINVALID, "%d error(s) in the revision", bad);
	return 0;
}

int manifest_validate(const manifest_set *set, manifest_errors *errs)
{
	return validate_set(set, errs, 0);
}

/* ---- vet and render ------------------------------------------------------ */

static int parse_all(manifest_set *set, const manifest_file *files, size_t nfiles,
		const manifest_vars *vars, manifest_errors *errs)
{
	int bad = 0;
	for (size_t i = 0; i < nfiles; i++) {
		int rc = manifest_parse(set, files[i].file, files[i].data, files[i].len, vars, errs);
		if (rc == PLUMB_ENOMEM)
			return rc;
		if (rc)
			bad = 1;
	}
	return bad ? plumb_error_set(PLUMB_EINVALID, "the revision has errors") : 0;
}

int manifest_vet(const manifest_file *files, size_t nfiles, manifest_errors *errs)
{
	manifest_set set = { 0 };
	int rc = parse_all(&set, files, nfiles, NULL, errs);
	int vrc = rc == PLUMB_ENOMEM ? 0 : validate_set(&set, errs, 1);
	manifest_set_free(&set);
	if (rc || vrc || errs->count)
		return plumb_error_set(rc == PLUMB_ENOMEM ? rc : PLUMB_EINVALID,
				"%zu error(s) in the revision", errs->count + errs->dropped);
	return 0;
}

static int order_class(const manifest_object *o, const manifest_render_opts *opts)
{
	const char *av = str_field(o->obj, "apiVersion"), *kind = str_field(o->obj, "kind");
	char group[256];
	api_group(group, sizeof(group), av);
	if (!strcmp(kind, "CustomResourceDefinition") && !strcmp(group, "apiextensions.k8s.io"))
		return 0;
	if (!strcmp(kind, "Namespace") && !*group)
		return 1;
	return is_cluster_scoped(opts, av, kind) ? 2 : 3;
}

typedef struct {
	manifest_object o;
	int cls;
	size_t index;
} ordered;

static int ordered_cmp(const void *a, const void *b)
{
	const ordered *x = a, *y = b;
	if (x->cls != y->cls)
		return x->cls - y->cls;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Keeps or drops o for this cluster; strips the selector annotation. */
static int select_object(const manifest_object *o, const manifest_render_opts *opts,
		manifest_errors *errs, int *keep)
{
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(o->obj, "metadata");
	cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
	cJSON *sel = cJSON_GetObjectItemCaseSensitive(ann, MANIFEST_SELECTOR_ANNOTATION);
	manifest_selector *s = NULL;

	*keep = 1;
	if (!sel)
		return 0;
	if (!cJSON_IsString(sel) || manifest_selector_parse(&s, sel->valuestring))
		return manifest_errors_addf(errs, o->file, o->line, o->col, "annotation %s: %s",
				MANIFEST_SELECTOR_ANNOTATION, cJSON_IsString(sel) ? plumb_error_last() : "not a string"), 1;
	*keep = manifest_selector_matches(s, opts->vars.labels, opts->vars.nlabels);
	manifest_selector_free(s);
	cJSON_DeleteItemFromObjectCaseSensitive(ann, MANIFEST_SELECTOR_ANNOTATION);
	if (!ann->child)
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "annotations");
	return 0;
}

int manifest_render(manifest_set *out, const manifest_file *files, size_t nfiles,
		const manifest_render_opts *opts, manifest_errors *errs)
{
	manifest_set set = { 0 }, kept = { 0 };
	ordered *ord = NULL;
	const char *defns = opts->default_namespace ? opts->default_namespace : "default";
	int rc, bad = 0;

	rc = parse_all(&set, files, nfiles, &opts->vars, errs);
	if (rc == PLUMB_ENOMEM)
		goto cleanup;
	for (size_t i = 0; i < set.count; i++)
		bad += validate_object(&set.items[i], errs, 0);
	if (rc || bad)
		goto invalid;

	/* kept borrows file names from set; objects move over one by one. */
	for (size_t i = 0; i < set.count; i++) {
		manifest_object *o = &set.items[i];
		int keep;
		if (select_object(o, opts, errs, &keep)) {
			bad++;
			continue;
		}
		if (!keep)
			continue;
		cJSON *meta = cJSON_GetObjectItemCaseSensitive(o->obj, "metadata");
		const char *ns = str_field(meta, "namespace");
		if (is_cluster_scoped(opts, str_field(o->obj, "apiVersion"), str_field(o->obj, "kind"))) {
			cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
		} else if (!ns || !*ns) {
			cJSON *v = cJSON_CreateString(defns);
			if (!v) {
				rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
				goto cleanup;
			}
			cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
			cJSON_AddItemToObject(meta, "namespace", v);
		}
		if ((rc = manifest_set_push(&kept, o->obj, o->file, o->line, o->col)))
			goto cleanup;
		o->obj = NULL;
	}
	if (bad)
		goto invalid;
	if ((rc = check_duplicates(&kept, errs, 0)) < 0)
		goto cleanup;
	if (rc > 0)
		goto invalid;

	if (!(ord = calloc(kept.count ? kept.count : 1, sizeof(*ord)))) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < kept.count; i++) {
		ord[i].o = kept.items[i];
		ord[i].cls = order_class(&kept.items[i], opts);
		ord[i].index = i;
	}
	if (kept.count > 1)
		qsort(ord, kept.count, sizeof(*ord), ordered_cmp);
	/* The result owns copies of the file names it points to. */
	for (size_t i = 0; i < kept.count; i++) {
		const char *f = manifest_set_intern_file(out, ord[i].o.file);
		if (!f) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		if ((rc = manifest_set_push(out, ord[i].o.obj, f, ord[i].o.line, ord[i].o.col))) {
			kept.items[ord[i].index].obj = NULL;
			goto cleanup;
		}
		kept.items[ord[i].index].obj = NULL;
	}
	rc = 0;
	goto cleanup;
invalid:
	rc = plumb_error_set(PLUMB_EINVALID, "%zu error(s) in the revision", errs->count + errs->dropped);
cleanup:
	if (rc)
		manifest_set_free(out);
	free(ord);
	kept.nfiles = 0;
	manifest_set_free(&kept);
	manifest_set_free(&set);
	return rc;
}

/* ---- reading a folder ---------------------------------------------------- */

#define MANIFEST_MAX_FILES 20000

typedef struct {
	manifest_file *files;
	size_t n, alloc;
	size_t total;
} file_list;

static int has_manifest_ext(const char *name)
{
	size_t n = strlen(name);
	return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"))
		|| (n > 5 && !strcmp(name + n - 5, ".json"));
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(file_list *fl, const char *root, const char *rel, int depth)
{
	char *dirpath = *rel ? plumb_asprintf("%s/%s", root, rel) : plumb_strdup(root);
	char **names = NULL;
	size_t nn = 0;
	DIR *d = NULL;
	int rc = 0;

	if (!dirpath)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (depth > 64) {
		rc = plumb_error_set(PLUMB_EINVALID, "%s: folders nested too deep", dirpath);
		goto cleanup;
	}
	if (!(d = opendir(dirpath))) {
		rc = plumb_error_set(PLUMB_EIO, "%s: cannot open folder: %m", dirpath);
		goto cleanup;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char **p = realloc(names, (nn + 1) * sizeof(*p));
		if (!p || !(p[nn] = plumb_strdup(de->d_name))) {
			if (p)
				names = p;
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		names = p;
		nn++;
	}
	if (nn > 1)
		qsort(names, nn, sizeof(*names), name_cmp);
	for (size_t i = 0; i < nn && !rc; i++) {
		char *r = *rel ? plumb_asprintf("%s/%s", rel, names[i]) : plumb_strdup(names[i]);
		char *full = plumb_asprintf("%s/%s", root, r ? r : "");
		struct stat st;
		if (!r || !full) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		} else if (stat(full, &st)) {
			rc = plumb_error_set(PLUMB_EIO, "%s: %m", full);
		} else if (S_ISDIR(st.st_mode)) {
			rc = walk(fl, root, r, depth + 1);
		} else if (S_ISREG(st.st_mode) && has_manifest_ext(names[i])) {
			char *data = NULL;
			size_t len = 0;
			if (fl->n >= MANIFEST_MAX_FILES) {
				rc = plumb_error_set(PLUMB_ETOOBIG, "more than %d manifest files", MANIFEST_MAX_FILES);
			} else if (!(rc = plumb_file_read(&data, &len, full, MANIFEST_MAX_FILE))) {
				if (fl->n == fl->alloc) {
					size_t na = fl->alloc ? fl->alloc * 2 : 32;
					manifest_file *p = realloc(fl->files, na * sizeof(*p));
					if (!p) {
						free(data);
						rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
						goto next;
					}
					fl->files = p;
					fl->alloc = na;
				}
				fl->files[fl->n].file = r;
				fl->files[fl->n].data = data;
				fl->files[fl->n].len = len;
				fl->n++;
				r = NULL;
			} else {
				plumb_error_prefix(rc, "%s", full);
			}
		}
next:
		free(r);
		free(full);
	}
cleanup:
	if (d)
		closedir(d);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	free(dirpath);
	return rc;
}

void manifest_files_free(manifest_file *files, size_t n)
{
	if (!files)
		return;
	for (size_t i = 0; i < n; i++) {
		free((char *)files[i].file);
		free((char *)files[i].data);
	}
	free(files);
}

int manifest_files_read_dir(manifest_file **out, size_t *nout, const char *dir)
{
	file_list fl = { 0 };
	int rc = walk(&fl, dir, "", 0);
	if (rc) {
		manifest_files_free(fl.files, fl.n);
		return rc;
	}
	*out = fl.files;
	*nout = fl.n;
	return 0;
}
