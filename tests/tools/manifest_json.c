/*
 * manifest_json FILE — prints the objects plumb reads from FILE as one JSON
 * value, shaped like `kubectl … -o json` output: the object itself when the
 * file holds one, else {"apiVersion":"v1","kind":"List","items":[…]}.
 * Used by tests/integration/test_kubectl_yaml.sh. Errors go to stderr as
 * file:line:col: message, exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "manifest/manifest.h"

int main(int argc, char **argv)
{
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };
	char *data = NULL, *text = NULL;
	size_t len = 0;
	cJSON *out = NULL;
	int rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: manifest_json FILE\n");
		return 2;
	}
	if (plumb_file_read(&data, &len, argv[1], MANIFEST_MAX_FILE)) {
		fprintf(stderr, "%s: %s\n", argv[1], plumb_error_last());
		return 1;
	}
	if (manifest_parse(&set, argv[1], data, len, NULL, &errs)) {
		for (size_t i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		goto cleanup;
	}
	if (set.count == 1) {
		out = set.items[0].obj;
		set.items[0].obj = NULL;
	} else {
		cJSON *items = cJSON_CreateArray();
		out = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "apiVersion", "v1");
		cJSON_AddStringToObject(out, "kind", "List");
		for (size_t i = 0; i < set.count; i++) {
			cJSON_AddItemToArray(items, set.items[i].obj);
			set.items[i].obj = NULL;
		}
		cJSON_AddItemToObject(out, "items", items);
	}
	text = cJSON_PrintUnformatted(out);
	if (!text)
		goto cleanup;
	printf("%s\n", text);
	rc = 0;
cleanup:
	free(text);
	cJSON_Delete(out);
	free(data);
	manifest_set_free(&set);
	manifest_errors_free(&errs);
	return rc;
}
