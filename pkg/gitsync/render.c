/*
 * The render stage of the pipeline (gitsync.h): spec.git.path resolved per
 * cluster, the kind of render, the revision's files (a mirror's commit or a
 * checkout's files) and, for kustomize and helm, the tool's run through the
 * render cache, then the manifest render every revision goes through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "gitsync/internal.h"

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

static const char *const kfiles[] = { "kustomization.yaml", "kustomization.yml", "Kustomization" };

/* 1 when files holds exactly path. */
static int files_have(const source_files *files, const char *path)
{
	for (size_t i = 0; files && i < files->count; i++)
		if (!strcmp(files->items[i].path, path))
			return 1;
	return 0;
}

/* Does rev hold path? */
static int rev_has(int *has, const gitsync_revision *rev, const char *path)
{
	if (!rev->cache) {
		*has = files_have(rev->files, path);
		return 0;
	}
	return source_path_exists(has, rev->cache, rev->url, rev->cred_id, rev->commit, path);
}

int gitsync_render_kind(render_kind *out, const gitsync_revision *rev, const char *path,
	const gitsync_spec *gs)
{
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
		rc = rev_has(&has, rev, p);
		free(p);
		if (rc)
			return rc;
		if (has)
			*out = i < 3 ? RENDER_KUSTOMIZE : RENDER_HELM;
	}
	return 0;
}

/* The manifest files of a checkout under path, as source_read() picks them
 * from a commit: path itself when it is a file, else every .yaml, .yml and
 * .json file under it (render_files_read_dir() has left dot files out).
 * Borrowed into *mf (caller frees the array only). */
static int checkout_read(manifest_file **mf, size_t *n, const source_files *files, const char *path)
{
	size_t plen = strlen(path), k = 0;
	int any = 0;
	*mf = calloc(files->count ? files->count : 1, sizeof(**mf));
	*n = 0;
	if (!*mf)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (size_t i = 0; i < files->count; i++) {
		const source_file *f = &files->items[i];
		int exact = plen && !strcmp(f->path, path);
		int under = !plen || (!strncmp(f->path, path, plen) && f->path[plen] == '/');
		if (!exact && !under)
			continue;
		any = 1;
		if (exact && !source_path_is_manifest(f->path)) {
			free(*mf);
			*mf = NULL;
			return plumb_error_set(PLUMB_EINVALID, "path %.256s is a file but not .yaml, .yml or .json", path);
		}
		if (source_path_is_manifest(f->path))
			(*mf)[k++] = (manifest_file){ f->path, f->data, f->len };
	}
	if (plen && !any) {
		free(*mf);
		*mf = NULL;
		return plumb_error_set(PLUMB_ENOTFOUND, "path %.256s not found", path);
	}
	*n = k;
	return 0;
}

/* One tool run, as the cache asks for it: the tree (read from the mirror
 * here, so that a hit reads nothing), then the tool. */
typedef struct {
	const gitsync_revision *rev;
	const char *path;
	const render_opts *ro;
	const gitsync_render_env *env;
} tool_run;

static int tool_run_fn(gitsync_render_output *out, void *vctx)
{
	tool_run *t = vctx;
	const render_limits *lim = t->env->limits;
	const source_files *files = t->rev->files;
	source_files *tree = NULL;
	render_result res = { 0 };
	int rc;
	if (t->rev->cache) {
		size_t tb = lim && lim->max_tree_bytes ? lim->max_tree_bytes : (size_t)256 * 1024 * 1024;
		source_limits sl = { .max_file_size = tb, .max_total_size = tb,
			.max_files = lim && lim->max_tree_files ? lim->max_tree_files : 20000 };
		if ((rc = source_read_tree(&tree, t->rev->cache, t->rev->url, t->rev->cred_id, t->rev->commit,
			&sl))) {
			/* a tree past the caps is the revision's; the mirror unread, plumbd's */
			out->retry = rc != PLUMB_ETOOBIG;
			return rc;
		}
		files = tree;
	}
	rc = render_run(&res, files, t->path, t->ro, t->env->tools, lim);
	source_files_free(tree);
	/* the work directory and memory are plumbd's trouble, tried again; the
	 * rest (a tool missing, failing, too slow or too loud) is the revision's */
	if (rc) {
		out->retry = rc == PLUMB_EIO || rc == PLUMB_ENOMEM;
		return rc;
	}
	out->yaml = res.yaml;
	out->len = res.len;
	out->seconds = res.seconds;
	out->peak_rss_kb = res.peak_rss_kb;
	res.yaml = NULL;
	render_result_clear(&res);
	return 0;
}

