/*
 * pkg/yamljson: YAML events → cJSON (see yamljson.h for the rules): the
 * event loop over libyaml, caps on nodes, depth and expanded bytes,
 * substitution in scalars, tags, anchors, aliases and merge keys. The scalar
 * rules themselves are in scalar.c. No state outside a call.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/base.h"
#include "yamljson/internal.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

typedef struct {
	char *name;
	cJSON *value;
	size_t nodes;
	size_t bytes;
} yanchor;

typedef struct {
	yaml_parser_t parser;
	const yamljson_opts *opts;
	yanchor *anchors;
	size_t nanchors, aanchors;
	size_t nodes;
	size_t bytes;       /* this document's scalar and key bytes, aliases expanded */
	size_t *rev_bytes;  /* the revision's, across files and documents; may be NULL */
	int err_line, err_col;
	char err[768];
	int errcode;
	int parser_broken;
	int recording;
	int *item_lines, *item_cols;
	size_t nitems, aitems;
	const char *input;
	size_t input_len;
	size_t *line_off;   /* byte offset of each line, built on first use */
	size_t nlines;
	size_t doc_index;   /* documents started so far */
	int no_subst;       /* this document is read without substitution */
} conv;

static int conv_fail(conv *c, const yaml_mark_t *m, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int conv_fail(conv *c, const yaml_mark_t *m, int code, const char *fmt, ...)
{
	if (!c->errcode) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
		c->err_line = m ? (int)m->line + 1 : 0;
		c->err_col = m ? (int)m->column + 1 : 0;
		c->errcode = code;
	}
	return c->errcode;
}

static int conv_next(conv *c, yaml_event_t *ev)
{
	if (yaml_parser_parse(&c->parser, ev))
		return 0;
	c->parser_broken = 1;
	if (c->parser.error == YAML_MEMORY_ERROR)
		return conv_fail(c, NULL, PLUMB_ENOMEM, "out of memory");
	if (c->parser.context)
		return conv_fail(c, &c->parser.problem_mark, PLUMB_EINVALID, "yaml: %s %s",
				c->parser.problem ? c->parser.problem : "syntax error",
				c->parser.context);
	return conv_fail(c, &c->parser.problem_mark, PLUMB_EINVALID, "yaml: %s",
			c->parser.problem ? c->parser.problem : "syntax error");
}

static int count_nodes(conv *c, size_t n, const yaml_mark_t *m)
{
	c->nodes += n;
	if (c->nodes > c->opts->max_nodes)
		return conv_fail(c, m, PLUMB_ETOOBIG,
				"document has more than %zu nodes (excessive aliasing?)", c->opts->max_nodes);
	return 0;
}

/* Charges n expanded bytes (a scalar, a key, or an alias's whole expansion)
 * to the document and the revision before they are copied, so a bomb fails
 * here, with its line, instead of in memory. */
static int charge_bytes(conv *c, size_t n, const yaml_mark_t *m)
{
	c->bytes += n;
	if (c->bytes > c->opts->max_doc_bytes)
		return conv_fail(c, m, PLUMB_ETOOBIG,
				"document expands to more than %zu bytes (aliases are counted by what they expand to)",
				c->opts->max_doc_bytes);
	if (c->rev_bytes) {
		*c->rev_bytes += n;
		if (*c->rev_bytes > c->opts->max_rev_bytes)
			return conv_fail(c, m, PLUMB_ETOOBIG,
					"the revision expands to more than %zu bytes of YAML (aliases counted by what they expand to)",
					c->opts->max_rev_bytes);
	}
	return 0;
}

/* ---- substitution -------------------------------------------------------- */

static int var_name_ok(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
				|| ch == '_' || ch == '.' || ch == '-' || ch == '/'))
			return 0;
	}
	return 1;
}

/* Replaces ${VAR}, ${VAR:=default} and $${ in s. *out is NULL when s has
 * nothing to replace. */
