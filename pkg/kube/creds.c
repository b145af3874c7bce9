/* pkg/kube: credentials of a kube_config — token files re-read about every
 * minute, exec plugins run (with a timeout, in a process group of their own)
 * and their ExecCredential answers. cfg->lock guards the dynamic credentials;
 * cfg->refresh_lock lets one thread at a time refresh them, on whichever
 * thread asked (never the watch hub's: KUBE_CREDS_NO_EXEC). */
#include "kube/kube_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define TOKEN_REREAD_SECONDS 60.0
#define EXEC_TIMEOUT_SECONDS 30.0

void kube_secure_free(char *p, size_t n)
{
	if (!p)
		return;
	if (n == 0)
		n = strlen(p);
	explicit_bzero(p, n);
	free(p);
}

/* ---- credentials ------------------------------------------------------------ */

int kube_config_refreshable(const kube_config *cfg)
{
	return cfg->token_file || cfg->exec_command;
}

void kube_creds_clear(kube_creds *creds)
{
	kube_secure_free(creds->token, 0);
	free(creds->cert);
	kube_secure_free(creds->key, creds->key_len);
	memset(creds, 0, sizeof(*creds));
}

char *kube_dup_bytes(const char *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

int kube_exec_credential_parse(kube_config *cfg, const char *data, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *status, *tok, *cert, *key, *exp;
	double expiry = 0;
	int rc = 0;
	if (!root)
		return plumb_error_set(PLUMB_EPROTO, "exec plugin %s: output is not JSON", cfg->exec_command ? cfg->exec_command : "");
	status = cJSON_GetObjectItemCaseSensitive(root, "status");
	tok = cJSON_GetObjectItemCaseSensitive(status, "token");
	cert = cJSON_GetObjectItemCaseSensitive(status, "clientCertificateData");
	key = cJSON_GetObjectItemCaseSensitive(status, "clientKeyData");
	exp = cJSON_GetObjectItemCaseSensitive(status, "expirationTimestamp");
	if (!cJSON_IsObject(status) || (!cJSON_IsString(tok) && !(cJSON_IsString(cert) && cJSON_IsString(key)))) {
		rc = plumb_error_set(PLUMB_EPROTO, "exec plugin %s: ExecCredential has no status.token or status.clientCertificateData/clientKeyData",
			cfg->exec_command ? cfg->exec_command : "");
		goto cleanup;
	}
	if (cJSON_IsString(exp) && plumb_time_parse(&expiry, exp->valuestring) < 0) {
		rc = plumb_error_set(PLUMB_EPROTO, "exec plugin %s: status.expirationTimestamp: not RFC 3339",
			cfg->exec_command ? cfg->exec_command : "");
		goto cleanup;
	}
	pthread_mutex_lock(&cfg->lock);
	kube_secure_free(cfg->dyn_token, 0);
	free(cfg->dyn_cert);
	kube_secure_free(cfg->dyn_key, cfg->dyn_key_len);
	cfg->dyn_token = cJSON_IsString(tok) ? plumb_strdup(tok->valuestring) : NULL;
	cfg->dyn_cert = cJSON_IsString(cert) ? plumb_strdup(cert->valuestring) : NULL;
	cfg->dyn_cert_len = cfg->dyn_cert ? strlen(cfg->dyn_cert) : 0;
	cfg->dyn_key = cJSON_IsString(key) ? plumb_strdup(key->valuestring) : NULL;
	cfg->dyn_key_len = cfg->dyn_key ? strlen(cfg->dyn_key) : 0;
	cfg->dyn_expiry = expiry;
	cfg->dyn_token_at = plumb_time_mono();
	pthread_mutex_unlock(&cfg->lock);
cleanup:
	if (root) {
		/* The answer holds secrets: wipe before freeing. */
		if (cJSON_IsString(tok))
			explicit_bzero(tok->valuestring, strlen(tok->valuestring));
		if (cJSON_IsString(key))
			explicit_bzero(key->valuestring, strlen(key->valuestring));
	}
	cJSON_Delete(root);
	return rc;
}

/* Runs the exec plugin; called with cfg->lock NOT held. */
static int run_exec(kube_config *cfg)
{
	int pipefd[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fa_init = 0, attr_init = 0, rc = 0, status = 0;
	pid_t pid = -1;
	char **envp = NULL;
	char *info = NULL;
	size_t nenv = 0, i = 0, j;
	plumb_buf out = PLUMB_BUF_INIT(KUBE_EXEC_OUTPUT_MAX);
	double limit = cfg->exec_timeout > 0 ? cfg->exec_timeout : EXEC_TIMEOUT_SECONDS;
	double deadline = plumb_time_mono() + limit;

	for (char **e = environ; e && *e; e++)
		nenv++;
	for (char **e = cfg->exec_env; e && *e; e++)
		nenv++;
	envp = calloc(nenv + 2, sizeof(char *));
	info = plumb_asprintf("KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}",
		cfg->exec_api_version);
	if (!envp || !info) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (char **e = environ; e && *e; e++)
		envp[i++] = *e;
	for (char **e = cfg->exec_env; e && *e; e++) {
		/* Override an inherited variable of the same name. */
		size_t nl = strcspn(*e, "=");
		for (j = 0; j < i; j++)
			if (!strncmp(envp[j], *e, nl + 1))
				break;
		envp[j] = *e;
		if (j == i)
			i++;
	}
	envp[i++] = info;
	envp[i] = NULL;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = plumb_error_set(PLUMB_EIO, "exec plugin %s: pipe: %s", cfg->exec_command, strerror(errno));
		goto cleanup;
	}
	posix_spawn_file_actions_init(&fa);
	fa_init = 1;
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	/* A process group of its own: a timeout kills what it started too. */
	posix_spawnattr_init(&attr);
	attr_init = 1;
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&attr, 0);
	if ((errno = cfg->exec_path ? posix_spawn(&pid, cfg->exec_path, &fa, &attr, cfg->exec_argv, envp)
			: posix_spawnp(&pid, cfg->exec_command, &fa, &attr, cfg->exec_argv, envp)) != 0) {
		pid = -1;
		rc = plumb_error_set(PLUMB_EAUTH, "exec plugin %s: cannot run: %s", cfg->exec_command, strerror(errno));
		goto cleanup;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	for (;;) {
		char chunk[4096];
		double left = deadline - plumb_time_mono();
		struct pollfd pfd = { pipefd[0], POLLIN, 0 };
		if (left <= 0) {
			rc = plumb_error_set(PLUMB_ETIMEOUT, "exec plugin %s: no answer within %g s", cfg->exec_command, limit);
			goto cleanup;
		}
		int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		ssize_t n = read(pipefd[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (plumb_buf_append(&out, chunk, (size_t)n) < 0) {
			rc = plumb_error_set(PLUMB_ETOOBIG, "exec plugin %s: output larger than %u bytes", cfg->exec_command, KUBE_EXEC_OUTPUT_MAX);
			goto cleanup;
		}
	}
	/* stdout closed; the exit is bounded by the same deadline. */
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			rc = plumb_error_set(PLUMB_EIO, "exec plugin %s: waitpid: %s", cfg->exec_command, strerror(errno));
			pid = -1;
			goto cleanup;
		}
		if (plumb_time_mono() >= deadline) {
			rc = plumb_error_set(PLUMB_ETIMEOUT, "exec plugin %s: did not exit within %g s", cfg->exec_command, limit);
			goto cleanup;
		}
		plumb_sleep(0.01);
	}
	pid = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		rc = plumb_error_set(PLUMB_EAUTH, "exec plugin %s: exited with status %d", cfg->exec_command,
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		goto cleanup;
	}
	rc = kube_exec_credential_parse(cfg, out.ptr ? out.ptr : "", out.len);
cleanup:
	if (pid > 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_init)
		posix_spawnattr_destroy(&attr);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (out.ptr)
		explicit_bzero(out.ptr, out.len);
	plumb_buf_free(&out);
	free(envp);
	free(info);
	return rc;
}

static int read_token_file(kube_config *cfg)
{
	char *tok = NULL;
	size_t len = 0;
	int rc = plumb_file_read(&tok, &len, cfg->token_file, KUBE_CRED_FILE_MAX);
	if (rc < 0)
		return plumb_error_prefix(rc == PLUMB_ETOOBIG ? rc : PLUMB_EAUTH, "token file");
	while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
		tok[--len] = '\0';
	if (len == 0) {
		free(tok);
		return plumb_error_set(PLUMB_EAUTH, "token file %s is empty", cfg->token_file);
	}
	pthread_mutex_lock(&cfg->lock);
	kube_secure_free(cfg->dyn_token, 0);
	cfg->dyn_token = tok;
	cfg->dyn_token_at = plumb_time_mono();
	pthread_mutex_unlock(&cfg->lock);
	return 0;
}

/* Whether the dynamic credential must be fetched anew; cfg->lock held. */
static int creds_stale_locked(const kube_config *cfg, int force)
{
	if (cfg->exec_command)
		return force || (!cfg->dyn_token && !cfg->dyn_cert) ||
			(cfg->dyn_expiry > 0 && plumb_time_real() + 10 >= cfg->dyn_expiry);
	if (cfg->token_file)
		return force || !cfg->dyn_token || plumb_time_mono() - cfg->dyn_token_at >= TOKEN_REREAD_SECONDS;
	return 0;
}

int kube_config_creds_need_exec(kube_config *cfg, int force)
{
	int need;
	if (!cfg->exec_command)
		return 0;
	pthread_mutex_lock(&cfg->lock);
	need = creds_stale_locked(cfg, force & KUBE_CREDS_FORCE);
	pthread_mutex_unlock(&cfg->lock);
	return need;
}

int kube_config_creds(kube_creds *out, kube_config *cfg, int force)
{
	int rc = 0, need = 0;
	memset(out, 0, sizeof(*out));

	if (cfg->exec_command || cfg->token_file) {
		double seen;
		pthread_mutex_lock(&cfg->lock);
		need = creds_stale_locked(cfg, force & KUBE_CREDS_FORCE);
		seen = cfg->dyn_token_at;
		pthread_mutex_unlock(&cfg->lock);
		if (need && cfg->exec_command && (force & KUBE_CREDS_NO_EXEC))
			return plumb_error_set(PLUMB_EAUTH, "exec plugin %s: no current credential on this thread",
				cfg->exec_command);
		if (need) {
			/* One refresh at a time: who waited takes the result of the
			 * refresh that ran meanwhile instead of running another. */
			pthread_mutex_lock(&cfg->refresh_lock);
			pthread_mutex_lock(&cfg->lock);
			need = cfg->dyn_token_at == seen;
			pthread_mutex_unlock(&cfg->lock);
			if (need)
				rc = cfg->exec_command ? run_exec(cfg) : read_token_file(cfg);
			pthread_mutex_unlock(&cfg->refresh_lock);
			if (rc < 0)
				return rc;
		}
	}
	pthread_mutex_lock(&cfg->lock);
	if (cfg->dyn_token)
		out->token = plumb_strdup(cfg->dyn_token);
	else if (cfg->token)
		out->token = plumb_strdup(cfg->token);
	if (cfg->dyn_cert && cfg->dyn_key) {
		out->cert = kube_dup_bytes(cfg->dyn_cert, cfg->dyn_cert_len);
		out->cert_len = cfg->dyn_cert_len;
		out->key = kube_dup_bytes(cfg->dyn_key, cfg->dyn_key_len);
		out->key_len = cfg->dyn_key_len;
	} else if (cfg->cert && cfg->key) {
		out->cert = kube_dup_bytes(cfg->cert, cfg->cert_len);
		out->cert_len = cfg->cert_len;
		out->key = kube_dup_bytes(cfg->key, cfg->key_len);
		out->key_len = cfg->key_len;
	}
	pthread_mutex_unlock(&cfg->lock);
	out->username = cfg->username;
	out->password = cfg->password;
	if ((cfg->dyn_token || cfg->token) && !out->token) {
		kube_creds_clear(out);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	return 0;
}
