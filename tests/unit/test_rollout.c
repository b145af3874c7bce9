/* Unit tests for the pure parts of health, dependsOn and rollout: the
 * spec fields as pkg/gitsync reads them, rollout_next() (pkg/controller/
 * rollout.c) step by step, and the states status.clusters shows. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "controller/internal.h"
#include "test_json.h"

#define N "1111111111111111111111111111111111111111"
#define G "2222222222222222222222222222222222222222"
#define M "3333333333333333333333333333333333333333"

static gitsync_spec *spec_of(const char *spec_json)
{
	char *text = plumb_asprintf("{'apiVersion': 'plumb.dev/v1alpha1', 'kind': 'GitSync', "
		"'metadata': {'namespace': 'shop', 'name': 'app'}, 'spec': {'git': {'url': 'https://git.example/a.git', "
		"'ref': {'branch': 'main'}}, 'targets': {'clusterSelector': {}}, %s}}", spec_json);
	cJSON *o = test_json(text);
	gitsync_spec *gs = NULL;
	ck_assert_int_eq(gitsync_spec_parse(&gs, o), 0);
	cJSON_Delete(o);
	free(text);
	return gs;
}

static int has_error(const gitsync_spec *gs, const char *prefix)
{
	for (size_t i = 0; i < gs->nerrors; i++)
		if (!strncmp(gs->errors[i], prefix, strlen(prefix)))
			return 1;
	return 0;
}

START_TEST(test_spec__health_and_depends)
{
	gitsync_spec *gs = spec_of("'wait': true, 'healthTimeout': '90s', 'dependsOn': [{'name': 'infra'}, {'name': 'crds'}]");
	ck_assert_int_eq(gs->wait, 1);
	ck_assert(fabs(gs->health_timeout - 90) < 1e-9);
	ck_assert_uint_eq(gs->ndepends_on, 2);
	ck_assert_str_eq(gs->depends_on[0], "infra");
	ck_assert_str_eq(gs->depends_on[1], "crds");
	ck_assert_uint_eq(gs->nerrors, 0);
	gitsync_spec_free(gs);

	gs = spec_of("'rollout': null");
	ck_assert_int_eq(gs->wait, 0);
	ck_assert(fabs(gs->health_timeout - GITSYNC_HEALTH_TIMEOUT_DEFAULT) < 1e-9);
	ck_assert_uint_eq(gs->ndepends_on, 0);
	ck_assert_int_eq(gs->rollout.set, 0);
	gitsync_spec_free(gs);

	/* what the CRD refuses, stored without it: named, and a safe value used */
	gs = spec_of("'wait': 'yes', 'healthTimeout': '48h', 'dependsOn': [{'name': ''}, {'namespace': 'other', 'name': 'x'}]");
	ck_assert_int_eq(gs->wait, 0);
	ck_assert(fabs(gs->health_timeout - GITSYNC_HEALTH_TIMEOUT_MAX) < 1e-9);
	ck_assert(has_error(gs, "spec.wait: not a boolean"));
	ck_assert(has_error(gs, "spec.healthTimeout: must be between 1s and 24h"));
	ck_assert(has_error(gs, "spec.dependsOn[0].name: required"));
	ck_assert(has_error(gs, "spec.dependsOn[1].namespace: must be the GitSync's own"));
	ck_assert_uint_eq(gs->ndepends_on, 0);
	gitsync_spec_free(gs);

	/* at most GITSYNC_MAX_DEPENDS, however long the list */
	plumb_buf b = PLUMB_BUF_INIT(4096);
	plumb_buf_puts(&b, "'dependsOn': [");
	for (int i = 0; i < 100; i++)
		plumb_buf_printf(&b, "%s{'name': 'd%d'}", i ? ", " : "", i);
	plumb_buf_puts(&b, "]");
	gs = spec_of(b.ptr);
	ck_assert_uint_eq(gs->ndepends_on, GITSYNC_MAX_DEPENDS);
	ck_assert(has_error(gs, "spec.dependsOn: more than 16 entries"));
	gitsync_spec_free(gs);
	plumb_buf_free(&b);
}
END_TEST

