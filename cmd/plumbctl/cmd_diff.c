/* plumbctl diff: what a sync would change in one cluster, computed by the
 * apply engine itself with dryRun=All (nothing is written), printed as the
 * engine's report with a unified diff per object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apply/apply.h"
#include "base/base.h"
#include "gitsync/gitsync.h"
#include "manifest/manifest.h"
#include "plumbctl.h"
#include "source/source.h"

#define MAX_VARS 256

static const char diff_usage[] =
	"usage: plumbctl diff DIR [--cluster-kubeconfig PATH] [--cluster-name N] [--cluster-label k=v …]\n"
	"                         [--set VAR=value …] [--owner NS/GITSYNC] [--target-namespace NS]\n"
	"       plumbctl diff [DIR] --gitsync NAME --cluster NAME [-n NS] [--kubeconfig PATH] [--context NAME]\n"
	"\n"
	"Shows what a sync would change in one cluster: every object that would be\n"
	"created, updated, corrected (drifted), pruned, or that conflicts with an owner\n"
	"other than plumb, each with a unified diff live -> desired. It runs plumb's apply\n"
	"engine with server-side dry runs (dryRun=All): nothing in the cluster changes.\n"
	"\n"
	"With --gitsync and --cluster, everything comes from the management cluster the\n"
	"way plumbd sees it: the GitSync's repository (fetched into --cache-dir), ref,\n"
	"path, substitute map, targetNamespace, prune/driftPolicy/adopt, and the Cluster's\n"
	"name, labels and kubeconfig Secret. Give DIR as well to diff a local checkout\n"
	"(uncommitted work) instead of what is in Git.\n"
	"\n"
	"Without --gitsync, DIR is rendered with --cluster-name/--cluster-label/--set and\n"
	"compared with the cluster of --cluster-kubeconfig (default: --kubeconfig).\n"
	"\n"
	"  --gitsync NAME          the GitSync (in -n NS)\n"
	"  --cluster NAME          the Cluster (in -n NS)\n"
	"  --cluster-kubeconfig P  the target's kubeconfig (overrides the Cluster's Secret)\n"
	"  --cluster-context C     context in --cluster-kubeconfig\n"
	"  --cluster-name N        ${CLUSTER_NAME} (default: the Cluster's name, else the context's name)\n"
	"  --cluster-label k=v     a cluster label for selectors and ${CLUSTER_LABEL_k} (repeatable)\n"
	"  --set VAR=value         a substitution variable (repeatable; overrides spec.substitute)\n"
	"  --owner NS/GITSYNC      whose objects these are (default: the GitSync, else default/plumbctl)\n"
	"  --target-namespace NS   namespace for objects that name none (default: from the GitSync, else default)\n"
	"  --cache-dir DIR         Git mirrors (default: ~/.cache/plumb/plumbctl-git)\n"
	"  --allow-insecure-targets  the Cluster's kubeconfig Secret may use http:// and\n"
	"                          insecure-skip-tls-verify (as plumbd's flag; default: refused)\n"
	"  --allow-exec-plugins L  command names the Secret's exec plugin may name, looked up in\n"
	"                          your PATH (as plumbd's flag; default: none, exec is refused)\n"
	"  --allow-target-proxies  the Secret may set proxy-url (default: refused)\n"
	"\n"
	"DIR renders as plumbd renders a commit: plain YAML, or kustomize / helm when it\n"
	"holds a kustomization or a Chart.yaml, with the target's version and API versions.\n"
	"With --gitsync, DIR is your checkout of the GitSync's repository (its root) and the\n"
	"GitSync's path, render and helm settings apply; without, DIR is the folder to render\n"
	"and these flags say how:\n"
	PLUMBCTL_RENDER_FLAGS
	PLUMBCTL_CONN_FLAGS
	"\n"
	"Exit codes (like kubectl diff): 0 no differences, 1 differences, 2 usage,\n"
	"3 a cluster or Git could not be reached or refused, 5 the revision does not\n"
	"render or an object would fail to apply (the report says which).\n";

typedef struct {
	const char *dir, *gitsync, *cluster, *cluster_kubeconfig, *cluster_context;
	const char *cluster_name, *owner, *target_ns, *cache_dir;
	const char *allow_exec_plugins;
	int allow_insecure_targets, allow_target_proxies;
	manifest_var labels[MAX_VARS], vars[MAX_VARS];
	size_t nlabels, nvars;
	plumbctl_render_flags rf;
} diff_flags;

/* Splits "k=v" in place. */
static int kv(manifest_var *out, char *s, const char *flag)
{
	char *eq = strchr(s, '=');
	if (!eq || eq == s) {
		fprintf(stderr, "plumbctl diff: %s wants KEY=VALUE, got \"%s\"\n", flag, s);
		return -1;
	}
	*eq = '\0';
	out->name = s;
	out->value = eq + 1;
	return 0;
}

