/*
 * The pipeline steps that follow from a parsed GitSync and Cluster
 * (gitsync.h): the Git credentials and a Cluster's kubeconfig from their
 * Secrets, and a revision rendered for one Cluster. plumbd and plumbctl
 * both come here, so a Secret is read and a revision rendered one way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "base/base.h"
#include "gitsync/gitsync.h"

/* ---- credentials ------------------------------------------------------------- */

int gitsync_git_credentials(source_credentials **out, const gitsync_spec *gs, const cJSON *sec)
{
	*out = NULL;
	if (!gs->git.secret_name)
		return 0;
	if (!sec)
		return plumb_error_set(PLUMB_ENOTFOUND, "git secret %s/%s not found",
			gs->ns ? gs->ns : "", gs->git.secret_name);
	return source_credentials_from_secret_data(out, plumb_json_get(sec, "data"));
}

/* "NS/NAME" of cl's kubeconfig Secret into sk. */
static void secret_key(char *sk, size_t len, const gitsync_cluster *cl)
{
	snprintf(sk, len, "%s/%s", cl->ns ? cl->ns : "", cl->kubeconfig_secret ? cl->kubeconfig_secret : "");
}

int gitsync_kubeconfig_data(char **out, size_t *outlen, const gitsync_cluster *cl, const cJSON *sec)
{
	char sk[600];
	int rc;
	*out = NULL;
	*outlen = 0;
	if (!cl->kubeconfig_secret)
		return plumb_error_set(PLUMB_EINVALID, "Cluster %s/%s has no spec.kubeConfigSecretRef",
			cl->ns ? cl->ns : "", cl->name ? cl->name : "");
	secret_key(sk, sizeof(sk), cl);
	const cJSON *val = cJSON_GetObjectItemCaseSensitive(plumb_json_get(sec, "data"), cl->kubeconfig_key);
	if (!sec)
		return plumb_error_set(PLUMB_ENOTFOUND, "kubeconfig secret %s not found", sk);
	if (!cJSON_IsString(val))
		return plumb_error_set(PLUMB_EINVALID, "kubeconfig secret %s has no key \"%s\"", sk, cl->kubeconfig_key);
	if ((rc = plumb_base64_decode(out, outlen, val->valuestring, strlen(val->valuestring))))
		return plumb_error_set(rc, "kubeconfig secret %s: data is not base64", sk);
	return 0;
}

char *gitsync_kubeconfig_id(const gitsync_cluster *cl, const cJSON *sec)
{
	char sk[600];
	const char *rv = plumb_json_str(sec, "metadata.resourceVersion");
	secret_key(sk, sizeof(sk), cl);
	return plumb_asprintf("%s|%s|%s|%s", sk, rv ? rv : "", cl->kubeconfig_key,
		cl->kubeconfig_context ? cl->kubeconfig_context : "");
}

int gitsync_kubeconfig_load(kube_config **out, const gitsync_cluster *cl, const char *data, size_t len,
	const kube_config_policy *policy)
{
	char sk[600];
	secret_key(sk, sizeof(sk), cl);
	char *origin = plumb_asprintf("secret %s", sk);
	int rc = origin ? kube_config_load_memory(out, data, len, cl->kubeconfig_context, origin, policy)
		: plumb_error_set(PLUMB_ENOMEM, "out of memory");
	free(origin);
	return rc;
}

void gitsync_kubeconfig_wipe(char *data, size_t len)
{
	if (!data)
		return;
	OPENSSL_cleanse(data, len);
	free(data);
}

/* ---- render -------------------------------------------------------------------- */

char *gitsync_join_errors(const manifest_errors *errs)
{
	plumb_buf b = PLUMB_BUF_INIT(8192);
	for (size_t i = 0; i < errs->count && i < 5; i++)
		plumb_buf_printf(&b, "%s%s", i ? "; " : "", errs->msgs[i]);
	if (errs->count + errs->dropped > 5)
		plumb_buf_printf(&b, "; and %zu more", errs->count + errs->dropped - 5);
	return plumb_buf_detach(&b);
}

/* first's entries, then those of second whose name first does not have. */
static manifest_var *merge_vars(size_t *n, const manifest_var *first, size_t nfirst,
	const manifest_var *second, size_t nsecond)
{
	manifest_var *v = calloc(nfirst + nsecond + 1, sizeof(*v));
	*n = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < nfirst; i++)
		v[(*n)++] = first[i];
	for (size_t i = 0; i < nsecond; i++) {
		int given = 0;
		for (size_t j = 0; j < nfirst && !given; j++)
			given = !strcmp(first[j].name, second[i].name);
		if (!given)
			v[(*n)++] = second[i];
	}
	return v;
}

