/* pkg/kube: watch — the line decoder and the hub that drives many watch
 * streams on one thread with libcurl's multi interface. */
#include "kube/kube_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_BASE 0.8
#define BACKOFF_MAX 30.0
#define HEALTHY_AFTER 120.0
#define ERRBODY_MAX (64u * 1024)

/* ---- decoder ---------------------------------------------------------------- */

int kube_watch_decode_line(kube_watch_event *type, cJSON **obj, const char *line, size_t len)
{
	static const struct { const char *name; kube_watch_event type; } types[] = {
		{ "ADDED", KUBE_WATCH_ADDED }, { "MODIFIED", KUBE_WATCH_MODIFIED },
		{ "DELETED", KUBE_WATCH_DELETED }, { "BOOKMARK", KUBE_WATCH_BOOKMARK },
		{ "ERROR", KUBE_WATCH_ERROR },
	};
	cJSON *ev, *o;
	const cJSON *t;
	size_t i, start = 0;
	while (start < len && (line[start] == ' ' || line[start] == '\t' || line[start] == '\r'))
		start++;
	if (start == len)
		return PLUMB_ENOTFOUND;
	ev = cJSON_ParseWithLength(line + start, len - start);
	if (!ev)
		return plumb_error_set(PLUMB_EPROTO, "watch: event is not valid JSON (%zu bytes)", len);
	t = cJSON_GetObjectItemCaseSensitive(ev, "type");
	o = cJSON_GetObjectItemCaseSensitive(ev, "object");
	if (!cJSON_IsString(t) || !cJSON_IsObject(o)) {
		cJSON_Delete(ev);
		return plumb_error_set(PLUMB_EPROTO, "watch: event without type or object");
	}
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(t->valuestring, types[i].name))
			break;
	if (i == sizeof(types) / sizeof(types[0])) {
		int rc = plumb_error_set(PLUMB_EPROTO, "watch: unknown event type \"%.32s\"", t->valuestring);
		cJSON_Delete(ev);
		return rc;
	}
	if (types[i].type != KUBE_WATCH_ERROR) {
		const cJSON *rv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "metadata"), "resourceVersion");
		if (!cJSON_IsString(rv)) {
			cJSON_Delete(ev);
			return plumb_error_set(PLUMB_EPROTO, "watch: %s event without metadata.resourceVersion", types[i].name);
		}
	}
	*type = types[i].type;
	*obj = cJSON_DetachItemViaPointer(ev, o);
	cJSON_Delete(ev);
	return 0;
}

int kube_watch_status_expired(const cJSON *status)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(status, "code");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(status, "reason");
	if (cJSON_IsNumber(code) && code->valueint == 410)
		return 1;
	return cJSON_IsString(reason) && (!strcmp(reason->valuestring, "Expired") || !strcmp(reason->valuestring, "Gone"));
}

void kube_watch_decoder_init(kube_watch_decoder *d, size_t max_line)
{
	plumb_buf_init(&d->line, max_line);
}

void kube_watch_decoder_free(kube_watch_decoder *d)
{
	plumb_buf_free(&d->line);
}

static int emit(const char *line, size_t len, kube_watch_event_cb cb, void *cbdata)
{
	kube_watch_event type;
	cJSON *obj = NULL;
	int rc = kube_watch_decode_line(&type, &obj, line, len);
	if (rc == PLUMB_ENOTFOUND)
		return 0;
	if (rc < 0)
		return rc;
	rc = cb(type, obj, cbdata);
	cJSON_Delete(obj);
	return rc;
}

int kube_watch_decoder_feed(kube_watch_decoder *d, const char *data, size_t len,
	kube_watch_event_cb cb, void *cbdata)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) : len;
		int rc;
		if (d->line.len == 0 && nl) {
			/* A whole line in the input: decode in place. */
			if (n > d->line.max)
				return plumb_error_set(PLUMB_ETOOBIG, "watch: event larger than %zu bytes", d->line.max);
			rc = emit(data, n, cb, cbdata);
		} else {
			if (plumb_buf_append(&d->line, data, n) < 0)
				return plumb_error_set(PLUMB_ETOOBIG, "watch: event larger than %zu bytes", d->line.max);
			rc = 0;
			if (nl) {
				rc = emit(d->line.ptr, d->line.len, cb, cbdata);
				plumb_buf_reset(&d->line);
			}
		}
		if (rc != 0)
			return rc;
		if (!nl)
			break;
		data = nl + 1;
		len -= n + 1;
	}
	return 0;
}

