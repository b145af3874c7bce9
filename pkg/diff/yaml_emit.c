/*
 * JSON → YAML for humans (plumbctl render, diffs) and the unified diff.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff/diff.h"
#include "manifest/manifest.h"

#define DIFF_MAX_YAML (64u * 1024 * 1024)
#define DIFF_MAX_LCS_CELLS (16u * 1000 * 1000)

static int pad(plumb_buf *b, int n)
{
	static const char spaces[] = "                                                                ";
	int rc = 0;
	while (n > 0 && !rc) {
		int k = n > 64 ? 64 : n;
		rc = plumb_buf_append(b, spaces, (size_t)k);
		n -= k;
	}
	return rc;
}

/* Code points YAML will not take raw: C1 controls, the line breaks U+0085,
 * U+2028 and U+2029, the BOM and the non-characters U+FFFE/U+FFFF. Returns the
 * code point at p (length in *len) when it is one of those, else 0. */
static unsigned special_char(const unsigned char *p, size_t *len)
{
	unsigned cp;
	*len = 1;
	if (p[0] < 0x80)
		return 0;
	if ((p[0] & 0xe0) == 0xc0 && (p[1] & 0xc0) == 0x80) {
		*len = 2;
		cp = ((p[0] & 0x1fu) << 6) | (p[1] & 0x3fu);
	} else if ((p[0] & 0xf0) == 0xe0 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80) {
		*len = 3;
		cp = ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
	} else {
		return 0;
	}
	if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff
			|| cp == 0xfffe || cp == 0xffff)
		return cp;
	return 0;
}

static int has_special_char(const char *s)
{
	size_t len;
	for (const unsigned char *p = (const unsigned char *)s; *p; p += len)
		if (special_char(p, &len))
			return 1;
	return 0;
}

/* A YAML double-quoted scalar; escapes what YAML cannot hold raw. */
static int emit_dq(plumb_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len;
	int rc = plumb_buf_puts(b, "\"");
	for (; *p && !rc; p += len) {
		unsigned cp = special_char(p, &len);
		if (cp)
			rc = plumb_buf_printf(b, "\\u%04x", cp);
		else if (*p == '"' || *p == '\\')
			rc = plumb_buf_printf(b, "\\%c", *p);
		else if (*p == '\n')
			rc = plumb_buf_puts(b, "\\n");
		else if (*p == '\t')
			rc = plumb_buf_puts(b, "\\t");
		else if (*p == '\r')
			rc = plumb_buf_puts(b, "\\r");
		else if (*p < 0x20 || *p == 0x7f)
			rc = plumb_buf_printf(b, "\\u%04x", *p);
		else
			rc = plumb_buf_append(b, p, len);
	}
	return rc ? rc : plumb_buf_puts(b, "\"");
}

static int needs_quotes(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || !manifest_plain_is_string(s, n))
		return 1;
	if (strchr("?:,[]{}#&*!|>'\"%@` \t", s[0]))
		return 1;
	if (s[0] == '-' && (s[1] == '\0' || s[1] == ' ' || s[1] == '-'))
		return 1;
	if (s[0] == '.' && s[1] == '.')
		return 1;
	if (s[n - 1] == ' ' || s[n - 1] == ':' || s[n - 1] == '\t')
		return 1;
	if (strstr(s, ": ") || strstr(s, " #") || strstr(s, ":\t"))
		return 1;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 1;
	return has_special_char(s);
}

/* Multi-line text that a literal block shows faithfully. */
static int block_ok(const char *s)
{
	if (!strchr(s, '\n') || s[0] == ' ' || s[0] == '\n' || s[0] == '\t' || has_special_char(s))
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
			return 0;
	/* Trailing spaces on a line survive in a block, but a line made only of
	 * spaces after the first would be read as indentation: quote instead. */
	for (const char *l = strchr(s, '\n'); l; l = strchr(l + 1, '\n')) {
		const char *q = l + 1;
		while (*q == ' ')
			q++;
		if (q != l + 1 && (*q == '\n' || *q == '\0'))
			return 0;
	}
	return 1;
}

