/* SPDX-License-Identifier: MIT */
/*
 * heap.c: the daemon's allocator policy on top of shm/'s operations.
 *
 * Small requests (up to 8 KiB) take a block of their size class from a slab
 * of that class; the daemon keeps one current slab per class for requests
 * that arrive over the socket and leases others to clients' fast paths.
 * Larger requests take whole slabs as an extent, first fit in the free-slab
 * bitmap.  Memory is committed before it is handed out and punched back when
 * an extent or an emptied slab is freed.
 *
 * While a checkpoint streams slabs to disk (heap->frozen), no slab changes
 * state: freed extents wait in limbo and empty slabs are not reclaimed, so
 * the slab table copied at the start of the checkpoint stays true for the
 * slabs it writes.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"

#define DATA_OFF(h, s)	((uint64_t)((h)->seg.data - (h)->seg.base) + \
			    ((uint64_t)(s) << SHM_SLAB_SHIFT))

static inline int
free_test(const struct heap *h, uint64_t s)
{
	return (h->free_map[s / 64] >> (s % 64)) & 1;
}

/* A slab joins the free pool.  Once only, even when a slab table that a
 * client scribbled on names it twice: nfree counts bits. */
static inline void
free_set(struct heap *h, uint64_t s)
{
	if (free_test(h, s))
		return;
	h->free_map[s / 64] |= UINT64_C(1) << (s % 64);
	h->nfree++;
	if (s / 64 < h->free_hint)
		h->free_hint = s / 64;
}

/* A slab leaves the free pool.  The high-water mark tells clients how far
 * up the slab table their scans for free blocks need to look. */
static inline void
free_clear(struct heap *h, uint64_t s)
{
	h->free_map[s / 64] &= ~(UINT64_C(1) << (s % 64));
	h->nfree--;
	if (s + 1 > atomic_load_explicit(&h->seg.sb->slab_hwm,
	    memory_order_relaxed))
		atomic_store(&h->seg.sb->slab_hwm, s + 1);
}

static inline int
held_test(const struct heap *h, uint64_t s)
{
	return (h->held_map[s / 64] >> (s % 64)) & 1;
}

static inline void
held_clear(struct heap *h, uint64_t s)
{
	h->held_map[s / 64] &= ~(UINT64_C(1) << (s % 64));
}

/*
 * Debug builds check the free map against what is derived from it, at
 * the points that already walk the slabs (the rebuild, the sweep):
 *
 *   nfree = popcount(free_map),  no free bit at or past nslabs,
 *   free_map[w] = 0 for every word w < free_hint
 */
static void
free_map_assert(const struct heap *h)
{
#ifndef NDEBUG
	uint64_t w, n = 0, words = (h->seg.nslabs + 63) / 64;

	for (w = 0; w < words; w++) {
		n += (uint64_t)__builtin_popcountll(h->free_map[w]);
		assert(w >= h->free_hint || h->free_map[w] == 0);
	}
	assert(n == h->nfree);
	assert(h->seg.nslabs % 64 == 0 || words == 0 ||
	    h->free_map[words - 1] >> (h->seg.nslabs % 64) == 0);
#else
	(void)h;
#endif
}

static uint64_t
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

#define PAGE	SHM_PAGE

/*
 * fallocate() over [off, off + len) of the segment.  When /dev/shm is
 * full, slabs clients emptied, and what free slabs hold, go back first,
 * and it is tried once more.
 */
static int
commit_range(struct heap *h, uint64_t off, uint64_t len)
{
	int rc, swept;

	if ((rc = seg_commit(&h->seg, off, len)) != -ENOMEM)
		return rc;
	swept = h->frozen ? 0 : heap_reclaim_sweep(h);
	if (swept == 0 && h->nheld == 0)
		return rc;
	log_info("out of memory for %" PRIu64 " bytes: reclaimed %d slabs, "
	    "gave back the memory of %" PRIu64 " free ones early", len, swept,
	    heap_decay(h, 1));
	return seg_commit(&h->seg, off, len);
}

/*
 * Commits the memory of slabs s .. s+n-1, or of their first len bytes,
 * before they are handed out, so a full /dev/shm is ENOMEM here and never
 * a SIGBUS in a client.  Slabs freed lately still have theirs
 * (heap_hold()): a run made only of them costs no system call, and *whole
 * says the run is committed whole.  Otherwise what they held goes back
 * first, so that past len the run is a hole (ready blocks, shm.h, rest on
 * it).  On failure nothing stays committed.
 */
