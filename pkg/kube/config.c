/* pkg/kube: kubeconfig (YAML/JSON, file or memory, read with pkg/yamljson's
 * kubeconfig typing), the lockdown of a tenant's kubeconfig, in-cluster
 * config. The credentials they name are fetched in creds.c. */
#include "kube/kube_internal.h"

#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "yamljson/yamljson.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 200000
/* Aliases are charged by the bytes they expand to (scalars and keys): a
 * kubeconfig without aliases never expands past its own size, so the input
 * cap is the expansion cap too. */
#define YAML_MAX_EXPANDED KUBE_CONFIG_MAX

/* ---- YAML -> cJSON -------------------------------------------------------- */

int kube_yaml_to_json(cJSON **out, const char *data, size_t len, const char *origin)
{
	const yamljson_opts opts = {
		.typing = YAMLJSON_KUBECONFIG,
		.max_nodes = YAML_MAX_NODES,
		.max_doc_bytes = YAML_MAX_EXPANDED,
		.max_depth = YAML_MAX_DEPTH,
	};
	yamljson_error err;
	cJSON *j = NULL;
	int rc;

	if (len > KUBE_CONFIG_MAX)
		return plumb_error_set(PLUMB_ETOOBIG, "kubeconfig %s: larger than %u bytes", origin, KUBE_CONFIG_MAX);
	if ((rc = yamljson_first(&j, &err, data, len, &opts)) < 0) {
		if (err.line)
			return plumb_error_set(rc, "kubeconfig %s: line %d column %d: %s", origin, err.line, err.col, err.msg);
		return plumb_error_set(rc, "kubeconfig %s: %s", origin, err.msg);
	}
	if (!j)
		return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: empty document", origin);
	*out = j;
	return 0;
}

/* ---- kubeconfig ------------------------------------------------------------ */

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void kube_config_free(kube_config *cfg)
{
	if (!cfg)
		return;
	if (atomic_fetch_sub(&cfg->refs, 1) != 1)
		return;
	free(cfg->origin);
	free(cfg->context);
	free(cfg->server);
	free(cfg->ns);
	free(cfg->tls_server_name);
	free(cfg->proxy_url);
	free(cfg->ca);
	free(cfg->cert);
	kube_secure_free(cfg->key, cfg->key_len);
	kube_secure_free(cfg->token, 0);
	free(cfg->token_file);
	free(cfg->username);
	kube_secure_free(cfg->password, 0);
	free(cfg->exec_command);
	free(cfg->exec_path);
	free_strv(cfg->exec_argv);
	free_strv(cfg->exec_env);
	free(cfg->exec_api_version);
	kube_secure_free(cfg->dyn_token, 0);
	free(cfg->dyn_cert);
	kube_secure_free(cfg->dyn_key, cfg->dyn_key_len);
	pthread_mutex_destroy(&cfg->lock);
	pthread_mutex_destroy(&cfg->refresh_lock);
	free(cfg);
}

kube_config *kube_config_ref(kube_config *cfg)
{
	atomic_fetch_add(&cfg->refs, 1);
	return cfg;
}

static kube_config *config_alloc(const char *origin)
{
	kube_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return NULL;
	atomic_init(&cfg->refs, 1);
	pthread_mutex_init(&cfg->lock, NULL);
	pthread_mutex_init(&cfg->refresh_lock, NULL);
	cfg->origin = plumb_strdup(origin);
	if (!cfg->origin) {
		kube_config_free(cfg);
		return NULL;
	}
	return cfg;
}

const char *kube_config_namespace(const kube_config *cfg) { return cfg->ns && *cfg->ns ? cfg->ns : "default"; }
const char *kube_config_server(const kube_config *cfg) { return cfg->server ? cfg->server : ""; }
const char *kube_config_context(const kube_config *cfg) { return cfg->context ? cfg->context : ""; }

/* Context for field errors: "kubeconfig <origin>: <path>: ..." */
typedef struct {
	const char *origin;
	const char *dir;   /* base for relative paths; NULL = cwd */
	const kube_config_policy *pol;  /* NULL = the lockdown */
} kctx;

static int kctx_locked(const kctx *k)
{
	return !k->pol || !k->pol->trusted;
}

