/*
 * Integration tests for pkg/render with the real kustomize and helm (built
 * by hack/build-kustomize.sh and hack/build-helm.sh; test_render.sh exports
 * PLUMB_KUSTOMIZE_BIN and PLUMB_HELM_BIN, their bin directories). What
 * render_run() prints must equal `kustomize build` / `helm template` of the
 * same files; what an attacker writes into a repository is refused or
 * bounded; the runner's sandbox is checked from inside the child (its
 * environment, limits, descriptors, process group) and nothing is left in
 * the render's temp directory afterwards. Fixtures: tests/fixtures/render/.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "render/render.h"
#include "test_json.h"

/* ---- helpers ------------------------------------------------------------- */

static char kustomize[4096], helm[4096], fixtures[4096];
static char tmp_dir[256];    /* the renders' TMPDIR; must stay empty */
static char script_dir[256]; /* stand-in tools */

static void tool_path(char *out, size_t n, const char *var, const char *name)
{
	const char *dir = getenv(var);
	ck_assert_msg(dir && *dir, "%s is not set (run test_render.sh)", var);
	snprintf(out, n, "%s/%s", dir, name);
	ck_assert_msg(access(out, X_OK) == 0, "%s is not executable", out);
}

static void setup(void)
{
	const char *root = getenv("PLUMB_ROOT");
	tool_path(kustomize, sizeof(kustomize), "PLUMB_KUSTOMIZE_BIN", "kustomize");
	tool_path(helm, sizeof(helm), "PLUMB_HELM_BIN", "helm");
	snprintf(fixtures, sizeof(fixtures), "%s/tests/fixtures/render", root && *root ? root : ".");
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/plumb-render-itest-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
	snprintf(script_dir, sizeof(script_dir), "/tmp/plumb-render-tools-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(script_dir));
}

static void teardown(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", tmp_dir, script_dir);
	(void)!system(cmd);
}

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

static void assert_tmp_empty(void)
{
	ck_assert_msg(count_entries(tmp_dir) == 0, "the render left files in %s", tmp_dir);
}

static void files_add(source_files *fs, const char *path, const char *data, size_t len)
{
	fs->items = realloc(fs->items, (fs->count + 1) * sizeof(*fs->items));
	ck_assert_ptr_nonnull(fs->items);
	source_file *f = &fs->items[fs->count++];
	f->path = strdup(path);
	f->data = malloc(len + 1);
	memcpy(f->data, data, len);
	f->data[len] = 0;
	f->len = len;
	fs->total_size += len;
}

static void files_put(source_files *fs, const char *path, const char *text)
{
	files_add(fs, path, text, strlen(text));
}

/* The fixture folder as a revision, read by render_files_read_dir() (what
 * plumbctl will use for a checkout). */
static source_files *fixture(const char *name)
{
	char dir[4200];
	source_files *fs = NULL;
	snprintf(dir, sizeof(dir), "%s/%s", fixtures, name);
	ck_assert_msg(render_files_read_dir(&fs, dir, NULL) == 0, "%s", plumb_error_last());
	for (size_t i = 1; i < fs->count; i++)
		ck_assert_int_lt(strcmp(fs->items[i - 1].path, fs->items[i].path), 0);
	return fs;
}

/* stdout of a shell command run directly (the reference). Caller frees. */
static char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sh_out(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	plumb_buf b = PLUMB_BUF_INIT(64 << 20);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		ck_assert_int_eq(plumb_buf_append(&b, chunk, n), 0);
	ck_assert_msg(pclose(p) == 0, "command failed: %s", cmd);
	ck_assert_int_eq(plumb_buf_append(&b, "", 0), 0);
	return plumb_buf_detach(&b);
}

static render_tools tools(void)
{
	render_tools t = { .kustomize = kustomize, .helm = helm, .tmp_dir = tmp_dir };
	return t;
}

/* A stand-in tool: a shell script in script_dir. Returns its path. */
static const char *script(const char *name, const char *body)
{
	static char path[512];
	char *text = plumb_asprintf("#!/bin/sh\n%s\n", body);
	snprintf(path, sizeof(path), "%s/%s", script_dir, name);
	ck_assert_int_eq(plumb_file_write(path, text, strlen(text), 0755), 0);
	free(text);
	return path;
}

/* ---- kustomize -------------------------------------------------------------- */

START_TEST(test_render__kustomize_overlays_equal_kustomize_build)
{
	source_files *fs = fixture("kustomize");
	render_tools t = tools();
	char *outs[2] = { 0 };
	const char *envs[] = { "staging", "prod" };
	for (int i = 0; i < 2; i++) {
		char path[64];
		snprintf(path, sizeof(path), "overlays/%s", envs[i]);
		render_result res = { 0 };
		int rc = render_run(&res, fs, path, NULL, &t, NULL);
		ck_assert_msg(rc == 0, "%s: %s", path, plumb_error_last());
		ck_assert_int_eq(res.kind, RENDER_KUSTOMIZE);
		char *want = sh_out("'%s' build '%s/kustomize/%s'", kustomize, fixtures, path);
		ck_assert_uint_eq(res.len, strlen(want));
		ck_assert_str_eq(res.yaml, want);
		ck_assert_ptr_nonnull(strstr(res.yaml, "namespace: web-"));
		ck_assert_ptr_nonnull(strstr(res.yaml, "prometheus.io/scrape")); /* the component's patch */
		ck_assert_ptr_nonnull(strstr(res.yaml, "name: web-config-"));    /* the generator's hash suffix */
		ck_assert_ptr_nonnull(strstr(res.yaml, "kind: Namespace"));
		ck_assert(res.peak_rss_kb > 0);
		fprintf(stderr, "kustomize build %s: %.3f s, peak RSS %ld KiB, %zu bytes\n", path, res.seconds,
			res.peak_rss_kb, res.len);
		outs[i] = res.yaml;
		res.yaml = NULL;
		free(want);
		assert_tmp_empty();
	}
	ck_assert_ptr_nonnull(strstr(outs[0], "replicas: 1"));
	ck_assert_ptr_nonnull(strstr(outs[1], "replicas: 3"));
	ck_assert_ptr_nonnull(strstr(outs[1], "LOG_LEVEL: warn"));
	ck_assert_str_ne(outs[0], outs[1]);
	free(outs[0]);
	free(outs[1]);
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__read_dir_refuses_symlinks_and_caps)
{
	char d[600], p[700];
	snprintf(d, sizeof(d), "%s/repo", script_dir);
	ck_assert_int_eq(mkdir(d, 0700), 0);
	snprintf(p, sizeof(p), "%s/a.yaml", d);
	ck_assert_int_eq(plumb_file_write(p, "kind: A\n", 8, 0644), 0);
	snprintf(p, sizeof(p), "%s/.git", d);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/.git/config", d);
	ck_assert_int_eq(plumb_file_write(p, "x", 1, 0644), 0);
	source_files *fs = NULL;
	ck_assert_int_eq(render_files_read_dir(&fs, d, NULL), 0);
	ck_assert_uint_eq(fs->count, 1);
	ck_assert_str_eq(fs->items[0].path, "a.yaml");
	source_files_free(fs);
	source_limits lim = { .max_file_size = 4 };
	ck_assert_int_eq(render_files_read_dir(&fs, d, &lim), PLUMB_ETOOBIG);
	snprintf(p, sizeof(p), "%s/passwd", d);
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
	ck_assert_int_eq(render_files_read_dir(&fs, d, NULL), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "passwd is a symlink"));
}
END_TEST

