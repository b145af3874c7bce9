/* Unit tests for pkg/manifest: YAML typing, anchors, substitution,
 * validation, rendering and apply order. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "manifest/manifest.h"
#include "test_json.h"

/* Converts one YAML document and returns its compact JSON (caller frees). */
static char *conv(const char *yaml)
{
	cJSON *v = NULL;
	ck_assert_msg(manifest_yaml_to_json(&v, yaml, strlen(yaml)) == 0, "%s: %s", yaml, plumb_error_last());
	char *s = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return s;
}

static void expect(const char *yaml, const char *json)
{
	char *got = conv(yaml);
	ck_assert_msg(!strcmp(got, json), "%s\n  got:  %s\n  want: %s", yaml, got, json);
	free(got);
}

static void expect_error(const char *yaml, const char *needle)
{
	cJSON *v = NULL;
	int rc = manifest_yaml_to_json(&v, yaml, strlen(yaml));
	ck_assert_msg(rc != 0, "accepted: %s", yaml);
	ck_assert_msg(strstr(plumb_error_last(), needle), "%s: error \"%s\" lacks \"%s\"", yaml,
			plumb_error_last(), needle);
	ck_assert_ptr_null(v);
}

START_TEST(test_manifest__typing_booleans_yaml11)
{
	expect("[y, Y, yes, Yes, YES, on, On, ON, true, True, TRUE]",
			"[true,true,true,true,true,true,true,true,true,true,true]");
	expect("[n, N, no, No, NO, off, Off, OFF, false, False, FALSE]",
			"[false,false,false,false,false,false,false,false,false,false,false]");
	expect("[yEs, oN, 'yes', \"no\", yes please]", "[\"yEs\",\"oN\",\"yes\",\"no\",\"yes please\"]");
}
END_TEST

START_TEST(test_manifest__typing_null)
{
	expect("[~, null, Null, NULL, nULL, '']", "[null,null,null,null,\"nULL\",\"\"]");
	expect("a:\nb: ~\n", "{\"a\":null,\"b\":null}");
	expect("", "null");
}
END_TEST

START_TEST(test_manifest__typing_numbers)
{
	expect("[0, -0, +42, 1_000, 0x1F, -0x1f, 0o17, 0755, 0b101, -0b11, 08]",
			"[0,0,42,1000,31,-31,15,493,5,-3,8]");
	expect("[1.0, 1.5, .5, 1., 1e3, 1E-3, -.5e2]", "[1,1.5,0.5,1,1000,0.001,-50]");
	/* not numbers: stay strings */
	expect("[1.2.3, 10:30, 0x, 0b2, 12e, 1e400, 0xFFFFFFFFFFFFFFFFFFFF]",
			"[\"1.2.3\",\"10:30\",\"0x\",\"0b2\",\"12e\",\"1e400\",\"0xFFFFFFFFFFFFFFFFFFFF\"]");
	/* timestamps are strings for kubectl */
	expect("[2024-01-02, 2024-01-02T03:04:05Z]", "[\"2024-01-02\",\"2024-01-02T03:04:05Z\"]");
}
END_TEST

START_TEST(test_manifest__typing_big_numbers)
{
	/* beyond 2^53: kept exactly; beyond int64: uint64; beyond that: float */
	expect("a: 9007199254740993", "{\"a\":9007199254740993}");
	expect("a: -9223372036854775808", "{\"a\":-9223372036854775808}");
	char *s = conv("a: 123456789012345678901234");
	ck_assert_ptr_nonnull(strstr(s, "e+23"));
	free(s);
	cJSON *v = NULL;
	ck_assert_int_eq(manifest_yaml_to_json(&v, "a: 18446744073709551615", 23), 0);
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(v, "a")));
	ck_assert_double_eq(cJSON_GetObjectItem(v, "a")->valuedouble, 18446744073709551615.0);
	cJSON_Delete(v);
	expect_error("a: .inf", "unsupported value");
	expect_error("a: -.Inf", "unsupported value");
	expect_error("a: .nan", "unsupported value");
}
END_TEST

