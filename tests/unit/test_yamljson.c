/* Unit tests for pkg/yamljson: the two typings side by side, the first
 * document only, the caps given in the options, substitution through a
 * lookup. (kubectl's typing in depth: test_manifest.c; kubeconfig fields:
 * test_kube.c.) */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "yamljson/yamljson.h"

static yamljson_opts opts_of(yamljson_typing typing)
{
	yamljson_opts o = { .typing = typing, .max_nodes = 1000, .max_doc_bytes = 1 << 20, .max_depth = 10 };
	return o;
}

/* The first document of yaml as compact JSON (caller frees); NULL when the
 * stream has none. Fails the test on an error. */
static char *first(yamljson_typing typing, const char *yaml)
{
	yamljson_opts o = opts_of(typing);
	yamljson_error err;
	cJSON *v = NULL;
	int rc = yamljson_first(&v, &err, yaml, strlen(yaml), &o);
	ck_assert_msg(rc == 0, "%s: %d:%d: %s", yaml, err.line, err.col, err.msg);
	if (!v)
		return NULL;
	char *s = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return s;
}

static void expect(yamljson_typing typing, const char *yaml, const char *json)
{
	char *got = first(typing, yaml);
	ck_assert_msg(got && !strcmp(got, json), "%s\n  got:  %s\n  want: %s", yaml, got ? got : "(none)", json);
	free(got);
}

static void expect_error(yamljson_typing typing, const char *yaml, int code, const char *needle)
{
	yamljson_opts o = opts_of(typing);
	yamljson_error err;
	cJSON *v = NULL;
	int rc = yamljson_first(&v, &err, yaml, strlen(yaml), &o);
	ck_assert_msg(rc == code, "%s: rc %d, want %d", yaml, rc, code);
	ck_assert_int_eq(err.code, code);
	ck_assert_msg(strstr(err.msg, needle), "%s: error \"%s\" lacks \"%s\"", yaml, err.msg, needle);
	ck_assert_int_gt(err.line, 0);
	ck_assert_ptr_null(v);
}

START_TEST(test_yamljson__typings_side_by_side)
{
	const char *yaml = "[yes, On, n, true, True, FALSE, ~, null, '', 0x1F, 012, 1_000, 1e3, .5, .inf, <<, "
		"!!str true, !!int '3', 'yes', 9007199254740993]";
	expect(YAMLJSON_GO_YAML, "[yes, On, n, true, True, FALSE, ~, null, '', 0x1F, 012, 1_000, 1e3, .5, "
		"!!str true, !!int '3', 'yes', 9007199254740993]",
		"[true,true,false,true,true,false,null,null,\"\",31,10,1000,1000,0.5,\"true\",3,\"yes\",9007199254740993]");
	/* The kubeconfig subset: only true/false and null are typed, tags are
	 * not looked at (a plain `!!str true` is typed by its text, a quoted
	 * `!!int '3'` is the string). */
	expect(YAMLJSON_KUBECONFIG, yaml,
		"[\"yes\",\"On\",\"n\",true,true,false,null,null,\"\",\"0x1F\",\"012\",\"1_000\",\"1e3\",\".5\",\".inf\","
		"\"<<\",true,\"3\",\"yes\",\"9007199254740993\"]");
	/* Keys: kubectl's typing turns them into their value's text; a
	 * kubeconfig's keys are the text written. */
	expect(YAMLJSON_GO_YAML, "{yes: 1, 0x1F: 2, True: 3}", "{\"true\":3,\"31\":2}");
	expect(YAMLJSON_KUBECONFIG, "{yes: 1, 0x1F: 2, True: 3, ~: 4}",
		"{\"yes\":\"1\",\"0x1F\":\"2\",\"True\":\"3\",\"~\":\"4\"}");
	/* Merge keys merge only with kubectl's typing. */
	expect(YAMLJSON_GO_YAML, "{a: &m {x: 1}, b: {<<: *m, z: 2}}", "{\"a\":{\"x\":1},\"b\":{\"x\":1,\"z\":2}}");
	expect(YAMLJSON_KUBECONFIG, "{a: &m {x: 1}, b: {<<: *m, z: 2}}",
		"{\"a\":{\"x\":\"1\"},\"b\":{\"<<\":{\"x\":\"1\"},\"z\":\"2\"}}");
	/* go-yaml rejects the "\/" escape; kubeconfigs were always read with it. */
	expect_error(YAMLJSON_GO_YAML, "a: \"x\\/y\"", PLUMB_EINVALID, "unknown escape character");
	expect(YAMLJSON_KUBECONFIG, "a: \"x\\/y\"", "{\"a\":\"x/y\"}");
	/* An anchor may be defined again (as go-yaml allows); an alias takes the
	 * latest. (libyaml's loader, which read kubeconfigs before, refused it.) */
	expect(YAMLJSON_KUBECONFIG, "{a: &x 1, b: *x, c: &x 2, d: *x}", "{\"a\":\"1\",\"b\":\"1\",\"c\":\"2\",\"d\":\"2\"}");
	/* !!binary is decoded only with kubectl's typing. */
	expect(YAMLJSON_GO_YAML, "a: !!binary aGk=", "{\"a\":\"hi\"}");
	expect(YAMLJSON_KUBECONFIG, "a: !!binary aGk=", "{\"a\":\"aGk=\"}");
}
END_TEST

