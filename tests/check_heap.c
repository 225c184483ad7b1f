/* SPDX-License-Identifier: MIT */
/*
 * check_heap.c: the daemon's start-up decisions about a segment a crash
 * left in the middle of something, while a live client is in the middle
 * of a claim: a reclaim cut short, a change of a slab's owner cut short.
 * The heap is a real segment; this process plays the client (its lease
 * record names it, so it is alive) and calls heap_rebuild() as a
 * restarted daemon would.
 */
#include "config.h"

#include <sys/random.h>

#include <syslog.h>

#include <check.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "tests/testutil.h"

#define HEAP_BASE	UINT64_C(0x318000000000)
#define HEAP_SIZE	(UINT64_C(8) << 20)
#define S		5		/* the slab */
#define CLS		2		/* its class */
#define REC		0		/* the client's lease record */

static struct heap h;
static uint8_t id[16];

/* A small slab S owned by record REC, whose owner (we) has announced a
 * claim in it and checked the slab: the claim goes on after the crash. */
static void
claim_started(void)
{
	struct shm_seg *seg = &h.seg;
	char err[512];
	int fd;

	log_set_level(LOG_WARNING);	/* start-up's notes are not for here */
	memset(&h, 0, sizeof(h));
	ck_assert_int_eq(getrandom(id, sizeof(id), 0), 16);
	ck_assert_int_eq(seg_create(id, HEAP_SIZE, &fd), 0);
	ck_assert_msg(seg_map(seg, fd, HEAP_BASE, HEAP_SIZE, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(seg_format(seg, id), 0);
	atomic_store(&seg->sb->slab_hwm, S + 1);
	/* ... and lease records, any of them. */
	atomic_store(&seg->sb->lease_hwm, seg->nleases);
	atomic_store(&seg->slabs[S].word, SHM_SLAB_OWNED(
	    SHM_SLAB_WORD(SHM_SMALL, CLS, 0), REC + 1));
	atomic_store(&seg->slabs[S].ready, slab_class_nblocks[CLS]);
	seg->leases[REC].owner_pid = (uint32_t)getpid();
	seg->leases[REC].owner_start = proc_start(getpid());
	seg->leases[REC].cls = CLS;
	atomic_store(&seg->leases[REC].set_slab, S);
	ck_assert_int_eq(slab_claim_begin(seg, S, CLS, REC), 0);
}

/* The claim finishes; the slab must still be SMALL, ours, and hold what
 * we took. */
static void
claim_finishes(void)
{
	struct shm_seg *seg = &h.seg;
	char err[512];
	uint64_t got;

	got = slab_claim_word(seg, S, CLS, 0, &seg->leases[REC].mask);
	slab_claim_end(seg, REC);
	ck_assert_uint_eq(got, slab_word_valid(CLS, 0));
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&seg->slabs[S].word)),
	    SHM_SMALL);
	ck_assert_uint_eq(slab_affinity(seg, S), REC + 1);
	ck_assert_msg(shm_check(seg, NULL, err, sizeof(err)) == 0, "%s", err);
	heap_close(&h);
	seg_unlink(id);
}

/* The daemon stored RECLAIMING and died before it read the owner's
 * announcement: start-up must not free a slab its owner is claiming in
 * (empty as its bitmap still is). */
START_TEST(cut_reclaim_keeps_claimed_slab)
{
	claim_started();
	atomic_store(&h.seg.slabs[S].word, SHM_SLAB_OWNED(
	    SHM_SLAB_WORD(SHM_RECLAIMING, CLS, 0), REC + 1));
	ck_assert_int_eq(heap_rebuild(&h), 0);
	claim_finishes();
}
END_TEST

/* As above, but the claim landed after RECLAIMING: the segment checks
 * out (start-up checks it before it rebuilds), and the slab stays. */
