/*
 * pkg/render/render.c — what a render is: the kind (detection), the checks
 * that keep a kustomization inside the revision, the tools' arguments, the
 * Helm hook filter, the error message, and render_run() tying them to the
 * sandbox of exec.c. Runs on the caller's thread; keeps no state.
 */
#include "render/internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/base.h"
#include "manifest/manifest.h"

#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_MAX_STDERR ((size_t)64 * 1024)
#define DEFAULT_MAX_MEMORY ((size_t)4 * 1024 * 1024 * 1024)
#define DEFAULT_MAX_NOFILE 1024u
#define DEFAULT_MAX_FSIZE ((size_t)64 * 1024 * 1024)
#define DEFAULT_MAX_TREE_BYTES ((size_t)256 * 1024 * 1024)
#define DEFAULT_MAX_TREE_FILES 20000
#define MAX_KUSTOMIZATIONS 1000
#define MAX_VALUES_FILES 64
#define MAX_API_VERSIONS 10000

static const char *kind_names[] = { "auto", "plain", "kustomize", "helm" };

const char *render_kind_name(render_kind kind)
{
	return (unsigned)kind < 4 ? kind_names[kind] : "unknown";
}

int render_kind_parse(render_kind *out, const char *text)
{
	if (!text || !text[0]) {
		*out = RENDER_AUTO;
		return 0;
	}
	for (int k = RENDER_PLAIN; k <= RENDER_HELM; k++)
		if (!strcmp(text, kind_names[k])) {
			*out = (render_kind)k;
			return 0;
		}
	return plumb_error_set(PLUMB_EINVALID, "spec.render \"%.64s\": must be plain, kustomize or helm", text);
}

void render_result_clear(render_result *res)
{
	if (!res)
		return;
	free(res->yaml);
	memset(res, 0, sizeof(*res));
}

/* ---- the revision's files ---------------------------------------------------- */

static const source_file *file_find(const source_files *files, const char *path)
{
	for (size_t i = 0; files && i < files->count; i++)
		if (!strcmp(files->items[i].path, path))
			return &files->items[i];
	return NULL;
}

/* 1 when some file lies under dir ("" is the root). */
static int dir_exists(const source_files *files, const char *dir)
{
	size_t n = strlen(dir);
	if (!n)
		return files && files->count > 0;
	for (size_t i = 0; files && i < files->count; i++)
		if (!strncmp(files->items[i].path, dir, n) && files->items[i].path[n] == '/')
			return 1;
	return 0;
}

/* dir "/" name, or name alone at the root. Caller frees. */
static char *path_join(const char *dir, const char *name)
{
	return dir[0] ? plumb_asprintf("%s/%s", dir, name) : plumb_strdup(name);
}

static const char *kustomization_names[] = { "kustomization.yaml", "kustomization.yml", "Kustomization" };

/* The kustomization file in dir, or NULL. */
static const source_file *kustomization_in(const source_files *files, const char *dir)
{
	for (size_t i = 0; i < 3; i++) {
		char *p = path_join(dir, kustomization_names[i]);
		const source_file *f = p ? file_find(files, p) : NULL;
		free(p);
		if (f)
			return f;
	}
	return NULL;
}

static int has_file(const source_files *files, const char *dir, const char *name)
{
	char *p = path_join(dir, name);
	int found = p && file_find(files, p);
	free(p);
	return found;
}

/* Normalises a repository path ("" = the root). Caller frees. */
static int norm_path(char **out, const char *path)
{
	return source_path_normalize(out, path ? path : "");
}

render_kind render_detect(const source_files *files, const char *path, const render_opts *opts)
{
	char *p = NULL;
	render_kind k = RENDER_PLAIN;
	if (opts && opts->kind != RENDER_AUTO)
		return opts->kind;
	if (opts && opts->helm.set)
		return RENDER_HELM;
	if (norm_path(&p, path))
		return RENDER_PLAIN;
	if (kustomization_in(files, p))
		k = RENDER_KUSTOMIZE;
	else if (has_file(files, p, "Chart.yaml"))
		k = RENDER_HELM;
	free(p);
	return k;
}