START_TEST(test_spec__rollout)
{
	gitsync_spec *gs = spec_of("'rollout': {'waves': [{'name': 'canary', 'clusterSelector': {'matchLabels': {'canary': 'true'}}}, "
		"{'name': 'eu', 'clusterSelector': {'matchLabels': {'region': 'eu'}}, 'maxUnavailable': 1}, "
		"{'name': 'rest', 'clusterSelector': {'matchExpressions': [{'key': 'region', 'operator': 'Exists'}]}, 'maxUnavailable': '25%'}], "
		"'bake': '2m', 'onFailure': 'Rollback'}");
	ck_assert_uint_eq(gs->nerrors, 0);
	const gitsync_rollout *ro = &gs->rollout;
	ck_assert_int_eq(ro->set, 1);
	ck_assert_uint_eq(ro->nwaves, 3);
	ck_assert(fabs(ro->bake - 120) < 1e-9);
	ck_assert_int_eq(ro->rollback, 1);
	ck_assert_str_eq(ro->waves[1].name, "eu");
	/* maxUnavailable: absent is the whole wave, a count, a percentage rounded down, at least 1 */
	ck_assert_uint_eq(gitsync_wave_max_unavailable(ro, 0, 7), 7);
	ck_assert_uint_eq(gitsync_wave_max_unavailable(ro, 1, 7), 1);
	ck_assert_uint_eq(gitsync_wave_max_unavailable(ro, 2, 8), 2);
	ck_assert_uint_eq(gitsync_wave_max_unavailable(ro, 2, 3), 1);

	/* a cluster belongs to the first wave that selects it; none: the last one */
	manifest_var canary[] = { { "canary", "true" }, { "region", "eu" } }, eu[] = { { "region", "eu" } },
		us[] = { { "region", "us" } }, none[] = { { "team", "x" } };
	gitsync_cluster cl = { .ns = "shop", .name = "c" };
	cl.labels = canary, cl.nlabels = 2;
	ck_assert_uint_eq(gitsync_wave_of(gs, &cl), 0);
	cl.labels = eu, cl.nlabels = 1;
	ck_assert_uint_eq(gitsync_wave_of(gs, &cl), 1);
	cl.labels = us;
	ck_assert_uint_eq(gitsync_wave_of(gs, &cl), 2);
	cl.labels = none;
	ck_assert_uint_eq(gitsync_wave_of(gs, &cl), 3);
	gitsync_spec_free(gs);

	gs = spec_of("'rollout': {'waves': [{'name': 'a', 'maxUnavailable': '0%'}, {'name': 'a', 'maxUnavailable': -1}, "
		"{'clusterSelector': 'x'}], 'onFailure': 'Panic'}");
	ck_assert(has_error(gs, "spec.rollout.waves[0].maxUnavailable"));
	ck_assert(has_error(gs, "spec.rollout.waves[1].name: a is used twice"));
	ck_assert(has_error(gs, "spec.rollout.waves[1].maxUnavailable"));
	ck_assert(has_error(gs, "spec.rollout.waves[2].name: required"));
	ck_assert(has_error(gs, "spec.rollout.waves[2].clusterSelector: not an object"));
	ck_assert(has_error(gs, "spec.rollout.onFailure: must be Halt or Rollback"));
	ck_assert_str_eq(gs->rollout.waves[1].name, "wave-2");
	ck_assert_int_eq(gs->rollout.rollback, 0);
	gitsync_spec_free(gs);

	gs = spec_of("'rollout': {'waves': []}");
	ck_assert_int_eq(gs->rollout.set, 0);
	ck_assert(has_error(gs, "spec.rollout.waves: a list of at least one wave"));
	gitsync_spec_free(gs);
}
END_TEST

/* ---- rollout_next ---- */

typedef struct {
	gitsync_spec *gs;
	rollout_cluster cl[8];
	size_t n;
	cJSON *state;
	rollout_result res;
	double now;
} bed;

