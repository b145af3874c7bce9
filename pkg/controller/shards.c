/* pkg/controller/shards.c: GitSyncs spread over the live replicas.
 *
 * With --shards, every replica does work, each on its own GitSyncs, instead
 * of one leader doing everything while standbys wait.
 *
 * Membership: one Lease per replica, "<lease name>-<hash of identity>" in
 * plumb's namespace, labelled plumb.dev/replica-of=<lease name>, renewed
 * every retry period. Each replica lists those Leases in the same round and
 * judges the others live the way leader election does (leaseDuration after
 * *it* saw the record change, no clock comparison). One Lease per replica
 * rather than one per shard: a replica renews one object however many
 * GitSyncs it owns, a joining replica needs no shard count agreed
 * beforehand, and the set of live replicas is all that ownership depends
 * on. A replica that stops cleanly deletes its Lease, so the others see it
 * gone in their next round.
 *
 * Assignment (shard_assign, pure): consistent hashing with bounded loads.
 * Every live replica has SHARD_VNODES points on a 64-bit ring; the GitSyncs
 * (units, see below) are taken in the order of their hash and each goes to
 * the first replica clockwise from its hash that has room: total / replicas
 * each, and one more for the first total % replicas replicas that need it.
 * So loads are within one of even (for units of one GitSync), and a replica
 * that joins or leaves moves the GitSyncs that hashing has to move plus
 * those the cap pushes on. A unit is a GitSync together with the GitSyncs of
 * its namespace it is linked to through spec.dependsOn: dependsOn reads the
 * dependency's state in memory, so they go to one replica.
 *
 * Ownership: a replica works on a GitSync only after *claiming* it, a
 * server-side apply of status.owner (field manager plumb-shard) carrying
 * the resourceVersion it read: the API server refuses it (409) if anything
 * changed in between, so of two replicas that both think a GitSync theirs
 * one wins. A replica claims only a GitSync whose status.owner is empty,
 * itself, or a replica whose Lease is no longer live. A replica that no
 * longer wants a GitSync (another replica joined, or its own Lease could not
 * be renewed within the renew deadline) stops taking its work items at
 * once, waits for the ones running, and only then removes status.owner. The
 * next owner therefore starts after the last one stopped: never two at
 * once, with the same timing assumption leader election makes (a replica
 * that cannot renew stops within renew deadline < lease duration).
 *
 * Cluster probes run on every replica (their server version feeds renders);
 * a Cluster's status is written by one replica, the one rendezvous hashing
 * of its key over the live replicas picks (shard_cluster_is_mine).
 *
 * Threads: two of its own, the lease thread (lease_loop: renewals only) and
 * the assignment thread (shards_loop: list, assign, claim, release); they
 * take c->lock for the states and never hold it across a request. */
#include "controller/internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARD_VNODES 64
#define SHARD_LABEL "plumb.dev/replica-of"
#define SHARD_FIELD_MANAGER "plumb-shard"
#define SHARD_MAX_REPLICAS 1024
#define SHARD_DRAIN_MAX 600.0 /* seconds a release waits for running items */

/* ---- the assignment (pure) ------------------------------------------------------------ */

uint64_t shard_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	/* FNV alone clusters keys that differ in their last bytes */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

typedef struct {
	uint64_t h;
	size_t member;
} ring_point;

static int point_cmp(const void *a, const void *b)
{
	const ring_point *x = a, *y = b;
	return x->h < y->h ? -1 : x->h > y->h ? 1 : x->member < y->member ? -1 : x->member > y->member;
}

typedef struct {
	uint64_t h;
	size_t i;
} unit_order;

static int order_cmp(const void *a, const void *b)
{
	const unit_order *x = a, *y = b;
	return x->h < y->h ? -1 : x->h > y->h ? 1 : x->i < y->i ? -1 : x->i > y->i;
}

