/*
 * Integration tests for pkg/source against real Git servers: lighttpd +
 * git http-backend over HTTPS (basic auth, bearer token) and sshd with key
 * auth, started by hack/git-servers.sh (see test_source.sh, which exports
 * the servers' env file). Test repositories are made with git by
 * tests/fixtures/git/make-repo.sh; each test makes its own.
 */
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "source/source.h"

/* ---- helpers ------------------------------------------------------------- */

static const char *env(const char *k)
{
	const char *v = getenv(k);
	ck_assert_msg(v && *v, "environment variable %s is not set (run test_source.sh)", k);
	return v;
}

static char *slurp(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	ck_assert_msg(plumb_file_read(&data, &len, path, 1 << 20) == 0, "read %s", path);
	return data;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096], full[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full),
		"export GIT_AUTHOR_NAME=T GIT_AUTHOR_EMAIL=t@plumb.dev GIT_COMMITTER_NAME=T "
		"GIT_COMMITTER_EMAIL=t@plumb.dev GIT_CONFIG_NOSYSTEM=1 HOME=%s/.work; set -e; %s",
		env("GIT_REPOS"), cmd);
	int rc = system(full);
	ck_assert_msg(rc == 0, "command failed (%d): %s", rc, cmd);
}

/* Output of a shell command, trimmed. Caller frees. */
static char *sh_out(const char *cmd)
{
	char buf[4096];
	size_t n = 0;
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(buf, 1, sizeof(buf) - 1, p);
	ck_assert_int_eq(pclose(p), 0);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return strdup(buf);
}

static char *rev(const char *repo, const char *what)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "git -C %s/%s.git rev-parse %s", env("GIT_REPOS"), repo, what);
	return sh_out(cmd);
}

/* Makes repository name (unique per test) on the servers. */
static void make_repo(const char *name)
{
	sh("bash %s/tests/fixtures/git/make-repo.sh %s %s", env("PLUMB_ROOT"), env("GIT_REPOS"), name);
}

static source_cache *new_cache(void)
{
	char tmpl[1024];
	source_cache *c = NULL;
	snprintf(tmpl, sizeof(tmpl), "%s/caches", env("GIT_SERVERS_DIR"));
	mkdir(tmpl, 0700);
	snprintf(tmpl, sizeof(tmpl), "%s/caches/c-XXXXXX", env("GIT_SERVERS_DIR"));
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	ck_assert_int_eq(source_cache_new(&c, tmpl), 0);
	return c;
}

static char *url_of(const char *base_var, const char *repo)
{
	return plumb_asprintf("%s/%s.git", env(base_var), repo);
}

static source_credentials *basic_creds(const char *password, const char *ca_var)
{
	source_credentials *c = calloc(1, sizeof(*c));
	ck_assert_int_eq(source_credentials_set(c, "username", env("BASIC_USER"), strlen(env("BASIC_USER"))), 0);
	if (password)
		ck_assert_int_eq(source_credentials_set(c, "password", password, strlen(password)), 0);
	if (ca_var) {
		char *ca = slurp(env(ca_var));
		ck_assert_int_eq(source_credentials_set(c, "caFile", ca, strlen(ca)), 0);
		free(ca);
	}
	return c;
}

static source_credentials *ssh_creds(const char *key_var, const char *kh_var, const char *passphrase)
{
	source_credentials *c = calloc(1, sizeof(*c));
	if (key_var) {
		char *key = slurp(env(key_var));
		ck_assert_int_eq(source_credentials_set(c, "identity", key, strlen(key)), 0);
		free(key);
	}
	if (kh_var) {
		char *kh = slurp(env(kh_var));
		ck_assert_int_eq(source_credentials_set(c, "known_hosts", kh, strlen(kh)), 0);
		free(kh);
	}
	if (passphrase)
		ck_assert_int_eq(source_credentials_set(c, "password", passphrase, strlen(passphrase)), 0);
	return c;
}

static void assert_no_secret(const char *msg)
{
	static const char *vars[] = { "BASIC_PASSWORD", "BEARER_TOKEN", "SSH_KEY_PASSPHRASE" };
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		ck_assert_msg(strstr(msg, env(vars[i])) == NULL, "secret %s leaked: %s", vars[i], msg);
	ck_assert_msg(strstr(msg, "PRIVATE KEY") == NULL, "key leaked: %s", msg);
}

/* The mirror id of creds in cache (a static buffer: one use per call). */
static const char *cid(source_cache *cache, const source_credentials *creds)
{
	static char id[4][65];
	static int n;
	char *out = id[n++ % 4];
	source_credentials_id(out, cache, creds);
	return out;
}

/* Fetches url into a fresh cache and returns the cache; fails the test on error. */
static source_cache *fetched(const char *url, const source_credentials *creds)
{
	source_cache *cache = new_cache();
	source_fetch_stats st;
	int rc = source_fetch(&st, cache, url, creds, 30);
	ck_assert_msg(rc == 0, "fetch %s: %s", url, plumb_error_last());
	ck_assert_uint_gt(st.received_objects, 0);
	return cache;
}

