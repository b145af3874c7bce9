/*
 * bench_ceiling — the apiserver's write ceiling for `make bench`: the same
 * server-side-apply PATCH requests plumb sends (field manager "plumb",
 * force), from a tight loop of THREADS threads on pkg/kube with no plumb
 * logic (no Git, no parsing of YAML, no diff, no inventory, no rate limit).
 *
 *   bench_ceiling KUBECONFIG NAMESPACE THREADS FILE
 *
 * FILE holds one ConfigMap a line as JSON (bench/e2e/lib.sh writes it next to
 * the YAML files it commits); each gets metadata.namespace = NAMESPACE.
 * Prints one line: objects=N seconds=S objects_per_s=R failed=F. Exit 1 when
 * any request failed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kube/kube.h"

#define MAX_FILE (512u << 20) /* 512 MiB: 10,000 objects of 1 KiB are 10 MiB */
#define MAX_THREADS 64

static const kube_resource configmaps = { .group = "", .version = "v1", .kind = "ConfigMap",
	.resource = "configmaps", .namespaced = 1 };

typedef struct {
	kube_client *c;
	const char *ns;
	cJSON **objs; /* borrowed */
	size_t n;
	atomic_size_t next;
	atomic_size_t failed;
} work;

static void *worker(void *p)
{
	work *w = p;
	kube_apply_opts o = { .field_manager = "plumb", .force = 1 };
	for (;;) {
		size_t i = atomic_fetch_add(&w->next, 1);
		if (i >= w->n)
			break;
		if (kube_apply(NULL, w->c, &configmaps, w->ns, w->objs[i], &o)) {
			if (atomic_fetch_add(&w->failed, 1) == 0)
				fprintf(stderr, "bench_ceiling: %s\n", plumb_error_last());
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	kube_config *cfg = NULL;
	kube_client *c = NULL;
	kube_client_opts co = { .qps = -1, .user_agent = "plumb-bench-ceiling" };
	char *text = NULL, *line, *save = NULL;
	size_t len = 0, cap = 0;
	cJSON **objs = NULL;
	pthread_t th[MAX_THREADS];
	work w = { 0 };
	int threads, started = 0, rc = 1;
	double t0, t1;

	if (argc != 5) {
		fprintf(stderr, "usage: bench_ceiling KUBECONFIG NAMESPACE THREADS FILE\n");
		return 2;
	}
	threads = atoi(argv[3]);
	if (threads < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "bench_ceiling: THREADS must be 1..%d\n", MAX_THREADS);
		return 2;
	}
	plumb_log_set_level(PLUMB_LOG_WARN);
	if (plumb_file_read(&text, &len, argv[4], MAX_FILE)) {
		fprintf(stderr, "bench_ceiling: %s\n", plumb_error_last());
		goto cleanup;
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *o = cJSON_Parse(line), *meta;
		if (!o || !(meta = cJSON_GetObjectItemCaseSensitive(o, "metadata")) || !cJSON_IsObject(meta)) {
			fprintf(stderr, "bench_ceiling: line %zu is not a JSON object with metadata\n", w.n + 1);
			cJSON_Delete(o);
			goto cleanup;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
		cJSON_AddStringToObject(meta, "namespace", argv[2]);
		if (w.n == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			cJSON **grown = realloc(objs, ncap * sizeof(*objs));
			if (!grown) {
				cJSON_Delete(o);
				fprintf(stderr, "bench_ceiling: out of memory\n");
				goto cleanup;
			}
			objs = grown;
			cap = ncap;
		}
		objs[w.n++] = o;
	}
	if (kube_config_load_file(&cfg, argv[1], NULL) || kube_client_new(&c, cfg, &co)) {
		fprintf(stderr, "bench_ceiling: %s\n", plumb_error_last());
		goto cleanup;
	}
	w.c = c;
	w.ns = argv[2];
	w.objs = objs;
	atomic_init(&w.next, 0);
	atomic_init(&w.failed, 0);

	t0 = plumb_time_mono();
	for (; started < threads; started++)
		if (pthread_create(&th[started], NULL, worker, &w))
			break;
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	t1 = plumb_time_mono();
	if (started == 0) {
		fprintf(stderr, "bench_ceiling: could not start a thread\n");
		goto cleanup;
	}
	printf("objects=%zu seconds=%.3f objects_per_s=%.1f failed=%zu\n", w.n, t1 - t0,
		w.n / (t1 - t0), atomic_load(&w.failed));
	rc = atomic_load(&w.failed) ? 1 : 0;

cleanup:
	for (size_t i = 0; i < w.n; i++)
		cJSON_Delete(objs[i]);
	free(objs);
	free(text);
	kube_client_free(c);
	kube_config_free(cfg);
	return rc;
}