START_TEST(test_manifest__quoted_and_block_scalars)
{
	expect("a: \"t\\tx\\n\\u00e9\"", "{\"a\":\"t\\tx\\né\"}");
	expect("a: 'it''s'", "{\"a\":\"it's\"}");
	expect("a: |\n  x\n  y\n\nb: 1", "{\"a\":\"x\\ny\\n\",\"b\":1}");
	expect("a: |-\n  x\n  y\n", "{\"a\":\"x\\ny\"}");
	expect("a: |+\n  x\n\n", "{\"a\":\"x\\n\\n\"}");
	expect("a: >\n  x\n  y\n\n  z\n", "{\"a\":\"x y\\nz\\n\"}");
	expect("a: \"123\"\nb: '1.5'\nc: !!str 7\n", "{\"a\":\"123\",\"b\":\"1.5\",\"c\":\"7\"}");
	expect("a: !!int \"42\"\nb: !!float 3\n", "{\"a\":42,\"b\":3}");
	expect_error("a: !!int abc", "cannot decode");
	expect_error("a: \"a\\/b\"", "escape");
}
END_TEST

START_TEST(test_manifest__keys_become_strings)
{
	expect("{1: a, yes: b, 1.5: c, 1e7: d, 0x10: e}",
			"{\"1\":\"a\",\"true\":\"b\",\"1.5\":\"c\",\"1e+07\":\"d\",\"16\":\"e\"}");
	expect("{a: 1, a: 2}", "{\"a\":2}");
	expect_error("{~: 1}", "map key");
	expect_error("{[a]: 1}", "map key");
}
END_TEST

START_TEST(test_manifest__anchors_and_merge)
{
	expect("a: &x hi\nb: *x\n", "{\"a\":\"hi\",\"b\":\"hi\"}");
	expect("base: &b {a: 1, b: 2}\nm: {<<: *b, b: 3}\n",
			"{\"base\":{\"a\":1,\"b\":2},\"m\":{\"a\":1,\"b\":3}}");
	/* go-yaml v2: a merge overrides keys written before it */
	expect("x: &b {a: 1}\nm: {a: 0, <<: *b}\n", "{\"x\":{\"a\":1},\"m\":{\"a\":1}}");
	/* a list of maps: earlier maps win */
	expect("p: &p {a: 1, b: 1}\nq: &q {b: 2, c: 2}\nm: {<<: [*p, *q]}\n",
			"{\"p\":{\"a\":1,\"b\":1},\"q\":{\"b\":2,\"c\":2},\"m\":{\"b\":1,\"c\":2,\"a\":1}}");
	expect("a: &x 1\nb: *x\nc: &x 2\nd: *x\n", "{\"a\":1,\"b\":1,\"c\":2,\"d\":2}");
	expect_error("a: *nope", "unknown anchor");
	expect_error("x: &a {k: v}\nm: {<<: [*a, 3]}\n", "map merge");
}
END_TEST

START_TEST(test_manifest__alias_bomb_is_capped)
{
	plumb_buf b = PLUMB_BUF_INIT(1 << 20);
	plumb_buf_puts(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 10; i++)
		plumb_buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
				i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	cJSON *v = NULL;
	double t = plumb_time_mono();
	ck_assert_int_eq(manifest_yaml_to_json(&v, b.ptr, b.len), PLUMB_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "aliasing"));
	ck_assert(plumb_time_mono() - t < 5);
	plumb_buf_free(&b);
}
END_TEST

/* The bomb of issue 13: a 4 MiB file that anchors a 1 MiB string and aliases
 * it 400 times (400 MiB expanded). It fails at the alias that crosses the
 * document's cap, with file:line:col, having copied no more than the cap. */