/* ---- kustomize: staying inside the revision ----------------------------------- */

int render_kustomize_entry_is_remote(const char *e)
{
	static const char *prefixes[] = { "git@", "git::", "gh:", "github.com/", "gitlab.com/",
		"bitbucket.org/", "dev.azure.com/", "ssh:", "https:", "http:", "file:" };
	if (!e)
		return 0;
	if (strstr(e, "://") || strchr(e, '?'))
		return 1;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(e, prefixes[i], strlen(prefixes[i])))
			return 1;
	/* scp-like user@host:path */
	const char *at = strchr(e, '@'), *colon = strchr(e, ':'), *slash = strchr(e, '/');
	if (at && colon && at < colon && (!slash || colon < slash))
		return 1;
	/* go-getter's "repo//subdir" */
	if (strstr(e, "//"))
		return 1;
	return 0;
}

/* Resolves rel against dir lexically. 0 with *out, or 1 when it climbs out
 * of the repository. */
static int lexical_join(char **out, const char *dir, const char *rel)
{
	size_t cap = strlen(dir) + strlen(rel) + 2, len = 0;
	char *buf = malloc(cap), *work = plumb_asprintf("%s/%s", dir, rel);
	int rc = 0;
	if (!buf || !work) {
		free(buf);
		free(work);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	buf[0] = 0;
	char *save = NULL;
	for (char *tok = strtok_r(work, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			if (!len) {
				rc = 1;
				break;
			}
			char *s = strrchr(buf, '/');
			len = s ? (size_t)(s - buf) : 0;
			buf[len] = 0;
			continue;
		}
		len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? "/" : "", tok);
	}
	free(work);
	if (rc) {
		free(buf);
		return 1;
	}
	*out = buf;
	return 0;
}

typedef struct {
	const source_files *files;
	strvec seen;     /* kustomization folders read */
} kcheck;

static int kcheck_dir(kcheck *k, const char *dir, int depth);

static int kcheck_entry(kcheck *k, const char *kfile, const char *dir, const char *field,
	const char *entry, int depth)
{
	char *target = NULL;
	int rc = 0;
	if (render_kustomize_entry_is_remote(entry))
		return plumb_error_set(PLUMB_EINVALID, "%s: %s entry \"%.200s\" is a remote base: plumb renders "
			"without network access and refuses remote bases; vendor it into the repository", kfile,
			field, entry);
	if (entry[0] == '/')
		return plumb_error_set(PLUMB_EINVALID, "%s: %s entry \"%.200s\" is an absolute path: only files "
			"of the repository can be read", kfile, field, entry);
	if ((rc = lexical_join(&target, dir, entry)) == 1)
		return plumb_error_set(PLUMB_EINVALID, "%s: %s entry \"%.200s\" leaves the repository", kfile,
			field, entry);
	if (rc)
		return rc;
	if (file_find(k->files, target)) {
		/* a file resource */
	} else if (dir_exists(k->files, target)) {
		rc = kcheck_dir(k, target, depth + 1);
	} else {
		rc = plumb_error_set(PLUMB_EINVALID, "%s: %s entry \"%.200s\" is no file or folder of the "
			"repository (kustomize would try to fetch it as a remote base)", kfile, field, entry);
	}
	free(target);
	return rc;
}