static int field_err(const kctx *k, const char *path, const char *what)
{
	return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: %s: %s", k->origin, path, what);
}

/* Optional string field: *out borrowed (NULL when absent/null). */
static int get_str(const char **out, const kctx *k, const cJSON *obj, const char *parent, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	char path[512];
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v)) {
		snprintf(path, sizeof(path), "%s.%s", parent, name);
		return field_err(k, path, "must be a string");
	}
	*out = v->valuestring[0] ? v->valuestring : NULL;
	return 0;
}

static int get_bool(int *out, const kctx *k, const cJSON *obj, const char *parent, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	char path[512];
	*out = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v)) {
		snprintf(path, sizeof(path), "%s.%s", parent, name);
		return field_err(k, path, "must be true or false");
	}
	*out = cJSON_IsTrue(v);
	return 0;
}

/* Finds the entry named name in the list key (clusters, users, contexts);
 * *index is its position, *body its `cluster:`/`user:`/`context:` map. */
static int find_named(const cJSON **body, int *index, const kctx *k, const cJSON *root,
	const char *list, const char *inner, const char *name, const char *ref_field)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, list);
	int i = 0;
	char path[512];
	if (arr && !cJSON_IsNull(arr) && !cJSON_IsArray(arr))
		return field_err(k, list, "must be a list");
	cJSON *e;
	cJSON_ArrayForEach(e, arr) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
		if (!cJSON_IsObject(e)) {
			snprintf(path, sizeof(path), "%s[%d]", list, i);
			return field_err(k, path, "must be a map");
		}
		if (!cJSON_IsString(n)) {
			snprintf(path, sizeof(path), "%s[%d].name", list, i);
			return field_err(k, path, "missing or not a string");
		}
		if (!strcmp(n->valuestring, name)) {
			const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, inner);
			if (!cJSON_IsObject(b)) {
				snprintf(path, sizeof(path), "%s[%d].%s", list, i, inner);
				return field_err(k, path, "missing or not a map");
			}
			*body = b;
			*index = i;
			return 0;
		}
		i++;
	}
	snprintf(path, sizeof(path), "%s", ref_field);
	return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: %s: no %s named \"%s\"", k->origin, path, list, name);
}

static char *resolve_path(const kctx *k, const char *p)
{
	if (p[0] == '/' || !k->dir)
		return plumb_strdup(p);
	return plumb_asprintf("%s/%s", k->dir, p);
}

/* Reads X-data (base64) or X (file path) into *out. */
static int load_blob(char **out, size_t *outlen, const kctx *k, const cJSON *obj,
	const char *parent, const char *file_field, const char *data_field)
{
	const char *data = NULL, *file = NULL;
	char path[512];
	int rc;
	*out = NULL;
	*outlen = 0;
	if ((rc = get_str(&data, k, obj, parent, data_field)) < 0 ||
	    (rc = get_str(&file, k, obj, parent, file_field)) < 0)
		return rc;
	if (data) {
		rc = plumb_base64_decode(out, outlen, data, strlen(data));
		if (rc < 0 || *outlen == 0) {
			free(*out);
			*out = NULL;
			snprintf(path, sizeof(path), "%s.%s", parent, data_field);
			return field_err(k, path, "not valid base64");
		}
		return 0;
	}
	if (file) {
		char *full = resolve_path(k, file);
		if (!full)
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		rc = plumb_file_read(out, outlen, full, KUBE_CRED_FILE_MAX);
		free(full);
		if (rc < 0) {
			snprintf(path, sizeof(path), "%s.%s", parent, file_field);
			return plumb_error_prefix(rc == PLUMB_ETOOBIG ? rc : PLUMB_EINVALID, "kubeconfig %s: %s", k->origin, path);
		}
	}
	return 0;
}

static int check_pem(const kctx *k, const char *parent, const char *field, const char *blob, size_t len, const char *marker)
{
	char path[512];
	if (!blob)
		return 0;
	if (!memmem(blob, len, "-----BEGIN ", 11) || (marker && !memmem(blob, len, marker, strlen(marker)))) {
		snprintf(path, sizeof(path), "%s.%s", parent, field);
		return field_err(k, path, "not a PEM block");
	}
	return 0;
}

/* ---- the lockdown for kubeconfigs a tenant wrote ---------------------------- */

