/* Unit tests for pkg/render's pure parts: detection, the kustomization
 * checks (remote bases, escapes), the tools' arguments, the child's
 * environment, the Helm hook filter and the work directory. The real tools
 * run in tests/integration/test_render.c. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "render/internal.h"
#include "render/render.h"
#include "test_json.h"

/* ---- a revision built in memory ---- */

static source_files *files_new(void)
{
	return calloc(1, sizeof(source_files));
}

static void files_add(source_files *fs, const char *path, const char *data)
{
	fs->items = realloc(fs->items, (fs->count + 1) * sizeof(*fs->items));
	source_file *f = &fs->items[fs->count++];
	f->path = strdup(path);
	f->data = strdup(data);
	f->len = strlen(data);
	fs->total_size += f->len;
}

static const char *KBASE = "resources:\n- deployment.yaml\n";
static const char *KOVERLAY = "resources:\n- ../../base\ncomponents:\n- ../../components/mon\n";

static source_files *overlay_repo(void)
{
	source_files *fs = files_new();
	files_add(fs, "base/kustomization.yaml", KBASE);
	files_add(fs, "base/deployment.yaml", "kind: Deployment\n");
	files_add(fs, "components/mon/kustomization.yaml", "kind: Component\nresources: [cm.yaml]\n");
	files_add(fs, "components/mon/cm.yaml", "kind: ConfigMap\n");
	files_add(fs, "overlays/prod/kustomization.yaml", KOVERLAY);
	return fs;
}

START_TEST(test_render__kind_names_parse)
{
	render_kind k;
	ck_assert_int_eq(render_kind_parse(&k, "kustomize"), 0);
	ck_assert_int_eq(k, RENDER_KUSTOMIZE);
	ck_assert_int_eq(render_kind_parse(&k, NULL), 0);
	ck_assert_int_eq(k, RENDER_AUTO);
	ck_assert_int_eq(render_kind_parse(&k, "Helm"), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "\"Helm\""));
	ck_assert_str_eq(render_kind_name(RENDER_HELM), "helm");
}
END_TEST

START_TEST(test_render__detect)
{
	source_files *fs = overlay_repo();
	files_add(fs, "yml/kustomization.yml", "resources: []\n");
	files_add(fs, "bare/Kustomization", "resources: []\n");
	files_add(fs, "charts/app/Chart.yaml", "name: app\n");
	files_add(fs, "both/Chart.yaml", "name: both\n");
	files_add(fs, "both/kustomization.yaml", "resources: []\n");
	files_add(fs, "plain/cm.yaml", "kind: ConfigMap\n");
	ck_assert_int_eq(render_detect(fs, "overlays/prod", NULL), RENDER_KUSTOMIZE);
	ck_assert_int_eq(render_detect(fs, "./overlays/prod/", NULL), RENDER_KUSTOMIZE);
	ck_assert_int_eq(render_detect(fs, "yml", NULL), RENDER_KUSTOMIZE);
	ck_assert_int_eq(render_detect(fs, "bare", NULL), RENDER_KUSTOMIZE);
	ck_assert_int_eq(render_detect(fs, "charts/app", NULL), RENDER_HELM);
	ck_assert_int_eq(render_detect(fs, "both", NULL), RENDER_KUSTOMIZE);
	ck_assert_int_eq(render_detect(fs, "plain", NULL), RENDER_PLAIN);
	ck_assert_int_eq(render_detect(fs, "", NULL), RENDER_PLAIN);
	/* a kustomization further down does not make its parent one */
	ck_assert_int_eq(render_detect(fs, "overlays", NULL), RENDER_PLAIN);
	render_opts o = { .kind = RENDER_PLAIN };
	ck_assert_int_eq(render_detect(fs, "overlays/prod", &o), RENDER_PLAIN);
	render_opts h = { .helm = { .set = 1 } };
	ck_assert_int_eq(render_detect(fs, "both", &h), RENDER_HELM);
	ck_assert_int_eq(render_detect(fs, "plain", &h), RENDER_HELM);
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__remote_entries)
{
	static const char *remote[] = {
		"https://github.com/kubernetes-sigs/kustomize//examples/multibases?ref=v3.3.1",
		"github.com/kubernetes-sigs/kustomize/examples/helloWorld?ref=v1.0.6",
		"github.com/org/repo/deploy",
		"git@github.com:org/repo.git/deploy",
		"ssh://git@example.com/org/repo.git",
		"git::https://example.com/org/repo.git",
		"gitlab.com/org/repo",
		"example.com/org/repo//deploy",
		"deploy?ref=main",
		"http://example.com/deployment.yaml",
		"file:///etc/passwd",
		"user@example.com:org/repo",
	};
	static const char *local[] = { "../base", "deployment.yaml", "../../components/mon",
		"base", "my.app/deploy", "./x.yaml", "a@b/c.yaml" };
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++)
		ck_assert_msg(render_kustomize_entry_is_remote(remote[i]), "%s", remote[i]);
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		ck_assert_msg(!render_kustomize_entry_is_remote(local[i]), "%s", local[i]);
}
END_TEST

