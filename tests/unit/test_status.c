/* Unit tests for building GitSync status. */
#include <check.h>
#include <stdio.h>
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

/* The worst drift a cluster can report: MAX_DRIFT_LIST (50) objects with
 * long names, each with 20 field paths as long as status keeps them (128
 * bytes, MAX_DRIFT_FIELD_LEN) and a manager, 10 unhealthy
 * objects with long messages and a 4,000-byte message. */
static cJSON *worst_drift, *worst_unhealthy;   /* shared: the builder copies them */

static void worst_case_cluster(controller_cluster_status *c, const char *name)
{
	char longname[254], path[129], msg[4001];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(path, 'f', sizeof(path) - 1);
	memcpy(path, "data.", 5);
	path[sizeof(path) - 1] = '\0';
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	memset(c, 0, sizeof(*c));
	c->name = strdup(name);
	c->state = CONTROLLER_DRIFTED;
	snprintf(c->commit, sizeof(c->commit), "%s", "3f2c1ab03f2c1ab03f2c1ab03f2c1ab03f2c1ab0");
	c->objects = 10000;
	c->drifted_count = 10000;
	c->lag_seconds = 1.5;
	c->last_sync_time = 1e9;
	c->message = strdup(msg);
	c->health = CONTROLLER_HEALTH_DEGRADED;
	c->unhealthy_count = 500;
	c->drifted_objects = worst_drift;
	c->unhealthy = worst_unhealthy;
	if (worst_drift)
		return;
	c->drifted_objects = worst_drift = cJSON_CreateArray();
	for (int i = 0; i < 50; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "apiVersion", "verylonggroupname.example.com/v1beta1");
		cJSON_AddStringToObject(o, "kind", "AVeryLongKindNameForAWidgetOfSomeSort");
		cJSON_AddStringToObject(o, "namespace", "a-namespace-with-a-name-of-sixty-three-characters-xxxxxxxxxxxx");
		cJSON_AddStringToObject(o, "name", longname);
		cJSON *f = cJSON_AddArrayToObject(o, "fields");
		for (int k = 0; k < 20; k++)
			cJSON_AddItemToArray(f, cJSON_CreateString(path));
		cJSON_AddStringToObject(o, "manager", "kubectl-client-side-apply-with-a-long-manager-name");
		cJSON_AddItemToArray(c->drifted_objects, o);
	}
	c->unhealthy = worst_unhealthy = cJSON_CreateArray();
	for (int i = 0; i < 10; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "kind", "Deployment");
		cJSON_AddStringToObject(o, "name", longname);
		cJSON_AddStringToObject(o, "state", "Failed");
		cJSON_AddStringToObject(o, "message", msg + 3000);
		cJSON_AddItemToArray(c->unhealthy, o);
	}
}

static size_t printed(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	size_t n = strlen(s);
	free(s);
	return n;
}

/* Builds the status of one GitSync over n worst-case clusters (n - synced
 * drifted, then synced Synced ones) and checks its bounds; returns the
 * serialized size. */
static size_t bounded_status(size_t n, size_t synced)
{
	controller_cluster_status *cl = calloc(n, sizeof(*cl));
	controller_gitsync_summary g = { .generation = 2, .fetched_commit = "3f2c1ab03f2c1ab03f2c1ab03f2c1ab03f2c1ab0" };
	cJSON *st = NULL, *e;
	char name[300];
	for (size_t i = 0; i < n; i++) {
		/* long cluster names too: 253 bytes */
		snprintf(name, sizeof(name), "%05zu-%0248d", i, 0);
		worst_case_cluster(&cl[i], name);
		if (i >= n - synced) {
			cl[i].state = CONTROLLER_SYNCED;
			cl[i].health = CONTROLLER_HEALTH_HEALTHY;
		}
	}
	ck_assert_int_eq(controller_status_build(&st, &g, cl, n, NULL, 1e9), 0);
	const cJSON *arr = cJSON_GetObjectItem(st, "clusters");
	ck_assert_int_eq(cJSON_GetArraySize(arr), (int)n);
	cJSON_ArrayForEach(e, arr) {
		ck_assert_uint_le(printed(e), STATUS_CLUSTER_MAX);
		/* the counts stay whatever the detail lost */
		if (!strcmp(field(e, "state"), "Drifted"))
			ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "drifted"), "count")->valueint, 10000);
		ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "unhealthy"), "count")->valueint, 500);
		ck_assert_str_eq(field(e, "commit"), "3f2c1ab03f2c1ab03f2c1ab03f2c1ab03f2c1ab0");
	}
	/* the first (by name) cluster keeps drift detail */
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "drifted"), "objects"));
	size_t size = printed(st);
	cJSON_Delete(st);
	for (size_t i = 0; i < n; i++) {
		free(cl[i].name);
		free(cl[i].message);
	}
	free(cl);
	return size;
}

START_TEST(test_status__24_clusters_worst_case_drift_is_bounded)
{
	size_t size = bounded_status(24, 0);
	/* every entry at most STATUS_CLUSTER_MAX, the rest (conditions) small */
	ck_assert_uint_le(size, 24 * STATUS_CLUSTER_MAX + 16 * 1024);
	fprintf(stderr, "status of 24 worst-case drifted clusters: %zu bytes\n", size);
}
END_TEST

START_TEST(test_status__1000_clusters_fit_in_etcd)
{
	/* 1,000 drifted clusters with 253-byte names: under 1 MiB, so well
	 * within etcd's 1.5 MiB */
	size_t all = bounded_status(1000, 0);
	ck_assert_uint_lt(all, 1024 * 1024);
	fprintf(stderr, "status of 1,000 worst-case drifted clusters: %zu bytes\n", all);
}
END_TEST

START_TEST(test_status__drifted_clusters_keep_detail_before_synced_ones)
{
	/* 980 synced clusters first by name use no detail budget before the
	 * 20 drifted ones (last by name) */
	controller_cluster_status cl[3];
	controller_gitsync_summary g = { .generation = 1, .fetched_commit = "abc" };
	cJSON *st = NULL;
	worst_case_cluster(&cl[0], "a-synced");
	cl[0].state = CONTROLLER_SYNCED;
	worst_case_cluster(&cl[1], "b-synced");
	cl[1].state = CONTROLLER_SYNCED;
	worst_case_cluster(&cl[2], "z-drifted");
	ck_assert_int_eq(controller_status_build(&st, &g, cl, 3, NULL, 1e9), 0);
	const cJSON *z = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "clusters"), 2);
	ck_assert_str_eq(field(z, "name"), "z-drifted");
	const cJSON *objs = cJSON_GetObjectItem(cJSON_GetObjectItem(z, "drifted"), "objects");
	ck_assert_int_gt(cJSON_GetArraySize(objs), 0);
	ck_assert_ptr_nonnull(field(z, "message"));
	cJSON_Delete(st);
	for (int i = 0; i < 3; i++) {
		free(cl[i].name);
		free(cl[i].message);
	}
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
	tcase_add_test(tc, test_status__24_clusters_worst_case_drift_is_bounded);
	tcase_add_test(tc, test_status__1000_clusters_fit_in_etcd);
	tcase_add_test(tc, test_status__drifted_clusters_keep_detail_before_synced_ones);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
