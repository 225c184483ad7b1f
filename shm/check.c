/* SPDX-License-Identifier: MIT */
/*
 * check.c: shm_check(), the validator of the invariants I1 .. I8 in shm.h.
 *
 * It reads and never writes, so it runs on a live heap (the daemon's verify
 * request), on an image loaded into scratch memory (aclheapctl verify IMAGE)
 * and in the tests after every crash.  On a live heap a slab that looks
 * broken is read again before it is reported, and I5 is counted, not
 * checked; on a still one every check is strict (shm.h says why).
 */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

/* Every message names the invariant of shm.h it reports. */
#define FAIL(inv, ...) do {					\
	int n_ = snprintf(err, errlen, "%s: ", inv);		\
	if (n_ >= 0 && (size_t)n_ < errlen)			\
		snprintf(err + n_, errlen - (size_t)n_, __VA_ARGS__); \
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

/* FNV-1a of a root's name: the daemon's index and the duplicate check.
 * It reads no further than a record's name, NUL or not. */
uint32_t
shm_root_hash(const char *n)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i <= SHM_ROOT_NAME_MAX && n[i] != '\0'; i++)
		h = (h ^ (uint8_t)n[i]) * 16777619u;
	return h;
}

/*
 * I8: the roots in use, each well named, no name twice (a set of the
 * names seen, open addressing, twice the roots' count in size).  Records
 * at and above roots_used are not read: they are not the heap's.
 */
static int
check_roots(const struct shm_seg *seg, struct shm_report *r, char *err,
    size_t errlen)
{
	const struct shm_root *rt;
	uint64_t n = atomic_load(&seg->sb->roots_used), i, cap, k;
	uint32_t *set, first;

	if (n > seg->roots_max)
		FAIL("I8", "%" PRIu64 " roots in use, the table has room for %"
		    PRIu64, n, seg->roots_max);
	for (cap = 16; cap < 2 * n; cap <<= 1)
		;
	if ((set = calloc(cap, sizeof(*set))) == NULL) {
		snprintf(err, errlen, "no memory to check the roots");
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		rt = &seg->roots[i];
		if (!shm_root_name_ok(rt->name)) {
			free(set);
			FAIL("I8", "root %" PRIu64 " has a malformed name", i);
		}
		if (rt->len != strlen(rt->name)) {
			free(set);
			FAIL("I8", "root %" PRIu64 " says its name is %u bytes, "
			    "it is %zu", i, rt->len, strlen(rt->name));
		}
		for (k = shm_root_hash(rt->name) & (cap - 1); set[k] != 0;
		    k = (k + 1) & (cap - 1))
			if (strcmp(seg->roots[set[k] - 1].name, rt->name) == 0) {
				/* The message names it after the set is gone. */
				first = set[k] - 1;
				free(set);
				FAIL("I8", "roots %u and %" PRIu64 " have the "
				    "same name", first, i);
			}
		set[k] = (uint32_t)i + 1;
	}
	free(set);
	r->roots = n;
	return 0;
}

/*
 * The private sets the lease records list (I5), sorted by slab: read once
 * at the start of a check.  On a live heap they move while the walk goes
 * on, which is why a block found in none is only counted there.
 */
struct listed {
	uint32_t rec, slab, word;
	uint64_t mask;
};

struct lease_index {
	int n;
	struct listed e[];	/* one per record below lease_hwm */
};

static int
listed_cmp(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;

	if (x->slab != y->slab)
		return x->slab < y->slab ? -1 : 1;
	return x->rec < y->rec ? -1 : x->rec > y->rec;
}

static void
lease_index_build(const struct shm_seg *seg, struct lease_index *li,
    uint32_t n)
{
	struct shm_lease *l;
	uint64_t mask;
	int i;

	li->n = 0;
	for (i = 0; i < (int)n; i++) {
		l = (struct shm_lease *)&seg->leases[i];
		if (l->owner_pid == 0 ||
		    (mask = atomic_load(&l->mask)) == 0)
			continue;
		li->e[li->n].rec = (uint32_t)i;
		li->e[li->n].slab = atomic_load(&l->set_slab);
		li->e[li->n].word = atomic_load(&l->word);
		li->e[li->n].mask = mask;
		li->n++;
	}
	qsort(li->e, (size_t)li->n, sizeof(li->e[0]), listed_cmp);
}

