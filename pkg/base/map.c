/*
 * pkg/base: plumb_map, the one string-keyed hash map (FNV-1a, open
 * addressing with linear probing, removed slots marked until a rebuild).
 * Not thread-safe: its owner locks around it where threads share a map.
 */
#include "base/base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char map_removed[1]; /* the marker of a removed slot */

static uint64_t map_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static int map_live(const char *k)
{
	return k && k != map_removed;
}

static void map_key_free(const plumb_map *m, char *key)
{
	if (m->keep)
		plumb_keep_free(key);
	else
		free(key);
}

/* The slot holding key, or SIZE_MAX; *ins (when not NULL) gets the slot a
 * new key would take: the first removed or empty one on its probe path. */
static size_t map_probe(const plumb_map *m, const char *key, uint64_t h, size_t *ins)
{
	if (!m->cap)
		return SIZE_MAX;
	size_t mask = m->cap - 1, i = (size_t)h & mask, first = SIZE_MAX;
	while (m->keys[i]) {
		if (m->keys[i] == map_removed) {
			if (first == SIZE_MAX)
				first = i;
		} else if (strcmp(m->keys[i], key) == 0) {
			return i;
		}
		i = (i + 1) & mask;
	}
	if (ins)
		*ins = first != SIZE_MAX ? first : i;
	return SIZE_MAX;
}

static size_t map_find(const plumb_map *m, const char *key)
{
	return map_probe(m, key, map_hash(key), NULL);
}

/* The table size for n entries: a power of two, at least 64, at most half
 * full with one more, so a rebuild is followed by cap/4 puts before the next. */
static size_t map_size_for(size_t n)
{
	size_t cap = 64;
	while ((n + 1) * 2 > cap)
		cap *= 2;
	return cap;
}

/* Moves the live entries into a table of cap slots (removed slots vanish).
 * 0, or -1 without memory (the map unchanged, no error recorded). */
static int map_rebuild(plumb_map *m, size_t cap)
{
	char **keys = calloc(cap, sizeof(char *));
	void **vals = calloc(cap, sizeof(void *));
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!map_live(m->keys[i]))
			continue;
		size_t j = (size_t)map_hash(m->keys[i]) & (cap - 1);
		while (keys[j])
			j = (j + 1) & (cap - 1);
		keys[j] = m->keys[i];
		vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	m->used = m->count;
	return 0;
}

void *plumb_map_get(const plumb_map *m, const char *key)
{
	size_t i = map_find(m, key);
	return i == SIZE_MAX ? NULL : m->vals[i];
}

int plumb_map_has(const plumb_map *m, const char *key)
{
	return map_find(m, key) != SIZE_MAX;
}

int plumb_map_put(plumb_map *m, const char *key, void *val, void **old)
{
	uint64_t h = map_hash(key);
	size_t i = 0, found;
	if (old)
		*old = NULL;
	if ((found = map_probe(m, key, h, &i)) != SIZE_MAX) {
		if (old)
			*old = m->vals[found];
		m->vals[found] = val;
		return 0;
	}
	if ((m->used + 1) * 4 >= m->cap * 3) {
		if (map_rebuild(m, map_size_for(m->count)))
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		map_probe(m, key, h, &i);
	}
	char *k = m->keep ? plumb_keep_strdup(key) : plumb_strdup(key);
	if (!k)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (!m->keys[i])
		m->used++;
	m->keys[i] = k;
	m->vals[i] = val;
	m->count++;
	return 0;
}

static void *map_remove_at(plumb_map *m, size_t i)
{
	void *v = m->vals[i];
	map_key_free(m, m->keys[i]);
	m->keys[i] = map_removed;
	m->vals[i] = NULL;
	m->count--;
	return v;
}

void *plumb_map_del(plumb_map *m, const char *key)
{
	size_t i = map_find(m, key);
	return i == SIZE_MAX ? NULL : map_remove_at(m, i);
}

int plumb_map_next(const plumb_map *m, size_t *i, const char **key, void **val)
{
	for (; *i < m->cap; (*i)++) {
		if (map_live(m->keys[*i])) {
			*key = m->keys[*i];
			*val = m->vals[*i];
			(*i)++;
			return 1;
		}
	}
	return 0;
}

void plumb_map_retain(plumb_map *m, int (*keep)(const char *key, void *val, void *data), void *data,
	void (*free_val)(void *))
{
	size_t removed = 0;
	for (size_t i = 0; i < m->cap; i++) {
		if (!map_live(m->keys[i]) || keep(m->keys[i], m->vals[i], data))
			continue;
		void *v = map_remove_at(m, i);
		if (free_val && v)
			free_val(v);
		removed++;
	}
	if (removed)
		(void)map_rebuild(m, map_size_for(m->count)); /* on ENOMEM the table stays, still correct */
}

void plumb_map_free(plumb_map *m, void (*free_val)(void *))
{
	for (size_t i = 0; i < m->cap; i++) {
		if (!map_live(m->keys[i]))
			continue;
		if (free_val && m->vals[i])
			free_val(m->vals[i]);
		map_key_free(m, m->keys[i]);
	}
	free(m->keys);
	free(m->vals);
	int keep = m->keep;
	memset(m, 0, sizeof(*m));
	m->keep = keep;
}