START_TEST(test_render__plain_runs_nothing)
{
	source_files *fs = fixture("kustomize");
	render_tools t = { .kustomize = "/nonexistent", .helm = "/nonexistent", .tmp_dir = tmp_dir };
	render_result res = { .kind = RENDER_HELM };
	ck_assert_int_eq(render_run(&res, fs, "base/..", NULL, &t, NULL), PLUMB_EINVALID); /* ".." refused */
	ck_assert_int_eq(render_run(&res, fs, "overlays", NULL, &t, NULL), 0);
	ck_assert_int_eq(res.kind, RENDER_PLAIN);
	ck_assert_ptr_null(res.yaml);
	assert_tmp_empty();
	source_files_free(fs);
}
END_TEST

/* refused(files, path, code, words): render_run fails with code and a message
 * holding words. With refuse_tools (else tools()). */
static const render_tools *refuse_tools;
static void refused(source_files *fs, const char *path, const render_opts *o, const render_limits *lim,
	int code, const char *words)
{
	render_tools t = tools();
	render_result res = { 0 };
	int rc = render_run(&res, fs, path, o, refuse_tools ? refuse_tools : &t, lim);
	ck_assert_msg(rc == code, "%s: want %d, got %d: %s", path, code, rc, plumb_error_last());
	fprintf(stderr, "refused as it should be: %s\n", plumb_error_last());
	ck_assert_msg(strstr(plumb_error_last(), words), "want \"%s\" in: %s", words, plumb_error_last());
	assert_tmp_empty();
}

