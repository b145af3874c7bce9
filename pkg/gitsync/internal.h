/* pkg/gitsync's functions shared between its files. */
#ifndef PLUMB_GITSYNC_INTERNAL_H
#define PLUMB_GITSYNC_INTERNAL_H

#include "gitsync/gitsync.h"

/* gitsync_render(); *render_failed = 1 when manifest_render() itself
 * failed (the revision's fault: its messages are in errs). (pipeline.c) */
int gitsync_render_files(gitsync_rendered *out, int *render_failed, const gitsync_spec *gs,
	const gitsync_cluster *cl, const manifest_file *files, size_t nfiles,
	const gitsync_render_overrides *ovr, manifest_errors *errs);

#endif
