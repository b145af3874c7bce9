/*
 * pkg/source — mirrors, fetch, refs, reading trees. See source.h.
 *
 * This file holds the process-wide setup (libgit2, the fetch signal), the
 * small helpers every file of the module uses, URL redaction and the
 * path rules. The rest, by concern:
 *   credentials.c  Secret data -> credentials, their digest (the mirror id)
 *   known_hosts.c  OpenSSH known_hosts matching
 *   cache.c        the cache directory, its salt, mirrors and per-URL locks
 *   fetch.c        the fetch and its watchdog thread
 *   auth.c         what a fetch asks of the credentials: libgit2's credential
 *                  and certificate callbacks
 *   refs.c         branch, tag and commit resolution
 *   read.c         reading the manifests under a path at a commit
 *   changed.c      whether a path changed between two commits
 * internal.h declares what they share.
 *
 * Threads: source_init() runs source_global_init() once per process
 * (pthread_once); nothing else here keeps state.
 */
#include "source/internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

#include "base/base.h"

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

int source_init(void)
{
	pthread_once(&source_once, source_global_init);
	if (source_init_error)
		return plumb_error_set(PLUMB_ERROR, "source: libgit2 initialisation failed");
	return 0;
}

/* ---- small helpers -------------------------------------------------------- */

void source_wipe_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

const char *source_git_msg(void)
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