START_TEST(test_render__kustomize_refusals)
{
	source_files *fs = fixture("kustomize");
	files_put(fs, "attack/remote/kustomization.yaml",
		"resources:\n- ../../base\n- github.com/kubernetes-sigs/kustomize/examples/helloWorld?ref=v1.0.6\n");
	refused(fs, "attack/remote", NULL, NULL, PLUMB_EINVALID, "remote base");
	files_put(fs, "attack/https/kustomization.yaml",
		"resources:\n- https://raw.githubusercontent.com/org/repo/main/deploy.yaml\n");
	refused(fs, "attack/https", NULL, NULL, PLUMB_EINVALID, "remote base");
	files_put(fs, "attack/escape/kustomization.yaml", "resources:\n- ../../../etc\n");
	refused(fs, "attack/escape", NULL, NULL, PLUMB_EINVALID, "leaves the repository");
	files_put(fs, "attack/passwd/kustomization.yaml", "resources:\n- ../../../../../../../../etc/passwd\n");
	refused(fs, "attack/passwd", NULL, NULL, PLUMB_EINVALID, "leaves the repository");
	files_put(fs, "attack/chart/kustomization.yaml",
		"helmCharts:\n- name: redis\n  repo: https://charts.bitnami.com/bitnami\n  version: 18.0.0\n");
	refused(fs, "attack/chart", NULL, NULL, PLUMB_EINVALID, "would be downloaded");
	/* a generator file outside the kustomization's folder: kustomize's own
	 * root-only loader refuses it */
	files_put(fs, "attack/gen/kustomization.yaml",
		"configMapGenerator:\n- name: stolen\n  files:\n  - ../../../../../../../../etc/hostname\n");
	refused(fs, "attack/gen", NULL, NULL, PLUMB_EINVALID, "security; file");
	refused(fs, "attack/gen", NULL, NULL, PLUMB_EINVALID, "is not in or below 'attack/gen'");
	/* the message carries kustomize's own words and the repository path */
	files_put(fs, "attack/broken/kustomization.yaml", "resources:\n- ../../base\npatches:\n- path: nope.yaml\n");
	refused(fs, "attack/broken", NULL, NULL, PLUMB_EINVALID, "kustomize build attack/broken: exit status 1");
	refused(fs, "attack/broken", NULL, NULL, PLUMB_EINVALID, "attack/broken/nope.yaml");
	source_files_free(fs);
}
END_TEST

/* 1,000 objects through a base and an overlay: the size of the issue's
 * benchmark, here only to show the render's own time and memory. */
