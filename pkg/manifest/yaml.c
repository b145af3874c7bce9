/*
 * YAML → cJSON with the typing kubectl uses (sigs.k8s.io/yaml over go-yaml
 * v2). Event-based on libyaml, so anchors, merge keys, substitution and
 * positions are all under our control. See manifest.h for the rules.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/base.h"
#include "manifest/internal.h"

#define TAG_PREFIX "tag:yaml.org,2002:"
#define EXACT_INT_MAX 9007199254740992LL /* 2^53 */

typedef struct {
	char *name;
	cJSON *value;
	size_t nodes;
	size_t bytes;
} yanchor;

typedef struct {
	yaml_parser_t parser;
	const manifest_vars *vars;
	yanchor *anchors;
	size_t nanchors, aanchors;
	size_t nodes;
	size_t bytes;       /* this document's scalar and key bytes, aliases expanded */
	size_t *rev_bytes;  /* the revision's, across files and documents; may be NULL */
	int err_line, err_col;
	char err[768];
	int errcode;
	int parser_broken;
	int recording;
	int *item_lines, *item_cols;
	size_t nitems, aitems;
	const char *input;
	size_t input_len;
	size_t *line_off;   /* byte offset of each line, built on first use */
	size_t nlines;
} conv;

enum { R_STR, R_NULL, R_BOOL, R_INT, R_UINT, R_FLOAT, R_MERGE };

typedef struct {
	int kind;
	int b;
	long long i;
	unsigned long long u;
	double f;
} resolved;

static int conv_fail(conv *c, const yaml_mark_t *m, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int conv_fail(conv *c, const yaml_mark_t *m, int code, const char *fmt, ...)
{
	if (!c->errcode) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
		c->err_line = m ? (int)m->line + 1 : 0;
		c->err_col = m ? (int)m->column + 1 : 0;
		c->errcode = code;
	}
	return c->errcode;
}

static int conv_next(conv *c, yaml_event_t *ev)
{
	if (yaml_parser_parse(&c->parser, ev))
		return 0;
	c->parser_broken = 1;
	if (c->parser.error == YAML_MEMORY_ERROR)
		return conv_fail(c, NULL, PLUMB_ENOMEM, "out of memory");
	if (c->parser.context)
		return conv_fail(c, &c->parser.problem_mark, PLUMB_EINVALID, "yaml: %s %s",
				c->parser.problem ? c->parser.problem : "syntax error",
				c->parser.context);
	return conv_fail(c, &c->parser.problem_mark, PLUMB_EINVALID, "yaml: %s",
			c->parser.problem ? c->parser.problem : "syntax error");
}

static int count_nodes(conv *c, size_t n, const yaml_mark_t *m)
{
	c->nodes += n;
	if (c->nodes > MANIFEST_MAX_NODES)
		return conv_fail(c, m, PLUMB_ETOOBIG,
				"document has more than %u nodes (excessive aliasing?)", MANIFEST_MAX_NODES);
	return 0;
}

/* Charges n expanded bytes (a scalar, a key, or an alias's whole expansion)
 * to the document and the revision before they are copied, so a bomb fails
 * here, with its line, instead of in memory. */
static int charge_bytes(conv *c, size_t n, const yaml_mark_t *m)
{
	c->bytes += n;
	if (c->bytes > MANIFEST_MAX_DOC_BYTES)
		return conv_fail(c, m, PLUMB_ETOOBIG,
				"document expands to more than %u bytes (aliases are counted by what they expand to)",
				MANIFEST_MAX_DOC_BYTES);
	if (c->rev_bytes) {
		*c->rev_bytes += n;
		if (*c->rev_bytes > MANIFEST_MAX_REVISION_BYTES)
			return conv_fail(c, m, PLUMB_ETOOBIG,
					"the revision expands to more than %u bytes of YAML (aliases counted by what they expand to)",
					MANIFEST_MAX_REVISION_BYTES);
	}
	return 0;
}

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
static void resolve_plain(resolved *r, const char *s, size_t n)
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

/* ---- substitution -------------------------------------------------------- */

