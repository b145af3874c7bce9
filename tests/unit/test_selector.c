/* Unit tests for label selectors (pkg/manifest/selector.c): a table of
 * expressions × label sets. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "manifest/manifest.h"
#include "test_json.h"

static const manifest_var prod_eu[] = { { "env", "prod" }, { "region", "eu" }, { "gpu", "" },
	{ "example.com/tier", "gold" } };
static const manifest_var dev_us[] = { { "env", "dev" }, { "region", "us" }, { "spot", "true" } };

static const struct {
	const char *expr;
	int prod_eu, dev_us, none;
} table[] = {
	{ "", 1, 1, 1 },
	{ "env=prod", 1, 0, 0 },
	{ "env==prod", 1, 0, 0 },
	{ "env!=prod", 0, 1, 1 },
	{ "env in (prod, staging)", 1, 0, 0 },
	{ "env in (dev)", 0, 1, 0 },
	{ "env notin (prod,staging)", 0, 1, 1 },
	{ "region", 1, 1, 0 },
	{ "!spot", 1, 0, 1 },
	{ "spot", 0, 1, 0 },
	{ "gpu=", 1, 0, 0 },
	{ "gpu", 1, 0, 0 },
	{ "env=prod,region=eu", 1, 0, 0 },
	{ "env=prod, region=us", 0, 0, 0 },
	{ "region in (eu,us),!spot", 1, 0, 0 },
	{ "example.com/tier=gold", 1, 0, 0 },
	{ "example.com/tier notin (gold)", 0, 1, 1 },
	{ "  env  =  prod  ", 1, 0, 0 },
	{ "env in (prod),env notin (prod)", 0, 0, 0 },
};

static const struct {
	const char *expr;
	const char *why;
} bad[] = {
	{ "env=", NULL }, /* placeholder: valid, checked above */
	{ "env in prod", "expected '('" },
	{ "env in ()", "cannot be empty" },
	{ "env in (a", "expected" },
	{ "=prod", "expected a label key" },
	{ "env=prod,", "expected a label key" },
	{ "env prod", "expected one of" },
	{ "env=pr od", "expected ','" },
	{ "-bad=x", "invalid label key" },
	{ "a/b/c=x", "invalid label key" },
	{ "env=-x-", "invalid label value" },
	{ "env>1", "expected one of" },
	{ "!", "expected a label key" },
};

START_TEST(test_selector__table)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		manifest_selector *s = NULL;
		ck_assert_msg(manifest_selector_parse(&s, table[i].expr) == 0, "%s: %s", table[i].expr, plumb_error_last());
		ck_assert_msg(manifest_selector_matches(s, prod_eu, 4) == table[i].prod_eu, "%s vs prod_eu", table[i].expr);
		ck_assert_msg(manifest_selector_matches(s, dev_us, 3) == table[i].dev_us, "%s vs dev_us", table[i].expr);
		ck_assert_msg(manifest_selector_matches(s, NULL, 0) == table[i].none, "%s vs no labels", table[i].expr);
		manifest_selector_free(s);
	}
}
END_TEST

START_TEST(test_selector__errors_name_the_column)
{
	for (size_t i = 1; i < sizeof(bad) / sizeof(bad[0]); i++) {
		manifest_selector *s = NULL;
		ck_assert_msg(manifest_selector_parse(&s, bad[i].expr) == PLUMB_EINVALID, "accepted %s", bad[i].expr);
		ck_assert_ptr_null(s);
		ck_assert_msg(strstr(plumb_error_last(), bad[i].why), "%s: %s", bad[i].expr, plumb_error_last());
		ck_assert_msg(strstr(plumb_error_last(), "column "), "%s", plumb_error_last());
	}
	manifest_selector *s = NULL;
	ck_assert_int_eq(manifest_selector_parse(&s, "env in (prod"), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "column 13"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("selector");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_selector__table);
	tcase_add_test(tc, test_selector__errors_name_the_column);
	suite_add_tcase(s, tc);
	return test_run(s);
}
