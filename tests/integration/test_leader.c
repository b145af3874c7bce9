/* Leader election against a real apiserver (cluster c3 of the test bed). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/controller.h"

static kube_client *client;
static char lease_ns[64];

static kube_client *connect(void)
{
	char path[1024];
	kube_config *cfg = NULL;
	kube_client *c = NULL;
	const char *tb = getenv("PLUMB_TESTBED");
	ck_assert_msg(tb != NULL, "PLUMB_TESTBED is not set");
	snprintf(path, sizeof(path), "%s/clusters/c3/kubeconfig", tb);
	ck_assert_msg(kube_config_load_file(&cfg, path, NULL) == 0, "%s", plumb_error_last());
	ck_assert_msg(kube_client_new(&c, cfg, NULL) == 0, "%s", plumb_error_last());
	kube_config_free(cfg);
	return c;
}

static void setup(void)
{
	char rnd[9];
	kube_resource ns_res;
	client = connect();
	plumb_random_name(rnd, 8);
	snprintf(lease_ns, sizeof(lease_ns), "leader-%s", rnd);
	ck_assert_int_eq(kube_resolve(&ns_res, client, "v1", "Namespace"), 0);
	cJSON *ns = cJSON_Parse("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{}}");
	cJSON_AddStringToObject(cJSON_GetObjectItem(ns, "metadata"), "name", lease_ns);
	ck_assert_msg(kube_create(NULL, client, &ns_res, NULL, ns) == 0, "%s", plumb_error_last());
	cJSON_Delete(ns);
}

static void teardown(void)
{
	kube_resource ns_res;
	if (kube_resolve(&ns_res, client, "v1", "Namespace") == 0)
		kube_delete(client, &ns_res, NULL, lease_ns, KUBE_PROPAGATION_DEFAULT);
	kube_client_free(client);
}

static controller_leader *candidate(const char *id, double lease, double renew, double retry)
{
	controller_leader *l = NULL;
	controller_leader_opts o = { .ns = lease_ns, .name = "plumbd", .identity = id,
		.lease_duration = lease, .renew_deadline = renew, .retry_period = retry };
	ck_assert_msg(controller_leader_new(&l, client, &o) == 0, "%s", plumb_error_last());
	return l;
}

static cJSON *get_lease(void)
{
	kube_resource res;
	cJSON *lease = NULL;
	ck_assert_int_eq(kube_resolve(&res, client, "coordination.k8s.io/v1", "Lease"), 0);
	ck_assert_msg(kube_get(&lease, client, &res, lease_ns, "plumbd") == 0, "%s", plumb_error_last());
	return lease;
}

static const char *spec_str(cJSON *lease, const char *field)
{
	cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(lease, "spec"), field);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static int spec_int(cJSON *lease, const char *field)
{
	cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(lease, "spec"), field);
	return cJSON_IsNumber(v) ? v->valueint : -1;
}

START_TEST(test_leader__first_acquires_second_waits_for_expiry)
{
	controller_leader *a = candidate("a", 3, 2, 1), *b = candidate("b", 3, 2, 1);
	int leader = 0;
	ck_assert_int_eq(controller_leader_try(a, &leader), 0);
	ck_assert_int_eq(leader, 1);
	ck_assert_int_eq(controller_leader_try(b, &leader), 0);
	ck_assert_int_eq(leader, 0);

	cJSON *lease = get_lease();
	ck_assert_str_eq(spec_str(lease, "holderIdentity"), "a");
	ck_assert_int_eq(spec_int(lease, "leaseDurationSeconds"), 3);
	ck_assert_int_eq(spec_int(lease, "leaseTransitions"), 0);
	char acquire[64];
	snprintf(acquire, sizeof(acquire), "%s", spec_str(lease, "acquireTime"));
	cJSON_Delete(lease);

	/* a renews: acquireTime stays, b still waits. */
	plumb_sleep(1);
	ck_assert_int_eq(controller_leader_try(a, &leader), 0);
	ck_assert_int_eq(leader, 1);
	lease = get_lease();
	ck_assert_str_eq(spec_str(lease, "acquireTime"), acquire);
	ck_assert_str_ne(spec_str(lease, "renewTime"), acquire);
	cJSON_Delete(lease);
	ck_assert_int_eq(controller_leader_try(b, &leader), 0);
	ck_assert_int_eq(leader, 0);

	/* a goes silent: b takes over once the lease ran out as b observed it. */
	int took_over = 0;
	double start = plumb_time_mono();
	while (plumb_time_mono() - start < 10 && !took_over) {
		plumb_sleep(0.5);
		ck_assert_int_eq(controller_leader_try(b, &leader), 0);
		took_over = leader;
	}
	ck_assert(took_over);
	ck_assert(plumb_time_mono() - start >= 2.5);
	lease = get_lease();
	ck_assert_str_eq(spec_str(lease, "holderIdentity"), "b");
	ck_assert_int_eq(spec_int(lease, "leaseTransitions"), 1);
	cJSON_Delete(lease);
	/* a comes back and does not steal it. */
	ck_assert_int_eq(controller_leader_try(a, &leader), 0);
	ck_assert_int_eq(leader, 0);
	controller_leader_free(a);
	controller_leader_free(b);
}
END_TEST

