/* Unit tests for the pure parts of pkg/apply: ownership label values, the
 * desired hash, apply and prune ordering, the inventory encoding, and the
 * drift projection. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply/apply.h"
#include "apply/apply_internal.h"

static int valid_label_value(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || i == n - 1 || (c != '-' && c != '_' && c != '.')))
			return 0;
	}
	return 1;
}

START_TEST(test_apply__label_short_is_plain)
{
	char v[64];
	apply_gitsync_label(v, sizeof(v), "team-a", "platform");
	ck_assert_str_eq(v, "team-a.platform");
}
END_TEST

START_TEST(test_apply__label_long_is_hashed_and_valid)
{
	char v[64], w[64], name[254];
	memset(name, 'x', 200);
	name[200] = 0;
	apply_gitsync_label(v, sizeof(v), "team-a", name);
	ck_assert(valid_label_value(v));
	ck_assert_uint_le(strlen(v), 63);
	ck_assert(strncmp(v, "team-a.xxx", 10) == 0);
	/* a different long name gets a different value */
	name[199] = 'y';
	apply_gitsync_label(w, sizeof(w), "team-a", name);
	ck_assert(valid_label_value(w));
	ck_assert_str_ne(v, w);
	/* exactly 63 chars stays plain; 64 is hashed */
	memset(name, 'n', 56);
	name[56] = 0;
	apply_gitsync_label(v, sizeof(v), "ns1234", name);   /* 6 + 1 + 56 = 63 */
	ck_assert_uint_eq(strlen(v), 63);
	ck_assert(strchr(v, '.') == v + 6);
	strcat(name, "n");
	apply_gitsync_label(v, sizeof(v), "ns1234", name);
	ck_assert(valid_label_value(v));
	ck_assert_str_ne(v, "ns1234.nnnn");
	/* a name ending in a dot-separated part trimmed before the hash */
	memset(name, 'a', 60);
	name[50] = '.';
	name[60] = 0;
	apply_gitsync_label(v, sizeof(v), "ns", name);
	ck_assert(valid_label_value(v));
}
END_TEST

START_TEST(test_apply__hash_ignores_key_order_and_own_annotation)
{
	cJSON *a = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\","
		"\"namespace\":\"n\"},\"data\":{\"a\":\"1\",\"b\":\"2\"}}");
	cJSON *b = cJSON_Parse("{\"kind\":\"ConfigMap\",\"data\":{\"b\":\"2\",\"a\":\"1\"},\"apiVersion\":\"v1\","
		"\"metadata\":{\"namespace\":\"n\",\"name\":\"x\",\"annotations\":{\"plumb.dev/desired-hash\":\"zz\"}}}");
	cJSON *c = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\","
		"\"namespace\":\"n\"},\"data\":{\"a\":\"1\",\"b\":\"3\"}}");
	char ha[65], hb[65], hc[65];
	ck_assert_int_eq(apply_desired_hash(ha, a), 0);
	ck_assert_int_eq(apply_desired_hash(hb, b), 0);
	ck_assert_int_eq(apply_desired_hash(hc, c), 0);
	ck_assert_str_eq(ha, hb);
	ck_assert_str_ne(ha, hc);
	ck_assert_uint_eq(strlen(ha), 64);
	cJSON_Delete(a);
	cJSON_Delete(b);
	cJSON_Delete(c);
}
END_TEST

START_TEST(test_apply__apply_order_classes)
{
	ck_assert_int_eq(apply_object_class("apiextensions.k8s.io", "CustomResourceDefinition", 0), 0);
	ck_assert_int_eq(apply_object_class("", "Namespace", 0), 1);
	ck_assert_int_eq(apply_object_class("rbac.authorization.k8s.io", "ClusterRole", 0), 2);
	ck_assert_int_eq(apply_object_class("", "ConfigMap", 1), 3);
	ck_assert_int_eq(apply_object_class("example.com", "Widget", 1), 3);
	/* a Namespace kind in another group is just a cluster-scoped object */
	ck_assert_int_eq(apply_object_class("example.com", "Namespace", 0), 2);
}
END_TEST

typedef struct {
	const char *group, *kind;
	int namespaced;
} gk;

static int prune_cmp(const void *a, const void *b)
{
	const gk *x = a, *y = b;
	return apply_prune_class(x->group, x->kind, x->namespaced) -
	       apply_prune_class(y->group, y->kind, y->namespaced);
}

