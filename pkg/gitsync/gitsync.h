/*
 * pkg/gitsync — what a GitSync and a Cluster object mean, read once, and
 * the steps of the pipeline that follow from them. It sits between
 * pkg/apply and pkg/controller and is shared by both binaries: plumbd's
 * controller and plumbctl (diff, sync, status) call the same functions, so
 * the two cannot disagree about a default, a ref, a selector, a kubeconfig
 * or a substitution.
 *
 *   gitsync_spec_parse()     a GitSync object -> gitsync_spec (typed, owned)
 *   gitsync_cluster_parse()  a Cluster object -> gitsync_cluster
 *   gitsync_selects()        does this GitSync target this Cluster
 *   gitsync_fetch_opts()     what the source stage fetches (ref kind, name)
 *   gitsync_git_credentials()  the Git credentials from spec.git.secretRef's Secret
 *   gitsync_kubeconfig_*()   a Cluster's kubeconfig from its Secret, under a
 *                            kube_config_policy (the trust-boundary rules)
 *   gitsync_render()         a revision's files rendered for one Cluster
 *   gitsync_apply_opts()     the apply options the GitSync asks for
 *
 * Parsing never refuses an object plumbd accepts: every value is what the
 * controller has always computed from the JSON (a malformed duration or a
 * boolean of the wrong type falls back to its default, as before), and
 * what the CRD's validation would have refused is recorded in
 * gitsync_spec.errors, each message naming the field
 * ("spec.debounce: not a duration"). Callers choose what to do with them.
 *
 * No threads, no locks: the structs are values, owned by whoever parsed
 * them; every function here may be called from any thread on its own data.
 */
#ifndef PLUMB_GITSYNC_H
#define PLUMB_GITSYNC_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "apply/apply.h"
#include "kube/kube.h"
#include "manifest/manifest.h"
#include "render/render.h"
#include "source/source.h"

/* The bounds on spec.git.interval and spec.git.timeout, as the CRD
 * validates; applied here too for objects stored before that validation
 * (or with it bypassed), so no tenant polls its Git host every second or
 * holds a worker for an hour. */
#define GITSYNC_INTERVAL_MIN 10.0
#define GITSYNC_TIMEOUT_MAX 600.0
#define GITSYNC_INTERVAL_DEFAULT 60.0
#define GITSYNC_TIMEOUT_DEFAULT 60.0
#define GITSYNC_DEBOUNCE_DEFAULT 1.0
#define GITSYNC_HEALTH_TIMEOUT_DEFAULT 300.0
#define GITSYNC_HEALTH_TIMEOUT_MAX 86400.0
#define GITSYNC_MAX_DEPENDS 16
#define GITSYNC_MAX_WAVES 16
/* Field errors kept per object; past it they are counted in errors_dropped. */
#define GITSYNC_MAX_ERRORS 32
/* API versions and kinds of a cluster handed to helm; past it the render fails. */
#define GITSYNC_MAX_API_VERSIONS 8192

/* spec.git */
typedef struct {
	char *url;               /* NULL when absent */
	source_ref_kind ref_kind;/* see gitsync_ref() */
	char *ref;               /* the ref's name; NULL when no ref is set */
	char *path;              /* "" when absent */
	char *secret_name;       /* spec.git.secretRef.name; NULL = anonymous */
	double interval;         /* seconds: default 60, floored at 10 */
	double timeout;          /* seconds: default 60, capped at 10m */
	int interval_clamped;    /* the floor applied (the given value was lower) */
	int timeout_clamped;     /* the cap applied */
	char *interval_text;     /* spec.git.interval as written (NULL: absent), for logs */
	char *timeout_text;
} gitsync_source;

/* spec.helm (set when the object has it) */
typedef struct {
	int set;                 /* spec.helm is an object */
	char *chart;             /* spec.helm.chart; NULL: the resolved spec.git.path */
	char *release_name;      /* spec.helm.releaseName; default the GitSync's name */
	char *namespace;         /* spec.helm.namespace; default targetNamespace, else the GitSync's namespace */
	char **values_files;     /* spec.helm.valuesFiles, in order (may use ${CLUSTER_…}) */
	size_t nvalues_files;
	char *values_json;       /* spec.helm.values as compact JSON; NULL when absent */
	int include_crds;        /* spec.helm.includeCRDs, default 1 */
} gitsync_helm;