/* ---- HTTPS ---------------------------------------------------------------- */

START_TEST(test_source__https_basic_right_password)
{
	make_repo("basic_ok");
	char *url = url_of("HTTPS_BASIC_URL", "basic_ok");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	source_cache *cache = fetched(url, c);
	source_commit commit;
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "main"), 0);
	char *want = rev("basic_ok", "main");
	ck_assert_str_eq(commit.id, want);
	source_commit_clear(&commit);
	free(want);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

START_TEST(test_source__https_basic_wrong_password)
{
	make_repo("basic_bad");
	char *url = url_of("HTTPS_BASIC_URL", "basic_bad");
	source_credentials *c = basic_creds("not-the-password-123", "CA_FILE");
	source_cache *cache = new_cache();
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_EAUTH);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "username/password rejected"));
	ck_assert_ptr_null(strstr(plumb_error_last(), "not-the-password-123"));
	source_credentials_free(c);
	/* no credentials at all */
	source_credentials *none = basic_creds(NULL, "CA_FILE");
	ck_assert_int_eq(source_fetch(NULL, cache, url, none, 30), PLUMB_EAUTH);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "none were given"));
	source_credentials_free(none);
	source_cache_free(cache);
	free(url);
}
END_TEST

START_TEST(test_source__https_bearer_token)
{
	make_repo("bearer");
	char *url = url_of("HTTPS_BEARER_URL", "bearer");
	char *ca = slurp(env("CA_FILE"));
	source_credentials right = { 0 }, wrong = { 0 };
	ck_assert_int_eq(source_credentials_set(&right, "bearerToken", env("BEARER_TOKEN"), strlen(env("BEARER_TOKEN"))), 0);
	ck_assert_int_eq(source_credentials_set(&right, "caFile", ca, strlen(ca)), 0);
	ck_assert_int_eq(source_credentials_set(&wrong, "bearerToken", "wrong-token-4242\n", 17), 0);
	ck_assert_int_eq(source_credentials_set(&wrong, "caFile", ca, strlen(ca)), 0);

	source_cache *cache = new_cache();
	ck_assert_int_eq(source_fetch(NULL, cache, url, &wrong, 30), PLUMB_EAUTH);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "bearer token was rejected"));
	ck_assert_ptr_null(strstr(plumb_error_last(), "wrong-token-4242"));
	source_fetch_stats st;
	ck_assert_msg(source_fetch(&st, cache, url, &right, 30) == 0, "%s", plumb_error_last());
	ck_assert_uint_gt(st.received_objects, 0);
	source_commit commit;
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, &right), SOURCE_REF_TAG, "v1"), 0);
	source_commit_clear(&commit);
	source_cache_free(cache);
	free(right.username); free(right.password); free(right.bearer_token); free(right.ca_file);
	free(wrong.bearer_token); free(wrong.ca_file);
	free(ca);
	free(url);
}
END_TEST

START_TEST(test_source__https_unknown_ca_then_right_ca)
{
	make_repo("ca");
	char *url = url_of("HTTPS_BASIC_URL", "ca");
	source_cache *cache = new_cache();
	/* no CA given: the system store does not know the test CA */
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), NULL);
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_ETLS);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "TLS verification"));
	source_credentials_free(c);
	/* another CA given */
	c = basic_creds(env("BASIC_PASSWORD"), "OTHER_CA_FILE");
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_ETLS);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "caFile"));
	assert_no_secret(plumb_error_last());
	source_credentials_free(c);
	/* the right CA */
	c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	ck_assert_msg(source_fetch(NULL, cache, url, c, 30) == 0, "%s", plumb_error_last());
	source_credentials_free(c);
	source_cache_free(cache);
	free(url);
}
END_TEST

START_TEST(test_source__https_repository_not_found)
{
	char *url = url_of("HTTPS_BASIC_URL", "does_not_exist");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	source_cache *cache = new_cache();
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_ENOTFOUND);
	source_credentials_free(c);
	source_cache_free(cache);
	free(url);
}
END_TEST

START_TEST(test_source__password_in_url_refused)
{
	char *url = plumb_asprintf("https://plumb:hunter2secret@127.0.0.1:%s/basic/x.git", env("HTTPS_PORT"));
	source_cache *cache = new_cache();
	ck_assert_int_eq(source_fetch(NULL, cache, url, NULL, 30), PLUMB_EINVALID);
	ck_assert_ptr_null(strstr(plumb_error_last(), "hunter2secret"));
	source_cache_free(cache);
	free(url);
}
END_TEST

/* ---- SSH ------------------------------------------------------------------ */