static void issue13_bomb(plumb_buf *b)
{
	plumb_buf_puts(b, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  big: &big \"");
	for (int i = 0; i < 1024 * 1024 / 64; i++)
		plumb_buf_puts(b, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	plumb_buf_puts(b, "\"\n");
	for (int i = 0; i < 400; i++)
		plumb_buf_printf(b, "  k%d: *big\n", i);
	/* padding to 4 MiB, as in the issue */
	while (b->len < 4u * 1024 * 1024 - 80)
		plumb_buf_puts(b, "# padding padding padding padding padding padding padding padding\n");
}

START_TEST(test_manifest__alias_bytes_capped_per_document)
{
	plumb_buf b = PLUMB_BUF_INIT(8u << 20);
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	issue13_bomb(&b);
	ck_assert_uint_gt(b.len, 4000000);
	double t = plumb_time_mono();
	ck_assert_int_eq(manifest_parse(&set, "deploy/bomb.yaml", b.ptr, b.len, NULL, &errs), PLUMB_ETOOBIG);
	ck_assert(plumb_time_mono() - t < 5);
	ck_assert_uint_eq(errs.count, 1);
	/* 1 MiB anchored + two copies fit in 4 MiB; the third alias (line 8) does not. */
	ck_assert_msg(!strcmp(errs.msgs[0], "deploy/bomb.yaml:8:7: document expands to more than 4194304 bytes "
		"(aliases are counted by what they expand to)"), "%s", errs.msgs[0]);
	ck_assert_uint_eq(set.count, 0);
	ck_assert_uint_le(set.expanded_bytes, MANIFEST_MAX_DOC_BYTES + 1024 * 1024 + 64);
	manifest_set_free(&set);
	manifest_errors_free(&errs);

	/* vet says the same, file:line:col. */
	manifest_file f = { "deploy/bomb.yaml", b.ptr, b.len };
	ck_assert_int_eq(manifest_vet(&f, 1, &errs), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], "deploy/bomb.yaml:8:7: document expands to more than"));
	manifest_errors_free(&errs);

	/* The same through manifest_yaml_to_json. */
	cJSON *v = NULL;
	ck_assert_int_eq(manifest_yaml_to_json(&v, b.ptr, b.len), PLUMB_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "8:7: document expands to more than"));
	plumb_buf_free(&b);

	/* Aliases of real size stay fine, and a later document starts afresh. */
	const char *ok = "a: &x {k: v, l: [1, 2]}\nb: *x\nc: {<<: *x, m: 3}\n";
	expect(ok, "{\"a\":{\"k\":\"v\",\"l\":[1,2]},\"b\":{\"k\":\"v\",\"l\":[1,2]},\"c\":{\"k\":\"v\",\"l\":[1,2],\"m\":3}}");
}
END_TEST

/* Many documents each under its cap still add up to a revision's cap. */
START_TEST(test_manifest__alias_bytes_capped_per_revision)
{
	plumb_buf doc = PLUMB_BUF_INIT(4u << 20);
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	int rc = 0, files = 0;
	plumb_buf_puts(&doc, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: NAME}\ndata:\n  big: &big \"");
	for (int i = 0; i < 1024 * 1024 / 64; i++)
		plumb_buf_puts(&doc, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	plumb_buf_puts(&doc, "\"\n  k1: *big\n  k2: *big\n");   /* 3 MiB expanded: under the document cap */
	for (files = 0; files < 30 && rc == 0; files++) {
		char name[32];
		snprintf(name, sizeof(name), "f%02d.yaml", files);
		rc = manifest_parse(&set, name, doc.ptr, doc.len, NULL, &errs);
	}
	ck_assert_int_eq(rc, PLUMB_ETOOBIG);
	ck_assert_int_eq(files, 22);   /* 21 files of 3 MiB fit in 64 MiB, the 22nd does not */
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_msg(strstr(errs.msgs[0], "f21.yaml:") && strstr(errs.msgs[0],
		"the revision expands to more than 67108864 bytes of YAML"), "%s", errs.msgs[0]);
	manifest_set_free(&set);
	manifest_errors_free(&errs);
	plumb_buf_free(&doc);
}
END_TEST