/* spec.rollout.waves[] */
typedef struct {
	char *name;              /* "wave-<n>" when absent or used twice (a field error) */
	manifest_selector *selector; /* NULL: selects no Cluster (absent or unusable) */
	int has_selector;
	/* spec.rollout.waves[].maxUnavailable: clusters of the wave updating at
	 * once, a count, or a percentage of the wave (rounded down, at least 1);
	 * absent: the whole wave (100%) */
	unsigned max_unavailable;
	unsigned max_unavailable_pct;   /* 0 when a count is given */
} gitsync_wave;

/* spec.rollout */
typedef struct {
	int set;                 /* spec.rollout has at least one wave */
	gitsync_wave *waves;     /* in order; a Cluster belongs to the first that selects it,
	                            the Clusters none selects form a last, unnamed wave */
	size_t nwaves;
	double bake;             /* seconds a wave stays healthy before the next starts; default 0 */
	int rollback;            /* onFailure: Rollback (default Halt) */
} gitsync_rollout;

/* spec.targets */
typedef struct {
	char **cluster_names;
	size_t ncluster_names;
	/* spec.targets.clusterSelector, NULL when absent or when it can never
	 * match (an unknown operator, an expression without key or operator, a
	 * matchLabels value that is not a string: the selector then selects
	 * nothing, as it always has; clusterNames still apply). */
	manifest_selector *selector;
	int has_selector;        /* clusterSelector is an object */
} gitsync_targets;

typedef struct {
	char *ns;                /* metadata.namespace */
	char *name;              /* metadata.name */
	char *uid;               /* metadata.uid, NULL when absent */
	long generation;         /* metadata.generation, 0 when absent */
	gitsync_source git;
	render_kind render;      /* spec.render; RENDER_AUTO when absent (or unknown: a field error) */
	gitsync_helm helm;
	gitsync_targets targets;
	int prune;               /* default 1 */
	int allow_empty;         /* default 0 */
	int adopt;               /* default 0 */
	int suspend;             /* default 0 */
	apply_drift_policy drift;/* "Report" reports; anything else corrects */
	double debounce;         /* seconds, default 1 */
	manifest_var *substitute;/* string values of spec.substitute, in order
	                            (the strings are owned by the spec) */
	size_t nsubstitute;
	char *target_namespace;  /* NULL when absent */
	char *service_account_name; /* NULL when absent */
	char *webhook_secret_name;  /* spec.webhook.secretRef.name, NULL when absent */
	int wait;                /* spec.wait: Synced only once what was applied is healthy */
	double health_timeout;   /* spec.healthTimeout, seconds: default 5m, 1s..24h */
	char **depends_on;       /* spec.dependsOn[].name (GitSyncs of the same namespace) */
	size_t ndepends_on;
	gitsync_rollout rollout;
	char **errors;           /* what the CRD would refuse, each naming the field */
	size_t nerrors;
	size_t errors_dropped;
} gitsync_spec;

/* Parses GitSync obj into *out (caller frees with gitsync_spec_free()).
 * 0, PLUMB_EINVALID when obj is not a JSON object, PLUMB_ENOMEM. */
int gitsync_spec_parse(gitsync_spec **out, const cJSON *obj);
void gitsync_spec_free(gitsync_spec *gs);

/* The one ref rule: the kind and name of spec.git.ref — tag, else commit,
 * else branch (the CRD allows exactly one; an object with several, stored
 * without that validation, keeps what plumbd has always fetched). *name is
 * NULL when none is set (kind is then SOURCE_REF_BRANCH). Borrowed. */
source_ref_kind gitsync_ref(const cJSON *ref, const char **name);

/* 0 when gs names a repository and a ref to fetch; else PLUMB_EINVALID
 * naming the field ("spec.git.url: required", "spec.git.ref: exactly one
 * of branch, tag or commit"). plumbd waits silently for such an object;
 * plumbctl reports it. */
int gitsync_source_check(const gitsync_spec *gs);

/* The duration at o's path in seconds, dflt when absent or not a duration
 * (the rule every duration of a GitSync is read with). */
double gitsync_duration(const cJSON *o, const char *path, double dflt);

/* ---- Cluster ---------------------------------------------------------------- */

typedef struct {
	char *ns;
	char *name;              /* NULL when absent (never selected) */
	manifest_var *labels;    /* its string labels, in order (owned) */
	size_t nlabels;
	int suspend;             /* spec.suspend, default 0 */
	char *kubeconfig_secret; /* spec.kubeConfigSecretRef.name; NULL: the management cluster */
	char *kubeconfig_key;    /* .key, default "kubeconfig" */
	char *kubeconfig_context;/* .context; NULL: the kubeconfig's current-context */
} gitsync_cluster;

