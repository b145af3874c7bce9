/* Integration tests for pkg/apply against a real cluster of the test bed
 * ($PLUMB_TESTBED/clusters/$PLUMB_APPLY_CLUSTER, default c2, falling back to
 * c1 when the test bed has one cluster). Every test uses its own namespace
 * and GitSync name. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply/apply.h"
#include "base/base.h"
#include "kube/kube.h"

static char cdir[512];
static char uid[16];
static char ua[64];

static void setup(void)
{
	const char *tb = getenv("PLUMB_TESTBED");
	const char *cl = getenv("PLUMB_APPLY_CLUSTER");
	ck_assert_msg(tb != NULL, "PLUMB_TESTBED is not set");
	snprintf(cdir, sizeof(cdir), "%s/clusters/%s", tb, cl ? cl : "c2");
	if (!cl && access(cdir, F_OK) != 0)
		snprintf(cdir, sizeof(cdir), "%s/clusters/c1", tb);
	plumb_random_name(uid, 6);
	snprintf(ua, sizeof(ua), "plumb-apply-test-%s", uid);
	plumb_log_set_level(PLUMB_LOG_WARN);
}

static void teardown(void)
{
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static const char *kubectl(void)
{
	static char path[600];
	const char *bin = getenv("PLUMB_K8S_BIN");
	snprintf(path, sizeof(path), "%s/kubectl --kubeconfig %s/kubeconfig",
		bin ? bin : "/root/.cache/plumb/k8s-v1.36.3-etcd-v3.6.8/bin", cdir);
	return path;
}

static kube_client *client(void)
{
	kube_config *cfg = NULL;
	kube_client *c = NULL;
	kube_client_opts o = { .user_agent = ua, .qps = -1 };
	char path[600];
	snprintf(path, sizeof(path), "%s/kubeconfig", cdir);
	ck_assert_int_eq(kube_config_load_file(&cfg, path, NULL), 0);
	ck_assert_int_eq(kube_client_new(&c, cfg, &o), 0);
	kube_config_free(cfg);
	return c;
}

static cJSON *parse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static cJSON *parse(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	cJSON *v;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	v = cJSON_Parse(buf);
	ck_assert_msg(v != NULL, "bad JSON: %s", buf);
	return v;
}

static void add(cJSON *arr, cJSON *obj)
{
	cJSON_AddItemToArray(arr, obj);
}

static cJSON *ns_obj(const char *ns)
{
	return parse("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", ns);
}

static cJSON *cm_obj(const char *ns, const char *name, const char *k, const char *v)
{
	return parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},"
		"\"data\":{\"%s\":\"%s\"}}", name, ns, k, v);
}

static const kube_resource cm_res = { .group = "", .version = "v1", .kind = "ConfigMap",
	.resource = "configmaps", .namespaced = 1 };
static const kube_resource ns_res = { .group = "", .version = "v1", .kind = "Namespace",
	.resource = "namespaces", .namespaced = 0 };

/* data[k] of a live ConfigMap, or NULL when absent (caller frees). */
static char *cm_value(kube_client *c, const char *ns, const char *name, const char *k)
{
	cJSON *o = NULL;
	char *out = NULL;
	if (kube_get(&o, c, &cm_res, ns, name) == 0) {
		const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "data"), k);
		out = plumb_strdup(cJSON_IsString(v) ? v->valuestring : "");
	}
	cJSON_Delete(o);
	return out;
}

static int exists(kube_client *c, const kube_resource *res, const char *ns, const char *name)
{
	int err = kube_get(NULL, c, res, ns, name);
	ck_assert_msg(err == 0 || err == PLUMB_ENOTFOUND, "GET: %s", plumb_error_last());
	return err == 0;
}

static apply_object_result *find(apply_result *r, const char *kind, const char *name)
{
	for (size_t i = 0; i < r->count; i++)
		if (!strcmp(r->objects[i].kind, kind) && !strcmp(r->objects[i].name, name))
			return &r->objects[i];
	return NULL;
}

static apply_action action_of(apply_result *r, const char *kind, const char *name)
{
	apply_object_result *o = find(r, kind, name);
	ck_assert_msg(o != NULL, "no result for %s %s", kind, name);
	return o->action;
}

static void run(apply_result *r, apply_engine *e, cJSON *desired, const apply_opts *o)
{
	int err = apply_engine_run(r, e, desired, o);
	ck_assert_msg(err == 0, "apply run: %s", plumb_error_last());
	if (getenv("PLUMB_APPLY_TEST_DEBUG")) {
		char *text = NULL;
		if (apply_result_report(&text, r) == 0)
			fprintf(stderr, "%s(writes %zu)\n", text, r->writes);
		free(text);
	}
	for (size_t i = 0; i < r->count; i++)
		if (r->objects[i].action == APPLY_FAILED)
			fprintf(stderr, "failed %s %s: %s\n", r->objects[i].kind, r->objects[i].name,
				r->objects[i].message);
}

/* Write requests (create/update/patch/delete) our user agent sent, from the
 * apiserver's audit log: which = 0 all of them, 1 only real ones, 2 only
 * dryRun=All ones. */
static int audit_count(int which);
static int audit_writes(void)
{
	return audit_count(0);
}