static int emit_string(plumb_buf *b, const char *s, int indent)
{
	int rc;
	if (block_ok(s)) {
		size_t n = strlen(s), trail = 0;
		while (trail < n && s[n - 1 - trail] == '\n')
			trail++;
		if ((rc = plumb_buf_puts(b, trail == 0 ? "|-\n" : trail == 1 ? "|\n" : "|+\n")))
			return rc;
		const char *p = s, *end = s + n - (trail ? 1 : 0);
		for (;;) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
			if (len && (rc = pad(b, indent)))
				return rc;
			if ((rc = plumb_buf_append(b, p, len)) || (rc = plumb_buf_puts(b, "\n")))
				return rc;
			if (!nl)
				break;
			p = nl + 1;
		}
		return 0;
	}
	if (needs_quotes(s))
		rc = emit_dq(b, s);
	else
		rc = plumb_buf_puts(b, s);
	return rc ? rc : plumb_buf_puts(b, "\n");
}

static int emit_number(plumb_buf *b, const cJSON *v)
{
	double d = v->valuedouble;
	char tmp[64];
	if (cJSON_IsRaw(v))
		return plumb_buf_puts(b, v->valuestring);
	if (d == floor(d) && fabs(d) < 1e15) {
		snprintf(tmp, sizeof(tmp), "%.0f", d == 0 ? 0.0 : d);
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
			if (strtod(tmp, NULL) == d)
				break;
		}
		/* "1e+20" reads back as a float; "5" would be an int, which is fine. */
	}
	return plumb_buf_puts(b, tmp);
}

static int emit_node(plumb_buf *b, const cJSON *v, int indent, int inline_first);

static int emit_scalar(plumb_buf *b, const cJSON *v, int indent)
{
	int rc;
	if (cJSON_IsString(v))
		return emit_string(b, v->valuestring, indent);
	if (cJSON_IsNumber(v) || cJSON_IsRaw(v))
		rc = emit_number(b, v);
	else if (cJSON_IsTrue(v))
		rc = plumb_buf_puts(b, "true");
	else if (cJSON_IsFalse(v))
		rc = plumb_buf_puts(b, "false");
	else if (cJSON_IsObject(v))
		rc = plumb_buf_puts(b, "{}");
	else if (cJSON_IsArray(v))
		rc = plumb_buf_puts(b, "[]");
	else
		rc = plumb_buf_puts(b, "null");
	return rc ? rc : plumb_buf_puts(b, "\n");
}

static int emit_key(plumb_buf *b, const char *k)
{
	int rc = needs_quotes(k) ? emit_dq(b, k) : plumb_buf_puts(b, k);
	return rc ? rc : plumb_buf_puts(b, ":");
}

/* inline_first: the first line's indentation is already written (after "- "). */
static int emit_node(plumb_buf *b, const cJSON *v, int indent, int inline_first)
{
	int rc = 0, first = 1;

	if (indent > 2 * MANIFEST_MAX_DEPTH + 8)
		return plumb_error_set(PLUMB_EINVALID, "object nested too deep to print");
	if (cJSON_IsObject(v) && v->child) {
		for (const cJSON *it = v->child; it && !rc; it = it->next, first = 0) {
			if (!(first && inline_first) && (rc = pad(b, indent)))
				break;
			if ((rc = emit_key(b, it->string)))
				break;
			if ((cJSON_IsObject(it) || cJSON_IsArray(it)) && it->child) {
				if ((rc = plumb_buf_puts(b, "\n")))
					break;
				rc = emit_node(b, it, cJSON_IsObject(it) ? indent + 2 : indent, 0);
			} else {
				if ((rc = plumb_buf_puts(b, " ")))
					break;
				rc = emit_scalar(b, it, indent + 2);
			}
		}
		return rc;
	}
	if (cJSON_IsArray(v) && v->child) {
		for (const cJSON *it = v->child; it && !rc; it = it->next, first = 0) {
			if (!(first && inline_first) && (rc = pad(b, indent)))
				break;
			if ((rc = plumb_buf_puts(b, "- ")))
				break;
			if ((cJSON_IsObject(it) || cJSON_IsArray(it)) && it->child)
				rc = emit_node(b, it, indent + 2, 1);
			else
				rc = emit_scalar(b, it, indent + 2);
		}
		return rc;
	}
	if (!inline_first && (rc = pad(b, indent)))
		return rc;
	return emit_scalar(b, v, indent + 2);
}

