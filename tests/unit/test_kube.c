/* Unit tests for the pure parts of pkg/kube: kubeconfig parsing, Status ->
 * error mapping, the watch line decoder, discovery parsing, Retry-After,
 * the rate limiter and path building. */
#include "kube/kube_internal.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
static const kube_config_policy trusted = { .trusted = 1 };


/* "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" */
static char *b64(const char *s)
{
	char *out = NULL;
	ck_assert_int_eq(plumb_base64_encode(&out, s, strlen(s)), 0);
	return out;
}

#define CERT_PEM "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n"

static char *make_kubeconfig(const char *key_data_override)
{
	char *ca = b64(CERT_PEM), *cert = b64(CERT_PEM), *key = b64(KEY_PEM);
	char *kc = plumb_asprintf(
		"apiVersion: v1\n"
		"kind: Config\n"
		"current-context: admin@c1\n"
		"clusters:\n"
		"- name: c1\n"
		"  cluster:\n"
		"    server: https://127.0.0.1:6443/\n"
		"    certificate-authority-data: %s\n"
		"- name: c2\n"
		"  cluster:\n"
		"    server: https://[::1]:7443\n"
		"    insecure-skip-tls-verify: true\n"
		"    tls-server-name: kubernetes\n"
		"users:\n"
		"- name: admin\n"
		"  user:\n"
		"    client-certificate-data: %s\n"
		"    client-key-data: %s\n"
		"- name: bot\n"
		"  user:\n"
		"    token: \"s3cr3t-token\"\n"
		"contexts:\n"
		"- name: admin@c1\n"
		"  context: {cluster: c1, user: admin, namespace: team-a}\n"
		"- name: bot@c2\n"
		"  context:\n"
		"    cluster: c2\n"
		"    user: bot\n",
		ca, cert, key_data_override ? key_data_override : key);
	free(ca);
	free(cert);
	free(key);
	return kc;
}

START_TEST(test_kube__config_current_context)
{
	char *kc = make_kubeconfig(NULL);
	kube_config *cfg = NULL;
	kube_creds cr;
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "test", &trusted), 0);
	ck_assert_str_eq(kube_config_server(cfg), "https://127.0.0.1:6443");
	ck_assert_str_eq(kube_config_namespace(cfg), "team-a");
	ck_assert_str_eq(kube_config_context(cfg), "admin@c1");
	ck_assert_int_eq(cfg->insecure, 0);
	ck_assert_ptr_nonnull(cfg->ca);
	ck_assert(strstr(cfg->ca, "BEGIN CERTIFICATE") != NULL);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	ck_assert_ptr_nonnull(cr.cert);
	ck_assert(strstr(cr.key, "PRIVATE KEY") != NULL);
	ck_assert_ptr_null(cr.token);
	kube_creds_clear(&cr);
	kube_config_free(cfg);
	free(kc);
}
END_TEST

START_TEST(test_kube__config_named_context)
{
	char *kc = make_kubeconfig(NULL);
	kube_config *cfg = NULL;
	kube_creds cr;
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), "bot@c2", NULL, &trusted), 0);
	ck_assert_str_eq(kube_config_server(cfg), "https://[::1]:7443");
	ck_assert_str_eq(kube_config_namespace(cfg), "default");
	ck_assert_int_eq(cfg->insecure, 1);
	ck_assert_str_eq(cfg->tls_server_name, "kubernetes");
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	ck_assert_str_eq(cr.token, "s3cr3t-token");
	ck_assert_ptr_null(cr.cert);
	kube_creds_clear(&cr);
	kube_config_free(cfg);
	free(kc);
}
END_TEST

START_TEST(test_kube__config_bad_base64_names_field)
{
	char *kc = make_kubeconfig("not-valid@base64");
	kube_config *cfg = NULL;
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "prod-eu", &trusted), PLUMB_EINVALID);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(plumb_error_last(), "kubeconfig prod-eu: users[0].user.client-key-data: not valid base64");
	free(kc);
}
END_TEST

START_TEST(test_kube__config_malformed_fields)
{
	static const struct { const char *yaml; const char *want; } cases[] = {
		{ "current-context: x\ncontexts: []\n", "kubeconfig t: current-context: no contexts named \"x\"" },
		{ "contexts:\n- name: a\n  context: {cluster: nope}\nclusters: []\ncurrent-context: a\n",
		  "kubeconfig t: contexts[0].context.cluster: no clusters named \"nope\"" },
		{ "contexts:\n- name: a\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster: {}\ncurrent-context: a\n",
		  "kubeconfig t: clusters[0].cluster.server: missing" },
		{ "contexts:\n- name: a\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster: {server: ftp://x}\ncurrent-context: a\n",
		  "kubeconfig t: clusters[0].cluster.server: want an https:// URL" },
		{ "contexts:\n- name: a\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster: {server: 'https://x', insecure-skip-tls-verify: maybe}\ncurrent-context: a\n",
		  "kubeconfig t: clusters[0].cluster.insecure-skip-tls-verify: must be true or false" },
		{ "contexts:\n- name: a\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://x'}\nusers:\n- name: u\n  user: {exec: {args: [a]}}\ncurrent-context: a\n",
		  "kubeconfig t: users[0].user.exec.command: missing" },
		{ "contexts:\n- name: a\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://x'}\nusers:\n- name: u\n  user: {client-certificate-data: " "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==" "}\ncurrent-context: a\n",
		  "kubeconfig t: users[0].user.client-key: missing (a client certificate needs both certificate and key)" },
		{ "contexts:\n- name: a\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster: {server: 'https://x', certificate-authority-data: aGVsbG8=}\ncurrent-context: a\n",
		  "kubeconfig t: clusters[0].cluster.certificate-authority-data: not a PEM block" },
		{ "clusters: {a: b}\ncurrent-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n",
		  "kubeconfig t: clusters: must be a list" },
		{ "- just\n- a list\n", "kubeconfig t: not a map" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kube_config *cfg = NULL;
		int rc = kube_config_load_memory(&cfg, cases[i].yaml, strlen(cases[i].yaml), NULL, "t", &trusted);
		ck_assert_msg(rc == PLUMB_EINVALID, "case %zu: rc %d", i, rc);
		ck_assert_msg(!strcmp(plumb_error_last(), cases[i].want), "case %zu: got \"%s\"", i, plumb_error_last());
		ck_assert_ptr_null(cfg);
	}
}
END_TEST

START_TEST(test_kube__config_yaml_syntax_and_caps)
{
	kube_config *cfg = NULL;
	const char *bad = "clusters:\n  - name: [unclosed\n";
	ck_assert_int_eq(kube_config_load_memory(&cfg, bad, strlen(bad), NULL, "t", &trusted), PLUMB_EINVALID);
	ck_assert(strstr(plumb_error_last(), "kubeconfig t: line ") != NULL);
	ck_assert_int_eq(kube_config_load_memory(&cfg, "", 0, NULL, "t", &trusted), PLUMB_EINVALID);

	/* A billion-laughs document is cut off, not expanded. */
	plumb_buf b = PLUMB_BUF_INIT(1 << 20);
	plumb_buf_puts(&b, "a: &a [x,x,x,x,x,x,x,x,x,x]\n");
	for (char c = 'b'; c <= 'j'; c++)
		plumb_buf_printf(&b, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
	ck_assert_int_eq(kube_config_load_memory(&cfg, b.ptr, b.len, NULL, "bomb", &trusted), PLUMB_ETOOBIG);
	plumb_buf_free(&b);

	/* JSON kubeconfigs are YAML too. */
	const char *js = "{\"current-context\":\"a\",\"contexts\":[{\"name\":\"a\",\"context\":{\"cluster\":\"c\"}}],"
		"\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":\"https://h:1\"}}]}";
	ck_assert_int_eq(kube_config_load_memory(&cfg, js, strlen(js), NULL, "json", &trusted), 0);
	ck_assert_str_eq(kube_config_server(cfg), "https://h:1");
	kube_config_free(cfg);
}
END_TEST

static char tmpdir[64];

static void mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/plumb-kube-unit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *dir, const char *name, const char *text, int mode)
{
	char *p = plumb_asprintf("%s/%s", dir, name);
	ck_assert_int_eq(plumb_file_write(p, text, strlen(text), mode), 0);
	free(p);
}

START_TEST(test_kube__config_token_file_relative)
{
	kube_config *cfg = NULL;
	kube_creds cr;
	char *path;
	mk_tmpdir();
	write_file(tmpdir, "tok", "first-token\n", 0600);
	write_file(tmpdir, "kc",
		"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		"clusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
		"users:\n- name: u\n  user: {tokenFile: tok}\n", 0600);
	path = plumb_asprintf("%s/kc", tmpdir);
	ck_assert_int_eq(kube_config_load_file(&cfg, path, NULL), 0);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	ck_assert_str_eq(cr.token, "first-token");
	kube_creds_clear(&cr);
	/* Rotated: a forced refresh (what a 401 does) reads it anew. */
	write_file(tmpdir, "tok", "second-token", 0600);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	ck_assert_str_eq(cr.token, "first-token");
	kube_creds_clear(&cr);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 1), 0);
	ck_assert_str_eq(cr.token, "second-token");
	kube_creds_clear(&cr);
	kube_config_free(cfg);
	ck_assert_int_eq(kube_config_load_file(&cfg, "/nonexistent/kc", NULL) < 0, 1);
	ck_assert(strstr(plumb_error_last(), "/nonexistent/kc") != NULL);
	free(path);
	rm_tmpdir();
}
END_TEST