static int
heap_commit_part(struct heap *h, uint64_t s, uint64_t n, uint64_t len,
    int *whole)
{
	uint64_t t;
	int rc = 0, held = 0;

	for (t = s; t < s + n && held_test(h, t); t++)
		;
	*whole = t == s + n;
	if (!*whole) {
		for (t = s; t < s + n; t++)
			if (held_test(h, t))
				held = 1;
		if (held && len < n << SHM_SLAB_SHIFT)
			seg_decommit(&h->seg, DATA_OFF(h, s),
			    n << SHM_SLAB_SHIFT);
		rc = commit_range(h, DATA_OFF(h, s), len);
	}
	if (rc != 0)
		seg_decommit(&h->seg, DATA_OFF(h, s), n << SHM_SLAB_SHIFT);
	for (t = s; t < s + n; t++)
		held_clear(h, t);
	return rc;
}

static int
heap_commit(struct heap *h, uint64_t s, uint64_t n)
{
	int whole;

	return heap_commit_part(h, s, n, n << SHM_SLAB_SHIFT, &whole);
}

/*
 * How many blocks a new slab of cls starts with ready, and how many an
 * extension adds: pages' worth for a lease (lease_pace()); for the
 * daemon's own slabs a page while the class has none, two pages for each
 * slab it has, the whole slab from eight on; a span always whole.  At
 * least one block.
 */
static uint32_t
ready_step(const struct heap *h, uint32_t cls, uint32_t pages)
{
	uint32_t nb = slab_class_nblocks[cls], n;
	uint64_t bytes = pages != 0 ? pages * PAGE : h->class_n[cls] == 0 ?
	    PAGE : 2 * PAGE * h->class_n[cls];

	if (cls >= SHM_NSMALL)
		return nb;
	n = (uint32_t)(bytes / slab_class_size[cls]);
	return n == 0 ? 1 : n < nb ? n : nb;
}

/*
 * Commits what blocks from .. to-1 of slab s of cls need: their data and,
 * below 1 KiB, the pages of their side entries at the slab's end.  Pages
 * already committed cost fallocate nothing.
 */
static int
ready_commit(struct heap *h, uint64_t s, uint32_t cls, uint32_t from,
    uint32_t to)
{
	uint64_t r[4];
	int rc;

	slab_ready_ranges(cls, from, to, r);
	if ((rc = commit_range(h, DATA_OFF(h, s) + r[0], r[1] - r[0])) != 0 ||
	    r[3] == r[2])
		return rc;
	return commit_range(h, DATA_OFF(h, s) + r[2], r[3] - r[2]);
}

/*
 * Small slab s of cls, full, gets more blocks ready (ready_step() of
 * pages, 0 for the daemon's own measure): their
 * memory committed and their side entries zeroed (a client may have
 * written there), then the count raised.  Raising it any time is safe:
 * claimers read it after announcing a claim, and a block it adds is free.
 * 0, -ENOSPC when the slab is ready whole, or -errno of the commit.
 */
int
heap_slab_extend(struct heap *h, uint64_t s, uint32_t cls, uint32_t pages)
{
	struct shm_seg *seg = &h->seg;
	uint32_t from = slab_ready(seg, s, cls), to, i;
	uintptr_t sd = slab_side_base(seg, s, cls);
	int rc;

	if (from >= slab_class_nblocks[cls])
		return -ENOSPC;
	to = from + ready_step(h, cls, pages);
	if (to > slab_class_nblocks[cls])
		to = slab_class_nblocks[cls];
	if ((rc = ready_commit(h, s, cls, from, to)) != 0)
		return rc;
	for (i = from; i < to && i < slab_side_room(cls); i++)
		slab_side_store(sd, cls, i, 0);
	atomic_store_explicit(&seg->slabs[s].ready, to, memory_order_release);
	h->dirty = 1;
	return 0;
}

/*
 * Free slabs s .. s+n-1 keep their memory for h->decay seconds, as
 * jemalloc's dirty pages do: a slab or extent made there meanwhile costs
 * no fallocate, and a heap that stays smaller gives it back.  With decay
 * 0, or no memory to remember the run, it goes back at once.
 */
static void
heap_hold(struct heap *h, uint64_t s, uint64_t n)
{
	struct heap_held *p;
	uint64_t t;

	if (h->decay == 0)
		goto now;
	if (h->nheld == h->held_cap) {
		uint64_t cap = h->held_cap ? h->held_cap * 2 : 64;

		if ((p = reallocarray(h->held, cap, sizeof(*p))) == NULL)
			goto now;
		h->held = p;
		h->held_cap = cap;
	}
	h->held[h->nheld].s = s;
	h->held[h->nheld].n = n;
	h->held[h->nheld].when = now_s();
	h->nheld++;
	for (t = s; t < s + n; t++)
		h->held_map[t / 64] |= UINT64_C(1) << (t % 64);
	return;
now:
	seg_decommit(&h->seg, DATA_OFF(h, s), n << SHM_SLAB_SHIFT);
}

/*
 * Gives back the memory of slabs that have been free for the decay time
 * (all of them with all set), skipping those reused since.  Returns how
 * many slabs' memory went back.
 */
