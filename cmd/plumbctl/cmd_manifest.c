/* plumbctl vet / render: the offline manifest commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "diff/diff.h"
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

int plumbctl_vet(int argc, char **argv)
{
	manifest_file *files = NULL;
	size_t n = 0;
	manifest_errors errs = { 0 };
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: plumbctl vet DIR\n");
		return 2;
	}
	if (read_input(&files, &n, argv[1])) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		return 1;
	}
	rc = manifest_vet(files, n, &errs);
	print_errors(&errs);
	if (!rc)
		fprintf(stderr, "%s: %zu file(s), ok\n", argv[1], n);
	manifest_errors_free(&errs);
	manifest_files_free(files, n);
	return rc ? 1 : 0;
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

int plumbctl_render(int argc, char **argv)
{
	manifest_var labels[MAX_FLAGS], vars[MAX_FLAGS];
	size_t nlabels = 0, nvars = 0, n = 0;
	const char *dir = NULL, *cluster = NULL, *ns = NULL;
	manifest_file *files = NULL;
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	plumb_buf out = PLUMB_BUF_INIT(256u * 1024 * 1024);
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int has_arg = i + 1 < argc;
		if (!strcmp(a, "--cluster-name") && has_arg) {
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
			fprintf(stderr, "plumbctl render: unexpected argument \"%s\"\n", a);
			return 2;
		}
	}
	if (!dir || !cluster) {
		fprintf(stderr, "usage: plumbctl render DIR --cluster-name NAME [--cluster-label k=v …] [--set VAR=value …] [--namespace NS]\n");
		return 2;
	}
	if (read_input(&files, &n, dir)) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		return 1;
	}
	manifest_render_opts opts = {
		.vars = { 1, vars, nvars, cluster, labels, nlabels },
		.default_namespace = ns,
	};
	if (manifest_render(&set, files, n, &opts, &errs)) {
		print_errors(&errs);
		if (!errs.count)
			fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		goto cleanup;
	}
	for (size_t i = 0; i < set.count; i++) {
		if (plumb_buf_printf(&out, "---\n# Source: %s:%d\n", set.items[i].file, set.items[i].line)
				|| diff_to_yaml(&out, set.items[i].obj)) {
			fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
			goto cleanup;
		}
	}
	if (out.len)
		fwrite(out.ptr, 1, out.len, stdout);
	rc = 0;
cleanup:
	plumb_buf_free(&out);
	manifest_set_free(&set);
	manifest_errors_free(&errs);
	manifest_files_free(files, n);
	return rc;
}
