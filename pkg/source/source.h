/*
 * pkg/source — the source stage: from a GitSync's spec.git (url, ref, path,
 * credentials) to a commit id and the manifest files under path at that
 * commit.
 *
 * Every repository URL gets one bare mirror in a cache directory per set of
 * credentials it is fetched with: the mirror's name is a hash of the URL
 * and the credentials' id (source_credentials_id(): an HMAC of every
 * credential field under the cache's own random salt, never the values),
 * so a caller can only read what was fetched with the credentials it
 * presents, never what someone else's credentials fetched. Fetches
 * are incremental and serialised per mirror (a thread lock plus an flock on the
 * mirror, so two processes sharing a cache are serialised too); different
 * URLs fetch in parallel. Files are read straight from the object database:
 * no checkout, no work tree.
 *
 * Transports: https:// (basic auth or bearer token, optional CA bundle),
 * ssh:// and scp-like user@host:path (private key, mandatory known_hosts),
 * file:// and local paths.
 *
 * Errors are the PLUMB_E* codes of base.h with a one-line message from
 * plumb_error_last(). Messages name the URL (userinfo removed), the ref and
 * the path, never a credential.
 *
 *   PLUMB_EAUTH        credentials rejected or missing
 *   PLUMB_EUNREACHABLE name did not resolve, connection refused, no route
 *   PLUMB_EHOSTKEY     SSH host key unknown or changed (message says which)
 *   PLUMB_ETLS         server certificate not trusted
 *   PLUMB_ETIMEOUT     the operation ran past its timeout
 *   PLUMB_ENOTFOUND    repository, ref ("branch ... not found") or path
 *                      ("path ... not found") does not exist
 *   PLUMB_ESTALE       a commit that exists but no ref reaches any more
 *   PLUMB_ETOOBIG      a read cap: file size, total size or file count
 *   PLUMB_EINVALID     bad input; a symlink or submodule under path
 */
#ifndef PLUMB_SOURCE_H
#define PLUMB_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* ---- credentials ----------------------------------------------------------
 * Filled from a Secret's data. Every field may be NULL. Values are copied;
 * source_credentials_free() wipes them before freeing.
 *   username, password  HTTPS basic auth. With SSH, password is the
 *                       passphrase of identity (as in Flux).
 *   bearer_token        HTTPS "Authorization: Bearer <token>".
 *   identity            SSH private key (PEM or OpenSSH format).
 *   known_hosts         OpenSSH known_hosts text; required for SSH.
 *   ca_file             PEM CA bundle (the data, not a path). When given, the
 *                       HTTPS server certificate must chain to it (the system
 *                       store is then not consulted).
 */
typedef struct {
	char *username;
	char *password;
	char *bearer_token;
	char *identity;
	char *known_hosts;
	char *ca_file;
} source_credentials;

/* Copies value (len bytes, may contain no NUL) into the field named key
 * (a Secret data key: "username", "password", "bearerToken", "identity",
 * "known_hosts", "caFile"). Unknown keys are ignored and return 0.
 * PLUMB_EINVALID for an embedded NUL, a value over 1 MiB, or a token or
 * username with control characters (message names the key, not the value). */
int source_credentials_set(source_credentials *creds, const char *key,
	const char *value, size_t len);

/* Allocates *out from a Secret's "data" object (values base64, as the API
 * server returns them). Caller frees with source_credentials_free(). */
int source_credentials_from_secret_data(source_credentials **out, const cJSON *data);

/* Wipes and frees every field, then creds itself. NULL-safe. */
void source_credentials_free(source_credentials *creds);

/* ---- known_hosts ------------------------------------------------------------
 * Exposed for tests and for plumbctl: checks one host key against
 * known_hosts text. host is "name" for port 22 and matched as "[name]:port"
 * otherwise; hashed (|1|salt|hash) entries, comma lists, '*'/'?' wildcards,
 * '!' negation and @revoked are understood; @cert-authority lines are
 * ignored.
 */
typedef enum {
	SOURCE_HOSTKEY_OK = 0,
	SOURCE_HOSTKEY_UNKNOWN,   /* no key for this host (of this type) */
	SOURCE_HOSTKEY_CHANGED,   /* host listed with a different key of this type */
	SOURCE_HOSTKEY_REVOKED,   /* key marked @revoked */
} source_hostkey_result;

/* keytype is the SSH name ("ssh-ed25519"), key the raw key blob (the
 * base64-decoded second field of a known_hosts line). Never fails. */
