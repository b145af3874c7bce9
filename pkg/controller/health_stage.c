/* pkg/controller/health_stage.c: the health of what a GitSync applied in
 * one cluster, read from the target's watch cache.
 *
 * Every object the GitSync's engine applied or verified in the target is
 * looked up in the cache (livecache.c keeps each entry's pkg/health state,
 * and why when it is not Current). An object counts as healthy only when
 * the cache holds it at exactly the resourceVersion the engine applied or
 * verified: right after a write the watch may not have delivered the
 * applied version yet, and the version it still holds would speak for the
 * old spec. The echo of the write triggers a health item (livecache.c), so
 * the answer follows without polling.
 *
 * health_update() runs at the end of every sync (sync_stage.c) and as the
 * WORK_HEALTH item (reconcile_health), triggered by those echoes and, while
 * a cluster is Progressing, at its healthTimeout. It writes the cluster's
 * status entry (health, the first unhealthy objects, the message), the
 * plumb_cluster_health gauge and the time-to-healthy histogram, posts an
 * Event when the cluster turns Healthy or Degraded, and wakes what waits
 * for this GitSync in this cluster (dependsOn, rollout).
 *
 * Locks: the engine's objects are copied under t->lock (and the engine's
 * lock inside it), then looked up in the cache HEALTH_CHUNK at a time under
 * t->lock, so the watch hub's thread, which takes that lock for each event,
 * never waits on a whole walk (at 10,000 objects a target it did, and fell
 * behind its streams). The result is stored under c->lock afterwards, and a
 * result older than the one stored (health_epoch) is dropped, so a slow walk
 * never overwrites a newer one. */
#include "controller/internal.h"
#include "health/health.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_UNHEALTHY_LIST 10

typedef struct {
	target *t;
	size_t objects, unhealthy, failed;
	size_t unsure;     /* of the unhealthy: not judged yet (the watch does not show it yet) */
	cJSON *list;
	char first[300];   /* the first unhealthy object's message */
} health_walk;

/* The watch of (group, kind) covering namespace ns in t (t->lock held). */
static target_watch *watch_of_kind_locked(target *t, const char *group, const char *kind, const char *ns)
{
	for (size_t i = 0; i < t->nwatches; i++) {
		target_watch *w = t->watches[i];
		if (!strcmp(w->res.group, group) && !strcmp(w->res.kind, kind) &&
		    (!w->ns[0] || !w->res.namespaced || streq(w->ns, ns)))
			return w;
	}
	return NULL;
}

/* One object the engine applied or verified, against the cache (t->lock held). */
static void judge_locked(health_walk *hw, const char *group, const char *kind, const char *ns,
	const char *name, const char *rv)
{
	target *t = hw->t;
	target_watch *w = watch_of_kind_locked(t, group, kind, ns);
	health_state st = HEALTH_CURRENT;
	char why[300] = "";
	hw->objects++;
	if (!w || !w->synced) {
		st = HEALTH_UNKNOWN;
		hw->unsure++;
		snprintf(why, sizeof(why), "%s %s%s%s: not watched by plumbd (yet)", kind, ns, ns[0] ? "/" : "", name);
	} else {
		char key[1200];
		snprintf(key, sizeof(key), "%s|%s|%s|%s", group, w->res.resource, w->res.namespaced ? ns : "", name);
		const live_entry *e = plumb_map_get(&t->cache, key);
		if (!e) {
			st = HEALTH_IN_PROGRESS;
			hw->unsure++;
			snprintf(why, sizeof(why), "%s %s%s%s: not seen in the cluster yet", kind, ns, ns[0] ? "/" : "", name);
		} else if (!rv[0] || strcmp(e->rv, rv)) {
			st = HEALTH_IN_PROGRESS;
			hw->unsure++;
			snprintf(why, sizeof(why), "%s %s%s%s: waiting for the watch to show the applied version",
				kind, ns, ns[0] ? "/" : "", name);
		} else if (e->health != HEALTH_CURRENT) {
			st = (health_state)e->health;
			snprintf(why, sizeof(why), "%s", e->health_msg ? e->health_msg : health_state_name(st));
		}
	}
	if (st == HEALTH_CURRENT)
		return;
	hw->unhealthy++;
	if (st == HEALTH_FAILED)
		hw->failed++;
	if (!hw->first[0])
		snprintf(hw->first, sizeof(hw->first), "%s", why);
	if (hw->list && cJSON_GetArraySize(hw->list) < MAX_UNHEALTHY_LIST) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "kind", kind);
		if (ns[0])
			cJSON_AddStringToObject(o, "namespace", ns);
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddStringToObject(o, "state", health_state_name(st));
		cJSON_AddStringToObject(o, "message", why);
		cJSON_AddItemToArray(hw->list, o);
	}
}

/* The engine's objects, copied while its lock is held: "group\0kind\0ns\0name\0rv\0" each. */
typedef struct {
	plumb_buf b;
	size_t n;          /* objects copied */
	size_t dropped;    /* objects that did not fit (out of memory) */
} snapshot;

