/* Integration tests for pkg/kube against the real local clusters of the
 * test bed (PLUMB_TESTBED, cluster c1). Every test works in its own
 * namespace and removes it at the end. */
#include "kube/kube.h"
#include "base/base.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

static char cdir[512];     /* $PLUMB_TESTBED/clusters/c1 */
static char tmp[128];

static void setup(void)
{
	const char *tb = getenv("PLUMB_TESTBED");
	ck_assert_msg(tb && *tb, "PLUMB_TESTBED is not set");
	snprintf(cdir, sizeof(cdir), "%s/clusters/c1", tb);
	snprintf(tmp, sizeof(tmp), "/tmp/plumb-kube-it-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", tmp);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static kube_client *admin_client(const kube_client_opts *opts)
{
	char path[600];
	kube_config *cfg = NULL;
	kube_client *c = NULL;
	snprintf(path, sizeof(path), "%s/kubeconfig", cdir);
	ck_assert_msg(kube_config_load_file(&cfg, path, NULL) == 0, "%s", plumb_error_last());
	ck_assert_msg(kube_client_new(&c, cfg, opts) == 0, "%s", plumb_error_last());
	kube_config_free(cfg);
	return c;
}

static kube_resource resolve(kube_client *c, const char *av, const char *kind)
{
	kube_resource r;
	ck_assert_msg(kube_resolve(&r, c, av, kind) == 0, "%s", plumb_error_last());
	return r;
}

static void make_ns(kube_client *c, char *out, size_t outlen)
{
	char rnd[9];
	kube_resource ns = resolve(c, "v1", "Namespace");
	plumb_random_name(rnd, 8);
	snprintf(out, outlen, "kt-%s", rnd);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", "Namespace");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "metadata"), "name", out);
	ck_assert_msg(kube_create(NULL, c, &ns, NULL, o) == 0, "%s", plumb_error_last());
	cJSON_Delete(o);
}

static void drop_ns(kube_client *c, const char *name)
{
	kube_resource ns = resolve(c, "v1", "Namespace");
	int rc = kube_delete(c, &ns, NULL, name, KUBE_PROPAGATION_BACKGROUND);
	ck_assert_msg(rc == 0, "%s", plumb_error_last());
}

static cJSON *configmap(const char *ns, const char *name, const char *key, const char *value)
{
	cJSON *o = cJSON_CreateObject(), *md, *data;
	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", "ConfigMap");
	md = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(md, "name", name);
	if (ns)
		cJSON_AddStringToObject(md, "namespace", ns);
	data = cJSON_AddObjectToObject(o, "data");
	if (key)
		cJSON_AddStringToObject(data, key, value);
	return o;
}

static const char *rv_of(const cJSON *o)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "metadata"), "resourceVersion");
	return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *data_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "data"), key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A kubeconfig in memory with the cluster's CA and the given user block. */
static char *kubeconfig_with(const char *server, const char *ca_file, const char *user_yaml)
{
	char *ca = NULL, *ca64 = NULL, *kc;
	size_t len = 0;
	ck_assert_int_eq(plumb_file_read(&ca, &len, ca_file, 1 << 20), 0);
	ck_assert_int_eq(plumb_base64_encode(&ca64, ca, len), 0);
	kc = plumb_asprintf("apiVersion: v1\nkind: Config\ncurrent-context: t\n"
		"clusters:\n- name: c\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n"
		"users:\n- name: u\n  user:\n%s"
		"contexts:\n- name: t\n  context: {cluster: c, user: u}\n", server, ca64, user_yaml);
	free(ca);
	free(ca64);
	return kc;
}

static kube_client *client_from(const char *kc, const kube_client_opts *opts)
{
	kube_config *cfg = NULL;
	kube_client *c = NULL;
	ck_assert_msg(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "test", NULL) == 0, "%s", plumb_error_last());
	ck_assert_msg(kube_client_new(&c, cfg, opts) == 0, "%s", plumb_error_last());
	kube_config_free(cfg);
	return c;
}

/* ---- connect ---- */

static void count_hook(void *data, const char *cluster, const char *verb, int code, double seconds)
{
	(void)cluster; (void)verb; (void)seconds;
	int *n = data;
	if (code == 200)
		__atomic_add_fetch(n, 1, __ATOMIC_SEQ_CST);
}

START_TEST(test_kube__connect_client_cert)
{
	int ok = 0;
	kube_client_opts o = { .name = "c1", .on_request = count_hook, .hook_data = &ok };
	kube_client *c = admin_client(&o);
	char v[64];
	ck_assert_msg(kube_server_version(v, sizeof(v), c) == 0, "%s", plumb_error_last());
	fprintf(stderr, "kube-apiserver version: %s\n", v);
	ck_assert(strncmp(v, "v1.", 3) == 0);
	ck_assert_int_eq(ok, 1);
	kube_client_free(c);
}
END_TEST

START_TEST(test_kube__connect_serviceaccount_token)
{
	kube_client *c = admin_client(NULL), *sa = NULL;
	char ns[32], path[512], *kc, user[8192], srv[256];
	cJSON *tr = NULL, *body, *review = NULL;
	make_ns(c, ns, sizeof(ns));

	kube_resource sar = resolve(c, "v1", "ServiceAccount");
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", "ServiceAccount");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "metadata"), "name", "bot");
	ck_assert_msg(kube_create(NULL, c, &sar, ns, o) == 0, "%s", plumb_error_last());
	cJSON_Delete(o);

	body = cJSON_Parse("{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":{\"expirationSeconds\":600}}");
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/serviceaccounts/bot/token", ns);
	ck_assert_msg(kube_request(&tr, c, "POST", path, body) == 0, "%s", plumb_error_last());
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tr, "status"), "token");
	ck_assert(cJSON_IsString(tok));
	snprintf(user, sizeof(user), "    token: %s\n", tok->valuestring);
	snprintf(srv, sizeof(srv), "%s", kube_config_server(kube_client_config(c)));
	snprintf(path, sizeof(path), "%s/ca.crt", cdir);
	kc = kubeconfig_with(srv, path, user);
	sa = client_from(kc, NULL);

	/* Who am I, as the API server sees it. */
	cJSON *ssr = cJSON_Parse("{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"SelfSubjectReview\"}");
	ck_assert_msg(kube_request(&review, sa, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", ssr) == 0,
		"%s", plumb_error_last());
	const cJSON *un = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(review, "status"), "userInfo"), "username");
	char want[128];
	snprintf(want, sizeof(want), "system:serviceaccount:%s:bot", ns);
	ck_assert(cJSON_IsString(un));
	ck_assert_str_eq(un->valuestring, want);
	/* No RBAC for it: authenticated, then forbidden. */
	kube_resource cm = resolve(c, "v1", "ConfigMap");
	cJSON *l = NULL;
	ck_assert_int_eq(kube_list(&l, sa, &cm, ns, NULL), PLUMB_EFORBIDDEN);
	ck_assert_int_eq(kube_last_http_status(), 403);

	/* A garbage token is 401 -> EAUTH. */
	kube_client *bad;
	char *kc2 = kubeconfig_with(srv, path, "    token: not-a-real-token\n");
	bad = client_from(kc2, NULL);
	ck_assert_int_eq(kube_list(&l, bad, &cm, ns, NULL), PLUMB_EAUTH);
	ck_assert(strstr(plumb_error_last(), "not-a-real-token") == NULL);
	kube_client_free(bad);

	drop_ns(c, ns);
	cJSON_Delete(ssr);
	cJSON_Delete(review);
	cJSON_Delete(body);
	cJSON_Delete(tr);
	free(kc);
	free(kc2);
	kube_client_free(sa);
	kube_client_free(c);
}
END_TEST

