/*
 * pkg/base: memory for what lives long and for what lives one reconcile.
 *
 * Long-lived records (plumb_keep_*): size-classed records carved from
 * mmap'd chunks, with a free list per class, for the 10,000s of small
 * per-object records the engine and the controller keep. keep_lock guards
 * the free lists, the current chunk and the mapped-byte count; any thread
 * may allocate and free.
 *
 * Regions (plumb_region_*, plumb_json_hooks): cJSON memory for one
 * reconcile, bump-allocated from the region's chunks and given back whole.
 * The region a thread allocates from, and that thread's current chunk, are
 * thread-local (tl_*): each thread that enters a region bumps in its own
 * chunk; a region's lock guards only its list of chunks, which every
 * thread in it appends to.
 */
#include "base/base.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cjson/cJSON.h>

/* ---- long-lived records ------------------------------------------------------ */

#define KEEP_CHUNK (256u * 1024)
#define KEEP_CLASS 16u
#define KEEP_MAX 1024u
#define KEEP_CLASSES (KEEP_MAX / KEEP_CLASS)
#define KEEP_MALLOC 0xffffu

/* Every record has an 8-byte header (records are 8-byte aligned): its class,
 * or KEEP_MALLOC when it came from malloc. */
typedef struct keep_free_node {
	struct keep_free_node *next;
} keep_free_node;

static pthread_mutex_t keep_lock = PTHREAD_MUTEX_INITIALIZER;
static keep_free_node *keep_free_lists[KEEP_CLASSES + 1];
static unsigned char *keep_cur;    /* bump pointer in the current chunk */
static size_t keep_left;
static size_t keep_mapped_bytes;

void *plumb_keep_alloc(size_t n)
{
	size_t cls = (n + KEEP_CLASS - 1) / KEEP_CLASS, size;
	unsigned char *p;
	if (cls == 0)
		cls = 1;
	if (cls > KEEP_CLASSES) {
		if (n > SIZE_MAX - 8 || !(p = calloc(1, n + 8)))
			return NULL;
		*(uint16_t *)p = KEEP_MALLOC;
		return p + 8;
	}
	size = cls * KEEP_CLASS + 8;
	pthread_mutex_lock(&keep_lock);
	if (keep_free_lists[cls]) {
		p = (unsigned char *)keep_free_lists[cls] - 8;
		keep_free_lists[cls] = keep_free_lists[cls]->next;
	} else {
		if (keep_left < size) {
			void *chunk = mmap(NULL, KEEP_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (chunk == MAP_FAILED) {
				pthread_mutex_unlock(&keep_lock);
				return NULL;
			}
			/* the tail of the old chunk is left unused */
			keep_cur = chunk;
			keep_left = KEEP_CHUNK;
			keep_mapped_bytes += KEEP_CHUNK;
		}
		p = keep_cur;
		keep_cur += size;
		keep_left -= size;
	}
	pthread_mutex_unlock(&keep_lock);
	memset(p, 0, size);
	*(uint16_t *)p = (uint16_t)cls;
	return p + 8;
}

char *plumb_keep_strdup(const char *s)
{
	size_t n;
	char *out;
	if (!s)
		return NULL;
	n = strlen(s) + 1;
	if ((out = plumb_keep_alloc(n)))
		memcpy(out, s, n);
	return out;
}

void plumb_keep_free(void *ptr)
{
	unsigned char *p;
	uint16_t cls;
	if (!ptr)
		return;
	p = (unsigned char *)ptr - 8;
	cls = *(uint16_t *)p;
	if (cls == KEEP_MALLOC) {
		free(p);
		return;
	}
	pthread_mutex_lock(&keep_lock);
	((keep_free_node *)ptr)->next = keep_free_lists[cls];
	keep_free_lists[cls] = ptr;
	pthread_mutex_unlock(&keep_lock);
}

size_t plumb_keep_mapped(void)
{
	size_t n;
	pthread_mutex_lock(&keep_lock);
	n = keep_mapped_bytes;
	pthread_mutex_unlock(&keep_lock);
	return n;
}

/* ---- regions for a reconcile's JSON ------------------------------------------ */

#define REGION_CHUNK (256u * 1024)
#define REGION_LARGE (32u * 1024)   /* larger allocations go to malloc */
#define HDR_MALLOC 0x6d616c6cu
#define HDR_REGION 0x72656769u

struct plumb_region {
	pthread_mutex_t lock;
	void **chunks;
	size_t n, cap;
};

static __thread plumb_region *tl_region;
static __thread unsigned char *tl_cur;    /* bump pointer in this thread's chunk of tl_region */
static __thread size_t tl_left;

plumb_region *plumb_region_new(void)
{
	plumb_region *r = calloc(1, sizeof(*r));
	if (r)
		pthread_mutex_init(&r->lock, NULL);
	return r;
}

void plumb_region_enter(plumb_region *r)
{
	if (r && r == tl_region)
		return;   /* keeps this thread's chunk */
	tl_region = r;
	tl_cur = NULL;
	tl_left = 0;
}

void plumb_region_leave(void)
{
	plumb_region_enter(NULL);
}

plumb_region *plumb_region_current(void)
{
	return tl_region;
}

size_t plumb_region_mapped(const plumb_region *r)
{
	size_t n;
	if (!r)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&r->lock);
	n = r->n * REGION_CHUNK;
	pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
	return n;
}

void plumb_region_free(plumb_region *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		munmap(r->chunks[i], REGION_CHUNK);
	free(r->chunks);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static void *json_alloc(size_t n)
{
	size_t size = (n + 8 + 7) & ~(size_t)7;
	unsigned char *p;
	plumb_region *r = tl_region;
	if (n > SIZE_MAX - 16)
		return NULL;
	if (r && size <= REGION_LARGE) {
		if (tl_left < size) {
			void *chunk = mmap(NULL, REGION_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (chunk == MAP_FAILED)
				return NULL;
			pthread_mutex_lock(&r->lock);
			if (r->n == r->cap) {
				size_t nc = r->cap ? r->cap * 2 : 16;
				void **c = realloc(r->chunks, nc * sizeof(*c));
				if (!c) {
					pthread_mutex_unlock(&r->lock);
					munmap(chunk, REGION_CHUNK);
					return NULL;
				}
				r->chunks = c;
				r->cap = nc;
			}
			r->chunks[r->n++] = chunk;
			pthread_mutex_unlock(&r->lock);
			tl_cur = chunk;
			tl_left = REGION_CHUNK;
		}
		p = tl_cur;
		tl_cur += size;
		tl_left -= size;
		*(uint32_t *)p = HDR_REGION;
		return p + 8;
	}
	if (!(p = malloc(size)))
		return NULL;
	*(uint32_t *)p = HDR_MALLOC;
	return p + 8;
}

static void json_free(void *ptr)
{
	unsigned char *p;
	if (!ptr)
		return;
	p = (unsigned char *)ptr - 8;
	if (*(uint32_t *)p == HDR_MALLOC)
		free(p);
	/* region memory goes with its region */
}

void plumb_json_hooks(void)
{
	cJSON_Hooks h = { json_alloc, json_free };
	cJSON_InitHooks(&h);
}
