/* Unit tests for pkg/server: metrics text, webhook signatures, and the real
 * HTTP server on a loopback port driven with libcurl. */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "metrics/metrics.h"
#include "server/server.h"

START_TEST(test_server__metrics_text_format)
{
	server_metrics *m = NULL;
	ck_assert_int_eq(server_metrics_new(&m), 0);
	const char *lbl[] = { "cluster", "verb", "code" };
	server_family *req = server_counter(m, "plumb_api_requests_total", "API requests.", 3, lbl);
	server_family *leader = server_gauge(m, "plumb_leader", "1 when leading.", 0, NULL);
	server_counter_add(req, 1, "prod-eu", "patch", "200");
	server_counter_add(req, 2, "prod-eu", "patch", "200");
	server_counter_add(req, 1, "a\"b\\c", "get", "404");
	server_gauge_set(leader, 1);
	ck_assert_double_eq(server_value(req, "prod-eu", "patch", "200"), 3);

	plumb_buf b = PLUMB_BUF_INIT(1 << 20);
	ck_assert_int_eq(server_metrics_render(m, &b), 0);
	ck_assert_ptr_nonnull(strstr(b.ptr, "# TYPE plumb_api_requests_total counter\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr,
		"plumb_api_requests_total{cluster=\"prod-eu\",verb=\"patch\",code=\"200\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr,
		"plumb_api_requests_total{cluster=\"a\\\"b\\\\c\",verb=\"get\",code=\"404\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr, "plumb_leader 1\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr, "process_resident_memory_bytes "));
	ck_assert_ptr_nonnull(strstr(b.ptr, "process_cpu_seconds_total "));

	server_series_remove(req, "prod-eu", "patch", "200");
	plumb_buf_reset(&b);
	server_metrics_render(m, &b);
	ck_assert_ptr_null(strstr(b.ptr, "cluster=\"prod-eu\""));
	plumb_buf_free(&b);
	server_metrics_free(m);
}
END_TEST