/* Parses Cluster obj into *out (caller frees with gitsync_cluster_free()).
 * 0, PLUMB_EINVALID when obj is not a JSON object, PLUMB_ENOMEM. */
int gitsync_cluster_parse(gitsync_cluster **out, const cJSON *obj);
void gitsync_cluster_free(gitsync_cluster *cl);

/* ---- selection ---------------------------------------------------------------- */

/* 1 when GitSync gs targets Cluster cl: same namespace, and cl named in
 * spec.targets.clusterNames or matched by spec.targets.clusterSelector
 * (matchLabels and matchExpressions In/NotIn/Exists/DoesNotExist, ANDed;
 * an empty selector selects every Cluster of the namespace). */
int gitsync_selects(const gitsync_spec *gs, const gitsync_cluster *cl);

/* The index of the rollout wave Cluster cl belongs to: the first wave whose
 * selector matches it, else nwaves (the last, implicit wave). 0 without
 * spec.rollout. */
size_t gitsync_wave_of(const gitsync_spec *gs, const gitsync_cluster *cl);

/* How many of a wave's nclusters may be updating at once (at least 1). */
size_t gitsync_wave_max_unavailable(const gitsync_rollout *ro, size_t wave, size_t nclusters);

/* ---- source ------------------------------------------------------------------- */

/* The fetch options for gs's ref (kind and name borrowed from gs),
 * max_bytes as given (0 = the source default). */
void gitsync_fetch_opts(source_fetch_opts *out, const gitsync_spec *gs, size_t max_bytes);

/* The credentials of spec.git.secretRef from its Secret sec (the object, or
 * the controller's reduced copy; its "data" is read). sec NULL is
 * PLUMB_ENOTFOUND "git secret NS/NAME not found". *out NULL when gs names
 * no Secret. Caller frees with source_credentials_free(). */
int gitsync_git_credentials(source_credentials **out, const gitsync_spec *gs, const cJSON *sec);

/* The user gs acts as in its targets, system:serviceaccount:<ns>:<sa> with
 * sa spec.serviceAccountName, else default_sa; "" (plumbd's own
 * credentials) when neither is set. PLUMB_EINVALID naming the field for a
 * name that is no service account name. */
int gitsync_user(char *out, size_t outlen, const gitsync_spec *gs, const char *default_sa);

/* ---- a Cluster's kubeconfig ------------------------------------------------------ */

/* The kubeconfig bytes of Cluster cl from its Secret sec (the data at
 * kubeConfigSecretRef.key, base64-decoded). Errors: sec NULL
 * PLUMB_ENOTFOUND "kubeconfig secret NS/NAME not found"; no such key
 * PLUMB_EINVALID "kubeconfig secret NS/NAME has no key \"K\""; not base64.
 * Caller wipes and frees *out (gitsync_kubeconfig_wipe()). */
int gitsync_kubeconfig_data(char **out, size_t *outlen, const gitsync_cluster *cl, const cJSON *sec);

/* What identifies those credentials: "NS/NAME|resourceVersion|key|context"
 * (changes when the Secret or the reference does). Caller frees. */
char *gitsync_kubeconfig_id(const gitsync_cluster *cl, const cJSON *sec);

/* Loads data (from gitsync_kubeconfig_data()) at cl's context under policy
 * (NULL = the lockdown; a tenant wrote it), origin "secret NS/NAME". A
 * refused field is PLUMB_EINSECURE naming it. */
int gitsync_kubeconfig_load(kube_config **out, const gitsync_cluster *cl, const char *data, size_t len,
	const kube_config_policy *policy);

/* Zeroes and frees kubeconfig bytes. NULL-safe. */
void gitsync_kubeconfig_wipe(char *data, size_t len);

/* ---- render ---------------------------------------------------------------------- */

/* What a caller (plumbctl's flags) puts over the GitSync and Cluster. */
typedef struct {
	const manifest_var *vars;    /* win over spec.substitute */
	size_t nvars;
	const manifest_var *labels;  /* win over the Cluster's labels */
	size_t nlabels;
	const char *cluster_name;    /* NULL: the Cluster's name */
	const char *default_namespace; /* NULL: spec.targetNamespace, else the GitSync's namespace */
} gitsync_render_overrides;

