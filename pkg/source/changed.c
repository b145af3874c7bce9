/*
 * pkg/source: change detection — whether anything plumb reads under a path
 * changed between two commits (source_changed), or anything at all
 * (source_changed_tree, for rendered GitSyncs). No lock, any thread.
 */
#include "source/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

#include "base/base.h"

static int relevant_delta_path(const char *path, uint16_t mode)
{
	if (mode == GIT_FILEMODE_LINK || mode == GIT_FILEMODE_COMMIT) {
		for (const char *p = path; p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
			if (*p == '.')
				return 0;
		return 1;
	}
	return source_path_is_manifest(path);
}

/* source_changed(); any: every change counts (source_changed_tree()). */
static int changed_under(int *changed, source_cache *cache, const char *url, const char *cred_id,
	const char *old_commit, const char *new_commit, const char *path, int any)
{
	git_repository *repo = NULL;
	git_tree *oldroot = NULL, *newroot = NULL, *oldt = NULL, *newt = NULL;
	git_tree_entry *olde = NULL, *newe = NULL;
	git_diff *diff = NULL;
	char shown[URL_SHOW], *norm = NULL;
	int error = 0, result = 1, r;

	if (!changed)
		return plumb_error_set(PLUMB_EINVALID, "source: changed: bad arguments");
	if ((error = source_path_normalize(&norm, path)) < 0)
		return error;
	if ((error = source_open_mirror(&repo, cache, url, cred_id)) < 0)
		goto cleanup;
	source_url_redact(shown, sizeof(shown), url);
	if ((error = source_lookup_commit_tree(&newroot, repo, new_commit, shown)) < 0)
		goto cleanup;
	r = source_lookup_commit_tree(&oldroot, repo, old_commit, shown);
	if (r == PLUMB_ENOTFOUND) {
		plumb_error_clear();
		goto done; /* nothing to compare with: changed */
	}
	if (r < 0) {
		error = r;
		goto cleanup;
	}
	if (!*norm) {
		oldt = oldroot;
		newt = newroot;
		oldroot = newroot = NULL;
	} else {
		int ro = git_tree_entry_bypath(&olde, oldroot, norm);
		int rn = git_tree_entry_bypath(&newe, newroot, norm);
		if (ro < 0 && rn < 0) {
			result = 0;
			goto done;
		}
		if (ro < 0 || rn < 0)
			goto done;
		if (!git_oid_cmp(git_tree_entry_id(olde), git_tree_entry_id(newe)) &&
			git_tree_entry_filemode(olde) == git_tree_entry_filemode(newe)) {
			result = 0;
			goto done;
		}
		if (git_tree_entry_filemode(olde) != GIT_FILEMODE_TREE ||
			git_tree_entry_filemode(newe) != GIT_FILEMODE_TREE)
			goto done; /* path is a file (or became one): its id changed */
		if (git_tree_lookup(&oldt, repo, git_tree_entry_id(olde)) < 0 ||
			git_tree_lookup(&newt, repo, git_tree_entry_id(newe)) < 0) {
			error = plumb_error_set(PLUMB_ERROR, "source: cannot read %s: %s", norm, source_git_msg());
			goto cleanup;
		}
	}
	if (!git_oid_cmp(git_tree_id(oldt), git_tree_id(newt))) {
		result = 0;
		goto done;
	}
	if (any)
		goto done; /* the trees differ: changed */
	if (git_diff_tree_to_tree(&diff, repo, oldt, newt, NULL) < 0) {
		error = plumb_error_set(PLUMB_ERROR, "source: cannot compare trees: %s", source_git_msg());
		goto cleanup;
	}
	result = 0;
	for (size_t i = 0; i < git_diff_num_deltas(diff) && !result; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		if ((d->old_file.path && d->status != GIT_DELTA_ADDED &&
				relevant_delta_path(d->old_file.path, d->old_file.mode)) ||
			(d->new_file.path && d->status != GIT_DELTA_DELETED &&
				relevant_delta_path(d->new_file.path, d->new_file.mode)))
			result = 1;
	}
done:
	*changed = result;
cleanup:
	git_diff_free(diff);
	git_tree_entry_free(olde);
	git_tree_entry_free(newe);
	git_tree_free(oldt);
	git_tree_free(newt);
	git_tree_free(oldroot);
	git_tree_free(newroot);
	git_repository_free(repo);
	free(norm);
	return error;
}


int source_changed(int *changed, source_cache *cache, const char *url, const char *cred_id,
	const char *old_commit, const char *new_commit, const char *path)
{
	return changed_under(changed, cache, url, cred_id, old_commit, new_commit, path, 0);
}

int source_changed_tree(int *changed, source_cache *cache, const char *url, const char *cred_id,
	const char *old_commit, const char *new_commit)
{
	return changed_under(changed, cache, url, cred_id, old_commit, new_commit, "", 1);
}