START_TEST(test_server__histogram_buckets_are_cumulative)
{
	server_metrics *m = NULL;
	server_metrics_new(&m);
	const char *lbl[] = { "cluster" };
	const double bounds[] = { 0.1, 0.5, 1 };
	server_family *h = server_histogram(m, "plumb_sync_lag_seconds", "Lag.", 1, lbl, 3, bounds);
	server_histogram_observe(h, 0.05, "c1");
	server_histogram_observe(h, 0.3, "c1");
	server_histogram_observe(h, 2, "c1");
	plumb_buf b = PLUMB_BUF_INIT(1 << 20);
	server_metrics_render(m, &b);
	ck_assert_ptr_nonnull(strstr(b.ptr, "plumb_sync_lag_seconds_bucket{cluster=\"c1\",le=\"0.1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr, "plumb_sync_lag_seconds_bucket{cluster=\"c1\",le=\"0.5\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr, "plumb_sync_lag_seconds_bucket{cluster=\"c1\",le=\"1\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr, "plumb_sync_lag_seconds_bucket{cluster=\"c1\",le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr, "plumb_sync_lag_seconds_sum{cluster=\"c1\"} 2.35\n"));
	ck_assert_ptr_nonnull(strstr(b.ptr, "plumb_sync_lag_seconds_count{cluster=\"c1\"} 3\n"));
	plumb_buf_free(&b);
	server_metrics_free(m);
}
END_TEST

/* The example delivery from GitHub's webhook documentation. */
static const char gh_secret[] = "It's a Secret to Everybody";
static const char gh_body[] = "Hello, World!";
static const char gh_sig[] = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

START_TEST(test_server__webhook_verify)
{
	size_t sl = strlen(gh_secret), bl = strlen(gh_body);
	ck_assert_int_eq(server_webhook_verify(gh_sig, NULL, gh_body, bl, gh_secret, sl), 1);
	ck_assert_int_eq(server_webhook_verify(gh_sig, NULL, "Hello, World?", bl, gh_secret, sl), 0);
	ck_assert_int_eq(server_webhook_verify(gh_sig, NULL, gh_body, bl, "other", 5), 0);
	ck_assert_int_eq(server_webhook_verify("sha256=00", NULL, gh_body, bl, gh_secret, sl), 0);
	ck_assert_int_eq(server_webhook_verify(NULL, NULL, gh_body, bl, gh_secret, sl), 0);
	ck_assert_int_eq(server_webhook_verify(NULL, "tok3n", "", 0, "tok3n", 5), 1);
	ck_assert_int_eq(server_webhook_verify(NULL, "tok3N", "", 0, "tok3n", 5), 0);
	ck_assert_int_eq(server_webhook_verify(NULL, "", "", 0, "", 0), 0);
}
END_TEST

/* ---- the real server ------------------------------------------------------- */

static atomic_int triggers;
static atomic_int ready_flag;

static int lookup_secret(char **out, size_t *outlen, const char *ns, const char *name, void *data)
{
	(void)data;
	if (strcmp(ns, "team-a") != 0 || strcmp(name, "config") != 0)
		return -1;
	*out = strdup(gh_secret);
	*outlen = strlen(gh_secret);
	return 0;
}

static void on_trigger(const char *ns, const char *name, void *data)
{
	(void)ns, (void)name, (void)data;
	triggers++;
}

static int is_ready(char *why, size_t whylen, void *data)
{
	(void)data;
	if (!ready_flag)
		snprintf(why, whylen, "caches not synced");
	return ready_flag;
}

static size_t collect(char *ptr, size_t size, size_t n, void *userdata)
{
	plumb_buf_append(userdata, ptr, size * n);
	return size * n;
}

/* Sends one request; returns the HTTP status and the body in *body. */
static long http(plumb_buf *body, int port, const char *method, const char *path,
	const char *header, const char *data, size_t len)
{
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	CURL *c = curl_easy_init();
	struct curl_slist *h = header ? curl_slist_append(NULL, header) : NULL;
	plumb_buf_reset(body);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (h)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (data) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	long code = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return code;
}

START_TEST(test_server__http_endpoints)
{
	server_metrics *m = NULL;
	server *s = NULL;
	plumb_buf body = PLUMB_BUF_INIT(4 << 20);
	server_metrics_new(&m);
	server_gauge_set(server_gauge(m, "plumb_leader", "1 when leading.", 0, NULL), 1);
	server_opts opts = { .addr = "127.0.0.1:0", .metrics = m, .ready = is_ready,
		.secret = lookup_secret, .trigger = on_trigger, .max_body = 4096 };
	ck_assert_int_eq(server_start(&s, &opts), 0);
	int port = server_port(s);
	ck_assert_int_gt(port, 0);

	ck_assert_int_eq(http(&body, port, "GET", "/metrics", NULL, NULL, 0), 200);
	ck_assert_ptr_nonnull(strstr(body.ptr, "plumb_leader 1\n"));
	ck_assert_int_eq(http(&body, port, "GET", "/healthz", NULL, NULL, 0), 200);
	ck_assert_int_eq(http(&body, port, "GET", "/readyz", NULL, NULL, 0), 503);
	ck_assert_ptr_nonnull(strstr(body.ptr, "caches not synced"));
	ready_flag = 1;
	ck_assert_int_eq(http(&body, port, "GET", "/readyz", NULL, NULL, 0), 200);
	ck_assert_int_eq(http(&body, port, "GET", "/nope", NULL, NULL, 0), 404);

	char sig[200];
	snprintf(sig, sizeof(sig), "X-Hub-Signature-256: %s", gh_sig);
	ck_assert_int_eq(http(&body, port, "POST", "/hooks/team-a/config", sig, gh_body, strlen(gh_body)), 202);
	ck_assert_int_eq(triggers, 1);

	/* A bad signature and a missing GitSync look the same from outside. */
	ck_assert_int_eq(http(&body, port, "POST", "/hooks/team-a/config", sig, "tampered", 8), 401);
	char *bad_sig_body = strdup(body.ptr);
	ck_assert_int_eq(http(&body, port, "POST", "/hooks/team-a/missing", sig, gh_body, strlen(gh_body)), 401);
	ck_assert_str_eq(body.ptr, bad_sig_body);
	free(bad_sig_body);
	ck_assert_int_eq(http(&body, port, "POST", "/hooks/team-a/config", NULL, gh_body, strlen(gh_body)), 401);
	ck_assert_int_eq(http(&body, port, "POST", "/hooks/team-a/config",
		"X-Gitlab-Token: It's a Secret to Everybody", "{}", 2), 202);
	ck_assert_int_eq(triggers, 2);

	char *big = malloc(10000);
	memset(big, 'x', 10000);
	ck_assert_int_eq(http(&body, port, "POST", "/hooks/team-a/config", sig, big, 10000), 413);
	free(big);
	ck_assert_int_eq(http(&body, port, "GET", "/hooks/team-a/config", NULL, NULL, 0), 405);
	ck_assert_int_eq(http(&body, port, "POST", "/hooks/team-a", sig, "x", 1), 404);
	ck_assert_int_eq(http(&body, port, "POST", "/hooks/Team_A/config", sig, "x", 1), 404);
	ck_assert_int_eq(triggers, 2);

	server_free(s);
	server_metrics_free(m);
	plumb_buf_free(&body);
}
END_TEST

/* plumbd --webhook-addr: one listener for /hooks only, the metrics one without them. */
START_TEST(test_server__split_webhook_listener)
{
	server_metrics *m = NULL;
	server *ms = NULL, *ws = NULL;
	plumb_buf body = PLUMB_BUF_INIT(4 << 20);
	server_metrics_new(&m);
	server_gauge_set(server_gauge(m, "plumb_leader", "1 when leading.", 0, NULL), 1);
	server_opts mo = { .addr = "127.0.0.1:0", .metrics = m };
	server_opts wo = { .addr = "127.0.0.1:0", .secret = lookup_secret, .trigger = on_trigger };
	ck_assert_int_eq(server_start(&ms, &mo), 0);
	ck_assert_int_eq(server_start(&ws, &wo), 0);
	int mport = server_port(ms), wport = server_port(ws);
	char sig[200];
	snprintf(sig, sizeof(sig), "X-Hub-Signature-256: %s", gh_sig);
	int before = triggers;

	ck_assert_int_eq(http(&body, wport, "GET", "/metrics", NULL, NULL, 0), 404);
	ck_assert_ptr_null(strstr(body.ptr ? body.ptr : "", "plumb_leader"));
	ck_assert_int_eq(http(&body, wport, "POST", "/metrics", NULL, "x", 1), 404);
	ck_assert_int_eq(http(&body, wport, "GET", "/healthz", NULL, NULL, 0), 404);
	ck_assert_int_eq(http(&body, wport, "POST", "/hooks/team-a/config", sig, gh_body, strlen(gh_body)), 202);
	ck_assert_int_eq(triggers, before + 1);

	ck_assert_int_eq(http(&body, mport, "GET", "/metrics", NULL, NULL, 0), 200);
	ck_assert_ptr_nonnull(strstr(body.ptr, "plumb_leader 1\n"));
	ck_assert_int_eq(http(&body, mport, "POST", "/hooks/team-a/config", sig, gh_body, strlen(gh_body)), 404);
	ck_assert_int_eq(http(&body, mport, "GET", "/hooks/team-a/config", NULL, NULL, 0), 404);
	ck_assert_int_eq(triggers, before + 1);

	server_free(ms);
	server_free(ws);
	server_metrics_free(m);
	plumb_buf_free(&body);
}
END_TEST

START_TEST(test_server__bad_listen_address)
{
	server *s = NULL;
	server_opts opts = { .addr = "127.0.0.1:http" };
	ck_assert_int_eq(server_start(&s, &opts), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "127.0.0.1:http"));
	opts.addr = "999.1.1.1:80";
	ck_assert_int_eq(server_start(&s, &opts), PLUMB_EINVALID);
}
END_TEST

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("server");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_server__metrics_text_format);
	tcase_add_test(tc, test_server__histogram_buckets_are_cumulative);
	tcase_add_test(tc, test_server__webhook_verify);
	tcase_add_test(tc, test_server__http_endpoints);
	tcase_add_test(tc, test_server__split_webhook_listener);
	tcase_add_test(tc, test_server__bad_listen_address);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
