/*
 * Projection, drift comparison, field-manager attribution (managedFields)
 * and the text of a unified YAML diff. Kept behind apply_internal.h so the
 * engine can switch to pkg/diff's equivalents without other changes.
 */
#include "apply/apply_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128
#define DIFF_MAX_CELLS (4u * 1000 * 1000)
#define DIFF_CONTEXT 3

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

/* ---- paths and managers --------------------------------------------------- */

typedef struct {
	const char *key;     /* map key, or NULL for a list index */
	int index;
	const cJSON *elem;   /* the live list element at index (for k:/v: keys) */
} seg;

static int path_append(plumb_buf *b, const seg *segs, size_t n)
{
	int err = 0;
	for (size_t i = 0; i < n && !err; i++) {
		if (!segs[i].key) {
			err = plumb_buf_printf(b, "[%d]", segs[i].index);
			continue;
		}
		int plain = *segs[i].key != 0;
		for (const char *p = segs[i].key; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
				plain = 0;
		if (plain)
			err = plumb_buf_printf(b, "%s%s", i ? "." : "", segs[i].key);
		else if ((err = plumb_buf_puts(b, "[")) == 0 &&
			 (err = plumb_buf_json_string(b, segs[i].key)) == 0)
			err = plumb_buf_puts(b, "]");
	}
	return err;
}

/* Does a "k:{...}" / "v:..." key of a managedFields set name elem? */
static int set_key_matches(const char *key, const cJSON *elem)
{
	cJSON *k;
	int ok = 0;
	if (!elem || (strncmp(key, "k:", 2) && strncmp(key, "v:", 2)))
		return 0;
	k = cJSON_Parse(key + 2);
	if (!k)
		return 0;
	if (key[0] == 'v') {
		ok = cJSON_Compare(k, elem, 1);
	} else if (cJSON_IsObject(k) && cJSON_IsObject(elem)) {
		const cJSON *m;
		ok = 1;
		cJSON_ArrayForEach(m, k) {
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(elem, m->string);
			if (!e || !cJSON_Compare(m, e, 1))
				ok = 0;
		}
	}
	cJSON_Delete(k);
	return ok;
}

/* 1 when the field set fs owns the path (or an atomic ancestor of it). */
static int set_owns(const cJSON *fs, const seg *segs, size_t n)
{
	const cJSON *node = fs;
	for (size_t i = 0; i < n; i++) {
		const cJSON *next = NULL, *c;
		if (segs[i].key) {
			char f[512];
			snprintf(f, sizeof(f), "f:%s", segs[i].key);
			next = cJSON_GetObjectItemCaseSensitive(node, f);
		} else {
			char f[32];
			snprintf(f, sizeof(f), "i:%d", segs[i].index);
			next = cJSON_GetObjectItemCaseSensitive(node, f);
			cJSON_ArrayForEach(c, node) {
				if (next)
					break;
				if (set_key_matches(c->string, segs[i].elem))
					next = c;
			}
		}
		if (!next)
			return i > 0 && cJSON_IsObject(node) && !node->child;
		node = next;
	}
	return 1;
}

/* The manager responsible for a path of live, as a new string. */
static char *manager_for(const cJSON *live, const seg *segs, size_t n)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(live, "metadata");
	const cJSON *mf = cJSON_GetObjectItemCaseSensitive(meta, "managedFields");
	const cJSON *e;
	const char *owner = NULL, *plumb_owner = NULL, *recent = NULL, *recent_time = "";

	cJSON_ArrayForEach(e, mf) {
		const cJSON *mgr = cJSON_GetObjectItemCaseSensitive(e, "manager");
		const cJSON *op = cJSON_GetObjectItemCaseSensitive(e, "operation");
		const cJSON *tm = cJSON_GetObjectItemCaseSensitive(e, "time");
		const cJSON *fs = cJSON_GetObjectItemCaseSensitive(e, "fieldsV1");
		int is_plumb;
		if (!cJSON_IsString(mgr))
			continue;
		is_plumb = !strcmp(mgr->valuestring, APPLY_FIELD_MANAGER) &&
			   cJSON_IsString(op) && !strcmp(op->valuestring, "Apply");
		if (set_owns(fs, segs, n)) {
			if (is_plumb)
				plumb_owner = mgr->valuestring;
			else if (!owner)
				owner = mgr->valuestring;
		}
		if (!is_plumb && cJSON_IsString(tm) && strcmp(tm->valuestring, recent_time) >= 0) {
			recent = mgr->valuestring;
			recent_time = tm->valuestring;
		}
	}
	if (!owner && !plumb_owner)
		owner = recent;
	if (!owner)
		owner = plumb_owner;
	return plumb_strdup(owner ? owner : "");
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

static int fields_push(apply_fields *out, const cJSON *live, const seg *segs,
	size_t n, int with_manager)
{
	plumb_buf b = PLUMB_BUF_INIT(64 * 1024);
	apply_field *f;
	int err;

	if (out->count == out->alloc) {
		size_t na = out->alloc ? out->alloc * 2 : 8;
		apply_field *items = realloc(out->items, na * sizeof(*items));
		if (!items)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		out->items = items;
		out->alloc = na;
	}
	if ((err = path_append(&b, segs, n)) || (err = plumb_buf_puts(&b, ""))) {
		plumb_buf_free(&b);
		return err;
	}
	f = &out->items[out->count];
	f->path = plumb_buf_detach(&b);
	f->manager = with_manager ? manager_for(live, segs, n) : NULL;
	out->count++;
	return 0;
}

static int compare_rec(apply_fields *out, const cJSON *want, const cJSON *have,
	const cJSON *live, seg *segs, size_t depth, int with_manager)
{
	int diffs = 0, r;

	if (depth >= MAX_DEPTH)
		return plumb_error_set(PLUMB_ETOOBIG, "object nested too deeply");
	if (cJSON_IsObject(want) && cJSON_IsObject(have)) {
		const cJSON *w;
		cJSON_ArrayForEach(w, want) {
			segs[depth].key = w->string;
			segs[depth].elem = NULL;
			r = compare_rec(out, w, cJSON_GetObjectItemCaseSensitive(have, w->string),
				live, segs, depth + 1, with_manager);
			if (r < 0)
				return r;
			diffs += r;
		}
		return diffs;
	}
	if (cJSON_IsArray(want) && cJSON_IsArray(have) &&
	    cJSON_GetArraySize(want) == cJSON_GetArraySize(have)) {
		const cJSON *w = want->child, *h = have->child;
		for (int i = 0; w && h; i++, w = w->next, h = h->next) {
			segs[depth].key = NULL;
			segs[depth].index = i;
			segs[depth].elem = h;
			r = compare_rec(out, w, h, live, segs, depth + 1, with_manager);
			if (r < 0)
				return r;
			diffs += r;
		}
		return diffs;
	}
	if (have && cJSON_Compare(want, have, 1))
		return 0;
	if (out && (r = fields_push(out, live, segs, depth, with_manager)))
		return r;
	return 1;
}

int apply_compare(apply_fields *out, const cJSON *want, const cJSON *live, int with_manager)
{
	seg segs[MAX_DEPTH];
	return compare_rec(out, want, live, live, segs, 0, with_manager);
}

/* ---- YAML text ------------------------------------------------------------ */

static int plain_ok(const char *s)
{
	static const char *const reserved[] = { "true", "false", "null", "yes", "no",
		"on", "off", "y", "n", "~", NULL };
	if (!*s || isdigit((unsigned char)*s) || *s == '-' || *s == '.')
		return 0;
	for (int i = 0; reserved[i]; i++)
		if (!strcasecmp(s, reserved[i]))
			return 0;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._/-", *p))
			return 0;
	return 1;
}

static int yaml_scalar(plumb_buf *b, const cJSON *v)
{
	char *s;
	int err;
	if (cJSON_IsString(v))
		return plain_ok(v->valuestring) ? plumb_buf_puts(b, v->valuestring)
						: plumb_buf_json_string(b, v->valuestring);
	if (cJSON_IsObject(v))
		return plumb_buf_puts(b, "{}");
	if (cJSON_IsArray(v))
		return plumb_buf_puts(b, "[]");
	s = cJSON_PrintUnformatted(v);
	if (!s)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	err = plumb_buf_puts(b, s);
	cJSON_free(s);
	return err;
}

static int indent(plumb_buf *b, int n)
{
	int err = 0;
	for (int i = 0; i < n && !err; i++)
		err = plumb_buf_append(b, " ", 1);
	return err;
}

static int yaml_node(plumb_buf *b, const cJSON *v, int ind, int depth);

static int yaml_value_after_key(plumb_buf *b, const cJSON *c, int ind, int depth)
{
	int err;
	if (cJSON_IsObject(c) && c->child) {
		if ((err = plumb_buf_puts(b, "\n")))
			return err;
		return yaml_node(b, c, ind + 2, depth + 1);
	}
	if (cJSON_IsArray(c) && c->child) {
		if ((err = plumb_buf_puts(b, "\n")))
			return err;
		return yaml_node(b, c, ind, depth + 1);
	}
	if ((err = plumb_buf_puts(b, " ")) || (err = yaml_scalar(b, c)))
		return err;
	return plumb_buf_puts(b, "\n");
}

static int yaml_node(plumb_buf *b, const cJSON *v, int ind, int depth)
{
	const cJSON *c;
	int err = 0;

	if (depth > MAX_DEPTH)
		return plumb_error_set(PLUMB_ETOOBIG, "object nested too deeply");
	if (cJSON_IsObject(v)) {
		cJSON_ArrayForEach(c, v) {
			cJSON key = { 0 };
			key.type = cJSON_String;
			key.valuestring = c->string;
			if ((err = indent(b, ind)) || (err = yaml_scalar(b, &key)) ||
			    (err = plumb_buf_puts(b, ":")) ||
			    (err = yaml_value_after_key(b, c, ind, depth)))
				return err;
		}
		return 0;
	}
	if (cJSON_IsArray(v)) {
		cJSON_ArrayForEach(c, v) {
			if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && c->child) {
				plumb_buf sub = PLUMB_BUF_INIT(b->max);
				if ((err = yaml_node(&sub, c, ind + 2, depth + 1)) == 0 &&
				    (err = indent(b, ind)) == 0 && (err = plumb_buf_puts(b, "- ")) == 0)
					err = plumb_buf_puts(b, sub.ptr + ind + 2);
				plumb_buf_free(&sub);
				if (err)
					return err;
			} else if ((err = indent(b, ind)) || (err = plumb_buf_puts(b, "- ")) ||
				   (err = yaml_scalar(b, c)) || (err = plumb_buf_puts(b, "\n"))) {
				return err;
			}
		}
		return 0;
	}
	if ((err = indent(b, ind)) || (err = yaml_scalar(b, v)))
		return err;
	return plumb_buf_puts(b, "\n");
}

