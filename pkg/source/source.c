/*
 * pkg/source — mirrors, fetch, refs, reading trees. See source.h.
 *
 * Timeouts: libgit2 1.5 has no connect or read timeout of its own, and its
 * sockets (and libssh2's) block. Each fetch therefore runs with a watchdog
 * thread: past the deadline it sets a flag that every progress callback
 * turns into an abort, and interrupts the fetching thread's blocking system
 * call with SOURCE_SIGNAL (a no-op handler installed without SA_RESTART)
 * until the fetch returns; where libgit2 would retry an interrupted call
 * (the SSH handshake), it shuts down the socket the thread waits on (see
 * watchdog_unblock). Process-wide, pkg/source owns SIGRTMIN+5.
 */
#include "source/source.h"

#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "base/base.h"

#define SOURCE_SIGNAL (SIGRTMIN + 5)
#define SOURCE_CRED_MAX (1024 * 1024)
#define SOURCE_PATH_MAX 4096
#define SOURCE_TREE_DEPTH_MAX 64
#define SOURCE_DEFAULT_TIMEOUT 120.0
#define SOURCE_DEFAULT_FILE_MAX ((size_t)4 * 1024 * 1024)
#define SOURCE_DEFAULT_TOTAL_MAX ((size_t)64 * 1024 * 1024)
#define SOURCE_DEFAULT_FILES_MAX ((size_t)10000)
#define URL_SHOW 512

/* ---- process-wide setup ------------------------------------------------- */

static pthread_once_t source_once = PTHREAD_ONCE_INIT;
static int source_init_error;

static void source_signal_noop(int sig)
{
	(void)sig;
}

static void source_global_init(void)
{
	struct sigaction sa;

	if (git_libgit2_init() < 0) {
		source_init_error = 1;
		return;
	}
	/* Objects are hashed by the indexer as a fetch writes them into a
	 * mirror; hashing every blob again on each read (libgit2's default)
	 * made reading a tree slower than `git archive`, which does not either.
	 * pkg/source is plumb's only libgit2 user, so this process-wide
	 * setting is its to choose. */
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = source_signal_noop;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: the point is to interrupt */
	if (sigaction(SOURCE_SIGNAL, &sa, NULL) < 0)
		source_init_error = 1;
}

static int source_init(void)
{
	pthread_once(&source_once, source_global_init);
	if (source_init_error)
		return plumb_error_set(PLUMB_ERROR, "source: libgit2 initialisation failed");
	return 0;
}

/* ---- small helpers -------------------------------------------------------- */

static void wipe_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static const char *git_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown libgit2 error";
}

void source_url_redact(char *out, size_t outlen, const char *url)
{
	const char *scheme, *at, *colon, *slash;

	if (!outlen)
		return;
	if (!url) {
		snprintf(out, outlen, "%s", "");
		return;
	}
	scheme = strstr(url, "://");
	if (!scheme) {
		snprintf(out, outlen, "%s", url);
		return;
	}
	scheme += 3;
	slash = strchr(scheme, '/');
	at = memchr(scheme, '@', slash ? (size_t)(slash - scheme) : strlen(scheme));
	/* the last '@' of the authority ends userinfo */
	if (at) {
		const char *p = at;
		while ((p = memchr(p + 1, '@', slash ? (size_t)(slash - p - 1) : strlen(p + 1))))
			at = p;
	}
	colon = at ? memchr(scheme, ':', (size_t)(at - scheme)) : NULL;
	if (!colon) {
		snprintf(out, outlen, "%s", url);
		return;
	}
	snprintf(out, outlen, "%.*s%s", (int)(colon - url), url, at);
}

/* ---- credentials ------------------------------------------------------------ */

