/* pkg/controller: building GitSync status (kstatus conditions, per-cluster
 * entries, the summary the printer columns show). Pure: no I/O. */
#include "controller/controller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *controller_state_name(controller_cluster_state s)
{
	switch (s) {
	case CONTROLLER_SYNCED: return "Synced";
	case CONTROLLER_DRIFTED: return "Drifted";
	case CONTROLLER_FAILED: return "Failed";
	case CONTROLLER_UNREACHABLE: return "Unreachable";
	case CONTROLLER_PENDING: default: return "Pending";
	}
}

/* The condition of type `type` in a status object, or NULL. */
static const cJSON *find_condition(const cJSON *status, const char *type)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(status, "conditions")) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "type");
		if (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)
			return c;
	}
	return NULL;
}

void controller_condition_add(cJSON *conditions, const cJSON *prev_status, const char *type,
	int status, const char *reason, const char *message, long generation, double now)
{
	const char *st = status > 0 ? "True" : status == 0 ? "False" : "Unknown";
	char ts[48];
	const cJSON *old = find_condition(prev_status, type);
	const cJSON *old_status = cJSON_GetObjectItemCaseSensitive(old, "status");
	const cJSON *old_time = cJSON_GetObjectItemCaseSensitive(old, "lastTransitionTime");
	/* lastTransitionTime moves only when the status does. */
	if (cJSON_IsString(old_status) && strcmp(old_status->valuestring, st) == 0 &&
	    cJSON_IsString(old_time))
		snprintf(ts, sizeof(ts), "%s", old_time->valuestring);
	else
		plumb_time_rfc3339(ts, sizeof(ts), now);
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "type", type);
	cJSON_AddStringToObject(c, "status", st);
	cJSON_AddNumberToObject(c, "observedGeneration", (double)generation);
	cJSON_AddStringToObject(c, "lastTransitionTime", ts);
	cJSON_AddStringToObject(c, "reason", reason);
	/* metav1.Condition caps message at 32768 bytes. */
	char *msg = plumb_strndup(message ? message : "", 32000);
	cJSON_AddStringToObject(c, "message", msg ? msg : "");
	free(msg);
	cJSON_AddItemToArray(conditions, c);
}

static int cluster_cmp(const void *a, const void *b)
{
	const controller_cluster_status *x = a, *y = b;
	return strcmp(x->name, y->name);
}