int diff_to_yaml(plumb_buf *buf, const cJSON *v)
{
	return emit_node(buf, v, 0, 0);
}

/* ---- projection and unified diff ----------------------------------------- */

/* live restricted to the fields want sets (and, for previous, still has). */
static cJSON *project(const cJSON *live, const cJSON *want, const cJSON *prev, int depth)
{
	if (!live)
		return NULL;
	if (cJSON_IsObject(want) && cJSON_IsObject(live)) {
		cJSON *o = cJSON_CreateObject();
		for (const cJSON *it = want->child; it && o; it = it->next) {
			if ((depth == 0 && !strcmp(it->string, "status")))
				continue;
			const cJSON *lv = cJSON_GetObjectItemCaseSensitive(live, it->string);
			if (!lv)
				continue;
			cJSON *p = project(lv, it, cJSON_GetObjectItemCaseSensitive(prev, it->string), depth + 1);
			if (p)
				cJSON_AddItemToObject(o, it->string, p);
		}
		for (const cJSON *it = cJSON_IsObject(prev) ? prev->child : NULL; it && o; it = it->next) {
			const cJSON *lv = cJSON_GetObjectItemCaseSensitive(live, it->string);
			if (lv && !cJSON_GetObjectItemCaseSensitive(want, it->string))
				cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(lv, 1));
		}
		return o;
	}
	if (cJSON_IsArray(want) && cJSON_IsArray(live) && cJSON_GetArraySize(want) == cJSON_GetArraySize(live)) {
		cJSON *a = cJSON_CreateArray();
		for (const cJSON *p = want->child, *q = live->child; p && q && a; p = p->next, q = q->next)
			cJSON_AddItemToArray(a, project(q, p, NULL, depth + 1));
		return a;
	}
	return cJSON_Duplicate(live, 1);
}

typedef struct {
	const char **ptr;
	size_t *len;
	size_t n;
} lines;

static int split_lines(lines *out, const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p; p++)
		if (*p == '\n')
			n++;
	out->ptr = calloc(n + 1, sizeof(char *));
	out->len = calloc(n + 1, sizeof(size_t));
	out->n = 0;
	if (!out->ptr || !out->len)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (const char *p = s; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		out->ptr[out->n] = p;
		out->len[out->n++] = len;
		p += len + (nl ? 1 : 0);
	}
	return 0;
}

static int line_eq(const lines *a, size_t i, const lines *b, size_t j)
{
	return a->len[i] == b->len[j] && !memcmp(a->ptr[i], b->ptr[j], a->len[i]);
}

static int emit_hunks(plumb_buf *out, const lines *a, const lines *b, const char *ops, size_t nops)
{
	/* ops: ' ' same, '-' only in a, '+' only in b. */
	const size_t ctx = 3;
	size_t i = 0;
	int rc = 0;

	while (i < nops && !rc) {
		while (i < nops && ops[i] == ' ')
			i++;
		if (i >= nops)
			break;
		size_t start = i > ctx ? i - ctx : 0, end = i;
		/* extend while changes are within 2*ctx of each other */
		for (;;) {
			while (end < nops && ops[end] != ' ')
				end++;
			size_t k = end;
			while (k < nops && ops[k] == ' ' && k - end < 2 * ctx)
				k++;
			if (k < nops && ops[k] != ' ' && k - end <= 2 * ctx) {
				end = k;
				continue;
			}
			break;
		}
		size_t stop = end + ctx < nops ? end + ctx : nops;
		size_t ai = 0, bi = 0;
		for (size_t k = 0; k < start; k++) {
			if (ops[k] != '+')
				ai++;
			if (ops[k] != '-')
				bi++;
		}
		size_t acount = 0, bcount = 0;
		for (size_t k = start; k < stop; k++) {
			if (ops[k] != '+')
				acount++;
			if (ops[k] != '-')
				bcount++;
		}
		rc = plumb_buf_printf(out, "@@ -%zu,%zu +%zu,%zu @@\n", acount ? ai + 1 : ai, acount,
				bcount ? bi + 1 : bi, bcount);
		for (size_t k = start; k < stop && !rc; k++) {
			const char *text;
			size_t len;
			if (ops[k] == '+') {
				text = b->ptr[bi];
				len = b->len[bi++];
			} else {
				text = a->ptr[ai];
				len = a->len[ai++];
				if (ops[k] == ' ')
					bi++;
			}
			char c = ops[k];
			if (!(rc = plumb_buf_append(out, &c, 1)) && !(rc = plumb_buf_append(out, text, len)))
				rc = plumb_buf_puts(out, "\n");
		}
		i = stop;
	}
	return rc;
}

