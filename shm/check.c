/* SPDX-License-Identifier: MIT */
/*
 * check.c: shm_check(), the validator of every invariant in shm.h.
 *
 * It reads and never writes, so it runs on a live heap (the daemon's verify
 * request), on an image loaded into scratch memory (aclheapctl verify IMAGE)
 * and in the tests after every crash.  On a live heap a claim in flight can
 * show as an orphaned bit for an instant; that is counted, not an error.
 */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

#define FAIL(...) do {						\
	snprintf(err, errlen, __VA_ARGS__);			\
	return -EUCLEAN;					\
} while (0)

/*
 * The one rule for a root's name, for the daemon, the library and this
 * validator: 1 to SHM_ROOT_NAME_MAX bytes of printable ASCII (0x20 to
 * 0x7e), then a NUL.  It reads no further than SHM_ROOT_NAME_MAX + 1
 * bytes, so it can check a root table entry in place.
 */
int
shm_root_name_ok(const char *n)
{
	size_t i;

	if (n == NULL || n[0] == '\0')
		return 0;
	for (i = 0; n[i] != '\0'; i++)
		if (i >= SHM_ROOT_NAME_MAX || n[i] < 0x20 || n[i] > 0x7e)
			return 0;
	return 1;
}

/* I1..I3 and I5's count for a small slab or span head s of class cls. */
static int
check_small(const struct shm_seg *seg, uint64_t s, uint32_t cls,
    struct shm_report *r, char *err, size_t errlen)
{
	_Atomic uint64_t *bm = slab_bitmap(seg, s);
	uintptr_t sd = slab_side_base(seg, s, cls);
	uint32_t cs = slab_class_size[cls], nb = slab_class_nblocks[cls], i;
	uint32_t room = slab_side_room(cls), side;
	uint64_t bits;

	for (i = 0; i < SHM_MAX_BLOCKS; i++) {
		bits = atomic_load_explicit(&bm[i / 64], memory_order_relaxed);
		side = i < room ? slab_side_load(sd, cls, i) : 0;
		if (i >= nb) {
			if ((bits >> (i % 64)) & 1)
				FAIL("slab %" PRIu64 " (class %u) has bit %u set "
				    "past its %u blocks", s, cs, i, nb);
			if (side != 0)
				FAIL("slab %" PRIu64 " has a side entry at %u "
				    "past its %u blocks", s, i, nb);
			continue;
		}
		if (side != 0 && !((bits >> (i % 64)) & 1))
			FAIL("slab %" PRIu64 " block %u is live without its "
			    "bit", s, i);
		if (side > cs + 1)
			FAIL("slab %" PRIu64 " block %u records %u bytes of "
			    "slack in a %u-byte class", s, i, side - 1u, cs);
		if (side != 0) {
			r->blocks_live++;
			r->bytes_requested += cs - (side - 1u);
			r->bytes_live += cs;
		} else if ((bits >> (i % 64)) & 1)
			r->blocks_orphaned++;
	}
	return 0;
}

/*
 * How long a live heap gets to finish what it was doing before a slab that
 * looks broken is reported: a couple of yields, then waits growing to about
 * 85 ms in all, long enough for a daemon or client preempted in the middle
 * of a two-step change (an extent freed head first, a claim and its side
 * entry) to be scheduled again.  A real breakage stays put meanwhile.
 */
#define SETTLE_TRIES	6

static void
settle_wait(int try)
{
	struct timespec ts = { 0, 0 };

	if (try < 2) {
		sched_yield();
		return;
	}
	ts.tv_nsec = 1000000L << (2 * (try - 2));	/* 1, 4, 16, 64 ms */
	nanosleep(&ts, NULL);
}

/*
 * On a live heap a slab can look broken for an instant: a claim between
 * our read of a bitmap word and of a side entry, a stale claimer's bits
 * that it is about to undo.  A real breakage is stable, so a slab is only
 * reported when it fails several reads in a row.
 */
static int
check_slab_settled(const struct shm_seg *seg, uint64_t s, uint32_t cls,
    int looks, struct shm_report *r, char *err, size_t errlen)
{
	struct shm_report part;
	int tries, rc = 0;

	for (tries = 0; tries < looks; tries++) {
		memset(&part, 0, sizeof(part));
		if ((rc = check_small(seg, s, cls, &part, err, errlen)) == 0)
			break;
		if (tries + 1 < looks)
			settle_wait(tries);
	}
	if (rc != 0)
		return rc;
	r->blocks_live += part.blocks_live;
	r->blocks_orphaned += part.blocks_orphaned;
	r->bytes_requested += part.bytes_requested;
	r->bytes_live += part.bytes_live;
	return 0;
}

