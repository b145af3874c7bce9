/*
 * pkg/manifest: YAML files → objects, on top of pkg/yamljson (the typing
 * kubectl uses, YAMLJSON_GO_YAML; see manifest.h for the rules): the caps of
 * a manifest, the variables of substitution, one object per document or
 * `kind: List` item, each with its file:line:col.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "manifest/internal.h"
#include "yamljson/yamljson.h"

/* Substitution's variables (a yamljson_lookup_fn; ctx is the manifest_vars). */
static const char *var_lookup(void *ctx, const char *name, size_t n)
{
	const manifest_vars *v = ctx;
	static const char label_prefix[] = "CLUSTER_LABEL_";
	size_t lp = sizeof(label_prefix) - 1;

	if (n == 12 && !memcmp(name, "CLUSTER_NAME", 12) && v->cluster_name)
		return v->cluster_name;
	if (n > lp && !memcmp(name, label_prefix, lp))
		for (size_t i = 0; i < v->nlabels; i++)
			if (strlen(v->labels[i].name) == n - lp && !memcmp(v->labels[i].name, name + lp, n - lp))
				return v->labels[i].value;
	for (size_t i = v->nvars; i-- > 0;)
		if (strlen(v->vars[i].name) == n && !memcmp(v->vars[i].name, name, n))
			return v->vars[i].value;
	return NULL;
}

/* The reader's options for a manifest: kubectl's typing, manifest caps. */
static void manifest_opts(yamljson_opts *o, const manifest_vars *vars, size_t *rev_bytes)
{
	memset(o, 0, sizeof(*o));
	o->typing = YAMLJSON_GO_YAML;
	o->max_nodes = MANIFEST_MAX_NODES;
	o->max_doc_bytes = MANIFEST_MAX_DOC_BYTES;
	o->max_depth = MANIFEST_MAX_DEPTH;
	o->rev_bytes = rev_bytes;
	o->max_rev_bytes = MANIFEST_MAX_REVISION_BYTES;
	if (vars && vars->enabled) {
		o->lookup = var_lookup;
		o->lookup_ctx = (void *)vars;
	}
}

/* ---- manifest_parse ------------------------------------------------------ */

typedef struct {
	manifest_set *set;
	const char *file;
	manifest_errors *errs;
	int nerr;
} parse_ctx;

static const char *json_kind(const cJSON *v)
{
	if (cJSON_IsArray(v))
		return "a sequence";
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v) || cJSON_IsRaw(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	return "a scalar";
}

static int parse_on_doc(void *vctx, cJSON *root, const yamljson_doc *d)
{
	parse_ctx *p = vctx;
	int line = d->line, col = d->col;
	const char *file = p->file;
	int rc = 0;

	if (cJSON_IsNull(root)) { /* an empty document */
		cJSON_Delete(root);
		return 0;
	}
	if (!cJSON_IsObject(root)) {
		rc = manifest_errors_addf(p->errs, file, line, col, "document is %s, not a mapping", json_kind(root));
		p->nerr++;
		cJSON_Delete(root);
		return rc;
	}
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
	cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "items");
	size_t klen = cJSON_IsString(kind) ? strlen(kind->valuestring) : 0;
	if (klen >= 4 && !strcmp(kind->valuestring + klen - 4, "List") && cJSON_IsArray(items)) {
		size_t i = 0;
		cJSON *it;
		while ((it = cJSON_DetachItemFromArray(items, 0))) {
			int il = i < d->nitems ? d->item_lines[i] : line;
			int ic = i < d->nitems ? d->item_cols[i] : col;
			i++;
			if (cJSON_IsNull(it)) {
				cJSON_Delete(it);
				continue;
			}
			if (!cJSON_IsObject(it)) {
				manifest_errors_addf(p->errs, file, il, ic, "List item is %s, not a mapping", json_kind(it));
				p->nerr++;
				cJSON_Delete(it);
				continue;
			}
			if ((rc = manifest_set_push(p->set, it, file, il, ic)))
				break;
		}
		cJSON_Delete(root);
		return rc;
	}
	return manifest_set_push(p->set, root, file, line, col);
}

static void parse_on_err(void *vctx, const yamljson_error *e)
{
	parse_ctx *p = vctx;
	manifest_errors_addf(p->errs, p->file, e->line, e->col, "%s", e->msg);
	p->nerr++;
}

/* ---- the substitution opt-out ------------------------------------------- */

/* The documents of a file that carry plumb.dev/substitute: disabled. */
typedef struct {
	size_t *literal;   /* document indexes, ascending */
	size_t n, cap;
	const char *file;
	manifest_errors *errs;
	int nerr;
	const manifest_vars *vars;
	size_t next;       /* the main pass: the next literal[] to meet */
} optout_ctx;

/* 1 when obj says disabled, 0 when it says nothing; -1 (an error recorded)
 * for another value. */
static int optout_of(optout_ctx *p, const cJSON *obj, int line, int col)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(
		plumb_json_get(obj, "metadata.annotations"), MANIFEST_SUBSTITUTE_ANNOTATION);
	if (!v)
		return 0;
	if (cJSON_IsString(v) && !strcmp(v->valuestring, "disabled"))
		return 1;
	manifest_errors_addf(p->errs, p->file, line, col,
		"annotation " MANIFEST_SUBSTITUTE_ANNOTATION " must be \"disabled\" (or absent)");
	p->nerr++;
	return -1;
}

