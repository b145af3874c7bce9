/*
 * pkg/diff: normalisation, field-level comparison and ownership lookup.
 * The YAML emitter and the unified diff are in yaml_emit.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"

#define DIFF_MAX_PATH_LEN (64 * 1024)

static const char *const server_meta[] = {
	"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
	"selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
};

static int is_server_meta(const char *key)
{
	for (size_t i = 0; i < sizeof(server_meta) / sizeof(server_meta[0]); i++)
		if (!strcmp(server_meta[i], key))
			return 1;
	return 0;
}

void diff_result_free(diff_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->count; i++)
		free(r->paths[i]);
	free(r->paths);
	memset(r, 0, sizeof(*r));
}

/* ---- equality ------------------------------------------------------------ */

static int number_of(const cJSON *v, double *d)
{
	if (cJSON_IsNumber(v)) {
		*d = v->valuedouble;
		return 1;
	}
	if (cJSON_IsRaw(v) && v->valuestring) {
		char *end = NULL;
		*d = strtod(v->valuestring, &end);
		return end && end != v->valuestring && *end == '\0';
	}
	return 0;
}

static int is_int_text(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

int diff_json_equal(const cJSON *a, const cJSON *b)
{
	double x, y;

	if (!a || !b)
		return a == b;
	if (cJSON_IsRaw(a) && cJSON_IsRaw(b) && !strcmp(a->valuestring, b->valuestring))
		return 1;
	if (cJSON_IsRaw(b) && !cJSON_IsRaw(a)) {
		const cJSON *t = a;
		a = b;
		b = t;
	}
	if (cJSON_IsRaw(a) && is_int_text(a->valuestring) && cJSON_IsNumber(b)) {
		/* An integer beyond 2^53 kept exactly: a double equals it only if
		 * it prints as the same digits. */
		char buf[64];
		double d = b->valuedouble;
		if (d != floor(d) || fabs(d) >= 9.3e18)
			return 0;
		snprintf(buf, sizeof(buf), "%lld", (long long)d);
		return !strcmp(buf, a->valuestring[0] == '+' ? a->valuestring + 1 : a->valuestring);
	}
	if (cJSON_IsRaw(a) && cJSON_IsRaw(b) && is_int_text(a->valuestring) && is_int_text(b->valuestring))
		return 0; /* different digits (both are canonical) */
	if (number_of(a, &x) && number_of(b, &y))
		return x == y;
	if ((a->type & 0xff) != (b->type & 0xff))
		return 0;
	if (cJSON_IsString(a))
		return !strcmp(a->valuestring, b->valuestring);
	if (cJSON_IsArray(a)) {
		const cJSON *p = a->child, *q = b->child;
		for (; p && q; p = p->next, q = q->next)
			if (!diff_json_equal(p, q))
				return 0;
		return !p && !q;
	}
	if (cJSON_IsObject(a)) {
		size_t na = 0, nb = 0;
		for (const cJSON *p = a->child; p; p = p->next, na++)
			if (!diff_json_equal(p, cJSON_GetObjectItemCaseSensitive(b, p->string)))
				return 0;
		for (const cJSON *q = b->child; q; q = q->next)
			nb++;
		return na == nb;
	}
	return 1; /* null, true, false: the type said it all */
}

/* ---- paths --------------------------------------------------------------- */

static int bare_key(const char *k)
{
	if (!*k)
		return 0;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9')
				|| *k == '_' || *k == '-'))
			return 0;
	return 1;
}

int diff_path_append_key(plumb_buf *buf, const char *key)
{
	int rc;
	if (!bare_key(key)) {
		if ((rc = plumb_buf_puts(buf, "[")) || (rc = plumb_buf_json_string(buf, key)))
			return rc;
		return plumb_buf_puts(buf, "]");
	}
	if (buf->len && (rc = plumb_buf_puts(buf, ".")))
		return rc;
	return plumb_buf_puts(buf, key);
}

int diff_path_append_index(plumb_buf *buf, int index)
{
	return plumb_buf_printf(buf, "[%d]", index);
}

/* ---- comparison ---------------------------------------------------------- */

