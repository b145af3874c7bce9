/*
 * pkg/base — what every other plumb module stands on: error codes with a
 * per-thread message, JSON logging, size-capped buffers, time, durations,
 * backoff, base64 and randomness, a string-keyed hash map, dot-path lookups
 * in JSON, and the name of plumb's API group. Nothing here depends on another module.
 */
#ifndef PLUMB_BASE_H
#define PLUMB_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- plumb's API ------------------------------------------------------
 * The group and version of the GitSync and Cluster CRDs (manifests/crds/),
 * spelled only here. String literals, so they join others:
 * "… " PLUMB_API_GROUP_VERSION " …".
 */
#define PLUMB_API_GROUP "plumb.dev"
#define PLUMB_API_VERSION "v1alpha1"
#define PLUMB_API_GROUP_VERSION PLUMB_API_GROUP "/" PLUMB_API_VERSION

/* ---- errors -------------------------------------------------------------
 * Functions return 0 or one of these negative codes. The one-line message
 * that explains the last failure on this thread is read with
 * plumb_error_last(). Propagate codes unchanged; add context with
 * plumb_error_prefix().
 */
enum {
	PLUMB_OK = 0,
	PLUMB_ERROR = -1,        /* anything not listed below */
	PLUMB_ENOMEM = -2,
	PLUMB_EINVALID = -3,     /* bad input: config, YAML, arguments, 400/422 */
	PLUMB_ENOTFOUND = -4,    /* 404, missing ref, path, kind */
	PLUMB_ECONFLICT = -5,    /* 409 optimistic concurrency (stale resourceVersion) */
	PLUMB_EFIELDCONFLICT = -6, /* 409 server-side apply field-manager conflict */
	PLUMB_EEXISTS = -7,      /* 409 AlreadyExists */
	PLUMB_EEXPIRED = -8,     /* 410 Gone / Expired resourceVersion or continue token */
	PLUMB_EAUTH = -9,        /* 401, Git authentication failed */
	PLUMB_EFORBIDDEN = -10,  /* 403 */
	PLUMB_ETHROTTLED = -11,  /* 429 */
	PLUMB_EUNAVAILABLE = -12,/* 5xx, connection refused/reset: retryable */
	PLUMB_ETIMEOUT = -13,    /* a request or operation ran out of time */
	PLUMB_ETLS = -14,        /* TLS verification failed */
	PLUMB_ETOOBIG = -15,     /* a size cap was exceeded */
	PLUMB_EIO = -16,         /* local file or system call failure */
	PLUMB_EHOSTKEY = -17,    /* SSH host key unknown or changed */
	PLUMB_ECANCELED = -18,   /* stopped on request (shutdown) */
	PLUMB_EUNREACHABLE = -19,/* host name did not resolve / no route */
	PLUMB_EPROTO = -20,      /* a peer answered with something malformed */
	PLUMB_ESTALE = -21,      /* a commit no longer reachable (history rewritten) */
	PLUMB_EINSECURE = -22,   /* input refused by the trust policy (a tenant's kubeconfig field) */
};

/* A short constant name for a code ("ENOTFOUND"). Never NULL. */
const char *plumb_strerror(int code);

/* Records msg as this thread's last error and returns code, so that
 * `return plumb_error_set(PLUMB_EINVALID, "...")` reads naturally. */