START_TEST(test_kube__wrong_ca_is_tls_error)
{
	kube_client *c = admin_client(NULL), *w;
	char srv[256], ca[600], user[4096], *kc, v[64];
	snprintf(srv, sizeof(srv), "%s", kube_config_server(kube_client_config(c)));
	ck_assert_int_eq(sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt "
		"-days 1 -subj /CN=other-ca >/dev/null 2>&1", tmp), 0);
	snprintf(ca, sizeof(ca), "%s/other.crt", tmp);
	snprintf(user, sizeof(user), "    token: x\n");
	kc = kubeconfig_with(srv, ca, user);
	kube_client_opts o = { .timeout = 5 };
	w = client_from(kc, &o);
	double t0 = plumb_time_mono();
	ck_assert_int_eq(kube_server_version(v, sizeof(v), w), PLUMB_ETLS);
	ck_assert(plumb_time_mono() - t0 < 2.0);  /* not retried */
	kube_client_free(w);
	free(kc);
	kube_client_free(c);
}
END_TEST

START_TEST(test_kube__narrow_rbac_forbidden)
{
	kube_client *c = admin_client(NULL), *n;
	char ns[32], srv[256], capath[600], *crt = NULL, *key = NULL, *c64 = NULL, *k64 = NULL, user[16384], *kc;
	size_t len;
	make_ns(c, ns, sizeof(ns));
	ck_assert_int_eq(sh("cd %s && openssl req -newkey rsa:2048 -nodes -keyout narrow.key -out narrow.csr "
		"-subj /CN=narrow >/dev/null 2>&1 && openssl x509 -req -in narrow.csr -CA %s/ca.crt -CAkey %s/ca.key "
		"-CAcreateserial -CAserial %s/ca.srl -out narrow.crt -days 1 >/dev/null 2>&1", tmp, cdir, cdir, tmp), 0);
	char p[600];
	snprintf(p, sizeof(p), "%s/narrow.crt", tmp);
	ck_assert_int_eq(plumb_file_read(&crt, &len, p, 1 << 20), 0);
	ck_assert_int_eq(plumb_base64_encode(&c64, crt, len), 0);
	snprintf(p, sizeof(p), "%s/narrow.key", tmp);
	ck_assert_int_eq(plumb_file_read(&key, &len, p, 1 << 20), 0);
	ck_assert_int_eq(plumb_base64_encode(&k64, key, len), 0);
	snprintf(user, sizeof(user), "    client-certificate-data: %s\n    client-key-data: %s\n", c64, k64);
	snprintf(srv, sizeof(srv), "%s", kube_config_server(kube_client_config(c)));
	snprintf(capath, sizeof(capath), "%s/ca.crt", cdir);
	kc = kubeconfig_with(srv, capath, user);
	n = client_from(kc, NULL);

	kube_resource cmr = resolve(c, "v1", "ConfigMap");
	cJSON *cm = configmap(ns, "secretive", "k", "v"), *got = NULL;
	ck_assert_int_eq(kube_create(NULL, c, &cmr, ns, cm), 0);
	ck_assert_int_eq(kube_get(&got, n, &cmr, ns, "secretive"), PLUMB_EFORBIDDEN);
	ck_assert_int_eq(kube_last_http_status(), 403);
	ck_assert_str_eq(kube_last_reason(), "Forbidden");
	ck_assert(strstr(plumb_error_last(), "403 Forbidden") != NULL);
	ck_assert(strstr(plumb_error_last(), "narrow") != NULL);
	ck_assert_int_eq(kube_apply(NULL, n, &cmr, ns, cm, NULL), PLUMB_EFORBIDDEN);

	drop_ns(c, ns);
	cJSON_Delete(cm);
	free(crt); free(key); free(c64); free(k64); free(kc);
	kube_client_free(n);
	kube_client_free(c);
}
END_TEST

/* ---- impersonation ---- */

/* Who the API server says the client is (SelfSubjectReview): "user|g1,g2,...". */
static char *whoami(kube_client *c)
{
	cJSON *body = cJSON_Parse("{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"SelfSubjectReview\"}");
	cJSON *out = NULL, *g;
	ck_assert_msg(kube_request(&out, c, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body) == 0,
		"%s", plumb_error_last());
	const cJSON *ui = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(out, "status"), "userInfo");
	plumb_buf b = PLUMB_BUF_INIT(8192);
	plumb_buf_printf(&b, "%s|", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ui, "username")));
	int first = 1;
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(ui, "groups")) {
		plumb_buf_printf(&b, "%s%s", first ? "" : ",", g->valuestring);
		first = 0;
	}
	cJSON_Delete(body);
	cJSON_Delete(out);
	return plumb_buf_detach(&b);
}