typedef struct {
	cJSON *objects;              /* JSON array in apply order (take it, or it is freed) */
	char **origins;              /* "file:line" per object, NULL-terminated; NULL on ENOMEM */
	size_t count;
} gitsync_rendered;

/* Renders files for Cluster cl as GitSync gs asks: ${VAR} from
 * spec.substitute, ${CLUSTER_NAME} and ${CLUSTER_LABEL_<key>} from the
 * Cluster, cluster-selector annotations against its labels, the default
 * namespace spec.targetNamespace, else the GitSync's namespace. gs, cl and
 * ovr may each be NULL (plumbctl diff DIR: only its flags). On a render
 * error PLUMB_EINVALID with every message in errs. Free *out with
 * gitsync_rendered_free(). */
int gitsync_render(gitsync_rendered *out, const gitsync_spec *gs, const gitsync_cluster *cl,
	const manifest_file *files, size_t nfiles, const gitsync_render_overrides *ovr,
	manifest_errors *errs);

/* spec.git.path (or a Helm chart or values file path) for Cluster cl:
 * ${CLUSTER_NAME} and ${CLUSTER_LABEL_<key>} replaced (ovr's cluster name
 * and labels win, as in gitsync_render()), then normalised
 * (source_path_normalize()). Any other ${…}, a label the Cluster does not
 * have, or a result with ".." is PLUMB_EINVALID naming field (e.g.
 * "spec.git.path"). cl NULL: only ovr. Caller frees *out. */
int gitsync_resolve_path(char **out, const char *field, const char *path, const gitsync_cluster *cl,
	const gitsync_render_overrides *ovr);

/* 1 when path uses ${…} (it can only be read per cluster). */
int gitsync_path_per_cluster(const char *path);

/* A revision to render: a commit in a mirror (plumbd, plumbctl diff
 * --gitsync), or the files of a checkout (plumbctl render and diff DIR:
 * render_files_read_dir() of the repository's root). */
typedef struct {
	source_cache *cache;         /* the mirror; NULL: files */
	const char *url, *cred_id, *commit;
	const source_files *files;   /* paths relative to the repository's root */
} gitsync_revision;

/* Renders shared between the clusters of a commit (render.c). One kustomize
 * or helm run per commit, path and render inputs: clusters whose resolved
 * path, chart, values, release, namespace, Kubernetes version and API
 * versions are the same get the same output, from one run (a second cluster
 * asking while the first renders waits for it). Entries are keyed by a
 * SHA-256 of all those inputs and the commit; an owner's (a GitSync's)
 * entries at other commits are dropped when it renders a new one; past
 * max_bytes of output or max_entries the least recently used go. A render
 * the revision failed is kept too (the same inputs fail the same way), one
 * that failed for plumbd's own reasons (the work directory, memory) is not.
 * Thread-safe (its own mutex, taken alone: no other lock is taken under it). */
typedef struct gitsync_render_cache gitsync_render_cache;

/* max_bytes 0: 64 MiB; max_entries 0: 256. */
int gitsync_render_cache_new(gitsync_render_cache **out, size_t max_bytes, size_t max_entries);
void gitsync_render_cache_free(gitsync_render_cache *cache);

typedef struct {
	size_t entries, bytes;
	unsigned long hits, misses, waits; /* waits: hits that waited for a run in progress */
} gitsync_render_cache_stats;
void gitsync_render_cache_stats_get(gitsync_render_cache *cache, gitsync_render_cache_stats *out);

/* What one cached run makes: the output (or the revision's error). */
typedef struct {
	char *yaml;                  /* NUL-terminated; NULL on error */
	size_t len;
	char *errmsg;                /* the revision's error, when the run failed */
	int rc;                      /* 0 or the run's error code */
	int retry;                   /* the failure is plumbd's own (the work directory,
	                                memory, the mirror): not kept, not the revision's */
	double seconds;              /* of the tool */
	long peak_rss_kb;
} gitsync_render_output;
void gitsync_render_output_clear(gitsync_render_output *o);

/* The run behind a key: fills *out (out->retry for a failure of plumbd's
 * own); returns 0 or an error code. */
typedef int (*gitsync_render_fn)(gitsync_render_output *out, void *ctx);

/* The output for key (any bytes; hashed) of owner at commit: a copy of the
 * kept one, or run(ctx) once and kept. cache NULL: run() every time. *hit
 * (may be NULL) is 1 when the output came from the cache. Returns the
 * run's code (the kept one on a hit). */
