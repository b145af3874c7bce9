/* pkg/controller/rollout.c: spec.rollout, a new commit taken to the
 * GitSync's clusters wave by wave.
 *
 * The rollout's whole state is the JSON it shows in status.rollout: the
 * commit rolled out, the previous good commit, the rollout's state, the
 * current wave, and per wave its state, clusters and times. rollout_next()
 * is a pure function from that state (as the last status said it), the
 * spec, the newest commit, what each cluster has and is, the pause and
 * abort annotations and the clock, to the next state and the commit each
 * cluster is meant to have. Because the state lives in the status, a new
 * leader (or plumbd after a restart) goes on from exactly where the last
 * one wrote it: same wave, same bake start; a cluster it has not looked at
 * yet since it took over ("known" 0), or whose objects its watches do not
 * show yet ("settled" 0), neither ends nor restarts a bake.
 *
 * The rules (README "Progressive rollout"):
 *  - A cluster belongs to the first wave whose selector matches its labels;
 *    clusters no wave selects form a last wave, "(others)".
 *  - A new commit starts a rollout at wave 1 and replaces whatever rollout
 *    was running or halted. The previous good commit is the last commit a
 *    rollout took through every wave.
 *  - The current wave's clusters get the new commit, at most maxUnavailable
 *    of them updating (applied, not yet ready) at once, admitted in name
 *    order. Once every one is synced at the commit and healthy, the wave
 *    bakes: it must stay so for spec.rollout.bake (a cluster turning
 *    unready restarts the bake), then the next wave starts.
 *  - A cluster of the current wave whose sync of the commit failed, or that
 *    is Degraded at it, fails the wave: the rollout halts. Later waves keep
 *    the commit they have (drift-corrected there); with onFailure Rollback
 *    the failed wave's clusters get the previous good commit back.
 *  - Paused (plumb.dev/rollout-paused: "true"): nothing new is admitted and
 *    no wave starts; what was admitted goes on. Abort (a new value of
 *    plumb.dev/rollout-abort): every cluster gets the previous good commit
 *    back, until a newer commit starts a new rollout.
 *  - A cluster that has no commit yet and is not admitted waits (Pending).
 *
 * rollout_eval_locked() is the controller's side: it gathers the inputs
 * from the GitSync's state under c->lock, runs rollout_next(), keeps the
 * result (g->rollout, g->intended, each entry's wave), posts the Events of
 * the transitions and triggers the syncs of the clusters whose commit
 * changed. */
#include "controller/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OTHERS_WAVE "(others)"

static const char *const state_names[] = {
	[ROLLOUT_PROGRESSING] = "Progressing", [ROLLOUT_PAUSED] = "Paused",
	[ROLLOUT_SUCCEEDED] = "Succeeded", [ROLLOUT_HALTED] = "Halted", [ROLLOUT_ABORTED] = "Aborted",
};

static rollout_phase phase_of(const char *s)
{
	for (int i = 0; i <= ROLLOUT_ABORTED; i++)
		if (s && !strcmp(s, state_names[i]))
			return (rollout_phase)i;
	return ROLLOUT_PROGRESSING;
}

const char *rollout_phase_name(rollout_phase p)
{
	return (unsigned)p <= ROLLOUT_ABORTED ? state_names[p] : "Progressing";
}

static int cl_cmp(const void *a, const void *b)
{
	const rollout_cluster *x = *(rollout_cluster *const *)a, *y = *(rollout_cluster *const *)b;
	return strcmp(x->name, y->name);
}

