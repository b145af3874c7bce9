/*
 * pkg/base: dot-path lookups in cJSON objects (plumb_json_get/str).
 */
#include "base/base.h"

#include <string.h>

#include <cjson/cJSON.h>

const cJSON *plumb_json_get(const cJSON *obj, const char *path)
{
	const char *p = path;
	while (obj && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		const cJSON *c = cJSON_IsObject(obj) ? obj->child : NULL;
		while (c && !(c->string && strncmp(c->string, p, n) == 0 && c->string[n] == '\0'))
			c = c->next;
		obj = c;
		p = dot ? dot + 1 : p + n;
	}
	return obj;
}

const char *plumb_json_str(const cJSON *obj, const char *path)
{
	const cJSON *v = plumb_json_get(obj, path);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}