/* Substitution multiplies too: ${BIG} repeated is charged as it expands. */
START_TEST(test_manifest__substitution_bytes_capped)
{
	plumb_buf big = PLUMB_BUF_INIT(2u << 20), y = PLUMB_BUF_INIT(1u << 20);
	for (int i = 0; i < 1024 * 1024 / 16; i++)
		plumb_buf_puts(&big, "0123456789abcdef");
	manifest_var vs[] = { { "BIG", big.ptr } };
	manifest_vars vars = { 1, vs, 1, "c1", NULL, 0 };
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	plumb_buf_puts(&y, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata:\n");
	for (int i = 0; i < 100; i++)
		plumb_buf_printf(&y, "  k%d: ${BIG}\n", i);
	ck_assert_int_eq(manifest_parse(&set, "s.yaml", y.ptr, y.len, &vars, &errs), PLUMB_ETOOBIG);
	ck_assert_msg(errs.count == 1 && strstr(errs.msgs[0], "s.yaml:8:7: value expands past the document's cap"), "%s", errs.count ? errs.msgs[0] : "");
	manifest_set_free(&set);
	manifest_errors_free(&errs);
	plumb_buf_free(&big);
	plumb_buf_free(&y);
}
END_TEST

START_TEST(test_manifest__parse_positions_and_lists)
{
	const char *y = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n# c\n"
		"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n"
		"- apiVersion: v1\n  kind: Secret\n  metadata: {name: c}\n";
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	ck_assert_int_eq(manifest_parse(&set, "f.yaml", y, strlen(y), NULL, &errs), 0);
	ck_assert_uint_eq(set.count, 3);
	ck_assert_int_eq(set.items[0].line, 1);
	ck_assert_int_eq(set.items[1].line, 10);
	ck_assert_int_eq(set.items[2].line, 11);
	ck_assert_str_eq(set.items[2].file, "f.yaml");
	ck_assert_str_eq(cJSON_GetObjectItem(set.items[2].obj, "kind")->valuestring, "Secret");
	manifest_set_free(&set);
	manifest_errors_free(&errs);
}
END_TEST

START_TEST(test_manifest__every_error_with_file_line_col)
{
	const char *y = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n- not\n- a map\n---\n"
		"a: .inf\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok2}\n";
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	ck_assert_int_eq(manifest_parse(&set, "x.yaml", y, strlen(y), NULL, &errs), PLUMB_EINVALID);
	ck_assert_uint_eq(errs.count, 2);
	ck_assert_str_eq(errs.msgs[0], "x.yaml:5:1: document is a sequence, not a mapping");
	ck_assert_ptr_nonnull(strstr(errs.msgs[1], "x.yaml:8:4: "));
	ck_assert_uint_eq(set.count, 2); /* the good documents are still read */
	manifest_set_free(&set);
	manifest_errors_free(&errs);
}
END_TEST

START_TEST(test_manifest__size_cap)
{
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	ck_assert_int_eq(manifest_parse(&set, "big.yaml", "a: 1", MANIFEST_MAX_FILE + 1, NULL, &errs), PLUMB_ETOOBIG);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], "big.yaml:1:1: "));
	manifest_set_free(&set);
	manifest_errors_free(&errs);
}
END_TEST

/* ---- substitution -------------------------------------------------------- */

static const manifest_var subst_vars[] = { { "TEAM", "platform" }, { "N", "3" }, { "EVIL", "x\nkind: Secret" } };
static const manifest_var subst_labels[] = { { "region", "eu" }, { "env", "prod" } };

static cJSON *render_one(const char *yaml, manifest_errors *errs)
{
	manifest_set set = { 0 };
	manifest_vars vars = { 1, subst_vars, 3, "c1", subst_labels, 2 };
	int rc = manifest_parse(&set, "s.yaml", yaml, strlen(yaml), &vars, errs);
	cJSON *out = NULL;
	if (!rc && set.count == 1) {
		out = set.items[0].obj;
		set.items[0].obj = NULL;
	}
	manifest_set_free(&set);
	return out;
}

