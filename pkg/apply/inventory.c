/*
 * The inventory: text encoding (pure) and its storage as ConfigMaps in the
 * target cluster. See apply.h for the layout.
 */
#include "apply/apply_internal.h"

#include <stdlib.h>
#include <string.h>

#define INVENTORY_MAX_SHARDS 64
#define INVENTORY_MAX_TEXT (8u * 1024 * 1024)

static void entry_free(const apply_inventory *inv, apply_inventory_entry *e)
{
	if (inv->keep)
		plumb_keep_free(e->group);
	else
		free(e->group);
	e->group = e->version = e->kind = e->ns = e->name = NULL;
}

void apply_inventory_free(apply_inventory *inv)
{
	int keep;
	if (!inv)
		return;
	for (size_t i = 0; i < inv->count; i++)
		entry_free(inv, &inv->items[i]);
	free(inv->items);
	keep = inv->keep;
	memset(inv, 0, sizeof(*inv));
	inv->keep = keep;
}

int apply_inventory_add(apply_inventory *inv, const char *group,
	const char *version, const char *kind, const char *ns, const char *name)
{
	apply_inventory_entry *e;
	const char *parts[5] = { group ? group : "", version ? version : "", kind ? kind : "",
		ns ? ns : "", name ? name : "" };
	size_t lens[5], total = 0;
	char *block, *p;

	if (plumb_array_reserve(&inv->items, &inv->alloc, inv->count, sizeof(*inv->items), 64))
		return PLUMB_ENOMEM;
	for (int k = 0; k < 5; k++)
		total += (lens[k] = strlen(parts[k])) + 1;
	if (!(block = inv->keep ? plumb_keep_alloc(total) : malloc(total)))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	e = &inv->items[inv->count];
	p = block;
	char **fields[5] = { &e->group, &e->version, &e->kind, &e->ns, &e->name };
	for (int k = 0; k < 5; k++) {
		memcpy(p, parts[k], lens[k] + 1);
		*fields[k] = p;
		p += lens[k] + 1;
	}
	inv->count++;
	return 0;
}

static int entry_cmp_identity(const apply_inventory_entry *a, const apply_inventory_entry *b)
{
	int c;
	if ((c = strcmp(a->group, b->group)) != 0)
		return c;
	if ((c = strcmp(a->kind, b->kind)) != 0)
		return c;
	if ((c = strcmp(a->ns, b->ns)) != 0)
		return c;
	return strcmp(a->name, b->name);
}

/* qsort is not stable: carry the insertion index to keep "last wins". */
typedef struct {
	apply_inventory_entry e;
	size_t idx;
} indexed_entry;

static int indexed_cmp(const void *pa, const void *pb)
{
	const indexed_entry *a = pa, *b = pb;
	int c = entry_cmp_identity(&a->e, &b->e);
	if (c)
		return c;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

void apply_inventory_normalize(apply_inventory *inv)
{
	indexed_entry *tmp;
	size_t n = 0;

	if (inv->count < 2)
		return;
	tmp = malloc(inv->count * sizeof(*tmp));
	if (!tmp) {
		/* Fallback: keep order, duplicates stay (harmless for readers). */
		return;
	}
	for (size_t i = 0; i < inv->count; i++) {
		tmp[i].e = inv->items[i];
		tmp[i].idx = i;
	}
	if (inv->count > 1)
		qsort(tmp, inv->count, sizeof(*tmp), indexed_cmp);
	for (size_t i = 0; i < inv->count; i++) {
		if (i + 1 < inv->count && entry_cmp_identity(&tmp[i].e, &tmp[i + 1].e) == 0) {
			entry_free(inv, &tmp[i].e);
			continue;
		}
		inv->items[n++] = tmp[i].e;
	}
	inv->count = n;
	free(tmp);
}

static int needs_escape(unsigned char ch)
{
	return ch <= 0x20 || ch == 0x7f || ch == '%';
}

static int put_field(plumb_buf *b, const char *s, int dash_if_empty)
{
	static const char hex[] = "0123456789ABCDEF";
	int err;

	if (!*s)
		return dash_if_empty ? plumb_buf_puts(b, "-") : plumb_error_set(PLUMB_EINVALID, "inventory: empty name");
	if (strcmp(s, "-") == 0)  /* never a valid name/group; escape to keep "-" = empty */
		return plumb_buf_puts(b, "%2D");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (needs_escape(*p)) {
			char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			err = plumb_buf_append(b, esc, 3);
		} else {
			err = plumb_buf_append(b, p, 1);
		}
		if (err)
			return err;
	}
	return 0;
}