/* What makes a run's output: every input of it, for the cache key. */
static int run_key(plumb_buf *b, const gitsync_revision *rev, const char *path, const render_opts *ro,
	const gitsync_render_env *env)
{
	const render_helm_opts *h = &ro->helm;
	const render_tools *tt = env->tools;
	int rc = plumb_buf_printf(b, "v1|%s|%s|%s|%d|%s|%s|", rev->url ? rev->url : "",
		rev->commit ? rev->commit : "", path, (int)ro->kind, tt && tt->kustomize ? tt->kustomize : "",
		tt && tt->helm ? tt->helm : "");
	if (!rc && ro->kind == RENDER_HELM) {
		rc = plumb_buf_printf(b, "%d|%s|%s|%s|%d|%s|", h->set, h->chart ? h->chart : "",
			h->release_name ? h->release_name : "", h->namespace ? h->namespace : "", h->include_crds,
			h->kube_version ? h->kube_version : "");
		for (size_t i = 0; !rc && i < h->nvalues_files; i++)
			rc = plumb_buf_printf(b, "f:%s|", h->values_files[i]);
		for (size_t i = 0; !rc && i < h->napi_versions; i++)
			rc = plumb_buf_printf(b, "a:%s|", h->api_versions[i]);
		/* the values last: they may hold any bytes */
		if (!rc)
			rc = plumb_buf_printf(b, "v:%s", h->values_json ? h->values_json : "");
	}
	return rc ? plumb_error_set(rc, "render cache key: %s", plumb_error_last()) : 0;
}

/* Runs the tool on the revision's tree for cl: *yaml the stream (caller
 * frees), *name the file name it is parsed under. A revision's fault sets
 * *fault. */
static int run_tool(char **yaml, size_t *len, char **name, int *fault, const gitsync_revision *rev,
	const char *path, render_kind kind, const gitsync_spec *gs, const gitsync_cluster *cl,
	const gitsync_render_env *env, const gitsync_render_overrides *ovr, gitsync_render_info *info)
{
	char *chart = NULL, **vfiles = NULL, **apis = NULL;
	size_t napis = 0;
	gitsync_render_output ro_out = { 0 };
	plumb_buf key = PLUMB_BUF_INIT(64u * 1024 * 1024);
	size_t nv = gs ? gs->helm.nvalues_files : 0;
	int rc, hit = 0;
	*fault = 1;
	if (kind == RENDER_HELM && gs && gs->helm.chart &&
	    (rc = gitsync_resolve_path(&chart, "spec.helm.chart", gs->helm.chart, cl, ovr)))
		goto cleanup;
	if (nv && !(vfiles = calloc(nv, sizeof(*vfiles)))) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < nv; i++) {
		char field[64];
		snprintf(field, sizeof(field), "spec.helm.valuesFiles[%zu]", i);
		if ((rc = gitsync_resolve_path(&vfiles[i], field, gs->helm.values_files[i], cl, ovr)))
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
	if (kind == RENDER_HELM) {
		ro.helm.kube_version = env->kube_version;
		ro.helm.api_versions = env->api_versions;
		ro.helm.napi_versions = env->napi_versions;
		if (!env->api_versions && env->discovery) {
			/* .Capabilities.APIVersions: what this cluster serves */
			if ((rc = kube_api_versions(&apis, &napis, env->discovery, GITSYNC_MAX_API_VERSIONS))) {
				*fault = rc == PLUMB_ETOOBIG;
				plumb_error_prefix(rc, "helm --api-versions from the cluster's discovery");
				goto cleanup;
			}
			ro.helm.api_versions = (const char *const *)apis;
			ro.helm.napi_versions = napis;
		}
	}
	tool_run t = { rev, path, &ro, env };
	if ((rc = run_key(&key, rev, path, &ro, env))) {
		*fault = 0;
		goto cleanup;
	}
	/* a checkout (plumbctl) is not a commit: its files may change */
	rc = gitsync_render_cache_get(&ro_out, &hit, rev->cache ? env->cache : NULL, env->owner, rev->commit,
		key.ptr, key.len, tool_run_fn, &t);
	if (info) {
		info->cached = hit;
		info->seconds = ro_out.seconds;
		info->peak_rss_kb = ro_out.peak_rss_kb;
	}
	if (rc) {
		*fault = !ro_out.retry;
		goto cleanup;
	}
	*yaml = ro_out.yaml;
	*len = ro_out.len;
	ro_out.yaml = NULL;
	*name = plumb_asprintf("%s (%s)", kind == RENDER_HELM ? (chart ? chart : *path ? path : ".") :
		(*path ? path : "."), kind == RENDER_HELM ? "helm template" : "kustomize build");
	if (!*name) {
		free(*yaml);
		*yaml = NULL;
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		*fault = 0;
	}
cleanup:
	gitsync_render_output_clear(&ro_out);
	plumb_buf_free(&key);
	kube_api_versions_free(apis, napis);
	for (size_t i = 0; vfiles && i < nv; i++)
		free(vfiles[i]);
	free(vfiles);
	free(chart);
	return rc;
}