static int unified(plumb_buf *out, const char *atext, const char *btext)
{
	lines a = { 0 }, b = { 0 };
	unsigned *tab = NULL;
	char *ops = NULL;
	size_t nops = 0;
	int rc;

	if ((rc = split_lines(&a, atext)) || (rc = split_lines(&b, btext)))
		goto cleanup;
	if (!(ops = malloc(a.n + b.n + 1))) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	/* Trim the common prefix and suffix, LCS on the middle (or, when that
	 * is too big, replace the middle wholesale). */
	size_t pre = 0, suf = 0;
	while (pre < a.n && pre < b.n && line_eq(&a, pre, &b, pre))
		pre++;
	while (suf < a.n - pre && suf < b.n - pre && line_eq(&a, a.n - 1 - suf, &b, b.n - 1 - suf))
		suf++;
	size_t n = a.n - pre - suf, m = b.n - pre - suf;
	for (size_t k = 0; k < pre; k++)
		ops[nops++] = ' ';
	if ((n + 1) * (m + 1) <= DIFF_MAX_LCS_CELLS && n && m) {
		if (!(tab = calloc((n + 1) * (m + 1), sizeof(unsigned)))) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
#define T(i, j) tab[(i) * (m + 1) + (j)]
		for (size_t i = n; i-- > 0;)
			for (size_t j = m; j-- > 0;)
				T(i, j) = line_eq(&a, pre + i, &b, pre + j) ? T(i + 1, j + 1) + 1
					: (T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j) : T(i, j + 1));
		size_t i = 0, j = 0;
		while (i < n && j < m) {
			if (line_eq(&a, pre + i, &b, pre + j)) {
				ops[nops++] = ' ';
				i++, j++;
			} else if (T(i + 1, j) >= T(i, j + 1)) {
				ops[nops++] = '-';
				i++;
			} else {
				ops[nops++] = '+';
				j++;
			}
		}
#undef T
		for (; i < n; i++)
			ops[nops++] = '-';
		for (; j < m; j++)
			ops[nops++] = '+';
	} else {
		for (size_t k = 0; k < n; k++)
			ops[nops++] = '-';
		for (size_t k = 0; k < m; k++)
			ops[nops++] = '+';
	}
	for (size_t k = 0; k < suf; k++)
		ops[nops++] = ' ';
	if (nops > pre + suf || n || m) {
		if ((rc = plumb_buf_puts(out, "--- live\n+++ desired\n")))
			goto cleanup;
		rc = emit_hunks(out, &a, &b, ops, nops);
	}
cleanup:
	free(a.ptr);
	free(a.len);
	free(b.ptr);
	free(b.len);
	free(tab);
	free(ops);
	return rc;
}

int diff_render(char **out, const cJSON *desired, const cJSON *live, const cJSON *previous)
{
	plumb_buf a = PLUMB_BUF_INIT(DIFF_MAX_YAML), b = PLUMB_BUF_INIT(DIFF_MAX_YAML);
	plumb_buf d = PLUMB_BUF_INIT(DIFF_MAX_YAML);
	cJSON *proj = project(live, desired, previous, 0);
	int rc = 0;

	if (live && !proj) {
		rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
		goto cleanup;
	}
	if ((proj && (rc = diff_to_yaml(&a, proj))) || (rc = diff_to_yaml(&b, desired)))
		goto cleanup;
	if ((rc = unified(&d, a.ptr ? a.ptr : "", b.ptr ? b.ptr : "")))
		goto cleanup;
	if (!d.ptr && (rc = plumb_buf_puts(&d, "")))
		goto cleanup;
	*out = plumb_buf_detach(&d);
cleanup:
	cJSON_Delete(proj);
	plumb_buf_free(&a);
	plumb_buf_free(&b);
	plumb_buf_free(&d);
	return rc;
}