static const char *const cluster_inline[] = {
	"server", "certificate-authority-data", "tls-server-name", "insecure-skip-tls-verify",
	"proxy-url", "extensions", "disable-compression", NULL,
};
static const char *const user_inline[] = {
	"token", "client-certificate-data", "client-key-data", "username", "password", "exec",
	"extensions", NULL,
};

static int in_list(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (!strcmp(*list, s))
			return 1;
	return 0;
}

/* Why field (not in the inline list) is refused. */
static const char *refusal_reason(const char *field)
{
	if (!strcmp(field, "tokenFile") || !strcmp(field, "certificate-authority") ||
	    !strcmp(field, "client-certificate") || !strcmp(field, "client-key"))
		return "a file path would read plumbd's own files; use the -data field or token";
	if (!strcmp(field, "auth-provider"))
		return "auth providers run code on plumbd's machine";
	if (!strncmp(field, "as", 2) && (!field[2] || field[2] == '-'))
		return "impersonation is not taken from a kubeconfig Secret";
	return "not an inline field a kubeconfig from a Secret may carry";
}

/* Appends "path: refused: why" to the list of refusals. */
static void refuse(plumb_buf *b, const char *parent, const char *field, const char *why)
{
	if (b->len)
		plumb_buf_puts(b, "; ");
	plumb_buf_printf(b, "%s%s%s: refused: %s", parent, field ? "." : "", field ? field : "", why);
}

/* Environment variables a tenant's exec plugin may not set: they steer the
 * dynamic loader, the command lookup or a shell, not the plugin. */
static int env_name_refused(const char *name)
{
	static const char *const exact[] = { "PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS",
		"PS4", "GCONV_PATH", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "TMPDIR", "NLSPATH", NULL };
	return in_list(exact, name) || !strncmp(name, "LD_", 3) || !strncmp(name, "MALLOC_", 7) ||
		!strncmp(name, "GLIBC_", 6) || !strncmp(name, "BASH_FUNC_", 10);
}

static void check_exec(plumb_buf *b, const kctx *k, const cJSON *exec, const char *uparent)
{
	char p[600];
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(exec, "command");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(exec, "env"), *e;
	size_t i = 0;
	snprintf(p, sizeof(p), "%s.exec", uparent);
	if (!cJSON_IsObject(exec) || !cJSON_IsString(cmd)) {
		refuse(b, p, NULL, "exec plugins run a command on plumbd's machine");
		return;
	}
	if (strchr(cmd->valuestring, '/')) {
		char why[300];
		snprintf(why, sizeof(why), "\"%.120s\" is a path; an exec plugin the operator allows is named by its "
			"command name and looked up in plumbd's PATH", cmd->valuestring);
		refuse(b, p, "command", why);
		return;
	}
	if (!in_list(k->pol ? k->pol->exec_plugins : NULL, cmd->valuestring)) {
		char why[300];
		snprintf(why, sizeof(why), "exec plugins run a command on plumbd's machine (\"%.64s\" is not in "
			"plumbd's --allow-exec-plugins)", cmd->valuestring);
		refuse(b, p, NULL, why);
		return;
	}
	if (!cJSON_IsArray(env))
		env = NULL;
	cJSON_ArrayForEach(e, env) {
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
		if (cJSON_IsString(nm) && env_name_refused(nm->valuestring)) {
			char ep[640], why[200];
			snprintf(ep, sizeof(ep), "%s.env[%zu]", p, i);
			snprintf(why, sizeof(why), "%.64s would steer how plumbd runs the plugin", nm->valuestring);
			refuse(b, ep, NULL, why);
		}
		i++;
	}
}

/* Refuses, in one message naming every field, what a tenant's kubeconfig
 * may not carry. Runs before anything is read or looked up. */
