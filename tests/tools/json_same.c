/*
 * json_same A B — exit 0 when the JSON files A and B hold the same value
 * (numbers by value, integers beyond 2^53 exactly, key order ignored), 1
 * when not (both printed as YAML), 2 on a read or parse error.
 *
 * For the kubectl differential test: `kubectl annotate --local` adds an empty
 * metadata.annotations map, so empty annotation maps are dropped on both
 * sides. Each file may hold several JSON objects one after the other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "diff/diff.h"
#include "manifest/manifest.h"

static void drop_empty_annotations(cJSON *obj)
{
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
	if (cJSON_IsObject(ann) && !ann->child)
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "annotations");
}

/* A file of concatenated JSON values (what kubectl -o json prints for
 * several objects) → an array of them, empty annotation maps dropped. */
static cJSON *load(const char *path)
{
	char *data = NULL;
	size_t len = 0, start = 0;
	int depth = 0, in_str = 0;
	cJSON *all = cJSON_CreateArray();

	if (plumb_file_read(&data, &len, path, MANIFEST_MAX_FILE)) {
		fprintf(stderr, "%s: %s\n", path, plumb_error_last());
		goto fail;
	}
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		if (ch == '"')
			in_str = 1;
		else if (ch == '{' || ch == '[')
			depth++;
		else if ((ch == '}' || ch == ']') && --depth == 0) {
			cJSON *v = NULL;
			if (manifest_yaml_to_json(&v, data + start, i + 1 - start)) {
				fprintf(stderr, "%s: %s\n", path, plumb_error_last());
				goto fail;
			}
			drop_empty_annotations(v);
			cJSON_AddItemToArray(all, v);
			start = i + 1;
		}
	}
	free(data);
	return all;
fail:
	free(data);
	cJSON_Delete(all);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: json_same A B\n");
		return 2;
	}
	cJSON *a = load(argv[1]), *b = load(argv[2]);
	int rc = 2;
	if (a && b) {
		rc = diff_json_equal(a, b) ? 0 : 1;
		if (rc) {
			plumb_buf ya = PLUMB_BUF_INIT(64u << 20), yb = PLUMB_BUF_INIT(64u << 20);
			diff_to_yaml(&ya, a);
			diff_to_yaml(&yb, b);
			printf("--- %s\n%s--- %s\n%s", argv[1], ya.ptr ? ya.ptr : "", argv[2], yb.ptr ? yb.ptr : "");
			plumb_buf_free(&ya);
			plumb_buf_free(&yb);
		}
	}
	cJSON_Delete(a);
	cJSON_Delete(b);
	return rc;
}