int kube_watch_decoder_finish(kube_watch_decoder *d)
{
	for (size_t i = 0; i < d->line.len; i++) {
		char ch = d->line.ptr[i];
		if (ch != ' ' && ch != '\t' && ch != '\r')
			return plumb_error_set(PLUMB_EPROTO, "watch: stream ended inside an event (%zu bytes left)", d->line.len);
	}
	plumb_buf_reset(&d->line);
	return 0;
}

/* ---- hub --------------------------------------------------------------------- */

typedef enum { W_IDLE, W_LISTING, W_LIST_DONE, W_WATCHING, W_WAIT } wstate;

struct kube_watch {
	kube_watch_hub *hub;
	kube_client *c;
	kube_resource res;
	char *ns;
	char *selector;
	unsigned timeout_seconds;
	unsigned list_limit;
	kube_watch_reduce_fn reduce;
	size_t list_max_items, list_max_bytes;
	kube_watch_cb cb;
	void *data;

	int stopped;            /* hub->lock (set also under cb_lock) */
	char rv[256];           /* hub->lock for writes */
	wstate state;           /* hub->lock */

	/* list helper */
	pthread_t thr;
	int thr_joinable;
	cJSON *list_result;
	int list_rc;
	char list_err[512];
	int creds_only;         /* the helper fetched exec credentials, no list */

	/* stream (hub thread only) */
	CURL *easy;
	struct curl_slist *headers, *connect_to;
	kube_watch_decoder dec;
	int need_relist;
	int expired;
	int stream_rc;          /* error found by the write callback */
	char stream_err[512];
	long http_status;
	plumb_buf errbody;
	double started;
	unsigned events;
	unsigned failures;
	double next_at;
	int force_creds;

	kube_watch *next;
};

struct kube_watch_hub {
	pthread_mutex_t lock;
	pthread_mutex_t cb_lock;
	CURLM *multi;
	kube_watch *list;
	int stop;
	int running;
	pthread_t thread;
};

int kube_watch_hub_new(kube_watch_hub **out)
{
	kube_watch_hub *hub = calloc(1, sizeof(*hub));
	if (!hub)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	hub->multi = curl_multi_init();
	if (!hub->multi) {
		free(hub);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&hub->lock, NULL);
	pthread_mutex_init(&hub->cb_lock, NULL);
	*out = hub;
	return 0;
}

static int on_hub_thread(kube_watch_hub *hub)
{
	int r;
	pthread_mutex_lock(&hub->lock);
	r = hub->running && pthread_equal(hub->thread, pthread_self());
	pthread_mutex_unlock(&hub->lock);
	return r;
}

static void stream_close(kube_watch *w)
{
	if (w->easy) {
		curl_multi_remove_handle(w->hub->multi, w->easy);
		curl_easy_cleanup(w->easy);
		w->easy = NULL;
	}
	curl_slist_free_all(w->headers);
	curl_slist_free_all(w->connect_to);
	w->headers = w->connect_to = NULL;
	kube_watch_decoder_free(&w->dec);
	plumb_buf_free(&w->errbody);
}

static void watch_free(kube_watch *w)
{
	if (w->thr_joinable)
		pthread_join(w->thr, NULL);
	stream_close(w);
	cJSON_Delete(w->list_result);
	kube_client_free(w->c);
	free(w->ns);
	free(w->selector);
	free(w);
}

void kube_watch_hub_free(kube_watch_hub *hub)
{
	if (!hub)
		return;
	kube_watch *w = hub->list;
	while (w) {
		kube_watch *n = w->next;
		watch_free(w);
		w = n;
	}
	curl_multi_cleanup(hub->multi);
	pthread_mutex_destroy(&hub->lock);
	pthread_mutex_destroy(&hub->cb_lock);
	free(hub);
}

void kube_watch_hub_stop(kube_watch_hub *hub)
{
	pthread_mutex_lock(&hub->lock);
	hub->stop = 1;
	pthread_mutex_unlock(&hub->lock);
	curl_multi_wakeup(hub->multi);
}

