/*
 * manifest_bench — benchmark for pkg/manifest and pkg/diff (bench/manifest).
 *
 *   manifest_bench gen FILE [N]   write N (default 10000) ConfigMaps of ~1 KiB
 *   manifest_bench run FILE [R]   best of R (default 5) runs of:
 *       convert+validate  manifest_parse + manifest_validate of FILE
 *       diff              diff_objects of every object against a live copy
 *                         (server fields, managedFields, status added)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "diff/diff.h"
#include "manifest/manifest.h"

static int gen(const char *path, int n)
{
	plumb_buf b = PLUMB_BUF_INIT(64u << 20);
	for (int i = 0; i < n; i++) {
		plumb_buf_printf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config-%05d\n"
				"  namespace: team-%d\n  labels:\n    app.kubernetes.io/name: app\n"
				"    app.kubernetes.io/part-of: bench\n  annotations:\n    example.com/owner: platform\ndata:\n",
				i, i % 10);
		for (int k = 0; k < 12; k++)
			plumb_buf_printf(&b, "  KEY_%02d: \"value-%d-%d-abcdefghijklmnopqrstuvwxyz\"\n", k, i, k);
		plumb_buf_printf(&b, "  enabled: \"true\"\n  replicas: \"3\"\n  config.yaml: |\n    server:\n"
				"      port: 8080\n      timeout: 30s\n    features: [a, b, c]\n");
	}
	int rc = plumb_file_write(path, b.ptr, b.len, 0644);
	fprintf(stderr, "wrote %d documents, %zu bytes (%.0f bytes each)\n", n, b.len, (double)b.len / n);
	plumb_buf_free(&b);
	return rc;
}

static cJSON *live_copy(const cJSON *d)
{
	cJSON *l = cJSON_Duplicate(d, 1);
	cJSON *meta = cJSON_GetObjectItem(l, "metadata");
	cJSON_AddStringToObject(meta, "uid", "0b1c2d3e-1111-2222-3333-444455556666");
	cJSON_AddStringToObject(meta, "resourceVersion", "123456");
	cJSON_AddStringToObject(meta, "creationTimestamp", "2026-11-26T11:00:00Z");
	cJSON *mf = cJSON_Parse("[{\"manager\":\"plumb\",\"operation\":\"Apply\",\"apiVersion\":\"v1\","
			"\"time\":\"2026-11-26T11:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:data\":{}}}]");
	cJSON_AddItemToObject(meta, "managedFields", mf);
	cJSON_AddStringToObject(cJSON_GetObjectItem(meta, "labels"), "added-by-other", "x");
	return l;
}

static int run(const char *path, int rounds)
{
	char *data = NULL;
	size_t len = 0;
	double best_conv = 1e9, best_diff = 1e9;
	size_t count = 0, ndiff = 0;

	if (plumb_file_read(&data, &len, path, MANIFEST_MAX_FILE)) {
		fprintf(stderr, "%s\n", plumb_error_last());
		return 1;
	}
	for (int r = 0; r < rounds; r++) {
		manifest_set set = { 0 };
		manifest_errors errs = { 0 };
		double t0 = plumb_time_mono();
		if (manifest_parse(&set, path, data, len, NULL, &errs) || manifest_validate(&set, &errs)) {
			fprintf(stderr, "unexpected errors: %s\n", errs.count ? errs.msgs[0] : plumb_error_last());
			return 1;
		}
		double t1 = plumb_time_mono();
		if (t1 - t0 < best_conv)
			best_conv = t1 - t0;
		count = set.count;

		cJSON **live = calloc(set.count, sizeof(*live));
		for (size_t i = 0; i < set.count; i++)
			live[i] = live_copy(set.items[i].obj);
		/* one object in ten drifted */
		for (size_t i = 0; i < set.count; i += 10)
			cJSON_ReplaceItemInObject(cJSON_GetObjectItem(live[i], "data"), "KEY_03", cJSON_CreateString("drift"));
		ndiff = 0;
		double t2 = plumb_time_mono();
		for (size_t i = 0; i < set.count; i++) {
			diff_result res = { 0 };
			diff_objects(&res, set.items[i].obj, live[i], set.items[i].obj);
			ndiff += res.count;
			diff_result_free(&res);
		}
		double t3 = plumb_time_mono();
		if (t3 - t2 < best_diff)
			best_diff = t3 - t2;
		for (size_t i = 0; i < set.count; i++)
			cJSON_Delete(live[i]);
		free(live);
		manifest_set_free(&set);
		manifest_errors_free(&errs);
	}
	printf("input: %zu bytes, %zu objects\n", len, count);
	printf("convert+validate: %.1f ms (best of %d), %.0f MB/s\n", best_conv * 1e3, rounds, len / best_conv / 1e6);
	printf("diff vs live:     %.1f ms (best of %d), %zu differing paths\n", best_diff * 1e3, rounds, ndiff);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "gen"))
		return gen(argv[2], argc > 3 ? atoi(argv[3]) : 10000) ? 1 : 0;
	if (argc >= 3 && !strcmp(argv[1], "run"))
		return run(argv[2], argc > 3 ? atoi(argv[3]) : 5);
	fprintf(stderr, "usage: manifest_bench gen FILE [N] | run FILE [ROUNDS]\n");
	return 2;
}
