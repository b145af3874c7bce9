/* plumbctl's command table. A command gets argv starting at its own name
 * and returns the process exit code (see PLUMBCTL_EXIT_*). */
#ifndef PLUMBCTL_H
#define PLUMBCTL_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "gitsync/gitsync.h"
#include "kube/kube.h"

#ifndef PLUMB_VERSION
#define PLUMB_VERSION "0.1.0-dev"
#endif

/* Exit codes, the same for every command (documented in `plumbctl --help`). */
#define PLUMBCTL_EXIT_OK 0       /* done; diff: no differences */
#define PLUMBCTL_EXIT_FAIL 1     /* diff: differences; sync: handled but not Ready; rollout status: none; vet/render: invalid */
#define PLUMBCTL_EXIT_USAGE 2    /* bad flags or arguments */
#define PLUMBCTL_EXIT_API 3      /* the cluster could not be reached or refused (auth, RBAC, not found, no CRDs) */
#define PLUMBCTL_EXIT_TIMEOUT 4  /* sync --wait ran out of time */
#define PLUMBCTL_EXIT_INVALID 5  /* diff: the revision does not render, or an object would fail to apply */

typedef struct {
	const char *name;
	const char *help;
	int (*run)(int argc, char **argv);
} plumbctl_command;

int plumbctl_vet(int argc, char **argv);
int plumbctl_render(int argc, char **argv);
int plumbctl_status(int argc, char **argv);
int plumbctl_diff(int argc, char **argv);
int plumbctl_sync(int argc, char **argv);
int plumbctl_rollout(int argc, char **argv);
int plumbctl_version(int argc, char **argv);

/* ---- render and diff DIR (checkout.c) ------------------------------------- */

#define PLUMBCTL_MAX_RENDER_LIST 256

/* How to render a checkout: the flags render and diff share. */
typedef struct {
	const char *root;           /* --root: the repository's root */
	const char *render;         /* --render plain|kustomize|helm (spec.render) */
	const char *release_name;   /* --release-name (spec.helm.releaseName) */
	const char *kube_version;   /* --kube-version (render; diff asks the cluster) */
	const char *kustomize_bin, *helm_bin;
	const char *values[PLUMBCTL_MAX_RENDER_LIST];       /* --values FILE (spec.helm.valuesFiles) */
	size_t nvalues;
	const char *api_versions[PLUMBCTL_MAX_RENDER_LIST]; /* --api-versions (render) */
	size_t napi_versions;
} plumbctl_render_flags;

#define PLUMBCTL_RENDER_FLAGS \
	"  --root DIR              the repository's root, which kustomize and helm may read\n" \
	"                          (default: the nearest folder up from DIR with .git, else DIR)\n" \
	"  --render KIND           plain, kustomize or helm (default: detected, as spec.render)\n" \
	"  --release-name NAME     Helm release name (spec.helm.releaseName)\n" \
	"  --values FILE           a Helm values file, a path in the repository (repeatable;\n" \
	"                          spec.helm.valuesFiles, ${CLUSTER_…} allowed)\n" \
	"  --kustomize-bin PATH    the kustomize binary (default: kustomize in PATH)\n" \
	"  --helm-bin PATH         the helm binary (default: helm in PATH)\n"

/* Takes one of those flags at argv[*i]: 1 taken, 0 not, -1 error. */
int plumbctl_render_flag(plumbctl_render_flags *f, int argc, char **argv, int *i);
/* A GitSync spec holding only those flags (namespace ns, the release
 * "release-name" unless --release-name), parsed by the pipeline. */
int plumbctl_render_spec(gitsync_spec **out, const plumbctl_render_flags *f, const char *ns);
void plumbctl_render_tools(render_tools *out, const plumbctl_render_flags *f);

/* A checkout: every file plumbd would materialise from a commit. */
typedef struct {
	source_files *files;   /* paths relative to root */
	char *root;            /* absolute */
	char *path;            /* DIR relative to root ("" = the root) */
} plumbctl_checkout;

/* Reads the checkout DIR belongs to: root is --root, else the nearest folder
 * up from DIR that holds .git, else DIR. whole 0: only DIR's files when
 * DIR renders as plain YAML (gitsync_render_kind() with gs), the whole
 * root otherwise; 1: the whole root. Capped as plumbd caps a revision's
 * tree (256 MiB, 20,000 files). */
int plumbctl_checkout_read(plumbctl_checkout *co, const char *dir, const char *root, int whole,
	const gitsync_spec *gs);
