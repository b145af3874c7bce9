/* Unit tests for the controller's pure parts: work items and their queue
 * keys, and what a GitSync's or a Cluster's watch event schedules. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "controller/internal.h"

static cJSON *obj(const char *json)
{
	cJSON *o = cJSON_Parse(json);
	ck_assert_ptr_nonnull(o);
	return o;
}

START_TEST(test_work__keys_round_trip)
{
	work_item w = { .kind = WORK_SYNC }, back;
	char key[WORK_KEY_MAX];
	strcpy(w.gitsync, "team-a/apps");
	strcpy(w.cluster, "fleet/prod-eu");
	ck_assert_int_eq(work_key(key, sizeof(key), &w), 0);
	ck_assert_str_eq(key, "sync|team-a|apps|fleet|prod-eu");
	ck_assert_int_eq(work_parse(&back, key), 0);
	ck_assert_int_eq(back.kind, WORK_SYNC);
	ck_assert_str_eq(back.gitsync, "team-a/apps");
	ck_assert_str_eq(back.cluster, "fleet/prod-eu");

	work_item s = { .kind = WORK_SOURCE };
	strcpy(s.gitsync, "team-a/apps");
	ck_assert_int_eq(work_key(key, sizeof(key), &s), 0);
	ck_assert_str_eq(key, "src|team-a|apps");
	ck_assert_int_eq(work_parse(&back, key), 0);
	ck_assert_int_eq(back.kind, WORK_SOURCE);
	ck_assert_str_eq(back.gitsync, "team-a/apps");
	ck_assert_str_eq(back.cluster, "");

	work_item p = { .kind = WORK_PROBE };
	strcpy(p.cluster, "fleet/prod-eu");
	ck_assert_int_eq(work_key(key, sizeof(key), &p), 0);
	ck_assert_str_eq(key, "probe|fleet|prod-eu");
	ck_assert_int_eq(work_parse(&back, key), 0);
	ck_assert_int_eq(back.kind, WORK_PROBE);
	ck_assert_str_eq(back.gitsync, "");
	ck_assert_str_eq(back.cluster, "fleet/prod-eu");

	/* the longest names Kubernetes allows still fit */
	char ns[64], name[254];
	memset(ns, 'n', 63);
	ns[63] = '\0';
	memset(name, 'x', 253);
	name[253] = '\0';
	snprintf(w.gitsync, sizeof(w.gitsync), "%s/%s", ns, name);
	snprintf(w.cluster, sizeof(w.cluster), "%s/%s", ns, name);
	ck_assert_int_eq(work_key(key, sizeof(key), &w), 0);
	ck_assert_int_eq(work_parse(&back, key), 0);
	ck_assert_str_eq(back.gitsync, w.gitsync);
	ck_assert_str_eq(back.cluster, w.cluster);
}
END_TEST

START_TEST(test_work__malformed_keys_and_items_refused)
{
	static const char *const bad[] = {
		"", "src", "src|", "src|ns", "src|ns|", "src||name", "src|ns|name|extra",
		"sync|ns|gs", "sync|ns|gs|ns", "sync|ns|gs|ns|", "probe|ns", "fetch|ns|name",
		"srcx|ns|name", "sr|ns|name",
	};
	work_item w;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(work_parse(&w, bad[i]) == PLUMB_EINVALID, "accepted \"%s\"", bad[i]);
	ck_assert_int_eq(work_parse(&w, NULL), PLUMB_EINVALID);

	char key[WORK_KEY_MAX];
	work_item s = { .kind = WORK_SOURCE };
	static const char *const bad_obj[] = { "", "name", "/name", "ns/", "ns/a/b", "ns|x/name" };
	for (size_t i = 0; i < sizeof(bad_obj) / sizeof(bad_obj[0]); i++) {
		snprintf(s.gitsync, sizeof(s.gitsync), "%s", bad_obj[i]);
		ck_assert_msg(work_key(key, sizeof(key), &s) == PLUMB_EINVALID, "keyed \"%s\"", bad_obj[i]);
	}
	/* a sync item needs both objects */
	work_item y = { .kind = WORK_SYNC };
	strcpy(y.gitsync, "ns/gs");
	ck_assert_int_eq(work_key(key, sizeof(key), &y), PLUMB_EINVALID);
	/* too small a buffer is an error, not a truncated key */
	strcpy(s.gitsync, "team-a/apps");
	ck_assert_int_eq(work_key(key, 10, &s), PLUMB_EINVALID);
}
END_TEST