int shard_assign(shard_unit *units, size_t n, const char *const *members, size_t m)
{
	if (!m) {
		for (size_t i = 0; i < n; i++)
			units[i].owner = SHARD_NONE;
		return 0;
	}
	ring_point *ring = calloc(m * SHARD_VNODES, sizeof(*ring));
	unit_order *order = calloc(n ? n : 1, sizeof(*order));
	size_t *load = calloc(m, sizeof(*load));
	unsigned long total = 0;
	if (!ring || !order || !load) {
		free(ring);
		free(order);
		free(load);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	for (size_t j = 0; j < m; j++)
		for (size_t v = 0; v < SHARD_VNODES; v++) {
			char p[600];
			snprintf(p, sizeof(p), "%s#%zu", members[j], v);
			ring[j * SHARD_VNODES + v] = (ring_point){ shard_hash(p), j };
		}
	qsort(ring, m * SHARD_VNODES, sizeof(*ring), point_cmp);
	for (size_t i = 0; i < n; i++) {
		order[i] = (unit_order){ shard_hash(units[i].key), i };
		total += units[i].weight ? units[i].weight : 1;
	}
	qsort(order, n, sizeof(*order), order_cmp);
	/* every replica takes total / m; the first total % m to need one more may */
	size_t base = (size_t)(total / m), extra = (size_t)(total % m), npoints = m * SHARD_VNODES;
	for (size_t k = 0; k < n; k++) {
		shard_unit *u = &units[order[k].i];
		size_t w = u->weight ? u->weight : 1;
		/* the first point at or after the unit's hash */
		size_t lo = 0, hi = npoints;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (ring[mid].h < order[k].h)
				lo = mid + 1;
			else
				hi = mid;
		}
		size_t pick = SHARD_NONE, least = 0;
		for (size_t s = 0; s < npoints; s++) {
			size_t j = ring[(lo + s) % npoints].member;
			size_t room = base + (load[j] > base || (extra && load[j] + w == base + 1));
			if (load[j] + w <= room) {
				pick = j;
				if (load[j] <= base && load[j] + w > base)
					extra--;
				break;
			}
		}
		if (pick == SHARD_NONE) {
			/* a unit heavier than the room anywhere: the least loaded */
			for (size_t j = 1; j < m; j++)
				if (load[j] < load[least])
					least = j;
			pick = least;
		}
		u->owner = pick;
		load[pick] += w;
	}
	free(ring);
	free(order);
	free(load);
	return 0;
}

size_t shard_rendezvous(const char *key, const char *const *members, size_t m)
{
	size_t best = SHARD_NONE;
	uint64_t best_h = 0;
	for (size_t j = 0; j < m; j++) {
		char p[900];
		snprintf(p, sizeof(p), "%s|%s", members[j], key);
		uint64_t h = shard_hash(p);
		if (best == SHARD_NONE || h > best_h) {
			best = j;
			best_h = h;
		}
	}
	return best;
}

/* ---- units: GitSyncs linked by dependsOn ------------------------------------------------ */

typedef struct {
	gitsync_state *g;
	size_t parent;
} unit_node;

static size_t uf_find(unit_node *a, size_t i)
{
	while (a[i].parent != i) {
		a[i].parent = a[a[i].parent].parent;
		i = a[i].parent;
	}
	return i;
}

/* The sharding key of every GitSync (out[i] for nodes[i].g): its own key,
 * or, linked by dependsOn, the smallest key of its group. Under c->lock. */
static void unit_keys_locked(controller *c, unit_node *nodes, size_t n, const char **out)
{
	plumb_map index = { 0 };
	for (size_t i = 0; i < n; i++) {
		nodes[i].parent = i;
		plumb_map_put(&index, nodes[i].g->key, (void *)(uintptr_t)(i + 1), NULL);
	}
	for (size_t i = 0; i < n; i++) {
		const gitsync_spec *s = nodes[i].g->spec;
		for (size_t d = 0; s && d < s->ndepends_on; d++) {
			char k[WORK_OBJECT_MAX];
			snprintf(k, sizeof(k), "%s/%s", nodes[i].g->ns, s->depends_on[d]);
			uintptr_t j = (uintptr_t)plumb_map_get(&index, k);
			if (j) {
				size_t a = uf_find(nodes, i), b = uf_find(nodes, j - 1);
				if (a != b)
					nodes[strcmp(nodes[a].g->key, nodes[b].g->key) < 0 ? b : a].parent =
						strcmp(nodes[a].g->key, nodes[b].g->key) < 0 ? a : b;
			}
		}
	}
	/* the root of each group is its smallest key (unions keep it so) */
	for (size_t i = 0; i < n; i++)
		out[i] = nodes[uf_find(nodes, i)].g->key;
	plumb_map_free(&index, NULL);
	(void)c;
}

/* ---- the runtime ------------------------------------------------------------------------ */

typedef struct {
	char record[600];         /* holder|renewTime|resourceVersion */
	double observed;          /* monotonic time the record last changed */
	double duration;
	char holder[300];
	char created[48];
	int seen;                 /* listed in this round */
} member_obs;