static int has_ctl(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

int source_credentials_set(source_credentials *creds, const char *key,
	const char *value, size_t len)
{
	char **field = NULL;
	int oneline = 0;
	char *copy;

	if (!creds || !key || (!value && len))
		return plumb_error_set(PLUMB_EINVALID, "source: credentials: bad arguments");
	if (!strcmp(key, "username")) {
		field = &creds->username;
		oneline = 1;
	} else if (!strcmp(key, "password")) {
		field = &creds->password;
	} else if (!strcmp(key, "bearerToken")) {
		field = &creds->bearer_token;
		oneline = 1;
	} else if (!strcmp(key, "identity")) {
		field = &creds->identity;
	} else if (!strcmp(key, "known_hosts")) {
		field = &creds->known_hosts;
	} else if (!strcmp(key, "caFile")) {
		field = &creds->ca_file;
	} else {
		return 0;
	}
	if (len > SOURCE_CRED_MAX)
		return plumb_error_set(PLUMB_ETOOBIG, "source: credentials: %s is over %d bytes",
			key, SOURCE_CRED_MAX);
	if (len && memchr(value, '\0', len))
		return plumb_error_set(PLUMB_EINVALID, "source: credentials: %s contains a NUL byte", key);
	if (oneline) {
		/* `echo token | kubectl create secret` leaves a newline: forgive it */
		while (len && (value[len - 1] == '\n' || value[len - 1] == '\r'))
			len--;
		if (has_ctl(value, len))
			return plumb_error_set(PLUMB_EINVALID,
				"source: credentials: %s contains control characters", key);
	}
	copy = plumb_strndup(value ? value : "", len);
	if (!copy)
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	wipe_free(*field);
	*field = copy;
	return 0;
}

int source_credentials_from_secret_data(source_credentials **out, const cJSON *data)
{
	source_credentials *creds = NULL;
	const cJSON *item;
	char *raw = NULL;
	size_t rawlen = 0;
	int error = 0;

	if (!out)
		return plumb_error_set(PLUMB_EINVALID, "source: credentials: bad arguments");
	creds = calloc(1, sizeof(*creds));
	if (!creds)
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	if (data && !cJSON_IsObject(data)) {
		error = plumb_error_set(PLUMB_EINVALID, "source: credentials: secret data is not an object");
		goto cleanup;
	}
	cJSON_ArrayForEach(item, data) {
		if (!item->string)
			continue;
		if (!cJSON_IsString(item) || !item->valuestring) {
			error = plumb_error_set(PLUMB_EINVALID,
				"source: credentials: secret data key %.64s is not a string", item->string);
			goto cleanup;
		}
		if (strlen(item->valuestring) > (size_t)SOURCE_CRED_MAX * 2) {
			error = plumb_error_set(PLUMB_ETOOBIG, "source: credentials: %.64s is over %d bytes",
				item->string, SOURCE_CRED_MAX);
			goto cleanup;
		}
		if (plumb_base64_decode(&raw, &rawlen, item->valuestring, strlen(item->valuestring)) < 0) {
			error = plumb_error_set(PLUMB_EINVALID,
				"source: credentials: secret data key %.64s is not base64", item->string);
			goto cleanup;
		}
		error = source_credentials_set(creds, item->string, raw, rawlen);
		explicit_bzero(raw, rawlen);
		free(raw);
		raw = NULL;
		if (error < 0)
			goto cleanup;
	}
	*out = creds;
	creds = NULL;
cleanup:
	source_credentials_free(creds);
	return error;
}

void source_credentials_free(source_credentials *creds)
{
	if (!creds)
		return;
	wipe_free(creds->username);
	wipe_free(creds->password);
	wipe_free(creds->bearer_token);
	wipe_free(creds->identity);
	wipe_free(creds->known_hosts);
	wipe_free(creds->ca_file);
	free(creds);
}

/* ---- known_hosts ------------------------------------------------------------ */

static int hashed_host_matches(const char *field, const char *name)
{
	/* |1|base64(salt)|base64(HMAC-SHA1(salt, name)) */
	const char *salt64 = field + 3, *bar = strchr(salt64, '|');
	char *salt = NULL, *hash = NULL;
	size_t saltlen = 0, hashlen = 0;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int match = 0;

	if (!bar)
		return 0;
	if (plumb_base64_decode(&salt, &saltlen, salt64, (size_t)(bar - salt64)) < 0)
		goto cleanup;
	if (plumb_base64_decode(&hash, &hashlen, bar + 1, strlen(bar + 1)) < 0)
		goto cleanup;
	if (!HMAC(EVP_sha1(), salt, (int)saltlen, (const unsigned char *)name, strlen(name), mac, &maclen))
		goto cleanup;
	match = plumb_ct_equal(mac, maclen, hash, hashlen);
cleanup:
	free(salt);
	free(hash);
	return match;
}

/* OpenSSH host patterns: '*' and '?' only, case-insensitive ('[' is literal,
 * as in "[host]:port"). */
static int glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL;

	while (*s) {
		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat && (*pat == '?' || tolower((unsigned char)*pat) == tolower((unsigned char)*s))) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

static int host_field_matches(const char *field, const char *name)
{
	char pat[1024];
	const char *p = field;
	int positive = 0;

	if (!strncmp(field, "|1|", 3))
		return hashed_host_matches(field, name);
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		int neg = 0;
		if (n && n < sizeof(pat)) {
			memcpy(pat, p, n);
			pat[n] = '\0';
			if (pat[0] == '!')
				neg = 1;
			if (glob_match(pat + neg, name)) {
				if (neg)
					return 0;
				positive = 1;
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return positive;
}

/* Splits the next whitespace-separated token off *s; NULL at end of line. */
static char *next_token(char **s)
{
	char *p = *s, *start;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	start = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return start;
}

source_hostkey_result source_known_hosts_check(const char *known_hosts,
	const char *host, int port, const char *keytype,
	const unsigned char *key, size_t keylen)
{
	char name[300];
	const char *line, *end;
	int ok = 0, changed = 0, revoked = 0;

	if (!known_hosts || !host || !keytype || !key)
		return SOURCE_HOSTKEY_UNKNOWN;
	if (port <= 0 || port == 22)
		snprintf(name, sizeof(name), "%s", host);
	else
		snprintf(name, sizeof(name), "[%s]:%d", host, port);

	for (line = known_hosts; *line; line = *end ? end + 1 : end) {
		char buf[16384], *s = buf, *tok, *hosts, *type, *b64;
		char *blob = NULL;
		size_t n, bloblen = 0;
		int is_revoked = 0, equal;

		end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		n = (size_t)(end - line);
		if (n >= sizeof(buf))
			continue; /* no real key line is this long */
		memcpy(buf, line, n);
		buf[n] = '\0';
		if (n && buf[n - 1] == '\r')
			buf[n - 1] = '\0';
		tok = next_token(&s);
		if (!tok || tok[0] == '#')
			continue;
		if (tok[0] == '@') {
			if (strcmp(tok, "@revoked"))
				continue; /* @cert-authority: host certificates are not supported */
			is_revoked = 1;
			tok = next_token(&s);
			if (!tok)
				continue;
		}
		hosts = tok;
		type = next_token(&s);
		b64 = next_token(&s);
		if (!type || !b64)
			continue;
		if (!is_revoked && !host_field_matches(hosts, name))
			continue;
		if (strcmp(type, keytype))
			continue;
		if (plumb_base64_decode(&blob, &bloblen, b64, strlen(b64)) < 0)
			continue;
		equal = bloblen == keylen && memcmp(blob, key, keylen) == 0;
		free(blob);
		if (is_revoked) {
			if (equal)
				revoked = 1;
		} else if (equal) {
			ok = 1;
		} else {
			changed = 1;
		}
	}
	if (revoked)
		return SOURCE_HOSTKEY_REVOKED;
	if (ok)
		return SOURCE_HOSTKEY_OK;
	if (changed)
		return SOURCE_HOSTKEY_CHANGED;
	return SOURCE_HOSTKEY_UNKNOWN;
}

/* ---- paths ------------------------------------------------------------------ */

int source_path_is_manifest(const char *path)
{
	const char *p = path, *last = path, *dot;

	if (!path || !*path)
		return 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		if (*p == '.')
			return 0;
		if (!slash)
			break;
		p = slash + 1;
	}
	last = p;
	dot = strrchr(last, '.');
	if (!dot || dot == last)
		return 0;
	return !strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json");
}

int source_path_normalize(char **out, const char *path)
{
	plumb_buf b = PLUMB_BUF_INIT(SOURCE_PATH_MAX + 1);
	const char *p = path ? path : "";
	int error = 0;

	if (strlen(p) > SOURCE_PATH_MAX)
		return plumb_error_set(PLUMB_EINVALID, "source: path is over %d bytes", SOURCE_PATH_MAX);
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 2 && !strncmp(p, "..", 2)) {
			error = plumb_error_set(PLUMB_EINVALID, "source: path \"%.256s\" leaves the repository", path);
			goto cleanup;
		}
		if (n && !(n == 1 && *p == '.')) {
			if ((b.len && (error = plumb_buf_puts(&b, "/")) < 0) ||
				(error = plumb_buf_append(&b, p, n)) < 0)
				goto cleanup;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	if ((error = plumb_buf_puts(&b, "")) < 0)
		goto cleanup;
	*out = plumb_buf_detach(&b);
cleanup:
	plumb_buf_free(&b);
	return error;
}

/* ---- URLs -------------------------------------------------------------------- */

enum { SCHEME_FILE, SCHEME_HTTPS, SCHEME_HTTP, SCHEME_SSH };

typedef struct {
	int scheme;
	char host[256];
	int port;
	int has_password;
} url_info;

static int url_parse(url_info *u, const char *url)
{
	const char *rest, *auth_end, *hp, *at;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (!strncmp(url, "https://", 8)) {
		u->scheme = SCHEME_HTTPS;
		u->port = 443;
		rest = url + 8;
	} else if (!strncmp(url, "http://", 7)) {
		u->scheme = SCHEME_HTTP;
		u->port = 80;
		rest = url + 7;
	} else if (!strncmp(url, "ssh://", 6) || !strncmp(url, "ssh+git://", 10) ||
		!strncmp(url, "git+ssh://", 10)) {
		u->scheme = SCHEME_SSH;
		u->port = 22;
		rest = strstr(url, "://") + 3;
	} else if (!strncmp(url, "file://", 7) || url[0] == '/') {
		u->scheme = SCHEME_FILE;
		return 0;
	} else if (strstr(url, "://")) {
		return plumb_error_set(PLUMB_EINVALID, "source: unsupported URL scheme in \"%.64s\"", url);
	} else {
		/* scp-like: [user@]host:path */
		const char *colon = strchr(url, ':');
		const char *slash = strchr(url, '/');
		if (!colon || (slash && slash < colon))
			return plumb_error_set(PLUMB_EINVALID, "source: not a Git URL: \"%.64s\"", url);
		at = memchr(url, '@', (size_t)(colon - url));
		hp = at ? at + 1 : url;
		n = (size_t)(colon - hp);
		if (!n || n >= sizeof(u->host))
			return plumb_error_set(PLUMB_EINVALID, "source: bad host in \"%.64s\"", url);
		u->scheme = SCHEME_SSH;
		u->port = 22;
		memcpy(u->host, hp, n);
		return 0;
	}
	auth_end = rest + strcspn(rest, "/?#");
	at = NULL;
	for (const char *p = rest; p < auth_end; p++)
		if (*p == '@')
			at = p;
	if (at && memchr(rest, ':', (size_t)(at - rest)))
		u->has_password = 1;
	hp = at ? at + 1 : rest;
	if (*hp == '[') {
		const char *close = memchr(hp, ']', (size_t)(auth_end - hp));
		if (!close)
			return plumb_error_set(PLUMB_EINVALID, "source: bad IPv6 host in URL");
		n = (size_t)(close - hp - 1);
		if (!n || n >= sizeof(u->host))
			return plumb_error_set(PLUMB_EINVALID, "source: bad host in URL");
		memcpy(u->host, hp + 1, n);
		hp = close + 1;
	} else {
		const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
		const char *hend = colon ? colon : auth_end;
		n = (size_t)(hend - hp);
		if (!n || n >= sizeof(u->host))
			return plumb_error_set(PLUMB_EINVALID, "source: bad host in URL");
		memcpy(u->host, hp, n);
		hp = hend;
	}
	if (*hp == ':' && hp + 1 < auth_end) {
		char *endp;
		long port = strtol(hp + 1, &endp, 10);
		if (endp != auth_end || port <= 0 || port > 65535)
			return plumb_error_set(PLUMB_EINVALID, "source: bad port in URL");
		u->port = (int)port;
	}
	return 0;
}

/* ---- the cache and its per-URL locks ----------------------------------------- */

typedef struct url_lock {
	char key[65];
	pthread_mutex_t mu;
	unsigned refs;
	struct url_lock *next;
} url_lock;

#define SALT_LEN 32

struct source_cache {
	char *dir;
	unsigned char salt[SALT_LEN]; /* keys credential ids (<dir>/.salt, 0600) */
	pthread_mutex_t mu;
	url_lock *locks;
};

/* Reads <dir>/.salt, or creates it with fresh random bytes: a credential id
 * is an HMAC under it, so a mirror's name never is a plain hash of a
 * password someone could guess offline. */
static int load_salt(unsigned char salt[SALT_LEN], const char *dir)
{
	char *p = plumb_asprintf("%s/.salt", dir);
	int fd, error = 0;
	if (!p)
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		unsigned char fresh[SALT_LEN];
		char *tmp = plumb_asprintf("%s.%d", p, (int)getpid());
		int w = -1;
		if (tmp && plumb_random_bytes(fresh, sizeof(fresh)) == 0 &&
		    (w = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0 &&
		    write(w, fresh, sizeof(fresh)) == (ssize_t)sizeof(fresh) && close(w) == 0) {
			w = -1;
			/* link, not rename: a salt another process made first wins */
			if (link(tmp, p) < 0 && errno != EEXIST)
				error = plumb_error_set(PLUMB_EIO, "source: cannot create %s: %s", p, strerror(errno));
		} else if (!error) {
			error = plumb_error_set(PLUMB_EIO, "source: cannot create %s: %s", p, strerror(errno));
		}
		if (w >= 0)
			close(w);
		if (tmp)
			unlink(tmp);
		free(tmp);
		OPENSSL_cleanse(fresh, sizeof(fresh));
		if (!error)
			fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (!error && (fd < 0 || read(fd, salt, SALT_LEN) != SALT_LEN))
		error = plumb_error_set(PLUMB_EIO, "source: cannot read %s", p);
	if (fd >= 0)
		close(fd);
	free(p);
	return error;
}

int source_cache_new(source_cache **out, const char *dir)
{
	source_cache *c = NULL;
	int error;

	if (!out || !dir || !*dir)
		return plumb_error_set(PLUMB_EINVALID, "source: cache directory not given");
	if ((error = source_init()) < 0)
		return error;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return plumb_error_set(PLUMB_EIO, "source: cannot create cache %s: %s", dir, strerror(errno));
	c = calloc(1, sizeof(*c));
	if (!c || !(c->dir = plumb_strdup(dir))) {
		free(c);
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	}
	if ((error = load_salt(c->salt, dir)) < 0) {
		free(c->dir);
		free(c);
		return error;
	}
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void source_cache_free(source_cache *cache)
{
	url_lock *l, *next;

	if (!cache)
		return;
	for (l = cache->locks; l; l = next) {
		next = l->next;
		pthread_mutex_destroy(&l->mu);
		free(l);
	}
	pthread_mutex_destroy(&cache->mu);
	OPENSSL_cleanse(cache->salt, sizeof(cache->salt));
	free(cache->dir);
	free(cache);
}

void source_credentials_digest(char out[65], const unsigned char *salt, size_t saltlen,
	const source_credentials *creds)
{
	/* every field, each with its name and length, so no two different sets
	 * of values hash alike; the CA bundle and known_hosts too: they decide
	 * whose content a fetch accepts as much as the secrets do */
	const char *names[] = { "username", "password", "bearerToken", "identity", "known_hosts", "caFile" };
	const char *vals[6] = { 0 };
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int any = 0;
	if (creds) {
		vals[0] = creds->username, vals[1] = creds->password, vals[2] = creds->bearer_token;
		vals[3] = creds->identity, vals[4] = creds->known_hosts, vals[5] = creds->ca_file;
	}
	for (size_t i = 0; i < 6; i++)
		any |= vals[i] != NULL;
	out[0] = '\0';
	if (!any)
		return;
	/* HMAC(salt, sha256(fields)): the fields are streamed, not copied */
	unsigned char inner[32];
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL))
		goto fail;
	EVP_DigestUpdate(h, "plumb-git-credentials-v1", 25);
	for (size_t i = 0; i < 6; i++) {
		unsigned char len[9];
		uint64_t n = vals[i] ? strlen(vals[i]) : 0;
		len[0] = vals[i] ? 1 : 0;
		for (int b = 0; b < 8; b++)
			len[1 + b] = (unsigned char)(n >> (8 * b));
		EVP_DigestUpdate(h, names[i], strlen(names[i]) + 1);
		EVP_DigestUpdate(h, len, sizeof(len));
		if (vals[i])
			EVP_DigestUpdate(h, vals[i], n);
	}
	if (!EVP_DigestFinal_ex(h, inner, &mdlen) || mdlen != 32 ||
	    !HMAC(EVP_sha256(), salt, (int)saltlen, inner, sizeof(inner), md, &mdlen) || mdlen != 32)
		goto fail;
	EVP_MD_CTX_free(h);
	plumb_hex_encode(out, md, 32);
	OPENSSL_cleanse(md, sizeof(md));
	OPENSSL_cleanse(inner, sizeof(inner));
	return;
fail:
	EVP_MD_CTX_free(h);
	/* never the anonymous mirror: a mirror nobody else can name */
	snprintf(out, 65, "%s", "unusable");
}

void source_credentials_id(char out[65], const source_cache *cache, const source_credentials *creds)
{
	source_credentials_digest(out, cache->salt, sizeof(cache->salt), creds);
}

int source_url_is_local(const char *url)
{
	return url && (!strncmp(url, "file://", 7) || url[0] == '/');
}

void source_mirror_key(char out[65], const char *url, const char *cred_id)
{
	if (!cred_id || !*cred_id) {
		plumb_sha256_hex(out, url, strlen(url));
		return;
	}
	size_t ul = strlen(url), cl = strlen(cred_id);
	char *k = malloc(ul + 1 + cl);
	if (!k) {
		snprintf(out, 65, "%s", "unusable");
		return;
	}
	memcpy(k, url, ul);
	k[ul] = '\n';
	memcpy(k + ul + 1, cred_id, cl);
	plumb_sha256_hex(out, k, ul + 1 + cl);
	free(k);
}

static char *mirror_path(const source_cache *cache, const char *url, const char *cred_id)
{
	char key[65];
	source_mirror_key(key, url, cred_id);
	return plumb_asprintf("%s/%.32s.git", cache->dir, key);
}

static url_lock *url_lock_acquire(source_cache *cache, const char *url, const char *cred_id)
{
	char key[65];
	url_lock *l;

	source_mirror_key(key, url, cred_id);
	pthread_mutex_lock(&cache->mu);
	for (l = cache->locks; l; l = l->next)
		if (!strcmp(l->key, key))
			break;
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l) {
			pthread_mutex_unlock(&cache->mu);
			return NULL;
		}
		memcpy(l->key, key, sizeof(key));
		pthread_mutex_init(&l->mu, NULL);
		l->next = cache->locks;
		cache->locks = l;
	}
	l->refs++;
	pthread_mutex_unlock(&cache->mu);
	pthread_mutex_lock(&l->mu);
	return l;
}

