/* libFuzzer target: kubeconfig parsing from bytes (a Secret's value), under
 * the lockdown a tenant's kubeconfig gets, under a loosened policy (an exec
 * plugin allowed by name, insecure and proxies allowed), and trusted. The
 * first input byte picks the policy. Under the lockdown a load that
 * succeeds must never have kept a file path, an exec plugin, http:// or
 * insecure-skip-tls-verify: that would be a hole, so it aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kube/kube_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const plugins[] = { "sh", "true", NULL };
	static const kube_config_policy lockdown = { 0 };
	static const kube_config_policy loose = { .allow_insecure = 1, .allow_proxy = 1, .exec_plugins = plugins };
	static const kube_config_policy trusted = { .trusted = 1 };
	const kube_config_policy *pol;
	kube_config *cfg = NULL;
	if (size < 1 || size > 256 * 1024)
		return 0;
	pol = data[0] % 3 == 0 ? &lockdown : data[0] % 3 == 1 ? &loose : &trusted;
	data++, size--;
	if (kube_config_load_memory(&cfg, (const char *)data, size, NULL, "fuzz", pol) == 0) {
		kube_config_namespace(cfg);
		kube_config_server(cfg);
		if (pol == &lockdown && (cfg->token_file || cfg->exec_command || cfg->insecure || cfg->proxy_url ||
				strncmp(cfg->server, "https://", 8)))
			abort();
		if (pol == &loose && cfg->exec_command && (!cfg->exec_path || strchr(cfg->exec_command, '/')))
			abort();
	}
	kube_config_free(cfg);
	return 0;
}