static const char *var_lookup(const manifest_vars *v, const char *name, size_t n)
{
	static const char label_prefix[] = "CLUSTER_LABEL_";
	size_t lp = sizeof(label_prefix) - 1;

	if (n == 12 && !memcmp(name, "CLUSTER_NAME", 12) && v->cluster_name)
		return v->cluster_name;
	if (n > lp && !memcmp(name, label_prefix, lp))
		for (size_t i = 0; i < v->nlabels; i++)
			if (strlen(v->labels[i].name) == n - lp && !memcmp(v->labels[i].name, name + lp, n - lp))
				return v->labels[i].value;
	for (size_t i = v->nvars; i-- > 0;)
		if (strlen(v->vars[i].name) == n && !memcmp(v->vars[i].name, name, n))
			return v->vars[i].value;
	return NULL;
}

static int var_name_ok(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
				|| ch == '_' || ch == '.' || ch == '-' || ch == '/'))
			return 0;
	}
	return 1;
}

/* Replaces ${VAR}, ${VAR:=default} and $${ in s. *out is NULL when s has
 * nothing to replace. */
static int subst(conv *c, const yaml_mark_t *m, int plain, const char *s, size_t n,
		char **out, size_t *outlen)
{
	/* A value expanded by substitution counts against the document too:
	 * ${BIG} a thousand times must not build a thousand copies first. */
	size_t left = c->bytes < MANIFEST_MAX_DOC_BYTES ? MANIFEST_MAX_DOC_BYTES - c->bytes : 0;
	plumb_buf b = PLUMB_BUF_INIT(left < MANIFEST_MAX_FILE ? left : MANIFEST_MAX_FILE);
	int rc = 0;
	size_t i = 0, last = 0;

	*out = NULL;
	if (!memchr(s, '$', n))
		return 0;
	while (i < n) {
		if (s[i] != '$') {
			i++;
			continue;
		}
		if (i + 2 < n && s[i + 1] == '$' && s[i + 2] == '{') {
			if ((rc = plumb_buf_append(&b, s + last, i - last)) || (rc = plumb_buf_puts(&b, "${")))
				goto cleanup;
			i += 3;
			last = i;
			continue;
		}
		if (!(i + 1 < n && s[i + 1] == '{')) {
			i++;
			continue;
		}
		yaml_mark_t pos = *m;
		if (plain && !memchr(s, '\n', i))
			pos.column += i;
		const char *name = s + i + 2, *end = memchr(name, '}', n - (i + 2)), *def = NULL;
		if (!end) {
			rc = conv_fail(c, &pos, PLUMB_EINVALID, "unterminated \"${\" in value");
			goto cleanup;
		}
		size_t nlen = (size_t)(end - name);
		for (size_t k = 0; k + 1 < (size_t)(end - name); k++)
			if (name[k] == ':' && name[k + 1] == '=') {
				nlen = k;
				def = name + k + 2;
				break;
			}
		if (!var_name_ok(name, nlen)) {
			rc = conv_fail(c, &pos, PLUMB_EINVALID, "invalid variable name \"%.*s\"",
					(int)(end - name), name);
			goto cleanup;
		}
		const char *val = var_lookup(c->vars, name, nlen);
		if ((rc = plumb_buf_append(&b, s + last, i - last)))
			goto cleanup;
		if (val)
			rc = plumb_buf_puts(&b, val);
		else if (def)
			rc = plumb_buf_append(&b, def, (size_t)(end - def));
		else
			rc = conv_fail(c, &pos, PLUMB_EINVALID,
					"variable \"%.*s\" is not defined and has no default", (int)nlen, name);
		if (rc)
			goto cleanup;
		i = (size_t)(end - s) + 1;
		last = i;
	}
	if ((rc = plumb_buf_append(&b, s + last, n - last)))
		goto cleanup;
	if (!b.ptr && (rc = plumb_buf_puts(&b, "")))
		goto cleanup;
	*outlen = b.len;
	*out = plumb_buf_detach(&b);
cleanup:
	if (rc == PLUMB_ETOOBIG)
		conv_fail(c, m, rc, "value expands past the document's cap of %u bytes after substitution",
				MANIFEST_MAX_DOC_BYTES);
	else if (rc == PLUMB_ENOMEM)
		conv_fail(c, m, rc, "%s", plumb_error_last());
	plumb_buf_free(&b);
	return rc;
}

/* ---- scalars ------------------------------------------------------------- */

static const char *short_tag(int kind)
{
	switch (kind) {
	case R_NULL: return "!!null";
	case R_BOOL: return "!!bool";
	case R_INT: case R_UINT: return "!!int";
	case R_FLOAT: return "!!float";
	case R_MERGE: return "!!merge";
	default: return "!!str";
	}
}