int kube_watch_start(kube_watch **out, kube_watch_hub *hub, kube_client *c,
	const kube_resource *res, const kube_watch_opts *opts, kube_watch_cb cb, void *data)
{
	kube_watch_opts o = { 0 };
	kube_watch *w;
	if (opts)
		o = *opts;
	if (!cb)
		return plumb_error_set(PLUMB_EINVALID, "watch %s: no callback", res->resource);
	w = calloc(1, sizeof(*w));
	if (!w)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	w->hub = hub;
	w->c = c;
	kube_client_ref(c);
	w->res = *res;
	w->ns = o.ns && *o.ns && res->namespaced ? plumb_strdup(o.ns) : NULL;
	w->selector = o.label_selector && *o.label_selector ? plumb_strdup(o.label_selector) : NULL;
	w->timeout_seconds = o.timeout_seconds;
	w->list_limit = o.list_limit ? o.list_limit : 500;
	w->reduce = o.reduce;
	w->list_max_items = o.list_max_items;
	w->list_max_bytes = o.list_max_bytes;
	w->cb = cb;
	w->data = data;
	w->state = W_IDLE;
	if (o.resource_version && *o.resource_version)
		snprintf(w->rv, sizeof(w->rv), "%s", o.resource_version);
	else
		w->need_relist = 1;
	pthread_mutex_lock(&hub->lock);
	w->next = hub->list;
	hub->list = w;
	pthread_mutex_unlock(&hub->lock);
	curl_multi_wakeup(hub->multi);
	*out = w;
	return 0;
}

void kube_watch_stop(kube_watch *w)
{
	if (!w)
		return;
	kube_watch_hub *hub = w->hub;
	if (on_hub_thread(hub)) {
		pthread_mutex_lock(&hub->lock);
		w->stopped = 1;
		pthread_mutex_unlock(&hub->lock);
		return;
	}
	/* Waits for a callback in progress to return. */
	pthread_mutex_lock(&hub->cb_lock);
	pthread_mutex_lock(&hub->lock);
	w->stopped = 1;
	pthread_mutex_unlock(&hub->lock);
	pthread_mutex_unlock(&hub->cb_lock);
	curl_multi_wakeup(hub->multi);
}

void kube_watch_resource_version(char *out, size_t outlen, kube_watch *w)
{
	pthread_mutex_lock(&w->hub->lock);
	snprintf(out, outlen, "%s", w->rv);
	pthread_mutex_unlock(&w->hub->lock);
}

static void deliver(kube_watch *w, kube_watch_event type, const cJSON *obj)
{
	kube_watch_hub *hub = w->hub;
	int stopped;
	pthread_mutex_lock(&hub->cb_lock);
	pthread_mutex_lock(&hub->lock);
	stopped = w->stopped;
	pthread_mutex_unlock(&hub->lock);
	if (!stopped)
		w->cb(type, obj, w->data);
	pthread_mutex_unlock(&hub->cb_lock);
}

static void deliver_error(kube_watch *w, int code, const char *reason, const char *message)
{
	cJSON *st = cJSON_CreateObject();
	if (!st)
		return;
	cJSON_AddStringToObject(st, "kind", "Status");
	cJSON_AddStringToObject(st, "status", "Failure");
	cJSON_AddNumberToObject(st, "code", code);
	cJSON_AddStringToObject(st, "reason", reason ? reason : "");
	cJSON_AddStringToObject(st, "message", message ? message : "");
	deliver(w, KUBE_WATCH_ERROR, st);
	cJSON_Delete(st);
}

static void set_rv(kube_watch *w, const char *rv)
{
	pthread_mutex_lock(&w->hub->lock);
	snprintf(w->rv, sizeof(w->rv), "%s", rv);
	pthread_mutex_unlock(&w->hub->lock);
}

typedef struct {
	kube_watch *w;
	cJSON *items;
	size_t n, bytes;
} reduce_ctx;

/* Bytes of the strings (keys and values) in j, plus a little per node. */
static size_t json_bytes(const cJSON *j)
{
	size_t n = 16 + (j->string ? strlen(j->string) : 0) + (cJSON_IsString(j) && j->valuestring ? strlen(j->valuestring) : 0);
	const cJSON *c;
	for (c = j->child; c; c = c->next)
		n += json_bytes(c);
	return n;
}

