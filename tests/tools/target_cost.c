/*
 * target_cost — what one target cluster costs in pkg/kube, step by step, for
 * bench scenario 8 (bench/README.md): for every KUBECONFIG a client is made,
 * then step by step over all of them at once: a /version probe (one TLS
 * connection), discovery (kube_resolve of v1 ConfigMap), WATCHES watches on
 * the hub (ConfigMaps, Secrets, Services, ServiceAccounts: 1-4; the
 * environment's WATCHES, default 1), PAR parallel GETs (the apply engine's pool) and
 * kube_client_shrink(2) after them. After each step it prints the growth of
 * malloc's bytes in use (mallinfo2: uordblks + hblkhd) and of VmRSS, per
 * client. malloc is set up as plumbd sets it (M_ARENA_MAX 2, 64 KiB mmap
 * threshold).
 *
 *   [WATCHES=1-4] [SS=command] target_cost PAR KUBECONFIG…
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "kube/kube.h"

#define MAX_CLIENTS 256
#define MAX_PAR 32

static const kube_resource configmaps = { .group = "", .version = "v1", .kind = "ConfigMap",
	.resource = "configmaps", .namespaced = 1 };
static const kube_resource watched[] = {
	{ .group = "", .version = "v1", .kind = "ConfigMap", .resource = "configmaps", .namespaced = 1 },
	{ .group = "", .version = "v1", .kind = "Secret", .resource = "secrets", .namespaced = 1 },
	{ .group = "", .version = "v1", .kind = "Service", .resource = "services", .namespaced = 1 },
	{ .group = "", .version = "v1", .kind = "ServiceAccount", .resource = "serviceaccounts", .namespaced = 1 },
};

static size_t in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			v = strtol(line + 6, NULL, 10);
	fclose(f);
	return v;
}

static size_t last_heap;
static long last_rss;
static int nclients;

static void report(const char *step)
{
	malloc_trim(0);
	size_t h = in_use();
	long r = rss_kib();
	printf("%-34s heap %+8.1f KiB/client  rss %+8.1f KiB/client  (heap %zu KiB, rss %ld KiB)\n", step,
		((double)h - (double)last_heap) / 1024.0 / nclients, (double)(r - last_rss) / nclients,
		h / 1024, r);
	fflush(stdout);
	last_heap = h;
	last_rss = r;
}

static void on_event(kube_watch_event type, const cJSON *obj, void *data)
{
	(void)type;
	(void)obj;
	(void)data;
}

static void *hub_thread(void *p)
{
	kube_watch_hub_run(p);
	return NULL;
}

typedef struct {
	kube_client *c;
} get_arg;

static void *get_one(void *p)
{
	get_arg *a = p;
	cJSON *o = NULL;
	if (kube_get(&o, a->c, &configmaps, "kube-system", "extension-apiserver-authentication") == 0)
		cJSON_Delete(o);
	return NULL;
}

int main(int argc, char **argv)
{
	kube_client *clients[MAX_CLIENTS];
	kube_watch *watches[MAX_CLIENTS][4];
	int nw = getenv("WATCHES") ? atoi(getenv("WATCHES")) : 1;
	kube_watch_hub *hub = NULL;
	pthread_t hub_tid;
	int par, rc = 1;

	if (nw < 1 || nw > 4)
		nw = 1;
	if (argc < 3 || (par = atoi(argv[1])) < 1 || par > MAX_PAR || argc - 2 > MAX_CLIENTS) {
		fprintf(stderr, "usage: target_cost PAR(1-%d) KUBECONFIG… (at most %d)\n", MAX_PAR, MAX_CLIENTS);
		return 2;
	}
	mallopt(M_ARENA_MAX, 2);
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	nclients = argc - 2;
	if (kube_watch_hub_new(&hub) || pthread_create(&hub_tid, NULL, hub_thread, hub)) {
		fprintf(stderr, "target_cost: hub: %s\n", plumb_error_last());
		return 1;
	}
	/* curl's and OpenSSL's one-time setup is not a target's cost */
	{
		kube_config *cfg = NULL;
		kube_client *c = NULL;
		char v[64];
		if (kube_config_load_file(&cfg, argv[2], NULL) || kube_client_new(&c, cfg, NULL) ||
		    kube_server_version(v, sizeof(v), c)) {
			fprintf(stderr, "target_cost: %s: %s\n", argv[2], plumb_error_last());
			return 1;
		}
		kube_client_free(c);
		kube_config_free(cfg);
	}
	malloc_trim(0);
	last_heap = in_use();
	last_rss = rss_kib();
	printf("%d clients, %d parallel GETs each; baseline heap %zu KiB, rss %ld KiB\n", nclients, par,
		last_heap / 1024, last_rss);

	for (int i = 0; i < nclients; i++) {
		kube_config *cfg = NULL;
		kube_client_opts o = { .name = argv[i + 2], .timeout = 20 };
		if (kube_config_load_file(&cfg, argv[i + 2], NULL) || kube_client_new(&clients[i], cfg, &o)) {
			fprintf(stderr, "target_cost: %s: %s\n", argv[i + 2], plumb_error_last());
			return 1;
		}
		kube_config_free(cfg);
	}
	report("config + client");
	for (int i = 0; i < nclients; i++) {
		char v[64];
		if (kube_server_version(v, sizeof(v), clients[i])) {
			fprintf(stderr, "target_cost: %s: %s\n", argv[i + 2], plumb_error_last());
			goto cleanup;
		}
	}
	report("GET /version (1 TLS connection)");
	for (int i = 0; i < nclients; i++) {
		kube_resource r;
		if (kube_resolve(&r, clients[i], "v1", "ConfigMap")) {
			fprintf(stderr, "target_cost: %s: %s\n", argv[i + 2], plumb_error_last());
			goto cleanup;
		}
	}
	report("discovery (resolve v1 ConfigMap)");
	for (int i = 0; i < nclients; i++)
		for (int k = 0; k < nw; k++) {
			kube_watch_opts wo = { .ns = "default", .label_selector = "app.kubernetes.io/managed-by=plumb" };
			if (kube_watch_start(&watches[i][k], hub, clients[i], &watched[k], &wo, on_event, NULL)) {
				fprintf(stderr, "target_cost: watch: %s\n", plumb_error_last());
				goto cleanup;
			}
		}
	sleep(3);
	report(nw == 1 ? "one watch (LIST + WATCH)" : "watches (LIST + WATCH each)");
	for (int i = 0; i < nclients; i++) {
		pthread_t t[MAX_PAR];
		get_arg a = { clients[i] };
		for (int j = 0; j < par; j++)
			pthread_create(&t[j], NULL, get_one, &a);
		for (int j = 0; j < par; j++)
			pthread_join(t[j], NULL);
	}
	report("parallel GETs (pool of handles)");
	for (int i = 0; i < nclients; i++)
		kube_client_shrink(clients[i], 0);
	if (getenv("SS"))   /* the connections now: one line per socket */
		(void)!system(getenv("SS"));
	report("kube_client_shrink(0)");
	for (int i = 0; i < nclients; i++)
		for (int k = 0; k < nw; k++)
			kube_watch_stop(watches[i][k]);
	sleep(1);
	report("watches stopped");
	rc = 0;
cleanup:
	kube_watch_hub_stop(hub);
	pthread_join(hub_tid, NULL);
	for (int i = 0; i < nclients; i++)
		kube_client_free(clients[i]);
	kube_watch_hub_free(hub);
	return rc;
}
