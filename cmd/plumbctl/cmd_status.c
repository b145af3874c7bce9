/* plumbctl status: GitSyncs × clusters as a table, or as JSON/YAML. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "plumbctl.h"

#define MAX_MESSAGE_COLUMN 72

static const char status_usage[] =
	"usage: plumbctl status [NAME] [-n NS | -A] [-o table|json|yaml] [--kubeconfig PATH] [--context NAME]\n"
	"\n"
	"Shows every GitSync (or the one named) with one row per target cluster: its\n"
	"state (Synced, Drifted, Failed, Unreachable, Pending; with spec.wait also\n"
	"Progressing: applied, not yet healthy, and Degraded: not healthy past\n"
	"spec.healthTimeout), the health of what was applied there (Healthy,\n"
	"Progressing, Degraded; - when not known), the commit applied there, the objects\n"
	"plumb manages there, how many drifted, the sync lag (commit first seen ->\n"
	"applied) and the last message. When a GitSync shown has spec.rollout, a WAVE\n"
	"column names each cluster's rollout wave (`plumbctl rollout status` shows the\n"
	"rollout). With plumbd --shards, an OWNER column names the replica that owns\n"
	"each GitSync (status.owner). A GitSync that is not Ready gets a line under the table saying why\n"
	"(a stalled revision names file and line).\n"
	"\n"
	"  -A, --all-namespaces  every namespace\n"
	"  -o, --output FORMAT   table (default), json or yaml (full messages, drifted fields,\n"
	"                        unhealthy objects, status.rollout)\n"
	PLUMBCTL_CONN_FLAGS
	"\n"
	"Exit codes: 0 shown, 2 usage, 3 cluster unreachable / not found / no CRDs.\n";

static void fmt_lag(char *out, size_t len, const cJSON *v)
{
	if (!cJSON_IsNumber(v)) {
		snprintf(out, len, "-");
		return;
	}
	double s = v->valuedouble;
	if (s < 60)
		snprintf(out, len, "%.1fs", s);
	else if (s < 3600)
		snprintf(out, len, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(out, len, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* One line of text: newlines become spaces, long text is cut with "…". */
static void one_line(char *out, size_t len, const char *s, size_t max)
{
	size_t n = 0, chars = 0;
	if (!s)
		s = "";
	for (; *s && n + 4 < len; s++) {
		if (chars >= max) {
			memcpy(out + n, "…", 3);
			n += 3;
			break;
		}
		/* Count UTF-8 lead bytes only. */
		if (((unsigned char)*s & 0xC0) != 0x80)
			chars++;
		out[n++] = (*s == '\n' || *s == '\t') ? ' ' : *s;
	}
	out[n] = '\0';
}

/* The plumbctl view of one GitSync, for -o json|yaml. */
static cJSON *view(const cJSON *gs)
{
	cJSON *v = cJSON_CreateObject();
	const cJSON *gen = plumb_json_get(gs, "metadata.generation");
	const cJSON *ogen = plumb_json_get(gs, "status.observedGeneration");
	const char *s;
	cJSON_AddStringToObject(v, "namespace", plumb_json_str(gs, "metadata.namespace"));
	cJSON_AddStringToObject(v, "name", plumb_json_str(gs, "metadata.name"));
	if (cJSON_IsNumber(gen))
		cJSON_AddNumberToObject(v, "generation", gen->valuedouble);
	if (cJSON_IsNumber(ogen))
		cJSON_AddNumberToObject(v, "observedGeneration", ogen->valuedouble);
	if ((s = plumb_json_str(gs, "spec.git.url")))
		cJSON_AddStringToObject(v, "url", s);
	if ((s = plumb_json_str(gs, "status.lastFetchedCommit")))
		cJSON_AddStringToObject(v, "fetchedCommit", s);
	if ((s = plumb_json_str(gs, "status.owner.replica")))
		cJSON_AddStringToObject(v, "owner", s);
	const char *types[] = { "Ready", "Stalled", "Reconciling", "Drifted" };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		const cJSON *c = plumbctl_condition(gs, types[i]);
		if (!c)
			continue;
		char key[32];
		snprintf(key, sizeof(key), "%c%s", types[i][0] + ('a' - 'A'), types[i] + 1);
		cJSON *o = cJSON_AddObjectToObject(v, key);
		cJSON_AddStringToObject(o, "status", plumb_json_str(c, "status") ? plumb_json_str(c, "status") : "Unknown");
		if ((s = plumb_json_str(c, "reason")))
			cJSON_AddStringToObject(o, "reason", s);
		if ((s = plumb_json_str(c, "message")) && *s)
			cJSON_AddStringToObject(o, "message", s);
	}
	const cJSON *cl = plumb_json_get(gs, "status.clusters");
	cJSON_AddItemToObject(v, "clusters", cl ? cJSON_Duplicate(cl, 1) : cJSON_CreateArray());
	const cJSON *ro = plumb_json_get(gs, "status.rollout");
	if (cJSON_IsObject(ro))
		cJSON_AddItemToObject(v, "rollout", cJSON_Duplicate(ro, 1));
	return v;
}