START_TEST(test_apply__prune_order)
{
	gk v[] = {
		{ "", "Namespace", 0 },
		{ "apiextensions.k8s.io", "CustomResourceDefinition", 0 },
		{ "example.com", "ClusterWidget", 0 },
		{ "", "ConfigMap", 1 },
		{ "example.com", "Widget", 1 },
		{ "rbac.authorization.k8s.io", "ClusterRole", 0 },
	};
	qsort(v, 6, sizeof(v[0]), prune_cmp);
	/* namespaced (incl. CRs) first, then cluster-scoped (incl. cluster CRs),
	 * then CRDs, Namespaces last */
	ck_assert(v[0].namespaced && v[1].namespaced);
	ck_assert(!v[2].namespaced && !v[3].namespaced);
	ck_assert_str_ne(v[2].kind, "CustomResourceDefinition");
	ck_assert_str_ne(v[3].kind, "Namespace");
	ck_assert_str_eq(v[4].kind, "CustomResourceDefinition");
	ck_assert_str_eq(v[5].kind, "Namespace");
}
END_TEST

static void fill(apply_inventory *inv, size_t n)
{
	char ns[32], name[64];
	for (size_t i = 0; i < n; i++) {
		snprintf(ns, sizeof(ns), "team-%zu", i % 7);
		snprintf(name, sizeof(name), "settings-%06zu-with-a-longish-name", i);
		if (i % 5 == 0)
			ck_assert_int_eq(apply_inventory_add(inv, "example.com", "v1", "Widget", ns, name), 0);
		else if (i % 11 == 0)
			ck_assert_int_eq(apply_inventory_add(inv, "rbac.authorization.k8s.io", "v1", "ClusterRole", "", name), 0);
		else
			ck_assert_int_eq(apply_inventory_add(inv, "", "v1", "ConfigMap", ns, name), 0);
	}
}

START_TEST(test_apply__inventory_roundtrip_10000_sharded)
{
	apply_inventory inv = { 0 }, back = { 0 };
	char **shards = NULL;
	size_t nshards = 0, total = 0;

	fill(&inv, 10000);
	apply_inventory_normalize(&inv);
	ck_assert_uint_eq(inv.count, 10000);
	/* small shards: many ConfigMaps */
	ck_assert_int_eq(apply_inventory_encode(&shards, &nshards, &inv, 64 * 1024), 0);
	ck_assert_uint_gt(nshards, 3);
	for (size_t i = 0; i < nshards; i++) {
		ck_assert_uint_le(strlen(shards[i]), 64 * 1024);
		ck_assert(shards[i][0] == '@');   /* every shard starts with a block header */
		total += strlen(shards[i]);
		ck_assert_int_eq(apply_inventory_decode(&back, shards[i], strlen(shards[i])), 0);
	}
	apply_inventory_normalize(&back);
	ck_assert(apply_inv_equal(&inv, &back));
	apply_inventory_shards_free(shards, nshards);
	/* default shards: 10,000 entries take at most two ConfigMaps */
	ck_assert_int_eq(apply_inventory_encode(&shards, &nshards, &inv, 0), 0);
	ck_assert_uint_le(nshards, 2);
	ck_assert_uint_lt(total, 2 * APPLY_INVENTORY_SHARD);
	apply_inventory_shards_free(shards, nshards);
	apply_inventory_free(&inv);
	apply_inventory_free(&back);
}
END_TEST

