/* Unit tests for pkg/base. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/base.h"

START_TEST(test_base__buf_cap_is_enforced)
{
	plumb_buf b = PLUMB_BUF_INIT(8);
	ck_assert_int_eq(plumb_buf_puts(&b, "12345678"), 0);
	ck_assert_int_eq(plumb_buf_puts(&b, "9"), PLUMB_ETOOBIG);
	ck_assert_str_eq(b.ptr, "12345678");
	ck_assert_uint_eq(b.len, 8);
	plumb_buf_consume(&b, 3);
	ck_assert_str_eq(b.ptr, "45678");
	plumb_buf_free(&b);
}
END_TEST

START_TEST(test_base__json_string_escapes)
{
	plumb_buf b = PLUMB_BUF_INIT(1024);
	ck_assert_int_eq(plumb_buf_json_string(&b, "a\"b\\c\n\x01"), 0);
	ck_assert_str_eq(b.ptr, "\"a\\\"b\\\\c\\n\\u0001\"");
	plumb_buf_free(&b);
}
END_TEST

START_TEST(test_base__duration_parse)
{
	double d;
	ck_assert_int_eq(plumb_duration_parse(&d, "1m30s"), 0);
	ck_assert_double_eq_tol(d, 90, 1e-9);
	ck_assert_int_eq(plumb_duration_parse(&d, "500ms"), 0);
	ck_assert_double_eq_tol(d, 0.5, 1e-9);
	ck_assert_int_eq(plumb_duration_parse(&d, "2h"), 0);
	ck_assert_double_eq_tol(d, 7200, 1e-9);
	ck_assert_int_eq(plumb_duration_parse(&d, "0"), 0);
	ck_assert_double_eq_tol(d, 0, 1e-9);
	ck_assert_int_eq(plumb_duration_parse(&d, "10"), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "\"10\""));
	ck_assert_int_eq(plumb_duration_parse(&d, "1x"), PLUMB_EINVALID);
	ck_assert_int_eq(plumb_duration_parse(&d, ""), PLUMB_EINVALID);
}
END_TEST

START_TEST(test_base__time_roundtrip)
{
	double t;
	char out[48];
	ck_assert_int_eq(plumb_time_parse(&t, "2026-11-26T11:00:00Z"), 0);
	plumb_time_rfc3339(out, sizeof(out), t);
	ck_assert_str_eq(out, "2026-11-26T11:00:00Z");
	ck_assert_int_eq(plumb_time_parse(&t, "2026-11-26T12:00:00.250000+01:00"), 0);
	plumb_time_micro(out, sizeof(out), t);
	ck_assert_str_eq(out, "2026-11-26T11:00:00.250000Z");
	ck_assert_int_eq(plumb_time_parse(&t, "yesterday"), PLUMB_EINVALID);
}
END_TEST

START_TEST(test_base__backoff_grows_and_caps)
{
	ck_assert_double_eq_tol(plumb_backoff(0, 1, 300, 0), 1, 1e-9);
	ck_assert_double_eq_tol(plumb_backoff(3, 1, 300, 0), 8, 1e-9);
	ck_assert_double_eq_tol(plumb_backoff(40, 1, 300, 0), 300, 1e-9);
	for (int i = 0; i < 100; i++) {
		double d = plumb_backoff(4, 1, 300, 0.5);
		ck_assert(d >= 8 && d <= 16);
	}
}
END_TEST

START_TEST(test_base__base64_roundtrip)
{
	const char *cases[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *enc = NULL, *dec = NULL;
		size_t n;
		ck_assert_int_eq(plumb_base64_encode(&enc, cases[i], strlen(cases[i])), 0);
		ck_assert_int_eq(plumb_base64_decode(&dec, &n, enc, strlen(enc)), 0);
		ck_assert_uint_eq(n, strlen(cases[i]));
		ck_assert_str_eq(dec, cases[i]);
		free(enc);
		free(dec);
	}
	char *dec = NULL;
	ck_assert_int_eq(plumb_base64_decode(&dec, NULL, "Zm9v\nYmFy", 9), 0);
	ck_assert_str_eq(dec, "foobar");
	free(dec);
	ck_assert_int_eq(plumb_base64_decode(&dec, NULL, "Zm9v*", 5), PLUMB_EINVALID);
}
END_TEST

START_TEST(test_base__ct_equal)
{
	ck_assert(plumb_ct_equal("abc", 3, "abc", 3));
	ck_assert(!plumb_ct_equal("abc", 3, "abd", 3));
	ck_assert(!plumb_ct_equal("abc", 3, "abcd", 4));
}
END_TEST

START_TEST(test_base__error_prefix)
{
	plumb_error_set(PLUMB_ENOTFOUND, "configmaps \"x\" not found");
	ck_assert_int_eq(plumb_error_prefix(PLUMB_ENOTFOUND, "cluster c1"), PLUMB_ENOTFOUND);
	ck_assert_str_eq(plumb_error_last(), "cluster c1: configmaps \"x\" not found");
	ck_assert_int_eq(plumb_error_last_code(), PLUMB_ENOTFOUND);
}
END_TEST

START_TEST(test_base__keep_records)
{
	size_t mapped = plumb_keep_mapped();
	unsigned char *a = plumb_keep_alloc(40), *b, *big;
	char *s;
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq((uintptr_t)a % 8, 0);
	for (int i = 0; i < 40; i++)
		ck_assert_uint_eq(a[i], 0);
	memset(a, 0xab, 40);
	/* a freed record of the same size class is reused, zeroed */
	plumb_keep_free(a);
	b = plumb_keep_alloc(33);
	ck_assert_ptr_eq(a, b);
	for (int i = 0; i < 33; i++)
		ck_assert_uint_eq(b[i], 0);
	plumb_keep_free(b);
	/* records come from mapped chunks, not from malloc */
	ck_assert_uint_ge(plumb_keep_mapped(), mapped);
	ck_assert_uint_gt(plumb_keep_mapped(), 0);
	/* past 1 KiB: malloc underneath, freed the same way */
	big = plumb_keep_alloc(5000);
	ck_assert_ptr_nonnull(big);
	big[4999] = 1;
	plumb_keep_free(big);
	s = plumb_keep_strdup("plumb.dev/gitsync");
	ck_assert_str_eq(s, "plumb.dev/gitsync");
	plumb_keep_free(s);
	ck_assert_ptr_null(plumb_keep_strdup(NULL));
	plumb_keep_free(NULL);
}
END_TEST