uint64_t
heap_decay(struct heap *h, int all)
{
	uint64_t now = now_s(), i, t, u, done = 0;
	struct heap_held *d;

	for (i = 0; i < h->nheld; i++) {
		d = &h->held[i];
		if (!all && d->when + h->decay > now)
			break;	/* the list is in time order */
		for (t = d->s; t < d->s + d->n; t = u) {
			for (u = t; u < d->s + d->n && held_test(h, u) &&
			    free_test(h, u); u++)
				held_clear(h, u);
			if (u > t) {
				seg_decommit(&h->seg, DATA_OFF(h, t),
				    (u - t) << SHM_SLAB_SHIFT);
				done += u - t;
			} else
				u++;
		}
	}
	if (i > 0) {
		memmove(h->held, h->held + i, (h->nheld - i) *
		    sizeof(*h->held));
		h->nheld -= i;
	}
	return done;
}

static int
class_add(struct heap *h, uint32_t cls, uint64_t s)
{
	uint32_t *p;

	if (h->class_n[cls] == h->class_cap[cls]) {
		uint32_t cap = h->class_cap[cls] ? h->class_cap[cls] * 2 : 16;

		if ((p = reallocarray(h->class_slabs[cls], cap,
		    sizeof(*p))) == NULL)
			return -ENOMEM;
		h->class_slabs[cls] = p;
		h->class_cap[cls] = cap;
	}
	h->class_slabs[cls][h->class_n[cls]++] = (uint32_t)s;
	return 0;
}

static void
class_remove(struct heap *h, uint32_t cls, uint64_t s)
{
	uint32_t i;

	for (i = 0; i < h->class_n[cls]; i++) {
		if (h->class_slabs[cls][i] == s) {
			h->class_slabs[cls][i] =
			    h->class_slabs[cls][--h->class_n[cls]];
			return;
		}
	}
}

/* Frees the tails of the span whose head s was (its slabs after it that
 * name it), head first having been freed by the caller. */
static uint64_t
span_tails_free(struct heap *h, uint64_t s)
{
	struct shm_seg *seg = &h->seg;
	uint64_t t;

	for (t = s + 1; t < seg->nslabs && t - s < SHM_SPAN_MAX &&
	    SHM_SLAB_STATE(atomic_load(&seg->slabs[t].word)) ==
	    SHM_SPAN_TAIL && seg->slabs[t].run == s; t++) {
		seg->slabs[t].run = 0;
		atomic_store(&seg->slabs[t].word, SHM_SLAB_WORD(SHM_FREE, 0,
		    0));
		free_set(h, t);
	}
	return t - s - 1;
}

/*
 * Rebuilds everything derived from the segment: free map, class lists,
 * lease owners.  Resolves what a crash can leave half done: an owner move,
 * a RECLAIMING slab, lease records of dead processes.  Clients may be
 * running meanwhile (an adopted segment).  It trusts nothing it indexes
 * with: a class or an extent length out of range is -EUCLEAN.
 */