/* Adds or replaces name in a var list. */
static int put_var(manifest_var *list, size_t *n, const char *name, const char *value)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(list[i].name, name)) {
			list[i].value = value;
			return 0;
		}
	if (*n == MAX_VARS)
		return plumb_error_set(PLUMB_ETOOBIG, "more than %d variables or labels", MAX_VARS);
	list[(*n)++] = (manifest_var){ name, value };
	return 0;
}

static int parse(diff_flags *f, plumbctl_conn *conn, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		int r;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(diff_usage, stdout);
			return -1;
		}
		if ((r = plumbctl_conn_flag(conn, argc, argv, &i)) ||
		    (r = plumbctl_render_flag(&f->rf, argc, argv, &i)) ||
		    (r = plumbctl_flag(&f->gitsync, "--gitsync", NULL, argc, argv, &i)) ||
		    (r = plumbctl_flag(&f->cluster, "--cluster", NULL, argc, argv, &i)) ||
		    (r = plumbctl_flag(&f->cluster_kubeconfig, "--cluster-kubeconfig", NULL, argc, argv, &i)) ||
		    (r = plumbctl_flag(&f->cluster_context, "--cluster-context", NULL, argc, argv, &i)) ||
		    (r = plumbctl_flag(&f->cluster_name, "--cluster-name", NULL, argc, argv, &i)) ||
		    (r = plumbctl_flag(&f->owner, "--owner", NULL, argc, argv, &i)) ||
		    (r = plumbctl_flag(&f->target_ns, "--target-namespace", NULL, argc, argv, &i)) ||
		    (r = plumbctl_flag(&f->cache_dir, "--cache-dir", NULL, argc, argv, &i))) {
			if (r < 0)
				return PLUMBCTL_EXIT_USAGE;
			continue;
		}
		if (!strcmp(argv[i], "--allow-insecure-targets")) {
			f->allow_insecure_targets = 1;
			continue;
		}
		if (!strcmp(argv[i], "--allow-target-proxies")) {
			f->allow_target_proxies = 1;
			continue;
		}
		if ((r = plumbctl_flag(&f->allow_exec_plugins, "--allow-exec-plugins", NULL, argc, argv, &i))) {
			char **names = NULL;
			if (r < 0)
				return PLUMBCTL_EXIT_USAGE;
			if (kube_exec_plugins_parse(&names, f->allow_exec_plugins)) {
				fprintf(stderr, "plumbctl diff: --allow-exec-plugins: %s\n", plumb_error_last());
				return PLUMBCTL_EXIT_USAGE;
			}
			kube_exec_plugins_free(names);
			continue;
		}
		if ((r = plumbctl_flag(&v, "--cluster-label", NULL, argc, argv, &i))) {
			manifest_var x;
			if (r < 0 || kv(&x, (char *)v, "--cluster-label") ||
			    put_var(f->labels, &f->nlabels, x.name, x.value))
				return PLUMBCTL_EXIT_USAGE;
			continue;
		}
		if ((r = plumbctl_flag(&v, "--set", NULL, argc, argv, &i))) {
			manifest_var x;
			if (r < 0 || kv(&x, (char *)v, "--set") || put_var(f->vars, &f->nvars, x.name, x.value))
				return PLUMBCTL_EXIT_USAGE;
			continue;
		}
		if (argv[i][0] != '-' && !f->dir) {
			f->dir = argv[i];
			continue;
		}
		fprintf(stderr, "plumbctl diff: unexpected argument \"%s\"\n%s", argv[i], diff_usage);
		return PLUMBCTL_EXIT_USAGE;
	}
	if (!f->gitsync != !f->cluster) {
		fprintf(stderr, "plumbctl diff: --gitsync and --cluster go together (which GitSync, to which Cluster)\n");
		return PLUMBCTL_EXIT_USAGE;
	}
	if (!f->gitsync && !f->dir) {
		fprintf(stderr, "plumbctl diff: give a DIR to render, or --gitsync NAME --cluster NAME\n%s", diff_usage);
		return PLUMBCTL_EXIT_USAGE;
	}
	if (f->gitsync && (f->rf.render || f->rf.release_name || f->rf.nvalues || f->rf.kube_version ||
	    f->rf.napi_versions || f->rf.root)) {
		fprintf(stderr, "plumbctl diff: with --gitsync the path, render and helm settings come from the "
			"GitSync (and DIR is the repository's root)\n");
		return PLUMBCTL_EXIT_USAGE;
	}
	if (f->rf.kube_version || f->rf.napi_versions) {
		fprintf(stderr, "plumbctl diff: the Kubernetes version and API versions are the target's own\n");
		return PLUMBCTL_EXIT_USAGE;
	}
	if (f->owner && (!strchr(f->owner, '/') || f->owner[0] == '/' || strchr(f->owner, '/')[1] == '\0')) {
		fprintf(stderr, "plumbctl diff: --owner wants NAMESPACE/GITSYNC, got \"%s\"\n", f->owner);
		return PLUMBCTL_EXIT_USAGE;
	}
	return 0;
}

