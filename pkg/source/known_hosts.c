/*
 * pkg/source: OpenSSH known_hosts matching (plain, patterned and hashed host
 * fields, @revoked). Pure: no state, any thread.
 */
#include "source/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/base.h"

static int hashed_host_matches(const char *field, const char *name)
{
	/* |1|base64(salt)|base64(HMAC-SHA1(salt, name)) */
	const char *salt64 = field + 3, *bar = strchr(salt64, '|');
	char *salt = NULL, *hash = NULL;
	size_t saltlen = 0, hashlen = 0;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int match = 0;

	if (!bar)
		return 0;
	if (plumb_base64_decode(&salt, &saltlen, salt64, (size_t)(bar - salt64)) < 0)
		goto cleanup;
	if (plumb_base64_decode(&hash, &hashlen, bar + 1, strlen(bar + 1)) < 0)
		goto cleanup;
	if (!HMAC(EVP_sha1(), salt, (int)saltlen, (const unsigned char *)name, strlen(name), mac, &maclen))
		goto cleanup;
	match = plumb_ct_equal(mac, maclen, hash, hashlen);
cleanup:
	free(salt);
	free(hash);
	return match;
}

/* OpenSSH host patterns: '*' and '?' only, case-insensitive ('[' is literal,
 * as in "[host]:port"). */
static int glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL;

	while (*s) {
		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat && (*pat == '?' || tolower((unsigned char)*pat) == tolower((unsigned char)*s))) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

static int host_field_matches(const char *field, const char *name)
{
	char pat[1024];
	const char *p = field;
	int positive = 0;

	if (!strncmp(field, "|1|", 3))
		return hashed_host_matches(field, name);
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		int neg = 0;
		if (n && n < sizeof(pat)) {
			memcpy(pat, p, n);
			pat[n] = '\0';
			if (pat[0] == '!')
				neg = 1;
			if (glob_match(pat + neg, name)) {
				if (neg)
					return 0;
				positive = 1;
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return positive;
}

/* Splits the next whitespace-separated token off *s; NULL at end of line. */
static char *next_token(char **s)
{
	char *p = *s, *start;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	start = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return start;
}

source_hostkey_result source_known_hosts_check(const char *known_hosts,
	const char *host, int port, const char *keytype,
	const unsigned char *key, size_t keylen)
{
	char name[300];
	const char *line, *end;
	int ok = 0, changed = 0, revoked = 0;

	if (!known_hosts || !host || !keytype || !key)
		return SOURCE_HOSTKEY_UNKNOWN;
	if (port <= 0 || port == 22)
		snprintf(name, sizeof(name), "%s", host);
	else
		snprintf(name, sizeof(name), "[%s]:%d", host, port);

	for (line = known_hosts; *line; line = *end ? end + 1 : end) {
		char buf[16384], *s = buf, *tok, *hosts, *type, *b64;
		char *blob = NULL;
		size_t n, bloblen = 0;
		int is_revoked = 0, equal;

		end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		n = (size_t)(end - line);
		if (n >= sizeof(buf))
			continue; /* no real key line is this long */
		memcpy(buf, line, n);
		buf[n] = '\0';
		if (n && buf[n - 1] == '\r')
			buf[n - 1] = '\0';
		tok = next_token(&s);
		if (!tok || tok[0] == '#')
			continue;
		if (tok[0] == '@') {
			if (strcmp(tok, "@revoked"))
				continue; /* @cert-authority: host certificates are not supported */
			is_revoked = 1;
			tok = next_token(&s);
			if (!tok)
				continue;
		}
		hosts = tok;
		type = next_token(&s);
		b64 = next_token(&s);
		if (!type || !b64)
			continue;
		if (!is_revoked && !host_field_matches(hosts, name))
			continue;
		if (strcmp(type, keytype))
			continue;
		if (plumb_base64_decode(&blob, &bloblen, b64, strlen(b64)) < 0)
			continue;
		equal = bloblen == keylen && memcmp(blob, key, keylen) == 0;
		free(blob);
		if (is_revoked) {
			if (equal)
				revoked = 1;
		} else if (equal) {
			ok = 1;
		} else {
			changed = 1;
		}
	}
	if (revoked)
		return SOURCE_HOSTKEY_REVOKED;
	if (ok)
		return SOURCE_HOSTKEY_OK;
	if (changed)
		return SOURCE_HOSTKEY_CHANGED;
	return SOURCE_HOSTKEY_UNKNOWN;
}