static void snapshot_visit(void *data, const char *group, const char *kind, const char *ns,
	const char *name, const char *rv)
{
	snapshot *s = data;
	const char *parts[] = { group, kind, ns, name, rv };
	size_t len = s->b.len, i;
	for (i = 0; i < 5; i++)
		if (plumb_buf_append(&s->b, parts[i], strlen(parts[i]) + 1) != 0)
			break;
	if (i < 5) {
		s->b.len = len;   /* whole records only */
		s->dropped++;
	} else {
		s->n++;
	}
}

/* Objects judged per hold of t->lock: the watch hub's thread takes that lock
 * for every event of the target and must not wait on a whole walk. */
#define HEALTH_CHUNK 256

static void duration_text(char *out, size_t n, double s)
{
	if (s >= 3600 && (long)s % 3600 == 0)
		snprintf(out, n, "%ldh", (long)s / 3600);
	else if (s >= 60 && (long)s % 60 == 0)
		snprintf(out, n, "%ldm", (long)s / 60);
	else
		snprintf(out, n, "%gs", s);
}

/* Which ready-to-go transitions health_update saw. */
typedef struct {
	controller_health before, after;
	double took;              /* seconds from progress start to healthy; < 0 = not now */
	double deadline;          /* seconds until healthTimeout while Progressing; < 0 = none */
	char message[600];
	int ready;                /* synced at the GitSync's commit and healthy */
	int was_ready;
} health_change;

int entry_ready_locked(const gitsync_state *g, const controller_cluster_status *s)
{
	return s && g->rev && s->state == CONTROLLER_SYNCED && s->health == CONTROLLER_HEALTH_HEALTHY &&
		!s->health_unsure && !strcmp(s->commit, g->rev->commit);
}