static int kcheck_dir(kcheck *k, const char *dir, int depth)
{
	static const char *path_fields[] = { "resources", "bases", "components", "generators",
		"transformers", "validators" };
	const source_file *f;
	cJSON *doc = NULL;
	int rc = 0;
	for (size_t i = 0; i < k->seen.len; i++)
		if (!strcmp(k->seen.items[i], dir))
			return 0;
	if (depth > 64 || k->seen.len >= MAX_KUSTOMIZATIONS)
		return plumb_error_set(PLUMB_ETOOBIG, "%s: kustomizations nested over 64 deep or over %d "
			"in one render", dir[0] ? dir : ".", MAX_KUSTOMIZATIONS);
	if (!(f = kustomization_in(k->files, dir)))
		return 0; /* a folder of plain resources: kustomize says what it thinks */
	if ((rc = strvec_push(&k->seen, plumb_strdup(dir))))
		return rc;
	if (manifest_yaml_to_json(&doc, f->data, f->len) != 0)
		return plumb_error_prefix(PLUMB_EINVALID, "%s", f->path);
	if (!cJSON_IsObject(doc))
		goto cleanup;
	for (size_t i = 0; i < sizeof(path_fields) / sizeof(path_fields[0]) && !rc; i++) {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, path_fields[i]), *e;
		cJSON_ArrayForEach(e, list) {
			/* generators and transformers may also be inline YAML */
			if (!cJSON_IsString(e) || strchr(e->valuestring, '\n'))
				continue;
			if ((rc = kcheck_entry(k, f->path, dir, path_fields[i], e->valuestring, depth)))
				break;
		}
	}
	const cJSON *charts = cJSON_GetObjectItemCaseSensitive(doc, "helmCharts"), *c;
	cJSON_ArrayForEach(c, charts) {
		const char *repo = plumb_json_str(c, "repo");
		if (!rc && repo && repo[0])
			rc = plumb_error_set(PLUMB_EINVALID, "%s: helmCharts entry \"%.100s\" comes from the "
				"repository %.200s: plumb renders without network access and refuses charts that "
				"would be downloaded", f->path, plumb_json_str(c, "name") ? plumb_json_str(c, "name") :
				"", repo);
	}
cleanup:
	cJSON_Delete(doc);
	return rc;
}

int render_kustomize_check(const source_files *files, const char *path)
{
	kcheck k = { .files = files };
	char *dir = NULL;
	int rc = norm_path(&dir, path);
	if (rc)
		return rc;
	if (!kustomization_in(files, dir))
		rc = plumb_error_set(PLUMB_ENOTFOUND, "%s: no kustomization.yaml, kustomization.yml or "
			"Kustomization", dir[0] ? dir : ".");
	else
		rc = kcheck_dir(&k, dir, 0);
	strvec_free(&k.seen);
	free(dir);
	return rc;
}

/* ---- arguments ------------------------------------------------------------------ */

int render_kustomize_argv(char ***out, const char *bin, const char *dir)
{
	strvec v = { 0 };
	int rc;
	if ((rc = strvec_push(&v, plumb_strdup(bin))) || (rc = strvec_push(&v, plumb_strdup("build"))) ||
	    (rc = strvec_push(&v, plumb_strdup("--load-restrictor"))) ||
	    (rc = strvec_push(&v, plumb_strdup("LoadRestrictionsRootOnly"))) ||
	    (rc = strvec_push(&v, plumb_strdup(dir)))) {
		strvec_free(&v);
		return rc;
	}
	*out = strvec_detach(&v);
	return 0;
}

static int dns_name(const char *s, size_t max, int dots)
{
	size_t n = s ? strlen(s) : 0;
	if (!n || n > max || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(islower(c) || isdigit(c) || c == '-' || (dots && c == '.')))
			return 0;
	}
	return 1;
}

