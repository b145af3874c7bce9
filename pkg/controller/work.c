/* pkg/controller/work.c: the work items and their one spelling as queue
 * keys.
 *
 * A work item is a kind and the objects it is about (work_item in
 * internal.h): fetch one GitSync's revision (WORK_SOURCE), sync one GitSync
 * to one Cluster (WORK_SYNC), probe one Cluster (WORK_PROBE). The queue
 * (queue.c) deduplicates, debounces and backs off by a string key; that key
 * is made here from the item (work_key) and read back here once, when a
 * worker takes it (work_parse). Nothing else formats or splits keys.
 *
 * Keys read "src|<ns>|<gitsync>", "sync|<ns>|<gitsync>|<ns>|<cluster>",
 * "probe|<ns>|<cluster>", "health|<ns>|<gitsync>|<ns>|<cluster>",
 * "rollout|<ns>|<gitsync>": Kubernetes names hold no '|', and the GitSync and
 * Cluster of a sync item share their namespace only by convention, so both
 * are spelled out.
 *
 * Pure, and callable from any thread: the trigger functions only hand the
 * key to the queue, which has its own lock. */
#include "controller/internal.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = { [WORK_SOURCE] = "src", [WORK_SYNC] = "sync", [WORK_PROBE] = "probe",
	[WORK_HEALTH] = "health", [WORK_ROLLOUT] = "rollout" };

static int has_gitsync(work_kind k) { return k != WORK_PROBE; }
static int has_cluster(work_kind k) { return k != WORK_SOURCE && k != WORK_ROLLOUT; }

/* Copies "ns/name" into out as "ns|name"; -1 when it is no such key. */
static int put_object(char **p, const char *end, const char *key)
{
	const char *slash = key ? strchr(key, '/') : NULL;
	size_t n = key ? strlen(key) : 0;
	if (!slash || slash == key || !slash[1] || strchr(slash + 1, '/') || strchr(key, '|') ||
	    (size_t)(end - *p) < n + 2)
		return -1;
	*(*p)++ = '|';
	for (const char *s = key; *s; s++)
		*(*p)++ = *s == '/' ? '|' : *s;
	**p = '\0';
	return 0;
}

int work_key(char *out, size_t outlen, const work_item *w)
{
	char *p = out;
	const char *end = out + outlen;
	if (outlen < 8 || (unsigned)w->kind > WORK_ROLLOUT)
		return plumb_error_set(PLUMB_EINVALID, "no such work item kind");
	p += snprintf(out, outlen, "%s", kind_names[w->kind]);
	if ((has_gitsync(w->kind) && put_object(&p, end, w->gitsync) != 0) ||
	    (has_cluster(w->kind) && put_object(&p, end, w->cluster) != 0))
		return plumb_error_set(PLUMB_EINVALID, "work item: object keys must be ns/name");
	return 0;
}

/* Reads "ns|name" from *s (advanced past it) into out as "ns/name". */
static int get_object(char *out, size_t outlen, const char **s)
{
	const char *ns = *s, *bar = strchr(ns, '|');
	if (!bar || bar == ns)
		return -1;
	const char *name = bar + 1, *end = strchr(name, '|');
	size_t nlen = end ? (size_t)(end - name) : strlen(name);
	if (!nlen || (size_t)(bar - ns) + 1 + nlen + 1 > outlen)
		return -1;
	snprintf(out, outlen, "%.*s/%.*s", (int)(bar - ns), ns, (int)nlen, name);
	*s = end ? end + 1 : name + nlen;
	return 0;
}

int work_parse(work_item *w, const char *key)
{
	memset(w, 0, sizeof(*w));
	const char *bar = key ? strchr(key, '|') : NULL;
	int kind = -1;
	for (int k = WORK_SOURCE; bar && k <= WORK_ROLLOUT; k++)
		if ((size_t)(bar - key) == strlen(kind_names[k]) && !strncmp(key, kind_names[k], (size_t)(bar - key)))
			kind = k;
	if (kind < 0)
		return plumb_error_set(PLUMB_EINVALID, "work item %s: unknown kind", key ? key : "(null)");
	const char *s = bar + 1;
	w->kind = (work_kind)kind;
	if ((has_gitsync(w->kind) && get_object(w->gitsync, sizeof(w->gitsync), &s) != 0) ||
	    (has_cluster(w->kind) && get_object(w->cluster, sizeof(w->cluster), &s) != 0) || *s)
		return plumb_error_set(PLUMB_EINVALID, "work item %s: malformed", key);
	return 0;
}

void work_trigger(controller *c, const work_item *w, double debounce)
{
	char key[WORK_KEY_MAX];
	if (work_key(key, sizeof(key), w) == 0)
		controller_queue_trigger(c->queue, key, debounce);
	else
		plumb_warn("work item not queued", "error", plumb_error_last());
}

static void copy_key(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

void trigger_src(controller *c, const char *gs_key, double debounce)
{
	work_item w = { .kind = WORK_SOURCE };
	copy_key(w.gitsync, sizeof(w.gitsync), gs_key);
	work_trigger(c, &w, debounce);
}

void trigger_sync(controller *c, const char *gs_key, const char *cl_key, double debounce)
{
	work_item w = { .kind = WORK_SYNC };
	copy_key(w.gitsync, sizeof(w.gitsync), gs_key);
	copy_key(w.cluster, sizeof(w.cluster), cl_key);
	work_trigger(c, &w, debounce);
}

void trigger_health(controller *c, const char *gs_key, const char *cl_key, double debounce)
{
	work_item w = { .kind = WORK_HEALTH };
	copy_key(w.gitsync, sizeof(w.gitsync), gs_key);
	copy_key(w.cluster, sizeof(w.cluster), cl_key);
	work_trigger(c, &w, debounce);
}

void trigger_rollout_after(controller *c, const char *gs_key, double delay)
{
	work_item w = { .kind = WORK_ROLLOUT };
	char key[WORK_KEY_MAX];
	copy_key(w.gitsync, sizeof(w.gitsync), gs_key);
	if (work_key(key, sizeof(key), &w) == 0)
		controller_queue_add_after(c->queue, key, delay);
}

void trigger_probe(controller *c, const char *cl_key)
{
	work_item w = { .kind = WORK_PROBE };
	copy_key(w.cluster, sizeof(w.cluster), cl_key);
	work_trigger(c, &w, 0);
}
