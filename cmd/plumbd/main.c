/* plumbd — the plumb controller: flags, wiring, signals, exit codes. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "controller/controller.h"
#include "kube/kube.h"
#include "manifest/manifest.h"
#include "metrics/metrics.h"
#include "render/render.h"
#include "server/server.h"

#ifndef PLUMB_VERSION
#define PLUMB_VERSION "0.1.0-dev"
#endif

typedef struct {
	const char *kubeconfig;
	const char *context;
	const char *ns;
	int leader_elect;
	int shards;               /* --shards: -1 off, 0 auto (every live replica), N at most N */
	const char *lease_name;
	const char *lease_ns;
	double lease_duration, lease_renew, lease_retry;   /* 0: the elector's defaults */
	const char *metrics_addr;
	const char *health_addr;
	const char *webhook_addr;
	unsigned workers;
	const char *log_level;
	const char *cache_dir;
	double shutdown_timeout;
	double kube_qps;
	int kube_burst;
	int allow_insecure_targets;
	int allow_target_proxies;
	const char *allow_exec_plugins;
	size_t git_max_fetch_bytes;
	/* trust boundary */
	const char *default_sa;
	const char *mgmt_target_ns;
	int allow_file_urls;
	const char *kustomize_bin;
	const char *helm_bin;
	double render_timeout;
	size_t render_max_output;
	size_t target_max_objects;
	size_t target_max_bytes;
	size_t gitsync_max_objects;
	double target_cache_retry;
} flags;

static atomic_int lost_lease;
static atomic_int shutting_down;
static server_family *api_requests;

/* Says at start-up whether renders get a network namespace, which render
 * tools a kustomize or helm GitSync will run, and which are missing (such
 * a GitSync then fails naming the flag). */
