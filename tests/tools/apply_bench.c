/*
 * apply_bench — measures pkg/apply against a real cluster.
 *
 *   apply_bench KUBECONFIG plumb   NS N [THREADS]   initial apply of N ConfigMaps
 *                                                     with the engine, then a no-op pass
 *   apply_bench KUBECONFIG ceiling NS N [THREADS]   the same PATCH requests from a tight
 *                                                     loop on pkg/kube (no plumb logic)
 *   apply_bench - yaml NS N                         the same objects as a YAML stream
 *                                                     on stdout (for kubectl)
 * Prints one line of key=value results.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "apply/apply.h"
#include "base/base.h"
#include "kube/kube.h"

static cJSON *cm(const char *ns, int i)
{
	char name[64], buf[1024];
	snprintf(name, sizeof(name), "bench-%05d", i);
	snprintf(buf, sizeof(buf),
		"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\","
		"\"labels\":{\"app\":\"bench\"}},\"data\":{\"index\":\"%d\",\"LOG_LEVEL\":\"info\","
		"\"text\":\"some configuration value that is a little longer than one word\"}}",
		name, ns, i);
	return cJSON_Parse(buf);
}

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

typedef struct {
	kube_client *c;
	cJSON *objs;
	int n;
	atomic_int next;
	atomic_int failed;
} loop;

static void *ceiling_main(void *p)
{
	loop *L = p;
	static const kube_resource res = { .group = "", .version = "v1", .kind = "ConfigMap",
		.resource = "configmaps", .namespaced = 1 };
	for (;;) {
		int i = atomic_fetch_add(&L->next, 1);
		if (i >= L->n)
			break;
		if (kube_apply(NULL, L->c, &res, NULL, cJSON_GetArrayItem(L->objs, i), NULL))
			atomic_fetch_add(&L->failed, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	kube_config *cfg = NULL;
	kube_client *c = NULL;
	kube_client_opts co = { .qps = -1, .user_agent = "plumb-apply-bench" };
	cJSON *objs = cJSON_CreateArray(), *nsobj;
	const char *mode, *ns;
	int n, threads;
	char buf[256];

	if (argc < 5) {
		fprintf(stderr, "usage: apply_bench KUBECONFIG plumb|ceiling|yaml NS N [THREADS]\n");
		return 2;
	}
	mode = argv[2];
	ns = argv[3];
	n = atoi(argv[4]);
	threads = argc > 5 ? atoi(argv[5]) : 8;
	plumb_log_set_level(PLUMB_LOG_WARN);
	snprintf(buf, sizeof(buf), "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", ns);
	nsobj = cJSON_Parse(buf);

	if (!strcmp(mode, "yaml")) {
		/* JSON is YAML: one document per object */
		char *t = cJSON_PrintUnformatted(nsobj);
		printf("%s\n", t);
		free(t);
		for (int i = 0; i < n; i++) {
			cJSON *o = cm(ns, i);
			t = cJSON_PrintUnformatted(o);
			printf("---\n%s\n", t);
			free(t);
			cJSON_Delete(o);
		}
		cJSON_Delete(nsobj);
		cJSON_Delete(objs);
		return 0;
	}
	if (kube_config_load_file(&cfg, argv[1], NULL) || kube_client_new(&c, cfg, &co)) {
		fprintf(stderr, "client: %s\n", plumb_error_last());
		return 1;
	}
	kube_config_free(cfg);

	if (!strcmp(mode, "ceiling")) {
		static const kube_resource nsres = { .group = "", .version = "v1", .kind = "Namespace",
			.resource = "namespaces", .namespaced = 0 };
		pthread_t th[256];
		loop L = { .c = c, .objs = objs, .n = n };
		double t0, t1, c0;
		if (kube_apply(NULL, c, &nsres, NULL, nsobj, NULL)) {
			fprintf(stderr, "namespace: %s\n", plumb_error_last());
			return 1;
		}
		for (int i = 0; i < n; i++)
			cJSON_AddItemToArray(objs, cm(ns, i));
		atomic_init(&L.next, 0);
		atomic_init(&L.failed, 0);
		if (threads > 256)
			threads = 256;
		c0 = cpu_seconds();
		t0 = plumb_time_mono();
		for (int t = 0; t < threads; t++)
			pthread_create(&th[t], NULL, ceiling_main, &L);
		for (int t = 0; t < threads; t++)
			pthread_join(th[t], NULL);
		t1 = plumb_time_mono();
		printf("mode=ceiling n=%d threads=%d seconds=%.2f objects_per_s=%.0f cpu_s=%.2f peak_rss_mb=%.1f failed=%d\n",
			n, threads, t1 - t0, n / (t1 - t0), cpu_seconds() - c0, peak_rss_kb() / 1024.0,
			atomic_load(&L.failed));
	} else {
		apply_engine *e = NULL;
		apply_result r;
		apply_opts o = { .prune = 1, .parallel = (unsigned)threads };
		double t0, t1, c0, c1, t2;
		long rss;
		char gs[128];
		cJSON_AddItemToArray(objs, nsobj);
		nsobj = NULL;
		for (int i = 0; i < n; i++)
			cJSON_AddItemToArray(objs, cm(ns, i));
		snprintf(gs, sizeof(gs), "bench-%s", ns);
		apply_engine_new(&e, c, "bench", gs);
		c0 = cpu_seconds();
		t0 = plumb_time_mono();
		if (apply_engine_run(&r, e, objs, &o)) {
			fprintf(stderr, "run: %s\n", plumb_error_last());
			return 1;
		}
		t1 = plumb_time_mono();
		rss = peak_rss_kb();
		printf("mode=plumb n=%d threads=%d seconds=%.2f objects_per_s=%.0f cpu_s=%.2f peak_rss_mb=%.1f "
			"created=%zu failed=%zu writes=%zu\n", n, threads, t1 - t0, (n + 1) / (t1 - t0),
			cpu_seconds() - c0, rss / 1024.0, r.totals[APPLY_CREATED], r.totals[APPLY_FAILED], r.writes);
		apply_result_free(&r);
		/* no-op pass, same engine (steady state) */
		c0 = cpu_seconds();
		t1 = plumb_time_mono();
		apply_engine_run(&r, e, objs, &o);
		c1 = cpu_seconds();
		t2 = plumb_time_mono();
		printf("mode=noop n=%d seconds=%.2f cpu_s=%.2f unchanged=%zu writes=%zu\n", n, t2 - t1, c1 - c0,
			r.totals[APPLY_UNCHANGED], r.writes);
		apply_result_free(&r);
		/* no-op pass after a restart (new engine, nothing cached) */
		apply_engine_free(e);
		apply_engine_new(&e, c, "bench", gs);
		c0 = cpu_seconds();
		t1 = plumb_time_mono();
		apply_engine_run(&r, e, objs, &o);
		c1 = cpu_seconds();
		t2 = plumb_time_mono();
		printf("mode=noop-restart n=%d seconds=%.2f cpu_s=%.2f unchanged=%zu writes=%zu\n", n, t2 - t1,
			c1 - c0, r.totals[APPLY_UNCHANGED], r.writes);
		apply_result_free(&r);
		apply_engine_free(e);
	}
	cJSON_Delete(objs);
	cJSON_Delete(nsobj);
	kube_client_free(c);
	return 0;
}