struct controller_shards {
	controller *c;
	kube_client *mgmt;
	kube_resource lease_res;
	char *ns, *prefix, *identity, *lease;
	double lease_duration, renew_deadline, retry_period;
	unsigned max_owners;
	plumb_map observed;       /* lease name -> member_obs* (assignment thread only) */
	int active;               /* as the lease thread last judged it */
	double active_since;      /* monotonic, when it last turned active */
	server_family *m_replicas, *m_owned, *m_gitsync_owned;

	pthread_t thread, lease_thread;
	int thread_started, lease_thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	int poke;
};

typedef struct {
	const char *name;
	const char *created;
} member_sort;

static int member_cmp(const void *a, const void *b)
{
	const member_sort *x = a, *y = b;
	int r = strcmp(x->created, y->created);
	return r ? r : strcmp(x->name, y->name);
}

static void lease_name_of(char *out, size_t n, const char *prefix, const char *identity)
{
	snprintf(out, n, "%.200s-%016llx", prefix, (unsigned long long)shard_hash(identity));
}

/* Renews this replica's Lease with one merge patch of renewTime (no one
 * else writes it, so no resourceVersion is needed), or creates it. */
static int renew_own(controller_shards *s)
{
	cJSON *obj = cJSON_CreateObject();
	char now[48];
	int rc;
	plumb_time_micro(now, sizeof(now), plumb_time_real());
	cJSON *spec = cJSON_AddObjectToObject(obj, "spec");
	cJSON_AddStringToObject(spec, "holderIdentity", s->identity);
	cJSON_AddStringToObject(spec, "renewTime", now);
	rc = kube_merge_patch(NULL, s->mgmt, &s->lease_res, s->ns, s->lease, obj);
	if (rc == PLUMB_ENOTFOUND) {
		cJSON_AddStringToObject(obj, "apiVersion", "coordination.k8s.io/v1");
		cJSON_AddStringToObject(obj, "kind", "Lease");
		cJSON *meta = cJSON_AddObjectToObject(obj, "metadata");
		cJSON_AddStringToObject(meta, "name", s->lease);
		cJSON_AddStringToObject(meta, "namespace", s->ns);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "labels"), SHARD_LABEL, s->prefix);
		cJSON_AddNumberToObject(spec, "leaseDurationSeconds", (int)s->lease_duration);
		cJSON_AddStringToObject(spec, "acquireTime", now);
		rc = kube_create(NULL, s->mgmt, &s->lease_res, s->ns, obj);
	}
	cJSON_Delete(obj);
	return rc;
}

/* Lists the replicas' Leases; fills the live members, oldest first. */
static int list_members(controller_shards *s, char ***out, size_t *nout)
{
	cJSON *list = NULL;
	char sel[300];
	snprintf(sel, sizeof(sel), SHARD_LABEL "=%s", s->prefix);
	kube_list_opts lo = { .label_selector = sel };
	*out = NULL;
	*nout = 0;
	int rc = kube_list(&list, s->mgmt, &s->lease_res, s->ns, &lo);
	if (rc)
		return rc;
	double mono = plumb_time_mono();
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&s->observed, &i, &k, &v))
		((member_obs *)v)->seen = 0;
	const cJSON *it;
	size_t count = 0;
	cJSON_ArrayForEach(it, plumb_json_get(list, "items")) {
		const char *name = plumb_json_str(it, "metadata.name");
		const char *holder = plumb_json_str(it, "spec.holderIdentity");
		const char *renew = plumb_json_str(it, "spec.renewTime");
		const char *rv = plumb_json_str(it, "metadata.resourceVersion");
		const char *created = plumb_json_str(it, "metadata.creationTimestamp");
		const cJSON *dur = plumb_json_get(it, "spec.leaseDurationSeconds");
		if (!name || !holder || !holder[0] || count >= SHARD_MAX_REPLICAS)
			continue;
		member_obs *o = plumb_map_get(&s->observed, name);
		if (!o) {
			o = calloc(1, sizeof(*o));
			if (!o || plumb_map_put(&s->observed, name, o, NULL)) {
				free(o);
				continue;
			}
		}
		char record[600];
		snprintf(record, sizeof(record), "%s|%s|%s", holder, renew ? renew : "", rv ? rv : "");
		if (strcmp(record, o->record)) {
			snprintf(o->record, sizeof(o->record), "%s", record);
			o->observed = mono;
		}
		o->duration = cJSON_IsNumber(dur) && dur->valuedouble > 0 ? dur->valuedouble : s->lease_duration;
		snprintf(o->holder, sizeof(o->holder), "%s", holder);
		snprintf(o->created, sizeof(o->created), "%s", created ? created : "");
		o->seen = 1;
		count++;
	}
	cJSON_Delete(list);
	/* forget Leases that are gone */
	for (i = 0; plumb_map_next(&s->observed, &i, &k, &v);)
		if (!((member_obs *)v)->seen)
			free(plumb_map_del(&s->observed, k));
	member_sort *ms = calloc(count ? count : 1, sizeof(*ms));
	size_t n = 0;
	if (!ms)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (i = 0; plumb_map_next(&s->observed, &i, &k, &v);) {
		member_obs *o = v;
		int mine = strcmp(k, s->lease) == 0;
		if (mine ? shard_active(s->c) : o->observed + o->duration > mono)
			ms[n++] = (member_sort){ o->holder, o->created };
	}
	qsort(ms, n, sizeof(*ms), member_cmp);
	if (s->max_owners && n > s->max_owners)
		n = s->max_owners;
	char **names = calloc(n ? n : 1, sizeof(*names));
	for (size_t j = 0; names && j < n; j++)
		names[j] = plumb_strdup(ms[j].name);
	free(ms);
	if (!names)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	*out = names;
	*nout = n;
	return 0;
}