START_TEST(test_render__kustomize_check_accepts_the_repository)
{
	source_files *fs = overlay_repo();
	ck_assert_int_eq(render_kustomize_check(fs, "overlays/prod"), 0);
	ck_assert_int_eq(render_kustomize_check(fs, "base"), 0);
	ck_assert_int_eq(render_kustomize_check(fs, "components"), PLUMB_ENOTFOUND);
	source_files_free(fs);
	/* the repository root itself as a base */
	fs = files_new();
	files_add(fs, "kustomization.yaml", "resources:\n- cm.yaml\n");
	files_add(fs, "cm.yaml", "kind: ConfigMap\n");
	files_add(fs, "overlays/a/kustomization.yaml", "resources:\n- ../..\n- ./../../cm.yaml\n");
	ck_assert_msg(render_kustomize_check(fs, "overlays/a") == 0, "%s", plumb_error_last());
	source_files_free(fs);
}
END_TEST

/* check_refused(kustomization text, words the message must hold) */
static void check_refused(const char *kustomization, const char *want)
{
	source_files *fs = overlay_repo();
	files_add(fs, "overlays/evil/kustomization.yaml", kustomization);
	ck_assert_int_eq(render_kustomize_check(fs, "overlays/evil"), PLUMB_EINVALID);
	ck_assert_msg(strstr(plumb_error_last(), want), "%s: %s", want, plumb_error_last());
	ck_assert_msg(strstr(plumb_error_last(), "overlays/evil/kustomization.yaml"), "%s", plumb_error_last());
	source_files_free(fs);
}

START_TEST(test_render__kustomize_check_refusals)
{
	check_refused("resources:\n- github.com/org/repo/deploy?ref=v1\n", "remote base");
	check_refused("resources:\n- https://example.com/x.yaml\n", "remote base");
	check_refused("bases:\n- git@github.com:org/repo.git\n", "remote base");
	check_refused("components:\n- https://example.com/c\n", "remote base");
	check_refused("resources:\n- ../../../etc\n", "leaves the repository");
	check_refused("resources:\n- ../../../../../../etc/passwd\n", "leaves the repository");
	check_refused("resources:\n- /etc/passwd\n", "absolute path");
	check_refused("resources:\n- missing\n", "no file or folder of the repository");
	check_refused("transformers:\n- ../../../t.yaml\n", "leaves the repository");
	check_refused("helmCharts:\n- name: redis\n  repo: https://charts.example.com\n", "would be downloaded");
	/* through a base: the base reached from the overlay is checked too */
	source_files *fs = overlay_repo();
	files_add(fs, "evilbase/kustomization.yaml", "resources:\n- github.com/org/repo\n");
	files_add(fs, "overlays/x/kustomization.yaml", "resources:\n- ../../evilbase\n");
	ck_assert_int_eq(render_kustomize_check(fs, "overlays/x"), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "evilbase/kustomization.yaml"));
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__kustomize_check_cycles_end)
{
	source_files *fs = files_new();
	files_add(fs, "a/kustomization.yaml", "resources:\n- ../b\n");
	files_add(fs, "b/kustomization.yaml", "resources:\n- ../a\n");
	/* kustomize reports the cycle itself; the check must only terminate */
	ck_assert_int_eq(render_kustomize_check(fs, "a"), 0);
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__kustomize_argv)
{
	char **argv = NULL;
	ck_assert_int_eq(render_kustomize_argv(&argv, "/bin/kustomize", "/w/tree/overlays/prod"), 0);
	const char *want[] = { "/bin/kustomize", "build", "--load-restrictor", "LoadRestrictionsRootOnly",
		"/w/tree/overlays/prod", NULL };
	for (int i = 0; want[i]; i++)
		ck_assert_str_eq(argv[i], want[i]);
	ck_assert_ptr_null(argv[5]);
	for (int i = 0; argv[i]; i++) {
		ck_assert_ptr_null(strstr(argv[i], "alpha-plugins"));
		ck_assert_ptr_null(strstr(argv[i], "enable-exec"));
		ck_assert_ptr_null(strstr(argv[i], "enable-helm"));
	}
	render_argv_free(argv);
}
END_TEST

