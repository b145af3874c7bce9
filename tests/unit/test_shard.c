/* Unit tests for the pure part of --shards (pkg/controller/shards.c):
 * consistent hashing with bounded loads (shard_assign) and rendezvous
 * hashing (shard_rendezvous). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/internal.h"

#define MAXN 10000

static char keys[MAXN][32];
static shard_unit units[MAXN];

static void make_units(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "team-%zu/app-%zu", i % 7, i);
		units[i] = (shard_unit){ .key = keys[i], .weight = 1 };
	}
}

static void loads(size_t *out, size_t m, size_t n)
{
	memset(out, 0, m * sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_lt(units[i].owner, m);
		out[units[i].owner] += units[i].weight ? units[i].weight : 1;
	}
}

/* owners[i] of the members names[] by name, so runs with different member
 * lists compare */
static void owners_by_name(const char **out, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = names[units[i].owner];
}

static const char *const three[] = { "plumbd-a_1x2y3z4w", "plumbd-b_9q8r7s6t", "plumbd-c_k2m4n6p8" };
static const char *const four[] = { "plumbd-a_1x2y3z4w", "plumbd-b_9q8r7s6t", "plumbd-c_k2m4n6p8", "plumbd-d_zz00yy11" };

START_TEST(test_shard__thirty_over_three_is_even)
{
	size_t l[3];
	make_units(30);
	ck_assert_int_eq(shard_assign(units, 30, three, 3), 0);
	loads(l, 3, 30);
	ck_assert_uint_eq(l[0], 10);
	ck_assert_uint_eq(l[1], 10);
	ck_assert_uint_eq(l[2], 10);
}
END_TEST

START_TEST(test_shard__the_order_of_members_does_not_matter)
{
	const char *a[30], *b[30];
	const char *const rev[] = { three[2], three[0], three[1] };
	make_units(30);
	ck_assert_int_eq(shard_assign(units, 30, three, 3), 0);
	owners_by_name(a, three, 30);
	/* nor the order of the units */
	shard_unit copy[30];
	for (size_t i = 0; i < 30; i++)
		copy[i] = units[29 - i];
	memcpy(units, copy, sizeof(copy));
	ck_assert_int_eq(shard_assign(units, 30, rev, 3), 0);
	owners_by_name(b, rev, 30);
	for (size_t i = 0; i < 30; i++)
		ck_assert_str_eq(a[29 - i], b[i]);
}
END_TEST

START_TEST(test_shard__a_joining_replica_takes_about_a_quarter)
{
	const char *before[30], *after[30];
	size_t l[4], moved = 0, to_new = 0;
	make_units(30);
	ck_assert_int_eq(shard_assign(units, 30, three, 3), 0);
	owners_by_name(before, three, 30);
	ck_assert_int_eq(shard_assign(units, 30, four, 4), 0);
	owners_by_name(after, four, 30);
	loads(l, 4, 30);
	for (size_t j = 0; j < 4; j++) {
		ck_assert_uint_le(l[j], 8);      /* ceil(30 / 4) */
		ck_assert_uint_ge(l[j], 6);
	}
	for (size_t i = 0; i < 30; i++) {
		moved += strcmp(before[i], after[i]) != 0;
		to_new += after[i] == four[3];
	}
	ck_assert_uint_ge(to_new, 6);
	/* the new replica's share, and at most as many again pushed on by the cap */
	ck_assert_uint_le(moved, 2 * to_new);
}
END_TEST

START_TEST(test_shard__a_leaving_replica_moves_its_own_and_few_others)
{
	const char *before[30], *after[30];
	size_t moved = 0, moved_other = 0, l[2];
	const char *const two[] = { three[0], three[2] };
	make_units(30);
	ck_assert_int_eq(shard_assign(units, 30, three, 3), 0);
	owners_by_name(before, three, 30);
	ck_assert_int_eq(shard_assign(units, 30, two, 2), 0);
	owners_by_name(after, two, 30);
	loads(l, 2, 30);
	ck_assert_uint_eq(l[0], 15);
	ck_assert_uint_eq(l[1], 15);
	for (size_t i = 0; i < 30; i++) {
		moved += strcmp(before[i], after[i]) != 0;
		moved_other += strcmp(before[i], after[i]) != 0 && before[i] != three[1];
	}
	ck_assert_uint_ge(moved, 10);         /* all of the leaver's */
	ck_assert_uint_le(moved_other, 5);
}
END_TEST

START_TEST(test_shard__many_gitsyncs_stay_within_one_of_even)
{
	const char *const seven[] = { "r0", "r1", "r2", "r3", "r4", "r5", "r6" };
	size_t l[7];
	make_units(MAXN);
	ck_assert_int_eq(shard_assign(units, MAXN, seven, 7), 0);
	loads(l, 7, MAXN);
	size_t lo = l[0], hi = l[0];
	for (size_t j = 0; j < 7; j++) {
		lo = l[j] < lo ? l[j] : lo;
		hi = l[j] > hi ? l[j] : hi;
	}
	ck_assert_uint_le(hi, (MAXN + 6) / 7);
	ck_assert_uint_le(hi - lo, 1);
}
END_TEST

START_TEST(test_shard__a_dependson_group_stays_together)
{
	size_t l[3];
	make_units(30);
	units[0].weight = 5;     /* five GitSyncs linked by dependsOn: one unit */
	ck_assert_int_eq(shard_assign(units, 30, three, 3), 0);
	loads(l, 3, 30);
	ck_assert_uint_eq(l[0] + l[1] + l[2], 34);
	for (size_t j = 0; j < 3; j++)
		ck_assert_uint_le(l[j], 12);   /* ceil(34 / 3) */
}
END_TEST

START_TEST(test_shard__no_members_no_owner)
{
	make_units(3);
	ck_assert_int_eq(shard_assign(units, 3, NULL, 0), 0);
	for (size_t i = 0; i < 3; i++)
		ck_assert_uint_eq(units[i].owner, SHARD_NONE);
	ck_assert_uint_eq(shard_rendezvous("shop/c2", NULL, 0), SHARD_NONE);
}
END_TEST

START_TEST(test_shard__rendezvous_is_stable_and_spreads)
{
	size_t count[3] = { 0 };
	const char *const rev[] = { three[2], three[1], three[0] };
	for (int i = 0; i < 300; i++) {
		char k[32];
		snprintf(k, sizeof(k), "fleet/c%d", i);
		size_t a = shard_rendezvous(k, three, 3), b = shard_rendezvous(k, rev, 3);
		ck_assert_str_eq(three[a], rev[b]);
		count[a]++;
	}
	for (int j = 0; j < 3; j++)
		ck_assert_uint_gt(count[j], 60);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shard");
	TCase *tc = tcase_create("shard");
	tcase_add_test(tc, test_shard__thirty_over_three_is_even);
	tcase_add_test(tc, test_shard__the_order_of_members_does_not_matter);
	tcase_add_test(tc, test_shard__a_joining_replica_takes_about_a_quarter);
	tcase_add_test(tc, test_shard__a_leaving_replica_moves_its_own_and_few_others);
	tcase_add_test(tc, test_shard__many_gitsyncs_stay_within_one_of_even);
	tcase_add_test(tc, test_shard__a_dependson_group_stays_together);
	tcase_add_test(tc, test_shard__no_members_no_owner);
	tcase_add_test(tc, test_shard__rendezvous_is_stable_and_spreads);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
