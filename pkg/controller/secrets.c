/* pkg/controller/secrets.c: the Secrets plumbd keeps, which are only
 * those a Cluster or a GitSync references, reduced to the keys it reads.
 *
 * on_secret runs on the watch hub's thread; secret_ensure and
 * secret_ensure_ref fetch a reference the watch has not delivered (a worker
 * or the HTTP thread that needs it). All of c->secrets and
 * c->secret_misses is under c->lock; no Secret data leaves this file but
 * through c->secrets, and none is logged. */
#include "controller/internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Triggers what depends on Secret ns/name. Called with c->lock held. */
static void secret_changed_locked(controller *c, const char *ns, const char *name)
{
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->clusters, &i, &k, &v)) {
		const gitsync_cluster *cl = ((cluster_state *)v)->spec;
		if (cl && streq(cl->ns, ns) && streq(cl->kubeconfig_secret, name)) {
			trigger_probe(c, k);
			trigger_cluster_syncs_locked(c, k, 0);
		}
	}
	i = 0;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		if (g->spec && streq(g->ns, ns) && streq(g->spec->git.secret_name, name))
			trigger_src(c, g->key, 0);
	}
}

/* ---- Secrets: only what a Cluster or GitSync references ------------------------------
 * plumbd may watch every Secret of a namespace (or of the cluster), most of
 * them none of its business and some large (Helm releases: up to 1 MiB). It
 * keeps a Secret only while a Cluster (kubeConfigSecretRef) or a GitSync
 * (git.secretRef, webhook.secretRef) in its namespace names it, and only the
 * data keys those read; "plumbKeys" in the kept object records which keys it
 * was reduced for. A reference that appears later, or wants other keys, is
 * filled by a GET (secret_ensure) from the worker or HTTP thread that needs
 * it. Lists of Secrets use small pages, so a relist never holds more than
 * SECRET_LIST_LIMIT whole Secrets at once. */

#define SECRET_MISS_TTL 5.0    /* seconds a GET's NotFound is believed (webhooks are unauthenticated) */

static const char *const git_secret_keys[] = {
	"username", "password", "bearerToken", "identity", "known_hosts", "caFile",
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define SECRET_MAX_KEYS 64

/* Adds key to keys[*n] unless it is there: many GitSyncs sharing one Git
 * Secret still need only its six keys. */
static void add_key(const char **keys, size_t *n, const char *key)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(keys[i], key))
			return;
	if (*n < SECRET_MAX_KEYS)
		keys[(*n)++] = key;
}

/* The data keys plumbd reads from Secret ns/name, sorted, each followed by a
 * newline, in *out (caller frees); NULL when nothing references it. */
static char *secret_needs_locked(controller *c, const char *ns, const char *name)
{
	const char *keys[SECRET_MAX_KEYS];
	size_t n = 0, i = 0;
	int referenced = 0;
	const char *k;
	void *v;
	if (!ns || !name)
		return NULL;
	while (plumb_map_next(&c->clusters, &i, &k, &v)) {
		const gitsync_cluster *cl = ((cluster_state *)v)->spec;
		if (cl && streq(cl->ns, ns) && streq(cl->kubeconfig_secret, name)) {
			add_key(keys, &n, cl->kubeconfig_key);
			referenced = 1;
		}
	}
	i = 0;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		gitsync_state *g = v;
		if (!g->spec || !streq(g->ns, ns))
			continue;
		if (streq(g->spec->git.secret_name, name)) {
			for (size_t j = 0; j < sizeof(git_secret_keys) / sizeof(*git_secret_keys); j++)
				add_key(keys, &n, git_secret_keys[j]);
			referenced = 1;
		}
		if (streq(g->spec->webhook_secret_name, name)) {
			add_key(keys, &n, "token");
			referenced = 1;
		}
	}
	if (!referenced)
		return NULL;
	qsort(keys, n, sizeof(*keys), cmp_str);
	plumb_buf b;
	plumb_buf_init(&b, 64 * 1024);   /* 64 names of at most 253 bytes */
	for (size_t j = 0; j < n; j++) {
		if (plumb_buf_append(&b, keys[j], strlen(keys[j])) || plumb_buf_append(&b, "\n", 1)) {
			plumb_buf_free(&b);
			return NULL;
		}
	}
	return plumb_buf_detach(&b);
}

