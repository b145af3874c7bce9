/* libFuzzer target: the watch-stream decoder and discovery documents, the
 * parsers fed by an API server's answers. */
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "kube/kube_internal.h"

static int count(kube_watch_event type, cJSON *obj, void *data)
{
	(void)type, (void)obj;
	(*(int *)data)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kube_watch_decoder d;
	int n = 0;
	kube_watch_decoder_init(&d, 64 * 1024);
	/* Fed in two pieces, as a chunked stream would arrive. */
	size_t half = size / 2;
	if (kube_watch_decoder_feed(&d, (const char *)data, half, count, &n) == 0 &&
	    kube_watch_decoder_feed(&d, (const char *)data + half, size - half, count, &n) == 0)
		kube_watch_decoder_finish(&d);
	kube_watch_decoder_free(&d);

	kube_resource_set set = { 0 };
	kube_discovery_parse_aggregated(&set, (const char *)data, size);
	kube_discovery_parse_resource_list(&set, (const char *)data, size);
	kube_resource_set_free(&set);
	return 0;
}