START_TEST(test_yamljson__first_document_only)
{
	ck_assert_ptr_null(first(YAMLJSON_KUBECONFIG, ""));
	ck_assert_ptr_null(first(YAMLJSON_GO_YAML, "# only a comment\n"));
	expect(YAMLJSON_GO_YAML, "---\n", "null");
	/* What follows the first document is not read, errors included. */
	expect(YAMLJSON_GO_YAML, "a: 1\n---\n[unclosed\n", "{\"a\":1}");
	/* A directive is fine for one document (kubectl's Unmarshal takes it). */
	expect(YAMLJSON_KUBECONFIG, "%YAML 1.1\n---\na: b\n", "{\"a\":\"b\"}");
	expect_error(YAMLJSON_KUBECONFIG, "a: [unclosed\n", PLUMB_EINVALID, "yaml: ");
}
END_TEST

START_TEST(test_yamljson__caps_from_options)
{
	expect_error(YAMLJSON_KUBECONFIG, "[[[[[[[[[[[[x]]]]]]]]]]]]", PLUMB_EINVALID, "nesting deeper than 10 levels");
	expect(YAMLJSON_KUBECONFIG, "[[[[[[[[[[x]]]]]]]]]]", "[[[[[[[[[[\"x\"]]]]]]]]]]");
	/* Aliases count by what they expand to, in nodes and in bytes. */
	expect_error(YAMLJSON_GO_YAML, "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		"c: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n", PLUMB_ETOOBIG, "more than 1000 nodes");
	plumb_buf b = PLUMB_BUF_INIT(4u << 20);
	plumb_buf_puts(&b, "s: &s \"");
	for (int i = 0; i < 300 * 1024; i++)
		plumb_buf_puts(&b, "x");
	plumb_buf_puts(&b, "\"\nc: [*s, *s, *s]\n");
	yamljson_opts o = opts_of(YAMLJSON_KUBECONFIG);
	yamljson_error err;
	cJSON *v = NULL;
	ck_assert_int_eq(yamljson_first(&v, &err, b.ptr, b.len, &o), PLUMB_ETOOBIG);
	ck_assert_int_eq(err.line, 2);
	ck_assert_msg(strstr(err.msg, "expands to more than 1048576 bytes"), "%s", err.msg);
	plumb_buf_free(&b);
}
END_TEST

static const char *lookup(void *ctx, const char *name, size_t n)
{
	(void)ctx;
	return n == 1 && name[0] == 'N' ? "3" : NULL;
}

typedef struct {
	int docs, errs;
	char out[256];
} collect;

static int on_doc(void *ctx, cJSON *root, const yamljson_doc *d)
{
	collect *c = ctx;
	char *s = cJSON_PrintUnformatted(root);
	size_t used = strlen(c->out);
	snprintf(c->out + used, sizeof(c->out) - used, "%s%d:%s", c->docs++ ? " " : "", d->line, s);
	free(s);
	cJSON_Delete(root);
	return 0;
}

static void on_err(void *ctx, const yamljson_error *e)
{
	collect *c = ctx;
	size_t used = strlen(c->out);
	c->errs++;
	snprintf(c->out + used, sizeof(c->out) - used, " err@%d", e->line);
}

START_TEST(test_yamljson__stream_with_substitution)
{
	yamljson_opts o = opts_of(YAMLJSON_GO_YAML);
	collect c = { 0 };
	const char *yaml = "k: ${N}\n---\nm: ${MISSING}\n---\nd: ${D:=x}\n";
	o.lookup = lookup;
	ck_assert_int_eq(yamljson_stream(yaml, strlen(yaml), &o, on_doc, on_err, &c), PLUMB_EINVALID);
	/* The second document fails at its line; the stream goes on. */
	ck_assert_str_eq(c.out, "1:{\"k\":3} err@3 5:{\"d\":\"x\"}");
	ck_assert_int_eq(c.errs, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("yamljson");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, test_yamljson__typings_side_by_side);
	tcase_add_test(tc, test_yamljson__first_document_only);
	tcase_add_test(tc, test_yamljson__caps_from_options);
	tcase_add_test(tc, test_yamljson__stream_with_substitution);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
