/* Shared between the files of pkg/manifest only. */
#ifndef PLUMB_MANIFEST_INTERNAL_H
#define PLUMB_MANIFEST_INTERNAL_H

#include "manifest/manifest.h"

/* Appends "file:line:col: message" (printf-style message) to errs. */
int manifest_errors_addf(manifest_errors *errs, const char *file, int line,
		int col, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Adds a copy of name to set->files and returns the stored pointer. */
const char *manifest_set_intern_file(manifest_set *set, const char *file);
/* Appends obj (ownership moves to the set, also on failure). */
int manifest_set_push(manifest_set *set, cJSON *obj, const char *file, int line, int col);

#endif