/* What plumbd keeps of Secret sec: its name, namespace and resourceVersion,
 * and the data keys secret_needs_locked() names; NULL when unreferenced. */
static cJSON *secret_reduce_locked(controller *c, const cJSON *sec)
{
	char *needs = secret_needs_locked(c, plumb_json_str(sec, "metadata.namespace"), plumb_json_str(sec, "metadata.name"));
	if (!needs)
		return NULL;
	cJSON *r = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(r, "metadata");
	cJSON *data = cJSON_AddObjectToObject(r, "data");
	const char *fields[] = { "name", "namespace", "resourceVersion" };
	for (size_t i = 0; i < 3; i++) {
		const cJSON *f = plumb_json_get(plumb_json_get(sec, "metadata"), fields[i]);
		if (cJSON_IsString(f))
			cJSON_AddStringToObject(m, fields[i], f->valuestring);
	}
	const cJSON *all = plumb_json_get(sec, "data");
	for (char *p = needs, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		const cJSON *val = cJSON_GetObjectItemCaseSensitive(all, p);
		if (val)
			cJSON_AddItemToObject(data, p, cJSON_Duplicate(val, 1));
		*nl = '\n';
	}
	cJSON_AddStringToObject(r, "plumbKeys", needs);
	free(needs);
	return r;
}

/* A kept Secret stays while a Cluster or GitSync references it; each one
 * dropped bumps the epoch. */
static int secret_referenced_locked(const char *key, void *val, void *data)
{
	controller *c = data;
	(void)key;
	char *needs = secret_needs_locked(c, plumb_json_str(val, "metadata.namespace"), plumb_json_str(val, "metadata.name"));
	int keep = needs != NULL;
	free(needs);
	if (!keep)
		c->secret_epoch++;
	return keep;
}

/* Drops kept Secrets that nothing references any more (after a Cluster or
 * GitSync changed or went away). */
void secrets_prune_locked(controller *c)
{
	plumb_map_retain(&c->secrets, secret_referenced_locked, c, free_json);
}

/* List pages of Secrets go through this on the list's helper thread. */
cJSON *reduce_secret(const cJSON *item, const kube_resource *res, void *data)
{
	(void)res;
	controller *c = data;
	pthread_mutex_lock(&c->lock);
	cJSON *r = secret_reduce_locked(c, item);
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* Makes sure c->secrets holds Secret ns/name as the references need it now:
 * GETs it when a reference is new or wants other keys. Call without c->lock.
 * Returns 0, or the GET's error (PLUMB_ENOTFOUND when it does not exist). */
static int secret_ensure(controller *c, const char *ns, const char *name)
{
	int rc = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		char sk[600];
		snprintf(sk, sizeof(sk), "%s/%s", ns ? ns : "", name ? name : "");
		pthread_mutex_lock(&c->lock);
		char *needs = secret_needs_locked(c, ns, name);
		const cJSON *have = plumb_map_get(&c->secrets, sk);
		int fine = !needs || (have && streq(plumb_json_str(have, "plumbKeys"), needs));
		unsigned long epoch = c->secret_epoch;
		const double *miss = plumb_map_get(&c->secret_misses, sk);
		int recent_miss = !fine && miss && plumb_time_mono() - *miss < SECRET_MISS_TTL;
		pthread_mutex_unlock(&c->lock);
		free(needs);
		if (fine)
			return 0;
		/* Anyone may POST to /hooks/…: a missing Secret costs one GET per
		 * SECRET_MISS_TTL, not one per request. */
		if (recent_miss)
			return plumb_error_set(PLUMB_ENOTFOUND, "secret %s not found", sk);
		cJSON *sec = NULL;
		rc = kube_get(&sec, c->o.mgmt, &c->secret_res, ns, name);
		pthread_mutex_lock(&c->lock);
		if (rc == PLUMB_ENOTFOUND) {
			double *t = malloc(sizeof(*t));
			void *old = NULL;
			if (t) {
				*t = plumb_time_mono();
				if (plumb_map_put(&c->secret_misses, sk, t, &old) == 0)
					free(old);
				else
					free(t);
			}
		} else {
			free(plumb_map_del(&c->secret_misses, sk));
		}
		if (c->secret_epoch != epoch) {
			/* A watch event came in meanwhile: it is at least as new. */
			pthread_mutex_unlock(&c->lock);
			cJSON_Delete(sec);
			continue;
		}
		cJSON *r = rc == 0 ? secret_reduce_locked(c, sec) : NULL;
		void *old = NULL;
		if (r) {
			if (plumb_map_put(&c->secrets, sk, r, &old) == 0)
				cJSON_Delete(old);
			else
				cJSON_Delete(r);
			c->secret_epoch++;
		} else if (rc == PLUMB_ENOTFOUND && plumb_map_get(&c->secrets, sk)) {
			cJSON_Delete(plumb_map_del(&c->secrets, sk));
			c->secret_epoch++;
		}
		pthread_mutex_unlock(&c->lock);
		cJSON_Delete(sec);
		return rc;
	}
	return rc;
}