START_TEST(test_kube__impersonation)
{
	kube_client *c = admin_client(NULL), *imp = NULL;
	char ns[32], user[300], want[600], *who;
	make_ns(c, ns, sizeof(ns));
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), ns, "bot"), 0);
	ck_assert_int_eq(kube_client_impersonate(&imp, c, user, NULL), 0);

	/* the server sees the service account, with the groups it gives one */
	who = whoami(imp);
	snprintf(want, sizeof(want), "%s|system:serviceaccounts,system:serviceaccounts:%s,system:authenticated", user, ns);
	ck_assert_str_eq(who, want);
	free(who);
	/* the base client is still itself (its connections are shared, not its identity) */
	who = whoami(c);
	ck_assert_ptr_nonnull(strstr(who, "admin|"));
	free(who);

	/* the account's rights, not the admin's: 403 naming it, then allowed once granted */
	kube_resource cmr = resolve(imp, "v1", "ConfigMap");
	cJSON *cm = configmap(ns, "x", "k", "v"), *got = NULL;
	ck_assert_int_eq(kube_create(NULL, c, &cmr, ns, cm), 0);
	ck_assert_int_eq(kube_get(&got, imp, &cmr, ns, "x"), PLUMB_EFORBIDDEN);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), user));
	ck_assert_int_eq(kube_apply(NULL, imp, &cmr, ns, cm, NULL), PLUMB_EFORBIDDEN);
	char *rb = plumb_asprintf(
		"{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"Role\",\"metadata\":{\"name\":\"read\",\"namespace\":\"%s\"},"
		"\"rules\":[{\"apiGroups\":[\"\"],\"resources\":[\"configmaps\"],\"verbs\":[\"get\"]}]}", ns);
	cJSON *role = cJSON_Parse(rb);
	free(rb);
	rb = plumb_asprintf(
		"{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"RoleBinding\",\"metadata\":{\"name\":\"read\",\"namespace\":\"%s\"},"
		"\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"Role\",\"name\":\"read\"},"
		"\"subjects\":[{\"kind\":\"ServiceAccount\",\"name\":\"bot\",\"namespace\":\"%s\"}]}", ns, ns);
	cJSON *binding = cJSON_Parse(rb);
	free(rb);
	kube_resource rr = resolve(c, "rbac.authorization.k8s.io/v1", "Role");
	kube_resource rbr = resolve(c, "rbac.authorization.k8s.io/v1", "RoleBinding");
	ck_assert_msg(kube_create(NULL, c, &rr, ns, role) == 0, "%s", plumb_error_last());
	ck_assert_msg(kube_create(NULL, c, &rbr, ns, binding) == 0, "%s", plumb_error_last());
	int rc = PLUMB_EFORBIDDEN;
	for (int i = 0; i < 50 && rc == PLUMB_EFORBIDDEN; i++) {
		rc = kube_get(&got, imp, &cmr, ns, "x");
		if (rc)
			plumb_sleep(0.1);
	}
	ck_assert_msg(rc == 0, "%s", plumb_error_last());
	cJSON_Delete(got);
	/* get, not patch: still refused */
	ck_assert_int_eq(kube_apply(NULL, imp, &cmr, ns, cm, NULL), PLUMB_EFORBIDDEN);

	drop_ns(c, ns);
	cJSON_Delete(cm);
	cJSON_Delete(role);
	cJSON_Delete(binding);
	kube_client_free(imp);
	kube_client_free(c);
}
END_TEST

/* ---- unreachable ---- */

static int closed_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &l), 0);
	close(s);  /* bound, never listened, now closed: nothing answers there */
	return ntohs(a.sin_port);
}

START_TEST(test_kube__closed_port_is_retryable)
{
	char srv[64], ca[600], *kc, v[64];
	snprintf(srv, sizeof(srv), "https://127.0.0.1:%d", closed_port());
	snprintf(ca, sizeof(ca), "%s/ca.crt", cdir);
	kc = kubeconfig_with(srv, ca, "    token: x\n");
	kube_client_opts o = { .timeout = 3, .max_retries = 2 };
	kube_client *c = client_from(kc, &o);
	double t0 = plumb_time_mono();
	int rc = kube_server_version(v, sizeof(v), c);
	double took = plumb_time_mono() - t0;
	ck_assert_msg(rc == PLUMB_EUNAVAILABLE, "rc %s: %s", plumb_strerror(rc), plumb_error_last());
	ck_assert_int_eq(kube_last_http_status(), 0);
	ck_assert(took < 5.0);
	ck_assert(took > 0.1);   /* two retries with backoff in between */
	kube_client_free(c);
	free(kc);
}
END_TEST

START_TEST(test_kube__stopped_apiserver_is_retryable)
{
	const char *tb = getenv("PLUMB_TESTBED");
	const char *script = "hack/cluster.sh";   /* tests run from the repository root */
	if (access(script, R_OK) != 0 || sh("grep -q stop-apiserver %s", script) != 0) {
		fprintf(stderr, "hack/cluster.sh stop-apiserver not available; covered by closed_port test\n");
		return;
	}
	kube_client_opts o = { .timeout = 3, .max_retries = 1 };
	kube_client *c = admin_client(&o);
	char v[64];
	ck_assert_int_eq(kube_server_version(v, sizeof(v), c), 0);
	ck_assert_int_eq(sh("PLUMB_TESTBED='%s' bash %s stop-apiserver c1 >/dev/null 2>&1", tb, script), 0);
	double t0 = plumb_time_mono();
	int rc = kube_server_version(v, sizeof(v), c);
	double took = plumb_time_mono() - t0;
	int restarted = sh("PLUMB_TESTBED='%s' bash %s start-apiserver c1 >/dev/null 2>&1", tb, script);
	ck_assert_msg(rc == PLUMB_EUNAVAILABLE || rc == PLUMB_ETIMEOUT, "rc %s: %s", plumb_strerror(rc), plumb_error_last());
	ck_assert(took < 8.0);
	ck_assert_int_eq(restarted, 0);
	/* Back: the same client recovers (fresh connection). */
	rc = -1;
	for (int i = 0; i < 30 && rc != 0; i++) {
		rc = kube_server_version(v, sizeof(v), c);
		if (rc)
			plumb_sleep(0.5);
	}
	ck_assert_msg(rc == 0, "%s", plumb_error_last());
	kube_client_free(c);
}
END_TEST

/* ---- CRUD, CRD, SSA ---- */

