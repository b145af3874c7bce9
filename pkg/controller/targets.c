/* pkg/controller/targets.c: targets, a Cluster as one identity sees it.
 *
 * target_get builds (and rebuilds when its credentials change) the client
 * for a Cluster from its kubeconfig Secret under the tenant kubeconfig
 * policy, or plumbd's own config for the management cluster where the
 * operator allows it; target_for derives an impersonating target for a
 * GitSync's service account; target_engine is the GitSync's apply engine
 * in a target. reconcile_probe (WORK_PROBE) asks a Cluster's API server
 * for /version and writes the Cluster's status. c->targets and target
 * refs are under c->lock; a target's engines, cache and flags under
 * t->lock. Workers run all of this. */
#include "controller/internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"

/* ---- targets ---------------------------------------------------------------------- */

static void free_engine(void *e) { apply_engine_free(e); }
void free_json(void *j) { cJSON_Delete(j); }

void free_live_entry(void *p)
{
	live_entry *e = p;
	if (e) {
		free(e->body);
		plumb_keep_free(e->health_msg);
	}
	plumb_keep_free(e);
}

void target_unref(controller *c, target *t)
{
	pthread_mutex_lock(&c->lock);
	int last = --t->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	for (size_t i = 0; i < t->nwatches; i++) {
		kube_watch_stop(t->watches[i]->w);
		free(t->watches[i]);
	}
	free(t->watches);
	plumb_map_free(&t->cache, free_live_entry);
	plumb_map_free(&t->label_counts, NULL);
	plumb_map_free(&t->labels, plumb_keep_free);
	plumb_map_free(&t->engines, free_engine);
	kube_client_free(t->client);
	pthread_mutex_destroy(&t->lock);
	free(t->key);
	free(t->name);
	free(t->cred_id);
	free(t->identity);
	free(t);
}