static source_files *chart_repo(void)
{
	source_files *fs = files_new();
	files_add(fs, "charts/app/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n");
	files_add(fs, "charts/app/templates/cm.yaml", "kind: ConfigMap\n");
	files_add(fs, "env/prod.yaml", "replicas: 3\n");
	return fs;
}

START_TEST(test_render__helm_argv)
{
	source_files *fs = chart_repo();
	const char *vf[] = { "./env/prod.yaml" };
	const char *apis[] = { "monitoring.coreos.com/v1/ServiceMonitor", "apps/v1" };
	render_helm_opts h = { .release_name = "shop", .namespace = "shop-ns", .values_files = vf,
		.nvalues_files = 1, .include_crds = 1, .kube_version = "v1.31.2", .api_versions = apis,
		.napi_versions = 2 };
	char **argv = NULL;
	ck_assert_int_eq(render_helm_argv(&argv, "/bin/helm", "/w/tree", "charts/app", &h, "/w/values.json", fs), 0);
	const char *want[] = { "/bin/helm", "template", "--namespace=shop-ns", "--skip-tests", "--include-crds",
		"--kube-version=v1.31.2", "--api-versions=monitoring.coreos.com/v1/ServiceMonitor",
		"--api-versions=apps/v1", "--values=/w/tree/env/prod.yaml", "--values=/w/values.json", "shop",
		"/w/tree/charts/app", NULL };
	int n = 0;
	for (; want[n]; n++)
		ck_assert_str_eq(argv[n], want[n]);
	ck_assert_ptr_null(argv[n]);
	render_argv_free(argv);

	/* without the optional parts */
	render_helm_opts min = { .release_name = "r" };
	ck_assert_int_eq(render_helm_argv(&argv, "/bin/helm", "/w/tree", "", &min, NULL, fs), 0);
	const char *want2[] = { "/bin/helm", "template", "--namespace=default", "--skip-tests", "r", "/w/tree", NULL };
	for (n = 0; want2[n]; n++)
		ck_assert_str_eq(argv[n], want2[n]);
	ck_assert_ptr_null(argv[n]);
	render_argv_free(argv);
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__helm_argv_refuses_what_could_pass_as_a_flag)
{
	source_files *fs = chart_repo();
	char **argv = NULL;
	struct { render_helm_opts h; const char *want; } cases[] = {
		{ { .release_name = "--post-renderer=/bin/sh" }, "release name" },
		{ { .release_name = "" }, "release name" },
		{ { .release_name = "Shop" }, "release name" },
		{ { .release_name = "a123456789012345678901234567890123456789012345678901234" }, "release name" },
		{ { .release_name = "r", .namespace = "-n" }, "namespace" },
		{ { .release_name = "r", .namespace = "a.b" }, "namespace" },
		{ { .release_name = "r", .kube_version = "--debug" }, "kube version" },
		{ { .release_name = "r", .kube_version = "v1.31 --debug" }, "kube version" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(render_helm_argv(&argv, "/bin/helm", "/w/tree", "charts/app", &cases[i].h, NULL, fs),
			PLUMB_EINVALID);
		ck_assert_msg(strstr(plumb_error_last(), cases[i].want), "%zu: %s", i, plumb_error_last());
	}
	const char *bad_api[] = { "apps/v1,--debug" };
	render_helm_opts h = { .release_name = "r", .api_versions = bad_api, .napi_versions = 1 };
	ck_assert_int_eq(render_helm_argv(&argv, "/bin/helm", "/w/tree", "charts/app", &h, NULL, fs), PLUMB_EINVALID);
	const char *outside[] = { "../../etc/passwd" };
	render_helm_opts v = { .release_name = "r", .values_files = outside, .nvalues_files = 1 };
	ck_assert_int_eq(render_helm_argv(&argv, "/bin/helm", "/w/tree", "charts/app", &v, NULL, fs), PLUMB_EINVALID);
	const char *absent[] = { "env/staging.yaml" };
	v.values_files = absent;
	ck_assert_int_eq(render_helm_argv(&argv, "/bin/helm", "/w/tree", "charts/app", &v, NULL, fs), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "env/staging.yaml is not a file of the repository"));
	const char *abs_[] = { "/etc/passwd" };
	v.values_files = abs_;
	ck_assert_int_eq(render_helm_argv(&argv, "/bin/helm", "/w/tree", "charts/app", &v, NULL, fs), PLUMB_EINVALID);
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__env_is_built_from_nothing_of_ours)
{
	setenv("PLUMB_SECRET_MARKER", "s3cr3t", 1);
	setenv("KUSTOMIZE_PLUGIN_HOME", "/etc", 1);
	setenv("HELM_PLUGINS", "/etc", 1);
	char **env = NULL;
	ck_assert_int_eq(render_env_build(&env, "/w/home", (size_t)4 << 30), 0);
	int n = 0, path = 0, home = 0, nokube = 0, noplug = 0, gomem = 0;
	for (; env[n]; n++) {
		ck_assert_ptr_null(strstr(env[n], "s3cr3t"));
		ck_assert_msg(strncmp(env[n], "KUSTOMIZE_PLUGIN_HOME=", 22), "%s", env[n]);
		const char *eq = strchr(env[n], '=');
		ck_assert_ptr_nonnull(eq);
		path += !strcmp(env[n], "PATH=/usr/bin:/bin");
		home += !strcmp(env[n], "HOME=/w/home");
		nokube += !strcmp(env[n], "KUBECONFIG=/w/home/.kube/none");
		noplug += !strcmp(env[n], "HELM_NO_PLUGINS=1");
		gomem += !strcmp(env[n], "GOMEMLIMIT=3072MiB");
		/* every directory points into home */
		if (!strncmp(env[n], "HELM_", 5) && strcmp(env[n], "HELM_NO_PLUGINS=1"))
			ck_assert_msg(!strncmp(eq + 1, "/w/home/", 8), "%s", env[n]);
		if (!strncmp(env[n], "XDG_", 4) || !strncmp(env[n], "TMPDIR=", 7))
			ck_assert_msg(!strncmp(eq + 1, "/w/home/", 8), "%s", env[n]);
	}
	ck_assert_int_eq(path + home + nokube + noplug + gomem, 5);
	ck_assert_int_eq(n, 17);
	render_argv_free(env);
}
END_TEST