typedef struct {
	diff_result *out;
	plumb_buf path;
	int rc;
} walker;

static void add_path(walker *w)
{
	diff_result *r = w->out;
	if (w->rc)
		return;
	if (r->count >= DIFF_MAX_PATHS) {
		r->dropped++;
		return;
	}
	if (r->count == r->alloc) {
		size_t na = r->alloc ? r->alloc * 2 : 8;
		char **p = realloc(r->paths, na * sizeof(*p));
		if (!p) {
			w->rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			return;
		}
		r->paths = p;
		r->alloc = na;
	}
	if (!(r->paths[r->count] = plumb_strdup(w->path.ptr ? w->path.ptr : ""))) {
		w->rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		return;
	}
	r->count++;
}

static int skip_field(int depth, const char *parent, const char *key)
{
	if (depth == 0 && !strcmp(key, "status"))
		return 1;
	return depth == 1 && parent && !strcmp(parent, "metadata") && is_server_meta(key);
}

static void compare(walker *w, const cJSON *d, const cJSON *l, int depth, const char *parent)
{
	size_t mark = w->path.len;

	if (w->rc)
		return;
	if (cJSON_IsNull(d)) {
		if (l && !cJSON_IsNull(l))
			add_path(w);
		return;
	}
	if (cJSON_IsObject(d)) {
		if (!cJSON_IsObject(l)) {
			add_path(w);
			return;
		}
		for (const cJSON *it = d->child; it && !w->rc; it = it->next) {
			if (skip_field(depth, parent, it->string))
				continue;
			if ((w->rc = diff_path_append_key(&w->path, it->string)))
				return;
			compare(w, it, cJSON_GetObjectItemCaseSensitive(l, it->string), depth + 1, it->string);
			w->path.len = mark;
			if (w->path.ptr)
				w->path.ptr[mark] = '\0';
		}
		return;
	}
	if (cJSON_IsArray(d)) {
		if (!cJSON_IsArray(l) || cJSON_GetArraySize(d) != cJSON_GetArraySize(l)) {
			add_path(w);
			return;
		}
		int i = 0;
		for (const cJSON *p = d->child, *q = l->child; p && !w->rc; p = p->next, q = q->next, i++) {
			if ((w->rc = diff_path_append_index(&w->path, i)))
				return;
			compare(w, p, q, depth + 1, NULL);
			w->path.len = mark;
			w->path.ptr[mark] = '\0';
		}
		return;
	}
	if (!diff_json_equal(d, l))
		add_path(w);
}

/* Fields previous set, desired no longer sets and live still has. */
static void removed(walker *w, const cJSON *prev, const cJSON *d, const cJSON *l, int depth,
		const char *parent)
{
	size_t mark = w->path.len;

	if (w->rc || !cJSON_IsObject(prev) || !cJSON_IsObject(l))
		return;
	for (const cJSON *it = prev->child; it && !w->rc; it = it->next) {
		if (skip_field(depth, parent, it->string))
			continue;
		const cJSON *dv = cJSON_IsObject(d) ? cJSON_GetObjectItemCaseSensitive(d, it->string) : NULL;
		const cJSON *lv = cJSON_GetObjectItemCaseSensitive(l, it->string);
		if (!lv || cJSON_IsNull(lv))
			continue;
		if ((w->rc = diff_path_append_key(&w->path, it->string)))
			return;
		if (!dv || cJSON_IsNull(dv))
			add_path(w);
		else if (cJSON_IsObject(dv) && cJSON_IsObject(it))
			removed(w, it, dv, lv, depth + 1, it->string);
		w->path.len = mark;
		w->path.ptr[mark] = '\0';
	}
}

int diff_objects(diff_result *out, const cJSON *desired, const cJSON *live, const cJSON *previous)
{
	walker w = { out, PLUMB_BUF_INIT(DIFF_MAX_PATH_LEN), 0 };

	if (!live) {
		add_path(&w);
	} else {
		compare(&w, desired, live, 0, NULL);
		if (previous)
			removed(&w, previous, desired, live, 0, NULL);
	}
	plumb_buf_free(&w.path);
	if (w.rc == PLUMB_ETOOBIG)
		return plumb_error_set(PLUMB_ETOOBIG, "field path longer than %d bytes", DIFF_MAX_PATH_LEN);
	return w.rc;
}

