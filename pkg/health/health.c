/* pkg/health/health.c: an applied object's health from its live JSON, with
 * kstatus's rules (health.h lists them and where we differ). Pure. */
#include "health/health.h"

#include "base/base.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define INT32_LIMIT 2147483647LL
#define GEN_LIMIT 9007199254740991LL /* 2^53 - 1: exact in a double */

/* One computation: the object, who it is, and whether a rule has answered. */
typedef struct {
	const cJSON *obj;
	health_result *out;
	char who[160];          /* "Deployment shop/web" */
	const cJSON *conds;     /* status.conditions once checked, or NULL */
	int done;               /* out is final */
} hctx;

/* ---- text ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned int c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if (n == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f)))
		return 0; /* overlong, or a UTF-16 surrogate */
	if (n == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f)))
		return 0;
	return n;
}

/* Copies src into dst (cap bytes with the NUL): control characters become
 * spaces, bytes that are not UTF-8 become '?', and text that does not fit
 * is cut on a character boundary and ends in "...". */
static void copy_text(char *dst, size_t cap, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, cut = 0; /* cut: the last boundary that leaves room for "..." */
	while (*s) {
		size_t n = utf8_len(s);
		if (o + (n ? n : 1) > cap - 1) {
			memcpy(dst + cut, "...", 3);
			o = cut + 3;
			break;
		}
		if (!n) {
			dst[o++] = '?';
			s++;
		} else if (n == 1) {
			dst[o++] = (*s < 0x20 || *s == 0x7f) ? ' ' : (char)*s;
			s++;
		} else {
			memcpy(dst + o, s, n);
			o += n;
			s += n;
		}
		if (o <= cap - 4)
			cut = o;
	}
	dst[o] = '\0';
}

/* A reason keeps [A-Za-z0-9_.:-] only, at most cap-1 bytes. */
static void copy_reason(char *dst, size_t cap, const char *src)
{
	size_t o = 0;
	for (const char *s = src; *s && o < cap - 1; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		    *s == '_' || *s == '.' || *s == ':' || *s == '-')
			dst[o++] = *s;
	dst[o] = '\0';
}

/* The answer, unless one was already given. */
static void set(hctx *h, health_state state, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void set(hctx *h, health_state state, const char *reason, const char *fmt, ...)
{
	char why[600], full[800];
	va_list ap;
	if (h->done)
		return;
	h->done = 1;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "%s: %s", h->who, why);
	h->out->state = state;
	copy_reason(h->out->reason, sizeof(h->out->reason), reason);
	if (!h->out->reason[0]) /* a tenant's reason made only of odd characters */
		copy_reason(h->out->reason, sizeof(h->out->reason), health_state_name(state));
	copy_text(h->out->message, sizeof(h->out->message), full);
}

/* ---- reading the object ------------------------------------------------------ */

static const cJSON *member(const cJSON *o, const char *name, size_t n)
{
	for (const cJSON *c = cJSON_IsObject(o) ? o->child : NULL; c; c = c->next)
		if (c->string && strncmp(c->string, name, n) == 0 && c->string[n] == '\0')
			return c;
	return NULL;
}

/* The value at a dot path, NULL when absent or null. A step whose parent is
 * present but not an object makes the object Unknown. */
static const cJSON *get(hctx *h, const char *path)
{
	const cJSON *v = h->obj;
	const char *p = path;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (!cJSON_IsObject(v)) {
			set(h, HEALTH_UNKNOWN, "Malformed", "%.*s is not an object", (int)(p - path - 1), path);
			return NULL;
		}
		v = member(v, p, n);
		if (!v || cJSON_IsNull(v))
			return NULL;
		p = dot ? dot + 1 : p + n;
	}
	return v;
}

static const char *get_str(hctx *h, const char *path)
{
	const cJSON *v = get(h, path);
	if (v && !cJSON_IsString(v)) {
		set(h, HEALTH_UNKNOWN, "Malformed", "%s is not a string", path);
		return NULL;
	}
	return v ? v->valuestring : NULL;
}