/* 1 when identity holds a live Lease as this replica last saw them. */
static int holder_live(controller_shards *s, const char *identity)
{
	double mono = plumb_time_mono();
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&s->observed, &i, &k, &v)) {
		member_obs *o = v;
		if (!strcmp(o->holder, identity))
			return !strcmp(k, s->lease) ? shard_active(s->c) : o->observed + o->duration > mono;
	}
	return 0;
}

/* 1 when identity holds a Lease in the last list. */
static int holder_known(controller_shards *s, const char *identity)
{
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&s->observed, &i, &k, &v))
		if (!strcmp(((member_obs *)v)->holder, identity))
			return 1;
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

/* Writes status.owner (identity, or "" when NULL) of g if its resourceVersion
 * is still rv. *out: the object the server made. */
static int write_owner(cJSON **out, controller_shards *s, const char *ns, const char *name,
	const char *rv, const char *identity)
{
	cJSON *st = cJSON_CreateObject();
	/* released: an empty replica rather than no owner field, which could
	 * leave a status with nothing in it (null, refused by the schema) */
	cJSON *o = cJSON_AddObjectToObject(st, "owner");
	cJSON_AddStringToObject(o, "replica", identity ? identity : "");
	if (identity) {
		char now[48];
		plumb_time_rfc3339(now, sizeof(now), plumb_time_real());
		cJSON_AddStringToObject(o, "since", now);
	}
	cJSON *body = status_body(PLUMB_API_GROUP_VERSION, "GitSync", ns, name, st);
	cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(body, "metadata"), "resourceVersion", rv);
	kube_apply_opts ao = { .field_manager = SHARD_FIELD_MANAGER, .force = 1 };
	int rc = kube_apply_status(out, s->mgmt, &s->c->gitsync_res, ns, body, &ao);
	cJSON_Delete(body);
	return rc;
}

static const char *status_owner(const cJSON *obj)
{
	return plumb_json_str(obj, "status.owner.replica");
}

/* g is no longer this replica's: the series only its owner keeps up to
 * date go, so that max() across replicas shows the owner's. Under c->lock. */
static void forget_metrics_locked(controller_shards *s, gitsync_state *g)
{
	controller *c = s->c;
	size_t i = 0;
	const char *k;
	void *v;
	server_gauge_set(s->m_gitsync_owned, 0, g->key);
	server_series_remove(c->m.gs_ready, g->key);
	server_series_remove(c->m.gs_stalled, g->key);
	server_series_remove(c->m.rollout_wave, g->key);
	server_series_remove(c->m.rollout_halted, g->key);
	while (plumb_map_next(&g->clusters, &i, &k, &v)) {
		server_series_remove(c->m.health, g->key, k);
		server_series_remove(c->m.drifted, g->key, k);
	}
}

/* This replica now owns g (its claim succeeded; obj is what the server
 * made): it starts as a new leader would, from the status the last owner
 * wrote. */
static void gain(controller_shards *s, gitsync_state *g, const cJSON *obj)
{
	controller *c = s->c;
	pthread_mutex_lock(&g->status_lock);
	pthread_mutex_lock(&c->lock);
	if (g->deleted) {
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&g->status_lock);
		return;
	}
	cJSON_Delete(g->last_written);
	g->last_written = NULL;
	gitsync_reset_locked(c, g, obj);
	g->held = 1;
	g->releasing = 0;
	g->claim_rv = strtoull(plumb_json_str(obj, "metadata.resourceVersion") ?
		plumb_json_str(obj, "metadata.resourceVersion") : "0", NULL, 10);
	trigger_src(c, g->key, 0);
	trigger_gitsync_syncs_locked(c, g, 0);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&g->status_lock);
	server_gauge_set(s->m_gitsync_owned, 1, g->key);
	plumb_info("gitsync owned", "gitsync", g->key, "replica", s->identity);
}