static int check_lockdown(const kctx *k, const cJSON *cluster, const char *cparent,
	const cJSON *user, const char *uparent)
{
	plumb_buf b = PLUMB_BUF_INIT(8192);
	const kube_config_policy none = { 0 };
	const kube_config_policy *pol = k->pol ? k->pol : &none;
	const cJSON *it;
	int rc = 0;

	cJSON_ArrayForEach(it, cluster) {
		if (!in_list(cluster_inline, it->string))
			refuse(&b, cparent, it->string, refusal_reason(it->string));
	}
	it = cJSON_GetObjectItemCaseSensitive(cluster, "server");
	if (cJSON_IsString(it) && !strncmp(it->valuestring, "http://", 7) && !pol->allow_insecure)
		refuse(&b, cparent, "server", "http:// would send the credentials in clear text "
			"(an operator may allow it: --allow-insecure-targets)");
	it = cJSON_GetObjectItemCaseSensitive(cluster, "insecure-skip-tls-verify");
	if (cJSON_IsTrue(it) && !pol->allow_insecure)
		refuse(&b, cparent, "insecure-skip-tls-verify", "TLS is verified for every target "
			"(an operator may allow skipping it: --allow-insecure-targets)");
	it = cJSON_GetObjectItemCaseSensitive(cluster, "proxy-url");
	if (it && !cJSON_IsNull(it) && !pol->allow_proxy)
		refuse(&b, cparent, "proxy-url", "a proxy is used only when the operator allows it "
			"(--allow-target-proxies)");
	cJSON_ArrayForEach(it, user) {
		if (!strcmp(it->string, "exec")) {
			if (!cJSON_IsNull(it))
				check_exec(&b, k, it, uparent);
		} else if (!in_list(user_inline, it->string)) {
			refuse(&b, uparent, it->string, refusal_reason(it->string));
		}
	}
	if (b.len)
		rc = plumb_error_set(PLUMB_EINSECURE, "kubeconfig %s: %s", k->origin, b.ptr);
	plumb_buf_free(&b);
	return rc;
}

/* The absolute path of name in our own PATH (absolute entries only). */
static char *lookup_in_path(const char *name)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		if (n > 0 && path[0] == '/') {
			struct stat st;
			char *full = plumb_asprintf("%.*s/%s", (int)n, path, name);
			if (!full)
				return NULL;
			if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
				return full;
			free(full);
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

int kube_exec_plugins_parse(char ***out, const char *list)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	const char *p = list ? list : "";
	*out = NULL;
	while (*p) {
		size_t len = strcspn(p, ",");
		const char *s = p;
		while (len > 0 && (*s == ' ' || *s == '\t'))
			s++, len--;
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0 || memchr(s, '/', len)) {
			kube_exec_plugins_free(v);
			return plumb_error_set(PLUMB_EINVALID, "exec plugin names: \"%.*s\": want a command name "
				"(looked up in PATH), not empty and without '/'", (int)len, s);
		}
		if (n + 2 > cap) {
			size_t nc = cap ? cap * 2 : 8;
			char **nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				kube_exec_plugins_free(v);
				return plumb_error_set(PLUMB_ENOMEM, "out of memory");
			}
			v = nv;
			cap = nc;
		}
		v[n] = kube_dup_bytes(s, len);
		if (!v[n]) {
			kube_exec_plugins_free(v);
			return plumb_error_set(PLUMB_ENOMEM, "out of memory");
		}
		v[++n] = NULL;
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	if (!v && !(v = calloc(1, sizeof(*v))))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	*out = v;
	return 0;
}

void kube_exec_plugins_free(char **names)
{
	free_strv(names);
}