int controller_status_build(cJSON **out, const controller_gitsync_summary *g,
	const controller_cluster_status *clusters, size_t n, const cJSON *prev_status, double now)
{
	cJSON *st = cJSON_CreateObject();
	if (!st)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	controller_cluster_status *sorted = NULL;
	if (n) {
		sorted = malloc(n * sizeof(*sorted));
		if (!sorted) {
			cJSON_Delete(st);
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
		memcpy(sorted, clusters, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), cluster_cmp);
	}

	cJSON_AddNumberToObject(st, "observedGeneration", (double)g->generation);
	if (g->fetched_commit && g->fetched_commit[0])
		cJSON_AddStringToObject(st, "lastFetchedCommit", g->fetched_commit);
	if (g->handled_requested_at && g->handled_requested_at[0])
		cJSON_AddStringToObject(st, "lastHandledRequestedAt", g->handled_requested_at);

	size_t synced = 0, drifted_clusters = 0, failed = 0, pending = 0;
	const controller_cluster_status *invalid = NULL;   /* first cluster that refused the revision */
	long drifted_objects = 0;
	cJSON *arr = cJSON_AddArrayToObject(st, "clusters");
	for (size_t i = 0; i < n; i++) {
		const controller_cluster_status *c = &sorted[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", c->name);
		cJSON_AddStringToObject(e, "state", controller_state_name(c->state));
		if (c->commit[0])
			cJSON_AddStringToObject(e, "commit", c->commit);
		cJSON_AddNumberToObject(e, "objects", (double)c->objects);
		if (c->drifted_count > 0) {
			cJSON *d = cJSON_AddObjectToObject(e, "drifted");
			cJSON_AddNumberToObject(d, "count", (double)c->drifted_count);
			if (c->drifted_objects)
				cJSON_AddItemToObject(d, "objects", cJSON_Duplicate(c->drifted_objects, 1));
		}
		if (c->last_sync_time > 0) {
			char ts[48];
			plumb_time_rfc3339(ts, sizeof(ts), c->last_sync_time);
			cJSON_AddStringToObject(e, "lastSyncTime", ts);
		}
		if (c->lag_seconds >= 0) {
			/* Two decimals: enough for people, and stable for comparisons. */
			char lag[32];
			snprintf(lag, sizeof(lag), "%.2f", c->lag_seconds);
			cJSON_AddItemToObject(e, "lagSeconds", cJSON_CreateNumber(atof(lag)));
		}
		if (c->message && c->message[0]) {
			char *msg = plumb_strndup(c->message, 4000);
			cJSON_AddStringToObject(e, "message", msg ? msg : "");
			free(msg);
		}
		cJSON_AddItemToArray(arr, e);
		switch (c->state) {
		case CONTROLLER_SYNCED: synced++; break;
		case CONTROLLER_DRIFTED: drifted_clusters++; break;
		case CONTROLLER_PENDING: pending++; break;
		default: failed++; break;
		}
		if (c->invalid && c->state == CONTROLLER_FAILED && !invalid)
			invalid = c;
		drifted_objects += c->drifted_count;
	}

	cJSON *sum = cJSON_AddObjectToObject(st, "summary");
	char shortc[16] = "", counts[64];
	if (g->fetched_commit)
		snprintf(shortc, sizeof(shortc), "%.7s", g->fetched_commit);
	cJSON_AddStringToObject(sum, "commit", shortc);
	snprintf(counts, sizeof(counts), "%zu/%zu", synced, n);
	cJSON_AddStringToObject(sum, "clusters", counts);
	cJSON_AddNumberToObject(sum, "drifted", (double)drifted_objects);

	/* kstatus: Reconciling and Stalled are True only while something is
	 * unusual; Ready summarises. */
	cJSON *conds = cJSON_AddArrayToObject(st, "conditions");
	char msg[4200];   /* conditions allow 32768; three failures fit */
	const char *ready_reason;
	int ready;
	if (g->stalled_reason) {
		ready = 0;
		ready_reason = g->stalled_reason;
		snprintf(msg, sizeof(msg), "%s", g->stalled_message ? g->stalled_message : "");
	} else if (n == 0) {
		ready = 0;
		ready_reason = "NoClusters";
		snprintf(msg, sizeof(msg), "no Cluster matches the targets");
	} else if (invalid) {
		/* the revision was refused whole in a cluster: it stays stalled
		 * there until a new commit (or the cluster) changes */
		ready = 0;
		ready_reason = "ValidationFailed";
		snprintf(msg, sizeof(msg), "cluster %s: %s", invalid->name, invalid->message ? invalid->message : "");
	} else if (failed) {
		ready = 0;
		ready_reason = "SyncFailed";
		snprintf(msg, sizeof(msg), "%zu of %zu clusters failed", failed, n);
	} else if (pending) {
		ready = 0;
		ready_reason = "Progressing";
		snprintf(msg, sizeof(msg), "%zu of %zu clusters synced", synced, n);
	} else if (drifted_clusters) {
		ready = 0;
		ready_reason = "Drifted";
		snprintf(msg, sizeof(msg), "%ld objects drifted in %zu clusters", drifted_objects, drifted_clusters);
	} else {
		ready = 1;
		ready_reason = "Synced";
		snprintf(msg, sizeof(msg), "%zu clusters synced to %s", n, shortc);
	}
	controller_condition_add(conds, prev_status, "Ready", ready, ready_reason, msg, g->generation, now);
	if (pending && !g->stalled_reason)
		controller_condition_add(conds, prev_status, "Reconciling", 1, "Progressing",
			"applying the latest revision", g->generation, now);
	else
		controller_condition_add(conds, prev_status, "Reconciling", 0, "Idle", "", g->generation, now);
	if (g->stalled_reason)
		controller_condition_add(conds, prev_status, "Stalled", 1, g->stalled_reason,
			g->stalled_message, g->generation, now);
	else if (invalid)
		controller_condition_add(conds, prev_status, "Stalled", 1, "ValidationFailed", msg,
			g->generation, now);
	else
		controller_condition_add(conds, prev_status, "Stalled", 0, "Healthy", "", g->generation, now);
	if (drifted_objects > 0) {
		snprintf(msg, sizeof(msg), "%ld objects drifted", drifted_objects);
		controller_condition_add(conds, prev_status, "Drifted", 1, "DriftDetected", msg, g->generation, now);
	} else {
		controller_condition_add(conds, prev_status, "Drifted", 0, "NoDrift", "", g->generation, now);
	}
	free(sorted);
	*out = st;
	return 0;
}