START_TEST(test_kube__config_in_cluster)
{
	kube_config *cfg = NULL;
	kube_creds cr;
	mk_tmpdir();
	write_file(tmpdir, "token", "sa-token\n", 0600);
	write_file(tmpdir, "ca.crt", CERT_PEM, 0644);
	write_file(tmpdir, "namespace", "plumb-system\n", 0644);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ck_assert_int_eq(kube_config_in_cluster(&cfg, tmpdir), 0);
	ck_assert_str_eq(kube_config_server(cfg), "https://[fd00::1]:443");
	ck_assert_str_eq(kube_config_namespace(cfg), "plumb-system");
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	ck_assert_str_eq(cr.token, "sa-token");
	kube_creds_clear(&cr);
	kube_config_free(cfg);

	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
	ck_assert_int_eq(kube_config_in_cluster(&cfg, tmpdir), 0);
	ck_assert_str_eq(kube_config_server(cfg), "https://10.0.0.1:443");
	kube_config_free(cfg);

	unsetenv("KUBERNETES_SERVICE_HOST");
	ck_assert_int_eq(kube_config_in_cluster(&cfg, tmpdir), PLUMB_EINVALID);
	setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
	ck_assert_int_lt(kube_config_in_cluster(&cfg, "/nonexistent"), 0);
	rm_tmpdir();
}
END_TEST

START_TEST(test_kube__config_exec_plugin)
{
	kube_config *cfg = NULL;
	kube_creds cr;
	char *kc, *script;
	mk_tmpdir();
	/* Counts its runs, so caching is visible. */
	script = plumb_asprintf(
		"#!/bin/sh\n"
		"echo x >> %s/runs\n"
		"case \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 3;; esac\n"
		"echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		"\"status\":{\"token\":\"'\"$PLUMB_TEST_PREFIX\"'-'\"$1\"'\",\"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}'\n",
		tmpdir);
	write_file(tmpdir, "plugin.sh", script, 0755);
	kc = plumb_asprintf(
		"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		"clusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
		"users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
		"      command: %s/plugin.sh\n      args: [arg1]\n      env: [{name: PLUMB_TEST_PREFIX, value: tok}]\n", tmpdir);
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &trusted), 0);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	ck_assert_str_eq(cr.token, "tok-arg1");
	kube_creds_clear(&cr);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	kube_creds_clear(&cr);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 1), 0);
	kube_creds_clear(&cr);
	char *runs = NULL, *rp = plumb_asprintf("%s/runs", tmpdir);
	size_t len = 0;
	ck_assert_int_eq(plumb_file_read(&runs, &len, rp, 1024), 0);
	ck_assert_uint_eq(len, 4);   /* 2 runs: cached once, forced once */
	free(runs);
	free(rp);
	kube_config_free(cfg);
	free(kc);

	/* A failing plugin is an auth error naming the command, not a crash. */
	write_file(tmpdir, "bad.sh", "#!/bin/sh\nexit 7\n", 0755);
	kc = plumb_asprintf(
		"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		"clusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n"
		"users:\n- name: u\n  user: {exec: {command: %s/bad.sh}}\n", tmpdir);
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &trusted), 0);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), PLUMB_EAUTH);
	ck_assert(strstr(plumb_error_last(), "exited with status 7") != NULL);
	kube_config_free(cfg);
	free(kc);
	free(script);
	rm_tmpdir();
}
END_TEST

START_TEST(test_kube__exec_credential_parse)
{
	kube_config *cfg = NULL;
	const char *kc = "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\nclusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n";
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &trusted), 0);
	ck_assert_int_eq(kube_exec_credential_parse(cfg, "nope", 4), PLUMB_EPROTO);
	ck_assert_int_eq(kube_exec_credential_parse(cfg, "{\"status\":{}}", 13), PLUMB_EPROTO);
	const char *cert = "{\"status\":{\"clientCertificateData\":\"C\",\"clientKeyData\":\"K\",\"expirationTimestamp\":\"2030-01-01T00:00:00Z\"}}";
	ck_assert_int_eq(kube_exec_credential_parse(cfg, cert, strlen(cert)), 0);
	ck_assert_str_eq(cfg->dyn_cert, "C");
	ck_assert_str_eq(cfg->dyn_key, "K");
	ck_assert(cfg->dyn_expiry > 1.8e9);
	kube_config_free(cfg);
}
END_TEST

/* ---- kubeconfigs a tenant wrote (the lockdown) ---- */

/* One cluster c and one user u with the given bodies (flow maps). */
static char *tenant_kc(const char *cluster, const char *user)
{
	return plumb_asprintf("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		"clusters:\n- name: c\n  cluster: %s\nusers:\n- name: u\n  user: %s\n", cluster, user);
}

START_TEST(test_kube__tenant_inline_accepted)
{
	char *ca = b64(CERT_PEM), *cert = b64(CERT_PEM), *key = b64(KEY_PEM);
	char *cl = plumb_asprintf("{server: 'https://10.0.0.1:6443', certificate-authority-data: %s, "
		"tls-server-name: kubernetes, insecure-skip-tls-verify: false, extensions: [{name: x, extension: {}}], "
		"disable-compression: true}", ca);
	char *us = plumb_asprintf("{client-certificate-data: %s, client-key-data: %s, extensions: []}", cert, key);
	char *kc = tenant_kc(cl, us);
	kube_config *cfg = NULL;
	kube_creds cr;
	ck_assert_msg(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "secret t/x", NULL) == 0, "%s", plumb_error_last());
	ck_assert_str_eq(cfg->tls_server_name, "kubernetes");
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	ck_assert(strstr(cr.key, "PRIVATE KEY") != NULL);
	kube_creds_clear(&cr);
	kube_config_free(cfg);
	free(kc);

	kc = tenant_kc("{server: 'https://h:1'}", "{token: abc}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", NULL), 0);
	ck_assert_str_eq(cfg->token, "abc");
	kube_config_free(cfg);
	free(kc);
	kc = tenant_kc("{server: 'https://h:1'}", "{username: u, password: p}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", NULL), 0);
	ck_assert_str_eq(cfg->password, "p");
	kube_config_free(cfg);
	free(kc);
	free(ca), free(cert), free(key), free(cl), free(us);
}
END_TEST