static int subst(conv *c, const yaml_mark_t *m, int plain, const char *s, size_t n,
		char **out, size_t *outlen)
{
	/* A value expanded by substitution counts against the document too:
	 * ${BIG} a thousand times must not build a thousand copies first. */
	size_t left = c->bytes < c->opts->max_doc_bytes ? c->opts->max_doc_bytes - c->bytes : 0;
	plumb_buf b = PLUMB_BUF_INIT(left);
	int rc = 0;
	size_t i = 0, last = 0;

	*out = NULL;
	if (!memchr(s, '$', n))
		return 0;
	while (i < n) {
		if (s[i] != '$') {
			i++;
			continue;
		}
		if (i + 2 < n && s[i + 1] == '$' && s[i + 2] == '{') {
			if ((rc = plumb_buf_append(&b, s + last, i - last)) || (rc = plumb_buf_puts(&b, "${")))
				goto cleanup;
			i += 3;
			last = i;
			continue;
		}
		if (!(i + 1 < n && s[i + 1] == '{')) {
			i++;
			continue;
		}
		yaml_mark_t pos = *m;
		if (plain && !memchr(s, '\n', i))
			pos.column += i;
		const char *name = s + i + 2, *end = memchr(name, '}', n - (i + 2)), *def = NULL;
		if (!end) {
			rc = conv_fail(c, &pos, PLUMB_EINVALID, "unterminated \"${\" in value");
			goto cleanup;
		}
		size_t nlen = (size_t)(end - name);
		for (size_t k = 0; k + 1 < (size_t)(end - name); k++)
			if (name[k] == ':' && name[k + 1] == '=') {
				nlen = k;
				def = name + k + 2;
				break;
			}
		if (!var_name_ok(name, nlen)) {
			rc = conv_fail(c, &pos, PLUMB_EINVALID, "invalid variable name \"%.*s\"",
					(int)(end - name), name);
			goto cleanup;
		}
		const char *val = c->opts->lookup(c->opts->lookup_ctx, name, nlen);
		if ((rc = plumb_buf_append(&b, s + last, i - last)))
			goto cleanup;
		if (val)
			rc = plumb_buf_puts(&b, val);
		else if (def)
			rc = plumb_buf_append(&b, def, (size_t)(end - def));
		else
			rc = conv_fail(c, &pos, PLUMB_EINVALID,
					"variable \"%.*s\" is not defined and has no default", (int)nlen, name);
		if (rc)
			goto cleanup;
		i = (size_t)(end - s) + 1;
		last = i;
	}
	if ((rc = plumb_buf_append(&b, s + last, n - last)))
		goto cleanup;
	if (!b.ptr && (rc = plumb_buf_puts(&b, "")))
		goto cleanup;
	*outlen = b.len;
	*out = plumb_buf_detach(&b);
cleanup:
	if (rc == PLUMB_ETOOBIG)
		conv_fail(c, m, rc, "value expands past the document's cap of %zu bytes after substitution",
				c->opts->max_doc_bytes);
	else if (rc == PLUMB_ENOMEM)
		conv_fail(c, m, rc, "%s", plumb_error_last());
	plumb_buf_free(&b);
	return rc;
}

/* ---- scalars ------------------------------------------------------------- */

static const char *short_tag(int kind)
{
	switch (kind) {
	case R_NULL: return "!!null";
	case R_BOOL: return "!!bool";
	case R_INT: case R_UINT: return "!!int";
	case R_FLOAT: return "!!float";
	case R_MERGE: return "!!merge";
	default: return "!!str";
	}
}

static int build_line_offsets(conv *c)
{
	size_t n = 1;
	for (size_t i = 0; i < c->input_len; i++)
		if (c->input[i] == '\n')
			n++;
	if (!(c->line_off = malloc(n * sizeof(size_t))))
		return PLUMB_ENOMEM;
	c->line_off[0] = 0;
	c->nlines = 1;
	for (size_t i = 0; i < c->input_len; i++)
		if (c->input[i] == '\n')
			c->line_off[c->nlines++] = i + 1;
	return 0;
}

/* go-yaml v2 (and so kubectl) rejects the "\/" escape that libyaml 0.2
 * accepts. The event only has the decoded text, so look at the source lines
 * of a double-quoted scalar whose value holds a '/'. */