/* 1 when some GitSync of items rolls out in waves: the table gets a WAVE column. */
static int has_waves(const cJSON *items)
{
	const cJSON *gs, *cl;
	cJSON_ArrayForEach(gs, items) {
		if (cJSON_IsObject(plumb_json_get(gs, "spec.rollout")))
			return 1;
		cJSON_ArrayForEach(cl, plumb_json_get(gs, "status.clusters"))
			if (plumb_json_str(cl, "wave"))
				return 1;
	}
	return 0;
}

/* 1 when some GitSync of items has an owner (plumbd --shards): an OWNER column. */
static int has_owners(const cJSON *items)
{
	const cJSON *gs;
	cJSON_ArrayForEach(gs, items)
		if (plumb_json_str(gs, "status.owner.replica"))
			return 1;
	return 0;
}

/* One line of the table; ns, owner and wave NULL: the column is not shown.
 * OWNER comes last but for MESSAGE, so the columns before it stay put. */
static void print_row(const char *ns, const char *gitsync, const char *owner, const char *cluster,
	const char *wave, const char *state, const char *health, const char *commit, const char *objects,
	const char *drifted, const char *lag, const char *msg)
{
	if (ns)
		printf("%-16s ", ns);
	printf("%-20s %-14s ", gitsync, cluster);
	if (wave)
		printf("%-12s ", wave);
	printf("%-11s %-11s %-12s %7s %7s %7s  ", state, health, commit, objects, drifted, lag);
	if (owner)
		printf("%-24s ", owner);
	printf("%s\n", msg);
}

static void print_table(const cJSON *items, int show_ns)
{
	const cJSON *gs, *cl;
	plumb_buf notes = PLUMB_BUF_INIT(1024 * 1024);
	int waves = has_waves(items), owners = has_owners(items);
	print_row(show_ns ? "NAMESPACE" : NULL, "GITSYNC", owners ? "OWNER" : NULL, "CLUSTER", waves ? "WAVE" : NULL, "STATE", "HEALTH",
		"COMMIT", "OBJECTS", "DRIFTED", "LAG", "MESSAGE");
	cJSON_ArrayForEach(gs, items) {
		const char *ns = plumb_json_str(gs, "metadata.namespace");
		const char *name = plumb_json_str(gs, "metadata.name");
		const cJSON *clusters = plumb_json_get(gs, "status.clusters");
		const cJSON *ready = plumbctl_condition(gs, "Ready");
		const char *rs = ready ? plumb_json_str(ready, "status") : NULL;
		const char *row_ns = show_ns ? (ns ? ns : "") : NULL;
		const char *owner = owners ? plumbctl_dash(plumb_json_str(gs, "status.owner.replica")) : NULL;
		int rows = 0;
		cJSON_ArrayForEach(cl, clusters) {
			char lag[32], msg[512], commit[13], objects[24], drifted[24];
			const cJSON *objs = plumb_json_get(cl, "objects");
			const cJSON *dc = plumb_json_get(cl, "drifted.count");
			const char *wave = plumbctl_dash(plumb_json_str(cl, "wave"));
			snprintf(commit, sizeof(commit), "%.12s", plumbctl_dash(plumb_json_str(cl, "commit")));
			snprintf(objects, sizeof(objects), "%ld", cJSON_IsNumber(objs) ? (long)objs->valuedouble : 0L);
			snprintf(drifted, sizeof(drifted), "%ld", cJSON_IsNumber(dc) ? (long)dc->valuedouble : 0L);
			fmt_lag(lag, sizeof(lag), plumb_json_get(cl, "lagSeconds"));
			one_line(msg, sizeof(msg), plumb_json_str(cl, "message"), MAX_MESSAGE_COLUMN);
			print_row(row_ns, name ? name : "", owner, plumb_json_str(cl, "name") ? plumb_json_str(cl, "name") : "",
				waves ? wave : NULL, plumb_json_str(cl, "state") ? plumb_json_str(cl, "state") : "?",
				plumbctl_dash(plumb_json_str(cl, "health")), commit, objects, drifted, lag, msg);
			rows++;
		}
		if (!rows)
			print_row(row_ns, name ? name : "", owner, "-", waves ? "-" : NULL, ready ? "-" : "Pending", "-", "-",
				"-", "-", "-", ready ? "" : "not reconciled yet: is plumbd running and watching this namespace?");
		if (ready && (!rs || strcmp(rs, "True"))) {
			const char *reason = plumb_json_str(ready, "reason");
			const char *m = plumb_json_str(ready, "message");
			plumb_buf_printf(&notes, "%s%s%s: Ready=%s (%s): %s\n", show_ns && ns ? ns : "",
				show_ns ? "/" : "", name ? name : "", rs ? rs : "Unknown",
				reason ? reason : "", m ? m : "");
		}
	}
	if (notes.len)
		printf("\n%s", notes.ptr);
	plumb_buf_free(&notes);
}