static void url_lock_release(source_cache *cache, url_lock *l)
{
	url_lock **pp;

	pthread_mutex_unlock(&l->mu);
	pthread_mutex_lock(&cache->mu);
	if (--l->refs == 0) {
		for (pp = &cache->locks; *pp; pp = &(*pp)->next)
			if (*pp == l) {
				*pp = l->next;
				break;
			}
		pthread_mutex_destroy(&l->mu);
		free(l);
	}
	pthread_mutex_unlock(&cache->mu);
}

static int open_mirror(git_repository **out, source_cache *cache, const char *url, const char *cred_id)
{
	char shown[URL_SHOW];
	char *path;
	int error;

	if (!cache || !url)
		return plumb_error_set(PLUMB_EINVALID, "source: bad arguments");
	if (!(path = mirror_path(cache, url, cred_id)))
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	error = git_repository_open_bare(out, path);
	free(path);
	if (error < 0) {
		source_url_redact(shown, sizeof(shown), url);
		return plumb_error_set(PLUMB_ENOTFOUND, "source: no mirror of %s: fetch it first", shown);
	}
	return 0;
}

/* ---- the fetch ---------------------------------------------------------------- */

typedef struct {
	pthread_t target;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	double deadline;
	atomic_int fired;
	pid_t tid;
} watchdog;

typedef struct {
	const source_credentials *creds;
	url_info url;
	const char *shown;
	watchdog *wd;
	X509_STORE *ca;
	char *keyfile;
	int key_tries;
	int pass_tries;
	int failed_code;          /* a callback's verdict, PLUMB_E* */
	char failed_msg[512];
	unsigned updated_refs;
	size_t max_bytes;         /* pack bytes the server may send */
} fetch_ctx;

/* Reads the system call thread tid is blocked in from /proc: 1 and its
 * number and first two arguments, or 0 (running, or /proc unreadable). */