START_TEST(test_source__ssh_right_key)
{
	make_repo("ssh_ok");
	char *url = url_of("SSH_URL", "ssh_ok");
	source_credentials *c = ssh_creds("SSH_KEY", "KNOWN_HOSTS", NULL);
	source_cache *cache = fetched(url, c);
	source_commit commit;
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "dev"), 0);
	char *want = rev("ssh_ok", "dev");
	ck_assert_str_eq(commit.id, want);
	free(want);
	source_commit_clear(&commit);
	source_cache_free(cache);
	source_credentials_free(c);

	/* a passphrase-protected key, and an ECDSA key in PEM format (RSA keys
	 * need rsa-sha2 signatures, which libssh2 1.10 does not make) */
	c = ssh_creds("SSH_KEY_ENC", "KNOWN_HOSTS", env("SSH_KEY_PASSPHRASE"));
	cache = fetched(url, c);
	source_cache_free(cache);
	source_credentials_free(c);
	c = ssh_creds("SSH_KEY_ECDSA", "KNOWN_HOSTS", NULL);
	cache = fetched(url, c);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

START_TEST(test_source__ssh_wrong_key)
{
	make_repo("ssh_wrongkey");
	char *url = url_of("SSH_URL", "ssh_wrongkey");
	source_credentials *c = ssh_creds("SSH_WRONG_KEY", "KNOWN_HOSTS", NULL);
	source_cache *cache = new_cache();
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_EAUTH);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "refused the key"));
	assert_no_secret(plumb_error_last());
	source_credentials_free(c);
	/* the right key with a wrong passphrase */
	c = ssh_creds("SSH_KEY_ENC", "KNOWN_HOSTS", "not-the-passphrase");
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_EAUTH);
	ck_assert_ptr_null(strstr(plumb_error_last(), "not-the-passphrase"));
	source_credentials_free(c);
	source_cache_free(cache);
	free(url);
}
END_TEST

START_TEST(test_source__ssh_unknown_host_key)
{
	make_repo("ssh_unknown");
	char *url = url_of("SSH_URL", "ssh_unknown");
	source_cache *cache = new_cache();
	/* known_hosts lists the key for another port only */
	source_credentials *c = ssh_creds("SSH_KEY", "KNOWN_HOSTS_OTHER", NULL);
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_EHOSTKEY);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "is unknown"));
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "SHA256:"));
	source_credentials_free(c);
	/* no known_hosts at all: still refused */
	c = ssh_creds("SSH_KEY", NULL, NULL);
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_EHOSTKEY);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "no known_hosts"));
	source_credentials_free(c);
	source_cache_free(cache);
	free(url);
}
END_TEST

START_TEST(test_source__ssh_changed_host_key)
{
	make_repo("ssh_changed");
	char *url = url_of("SSH_URL", "ssh_changed");
	source_cache *cache = new_cache();
	source_credentials *c = ssh_creds("SSH_KEY", "KNOWN_HOSTS_CHANGED", NULL);
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_EHOSTKEY);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "CHANGED"));
	source_credentials_free(c);
	source_cache_free(cache);
	free(url);
}
END_TEST

/* ---- refs ---------------------------------------------------------------- */

START_TEST(test_source__refs_branch_tag_commit)
{
	make_repo("refs");
	char *url = url_of("SSH_URL", "refs");
	source_credentials *c = ssh_creds("SSH_KEY", "KNOWN_HOSTS", NULL);
	source_cache *cache = fetched(url, c);
	char *c1 = rev("refs", "v1^{commit}"), *c2 = rev("refs", "main"), *dev = rev("refs", "dev");
	source_commit r;

	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "main"), 0);
	ck_assert_str_eq(r.id, c2);
	ck_assert_str_eq(r.subject, "bump a");
	source_commit_clear(&r);
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "dev"), 0);
	ck_assert_str_eq(r.id, dev);
	source_commit_clear(&r);
	/* annotated tag, peeled to its commit */
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_TAG, "v1"), 0);
	ck_assert_str_eq(r.id, c1);
	ck_assert_str_eq(r.subject, "initial layout");
	ck_assert_str_eq(r.author_name, "Plumb Tester");
	ck_assert_str_eq(r.author_email, "tester@plumb.dev");
	ck_assert_int_eq(r.time, 1767323045);
	source_commit_clear(&r);
	/* lightweight tag */
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_TAG, "v2-light"), 0);
	ck_assert_str_eq(r.id, c2);
	source_commit_clear(&r);
	/* full id and a 7-digit prefix */
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_COMMIT, c1), 0);
	ck_assert_str_eq(r.id, c1);
	source_commit_clear(&r);
	char prefix[8];
	memcpy(prefix, c1, 7);
	prefix[7] = '\0';
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_COMMIT, prefix), 0);
	ck_assert_str_eq(r.id, c1);
	source_commit_clear(&r);
	prefix[6] = '\0';
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_COMMIT, prefix), PLUMB_EINVALID);
	free(c1); free(c2); free(dev);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

