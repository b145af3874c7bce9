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

/* ---- events ------------------------------------------------------------------- */
typedef struct controller_events controller_events;
int controller_events_new(controller_events **out, kube_client *mgmt, const char *instance);
/* Queues an Event about GitSync ns/name (uid may be NULL). Never blocks:
 * drops the event when the queue is full. type: "Normal" or "Warning". */
void controller_events_post(controller_events *ev, const char *ns, const char *name,
	const char *uid, const char *type, const char *reason, const char *action, const char *note);
void controller_events_free(controller_events *ev);

#endif