int
heap_rebuild(struct heap *h)
{
	struct shm_seg *seg = &h->seg;
	uint64_t s, t, words = (seg->nslabs_max + 63) / 64;
	uint64_t w;
	uint32_t i;
	int rc;

	/* Sized for the maximum: growth only sets bits (heap_resize()). */
	free(h->free_map);
	free(h->held_map);
	h->held_map = NULL;
	h->nheld = 0;
	if ((h->free_map = calloc(words ? words : 1, 8)) == NULL ||
	    (h->held_map = calloc(words ? words : 1, 8)) == NULL)
		return -ENOMEM;
	h->nfree = 0;
	h->free_hint = 0;
	for (i = 0; i < SHM_NCLASSES; i++) {
		h->class_n[i] = 0;
		h->cur[i] = 0;
		h->cur_hint[i] = 0;
	}
	for (i = 0; i < SHM_LEASES; i++)
		h->owners[i].conn = NULL;
	h->lease_hint = 0;
	slab_owner_move_undo(seg);
	for (s = 0; s < seg->nslabs; s++) {
		w = atomic_load(&seg->slabs[s].word);
		if ((SHM_SLAB_STATE(w) == SHM_SMALL ||
		    SHM_SLAB_STATE(w) == SHM_RECLAIMING) &&
		    SHM_SLAB_CLS(w) >= SHM_NCLASSES) {
			log_errx("slab %" PRIu64 " has size class %u; there "
			    "are %d", s, SHM_SLAB_CLS(w), SHM_NCLASSES);
			return -EUCLEAN;
		}
		if (SHM_SLAB_STATE(w) == SHM_LARGE_HEAD &&
		    (seg->slabs[s].run == 0 ||
		    seg->slabs[s].run > seg->nslabs - s)) {
			log_errx("extent at slab %" PRIu64 " claims %u slabs of "
			    "the %" PRIu64 " left", s, seg->slabs[s].run,
			    seg->nslabs - s);
			return -EUCLEAN;
		}
		switch (SHM_SLAB_STATE(w)) {
		case SHM_RECLAIMING:
			/* A crash in the middle of a reclaim: finish it or
			 * undo it, deciding once.  As slab_reclaim() does:
			 * the owner's announcement first, then the bits (an
			 * announcement withdrawn after the claim's bits were
			 * set makes them visible to the bitmap read). */
			w = !slab_announced(seg, s, SHM_SLAB_OWNER(w)) &&
			    slab_empty(seg, s) ?
			    SHM_SLAB_WORD(SHM_FREE, 0, 0) :
			    SHM_SLAB_OWNED(SHM_SLAB_WORD(SHM_SMALL,
			    SHM_SLAB_CLS(w), 0), SHM_SLAB_OWNER(w));
			atomic_store(&seg->slabs[s].word, w);
			if (SHM_SLAB_STATE(w) == SHM_FREE) {
				/* A span's tails go with their head. */
				span_tails_free(h, s);
				free_set(h, s);
				break;
			}
			/* FALLTHROUGH */
		case SHM_SMALL:
			if (SHM_SLAB_CLS(w) >= SHM_NCLASSES)
				return -EUCLEAN;
			if ((rc = class_add(h, SHM_SLAB_CLS(w), s)) != 0)
				return rc;
			break;
		case SHM_FREE:
			free_set(h, s);
			break;
		case SHM_LARGE_HEAD:
			s += seg->slabs[s].run - 1;
			break;
		default:
			break;
		}
	}
	/* Free slabs below the high-water mark may still hold memory (a
	 * crash before their decay), or be holes: nothing says which, so
	 * their memory goes back now, and heap_commit() commits them again
	 * when they are used (held slabs skip that, and a hole must not). */
	for (s = 0; s < seg->nslabs && s < atomic_load(&seg->sb->slab_hwm);
	    s = t) {
		for (t = s; t < seg->nslabs && free_test(h, t); t++)
			;
		if (t > s)
			(void)seg_decommit(seg, DATA_OFF(h, s),
			    (t - s) << SHM_SLAB_SHIFT);
		else
			t++;
	}
	lease_rebuild(h);
	free_map_assert(h);
	return 0;
}

/* The memory of a freed run goes back to the system and the run to the
 * free pool. */
static void
slabs_give_back(struct heap *h, uint64_t s, uint64_t n)
{
	uint64_t t;

	for (t = s; t < s + n; t++)
		free_set(h, t);
	heap_hold(h, s, n);
}

/*
 * Frees a run of slabs.  The shared slab table says FREE at once, so the
 * segment is consistent at every instant (a crash now leaves no extent
 * without its head).  While a checkpoint streams slabs, the memory and
 * the reuse wait in limbo: the checkpoint still copies the run's data.
 */
