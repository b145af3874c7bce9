/*
 * pkg/source: reading the manifest files under a path at a commit straight
 * from the object database (source_read), within the size and count caps.
 * No lock, any thread; each call opens the mirror on its own.
 */
#include "source/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

#include "base/base.h"

#define SOURCE_TREE_DEPTH_MAX 64
#define SOURCE_DEFAULT_FILE_MAX ((size_t)4 * 1024 * 1024)
#define SOURCE_DEFAULT_TOTAL_MAX ((size_t)64 * 1024 * 1024)
#define SOURCE_DEFAULT_FILES_MAX ((size_t)10000)

typedef struct {
	git_odb *odb;
	source_limits lim;
	source_file *items;
	size_t count, cap, total;
	int depth;
	int all;          /* every file, not only manifests (source_read_tree) */
	const char *what; /* "under path" or "in the tree", for the cap messages */
} read_ctx;

int source_lookup_commit_tree(git_tree **out, git_repository *repo, const char *commit, const char *shown)
{
	git_oid oid;
	git_commit *c = NULL;
	int error;

	if (!commit || strlen(commit) != GIT_OID_HEXSZ || git_oid_fromstr(&oid, commit) < 0)
		return plumb_error_set(PLUMB_EINVALID, "source: \"%.64s\" is not a full commit id", commit ? commit : "");
	if (git_commit_lookup(&c, repo, &oid) < 0)
		return plumb_error_set(PLUMB_ENOTFOUND, "source: commit %s not found in %s", commit, shown);
	error = git_commit_tree(out, c);
	git_commit_free(c);
	if (error < 0)
		return plumb_error_set(PLUMB_ERROR, "source: commit %s has no readable tree: %s", commit, source_git_msg());
	return 0;
}

static int add_blob(read_ctx *rc, const char *path, const git_oid *oid)
{
	git_odb_object *obj = NULL;
	size_t size = 0;
	git_object_t type;
	source_file f = { NULL, NULL, 0 };
	int error = 0;

	if (git_odb_read_header(&size, &type, rc->odb, oid) < 0)
		return plumb_error_set(PLUMB_ERROR, "source: cannot read %s: %s", path, source_git_msg());
	if (size > rc->lim.max_file_size)
		return plumb_error_set(PLUMB_ETOOBIG, "source: file %s is %zu bytes, over the %zu-byte file size cap",
			path, size, rc->lim.max_file_size);
	if (rc->count + 1 > rc->lim.max_files)
		return plumb_error_set(PLUMB_ETOOBIG, "source: more than %zu files %s (file count cap)",
			rc->lim.max_files, rc->what);
	if (rc->total + size > rc->lim.max_total_size)
		return plumb_error_set(PLUMB_ETOOBIG,
			"source: files %s add up to more than %zu bytes (total size cap), at %s",
			rc->what, rc->lim.max_total_size, path);
	if (git_odb_read(&obj, rc->odb, oid) < 0)
		return plumb_error_set(PLUMB_ERROR, "source: cannot read %s: %s", path, source_git_msg());
	size = git_odb_object_size(obj);
	if (size > rc->lim.max_file_size) { /* the header lied */
		error = plumb_error_set(PLUMB_ETOOBIG, "source: file %s is over the file size cap", path);
		goto cleanup;
	}
	if (rc->count == rc->cap) {
		size_t ncap = rc->cap ? rc->cap * 2 : 64;
		source_file *t = realloc(rc->items, ncap * sizeof(*t));
		if (!t) {
			error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
			goto cleanup;
		}
		rc->items = t;
		rc->cap = ncap;
	}
	f.path = plumb_strdup(path);
	f.data = malloc(size + 1);
	if (!f.path || !f.data) {
		free(f.path);
		free(f.data);
		error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
		goto cleanup;
	}
	memcpy(f.data, git_odb_object_data(obj), size);
	f.data[size] = '\0';
	f.len = size;
	rc->items[rc->count++] = f;
	rc->total += size;
cleanup:
	git_odb_object_free(obj);
	return error;
}