START_TEST(cut_reclaim_after_the_claim_checks_out)
{
	char err[512];

	claim_started();
	atomic_store(&h.seg.slabs[S].word, SHM_SLAB_OWNED(
	    SHM_SLAB_WORD(SHM_RECLAIMING, CLS, 0), REC + 1));
	ck_assert_uint_eq(slab_claim_word(&h.seg, S, CLS, 0,
	    &h.seg.leases[REC].mask), slab_word_valid(CLS, 0));
	ck_assert_msg(shm_check(&h.seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_eq(heap_rebuild(&h), 0);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&h.seg.slabs[S].word)),
	    SHM_SMALL);
	slab_claim_end(&h.seg, REC);
	ck_assert_msg(shm_check(&h.seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	heap_close(&h);
	seg_unlink(id);
}
END_TEST

/* The daemon was taking the slab from its owner and died with the move
 * undecided (the slab in its own hands): start-up must give it back, or
 * the daemon and the client would both claim in it. */
START_TEST(cut_move_gives_slab_back)
{
	claim_started();
	h.seg.sb->move_from = REC + 1;
	atomic_store(&h.seg.sb->move_slab, S + 1);
	slab_affinity_set(&h.seg, S, 0);
	ck_assert_int_eq(heap_rebuild(&h), 0);
	ck_assert_uint_eq(atomic_load(&h.seg.sb->move_slab), 0);
	claim_finishes();
}
END_TEST

/* The move was decided (the new owner set, after the old one was seen
 * idle) when the daemon died: the new owner may be claiming already, so
 * start-up leaves the slab to it. */
START_TEST(cut_move_after_decision_stands)
{
	claim_started();
	slab_claim_end(&h.seg, REC);
	/* Record 3, live, got the slab and started a claim in it. */
	h.seg.leases[3] = h.seg.leases[REC];
	atomic_store(&h.seg.leases[3].set_slab, S);
	h.seg.sb->move_from = REC + 1;
	atomic_store(&h.seg.sb->move_slab, S + 1);
	slab_affinity_set(&h.seg, S, 3 + 1);
	ck_assert_int_eq(slab_claim_begin(&h.seg, S, CLS, 3), 0);
	ck_assert_int_eq(heap_rebuild(&h), 0);
	ck_assert_uint_eq(slab_affinity(&h.seg, S), 3 + 1);
	ck_assert_uint_ne(slab_claim_word(&h.seg, S, CLS, 0,
	    &h.seg.leases[3].mask), 0);
	slab_claim_end(&h.seg, 3);
	heap_close(&h);
	seg_unlink(id);
}
END_TEST

/* A reclaim that was not cut short of anything finishes at start-up. */
START_TEST(cut_reclaim_of_idle_slab_finishes)
{
	claim_started();
	slab_claim_end(&h.seg, REC);
	atomic_store(&h.seg.slabs[S].word, SHM_SLAB_OWNED(
	    SHM_SLAB_WORD(SHM_RECLAIMING, CLS, 0), REC + 1));
	ck_assert_int_eq(heap_rebuild(&h), 0);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&h.seg.slabs[S].word)),
	    SHM_FREE);
	ck_assert_int_eq(slab_claim_begin(&h.seg, S, CLS, REC), -ESTALE);
	heap_close(&h);
	seg_unlink(id);
}
END_TEST

/* Slab s as part of an extent, written as the daemon does. */
static void
extent_slab(uint64_t s, uint32_t state, uint32_t run, uint64_t req)
{
	h.seg.slabs[s].run = run;
	h.seg.slabs[s].req = req;
	atomic_store(&h.seg.slabs[s].word, SHM_SLAB_WORD(state, 0, 0));
}

/* Extent slabs as a crash leaves them: tails made before their head, and
 * tails of a head already freed.  Start-up frees them; a whole extent and
 * a tail of a damaged head (for the validator to name) stay. */
