/* SPDX-License-Identifier: MIT */
/*
 * alloc.c: the socket path's Alloc, Free and Realloc, each as a plan and
 * its sub-steps (journal.h): the plan is decided and recorded before the
 * heap changes, each sub-step can be done again after a crash, and
 * start-up finishes what a crash cut short from the step recorded.
 *
 * A block in a plan is a ref: slab | index << 32 | class << 48 for a
 * small block (or span), slab | slabs << 32 | REF_LARGE for an extent.
 *
 * Freeing a small block takes three stores that others can see: its side
 * entry (the block is no longer live), its bit (it may be claimed again),
 * and, for a slab a client owns, the owner.  Were the bit cleared with the
 * owner free to claim, a crash before the journal says so would leave
 * start-up unable to tell our uncleared bit from the owner's next claim of
 * the same block.  So the daemon first takes the slab into its own hands
 * (slab_owner_move() to 0: the gate), and gives it back after the bit:
 * while gated nobody but the daemon claims there, and every store is
 * idempotent.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"

#define REF_LARGE	SHM_REF_LARGE
#define REF_SLAB(r)	SHM_REF_SLAB(r)
#define REF_INDEX(r)	SHM_REF_INDEX(r)
#define REF_CLS(r)	SHM_REF_CLS(r)
#define REF_SLABS(r)	SHM_REF_SLABS(r)

/* Plans of Realloc, in arg[0]. */
enum { RA_SMALL = 1, RA_GROW, RA_SHRINK, RA_MOVE };

static uint64_t
ref_small(uint64_t s, uint32_t i, uint32_t cls)
{
	return s | (uint64_t)i << 32 | (uint64_t)cls << 48;
}

static uint64_t
ref_large(uint64_t s, uint64_t n)
{
	return REF_LARGE | s | n << 32;
}

static uintptr_t
ref_addr(const struct heap *h, uint64_t ref)
{
	uintptr_t a = slab_addr(&h->seg, REF_SLAB(ref));

	if (ref & REF_LARGE)
		return a;
	return a + (uintptr_t)REF_INDEX(ref) * slab_class_size[REF_CLS(ref)];
}

static uint64_t
ref_usable(uint64_t ref)
{
	if (ref & REF_LARGE)
		return (uint64_t)REF_SLABS(ref) << SHM_SLAB_SHIFT;
	return slab_class_size[REF_CLS(ref)];
}

/* A ref names a block that can be in this heap: for plans start-up reads
 * back from a session record. */
static int
ref_ok(const struct heap *h, uint64_t ref)
{
	uint64_t s = REF_SLAB(ref);

	if (s >= h->seg.nslabs)
		return 0;
	if (ref & REF_LARGE)
		return REF_SLABS(ref) != 0 &&
		    REF_SLABS(ref) <= h->seg.nslabs - s;
	return REF_CLS(ref) < SHM_NCLASSES &&
	    REF_INDEX(ref) < slab_class_nblocks[REF_CLS(ref)] &&
	    slab_class_slabs[REF_CLS(ref)] <= h->seg.nslabs - s;
}

/* A small ref's slab still says its class (a scribbled slab word must
 * not have a redo write side entries of another class's layout). */
static int
ref_slab_ok(const struct heap *h, uint64_t ref)
{
	uint64_t w;

	if (ref & REF_LARGE)
		return 1;
	w = atomic_load(&h->seg.slabs[REF_SLAB(ref)].word);
	return SHM_SLAB_STATE(w) == SHM_SMALL && SHM_SLAB_CLS(w) == REF_CLS(ref);
}

/* ------------------------------------------------------------------ */
/* Alloc */

/* Chooses the block size bytes (aligned) will be: 0 and *ref, or -errno
 * with the words in err. */