/* 1 when ns is one of the comma-separated names in list. */
static int in_list(const char *list, const char *ns)
{
	size_t n = ns ? strlen(ns) : 0;
	for (const char *p = list; p && *p && n;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && !strncmp(p, ns, n))
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

#define MANAGEMENT_TARGET_NOT_ALLOWED "ManagementTargetNotAllowed"

/* A Cluster without kubeConfigSecretRef targets the management cluster
 * with plumbd's own credentials: only from namespaces the operator names. */
static int management_target_allowed(const controller *c, const gitsync_cluster *cl)
{
	return in_list(c->o.management_target_namespaces, cl->ns);
}

static int management_target_refused(const gitsync_cluster *cl)
{
	const char *ns = cl->ns;
	return plumb_error_set(PLUMB_EFORBIDDEN, "%s: Cluster %s/%s has no kubeConfigSecretRef, which makes "
		"the management cluster its target; plumbd allows that only in the namespaces of "
		"--management-target-namespaces, and \"%s\" is not one", MANAGEMENT_TARGET_NOT_ALLOWED,
		ns ? ns : "", cl->name ? cl->name : "", ns ? ns : "");
}

/* The target for Cluster cl_key, (re)built when its credentials changed.
 * *out holds a reference: target_unref() it. */
/* The fields every target starts with, whoever it acts as; takes *cred_id
 * over. refs = 2: the map's and the caller's. */
static void target_init(target *t, controller *c, const char *cl_key, const char *name,
	const char *identity, char **cred_id)
{
	t->refs = 2;
	t->key = plumb_strdup(cl_key);
	t->name = plumb_strdup(name);
	t->identity = identity ? plumb_strdup(identity) : NULL;
	t->cred_id = *cred_id;
	*cred_id = NULL;
	t->c = c;
	pthread_mutex_init(&t->lock, NULL);
	t->cache.keep = 1;
	t->labels.keep = 1;
	t->label_counts.keep = 1;
}

/* Puts t in the targets under mkey; returns the one it replaces (the
 * caller unrefs it) or NULL. */
static target *target_publish(controller *c, const char *mkey, target *t)
{
	target *old = NULL;
	pthread_mutex_lock(&c->lock);
	plumb_map_put(&c->targets, mkey, t, (void **)&old);
	pthread_mutex_unlock(&c->lock);
	return old;
}

static int target_get(target **out, controller *c, const char *cl_key)
{
	char *cred_id = NULL, *kc = NULL, *name = NULL;
	size_t kclen = 0;
	int rc = 0, in_cluster = 0;
	kube_config *cfg = NULL;
	gitsync_cluster *cl = NULL;
	target *t = NULL;

	int erc = secret_ensure_ref(c, SECRET_REF_KUBECONFIG, cl_key);
	char emsg[512] = "";
	if (erc < 0 && erc != PLUMB_ENOTFOUND)
		snprintf(emsg, sizeof(emsg), "%s", plumb_error_last());
	pthread_mutex_lock(&c->lock);
	const cluster_state *cs = plumb_map_get(&c->clusters, cl_key);
	if (!cs) {
		pthread_mutex_unlock(&c->lock);
		return plumb_error_set(PLUMB_ENOTFOUND, "cluster %s not found", cl_key);
	}
	/* a snapshot: the informer replaces the parsed Cluster on every event */
	if ((rc = gitsync_cluster_parse(&cl, cs->obj))) {
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	name = plumb_strdup(cl->name);
	if (!cl->kubeconfig_secret && !management_target_allowed(c, cl)) {
		rc = management_target_refused(cl);
	} else if (!cl->kubeconfig_secret) {
		in_cluster = 1;
		cred_id = plumb_strdup("management-cluster");
	} else {
		char sk[600];
		snprintf(sk, sizeof(sk), "%s/%s", cl->ns ? cl->ns : "", cl->kubeconfig_secret);
		const cJSON *sec = plumb_map_get(&c->secrets, sk);
		if (!sec && emsg[0])
			rc = plumb_error_set(erc, "kubeconfig secret %s: %s", sk, emsg);
		else if (!(rc = gitsync_kubeconfig_data(&kc, &kclen, cl, sec)))
			cred_id = gitsync_kubeconfig_id(cl, sec);
	}
	if (!rc) {
		t = plumb_map_get(&c->targets, cl_key);
		/* A target over its cache cap is built afresh (relisting
		 * everything) once opts.target_cache_retry has passed. */
		if (t && streq(t->cred_id, cred_id) &&
		    !(t->over_cap && plumb_time_mono() - t->over_since >= c->o.target_cache_retry)) {
			t->refs++;
			pthread_mutex_unlock(&c->lock);
			*out = t;
			goto cleanup;
		}
		t = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc)
		goto cleanup;

	if (in_cluster) {
		cfg = c->o.mgmt_config;
		kube_config_free(NULL);
	} else if ((rc = gitsync_kubeconfig_load(&cfg, cl, kc, kclen, c->o.tenant_policy))) {
		goto cleanup;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	kube_client_opts ko = { .name = name, .timeout = 20, .on_request = c->o.on_request,
		.hook_data = c->o.hook_data, .qps = c->o.kube_qps > 0 ? c->o.kube_qps : -1,
		.burst = c->o.kube_burst, .user_agent = c->o.user_agent };
	rc = kube_client_new(&t->client, cfg, &ko);
	if (rc) {
		free(t);
		t = NULL;
		goto cleanup;
	}
	target_init(t, c, cl_key, name, NULL, &cred_id);
	target *old = target_publish(c, cl_key, t);
	if (old) {
		if (old->over_cap)
			plumb_info("cluster was over its cache cap; reconnecting", "cluster", name);
		else
			plumb_info("cluster credentials changed; reconnecting", "cluster", name);
		target_unref(c, old);
	}
	*out = t;
cleanup:
	if (cfg && !in_cluster)
		kube_config_free(cfg);
	gitsync_kubeconfig_wipe(kc, kclen);
	gitsync_cluster_free(cl);
	free(cred_id);
	free(name);
	return rc;
}

/* The target for Cluster cl_key as user ("" or NULL: plumbd's own). An
 * identity's target is built on the Cluster's own (its client impersonates
 * user over the same connections) and rebuilt when that one is.
 * *out holds a reference: target_unref() it. */
int target_for(target **out, controller *c, const char *cl_key, const char *user)
{
	target *base = NULL, *t = NULL, *old = NULL;
	char *mkey = NULL, *cred_id = NULL;
	int rc;
	if (!user || !*user)
		return target_get(out, c, cl_key);
	if ((rc = target_get(&base, c, cl_key)))
		return rc;
	mkey = plumb_asprintf("%s|%s", cl_key, user);
	cred_id = plumb_asprintf("%s|%s", base->cred_id, user);
	if (!mkey || !cred_id) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	pthread_mutex_lock(&c->lock);
	t = plumb_map_get(&c->targets, mkey);
	if (t && streq(t->cred_id, cred_id)) {
		t->refs++;
		pthread_mutex_unlock(&c->lock);
		*out = t;
		goto cleanup;
	}
	pthread_mutex_unlock(&c->lock);
	if (!(t = calloc(1, sizeof(*t)))) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	if ((rc = kube_client_impersonate(&t->client, base->client, user, NULL))) {
		free(t);
		goto cleanup;
	}
	target_init(t, c, cl_key, base->name, user, &cred_id);
	old = target_publish(c, mkey, t);
	if (old)
		target_unref(c, old);
	*out = t;
cleanup:
	target_unref(c, base);
	free(mkey);
	free(cred_id);
	return rc;
}

target *target_lookup(controller *c, const char *cl_key, const char *user)
{
	char *mkey = user && *user ? plumb_asprintf("%s|%s", cl_key, user) : plumb_strdup(cl_key);
	target *t = NULL;
	if (!mkey)
		return NULL;
	pthread_mutex_lock(&c->lock);
	if ((t = plumb_map_get(&c->targets, mkey)))
		t->refs++;
	pthread_mutex_unlock(&c->lock);
	free(mkey);
	return t;
}

/* Drops GitSync gs_key's engine from every target of Cluster cl_key but
 * keep (NULL: all): the GitSync is gone or acts as another identity now.
 * An identity's target left without engines goes (its watches stop). */
void drop_engines(controller *c, const char *cl_key, const char *gs_key, const target *keep)
{
	target *drop[64];
	size_t ndrop = 0;
	pthread_mutex_lock(&c->lock);
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->targets, &i, &k, &v)) {
		target *t = v;
		if (t == keep || !streq(t->key, cl_key))
			continue;
		pthread_mutex_lock(&t->lock);
		apply_engine_free(plumb_map_del(&t->engines, gs_key));
		int empty = t->identity && t->engines.count == 0;
		pthread_mutex_unlock(&t->lock);
		if (empty && ndrop < sizeof(drop) / sizeof(drop[0]))
			drop[ndrop++] = t;
	}
	for (size_t j = 0; j < ndrop; j++) {
		char *mkey = plumb_asprintf("%s|%s", drop[j]->key, drop[j]->identity);
		if (mkey && plumb_map_get(&c->targets, mkey) == drop[j])
			plumb_map_del(&c->targets, mkey);
		else
			drop[j] = NULL;
		free(mkey);
	}
	pthread_mutex_unlock(&c->lock);
	for (size_t j = 0; j < ndrop; j++)
		if (drop[j])
			target_unref(c, drop[j]);
}

apply_engine *target_engine(target *t, const gitsync_state *g)
{
	pthread_mutex_lock(&t->lock);
	apply_engine *e = plumb_map_get(&t->engines, g->key);
	if (!e && apply_engine_new(&e, t->client, g->ns, g->name) == 0)
		plumb_map_put(&t->engines, g->key, e, NULL);
	pthread_mutex_unlock(&t->lock);
	return e;
}

void drop_engines_of(controller *c, const char *gs_key)
{
	pthread_mutex_lock(&c->lock);
	size_t i = 0, n = 0;
	const char *k;
	void *v;
	char **keys = calloc(c->targets.count ? c->targets.count : 1, sizeof(*keys));
	while (keys && plumb_map_next(&c->targets, &i, &k, &v)) {
		const char *ck = ((target *)v)->key;
		size_t j = 0;
		while (j < n && strcmp(keys[j], ck))
			j++;
		if (j == n && (keys[n] = plumb_strdup(ck)))
			n++;
	}
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < n; i++) {
		drop_engines(c, keys[i], gs_key, NULL);
		free(keys[i]);
	}
	free(keys);
}

