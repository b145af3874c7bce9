/*
 * A GitSync and a Cluster read once into typed values (gitsync.h), and the
 * rules that only need those values: the ref precedence, the durations and
 * their bounds, cluster selection, the identity, the fetch and apply
 * options. The values are exactly what plumbd has always read from the
 * JSON; what the CRD would refuse is recorded as a field error, not acted on.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "gitsync/gitsync.h"

static int nomem(void)
{
	return plumb_error_set(PLUMB_ENOMEM, "out of memory");
}

static int streq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* *dst = copy of src (NULL stays NULL). */
static int dup(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = plumb_strdup(src)))
		return nomem();
	return 0;
}

/* Records a field error. Only ENOMEM fails. */
__attribute__((format(printf, 2, 3)))
static int field_error(gitsync_spec *gs, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (gs->nerrors == GITSYNC_MAX_ERRORS) {
		gs->errors_dropped++;
		return 0;
	}
	if (!gs->errors && !(gs->errors = calloc(GITSYNC_MAX_ERRORS, sizeof(*gs->errors))))
		return nomem();
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!(gs->errors[gs->nerrors] = plumb_strdup(msg)))
		return nomem();
	gs->nerrors++;
	return 0;
}

static int jbool(const cJSON *o, const char *path, int dflt)
{
	const cJSON *v = plumb_json_get(o, path);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

double gitsync_duration(const cJSON *o, const char *path, double dflt)
{
	const char *s = plumb_json_str(o, path);
	double d;
	if (!s || plumb_duration_parse(&d, s) != 0)
		return dflt;
	return d;
}

/* A boolean field: its value (dflt when absent or not a boolean), and a
 * field error when present and not a boolean. */
static int bool_field(int *out, gitsync_spec *gs, const cJSON *o, const char *path, int dflt)
{
	const cJSON *v = plumb_json_get(o, path);
	*out = jbool(o, path, dflt);
	return v && !cJSON_IsBool(v) ? field_error(gs, "%s: not a boolean", path) : 0;
}

/* A duration field: as gitsync_duration(), and a field error when present
 * and not a duration. */
static int duration_field(double *out, gitsync_spec *gs, const cJSON *o, const char *path, double dflt)
{
	const cJSON *v = plumb_json_get(o, path);
	double d;
	*out = gitsync_duration(o, path, dflt);
	if (v && (!cJSON_IsString(v) || plumb_duration_parse(&d, v->valuestring) != 0))
		return field_error(gs, "%s: not a duration", path);
	return 0;
}

source_ref_kind gitsync_ref(const cJSON *ref, const char **name)
{
	if ((*name = plumb_json_str(ref, "tag")))
		return SOURCE_REF_TAG;
	if ((*name = plumb_json_str(ref, "commit")))
		return SOURCE_REF_COMMIT;
	*name = plumb_json_str(ref, "branch");
	return SOURCE_REF_BRANCH;
}

static int parse_source(gitsync_spec *gs, const cJSON *obj)
{
	gitsync_source *g = &gs->git;
	const cJSON *ref = plumb_json_get(obj, "spec.git.ref");
	const char *name = NULL, *path = plumb_json_str(obj, "spec.git.path");
	int rc, set = !!plumb_json_str(ref, "branch") + !!plumb_json_str(ref, "tag") +
		!!plumb_json_str(ref, "commit");
	g->ref_kind = gitsync_ref(ref, &name);
	if ((rc = dup(&g->url, plumb_json_str(obj, "spec.git.url"))) || (rc = dup(&g->ref, name)) ||
	    (rc = dup(&g->path, path ? path : "")) ||
	    (rc = dup(&g->secret_name, plumb_json_str(obj, "spec.git.secretRef.name"))) ||
	    (rc = dup(&g->interval_text, plumb_json_str(obj, "spec.git.interval"))) ||
	    (rc = dup(&g->timeout_text, plumb_json_str(obj, "spec.git.timeout"))))
		return rc;
	if (!g->url && (rc = field_error(gs, "spec.git.url: required")))
		return rc;
	if (set != 1 && (rc = field_error(gs, "spec.git.ref: exactly one of branch, tag or commit")))
		return rc;
	if ((rc = duration_field(&g->interval, gs, obj, "spec.git.interval", GITSYNC_INTERVAL_DEFAULT)) ||
	    (rc = duration_field(&g->timeout, gs, obj, "spec.git.timeout", GITSYNC_TIMEOUT_DEFAULT)))
		return rc;
	if (g->interval < GITSYNC_INTERVAL_MIN) {
		g->interval = GITSYNC_INTERVAL_MIN;
		g->interval_clamped = 1;
		if ((rc = field_error(gs, "spec.git.interval: below 10s (10s is used)")))
			return rc;
	}
	if (g->timeout > GITSYNC_TIMEOUT_MAX) {
		g->timeout = GITSYNC_TIMEOUT_MAX;
		g->timeout_clamped = 1;
		if ((rc = field_error(gs, "spec.git.timeout: above 10m (10m is used)")))
			return rc;
	}
	return 0;
}

static const struct {
	const char *name;
	manifest_selector_op op;
} selector_ops[] = {
	{ "In", MANIFEST_SELECTOR_IN },
	{ "NotIn", MANIFEST_SELECTOR_NOTIN },
	{ "Exists", MANIFEST_SELECTOR_EXISTS },
	{ "DoesNotExist", MANIFEST_SELECTOR_NOTEXISTS },
};

/* One matchExpressions entry (at path[i]) into sel; *never = 1 when it can
 * match no Cluster (no key or operator, an unknown operator). */
static int parse_expression(gitsync_spec *gs, manifest_selector *sel, int *never, const cJSON *expr,
	const char *path, int i)
{
	const char *key = plumb_json_str(expr, "key"), *op = plumb_json_str(expr, "operator");
	const char **values = NULL;
	const cJSON *v;
	size_t n = 0, j;
	int rc;
	if (!key || !op) {
		*never = 1;
		return field_error(gs, "%s.matchExpressions[%d].%s: required", path, i, key ? "operator" : "key");
	}
	for (j = 0; j < sizeof(selector_ops) / sizeof(selector_ops[0]); j++)
		if (!strcmp(op, selector_ops[j].name))
			break;
	if (j == sizeof(selector_ops) / sizeof(selector_ops[0])) {
		*never = 1;
		return field_error(gs, "%s.matchExpressions[%d].operator: "
			"must be In, NotIn, Exists or DoesNotExist", path, i);
	}
	const cJSON *vals = plumb_json_get(expr, "values");
	if (!(values = calloc((size_t)cJSON_GetArraySize(vals) + 1, sizeof(*values))))
		return nomem();
	cJSON_ArrayForEach(v, vals)
		if (cJSON_IsString(v))
			values[n++] = v->valuestring;
	rc = manifest_selector_add(sel, key, selector_ops[j].op, values, n);
	free(values);
	return rc;
}

/* A label selector object (matchLabels, matchExpressions) at path into *out;
 * *out stays NULL when it can never match (a field error says why). */
static int parse_selector(manifest_selector **out, gitsync_spec *gs, const cJSON *sel, const char *path)
{
	manifest_selector *s = NULL;
	const cJSON *v;
	int rc, never = 0, i = 0;
	*out = NULL;
	if ((rc = manifest_selector_new(&s)))
		return rc;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(sel, "matchLabels")) {
		if (!v->string || !cJSON_IsString(v)) {
			never = 1;
			if ((rc = field_error(gs, "%s.matchLabels.%s: not a string", path, v->string ? v->string : "?")))
				goto cleanup;
			continue;
		}
		const char *val = v->valuestring;
		if ((rc = manifest_selector_add(s, v->string, MANIFEST_SELECTOR_IN, &val, 1)))
			goto cleanup;
	}
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions"))
		if ((rc = parse_expression(gs, s, &never, v, path, i++)))
			goto cleanup;
	if (!never) {
		*out = s;
		s = NULL;
	}
cleanup:
	manifest_selector_free(s);
	return rc;
}

