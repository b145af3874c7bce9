/* plumbctl sync: asks plumbd for an immediate sync of a GitSync through the
 * plumb.dev/requested-at annotation and, with --wait, follows it to the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "gitsync/gitsync.h"
#include "plumbctl.h"

#define REQUESTED_AT "plumb.dev/requested-at"
#define POLL_SECONDS 0.5

static const char sync_usage[] =
	"usage: plumbctl sync NAME [--wait] [--timeout DURATION] [-n NS] [--kubeconfig PATH] [--context NAME]\n"
	"\n"
	"Sets the annotation plumb.dev/requested-at on GitSync NAME to a fresh value:\n"
	"plumbd fetches Git at once and syncs every target cluster. With --wait, waits\n"
	"until plumbd has handled that request for the GitSync's current generation and\n"
	"every cluster has finished (printing each change on the way), then prints the\n"
	"result per cluster. A cluster is finished once it is Synced, Drifted or Degraded\n"
	"at the fetched commit, or Failed or Unreachable; a Progressing one (applied,\n"
	"waiting for health: spec.wait) is not. With spec.rollout, a rollout that halted\n"
	"or was aborted is finished too; a paused one waits.\n"
	"\n"
	"  --wait              wait for the outcome\n"
	"  --timeout D         how long --wait waits (Go duration, default 2m)\n"
	PLUMBCTL_CONN_FLAGS
	"\n"
	"Exit codes: 0 requested (with --wait: handled and Ready), 1 handled but not Ready\n"
	"(stalled, failed, degraded, drifted, rollout halted or aborted: the message says\n"
	"why), 2 usage, 3 cluster unreachable / GitSync not found, 4 --wait timed out (is\n"
	"plumbd running?).\n";

static long number(const cJSON *obj, const char *path, long dflt)
{
	const cJSON *v = plumb_json_get(obj, path);
	return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

/* Right after a fetch plumbd may briefly report NoClusters before its
 * per-cluster items have run; only believe it after this long. */
#define NO_CLUSTERS_GRACE 5.0

/* 1 when every non-suspended Cluster the GitSync targets has a status entry
 * (a Cluster registered a moment ago has none until plumbd gets to it). */
static int entries_complete(const cJSON *gso, const cJSON *clusters)
{
	const cJSON *clo, *e;
	gitsync_spec *gs = NULL;
	int complete = 1;
	if (gitsync_spec_parse(&gs, gso))
		return 0;
	cJSON_ArrayForEach(clo, clusters) {
		gitsync_cluster *cl = NULL;
		int found = 0;
		if (gitsync_cluster_parse(&cl, clo))
			continue;
		/* plumbd's own target rule */
		found = cl->suspend || !gitsync_selects(gs, cl);
		if (!found)
			cJSON_ArrayForEach(e, plumb_json_get(gso, "status.clusters")) {
				const char *en = plumb_json_str(e, "name");
				found |= en && !strcmp(en, cl->name);
			}
		gitsync_cluster_free(cl);
		if (!found) {
			complete = 0;
			break;
		}
	}
	gitsync_spec_free(gs);
	return complete;
}

/* status.rollout.state when the rollout is the one of the fetched commit,
 * else NULL. */
static const char *rollout_state(const cJSON *gs)
{
	const char *fetched = plumb_json_str(gs, "status.lastFetchedCommit");
	const char *commit = plumb_json_str(gs, "status.rollout.commit");
	return fetched && commit && !strcmp(fetched, commit) ? plumb_json_str(gs, "status.rollout.state") : NULL;
}

/* 1 when the request was handled for the current generation and every
 * cluster is done with the fetched commit (synced, drifted or degraded at
 * it, or failed), or the
 * rollout of that commit halted or was aborted. *no_clusters_since
 * remembers when a handled NoClusters was first seen (0 = not seen). */