/* gitsync_render(); *render_failed = 1 when manifest_render() itself
 * failed (the revision's fault: its messages are in errs). */
static int render(gitsync_rendered *out, int *render_failed, const gitsync_spec *gs,
	const gitsync_cluster *cl, const manifest_file *files, size_t nfiles,
	const gitsync_render_overrides *ovr, manifest_errors *errs)
{
	static const gitsync_render_overrides none = { 0 };
	manifest_var *vars = NULL, *labels = NULL;
	size_t nvars = 0, nlabels = 0;
	manifest_set set = { 0 };
	int rc;
	memset(out, 0, sizeof(*out));
	*render_failed = 0;
	if (!ovr)
		ovr = &none;
	vars = merge_vars(&nvars, ovr->vars, ovr->nvars, gs ? gs->substitute : NULL, gs ? gs->nsubstitute : 0);
	labels = merge_vars(&nlabels, ovr->labels, ovr->nlabels, cl ? cl->labels : NULL, cl ? cl->nlabels : 0);
	if (!vars || !labels) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	const char *dns = ovr->default_namespace;
	if (!dns && gs)
		dns = gs->target_namespace ? gs->target_namespace : gs->ns;
	manifest_render_opts ro = {
		.vars = { .enabled = 1, .vars = vars, .nvars = nvars,
			.cluster_name = ovr->cluster_name ? ovr->cluster_name : cl ? cl->name : NULL,
			.labels = labels, .nlabels = nlabels },
		.default_namespace = dns,
	};
	if ((rc = manifest_render(&set, files, nfiles, &ro, errs))) {
		*render_failed = 1;
		goto cleanup;
	}
	out->objects = cJSON_CreateArray();
	out->origins = calloc(set.count + 1, sizeof(*out->origins));
	for (size_t i = 0; i < set.count; i++) {
		cJSON_AddItemToArray(out->objects, set.items[i].obj);
		set.items[i].obj = NULL;
		/* where each object comes from, for the messages of a failed run */
		if (out->origins)
			out->origins[i] = plumb_asprintf("%s:%d", set.items[i].file, set.items[i].line);
	}
	out->count = set.count;
cleanup:
	manifest_set_free(&set);
	free(vars);
	free(labels);
	return rc;
}

int gitsync_render(gitsync_rendered *out, const gitsync_spec *gs, const gitsync_cluster *cl,
	const manifest_file *files, size_t nfiles, const gitsync_render_overrides *ovr,
	manifest_errors *errs)
{
	int failed;
	return render(out, &failed, gs, cl, files, nfiles, ovr, errs);
}

/* ---- per-cluster paths and the render stage ----------------------------------- */

int gitsync_path_per_cluster(const char *path)
{
	return path && strstr(path, "${") != NULL;
}

/* The value of label key (klen bytes) for cl under ovr; NULL when absent. */
static const char *label_of(const gitsync_cluster *cl, const gitsync_render_overrides *ovr,
	const char *key, size_t klen)
{
	for (size_t i = 0; ovr && i < ovr->nlabels; i++)
		if (strlen(ovr->labels[i].name) == klen && !memcmp(ovr->labels[i].name, key, klen))
			return ovr->labels[i].value;
	for (size_t i = 0; cl && i < cl->nlabels; i++)
		if (strlen(cl->labels[i].name) == klen && !memcmp(cl->labels[i].name, key, klen))
			return cl->labels[i].value;
	return NULL;
}