static void *keep_worker(void *arg)
{
	void *held[64] = { 0 };
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (int i = 0; i < 20000; i++) {
		int k = (int)(rand_r(&seed) % 64);
		plumb_keep_free(held[k]);
		held[k] = plumb_keep_alloc(1 + rand_r(&seed) % 300);
		if (!held[k])
			return (void *)1;
		memset(held[k], k, 1);
	}
	for (int k = 0; k < 64; k++)
		plumb_keep_free(held[k]);
	return NULL;
}

START_TEST(test_base__keep_records_threads)
{
	pthread_t th[4];
	void *ret;
	size_t before = plumb_keep_mapped();
	for (uintptr_t i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, keep_worker, (void *)(i + 1)), 0);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], &ret), 0);
		ck_assert_ptr_null(ret);
	}
	/* 4 x 64 records of at most 300 bytes alive at once: freed records are
	 * reused, so a few chunks are plenty */
	ck_assert_uint_le(plumb_keep_mapped() - before, 4u * 256 * 1024);
}
END_TEST

static void *region_worker(void *arg)
{
	plumb_region_enter(arg);
	cJSON *o = cJSON_Parse("{\"a\":[1,2,3],\"b\":\"text\"}");
	plumb_region_leave();
	return o;
}

START_TEST(test_base__json_regions)
{
	plumb_region *r = plumb_region_new();
	cJSON *outside, *inside, *from_thread;
	char *text;
	pthread_t th;

	plumb_json_hooks();
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_null(plumb_region_current());
	outside = cJSON_Parse("{\"kept\":true}");
	ck_assert_uint_eq(plumb_region_mapped(r), 0);

	plumb_region_enter(r);
	ck_assert_ptr_eq(plumb_region_current(), r);
	inside = cJSON_CreateArray();
	for (int i = 0; i < 5000; i++)
		cJSON_AddItemToArray(inside, cJSON_CreateString("a string long enough to matter"));
	/* the nodes came from the region's chunks, not from the heap */
	ck_assert_uint_ge(plumb_region_mapped(r), 5000 * 64);
	text = cJSON_PrintUnformatted(inside);   /* large: from malloc */
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(text[0], '[');
	cJSON_free(text);
	cJSON_Delete(inside);                     /* frees nothing; the region does */
	plumb_region_leave();
	ck_assert_ptr_null(plumb_region_current());

	/* another thread working for the region */
	ck_assert_int_eq(pthread_create(&th, NULL, region_worker, r), 0);
	ck_assert_int_eq(pthread_join(th, (void **)&from_thread), 0);
	ck_assert_ptr_nonnull(from_thread);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(from_thread, "a")), 3);
	cJSON_Delete(from_thread);
	plumb_region_free(r);

	/* outside any region: plain heap, usable after the region is gone */
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(outside, "kept")));
	text = cJSON_PrintUnformatted(outside);
	ck_assert_str_eq(text, "{\"kept\":true}");
	cJSON_free(text);
	cJSON_Delete(outside);
	plumb_region_free(NULL);
}
END_TEST