static void
slabs_release(struct heap *h, uint64_t s, uint64_t n)
{
	struct shm_seg *seg = &h->seg;
	uint64_t t;

	for (t = s; t < s + n; t++) {
		seg->slabs[t].run = 0;
		seg->slabs[t].req = 0;
		atomic_store(&seg->slabs[t].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	}
	if (h->frozen) {
		if (h->nlimbo == h->limbo_cap) {
			uint64_t cap = h->limbo_cap ? h->limbo_cap * 2 : 64;
			uint64_t *p = reallocarray(h->limbo, cap, 16);

			if (p == NULL)
				goto now;	/* lose the freeze, not memory */
			h->limbo = p;
			h->limbo_cap = cap;
		}
		h->limbo[2 * h->nlimbo] = s;
		h->limbo[2 * h->nlimbo + 1] = n;
		h->nlimbo++;
		return;
	}
now:
	slabs_give_back(h, s, n);
}

void
heap_thaw(struct heap *h)
{
	uint64_t i, n = h->nlimbo;

	h->frozen = 0;
	h->nlimbo = 0;
	for (i = 0; i < n; i++)
		slabs_give_back(h, h->limbo[2 * i], h->limbo[2 * i + 1]);
}

/* First fit: n free slabs starting at an address aligned to align. */
static int64_t
find_run(struct heap *h, uint64_t n, uint64_t align)
{
	uint64_t nslabs = h->seg.nslabs, step, s, t, w;
	uintptr_t data = h->seg.data;

	step = align > SHM_SLAB_SIZE ? align >> SHM_SLAB_SHIFT : 1;
	if (n > h->nfree)
		return -1;
	if (step == 1) {
		for (w = h->free_hint; w < (nslabs + 63) / 64; w++) {
			if (h->free_map[w] == 0) {
				if (w == h->free_hint)
					h->free_hint = w + 1;
				continue;
			}
			s = w * 64 + (uint64_t)__builtin_ctzll(h->free_map[w]);
			for (;;) {
				for (t = s; t < s + n && t < nslabs &&
				    free_test(h, t); t++)
					;
				if (t == s + n)
					return (int64_t)s;
				if (t >= nslabs)
					return -1;
				/* skip to the next free slab after t */
				for (s = t + 1; s < nslabs && !free_test(h, s);
				    s++)
					if (s % 64 == 0 &&
					    h->free_map[s / 64] == 0)
						s += 63;
				if (s >= nslabs)
					return -1;
			}
		}
		return -1;
	}
	s = ((align - data % align) % align) >> SHM_SLAB_SHIFT;
	for (; s + n <= nslabs; s += step) {
		for (t = s; t < s + n && free_test(h, t); t++)
			;
		if (t == s + n)
			return (int64_t)s;
	}
	return -1;
}

static int64_t
take_run(struct heap *h, uint64_t n, uint64_t align)
{
	int64_t s = find_run(h, n, align);

	if (s < 0 && !h->frozen) {
		int got = heap_reclaim_sweep(h);

		log_debug("out of free slabs: reclaimed %d empty ones on "
		    "demand", got);
		if (got > 0)
			s = find_run(h, n, align);
	}
	return s;
}

/*
 * Free slabs made into a small slab of cls, or the span of its class, its
 * memory committed: bitmap, side lines and data at once, so no block in it
 * costs a system call again until the span is given back.  Tails first,
 * head last (shm.h), so a crash in between leaves tails start-up frees.
 */
int64_t
heap_slab_new(struct heap *h, uint32_t cls, uint32_t pages)
{
	struct shm_seg *seg = &h->seg;
	/* From the daemon's own mapping, never from the superblock, which
	 * clients can write. */
	uint64_t boff = (uint64_t)((uintptr_t)seg->bitmaps - seg->base);
	uint64_t soff = (uint64_t)((uintptr_t)seg->sides - seg->base);
	uint64_t n = slab_class_slabs[cls], t, r[4];
	uint32_t ready = ready_step(h, cls, pages);
	int64_t s;
	int rc, whole;

	if ((s = take_run(h, n, 0)) < 0)
		return -ENOMEM;
	/* Memory still held is ready whole; else the first ready_step()
	 * blocks, their pages committed, the rest of the slab a hole. */
	slab_ready_ranges(cls, 0, ready, r);
	if ((rc = heap_commit_part(h, (uint64_t)s, n,
	    ready < slab_class_nblocks[cls] ? r[1] : n << SHM_SLAB_SHIFT,
	    &whole)) != 0)
		return rc;
	if (whole)
		ready = slab_class_nblocks[cls];
	else if (r[3] > r[2] && ready < slab_class_nblocks[cls])
		rc = commit_range(h, DATA_OFF(h, s) + r[2], r[3] - r[2]);
	if (rc != 0 ||
	    (rc = seg_commit(seg, boff + (uint64_t)s * SHM_BITMAP_BYTES,
	    SHM_BITMAP_BYTES)) != 0 ||
	    (rc = seg_commit(seg, soff + (uint64_t)s * SHM_SIDE_BYTES,
	    n * SHM_SIDE_BYTES)) != 0 ||
	    (rc = class_add(h, cls, (uint64_t)s)) != 0) {
		/* The run stays free; memory committed whole decays as a
		 * freed one's, a part goes back now (held means whole). */
		if (ready == slab_class_nblocks[cls])
			heap_hold(h, (uint64_t)s, n);
		else
			seg_decommit(seg, DATA_OFF(h, s), n << SHM_SLAB_SHIFT);
		return rc;
	}
	/* Memory kept from an earlier use holds its bytes: side entries
	 * must start as zeros (I3), in the slab and in its side lines.
	 * Fresh memory is zeros already, and past the ready blocks a
	 * hole that a write would commit. */
	if (cls < SHM_NINBAND && whole)
		memset((void *)slab_side_base(seg, (uint64_t)s, cls), 0,
		    SHM_SLAB_SIZE - slab_class_sideoff[cls]);
	memset(slab_sides(seg, (uint64_t)s), 0, n * SHM_SIDE_BYTES);
	atomic_store_explicit(&seg->slabs[s].ready, ready,
	    memory_order_relaxed);
	for (t = (uint64_t)s + 1; t < (uint64_t)s + n; t++) {
		free_clear(h, t);
		seg->slabs[t].run = (uint32_t)s;
		atomic_store(&seg->slabs[t].word,
		    SHM_SLAB_WORD(SHM_SPAN_TAIL, 0, 0));
	}
	free_clear(h, (uint64_t)s);
	atomic_store(&seg->slabs[s].word, SHM_SLAB_WORD(SHM_SMALL, cls, 0));
	return s;
}

int
heap_slab_has_room(const struct heap *h, uint64_t s, uint32_t cls)
{
	return slab_claimed_ready(&h->seg, s, cls) < slab_ready(&h->seg, s,
	    cls);
}

#define EXTEND_LOOK	64

/*
 * A slab of cls not yet ready whole gets more blocks ready, for owner o
 * (a lease record + 1, or 0 for the daemon): first one o owns, unleased or
 * leased to o (its full current slab), then one nobody owns and nobody
 * leases.  Its index, -1 when there is none, -errno when the memory
 * cannot be had.
 */
int64_t
heap_extend_class(struct heap *h, uint32_t cls, uint32_t o, uint32_t pages)
{
	struct shm_seg *seg = &h->seg;
	uint64_t w;
	uint32_t i, k, t, lease;
	int pass, rc;

	/* Slabs are listed as they are made: one not yet ready whole is
	 * among the last few (EXTEND_LOOK), and a longer look would cost
	 * every lease of a large class a walk of its list. */
	for (pass = 0; pass < (o != 0 ? 2 : 1); pass++)
		for (k = 0; k < h->class_n[cls] && k < EXTEND_LOOK; k++) {
			i = h->class_n[cls] - 1 - k;
			t = h->class_slabs[cls][i];
			w = atomic_load(&seg->slabs[t].word);
			lease = SHM_SLAB_LEASE(w);
			if (SHM_SLAB_STATE(w) != SHM_SMALL ||
			    SHM_SLAB_CLS(w) != cls ||
			    slab_ready(seg, t, cls) >= slab_class_nblocks[cls])
				continue;
			if (pass == 0 ? SHM_SLAB_OWNER(w) != o ||
			    (lease != 0 && lease != o) :
			    SHM_SLAB_OWNER(w) != 0 || lease != 0 ||
			    h->cur[cls] == t + 1)
				continue;
			rc = heap_slab_extend(h, t, cls, pages);
			return rc == 0 ? (int64_t)t : rc;
		}
	return -1;
}

/*
 * An unleased slab of cls with room, for the socket path's own claims: one
 * the daemon owns first, then one a client has as its own and is not
 * claiming in right now, which becomes the daemon's.  -1 when none.
 */
static int64_t
slab_for_daemon(struct heap *h, uint32_t cls)
{
	uint64_t w;
	uint32_t i, t;
	int pass;

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < h->class_n[cls]; i++) {
			t = h->class_slabs[cls][i];
			w = atomic_load(&h->seg.slabs[t].word);
			/* The word is in client-writable memory: a slab that
			 * no longer says what the list says is passed over
			 * (claims there would fail, forever). */
			if (SHM_SLAB_STATE(w) != SHM_SMALL ||
			    SHM_SLAB_CLS(w) != cls || SHM_SLAB_LEASE(w) != 0 ||
			    (SHM_SLAB_OWNER(w) == 0) != (pass == 0) ||
			    !heap_slab_has_room(h, t, cls))
				continue;
			if (slab_owner_move(&h->seg, t, 0) == 0)
				return t;
		}
	return -1;
}