START_TEST(test_kube__crud_errors)
{
	kube_client *c = admin_client(NULL);
	char ns[32];
	cJSON *cm, *made = NULL, *got = NULL, *upd = NULL, *patched = NULL;
	make_ns(c, ns, sizeof(ns));
	kube_resource r = resolve(c, "v1", "ConfigMap");
	cm = configmap(ns, "one", "a", "1");
	ck_assert_int_eq(kube_create(&made, c, &r, NULL, cm), 0);
	ck_assert_int_eq(kube_create(NULL, c, &r, NULL, cm), PLUMB_EEXISTS);
	ck_assert_str_eq(kube_last_reason(), "AlreadyExists");
	ck_assert_int_eq(kube_get(&got, c, &r, ns, "one"), 0);
	ck_assert_str_eq(data_of(got, "a"), "1");
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(got, "data"), "a", cJSON_CreateString("2"));
	ck_assert_int_eq(kube_update(&upd, c, &r, NULL, got), 0);
	ck_assert_str_eq(data_of(upd, "a"), "2");
	/* got still carries the old resourceVersion: optimistic concurrency. */
	ck_assert_int_eq(kube_update(NULL, c, &r, NULL, got), PLUMB_ECONFLICT);
	ck_assert(strstr(plumb_error_last(), "409 Conflict") != NULL);
	cJSON *mp = cJSON_Parse("{\"data\":{\"b\":\"3\"}}");
	ck_assert_int_eq(kube_merge_patch(&patched, c, &r, ns, "one", mp), 0);
	ck_assert_str_eq(data_of(patched, "a"), "2");
	ck_assert_str_eq(data_of(patched, "b"), "3");
	ck_assert_int_eq(kube_delete(c, &r, ns, "one", KUBE_PROPAGATION_BACKGROUND), 0);
	/* Foreground: the server marks the object with the foregroundDeletion
	 * finalizer (the test bed runs no garbage collector to finish it). */
	cJSON *two = configmap(ns, "two", "a", "1"), *twog = NULL;
	ck_assert_int_eq(kube_create(NULL, c, &r, NULL, two), 0);
	ck_assert_int_eq(kube_delete(c, &r, ns, "two", KUBE_PROPAGATION_FOREGROUND), 0);
	int rc2 = kube_get(&twog, c, &r, ns, "two");
	if (rc2 == 0) {
		const cJSON *fin = cJSON_GetObjectItem(cJSON_GetObjectItem(twog, "metadata"), "finalizers");
		ck_assert(cJSON_IsArray(fin));
		ck_assert_str_eq(cJSON_GetArrayItem(fin, 0)->valuestring, "foregroundDeletion");
	} else {
		ck_assert_int_eq(rc2, PLUMB_ENOTFOUND);
	}
	cJSON_Delete(two);
	cJSON_Delete(twog);
	ck_assert_int_eq(kube_delete(c, &r, ns, "one", KUBE_PROPAGATION_DEFAULT), PLUMB_ENOTFOUND);
	cJSON *gone = NULL;
	ck_assert_int_eq(kube_get(&gone, c, &r, ns, "one"), PLUMB_ENOTFOUND);
	ck_assert(strstr(plumb_error_last(), "GET configmaps \"one\" in ns \"") == plumb_error_last());
	ck_assert(strstr(plumb_error_last(), ": 404 NotFound: ") != NULL);
	drop_ns(c, ns);
	cJSON_Delete(mp); cJSON_Delete(cm); cJSON_Delete(made); cJSON_Delete(got); cJSON_Delete(upd); cJSON_Delete(patched);
	kube_client_free(c);
}
END_TEST

START_TEST(test_kube__crd_discovery_and_custom_resource)
{
	kube_client *c = admin_client(NULL);
	char ns[32], group[64], crdname[96], rnd[7];
	make_ns(c, ns, sizeof(ns));
	plumb_random_name(rnd, 6);
	snprintf(group, sizeof(group), "kt%s.plumb.dev", rnd);
	snprintf(crdname, sizeof(crdname), "widgets.%s", group);
	kube_resource crdr = resolve(c, "apiextensions.k8s.io/v1", "CustomResourceDefinition");
	kube_resource wr;

	/* Not there yet: a miss refreshes discovery and still does not find it. */
	char av[128];
	snprintf(av, sizeof(av), "%s/v1", group);
	ck_assert_int_eq(kube_resolve(&wr, c, av, "Widget"), PLUMB_ENOTFOUND);

	char *crd_text = plumb_asprintf(
		"{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
		"\"metadata\":{\"name\":\"%s\"},\"spec\":{\"group\":\"%s\",\"scope\":\"Namespaced\","
		"\"names\":{\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\",\"listKind\":\"WidgetList\"},"
		"\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"subresources\":{\"status\":{}},"
		"\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
		"\"spec\":{\"type\":\"object\",\"properties\":{\"size\":{\"type\":\"integer\"}}},"
		"\"status\":{\"type\":\"object\",\"properties\":{\"phase\":{\"type\":\"string\"}}}}}}}]}}", crdname, group);
	cJSON *crd = cJSON_Parse(crd_text);
	ck_assert_msg(kube_apply(NULL, c, &crdr, NULL, crd, NULL) == 0, "%s", plumb_error_last());

	/* Wait for Established. */
	int established = 0;
	for (int i = 0; i < 100 && !established; i++) {
		cJSON *got = NULL, *cond;
		ck_assert_int_eq(kube_get(&got, c, &crdr, NULL, crdname), 0);
		cJSON_ArrayForEach(cond, cJSON_GetObjectItem(cJSON_GetObjectItem(got, "status"), "conditions")) {
			if (!strcmp(cJSON_GetObjectItem(cond, "type")->valuestring, "Established") &&
			    !strcmp(cJSON_GetObjectItem(cond, "status")->valuestring, "True"))
				established = 1;
		}
		cJSON_Delete(got);
		if (!established)
			plumb_sleep(0.1);
	}
	ck_assert(established);
	/* Discovery may lag Established by a moment: the refresh-on-miss finds it. */
	int rc = -1;
	for (int i = 0; i < 50 && rc != 0; i++) {
		rc = kube_resolve(&wr, c, av, "Widget");
		if (rc)
			plumb_sleep(0.2);
	}
	ck_assert_msg(rc == 0, "%s", plumb_error_last());
	ck_assert_str_eq(wr.resource, "widgets");
	ck_assert_int_eq(wr.namespaced, 1);
	ck_assert_int_eq(wr.has_status, 1);
	kube_resource pref;
	ck_assert_int_eq(kube_resolve_preferred(&pref, c, group, "Widget"), 0);
	ck_assert_str_eq(pref.version, "v1");

	/* CRUD on the custom resource. */
	char *w_text = plumb_asprintf("{\"apiVersion\":\"%s\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w1\",\"namespace\":\"%s\"},\"spec\":{\"size\":3}}", av, ns);
	cJSON *w = cJSON_Parse(w_text), *made = NULL, *got = NULL, *st = NULL;
	ck_assert_msg(kube_create(&made, c, &wr, NULL, w) == 0, "%s", plumb_error_last());
	ck_assert_int_eq(kube_get(&got, c, &wr, ns, "w1"), 0);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(got, "spec"), "size")->valueint, 3);
	cJSON_AddItemToObject(got, "status", cJSON_Parse("{\"phase\":\"Ready\"}"));
	ck_assert_msg(kube_update_status(&st, c, &wr, NULL, got) == 0, "%s", plumb_error_last());
	cJSON_Delete(st);
	st = NULL;
	ck_assert_int_eq(kube_get_status(&st, c, &wr, ns, "w1"), 0);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "status"), "phase")->valuestring, "Ready");
	cJSON_Delete(st);
	st = NULL;
	char *sa_text = plumb_asprintf("{\"apiVersion\":\"%s\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w1\",\"namespace\":\"%s\"},\"status\":{\"phase\":\"Degraded\"}}", av, ns);
	cJSON *sapply = cJSON_Parse(sa_text);
	ck_assert_msg(kube_apply_status(&st, c, &wr, NULL, sapply, NULL) == 0, "%s", plumb_error_last());
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "status"), "phase")->valuestring, "Degraded");
	ck_assert_int_eq(kube_delete(c, &wr, ns, "w1", KUBE_PROPAGATION_BACKGROUND), 0);
	ck_assert_int_eq(kube_delete(c, &crdr, NULL, crdname, KUBE_PROPAGATION_DEFAULT), 0);
	drop_ns(c, ns);
	cJSON_Delete(sapply); cJSON_Delete(st); cJSON_Delete(w); cJSON_Delete(made); cJSON_Delete(got); cJSON_Delete(crd);
	free(sa_text); free(w_text); free(crd_text);
	kube_client_free(c);
}
END_TEST

