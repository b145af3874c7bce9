/*
 * pkg/metrics — plumbd's Prometheus metrics registry: metric families
 * (counters, gauges, histograms) with up to SERVER_MAX_LABELS labels, and
 * their text exposition, which pkg/server serves on /metrics.
 *
 * Families are created once at start-up; updates are thread-safe (one lock
 * per registry guards every family and series of it) and cheap. Label values
 * are given in the order of the family's label names. Values are rendered in
 * the Prometheus text exposition format 0.0.4, families in registration
 * order, series in label order, followed by the process_* metrics.
 *
 * The names keep the server_ prefix they had when the registry lived in
 * pkg/server, so that their callers did not change.
 */
#ifndef PLUMB_METRICS_H
#define PLUMB_METRICS_H

#include <stddef.h>

#include "base/base.h"

typedef struct server_metrics server_metrics;
typedef struct server_family server_family;

#define SERVER_MAX_LABELS 4

int server_metrics_new(server_metrics **out);
/* NULL-safe; frees every family. */
void server_metrics_free(server_metrics *m);

/* New families. labels: nlabels names (may be NULL when nlabels is 0).
 * Returns a family owned by the registry, or NULL on bad arguments / ENOMEM.
 * Histogram buckets: nbuckets ascending upper bounds (+Inf is implicit). */
server_family *server_counter(server_metrics *m, const char *name, const char *help,
	int nlabels, const char *const *labels);
server_family *server_gauge(server_metrics *m, const char *name, const char *help,
	int nlabels, const char *const *labels);
server_family *server_histogram(server_metrics *m, const char *name, const char *help,
	int nlabels, const char *const *labels, int nbuckets, const double *buckets);

/* Updates; pass exactly the family's number of label values. NULL family is
 * a no-op, so optional metrics need no checks at the call site. */
void server_counter_add(server_family *f, double v, ...);
void server_gauge_set(server_family *f, double v, ...);
void server_gauge_add(server_family *f, double v, ...);
void server_histogram_observe(server_family *f, double v, ...);
/* Removes one series (a cluster that went away). */
void server_series_remove(server_family *f, ...);
/* Current value of a counter/gauge series (tests, status); 0 when absent. */
double server_value(server_family *f, ...);

/* Appends the exposition text (families + process_* metrics) to buf. */
int server_metrics_render(server_metrics *m, plumb_buf *buf);

#endif