static void log_render_tools(const flags *f)
{
	render_tools tools = { .kustomize = f->kustomize_bin, .helm = f->helm_bin };
	const char *why = NULL;
	if (render_network_isolation(&why))
		plumb_info("renders run without network (a network namespace each)");
	else
		plumb_warn("renders run in plumbd's network: no network namespace for them", "error", why);
	static const render_kind kinds[] = { RENDER_KUSTOMIZE, RENDER_HELM };
	for (size_t i = 0; i < 2; i++) {
		char *bin = NULL;
		if (render_tool_find(&bin, &tools, kinds[i]) == 0)
			plumb_info("render tool found", "tool", render_kind_name(kinds[i]), "path", bin);
		else
			plumb_warn("render tool missing: GitSyncs that need it fail", "tool",
				render_kind_name(kinds[i]), "error", plumb_error_last());
		free(bin);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"plumbd %s — keeps Kubernetes clusters in step with Git (GitSync and Cluster resources).\n"
		"\n"
		"Usage: plumbd [flags]\n"
		"\n"
		"  --kubeconfig PATH       management cluster kubeconfig (default: $KUBECONFIG, else in-cluster config)\n"
		"  --context NAME          kubeconfig context (default: current-context)\n"
		"  --namespace NS          watch GitSyncs, Clusters and Secrets in NS only (default: all namespaces)\n"
		"  --leader-elect          elect a leader on a Lease; only the leader writes (default: off)\n"
		"  --shards auto|N         spread GitSyncs over the live replicas, each owned by one (a Lease per\n"
		"                          replica, consistent hashing with bounded loads); N: at most N replicas\n"
		"                          own GitSyncs, the others wait to step in; replaces --leader-elect\n"
		"  --lease-name NAME       Lease name, and the prefix of the replicas' Leases with --shards\n"
		"                          (default: plumbd)\n"
		"  --lease-namespace NS    Lease namespace (default: --namespace, else the config's namespace)\n"
		"  --lease-duration D      how long a Lease counts after its holder last renewed it (default: 15s)\n"
		"  --lease-renew-deadline D  a leader that cannot renew within D stops leading (default: 10s)\n"
		"  --lease-retry-period D  how often candidates try and the leader renews (default: 2s);\n"
		"                          duration > renew deadline > 1.2 x retry period, each from 1s to 5m\n"
		"  --metrics-addr ADDR     /metrics listen address, and /hooks/<ns>/<gitsync> without --webhook-addr\n"
		"                          (default: :8080)\n"
		"  --webhook-addr ADDR     serve only /hooks/<ns>/<gitsync> on ADDR, and no /hooks on --metrics-addr,\n"
		"                          so what exposes webhooks never exposes metrics (default: off)\n"
		"  --health-addr ADDR      /healthz and /readyz listen address (default: :8081)\n"
		"  --workers N             concurrent reconciles (default: 4)\n"
		"  --log-level LEVEL       debug, info, warn or error (default: info)\n"
		"  --cache-dir DIR         Git mirror cache (default: /tmp/plumb-cache)\n"
		"  --shutdown-timeout D    on SIGTERM, wait this long for running applies (default: 30s)\n"
		"  --kube-qps N            client-side request rate limit per target cluster (default: 0 = none;\n"
		"                          the API server's priority and fairness applies, 429 Retry-After is honoured)\n"
		"  --kube-burst N          burst for --kube-qps (default: 2 x qps)\n"
		"  --allow-insecure-targets  kubeconfig Secrets may use http:// servers and\n"
		"                          insecure-skip-tls-verify: true (default: refused)\n"
		"  --allow-exec-plugins LIST  comma-separated command names (e.g. aws,gke-gcloud-auth-plugin,kubelogin)\n"
		"                          a kubeconfig Secret's exec plugin may name; looked up in plumbd's PATH only\n"
		"                          (default: none; exec plugins are refused)\n"
		"  --allow-target-proxies  kubeconfig Secrets may set proxy-url (default: refused)\n"
		"  --git-max-fetch-bytes N bytes one Git fetch may receive, e.g. 256Mi, 1Gi (default: 256Mi)\n"
		"  --default-service-account NAME\n"
		"                          GitSyncs without spec.serviceAccountName impersonate the service\n"
		"                          account NAME of their own namespace in every target (default: none:\n"
		"                          they act with the Cluster's credentials)\n"
		"  --management-target-namespaces NS,...\n"
		"                          namespaces whose Clusters may omit kubeConfigSecretRef and so target\n"
		"                          the management cluster (default: none)\n"
		"  --allow-file-urls       accept file:// URLs and local paths in spec.git.url (tests, demos;\n"
		"                          default: refused, they read plumbd's own file system)\n"
		"  --kustomize-bin PATH    kustomize for GitSyncs that render a Kustomize overlay\n"
		"                          (default: kustomize in PATH)\n"
		"  --helm-bin PATH         helm for GitSyncs that render a Helm chart (default: helm in PATH)\n"
		"  --render-timeout D      wall-clock time one kustomize or helm run may take; past it the\n"
		"                          run is killed and the GitSync stalls (default: 60s, at most 10m)\n"
		"  --render-max-output N   bytes one run may print, e.g. 16Mi (default: 64Mi, at most 64Mi)\n"
		"  --target-cache-max-objects N\n"
		"                          objects plumbd caches of one target cluster; past it that cluster is\n"
		"                          Failed and retried after a minute (default: 200000)\n"
		"  --target-cache-max-bytes N\n"
		"                          the same in bytes of cache (default: 67108864 = 64 MiB)\n"
		"  --gitsync-cache-max-objects N\n"
		"                          objects labelled for one GitSync in one target's cache; past it only\n"
		"                          that GitSync is Failed there (default: 100000)\n"
		"  --target-cache-retry D  how long a target over a cache cap waits before it is listed\n"
		"                          again (default: 1m)\n"
		"  --version               print the version and exit\n"
		"  -h, --help              this help\n"
		"\n"
		"Exit codes: 0 after SIGTERM/SIGINT, 1 on a start-up error or a lost lease, 2 on bad flags.\n",
		PLUMB_VERSION);
}

