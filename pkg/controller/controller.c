/* pkg/controller/controller.c: the controller's life and its workers.
 *
 * controller_new resolves the plumb.dev resources and opens the Git cache;
 * controller_start starts the three management watches (informers.c,
 * secrets.c) on the watch hub's thread and the workers; the leader elector
 * (leader.c, driven by cmd/plumbd) flips controller_set_leading, and only a
 * leader's workers take work. A worker takes a work item from the queue
 * (queue.c), reads it (work.c) and runs its stage: reconcile_source
 * (source_stage.c), reconcile_sync (sync_stage.c) or reconcile_probe
 * (targets.c). controller_webhook is called from the HTTP server's threads.
 *
 * Threads and locks: see internal.h. */
#include "controller/internal.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- metrics ------------------------------------------------------------------ */

static void metrics_init(controller *c)
{
	server_metrics *r = c->o.metrics;
	const char *cl[] = { "cluster" }, *clres[] = { "cluster", "result" },
		*gscl[] = { "gitsync", "cluster" }, *gs[] = { "gitsync" };
	static const double lag_b[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };
	static const double dur_b[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
	if (!r)
		return;
	c->m.lag = server_histogram(r, "plumb_sync_lag_seconds",
		"Seconds from a commit first seen to applied in a cluster.", 1, cl, 10, lag_b);
	c->m.duration = server_histogram(r, "plumb_reconcile_duration_seconds",
		"Duration of one (GitSync, Cluster) reconcile.", 1, cl, 11, dur_b);
	c->m.reconciles = server_counter(r, "plumb_reconcile_total",
		"Reconciles of (GitSync, Cluster) items by result.", 2, clres);
	c->m.applied = server_counter(r, "plumb_objects_applied_total",
		"Objects created or updated.", 1, cl);
	c->m.pruned = server_counter(r, "plumb_objects_pruned_total", "Objects pruned.", 1, cl);
	c->m.drifted = server_gauge(r, "plumb_drifted_objects",
		"Objects drifted and not corrected.", 2, gscl);
	c->m.corrections = server_counter(r, "plumb_drift_corrections_total",
		"Drifted objects re-applied.", 1, cl);
	c->m.depth = server_gauge(r, "plumb_workqueue_depth", "Items waiting in the work queue.", 0, NULL);
	c->m.retries = server_counter(r, "plumb_workqueue_retries_total", "Items retried after a failure.", 0, NULL);
	c->m.fetch_duration = server_histogram(r, "plumb_git_fetch_duration_seconds",
		"Duration of git fetches.", 1, gs, 11, dur_b);
	c->m.fetch_errors = server_counter(r, "plumb_git_fetch_errors_total", "Failed git fetches.", 1, gs);
	c->m.cluster_up = server_gauge(r, "plumb_cluster_up", "1 when the cluster's API answers.", 1, cl);
	c->m.leader = server_gauge(r, "plumb_leader", "1 while this replica leads.", 0, NULL);
	c->m.gs_ready = server_gauge(r, "plumb_gitsync_ready",
		"1 when the GitSync's Ready condition is True (as last written by the leader).", 1, gs);
	c->m.gs_stalled = server_gauge(r, "plumb_gitsync_stalled",
		"1 while the GitSync is Stalled (fetch, credentials or an invalid revision).", 1, gs);
	c->m.health = server_gauge(r, "plumb_cluster_health",
		"Health of what a GitSync applied in a cluster: 1 Healthy, 0 Progressing, -1 Degraded.", 2, gscl);
	static const double healthy_b[] = { 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600 };
	c->m.time_to_healthy = server_histogram(r, "plumb_time_to_healthy_seconds",
		"Seconds from a change applied in a cluster to all of the GitSync's objects there healthy.",
		1, cl, 10, healthy_b);
	c->m.rollout_wave = server_gauge(r, "plumb_rollout_wave",
		"spec.rollout: the current wave (1 = the first; waves + 1 once every wave succeeded).", 1, gs);
	c->m.rollout_halted = server_gauge(r, "plumb_rollout_halted",
		"spec.rollout: 1 while the rollout is halted by a failure or aborted.", 1, gs);
	server_gauge_set(c->m.leader, 0);
}

/* ---- workers ---------------------------------------------------------------------------- */

static void update_queue_metrics(controller *c)
{
	server_gauge_set(c->m.depth, (double)controller_queue_depth(c->queue));
	unsigned long r = controller_queue_retries(c->queue);
	pthread_mutex_lock(&c->lock);
	unsigned long delta = r - c->last_retries;
	c->last_retries = r;
	pthread_mutex_unlock(&c->lock);
	if (delta)
		server_counter_add(c->m.retries, (double)delta);
}

/* Runs one work item; on failure it is retried after its backoff, on
 * success again after what the stage asked for (*next: poll interval,
 * probe period). */
static void process(controller *c, const char *key)
{
	work_item w;
	double next = 0;
	gitsync_state *owned = NULL;
	int rc = work_parse(&w, key);
	if (rc == 0 && c->sharded && w.gitsync[0]) {
		/* --shards: only the GitSyncs this replica owns; whoever gains
		 * one looks at all of it */
		pthread_mutex_lock(&c->lock);
		owned = plumb_map_get(&c->gitsyncs, w.gitsync);
		int held = owned && owned->held, active = shard_active(c);
		if (held && active) {
			owned->refs++;
			owned->inflight++;
		} else {
			owned = NULL;
		}
		pthread_mutex_unlock(&c->lock);
		if (held && !active) {
			/* the Lease renewal is late: this item waits for it, or for the
			 * claim that follows if the GitSync was lost meanwhile */
			controller_queue_add_after(c->queue, key, 0.5);
			return;
		}
		if (!owned) {
			controller_queue_forget(c->queue, key);
			return;
		}
	}
	if (rc == 0) {
		switch (w.kind) {
		case WORK_SOURCE: rc = reconcile_source(c, w.gitsync, &next); break;
		case WORK_SYNC: rc = reconcile_sync(c, w.gitsync, w.cluster, &next); break;
		case WORK_PROBE: rc = reconcile_probe(c, w.cluster, &next); break;
		case WORK_HEALTH: rc = reconcile_health(c, w.gitsync, w.cluster, &next); break;
		case WORK_ROLLOUT: rc = reconcile_rollout(c, w.gitsync, &next); break;
		}
	} else {
		plumb_warn("dropping a work item", "item", key, "error", plumb_error_last());
		return;
	}
	if (owned) {
		pthread_mutex_lock(&c->lock);
		owned->inflight--;
		pthread_mutex_unlock(&c->lock);
		gitsync_put(c, owned);
	}
	if (rc) {
		double d = controller_queue_backoff(c->queue, key, 0);
		char ds[32];
		snprintf(ds, sizeof(ds), "%.1fs", d);
		plumb_debug("retrying", "item", key, "after", ds, "error", plumb_error_last());
	} else {
		controller_queue_forget(c->queue, key);
		if (next > 0)
			controller_queue_add_after(c->queue, key, next);
	}
}

static void *worker(void *arg)
{
	controller *c = arg;
	char why[128];
	while (!c->stopping) {
		/* Only the leader works, and only once GitSyncs, Clusters and
		 * Secrets are all listed: a Cluster looked at before its Secret is
		 * known would be reported broken for nothing. */
		if (!(c->sharded ? shard_active(c) : c->leading) || !controller_ready(c, why, sizeof(why))) {
			plumb_sleep(0.2);
			continue;
		}
		char *key = NULL;
		int rc = controller_queue_get(c->queue, &key, 0.5);
		if (rc == PLUMB_ECANCELED)
			break;
		if (rc)
			continue;
		if (!(c->sharded ? shard_active(c) : c->leading)) {
			/* Lost the lease while waiting: leave it for the next leader. */
			controller_queue_done(c->queue, key);
			controller_queue_add_after(c->queue, key, 0);
			free(key);
			continue;
		}
		c->in_flight++;
		process(c, key);
		c->in_flight--;
		/* A reconcile parses and drops whole revisions: hand the freed
		 * memory back instead of keeping the peak for good. */
		malloc_trim(0);
		if (plumb_log_enabled(PLUMB_LOG_DEBUG)) {
			struct mallinfo2 mi = mallinfo2();
			char inuse[32], heap[32], keep[32];
			snprintf(inuse, sizeof(inuse), "%zu", mi.uordblks + mi.hblkhd);
			snprintf(heap, sizeof(heap), "%zu", mi.arena + mi.hblkhd);
			snprintf(keep, sizeof(keep), "%zu", plumb_keep_mapped());
			plumb_debug("memory after reconcile", "item", key, "heap_in_use", inuse,
				"heap", heap, "keep_mapped", keep);
		}
		controller_queue_done(c->queue, key);
		update_queue_metrics(c);
		free(key);
	}
	return NULL;
}

static void *hub_main(void *arg)
{
	controller *c = arg;
	kube_watch_hub_run(c->hub);
	return NULL;
}

/* ---- public API ---------------------------------------------------------------------------- */

int controller_new(controller **out, const controller_opts *opts)
{
	controller *c = calloc(1, sizeof(*c));
	int rc;
	if (!c)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	c->o = *opts;
	if (!c->o.workers)
		c->o.workers = 4;
	if (!c->o.target_max_objects)
		c->o.target_max_objects = CONTROLLER_TARGET_MAX_OBJECTS;
	if (!c->o.target_max_bytes)
		c->o.target_max_bytes = CONTROLLER_TARGET_MAX_BYTES;
	if (!c->o.gitsync_max_objects)
		c->o.gitsync_max_objects = CONTROLLER_GITSYNC_MAX_OBJECTS;
	if (c->o.target_cache_retry <= 0)
		c->o.target_cache_retry = CONTROLLER_TARGET_CACHE_RETRY;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->lead_cond, NULL);
	metrics_init(c);
	if ((rc = kube_resolve(&c->gitsync_res, opts->mgmt, PLUMB_API_GROUP_VERSION, "GitSync")) ||
	    (rc = kube_resolve(&c->cluster_res, opts->mgmt, PLUMB_API_GROUP_VERSION, "Cluster"))) {
		plumb_error_prefix(rc, "the " PLUMB_API_GROUP " CRDs are not installed (kubectl apply -f manifests/crds/)");
		goto fail;
	}
	if ((rc = kube_resolve(&c->secret_res, opts->mgmt, "v1", "Secret")))
		goto fail;
	if ((rc = controller_queue_new(&c->queue, 1, 300)) ||
	    (rc = kube_watch_hub_new(&c->hub)) ||
	    (rc = source_cache_new(&c->sources, opts->cache_dir)) ||
	    (rc = gitsync_render_cache_new(&c->render_cache, 0, 0)) ||
	    (rc = controller_events_new(&c->events, opts->mgmt, opts->identity)))
		goto fail;
	*out = c;
	return 0;
fail:
	controller_free(c);
	return rc;
}