START_TEST(test_leader__release_hands_over_at_once)
{
	controller_leader *a = candidate("a", 15, 10, 2), *b = candidate("b", 15, 10, 2);
	int leader = 0;
	ck_assert_int_eq(controller_leader_try(a, &leader), 0);
	ck_assert_int_eq(leader, 1);
	ck_assert_int_eq(controller_leader_try(b, &leader), 0);
	ck_assert_int_eq(leader, 0);
	ck_assert_int_eq(controller_leader_release(a), 0);
	cJSON *lease = get_lease();
	ck_assert_str_eq(spec_str(lease, "holderIdentity"), "");
	ck_assert_int_eq(spec_int(lease, "leaseDurationSeconds"), 1);
	cJSON_Delete(lease);
	/* No waiting out the 15 s lease. */
	ck_assert_int_eq(controller_leader_try(b, &leader), 0);
	ck_assert_int_eq(leader, 1);
	controller_leader_free(a);
	controller_leader_free(b);
}
END_TEST

START_TEST(test_leader__threads_one_leader_and_failover_on_free)
{
	controller_leader *a = candidate("a", 4, 3, 1), *b = candidate("b", 4, 3, 1);
	ck_assert_int_eq(controller_leader_run(a), 0);
	double start = plumb_time_mono();
	while (!controller_leader_is_leader(a) && plumb_time_mono() - start < 10)
		plumb_sleep(0.1);
	ck_assert(controller_leader_is_leader(a));
	ck_assert_int_eq(controller_leader_run(b), 0);
	plumb_sleep(2.5);
	ck_assert(controller_leader_is_leader(a));
	ck_assert(!controller_leader_is_leader(b));
	/* Freeing a releases the lease: b leads within about one retry period. */
	controller_leader_free(a);
	start = plumb_time_mono();
	while (!controller_leader_is_leader(b) && plumb_time_mono() - start < 10)
		plumb_sleep(0.1);
	ck_assert(controller_leader_is_leader(b));
	ck_assert_msg(plumb_time_mono() - start < 3.5, "takeover took %.1fs", plumb_time_mono() - start);
	controller_leader_free(b);
}
END_TEST

START_TEST(test_leader__bad_timings_rejected)
{
	controller_leader *l = NULL;
	controller_leader_opts o = { .ns = "x", .name = "y", .lease_duration = 10,
		.renew_deadline = 10, .retry_period = 2 };
	ck_assert_int_eq(controller_leader_new(&l, client, &o), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "lease duration > renew deadline"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("leader");
	TCase *tc = tcase_create("leader");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_leader__first_acquires_second_waits_for_expiry);
	tcase_add_test(tc, test_leader__release_hands_over_at_once);
	tcase_add_test(tc, test_leader__threads_one_leader_and_failover_on_free);
	tcase_add_test(tc, test_leader__bad_timings_rejected);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