START_TEST(test_source__missing_ref)
{
	make_repo("missing_ref");
	char *url = url_of("HTTPS_BASIC_URL", "missing_ref");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	source_cache *cache = fetched(url, c);
	source_commit r;
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "nope"), PLUMB_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "branch \"nope\" not found"));
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_TAG, "v9"), PLUMB_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "tag \"v9\" not found"));
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_COMMIT, "0123456789abcdef"), PLUMB_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "commit 0123456789abcdef not found"));
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "bad..name"), PLUMB_EINVALID);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

START_TEST(test_source__force_pushed_branch)
{
	make_repo("force");
	char *url = url_of("HTTPS_BASIC_URL", "force");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	source_cache *cache = fetched(url, c);
	source_commit before, after, stale;
	ck_assert_int_eq(source_resolve(&before, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "dev"), 0);

	/* rewrite dev: drop its commit, make another one, force-push */
	sh("cd %s/.work/force && git checkout -q dev && git reset -q --hard v1 && "
	   "echo 'kind: ConfigMap' > clusters/base/rewritten.yaml && git add -A && "
	   "git commit -q -m rewritten && git push -q --force origin dev", env("GIT_REPOS"));
	source_fetch_stats st;
	ck_assert_msg(source_fetch(&st, cache, url, c, 30) == 0, "%s", plumb_error_last());
	ck_assert_uint_gt(st.updated_refs, 0);
	ck_assert_int_eq(source_resolve(&after, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "dev"), 0);
	char *want = rev("force", "dev");
	ck_assert_str_eq(after.id, want);
	ck_assert_str_ne(after.id, before.id);
	ck_assert_str_eq(after.subject, "rewritten");
	/* the old commit is still in the mirror, but nothing reaches it */
	ck_assert_int_eq(source_resolve(&stale, cache, url, cid(cache, c), SOURCE_REF_COMMIT, before.id), PLUMB_ESTALE);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "no longer reachable"));
	free(want);
	source_commit_clear(&before);
	source_commit_clear(&after);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

/* ---- reading ------------------------------------------------------------- */

START_TEST(test_source__read_files_in_order)
{
	make_repo("read");
	char *url = url_of("HTTPS_BEARER_URL", "read");
	char *ca = slurp(env("CA_FILE"));
	source_credentials c = { 0 };
	ck_assert_int_eq(source_credentials_set(&c, "bearerToken", env("BEARER_TOKEN"), strlen(env("BEARER_TOKEN"))), 0);
	ck_assert_int_eq(source_credentials_set(&c, "caFile", ca, strlen(ca)), 0);
	source_cache *cache = fetched(url, &c);
	source_commit r;
	source_files *files = NULL;
	ck_assert_int_eq(source_resolve(&r, cache, url, cid(cache, &c), SOURCE_REF_BRANCH, "main"), 0);
	ck_assert_msg(source_read(&files, cache, url, cid(cache, &c), r.id, "./clusters/base/", NULL) == 0, "%s", plumb_error_last());
	static const char *want[] = {
		"clusters/base/a.yaml", "clusters/base/b.yml", "clusters/base/c.json",
		"clusters/base/sub/d.yaml", "clusters/base/z/e.yaml",
	};
	ck_assert_uint_eq(files->count, 5);
	for (size_t i = 0; i < 5; i++)
		ck_assert_str_eq(files->items[i].path, want[i]);
	ck_assert_ptr_nonnull(strstr(files->items[0].data, "v: \"2\""));
	ck_assert_uint_eq(files->items[0].len, strlen(files->items[0].data));
	source_files_free(files);
	files = NULL;
	/* one file named by path */
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, &c), r.id, "clusters/other/x.yaml", NULL), 0);
	ck_assert_uint_eq(files->count, 1);
	ck_assert_str_eq(files->items[0].path, "clusters/other/x.yaml");
	source_files_free(files);
	source_commit_clear(&r);
	source_cache_free(cache);
	free(c.bearer_token); free(c.ca_file); free(ca);
	free(url);
}
END_TEST

START_TEST(test_source__missing_path_symlink_submodule)
{
	make_repo("paths");
	char *url = url_of("SSH_URL", "paths");
	source_credentials *c = ssh_creds("SSH_KEY", "KNOWN_HOSTS", NULL);
	source_cache *cache = fetched(url, c);
	char *head = rev("paths", "main");
	source_files *files = NULL;
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "clusters/nowhere", NULL), PLUMB_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "path \"clusters/nowhere\" not found"));
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "clusters/links", NULL), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "clusters/links/link.yaml is a symlink"));
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "clusters/subm", NULL), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "clusters/subm/mod is a submodule"));
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "../etc", NULL), PLUMB_EINVALID);
	ck_assert_ptr_null(files);
	free(head);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

