/* pkg/controller: leader election on a coordination.k8s.io/v1 Lease, with
 * client-go's algorithm and timings. */
#include "controller/controller.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct controller_leader {
	kube_client *client;
	kube_resource lease_res;
	char *ns, *name, *identity;
	double lease_duration, renew_deadline, retry_period;
	void (*on_start)(void *);
	void (*on_stop)(void *);
	void *data;

	pthread_t thread;
	int thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	int leading;
	double last_renew;        /* monotonic time of our last successful renew */
	char observed[512];       /* holder + renewTime + resourceVersion last seen */
	double observed_time;     /* local monotonic time that record last changed */
};

static const char *json_str(const cJSON *obj, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *lease_spec(const controller_leader *l, const char *holder, int duration,
	const char *acquire, const char *renew, int transitions)
{
	cJSON *spec = cJSON_CreateObject();
	cJSON_AddStringToObject(spec, "holderIdentity", holder);
	cJSON_AddNumberToObject(spec, "leaseDurationSeconds", duration);
	cJSON_AddStringToObject(spec, "acquireTime", acquire);
	cJSON_AddStringToObject(spec, "renewTime", renew);
	cJSON_AddNumberToObject(spec, "leaseTransitions", transitions);
	(void)l;
	return spec;
}

/* One try-acquire-or-renew. Sets *leader to 1 when we hold the lease after it. */
int controller_leader_try(controller_leader *l, int *leader)
{
	cJSON *lease = NULL, *updated = NULL;
	char now[48];
	int rc;
	*leader = 0;
	plumb_time_micro(now, sizeof(now), plumb_time_real());

	rc = kube_get(&lease, l->client, &l->lease_res, l->ns, l->name);
	if (rc == PLUMB_ENOTFOUND) {
		cJSON *obj = cJSON_CreateObject();
		cJSON_AddStringToObject(obj, "apiVersion", "coordination.k8s.io/v1");
		cJSON_AddStringToObject(obj, "kind", "Lease");
		cJSON *meta = cJSON_AddObjectToObject(obj, "metadata");
		cJSON_AddStringToObject(meta, "name", l->name);
		cJSON_AddStringToObject(meta, "namespace", l->ns);
		cJSON_AddItemToObject(obj, "spec", lease_spec(l, l->identity,
			(int)l->lease_duration, now, now, 0));
		rc = kube_create(&updated, l->client, &l->lease_res, l->ns, obj);
		cJSON_Delete(obj);
		if (rc == 0)
			*leader = 1;
		goto cleanup;
	}
	if (rc)
		goto cleanup;

	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");
	const char *holder = json_str(lease, "spec", "holderIdentity");
	const char *renew = json_str(lease, "spec", "renewTime");
	const char *acquire = json_str(lease, "spec", "acquireTime");
	const char *rv = json_str(lease, "metadata", "resourceVersion");
	const cJSON *dur = cJSON_GetObjectItemCaseSensitive(spec, "leaseDurationSeconds");
	const cJSON *trans = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
	int transitions = cJSON_IsNumber(trans) ? trans->valueint : 0;
	double duration = cJSON_IsNumber(dur) ? dur->valuedouble : l->lease_duration;
	int mine = holder && strcmp(holder, l->identity) == 0;

	/* Validity is judged by when *we* saw the record change, never by
	 * comparing our clock with the holder's. */
	char record[512];
	snprintf(record, sizeof(record), "%s|%s|%s", holder ? holder : "", renew ? renew : "", rv ? rv : "");
	double mono = plumb_time_mono();
	if (strcmp(record, l->observed) != 0) {
		snprintf(l->observed, sizeof(l->observed), "%s", record);
		l->observed_time = mono;
	}
	if (!mine && holder && holder[0] && l->observed_time + duration > mono) {
		rc = 0; /* someone else holds a valid lease */
		goto cleanup;
	}

	cJSON *obj = cJSON_Duplicate(lease, 1);
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "spec");
	cJSON_AddItemToObject(obj, "spec", lease_spec(l, l->identity, (int)l->lease_duration,
		mine && acquire ? acquire : now, now, mine ? transitions : transitions + 1));
	rc = kube_update(&updated, l->client, &l->lease_res, l->ns, obj);
	cJSON_Delete(obj);
	if (rc == 0)
		*leader = 1;
cleanup:
	if (updated) {
		const char *nrv = json_str(updated, "metadata", "resourceVersion");
		const char *nrenew = json_str(updated, "spec", "renewTime");
		snprintf(l->observed, sizeof(l->observed), "%s|%s|%s", l->identity,
			nrenew ? nrenew : "", nrv ? nrv : "");
		l->observed_time = plumb_time_mono();
	}
	cJSON_Delete(lease);
	cJSON_Delete(updated);
	return rc;
}

