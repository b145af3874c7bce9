/*
 * libFuzzer target: YAML → JSON (manifest_parse with substitution on) and
 * back through the YAML emitter. Any crash, leak or sanitizer report is a
 * bug; so is emitter output that does not read back as the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "diff/diff.h"
#include "manifest/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const manifest_var vars[] = { { "A", "1" }, { "B", "x: y" } };
	static const manifest_var labels[] = { { "env", "prod" } };
	manifest_vars mv = { 1, vars, 2, "c1", labels, 1 };
	manifest_set set = { 0 };
	manifest_errors errs = { 0 };

	if (size > 64 * 1024)
		return 0;
	manifest_parse(&set, "fuzz.yaml", (const char *)data, size, (size & 1) ? &mv : NULL, &errs);
	for (size_t i = 0; i < set.count; i++) {
		plumb_buf b = PLUMB_BUF_INIT(16u << 20);
		cJSON *back = NULL;
		if (diff_to_yaml(&b, set.items[i].obj) == 0 && b.ptr) {
			if (manifest_yaml_to_json(&back, b.ptr, b.len) != 0 || !diff_json_equal(set.items[i].obj, back))
				abort();
		}
		cJSON_Delete(back);
		plumb_buf_free(&b);
	}
	manifest_set_free(&set);
	manifest_errors_free(&errs);
	return 0;
}