/* The blocks of slab s that some record lists, per bitmap word. */
static void
lease_index_slab(const struct lease_index *li, uint64_t s,
    uint64_t listed[SHM_BITMAP_WORDS])
{
	int lo = 0, hi = li->n, mid;

	memset(listed, 0, SHM_BITMAP_WORDS * sizeof(listed[0]));
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (li->e[mid].slab < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < li->n && li->e[lo].slab == s; lo++)
		if (li->e[lo].word < SHM_BITMAP_WORDS)
			listed[li->e[lo].word] |= li->e[lo].mask;
}

/*
 * I5, the strict half, for a still heap: every block a record lists lies
 * in a small slab, among its class's blocks, claimed and not live.  (On a
 * live heap a record lists its intent before the bits are taken, and a
 * set being given back after they are cleared: not checked there.)
 */
static int
check_listed(const struct shm_seg *seg, const struct lease_index *li,
    char *err, size_t errlen)
{
	const struct listed *e;
	uint64_t bits, m;
	uint64_t w;
	uint32_t cls, i;
	int k;

	for (k = 0; k < li->n; k++) {
		e = &li->e[k];
		if (e->slab >= seg->nslabs || e->word >= SHM_BITMAP_WORDS)
			FAIL("I5", "lease record %u lists word %u of slab %u, "
			    "outside the heap", e->rec, e->word, e->slab);
		w = atomic_load(&((struct shm_slab *)
		    &seg->slabs[e->slab])->word);
		cls = SHM_SLAB_CLS(w);
		if ((SHM_SLAB_STATE(w) != SHM_SMALL &&
		    SHM_SLAB_STATE(w) != SHM_RECLAIMING) || cls >= SHM_NCLASSES)
			FAIL("I5", "lease record %u lists blocks of slab %u, "
			    "which is not small", e->rec, e->slab);
		if (e->mask & ~slab_word_first(slab_ready(seg, e->slab, cls),
		    e->word))
			FAIL("I5", "lease record %u lists blocks of slab %u "
			    "past its %u ready blocks", e->rec, e->slab,
			    slab_ready(seg, e->slab, cls));
		bits = atomic_load(&slab_bitmap(seg, e->slab)[e->word]);
		for (m = e->mask; m != 0; m &= m - 1) {
			i = e->word * 64 + (uint32_t)__builtin_ctzll(m);
			if (!(bits & (m & -m)))
				FAIL("I5", "lease record %u lists block %u of "
				    "slab %u, which is not claimed", e->rec, i,
				    e->slab);
			if (slab_side_load(slab_side_base(seg, e->slab, cls),
			    cls, i) != 0)
				FAIL("I5", "lease record %u lists block %u of "
				    "slab %u, which is live", e->rec, i,
				    e->slab);
		}
	}
	return 0;
}

/* How a check goes: how often a slab that looks broken is read again
 * before it is reported (1: a still heap, whose checks are strict). */
struct walk {
	int looks;
	uint64_t hwm;
	uint32_t lease_hwm;	/* records that may be named: [0, this) */
	const struct lease_index *li;
};

/* Whether a slab word may name lease record + 1 v: none, or one below the
 * lease high-water mark.  The daemon raises the mark before it names a
 * record, so a name seen above the mark read at the start is checked
 * again against the mark read after it. */
static int
lease_named_ok(const struct shm_seg *seg, struct walk *wk, uint32_t v)
{
	if (v <= wk->lease_hwm)
		return 1;
	wk->lease_hwm = seg_lease_hwm(seg);
	return v <= wk->lease_hwm;
}

/*
 * I2 (blocks past the ready ones), I3 and I5 for a small slab or span head s
 * of class cls.  I5: a claimed block that is not live is in a record's
 * private set, or an orphan (a kill between the two steps of an
 * allocation or a free, client/fast.c): counted on a live heap, an error
 * on a still one, which image_settle() has rid of orphans.
 */