static int parse_exec(kube_config *cfg, const kctx *k, const cJSON *exec, const char *parent)
{
	char path[512];
	const char *cmd = NULL, *apiv = NULL;
	const cJSON *args, *env, *e;
	size_t n = 0, i = 0;
	int rc;

	if (!cJSON_IsObject(exec))
		return field_err(k, parent, "must be a map");
	if ((rc = get_str(&cmd, k, exec, parent, "command")) < 0 ||
	    (rc = get_str(&apiv, k, exec, parent, "apiVersion")) < 0)
		return rc;
	if (!cmd) {
		snprintf(path, sizeof(path), "%s.command", parent);
		return field_err(k, path, "missing");
	}
	args = cJSON_GetObjectItemCaseSensitive(exec, "args");
	env = cJSON_GetObjectItemCaseSensitive(exec, "env");
	if (args && !cJSON_IsNull(args) && !cJSON_IsArray(args)) {
		snprintf(path, sizeof(path), "%s.args", parent);
		return field_err(k, path, "must be a list");
	}
	if (env && !cJSON_IsNull(env) && !cJSON_IsArray(env)) {
		snprintf(path, sizeof(path), "%s.env", parent);
		return field_err(k, path, "must be a list");
	}
	n = (size_t)cJSON_GetArraySize(args);
	cfg->exec_argv = calloc(n + 2, sizeof(char *));
	cfg->exec_env = calloc((size_t)cJSON_GetArraySize(env) + 1, sizeof(char *));
	cfg->exec_command = plumb_strdup(cmd);
	cfg->exec_api_version = plumb_strdup(apiv ? apiv : "client.authentication.k8s.io/v1");
	if (!cfg->exec_argv || !cfg->exec_env || !cfg->exec_command || !cfg->exec_api_version)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (kctx_locked(k)) {
		/* check_lockdown() allowed the name; only our own PATH is searched. */
		cfg->exec_path = lookup_in_path(cmd);
		if (!cfg->exec_path) {
			snprintf(path, sizeof(path), "%s.command", parent);
			return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: %s: \"%.64s\" not found in plumbd's PATH",
				k->origin, path, cmd);
		}
	}
	cfg->exec_argv[0] = plumb_strdup(cmd);
	i = 1;
	cJSON_ArrayForEach(e, args) {
		if (!cJSON_IsString(e)) {
			snprintf(path, sizeof(path), "%s.args[%zu]", parent, i - 1);
			return field_err(k, path, "must be a string");
		}
		cfg->exec_argv[i++] = plumb_strdup(e->valuestring);
	}
	i = 0;
	cJSON_ArrayForEach(e, env) {
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
		const cJSON *vl = cJSON_GetObjectItemCaseSensitive(e, "value");
		if (!cJSON_IsString(nm) || !nm->valuestring[0] || strchr(nm->valuestring, '=') ||
		    (vl && !cJSON_IsString(vl))) {
			snprintf(path, sizeof(path), "%s.env[%zu]", parent, i);
			return field_err(k, path, "want {name: NAME, value: string}");
		}
		cfg->exec_env[i++] = plumb_asprintf("%s=%s", nm->valuestring, vl ? vl->valuestring : "");
	}
	return 0;
}