START_TEST(test_render__thousand_objects)
{
	source_files *fs = calloc(1, sizeof(*fs));
	plumb_buf res_list = PLUMB_BUF_INIT(1 << 20);
	ck_assert_int_eq(plumb_buf_puts(&res_list, "resources:\n"), 0);
	for (int i = 0; i < 1000; i++) {
		char name[64], body[256];
		snprintf(name, sizeof(name), "base/cm-%04d.yaml", i);
		snprintf(body, sizeof(body), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%04d\n"
			"data:\n  index: \"%d\"\n", i, i);
		files_put(fs, name, body);
		ck_assert_int_eq(plumb_buf_printf(&res_list, "- cm-%04d.yaml\n", i), 0);
	}
	files_put(fs, "base/kustomization.yaml", res_list.ptr);
	files_put(fs, "overlays/prod/kustomization.yaml",
		"resources: [../../base]\nnamespace: prod\nlabels:\n- pairs: {env: prod}\n");
	plumb_buf_free(&res_list);
	render_tools t = tools();
	render_result res = { 0 };
	ck_assert_msg(render_run(&res, fs, "overlays/prod", NULL, &t, NULL) == 0, "%s", plumb_error_last());
	int n = 0;
	for (const char *p = res.yaml; (p = strstr(p, "kind: ConfigMap\n")); p++)
		n++;
	ck_assert_int_eq(n, 1000);
	fprintf(stderr, "kustomize build of 1,000 objects: %.3f s, peak RSS %ld KiB, %zu bytes\n", res.seconds,
		res.peak_rss_kb, res.len);
	render_result_clear(&res);
	assert_tmp_empty();
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__output_over_the_cap_is_killed)
{
	source_files *fs = calloc(1, sizeof(*fs));
	size_t big = 3u << 20;
	char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (i % 64 == 63) ? '\n' : 'x';
	files_add(fs, "huge/big.txt", data, big);
	free(data);
	files_put(fs, "huge/kustomization.yaml", "configMapGenerator:\n- name: huge\n  files:\n  - big.txt\n");
	render_limits lim = { .max_output = 1u << 20 };
	refused(fs, "huge", NULL, &lim, PLUMB_ETOOBIG, "output over the cap of 1048576 bytes");
	/* the same render fits a larger cap */
	render_tools t = tools();
	render_result res = { 0 };
	ck_assert_int_eq(render_run(&res, fs, "huge", NULL, &t, NULL), 0);
	ck_assert(res.len > big);
	render_result_clear(&res);
	assert_tmp_empty();
	source_files_free(fs);
}
END_TEST

/* ---- helm --------------------------------------------------------------------- */

/* text without the first document that holds needle (helm's "---" separated). */
static char *drop_doc(const char *text, const char *needle)
{
	const char *at = strstr(text, needle);
	ck_assert_ptr_nonnull(at);
	const char *start = at;
	while (start > text && strncmp(start, "---\n", 4))
		start--;
	const char *end = strstr(at, "\n---\n");
	end = end ? end + 1 : text + strlen(text);
	return plumb_asprintf("%.*s%s", (int)(start - text), text, end);
}