int gitsync_render_tool(char **yaml, size_t *len, char **name, char **errmsg, const gitsync_revision *rev,
	const char *path, const gitsync_spec *gs, const gitsync_cluster *cl, const gitsync_render_env *env,
	const gitsync_render_overrides *ovr, gitsync_render_info *info)
{
	static const gitsync_render_env noenv = { 0 };
	render_kind kind = RENDER_PLAIN;
	char *rpath = NULL;
	int rc, fault = 0;
	*yaml = *name = *errmsg = NULL;
	*len = 0;
	if (info)
		*info = (gitsync_render_info){ .errs = info->errs };
	if ((rc = gitsync_resolve_path(&rpath, "spec.git.path", path, cl, ovr))) {
		*errmsg = plumb_strdup(plumb_error_last());
		return rc;
	}
	if (!(rc = gitsync_render_kind(&kind, rev, rpath, gs)) && kind != RENDER_PLAIN &&
	    (rc = run_tool(yaml, len, name, &fault, rev, rpath, kind, gs, cl, env ? env : &noenv, ovr, info)) && fault)
		*errmsg = plumb_strdup(plumb_error_last());
	if (info)
		info->kind = kind;
	free(rpath);
	return rc;
}

int gitsync_render_commit(gitsync_rendered *out, char **errmsg, const gitsync_revision *rev,
	const char *path, const gitsync_spec *gs, const gitsync_cluster *cl, const gitsync_render_env *env,
	const gitsync_render_overrides *ovr, gitsync_render_info *info)
{
	static const gitsync_render_env noenv = { 0 };
	source_files *files = NULL;
	manifest_file *mf = NULL;
	manifest_errors errs = { 0 };
	char *rpath = NULL, *yaml = NULL, *name = NULL;
	const char *commit = rev->commit ? rev->commit : "(checkout)";
	size_t ylen = 0, nmf = 0;
	render_kind kind = RENDER_PLAIN;
	int rc, failed = 0, fault = 0;
	memset(out, 0, sizeof(*out));
	*errmsg = NULL;
	manifest_errors *errp = info && info->errs ? info->errs : &errs;
	if (info)
		*info = (gitsync_render_info){ .errs = info->errs };
	if (!env)
		env = &noenv;
	if ((rc = gitsync_resolve_path(&rpath, "spec.git.path", path, cl, ovr))) {
		*errmsg = plumb_strdup(plumb_error_last());
		return rc;
	}
	if ((rc = gitsync_render_kind(&kind, rev, rpath, gs))) {
		rc = plumb_error_prefix(rc, "reading commit %.12s from the mirror", commit);
		goto cleanup;
	}
	if (info)
		info->kind = kind;
	if (kind == RENDER_PLAIN && rev->cache) {
		if ((rc = source_read(&files, rev->cache, rev->url, rev->cred_id, rev->commit, rpath, NULL))) {
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
	} else if (kind == RENDER_PLAIN) {
		if ((rc = checkout_read(&mf, &nmf, rev->files, rpath))) {
			*errmsg = plumb_strdup(plumb_error_last());
			goto cleanup;
		}
	} else {
		if ((rc = run_tool(&yaml, &ylen, &name, &fault, rev, rpath, kind, gs, cl, env, ovr, info))) {
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
	rc = gitsync_render_files(out, &failed, gs, cl, mf, nmf, ovr, errp);
	if (rc && failed)
		*errmsg = gitsync_join_errors(errp);
cleanup:
	manifest_errors_free(&errs);
	free(mf);
	free(yaml);
	free(name);
	free(rpath);
	source_files_free(files);
	return rc;
}