START_TEST(test_decide__gitsync_events)
{
	cJSON *v1 = obj("{\"metadata\":{\"generation\":1}}");
	cJSON *v1_status = obj("{\"metadata\":{\"generation\":1},\"status\":{\"observedGeneration\":1}}");
	cJSON *v2 = obj("{\"metadata\":{\"generation\":2}}");
	cJSON *nogen = obj("{\"metadata\":{}}");
	cJSON *req = obj("{\"metadata\":{\"generation\":1,\"annotations\":{\"plumb.dev/requested-at\":\"t1\"}}}");
	cJSON *req2 = obj("{\"metadata\":{\"generation\":1,\"annotations\":{\"plumb.dev/requested-at\":\"t2\"}}}");
	cJSON *hook = obj("{\"metadata\":{\"generation\":1},\"status\":{\"webhookReceivedAt\":\"h1\"}}");
	cJSON *hook2 = obj("{\"metadata\":{\"generation\":1},\"status\":{\"webhookReceivedAt\":\"h2\"}}");

	/* new to plumbd: everything, whatever its status says */
	ck_assert_int_eq(gitsync_event_decide(NULL, v1, NULL), GITSYNC_EVENT_ALL);
	ck_assert_int_eq(gitsync_event_decide(NULL, hook, "t1"), GITSYNC_EVENT_ALL);
	/* the spec changed */
	ck_assert_int_eq(gitsync_event_decide(v1, v2, NULL), GITSYNC_EVENT_ALL);
	ck_assert_int_eq(gitsync_event_decide(nogen, v1, NULL), GITSYNC_EVENT_ALL);
	/* our own status write: nothing */
	ck_assert_int_eq(gitsync_event_decide(v1, v1_status, NULL), GITSYNC_EVENT_NONE);
	ck_assert_int_eq(gitsync_event_decide(v1, v1, NULL), GITSYNC_EVENT_NONE);
	/* plumbctl sync: a request not handled yet, and not seen before */
	ck_assert_int_eq(gitsync_event_decide(v1, req, NULL), GITSYNC_EVENT_ALL);
	ck_assert_int_eq(gitsync_event_decide(v1, req, "t0"), GITSYNC_EVENT_ALL);
	ck_assert_int_eq(gitsync_event_decide(v1, req, "t1"), GITSYNC_EVENT_NONE);
	ck_assert_int_eq(gitsync_event_decide(req, req, NULL), GITSYNC_EVENT_NONE);
	ck_assert_int_eq(gitsync_event_decide(req, req2, "t1"), GITSYNC_EVENT_ALL);
	/* a webhook a standby passed on: a fetch */
	ck_assert_int_eq(gitsync_event_decide(v1, hook, NULL), GITSYNC_EVENT_FETCH);
	ck_assert_int_eq(gitsync_event_decide(hook, hook2, NULL), GITSYNC_EVENT_FETCH);
	ck_assert_int_eq(gitsync_event_decide(hook, hook, NULL), GITSYNC_EVENT_NONE);
	/* the hand-off field going away is no webhook */
	ck_assert_int_eq(gitsync_event_decide(hook, v1, NULL), GITSYNC_EVENT_NONE);

	cJSON *all[] = { v1, v1_status, v2, nogen, req, req2, hook, hook2 };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		cJSON_Delete(all[i]);
}
END_TEST

START_TEST(test_decide__cluster_events)
{
	cJSON *a = obj("{\"metadata\":{\"labels\":{\"env\":\"prod\"}},\"spec\":{\"kubeConfigSecretRef\":{\"name\":\"k\"}}}");
	cJSON *a_status = obj("{\"metadata\":{\"labels\":{\"env\":\"prod\"}},\"spec\":{\"kubeConfigSecretRef\":{\"name\":\"k\"}},"
		"\"status\":{\"serverVersion\":\"v1.36.3\"}}");
	cJSON *relabel = obj("{\"metadata\":{\"labels\":{\"env\":\"dev\"}},\"spec\":{\"kubeConfigSecretRef\":{\"name\":\"k\"}}}");
	cJSON *suspend = obj("{\"metadata\":{\"labels\":{\"env\":\"prod\"}},\"spec\":{\"suspend\":true,\"kubeConfigSecretRef\":{\"name\":\"k\"}}}");
	cJSON *resecret = obj("{\"metadata\":{\"labels\":{\"env\":\"prod\"}},\"spec\":{\"kubeConfigSecretRef\":{\"name\":\"k2\"}}}");
	int refs = -1;

	ck_assert_int_eq(cluster_event_decide(NULL, a, &refs), 1);
	ck_assert_int_eq(refs, 0);
	ck_assert_int_eq(cluster_event_decide(a, a_status, &refs), 0);
	ck_assert_int_eq(refs, 0);
	ck_assert_int_eq(cluster_event_decide(a, relabel, &refs), 1);
	ck_assert_int_eq(refs, 0);
	ck_assert_int_eq(cluster_event_decide(a, suspend, &refs), 1);
	ck_assert_int_eq(refs, 0);
	ck_assert_int_eq(cluster_event_decide(a, resecret, &refs), 1);
	ck_assert_int_eq(refs, 1);

	cJSON *all[] = { a, a_status, relabel, suspend, resecret };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		cJSON_Delete(all[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("controller");
	TCase *tc = tcase_create("controller");
	tcase_add_test(tc, test_work__keys_round_trip);
	tcase_add_test(tc, test_work__malformed_keys_and_items_refused);
	tcase_add_test(tc, test_decide__gitsync_events);
	tcase_add_test(tc, test_decide__cluster_events);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