/* Page callback of a reduced relist: keeps what reduce makes of each item,
 * up to the watch's caps. */
static int reduce_page(const cJSON *page, void *data)
{
	reduce_ctx *r = data;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(page, "items")) {
		cJSON *small = r->w->reduce(it, &r->w->res, r->w->data);
		if (!small)
			continue;
		r->n++;
		if (r->w->list_max_bytes)
			r->bytes += json_bytes(small);
		cJSON_AddItemToArray(r->items, small);
		if (r->w->list_max_items && r->n > r->w->list_max_items)
			return plumb_error_set(PLUMB_ETOOBIG, "listing %s gave more than %zu objects",
				r->w->res.resource, r->w->list_max_items);
		if (r->w->list_max_bytes && r->bytes > r->w->list_max_bytes)
			return plumb_error_set(PLUMB_ETOOBIG, "listing %s gave more than %zu bytes of objects",
				r->w->res.resource, r->w->list_max_bytes);
	}
	return 0;
}

/* A relist whose items went through w->reduce page by page: the same List
 * shape kube_list() gives. */
static int list_reduced(cJSON **out, kube_watch *w, const kube_list_opts *lo)
{
	char *rv = NULL, kind[160], av[320];
	cJSON *items = cJSON_CreateArray(), *list = cJSON_CreateObject(), *meta = cJSON_CreateObject();
	reduce_ctx ctx = { w, items };
	int rc = PLUMB_ENOMEM;
	if (items && list && meta)
		rc = kube_list_pages(w->c, &w->res, w->ns, lo, reduce_page, &ctx, &rv, NULL);
	if (rc < 0) {
		cJSON_Delete(items);
		cJSON_Delete(list);
		cJSON_Delete(meta);
		free(rv);
		return rc == PLUMB_ENOMEM ? plumb_error_set(rc, "out of memory") : rc;
	}
	kube_resource_api_version(av, sizeof(av), &w->res);
	snprintf(kind, sizeof(kind), "%sList", w->res.kind);
	cJSON_AddStringToObject(list, "apiVersion", av);
	cJSON_AddStringToObject(list, "kind", kind);
	cJSON_AddStringToObject(meta, "resourceVersion", rv ? rv : "");
	cJSON_AddItemToObject(list, "metadata", meta);
	cJSON_AddItemToObject(list, "items", items);
	free(rv);
	*out = list;
	return 0;
}

static void *list_thread(void *arg)
{
	kube_watch *w = arg;
	kube_list_opts lo = { w->selector, NULL, w->list_limit, NULL };
	cJSON *list = NULL;
	int rc = w->reduce ? list_reduced(&list, w, &lo) : kube_list(&list, w->c, &w->res, w->ns, &lo);
	if (rc == PLUMB_EEXPIRED)  /* the continue token expired: one more go */
		rc = w->reduce ? list_reduced(&list, w, &lo) : kube_list(&list, w->c, &w->res, w->ns, &lo);
	pthread_mutex_lock(&w->hub->lock);
	w->list_result = rc == 0 ? list : NULL;
	w->list_rc = rc;
	snprintf(w->list_err, sizeof(w->list_err), "%s", rc < 0 ? plumb_error_last() : "");
	w->state = W_LIST_DONE;
	pthread_mutex_unlock(&w->hub->lock);
	curl_multi_wakeup(w->hub->multi);
	return NULL;
}

static int stream_event(kube_watch_event type, cJSON *obj, void *data)
{
	kube_watch *w = data;
	w->events++;
	if (type == KUBE_WATCH_ERROR) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "message");
		if (kube_watch_status_expired(obj)) {
			w->expired = 1;
			return 1;
		}
		w->stream_rc = PLUMB_EPROTO;
		snprintf(w->stream_err, sizeof(w->stream_err), "watch %s: ERROR event: %s", w->res.resource,
			cJSON_IsString(m) ? m->valuestring : "(no message)");
		return 1;
	}
	const cJSON *rv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "resourceVersion");
	if (cJSON_IsString(rv) && rv->valuestring[0])
		set_rv(w, rv->valuestring);
	deliver(w, type, obj);
	return 0;
}

