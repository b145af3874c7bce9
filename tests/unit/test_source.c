/* Unit tests for pkg/source: path filtering and ordering, credentials,
 * known_hosts matching, URL redaction. The server cases are in
 * tests/integration/test_source.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/base.h"
#include "source/source.h"

START_TEST(test_source__path_is_manifest)
{
	ck_assert_int_eq(source_path_is_manifest("a.yaml"), 1);
	ck_assert_int_eq(source_path_is_manifest("x/b.yml"), 1);
	ck_assert_int_eq(source_path_is_manifest("x/y/c.json"), 1);
	ck_assert_int_eq(source_path_is_manifest("README.md"), 0);
	ck_assert_int_eq(source_path_is_manifest("a.yaml.bak"), 0);
	ck_assert_int_eq(source_path_is_manifest("a.YAML"), 0);
	ck_assert_int_eq(source_path_is_manifest("yaml"), 0);
	ck_assert_int_eq(source_path_is_manifest(".yaml"), 0);
	ck_assert_int_eq(source_path_is_manifest(".hidden.yaml"), 0);
	ck_assert_int_eq(source_path_is_manifest("x/.github/w.yaml"), 0);
	ck_assert_int_eq(source_path_is_manifest(".git/config.json"), 0);
	ck_assert_int_eq(source_path_is_manifest("x/.y/z/a.yml"), 0);
	ck_assert_int_eq(source_path_is_manifest(""), 0);
	ck_assert_int_eq(source_path_is_manifest(NULL), 0);
}
END_TEST

START_TEST(test_source__path_normalize)
{
	static const char *cases[][2] = {
		{ "", "" }, { ".", "" }, { "/", "" }, { "./", "" },
		{ "clusters/base", "clusters/base" },
		{ "./clusters/base/", "clusters/base" },
		{ "/clusters//base/./x", "clusters/base/x" },
		{ "a.yaml", "a.yaml" },
		{ "..a/b", "..a/b" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		ck_assert_int_eq(source_path_normalize(&out, cases[i][0]), 0);
		ck_assert_str_eq(out, cases[i][1]);
		free(out);
	}
	char *out = NULL;
	ck_assert_int_eq(source_path_normalize(&out, "../etc"), PLUMB_EINVALID);
	ck_assert_int_eq(source_path_normalize(&out, "a/../../b"), PLUMB_EINVALID);
	ck_assert_ptr_null(out);
	char *longp = malloc(5000);
	memset(longp, 'a', 4999);
	longp[4999] = '\0';
	ck_assert_int_eq(source_path_normalize(&out, longp), PLUMB_EINVALID);
	free(longp);
}
END_TEST

START_TEST(test_source__credentials_set)
{
	source_credentials c = { 0 };
	ck_assert_int_eq(source_credentials_set(&c, "username", "alice\n", 6), 0);
	ck_assert_str_eq(c.username, "alice");
	ck_assert_int_eq(source_credentials_set(&c, "bearerToken", "tok-123\r\n", 9), 0);
	ck_assert_str_eq(c.bearer_token, "tok-123");
	/* passwords are taken as they are */
	ck_assert_int_eq(source_credentials_set(&c, "password", "p w\n", 4), 0);
	ck_assert_str_eq(c.password, "p w\n");
	ck_assert_int_eq(source_credentials_set(&c, "identity", "-----BEGIN", 10), 0);
	ck_assert_int_eq(source_credentials_set(&c, "known_hosts", "h k v\n", 6), 0);
	ck_assert_int_eq(source_credentials_set(&c, "caFile", "-----BEGIN CERT", 15), 0);
	ck_assert_str_eq(c.ca_file, "-----BEGIN CERT");
	/* unknown keys are ignored */
	ck_assert_int_eq(source_credentials_set(&c, "identity.pub", "x", 1), 0);
	/* header injection and NULs refused, without echoing the value */
	ck_assert_int_eq(source_credentials_set(&c, "bearerToken", "a\r\nX-Evil: 1", 12), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "bearerToken"));
	ck_assert_ptr_null(strstr(plumb_error_last(), "Evil"));
	ck_assert_str_eq(c.bearer_token, "tok-123");
	ck_assert_int_eq(source_credentials_set(&c, "password", "a\0b", 3), PLUMB_EINVALID);
	char *big = calloc(1, 1024 * 1024 + 2);
	memset(big, 'k', 1024 * 1024 + 1);
	ck_assert_int_eq(source_credentials_set(&c, "identity", big, 1024 * 1024 + 1), PLUMB_ETOOBIG);
	free(big);
	free(c.username); free(c.password); free(c.bearer_token);
	free(c.identity); free(c.known_hosts); free(c.ca_file);
}
END_TEST

