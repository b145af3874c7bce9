/* plumbctl render and diff DIR: a checkout standing in for a commit, and
 * the flags that say how to render it. Both then call the pipeline's
 * gitsync_render_commit(), as plumbd does for a commit. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "plumbctl.h"

/* The files of a checkout: up to what plumbd materialises for a render. */
static const source_limits checkout_limits = {
	.max_file_size = MANIFEST_MAX_FILE,
	.max_total_size = (size_t)256 * 1024 * 1024,
	.max_files = 20000,
};

int plumbctl_render_flag(plumbctl_render_flags *f, int argc, char **argv, int *i)
{
	const char *v = NULL;
	int r;
	if ((r = plumbctl_flag(&f->root, "--root", NULL, argc, argv, i)) ||
	    (r = plumbctl_flag(&f->render, "--render", NULL, argc, argv, i)) ||
	    (r = plumbctl_flag(&f->release_name, "--release-name", NULL, argc, argv, i)) ||
	    (r = plumbctl_flag(&f->kube_version, "--kube-version", NULL, argc, argv, i)) ||
	    (r = plumbctl_flag(&f->kustomize_bin, "--kustomize-bin", NULL, argc, argv, i)) ||
	    (r = plumbctl_flag(&f->helm_bin, "--helm-bin", NULL, argc, argv, i)))
		return r;
	/* the repeatable ones */
	struct { const char *flag; const char **list; size_t *n; } lists[] = {
		{ "--values", f->values, &f->nvalues },
		{ "--api-versions", f->api_versions, &f->napi_versions },
	};
	for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
		if (!(r = plumbctl_flag(&v, lists[k].flag, NULL, argc, argv, i)))
			continue;
		if (r < 0)
			return r;
		if (*lists[k].n == PLUMBCTL_MAX_RENDER_LIST) {
			fprintf(stderr, "plumbctl: more than %d %s\n", PLUMBCTL_MAX_RENDER_LIST, lists[k].flag);
			return -1;
		}
		lists[k].list[(*lists[k].n)++] = v;
		return 1;
	}
	return 0;
}

/* Adds s to o under key, or fails. */
static int add_str(cJSON *o, const char *key, const char *s)
{
	return s && !cJSON_AddStringToObject(o, key, s) ? PLUMB_ENOMEM : 0;
}

int plumbctl_render_spec(gitsync_spec **out, const plumbctl_render_flags *f, const char *ns)
{
	cJSON *obj = cJSON_CreateObject(), *meta, *spec, *helm = NULL;
	int rc = PLUMB_ENOMEM;
	*out = NULL;
	if (!obj || !(meta = cJSON_AddObjectToObject(obj, "metadata")) ||
	    !(spec = cJSON_AddObjectToObject(obj, "spec")))
		goto cleanup;
	/* helm template's own default release name */
	if (add_str(meta, "name", "release-name") || add_str(meta, "namespace", ns ? ns : "default") ||
	    add_str(spec, "render", f->render) || add_str(spec, "targetNamespace", ns))
		goto cleanup;
	if (f->release_name || f->nvalues) {
		if (!(helm = cJSON_AddObjectToObject(spec, "helm")) || add_str(helm, "releaseName", f->release_name))
			goto cleanup;
		cJSON *vf = f->nvalues ? cJSON_AddArrayToObject(helm, "valuesFiles") : NULL;
		for (size_t i = 0; i < f->nvalues; i++)
			if (!vf || !cJSON_AddItemToArray(vf, cJSON_CreateString(f->values[i])))
				goto cleanup;
	}
	if ((rc = gitsync_spec_parse(out, obj)))
		goto cleanup;
	/* only the render fields come from flags: their errors are the user's */
	for (size_t i = 0; i < (*out)->nerrors; i++)
		if (!strncmp((*out)->errors[i], "spec.render", 11) || !strncmp((*out)->errors[i], "spec.helm", 9)) {
			rc = plumb_error_set(PLUMB_EINVALID, "%s", (*out)->errors[i]);
			gitsync_spec_free(*out);
			*out = NULL;
			goto cleanup;
		}
cleanup:
	if (rc == PLUMB_ENOMEM && !*out)
		plumb_error_set(rc, "out of memory");
	cJSON_Delete(obj);
	return rc;
}

void plumbctl_render_tools(render_tools *out, const plumbctl_render_flags *f)
{
	*out = (render_tools){ .kustomize = f->kustomize_bin, .helm = f->helm_bin };
}

