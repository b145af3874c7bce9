/*
 * pkg/source: the fetch (source_fetch, source_fetch_ref) and its watchdog.
 *
 * Timeouts: libgit2 1.5 has no connect or read timeout of its own, and its
 * sockets (and libssh2's) block. Each fetch therefore runs with a watchdog
 * thread: past the deadline it sets a flag that every progress callback
 * turns into an abort, and interrupts the fetching thread's blocking system
 * call with SOURCE_SIGNAL (a no-op handler installed without SA_RESTART)
 * until the fetch returns; where libgit2 would retry an interrupted call
 * (the SSH handshake), it shuts down the socket the thread waits on (see
 * watchdog_unblock). Process-wide, pkg/source owns SIGRTMIN+5.
 *
 * Threads: the caller's thread runs the fetch and every libgit2 callback
 * (progress here, credentials and certificates in auth.c); one watchdog
 * thread per fetch runs watchdog_run(). wd->mu and wd->cv guard wd->done
 * (the fetch returned); wd->fired is atomic, set by the watchdog and read
 * by the callbacks. The mirror is held by its url_lock (cache.c) and an
 * flock on <mirror>.lock for the whole fetch.
 */
#include "source/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>

#include "base/base.h"

#define SOURCE_DEFAULT_TIMEOUT 120.0

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

/* Maps a failed git_remote_fetch to a PLUMB_E* code and message. */
static int fetch_error(fetch_ctx *ctx, int gerr, double timeout)
{
	const git_error *e = git_error_last();
	const char *m = source_git_msg();

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
		(error = source_load_ca(&ctx.ca, creds->ca_file)) < 0)
		goto cleanup;

	source_credentials_id(cred_id, cache, creds);
	if (!(lock = source_url_lock_acquire(cache, url, cred_id))) {
		error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		goto cleanup;
	}
	if (!(path = source_mirror_path(cache, url, cred_id))) {
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
		error = plumb_error_set(PLUMB_EIO, "source: cannot create the mirror of %s: %s", shown, source_git_msg());
		goto cleanup;
	}
	if (git_remote_create_anonymous(&remote, repo, url) < 0) {
		error = plumb_error_set(PLUMB_EINVALID, "source: bad remote %s: %s", shown, source_git_msg());
		goto cleanup;
	}

	opts.callbacks.credentials = source_cb_credentials;
	opts.callbacks.certificate_check = source_cb_certificate;
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
	source_wipe_free(header);
	git_remote_free(remote);
	git_repository_free(repo);
	if (lockfd >= 0)
		close(lockfd); /* drops the flock */
	if (lock)
		source_url_lock_release(cache, lock);
	X509_STORE_free(ctx.ca);
	free(path);
	free(one_spec[0]);
	return error;
}