START_TEST(test_base__hex)
{
	unsigned char b[4], in[] = { 0x00, 0x7f, 0xab, 0xff };
	char out[9];
	plumb_hex_encode(out, in, 4);
	ck_assert_str_eq(out, "007fabff");
	ck_assert_int_eq(plumb_hex_decode(b, 4, "007FabfF"), 0);
	ck_assert_mem_eq(b, in, 4);
	ck_assert_int_eq(plumb_hex_decode(b, 4, "007fab"), PLUMB_EINVALID);   /* short */
	ck_assert_int_eq(plumb_hex_decode(b, 4, "007fabfg"), PLUMB_EINVALID); /* not hex */
}
END_TEST

START_TEST(test_base__json_get)
{
	cJSON *o = cJSON_Parse("{\"spec\": {\"git\": {\"url\": \"https://x\", \"ref\": {\"branch\": \"main\"}},"
		" \"n\": 3, \"list\": [{\"a\": 1}], \"\": {\"e\": \"empty\"}, \"Spec\": \"other\","
		" \"a.b\": \"dotted\", \"long\": {\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\": \"y\"}}}");
	ck_assert_ptr_nonnull(o);
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
	ck_assert_ptr_eq(plumb_json_get(o, "spec"), spec);
	ck_assert_ptr_eq(plumb_json_get(o, ""), o);
	ck_assert_str_eq(plumb_json_str(o, "spec.git.url"), "https://x");
	ck_assert_str_eq(plumb_json_str(o, "spec.git.ref.branch"), "main");
	ck_assert_ptr_nonnull(plumb_json_get(o, "spec.git.ref"));
	ck_assert_str_eq(plumb_json_str(o, "spec..e"), "empty");   /* an empty step is the member "" */
	ck_assert_str_eq(plumb_json_str(o, "spec.git.url."), "https://x"); /* a trailing dot ends the path */
	ck_assert_ptr_null(plumb_json_str(o, "spec.n"));            /* not a string */
	ck_assert_int_eq((int)plumb_json_get(o, "spec.n")->valuedouble, 3);
	ck_assert_ptr_null(plumb_json_get(o, "spec.git.tag"));      /* missing */
	ck_assert_ptr_null(plumb_json_get(o, "spec.git.url.x"));    /* below a string */
	ck_assert_ptr_null(plumb_json_get(o, "spec.list.a"));       /* arrays are not walked */
	ck_assert_ptr_null(plumb_json_get(o, "spec.gi"));           /* a prefix of a name is not the name */
	ck_assert_ptr_null(plumb_json_get(o, "spec.gitx"));
	ck_assert_ptr_null(plumb_json_get(o, "SPEC"));              /* names are case-sensitive */
	ck_assert_ptr_null(plumb_json_get(o, "spec.a.b"));          /* no escaping of dots */
	ck_assert_str_eq(plumb_json_str(o, "spec.long.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), "y");
	ck_assert_ptr_null(plumb_json_get(NULL, "spec"));
	ck_assert_ptr_null(plumb_json_str(NULL, ""));
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_base__map_basics)
{
	plumb_map m = { 0 };
	void *old = (void *)1;
	ck_assert_ptr_null(plumb_map_get(&m, "a"));   /* an empty map has no table */
	ck_assert_int_eq(plumb_map_has(&m, "a"), 0);
	ck_assert_ptr_null(plumb_map_del(&m, "a"));
	ck_assert_int_eq(plumb_map_put(&m, "a", (void *)10, &old), 0);
	ck_assert_ptr_null(old);
	ck_assert_int_eq(plumb_map_put(&m, "b", NULL, NULL), 0);
	ck_assert_ptr_eq(plumb_map_get(&m, "a"), (void *)10);
	ck_assert_ptr_null(plumb_map_get(&m, "b"));
	ck_assert_int_eq(plumb_map_has(&m, "b"), 1);  /* a NULL value is not a missing key */
	ck_assert_int_eq(plumb_map_has(&m, "c"), 0);
	ck_assert_int_eq(plumb_map_put(&m, "a", (void *)11, &old), 0);
	ck_assert_ptr_eq(old, (void *)10);
	ck_assert_uint_eq(m.count, 2);
	ck_assert_ptr_eq(plumb_map_del(&m, "a"), (void *)11);
	ck_assert_int_eq(plumb_map_has(&m, "a"), 0);
	ck_assert_ptr_null(plumb_map_del(&m, "a"));
	ck_assert_uint_eq(m.count, 1);
	ck_assert_int_eq(plumb_map_put(&m, "a", (void *)12, NULL), 0); /* back after removal */
	ck_assert_ptr_eq(plumb_map_get(&m, "a"), (void *)12);
	char key[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_int_eq(plumb_map_put(&m, key, (void *)(intptr_t)(i + 1), NULL), 0);
	}
	ck_assert_uint_eq(m.count, 5002);
	ck_assert_uint_le(m.used * 4, m.cap * 3);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_ptr_eq(plumb_map_get(&m, key), (void *)(intptr_t)(i + 1));
	}
	size_t i = 0, n = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&m, &i, &k, &v))
		n++;
	ck_assert_uint_eq(n, 5002);
	plumb_map_free(&m, NULL);
	ck_assert_uint_eq(m.count, 0);
	ck_assert_ptr_null(m.keys);
	ck_assert_ptr_null(plumb_map_get(&m, "a"));
}
END_TEST