int apply_yaml(plumb_buf *out, const cJSON *v)
{
	if (!v)
		return 0;
	return yaml_node(out, v, 0, 0);
}

/* ---- unified diff --------------------------------------------------------- */

typedef struct {
	const char **l;
	size_t *len;
	size_t n;
} lines;

static int split(lines *out, const char *s)
{
	size_t n = 0, alloc = 0;
	memset(out, 0, sizeof(*out));
	while (s && *s) {
		const char *nl = strchr(s, '\n');
		size_t l = nl ? (size_t)(nl - s) : strlen(s);
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			const char **a = realloc(out->l, na * sizeof(*a));
			size_t *b;
			if (!a)
				return PLUMB_ENOMEM;
			out->l = a;
			b = realloc(out->len, na * sizeof(*b));
			if (!b)
				return PLUMB_ENOMEM;
			out->len = b;
			alloc = na;
		}
		out->l[n] = s;
		out->len[n] = l;
		n++;
		out->n = n;
		s += l + (nl ? 1 : 0);
	}
	return 0;
}

static int line_eq(const lines *a, size_t i, const lines *b, size_t j)
{
	return a->len[i] == b->len[j] && !memcmp(a->l[i], b->l[j], a->len[i]);
}

/* ops: ' ', '-', '+' with the line index into a or b. */
typedef struct {
	char op;
	size_t ai, bi;
} edit;