static int blocked_syscall(pid_t tid, long *nr, unsigned long *a0, unsigned long *a1)
{
	char path[64], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return sscanf(buf, "%ld %lx %lx", nr, a0, a1) == 3;
}

static void shutdown_if_socket(int fd)
{
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
		shutdown(fd, SHUT_RDWR);
}

/* Past the deadline a signal is not always enough: libgit2 1.5 retries
 * libssh2's handshake when its poll() is interrupted. So the socket the
 * fetching thread waits on is shut down, which every layer sees as the
 * peer going away. The fd comes from the thread's blocked system call
 * (poll's pollfd array lives on that thread's stack, which stays mapped
 * until source_fetch returns); the call is read twice and used only when
 * unchanged, so a thread that moved on is left alone. */
static void watchdog_unblock(watchdog *wd)
{
	long nr = -1, nr2 = -1;
	unsigned long a0 = 0, a1 = 0, b0 = 0, b1 = 0;
	int fds[4], nfds = 0;

	if (!blocked_syscall(wd->tid, &nr, &a0, &a1))
		return;
	switch (nr) {
	case SYS_poll:
	case SYS_ppoll: {
		const struct pollfd *pf = (const struct pollfd *)a0;
		for (unsigned long i = 0; pf && i < a1 && i < 4; i++)
			fds[nfds++] = pf[i].fd;
		break;
	}
	case SYS_read:
	case SYS_write:
	case SYS_recvfrom:
	case SYS_sendto:
	case SYS_recvmsg:
	case SYS_sendmsg:
	case SYS_connect:
		fds[nfds++] = (int)a0;
		break;
	default:
		return;
	}
	if (!blocked_syscall(wd->tid, &nr2, &b0, &b1) || nr2 != nr || b0 != a0 || b1 != a1)
		return;
	for (int i = 0; i < nfds; i++)
		shutdown_if_socket(fds[i]);
}

static void *watchdog_run(void *arg)
{
	watchdog *wd = arg;
	struct timespec ts;

	pthread_mutex_lock(&wd->mu);
	while (!wd->done) {
		double now = plumb_time_mono(), wake;
		if (now >= wd->deadline) {
			atomic_store(&wd->fired, 1);
			watchdog_unblock(wd);
			pthread_kill(wd->target, SOURCE_SIGNAL);
			wake = now + 0.1;
		} else {
			wake = wd->deadline;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		{
			double d = wake - now;
			ts.tv_sec += (time_t)d;
			ts.tv_nsec += (long)((d - (double)(time_t)d) * 1e9);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
		}
		pthread_cond_timedwait(&wd->cv, &wd->mu, &ts);
	}
	pthread_mutex_unlock(&wd->mu);
	return NULL;
}

static int ctx_fail(fetch_ctx *ctx, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ctx_fail(fetch_ctx *ctx, int code, const char *fmt, ...)
{
	va_list ap;

	if (!ctx->failed_code) {
		ctx->failed_code = code;
		va_start(ap, fmt);
		vsnprintf(ctx->failed_msg, sizeof(ctx->failed_msg), fmt, ap);
		va_end(ap);
	}
	return code == PLUMB_EAUTH ? GIT_EAUTH : GIT_ECERTIFICATE;
}

static int cb_credentials(git_credential **out, const char *url,
	const char *username_from_url, unsigned int allowed, void *payload)
{
	fetch_ctx *ctx = payload;
	const source_credentials *c = ctx->creds;
	const char *user;
	int error;

	(void)url;
	if (atomic_load(&ctx->wd->fired))
		return GIT_EUSER;
	user = username_from_url && *username_from_url ? username_from_url :
		(c && c->username ? c->username : "git");

	if (allowed & (GIT_CREDENTIAL_SSH_KEY | GIT_CREDENTIAL_SSH_MEMORY)) {
		if (!c || !c->identity)
			return ctx_fail(ctx, PLUMB_EAUTH, "ssh authentication to %s needs a private key (identity)", ctx->shown);
		if (ctx->key_tries++ > 0)
			return ctx_fail(ctx, PLUMB_EAUTH, "ssh authentication to %s failed: the server refused the key", ctx->shown);
		error = git_credential_ssh_key_memory_new(out, user, NULL, c->identity, c->password);
		if (error < 0) {
			/* libssh2 without in-memory keys: a private 0600 file, removed after the fetch */
			if (!ctx->keyfile) {
				int fd;
				size_t len = strlen(c->identity);
				char *tmpl = plumb_asprintf("%s", "/tmp/plumb-key-XXXXXX");
				if (!tmpl)
					return ctx_fail(ctx, PLUMB_EAUTH, "out of memory");
				fd = mkstemp(tmpl);
				if (fd < 0 || write(fd, c->identity, len) != (ssize_t)len) {
					if (fd >= 0) {
						close(fd);
						unlink(tmpl);
					}
					free(tmpl);
					return ctx_fail(ctx, PLUMB_EAUTH, "cannot write the private key to a temporary file");
				}
				close(fd);
				ctx->keyfile = tmpl;
			}
			error = git_credential_ssh_key_new(out, user, NULL, ctx->keyfile, c->password);
		}
		return error;
	}
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user);
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		if (c && c->bearer_token)
			return ctx_fail(ctx, PLUMB_EAUTH, "authentication to %s failed: the bearer token was rejected", ctx->shown);
		if (!c || !c->username || !c->password)
			return ctx_fail(ctx, PLUMB_EAUTH, "authentication to %s failed: the server wants credentials and none were given", ctx->shown);
		if (ctx->pass_tries++ > 0)
			return ctx_fail(ctx, PLUMB_EAUTH, "authentication to %s failed: username/password rejected", ctx->shown);
		return git_credential_userpass_plaintext_new(out, c->username, c->password);
	}
	return ctx_fail(ctx, PLUMB_EAUTH, "authentication to %s failed: unsupported method asked by the server", ctx->shown);
}

static const char *ssh_keytype(git_cert_ssh_raw_type_t t)
{
	switch (t) {
	case GIT_CERT_SSH_RAW_TYPE_RSA: return "ssh-rsa";
	case GIT_CERT_SSH_RAW_TYPE_DSS: return "ssh-dss";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256: return "ecdsa-sha2-nistp256";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384: return "ecdsa-sha2-nistp384";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521: return "ecdsa-sha2-nistp521";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519: return "ssh-ed25519";
	default: return NULL;
	}
}

static void ssh_fingerprint(char *out, size_t outlen, const unsigned char *key, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *b64 = NULL;
	size_t n;

	SHA256(key, len, md);
	if (plumb_base64_encode(&b64, md, sizeof(md)) < 0) {
		snprintf(out, outlen, "SHA256:?");
		return;
	}
	n = strlen(b64);
	while (n && b64[n - 1] == '=')
		b64[--n] = '\0';
	snprintf(out, outlen, "SHA256:%s", b64);
	free(b64);
}

static int check_ssh_host(fetch_ctx *ctx, git_cert_hostkey *hk)
{
	const char *type;
	char fp[80], name[300];
	source_hostkey_result r;

	if (!(hk->type & GIT_CERT_SSH_RAW) || !(type = ssh_keytype(hk->raw_type)))
		return ctx_fail(ctx, PLUMB_EHOSTKEY, "ssh host key of %s: key type not supported", ctx->shown);
	ssh_fingerprint(fp, sizeof(fp), (const unsigned char *)hk->hostkey, hk->hostkey_len);
	if (ctx->url.port == 22)
		snprintf(name, sizeof(name), "%s", ctx->url.host);
	else
		snprintf(name, sizeof(name), "[%s]:%d", ctx->url.host, ctx->url.port);
	if (!ctx->creds || !ctx->creds->known_hosts)
		return ctx_fail(ctx, PLUMB_EHOSTKEY,
			"ssh host key of %s is unknown: no known_hosts given (%s %s)", name, type, fp);
	r = source_known_hosts_check(ctx->creds->known_hosts, ctx->url.host, ctx->url.port,
		type, (const unsigned char *)hk->hostkey, hk->hostkey_len);
	switch (r) {
	case SOURCE_HOSTKEY_OK:
		return 0;
	case SOURCE_HOSTKEY_CHANGED:
		return ctx_fail(ctx, PLUMB_EHOSTKEY,
			"ssh host key of %s has CHANGED: known_hosts has another %s key, the server offers %s",
			name, type, fp);
	case SOURCE_HOSTKEY_REVOKED:
		return ctx_fail(ctx, PLUMB_EHOSTKEY, "ssh host key of %s is revoked in known_hosts (%s %s)",
			name, type, fp);
	default:
		return ctx_fail(ctx, PLUMB_EHOSTKEY, "ssh host key of %s is unknown: not in known_hosts (%s %s)",
			name, type, fp);
	}
}

