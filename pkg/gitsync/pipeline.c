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
#include "gitsync/internal.h"

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

int gitsync_render_files(gitsync_rendered *out, int *render_failed, const gitsync_spec *gs,
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
	return gitsync_render_files(out, &failed, gs, cl, files, nfiles, ovr, errs);
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
