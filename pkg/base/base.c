/*
 * pkg/base: errors, logging, buffers, time, backoff, random, base64, files,
 * strings, hex. The hash map is in map.c, JSON paths in json.c, long-lived
 * records and regions in memory.c; base.h is the one header of all four.
 *
 * Threads: the error slot (err_msg, err_code) is per thread; log_lock
 * serialises whole log lines on stderr; log_level is set at start-up,
 * before other threads run. The rest keeps no shared state.
 */
#include "base/base.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

/* ---- errors ------------------------------------------------------------ */

static _Thread_local char err_msg[1024];
static _Thread_local int err_code;

const char *plumb_strerror(int code)
{
	switch (code) {
	case PLUMB_OK: return "OK";
	case PLUMB_ERROR: return "ERROR";
	case PLUMB_ENOMEM: return "ENOMEM";
	case PLUMB_EINVALID: return "EINVALID";
	case PLUMB_ENOTFOUND: return "ENOTFOUND";
	case PLUMB_ECONFLICT: return "ECONFLICT";
	case PLUMB_EFIELDCONFLICT: return "EFIELDCONFLICT";
	case PLUMB_EEXISTS: return "EEXISTS";
	case PLUMB_EEXPIRED: return "EEXPIRED";
	case PLUMB_EAUTH: return "EAUTH";
	case PLUMB_EFORBIDDEN: return "EFORBIDDEN";
	case PLUMB_ETHROTTLED: return "ETHROTTLED";
	case PLUMB_EUNAVAILABLE: return "EUNAVAILABLE";
	case PLUMB_ETIMEOUT: return "ETIMEOUT";
	case PLUMB_ETLS: return "ETLS";
	case PLUMB_ETOOBIG: return "ETOOBIG";
	case PLUMB_EIO: return "EIO";
	case PLUMB_EHOSTKEY: return "EHOSTKEY";
	case PLUMB_ECANCELED: return "ECANCELED";
	case PLUMB_EUNREACHABLE: return "EUNREACHABLE";
	case PLUMB_EPROTO: return "EPROTO";
	case PLUMB_ESTALE: return "ESTALE";
	case PLUMB_EINSECURE: return "EINSECURE";
	default: return "EUNKNOWN";
	}
}

int plumb_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	err_code = code;
	return code;
}

int plumb_error_prefix(int code, const char *fmt, ...)
{
	char prefix[512], old[sizeof(err_msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err_msg, sizeof(old));
	if (old[0])
		snprintf(err_msg, sizeof(err_msg), "%s: %s", prefix, old);
	else
		snprintf(err_msg, sizeof(err_msg), "%s", prefix);
	err_code = code;
	return code;
}

const char *plumb_error_last(void) { return err_msg; }
int plumb_error_last_code(void) { return err_code; }
void plumb_error_clear(void) { err_msg[0] = '\0'; err_code = 0; }

/* ---- logging ------------------------------------------------------------ */

static plumb_log_level log_level = PLUMB_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void plumb_log_set_level(plumb_log_level level) { log_level = level; }
int plumb_log_enabled(plumb_log_level level) { return level >= log_level; }

int plumb_log_parse_level(plumb_log_level *out, const char *name)
{
	for (int i = 0; i < 4; i++) {
		if (name && strcmp(name, level_names[i]) == 0) {
			*out = (plumb_log_level)i;
			return 0;
		}
	}
	if (name && strcmp(name, "warning") == 0) {
		*out = PLUMB_LOG_WARN;
		return 0;
	}
	return plumb_error_set(PLUMB_EINVALID,
		"log level \"%s\": want debug, info, warn or error", name ? name : "");
}

void plumb_log(plumb_log_level level, const char *msg, ...)
{
	if (level < log_level)
		return;
	char ts[48];
	plumb_buf line = PLUMB_BUF_INIT(64 * 1024);
	plumb_time_micro(ts, sizeof(ts), plumb_time_real());
	plumb_buf_puts(&line, "{\"ts\":");
	plumb_buf_json_string(&line, ts);
	plumb_buf_puts(&line, ",\"level\":");
	plumb_buf_json_string(&line, level_names[level]);
	plumb_buf_puts(&line, ",\"msg\":");
	plumb_buf_json_string(&line, msg);
	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *key = va_arg(ap, const char *);
		if (!key)
			break;
		const char *val = va_arg(ap, const char *);
		if (!val)
			continue;
		plumb_buf_puts(&line, ",");
		plumb_buf_json_string(&line, key);
		plumb_buf_puts(&line, ":");
		plumb_buf_json_string(&line, val);
	}
	va_end(ap);
	plumb_buf_puts(&line, "}\n");
	if (line.ptr) {
		pthread_mutex_lock(&log_lock);
		fwrite(line.ptr, 1, line.len, stderr);
		fflush(stderr);
		pthread_mutex_unlock(&log_lock);
	}
	plumb_buf_free(&line);
}

