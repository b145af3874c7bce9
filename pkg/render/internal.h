/* pkg/render/internal.h — what render.c and exec.c share; not for other modules. */
#ifndef PLUMB_RENDER_INTERNAL_H
#define PLUMB_RENDER_INTERNAL_H

#include "render/render.h"

/* A NULL-terminated vector of owned strings. */
typedef struct {
	char **items;
	size_t len, alloc;
} strvec;

/* Appends s (owned; NULL means out of memory). 0 or PLUMB_ENOMEM (s freed). */
int strvec_push(strvec *v, char *s);
/* The vector, NULL-terminated (an empty one when nothing was pushed); v is empty after. */
char **strvec_detach(strvec *v);
void strvec_free(strvec *v);

/* 0 when path is a relative path of plain components, else PLUMB_EINVALID. */
int render_path_check(const char *path);

/* A fresh work directory (tmp_dir/plumb-render-XXXXXX, 0700, with home/ and
 * tree/). Caller removes it with workdir_remove() and frees *out. */
int workdir_create(char **out, const char *tmp_dir);
/* Removes dir and everything in it. Never fails (a failure is logged). */
void workdir_remove(const char *dir);
/* Writes files into the folder tree (files 0444, folders 0555 at the end). */
int workdir_materialise(const char *tree, const source_files *files, size_t max_bytes, size_t max_files);

#endif