static void add_event(rollout_result *r, const char *type, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void add_event(rollout_result *r, const char *type, const char *reason, const char *fmt, ...)
{
	if (r->nevents == ROLLOUT_MAX_EVENTS)
		return;
	rollout_event *e = &r->events[r->nevents++];
	va_list ap;
	snprintf(e->type, sizeof(e->type), "%s", type);
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/* 1 for a full commit id (40 hex digits): what status.rollout may name.
 * It is read back from the GitSync's status, which is not plumbd's alone to
 * write: anything else there is not a commit to sync to. */
static int commit_id(const char *s)
{
	size_t n = 0;
	for (; s && n < 41 && ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')); n++)
		;
	return s && n == 40 && !s[40];
}

static double time_of(const cJSON *o, const char *key)
{
	double t = 0;
	const char *s = plumb_json_str(o, key);
	return s && plumb_time_parse(&t, s) == 0 ? t : 0;
}

static void put_time(cJSON *o, const char *key, double t)
{
	char ts[48];
	if (t <= 0)
		return;
	plumb_time_rfc3339(ts, sizeof(ts), t);
	cJSON_AddStringToObject(o, key, ts);
}

static int ready_at(const rollout_cluster *c, const char *commit)
{
	return c->known && c->ready && !strcmp(c->commit, commit);
}

static int failed_at(const rollout_cluster *c, const char *commit)
{
	return c->known && c->failed && !strcmp(c->attempted, commit);
}

/* What one wave is, while rollout_next works. */
typedef struct {
	const char *name;
	rollout_cluster **members;   /* sorted by name */
	size_t n;
	const char *state;           /* Pending, Progressing, Baking, Succeeded, Failed */
	double started, bake_started, finished;
} wave_work;

int rollout_next(cJSON **out, rollout_result *res, const cJSON *prev, const gitsync_rollout *spec,
	const char *commit, rollout_cluster *clusters, size_t n, int paused, const char *abort_req, double now)
{
	size_t nw = spec->nwaves + 1;   /* the last one: (others) */
	wave_work *w = calloc(nw, sizeof(*w));
	rollout_cluster **sorted = calloc(n ? n : 1, sizeof(*sorted));
	int rc = 0;
	memset(res, 0, sizeof(*res));
	res->next_check = -1;
	*out = NULL;
	if (!w || !sorted) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++)
		sorted[i] = &clusters[i];
	qsort(sorted, n, sizeof(*sorted), cl_cmp);
	for (size_t i = 0; i < nw; i++) {
		w[i].name = i < spec->nwaves ? spec->waves[i].name : OTHERS_WAVE;
		w[i].members = calloc(n ? n : 1, sizeof(*w[i].members));
		w[i].state = "Pending";
		if (!w[i].members) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
	}
	for (size_t i = 0; i < n; i++) {
		size_t wi = sorted[i]->wave < nw ? sorted[i]->wave : nw - 1;
		w[wi].members[w[wi].n++] = sorted[i];
	}

	/* the state the status last showed, if it is about this commit */
	char good[41] = "", handled[ROLLOUT_ABORT_MAX + 1] = "";
	const char *pc = plumb_json_str(prev, "commit"), *pg = plumb_json_str(prev, "previousCommit");
	if (commit_id(pg))
		snprintf(good, sizeof(good), "%s", pg);
	snprintf(handled, sizeof(handled), "%s", plumb_json_str(prev, "lastHandledAbort") ? plumb_json_str(prev, "lastHandledAbort") : "");
	rollout_phase phase = ROLLOUT_PROGRESSING;
	size_t cur = 0;
	char message[512] = "";
	if (pc && !strcmp(pc, commit)) {
		phase = phase_of(plumb_json_str(prev, "state"));
		snprintf(message, sizeof(message), "%s", plumb_json_str(prev, "message") ? plumb_json_str(prev, "message") : "");
		const char *cw = plumb_json_str(prev, "currentWave");
		cur = phase == ROLLOUT_SUCCEEDED ? nw : 0;
		const cJSON *pw;
		cJSON_ArrayForEach(pw, plumb_json_get(prev, "waves")) {
			const char *name = plumb_json_str(pw, "name");
			for (size_t i = 0; name && i < nw; i++) {
				if (strcmp(w[i].name, name))
					continue;
				const char *st = plumb_json_str(pw, "state");
				static const char *const known[] = { "Pending", "Progressing", "Baking", "Succeeded", "Failed" };
				for (size_t k = 0; st && k < 5; k++)
					if (!strcmp(st, known[k]))
						w[i].state = known[k];
				w[i].started = time_of(pw, "startedAt");
				w[i].bake_started = time_of(pw, "bakeStartedAt");
				w[i].finished = time_of(pw, "finishedAt");
				if (cw && !strcmp(cw, name) && phase != ROLLOUT_SUCCEEDED)
					cur = i;
			}
		}
		/* the waves before the current one are done (a wave the spec
		 * gained in front of it since counts as done too) */
		for (size_t i = 0; i < cur && i < nw; i++)
			w[i].state = "Succeeded";
	} else {
		/* a new commit: a new rollout from wave 1 */
		if (commit_id(pc) && phase_of(plumb_json_str(prev, "state")) == ROLLOUT_SUCCEEDED)
			snprintf(good, sizeof(good), "%s", pc);
		res->started = 1;
		add_event(res, "Normal", "RolloutStarted", "rollout of %.12s started%s%.12s", commit,
			good[0] ? "; previous good commit " : "", good);
	}

	/* an abort asked for by a new annotation value */
	/* (compared as far as the status keeps it: an annotation may be long) */
	if (abort_req && *abort_req && strncmp(abort_req, handled, ROLLOUT_ABORT_MAX)) {
		snprintf(handled, sizeof(handled), "%s", abort_req);
		if (phase != ROLLOUT_SUCCEEDED && phase != ROLLOUT_ABORTED) {
			phase = ROLLOUT_ABORTED;
			snprintf(message, sizeof(message), "aborted (plumb.dev/rollout-abort)%s%.12s",
				good[0] ? ": every cluster goes back to " : "; no previous good commit to go back to", good);
			add_event(res, "Warning", "RolloutAborted", "rollout of %.12s aborted", commit);
		}
	}
	if (phase == ROLLOUT_PROGRESSING || phase == ROLLOUT_PAUSED)
		phase = paused ? ROLLOUT_PAUSED : ROLLOUT_PROGRESSING;

	/* walk the waves from the current one */
	while ((phase == ROLLOUT_PROGRESSING || phase == ROLLOUT_PAUSED) && cur < nw) {
		wave_work *cw = &w[cur];
		if (!cw->n) {
			cw->state = "Succeeded";
			cur++;
			continue;
		}
		if (!strcmp(cw->state, "Pending")) {
			if (phase == ROLLOUT_PAUSED)
				break;
			cw->state = "Progressing";
			cw->started = now;
			cw->bake_started = 0;
			add_event(res, "Normal", "WaveStarted", "rollout of %.12s: wave %s started (%zu cluster%s)",
				commit, cw->name, cw->n, cw->n == 1 ? "" : "s");
		}
		const rollout_cluster *bad = NULL;
		size_t ready = 0;
		int known_unready = 0;
		for (size_t i = 0; i < cw->n; i++) {
			if (!bad && failed_at(cw->members[i], commit))
				bad = cw->members[i];
			if (ready_at(cw->members[i], commit))
				ready++;
			else if (cw->members[i]->settled)
				known_unready = 1;   /* a verdict, not a cluster this leader has yet to see */
		}
		if (bad) {
			cw->state = "Failed";
			cw->finished = now;
			phase = ROLLOUT_HALTED;
			snprintf(message, sizeof(message), "wave %s failed in cluster %s: %s", cw->name, bad->name,
				bad->why[0] ? bad->why : "not healthy");
			add_event(res, "Warning", "RolloutHalted", "rollout of %.12s halted: %s", commit, message);
			if (spec->rollback && good[0])
				add_event(res, "Warning", "RolledBack", "rollout of %.12s: wave %s goes back to %.12s",
					commit, cw->name, good);
			break;
		}
		if (ready == cw->n) {
			if (cw->bake_started <= 0)
				cw->bake_started = now;
			cw->state = "Baking";
			double left = spec->bake - (now - cw->bake_started);
			if (left > 0) {
				res->next_check = left;
				break;
			}
			cw->state = "Succeeded";
			cw->finished = now;
			add_event(res, "Normal", "WaveSucceeded", "rollout of %.12s: wave %s succeeded", commit, cw->name);
			cur++;
			continue;
		}
		if (cw->bake_started > 0 && known_unready) {
			cw->bake_started = 0;   /* a cluster turned unready: the bake starts again */
			cw->state = "Progressing";
		} else if (!strcmp(cw->state, "Baking") && !known_unready) {
			/* not every cluster is known to this leader yet: the bake neither ends nor restarts */
		} else {
			cw->state = "Progressing";
		}
		break;
	}
	if ((phase == ROLLOUT_PROGRESSING || phase == ROLLOUT_PAUSED) && cur >= nw) {
		phase = ROLLOUT_SUCCEEDED;
		message[0] = '\0';
		add_event(res, "Normal", "RolloutSucceeded", "rollout of %.12s succeeded in every wave", commit);
	}

	/* the commit each cluster is meant to have */
	for (size_t wi = 0; wi < nw; wi++) {
		wave_work *cw = &w[wi];
		size_t k = wi < spec->nwaves ? gitsync_wave_max_unavailable(spec, wi, cw->n) : cw->n;
		size_t updating = 0, slots;
		for (size_t i = 0; i < cw->n; i++) {
			const rollout_cluster *m = cw->members[i];
			if ((!strcmp(m->commit, commit) || !strcmp(m->attempted, commit)) && !ready_at(m, commit))
				updating++;
		}
		slots = phase == ROLLOUT_PROGRESSING && k > updating ? k - updating : 0;
		for (size_t i = 0; i < cw->n; i++) {
			rollout_cluster *m = cw->members[i];
			const char *keep = m->commit[0] ? m->commit : good;
			int admitted = !strcmp(m->commit, commit) || !strcmp(m->attempted, commit);
			if (!admitted && slots && wi == cur) {
				admitted = 1;
				slots--;
			}
			const char *want;
			if (phase == ROLLOUT_ABORTED)
				want = good[0] ? good : keep;
			else if (phase == ROLLOUT_SUCCEEDED || wi < cur)
				want = commit;
			else if (wi > cur)
				want = keep;
			else if (phase == ROLLOUT_HALTED && spec->rollback && good[0])
				want = good;
			else
				want = admitted ? commit : keep;
			snprintf(m->intended, sizeof(m->intended), "%s", want);
			snprintf(m->wave_name, sizeof(m->wave_name), "%s", cw->name);
		}
	}

	/* the state, as status.rollout shows it */
	cJSON *o = cJSON_CreateObject(), *arr;
	if (!o) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	cJSON_AddStringToObject(o, "commit", commit);
	if (good[0])
		cJSON_AddStringToObject(o, "previousCommit", good);
	cJSON_AddStringToObject(o, "state", rollout_phase_name(phase));
	if (cur < nw)
		cJSON_AddStringToObject(o, "currentWave", w[cur].name);
	if (message[0])
		cJSON_AddStringToObject(o, "message", message);
	if (handled[0])
		cJSON_AddStringToObject(o, "lastHandledAbort", handled);
	arr = cJSON_AddArrayToObject(o, "waves");
	for (size_t i = 0; i < nw; i++) {
		if (i == nw - 1 && !w[i].n)
			continue;   /* no (others) wave without clusters */
		cJSON *e = cJSON_CreateObject(), *cl = cJSON_CreateArray();
		cJSON_AddStringToObject(e, "name", w[i].name);
		cJSON_AddStringToObject(e, "state", w[i].state);
		for (size_t j = 0; j < w[i].n; j++)
			cJSON_AddItemToArray(cl, cJSON_CreateString(w[i].members[j]->name));
		cJSON_AddItemToObject(e, "clusters", cl);
		put_time(e, "startedAt", w[i].started);
		if (!strcmp(w[i].state, "Baking"))
			put_time(e, "bakeStartedAt", w[i].bake_started);
		put_time(e, "finishedAt", w[i].finished);
		cJSON_AddItemToArray(arr, e);
	}
	res->phase = phase;
	res->wave = cur;
	*out = o;
cleanup:
	for (size_t i = 0; w && i < nw; i++)
		free(w[i].members);
	free(w);
	free(sorted);
	return rc;
}

/* ---- the controller's side ------------------------------------------------------------ */

void rollout_eval_locked(controller *c, gitsync_state *g)
{
	const gitsync_spec *gs = g->spec;
	if (!gs || !gs->rollout.set) {
		cJSON_Delete(g->rollout);
		g->rollout = NULL;
		plumb_map_free(&g->intended, free);
		return;
	}
	if (!g->rev)   /* a new leader before its first fetch: the status keeps what was */
		return;
	/* the clusters the GitSync targets, with what they have and are */
	size_t n = 0, i = 0;
	const char *k;
	void *v;
	rollout_cluster *cls = calloc(c->clusters.count ? c->clusters.count : 1, sizeof(*cls));
	if (!cls)
		return;
	while (plumb_map_next(&c->clusters, &i, &k, &v)) {
		const cluster_state *cl = v;
		/* a suspended Cluster is left alone (the sync stage skips it) and
		 * holds no wave */
		if (!state_selects(g, cl) || cl->spec->suspend)
			continue;
		rollout_cluster *rc = &cls[n++];
		const controller_cluster_status *s = plumb_map_get(&g->clusters, cl->spec->name);
		snprintf(rc->name, sizeof(rc->name), "%s", cl->spec->name);
		snprintf(rc->key, sizeof(rc->key), "%s", k);
		rc->wave = gitsync_wave_of(gs, cl->spec);
		if (s) {
			snprintf(rc->commit, sizeof(rc->commit), "%s", s->commit);
			snprintf(rc->attempted, sizeof(rc->attempted), "%s", s->attempted);
			rc->known = !s->seeded;
			rc->settled = rc->known && !s->health_unsure;
			rc->ready = s->state == CONTROLLER_SYNCED && s->health == CONTROLLER_HEALTH_HEALTHY &&
				!s->health_unsure;
			rc->failed = s->state == CONTROLLER_FAILED ||
				(s->state == CONTROLLER_SYNCED && s->health == CONTROLLER_HEALTH_DEGRADED);
			snprintf(rc->why, sizeof(rc->why), "%s", s->state == CONTROLLER_FAILED ?
				(s->message ? s->message : "") : (s->health_message ? s->health_message : ""));
		}
	}
	const cJSON *prev = g->rollout ? g->rollout : plumb_json_get(g->obj, "status.rollout");
	if (!g->rollout && prev) {
		char *p = cJSON_PrintUnformatted(prev);
		plumb_debug("rollout: going on from the status", "gitsync", g->key, "rollout", p ? p : "");
		cJSON_free(p);
	}
	const char *paused = annotation(g->obj, ROLLOUT_PAUSED_ANNOTATION);
	rollout_result res;
	cJSON *next = NULL;
	if (rollout_next(&next, &res, prev, &gs->rollout, g->rev->commit, cls, n,
		    paused && !strcmp(paused, "true"), annotation(g->obj, ROLLOUT_ABORT_ANNOTATION),
		    plumb_time_real()) != 0) {
		free(cls);
		return;
	}
	cJSON_Delete(g->rollout);
	g->rollout = next;
	const char *uid = plumb_json_str(g->obj, "metadata.uid");
	for (size_t e = 0; e < res.nevents; e++) {
		plumb_info("rollout", "gitsync", g->key, "reason", res.events[e].reason, "detail", res.events[e].message);
		controller_events_post(c->events, g->ns, g->name, uid, res.events[e].type, res.events[e].reason,
			"Rollout", res.events[e].message);
	}
	for (size_t j = 0; j < n; j++) {
		char *old = plumb_map_get(&g->intended, cls[j].name);
		controller_cluster_status *s = plumb_map_get(&g->clusters, cls[j].name);
		if (s)
			snprintf(s->wave, sizeof(s->wave), "%s", cls[j].wave_name);
		if (old && !strcmp(old, cls[j].intended))
			continue;
		char *dup = plumb_strdup(cls[j].intended), *was = NULL;
		if (dup && plumb_map_put(&g->intended, cls[j].name, dup, (void **)&was) == 0) {
			free(was);
			/* its commit changed: sync it now (at once for a rollback) */
			trigger_sync(c, g->key, cls[j].key, 0);
		} else {
			free(dup);
		}
	}
	server_gauge_set(c->m.rollout_wave, (double)res.wave + 1, g->key);
	server_gauge_set(c->m.rollout_halted, res.phase == ROLLOUT_HALTED || res.phase == ROLLOUT_ABORTED, g->key);
	if (res.next_check >= 0)
		trigger_rollout_after(c, g->key, res.next_check + 0.05);
	free(cls);
}

int reconcile_rollout(controller *c, const char *gs_key, double *next)
{
	gitsync_state *g = gitsync_get(c, gs_key);
	*next = 0;
	if (!g)
		return 0;
	pthread_mutex_lock(&c->lock);
	rollout_eval_locked(c, g);
	pthread_mutex_unlock(&c->lock);
	write_gitsync_status(c, g);
	gitsync_put(c, g);
	return 0;
}
