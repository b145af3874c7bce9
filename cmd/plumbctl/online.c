/* What plumbctl's online commands share: flags for the management cluster,
 * the client, error messages that say what to do, getting and annotating a
 * GitSync, small JSON helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "diff/diff.h"
#include "plumbctl.h"

int plumbctl_flag(const char **out, const char *name, const char *alias,
	int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char *names[2] = { name, alias };
	for (int k = 0; k < 2; k++) {
		const char *n = names[k];
		size_t len;
		if (!n)
			continue;
		len = strlen(n);
		if (strncmp(a, n, len))
			continue;
		if (a[len] == '=') {
			*out = a + len + 1;
			return 1;
		}
		if (a[len] != '\0')
			continue;
		if (*i + 1 >= argc) {
			fprintf(stderr, "plumbctl: %s wants a value\n", n);
			return -1;
		}
		*out = argv[++*i];
		return 1;
	}
	return 0;
}

int plumbctl_conn_flag(plumbctl_conn *c, int argc, char **argv, int *i)
{
	int r;
	if ((r = plumbctl_flag(&c->kubeconfig, "--kubeconfig", NULL, argc, argv, i)))
		return r;
	if ((r = plumbctl_flag(&c->context, "--context", NULL, argc, argv, i)))
		return r;
	return plumbctl_flag(&c->ns, "--namespace", "-n", argc, argv, i);
}

int plumbctl_online_args(plumbctl_conn *c, const char **output, const char *usage, int *argc, char **argv)
{
	int kept = 1;
	for (int i = 1; i < *argc; i++) {
		int r;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			return PLUMBCTL_EXIT_OK;
		}
		r = plumbctl_conn_flag(c, *argc, argv, &i);
		if (!r && output)
			r = plumbctl_flag(output, "--output", "-o", *argc, argv, &i);
		if (r < 0)
			return PLUMBCTL_EXIT_USAGE;
		if (!r)
			argv[kept++] = argv[i];
	}
	*argc = kept;
	argv[kept] = NULL;
	return PLUMBCTL_GO_ON;
}

/* $KUBECONFIG may be a list: the first file that exists, as kubectl's
 * default merge would mostly give for a single-file setup. */
static char *kubeconfig_path(const plumbctl_conn *c)
{
	const char *env = getenv("KUBECONFIG");
	if (c->kubeconfig && *c->kubeconfig)
		return plumb_strdup(c->kubeconfig);
	if (env && *env) {
		char *list = plumb_strdup(env), *save = NULL, *found = NULL;
		for (char *p = list ? strtok_r(list, ":", &save) : NULL; p; p = strtok_r(NULL, ":", &save))
			if (!access(p, R_OK)) {
				found = plumb_strdup(p);
				break;
			}
		free(list);
		if (found)
			return found;
	}
	const char *home = getenv("HOME");
	if (home && *home) {
		char *p = plumb_asprintf("%s/.kube/config", home);
		if (p && !access(p, R_OK))
			return p;
		free(p);
	}
	return NULL;
}

int plumbctl_connect(plumbctl_conn *c)
{
	char *path = kubeconfig_path(c);
	int rc;
	if (!path) {
		fprintf(stderr, "plumbctl: no kubeconfig: pass --kubeconfig PATH or set KUBECONFIG "
			"to the management cluster's kubeconfig\n");
		return PLUMBCTL_EXIT_USAGE;
	}
	if ((rc = kube_config_load_file(&c->cfg, path, c->context))) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		if (c->context)
			fprintf(stderr, "  check that context \"%s\" exists: kubectl --kubeconfig %s config get-contexts\n",
				c->context, path);
		free(path);
		return PLUMBCTL_EXIT_USAGE;
	}
	free(path);
	kube_client_opts o = { .name = "management", .timeout = 15, .max_retries = 1,
		.user_agent = "plumbctl/" PLUMB_VERSION };
	if ((rc = kube_client_new(&c->client, c->cfg, &o))) {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		return PLUMBCTL_EXIT_API;
	}
	if (!c->ns || !*c->ns)
		c->ns = kube_config_namespace(c->cfg);
	return 0;
}

void plumbctl_disconnect(plumbctl_conn *c)
{
	kube_client_free(c->client);
	kube_config_free(c->cfg);
	c->client = NULL;
	c->cfg = NULL;
}