START_TEST(test_kube__server_side_apply)
{
	kube_client *c = admin_client(NULL);
	char ns[32], rv1[64], rv2[64];
	cJSON *out = NULL;
	make_ns(c, ns, sizeof(ns));
	kube_resource r = resolve(c, "v1", "ConfigMap");

	cJSON *cm = configmap(ns, "ssa", "a", "1");
	ck_assert_msg(kube_apply(&out, c, &r, NULL, cm, NULL) == 0, "%s", plumb_error_last());
	ck_assert_str_eq(data_of(out, "a"), "1");
	snprintf(rv1, sizeof(rv1), "%s", rv_of(out));
	cJSON_Delete(out);

	/* dryRun: the answer shows the change, nothing is stored. */
	cJSON *cm2 = configmap(ns, "ssa", "a", "2");
	kube_apply_opts dry = { NULL, 1, 1 };
	ck_assert_int_eq(kube_apply(&out, c, &r, NULL, cm2, &dry), 0);
	ck_assert_str_eq(data_of(out, "a"), "2");
	cJSON_Delete(out);
	ck_assert_int_eq(kube_get(&out, c, &r, ns, "ssa"), 0);
	ck_assert_str_eq(data_of(out, "a"), "1");
	ck_assert_str_eq(rv_of(out), rv1);
	cJSON_Delete(out);

	/* Update. */
	ck_assert_int_eq(kube_apply(&out, c, &r, NULL, cm2, NULL), 0);
	ck_assert_str_eq(data_of(out, "a"), "2");
	snprintf(rv2, sizeof(rv2), "%s", rv_of(out));
	ck_assert_str_ne(rv1, rv2);
	cJSON_Delete(out);

	/* No-op: same object again, resourceVersion does not move. */
	ck_assert_int_eq(kube_apply(&out, c, &r, NULL, cm2, NULL), 0);
	ck_assert_str_eq(rv_of(out), rv2);
	cJSON_Delete(out);

	/* Another manager wants the same field: conflict without force... */
	cJSON *theirs = configmap(ns, "ssa", "a", "theirs");
	kube_apply_opts other = { "other-tool", 0, 0 };
	ck_assert_int_eq(kube_apply(NULL, c, &r, NULL, theirs, &other), PLUMB_EFIELDCONFLICT);
	ck_assert_int_eq(kube_last_http_status(), 409);
	ck_assert(strstr(plumb_error_last(), "PATCH configmaps \"ssa\" in ns \"") == plumb_error_last());
	ck_assert(strstr(plumb_error_last(), "409 Conflict: Apply failed with 1 conflict") != NULL);
	/* ...and success with force. */
	other.force = 1;
	ck_assert_int_eq(kube_apply(&out, c, &r, NULL, theirs, &other), 0);
	ck_assert_str_eq(data_of(out, "a"), "theirs");
	cJSON_Delete(out);

	drop_ns(c, ns);
	cJSON_Delete(cm); cJSON_Delete(cm2); cJSON_Delete(theirs);
	kube_client_free(c);
}
END_TEST

/* ---- pagination ---- */

typedef struct {
	kube_client *c;
	const kube_resource *r;
	const char *ns;
	int from, to;
	int failed;
} creator;

static void *create_range(void *arg)
{
	creator *k = arg;
	for (int i = k->from; i < k->to; i++) {
		char name[32];
		snprintf(name, sizeof(name), "cm-%03d", i);
		cJSON *cm = configmap(k->ns, name, "i", name);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_GetObjectItem(cm, "metadata"), "labels"), "kt", "page");
		if (kube_create(NULL, k->c, k->r, NULL, cm) != 0)
			k->failed++;
		cJSON_Delete(cm);
	}
	return NULL;
}

static int count_page(const cJSON *page, void *data)
{
	int *n = data;
	*n += cJSON_GetArraySize(cJSON_GetObjectItem(page, "items"));
	return 0;
}

START_TEST(test_kube__pagination_500)
{
	kube_client_opts o = { .qps = -1 };
	kube_client *c = admin_client(&o);
	char ns[32], *rv = NULL;
	pthread_t th[4];
	creator k[4];
	make_ns(c, ns, sizeof(ns));
	kube_resource r = resolve(c, "v1", "ConfigMap");
	cJSON *before = NULL;
	ck_assert_int_eq(kube_list(&before, c, &r, ns, NULL), 0);
	int base = cJSON_GetArraySize(cJSON_GetObjectItem(before, "items"));  /* kube-root-ca.crt if a controller made it */
	cJSON_Delete(before);
	/* Four threads on one client: also exercises its thread safety. */
	for (int i = 0; i < 4; i++) {
		k[i] = (creator){ c, &r, ns, i * 125, (i + 1) * 125, 0 };
		pthread_create(&th[i], NULL, create_range, &k[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(k[i].failed, 0);
	}
	kube_list_opts lo = { "kt=page", NULL, 100, NULL };
	unsigned pages = 0;
	int items = 0;
	ck_assert_msg(kube_list_pages(c, &r, ns, &lo, count_page, &items, &rv, &pages) == 0, "%s", plumb_error_last());
	ck_assert_int_eq(items, 500);
	ck_assert_uint_eq(pages, 5);
	ck_assert(rv && *rv);
	free(rv);
	rv = NULL;

	cJSON *all = NULL;
	kube_list_opts lo2 = { NULL, NULL, 100, NULL };
	ck_assert_int_eq(kube_list(&all, c, &r, ns, &lo2), 0);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(all, "items")), 500 + base);
	ck_assert_str_eq(cJSON_GetObjectItem(all, "kind")->valuestring, "ConfigMapList");
	ck_assert(rv_of(all)[0] != '\0');
	cJSON_Delete(all);
	drop_ns(c, ns);
	kube_client_free(c);
}
END_TEST

