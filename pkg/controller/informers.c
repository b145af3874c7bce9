/* pkg/controller/informers.c: what plumbd knows of the management
 * cluster's GitSyncs and Clusters, and what their changes schedule.
 *
 * on_gitsync and on_cluster run on the watch hub's thread, under c->lock:
 * they keep c->gitsyncs (gitsync_state: the latest object, the last good
 * revision, the per-cluster status entries) and c->clusters (the objects),
 * and turn each change into work items (work.c) through the pure decisions
 * gitsync_event_decide and cluster_event_decide. selects() is the one rule
 * for "this GitSync targets this Cluster". gitsync_get/gitsync_put lend a
 * state to a worker for the length of a reconcile (its refs are under
 * c->lock). */
#include "controller/internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"

/* ---- GitSync states ------------------------------------------------------------ */

void revision_unref(revision *r)
{
	if (!r || --r->refs > 0)
		return;
	free(r->url);
	free(r->cred_id);
	free(r->path);
	free(r);
}

void cluster_status_free(controller_cluster_status *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->message);
	cJSON_Delete(s->drifted_objects);
	cJSON_Delete(s->unhealthy);
	free(s->health_message);
	free(s);
}

static void gitsync_unref(gitsync_state *g)
{
	if (!g || --g->refs > 0)
		return;
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&g->clusters, &i, &k, &v))
		cluster_status_free(v);
	plumb_map_free(&g->clusters, NULL);
	revision_unref(g->rev);
	cJSON_Delete(g->obj);
	gitsync_spec_free(g->spec);
	cJSON_Delete(g->last_written);
	cJSON_Delete(g->rollout);
	plumb_map_free(&g->intended, free);
	pthread_mutex_destroy(&g->status_lock);
	free(g->key);
	free(g->ns);
	free(g->name);
	free(g->stall_reason);
	free(g->stall_msg);
	free(g->handled_req);
	free(g);
}

void free_gitsync(void *g) { gitsync_unref(g); }

/* Seeds per-cluster entries from the status a previous leader wrote, so a
 * restart that finds nothing to do writes nothing either. */
static void seed_from_status(gitsync_state *g)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, plumb_json_get(g->obj, "status.clusters")) {
		const char *name = plumb_json_str(e, "name"), *state = plumb_json_str(e, "state"), *commit = plumb_json_str(e, "commit");
		if (!name || plumb_map_get(&g->clusters, name))
			continue;
		controller_cluster_status *s = calloc(1, sizeof(*s));
		if (!s)
			continue;
		s->name = plumb_strdup(name);
		s->state = CONTROLLER_PENDING;
		s->seeded = 1;
		s->health_unsure = 1;
		for (int st = CONTROLLER_PENDING; st <= CONTROLLER_DEGRADED; st++)
			if (state && strcmp(state, controller_state_name(st)) == 0)
				s->state = st;
		/* applied, waiting for health: Synced as far as the apply goes;
		 * the health is this leader's to find out */
		if (s->state == CONTROLLER_PROGRESSING || s->state == CONTROLLER_DEGRADED)
			s->state = CONTROLLER_SYNCED;
		/* the health as it was shown, so a restart writes nothing new; it is
		 * no verdict (health_unsure) until this leader looks */
		const char *health = plumb_json_str(e, "health");
		for (int h = CONTROLLER_HEALTH_HEALTHY; health && h <= CONTROLLER_HEALTH_DEGRADED; h++)
			if (!strcmp(health, controller_health_name(h)))
				s->health = h;
		snprintf(s->commit, sizeof(s->commit), "%s", commit ? commit : "");
		const cJSON *n = plumb_json_get(e, "objects");
		s->objects = cJSON_IsNumber(n) ? (long)n->valuedouble : 0;
		n = plumb_json_get(e, "drifted.count");
		s->drifted_count = cJSON_IsNumber(n) ? (long)n->valuedouble : 0;
		const cJSON *d = plumb_json_get(e, "drifted.objects");
		s->drifted_objects = d ? cJSON_Duplicate(d, 1) : NULL;
		const char *ts = plumb_json_str(e, "lastSyncTime");
		if (ts)
			plumb_time_parse(&s->last_sync_time, ts);
		n = plumb_json_get(e, "lagSeconds");
		s->lag_seconds = cJSON_IsNumber(n) ? n->valuedouble : -1;
		s->message = plumb_strdup(plumb_json_str(e, "message"));
		plumb_map_put(&g->clusters, name, s, NULL);
	}
	const char *handled = plumb_json_str(g->obj, "status.lastHandledRequestedAt");
	if (handled && !g->handled_req)
		g->handled_req = plumb_strdup(handled);
	const char *fetched = plumb_json_str(g->obj, "status.lastFetchedCommit");
	if (fetched && !g->fetched[0])
		snprintf(g->fetched, sizeof(g->fetched), "%s", fetched);
}