source_hostkey_result source_known_hosts_check(const char *known_hosts,
	const char *host, int port, const char *keytype,
	const unsigned char *key, size_t keylen);

/* ---- the cache ------------------------------------------------------------ */
typedef struct source_cache source_cache;

/* Opens (and creates, mode 0700) a cache of bare mirrors under dir.
 * Initialises libgit2 once per process. Caller frees with
 * source_cache_free(). */
int source_cache_new(source_cache **out, const char *dir);
/* Frees the handle (not the mirrors on disk). No fetch may be running.
 * NULL-safe. */
void source_cache_free(source_cache *cache);

/* The id of creds for this cache (64 hex chars), "" when creds is NULL or
 * has no field set (anonymous). Pass it to source_resolve(),
 * source_read() and source_changed(); source_fetch() computes it itself.
 * It is a secret-derived value: keep it out of logs, status and metrics. */
void source_credentials_id(char out[65], const source_cache *cache, const source_credentials *creds);

/* The id derivation itself (exposed for tests): HMAC-SHA256 under salt of
 * sha256 over every field with its name and length; "" when none is set. */
void source_credentials_digest(char out[65], const unsigned char *salt, size_t saltlen,
	const source_credentials *creds);

/* The mirror's key (sha256 hex) for url fetched with cred_id ("" or NULL =
 * anonymous: sha256 of the URL alone). */
void source_mirror_key(char out[65], const char *url, const char *cred_id);

/* 1 when url is a file:// URL or a local path (what plumbd refuses unless
 * --allow-file-urls). */
int source_url_is_local(const char *url);

/* ---- fetch -------------------------------------------------------------- */
typedef struct {
	unsigned int received_objects; /* objects that came over the wire */
	unsigned int total_objects;    /* objects in the pack the server sent */
	unsigned int local_objects;    /* objects resolved from the mirror */
	size_t received_bytes;
	unsigned int updated_refs;     /* refs created, moved or deleted */
	double seconds;
} source_fetch_stats;

/* Brings the mirror of (url, creds) up to date with all branches and tags of the
 * remote (force updates, deleted refs pruned). timeout (seconds; <= 0 means
 * 120) bounds the whole operation, connection included. creds may be NULL.
 * stats may be NULL; on success it says what was transferred (a fetch with
 * nothing new has received_objects == 0). Waits while another fetch of the
 * same url runs. */
int source_fetch(source_fetch_stats *stats, source_cache *cache, const char *url,
	const source_credentials *creds, double timeout);

/* A fetch's bytes over the wire, unless source_fetch_opts says otherwise.
 * The chart's Git cache is a 1 GiB emptyDir shared by every GitSync: one
 * repository must not be able to fill it alone. */
#define SOURCE_DEFAULT_FETCH_MAX ((size_t)256 * 1024 * 1024)

typedef struct {
	/* Only this ref is fetched: kind SOURCE_REF_BRANCH or SOURCE_REF_TAG
	 * with ref its name fetches refs/heads/<ref> or refs/tags/<ref> (other
	 * refs of the mirror are left as they are); SOURCE_REF_COMMIT, or ref
	 * NULL, fetches every branch and tag (a commit may be on any of them). */
	int kind;                /* a source_ref_kind */
	const char *ref;
	/* Bytes the server may send (pack data); past it the fetch stops with
	 * PLUMB_ETOOBIG. 0 = SOURCE_DEFAULT_FETCH_MAX. */
	size_t max_bytes;
} source_fetch_opts;

/* source_fetch() with opts (NULL = every branch and tag, default cap). A
 * ref name that is not a valid Git ref name is PLUMB_EINVALID. */
int source_fetch_ref(source_fetch_stats *stats, source_cache *cache, const char *url,
	const source_credentials *creds, double timeout, const source_fetch_opts *opts);

/* ---- refs ------------------------------------------------------------------ */
typedef enum {
	SOURCE_REF_BRANCH = 0,
	SOURCE_REF_TAG,
	SOURCE_REF_COMMIT,
} source_ref_kind;

typedef struct {
	char id[41];          /* full hex commit id */
	char *author_name;
	char *author_email;
	int64_t time;         /* author time, seconds since the epoch */
	char *subject;        /* first line of the message */
} source_commit;