static void add(bed *b, const char *name, size_t wave, const char *commit)
{
	rollout_cluster *c = &b->cl[b->n++];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->key, sizeof(c->key), "shop/%s", name);
	c->wave = wave;
	snprintf(c->commit, sizeof(c->commit), "%s", commit);
	snprintf(c->attempted, sizeof(c->attempted), "%s", commit);
	c->known = 1;
	c->settled = 1;
	c->ready = 1;
}

static rollout_cluster *find(bed *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->cl[i].name, name))
			return &b->cl[i];
	ck_abort_msg("no cluster %s", name);
	return NULL;
}

static void step(bed *b, const char *commit, int paused, const char *abort_req)
{
	cJSON *next = NULL;
	ck_assert_int_eq(rollout_next(&next, &b->res, b->state, &b->gs->rollout, commit, b->cl, b->n, paused,
		abort_req, b->now), 0);
	cJSON_Delete(b->state);
	b->state = next;
}

/* what a sync of the intended commit does: the cluster has it, ready or not */
static void apply_intended(bed *b, const char *name, int ready, int failed)
{
	rollout_cluster *c = find(b, name);
	memcpy(c->attempted, c->intended, sizeof(c->attempted));
	if (!failed)
		memcpy(c->commit, c->intended, sizeof(c->commit));
	c->ready = ready;
	c->failed = failed;
	c->known = 1;
	c->settled = 1;
}

static const char *wave_state(bed *b, const char *name)
{
	const cJSON *w;
	cJSON_ArrayForEach(w, plumb_json_get(b->state, "waves"))
		if (!strcmp(plumb_json_str(w, "name"), name))
			return plumb_json_str(w, "state");
	return "(none)";
}

static int has_event(const bed *b, const char *reason)
{
	for (size_t i = 0; i < b->res.nevents; i++)
		if (!strcmp(b->res.events[i].reason, reason))
			return 1;
	return 0;
}

static void bed_init(bed *b, const char *rollout)
{
	memset(b, 0, sizeof(*b));
	b->gs = spec_of(rollout);
	b->now = 1.8e9;
}

static void bed_free(bed *b)
{
	cJSON_Delete(b->state);
	gitsync_spec_free(b->gs);
}

#define WAVES "'rollout': {'waves': [{'name': 'canary', 'clusterSelector': {'matchLabels': {'canary': 'true'}}}, " \
	"{'name': 'eu', 'clusterSelector': {'matchLabels': {'region': 'eu'}}, 'maxUnavailable': 1}], 'bake': '60s'"