/* Removing the entry the iteration just returned leaves the rest reachable. */
START_TEST(test_base__map_del_while_iterating)
{
	plumb_map m = { 0 };
	char key[32];
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_int_eq(plumb_map_put(&m, key, (void *)(intptr_t)i, NULL), 0);
	}
	size_t i = 0, seen = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&m, &i, &k, &v)) {
		seen++;
		if ((intptr_t)v % 2)
			ck_assert_ptr_eq(plumb_map_del(&m, k), v);
	}
	ck_assert_uint_eq(seen, 300);
	ck_assert_uint_eq(m.count, 150);
	for (int j = 0; j < 300; j++) {
		snprintf(key, sizeof(key), "k%d", j);
		ck_assert_int_eq(plumb_map_has(&m, key), j % 2 == 0);
	}
	plumb_map_free(&m, NULL);
}
END_TEST

/* Put/remove churn over a steady set of keys does not grow the table. */
START_TEST(test_base__map_churn_does_not_grow)
{
	plumb_map m = { 0 };
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "steady%d", i);
		ck_assert_int_eq(plumb_map_put(&m, key, (void *)1, NULL), 0);
	}
	size_t cap = m.cap;
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "churn%d", i);
		ck_assert_int_eq(plumb_map_put(&m, key, (void *)2, NULL), 0);
		ck_assert_ptr_eq(plumb_map_del(&m, key), (void *)2);
	}
	ck_assert_uint_eq(m.count, 100);
	ck_assert_uint_eq(m.cap, cap);
	ck_assert_uint_le(m.used * 4, m.cap * 3);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "steady%d", i);
		ck_assert_ptr_eq(plumb_map_get(&m, key), (void *)1);
	}
	plumb_map_free(&m, NULL);
}
END_TEST

