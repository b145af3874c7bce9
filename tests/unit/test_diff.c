/* Unit tests for pkg/diff: equality, normalisation, diff paths, YAML
 * output, the unified diff and managedFields attribution. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "diff/diff.h"
#include "manifest/manifest.h"
#include "test_json.h"

static cJSON *J(const char *yaml)
{
	cJSON *v = NULL;
	ck_assert_msg(manifest_yaml_to_json(&v, yaml, strlen(yaml)) == 0, "%s", plumb_error_last());
	return v;
}

/* Diffs and returns the paths joined with ' '. */
static char *paths(const char *desired, const char *live, const char *previous)
{
	cJSON *d = J(desired), *l = live ? J(live) : NULL, *p = previous ? J(previous) : NULL;
	diff_result r = { 0 };
	plumb_buf b = PLUMB_BUF_INIT(1 << 20);
	ck_assert_int_eq(diff_objects(&r, d, l, p), 0);
	plumb_buf_puts(&b, "");
	for (size_t i = 0; i < r.count; i++)
		plumb_buf_printf(&b, "%s%s", i ? " " : "", r.paths[i]);
	diff_result_free(&r);
	cJSON_Delete(d);
	cJSON_Delete(l);
	cJSON_Delete(p);
	return plumb_buf_detach(&b);
}

static void expect_paths(const char *desired, const char *live, const char *previous, const char *want)
{
	char *got = paths(desired, live, previous);
	ck_assert_msg(!strcmp(got, want), "got \"%s\", want \"%s\"", got, want);
	free(got);
}

START_TEST(test_diff__json_equal)
{
	cJSON *a = J("{a: 1, b: [1, {x: y}], c: null}"), *b = J("{c: null, b: [1.0, {x: y}], a: 1.0}");
	ck_assert(diff_json_equal(a, b));
	cJSON *c = J("{a: 1, b: [{x: y}, 1], c: null}");
	ck_assert(!diff_json_equal(a, c));
	cJSON *big1 = J("9007199254740993"), *big2 = J("9007199254740992");
	ck_assert(!diff_json_equal(big1, big2));
	ck_assert(diff_json_equal(big1, big1));
	cJSON *s1 = J("'1'"), *n1 = J("1");
	ck_assert(!diff_json_equal(s1, n1));
	cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(c), cJSON_Delete(big1), cJSON_Delete(big2);
	cJSON_Delete(s1), cJSON_Delete(n1);
}
END_TEST

static const char *cm_live =
	"apiVersion: v1\nkind: ConfigMap\n"
	"metadata:\n  name: app\n  namespace: prod\n  uid: 1234\n  resourceVersion: '99'\n"
	"  creationTimestamp: '2026-01-01T00:00:00Z'\n  labels: {app: web, added-by: other}\n"
	"  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}', a.b/c: d}\n"
	"  finalizers: [x]\n  managedFields: []\n"
	"data: {LOG_LEVEL: debug, OTHER: x}\nstatus: {phase: ok}\n";

START_TEST(test_diff__normalize)
{
	cJSON *live = J(cm_live), *desired = J("metadata: {name: app, labels: {app: web}, annotations: {a.b/c: d}}"), *n = NULL;
	ck_assert_int_eq(diff_normalize(&n, live, desired), 0);
	cJSON *want = J("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: prod\n"
			"  labels: {app: web}\n  annotations: {a.b/c: d}\ndata: {LOG_LEVEL: debug, OTHER: x}\n");
	ck_assert(diff_json_equal(n, want));
	cJSON_Delete(n);
	ck_assert_int_eq(diff_normalize(&n, live, NULL), 0);
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(n, "metadata"), "labels"));
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(n, "metadata"), "finalizers"));
	cJSON_Delete(n), cJSON_Delete(live), cJSON_Delete(desired), cJSON_Delete(want);
}
END_TEST

