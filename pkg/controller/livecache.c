/* pkg/controller/livecache.c: a target's watch cache of the objects plumb
 * manages there.
 *
 * Each kind plumb applies in a target is watched (target_watch_kind); the
 * events land in on_target_event on the watch hub's thread, which keeps
 * t->cache (a live_entry per object: resourceVersion, desired hash, flags,
 * and the whole object while it waits for a reconcile), counts objects per
 * GitSync label, enforces the target's and a GitSync's cache caps, and
 * triggers the owning GitSync's sync when an object drifted or went away.
 * target_live is the apply engine's view of that cache; it runs on the
 * engine's pool threads. Everything here is under t->lock; c->lock is taken
 * only to find a GitSync or to trigger. */
#include "controller/internal.h"
#include "health/health.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cache_key(char *out, size_t outlen, const kube_resource *res, const char *ns, const char *name)
{
	snprintf(out, outlen, "%s|%s|%s|%s", res->group, res->resource, ns ? ns : "", name ? name : "");
}

/* The watch of res that covers namespace ns (NULL or "": a watch of all
 * namespaces, or any for a cluster-scoped kind). */
static target_watch *find_watch_locked(target *t, const kube_resource *res, const char *ns)
{
	for (size_t i = 0; i < t->nwatches; i++)
		if (!strcmp(t->watches[i]->res.group, res->group) &&
		    !strcmp(t->watches[i]->res.resource, res->resource) &&
		    (!t->watches[i]->ns[0] || !res->namespaced || streq(t->watches[i]->ns, ns ? ns : "")))
			return t->watches[i];
	return NULL;
}

/* Live lookup for the apply engine, from the target's watch cache. A whole
 * object held there is handed over (and no longer held). */
