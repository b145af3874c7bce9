/* plumbctl vet / render: the offline manifest commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "diff/diff.h"
#include "gitsync/gitsync.h"
#include "manifest/manifest.h"
#include "plumbctl.h"

#define MAX_FLAGS 256

/* DIR or a single file. */
static int read_input(manifest_file **files, size_t *n, const char *path)
{
	struct stat st;
	if (stat(path, &st))
		return plumb_error_set(PLUMB_EIO, "%s: %m", path);
	if (S_ISDIR(st.st_mode))
		return manifest_files_read_dir(files, n, path);
	manifest_file *f = calloc(1, sizeof(*f));
	char *data = NULL;
	size_t len = 0;
	int rc;
	if (!f)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if ((rc = plumb_file_read(&data, &len, path, MANIFEST_MAX_FILE))) {
		free(f);
		return plumb_error_prefix(rc, "%s", path);
	}
	f->file = plumb_strdup(path);
	f->data = data;
	f->len = len;
	*files = f;
	*n = 1;
	return 0;
}

static void print_errors(const manifest_errors *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
	if (errs->dropped)
		fprintf(stderr, "… and %zu more errors\n", errs->dropped);
}

static const char vet_usage[] =
	"usage: plumbctl vet DIR [render flags]\n"
	"\n"
	"Checks DIR (a folder of a checkout, or one file) as plumbd checks a commit,\n"
	"without a cluster: every object parsed and validated, nothing substituted.\n"
	"A kustomization or a Chart.yaml is rendered first, as plumbd renders it.\n"
	"\n"
	PLUMBCTL_RENDER_FLAGS;

int plumbctl_vet(int argc, char **argv)
{
	manifest_file *files = NULL;
	size_t n = 0, ylen = 0;
	manifest_errors errs = { 0 };
	plumbctl_render_flags rf = { 0 };
	plumbctl_checkout co = { 0 };
	gitsync_spec *gs = NULL;
	const char *dir = NULL;
	char *yaml = NULL, *name = NULL, *errmsg = NULL;
	int rc = 1, r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(vet_usage, stdout);
			return 0;
		}
		if ((r = plumbctl_render_flag(&rf, argc, argv, &i))) {
			if (r < 0)
				return 2;
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			fprintf(stderr, "plumbctl vet: unexpected argument \"%s\"\n%s", argv[i], vet_usage);
			return 2;
		}
	}
	if (!dir) {
		fputs(vet_usage, stderr);
		return 2;
	}
	if (plumbctl_render_spec(&gs, &rf, NULL)) {
		fprintf(stderr, "plumbctl vet: %s\n", plumb_error_last());
		return 2;
	}
	render_tools tools;
	plumbctl_render_tools(&tools, &rf);
	gitsync_render_env env = { .tools = &tools };
	gitsync_revision rev = { 0 };
	if (plumbctl_checkout_read(&co, dir, rf.root, 0, gs)) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		goto cleanup;
	}
	rev.files = co.files;
	if (gitsync_render_tool(&yaml, &ylen, &name, &errmsg, &rev, co.path, gs, NULL, &env, NULL, NULL)) {
		fprintf(stderr, "plumbctl: %s\n", errmsg ? errmsg : plumb_error_last());
		goto cleanup;
	}
	if (yaml) {
		/* kustomize or helm: what it printed is the revision */
		manifest_file f = { name, yaml, ylen };
		rc = manifest_vet(&f, 1, &errs) ? 1 : 0;
		print_errors(&errs);
		if (!rc)
			fprintf(stderr, "%s: %s, ok\n", dir, name);
		goto cleanup;
	}
	if (read_input(&files, &n, dir)) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		goto cleanup;
	}
	rc = manifest_vet(files, n, &errs) ? 1 : 0;
	print_errors(&errs);
	if (!rc)
		fprintf(stderr, "%s: %zu file(s), ok\n", dir, n);
cleanup:
	manifest_errors_free(&errs);
	manifest_files_free(files, n);
	plumbctl_checkout_free(&co);
	gitsync_spec_free(gs);
	free(yaml);
	free(name);
	free(errmsg);
	return rc;
}

/* Splits "k=v" in place into a manifest_var. */
static int split_kv(manifest_var *out, char *s, const char *flag)
{
	char *eq = strchr(s, '=');
	if (!eq || eq == s) {
		fprintf(stderr, "plumbctl: %s wants KEY=VALUE, got \"%s\"\n", flag, s);
		return -1;
	}
	*eq = '\0';
	out->name = s;
	out->value = eq + 1;
	return 0;
}