/* ---- cluster probe ---------------------------------------------------------------------- */

int reconcile_probe(controller *c, const char *cl_key, double *next)
{
	target *t = NULL;
	char version[64] = "", *msg = NULL;
	const char *slash = strchr(cl_key, '/');
	char ns[300] = "", name[300] = "";
	snprintf(ns, sizeof(ns), "%.*s", slash ? (int)(slash - cl_key) : 0, cl_key);
	snprintf(name, sizeof(name), "%s", slash ? slash + 1 : cl_key);
	*next = PROBE_PERIOD;

	pthread_mutex_lock(&c->lock);
	const cluster_state *cs = plumb_map_get(&c->clusters, cl_key);
	const cJSON *cl = cs ? cs->obj : NULL;
	cJSON *prev = cl ? cJSON_Duplicate(plumb_json_get(cl, "status"), 1) : NULL;
	const cJSON *genj = plumb_json_get(cl, "metadata.generation");
	long gen = cJSON_IsNumber(genj) ? (long)genj->valuedouble : 0;
	int exists = cl != NULL;
	int mgmt_refused = cs && cs->spec && !cs->spec->kubeconfig_secret && !management_target_allowed(c, cs->spec);
	pthread_mutex_unlock(&c->lock);
	if (!exists)
		return 0;

	int rc = target_get(&t, c, cl_key);
	if (rc == 0)
		rc = kube_server_version(version, sizeof(version), t->client);
	int up = rc == 0;
	if (!up)
		msg = plumb_strdup(plumb_error_last());
	server_gauge_set(c->m.cluster_up, up ? 1 : 0, name);
	int was_up = 0;
	if (t) {
		pthread_mutex_lock(&t->lock);
		was_up = t->up;
		t->up = up;
		if (up)
			snprintf(t->version, sizeof(t->version), "%s", version);
		pthread_mutex_unlock(&t->lock);
	}

	cJSON *st = cJSON_CreateObject();
	cJSON_AddNumberToObject(st, "observedGeneration", (double)gen);
	const char *old_version = plumb_json_str(prev, "serverVersion");
	if (up)
		cJSON_AddStringToObject(st, "serverVersion", version);
	else if (old_version)
		cJSON_AddStringToObject(st, "serverVersion", old_version);
	cJSON *conds = cJSON_AddArrayToObject(st, "conditions");
	controller_condition_add(conds, prev, "Ready", up, up ? "Connected" :
		rc == PLUMB_EINSECURE ? "InsecureKubeconfig" :
		mgmt_refused ? MANAGEMENT_TARGET_NOT_ALLOWED :
		rc == PLUMB_EAUTH || rc == PLUMB_EFORBIDDEN ? "Unauthorized" :
		rc == PLUMB_ENOTFOUND || rc == PLUMB_EINVALID ? "KubeconfigInvalid" : "Unreachable",
		up ? "the API server answers" : msg, gen, plumb_time_real());
	/* lastProbeTime moves with what the probe found, so a steady cluster
	 * costs no status write. */
	cJSON *cmp = cJSON_Duplicate(prev, 1);
	if (cmp)
		cJSON_DeleteItemFromObjectCaseSensitive(cmp, "lastProbeTime");
	if (!cmp || !diff_json_equal(st, cmp) || !diff_json_equal(cmp, st)) {
		char ts[48];
		plumb_time_rfc3339(ts, sizeof(ts), plumb_time_real());
		cJSON_AddStringToObject(st, "lastProbeTime", ts);
		/* with --shards every replica probes, one writes */
		if (shard_cluster_is_mine(c, cl_key)) {
			write_cluster_status(c, ns, name, st);
			st = NULL;
		}
		plumb_info(up ? "cluster ready" : "cluster not ready", "cluster", cl_key,
			"version", up ? version : NULL, "error", msg);
	}
	cJSON_Delete(cmp);
	cJSON_Delete(st);
	cJSON_Delete(prev);
	if (up && !was_up) {
		/* Back (or new): everything targeting it gets a look at once. */
		pthread_mutex_lock(&c->lock);
		trigger_cluster_syncs_locked(c, cl_key, 0);
		pthread_mutex_unlock(&c->lock);
	}
	free(msg);
	/* one pooled connection stays for the next probe (see reconcile_sync) */
	if (t)
		kube_client_shrink(t->client, 1);
	if (t)
		target_unref(c, t);
	return up ? 0 : (rc ? rc : PLUMB_EUNAVAILABLE);
}

