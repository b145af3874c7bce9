/* libFuzzer target: what pkg/render reads from a repository before any tool
 * runs. The input is a kustomization (in overlays/x of a small repository
 * with a base) for render_kustomize_check(), and a `helm template` stream for
 * render_helm_filter_hooks(). A check that passes must never have let a
 * resources/bases/components entry through that is remote, absolute or
 * climbs out of the repository: that would be a hole, so it aborts. The
 * filter may only drop bytes, never add them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/base.h"
#include "manifest/manifest.h"
#include "render/render.h"

static void add(source_files *fs, source_file *items, const char *path, const char *data, size_t len)
{
	items[fs->count].path = (char *)path;
	items[fs->count].data = (char *)data;
	items[fs->count].len = len;
	fs->count++;
}

/* 1 when entry, resolved from overlays/x, would leave the repository. */
static int climbs_out(const char *e)
{
	int depth = 2; /* overlays/x */
	const char *p = e;
	while (*p) {
		const char *s = strchr(p, '/');
		size_t n = s ? (size_t)(s - p) : strlen(p);
		if (n == 2 && !strncmp(p, "..", 2)) {
			if (--depth < 0)
				return 1;
		} else if (n && !(n == 1 && *p == '.')) {
			depth++;
		}
		if (!s)
			break;
		p = s + 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	source_file items[4];
	source_files fs = { .items = items };
	char *text;
	if (size > 256 * 1024)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	add(&fs, items, "base/kustomization.yaml", "resources: [cm.yaml]\n", 21);
	add(&fs, items, "base/cm.yaml", "kind: ConfigMap\n", 16);
	add(&fs, items, "overlays/x/kustomization.yaml", text, size);
	if (render_kustomize_check(&fs, "overlays/x") == 0) {
		cJSON *doc = NULL;
		if (manifest_yaml_to_json(&doc, text, size) == 0 && cJSON_IsObject(doc)) {
			static const char *fields[] = { "resources", "bases", "components" };
			for (int f = 0; f < 3; f++) {
				const cJSON *e;
				cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, fields[f])) {
					if (!cJSON_IsString(e) || strchr(e->valuestring, '\n'))
						continue;
					if (render_kustomize_entry_is_remote(e->valuestring) || e->valuestring[0] == '/' ||
					    climbs_out(e->valuestring))
						abort();
				}
			}
		}
		cJSON_Delete(doc);
	}
	char *out = NULL;
	size_t outlen = 0;
	if (render_helm_filter_hooks(&out, &outlen, text, size) == 0 && outlen > size)
		abort();
	free(out);
	free(text);
	plumb_error_clear();
	return 0;
}