static int check_escapes(conv *c, const yaml_event_t *ev)
{
	if (ev->data.scalar.style != YAML_DOUBLE_QUOTED_SCALAR_STYLE
			|| !memchr(ev->data.scalar.value, '/', ev->data.scalar.length) || !c->input)
		return 0;
	if (!c->line_off && build_line_offsets(c))
		return conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
	size_t l0 = ev->start_mark.line, l1 = ev->end_mark.line;
	if (l0 >= c->nlines)
		return 0;
	size_t from = c->line_off[l0], to = l1 + 1 < c->nlines ? c->line_off[l1 + 1] : c->input_len;
	for (size_t i = from; i + 1 < to; i++) {
		if (c->input[i] != '\\')
			continue;
		if (c->input[i + 1] == '/')
			return conv_fail(c, &ev->start_mark, PLUMB_EINVALID,
					"yaml: found unknown escape character \"\\/\" (kubectl rejects it)");
		i++;
	}
	return 0;
}

/* Types a scalar event (after substitution). *text and *len point at the value
 * to use for strings; *owned is set when it was allocated. */
static int scalar_resolve(conv *c, yaml_event_t *ev, resolved *r, const char **text,
		size_t *len, char **owned)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	int rc;

	*owned = NULL;
	if (c->opts->typing != YAMLJSON_KUBECONFIG && (rc = check_escapes(c, ev)))
		return rc;
	*text = (const char *)ev->data.scalar.value;
	*len = ev->data.scalar.length;
	if (c->opts->lookup && !c->no_subst) {
		if ((rc = subst(c, &ev->start_mark, plain, *text, *len, owned, len)))
			return rc;
		if (*owned)
			*text = *owned;
	}
	if (memchr(*text, '\0', *len))
		return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "a NUL character cannot be sent as JSON here");
	if ((rc = charge_bytes(c, *len + 1, &ev->start_mark)))
		return rc;

	memset(r, 0, sizeof(*r));
	r->kind = R_STR;
	if (c->opts->typing == YAMLJSON_KUBECONFIG) {
		if (plain)
			yamljson_resolve_kubeconfig(r, *text, *len);
		return 0;
	}
	if (!tag || !strcmp(tag, "!")) {
		if (!tag && plain && ev->data.scalar.plain_implicit)
			yamljson_resolve_plain(r, *text, *len);
		return 0;
	}
	if (strncmp(tag, TAG_PREFIX, sizeof(TAG_PREFIX) - 1))
		return 0; /* a local tag: go-yaml keeps the text */
	tag += sizeof(TAG_PREFIX) - 1;
	if (!strcmp(tag, "str"))
		return 0;
	if (!strcmp(tag, "timestamp")) {
		/* kubectl keeps the text, once it reads as a timestamp */
		if (yamljson_valid_timestamp(*text, *len))
			return 0;
		return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "cannot decode !!str `%.*s` as a !!timestamp",
				(int)(*len > 80 ? 80 : *len), *text);
	}
	if (!strcmp(tag, "binary")) {
		char *bin = NULL;
		size_t blen = 0;
		if ((rc = yamljson_decode_binary(&bin, &blen, *text, *len)) == PLUMB_ENOMEM)
			return conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
		if (!bin)
			return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "!!binary value is not valid base64");
		if (memchr(bin, '\0', blen)) {
			free(bin);
			return conv_fail(c, &ev->start_mark, PLUMB_EINVALID,
					"a NUL character cannot be sent as JSON here (decoded !!binary)");
		}
		free(*owned);
		*owned = bin;
		*text = bin;
		*len = blen;
		return 0;
	}
	int want;
	if (!strcmp(tag, "null"))
		want = R_NULL;
	else if (!strcmp(tag, "bool"))
		want = R_BOOL;
	else if (!strcmp(tag, "int"))
		want = R_INT;
	else if (!strcmp(tag, "float"))
		want = R_FLOAT;
	else if (!strcmp(tag, "merge"))
		want = R_MERGE;
	else
		return 0;
	yamljson_resolve_plain(r, *text, *len);
	if (r->kind == want || (want == R_INT && r->kind == R_UINT))
		return 0;
	if (want == R_FLOAT && r->kind == R_INT) {
		r->kind = R_FLOAT;
		r->f = (double)r->i;
		return 0;
	}
	if (want == R_FLOAT && r->kind == R_UINT) {
		r->kind = R_FLOAT;
		r->f = (double)r->u;
		return 0;
	}
	return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "cannot decode %s `%.*s` as a !!%s",
			short_tag(r->kind), (int)(*len > 80 ? 80 : *len), *text, tag);
}