static int audit_count(int which)
{
	char path[600], *line = NULL;
	size_t cap = 0;
	int n = 0;
	FILE *f;
	usleep(300 * 1000);
	snprintf(path, sizeof(path), "%s/audit.log", cdir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (getline(&line, &cap, f) > 0) {
		cJSON *ev;
		const cJSON *agent, *verb, *stage;
		if (!strstr(line, ua))
			continue;
		ev = cJSON_Parse(line);
		agent = cJSON_GetObjectItem(ev, "userAgent");
		verb = cJSON_GetObjectItem(ev, "verb");
		stage = cJSON_GetObjectItem(ev, "stage");
		const cJSON *uri = cJSON_GetObjectItem(ev, "requestURI");
		int dry = cJSON_IsString(uri) && strstr(uri->valuestring, "dryRun=All") != NULL;
		if (cJSON_IsString(agent) && !strcmp(agent->valuestring, ua) && cJSON_IsString(verb) &&
		    cJSON_IsString(stage) && !strcmp(stage->valuestring, "ResponseComplete") &&
		    (!strcmp(verb->valuestring, "create") || !strcmp(verb->valuestring, "update") ||
		     !strcmp(verb->valuestring, "patch") || !strcmp(verb->valuestring, "delete")) &&
		    (which == 0 || (which == 1 && !dry) || (which == 2 && dry)))
			n++;
		cJSON_Delete(ev);
	}
	free(line);
	fclose(f);
	return n;
}

/* Line number in the audit log of our first delete of resource/name; 0 if none. */
static long audit_delete_line(const char *resource, const char *name)
{
	char path[600], *line = NULL;
	size_t cap = 0;
	long no = 0, found = 0;
	FILE *f;
	snprintf(path, sizeof(path), "%s/audit.log", cdir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (!found && getline(&line, &cap, f) > 0) {
		cJSON *ev;
		no++;
		if (!strstr(line, ua) || !strstr(line, "\"delete\""))
			continue;
		ev = cJSON_Parse(line);
		const cJSON *ref = cJSON_GetObjectItem(ev, "objectRef");
		const cJSON *r = cJSON_GetObjectItem(ref, "resource"), *n = cJSON_GetObjectItem(ref, "name");
		if (cJSON_IsString(r) && cJSON_IsString(n) && !strcmp(r->valuestring, resource) &&
		    !strcmp(n->valuestring, name))
			found = no;
		cJSON_Delete(ev);
	}
	free(line);
	fclose(f);
	return found;
}

static apply_engine *engine(kube_client *c, const char *name)
{
	apply_engine *e = NULL;
	ck_assert_int_eq(apply_engine_new(&e, c, "plumb-tests", name), 0);
	return e;
}

START_TEST(test_apply__create_update_prune_and_labels)
{
	kube_client *c = client();
	char ns[64], gs[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray(), *live = NULL;
	char *v;

	snprintf(ns, sizeof(ns), "apply-basic-%s", uid);
	snprintf(gs, sizeof(gs), "basic-%s", uid);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "1"));
	add(d, cm_obj(ns, "b", "k", "2"));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 3);
	ck_assert_uint_eq(r.inventory_entries, 3);
	apply_result_free(&r);
	ck_assert_int_eq(kube_get(&live, c, &cm_res, ns, "a"), 0);
	{
		const cJSON *labels = cJSON_GetObjectItem(cJSON_GetObjectItem(live, "metadata"), "labels");
		const cJSON *ann = cJSON_GetObjectItem(cJSON_GetObjectItem(live, "metadata"), "annotations");
		char want[64];
		apply_gitsync_label(want, sizeof(want), "plumb-tests", gs);
		ck_assert_str_eq(cJSON_GetObjectItem(labels, "app.kubernetes.io/managed-by")->valuestring, "plumb");
		ck_assert_str_eq(cJSON_GetObjectItem(labels, "plumb.dev/gitsync")->valuestring, want);
		ck_assert_uint_eq(strlen(cJSON_GetObjectItem(ann, "plumb.dev/desired-hash")->valuestring), 64);
	}
	cJSON_Delete(live);

	/* update a, drop b */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "changed"));
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_UPDATED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "b"), APPLY_PRUNED);
	ck_assert_int_eq(action_of(&r, "Namespace", ns), APPLY_UNCHANGED);
	ck_assert_str_eq(find(&r, "ConfigMap", "a")->fields[0].path, "data.k");
	ck_assert_ptr_nonnull(strstr(find(&r, "ConfigMap", "a")->diff, "+  k: changed"));
	ck_assert_uint_eq(r.inventory_entries, 2);
	apply_result_free(&r);
	v = cm_value(c, ns, "a", "k");
	ck_assert_str_eq(v, "changed");
	free(v);
	ck_assert(!exists(c, &cm_res, ns, "b"));

	/* everything removed with allow_empty: the Namespace is deleted last */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	o.allow_empty = 1;
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_PRUNED);
	ck_assert_int_eq(action_of(&r, "Namespace", ns), APPLY_PRUNED);
	apply_result_free(&r);
	ck_assert_int_gt(audit_delete_line("namespaces", ns), audit_delete_line("configmaps", "a"));
	/* no kube-controller-manager in the test bed: the Namespace stays Terminating */
	ck_assert_int_eq(kube_get(&live, c, &ns_res, NULL, ns), 0);
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(live, "metadata"), "deletionTimestamp"));
	cJSON_Delete(live);
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

static cJSON *crd_obj(const char *group)
{
	return parse("{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
		"\"metadata\":{\"name\":\"widgets.%s\"},\"spec\":{\"group\":\"%s\",\"scope\":\"Namespaced\","
		"\"names\":{\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\",\"listKind\":\"WidgetList\"},"
		"\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"schema\":{\"openAPIV3Schema\":"
		"{\"type\":\"object\",\"properties\":{\"spec\":{\"type\":\"object\",\"properties\":"
		"{\"size\":{\"type\":\"integer\"}}}}}}}]}}", group, group);
}

static cJSON *widget_obj(const char *group, const char *ns, const char *name, int size)
{
	return parse("{\"apiVersion\":\"%s/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},"
		"\"spec\":{\"size\":%d}}", group, name, ns, size);
}