void gitsync_reset_locked(controller *c, gitsync_state *g, const cJSON *obj)
{
	size_t i = 0;
	const char *k;
	void *v;
	(void)c;
	while (plumb_map_next(&g->clusters, &i, &k, &v))
		cluster_status_free(v);
	plumb_map_free(&g->clusters, NULL);
	plumb_map_free(&g->intended, free);
	cJSON_Delete(g->rollout);
	g->rollout = NULL;
	revision_unref(g->rev);
	g->rev = NULL;
	g->fetched[0] = 0;
	g->fetched_generation = -1;
	free(g->handled_req);
	g->handled_req = NULL;
	free(g->stall_reason);
	free(g->stall_msg);
	g->stall_reason = g->stall_msg = NULL;
	if (obj) {
		cJSON *o = cJSON_Duplicate(obj, 1);
		if (o) {
			cJSON_Delete(g->obj);
			g->obj = o;
		}
	}
	seed_from_status(g);
}

/* ---- cluster selection ------------------------------------------------------------ */

/* Triggers the sync items of every GitSync that targets cluster cl_key.
 * Called with c->lock held. */
void trigger_cluster_syncs_locked(controller *c, const char *cl_key, double debounce_override)
{
	const cluster_state *cl = plumb_map_get(&c->clusters, cl_key);
	size_t i = 0;
	const char *k;
	void *v;
	if (!cl)
		return;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		if (state_selects(g, cl))
			trigger_sync(c, g->key, cl_key, debounce_override >= 0 ? debounce_override : state_debounce(g));
	}
}

/* Triggers sync items of gitsync g for every cluster it targets, and for
 * clusters it has a status entry for (so a deselected one leaves status).
 * Called with c->lock held. */
void trigger_gitsync_syncs_locked(controller *c, gitsync_state *g, double debounce)
{
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->clusters, &i, &k, &v)) {
		const cluster_state *cl = v;
		if (state_selects(g, cl)) {
			/* Listed as Pending until its first sync says more. */
			entry_locked(g, cl->spec->name);
			trigger_sync(c, g->key, k, debounce);
		}
	}
	i = 0;
	while (plumb_map_next(&g->clusters, &i, &k, &v)) {
		char cl_key[600];
		snprintf(cl_key, sizeof(cl_key), "%s/%s", g->ns, k);
		if (!plumb_map_get(&c->clusters, cl_key))
			trigger_sync(c, g->key, cl_key, debounce);
	}
}

/* ---- management informers (hub thread) ------------------------------------------------ */

/* 1 when a GitSync's Secret references differ between two parses: kept
 * Secrets may have lost their last reference. */
static int secret_refs_changed(const gitsync_spec *a, const gitsync_spec *b)
{
	return !a || !b || !streq(a->git.secret_name, b->git.secret_name) ||
		!streq(a->webhook_secret_name, b->webhook_secret_name);
}

gitsync_event_action gitsync_event_decide(const cJSON *old, const cJSON *obj, const char *handled_req)
{
	if (!old)
		return GITSYNC_EVENT_ALL;
	const cJSON *gen = plumb_json_get(obj, "metadata.generation"), *old_gen = plumb_json_get(old, "metadata.generation");
	long g = (long)(cJSON_IsNumber(gen) ? gen->valuedouble : 0);
	if (!cJSON_IsNumber(old_gen) || (long)old_gen->valuedouble != g)
		return GITSYNC_EVENT_ALL;   /* the spec changed */
	const char *req = annotation(obj, REQUESTED_AT);
	if (req && !streq(req, handled_req) && !streq(req, annotation(old, REQUESTED_AT)))
		return GITSYNC_EVENT_ALL;   /* plumbctl sync asked */
	const char *hook = plumb_json_str(obj, WEBHOOK_RECEIVED_AT);
	if (hook && !streq(hook, plumb_json_str(old, WEBHOOK_RECEIVED_AT)))
		return GITSYNC_EVENT_FETCH; /* a standby received a webhook */
	return GITSYNC_EVENT_NONE;
}