static int is_ip_literal(const char *host)
{
	return strspn(host, "0123456789.") == strlen(host) || strchr(host, ':') != NULL;
}

static int check_x509(fetch_ctx *ctx, git_cert_x509 *cert, const char *host)
{
	const unsigned char *p = cert->data;
	X509 *x = NULL;
	X509_STORE_CTX *sc = NULL;
	X509_VERIFY_PARAM *param;
	int ok = 0, verr = 0;

	x = d2i_X509(NULL, &p, (long)cert->len);
	if (!x || !(sc = X509_STORE_CTX_new()) || X509_STORE_CTX_init(sc, ctx->ca, x, NULL) != 1)
		goto cleanup;
	param = X509_STORE_CTX_get0_param(sc);
	X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
	if (is_ip_literal(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1 :
		X509_VERIFY_PARAM_set1_host(param, host, 0) != 1)
		goto cleanup;
	ok = X509_verify_cert(sc) == 1;
	if (!ok)
		verr = X509_STORE_CTX_get_error(sc);
cleanup:
	X509_STORE_CTX_free(sc);
	X509_free(x);
	if (ok)
		return 0;
	return ctx_fail(ctx, PLUMB_ETLS, "TLS verification of %s failed: %s (checked against the given caFile)",
		ctx->shown, verr ? X509_verify_cert_error_string(verr) : "unreadable certificate");
}

static int cb_certificate(git_cert *cert, int valid, const char *host, void *payload)
{
	fetch_ctx *ctx = payload;

	if (atomic_load(&ctx->wd->fired))
		return GIT_EUSER;
	if (cert->cert_type == GIT_CERT_HOSTKEY_LIBSSH2)
		return check_ssh_host(ctx, (git_cert_hostkey *)cert);
	if (cert->cert_type == GIT_CERT_X509) {
		if (ctx->ca)
			return check_x509(ctx, (git_cert_x509 *)cert, host);
		if (valid)
			return 0;
		return ctx_fail(ctx, PLUMB_ETLS,
			"TLS verification of %s failed: certificate not trusted by the system store (no caFile given)",
			ctx->shown);
	}
	return valid ? 0 : ctx_fail(ctx, PLUMB_ETLS, "certificate of %s not trusted", ctx->shown);
}

static int cb_transfer(const git_indexer_progress *stats, void *payload)
{
	fetch_ctx *ctx = payload;
	if (ctx->max_bytes && stats->received_bytes > ctx->max_bytes) {
		/* Stops the download here: nothing past the cap is received. */
		if (!ctx->failed_code) {
			ctx->failed_code = PLUMB_ETOOBIG;
			snprintf(ctx->failed_msg, sizeof(ctx->failed_msg),
				"fetch of %s stopped: the server sent more than %zu bytes (the fetch cap)",
				ctx->shown, ctx->max_bytes);
		}
		return -1;
	}
	return atomic_load(&ctx->wd->fired) ? -1 : 0;
}

static int cb_sideband(const char *str, int len, void *payload)
{
	fetch_ctx *ctx = payload;
	(void)str;
	(void)len;
	return atomic_load(&ctx->wd->fired) ? -1 : 0;
}

static int cb_update_tips(const char *refname, const git_oid *a, const git_oid *b, void *payload)
{
	fetch_ctx *ctx = payload;
	(void)refname;
	(void)a;
	(void)b;
	ctx->updated_refs++;
	return 0;
}

static int load_ca(X509_STORE **out, const char *pem)
{
	X509_STORE *store = NULL;
	BIO *bio = NULL;
	X509 *x;
	int n = 0, error = 0;

	if (!(store = X509_STORE_new()) || !(bio = BIO_new_mem_buf(pem, -1))) {
		error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		goto cleanup;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509_STORE_add_cert(store, x);
		X509_free(x);
		n++;
	}
	if (!n) {
		error = plumb_error_set(PLUMB_EINVALID, "source: caFile holds no PEM certificate");
		goto cleanup;
	}
	*out = store;
	store = NULL;
cleanup:
	BIO_free(bio);
	X509_STORE_free(store);
	return error;
}

/* Maps a failed git_remote_fetch to a PLUMB_E* code and message. */
static int fetch_error(fetch_ctx *ctx, int gerr, double timeout)
{
	const git_error *e = git_error_last();
	const char *m = git_msg();

	if (atomic_load(&ctx->wd->fired))
		return plumb_error_set(PLUMB_ETIMEOUT, "source: fetch of %s timed out after %gs", ctx->shown, timeout);
	if (ctx->failed_code)
		return plumb_error_set(ctx->failed_code, "source: %s", ctx->failed_msg);
	if (gerr == GIT_EAUTH || strstr(m, "status code: 401") || strstr(m, "authentication replays") ||
		(e && e->klass == GIT_ERROR_SSH && strstr(m, "authenticat")))
		return plumb_error_set(PLUMB_EAUTH, "source: authentication to %s failed", ctx->shown);
	if (gerr == GIT_ECERTIFICATE || (e && e->klass == GIT_ERROR_SSL))
		return plumb_error_set(PLUMB_ETLS, "source: TLS with %s failed: %s", ctx->shown, m);
	if (strstr(m, "failed to resolve address") || strstr(m, "failed to connect") ||
		strstr(m, "Failed to connect") || strstr(m, "failed to start SSH session"))
		return plumb_error_set(PLUMB_EUNREACHABLE, "source: %s is unreachable: %s", ctx->shown, m);
	if (strstr(m, "status code: 404") || strstr(m, "could not find repository") ||
		strstr(m, "not appear to be a git repository") || strstr(m, "not found"))
		return plumb_error_set(PLUMB_ENOTFOUND, "source: repository %s not found: %s", ctx->shown, m);
	if (strstr(m, "status code: 5"))
		return plumb_error_set(PLUMB_EUNAVAILABLE, "source: %s: %s", ctx->shown, m);
	if (e && (e->klass == GIT_ERROR_NET || e->klass == GIT_ERROR_SSH || e->klass == GIT_ERROR_HTTP))
		return plumb_error_set(PLUMB_EUNAVAILABLE, "source: fetch of %s failed: %s", ctx->shown, m);
	return plumb_error_set(PLUMB_ERROR, "source: fetch of %s failed: %s", ctx->shown, m);
}

/* Refuses what would put a credential on the wire in clear or in a URL. */
static int check_fetch_input(const url_info *u, const source_credentials *c, const char *shown)
{
	if (u->has_password)
		return plumb_error_set(PLUMB_EINVALID,
			"source: %s carries a password in the URL: put it in the Secret", shown);
	if (!c)
		return 0;
	if (u->scheme == SCHEME_HTTP && (c->password || c->bearer_token))
		return plumb_error_set(PLUMB_EINVALID,
			"source: refusing to send credentials to %s over plain http", shown);
	if ((u->scheme == SCHEME_HTTPS || u->scheme == SCHEME_HTTP) && c->bearer_token && c->password)
		return plumb_error_set(PLUMB_EINVALID,
			"source: the Secret for %s has both bearerToken and password: keep one", shown);
	return 0;
}

int source_fetch(source_fetch_stats *stats, source_cache *cache, const char *url,
	const source_credentials *creds, double timeout)
{
	return source_fetch_ref(stats, cache, url, creds, timeout, NULL);
}

int source_fetch_ref(source_fetch_stats *stats, source_cache *cache, const char *url,
	const source_credentials *creds, double timeout, const source_fetch_opts *fopts)
{
	static const char *all_specs[] = { "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*" };
	char *one_spec[1] = { NULL };
	git_strarray refspecs = { (char **)all_specs, 2 };
	char cred_id[65];
	git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
	git_repository *repo = NULL;
	git_remote *remote = NULL;
	fetch_ctx ctx;
	watchdog wd;
	pthread_t wd_thread;
	pthread_condattr_t ca;
	sigset_t sig, oldsig;
	int wd_started = 0, error = 0, gerr;
	char shown[URL_SHOW], *path = NULL, *header = NULL;
	char *headers[1];
	url_lock *lock = NULL;
	int lockfd = -1;
	double t0 = plumb_time_mono();
	const git_indexer_progress *st;

	memset(&ctx, 0, sizeof(ctx));
	memset(&wd, 0, sizeof(wd));
	if (!cache || !url || !*url)
		return plumb_error_set(PLUMB_EINVALID, "source: fetch: bad arguments");
	ctx.max_bytes = fopts && fopts->max_bytes ? fopts->max_bytes : SOURCE_DEFAULT_FETCH_MAX;
	if (fopts && fopts->ref && (fopts->kind == SOURCE_REF_BRANCH || fopts->kind == SOURCE_REF_TAG)) {
		/* Only the ref this GitSync needs: a tenant's other branches (or a
		 * huge one) never come over the wire for it. */
		const char *pfx = fopts->kind == SOURCE_REF_BRANCH ? "refs/heads/" : "refs/tags/";
		char *name = plumb_asprintf("%s%s", pfx, fopts->ref);
		int valid = 0;
		if (!name)
			return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		if (git_reference_name_is_valid(&valid, name) < 0 || !valid || strchr(fopts->ref, '*')) {
			free(name);
			return plumb_error_set(PLUMB_EINVALID, "source: \"%.200s\" is not a valid %s name", fopts->ref,
				fopts->kind == SOURCE_REF_BRANCH ? "branch" : "tag");
		}
		one_spec[0] = plumb_asprintf("+%s:%s", name, name);
		free(name);
		if (!one_spec[0])
			return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		refspecs.strings = one_spec;
		refspecs.count = 1;
	}
	if (timeout <= 0)
		timeout = SOURCE_DEFAULT_TIMEOUT;
	source_url_redact(shown, sizeof(shown), url);
	ctx.creds = creds;
	ctx.shown = shown;
	ctx.wd = &wd;
	if ((error = url_parse(&ctx.url, url)) < 0 || (error = check_fetch_input(&ctx.url, creds, shown)) < 0) {
		free(one_spec[0]);
		return error;
	}
	if (creds && creds->ca_file && ctx.url.scheme == SCHEME_HTTPS &&
		(error = load_ca(&ctx.ca, creds->ca_file)) < 0)
		goto cleanup;

	source_credentials_id(cred_id, cache, creds);
	if (!(lock = url_lock_acquire(cache, url, cred_id))) {
		error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		goto cleanup;
	}
	if (!(path = mirror_path(cache, url, cred_id))) {
		error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		goto cleanup;
	}
	{
		/* another process sharing the cache */
		char *lp = plumb_asprintf("%s.lock", path);
		if (!lp) {
			error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
			goto cleanup;
		}
		lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		free(lp);
		if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
			error = plumb_error_set(PLUMB_EIO, "source: cannot lock the mirror of %s: %s", shown, strerror(errno));
			goto cleanup;
		}
	}
	if (git_repository_open_bare(&repo, path) < 0 && git_repository_init(&repo, path, 1) < 0) {
		error = plumb_error_set(PLUMB_EIO, "source: cannot create the mirror of %s: %s", shown, git_msg());
		goto cleanup;
	}
	if (git_remote_create_anonymous(&remote, repo, url) < 0) {
		error = plumb_error_set(PLUMB_EINVALID, "source: bad remote %s: %s", shown, git_msg());
		goto cleanup;
	}

	opts.callbacks.credentials = cb_credentials;
	opts.callbacks.certificate_check = cb_certificate;
	opts.callbacks.transfer_progress = cb_transfer;
	opts.callbacks.sideband_progress = cb_sideband;
	opts.callbacks.update_tips = cb_update_tips;
	opts.callbacks.payload = &ctx;
	opts.prune = GIT_FETCH_PRUNE;
	opts.update_fetchhead = 0;
	opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	opts.follow_redirects = GIT_REMOTE_REDIRECT_NONE; /* credentials stay with the host they are for */
	if (creds && creds->bearer_token &&
		(ctx.url.scheme == SCHEME_HTTPS || ctx.url.scheme == SCHEME_HTTP)) {
		if (!(header = plumb_asprintf("Authorization: Bearer %s", creds->bearer_token))) {
			error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
			goto cleanup;
		}
		headers[0] = header;
		opts.custom_headers.strings = headers;
		opts.custom_headers.count = 1;
	}

	/* the watchdog */
	wd.target = pthread_self();
	wd.tid = (pid_t)syscall(SYS_gettid);
	wd.deadline = t0 + timeout;
	pthread_mutex_init(&wd.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wd.cv, &ca);
	pthread_condattr_destroy(&ca);
	sigemptyset(&sig);
	sigaddset(&sig, SOURCE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &sig, &oldsig);
	if (pthread_create(&wd_thread, NULL, watchdog_run, &wd) != 0) {
		pthread_sigmask(SIG_SETMASK, &oldsig, NULL);
		error = plumb_error_set(PLUMB_ERROR, "source: cannot start the fetch watchdog");
		goto cleanup;
	}
	wd_started = 1;

	gerr = git_remote_fetch(remote, &refspecs, &opts, NULL);

	pthread_mutex_lock(&wd.mu);
	wd.done = 1;
	pthread_cond_signal(&wd.cv);
	pthread_mutex_unlock(&wd.mu);
	pthread_join(wd_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &oldsig, NULL);

	if (gerr < 0) {
		error = fetch_error(&ctx, gerr, timeout);
		plumb_warn("source: fetch failed", "url", shown, "code", plumb_strerror(error),
			"error", plumb_error_last());
		goto cleanup;
	}
	st = git_remote_stats(remote);
	if (stats) {
		memset(stats, 0, sizeof(*stats));
		stats->received_objects = st->received_objects;
		stats->total_objects = st->total_objects;
		stats->local_objects = st->local_objects;
		stats->received_bytes = st->received_bytes;
		stats->updated_refs = ctx.updated_refs;
		stats->seconds = plumb_time_mono() - t0;
	}
	if (plumb_log_enabled(PLUMB_LOG_DEBUG)) {
		char objs[32], refs[32], secs[32];
		snprintf(objs, sizeof(objs), "%u", st->received_objects);
		snprintf(refs, sizeof(refs), "%u", ctx.updated_refs);
		snprintf(secs, sizeof(secs), "%.3f", plumb_time_mono() - t0);
		plumb_debug("source: fetched", "url", shown, "objects", objs, "updatedRefs", refs, "seconds", secs);
	}
cleanup:
	if (wd_started) {
		pthread_cond_destroy(&wd.cv);
		pthread_mutex_destroy(&wd.mu);
	}
	if (ctx.keyfile) {
		unlink(ctx.keyfile);
		free(ctx.keyfile);
	}
	wipe_free(header);
	git_remote_free(remote);
	git_repository_free(repo);
	if (lockfd >= 0)
		close(lockfd); /* drops the flock */
	if (lock)
		url_lock_release(cache, lock);
	X509_STORE_free(ctx.ca);
	free(path);
	free(one_spec[0]);
	return error;
}