/*
 * Whether the page holding slab s's bitmap is in memory.  The bitmaps of
 * slabs never put to use are holes in the segment, and reading a hole
 * through a shared mapping allocates a page: on a full /dev/shm that is
 * SIGBUS, and on a big, sparse heap a check would commit every bitmap.  A
 * hole reads as zeros, so a free slab whose bitmap page is not in memory
 * has no bit set and there is nothing to check.  (A page that is swapped
 * out is passed over too; later checks see it again.)  mincore() is asked
 * for RESID_PAGES pages at a time.
 */
#define RESID_PAGES	4096

struct resid {
	uintptr_t base;		/* the bitmaps' first page */
	uint64_t pages;		/* pages of bitmaps */
	uint64_t first, n;	/* pages vec describes */
	size_t page;
	unsigned char vec[RESID_PAGES];
};

static void
resid_init(const struct shm_seg *seg, struct resid *r)
{
	long pg = sysconf(_SC_PAGESIZE);

	r->page = pg > 0 ? (size_t)pg : 4096;
	r->base = (uintptr_t)seg->bitmaps & ~(uintptr_t)(r->page - 1);
	r->pages = ((uintptr_t)slab_bitmap(seg, seg->nslabs) - r->base +
	    r->page - 1) / r->page;
	r->first = r->n = 0;
}

static int
bitmap_resident(const struct shm_seg *seg, uint64_t s, struct resid *r)
{
	uint64_t p = ((uintptr_t)slab_bitmap(seg, s) - r->base) / r->page;

	if (p < r->first || p >= r->first + r->n) {
		r->first = p;
		r->n = r->pages - p < RESID_PAGES ? r->pages - p : RESID_PAGES;
		if (mincore((void *)(r->base + p * r->page), r->n * r->page,
		    r->vec) == -1) {
			r->n = 0;
			return 1;	/* cannot tell: read it */
		}
	}
	return r->vec[p - r->first] & 1;
}

static int
free_slab_settled(const struct shm_seg *seg, uint64_t s, int looks)
{
	int tries;

	for (tries = 0; tries < looks; tries++) {
		if (slab_empty(seg, s))
			return 1;
		if (tries + 1 < looks)
			settle_wait(tries);
	}
	return 0;
}

/*
 * One position of the slab table: a free slab, a small slab, a whole
 * extent (*next skips its tails).  Fills r only on success.
 */