START_TEST(test_apply__crd_and_crs_in_one_pass_then_pruned_in_order)
{
	kube_client *c = client();
	char ns[64], gs[64], group[128], crd[160];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray();
	kube_resource crd_res;
	double t0;

	snprintf(ns, sizeof(ns), "apply-crd-%s", uid);
	snprintf(gs, sizeof(gs), "crd-%s", uid);
	snprintf(group, sizeof(group), "t%s.example.com", uid);
	snprintf(crd, sizeof(crd), "widgets.%s", group);
	e = engine(c, gs);
	/* given in an order that needs sorting: CR, Namespace, CRD */
	add(d, widget_obj(group, ns, "w1", 3));
	add(d, ns_obj(ns));
	add(d, crd_obj(group));
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "CustomResourceDefinition", crd), APPLY_CREATED);
	ck_assert_int_eq(action_of(&r, "Namespace", ns), APPLY_CREATED);
	ck_assert_int_eq(action_of(&r, "Widget", "w1"), APPLY_CREATED);
	apply_result_free(&r);
	{
		char av[160];
		snprintf(av, sizeof(av), "%s/v1", group);
		ck_assert_int_eq(kube_resolve(&crd_res, c, av, "Widget"), 0);
		ck_assert(exists(c, &crd_res, ns, "w1"));
	}

	/* second pass: nothing to do */
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 3);
	ck_assert_uint_eq(r.writes, 0);
	apply_result_free(&r);

	/* CRD and CR removed together */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "Widget", "w1"), APPLY_PRUNED);
	ck_assert_int_eq(action_of(&r, "CustomResourceDefinition", crd), APPLY_PRUNED);
	apply_result_free(&r);
	ck_assert_int_gt(audit_delete_line("widgets", "w1"), 0);
	ck_assert_int_gt(audit_delete_line("customresourcedefinitions", crd),
		audit_delete_line("widgets", "w1"));
	ck_assert_int_eq(kube_resolve_preferred(&crd_res, c, "apiextensions.k8s.io", "CustomResourceDefinition"), 0);
	t0 = plumb_time_mono();
	while (exists(c, &crd_res, NULL, crd) && plumb_time_mono() - t0 < 30)
		plumb_sleep(0.2);
	ck_assert(!exists(c, &crd_res, NULL, crd));

	/* a CRD the server refuses: nothing of the revision is written */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	add(d, parse("{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
		"\"metadata\":{\"name\":\"gadgets.%s\"},\"spec\":{\"group\":\"%s\",\"scope\":\"Namespaced\","
		"\"names\":{\"plural\":\"gadgets\",\"kind\":\"Gadget\"},\"versions\":[]}}", group, group));
	add(d, parse("{\"apiVersion\":\"%s/v1\",\"kind\":\"Gadget\",\"metadata\":{\"name\":\"g\",\"namespace\":\"%s\"}}",
		group, ns));
	add(d, cm_obj(ns, "independent", "k", "v"));
	run(&r, e, d, &o);
	ck_assert_int_eq(r.totals[APPLY_FAILED], 1);
	ck_assert_uint_eq(r.invalid, 1);
	snprintf(crd, sizeof(crd), "gadgets.%s", group);
	ck_assert_int_eq(action_of(&r, "CustomResourceDefinition", crd), APPLY_FAILED);
	ck_assert_ptr_nonnull(strstr(find(&r, "CustomResourceDefinition", crd)->message, "storage version"));
	ck_assert_int_eq(action_of(&r, "Gadget", "g"), APPLY_SKIPPED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "independent"), APPLY_SKIPPED);
	ck_assert_uint_eq(r.writes, r.dry_runs);
	apply_result_free(&r);
	ck_assert(!exists(c, &cm_res, ns, "independent"));

	/* the same revision planned: what the refused CRD defines is skipped,
	 * naming it; the rest is planned as usual */
	o.dry_run = 1;
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "CustomResourceDefinition", crd), APPLY_FAILED);
	ck_assert_int_eq(action_of(&r, "Gadget", "g"), APPLY_SKIPPED);
	ck_assert_ptr_nonnull(strstr(find(&r, "Gadget", "g")->message, crd));
	ck_assert_ptr_nonnull(strstr(find(&r, "Gadget", "g")->message, "failed"));
	ck_assert_int_eq(action_of(&r, "ConfigMap", "independent"), APPLY_CREATED);
	apply_result_free(&r);
	ck_assert(!exists(c, &cm_res, ns, "independent"));
	o.dry_run = 0;
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST


static cJSON *secret_obj(const char *ns, const char *name, const char *key, const char *value)
{
	return parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},"
		"\"stringData\":{\"%s\":\"%s\"},\"data\":{\"%s\":\"b2xk\",\"other\":\"b3RoZXI=\"}}", name, ns, key, value, key);
}

static const kube_resource secret_res = { .group = "", .version = "v1", .kind = "Secret",
	.resource = "secrets", .namespaced = 1 };

/* A revision with a kind the cluster does not serve changes nothing: the
 * changed ConfigMap keeps its value, the removed one is not pruned, the
 * message names the file and line; the fixed revision applies and prunes. */
START_TEST(test_apply__unknown_kind_writes_nothing)
{
	kube_client *c = client();
	char ns[64], gs[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	const char *origins[] = { "deploy/ns.yaml:1", "deploy/cm.yaml:1", "deploy/typo.yaml:4" };
	cJSON *d = cJSON_CreateArray();
	int real, dry;
	char *v;

	snprintf(ns, sizeof(ns), "apply-unknown-%s", uid);
	snprintf(gs, sizeof(gs), "unknown-%s", uid);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "1"));
	add(d, cm_obj(ns, "b", "k", "2"));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 3);
	apply_result_free(&r);

	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "changed"));
	add(d, parse("{\"apiVersion\":\"typo.example.com/v1\",\"kind\":\"Widgit\",\"metadata\":"
		"{\"name\":\"w\",\"namespace\":\"%s\"}}", ns));
	o.origins = origins;
	o.norigins = 3;
	real = audit_count(1);
	dry = audit_count(2);
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.invalid, 1);
	ck_assert_int_eq(action_of(&r, "Widgit", "w"), APPLY_FAILED);
	ck_assert_str_eq(find(&r, "Widgit", "w")->origin, "deploy/typo.yaml:4");
	ck_assert_ptr_nonnull(strstr(find(&r, "Widgit", "w")->message, "unknown kind typo.example.com/v1 Widgit"));
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_SKIPPED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "b"), APPLY_SKIPPED);
	ck_assert_ptr_nonnull(strstr(find(&r, "ConfigMap", "b")->message, "not pruned"));
	ck_assert_uint_eq(r.writes, r.dry_runs);
	apply_result_free(&r);
	/* in the cluster: nothing moved, and the audit log saw dry runs only */
	ck_assert_int_eq(audit_count(1), real);
	ck_assert_int_gt(audit_count(2), dry);
	v = cm_value(c, ns, "a", "k");
	ck_assert_str_eq(v, "1");
	free(v);
	ck_assert(exists(c, &cm_res, ns, "b"));

	/* the fix goes in whole */
	cJSON_DeleteItemFromArray(d, 2);
	o.norigins = 2;
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.invalid, 0);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_UPDATED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "b"), APPLY_PRUNED);
	apply_result_free(&r);
	v = cm_value(c, ns, "a", "k");
	ck_assert_str_eq(v, "changed");
	free(v);
	ck_assert(!exists(c, &cm_res, ns, "b"));
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

/* The server judges what discovery cannot: a custom resource against its
 * CRD's schema (an existing CRD, and one the same revision creates), and a
 * namespace that neither exists nor comes with the revision. */