static int
alloc_plan(struct heap *h, uint64_t size, uint64_t align, uint64_t *ref,
    char *err, size_t errlen)
{
	uint64_t s, n;
	int64_t r;
	uint32_t i;
	int cls, rc;

	if (align == 0)
		align = SHM_ALIGN;
	if ((align & (align - 1)) != 0 || align > (UINT64_C(1) << 30)) {
		snprintf(err, errlen, "alignment %" PRIu64 " is not a power "
		    "of two up to 1 GiB", align);
		return -EINVAL;
	}
	if (size > (h->seg.nslabs << SHM_SLAB_SHIFT))
		goto full;
	if ((cls = slab_class_aligned((size_t)size, (size_t)align)) >= 0) {
		if ((rc = heap_daemon_block(h, (uint32_t)cls, &s, &i)) != 0) {
			if (rc != -ENOMEM)
				snprintf(err, errlen, "no block of class %d: %s",
				    cls, strerror(-rc));
			else
				goto full;
			return rc;
		}
		*ref = ref_small(s, i, (uint32_t)cls);
		return 0;
	}
	n = (size + SHM_SLAB_MASK) >> SHM_SLAB_SHIFT;
	if (n == 0)
		n = 1;
	if ((r = heap_take_run(h, n, align)) < 0)
		goto full;
	*ref = ref_large((uint64_t)r, n);
	return 0;
full:
	snprintf(err, errlen, "no room for %" PRIu64 " bytes in the heap",
	    size);
	return -ENOMEM;
}

/* Makes planned block ref live with size bytes; again after a crash, it
 * finds what is done done.  0, or -errno (then nothing is made). */
static int
alloc_apply(struct heap *h, uint64_t ref, uint64_t size)
{
	struct shm_seg *seg = &h->seg;
	uint64_t s = REF_SLAB(ref), n, bit;
	uint64_t w;
	uint32_t i, cls;

	if (!ref_ok(h, ref))
		return -EIO;
	if (ref & REF_LARGE) {
		n = REF_SLABS(ref);
		w = atomic_load(&seg->slabs[s].word);
		if (SHM_SLAB_STATE(w) == SHM_LARGE_HEAD &&
		    seg->slabs[s].run == n && seg->slabs[s].req == size)
			return 0;	/* made before a crash */
		if (!heap_run_free(h, s, n))
			return -EIO;
		return heap_extent_make(h, s, n, size);
	}
	i = REF_INDEX(ref);
	cls = REF_CLS(ref);
	w = atomic_load(&seg->slabs[s].word);
	if (SHM_SLAB_STATE(w) != SHM_SMALL || SHM_SLAB_CLS(w) != cls)
		return -EIO;
	/* Only the daemon sets bits in a slab it owns: the bit is ours. */
	bit = UINT64_C(1) << (i % 64);
	atomic_fetch_or(&slab_bitmap(seg, s)[i / 64], bit);
	slab_set_live(seg, s, i, cls, (size_t)size);
	return 0;
}

