/*
 * pkg/manifest — files → validated objects for one cluster, in apply order.
 *
 * YAML is read the way kubectl reads it (sigs.k8s.io/yaml on top of go-yaml
 * v2; pkg/yamljson's YAMLJSON_GO_YAML typing), so that the JSON plumb sends
 * is the JSON kubectl would send:
 *   - plain scalars typed with YAML 1.1 rules: y/Y/yes/Yes/YES/on/On/ON/true/…
 *     and n/N/no/…/off/…/false/… are booleans; ~, null, Null, NULL and the
 *     empty scalar are null; ints in decimal, 0x hex, 0o and leading-0 octal,
 *     0b binary, with `_` separators; floats; integers past uint64 become
 *     floats; .inf/.nan are rejected (kubectl cannot encode them);
 *   - quoted and block scalars are strings; explicit !!str/!!int/… tags;
 *   - anchors, aliases and `<<` merge keys (go-yaml v2 order: a merge
 *     overrides keys written before it, later keys override the merge);
 *   - duplicate keys: the last one wins (as in kubectl);
 *   - non-string keys become strings (1 → "1", yes → "true");
 *   - multi-document files, empty documents skipped, `kind: List` expanded;
 *   - integers beyond ±2^53 are kept exactly (as cJSON raw numbers).
 * Input is capped (MANIFEST_MAX_FILE bytes a file, MANIFEST_MAX_NODES nodes
 * a document after alias expansion, MANIFEST_MAX_DEPTH nesting) and so is
 * what it expands to: every scalar and key is charged by its bytes (after
 * substitution), every alias by the bytes of what it repeats, before it is
 * copied, against MANIFEST_MAX_DOC_BYTES a document and
 * MANIFEST_MAX_REVISION_BYTES a revision (a manifest_set). A document past
 * its cap is an error at the line of the scalar or alias that crossed it.
 *
 * Substitution (${VAR}, ${VAR:=default}, $${VAR} for a literal) is applied to
 * scalar values and keys while parsing, not to the file's text: a value can
 * then never change the structure of a document (a value holding ": " or a
 * newline stays inside its string), every error names the exact
 * file:line:col of the scalar, and a plain scalar is typed after substitution
 * (`replicas: ${N}` with N=3 is the integer 3, as with Flux's text
 * substitution). Comments are never substituted. One consequence: inside a
 * flow collection `{a: ${X}}` is not valid YAML (a plain scalar cannot hold
 * '{' or '}' there); write `{a: "${X}"}` or use block style.
 */
#ifndef PLUMB_MANIFEST_H
#define PLUMB_MANIFEST_H

#include <stddef.h>
#include <cjson/cJSON.h>

#define MANIFEST_MAX_FILE   (16u * 1024 * 1024)
#define MANIFEST_MAX_NODES  (1u * 1000 * 1000)
/* Expanded bytes of one document. The API server refuses request bodies
 * over 3 MiB, so no single object can be larger; 4 MiB holds the largest
 * real CRDs (~1 MB) four times over, and a `kind: List` larger than that
 * can be split into documents. It also bounds what an alias bomb (a 1 MiB
 * string aliased 400 times) can copy before it fails. */
#define MANIFEST_MAX_DOC_BYTES (4u * 1024 * 1024)
/* Expanded bytes of a revision (every file of one render). 10,000 objects
 * of 2 KiB are 20 MiB; past 64 MiB the parsed objects alone would approach
 * the chart's 512 Mi memory limit. */
#define MANIFEST_MAX_REVISION_BYTES (64u * 1024 * 1024)
#define MANIFEST_MAX_DEPTH  200
#define MANIFEST_MAX_ERRORS 1000

#define MANIFEST_SELECTOR_ANNOTATION "plumb.dev/cluster-selector"
/* "disabled" on an object: its document is read without substitution (its
 * ${…} stay as written), e.g. a script or a template of another tool. On a
 * `kind: List` it covers the List's items; on an item of a List it is an
 * error (annotate the List, or make the item a document of its own). */
#define MANIFEST_SUBSTITUTE_ANNOTATION "plumb.dev/substitute"

/* ---- errors -------------------------------------------------------------- */

/* Every error of a parse/validate/render, each "file:line:col: message". */
typedef struct {
	char **msgs;
	size_t count;
	size_t alloc;
	size_t dropped;   /* errors past MANIFEST_MAX_ERRORS, counted only */
} manifest_errors;

void manifest_errors_free(manifest_errors *errs);

/* ---- objects ------------------------------------------------------------- */

typedef struct {
	cJSON *obj;        /* owned by the set */
	const char *file;  /* owned by the set */
	int line;          /* 1-based line of the document (or List item) */
	int col;
} manifest_object;

typedef struct {
	manifest_object *items;
	size_t count;
	size_t alloc;
	char **files;      /* the file names objects point to */
	size_t nfiles;
	size_t expanded_bytes; /* YAML bytes parsed into it, aliases expanded */
} manifest_set;

/* Frees every object and name; the set is empty (and reusable) after. */
void manifest_set_free(manifest_set *set);

/* ---- variables ----------------------------------------------------------- */

typedef struct {
	const char *name;
	const char *value;
} manifest_var;