START_TEST(test_kube__tenant_refuses_fields)
{
	static const struct { const char *cluster, *user, *want; } cases[] = {
		{ "{server: 'https://h:1'}", "{exec: {command: touch, args: [/tmp/x]}}",
		  "kubeconfig secret t/x: users[0].user.exec: refused: exec plugins run a command on plumbd's machine "
		  "(\"touch\" is not in plumbd's --allow-exec-plugins)" },
		{ "{server: 'https://h:1'}", "{auth-provider: {name: gcp}}",
		  "kubeconfig secret t/x: users[0].user.auth-provider: refused: auth providers run code on plumbd's machine" },
		{ "{server: 'https://h:1'}", "{tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}",
		  "kubeconfig secret t/x: users[0].user.tokenFile: refused: a file path would read plumbd's own files; "
		  "use the -data field or token" },
		{ "{server: 'https://h:1'}", "{client-certificate: /etc/c.pem, client-key: /etc/k.pem}",
		  "users[0].user.client-certificate: refused: a file path would read plumbd's own files; use the -data field or token; "
		  "users[0].user.client-key: refused" },
		{ "{server: 'https://h:1', certificate-authority: /etc/ssl/certs/ca-certificates.crt}", "{token: x}",
		  "kubeconfig secret t/x: clusters[0].cluster.certificate-authority: refused: a file path" },
		{ "{server: 'http://127.0.0.1:1'}", "{token: x}",
		  "kubeconfig secret t/x: clusters[0].cluster.server: refused: http:// would send the credentials in clear text "
		  "(an operator may allow it: --allow-insecure-targets)" },
		{ "{server: 'https://h:1', insecure-skip-tls-verify: true}", "{token: x}",
		  "clusters[0].cluster.insecure-skip-tls-verify: refused: TLS is verified for every target" },
		{ "{server: 'https://h:1', proxy-url: 'http://proxy:3128'}", "{token: x}",
		  "clusters[0].cluster.proxy-url: refused: a proxy is used only when the operator allows it (--allow-target-proxies)" },
		{ "{server: 'https://h:1'}", "{token: x, as: admin, as-groups: [system:masters]}",
		  "users[0].user.as: refused: impersonation is not taken from a kubeconfig Secret; users[0].user.as-groups: refused" },
		{ "{server: 'https://h:1', made-up: 1}", "{token: x}",
		  "clusters[0].cluster.made-up: refused: not an inline field a kubeconfig from a Secret may carry" },
		/* Both at once: every refused field is named. */
		{ "{server: 'http://127.0.0.1:1'}", "{tokenFile: /etc/hostname}",
		  "clusters[0].cluster.server: refused: http:// would send the credentials in clear text (an operator may allow "
		  "it: --allow-insecure-targets); users[0].user.tokenFile: refused" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kube_config *cfg = NULL;
		char *kc = tenant_kc(cases[i].cluster, cases[i].user);
		int rc = kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "secret t/x", NULL);
		ck_assert_msg(rc == PLUMB_EINSECURE, "case %zu: rc %d (%s)", i, rc, plumb_error_last());
		ck_assert_msg(strstr(plumb_error_last(), cases[i].want) != NULL, "case %zu: got \"%s\"", i, plumb_error_last());
		ck_assert_ptr_null(cfg);
		/* The same file is fine for plumbd's own config (every field kept):
		 * parse errors there are about files, never a refusal. */
		rc = kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "own", &trusted);
		ck_assert_msg(rc != PLUMB_EINSECURE, "case %zu: trusted refused: %s", i, plumb_error_last());
		kube_config_free(cfg);
		free(kc);
	}
}
END_TEST

/* A refused path field is never opened: a FIFO would block the read forever
 * (the test's timeout), so finishing proves nothing was read. */
