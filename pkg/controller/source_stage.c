/* pkg/controller/source_stage.c: the source stage of a GitSync
 * (WORK_SOURCE), run by a worker.
 *
 * Fetches the GitSync's ref into its mirror (pkg/source), reads and parses
 * every manifest of the new commit once (pkg/manifest) so that a revision
 * that does not parse never reaches a cluster, keeps it as the GitSync's
 * revision, triggers the sync of every cluster it targets and writes the
 * GitSync's status once. Fetch and credential failures stall the GitSync
 * (set_stall) and keep the last good revision. */
#include "controller/internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest/manifest.h"

/* ---- source reconcile ------------------------------------------------------------------ */

/* 1 when g is stalled by a failed kustomize or helm render or by a
 * dependsOn cycle: those stalls are the sync stage's (they end when the
 * cluster renders again, the cycle is gone or a new revision comes), not
 * cleared by an unchanged fetch. */
static int sync_stalled(controller *c, gitsync_state *g)
{
	pthread_mutex_lock(&c->lock);
	int r = g->stall_reason && (!strcmp(g->stall_reason, "RenderFailed") ||
		!strcmp(g->stall_reason, "DependencyCycle"));
	pthread_mutex_unlock(&c->lock);
	return r;
}

int reconcile_source(controller *c, const char *gs_key, double *next)
{
	gitsync_state *g = gitsync_get(c, gs_key);
	char *url = NULL, *ref = NULL, *path = NULL, *req = NULL;
	source_credentials *creds = NULL;
	source_files *files = NULL;
	source_commit commit = { 0 };
	manifest_file *mf = NULL;
	manifest_errors errs = { 0 };
	char redacted[1024], cred_id[65] = "";
	int rc = 0, commit_ok = 0;
	long gen = 0;
	double timeout = GITSYNC_TIMEOUT_DEFAULT;
	source_ref_kind kind = SOURCE_REF_BRANCH;
	if (!g)
		return 0;

	int erc = secret_ensure_ref(c, SECRET_REF_GIT, gs_key);
	char emsg[512] = "";
	if (erc < 0 && erc != PLUMB_ENOTFOUND)
		snprintf(emsg, sizeof(emsg), "%s", plumb_error_last());
	pthread_mutex_lock(&c->lock);
	const gitsync_spec *spec = g->spec;
	int suspended = !spec || spec->suspend;
	*next = GITSYNC_INTERVAL_DEFAULT;
	if (spec) {
		kind = spec->git.ref_kind;
		url = plumb_strdup(spec->git.url);
		ref = plumb_strdup(spec->git.ref);
		path = plumb_strdup(spec->git.path);
		*next = spec->git.interval;
		timeout = spec->git.timeout;
		gen = spec->generation;
		if (g->clamp_logged != gen && (spec->git.interval_clamped || spec->git.timeout_clamped)) {
			g->clamp_logged = gen;
			plumb_warn("spec.git.interval below 10s or spec.git.timeout above 10m; using the bound",
				"gitsync", gs_key, "interval", spec->git.interval_text, "timeout", spec->git.timeout_text);
		}
	}
	req = plumb_strdup(annotation(g->obj, REQUESTED_AT));
	if (!suspended && spec->git.secret_name) {
		char sk[600];
		snprintf(sk, sizeof(sk), "%s/%s", g->ns, spec->git.secret_name);
		const cJSON *sec = plumb_map_get(&c->secrets, sk);
		if (!sec && emsg[0])
			rc = plumb_error_set(erc, "git secret %s: %s", sk, emsg);
		else
			rc = gitsync_git_credentials(&creds, spec, sec);
	}
	render_kind spec_render = spec ? spec->render : RENDER_AUTO;
	int helm_set = spec && spec->helm.set;
	pthread_mutex_unlock(&c->lock);
	if (suspended || !url || !ref)
		goto cleanup;
	source_url_redact(redacted, sizeof(redacted), url);
	if (rc) {
		set_stall(c, g, "CredentialsInvalid", plumb_error_last());
		goto done;
	}
	if (!c->o.allow_file_urls && source_url_is_local(url)) {
		/* a tenant's repository would be a path on plumbd's machine */
		char *msg = plumb_asprintf("spec.git.url %s: file:// URLs and local paths read plumbd's own "
			"file system; plumbd refuses them unless started with --allow-file-urls", redacted);
		set_stall(c, g, "FileURLNotAllowed", msg);
		free(msg);
		rc = 0; /* waits for a spec change */
		goto done;
	}
	/* The mirror this GitSync reads is the one its own credentials fetched. */
	source_credentials_id(cred_id, c->sources, creds);

	double t0 = plumb_time_mono();
	source_fetch_opts fo = { .kind = kind, .ref = ref, .max_bytes = c->o.git_max_fetch_bytes };
	rc = source_fetch_ref(NULL, c->sources, url, creds, timeout, &fo);
	server_histogram_observe(c->m.fetch_duration, plumb_time_mono() - t0, gs_key);
	if (rc) {
		server_counter_add(c->m.fetch_errors, 1, gs_key);
		char *msg = plumb_asprintf("fetch %s: %s", redacted, plumb_error_last());
		set_stall(c, g, rc == PLUMB_EAUTH ? "AuthenticationFailed" : "FetchFailed", msg);
		free(msg);
		goto done;
	}
	if ((rc = source_resolve(&commit, c->sources, url, cred_id, kind, ref))) {
		set_stall(c, g, "RefNotFound", plumb_error_last());
		goto done;
	}
	commit_ok = 1;
	/* A kustomize or helm GitSync (or a path per cluster) is read whole and
	 * validated when it is rendered for each cluster; a plain one as ever. */
	int rendered = gitsync_path_per_cluster(path) || helm_set ||
		spec_render == RENDER_KUSTOMIZE || spec_render == RENDER_HELM;
	if (!rendered && spec_render == RENDER_AUTO) {
		render_kind k = RENDER_PLAIN;
		gitsync_revision grev = { .cache = c->sources, .url = url, .cred_id = cred_id, .commit = commit.id };
		if (gitsync_render_kind(&k, &grev, path, NULL) == 0)
			rendered = k != RENDER_PLAIN;
		plumb_error_clear();
	}

	pthread_mutex_lock(&c->lock);
	revision *cur = g->rev;
	int same = cur && !strcmp(cur->commit, commit.id) && streq(cur->path, path) &&
		streq(cur->cred_id, cred_id) && g->fetched_generation == gen;
	int invalid_again = !cur && !strcmp(g->fetched, commit.id) && g->stall_reason &&
		!strcmp(g->stall_reason, "InvalidRevision") && g->fetched_generation == gen;
	char old_commit[41] = "";
	if (cur)
		snprintf(old_commit, sizeof(old_commit), "%s", cur->commit);
	if (!same && cur && g->stall_reason && !strcmp(g->stall_reason, "InvalidRevision") &&
	    !strcmp(g->fetched, commit.id) && g->fetched_generation == gen)
		invalid_again = 1;
	pthread_mutex_unlock(&c->lock);
	if (same) {
		if (!sync_stalled(c, g))
			set_stall(c, g, NULL, NULL);
		goto done;
	}
	if (invalid_again)
		goto done;

	/* A commit that touches nothing under path costs no reconcile. */
	if (old_commit[0] && g->fetched_generation == gen) {
		int changed = 1;
		int crc = rendered ? source_changed_tree(&changed, c->sources, url, cred_id, old_commit, commit.id)
			: source_changed(&changed, c->sources, url, cred_id, old_commit, commit.id, path);
		if (crc == 0 && !changed) {
			pthread_mutex_lock(&c->lock);
			revision *r = g->rev;
			if (r && r->refs == 1 && streq(r->cred_id, cred_id)) {
				/* Nobody else holds it: renaming the revision is safe. */
				snprintf(r->commit, sizeof(r->commit), "%s", commit.id);
				snprintf(g->fetched, sizeof(g->fetched), "%s", commit.id);
				size_t i = 0;
				const char *k;
				void *v;
				while (plumb_map_next(&g->clusters, &i, &k, &v)) {
					controller_cluster_status *s = v;
					if (!strcmp(s->commit, old_commit))
						snprintf(s->commit, sizeof(s->commit), "%s", commit.id);
				}
				pthread_mutex_unlock(&c->lock);
				plumb_info("new commit changes nothing under path", "gitsync", gs_key,
					"commit", commit.id);
				if (!sync_stalled(c, g))
					set_stall(c, g, NULL, NULL);
				goto done;
			}
			pthread_mutex_unlock(&c->lock);
		}
	}

	if (rendered)
		goto accept;
	if ((rc = source_read(&files, c->sources, url, cred_id, commit.id, path, NULL))) {
		set_stall(c, g, rc == PLUMB_ENOTFOUND ? "PathNotFound" : "InvalidRevision", plumb_error_last());
		pthread_mutex_lock(&c->lock);
		snprintf(g->fetched, sizeof(g->fetched), "%s", commit.id);
		g->fetched_generation = gen;
		pthread_mutex_unlock(&c->lock);
		goto done;
	}
	mf = calloc(files->count ? files->count : 1, sizeof(*mf));
	if (!mf) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < files->count; i++) {
		mf[i].file = files->items[i].path;
		mf[i].data = files->items[i].data;
		mf[i].len = files->items[i].len;
	}
	if (manifest_vet(mf, files->count, &errs) != 0) {
		/* The whole revision is refused; the last good one stays applied. */
		char *msg = gitsync_join_errors(&errs);
		char *full = plumb_asprintf("commit %.12s: %s", commit.id, msg);
		set_stall(c, g, "InvalidRevision", full);
		free(msg);
		free(full);
		pthread_mutex_lock(&c->lock);
		snprintf(g->fetched, sizeof(g->fetched), "%s", commit.id);
		g->fetched_generation = gen;
		pthread_mutex_unlock(&c->lock);
		rc = 0;
		goto done;
	}