/* ---- buffers ------------------------------------------------------------ */

void plumb_buf_init(plumb_buf *buf, size_t max)
{
	buf->ptr = NULL;
	buf->len = buf->cap = 0;
	buf->max = max;
}

static int buf_grow(plumb_buf *buf, size_t extra)
{
	if (extra > buf->max || buf->len > buf->max - extra)
		return plumb_error_set(PLUMB_ETOOBIG, "buffer would exceed its cap of %zu bytes", buf->max);
	size_t need = buf->len + extra + 1;
	if (need <= buf->cap)
		return 0;
	size_t cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(buf->ptr, cap);
	if (!p)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	buf->ptr = p;
	buf->cap = cap;
	return 0;
}

int plumb_buf_append(plumb_buf *buf, const void *data, size_t len)
{
	int rc = buf_grow(buf, len);
	if (rc)
		return rc;
	if (len)
		memcpy(buf->ptr + buf->len, data, len);
	buf->len += len;
	buf->ptr[buf->len] = '\0';
	return 0;
}

int plumb_buf_puts(plumb_buf *buf, const char *s)
{
	return plumb_buf_append(buf, s, strlen(s));
}

int plumb_buf_vprintf(plumb_buf *buf, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return plumb_error_set(PLUMB_EINVALID, "bad format");
	int rc = buf_grow(buf, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(buf->ptr + buf->len, (size_t)n + 1, fmt, ap);
	buf->len += (size_t)n;
	return 0;
}

int plumb_buf_printf(plumb_buf *buf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = plumb_buf_vprintf(buf, fmt, ap);
	va_end(ap);
	return rc;
}

int plumb_buf_json_string(plumb_buf *buf, const char *s)
{
	size_t start = buf->len;
	int rc = plumb_buf_append(buf, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
		char esc[8];
		switch (*p) {
		case '"': rc = plumb_buf_append(buf, "\\\"", 2); break;
		case '\\': rc = plumb_buf_append(buf, "\\\\", 2); break;
		case '\n': rc = plumb_buf_append(buf, "\\n", 2); break;
		case '\r': rc = plumb_buf_append(buf, "\\r", 2); break;
		case '\t': rc = plumb_buf_append(buf, "\\t", 2); break;
		default:
			if (*p < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
				rc = plumb_buf_append(buf, esc, 6);
			} else {
				rc = plumb_buf_append(buf, p, 1);
			}
		}
	}
	if (!rc)
		rc = plumb_buf_append(buf, "\"", 1);
	if (rc && buf->ptr) {
		buf->len = start;
		buf->ptr[start] = '\0';
	}
	return rc;
}

void plumb_buf_consume(plumb_buf *buf, size_t n)
{
	if (n >= buf->len) {
		buf->len = 0;
	} else {
		memmove(buf->ptr, buf->ptr + n, buf->len - n);
		buf->len -= n;
	}
	if (buf->ptr)
		buf->ptr[buf->len] = '\0';
}

void plumb_buf_reset(plumb_buf *buf)
{
	buf->len = 0;
	if (buf->ptr)
		buf->ptr[0] = '\0';
}

char *plumb_buf_detach(plumb_buf *buf)
{
	char *p = buf->ptr;
	if (!p)
		p = calloc(1, 1);
	buf->ptr = NULL;
	buf->len = buf->cap = 0;
	return p;
}

void plumb_buf_free(plumb_buf *buf)
{
	if (!buf)
		return;
	free(buf->ptr);
	buf->ptr = NULL;
	buf->len = buf->cap = 0;
}

/* ---- time --------------------------------------------------------------- */

double plumb_time_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double plumb_time_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void plumb_time_rfc3339(char *out, size_t outlen, double t)
{
	time_t secs = (time_t)t;
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void plumb_time_micro(char *out, size_t outlen, double t)
{
	time_t secs = (time_t)floor(t);
	long usec = (long)((t - (double)secs) * 1e6);
	if (usec > 999999)
		usec = 999999;
	if (usec < 0)
		usec = 0;
	struct tm tm;
	char base[32];
	gmtime_r(&secs, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%06ldZ", base, usec);
}

int plumb_time_parse(double *out, const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!p)
		goto bad;
	double frac = 0;
	if (*p == '.') {
		double scale = 0.1;
		p++;
		if (!isdigit((unsigned char)*p))
			goto bad;
		while (isdigit((unsigned char)*p)) {
			frac += (*p - '0') * scale;
			scale /= 10;
			p++;
		}
	}
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		int hh, mm;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			goto bad;
		offset = sign * (hh * 3600L + mm * 60L);
		p += 6;
	} else {
		goto bad;
	}
	if (*p)
		goto bad;
	*out = (double)timegm(&tm) - (double)offset + frac;
	return 0;
bad:
	return plumb_error_set(PLUMB_EINVALID, "time \"%s\" is not RFC 3339", s ? s : "");
}

int plumb_duration_parse(double *out, const char *s)
{
	const char *p = s;
	double total = 0;
	if (!s || !*s)
		goto bad;
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	while (*p) {
		char *end;
		if (!isdigit((unsigned char)*p) && *p != '.')
			goto bad;
		double v = strtod(p, &end);
		if (end == p)
			goto bad;
		p = end;
		double unit;
		if (strncmp(p, "ms", 2) == 0) { unit = 1e-3; p += 2; }
		else if (strncmp(p, "us", 2) == 0) { unit = 1e-6; p += 2; }
		else if (strncmp(p, "ns", 2) == 0) { unit = 1e-9; p += 2; }
		else if (*p == 'h') { unit = 3600; p++; }
		else if (*p == 'm') { unit = 60; p++; }
		else if (*p == 's') { unit = 1; p++; }
		else goto bad;
		total += v * unit;
	}
	*out = total;
	return 0;
bad:
	return plumb_error_set(PLUMB_EINVALID,
		"duration \"%s\": want a number with a unit, like 30s, 1m30s or 500ms", s ? s : "");
}

void plumb_sleep(double seconds)
{
	if (seconds <= 0)
		return;
	struct timespec ts;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- backoff and random ------------------------------------------------- */

double plumb_backoff(unsigned attempt, double base, double max, double jitter)
{
	double d = base * pow(2.0, attempt > 60 ? 60 : (double)attempt);
	if (d > max)
		d = max;
	if (jitter > 0)
		d *= 1.0 - jitter * plumb_random_unit();
	return d;
}

int plumb_random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return plumb_error_set(PLUMB_EIO, "getrandom: %s", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

double plumb_random_unit(void)
{
	uint64_t v = 0;
	plumb_random_bytes(&v, sizeof(v));
	return (double)(v >> 11) / 9007199254740992.0;
}

void plumb_random_name(char *out, size_t n)
{
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
	unsigned char raw[64];
	if (n > sizeof(raw))
		n = sizeof(raw);
	plumb_random_bytes(raw, n);
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	out[n] = '\0';
}

/* ---- base64 ------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int plumb_base64_encode(char **out, const void *data, size_t len)
{
	const unsigned char *in = data;
	size_t olen = 4 * ((len + 2) / 3);
	char *o = malloc(olen + 1), *w = o;
	if (!o)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		*w++ = b64[in[i] >> 2];
		*w++ = b64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*w++ = b64[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*w++ = b64[in[i + 2] & 63];
	}
	if (i < len) {
		*w++ = b64[in[i] >> 2];
		if (i + 1 < len) {
			*w++ = b64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*w++ = b64[(in[i + 1] & 15) << 2];
		} else {
			*w++ = b64[(in[i] & 3) << 4];
			*w++ = '=';
		}
		*w++ = '=';
	}
	*w = '\0';
	*out = o;
	return 0;
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+' || c == '-') return 62;
	if (c == '/' || c == '_') return 63;
	return -1;
}

int plumb_base64_decode(char **out, size_t *outlen, const char *text, size_t len)
{
	char *o = malloc(len / 4 * 3 + 4);
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0, pad = 0;
	if (!o)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)text[i];
		if (isspace(c))
			continue;
		if (c == '=') {
			pad = 1;
			continue;
		}
		int v = b64_value(c);
		if (v < 0 || pad) {
			free(o);
			return plumb_error_set(PLUMB_EINVALID,
				"base64: unexpected character at offset %zu", i);
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	o[n] = '\0';
	*out = o;
	if (outlen)
		*outlen = n;
	return 0;
}

/* ---- files and strings -------------------------------------------------- */

int plumb_file_read(char **out, size_t *outlen, const char *path, size_t max)
{
	plumb_buf buf = PLUMB_BUF_INIT(max);
	char chunk[65536];
	int rc = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return plumb_error_set(errno == ENOENT ? PLUMB_ENOTFOUND : PLUMB_EIO,
			"%s: %s", path, strerror(errno));
	for (;;) {
		size_t n = fread(chunk, 1, sizeof(chunk), f);
		if (n && (rc = plumb_buf_append(&buf, chunk, n))) {
			plumb_error_set(rc, "%s: larger than %zu bytes", path, max);
			goto cleanup;
		}
		if (n < sizeof(chunk)) {
			if (ferror(f)) {
				rc = plumb_error_set(PLUMB_EIO, "%s: read error", path);
				goto cleanup;
			}
			break;
		}
	}
	if (outlen)
		*outlen = buf.len;
	*out = plumb_buf_detach(&buf);
cleanup:
	fclose(f);
	plumb_buf_free(&buf);
	return rc;
}

int plumb_file_write(const char *path, const void *data, size_t len, int mode)
{
	char *tmp = plumb_asprintf("%s.tmp.%d", path, (int)getpid());
	int rc = 0, fd = -1;
	if (!tmp)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = plumb_error_set(PLUMB_EIO, "%s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = plumb_error_set(PLUMB_EIO, "%s: %s", tmp, strerror(errno));
			goto cleanup;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = plumb_error_set(PLUMB_EIO, "%s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		rc = plumb_error_set(PLUMB_EIO, "%s: %s", path, strerror(errno));
cleanup:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

int plumb_array_reserve(void *items_ptr, size_t *cap, size_t count, size_t size, size_t first)
{
	void **items = items_ptr;
	if (count < *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : first;
	void *grown = n > *cap && n <= SIZE_MAX / size ? realloc(*items, n * size) : NULL;
	if (!grown)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	*items = grown;
	*cap = n;
	return 0;
}

char *plumb_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *plumb_strndup(const char *s, size_t n)
{
	return s ? strndup(s, n) : NULL;
}

char *plumb_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

int plumb_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const unsigned char *x = a, *y = b;
	unsigned char diff = alen != blen;
	size_t n = alen < blen ? alen : blen;
	for (size_t i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

void plumb_sha256_hex(char out[65], const void *data, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, len, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- hex ----------------------------------------------------------------------- */

void plumb_hex_encode(char *out, const unsigned char *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int plumb_hex_decode(unsigned char *out, size_t n, const char *hex)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hex[2 * i] ? hex_digit(hex[2 * i]) : -1;
		int lo = hi >= 0 && hex[2 * i + 1] ? hex_digit(hex[2 * i + 1]) : -1;
		if (hi < 0 || lo < 0)
			return PLUMB_EINVALID;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}