/* Claims g if its status.owner is free (empty, this replica, or a replica
 * whose Lease is not live), with the resourceVersion read. */
static void claim(controller_shards *s, gitsync_state *g)
{
	cJSON *cur = NULL, *made = NULL;
	int rc = kube_get(&cur, s->mgmt, &s->c->gitsync_res, g->ns, g->name);
	if (rc) {
		if (rc != PLUMB_ENOTFOUND)
			plumb_warn("cannot read a gitsync to claim it", "gitsync", g->key, "error", plumb_error_last());
		return;
	}
	const char *owner = status_owner(cur), *rv = plumb_json_str(cur, "metadata.resourceVersion");
	if (owner && owner[0] && strcmp(owner, s->identity) && !holder_known(s, owner)) {
		/* An owner whose Lease this replica has not seen: it may have
		 * joined after the last list. Only a list made after this read can
		 * tell; without its Lease there, it is gone (it deleted it). */
		char **names = NULL;
		size_t n = 0;
		if (list_members(s, &names, &n) != 0) {
			cJSON_Delete(cur);
			return;
		}
		free_names(names, n);
		if (holder_known(s, owner)) {
			plumb_debug("gitsync owned by a replica just seen", "gitsync", g->key, "owner", owner);
			cJSON_Delete(cur);
			return;
		}
	} else if (owner && owner[0] && strcmp(owner, s->identity) && holder_live(s, owner)) {
		plumb_debug("gitsync still owned", "gitsync", g->key, "owner", owner);
		cJSON_Delete(cur);
		return;
	}
	rc = rv ? write_owner(&made, s, g->ns, g->name, rv, s->identity) : PLUMB_EINVALID;
	if (rc == 0)
		gain(s, g, made);
	else if (rc == PLUMB_ECONFLICT || rc == PLUMB_EFIELDCONFLICT)
		plumb_debug("gitsync claimed by another replica first", "gitsync", g->key);
	else
		plumb_warn("cannot claim a gitsync", "gitsync", g->key, "error", plumb_error_last());
	cJSON_Delete(cur);
	cJSON_Delete(made);
}

/* Gives g up once nothing of it runs here any more. 1 when done. */
static int release(controller_shards *s, gitsync_state *g)
{
	controller *c = s->c;
	pthread_mutex_lock(&c->lock);
	int busy = g->inflight > 0;
	pthread_mutex_unlock(&c->lock);
	if (busy)
		return 0;
	cJSON *cur = NULL;
	int rc = kube_get(&cur, s->mgmt, &c->gitsync_res, g->ns, g->name);
	if (rc == 0 && streq(status_owner(cur), s->identity))
		rc = write_owner(NULL, s, g->ns, g->name, plumb_json_str(cur, "metadata.resourceVersion"), NULL);
	cJSON_Delete(cur);
	if (rc && rc != PLUMB_ENOTFOUND) {
		plumb_debug("cannot release a gitsync yet", "gitsync", g->key, "error", plumb_error_last());
		return 0;
	}
	drop_engines_of(c, g->key);
	pthread_mutex_lock(&c->lock);
	forget_metrics_locked(s, g);
	pthread_mutex_unlock(&c->lock);
	plumb_info("gitsync released", "gitsync", g->key, "replica", s->identity);
	return 1;
}

/* The lease thread's view changed. Going inactive, this replica forgets
 * what it held without writing anything: the workers stopped at the
 * deadline already (shard_active), and the others may claim its GitSyncs
 * once its Lease is a lease duration old. Back, it claims again. */