START_TEST(test_apply__server_validation_refuses_the_revision)
{
	kube_client *c = client();
	char ns[64], gs[64], group[128], group2[128], ghost[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray();
	int real;
	char *v;

	snprintf(ns, sizeof(ns), "apply-schema-%s", uid);
	snprintf(gs, sizeof(gs), "schema-%s", uid);
	snprintf(group, sizeof(group), "s%s.example.com", uid);
	snprintf(group2, sizeof(group2), "n%s.example.com", uid);
	snprintf(ghost, sizeof(ghost), "ghost-%s", uid);
	e = engine(c, gs);
	add(d, crd_obj(group));
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "1"));
	add(d, widget_obj(group, ns, "w1", 1));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 4);
	apply_result_free(&r);

	/* spec.size must be an integer */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, crd_obj(group));
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "2"));
	add(d, parse("{\"apiVersion\":\"%s/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w1\",\"namespace\":\"%s\"},"
		"\"spec\":{\"size\":\"huge\"}}", group, ns));
	real = audit_count(1);
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.invalid, 1);
	ck_assert_int_eq(action_of(&r, "Widget", "w1"), APPLY_FAILED);
	ck_assert_ptr_nonnull(strstr(find(&r, "Widget", "w1")->message, "spec.size"));
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_SKIPPED);
	apply_result_free(&r);
	ck_assert_int_eq(audit_count(1), real);
	v = cm_value(c, ns, "a", "k");
	ck_assert_str_eq(v, "1");
	free(v);

	/* a namespace that does not exist and is not in the revision */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, crd_obj(group));
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "2"));
	add(d, widget_obj(group, ns, "w1", 1));
	add(d, cm_obj(ghost, "lost", "k", "v"));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.invalid, 1);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "lost"), APPLY_FAILED);
	ck_assert_ptr_nonnull(strstr(find(&r, "ConfigMap", "lost")->message, ghost));
	apply_result_free(&r);
	ck_assert_int_eq(audit_count(1), real);

	/* a new CRD with a bad CR, and a new Namespace: the CRD and Namespace go
	 * in first (the server cannot judge what depends on them before), the CR
	 * is refused, nothing else is written */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, crd_obj(group));
	add(d, crd_obj(group2));
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "2"));
	add(d, widget_obj(group, ns, "w1", 1));
	add(d, parse("{\"apiVersion\":\"%s/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w2\",\"namespace\":\"%s\"},"
		"\"spec\":{\"size\":\"huge\"}}", group2, ns));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.invalid, 1);
	{
		char crd2[160];
		snprintf(crd2, sizeof(crd2), "widgets.%s", group2);
		ck_assert_int_eq(action_of(&r, "CustomResourceDefinition", crd2), APPLY_CREATED);
	}
	ck_assert_int_eq(action_of(&r, "Widget", "w2"), APPLY_FAILED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_SKIPPED);
	apply_result_free(&r);
	v = cm_value(c, ns, "a", "k");
	ck_assert_str_eq(v, "1");
	free(v);

	/* fixed: everything goes in */
	cJSON_DeleteItemFromArray(d, 5);
	add(d, parse("{\"apiVersion\":\"%s/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w2\",\"namespace\":\"%s\"},"
		"\"spec\":{\"size\":2}}", group2, ns));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.invalid, 0);
	ck_assert_int_eq(action_of(&r, "Widget", "w2"), APPLY_CREATED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_UPDATED);
	apply_result_free(&r);
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

/* Validation passes but a write is refused (a policy that lets dry runs
 * through): the run stops there and prunes nothing; once the write can go
 * in, the next run continues and prunes. */
START_TEST(test_apply__failed_write_stops_and_prunes_nothing)
{
	kube_client *c = client();
	char ns[64], gs[64], blocked[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1, .parallel = 1 };
	cJSON *d = cJSON_CreateArray();
	char *v;

	snprintf(ns, sizeof(ns), "apply-stop-%s", uid);
	snprintf(gs, sizeof(gs), "stop-%s", uid);
	snprintf(blocked, sizeof(blocked), "blocked-%s", uid);
	ck_assert_int_eq(sh("%s apply -f - >/dev/null <<'EOF'\n"
		"apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n"
		"metadata: {name: plumb-test-%s}\nspec:\n  failurePolicy: Fail\n"
		"  matchConstraints:\n    resourceRules:\n    - {apiGroups: [\"\"], apiVersions: [v1], "
		"operations: [CREATE, UPDATE], resources: [configmaps]}\n"
		"  validations:\n  - expression: \"request.dryRun == true || object.metadata.name != '%s'\"\n"
		"    message: writes of %s are refused\n---\n"
		"apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n"
		"metadata: {name: plumb-test-%s}\nspec: {policyName: plumb-test-%s, validationActions: [Deny]}\nEOF",
		kubectl(), uid, blocked, blocked, uid, uid), 0);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "1"));
	add(d, cm_obj(ns, "old", "k", "1"));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 3);
	apply_result_free(&r);

	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, blocked, "k", "1"));
	add(d, cm_obj(ns, "a", "k", "2"));
	/* the policy takes a moment to be enforced: probe it with kubectl */
	for (int i = 0; i < 100; i++) {
		if (sh("%s -n default create configmap %s >/dev/null 2>&1", kubectl(), blocked) != 0)
			break;
		sh("%s -n default delete configmap %s >/dev/null 2>&1", kubectl(), blocked);
		plumb_sleep(0.2);
	}
	run(&r, e, d, &o);
	ck_assert_int_eq(r.stopped, 1);
	ck_assert_uint_eq(r.invalid, 0);
	ck_assert_int_eq(action_of(&r, "ConfigMap", blocked), APPLY_FAILED);
	ck_assert_ptr_nonnull(strstr(find(&r, "ConfigMap", blocked)->message, "are refused"));
	/* parallel = 1: "a" comes after the refused one and is not sent */
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_SKIPPED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "old"), APPLY_SKIPPED);
	ck_assert_ptr_nonnull(strstr(r.message, "nothing pruned"));
	apply_result_free(&r);
	ck_assert(exists(c, &cm_res, ns, "old"));
	v = cm_value(c, ns, "a", "k");
	ck_assert_str_eq(v, "1");
	free(v);

	ck_assert_int_eq(sh("%s delete validatingadmissionpolicybinding plumb-test-%s >/dev/null && "
		"%s delete validatingadmissionpolicy plumb-test-%s >/dev/null", kubectl(), uid, kubectl(), uid), 0);
	for (int i = 0; i < 50; i++) {
		run(&r, e, d, &o);
		if (!r.stopped)
			break;
		apply_result_free(&r);
		plumb_sleep(0.2);
	}
	ck_assert_int_eq(r.stopped, 0);
	ck_assert_int_eq(action_of(&r, "ConfigMap", blocked), APPLY_CREATED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "old"), APPLY_PRUNED);
	apply_result_free(&r);
	ck_assert(!exists(c, &cm_res, ns, "old"));
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