static int parse_targets(gitsync_spec *gs, const cJSON *obj)
{
	gitsync_targets *t = &gs->targets;
	const cJSON *names = plumb_json_get(obj, "spec.targets.clusterNames");
	const cJSON *sel = plumb_json_get(obj, "spec.targets.clusterSelector"), *v;
	int rc = 0;
	if (!(t->cluster_names = calloc((size_t)cJSON_GetArraySize(names) + 1, sizeof(*t->cluster_names))))
		return nomem();
	cJSON_ArrayForEach(v, names)
		if (cJSON_IsString(v) && (rc = dup(&t->cluster_names[t->ncluster_names++], v->valuestring)))
			return rc;
	t->has_selector = cJSON_IsObject(sel);
	if (!t->has_selector && !t->ncluster_names &&
	    (rc = field_error(gs, "spec.targets: needs a clusterSelector or clusterNames")))
		return rc;
	if (!t->has_selector)
		return 0;
	return parse_selector(&t->selector, gs, sel, "spec.targets.clusterSelector");
}

/* spec.wait, spec.healthTimeout and spec.dependsOn. */
static int parse_health(gitsync_spec *gs, const cJSON *obj)
{
	const cJSON *deps = plumb_json_get(obj, "spec.dependsOn"), *v;
	int rc, i = 0;
	if ((rc = bool_field(&gs->wait, gs, obj, "spec.wait", 0)) ||
	    (rc = duration_field(&gs->health_timeout, gs, obj, "spec.healthTimeout", GITSYNC_HEALTH_TIMEOUT_DEFAULT)))
		return rc;
	if (gs->health_timeout < 1 || gs->health_timeout > GITSYNC_HEALTH_TIMEOUT_MAX) {
		gs->health_timeout = gs->health_timeout < 1 ? 1 : GITSYNC_HEALTH_TIMEOUT_MAX;
		if ((rc = field_error(gs, "spec.healthTimeout: must be between 1s and 24h")))
			return rc;
	}
	if (deps && !cJSON_IsArray(deps))
		return field_error(gs, "spec.dependsOn: not a list");
	if (!(gs->depends_on = calloc(GITSYNC_MAX_DEPENDS, sizeof(*gs->depends_on))))
		return nomem();
	cJSON_ArrayForEach(v, deps) {
		const char *name = plumb_json_str(v, "name");
		if (!name || !*name || strlen(name) > 253) {
			if ((rc = field_error(gs, "spec.dependsOn[%d].name: required, at most 253 characters", i)))
				return rc;
		} else if (gs->ndepends_on == GITSYNC_MAX_DEPENDS) {
			return field_error(gs, "spec.dependsOn: more than %d entries", GITSYNC_MAX_DEPENDS);
		} else if (plumb_json_get(v, "namespace") && !streq(plumb_json_str(v, "namespace"), gs->ns)) {
			if ((rc = field_error(gs, "spec.dependsOn[%d].namespace: must be the GitSync's own", i)))
				return rc;
		} else if ((rc = dup(&gs->depends_on[gs->ndepends_on++], name))) {
			return rc;
		}
		i++;
	}
	return 0;
}