static void set_active(controller_shards *s, int active)
{
	controller *c = s->c;
	if (active == s->active)
		return;
	s->active = active;
	s->active_since = plumb_time_mono();
	server_gauge_set(c->m.leader, active);
	pthread_mutex_lock(&c->lock);
	size_t i = 0;
	const char *k;
	void *v;
	if (active) {
		while (plumb_map_next(&c->clusters, &i, &k, &v))
			trigger_probe(c, k);
	} else {
		while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
			gitsync_state *g = v;
			if (g->held || g->releasing)
				forget_metrics_locked(s, g);
			g->held = g->releasing = 0;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (active)
		plumb_info("replica active", "identity", s->identity, "lease", s->lease);
	else
		plumb_warn("replica lease not renewed within the renew deadline: stopped work", "identity",
			s->identity, "lease", s->lease);
}

static void timed_wait(controller_shards *s, double seconds, int wake_on_poke)
{
	pthread_mutex_lock(&s->lock);
	if (!s->stop && !(wake_on_poke && s->poke)) {
		double until = plumb_time_mono() + seconds;
		struct timespec ts = { (time_t)until, (long)((until - (double)(time_t)until) * 1e9) };
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
}

static int stopping(controller_shards *s)
{
	pthread_mutex_lock(&s->lock);
	int stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

/* The lease thread: renews this replica's Lease every retry period, on a
 * thread of its own so that no claim, release or slow list delays it. The
 * deadline it sets (shard_active) is counted from before the request, and
 * the workers check it themselves: a renewal stuck in a request cannot keep
 * this replica working past it. */
static void *lease_loop(void *arg)
{
	controller_shards *s = arg;
	while (!stopping(s)) {
		double start = plumb_time_mono();
		if (renew_own(s) == 0)
			atomic_store(&s->c->shard_active_until_us, (long long)((start + s->renew_deadline) * 1e6));
		else
			plumb_warn("cannot renew the replica lease", "lease", s->lease, "error", plumb_error_last());
		set_active(s, shard_active(s->c));
		double left = (double)atomic_load(&s->c->shard_active_until_us) / 1e6 - plumb_time_mono();
		double wait = s->retry_period;
		if (s->active && left > 0 && left < wait)
			wait = left;
		timed_wait(s, wait, 0);
	}
	return NULL;
}

typedef struct {
	gitsync_state *g;
	int claim;                /* else release */
} shard_action;

/* One round: renew, list the replicas, assign, claim and release. */
static void shards_round(controller_shards *s)
{
	controller *c = s->c;
	char **members = NULL;
	size_t m = 0;
	int active = shard_active(c);
	/* Replicas started together (a Deployment) see each other's Leases
	 * within a retry period or two: claiming before that would take
	 * everything only to hand most of it on. */
	int settling = plumb_time_mono() - s->active_since < 2 * s->retry_period;
	int listed = list_members(s, &members, &m) == 0;
	if (!listed)
		plumb_warn("cannot list the replica leases", "error", plumb_error_last());
	size_t me = SHARD_NONE;
	for (size_t j = 0; j < m; j++)
		if (!strcmp(members[j], s->identity))
			me = j;

	pthread_mutex_lock(&c->lock);
	if (listed) {
		int same = m == c->shard_nmembers;
		for (size_t j = 0; same && j < m; j++)
			same = !strcmp(members[j], c->shard_members[j]);
		if (!same) {
			/* the view before this change, for shard_cluster_is_mine */
			free_names(c->shard_prev_members, c->shard_nprev);
			c->shard_prev_members = c->shard_members;
			c->shard_nprev = c->shard_nmembers;
			c->shard_view_since = plumb_time_mono();
			c->shard_lease_duration = s->lease_duration;
		} else {
			free_names(c->shard_members, c->shard_nmembers);
		}
		c->shard_members = members;
		c->shard_nmembers = m;
		members = NULL;
	}
	size_t n = c->gitsyncs.count, i = 0, k = 0, nunits = 0, nact = 0;
	unit_node *nodes = calloc(n ? n : 1, sizeof(*nodes));
	const char **ukey = calloc(n ? n : 1, sizeof(*ukey));
	size_t *unit_of = calloc(n ? n : 1, sizeof(*unit_of));
	shard_unit *units = calloc(n ? n : 1, sizeof(*units));
	shard_action *act = calloc(n ? n : 1, sizeof(*act));
	const char *key;
	void *v;
	if (!nodes || !ukey || !unit_of || !units || !act) {
		pthread_mutex_unlock(&c->lock);
		plumb_warn("sharding round skipped", "error", "out of memory");
		goto cleanup;
	}
	while (plumb_map_next(&c->gitsyncs, &i, &key, &v) && k < n)
		nodes[k++].g = v;
	n = k;
	unit_keys_locked(c, nodes, n, ukey);
	plumb_map units_by_key = { 0 };
	for (i = 0; i < n; i++) {
		uintptr_t u = (uintptr_t)plumb_map_get(&units_by_key, ukey[i]);
		if (!u) {
			units[nunits] = (shard_unit){ .key = ukey[i] };
			u = ++nunits;
			plumb_map_put(&units_by_key, ukey[i], (void *)u, NULL);
		}
		units[u - 1].weight++;
		unit_of[i] = u - 1;
	}
	plumb_map_free(&units_by_key, NULL);
	int assigned = listed && shard_assign(units, nunits, (const char *const *)c->shard_members, c->shard_nmembers) == 0;
	size_t owned = 0;
	for (i = 0; i < n; i++) {
		gitsync_state *g = nodes[i].g;
		int want = active && me != SHARD_NONE && assigned && units[unit_of[i]].owner == me;
		const char *seen = status_owner(g->obj), *seen_rv = plumb_json_str(g->obj, "metadata.resourceVersion");
		if (g->held && !streq(seen, s->identity) && seen_rv && strtoull(seen_rv, NULL, 10) > g->claim_rv) {
			/* never meant to happen: someone else's write after our claim */
			plumb_warn("gitsync owned by another replica since this one claimed it: stopped", "gitsync",
				g->key, "owner", seen ? seen : "");
			forget_metrics_locked(s, g);
			g->held = g->releasing = 0;
		}
		if (!assigned && active)
			want = g->held; /* the list failed: keep what is held */
		if (g->held && !want) {
			/* stop taking its items now; status.owner goes once they end */
			g->held = 0;
			g->releasing = 1;
		} else if (!g->held && !g->releasing && !want && active && streq(seen, s->identity)) {
			/* named as owner but not holding it (it stopped work when a
			 * renewal was late, then the assignment moved): the others wait
			 * for this replica while its Lease is live, so it lets go */
			g->releasing = 1;
		}
		if (g->releasing || (!g->held && want && !settling)) {
			g->refs++;
			act[nact++] = (shard_action){ g, !g->releasing };
		}
		owned += g->held;
	}
	pthread_mutex_unlock(&c->lock);
	server_gauge_set(s->m_replicas, (double)c->shard_nmembers);

	for (i = 0; i < nact; i++) {
		if (act[i].claim) {
			/* claims stop the moment this replica's own Lease is in doubt */
			if (shard_active(c))
				claim(s, act[i].g);
		} else if (release(s, act[i].g)) {
			pthread_mutex_lock(&c->lock);
			act[i].g->releasing = 0;
			pthread_mutex_unlock(&c->lock);
		}
		gitsync_put(c, act[i].g);
	}
	pthread_mutex_lock(&c->lock);
	owned = 0;
	for (i = 0; plumb_map_next(&c->gitsyncs, &i, &key, &v);)
		owned += ((gitsync_state *)v)->held;
	pthread_mutex_unlock(&c->lock);
	server_gauge_set(s->m_owned, (double)owned);
cleanup:
	free(nodes);
	free(ukey);
	free(unit_of);
	free(units);
	free(act);
	free_names(members, m);
}

/* The assignment thread: a round every retry period, sooner after a new
 * GitSync (controller_shards_poke), and five times as often while a release
 * waits for running items. */
static void *shards_loop(void *arg)
{
	controller_shards *s = arg;
	while (!stopping(s)) {
		pthread_mutex_lock(&s->lock);
		s->poke = 0;
		pthread_mutex_unlock(&s->lock);
		char why[128];
		if (controller_ready(s->c, why, sizeof(why)))
			shards_round(s);
		double wait = s->retry_period;
		pthread_mutex_lock(&s->c->lock);
		size_t i = 0;
		const char *k;
		void *v;
		while (plumb_map_next(&s->c->gitsyncs, &i, &k, &v))
			if (((gitsync_state *)v)->releasing)
				wait = s->retry_period / 5;
		pthread_mutex_unlock(&s->c->lock);
		timed_wait(s, wait, 1);
	}
	return NULL;
}

int controller_shards_new(controller_shards **out, controller *c, kube_client *mgmt, const controller_shards_opts *o)
{
	controller_shards *s = calloc(1, sizeof(*s));
	int rc;
	char lease[300];
	if (!s)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	s->c = c;
	s->mgmt = mgmt;
	s->ns = plumb_strdup(o->ns);
	s->prefix = plumb_strdup(o->name);
	s->identity = plumb_strdup(o->identity);
	s->lease_duration = o->lease_duration > 0 ? o->lease_duration : 15;
	s->renew_deadline = o->renew_deadline > 0 ? o->renew_deadline : 10;
	s->retry_period = o->retry_period > 0 ? o->retry_period : 2;
	s->max_owners = o->max_owners;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (!s->ns || !s->prefix || !s->identity) {
		rc = plumb_error_set(PLUMB_EINVALID, "sharding needs a lease namespace, a lease name and an identity");
		goto fail;
	}
	if (!(s->lease_duration > s->renew_deadline && s->renew_deadline > 1.2 * s->retry_period)) {
		rc = plumb_error_set(PLUMB_EINVALID,
			"sharding: want lease duration > renew deadline > 1.2 x retry period");
		goto fail;
	}
	lease_name_of(lease, sizeof(lease), s->prefix, s->identity);
	s->lease = plumb_strdup(lease);
	if ((rc = kube_resolve(&s->lease_res, mgmt, "coordination.k8s.io/v1", "Lease")))
		goto fail;
	server_metrics *r = c->o.metrics;
	const char *gs[] = { "gitsync" };
	if (r) {
		s->m_replicas = server_gauge(r, "plumb_shard_replicas",
			"--shards: live replicas that own GitSyncs, as this replica sees them.", 0, NULL);
		s->m_owned = server_gauge(r, "plumb_shard_gitsyncs", "--shards: GitSyncs this replica owns.", 0, NULL);
		s->m_gitsync_owned = server_gauge(r, "plumb_gitsync_owned",
			"--shards: 1 while this replica owns the GitSync (status.owner.replica).", 1, gs);
	}
	c->sharded = 1;
	c->shards = s;
	*out = s;
	return 0;
fail:
	controller_shards_free(s);
	return rc;
}

int controller_shards_run(controller_shards *s)
{
	if (pthread_create(&s->lease_thread, NULL, lease_loop, s) != 0)
		return plumb_error_set(PLUMB_EIO, "sharding: cannot start thread");
	s->lease_thread_started = 1;
	if (pthread_create(&s->thread, NULL, shards_loop, s) != 0)
		return plumb_error_set(PLUMB_EIO, "sharding: cannot start thread");
	s->thread_started = 1;
	return 0;
}

/* A new GitSync: a round now rather than after the retry period. Called
 * under c->lock (s->lock nests inside it). */
void controller_shards_poke(controller_shards *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->poke = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void controller_shards_free(controller_shards *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->lease_thread_started)
		pthread_join(s->lease_thread, NULL);
	if (s->thread_started) {
		pthread_join(s->thread, NULL);
		/* Stop (the workers were stopped by the caller), give every
		 * GitSync up and leave: the others take over in their next round. */
		controller *c = s->c;
		atomic_store(&c->shard_active_until_us, 0);
		pthread_mutex_lock(&c->lock);
		c->shards = NULL;
		size_t i = 0, n = 0;
		const char *k;
		void *v;
		gitsync_state **held = calloc(c->gitsyncs.count ? c->gitsyncs.count : 1, sizeof(*held));
		while (held && plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
			gitsync_state *g = v;
			if (g->held || g->releasing) {
				g->held = 0;
				g->releasing = 1;
				g->refs++;
				held[n++] = g;
			}
		}
		pthread_mutex_unlock(&c->lock);
		for (i = 0; i < n; i++) {
			release(s, held[i]);
			gitsync_put(c, held[i]);
		}
		free(held);
		if (s->lease_res.resource[0] && kube_delete(s->mgmt, &s->lease_res, s->ns, s->lease, KUBE_PROPAGATION_DEFAULT) == 0)
			plumb_info("replica lease deleted", "lease", s->lease);
	}
	plumb_map_free(&s->observed, free);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->ns);
	free(s->prefix);
	free(s->identity);
	free(s->lease);
	free(s);
}

/* ---- what the rest of the controller asks -------------------------------------------- */

int shard_active(controller *c)
{
	return plumb_time_mono() * 1e6 < (double)atomic_load(&c->shard_active_until_us);
}

int shard_cluster_is_mine(controller *c, const char *cl_key)
{
	if (!c->sharded)
		return 1;
	pthread_mutex_lock(&c->lock);
	size_t j = shard_rendezvous(cl_key, (const char *const *)c->shard_members, c->shard_nmembers);
	size_t p = shard_rendezvous(cl_key, (const char *const *)c->shard_prev_members, c->shard_nprev);
	int mine = j != SHARD_NONE && streq(c->shard_members[j], c->o.identity);
	/* a Cluster that just became this replica's: its last writer may not
	 * have seen the change yet; it surely has after a lease duration */
	if (mine && !(p != SHARD_NONE && streq(c->shard_prev_members[p], c->o.identity)) &&
	    plumb_time_mono() - c->shard_view_since < c->shard_lease_duration)
		mine = 0;
	pthread_mutex_unlock(&c->lock);
	return mine;
}
