/* pkg/controller/sync_stage.c: the sync stage of one GitSync in one
 * Cluster (WORK_SYNC), run by a worker.
 *
 * reconcile_sync takes the GitSync's revision, renders it for the cluster
 * (render_for: substitutions, targetNamespace), runs the target's apply
 * engine for the GitSync (validate, apply, prune, drift: pkg/apply) through
 * the GitSync's identity, starts watches for the kinds it applied, turns the
 * engine's result into the cluster's status entry, metrics, Events and
 * logs, and writes the GitSync's status once, whichever way it ended. */
#include "controller/internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest/manifest.h"

/* spec.dependsOn: 1 when this cluster must wait (its entry says why) or
 * the GitSync's dependencies form a cycle (it stalls), else 0. A revision
 * the cluster already has is never held back: drift correction and prune
 * go on. */
static int depends_gate(controller *c, gitsync_state *g, const gitsync_spec *gs, const revision *rev,
	const char *cl_name)
{
	char cyc[600] = "";
	char *why = NULL;
	pthread_mutex_lock(&c->lock);
	int cycle = gs->ndepends_on && depends_cycle_locked(c, g, cyc, sizeof(cyc));
	const controller_cluster_status *s = plumb_map_get(&g->clusters, cl_name);
	int has_it = s && !strcmp(s->commit, rev->commit) && s->state != CONTROLLER_PENDING;
	int waits = !cycle && !has_it && gs->ndepends_on && depends_wait_locked(c, g, gs, cl_name, &why);
	int was_cycle = g->stall_reason && !strcmp(g->stall_reason, "DependencyCycle");
	pthread_mutex_unlock(&c->lock);
	if (cycle) {
		set_stall(c, g, "DependencyCycle", cyc);
		set_entry(c, g, cl_name, CONTROLLER_PENDING, cyc);
		return 1;
	}
	if (was_cycle)
		set_stall(c, g, NULL, NULL);
	if (waits) {
		set_entry(c, g, cl_name, CONTROLLER_PENDING, why);
		plumb_debug("waiting for a dependency", "gitsync", g->key, "cluster", cl_name, "detail", why);
	}
	free(why);
	return waits;
}

static int is_unreachable(int rc)
{
	return rc == PLUMB_EUNAVAILABLE || rc == PLUMB_ETIMEOUT || rc == PLUMB_EUNREACHABLE ||
		rc == PLUMB_ETLS;
}

