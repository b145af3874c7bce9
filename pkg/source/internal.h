/*
 * pkg/source internals shared by its .c files. Not a public API: source.h
 * is the module's one public header.
 */
#ifndef PLUMB_SOURCE_INTERNAL_H
#define PLUMB_SOURCE_INTERNAL_H

#include "source/source.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>

#include <git2.h>
#include <openssl/x509.h>

#define SOURCE_SIGNAL (SIGRTMIN + 5)  /* the watchdog's; pkg/source owns it process-wide */
#define SOURCE_PATH_MAX 4096
#define URL_SHOW 512                  /* room for a redacted URL in messages */

/* ---- source.c ---- */
/* libgit2 and the fetch signal, once per process; 0 or PLUMB_ERROR. */
int source_init(void);
/* Wipes a secret string, then frees it (NULL-safe). */
void source_wipe_free(char *s);
/* libgit2's last error message on this thread. */
const char *source_git_msg(void);

/* ---- cache.c: mirrors and their locks ---- */
typedef struct url_lock url_lock;
/* <dir>/<key>.git for url fetched with cred_id; NULL on ENOMEM. */
char *source_mirror_path(const source_cache *cache, const char *url, const char *cred_id);
/* Takes the in-process lock of url's mirror (blocks while another thread
 * fetches it); NULL on ENOMEM. Release with source_url_lock_release(). */
url_lock *source_url_lock_acquire(source_cache *cache, const char *url, const char *cred_id);
void source_url_lock_release(source_cache *cache, url_lock *l);
/* Opens an existing mirror; PLUMB_ENOTFOUND when it was never fetched. */
int source_open_mirror(git_repository **out, source_cache *cache, const char *url, const char *cred_id);

/* ---- fetch.c / auth.c: one fetch ---- */
enum { SCHEME_FILE, SCHEME_HTTPS, SCHEME_HTTP, SCHEME_SSH };

typedef struct {
	int scheme;
	char host[256];
	int port;
	int has_password;
} url_info;

typedef struct {
	pthread_t target;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	double deadline;
	atomic_int fired;
	pid_t tid;
} watchdog;

typedef struct {
	const source_credentials *creds;
	url_info url;
	const char *shown;
	watchdog *wd;
	X509_STORE *ca;
	char *keyfile;
	int key_tries;
	int pass_tries;
	int failed_code;          /* a callback's verdict, PLUMB_E* */
	char failed_msg[512];
	unsigned updated_refs;
	size_t max_bytes;         /* pack bytes the server may send */
} fetch_ctx;

/* libgit2 callbacks of a fetch (auth.c); payload is the fetch_ctx. They run
 * on the fetching thread, inside git_remote_fetch(). */
int source_cb_credentials(git_credential **out, const char *url,
	const char *username_from_url, unsigned int allowed, void *payload);
int source_cb_certificate(git_cert *cert, int valid, const char *host, void *payload);
/* An X509 store of the PEM certificates in pem (a caFile). */
int source_load_ca(X509_STORE **out, const char *pem);

/* ---- read.c ---- */
/* The tree of a full commit id in repo; shown is the redacted URL for messages. */
int source_lookup_commit_tree(git_tree **out, git_repository *repo, const char *commit, const char *shown);

#endif
