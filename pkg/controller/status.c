/* pkg/controller: building GitSync status (kstatus conditions, per-cluster
 * entries, the summary the printer columns show). Pure: no I/O. */
#include "controller/internal.h"

#include "diff/diff.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *controller_state_name(controller_cluster_state s)
{
	switch (s) {
	case CONTROLLER_SYNCED: return "Synced";
	case CONTROLLER_DRIFTED: return "Drifted";
	case CONTROLLER_FAILED: return "Failed";
	case CONTROLLER_UNREACHABLE: return "Unreachable";
	case CONTROLLER_PROGRESSING: return "Progressing";
	case CONTROLLER_DEGRADED: return "Degraded";
	case CONTROLLER_PENDING: default: return "Pending";
	}
}

const char *controller_health_name(controller_health h)
{
	switch (h) {
	case CONTROLLER_HEALTH_HEALTHY: return "Healthy";
	case CONTROLLER_HEALTH_PROGRESSING: return "Progressing";
	case CONTROLLER_HEALTH_DEGRADED: return "Degraded";
	case CONTROLLER_HEALTH_UNKNOWN: default: return "Unknown";
	}
}

controller_cluster_state controller_effective_state(const controller_cluster_status *s)
{
	if (!s->wait || s->state != CONTROLLER_SYNCED || s->health == CONTROLLER_HEALTH_HEALTHY)
		return s->state;
	return s->health == CONTROLLER_HEALTH_DEGRADED ? CONTROLLER_DEGRADED : CONTROLLER_PROGRESSING;
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

static size_t json_size(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	size_t n = s ? strlen(s) : 0;
	cJSON_free(s);
	return n;
}

/* Shortens e (one status.clusters[] entry) of size bytes: its "key".objects
 * list loses items from the end while e is over max bytes or the list over
 * list_max (lists = 0: all of them). Returns e's size. */
static size_t trim_list(cJSON *e, const char *key, size_t size, size_t max, size_t list_max, int lists)
{
	cJSON *parent = cJSON_GetObjectItemCaseSensitive(e, key);
	cJSON *list = cJSON_GetObjectItemCaseSensitive(parent, "objects");
	int n = cJSON_GetArraySize(list);
	size_t lsize = list && lists ? json_size(list) : 0;
	while (n > 0 && (!lists || size > max || lsize > list_max)) {
		size_t item = lists ? json_size(cJSON_GetArrayItem(list, n - 1)) + (n > 1) : 0;
		size -= item;
		lsize -= item;
		cJSON_DeleteItemFromArray(list, --n);
	}
	if (list && n == 0)
		cJSON_DeleteItemFromObjectCaseSensitive(parent, "objects");
	return json_size(e);
}

/* e within max bytes: the message cut to msg_max (0: none, and no sync
 * time or lag either), the unhealthy list to a quarter of max, the drift
 * list to what fits, then the unhealthy list, then the message halved
 * until it fits; lists = 0 drops both lists. Returns its size. */
static size_t bound_entry(cJSON *e, size_t max, int lists, size_t msg_max)
{
	cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
	size_t size;
	if (m && strlen(m->valuestring) > msg_max) {
		if (msg_max)
			m->valuestring[msg_max] = '\0';   /* a shorter string in the same block */
		else
			cJSON_DeleteItemFromObjectCaseSensitive(e, "message");
	}
	if (!msg_max) {
		cJSON_DeleteItemFromObjectCaseSensitive(e, "lastSyncTime");
		cJSON_DeleteItemFromObjectCaseSensitive(e, "lagSeconds");
	}
	size = json_size(e);
	if (size > max && (m = cJSON_GetObjectItemCaseSensitive(e, "message")) &&
	    strlen(m->valuestring) > STATUS_MESSAGE_CUT) {
		m->valuestring[STATUS_MESSAGE_CUT] = '\0';
		size = json_size(e);
	}
	size = trim_list(e, "unhealthy", size, SIZE_MAX, max / 4, lists);
	size = trim_list(e, "drifted", size, max, SIZE_MAX, lists);
	size = trim_list(e, "unhealthy", size, max, SIZE_MAX, lists);
	while (size > max && (m = cJSON_GetObjectItemCaseSensitive(e, "message")) && m->valuestring[0]) {
		m->valuestring[strlen(m->valuestring) / 2] = '\0';
		size = json_size(e);
	}
	return size;
}

/* Bounds the entries of status.clusters[] (sorted[i] is ents[i]) as
 * STATUS_DETAIL_BUDGET and STATUS_MESSAGE_BUDGET say: clusters not Synced
 * keep their detail first. */
static void bound_clusters(cJSON **ents, const controller_cluster_status *sorted, size_t n)
{
	size_t used = 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			if ((controller_effective_state(&sorted[i]) == CONTROLLER_SYNCED) != pass)
				continue;
			size_t size = used < STATUS_DETAIL_BUDGET ? bound_entry(ents[i], STATUS_CLUSTER_MAX, 1, 4096) : SIZE_MAX;
			if (size == SIZE_MAX || used + size > STATUS_DETAIL_BUDGET)
				size = bound_entry(ents[i], STATUS_CLUSTER_MAX, 0, STATUS_MESSAGE_CUT);
			if (used + size > STATUS_MESSAGE_BUDGET)
				size = bound_entry(ents[i], STATUS_CLUSTER_MAX, 0, 0);
			used += size + 1;
		}
}