/* The Cluster's kubeconfig from its Secret; *out NULL when the Cluster names
 * none (the target is the management cluster). Prints on failure. */
static int cluster_config(kube_config **out, plumbctl_conn *conn, const gitsync_cluster *cl,
	const kube_config_policy *policy)
{
	kube_resource sr;
	cJSON *sec = NULL;
	int rc;
	*out = NULL;
	if (!cl->kubeconfig_secret)
		return 0;
	if ((rc = kube_resolve(&sr, conn->client, "v1", "Secret")) ||
	    (rc = kube_get(&sec, conn->client, &sr, conn->ns, cl->kubeconfig_secret))) {
		char what[400];
		snprintf(what, sizeof(what), "read the Cluster's kubeconfig Secret %s/%s", conn->ns, cl->kubeconfig_secret);
		return plumbctl_api_error(rc, what);
	}
	/* A tenant wrote it: the same loader and lockdown as plumbd's, so nothing
	 * in it runs a command or reads a file on this machine. */
	char *data = NULL;
	size_t len = 0;
	rc = gitsync_kubeconfig_data(&data, &len, cl, sec);
	cJSON_Delete(sec);
	if (rc) {
		fprintf(stderr, "plumbctl: %s\n  (put the target's kubeconfig there: "
			"kubectl create secret generic %s --from-file=%s=PATH)\n",
			plumb_error_last(), cl->kubeconfig_secret, cl->kubeconfig_key);
		return PLUMBCTL_EXIT_API;
	}
	rc = gitsync_kubeconfig_load(out, cl, data, len, policy);
	gitsync_kubeconfig_wipe(data, len);
	if (!rc)
		return 0;
	fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
	if (rc == PLUMB_EINSECURE)
		fprintf(stderr, "  (plumbd refuses this kubeconfig too; to diff with your own credentials "
			"use --cluster-kubeconfig PATH)\n");
	return PLUMBCTL_EXIT_API;
}

static char *default_cache_dir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && *xdg)
		return plumb_asprintf("%s/plumb/plumbctl-git", xdg);
	if (home && *home)
		return plumb_asprintf("%s/.cache/plumb/plumbctl-git", home);
	return plumb_strdup("/tmp/plumbctl-git");
}

/* mkdir -p for the cache's parents (source_cache_new makes the last one). */
static void make_parents(const char *dir)
{
	char *p = plumb_strdup(dir);
	for (char *s = p ? p + 1 : NULL; s && *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0700);
			*s = '/';
		}
	free(p);
}