static int scalar_value(conv *c, yaml_event_t *ev, cJSON **out)
{
	resolved r;
	const char *text;
	size_t len;
	char *owned = NULL;
	cJSON *v = NULL;
	int rc;

	if ((rc = scalar_resolve(c, ev, &r, &text, &len, &owned)))
		goto cleanup;
	switch (r.kind) {
	case R_NULL: v = cJSON_CreateNull(); break;
	case R_BOOL: v = cJSON_CreateBool(r.b); break;
	case R_INT: v = yamljson_make_int(r.i); break;
	case R_UINT: v = cJSON_CreateNumber((double)r.u); break;
	case R_FLOAT:
		if (isnan(r.f) || isinf(r.f)) {
			rc = conv_fail(c, &ev->start_mark, PLUMB_EINVALID,
					"json: unsupported value: %.*s (JSON has no infinity or NaN)", (int)len, text);
			goto cleanup;
		}
		v = yamljson_make_float(r.f);
		break;
	default: {
		char *tmp = owned;
		if (!tmp && !(tmp = plumb_strndup(text, len))) {
			rc = conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		v = cJSON_CreateString(tmp);
		if (tmp != owned)
			free(tmp);
		break;
	}
	}
	if (!v) {
		rc = conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	*out = v;
cleanup:
	free(owned);
	return rc;
}

static int scalar_key(conv *c, yaml_event_t *ev, char **out, int *merge)
{
	resolved r;
	const char *text;
	size_t len;
	char *owned = NULL, buf[64];
	int rc;

	*merge = 0;
	if ((rc = scalar_resolve(c, ev, &r, &text, &len, &owned)))
		return rc;
	if (c->opts->typing == YAMLJSON_KUBECONFIG)
		r.kind = R_STR; /* keys are the text written */
	switch (r.kind) {
	case R_MERGE:
		*merge = 1;
		free(owned);
		return 0;
	case R_NULL:
		free(owned);
		return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "unsupported map key: null");
	case R_BOOL: snprintf(buf, sizeof(buf), "%s", r.b ? "true" : "false"); break;
	case R_INT: snprintf(buf, sizeof(buf), "%lld", r.i); break;
	case R_UINT: snprintf(buf, sizeof(buf), "%llu", r.u); break;
	case R_FLOAT: yamljson_format_float32_g(buf, sizeof(buf), r.f); break;
	default:
		*out = owned ? owned : plumb_strndup(text, len);
		return *out ? 0 : conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
	}
	free(owned);
	*out = plumb_strdup(buf);
	return *out ? 0 : conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
}

/* ---- anchors ------------------------------------------------------------- */

static void anchors_clear(conv *c)
{
	for (size_t i = 0; i < c->nanchors; i++) {
		free(c->anchors[i].name);
		cJSON_Delete(c->anchors[i].value);
	}
	c->nanchors = 0;
}

static int anchor_add(conv *c, const char *name, const cJSON *v, size_t nodes, size_t bytes,
		const yaml_mark_t *m)
{
	if (c->nanchors == c->aanchors) {
		size_t na = c->aanchors ? c->aanchors * 2 : 8;
		yanchor *p = realloc(c->anchors, na * sizeof(*p));
		if (!p)
			return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
		c->anchors = p;
		c->aanchors = na;
	}
	yanchor *a = &c->anchors[c->nanchors];
	a->name = plumb_strdup(name);
	a->value = cJSON_Duplicate(v, 1);
	a->nodes = nodes;
	a->bytes = bytes;
	if (!a->name || !a->value) {
		free(a->name);
		cJSON_Delete(a->value);
		return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
	}
	c->nanchors++;
	return 0;
}

static const yanchor *anchor_find(conv *c, const char *name)
{
	for (size_t i = c->nanchors; i-- > 0;)
		if (!strcmp(c->anchors[i].name, name))
			return &c->anchors[i];
	return NULL;
}

/* ---- nodes --------------------------------------------------------------- */

static int conv_node(conv *c, yaml_event_t *ev, cJSON **out, int depth);

static int obj_set(cJSON *obj, const char *key, cJSON *v)
{
	if (cJSON_GetObjectItemCaseSensitive(obj, key))
		return cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v) ? 0 : PLUMB_ENOMEM;
	cJSON_AddItemToObject(obj, key, v);
	return 0;
}

/* go-yaml v2: the merged map's keys are set in order into the target,
 * overriding keys set before `<<`; a sequence is applied last to first so
 * that earlier maps win. */