static int build_line_offsets(conv *c)
{
	size_t n = 1;
	for (size_t i = 0; i < c->input_len; i++)
		if (c->input[i] == '\n')
			n++;
	if (!(c->line_off = malloc(n * sizeof(size_t))))
		return PLUMB_ENOMEM;
	c->line_off[0] = 0;
	c->nlines = 1;
	for (size_t i = 0; i < c->input_len; i++)
		if (c->input[i] == '\n')
			c->line_off[c->nlines++] = i + 1;
	return 0;
}

/* go-yaml v2 (and so kubectl) rejects the "\/" escape that libyaml 0.2
 * accepts. The event only has the decoded text, so look at the source lines
 * of a double-quoted scalar whose value holds a '/'. */
static int check_escapes(conv *c, const yaml_event_t *ev)
{
	if (ev->data.scalar.style != YAML_DOUBLE_QUOTED_SCALAR_STYLE
			|| !memchr(ev->data.scalar.value, '/', ev->data.scalar.length) || !c->input)
		return 0;
	if (!c->line_off && build_line_offsets(c))
		return conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
	size_t l0 = ev->start_mark.line, l1 = ev->end_mark.line;
	if (l0 >= c->nlines)
		return 0;
	size_t from = c->line_off[l0], to = l1 + 1 < c->nlines ? c->line_off[l1 + 1] : c->input_len;
	for (size_t i = from; i + 1 < to; i++) {
		if (c->input[i] != '\\')
			continue;
		if (c->input[i + 1] == '/')
			return conv_fail(c, &ev->start_mark, PLUMB_EINVALID,
					"yaml: found unknown escape character \"\\/\" (kubectl rejects it)");
		i++;
	}
	return 0;
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

static int valid_timestamp(const char *s, size_t n)
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
static int decode_binary(char **out, size_t *outlen, const char *s, size_t n)
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

/* Types a scalar event (after substitution). *text and *len point at the value
 * to use for strings; *owned is set when it was allocated. */
static int scalar_resolve(conv *c, yaml_event_t *ev, resolved *r, const char **text,
		size_t *len, char **owned)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	int rc;

	*owned = NULL;
	if ((rc = check_escapes(c, ev)))
		return rc;
	*text = (const char *)ev->data.scalar.value;
	*len = ev->data.scalar.length;
	if (c->vars && c->vars->enabled) {
		if ((rc = subst(c, &ev->start_mark, plain, *text, *len, owned, len)))
			return rc;
		if (*owned)
			*text = *owned;
	}
	if (memchr(*text, '\0', *len))
		return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "a NUL character cannot be sent as JSON here");
	if ((rc = charge_bytes(c, *len + 1, &ev->start_mark)))
		return rc;

	memset(r, 0, sizeof(*r));
	r->kind = R_STR;
	if (!tag || !strcmp(tag, "!")) {
		if (!tag && plain && ev->data.scalar.plain_implicit)
			resolve_plain(r, *text, *len);
		return 0;
	}
	if (strncmp(tag, TAG_PREFIX, sizeof(TAG_PREFIX) - 1))
		return 0; /* a local tag: go-yaml keeps the text */
	tag += sizeof(TAG_PREFIX) - 1;
	if (!strcmp(tag, "str"))
		return 0;
	if (!strcmp(tag, "timestamp")) {
		/* kubectl keeps the text, once it reads as a timestamp */
		if (valid_timestamp(*text, *len))
			return 0;
		return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "cannot decode !!str `%.*s` as a !!timestamp",
				(int)(*len > 80 ? 80 : *len), *text);
	}
	if (!strcmp(tag, "binary")) {
		char *bin = NULL;
		size_t blen = 0;
		if ((rc = decode_binary(&bin, &blen, *text, *len)) == PLUMB_ENOMEM)
			return conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
		if (!bin)
			return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "!!binary value is not valid base64");
		if (memchr(bin, '\0', blen)) {
			free(bin);
			return conv_fail(c, &ev->start_mark, PLUMB_EINVALID,
					"a NUL character cannot be sent as JSON here (decoded !!binary)");
		}
		free(*owned);
		*owned = bin;
		*text = bin;
		*len = blen;
		return 0;
	}
	int want;
	if (!strcmp(tag, "null"))
		want = R_NULL;
	else if (!strcmp(tag, "bool"))
		want = R_BOOL;
	else if (!strcmp(tag, "int"))
		want = R_INT;
	else if (!strcmp(tag, "float"))
		want = R_FLOAT;
	else if (!strcmp(tag, "merge"))
		want = R_MERGE;
	else
		return 0;
	resolve_plain(r, *text, *len);
	if (r->kind == want || (want == R_INT && r->kind == R_UINT))
		return 0;
	if (want == R_FLOAT && r->kind == R_INT) {
		r->kind = R_FLOAT;
		r->f = (double)r->i;
		return 0;
	}
	if (want == R_FLOAT && r->kind == R_UINT) {
		r->kind = R_FLOAT;
		r->f = (double)r->u;
		return 0;
	}
	return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "cannot decode %s `%.*s` as a !!%s",
			short_tag(r->kind), (int)(*len > 80 ? 80 : *len), *text, tag);
}