static int parse_flags(flags *f, int argc, char **argv)
{
	enum { KUBECONFIG = 1000, CONTEXT, NS, LEADER, LEASE_NAME, LEASE_NS, METRICS, HEALTH,
		WORKERS, LOG_LEVEL, CACHE, SHUTDOWN, VERSION, QPS, BURST, ALLOW_INSECURE, ALLOW_EXEC,
		ALLOW_PROXY, GIT_MAX_FETCH, DEFAULT_SA, MGMT_TARGET_NS, ALLOW_FILE_URLS, WEBHOOK,
		CACHE_OBJECTS, CACHE_BYTES, GS_OBJECTS, CACHE_RETRY, KUSTOMIZE_BIN, HELM_BIN,
		RENDER_TIMEOUT, RENDER_MAX_OUTPUT, LEASE_DURATION, LEASE_RENEW, LEASE_RETRY, SHARDS };
	static const struct option opts[] = {
		{ "kubeconfig", required_argument, NULL, KUBECONFIG },
		{ "context", required_argument, NULL, CONTEXT },
		{ "namespace", required_argument, NULL, NS },
		{ "leader-elect", optional_argument, NULL, LEADER },
		{ "shards", required_argument, NULL, SHARDS },
		{ "lease-name", required_argument, NULL, LEASE_NAME },
		{ "lease-namespace", required_argument, NULL, LEASE_NS },
		{ "lease-duration", required_argument, NULL, LEASE_DURATION },
		{ "lease-renew-deadline", required_argument, NULL, LEASE_RENEW },
		{ "lease-retry-period", required_argument, NULL, LEASE_RETRY },
		{ "metrics-addr", required_argument, NULL, METRICS },
		{ "health-addr", required_argument, NULL, HEALTH },
		{ "webhook-addr", required_argument, NULL, WEBHOOK },
		{ "target-cache-max-objects", required_argument, NULL, CACHE_OBJECTS },
		{ "target-cache-max-bytes", required_argument, NULL, CACHE_BYTES },
		{ "gitsync-cache-max-objects", required_argument, NULL, GS_OBJECTS },
		{ "target-cache-retry", required_argument, NULL, CACHE_RETRY },
		{ "workers", required_argument, NULL, WORKERS },
		{ "log-level", required_argument, NULL, LOG_LEVEL },
		{ "cache-dir", required_argument, NULL, CACHE },
		{ "shutdown-timeout", required_argument, NULL, SHUTDOWN },
		{ "kube-qps", required_argument, NULL, QPS },
		{ "kube-burst", required_argument, NULL, BURST },
		{ "allow-insecure-targets", optional_argument, NULL, ALLOW_INSECURE },
		{ "allow-exec-plugins", required_argument, NULL, ALLOW_EXEC },
		{ "allow-target-proxies", optional_argument, NULL, ALLOW_PROXY },
		{ "git-max-fetch-bytes", required_argument, NULL, GIT_MAX_FETCH },
		{ "default-service-account", required_argument, NULL, DEFAULT_SA },
		{ "management-target-namespaces", required_argument, NULL, MGMT_TARGET_NS },
		{ "allow-file-urls", no_argument, NULL, ALLOW_FILE_URLS },
		{ "kustomize-bin", required_argument, NULL, KUSTOMIZE_BIN },
		{ "helm-bin", required_argument, NULL, HELM_BIN },
		{ "render-timeout", required_argument, NULL, RENDER_TIMEOUT },
		{ "render-max-output", required_argument, NULL, RENDER_MAX_OUTPUT },
		{ "version", no_argument, NULL, VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*f = (flags){ .shards = -1, .lease_name = "plumbd", .metrics_addr = ":8080", .health_addr = ":8081",
		.workers = 4, .log_level = "info", .cache_dir = "/tmp/plumb-cache", .shutdown_timeout = 30 };
	f->kubeconfig = getenv("KUBECONFIG");
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case KUBECONFIG: f->kubeconfig = optarg; break;
		case CONTEXT: f->context = optarg; break;
		case NS: f->ns = *optarg ? optarg : NULL; break;
		case LEADER:
			f->leader_elect = !optarg || !strcmp(optarg, "true") || !strcmp(optarg, "1");
			break;
		case SHARDS: {
			long n = strcmp(optarg, "auto") ? strtol(optarg, &end, 10) : 0;
			if (strcmp(optarg, "auto") && (*end || n < 1 || n > 1024)) {
				fprintf(stderr, "plumbd: --shards %s: want auto or a number from 1 to 1024\n", optarg);
				return 2;
			}
			f->shards = (int)n;
			break;
		}
		case LEASE_NAME: f->lease_name = optarg; break;
		case LEASE_NS: f->lease_ns = optarg; break;
		case LEASE_DURATION:
		case LEASE_RENEW:
		case LEASE_RETRY: {
			double *d = c == LEASE_DURATION ? &f->lease_duration : c == LEASE_RENEW ? &f->lease_renew : &f->lease_retry;
			if (plumb_duration_parse(d, optarg) != 0 || *d < 1 || *d > 300) {
				fprintf(stderr, "plumbd: %s %s: want a duration from 1s to 5m\n",
					c == LEASE_DURATION ? "--lease-duration" : c == LEASE_RENEW ? "--lease-renew-deadline" :
					"--lease-retry-period", optarg);
				return 2;
			}
			break;
		}
		case METRICS: f->metrics_addr = optarg; break;
		case HEALTH: f->health_addr = optarg; break;
		case WEBHOOK: f->webhook_addr = *optarg ? optarg : NULL; break;
		case WORKERS: {
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 256) {
				fprintf(stderr, "plumbd: --workers %s: want a number from 1 to 256\n", optarg);
				return 2;
			}
			f->workers = (unsigned)n;
			break;
		}
		case LOG_LEVEL: f->log_level = optarg; break;
		case CACHE: f->cache_dir = optarg; break;
		case CACHE_RETRY:
			if (plumb_duration_parse(&f->target_cache_retry, optarg) != 0 || f->target_cache_retry < 1) {
				fprintf(stderr, "plumbd: --target-cache-retry %s: want a duration of 1s or more\n", optarg);
				return 2;
			}
			break;
		case SHUTDOWN:
			if (plumb_duration_parse(&f->shutdown_timeout, optarg) != 0) {
				fprintf(stderr, "plumbd: --shutdown-timeout: %s\n", plumb_error_last());
				return 2;
			}
			break;
		case QPS:
			f->kube_qps = strtod(optarg, &end);
			if (*end || f->kube_qps < 0) {
				fprintf(stderr, "plumbd: --kube-qps %s: want a number >= 0\n", optarg);
				return 2;
			}
			break;
		case BURST: {
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 100000) {
				fprintf(stderr, "plumbd: --kube-burst %s: want a number from 1 to 100000\n", optarg);
				return 2;
			}
			f->kube_burst = (int)n;
			break;
		}
		case ALLOW_INSECURE:
			f->allow_insecure_targets = !optarg || !strcmp(optarg, "true") || !strcmp(optarg, "1");
			break;
		case ALLOW_PROXY:
			f->allow_target_proxies = !optarg || !strcmp(optarg, "true") || !strcmp(optarg, "1");
			break;
		case ALLOW_EXEC: {
			char **names = NULL;
			if (kube_exec_plugins_parse(&names, optarg) != 0) {
				fprintf(stderr, "plumbd: --allow-exec-plugins: %s\n", plumb_error_last());
				return 2;
			}
			kube_exec_plugins_free(names);
			f->allow_exec_plugins = optarg;
			break;
		}
		case RENDER_TIMEOUT:
			if (plumb_duration_parse(&f->render_timeout, optarg) != 0 || f->render_timeout < 1 ||
			    f->render_timeout > 600) {
				fprintf(stderr, "plumbd: --render-timeout %s: want a duration from 1s to 10m\n", optarg);
				return 2;
			}
			break;
		case RENDER_MAX_OUTPUT:
		case GIT_MAX_FETCH: {
			const char *fname = c == GIT_MAX_FETCH ? "git-max-fetch-bytes" : "render-max-output";
			unsigned long long n = strtoull(optarg, &end, 10), mul = 1;
			if (!strcmp(end, "Ki"))
				mul = 1ull << 10;
			else if (!strcmp(end, "Mi"))
				mul = 1ull << 20;
			else if (!strcmp(end, "Gi"))
				mul = 1ull << 30;
			else if (*end)
				mul = 0;
			if (!mul || n == 0 || n > (1ull << 40) / mul || optarg[0] == '-' ||
			    (c == RENDER_MAX_OUTPUT && n * mul > MANIFEST_MAX_REVISION_BYTES)) {
				fprintf(stderr, "plumbd: --%s %s: want a size such as %s\n", fname, optarg,
					c == GIT_MAX_FETCH ? "512Mi or 2Gi" : "16Mi, at most 64Mi");
				return 2;
			}
			if (c == GIT_MAX_FETCH)
				f->git_max_fetch_bytes = (size_t)(n * mul);
			else
				f->render_max_output = (size_t)(n * mul);
			break;
		}
		case DEFAULT_SA: {
			char user[600];
			if (*optarg && kube_service_account_user(user, sizeof(user), "default", optarg) != 0) {
				fprintf(stderr, "plumbd: --default-service-account: %s\n", plumb_error_last());
				return 2;
			}
			f->default_sa = *optarg ? optarg : NULL;
			break;
		}
		case MGMT_TARGET_NS: {
			/* each a namespace name: checked with the same rule as a service account's namespace */
			char user[600], one[300];
			for (const char *p = optarg; *p;) {
				size_t n = strcspn(p, ",");
				snprintf(one, sizeof(one), "%.*s", (int)(n < 299 ? n : 299), p);
				if (n >= 299 || kube_service_account_user(user, sizeof(user), one, "x") != 0) {
					fprintf(stderr, "plumbd: --management-target-namespaces: \"%s\" is not a namespace name\n", one);
					return 2;
				}
				p += n;
				if (*p == ',')
					p++;
			}
			f->mgmt_target_ns = *optarg ? optarg : NULL;
			break;
		}
		case ALLOW_FILE_URLS: f->allow_file_urls = 1; break;
		case KUSTOMIZE_BIN: f->kustomize_bin = *optarg ? optarg : NULL; break;
		case HELM_BIN: f->helm_bin = *optarg ? optarg : NULL; break;
		case CACHE_OBJECTS:
		case CACHE_BYTES:
		case GS_OBJECTS: {
			unsigned long long n = strtoull(optarg, &end, 10);
			const char *name = c == CACHE_OBJECTS ? "target-cache-max-objects" :
				c == CACHE_BYTES ? "target-cache-max-bytes" : "gitsync-cache-max-objects";
			if (*end || !*optarg || *optarg == '-' || n < 1 || n > (1ull << 40)) {
				fprintf(stderr, "plumbd: --%s %s: want a whole number from 1 to 2^40\n", name, optarg);
				return 2;
			}
			*(c == CACHE_OBJECTS ? &f->target_max_objects : c == CACHE_BYTES ? &f->target_max_bytes :
				&f->gitsync_max_objects) = (size_t)n;
			break;
		}
		case VERSION:
			printf("plumbd %s\n", PLUMB_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "plumbd: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (f->shards >= 0 && f->leader_elect) {
		fprintf(stderr, "plumbd: --shards and --leader-elect: choose one (--shards replaces the leader)\n");
		return 2;
	}
	plumb_log_level lvl;
	if (plumb_log_parse_level(&lvl, f->log_level) != 0) {
		fprintf(stderr, "plumbd: --log-level: %s\n", plumb_error_last());
		return 2;
	}
	plumb_log_set_level(lvl);
	return 0;
}

