/*
 * pkg/server — plumbd's HTTP side: an HTTP server (libmicrohttpd, its own
 * threads) for /metrics (the text of a pkg/metrics registry), /healthz,
 * /readyz and the Git webhook receiver POST /hooks/<namespace>/<gitsync>.
 */
#ifndef PLUMB_SERVER_H
#define PLUMB_SERVER_H

#include <stddef.h>

#include "base/base.h"
#include "metrics/metrics.h"

/* ---- webhooks ---------------------------------------------------------------
 * Checks a webhook delivery against the GitSync's secret:
 *  - GitHub: header X-Hub-Signature-256 = "sha256=" + hex(HMAC-SHA256(secret, body))
 *  - GitLab: header X-Gitlab-Token = secret
 * Comparisons are constant-time. Returns 1 when one of them matches, else 0.
 * A NULL header means absent. An empty secret never matches.
 */
int server_webhook_verify(const char *github_sig256, const char *gitlab_token,
	const void *body, size_t body_len, const char *secret, size_t secret_len);

/* ---- HTTP server ------------------------------------------------------------ */
typedef struct server server;

/* Looks up the webhook secret of GitSync ns/name. Returns 0 and a malloc'd
 * secret in *out (caller frees, with its length in *outlen), or non-zero when
 * there is no such GitSync or it has no webhook secret. Called from server
 * threads. */
typedef int (*server_secret_fn)(char **out, size_t *outlen, const char *ns,
	const char *name, void *data);
/* A verified delivery for ns/name: trigger a sync. Must not block long. */
typedef void (*server_trigger_fn)(const char *ns, const char *name, void *data);
/* 1 when ready (/readyz), with a short reason in why when not. */
typedef int (*server_ready_fn)(char *why, size_t whylen, void *data);

typedef struct {
	const char *addr;           /* "host:port", ":port" or "port"; port 0 = any free port */
	server_metrics *metrics;    /* serve /metrics when set */
	server_ready_fn ready;      /* serve /healthz and /readyz when set */
	server_secret_fn secret;    /* serve /hooks/ when set (with trigger) */
	server_trigger_fn trigger;
	void *data;                 /* passed to the callbacks */
	size_t max_body;            /* webhook body cap; default 1 MiB */
} server_opts;

/* Starts listening (threads of its own). *out: stop with server_free(). */
int server_start(server **out, const server_opts *opts);
/* The port actually bound (useful with port 0). */
int server_port(const server *s);
/* Stops serving and frees. NULL-safe. */
void server_free(server *s);

#endif
