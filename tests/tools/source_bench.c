/*
 * source_bench URL CACHE_DIR REF PATH — times pkg/source on one repository:
 * the first fetch into an empty cache, a fetch with nothing new, and reading
 * every manifest under PATH at the branch REF (median of 5). Prints one line:
 *   first_fetch=S noop_fetch=S noop_objects=N read=S files=N bytes=N
 * Used by bench/source/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "source/source.h"

int main(int argc, char **argv)
{
	source_cache *cache = NULL;
	source_fetch_stats first, noop;
	source_commit head;
	source_files *files = NULL;
	source_limits lim = { 0, (size_t)1 << 30, 100000 };
	double t0, t_first, t_noop, t_read;

	if (argc != 5) {
		fprintf(stderr, "usage: source_bench URL CACHE_DIR BRANCH PATH\n");
		return 2;
	}
	if (source_cache_new(&cache, argv[2]) < 0)
		goto fail;
	t0 = plumb_time_mono();
	if (source_fetch(&first, cache, argv[1], NULL, 600) < 0)
		goto fail;
	t_first = plumb_time_mono() - t0;
	t0 = plumb_time_mono();
	if (source_fetch(&noop, cache, argv[1], NULL, 600) < 0)
		goto fail;
	t_noop = plumb_time_mono() - t0;
	if (source_resolve(&head, cache, argv[1], NULL, SOURCE_REF_BRANCH, argv[3]) < 0)
		goto fail;
	/* the read is short and the machine shared: median of 5 */
	double reads[5];
	for (int i = 0; i < 5; i++) {
		if (files)
			source_files_free(files);
		files = NULL;
		t0 = plumb_time_mono();
		if (source_read(&files, cache, argv[1], NULL, head.id, argv[4], &lim) < 0)
			goto fail;
		reads[i] = plumb_time_mono() - t0;
	}
	for (int i = 1; i < 5; i++)
		for (int j = i; j > 0 && reads[j - 1] > reads[j]; j--) {
			double t = reads[j];
			reads[j] = reads[j - 1];
			reads[j - 1] = t;
		}
	t_read = reads[2];
	printf("first_fetch=%.4f noop_fetch=%.4f noop_objects=%u read=%.4f files=%zu bytes=%zu\n",
		t_first, t_noop, noop.received_objects, t_read, files->count, files->total_size);
	source_files_free(files);
	source_commit_clear(&head);
	source_cache_free(cache);
	return 0;
fail:
	fprintf(stderr, "source_bench: %s\n", plumb_error_last());
	source_cache_free(cache);
	return 1;
}
