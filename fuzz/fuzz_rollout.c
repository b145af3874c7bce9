/* libFuzzer target: a rollout going on from the state status.rollout
 * holds. That status is read back from the GitSync, which others than
 * plumbd may write: any JSON there must give an answer without a crash,
 * and no cluster may be sent to anything but the new commit, a cluster's
 * own commit, a full commit id, or nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "controller/internal.h"

#define N "1111111111111111111111111111111111111111"

static int commit_like(const char *s)
{
	if (!*s)
		return 1;
	if (strlen(s) != 40)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static gitsync_wave waves[2] = { { .name = "canary", .max_unavailable_pct = 100 },
		{ .name = "eu", .max_unavailable = 1 } };
	gitsync_rollout spec = { .set = 1, .waves = waves, .nwaves = 2, .bake = 30, .rollback = 1 };
	rollout_cluster cl[5];
	static const char *const names[] = { "c1", "c2", "c3", "c4", "c5" };
	cJSON *prev, *next = NULL;
	rollout_result res;

	if (size > 65536 || !(prev = cJSON_ParseWithLength((const char *)data, size)))
		return 0;
	memset(cl, 0, sizeof(cl));
	for (int i = 0; i < 5; i++) {
		snprintf(cl[i].name, sizeof(cl[i].name), "%s", names[i]);
		cl[i].wave = (size_t)i % 3;
		snprintf(cl[i].commit, sizeof(cl[i].commit), "%s", i % 2 ? N : "2222222222222222222222222222222222222222");
		snprintf(cl[i].attempted, sizeof(cl[i].attempted), "%s", cl[i].commit);
		cl[i].known = i != 4;
		cl[i].settled = i < 3;
		cl[i].ready = i != 1;
		cl[i].failed = i == 2 && size % 2;
	}
	const char *abort_req = size % 3 == 0 ? "t" : NULL;
	if (rollout_next(&next, &res, prev, &spec, N, cl, 5, size % 5 == 0, abort_req, 1.8e9) != 0)
		abort();
	if (!next || strcmp(plumb_json_str(next, "commit"), N))
		abort();
	for (int i = 0; i < 5; i++)
		if (!commit_like(cl[i].intended))
			abort();   /* a commit plumbd would try to render */
	/* and the next step from what it wrote is an answer too */
	rollout_cluster again[5];
	memcpy(again, cl, sizeof(again));
	cJSON *third = NULL;
	if (rollout_next(&third, &res, next, &spec, N, again, 5, 0, NULL, 1.8e9 + 60) != 0)
		abort();
	cJSON_Delete(third);
	cJSON_Delete(next);
	cJSON_Delete(prev);
	return 0;
}