/* ---- refs ------------------------------------------------------------------ */

void source_commit_clear(source_commit *commit)
{
	if (!commit)
		return;
	free(commit->author_name);
	free(commit->author_email);
	free(commit->subject);
	memset(commit, 0, sizeof(*commit));
}

static int fill_commit(source_commit *out, git_commit *c)
{
	const git_signature *a = git_commit_author(c);
	const char *summary = git_commit_summary(c);
	source_commit r;

	memset(&r, 0, sizeof(r));
	git_oid_tostr(r.id, sizeof(r.id), git_commit_id(c));
	r.time = a ? (int64_t)a->when.time : 0;
	r.author_name = plumb_strdup(a && a->name ? a->name : "");
	r.author_email = plumb_strdup(a && a->email ? a->email : "");
	r.subject = plumb_strndup(summary ? summary : "", 1024);
	if (!r.author_name || !r.author_email || !r.subject) {
		source_commit_clear(&r);
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	}
	*out = r;
	return 0;
}

/* 1 when some branch or tag of the mirror reaches id, 0 when none, < 0 on error. */
static int reachable(git_repository *repo, const git_oid *id)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	git_object *peeled = NULL;
	git_oid *tips = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (git_reference_iterator_new(&it, repo) < 0) {
		r = plumb_error_set(PLUMB_ERROR, "source: cannot list refs: %s", git_msg());
		goto cleanup;
	}
	while (git_reference_next(&ref, it) == 0) {
		const char *name = git_reference_name(ref);
		if ((!strncmp(name, "refs/heads/", 11) || !strncmp(name, "refs/tags/", 10)) &&
			git_reference_peel(&peeled, ref, GIT_OBJECT_COMMIT) == 0) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				git_oid *t = realloc(tips, ncap * sizeof(*t));
				if (!t) {
					r = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
					goto cleanup;
				}
				tips = t;
				cap = ncap;
			}
			git_oid_cpy(&tips[n++], git_object_id(peeled));
			git_object_free(peeled);
			peeled = NULL;
		}
		git_reference_free(ref);
		ref = NULL;
	}
	if (!n)
		goto cleanup;
	r = git_graph_reachable_from_any(repo, id, tips, n);
	if (r < 0)
		r = plumb_error_set(PLUMB_ERROR, "source: reachability check failed: %s", git_msg());