static cJSON *make_int(long long v)
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
static cJSON *make_float(double d)
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

static int scalar_value(conv *c, yaml_event_t *ev, cJSON **out)
{
	resolved r;
	const char *text;
	size_t len;
	char *owned = NULL;
	cJSON *v = NULL;
	int rc;

	if ((rc = scalar_resolve(c, ev, &r, &text, &len, &owned)))
		goto cleanup;
	switch (r.kind) {
	case R_NULL: v = cJSON_CreateNull(); break;
	case R_BOOL: v = cJSON_CreateBool(r.b); break;
	case R_INT: v = make_int(r.i); break;
	case R_UINT: v = cJSON_CreateNumber((double)r.u); break;
	case R_FLOAT:
		if (isnan(r.f) || isinf(r.f)) {
			rc = conv_fail(c, &ev->start_mark, PLUMB_EINVALID,
					"json: unsupported value: %.*s (JSON has no infinity or NaN)", (int)len, text);
			goto cleanup;
		}
		v = make_float(r.f);
		break;
	default: {
		char *tmp = owned;
		if (!tmp && !(tmp = plumb_strndup(text, len))) {
			rc = conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		v = cJSON_CreateString(tmp);
		if (tmp != owned)
			free(tmp);
		break;
	}
	}
	if (!v) {
		rc = conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	*out = v;
cleanup:
	free(owned);
	return rc;
}

/* Go strconv.FormatFloat(f, 'g', -1, 32), which sigs.k8s.io/yaml uses to turn
 * float map keys into strings. */
static void format_float32_g(char *out, size_t outlen, double f)
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

/* Turns a key scalar into its JSON key. *merge is set for "<<". */
static int scalar_key(conv *c, yaml_event_t *ev, char **out, int *merge)
{
	resolved r;
	const char *text;
	size_t len;
	char *owned = NULL, buf[64];
	int rc;

	*merge = 0;
	if ((rc = scalar_resolve(c, ev, &r, &text, &len, &owned)))
		return rc;
	switch (r.kind) {
	case R_MERGE:
		*merge = 1;
		free(owned);
		return 0;
	case R_NULL:
		free(owned);
		return conv_fail(c, &ev->start_mark, PLUMB_EINVALID, "unsupported map key: null");
	case R_BOOL: snprintf(buf, sizeof(buf), "%s", r.b ? "true" : "false"); break;
	case R_INT: snprintf(buf, sizeof(buf), "%lld", r.i); break;
	case R_UINT: snprintf(buf, sizeof(buf), "%llu", r.u); break;
	case R_FLOAT: format_float32_g(buf, sizeof(buf), r.f); break;
	default:
		*out = owned ? owned : plumb_strndup(text, len);
		return *out ? 0 : conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
	}
	free(owned);
	*out = plumb_strdup(buf);
	return *out ? 0 : conv_fail(c, &ev->start_mark, PLUMB_ENOMEM, "out of memory");
}

/* ---- anchors ------------------------------------------------------------- */

static void anchors_clear(conv *c)
{
	for (size_t i = 0; i < c->nanchors; i++) {
		free(c->anchors[i].name);
		cJSON_Delete(c->anchors[i].value);
	}
	c->nanchors = 0;
}

static int anchor_add(conv *c, const char *name, const cJSON *v, size_t nodes, size_t bytes,
		const yaml_mark_t *m)
{
	if (c->nanchors == c->aanchors) {
		size_t na = c->aanchors ? c->aanchors * 2 : 8;
		yanchor *p = realloc(c->anchors, na * sizeof(*p));
		if (!p)
			return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
		c->anchors = p;
		c->aanchors = na;
	}
	yanchor *a = &c->anchors[c->nanchors];
	a->name = plumb_strdup(name);
	a->value = cJSON_Duplicate(v, 1);
	a->nodes = nodes;
	a->bytes = bytes;
	if (!a->name || !a->value) {
		free(a->name);
		cJSON_Delete(a->value);
		return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
	}
	c->nanchors++;
	return 0;
}

static const yanchor *anchor_find(conv *c, const char *name)
{
	for (size_t i = c->nanchors; i-- > 0;)
		if (!strcmp(c->anchors[i].name, name))
			return &c->anchors[i];
	return NULL;
}

/* ---- nodes --------------------------------------------------------------- */

static int conv_node(conv *c, yaml_event_t *ev, cJSON **out, int depth);

static int obj_set(cJSON *obj, const char *key, cJSON *v)
{
	if (cJSON_GetObjectItemCaseSensitive(obj, key))
		return cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v) ? 0 : PLUMB_ENOMEM;
	cJSON_AddItemToObject(obj, key, v);
	return 0;
}

/* go-yaml v2: the merged map's keys are set in order into the target,
 * overriding keys set before `<<`; a sequence is applied last to first so
 * that earlier maps win. */
static int merge_into(conv *c, cJSON *obj, const cJSON *src, const yaml_mark_t *m)
{
	if (cJSON_IsObject(src)) {
		for (const cJSON *it = src->child; it; it = it->next) {
			cJSON *dup = cJSON_Duplicate(it, 1);
			if (!dup || obj_set(obj, it->string, dup))
				return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
		}
		return 0;
	}
	if (cJSON_IsArray(src)) {
		int n = cJSON_GetArraySize(src);
		for (int i = n - 1; i >= 0; i--) {
			const cJSON *item = cJSON_GetArrayItem(src, i);
			if (!cJSON_IsObject(item))
				return conv_fail(c, m, PLUMB_EINVALID,
						"map merge requires map or sequence of maps as the value");
			int rc = merge_into(c, obj, item, m);
			if (rc)
				return rc;
		}
		return 0;
	}
	return conv_fail(c, m, PLUMB_EINVALID, "map merge requires map or sequence of maps as the value");
}

static int conv_mapping(conv *c, const yaml_mark_t *smark, cJSON **out, int depth)
{
	cJSON *obj = cJSON_CreateObject();
	yaml_event_t kev, vev;
	char *key = NULL;
	int rc = 0, merge = 0;

	if (!obj)
		return conv_fail(c, smark, PLUMB_ENOMEM, "out of memory");
	if ((rc = count_nodes(c, 1, smark)))
		goto cleanup;
	for (;;) {
		cJSON *val = NULL;
		if ((rc = conv_next(c, &kev)))
			goto cleanup;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			break;
		}
		yaml_mark_t kmark = kev.start_mark;
		if (kev.type == YAML_SCALAR_EVENT) {
			rc = scalar_key(c, &kev, &key, &merge);
		} else if (kev.type == YAML_ALIAS_EVENT) {
			const yanchor *a = anchor_find(c, (const char *)kev.data.alias.anchor);
			char buf[64];
			merge = 0;
			if (!a)
				rc = conv_fail(c, &kmark, PLUMB_EINVALID, "unknown anchor '%s' referenced",
						(const char *)kev.data.alias.anchor);
			else if ((rc = charge_bytes(c, a->bytes, &kmark)))
				;
			else if (cJSON_IsString(a->value))
				rc = (key = plumb_strdup(a->value->valuestring)) ? 0 : PLUMB_ENOMEM;
			else if (cJSON_IsBool(a->value))
				rc = (key = plumb_strdup(cJSON_IsTrue(a->value) ? "true" : "false")) ? 0 : PLUMB_ENOMEM;
			else if (cJSON_IsNumber(a->value)) {
				snprintf(buf, sizeof(buf), "%.17g", a->value->valuedouble);
				rc = (key = plumb_strdup(buf)) ? 0 : PLUMB_ENOMEM;
			} else if (cJSON_IsRaw(a->value))
				rc = (key = plumb_strdup(a->value->valuestring)) ? 0 : PLUMB_ENOMEM;
			else
				rc = conv_fail(c, &kmark, PLUMB_EINVALID, "invalid map key: not a scalar");
		} else {
			rc = conv_fail(c, &kmark, PLUMB_EINVALID,
					"invalid map key: a mapping or sequence cannot be a key");
		}
		yaml_event_delete(&kev);
		if (rc)
			goto cleanup;

		if ((rc = conv_next(c, &vev)))
			goto cleanup;
		if (depth == 0 && key && !strcmp(key, "items"))
			c->recording = 1;
		rc = conv_node(c, &vev, &val, depth + 1);
		c->recording = 0;
		if (rc)
			goto cleanup;
		if (merge) {
			rc = merge_into(c, obj, val, &kmark);
			cJSON_Delete(val);
		} else if (obj_set(obj, key, val)) {
			cJSON_Delete(val);
			rc = conv_fail(c, &kmark, PLUMB_ENOMEM, "out of memory");
		}
		free(key);
		key = NULL;
		if (rc)
			goto cleanup;
	}
	*out = obj;
	obj = NULL;
cleanup:
	free(key);
	cJSON_Delete(obj);
	return rc;
}

