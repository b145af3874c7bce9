/*
 * pkg/yamljson — YAML (or JSON) text → cJSON: plumb's one YAML reader, used
 * by pkg/manifest for manifests and by pkg/kube for kubeconfigs. It is
 * event-based on libyaml, so that anchors, merge keys, substitution, caps and
 * positions are all under its control. (The prefix is yamljson_, because
 * libyaml owns yaml_.) Pure functions: no state outside a call, any thread.
 *
 * Two typings, one set of scalar rules:
 *
 * YAMLJSON_GO_YAML (manifests) reads YAML the way kubectl does
 * (sigs.k8s.io/yaml on top of go-yaml v2):
 *   - plain scalars typed with YAML 1.1 rules: y/Y/yes/Yes/YES/on/On/ON/true/…
 *     and n/N/no/…/off/…/false/… are booleans; ~, null, Null, NULL and the
 *     empty scalar are null; ints in decimal, 0x hex, 0o and leading-0 octal,
 *     0b binary, with `_` separators; floats; integers past uint64 become
 *     floats; .inf/.nan are rejected (kubectl cannot encode them);
 *   - quoted and block scalars are strings; explicit !!str/!!int/!!bool/
 *     !!float/!!null/!!merge tags, !!binary decoded, !!timestamp checked;
 *     the "\/" escape (which go-yaml rejects) is an error;
 *   - anchors, aliases and `<<` merge keys (go-yaml v2 order: a merge
 *     overrides keys written before it, later keys override the merge);
 *   - duplicate keys: the last one wins (as in kubectl);
 *   - non-string keys become strings (1 → "1", yes → "true", 1.5 → "1.5");
 *   - integers beyond ±2^53 are kept exactly (as cJSON raw numbers).
 *
 * YAMLJSON_KUBECONFIG is the subset of it plumb has always read kubeconfigs
 * with (a kubeconfig's strings — servers, tokens, base64 data, exec args —
 * must come out as the text written, whatever they look like):
 *   - a plain scalar is null when GO_YAML types it null (~, null, Null, NULL,
 *     empty), a boolean only when GO_YAML types it a boolean and it is spelled
 *     true/True/TRUE/false/False/FALSE, and otherwise the string written:
 *     yes, on, 0x1F, 012, 1e3, .inf and `<<` stay strings (so there are no
 *     numbers and no merge keys);
 *   - quoted and block scalars are strings; tags are not looked at (a plain
 *     scalar is typed by its text, !!binary text stays base64);
 *   - keys are the text written; the "\/" escape is accepted (as libyaml
 *     does); anchors, aliases, duplicate keys and the caps as above.
 *
 * Every scalar and key is charged by its bytes (after substitution), every
 * alias by the bytes and nodes of what it repeats, before it is copied, against
 * the caps in yamljson_opts; a document past a cap is an error at the line
 * of the scalar or alias that crossed it.
 *
 * Substitution (manifests): with opts->lookup, ${VAR}, ${VAR:=default} and
 * $${VAR} (a literal ${VAR}) are replaced in scalar values and keys while
 * parsing, before a plain scalar is typed; lookup says what VAR is.
 */
#ifndef PLUMB_YAMLJSON_H
#define PLUMB_YAMLJSON_H

#include <stddef.h>
#include <cjson/cJSON.h>

typedef enum {
	YAMLJSON_GO_YAML = 0,
	YAMLJSON_KUBECONFIG = 1,
} yamljson_typing;

/* The value of variable name[0..n) (not NUL-terminated), or NULL when it is
 * not defined. The result must live until the call that asked returns. */
typedef const char *(*yamljson_lookup_fn)(void *ctx, const char *name, size_t n);

typedef struct {
	yamljson_typing typing;
	size_t max_nodes;        /* nodes a document, aliases expanded */
	size_t max_doc_bytes;    /* scalar and key bytes a document, aliases expanded */
	int max_depth;           /* nesting of a document */
	size_t *rev_bytes;       /* bytes charged across calls (a revision); NULL: none */
	size_t max_rev_bytes;    /* cap on *rev_bytes */
	yamljson_lookup_fn lookup; /* substitution; NULL: ${X} stays text */
	void *lookup_ctx;
	/* With lookup: asked at the start of each document (index as in
	 * yamljson_doc) with lookup_ctx; 0 reads that document without
	 * substitution (its text literal, $${ included). NULL: every document. */
	int (*substitute_doc)(void *ctx, size_t index);
} yamljson_opts;

/* Where an error is: 1-based line and column (0 when there is none). */
typedef struct {
	int code;                /* PLUMB_EINVALID, PLUMB_ETOOBIG, PLUMB_ENOMEM */
	int line, col;
	char msg[768];
} yamljson_error;

/* One document of a stream, for yamljson_stream's callback. */
typedef struct {
	size_t index;            /* 0-based, counting every document of the stream */
	int line, col;           /* where its root node starts */
	/* Start of each entry of the root mapping's `items` sequence (a List's
	 * items), in order; nitems 0 when there is none. */
	const int *item_lines, *item_cols;
	size_t nitems;
} yamljson_doc;

/* root is owned by the callback (also when it fails). Non-zero: an error of
 * this document; the rest of it is skipped. */
typedef int (*yamljson_doc_fn)(void *ctx, cJSON *root, const yamljson_doc *doc);
typedef void (*yamljson_err_fn)(void *ctx, const yamljson_error *err);

/* Reads every document of a stream, as kubectl's multi-document reader does
 * (%YAML and %TAG directives are errors). An empty document gives a cJSON
 * null. A semantic error is reported through on_err and reading resumes at
 * the next document; a syntax error ends the stream (after on_err). Returns
 * 0 or the first error code seen. */
int yamljson_stream(const char *data, size_t len, const yamljson_opts *opts,
		yamljson_doc_fn on_doc, yamljson_err_fn on_err, void *ctx);

/* Reads the first document only, as go-yaml's Unmarshal does: what follows
 * it is not read. *out: the document (caller frees with cJSON_Delete), NULL
 * when the stream has none (empty, or comments only). On failure returns a
 * negative code, fills *err and leaves *out NULL; plumb_error_last() is not
 * set (the caller words the message). */
int yamljson_first(cJSON **out, yamljson_error *err, const char *data, size_t len,
		const yamljson_opts *opts);

/* 1 when the plain (unquoted) scalar text s would be read as a string by
 * YAMLJSON_GO_YAML, 0 when as a number, boolean or null: emitters quote the
 * latter. */
int yamljson_plain_is_string(const char *s, size_t n);

#endif
