/*
 * pkg/render/files.c — a local folder read as a revision's files, for
 * plumbctl (render/diff of a checkout) and the tests: what pkg/source hands
 * over for a commit, read from disk instead. Runs on the caller's thread.
 */
#include "render/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"

typedef struct {
	source_files *fs;
	size_t alloc;
	size_t max_files, max_total, max_file;
} reader;

static int push(reader *r, char *path, char *data, size_t len)
{
	source_files *fs = r->fs;
	if (fs->count == r->alloc) {
		size_t n = r->alloc ? r->alloc * 2 : 64;
		source_file *p = realloc(fs->items, n * sizeof(*p));
		if (!p) {
			free(path);
			free(data);
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
		fs->items = p;
		r->alloc = n;
	}
	fs->items[fs->count++] = (source_file){ path, data, len };
	fs->total_size += len;
	return 0;
}

static int read_dir(reader *r, const char *root, const char *rel, int depth)
{
	char *full = rel[0] ? plumb_asprintf("%s/%s", root, rel) : plumb_strdup(root);
	DIR *d = NULL;
	struct dirent *e;
	int rc = 0;
	if (!full)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (depth > 64) {
		rc = plumb_error_set(PLUMB_EINVALID, "%s: folders nested over 64 deep", full);
		goto cleanup;
	}
	if (!(d = opendir(full))) {
		rc = plumb_error_set(errno == ENOENT ? PLUMB_ENOTFOUND : PLUMB_EIO, "%s: %s", full, strerror(errno));
		goto cleanup;
	}
	while ((e = readdir(d)) && !rc) {
		if (e->d_name[0] == '.') /* as pkg/source: dot files and folders (.git) are not read */
			continue;
		char *sub = rel[0] ? plumb_asprintf("%s/%s", rel, e->d_name) : plumb_strdup(e->d_name);
		char *p = sub ? plumb_asprintf("%s/%s", root, sub) : NULL;
		struct stat st;
		if (!p) {
			free(sub);
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			break;
		}
		if (lstat(p, &st) < 0) {
			rc = plumb_error_set(PLUMB_EIO, "%s: %s", p, strerror(errno));
		} else if (S_ISLNK(st.st_mode)) {
			rc = plumb_error_set(PLUMB_EINVALID, "%s is a symlink: a render reads files only", sub);
		} else if (S_ISDIR(st.st_mode)) {
			rc = read_dir(r, root, sub, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			char *data = NULL;
			size_t len = 0;
			if (r->fs->count >= r->max_files)
				rc = plumb_error_set(PLUMB_ETOOBIG, "%s: over %zu files", root, r->max_files);
			else if ((size_t)st.st_size > r->max_file)
				rc = plumb_error_set(PLUMB_ETOOBIG, "%s: over the cap of %zu bytes a file", sub, r->max_file);
			else if (r->fs->total_size + (size_t)st.st_size > r->max_total)
				rc = plumb_error_set(PLUMB_ETOOBIG, "%s: files over the cap of %zu bytes", root, r->max_total);
			else if (!(rc = plumb_file_read(&data, &len, p, r->max_file))) {
				rc = push(r, sub, data, len);
				sub = NULL;
			}
		}
		free(sub);
		free(p);
	}
cleanup:
	if (d)
		closedir(d);
	free(full);
	return rc;
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp(((const source_file *)a)->path, ((const source_file *)b)->path);
}

int render_files_read_dir(source_files **out, const char *dir, const source_limits *limits)
{
	reader r = { 0 };
	int rc;
	r.max_file = limits && limits->max_file_size ? limits->max_file_size : (size_t)4 << 20;
	r.max_total = limits && limits->max_total_size ? limits->max_total_size : (size_t)64 << 20;
	r.max_files = limits && limits->max_files ? limits->max_files : 10000;
	if (!(r.fs = calloc(1, sizeof(*r.fs))))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if ((rc = read_dir(&r, dir, "", 0))) {
		source_files_free(r.fs);
		return rc;
	}
	qsort(r.fs->items, r.fs->count, sizeof(*r.fs->items), cmp_path);
	*out = r.fs;
	return 0;
}