/* Keeps obj as its GitSync's latest and schedules what it asks for.
 * Returns 1 when a GitSync plumbd had changed its Secret references. */
static int gitsync_upsert_locked(controller *c, const cJSON *obj)
{
	char *key = obj_key(obj);
	gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
	cJSON *old = NULL;
	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g) {
			free(key);
			return 0;
		}
		g->refs = 1;
		g->key = key;
		key = NULL;
		g->ns = plumb_strdup(plumb_json_str(obj, "metadata.namespace"));
		g->name = plumb_strdup(plumb_json_str(obj, "metadata.name"));
		apply_gitsync_label(g->label, sizeof(g->label), g->ns, g->name);
		pthread_mutex_init(&g->status_lock, NULL);
		g->fetched_generation = -1;
		plumb_map_put(&c->gitsyncs, g->key, g, NULL);
	} else {
		old = g->obj;
	}
	g->obj = cJSON_Duplicate(obj, 1);
	gitsync_spec *spec = NULL;
	if (gitsync_spec_parse(&spec, obj) != 0)
		plumb_warn("gitsync not readable", "gitsync", g->key, "error", plumb_error_last());
	int refs_changed = old && secret_refs_changed(g->spec, spec);
	gitsync_spec_free(g->spec);
	g->spec = spec;
	free(key);
	if (!old)
		seed_from_status(g);
	if (!old && c->shards)
		controller_shards_poke(c->shards);
	gitsync_event_action act = gitsync_event_decide(old, obj, g->handled_req);
	/* plumbctl rollout pause, resume, abort */
	if (old && (!streq(annotation(old, ROLLOUT_PAUSED_ANNOTATION), annotation(obj, ROLLOUT_PAUSED_ANNOTATION)) ||
	    !streq(annotation(old, ROLLOUT_ABORT_ANNOTATION), annotation(obj, ROLLOUT_ABORT_ANNOTATION))))
		trigger_rollout_after(c, g->key, 0);
	cJSON_Delete(old);
	if (act == GITSYNC_EVENT_ALL) {
		trigger_src(c, g->key, 0);
		trigger_gitsync_syncs_locked(c, g, 0);
	} else if (act == GITSYNC_EVENT_FETCH) {
		/* A standby received a webhook: fetch, as for one of our own. */
		trigger_src(c, g->key, state_debounce(g));
	}
	return refs_changed;
}

/* Forgets a GitSync taken out of c->gitsyncs. */
static void gitsync_forget(void *v)
{
	gitsync_state *g = v;
	g->deleted = 1;
	plumb_info("gitsync deleted; its objects stay in the clusters", "gitsync", g->key);
	gitsync_unref(g);
}

static void gitsync_delete_locked(controller *c, const char *key)
{
	gitsync_state *g = plumb_map_del(&c->gitsyncs, key);
	if (g)
		gitsync_forget(g);
}

/* For a resync: a GitSync stays while the list (seen) holds it. */
static int gitsync_listed(const char *key, void *val, void *seen)
{
	(void)val;
	return plumb_map_has(seen, key);
}

void on_gitsync(kube_watch_event type, const cJSON *obj, void *data)
{
	controller *c = data;
	pthread_mutex_lock(&c->lock);
	if (type == KUBE_WATCH_RESYNC) {
		/* Replace everything: forget GitSyncs that are gone. */
		plumb_map seen = { 0 };
		const cJSON *it;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items")) {
			char *k = obj_key(it);
			plumb_map_put(&seen, k, (void *)1, NULL);
			free(k);
			gitsync_upsert_locked(c, it);
		}
		plumb_map_retain(&c->gitsyncs, gitsync_listed, &seen, gitsync_forget);
		plumb_map_free(&seen, NULL);
		secrets_prune_locked(c);
		c->synced[0] = 1;
	} else if (type == KUBE_WATCH_ADDED || type == KUBE_WATCH_MODIFIED) {
		if (gitsync_upsert_locked(c, obj))
			secrets_prune_locked(c);
	} else if (type == KUBE_WATCH_DELETED) {
		char *k = obj_key(obj);
		gitsync_delete_locked(c, k);
		secrets_prune_locked(c);
		free(k);
	}
	pthread_mutex_unlock(&c->lock);
}