static size_t stream_write(char *data, size_t size, size_t n, void *u)
{
	kube_watch *w = u;
	size_t len = size * n;
	int rc, stopped;
	pthread_mutex_lock(&w->hub->lock);
	stopped = w->stopped;
	pthread_mutex_unlock(&w->hub->lock);
	if (stopped)
		return 0;
	if (!w->http_status)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->http_status);
	if (w->http_status != 200) {
		/* Keep the Status body for the error; past the cap, keep what we have. */
		plumb_buf_append(&w->errbody, data, len);
		return len;
	}
	rc = kube_watch_decoder_feed(&w->dec, data, len, stream_event, w);
	if (rc < 0) {
		w->stream_rc = rc;
		snprintf(w->stream_err, sizeof(w->stream_err), "watch %s: %s", w->res.resource, plumb_error_last());
		return 0;
	}
	return rc == 0 ? len : 0;
}

static int stream_start(kube_watch *w)
{
	kube_creds creds;
	char *base = NULL;
	plumb_buf url = PLUMB_BUF_INIT(64 * 1024);
	unsigned timeout = w->timeout_seconds ? w->timeout_seconds : 300 + (unsigned)(plumb_random_unit() * 301);
	int rc;

	memset(&creds, 0, sizeof(creds));
	/* Never an exec plugin here: begin() fetched it on a helper thread. */
	if ((rc = kube_config_creds(&creds, kube_client_cfg(w->c),
			(w->force_creds ? KUBE_CREDS_FORCE : 0) | KUBE_CREDS_NO_EXEC)) < 0)
		goto cleanup;
	w->force_creds = 0;
	if ((rc = kube_resource_path(&base, &w->res, w->ns, NULL, NULL)) < 0)
		goto cleanup;
	rc = plumb_buf_printf(&url, "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%u", base, timeout);
	if (!rc && w->rv[0]) {
		/* rv is only written on this thread: no lock needed to read it. */
		rc = plumb_buf_puts(&url, "&resourceVersion=");
		for (const char *p = w->rv; !rc && *p; p++) {
			if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
				rc = plumb_buf_append(&url, p, 1);
			else
				rc = plumb_buf_printf(&url, "%%%02X", (unsigned char)*p);
		}
	}
	if (!rc && w->selector) {
		rc = plumb_buf_puts(&url, "&labelSelector=");
		for (const char *p = w->selector; !rc && *p; p++) {
			if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    *p == '-' || *p == '.' || *p == '_')
				rc = plumb_buf_append(&url, p, 1);
			else
				rc = plumb_buf_printf(&url, "%%%02X", (unsigned char)*p);
		}
	}
	if (rc < 0) {
		rc = plumb_error_set(rc, "watch %s: URL too long", w->res.resource);
		goto cleanup;
	}
	w->easy = curl_easy_init();
	if (!w->easy) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	/* The server ends the watch after timeoutSeconds; allow some slack. */
	if ((rc = kube_client_setup(w->c, w->easy, url.ptr, NULL, timeout + 30.0, &creds,
			&w->headers, &w->connect_to)) < 0)
		goto cleanup;
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(w->easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, stream_write);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->easy, CURLOPT_PRIVATE, w);
	kube_watch_decoder_init(&w->dec, kube_client_max_watch_line(w->c));
	plumb_buf_init(&w->errbody, ERRBODY_MAX);
	w->http_status = 0;
	w->expired = 0;
	w->stream_rc = 0;
	w->stream_err[0] = '\0';
	w->events = 0;
	w->started = plumb_time_mono();
	if (curl_multi_add_handle(w->hub->multi, w->easy) != CURLM_OK) {
		rc = plumb_error_set(PLUMB_ERROR, "watch %s: cannot add the transfer", w->res.resource);
		goto cleanup;
	}
	pthread_mutex_lock(&w->hub->lock);
	w->state = W_WATCHING;
	pthread_mutex_unlock(&w->hub->lock);
cleanup:
	if (rc < 0)
		stream_close(w);
	kube_creds_clear(&creds);
	plumb_buf_free(&url);
	free(base);
	return rc;
}