/* ---- watch ---- */

typedef struct {
	pthread_mutex_t lock;
	int added, modified, deleted, bookmarks, resyncs, errors;
	int resync_items;
	char last_error[512];
} wcount;

static void on_event(kube_watch_event t, const cJSON *obj, void *data)
{
	wcount *w = data;
	pthread_mutex_lock(&w->lock);
	switch (t) {
	case KUBE_WATCH_ADDED: w->added++; break;
	case KUBE_WATCH_MODIFIED: w->modified++; break;
	case KUBE_WATCH_DELETED: w->deleted++; break;
	case KUBE_WATCH_BOOKMARK: w->bookmarks++; break;
	case KUBE_WATCH_RESYNC:
		w->resyncs++;
		w->resync_items = cJSON_GetArraySize(cJSON_GetObjectItem(obj, "items"));
		break;
	case KUBE_WATCH_ERROR: {
		const cJSON *m = cJSON_GetObjectItem(obj, "message");
		w->errors++;
		snprintf(w->last_error, sizeof(w->last_error), "%s", cJSON_IsString(m) ? m->valuestring : "");
		break;
	}
	}
	pthread_mutex_unlock(&w->lock);
}

static void *hub_thread(void *arg)
{
	kube_watch_hub_run(arg);
	return NULL;
}

static int wait_for(wcount *w, int *field, int want, double seconds)
{
	double end = plumb_time_mono() + seconds;
	for (;;) {
		pthread_mutex_lock(&w->lock);
		int v = *field;
		pthread_mutex_unlock(&w->lock);
		if (v >= want)
			return 1;
		if (plumb_time_mono() > end)
			return 0;
		plumb_sleep(0.05);
	}
}

START_TEST(test_kube__watch_events_and_bookmarks)
{
	kube_client *c = admin_client(NULL);
	kube_watch_hub *hub = NULL;
	kube_watch *wt = NULL;
	pthread_t th;
	wcount w = { .lock = PTHREAD_MUTEX_INITIALIZER };
	char ns[32];
	make_ns(c, ns, sizeof(ns));
	kube_resource r = resolve(c, "v1", "ConfigMap");
	cJSON *pre = configmap(ns, "pre", "a", "1");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_GetObjectItem(pre, "metadata"), "labels"), "kt", "w");
	ck_assert_int_eq(kube_create(NULL, c, &r, NULL, pre), 0);

	ck_assert_int_eq(kube_watch_hub_new(&hub), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, hub_thread, hub), 0);
	/* Short server timeout: the stream ends normally and resumes, and
	 * the server sends a bookmark before it ends. */
	kube_watch_opts wo = { ns, "kt=w", NULL, 4, 0 };
	ck_assert_int_eq(kube_watch_start(&wt, hub, c, &r, &wo, on_event, &w), 0);
	ck_assert(wait_for(&w, &w.resyncs, 1, 10));
	ck_assert_int_eq(w.resync_items, 1);

	cJSON *cm = configmap(ns, "x", "a", "1"), *mp = cJSON_Parse("{\"data\":{\"a\":\"2\"}}");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_GetObjectItem(cm, "metadata"), "labels"), "kt", "w");
	ck_assert_int_eq(kube_create(NULL, c, &r, NULL, cm), 0);
	ck_assert(wait_for(&w, &w.added, 1, 10));
	ck_assert_int_eq(kube_merge_patch(NULL, c, &r, ns, "x", mp), 0);
	ck_assert(wait_for(&w, &w.modified, 1, 10));
	ck_assert_int_eq(kube_delete(c, &r, ns, "x", KUBE_PROPAGATION_DEFAULT), 0);
	ck_assert(wait_for(&w, &w.deleted, 1, 10));
	/* An unlabelled object is not seen. */
	cJSON *other = configmap(ns, "other", "a", "1");
	ck_assert_int_eq(kube_create(NULL, c, &r, NULL, other), 0);
	ck_assert(wait_for(&w, &w.bookmarks, 1, 20));
	/* After the normal end (4 s) the watch resumed without a relist. */
	plumb_sleep(5);
	cJSON *cm2 = configmap(ns, "y", "a", "1");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_GetObjectItem(cm2, "metadata"), "labels"), "kt", "w");
	ck_assert_int_eq(kube_create(NULL, c, &r, NULL, cm2), 0);
	ck_assert(wait_for(&w, &w.added, 2, 10));
	pthread_mutex_lock(&w.lock);
	ck_assert_int_eq(w.added, 2);
	ck_assert_int_eq(w.resyncs, 1);
	ck_assert_msg(w.errors == 0, "%s", w.last_error);
	pthread_mutex_unlock(&w.lock);

	kube_watch_stop(wt);
	kube_watch_hub_stop(hub);
	pthread_join(th, NULL);
	kube_watch_hub_free(hub);
	drop_ns(c, ns);
	cJSON_Delete(pre); cJSON_Delete(cm); cJSON_Delete(cm2); cJSON_Delete(mp); cJSON_Delete(other);
	kube_client_free(c);
}
END_TEST

/* An exec credential plugin runs off the hub thread: while one cluster's
 * plugin takes 4 s (a watch resumed from a resourceVersion, so no list runs
 * first), another cluster's watch on the same hub still delivers at once. */