static int walk_tree(read_ctx *rc, git_repository *repo, git_tree *tree, const char *prefix)
{
	size_t n = git_tree_entrycount(tree);
	char path[SOURCE_PATH_MAX + 1];
	int error = 0;

	if (++rc->depth > SOURCE_TREE_DEPTH_MAX) {
		error = plumb_error_set(PLUMB_EINVALID, "source: folders under path nest deeper than %d",
			SOURCE_TREE_DEPTH_MAX);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(tree, i);
		const char *name = git_tree_entry_name(e);
		git_filemode_t mode = git_tree_entry_filemode(e);
		int len;

		if (name[0] == '.')
			continue;
		len = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "/" : "", name);
		if (len < 0 || (size_t)len >= sizeof(path)) {
			error = plumb_error_set(PLUMB_EINVALID, "source: a path under %.128s is over %d bytes",
				prefix, SOURCE_PATH_MAX);
			goto done;
		}
		switch (mode) {
		case GIT_FILEMODE_TREE: {
			git_tree *sub = NULL;
			if (git_tree_lookup(&sub, repo, git_tree_entry_id(e)) < 0) {
				error = plumb_error_set(PLUMB_ERROR, "source: cannot read folder %s: %s", path, source_git_msg());
				goto done;
			}
			error = walk_tree(rc, repo, sub, path);
			git_tree_free(sub);
			if (error < 0)
				goto done;
			break;
		}
		case GIT_FILEMODE_LINK:
			if (rc->all)
				break; /* not materialised: a render that needs it fails naming it */
			error = plumb_error_set(PLUMB_EINVALID, "source: %s is a symlink: symlinks under path are not followed", path);
			goto done;
		case GIT_FILEMODE_COMMIT:
			if (rc->all)
				break;
			error = plumb_error_set(PLUMB_EINVALID, "source: %s is a submodule: submodules under path are not supported", path);
			goto done;
		default:
			if ((rc->all || source_path_is_manifest(name)) && (error = add_blob(rc, path, git_tree_entry_id(e))) < 0)
				goto done;
			break;
		}
	}
done:
	rc->depth--;
	return error;
}

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const source_file *)a)->path, ((const source_file *)b)->path);
}

/* rc's caps from limits (NULL or 0 fields: the defaults). */
static void ctx_limits(read_ctx *rc, const source_limits *limits)
{
	rc->lim.max_file_size = limits && limits->max_file_size ? limits->max_file_size : SOURCE_DEFAULT_FILE_MAX;
	rc->lim.max_total_size = limits && limits->max_total_size ? limits->max_total_size : SOURCE_DEFAULT_TOTAL_MAX;
	rc->lim.max_files = limits && limits->max_files ? limits->max_files : SOURCE_DEFAULT_FILES_MAX;
}

/* The files rc read, sorted, into *out (rc keeps none on success). */
static int ctx_take(source_files **out, read_ctx *rc)
{
	source_files *files;
	if (rc->count > 1)
		qsort(rc->items, rc->count, sizeof(*rc->items), file_cmp);
	if (!(files = calloc(1, sizeof(*files))))
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	files->items = rc->items;
	files->count = rc->count;
	files->total_size = rc->total;
	rc->items = NULL;
	rc->count = 0;
	*out = files;
	return 0;
}

/* Frees what rc still holds. */
static void ctx_clear(read_ctx *rc)
{
	for (size_t i = 0; i < rc->count; i++) {
		free(rc->items[i].path);
		free(rc->items[i].data);
	}
	free(rc->items);
	git_odb_free(rc->odb);
}

void source_files_free(source_files *files)
{
	if (!files)
		return;
	for (size_t i = 0; i < files->count; i++) {
		free(files->items[i].path);
		free(files->items[i].data);
	}
	free(files->items);
	free(files);
}

/* Opens url's mirror and the tree of commit in it (the caller frees both,
 * also on failure); with odb, the object database for reading blobs too. */
static int open_commit_tree(git_repository **repo, git_tree **root, git_odb **odb, source_cache *cache,
	const char *url, const char *cred_id, const char *commit)
{
	char shown[URL_SHOW];
	int error;
	if ((error = source_open_mirror(repo, cache, url, cred_id)) < 0)
		return error;
	source_url_redact(shown, sizeof(shown), url);
	if ((error = source_lookup_commit_tree(root, *repo, commit, shown)) < 0)
		return error;
	if (odb && git_repository_odb(odb, *repo) < 0)
		return plumb_error_set(PLUMB_ERROR, "source: cannot open the object database: %s", source_git_msg());
	return 0;
}