START_TEST(test_manifest__substitution)
{
	manifest_errors errs = { 0 };
	cJSON *o = render_one("team: ${TEAM}\nnum: ${N}\nq: \"${N}\"\nc: ${CLUSTER_NAME}-${CLUSTER_LABEL_region}\n"
			"d: ${MISSING:=fallback}\ne: ${MISSING:=}\nlit: $${TEAM}\ndollar: $5 and $TEAM\n"
			"evil: ${EVIL}\n${TEAM}: key\n", &errs);
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_ptr_nonnull(o);
	char *s = cJSON_PrintUnformatted(o);
	ck_assert_str_eq(s, "{\"team\":\"platform\",\"num\":3,\"q\":\"3\",\"c\":\"c1-eu\",\"d\":\"fallback\","
			"\"e\":null,\"lit\":\"${TEAM}\",\"dollar\":\"$5 and $TEAM\",\"evil\":\"x\\nkind: Secret\","
			"\"platform\":\"key\"}");
	free(s);
	cJSON_Delete(o);
	manifest_errors_free(&errs);
}
END_TEST

START_TEST(test_manifest__substitution_errors)
{
	manifest_errors errs = { 0 };
	ck_assert_ptr_null(render_one("a: 1\nb: x ${NOPE} y\n", &errs));
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.msgs[0], "s.yaml:2:6: variable \"NOPE\" is not defined and has no default");
	manifest_errors_free(&errs);
	ck_assert_ptr_null(render_one("a: ${OPEN\n", &errs));
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], "unterminated"));
	manifest_errors_free(&errs);
	ck_assert_ptr_null(render_one("a: ${bad name}\n", &errs));
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], "invalid variable name"));
	manifest_errors_free(&errs);
}
END_TEST

/* plumb.dev/substitute: disabled reads its document literally, the others
 * of the same file as ever; a List covers its items; anything else is an
 * error naming the line. */
START_TEST(test_manifest__substitution_opt_out)
{
	manifest_errors errs = { 0 };
	manifest_set set = { 0 };
	manifest_vars vars = { 1, subst_vars, 3, "c1", subst_labels, 2 };
	const char *yaml =
		"kind: ConfigMap\nmetadata: {name: a}\ndata: {t: \"${TEAM}\"}\n"
		"---\n"
		"kind: ConfigMap\nmetadata:\n  name: b\n  annotations: {plumb.dev/substitute: disabled}\n"
		"data:\n  script: echo ${HOME} ${NOPE}\n  lit: $${TEAM}\n  num: ${N}\n"
		"---\n"
		"kind: ConfigMapList\nmetadata: {annotations: {plumb.dev/substitute: disabled}}\n"
		"items:\n- kind: ConfigMap\n  metadata: {name: c}\n  data: {x: \"${TEAM}\"}\n"
		"---\n"
		"kind: ConfigMap\nmetadata: {name: d}\ndata: {t: \"${CLUSTER_NAME}\"}\n";
	ck_assert_int_eq(manifest_parse(&set, "o.yaml", yaml, strlen(yaml), &vars, &errs), 0);
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_uint_eq(set.count, 4);
	ck_assert_str_eq(plumb_json_str(set.items[0].obj, "data.t"), "platform");
	ck_assert_str_eq(plumb_json_str(set.items[1].obj, "data.script"), "echo ${HOME} ${NOPE}");
	ck_assert_str_eq(plumb_json_str(set.items[1].obj, "data.lit"), "$${TEAM}");
	ck_assert_str_eq(plumb_json_str(set.items[1].obj, "data.num"), "${N}");
	ck_assert_str_eq(plumb_json_str(set.items[2].obj, "data.x"), "${TEAM}");
	ck_assert_str_eq(plumb_json_str(set.items[3].obj, "data.t"), "c1");
	manifest_set_free(&set);

	/* a wrong value, and the annotation on an item of a List */
	const char *bad =
		"kind: ConfigMap\nmetadata:\n  name: b\n  annotations: {plumb.dev/substitute: \"off\"}\n"
		"---\n"
		"kind: List\nitems:\n- kind: ConfigMap\n  metadata: {name: c, annotations: {plumb.dev/substitute: disabled}}\n";
	memset(&set, 0, sizeof(set));
	ck_assert_int_eq(manifest_parse(&set, "o.yaml", bad, strlen(bad), &vars, &errs), PLUMB_EINVALID);
	ck_assert_uint_eq(errs.count, 2);
	ck_assert_str_eq(errs.msgs[0], "o.yaml:1:1: annotation plumb.dev/substitute must be \"disabled\" (or absent)");
	ck_assert_ptr_nonnull(strstr(errs.msgs[1], "o.yaml:8:3: annotation plumb.dev/substitute on an item of a List"));
	manifest_set_free(&set);
	manifest_errors_free(&errs);
}
END_TEST

