/*
 * Kubernetes label selectors (k8s.io/apimachinery/pkg/labels syntax):
 *   env=prod, tier==web, zone!=eu-1, region in (eu, us), track notin (canary),
 *   gpu, !spot
 * Requirements are ANDed. Keys and values are checked the way Kubernetes
 * checks label keys and values.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "manifest/manifest.h"

enum { OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_EXISTS, OP_NOTEXISTS };

typedef struct {
	char *key;
	int op;
	char **values;
	size_t nvalues;
} requirement;

struct manifest_selector {
	requirement *reqs;
	size_t nreqs;
};

void manifest_selector_free(manifest_selector *sel)
{
	if (!sel)
		return;
	for (size_t i = 0; i < sel->nreqs; i++) {
		free(sel->reqs[i].key);
		for (size_t j = 0; j < sel->reqs[i].nvalues; j++)
			free(sel->reqs[i].values[j]);
		free(sel->reqs[i].values);
	}
	free(sel->reqs);
	free(sel);
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A qualified name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, <= 63. */
static int valid_name_part(const char *s, size_t n, int allow_empty)
{
	if (n == 0)
		return allow_empty;
	if (n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return 0;
	return 1;
}

/* A DNS-1123 subdomain used as a key prefix. */
static int valid_prefix(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return is_alnum(s[0]) && is_alnum(s[n - 1]);
}

static int valid_key(const char *s)
{
	const char *slash = strchr(s, '/');
	if (!slash)
		return valid_name_part(s, strlen(s), 0);
	if (strchr(slash + 1, '/'))
		return 0;
	return valid_prefix(s, (size_t)(slash - s)) && valid_name_part(slash + 1, strlen(slash + 1), 0);
}

/* ---- lexer --------------------------------------------------------------- */

enum { T_END, T_IDENT, T_COMMA, T_EQ, T_DEQ, T_NE, T_NOT, T_OPEN, T_CLOSE, T_IN, T_NOTIN, T_BAD };

typedef struct {
	const char *s;
	size_t pos;
	int tok;
	size_t tpos;
	char *text;
} lexer;

static int is_special(char c)
{
	return c == ',' || c == '=' || c == '!' || c == '(' || c == ')' || c == ' ' || c == '\t'
		|| c == '\n' || c == '\r' || c == '<' || c == '>';
}

static int lex(lexer *l)
{
	const char *s = l->s;
	free(l->text);
	l->text = NULL;
	while (s[l->pos] == ' ' || s[l->pos] == '\t' || s[l->pos] == '\n' || s[l->pos] == '\r')
		l->pos++;
	l->tpos = l->pos;
	char c = s[l->pos];
	switch (c) {
	case '\0': return l->tok = T_END;
	case ',': l->pos++; return l->tok = T_COMMA;
	case '(': l->pos++; return l->tok = T_OPEN;
	case ')': l->pos++; return l->tok = T_CLOSE;
	case '=':
		l->pos++;
		if (s[l->pos] == '=') {
			l->pos++;
			return l->tok = T_DEQ;
		}
		return l->tok = T_EQ;
	case '!':
		l->pos++;
		if (s[l->pos] == '=') {
			l->pos++;
			return l->tok = T_NE;
		}
		return l->tok = T_NOT;
	case '<': case '>':
		l->pos++;
		return l->tok = T_BAD;
	default:
		break;
	}
	size_t start = l->pos;
	while (s[l->pos] && !is_special(s[l->pos]))
		l->pos++;
	if (!(l->text = plumb_strndup(s + start, l->pos - start)))
		return l->tok = T_BAD;
	if (!strcmp(l->text, "in"))
		return l->tok = T_IN;
	if (!strcmp(l->text, "notin"))
		return l->tok = T_NOTIN;
	return l->tok = T_IDENT;
}

static int sel_error(lexer *l, const char *what)
{
	return plumb_error_set(PLUMB_EINVALID, "label selector \"%s\": column %zu: %s",
			l->s, l->tpos + 1, what);
}

static int add_value(requirement *r, char *v)
{
	char **p = realloc(r->values, (r->nvalues + 1) * sizeof(*p));
	if (!p) {
		free(v);
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	r->values = p;
	r->values[r->nvalues++] = v;
	return 0;
}

static int parse_requirement(lexer *l, requirement *r)
{
	int rc;

	if (l->tok == T_NOT) {
		lex(l);
		if (l->tok != T_IDENT)
			return sel_error(l, "expected a label key after '!'");
		if (!valid_key(l->text))
			return sel_error(l, "invalid label key");
		r->key = l->text;
		l->text = NULL;
		r->op = OP_NOTEXISTS;
		lex(l);
		return 0;
	}
	if (l->tok != T_IDENT)
		return sel_error(l, "expected a label key");
	if (!valid_key(l->text))
		return sel_error(l, "invalid label key");
	r->key = l->text;
	l->text = NULL;
	lex(l);
	switch (l->tok) {
	case T_END: case T_COMMA:
		r->op = OP_EXISTS;
		return 0;
	case T_EQ: case T_DEQ: case T_NE:
		r->op = l->tok == T_NE ? OP_NE : OP_EQ;
		lex(l);
		if (l->tok == T_END || l->tok == T_COMMA) /* key= matches an empty value */
			return add_value(r, plumb_strdup(""));
		if (l->tok != T_IDENT && l->tok != T_IN && l->tok != T_NOTIN)
			return sel_error(l, "expected a label value");
		if (!valid_name_part(l->text, strlen(l->text), 1))
			return sel_error(l, "invalid label value");
		rc = add_value(r, l->text);
		l->text = NULL;
		lex(l);
		return rc;
	case T_IN: case T_NOTIN:
		r->op = l->tok == T_IN ? OP_IN : OP_NOTIN;
		lex(l);
		if (l->tok != T_OPEN)
			return sel_error(l, "expected '('");
		lex(l);
		if (l->tok == T_CLOSE)
			return sel_error(l, "the set of values for in/notin cannot be empty");
		for (;;) {
			if (l->tok == T_IDENT || l->tok == T_IN || l->tok == T_NOTIN) {
				if (!valid_name_part(l->text, strlen(l->text), 1))
					return sel_error(l, "invalid label value");
				if ((rc = add_value(r, l->text)))
					return rc;
				l->text = NULL;
				lex(l);
			} else if (l->tok == T_COMMA || l->tok == T_CLOSE) {
				/* an empty value between commas, as in "(a,,b)" */
				if ((rc = add_value(r, plumb_strdup(""))))
					return rc;
			} else {
				return sel_error(l, "expected a value or ')'");
			}
			if (l->tok == T_CLOSE)
				break;
			if (l->tok != T_COMMA)
				return sel_error(l, "expected ',' or ')'");
			lex(l);
		}
		lex(l);
		return 0;
	default:
		return sel_error(l, "expected one of =, ==, !=, in, notin, ',' or the end");
	}
}

int manifest_selector_parse(manifest_selector **out, const char *text)
{
	manifest_selector *sel = calloc(1, sizeof(*sel));
	lexer l = { text, 0, 0, 0, NULL };
	int rc = 0;

	if (!sel)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	if (strlen(text) > 4096) {
		rc = plumb_error_set(PLUMB_ETOOBIG, "label selector longer than 4096 bytes");
		goto cleanup;
	}
	lex(&l);
	if (l.tok == T_END)
		goto done;
	for (;;) {
		requirement *p = realloc(sel->reqs, (sel->nreqs + 1) * sizeof(*p));
		if (!p) {
			rc = plumb_error_set(PLUMB_ENOMEM, "out of memory");
			goto cleanup;
		}
		sel->reqs = p;
		memset(&sel->reqs[sel->nreqs], 0, sizeof(requirement));
		sel->nreqs++;
		if ((rc = parse_requirement(&l, &sel->reqs[sel->nreqs - 1])))
			goto cleanup;
		if (l.tok == T_END)
			break;
		if (l.tok != T_COMMA) {
			rc = sel_error(&l, "expected ','");
			goto cleanup;
		}
		lex(&l);
	}
done:
	*out = sel;
	sel = NULL;
cleanup:
	free(l.text);
	manifest_selector_free(sel);
	return rc;
}

static const char *label_get(const manifest_var *labels, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(labels[i].name, key))
			return labels[i].value;
	return NULL;
}

int manifest_selector_matches(const manifest_selector *sel, const manifest_var *labels, size_t nlabels)
{
	for (size_t i = 0; i < sel->nreqs; i++) {
		const requirement *r = &sel->reqs[i];
		const char *v = label_get(labels, nlabels, r->key);
		int in = 0;
		if (v)
			for (size_t j = 0; j < r->nvalues; j++)
				if (!strcmp(r->values[j], v))
					in = 1;
		switch (r->op) {
		case OP_EQ: case OP_IN:
			if (!in)
				return 0;
			break;
		case OP_NE: case OP_NOTIN:
			if (in)
				return 0;
			break;
		case OP_EXISTS:
			if (!v)
				return 0;
			break;
		case OP_NOTEXISTS:
			if (v)
				return 0;
			break;
		}
	}
	return 1;
}

int manifest_selector_new(manifest_selector **out)
{
	if (!(*out = calloc(1, sizeof(**out))))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	return 0;
}

int manifest_selector_add(manifest_selector *sel, const char *key, manifest_selector_op op,
		const char *const *values, size_t nvalues)
{
	static const int ops[] = { OP_IN, OP_NOTIN, OP_EXISTS, OP_NOTEXISTS };
	requirement *p = realloc(sel->reqs, (sel->nreqs + 1) * sizeof(*p));
	int rc = 0;
	if (!p)
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	sel->reqs = p;
	requirement *r = memset(&sel->reqs[sel->nreqs++], 0, sizeof(*r));
	r->op = ops[op];
	if (!(r->key = plumb_strdup(key)))
		return plumb_error_set(PLUMB_ENOMEM, "out of memory");
	for (size_t i = 0; i < nvalues && !rc; i++) {
		char *v = plumb_strdup(values[i]);
		rc = v ? add_value(r, v) : plumb_error_set(PLUMB_ENOMEM, "out of memory");
	}
	return rc;
}
