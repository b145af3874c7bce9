/*
 * pkg/apply: what the engine remembers of the objects it applied or
 * verified (e->state: hashes and the resourceVersion; e->proj: the
 * projection P of objects the server normalised, within
 * APPLY_MAX_PROJ_BYTES), so that an unchanged object costs no read and a
 * drift check no dry run.
 *
 * Locks and threads: pool threads call these while processing and writing
 * items; every access to e->state, e->proj and e->proj_bytes is under
 * e->lock. Digests and texts are computed before the lock is taken.
 */
#include "apply/apply_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void apply_proj_entry_free(void *p)
{
	proj_entry *e = p;
	if (e)
		plumb_keep_free(e->proj);
	plumb_keep_free(e);
}

/* 128 bits of sha256 over proj with keys sorted: equal for equal JSON. */
int apply_proj_digest(unsigned char out[16], const cJSON *proj)
{
	cJSON *copy = cJSON_Duplicate(proj, 1);
	char *text = NULL, sum[65];
	int err;
	if (!copy)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (!(err = apply_sort_keys(copy, 0))) {
		if ((text = cJSON_PrintUnformatted(copy))) {
			plumb_sha256_hex(sum, text, strlen(text));
			plumb_hex_decode(out, 16, sum);
		} else {
			err = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
	}
	cJSON_free(text);
	cJSON_Delete(copy);
	return err;
}

/* Remembers for it->key: P (proj) for the item's desired hash, ph the hash
 * of the projection accepted as not drifted (NULL: P's), seen at
 * resourceVersion rv ("" = read it again next time). */
void apply_state_set(run *R, item *it, const unsigned char *ph, const cJSON *proj, const char *rv)
{
	obj_state *st, fresh;
	proj_entry *pe = NULL, *oldp = NULL;
	unsigned char d[16];
	char *text = NULL;
	if (R->o.dry_run || !proj || apply_proj_digest(d, proj))
		return;
	if (!it->has_odigest) {
		if (apply_proj_digest(it->odigest, it->obj))
			return;
		it->has_odigest = 1;
	}
	memset(&fresh, 0, sizeof(fresh));
	plumb_hex_decode(fresh.dhash, 16, it->hash);
	memcpy(fresh.phash, ph ? ph : d, 16);
	if (rv && strlen(rv) < sizeof(fresh.rv))
		memcpy(fresh.rv, rv, strlen(rv) + 1);
	fresh.p_desired = !memcmp(d, it->odigest, 16);
	if (!fresh.p_desired && (text = cJSON_PrintUnformatted(proj))) {
		if ((pe = plumb_keep_alloc(sizeof(*pe)))) {
			snprintf(pe->hash, sizeof(pe->hash), "%s", it->hash);
			pe->proj = plumb_keep_strdup(text);
		}
		if (pe && !pe->proj) {
			plumb_keep_free(pe);
			pe = NULL;
		}
		cJSON_free(text);
	}
	pthread_mutex_lock(&R->e->lock);
	/* updated in place: no churn of long-lived records */
	if ((st = plumb_map_get(&R->e->state, it->key))) {
		*st = fresh;
	} else if ((st = plumb_keep_alloc(sizeof(*st)))) {
		*st = fresh;
		if (plumb_map_put(&R->e->state, it->key, st, NULL))
			plumb_keep_free(st);
	}
	{
		proj_entry *cur = plumb_map_get(&R->e->proj, it->key), *dropped = NULL;
		if (cur)
			R->e->proj_bytes -= strlen(cur->proj);
		if (pe && R->e->proj_bytes + strlen(pe->proj) > APPLY_MAX_PROJ_BYTES) {
			dropped = pe;   /* over budget: a dry run computes P when needed */
			pe = NULL;
		}
		/* a dropped entry keeps its slot, with no value, until the run's end */
		if ((pe || cur) && plumb_map_put(&R->e->proj, it->key, pe, (void **)&oldp)) {
			dropped = pe;   /* cur stays, unaccounted: counted again at the run's end */
			pe = NULL;
			oldp = NULL;
		}
		if (pe)
			R->e->proj_bytes += strlen(pe->proj);
		apply_proj_entry_free(dropped);
	}
	pthread_mutex_unlock(&R->e->lock);
	apply_proj_entry_free(oldp);
}

/* Moves the version the object was verified at, keeping the rest. */
void apply_state_set_rv(run *R, const item *it, const char *rv)
{
	if (R->o.dry_run)
		return;
	pthread_mutex_lock(&R->e->lock);
	obj_state *st = plumb_map_get(&R->e->state, it->key);
	if (st)
		snprintf(st->rv, sizeof(st->rv), "%s", rv && strlen(rv) < sizeof(st->rv) ? rv : "");
	pthread_mutex_unlock(&R->e->lock);
}

/* -1: nothing remembered for the item's desired hash; 0: remembered, and
 * ph differs; 1: the same projection. */
int apply_state_check(run *R, const item *it, const unsigned char ph[16])
{
	unsigned char d[16];
	int ret = -1;
	plumb_hex_decode(d, 16, it->hash);
	pthread_mutex_lock(&R->e->lock);
	obj_state *st = plumb_map_get(&R->e->state, it->key);
	if (st && !memcmp(st->dhash, d, 16))
		ret = !memcmp(st->phash, ph, 16);
	pthread_mutex_unlock(&R->e->lock);
	return ret;
}

/* 1 when the item was applied or verified at resourceVersion rv for its
 * current desired hash. */
int apply_state_fast(run *R, const item *it, const char *rv)
{
	unsigned char d[16];
	int yes;
	if (!rv || !*rv)
		return 0;
	plumb_hex_decode(d, 16, it->hash);
	pthread_mutex_lock(&R->e->lock);
	obj_state *st = plumb_map_get(&R->e->state, it->key);
	yes = st && st->rv[0] && !memcmp(st->dhash, d, 16) && !strcmp(st->rv, rv);
	pthread_mutex_unlock(&R->e->lock);
	return yes;
}

/* P as remembered for the item's desired hash (a new tree), or NULL. */
cJSON *apply_state_proj(run *R, const item *it)
{
	unsigned char d[16];
	char *text = NULL;
	int desired = 0;
	plumb_hex_decode(d, 16, it->hash);
	pthread_mutex_lock(&R->e->lock);
	obj_state *st = plumb_map_get(&R->e->state, it->key);
	if (st && !memcmp(st->dhash, d, 16)) {
		proj_entry *pe = plumb_map_get(&R->e->proj, it->key);
		desired = st->p_desired;
		if (!desired && pe && !strcmp(pe->hash, it->hash))
			text = plumb_strdup(pe->proj);
	}
	pthread_mutex_unlock(&R->e->lock);
	if (desired)
		return cJSON_Duplicate(it->obj, 1);
	cJSON *out = text ? cJSON_Parse(text) : NULL;
	free(text);
	return out;
}

/* The object after a real apply: remember its projection and version. */
void apply_remember_applied(run *R, item *it, const cJSON *proj, const cJSON *result)
{
	apply_state_set(R, it, NULL, proj, apply_meta_get(result, "resourceVersion"));
}
