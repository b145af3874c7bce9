/* plumbctl rollout: the progressive rollout of a GitSync (spec.rollout).
 * status reads status.rollout, where plumbd keeps the rollout's whole state;
 * pause, resume and abort set the annotations plumbd acts on
 * (plumb.dev/rollout-paused, plumb.dev/rollout-abort) and change nothing
 * else: plumbd does the rest and shows it in status.rollout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "plumbctl.h"

#define PAUSED_ANNOTATION "plumb.dev/rollout-paused"
#define ABORT_ANNOTATION "plumb.dev/rollout-abort"

static const char rollout_usage[] =
	"usage: plumbctl rollout status|pause|resume|abort NAME [-o table|json|yaml] [-n NS]\n"
	"                        [--kubeconfig PATH] [--context NAME]\n"
	"\n"
	"The progressive rollout of GitSync NAME (spec.rollout): a new commit goes to\n"
	"its clusters wave by wave.\n"
	"\n"
	"  status   the rollout plumbd runs (status.rollout): the commit, the previous\n"
	"           good commit, the state (Progressing, Paused, Succeeded, Halted,\n"
	"           Aborted), the current wave and why, then one row per wave: its state\n"
	"           (Pending, Progressing, Baking, Succeeded, Failed), clusters and times.\n"
	"           The clusters no wave selects form the last wave, \"(others)\".\n"
	"  pause    sets plumb.dev/rollout-paused: \"true\": plumbd admits no more\n"
	"           clusters and starts no wave; what was admitted goes on.\n"
	"  resume   removes plumb.dev/rollout-paused: the rollout goes on.\n"
	"  abort    sets plumb.dev/rollout-abort to a fresh value: every cluster goes\n"
	"           back to the previous good commit, until a newer commit starts a\n"
	"           new rollout.\n"
	"\n"
	"  -o, --output FORMAT   status: table (default), json or yaml (status.rollout as it is)\n"
	PLUMBCTL_CONN_FLAGS
	"\n"
	"Exit codes: 0 shown / done, 1 status: the GitSync has no rollout (no\n"
	"spec.rollout, or plumbd has not started one), 2 usage (pause, resume, abort: the\n"
	"GitSync has no spec.rollout), 3 cluster unreachable / GitSync not found.\n";

static int has_rollout(const cJSON *gs)
{
	return cJSON_IsObject(plumb_json_get(gs, "spec.rollout"));
}

static const char *annotation(const cJSON *gs, const char *key)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(plumb_json_get(gs, "metadata.annotations"), key);
	return cJSON_IsString(a) ? a->valuestring : NULL;
}

/* The rollout as people read it: a few lines, then the waves. */
static void print_rollout(const cJSON *gs, const cJSON *ro)
{
	const char *paused = annotation(gs, PAUSED_ANNOTATION), *abort_req = annotation(gs, ABORT_ANNOTATION);
	const char *state = plumb_json_str(ro, "state"), *handled = plumb_json_str(ro, "lastHandledAbort");
	const cJSON *w, *cl;
	plumb_buf names = PLUMB_BUF_INIT(64 * 1024);

	printf("GitSync:         %s/%s\n", plumbctl_dash(plumb_json_str(gs, "metadata.namespace")),
		plumbctl_dash(plumb_json_str(gs, "metadata.name")));
	printf("Commit:          %.12s\n", plumbctl_dash(plumb_json_str(ro, "commit")));
	printf("Previous good:   %.12s\n", plumbctl_dash(plumb_json_str(ro, "previousCommit")));
	printf("State:           %s\n", plumbctl_dash(state));
	printf("Current wave:    %s\n", plumbctl_dash(plumb_json_str(ro, "currentWave")));
	printf("Message:         %s\n", plumbctl_dash(plumb_json_str(ro, "message")));
	/* what was asked for and plumbd has not shown yet */
	if (paused && !strcmp(paused, "true") && (!state || strcmp(state, "Paused")))
		printf("Pause:           requested (" PAUSED_ANNOTATION "), not yet shown by plumbd\n");
	if (abort_req && *abort_req && (!handled || strcmp(handled, abort_req)))
		printf("Abort:           requested (" ABORT_ANNOTATION "=%s), not yet handled by plumbd\n", abort_req);

	printf("\n%-16s %-12s %-24s %-21s %-21s %s\n", "NAME", "STATE", "CLUSTERS", "STARTED", "BAKE-STARTED",
		"FINISHED");
	cJSON_ArrayForEach(w, plumb_json_get(ro, "waves")) {
		plumb_buf_reset(&names);
		cJSON_ArrayForEach(cl, plumb_json_get(w, "clusters"))
			if (cJSON_IsString(cl))
				plumb_buf_printf(&names, "%s%s", names.len ? "," : "", cl->valuestring);
		printf("%-16s %-12s %-24s %-21s %-21s %s\n", plumbctl_dash(plumb_json_str(w, "name")),
			plumbctl_dash(plumb_json_str(w, "state")), plumbctl_dash(names.ptr), plumbctl_dash(plumb_json_str(w, "startedAt")),
			plumbctl_dash(plumb_json_str(w, "bakeStartedAt")), plumbctl_dash(plumb_json_str(w, "finishedAt")));
	}
	plumb_buf_free(&names);
}

