/* pkg/kube: kubeconfig (YAML/JSON, file or memory), in-cluster config,
 * credentials (token files, exec plugins). */
#include "kube/kube_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

extern char **environ;

#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 200000
/* Aliases are charged by the bytes they expand to (scalars and keys): a
 * kubeconfig without aliases never expands past its own size, so the input
 * cap is the expansion cap too. */
#define YAML_MAX_EXPANDED KUBE_CONFIG_MAX
#define TOKEN_REREAD_SECONDS 60.0
#define EXEC_TIMEOUT_SECONDS 30.0

/* ---- YAML -> cJSON -------------------------------------------------------- */

typedef struct {
	yaml_document_t *doc;
	size_t nodes;
	size_t bytes;       /* scalar and key bytes after alias expansion */
	const char *origin;
} yconv;

static int charge_bytes(yconv *cv, size_t n, const yaml_node_t *node)
{
	cv->bytes += n;
	if (cv->bytes > YAML_MAX_EXPANDED)
		return plumb_error_set(PLUMB_ETOOBIG, "kubeconfig %s: line %zu: expands to more than %u bytes (alias bomb?)",
			cv->origin, (size_t)node->start_mark.line + 1, YAML_MAX_EXPANDED);
	return 0;
}

static int yaml_node_to_json(cJSON **out, yconv *cv, yaml_node_t *node, int depth)
{
	cJSON *j = NULL;
	if (!node)
		return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: dangling YAML node", cv->origin);
	if (depth > YAML_MAX_DEPTH)
		return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: nested deeper than %d", cv->origin, YAML_MAX_DEPTH);
	if (++cv->nodes > YAML_MAX_NODES)
		return plumb_error_set(PLUMB_ETOOBIG, "kubeconfig %s: more than %d YAML nodes (alias bomb?)", cv->origin, YAML_MAX_NODES);

	switch (node->type) {
	case YAML_SCALAR_NODE: {
		const char *v = (const char *)node->data.scalar.value;
		size_t n = node->data.scalar.length;
		int rc = charge_bytes(cv, n + 1, node);
		if (rc < 0)
			return rc;
		if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
			if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
				j = cJSON_CreateTrue();
			else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
				j = cJSON_CreateFalse();
			else if (n == 0 || !strcmp(v, "null") || !strcmp(v, "~") || !strcmp(v, "Null") || !strcmp(v, "NULL"))
				j = cJSON_CreateNull();
		}
		if (!j) {
			if (strlen(v) != n)
				return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: line %zu: NUL byte in a string",
					cv->origin, (size_t)node->start_mark.line + 1);
			j = cJSON_CreateString(v);
		}
		break;
	}
	case YAML_SEQUENCE_NODE:
		j = cJSON_CreateArray();
		if (!j)
			break;
		for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
			cJSON *child = NULL;
			int rc = yaml_node_to_json(&child, cv, yaml_document_get_node(cv->doc, *it), depth + 1);
			if (rc < 0) {
				cJSON_Delete(j);
				return rc;
			}
			cJSON_AddItemToArray(j, child);
		}
		break;
	case YAML_MAPPING_NODE:
		j = cJSON_CreateObject();
		if (!j)
			break;
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(cv->doc, p->key);
			cJSON *child = NULL;
			int rc;
			if (!k || k->type != YAML_SCALAR_NODE) {
				cJSON_Delete(j);
				return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: line %zu: mapping key is not a string",
					cv->origin, k ? (size_t)k->start_mark.line + 1 : 0);
			}
			if ((rc = charge_bytes(cv, k->data.scalar.length + 1, k)) < 0) {
				cJSON_Delete(j);
				return rc;
			}
			rc = yaml_node_to_json(&child, cv, yaml_document_get_node(cv->doc, p->value), depth + 1);
			if (rc < 0) {
				cJSON_Delete(j);
				return rc;
			}
			/* Last key wins, as in most YAML readers. */
			cJSON_DeleteItemFromObjectCaseSensitive(j, (const char *)k->data.scalar.value);
			cJSON_AddItemToObject(j, (const char *)k->data.scalar.value, child);
		}
		break;
	default:
		return plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: empty YAML node", cv->origin);
	}
	if (!j)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	*out = j;
	return 0;
}