static void schedule_retry(kube_watch *w, double lived)
{
	if (lived >= HEALTHY_AFTER)
		w->failures = 0;
	w->next_at = plumb_time_mono() + plumb_backoff(w->failures, BACKOFF_BASE, BACKOFF_MAX, 0.2);
	if (w->failures < 16)
		w->failures++;
	pthread_mutex_lock(&w->hub->lock);
	w->state = W_WAIT;
	pthread_mutex_unlock(&w->hub->lock);
}

/* Runs an exec credential plugin off the hub thread: a slow plugin stalls
 * only this stream, never the other clusters' watches. */
static void *creds_thread(void *arg)
{
	kube_watch *w = arg;
	kube_creds cr;
	int rc = kube_config_creds(&cr, kube_client_cfg(w->c), w->force_creds ? KUBE_CREDS_FORCE : 0);
	kube_creds_clear(&cr);
	pthread_mutex_lock(&w->hub->lock);
	w->list_result = NULL;
	w->list_rc = rc;
	snprintf(w->list_err, sizeof(w->list_err), "%s", rc < 0 ? plumb_error_last() : "");
	w->state = W_LIST_DONE;
	pthread_mutex_unlock(&w->hub->lock);
	curl_multi_wakeup(w->hub->multi);
	return NULL;
}

static void begin(kube_watch *w)
{
	if (!w->need_relist && kube_config_creds_need_exec(kube_client_cfg(w->c), w->force_creds)) {
		pthread_mutex_lock(&w->hub->lock);
		w->state = W_LISTING;
		pthread_mutex_unlock(&w->hub->lock);
		w->creds_only = 1;
		if (pthread_create(&w->thr, NULL, creds_thread, w) != 0) {
			w->creds_only = 0;
			deliver_error(w, 0, "InternalError", "watch: cannot start the credentials thread");
			schedule_retry(w, 0);
			return;
		}
		w->thr_joinable = 1;
		return;
	}
	if (w->need_relist) {
		pthread_mutex_lock(&w->hub->lock);
		w->state = W_LISTING;
		pthread_mutex_unlock(&w->hub->lock);
		if (pthread_create(&w->thr, NULL, list_thread, w) != 0) {
			deliver_error(w, 0, "InternalError", "watch: cannot start the list thread");
			schedule_retry(w, 0);
			return;
		}
		w->thr_joinable = 1;
		return;
	}
	if (stream_start(w) < 0) {
		deliver_error(w, 0, plumb_strerror(plumb_error_last_code()), plumb_error_last());
		schedule_retry(w, 0);
	}
}

static void stream_done(kube_watch *w, CURLcode cc)
{
	double lived = plumb_time_mono() - w->started;
	long status = w->http_status;
	if (!status)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
	kube_client_hook(w->c, "watch", (int)status, lived);

	if (w->expired || status == 410) {
		stream_close(w);
		plumb_debug("watch expired, relisting", "cluster", kube_client_name(w->c), "resource", w->res.resource);
		w->need_relist = 1;
		pthread_mutex_lock(&w->hub->lock);
		w->state = W_IDLE;
		pthread_mutex_unlock(&w->hub->lock);
		return;
	}
	if (w->stream_rc == 0 && cc == CURLE_OK && status == 200 && kube_watch_decoder_finish(&w->dec) < 0) {
		w->stream_rc = PLUMB_EPROTO;
		snprintf(w->stream_err, sizeof(w->stream_err), "watch %s: %s", w->res.resource, plumb_error_last());
	}
	if (w->stream_rc == 0 && cc == CURLE_OK && status == 200) {
		stream_close(w);
		/* A normal end (timeoutSeconds): resume from the last resourceVersion.
		 * A stream that ends at once without events is not healthy: back off. */
		if (lived < 1.0 && w->events == 0) {
			schedule_retry(w, lived);
		} else {
			if (lived >= HEALTHY_AFTER)
				w->failures = 0;
			pthread_mutex_lock(&w->hub->lock);
			w->state = W_IDLE;
			pthread_mutex_unlock(&w->hub->lock);
		}
		return;
	}
	/* A failure: tell the consumer, back off, retry. */
	{
		char what[300];
		int code;
		snprintf(what, sizeof(what), "WATCH %s", w->res.resource);
		if (w->stream_rc) {
			code = w->stream_rc;
			plumb_error_set(code, "%s", w->stream_err);
		} else if (cc != CURLE_OK) {
			code = kube_curl_error(cc, what, NULL);
		} else {
			code = kube_status_error((int)status, w->errbody.ptr, w->errbody.len, what);
		}
		if (code == PLUMB_EAUTH)
			w->force_creds = 1;
		plumb_warn("watch failed", "cluster", kube_client_name(w->c), "resource", w->res.resource,
			"error", plumb_error_last());
		deliver_error(w, (int)status, plumb_strerror(code), plumb_error_last());
	}
	stream_close(w);
	schedule_retry(w, lived);
}