/* The nearest folder from abs (a directory) up that holds .git, or NULL. */
static char *git_root(const char *abs)
{
	char *d = plumb_strdup(abs);
	struct stat st;
	while (d) {
		char *g = plumb_asprintf("%s/.git", strcmp(d, "/") ? d : "");
		int found = g && lstat(g, &st) == 0;
		free(g);
		if (found)
			return d;
		char *slash = strrchr(d, '/');
		if (!slash || !strcmp(d, "/"))
			break;
		if (slash == d)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	free(d);
	return NULL;
}

/* Puts prefix/ before every path of files. */
static int prefix_paths(source_files *files, const char *prefix)
{
	if (!*prefix)
		return 0;
	for (size_t i = 0; i < files->count; i++) {
		char *p = plumb_asprintf("%s/%s", prefix, files->items[i].path);
		if (!p)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		free(files->items[i].path);
		files->items[i].path = p;
	}
	return 0;
}

void plumbctl_checkout_free(plumbctl_checkout *co)
{
	source_files_free(co->files);
	free(co->root);
	free(co->path);
	memset(co, 0, sizeof(*co));
}

int plumbctl_checkout_read(plumbctl_checkout *co, const char *dir, const char *root, int whole,
	const gitsync_spec *gs)
{
	char abs[PATH_MAX], rabs[PATH_MAX];
	struct stat st;
	int rc;
	memset(co, 0, sizeof(*co));
	if (!realpath(dir, abs) || stat(abs, &st))
		return plumb_error_set(PLUMB_EIO, "%s: %m", dir);
	int is_file = S_ISREG(st.st_mode);
	if (!is_file && !S_ISDIR(st.st_mode))
		return plumb_error_set(PLUMB_EINVALID, "%s is neither a folder nor a file", dir);
	char *up = plumb_strdup(abs), *slash = up ? strrchr(up, '/') : NULL;
	if (is_file && slash)
		slash == up ? (void)(slash[1] = '\0') : (void)(*slash = '\0');
	if (root) {
		if (!realpath(root, rabs)) {
			free(up);
			return plumb_error_set(PLUMB_EIO, "--root %s: %m", root);
		}
		co->root = plumb_strdup(rabs);
	} else if (up && !(co->root = git_root(up))) {
		co->root = plumb_strdup(up);
	}
	free(up);
	size_t rl = co->root ? strlen(co->root) : 0;
	if (!co->root) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto fail;
	}
	if (strncmp(abs, co->root, rl) || (abs[rl] && abs[rl] != '/' && rl > 1)) {
		rc = plumb_error_set(PLUMB_EINVALID, "%s is not inside the repository root %s", dir, co->root);
		goto fail;
	}
	co->path = plumb_strdup(abs[rl] == '/' ? abs + rl + 1 : rl == 1 ? abs + 1 : "");
	if (!co->path) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto fail;
	}
	if (is_file) {
		/* one file: plain YAML, as source_read() reads a path that is a file */
		if (!(co->files = calloc(1, sizeof(*co->files))) ||
		    !(co->files->items = calloc(1, sizeof(*co->files->items)))) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto fail;
		}
		source_file *f = &co->files->items[0];
		if ((rc = plumb_file_read(&f->data, &f->len, abs, MANIFEST_MAX_FILE))) {
			plumb_error_prefix(rc, "%s", dir);
			goto fail;
		}
		co->files->count = 1;
		co->files->total_size = f->len;
		if (!(f->path = plumb_strdup(co->path))) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto fail;
		}
		return 0;
	}
	if (!whole) {
		/* the folder alone is enough for plain YAML */
		if ((rc = render_files_read_dir(&co->files, abs, &checkout_limits)) ||
		    (rc = prefix_paths(co->files, co->path)))
			goto fail;
		gitsync_revision rev = { .files = co->files };
		render_kind kind = RENDER_PLAIN;
		if ((rc = gitsync_render_kind(&kind, &rev, co->path, gs)))
			goto fail;
		if (kind == RENDER_PLAIN)
			return 0;
		source_files_free(co->files);
		co->files = NULL;
	}
	/* kustomize and helm may read anything in the repository (../base) */
	if ((rc = render_files_read_dir(&co->files, co->root, &checkout_limits))) {
		plumb_error_prefix(rc, "reading the repository %s (choose another root with --root)", co->root);
		goto fail;
	}
	return 0;
fail:
	plumbctl_checkout_free(co);
	return rc;
}