/* stringData is what the server turns into data: plumb applies data, so a
 * tampered value is seen and corrected like any other field, and no value
 * reaches a diff. */
START_TEST(test_apply__secret_string_data_is_owned_as_data)
{
	kube_client *c = client();
	char ns[64], gs[64], value[64], *b64 = NULL, *text = NULL;
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray(), *live = NULL;
	int before;

	snprintf(ns, sizeof(ns), "apply-secret-%s", uid);
	snprintf(gs, sizeof(gs), "secret-%s", uid);
	snprintf(value, sizeof(value), "hunter2-%s", uid);
	ck_assert_int_eq(plumb_base64_encode(&b64, value, strlen(value)), 0);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	add(d, secret_obj(ns, "creds", "password", value));
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "Secret", "creds"), APPLY_CREATED);
	apply_result_free(&r);
	ck_assert_int_eq(kube_get(&live, c, &secret_res, ns, "creds"), 0);
	{
		const cJSON *data = cJSON_GetObjectItem(live, "data");
		/* stringData wins over data for the same key, as on the server */
		ck_assert_str_eq(cJSON_GetObjectItem(data, "password")->valuestring, b64);
		ck_assert_str_eq(cJSON_GetObjectItem(data, "other")->valuestring, "b3RoZXI=");
		ck_assert_ptr_null(cJSON_GetObjectItem(live, "stringData"));
	}
	cJSON_Delete(live);

	/* steady state: nothing to write, nothing to dry-run */
	before = audit_writes();
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 2);
	ck_assert_uint_eq(r.writes, 0);
	apply_result_free(&r);
	ck_assert_int_eq(audit_writes(), before);

	/* tampered: corrected, reported by path only */
	ck_assert_int_eq(sh("%s -n %s patch secret creds --type merge -p '{\"data\":{\"password\":\"dGFtcGVyZWQ=\"}}' >/dev/null",
		kubectl(), ns), 0);
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "Secret", "creds"), APPLY_CORRECTED);
	ck_assert_str_eq(find(&r, "Secret", "creds")->fields[0].path, "data.password");
	apply_result_free(&r);
	ck_assert_int_eq(kube_get(&live, c, &secret_res, ns, "creds"), 0);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(live, "data"), "password")->valuestring, b64);
	cJSON_Delete(live);

	/* a plan that changes the value shows neither value */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	add(d, secret_obj(ns, "creds", "password", "next-value-xyz"));
	o.dry_run = 1;
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "Secret", "creds"), APPLY_UPDATED);
	ck_assert_int_eq(apply_result_report(&text, &r), 0);
	ck_assert_ptr_nonnull(strstr(text, "*** (before)"));
	ck_assert_ptr_nonnull(strstr(text, "*** (after)"));
	ck_assert_ptr_null(strstr(text, value));
	ck_assert_ptr_null(strstr(text, b64));
	ck_assert_ptr_null(strstr(text, "next-value-xyz"));
	ck_assert_ptr_null(strstr(text, "bmV4dC12YWx1ZS14eXo"));
	ck_assert_ptr_null(strstr(text, "b3RoZXI"));
	free(text);
	apply_result_free(&r);
	free(b64);
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

START_TEST(test_apply__prune_disabled_is_kept)
{
	kube_client *c = client();
	char ns[64], gs[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray(), *keep;

	snprintf(ns, sizeof(ns), "apply-keep-%s", uid);
	snprintf(gs, sizeof(gs), "keep-%s", uid);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	keep = cm_obj(ns, "keep", "k", "v");
	cJSON_AddItemToObject(cJSON_GetObjectItem(keep, "metadata"), "annotations",
		parse("{\"plumb.dev/prune\":\"disabled\"}"));
	add(d, keep);
	add(d, cm_obj(ns, "go", "k", "v"));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 3);
	apply_result_free(&r);
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "keep"), APPLY_SKIPPED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "go"), APPLY_PRUNED);
	ck_assert_uint_eq(r.inventory_entries, 1);
	apply_result_free(&r);
	ck_assert(exists(c, &cm_res, ns, "keep"));
	ck_assert(!exists(c, &cm_res, ns, "go"));
	/* dropped from the inventory: not considered again */
	run(&r, e, d, &o);
	ck_assert_ptr_null(find(&r, "ConfigMap", "keep"));
	ck_assert_uint_eq(r.writes, 0);
	apply_result_free(&r);
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

START_TEST(test_apply__unmanaged_object_is_a_conflict)
{
	kube_client *c = client();
	char ns[64], gs[64], gs2[64];
	apply_engine *e, *e2;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray();
	char *v;

	snprintf(ns, sizeof(ns), "apply-conflict-%s", uid);
	snprintf(gs, sizeof(gs), "conflict-%s", uid);
	snprintf(gs2, sizeof(gs2), "other-%s", uid);
	ck_assert_int_eq(sh("%s create namespace %s >/dev/null && %s -n %s create configmap theirs "
		"--from-literal=k=theirs >/dev/null", kubectl(), ns, kubectl(), ns), 0);
	e = engine(c, gs);
	add(d, ns_obj(ns));   /* made by kubectl: a conflict, yet what lives in it goes in */
	add(d, cm_obj(ns, "theirs", "k", "ours"));
	add(d, cm_obj(ns, "mine", "k", "v"));
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "Namespace", ns), APPLY_CONFLICT);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "mine"), APPLY_CREATED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "theirs"), APPLY_CONFLICT);
	ck_assert_ptr_nonnull(strstr(find(&r, "ConfigMap", "theirs")->message, "kubectl-create"));
	ck_assert_uint_eq(r.inventory_entries, 1);   /* only "mine" */
	apply_result_free(&r);
	v = cm_value(c, ns, "theirs", "k");
	ck_assert_str_eq(v, "theirs");
	free(v);

	/* owned by another GitSync */
	e2 = engine(c, gs2);
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, cm_obj(ns, "shared", "k", "first"));
	run(&r, e2, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "shared"), APPLY_CREATED);
	apply_result_free(&r);
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, cm_obj(ns, "shared", "k", "second"));
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "shared"), APPLY_CONFLICT);
	ck_assert_ptr_nonnull(strstr(find(&r, "ConfigMap", "shared")->message, gs2));
	apply_result_free(&r);
	v = cm_value(c, ns, "shared", "k");
	ck_assert_str_eq(v, "first");
	free(v);

	/* adoption takes the unmanaged one over */
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, cm_obj(ns, "theirs", "k", "ours"));
	o.adopt = 1;
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "theirs"), APPLY_UPDATED);
	apply_result_free(&r);
	v = cm_value(c, ns, "theirs", "k");
	ck_assert_str_eq(v, "ours");
	free(v);
	cJSON_Delete(d);
	apply_engine_free(e);
	apply_engine_free(e2);
	kube_client_free(c);
}
END_TEST

