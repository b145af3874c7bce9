/* libFuzzer target: the label-selector parser and matcher. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "manifest/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const manifest_var labels[] = { { "env", "prod" }, { "region", "eu" }, { "a.b/c", "" } };
	manifest_selector *sel = NULL;
	char *text;

	if (size > 8192 || !(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (manifest_selector_parse(&sel, text) == 0) {
		manifest_selector_matches(sel, labels, 3);
		manifest_selector_matches(sel, NULL, 0);
	}
	manifest_selector_free(sel);
	free(text);
	return 0;
}