/* A whole number in 0..max at path; def when absent. *present says which. */
static long long get_int_p(hctx *h, const char *path, long long def, long long max, int *present)
{
	const cJSON *v = get(h, path);
	if (present)
		*present = 0;
	if (!v)
		return def;
	double d = v->valuedouble;
	if (!cJSON_IsNumber(v)) {
		set(h, HEALTH_UNKNOWN, "Malformed", "%s is not a number", path);
		return def;
	}
	if (!isfinite(d) || d != floor(d) || d < 0 || d > (double)max) {
		set(h, HEALTH_UNKNOWN, "Malformed", "%s is not a whole number from 0 to %lld", path, max);
		return def;
	}
	if (present)
		*present = 1;
	return (long long)d;
}

static long long get_count(hctx *h, const char *path, long long def)
{
	return get_int_p(h, path, def, INT32_LIMIT, NULL);
}

static int get_bool(hctx *h, const char *path, int def)
{
	const cJSON *v = get(h, path);
	if (v && !cJSON_IsBool(v)) {
		set(h, HEALTH_UNKNOWN, "Malformed", "%s is not a boolean", path);
		return def;
	}
	return v ? cJSON_IsTrue(v) : def;
}

/* Checks status.conditions once: an array of at most HEALTH_MAX_CONDITIONS
 * objects whose type, status, reason and message are strings when present. */
static void conds_check(hctx *h)
{
	static const char *const fields[] = { "type", "status", "reason", "message" };
	const cJSON *a = get(h, "status.conditions");
	int i = 0;
	if (!a)
		return;
	if (!cJSON_IsArray(a)) {
		set(h, HEALTH_UNKNOWN, "Malformed", "status.conditions is not an array");
		return;
	}
	for (const cJSON *c = a->child; c; c = c->next, i++) {
		if (i >= HEALTH_MAX_CONDITIONS) {
			set(h, HEALTH_UNKNOWN, "Malformed", "more than %d conditions", HEALTH_MAX_CONDITIONS);
			return;
		}
		if (!cJSON_IsObject(c)) {
			set(h, HEALTH_UNKNOWN, "Malformed", "status.conditions[%d] is not an object", i);
			return;
		}
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
			const cJSON *v = member(c, fields[f], strlen(fields[f]));
			if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
				set(h, HEALTH_UNKNOWN, "Malformed", "status.conditions[%d].%s is not a string", i, fields[f]);
				return;
			}
		}
	}
	h->conds = a;
}