START_TEST(test_apply__drift_detected_reported_and_corrected)
{
	kube_client *c = client();
	char ns[64], gs[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1, .drift = APPLY_DRIFT_REPORT };
	cJSON *d = cJSON_CreateArray();
	apply_object_result *res;
	char *v;
	int before;

	snprintf(ns, sizeof(ns), "apply-drift-%s", uid);
	snprintf(gs, sizeof(gs), "drift-%s", uid);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	add(d, parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"app\",\"namespace\":\"%s\"},"
		"\"data\":{\"LOG_LEVEL\":\"info\",\"OTHER\":\"x\"}}", ns));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 2);
	apply_result_free(&r);

	/* an out-of-band edit by another user/manager */
	ck_assert_int_eq(sh("%s -n %s patch configmap app --type merge -p '{\"data\":{\"LOG_LEVEL\":\"debug\"}}' "
		">/dev/null", kubectl(), ns), 0);
	before = audit_writes();
	run(&r, e, d, &o);
	res = find(&r, "ConfigMap", "app");
	ck_assert_int_eq(res->action, APPLY_DRIFTED);
	ck_assert_uint_eq(res->nfields, 1);
	ck_assert_str_eq(res->fields[0].path, "data.LOG_LEVEL");
	ck_assert_str_eq(res->fields[0].manager, "kubectl-patch");
	ck_assert_ptr_nonnull(strstr(res->diff, "-  LOG_LEVEL: debug"));
	ck_assert_ptr_nonnull(strstr(res->diff, "+  LOG_LEVEL: info"));
	ck_assert_uint_eq(r.writes, 0);
	apply_result_free(&r);
	ck_assert_int_eq(audit_writes(), before);
	v = cm_value(c, ns, "app", "LOG_LEVEL");
	ck_assert_str_eq(v, "debug");
	free(v);

	/* a new engine (restart) sees the same drift */
	apply_engine_free(e);
	e = engine(c, gs);
	run(&r, e, d, &o);
	res = find(&r, "ConfigMap", "app");
	ck_assert_int_eq(res->action, APPLY_DRIFTED);
	ck_assert_str_eq(res->fields[0].path, "data.LOG_LEVEL");
	ck_assert_str_eq(res->fields[0].manager, "kubectl-patch");
	apply_result_free(&r);

	/* Correct re-applies only the drifted object */
	o.drift = APPLY_DRIFT_CORRECT;
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "app"), APPLY_CORRECTED);
	ck_assert_int_eq(action_of(&r, "Namespace", ns), APPLY_UNCHANGED);
	ck_assert_uint_eq(r.writes, 1);
	apply_result_free(&r);
	v = cm_value(c, ns, "app", "LOG_LEVEL");
	ck_assert_str_eq(v, "info");
	free(v);

	/* steady again, also for a brand-new engine */
	before = audit_writes();
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 2);
	apply_result_free(&r);
	apply_engine_free(e);
	e = engine(c, gs);
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 2);
	apply_result_free(&r);
	ck_assert_int_eq(audit_writes(), before);

	/* a removed key is drift too, attributed to the editor */
	ck_assert_int_eq(sh("%s -n %s patch configmap app --type json -p '[{\"op\":\"remove\",\"path\":\"/data/OTHER\"}]' "
		">/dev/null", kubectl(), ns), 0);
	o.drift = APPLY_DRIFT_REPORT;
	run(&r, e, d, &o);
	res = find(&r, "ConfigMap", "app");
	ck_assert_int_eq(res->action, APPLY_DRIFTED);
	ck_assert_str_eq(res->fields[0].path, "data.OTHER");
	/* a removal leaves no managedFields entry behind: the editor is unknown */
	ck_assert_str_eq(res->fields[0].manager, "");
	apply_result_free(&r);
	apply_engine_free(e);
	e = engine(c, gs);
	run(&r, e, d, &o);
	res = find(&r, "ConfigMap", "app");
	ck_assert_int_eq(res->action, APPLY_DRIFTED);
	ck_assert_str_eq(res->fields[0].path, "data.OTHER");
	apply_result_free(&r);
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

START_TEST(test_apply__inventory_survives_a_new_engine)
{
	kube_client *c = client();
	char ns[64], gs[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray();

	snprintf(ns, sizeof(ns), "apply-inv-%s", uid);
	snprintf(gs, sizeof(gs), "inv-%s", uid);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "stay", "k", "v"));
	add(d, cm_obj(ns, "old", "k", "v"));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 3);
	apply_result_free(&r);
	apply_engine_free(e);
	kube_client_free(c);

	/* all in-memory state gone: new client, new engine */
	c = client();
	e = engine(c, gs);
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "stay", "k", "v"));
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "old"), APPLY_PRUNED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "stay"), APPLY_UNCHANGED);
	apply_result_free(&r);
	ck_assert(!exists(c, &cm_res, ns, "old"));
	ck_assert(exists(c, &cm_res, ns, "stay"));
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

START_TEST(test_apply__empty_desired_prunes_nothing_without_allow_empty)
{
	kube_client *c = client();
	char ns[64], gs[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray(), *empty = cJSON_CreateArray();

	snprintf(ns, sizeof(ns), "apply-empty-%s", uid);
	snprintf(gs, sizeof(gs), "empty-%s", uid);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "v"));
	run(&r, e, d, &o);
	apply_result_free(&r);
	run(&r, e, empty, &o);
	ck_assert_uint_eq(r.totals[APPLY_PRUNED], 0);
	ck_assert_uint_eq(r.totals[APPLY_SKIPPED], 2);
	ck_assert_ptr_nonnull(r.message);
	ck_assert_uint_eq(r.writes, 0);
	ck_assert_uint_eq(r.inventory_entries, 2);
	apply_result_free(&r);
	ck_assert(exists(c, &cm_res, ns, "a"));
	o.allow_empty = 1;
	run(&r, e, empty, &o);
	ck_assert_uint_eq(r.totals[APPLY_PRUNED], 2);
	apply_result_free(&r);
	ck_assert(!exists(c, &cm_res, ns, "a"));
	cJSON_Delete(d);
	cJSON_Delete(empty);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