START_TEST(test_kube__tenant_never_reads_files)
{
	char *fifo, *kc;
	kube_config *cfg = NULL;
	mk_tmpdir();
	fifo = plumb_asprintf("%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	char *cl = plumb_asprintf("{server: 'https://h:1', certificate-authority: %s}", fifo);
	char *us = plumb_asprintf("{tokenFile: %s, client-certificate: %s, client-key: %s}", fifo, fifo, fifo);
	kc = tenant_kc(cl, us);
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", NULL), PLUMB_EINSECURE);
	ck_assert(strstr(plumb_error_last(), "clusters[0].cluster.certificate-authority: refused") != NULL);
	ck_assert(strstr(plumb_error_last(), "users[0].user.tokenFile: refused") != NULL);
	ck_assert(strstr(plumb_error_last(), "users[0].user.client-key: refused") != NULL);
	free(kc), free(cl), free(us), free(fifo);
	rm_tmpdir();
}
END_TEST

START_TEST(test_kube__tenant_loosened_by_policy)
{
	kube_config_policy insecure = { .allow_insecure = 1 }, proxy = { .allow_proxy = 1 };
	kube_config *cfg = NULL;
	char *kc = tenant_kc("{server: 'http://127.0.0.1:1'}", "{token: x}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &insecure), 0);
	ck_assert_str_eq(kube_config_server(cfg), "http://127.0.0.1:1");
	kube_config_free(cfg);
	free(kc);
	kc = tenant_kc("{server: 'https://h:1', insecure-skip-tls-verify: true}", "{token: x}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &insecure), 0);
	ck_assert_int_eq(cfg->insecure, 1);
	kube_config_free(cfg);
	/* The insecure flag does not open file paths or exec. */
	free(kc);
	kc = tenant_kc("{server: 'https://h:1', insecure-skip-tls-verify: true}", "{tokenFile: /etc/hostname}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &insecure), PLUMB_EINSECURE);
	free(kc);
	kc = tenant_kc("{server: 'https://h:1', proxy-url: 'socks5://p:1080'}", "{token: x}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &proxy), 0);
	ck_assert_str_eq(cfg->proxy_url, "socks5://p:1080");
	kube_config_free(cfg);
	free(kc);
	kc = tenant_kc("{server: 'https://h:1', proxy-url: 'file:///x'}", "{token: x}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &proxy), PLUMB_EINVALID);
	ck_assert_str_eq(plumb_error_last(), "kubeconfig t: clusters[0].cluster.proxy-url: want an http://, https:// or socks5:// URL");
	free(kc);
}
END_TEST

START_TEST(test_kube__tenant_exec_by_name_in_own_path)
{
	static const char *const allowed[] = { "plumb-test-plugin", "missing-plugin", NULL };
	kube_config_policy pol = { .exec_plugins = allowed };
	kube_config *cfg = NULL;
	kube_creds cr;
	char *kc, *path, *want, *marker;
	mk_tmpdir();
	marker = plumb_asprintf("%s/ran", tmpdir);
	char *script = plumb_asprintf("#!/bin/sh\ntouch %s\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
		"\"kind\":\"ExecCredential\",\"status\":{\"token\":\"plugin-'\"$1\"'\"}}'\n", marker);
	write_file(tmpdir, "plumb-test-plugin", script, 0755);
	path = plumb_asprintf("relative/dir:%s:%s", tmpdir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	setenv("PATH", path, 1);

	kc = tenant_kc("{server: 'https://h:1'}", "{exec: {apiVersion: client.authentication.k8s.io/v1, "
		"command: plumb-test-plugin, args: [a1], env: [{name: AWS_PROFILE, value: p}]}}");
	ck_assert_msg(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &pol) == 0, "%s", plumb_error_last());
	want = plumb_asprintf("%s/plumb-test-plugin", tmpdir);
	ck_assert_str_eq(cfg->exec_path, want);
	ck_assert_int_ne(access(marker, F_OK), 0);   /* loading runs nothing */
	/* The watch hub thread never runs it. */
	ck_assert_int_eq(kube_config_creds_need_exec(cfg, 0), 1);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, KUBE_CREDS_NO_EXEC), PLUMB_EAUTH);
	ck_assert_int_ne(access(marker, F_OK), 0);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), 0);
	ck_assert_str_eq(cr.token, "plugin-a1");
	ck_assert_int_eq(access(marker, F_OK), 0);
	kube_creds_clear(&cr);
	ck_assert_int_eq(kube_config_creds_need_exec(cfg, 0), 0);
	ck_assert_int_eq(kube_config_creds(&cr, cfg, KUBE_CREDS_NO_EXEC), 0);
	kube_creds_clear(&cr);
	kube_config_free(cfg);
	free(kc);
	unlink(marker);

	/* The same plugin named by a path: refused, whatever the path. */
	char *us = plumb_asprintf("{exec: {command: %s}}", want);
	kc = tenant_kc("{server: 'https://h:1'}", us);
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &pol), PLUMB_EINSECURE);
	ck_assert(strstr(plumb_error_last(), "users[0].user.exec.command: refused: \"") != NULL);
	ck_assert(strstr(plumb_error_last(), "is a path; an exec plugin the operator allows is named by its command name") != NULL);
	free(kc), free(us);
	kc = tenant_kc("{server: 'https://h:1'}", "{exec: {command: ./plumb-test-plugin}}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &pol), PLUMB_EINSECURE);
	free(kc);
	/* Allowed by name but not installed. */
	kc = tenant_kc("{server: 'https://h:1'}", "{exec: {command: missing-plugin}}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &pol), PLUMB_EINVALID);
	ck_assert_str_eq(plumb_error_last(), "kubeconfig t: users[0].user.exec.command: \"missing-plugin\" not found in plumbd's PATH");
	free(kc);
	/* Variables that steer the loader or the lookup. */
	kc = tenant_kc("{server: 'https://h:1'}", "{exec: {command: plumb-test-plugin, env: "
		"[{name: LD_PRELOAD, value: /tmp/evil.so}, {name: PATH, value: /tmp}]}}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &pol), PLUMB_EINSECURE);
	ck_assert(strstr(plumb_error_last(), "users[0].user.exec.env[0]: refused: LD_PRELOAD would steer how plumbd runs the plugin; "
		"users[0].user.exec.env[1]: refused: PATH") != NULL);
	free(kc);
	/* Not allowed: nothing runs. */
	kc = tenant_kc("{server: 'https://h:1'}", "{exec: {command: plumb-test-plugin}}");
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", NULL), PLUMB_EINSECURE);
	free(kc);
	ck_assert_int_ne(access(marker, F_OK), 0);
	free(path), free(want), free(marker), free(script);
	rm_tmpdir();
}
END_TEST

/* A plugin that never answers, or answers and lingers, or leaves a child
 * behind, is killed at the deadline with everything it started. */
START_TEST(test_kube__exec_plugin_bounded)
{
	static const char *const allowed[] = { "slow-plugin", NULL };
	kube_config_policy pol = { .exec_plugins = allowed };
	static const struct { const char *body, *want; } cases[] = {
		{ "echo $$ > %s/pid\nsleep 60\n", "no answer within 1 s" },
		{ "echo $$ > %s/pid\necho '{\"status\":{\"token\":\"t\"}}'\nexec >&-\nsleep 60\n", "did not exit within 1 s" },
		{ "sleep 60 &\necho $! > %s/pid\necho '{\"status\":{\"token\":\"t\"}}'\nsleep 60\n", "no answer within 1 s" },
	};
	mk_tmpdir();
	char *path = plumb_asprintf("%s:%s", tmpdir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	setenv("PATH", path, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *body = plumb_asprintf(cases[i].body, tmpdir), *script = plumb_asprintf("#!/bin/sh\n%s", body);
		char *kc = tenant_kc("{server: 'https://h:1'}", "{exec: {command: slow-plugin}}");
		char *pidf = plumb_asprintf("%s/pid", tmpdir), *pid = NULL;
		size_t len = 0;
		kube_config *cfg = NULL;
		kube_creds cr;
		write_file(tmpdir, "slow-plugin", script, 0755);
		ck_assert_msg(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &pol) == 0, "%s", plumb_error_last());
		cfg->exec_timeout = 1;
		double t0 = plumb_time_mono();
		ck_assert_int_eq(kube_config_creds(&cr, cfg, 0), PLUMB_ETIMEOUT);
		ck_assert_msg(strstr(plumb_error_last(), cases[i].want), "case %zu: %s", i, plumb_error_last());
		ck_assert_msg(plumb_time_mono() - t0 < 3, "case %zu took %.1f s", i, plumb_time_mono() - t0);
		/* what it started is gone too */
		ck_assert_int_eq(plumb_file_read(&pid, &len, pidf, 64), 0);
		int gone = 0;
		for (int k = 0; k < 100 && !gone; k++) {
			gone = kill((pid_t)atol(pid), 0) != 0;
			if (!gone)
				plumb_sleep(0.02);
		}
		ck_assert_msg(gone, "case %zu: process %s still runs", i, pid);
		unlink(pidf);
		kube_config_free(cfg);
		free(body), free(script), free(kc), free(pidf), free(pid);
	}
	free(path);
	rm_tmpdir();
}
END_TEST

START_TEST(test_kube__exec_plugins_parse)
{
	char **v = NULL;
	ck_assert_int_eq(kube_exec_plugins_parse(&v, "aws, gke-gcloud-auth-plugin,kubelogin"), 0);
	ck_assert_str_eq(v[0], "aws");
	ck_assert_str_eq(v[1], "gke-gcloud-auth-plugin");
	ck_assert_str_eq(v[2], "kubelogin");
	ck_assert_ptr_null(v[3]);
	kube_exec_plugins_free(v);
	ck_assert_int_eq(kube_exec_plugins_parse(&v, ""), 0);
	ck_assert_ptr_null(v[0]);
	kube_exec_plugins_free(v);
	ck_assert_int_eq(kube_exec_plugins_parse(&v, "aws,/usr/bin/kubelogin"), PLUMB_EINVALID);
	ck_assert(strstr(plumb_error_last(), "/usr/bin/kubelogin") != NULL);
	ck_assert_int_eq(kube_exec_plugins_parse(&v, "aws,,x"), PLUMB_EINVALID);
}
END_TEST

/* A kubeconfig is read with pkg/yamljson's kubeconfig typing: only
 * true/false (any of true, True, TRUE) and null (~, null, empty) are not
 * strings; what YAML 1.1 would make a number, a boolean or a merge key is the
 * text written, tags are not looked at, and only the first document is read. */
START_TEST(test_kube__config_scalars_as_written)
{
	char *ca = b64(CERT_PEM);
	char *kc = plumb_asprintf(
		"current-context: a\n"
		"contexts:\n- name: a\n  context: {cluster: c, user: u, namespace: 012}\n"
		"clusters:\n- name: c\n  cluster:\n"
		"    server: https://h:1\n"
		"    insecure-skip-tls-verify: True\n"
		"    tls-server-name: 0x1F\n"
		"    proxy-url: ~\n"
		"    certificate-authority-data: !!binary %s\n"
		"users:\n- name: u\n  user:\n"
		"    token: 12345\n"
		"    username: yes\n"
		"    password: 1e3\n"
		"    exec:\n"
		"      command: /bin/true\n"
		"      apiVersion: .inf\n"
		"      args: [yes, no, on, 0x1F, 0o17, 1_000, 3.0, -.inf, <<, !!int 7]\n"
		"      env: [{name: N, value: off}]\n"
		"---\n[not read\n", ca);
	static const char *const want_args[] = { "/bin/true", "yes", "no", "on", "0x1F", "0o17", "1_000", "3.0",
		"-.inf", "<<", "7", NULL };
	kube_config *cfg = NULL;
	ck_assert_msg(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &trusted) == 0, "%s", plumb_error_last());
	ck_assert_str_eq(kube_config_namespace(cfg), "012");
	ck_assert_int_eq(cfg->insecure, 1);
	ck_assert_str_eq(cfg->tls_server_name, "0x1F");
	ck_assert_ptr_null(cfg->proxy_url);
	ck_assert(cfg->ca && strstr(cfg->ca, "BEGIN CERTIFICATE"));
	ck_assert_str_eq(cfg->token, "12345");
	ck_assert_str_eq(cfg->username, "yes");
	ck_assert_str_eq(cfg->password, "1e3");
	ck_assert_str_eq(cfg->exec_api_version, ".inf");
	for (size_t i = 0; want_args[i]; i++) {
		ck_assert_ptr_nonnull(cfg->exec_argv[i]);
		ck_assert_str_eq(cfg->exec_argv[i], want_args[i]);
	}
	ck_assert_ptr_null(cfg->exec_argv[11]);
	ck_assert_str_eq(cfg->exec_env[0], "N=off");
	kube_config_free(cfg);
	free(kc);
	free(ca);

	/* yes is a string, so it is no value for a boolean field; FALSE is one. */
	static const char head[] = "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n"
		"clusters:\n- name: c\n  cluster: {server: 'https://h:1', ";
	kc = plumb_asprintf("%sinsecure-skip-tls-verify: yes}\n", head);
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &trusted), PLUMB_EINVALID);
	ck_assert_str_eq(plumb_error_last(), "kubeconfig t: clusters[0].cluster.insecure-skip-tls-verify: must be true or false");
	free(kc);
	kc = plumb_asprintf("%sinsecure-skip-tls-verify: FALSE}\n", head);
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &trusted), 0);
	ck_assert_int_eq(cfg->insecure, 0);
	kube_config_free(cfg);
	free(kc);

	/* `<<` is a key like any other: nothing is merged, and a tenant may not
	 * carry it. */
	kc = plumb_asprintf("%s<<: {insecure-skip-tls-verify: true}}\n", head);
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", &trusted), 0);
	ck_assert_int_eq(cfg->insecure, 0);
	kube_config_free(cfg);
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, "t", NULL), PLUMB_EINSECURE);
	ck_assert_msg(strstr(plumb_error_last(), "clusters[0].cluster.<<: refused"), "%s", plumb_error_last());
	free(kc);
}
END_TEST