int
heap_alloc_once(struct heap *h, struct shm_session *ss, uint64_t size,
    uint64_t align, uintptr_t *addr, uint64_t *usable, char *err,
    size_t errlen)
{
	uint64_t arg[6] = { 0 };
	int rc;

	if ((rc = alloc_plan(h, size, align, &arg[0], err, errlen)) != 0)
		return rc;
	arg[1] = size;
	journal_begin(ss, "alloc", ACLHEAP__REQUEST__BODY_ALLOC, arg, NULL);
	if ((rc = alloc_apply(h, arg[0], size)) != 0) {
		snprintf(err, errlen, "no room for %" PRIu64 " bytes in the "
		    "heap", size);
		return rc;
	}
	journal_step(ss, 1);
	*addr = ref_addr(h, arg[0]);
	*usable = ref_usable(arg[0]);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Free */

/* The plan of freeing addr: arg[k] the block, arg[k+1] its request,
 * arg[k+2] its slab's owner to gate (a record + 1), 0 for none. */
static int
free_plan(struct heap *h, uintptr_t addr, uint64_t *arg, char *err,
    size_t errlen)
{
	struct slab_block b;

	if (slab_block_lookup(&h->seg, addr, &b) != 0) {
		snprintf(err, errlen, "0x%" PRIxPTR " is not a live block",
		    addr);
		return -EINVAL;
	}
	if (b.cls == UINT32_MAX) {
		arg[0] = ref_large(b.slab, b.usable >> SHM_SLAB_SHIFT);
		arg[2] = 0;
	} else {
		arg[0] = ref_small(b.slab, b.index, b.cls);
		arg[2] = slab_affinity(&h->seg, b.slab);
	}
	arg[1] = b.req;
	return 0;
}

/* Takes small slab s from owner o (gate); -EBUSY while it is claiming. */
static int
free_gate(struct heap *h, uint64_t s, uint32_t o)
{
	int tries;

	if (o == 0 || slab_affinity(&h->seg, s) != o)
		return 0;	/* the daemon's, or gated before a crash */
	/* A claim is a few instructions: wait them out a while. */
	for (tries = 0; tries < 1000; tries++) {
		if (slab_owner_move(&h->seg, s, 0) == 0)
			return 0;
		sched_yield();
	}
	return -EBUSY;
}

/* Gives gated slab s back to o, if o is still a live record of its class. */
static void
free_ungate(struct heap *h, uint64_t s, uint32_t o, uint32_t cls)
{
	struct shm_seg *seg = &h->seg;

	if (o == 0 || o > seg_lease_hwm(seg) || slab_affinity(seg, s) != 0 ||
	    seg->leases[o - 1].owner_pid == 0 || seg->leases[o - 1].cls != cls)
		return;
	slab_affinity_set(seg, s, o);
}

/* The steps at which a free's sub-steps are recorded: gated, taken,
 * cleared, ungated (Free: 1 2 3 4; a moving Realloc gates first and
 * makes and fills the new block in between). */
enum { AT_GATE, AT_TAKE, AT_CLEAR, AT_UNGATE };
static const uint32_t free_at[4] = { 1, 2, 3, 4 };
static const uint32_t move_at[4] = { 1, 4, 5, 6 };

/*
 * The sub-steps of freeing the planned block (arg[0] the block, arg[1]
 * its request, arg[2] the owner to gate), each done unless the journal
 * says it was.  0, or -EINVAL if its side entry was gone (another free
 * of it won; then its bit is that free's to clear), -EBUSY if the gate
 * could not be had (then nothing was done).  After a crash (redo) a side
 * entry found gone is taken to be ours: the crash came after the
 * exchange, and the gate kept anyone from making it live again.
 */
static int
free_apply(struct heap *h, struct shm_session *ss, const uint64_t *arg,
    const uint32_t *at, int redo)
{
	struct shm_seg *seg = &h->seg;
	uint64_t ref = arg[0], s = REF_SLAB(ref), n;
	uint32_t o = (uint32_t)arg[2], cls = REF_CLS(ref), i = REF_INDEX(ref);
	uint64_t w;
	int lost = 0, rc;

	if (ref & REF_LARGE) {
		n = REF_SLABS(ref);
		w = atomic_load(&seg->slabs[s].word);
		/* Head first: a racing lookup of the block now fails.  A
		 * crash after it leaves tails start-up frees. */
		if (SHM_SLAB_STATE(w) == SHM_LARGE_HEAD &&
		    seg->slabs[s].run == n) {
			atomic_store(&seg->slabs[s].word,
			    SHM_SLAB_WORD(SHM_FREE, 0, 0));
			journal_step(ss, at[AT_TAKE]);
			heap_slabs_release(h, s, n);
		}
		journal_step(ss, at[AT_UNGATE]);
		return 0;
	}
	if (atomic_load(&ss->step) < at[AT_GATE]) {
		if ((rc = free_gate(h, s, o)) != 0)
			return rc;
		journal_step(ss, at[AT_GATE]);
	}
	if (atomic_load(&ss->step) < at[AT_TAKE]) {
		lost = slab_side_xchg(slab_side_base(seg, s, cls), cls, i,
		    0) == 0 && !redo;
		journal_step(ss, at[AT_TAKE]);
	}
	if (atomic_load(&ss->step) < at[AT_CLEAR]) {
		if (!lost)
			atomic_fetch_and(&slab_bitmap(seg, s)[i / 64],
			    ~(UINT64_C(1) << (i % 64)));
		journal_step(ss, at[AT_CLEAR]);
	}
	if (atomic_load(&ss->step) < at[AT_UNGATE]) {
		free_ungate(h, s, o, cls);
		journal_step(ss, at[AT_UNGATE]);
	}
	return lost ? -EINVAL : 0;
}

int
heap_free_once(struct heap *h, struct shm_session *ss, uintptr_t addr,
    uint64_t *req, char *err, size_t errlen)
{
	uint64_t arg[6] = { 0 };
	int rc;

	if ((rc = free_plan(h, addr, arg, err, errlen)) != 0)
		return rc;
	journal_begin(ss, "free", ACLHEAP__REQUEST__BODY_FREE, arg, NULL);
	if ((rc = free_apply(h, ss, arg, free_at, 0)) != 0) {
		if (rc == -EBUSY)
			snprintf(err, errlen, "the slab's owner is claiming in "
			    "it; ask again");
		else
			snprintf(err, errlen, "0x%" PRIxPTR " is not a live "
			    "block", addr);
		return rc == -EBUSY ? -EAGAIN : rc;
	}
	*req = arg[1];
	if (!(arg[0] & REF_LARGE))
		heap_maybe_reclaim(h, REF_CLS(arg[0]), REF_SLAB(arg[0]),
		    REF_INDEX(arg[0]));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Realloc: arg[0] RA_*, arg[1] the block, arg[2] its request, arg[3] the
 * new size, arg[4] the new length in slabs (GROW, SHRINK) or the new
 * block (MOVE), arg[5] the owner to gate for the old block's free. */

static int
realloc_plan(struct heap *h, uintptr_t addr, uint64_t size, uint64_t *arg,
    char *err, size_t errlen)
{
	struct slab_block b;
	uint64_t n, old;
	int cls;

	if (slab_block_lookup(&h->seg, addr, &b) != 0) {
		snprintf(err, errlen, "0x%" PRIxPTR " is not a live block",
		    addr);
		return -EINVAL;
	}
	arg[2] = b.req;
	arg[3] = size;
	n = (size + SHM_SLAB_MASK) >> SHM_SLAB_SHIFT;
	if (b.cls != UINT32_MAX) {
		arg[1] = ref_small(b.slab, b.index, b.cls);
		arg[5] = slab_affinity(&h->seg, b.slab);
		cls = slab_class_of((size_t)size);
		/* Stay unless shrinking below half the class. */
		if (size <= b.usable && cls >= 0 &&
		    slab_class_size[cls] * 2 > b.usable) {
			arg[0] = RA_SMALL;
			return 0;
		}
	} else {
		old = b.usable >> SHM_SLAB_SHIFT;
		arg[1] = ref_large(b.slab, old);
		arg[5] = 0;
		if (size > b.usable && size > SHM_CLASS_MAX &&
		    n <= h->seg.nslabs - b.slab && n <= UINT32_MAX &&
		    heap_run_free(h, b.slab + old, n - old)) {
			arg[0] = RA_GROW;
			arg[4] = n;
			return 0;
		}
		if (size > SHM_CLASS_MAX && size <= b.usable) {
			arg[0] = RA_SHRINK;
			arg[4] = n;
			return 0;
		}
	}
	arg[0] = RA_MOVE;
	return alloc_plan(h, size, 0, &arg[4], err, errlen);
}

/* The plan's sub-steps from the one recorded; 0 with the block and its
 * usable size, or -errno (then the old block is as it was). */
static int
realloc_apply(struct heap *h, struct shm_session *ss, const uint64_t *arg,
    int redo, uintptr_t *out, uint64_t *usable)
{
	struct shm_seg *seg = &h->seg;
	uint64_t ref = arg[1], s = REF_SLAB(ref), size = arg[3], n = arg[4];
	uint64_t fa[3] = { arg[1], arg[2], arg[5] }, run;
	int rc;

	*out = ref_addr(h, ref);
	switch (arg[0]) {
	case RA_SMALL:
		slab_set_live(seg, s, REF_INDEX(ref), REF_CLS(ref),
		    (size_t)size);
		*usable = ref_usable(ref);
		break;
	case RA_GROW:
		if (seg->slabs[s].run == n)
			seg->slabs[s].req = size;	/* grown before a crash */
		else if ((rc = heap_extent_grow(h, s, REF_SLABS(ref), n,
		    size)) != 0)
			return rc;
		*usable = n << SHM_SLAB_SHIFT;
		break;
	case RA_SHRINK:
		/* The smaller request first: it fits the extent before and
		 * after, whatever a crash leaves (slab_settle_extents()). */
		seg->slabs[s].req = size;
		if ((run = seg->slabs[s].run) > n) {
			seg->slabs[s].run = (uint32_t)n;
			heap_slabs_release(h, s + n, run - n);
		}
		*usable = n << SHM_SLAB_SHIFT;
		break;
	case RA_MOVE:
		if (atomic_load(&ss->step) < 1) {
			if (!(ref & REF_LARGE) && (rc = free_gate(h, s,
			    (uint32_t)arg[5])) != 0)
				return rc;
			journal_step(ss, 1);
		}
		if (atomic_load(&ss->step) < 2) {
			if ((rc = alloc_apply(h, n, size)) != 0) {
				free_ungate(h, s, (uint32_t)arg[5],
				    REF_CLS(ref));
				/* Ungated: a redo must gate again. */
				journal_step(ss, 0);
				return rc;
			}
			journal_step(ss, 2);
		}
		*out = ref_addr(h, n);
		*usable = ref_usable(n);
		if (atomic_load(&ss->step) < 3) {
			memcpy((void *)*out, (void *)ref_addr(h, ref),
			    arg[2] < size ? arg[2] : size);
			journal_step(ss, 3);
		}
		(void)free_apply(h, ss, fa, move_at, redo);
		return 0;
	default:
		return -EIO;
	}
	journal_step(ss, 1);
	return 0;
}

int
heap_realloc_once(struct heap *h, struct shm_session *ss, uintptr_t addr,
    uint64_t size, uintptr_t *out, uint64_t *usable, char *err,
    size_t errlen)
{
	uint64_t arg[6] = { 0 };
	int rc;

	if ((rc = realloc_plan(h, addr, size, arg, err, errlen)) != 0)
		return rc;
	journal_begin(ss, "realloc", ACLHEAP__REQUEST__BODY_REALLOC, arg,
	    NULL);
	if ((rc = realloc_apply(h, ss, arg, 0, out, usable)) != 0) {
		if (rc == -EBUSY) {
			snprintf(err, errlen, "the slab's owner is claiming in "
			    "it; ask again");
			return -EAGAIN;
		}
		snprintf(err, errlen, "no room for %" PRIu64 " bytes", size);
		return rc;
	}
	if (arg[0] == RA_MOVE && !(arg[1] & REF_LARGE))
		heap_maybe_reclaim(h, REF_CLS(arg[1]), REF_SLAB(arg[1]),
		    REF_INDEX(arg[1]));
	return 0;
}

/* ------------------------------------------------------------------ */
/* After a crash (journal_recover()): 0 finished, 1 undone. */

int
heap_redo_alloc(struct heap *h, struct shm_session *ss)
{
	if (!ref_ok(h, ss->arg[0]))
		return -1;
	if (alloc_apply(h, ss->arg[0], ss->arg[1]) != 0)
		return 1;
	journal_done(ss, 0, ref_addr(h, ss->arg[0]), ref_usable(ss->arg[0]),
	    NULL);
	return 0;
}

int
heap_redo_free(struct heap *h, struct shm_session *ss)
{
	uint64_t arg[6];

	memcpy(arg, ss->arg, sizeof(arg));
	if (!ref_ok(h, arg[0]) || !ref_slab_ok(h, arg[0]) ||
	    arg[2] > seg_lease_hwm(&h->seg))
		return -1;
	if (free_apply(h, ss, arg, free_at, 1) != 0)
		return 1;	/* not gated: nothing was done */
	journal_done(ss, 0, arg[1], 0, NULL);
	return 0;
}

int
heap_redo_realloc(struct heap *h, struct shm_session *ss)
{
	uint64_t arg[6];
	uintptr_t out;
	uint64_t usable;

	memcpy(arg, ss->arg, sizeof(arg));
	if (arg[0] < RA_SMALL || arg[0] > RA_MOVE || !ref_ok(h, arg[1]) ||
	    arg[5] > seg_lease_hwm(&h->seg) || (arg[0] == RA_MOVE && !ref_ok(h, arg[4])) ||
	    ((arg[0] == RA_GROW || arg[0] == RA_SHRINK) && (arg[4] == 0 ||
	    arg[4] > h->seg.nslabs - REF_SLAB(arg[1]))) ||
	    (arg[0] == RA_SMALL && (arg[1] & REF_LARGE)) ||
	    !ref_slab_ok(h, arg[1]))
		return -1;
	if (realloc_apply(h, ss, arg, 1, &out, &usable) != 0)
		return 1;
	journal_done(ss, 0, out, usable, NULL);
	return 0;
}

/* Without a journal (tests, a peer without seq): the same code, its
 * journal in a scratch record. */
int
heap_alloc(struct heap *h, uint64_t size, uint64_t align, uintptr_t *addr,
    uint64_t *usable)
{
	struct shm_session ss = { 0 };
	char err[128];

	return heap_alloc_once(h, &ss, size, align, addr, usable, err,
	    sizeof(err));
}

int
heap_free(struct heap *h, uintptr_t addr, uint64_t *req)
{
	struct shm_session ss = { 0 };
	char err[128];

	return heap_free_once(h, &ss, addr, req, err, sizeof(err));
}

int
heap_realloc(struct heap *h, uintptr_t addr, uint64_t size, uintptr_t *out,
    uint64_t *usable)
{
	struct shm_session ss = { 0 };
	char err[128];

	return heap_realloc_once(h, &ss, addr, size, out, usable, err,
	    sizeof(err));
}