int gitsync_resolve_path(char **out, const char *field, const char *path, const gitsync_cluster *cl,
	const gitsync_render_overrides *ovr)
{
	static const char lp[] = "CLUSTER_LABEL_";
	const char *cname = ovr && ovr->cluster_name ? ovr->cluster_name : cl ? cl->name : NULL;
	plumb_buf b = PLUMB_BUF_INIT(8192);
	char *joined = NULL;
	int rc = 0;
	*out = NULL;
	for (const char *p = path ? path : ""; *p;) {
		const char *d = strstr(p, "${");
		if (!d) {
			plumb_buf_printf(&b, "%s", p);
			break;
		}
		plumb_buf_printf(&b, "%.*s", (int)(d - p), p);
		const char *name = d + 2, *close = strchr(name, '}');
		if (!close) {
			rc = plumb_error_set(PLUMB_EINVALID, "%s \"%.256s\": unterminated ${", field, path);
			goto cleanup;
		}
		size_t n = (size_t)(close - name);
		const char *val = NULL;
		if (n == 12 && !memcmp(name, "CLUSTER_NAME", 12)) {
			if (!(val = cname)) {
				rc = plumb_error_set(PLUMB_EINVALID, "%s \"%.256s\": no cluster name to put for ${CLUSTER_NAME}",
					field, path);
				goto cleanup;
			}
		} else if (n > sizeof(lp) - 1 && !memcmp(name, lp, sizeof(lp) - 1)) {
			const char *key = name + sizeof(lp) - 1;
			size_t klen = n - (sizeof(lp) - 1);
			if (!(val = label_of(cl, ovr, key, klen))) {
				rc = plumb_error_set(PLUMB_EINVALID, "%s \"%.256s\": cluster %s has no label %.*s", field, path,
					cname ? cname : "(none)", (int)klen, key);
				goto cleanup;
			}
		} else {
			rc = plumb_error_set(PLUMB_EINVALID, "%s \"%.256s\": ${%.*s}: only ${CLUSTER_NAME} and "
				"${CLUSTER_LABEL_<key>} may be used in a path", field, path, (int)(n > 64 ? 64 : n), name);
			goto cleanup;
		}
		if (!*val || strchr(val, '/')) {
			rc = plumb_error_set(PLUMB_EINVALID, "%s \"%.256s\": ${%.*s} is \"%.64s\", not a folder name",
				field, path, (int)(n > 64 ? 64 : n), name, val);
			goto cleanup;
		}
		plumb_buf_printf(&b, "%s", val);
		p = close + 1;
	}
	if (!(joined = plumb_buf_detach(&b))) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	if ((rc = source_path_normalize(out, joined)))
		rc = plumb_error_set(rc, "%s \"%.256s\" for cluster %s: %s", field, path, cname ? cname : "(none)",
			plumb_error_last());
cleanup:
	plumb_buf_free(&b);
	free(joined);
	return rc;
}

int gitsync_render_kind(render_kind *out, source_cache *cache, const char *url, const char *cred_id,
	const char *commit, const char *path, const gitsync_spec *gs)
{
	static const char *const kfiles[] = { "kustomization.yaml", "kustomization.yml", "Kustomization" };
	int rc, has = 0;
	*out = RENDER_PLAIN;
	if (gs && gs->render != RENDER_AUTO) {
		*out = gs->render;
		return 0;
	}
	if (gs && gs->helm.set) {
		*out = RENDER_HELM;
		return 0;
	}
	for (size_t i = 0; i < 4 && !has; i++) {
		const char *f = i < 3 ? kfiles[i] : "Chart.yaml";
		char *p = plumb_asprintf("%s%s%s", path && *path ? path : "", path && *path ? "/" : "", f);
		if (!p)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		rc = source_path_exists(&has, cache, url, cred_id, commit, p);
		free(p);
		if (rc)
			return rc;
		if (has)
			*out = i < 3 ? RENDER_KUSTOMIZE : RENDER_HELM;
	}
	return 0;
}

/* Runs the tool on the revision's tree for cl: *yaml the stream (caller
 * frees), *name the file name it is parsed under. A revision's fault sets
 * *fault. */
static int run_tool(char **yaml, size_t *len, char **name, int *fault, source_cache *cache,
	const char *url, const char *cred_id, const char *commit, const char *path, render_kind kind,
	const gitsync_spec *gs, const gitsync_cluster *cl, const gitsync_render_env *env)
{
	const render_limits *lim = env->limits;
	source_files *tree = NULL;
	char *chart = NULL, **vfiles = NULL;
	render_result res = { 0 };
	size_t nv = gs ? gs->helm.nvalues_files : 0;
	int rc;
	*fault = 1;
	if (kind == RENDER_HELM && gs && gs->helm.chart &&
	    (rc = gitsync_resolve_path(&chart, "spec.helm.chart", gs->helm.chart, cl, NULL)))
		goto cleanup;
	if (nv && !(vfiles = calloc(nv, sizeof(*vfiles)))) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < nv; i++) {
		char field[64];
		snprintf(field, sizeof(field), "spec.helm.valuesFiles[%zu]", i);
		if ((rc = gitsync_resolve_path(&vfiles[i], field, gs->helm.values_files[i], cl, NULL)))
			goto cleanup;
	}
	size_t tb = lim && lim->max_tree_bytes ? lim->max_tree_bytes : (size_t)256 * 1024 * 1024;
	source_limits sl = { .max_file_size = tb, .max_total_size = tb,
		.max_files = lim && lim->max_tree_files ? lim->max_tree_files : 20000 };
	if ((rc = source_read_tree(&tree, cache, url, cred_id, commit, &sl))) {
		*fault = rc == PLUMB_ETOOBIG;
		goto cleanup;
	}
	render_opts ro = { .kind = kind };
	if (gs && kind == RENDER_HELM) {
		ro.helm = (render_helm_opts){ .set = gs->helm.set, .chart = chart,
			.release_name = gs->helm.release_name ? gs->helm.release_name : gs->name,
			.namespace = gs->helm.namespace ? gs->helm.namespace :
				gs->target_namespace ? gs->target_namespace : gs->ns,
			.values_files = (const char *const *)vfiles, .nvalues_files = nv,
			.values_json = gs->helm.values_json,
			.include_crds = gs->helm.set ? gs->helm.include_crds : 1 };
	} else if (kind == RENDER_HELM) {
		ro.helm.include_crds = 1;
	}
	ro.helm.kube_version = env->kube_version;
	ro.helm.api_versions = env->api_versions;
	ro.helm.napi_versions = env->napi_versions;
	if ((rc = render_run(&res, tree, path, &ro, env->tools, lim))) {
		/* the work directory is plumbd's trouble; the rest (a tool missing,
		 * failing, too slow or too loud) waits for a new commit or spec */
		*fault = rc != PLUMB_EIO && rc != PLUMB_ENOMEM;
		goto cleanup;
	}
	*yaml = res.yaml;
	*len = res.len;
	res.yaml = NULL;
	*name = plumb_asprintf("%s (%s)", kind == RENDER_HELM ? (chart ? chart : *path ? path : ".") :
		(*path ? path : "."), kind == RENDER_HELM ? "helm template" : "kustomize build");
	if (!*name) {
		free(*yaml);
		*yaml = NULL;
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		*fault = 0;
	}