int source_read(source_files **out, source_cache *cache, const char *url, const char *cred_id,
	const char *commit, const char *path, const source_limits *limits)
{
	git_repository *repo = NULL;
	git_tree *root = NULL, *sub = NULL;
	git_tree_entry *entry = NULL;
	read_ctx rc;
	char shown[URL_SHOW], *norm = NULL;
	int error = 0;

	memset(&rc, 0, sizeof(rc));
	rc.what = "under path";
	if (!out)
		return plumb_error_set(PLUMB_EINVALID, "source: read: bad arguments");
	ctx_limits(&rc, limits);
	if ((error = source_path_normalize(&norm, path)) < 0)
		return error;
	if ((error = open_commit_tree(&repo, &root, &rc.odb, cache, url, cred_id, commit)) < 0)
		goto cleanup;
	if (!*norm) {
		error = walk_tree(&rc, repo, root, "");
	} else {
		if (git_tree_entry_bypath(&entry, root, norm) < 0) {
			source_url_redact(shown, sizeof(shown), url);
			error = plumb_error_set(PLUMB_ENOTFOUND, "source: path \"%.256s\" not found at commit %.12s of %s",
				norm, commit, shown);
			goto cleanup;
		}
		switch (git_tree_entry_filemode(entry)) {
		case GIT_FILEMODE_TREE:
			if (git_tree_lookup(&sub, repo, git_tree_entry_id(entry)) < 0) {
				error = plumb_error_set(PLUMB_ERROR, "source: cannot read %s: %s", norm, source_git_msg());
				goto cleanup;
			}
			error = walk_tree(&rc, repo, sub, norm);
			break;
		case GIT_FILEMODE_LINK:
			error = plumb_error_set(PLUMB_EINVALID, "source: path %.256s is a symlink: not followed", norm);
			break;
		case GIT_FILEMODE_COMMIT:
			error = plumb_error_set(PLUMB_EINVALID, "source: path %.256s is a submodule: not supported", norm);
			break;
		default:
			if (!source_path_is_manifest(norm))
				error = plumb_error_set(PLUMB_EINVALID,
					"source: path %.256s is a file but not .yaml, .yml or .json", norm);
			else
				error = add_blob(&rc, norm, git_tree_entry_id(entry));
			break;
		}
	}
	if (error < 0)
		goto cleanup;
	error = ctx_take(out, &rc);
cleanup:
	ctx_clear(&rc);
	git_tree_entry_free(entry);
	git_tree_free(sub);
	git_tree_free(root);
	git_repository_free(repo);
	free(norm);
	return error;
}

int source_read_tree(source_files **out, source_cache *cache, const char *url, const char *cred_id,
	const char *commit, const source_limits *limits)
{
	git_repository *repo = NULL;
	git_tree *root = NULL;
	read_ctx rc;
	int error = 0;

	memset(&rc, 0, sizeof(rc));
	rc.all = 1;
	rc.what = "in the tree";
	if (!out)
		return plumb_error_set(PLUMB_EINVALID, "source: read tree: bad arguments");
	*out = NULL;
	ctx_limits(&rc, limits);
	if ((error = open_commit_tree(&repo, &root, &rc.odb, cache, url, cred_id, commit)) < 0)
		goto cleanup;
	if ((error = walk_tree(&rc, repo, root, "")) < 0)
		goto cleanup;
	error = ctx_take(out, &rc);
cleanup:
	ctx_clear(&rc);
	git_tree_free(root);
	git_repository_free(repo);
	return error;
}

int source_path_exists(int *exists, source_cache *cache, const char *url, const char *cred_id,
	const char *commit, const char *path)
{
	git_repository *repo = NULL;
	git_tree *root = NULL;
	git_tree_entry *entry = NULL;
	char *norm = NULL;
	int error;

	*exists = 0;
	if ((error = source_path_normalize(&norm, path)) < 0)
		return error;
	if ((error = open_commit_tree(&repo, &root, NULL, cache, url, cred_id, commit)) < 0)
		goto cleanup;
	if (*norm && git_tree_entry_bypath(&entry, root, norm) == 0 &&
	    git_tree_entry_filemode(entry) != GIT_FILEMODE_TREE &&
	    git_tree_entry_filemode(entry) != GIT_FILEMODE_COMMIT)
		*exists = 1;
cleanup:
	git_tree_entry_free(entry);
	git_tree_free(root);
	git_repository_free(repo);
	free(norm);
	return error;
}
