/* pkg/controller/work.c: TODO */
#include "controller/internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- queue keys ---------------------------------------------------------------- */

/* Queues "<kind>|<a>|<b>" with every '/' of the object keys made '|'. */
static void enqueue(controller *c, const char *kind, const char *a, const char *b, double debounce)
{
	char key[1300];
	snprintf(key, sizeof(key), "%s|%s%s%s", kind, a, b ? "|" : "", b ? b : "");
	for (char *p = key; *p; p++)
		if (*p == '/')
			*p = '|';
	controller_queue_trigger(c->queue, key, debounce);
}

void trigger_src(controller *c, const char *gs_key, double debounce)
{
	enqueue(c, "src", gs_key, NULL, debounce);
}

void trigger_sync(controller *c, const char *gs_key, const char *cl_key, double debounce)
{
	enqueue(c, "sync", gs_key, cl_key, debounce);
}

void trigger_probe(controller *c, const char *cl_key)
{
	enqueue(c, "probe", cl_key, NULL, 0);
}