int gitsync_render_cache_get(gitsync_render_output *out, int *hit, gitsync_render_cache *cache,
	const char *owner, const char *commit, const char *key, size_t keylen,
	gitsync_render_fn run, void *ctx);

/* What a render may run (the caller's binaries and limits) and what the
 * target cluster is, for Helm's .Capabilities. Every field may be NULL/0. */
typedef struct {
	const render_tools *tools;       /* NULL: kustomize and helm in PATH */
	const render_limits *limits;     /* NULL: pkg/render's defaults */
	const char *kube_version;        /* the cluster's version ("v1.36.3"): helm --kube-version */
	const char *const *api_versions; /* its discovery's group versions (and kinds): --api-versions */
	size_t napi_versions;
	kube_client *discovery;          /* api_versions NULL: a helm render asks this cluster's
	                                    discovery (kube_api_versions()) */
	gitsync_render_cache *cache;     /* NULL: every render runs */
	const char *owner;               /* the GitSync ("NS/NAME"), for the cache */
} gitsync_render_env;

/* What gitsync_render_commit() did. */
typedef struct {
	render_kind kind;                /* RENDER_PLAIN: no tool */
	int cached;                      /* the tool's output came from the cache */
	double seconds;                  /* the tool's run (of the cached run on a hit) */
	long peak_rss_kb;                /* the tool's peak RSS */
	manifest_errors *errs;           /* in: when set, gets every manifest error (plumbctl lists them) */
} gitsync_render_info;

/* The kind gitsync_render_commit() would run for the resolved path in rev:
 * spec.render when given; helm when spec.helm is set; kustomize when path
 * holds kustomization.yaml, kustomization.yml or Kustomization; helm when it
 * holds Chart.yaml; else plain (render_detect()'s rule; for a mirror asked
 * without reading the tree). gs may be NULL. */
int gitsync_render_kind(render_kind *out, const gitsync_revision *rev, const char *path,
	const gitsync_spec *gs);

/* The same as gitsync_render() for a revision, for Cluster cl: path
 * (spec.git.path as written, or plumbctl's folder) is resolved for cl
 * (gitsync_resolve_path(), ovr's name and labels winning); a plain path
 * reads the manifest files under it (source_read() of a mirror, the same
 * rule over a checkout's files); a kustomize or helm one
 * (gitsync_render_kind()) takes the whole tree (source_read_tree(), capped
 * by env->limits' max_tree_bytes and max_tree_files), runs render_run() with
 * env's tools and the cluster's version and API versions (through
 * env->cache when given), drops Helm's test, delete and rollback hooks, and
 * renders the output as one file named "<path> (kustomize build)" or
 * "<chart> (helm template)", so substitution, selectors, validation and
 * order apply to it as to plain files. A failure to read the mirror or to
 * make the sandbox is returned with *errmsg NULL (not the revision's
 * fault); a render error (a bad path, the tool's failure with its first
 * lines, a missing tool naming plumbd's flag, a timeout or a cap, a manifest
 * error in the output) sets *errmsg (caller frees). env, ovr and info may
 * be NULL. */
int gitsync_render_commit(gitsync_rendered *out, char **errmsg, const gitsync_revision *rev,
	const char *path, const gitsync_spec *gs, const gitsync_cluster *cl, const gitsync_render_env *env,
	const gitsync_render_overrides *ovr, gitsync_render_info *info);

/* The tool's stage alone, for plumbctl vet: path resolved and the kind
 * detected as gitsync_render_commit() does; for kustomize and helm *yaml
 * is the tool's output (caller frees) under the file name *name (caller
 * frees); for plain YAML both are NULL and nothing ran. On failure *errmsg
 * as in gitsync_render_commit(). */
int gitsync_render_tool(char **yaml, size_t *len, char **name, char **errmsg, const gitsync_revision *rev,
	const char *path, const gitsync_spec *gs, const gitsync_cluster *cl, const gitsync_render_env *env,
	const gitsync_render_overrides *ovr, gitsync_render_info *info);

void gitsync_rendered_free(gitsync_rendered *r);

/* The first errors of errs in one message ("a; b; and 3 more"). Caller frees. */
char *gitsync_join_errors(const manifest_errors *errs);

/* ---- apply ----------------------------------------------------------------------- */

/* Sets prune, allow_empty, drift and adopt of *out from gs (NULL: the
 * defaults, prune on and drift corrected), the rest zero: the caller adds
 * live, no_diffs, dry_run and origins. */
void gitsync_apply_opts(apply_opts *out, const gitsync_spec *gs);

#endif