static int header_line(plumb_buf *b, const apply_inventory_entry *e)
{
	int err;
	if ((err = plumb_buf_puts(b, "@ ")) || (err = put_field(b, e->group, 1)) ||
	    (err = plumb_buf_puts(b, " ")) || (err = put_field(b, e->version, 1)) ||
	    (err = plumb_buf_puts(b, " ")) || (err = put_field(b, e->kind, 1)) ||
	    (err = plumb_buf_puts(b, " ")) || (err = put_field(b, e->ns, 1)) ||
	    (err = plumb_buf_puts(b, "\n")))
		return err;
	return 0;
}

static int same_block(const apply_inventory_entry *a, const apply_inventory_entry *b)
{
	return !strcmp(a->group, b->group) && !strcmp(a->version, b->version) &&
	       !strcmp(a->kind, b->kind) && !strcmp(a->ns, b->ns);
}

void apply_inventory_shards_free(char **shards, size_t n)
{
	if (!shards)
		return;
	for (size_t i = 0; i < n; i++)
		free(shards[i]);
	free(shards);
}

static int shards_push(char ***shards, size_t *n, size_t *alloc, plumb_buf *b)
{
	if (*n == *alloc) {
		size_t na = *alloc ? *alloc * 2 : 4;
		char **s = realloc(*shards, na * sizeof(*s));
		if (!s)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		*shards = s;
		*alloc = na;
	}
	if (!b->ptr && plumb_buf_puts(b, "") < 0)
		return PLUMB_ENOMEM;
	(*shards)[(*n)++] = plumb_buf_detach(b);
	return 0;
}