START_TEST(test_kube__config_alias_bytes)
{
	/* A kubeconfig's aliases are charged by the bytes they expand to. */
	plumb_buf b = PLUMB_BUF_INIT(8u << 20);
	kube_config *cfg = NULL;
	plumb_buf_puts(&b, "big: &s \"");
	for (int i = 0; i < 512 * 1024; i++)
		plumb_buf_puts(&b, "x");
	plumb_buf_puts(&b, "\"\ncopies:\n");
	for (int i = 0; i < 20; i++)
		plumb_buf_puts(&b, "- *s\n");
	ck_assert_int_eq(kube_config_load_memory(&cfg, b.ptr, b.len, NULL, "bomb", NULL), PLUMB_ETOOBIG);
	ck_assert_msg(strstr(plumb_error_last(), "kubeconfig bomb: line ") &&
		strstr(plumb_error_last(), "expands to more than 4194304 bytes"), "%s", plumb_error_last());
	plumb_buf_free(&b);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_kube__status_error_mapping)
{
	const char *fm = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"Apply failed with 1 conflict: conflict with \\\"kubectl\\\": .data.a\","
		"\"reason\":\"Conflict\",\"details\":{\"causes\":[{\"reason\":\"FieldManagerConflict\",\"message\":\"conflict\",\"field\":\".data.a\"}]},\"code\":409}";
	ck_assert_int_eq(kube_status_error(409, fm, strlen(fm), "PATCH configmaps \"x\" in ns \"y\""), PLUMB_EFIELDCONFLICT);
	ck_assert_str_eq(plumb_error_last(),
		"PATCH configmaps \"x\" in ns \"y\": 409 Conflict: Apply failed with 1 conflict: conflict with \"kubectl\": .data.a");
	ck_assert_int_eq(kube_last_http_status(), 409);
	ck_assert_str_eq(kube_last_reason(), "Conflict");

	const char *ae = "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"message\":\"configmaps \\\"x\\\" already exists\",\"code\":409}";
	ck_assert_int_eq(kube_status_error(409, ae, strlen(ae), "POST configmaps \"x\""), PLUMB_EEXISTS);
	const char *cf = "{\"kind\":\"Status\",\"reason\":\"Conflict\",\"message\":\"the object has been modified\",\"code\":409}";
	ck_assert_int_eq(kube_status_error(409, cf, strlen(cf), "PUT x"), PLUMB_ECONFLICT);

	static const struct { int http; int code; } map[] = {
		{ 400, PLUMB_EINVALID }, { 422, PLUMB_EINVALID }, { 401, PLUMB_EAUTH }, { 403, PLUMB_EFORBIDDEN },
		{ 404, PLUMB_ENOTFOUND }, { 410, PLUMB_EEXPIRED }, { 429, PLUMB_ETHROTTLED },
		{ 500, PLUMB_EUNAVAILABLE }, { 503, PLUMB_EUNAVAILABLE }, { 504, PLUMB_EUNAVAILABLE },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		ck_assert_int_eq(kube_status_error(map[i].http, NULL, 0, "GET x"), map[i].code);

	/* A body that is not a Status still gives a clear message. */
	ck_assert_int_eq(kube_status_error(503, "<html>oops", 10, "GET /version"), PLUMB_EUNAVAILABLE);
	ck_assert_str_eq(plumb_error_last(), "GET /version: 503 Service Unavailable");
	ck_assert_str_eq(kube_last_reason(), "");
}
END_TEST

START_TEST(test_kube__curl_error_mapping)
{
	ck_assert_int_eq(kube_curl_error(CURLE_COULDNT_CONNECT, "GET x", "refused"), PLUMB_EUNAVAILABLE);
	ck_assert(strstr(plumb_error_last(), "GET x: ") == plumb_error_last());
	ck_assert_int_eq(kube_curl_error(CURLE_OPERATION_TIMEDOUT, "GET x", NULL), PLUMB_ETIMEOUT);
	ck_assert_int_eq(kube_curl_error(CURLE_PEER_FAILED_VERIFICATION, "GET x", NULL), PLUMB_ETLS);
	ck_assert_int_eq(kube_curl_error(CURLE_COULDNT_RESOLVE_HOST, "GET x", NULL), PLUMB_EUNREACHABLE);
	ck_assert_int_eq(kube_last_http_status(), 0);
}
END_TEST

START_TEST(test_kube__retry_after)
{
	double s = -1;
	ck_assert_int_eq(kube_parse_retry_after(&s, " 7\r\n", 0), 0);
	ck_assert(s == 7.0);
	/* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 */
	ck_assert_int_eq(kube_parse_retry_after(&s, "Sun, 06 Nov 1994 08:49:37 GMT", 784111770.0), 0);
	ck_assert(s > 6.9 && s < 7.1);
	ck_assert_int_eq(kube_parse_retry_after(&s, "Sun, 06 Nov 1994 08:49:37 GMT", 784111800.0), 0);
	ck_assert(s == 0.0);
	ck_assert_int_eq(kube_parse_retry_after(&s, "soon", 0), PLUMB_EINVALID);
	ck_assert_int_eq(kube_parse_retry_after(&s, "5x", 0), PLUMB_EINVALID);
	ck_assert_int_eq(kube_parse_retry_after(&s, "", 0), PLUMB_EINVALID);
}
END_TEST

START_TEST(test_kube__ratelimit)
{
	kube_ratelimit rl;
	kube_ratelimit_init(&rl, 2.0, 3, 100.0);
	ck_assert(kube_ratelimit_reserve(&rl, 100.0) == 0);
	ck_assert(kube_ratelimit_reserve(&rl, 100.0) == 0);
	ck_assert(kube_ratelimit_reserve(&rl, 100.0) == 0);
	ck_assert(fabs(kube_ratelimit_reserve(&rl, 100.0) - 0.5) < 1e-9);
	ck_assert(fabs(kube_ratelimit_reserve(&rl, 100.0) - 1.0) < 1e-9);
	/* 10 s later the bucket is full again (capped at burst, not 20 tokens). */
	for (int i = 0; i < 3; i++)
		ck_assert(kube_ratelimit_reserve(&rl, 110.0) == 0);
	ck_assert(kube_ratelimit_reserve(&rl, 110.0) > 0);
	kube_ratelimit_init(&rl, -1, 1, 0);
	for (int i = 0; i < 1000; i++)
		ck_assert(kube_ratelimit_reserve(&rl, 0) == 0);
}
END_TEST

/* ---- watch decoder ---- */

typedef struct {
	int n;
	kube_watch_event types[16];
	char names[16][64];
} seen;

static int record(kube_watch_event type, cJSON *obj, void *data)
{
	seen *s = data;
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "name");
	if (s->n < 16) {
		s->types[s->n] = type;
		snprintf(s->names[s->n], 64, "%s", cJSON_IsString(n) ? n->valuestring : "");
	}
	s->n++;
	return 0;
}