static int finished(const cJSON *gs, const cJSON *clusters, const char *token, double *no_clusters_since)
{
	const char *handled = plumb_json_str(gs, "status.lastHandledRequestedAt");
	const cJSON *ready = plumbctl_condition(gs, "Ready");
	const cJSON *stalled = plumbctl_condition(gs, "Stalled");
	const char *fetched = plumb_json_str(gs, "status.lastFetchedCommit");
	const cJSON *cl;
	if (!handled || strcmp(handled, token) || !ready)
		return 0;
	if (number(ready, "observedGeneration", -1) != number(gs, "metadata.generation", 0))
		return 0;
	const char *ss = stalled ? plumb_json_str(stalled, "status") : NULL;
	if (ss && !strcmp(ss, "True"))
		return 1;
	const char *reason = plumb_json_str(ready, "reason");
	if (reason && !strcmp(reason, "NoClusters")) {
		if (*no_clusters_since == 0)
			*no_clusters_since = plumb_time_mono();
		return plumb_time_mono() - *no_clusters_since >= NO_CLUSTERS_GRACE;
	}
	*no_clusters_since = 0;
	const char *rollout = rollout_state(gs);
	/* the later waves stay where they are until someone acts */
	if (rollout && (!strcmp(rollout, "Halted") || !strcmp(rollout, "Aborted")))
		return 1;
	if (!entries_complete(gs, clusters))
		return 0;
	cJSON_ArrayForEach(cl, plumb_json_get(gs, "status.clusters")) {
		const char *state = plumb_json_str(cl, "state"), *commit = plumb_json_str(cl, "commit");
		/* Progressing: applied, not yet healthy (spec.wait). Degraded
		 * is finished like Synced, at the fetched commit: at an older
		 * one plumbd has the new one still to apply. */
		if (!state || !strcmp(state, "Pending") || !strcmp(state, "Progressing"))
			return 0;
		if (!strcmp(state, "Failed") || !strcmp(state, "Unreachable"))
			continue;
		if (fetched && (!commit || strcmp(commit, fetched)))
			return 0;
	}
	return 1;
}

/* One line describing where things stand; printed when it changes. */
static void progress(plumb_buf *b, const cJSON *gs, const char *token)
{
	const char *handled = plumb_json_str(gs, "status.lastHandledRequestedAt");
	const cJSON *ready = plumbctl_condition(gs, "Ready"), *cl;
	const char *fetched = plumb_json_str(gs, "status.lastFetchedCommit");
	plumb_buf_reset(b);
	plumb_buf_printf(b, "%s", handled && !strcmp(handled, token) ? "fetched" : "waiting for plumbd");
	if (fetched)
		plumb_buf_printf(b, " %.12s", fetched);
	if (ready)
		plumb_buf_printf(b, "; Ready=%s (%s)", plumb_json_str(ready, "status") ? plumb_json_str(ready, "status") : "?",
			plumb_json_str(ready, "reason") ? plumb_json_str(ready, "reason") : "");
	cJSON_ArrayForEach(cl, plumb_json_get(gs, "status.clusters")) {
		const char *c = plumb_json_str(cl, "commit");
		plumb_buf_printf(b, "; %s %s%s%.12s", plumb_json_str(cl, "name") ? plumb_json_str(cl, "name") : "?",
			plumb_json_str(cl, "state") ? plumb_json_str(cl, "state") : "?", c ? " " : "", c ? c : "");
	}
}