int controller_start(controller *c)
{
	kube_watch_opts wo = { .ns = c->o.ns };
	kube_watch_opts swo = { .ns = c->o.ns, .list_limit = SECRET_LIST_LIMIT, .reduce = reduce_secret };
	int rc;
	if ((rc = kube_watch_start(&c->mgmt_watches[0], c->hub, c->o.mgmt, &c->gitsync_res, &wo, on_gitsync, c)) ||
	    (rc = kube_watch_start(&c->mgmt_watches[1], c->hub, c->o.mgmt, &c->cluster_res, &wo, on_cluster, c)) ||
	    (rc = kube_watch_start(&c->mgmt_watches[2], c->hub, c->o.mgmt, &c->secret_res, &swo, on_secret, c)))
		return rc;
	if (pthread_create(&c->hub_thread, NULL, hub_main, c) != 0)
		return plumb_error_set(PLUMB_EIO, "cannot start the watch thread");
	c->hub_started = 1;
	c->workers = calloc(c->o.workers, sizeof(pthread_t));
	if (!c->workers)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (unsigned i = 0; i < c->o.workers; i++) {
		if (pthread_create(&c->workers[i], NULL, worker, c) != 0)
			return plumb_error_set(PLUMB_EIO, "cannot start worker threads");
		c->nworkers++;
	}
	return 0;
}