void health_update(controller *c, gitsync_state *g, target *t, const char *cl_name)
{
	health_walk hw = { .t = t, .list = cJSON_CreateArray() };
	health_change ch = { .took = -1, .deadline = -1 };
	/* at most --gitsync-cache-max-objects records of at most ~1.2 KiB */
	snapshot snap = { .b = PLUMB_BUF_INIT(256u << 20) };
	/* what the engine holds, copied under its lock (the engine lives while
	 * t->lock is held: drop_engines frees it under that lock) */
	pthread_mutex_lock(&t->lock);
	apply_engine *e = plumb_map_get(&t->engines, g->key);
	int have = e != NULL;
	if (e)
		apply_engine_each(e, snapshot_visit, &snap);
	unsigned long epoch = atomic_fetch_add(&c->health_epoch, 1) + 1;
	pthread_mutex_unlock(&t->lock);
	if (!have) {
		plumb_buf_free(&snap.b);
		cJSON_Delete(hw.list);
		return;
	}
	/* then the cache, a chunk at a time */
	for (size_t off = 0; off < snap.b.len;) {
		pthread_mutex_lock(&t->lock);
		for (int k = 0; k < HEALTH_CHUNK && off < snap.b.len; k++) {
			const char *f[5];
			for (size_t i = 0; i < 5; i++) {
				f[i] = snap.b.ptr + off;
				off += strlen(f[i]) + 1;
			}
			judge_locked(&hw, f[0], f[1], f[2], f[3], f[4]);
		}
		pthread_mutex_unlock(&t->lock);
	}
	plumb_buf_free(&snap.b);
	if (snap.dropped) {
		/* never healthy on the strength of a partial look */
		hw.objects += snap.dropped;
		hw.unhealthy += snap.dropped;
		hw.unsure += snap.dropped;
		if (!hw.first[0])
			snprintf(hw.first, sizeof(hw.first), "%zu objects not looked at (out of memory)", snap.dropped);
	}

	double now = plumb_time_real();
	pthread_mutex_lock(&c->lock);
	controller_cluster_status *s = plumb_map_get(&g->clusters, cl_name);
	if (!s || s->health_epoch > epoch || g->deleted) {
		pthread_mutex_unlock(&c->lock);
		cJSON_Delete(hw.list);
		return;
	}
	double timeout = g->spec ? g->spec->health_timeout : GITSYNC_HEALTH_TIMEOUT_DEFAULT;
	/* a rollout waits for health as spec.wait does */
	s->wait = g->spec ? g->spec->wait || g->spec->rollout.set : 0;
	s->health_epoch = epoch;
	ch.before = s->health;
	ch.was_ready = entry_ready_locked(g, s);
	if (s->progress_start <= 0)
		s->progress_start = now;
	if (!hw.unhealthy) {
		s->health = CONTROLLER_HEALTH_HEALTHY;
	} else {
		/* A cluster that had settled (healthy for a whole healthTimeout)
		 * and turns unhealthy gets a new healthTimeout from now; one that
		 * flaps soon after a change does not get its timeout back, or a
		 * crash-looping pod would keep it Progressing for ever. */
		if (s->health == CONTROLLER_HEALTH_HEALTHY && s->healthy_since > 0 && now - s->healthy_since >= timeout)
			s->progress_start = now;
		double elapsed = now - s->progress_start;
		s->health = hw.failed || elapsed >= timeout ? CONTROLLER_HEALTH_DEGRADED : CONTROLLER_HEALTH_PROGRESSING;
		if (s->health == CONTROLLER_HEALTH_PROGRESSING)
			ch.deadline = timeout - elapsed;
	}
	ch.after = s->health;
	if (ch.after == CONTROLLER_HEALTH_HEALTHY && ch.before != CONTROLLER_HEALTH_HEALTHY) {
		s->healthy_since = now;
		ch.took = now - s->progress_start;
	} else if (ch.after != CONTROLLER_HEALTH_HEALTHY) {
		s->healthy_since = 0;
	}
	char tm[32];
	duration_text(tm, sizeof(tm), timeout);
	if (!hw.unhealthy)
		ch.message[0] = '\0';
	else if (hw.failed)
		snprintf(ch.message, sizeof(ch.message), "%zu of %zu objects not healthy, %zu failed: %s",
			hw.unhealthy, hw.objects, hw.failed, hw.first);
	else if (s->health == CONTROLLER_HEALTH_DEGRADED)
		snprintf(ch.message, sizeof(ch.message), "%zu of %zu objects not healthy after %s (spec.healthTimeout): %s",
			hw.unhealthy, hw.objects, tm, hw.first);
	else
		snprintf(ch.message, sizeof(ch.message), "waiting for %zu of %zu objects to become healthy: %s",
			hw.unhealthy, hw.objects, hw.first);
	set_str(&s->health_message, ch.message[0] ? ch.message : NULL);
	s->unhealthy_count = (long)hw.unhealthy;
	s->health_unsure = hw.unsure > 0;
	cJSON_Delete(s->unhealthy);
	s->unhealthy = hw.unhealthy ? hw.list : NULL;
	if (!hw.unhealthy)
		cJSON_Delete(hw.list);
	hw.list = NULL;
	ch.ready = entry_ready_locked(g, s);
	char *uid = plumb_strdup(plumb_json_str(g->obj, "metadata.uid"));
	char shortc[13] = "";
	snprintf(shortc, sizeof(shortc), "%.12s", s->commit);
	if (ch.ready && !ch.was_ready)
		trigger_waiting_locked(c, g, t->key);
	if (ch.after != ch.before && g->spec && g->spec->rollout.set)
		rollout_eval_locked(c, g);
	pthread_mutex_unlock(&c->lock);

	server_gauge_set(c->m.health, ch.after == CONTROLLER_HEALTH_HEALTHY ? 1 :
		ch.after == CONTROLLER_HEALTH_DEGRADED ? -1 : 0, g->key, cl_name);
	if (ch.took >= 0)
		server_histogram_observe(c->m.time_to_healthy, ch.took, cl_name);
	if (ch.after != ch.before) {
		char note[800];
		if (ch.after == CONTROLLER_HEALTH_HEALTHY) {
			char took[32];
			snprintf(took, sizeof(took), "%.1f", ch.took);
			snprintf(note, sizeof(note), "cluster %s, commit %s: healthy after %ss", cl_name, shortc, took);
			plumb_info("healthy", "gitsync", g->key, "cluster", cl_name, "commit", shortc, "seconds", took);
			if (ch.before != CONTROLLER_HEALTH_UNKNOWN)
				controller_events_post(c->events, g->ns, g->name, uid, "Normal", "Healthy", "Health", note);
		} else if (ch.after == CONTROLLER_HEALTH_DEGRADED) {
			snprintf(note, sizeof(note), "cluster %s, commit %s: %s", cl_name, shortc, ch.message);
			plumb_warn("degraded", "gitsync", g->key, "cluster", cl_name, "commit", shortc, "detail", ch.message);
			controller_events_post(c->events, g->ns, g->name, uid, "Warning", "HealthCheckFailed", "Health", note);
		} else {
			plumb_debug("progressing", "gitsync", g->key, "cluster", cl_name, "detail", ch.message);
		}
	}
	free(uid);
	/* look again at the timeout: Progressing turns Degraded then */
	if (ch.deadline >= 0) {
		work_item w = { .kind = WORK_HEALTH };
		char key[WORK_KEY_MAX];
		snprintf(w.gitsync, sizeof(w.gitsync), "%s", g->key);
		snprintf(w.cluster, sizeof(w.cluster), "%s", t->key);
		if (work_key(key, sizeof(key), &w) == 0)
			controller_queue_add_after(c->queue, key, ch.deadline + 0.05);
	}
}

int reconcile_health(controller *c, const char *gs_key, const char *cl_key, double *next)
{
	gitsync_state *g = gitsync_get(c, gs_key);
	char user[600] = "";
	const char *slash = strchr(cl_key, '/');
	*next = 0;
	if (!g)
		return 0;
	pthread_mutex_lock(&c->lock);
	int ok = g->spec && gitsync_user(user, sizeof(user), g->spec, c->o.default_service_account) == 0;
	pthread_mutex_unlock(&c->lock);
	target *t = ok ? target_lookup(c, cl_key, user) : NULL;
	if (t) {
		health_update(c, g, t, slash ? slash + 1 : cl_key);
		target_unref(c, t);
		write_gitsync_status(c, g);
	}
	gitsync_put(c, g);
	return 0;
}