START_TEST(test_rollout__walks_the_waves_with_bake)
{
	bed b;
	bed_init(&b, WAVES "}");
	add(&b, "c2", 0, G);
	add(&b, "e2", 1, G);
	add(&b, "e1", 1, G);
	add(&b, "us", 2, G);

	/* a first rollout: no previous good commit is known */
	step(&b, N, 0, NULL);
	ck_assert(has_event(&b, "RolloutStarted") && has_event(&b, "WaveStarted"));
	ck_assert_str_eq(plumb_json_str(b.state, "state"), "Progressing");
	ck_assert_str_eq(plumb_json_str(b.state, "currentWave"), "canary");
	ck_assert_str_eq(find(&b, "c2")->intended, N);
	ck_assert_str_eq(find(&b, "e1")->intended, G);
	ck_assert_str_eq(find(&b, "us")->intended, G);
	ck_assert_str_eq(find(&b, "us")->wave_name, "(others)");

	/* the canary takes it but is not healthy yet: nothing moves */
	apply_intended(&b, "c2", 0, 0);
	b.now += 5;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(wave_state(&b, "canary"), "Progressing");
	ck_assert_str_eq(find(&b, "e1")->intended, G);

	/* healthy: it bakes for 60 s */
	find(&b, "c2")->ready = 1;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(wave_state(&b, "canary"), "Baking");
	ck_assert(fabs(b.res.next_check - 60) < 1e-6);
	b.now += 59;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(wave_state(&b, "canary"), "Baking");
	ck_assert_str_eq(find(&b, "e1")->intended, G);
	ck_assert(fabs(b.res.next_check - 1) < 1e-6);

	/* it turned unready during the bake: the bake starts over */
	find(&b, "c2")->ready = 0;
	b.now += 0.5;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(wave_state(&b, "canary"), "Progressing");
	find(&b, "c2")->ready = 1;
	step(&b, N, 0, NULL);
	ck_assert(fabs(b.res.next_check - 60) < 1e-6);
	b.now += 60;
	step(&b, N, 0, NULL);
	ck_assert(has_event(&b, "WaveSucceeded"));
	ck_assert_str_eq(wave_state(&b, "canary"), "Succeeded");
	ck_assert_str_eq(plumb_json_str(b.state, "currentWave"), "eu");

	/* eu: maxUnavailable 1, admitted in name order */
	ck_assert_str_eq(find(&b, "e1")->intended, N);
	ck_assert_str_eq(find(&b, "e2")->intended, G);
	ck_assert_str_eq(find(&b, "us")->intended, G);
	apply_intended(&b, "e1", 0, 0);
	step(&b, N, 0, NULL);
	ck_assert_str_eq(find(&b, "e2")->intended, G);
	find(&b, "e1")->ready = 1;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(find(&b, "e2")->intended, N);
	apply_intended(&b, "e2", 1, 0);
	step(&b, N, 0, NULL);
	b.now += 60;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(wave_state(&b, "eu"), "Succeeded");
	ck_assert_str_eq(find(&b, "us")->intended, N);
	apply_intended(&b, "us", 1, 0);
	step(&b, N, 0, NULL);
	b.now += 60;
	step(&b, N, 0, NULL);
	ck_assert(has_event(&b, "RolloutSucceeded"));
	ck_assert_str_eq(plumb_json_str(b.state, "state"), "Succeeded");
	ck_assert_ptr_null(plumb_json_str(b.state, "currentWave"));
	ck_assert_int_eq(b.res.nevents, 2);   /* the last wave's and the rollout's, once */
	step(&b, N, 0, NULL);
	ck_assert_int_eq(b.res.nevents, 0);

	/* the next commit: N is the previous good commit now */
	step(&b, M, 0, NULL);
	ck_assert_str_eq(plumb_json_str(b.state, "previousCommit"), N);
	ck_assert_str_eq(find(&b, "c2")->intended, M);
	ck_assert_str_eq(find(&b, "e1")->intended, N);
	bed_free(&b);
}
END_TEST

START_TEST(test_rollout__failure_halts_or_rolls_back)
{
	for (int rollback = 0; rollback <= 1; rollback++) {
		bed b;
		bed_init(&b, rollback ? WAVES ", 'onFailure': 'Rollback'}" : WAVES "}");
		add(&b, "c2", 0, G);
		add(&b, "e1", 1, G);
		/* G went through every wave: it is the good commit */
		b.state = test_json("{'commit': '" G "', 'state': 'Succeeded', 'waves': []}");
		step(&b, N, 0, NULL);
		ck_assert_str_eq(plumb_json_str(b.state, "previousCommit"), G);
		apply_intended(&b, "c2", 0, 0);
		step(&b, N, 0, NULL);
		/* Degraded at N */
		find(&b, "c2")->failed = 1;
		snprintf(find(&b, "c2")->why, sizeof(find(&b, "c2")->why), "Deployment shop/web: 0/2 replicas available");
		step(&b, N, 0, NULL);
		ck_assert(has_event(&b, "RolloutHalted"));
		ck_assert_str_eq(plumb_json_str(b.state, "state"), "Halted");
		ck_assert_str_eq(wave_state(&b, "canary"), "Failed");
		ck_assert_ptr_nonnull(strstr(plumb_json_str(b.state, "message"), "cluster c2: Deployment shop/web"));
		ck_assert_str_eq(find(&b, "e1")->intended, G);
		ck_assert_str_eq(find(&b, "c2")->intended, rollback ? G : N);
		ck_assert_int_eq(has_event(&b, "RolledBack"), rollback);
		/* halted stays halted, whatever the canary does now */
		apply_intended(&b, "c2", 1, 0);
		step(&b, N, 0, NULL);
		ck_assert_str_eq(plumb_json_str(b.state, "state"), "Halted");
		ck_assert_str_eq(find(&b, "e1")->intended, G);
		ck_assert_int_eq(b.res.nevents, 0);
		/* a newer commit starts again at wave 1; G is still the good one */
		step(&b, M, 0, NULL);
		ck_assert_str_eq(plumb_json_str(b.state, "state"), "Progressing");
		ck_assert_str_eq(plumb_json_str(b.state, "previousCommit"), G);
		ck_assert_str_eq(find(&b, "c2")->intended, M);
		ck_assert_str_eq(find(&b, "e1")->intended, G);
		bed_free(&b);
	}
}
END_TEST

