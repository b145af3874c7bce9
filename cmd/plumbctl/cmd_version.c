/* plumbctl version: the client's version and, when the management cluster
 * answers, its Kubernetes version and whether the plumb CRDs are served. */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "plumbctl.h"

static const char version_usage[] =
	"usage: plumbctl version [--client] [--kubeconfig PATH] [--context NAME]\n"
	"\n"
	"Prints plumbctl's version, then the management cluster's Kubernetes version and\n"
	"whether it serves the plumb.dev/v1alpha1 API (the CRDs are installed).\n"
	"\n"
	"  --client            only the client version; do not contact a cluster\n"
	PLUMBCTL_CONN_FLAGS
	"\n"
	"Exit codes: 0 ok, 2 usage, 3 cluster unreachable.\n";

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
	rc = kube_resolve(&res, conn.client, "plumb.dev/v1alpha1", "GitSync");
	if (rc == 0)
		printf("plumb.dev/v1alpha1 served (GitSync, Cluster CRDs installed)\n");
	else if (rc == PLUMB_ENOTFOUND)
		printf("plumb.dev/v1alpha1 not served: install the CRDs (kubectl apply -f manifests/crds/)\n");
	else {
		plumbctl_api_error(rc, "discovery");
		goto cleanup;
	}
	code = 0;
cleanup:
	plumbctl_disconnect(&conn);
	return code;
}
