/* pkg/controller: the work queue — debounce, delays, per-item backoff, and
 * the guarantee that one key is never handed to two workers at once. */
#include "controller/controller.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
	char *key;
	int pending;        /* waiting in the queue with a due time */
	int in_flight;      /* handed to a worker, not yet done */
	int dirty;          /* triggered while in flight: requeue at done() */
	int due_by_trigger; /* due was set by a debounced trigger */
	double due;
	int has_run;
	double last_start;  /* when a worker last took it (monotonic) */
	unsigned failures;
} queue_item;

struct controller_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	queue_item *items;
	size_t n, cap;
	int shutdown;
	double backoff_base, backoff_max;
	unsigned long retries;
};

int controller_queue_new(controller_queue **out, double backoff_base, double backoff_max)
{
	controller_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &attr);
	pthread_condattr_destroy(&attr);
	q->backoff_base = backoff_base > 0 ? backoff_base : 1;
	q->backoff_max = backoff_max > 0 ? backoff_max : 300;
	*out = q;
	return 0;
}

void controller_queue_free(controller_queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++)
		free(q->items[i].key);
	free(q->items);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static queue_item *item_find(controller_queue *q, const char *key, int create)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->items[i].key, key) == 0)
			return &q->items[i];
	if (!create)
		return NULL;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		queue_item *p = realloc(q->items, cap * sizeof(*p));
		if (!p)
			return NULL;
		q->items = p;
		q->cap = cap;
	}
	queue_item *it = &q->items[q->n];
	memset(it, 0, sizeof(*it));
	it->key = strdup(key);
	if (!it->key)
		return NULL;
	q->n++;
	return it;
}

/* Schedules it for due; an item already pending keeps the earlier time. */
static void schedule(queue_item *it, double due, int by_trigger)
{
	if (!it->pending || due < it->due) {
		it->due = due;
		it->due_by_trigger = by_trigger;
	}
	it->pending = 1;
}

void controller_queue_trigger_at(controller_queue *q, const char *key, double debounce, double now)
{
	pthread_mutex_lock(&q->lock);
	queue_item *it = item_find(q, key, 1);
	if (it && !(it->pending && it->due_by_trigger)) {
		/* A quiet item runs at once; one that ran less than `debounce` ago
		 * runs when that window closes, taking every trigger until then
		 * with it. A trigger already waiting absorbs this one. */
		double due = now;
		if (it->has_run && now < it->last_start + debounce)
			due = it->last_start + debounce;
		schedule(it, due, 1);
	}
	if (it && it->in_flight)
		it->dirty = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void controller_queue_trigger(controller_queue *q, const char *key, double debounce)
{
	controller_queue_trigger_at(q, key, debounce, plumb_time_mono());
}

void controller_queue_add_after(controller_queue *q, const char *key, double delay)
{
	pthread_mutex_lock(&q->lock);
	queue_item *it = item_find(q, key, 1);
	if (it) {
		schedule(it, plumb_time_mono() + (delay > 0 ? delay : 0), 0);
		if (it->in_flight)
			it->dirty = 1;
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

double controller_queue_backoff(controller_queue *q, const char *key, double at_least)
{
	double delay = 0;
	pthread_mutex_lock(&q->lock);
	queue_item *it = item_find(q, key, 1);
	if (it) {
		delay = plumb_backoff(it->failures, q->backoff_base, q->backoff_max, 0.2);
		if (delay < at_least)
			delay = at_least;
		it->failures++;
		q->retries++;
		/* A failure replaces whatever was scheduled: no retry storm. */
		it->pending = 1;
		it->due = plumb_time_mono() + delay;
		it->due_by_trigger = 0;
		if (it->in_flight)
			it->dirty = 1;
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return delay;
}

void controller_queue_forget(controller_queue *q, const char *key)
{
	pthread_mutex_lock(&q->lock);
	queue_item *it = item_find(q, key, 0);
	if (it)
		it->failures = 0;
	pthread_mutex_unlock(&q->lock);
}

unsigned controller_queue_failures(controller_queue *q, const char *key)
{
	pthread_mutex_lock(&q->lock);
	queue_item *it = item_find(q, key, 0);
	unsigned n = it ? it->failures : 0;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void controller_queue_remove(controller_queue *q, const char *key)
{
	pthread_mutex_lock(&q->lock);
	queue_item *it = item_find(q, key, 0);
	if (it) {
		it->pending = 0;
		it->dirty = 0;
		it->failures = 0;
	}
	pthread_mutex_unlock(&q->lock);
}

/* The ready item with the earliest due time that no worker holds. Lock held. */
static queue_item *earliest(controller_queue *q)
{
	queue_item *best = NULL;
	for (size_t i = 0; i < q->n; i++) {
		queue_item *it = &q->items[i];
		if (it->pending && !it->in_flight && (!best || it->due < best->due))
			best = it;
	}
	return best;
}

int controller_queue_pop_ready(controller_queue *q, char **out, double now, double *next_due)
{
	int rc = PLUMB_ENOTFOUND;
	pthread_mutex_lock(&q->lock);
	queue_item *it = earliest(q);
	if (next_due)
		*next_due = it ? it->due : -1;
	if (it && it->due <= now) {
		char *key = strdup(it->key);
		if (!key) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		} else {
			it->pending = 0;
			it->in_flight = 1;
			it->dirty = 0;
			it->has_run = 1;
			it->last_start = now;
			*out = key;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int controller_queue_get(controller_queue *q, char **out, double timeout)
{
	double deadline = plumb_time_mono() + timeout;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		if (q->shutdown) {
			pthread_mutex_unlock(&q->lock);
			return plumb_error_set(PLUMB_ECANCELED, "work queue shut down");
		}
		double now = plumb_time_mono();
		queue_item *it = earliest(q);
		if (it && it->due <= now) {
			char *key = strdup(it->key);
			if (!key) {
				pthread_mutex_unlock(&q->lock);
				return plumb_error_set(PLUMB_ENOMEM, "out of memory");
			}
			it->pending = 0;
			it->in_flight = 1;
			it->dirty = 0;
			it->has_run = 1;
			it->last_start = now;
			pthread_mutex_unlock(&q->lock);
			*out = key;
			return 0;
		}
		if (now >= deadline) {
			pthread_mutex_unlock(&q->lock);
			return plumb_error_set(PLUMB_ETIMEOUT, "no work");
		}
		double until = deadline;
		if (it && it->due < until)
			until = it->due;
		struct timespec ts;
		ts.tv_sec = (time_t)until;
		ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
		pthread_cond_timedwait(&q->cond, &q->lock, &ts);
	}
}

void controller_queue_done(controller_queue *q, const char *key)
{
	pthread_mutex_lock(&q->lock);
	queue_item *it = item_find(q, key, 0);
	if (it) {
		it->in_flight = 0;
		/* Triggered while running: the pending schedule set then stands. */
		if (it->dirty)
			it->pending = 1;
		it->dirty = 0;
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void controller_queue_shutdown(controller_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->shutdown = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

size_t controller_queue_depth(controller_queue *q)
{
	size_t n = 0;
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->n; i++)
		if (q->items[i].pending)
			n++;
	pthread_mutex_unlock(&q->lock);
	return n;
}

unsigned long controller_queue_retries(controller_queue *q)
{
	pthread_mutex_lock(&q->lock);
	unsigned long n = q->retries;
	pthread_mutex_unlock(&q->lock);
	return n;
}
