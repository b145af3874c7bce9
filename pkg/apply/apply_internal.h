/*
 * pkg/apply internals shared by its .c files. Not a public API.
 */
#ifndef PLUMB_APPLY_INTERNAL_H
#define PLUMB_APPLY_INTERNAL_H

#include "base/base.h"
#include "apply/apply.h"

#include <stdint.h>
#include <stdio.h>
#include <strings.h>

/* ---- inventory.c ---- */
typedef struct {
	apply_inventory inv;   /* normalised */
	char **shard_names;    /* further shards the head references */
	size_t nshard_names;
	char *head_rv;         /* resourceVersion of the head we read/wrote */
	char *text;
	int exists;            /* a head exists in the cluster */
	int loaded;
} apply_inv_state;

void apply_inv_state_clear(apply_inv_state *st);
/* Reads the head (one GET) and, when its resourceVersion moved, the shards. */
int apply_inv_load(apply_inv_state *st, kube_client *c, const char *ns,
	const char *head_name, const char *gitsync_id);
/* Writes next (normalised) and updates st. writes counts requests. */
int apply_inv_store(apply_inv_state *st, kube_client *c, const char *ns,
	const char *head_name, const char *gitsync_id, const char *label,
	const apply_inventory *next, size_t *writes);
int apply_inv_equal(const apply_inventory *a, const apply_inventory *b);

/* ---- drift.c ---- */
/* A copy of obj restricted to the paths tmpl sets (maps recursively, other
 * values whole). NULL when obj lacks everything. */
cJSON *apply_project(const cJSON *obj, const cJSON *tmpl);

typedef struct {
	apply_field *items;
	size_t count;
	size_t alloc;
} apply_fields;
void apply_fields_free(apply_fields *f);

/* Compares live (restricted to want's paths) with want; appends every
 * differing path to out, with the responsible manager from live's
 * managedFields when with_manager. Returns the number of differences or a
 * negative code. */
int apply_compare(apply_fields *out, const cJSON *want, const cJSON *live, int with_manager);

/* 1 when every field manager of obj other than "plumb" (Apply) owns only
 * status; i.e. nobody but plumb has written the object's spec/data. */
int apply_only_plumb_wrote(const cJSON *obj);
/* 1 when every leaf path of tmpl (maps recursively; lists as leaves;
 * empty lists/maps and nulls ignored) exists in obj. */
int apply_has_paths(const cJSON *obj, const cJSON *tmpl);

/* Unified YAML diff of live (projected onto desired's fields) against
 * desired; *out NULL when equal. live may be NULL (creation). */
int apply_unified_diff(char **out, const cJSON *live, const cJSON *desired);

#endif