int controller_status_build(cJSON **out, const controller_gitsync_summary *g,
	const controller_cluster_status *clusters, size_t n, const cJSON *prev_status, double now)
{
	cJSON *st = cJSON_CreateObject();
	if (!st)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	controller_cluster_status *sorted = NULL;
	cJSON **ents = NULL;
	if (n) {
		sorted = malloc(n * sizeof(*sorted));
		ents = calloc(n, sizeof(*ents));
		if (!sorted || !ents) {
			free(sorted);
			free(ents);
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

	size_t synced = 0, drifted_clusters = 0, failed = 0, pending = 0, progressing = 0, degraded = 0;
	const controller_cluster_status *invalid = NULL;   /* first cluster that refused the revision */
	const controller_cluster_status *first_degraded = NULL, *first_progressing = NULL;
	long drifted_objects = 0;
	cJSON *arr = cJSON_AddArrayToObject(st, "clusters");
	for (size_t i = 0; i < n; i++) {
		const controller_cluster_status *c = &sorted[i];
		controller_cluster_state state = controller_effective_state(c);
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", c->name);
		cJSON_AddStringToObject(e, "state", controller_state_name(state));
		if (c->health != CONTROLLER_HEALTH_UNKNOWN)
			cJSON_AddStringToObject(e, "health", controller_health_name(c->health));
		if (c->wave[0] && g->rollout)
			cJSON_AddStringToObject(e, "wave", c->wave);
		if (c->unhealthy_count > 0) {
			cJSON *u = cJSON_AddObjectToObject(e, "unhealthy");
			cJSON_AddNumberToObject(u, "count", (double)c->unhealthy_count);
			if (c->unhealthy)
				cJSON_AddItemToObject(u, "objects", cJSON_Duplicate(c->unhealthy, 1));
		}
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
		const char *cmsg = c->message;
		if ((state == CONTROLLER_PROGRESSING || state == CONTROLLER_DEGRADED) && c->health_message)
			cmsg = c->health_message;
		if (cmsg && cmsg[0]) {
			char *msg = plumb_strndup(cmsg, 4000);
			cJSON_AddStringToObject(e, "message", msg ? msg : "");
			free(msg);
		}
		ents[i] = e;
		switch (state) {
		case CONTROLLER_SYNCED: synced++; break;
		case CONTROLLER_DRIFTED: drifted_clusters++; break;
		case CONTROLLER_PENDING: pending++; break;
		case CONTROLLER_PROGRESSING:
			progressing++;
			if (!first_progressing)
				first_progressing = c;
			break;
		case CONTROLLER_DEGRADED:
			degraded++;
			if (!first_degraded)
				first_degraded = c;
			break;
		default: failed++; break;
		}
		if (c->invalid && c->state == CONTROLLER_FAILED && !invalid)
			invalid = c;
		drifted_objects += c->drifted_count;
	}
	bound_clusters(ents, sorted, n);
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, ents[i]);
	free(ents);

	if (g->rollout)
		cJSON_AddItemToObject(st, "rollout", cJSON_Duplicate(g->rollout, 1));
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
	} else if (degraded) {
		/* past spec.healthTimeout, or an object that failed for good */
		ready = 0;
		ready_reason = "HealthCheckFailed";
		snprintf(msg, sizeof(msg), "%zu of %zu clusters degraded; cluster %s: %s", degraded, n,
			first_degraded->name, first_degraded->health_message ? first_degraded->health_message : "not healthy");
	} else if (g->rollout && (streq(plumb_json_str(g->rollout, "state"), "Halted") ||
		   streq(plumb_json_str(g->rollout, "state"), "Aborted"))) {
		ready = 0;
		int halted = streq(plumb_json_str(g->rollout, "state"), "Halted");
		ready_reason = halted ? "RolloutHalted" : "RolloutAborted";
		snprintf(msg, sizeof(msg), "rollout of %.12s %s: %s", plumb_json_str(g->rollout, "commit"),
			halted ? "halted" : "aborted", plumb_json_str(g->rollout, "message") ? plumb_json_str(g->rollout, "message") : "");
	} else if (g->rollout && !streq(plumb_json_str(g->rollout, "state"), "Succeeded")) {
		ready = 0;
		ready_reason = "Progressing";
		snprintf(msg, sizeof(msg), "rollout of %.12s: wave %s %s", plumb_json_str(g->rollout, "commit"),
			plumb_json_str(g->rollout, "currentWave") ? plumb_json_str(g->rollout, "currentWave") : "?",
			streq(plumb_json_str(g->rollout, "state"), "Paused") ? "(paused)" : "in progress");
	} else if (pending || progressing) {
		ready = 0;
		ready_reason = "Progressing";
		if (progressing)
			snprintf(msg, sizeof(msg), "%zu of %zu clusters synced; cluster %s: %s", synced, n,
				first_progressing->name, first_progressing->health_message ?
				first_progressing->health_message : "waiting for health");
		else
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
	else if (progressing && !g->stalled_reason)
		controller_condition_add(conds, prev_status, "Reconciling", 1, "WaitingForHealth",
			"waiting for what was applied to become healthy", g->generation, now);
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

/* ---- status writing ---------------------------------------------------------------- */

cJSON *status_body(const char *api_version, const char *kind, const char *ns,
	const char *name, cJSON *status)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "apiVersion", api_version);
	cJSON_AddStringToObject(b, "kind", kind);
	cJSON *m = cJSON_AddObjectToObject(b, "metadata");
	cJSON_AddStringToObject(m, "name", name);
	cJSON_AddStringToObject(m, "namespace", ns);
	cJSON_AddItemToObject(b, "status", status);
	return b;
}