void cache_replace_locked(plumb_map *m, const cJSON *obj)
{
	char *k = obj_key(obj);
	void *old = NULL;
	if (plumb_map_put(m, k, cJSON_Duplicate(obj, 1), &old) == 0)
		cJSON_Delete(old);
	free(k);
}

void cluster_state_free(void *p)
{
	cluster_state *cs = p;
	if (!cs)
		return;
	cJSON_Delete(cs->obj);
	gitsync_cluster_free(cs->spec);
	free(cs);
}

/* Keeps Cluster obj, parsed, in c->clusters. */
static void cluster_put_locked(controller *c, const cJSON *obj)
{
	cluster_state *cs = calloc(1, sizeof(*cs));
	char *k = obj_key(obj);
	void *old = NULL;
	if (cs && k && (cs->obj = cJSON_Duplicate(obj, 1)) && gitsync_cluster_parse(&cs->spec, obj) == 0 &&
	    plumb_map_put(&c->clusters, k, cs, &old) == 0) {
		cluster_state_free(old);
	} else {
		plumb_warn("cluster not kept", "cluster", k, "error", plumb_error_last());
		cluster_state_free(cs);
	}
	free(k);
}

int cluster_event_decide(const cJSON *old, const cJSON *obj, int *refs_changed)
{
	*refs_changed = old && !diff_json_equal(plumb_json_get(old, "spec.kubeConfigSecretRef"),
		plumb_json_get(obj, "spec.kubeConfigSecretRef"));
	/* Our own status writes need no reaction: only spec and labels matter. */
	return !old || !diff_json_equal(plumb_json_get(old, "spec"), plumb_json_get(obj, "spec")) ||
		!diff_json_equal(plumb_json_get(old, "metadata.labels"), plumb_json_get(obj, "metadata.labels"));
}

void on_cluster(kube_watch_event type, const cJSON *obj, void *data)
{
	controller *c = data;
	pthread_mutex_lock(&c->lock);
	if (type == KUBE_WATCH_RESYNC) {
		plumb_map_free(&c->clusters, cluster_state_free);
		const cJSON *it;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items"))
			cluster_put_locked(c, it);
		size_t i = 0;
		const char *k;
		void *v;
		while (plumb_map_next(&c->clusters, &i, &k, &v)) {
			trigger_probe(c, k);
			trigger_cluster_syncs_locked(c, k, 0);
		}
		secrets_prune_locked(c);
		c->synced[1] = 1;
	} else if (type == KUBE_WATCH_ADDED || type == KUBE_WATCH_MODIFIED) {
		char *k = obj_key(obj);
		int refs_changed = 0;
		const cluster_state *old = plumb_map_get(&c->clusters, k);
		int changed = cluster_event_decide(old ? old->obj : NULL, obj, &refs_changed);
		cluster_put_locked(c, obj);
		if (refs_changed)
			secrets_prune_locked(c);
		if (changed) {
			trigger_probe(c, k);
			trigger_cluster_syncs_locked(c, k, 0);
		}
		free(k);
	} else if (type == KUBE_WATCH_DELETED) {
		char *k = obj_key(obj);
		cluster_state_free(plumb_map_del(&c->clusters, k));
		secrets_prune_locked(c);
		/* GitSyncs drop the cluster's status entry on their next sync. */
		size_t i = 0;
		const char *gk;
		void *v;
		while (plumb_map_next(&c->gitsyncs, &i, &gk, &v))
			if (plumb_map_get(&((gitsync_state *)v)->clusters, plumb_json_str(obj, "metadata.name") ? plumb_json_str(obj, "metadata.name") : ""))
				trigger_sync(c, gk, k, 0);
		free(k);
	}
	pthread_mutex_unlock(&c->lock);
}

/* The GitSync with key, referenced (gitsync_unref under c->lock), or NULL. */
gitsync_state *gitsync_get(controller *c, const char *key)
{
	pthread_mutex_lock(&c->lock);
	gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
	if (g)
		g->refs++;
	pthread_mutex_unlock(&c->lock);
	return g;
}

void gitsync_put(controller *c, gitsync_state *g)
{
	pthread_mutex_lock(&c->lock);
	gitsync_unref(g);
	pthread_mutex_unlock(&c->lock);
}

