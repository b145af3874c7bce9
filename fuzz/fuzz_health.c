/* libFuzzer target: health of an object from a tenant's cluster. Any JSON
 * object must get an answer without a crash, and its projection to the
 * fields health reads must have exactly the same health. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "health/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	health_result r, rp;
	cJSON *obj, *p = NULL;

	if (size > 65536 || !(obj = cJSON_ParseWithLength((const char *)data, size)))
		return 0;
	if (health_of(&r, obj) != 0)
		abort();
	if (strlen(r.message) >= sizeof(r.message) || strlen(r.reason) >= sizeof(r.reason) || !r.reason[0])
		abort();
	health_state_name(r.state);
	if (health_project(&p, obj) == 0) {
		if (health_of(&rp, p) != 0 || rp.state != r.state || strcmp(rp.reason, r.reason) ||
		    strcmp(rp.message, r.message))
			abort(); /* the projection must read as the object does */
		cJSON_Delete(p);
	}
	cJSON_Delete(obj);
	return 0;
}