static int record_item(conv *c, const yaml_mark_t *m)
{
	if (c->nitems == c->aitems) {
		size_t na = c->aitems ? c->aitems * 2 : 16;
		int *l = realloc(c->item_lines, na * sizeof(int));
		if (!l)
			return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
		c->item_lines = l;
		int *k = realloc(c->item_cols, na * sizeof(int));
		if (!k)
			return conv_fail(c, m, PLUMB_ENOMEM, "out of memory");
		c->item_cols = k;
		c->aitems = na;
	}
	c->item_lines[c->nitems] = (int)m->line + 1;
	c->item_cols[c->nitems] = (int)m->column + 1;
	c->nitems++;
	return 0;
}

static int conv_sequence(conv *c, const yaml_mark_t *smark, cJSON **out, int depth)
{
	cJSON *arr = cJSON_CreateArray();
	yaml_event_t ev;
	int rc = 0, record = c->recording && depth == 1;

	c->recording = 0;
	if (!arr)
		return conv_fail(c, smark, PLUMB_ENOMEM, "out of memory");
	if ((rc = count_nodes(c, 1, smark)))
		goto cleanup;
	for (;;) {
		cJSON *val = NULL;
		if ((rc = conv_next(c, &ev)))
			goto cleanup;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (record && (rc = record_item(c, &ev.start_mark))) {
			yaml_event_delete(&ev);
			goto cleanup;
		}
		if ((rc = conv_node(c, &ev, &val, depth + 1)))
			goto cleanup;
		cJSON_AddItemToArray(arr, val);
	}
	*out = arr;
	arr = NULL;
cleanup:
	cJSON_Delete(arr);
	return rc;
}