cleanup:
	git_object_free(peeled);
	git_reference_free(ref);
	git_reference_iterator_free(it);
	free(tips);
	return r;
}

int source_resolve(source_commit *out, source_cache *cache, const char *url, const char *cred_id,
	source_ref_kind kind, const char *name)
{
	git_repository *repo = NULL;
	git_reference *ref = NULL;
	git_object *obj = NULL;
	char shown[URL_SHOW], *full = NULL;
	int error = 0, valid = 0;

	if (!out || !name || !*name || strlen(name) > 1024)
		return plumb_error_set(PLUMB_EINVALID, "source: resolve: bad arguments");
	if ((error = open_mirror(&repo, cache, url, cred_id)) < 0)
		return error;
	source_url_redact(shown, sizeof(shown), url);

	if (kind == SOURCE_REF_BRANCH || kind == SOURCE_REF_TAG) {
		const char *what = kind == SOURCE_REF_BRANCH ? "branch" : "tag";
		full = plumb_asprintf("refs/%s/%s", kind == SOURCE_REF_BRANCH ? "heads" : "tags", name);
		if (!full) {
			error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
			goto cleanup;
		}
		if (git_reference_name_is_valid(&valid, full) < 0 || !valid) {
			error = plumb_error_set(PLUMB_EINVALID, "source: \"%.128s\" is not a valid %s name", name, what);
			goto cleanup;
		}
		if (git_reference_lookup(&ref, repo, full) < 0) {
			error = plumb_error_set(PLUMB_ENOTFOUND, "source: %s \"%.128s\" not found in %s", what, name, shown);
			goto cleanup;
		}
		if (git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT) < 0) {
			error = plumb_error_set(PLUMB_EINVALID, "source: %s \"%.128s\" does not point at a commit", what, name);
			goto cleanup;
		}
	} else if (kind == SOURCE_REF_COMMIT) {
		size_t len = strlen(name);
		git_oid oid;
		int r;
		if (len < 7 || len > GIT_OID_HEXSZ || strspn(name, "0123456789abcdefABCDEF") != len) {
			error = plumb_error_set(PLUMB_EINVALID,
				"source: commit \"%.64s\" is not a hex id of 7 to 40 digits", name);
			goto cleanup;
		}
		if (git_oid_fromstrn(&oid, name, len) < 0) {
			error = plumb_error_set(PLUMB_EINVALID, "source: bad commit id \"%.64s\"", name);
			goto cleanup;
		}
		r = git_object_lookup_prefix(&obj, repo, &oid, len, GIT_OBJECT_COMMIT);
		if (r == GIT_EAMBIGUOUS) {
			error = plumb_error_set(PLUMB_EINVALID, "source: commit prefix %s is ambiguous in %s", name, shown);
			goto cleanup;
		}
		if (r < 0) {
			error = plumb_error_set(PLUMB_ENOTFOUND, "source: commit %s not found in %s", name, shown);
			goto cleanup;
		}
		r = reachable(repo, git_object_id(obj));
		if (r < 0) {
			error = r;
			goto cleanup;
		}
		if (!r) {
			error = plumb_error_set(PLUMB_ESTALE,
				"source: commit %s of %s is no longer reachable from any branch or tag (history rewritten)",
				name, shown);
			goto cleanup;
		}
	} else {
		error = plumb_error_set(PLUMB_EINVALID, "source: unknown ref kind");
		goto cleanup;
	}
	error = fill_commit(out, (git_commit *)obj);
cleanup:
	git_object_free(obj);
	git_reference_free(ref);
	git_repository_free(repo);
	free(full);
	return error;
}

/* ---- reading ------------------------------------------------------------------ */

typedef struct {
	git_odb *odb;
	source_limits lim;
	source_file *items;
	size_t count, cap, total;
	int depth;
} read_ctx;

static int lookup_commit_tree(git_tree **out, git_repository *repo, const char *commit, const char *shown)
{
	git_oid oid;
	git_commit *c = NULL;
	int error;

	if (!commit || strlen(commit) != GIT_OID_HEXSZ || git_oid_fromstr(&oid, commit) < 0)
		return plumb_error_set(PLUMB_EINVALID, "source: \"%.64s\" is not a full commit id", commit ? commit : "");
	if (git_commit_lookup(&c, repo, &oid) < 0)
		return plumb_error_set(PLUMB_ENOTFOUND, "source: commit %s not found in %s", commit, shown);
	error = git_commit_tree(out, c);
	git_commit_free(c);
	if (error < 0)
		return plumb_error_set(PLUMB_ERROR, "source: commit %s has no readable tree: %s", commit, git_msg());
	return 0;
}

static int add_blob(read_ctx *rc, const char *path, const git_oid *oid)
{
	git_odb_object *obj = NULL;
	size_t size = 0;
	git_object_t type;
	source_file f = { NULL, NULL, 0 };
	int error = 0;

	if (git_odb_read_header(&size, &type, rc->odb, oid) < 0)
		return plumb_error_set(PLUMB_ERROR, "source: cannot read %s: %s", path, git_msg());
	if (size > rc->lim.max_file_size)
		return plumb_error_set(PLUMB_ETOOBIG, "source: file %s is %zu bytes, over the %zu-byte file size cap",
			path, size, rc->lim.max_file_size);
	if (rc->count + 1 > rc->lim.max_files)
		return plumb_error_set(PLUMB_ETOOBIG, "source: more than %zu files under path (file count cap)",
			rc->lim.max_files);
	if (rc->total + size > rc->lim.max_total_size)
		return plumb_error_set(PLUMB_ETOOBIG,
			"source: files under path add up to more than %zu bytes (total size cap), at %s",
			rc->lim.max_total_size, path);
	if (git_odb_read(&obj, rc->odb, oid) < 0)
		return plumb_error_set(PLUMB_ERROR, "source: cannot read %s: %s", path, git_msg());
	size = git_odb_object_size(obj);
	if (size > rc->lim.max_file_size) { /* the header lied */
		error = plumb_error_set(PLUMB_ETOOBIG, "source: file %s is over the file size cap", path);
		goto cleanup;
	}
	if (rc->count == rc->cap) {
		size_t ncap = rc->cap ? rc->cap * 2 : 64;
		source_file *t = realloc(rc->items, ncap * sizeof(*t));
		if (!t) {
			error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
			goto cleanup;
		}
		rc->items = t;
		rc->cap = ncap;
	}
	f.path = plumb_strdup(path);
	f.data = malloc(size + 1);
	if (!f.path || !f.data) {
		free(f.path);
		free(f.data);
		error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		goto cleanup;
	}
	memcpy(f.data, git_odb_object_data(obj), size);
	f.data[size] = '\0';
	f.len = size;
	rc->items[rc->count++] = f;
	rc->total += size;
cleanup:
	git_odb_object_free(obj);
	return error;
}

static int walk_tree(read_ctx *rc, git_repository *repo, git_tree *tree, const char *prefix)
{
	size_t n = git_tree_entrycount(tree);
	char path[SOURCE_PATH_MAX + 1];
	int error = 0;

	if (++rc->depth > SOURCE_TREE_DEPTH_MAX) {
		error = plumb_error_set(PLUMB_EINVALID, "source: folders under path nest deeper than %d",
			SOURCE_TREE_DEPTH_MAX);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(tree, i);
		const char *name = git_tree_entry_name(e);
		git_filemode_t mode = git_tree_entry_filemode(e);
		int len;

		if (name[0] == '.')
			continue;
		len = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "/" : "", name);
		if (len < 0 || (size_t)len >= sizeof(path)) {
			error = plumb_error_set(PLUMB_EINVALID, "source: a path under %.128s is over %d bytes",
				prefix, SOURCE_PATH_MAX);
			goto done;
		}
		switch (mode) {
		case GIT_FILEMODE_TREE: {
			git_tree *sub = NULL;
			if (git_tree_lookup(&sub, repo, git_tree_entry_id(e)) < 0) {
				error = plumb_error_set(PLUMB_ERROR, "source: cannot read folder %s: %s", path, git_msg());
				goto done;
			}
			error = walk_tree(rc, repo, sub, path);
			git_tree_free(sub);
			if (error < 0)
				goto done;
			break;
		}
		case GIT_FILEMODE_LINK:
			error = plumb_error_set(PLUMB_EINVALID, "source: %s is a symlink: symlinks under path are not followed", path);
			goto done;
		case GIT_FILEMODE_COMMIT:
			error = plumb_error_set(PLUMB_EINVALID, "source: %s is a submodule: submodules under path are not supported", path);
			goto done;
		default:
			if (source_path_is_manifest(name) && (error = add_blob(rc, path, git_tree_entry_id(e))) < 0)
				goto done;
			break;
		}
	}