int target_live(apply_live_info *info, void *data, const kube_resource *res,
	const char *ns, const char *name)
{
	target *t = data;
	char key[1200], *body = NULL;
	int ret = -1;
	cache_key(key, sizeof(key), res, res->namespaced ? ns : "", name);
	pthread_mutex_lock(&t->lock);
	target_watch *w = find_watch_locked(t, res, res->namespaced ? ns : NULL);
	if (w && w->synced) {
		live_entry *e = plumb_map_get(&t->cache, key);
		ret = e ? 1 : 0;
		if (e) {
			snprintf(info->rv, sizeof(info->rv), "%s", e->rv);
			snprintf(info->label, sizeof(info->label), "%s", e->label ? e->label : "");
			if (e->has_hash)
				plumb_hex_encode(info->hash, e->hash, sizeof(e->hash));
			else
				info->hash[0] = '\0';
			info->prune_disabled = e->prune_disabled;
			info->deleting = e->deleting;
			body = e->body;
			t->pending -= body ? e->body_len : 0;
			e->body = NULL;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (body) {
		info->obj = cJSON_Parse(body);
		free(body);
	}
	return ret;
}

/* The health of a listed object (list items carry no apiVersion or kind:
 * res says what they are). */
static void list_item_health(health_result *out, const cJSON *obj, const kube_resource *res)
{
	char av[320];
	cJSON *w = cJSON_CreateObject();
	static const char *const parts[] = { "metadata", "spec", "status" };
	kube_resource_api_version(av, sizeof(av), res);
	cJSON_AddStringToObject(w, "apiVersion", av);
	cJSON_AddStringToObject(w, "kind", res->kind);
	for (size_t i = 0; w && i < sizeof(parts) / sizeof(parts[0]); i++) {
		cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, parts[i]);
		if (p)
			cJSON_AddItemReferenceToObject(w, parts[i], p);
	}
	health_of(out, w ? w : obj);
	cJSON_Delete(w);
}

/* The key a reduced list item carries its health under (not a field of any
 * Kubernetes object: the API server's keys never hold a '!'). */
#define REDUCED_HEALTH "!health"

/* What the target watches keep of each listed object (runs on the list's
 * helper thread): the fields live_entry holds, and the object's health when
 * it is not Current. */
static cJSON *reduce_live(const cJSON *obj, const kube_resource *res, void *data)
{
	/* data (the target_watch) may be gone: a stopped watch's list runs on */
	(void)data;
	health_result h;
	list_item_health(&h, obj, res);
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
	const cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
	static const char *const fields[] = { "namespace", "name", "resourceVersion", "deletionTimestamp" };
	cJSON *o = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(o, "metadata");
	cJSON *l = cJSON_AddObjectToObject(m, "labels"), *a = cJSON_AddObjectToObject(m, "annotations");
	if (!o || !m || !l || !a) {
		cJSON_Delete(o);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, fields[i]);
		if (cJSON_IsString(v))
			cJSON_AddStringToObject(m, fields[i], v->valuestring);
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, APPLY_LABEL_GITSYNC);
	if (cJSON_IsString(v))
		cJSON_AddStringToObject(l, APPLY_LABEL_GITSYNC, v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(ann, APPLY_ANNOTATION_HASH);
	if (cJSON_IsString(v))
		cJSON_AddStringToObject(a, APPLY_ANNOTATION_HASH, v->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(ann, APPLY_ANNOTATION_PRUNE);
	if (cJSON_IsString(v))
		cJSON_AddStringToObject(a, APPLY_ANNOTATION_PRUNE, v->valuestring);
	if (h.state != HEALTH_CURRENT) {
		cJSON *hj = cJSON_AddObjectToObject(o, REDUCED_HEALTH);
		cJSON_AddNumberToObject(hj, "state", h.state);
		cJSON_AddStringToObject(hj, "message", h.message);
	}
	return o;
}

/* The health an object stored in the cache has: a reduced list item says
 * it, a watch event's whole object is asked. */
static void stored_health(health_result *out, const cJSON *obj)
{
	const cJSON *hj = cJSON_GetObjectItemCaseSensitive(obj, REDUCED_HEALTH);
	if (!cJSON_IsObject(hj)) {
		health_of(out, obj);
		return;
	}
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(hj, "state");
	memset(out, 0, sizeof(*out));
	out->state = cJSON_IsNumber(st) && st->valueint >= 0 && st->valueint <= HEALTH_UNKNOWN ?
		(health_state)st->valueint : HEALTH_UNKNOWN;
	snprintf(out->message, sizeof(out->message), "%s", plumb_json_str(hj, "message") ? plumb_json_str(hj, "message") : "");
}

/* Marks t over its cache cap (t->lock held): Failed with why, its cache
 * given back, watches no longer trusted; rebuilt after opts.target_cache_retry.
 * Returns 1 when t was not over its cap before. */
static int target_over_cap_locked(target *t, const char *why)
{
	if (t->over_cap)
		return 0;
	snprintf(t->cap_msg, sizeof(t->cap_msg), "%s", why);
	t->over_since = plumb_time_mono();
	t->over_cap = 1;
	plumb_map_free(&t->cache, free_live_entry);
	plumb_map_free(&t->label_counts, NULL);
	t->pending = 0;
	t->cache_bytes = 0;
	for (size_t i = 0; i < t->nwatches; i++)
		t->watches[i]->synced = 0;
	plumb_warn("cluster over its cache cap; failing it", "cluster", t->name, "error", why);
	return 1;
}

/* Counts cache entries per GitSync label (t->lock held); label may be NULL. */
static void label_count_add_locked(target *t, const char *label, int d)
{
	if (!label)
		return;
	uintptr_t n = (uintptr_t)plumb_map_get(&t->label_counts, label);
	n = d < 0 ? (n ? n - 1 : 0) : n + 1;
	if (n)
		plumb_map_put(&t->label_counts, label, (void *)n, NULL);
	else
		plumb_map_del(&t->label_counts, label);
}

/* Puts what obj says into the cache (t->lock held); body (taken, may be
 * NULL) is kept when the pending budget allows; h is obj's health.
 * Returns 1 when this store took t over its cache cap
 * (target_over_cap_locked), else 0. */
static int cache_store_locked(target *t, const char *key, const cJSON *obj, char *body,
	const health_result *h)
{
	apply_live_info info;
	if (t->over_cap) {
		free(body);
		return 0;
	}
	live_entry *e = plumb_map_get(&t->cache, key);
	int fresh = e == NULL;
	if (fresh) {
		size_t need = sizeof(*e) + 64 + strlen(key) + 1;
		const cJSON *lv = cJSON_GetObjectItemCaseSensitive(plumb_json_get(obj, "metadata.labels"), APPLY_LABEL_GITSYNC);
		if (cJSON_IsString(lv) && !plumb_map_get(&t->labels, lv->valuestring))
			need += strlen(lv->valuestring) + 1 + 64;
		const controller_opts *o = &t->c->o;
		if (t->cache.count + 1 > o->target_max_objects ||
		    t->cache_bytes + t->label_bytes + need > o->target_max_bytes) {
			char why[256];
			if (t->cache.count + 1 > o->target_max_objects)
				snprintf(why, sizeof(why), "the cluster has more than %zu objects plumbd would cache "
					"(--target-cache-max-objects)", o->target_max_objects);
			else
				snprintf(why, sizeof(why), "what plumbd would cache of the cluster's objects is over "
					"%zu bytes (--target-cache-max-bytes)", o->target_max_bytes);
			free(body);
			return target_over_cap_locked(t, why);
		}
	}
	if (fresh && !(e = plumb_keep_alloc(sizeof(*e)))) {
		free(body);
		return 0;
	}
	/* updated in place: no churn of long-lived records */
	if (e->body) {
		t->pending -= e->body_len;
		free(e->body);
	}
	const char *old_label = e->label;
	char *old_msg = e->health_msg;
	memset(e, 0, sizeof(*e));
	e->health = (unsigned)h->state;
	int same_msg = h->state == HEALTH_CURRENT ? !old_msg : old_msg && !strcmp(old_msg, h->message);
	if (h->state != HEALTH_CURRENT)
		e->health_msg = same_msg ? old_msg : plumb_keep_strdup(h->message);
	if (e->health_msg != old_msg)
		plumb_keep_free(old_msg);
	apply_live_info_of(&info, obj);
	snprintf(e->rv, sizeof(e->rv), "%s", strlen(info.rv) < sizeof(e->rv) ? info.rv : "");
	e->has_hash = strlen(info.hash) == 64 && plumb_hex_decode(e->hash, sizeof(e->hash), info.hash) == 0;
	if (info.label[0]) {
		e->label = plumb_map_get(&t->labels, info.label);
		if (!e->label) {
			char *l = plumb_keep_strdup(info.label);
			if (l && plumb_map_put(&t->labels, info.label, l, NULL) == 0) {
				e->label = l;
				t->label_bytes += strlen(l) + 1 + 64;
			} else {
				plumb_keep_free(l);
			}
		}
	}
	e->prune_disabled = (unsigned)info.prune_disabled;
	e->deleting = (unsigned)info.deleting;
	if (body) {
		size_t len = strlen(body) + 1;
		if (t->pending + len <= PENDING_MAX) {
			e->body = body;
			e->body_len = len;
			t->pending += len;
		} else {
			free(body);
		}
	}
	if (fresh && plumb_map_put(&t->cache, key, e, NULL) != 0) {
		if (e->body)
			t->pending -= e->body_len;
		free_live_entry(e);
		return 0;
	}
	if (fresh)
		t->cache_bytes += sizeof(*e) + 64 + strlen(key) + 1;
	if (old_label != e->label) {
		label_count_add_locked(t, old_label, -1);
		label_count_add_locked(t, e->label, 1);
	}
	return 0;
}

static void cache_drop_locked(target *t, const char *key)
{
	live_entry *old = plumb_map_del(&t->cache, key);
	if (old && old->body)
		t->pending -= old->body_len;
	if (old) {
		size_t n = sizeof(*old) + 64 + strlen(key) + 1;
		t->cache_bytes -= n < t->cache_bytes ? n : t->cache_bytes;
		label_count_add_locked(t, old->label, -1);
	}
	free_live_entry(old);
}

/* The key of the GitSync labelled lv, or NULL (malloc'd). */
static char *gitsync_of_label(controller *c, const char *lv)
{
	char *out = NULL;
	size_t i = 0;
	const char *k;
	void *v;
	pthread_mutex_lock(&c->lock);
	while (!out && plumb_map_next(&c->gitsyncs, &i, &k, &v))
		if (strcmp(((gitsync_state *)v)->label, lv) == 0)
			out = plumb_strdup(((gitsync_state *)v)->key);
	pthread_mutex_unlock(&c->lock);
	return out;
}

/* Whether a watch event about obj calls for a reconcile: not when it is the
 * echo of what the GitSync's engine applied or verified (the same
 * resourceVersion), nor the deletion of an object the engine no longer wants. */
static int event_needs_sync(target *t, kube_watch_event type, const kube_resource *res, const cJSON *obj)
{
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(plumb_json_get(obj, "metadata.labels"), APPLY_LABEL_GITSYNC);
	char *gk;
	int needs = 1;
	if (!cJSON_IsString(lv) || !(gk = gitsync_of_label(t->c, lv->valuestring)))
		return 1;
	pthread_mutex_lock(&t->lock);
	apply_engine *e = plumb_map_get(&t->engines, gk);
	if (e && type == KUBE_WATCH_DELETED)
		needs = apply_engine_tracks(e, res, plumb_json_str(obj, "metadata.namespace"), plumb_json_str(obj, "metadata.name"));
	else if (e)
		needs = !apply_engine_verified(e, res, plumb_json_str(obj, "metadata.namespace"),
			plumb_json_str(obj, "metadata.name"), plumb_json_str(obj, "metadata.resourceVersion"));
	pthread_mutex_unlock(&t->lock);
	free(gk);
	return needs;
}

/* Triggers a sync item (health 0) or a health item (health 1) for the
 * GitSync owning obj (by its label) on target t. */
static void trigger_owner(controller *c, target *t, const cJSON *obj, int health)
{
	const cJSON *lv = cJSON_GetObjectItemCaseSensitive(plumb_json_get(obj, "metadata.labels"), APPLY_LABEL_GITSYNC);
	if (!cJSON_IsString(lv))
		return;
	pthread_mutex_lock(&c->lock);
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		char user[600];
		if (strcmp(g->label, lv->valuestring) == 0) {
			/* Only the watches of the GitSync's own identity speak for its
			 * objects (what plumbd's own watches see is not its to know). */
			if (!g->spec || gitsync_user(user, sizeof(user), g->spec, c->o.default_service_account) != 0 ||
			    !streq(user, t->identity ? t->identity : ""))
				continue;
			/* A change in a target is acted on fast: a short window still
			 * gathers a burst of events into one run, but an edit never
			 * waits out a whole debounce. */
			double d = state_debounce(g);
			if (health)
				trigger_health(c, g->key, t->key, HEALTH_WINDOW);
			else
				trigger_sync(c, g->key, t->key, d < DRIFT_WINDOW ? d : DRIFT_WINDOW);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

static void on_target_event(kube_watch_event type, const cJSON *obj, void *data)
{
	target_watch *tw = data;
	target *t = tw->t;
	char key[1200];
	switch (type) {
	case KUBE_WATCH_RESYNC: {
		/* items went through reduce_live: metadata only */
		char prefix[900];
		/* a watch of one namespace replaces that namespace only */
		snprintf(prefix, sizeof(prefix), "%s|%s|%s%s", tw->res.group, tw->res.resource,
			tw->ns, tw->ns[0] ? "|" : "");
		pthread_mutex_lock(&t->lock);
		size_t i = 0, plen = strlen(prefix);
		const char *k;
		void *v;
		char **drop = NULL;
		size_t ndrop = 0;
		while (plumb_map_next(&t->cache, &i, &k, &v)) {
			if (strncmp(k, prefix, plen) == 0) {
				char **p = realloc(drop, (ndrop + 1) * sizeof(*p));
				if (p) {
					drop = p;
					drop[ndrop++] = plumb_strdup(k);
				}
			}
		}
		for (size_t j = 0; j < ndrop; j++) {
			if (drop[j])
				cache_drop_locked(t, drop[j]);
			free(drop[j]);
		}
		free(drop);
		const cJSON *it;
		int went_over = 0;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items")) {
			health_result h;
			stored_health(&h, it);
			cache_key(key, sizeof(key), &tw->res, plumb_json_str(it, "metadata.namespace"), plumb_json_str(it, "metadata.name"));
			went_over |= cache_store_locked(t, key, it, NULL, &h);
		}
		int was = tw->synced;
		tw->synced = !t->over_cap;
		pthread_mutex_unlock(&t->lock);
		/* After an outage or an expiry: look at everything again. */
		if (was == 0 || went_over) {
			pthread_mutex_lock(&tw->c->lock);
			trigger_cluster_syncs_locked(tw->c, t->key, 0);
			pthread_mutex_unlock(&tw->c->lock);
		} else {
			/* what changed while the stream was down: a sync where an
			 * object changed, a look at the health of the rest */
			cJSON_ArrayForEach(it, plumb_json_get(obj, "items"))
				trigger_owner(tw->c, t, it, !event_needs_sync(t, KUBE_WATCH_MODIFIED, &tw->res, it));
		}
		break;
	}
	case KUBE_WATCH_ADDED:
	case KUBE_WATCH_MODIFIED:
	case KUBE_WATCH_DELETED: {
		int needs = event_needs_sync(t, type, &tw->res, obj);
		cache_key(key, sizeof(key), &tw->res, plumb_json_str(obj, "metadata.namespace"), plumb_json_str(obj, "metadata.name"));
		char *printed = type != KUBE_WATCH_DELETED && needs ? cJSON_PrintUnformatted(obj) : NULL;
		char *body = plumb_strdup(printed);   /* plain malloc: freed with free() */
		cJSON_free(printed);
		health_result h;
		if (type != KUBE_WATCH_DELETED)
			health_of(&h, obj);
		pthread_mutex_lock(&t->lock);
		int went_over = 0;
		if (type == KUBE_WATCH_DELETED)
			cache_drop_locked(t, key);
		else
			went_over = cache_store_locked(t, key, obj, body, &h);
		pthread_mutex_unlock(&t->lock);
		if (went_over) {
			pthread_mutex_lock(&tw->c->lock);
			trigger_cluster_syncs_locked(tw->c, t->key, 0);
			pthread_mutex_unlock(&tw->c->lock);
		} else if (needs) {
			trigger_owner(tw->c, t, obj, 0);   /* the sync looks at health too */
		} else if (type != KUBE_WATCH_DELETED) {
			/* The echo of plumb's own write: the cache now holds the applied
			 * version, whose health the last sync could not know yet. Echoes
			 * come once per write, so at steady state there are none. */
			trigger_owner(tw->c, t, obj, 1);
		}
		break;
	}
	case KUBE_WATCH_ERROR:
		/* Until the stream relists, the cache may be stale: the engine reads
		 * from the cluster instead (and sees an outage as one). */
		pthread_mutex_lock(&t->lock);
		tw->synced = 0;
		int over = streq(plumb_json_str(obj, "reason"), plumb_strerror(PLUMB_ETOOBIG));
		if (over) {
			/* kube_watch_opts.list_max_*: the list went past the caps */
			char why[300];
			snprintf(why, sizeof(why), "%s: more than plumbd caches for one cluster "
				"(--target-cache-max-objects %zu, --target-cache-max-bytes %zu)",
				plumb_json_str(obj, "message") ? plumb_json_str(obj, "message") : "list too big",
				tw->c->o.target_max_objects, tw->c->o.target_max_bytes);
			over = target_over_cap_locked(t, why);
		}
		pthread_mutex_unlock(&t->lock);
		if (over) {
			pthread_mutex_lock(&tw->c->lock);
			trigger_cluster_syncs_locked(tw->c, t->key, 0);
			pthread_mutex_unlock(&tw->c->lock);
		}
		plumb_debug("watch error", "cluster", t->name, "resource", tw->res.resource,
			"message", plumb_json_str(obj, "message"));
		break;
	case KUBE_WATCH_BOOKMARK:
		break;
	}
}

/* Starts a labelled watch on res in target t unless one runs. An
 * identity's target watches a namespaced kind in ns only (what a tenant's
 * service account may typically list and watch); plumbd's own watches all
 * namespaces. */
void target_watch_kind(controller *c, target *t, const kube_resource *res, const char *ns)
{
	if (!t->identity || !res->namespaced || !ns)
		ns = "";
	pthread_mutex_lock(&t->lock);
	target_watch *w = find_watch_locked(t, res, ns);
	if (w || !(res->verbs & KUBE_VERB_WATCH)) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	target_watch **p = realloc(t->watches, (t->nwatches + 1) * sizeof(*p));
	w = calloc(1, sizeof(*w));
	if (!p || !w) {
		if (p)
			t->watches = p;
		free(w);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->watches = p;
	w->c = c;
	w->t = t;
	w->res = *res;
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	t->watches[t->nwatches++] = w;
	pthread_mutex_unlock(&t->lock);
	kube_watch_opts wo = { .label_selector = MANAGED_SELECTOR, .reduce = reduce_live,
		.ns = w->ns[0] ? w->ns : NULL,
		.list_max_items = c->o.target_max_objects, .list_max_bytes = c->o.target_max_bytes };
	if (kube_watch_start(&w->w, c->hub, t->client, res, &wo, on_target_event, w) != 0)
		plumb_warn("cannot watch", "cluster", t->name, "resource", res->resource,
			"error", plumb_error_last());
}