START_TEST(test_apply__inventory_escapes_and_dedups)
{
	apply_inventory inv = { 0 }, back = { 0 };
	char **shards = NULL;
	size_t n = 0;

	ck_assert_int_eq(apply_inventory_add(&inv, "", "v1", "ConfigMap", "a", "x"), 0);
	ck_assert_int_eq(apply_inventory_add(&inv, "example.com", "v1beta1", "Odd", "", "has space%and\nnl"), 0);
	ck_assert_int_eq(apply_inventory_add(&inv, "example.com", "v1", "Odd", "", "-"), 0);
	ck_assert_int_eq(apply_inventory_add(&inv, "", "v1", "ConfigMap", "a", "x"), 0); /* duplicate */
	ck_assert_int_eq(apply_inventory_add(&inv, "example.com", "v2", "Odd", "", "has space%and\nnl"), 0);
	apply_inventory_normalize(&inv);
	ck_assert_uint_eq(inv.count, 3);
	ck_assert_int_eq(apply_inventory_encode(&shards, &n, &inv, 0), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_null(strstr(shards[0], "has space"));
	ck_assert_int_eq(apply_inventory_decode(&back, shards[0], strlen(shards[0])), 0);
	apply_inventory_normalize(&back);
	ck_assert(apply_inv_equal(&inv, &back));
	/* the last version added wins */
	for (size_t i = 0; i < back.count; i++)
		if (!strcmp(back.items[i].kind, "Odd") && strchr(back.items[i].name, ' '))
			ck_assert_str_eq(back.items[i].version, "v2");
	apply_inventory_shards_free(shards, n);
	apply_inventory_free(&inv);
	apply_inventory_free(&back);
}
END_TEST

START_TEST(test_apply__inventory_rejects_malformed)
{
	apply_inventory inv = { 0 };
	const char *bad[] = {
		"name-before-header\n",
		"@ - v1 ConfigMap\nx\n",          /* three fields */
		"@ - v1 ConfigMap ns extra\nx\n",
		"@ - v1 ConfigMap ns\nbad%zz\n",
		"@ - v1 ConfigMap ns\nbad%4\n",
		"@ - v1 ConfigMap ns\ntwo words\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(apply_inventory_decode(&inv, bad[i], strlen(bad[i])), PLUMB_EINVALID);
	apply_inventory_free(&inv);
	ck_assert_int_eq(apply_inventory_decode(&inv, "", 0), 0);
	ck_assert_uint_eq(inv.count, 0);
}
END_TEST

/* What the server made of a desired object (defaults, canonical quantity,
 * an empty list dropped) is no drift; a real change is, with its manager. */
START_TEST(test_apply__projection_ignores_server_defaults)
{
	cJSON *desired = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},"
		"\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"resources\":{\"limits\":{\"cpu\":\"1000m\"}}}],"
		"\"tolerations\":[]}}");
	cJSON *server = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"uid\":\"u\"},"
		"\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"imagePullPolicy\":\"Always\","
		"\"resources\":{\"limits\":{\"cpu\":\"1\"}}}],\"restartPolicy\":\"Always\"}}");
	cJSON *live = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"uid\":\"u\","
		"\"managedFields\":[{\"manager\":\"plumb\",\"operation\":\"Apply\",\"time\":\"2026-01-01T00:00:00Z\","
		"\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"c\\\"}\":"
		"{\"f:resources\":{\"f:limits\":{\"f:cpu\":{}}}}}}}},"
		"{\"manager\":\"kubectl-edit\",\"operation\":\"Update\",\"time\":\"2026-01-02T00:00:00Z\","
		"\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"c\\\"}\":"
		"{\"f:image\":{}}}}}}]},"
		"\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"imagePullPolicy\":\"Always\","
		"\"resources\":{\"limits\":{\"cpu\":\"1\"}}}],\"restartPolicy\":\"Always\"},\"status\":{\"phase\":\"Running\"}}");
	cJSON *proj, *img;
	apply_fields f = { 0 };

	ck_assert_ptr_nonnull(desired);
	ck_assert_ptr_nonnull(server);
	ck_assert_ptr_nonnull(live);
	proj = apply_project(server, desired);
	ck_assert_ptr_nonnull(proj);
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(proj, "spec"), "restartPolicy"));
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(proj, "spec"), "tolerations"));
	ck_assert_int_eq(apply_compare(&f, proj, live, 1), 0);
	/* the raw desired object would have shown false drift */
	ck_assert_int_gt(apply_compare(NULL, desired, live, 0), 0);
	/* an out-of-band edit of the image */
	img = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(live, "spec"),
		"containers"), 0), "image");
	cJSON_SetValuestring(img, "evil");
	ck_assert_int_eq(apply_compare(&f, proj, live, 1), 1);
	ck_assert_str_eq(f.items[0].path, "spec.containers[0].image");
	ck_assert_str_eq(f.items[0].manager, "kubectl-edit");
	apply_fields_free(&f);
	cJSON_Delete(proj);
	cJSON_Delete(desired);
	cJSON_Delete(server);
	cJSON_Delete(live);
}
END_TEST

START_TEST(test_apply__only_plumb_wrote)
{
	cJSON *a = cJSON_Parse("{\"metadata\":{\"managedFields\":[{\"manager\":\"plumb\",\"operation\":\"Apply\","
		"\"fieldsV1\":{\"f:data\":{}}},{\"manager\":\"kube-apiserver\",\"operation\":\"Update\","
		"\"subresource\":\"status\",\"fieldsV1\":{\"f:status\":{}}}]}}");
	cJSON *b = cJSON_Parse("{\"metadata\":{\"managedFields\":[{\"manager\":\"plumb\",\"operation\":\"Apply\","
		"\"fieldsV1\":{\"f:data\":{}}},{\"manager\":\"kubectl-patch\",\"operation\":\"Update\","
		"\"fieldsV1\":{\"f:data\":{\"f:x\":{}}}}]}}");
	ck_assert_int_eq(apply_only_plumb_wrote(a), 1);
	ck_assert_int_eq(apply_only_plumb_wrote(b), 0);
	cJSON_Delete(a);
	cJSON_Delete(b);
}
END_TEST

