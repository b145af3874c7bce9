/*
 * pkg/source: the cache directory — its salt, the mirrors in it and the
 * per-URL locks that serialise fetches of one mirror.
 *
 * Locks: cache->mu guards the list of url_locks and their reference counts;
 * each url_lock's mu is held by the one thread fetching that mirror (taken
 * in source_url_lock_acquire, after cache->mu is dropped, so other URLs
 * fetch in parallel). Between processes sharing the cache, fetch.c adds an
 * flock on <mirror>.lock. Reads (refs, trees) open the mirror on their own
 * and take no lock.
 */
#include "source/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/base.h"

struct url_lock {
	char key[65];
	pthread_mutex_t mu;
	unsigned refs;
	struct url_lock *next;
};

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

char *source_mirror_path(const source_cache *cache, const char *url, const char *cred_id)
{
	char key[65];
	source_mirror_key(key, url, cred_id);
	return plumb_asprintf("%s/%.32s.git", cache->dir, key);
}

url_lock *source_url_lock_acquire(source_cache *cache, const char *url, const char *cred_id)
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

void source_url_lock_release(source_cache *cache, url_lock *l)
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

int source_open_mirror(git_repository **out, source_cache *cache, const char *url, const char *cred_id)
{
	char shown[URL_SHOW];
	char *path;
	int error;

	if (!cache || !url)
		return plumb_error_set(PLUMB_EINVALID, "source: bad arguments");
	if (!(path = source_mirror_path(cache, url, cred_id)))
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	error = git_repository_open_bare(out, path);
	free(path);
	if (error < 0) {
		source_url_redact(shown, sizeof(shown), url);
		return plumb_error_set(PLUMB_ENOTFOUND, "source: no mirror of %s: fetch it first", shown);
	}
	return 0;
}