/* secret_ensure() for the Secret that reference `which` of GitSync or
 * Cluster key names (nothing to do when it names none). */
int secret_ensure_ref(controller *c, secret_ref which, const char *key)
{
	char *ns = NULL, *name = NULL;
	pthread_mutex_lock(&c->lock);
	if (which == SECRET_REF_KUBECONFIG) {
		const cluster_state *cs = plumb_map_get(&c->clusters, key);
		if (cs && cs->spec) {
			ns = plumb_strdup(cs->spec->ns);
			name = plumb_strdup(cs->spec->kubeconfig_secret);
		}
	} else {
		const gitsync_state *g = plumb_map_get(&c->gitsyncs, key);
		if (g && g->spec) {
			ns = plumb_strdup(g->spec->ns);
			name = plumb_strdup(which == SECRET_REF_GIT ? g->spec->git.secret_name : g->spec->webhook_secret_name);
		}
	}
	pthread_mutex_unlock(&c->lock);
	int rc = ns && name ? secret_ensure(c, ns, name) : 0;
	free(ns);
	free(name);
	return rc;
}

void on_secret(kube_watch_event type, const cJSON *obj, void *data)
{
	controller *c = data;
	pthread_mutex_lock(&c->lock);
	if (type == KUBE_WATCH_RESYNC) {
		/* Items were reduced page by page (reduce_secret); keep those that
		 * still fit today's references, the rest are fetched on demand. */
		plumb_map_free(&c->secrets, free_json);
		const cJSON *it;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items")) {
			char *needs = secret_needs_locked(c, plumb_json_str(it, "metadata.namespace"), plumb_json_str(it, "metadata.name"));
			if (needs && streq(needs, plumb_json_str(it, "plumbKeys")))
				cache_replace_locked(&c->secrets, it);
			free(needs);
		}
		c->secret_epoch++;
		cJSON_ArrayForEach(it, plumb_json_get(obj, "items"))
			secret_changed_locked(c, plumb_json_str(it, "metadata.namespace"), plumb_json_str(it, "metadata.name"));
		c->synced[2] = 1;
	} else if (type == KUBE_WATCH_ADDED || type == KUBE_WATCH_MODIFIED || type == KUBE_WATCH_DELETED) {
		char *k = obj_key(obj);
		free(plumb_map_del(&c->secret_misses, k));
		cJSON *r = type == KUBE_WATCH_DELETED ? NULL : secret_reduce_locked(c, obj);
		void *old = NULL;
		if (r) {
			if (plumb_map_put(&c->secrets, k, r, &old) == 0)
				cJSON_Delete(old);
			else
				cJSON_Delete(r);
			c->secret_epoch++;
		} else if (plumb_map_get(&c->secrets, k)) {
			cJSON_Delete(plumb_map_del(&c->secrets, k));
			c->secret_epoch++;
		}
		free(k);
		secret_changed_locked(c, plumb_json_str(obj, "metadata.namespace"), plumb_json_str(obj, "metadata.name"));
	}
	pthread_mutex_unlock(&c->lock);
}