static int emit_hunks(plumb_buf *b, const edit *ed, size_t ne, const lines *A, const lines *B)
{
	size_t i = 0;
	int err = 0;
	while (i < ne) {
		size_t start, end, k, a0 = 0, b0 = 0, ac = 0, bc = 0;
		while (i < ne && ed[i].op == ' ')
			i++;
		if (i >= ne)
			break;
		start = i > DIFF_CONTEXT ? i - DIFF_CONTEXT : 0;
		end = i;
		/* extend while changes are within 2*context of each other */
		for (k = i; k < ne; k++) {
			if (ed[k].op != ' ')
				end = k;
			else if (k - end > 2 * DIFF_CONTEXT)
				break;
		}
		end = end + DIFF_CONTEXT + 1 < ne ? end + DIFF_CONTEXT + 1 : ne;
		for (k = start; k < end; k++) {
			if (ed[k].op != '+') {
				if (!ac++)
					a0 = ed[k].ai;
			}
			if (ed[k].op != '-') {
				if (!bc++)
					b0 = ed[k].bi;
			}
		}
		if ((err = plumb_buf_printf(b, "@@ -%zu,%zu +%zu,%zu @@\n", ac ? a0 + 1 : a0, ac,
			bc ? b0 + 1 : b0, bc)))
			return err;
		for (k = start; k < end; k++) {
			const lines *src = ed[k].op == '+' ? B : A;
			size_t idx = ed[k].op == '+' ? ed[k].bi : ed[k].ai;
			if ((err = plumb_buf_append(b, &ed[k].op, 1)) ||
			    (err = plumb_buf_append(b, src->l[idx], src->len[idx])) ||
			    (err = plumb_buf_puts(b, "\n")))
				return err;
		}
		i = end;
	}
	return 0;
}

