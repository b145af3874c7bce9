/* plumbctl version: the client's version and, when the management cluster
 * answers, its Kubernetes version, whether the plumb CRDs are served, and
 * the version of each plumbd installed there (its Deployment's labels). */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "plumbctl.h"

static const char version_usage[] =
	"usage: plumbctl version [--client] [--kubeconfig PATH] [--context NAME]\n"
	"\n"
	"Prints plumbctl's version, then the management cluster's Kubernetes version,\n"
	"whether it serves the " PLUMB_API_GROUP_VERSION " API (the CRDs are installed), and each\n"
	"plumbd installed in it: the Deployments labelled app.kubernetes.io/name=plumb,\n"
	"app.kubernetes.io/component=controller (what the Helm chart and the install\n"
	"manifest create), with their app.kubernetes.io/version, image and ready replicas.\n"
	"\n"
	"  --client            only the client version; do not contact a cluster\n"
	PLUMBCTL_CONN_FLAGS
	"\n"
	"Exit codes: 0 ok, 2 usage, 3 cluster unreachable.\n";

#define PLUMBD_SELECTOR "app.kubernetes.io/name=plumb,app.kubernetes.io/component=controller"

static const char *str_at(const cJSON *o, const char *a, const char *b, const char *c)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	if (c)
		v = cJSON_GetObjectItemCaseSensitive(v, c);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One line per plumbd Deployment. Not being allowed to list Deployments is
 * said, not an error: the rest of the answer stands. */
static int print_plumbds(kube_client *c)
{
	kube_resource res;
	kube_list_opts lo = { .label_selector = PLUMBD_SELECTOR };
	cJSON *list = NULL;
	const cJSON *d;
	int rc, n = 0;

	if ((rc = kube_resolve(&res, c, "apps/v1", "Deployment")) ||
	    (rc = kube_list(&list, c, &res, NULL, &lo))) {
		if (rc == PLUMB_EFORBIDDEN || rc == PLUMB_ENOTFOUND) {
			printf("plumbd: not known (cannot list Deployments: %s)\n", plumb_error_last());
			return 0;
		}
		return rc;
	}
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(list, "items")) {
		const cJSON *ctrs = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(d, "spec"), "template"), "spec"), "containers");
		const char *ver = str_at(d, "metadata", "labels", "app.kubernetes.io/version");
		const char *image = str_at(cJSON_GetArrayItem(ctrs, 0), "image", NULL, NULL);
		const cJSON *want = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "spec"), "replicas");
		const cJSON *ready = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "status"), "readyReplicas");
		printf("plumbd %s (Deployment %s/%s, image %s, %d/%d ready)\n", ver ? ver : "(unlabelled)",
			str_at(d, "metadata", "namespace", NULL) ? str_at(d, "metadata", "namespace", NULL) : "",
			str_at(d, "metadata", "name", NULL) ? str_at(d, "metadata", "name", NULL) : "",
			image ? image : "(none)", cJSON_IsNumber(ready) ? ready->valueint : 0,
			cJSON_IsNumber(want) ? want->valueint : 1);
		n++;
	}
	if (!n)
		printf("plumbd: no Deployment labelled %s (plumbd may run outside the cluster)\n", PLUMBD_SELECTOR);
	cJSON_Delete(list);
	return 0;
}

int plumbctl_version(int argc, char **argv)
{
	plumbctl_conn conn = { 0 };
	int client_only = 0, rc, code = PLUMBCTL_EXIT_API;
	char ver[128];
	kube_resource res;

	for (int i = 1; i < argc; i++) {
		int r;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(version_usage, stdout);
			return 0;
		}
		if ((r = plumbctl_conn_flag(&conn, argc, argv, &i))) {
			if (r < 0)
				return PLUMBCTL_EXIT_USAGE;
			continue;
		}
		if (!strcmp(argv[i], "--client")) {
			client_only = 1;
		} else {
			fprintf(stderr, "plumbctl version: unexpected argument \"%s\"\n%s", argv[i], version_usage);
			return PLUMBCTL_EXIT_USAGE;
		}
	}
	printf("plumbctl %s\n", PLUMB_VERSION);
	if (client_only)
		return 0;
	fflush(stdout);
	if ((rc = plumbctl_connect(&conn)))
		return rc;
	if ((rc = kube_server_version(ver, sizeof(ver), conn.client))) {
		plumbctl_api_error(rc, "server version");
		goto cleanup;
	}
	printf("kubernetes %s (%s)\n", ver, kube_config_server(conn.cfg));
	rc = kube_resolve(&res, conn.client, PLUMB_API_GROUP_VERSION, "GitSync");
	if (rc == 0)
		printf(PLUMB_API_GROUP_VERSION " served (GitSync, Cluster CRDs installed)\n");
	else if (rc == PLUMB_ENOTFOUND)
		printf(PLUMB_API_GROUP_VERSION " not served: install the CRDs (kubectl apply -f manifests/crds/)\n");
	else {
		plumbctl_api_error(rc, "discovery");
		goto cleanup;
	}
	if ((rc = print_plumbds(conn.client))) {
		plumbctl_api_error(rc, "listing Deployments");
		goto cleanup;
	}
	code = 0;
cleanup:
	plumbctl_disconnect(&conn);
	return code;
}