/* Fetches the GitSync's repository and resolves its ref, as plumbd would:
 * *cache_out (caller frees) holds the commit, read with cred_id. Prints on
 * failure. */
static int fetch(source_cache **cache_out, char cred_id[65], char commit_out[41], plumbctl_conn *conn,
	const gitsync_spec *gs, const char *cache_dir)
{
	const char *url = gs->git.url, *secret = gs->git.secret_name;
	source_cache *cache = NULL;
	source_credentials *creds = NULL;
	source_commit commit = { 0 };
	cJSON *sec = NULL;
	char *dir = cache_dir ? plumb_strdup(cache_dir) : default_cache_dir(), redacted[2048];
	source_fetch_opts fo;
	int rc, code = PLUMBCTL_EXIT_API;

	if (gitsync_source_check(gs)) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		code = PLUMBCTL_EXIT_INVALID;
		goto cleanup;
	}
	source_url_redact(redacted, sizeof(redacted), url);
	if (secret) {
		kube_resource sr;
		if ((rc = kube_resolve(&sr, conn->client, "v1", "Secret")) ||
		    (rc = kube_get(&sec, conn->client, &sr, conn->ns, secret))) {
			char what[400];
			snprintf(what, sizeof(what), "read the Git Secret %s/%s", conn->ns, secret);
			plumbctl_api_error(rc, what);
			goto cleanup;
		}
		if ((rc = gitsync_git_credentials(&creds, gs, sec))) {
			fprintf(stderr, "plumbctl: Git Secret %s/%s: %s\n", conn->ns, secret, plumb_error_last());
			goto cleanup;
		}
	}
	make_parents(dir);
	if ((rc = source_cache_new(&cache, dir))) {
		fprintf(stderr, "plumbctl: Git cache %s: %s (choose another with --cache-dir)\n", dir, plumb_error_last());
		goto cleanup;
	}
	gitsync_fetch_opts(&fo, gs, 0);
	if ((rc = source_fetch_ref(NULL, cache, url, creds, gs->git.timeout, &fo))) {
		fprintf(stderr, "plumbctl: fetch %s: %s\n  plumbctl fetches from this machine: the URL must be "
			"reachable from here too (or give a local checkout as DIR)\n", redacted, plumb_error_last());
		goto cleanup;
	}
	source_credentials_id(cred_id, cache, creds);
	if ((rc = source_resolve(&commit, cache, url, cred_id, gs->git.ref_kind, gs->git.ref))) {
		fprintf(stderr, "plumbctl: %s in %s: %s\n", gs->git.ref, redacted, plumb_error_last());
		goto cleanup;
	}
	memcpy(commit_out, commit.id, 41);
	*cache_out = cache;
	cache = NULL;
	code = 0;
cleanup:
	source_commit_clear(&commit);
	source_credentials_free(creds);
	source_cache_free(cache);
	cJSON_Delete(sec);
	free(dir);
	return code;
}

static int get_named(cJSON **out, plumbctl_conn *conn, const char *kind, const char *name)
{
	kube_resource r;
	int rc = plumbctl_resolve(&r, conn, kind);
	if (rc)
		return rc;
	rc = kube_get(out, conn->client, &r, conn->ns, name);
	if (rc == PLUMB_ENOTFOUND) {
		fprintf(stderr, "plumbctl: %s \"%s\" not found in namespace \"%s\" (kubectl get %ss." PLUMB_API_GROUP " -n %s)\n",
			kind, name, conn->ns, kind[0] == 'G' ? "gitsync" : "cluster", conn->ns);
		return PLUMBCTL_EXIT_API;
	}
	if (rc) {
		char what[300];
		snprintf(what, sizeof(what), "get %s %s", kind, name);
		return plumbctl_api_error(rc, what);
	}
	return 0;
}