static void count_request(void *data, const char *cluster, const char *verb, int code, double seconds)
{
	char codes[16];
	(void)data, (void)seconds;
	snprintf(codes, sizeof(codes), "%d", code);
	server_counter_add(api_requests, 1, cluster, verb, codes);
}

static int ready(char *why, size_t whylen, void *data)
{
	return controller_ready(data, why, whylen);
}

static int webhook_secret(char **out, size_t *outlen, const char *ns, const char *name, void *data)
{
	return controller_webhook_secret(data, out, outlen, ns, name);
}

static void webhook_trigger(const char *ns, const char *name, void *data)
{
	controller_webhook(data, ns, name);
}

static void on_start_leading(void *data)
{
	controller_set_leading(data, 1);
}

static void on_stop_leading(void *data)
{
	controller_set_leading(data, 0);
	if (!shutting_down)
		lost_lease = 1;
}

int main(int argc, char **argv)
{
	flags f;
	kube_config *cfg = NULL;
	kube_client *mgmt = NULL;
	server_metrics *metrics = NULL;
	server *metrics_srv = NULL, *health_srv = NULL, *webhook_srv = NULL;
	controller *ctl = NULL;
	controller_leader *leader = NULL;
	controller_shards *shards = NULL;
	char user_agent[400];
	char identity[300], host[256] = "plumbd", rnd[9];
	char **exec_plugins = NULL;
	kube_config_policy tenant_policy = { 0 };
	int rc, exit_code = 1;

	if ((rc = parse_flags(&f, argc, argv)))
		return rc;

	/* Signals are taken by the main thread only: block them before any
	 * thread starts, then wait for them below. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* A few malloc arenas are plenty for a handful of threads, and keep
	 * the memory a burst of work leaves behind from multiplying per thread. */
	mallopt(M_ARENA_MAX, 2);
	/* Buffers of 64 KiB and more (API answers, LIST pages, arrays of a
	 * revision's objects) get pages of their own, returned when freed,
	 * instead of growing the heap; a fixed threshold also stops glibc from
	 * raising it after the first large free. */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	/* A reconcile's JSON goes to regions given back whole (pkg/base). */
	plumb_json_hooks();
	gethostname(host, sizeof(host) - 1);
	plumb_random_name(rnd, 8);
	snprintf(identity, sizeof(identity), "%s_%s", host, rnd);

	rc = f.kubeconfig && *f.kubeconfig ? kube_config_load_file(&cfg, f.kubeconfig, f.context)
		: kube_config_in_cluster(&cfg, NULL);
	if (rc) {
		plumb_errorlog("cannot load the management cluster config", "error", plumb_error_last());
		goto cleanup;
	}
	if ((rc = server_metrics_new(&metrics)))
		goto fail;
	const char *api_labels[] = { "cluster", "verb", "code" };
	api_requests = server_counter(metrics, "plumb_api_requests_total",
		"Kubernetes API requests by cluster, verb and HTTP code (0: no answer).", 3, api_labels);
	const char *build_labels[] = { "version" };
	server_gauge_set(server_gauge(metrics, "plumb_build_info", "plumbd's version; always 1.",
		1, build_labels), 1, PLUMB_VERSION);
	/* every request names the replica, so an audit log shows who wrote what */
	snprintf(user_agent, sizeof(user_agent), "plumb/%s (%s)", PLUMB_VERSION, identity);
	kube_client_opts ko = { .name = "management", .on_request = count_request, .user_agent = user_agent };
	if ((rc = kube_client_new(&mgmt, cfg, &ko)))
		goto fail;
	/* Kubeconfigs from Cluster Secrets: inline material only, unless loosened by a flag. */
	if (f.allow_exec_plugins && (rc = kube_exec_plugins_parse(&exec_plugins, f.allow_exec_plugins)))
		goto fail;
	tenant_policy = (kube_config_policy){ .allow_insecure = f.allow_insecure_targets,
		.allow_proxy = f.allow_target_proxies, .exec_plugins = (const char *const *)exec_plugins };
	if (f.allow_insecure_targets || f.allow_target_proxies || f.allow_exec_plugins)
		plumb_warn("kubeconfig Secrets may use more than inline material", "allow_insecure_targets",
			f.allow_insecure_targets ? "true" : "false", "allow_target_proxies",
			f.allow_target_proxies ? "true" : "false", "allow_exec_plugins",
			f.allow_exec_plugins ? f.allow_exec_plugins : "");
	controller_opts co = { .mgmt = mgmt, .mgmt_config = cfg, .ns = f.ns, .cache_dir = f.cache_dir, .tenant_policy = &tenant_policy,
		.git_max_fetch_bytes = f.git_max_fetch_bytes,
		.workers = f.workers, .metrics = metrics, .identity = identity, .user_agent = user_agent,
		.on_request = count_request, .kube_qps = f.kube_qps,
		.kube_burst = f.kube_burst ? f.kube_burst : (int)(2 * f.kube_qps),
		.default_service_account = f.default_sa, .management_target_namespaces = f.mgmt_target_ns,
		.allow_file_urls = f.allow_file_urls,
		.kustomize_bin = f.kustomize_bin, .helm_bin = f.helm_bin,
		.render_limits = { .timeout = f.render_timeout, .max_output = f.render_max_output },
		.target_max_objects = f.target_max_objects, .target_max_bytes = f.target_max_bytes,
		.gitsync_max_objects = f.gitsync_max_objects, .target_cache_retry = f.target_cache_retry };
	if ((rc = controller_new(&ctl, &co)))
		goto fail;
	/* With --webhook-addr the webhooks get a listener of their own and the
	 * metrics one serves no /hooks: an Ingress for Git hosts reaches only that. */
	server_opts mo = { .addr = f.metrics_addr, .metrics = metrics, .data = ctl };
	server_opts wo = { .addr = f.webhook_addr, .secret = webhook_secret, .trigger = webhook_trigger, .data = ctl };
	if (!f.webhook_addr) {
		mo.secret = webhook_secret;
		mo.trigger = webhook_trigger;
	}
	server_opts ho = { .addr = f.health_addr, .ready = ready, .data = ctl };
	if ((rc = server_start(&metrics_srv, &mo)) || (rc = server_start(&health_srv, &ho)) ||
	    (f.webhook_addr && (rc = server_start(&webhook_srv, &wo))))
		goto fail;
	if ((rc = controller_start(ctl)))
		goto fail;
	char mport[16], hport[16], wport[16];
	snprintf(mport, sizeof(mport), "%d", server_port(metrics_srv));
	snprintf(hport, sizeof(hport), "%d", server_port(health_srv));
	snprintf(wport, sizeof(wport), "%d", server_port(webhook_srv ? webhook_srv : metrics_srv));
	plumb_info("plumbd started", "version", PLUMB_VERSION, "identity", identity,
		"server", kube_config_server(cfg), "namespace", f.ns ? f.ns : "(all)",
		"metrics_port", mport, "health_port", hport, "webhook_port", wport,
		"leader_elect", f.leader_elect ? "true" : "false", "shards",
		f.shards < 0 ? "off" : f.shards == 0 ? "auto" : "limited");
	log_render_tools(&f);

	if (f.shards >= 0) {
		controller_shards_opts so = { .ns = f.lease_ns ? f.lease_ns : f.ns ? f.ns : kube_config_namespace(cfg),
			.name = f.lease_name, .identity = identity, .lease_duration = f.lease_duration,
			.renew_deadline = f.lease_renew, .retry_period = f.lease_retry, .max_owners = (unsigned)f.shards };
		if ((rc = controller_shards_new(&shards, ctl, mgmt, &so)) || (rc = controller_shards_run(shards)))
			goto fail;
	} else if (f.leader_elect) {
		controller_leader_opts lo = { .ns = f.lease_ns ? f.lease_ns : f.ns ? f.ns : kube_config_namespace(cfg),
			.name = f.lease_name, .identity = identity, .lease_duration = f.lease_duration,
			.renew_deadline = f.lease_renew, .retry_period = f.lease_retry,
			.on_start = on_start_leading, .on_stop = on_stop_leading, .data = ctl };
		if ((rc = controller_leader_new(&leader, mgmt, &lo)) || (rc = controller_leader_run(leader)))
			goto fail;
	} else {
		controller_set_leading(ctl, 1);
	}

	for (;;) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		int sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			plumb_info("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			exit_code = 0;
			break;
		}
		if (lost_lease) {
			plumb_errorlog("lost the lease; exiting so a fresh start can campaign again");
			exit_code = 1;
			break;
		}
	}
	shutting_down = 1;
	if (controller_stop(ctl, f.shutdown_timeout) != 0)
		plumb_warn("shutdown deadline passed", "error", plumb_error_last());
	/* Releases the Lease: a standby takes over at once. */
	controller_leader_free(leader);
	leader = NULL;
	/* Gives every owned GitSync up and deletes the replica's Lease. */
	controller_shards_free(shards);
	shards = NULL;
	goto cleanup;
fail:
	plumb_errorlog("plumbd cannot start", "error", plumb_error_last());
	exit_code = 1;
cleanup:
	controller_leader_free(leader);
	controller_shards_free(shards);
	server_free(metrics_srv);
	server_free(webhook_srv);
	server_free(health_srv);
	controller_free(ctl);
	kube_client_free(mgmt);
	kube_config_free(cfg);
	server_metrics_free(metrics);
	kube_exec_plugins_free(exec_plugins);
	plumb_info("plumbd stopped");
	return exit_code;
}
