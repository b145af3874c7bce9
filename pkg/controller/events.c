/* pkg/controller: Kubernetes Events (events.k8s.io/v1) about GitSyncs, sent
 * best effort from a thread of their own so a reconcile never waits on them. */
#include "controller/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_QUEUE 256

typedef struct {
	cJSON *body;
	char *ns;
} pending_event;

struct controller_events {
	kube_client *mgmt;
	kube_resource res;
	char *instance;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pending_event q[EVENT_QUEUE];
	size_t head, len;
	int stop;
	unsigned long dropped;
};

static void *event_loop(void *arg)
{
	controller_events *ev = arg;
	for (;;) {
		pthread_mutex_lock(&ev->lock);
		while (!ev->stop && ev->len == 0)
			pthread_cond_wait(&ev->cond, &ev->lock);
		if (ev->len == 0 && ev->stop) {
			pthread_mutex_unlock(&ev->lock);
			break;
		}
		pending_event pe = ev->q[ev->head];
		ev->head = (ev->head + 1) % EVENT_QUEUE;
		ev->len--;
		pthread_mutex_unlock(&ev->lock);
		if (kube_create(NULL, ev->mgmt, &ev->res, pe.ns, pe.body) != 0)
			plumb_debug("event not recorded", "error", plumb_error_last());
		cJSON_Delete(pe.body);
		free(pe.ns);
	}
	return NULL;
}

int controller_events_new(controller_events **out, kube_client *mgmt, const char *instance)
{
	controller_events *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	ev->mgmt = mgmt;
	ev->instance = plumb_strdup(instance ? instance : "plumbd");
	pthread_mutex_init(&ev->lock, NULL);
	pthread_cond_init(&ev->cond, NULL);
	int rc = kube_resolve(&ev->res, mgmt, "events.k8s.io/v1", "Event");
	if (rc == 0 && pthread_create(&ev->thread, NULL, event_loop, ev) != 0)
		rc = plumb_error_set(PLUMB_EIO, "events: cannot start thread");
	if (rc) {
		pthread_mutex_destroy(&ev->lock);
		pthread_cond_destroy(&ev->cond);
		free(ev->instance);
		free(ev);
		return rc;
	}
	*out = ev;
	return 0;
}

void controller_events_post(controller_events *ev, const char *ns, const char *name,
	const char *uid, const char *type, const char *reason, const char *action, const char *note)
{
	if (!ev)
		return;
	char now[48], evname[300], rnd[11];
	plumb_time_micro(now, sizeof(now), plumb_time_real());
	/* generateName would end in '.', which the API refuses: name it here. */
	plumb_random_name(rnd, 10);
	snprintf(evname, sizeof(evname), "%.200s.%s", name, rnd);
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "apiVersion", "events.k8s.io/v1");
	cJSON_AddStringToObject(e, "kind", "Event");
	cJSON *meta = cJSON_AddObjectToObject(e, "metadata");
	cJSON_AddStringToObject(meta, "name", evname);
	cJSON_AddStringToObject(meta, "namespace", ns);
	cJSON_AddStringToObject(e, "eventTime", now);
	cJSON_AddStringToObject(e, "reportingController", "plumb.dev/plumbd");
	cJSON_AddStringToObject(e, "reportingInstance", ev->instance);
	cJSON_AddStringToObject(e, "action", action);
	cJSON_AddStringToObject(e, "reason", reason);
	cJSON_AddStringToObject(e, "type", type);
	/* The API caps note at 1 kB. */
	char *n = plumb_strndup(note ? note : "", 1000);
	cJSON_AddStringToObject(e, "note", n ? n : "");
	free(n);
	cJSON *reg = cJSON_AddObjectToObject(e, "regarding");
	cJSON_AddStringToObject(reg, "apiVersion", PLUMB_API_GROUP_VERSION);
	cJSON_AddStringToObject(reg, "kind", "GitSync");
	cJSON_AddStringToObject(reg, "namespace", ns);
	cJSON_AddStringToObject(reg, "name", name);
	if (uid)
		cJSON_AddStringToObject(reg, "uid", uid);

	pthread_mutex_lock(&ev->lock);
	if (ev->len == EVENT_QUEUE || ev->stop) {
		ev->dropped++;
		pthread_mutex_unlock(&ev->lock);
		cJSON_Delete(e);
		return;
	}
	size_t tail = (ev->head + ev->len) % EVENT_QUEUE;
	ev->q[tail].body = e;
	ev->q[tail].ns = plumb_strdup(ns);
	ev->len++;
	pthread_cond_signal(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
}

void controller_events_free(controller_events *ev)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->stop = 1;
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
	pthread_join(ev->thread, NULL);
	pthread_mutex_destroy(&ev->lock);
	pthread_cond_destroy(&ev->cond);
	free(ev->instance);
	free(ev);
}
