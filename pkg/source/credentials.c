/*
 * pkg/source: credentials — filled from a Secret's data, wiped when freed —
 * and their digest, the credential id a mirror's name is keyed by (cache.c
 * applies it under the cache's salt). No shared state: any thread.
 */
#include "source/internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/base.h"

#define SOURCE_CRED_MAX (1024 * 1024)

static int has_ctl(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

int source_credentials_set(source_credentials *creds, const char *key,
	const char *value, size_t len)
{
	char **field = NULL;
	int oneline = 0;
	char *copy;

	if (!creds || !key || (!value && len))
		return plumb_error_set(PLUMB_EINVALID, "source: credentials: bad arguments");
	if (!strcmp(key, "username")) {
		field = &creds->username;
		oneline = 1;
	} else if (!strcmp(key, "password")) {
		field = &creds->password;
	} else if (!strcmp(key, "bearerToken")) {
		field = &creds->bearer_token;
		oneline = 1;
	} else if (!strcmp(key, "identity")) {
		field = &creds->identity;
	} else if (!strcmp(key, "known_hosts")) {
		field = &creds->known_hosts;
	} else if (!strcmp(key, "caFile")) {
		field = &creds->ca_file;
	} else {
		return 0;
	}
	if (len > SOURCE_CRED_MAX)
		return plumb_error_set(PLUMB_ETOOBIG, "source: credentials: %s is over %d bytes",
			key, SOURCE_CRED_MAX);
	if (len && memchr(value, '\0', len))
		return plumb_error_set(PLUMB_EINVALID, "source: credentials: %s contains a NUL byte", key);
	if (oneline) {
		/* `echo token | kubectl create secret` leaves a newline: forgive it */
		while (len && (value[len - 1] == '\n' || value[len - 1] == '\r'))
			len--;
		if (has_ctl(value, len))
			return plumb_error_set(PLUMB_EINVALID,
				"source: credentials: %s contains control characters", key);
	}
	copy = plumb_strndup(value ? value : "", len);
	if (!copy)
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	source_wipe_free(*field);
	*field = copy;
	return 0;
}

int source_credentials_from_secret_data(source_credentials **out, const cJSON *data)
{
	source_credentials *creds = NULL;
	const cJSON *item;
	char *raw = NULL;
	size_t rawlen = 0;
	int error = 0;

	if (!out)
		return plumb_error_set(PLUMB_EINVALID, "source: credentials: bad arguments");
	creds = calloc(1, sizeof(*creds));
	if (!creds)
		return plumb_error_set(PLUMB_ENOMEM, "source: out of memory");
	if (data && !cJSON_IsObject(data)) {
		error = plumb_error_set(PLUMB_EINVALID, "source: credentials: secret data is not an object");
		goto cleanup;
	}
	cJSON_ArrayForEach(item, data) {
		if (!item->string)
			continue;
		if (!cJSON_IsString(item) || !item->valuestring) {
			error = plumb_error_set(PLUMB_EINVALID,
				"source: credentials: secret data key %.64s is not a string", item->string);
			goto cleanup;
		}
		if (strlen(item->valuestring) > (size_t)SOURCE_CRED_MAX * 2) {
			error = plumb_error_set(PLUMB_ETOOBIG, "source: credentials: %.64s is over %d bytes",
				item->string, SOURCE_CRED_MAX);
			goto cleanup;
		}
		if (plumb_base64_decode(&raw, &rawlen, item->valuestring, strlen(item->valuestring)) < 0) {
			error = plumb_error_set(PLUMB_EINVALID,
				"source: credentials: secret data key %.64s is not base64", item->string);
			goto cleanup;
		}
		error = source_credentials_set(creds, item->string, raw, rawlen);
		explicit_bzero(raw, rawlen);
		free(raw);
		raw = NULL;
		if (error < 0)
			goto cleanup;
	}
	*out = creds;
	creds = NULL;
cleanup:
	source_credentials_free(creds);
	return error;
}

void source_credentials_free(source_credentials *creds)
{
	if (!creds)
		return;
	source_wipe_free(creds->username);
	source_wipe_free(creds->password);
	source_wipe_free(creds->bearer_token);
	source_wipe_free(creds->identity);
	source_wipe_free(creds->known_hosts);
	source_wipe_free(creds->ca_file);
	free(creds);
}
void source_credentials_digest(char out[65], const unsigned char *salt, size_t saltlen,
	const source_credentials *creds)
{
	/* every field, each with its name and length, so no two different sets
	 * of values hash alike; the CA bundle and known_hosts too: they decide
	 * whose content a fetch accepts as much as the secrets do */
	const char *names[] = { "username", "password", "bearerToken", "identity", "known_hosts", "caFile" };
	const char *vals[6] = { 0 };
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int any = 0;
	if (creds) {
		vals[0] = creds->username, vals[1] = creds->password, vals[2] = creds->bearer_token;
		vals[3] = creds->identity, vals[4] = creds->known_hosts, vals[5] = creds->ca_file;
	}
	for (size_t i = 0; i < 6; i++)
		any |= vals[i] != NULL;
	out[0] = '\0';
	if (!any)
		return;
	/* HMAC(salt, sha256(fields)): the fields are streamed, not copied */
	unsigned char inner[32];
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL))
		goto fail;
	EVP_DigestUpdate(h, "plumb-git-credentials-v1", 25);
	for (size_t i = 0; i < 6; i++) {
		unsigned char len[9];
		uint64_t n = vals[i] ? strlen(vals[i]) : 0;
		len[0] = vals[i] ? 1 : 0;
		for (int b = 0; b < 8; b++)
			len[1 + b] = (unsigned char)(n >> (8 * b));
		EVP_DigestUpdate(h, names[i], strlen(names[i]) + 1);
		EVP_DigestUpdate(h, len, sizeof(len));
		if (vals[i])
			EVP_DigestUpdate(h, vals[i], n);
	}
	if (!EVP_DigestFinal_ex(h, inner, &mdlen) || mdlen != 32 ||
	    !HMAC(EVP_sha256(), salt, (int)saltlen, inner, sizeof(inner), md, &mdlen) || mdlen != 32)
		goto fail;
	EVP_MD_CTX_free(h);
	plumb_hex_encode(out, md, 32);
	OPENSSL_cleanse(md, sizeof(md));
	OPENSSL_cleanse(inner, sizeof(inner));
	return;
fail:
	EVP_MD_CTX_free(h);
	/* never the anonymous mirror: a mirror nobody else can name */
	snprintf(out, 65, "%s", "unusable");
}