/* ---- validation and rendering -------------------------------------------- */

static manifest_file file_of(const char *name, const char *text)
{
	manifest_file f = { name, text, strlen(text) };
	return f;
}

START_TEST(test_manifest__validation_reports_everything)
{
	manifest_file files[] = {
		file_of("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup, namespace: ns}\n---\n"
				"kind: ConfigMap\nmetadata: {name: Bad_Name}\n"),
		file_of("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dup, namespace: ns}\n---\n"
				"apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n---\napiVersion: v1\nkind: Secret\n"
				"metadata: {namespace: x}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
				"metadata: {name: \"system:ok\"}\n"),
	};
	manifest_errors errs = { 0 };
	ck_assert_int_eq(manifest_vet(files, 2, &errs), PLUMB_EINVALID);
	ck_assert_uint_eq(errs.count, 5);
	ck_assert_str_eq(errs.msgs[0], "a.yaml:5:1: apiVersion is missing or not a string");
	ck_assert_ptr_nonnull(strstr(errs.msgs[1], "a.yaml:5:1: metadata.name \"Bad_Name\""));
	ck_assert_ptr_nonnull(strstr(errs.msgs[2], "b.yaml:5:1: metadata.name \"a.b\" of Namespace"));
	ck_assert_str_eq(errs.msgs[3], "b.yaml:9:1: metadata.name is missing or not a string");
	ck_assert_str_eq(errs.msgs[4], "b.yaml:1:1: duplicate object ConfigMap ns/dup (also defined at a.yaml:1:1)");
	manifest_errors_free(&errs);
}
END_TEST

START_TEST(test_manifest__render_order_selector_namespace)
{
	manifest_file files[] = {
		file_of("app.yaml",
				"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
				"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: eu-only\n  annotations:\n"
				"    plumb.dev/cluster-selector: \"region in (eu), env!=dev\"\n---\n"
				"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: us-only\n  annotations:\n"
				"    plumb.dev/cluster-selector: region=us\n    keep: me\n---\n"
				"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: junk}\n---\n"
				"apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n"
				"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: team}\n---\n"
				"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n---\n"
				"apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n"),
	};
	manifest_render_opts opts = { .vars = { 1, NULL, 0, "c1", subst_labels, 2 }, .default_namespace = "apps" };
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	ck_assert_int_eq(manifest_render(&set, files, 1, &opts, &errs), 0);
	const char *want[] = { "widgets.example.com", "team", "apps", "r", "web", "eu-only", "w" };
	ck_assert_uint_eq(set.count, 7);
	for (size_t i = 0; i < 7; i++) {
		cJSON *meta = cJSON_GetObjectItem(set.items[i].obj, "metadata");
		ck_assert_str_eq(cJSON_GetObjectItem(meta, "name")->valuestring, want[i]);
	}
	cJSON *eu = cJSON_GetObjectItem(set.items[5].obj, "metadata");
	ck_assert_ptr_null(cJSON_GetObjectItem(eu, "annotations")); /* selector stripped */
	ck_assert_str_eq(cJSON_GetObjectItem(eu, "namespace")->valuestring, "apps");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(set.items[6].obj, "metadata"), "namespace")->valuestring, "team");
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(set.items[3].obj, "metadata"), "namespace"));
	ck_assert_int_eq(set.items[5].line, 5);
	manifest_set_free(&set);
	manifest_errors_free(&errs);
}
END_TEST