/* Builds the GitSync's status and writes it when it differs from what is
 * there. Only the leader's workers (with --shards, the owner's) call this. */
void write_gitsync_status(controller *c, gitsync_state *g)
{
	cJSON *st = NULL, *prev = NULL;
	pthread_mutex_lock(&g->status_lock);
	pthread_mutex_lock(&c->lock);
	/* --shards: a reconcile still running when this replica gave g up (or
	 * its Lease lapsed) writes no status over the next owner's */
	if (g->deleted || (c->sharded && !(g->held && shard_active(c)))) {
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&g->status_lock);
		return;
	}
	prev = g->last_written ? cJSON_Duplicate(g->last_written, 1) :
		cJSON_Duplicate(plumb_json_get(g->obj, "status"), 1);
	size_t n = g->clusters.count, k = 0, i = 0;
	controller_cluster_status *arr = calloc(n ? n : 1, sizeof(*arr));
	const char *key;
	void *v;
	while (arr && plumb_map_next(&g->clusters, &i, &key, &v) && k < n)
		arr[k++] = *(controller_cluster_status *)v;
	const cJSON *gen = plumb_json_get(g->obj, "metadata.generation");
	controller_gitsync_summary sum = {
		.generation = cJSON_IsNumber(gen) ? (long)gen->valuedouble : 0,
		.fetched_commit = g->fetched,
		.handled_requested_at = g->handled_req,
		.stalled_reason = g->stall_reason,
		.stalled_message = g->stall_msg,
		/* a new leader that has not looked yet writes the rollout back as it found it */
		.rollout = g->rollout ? g->rollout : g->spec && g->spec->rollout.set ?
			plumb_json_get(g->obj, "status.rollout") : NULL,
	};
	int rc = arr ? controller_status_build(&st, &sum, arr, k, prev, plumb_time_real()) : PLUMB_ENOMEM;
	pthread_mutex_unlock(&c->lock);
	if (rc == 0) {
		const cJSON *cd;
		cJSON_ArrayForEach(cd, cJSON_GetObjectItemCaseSensitive(st, "conditions")) {
			const char *type = plumb_json_str(cd, "type");
			int yes = streq(plumb_json_str(cd, "status"), "True");
			if (streq(type, "Ready"))
				server_gauge_set(c->m.gs_ready, yes, g->key);
			else if (streq(type, "Stalled"))
				server_gauge_set(c->m.gs_stalled, yes, g->key);
		}
	}
	free(arr);
	if (rc == 0 && !(prev && diff_json_equal(st, prev) && diff_json_equal(prev, st))) {
		cJSON *body = status_body(PLUMB_API_GROUP_VERSION, "GitSync", g->ns, g->name, cJSON_Duplicate(st, 1));
		kube_apply_opts ao = { .field_manager = APPLY_FIELD_MANAGER, .force = 1 };
		if (kube_apply_status(NULL, c->o.mgmt, &c->gitsync_res, g->ns, body, &ao) == 0) {
			cJSON_Delete(g->last_written);
			g->last_written = st;
			st = NULL;
		} else {
			plumb_warn("cannot write status", "gitsync", g->key, "error", plumb_error_last());
		}
		cJSON_Delete(body);
	}
	cJSON_Delete(st);
	cJSON_Delete(prev);
	pthread_mutex_unlock(&g->status_lock);
}

