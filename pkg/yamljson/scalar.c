/*
 * pkg/yamljson: the scalar rules — how a plain scalar is typed (go-yaml v2's
 * resolve(), and the kubeconfig subset of it), Go's number syntax, !!timestamp
 * and !!binary, and numbers printed the way kubectl prints them. Pure
 * functions.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "yamljson/internal.h"

#define EXACT_INT_MAX 9007199254740992LL /* 2^53 */

/* ---- scalar typing (go-yaml v2 resolve()) ------------------------------- */

static const struct {
	const char *s;
	int kind, b;
} resolve_map[] = {
	{ "y", R_BOOL, 1 }, { "Y", R_BOOL, 1 }, { "yes", R_BOOL, 1 }, { "Yes", R_BOOL, 1 },
	{ "YES", R_BOOL, 1 }, { "true", R_BOOL, 1 }, { "True", R_BOOL, 1 }, { "TRUE", R_BOOL, 1 },
	{ "on", R_BOOL, 1 }, { "On", R_BOOL, 1 }, { "ON", R_BOOL, 1 },
	{ "n", R_BOOL, 0 }, { "N", R_BOOL, 0 }, { "no", R_BOOL, 0 }, { "No", R_BOOL, 0 },
	{ "NO", R_BOOL, 0 }, { "false", R_BOOL, 0 }, { "False", R_BOOL, 0 }, { "FALSE", R_BOOL, 0 },
	{ "off", R_BOOL, 0 }, { "Off", R_BOOL, 0 }, { "OFF", R_BOOL, 0 },
	{ "~", R_NULL, 0 }, { "null", R_NULL, 0 }, { "Null", R_NULL, 0 }, { "NULL", R_NULL, 0 },
	{ "<<", R_MERGE, 0 },
};

static const char *const inf_nan[] = {
	".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
	"-.inf", "-.Inf", "-.INF",
};

/* Go strconv.ParseUint(s, 0, 64) on an unsigned magnitude: 0 ok,
 * -1 syntax error, -2 out of range. */
static int parse_go_uint(unsigned long long *out, const char *s, size_t n)
{
	int base = 10, ovf = 0;
	unsigned long long v = 0;

	if (n == 0)
		return -1;
	if (s[0] == '0' && n > 1) {
		char p = (char)(s[1] | 0x20);
		if (p == 'x')
			base = 16, s += 2, n -= 2;
		else if (p == 'o')
			base = 8, s += 2, n -= 2;
		else if (p == 'b')
			base = 2, s += 2, n -= 2;
		else
			base = 8, s += 1, n -= 1;
		if (n == 0)
			return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int d;
		char ch = s[i];
		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')
			d = (ch | 0x20) - 'a' + 10;
		else
			return -1;
		if (d >= base)
			return -1;
		if (v > (~0ULL - (unsigned)d) / (unsigned)base)
			ovf = 1;
		else
			v = v * (unsigned)base + (unsigned)d;
	}
	*out = v;
	return ovf ? -2 : 0;
}

/* Go strconv.ParseInt(s, 0, 64). */
static int parse_go_int(long long *out, const char *s, size_t n)
{
	int neg = 0, rc;
	unsigned long long mag;

	if (n && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		s++, n--;
	}
	if ((rc = parse_go_uint(&mag, s, n)) < 0)
		return rc;
	if (neg) {
		if (mag > (1ULL << 63))
			return -2;
		*out = mag == (1ULL << 63) ? (long long)(-9223372036854775807LL - 1) : -(long long)mag;
	} else {
		if (mag > (unsigned long long)9223372036854775807LL)
			return -2;
		*out = (long long)mag;
	}
	return 0;
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int yaml_style_float(const char *s, size_t n)
{
	size_t i = 0, d;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	if (i < n && s[i] == '.') {
		i++;
		for (d = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++);
		if (!d)
			return 0;
	} else {
		for (d = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++);
		if (!d)
			return 0;
		if (i < n && s[i] == '.')
			for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++);
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++);
		if (!d)
			return 0;
	}
	return i == n;
}

/* Go ParseFloat on text already known to be a plain decimal float. 0 or -1
 * when out of range (Go then gives an error and the scalar stays a string). */
static int parse_float(double *out, const char *s, size_t n)
{
	char tmp[128], *end = NULL, *heap = NULL, *p = tmp;
	double v;

	if (n >= sizeof(tmp)) {
		if (!(heap = plumb_strndup(s, n)))
			return -1;
		p = heap;
	} else {
		memcpy(tmp, s, n);
		tmp[n] = '\0';
	}
	errno = 0;
	v = strtod(p, &end);
	free(heap);
	if (isinf(v))
		return -1;
	*out = v == 0 ? 0 : v; /* -0 prints as 0, as kubectl does */
	return 0;
}