accept:;
	revision *r = calloc(1, sizeof(*r));
	if (!r) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto done;
	}
	r->refs = 1;
	snprintf(r->commit, sizeof(r->commit), "%s", commit.id);
	r->path = plumb_strdup(path);
	r->url = plumb_strdup(url);
	r->cred_id = plumb_strdup(cred_id);
	r->first_seen = plumb_time_real();
	/* The old stall ends before the syncs are queued: a sync stage that
	 * fails to render this commit sets its own, which must not be
	 * cleared after it (a render error waits for the next commit). */
	set_stall(c, g, NULL, NULL);
	pthread_mutex_lock(&c->lock);
	revision_unref(g->rev);
	g->rev = r;
	snprintf(g->fetched, sizeof(g->fetched), "%s", commit.id);
	g->fetched_generation = gen;
	trigger_gitsync_syncs_locked(c, g, 0);
	pthread_mutex_unlock(&c->lock);
	plumb_info("new revision", "gitsync", gs_key, "commit", commit.id, "subject", commit.subject);

done:
	if (commit_ok || rc == 0) {
		pthread_mutex_lock(&c->lock);
		if (req && !streq(req, g->handled_req))
			set_str(&g->handled_req, req);
		pthread_mutex_unlock(&c->lock);
	}
	write_gitsync_status(c, g);
cleanup:
	free(mf);
	manifest_errors_free(&errs);
	source_files_free(files);
	source_commit_clear(&commit);
	source_credentials_free(creds);
	free(url);
	free(ref);
	free(path);
	free(req);
	gitsync_put(c, g);
	return rc;
}