START_TEST(test_render__hook_filter)
{
	const char *in =
		"---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
		"---\n# Source: c/templates/h.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: del\n"
		"  annotations:\n    \"helm.sh/hook\": pre-delete,post-delete\n"
		"---\n# Source: c/templates/h.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inst\n"
		"  annotations:\n    helm.sh/hook: pre-install, pre-delete\n"
		"---\n# Source: c/templates/t.yaml\napiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n"
		"  annotations:\n    helm.sh/hook: test-success\n"
		"---\n# Source: c/templates/rb.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rb\n"
		"  annotations:\n    helm.sh/hook: post-rollback\n"
		"  labels: {note: mentions helm.sh/hook but has none}\n";
	const char *want =
		"---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
		"---\n# Source: c/templates/h.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inst\n"
		"  annotations:\n    helm.sh/hook: pre-install, pre-delete\n";
	char *out = NULL;
	size_t len = 0;
	ck_assert_int_eq(render_helm_filter_hooks(&out, &len, in, strlen(in)), 0);
	ck_assert_str_eq(out, want);
	ck_assert_uint_eq(len, strlen(want));
	free(out);
	/* no hooks: byte for byte */
	const char *plain = "---\n# Source: c/x.yaml\nkind: A\n---\nkind: B\n";
	ck_assert_int_eq(render_helm_filter_hooks(&out, &len, plain, strlen(plain)), 0);
	ck_assert_str_eq(out, plain);
	free(out);
}
END_TEST