/* ---- normalisation ------------------------------------------------------- */

static void keep_only(cJSON *meta, const cJSON *dmeta, const char *field)
{
	cJSON *m = cJSON_GetObjectItemCaseSensitive(meta, field);
	const cJSON *dm = cJSON_GetObjectItemCaseSensitive(dmeta, field);
	if (!m)
		return;
	if (!cJSON_IsObject(m) || !cJSON_IsObject(dm)) {
		cJSON_DeleteItemFromObjectCaseSensitive(meta, field);
		return;
	}
	for (cJSON *it = m->child, *next; it; it = next) {
		next = it->next;
		if (!cJSON_GetObjectItemCaseSensitive(dm, it->string))
			cJSON_Delete(cJSON_DetachItemViaPointer(m, it));
	}
	if (!m->child)
		cJSON_DeleteItemFromObjectCaseSensitive(meta, field);
}

int diff_normalize(cJSON **out, const cJSON *live, const cJSON *desired)
{
	cJSON *copy = cJSON_Duplicate(live, 1);
	if (!copy)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	cJSON_DeleteItemFromObjectCaseSensitive(copy, "status");
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(copy, "metadata");
	const cJSON *dmeta = desired ? cJSON_GetObjectItemCaseSensitive(desired, "metadata") : NULL;
	if (cJSON_IsObject(meta)) {
		for (size_t i = 0; i < sizeof(server_meta) / sizeof(server_meta[0]); i++)
			cJSON_DeleteItemFromObjectCaseSensitive(meta, server_meta[i]);
		keep_only(meta, dmeta, "labels");
		keep_only(meta, dmeta, "annotations");
		if (!cJSON_GetObjectItemCaseSensitive(dmeta, "finalizers"))
			cJSON_DeleteItemFromObjectCaseSensitive(meta, "finalizers");
	}
	*out = copy;
	return 0;
}

/* ---- ownership ----------------------------------------------------------- */

typedef struct {
	int is_index;
	int index;
	char *key;
} seg;

static void segs_free(seg *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i].key);
	free(s);
}