/* Types a plain scalar like go-yaml v2 resolve() with an empty tag. */
void yamljson_resolve_plain(resolved *r, const char *s, size_t n)
{
	char hint;

	memset(r, 0, sizeof(*r));
	r->kind = R_STR;
	if (n == 0) {
		r->kind = R_NULL;
		return;
	}
	if (n <= 5)
		for (size_t i = 0; i < sizeof(resolve_map) / sizeof(resolve_map[0]); i++)
			if (strlen(resolve_map[i].s) == n && !memcmp(resolve_map[i].s, s, n)) {
				r->kind = resolve_map[i].kind;
				r->b = resolve_map[i].b;
				return;
			}
	if (n <= 5)
		for (size_t i = 0; i < sizeof(inf_nan) / sizeof(inf_nan[0]); i++)
			if (strlen(inf_nan[i]) == n && !memcmp(inf_nan[i], s, n)) {
				r->kind = R_FLOAT;
				r->f = (s[1] == 'n' || s[1] == 'N') ? NAN
					: (s[0] == '-' ? -INFINITY : INFINITY);
				return;
			}

	hint = s[0];
	if (hint == '.') {
		if (yaml_style_float(s, n) && parse_float(&r->f, s, n) == 0)
			r->kind = R_FLOAT;
		return;
	}
	if (!(hint == '+' || hint == '-' || (hint >= '0' && hint <= '9')))
		return;

	/* Underscores are dropped before the number parsers see the text. */
	char tmp[128], *plain = tmp, *heap = NULL;
	size_t pn = 0;
	if (n >= sizeof(tmp)) {
		if (!(heap = malloc(n + 1)))
			return;
		plain = heap;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i] != '_')
			plain[pn++] = s[i];
	plain[pn] = '\0';

	long long iv;
	unsigned long long uv;
	if (parse_go_int(&iv, plain, pn) == 0) {
		r->kind = R_INT;
		r->i = iv;
	} else if (plain[0] != '+' && plain[0] != '-' && parse_go_uint(&uv, plain, pn) == 0) {
		r->kind = R_UINT;
		r->u = uv;
	} else if (yaml_style_float(plain, pn) && parse_float(&r->f, plain, pn) == 0) {
		r->kind = R_FLOAT;
	}
	free(heap);
}

/* The kubeconfig subset: nulls as go-yaml types them, booleans only where
 * go-yaml types them and they are spelled true or false (YAML 1.2's and
 * JSON's), every other plain scalar the string it is. */
void yamljson_resolve_kubeconfig(resolved *r, const char *s, size_t n)
{
	yamljson_resolve_plain(r, s, n);
	if (r->kind == R_NULL || (r->kind == R_BOOL && (s[0] == 't' || s[0] == 'T' || s[0] == 'f' || s[0] == 'F')))
		return;
	memset(r, 0, sizeof(*r));
	r->kind = R_STR;
}

/* go-yaml v2's parseTimestamp(): YYYY-M-D, optionally followed by
 * [Tt]H:M:S[.frac](Z|±HH:MM) or " H:M:S[.frac]" (no zone); month, day and
 * the time fields take one or two digits and are range-checked as Go's
 * time.Parse does. */
static int digits(const char *s, size_t n, size_t *i, int min, int max, int *v)
{
	int k = 0;
	*v = 0;
	while (*i < n && k < max && s[*i] >= '0' && s[*i] <= '9') {
		if (*v < 100000)   /* only short fields are range-checked */
			*v = *v * 10 + (s[*i] - '0');
		(*i)++;
		k++;
	}
	return k >= min;
}

static int days_in(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : d[m - 1];
}

int yamljson_valid_timestamp(const char *s, size_t n)
{
	size_t i = 0;
	int y, mo, d, h, mi, sec, zh, zm, space;
	if (!digits(s, n, &i, 4, 4, &y) || i >= n || s[i++] != '-' || !digits(s, n, &i, 1, 2, &mo) ||
	    i >= n || s[i++] != '-' || !digits(s, n, &i, 1, 2, &d))
		return 0;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo))
		return 0;
	if (i == n)
		return 1;
	space = s[i] == ' ';
	if (s[i] != 'T' && s[i] != 't' && !space)
		return 0;
	i++;
	if (!digits(s, n, &i, 1, 2, &h) || i >= n || s[i++] != ':' || !digits(s, n, &i, 1, 2, &mi) ||
	    i >= n || s[i++] != ':' || !digits(s, n, &i, 1, 2, &sec))
		return 0;
	if (h > 23 || mi > 59 || sec > 59)
		return 0;
	if (i + 1 < n && (s[i] == '.' || s[i] == ',') && s[i + 1] >= '0' && s[i + 1] <= '9') {
		int f;
		i++;
		if (!digits(s, n, &i, 1, 1 << 20, &f))
			return 0;
	}
	if (space)
		return i == n;
	if (i < n && s[i] == 'Z')
		return i + 1 == n;
	if (i >= n || (s[i] != '+' && s[i] != '-'))
		return 0;
	i++;
	if (!digits(s, n, &i, 2, 2, &zh) || i >= n || s[i++] != ':' || !digits(s, n, &i, 2, 2, &zm))
		return 0;
	return i == n && zh <= 24 && zm <= 60;
}