static int reads, writes_seen;
static void count_hook(void *data, const char *cluster, const char *verb, int code, double seconds)
{
	(void)data, (void)cluster, (void)code, (void)seconds;
	if (!strcmp(verb, "get") || !strcmp(verb, "list"))
		__atomic_add_fetch(&reads, 1, __ATOMIC_SEQ_CST);
	else
		__atomic_add_fetch(&writes_seen, 1, __ATOMIC_SEQ_CST);
}

/* A client whose requests count_hook() counts. */
static kube_client *counted_client(void)
{
	kube_config *cfg = NULL;
	kube_client *c = NULL;
	kube_client_opts co = { .user_agent = ua, .qps = -1, .on_request = count_hook };
	char path[600];
	snprintf(path, sizeof(path), "%s/kubeconfig", cdir);
	ck_assert_int_eq(kube_config_load_file(&cfg, path, NULL), 0);
	ck_assert_int_eq(kube_client_new(&c, cfg, &co), 0);
	kube_config_free(cfg);
	return c;
}

START_TEST(test_apply__noop_sends_zero_writes)
{
	kube_client *c = client(), *counted;
	char ns[64], gs[64], name[32];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray();
	int before;

	snprintf(ns, sizeof(ns), "apply-noop-%s", uid);
	snprintf(gs, sizeof(gs), "noop-%s", uid);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "cm-%02d", i);
		add(d, cm_obj(ns, name, "k", name));
	}
	add(d, parse("{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"RoleBinding\",\"metadata\":"
		"{\"name\":\"rb\",\"namespace\":\"%s\"},\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\","
		"\"kind\":\"ClusterRole\",\"name\":\"view\"},\"subjects\":[]}", ns));
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 52);
	apply_result_free(&r);

	before = audit_writes();
	/* the audit log does see this client's writes: 52 objects + the inventory */
	ck_assert_int_ge(before, 53);
	/* same engine */
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 52);
	ck_assert_uint_eq(r.writes, 0);
	apply_result_free(&r);
	/* a new engine on a new client: reads only, few of them */
	apply_engine_free(e);
	counted = counted_client();
	e = engine(counted, gs);
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 52);
	ck_assert_uint_eq(r.writes, 0);
	apply_result_free(&r);
	reads = 0;
	writes_seen = 0;
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 52);
	apply_result_free(&r);
	ck_assert_int_eq(writes_seen, 0);
	/* inventory head + one LIST per kind (Namespace, ConfigMap, RoleBinding) */
	ck_assert_int_le(reads, 4);
	ck_assert_int_eq(audit_writes(), before);
	/* a commit that changes one object: one dry run, one apply */
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 7), "metadata"), "name")->valuestring,
		"cm-06");
	ck_assert(cJSON_ReplaceItemInArray(d, 7, cm_obj(ns, "cm-06", "k", "changed")));
	before = audit_count(2);
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "cm-06"), APPLY_UPDATED);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 51);
	ck_assert_uint_eq(r.dry_runs, 1);
	ck_assert_uint_eq(r.writes, 2);
	apply_result_free(&r);
	ck_assert_int_eq(audit_count(2), before + 1);
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(counted);
	kube_client_free(c);
}
END_TEST

/* A stand-in for the controller's watch cache: what a LIST says of each
 * object, metadata only (the engine gets no whole object from it). */
static cJSON *snapshot;
static int snapshot_live(apply_live_info *info, void *data, const kube_resource *res,
	const char *ns, const char *name)
{
	const cJSON *it;
	(void)data;
	if (strcmp(res->kind, "ConfigMap") && strcmp(res->kind, "ResourceQuota"))
		return -1;
	cJSON_ArrayForEach(it, snapshot) {
		const cJSON *m = cJSON_GetObjectItem(it, "metadata");
		if (!strcmp(cJSON_GetObjectItem(it, "kind")->valuestring, res->kind) &&
		    !strcmp(cJSON_GetObjectItem(m, "name")->valuestring, name) &&
		    !strcmp(cJSON_GetObjectItem(m, "namespace")->valuestring, ns)) {
			apply_live_info_of(info, it);
			return 1;
		}
	}
	return 0;
}

static void take_snapshot(kube_client *c, const char *ns)
{
	static const kube_resource rq_res = { .group = "", .version = "v1", .kind = "ResourceQuota",
		.resource = "resourcequotas", .namespaced = 1 };
	const kube_resource *kinds[] = { &cm_res, &rq_res };
	cJSON_Delete(snapshot);
	snapshot = cJSON_CreateArray();
	for (size_t k = 0; k < 2; k++) {
		cJSON *list = NULL, *it;
		ck_assert_int_eq(kube_list(&list, c, kinds[k], ns, NULL), 0);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(list, "items")) {
			cJSON *o = cJSON_Duplicate(it, 1);
			cJSON_AddStringToObject(o, "kind", kinds[k]->kind);
			cJSON_AddItemToArray(snapshot, o);
		}
		cJSON_Delete(list);
	}
}

static const char *snapshot_rv(const char *name)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, snapshot) {
		const cJSON *m = cJSON_GetObjectItem(it, "metadata");
		if (!strcmp(cJSON_GetObjectItem(m, "name")->valuestring, name))
			return cJSON_GetObjectItem(m, "resourceVersion")->valuestring;
	}
	return "";
}

/* The engine remembers versions and hashes, not objects: an object still at
 * the version it applied is not read at all; one that moved is read (one
 * GET) and compared; and P, when the server changed what plumb sent (a
 * quantity written "1000m" is stored as "1"), is kept so that a drift is
 * reported without a dry run and without a false drift on that field. */