START_TEST(test_source__read_caps)
{
	make_repo("caps");
	char *url = url_of("HTTPS_BASIC_URL", "caps");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	source_cache *cache = fetched(url, c);
	char *head = rev("caps", "main");
	source_files *files = NULL;
	source_limits lim = { 0 };

	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "clusters/big", NULL), 0);
	ck_assert_uint_eq(files->items[0].len, 200000);
	source_files_free(files);
	files = NULL;
	lim.max_file_size = 100000;
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "clusters/big", &lim), PLUMB_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "clusters/big/huge.yaml is 200000 bytes, over the 100000-byte file size cap"));
	lim.max_file_size = 0;
	lim.max_total_size = 150;
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "clusters/base", &lim), PLUMB_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "total size cap"));
	lim.max_total_size = 0;
	lim.max_files = 4;
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "clusters/base", &lim), PLUMB_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "more than 4 files"));
	lim.max_files = 5;
	ck_assert_int_eq(source_read(&files, cache, url, cid(cache, c), head, "clusters/base", &lim), 0);
	ck_assert_uint_eq(files->count, 5);
	source_files_free(files);
	free(head);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

/* ---- change detection and incremental fetch ---------------------------------- */

START_TEST(test_source__other_folder_is_no_change)
{
	make_repo("change");
	char *url = url_of("SSH_URL", "change");
	source_credentials *c = ssh_creds("SSH_KEY", "KNOWN_HOSTS", NULL);
	source_cache *cache = fetched(url, c);
	source_commit c0, c1, c2, c3;
	int changed = -1;
	ck_assert_int_eq(source_resolve(&c0, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "main"), 0);

	/* a commit that touches only another folder */
	sh("cd %s/.work/change && echo 'n: 1' >> clusters/other/x.yaml && git commit -qam other && git push -q origin main",
		env("GIT_REPOS"));
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), 0);
	ck_assert_int_eq(source_resolve(&c1, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "main"), 0);
	ck_assert_str_ne(c0.id, c1.id);
	ck_assert_int_eq(source_changed(&changed, cache, url, cid(cache, c), c0.id, c1.id, "clusters/base"), 0);
	ck_assert_int_eq(changed, 0);
	ck_assert_int_eq(source_changed(&changed, cache, url, cid(cache, c), c0.id, c1.id, "clusters/other"), 0);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(source_changed(&changed, cache, url, cid(cache, c), c0.id, c1.id, ""), 0);
	ck_assert_int_eq(changed, 1);

	/* under path, but only files source_read skips */
	sh("cd %s/.work/change && echo more >> clusters/base/README.md && echo 'x: 1' >> clusters/base/.dotdir/x.yaml && "
	   "git commit -qam docs && git push -q origin main", env("GIT_REPOS"));
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), 0);
	ck_assert_int_eq(source_resolve(&c2, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "main"), 0);
	ck_assert_int_eq(source_changed(&changed, cache, url, cid(cache, c), c1.id, c2.id, "clusters/base"), 0);
	ck_assert_int_eq(changed, 0);
	/* for a rendered GitSync any file counts (a README may be a generator's input) */
	ck_assert_int_eq(source_changed_tree(&changed, cache, url, cid(cache, c), c1.id, c2.id), 0);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(source_changed_tree(&changed, cache, url, cid(cache, c), c2.id, c2.id), 0);
	ck_assert_int_eq(changed, 0);
	ck_assert_int_eq(source_changed_tree(&changed, cache, url, cid(cache, c),
		"0123456789012345678901234567890123456789", c2.id), 0);
	ck_assert_int_eq(changed, 1);
	/* every file of the tree, not only manifests; dot-folders still skipped */
	source_files *tree = NULL;
	ck_assert_msg(source_read_tree(&tree, cache, url, cid(cache, c), c2.id, NULL) == 0, "%s", plumb_error_last());
	int readme = 0, dot = 0;
	for (size_t i = 0; i < tree->count; i++) {
		readme |= !strcmp(tree->items[i].path, "clusters/base/README.md");
		dot |= strstr(tree->items[i].path, ".dotdir") != NULL;
		if (i)
			ck_assert_int_lt(strcmp(tree->items[i - 1].path, tree->items[i].path), 0);
	}
	ck_assert_int_eq(readme, 1);
	ck_assert_int_eq(dot, 0);
	for (size_t i = 0; i < tree->count; i++) /* the symlink and the submodule are left out */
		ck_assert(strcmp(tree->items[i].path, "clusters/links/link.yaml") && strcmp(tree->items[i].path, "clusters/subm/mod"));
	source_limits tl = { .max_files = tree->count - 1 };
	size_t nfiles = tree->count, nbytes = tree->total_size;
	source_files_free(tree);
	tree = NULL;
	ck_assert_int_eq(source_read_tree(&tree, cache, url, cid(cache, c), c2.id, &tl), PLUMB_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "files in the tree (file count cap)"));
	tl = (source_limits){ .max_files = nfiles, .max_total_size = nbytes - 1 };
	ck_assert_int_eq(source_read_tree(&tree, cache, url, cid(cache, c), c2.id, &tl), PLUMB_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "total size cap"));
	tl.max_total_size = nbytes;
	ck_assert_int_eq(source_read_tree(&tree, cache, url, cid(cache, c), c2.id, &tl), 0);
	ck_assert_uint_eq(tree->count, nfiles);
	source_files_free(tree);
	int exists = -1;
	ck_assert_int_eq(source_path_exists(&exists, cache, url, cid(cache, c), c2.id, "clusters/base/README.md"), 0);
	ck_assert_int_eq(exists, 1);
	ck_assert_int_eq(source_path_exists(&exists, cache, url, cid(cache, c), c2.id, "clusters/base"), 0);
	ck_assert_int_eq(exists, 0);
	ck_assert_int_eq(source_path_exists(&exists, cache, url, cid(cache, c), c2.id, "clusters/base/nope"), 0);
	ck_assert_int_eq(exists, 0);

	/* a manifest under path */
	sh("cd %s/.work/change && echo 'y: 1' >> clusters/base/sub/d.yaml && git commit -qam d && git push -q origin main",
		env("GIT_REPOS"));
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), 0);
	ck_assert_int_eq(source_resolve(&c3, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "main"), 0);
	ck_assert_int_eq(source_changed(&changed, cache, url, cid(cache, c), c2.id, c3.id, "clusters/base"), 0);
	ck_assert_int_eq(changed, 1);
	/* a path that exists on neither side */
	ck_assert_int_eq(source_changed(&changed, cache, url, cid(cache, c), c2.id, c3.id, "nowhere"), 0);
	ck_assert_int_eq(changed, 0);
	source_commit_clear(&c0); source_commit_clear(&c1);
	source_commit_clear(&c2); source_commit_clear(&c3);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