START_TEST(test_source__credentials_from_secret_data)
{
	/* username=git password=s3cret known_hosts="h ssh-ed25519 AAAA\n" */
	const char *json = "{\"username\":\"Z2l0\",\"password\":\"czNjcmV0\","
		"\"known_hosts\":\"aCBzc2gtZWQyNTUxOSBBQUFBCg==\",\"other\":\"eA==\"}";
	cJSON *data = cJSON_Parse(json);
	source_credentials *c = NULL;
	ck_assert_int_eq(source_credentials_from_secret_data(&c, data), 0);
	ck_assert_str_eq(c->username, "git");
	ck_assert_str_eq(c->password, "s3cret");
	ck_assert_str_eq(c->known_hosts, "h ssh-ed25519 AAAA\n");
	ck_assert_ptr_null(c->bearer_token);
	ck_assert_ptr_null(c->identity);
	source_credentials_free(c);
	cJSON_Delete(data);

	c = NULL;
	data = cJSON_Parse("{\"password\":\"!!not base64!!\"}");
	ck_assert_int_eq(source_credentials_from_secret_data(&c, data), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "password"));
	ck_assert_ptr_null(strstr(plumb_error_last(), "not base64!!"));
	ck_assert_ptr_null(c);
	cJSON_Delete(data);
	data = cJSON_Parse("{\"password\":5}");
	ck_assert_int_eq(source_credentials_from_secret_data(&c, data), PLUMB_EINVALID);
	cJSON_Delete(data);
	/* no data: empty credentials */
	ck_assert_int_eq(source_credentials_from_secret_data(&c, NULL), 0);
	ck_assert_ptr_null(c->username);
	source_credentials_free(c);
	source_credentials_free(NULL);
}
END_TEST

/* A known_hosts line for key blob (as base64 text "b64"). */
static const unsigned char KEY_A[] = "\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
static const unsigned char KEY_B[] = "\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

static char *b64(const unsigned char *k, size_t n)
{
	char *out = NULL;
	ck_assert_int_eq(plumb_base64_encode(&out, k, n), 0);
	return out;
}