/* maxUnavailable: a count ("1", 1) or a percentage ("25%"). */
static int parse_max_unavailable(gitsync_spec *gs, gitsync_wave *w, const cJSON *v, int i)
{
	char *end = NULL;
	w->max_unavailable_pct = 100;
	if (!v)
		return 0;
	if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 10000 &&
	    v->valuedouble == (double)(int)v->valuedouble) {
		w->max_unavailable = (unsigned)v->valuedouble;
		w->max_unavailable_pct = 0;
		return 0;
	}
	if (cJSON_IsString(v) && *v->valuestring) {
		long n = strtol(v->valuestring, &end, 10);
		if (end && !strcmp(end, "%") && n >= 1 && n <= 100 && end != v->valuestring) {
			w->max_unavailable_pct = (unsigned)n;
			return 0;
		}
		if (end && !*end && n >= 1 && n <= 10000) {
			w->max_unavailable = (unsigned)n;
			w->max_unavailable_pct = 0;
			return 0;
		}
	}
	return field_error(gs, "spec.rollout.waves[%d].maxUnavailable: a count of at least 1 or a percentage "
		"from 1%% to 100%%", i);
}

/* spec.rollout. */
static int parse_rollout(gitsync_spec *gs, const cJSON *obj)
{
	const cJSON *r = plumb_json_get(obj, "spec.rollout"), *waves, *v;
	gitsync_rollout *ro = &gs->rollout;
	int rc, i = 0;
	if (!r)
		return 0;
	if (!cJSON_IsObject(r))
		return field_error(gs, "spec.rollout: not an object");
	waves = cJSON_GetObjectItemCaseSensitive(r, "waves");
	if (!cJSON_IsArray(waves) || !cJSON_GetArraySize(waves))
		return field_error(gs, "spec.rollout.waves: a list of at least one wave");
	if (cJSON_GetArraySize(waves) > GITSYNC_MAX_WAVES)
		return field_error(gs, "spec.rollout.waves: more than %d waves", GITSYNC_MAX_WAVES);
	if ((rc = duration_field(&ro->bake, gs, obj, "spec.rollout.bake", 0)))
		return rc;
	if (ro->bake > GITSYNC_HEALTH_TIMEOUT_MAX) {
		ro->bake = GITSYNC_HEALTH_TIMEOUT_MAX;
		if ((rc = field_error(gs, "spec.rollout.bake: above 24h (24h is used)")))
			return rc;
	}
	const char *of = plumb_json_str(r, "onFailure");
	if (cJSON_GetObjectItemCaseSensitive(r, "onFailure") && !streq(of, "Halt") && !streq(of, "Rollback") &&
	    (rc = field_error(gs, "spec.rollout.onFailure: must be Halt or Rollback")))
		return rc;
	ro->rollback = streq(of, "Rollback");
	if (!(ro->waves = calloc((size_t)cJSON_GetArraySize(waves), sizeof(*ro->waves))))
		return nomem();
	cJSON_ArrayForEach(v, waves) {
		gitsync_wave *w = &ro->waves[ro->nwaves++];
		const char *name = plumb_json_str(v, "name");
		const cJSON *sel = cJSON_GetObjectItemCaseSensitive(v, "clusterSelector");
		char path[64];
		if (!name || !*name || strlen(name) > 63) {
			if ((rc = field_error(gs, "spec.rollout.waves[%d].name: required, at most 63 characters", i)))
				return rc;
			name = NULL;
		}
		for (size_t j = 0; name && j + 1 < ro->nwaves; j++)
			if (streq(ro->waves[j].name, name)) {
				if ((rc = field_error(gs, "spec.rollout.waves[%d].name: %s is used twice", i, name)))
					return rc;
				name = NULL;
			}
		if (name) {
			if ((rc = dup(&w->name, name)))
				return rc;
		} else if (!(w->name = plumb_asprintf("wave-%d", i + 1))) {
			return nomem();
		}
		snprintf(path, sizeof(path), "spec.rollout.waves[%d].clusterSelector", i);
		w->has_selector = cJSON_IsObject(sel);
		if (sel && !w->has_selector && (rc = field_error(gs, "%s: not an object", path)))
			return rc;
		if (w->has_selector && (rc = parse_selector(&w->selector, gs, sel, path)))
			return rc;
		if ((rc = parse_max_unavailable(gs, w, cJSON_GetObjectItemCaseSensitive(v, "maxUnavailable"), i)))
			return rc;
		i++;
	}
	ro->set = 1;
	return 0;
}