int plumbctl_sync(int argc, char **argv)
{
	plumbctl_conn conn = { 0 };
	const char *name = NULL, *timeout_s = "2m";
	int wait = 0, rc, code = PLUMBCTL_EXIT_API;
	double timeout = 0;
	kube_resource res, cres;
	cJSON *gs = NULL, *clusters = NULL;
	char token[PLUMBCTL_TOKEN_SIZE];
	plumb_buf line = PLUMB_BUF_INIT(64 * 1024), last = PLUMB_BUF_INIT(64 * 1024);

	if ((rc = plumbctl_online_args(&conn, NULL, sync_usage, &argc, argv)) != PLUMBCTL_GO_ON)
		return rc;
	for (int i = 1; i < argc; i++) {
		int r = plumbctl_flag(&timeout_s, "--timeout", NULL, argc, argv, &i);
		if (r < 0)
			return PLUMBCTL_EXIT_USAGE;
		if (r)
			continue;
		if (!strcmp(argv[i], "--wait")) {
			wait = 1;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			fprintf(stderr, "plumbctl sync: unexpected argument \"%s\"\n%s", argv[i], sync_usage);
			return PLUMBCTL_EXIT_USAGE;
		}
	}
	if (!name) {
		fprintf(stderr, "plumbctl sync: which GitSync? (`plumbctl status` lists them)\n%s", sync_usage);
		return PLUMBCTL_EXIT_USAGE;
	}
	if (plumb_duration_parse(&timeout, timeout_s) || timeout <= 0) {
		fprintf(stderr, "plumbctl sync: --timeout wants a duration like 90s or 5m, got \"%s\"\n", timeout_s);
		return PLUMBCTL_EXIT_USAGE;
	}
	if ((rc = plumbctl_connect(&conn)))
		return rc;
	if ((rc = plumbctl_resolve(&res, &conn, "GitSync")) || (rc = plumbctl_resolve(&cres, &conn, "Cluster"))) {
		code = rc;
		goto cleanup;
	}

	plumbctl_fresh_token(token);
	if ((rc = plumbctl_gitsync_annotate(&conn, &res, name, REQUESTED_AT, token))) {
		code = rc;
		goto cleanup;
	}
	printf("gitsync %s/%s: sync requested (%s=%s)\n", conn.ns, name, REQUESTED_AT, token);
	if (!wait) {
		code = 0;
		goto cleanup;
	}

	double deadline = plumb_time_mono() + timeout, no_clusters_since = 0;
	for (;;) {
		cJSON_Delete(gs);
		gs = NULL;
		rc = kube_get(&gs, conn.client, &res, conn.ns, name);
		if (rc == PLUMB_ENOTFOUND) {
			fprintf(stderr, "plumbctl: GitSync %s/%s was deleted while waiting\n", conn.ns, name);
			goto cleanup;
		}
		if (rc && plumb_time_mono() > deadline) {
			plumbctl_api_error(rc, "get GitSync");
			goto cleanup;
		}
		if (!rc) {
			cJSON *l = NULL;
			cJSON_Delete(clusters);
			clusters = NULL;
			if (kube_list(&l, conn.client, &cres, conn.ns, NULL) == 0)
				clusters = cJSON_DetachItemFromObjectCaseSensitive(l, "items");
			cJSON_Delete(l);
			progress(&line, gs, token);
			if (!last.ptr || strcmp(line.ptr, last.ptr)) {
				printf("  %s\n", line.ptr);
				fflush(stdout);
				plumb_buf_reset(&last);
				plumb_buf_puts(&last, line.ptr);
			}
			if (finished(gs, clusters, token, &no_clusters_since))
				break;
		}
		if (plumb_time_mono() > deadline) {
			const char *handled = plumb_json_str(gs, "status.lastHandledRequestedAt");
			const char *rollout = rollout_state(gs);
			fprintf(stderr, "plumbctl: timed out after %s waiting for GitSync %s/%s: %s\n", timeout_s,
				conn.ns, name, handled && !strcmp(handled, token)
					? "plumbd handled the request but some clusters have not finished (see `plumbctl status`)"
					: "plumbd has not handled the request: is plumbd running, leading, and watching this namespace?");
			if (rollout && !strcmp(rollout, "Paused"))
				fprintf(stderr, "  the rollout is paused: `plumbctl rollout resume %s -n %s` goes on\n", name, conn.ns);
			code = PLUMBCTL_EXIT_TIMEOUT;
			goto cleanup;
		}
		plumb_sleep(POLL_SECONDS);
	}

	const cJSON *ready = plumbctl_condition(gs, "Ready"), *cl;
	const char *rs = plumb_json_str(ready, "status");
	cJSON_ArrayForEach(cl, plumb_json_get(gs, "status.clusters")) {
		const char *m = plumb_json_str(cl, "message");
		printf("  %-14s %-11s %.12s%s%s\n", plumb_json_str(cl, "name") ? plumb_json_str(cl, "name") : "?",
			plumb_json_str(cl, "state") ? plumb_json_str(cl, "state") : "?",
			plumb_json_str(cl, "commit") ? plumb_json_str(cl, "commit") : "-", m && *m ? "  " : "", m ? m : "");
	}
	printf("gitsync %s/%s: Ready=%s (%s) %s\n", conn.ns, name, rs ? rs : "Unknown",
		plumb_json_str(ready, "reason") ? plumb_json_str(ready, "reason") : "",
		plumb_json_str(ready, "message") ? plumb_json_str(ready, "message") : "");
	code = rs && !strcmp(rs, "True") ? PLUMBCTL_EXIT_OK : PLUMBCTL_EXIT_FAIL;
cleanup:
	plumb_buf_free(&line);
	plumb_buf_free(&last);
	cJSON_Delete(gs);
	cJSON_Delete(clusters);
	plumbctl_disconnect(&conn);
	return code;
}
