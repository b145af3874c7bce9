/*
 * pkg/source: refs — a branch, tag or commit of a mirror resolved to a
 * commit (source_resolve), with the reachability check for commits. Reads
 * open the mirror on their own: no lock, any thread.
 */
#include "source/internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

#include "base/base.h"

void source_commit_clear(source_commit *commit)
{
	if (!commit)
		return;
	free(commit->author_name);
	free(commit->author_email);
	free(commit->subject);
	memset(commit, 0, sizeof(*commit));
}

static int fill_commit(source_commit *out, git_commit *c)
{
	const git_signature *a = git_commit_author(c);
	const char *summary = git_commit_summary(c);
	source_commit r;

	memset(&r, 0, sizeof(r));
	git_oid_tostr(r.id, sizeof(r.id), git_commit_id(c));
	r.time = a ? (int64_t)a->when.time : 0;
	r.author_name = plumb_strdup(a && a->name ? a->name : "");
	r.author_email = plumb_strdup(a && a->email ? a->email : "");
	r.subject = plumb_strndup(summary ? summary : "", 1024);
	if (!r.author_name || !r.author_email || !r.subject) {
		source_commit_clear(&r);
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	}
	*out = r;
	return 0;
}

/* 1 when some branch or tag of the mirror reaches id, 0 when none, < 0 on error. */
static int reachable(git_repository *repo, const git_oid *id)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	git_object *peeled = NULL;
	git_oid *tips = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (git_reference_iterator_new(&it, repo) < 0) {
		r = plumb_error_set(PLUMB_ERROR, "source: cannot list refs: %s", source_git_msg());
		goto cleanup;
	}
	while (git_reference_next(&ref, it) == 0) {
		const char *name = git_reference_name(ref);
		if ((!strncmp(name, "refs/heads/", 11) || !strncmp(name, "refs/tags/", 10)) &&
			git_reference_peel(&peeled, ref, GIT_OBJECT_COMMIT) == 0) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				git_oid *t = realloc(tips, ncap * sizeof(*t));
				if (!t) {
					r = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
					goto cleanup;
				}
				tips = t;
				cap = ncap;
			}
			git_oid_cpy(&tips[n++], git_object_id(peeled));
			git_object_free(peeled);
			peeled = NULL;
		}
		git_reference_free(ref);
		ref = NULL;
	}
	if (!n)
		goto cleanup;
	r = git_graph_reachable_from_any(repo, id, tips, n);
	if (r < 0)
		r = plumb_error_set(PLUMB_ERROR, "source: reachability check failed: %s", source_git_msg());
cleanup:
	git_object_free(peeled);
	git_reference_free(ref);
	git_reference_iterator_free(it);
	free(tips);
	return r;
}

int source_resolve(source_commit *out, source_cache *cache, const char *url, const char *cred_id,
	source_ref_kind kind, const char *name)
{
	git_repository *repo = NULL;
	git_reference *ref = NULL;
	git_object *obj = NULL;
	char shown[URL_SHOW], *full = NULL;
	int error = 0, valid = 0;

	if (!out || !name || !*name || strlen(name) > 1024)
		return plumb_error_set(PLUMB_EINVALID, "source: resolve: bad arguments");
	if ((error = source_open_mirror(&repo, cache, url, cred_id)) < 0)
		return error;
	source_url_redact(shown, sizeof(shown), url);

	if (kind == SOURCE_REF_BRANCH || kind == SOURCE_REF_TAG) {
		const char *what = kind == SOURCE_REF_BRANCH ? "branch" : "tag";
		full = plumb_asprintf("refs/%s/%s", kind == SOURCE_REF_BRANCH ? "heads" : "tags", name);
		if (!full) {
			error = plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
			goto cleanup;
		}
		if (git_reference_name_is_valid(&valid, full) < 0 || !valid) {
			error = plumb_error_set(PLUMB_EINVALID, "source: \"%.128s\" is not a valid %s name", name, what);
			goto cleanup;
		}
		if (git_reference_lookup(&ref, repo, full) < 0) {
			error = plumb_error_set(PLUMB_ENOTFOUND, "source: %s \"%.128s\" not found in %s", what, name, shown);
			goto cleanup;
		}
		if (git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT) < 0) {
			error = plumb_error_set(PLUMB_EINVALID, "source: %s \"%.128s\" does not point at a commit", what, name);
			goto cleanup;
		}
	} else if (kind == SOURCE_REF_COMMIT) {
		size_t len = strlen(name);
		git_oid oid;
		int r;
		if (len < 7 || len > GIT_OID_HEXSZ || strspn(name, "0123456789abcdefABCDEF") != len) {
			error = plumb_error_set(PLUMB_EINVALID,
				"source: commit \"%.64s\" is not a hex id of 7 to 40 digits", name);
			goto cleanup;
		}
		if (git_oid_fromstrn(&oid, name, len) < 0) {
			error = plumb_error_set(PLUMB_EINVALID, "source: bad commit id \"%.64s\"", name);
			goto cleanup;
		}
		r = git_object_lookup_prefix(&obj, repo, &oid, len, GIT_OBJECT_COMMIT);
		if (r == GIT_EAMBIGUOUS) {
			error = plumb_error_set(PLUMB_EINVALID, "source: commit prefix %s is ambiguous in %s", name, shown);
			goto cleanup;
		}
		if (r < 0) {
			error = plumb_error_set(PLUMB_ENOTFOUND, "source: commit %s not found in %s", name, shown);
			goto cleanup;
		}
		r = reachable(repo, git_object_id(obj));
		if (r < 0) {
			error = r;
			goto cleanup;
		}
		if (!r) {
			error = plumb_error_set(PLUMB_ESTALE,
				"source: commit %s of %s is no longer reachable from any branch or tag (history rewritten)",
				name, shown);
			goto cleanup;
		}
	} else {
		error = plumb_error_set(PLUMB_EINVALID, "source: unknown ref kind");
		goto cleanup;
	}
	error = fill_commit(out, (git_commit *)obj);
cleanup:
	git_object_free(obj);
	git_reference_free(ref);
	git_repository_free(repo);
	free(full);
	return error;
}