cleanup:
	render_result_clear(&res);
	source_files_free(tree);
	for (size_t i = 0; vfiles && i < nv; i++)
		free(vfiles[i]);
	free(vfiles);
	free(chart);
	return rc;
}

int gitsync_render_commit(gitsync_rendered *out, char **errmsg, source_cache *cache, const char *url,
	const char *cred_id, const char *commit, const char *path,
	const gitsync_spec *gs, const gitsync_cluster *cl, const gitsync_render_env *env, render_kind *kindp)
{
	static const gitsync_render_env noenv = { 0 };
	source_files *files = NULL;
	manifest_file *mf = NULL;
	manifest_errors errs = { 0 };
	char *rpath = NULL, *yaml = NULL, *name = NULL;
	size_t ylen = 0, nmf = 0;
	render_kind kind = RENDER_PLAIN;
	int rc, failed = 0, fault = 0;
	memset(out, 0, sizeof(*out));
	*errmsg = NULL;
	if (kindp)
		*kindp = RENDER_PLAIN;
	if (!env)
		env = &noenv;
	if ((rc = gitsync_resolve_path(&rpath, "spec.git.path", path, cl, NULL))) {
		*errmsg = plumb_strdup(plumb_error_last());
		return rc;
	}
	if ((rc = gitsync_render_kind(&kind, cache, url, cred_id, commit, rpath, gs))) {
		rc = plumb_error_prefix(rc, "reading commit %.12s from the mirror", commit);
		goto cleanup;
	}
	if (kindp)
		*kindp = kind;
	if (kind == RENDER_PLAIN) {
		if ((rc = source_read(&files, cache, url, cred_id, commit, rpath, NULL))) {
			rc = plumb_error_prefix(rc, "reading commit %.12s from the mirror", commit);
			goto cleanup;
		}
		if (!(mf = calloc(files->count ? files->count : 1, sizeof(*mf)))) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		for (size_t i = 0; i < files->count; i++)
			mf[i] = (manifest_file){ files->items[i].path, files->items[i].data, files->items[i].len };
		nmf = files->count;
	} else {
		if ((rc = run_tool(&yaml, &ylen, &name, &fault, cache, url, cred_id, commit, rpath, kind, gs, cl,
			env))) {
			if (fault)
				*errmsg = plumb_strdup(plumb_error_last());
			goto cleanup;
		}
		if (!(mf = calloc(1, sizeof(*mf)))) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		mf[0] = (manifest_file){ name, yaml, ylen };
		nmf = 1;
	}
	rc = render(out, &failed, gs, cl, mf, nmf, NULL, &errs);
	if (rc && failed)
		*errmsg = gitsync_join_errors(&errs);
cleanup:
	manifest_errors_free(&errs);
	free(mf);
	free(yaml);
	free(name);
	free(rpath);
	source_files_free(files);
	return rc;
}

void gitsync_rendered_free(gitsync_rendered *r)
{
	if (!r)
		return;
	for (size_t i = 0; r->origins && i < r->count; i++)
		free(r->origins[i]);
	free(r->origins);
	cJSON_Delete(r->objects);
	memset(r, 0, sizeof(*r));
}