static const char *cfield(const cJSON *c, const char *name)
{
	const cJSON *v = member(c, name, strlen(name));
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* The first condition of this type, NULL when there is none. */
static const cJSON *cond(const hctx *h, const char *type)
{
	for (const cJSON *c = h->conds ? h->conds->child : NULL; c; c = c->next)
		if (!strcmp(cfield(c, "type"), type))
			return c;
	return NULL;
}

static int cond_is(const hctx *h, const char *type, const char *status)
{
	const cJSON *c = cond(h, type);
	return c && !strcmp(cfield(c, "status"), status);
}

/* "Stalled: message", "Stalled", for a condition in a message. */
static void cond_words(char *buf, size_t n, const cJSON *c, const char *what)
{
	const char *m = cfield(c, "message");
	snprintf(buf, n, "%s%s%s", what, *m ? ": " : "", m);
}

/* ---- the rules ------------------------------------------------------------------ */

/* kstatus's checks for every kind. */
static void generic(hctx *h)
{
	char w[400];
	const char *del = get_str(h, "metadata.deletionTimestamp");
	if (del && *del) {
		set(h, HEALTH_TERMINATING, "Terminating", "being deleted");
		return;
	}
	int has_gen = 0, has_obs = 0;
	long long gen = get_int_p(h, "metadata.generation", 0, GEN_LIMIT, &has_gen);
	long long obs = has_gen ? get_int_p(h, "status.observedGeneration", 0, GEN_LIMIT, &has_obs) : 0;
	if (has_gen && has_obs && gen != obs) {
		set(h, HEALTH_IN_PROGRESS, "GenerationNotObserved", "observed generation %lld %s %lld",
			obs, obs < gen ? "<" : ">", gen);
		return;
	}
	conds_check(h);
	if (h->done)
		return;
	const cJSON *c;
	if ((c = cond(h, "Stalled")) && !strcmp(cfield(c, "status"), "True")) {
		cond_words(w, sizeof(w), c, "stalled");
		set(h, HEALTH_FAILED, *cfield(c, "reason") ? cfield(c, "reason") : "Stalled", "%s", w);
		return;
	}
	if ((c = cond(h, "Reconciling")) && !strcmp(cfield(c, "status"), "True")) {
		cond_words(w, sizeof(w), c, "reconciling");
		set(h, HEALTH_IN_PROGRESS, *cfield(c, "reason") ? cfield(c, "reason") : "Reconciling", "%s", w);
	}
}

/* InProgress "have/want what" when have < want (and no answer yet). */
static void need(hctx *h, long long have, long long want, const char *reason, const char *what)
{
	if (have < want)
		set(h, HEALTH_IN_PROGRESS, reason, "%lld/%lld %s", have, want, what);
}

/* InProgress "n what" when there are more pods than wanted (old ones going). */
static void extra(hctx *h, long long have, long long want, const char *reason, const char *what)
{
	if (have > want)
		set(h, HEALTH_IN_PROGRESS, reason, "%lld %s", have - want, what);
}

static void deployment(hctx *h)
{
	char w[400];
	const cJSON *p = cond(h, "Progressing"), *av = cond(h, "Available");
	if (p && !strcmp(cfield(p, "reason"), "ProgressDeadlineExceeded")) {
		cond_words(w, sizeof(w), p, "progress deadline exceeded");
		set(h, HEALTH_FAILED, "ProgressDeadlineExceeded", "%s", w);
		return;
	}
	long long deadline = get_count(h, "spec.progressDeadlineSeconds", INT32_LIMIT);
	long long spec = get_count(h, "spec.replicas", 1);
	long long replicas = get_count(h, "status.replicas", 0);
	long long updated = get_count(h, "status.updatedReplicas", 0);
	long long ready = get_count(h, "status.readyReplicas", 0);
	long long avail = get_count(h, "status.availableReplicas", 0);
	if (h->done)
		return;
	need(h, replicas, spec, "TooFewReplicas", "replicas created");
	need(h, updated, spec, "TooFewUpdated", "replicas updated");
	extra(h, replicas, spec, "OldReplicasRemain", "old replicas pending termination");
	need(h, avail, updated, "TooFewAvailable", "replicas available");
	need(h, ready, spec, "TooFewReady", "replicas ready");
	if (h->done)
		return;
	if (deadline != INT32_LIMIT && !(p && !strcmp(cfield(p, "status"), "True") &&
			!strcmp(cfield(p, "reason"), "NewReplicaSetAvailable")))
		set(h, HEALTH_IN_PROGRESS, "NewReplicaSetNotAvailable", "new ReplicaSet not available yet");
	else if (!(av && !strcmp(cfield(av, "status"), "True"))) {
		if (av)
			cond_words(w, sizeof(w), av, "not available");
		set(h, HEALTH_IN_PROGRESS, "NotAvailable", "%s", av ? w : "no Available condition yet");
	} else
		set(h, HEALTH_CURRENT, "Available", "%lld replicas available", avail);
}

static void statefulset(hctx *h)
{
	const char *strategy = get_str(h, "spec.updateStrategy.type");
	if (strategy && !strcmp(strategy, "OnDelete")) {
		set(h, HEALTH_CURRENT, "OnDelete", "OnDelete update strategy, pods are replaced by hand");
		return;
	}
	int has_partition = 0;
	long long spec = get_count(h, "spec.replicas", 1);
	long long partition = get_int_p(h, "spec.updateStrategy.rollingUpdate.partition", 0, INT32_LIMIT,
		&has_partition);
	long long replicas = get_count(h, "status.replicas", 0);
	long long ready = get_count(h, "status.readyReplicas", 0);
	long long current = get_count(h, "status.currentReplicas", 0);
	long long updated = get_count(h, "status.updatedReplicas", 0);
	const char *cur_rev = get_str(h, "status.currentRevision");
	const char *upd_rev = get_str(h, "status.updateRevision");
	if (h->done)
		return;
	need(h, replicas, spec, "TooFewReplicas", "replicas created");
	need(h, ready, spec, "TooFewReady", "replicas ready");
	extra(h, replicas, spec, "ExtraReplicas", "extra replicas pending termination");
	if (h->done)
		return;
	if (has_partition) {
		if (updated < spec - partition)
			set(h, HEALTH_IN_PROGRESS, "PartitionRollout", "%lld/%lld replicas updated above partition %lld",
				updated, spec - partition, partition);
		else
			set(h, HEALTH_CURRENT, "PartitionRolledOut", "%lld replicas updated above partition %lld",
				updated, partition);
	} else if (spec > current)
		set(h, HEALTH_IN_PROGRESS, "TooFewCurrent", "%lld/%lld replicas at the current revision",
			current, spec);
	else if (strcmp(cur_rev ? cur_rev : "", upd_rev ? upd_rev : ""))
		set(h, HEALTH_IN_PROGRESS, "RevisionMismatch", "update revision %s not rolled out yet (current %s)",
			upd_rev ? upd_rev : "(none)", cur_rev ? cur_rev : "(none)");
	else
		set(h, HEALTH_CURRENT, "RolledOut", "%lld replicas ready at the update revision", replicas);
}

static void daemonset(hctx *h)
{
	int has_gen = 0, has_obs = 0, has_desired = 0;
	get_int_p(h, "metadata.generation", 0, GEN_LIMIT, &has_gen);
	get_int_p(h, "status.observedGeneration", 0, GEN_LIMIT, &has_obs);
	long long desired = get_int_p(h, "status.desiredNumberScheduled", 0, INT32_LIMIT, &has_desired);
	long long current = get_count(h, "status.currentNumberScheduled", 0);
	long long updated = get_count(h, "status.updatedNumberScheduled", 0);
	long long avail = get_count(h, "status.numberAvailable", 0);
	long long ready = get_count(h, "status.numberReady", 0);
	if (h->done)
		return;
	if (!has_gen || !has_obs)
		set(h, HEALTH_IN_PROGRESS, "GenerationNotObserved", "not observed by its controller yet");
	else if (!has_desired)
		set(h, HEALTH_IN_PROGRESS, "NoDesiredNumber", "no status.desiredNumberScheduled yet");
	need(h, current, desired, "TooFewScheduled", "nodes scheduled");
	need(h, updated, desired, "TooFewUpdated", "nodes updated");
	need(h, avail, desired, "TooFewAvailable", "pods available");
	need(h, ready, desired, "TooFewReady", "pods ready");
	set(h, HEALTH_CURRENT, "RolledOut", "%lld pods available", desired);
}

static void replicaset(hctx *h)
{
	char w[400];
	const cJSON *f = cond(h, "ReplicaFailure");
	if (f && !strcmp(cfield(f, "status"), "True")) {
		cond_words(w, sizeof(w), f, "replica failure");
		set(h, HEALTH_IN_PROGRESS, "ReplicaFailure", "%s", w);
		return;
	}
	long long spec = get_count(h, "spec.replicas", 1);
	long long replicas = get_count(h, "status.replicas", 0);
	long long labeled = get_count(h, "status.fullyLabeledReplicas", 0);
	long long avail = get_count(h, "status.availableReplicas", 0);
	long long ready = get_count(h, "status.readyReplicas", 0);
	if (h->done)
		return;
	need(h, labeled, spec, "TooFewLabeled", "replicas labeled");
	need(h, avail, spec, "TooFewAvailable", "replicas available");
	need(h, ready, spec, "TooFewReady", "replicas ready");
	extra(h, replicas, spec, "ExtraReplicas", "extra replicas pending termination");
	set(h, HEALTH_CURRENT, "Available", "%lld replicas available", avail);
}

static void job(hctx *h)
{
	char w[400];
	long long parallelism = get_count(h, "spec.parallelism", 1);
	long long completions = get_count(h, "spec.completions", parallelism);
	int suspend = get_bool(h, "spec.suspend", 0);
	long long succeeded = get_count(h, "status.succeeded", 0);
	long long active = get_count(h, "status.active", 0);
	long long failed = get_count(h, "status.failed", 0);
	const char *start = get_str(h, "status.startTime");
	if (h->done)
		return;
	const cJSON *c = cond(h, "Failed");
	if (c && !strcmp(cfield(c, "status"), "True")) {
		cond_words(w, sizeof(w), c, "failed");
		set(h, HEALTH_FAILED, "JobFailed", "%s (%lld failed pods)", w, failed);
	} else if (cond_is(h, "Complete", "True"))
		set(h, HEALTH_CURRENT, "JobComplete", "complete, %lld/%lld succeeded", succeeded, completions);
	else if (suspend && cond_is(h, "Suspended", "True"))
		set(h, HEALTH_CURRENT, "JobSuspended", "suspended");
	else if (!start || !*start)
		set(h, HEALTH_IN_PROGRESS, "JobNotStarted", "not started");
	else
		set(h, HEALTH_IN_PROGRESS, "JobRunning", "%lld active, %lld/%lld succeeded, %lld failed",
			active, succeeded, completions, failed);
}

static void pvc(hctx *h)
{
	const char *phase = get_str(h, "status.phase");
	if (h->done)
		return;
	if (phase && !strcmp(phase, "Bound"))
		set(h, HEALTH_CURRENT, "Bound", "bound");
	else
		set(h, HEALTH_IN_PROGRESS, "NotBound", "not bound (phase %s)", phase && *phase ? phase : "unset");
}

static void crd(hctx *h)
{
	char w[400];
	const cJSON *names = cond(h, "NamesAccepted"), *est = cond(h, "Established");
	if (names && !strcmp(cfield(names, "status"), "False")) {
		cond_words(w, sizeof(w), names, "names not accepted");
		set(h, HEALTH_FAILED, *cfield(names, "reason") ? cfield(names, "reason") : "NamesNotAccepted", "%s", w);
	} else if (est && !strcmp(cfield(est, "status"), "True"))
		set(h, HEALTH_CURRENT, "Established", "established");
	else if (est && !strcmp(cfield(est, "status"), "False") && strcmp(cfield(est, "reason"), "Installing")) {
		cond_words(w, sizeof(w), est, "not established");
		set(h, HEALTH_FAILED, *cfield(est, "reason") ? cfield(est, "reason") : "NotEstablished", "%s", w);
	} else
		set(h, HEALTH_IN_PROGRESS, "Installing", "not established yet");
}

/* The names of the containers waiting in CrashLoopBackOff, ", "-joined into
 * buf; how many. */
static int crashlooping(hctx *h, char *buf, size_t n)
{
	const cJSON *a = get(h, "status.containerStatuses");
	int i = 0, found = 0;
	size_t o = 0;
	buf[0] = '\0';
	if (!a)
		return 0;
	if (!cJSON_IsArray(a)) {
		set(h, HEALTH_UNKNOWN, "Malformed", "status.containerStatuses is not an array");
		return 0;
	}
	for (const cJSON *c = a->child; c; c = c->next, i++) {
		if (i >= HEALTH_MAX_CONTAINERS) {
			set(h, HEALTH_UNKNOWN, "Malformed", "more than %d container statuses", HEALTH_MAX_CONTAINERS);
			return 0;
		}
		if (!cJSON_IsObject(c)) {
			set(h, HEALTH_UNKNOWN, "Malformed", "status.containerStatuses[%d] is not an object", i);
			return 0;
		}
		const cJSON *name = member(c, "name", 4);
		const cJSON *st = member(c, "state", 5);
		const cJSON *wt = member(st, "waiting", 7);
		const cJSON *r = member(wt, "reason", 6);
		if (!cJSON_IsString(name) || !cJSON_IsString(r) || strcmp(r->valuestring, "CrashLoopBackOff"))
			continue;
		if (o < n)
			o += (size_t)snprintf(buf + o, n - o, "%s%s", found ? ", " : "", name->valuestring);
		found++;
	}
	return found;
}

static void pod(hctx *h)
{
	char w[400];
	const char *phase = get_str(h, "status.phase");
	if (h->done)
		return;
	if (!phase || !*phase)
		set(h, HEALTH_IN_PROGRESS, "PodNotObserved", "no phase yet");
	else if (!strcmp(phase, "Succeeded"))
		set(h, HEALTH_CURRENT, "PodSucceeded", "succeeded");
	else if (!strcmp(phase, "Failed"))
		set(h, HEALTH_FAILED, "PodFailed", "failed");
	else if (!strcmp(phase, "Running")) {
		if (cond_is(h, "Ready", "True")) {
			set(h, HEALTH_CURRENT, "PodReady", "ready");
			return;
		}
		if (crashlooping(h, w, sizeof(w)) > 0)
			set(h, HEALTH_FAILED, "ContainerCrashLooping", "containers in CrashLoopBackOff: %s", w);
		else
			set(h, HEALTH_IN_PROGRESS, "PodRunningNotReady", "running, not ready");
	} else if (!strcmp(phase, "Pending")) {
		const cJSON *s = cond(h, "PodScheduled");
		if (s && !strcmp(cfield(s, "status"), "False") && !strcmp(cfield(s, "reason"), "Unschedulable")) {
			cond_words(w, sizeof(w), s, "unschedulable");
			set(h, HEALTH_IN_PROGRESS, "PodUnschedulable", "%s", w);
		} else
			set(h, HEALTH_IN_PROGRESS, "PodPending", "pending");
	} else
		set(h, HEALTH_UNKNOWN, "UnknownPhase", "unknown phase %s", phase);
}

static void service(hctx *h)
{
	const char *type = get_str(h, "spec.type");
	const char *ip = get_str(h, "spec.clusterIP");
	if (h->done)
		return;
	if (type && !strcmp(type, "LoadBalancer") && (!ip || !*ip))
		set(h, HEALTH_IN_PROGRESS, "NoIPAssigned", "LoadBalancer without a cluster IP yet");
	else
		set(h, HEALTH_CURRENT, "Current", "current");
}

static void always(hctx *h)
{
	set(h, HEALTH_CURRENT, "Current", "current");
}

/* Kinds with no rule of their own: the Ready condition, else Current. */
static void standard(hctx *h)
{
	char w[400];
	const cJSON *r = cond(h, "Ready");
	const char *st = r ? cfield(r, "status") : "";
	const char *why = r ? cfield(r, "reason") : "";
	if (!strcmp(st, "True"))
		set(h, HEALTH_CURRENT, "Ready", "ready");
	else if (!strcmp(st, "False") || !strcmp(st, "Unknown")) {
		cond_words(w, sizeof(w), r, !strcmp(st, "False") ? "not ready" : "readiness unknown");
		set(h, HEALTH_IN_PROGRESS, *why ? why : "NotReady", "%s", w);
	} else
		set(h, HEALTH_CURRENT, "Current", "current");
}

/* ---- kinds ------------------------------------------------------------------------ */

#define GENERIC_PATHS "apiVersion", "kind", "metadata.name", "metadata.namespace", \
	"metadata.deletionTimestamp", "metadata.generation", "status.observedGeneration", \
	"status.conditions[].type", "status.conditions[].status", "status.conditions[].reason", \
	"status.conditions[].message"

static const char *const generic_paths[] = { GENERIC_PATHS, NULL };
static const char *const deployment_paths[] = { GENERIC_PATHS, "spec.replicas", "spec.progressDeadlineSeconds",
	"status.replicas", "status.updatedReplicas", "status.readyReplicas", "status.availableReplicas", NULL };
static const char *const statefulset_paths[] = { GENERIC_PATHS, "spec.replicas", "spec.updateStrategy.type",
	"spec.updateStrategy.rollingUpdate.partition", "status.replicas", "status.readyReplicas",
	"status.currentReplicas", "status.updatedReplicas", "status.currentRevision", "status.updateRevision", NULL };
static const char *const daemonset_paths[] = { GENERIC_PATHS, "status.desiredNumberScheduled",
	"status.currentNumberScheduled", "status.updatedNumberScheduled", "status.numberAvailable",
	"status.numberReady", NULL };
static const char *const replicaset_paths[] = { GENERIC_PATHS, "spec.replicas", "status.replicas",
	"status.fullyLabeledReplicas", "status.availableReplicas", "status.readyReplicas", NULL };
static const char *const job_paths[] = { GENERIC_PATHS, "spec.parallelism", "spec.completions", "spec.suspend",
	"status.succeeded", "status.active", "status.failed", "status.startTime", NULL };
static const char *const pvc_paths[] = { GENERIC_PATHS, "status.phase", NULL };
static const char *const pod_paths[] = { GENERIC_PATHS, "status.phase", "status.containerStatuses[].name",
	"status.containerStatuses[].state.waiting.reason", NULL };
static const char *const service_paths[] = { GENERIC_PATHS, "spec.type", "spec.clusterIP", NULL };

typedef struct {
	const char *group, *kind;
	void (*rule)(hctx *h);
	const char *const *paths;
} kind_rule;

static const kind_rule kinds[] = {
	{ "apps", "Deployment", deployment, deployment_paths },
	{ "extensions", "Deployment", deployment, deployment_paths },
	{ "apps", "StatefulSet", statefulset, statefulset_paths },
	{ "apps", "DaemonSet", daemonset, daemonset_paths },
	{ "extensions", "DaemonSet", daemonset, daemonset_paths },
	{ "apps", "ReplicaSet", replicaset, replicaset_paths },
	{ "extensions", "ReplicaSet", replicaset, replicaset_paths },
	{ "batch", "Job", job, job_paths },
	{ "batch", "CronJob", always, generic_paths },
	{ "", "PersistentVolumeClaim", pvc, pvc_paths },
	{ "", "Pod", pod, pod_paths },
	{ "", "Service", service, service_paths },
	{ "", "ConfigMap", always, generic_paths },
	{ "", "Secret", always, generic_paths },
	{ "policy", "PodDisruptionBudget", always, generic_paths },
	{ "apiextensions.k8s.io", "CustomResourceDefinition", crd, generic_paths },
};

static const kind_rule *kind_find(const char *api_version, const char *kind)
{
	const char *slash = api_version ? strchr(api_version, '/') : NULL;
	size_t glen = slash ? (size_t)(slash - api_version) : 0;
	if (!kind)
		return NULL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kinds[i].kind, kind) && strlen(kinds[i].group) == glen &&
		    !strncmp(kinds[i].group, api_version ? api_version : "", glen))
			return &kinds[i];
	return NULL;
}