/* The string members of the object at path as name/value pairs; a member
 * of another type is skipped (and, with gs != NULL, a field error). The
 * strings are copies, owned by the array. */
static int parse_kvs(manifest_var **out, size_t *n, gitsync_spec *gs, const cJSON *obj, const char *path)
{
	const cJSON *m = plumb_json_get(obj, path), *v;
	int rc;
	*n = 0;
	if (!(*out = calloc((size_t)cJSON_GetArraySize(m) + 1, sizeof(**out))))
		return nomem();
	cJSON_ArrayForEach(v, m) {
		if (!v->string)
			continue;
		if (!cJSON_IsString(v)) {
			if (gs && (rc = field_error(gs, "%s.%s: not a string", path, v->string)))
				return rc;
			continue;
		}
		char *name = NULL, *value = NULL;
		if ((rc = dup(&name, v->string)) || (rc = dup(&value, v->valuestring))) {
			free(name);
			return rc;
		}
		(*out)[(*n)++] = (manifest_var){ name, value };
	}
	return 0;
}

/* spec.render and spec.helm. */
static int parse_render(gitsync_spec *gs, const cJSON *obj)
{
	const cJSON *r = plumb_json_get(obj, "spec.render"), *h = plumb_json_get(obj, "spec.helm"), *v;
	gitsync_helm *hl = &gs->helm;
	int rc;
	gs->render = RENDER_AUTO;
	if (r && (!cJSON_IsString(r) || !*r->valuestring || render_kind_parse(&gs->render, r->valuestring) != 0)) {
		plumb_error_clear();
		gs->render = RENDER_AUTO;
		if ((rc = field_error(gs, "spec.render: must be plain, kustomize or helm")))
			return rc;
	}
	hl->include_crds = 1;
	if (!h)
		return 0;
	if (!cJSON_IsObject(h))
		return field_error(gs, "spec.helm: not an object");
	hl->set = 1;
	static const char *const strs[] = { "chart", "releaseName", "namespace" };
	char **dsts[] = { &hl->chart, &hl->release_name, &hl->namespace };
	for (size_t i = 0; i < 3; i++) {
		v = cJSON_GetObjectItemCaseSensitive(h, strs[i]);
		if (v && !cJSON_IsString(v) && (rc = field_error(gs, "spec.helm.%s: not a string", strs[i])))
			return rc;
		if ((rc = dup(dsts[i], cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL)))
			return rc;
	}
	if (!hl->release_name && (rc = dup(&hl->release_name, gs->name)))
		return rc;
	if (!hl->namespace && (rc = dup(&hl->namespace, gs->target_namespace ? gs->target_namespace : gs->ns)))
		return rc;
	if ((rc = bool_field(&hl->include_crds, gs, obj, "spec.helm.includeCRDs", 1)))
		return rc;
	v = cJSON_GetObjectItemCaseSensitive(h, "valuesFiles");
	if (v && !cJSON_IsArray(v) && (rc = field_error(gs, "spec.helm.valuesFiles: not a list")))
		return rc;
	if (cJSON_IsArray(v)) {
		const cJSON *f;
		int i = 0;
		if (!(hl->values_files = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*hl->values_files))))
			return nomem();
		cJSON_ArrayForEach(f, v) {
			if (!cJSON_IsString(f) || !*f->valuestring) {
				if ((rc = field_error(gs, "spec.helm.valuesFiles[%d]: not a path", i)))
					return rc;
			} else if ((rc = dup(&hl->values_files[hl->nvalues_files++], f->valuestring))) {
				return rc;
			}
			i++;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(h, "values");
	if (v && !cJSON_IsObject(v) && (rc = field_error(gs, "spec.helm.values: not an object")))
		return rc;
	if (cJSON_IsObject(v)) {
		/* cJSON's allocator is not malloc (regions): a copy the spec owns */
		char *printed = cJSON_PrintUnformatted(v);
		rc = printed ? dup(&hl->values_json, printed) : nomem();
		cJSON_free(printed);
		if (rc)
			return rc;
		if (strlen(hl->values_json) > RENDER_MAX_VALUES_JSON) {
			free(hl->values_json);
			hl->values_json = NULL;
			if ((rc = field_error(gs, "spec.helm.values: over %u bytes", RENDER_MAX_VALUES_JSON)))
				return rc;
		}
	}
	return 0;
}