done:
	rc->depth--;
	return error;
}

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const source_file *)a)->path, ((const source_file *)b)->path);
}

void source_files_free(source_files *files)
{
	if (!files)
		return;
	for (size_t i = 0; i < files->count; i++) {
		free(files->items[i].path);
		free(files->items[i].data);
	}
	free(files->items);
	free(files);
}

int source_read(source_files **out, source_cache *cache, const char *url, const char *cred_id,
	const char *commit, const char *path, const source_limits *limits)
{
	git_repository *repo = NULL;
	git_tree *root = NULL, *sub = NULL;
	git_tree_entry *entry = NULL;
	source_files *files = NULL;
	read_ctx rc;
	char shown[URL_SHOW], *norm = NULL;
	int error = 0;

	memset(&rc, 0, sizeof(rc));
	if (!out)
		return plumb_error_set(PLUMB_EINVALID, "source: read: bad arguments");
	rc.lim.max_file_size = limits && limits->max_file_size ? limits->max_file_size : SOURCE_DEFAULT_FILE_MAX;
	rc.lim.max_total_size = limits && limits->max_total_size ? limits->max_total_size : SOURCE_DEFAULT_TOTAL_MAX;
	rc.lim.max_files = limits && limits->max_files ? limits->max_files : SOURCE_DEFAULT_FILES_MAX;
	if ((error = source_path_normalize(&norm, path)) < 0)
		return error;
	if ((error = open_mirror(&repo, cache, url, cred_id)) < 0)
		goto cleanup;
	source_url_redact(shown, sizeof(shown), url);
	if ((error = lookup_commit_tree(&root, repo, commit, shown)) < 0)
		goto cleanup;
	if (git_repository_odb(&rc.odb, repo) < 0) {
		error = plumb_error_set(PLUMB_ERROR, "source: cannot open the object database: %s", git_msg());
		goto cleanup;
	}
	if (!*norm) {
		error = walk_tree(&rc, repo, root, "");
	} else {
		if (git_tree_entry_bypath(&entry, root, norm) < 0) {
			error = plumb_error_set(PLUMB_ENOTFOUND, "source: path \"%.256s\" not found at commit %.12s of %s",
				norm, commit, shown);
			goto cleanup;
		}
		switch (git_tree_entry_filemode(entry)) {
		case GIT_FILEMODE_TREE:
			if (git_tree_lookup(&sub, repo, git_tree_entry_id(entry)) < 0) {
				error = plumb_error_set(PLUMB_ERROR, "source: cannot read %s: %s", norm, git_msg());
				goto cleanup;
			}
			error = walk_tree(&rc, repo, sub, norm);
			break;
		case GIT_FILEMODE_LINK:
			error = plumb_error_set(PLUMB_EINVALID, "source: path %.256s is a symlink: not followed", norm);
			break;
		case GIT_FILEMODE_COMMIT:
			error = plumb_error_set(PLUMB_EINVALID, "source: path %.256s is a submodule: not supported", norm);
			break;
		default:
			if (!source_path_is_manifest(norm))
				error = plumb_error_set(PLUMB_EINVALID,
					"source: path %.256s is a file but not .yaml, .yml or .json", norm);
			else
				error = add_blob(&rc, norm, git_tree_entry_id(entry));
			break;
		}
	}
	if (error < 0)
		goto cleanup;
	if (rc.count > 1)
		qsort(rc.items, rc.count, sizeof(*rc.items), file_cmp);
	if (!(files = calloc(1, sizeof(*files)))) {
		error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		goto cleanup;
	}
	files->items = rc.items;
	files->count = rc.count;
	files->total_size = rc.total;
	rc.items = NULL;
	rc.count = 0;
	*out = files;
cleanup:
	for (size_t i = 0; i < rc.count; i++) {
		free(rc.items[i].path);
		free(rc.items[i].data);
	}
	free(rc.items);
	git_odb_free(rc.odb);
	git_tree_entry_free(entry);
	git_tree_free(sub);
	git_tree_free(root);
	git_repository_free(repo);
	free(norm);
	return error;
}

/* ---- change detection --------------------------------------------------------- */

static int relevant_delta_path(const char *path, uint16_t mode)
{
	if (mode == GIT_FILEMODE_LINK || mode == GIT_FILEMODE_COMMIT) {
		for (const char *p = path; p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
			if (*p == '.')
				return 0;
		return 1;
	}
	return source_path_is_manifest(path);
}

int source_changed(int *changed, source_cache *cache, const char *url, const char *cred_id,
	const char *old_commit, const char *new_commit, const char *path)
{
	git_repository *repo = NULL;
	git_tree *oldroot = NULL, *newroot = NULL, *oldt = NULL, *newt = NULL;
	git_tree_entry *olde = NULL, *newe = NULL;
	git_diff *diff = NULL;
	char shown[URL_SHOW], *norm = NULL;
	int error = 0, result = 1, r;

	if (!changed)
		return plumb_error_set(PLUMB_EINVALID, "source: changed: bad arguments");
	if ((error = source_path_normalize(&norm, path)) < 0)
		return error;
	if ((error = open_mirror(&repo, cache, url, cred_id)) < 0)
		goto cleanup;
	source_url_redact(shown, sizeof(shown), url);
	if ((error = lookup_commit_tree(&newroot, repo, new_commit, shown)) < 0)
		goto cleanup;
	r = lookup_commit_tree(&oldroot, repo, old_commit, shown);
	if (r == PLUMB_ENOTFOUND) {
		plumb_error_clear();
		goto done; /* nothing to compare with: changed */
	}
	if (r < 0) {
		error = r;
		goto cleanup;
	}
	if (!*norm) {
		oldt = oldroot;
		newt = newroot;
		oldroot = newroot = NULL;
	} else {
		int ro = git_tree_entry_bypath(&olde, oldroot, norm);
		int rn = git_tree_entry_bypath(&newe, newroot, norm);
		if (ro < 0 && rn < 0) {
			result = 0;
			goto done;
		}
		if (ro < 0 || rn < 0)
			goto done;
		if (!git_oid_cmp(git_tree_entry_id(olde), git_tree_entry_id(newe)) &&
			git_tree_entry_filemode(olde) == git_tree_entry_filemode(newe)) {
			result = 0;
			goto done;
		}
		if (git_tree_entry_filemode(olde) != GIT_FILEMODE_TREE ||
			git_tree_entry_filemode(newe) != GIT_FILEMODE_TREE)
			goto done; /* path is a file (or became one): its id changed */
		if (git_tree_lookup(&oldt, repo, git_tree_entry_id(olde)) < 0 ||
			git_tree_lookup(&newt, repo, git_tree_entry_id(newe)) < 0) {
			error = plumb_error_set(PLUMB_ERROR, "source: cannot read %s: %s", norm, git_msg());
			goto cleanup;
		}
	}
	if (!git_oid_cmp(git_tree_id(oldt), git_tree_id(newt))) {
		result = 0;
		goto done;
	}
	if (git_diff_tree_to_tree(&diff, repo, oldt, newt, NULL) < 0) {
		error = plumb_error_set(PLUMB_ERROR, "source: cannot compare trees: %s", git_msg());
		goto cleanup;
	}
	result = 0;
	for (size_t i = 0; i < git_diff_num_deltas(diff) && !result; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		if ((d->old_file.path && d->status != GIT_DELTA_ADDED &&
				relevant_delta_path(d->old_file.path, d->old_file.mode)) ||
			(d->new_file.path && d->status != GIT_DELTA_DELETED &&
				relevant_delta_path(d->new_file.path, d->new_file.mode)))
			result = 1;
	}
done:
	*changed = result;
cleanup:
	git_diff_free(diff);
	git_tree_entry_free(olde);
	git_tree_entry_free(newe);
	git_tree_free(oldt);
	git_tree_free(newt);
	git_tree_free(oldroot);
	git_tree_free(newroot);
	git_repository_free(repo);
	free(norm);
	return error;
}