int plumbctl_status(int argc, char **argv)
{
	plumbctl_conn conn = { 0 };
	const char *name = NULL, *output = "table";
	int all = 0, rc, code = PLUMBCTL_EXIT_API;
	kube_resource res;
	cJSON *list = NULL, *one = NULL, *out = NULL;

	if ((rc = plumbctl_online_args(&conn, &output, status_usage, &argc, argv)) != PLUMBCTL_GO_ON)
		return rc;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-A") || !strcmp(argv[i], "--all-namespaces")) {
			all = 1;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			fprintf(stderr, "plumbctl status: unexpected argument \"%s\"\n%s", argv[i], status_usage);
			return PLUMBCTL_EXIT_USAGE;
		}
	}
	if (strcmp(output, "table") && strcmp(output, "json") && strcmp(output, "yaml")) {
		fprintf(stderr, "plumbctl status: -o wants table, json or yaml, got \"%s\"\n", output);
		return PLUMBCTL_EXIT_USAGE;
	}
	if (all && name) {
		fprintf(stderr, "plumbctl status: a NAME needs one namespace: use -n NS instead of -A\n");
		return PLUMBCTL_EXIT_USAGE;
	}
	if ((rc = plumbctl_connect(&conn)))
		return rc;
	if ((rc = plumbctl_resolve(&res, &conn, "GitSync"))) {
		code = rc;
		goto cleanup;
	}
	if (name) {
		if ((rc = plumbctl_gitsync_get(&one, &conn, &res, name))) {
			code = rc;
			goto cleanup;
		}
		list = cJSON_CreateArray();
		cJSON_AddItemToArray(list, one);
		one = NULL;
	} else {
		cJSON *l = NULL;
		if ((rc = kube_list(&l, conn.client, &res, all ? NULL : conn.ns, NULL))) {
			plumbctl_api_error(rc, "list GitSyncs");
			goto cleanup;
		}
		list = cJSON_DetachItemFromObjectCaseSensitive(l, "items");
		cJSON_Delete(l);
		if (!list)
			list = cJSON_CreateArray();
	}
	if (!strcmp(output, "table")) {
		if (cJSON_GetArraySize(list) == 0)
			fprintf(stderr, "no GitSyncs in %s%s%s\n", all ? "any namespace" : "namespace \"",
				all ? "" : conn.ns, all ? "" : "\"");
		else
			print_table(list, all);
		code = 0;
		goto cleanup;
	}
	out = cJSON_CreateArray();
	const cJSON *gs;
	cJSON_ArrayForEach(gs, list)
		cJSON_AddItemToArray(out, view(gs));
	code = plumbctl_print_doc(name ? cJSON_GetArrayItem(out, 0) : out, output);
cleanup:
	cJSON_Delete(out);
	cJSON_Delete(list);
	cJSON_Delete(one);
	plumbctl_disconnect(&conn);
	return code;
}