int plumb_error_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to this thread's last error message; returns code. */
int plumb_error_prefix(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* This thread's last error message; "" when none. Valid until the next
 * plumb_error_* call on this thread. */
const char *plumb_error_last(void);
int plumb_error_last_code(void);
void plumb_error_clear(void);

/* ---- logging ------------------------------------------------------------
 * One JSON object a line on stderr:
 *   {"ts":"2026-11-26T11:00:00.123Z","level":"info","msg":"...","k":"v",...}
 * Extra fields are key/value string pairs terminated by NULL; a NULL value
 * drops its key. Never pass Secret data.
 */
typedef enum {
	PLUMB_LOG_DEBUG = 0,
	PLUMB_LOG_INFO = 1,
	PLUMB_LOG_WARN = 2,
	PLUMB_LOG_ERROR = 3,
} plumb_log_level;

void plumb_log_set_level(plumb_log_level level);
/* Parses "debug|info|warn|error"; returns 0 or PLUMB_EINVALID. */
int plumb_log_parse_level(plumb_log_level *out, const char *name);
int plumb_log_enabled(plumb_log_level level);
void plumb_log(plumb_log_level level, const char *msg, ...)
	__attribute__((sentinel));

#define plumb_debug(...) plumb_log(PLUMB_LOG_DEBUG, __VA_ARGS__, (char *)NULL)
#define plumb_info(...)  plumb_log(PLUMB_LOG_INFO, __VA_ARGS__, (char *)NULL)
#define plumb_warn(...)  plumb_log(PLUMB_LOG_WARN, __VA_ARGS__, (char *)NULL)
#define plumb_errorlog(...) plumb_log(PLUMB_LOG_ERROR, __VA_ARGS__, (char *)NULL)

/* ---- buffers ------------------------------------------------------------
 * A growable byte buffer with a hard cap. Appending past max fails with
 * PLUMB_ETOOBIG and leaves the buffer as it was. ptr is always
 * NUL-terminated when non-NULL.
 */
typedef struct {
	char *ptr;
	size_t len;
	size_t cap;
	size_t max;
} plumb_buf;

#define PLUMB_BUF_INIT(maxbytes) { NULL, 0, 0, (maxbytes) }

void plumb_buf_init(plumb_buf *buf, size_t max);
int plumb_buf_append(plumb_buf *buf, const void *data, size_t len);
int plumb_buf_puts(plumb_buf *buf, const char *s);
int plumb_buf_printf(plumb_buf *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int plumb_buf_vprintf(plumb_buf *buf, const char *fmt, va_list ap);
/* Appends s as a JSON string literal, quotes included. */
int plumb_buf_json_string(plumb_buf *buf, const char *s);
/* Drops the first n bytes. */
void plumb_buf_consume(plumb_buf *buf, size_t n);
void plumb_buf_reset(plumb_buf *buf);
/* Hands the memory to the caller (who frees it) and empties the buffer. */
char *plumb_buf_detach(plumb_buf *buf);
void plumb_buf_free(plumb_buf *buf);

/* ---- time ---------------------------------------------------------------- */

/* Monotonic seconds, for intervals. */
double plumb_time_mono(void);
/* Wall-clock seconds since the epoch. */
double plumb_time_real(void);
/* RFC 3339 UTC, seconds precision: "2026-11-26T11:00:00Z". out >= 32 bytes. */
void plumb_time_rfc3339(char *out, size_t outlen, double t);
/* Kubernetes MicroTime: "2026-11-26T11:00:00.123456Z". out >= 40 bytes. */
void plumb_time_micro(char *out, size_t outlen, double t);
/* Parses RFC 3339 (with optional fraction and offset). 0 or PLUMB_EINVALID. */
int plumb_time_parse(double *out, const char *s);
/* Parses a Go-style duration ("1m30s", "500ms", "2h", "0") into seconds.
 * 0 or PLUMB_EINVALID with a message naming the text. */
int plumb_duration_parse(double *out, const char *s);
void plumb_sleep(double seconds);

/* ---- backoff --------------------------------------------------------------
 * Exponential backoff with jitter: base * 2^attempt, capped at max, then
 * scaled by a random factor in [1 - jitter, 1]. attempt starts at 0.
 */
double plumb_backoff(unsigned attempt, double base, double max, double jitter);

/* ---- random -------------------------------------------------------------- */
/* Fills buf from the kernel's CSPRNG. 0 or PLUMB_EIO. */
int plumb_random_bytes(void *buf, size_t len);
/* Uniform double in [0, 1). Thread-safe. */
double plumb_random_unit(void);
/* n random lowercase hex/alnum characters plus NUL into out (>= n+1). */
void plumb_random_name(char *out, size_t n);

/* ---- base64 ---------------------------------------------------------------- */
/* Standard alphabet with padding. Caller frees *out. */
int plumb_base64_encode(char **out, const void *data, size_t len);
/* Accepts standard and URL alphabets, ignores whitespace and missing
 * padding. *out is NUL-terminated (outlen excludes it). Caller frees.
 * PLUMB_EINVALID on a bad character. */
int plumb_base64_decode(char **out, size_t *outlen, const char *text, size_t len);

/* ---- files ----------------------------------------------------------------- */
/* Reads a whole file, failing with PLUMB_ETOOBIG past max bytes. Caller
 * frees *out (NUL-terminated). */
int plumb_file_read(char **out, size_t *outlen, const char *path, size_t max);
/* Writes atomically (temp file + rename) with the given mode. */
int plumb_file_write(const char *path, const void *data, size_t len, int mode);

/* ---- strings --------------------------------------------------------------- */
char *plumb_strdup(const char *s);          /* NULL-safe; NULL on ENOMEM */
/* Room for one more item in the array at *items_ptr (a T ** passed as
 * void *) of *cap items of size bytes holding count: when full it doubles,
 * starting at first items. 0, or PLUMB_ENOMEM with the array unchanged. */
int plumb_array_reserve(void *items_ptr, size_t *cap, size_t count, size_t size, size_t first);
char *plumb_strndup(const char *s, size_t n);
char *plumb_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Constant-time comparison of two byte strings; 1 when equal. */
int plumb_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Lowercase hex SHA-256 of data into out (65 bytes). */
void plumb_sha256_hex(char out[65], const void *data, size_t len);
/* n bytes as 2n lowercase hex digits plus NUL into out (>= 2n+1 bytes). */
void plumb_hex_encode(char *out, const unsigned char *in, size_t n);
/* The first 2n hex digits of hex (either case) into n bytes. 0, or
 * PLUMB_EINVALID when hex is shorter or holds another character. */
int plumb_hex_decode(unsigned char *out, size_t n, const char *hex);

/* ---- a string-keyed hash map -------------------------------------------------
 * Open addressing (FNV-1a, linear probing) with owned keys; values are the
 * caller's, NULL allowed (plumb_map_has() tells a NULL value from a missing
 * key). Zero-initialise it ({ 0 }); set keep before the first put for maps of
 * long-lived per-object records: their keys then come from plumb_keep_strdup().
 * The table grows to keep it under 3/4 full (removed entries counted until the
 * next rebuild) and is rebuilt at the size its entries need, so churn does not
 * grow it. Not thread-safe: the caller's lock guards it. */
typedef struct {
	char **keys;             /* NULL: empty slot; an internal marker: removed */
	void **vals;
	size_t cap, count, used; /* used counts removed slots too */
	int keep;
} plumb_map;

/* The value under key, or NULL (missing, or stored as NULL). */
void *plumb_map_get(const plumb_map *m, const char *key);
/* 1 when key is in the map (whatever its value), else 0. */
int plumb_map_has(const plumb_map *m, const char *key);
/* Stores val under key (the key is copied); the previous value, or NULL, goes
 * to *old (old may be NULL). 0, or PLUMB_ENOMEM with the map unchanged. */
int plumb_map_put(plumb_map *m, const char *key, void *val, void **old);
/* Removes key; returns its value (the caller frees it) or NULL. Safe while
 * iterating with plumb_map_next(), also for the entry just returned. */
void *plumb_map_del(plumb_map *m, const char *key);
/* Iterates: start with *i = 0; each call gives the next entry and returns 1,
 * then 0 at the end. key and val are borrowed. No put while iterating. */
int plumb_map_next(const plumb_map *m, size_t *i, const char **key, void **val);
/* Keeps the entries keep(key, val, data) returns non-zero for (called once
 * each) and removes the others, freeing their values with free_val (NULL: not
 * freed; a NULL value is not passed to it); then rebuilds the table at the
 * size the rest needs when anything was removed. Never fails (without memory
 * for the rebuild the table stays as it is, still correct). Not while
 * iterating; keep and free_val must not touch the map. */
void plumb_map_retain(plumb_map *m, int (*keep)(const char *key, void *val, void *data), void *data,
	void (*free_val)(void *));
/* Frees every non-NULL value with free_val (NULL: values are not freed), the
 * keys and the table; the map is empty again and keeps its keep setting. */
void plumb_map_free(plumb_map *m, void (*free_val)(void *));

/* ---- JSON lookups ----------------------------------------------------------
 * "spec.git.ref.branch": the member ref of ... of obj, each step an object
 * member by exact (case-sensitive) name; "" is obj itself. No escaping: a
 * member whose name holds a '.' cannot be reached (use cJSON directly). What
 * is returned is borrowed from obj; NULL when obj is NULL, a step is missing
 * or a step's parent is not an object. */
struct cJSON;
const struct cJSON *plumb_json_get(const struct cJSON *obj, const char *path);
/* The string at path, or NULL when it is missing or not a string. */
const char *plumb_json_str(const struct cJSON *obj, const char *path);

/* ---- long-lived records ------------------------------------------------------
 * What plumbd remembers per managed object (hashes, versions, cache
 * entries, their keys) lives for hours, while a reconcile allocates and frees
 * megabytes around it. Mixed in one heap, a few long-lived records pin every
 * page the reconcile used, and the resident size stays at its peak. These
 * records come from chunks of their own (mmap'd, 256 KiB), in 16-byte size
 * classes up to 1 KiB with a free list each; larger ones fall back to
 * malloc. Thread-safe. plumb_keep_free() takes only what plumb_keep_alloc()
 * or plumb_keep_strdup() returned (NULL-safe). */
void *plumb_keep_alloc(size_t n);           /* zeroed; NULL on ENOMEM */
char *plumb_keep_strdup(const char *s);     /* NULL-safe */
void plumb_keep_free(void *p);
/* Bytes of chunks mapped so far (for tests and metrics). */
size_t plumb_keep_mapped(void);

/* ---- regions for a reconcile's JSON -------------------------------------------
 * A reconcile renders a revision into 10,000s of small JSON nodes that all
 * live until its end. Once plumb_json_hooks() installed its cJSON hooks, a
 * thread that entered a region takes cJSON memory from the region's own
 * mmap'd chunks, given back whole by plumb_region_free(), so those nodes
 * never sit in (and pin) the heap pages of records that outlive the
 * reconcile; elsewhere cJSON uses malloc. A region only grows (freeing in it
 * does nothing): it is for data that lives as long as it, not for churn.
 * Each cJSON allocation has an 8-byte header, so what cJSON returns (printed
 * text included) must be released with cJSON_free(), never free(). Nothing
 * allocated in a region may be used after plumb_region_free(), and nothing
 * that outlives the region may be built while a thread is in it. */
typedef struct plumb_region plumb_region;
void plumb_json_hooks(void);               /* once, before other threads start */
plumb_region *plumb_region_new(void);      /* NULL on ENOMEM */
/* The calling thread allocates cJSON memory from r until plumb_region_leave()
 * (r NULL: from malloc). Threads that work for the region enter it too. */
void plumb_region_enter(plumb_region *r);
void plumb_region_leave(void);
plumb_region *plumb_region_current(void);
size_t plumb_region_mapped(const plumb_region *r);
void plumb_region_free(plumb_region *r);   /* NULL-safe; no thread may be in it */

#endif
