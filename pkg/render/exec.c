/*
 * pkg/render/exec.c — the sandbox's moving parts: the runner (fork + execve
 * into a process group of its own, rlimits, a scrubbed environment, capped
 * pipes, a wall-clock timeout that kills the group), the child's
 * environment, and the work directory (the revision materialised read-only,
 * removed whole afterwards). Runs on the caller's thread; keeps no state.
 */
#include "render/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"

#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_MAX_STDOUT ((size_t)64 * 1024 * 1024)
#define DEFAULT_MAX_STDERR ((size_t)64 * 1024)

/* ---- argv / envp vectors --------------------------------------------------- */

void render_argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

int strvec_push(strvec *v, char *s)
{
	if (!s)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (v->len + 2 > v->alloc) {
		size_t n = v->alloc ? v->alloc * 2 : 16;
		char **p = realloc(v->items, n * sizeof(*p));
		if (!p) {
			free(s);
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
		v->items = p;
		v->alloc = n;
	}
	v->items[v->len++] = s;
	v->items[v->len] = NULL;
	return 0;
}

char **strvec_detach(strvec *v)
{
	char **p = v->items;
	if (!p)
		p = calloc(1, sizeof(*p));
	v->items = NULL;
	v->len = v->alloc = 0;
	return p;
}

void strvec_free(strvec *v)
{
	render_argv_free(v->items);
	v->items = NULL;
	v->len = v->alloc = 0;
}

int render_env_build(char ***out, const char *home, size_t max_memory)
{
	strvec v = { 0 };
	int rc = 0;
	/* Every directory a tool may read configuration, plugins, credentials or
	 * caches from points into home, which is new and empty. */
	static const struct { const char *name, *sub; } dirs[] = {
		{ "HOME", "" },
		{ "TMPDIR", "/tmp" },
		{ "XDG_CACHE_HOME", "/.cache" },
		{ "XDG_CONFIG_HOME", "/.config" },
		{ "XDG_DATA_HOME", "/.local/share" },
		{ "HELM_CACHE_HOME", "/.cache/helm" },
		{ "HELM_CONFIG_HOME", "/.config/helm" },
		{ "HELM_DATA_HOME", "/.local/share/helm" },
		{ "HELM_PLUGINS", "/.local/share/helm/plugins" },
		{ "HELM_REPOSITORY_CONFIG", "/.config/helm/repositories.yaml" },
		{ "HELM_REPOSITORY_CACHE", "/.cache/helm/repository" },
		{ "HELM_REGISTRY_CONFIG", "/.config/helm/registry/config.json" },
		{ "KUBECONFIG", "/.kube/none" },
	};
	if ((rc = strvec_push(&v, plumb_strdup("PATH=/usr/bin:/bin"))))
		goto cleanup;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if ((rc = strvec_push(&v, plumb_asprintf("%s=%s%s", dirs[i].name, home, dirs[i].sub))))
			goto cleanup;
	if ((rc = strvec_push(&v, plumb_strdup("HELM_NO_PLUGINS=1"))) ||
	    (rc = strvec_push(&v, plumb_strdup("LC_ALL=C"))))
		goto cleanup;
	if (max_memory && (rc = strvec_push(&v, plumb_asprintf("GOMEMLIMIT=%zuMiB",
			max_memory / 4 * 3 / (1024 * 1024) ? max_memory / 4 * 3 / (1024 * 1024) : 1))))
		goto cleanup;
	*out = strvec_detach(&v);
cleanup:
	strvec_free(&v);
	return rc;
}

/* ---- the runner -------------------------------------------------------------- */

void render_exec_result_clear(render_exec_result *res)
{
	if (!res)
		return;
	free(res->out);
	free(res->err);
	memset(res, 0, sizeof(*res));
}

static void set_limit(int resource, rlim_t value)
{
	struct rlimit rl = { value, value };
	if (resource == RLIMIT_CPU)
		rl.rlim_max = value + 1; /* SIGXCPU first, SIGKILL a second later */
	(void)setrlimit(resource, &rl);
}

/* In the child, between fork and execve: async-signal-safe calls only
 * (plumbd is threaded). Reports a failure's errno on errpipe and exits. */
static void child(const render_exec_spec *spec, int devnull, int outw, int errw, int errpipe)
{
	struct sigaction sa;
	sigset_t all;
	int e;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
	sigemptyset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	(void)setpgid(0, 0);
	/* No network: a namespace of its own; unprivileged, inside a user
	 * namespace (the uid stays plumbd's for the files it reads). Where both
	 * are refused the render runs on (render_network_isolation() told). */
	if (spec->isolate_network && unshare(CLONE_NEWNET) != 0)
		(void)unshare(CLONE_NEWUSER | CLONE_NEWNET);
	if (dup2(devnull, 0) < 0 || dup2(outw, 1) < 0 || dup2(errw, 2) < 0)
		goto fail;
	if (errpipe != 3) {
		if (dup2(errpipe, 3) < 0)
			goto fail;
		errpipe = 3;
	}
	/* fd 3 is close-on-exec: it tells the parent whether execve failed. */
	(void)fcntl(3, F_SETFD, FD_CLOEXEC);
	if (close_range(4, ~0U, 0) < 0) {
		for (int fd = 4; fd < 65536; fd++)
			(void)close(fd);
	}
	if (spec->max_memory)
		set_limit(RLIMIT_AS, spec->max_memory);
	if (spec->max_cpu)
		set_limit(RLIMIT_CPU, spec->max_cpu);
	if (spec->max_open_files)
		set_limit(RLIMIT_NOFILE, spec->max_open_files);
	if (spec->max_file_write)
		set_limit(RLIMIT_FSIZE, spec->max_file_write);
	set_limit(RLIMIT_CORE, 0);
	if (spec->cwd && chdir(spec->cwd) < 0)
		goto fail;
	execve(spec->argv[0], spec->argv, spec->envp);
fail:
	e = errno;
	(void)!write(errpipe, &e, sizeof(e));
	_exit(127);
}

static pthread_once_t net_once = PTHREAD_ONCE_INIT;
static int net_errno = EIO;

/* A child tries what child() does and says how it went. */
static void net_probe(void)
{
	int p[2], e = EIO;
	if (pipe2(p, O_CLOEXEC) != 0) {
		net_errno = errno;
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int ce = 0;
		if (unshare(CLONE_NEWNET) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
			ce = errno ? errno : EPERM;
		(void)!write(p[1], &ce, sizeof(ce));
		_exit(0);
	}
	close(p[1]);
	if (pid < 0)
		e = errno;
	else if (read(p[0], &e, sizeof(e)) != (ssize_t)sizeof(e))
		e = EIO;
	close(p[0]);
	if (pid > 0)
		(void)waitpid(pid, NULL, 0);
	net_errno = e;
}

int render_network_isolation(const char **why)
{
	pthread_once(&net_once, net_probe);
	if (why)
		*why = net_errno ? strerror(net_errno) : "";
	return net_errno == 0;
}

/* Reads what fd has into buf; past the cap the rest is dropped (*over set).
 * Returns 1 at EOF, 0 otherwise. */
static int drain(int fd, plumb_buf *buf, int *over)
{
	char chunk[65536];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	if (n == 0)
		return 1;
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (*over)
		return 0;
	size_t room = buf->max - buf->len;
	if ((size_t)n > room) {
		if (room)
			(void)plumb_buf_append(buf, chunk, room);
		*over = 1;
		return 0;
	}
	if (plumb_buf_append(buf, chunk, (size_t)n) < 0)
		*over = 1;
	return 0;
}

int render_exec(render_exec_result *res, const render_exec_spec *spec)
{
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, exp_[2] = { -1, -1 }, devnull = -1;
	plumb_buf out = PLUMB_BUF_INIT(spec->max_stdout ? spec->max_stdout : DEFAULT_MAX_STDOUT);
	plumb_buf err = PLUMB_BUF_INIT(spec->max_stderr ? spec->max_stderr : DEFAULT_MAX_STDERR);
	double timeout = spec->timeout > 0 ? spec->timeout : DEFAULT_TIMEOUT;
	double start = plumb_time_mono();
	int rc = 0, out_over = 0, err_over = 0, timed_out = 0, status = 0, child_errno = 0;
	pid_t pid = -1;
	struct rusage ru;
	memset(&ru, 0, sizeof(ru));

	if (!spec->argv || !spec->argv[0] || spec->argv[0][0] != '/')
		return plumb_error_set(PLUMB_EINVALID, "render: the tool's path must be absolute");
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(exp_, O_CLOEXEC) < 0 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = plumb_error_set(PLUMB_EIO, "render: pipe: %s", strerror(errno));
		goto cleanup;
	}
	/* A daemon may run with 0, 1 or 2 closed: keep the pipes off them, or
	 * the child's dup2() onto 0-2 would overwrite one. */
	int *fds[] = { &outp[0], &outp[1], &errp[0], &errp[1], &exp_[0], &exp_[1], &devnull };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] > 2)
			continue;
		int moved = fcntl(*fds[i], F_DUPFD_CLOEXEC, 3);
		if (moved < 0) {
			rc = plumb_error_set(PLUMB_EIO, "render: fcntl: %s", strerror(errno));
			goto cleanup;
		}
		close(*fds[i]);
		*fds[i] = moved;
	}
	pid = fork();
	if (pid < 0) {
		rc = plumb_error_set(PLUMB_EIO, "render: fork: %s", strerror(errno));
		goto cleanup;
	}
	if (pid == 0)
		child(spec, devnull, outp[1], errp[1], exp_[1]);
	(void)setpgid(pid, pid); /* also here: no race with the kill below */
	close(outp[1]);
	close(errp[1]);
	close(exp_[1]);
	outp[1] = errp[1] = exp_[1] = -1;
	if (read(exp_[0], &child_errno, sizeof(child_errno)) != (ssize_t)sizeof(child_errno))
		child_errno = 0;
	(void)fcntl(outp[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(errp[0], F_SETFL, O_NONBLOCK);

	/* Both pipes until EOF; then the child itself (it may have closed them
	 * and still run). */
	int out_open = 1, err_open = 1;
	for (;;) {
		double left = start + timeout - plumb_time_mono();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (!out_open && !err_open) {
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
				break;
			plumb_sleep(left < 0.01 ? left : 0.01);
			continue;
		}
		struct pollfd pf[2];
		nfds_t n = 0;
		if (out_open)
			pf[n++] = (struct pollfd){ .fd = outp[0], .events = POLLIN };
		if (err_open)
			pf[n++] = (struct pollfd){ .fd = errp[0], .events = POLLIN };
		int ms = (int)(left * 1000) + 1;
		int pr = poll(pf, n, ms);
		if (pr < 0 && errno != EINTR) {
			rc = plumb_error_set(PLUMB_EIO, "render: poll: %s", strerror(errno));
			break;
		}
		for (nfds_t i = 0; pr > 0 && i < n; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (pf[i].fd == outp[0]) {
				if (drain(outp[0], &out, &out_over))
					out_open = 0;
			} else if (drain(errp[0], &err, &err_over)) {
				err_open = 0;
			}
		}
		if (out_over)
			break;
	}
	/* The group goes before the child is reaped: the zombie holds the pid,
	 * so the group id cannot be someone else's yet. */
	(void)kill(-pid, SIGKILL);
	while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	pid = -1;
	if (rc)
		goto cleanup;
	if (child_errno) {
		rc = plumb_error_set(PLUMB_ENOTFOUND, "render: cannot run %s: %s", spec->argv[0],
			strerror(child_errno));
		goto cleanup;
	}
	memset(res, 0, sizeof(*res));
	res->status = status;
	res->timed_out = timed_out;
	res->out_too_big = out_over;
	res->seconds = plumb_time_mono() - start;
	res->peak_rss_kb = ru.ru_maxrss;
	if (!out.ptr && plumb_buf_append(&out, "", 0) < 0)
		out.ptr = NULL;
	res->out_len = out.len;
	res->out = plumb_buf_detach(&out);
	res->err_len = err.len;
	res->err = plumb_buf_detach(&err);
	if (!res->out)
		res->out = calloc(1, 1);
	if (!res->err)
		res->err = calloc(1, 1);
	if (!res->out || !res->err) {
		render_exec_result_clear(res);
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
cleanup:
	if (pid > 0) {
		(void)kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (exp_[i] >= 0)
			close(exp_[i]);
	}
	if (devnull >= 0)
		close(devnull);
	plumb_buf_free(&out);
	plumb_buf_free(&err);
	return rc;
}

/* ---- the work directory ------------------------------------------------------- */

/* Removes dir and everything in it, making directories writable first (the
 * tree is read-only). Symlinks are removed, never followed. */
static int remove_tree_at(int parentfd, const char *name, int depth)
{
	int fd = -1, rc = 0;
	DIR *d = NULL;
	struct dirent *e;
	if (depth > 256)
		return -1;
	(void)fchmodat(parentfd, name, 0700, 0);
	fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unlinkat(parentfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -1;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		int isdir = e->d_type == DT_DIR;
		if (e->d_type == DT_UNKNOWN) {
			if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			isdir = S_ISDIR(st.st_mode);
		}
		if (isdir) {
			if (remove_tree_at(fd, e->d_name, depth + 1) < 0)
				rc = -1;
		} else if (unlinkat(fd, e->d_name, 0) < 0) {
			rc = -1;
		}
	}
	closedir(d);
	if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

void workdir_remove(const char *dir)
{
	if (dir && dir[0] && remove_tree_at(AT_FDCWD, dir, 0) < 0)
		plumb_warn("render: could not remove its work directory", "dir", dir,
			"error", strerror(errno));
}

int workdir_create(char **out, const char *tmp_dir)
{
	const char *base = tmp_dir;
	if (!base || !base[0])
		base = getenv("TMPDIR");
	if (!base || !base[0])
		base = "/tmp";
	char *dir = plumb_asprintf("%s/plumb-render-XXXXXX", base);
	if (!dir)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (!mkdtemp(dir)) {
		int rc = plumb_error_set(PLUMB_EIO, "render: cannot create a work directory in %s: %s",
			base, strerror(errno));
		free(dir);
		return rc;
	}
	static const char *subs[] = { "home", "home/tmp", "home/.cache", "home/.config",
		"home/.local", "home/.local/share", "home/.kube", "tree" };
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char *p = plumb_asprintf("%s/%s", dir, subs[i]);
		int ok = p && mkdir(p, 0700) == 0;
		free(p);
		if (!ok) {
			int rc = plumb_error_set(PLUMB_EIO, "render: cannot create its work directory: %s",
				strerror(errno));
			workdir_remove(dir);
			free(dir);
			return rc;
		}
	}
	*out = dir;
	return 0;
}

int render_path_check(const char *path)
{
	size_t depth = 0;
	if (!path || !path[0])
		return plumb_error_set(PLUMB_EINVALID, "render: empty file path");
	if (strlen(path) > 4000)
		return plumb_error_set(PLUMB_EINVALID, "render: file path over 4000 bytes");
	if (path[0] == '/')
		return plumb_error_set(PLUMB_EINVALID, "render: absolute file path %s", path);
	for (const char *p = path; *p; depth++) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return plumb_error_set(PLUMB_EINVALID, "render: file path %s has an empty, \".\" or "
				"\"..\" component", path);
		if (!slash)
			break;
		p = slash + 1;
		if (!*p)
			return plumb_error_set(PLUMB_EINVALID, "render: file path %s ends in '/'", path);
	}
	if (depth > 64)
		return plumb_error_set(PLUMB_EINVALID, "render: file path %s is over 64 folders deep", path);
	return 0;
}

/* Creates every missing folder of rel (a checked path) under rootfd and
 * returns an fd of the file's folder, or -1 (errno set). Each folder is
 * opened with O_NOFOLLOW, so a name can never lead out through a symlink. */
static int open_parent(int rootfd, const char *rel, const char **leaf)
{
	int fd = dup(rootfd);
	const char *p = rel;
	char name[4096];
	for (;;) {
		const char *slash = strchr(p, '/');
		if (!slash) {
			*leaf = p;
			return fd;
		}
		size_t n = (size_t)(slash - p);
		memcpy(name, p, n);
		name[n] = 0;
		if (mkdirat(fd, name, 0700) < 0 && errno != EEXIST) {
			close(fd);
			return -1;
		}
		int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return -1;
		fd = next;
		p = slash + 1;
	}
}

/* Makes every folder under fd read-only, depth first. */
static void seal_dirs(int fd, int depth)
{
	DIR *d;
	struct dirent *e;
	int dup_fd = dup(fd);
	if (dup_fd < 0 || depth > 80 || !(d = fdopendir(dup_fd))) {
		if (dup_fd >= 0)
			close(dup_fd);
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		seal_dirs(sub, depth + 1);
		(void)fchmod(sub, 0555);
		close(sub);
	}
	closedir(d);
}

int workdir_materialise(const char *tree, const source_files *files, size_t max_bytes, size_t max_files)
{
	int rootfd = -1, dfd = -1, rc = 0;
	size_t total = 0, last_len = 0;
	const char *last_dir = NULL;
	if (files && files->count > max_files)
		return plumb_error_set(PLUMB_ETOOBIG, "render: %zu files, over the cap of %zu", files->count,
			max_files);
	rootfd = open(tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return plumb_error_set(PLUMB_EIO, "render: open %s: %s", tree, strerror(errno));
	for (size_t i = 0; files && i < files->count; i++) {
		const source_file *f = &files->items[i];
		const char *leaf = NULL;
		if ((rc = render_path_check(f->path)))
			goto cleanup;
		total += f->len;
		if (total > max_bytes) {
			rc = plumb_error_set(PLUMB_ETOOBIG, "render: the files under the render are over the cap "
				"of %zu bytes", max_bytes);
			goto cleanup;
		}
		/* the files come sorted by path: the folder of the last one is
		 * most often this one's too, and stays open */
		const char *slash = strrchr(f->path, '/');
		size_t dlen = slash ? (size_t)(slash - f->path) : 0;
		leaf = slash ? slash + 1 : f->path;
		if (dfd < 0 || dlen != last_len || memcmp(f->path, last_dir, dlen)) {
			if (dfd >= 0)
				close(dfd);
			last_dir = f->path;
			last_len = dlen;
			const char *l;
			if ((dfd = open_parent(rootfd, f->path, &l)) < 0) {
				rc = plumb_error_set(PLUMB_EINVALID, "render: cannot create the folder of %s: %s",
					f->path, strerror(errno));
				goto cleanup;
			}
		}
		int fd = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
		if (fd < 0) {
			rc = plumb_error_set(PLUMB_EINVALID, "render: cannot create %s: %s", f->path,
				strerror(errno));
			goto cleanup;
		}
		size_t off = 0;
		while (off < f->len) {
			ssize_t n = write(fd, f->data + off, f->len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				rc = plumb_error_set(PLUMB_EIO, "render: write %s: %s", f->path, strerror(errno));
				close(fd);
				goto cleanup;
			}
			off += (size_t)n;
		}
		close(fd);
	}
	seal_dirs(rootfd, 0);
	(void)fchmod(rootfd, 0555);
cleanup:
	if (dfd >= 0)
		close(dfd);
	close(rootfd);
	return rc;
}