int kube_yaml_to_json(cJSON **out, const char *data, size_t len, const char *origin)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	int have_doc = 0, rc = 0;
	cJSON *j = NULL;
	yconv cv = { &doc, 0, 0, origin };

	if (len > KUBE_CONFIG_MAX)
		return plumb_error_set(PLUMB_ETOOBIG, "kubeconfig %s: larger than %u bytes", origin, KUBE_CONFIG_MAX);
	if (!yaml_parser_initialize(&parser))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: line %zu column %zu: %s", origin,
			(size_t)parser.problem_mark.line + 1, (size_t)parser.problem_mark.column + 1,
			parser.problem ? parser.problem : "YAML syntax error");
		goto cleanup;
	}
	have_doc = 1;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root) {
		rc = plumb_error_set(PLUMB_EINVALID, "kubeconfig %s: empty document", origin);
		goto cleanup;
	}
	rc = yaml_node_to_json(&j, &cv, root, 0);
	if (rc < 0)
		goto cleanup;
	*out = j;
	j = NULL;
cleanup:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	cJSON_Delete(j);
	return rc;
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

static char *dup_bytes_z(const char *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

static void secure_free(char *p, size_t n)
{
	if (!p)
		return;
	if (n == 0)
		n = strlen(p);
	explicit_bzero(p, n);
	free(p);
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
	secure_free(cfg->key, cfg->key_len);
	secure_free(cfg->token, 0);
	free(cfg->token_file);
	free(cfg->username);
	secure_free(cfg->password, 0);
	free(cfg->exec_command);
	free(cfg->exec_path);
	free_strv(cfg->exec_argv);
	free_strv(cfg->exec_env);
	free(cfg->exec_api_version);
	secure_free(cfg->dyn_token, 0);
	free(cfg->dyn_cert);
	secure_free(cfg->dyn_key, cfg->dyn_key_len);
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
		v[n] = dup_bytes_z(s, len);
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

/* ---- credentials ------------------------------------------------------------ */

int kube_config_refreshable(const kube_config *cfg)
{
	return cfg->token_file || cfg->exec_command;
}

void kube_creds_clear(kube_creds *creds)
{
	secure_free(creds->token, 0);
	free(creds->cert);
	secure_free(creds->key, creds->key_len);
	memset(creds, 0, sizeof(*creds));
}

static char *dup_bytes(const char *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

int kube_exec_credential_parse(kube_config *cfg, const char *data, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *status, *tok, *cert, *key, *exp;
	double expiry = 0;
	int rc = 0;
	if (!root)
		return plumb_error_set(PLUMB_EPROTO, "exec plugin %s: output is not JSON", cfg->exec_command ? cfg->exec_command : "");
	status = cJSON_GetObjectItemCaseSensitive(root, "status");
	tok = cJSON_GetObjectItemCaseSensitive(status, "token");
	cert = cJSON_GetObjectItemCaseSensitive(status, "clientCertificateData");
	key = cJSON_GetObjectItemCaseSensitive(status, "clientKeyData");
	exp = cJSON_GetObjectItemCaseSensitive(status, "expirationTimestamp");
	if (!cJSON_IsObject(status) || (!cJSON_IsString(tok) && !(cJSON_IsString(cert) && cJSON_IsString(key)))) {
		rc = plumb_error_set(PLUMB_EPROTO, "exec plugin %s: ExecCredential has no status.token or status.clientCertificateData/clientKeyData",
			cfg->exec_command ? cfg->exec_command : "");
		goto cleanup;
	}
	if (cJSON_IsString(exp) && plumb_time_parse(&expiry, exp->valuestring) < 0) {
		rc = plumb_error_set(PLUMB_EPROTO, "exec plugin %s: status.expirationTimestamp: not RFC 3339",
			cfg->exec_command ? cfg->exec_command : "");
		goto cleanup;
	}
	pthread_mutex_lock(&cfg->lock);
	secure_free(cfg->dyn_token, 0);
	free(cfg->dyn_cert);
	secure_free(cfg->dyn_key, cfg->dyn_key_len);
	cfg->dyn_token = cJSON_IsString(tok) ? plumb_strdup(tok->valuestring) : NULL;
	cfg->dyn_cert = cJSON_IsString(cert) ? plumb_strdup(cert->valuestring) : NULL;
	cfg->dyn_cert_len = cfg->dyn_cert ? strlen(cfg->dyn_cert) : 0;
	cfg->dyn_key = cJSON_IsString(key) ? plumb_strdup(key->valuestring) : NULL;
	cfg->dyn_key_len = cfg->dyn_key ? strlen(cfg->dyn_key) : 0;
	cfg->dyn_expiry = expiry;
	cfg->dyn_token_at = plumb_time_mono();
	pthread_mutex_unlock(&cfg->lock);
cleanup:
	if (root) {
		/* The answer holds secrets: wipe before freeing. */
		if (cJSON_IsString(tok))
			explicit_bzero(tok->valuestring, strlen(tok->valuestring));
		if (cJSON_IsString(key))
			explicit_bzero(key->valuestring, strlen(key->valuestring));
	}
	cJSON_Delete(root);
	return rc;
}

/* Runs the exec plugin; called with cfg->lock NOT held. */
static int run_exec(kube_config *cfg)
{
	int pipefd[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fa_init = 0, attr_init = 0, rc = 0, status = 0;
	pid_t pid = -1;
	char **envp = NULL;
	char *info = NULL;
	size_t nenv = 0, i = 0, j;
	plumb_buf out = PLUMB_BUF_INIT(KUBE_EXEC_OUTPUT_MAX);
	double limit = cfg->exec_timeout > 0 ? cfg->exec_timeout : EXEC_TIMEOUT_SECONDS;
	double deadline = plumb_time_mono() + limit;

	for (char **e = environ; e && *e; e++)
		nenv++;
	for (char **e = cfg->exec_env; e && *e; e++)
		nenv++;
	envp = calloc(nenv + 2, sizeof(char *));
	info = plumb_asprintf("KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}",
		cfg->exec_api_version);
	if (!envp || !info) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (char **e = environ; e && *e; e++)
		envp[i++] = *e;
	for (char **e = cfg->exec_env; e && *e; e++) {
		/* Override an inherited variable of the same name. */
		size_t nl = strcspn(*e, "=");
		for (j = 0; j < i; j++)
			if (!strncmp(envp[j], *e, nl + 1))
				break;
		envp[j] = *e;
		if (j == i)
			i++;
	}
	envp[i++] = info;
	envp[i] = NULL;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = plumb_error_set(PLUMB_EIO, "exec plugin %s: pipe: %s", cfg->exec_command, strerror(errno));
		goto cleanup;
	}
	posix_spawn_file_actions_init(&fa);
	fa_init = 1;
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	/* A process group of its own: a timeout kills what it started too. */
	posix_spawnattr_init(&attr);
	attr_init = 1;
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&attr, 0);
	if ((errno = cfg->exec_path ? posix_spawn(&pid, cfg->exec_path, &fa, &attr, cfg->exec_argv, envp)
			: posix_spawnp(&pid, cfg->exec_command, &fa, &attr, cfg->exec_argv, envp)) != 0) {
		pid = -1;
		rc = plumb_error_set(PLUMB_EAUTH, "exec plugin %s: cannot run: %s", cfg->exec_command, strerror(errno));
		goto cleanup;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	for (;;) {
		char chunk[4096];
		double left = deadline - plumb_time_mono();
		struct pollfd pfd = { pipefd[0], POLLIN, 0 };
		if (left <= 0) {
			rc = plumb_error_set(PLUMB_ETIMEOUT, "exec plugin %s: no answer within %g s", cfg->exec_command, limit);
			goto cleanup;
		}
		int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		ssize_t n = read(pipefd[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (plumb_buf_append(&out, chunk, (size_t)n) < 0) {
			rc = plumb_error_set(PLUMB_ETOOBIG, "exec plugin %s: output larger than %u bytes", cfg->exec_command, KUBE_EXEC_OUTPUT_MAX);
			goto cleanup;
		}
	}
	/* stdout closed; the exit is bounded by the same deadline. */
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			rc = plumb_error_set(PLUMB_EIO, "exec plugin %s: waitpid: %s", cfg->exec_command, strerror(errno));
			pid = -1;
			goto cleanup;
		}
		if (plumb_time_mono() >= deadline) {
			rc = plumb_error_set(PLUMB_ETIMEOUT, "exec plugin %s: did not exit within %g s", cfg->exec_command, limit);
			goto cleanup;
		}
		plumb_sleep(0.01);
	}
	pid = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		rc = plumb_error_set(PLUMB_EAUTH, "exec plugin %s: exited with status %d", cfg->exec_command,
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		goto cleanup;
	}
	rc = kube_exec_credential_parse(cfg, out.ptr ? out.ptr : "", out.len);
cleanup:
	if (pid > 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_init)
		posix_spawnattr_destroy(&attr);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (out.ptr)
		explicit_bzero(out.ptr, out.len);
	plumb_buf_free(&out);
	free(envp);
	free(info);
	return rc;
}

static int read_token_file(kube_config *cfg)
{
	char *tok = NULL;
	size_t len = 0;
	int rc = plumb_file_read(&tok, &len, cfg->token_file, KUBE_CRED_FILE_MAX);
	if (rc < 0)
		return plumb_error_prefix(rc == PLUMB_ETOOBIG ? rc : PLUMB_EAUTH, "token file");
	while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
		tok[--len] = '\0';
	if (len == 0) {
		free(tok);
		return plumb_error_set(PLUMB_EAUTH, "token file %s is empty", cfg->token_file);
	}
	pthread_mutex_lock(&cfg->lock);
	secure_free(cfg->dyn_token, 0);
	cfg->dyn_token = tok;
	cfg->dyn_token_at = plumb_time_mono();
	pthread_mutex_unlock(&cfg->lock);
	return 0;
}

/* Whether the dynamic credential must be fetched anew; cfg->lock held. */
static int creds_stale_locked(const kube_config *cfg, int force)
{
	if (cfg->exec_command)
		return force || (!cfg->dyn_token && !cfg->dyn_cert) ||
			(cfg->dyn_expiry > 0 && plumb_time_real() + 10 >= cfg->dyn_expiry);
	if (cfg->token_file)
		return force || !cfg->dyn_token || plumb_time_mono() - cfg->dyn_token_at >= TOKEN_REREAD_SECONDS;
	return 0;
}

int kube_config_creds_need_exec(kube_config *cfg, int force)
{
	int need;
	if (!cfg->exec_command)
		return 0;
	pthread_mutex_lock(&cfg->lock);
	need = creds_stale_locked(cfg, force & KUBE_CREDS_FORCE);
	pthread_mutex_unlock(&cfg->lock);
	return need;
}

int kube_config_creds(kube_creds *out, kube_config *cfg, int force)
{
	int rc = 0, need = 0;
	memset(out, 0, sizeof(*out));

	if (cfg->exec_command || cfg->token_file) {
		double seen;
		pthread_mutex_lock(&cfg->lock);
		need = creds_stale_locked(cfg, force & KUBE_CREDS_FORCE);
		seen = cfg->dyn_token_at;
		pthread_mutex_unlock(&cfg->lock);
		if (need && cfg->exec_command && (force & KUBE_CREDS_NO_EXEC))
			return plumb_error_set(PLUMB_EAUTH, "exec plugin %s: no current credential on this thread",
				cfg->exec_command);
		if (need) {
			/* One refresh at a time: who waited takes the result of the
			 * refresh that ran meanwhile instead of running another. */
			pthread_mutex_lock(&cfg->refresh_lock);
			pthread_mutex_lock(&cfg->lock);
			need = cfg->dyn_token_at == seen;
			pthread_mutex_unlock(&cfg->lock);
			if (need)
				rc = cfg->exec_command ? run_exec(cfg) : read_token_file(cfg);
			pthread_mutex_unlock(&cfg->refresh_lock);
			if (rc < 0)
				return rc;
		}
	}
	pthread_mutex_lock(&cfg->lock);
	if (cfg->dyn_token)
		out->token = plumb_strdup(cfg->dyn_token);
	else if (cfg->token)
		out->token = plumb_strdup(cfg->token);
	if (cfg->dyn_cert && cfg->dyn_key) {
		out->cert = dup_bytes(cfg->dyn_cert, cfg->dyn_cert_len);
		out->cert_len = cfg->dyn_cert_len;
		out->key = dup_bytes(cfg->dyn_key, cfg->dyn_key_len);
		out->key_len = cfg->dyn_key_len;
	} else if (cfg->cert && cfg->key) {
		out->cert = dup_bytes(cfg->cert, cfg->cert_len);
		out->cert_len = cfg->cert_len;
		out->key = dup_bytes(cfg->key, cfg->key_len);
		out->key_len = cfg->key_len;
	}
	pthread_mutex_unlock(&cfg->lock);
	out->username = cfg->username;
	out->password = cfg->password;
	if ((cfg->dyn_token || cfg->token) && !out->token) {
		kube_creds_clear(out);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	return 0;
}
