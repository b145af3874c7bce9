/* Shared between the files of pkg/yamljson only: the scalar rules of
 * scalar.c, which yamljson.c applies to events. */
#ifndef PLUMB_YAMLJSON_INTERNAL_H
#define PLUMB_YAMLJSON_INTERNAL_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "yamljson/yamljson.h"

enum { R_STR, R_NULL, R_BOOL, R_INT, R_UINT, R_FLOAT, R_MERGE };

typedef struct {
	int kind;
	int b;
	long long i;
	unsigned long long u;
	double f;
} resolved;

/* Types a plain scalar like go-yaml v2 resolve() with an empty tag. */
void yamljson_resolve_plain(resolved *r, const char *s, size_t n);
/* The YAMLJSON_KUBECONFIG subset of it (see yamljson.h). */
void yamljson_resolve_kubeconfig(resolved *r, const char *s, size_t n);
/* 1 when s reads as a go-yaml v2 !!timestamp. */
int yamljson_valid_timestamp(const char *s, size_t n);
/* !!binary: *out the decoded text (caller frees), NULL when not base64;
 * PLUMB_ENOMEM. */
int yamljson_decode_binary(char **out, size_t *outlen, const char *s, size_t n);
/* Numbers as kubectl prints them (raw numbers where a double would not). */
cJSON *yamljson_make_int(long long v);
cJSON *yamljson_make_float(double d);
/* A float map key as sigs.k8s.io/yaml writes it. */
void yamljson_format_float32_g(char *out, size_t outlen, double f);

#endif