START_TEST(test_render__helm_capabilities_equal_helm_template)
{
	source_files *fs = fixture("chart");
	render_tools t = tools();
	const char *vf[] = { "values-prod.yaml" };
	const char *apis[] = { "monitoring.coreos.com/v1/ServiceMonitor" };
	render_opts old = { .helm = { .release_name = "shop", .namespace = "shop", .include_crds = 1,
		.kube_version = "v1.31.0", .api_versions = apis, .napi_versions = 1,
		.values_files = vf, .nvalues_files = 1, .values_json = "{\"color\": \"red\"}" } };
	render_opts new_ = { .helm = { .release_name = "shop", .namespace = "shop", .include_crds = 1,
		.kube_version = "v1.34.1" } };
	render_result a = { 0 }, b = { 0 };
	ck_assert_msg(render_run(&a, fs, "", &old, &t, NULL) == 0, "%s", plumb_error_last());
	ck_assert_int_eq(a.kind, RENDER_HELM);
	assert_tmp_empty();
	ck_assert_msg(render_run(&b, fs, "", &new_, &t, NULL) == 0, "%s", plumb_error_last());
	assert_tmp_empty();
	fprintf(stderr, "helm template: %.3f s, peak RSS %ld KiB, %zu bytes\n", b.seconds, b.peak_rss_kb, b.len);

	ck_assert_ptr_nonnull(strstr(a.yaml, "kubeVersion: \"v1.31.0\""));
	ck_assert_ptr_nonnull(strstr(a.yaml, "sidecars: legacy"));
	ck_assert_ptr_nonnull(strstr(a.yaml, "monitoring: servicemonitor"));
	ck_assert_ptr_nonnull(strstr(a.yaml, "replicas: \"3\""));
	ck_assert_ptr_nonnull(strstr(a.yaml, "color: \"red\""));
	ck_assert_ptr_nonnull(strstr(b.yaml, "kubeVersion: \"v1.34.1\""));
	ck_assert_ptr_nonnull(strstr(b.yaml, "sidecars: native"));
	ck_assert_ptr_nonnull(strstr(b.yaml, "monitoring: none"));
	ck_assert_ptr_nonnull(strstr(b.yaml, "replicas: \"1\""));
	/* vendored subchart, CRDs; no test hook, no delete hook, no NOTES */
	ck_assert_ptr_nonnull(strstr(a.yaml, "name: shop-sub"));
	ck_assert_ptr_nonnull(strstr(a.yaml, "kind: CustomResourceDefinition"));
	ck_assert_ptr_nonnull(strstr(a.yaml, "name: shop-migrate"));
	ck_assert_ptr_null(strstr(a.yaml, "shop-test"));
	ck_assert_ptr_null(strstr(a.yaml, "shop-cleanup"));
	ck_assert_ptr_null(strstr(a.yaml, "Thank you"));

	/* equal to helm template with the same inputs, less the pre-delete hook */
	char vals[4400];
	snprintf(vals, sizeof(vals), "%s/values.json", script_dir);
	ck_assert_int_eq(plumb_file_write(vals, old.helm.values_json, strlen(old.helm.values_json), 0644), 0);
	char *want_a = sh_out("'%s' template shop '%s/chart' --namespace=shop --skip-tests --include-crds "
		"--kube-version=v1.31.0 --api-versions=monitoring.coreos.com/v1/ServiceMonitor "
		"-f '%s/chart/values-prod.yaml' -f '%s'", helm, fixtures, fixtures, vals);
	char *want_b = sh_out("'%s' template shop '%s/chart' --namespace=shop --skip-tests --include-crds "
		"--kube-version=v1.34.1", helm, fixtures);
	ck_assert_ptr_nonnull(strstr(want_a, "shop-cleanup"));
	char *wa = drop_doc(want_a, "name: shop-cleanup"), *wb = drop_doc(want_b, "name: shop-cleanup");
	ck_assert_str_eq(a.yaml, wa);
	ck_assert_str_eq(b.yaml, wb);
	ck_assert_uint_eq(a.len, strlen(wa));

	/* includeCRDs off */
	render_result c = { 0 };
	new_.helm.include_crds = 0;
	ck_assert_int_eq(render_run(&c, fs, "", &new_, &t, NULL), 0);
	ck_assert_ptr_null(strstr(c.yaml, "CustomResourceDefinition"));
	render_result_clear(&a);
	render_result_clear(&b);
	render_result_clear(&c);
	free(want_a);
	free(want_b);
	free(wa);
	free(wb);
	assert_tmp_empty();
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__helm_failures_are_clear)
{
	source_files *fs = calloc(1, sizeof(*fs));
	files_put(fs, "apps/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
	files_put(fs, "apps/web/templates/cm.yaml",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ required \"set .Values.a\" .Values.a }}\n");
	files_put(fs, "apps/dep/Chart.yaml", "apiVersion: v2\nname: dep\nversion: 0.1.0\n"
		"dependencies:\n- name: redis\n  version: 18.0.0\n  repository: https://charts.bitnami.com/bitnami\n");
	files_put(fs, "apps/dep/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n");
	render_opts o = { .helm = { .release_name = "web" } };
	refused(fs, "apps/web", &o, NULL, PLUMB_EINVALID, "set .Values.a");
	refused(fs, "apps/web", &o, NULL, PLUMB_EINVALID, "file apps/web/templates/cm.yaml");
	refused(fs, "apps/dep", &o, NULL, PLUMB_EINVALID, "dependency is not vendored");
	refused(fs, "apps/dep", &o, NULL, PLUMB_EINVALID, "redis");
	const char *vf[] = { "apps/web/missing.yaml" };
	render_opts m = { .helm = { .release_name = "web", .values_files = vf, .nvalues_files = 1 } };
	refused(fs, "apps/web", &m, NULL, PLUMB_EINVALID, "apps/web/missing.yaml is not a file of the repository");
	render_opts bad = { .helm = { .release_name = "web", .values_json = "[1]" } };
	refused(fs, "apps/web", &bad, NULL, PLUMB_EINVALID, "not a JSON object");
	render_opts nochart = { .helm = { .set = 1, .release_name = "web" } };
	refused(fs, "apps", &nochart, NULL, PLUMB_ENOTFOUND, "no Chart.yaml");
	source_files_free(fs);
}
END_TEST

/* ---- the sandbox ---------------------------------------------------------------- */

START_TEST(test_render__timeout_kills_the_render)
{
	source_files *fs = fixture("chart");
	render_tools t = tools();
	t.helm = script("hang", "exec /bin/sleep 30");
	render_opts o = { .helm = { .release_name = "r" } };
	render_limits lim = { .timeout = 1 };
	double t0 = plumb_time_mono();
	refuse_tools = &t;
	refused(fs, "", &o, &lim, PLUMB_ETIMEOUT, "killed after 1s, the render timeout");
	refuse_tools = NULL;
	ck_assert(plumb_time_mono() - t0 < 5);
	source_files_free(fs);
}
END_TEST

/* 1 while pid exists and is not a zombie. */
static int alive(pid_t pid)
{
	char p[64], buf[512];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* A render has no network: a listener on our loopback hears nothing from
 * it (and does without isolation, so the test can tell). */
static int connect_from_child(int isolate, int port)
{
	char script[200];
	snprintf(script, sizeof(script), "(echo hi >/dev/tcp/127.0.0.1/%d) 2>/dev/null && echo reached || echo isolated", port);
	char *argv[] = { "/bin/bash", "-c", script, NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	render_exec_spec spec = { .argv = argv, .envp = envp, .timeout = 10, .isolate_network = isolate };
	render_exec_result res = { 0 };
	ck_assert_int_eq(render_exec(&res, &spec), 0);
	int reached = strstr(res.out, "reached") != NULL;
	ck_assert_msg(reached || strstr(res.out, "isolated"), "child said: %s / %s", res.out, res.err);
	render_exec_result_clear(&res);
	return reached;
}

START_TEST(test_render__no_network)
{
	const char *why = NULL;
	if (!render_network_isolation(&why)) {
		/* the machine refuses namespaces: say so, and fail, since the tests
		 * run where plumbd's sandbox is expected whole */
		ck_abort_msg("no network namespace for renders here: %s", why);
	}
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	ck_assert_int_ge(ls, 0);
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(ls, 4), 0);
	ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	int port = ntohs(a.sin_port);

	ck_assert_int_eq(connect_from_child(1, port), 0);
	ck_assert_int_lt(accept(ls, NULL, NULL), 0);   /* nobody knocked */
	ck_assert_int_eq(connect_from_child(0, port), 1);
	int c = accept(ls, NULL, NULL);
	ck_assert_int_ge(c, 0);
	close(c);
	close(ls);
}
END_TEST

START_TEST(test_render__timeout_kills_the_whole_group)
{
	char *argv[] = { "/bin/sh", "-c", "/bin/sleep 30 & echo $!; wait", NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	render_exec_spec spec = { .argv = argv, .envp = envp, .timeout = 1 };
	render_exec_result res = { 0 };
	double t0 = plumb_time_mono();
	ck_assert_int_eq(render_exec(&res, &spec), 0);
	ck_assert(plumb_time_mono() - t0 < 5);
	ck_assert_int_eq(res.timed_out, 1);
	ck_assert(WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGKILL);
	pid_t grandchild = (pid_t)atoi(res.out);
	ck_assert_int_gt(grandchild, 1);
	for (int i = 0; i < 200 && alive(grandchild); i++)
		plumb_sleep(0.01);
	ck_assert_msg(!alive(grandchild), "the sleep the shell started (pid %d) still runs", (int)grandchild);
	render_exec_result_clear(&res);

	/* /bin/sleep itself, directly */
	char *sl[] = { "/bin/sleep", "30", NULL };
	render_exec_spec s2 = { .argv = sl, .envp = envp, .timeout = 0.5 };
	ck_assert_int_eq(render_exec(&res, &s2), 0);
	ck_assert_int_eq(res.timed_out, 1);
	ck_assert(res.seconds < 3);
	render_exec_result_clear(&res);
}
END_TEST

START_TEST(test_render__child_sees_no_secret_of_ours)
{
	setenv("PLUMB_SECRET_MARKER", "marker-7f3a", 1);
	setenv("KUBECONFIG", "/root/.kube/config", 1);
	setenv("HELM_CONFIG_HOME", "/root/.config/helm", 1);
	source_files *fs = fixture("kustomize");
	render_tools t = tools();
	t.kustomize = script("envdump", "exec /usr/bin/env");
	render_result res = { 0 };
	ck_assert_msg(render_run(&res, fs, "overlays/prod", NULL, &t, NULL) == 0, "%s", plumb_error_last());
	ck_assert_ptr_null(strstr(res.yaml, "marker-7f3a"));
	ck_assert_ptr_null(strstr(res.yaml, "PLUMB_"));
	ck_assert_ptr_null(strstr(res.yaml, "/root/"));
	ck_assert_ptr_null(strstr(res.yaml, "KUSTOMIZE_PLUGIN_HOME"));
	ck_assert_ptr_nonnull(strstr(res.yaml, "PATH=/usr/bin:/bin\n"));
	char home[512];
	snprintf(home, sizeof(home), "HOME=%s/plumb-render-", tmp_dir);
	ck_assert_msg(strstr(res.yaml, home), "%s", res.yaml);
	render_result_clear(&res);
	assert_tmp_empty();

	/* helm's own view of where it reads configuration, plugins and caches */
	char **envp = NULL;
	char hdir[512];
	snprintf(hdir, sizeof(hdir), "%s/h", tmp_dir);
	ck_assert_int_eq(mkdir(hdir, 0700), 0);
	ck_assert_int_eq(render_env_build(&envp, hdir, 1u << 30), 0);
	char *argv[] = { helm, "env", NULL };
	render_exec_spec spec = { .argv = argv, .envp = envp, .cwd = hdir, .timeout = 30 };
	render_exec_result er = { 0 };
	ck_assert_int_eq(render_exec(&er, &spec), 0);
	ck_assert_msg(WIFEXITED(er.status) && WEXITSTATUS(er.status) == 0, "%s", er.err);
	int dirs = 0;
	for (char *line = strtok(er.out, "\n"); line; line = strtok(NULL, "\n")) {
		if (strstr(line, "_HOME=") || strstr(line, "HELM_PLUGINS=") || strstr(line, "HELM_REPOSITORY") ||
		    strstr(line, "HELM_REGISTRY_CONFIG=")) {
			ck_assert_msg(strstr(line, hdir), "helm reads %s outside its home", line);
			dirs++;
		}
		if (strncmp(line, "HELM_BIN=", 9)) /* the binary's own path */
			ck_assert_msg(!strstr(line, "/root"), "%s", line);
	}
	ck_assert_int_ge(dirs, 7);
	render_exec_result_clear(&er);
	render_argv_free(envp);
	rmdir(hdir);
	source_files_free(fs);
}
END_TEST

START_TEST(test_render__child_limits_fds_and_group)
{
	char *argv[] = { "/bin/sh", "-c",
		"ulimit -v; ulimit -t; ulimit -n; ulimit -f; "
		"cut -d' ' -f5 /proc/$$/stat; echo $$; pwd", NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	render_exec_spec spec = { .argv = argv, .envp = envp, .cwd = "/", .timeout = 10,
		.max_memory = (size_t)512 << 20, .max_cpu = 7, .max_open_files = 64,
		.max_file_write = (size_t)8 << 20 };
	render_exec_result res = { 0 };
	int fd = open("/dev/null", O_RDONLY); /* not O_CLOEXEC: must not reach the child either */
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(render_exec(&res, &spec), 0);
	ck_assert_msg(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0, "%s", res.err);
	char v[32], tl[32], n[32], f[32], pgid[32], pid[32], cwd[64];
	ck_assert_int_eq(sscanf(res.out, "%31s\n%31s\n%31s\n%31s\n%31s\n%31s\n%63s", v, tl, n, f,
		pgid, pid, cwd), 7);
	ck_assert_str_eq(v, "524288");  /* KiB */
	ck_assert_str_eq(tl, "7");
	ck_assert_str_eq(n, "64");
	ck_assert_str_eq(f, "16384");   /* 512-byte blocks */
	ck_assert_str_eq(pgid, pid);    /* its own process group */
	ck_assert_str_eq(cwd, "/");
	render_exec_result_clear(&res);

	/* descriptors: ls's own directory is 3, so nothing else was left open */
	char *ls[] = { "/bin/ls", "/proc/self/fd", NULL };
	render_exec_spec s1 = { .argv = ls, .envp = envp, .timeout = 10 };
	ck_assert_int_eq(render_exec(&res, &s1), 0);
	close(fd);
	ck_assert_str_eq(res.out, "0\n1\n2\n3\n");
	render_exec_result_clear(&res);

	/* stderr is capped, the child is not killed for it */
	char *noisy[] = { "/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' e >&2; echo done", NULL };
	render_exec_spec s2 = { .argv = noisy, .envp = envp, .timeout = 10, .max_stderr = 1000 };
	ck_assert_int_eq(render_exec(&res, &s2), 0);
	ck_assert_uint_eq(res.err_len, 1000);
	ck_assert_str_eq(res.out, "done\n");
	render_exec_result_clear(&res);

	/* a tool that is not there */
	char *missing[] = { "/nonexistent/kustomize", NULL };
	render_exec_spec s3 = { .argv = missing, .envp = envp };
	ck_assert_int_eq(render_exec(&res, &s3), PLUMB_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "/nonexistent/kustomize"));
}
END_TEST

START_TEST(test_render__memory_limit_stops_the_tool)
{
	source_files *fs = fixture("kustomize");
	render_tools t = tools();
	render_limits lim = { .max_memory = (size_t)32 << 20 };
	render_result res = { 0 };
	int rc = render_run(&res, fs, "overlays/prod", NULL, &t, &lim);
	ck_assert_int_eq(rc, PLUMB_EINVALID);
	ck_assert_msg(strstr(plumb_error_last(), "kustomize build overlays/prod: "), "%s", plumb_error_last());
	assert_tmp_empty();
	/* and a missing binary is named */
	t.kustomize = "/nonexistent/kustomize";
	refuse_tools = &t;
	refused(fs, "overlays/prod", NULL, NULL, PLUMB_ENOTFOUND, "/nonexistent/kustomize");
	refuse_tools = NULL;
	source_files_free(fs);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("render-integration");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_render__kustomize_overlays_equal_kustomize_build);
	tcase_add_test(tc, test_render__read_dir_refuses_symlinks_and_caps);
	tcase_add_test(tc, test_render__plain_runs_nothing);
	tcase_add_test(tc, test_render__kustomize_refusals);
	tcase_add_test(tc, test_render__thousand_objects);
	tcase_add_test(tc, test_render__output_over_the_cap_is_killed);
	tcase_add_test(tc, test_render__helm_capabilities_equal_helm_template);
	tcase_add_test(tc, test_render__helm_failures_are_clear);
	tcase_add_test(tc, test_render__timeout_kills_the_render);
	tcase_add_test(tc, test_render__timeout_kills_the_whole_group);
	tcase_add_test(tc, test_render__no_network);
	tcase_add_test(tc, test_render__child_sees_no_secret_of_ours);
	tcase_add_test(tc, test_render__child_limits_fds_and_group);
	tcase_add_test(tc, test_render__memory_limit_stops_the_tool);
	suite_add_tcase(s, tc);
	return test_run(s);
}