static void kvs_free(manifest_var *kv, size_t n)
{
	for (size_t i = 0; kv && i < n; i++) {
		free((char *)kv[i].name);
		free((char *)kv[i].value);
	}
	free(kv);
}

int gitsync_spec_parse(gitsync_spec **out, const cJSON *obj)
{
	gitsync_spec *gs = NULL;
	const cJSON *gen = plumb_json_get(obj, "metadata.generation");
	const char *policy = plumb_json_str(obj, "spec.driftPolicy");
	int rc;
	*out = NULL;
	if (!cJSON_IsObject(obj))
		return plumb_error_set(PLUMB_EINVALID, "a GitSync is a JSON object");
	if (!(gs = calloc(1, sizeof(*gs))))
		return nomem();
	gs->generation = cJSON_IsNumber(gen) ? (long)gen->valuedouble : 0;
	gs->drift = policy && !strcmp(policy, "Report") ? APPLY_DRIFT_REPORT : APPLY_DRIFT_CORRECT;
	if ((rc = dup(&gs->ns, plumb_json_str(obj, "metadata.namespace"))) ||
	    (rc = dup(&gs->name, plumb_json_str(obj, "metadata.name"))) ||
	    (rc = dup(&gs->uid, plumb_json_str(obj, "metadata.uid"))) ||
	    (rc = parse_source(gs, obj)) || (rc = parse_targets(gs, obj)) ||
	    (rc = bool_field(&gs->prune, gs, obj, "spec.prune", 1)) ||
	    (rc = bool_field(&gs->allow_empty, gs, obj, "spec.allowEmpty", 0)) ||
	    (rc = bool_field(&gs->adopt, gs, obj, "spec.adopt", 0)) ||
	    (rc = bool_field(&gs->suspend, gs, obj, "spec.suspend", 0)) ||
	    (rc = duration_field(&gs->debounce, gs, obj, "spec.debounce", GITSYNC_DEBOUNCE_DEFAULT)) ||
	    (rc = parse_kvs(&gs->substitute, &gs->nsubstitute, gs, obj, "spec.substitute")) ||
	    (rc = dup(&gs->target_namespace, plumb_json_str(obj, "spec.targetNamespace"))) ||
	    (rc = dup(&gs->service_account_name, plumb_json_str(obj, "spec.serviceAccountName"))) ||
	    (rc = dup(&gs->webhook_secret_name, plumb_json_str(obj, "spec.webhook.secretRef.name"))) ||
	    (rc = parse_render(gs, obj)) || (rc = parse_health(gs, obj)) || (rc = parse_rollout(gs, obj)))
		goto cleanup;
	if (plumb_json_get(obj, "spec.driftPolicy") && !(policy && (!strcmp(policy, "Correct") || !strcmp(policy, "Report"))) &&
	    (rc = field_error(gs, "spec.driftPolicy: must be Correct or Report")))
		goto cleanup;
	*out = gs;
	gs = NULL;
cleanup:
	gitsync_spec_free(gs);
	return rc;
}