static int parse_kubeconfig(kube_config **out, const cJSON *root, const kctx *k, const char *want_context)
{
	kube_config *cfg = NULL;
	const char *ctxname = want_context, *clname = NULL, *uname = NULL, *ns = NULL, *s = NULL;
	const cJSON *ctx = NULL, *cluster = NULL, *user = NULL;
	int ci = 0, cli = 0, ui = 0, rc = 0;
	char parent[256], cparent[256], uparent[256];

	if (!cJSON_IsObject(root))
		return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: not a map", k->origin);
	if (!ctxname) {
		if ((rc = get_str(&ctxname, k, root, "", "current-context")) < 0)
			return rc;
		if (!ctxname)
			return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: current-context: missing and no context named", k->origin);
	}
	if ((rc = find_named(&ctx, &ci, k, root, "contexts", "context", ctxname,
			want_context ? "context" : "current-context")) < 0)
		return rc;
	snprintf(parent, sizeof(parent), "contexts[%d].context", ci);
	if ((rc = get_str(&clname, k, ctx, parent, "cluster")) < 0 ||
	    (rc = get_str(&uname, k, ctx, parent, "user")) < 0 ||
	    (rc = get_str(&ns, k, ctx, parent, "namespace")) < 0)
		return rc;
	if (!clname) {
		char p[300];
		snprintf(p, sizeof(p), "%s.cluster", parent);
		return field_err(k, p, "missing");
	}
	snprintf(parent, sizeof(parent), "contexts[%d].context.cluster", ci);
	if ((rc = find_named(&cluster, &cli, k, root, "clusters", "cluster", clname, parent)) < 0)
		return rc;
	if (uname) {
		snprintf(parent, sizeof(parent), "contexts[%d].context.user", ci);
		if ((rc = find_named(&user, &ui, k, root, "users", "user", uname, parent)) < 0)
			return rc;
	}
	if (kctx_locked(k)) {
		snprintf(cparent, sizeof(cparent), "clusters[%d].cluster", cli);
		snprintf(uparent, sizeof(uparent), "users[%d].user", ui);
		if ((rc = check_lockdown(k, cluster, cparent, user, uparent)) < 0)
			return rc;
	}

	cfg = config_alloc(k->origin);
	if (!cfg)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	cfg->context = plumb_strdup(ctxname);
	cfg->ns = plumb_strdup(ns ? ns : "default");

	snprintf(cparent, sizeof(cparent), "clusters[%d].cluster", cli);
	if ((rc = get_str(&s, k, cluster, cparent, "server")) < 0)
		goto cleanup;
	if (!s || (strncmp(s, "https://", 8) && strncmp(s, "http://", 7))) {
		char p[300];
		snprintf(p, sizeof(p), "%s.server", cparent);
		rc = field_err(k, p, s ? "want an https:// URL" : "missing");
		goto cleanup;
	}
	cfg->server = plumb_strdup(s);
	/* Paths are appended: drop a trailing slash. */
	while (cfg->server && strlen(cfg->server) > 8 && cfg->server[strlen(cfg->server) - 1] == '/')
		cfg->server[strlen(cfg->server) - 1] = '\0';
	if ((rc = get_bool(&cfg->insecure, k, cluster, cparent, "insecure-skip-tls-verify")) < 0 ||
	    (rc = get_str(&s, k, cluster, cparent, "tls-server-name")) < 0)
		goto cleanup;
	cfg->tls_server_name = plumb_strdup(s);
	if ((rc = get_str(&s, k, cluster, cparent, "proxy-url")) < 0)
		goto cleanup;
	if (s) {
		if (strncmp(s, "http://", 7) && strncmp(s, "https://", 8) && strncmp(s, "socks5://", 9) &&
		    strncmp(s, "socks5h://", 10)) {
			char p[300];
			snprintf(p, sizeof(p), "%s.proxy-url", cparent);
			rc = field_err(k, p, "want an http://, https:// or socks5:// URL");
			goto cleanup;
		}
		if (!(cfg->proxy_url = plumb_strdup(s))) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
	}
	if ((rc = load_blob(&cfg->ca, &cfg->ca_len, k, cluster, cparent, "certificate-authority", "certificate-authority-data")) < 0 ||
	    (rc = check_pem(k, cparent, cJSON_GetObjectItem(cluster, "certificate-authority-data") ? "certificate-authority-data" : "certificate-authority",
			cfg->ca, cfg->ca_len, "CERTIFICATE")) < 0)
		goto cleanup;

	if (user) {
		const cJSON *exec;
		snprintf(uparent, sizeof(uparent), "users[%d].user", ui);
		if ((rc = load_blob(&cfg->cert, &cfg->cert_len, k, user, uparent, "client-certificate", "client-certificate-data")) < 0 ||
		    (rc = check_pem(k, uparent, cJSON_GetObjectItem(user, "client-certificate-data") ? "client-certificate-data" : "client-certificate",
				cfg->cert, cfg->cert_len, "CERTIFICATE")) < 0 ||
		    (rc = load_blob(&cfg->key, &cfg->key_len, k, user, uparent, "client-key", "client-key-data")) < 0 ||
		    (rc = check_pem(k, uparent, cJSON_GetObjectItem(user, "client-key-data") ? "client-key-data" : "client-key",
				cfg->key, cfg->key_len, "PRIVATE KEY")) < 0)
			goto cleanup;
		if (!cfg->cert != !cfg->key) {
			char p[300];
			snprintf(p, sizeof(p), "%s.%s", uparent, cfg->cert ? "client-key" : "client-certificate");
			rc = field_err(k, p, "missing (a client certificate needs both certificate and key)");
			goto cleanup;
		}
		if ((rc = get_str(&s, k, user, uparent, "token")) < 0)
			goto cleanup;
		cfg->token = plumb_strdup(s);
		if ((rc = get_str(&s, k, user, uparent, "tokenFile")) < 0)
			goto cleanup;
		if (s && !cfg->token)
			cfg->token_file = resolve_path(k, s);
		if ((rc = get_str(&s, k, user, uparent, "username")) < 0)
			goto cleanup;
		cfg->username = plumb_strdup(s);
		if ((rc = get_str(&s, k, user, uparent, "password")) < 0)
			goto cleanup;
		cfg->password = plumb_strdup(s);
		exec = cJSON_GetObjectItemCaseSensitive(user, "exec");
		if (exec && !cJSON_IsNull(exec)) {
			char p[300];
			snprintf(p, sizeof(p), "%s.exec", uparent);
			if ((rc = parse_exec(cfg, k, exec, p)) < 0)
				goto cleanup;
		}
		if (cJSON_GetObjectItemCaseSensitive(user, "auth-provider")) {
			char p[300];
			snprintf(p, sizeof(p), "%s.auth-provider", uparent);
			rc = field_err(k, p, "not supported (use exec)");
			goto cleanup;
		}
	}
	if (!cfg->context || !cfg->ns || !cfg->server) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	*out = cfg;
	cfg = NULL;
cleanup:
	kube_config_free(cfg);
	return rc;
}