START_TEST(test_diff__paths)
{
	/* equal: server fields, others' labels and status ignored */
	expect_paths("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: prod, labels: {app: web}}\n"
			"data: {LOG_LEVEL: debug}\n", cm_live, NULL, "");
	expect_paths("data: {LOG_LEVEL: info, OTHER: x, NEW: y}", cm_live, NULL, "data.LOG_LEVEL data.NEW");
	expect_paths("metadata: {labels: {app: api}, annotations: {a.b/c: e}}", cm_live, NULL,
			"metadata.labels.app metadata.annotations[\"a.b/c\"]");
	/* server-owned metadata in desired is not compared */
	expect_paths("metadata: {uid: other, creationTimestamp: null}\nstatus: {phase: x}", cm_live, NULL, "");
	/* 1 == 1.0 and key order */
	expect_paths("spec: {replicas: 1, x: {b: 2, a: 1}}", "spec: {x: {a: 1.0, b: 2}, replicas: 1.0, extra: 5}", NULL, "");
	/* lists: element by element, defaulted fields inside items ignored */
	expect_paths("spec: {containers: [{name: a, image: x}]}",
			"spec: {containers: [{name: a, image: x, terminationMessagePath: /dev/termination-log}]}", NULL, "");
	expect_paths("spec: {containers: [{name: a, image: y}]}", "spec: {containers: [{name: a, image: x}]}", NULL,
			"spec.containers[0].image");
	expect_paths("spec: {args: [a, b]}", "spec: {args: [a]}", NULL, "spec.args");
	expect_paths("spec: {versions: [{schema: {openAPIV3Schema: {properties: {x: {type: string}}}}}]}",
			"spec: {versions: [{schema: {openAPIV3Schema: {properties: {}}}}]}", NULL,
			"spec.versions[0].schema.openAPIV3Schema.properties.x");
	/* type changes and null */
	expect_paths("data: {a: '1'}", "data: {a: 1}", NULL, "data.a");
	expect_paths("data: {a: null}", "data: {}", NULL, "");
	expect_paths("data: {a: null}", "data: {a: x}", NULL, "data.a");
	expect_paths("data: {\"\": x, \"with space\": y}", "data: {}", NULL, "data[\"\"] data[\"with space\"]");
	/* previous: a field no longer desired but still live is a difference */
	expect_paths("data: {A: '1'}", "data: {A: '1', B: '2', C: '3'}", "data: {A: '1', B: '2', D: '4'}", "data.B");
	expect_paths("metadata: {labels: {a: x}}", "metadata: {labels: {a: x, gone: y}}",
			"metadata: {labels: {a: x, gone: y}}", "metadata.labels.gone");
	/* no live object */
	expect_paths("a: 1", NULL, NULL, "");
	char *p = paths("a: 1", NULL, NULL);
	ck_assert_str_eq(p, "");
	free(p);
}
END_TEST

START_TEST(test_diff__no_live_is_one_difference)
{
	cJSON *d = J("a: 1");
	diff_result r = { 0 };
	ck_assert_int_eq(diff_objects(&r, d, NULL, NULL), 0);
	ck_assert_uint_eq(r.count, 1);
	ck_assert_str_eq(r.paths[0], "");
	diff_result_free(&r);
	cJSON_Delete(d);
}
END_TEST

START_TEST(test_diff__yaml_roundtrip)
{
	const char *cases[] = {
		"{a: 'yes', b: 'no', c: '1', d: '1.5', e: '', f: '~', g: 'null', h: '- x', i: 'a: b', j: 'x #y',"
		" k: 'on', l: '0x10', m: ' lead', n: 'trail ', o: \"multi\\nline\\n\", p: \"no\\nnewline\","
		" q: \"keep\\n\\n\", r: \"tab\\there\", s: '@x', t: '*a', u: '&a', v: '!t', w: '[x]', x: '{y}',"
		" y: '%p', z: \"``\", aa: '<<', ab: ':x', ac: 'x:', ad: '-', ae: '---', af: '...', ag: \"\\u00e9\","
		" ah: \"  \\n  \", ai: \"a\\n  indented\\nb\", aj: \"\\nleading newline\", ak: \"\\x91c1 \\u2028 \\ufeff\", al: \"caf\\u00e9\", am: \"\\x85\\nx\"}",
		"{n: [0, -1, 1.5, 1e+20, 3.3333333333333335, 9007199254740993, -9223372036854775808], b: [true, false, null]}",
		"{\"weird key\": 1, \"a.b/c\": 2, \"yes\": 3, \"1\": 4, \"\": 5, \"- x\": 6, \"k: v\": 7}",
		"{list: [[1, 2], [], {}, [[x]], {a: [b, {c: d}]}], empty: {}, none: []}",
		"{deep: {a: {b: {c: [{d: {e: \"f\\ng\\n\"}}]}}}}",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *v = J(cases[i]), *back = NULL;
		plumb_buf b = PLUMB_BUF_INIT(1 << 20);
		ck_assert_int_eq(diff_to_yaml(&b, v), 0);
		ck_assert_msg(manifest_yaml_to_json(&back, b.ptr, b.len) == 0, "%s\n%s", b.ptr, plumb_error_last());
		ck_assert_msg(diff_json_equal(v, back), "case %zu did not survive:\n%s", i, b.ptr);
		cJSON_Delete(v);
		cJSON_Delete(back);
		plumb_buf_free(&b);
	}
}
END_TEST

START_TEST(test_diff__yaml_layout)
{
	cJSON *v = J("{apiVersion: v1, kind: ConfigMap, metadata: {name: x}, data: {script: \"a\\nb\\n\"},"
			" list: [{name: a, v: 1}, b]}");
	plumb_buf b = PLUMB_BUF_INIT(1 << 20);
	ck_assert_int_eq(diff_to_yaml(&b, v), 0);
	ck_assert_str_eq(b.ptr, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  script: |\n"
			"    a\n    b\nlist:\n- name: a\n  v: 1\n- b\n");
	plumb_buf_free(&b);
	cJSON_Delete(v);
}
END_TEST