static void second_fetch_transfers_nothing(const char *url, const source_credentials *c)
{
	source_cache *cache = fetched(url, c);
	source_fetch_stats st;
	ck_assert_msg(source_fetch(&st, cache, url, c, 30) == 0, "%s", plumb_error_last());
	ck_assert_uint_eq(st.received_objects, 0);
	ck_assert_uint_eq(st.received_bytes, 0);
	ck_assert_uint_eq(st.updated_refs, 0);
	source_cache_free(cache);
}

START_TEST(test_source__second_fetch_transfers_nothing)
{
	make_repo("noop");
	char *url = url_of("HTTPS_BASIC_URL", "noop");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	second_fetch_transfers_nothing(url, c);
	source_credentials_free(c);
	free(url);
	url = url_of("SSH_URL", "noop");
	c = ssh_creds("SSH_KEY", "KNOWN_HOSTS", NULL);
	second_fetch_transfers_nothing(url, c);
	source_credentials_free(c);
	free(url);
	url = plumb_asprintf("file://%s/noop.git", env("GIT_REPOS"));
	second_fetch_transfers_nothing(url, NULL);
	free(url);
}
END_TEST

typedef struct {
	source_cache *cache;
	const char *url;
	const source_credentials *creds;
	source_fetch_stats st;
	int rc;
} fetch_job;

static void *fetch_thread(void *arg)
{
	fetch_job *j = arg;
	j->rc = source_fetch(&j->st, j->cache, j->url, j->creds, 30);
	return NULL;
}