int controller_leader_release(controller_leader *l)
{
	cJSON *lease = NULL;
	int rc = kube_get(&lease, l->client, &l->lease_res, l->ns, l->name);
	if (rc)
		return rc;
	const char *holder = json_str(lease, "spec", "holderIdentity");
	if (!holder || strcmp(holder, l->identity) != 0) {
		cJSON_Delete(lease);
		return 0;
	}
	char now[48];
	plumb_time_micro(now, sizeof(now), plumb_time_real());
	const cJSON *trans = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(lease, "spec"), "leaseTransitions");
	cJSON *obj = cJSON_Duplicate(lease, 1);
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "spec");
	/* An empty holder and a one-second lease: a standby takes over at once. */
	cJSON_AddItemToObject(obj, "spec", lease_spec(l, "", 1, now, now,
		cJSON_IsNumber(trans) ? trans->valueint : 0));
	rc = kube_update(NULL, l->client, &l->lease_res, l->ns, obj);
	cJSON_Delete(obj);
	cJSON_Delete(lease);
	return rc;
}

static void set_leading(controller_leader *l, int leading)
{
	pthread_mutex_lock(&l->lock);
	int was = l->leading;
	l->leading = leading;
	pthread_mutex_unlock(&l->lock);
	if (leading && !was) {
		plumb_info("became leader", "lease", l->name, "identity", l->identity);
		if (l->on_start)
			l->on_start(l->data);
	} else if (!leading && was) {
		plumb_warn("stopped leading", "lease", l->name, "identity", l->identity);
		if (l->on_stop)
			l->on_stop(l->data);
	}
}

static void *leader_loop(void *arg)
{
	controller_leader *l = arg;
	for (;;) {
		pthread_mutex_lock(&l->lock);
		int stop = l->stop;
		pthread_mutex_unlock(&l->lock);
		if (stop)
			break;
		int leader = 0;
		int rc = controller_leader_try(l, &leader);
		double mono = plumb_time_mono();
		if (leader) {
			l->last_renew = mono;
			set_leading(l, 1);
		} else if (l->leading && mono - l->last_renew >= l->renew_deadline) {
			/* Could not renew within the deadline: stop writing at once. */
			plumb_warn("lease renew deadline passed", "lease", l->name,
				"error", rc ? plumb_error_last() : "held by another");
			set_leading(l, 0);
		} else if (l->leading && !leader && rc == 0) {
			/* The record says someone else holds it. */
			set_leading(l, 0);
		}
		/* Wait retry_period (with jitter when not leading), or until stopped. */
		double wait = l->retry_period * (l->leading ? 1.0 : 1.0 + 0.2 * plumb_random_unit());
		pthread_mutex_lock(&l->lock);
		if (!l->stop) {
			double until = plumb_time_mono() + wait;
			struct timespec ts = { (time_t)until, (long)((until - (double)(time_t)until) * 1e9) };
			pthread_cond_timedwait(&l->cond, &l->lock, &ts);
		}
		pthread_mutex_unlock(&l->lock);
	}
	return NULL;
}

int controller_leader_new(controller_leader **out, kube_client *c, const controller_leader_opts *opts)
{
	controller_leader *l = calloc(1, sizeof(*l));
	int rc;
	if (!l)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	l->client = c;
	l->ns = plumb_strdup(opts->ns);
	l->name = plumb_strdup(opts->name);
	if (opts->identity) {
		l->identity = plumb_strdup(opts->identity);
	} else {
		char host[256] = "plumbd", rnd[9];
		gethostname(host, sizeof(host) - 1);
		plumb_random_name(rnd, 8);
		l->identity = plumb_asprintf("%s_%s", host, rnd);
	}
	l->lease_duration = opts->lease_duration > 0 ? opts->lease_duration : 15;
	l->renew_deadline = opts->renew_deadline > 0 ? opts->renew_deadline : 10;
	l->retry_period = opts->retry_period > 0 ? opts->retry_period : 2;
	l->on_start = opts->on_start;
	l->on_stop = opts->on_stop;
	l->data = opts->data;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (!l->ns || !l->name || !l->identity) {
		rc = plumb_error_set(PLUMB_EINVALID, "leader election needs a lease namespace and name");
		goto fail;
	}
	if (!(l->lease_duration > l->renew_deadline && l->renew_deadline > 1.2 * l->retry_period)) {
		rc = plumb_error_set(PLUMB_EINVALID,
			"leader election: want lease duration > renew deadline > 1.2 x retry period");
		goto fail;
	}
	if ((rc = kube_resolve(&l->lease_res, c, "coordination.k8s.io/v1", "Lease")))
		goto fail;
	*out = l;
	return 0;
fail:
	controller_leader_free(l);
	return rc;
}

int controller_leader_run(controller_leader *l)
{
	if (pthread_create(&l->thread, NULL, leader_loop, l) != 0)
		return plumb_error_set(PLUMB_EIO, "leader election: cannot start thread");
	l->thread_started = 1;
	return 0;
}

int controller_leader_is_leader(controller_leader *l)
{
	pthread_mutex_lock(&l->lock);
	int v = l->leading;
	pthread_mutex_unlock(&l->lock);
	return v;
}

const char *controller_leader_identity(const controller_leader *l)
{
	return l->identity;
}

void controller_leader_free(controller_leader *l)
{
	if (!l)
		return;
	if (l->thread_started) {
		pthread_mutex_lock(&l->lock);
		l->stop = 1;
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->thread, NULL);
		if (l->leading) {
			if (controller_leader_release(l) != 0)
				plumb_warn("could not release the lease", "lease", l->name,
					"error", plumb_error_last());
			else
				plumb_info("released the lease", "lease", l->name);
			set_leading(l, 0);
		}
	}
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l);
}
