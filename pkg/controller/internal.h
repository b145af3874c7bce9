/* pkg/controller internals shared by its .c files. Not a public API. */
#ifndef PLUMB_CONTROLLER_INTERNAL_H
#define PLUMB_CONTROLLER_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include "apply/apply.h"
#include "controller/controller.h"
#include "kube/kube.h"
#include "server/server.h"
#include "source/source.h"

/* ---- a string-keyed hash map (open addressing, owned keys) ------------------ */
typedef struct {
	char **keys;
	void **vals;
	size_t cap, count, used; /* used counts tombstones too */
	int keep;                /* keys are long-lived records (plumb_keep_strdup):
	                            set before the first put, for per-object maps */
} cmap;

void *cmap_get(const cmap *m, const char *key);
/* Stores val under key; the previous value (or NULL) goes to *old. */
int cmap_put(cmap *m, const char *key, void *val, void **old);
/* Removes key; returns its value or NULL. */
void *cmap_del(cmap *m, const char *key);
/* Iterates: returns the next index >= *i holding an entry, or 0 at the end. */
int cmap_next(const cmap *m, size_t *i, const char **key, void **val);
void cmap_free(cmap *m);
/* Frees every value with free_value (NULL: values are not freed), then the map. */
void cmap_free_all(cmap *m, void (*free_value)(void *));

/* ---- events ------------------------------------------------------------------- */
typedef struct controller_events controller_events;
int controller_events_new(controller_events **out, kube_client *mgmt, const char *instance);
/* Queues an Event about GitSync ns/name (uid may be NULL). Never blocks:
 * drops the event when the queue is full. type: "Normal" or "Warning". */
void controller_events_post(controller_events *ev, const char *ns, const char *name,
	const char *uid, const char *type, const char *reason, const char *action, const char *note);
void controller_events_free(controller_events *ev);

#endif
