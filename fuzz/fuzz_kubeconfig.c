/* libFuzzer target: kubeconfig parsing from bytes (a Secret's value). */
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "kube/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kube_config *cfg = NULL;
	if (size > 256 * 1024)
		return 0;
	if (kube_config_load_memory(&cfg, (const char *)data, size, NULL, "fuzz") == 0) {
		kube_config_namespace(cfg);
		kube_config_server(cfg);
	}
	kube_config_free(cfg);
	return 0;
}