/* Sets or clears (reason NULL) the GitSync's stall; posts an event when it
 * starts or ends. */
void set_stall(controller *c, gitsync_state *g, const char *reason, const char *msg)
{
	pthread_mutex_lock(&c->lock);
	int was = g->stall_reason != NULL;
	int same = was && reason && streq(g->stall_reason, reason) && streq(g->stall_msg, msg);
	set_str(&g->stall_reason, reason);
	set_str(&g->stall_msg, reason ? msg : NULL);
	const char *uid = plumb_json_str(g->obj, "metadata.uid");
	char *uidc = plumb_strdup(uid);
	pthread_mutex_unlock(&c->lock);
	if (reason && !same) {
		plumb_warn("gitsync stalled", "gitsync", g->key, "reason", reason, "error", msg);
		controller_events_post(c->events, g->ns, g->name, uidc, "Warning", reason, "Stall", msg);
	} else if (!reason && was) {
		plumb_info("gitsync recovered", "gitsync", g->key);
		controller_events_post(c->events, g->ns, g->name, uidc, "Normal", "Recovered", "Fetch",
			"the revision is valid again");
	}
	free(uidc);
}

/* ---- sync reconcile ---------------------------------------------------------------------- */

controller_cluster_status *entry_locked(gitsync_state *g, const char *name)
{
	controller_cluster_status *s = plumb_map_get(&g->clusters, name);
	if (!s && (s = calloc(1, sizeof(*s)))) {
		s->name = plumb_strdup(name);
		s->lag_seconds = -1;
		s->health_unsure = 1;
		plumb_map_put(&g->clusters, name, s, NULL);
	}
	return s;
}

void set_entry(controller *c, gitsync_state *g, const char *cluster,
	controller_cluster_state state, const char *message)
{
	pthread_mutex_lock(&c->lock);
	controller_cluster_status *s = entry_locked(g, cluster);
	if (s) {
		if (s->state != state)
			s->last_sync_time = plumb_time_real();
		s->state = state;
		/* a failure is this leader's own look; waiting (Pending) is not */
		if (state != CONTROLLER_PENDING)
			s->seeded = 0;
		s->invalid = 0;
		set_str(&s->message, message);
	}
	pthread_mutex_unlock(&c->lock);
}