static int retain_even(const char *key, void *val, void *data)
{
	(void)key;
	(*(int *)data)++;
	return val && *(int *)val % 2 == 0;
}

static int map_freed;
static void count_free(void *p)
{
	map_freed++;
	plumb_keep_free(p);
}

/* retain: one call per entry, NULL values passed to keep but not to free_val,
 * the table right-sized afterwards; keep-maps take keys from the keep chunks. */
START_TEST(test_base__map_retain_and_keep)
{
	plumb_map m = { .keep = 1 };
	size_t mapped = plumb_keep_mapped();
	char key[32];
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "obj/%d", i);
		int *v = plumb_keep_alloc(sizeof(int));
		ck_assert_ptr_nonnull(v);
		*v = i;
		ck_assert_int_eq(plumb_map_put(&m, key, v, NULL), 0);
	}
	ck_assert_int_eq(plumb_map_put(&m, "nothing", NULL, NULL), 0);
	ck_assert_uint_gt(plumb_keep_mapped(), mapped);
	size_t cap = m.cap;
	int calls = 0;
	map_freed = 0;
	plumb_map_retain(&m, retain_even, &calls, count_free);
	ck_assert_int_eq(calls, 2001);
	ck_assert_int_eq(map_freed, 1000);            /* the NULL value was dropped, not freed */
	ck_assert_uint_eq(m.count, 1000);
	ck_assert_int_eq(plumb_map_has(&m, "nothing"), 0);
	ck_assert_uint_lt(m.cap, cap);                /* rebuilt at the size 1000 entries need */
	ck_assert_uint_eq(m.used, m.count);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "obj/%d", i);
		int *v = plumb_map_get(&m, key);
		if (i % 2) {
			ck_assert_ptr_null(v);
		} else {
			ck_assert_ptr_nonnull(v);
			ck_assert_int_eq(*v, i);
		}
	}
	/* Nothing removed: the table stays as it is. */
	char **keys = m.keys;
	calls = 0;
	plumb_map_retain(&m, retain_even, &calls, count_free);
	ck_assert_int_eq(calls, 1000);
	ck_assert_ptr_eq(m.keys, keys);
	map_freed = 0;
	plumb_map_free(&m, count_free);
	ck_assert_int_eq(map_freed, 1000);
	ck_assert_int_eq(m.keep, 1);                  /* free keeps the setting for reuse */
	ck_assert_uint_eq(m.count, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("base");
	TCase *tc = tcase_create("base");
	tcase_add_test(tc, test_base__buf_cap_is_enforced);
	tcase_add_test(tc, test_base__json_string_escapes);
	tcase_add_test(tc, test_base__duration_parse);
	tcase_add_test(tc, test_base__time_roundtrip);
	tcase_add_test(tc, test_base__backoff_grows_and_caps);
	tcase_add_test(tc, test_base__base64_roundtrip);
	tcase_add_test(tc, test_base__ct_equal);
	tcase_add_test(tc, test_base__error_prefix);
	tcase_add_test(tc, test_base__keep_records);
	tcase_add_test(tc, test_base__keep_records_threads);
	tcase_add_test(tc, test_base__json_regions);
	tcase_add_test(tc, test_base__hex);
	tcase_add_test(tc, test_base__json_get);
	tcase_add_test(tc, test_base__map_basics);
	tcase_add_test(tc, test_base__map_del_while_iterating);
	tcase_add_test(tc, test_base__map_churn_does_not_grow);
	tcase_add_test(tc, test_base__map_retain_and_keep);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