/* "Kind ns/name" (or "Kind name"), each part cut so the rest of the message
 * keeps room. */
static void who(hctx *h)
{
	const char *kind = plumb_json_str(h->obj, "kind");
	const char *ns = plumb_json_str(h->obj, "metadata.namespace");
	const char *name = plumb_json_str(h->obj, "metadata.name");
	char k[48], n[120];
	copy_text(k, sizeof(k), kind && *kind ? kind : "object");
	if (ns && *ns) {
		char both[400];
		snprintf(both, sizeof(both), "%s/%s", ns, name ? name : "");
		copy_text(n, sizeof(n), both);
	} else
		copy_text(n, sizeof(n), name && *name ? name : "(unnamed)");
	snprintf(h->who, sizeof(h->who), "%s %s", k, n);
}

int health_of(health_result *out, const cJSON *obj)
{
	hctx h = { .obj = obj, .out = out };
	if (!out)
		return plumb_error_set(PLUMB_EINVALID, "health_of: no result");
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(obj)) {
		snprintf(h.who, sizeof(h.who), "object");
		set(&h, HEALTH_UNKNOWN, "Malformed", "not a JSON object");
		return 0;
	}
	who(&h);
	const char *api_version = get_str(&h, "apiVersion");
	const char *kind = get_str(&h, "kind");
	generic(&h);
	if (h.done)
		return 0;
	const kind_rule *k = kind_find(api_version, kind);
	if (k)
		k->rule(&h);
	else
		standard(&h);
	/* every rule answers; this only guards a rule that forgot to */
	set(&h, HEALTH_UNKNOWN, "NoRule", "no rule answered");
	return 0;
}