static cJSON *drift_entry(const apply_object_result *o)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "apiVersion", o->api_version);
	cJSON_AddStringToObject(e, "kind", o->kind);
	if (o->ns && o->ns[0])
		cJSON_AddStringToObject(e, "namespace", o->ns);
	cJSON_AddStringToObject(e, "name", o->name);
	cJSON *f = cJSON_AddArrayToObject(e, "fields");
	const char *manager = NULL;
	for (size_t i = 0; i < o->nfields && i < MAX_DRIFT_FIELDS; i++) {
		char path[MAX_DRIFT_FIELD_LEN + 1];   /* a longer path is cut */
		snprintf(path, sizeof(path), "%s", o->fields[i].path);
		cJSON_AddItemToArray(f, cJSON_CreateString(path));
		if (!manager && o->fields[i].manager && o->fields[i].manager[0])
			manager = o->fields[i].manager;
	}
	if (manager)
		cJSON_AddStringToObject(e, "manager", manager);
	return e;
}

/* One line per object for events: "ConfigMap team-a/cfg (data.X by kubectl-edit)". */
static void describe(plumb_buf *b, const apply_result *r, apply_action action, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < r->count; i++) {
		const apply_object_result *o = &r->objects[i];
		if (o->action != action)
			continue;
		if (n++ >= max) {
			plumb_buf_printf(b, ", …");
			break;
		}
		plumb_buf_printf(b, "%s%s %s%s%s", n > 1 ? ", " : "", o->kind,
			o->ns && o->ns[0] ? o->ns : "", o->ns && o->ns[0] ? "/" : "", o->name);
		if (o->nfields && (action == APPLY_CORRECTED || action == APPLY_DRIFTED)) {
			plumb_buf_printf(b, " (%s", o->fields[0].path);
			if (o->fields[0].manager && o->fields[0].manager[0])
				plumb_buf_printf(b, " by %s", o->fields[0].manager);
			plumb_buf_puts(b, ")");
		}
	}
}

/* Logs (and posts as an Event when post) the objects of r with action. */
void report(controller *c, gitsync_state *g, const char *uid, const char *cluster,
	const apply_result *r, apply_action action, const char *what, const char *type,
	const char *reason, const char *event_action, int post)
{
	if (!r->totals[action])
		return;
	plumb_buf b = PLUMB_BUF_INIT(1024);
	plumb_buf_printf(&b, "cluster %s: %s ", cluster, what);
	describe(&b, r, action, 10);
	plumb_info(what, "gitsync", g->key, "cluster", cluster, "detail", b.ptr);
	if (post)
		controller_events_post(c->events, g->ns, g->name, uid, type, reason, event_action, b.ptr);
	plumb_buf_free(&b);
}

/* The message of a cluster whose run had failures: the first three, each
 * "file:line: Kind ns/name (apiVersion): reason", and how many more, so the
 * status never grows with the size of the revision. */
char *failure_message(const apply_result *res, size_t failed)
{
	plumb_buf b = PLUMB_BUF_INIT(8192);
	size_t n = 0;
	if (res->invalid)
		plumb_buf_printf(&b, "%zu object%s failed validation, nothing applied or pruned: ",
			res->invalid, res->invalid == 1 ? "" : "s");
	else if (res->stopped && res->message)
		plumb_buf_printf(&b, "%s: ", res->message);
	for (size_t i = 0; i < res->count && n < 3; i++) {
		const apply_object_result *o = &res->objects[i];
		char *why;
		if (o->action != APPLY_FAILED && o->action != APPLY_CONFLICT)
			continue;
		why = plumb_strndup(o->message ? o->message : "", 600);
		plumb_buf_printf(&b, "%s%s%s%s %s%s%s (%s): %s", n++ ? "; " : "", o->origin ? o->origin : "",
			o->origin ? ": " : "", o->kind, o->ns[0] ? o->ns : "", o->ns[0] ? "/" : "", o->name,
			o->api_version, why ? why : "");
		free(why);
	}
	if (failed > 3)
		plumb_buf_printf(&b, "; and %zu more", failed - 3);
	return plumb_buf_detach(&b);
}