int reconcile_sync(controller *c, const char *gs_key, const char *cl_key, double *next)
{
	gitsync_state *g = gitsync_get(c, gs_key);
	target *t = NULL;
	revision *rev = NULL;
	gitsync_spec *gs = NULL;
	gitsync_cluster *cl = NULL;
	gitsync_rendered r = { 0 };
	cJSON *desired = NULL;
	char *errmsg = NULL, *cl_name = NULL;
	apply_result res = { 0 };
	plumb_region *rg = NULL;   /* the render's and the run's JSON */
	int rc = 0, write_status = 0;
	double t0 = plumb_time_mono();
	const char *slash = strchr(cl_key, '/');
	cl_name = plumb_strdup(slash ? slash + 1 : cl_key);

	if (!g) {
		/* The GitSync is gone: drop its engine (objects stay), whichever
		 * identity's target holds it. */
		drop_engines(c, cl_key, gs_key, NULL);
		free(cl_name);
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	/* snapshots: the informer replaces the parsed objects on every event */
	const cluster_state *cs = plumb_map_get(&c->clusters, cl_key);
	int selected = state_selects(g, cs) && gitsync_spec_parse(&gs, g->obj) == 0 &&
		gitsync_cluster_parse(&cl, cs->obj) == 0;
	if (!selected) {
		controller_cluster_status *s = plumb_map_del(&g->clusters, cl_name);
		cluster_status_free(s);
	}
	rev = g->rev;
	if (rev)
		rev->refs++;
	*next = g->spec ? g->spec->git.interval : GITSYNC_INTERVAL_DEFAULT;
	pthread_mutex_unlock(&c->lock);
	if (!selected) {
		write_status = 1;
		goto cleanup;
	}
	if (gs->suspend || cl->suspend)
		goto cleanup;
	if (!rev) {
		set_entry(c, g, cl_name, CONTROLLER_PENDING, "waiting for the first revision");
		write_status = 1;
		goto cleanup;
	}

	if ((rc = depends_gate(c, g, gs, rev, cl_name))) {
		write_status = 1;
		rc = 0;   /* what it waits for triggers it (trigger_waiting_locked) */
		goto cleanup;
	}
	if (gs->rollout.set) {
		/* the commit the rollout means this cluster to have */
		char want[41] = "", wave[64] = "";
		pthread_mutex_lock(&c->lock);
		rollout_eval_locked(c, g);
		const char *w = plumb_map_get(&g->intended, cl_name);
		const controller_cluster_status *s = plumb_map_get(&g->clusters, cl_name);
		snprintf(want, sizeof(want), "%s", w ? w : "");
		snprintf(wave, sizeof(wave), "%s", s ? s->wave : "");
		pthread_mutex_unlock(&c->lock);
		if (!want[0]) {
			char *msg = plumb_asprintf("waiting for its wave %s of the rollout of %.12s", wave, rev->commit);
			set_entry(c, g, cl_name, CONTROLLER_PENDING, msg);
			free(msg);
			write_status = 1;
			goto cleanup;
		}
		if (strcmp(want, rev->commit)) {
			revision *other = calloc(1, sizeof(*other));
			if (!other || !(other->url = plumb_strdup(rev->url)) || !(other->path = plumb_strdup(rev->path)) ||
			    (rev->cred_id && !(other->cred_id = plumb_strdup(rev->cred_id)))) {
				if (other) {
					other->refs = 1;
					pthread_mutex_lock(&c->lock);
					revision_unref(other);
					pthread_mutex_unlock(&c->lock);
				}
				rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
				goto cleanup;
			}
			other->refs = 1;
			snprintf(other->commit, sizeof(other->commit), "%s", want);
			other->first_seen = plumb_time_real();
			pthread_mutex_lock(&c->lock);
			revision_unref(rev);
			pthread_mutex_unlock(&c->lock);
			rev = other;
		}
	}
	pthread_mutex_lock(&c->lock);
	controller_cluster_status *ent = entry_locked(g, cl_name);
	if (ent)   /* what this sync tries, for the rollout to judge */
		snprintf(ent->attempted, sizeof(ent->attempted), "%s", rev->commit);
	pthread_mutex_unlock(&c->lock);

	/* Every request for this GitSync goes through its identity's client. */
	char user[600];
	if ((rc = gitsync_user(user, sizeof(user), gs, c->o.default_service_account))) {
		set_entry(c, g, cl_name, CONTROLLER_FAILED, plumb_error_last());
		server_counter_add(c->m.reconciles, 1, cl_name, "failure");
		write_status = 1;
		rc = 0; /* waits for a spec change */
		goto cleanup;
	}
	if ((rc = target_for(&t, c, cl_key, user))) {
		set_entry(c, g, cl_name, CONTROLLER_FAILED, plumb_error_last());
		server_counter_add(c->m.reconciles, 1, cl_name, "failure");
		write_status = 1;
		goto cleanup;
	}
	drop_engines(c, cl_key, gs_key, t);
	pthread_mutex_lock(&t->lock);
	size_t mine = (size_t)(uintptr_t)plumb_map_get(&t->label_counts, g->label);
	if (t->over_cap)   /* its cache is not whole: nothing is decided from it */
		rc = plumb_error_set(PLUMB_ETOOBIG, "%s", t->cap_msg);
	else if (mine > c->o.gitsync_max_objects)
		rc = plumb_error_set(PLUMB_ETOOBIG, "the cluster has %zu objects labelled for this GitSync, "
			"more than plumbd caches for one GitSync (--gitsync-cache-max-objects %zu)",
			mine, c->o.gitsync_max_objects);
	pthread_mutex_unlock(&t->lock);
	if (rc) {
		set_entry(c, g, cl_name, CONTROLLER_FAILED, plumb_error_last());
		server_counter_add(c->m.reconciles, 1, cl_name, "failure");
		write_status = 1;
		goto cleanup;
	}
	/* The revision's objects live in a region of their own, given back whole
	 * at the end: they stay for the whole run, and in the heap they would
	 * pin its pages under whatever else the run leaves behind. Only plain
	 * strings leave the region (errmsg). The run itself allocates from the
	 * heap: what it parses and builds per object is freed as it goes, which
	 * a region would keep until the end. */
	/* a rendered path runs kustomize or helm with this cluster's version */
	char kube_version[64];
	pthread_mutex_lock(&t->lock);
	snprintf(kube_version, sizeof(kube_version), "%s", t->version);
	pthread_mutex_unlock(&t->lock);
	render_tools tools = { .kustomize = c->o.kustomize_bin, .helm = c->o.helm_bin };
	char owner[600];
	snprintf(owner, sizeof(owner), "%s/%s", g->ns, g->name);
	gitsync_render_env renv = { .tools = &tools, .limits = &c->o.render_limits, .kube_version = kube_version[0] ? kube_version : NULL,
		.discovery = t->client, .cache = c->render_cache, .owner = owner };
	gitsync_revision grev = { .cache = c->sources, .url = rev->url, .cred_id = rev->cred_id,
		.commit = rev->commit };
	gitsync_render_info rinfo = { 0 };
	rg = plumb_region_new();
	plumb_region_enter(rg);
	rc = gitsync_render_commit(&r, &errmsg, &grev, rev->path, gs, cl, &renv, NULL, &rinfo);
	render_kind kind = rinfo.kind;
	desired = r.objects;
	r.objects = NULL;
	plumb_region_leave();
	if (kind != RENDER_PLAIN && (!rc || errmsg)) {
		/* what the tool cost: the bench reads this line */
		char secs[32], rss[32];
		snprintf(secs, sizeof(secs), "%.3f", rinfo.seconds);
		snprintf(rss, sizeof(rss), "%ld", rinfo.peak_rss_kb);
		plumb_log(rinfo.cached ? PLUMB_LOG_DEBUG : PLUMB_LOG_INFO, "rendered", "gitsync", gs_key,
			"cluster", cl_name, "commit", rev->commit, "kind", render_kind_name(kind),
			"cached", rinfo.cached ? "true" : "false", "seconds", secs, "peak_rss_kb", rss,
			"result", rc ? "failed" : "ok", (char *)NULL);
	}
	if (rc && !errmsg) {
		/* not the revision's fault (the mirror could not be read): retried */
		set_entry(c, g, cl_name, CONTROLLER_FAILED, plumb_error_last());
		server_counter_add(c->m.reconciles, 1, cl_name, "failure");
		write_status = 1;
		goto cleanup;
	}
	if (rc) {
		char *msg = plumb_asprintf("render for %s at %.12s: %s", cl_name, rev->commit,
			errmsg ? errmsg : plumb_error_last());
		set_entry(c, g, cl_name, CONTROLLER_FAILED, msg);
		if (kind == RENDER_PLAIN && !gitsync_path_per_cluster(rev->path))
			controller_events_post(c->events, g->ns, g->name, gs->uid,
				"Warning", "RenderFailed", "Render", msg);
		else   /* a kustomize or helm render stalls the GitSync (one event per message) */
			set_stall(c, g, "RenderFailed", msg);
		free(msg);
		server_counter_add(c->m.reconciles, 1, cl_name, "stalled");
		write_status = 1;
		rc = 0; /* a render error waits for a new commit, not a retry */
		goto cleanup;
	}

	if (kind != RENDER_PLAIN || gitsync_path_per_cluster(rev->path)) {
		/* this cluster renders again: its own render stall is over */
		char mine_prefix[600];
		snprintf(mine_prefix, sizeof(mine_prefix), "render for %s at ", cl_name);
		pthread_mutex_lock(&c->lock);
		int stalled = g->stall_reason && !strcmp(g->stall_reason, "RenderFailed") && g->stall_msg &&
			!strncmp(g->stall_msg, mine_prefix, strlen(mine_prefix));
		pthread_mutex_unlock(&c->lock);
		if (stalled)
			set_stall(c, g, NULL, NULL);
	}
	apply_engine *e = target_engine(t, g);
	apply_opts ao;
	gitsync_apply_opts(&ao, gs);
	ao.live = target_live;
	ao.live_data = t;
	ao.no_diffs = 1;   /* status and events name fields; plumbctl diff shows diffs */
	ao.origins = (const char *const *)r.origins;
	ao.norigins = r.origins ? r.count : 0;
	/* the kinds to watch, before the engine takes the objects over */
	cJSON *kinds = cJSON_CreateObject();
	const cJSON *obj;
	long nobjects = cJSON_GetArraySize(desired);
	cJSON_ArrayForEach(obj, desired) {
		char gvk[900];
		/* an identity's target watches per namespace: the kinds per namespace */
		const char *ons = t->identity ? plumb_json_str(obj, "metadata.namespace") : NULL;
		snprintf(gvk, sizeof(gvk), "%s|%s|%s", plumb_json_str(obj, "apiVersion") ? plumb_json_str(obj, "apiVersion") : "",
			plumb_json_str(obj, "kind") ? plumb_json_str(obj, "kind") : "", ons ? ons : "");
		if (kinds && !cJSON_GetObjectItemCaseSensitive(kinds, gvk)) {
			cJSON *k = cJSON_AddObjectToObject(kinds, gvk);
			cJSON_AddStringToObject(k, "apiVersion", plumb_json_str(obj, "apiVersion") ? plumb_json_str(obj, "apiVersion") : "");
			cJSON_AddStringToObject(k, "kind", plumb_json_str(obj, "kind") ? plumb_json_str(obj, "kind") : "");
			cJSON_AddStringToObject(k, "namespace", ons ? ons : g->ns);
		}
	}
	rc = e ? apply_engine_run_take(&res, e, desired, &ao) : PLUMB_ENOMEM;
	if (!e)
		cJSON_Delete(desired);
	desired = NULL;
	/* the run's parallel connections are not needed until the next one */
	kube_client_shrink(t->client, 2);

	/* Watch what we manage so drift is seen at once (and no LIST is needed).
	 * An identity watches only the kinds (per namespace) it could apply:
	 * what it may not touch it may usually not watch either, and a watch
	 * refused with 403 would retry for ever. */
	cJSON *applied = t->identity ? cJSON_CreateObject() : NULL;
	for (size_t i = 0; applied && i < res.count; i++) {
		const apply_object_result *o = &res.objects[i];
		char gvk[900];
		if (o->action == APPLY_FAILED)
			continue;
		snprintf(gvk, sizeof(gvk), "%s|%s|%s", o->api_version ? o->api_version : "",
			o->kind ? o->kind : "", o->ns && o->ns[0] ? o->ns : g->ns);
		if (!cJSON_GetObjectItemCaseSensitive(applied, gvk))
			cJSON_AddBoolToObject(applied, gvk, 1);
	}
	cJSON_ArrayForEach(obj, kinds) {
		kube_resource kr;
		char gvk[900];
		snprintf(gvk, sizeof(gvk), "%s|%s|%s", plumb_json_str(obj, "apiVersion"), plumb_json_str(obj, "kind"),
			plumb_json_str(obj, "namespace"));
		if (applied && !cJSON_GetObjectItemCaseSensitive(applied, gvk))
			continue;
		if (kube_resolve_object(&kr, t->client, obj) == 0)
			target_watch_kind(c, t, &kr, plumb_json_str(obj, "namespace"));
	}
	cJSON_Delete(applied);
	cJSON_Delete(kinds);

	size_t failed = res.totals[APPLY_FAILED] + res.totals[APPLY_CONFLICT];
	size_t changed = res.totals[APPLY_CREATED] + res.totals[APPLY_UPDATED] +
		res.totals[APPLY_PRUNED] + res.totals[APPLY_CORRECTED];
	controller_cluster_state state;
	char *message = NULL;
	int refused = 0;   /* the revision itself was refused by this cluster */
	if (rc) {
		state = is_unreachable(rc) ? CONTROLLER_UNREACHABLE : CONTROLLER_FAILED;
		message = plumb_strdup(plumb_error_last());
	} else if (failed) {
		state = CONTROLLER_FAILED;
		message = failure_message(&res, failed);
		/* Failures without an answer from the API server are an outage, not
		 * a bad object (and say nothing about the revision). */
		size_t outage = 0;
		for (size_t i = 0; i < res.count; i++)
			if (res.objects[i].action == APPLY_FAILED && is_unreachable(res.objects[i].code) &&
			    res.objects[i].http_status == 0)
				outage++;
		if (outage && outage == res.totals[APPLY_FAILED])
			state = CONTROLLER_UNREACHABLE;
		refused = res.invalid && !outage;
	} else if (res.totals[APPLY_DRIFTED]) {
		state = CONTROLLER_DRIFTED;
	} else {
		state = CONTROLLER_SYNCED;
	}
	if (!message && res.message)
		message = plumb_strdup(res.message);

	int new_commit = 0, news = 0;
	double lag = -1;
	set_entry_result(c, g, cl_name, &(sync_outcome){ .state = state, .message = message,
		.refused = refused, .changed = changed, .objects = nobjects, .res = &res, .rev = rev,
		.wait = gs->wait || gs->rollout.set }, &new_commit, &news, &lag);
	if (!rc)
		health_update(c, g, t, cl_name);

	/* Metrics, events, logs. */
	server_counter_add(c->m.applied, (double)(res.totals[APPLY_CREATED] + res.totals[APPLY_UPDATED]), cl_name);
	server_counter_add(c->m.pruned, (double)res.totals[APPLY_PRUNED], cl_name);
	server_counter_add(c->m.corrections, (double)res.totals[APPLY_CORRECTED], cl_name);
	server_gauge_set(c->m.drifted, (double)res.totals[APPLY_DRIFTED], gs_key, cl_name);
	if (new_commit && lag >= 0)
		server_histogram_observe(c->m.lag, lag, cl_name);
	const char *uid = gs->uid;
	char shortc[13];
	snprintf(shortc, sizeof(shortc), "%.12s", rev->commit);
	if (res.totals[APPLY_CREATED] + res.totals[APPLY_UPDATED]) {
		char note[512];
		snprintf(note, sizeof(note), "cluster %s, commit %s: %zu created, %zu updated", cl_name,
			shortc, res.totals[APPLY_CREATED], res.totals[APPLY_UPDATED]);
		controller_events_post(c->events, g->ns, g->name, uid, "Normal", "Applied", "Apply", note);
		plumb_info("applied", "gitsync", gs_key, "cluster", cl_name, "commit", rev->commit, "detail", note);
	}
	report(c, g, uid, cl_name, &res, APPLY_PRUNED, "pruned", "Normal", "Pruned", "Prune", 1);
	report(c, g, uid, cl_name, &res, APPLY_CORRECTED, "corrected drift in", "Normal",
		"DriftCorrected", "Correct", 1);
	/* Reported drift is an event when it is news, not on every look. */
	report(c, g, uid, cl_name, &res, APPLY_DRIFTED, "drift in", "Warning", "DriftDetected",
		"Detect", res.writes || changed || new_commit);
	if (state == CONTROLLER_FAILED || state == CONTROLLER_UNREACHABLE)
		plumb_warn("sync failed", "gitsync", gs_key, "cluster", cl_name, "error", message);
	if (news && (refused || res.stopped)) {
		/* once per new failure, not on every retry */
		char *note = plumb_asprintf("cluster %s, commit %s: %s", cl_name, shortc, message);
		controller_events_post(c->events, g->ns, g->name, uid, "Warning",
			refused ? "ValidationFailed" : "ApplyFailed", refused ? "Validate" : "Apply",
			note ? note : message);
		free(note);
	}
	if (state == CONTROLLER_UNREACHABLE)
		trigger_probe(c, cl_key); /* so the Cluster's Ready condition says so too */
	free(message);
	server_counter_add(c->m.reconciles, 1, cl_name,
		state == CONTROLLER_SYNCED || state == CONTROLLER_DRIFTED ? "success" : "failure");
	server_histogram_observe(c->m.duration, plumb_time_mono() - t0, cl_name);
	write_status = 1;
	if (rc == 0 && failed)
		rc = state == CONTROLLER_UNREACHABLE ? PLUMB_EUNAVAILABLE : PLUMB_ERROR;
cleanup:
	apply_result_free(&res);
	cJSON_Delete(desired);
	gitsync_rendered_free(&r);
	plumb_region_free(rg);
	gitsync_spec_free(gs);
	gitsync_cluster_free(cl);
	free(errmsg);
	free(cl_name);
	/* A quiet target keeps one pooled connection (~85 KiB: curl handle,
	 * TLS context and state) for its probe and next sync: closing it too
	 * would cost a TLS handshake a minute per cluster (~10 ms of CPU
	 * measured on the bench's loaded machine, bench/README.md). */
	if (t)
		kube_client_shrink(t->client, 1);
	if (t)
		target_unref(c, t);
	if (rev) {
		pthread_mutex_lock(&c->lock);
		revision_unref(rev);
		pthread_mutex_unlock(&c->lock);
	}
	/* the sync stage's one status write, whichever way it ended */
	if (write_status) {
		pthread_mutex_lock(&c->lock);
		if (g->spec && g->spec->rollout.set)
			rollout_eval_locked(c, g);   /* a failure halts it, a success moves it on */
		pthread_mutex_unlock(&c->lock);
		write_gitsync_status(c, g);
	}
	gitsync_put(c, g);
	return rc;
}