static int token_ok(const char *s, size_t max, const char *extra)
{
	size_t n = s ? strlen(s) : 0;
	if (!n || n > max || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
			return 0;
	return 1;
}

int render_helm_argv(char ***out, const char *bin, const char *tree, const char *chart,
	const render_helm_opts *helm, const char *values_json_file, const source_files *files)
{
	strvec v = { 0 };
	char *p = NULL;
	int rc = 0;
	const char *ns = helm->namespace && helm->namespace[0] ? helm->namespace : "default";
	if (!dns_name(helm->release_name, 53, 1))
		return plumb_error_set(PLUMB_EINVALID, "helm release name \"%.64s\": must be a DNS-1123 name "
			"of at most 53 characters", helm->release_name ? helm->release_name : "");
	if (!dns_name(ns, 63, 0))
		return plumb_error_set(PLUMB_EINVALID, "helm namespace \"%.64s\": must be a DNS label", ns);
	if (helm->kube_version && helm->kube_version[0] &&
	    (!token_ok(helm->kube_version, 64, ".+-") ||
	     !(isdigit((unsigned char)helm->kube_version[0]) || helm->kube_version[0] == 'v')))
		return plumb_error_set(PLUMB_EINVALID, "kube version \"%.64s\": not a version", helm->kube_version);
	if (helm->napi_versions > MAX_API_VERSIONS || helm->nvalues_files > MAX_VALUES_FILES)
		return plumb_error_set(PLUMB_ETOOBIG, "helm: over %d API versions or %d values files",
			MAX_API_VERSIONS, MAX_VALUES_FILES);
	for (size_t i = 0; i < helm->napi_versions; i++)
		if (!token_ok(helm->api_versions[i], 316, "./-"))
			return plumb_error_set(PLUMB_EINVALID, "API version \"%.64s\": not group/version[/Kind]",
				helm->api_versions[i] ? helm->api_versions[i] : "");
	if ((rc = strvec_push(&v, plumb_strdup(bin))) || (rc = strvec_push(&v, plumb_strdup("template"))) ||
	    (rc = strvec_push(&v, plumb_asprintf("--namespace=%s", ns))) ||
	    (rc = strvec_push(&v, plumb_strdup("--skip-tests"))))
		goto cleanup;
	if (helm->include_crds && (rc = strvec_push(&v, plumb_strdup("--include-crds"))))
		goto cleanup;
	if (helm->kube_version && helm->kube_version[0] &&
	    (rc = strvec_push(&v, plumb_asprintf("--kube-version=%s", helm->kube_version))))
		goto cleanup;
	for (size_t i = 0; i < helm->napi_versions; i++)
		if ((rc = strvec_push(&v, plumb_asprintf("--api-versions=%s", helm->api_versions[i]))))
			goto cleanup;
	for (size_t i = 0; i < helm->nvalues_files; i++) {
		if ((rc = norm_path(&p, helm->values_files[i])))
			goto cleanup;
		if (!p[0] || render_path_check(p) || !file_find(files, p)) {
			rc = plumb_error_set(PLUMB_EINVALID, "helm values file %.300s is not a file of the "
				"repository", helm->values_files[i] ? helm->values_files[i] : "");
			goto cleanup;
		}
		if ((rc = strvec_push(&v, plumb_asprintf("--values=%s/%s", tree, p))))
			goto cleanup;
		free(p);
		p = NULL;
	}
	if (values_json_file && (rc = strvec_push(&v, plumb_asprintf("--values=%s", values_json_file))))
		goto cleanup;
	if ((rc = strvec_push(&v, plumb_strdup(helm->release_name))) ||
	    (rc = strvec_push(&v, chart[0] ? plumb_asprintf("%s/%s", tree, chart) : plumb_strdup(tree))))
		goto cleanup;
	*out = strvec_detach(&v);
cleanup:
	free(p);
	strvec_free(&v);
	return rc;
}

/* ---- Helm hooks -------------------------------------------------------------------- */

/* 1 when the comma-separated hook list names only phases plumb drops. */
static int hook_dropped(const char *hooks)
{
	static const char *dropped[] = { "test", "test-success", "test-failure", "pre-delete",
		"post-delete", "pre-rollback", "post-rollback" };
	int any = 0;
	const char *p = hooks;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ')
			e++;
		if (e == p)
			break;
		int found = 0;
		for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
			if (strlen(dropped[i]) == (size_t)(e - p) && !strncmp(dropped[i], p, (size_t)(e - p)))
				found = 1;
		if (!found)
			return 0;
		any = 1;
		p = e;
	}
	return any;
}