/*
 * The daemon's own slab of cls with a free block, for the socket path:
 * its current one, else one it owns or takes, else a new one.  The block
 * is chosen, not taken (alloc.c takes it once its plan is recorded); only
 * the daemon sets bits in a slab it owns, so it stays free until then.
 * 0 with *sp and *ip, or -errno.
 */
int
heap_daemon_block(struct heap *h, uint32_t cls, uint64_t *sp, uint32_t *ip)
{
	struct shm_seg *seg = &h->seg;
	_Atomic uint64_t *bm;
	uint64_t freebits;
	uint64_t w;
	uint32_t tries, ready;
	int64_t s;

	/* Each slab is tried once at most: one that has room by its bits
	 * and still gives no block was scribbled on. */
	for (tries = 0; tries <= h->class_n[cls] + 1; tries++) {
		if (h->cur[cls] != 0) {
			s = h->cur[cls] - 1;
			w = atomic_load(&seg->slabs[s].word);
			bm = slab_bitmap(seg, (uint64_t)s);
			ready = slab_ready(seg, (uint64_t)s, cls);
			for (; SHM_SLAB_STATE(w) == SHM_SMALL &&
			    SHM_SLAB_CLS(w) == cls && SHM_SLAB_OWNER(w) == 0 &&
			    h->cur_hint[cls] < (ready + 63) / 64;
			    h->cur_hint[cls]++) {
				freebits = ~atomic_load(&bm[h->cur_hint[cls]]) &
				    slab_word_first(ready, h->cur_hint[cls]);
				if (freebits != 0) {
					*sp = (uint64_t)s;
					*ip = h->cur_hint[cls] * 64 +
					    (uint32_t)__builtin_ctzll(freebits);
					return 0;
				}
			}
			h->cur[cls] = 0;
		}
		if ((s = slab_for_daemon(h, cls)) < 0 &&
		    (s = heap_extend_class(h, cls, 0, 0)) == -1)
			s = heap_slab_new(h, cls, 0);
		if (s < 0)
			return (int)s;
		h->cur[cls] = (uint32_t)s + 1;
		h->cur_hint[cls] = 0;
	}
	log_warnx("class %u: %u slabs with room gave no block; the slab "
	    "table or bitmaps were written by a client", cls, tries);
	h->cur[cls] = 0;
	return -EIO;
}