START_TEST(test_kube__watch_exec_plugin_off_hub_thread)
{
	static const kube_config_policy trusted = { .trusted = 1 };
	kube_client *b = admin_client(NULL), *a = NULL;
	kube_config *acfg = NULL;
	kube_watch_hub *hub = NULL;
	kube_watch *wb = NULL, *wa = NULL;
	pthread_t th;
	wcount cb = { .lock = PTHREAD_MUTEX_INITIALIZER }, ca = { .lock = PTHREAD_MUTEX_INITIALIZER };
	char ns[32], script[600], *kc = NULL, *ca64 = NULL, *cadata = NULL;
	size_t len = 0;
	make_ns(b, ns, sizeof(ns));
	kube_resource r = resolve(b, "v1", "ConfigMap");

	snprintf(script, sizeof(script), "%s/slow-plugin", tmp);
	char *body = plumb_asprintf("#!/bin/sh\nsleep 4\n"
		"printf '{\"status\":{\"clientCertificateData\":%%s,\"clientKeyData\":%%s}}' "
		"\"$(jq -Rs . <%s/admin.crt)\" \"$(jq -Rs . <%s/admin.key)\"\n", cdir, cdir);
	ck_assert_int_eq(plumb_file_write(script, body, strlen(body), 0755), 0);
	free(body);
	char capath[600];
	snprintf(capath, sizeof(capath), "%s/ca.crt", cdir);
	ck_assert_int_eq(plumb_file_read(&cadata, &len, capath, 1 << 20), 0);
	ck_assert_int_eq(plumb_base64_encode(&ca64, cadata, len), 0);
	kc = plumb_asprintf("current-context: t\ncontexts:\n- name: t\n  context: {cluster: c, user: u}\n"
		"clusters:\n- name: c\n  cluster: {server: '%s', certificate-authority-data: %s}\n"
		"users:\n- name: u\n  user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: %s}}\n",
		kube_config_server(kube_client_config(b)), ca64, script);
	ck_assert_msg(kube_config_load_memory(&acfg, kc, strlen(kc), NULL, "slow", &trusted) == 0, "%s", plumb_error_last());
	ck_assert_int_eq(kube_client_new(&a, acfg, NULL), 0);

	ck_assert_int_eq(kube_watch_hub_new(&hub), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, hub_thread, hub), 0);
	kube_watch_opts wob = { ns, "kt=b", NULL, 0, 0 };
	ck_assert_int_eq(kube_watch_start(&wb, hub, b, &r, &wob, on_event, &cb), 0);
	ck_assert(wait_for(&cb, &cb.resyncs, 1, 10));

	cJSON *list = NULL;
	ck_assert_int_eq(kube_list(&list, b, &r, ns, NULL), 0);
	kube_watch_opts woa = { ns, "kt=a", rv_of(list), 0, 0 };
	ck_assert_int_eq(kube_watch_start(&wa, hub, a, &r, &woa, on_event, &ca), 0);
	plumb_sleep(0.3);   /* the hub has begun a's stream: its plugin is running */

	cJSON *cmb = configmap(ns, "for-b", "a", "1");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_GetObjectItem(cmb, "metadata"), "labels"), "kt", "b");
	double t0 = plumb_time_mono();
	ck_assert_int_eq(kube_create(NULL, b, &r, NULL, cmb), 0);
	ck_assert(wait_for(&cb, &cb.added, 1, 10));
	double lag = plumb_time_mono() - t0;
	ck_assert_msg(lag < 2.0, "b's event took %.2f s while a's plugin ran", lag);

	/* a works once its plugin answered. */
	cJSON *cma = configmap(ns, "for-a", "a", "1");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_GetObjectItem(cma, "metadata"), "labels"), "kt", "a");
	ck_assert_int_eq(kube_create(NULL, b, &r, NULL, cma), 0);
	ck_assert_msg(wait_for(&ca, &ca.added, 1, 15), "a never saw its object: %s", ca.last_error);

	kube_watch_stop(wa);
	kube_watch_stop(wb);
	kube_watch_hub_stop(hub);
	pthread_join(th, NULL);
	kube_watch_hub_free(hub);
	drop_ns(b, ns);
	cJSON_Delete(list); cJSON_Delete(cmb); cJSON_Delete(cma);
	free(kc); free(ca64); free(cadata);
	kube_config_free(acfg);
	kube_client_free(a);
	kube_client_free(b);
}
END_TEST

/* A reduced relist: every item goes through reduce (page by page, on the
 * list thread), the RESYNC holds only what reduce returned, and later events
 * still carry whole objects. */
typedef struct {
	wcount w;
	int reduced;            /* reduce calls */
	int resync_whole;       /* RESYNC items with data (should be 0) */
	int event_whole;        /* ADDED events with data */
} rcount;

static cJSON *reduce_name(const cJSON *item, const kube_resource *res, void *data)
{
	(void)res;
	rcount *rc = data;
	const cJSON *name = cJSON_GetObjectItem(cJSON_GetObjectItem(item, "metadata"), "name");
	__atomic_add_fetch(&rc->reduced, 1, __ATOMIC_SEQ_CST);
	if (!cJSON_IsString(name) || name->valuestring[strlen(name->valuestring) - 1] == '7')
		return NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "metadata"), "name", name->valuestring);
	return o;
}

static void on_reduced_event(kube_watch_event t, const cJSON *obj, void *data)
{
	rcount *rc = data;
	const cJSON *it;
	pthread_mutex_lock(&rc->w.lock);
	if (t == KUBE_WATCH_RESYNC)
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(obj, "items"))
			rc->resync_whole += cJSON_GetObjectItem(it, "data") != NULL;
	if (t == KUBE_WATCH_ADDED)
		rc->event_whole += cJSON_GetObjectItem(obj, "data") != NULL;
	pthread_mutex_unlock(&rc->w.lock);
	on_event(t, obj, &rc->w);
}