/* The end of the line at p (past its '\n'). */
static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl ? nl + 1 : end;
}

static int is_separator(const char *p, const char *end)
{
	if (end - p < 3 || memcmp(p, "---", 3))
		return 0;
	for (p += 3; p < end && *p != '\n'; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r')
			return 0;
	return 1;
}

int render_helm_filter_hooks(char **out, size_t *outlen, const char *yaml, size_t len)
{
	plumb_buf b = PLUMB_BUF_INIT(len + 1);
	const char *p = yaml, *end = yaml + len;
	int rc = 0;
	while (p < end) {
		/* a document: its separator line (if any) up to the next one */
		const char *d = p, *q = is_separator(p, end) ? line_end(p, end) : p;
		while (q < end && !is_separator(q, end))
			q = line_end(q, end);
		int keep = 1;
		if (memmem(d, (size_t)(q - d), "helm.sh/hook", 12)) {
			const char *body = is_separator(d, end) ? line_end(d, end) : d;
			cJSON *doc = NULL;
			if (manifest_yaml_to_json(&doc, body, (size_t)(q - body)) == 0) {
				const cJSON *ann = plumb_json_get(doc, "metadata.annotations");
				const cJSON *h = ann ? cJSON_GetObjectItemCaseSensitive(ann, "helm.sh/hook") : NULL;
				if (cJSON_IsString(h) && hook_dropped(h->valuestring))
					keep = 0;
			}
			plumb_error_clear();
			cJSON_Delete(doc);
		}
		if (keep && (rc = plumb_buf_append(&b, d, (size_t)(q - d))))
			goto cleanup;
		p = q;
	}
	if ((rc = plumb_buf_append(&b, "", 0)))
		goto cleanup;
	*outlen = b.len;
	*out = plumb_buf_detach(&b);
cleanup:
	plumb_buf_free(&b);
	return rc;
}

/* ---- error messages ----------------------------------------------------------------- */

/* Replaces every occurrence of from in s by to, in place within cap bytes. */
static void replace_all(char *s, size_t cap, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to);
	char *p = s;
	if (!fl || tl > fl)
		return;
	(void)cap;
	while ((p = strstr(p, from))) {
		memmove(p + tl, p + fl, strlen(p + fl) + 1);
		memcpy(p, to, tl);
		p += tl;
	}
}

/* The revision's file the message names first, or NULL. Helm names chart
 * files "<chart name>/templates/…", so those are tried too. */
static char *named_file(const char *msg, const source_files *files, const char *chart, const char *chart_name)
{
	const char *best = NULL;
	size_t best_len = 0;
	char *best_path = NULL;
	size_t cl = chart ? strlen(chart) : 0;
	for (size_t i = 0; files && i < files->count; i++) {
		const char *path = files->items[i].path;
		char alt[4200] = "";
		const char *cands[2] = { path, NULL };
		if (chart_name && (!cl || (!strncmp(path, chart, cl) && path[cl] == '/'))) {
			snprintf(alt, sizeof(alt), "%s/%s", chart_name, path + (cl ? cl + 1 : 0));
			cands[1] = alt;
		}
		for (int c = 0; c < 2; c++) {
			if (!cands[c])
				continue;
			size_t n = strlen(cands[c]);
			for (const char *at = strstr(msg, cands[c]); at; at = strstr(at + 1, cands[c])) {
				/* whole names only: not the tail of a longer path */
				if (at > msg && (isalnum((unsigned char)at[-1]) || strchr("/._-", at[-1])))
					continue;
				if (isalnum((unsigned char)at[n]) || at[n] == '/' || at[n] == '_' || at[n] == '-')
					continue;
				if (!best || at < best || (at == best && n > best_len)) {
					best = at;
					best_len = n;
					best_path = (char *)path;
				}
				break;
			}
		}
	}
	return best_path ? plumb_strdup(best_path) : NULL;
}