static int
check_small(const struct shm_seg *seg, uint64_t s, uint32_t cls,
    const struct walk *wk, struct shm_report *r, char *err, size_t errlen)
{
	_Atomic uint64_t *bm = slab_bitmap(seg, s);
	uintptr_t sd = slab_side_base(seg, s, cls);
	uint32_t cs = slab_class_size[cls], nb = slab_class_nblocks[cls], i;
	uint32_t room = slab_side_room(cls), side, ready;
	uint64_t bits, listed[SHM_BITMAP_WORDS];

	ready = atomic_load_explicit(&((struct shm_slab *)&seg->slabs[s])->ready,
	    memory_order_acquire);
	if (ready == 0 || ready > nb)
		FAIL("I2", "slab %" PRIu64 " (class %u) has %u of its %u "
		    "blocks ready", s, cs, ready, nb);
	lease_index_slab(wk->li, s, listed);
	for (i = 0; i < SHM_MAX_BLOCKS; i++) {
		bits = atomic_load_explicit(&bm[i / 64], memory_order_relaxed);
		/* Past the ready blocks the side entries may lie in a hole,
		 * which a read would commit: their bits say enough. */
		side = i < room && (i < ready || i >= nb) ?
		    slab_side_load(sd, cls, i) : 0;
		if (i >= ready && i < nb) {
			if ((bits >> (i % 64)) & 1)
				FAIL("I2", "slab %" PRIu64 " (class %u) has "
				    "bit %u set past its %u ready blocks", s,
				    cs, i, ready);
			continue;
		}
		if (i >= nb) {
			if ((bits >> (i % 64)) & 1)
				FAIL("I2", "slab %" PRIu64 " (class %u) has "
				    "bit %u set past its %u blocks", s, cs, i,
				    nb);
			if (side != 0)
				FAIL("I2", "slab %" PRIu64 " has a side entry "
				    "at %u past its %u blocks", s, i, nb);
			continue;
		}
		if (side != 0 && !((bits >> (i % 64)) & 1))
			FAIL("I3", "slab %" PRIu64 " block %u is live without "
			    "its bit", s, i);
		if (side > cs + 1)
			FAIL("I3", "slab %" PRIu64 " block %u records %u bytes "
			    "of slack in a %u-byte class", s, i, side - 1u, cs);
		if (side != 0) {
			r->blocks_live++;
			r->bytes_requested += cs - (side - 1u);
			r->bytes_live += cs;
			continue;
		}
		if (!((bits >> (i % 64)) & 1))
			continue;
		r->blocks_orphaned++;
		if ((listed[i / 64] >> (i % 64)) & 1)
			continue;
		r->blocks_unlisted++;
		if (wk->looks == 1)
			FAIL("I5", "slab %" PRIu64 " block %u is claimed, not "
			    "live, and in no lease record's private set", s, i);
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
    const struct walk *wk, struct shm_report *r, char *err, size_t errlen)
{
	struct shm_report part;
	int tries, rc = 0;

	for (tries = 0; tries < wk->looks; tries++) {
		memset(&part, 0, sizeof(part));
		if ((rc = check_small(seg, s, cls, wk, &part, err,
		    errlen)) == 0)
			break;
		if (tries + 1 < wk->looks)
			settle_wait(tries);
	}
	if (rc != 0)
		return rc;
	r->blocks_live += part.blocks_live;
	r->blocks_orphaned += part.blocks_orphaned;
	r->blocks_unlisted += part.blocks_unlisted;
	r->bytes_requested += part.bytes_requested;
	r->bytes_live += part.bytes_live;
	return 0;
}

/*
 * Whether the page holding slab s's bitmap (or side line) is in memory.
 * The bitmaps and side lines of slabs never put to use are holes in the
 * segment, and reading a hole through a shared mapping allocates a page:
 * on a full /dev/shm that is SIGBUS, and on a big, sparse heap a check
 * would commit every bitmap.  A hole reads as zeros, so a free slab whose
 * page is not in memory has nothing set and there is nothing to check.
 * (A page that is swapped out is passed over too; later checks see it
 * again.)  mincore() is asked for RESID_PAGES pages at a time.
 */
#define RESID_PAGES	4096

struct resid {
	uintptr_t first_byte;	/* slab 0's bitmap or side line */
	size_t stride;		/* bytes per slab */
	uintptr_t base;		/* the region's first page */
	uint64_t pages;		/* pages of the region */
	uint64_t first, n;	/* pages vec describes */
	size_t page;
	unsigned char vec[RESID_PAGES];
};

static void
resid_init(const struct shm_seg *seg, struct resid *r, uintptr_t first_byte,
    size_t stride)
{
	long pg = sysconf(_SC_PAGESIZE);

	r->page = pg > 0 ? (size_t)pg : 4096;
	r->first_byte = first_byte;
	r->stride = stride;
	r->base = first_byte & ~(uintptr_t)(r->page - 1);
	r->pages = (first_byte + seg->nslabs * stride - r->base +
	    r->page - 1) / r->page;
	r->first = r->n = 0;
}

static int
resident(uint64_t s, struct resid *r)
{
	uint64_t p = (r->first_byte + s * r->stride - r->base) / r->page;

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
side_line_zero(const struct shm_seg *seg, uint64_t s)
{
	_Atomic uint16_t *sd = slab_sides(seg, s);
	unsigned i;

	for (i = 0; i < SHM_SIDE_BYTES / 2; i++)
		if (atomic_load_explicit(&sd[i], memory_order_relaxed) != 0)
			return 0;
	return 1;
}

/* The slab table's walk: the resident pages, found out as it goes. */
struct pages {
	struct resid bm, sd;
};

/*
 * I1 for free slab s: no bit set, and its side line all zeros (a slab is
 * only freed empty, and a free takes the side entry before the bit).  The
 * side entries a small class keeps in the slab itself are data, anything
 * at all, once the slab is free: the daemon clears them when it makes the
 * slab again.  Reading a page nobody committed would make tmpfs allocate
 * it: above the high-water mark nothing was ever used, and below it only
 * resident pages can hold anything.
 */
static int
check_free(const struct shm_seg *seg, uint64_t s, const struct walk *wk,
    struct pages *pg, char *err, size_t errlen)
{
	int tries, bm_ok = 0, sd_ok = 0;

	if (s >= wk->hwm)
		return 0;
	for (tries = 0; tries < wk->looks; tries++) {
		bm_ok = !resident(s, &pg->bm) || slab_empty(seg, s);
		sd_ok = !resident(s, &pg->sd) || side_line_zero(seg, s);
		if (bm_ok && sd_ok)
			return 0;
		if (tries + 1 < wk->looks)
			settle_wait(tries);
	}
	if (!bm_ok)
		FAIL("I1", "free slab %" PRIu64 " has claimed blocks", s);
	FAIL("I1", "free slab %" PRIu64 " has side entries", s);
}

/* 1 if a session's plan in progress frees a block of small slab s, and so
 * holds it (the daemon's gate). */
static int
gated(const struct shm_seg *seg, uint64_t s)
{
	const struct shm_session *ss;
	uint64_t ref;
	int i;

	for (i = 0; i < SHM_SESSIONS; i++) {
		ss = &seg->sessions[i];
		if (atomic_load((_Atomic uint32_t *)&ss->state) !=
		    SHM_SESSION_INTENT)
			continue;
		if (ss->kind == SHM_KIND_FREE)
			ref = ss->arg[0];
		else if (ss->kind == SHM_KIND_REALLOC)
			ref = ss->arg[1];
		else
			continue;
		if (!(ref & SHM_REF_LARGE) && SHM_REF_SLAB(ref) == s)
			return 1;
	}
	return 0;
}

/* I2 for a small slab (or span head) s and I6 for its word, then its
 * blocks. */
static int
check_small_slab(const struct shm_seg *seg, uint64_t s, uint64_t w,
    struct walk *wk, struct shm_report *r, uint64_t *next, char *err,
    size_t errlen)
{
	uint32_t cls = SHM_SLAB_CLS(w), lease = SHM_SLAB_LEASE(w);
	uint64_t t, n;
	int rc;

	/* RECLAIMING is still small until the daemon decides, which a crash
	 * can leave to start-up: the owner's claim may have landed. */
	if (SHM_SLAB_STATE(w) == SHM_RECLAIMING && lease != 0)
		FAIL("I6", "slab %" PRIu64 " is leased while reclaimed", s);
	/* Owner 0 on a leased slab: the daemon holds it for a free of one
	 * of its blocks (the gate, daemon/alloc.c), which a crash can leave
	 * to start-up; only while a session's plan says so. */
	if (lease != 0 && SHM_SLAB_OWNER(w) != lease &&
	    (SHM_SLAB_OWNER(w) != 0 || !gated(seg, s)))
		FAIL("I6", "slab %" PRIu64 " is leased to record %u but owned "
		    "by %u", s, lease - 1u, SHM_SLAB_OWNER(w));
	if (cls >= SHM_NCLASSES)
		FAIL("I2", "slab %" PRIu64 " has class %u", s, cls);
	if (!lease_named_ok(seg, wk, lease))
		FAIL("I6", "slab %" PRIu64 " names lease %u of %u handed out", s,
		    lease, wk->lease_hwm);
	n = slab_class_slabs[cls];
	if (n > seg->nslabs - s)
		FAIL("I2", "span at slab %" PRIu64 " runs %" PRIu64 " slabs "
		    "past the end", s, n);
	for (t = s + 1; t < s + n; t++)
		if (SHM_SLAB_STATE(atomic_load(&((struct shm_slab *)
		    &seg->slabs[t])->word)) != SHM_SPAN_TAIL ||
		    seg->slabs[t].run != s)
			FAIL("I2", "span at slab %" PRIu64 ": slab %" PRIu64
			    " is not its tail", s, t);
	if ((rc = check_slab_settled(seg, s, cls, wk, r, err, errlen)) != 0)
		return rc;
	r->slabs_small += n;
	*next = s + n;
	return 0;
}

/* I4 for an extent whose head is s. */
static int
check_extent(const struct shm_seg *seg, uint64_t s, struct shm_report *r,
    uint64_t *next, char *err, size_t errlen)
{
	const struct shm_slab *sl = &seg->slabs[s];
	uint64_t t, n = sl->run;

	if (n == 0 || n > seg->nslabs - s)
		FAIL("I4", "extent at slab %" PRIu64 " runs %" PRIu64
		    " slabs past the end", s, n);
	if (sl->req > n * SHM_SLAB_SIZE)
		FAIL("I4", "extent at slab %" PRIu64 " records %" PRIu64
		    " bytes in %" PRIu64 " slabs", s, sl->req, n);
	for (t = s + 1; t < s + n; t++)
		if (SHM_SLAB_STATE(atomic_load(&((struct shm_slab *)
		    &seg->slabs[t])->word)) != SHM_LARGE_TAIL ||
		    seg->slabs[t].run != s)
			FAIL("I4", "extent at slab %" PRIu64 ": slab %" PRIu64
			    " is not its tail", s, t);
	r->slabs_large += n;
	r->large_blocks++;
	r->blocks_live++;
	r->bytes_requested += sl->req;
	r->bytes_live += n * SHM_SLAB_SIZE;
	*next = s + n;
	return 0;
}

/*
 * One position of the slab table: a free slab, a small slab, a whole
 * extent (*next skips its tails).  Fills r only on success.
 */
static int
check_slab(const struct shm_seg *seg, uint64_t s, struct walk *wk,
    struct pages *pg, struct shm_report *r, uint64_t *next, char *err,
    size_t errlen)
{
	const struct shm_slab *sl = &seg->slabs[s];
	uint64_t h;
	uint64_t w;
	uint32_t st;

	*next = s + 1;
	w = atomic_load(&((struct shm_slab *)sl)->word);
	st = SHM_SLAB_STATE(w);
	/* The daemon raises the mark before it puts a slab to use: a slab
	 * seen in use is below the mark read after it. */
	if (st != SHM_FREE && s >= wk->hwm)
		wk->hwm = atomic_load(&((struct shm_super *)seg->sb)->slab_hwm);
	if (st != SHM_FREE && s >= wk->hwm)
		FAIL("I7", "slab %" PRIu64 " is in use above the high-water "
		    "mark %" PRIu64, s, wk->hwm);
	if (!lease_named_ok(seg, wk, SHM_SLAB_OWNER(w)) ||
	    (SHM_SLAB_OWNER(w) != 0 &&
	    st != SHM_SMALL && st != SHM_RECLAIMING))
		FAIL("I6", "slab %" PRIu64 " (state %u) names owner %u", s, st,
		    SHM_SLAB_OWNER(w));
	switch (st) {
	case SHM_FREE:
		if (SHM_SLAB_LEASE(w) != 0)
			FAIL("I6", "free slab %" PRIu64 " is leased", s);
		r->slabs_free++;
		return check_free(seg, s, wk, pg, err, errlen);
	case SHM_RECLAIMING:
	case SHM_SMALL:
		return check_small_slab(seg, s, w, wk, r, next, err, errlen);
	case SHM_LARGE_HEAD:
		return check_extent(seg, s, r, next, err, errlen);
	case SHM_LARGE_TAIL:
		/* On a live heap the head may have turned HEAD after we
		 * passed it (an extent is made tails first): then this tail
		 * is accounted for, as the walk will not see it again. */
		h = sl->run;
		if (h < s && SHM_SLAB_STATE(atomic_load(&((struct shm_slab *)
		    &seg->slabs[h])->word)) == SHM_LARGE_HEAD &&
		    h + seg->slabs[h].run > s)
			return 0;
		FAIL("I4", "slab %" PRIu64 " is an extent tail without a head",
		    s);
	case SHM_SPAN_TAIL:
		/* As for extents: a span made after the walk passed its
		 * head. */
		if (slab_span_head(seg, s) != UINT64_MAX)
			return 0;
		FAIL("I2", "slab %" PRIu64 " is a span tail without a head", s);
	default:
		FAIL("I6", "slab %" PRIu64 " has state %u", s, st);
	}
}

static void
report_add(struct shm_report *r, const struct shm_report *part)
{
	r->slabs_free += part->slabs_free;
	r->slabs_small += part->slabs_small;
	r->slabs_large += part->slabs_large;
	r->blocks_live += part->blocks_live;
	r->blocks_orphaned += part->blocks_orphaned;
	r->blocks_unlisted += part->blocks_unlisted;
	r->bytes_requested += part->bytes_requested;
	r->bytes_live += part->bytes_live;
	r->large_blocks += part->large_blocks;
}

/* The superblock, I7's mark and I8's roots: what the walk relies on. */
static int
check_top(const struct shm_seg *seg, struct walk *wk, struct shm_report *r,
    char *err, size_t errlen)
{
	if (seg_super_check(seg->sb, seg->base, seg->size, seg->max, err,
	    errlen) != 0)
		return -EUCLEAN;
	wk->hwm = atomic_load(&((struct shm_super *)seg->sb)->slab_hwm);
	if (wk->hwm > seg->nslabs)
		FAIL("I7", "high-water mark %" PRIu64 " is past the %" PRIu64
		    " slabs", wk->hwm, seg->nslabs);
	return check_roots(seg, r, err, errlen);
}

/* looks: how many times a slab that looks broken is read again (with
 * growing waits between) before it is reported; 1 for a still heap. */
static int
check_heap(const struct shm_seg *seg, struct shm_report *rep, int looks,
    char *err, size_t errlen)
{
	struct shm_report tmp, part, *r = rep != NULL ? rep : &tmp;
	struct lease_index *li;
	struct pages pg;
	struct walk wk;
	uint64_t s, next;
	uint32_t lease_hwm;
	int rc, tries;

	memset(r, 0, sizeof(*r));
	wk.looks = looks;
	if ((rc = check_top(seg, &wk, r, err, errlen)) != 0)
		return rc;
	lease_hwm = atomic_load(&((struct shm_super *)seg->sb)->lease_hwm);
	if (lease_hwm > seg->nleases)
		FAIL("I6", "lease high-water mark %u is past the %u records",
		    lease_hwm, seg->nleases);
	/* Records at or above the mark were never handed out, and their
	 * pages may be holes: not read (reading would commit them). */
	wk.lease_hwm = lease_hwm;
	if ((li = malloc(sizeof(*li) + lease_hwm * sizeof(li->e[0]))) ==
	    NULL) {
		snprintf(err, errlen, "no memory to check the heap");
		return -ENOMEM;
	}
	lease_index_build(seg, li, lease_hwm);
	wk.li = li;
	if (looks == 1 && (rc = check_listed(seg, li, err, errlen)) != 0)
		goto out;
	resid_init(seg, &pg.bm, (uintptr_t)seg->bitmaps, SHM_BITMAP_BYTES);
	resid_init(seg, &pg.sd, (uintptr_t)seg->sides, SHM_SIDE_BYTES);
	for (s = 0; s < seg->nslabs; s = next) {
		/* A live heap changes under the walk; only a breakage that
		 * stays put through several looks is reported. */
		for (tries = 0;; tries++) {
			memset(&part, 0, sizeof(part));
			rc = check_slab(seg, s, &wk, &pg, &part, &next, err,
			    errlen);
			if (rc == 0 || tries + 1 >= (looks > 1 ? 4 : 1))
				break;
			settle_wait(tries);
		}
		if (rc != 0)
			goto out;
		report_add(r, &part);
	}
out:
	free(li);
	return rc;
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
	uint64_t w;
	uint32_t cls, used, claimed;
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
	st->roots = atomic_load(&seg->sb->roots_used);
	st->slabs_total = seg->nslabs;
	/* A scribbled slab table can claim more than there is. */
	st->slabs_free = st->slabs_used < seg->nslabs ?
	    seg->nslabs - st->slabs_used : 0;
	st->bytes_in_use = st->slabs_used << SHM_SLAB_SHIFT;
}