const char *health_state_name(health_state state)
{
	switch (state) {
	case HEALTH_CURRENT: return "Current";
	case HEALTH_IN_PROGRESS: return "InProgress";
	case HEALTH_FAILED: return "Failed";
	case HEALTH_TERMINATING: return "Terminating";
	default: return "Unknown";
	}
}

const char *const *health_status_paths(const char *api_version, const char *kind)
{
	const kind_rule *k = kind_find(api_version, kind);
	return k ? k->paths : generic_paths;
}

/* ---- projection ------------------------------------------------------------------ */

/* An empty value of v's own type (what stands in for a value of the wrong
 * shape: health_of() reads it as the same mistake). */
static cJSON *placeholder(const cJSON *v)
{
	if (cJSON_IsObject(v))
		return cJSON_CreateObject();
	if (cJSON_IsArray(v))
		return cJSON_CreateArray();
	if (cJSON_IsString(v))
		return cJSON_CreateString("");
	return cJSON_Duplicate(v, 0); /* numbers, booleans, null: already small */
}

static int add(cJSON *dst, const char *name, cJSON *v)
{
	if (!v)
		return PLUMB_ENOMEM;
	if (cJSON_IsArray(dst))
		return cJSON_AddItemToArray(dst, v) ? 0 : (cJSON_Delete(v), PLUMB_ENOMEM);
	return cJSON_AddItemToObject(dst, name, v) ? 0 : (cJSON_Delete(v), PLUMB_ENOMEM);
}