int kube_config_load_memory(kube_config **out, const char *data, size_t len,
	const char *context, const char *origin, const kube_config_policy *policy)
{
	cJSON *root = NULL;
	kctx k = { origin ? origin : "kubeconfig", NULL, policy };
	int rc = kube_yaml_to_json(&root, data, len, k.origin);
	if (rc < 0)
		return rc;
	rc = parse_kubeconfig(out, root, &k, context);
	cJSON_Delete(root);
	return rc;
}

int kube_config_load_file(kube_config **out, const char *path, const char *context)
{
	char *data = NULL, *dir = NULL, *slash;
	size_t len = 0;
	cJSON *root = NULL;
	int rc = plumb_file_read(&data, &len, path, KUBE_CONFIG_MAX);
	if (rc < 0)
		return plumb_error_prefix(rc, "kubeconfig %s", path);
	dir = plumb_strdup(path);
	if (!dir) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	static const kube_config_policy trusted = { .trusted = 1 };
	kctx k = { path, slash ? (dir[0] ? dir : "/") : NULL, &trusted };
	if ((rc = kube_yaml_to_json(&root, data, len, path)) < 0)
		goto cleanup;
	rc = parse_kubeconfig(out, root, &k, context);
cleanup:
	cJSON_Delete(root);
	free(dir);
	free(data);
	return rc;
}

int kube_config_in_cluster(kube_config **out, const char *dir)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	kube_config *cfg = NULL;
	char *path = NULL, *ns = NULL;
	size_t len = 0;
	int rc = 0;

	if (!dir)
		dir = "/var/run/secrets/kubernetes.io/serviceaccount";
	if (!host || !*host || !port || !*port)
		return plumb_error_set(PLUMB_EINVALID, "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
	cfg = config_alloc("in-cluster");
	if (!cfg)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	cfg->context = plumb_strdup("");
	cfg->server = strchr(host, ':') ? plumb_asprintf("https://[%s]:%s", host, port)
		: plumb_asprintf("https://%s:%s", host, port);
	cfg->token_file = plumb_asprintf("%s/token", dir);
	path = plumb_asprintf("%s/ca.crt", dir);
	if (!cfg->context || !cfg->server || !cfg->token_file || !path) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	if ((rc = plumb_file_read(&cfg->ca, &cfg->ca_len, path, KUBE_CRED_FILE_MAX)) < 0) {
		rc = plumb_error_prefix(rc, "in-cluster config");
		goto cleanup;
	}
	free(path);
	path = plumb_asprintf("%s/namespace", dir);
	if (path && plumb_file_read(&ns, &len, path, 4096) == 0) {
		while (len > 0 && (ns[len - 1] == '\n' || ns[len - 1] == ' ' || ns[len - 1] == '\r'))
			ns[--len] = '\0';
		cfg->ns = ns;
		ns = NULL;
	} else {
		cfg->ns = plumb_strdup("default");
	}
	/* Read the token now, so a missing token fails here and not on the first request. */
	{
		kube_creds cr;
		if ((rc = kube_config_creds(&cr, cfg, 1)) < 0) {
			rc = plumb_error_prefix(rc, "in-cluster config");
			goto cleanup;
		}
		kube_creds_clear(&cr);
	}
	plumb_error_clear();
	*out = cfg;
	cfg = NULL;
cleanup:
	free(path);
	free(ns);
	kube_config_free(cfg);
	return rc;
}