static const char *STREAM =
	"{\"type\":\"ADDED\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"10\"}}}\n"
	"{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"11\"}}}\n"
	"\n"
	"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"resourceVersion\":\"12\"}}}\n"
	"{\"type\":\"DELETED\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"13\"}}}\n";

START_TEST(test_kube__watch_decoder_chunks)
{
	/* Every split point of the stream gives the same events. */
	size_t len = strlen(STREAM);
	for (size_t cut = 0; cut <= len; cut += 7) {
		kube_watch_decoder d;
		seen s = { 0 };
		kube_watch_decoder_init(&d, 4096);
		ck_assert_int_eq(kube_watch_decoder_feed(&d, STREAM, cut, record, &s), 0);
		ck_assert_int_eq(kube_watch_decoder_feed(&d, STREAM + cut, len - cut, record, &s), 0);
		ck_assert_int_eq(kube_watch_decoder_finish(&d), 0);
		ck_assert_int_eq(s.n, 4);
		ck_assert_int_eq(s.types[0], KUBE_WATCH_ADDED);
		ck_assert_int_eq(s.types[1], KUBE_WATCH_MODIFIED);
		ck_assert_int_eq(s.types[2], KUBE_WATCH_BOOKMARK);
		ck_assert_int_eq(s.types[3], KUBE_WATCH_DELETED);
		ck_assert_str_eq(s.names[3], "a");
		kube_watch_decoder_free(&d);
	}
	/* Byte by byte. */
	kube_watch_decoder d;
	seen s = { 0 };
	kube_watch_decoder_init(&d, 4096);
	for (size_t i = 0; i < len; i++)
		ck_assert_int_eq(kube_watch_decoder_feed(&d, STREAM + i, 1, record, &s), 0);
	ck_assert_int_eq(s.n, 4);
	kube_watch_decoder_free(&d);
}
END_TEST

START_TEST(test_kube__watch_decoder_garbled_truncated_oversize)
{
	kube_watch_decoder d;
	seen s = { 0 };
	const char *garbled = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}\n{\"type\":\"ADD\x01\n";
	kube_watch_decoder_init(&d, 4096);
	ck_assert_int_eq(kube_watch_decoder_feed(&d, garbled, strlen(garbled), record, &s), PLUMB_EPROTO);
	ck_assert_int_eq(s.n, 1);
	kube_watch_decoder_free(&d);

	/* Truncated: the stream ends mid-event. */
	kube_watch_decoder_init(&d, 4096);
	ck_assert_int_eq(kube_watch_decoder_feed(&d, STREAM, 50, record, &s), 0);
	ck_assert_int_eq(kube_watch_decoder_finish(&d), PLUMB_EPROTO);
	kube_watch_decoder_free(&d);

	/* Oversize, whether it arrives whole or in pieces. */
	kube_watch_decoder_init(&d, 64);
	ck_assert_int_eq(kube_watch_decoder_feed(&d, STREAM, strlen(STREAM), record, &s), PLUMB_ETOOBIG);
	kube_watch_decoder_free(&d);
	kube_watch_decoder_init(&d, 64);
	int rc = 0;
	for (size_t i = 0; i < 100 && rc == 0; i += 10)
		rc = kube_watch_decoder_feed(&d, STREAM + i, 10, record, &s);
	ck_assert_int_eq(rc, PLUMB_ETOOBIG);
	kube_watch_decoder_free(&d);
}
END_TEST