START_TEST(test_apply__remembers_versions_not_objects)
{
	kube_client *counted = counted_client();
	char ns[64], gs[64], name[32];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1, .drift = APPLY_DRIFT_REPORT, .live = snapshot_live };
	cJSON *d = cJSON_CreateArray();
	apply_object_result *res;

	snprintf(ns, sizeof(ns), "apply-mem-%s", uid);
	snprintf(gs, sizeof(gs), "mem-%s", uid);
	ck_assert_int_eq(sh("%s create namespace %s >/dev/null", kubectl(), ns), 0);
	e = engine(counted, gs);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "cm-%02d", i);
		add(d, cm_obj(ns, name, "k", name));
	}
	add(d, parse("{\"apiVersion\":\"v1\",\"kind\":\"ResourceQuota\",\"metadata\":{\"name\":\"rq\","
		"\"namespace\":\"%s\",\"labels\":{\"team\":\"a\"}},\"spec\":{\"hard\":{\"cpu\":\"1000m\"}}}", ns));
	take_snapshot(counted, ns);
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CREATED], 21);
	apply_result_free(&r);
	take_snapshot(counted, ns);
	ck_assert_int_eq(apply_engine_verified(e, &cm_res, ns, "cm-03", snapshot_rv("cm-03")), 1);
	ck_assert_int_eq(apply_engine_verified(e, &cm_res, ns, "cm-03", "1"), 0);
	ck_assert_int_eq(apply_engine_tracks(e, &cm_res, ns, "cm-03"), 1);
	ck_assert_int_eq(apply_engine_tracks(e, &cm_res, ns, "cm-99"), 0);

	/* nothing moved: the inventory head is the only read, nothing written */
	reads = writes_seen = 0;
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 21);
	apply_result_free(&r);
	ck_assert_int_eq(reads, 1);
	ck_assert_int_eq(writes_seen, 0);

	/* another manager edits one ConfigMap and the quota's label */
	ck_assert_int_eq(sh("%s -n %s patch configmap cm-03 --type merge -p '{\"data\":{\"k\":\"edited\"}}' "
		">/dev/null && %s -n %s label resourcequota rq team=b --overwrite >/dev/null",
		kubectl(), ns, kubectl(), ns), 0);
	take_snapshot(counted, ns);
	reads = writes_seen = 0;
	run(&r, e, d, &o);
	res = find(&r, "ConfigMap", "cm-03");
	ck_assert_int_eq(res->action, APPLY_DRIFTED);
	ck_assert_uint_eq(res->nfields, 1);
	ck_assert_str_eq(res->fields[0].path, "data.k");
	res = find(&r, "ResourceQuota", "rq");
	ck_assert_int_eq(res->action, APPLY_DRIFTED);
	ck_assert_uint_eq(res->nfields, 1);   /* the label; not spec.hard.cpu */
	ck_assert_str_eq(res->fields[0].path, "metadata.labels.team");
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 19);
	ck_assert_uint_eq(r.writes, 0);
	apply_result_free(&r);
	ck_assert_int_eq(writes_seen, 0);     /* no dry run: P was remembered */
	ck_assert_int_eq(reads, 3);           /* the head and the two that moved */
	/* a drifted object is not "verified": its events still count */
	ck_assert_int_eq(apply_engine_verified(e, &cm_res, ns, "cm-03", snapshot_rv("cm-03")), 0);

	/* corrected: the versions after the applies are verified again */
	o.drift = APPLY_DRIFT_CORRECT;
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_CORRECTED], 2);
	apply_result_free(&r);
	take_snapshot(counted, ns);
	ck_assert_int_eq(apply_engine_verified(e, &cm_res, ns, "cm-03", snapshot_rv("cm-03")), 1);
	reads = writes_seen = 0;
	run(&r, e, d, &o);
	ck_assert_uint_eq(r.totals[APPLY_UNCHANGED], 21);
	apply_result_free(&r);
	ck_assert_int_eq(reads, 1);
	ck_assert_int_eq(writes_seen, 0);

	/* dropped from the desired set: pruned and forgotten */
	cJSON_DeleteItemFromArray(d, 0);
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "cm-00"), APPLY_PRUNED);
	apply_result_free(&r);
	ck_assert_int_eq(apply_engine_tracks(e, &cm_res, ns, "cm-00"), 0);

	cJSON_Delete(snapshot);
	snapshot = NULL;
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(counted);
}
END_TEST

START_TEST(test_apply__dry_run_plans_without_writing)
{
	kube_client *c = client();
	char ns[64], gs[64];
	apply_engine *e;
	apply_result r;
	apply_opts o = { .prune = 1 };
	cJSON *d = cJSON_CreateArray();
	char *v, *text = NULL;

	snprintf(ns, sizeof(ns), "apply-plan-%s", uid);
	snprintf(gs, sizeof(gs), "plan-%s", uid);
	e = engine(c, gs);
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "old"));
	add(d, cm_obj(ns, "b", "k", "v"));
	run(&r, e, d, &o);
	apply_result_free(&r);
	cJSON_Delete(d);
	d = cJSON_CreateArray();
	add(d, ns_obj(ns));
	add(d, cm_obj(ns, "a", "k", "new"));
	add(d, cm_obj(ns, "c", "k", "v"));
	o.dry_run = 1;
	run(&r, e, d, &o);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "a"), APPLY_UPDATED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "b"), APPLY_PRUNED);
	ck_assert_int_eq(action_of(&r, "ConfigMap", "c"), APPLY_CREATED);
	ck_assert_int_eq(apply_result_report(&text, &r), 0);
	ck_assert_ptr_nonnull(strstr(text, "~ updated ConfigMap"));
	ck_assert_ptr_nonnull(strstr(text, "-  k: old\n+  k: new\n"));
	ck_assert_ptr_nonnull(strstr(text, "- pruned ConfigMap"));
	ck_assert_ptr_nonnull(strstr(text, "(dry run)"));
	free(text);
	ck_assert_int_eq(r.inventory_written, 0);
	apply_result_free(&r);
	/* only dryRun=All requests went out: nothing changed */
	v = cm_value(c, ns, "a", "k");
	ck_assert_str_eq(v, "old");
	free(v);
	ck_assert(exists(c, &cm_res, ns, "b"));
	ck_assert(!exists(c, &cm_res, ns, "c"));
	cJSON_Delete(d);
	apply_engine_free(e);
	kube_client_free(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("apply-integration");
	TCase *tc = tcase_create("cluster");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_apply__create_update_prune_and_labels);
	tcase_add_test(tc, test_apply__crd_and_crs_in_one_pass_then_pruned_in_order);
	tcase_add_test(tc, test_apply__prune_disabled_is_kept);
	tcase_add_test(tc, test_apply__unmanaged_object_is_a_conflict);
	tcase_add_test(tc, test_apply__drift_detected_reported_and_corrected);
	tcase_add_test(tc, test_apply__inventory_survives_a_new_engine);
	tcase_add_test(tc, test_apply__empty_desired_prunes_nothing_without_allow_empty);
	tcase_add_test(tc, test_apply__noop_sends_zero_writes);
	tcase_add_test(tc, test_apply__dry_run_plans_without_writing);
	tcase_add_test(tc, test_apply__remembers_versions_not_objects);
	tcase_add_test(tc, test_apply__unknown_kind_writes_nothing);
	tcase_add_test(tc, test_apply__server_validation_refuses_the_revision);
	tcase_add_test(tc, test_apply__failed_write_stops_and_prunes_nothing);
	tcase_add_test(tc, test_apply__secret_string_data_is_owned_as_data);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