int apply_unified_diff(char **out, const cJSON *from, const cJSON *to,
	const char *from_label, const char *to_label)
{
	plumb_buf ya = PLUMB_BUF_INIT(16u * 1024 * 1024), yb = PLUMB_BUF_INIT(16u * 1024 * 1024);
	plumb_buf res = PLUMB_BUF_INIT(APPLY_MAX_DIFF_TEXT);
	lines A = { 0 }, B = { 0 };
	edit *ed = NULL;
	size_t ne = 0, pre = 0, suf = 0, n, m;
	unsigned *dp = NULL;
	int err;

	*out = NULL;
	if ((err = apply_yaml(&ya, from)) || (err = apply_yaml(&yb, to)))
		goto cleanup;
	if ((err = split(&A, ya.ptr)) || (err = split(&B, yb.ptr))) {
		err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	ed = malloc((A.n + B.n + 1) * sizeof(*ed));
	if (!ed) {
		err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	while (pre < A.n && pre < B.n && line_eq(&A, pre, &B, pre))
		pre++;
	while (suf < A.n - pre && suf < B.n - pre && line_eq(&A, A.n - 1 - suf, &B, B.n - 1 - suf))
		suf++;
	for (size_t i = 0; i < pre; i++)
		ed[ne++] = (edit){ ' ', i, i };
	n = A.n - pre - suf;
	m = B.n - pre - suf;
	if (n && m && (n + 1) * (m + 1) <= DIFF_MAX_CELLS)
		dp = calloc((n + 1) * (m + 1), sizeof(*dp));
	if (dp) {
		/* LCS table over the middle part, filled from the end */
		for (size_t i = n; i-- > 0;)
			for (size_t j = m; j-- > 0;)
				dp[i * (m + 1) + j] = line_eq(&A, pre + i, &B, pre + j)
					? dp[(i + 1) * (m + 1) + j + 1] + 1
					: (dp[(i + 1) * (m + 1) + j] >= dp[i * (m + 1) + j + 1]
						? dp[(i + 1) * (m + 1) + j] : dp[i * (m + 1) + j + 1]);
		size_t i = 0, j = 0;
		while (i < n || j < m) {
			if (i < n && j < m && line_eq(&A, pre + i, &B, pre + j)) {
				ed[ne++] = (edit){ ' ', pre + i, pre + j };
				i++, j++;
			} else if (j < m && (i == n || dp[i * (m + 1) + j + 1] >= dp[(i + 1) * (m + 1) + j])) {
				ed[ne++] = (edit){ '+', pre + i, pre + j };
				j++;
			} else {
				ed[ne++] = (edit){ '-', pre + i, pre + j };
				i++;
			}
		}
	} else {
		for (size_t i = 0; i < n; i++)
			ed[ne++] = (edit){ '-', pre + i, pre };
		for (size_t j = 0; j < m; j++)
			ed[ne++] = (edit){ '+', pre + n, pre + j };
	}
	for (size_t k = 0; k < suf; k++)
		ed[ne++] = (edit){ ' ', A.n - suf + k, B.n - suf + k };
	if (n == 0 && m == 0) {
		err = 0;  /* identical: no text */
		goto cleanup;
	}
	if ((err = plumb_buf_printf(&res, "--- %s\n+++ %s\n", from_label, to_label)) ||
	    (err = emit_hunks(&res, ed, ne, &A, &B))) {
		if (err == PLUMB_ETOOBIG) {
			plumb_error_clear();
			err = plumb_buf_puts(&res, "");
			/* keep what fits, then say so */
			res.max += 64;
			plumb_buf_puts(&res, "... (diff truncated)\n");
		}
		if (err)
			goto cleanup;
	}
	*out = plumb_buf_detach(&res);
cleanup:
	free(dp);
	free(ed);
	free(A.l);
	free(A.len);
	free(B.l);
	free(B.len);
	plumb_buf_free(&ya);
	plumb_buf_free(&yb);
	plumb_buf_free(&res);
	return err;
}