START_TEST(test_kube__watch_decode_line)
{
	kube_watch_event t;
	cJSON *o = NULL;
	static const char *bad[] = {
		"not json", "[]", "{\"type\":\"ADDED\"}", "{\"object\":{}}", "{\"type\":\"EXPLODED\",\"object\":{}}",
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}", "{\"type\":7,\"object\":{}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(kube_watch_decode_line(&t, &o, bad[i], strlen(bad[i])) == PLUMB_EPROTO, "line %zu", i);
	ck_assert_int_eq(kube_watch_decode_line(&t, &o, "  \r", 3), PLUMB_ENOTFOUND);

	const char *exp = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
		"\"message\":\"too old resource version: 5 (300)\",\"reason\":\"Expired\",\"code\":410}}";
	ck_assert_int_eq(kube_watch_decode_line(&t, &o, exp, strlen(exp)), 0);
	ck_assert_int_eq(t, KUBE_WATCH_ERROR);
	ck_assert_int_eq(kube_watch_status_expired(o), 1);
	cJSON_Delete(o);
	cJSON *gone = cJSON_Parse("{\"reason\":\"Gone\"}");
	ck_assert_int_eq(kube_watch_status_expired(gone), 1);
	cJSON_Delete(gone);
	cJSON *other = cJSON_Parse("{\"reason\":\"InternalError\",\"code\":500}");
	ck_assert_int_eq(kube_watch_status_expired(other), 0);
	cJSON_Delete(other);
}
END_TEST

/* ---- discovery ---- */

static const char *AGG =
	"{\"kind\":\"APIGroupDiscoveryList\",\"apiVersion\":\"apidiscovery.k8s.io/v2\",\"metadata\":{},\"items\":["
	"{\"metadata\":{\"name\":\"apps\"},\"versions\":[{\"version\":\"v1\",\"resources\":["
	"{\"resource\":\"deployments\",\"responseKind\":{\"group\":\"\",\"version\":\"\",\"kind\":\"Deployment\"},\"scope\":\"Namespaced\","
	"\"singularResource\":\"deployment\",\"verbs\":[\"create\",\"delete\",\"get\",\"list\",\"patch\",\"update\",\"watch\"],"
	"\"subresources\":[{\"subresource\":\"scale\"},{\"subresource\":\"status\"}]}],\"freshness\":\"Current\"}]},"
	"{\"metadata\":{\"name\":\"example.com\"},\"versions\":["
	"{\"version\":\"v2\",\"resources\":[{\"resource\":\"widgets\",\"responseKind\":{\"kind\":\"Widget\"},\"scope\":\"Cluster\",\"verbs\":[\"get\"]}]},"
	"{\"version\":\"v1\",\"resources\":[{\"resource\":\"widgets\",\"responseKind\":{\"kind\":\"Widget\"},\"scope\":\"Cluster\",\"verbs\":[\"get\",\"list\"]}]}]}"
	"]}";

START_TEST(test_kube__discovery_aggregated)
{
	kube_resource_set set = { 0 };
	kube_resource r;
	ck_assert_int_eq(kube_discovery_parse_aggregated(&set, AGG, strlen(AGG)), 0);
	ck_assert_uint_eq(set.len, 3);
	ck_assert_int_eq(kube_resource_set_find(&r, &set, "apps", "v1", "Deployment"), 0);
	ck_assert_str_eq(r.resource, "deployments");
	ck_assert_int_eq(r.namespaced, 1);
	ck_assert_int_eq(r.has_status, 1);
	ck_assert_uint_eq(r.verbs & (KUBE_VERB_GET | KUBE_VERB_WATCH | KUBE_VERB_PATCH), KUBE_VERB_GET | KUBE_VERB_WATCH | KUBE_VERB_PATCH);
	ck_assert_uint_eq(r.verbs & KUBE_VERB_DELETECOLLECTION, 0);
	/* Preferred = first listed version. */
	ck_assert_int_eq(kube_resource_set_find(&r, &set, "example.com", NULL, "Widget"), 0);
	ck_assert_str_eq(r.version, "v2");
	ck_assert_int_eq(r.namespaced, 0);
	ck_assert_int_eq(kube_resource_set_find(&r, &set, "example.com", "v1", "Widget"), 0);
	ck_assert_uint_eq(r.verbs, KUBE_VERB_GET | KUBE_VERB_LIST);
	ck_assert_int_eq(kube_resource_set_find(&r, &set, "example.com", "v3", "Widget"), PLUMB_ENOTFOUND);
	ck_assert_int_eq(kube_resource_set_find(&r, &set, "", "v1", "Deployment"), PLUMB_ENOTFOUND);
	kube_resource_set_free(&set);

	ck_assert_int_eq(kube_discovery_parse_aggregated(&set, "{\"items\":7}", 11), PLUMB_EPROTO);
	const char *noscope = "{\"items\":[{\"metadata\":{\"name\":\"\"},\"versions\":[{\"version\":\"v1\",\"resources\":[{\"resource\":\"pods\",\"responseKind\":{\"kind\":\"Pod\"}}]}]}]}";
	ck_assert_int_eq(kube_discovery_parse_aggregated(&set, noscope, strlen(noscope)), PLUMB_EPROTO);
	ck_assert_int_eq(kube_discovery_parse_aggregated(&set, AGG, 40), PLUMB_EPROTO);
	kube_resource_set_free(&set);

	ck_assert_int_eq(kube_content_type_is_aggregated("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"), 1);
	ck_assert_int_eq(kube_content_type_is_aggregated("application/json"), 0);
	ck_assert_int_eq(kube_content_type_is_aggregated(NULL), 0);
}
END_TEST

START_TEST(test_kube__discovery_legacy)
{
	kube_resource_set set = { 0 };
	kube_resource r;
	char **gvs = NULL;
	size_t n = 0;
	const char *groups = "{\"kind\":\"APIGroupList\",\"groups\":[{\"name\":\"batch\",\"versions\":["
		"{\"groupVersion\":\"batch/v1\",\"version\":\"v1\"},{\"groupVersion\":\"batch/v1beta1\",\"version\":\"v1beta1\"}],"
		"\"preferredVersion\":{\"groupVersion\":\"batch/v1\",\"version\":\"v1\"}}]}";
	const char *core = "{\"kind\":\"APIResourceList\",\"groupVersion\":\"v1\",\"resources\":["
		"{\"name\":\"pods\",\"singularName\":\"pod\",\"namespaced\":true,\"kind\":\"Pod\",\"verbs\":[\"get\",\"list\"]},"
		"{\"name\":\"pods/status\",\"namespaced\":true,\"kind\":\"Pod\",\"verbs\":[\"get\"]},"
		"{\"name\":\"namespaces\",\"namespaced\":false,\"kind\":\"Namespace\",\"verbs\":[\"get\"]}]}";
	const char *batch1 = "{\"groupVersion\":\"batch/v1\",\"resources\":[{\"name\":\"jobs\",\"namespaced\":true,\"kind\":\"Job\",\"verbs\":[]}]}";
	const char *batch0 = "{\"groupVersion\":\"batch/v1beta1\",\"resources\":[{\"name\":\"jobs\",\"namespaced\":true,\"kind\":\"Job\",\"verbs\":[]}]}";

	ck_assert_int_eq(kube_discovery_parse_group_list(&gvs, &n, &set, groups, strlen(groups)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(gvs[1], "batch/v1beta1");
	for (size_t i = 0; i < n; i++)
		free(gvs[i]);
	free(gvs);
	ck_assert_int_eq(kube_discovery_parse_resource_list(&set, core, strlen(core)), 0);
	ck_assert_int_eq(kube_discovery_parse_resource_list(&set, batch0, strlen(batch0)), 0);
	ck_assert_int_eq(kube_discovery_parse_resource_list(&set, batch1, strlen(batch1)), 0);
	ck_assert_uint_eq(set.len, 4);  /* pods/status is not a resource of its own */
	ck_assert_int_eq(kube_resource_set_find(&r, &set, "", "v1", "Pod"), 0);
	ck_assert_int_eq(r.has_status, 1);
	ck_assert_int_eq(kube_resource_set_find(&r, &set, "", "v1", "Namespace"), 0);
	ck_assert_int_eq(r.namespaced, 0);
	ck_assert_int_eq(r.has_status, 0);
	ck_assert_int_eq(kube_resource_set_find(&r, &set, "batch", NULL, "Job"), 0);
	ck_assert_str_eq(r.version, "v1");
	kube_resource_set_free(&set);

	ck_assert_int_eq(kube_discovery_parse_resource_list(&set, "{\"resources\":[]}", 16), PLUMB_EPROTO);
	ck_assert_int_eq(kube_discovery_parse_group_list(&gvs, &n, &set, "{}", 2), PLUMB_EPROTO);
	kube_resource_set_free(&set);
}
END_TEST

START_TEST(test_kube__resource_path)
{
	kube_resource cm = { "", "v1", "ConfigMap", "configmaps", 1, 0, 0 };
	kube_resource crd = { "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", 0, 0, 1 };
	char *p = NULL;
	ck_assert_int_eq(kube_resource_path(&p, &cm, "team-a", "x", NULL), 0);
	ck_assert_str_eq(p, "/api/v1/namespaces/team-a/configmaps/x");
	free(p);
	ck_assert_int_eq(kube_resource_path(&p, &cm, NULL, NULL, NULL), 0);
	ck_assert_str_eq(p, "/api/v1/configmaps");
	free(p);
	ck_assert_int_eq(kube_resource_path(&p, &crd, "ignored", "widgets.example.com", "status"), 0);
	ck_assert_str_eq(p, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com/status");
	free(p);
	ck_assert_int_eq(kube_resource_path(&p, &cm, "a b", "x/../y?z", NULL), 0);
	ck_assert_str_eq(p, "/api/v1/namespaces/a%20b/configmaps/x%2F..%2Fy%3Fz");
	free(p);
	ck_assert_int_eq(kube_resource_path(&p, &cm, "a", "", NULL), PLUMB_EINVALID);
	char av[320];
	kube_resource_api_version(av, sizeof(av), &crd);
	ck_assert_str_eq(av, "apiextensions.k8s.io/v1");
	kube_resource_api_version(av, sizeof(av), &cm);
	ck_assert_str_eq(av, "v1");
}
END_TEST

/* The headers a client's request carries (kube_client_setup), one string. */
static char *request_headers(kube_client *c)
{
	kube_creds creds;
	struct curl_slist *h = NULL, *ct = NULL;
	plumb_buf b = PLUMB_BUF_INIT(1 << 16);
	CURL *easy = curl_easy_init();
	memset(&creds, 0, sizeof(creds));
	ck_assert_ptr_nonnull(easy);
	ck_assert_int_eq(kube_client_setup(c, easy, "/version", NULL, 5, &creds, &h, &ct), 0);
	for (struct curl_slist *l = h; l; l = l->next)
		plumb_buf_printf(&b, "%s\n", l->data);
	curl_slist_free_all(h);
	curl_slist_free_all(ct);
	curl_easy_cleanup(easy);
	return plumb_buf_detach(&b);
}

START_TEST(test_kube__impersonation_headers)
{
	char *kc = make_kubeconfig(NULL), *hs;
	kube_config *cfg = NULL;
	kube_client *base = NULL, *sa = NULL, *grp = NULL, *bad = NULL;
	char user[600];
	ck_assert_int_eq(kube_config_load_memory(&cfg, kc, strlen(kc), NULL, NULL, &trusted), 0);
	ck_assert_int_eq(kube_client_new(&base, cfg, NULL), 0);
	kube_config_free(cfg);

	/* plumbd's own client impersonates nobody */
	hs = request_headers(base);
	ck_assert_ptr_null(strstr(hs, "Impersonate"));
	ck_assert_ptr_null(kube_client_impersonated(base));
	free(hs);

	/* a service account: the user only; the API server adds its groups */
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), "tenant-a", "deployer"), 0);
	ck_assert_str_eq(user, "system:serviceaccount:tenant-a:deployer");
	ck_assert_int_eq(kube_client_impersonate(&sa, base, user, NULL), 0);
	ck_assert_str_eq(kube_client_impersonated(sa), "system:serviceaccount:tenant-a:deployer");
	hs = request_headers(sa);
	ck_assert_ptr_nonnull(strstr(hs, "Impersonate-User: system:serviceaccount:tenant-a:deployer\n"));
	ck_assert_ptr_null(strstr(hs, "Impersonate-Group"));
	ck_assert_ptr_nonnull(strstr(hs, "Accept: application/json\n"));
	free(hs);

	/* explicit groups, one header each; a client derived from a derived
	 * one acts as the new identity only */
	const char *groups[] = { "system:serviceaccounts", "system:serviceaccounts:tenant-a", NULL };
	ck_assert_int_eq(kube_client_impersonate(&grp, sa, "system:serviceaccount:tenant-a:other", groups), 0);
	hs = request_headers(grp);
	ck_assert_ptr_nonnull(strstr(hs, "Impersonate-User: system:serviceaccount:tenant-a:other\n"
		"Impersonate-Group: system:serviceaccounts\nImpersonate-Group: system:serviceaccounts:tenant-a\n"));
	ck_assert_ptr_null(strstr(hs, "deployer"));
	free(hs);

	/* header injection and junk are refused, naming the problem */
	ck_assert_int_eq(kube_client_impersonate(&bad, base, "a\r\nImpersonate-Group: system:masters", NULL), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "user name"));
	const char *evil[] = { "system:masters\nX: y", NULL };
	ck_assert_int_eq(kube_client_impersonate(&bad, base, "u", evil), PLUMB_EINVALID);
	ck_assert_int_eq(kube_client_impersonate(&bad, base, "", NULL), PLUMB_EINVALID);
	ck_assert_ptr_null(bad);
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), "tenant-a", "Deployer"), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "serviceAccountName"));
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), "tenant-a", "a:b"), PLUMB_EINVALID);
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), "tenant-a", "x\r\ny"), PLUMB_EINVALID);
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), "tenant-a", ".x"), PLUMB_EINVALID);
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), "tenant-a", ""), PLUMB_EINVALID);
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), "Tenant", "x"), PLUMB_EINVALID);
	ck_assert_int_eq(kube_service_account_user(user, sizeof(user), "tenant-a", "ci.bot-1"), 0);
	ck_assert_int_eq(kube_service_account_user(user, 10, "tenant-a", "ci"), PLUMB_EINVALID);

	/* the base may go first: the derived clients keep it alive */
	kube_client_free(base);
	hs = request_headers(sa);
	ck_assert_ptr_nonnull(strstr(hs, "Impersonate-User: system:serviceaccount:tenant-a:deployer\n"));
	free(hs);
	kube_client_free(grp);
	kube_client_free(sa);
	free(kc);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kube");
	TCase *tc = tcase_create("pure");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_kube__config_current_context);
	tcase_add_test(tc, test_kube__config_named_context);
	tcase_add_test(tc, test_kube__config_bad_base64_names_field);
	tcase_add_test(tc, test_kube__config_malformed_fields);
	tcase_add_test(tc, test_kube__config_yaml_syntax_and_caps);
	tcase_add_test(tc, test_kube__config_token_file_relative);
	tcase_add_test(tc, test_kube__config_in_cluster);
	tcase_add_test(tc, test_kube__config_exec_plugin);
	tcase_add_test(tc, test_kube__exec_credential_parse);
	tcase_add_test(tc, test_kube__tenant_inline_accepted);
	tcase_add_test(tc, test_kube__tenant_refuses_fields);
	tcase_add_test(tc, test_kube__tenant_never_reads_files);
	tcase_add_test(tc, test_kube__tenant_loosened_by_policy);
	tcase_add_test(tc, test_kube__tenant_exec_by_name_in_own_path);
	tcase_add_test(tc, test_kube__exec_plugins_parse);
	tcase_add_test(tc, test_kube__exec_plugin_bounded);
	tcase_add_test(tc, test_kube__config_alias_bytes);
	tcase_add_test(tc, test_kube__config_scalars_as_written);
	tcase_add_test(tc, test_kube__status_error_mapping);
	tcase_add_test(tc, test_kube__curl_error_mapping);
	tcase_add_test(tc, test_kube__retry_after);
	tcase_add_test(tc, test_kube__ratelimit);
	tcase_add_test(tc, test_kube__watch_decoder_chunks);
	tcase_add_test(tc, test_kube__watch_decoder_garbled_truncated_oversize);
	tcase_add_test(tc, test_kube__watch_decode_line);
	tcase_add_test(tc, test_kube__discovery_aggregated);
	tcase_add_test(tc, test_kube__discovery_legacy);
	tcase_add_test(tc, test_kube__resource_path);
	tcase_add_test(tc, test_kube__impersonation_headers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
