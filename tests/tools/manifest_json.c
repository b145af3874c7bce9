/*
 * manifest_json FILE — prints the objects plumb reads from FILE, one JSON
 * object a line, in file order (as `kubectl … -o json` prints one object
 * after the other).
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
	for (size_t i = 0; i < set.count; i++) {
		text = cJSON_PrintUnformatted(set.items[i].obj);
		if (!text)
			goto cleanup;
		printf("%s\n", text);
		free(text);
		text = NULL;
	}
	rc = 0;
cleanup:
	free(text);
	cJSON_Delete(out);
	free(data);
	manifest_set_free(&set);
	manifest_errors_free(&errs);
	return rc;
}
