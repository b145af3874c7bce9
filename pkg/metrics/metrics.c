/* pkg/metrics: the Prometheus metrics registry and its text rendering (see
 * metrics.h; one lock per registry, m->lock, guards its families and series). */
#include "metrics/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { FAMILY_COUNTER, FAMILY_GAUGE, FAMILY_HISTOGRAM } family_type;

typedef struct {
	char *values[SERVER_MAX_LABELS];
	char *key;         /* label values joined by '\x1f', for lookup and order */
	double value;      /* counter/gauge; histogram: sum */
	double count;      /* histogram observations */
	double *buckets;   /* histogram: cumulative count per bound */
} series;

struct server_family {
	server_metrics *reg;
	family_type type;
	char *name;
	char *help;
	int nlabels;
	char *labels[SERVER_MAX_LABELS];
	int nbuckets;
	double *bounds;
	series *series;
	size_t nseries, capseries;
	struct server_family *next;
};

struct server_metrics {
	pthread_mutex_t lock;
	server_family *first, *last;
	double start_time;
};

int server_metrics_new(server_metrics **out)
{
	server_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	m->start_time = plumb_time_real();
	*out = m;
	return 0;
}

static void series_clear(series *s, int nlabels)
{
	for (int i = 0; i < nlabels; i++)
		free(s->values[i]);
	free(s->key);
	free(s->buckets);
}