static void list_done(kube_watch *w)
{
	cJSON *list;
	int rc;
	char err[512];
	pthread_join(w->thr, NULL);
	w->thr_joinable = 0;
	pthread_mutex_lock(&w->hub->lock);
	list = w->list_result;
	w->list_result = NULL;
	rc = w->list_rc;
	snprintf(err, sizeof(err), "%s", w->list_err);
	pthread_mutex_unlock(&w->hub->lock);
	if (w->creds_only) {
		w->creds_only = 0;
		if (rc < 0) {
			plumb_warn("watch credentials failed", "cluster", kube_client_name(w->c), "resource", w->res.resource, "error", err);
			deliver_error(w, 0, plumb_strerror(rc), err);
			schedule_retry(w, 0);
			return;
		}
		w->force_creds = 0;
		if (stream_start(w) < 0) {
			deliver_error(w, 0, plumb_strerror(plumb_error_last_code()), plumb_error_last());
			schedule_retry(w, 0);
		}
		return;
	}
	if (rc < 0) {
		plumb_warn("watch relist failed", "cluster", kube_client_name(w->c), "resource", w->res.resource, "error", err);
		deliver_error(w, kube_last_http_status(), plumb_strerror(rc), err);
		schedule_retry(w, 0);
		return;
	}
	const cJSON *rv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(list, "metadata"), "resourceVersion");
	set_rv(w, cJSON_IsString(rv) ? rv->valuestring : "");
	w->need_relist = 0;
	deliver(w, KUBE_WATCH_RESYNC, list);
	cJSON_Delete(list);
	begin(w);
}

int kube_watch_hub_run(kube_watch_hub *hub)
{
	pthread_mutex_lock(&hub->lock);
	hub->thread = pthread_self();
	hub->running = 1;
	pthread_mutex_unlock(&hub->lock);

	for (;;) {
		kube_watch *w, *head;
		double now = plumb_time_mono(), next = now + 1.0;
		int stop, running = 0, numfds = 0;
		CURLMsg *msg;
		int left;

		pthread_mutex_lock(&hub->lock);
		stop = hub->stop;
		head = hub->list;
		pthread_mutex_unlock(&hub->lock);
		if (stop)
			break;

		/* Only this thread unlinks watches, so walking from a snapshot is safe. */
		for (w = head; w; ) {
			kube_watch *nx;
			int stopped;
			wstate st;
			pthread_mutex_lock(&hub->lock);
			stopped = w->stopped;
			st = w->state;
			nx = w->next;
			pthread_mutex_unlock(&hub->lock);
			if (stopped && st != W_LISTING) {
				pthread_mutex_lock(&hub->lock);
				for (kube_watch **pp = &hub->list; *pp; pp = &(*pp)->next)
					if (*pp == w) {
						*pp = w->next;
						break;
					}
				pthread_mutex_unlock(&hub->lock);
				watch_free(w);
				w = nx;
				continue;
			}
			if (!stopped) {
				if (st == W_IDLE || (st == W_WAIT && now >= w->next_at))
					begin(w);
				else if (st == W_LIST_DONE)
					list_done(w);
				else if (st == W_WAIT && w->next_at < next)
					next = w->next_at;
			}
			w = nx;
		}

		curl_multi_perform(hub->multi, &running);
		while ((msg = curl_multi_info_read(hub->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			kube_watch *dw = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&dw);
			if (dw)
				stream_done(dw, msg->data.result);
		}
		double wait = next - plumb_time_mono();
		if (wait < 0.001)
			wait = 0.001;
		curl_multi_poll(hub->multi, NULL, 0, (int)(wait * 1000), &numfds);
	}

	pthread_mutex_lock(&hub->lock);
	hub->running = 0;
	hub->stop = 0;
	pthread_mutex_unlock(&hub->lock);
	return 0;
}