/* A free run of n slabs for an extent, aligned; -ENOMEM. */
int64_t
heap_take_run(struct heap *h, uint64_t n, uint64_t align)
{
	int64_t s = take_run(h, n, align);

	return s < 0 ? -ENOMEM : s;
}

/* 1 if slabs s .. s+n-1 are all free. */
int
heap_run_free(const struct heap *h, uint64_t s, uint64_t n)
{
	uint64_t t;

	if (s >= h->seg.nslabs || n > h->seg.nslabs - s)
		return 0;
	for (t = s; t < s + n; t++)
		if (!free_test(h, t))
			return 0;
	return 1;
}

/*
 * Free slabs s .. s+n-1 become an extent of size bytes: committed, tails
 * first, the head last.  On failure the run stays free, nothing of it
 * committed.
 */
int
heap_extent_make(struct heap *h, uint64_t s, uint64_t n, uint64_t size)
{
	struct shm_seg *seg = &h->seg;
	uint64_t t;
	int rc;

	if ((rc = heap_commit(h, s, n)) != 0)
		return rc;
	for (t = s + 1; t < s + n; t++) {
		free_clear(h, t);
		seg->slabs[t].run = (uint32_t)s;
		atomic_store(&seg->slabs[t].word,
		    SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	}
	free_clear(h, s);
	seg->slabs[s].run = (uint32_t)n;
	seg->slabs[s].req = size;
	atomic_store(&seg->slabs[s].word, SHM_SLAB_WORD(SHM_LARGE_HEAD, 0, 0));
	return 0;
}

/* Slabs s .. s+n-1, an extent's or its tail, are free again. */
void
heap_slabs_release(struct heap *h, uint64_t s, uint64_t n)
{
	slabs_release(h, s, n);
}

/*
 * Extent s of old slabs grows in place to n slabs holding size bytes.
 * The new tails first, then the longer length, then the larger request:
 * a crash in between leaves tails no head covers (start-up frees them)
 * or a longer extent with its old request, both valid.  -ENOMEM when the
 * slabs are not free or their memory cannot be had.
 */
int
heap_extent_grow(struct heap *h, uint64_t s, uint64_t old, uint64_t n,
    uint64_t size)
{
	struct shm_seg *seg = &h->seg;
	uint64_t t;
	int rc;

	if (n > UINT32_MAX || !heap_run_free(h, s + old, n - old))
		return -ENOMEM;
	if ((rc = heap_commit(h, s + old, n - old)) != 0)
		return rc;
	for (t = s + old; t < s + n; t++) {
		free_clear(h, t);
		seg->slabs[t].run = (uint32_t)s;
		atomic_store(&seg->slabs[t].word,
		    SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	}
	seg->slabs[s].run = (uint32_t)n;
	seg->slabs[s].req = size;
	return 0;
}

/* Reclaims one small slab if it is empty, unleased and not current. */
static int
reclaim_one(struct heap *h, uint32_t cls, uint64_t s)
{
	struct shm_seg *seg = &h->seg;
	uint64_t n;

	if (h->frozen || h->cur[cls] == s + 1 || slab_reclaim(seg, s) != 0)
		return 0;
	class_remove(h, cls, s);
	/* As many slabs as were the span's: the class came from a word a
	 * client can write. */
	n = 1 + span_tails_free(h, s);
	free_set(h, s);
	/* The memory stays committed for a while, for the next slab or
	 * span made there (heap_decay()); a slab that was never ready
	 * whole was never committed whole, and goes back now. */
	if (cls < SHM_NCLASSES &&
	    slab_ready(seg, s, cls) < slab_class_nblocks[cls])
		seg_decommit(seg, DATA_OFF(h, s), n << SHM_SLAB_SHIFT);
	else
		heap_hold(h, s, n);
	return 1;
}

/* Returns every empty, unleased small slab to the free pool. */
int
heap_reclaim_sweep(struct heap *h)
{
	uint32_t cls, i;
	int n = 0;

	if (h->frozen)
		return 0;
	for (cls = 0; cls < SHM_NCLASSES; cls++) {
		h->cur[cls] = 0;	/* current slabs may go too */
		for (i = h->class_n[cls]; i-- > 0;)
			n += reclaim_one(h, cls, h->class_slabs[cls][i]);
	}
	free_map_assert(h);
	return n;
}

/* Small slab s of cls may have been emptied by a free: back to the pool
 * if nobody leases it.  Only a free that emptied its bitmap word can have
 * emptied the slab: the 64-word scan is skipped otherwise. */
void
heap_maybe_reclaim(struct heap *h, uint32_t cls, uint64_t s, uint32_t index)
{
	struct shm_seg *seg = &h->seg;
	uint64_t w = atomic_load(&seg->slabs[s].word);

	if (SHM_SLAB_LEASE(w) == 0 && atomic_load_explicit(&slab_bitmap(seg,
	    s)[index / 64], memory_order_relaxed) == 0 && slab_empty(seg, s))
		reclaim_one(h, cls, s);
}

/*
 * Puts the heap at size bytes, its maximum at most (the address space every
 * process keeps for it, shm.h): the added slabs join the free pool, and a
 * heap shrinks only when every slab past its new end is free, whose memory
 * then goes back.  Between requests, so no lease or allocation is in
 * flight in the daemon; clients see the new slab count at their next
 * request (the superblock's nslabs).  The next checkpoint is a whole
 * image: an image has one size, and deltas name their base's.
 */
int
heap_resize(struct heap *h, uint64_t size, char *err, size_t errlen)
{
	struct shm_seg *seg = &h->seg;
	struct shm_geom g;
	uint64_t old = seg->nslabs, s, lo, hi;
	int rc;

	if (seg_geometry_max(size, seg->max, &g) != 0) {
		snprintf(err, errlen, "size %" PRIu64 " must be a multiple of "
		    "64K from 4M to the heap's maximum %" PRIu64, size,
		    seg->max);
		return -EINVAL;
	}
	if (size == seg->size)
		return 0;
	if (h->frozen) {
		snprintf(err, errlen, "a checkpoint is being written; try "
		    "again when it is done");
		return -EAGAIN;
	}
	/* Slabs and spans clients emptied go back first (the sweep would
	 * within 2 s): they are no reason to refuse a shrink. */
	if (g.nslabs < old)
		(void)heap_reclaim_sweep(h);
	for (s = g.nslabs; s < old; s++) {
		if (!free_test(h, s) || SHM_SLAB_STATE(atomic_load(
		    &seg->slabs[s].word)) != SHM_FREE) {
			snprintf(err, errlen, "slab %" PRIu64 " (0x%" PRIxPTR
			    ") past the new end is in use: a heap shrinks "
			    "only when its tail is free", s, seg->data +
			    (uintptr_t)(s << SHM_SLAB_SHIFT));
			return -EBUSY;
		}
	}
	if (g.nslabs < old) {
		/* Out of the pool and below the high-water mark before the
		 * count goes down, so that no scan looks past the new end. */
		for (s = g.nslabs; s < old; s++) {
			held_clear(h, s);
			h->free_map[s / 64] &= ~(UINT64_C(1) << (s % 64));
			h->nfree--;
		}
		if (atomic_load(&seg->sb->slab_hwm) > g.nslabs)
			atomic_store(&seg->sb->slab_hwm, g.nslabs);
		if (h->free_hint > g.nslabs / 64)
			h->free_hint = g.nslabs / 64;
	}
	if ((rc = seg_resize(seg, size)) != 0) {
		snprintf(err, errlen, "cannot commit the slab table: %s",
		    strerror(-rc));
		return rc;
	}
	if (g.nslabs > old) {
		for (s = old; s < g.nslabs; s++)
			free_set(h, s);
	} else {
		(void)seg_decommit(seg, DATA_OFF(h, g.nslabs),
		    (old - g.nslabs) << SHM_SLAB_SHIFT);
		/* Whole pages of the tail's bitmaps and side lines. */
		lo = (g.bitmaps_off + g.nslabs * SHM_BITMAP_BYTES + 4095) &
		    ~UINT64_C(4095);
		hi = (g.bitmaps_off + old * SHM_BITMAP_BYTES) & ~UINT64_C(4095);
		if (hi > lo)
			(void)seg_decommit(seg, lo, hi - lo);
		lo = (g.sides_off + g.nslabs * SHM_SIDE_BYTES + 4095) &
		    ~UINT64_C(4095);
		hi = (g.sides_off + old * SHM_SIDE_BYTES) & ~UINT64_C(4095);
		if (hi > lo)
			(void)seg_decommit(seg, lo, hi - lo);
	}
	free_map_assert(h);
	h->dirty = 1;
	ckpt_chain_reset(g.nslabs > old ? "the heap grew" : "the heap shrank");
	return 0;
}