static int
check_slab(const struct shm_seg *seg, uint64_t s, uint64_t *hwm,
    struct resid *res, int looks, struct shm_report *r, uint64_t *next,
    char *err, size_t errlen)
{
	const struct shm_slab *sl = &seg->slabs[s];
	uint64_t t, n, h;
	uint32_t w, st;
	int rc;

	*next = s + 1;
	w = atomic_load(&((struct shm_slab *)sl)->word);
	st = SHM_SLAB_STATE(w);
	/* The daemon raises the mark before it puts a slab to use: a slab
	 * seen in use is below the mark read after it. */
	if (st != SHM_FREE && s >= *hwm)
		*hwm = atomic_load(&((struct shm_super *)seg->sb)->slab_hwm);
	if (st != SHM_FREE && s >= *hwm)
		FAIL("slab %" PRIu64 " is in use above the high-water mark %"
		    PRIu64, s, *hwm);
	if (SHM_SLAB_OWNER(w) > SHM_LEASES || (SHM_SLAB_OWNER(w) != 0 &&
	    st != SHM_SMALL && st != SHM_RECLAIMING))
		FAIL("slab %" PRIu64 " (state %u) names owner %u", s, st,
		    SHM_SLAB_OWNER(w));
	switch (st) {
	case SHM_FREE:
		if (SHM_SLAB_LEASE(w) != 0)
			FAIL("free slab %" PRIu64 " is leased", s);
		/* Reading a bitmap page nobody committed would make tmpfs
		 * allocate it (SIGBUS on a full /dev/shm): above the
		 * high-water mark nothing was ever used, and below it only
		 * resident pages can hold a claim. */
		if (s < *hwm && bitmap_resident(seg, s, res) &&
		    !free_slab_settled(seg, s, looks))
			FAIL("free slab %" PRIu64 " has claimed blocks", s);
		r->slabs_free++;
		return 0;
	case SHM_RECLAIMING:
		/* Still small until the daemon decides, which a crash can
		 * leave to start-up: the owner's claim may have landed. */
		if (SHM_SLAB_LEASE(w) != 0)
			FAIL("slab %" PRIu64 " is leased while reclaimed", s);
		/* FALLTHROUGH */
	case SHM_SMALL:
		if (SHM_SLAB_LEASE(w) != 0 &&
		    SHM_SLAB_OWNER(w) != SHM_SLAB_LEASE(w))
			FAIL("slab %" PRIu64 " is leased to record %u but owned "
			    "by %u", s, SHM_SLAB_LEASE(w) - 1u,
			    SHM_SLAB_OWNER(w));
		if (SHM_SLAB_CLS(w) >= SHM_NCLASSES)
			FAIL("slab %" PRIu64 " has class %u", s,
			    SHM_SLAB_CLS(w));
		if (SHM_SLAB_LEASE(w) > SHM_LEASES)
			FAIL("slab %" PRIu64 " names lease %u", s,
			    SHM_SLAB_LEASE(w));
		n = slab_class_slabs[SHM_SLAB_CLS(w)];
		if (n > seg->nslabs - s)
			FAIL("span at slab %" PRIu64 " runs %" PRIu64 " slabs "
			    "past the end", s, n);
		for (t = s + 1; t < s + n; t++) {
			if (SHM_SLAB_STATE(atomic_load(&((struct shm_slab *)
			    &seg->slabs[t])->word)) != SHM_SPAN_TAIL ||
			    seg->slabs[t].run != s)
				FAIL("span at slab %" PRIu64 ": slab %" PRIu64
				    " is not its tail", s, t);
		}
		if ((rc = check_slab_settled(seg, s, SHM_SLAB_CLS(w), looks, r,
		    err, errlen)) != 0)
			return rc;
		r->slabs_small += n;
		*next = s + n;
		return 0;
	case SHM_LARGE_HEAD:
		n = sl->run;
		if (n == 0 || n > seg->nslabs - s)
			FAIL("extent at slab %" PRIu64 " runs %" PRIu64
			    " slabs past the end", s, n);
		if (sl->req > n * SHM_SLAB_SIZE)
			FAIL("extent at slab %" PRIu64 " records %" PRIu64
			    " bytes in %" PRIu64 " slabs", s, sl->req, n);
		for (t = s + 1; t < s + n; t++) {
			w = atomic_load(&((struct shm_slab *)
			    &seg->slabs[t])->word);
			if (SHM_SLAB_STATE(w) != SHM_LARGE_TAIL ||
			    seg->slabs[t].run != s)
				FAIL("extent at slab %" PRIu64 ": slab %"
				    PRIu64 " is not its tail", s, t);
		}
		r->slabs_large += n;
		r->large_blocks++;
		r->blocks_live++;
		r->bytes_requested += sl->req;
		r->bytes_live += n * SHM_SLAB_SIZE;
		*next = s + n;
		return 0;
	case SHM_LARGE_TAIL:
		/* On a live heap the head may have turned HEAD after we
		 * passed it (an extent is made tails first): then this tail
		 * is accounted for, as the walk will not see it again. */
		h = sl->run;
		if (h < s && SHM_SLAB_STATE(atomic_load(&((struct shm_slab *)
		    &seg->slabs[h])->word)) == SHM_LARGE_HEAD &&
		    h + seg->slabs[h].run > s)
			return 0;
		FAIL("slab %" PRIu64 " is an extent tail without a head", s);
	case SHM_SPAN_TAIL:
		/* As for extents: a span made after the walk passed its
		 * head. */
		if (slab_span_head(seg, s) != UINT64_MAX)
			return 0;
		FAIL("slab %" PRIu64 " is a span tail without a head", s);
	default:
		FAIL("slab %" PRIu64 " has state %u", s, st);
	}
}

/* looks: how many times a slab that looks broken is read again (with
 * growing waits between) before it is reported; 1 for a still heap. */