static int merge_into(conv *c, cJSON *obj, const cJSON *src, const yaml_mark_t *m)
{
	if (cJSON_IsObject(src)) {
		for (const cJSON *it = src->child; it; it = it->next) {
			cJSON *dup = cJSON_Duplicate(it, 1);
			if (!dup || obj_set(obj, it->string, dup))
				return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
		}
		return 0;
	}
	if (cJSON_IsArray(src)) {
		int n = cJSON_GetArraySize(src);
		for (int i = n - 1; i >= 0; i--) {
			const cJSON *item = cJSON_GetArrayItem(src, i);
			if (!cJSON_IsObject(item))
				return conv_fail(c, m, PLUMB_EINVALID,
						"map merge requires map or sequence of maps as the value");
			int rc = merge_into(c, obj, item, m);
			if (rc)
				return rc;
		}
		return 0;
	}
	return conv_fail(c, m, PLUMB_EINVALID, "map merge requires map or sequence of maps as the value");
}

static int conv_mapping(conv *c, const yaml_mark_t *smark, cJSON **out, int depth)
{
	cJSON *obj = cJSON_CreateObject();
	yaml_event_t kev, vev;
	char *key = NULL;
	int rc = 0, merge = 0;

	if (!obj)
		return conv_fail(c, smark, PLUMB_ENOMEM, "out of memory");
	if ((rc = count_nodes(c, 1, smark)))
		goto cleanup;
	for (;;) {
		cJSON *val = NULL;
		if ((rc = conv_next(c, &kev)))
			goto cleanup;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			break;
		}
		yaml_mark_t kmark = kev.start_mark;
		if (kev.type == YAML_SCALAR_EVENT) {
			rc = scalar_key(c, &kev, &key, &merge);
		} else if (kev.type == YAML_ALIAS_EVENT) {
			const yanchor *a = anchor_find(c, (const char *)kev.data.alias.anchor);
			char buf[64];
			merge = 0;
			if (!a)
				rc = conv_fail(c, &kmark, PLUMB_EINVALID, "unknown anchor '%s' referenced",
						(const char *)kev.data.alias.anchor);
			else if ((rc = charge_bytes(c, a->bytes, &kmark)))
				;
			else if (cJSON_IsString(a->value))
				rc = (key = plumb_strdup(a->value->valuestring)) ? 0 : PLUMB_ENOMEM;
			else if (cJSON_IsBool(a->value))
				rc = (key = plumb_strdup(cJSON_IsTrue(a->value) ? "true" : "false")) ? 0 : PLUMB_ENOMEM;
			else if (cJSON_IsNumber(a->value)) {
				snprintf(buf, sizeof(buf), "%.17g", a->value->valuedouble);
				rc = (key = plumb_strdup(buf)) ? 0 : PLUMB_ENOMEM;
			} else if (cJSON_IsRaw(a->value))
				rc = (key = plumb_strdup(a->value->valuestring)) ? 0 : PLUMB_ENOMEM;
			else
				rc = conv_fail(c, &kmark, PLUMB_EINVALID, "invalid map key: not a scalar");
		} else {
			rc = conv_fail(c, &kmark, PLUMB_EINVALID,
					"invalid map key: a mapping or sequence cannot be a key");
		}
		yaml_event_delete(&kev);
		if (rc)
			goto cleanup;

		if ((rc = conv_next(c, &vev)))
			goto cleanup;
		if (depth == 0 && key && !strcmp(key, "items"))
			c->recording = 1;
		rc = conv_node(c, &vev, &val, depth + 1);
		c->recording = 0;
		if (rc)
			goto cleanup;
		if (merge) {
			rc = merge_into(c, obj, val, &kmark);
			cJSON_Delete(val);
		} else if (obj_set(obj, key, val)) {
			cJSON_Delete(val);
			rc = conv_fail(c, &kmark, PLUMB_ENOMEM, "out of memory");
		}
		free(key);
		key = NULL;
		if (rc)
			goto cleanup;
	}
	*out = obj;
	obj = NULL;
cleanup:
	free(key);
	cJSON_Delete(obj);
	return rc;
}

