/* pkg/controller: a small string-keyed hash map for caches and indexes. */
#include "controller/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char tombstone[1];

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void key_free(const cmap *m, char *key)
{
	if (m->keep)
		plumb_keep_free(key);
	else
		free(key);
}

static size_t slot_of(const cmap *m, const char *key)
{
	size_t mask = m->cap - 1, i = (size_t)hash_str(key) & mask;
	while (m->keys[i]) {
		if (m->keys[i] != tombstone && strcmp(m->keys[i], key) == 0)
			return i;
		i = (i + 1) & mask;
	}
	return SIZE_MAX;
}

void *cmap_get(const cmap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	size_t i = slot_of(m, key);
	return i == SIZE_MAX ? NULL : m->vals[i];
}

static int grow(cmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	while (m->count * 2 >= cap)
		cap *= 2;
	cmap n = { calloc(cap, sizeof(char *)), calloc(cap, sizeof(void *)), cap, 0, 0, m->keep };
	if (!n.keys || !n.vals) {
		free(n.keys);
		free(n.vals);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i] || m->keys[i] == tombstone)
			continue;
		size_t j = (size_t)hash_str(m->keys[i]) & (cap - 1);
		while (n.keys[j])
			j = (j + 1) & (cap - 1);
		n.keys[j] = m->keys[i];
		n.vals[j] = m->vals[i];
		n.count++;
		n.used++;
	}
	free(m->keys);
	free(m->vals);
	*m = n;
	return 0;
}

int cmap_put(cmap *m, const char *key, void *val, void **old)
{
	if (old)
		*old = NULL;
	if ((m->used + 1) * 4 >= m->cap * 3) {
		int rc = grow(m);
		if (rc)
			return rc;
	}
	size_t i = slot_of(m, key);
	if (i != SIZE_MAX) {
		if (old)
			*old = m->vals[i];
		m->vals[i] = val;
		return 0;
	}
	char *k = m->keep ? plumb_keep_strdup(key) : strdup(key);
	if (!k)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	size_t mask = m->cap - 1;
	i = (size_t)hash_str(key) & mask;
	while (m->keys[i] && m->keys[i] != tombstone)
		i = (i + 1) & mask;
	if (!m->keys[i])
		m->used++;
	m->keys[i] = k;
	m->vals[i] = val;
	m->count++;
	return 0;
}

void *cmap_del(cmap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	size_t i = slot_of(m, key);
	if (i == SIZE_MAX)
		return NULL;
	void *v = m->vals[i];
	key_free(m, m->keys[i]);
	m->keys[i] = tombstone;
	m->vals[i] = NULL;
	m->count--;
	return v;
}

int cmap_next(const cmap *m, size_t *i, const char **key, void **val)
{
	for (; *i < m->cap; (*i)++) {
		if (m->keys[*i] && m->keys[*i] != tombstone) {
			*key = m->keys[*i];
			*val = m->vals[*i];
			(*i)++;
			return 1;
		}
	}
	return 0;
}

void cmap_free(cmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->keys[i] && m->keys[i] != tombstone)
			key_free(m, m->keys[i]);
	free(m->keys);
	free(m->vals);
	int keep = m->keep;
	memset(m, 0, sizeof(*m));
	m->keep = keep;
}

void cmap_free_all(cmap *m, void (*free_value)(void *))
{
	for (size_t i = 0; free_value && i < m->cap; i++)
		if (m->keys[i] && m->keys[i] != tombstone)
			free_value(m->vals[i]);
	cmap_free(m);
}