/* Converts the node that starts with *ev (consumed and deleted here). */
static int conv_node(conv *c, yaml_event_t *ev, cJSON **out, int depth)
{
	char *anchor = NULL;
	size_t before = c->nodes, before_bytes = c->bytes;
	int rc = 0;
	yaml_mark_t mark = ev->start_mark;

	*out = NULL;
	if (depth > MANIFEST_MAX_DEPTH) {
		rc = conv_fail(c, &mark, PLUMB_EINVALID, "nesting deeper than %d levels", MANIFEST_MAX_DEPTH);
		goto cleanup;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor && !(anchor = plumb_strdup((char *)ev->data.scalar.anchor)))
			goto oom;
		if (!(rc = count_nodes(c, 1, &mark)))
			rc = scalar_value(c, ev, out);
		break;
	case YAML_ALIAS_EVENT: {
		const yanchor *a = anchor_find(c, (const char *)ev->data.alias.anchor);
		if (!a) {
			rc = conv_fail(c, &mark, PLUMB_EINVALID, "unknown anchor '%s' referenced",
					(const char *)ev->data.alias.anchor);
			break;
		}
		if ((rc = count_nodes(c, a->nodes, &mark)) || (rc = charge_bytes(c, a->bytes, &mark)))
			break;
		if (!(*out = cJSON_Duplicate(a->value, 1)))
			goto oom;
		break;
	}
	case YAML_MAPPING_START_EVENT:
		if (ev->data.mapping_start.anchor && !(anchor = plumb_strdup((char *)ev->data.mapping_start.anchor)))
			goto oom;
		yaml_event_delete(ev);
		rc = conv_mapping(c, &mark, out, depth);
		break;
	case YAML_SEQUENCE_START_EVENT:
		if (ev->data.sequence_start.anchor && !(anchor = plumb_strdup((char *)ev->data.sequence_start.anchor)))
			goto oom;
		yaml_event_delete(ev);
		rc = conv_sequence(c, &mark, out, depth);
		break;
	default:
		rc = conv_fail(c, &mark, PLUMB_EINVALID, "yaml: unexpected event %d", (int)ev->type);
		break;
	}
	if (!rc && anchor)
		rc = anchor_add(c, anchor, *out, c->nodes - before, c->bytes - before_bytes, &mark);
	if (rc) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	goto cleanup;