/* go-yaml v2 decodes !!binary with Go's StdEncoding (padding required, line
 * breaks ignored) and the JSON encoder turns bytes that are not UTF-8 into
 * U+FFFD. *out: the decoded text (caller frees), or NULL when not base64. */
int yamljson_decode_binary(char **out, size_t *outlen, const char *s, size_t n)
{
	char *clean = malloc(n + 1), *raw = NULL;
	size_t m = 0, rawlen = 0, pad = 0;
	plumb_buf b = PLUMB_BUF_INIT(n + 16);
	int rc = 0;
	*out = NULL;
	if (!clean)
		return PLUMB_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (s[i] != '\r' && s[i] != '\n')
			clean[m++] = s[i];
	for (size_t i = 0; i < m; i++) {
		char ch = clean[i];
		int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			 ch == '+' || ch == '/';
		if (ch == '=' && i + 2 >= m)
			pad++;
		else if (!ok || pad)
			goto cleanup;
	}
	if (m % 4 || (pad && clean[m - 1] != '='))
		goto cleanup;
	if ((rc = plumb_base64_decode(&raw, &rawlen, clean, m)))
		goto cleanup;
	for (size_t i = 0; i < rawlen && !rc;) {
		unsigned char c0 = (unsigned char)raw[i];
		size_t len = c0 < 0x80 ? 1 : (c0 & 0xe0) == 0xc0 ? 2 : (c0 & 0xf0) == 0xe0 ? 3 : (c0 & 0xf8) == 0xf0 ? 4 : 0;
		int ok = len > 0 && i + len <= rawlen && !(len == 2 && c0 < 0xc2) && !(len == 4 && c0 > 0xf4);
		for (size_t k = 1; ok && k < len; k++)
			ok = ((unsigned char)raw[i + k] & 0xc0) == 0x80;
		if (ok && len == 3) {
			unsigned char c1 = (unsigned char)raw[i + 1];
			ok = !(c0 == 0xe0 && c1 < 0xa0) && !(c0 == 0xed && c1 >= 0xa0);
		} else if (ok && len == 4) {
			unsigned char c1 = (unsigned char)raw[i + 1];
			ok = !(c0 == 0xf0 && c1 < 0x90) && !(c0 == 0xf4 && c1 >= 0x90);
		}
		if (ok) {
			rc = plumb_buf_append(&b, raw + i, len);
			i += len;
		} else {
			rc = plumb_buf_append(&b, "\xef\xbf\xbd", 3);
			i++;
		}
	}
	if (!rc) {
		*outlen = b.len;
		*out = plumb_buf_detach(&b);
		if (!*out)
			rc = PLUMB_ENOMEM;
	}
cleanup:
	plumb_buf_free(&b);
	free(raw);
	free(clean);
	return rc;
}

cJSON *yamljson_make_int(long long v)
{
	char buf[32];
	if (v <= EXACT_INT_MAX && v >= -EXACT_INT_MAX)
		return cJSON_CreateNumber((double)v);
	/* Beyond 2^53 a double would change the value: keep the digits. */
	snprintf(buf, sizeof(buf), "%lld", v);
	return cJSON_CreateRaw(buf);
}

/* cJSON prints a double with 15 significant digits when that reads back
 * within DBL_EPSILON of the value, which can change it (1.7976931348623157e308
 * becomes 1.79769313486232e+308). Such values are kept as raw numbers with
 * the shortest text that reads back exactly. */
cJSON *yamljson_make_float(double d)
{
	char buf[40];
	snprintf(buf, sizeof(buf), "%1.15g", d);
	double t = strtod(buf, NULL);
	if (t == d || fabs(t - d) > fmax(fabs(t), fabs(d)) * DBL_EPSILON)
		return cJSON_CreateNumber(d);
	for (int prec = 16; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return cJSON_CreateRaw(buf);
}

/* Go strconv.FormatFloat(f, 'g', -1, 32), which sigs.k8s.io/yaml uses to turn
 * float map keys into strings. */
void yamljson_format_float32_g(char *out, size_t outlen, double f)
{
	float fv = (float)f;
	char digits[64];
	int prec;

	if (isinf(fv)) {
		snprintf(out, outlen, "%s", fv > 0 ? ".inf" : "-.inf");
		return;
	}
	if (isnan(fv)) {
		snprintf(out, outlen, ".nan");
		return;
	}
	for (prec = 1; prec <= 9; prec++) {
		snprintf(digits, sizeof(digits), "%.*e", prec - 1, (double)fv);
		if ((float)strtod(digits, NULL) == fv)
			break;
	}
	int exp = atoi(strchr(digits, 'e') + 1);
	if (exp < -4 || exp >= (prec > 6 ? prec : 6)) {
		/* d.ddde±XX with at least two exponent digits, as Go prints. */
		char mant[40];
		size_t mlen = (size_t)(strchr(digits, 'e') - digits);
		memcpy(mant, digits, mlen);
		mant[mlen] = '\0';
		snprintf(out, outlen, "%se%c%02d", mant, exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
	} else {
		int decimals = prec - 1 - exp;
		snprintf(out, outlen, "%.*f", decimals > 0 ? decimals : 0, (double)fv);
	}
}