/* Records one sync's outcome in the cluster's entry of g's status:
 * *new_commit when it took a new commit (and *lag its seconds from first
 * seen to applied), *news when its message is new. */
void set_entry_result(controller *c, gitsync_state *g, const char *cl_name, const sync_outcome *o,
	int *new_commit, int *news, double *lag)
{
	const apply_result *res = o->res;
	double now = plumb_time_real();
	pthread_mutex_lock(&c->lock);
	controller_cluster_status *s = entry_locked(g, cl_name);
	*new_commit = *news = 0;
	if (s) {
		*news = o->message && (!s->message || strcmp(s->message, o->message));
		if (s->state != o->state || o->changed)
			s->last_sync_time = now;
		s->wait = o->wait;
		s->seeded = 0;
		if ((o->state == CONTROLLER_SYNCED || o->state == CONTROLLER_DRIFTED) && strcmp(s->commit, o->rev->commit)) {
			*new_commit = 1;
			snprintf(s->commit, sizeof(s->commit), "%s", o->rev->commit);
			s->lag_seconds = now - o->rev->first_seen;
			s->last_sync_time = now;
		}
		/* something changed in the cluster: its health timeout starts again,
		 * and the health it had says nothing about what was just applied
		 * until health_update() looks */
		if (o->changed || *new_commit) {
			s->progress_start = now;
			s->health_unsure = 1;
		}
		s->state = o->state;
		s->invalid = o->refused;
		s->objects = o->objects;
		s->drifted_count = (long)res->totals[APPLY_DRIFTED];
		cJSON_Delete(s->drifted_objects);
		s->drifted_objects = NULL;
		if (res->totals[APPLY_DRIFTED]) {
			s->drifted_objects = cJSON_CreateArray();
			for (size_t i = 0, n = 0; i < res->count && n < MAX_DRIFT_LIST; i++)
				if (res->objects[i].action == APPLY_DRIFTED) {
					cJSON_AddItemToArray(s->drifted_objects, drift_entry(&res->objects[i]));
					n++;
				}
		}
		set_str(&s->message, o->message);
	}
	*lag = s ? s->lag_seconds : -1;
	pthread_mutex_unlock(&c->lock);
}

/* A standby's webhook, handed to the leader. The Service may route a
 * delivery to a standby: it passes it on through status.webhookReceivedAt,
 * which the leader's GitSync informer sees change. A write to the status
 * subresource is what the install's RBAC grants; the GitSync's spec and
 * metadata stay the tenant's. */
void pass_webhook_on(controller *c, const char *ns, const char *name)
{
	char key[WORK_OBJECT_MAX], now[48];
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	plumb_time_micro(now, sizeof(now), plumb_time_real());
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "webhookReceivedAt", now);
	cJSON *body = status_body(PLUMB_API_GROUP_VERSION, "GitSync", ns, name, st);
	kube_apply_opts ao = { .field_manager = WEBHOOK_FIELD_MANAGER, .force = 1 };
	if (kube_apply_status(NULL, c->o.mgmt, &c->gitsync_res, ns, body, &ao) != 0)
		plumb_warn("standby could not pass a webhook on", "gitsync", key, "error", plumb_error_last());
	else
		plumb_info("webhook passed on to the leader", "gitsync", key);
	cJSON_Delete(body);
}

/* Writes a Cluster's status (the probe's one write); takes status over. */
void write_cluster_status(controller *c, const char *ns, const char *name, cJSON *status)
{
	char key[WORK_OBJECT_MAX];
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	cJSON *body = status_body(PLUMB_API_GROUP_VERSION, "Cluster", ns, name, status);
	kube_apply_opts ao = { .field_manager = APPLY_FIELD_MANAGER, .force = 1 };
	if (kube_apply_status(NULL, c->o.mgmt, &c->cluster_res, ns, body, &ao) != 0)
		plumb_warn("cannot write cluster status", "cluster", key, "error", plumb_error_last());
	cJSON_Delete(body);
}