int apply_inventory_encode(char ***out, size_t *nout, const apply_inventory *inv,
	size_t max_shard)
{
	char **shards = NULL;
	size_t n = 0, alloc = 0;
	plumb_buf cur = PLUMB_BUF_INIT(INVENTORY_MAX_TEXT);
	plumb_buf line = PLUMB_BUF_INIT(INVENTORY_MAX_TEXT);
	const apply_inventory_entry *block = NULL;
	int err = 0;

	if (!max_shard)
		max_shard = APPLY_INVENTORY_SHARD;
	for (size_t i = 0; i < inv->count; i++) {
		const apply_inventory_entry *e = &inv->items[i];
		int new_block = !block || !same_block(block, e);

		plumb_buf_reset(&line);
		if (new_block && (err = header_line(&line, e)))
			goto cleanup;
		if ((err = put_field(&line, e->name, 0)) || (err = plumb_buf_puts(&line, "\n")))
			goto cleanup;
		if (cur.len && cur.len + line.len > max_shard) {
			if ((err = shards_push(&shards, &n, &alloc, &cur)))
				goto cleanup;
			if (!new_block) {
				/* a new shard restarts with the block header */
				plumb_buf_reset(&line);
				if ((err = header_line(&line, e)) || (err = put_field(&line, e->name, 0)) ||
				    (err = plumb_buf_puts(&line, "\n")))
					goto cleanup;
			}
		}
		if (line.len > max_shard) {
			err = plumb_error_set(PLUMB_ETOOBIG, "inventory: entry %s/%s larger than a shard",
				e->kind, e->name);
			goto cleanup;
		}
		if ((err = plumb_buf_append(&cur, line.ptr, line.len)))
			goto cleanup;
		block = e;
	}
	if (cur.len || n == 0)
		if ((err = shards_push(&shards, &n, &alloc, &cur)))
			goto cleanup;
	*out = shards;
	*nout = n;
	shards = NULL;
cleanup:
	apply_inventory_shards_free(shards, n);
	plumb_buf_free(&cur);
	plumb_buf_free(&line);
	return err;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Unescapes [s, s+len) into a new string; "-" alone means "". */
static char *get_field(const char *s, size_t len)
{
	char *out, *o;
	if (len == 1 && s[0] == '-')
		return plumb_strdup("");
	out = malloc(len + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int h, l;
			if (i + 2 >= len) {
				free(out);
				return NULL;
			}
			h = hexval(s[i + 1]);
			l = hexval(s[i + 2]);
			if (h < 0 || l < 0) {
				free(out);
				return NULL;
			}
			*o++ = (char)(h * 16 + l);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

int apply_inventory_decode(apply_inventory *inv, const char *text, size_t len)
{
	char *hdr[4] = { NULL, NULL, NULL, NULL };
	char *name = NULL;
	int have_block = 0, err = 0;
	size_t lineno = 0, pos = 0;

	while (pos < len) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - l) : len - pos;

		pos += ll + (nl ? 1 : 0);
		lineno++;
		if (ll == 0)
			continue;
		if (l[0] == '@') {
			const char *p = l + 1, *end = l + ll;
			for (int k = 0; k < 4; k++) {
				const char *s, *f;
				if (p >= end || *p != ' ') {
					err = plumb_error_set(PLUMB_EINVALID, "inventory line %zu: bad block header", lineno);
					goto cleanup;
				}
				s = p + 1;
				f = memchr(s, ' ', (size_t)(end - s));
				if (!f)
					f = end;
				if (f == s) {
					err = plumb_error_set(PLUMB_EINVALID, "inventory line %zu: empty field", lineno);
					goto cleanup;
				}
				free(hdr[k]);
				hdr[k] = get_field(s, (size_t)(f - s));
				if (!hdr[k]) {
					err = plumb_error_set(PLUMB_EINVALID, "inventory line %zu: bad escape", lineno);
					goto cleanup;
				}
				p = f;
			}
			if (p != end) {
				err = plumb_error_set(PLUMB_EINVALID, "inventory line %zu: trailing fields", lineno);
				goto cleanup;
			}
			have_block = 1;
			continue;
		}
		if (!have_block) {
			err = plumb_error_set(PLUMB_EINVALID, "inventory line %zu: name before any block header", lineno);
			goto cleanup;
		}
		if (memchr(l, ' ', ll)) {
			err = plumb_error_set(PLUMB_EINVALID, "inventory line %zu: space in name", lineno);
			goto cleanup;
		}
		name = get_field(l, ll);
		if (!name || !*name) {
			err = plumb_error_set(PLUMB_EINVALID, "inventory line %zu: bad name", lineno);
			goto cleanup;
		}
		if ((err = apply_inventory_add(inv, hdr[0], hdr[1], hdr[2], hdr[3], name)))
			goto cleanup;
		free(name);
		name = NULL;
	}
cleanup:
	for (int k = 0; k < 4; k++)
		free(hdr[k]);
	free(name);
	return err;
}

/* ---- storage in the cluster ---------------------------------------------- */

static const kube_resource configmaps = {
	.group = "", .version = "v1", .kind = "ConfigMap", .resource = "configmaps",
	.namespaced = 1,
};
static const kube_resource namespaces = {
	.group = "", .version = "v1", .kind = "Namespace", .resource = "namespaces",
	.namespaced = 0,
};

static const char *data_str(const cJSON *cm, const char *key)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(cm, "data");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *meta_str(const cJSON *obj, const char *key)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

void apply_inv_state_clear(apply_inv_state *st)
{
	apply_inventory_free(&st->inv);
	apply_inventory_shards_free(st->shard_names, st->nshard_names);
	st->shard_names = NULL;
	st->nshard_names = 0;
	free(st->head_rv);
	st->head_rv = NULL;
	free(st->text);
	st->text = NULL;
	st->exists = 0;
	st->loaded = 0;
}

/* Splits "a\nb\n" into names. */
static int split_lines(char ***out, size_t *nout, const char *s)
{
	char **v = NULL;
	size_t n = 0, alloc = 0;
	while (s && *s) {
		const char *nl = strchr(s, '\n');
		size_t l = nl ? (size_t)(nl - s) : strlen(s);
		if (l) {
			if (n == alloc) {
				size_t na = alloc ? alloc * 2 : 4;
				char **t = realloc(v, na * sizeof(*t));
				if (!t)
					goto oom;
				v = t;
				alloc = na;
			}
			if (!(v[n] = plumb_strndup(s, l)))
				goto oom;
			n++;
			if (n > INVENTORY_MAX_SHARDS) {
				apply_inventory_shards_free(v, n);
				return plumb_error_set(PLUMB_ETOOBIG, "inventory: more than %d shards", INVENTORY_MAX_SHARDS);
			}
		}
		s += l + (nl ? 1 : 0);
	}
	*out = v;
	*nout = n;
	return 0;
oom:
	apply_inventory_shards_free(v, n);
	return plumb_error_set(PLUMB_ENOMEM, "out of memory");
}

int apply_inv_load(apply_inv_state *st, kube_client *c, const char *ns,
	const char *head_name, const char *gitsync_id)
{
	cJSON *head = NULL, *shard = NULL;
	plumb_buf text = PLUMB_BUF_INIT(INVENTORY_MAX_TEXT);
	char **names = NULL;
	size_t nnames = 0;
	const char *rv, *gs, *entries, *fmt;
	int err;

	err = kube_get(&head, c, &configmaps, ns, head_name);
	if (err == PLUMB_ENOTFOUND) {
		apply_inv_state_clear(st);
		st->loaded = 1;
		return 0;
	}
	if (err)
		return plumb_error_prefix(err, "reading inventory %s/%s", ns, head_name);
	rv = meta_str(head, "resourceVersion");
	if (st->loaded && st->exists && rv && st->head_rv && !strcmp(rv, st->head_rv)) {
		err = 0;  /* unchanged since we read or wrote it */
		goto cleanup;
	}
	gs = data_str(head, "gitsync");
	fmt = data_str(head, "format");
	if (!gs || strcmp(gs, gitsync_id) || !fmt || strcmp(fmt, APPLY_INVENTORY_FORMAT)) {
		err = plumb_error_set(PLUMB_EINVALID, "inventory %s/%s belongs to %s (format %s), not %s",
			ns, head_name, gs ? gs : "?", fmt ? fmt : "?", gitsync_id);
		goto cleanup;
	}
	entries = data_str(head, "entries");
	if (entries && (err = plumb_buf_puts(&text, entries)))
		goto cleanup;
	if ((err = split_lines(&names, &nnames, data_str(head, "shards"))))
		goto cleanup;
	for (size_t i = 0; i < nnames; i++) {
		const char *t;
		if ((err = kube_get(&shard, c, &configmaps, ns, names[i]))) {
			plumb_error_prefix(err, "reading inventory shard %s/%s", ns, names[i]);
			goto cleanup;
		}
		t = data_str(shard, "entries");
		if (t && (err = plumb_buf_puts(&text, t)))
			goto cleanup;
		cJSON_Delete(shard);
		shard = NULL;
	}
	apply_inv_state_clear(st);
	if (text.len && (err = apply_inventory_decode(&st->inv, text.ptr, text.len))) {
		plumb_error_prefix(err, "inventory %s/%s", ns, head_name);
		apply_inventory_free(&st->inv);
		goto cleanup;
	}
	apply_inventory_normalize(&st->inv);
	st->shard_names = names;
	st->nshard_names = nnames;
	names = NULL;
	st->head_rv = plumb_strdup(rv ? rv : "");
	st->exists = 1;
	st->loaded = 1;
cleanup:
	apply_inventory_shards_free(names, nnames);
	plumb_buf_free(&text);
	cJSON_Delete(head);
	cJSON_Delete(shard);
	return err;
}

/* Equal as sets: both normalised. */
int apply_inv_equal(const apply_inventory *a, const apply_inventory *b)
{
	if (a->count != b->count)
		return 0;
	for (size_t i = 0; i < a->count; i++)
		if (entry_cmp_identity(&a->items[i], &b->items[i]) ||
		    strcmp(a->items[i].version, b->items[i].version))
			return 0;
	return 1;
}

static cJSON *inventory_cm(const char *ns, const char *name, const char *label,
	const char *id)
{
	cJSON *cm = cJSON_CreateObject(), *meta, *labels;
	if (!cm)
		return NULL;
	cJSON_AddStringToObject(cm, "apiVersion", "v1");
	cJSON_AddStringToObject(cm, "kind", "ConfigMap");
	meta = cJSON_AddObjectToObject(cm, "metadata");
	cJSON_AddStringToObject(meta, "name", name);
	cJSON_AddStringToObject(meta, "namespace", ns);
	labels = cJSON_AddObjectToObject(meta, "labels");
	cJSON_AddStringToObject(labels, APPLY_LABEL_MANAGED_BY, "plumb");
	cJSON_AddStringToObject(labels, "plumb.dev/inventory-for", label);
	cJSON_AddObjectToObject(cm, "data");
	(void)id;
	return cm;
}

static int ensure_namespace(kube_client *c, const char *ns, size_t *writes)
{
	cJSON *obj = NULL, *meta, *labels;
	int err = kube_get(NULL, c, &namespaces, NULL, ns);
	if (err != PLUMB_ENOTFOUND)
		return err;
	obj = cJSON_CreateObject();
	cJSON_AddStringToObject(obj, "apiVersion", "v1");
	cJSON_AddStringToObject(obj, "kind", "Namespace");
	meta = cJSON_AddObjectToObject(obj, "metadata");
	cJSON_AddStringToObject(meta, "name", ns);
	labels = cJSON_AddObjectToObject(meta, "labels");
	cJSON_AddStringToObject(labels, APPLY_LABEL_MANAGED_BY, "plumb");
	(*writes)++;
	err = kube_apply(NULL, c, &namespaces, NULL, obj, NULL);
	cJSON_Delete(obj);
	if (err)
		return plumb_error_prefix(err, "creating inventory namespace %s", ns);
	return 0;
}

int apply_inv_store(apply_inv_state *st, kube_client *c, const char *ns,
	const char *head_name, const char *gitsync_id, const char *label,
	const apply_inventory *next, size_t *writes)
{
	char **shards = NULL, **names = NULL;
	size_t nshards = 0;
	cJSON *cm = NULL, *result = NULL;
	plumb_buf list = PLUMB_BUF_INIT(INVENTORY_MAX_TEXT);
	char count[32];
	int err;

	if ((err = apply_inventory_encode(&shards, &nshards, next, 0)))
		goto cleanup;
	if (nshards > INVENTORY_MAX_SHARDS) {
		err = plumb_error_set(PLUMB_ETOOBIG, "inventory: %zu shards", nshards);
		goto cleanup;
	}
	if (!st->exists && (err = ensure_namespace(c, ns, writes)))
		goto cleanup;
	names = calloc(nshards ? nshards : 1, sizeof(*names));
	if (!names) {
		err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	/* shards 1..n-1 first, content-addressed: an existing one is identical */
	for (size_t i = 1; i < nshards; i++) {
		char sum[65];
		plumb_sha256_hex(sum, shards[i], strlen(shards[i]));
		names[i] = plumb_asprintf("%s-%.12s", head_name, sum);
		if (!names[i]) {
			err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		cm = inventory_cm(ns, names[i], label, gitsync_id);
		cJSON_AddStringToObject(cJSON_GetObjectItem(cm, "data"), "entries", shards[i]);
		(*writes)++;
		err = kube_create(NULL, c, &configmaps, ns, cm);
		cJSON_Delete(cm);
		cm = NULL;
		if (err == PLUMB_EEXISTS)
			err = 0;
		if (err) {
			plumb_error_prefix(err, "writing inventory shard %s/%s", ns, names[i]);
			goto cleanup;
		}
		if ((err = plumb_buf_printf(&list, "%s\n", names[i])))
			goto cleanup;
	}
	cm = inventory_cm(ns, head_name, label, gitsync_id);
	{
		cJSON *data = cJSON_GetObjectItem(cm, "data");
		snprintf(count, sizeof(count), "%zu", next->count);
		cJSON_AddStringToObject(data, "gitsync", gitsync_id);
		cJSON_AddStringToObject(data, "format", APPLY_INVENTORY_FORMAT);
		cJSON_AddStringToObject(data, "count", count);
		cJSON_AddStringToObject(data, "entries", nshards ? shards[0] : "");
		if (list.len)
			cJSON_AddStringToObject(data, "shards", list.ptr);
	}
	(*writes)++;
	if ((err = kube_apply(&result, c, &configmaps, ns, cm, NULL))) {
		plumb_error_prefix(err, "writing inventory %s/%s", ns, head_name);
		goto cleanup;
	}
	/* drop shards the old head referenced and the new one does not */
	for (size_t i = 0; i < st->nshard_names; i++) {
		int used = 0;
		for (size_t j = 1; j < nshards; j++)
			if (names[j] && !strcmp(names[j], st->shard_names[i]))
				used = 1;
		if (!used) {
			(*writes)++;
			int derr = kube_delete(c, &configmaps, ns, st->shard_names[i], KUBE_PROPAGATION_DEFAULT);
			if (derr && derr != PLUMB_ENOTFOUND)
				plumb_warn("could not delete old inventory shard", "name", st->shard_names[i],
					"error", plumb_error_last());
		}
	}
	/* remember what is stored now */
	{
		const char *rv = meta_str(result, "resourceVersion");
		apply_inv_state_clear(st);
		for (size_t i = 0; i < next->count; i++) {
			const apply_inventory_entry *e = &next->items[i];
			if ((err = apply_inventory_add(&st->inv, e->group, e->version, e->kind, e->ns, e->name)))
				goto cleanup;
		}
		st->head_rv = plumb_strdup(rv ? rv : "");
		st->shard_names = calloc(nshards ? nshards : 1, sizeof(char *));
		if (st->shard_names) {
			for (size_t j = 1; j < nshards; j++) {
				st->shard_names[st->nshard_names++] = names[j];
				names[j] = NULL;
			}
		}
		st->exists = 1;
		st->loaded = 1;
	}
cleanup:
	if (names)
		for (size_t i = 0; i < nshards; i++)
			free(names[i]);
	free(names);
	apply_inventory_shards_free(shards, nshards);
	plumb_buf_free(&list);
	cJSON_Delete(cm);
	cJSON_Delete(result);
	return err;
}