START_TEST(test_source__same_url_never_fetched_twice_at_once)
{
	/* Two fetches of one URL at the same time into an empty mirror: if they
	 * overlapped, both would download the pack; serialised, the second finds
	 * everything there already. */
	make_repo("parallel");
	char *url = url_of("SSH_URL", "parallel");
	source_credentials *c = ssh_creds("SSH_KEY", "KNOWN_HOSTS", NULL);
	source_cache *cache = new_cache();
	fetch_job a = { cache, url, c, { 0 }, -1 }, b = { cache, url, c, { 0 }, -1 };
	pthread_t ta, tb;
	pthread_create(&ta, NULL, fetch_thread, &a);
	pthread_create(&tb, NULL, fetch_thread, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert_int_eq(a.rc, 0);
	ck_assert_int_eq(b.rc, 0);
	ck_assert_msg((a.st.received_objects > 0) != (b.st.received_objects > 0),
		"both fetches transferred objects: %u and %u", a.st.received_objects, b.st.received_objects);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

/* ---- network failures ------------------------------------------------------- */

static int listen_silent(int *port)
{
	struct sockaddr_in sa = { 0 };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd; /* the kernel completes handshakes; nobody ever answers */
}

/* ---- bounded fetches ------------------------------------------------------ */

/* A branch a GitSync does not name never comes over the wire for it, and a
 * fetch that would receive more than its cap stops there (ETOOBIG). */
START_TEST(test_source__fetch_only_the_ref_and_capped)
{
	make_repo("capped");
	/* a branch "huge" with 3 MiB of incompressible data */
	sh("cd %s/.work/capped && git checkout -q -b huge && head -c 3145728 /dev/urandom > clusters/base/blob.bin && "
	   "git add -A && git commit -q -m huge && git push -q origin huge && git checkout -q main", env("GIT_REPOS"));
	char *url = url_of("HTTPS_BASIC_URL", "capped");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	source_fetch_stats st;
	source_commit commit;

	/* main alone fits in 512 KiB; every branch would not. */
	source_cache *cache = new_cache();
	source_fetch_opts main_only = { .kind = SOURCE_REF_BRANCH, .ref = "main", .max_bytes = 512 * 1024 };
	ck_assert_msg(source_fetch_ref(&st, cache, url, c, 30, &main_only) == 0, "%s", plumb_error_last());
	ck_assert_uint_lt(st.received_bytes, 512 * 1024);
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "main"), 0);
	char *want = rev("capped", "main");
	ck_assert_str_eq(commit.id, want);
	source_commit_clear(&commit);
	free(want);
	/* nothing of the other branches is in the mirror */
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "huge"), PLUMB_ENOTFOUND);
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "dev"), PLUMB_ENOTFOUND);
	source_cache_free(cache);

	/* The huge branch with that cap: stopped, saying why. */
	cache = new_cache();
	source_fetch_opts huge = { .kind = SOURCE_REF_BRANCH, .ref = "huge", .max_bytes = 512 * 1024 };
	double t0 = plumb_time_mono();
	ck_assert_int_eq(source_fetch_ref(&st, cache, url, c, 30, &huge), PLUMB_ETOOBIG);
	ck_assert(plumb_time_mono() - t0 < 20);
	ck_assert_msg(strstr(plumb_error_last(), "the server sent more than 524288 bytes (the fetch cap)"), "%s",
		plumb_error_last());
	assert_no_secret(plumb_error_last());
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "huge"), PLUMB_ENOTFOUND);
	/* ... and with room for it, it comes. */
	huge.max_bytes = 8 * 1024 * 1024;
	ck_assert_msg(source_fetch_ref(&st, cache, url, c, 30, &huge) == 0, "%s", plumb_error_last());
	ck_assert_uint_gt(st.received_bytes, 3000000);
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "huge"), 0);
	source_commit_clear(&commit);
	source_cache_free(cache);

	/* A tag alone; a commit id fetches every branch (it may be on any). */
	cache = new_cache();
	source_fetch_opts tag = { .kind = SOURCE_REF_TAG, .ref = "v1", .max_bytes = 512 * 1024 };
	ck_assert_msg(source_fetch_ref(&st, cache, url, c, 30, &tag) == 0, "%s", plumb_error_last());
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_TAG, "v1"), 0);
	source_commit_clear(&commit);
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "main"), PLUMB_ENOTFOUND);
	source_fetch_opts by_commit = { .kind = SOURCE_REF_COMMIT, .ref = "0123", .max_bytes = 512 * 1024 };
	ck_assert_int_eq(source_fetch_ref(&st, cache, url, c, 30, &by_commit), PLUMB_ETOOBIG);
	source_cache_free(cache);

	/* Ref names are checked before they become a refspec. */
	cache = new_cache();
	static const char *const bad[] = { "main:refs/heads/x", "*", "a..b", "main lock", "x~1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		source_fetch_opts o = { .kind = SOURCE_REF_BRANCH, .ref = bad[i] };
		ck_assert_msg(source_fetch_ref(&st, cache, url, c, 30, &o) == PLUMB_EINVALID, "%s accepted", bad[i]);
	}
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

/* A branch deleted on the server: a single-ref fetch leaves no stale copy. */
START_TEST(test_source__fetch_one_branch_deleted)
{
	make_repo("onedel");
	char *url = url_of("HTTPS_BASIC_URL", "onedel");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "CA_FILE");
	source_cache *cache = new_cache();
	source_fetch_stats st;
	source_commit commit;
	source_fetch_opts dev = { .kind = SOURCE_REF_BRANCH, .ref = "dev" };
	ck_assert_msg(source_fetch_ref(&st, cache, url, c, 30, &dev) == 0, "%s", plumb_error_last());
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "dev"), 0);
	source_commit_clear(&commit);
	sh("cd %s/.work/onedel && git push -q origin :dev", env("GIT_REPOS"));
	int rc = source_fetch_ref(&st, cache, url, c, 30, &dev);
	ck_assert_msg(rc == 0 || rc == PLUMB_ENOTFOUND, "rc %d: %s", rc, plumb_error_last());
	ck_assert_int_eq(source_resolve(&commit, cache, url, cid(cache, c), SOURCE_REF_BRANCH, "dev"), PLUMB_ENOTFOUND);
	source_cache_free(cache);
	source_credentials_free(c);
	free(url);
}
END_TEST

