/* Unit tests for the controller's work queue: debounce, ceiling, backoff,
 * one worker per key. Times are given explicitly where the logic is about
 * time, so the tests do not depend on the machine's speed. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"

static controller_queue *q;

static void setup(void) { ck_assert_int_eq(controller_queue_new(&q, 1, 300), 0); }
static void teardown(void) { controller_queue_free(q); }

/* Pops what is due at `now`; returns 1 and checks the key when one is due. */
static int pop(double now, const char *want)
{
	char *key = NULL;
	if (controller_queue_pop_ready(q, &key, now, NULL) != 0)
		return 0;
	ck_assert_str_eq(key, want);
	controller_queue_done(q, key);
	free(key);
	return 1;
}

START_TEST(test_queue__quiet_item_runs_at_once)
{
	controller_queue_trigger_at(q, "ns/gs/c1", 1.0, 1000);
	ck_assert_int_eq(pop(1000, "ns/gs/c1"), 1);
	ck_assert_int_eq(pop(1000, "ns/gs/c1"), 0);
}
END_TEST

START_TEST(test_queue__burst_coalesces)
{
	/* 20 triggers, 0.1 s apart, debounce 1 s: the first runs at once, the
	 * rest coalesce into one run per debounce window. */
	double t0 = 1000;
	int runs = 0;
	double last_run = 0;
	for (int i = 0; i < 20; i++) {
		double now = t0 + i * 0.1;
		controller_queue_trigger_at(q, "ns/gs/c1", 1.0, now);
		if (pop(now, "ns/gs/c1")) {
			runs++;
			last_run = now;
		}
	}
	/* After the burst: one more run, when the window closes. */
	ck_assert_int_eq(pop(t0 + 1.95, "ns/gs/c1"), 0);
	if (pop(t0 + 2.0 + 1e-9, "ns/gs/c1")) {
		runs++;
		last_run = t0 + 2.0;
	}
	ck_assert_int_eq(pop(t0 + 100, "ns/gs/c1"), 0);
	ck_assert_int_eq(runs, 3);               /* t0, t0+1, t0+2 */
	ck_assert(last_run >= t0 + 1.9);         /* the last trigger was acted on */
}
END_TEST

START_TEST(test_queue__steady_trickle_is_not_starved)
{
	/* A trigger every 0.5 s with debounce 1 s: a run every second. */
	double t0 = 1000;
	int runs = 0;
	for (int i = 0; i < 40; i++) {
		double now = t0 + i * 0.5;
		controller_queue_trigger_at(q, "k", 1.0, now);
		runs += pop(now + 1e-9, "k");
	}
	ck_assert_int_ge(runs, 19);
	ck_assert_int_le(runs, 21);
}
END_TEST

START_TEST(test_queue__keys_are_independent)
{
	/* Both ran at 1000; retriggered at 1000.5, each waits for its own window. */
	controller_queue_trigger_at(q, "a", 1.0, 1000);
	controller_queue_trigger_at(q, "b", 5.0, 1000);
	ck_assert_int_eq(pop(1000, "a"), 1);
	ck_assert_int_eq(pop(1000, "b"), 1);
	controller_queue_trigger_at(q, "a", 1.0, 1000.5);
	controller_queue_trigger_at(q, "b", 5.0, 1000.5);
	ck_assert_int_eq(pop(1001, "a"), 1);
	ck_assert_int_eq(pop(1001, "b"), 0);
	ck_assert_int_eq(pop(1005, "b"), 1);
}
END_TEST

START_TEST(test_queue__never_two_workers_on_one_key)
{
	char *k1 = NULL, *k2 = NULL;
	controller_queue_add_after(q, "x", 0);
	ck_assert_int_eq(controller_queue_get(q, &k1, 1), 0);
	/* Triggered again while held: not handed out until done. */
	controller_queue_add_after(q, "x", 0);
	ck_assert_uint_eq(controller_queue_depth(q), 1);
	ck_assert_int_eq(controller_queue_get(q, &k2, 0.2), PLUMB_ETIMEOUT);
	controller_queue_done(q, k1);
	ck_assert_int_eq(controller_queue_get(q, &k2, 1), 0);
	ck_assert_str_eq(k2, "x");
	controller_queue_done(q, k2);
	free(k1);
	free(k2);
	ck_assert_uint_eq(controller_queue_depth(q), 0);
}
END_TEST

START_TEST(test_queue__backoff_grows_and_forget_resets)
{
	double d0 = controller_queue_backoff(q, "k", 0);
	double d1 = controller_queue_backoff(q, "k", 0);
	double d2 = controller_queue_backoff(q, "k", 0);
	ck_assert(d0 >= 0.8 && d0 <= 1.0);
	ck_assert(d1 >= 1.6 && d1 <= 2.0);
	ck_assert(d2 >= 3.2 && d2 <= 4.0);
	for (int i = 0; i < 20; i++)
		controller_queue_backoff(q, "k", 0);
	double capped = controller_queue_backoff(q, "k", 0);
	ck_assert(capped <= 300 && capped >= 240);
	ck_assert_uint_eq(controller_queue_failures(q, "k"), 24);
	ck_assert_uint_eq(controller_queue_retries(q), 24);
	/* Retry-After longer than the backoff wins. */
	controller_queue_forget(q, "k");
	ck_assert_uint_eq(controller_queue_failures(q, "k"), 0);
	ck_assert_double_eq(controller_queue_backoff(q, "k", 30), 30);
}
END_TEST

START_TEST(test_queue__failure_replaces_an_earlier_schedule)
{
	char *k = NULL;
	double now = plumb_time_mono();
	controller_queue_add_after(q, "k", 0);
	ck_assert_int_eq(controller_queue_get(q, &k, 1), 0);
	controller_queue_backoff(q, "k", 60);
	controller_queue_done(q, k);
	free(k);
	ck_assert_int_eq(controller_queue_pop_ready(q, &k, now + 59, NULL), PLUMB_ENOTFOUND);
	double next = 0;
	controller_queue_pop_ready(q, &k, now, &next);
	ck_assert(next >= now + 60);
}
END_TEST

static void *shutdown_later(void *arg)
{
	plumb_sleep(0.2);
	controller_queue_shutdown(arg);
	return NULL;
}

START_TEST(test_queue__shutdown_wakes_waiting_workers)
{
	pthread_t t;
	char *k = NULL;
	pthread_create(&t, NULL, shutdown_later, q);
	ck_assert_int_eq(controller_queue_get(q, &k, 30), PLUMB_ECANCELED);
	pthread_join(t, NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("queue");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_queue__quiet_item_runs_at_once);
	tcase_add_test(tc, test_queue__burst_coalesces);
	tcase_add_test(tc, test_queue__steady_trickle_is_not_starved);
	tcase_add_test(tc, test_queue__keys_are_independent);
	tcase_add_test(tc, test_queue__never_two_workers_on_one_key);
	tcase_add_test(tc, test_queue__backoff_grows_and_forget_resets);
	tcase_add_test(tc, test_queue__failure_replaces_an_earlier_schedule);
	tcase_add_test(tc, test_queue__shutdown_wakes_waiting_workers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