oom:
	rc = conv_fail(c, &mark, PLUMB_ENOMEM, "out of memory");
cleanup:
	free(anchor);
	yaml_event_delete(ev);
	return rc;
}

/* ---- streams ------------------------------------------------------------- */

typedef int (*doc_fn)(void *ctx, conv *c, cJSON *root, int line, int col);
typedef void (*err_fn)(void *ctx, conv *c);

/* Walks every document; root is owned by the callback. Semantic errors are
 * reported through on_err and parsing resumes at the next document; a
 * syntax error ends the stream. Returns the first error code seen. */
static int parse_stream(const char *data, size_t len, const manifest_vars *vars, size_t *rev_bytes,
		doc_fn on_doc, err_fn on_err, void *ctx)
{
	conv c;
	yaml_event_t ev;
	int rc = 0, first = 0;

	memset(&c, 0, sizeof(c));
	c.vars = vars;
	c.rev_bytes = rev_bytes;
	c.input = data;
	c.input_len = len;
	if (!yaml_parser_initialize(&c.parser))
		return plumb_error_set(PLUMB_ENOMEM, "yaml: cannot initialise parser");
	yaml_parser_set_input_string(&c.parser, (const unsigned char *)data, len);
	for (;;) {
		if ((rc = conv_next(&c, &ev)))
			goto fail;
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT && (ev.data.document_start.version_directive
				|| ev.data.document_start.tag_directives.start != ev.data.document_start.tag_directives.end)) {
			/* kubectl splits files at "---" lines first, so a directive
			 * ends up in a document of its own and fails: do the same. */
			rc = conv_fail(&c, &ev.start_mark, PLUMB_EINVALID,
					"yaml: %%YAML and %%TAG directives are not supported (kubectl rejects them)");
			yaml_event_delete(&ev);
			goto fail;
		}
		if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		if (ev.type == YAML_DOCUMENT_END_EVENT) {
			anchors_clear(&c);
			c.nodes = 0;
			c.bytes = 0;
			yaml_event_delete(&ev);
			continue;
		}
		cJSON *root = NULL;
		int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
		c.nitems = 0;
		if ((rc = conv_node(&c, &ev, &root, 0)))
			goto fail;
		if ((rc = on_doc(ctx, &c, root, line, col)))
			goto fail;
		continue;
fail:
		if (!c.errcode)
			conv_fail(&c, NULL, rc, "%s", plumb_error_last());
		on_err(ctx, &c);
		if (!first)
			first = c.errcode;
		if (c.parser_broken || c.errcode == PLUMB_ENOMEM)
			break;
		c.errcode = 0;
		/* Skip what is left of this document. */
		for (;;) {
			if (conv_next(&c, &ev)) {
				on_err(ctx, &c);
				goto done;
			}
			yaml_event_type_t t = ev.type;
			yaml_event_delete(&ev);
			if (t == YAML_DOCUMENT_END_EVENT || t == YAML_STREAM_END_EVENT)
				break;
		}
		anchors_clear(&c);
		c.nodes = 0;
		c.bytes = 0;
	}
done:
	anchors_clear(&c);
	free(c.anchors);
	free(c.item_lines);
	free(c.item_cols);
	free(c.line_off);
	yaml_parser_delete(&c.parser);
	return first;
}

/* ---- manifest_parse ------------------------------------------------------ */

typedef struct {
	manifest_set *set;
	const char *file;
	manifest_errors *errs;
	int nerr;
} parse_ctx;

static const char *json_kind(const cJSON *v)
{
	if (cJSON_IsArray(v))
		return "a sequence";
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v) || cJSON_IsRaw(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	return "a scalar";
}