START_TEST(test_source__known_hosts_plain)
{
	size_t n = sizeof(KEY_A) - 1;
	char *a = b64(KEY_A, n), *b = b64(KEY_B, n);
	char *kh = plumb_asprintf(
		"# comment\n\n"
		"git.example.com,10.0.0.1 ssh-ed25519 %s\n"
		"[git.example.com]:2222 ssh-ed25519 %s comment here\r\n"
		"*.wild.example ssh-ed25519 %s\n"
		"*.neg.example,!bad.neg.example ssh-ed25519 %s\n"
		"@cert-authority *.example.com ssh-ed25519 %s\n"
		"other.example ssh-rsa %s\n",
		a, b, a, a, b, a);
	ck_assert_int_eq(source_known_hosts_check(kh, "git.example.com", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_OK);
	ck_assert_int_eq(source_known_hosts_check(kh, "GIT.example.com", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_OK);
	ck_assert_int_eq(source_known_hosts_check(kh, "10.0.0.1", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_OK);
	ck_assert_int_eq(source_known_hosts_check(kh, "git.example.com", 22, "ssh-ed25519", KEY_B, n), SOURCE_HOSTKEY_CHANGED);
	/* a non-default port is its own host: [host]:port, '[' is not a glob */
	ck_assert_int_eq(source_known_hosts_check(kh, "git.example.com", 2222, "ssh-ed25519", KEY_B, n), SOURCE_HOSTKEY_OK);
	ck_assert_int_eq(source_known_hosts_check(kh, "git.example.com", 2222, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_CHANGED);
	ck_assert_int_eq(source_known_hosts_check(kh, "git.example.com", 2223, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_UNKNOWN);
	ck_assert_int_eq(source_known_hosts_check(kh, "g", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_UNKNOWN);
	/* wildcards and negation */
	ck_assert_int_eq(source_known_hosts_check(kh, "a.wild.example", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_OK);
	ck_assert_int_eq(source_known_hosts_check(kh, "wild.example", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_UNKNOWN);
	ck_assert_int_eq(source_known_hosts_check(kh, "ok.neg.example", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_OK);
	ck_assert_int_eq(source_known_hosts_check(kh, "bad.neg.example", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_UNKNOWN);
	/* @cert-authority lines are not host keys */
	ck_assert_int_eq(source_known_hosts_check(kh, "x.example.com", 22, "ssh-ed25519", KEY_B, n), SOURCE_HOSTKEY_UNKNOWN);
	/* another key type for the host: unknown, not changed */
	ck_assert_int_eq(source_known_hosts_check(kh, "other.example", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_UNKNOWN);
	ck_assert_int_eq(source_known_hosts_check("", "git.example.com", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_UNKNOWN);
	free(kh);
	/* @revoked wins over a matching line */
	kh = plumb_asprintf("git.example.com ssh-ed25519 %s\n@revoked * ssh-ed25519 %s\n", a, a);
	ck_assert_int_eq(source_known_hosts_check(kh, "git.example.com", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_REVOKED);
	free(kh);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_source__known_hosts_hashed)
{
	/* what `ssh-keygen -H` writes: |1|base64(salt)|base64(HMAC-SHA1(salt, host)) */
	size_t n = sizeof(KEY_A) - 1;
	unsigned char salt[20], mac[20];
	unsigned int maclen = 0;
	const char *host = "[127.0.0.1]:2200";
	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (unsigned char)(i * 7 + 3);
	HMAC(EVP_sha1(), salt, sizeof(salt), (const unsigned char *)host, strlen(host), mac, &maclen);
	char *s64 = b64(salt, sizeof(salt)), *m64 = b64(mac, maclen), *a = b64(KEY_A, n);
	char *kh = plumb_asprintf("|1|%s|%s ssh-ed25519 %s\n", s64, m64, a);
	ck_assert_int_eq(source_known_hosts_check(kh, "127.0.0.1", 2200, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_OK);
	ck_assert_int_eq(source_known_hosts_check(kh, "127.0.0.1", 2200, "ssh-ed25519", KEY_B, n), SOURCE_HOSTKEY_CHANGED);
	ck_assert_int_eq(source_known_hosts_check(kh, "127.0.0.1", 22, "ssh-ed25519", KEY_A, n), SOURCE_HOSTKEY_UNKNOWN);
	free(kh);
	free(s64);
	free(m64);
	free(a);
}
END_TEST

START_TEST(test_source__url_redact)
{
	char out[256];
	source_url_redact(out, sizeof(out), "https://user:s3cret@git.example.com/x.git");
	ck_assert_str_eq(out, "https://user@git.example.com/x.git");
	source_url_redact(out, sizeof(out), "https://u:p@ss@h/x");
	ck_assert_str_eq(out, "https://u@h/x");
	source_url_redact(out, sizeof(out), "ssh://git@h:22/x");
	ck_assert_str_eq(out, "ssh://git@h:22/x");
	source_url_redact(out, sizeof(out), "git@github.com:o/r.git");
	ck_assert_str_eq(out, "git@github.com:o/r.git");
	source_url_redact(out, sizeof(out), "https://h/a@b");
	ck_assert_str_eq(out, "https://h/a@b");
}
END_TEST

/* Reading order and filtering on a local repository made with git: no
 * server needed (file://). */
START_TEST(test_source__read_order_local_repo)
{
	char dir[] = "/tmp/plumb-unit-source-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *cmd = plumb_asprintf(
		"set -e; export GIT_CONFIG_NOSYSTEM=1 HOME=%s GIT_AUTHOR_NAME=T GIT_AUTHOR_EMAIL=t@t "
		"GIT_COMMITTER_NAME=T GIT_COMMITTER_EMAIL=t@t; cd %s; git init -q -b main w; cd w; "
		"mkdir -p p/b p/a-z p/.d q; for f in p/z.yaml p/a.json p/B.yml p/b/x.yaml p/a-z/y.yml p/b.yaml "
		"p/.d/h.yaml p/.h.yaml p/n.txt q/o.yaml; do echo \"k: $f\" > $f; done; git add -A; "
		"git commit -qm one", dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	char *cachedir = plumb_asprintf("%s/cache", dir), *url = plumb_asprintf("file://%s/w", dir);
	source_cache *cache = NULL;
	source_fetch_stats st;
	source_commit head;
	source_files *files = NULL;
	ck_assert_int_eq(source_cache_new(&cache, cachedir), 0);
	ck_assert_msg(source_fetch(&st, cache, url, NULL, 30) == 0, "%s", plumb_error_last());
	ck_assert_int_eq(source_resolve(&head, cache, url, NULL, SOURCE_REF_BRANCH, "main"), 0);
	ck_assert_int_eq(source_read(&files, cache, url, NULL, head.id, "p", NULL), 0);
	/* byte order of full paths; dot-files, dot-folders and other extensions left out */
	static const char *want[] = { "p/B.yml", "p/a-z/y.yml", "p/a.json", "p/b.yaml", "p/b/x.yaml", "p/z.yaml" };
	ck_assert_uint_eq(files->count, 6);
	for (size_t i = 0; i < 6; i++) {
		char content[64];
		ck_assert_str_eq(files->items[i].path, want[i]);
		snprintf(content, sizeof(content), "k: %s\n", want[i]);
		ck_assert_str_eq(files->items[i].data, content);
	}
	ck_assert_uint_eq(files->total_size, 76); /* 6 x "k: " + path + "\n" */
	source_files_free(files);
	files = NULL;
	/* the root: everything, q/ included */
	ck_assert_int_eq(source_read(&files, cache, url, NULL, head.id, "", NULL), 0);
	ck_assert_uint_eq(files->count, 7);
	ck_assert_str_eq(files->items[6].path, "q/o.yaml");
	source_files_free(files);
	files = NULL;
	/* a short or unknown id is not a commit to read */
	ck_assert_int_eq(source_read(&files, cache, url, NULL, "abc", "p", NULL), PLUMB_EINVALID);
	ck_assert_int_eq(source_read(&files, cache, url, NULL, "0000000000000000000000000000000000000001", "p", NULL),
		PLUMB_ENOTFOUND);
	ck_assert_int_eq(source_read(&files, cache, "file:///never/fetched", NULL, head.id, "p", NULL), PLUMB_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "fetch it first"));
	source_commit_clear(&head);
	source_cache_free(cache);
	cmd = plumb_asprintf("rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	free(cachedir);
	free(url);
}
END_TEST

START_TEST(test_source__bad_urls)
{
	char dir[] = "/tmp/plumb-unit-source-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	source_cache *cache = NULL;
	ck_assert_int_eq(source_cache_new(&cache, dir), 0);
	ck_assert_int_eq(source_fetch(NULL, cache, "ftp://h/x.git", NULL, 5), PLUMB_EINVALID);
	ck_assert_int_eq(source_fetch(NULL, cache, "just-a-word", NULL, 5), PLUMB_EINVALID);
	ck_assert_int_eq(source_fetch(NULL, cache, "https://u:pw-secret@h/x.git", NULL, 5), PLUMB_EINVALID);
	ck_assert_ptr_null(strstr(plumb_error_last(), "pw-secret"));
	source_credentials c = { 0 };
	c.bearer_token = "t0k";
	ck_assert_int_eq(source_fetch(NULL, cache, "http://h/x.git", &c, 5), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "plain http"));
	c.bearer_token = NULL;
	c.ca_file = "not a certificate";
	ck_assert_int_eq(source_fetch(NULL, cache, "https://h/x.git", &c, 5), PLUMB_EINVALID);
	ck_assert_ptr_nonnull(strstr(plumb_error_last(), "caFile"));
	source_cache_free(cache);
	char *cmd = plumb_asprintf("rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}
END_TEST

START_TEST(test_source__credentials_id)
{
	static const unsigned char salt[32] = "0123456789abcdef0123456789abcde";
	static const unsigned char salt2[32] = "another salt, another cache....";
	char a[65], b[65], e[65];
	source_credentials none = { 0 }, x = { 0 }, y = { 0 };

	/* no credentials, or none set: the anonymous mirror */
	source_credentials_digest(e, salt, 32, NULL);
	ck_assert_str_eq(e, "");
	source_credentials_digest(e, salt, 32, &none);
	ck_assert_str_eq(e, "");

	x.username = "git";
	x.password = "hunter2-secret";
	source_credentials_digest(a, salt, 32, &x);
	ck_assert_uint_eq(strlen(a), 64);
	ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 64);
	source_credentials_digest(b, salt, 32, &x);
	ck_assert_str_eq(a, b);                       /* stable */
	ck_assert_ptr_null(strstr(a, "hunter2"));
	source_credentials_digest(b, salt2, 32, &x);
	ck_assert_str_ne(a, b);                       /* keyed by the cache's salt */

	/* every field counts, and values cannot slide across fields */
	y.username = "gi";
	y.password = "thunter2-secret";
	source_credentials_digest(b, salt, 32, &y);
	ck_assert_str_ne(a, b);
	y = x;
	y.password = "hunter2-secreT";
	source_credentials_digest(b, salt, 32, &y);
	ck_assert_str_ne(a, b);
	y = x;
	y.ca_file = "-----BEGIN CERTIFICATE-----";
	source_credentials_digest(b, salt, 32, &y);
	ck_assert_str_ne(a, b);
	y = x;
	y.known_hosts = "";
	source_credentials_digest(b, salt, 32, &y);
	ck_assert_str_ne(a, b);                       /* an empty field is not an absent one */
	source_credentials none2 = { 0 };
	none2.bearer_token = "";
	source_credentials_digest(b, salt, 32, &none2);
	ck_assert_str_ne(b, "");

	/* mirror keys: the URL alone when anonymous, URL + id otherwise */
	char k1[65], k2[65], k3[65], want[65];
	const char *url = "https://git.example.com/x.git";
	plumb_sha256_hex(want, url, strlen(url));
	source_mirror_key(k1, url, NULL);
	ck_assert_str_eq(k1, want);
	source_mirror_key(k2, url, "");
	ck_assert_str_eq(k2, want);
	source_mirror_key(k3, url, a);
	ck_assert_str_ne(k3, want);
	source_mirror_key(k2, "https://git.example.com/y.git", a);
	ck_assert_str_ne(k2, k3);

	ck_assert_int_eq(source_url_is_local("file:///srv/x.git"), 1);
	ck_assert_int_eq(source_url_is_local("/srv/x.git"), 1);
	ck_assert_int_eq(source_url_is_local("https://h/x.git"), 0);
	ck_assert_int_eq(source_url_is_local("git@h:x.git"), 0);
}
END_TEST

/* What one set of credentials fetched, another (or none) cannot read: the
 * mirror is found only under the id of the credentials that fetched it. */
START_TEST(test_source__mirror_per_credentials)
{
	char dir[] = "/tmp/plumb-unit-source-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *cmd = plumb_asprintf(
		"set -e; export GIT_CONFIG_NOSYSTEM=1 HOME=%s GIT_AUTHOR_NAME=T GIT_AUTHOR_EMAIL=t@t "
		"GIT_COMMITTER_NAME=T GIT_COMMITTER_EMAIL=t@t; cd %s; git init -q -b main w; cd w; "
		"echo 'k: v' > a.yaml; git add -A; git commit -qm one", dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	char *cachedir = plumb_asprintf("%s/cache", dir), *url = plumb_asprintf("file://%s/w", dir);
	source_cache *cache = NULL;
	source_commit head;
	source_credentials alice = { 0 }, mallory = { 0 };
	char ida[65], idm[65], again[65];
	alice.username = "alice";
	alice.password = "alice-pw";
	mallory.username = "alice";
	mallory.password = "guess";
	ck_assert_int_eq(source_cache_new(&cache, cachedir), 0);
	source_credentials_id(ida, cache, &alice);
	source_credentials_id(idm, cache, &mallory);
	ck_assert_str_ne(ida, idm);
	ck_assert_msg(source_fetch(NULL, cache, url, &alice, 30) == 0, "%s", plumb_error_last());
	ck_assert_int_eq(source_resolve(&head, cache, url, ida, SOURCE_REF_BRANCH, "main"), 0);
	source_commit_clear(&head);
	ck_assert_int_eq(source_resolve(&head, cache, url, idm, SOURCE_REF_BRANCH, "main"), PLUMB_ENOTFOUND);
	ck_assert_int_eq(source_resolve(&head, cache, url, NULL, SOURCE_REF_BRANCH, "main"), PLUMB_ENOTFOUND);
	ck_assert_ptr_null(strstr(plumb_error_last(), ida));
	source_cache_free(cache);

	/* the salt survives a restart (mode 0600): the same id, the same mirror */
	struct stat sb;
	char *saltp = plumb_asprintf("%s/.salt", cachedir);
	ck_assert_int_eq(stat(saltp, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(sb.st_size, 32);
	ck_assert_int_eq(source_cache_new(&cache, cachedir), 0);
	source_credentials_id(again, cache, &alice);
	ck_assert_str_eq(again, ida);
	ck_assert_int_eq(source_resolve(&head, cache, url, ida, SOURCE_REF_BRANCH, "main"), 0);
	source_commit_clear(&head);
	source_cache_free(cache);
	cmd = plumb_asprintf("rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	free(saltp);
	free(cachedir);
	free(url);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("source");
	TCase *tc = tcase_create("source");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_source__path_is_manifest);
	tcase_add_test(tc, test_source__path_normalize);
	tcase_add_test(tc, test_source__credentials_set);
	tcase_add_test(tc, test_source__credentials_from_secret_data);
	tcase_add_test(tc, test_source__known_hosts_plain);
	tcase_add_test(tc, test_source__known_hosts_hashed);
	tcase_add_test(tc, test_source__url_redact);
	tcase_add_test(tc, test_source__read_order_local_repo);
	tcase_add_test(tc, test_source__bad_urls);
	tcase_add_test(tc, test_source__credentials_id);
	tcase_add_test(tc, test_source__mirror_per_credentials);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