START_TEST(headless_tails_are_freed)
{
	struct shm_seg *seg = &h.seg;
	char err[512];

	claim_started();
	slab_claim_end(seg, REC);
	atomic_store(&seg->sb->slab_hwm, 20);
	/* 7: the tail of a head at 6 never written. */
	extent_slab(7, SHM_LARGE_TAIL, 6, 0);
	/* 9-11: a whole extent. */
	extent_slab(9, SHM_LARGE_HEAD, 3, 3 * SHM_SLAB_SIZE);
	extent_slab(10, SHM_LARGE_TAIL, 9, 0);
	extent_slab(11, SHM_LARGE_TAIL, 9, 0);
	/* 13-14: an extent shrunk to one slab, its tail not yet freed. */
	extent_slab(13, SHM_LARGE_HEAD, 1, 100);
	extent_slab(14, SHM_LARGE_TAIL, 13, 0);
	ck_assert_int_eq(shm_check_still(seg, NULL, err, sizeof(err)),
	    -EUCLEAN);
	ck_assert_uint_eq(slab_settle_extents(seg), 2);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&seg->slabs[7].word)),
	    SHM_FREE);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&seg->slabs[14].word)),
	    SHM_FREE);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&seg->slabs[11].word)),
	    SHM_LARGE_TAIL);
	ck_assert_msg(shm_check_still(seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	/* A head whose length is damaged keeps its tails: the validator
	 * names it.  So does one too short for the request it records,
	 * which no cut shrink leaves (the request is written first). */
	seg->slabs[9].run = 0;
	ck_assert_uint_eq(slab_settle_extents(seg), 0);
	ck_assert_int_eq(shm_check_still(seg, NULL, err, sizeof(err)),
	    -EUCLEAN);
	seg->slabs[9].run = 2;
	ck_assert_uint_eq(slab_settle_extents(seg), 0);
	ck_assert_int_eq(shm_check_still(seg, NULL, err, sizeof(err)),
	    -EUCLEAN);
	seg->slabs[9].run = 3;
	heap_close(&h);
	seg_unlink(id);
}
END_TEST

/* Span slabs as a crash leaves them: tails made before their head was
 * written, and a span whose reclaim was cut short after RECLAIMING.
 * Start-up frees the first; the rebuild finishes the reclaim, tails and
 * all; a whole span stays. */
START_TEST(cut_span_is_settled)
{
	struct shm_seg *seg = &h.seg;
	uint32_t cls = SHM_NSMALL;	/* 10 KiB: five slabs */
	char err[512];
	uint64_t t;

	claim_started();
	slab_claim_end(seg, REC);
	atomic_store(&seg->sb->slab_hwm, 60);
	for (t = 21; t < 25; t++)	/* head 20 never written */
		extent_slab(t, SHM_SPAN_TAIL, 20, 0);
	for (t = 31; t < 35; t++)	/* a whole span at 30 */
		extent_slab(t, SHM_SPAN_TAIL, 30, 0);
	atomic_store(&seg->slabs[30].word, SHM_SLAB_WORD(SHM_SMALL, cls, 0));
	atomic_store(&seg->slabs[30].ready, slab_class_nblocks[cls]);
	for (t = 41; t < 45; t++)	/* reclaim of 40 cut short */
		extent_slab(t, SHM_SPAN_TAIL, 40, 0);
	atomic_store(&seg->slabs[40].word, SHM_SLAB_WORD(SHM_RECLAIMING, cls,
	    0));
	atomic_store(&seg->slabs[40].ready, slab_class_nblocks[cls]);
	ck_assert_int_eq(shm_check_still(seg, NULL, err, sizeof(err)),
	    -EUCLEAN);
	ck_assert_uint_eq(slab_settle_extents(seg), 4);
	ck_assert_msg(shm_check_still(seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_eq(heap_rebuild(&h), 0);
	/* Free slabs may be holes after a start: none is taken as still
	 * committed (a slab made there would skip its fallocate). */
	ck_assert_uint_eq(h.nheld, 0);
	for (t = 20; t < 25; t++)
		ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(
		    &seg->slabs[t].word)), SHM_FREE);
	for (t = 40; t < 45; t++)
		ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(
		    &seg->slabs[t].word)), SHM_FREE);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&seg->slabs[30].word)),
	    SHM_SMALL);
	for (t = 31; t < 35; t++)
		ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(
		    &seg->slabs[t].word)), SHM_SPAN_TAIL);
	ck_assert_msg(shm_check_still(seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	heap_close(&h);
	seg_unlink(id);
}
END_TEST

Suite *
heap_suite(void)
{
	Suite *s = suite_create("heap");
	TCase *tc = tcase_create("heap");

	tcase_add_test(tc, cut_reclaim_keeps_claimed_slab);
	tcase_add_test(tc, cut_reclaim_after_the_claim_checks_out);
	tcase_add_test(tc, cut_move_gives_slab_back);
	tcase_add_test(tc, cut_move_after_decision_stands);
	tcase_add_test(tc, headless_tails_are_freed);
	tcase_add_test(tc, cut_span_is_settled);
	tcase_add_test(tc, cut_reclaim_of_idle_slab_finishes);
	suite_add_tcase(s, tc);
	return s;
}