void server_metrics_free(server_metrics *m)
{
	if (!m)
		return;
	server_family *f = m->first;
	while (f) {
		server_family *next = f->next;
		for (size_t i = 0; i < f->nseries; i++)
			series_clear(&f->series[i], f->nlabels);
		free(f->series);
		for (int i = 0; i < f->nlabels; i++)
			free(f->labels[i]);
		free(f->bounds);
		free(f->name);
		free(f->help);
		free(f);
		f = next;
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static server_family *family_new(server_metrics *m, family_type type, const char *name,
	const char *help, int nlabels, const char *const *labels, int nbuckets, const double *bounds)
{
	if (!m || !name || !help || nlabels < 0 || nlabels > SERVER_MAX_LABELS)
		return NULL;
	server_family *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->reg = m;
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help);
	f->nlabels = nlabels;
	for (int i = 0; i < nlabels; i++)
		f->labels[i] = strdup(labels[i]);
	if (nbuckets > 0) {
		f->bounds = malloc(sizeof(double) * (size_t)nbuckets);
		if (f->bounds)
			memcpy(f->bounds, bounds, sizeof(double) * (size_t)nbuckets);
		f->nbuckets = nbuckets;
	}
	pthread_mutex_lock(&m->lock);
	if (m->last)
		m->last->next = f;
	else
		m->first = f;
	m->last = f;
	pthread_mutex_unlock(&m->lock);
	return f;
}

server_family *server_counter(server_metrics *m, const char *name, const char *help,
	int nlabels, const char *const *labels)
{
	return family_new(m, FAMILY_COUNTER, name, help, nlabels, labels, 0, NULL);
}

server_family *server_gauge(server_metrics *m, const char *name, const char *help,
	int nlabels, const char *const *labels)
{
	return family_new(m, FAMILY_GAUGE, name, help, nlabels, labels, 0, NULL);
}

server_family *server_histogram(server_metrics *m, const char *name, const char *help,
	int nlabels, const char *const *labels, int nbuckets, const double *buckets)
{
	if (nbuckets <= 0 || !buckets)
		return NULL;
	return family_new(m, FAMILY_HISTOGRAM, name, help, nlabels, labels, nbuckets, buckets);
}

/* Builds the lookup key from the variadic label values. Caller frees. */
static char *series_key(const server_family *f, va_list ap)
{
	plumb_buf key = PLUMB_BUF_INIT(64 * 1024);
	for (int i = 0; i < f->nlabels; i++) {
		const char *v = va_arg(ap, const char *);
		if (i)
			plumb_buf_append(&key, "\x1f", 1);
		plumb_buf_puts(&key, v ? v : "");
	}
	return plumb_buf_detach(&key);
}

/* Finds or (create != 0) adds the series for key. Called with the lock held. */
static series *series_find(server_family *f, const char *key, int create)
{
	for (size_t i = 0; i < f->nseries; i++)
		if (strcmp(f->series[i].key, key) == 0)
			return &f->series[i];
	if (!create)
		return NULL;
	if (f->nseries == f->capseries) {
		size_t cap = f->capseries ? f->capseries * 2 : 8;
		series *p = realloc(f->series, cap * sizeof(*p));
		if (!p)
			return NULL;
		f->series = p;
		f->capseries = cap;
	}
	series *s = &f->series[f->nseries];
	memset(s, 0, sizeof(*s));
	s->key = strdup(key);
	const char *p = key;
	for (int i = 0; i < f->nlabels; i++) {
		const char *end = strchr(p, '\x1f');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		s->values[i] = strndup(p, n);
		p = end ? end + 1 : p + n;
	}
	if (f->type == FAMILY_HISTOGRAM)
		s->buckets = calloc((size_t)f->nbuckets, sizeof(double));
	if (!s->key || (f->type == FAMILY_HISTOGRAM && !s->buckets)) {
		series_clear(s, f->nlabels);
		return NULL;
	}
	f->nseries++;
	return s;
}

typedef enum { OP_ADD, OP_SET, OP_OBSERVE } update_op;

static void update(server_family *f, update_op op, double v, va_list ap)
{
	char *key = series_key(f, ap);
	if (!key)
		return;
	pthread_mutex_lock(&f->reg->lock);
	series *s = series_find(f, key, 1);
	if (s) {
		switch (op) {
		case OP_ADD: s->value += v; break;
		case OP_SET: s->value = v; break;
		case OP_OBSERVE:
			s->value += v;
			s->count += 1;
			for (int i = 0; i < f->nbuckets; i++)
				if (v <= f->bounds[i])
					s->buckets[i] += 1;
			break;
		}
	}
	pthread_mutex_unlock(&f->reg->lock);
	free(key);
}

void server_counter_add(server_family *f, double v, ...)
{
	if (!f || f->type != FAMILY_COUNTER || v < 0)
		return;
	va_list ap;
	va_start(ap, v);
	update(f, OP_ADD, v, ap);
	va_end(ap);
}

void server_gauge_set(server_family *f, double v, ...)
{
	if (!f || f->type != FAMILY_GAUGE)
		return;
	va_list ap;
	va_start(ap, v);
	update(f, OP_SET, v, ap);
	va_end(ap);
}

void server_gauge_add(server_family *f, double v, ...)
{
	if (!f || f->type != FAMILY_GAUGE)
		return;
	va_list ap;
	va_start(ap, v);
	update(f, OP_ADD, v, ap);
	va_end(ap);
}

void server_histogram_observe(server_family *f, double v, ...)
{
	if (!f || f->type != FAMILY_HISTOGRAM)
		return;
	va_list ap;
	va_start(ap, v);
	update(f, OP_OBSERVE, v, ap);
	va_end(ap);
}

void server_series_remove(server_family *f, ...)
{
	if (!f)
		return;
	va_list ap;
	va_start(ap, f);
	char *key = series_key(f, ap);
	va_end(ap);
	if (!key)
		return;
	pthread_mutex_lock(&f->reg->lock);
	for (size_t i = 0; i < f->nseries; i++) {
		if (strcmp(f->series[i].key, key) == 0) {
			series_clear(&f->series[i], f->nlabels);
			f->series[i] = f->series[--f->nseries];
			break;
		}
	}
	pthread_mutex_unlock(&f->reg->lock);
	free(key);
}

double server_value(server_family *f, ...)
{
	if (!f)
		return 0;
	va_list ap;
	va_start(ap, f);
	char *key = series_key(f, ap);
	va_end(ap);
	double v = 0;
	if (!key)
		return 0;
	pthread_mutex_lock(&f->reg->lock);
	series *s = series_find(f, key, 0);
	if (s)
		v = f->type == FAMILY_HISTOGRAM ? s->count : s->value;
	pthread_mutex_unlock(&f->reg->lock);
	free(key);
	return v;
}

/* ---- rendering ---------------------------------------------------------- */

static void put_number(plumb_buf *b, double v)
{
	if (isinf(v))
		plumb_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
	else if (isnan(v))
		plumb_buf_puts(b, "NaN");
	else if (v == floor(v) && fabs(v) < 1e15)
		plumb_buf_printf(b, "%.0f", v);
	else
		plumb_buf_printf(b, "%.9g", v);
}

static void put_label_value(plumb_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			plumb_buf_puts(b, "\\\\");
		else if (*v == '"')
			plumb_buf_puts(b, "\\\"");
		else if (*v == '\n')
			plumb_buf_puts(b, "\\n");
		else
			plumb_buf_append(b, v, 1);
	}
}