int plumbctl_diff(int argc, char **argv)
{
	diff_flags f = { 0 };
	plumbctl_conn conn = { 0 };
	cJSON *gso = NULL, *clo = NULL;
	gitsync_spec *gs = NULL;
	gitsync_cluster *cl = NULL;
	gitsync_rendered out = { 0 };
	kube_config *tcfg = NULL;
	kube_client *target = NULL;
	apply_engine *engine = NULL;
	apply_result res = { 0 };
	plumbctl_checkout co = { 0 };
	source_cache *cache = NULL;
	char commit[41] = "", cred_id[65] = "", *report = NULL, *owner = NULL, *errmsg = NULL;
	int rc, code;

	if ((code = parse(&f, &conn, argc, argv)))
		return code < 0 ? 0 : code;
	code = PLUMBCTL_EXIT_API;

	if (f.gitsync) {
		if ((rc = plumbctl_connect(&conn)) || (rc = get_named(&gso, &conn, "GitSync", f.gitsync)) ||
		    (rc = get_named(&clo, &conn, "Cluster", f.cluster))) {
			code = rc;
			goto cleanup;
		}
		if (gitsync_spec_parse(&gs, gso) || gitsync_cluster_parse(&cl, clo)) {
			fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
			code = PLUMBCTL_EXIT_INVALID;
			goto cleanup;
		}
		/* Flags given on the command line win over the GitSync and Cluster
		 * (gitsync_render merges them). */
		if (!f.cluster_name)
			f.cluster_name = cl->name;
		if (!f.owner)
			owner = plumb_asprintf("%s/%s", conn.ns, f.gitsync);
		char **exec_plugins = NULL;
		if (f.allow_exec_plugins && kube_exec_plugins_parse(&exec_plugins, f.allow_exec_plugins)) {
			fprintf(stderr, "plumbctl diff: --allow-exec-plugins: %s\n", plumb_error_last());
			code = PLUMBCTL_EXIT_USAGE;
			goto cleanup;
		}
		kube_config_policy pol = { .allow_insecure = f.allow_insecure_targets,
			.allow_proxy = f.allow_target_proxies, .exec_plugins = (const char *const *)exec_plugins };
		rc = f.cluster_kubeconfig ? 0 : cluster_config(&tcfg, &conn, cl, &pol);
		kube_exec_plugins_free(exec_plugins);
		if (rc) {
			code = rc;
			goto cleanup;
		}
		if (!f.cluster_kubeconfig && !tcfg) {
			/* No Secret: the target is the management cluster itself. */
			tcfg = conn.cfg;
			conn.cfg = NULL;
		}
	}
	if (f.cluster_kubeconfig || !tcfg) {
		const char *p = f.cluster_kubeconfig;
		if (!p) {
			if ((rc = plumbctl_connect(&conn))) {
				fprintf(stderr, "  (or name the target with --cluster-kubeconfig PATH)\n");
				code = rc;
				goto cleanup;
			}
			tcfg = conn.cfg;
			conn.cfg = NULL;
		} else if ((rc = kube_config_load_file(&tcfg, p, f.cluster_context))) {
			fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
			code = PLUMBCTL_EXIT_USAGE;
			goto cleanup;
		}
	}
	if (!f.cluster_name)
		f.cluster_name = *kube_config_context(tcfg) ? kube_config_context(tcfg) : "default";
	if (!owner)
		owner = plumb_strdup(f.owner ? f.owner : "default/plumbctl");

	kube_client_opts ko = { .name = f.cluster_name, .timeout = 20, .max_retries = 1,
		.user_agent = "plumbctl/" PLUMB_VERSION };
	if ((rc = kube_client_new(&target, tcfg, &ko))) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		goto cleanup;
	}
	if (!gs && plumbctl_render_spec(&gs, &f.rf, f.target_ns)) {
		fprintf(stderr, "plumbctl diff: %s\n", plumb_error_last());
		code = PLUMBCTL_EXIT_USAGE;
		goto cleanup;
	}
	/* The revision: a checkout, or Git at the GitSync's ref. */
	gitsync_revision rev = { 0 };
	const char *path = f.gitsync ? gs->git.path : NULL;
	if (f.dir) {
		if ((rc = plumbctl_checkout_read(&co, f.dir, f.gitsync ? f.dir : f.rf.root, f.gitsync != NULL, gs))) {
			fprintf(stderr, "plumbctl diff: %s\n", plumb_error_last());
			code = rc == PLUMB_EIO || rc == PLUMB_EINVALID ? PLUMBCTL_EXIT_USAGE : PLUMBCTL_EXIT_INVALID;
			goto cleanup;
		}
		rev.files = co.files;
		if (!f.gitsync)
			path = co.path;
	} else {
		if ((rc = fetch(&cache, cred_id, commit, &conn, gs, f.cache_dir))) {
			code = rc;
			goto cleanup;
		}
		rev = (gitsync_revision){ .cache = cache, .url = gs->git.url, .cred_id = cred_id, .commit = commit };
	}
	/* a chart sees this target's version and what it serves, as in plumbd */
	char kube_version[64] = "";
	if (kube_server_version(kube_version, sizeof(kube_version), target))
		kube_version[0] = '\0';
	render_tools tools;
	plumbctl_render_tools(&tools, &f.rf);
	gitsync_render_env env = { .tools = &tools, .kube_version = kube_version[0] ? kube_version : NULL,
		.discovery = target };
	gitsync_render_overrides ovr = { .vars = f.vars, .nvars = f.nvars, .labels = f.labels,
		.nlabels = f.nlabels, .cluster_name = f.cluster_name, .default_namespace = f.target_ns };
	manifest_errors errs = { 0 };
	gitsync_render_info info = { .errs = &errs };
	rc = gitsync_render_commit(&out, &errmsg, &rev, path, gs, cl, &env, &ovr, &info);
	for (size_t i = 0; rc && i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	if (rc && errs.dropped)
		fprintf(stderr, "… and %zu more errors\n", errs.dropped);
	if (rc && !errs.count)
		fprintf(stderr, "plumbctl: %s\n", errmsg ? errmsg : plumb_error_last());
	manifest_errors_free(&errs);
	if (rc) {
		fprintf(stderr, "plumbctl: the revision does not render for cluster %s: nothing was compared\n",
			f.cluster_name);
		code = errmsg ? PLUMBCTL_EXIT_INVALID : PLUMBCTL_EXIT_API;
		goto cleanup;
	}

	char *slash = strchr(owner, '/');
	*slash = '\0';
	if ((rc = apply_engine_new(&engine, target, owner, slash + 1))) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		goto cleanup;
	}
	apply_opts ao;
	gitsync_apply_opts(&ao, gs);
	ao.dry_run = 1;
	ao.origins = (const char *const *)out.origins;
	ao.norigins = out.origins ? out.count : 0;
	rc = apply_engine_run(&res, engine, out.objects, &ao);
	if (rc) {
		char what[300];
		snprintf(what, sizeof(what), "dry run against cluster %s (%s)", f.cluster_name, kube_config_server(tcfg));
		code = plumbctl_api_error(rc, what);
		goto cleanup;
	}
	if ((rc = apply_result_report(&report, &res))) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		goto cleanup;
	}
	if (commit[0])
		printf("# gitsync %s/%s at %.12s -> cluster %s\n", conn.ns, f.gitsync, commit, f.cluster_name);
	fputs(report, stdout);
	size_t changes = res.totals[APPLY_CREATED] + res.totals[APPLY_UPDATED] + res.totals[APPLY_DRIFTED] +
		res.totals[APPLY_CORRECTED] + res.totals[APPLY_PRUNED] + res.totals[APPLY_CONFLICT];
	if (res.totals[APPLY_FAILED])
		code = PLUMBCTL_EXIT_INVALID;
	else
		code = changes ? PLUMBCTL_EXIT_FAIL : PLUMBCTL_EXIT_OK;
cleanup:
	gitsync_rendered_free(&out);
	free(report);
	apply_result_free(&res);
	apply_engine_free(engine);
	kube_client_free(target);
	kube_config_free(tcfg);
	free(errmsg);
	plumbctl_checkout_free(&co);
	source_cache_free(cache);
	gitsync_spec_free(gs);
	gitsync_cluster_free(cl);
	cJSON_Delete(gso);
	cJSON_Delete(clo);
	free(owner);
	plumbctl_disconnect(&conn);
	return code;
}
