/* pkg/controller/depends.c: spec.dependsOn, the order between GitSyncs of
 * one namespace.
 *
 * In each cluster, a GitSync applies a new revision only once each GitSync
 * it depends on is synced there at that GitSync's current commit and
 * healthy (entry_ready_locked). A revision it already applied in that
 * cluster keeps being drift-corrected and pruned whatever its dependencies
 * do: the order is about what goes first, not a kill switch. A dependency
 * that does not exist, or does not target the cluster, keeps the dependent
 * Pending with the reason. A cycle through a GitSync stalls it
 * (DependencyCycle, naming the cycle).
 *
 * When a GitSync turns ready in a cluster (health_stage.c), the GitSyncs
 * waiting for it there are triggered (trigger_waiting_locked): no polling.
 *
 * Everything here runs under c->lock and reads only the parsed specs and
 * status entries the informers and stages keep. */
#include "controller/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper dependency chains than this are not followed (and reported). */
#define DEPENDS_MAX_DEPTH 32

static gitsync_state *dep_state_locked(controller *c, const char *ns, const char *name)
{
	char key[WORK_OBJECT_MAX];
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	return plumb_map_get(&c->gitsyncs, key);
}

int depends_wait_locked(controller *c, const gitsync_state *g, const gitsync_spec *gs,
	const char *cl_name, char **why)
{
	*why = NULL;
	for (size_t i = 0; i < gs->ndepends_on; i++) {
		const gitsync_state *d = dep_state_locked(c, g->ns, gs->depends_on[i]);
		const controller_cluster_status *s = d ? plumb_map_get(&d->clusters, cl_name) : NULL;
		if (!d)
			*why = plumb_asprintf("waiting for GitSync %s/%s (spec.dependsOn): no such GitSync",
				g->ns, gs->depends_on[i]);
		else if (!s)
			*why = plumb_asprintf("waiting for GitSync %s/%s (spec.dependsOn): it does not target cluster %s",
				g->ns, gs->depends_on[i], cl_name);
		else if (!entry_ready_locked(d, s))
			*why = plumb_asprintf("waiting for GitSync %s/%s (spec.dependsOn) in cluster %s: %s%s%s",
				g->ns, gs->depends_on[i], cl_name,
				d->rev && strcmp(s->commit, d->rev->commit) ? "not yet at its commit, " : "",
				controller_state_name(controller_effective_state(s)),
				s->state == CONTROLLER_SYNCED && s->health != CONTROLLER_HEALTH_HEALTHY ?
				(s->health == CONTROLLER_HEALTH_DEGRADED ? ", degraded" : ", not yet healthy") : "");
		if (*why)
			return 1;
	}
	return 0;
}

typedef struct {
	controller *c;
	const gitsync_state *root;
	plumb_map seen;
	const char *path[DEPENDS_MAX_DEPTH + 1];
	size_t depth;
	int too_deep;
} cycle_walk;

/* 1 when a dependency path from g leads back to the root (cw->path holds it). */
static int walk(cycle_walk *cw, const gitsync_state *g)
{
	if (!g->spec)
		return 0;
	if (cw->depth == DEPENDS_MAX_DEPTH) {
		cw->too_deep = 1;
		return 0;
	}
	cw->path[cw->depth++] = g->name;
	for (size_t i = 0; i < g->spec->ndepends_on; i++) {
		const char *name = g->spec->depends_on[i];
		if (!strcmp(name, cw->root->name)) {
			cw->path[cw->depth++] = name;
			return 1;
		}
		if (plumb_map_has(&cw->seen, name))
			continue;
		plumb_map_put(&cw->seen, name, (void *)1, NULL);
		const gitsync_state *d = dep_state_locked(cw->c, g->ns, name);
		if (d && walk(cw, d))
			return 1;
	}
	cw->depth--;
	return 0;
}

int depends_cycle_locked(controller *c, const gitsync_state *g, char *out, size_t n)
{
	cycle_walk cw = { .c = c, .root = g };
	int found = walk(&cw, g);
	out[0] = '\0';
	if (found) {
		size_t len = 0;
		len += (size_t)snprintf(out, n, "spec.dependsOn: a cycle: ");
		for (size_t i = 0; i < cw.depth && len < n; i++)
			len += (size_t)snprintf(out + len, n - len, "%s%s/%s", i ? " -> " : "", g->ns, cw.path[i]);
	} else if (cw.too_deep) {
		snprintf(out, n, "spec.dependsOn: a chain of more than %d GitSyncs", DEPENDS_MAX_DEPTH);
		found = 1;
	}
	plumb_map_free(&cw.seen, NULL);
	return found;
}

void trigger_waiting_locked(controller *c, const gitsync_state *g, const char *cl_key)
{
	size_t i = 0;
	const char *k;
	void *v;
	while (plumb_map_next(&c->gitsyncs, &i, &k, &v)) {
		const gitsync_state *d = v;
		if (!d->spec || !streq(d->ns, g->ns))
			continue;
		for (size_t j = 0; j < d->spec->ndepends_on; j++)
			if (!strcmp(d->spec->depends_on[j], g->name)) {
				trigger_sync(c, d->key, cl_key, 0);
				break;
			}
	}
}