/* Resolves a ref in the mirror of (url, cred_id) (fetched before): a branch (its
 * current commit, force-pushes followed), a tag (annotated or lightweight,
 * peeled to its commit) or a commit (full id or a unique prefix of at least
 * 7 hex digits). PLUMB_ENOTFOUND for a missing ref or commit, PLUMB_ESTALE
 * for a commit that exists in the mirror but no branch or tag reaches,
 * PLUMB_EINVALID for a short or ambiguous prefix. On success the caller
 * clears *out with source_commit_clear(). */
int source_resolve(source_commit *out, source_cache *cache, const char *url, const char *cred_id,
	source_ref_kind kind, const char *name);
void source_commit_clear(source_commit *commit);

/* ---- reading files --------------------------------------------------------- */
typedef struct {
	size_t max_file_size;  /* bytes of one file; 0 = 4 MiB */
	size_t max_total_size; /* bytes of all files; 0 = 64 MiB */
	size_t max_files;      /* 0 = 10000 */
} source_limits;

typedef struct {
	char *path;  /* relative to the repository root, '/'-separated */
	char *data;  /* NUL-terminated copy of the blob */
	size_t len;  /* bytes, NUL excluded */
} source_file;

typedef struct {
	source_file *items;
	size_t count;
	size_t total_size;
} source_files;

/* Reads the manifest files under path at commit (full id) in the mirror of
 * url: recursive, names ending .yaml, .yml or .json, sorted by path (byte
 * order), names starting with '.' (files and folders) skipped, other files
 * ignored. path "" or "." is the root; path may also name one file.
 * A symlink or submodule under path (outside dot-folders) is PLUMB_EINVALID
 * naming it; a missing path is PLUMB_ENOTFOUND; each cap is PLUMB_ETOOBIG
 * with its own message. limits may be NULL. Caller frees *out with
 * source_files_free(). */
int source_read(source_files **out, source_cache *cache, const char *url, const char *cred_id,
	const char *commit, const char *path, const source_limits *limits);
void source_files_free(source_files *files);

/* Sets *changed to 1 when anything source_read() would see under path
 * differs between commits old_commit and new_commit (full ids), else 0:
 * equal tree ids end it at once, otherwise a tree diff looks for a change to
 * a manifest, symlink or submodule outside dot-folders. A missing path on
 * both sides is no change; an old commit not in the mirror counts as
 * changed. */
int source_changed(int *changed, source_cache *cache, const char *url, const char *cred_id,
	const char *old_commit, const char *new_commit, const char *path);

/* Reads every file of commit's tree, whatever its name (what a kustomize
 * build or a helm template may read: kustomizations, bases, generator
 * inputs, templates/ helpers, vendored charts/), sorted by path; names
 * starting with '.' (files and folders) skipped as source_read() skips
 * them. Symlinks and submodules are left out (the render sandbox
 * materialises regular files only; a render that needs one fails naming
 * the missing file), so one elsewhere in the repository does not refuse
 * the revision. Limits (NULL or 0 fields: source_read()'s
 * defaults) are PLUMB_ETOOBIG. Caller frees *out with source_files_free(). */
int source_read_tree(source_files **out, source_cache *cache, const char *url, const char *cred_id,
	const char *commit, const source_limits *limits);

/* Sets *exists to 1 when path names a file (not a folder, not a
 * submodule) at commit, else 0. */
int source_path_exists(int *exists, source_cache *cache, const char *url, const char *cred_id,
	const char *commit, const char *path);

/* source_changed() for what source_read_tree() reads: *changed is 1 when
 * the two commits' root trees differ at all (a rendered GitSync's output may
 * depend on any file of the repository), or when the old commit is not in
 * the mirror; else 0. */
int source_changed_tree(int *changed, source_cache *cache, const char *url, const char *cred_id,
	const char *old_commit, const char *new_commit);

/* ---- helpers, exposed for tests ------------------------------------------- */

/* 1 when name (one path component or a full path) is kept by source_read:
 * no component starts with '.', and the last ends in .yaml, .yml or .json. */
int source_path_is_manifest(const char *path);

/* Normalises a spec.git.path: strips "./" prefixes and leading and trailing
 * '/', collapses "//"; "" and "." give "". PLUMB_EINVALID for ".." or a
 * NUL-free path over 4096 bytes. Caller frees *out. */
int source_path_normalize(char **out, const char *path);

/* Copies url into out (outlen bytes) without any userinfo password
 * ("https://user:secret@host/x" gives "https://user@host/x"). */
void source_url_redact(char *out, size_t outlen, const char *url);

#endif