void controller_set_leading(controller *c, int leading)
{
	c->leading = leading;
	server_gauge_set(c->m.leader, leading ? 1 : 0);
	if (!leading)
		return;
	/* A new leader looks at everything once. */
	pthread_mutex_lock(&c->lock);
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		/* a rollout goes on from what the last leader wrote */
		cJSON_Delete(g->rollout);
		g->rollout = NULL;
		trigger_src(c, k, 0);
		trigger_gitsync_syncs_locked(c, g, 0);
	}
	i = 0;
	while (plumb_map_next(&c->clusters, &i, &k, &v))
		trigger_probe(c, k);
	pthread_mutex_unlock(&c->lock);
}

int controller_ready(controller *c, char *why, size_t whylen)
{
	static const char *const names[] = { "GitSyncs", "Clusters", "Secrets" };
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < 3; i++) {
		if (!c->synced[i]) {
			pthread_mutex_unlock(&c->lock);
			snprintf(why, whylen, "%s not listed yet", names[i]);
			return 0;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return 1;
}

void controller_webhook(controller *c, const char *ns, const char *name)
{
	char key[600];
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	pthread_mutex_lock(&c->lock);
	gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
	double debounce = g ? state_debounce(g) : 0;
	int mine = g && (c->sharded ? g->held : c->leading);
	pthread_mutex_unlock(&c->lock);
	if (!g)
		return;
	if (mine) {
		trigger_src(c, key, debounce);
		return;
	}
	pass_webhook_on(c, ns, name);
}

int controller_webhook_secret(controller *c, char **out, size_t *outlen, const char *ns, const char *name)
{
	char key[600];
	int rc = PLUMB_ENOTFOUND;
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	secret_ensure_ref(c, SECRET_REF_WEBHOOK, key);
	pthread_mutex_lock(&c->lock);
	gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
	const char *sname = g && g->spec ? g->spec->webhook_secret_name : NULL;
	if (sname) {
		char sk[600];
		snprintf(sk, sizeof(sk), "%s/%s", ns, sname);
		const cJSON *tok = cJSON_GetObjectItemCaseSensitive(plumb_json_get(plumb_map_get(&c->secrets, sk), "data"), "token");
		if (cJSON_IsString(tok))
			rc = plumb_base64_decode(out, outlen, tok->valuestring, strlen(tok->valuestring));
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int controller_stop(controller *c, double deadline)
{
	c->leading = 0;
	double until = plumb_time_mono() + deadline;
	while (c->in_flight > 0 && plumb_time_mono() < until)
		plumb_sleep(0.05);
	int drained = c->in_flight == 0;
	c->stopping = 1;
	controller_queue_shutdown(c->queue);
	return drained ? 0 : plumb_error_set(PLUMB_ETIMEOUT,
		"%d reconcile(s) still running after %.0fs", (int)c->in_flight, deadline);
}

void controller_free(controller *c)
{
	if (!c)
		return;
	c->stopping = 1;
	if (c->queue)
		controller_queue_shutdown(c->queue);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	free(c->workers);
	if (c->hub_started) {
		kube_watch_hub_stop(c->hub);
		pthread_join(c->hub_thread, NULL);
	}
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->targets, &i, &k, &v)) {
		target *t = v;
		t->refs = 1;
		target_unref(c, t);
	}
	plumb_map_free(&c->targets, NULL);
	kube_watch_hub_free(c->hub);
	plumb_map_free(&c->gitsyncs, free_gitsync);
	plumb_map_free(&c->clusters, cluster_state_free);
	plumb_map_free(&c->secrets, free_json);
	plumb_map_free(&c->secret_misses, free);
	for (size_t j = 0; j < c->shard_nmembers; j++)
		free(c->shard_members[j]);
	free(c->shard_members);
	for (size_t j = 0; j < c->shard_nprev; j++)
		free(c->shard_prev_members[j]);
	free(c->shard_prev_members);
	controller_events_free(c->events);
	source_cache_free(c->sources);
	gitsync_render_cache_free(c->render_cache);
	controller_queue_free(c->queue);
	pthread_cond_destroy(&c->lead_cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