void gitsync_spec_free(gitsync_spec *gs)
{
	if (!gs)
		return;
	free(gs->ns);
	free(gs->name);
	free(gs->uid);
	free(gs->git.url);
	free(gs->git.ref);
	free(gs->git.path);
	free(gs->git.secret_name);
	free(gs->git.interval_text);
	free(gs->git.timeout_text);
	for (size_t i = 0; gs->targets.cluster_names && i < gs->targets.ncluster_names; i++)
		free(gs->targets.cluster_names[i]);
	free(gs->targets.cluster_names);
	manifest_selector_free(gs->targets.selector);
	kvs_free(gs->substitute, gs->nsubstitute);
	free(gs->target_namespace);
	free(gs->service_account_name);
	free(gs->webhook_secret_name);
	free(gs->helm.chart);
	free(gs->helm.release_name);
	free(gs->helm.namespace);
	for (size_t i = 0; i < gs->helm.nvalues_files; i++)
		free(gs->helm.values_files[i]);
	free(gs->helm.values_files);
	free(gs->helm.values_json);
	for (size_t i = 0; i < gs->ndepends_on; i++)
		free(gs->depends_on[i]);
	free(gs->depends_on);
	for (size_t i = 0; i < gs->rollout.nwaves; i++) {
		free(gs->rollout.waves[i].name);
		manifest_selector_free(gs->rollout.waves[i].selector);
	}
	free(gs->rollout.waves);
	for (size_t i = 0; i < gs->nerrors; i++)
		free(gs->errors[i]);
	free(gs->errors);
	free(gs);
}

int gitsync_source_check(const gitsync_spec *gs)
{
	if (!gs->git.url)
		return plumb_error_set(PLUMB_EINVALID, "GitSync %s/%s: spec.git.url: required",
			gs->ns ? gs->ns : "", gs->name ? gs->name : "");
	if (!gs->git.ref)
		return plumb_error_set(PLUMB_EINVALID, "GitSync %s/%s: spec.git.ref: exactly one of branch, tag or commit",
			gs->ns ? gs->ns : "", gs->name ? gs->name : "");
	return 0;
}

/* ---- Cluster ---------------------------------------------------------------- */