/* The tool's stderr as one line: the first RENDER_ERROR_MAX bytes, work
 * directory paths made repository paths, lines joined with " | ". */
static char *tool_message(const char *err, size_t err_len, const char *work, const char *tree)
{
	size_t n = err_len < RENDER_ERROR_MAX ? err_len : RENDER_ERROR_MAX;
	char *s = malloc(n + 1), *t1 = plumb_asprintf("%s/", tree), *w1 = plumb_asprintf("%s/", work);
	if (!s || !t1 || !w1) {
		free(s);
		free(t1);
		free(w1);
		return NULL;
	}
	memcpy(s, err, n);
	s[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!s[i])
			s[i] = ' ';
	replace_all(s, n + 1, t1, "");
	replace_all(s, n + 1, tree, ".");
	replace_all(s, n + 1, w1, "");
	free(t1);
	free(w1);
	plumb_buf b = PLUMB_BUF_INIT(n * 2 + 16);
	int first = 1;
	char *save = NULL;
	for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t l = strlen(line);
		while (l && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
			line[--l] = 0;
		if (!l)
			continue;
		(void)plumb_buf_printf(&b, "%s%s", first ? "" : " | ", line);
		first = 0;
	}
	if (err_len > RENDER_ERROR_MAX)
		(void)plumb_buf_puts(&b, " …");
	free(s);
	if (!b.ptr)
		(void)plumb_buf_puts(&b, "(no output on stderr)");
	return plumb_buf_detach(&b);
}

/* ---- render_run ---------------------------------------------------------------------- */

/* bin, or name found in the caller's PATH. Caller frees. */
static int find_tool(char **out, const char *bin, const char *name, const char *flag)
{
	if (bin && bin[0]) {
		if (access(bin, X_OK) < 0)
			return plumb_error_set(PLUMB_ENOTFOUND, "%s binary %s: %s", name, bin, strerror(errno));
		if (bin[0] == '/') {
			*out = plumb_strdup(bin);
		} else {
			char *abs = realpath(bin, NULL);
			if (!abs)
				return plumb_error_set(PLUMB_ENOTFOUND, "%s binary %s: %s", name, bin, strerror(errno));
			*out = abs;
		}
		return *out ? 0 : plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	const char *path = getenv("PATH");
	char *copy = plumb_strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *save = NULL, *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
			dir = strtok_r(NULL, ":", &save)) {
		if (dir[0] != '/')
			continue;
		char *p = plumb_asprintf("%s/%s", dir, name);
		if (p && access(p, X_OK) == 0) {
			free(copy);
			*out = p;
			return 0;
		}
		free(p);
	}
	free(copy);
	return plumb_error_set(PLUMB_ENOTFOUND, "%s is needed to render this path and is not in PATH "
		"(plumbd --%s)", name, flag);
}

int render_tool_find(char **out, const render_tools *tools, render_kind kind)
{
	*out = NULL;
	if (kind == RENDER_KUSTOMIZE)
		return find_tool(out, tools ? tools->kustomize : NULL, "kustomize", "kustomize-bin");
	if (kind == RENDER_HELM)
		return find_tool(out, tools ? tools->helm : NULL, "helm", "helm-bin");
	return plumb_error_set(PLUMB_EINVALID, "render: no tool for %s", render_kind_name(kind));
}

static char *chart_name_of(const source_files *files, const char *chart)
{
	char *p = path_join(chart, "Chart.yaml");
	const source_file *f = p ? file_find(files, p) : NULL;
	cJSON *doc = NULL;
	char *name = NULL;
	free(p);
	if (f && manifest_yaml_to_json(&doc, f->data, f->len) == 0)
		name = plumb_strdup(plumb_json_str(doc, "name"));
	plumb_error_clear();
	cJSON_Delete(doc);
	return name;
}