START_TEST(test_kube__watch_reduced_relist)
{
	kube_client *c = admin_client(NULL);
	kube_watch_hub *hub = NULL;
	kube_watch *wt = NULL;
	pthread_t th;
	rcount rc = { .w = { .lock = PTHREAD_MUTEX_INITIALIZER } };
	char ns[32], name[32];
	make_ns(c, ns, sizeof(ns));
	kube_resource r = resolve(c, "v1", "ConfigMap");
	for (int i = 0; i < 250; i++) {
		snprintf(name, sizeof(name), "cm-%03d", i);
		cJSON *cm = configmap(ns, name, "payload", "0123456789abcdef");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_GetObjectItem(cm, "metadata"), "labels"), "kt", "r");
		ck_assert_msg(kube_create(NULL, c, &r, NULL, cm) == 0, "%s", plumb_error_last());
		cJSON_Delete(cm);
	}
	ck_assert_int_eq(kube_watch_hub_new(&hub), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, hub_thread, hub), 0);
	kube_watch_opts wo = { .ns = ns, .label_selector = "kt=r", .timeout_seconds = 30,
		.list_limit = 100, .reduce = reduce_name };
	ck_assert_int_eq(kube_watch_start(&wt, hub, c, &r, &wo, on_reduced_event, &rc), 0);
	ck_assert(wait_for(&rc.w, &rc.w.resyncs, 1, 20));
	pthread_mutex_lock(&rc.w.lock);
	ck_assert_int_eq(__atomic_load_n(&rc.reduced, __ATOMIC_SEQ_CST), 250);
	ck_assert_int_eq(rc.w.resync_items, 250 - 25);   /* names ending in 7 left out */
	ck_assert_int_eq(rc.resync_whole, 0);
	pthread_mutex_unlock(&rc.w.lock);

	cJSON *cm = configmap(ns, "late", "payload", "x");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_GetObjectItem(cm, "metadata"), "labels"), "kt", "r");
	ck_assert_int_eq(kube_create(NULL, c, &r, NULL, cm), 0);
	cJSON_Delete(cm);
	ck_assert(wait_for(&rc.w, &rc.w.added, 1, 10));
	pthread_mutex_lock(&rc.w.lock);
	ck_assert_int_eq(rc.event_whole, 1);
	ck_assert_msg(rc.w.errors == 0, "%s", rc.w.last_error);
	pthread_mutex_unlock(&rc.w.lock);

	kube_watch_stop(wt);
	kube_watch_hub_stop(hub);
	pthread_join(th, NULL);
	kube_watch_hub_free(hub);
	drop_ns(c, ns);
	kube_client_free(c);
}
END_TEST

static int etcd_port(void)
{
	char p[600], *env = NULL, *s;
	size_t len;
	snprintf(p, sizeof(p), "%s/env", cdir);
	ck_assert_int_eq(plumb_file_read(&env, &len, p, 1 << 16), 0);
	s = strstr(env, "ETCD_PORT=");
	ck_assert_ptr_nonnull(s);
	int port = atoi(s + 10);
	free(env);
	return port;
}

static cJSON *event_obj(const char *ns, const char *name)
{
	char *t = plumb_asprintf("{\"apiVersion\":\"v1\",\"kind\":\"Event\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},"
		"\"involvedObject\":{\"kind\":\"ConfigMap\",\"name\":\"x\",\"namespace\":\"%s\"},"
		"\"reason\":\"Test\",\"message\":\"m\",\"type\":\"Normal\"}", name, ns, ns);
	cJSON *o = cJSON_Parse(t);
	free(t);
	return o;
}

/* core/v1 Events: the apiserver serves their watches from etcd (no watch
 * cache), so an etcd compaction makes an old resourceVersion expire. */
START_TEST(test_kube__watch_compacted_relists)
{
	kube_client *c = admin_client(NULL);
	kube_watch_hub *hub = NULL;
	kube_watch *wt = NULL;
	pthread_t th;
	wcount w = { .lock = PTHREAD_MUTEX_INITIALIZER };
	char ns[32], old_rv[64];
	cJSON *out = NULL, *e;
	make_ns(c, ns, sizeof(ns));
	kube_resource r = resolve(c, "v1", "Event");
	e = event_obj(ns, "e0");
	ck_assert_msg(kube_create(&out, c, &r, NULL, e) == 0, "%s", plumb_error_last());
	snprintf(old_rv, sizeof(old_rv), "%s", rv_of(out));
	cJSON_Delete(out);
	cJSON_Delete(e);
	for (int i = 1; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "e%d", i);
		e = event_obj(ns, name);
		ck_assert_int_eq(kube_create(NULL, c, &r, NULL, e), 0);
		cJSON_Delete(e);
	}
	int port = etcd_port();
	ck_assert_int_eq(sh("rev=$(curl -s http://127.0.0.1:%d/v3/kv/range -d '{\"key\":\"AA==\"}' | "
		"sed -n 's/.*\"revision\":\"\\([0-9]*\\)\".*/\\1/p') && test -n \"$rev\" && "
		"curl -sf http://127.0.0.1:%d/v3/kv/compaction -d \"{\\\"revision\\\":\\\"$rev\\\",\\\"physical\\\":true}\" >/dev/null",
		port, port), 0);

	ck_assert_int_eq(kube_watch_hub_new(&hub), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, hub_thread, hub), 0);
	kube_watch_opts wo = { ns, NULL, old_rv, 30, 0 };
	ck_assert_int_eq(kube_watch_start(&wt, hub, c, &r, &wo, on_event, &w), 0);
	/* The old resourceVersion is compacted away: the hub relists (RESYNC
	 * with all five events) instead of failing. */
	ck_assert_msg(wait_for(&w, &w.resyncs, 1, 20), "no relist; errors %d: %s", w.errors, w.last_error);
	pthread_mutex_lock(&w.lock);
	ck_assert_int_eq(w.resync_items, 5);
	ck_assert_int_eq(w.added, 0);
	ck_assert_msg(w.errors == 0, "%s", w.last_error);
	pthread_mutex_unlock(&w.lock);
	/* And it keeps watching from the fresh list. */
	e = event_obj(ns, "e5");
	ck_assert_int_eq(kube_create(NULL, c, &r, NULL, e), 0);
	cJSON_Delete(e);
	ck_assert(wait_for(&w, &w.added, 1, 10));
	char rv_now[64];
	kube_watch_resource_version(rv_now, sizeof(rv_now), wt);
	ck_assert_str_ne(rv_now, old_rv);

	kube_watch_stop(wt);
	kube_watch_hub_stop(hub);
	pthread_join(th, NULL);
	kube_watch_hub_free(hub);
	drop_ns(c, ns);
	kube_client_free(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kube-integration");
	TCase *tc = tcase_create("c1");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_kube__connect_client_cert);
	tcase_add_test(tc, test_kube__connect_serviceaccount_token);
	tcase_add_test(tc, test_kube__wrong_ca_is_tls_error);
	tcase_add_test(tc, test_kube__narrow_rbac_forbidden);
	tcase_add_test(tc, test_kube__impersonation);
	tcase_add_test(tc, test_kube__closed_port_is_retryable);
	tcase_add_test(tc, test_kube__crud_errors);
	tcase_add_test(tc, test_kube__crd_discovery_and_custom_resource);
	tcase_add_test(tc, test_kube__server_side_apply);
	tcase_add_test(tc, test_kube__pagination_500);
	tcase_add_test(tc, test_kube__watch_reduced_relist);
	tcase_add_test(tc, test_kube__watch_events_and_bookmarks);
	tcase_add_test(tc, test_kube__watch_exec_plugin_off_hub_thread);
	tcase_add_test(tc, test_kube__watch_compacted_relists);
	tcase_add_test(tc, test_kube__stopped_apiserver_is_retryable);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