static int optout_on_doc(void *vctx, cJSON *root, const yamljson_doc *d)
{
	optout_ctx *p = vctx;
	int r = cJSON_IsObject(root) ? optout_of(p, root, d->line, d->col) : 0;
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "items"), *it;
	size_t i = 0;
	if (!cJSON_IsArray(items))
		items = NULL;
	cJSON_ArrayForEach(it, items) {
		int il = i < d->nitems ? d->item_lines[i] : d->line, ic = i < d->nitems ? d->item_cols[i] : d->col;
		i++;
		if (cJSON_IsObject(it) && cJSON_GetObjectItemCaseSensitive(plumb_json_get(it, "metadata.annotations"),
				MANIFEST_SUBSTITUTE_ANNOTATION)) {
			manifest_errors_addf(p->errs, p->file, il, ic, "annotation " MANIFEST_SUBSTITUTE_ANNOTATION
				" on an item of a List: put it on the List, or make the item a document of its own");
			p->nerr++;
		}
	}
	cJSON_Delete(root);
	if (r != 1)
		return 0;
	if (plumb_array_reserve(&p->literal, &p->cap, p->n, sizeof(*p->literal), 8))
		return PLUMB_ENOMEM;
	p->literal[p->n++] = d->index;
	return 0;
}

static void optout_on_err(void *vctx, const yamljson_error *e)
{
	(void)vctx; /* the main pass reports the document's errors */
	(void)e;
}

/* yamljson's substitute_doc for the main pass (ctx: the optout_ctx). */
static int optout_substitute(void *vctx, size_t index)
{
	optout_ctx *p = vctx;
	while (p->next < p->n && p->literal[p->next] < index)
		p->next++;
	return !(p->next < p->n && p->literal[p->next] == index);
}

static const char *optout_lookup(void *vctx, const char *name, size_t n)
{
	optout_ctx *p = vctx;
	return var_lookup((void *)p->vars, name, n);
}

int manifest_parse(manifest_set *set, const char *file, const char *data, size_t len,
		const manifest_vars *vars, manifest_errors *errs)
{
	parse_ctx p = { set, NULL, errs, 0 };
	optout_ctx oo = { NULL, 0, 0, file, errs, 0, vars, 0 };
	yamljson_opts o;
	int rc;

	if (!(p.file = manifest_set_intern_file(set, file)))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (len > MANIFEST_MAX_FILE) {
		manifest_errors_addf(errs, file, 1, 1, "file is larger than the cap of %u bytes", MANIFEST_MAX_FILE);
		return plumb_error_set(PLUMB_ETOOBIG, "%s: file is larger than the cap of %u bytes",
				file, MANIFEST_MAX_FILE);
	}
	if (vars && vars->enabled && memmem(data, len, MANIFEST_SUBSTITUTE_ANNOTATION,
			sizeof(MANIFEST_SUBSTITUTE_ANNOTATION) - 1)) {
		/* which documents opt out: read once without substitution (the
		 * same caps, nothing charged to the revision) */
		manifest_opts(&o, NULL, NULL);
		rc = yamljson_stream(data, len, &o, optout_on_doc, optout_on_err, &oo);
		if (rc == PLUMB_ENOMEM) {
			free(oo.literal);
			return plumb_error_set(rc, "%s: out of memory", file);
		}
		p.nerr += oo.nerr;
	}
	manifest_opts(&o, vars, &set->expanded_bytes);
	if (oo.n) {
		o.lookup = optout_lookup;
		o.lookup_ctx = &oo;
		o.substitute_doc = optout_substitute;
	}
	rc = yamljson_stream(data, len, &o, parse_on_doc, parse_on_err, &p);
	free(oo.literal);
	if (rc == PLUMB_ENOMEM)
		return plumb_error_set(rc, "%s: out of memory", file);
	if (p.nerr || rc)
		return plumb_error_set(rc && rc != PLUMB_EINVALID ? rc : PLUMB_EINVALID,
				"%s: %d error(s) in manifest", file, p.nerr);
	return 0;
}

/* ---- manifest_yaml_to_json ----------------------------------------------- */

typedef struct {
	cJSON *root;
	int ndocs;
	int err;
	char msg[900];
} single_ctx;

static int single_on_doc(void *vctx, cJSON *root, const yamljson_doc *d)
{
	single_ctx *s = vctx;
	int line = d->line, col = d->col;
	if (s->ndocs++) {
		cJSON_Delete(root);
		snprintf(s->msg, sizeof(s->msg), "%d:%d: more than one document", line, col);
		return s->err = PLUMB_EINVALID;
	}
	s->root = root;
	return 0;
}

static void single_on_err(void *vctx, const yamljson_error *e)
{
	single_ctx *s = vctx;
	if (!s->err) {
		s->err = e->code ? e->code : PLUMB_EINVALID;
		snprintf(s->msg, sizeof(s->msg), "%d:%d: %s", e->line, e->col, e->msg);
	}
}

int manifest_yaml_to_json(cJSON **out, const char *data, size_t len)
{
	single_ctx s;
	yamljson_opts o;
	memset(&s, 0, sizeof(s));
	if (len > MANIFEST_MAX_FILE)
		return plumb_error_set(PLUMB_ETOOBIG, "input is larger than the cap of %u bytes", MANIFEST_MAX_FILE);
	manifest_opts(&o, NULL, NULL);
	yamljson_stream(data, len, &o, single_on_doc, single_on_err, &s);
	if (s.err) {
		cJSON_Delete(s.root);
		return plumb_error_set(s.err, "%s", s.msg);
	}
	if (!s.root && !(s.root = cJSON_CreateNull()))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	*out = s.root;
	return 0;
}

int manifest_plain_is_string(const char *s, size_t n)
{
	return yamljson_plain_is_string(s, n);
}