START_TEST(test_render__path_check)
{
	ck_assert_int_eq(render_path_check("a/b.yaml"), 0);
	ck_assert_int_eq(render_path_check("../a"), PLUMB_EINVALID);
	ck_assert_int_eq(render_path_check("a/../../b"), PLUMB_EINVALID);
	ck_assert_int_eq(render_path_check("/etc/passwd"), PLUMB_EINVALID);
	ck_assert_int_eq(render_path_check("a//b"), PLUMB_EINVALID);
	ck_assert_int_eq(render_path_check("./a"), PLUMB_EINVALID);
	ck_assert_int_eq(render_path_check("a/"), PLUMB_EINVALID);
	ck_assert_int_eq(render_path_check(""), PLUMB_EINVALID);
}
END_TEST

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

START_TEST(test_render__workdir_is_read_only_and_removed)
{
	char tmp[] = "/tmp/plumb-render-test-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	char *work = NULL;
	ck_assert_int_eq(workdir_create(&work, tmp), 0);
	char tree[4200];
	snprintf(tree, sizeof(tree), "%s/tree", work);
	source_files *fs = overlay_repo();
	ck_assert_int_eq(workdir_materialise(tree, fs, 1 << 20, 100), 0);
	struct stat st;
	char p[4400];
	snprintf(p, sizeof(p), "%s/base/deployment.yaml", tree);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0444);
	ck_assert_int_eq(st.st_size, (off_t)strlen("kind: Deployment\n"));
	snprintf(p, sizeof(p), "%s/overlays/prod", tree);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0555);
	ck_assert_int_eq(lstat(tree, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0555);
	workdir_remove(work);
	ck_assert_int_eq(count_entries(tmp), 0);
	free(work);

	/* a path that climbs out, and the caps */
	ck_assert_int_eq(workdir_create(&work, tmp), 0);
	snprintf(tree, sizeof(tree), "%s/tree", work);
	source_files *evil = files_new();
	files_add(evil, "ok.yaml", "x");
	files_add(evil, "../../escape.yaml", "x");
	ck_assert_int_eq(workdir_materialise(tree, evil, 1 << 20, 100), PLUMB_EINVALID);
	ck_assert_int_eq(workdir_materialise(tree, fs, 4, 100), PLUMB_ETOOBIG);
	ck_assert_int_eq(workdir_materialise(tree, fs, 1 << 20, 2), PLUMB_ETOOBIG);
	workdir_remove(work);
	free(work);
	ck_assert_int_eq(count_entries(tmp), 0);
	snprintf(p, sizeof(p), "%s/../escape.yaml", tmp);
	ck_assert_int_ne(access(p, F_OK), 0);
	rmdir(tmp);
	source_files_free(fs);
	source_files_free(evil);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("render");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_render__kind_names_parse);
	tcase_add_test(tc, test_render__detect);
	tcase_add_test(tc, test_render__remote_entries);
	tcase_add_test(tc, test_render__kustomize_check_accepts_the_repository);
	tcase_add_test(tc, test_render__kustomize_check_refusals);
	tcase_add_test(tc, test_render__kustomize_check_cycles_end);
	tcase_add_test(tc, test_render__kustomize_argv);
	tcase_add_test(tc, test_render__helm_argv);
	tcase_add_test(tc, test_render__helm_argv_refuses_what_could_pass_as_a_flag);
	tcase_add_test(tc, test_render__env_is_built_from_nothing_of_ours);
	tcase_add_test(tc, test_render__hook_filter);
	tcase_add_test(tc, test_render__path_check);
	tcase_add_test(tc, test_render__workdir_is_read_only_and_removed);
	suite_add_tcase(s, tc);
	return test_run(s);
}
