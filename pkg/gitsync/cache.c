/*
 * The render cache (gitsync.h): one kustomize or helm run per commit and
 * render inputs, shared by the clusters that ask for the same thing.
 *
 * A list of entries under one mutex; an entry is either running (its
 * owner thread runs the tool with the mutex released; others wait on the
 * condition variable) or done (its output kept, copied out on a hit).
 * Running entries are never evicted. The mutex is the only lock taken here
 * and no other is taken under it; the run itself happens outside it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "base/base.h"
#include "gitsync/gitsync.h"

typedef struct entry {
	unsigned char key[32];       /* SHA-256 of the caller's key */
	char *owner;
	char commit[41];
	int running;
	gitsync_render_output out;   /* when done */
	size_t bytes;
	unsigned long used;          /* the tick of the last hit */
	struct entry *next;
} entry;

struct gitsync_render_cache {
	pthread_mutex_t lock;
	pthread_cond_t done;
	entry *head;
	size_t bytes, count, max_bytes, max_entries;
	unsigned long tick, hits, misses, waits;
};

int gitsync_render_cache_new(gitsync_render_cache **out, size_t max_bytes, size_t max_entries)
{
	gitsync_render_cache *c = calloc(1, sizeof(*c));
	*out = NULL;
	if (!c)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->done, NULL);
	c->max_bytes = max_bytes ? max_bytes : (size_t)64 * 1024 * 1024;
	c->max_entries = max_entries ? max_entries : 256;
	*out = c;
	return 0;
}

void gitsync_render_output_clear(gitsync_render_output *o)
{
	if (!o)
		return;
	free(o->yaml);
	free(o->errmsg);
	memset(o, 0, sizeof(*o));
}

static void entry_free(entry *e)
{
	gitsync_render_output_clear(&e->out);
	free(e->owner);
	free(e);
}

void gitsync_render_cache_free(gitsync_render_cache *c)
{
	if (!c)
		return;
	for (entry *e = c->head, *n; e; e = n) {
		n = e->next;
		entry_free(e);
	}
	pthread_cond_destroy(&c->done);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void gitsync_render_cache_stats_get(gitsync_render_cache *c, gitsync_render_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	out->entries = c->count;
	out->bytes = c->bytes;
	out->hits = c->hits;
	out->misses = c->misses;
	out->waits = c->waits;
	pthread_mutex_unlock(&c->lock);
}

static entry *find(gitsync_render_cache *c, const unsigned char key[32])
{
	for (entry *e = c->head; e; e = e->next)
		if (!memcmp(e->key, key, 32))
			return e;
	return NULL;
}

/* Unlinks e (under the lock) and frees it. */
static void drop(gitsync_render_cache *c, entry *e)
{
	for (entry **p = &c->head; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	c->bytes -= e->bytes;
	c->count--;
	entry_free(e);
}

/* Drops owner's done entries at other commits, then the least recently
 * used done entries while over a cap (under the lock). */
static void evict(gitsync_render_cache *c, const char *owner, const char *commit)
{
	for (entry *e = c->head, *n; e; e = n) {
		n = e->next;
		if (!e->running && owner && e->owner && !strcmp(e->owner, owner) && strcmp(e->commit, commit))
			drop(c, e);
	}
	while (c->bytes > c->max_bytes || c->count > c->max_entries) {
		entry *old = NULL;
		for (entry *e = c->head; e; e = e->next)
			if (!e->running && (!old || e->used < old->used))
				old = e;
		if (!old)
			break;
		drop(c, old);
	}
}

static int copy_output(gitsync_render_output *dst, const gitsync_render_output *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->rc = src->rc;
	dst->retry = src->retry;
	dst->seconds = src->seconds;
	dst->peak_rss_kb = src->peak_rss_kb;
	dst->len = src->len;
	if (src->yaml) {
		if (!(dst->yaml = malloc(src->len + 1)))
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		memcpy(dst->yaml, src->yaml, src->len + 1);
	}
	if (src->errmsg && !(dst->errmsg = plumb_strdup(src->errmsg))) {
		gitsync_render_output_clear(dst);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	return 0;
}

/* Copies the kept output out as the run's result. */
static int hit_result(gitsync_render_output *out, const entry *e)
{
	int rc = copy_output(out, &e->out);
	if (rc)
		return rc;
	if (out->rc)
		plumb_error_set(out->rc, "%s", out->errmsg ? out->errmsg : "render failed");
	return out->rc;
}

int gitsync_render_cache_get(gitsync_render_output *out, int *hit, gitsync_render_cache *c,
	const char *owner, const char *commit, const char *key, size_t keylen,
	gitsync_render_fn run, void *ctx)
{
	unsigned char digest[32];
	unsigned int dlen = 0;
	int rc;
	memset(out, 0, sizeof(*out));
	if (hit)
		*hit = 0;
	if (!c) {
		rc = run(out, ctx);
		return out->rc = rc;
	}
	if (!EVP_Digest(key, keylen, digest, &dlen, EVP_sha256(), NULL) || dlen != 32)
		return plumb_error_set(PLUMB_ENOMEM, "render cache: SHA-256 failed");

	pthread_mutex_lock(&c->lock);
	entry *e;
	int waited = 0;
	while ((e = find(c, digest)) && e->running) {
		waited = 1;
		pthread_cond_wait(&c->done, &c->lock);
	}
	if (e) {
		e->used = ++c->tick;
		c->hits++;
		c->waits += waited;
		rc = hit_result(out, e);
		pthread_mutex_unlock(&c->lock);
		if (hit)
			*hit = 1;
		return rc;
	}
	c->misses++;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->owner = plumb_strdup(owner ? owner : ""))) {
		free(e);
		pthread_mutex_unlock(&c->lock);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	memcpy(e->key, digest, 32);
	snprintf(e->commit, sizeof(e->commit), "%s", commit ? commit : "");
	e->running = 1;
	e->used = ++c->tick;
	e->next = c->head;
	c->head = e;
	c->count++;
	pthread_mutex_unlock(&c->lock);

	rc = run(out, ctx);
	out->rc = rc;
	/* the message of a failed run is the run's own */
	if (rc && !out->errmsg)
		out->errmsg = plumb_strdup(plumb_error_last());

	pthread_mutex_lock(&c->lock);
	e->running = 0;
	size_t bytes = out->len + (out->errmsg ? strlen(out->errmsg) : 0) + sizeof(*e);
	if (!out->retry && bytes <= c->max_bytes && copy_output(&e->out, out) == 0) {
		e->bytes = bytes;
		c->bytes += bytes;
		evict(c, owner, e->commit);
	} else {
		drop(c, e);   /* the next asker runs it again */
	}
	pthread_cond_broadcast(&c->done);
	pthread_mutex_unlock(&c->lock);
	if (rc)
		plumb_error_set(rc, "%s", out->errmsg ? out->errmsg : "render failed");
	return rc;
}