static int record_item(conv *c, const yaml_mark_t *m)
{
	if (c->nitems == c->aitems) {
		size_t na = c->aitems ? c->aitems * 2 : 16;
		int *l = realloc(c->item_lines, na * sizeof(int));
		if (!l)
			return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
		c->item_lines = l;
		int *k = realloc(c->item_cols, na * sizeof(int));
		if (!k)
			return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
		c->item_cols = k;
		c->aitems = na;
	}
	c->item_lines[c->nitems] = (int)m->line + 1;
	c->item_cols[c->nitems] = (int)m->column + 1;
	c->nitems++;
	return 0;
}

static int conv_sequence(conv *c, const yaml_mark_t *smark, cJSON **out, int depth)
{
	cJSON *arr = cJSON_CreateArray();
	yaml_event_t ev;
	int rc = 0, record = c->recording && depth == 1;

	c->recording = 0;
	if (!arr)
		return conv_fail(c, smark, PLUMB_ENOMEM, "out of memory");
	if ((rc = count_nodes(c, 1, smark)))
		goto cleanup;
	for (;;) {
		cJSON *val = NULL;
		if ((rc = conv_next(c, &ev)))
			goto cleanup;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (record && (rc = record_item(c, &ev.start_mark))) {
			yaml_event_delete(&ev);
			goto cleanup;
		}
		if ((rc = conv_node(c, &ev, &val, depth + 1)))
			goto cleanup;
		cJSON_AddItemToArray(arr, val);
	}
	*out = arr;
	arr = NULL;
cleanup:
	cJSON_Delete(arr);
	return rc;
}

/* Converts the node that starts with *ev (consumed and deleted here). */
static int conv_node(conv *c, yaml_event_t *ev, cJSON **out, int depth)
{
	char *anchor = NULL;
	size_t before = c->nodes, before_bytes = c->bytes;
	int rc = 0;
	yaml_mark_t mark = ev->start_mark;

	*out = NULL;
	if (depth > c->opts->max_depth) {
		rc = conv_fail(c, &mark, PLUMB_EINVALID, "nesting deeper than %d levels", c->opts->max_depth);
		goto cleanup;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor && !(anchor = plumb_strdup((char *)ev->data.scalar.anchor)))
			goto oom;
		if (!(rc = count_nodes(c, 1, &mark)))
			rc = scalar_value(c, ev, out);
		break;
	case YAML_ALIAS_EVENT: {
		const yanchor *a = anchor_find(c, (const char *)ev->data.alias.anchor);
		if (!a) {
			rc = conv_fail(c, &mark, PLUMB_EINVALID, "unknown anchor '%s' referenced",
					(const char *)ev->data.alias.anchor);
			break;
		}
		if ((rc = count_nodes(c, a->nodes, &mark)) || (rc = charge_bytes(c, a->bytes, &mark)))
			break;
		if (!(*out = cJSON_Duplicate(a->value, 1)))
			goto oom;
		break;
	}
	case YAML_MAPPING_START_EVENT:
		if (ev->data.mapping_start.anchor && !(anchor = plumb_strdup((char *)ev->data.mapping_start.anchor)))
			goto oom;
		yaml_event_delete(ev);
		rc = conv_mapping(c, &mark, out, depth);
		break;
	case YAML_SEQUENCE_START_EVENT:
		if (ev->data.sequence_start.anchor && !(anchor = plumb_strdup((char *)ev->data.sequence_start.anchor)))
			goto oom;
		yaml_event_delete(ev);
		rc = conv_sequence(c, &mark, out, depth);
		break;
	default:
		rc = conv_fail(c, &mark, PLUMB_EINVALID, "yaml: unexpected event %d", (int)ev->type);
		break;
	}
	if (!rc && anchor)
		rc = anchor_add(c, anchor, *out, c->nodes - before, c->bytes - before_bytes, &mark);
	if (rc) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	goto cleanup;
oom:
	rc = conv_fail(c, &mark, PLUMB_ENOMEM, "out of memory");
cleanup:
	free(anchor);
	yaml_event_delete(ev);
	return rc;
}

/* ---- streams ------------------------------------------------------------- */

static int conv_init(conv *c, const char *data, size_t len, const yamljson_opts *opts)
{
	memset(c, 0, sizeof(*c));
	c->opts = opts;
	c->rev_bytes = opts->rev_bytes;
	c->input = data;
	c->input_len = len;
	if (!yaml_parser_initialize(&c->parser))
		return plumb_error_set(PLUMB_ENOMEM, "yaml: cannot initialise parser");
	yaml_parser_set_input_string(&c->parser, (const unsigned char *)data, len);
	return 0;
}