START_TEST(test_rollout__pause_resume_abort)
{
	bed b;
	bed_init(&b, WAVES "}");
	add(&b, "c2", 0, G);
	add(&b, "e1", 1, G);
	b.state = test_json("{'commit': '" G "', 'state': 'Succeeded', 'waves': []}");
	/* paused from the start: not even wave 1 starts */
	step(&b, N, 1, NULL);
	ck_assert_str_eq(plumb_json_str(b.state, "state"), "Paused");
	ck_assert_str_eq(wave_state(&b, "canary"), "Pending");
	ck_assert_str_eq(find(&b, "c2")->intended, G);
	step(&b, N, 0, NULL);
	ck_assert_str_eq(find(&b, "c2")->intended, N);
	apply_intended(&b, "c2", 1, 0);
	step(&b, N, 1, NULL);
	ck_assert_str_eq(wave_state(&b, "canary"), "Baking");
	b.now += 61;
	step(&b, N, 1, NULL);
	/* the bake ended while paused: the canary is done, eu does not start */
	ck_assert_str_eq(wave_state(&b, "canary"), "Succeeded");
	ck_assert_str_eq(wave_state(&b, "eu"), "Pending");
	ck_assert_str_eq(find(&b, "e1")->intended, G);
	step(&b, N, 0, NULL);
	ck_assert_str_eq(find(&b, "e1")->intended, N);
	/* abort: everything back to G, handled once */
	step(&b, N, 0, "t1");
	ck_assert(has_event(&b, "RolloutAborted"));
	ck_assert_str_eq(plumb_json_str(b.state, "state"), "Aborted");
	ck_assert_str_eq(plumb_json_str(b.state, "lastHandledAbort"), "t1");
	ck_assert_str_eq(find(&b, "c2")->intended, G);
	ck_assert_str_eq(find(&b, "e1")->intended, G);
	step(&b, N, 0, "t1");
	ck_assert_int_eq(b.res.nevents, 0);
	ck_assert_str_eq(plumb_json_str(b.state, "state"), "Aborted");
	bed_free(&b);
}
END_TEST

START_TEST(test_rollout__new_leader_goes_on_from_status)
{
	bed b;
	bed_init(&b, WAVES "}");
	add(&b, "c2", 0, N);
	add(&b, "e1", 1, G);
	/* what the last leader wrote: the canary baking for 30 s of its 60 */
	char ts[48], *prev;
	plumb_time_rfc3339(ts, sizeof(ts), b.now - 30);
	prev = plumb_asprintf("{'commit': '" N "', 'previousCommit': '" G "', 'state': 'Progressing', 'currentWave': 'canary', "
		"'waves': [{'name': 'canary', 'state': 'Baking', 'clusters': ['c2'], 'startedAt': '%s', 'bakeStartedAt': '%s'}, "
		"{'name': 'eu', 'state': 'Pending', 'clusters': ['e1']}]}", ts, ts);
	b.state = test_json(prev);
	free(prev);
	/* the new leader has not looked at c2 yet (its entry is what the status said) */
	find(&b, "c2")->known = 0;
	find(&b, "c2")->settled = 0;
	find(&b, "c2")->ready = 0;
	step(&b, N, 0, NULL);
	ck_assert_int_eq(b.res.nevents, 0);
	ck_assert_str_eq(wave_state(&b, "canary"), "Baking");
	/* it synced c2, but its watches do not show the objects yet: still no verdict */
	find(&b, "c2")->known = 1;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(wave_state(&b, "canary"), "Baking");
	ck_assert_str_eq(find(&b, "e1")->intended, G);
	ck_assert_str_eq(find(&b, "e1")->intended, G);
	ck_assert_str_eq(find(&b, "c2")->intended, N);
	/* it looks, c2 is healthy: the bake goes on from where it was, not from now */
	find(&b, "c2")->settled = 1;
	find(&b, "c2")->ready = 1;
	b.now += 10;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(wave_state(&b, "canary"), "Baking");
	ck_assert(fabs(b.res.next_check - 20) < 1e-3);
	ck_assert_str_eq(find(&b, "e1")->intended, G);
	b.now += 20;
	step(&b, N, 0, NULL);
	ck_assert_str_eq(wave_state(&b, "canary"), "Succeeded");
	ck_assert_str_eq(find(&b, "e1")->intended, N);
	bed_free(&b);
}
END_TEST

