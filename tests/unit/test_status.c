/* Unit tests for building GitSync status. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"

static const cJSON *cond(const cJSON *st, const char *type)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "conditions"))
		if (strcmp(cJSON_GetObjectItem(c, "type")->valuestring, type) == 0)
			return c;
	return NULL;
}

static const char *field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

START_TEST(test_status__all_synced_is_ready)
{
	controller_cluster_status cl[2] = {
		{ .name = "prod-us", .state = CONTROLLER_SYNCED, .commit = "3f2c1ab0", .objects = 4, .lag_seconds = 0.844 },
		{ .name = "prod-eu", .state = CONTROLLER_SYNCED, .commit = "3f2c1ab0", .objects = 4, .lag_seconds = -1 },
	};
	controller_gitsync_summary g = { .generation = 3, .fetched_commit = "3f2c1ab0ffffffff" };
	cJSON *st = NULL;
	ck_assert_int_eq(controller_status_build(&st, &g, cl, 2, NULL, 1e9), 0);
	ck_assert_str_eq(field(cond(st, "Ready"), "status"), "True");
	ck_assert_str_eq(field(cond(st, "Ready"), "reason"), "Synced");
	ck_assert_str_eq(field(cond(st, "Stalled"), "status"), "False");
	ck_assert_str_eq(field(cond(st, "Reconciling"), "status"), "False");
	cJSON *sum = cJSON_GetObjectItem(st, "summary");
	ck_assert_str_eq(field(sum, "commit"), "3f2c1ab");
	ck_assert_str_eq(field(sum, "clusters"), "2/2");
	cJSON *clusters = cJSON_GetObjectItem(st, "clusters");
	ck_assert_str_eq(field(cJSON_GetArrayItem(clusters, 0), "name"), "prod-eu");
	ck_assert_double_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(clusters, 1), "lagSeconds")->valuedouble, 0.84);
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(clusters, 0), "lagSeconds"));
	ck_assert_int_eq(cJSON_GetObjectItem(cond(st, "Ready"), "observedGeneration")->valueint, 3);
	cJSON_Delete(st);
}
END_TEST

START_TEST(test_status__transition_time_moves_only_with_status)
{
	controller_cluster_status cl = { .name = "c1", .state = CONTROLLER_SYNCED, .lag_seconds = -1 };
	controller_gitsync_summary g = { .generation = 1, .fetched_commit = "abc" };
	cJSON *first = NULL, *second = NULL, *third = NULL;
	controller_status_build(&first, &g, &cl, 1, NULL, 1000);
	/* Same state later: identical status, so no write is needed. */
	controller_status_build(&second, &g, &cl, 1, first, 2000);
	ck_assert(cJSON_Compare(first, second, 1));
	/* Drift: Ready flips, its time moves; Stalled keeps its time. */
	cl.state = CONTROLLER_DRIFTED;
	cl.drifted_count = 1;
	controller_status_build(&third, &g, &cl, 1, second, 3000);
	ck_assert_str_eq(field(cond(third, "Ready"), "status"), "False");
	ck_assert_str_eq(field(cond(third, "Ready"), "reason"), "Drifted");
	ck_assert_str_eq(field(cond(third, "Drifted"), "status"), "True");
	ck_assert_str_ne(field(cond(third, "Ready"), "lastTransitionTime"),
		field(cond(second, "Ready"), "lastTransitionTime"));
	ck_assert_str_eq(field(cond(third, "Stalled"), "lastTransitionTime"),
		field(cond(second, "Stalled"), "lastTransitionTime"));
	cJSON_Delete(first);
	cJSON_Delete(second);
	cJSON_Delete(third);
}
END_TEST

START_TEST(test_status__stalled_names_the_problem)
{
	controller_cluster_status cl = { .name = "c1", .state = CONTROLLER_SYNCED, .lag_seconds = -1 };
	controller_gitsync_summary g = { .generation = 2, .fetched_commit = "abc",
		.stalled_reason = "InvalidRevision", .stalled_message = "apps/cm.yaml:3:5: mapping values are not allowed" };
	cJSON *st = NULL;
	controller_status_build(&st, &g, &cl, 1, NULL, 1000);
	ck_assert_str_eq(field(cond(st, "Stalled"), "status"), "True");
	ck_assert_str_eq(field(cond(st, "Stalled"), "reason"), "InvalidRevision");
	ck_assert_ptr_nonnull(strstr(field(cond(st, "Ready"), "message"), "apps/cm.yaml:3:5"));
	ck_assert_str_eq(field(cond(st, "Ready"), "status"), "False");
	cJSON_Delete(st);
}
END_TEST

START_TEST(test_status__pending_is_reconciling)
{
	controller_cluster_status cl[2] = {
		{ .name = "a", .state = CONTROLLER_SYNCED, .lag_seconds = -1 },
		{ .name = "b", .state = CONTROLLER_PENDING, .lag_seconds = -1 },
	};
	controller_gitsync_summary g = { .generation = 1 };
	cJSON *st = NULL;
	controller_status_build(&st, &g, cl, 2, NULL, 1000);
	ck_assert_str_eq(field(cond(st, "Reconciling"), "status"), "True");
	ck_assert_str_eq(field(cJSON_GetObjectItem(st, "summary"), "clusters"), "1/2");
	cJSON_Delete(st);
}
END_TEST

START_TEST(test_status__refused_revision_stalls_naming_the_cluster)
{
	controller_cluster_status cl[2] = {
		{ .name = "a", .state = CONTROLLER_SYNCED, .lag_seconds = -1 },
		{ .name = "b", .state = CONTROLLER_FAILED, .lag_seconds = -1, .invalid = 1,
		  .message = "1 object failed validation, nothing applied or pruned: "
			     "deploy/typo.yaml:2: Widget app/w2 (typo.example.com/v1): unknown kind" },
	};
	controller_gitsync_summary g = { .generation = 1, .fetched_commit = "abc" };
	cJSON *st = NULL;
	controller_status_build(&st, &g, cl, 2, NULL, 1000);
	ck_assert_str_eq(field(cond(st, "Stalled"), "status"), "True");
	ck_assert_str_eq(field(cond(st, "Stalled"), "reason"), "ValidationFailed");
	ck_assert_str_eq(field(cond(st, "Ready"), "reason"), "ValidationFailed");
	ck_assert_ptr_nonnull(strstr(field(cond(st, "Ready"), "message"), "cluster b: 1 object failed validation"));
	ck_assert_ptr_nonnull(strstr(field(cond(st, "Stalled"), "message"), "deploy/typo.yaml:2"));
	cJSON_Delete(st);
	/* a failure that is not the revision's (an outage, a 409) does not stall */
	cl[1].invalid = 0;
	controller_status_build(&st, &g, cl, 2, NULL, 1000);
	ck_assert_str_eq(field(cond(st, "Stalled"), "status"), "False");
	ck_assert_str_eq(field(cond(st, "Ready"), "reason"), "SyncFailed");
	cJSON_Delete(st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("status");
	tcase_add_test(tc, test_status__all_synced_is_ready);
	tcase_add_test(tc, test_status__transition_time_moves_only_with_status);
	tcase_add_test(tc, test_status__stalled_names_the_problem);
	tcase_add_test(tc, test_status__pending_is_reconciling);
	tcase_add_test(tc, test_status__refused_revision_stalls_naming_the_cluster);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