/* Parses a path produced by diff_objects back into segments. */
static int path_parse(seg **out, size_t *nout, const char *path)
{
	seg *segs = NULL;
	size_t n = 0;
	const char *p = path;
	int rc = 0;

	while (*p) {
		seg s = { 0, 0, NULL };
		if (*p == '.' && n > 0)
			p++;
		if (*p == '[') {
			p++;
			if (*p == '"') {
				/* A JSON string: reuse cJSON to unescape it. */
				const char *q = p + 1;
				while (*q && *q != '"')
					q += (*q == '\\' && q[1]) ? 2 : 1;
				if (*q != '"' || q[1] != ']') {
					rc = plumb_error_set(PLUMB_EINVALID, "field path \"%s\": unterminated [\"", path);
					goto cleanup;
				}
				char *lit = plumb_strndup(p, (size_t)(q - p) + 1);
				cJSON *js = lit ? cJSON_Parse(lit) : NULL;
				free(lit);
				if (!cJSON_IsString(js)) {
					cJSON_Delete(js);
					rc = plumb_error_set(PLUMB_EINVALID, "field path \"%s\": bad quoted key", path);
					goto cleanup;
				}
				s.key = plumb_strdup(js->valuestring);
				cJSON_Delete(js);
				p = q + 2;
			} else {
				char *end = NULL;
				long v = strtol(p, &end, 10);
				if (end == p || *end != ']' || v < 0 || v > 10000000) {
					rc = plumb_error_set(PLUMB_EINVALID, "field path \"%s\": bad index", path);
					goto cleanup;
				}
				s.is_index = 1;
				s.index = (int)v;
				p = end + 1;
			}
		} else {
			const char *q = p;
			while (*q && *q != '.' && *q != '[')
				q++;
			if (q == p) {
				rc = plumb_error_set(PLUMB_EINVALID, "field path \"%s\": empty key", path);
				goto cleanup;
			}
			s.key = plumb_strndup(p, (size_t)(q - p));
			p = q;
		}
		if (!s.is_index && !s.key) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		seg *np = realloc(segs, (n + 1) * sizeof(*np));
		if (!np) {
			free(s.key);
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		segs = np;
		segs[n++] = s;
	}
	*out = segs;
	*nout = n;
	segs = NULL;
	n = 0;
cleanup:
	segs_free(segs, n);
	return rc;
}

/* Does the fieldsV1 member name (k:{...} or v:...) describe live item? */
static int set_member_matches(const char *name, const cJSON *item, int index)
{
	if (!strncmp(name, "i:", 2))
		return atoi(name + 2) == index;
	if (strncmp(name, "k:", 2) && strncmp(name, "v:", 2))
		return 0;
	cJSON *js = cJSON_Parse(name + 2);
	int ok = 0;
	if (!js)
		return 0;
	if (name[0] == 'v') {
		ok = diff_json_equal(js, item);
	} else if (cJSON_IsObject(js) && cJSON_IsObject(item)) {
		ok = 1;
		for (const cJSON *f = js->child; f && ok; f = f->next)
			ok = diff_json_equal(f, cJSON_GetObjectItemCaseSensitive(item, f->string));
	}
	cJSON_Delete(js);
	return ok;
}

static int entry_owns(const cJSON *fields, const cJSON *live, const seg *segs, size_t n)
{
	const cJSON *cur = fields, *lv = live;
	char name[1024];

	for (size_t i = 0; i < n; i++) {
		if (!cJSON_IsObject(cur))
			return 0;
		if (i > 0 && !cur->child)
			return 1; /* owns an enclosing atomic field */
		const cJSON *next = NULL;
		if (!segs[i].is_index) {
			snprintf(name, sizeof(name), "f:%s", segs[i].key);
			next = cJSON_GetObjectItemCaseSensitive(cur, name);
			lv = cJSON_GetObjectItemCaseSensitive(lv, segs[i].key);
		} else {
			const cJSON *item = cJSON_GetArrayItem(lv, segs[i].index);
			for (const cJSON *m = cur->child; m && !next; m = m->next)
				if (set_member_matches(m->string, item, segs[i].index))
					next = m;
			lv = item;
		}
		if (!next)
			return 0;
		cur = next;
	}
	return 1;
}

void diff_owners_free(diff_owner *owners, size_t n)
{
	if (!owners)
		return;
	for (size_t i = 0; i < n; i++) {
		free(owners[i].manager);
		free(owners[i].operation);
		free(owners[i].time);
		free(owners[i].subresource);
	}
	free(owners);
}

static char *dup_field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? plumb_strdup(v->valuestring) : NULL;
}

int diff_field_owners(diff_owner **out, size_t *nout, const cJSON *live, const char *path)
{
	seg *segs = NULL;
	size_t n = 0, count = 0;
	diff_owner *owners = NULL;
	int rc;

	if ((rc = path_parse(&segs, &n, path)))
		return rc;
	const cJSON *mf = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(live, "metadata"), "managedFields");
	const cJSON *e;
	cJSON_ArrayForEach(e, mf) {
		const cJSON *fields = cJSON_GetObjectItemCaseSensitive(e, "fieldsV1");
		if (!cJSON_IsObject(fields) || !entry_owns(fields, live, segs, n))
			continue;
		diff_owner *p = realloc(owners, (count + 1) * sizeof(*p));
		if (!p) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		owners = p;
		owners[count].manager = dup_field(e, "manager");
		owners[count].operation = dup_field(e, "operation");
		owners[count].time = dup_field(e, "time");
		owners[count].subresource = dup_field(e, "subresource");
		count++;
		if (!owners[count - 1].manager)
			owners[count - 1].manager = plumb_strdup("");
	}
	*out = owners;
	*nout = count;
	owners = NULL;
	count = 0;
cleanup:
	diff_owners_free(owners, count);
	segs_free(segs, n);
	return rc;
}