static int
check_heap(const struct shm_seg *seg, struct shm_report *rep, int looks,
    char *err, size_t errlen)
{
	struct shm_report tmp, part, *r = rep != NULL ? rep : &tmp;
	struct resid res;
	uint64_t s, next, hwm;
	int rc, i, tries;

	memset(r, 0, sizeof(*r));
	if ((rc = seg_super_check(seg->sb, seg->base, seg->size, err,
	    errlen)) != 0)
		return -EUCLEAN;
	hwm = atomic_load(&((struct shm_super *)seg->sb)->slab_hwm);
	if (hwm > seg->nslabs)
		FAIL("high-water mark %" PRIu64 " is past the %" PRIu64
		    " slabs", hwm, seg->nslabs);
	resid_init(seg, &res);
	for (i = 0; i < SHM_ROOTS; i++) {
		if (seg->roots[i].name[0] == '\0')
			continue;
		if (!shm_root_name_ok(seg->roots[i].name))
			FAIL("root %d has a malformed name", i);
		r->roots++;
	}
	for (s = 0; s < seg->nslabs; s = next) {
		/* A live heap changes under the walk; only a breakage that
		 * stays put through several looks is reported. */
		for (tries = 0;; tries++) {
			memset(&part, 0, sizeof(part));
			rc = check_slab(seg, s, &hwm, &res, looks, &part,
			    &next, err, errlen);
			if (rc == 0 || tries + 1 >= (looks > 1 ? 4 : 1))
				break;
			settle_wait(tries);
		}
		if (rc != 0)
			return rc;
		r->slabs_free += part.slabs_free;
		r->slabs_small += part.slabs_small;
		r->slabs_large += part.slabs_large;
		r->blocks_live += part.blocks_live;
		r->blocks_orphaned += part.blocks_orphaned;
		r->bytes_requested += part.bytes_requested;
		r->bytes_live += part.bytes_live;
		r->large_blocks += part.large_blocks;
	}
	return 0;
}

int
shm_check(const struct shm_seg *seg, struct shm_report *rep, char *err,
    size_t errlen)
{
	return check_heap(seg, rep, SETTLE_TRIES, err, errlen);
}

int
shm_check_still(const struct shm_seg *seg, struct shm_report *rep, char *err,
    size_t errlen)
{
	return check_heap(seg, rep, 1, err, errlen);
}

/*
 * The heap's figures, per class and in all; what a live status and an
 * offline inspect report.  Reads only.
 */
void
shm_stats(const struct shm_seg *seg, struct shm_stats *st)
{
	uint64_t s, req;
	uint32_t w, cls, used, claimed;
	int i;

	memset(st, 0, sizeof(*st));
	for (s = 0; s < seg->nslabs; s++) {
		w = atomic_load(&((struct shm_slab *)&seg->slabs[s])->word);
		switch (SHM_SLAB_STATE(w)) {
		case SHM_SMALL:
			cls = SHM_SLAB_CLS(w);
			if (cls >= SHM_NCLASSES)
				break;
			used = slab_used(seg, s, cls, &req);
			claimed = slab_claimed(seg, s);
			if (claimed < used || claimed > slab_class_nblocks[cls])
				claimed = used;	/* a claim in flight */
			st->cls[cls].slabs++;
			st->cls[cls].used += used;
			st->cls[cls].free += slab_class_nblocks[cls] - claimed;
			st->cls[cls].cached += claimed - used;
			st->cls[cls].req += req;
			st->slabs_used += slab_class_slabs[cls];
			break;
		case SHM_LARGE_HEAD:
			if (seg->slabs[s].run == 0 ||
			    seg->slabs[s].run > seg->nslabs - s)
				break;
			st->large_blocks++;
			st->large_bytes += (uint64_t)seg->slabs[s].run <<
			    SHM_SLAB_SHIFT;
			st->large_req += seg->slabs[s].req;
			st->slabs_used += seg->slabs[s].run;
			s += seg->slabs[s].run - 1;
			break;
		default:
			break;
		}
	}
	st->blocks = st->large_blocks;
	st->req = st->large_req;
	for (i = 0; i < SHM_NCLASSES; i++) {
		st->blocks += st->cls[i].used;
		st->req += st->cls[i].req;
		st->cached += st->cls[i].cached;
	}
	for (i = 0; i < SHM_ROOTS; i++)
		if (seg->roots[i].name[0] != '\0')
			st->roots++;
	st->slabs_total = seg->nslabs;
	/* A scribbled slab table can claim more than there is. */
	st->slabs_free = st->slabs_used < seg->nslabs ?
	    seg->nslabs - st->slabs_used : 0;
	st->bytes_in_use = st->slabs_used << SHM_SLAB_SHIFT;
}