START_TEST(test_diff__render_unified)
{
	cJSON *d = J("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {LOG_LEVEL: info, A: '1'}");
	cJSON *l = J(cm_live);
	char *out = NULL;
	ck_assert_int_eq(diff_render(&out, d, l, NULL), 0);
	ck_assert_msg(strstr(out, "--- live\n+++ desired\n@@ "), "%s", out);
	ck_assert_msg(strstr(out, "\n-  LOG_LEVEL: debug\n+  LOG_LEVEL: info\n"), "%s", out);
	ck_assert_msg(strstr(out, "\n+  A: \"1\"\n"), "%s", out);
	ck_assert_msg(!strstr(out, "OTHER") && !strstr(out, "uid"), "%s", out);
	free(out);
	cJSON *same = J("data: {LOG_LEVEL: debug}");
	ck_assert_int_eq(diff_render(&out, same, l, NULL), 0);
	ck_assert_str_eq(out, "");
	free(out);
	cJSON_Delete(d), cJSON_Delete(l), cJSON_Delete(same);
}
END_TEST

static const char *mf_live =
	"metadata:\n  name: web\n  managedFields:\n"
	"  - manager: plumb\n    operation: Apply\n    time: '2026-01-01T00:00:00Z'\n    fieldsType: FieldsV1\n"
	"    fieldsV1:\n      f:data: {f:A: {}, f:LOG_LEVEL: {}}\n"
	"      f:spec:\n        f:containers:\n          k:{\"name\":\"app\"}: {.: {}, f:image: {}, f:name: {}}\n"
	"        f:args: {}\n"
	"  - manager: kubectl-edit\n    operation: Update\n    time: '2026-01-02T00:00:00Z'\n    fieldsType: FieldsV1\n"
	"    fieldsV1:\n      f:data: {f:LOG_LEVEL: {}}\n      f:metadata: {f:annotations: {f:a.b/c: {}}}\n"
	"      f:spec: {f:finalizers: {v:\"x\": {}}, f:ports: {i:1: {f:port: {}}}}\n"
	"data: {A: '1', LOG_LEVEL: debug}\n"
	"spec:\n  containers: [{name: side, image: s}, {name: app, image: a}]\n  args: [x, y]\n"
	"  finalizers: [w, x]\n  ports: [{port: 1}, {port: 2}]\n";

static char *owners_of(const char *path)
{
	cJSON *live = J(mf_live);
	diff_owner *o = NULL;
	size_t n = 0;
	plumb_buf b = PLUMB_BUF_INIT(4096);
	ck_assert_msg(diff_field_owners(&o, &n, live, path) == 0, "%s: %s", path, plumb_error_last());
	plumb_buf_puts(&b, "");
	for (size_t i = 0; i < n; i++)
		plumb_buf_printf(&b, "%s%s/%s@%s", i ? " " : "", o[i].manager, o[i].operation, o[i].time ? o[i].time : "");
	diff_owners_free(o, n);
	cJSON_Delete(live);
	return plumb_buf_detach(&b);
}

static void expect_owners(const char *path, const char *want)
{
	char *got = owners_of(path);
	ck_assert_msg(!strcmp(got, want), "%s: got \"%s\", want \"%s\"", path, got, want);
	free(got);
}

START_TEST(test_diff__managed_fields_owner)
{
	expect_owners("data.A", "plumb/Apply@2026-01-01T00:00:00Z");
	expect_owners("data.LOG_LEVEL", "plumb/Apply@2026-01-01T00:00:00Z kubectl-edit/Update@2026-01-02T00:00:00Z");
	expect_owners("data.NOPE", "");
	expect_owners("spec.containers[1].image", "plumb/Apply@2026-01-01T00:00:00Z");
	expect_owners("spec.containers[0].image", "");
	expect_owners("spec.args[1]", "plumb/Apply@2026-01-01T00:00:00Z"); /* atomic list */
	expect_owners("spec.finalizers[1]", "kubectl-edit/Update@2026-01-02T00:00:00Z");
	expect_owners("spec.finalizers[0]", "");
	expect_owners("spec.ports[1].port", "kubectl-edit/Update@2026-01-02T00:00:00Z");
	expect_owners("metadata.annotations[\"a.b/c\"]", "kubectl-edit/Update@2026-01-02T00:00:00Z");
	diff_owner *o = NULL;
	size_t n = 0;
	cJSON *live = J(mf_live);
	ck_assert_int_eq(diff_field_owners(&o, &n, live, "data[\"unterminated"), PLUMB_EINVALID);
	ck_assert_int_eq(diff_field_owners(&o, &n, live, "a[x]"), PLUMB_EINVALID);
	cJSON_Delete(live);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("diff");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_diff__json_equal);
	tcase_add_test(tc, test_diff__normalize);
	tcase_add_test(tc, test_diff__paths);
	tcase_add_test(tc, test_diff__no_live_is_one_difference);
	tcase_add_test(tc, test_diff__yaml_roundtrip);
	tcase_add_test(tc, test_diff__yaml_layout);
	tcase_add_test(tc, test_diff__render_unified);
	tcase_add_test(tc, test_diff__managed_fields_owner);
	suite_add_tcase(s, tc);
	return test_run(s);
}
