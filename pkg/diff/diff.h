/*
 * pkg/diff — desired vs live objects: normalisation, field-level
 * comparison, a unified diff in YAML for humans, a JSON→YAML emitter, and
 * "who owns this field" from metadata.managedFields.
 *
 * Comparison semantics (diff_objects):
 *   - every field the desired object sets must be equal in the live object:
 *     JSON values (1 == 1.0, key order irrelevant, a desired null equals an
 *     absent field);
 *   - lists are compared element by element: same length, then each element
 *     with these same rules (so a server-defaulted field inside a list item,
 *     such as a container's terminationMessagePath, is not a difference); a
 *     list of another length differs as a whole (the path of the list);
 *   - a field set by the previous desired object (optional) that the desired
 *     object no longer sets is a difference while the live object still has it;
 *   - fields only the server or others set are not differences; status and
 *     the server-owned metadata fields (uid, resourceVersion, generation,
 *     creationTimestamp, managedFields, selfLink, deletionTimestamp,
 *     deletionGracePeriodSeconds) are never compared.
 *
 * Field paths: keys joined with '.', list indexes as [N]; a key that is not
 * made only of [A-Za-z0-9_-] is written as a JSON string in brackets:
 *   data.LOG_LEVEL
 *   spec.versions[0].schema.openAPIV3Schema.properties.x
 *   metadata.annotations["example.com/owner"]
 */
#ifndef PLUMB_DIFF_H
#define PLUMB_DIFF_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "base/base.h"

#define DIFF_MAX_PATHS 10000

typedef struct {
	char **paths;     /* in the desired object's field order */
	size_t count;
	size_t alloc;
	size_t dropped;   /* paths past DIFF_MAX_PATHS, counted only */
} diff_result;

void diff_result_free(diff_result *r);

/* JSON value equality: numbers by value (cJSON raw numbers included), objects
 * regardless of key order, arrays element by element. 1 when equal. */
int diff_json_equal(const cJSON *a, const cJSON *b);

/* A copy of live without what the server owns (the metadata fields above and
 * status) and without labels, annotations and finalizers the desired object
 * does not set (empty labels/annotations maps are dropped). desired may be
 * NULL (then all labels/annotations/finalizers go). Caller frees *out. */
int diff_normalize(cJSON **out, const cJSON *live, const cJSON *desired);

/* Compares desired with live (and previous, which may be NULL) with the
 * semantics above and appends every differing field path to out (which the
 * caller zero-initialises and frees with diff_result_free). live may be NULL
 * (the object does not exist: the result is the single path ""). Returns 0
 * (out->count == 0 means no difference) or PLUMB_ENOMEM. */
int diff_objects(diff_result *out, const cJSON *desired, const cJSON *live,
		const cJSON *previous);

/* Appends a field path segment to buf: a key (".key", "key" at the start, or
 * ["a.b/c"]) or an index ([3]). */
int diff_path_append_key(plumb_buf *buf, const char *key);
int diff_path_append_index(plumb_buf *buf, int index);

/* Appends v as block-style YAML (kubectl style: list items at their key's
 * indentation) ending with a newline. Strings that would read back as
 * another type are quoted; multi-line strings become `|` block scalars.
 * Reading the output back with manifest_yaml_to_json gives v again. */
int diff_to_yaml(plumb_buf *buf, const cJSON *v);

/* A unified diff (3 lines of context) between the live object as desired sees
 * it (live projected onto the fields desired and previous set) and the
 * desired object, both as YAML, with headers "--- live" and "+++ desired".
 * *out is "" when they are equal. Caller frees *out. */
int diff_render(char **out, const cJSON *desired, const cJSON *live, const cJSON *previous);

/* One manager that owns a field, from metadata.managedFields. */
typedef struct {
	char *manager;
	char *operation;   /* "Apply" | "Update" */
	char *time;        /* may be NULL */
	char *subresource; /* may be NULL */
} diff_owner;

/* Finds every managedFields entry of live whose fieldsV1 covers path (a
 * path as produced by diff_objects): f:<key> for map keys; for list items
 * k:{...} (the item whose key fields match the live item), v:<value> or
 * i:<index>; an entry that owns an enclosing field as a leaf (an atomic
 * list or map) owns everything below it. Caller frees with diff_owners_free.
 * PLUMB_EINVALID on a malformed path; 0 with *n == 0 when nobody owns it. */
int diff_field_owners(diff_owner **out, size_t *n, const cJSON *live, const char *path);
void diff_owners_free(diff_owner *owners, size_t n);

#endif