static void conv_done(conv *c)
{
	anchors_clear(c);
	free(c->anchors);
	free(c->item_lines);
	free(c->item_cols);
	free(c->line_off);
	yaml_parser_delete(&c->parser);
}

static void conv_error(const conv *c, yamljson_error *err)
{
	err->code = c->errcode;
	err->line = c->err_line;
	err->col = c->err_col;
	snprintf(err->msg, sizeof(err->msg), "%s", c->err);
}

static void report(conv *c, yamljson_err_fn on_err, void *ctx)
{
	yamljson_error err;
	conv_error(c, &err);
	on_err(ctx, &err);
}

int yamljson_stream(const char *data, size_t len, const yamljson_opts *opts,
		yamljson_doc_fn on_doc, yamljson_err_fn on_err, void *ctx)
{
	conv c;
	yaml_event_t ev;
	int rc = 0, first = 0;

	if ((rc = conv_init(&c, data, len, opts)))
		return rc;
	for (;;) {
		if ((rc = conv_next(&c, &ev)))
			goto fail;
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT && (ev.data.document_start.version_directive
				|| ev.data.document_start.tag_directives.start != ev.data.document_start.tag_directives.end)) {
			/* kubectl splits files at "---" lines first, so a directive
			 * ends up in a document of its own and fails: do the same. */
			rc = conv_fail(&c, &ev.start_mark, PLUMB_EINVALID,
					"yaml: %%YAML and %%TAG directives are not supported (kubectl rejects them)");
			yaml_event_delete(&ev);
			goto fail;
		}
		if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		if (ev.type == YAML_DOCUMENT_END_EVENT) {
			anchors_clear(&c);
			c.nodes = 0;
			c.bytes = 0;
			yaml_event_delete(&ev);
			continue;
		}
		cJSON *root = NULL;
		yamljson_doc doc = { c.doc_index, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
			NULL, NULL, 0 };
		c.no_subst = opts->lookup && opts->substitute_doc && !opts->substitute_doc(opts->lookup_ctx, c.doc_index);
		c.doc_index++;
		c.nitems = 0;
		if ((rc = conv_node(&c, &ev, &root, 0)))
			goto fail;
		doc.item_lines = c.item_lines;
		doc.item_cols = c.item_cols;
		doc.nitems = c.nitems;
		if ((rc = on_doc(ctx, root, &doc)))
			goto fail;
		continue;
fail:
		if (!c.errcode)
			conv_fail(&c, NULL, rc, "%s", plumb_error_last());
		report(&c, on_err, ctx);
		if (!first)
			first = c.errcode;
		if (c.parser_broken || c.errcode == PLUMB_ENOMEM)
			break;
		c.errcode = 0;
		/* Skip what is left of this document. */
		for (;;) {
			if (conv_next(&c, &ev)) {
				report(&c, on_err, ctx);
				goto done;
			}
			yaml_event_type_t t = ev.type;
			yaml_event_delete(&ev);
			if (t == YAML_DOCUMENT_END_EVENT || t == YAML_STREAM_END_EVENT)
				break;
		}
		anchors_clear(&c);
		c.nodes = 0;
		c.bytes = 0;
	}
done:
	conv_done(&c);
	return first;
}

int yamljson_first(cJSON **out, yamljson_error *err, const char *data, size_t len,
		const yamljson_opts *opts)
{
	conv c;
	yaml_event_t ev;
	cJSON *root = NULL;
	int rc;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	if ((rc = conv_init(&c, data, len, opts))) {
		err->code = rc;
		snprintf(err->msg, sizeof(err->msg), "%s", plumb_error_last());
		return rc;
	}
	for (;;) {
		if ((rc = conv_next(&c, &ev)))
			goto cleanup;
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		if ((rc = conv_node(&c, &ev, &root, 0)))
			goto cleanup;
		break;
	}
	*out = root;
	root = NULL;
cleanup:
	if (rc)
		conv_error(&c, err);
	cJSON_Delete(root);
	conv_done(&c);
	return rc;
}

int yamljson_plain_is_string(const char *s, size_t n)
{
	resolved r;
	yamljson_resolve_plain(&r, s, n);
	return r.kind == R_STR;
}