static int widgets_cluster_scoped(void *ctx, const char *av, const char *kind)
{
	(void)av;
	++*(int *)ctx;
	return !strcmp(kind, "Widget") ? 1 : -1;
}

START_TEST(test_manifest__render_scope_callback_and_duplicates)
{
	manifest_file files[] = {
		file_of("a.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\n"
				"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
		file_of("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n"),
	};
	int calls = 0;
	manifest_render_opts opts = { .vars = { 1, NULL, 0, "c1", NULL, 0 }, .scope = widgets_cluster_scoped,
		.scope_ctx = &calls };
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	/* both ConfigMaps land in "default": a duplicate for this cluster */
	ck_assert_int_eq(manifest_render(&set, files, 2, &opts, &errs), PLUMB_EINVALID);
	ck_assert_uint_eq(set.count, 0);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_ptr_nonnull(strstr(errs.msgs[0], "duplicate object ConfigMap default/c"));
	manifest_errors_free(&errs);
	ck_assert_int_eq(manifest_render(&set, files, 1, &opts, &errs), 0);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(set.items[0].obj, "metadata"), "name")->valuestring, "w");
	ck_assert(calls > 0);
	manifest_set_free(&set);
	manifest_errors_free(&errs);
}
END_TEST

START_TEST(test_manifest__render_fails_whole_revision)
{
	manifest_file files[] = {
		file_of("good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n"),
		file_of("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata:\n  a: x${UNSET}\n"),
	};
	manifest_render_opts opts = { .vars = { 1, NULL, 0, "c1", NULL, 0 } };
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	ck_assert_int_eq(manifest_render(&set, files, 2, &opts, &errs), PLUMB_EINVALID);
	ck_assert_uint_eq(set.count, 0);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_msg(strstr(errs.msgs[0], "bad.yaml:5:7: variable \"UNSET\""), "%s", errs.msgs[0]);
	manifest_set_free(&set);
	manifest_errors_free(&errs);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_manifest__typing_booleans_yaml11);
	tcase_add_test(tc, test_manifest__typing_null);
	tcase_add_test(tc, test_manifest__typing_numbers);
	tcase_add_test(tc, test_manifest__typing_big_numbers);
	tcase_add_test(tc, test_manifest__quoted_and_block_scalars);
	tcase_add_test(tc, test_manifest__keys_become_strings);
	tcase_add_test(tc, test_manifest__anchors_and_merge);
	tcase_add_test(tc, test_manifest__alias_bomb_is_capped);
	tcase_add_test(tc, test_manifest__alias_bytes_capped_per_document);
	tcase_add_test(tc, test_manifest__alias_bytes_capped_per_revision);
	tcase_add_test(tc, test_manifest__substitution_bytes_capped);
	tcase_add_test(tc, test_manifest__substitution_opt_out);
	tcase_add_test(tc, test_manifest__parse_positions_and_lists);
	tcase_add_test(tc, test_manifest__every_error_with_file_line_col);
	tcase_add_test(tc, test_manifest__size_cap);
	tcase_add_test(tc, test_manifest__substitution);
	tcase_add_test(tc, test_manifest__substitution_errors);
	tcase_add_test(tc, test_manifest__validation_reports_everything);
	tcase_add_test(tc, test_manifest__render_order_selector_namespace);
	tcase_add_test(tc, test_manifest__render_scope_callback_and_duplicates);
	tcase_add_test(tc, test_manifest__render_fails_whole_revision);
	suite_add_tcase(s, tc);
	return test_run(s);
}