START_TEST(test_source__timeout_on_silent_server)
{
	int port, fd = listen_silent(&port);
	source_cache *cache = new_cache();
	char *https = plumb_asprintf("https://127.0.0.1:%d/x.git", port);
	char *ssh = plumb_asprintf("ssh://git@127.0.0.1:%d/x.git", port);
	source_credentials *c = ssh_creds("SSH_KEY", "KNOWN_HOSTS", NULL);
	double t0 = plumb_time_mono();
	ck_assert_int_eq(source_fetch(NULL, cache, https, NULL, 1.0), PLUMB_ETIMEOUT);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "timed out"));
	ck_assert_double_lt(plumb_time_mono() - t0, 5.0);
	t0 = plumb_time_mono();
	ck_assert_int_eq(source_fetch(NULL, cache, ssh, c, 1.0), PLUMB_ETIMEOUT);
	ck_assert_double_lt(plumb_time_mono() - t0, 5.0);
	close(fd);
	source_credentials_free(c);
	source_cache_free(cache);
	free(https);
	free(ssh);
}
END_TEST

START_TEST(test_source__unreachable_host)
{
	int port, fd = listen_silent(&port);
	close(fd); /* now nothing listens there */
	source_cache *cache = new_cache();
	char *url = plumb_asprintf("https://127.0.0.1:%d/x.git", port);
	ck_assert_int_eq(source_fetch(NULL, cache, url, NULL, 10), PLUMB_EUNREACHABLE);
	free(url);
	url = plumb_asprintf("%s", "https://plumb-test.invalid/x.git");
	ck_assert_int_eq(source_fetch(NULL, cache, url, NULL, 10), PLUMB_EUNREACHABLE);
	free(url);
	source_cache_free(cache);
}
END_TEST

START_TEST(test_source__secrets_never_logged)
{
	/* every failing path above logs a warning: capture stderr and look */
	make_repo("logs");
	char path[1024];
	snprintf(path, sizeof(path), "%s/caches/stderr-XXXXXX", env("GIT_SERVERS_DIR"));
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	source_cache *cache = new_cache();
	char *url = url_of("HTTPS_BASIC_URL", "logs");
	source_credentials *c = basic_creds(env("BASIC_PASSWORD"), "OTHER_CA_FILE");
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_ETLS);
	source_credentials_free(c);
	c = basic_creds("wrong-password-77", "CA_FILE");
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_EAUTH);
	source_credentials_free(c);
	free(url);
	url = url_of("SSH_URL", "logs");
	c = ssh_creds("SSH_KEY_ENC", "KNOWN_HOSTS_CHANGED", env("SSH_KEY_PASSPHRASE"));
	ck_assert_int_eq(source_fetch(NULL, cache, url, c, 30), PLUMB_EHOSTKEY);
	source_credentials_free(c);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	char *log = slurp(path);
	ck_assert_ptr_nonnull(strstr(log, "source: fetch failed")); /* something was logged */
	assert_no_secret(log);
	ck_assert_ptr_null(strstr(log, "wrong-password-77"));
	free(log);
	source_cache_free(cache);
	free(url);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("source-integration");
	TCase *tc = tcase_create("servers");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_source__https_basic_right_password);
	tcase_add_test(tc, test_source__https_basic_wrong_password);
	tcase_add_test(tc, test_source__https_bearer_token);
	tcase_add_test(tc, test_source__https_unknown_ca_then_right_ca);
	tcase_add_test(tc, test_source__https_repository_not_found);
	tcase_add_test(tc, test_source__password_in_url_refused);
	tcase_add_test(tc, test_source__ssh_right_key);
	tcase_add_test(tc, test_source__ssh_wrong_key);
	tcase_add_test(tc, test_source__ssh_unknown_host_key);
	tcase_add_test(tc, test_source__ssh_changed_host_key);
	tcase_add_test(tc, test_source__refs_branch_tag_commit);
	tcase_add_test(tc, test_source__missing_ref);
	tcase_add_test(tc, test_source__force_pushed_branch);
	tcase_add_test(tc, test_source__read_files_in_order);
	tcase_add_test(tc, test_source__missing_path_symlink_submodule);
	tcase_add_test(tc, test_source__read_caps);
	tcase_add_test(tc, test_source__other_folder_is_no_change);
	tcase_add_test(tc, test_source__second_fetch_transfers_nothing);
	tcase_add_test(tc, test_source__same_url_never_fetched_twice_at_once);
	tcase_add_test(tc, test_source__fetch_only_the_ref_and_capped);
	tcase_add_test(tc, test_source__fetch_one_branch_deleted);
	tcase_add_test(tc, test_source__timeout_on_silent_server);
	tcase_add_test(tc, test_source__unreachable_host);
	tcase_add_test(tc, test_source__secrets_never_logged);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