int gitsync_cluster_parse(gitsync_cluster **out, const cJSON *obj)
{
	gitsync_cluster *cl = NULL;
	const char *key = plumb_json_str(obj, "spec.kubeConfigSecretRef.key");
	int rc;
	*out = NULL;
	if (!cJSON_IsObject(obj))
		return plumb_error_set(PLUMB_EINVALID, "a Cluster is a JSON object");
	if (!(cl = calloc(1, sizeof(*cl))))
		return nomem();
	cl->suspend = jbool(obj, "spec.suspend", 0);
	if ((rc = dup(&cl->ns, plumb_json_str(obj, "metadata.namespace"))) ||
	    (rc = dup(&cl->name, plumb_json_str(obj, "metadata.name"))) ||
	    (rc = parse_kvs(&cl->labels, &cl->nlabels, NULL, obj, "metadata.labels")) ||
	    (rc = dup(&cl->kubeconfig_secret, plumb_json_str(obj, "spec.kubeConfigSecretRef.name"))) ||
	    (rc = dup(&cl->kubeconfig_key, key ? key : "kubeconfig")) ||
	    (rc = dup(&cl->kubeconfig_context, plumb_json_str(obj, "spec.kubeConfigSecretRef.context"))))
		goto cleanup;
	*out = cl;
	cl = NULL;
cleanup:
	gitsync_cluster_free(cl);
	return rc;
}

void gitsync_cluster_free(gitsync_cluster *cl)
{
	if (!cl)
		return;
	free(cl->ns);
	free(cl->name);
	kvs_free(cl->labels, cl->nlabels);
	free(cl->kubeconfig_secret);
	free(cl->kubeconfig_key);
	free(cl->kubeconfig_context);
	free(cl);
}

/* ---- selection ---------------------------------------------------------------- */

int gitsync_selects(const gitsync_spec *gs, const gitsync_cluster *cl)
{
	const gitsync_targets *t = &gs->targets;
	if (!streq(gs->ns, cl->ns) || !cl->name)
		return 0;
	for (size_t i = 0; i < t->ncluster_names; i++)
		if (!strcmp(t->cluster_names[i], cl->name))
			return 1;
	return t->selector && manifest_selector_matches(t->selector, cl->labels, cl->nlabels);
}

size_t gitsync_wave_of(const gitsync_spec *gs, const gitsync_cluster *cl)
{
	const gitsync_rollout *ro = &gs->rollout;
	for (size_t i = 0; i < ro->nwaves; i++)
		if (ro->waves[i].selector && manifest_selector_matches(ro->waves[i].selector, cl->labels, cl->nlabels))
			return i;
	return ro->nwaves;
}

size_t gitsync_wave_max_unavailable(const gitsync_rollout *ro, size_t wave, size_t nclusters)
{
	if (wave >= ro->nwaves || !ro->waves[wave].max_unavailable_pct)
		return wave >= ro->nwaves ? (nclusters ? nclusters : 1) : ro->waves[wave].max_unavailable;
	size_t n = nclusters * ro->waves[wave].max_unavailable_pct / 100;
	return n ? n : 1;
}

/* ---- source, identity, apply ---------------------------------------------------- */

void gitsync_fetch_opts(source_fetch_opts *out, const gitsync_spec *gs, size_t max_bytes)
{
	memset(out, 0, sizeof(*out));
	out->kind = gs->git.ref_kind;
	out->ref = gs->git.ref;
	out->max_bytes = max_bytes;
}

int gitsync_user(char *out, size_t outlen, const gitsync_spec *gs, const char *default_sa)
{
	const char *sa = gs->service_account_name;
	out[0] = '\0';
	if (!sa || !*sa)
		sa = default_sa;
	if (!sa || !*sa)
		return 0;
	return kube_service_account_user(out, outlen, gs->ns, sa);
}

void gitsync_apply_opts(apply_opts *out, const gitsync_spec *gs)
{
	memset(out, 0, sizeof(*out));
	out->prune = gs ? gs->prune : 1;
	out->allow_empty = gs ? gs->allow_empty : 0;
	out->drift = gs ? gs->drift : APPLY_DRIFT_CORRECT;
	out->adopt = gs ? gs->adopt : 0;
}