static int rollout_status(plumbctl_conn *c, const cJSON *gs, const char *output)
{
	const cJSON *ro = plumb_json_get(gs, "status.rollout");
	const char *ns = plumb_json_str(gs, "metadata.namespace"), *name = plumb_json_str(gs, "metadata.name");
	if (!has_rollout(gs)) {
		fprintf(stderr, "no rollout: GitSync %s/%s has no spec.rollout\n", plumbctl_dash(ns), plumbctl_dash(name));
		return PLUMBCTL_EXIT_FAIL;
	}
	if (!cJSON_IsObject(ro)) {
		fprintf(stderr, "no rollout yet: GitSync %s/%s has spec.rollout but plumbd has not started a rollout "
			"(is plumbd running and watching namespace \"%s\"? `plumbctl status %s -n %s` says more)\n",
			plumbctl_dash(ns), plumbctl_dash(name), c->ns, plumbctl_dash(name), c->ns);
		return PLUMBCTL_EXIT_FAIL;
	}
	if (strcmp(output, "table"))
		return plumbctl_print_doc(ro, output);
	print_rollout(gs, ro);
	return PLUMBCTL_EXIT_OK;
}

/* pause, resume, abort: one annotation each. */
static int rollout_act(plumbctl_conn *c, const kube_resource *res, const cJSON *gs, const char *verb)
{
	const char *name = plumb_json_str(gs, "metadata.name"), *state = plumb_json_str(gs, "status.rollout.state");
	const char *prev = plumb_json_str(gs, "status.rollout.previousCommit");
	char token[PLUMBCTL_TOKEN_SIZE];
	int rc;
	if (!has_rollout(gs)) {
		fprintf(stderr, "plumbctl rollout %s: GitSync %s/%s has no spec.rollout: there is no rollout to %s\n",
			verb, c->ns, plumbctl_dash(name), verb);
		return PLUMBCTL_EXIT_USAGE;
	}
	if (!strcmp(verb, "pause")) {
		if ((rc = plumbctl_gitsync_annotate(c, res, name, PAUSED_ANNOTATION, "true")))
			return rc;
		printf("gitsync %s/%s: rollout paused (" PAUSED_ANNOTATION "=true): no more clusters are admitted "
			"and no wave starts; `plumbctl rollout resume %s` goes on\n", c->ns, name, name);
	} else if (!strcmp(verb, "resume")) {
		const char *paused = annotation(gs, PAUSED_ANNOTATION);
		if ((rc = plumbctl_gitsync_annotate(c, res, name, PAUSED_ANNOTATION, NULL)))
			return rc;
		printf("gitsync %s/%s: rollout resumed (" PAUSED_ANNOTATION " removed)%s\n", c->ns, name,
			paused ? "" : "; it was not paused");
	} else {
		plumbctl_fresh_token(token);
		if ((rc = plumbctl_gitsync_annotate(c, res, name, ABORT_ANNOTATION, token)))
			return rc;
		printf("gitsync %s/%s: rollout abort requested (" ABORT_ANNOTATION "=%s): ", c->ns, name, token);
		if (state && (!strcmp(state, "Succeeded") || !strcmp(state, "Aborted")))
			printf("the rollout is %s already: plumbd changes nothing\n", state);
		else if (prev && *prev)
			printf("every cluster goes back to %.12s\n", prev);
		else
			printf("there is no previous good commit to go back to\n");
	}
	return PLUMBCTL_EXIT_OK;
}

int plumbctl_rollout(int argc, char **argv)
{
	plumbctl_conn conn = { 0 };
	const char *verb = NULL, *name = NULL, *output = "table";
	int rc, code = PLUMBCTL_EXIT_API;
	kube_resource res;
	cJSON *gs = NULL;

	if ((rc = plumbctl_online_args(&conn, &output, rollout_usage, &argc, argv)) != PLUMBCTL_GO_ON)
		return rc;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-' && !verb) {
			verb = argv[i];
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			fprintf(stderr, "plumbctl rollout: unexpected argument \"%s\"\n%s", argv[i], rollout_usage);
			return PLUMBCTL_EXIT_USAGE;
		}
	}
	if (!verb || (strcmp(verb, "status") && strcmp(verb, "pause") && strcmp(verb, "resume") &&
		      strcmp(verb, "abort"))) {
		fprintf(stderr, "plumbctl rollout: wants status, pause, resume or abort%s%s%s\n%s",
			verb ? ", got \"" : "", verb ? verb : "", verb ? "\"" : "", rollout_usage);
		return PLUMBCTL_EXIT_USAGE;
	}
	if (!name) {
		fprintf(stderr, "plumbctl rollout %s: which GitSync? (`plumbctl status` lists them)\n%s", verb,
			rollout_usage);
		return PLUMBCTL_EXIT_USAGE;
	}
	if (strcmp(output, "table") && strcmp(output, "json") && strcmp(output, "yaml")) {
		fprintf(stderr, "plumbctl rollout: -o wants table, json or yaml, got \"%s\"\n", output);
		return PLUMBCTL_EXIT_USAGE;
	}
	if (strcmp(verb, "status") && strcmp(output, "table")) {
		fprintf(stderr, "plumbctl rollout %s: -o is for status only\n", verb);
		return PLUMBCTL_EXIT_USAGE;
	}
	if ((rc = plumbctl_connect(&conn)))
		return rc;
	if ((rc = plumbctl_resolve(&res, &conn, "GitSync")) ||
	    (rc = plumbctl_gitsync_get(&gs, &conn, &res, name))) {
		code = rc;
		goto cleanup;
	}
	code = !strcmp(verb, "status") ? rollout_status(&conn, gs, output) : rollout_act(&conn, &res, gs, verb);
cleanup:
	cJSON_Delete(gs);
	plumbctl_disconnect(&conn);
	return code;
}