/* Copies what path names of src (an object) into dst (the matching object
 * of the projection). */
static int project_path(cJSON *dst, const cJSON *src, const char *path)
{
	const char *dot = strchr(path, '.');
	size_t n = dot ? (size_t)(dot - path) : strlen(path);
	int each = n > 2 && path[n - 2] == '[' && path[n - 1] == ']';
	char name[64];
	if ((each ? n - 2 : n) >= sizeof(name))
		return PLUMB_EINVALID; /* our own paths are short */
	memcpy(name, path, each ? n - 2 : n);
	name[each ? n - 2 : n] = '\0';

	const cJSON *v = member(src, name, strlen(name));
	cJSON *d = (cJSON *)member(dst, name, strlen(name));
	if (!v)
		return 0;
	if (!dot && !each) /* a leaf: a scalar as it is */
		return d ? 0 : add(dst, name, cJSON_IsObject(v) || cJSON_IsArray(v) ? placeholder(v) :
			cJSON_Duplicate(v, 0));
	if (each ? !cJSON_IsArray(v) : !cJSON_IsObject(v))
		return d ? 0 : add(dst, name, placeholder(v));
	if (!d) {
		int err = add(dst, name, each ? cJSON_CreateArray() : cJSON_CreateObject());
		if (err)
			return err;
		d = (cJSON *)member(dst, name, strlen(name));
	}
	if (!each)
		return project_path(d, v, dot + 1);
	/* element i of the projection stands for element i of src; one past the
	 * cap is kept so that health_of() still sees too many */
	int i = 0, err = 0;
	cJSON *de = d->child;
	int cap = HEALTH_MAX_CONDITIONS > HEALTH_MAX_CONTAINERS ? HEALTH_MAX_CONDITIONS : HEALTH_MAX_CONTAINERS;
	for (const cJSON *e = v->child; e && i <= cap && !err; e = e->next, i++) {
		if (!de) {
			if ((err = add(d, NULL, cJSON_IsObject(e) ? cJSON_CreateObject() : placeholder(e))))
				break;
			de = cJSON_GetArrayItem(d, i);
		}
		if (dot && cJSON_IsObject(e))
			err = project_path(de, e, dot + 1);
		de = de->next;
	}
	return err;
}

int health_project(cJSON **out, const cJSON *obj)
{
	cJSON *p = NULL;
	int err = 0;
	if (!out || !cJSON_IsObject(obj))
		return plumb_error_set(PLUMB_EINVALID, "health_project: not a JSON object");
	const char *const *paths = health_status_paths(plumb_json_str(obj, "apiVersion"), plumb_json_str(obj, "kind"));
	if (!(p = cJSON_CreateObject())) {
		err = PLUMB_ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; paths[i] && !err; i++)
		err = project_path(p, obj, paths[i]);
	if (err)
		goto cleanup;
	*out = p;
	p = NULL;
cleanup:
	cJSON_Delete(p);
	if (err == PLUMB_ENOMEM)
		plumb_error_set(err, "health_project: out of memory");
	return err;
}