void plumbctl_checkout_free(plumbctl_checkout *co);

/* ---- shared by the online commands (online.c) ----------------------------- */

/* The management-cluster connection every online command takes:
 * --kubeconfig PATH (default $KUBECONFIG, then ~/.kube/config),
 * --context NAME, -n/--namespace NS (default: the context's namespace). */
typedef struct {
	const char *kubeconfig;
	const char *context;
	const char *ns;
	kube_config *cfg;
	kube_client *client;
} plumbctl_conn;

#define PLUMBCTL_CONN_FLAGS \
	"  --kubeconfig PATH   management cluster kubeconfig (default: $KUBECONFIG, then ~/.kube/config)\n" \
	"  --context NAME      kubeconfig context (default: current-context)\n" \
	"  -n, --namespace NS  namespace of the GitSyncs and Clusters (default: the context's)\n"

/* When argv[*i] is flag `name` ("--x VALUE" or "--x=VALUE"; also `alias`
 * when not NULL), stores its value in *out, advances *i past it and returns
 * 1; returns 0 when argv[*i] is another argument; -1 (after printing) when
 * the flag lacks its value. */
int plumbctl_flag(const char **out, const char *name, const char *alias,
	int argc, char **argv, int *i);
/* Takes one of the connection flags at argv[*i]: 1 taken, 0 not, -1 error. */
int plumbctl_conn_flag(plumbctl_conn *c, int argc, char **argv, int *i);

/* plumbctl_online_args: the command goes on with its own arguments. */
#define PLUMBCTL_GO_ON -1

/* Takes out of argv what the online commands share: -h/--help (printing
 * usage on stdout), the connection flags and, when output is not NULL,
 * -o/--output FORMAT. The other arguments stay, in their order, and *argc
 * counts them (argv[0] included). Returns PLUMBCTL_GO_ON, or the exit code
 * the command ends with: 0 after --help, PLUMBCTL_EXIT_USAGE after a flag
 * without its value (printed). */
int plumbctl_online_args(plumbctl_conn *c, const char **output, const char *usage, int *argc, char **argv);
/* Loads the kubeconfig and makes the client. Prints what went wrong and
 * what to do on failure; returns 0 or an exit code. */
int plumbctl_connect(plumbctl_conn *c);
void plumbctl_disconnect(plumbctl_conn *c);

/* Prints "plumbctl: <what>: <last error>" and a hint that fits the error
 * code (is the cluster up, are the CRDs installed, RBAC...). Returns
 * PLUMBCTL_EXIT_API. */
int plumbctl_api_error(int rc, const char *what);

/* Resolves GitSync or Cluster (plumb.dev/v1alpha1); on failure prints a hint
 * about installing the CRDs and returns an exit code. */
int plumbctl_resolve(kube_resource *out, plumbctl_conn *c, const char *kind);

/* The condition of type t in obj's status.conditions, or NULL. */
const cJSON *plumbctl_condition(const cJSON *obj, const char *t);

/* s, or "-" when s is NULL or empty: an empty cell of a table. */
const char *plumbctl_dash(const char *s);

/* GETs GitSync name in c->ns (res from plumbctl_resolve) into *out (the
 * caller frees it). On failure prints why (a missing GitSync: how to list
 * them) and returns PLUMBCTL_EXIT_API, *out untouched. */
int plumbctl_gitsync_get(cJSON **out, plumbctl_conn *c, const kube_resource *res, const char *name);

/* Sets annotation key of GitSync name in c->ns to value (NULL removes it)
 * with a merge patch of its metadata. Returns 0, or PLUMBCTL_EXIT_API after
 * printing why (a missing GitSync as plumbctl_gitsync_get says it). */
int plumbctl_gitsync_annotate(plumbctl_conn *c, const kube_resource *res, const char *name,
	const char *key, const char *value);

/* A value no earlier request had, for the annotations plumbd acts on when
 * they change (plumb.dev/requested-at, plumb.dev/rollout-abort): the time
 * to the microsecond and a random suffix, so two in the same instant differ. */
#define PLUMBCTL_TOKEN_SIZE 64
void plumbctl_fresh_token(char out[PLUMBCTL_TOKEN_SIZE]);

/* Prints v on stdout as format "json" or "yaml". Returns 0, or
 * PLUMBCTL_EXIT_FAIL after printing why. */
int plumbctl_print_doc(const cJSON *v, const char *format);

#endif