static int parse_on_doc(void *vctx, conv *c, cJSON *root, int line, int col)
{
	parse_ctx *p = vctx;
	const char *file = p->file;
	int rc = 0;

	if (cJSON_IsNull(root)) { /* an empty document */
		cJSON_Delete(root);
		return 0;
	}
	if (!cJSON_IsObject(root)) {
		rc = manifest_errors_addf(p->errs, file, line, col, "document is %s, not a mapping", json_kind(root));
		p->nerr++;
		cJSON_Delete(root);
		return rc;
	}
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
	cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "items");
	size_t klen = cJSON_IsString(kind) ? strlen(kind->valuestring) : 0;
	if (klen >= 4 && !strcmp(kind->valuestring + klen - 4, "List") && cJSON_IsArray(items)) {
		size_t i = 0;
		cJSON *it;
		while ((it = cJSON_DetachItemFromArray(items, 0))) {
			int il = i < c->nitems ? c->item_lines[i] : line;
			int ic = i < c->nitems ? c->item_cols[i] : col;
			i++;
			if (cJSON_IsNull(it)) {
				cJSON_Delete(it);
				continue;
			}
			if (!cJSON_IsObject(it)) {
				manifest_errors_addf(p->errs, file, il, ic, "List item is %s, not a mapping", json_kind(it));
				p->nerr++;
				cJSON_Delete(it);
				continue;
			}
			if ((rc = manifest_set_push(p->set, it, file, il, ic)))
				break;
		}
		cJSON_Delete(root);
		return rc;
	}
	return manifest_set_push(p->set, root, file, line, col);
}

static void parse_on_err(void *vctx, conv *c)
{
	parse_ctx *p = vctx;
	manifest_errors_addf(p->errs, p->file, c->err_line, c->err_col, "%s", c->err);
	p->nerr++;
}

int manifest_parse(manifest_set *set, const char *file, const char *data, size_t len,
		const manifest_vars *vars, manifest_errors *errs)
{
	parse_ctx p = { set, NULL, errs, 0 };
	int rc;

	if (!(p.file = manifest_set_intern_file(set, file)))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (len > MANIFEST_MAX_FILE) {
		manifest_errors_addf(errs, file, 1, 1, "file is larger than the cap of %u bytes", MANIFEST_MAX_FILE);
		return plumb_error_set(PLUMB_ETOOBIG, "%s: file is larger than the cap of %u bytes",
				file, MANIFEST_MAX_FILE);
	}
	rc = parse_stream(data, len, vars, &set->expanded_bytes, parse_on_doc, parse_on_err, &p);
	if (rc == PLUMB_ENOMEM)
		return plumb_error_set(rc, "%s: out of memory", file);
	if (p.nerr || rc)
		return plumb_error_set(rc && rc != PLUMB_EINVALID ? rc : PLUMB_EINVALID,
				"%s: %d error(s) in manifest", file, p.nerr);
	return 0;
}

/* ---- manifest_yaml_to_json ----------------------------------------------- */

typedef struct {
	cJSON *root;
	int ndocs;
	int err;
	char msg[900];
} single_ctx;

static int single_on_doc(void *vctx, conv *c, cJSON *root, int line, int col)
{
	single_ctx *s = vctx;
	(void)c;
	if (s->ndocs++) {
		cJSON_Delete(root);
		snprintf(s->msg, sizeof(s->msg), "%d:%d: more than one document", line, col);
		return s->err = PLUMB_EINVALID;
	}
	s->root = root;
	return 0;
}

static void single_on_err(void *vctx, conv *c)
{
	single_ctx *s = vctx;
	if (!s->err) {
		s->err = c->errcode ? c->errcode : PLUMB_EINVALID;
		snprintf(s->msg, sizeof(s->msg), "%d:%d: %s", c->err_line, c->err_col, c->err);
	}
}

int manifest_yaml_to_json(cJSON **out, const char *data, size_t len)
{
	single_ctx s;
	memset(&s, 0, sizeof(s));
	if (len > MANIFEST_MAX_FILE)
		return plumb_error_set(PLUMB_ETOOBIG, "input is larger than the cap of %u bytes", MANIFEST_MAX_FILE);
	parse_stream(data, len, NULL, NULL, single_on_doc, single_on_err, &s);
	if (s.err) {
		cJSON_Delete(s.root);
		return plumb_error_set(s.err, "%s", s.msg);
	}
	if (!s.root && !(s.root = cJSON_CreateNull()))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	*out = s.root;
	return 0;
}

int manifest_plain_is_string(const char *s, size_t n)
{
	resolved r;
	resolve_plain(&r, s, n);
	return r.kind == R_STR;
}
