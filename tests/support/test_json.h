/* Shared by the Check tests: JSON literals written readably, the runner. */
#ifndef PLUMB_TEST_JSON_H
#define PLUMB_TEST_JSON_H

#include <check.h>
#include <cjson/cJSON.h>

/* text with ' for " ({'kind': 'Pod'}) parsed; a test failure when it is not
 * JSON. Caller frees with cJSON_Delete(). */
cJSON *test_json(const char *text);

/* Runs suite s in forked tests and frees it: EXIT_SUCCESS when every test
 * passed (a test's main returns this). */
int test_run(Suite *s);

#endif