/* Variables for substitution. NULL vars (or enabled == 0) means no
 * substitution at all: `${X}` stays text (what `vet` does). */
typedef struct {
	int enabled;
	const manifest_var *vars;   /* GitSync substitute map + --set */
	size_t nvars;
	const char *cluster_name;   /* ${CLUSTER_NAME} */
	const manifest_var *labels; /* ${CLUSTER_LABEL_<key>} */
	size_t nlabels;
} manifest_vars;

/* ---- parsing ------------------------------------------------------------- */

/* Parses one file (YAML or JSON, any number of documents) and appends its
 * objects to set. Errors are appended to errs ("file:line:col: message");
 * all documents of the file are attempted. Returns 0, PLUMB_EINVALID when
 * errs received at least one error from this file, PLUMB_ETOOBIG past the
 * size cap (also recorded in errs), PLUMB_ENOMEM. vars may be NULL. */
int manifest_parse(manifest_set *set, const char *file, const char *data,
		size_t len, const manifest_vars *vars, manifest_errors *errs);

/* Converts one YAML document to JSON with the rules above (no substitution),
 * for tools and tests. A stream with several documents is an error; an empty
 * one gives a cJSON null. Caller frees *out with cJSON_Delete. */
int manifest_yaml_to_json(cJSON **out, const char *data, size_t len);

/* 1 when the plain (unquoted) scalar text s would be read as a string, 0
 * when as a number, boolean or null: emitters quote the latter. */
int manifest_plain_is_string(const char *s, size_t n);

/* ---- validation ---------------------------------------------------------- */

/* Checks a whole revision: every object has apiVersion, kind, metadata.name
 * (and valid names: DNS-1123 subdomains, DNS labels for Namespaces),
 * namespaces are DNS labels, and no (group, kind, namespace, name) appears
 * twice (the error names both files). Appends every error; returns 0 or
 * PLUMB_EINVALID. */
int manifest_validate(const manifest_set *set, manifest_errors *errs);

/* ---- label selectors ----------------------------------------------------- */

typedef struct manifest_selector manifest_selector;

/* Parses Kubernetes label-selector syntax: comma-separated requirements
 * `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. The empty
 * string selects everything. Caller frees with manifest_selector_free.
 * PLUMB_EINVALID with the column of the problem. */
int manifest_selector_parse(manifest_selector **out, const char *text);
/* 1 when labels match every requirement, else 0. */
int manifest_selector_matches(const manifest_selector *sel,
		const manifest_var *labels, size_t nlabels);
void manifest_selector_free(manifest_selector *sel);

/* A selector built from parts (a GitSync's clusterSelector): an empty one
 * selects everything; manifest_selector_add() ANDs a requirement on key
 * (values copied; unchecked, as they come from an API object). */
typedef enum {
	MANIFEST_SELECTOR_IN,
	MANIFEST_SELECTOR_NOTIN,
	MANIFEST_SELECTOR_EXISTS,
	MANIFEST_SELECTOR_NOTEXISTS,
} manifest_selector_op;
int manifest_selector_new(manifest_selector **out);
int manifest_selector_add(manifest_selector *sel, const char *key, manifest_selector_op op,
		const char *const *values, size_t nvalues);

/* ---- rendering ----------------------------------------------------------- */

/* Tells whether apiVersion/kind is cluster-scoped: 1 yes, 0 namespaced,
 * -1 unknown (then the built-in table of well-known kinds decides, and a
 * kind unknown there too is namespaced). */
typedef int (*manifest_scope_fn)(void *ctx, const char *api_version, const char *kind);

typedef struct {
	const char *file;
	const char *data;
	size_t len;
} manifest_file;

typedef struct {
	manifest_vars vars;            /* enabled = 1 for rendering */
	const char *default_namespace; /* for namespaced objects without one; NULL: "default" */
	manifest_scope_fn scope;       /* optional */
	void *scope_ctx;
} manifest_render_opts;

/* Built-in answer: 1 for well-known cluster-scoped kinds, 0 otherwise. */
int manifest_kind_is_cluster_scoped(const char *api_version, const char *kind);

/* What one cluster gets from a revision: parse every file with
 * substitution, validate, keep objects whose cluster-selector annotation
 * matches the cluster's labels (and strip that annotation), set the default
 * namespace on namespaced objects that have none (and remove
 * metadata.namespace from cluster-scoped ones), then sort into apply order:
 * CustomResourceDefinitions, Namespaces, other cluster-scoped, namespaced,
 * stable within each class. Any error fails the whole revision: *out is
 * left empty, every error is in errs, PLUMB_EINVALID is returned. */
int manifest_render(manifest_set *out, const manifest_file *files, size_t nfiles,
		const manifest_render_opts *opts, manifest_errors *errs);

/* Validates a revision without a cluster: parse without substitution,
 * validate, and check that every cluster-selector annotation parses. */
int manifest_vet(const manifest_file *files, size_t nfiles, manifest_errors *errs);

/* Reads every *.yaml, *.yml and *.json file under dir (recursively, hidden
 * entries skipped, sorted by path) into *out (paths relative to dir).
 * Caller frees with manifest_files_free. */
int manifest_files_read_dir(manifest_file **out, size_t *nout, const char *dir);
void manifest_files_free(manifest_file *files, size_t n);

#endif