/* {a="x",b="y"[,le="0.5"]} or nothing. */
static void put_labels(plumb_buf *b, const server_family *f, const series *s, const char *le)
{
	if (f->nlabels == 0 && !le)
		return;
	plumb_buf_puts(b, "{");
	for (int i = 0; i < f->nlabels; i++) {
		plumb_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
		put_label_value(b, s->values[i]);
		plumb_buf_puts(b, "\"");
	}
	if (le)
		plumb_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	plumb_buf_puts(b, "}");
}

static int series_cmp(const void *a, const void *b)
{
	return strcmp(((const series *)a)->key, ((const series *)b)->key);
}

static void render_family(plumb_buf *b, server_family *f)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	plumb_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->type]);
	if (f->nseries > 1)
		qsort(f->series, f->nseries, sizeof(series), series_cmp);
	for (size_t i = 0; i < f->nseries; i++) {
		series *s = &f->series[i];
		if (f->type != FAMILY_HISTOGRAM) {
			plumb_buf_puts(b, f->name);
			put_labels(b, f, s, NULL);
			plumb_buf_puts(b, " ");
			put_number(b, s->value);
			plumb_buf_puts(b, "\n");
			continue;
		}
		for (int j = 0; j <= f->nbuckets; j++) {
			char le[64];
			if (j < f->nbuckets)
				snprintf(le, sizeof(le), "%g", f->bounds[j]);
			else
				snprintf(le, sizeof(le), "+Inf");
			plumb_buf_printf(b, "%s_bucket", f->name);
			put_labels(b, f, s, le);
			plumb_buf_puts(b, " ");
			put_number(b, j < f->nbuckets ? s->buckets[j] : s->count);
			plumb_buf_puts(b, "\n");
		}
		plumb_buf_printf(b, "%s_sum", f->name);
		put_labels(b, f, s, NULL);
		plumb_buf_puts(b, " ");
		put_number(b, s->value);
		plumb_buf_printf(b, "\n%s_count", f->name);
		put_labels(b, f, s, NULL);
		plumb_buf_puts(b, " ");
		put_number(b, s->count);
		plumb_buf_puts(b, "\n");
	}
}

/* process_* metrics from /proc/self, as the Prometheus client libraries name them. */
static void render_process(plumb_buf *b, const server_metrics *m)
{
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long utime = 0, stime = 0, vsize = 0;
	long rss = 0;
	char *stat = NULL;
	if (plumb_file_read(&stat, NULL, "/proc/self/stat", 64 * 1024) == 0) {
		/* Fields after the parenthesised command name, which may hold spaces. */
		const char *p = strrchr(stat, ')');
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
				"%*d %*d %*d %*d %*d %*d %*u %lu %ld", &utime, &stime, &vsize, &rss) != 4)
			utime = stime = vsize = 0, rss = 0;
	}
	free(stat);
	int fds = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				fds++;
		closedir(d);
	}
	plumb_buf_printf(b,
		"# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
		"# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
		"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n"
		"# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
		"# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %lu\n"
		"# HELP process_open_fds Number of open file descriptors.\n"
		"# TYPE process_open_fds gauge\nprocess_open_fds %d\n"
		"# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
		"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.0f\n",
		ticks > 0 ? (double)(utime + stime) / (double)ticks : 0.0,
		rss * page, vsize, fds - 1 /* the DIR itself */, m->start_time);
}

int server_metrics_render(server_metrics *m, plumb_buf *buf)
{
	pthread_mutex_lock(&m->lock);
	for (server_family *f = m->first; f; f = f->next)
		render_family(buf, f);
	pthread_mutex_unlock(&m->lock);
	render_process(buf, m);
	return buf->ptr ? 0 : plumb_error_set(PLUMB_ENOMEM, "metrics: out of memory");
}
