/*
 * pkg/apply: the engine's worker pool. apply_run_parallel() runs one work
 * function over a list of indexes on up to opts.parallel threads (twice
 * that while validating: dry runs write nothing to etcd), at most 64,
 * started for the call and joined before it returns; the calling thread
 * works too.
 *
 * Threads: indexes are handed out by an atomic counter, so each index is
 * worked on by exactly one thread. What pool threads run:
 * apply_process_item, apply_write_item and apply_wait_crd (write.c) and
 * prune_one (prune.c), which change only their own item or candidate and
 * its result, e->state and e->proj under e->lock (state.c), and the run's
 * atomics (writes, dry_runs, stop). They read, but never change, the run's
 * maps of live objects (filled by the caller before the pass) and the
 * items and results of earlier passes.
 */
#include "apply/apply_internal.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct {
	run *R;
	work_fn fn;
	const size_t *idx;
	size_t n;
	atomic_size_t next;
} pool;

static void *pool_main(void *p)
{
	pool *P = p;
	for (;;) {
		size_t i = atomic_fetch_add(&P->next, 1);
		if (i >= P->n)
			break;
		P->fn(P->R, P->idx[i]);
	}
	return NULL;
}

/* Runs fn over idx[0..n) on up to opts.parallel threads. */
void apply_run_parallel(run *R, work_fn fn, const size_t *idx, size_t n)
{
	pool P = { .R = R, .fn = fn, .idx = idx, .n = n };
	pthread_t th[64];
	/* dry runs write nothing to etcd: the API server takes more of them at once */
	size_t want = R->validating ? 2 * (size_t)R->o.parallel : R->o.parallel;
	size_t nt = want < n ? want : n, started = 0;

	atomic_init(&P.next, 0);
	if (nt > 64)
		nt = 64;
	for (size_t t = 1; t < nt; t++)
		if (pthread_create(&th[started], NULL, pool_main, &P) == 0)
			started++;
	pool_main(&P);
	for (size_t t = 0; t < started; t++)
		pthread_join(th[t], NULL);
}