static const char render_usage[] =
	"usage: plumbctl render DIR --cluster-name NAME [--cluster-label k=v …] [--set VAR=value …]\n"
	"                           [--namespace NS] [--kube-version V] [--api-versions GV …] [render flags]\n"
	"\n"
	"Prints what plumbd would apply to one cluster from DIR (a folder of a checkout, or one\n"
	"file): plain YAML, or `kustomize build` / `helm template` when DIR holds a\n"
	"kustomization or a Chart.yaml (or --render says so), run in plumbd's sandbox, then\n"
	"substitution, cluster selectors and validation, in apply order.\n"
	"\n"
	"  --cluster-name NAME     ${CLUSTER_NAME}\n"
	"  --cluster-label k=v     a cluster label for selectors, ${CLUSTER_LABEL_k} and paths (repeatable)\n"
	"  --set VAR=value         a substitution variable (repeatable)\n"
	"  --namespace NS          namespace for objects that name none (targetNamespace)\n"
	"  --kube-version V        Helm's .Capabilities.KubeVersion (default: helm's own)\n"
	"  --api-versions GV       Helm's .Capabilities.APIVersions (repeatable)\n"
	PLUMBCTL_RENDER_FLAGS;

int plumbctl_render(int argc, char **argv)
{
	manifest_var labels[MAX_FLAGS], vars[MAX_FLAGS];
	size_t nlabels = 0, nvars = 0;
	const char *dir = NULL, *cluster = NULL, *ns = NULL;
	plumbctl_render_flags rf = { 0 };
	plumbctl_checkout co = { 0 };
	gitsync_spec *gs = NULL;
	gitsync_rendered set = { 0 };
	manifest_errors errs = { 0 };
	char *errmsg = NULL;
	plumb_buf out = PLUMB_BUF_INIT(256u * 1024 * 1024);
	int rc = 1, r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int has_arg = i + 1 < argc;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(render_usage, stdout);
			return 0;
		}
		if ((r = plumbctl_render_flag(&rf, argc, argv, &i))) {
			if (r < 0)
				return 2;
		} else if (!strcmp(a, "--cluster-name") && has_arg) {
			cluster = argv[++i];
		} else if (!strcmp(a, "--namespace") && has_arg) {
			ns = argv[++i];
		} else if (!strcmp(a, "--cluster-label") && has_arg) {
			if (nlabels == MAX_FLAGS || split_kv(&labels[nlabels++], argv[++i], a))
				return 2;
		} else if (!strcmp(a, "--set") && has_arg) {
			if (nvars == MAX_FLAGS || split_kv(&vars[nvars++], argv[++i], a))
				return 2;
		} else if (a[0] != '-' && !dir) {
			dir = a;
		} else {
			fprintf(stderr, "plumbctl render: unexpected argument \"%s\"\n%s", a, render_usage);
			return 2;
		}
	}
	if (!dir || !cluster) {
		fputs(render_usage, stderr);
		return 2;
	}
	if (plumbctl_render_spec(&gs, &rf, ns)) {
		fprintf(stderr, "plumbctl render: %s\n", plumb_error_last());
		return 2;
	}
	if (plumbctl_checkout_read(&co, dir, rf.root, 0, gs)) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		goto cleanup;
	}
	/* the pipeline plumbd runs for a commit, on the checkout's files */
	render_tools tools;
	plumbctl_render_tools(&tools, &rf);
	gitsync_render_env env = { .tools = &tools, .kube_version = rf.kube_version,
		.api_versions = rf.napi_versions ? rf.api_versions : NULL, .napi_versions = rf.napi_versions };
	gitsync_render_overrides ovr = { .vars = vars, .nvars = nvars, .labels = labels, .nlabels = nlabels,
		.cluster_name = cluster, .default_namespace = ns };
	gitsync_revision rev = { .files = co.files };
	gitsync_render_info info = { .errs = &errs };
	if (gitsync_render_commit(&set, &errmsg, &rev, co.path, gs, NULL, &env, &ovr, &info)) {
		print_errors(&errs);
		if (!errs.count)
			fprintf(stderr, "plumbctl: %s\n", errmsg ? errmsg : plumb_error_last());
		goto cleanup;
	}
	int i = 0;
	const cJSON *obj;
	cJSON_ArrayForEach(obj, set.objects) {
		const char *origin = set.origins && set.origins[i] ? set.origins[i] : "?";
		i++;
		if (plumb_buf_printf(&out, "---\n# Source: %s\n", origin) || diff_to_yaml(&out, obj)) {
			fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
			goto cleanup;
		}
	}
	if (out.len)
		fwrite(out.ptr, 1, out.len, stdout);
	rc = 0;
cleanup:
	plumb_buf_free(&out);
	free(errmsg);
	manifest_errors_free(&errs);
	gitsync_rendered_free(&set);
	gitsync_spec_free(gs);
	plumbctl_checkout_free(&co);
	return rc;
}