int plumbctl_api_error(int rc, const char *what)
{
	fprintf(stderr, "plumbctl: %s: %s\n", what, plumb_error_last());
	switch (rc) {
	case PLUMB_EUNAVAILABLE:
	case PLUMB_EUNREACHABLE:
	case PLUMB_ETIMEOUT:
		fprintf(stderr, "  the API server did not answer: is the cluster up, and do --kubeconfig/--context point at it?\n");
		break;
	case PLUMB_ETLS:
		fprintf(stderr, "  the server certificate is not trusted: check certificate-authority in the kubeconfig\n");
		break;
	case PLUMB_EAUTH:
		fprintf(stderr, "  the credentials were rejected: refresh the kubeconfig's user\n");
		break;
	case PLUMB_EFORBIDDEN:
		fprintf(stderr, "  your user lacks RBAC for this; see `kubectl auth can-i --list`\n");
		break;
	default:
		break;
	}
	return PLUMBCTL_EXIT_API;
}

int plumbctl_resolve(kube_resource *out, plumbctl_conn *c, const char *kind)
{
	int rc = kube_resolve(out, c->client, PLUMB_API_GROUP_VERSION, kind);
	if (rc == PLUMB_ENOTFOUND) {
		fprintf(stderr, "plumbctl: the cluster at %s does not serve " PLUMB_API_GROUP_VERSION " %s: "
			"install the CRDs first (kubectl apply -f manifests/crds/) or point --kubeconfig at the "
			"management cluster\n", kube_config_server(c->cfg), kind);
		return PLUMBCTL_EXIT_API;
	}
	if (rc)
		return plumbctl_api_error(rc, "discovery");
	return 0;
}

const cJSON *plumbctl_condition(const cJSON *obj, const char *t)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, plumb_json_get(obj, "status.conditions")) {
		const char *type = plumb_json_str(c, "type");
		if (type && !strcmp(type, t))
			return c;
	}
	return NULL;
}

const char *plumbctl_dash(const char *s)
{
	return s && *s ? s : "-";
}

/* A GitSync that is not there: say how to find the right name. */
static int gitsync_error(int rc, const plumbctl_conn *c, const char *name, const char *what)
{
	if (rc != PLUMB_ENOTFOUND)
		return plumbctl_api_error(rc, what);
	fprintf(stderr, "plumbctl: GitSync \"%s\" not found in namespace \"%s\"; "
		"list them with `plumbctl status -A`\n", name, c->ns);
	return PLUMBCTL_EXIT_API;
}

int plumbctl_gitsync_get(cJSON **out, plumbctl_conn *c, const kube_resource *res, const char *name)
{
	int rc = kube_get(out, c->client, res, c->ns, name);
	return rc ? gitsync_error(rc, c, name, "get GitSync") : 0;
}

int plumbctl_gitsync_annotate(plumbctl_conn *c, const kube_resource *res, const char *name,
	const char *key, const char *value)
{
	cJSON *patch = cJSON_CreateObject(), *meta, *ann;
	int rc = PLUMB_ENOMEM;
	if (patch && (meta = cJSON_AddObjectToObject(patch, "metadata")) &&
	    (ann = cJSON_AddObjectToObject(meta, "annotations")) &&
	    (value ? cJSON_AddStringToObject(ann, key, value) : cJSON_AddNullToObject(ann, key)))
		rc = kube_merge_patch(NULL, c->client, res, c->ns, name, patch);
	else
		plumb_error_set(PLUMB_ENOMEM, "out of memory");
	cJSON_Delete(patch);
	return rc ? gitsync_error(rc, c, name, "annotate GitSync") : 0;
}

void plumbctl_fresh_token(char out[PLUMBCTL_TOKEN_SIZE])
{
	char rnd[7];
	size_t len;
	plumb_time_micro(out, PLUMBCTL_TOKEN_SIZE, plumb_time_real());
	plumb_random_name(rnd, 6);
	len = strlen(out);
	snprintf(out + len, PLUMBCTL_TOKEN_SIZE - len, "-%s", rnd);
}

int plumbctl_print_doc(const cJSON *v, const char *format)
{
	plumb_buf buf = PLUMB_BUF_INIT(64u * 1024 * 1024);
	int code = 0;
	if (!strcmp(format, "json")) {
		char *s = cJSON_Print(v);
		if (s) {
			printf("%s\n", s);
		} else {
			fprintf(stderr, "plumbctl: out of memory\n");
			code = PLUMBCTL_EXIT_FAIL;
		}
		cJSON_free(s);
	} else if (diff_to_yaml(&buf, v) == 0) {
		fwrite(buf.ptr, 1, buf.len, stdout);
	} else {
		fprintf(stderr, "plumbctl: %s\n", plumb_error_last());
		code = PLUMBCTL_EXIT_FAIL;
	}
	plumb_buf_free(&buf);
	return code;
}