int render_run(render_result *out, const source_files *files, const char *path,
	const render_opts *opts, const render_tools *tools, const render_limits *limits)
{
	static const render_opts no_opts = { 0 };
	static const render_tools no_tools = { 0 };
	static const render_limits no_limits = { 0 };
	render_limits lim = limits ? *limits : no_limits;
	render_exec_result er = { 0 };
	render_exec_spec spec = { 0 };
	char *dir = NULL, *chart = NULL, *bin = NULL, *work = NULL, *tree = NULL, *target = NULL;
	char *values_file = NULL, *home = NULL, *msg = NULL, *file = NULL, *cname = NULL, *what = NULL;
	char **argv = NULL, **envp = NULL;
	int rc = 0;
	if (!opts)
		opts = &no_opts;
	if (!tools)
		tools = &no_tools;
	if (lim.timeout <= 0)
		lim.timeout = DEFAULT_TIMEOUT;
	if (!lim.max_output)
		lim.max_output = MANIFEST_MAX_REVISION_BYTES;
	if (!lim.max_stderr)
		lim.max_stderr = DEFAULT_MAX_STDERR;
	if (!lim.max_memory)
		lim.max_memory = DEFAULT_MAX_MEMORY;
	if (!lim.max_cpu)
		lim.max_cpu = (unsigned)ceil(2 * lim.timeout); /* tools use several threads */
	if (!lim.max_open_files)
		lim.max_open_files = DEFAULT_MAX_NOFILE;
	if (!lim.max_file_write)
		lim.max_file_write = DEFAULT_MAX_FSIZE;
	if (!lim.max_tree_bytes)
		lim.max_tree_bytes = DEFAULT_MAX_TREE_BYTES;
	if (!lim.max_tree_files)
		lim.max_tree_files = DEFAULT_MAX_TREE_FILES;

	if ((rc = norm_path(&dir, path)))
		goto cleanup;
	render_kind kind = render_detect(files, dir, opts);
	if (kind == RENDER_PLAIN) {
		memset(out, 0, sizeof(*out));
		out->kind = RENDER_PLAIN;
		goto cleanup;
	}
	const char *shown = dir[0] ? dir : ".";
	if (kind == RENDER_KUSTOMIZE) {
		if ((rc = render_kustomize_check(files, dir)))
			goto cleanup;
		if ((rc = find_tool(&bin, tools->kustomize, "kustomize", "kustomize-bin")))
			goto cleanup;
		what = plumb_asprintf("kustomize build %s", shown);
	} else {
		const render_helm_opts *h = &opts->helm;
		if ((rc = norm_path(&chart, h->chart && h->chart[0] ? h->chart : dir)))
			goto cleanup;
		if (!has_file(files, chart, "Chart.yaml")) {
			rc = plumb_error_set(PLUMB_ENOTFOUND, "helm chart %s: no Chart.yaml there",
				chart[0] ? chart : ".");
			goto cleanup;
		}
		if (h->values_json) {
			size_t n = strlen(h->values_json);
			cJSON *v = n <= RENDER_MAX_VALUES_JSON ? cJSON_ParseWithLength(h->values_json, n) : NULL;
			int ok = cJSON_IsObject(v);
			cJSON_Delete(v);
			if (n > RENDER_MAX_VALUES_JSON) {
				rc = plumb_error_set(PLUMB_ETOOBIG, "helm values: over %u bytes", RENDER_MAX_VALUES_JSON);
				goto cleanup;
			}
			if (!ok) {
				rc = plumb_error_set(PLUMB_EINVALID, "helm values: not a JSON object");
				goto cleanup;
			}
		}
		if ((rc = find_tool(&bin, tools->helm, "helm", "helm-bin")))
			goto cleanup;
		what = plumb_asprintf("helm template %s", chart[0] ? chart : ".");
		cname = chart_name_of(files, chart);
	}
	if (!what) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}

	if ((rc = workdir_create(&work, tools->tmp_dir)))
		goto cleanup;
	tree = plumb_asprintf("%s/tree", work);
	home = plumb_asprintf("%s/home", work);
	if (!tree || !home) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	if ((rc = workdir_materialise(tree, files, lim.max_tree_bytes, lim.max_tree_files)))
		goto cleanup;
	if (kind == RENDER_KUSTOMIZE) {
		target = dir[0] ? plumb_asprintf("%s/%s", tree, dir) : plumb_strdup(tree);
		if (!target || (rc = render_kustomize_argv(&argv, bin, target))) {
			rc = rc ? rc : plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
	} else {
		if (opts->helm.values_json) {
			values_file = plumb_asprintf("%s/values.json", work);
			if (!values_file) {
				rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
				goto cleanup;
			}
			if ((rc = plumb_file_write(values_file, opts->helm.values_json,
					strlen(opts->helm.values_json), 0444)))
				goto cleanup;
		}
		if ((rc = render_helm_argv(&argv, bin, tree, chart, &opts->helm, values_file, files)))
			goto cleanup;
	}
	if ((rc = render_env_build(&envp, home, lim.max_memory)))
		goto cleanup;

	spec.argv = argv;
	spec.envp = envp;
	spec.cwd = tree;
	spec.timeout = lim.timeout;
	spec.max_stdout = lim.max_output;
	spec.max_stderr = lim.max_stderr;
	spec.max_memory = lim.max_memory;
	spec.max_cpu = lim.max_cpu;
	spec.max_open_files = lim.max_open_files;
	spec.max_file_write = lim.max_file_write;
	spec.isolate_network = 1;
	if ((rc = render_exec(&er, &spec)))
		goto cleanup;
	if (er.timed_out) {
		rc = plumb_error_set(PLUMB_ETIMEOUT, "%s: killed after %gs, the render timeout", what, lim.timeout);
		goto cleanup;
	}
	if (er.out_too_big) {
		rc = plumb_error_set(PLUMB_ETOOBIG, "%s: output over the cap of %zu bytes; killed", what,
			lim.max_output);
		goto cleanup;
	}
	if (!WIFEXITED(er.status) || WEXITSTATUS(er.status) != 0) {
		msg = tool_message(er.err, er.err_len, work, tree);
		file = msg ? named_file(msg, files, chart, cname) : NULL;
		char how[96];
		if (WIFSIGNALED(er.status))
			snprintf(how, sizeof(how), "killed by signal %d%s", WTERMSIG(er.status),
				WTERMSIG(er.status) == SIGXCPU ? " (the CPU limit)" :
				WTERMSIG(er.status) == SIGXFSZ ? " (the file size limit)" : "");
		else
			snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(er.status));
		if (kind == RENDER_HELM && msg && strstr(msg, "missing in charts/ directory"))
			rc = plumb_error_set(PLUMB_EINVALID, "%s: a chart dependency is not vendored: plumb never "
				"downloads dependencies; commit them under charts/ (helm dependency build, then add "
				"the .tgz files): %s", what, msg);
		else
			rc = plumb_error_set(PLUMB_EINVALID, "%s: %s%s%s: %s", what, how, file ? ": file " : "",
				file ? file : "", msg ? msg : "");
		goto cleanup;
	}
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	out->seconds = er.seconds;
	out->peak_rss_kb = er.peak_rss_kb;
	if (kind == RENDER_HELM) {
		if ((rc = render_helm_filter_hooks(&out->yaml, &out->len, er.out, er.out_len)))
			goto cleanup;
	} else {
		out->yaml = er.out;
		out->len = er.out_len;
		er.out = NULL;
	}
cleanup:
	if (work)
		workdir_remove(work);
	render_exec_result_clear(&er);
	render_argv_free(argv);
	render_argv_free(envp);
	free(dir);
	free(chart);
	free(bin);
	free(work);
	free(tree);
	free(target);
	free(values_file);
	free(home);
	free(msg);
	free(file);
	free(cname);
	free(what);
	return rc;
}