START_TEST(test_apply__report_text)
{
	apply_result r = { 0 };
	apply_object_result o[2] = { 0 };
	apply_field f = { "data.LOG_LEVEL", "kubectl-patch" };
	char *text = NULL;

	o[0].api_version = "v1"; o[0].kind = "ConfigMap"; o[0].ns = "a"; o[0].name = "x";
	o[0].action = APPLY_DRIFTED; o[0].message = ""; o[0].fields = &f; o[0].nfields = 1;
	o[0].diff = "--- live\n+++ desired\n";
	o[1].api_version = "v1"; o[1].kind = "Namespace"; o[1].ns = ""; o[1].name = "a";
	o[1].action = APPLY_UNCHANGED; o[1].message = "";
	r.objects = o;
	r.count = 2;
	r.totals[APPLY_DRIFTED] = 1;
	r.totals[APPLY_UNCHANGED] = 1;
	ck_assert_int_eq(apply_result_report(&text, &r), 0);
	ck_assert_ptr_nonnull(strstr(text, "! drifted ConfigMap a/x: data.LOG_LEVEL (by kubectl-patch)\n--- live\n"));
	ck_assert_ptr_null(strstr(text, "Namespace"));
	ck_assert_ptr_nonnull(strstr(text, "1 unchanged, 1 drifted"));
	free(text);
}
END_TEST

START_TEST(test_apply__secret_string_data_folds_into_data)
{
	cJSON *s = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"x\"},"
		"\"data\":{\"a\":\"b2xk\",\"keep\":\"a2VlcA==\"},\"stringData\":{\"a\":\"new\",\"b\":\"\"}}");
	cJSON *cm = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"stringData\":{\"a\":\"x\"}}");
	cJSON *bad = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"stringData\":{\"n\":1}}");
	ck_assert_int_eq(apply_secret_normalize(s), 0);
	ck_assert_ptr_null(cJSON_GetObjectItem(s, "stringData"));
	/* stringData wins for a key in both, as on the server */
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "data"), "a")->valuestring, "bmV3");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "data"), "b")->valuestring, "");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "data"), "keep")->valuestring, "a2VlcA==");
	/* not a Secret: left alone */
	ck_assert_int_eq(apply_secret_normalize(cm), 0);
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(cm, "stringData"));
	ck_assert_int_eq(apply_secret_normalize(bad), PLUMB_EINVALID);
	cJSON_Delete(s);
	cJSON_Delete(cm);
	cJSON_Delete(bad);
}
END_TEST

START_TEST(test_apply__secret_diff_masks_values)
{
	cJSON *live = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"x\"},"
		"\"data\":{\"same\":\"c2FtZQ==\",\"changed\":\"b2xkLXZhbHVl\",\"gone\":\"Z29uZQ==\"}}");
	cJSON *want = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"x\"},"
		"\"data\":{\"same\":\"c2FtZQ==\",\"changed\":\"bmV3LXZhbHVl\",\"added\":\"YWRkZWQ=\"}}");
	char *d = NULL;
	ck_assert_int_eq(apply_unified_diff(&d, live, want), 0);
	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(strstr(d, "-  changed: \"*** (before)\""));
	ck_assert_ptr_nonnull(strstr(d, "+  changed: \"*** (after)\""));
	ck_assert_ptr_nonnull(strstr(d, "+  added: \"*** (after)\""));
	for (const char *v = "c2FtZQ==\0b2xkLXZhbHVl\0bmV3LXZhbHVl\0YWRkZWQ=\0"; *v; v += strlen(v) + 1)
		ck_assert_msg(strstr(d, v) == NULL, "value %s in the diff:\n%s", v, d);
	free(d);
	/* a creation shows keys, not values */
	ck_assert_int_eq(apply_unified_diff(&d, NULL, want), 0);
	ck_assert_ptr_null(strstr(d, "bmV3LXZhbHVl"));
	ck_assert_ptr_nonnull(strstr(d, "changed:"));
	free(d);
	cJSON_Delete(live);
	cJSON_Delete(want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("apply");
	TCase *tc = tcase_create("pure");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_apply__label_short_is_plain);
	tcase_add_test(tc, test_apply__label_long_is_hashed_and_valid);
	tcase_add_test(tc, test_apply__hash_ignores_key_order_and_own_annotation);
	tcase_add_test(tc, test_apply__apply_order_classes);
	tcase_add_test(tc, test_apply__prune_order);
	tcase_add_test(tc, test_apply__inventory_roundtrip_10000_sharded);
	tcase_add_test(tc, test_apply__inventory_escapes_and_dedups);
	tcase_add_test(tc, test_apply__inventory_rejects_malformed);
	tcase_add_test(tc, test_apply__projection_ignores_server_defaults);
	tcase_add_test(tc, test_apply__only_plumb_wrote);
	tcase_add_test(tc, test_apply__report_text);
	tcase_add_test(tc, test_apply__secret_string_data_folds_into_data);
	tcase_add_test(tc, test_apply__secret_diff_masks_values);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