START_TEST(test_status__wait_states)
{
	controller_cluster_status s = { .name = "c2", .state = CONTROLLER_SYNCED };
	ck_assert_int_eq(controller_effective_state(&s), CONTROLLER_SYNCED);
	s.health = CONTROLLER_HEALTH_PROGRESSING;
	ck_assert_int_eq(controller_effective_state(&s), CONTROLLER_SYNCED);   /* no wait: health only reported */
	s.wait = 1;
	ck_assert_int_eq(controller_effective_state(&s), CONTROLLER_PROGRESSING);
	s.health = CONTROLLER_HEALTH_DEGRADED;
	ck_assert_int_eq(controller_effective_state(&s), CONTROLLER_DEGRADED);
	s.state = CONTROLLER_FAILED;
	ck_assert_int_eq(controller_effective_state(&s), CONTROLLER_FAILED);
	s.state = CONTROLLER_SYNCED;
	s.health = CONTROLLER_HEALTH_HEALTHY;
	ck_assert_int_eq(controller_effective_state(&s), CONTROLLER_SYNCED);

	/* the status shows it, with why, and Ready says HealthCheckFailed */
	s.health = CONTROLLER_HEALTH_DEGRADED;
	s.health_message = "1 of 3 objects not healthy after 5m (spec.healthTimeout): Deployment shop/web: 1/3 replicas available";
	s.unhealthy_count = 1;
	controller_gitsync_summary sum = { .generation = 2, .fetched_commit = N };
	cJSON *st = NULL;
	ck_assert_int_eq(controller_status_build(&st, &sum, &s, 1, NULL, 1.8e9), 0);
	ck_assert_str_eq(plumb_json_str(cJSON_GetArrayItem(plumb_json_get(st, "clusters"), 0), "state"), "Degraded");
	ck_assert_str_eq(plumb_json_str(cJSON_GetArrayItem(plumb_json_get(st, "clusters"), 0), "health"), "Degraded");
	ck_assert_str_eq(plumb_json_str(cJSON_GetArrayItem(plumb_json_get(st, "clusters"), 0), "message"), s.health_message);
	const cJSON *ready = cJSON_GetArrayItem(plumb_json_get(st, "conditions"), 0);
	ck_assert_str_eq(plumb_json_str(ready, "reason"), "HealthCheckFailed");
	ck_assert_ptr_nonnull(strstr(plumb_json_str(ready, "message"), "Deployment shop/web"));
	ck_assert_str_eq(plumb_json_str(st, "summary.clusters"), "0/1");
	cJSON_Delete(st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rollout");
	TCase *tc = tcase_create("rollout");
	tcase_add_test(tc, test_spec__health_and_depends);
	tcase_add_test(tc, test_spec__rollout);
	tcase_add_test(tc, test_rollout__walks_the_waves_with_bake);
	tcase_add_test(tc, test_rollout__failure_halts_or_rolls_back);
	tcase_add_test(tc, test_rollout__pause_resume_abort);
	tcase_add_test(tc, test_rollout__new_leader_goes_on_from_status);
	tcase_add_test(tc, test_status__wait_states);
	suite_add_tcase(s, tc);
	return test_run(s);
}
