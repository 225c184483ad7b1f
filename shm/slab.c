/* SPDX-License-Identifier: MIT */
/*
 * slab.c: size classes and the block operations that the daemon and every
 * client perform on the shared bitmaps and side arrays.
 *
 * A block is claimed by setting its bit, by the slab's owner only (a
 * client announces each claim in its lease record first), and becomes
 * live when its claimer writes its side entry.  It is freed by taking its
 * side entry (exchange with 0, which is what makes one of two racing frees
 * lose) and then clearing its bit (fetch_and), by anyone.  Nothing here
 * takes a lock or enters the kernel; the header of shm.h has the argument
 * that makes claims safe against the daemon's reclaim and a claimer's
 * death.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "shm.h"

/*
 * 16-byte steps to 128, then four classes per power of two: up to 8 KiB
 * within one slab, above it in spans of slab_class_slabs[] slabs that the
 * blocks tile exactly, about eight blocks a span up to 4 MiB spans (the
 * unit tests derive every table from these rules).
 */
const uint32_t slab_class_size[SHM_NCLASSES] = {
	16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448,
	512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584,
	4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480,
	24576, 28672, 32768, 40960, 49152, 57344, 65536, 81920, 98304, 114688,
	131072, 163840, 196608, 229376, 262144, 327680, 393216, 458752,
	524288, 655360, 786432, 917504, 1048576, 1310720, 1572864, 1835008,
	2097152, 2621440, 3145728, 3670016, 4194304,
};

/* Below 1 KiB a slab also holds its blocks' 16-bit side entries, at its
 * end; from 1 KiB on they fit the slab's side line. */
const uint16_t slab_class_nblocks[SHM_NCLASSES] = {
	3640, 1927, 1310, 992, 799, 668, 574, 504, 404, 337, 289, 254, 203,
	169, 145, 127, 102, 85, 72, 64, 51, 42, 36, 32, 25, 21, 18, 16, 12,
	10, 9, 8, 32, 16, 32, 8, 16, 8, 16, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
	8, 8, 8, 8, 8, 8, 6, 5, 4, 4, 3, 2, 2, 2, 1, 1, 1, 1,
};

const uint8_t slab_class_slabs[SHM_NCLASSES] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 3, 7, 2, 5, 3, 7, 4, 5, 6, 7, 8, 10, 12,
	14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 60, 60, 56, 64, 60, 48, 56,
	64, 40, 48, 56, 64,
};

#define SO(c, n)	(uint16_t)(SHM_SLAB_SIZE - 2 * (n))
const uint16_t slab_class_sideoff[SHM_NINBAND] = {
	SO(16, 3640), SO(32, 1927), SO(48, 1310), SO(64, 992), SO(80, 799),
	SO(96, 668), SO(112, 574), SO(128, 504), SO(160, 404), SO(192, 337),
	SO(224, 289), SO(256, 254), SO(320, 203), SO(384, 169), SO(448, 145),
	SO(512, 127), SO(640, 102), SO(768, 85), SO(896, 72),
};

#define MG(c)	((UINT64_C(1) << 48) + (c) - 1) / (c)
const uint64_t slab_class_magic[SHM_NCLASSES] = {
	MG(16), MG(32), MG(48), MG(64), MG(80), MG(96), MG(112), MG(128),
	MG(160), MG(192), MG(224), MG(256), MG(320), MG(384), MG(448),
	MG(512), MG(640), MG(768), MG(896), MG(1024), MG(1280), MG(1536),
	MG(1792), MG(2048), MG(2560), MG(3072), MG(3584), MG(4096),
	MG(5120), MG(6144), MG(7168), MG(8192), MG(10240), MG(12288),
	MG(14336), MG(16384), MG(20480), MG(24576), MG(28672), MG(32768),
	MG(40960), MG(49152), MG(57344), MG(65536), MG(81920), MG(98304),
	MG(114688), MG(131072), MG(163840), MG(196608), MG(229376),
	MG(262144), MG(327680), MG(393216), MG(458752), MG(524288),
	MG(655360), MG(786432), MG(917504), MG(1048576), MG(1310720),
	MG(1572864), MG(1835008), MG(2097152), MG(2621440), MG(3145728),
	MG(3670016), MG(4194304),
};

/* The smallest class that holds size and whose every block is aligned to
 * alignment (a power of two), or -1 when only an extent will do. */
int
slab_class_aligned(size_t size, size_t alignment)
{
	int c;

	if (alignment <= SHM_ALIGN)
		return slab_class_of(size);
	/* Spans start on a slab boundary, so blocks are aligned to at most
	 * that. */
	if (alignment > SHM_SLAB_SIZE)
		return -1;
	c = slab_class_of(size < alignment ? alignment : size);
	if (c < 0)
		return -1;
	for (; c < SHM_NCLASSES; c++)
		if (slab_class_size[c] % alignment == 0)
			return c;
	return -1;
}

/* Whether lease record + 1 `who` announces a claim in slab s. */
int
slab_announced(const struct shm_seg *seg, uint64_t s, uint32_t who)
{
	return who != 0 && who <= seg_lease_hwm(seg) &&
	    atomic_load(&seg->leases[who - 1].pending) == s + 1;
}

/*
 * A client's claim in slab s starts here: it announces the slab in its
 * lease record rec, then checks the slab is SMALL of class cls and its
 * own, in one load of its word (the owner of a slab read in another load
 * could belong to another life of it).  0 to go on (slab_claim_word(),
 * then slab_claim_end()); -ESTALE when the slab is not of the class,
 * -EBUSY when it is not ours, both with the announcement withdrawn.  The
 * daemon stores before it reads the announcement (slab_owner_move(),
 * slab_reclaim()); we store before we read the slab: one of the two sees
 * the other.
 */
int
slab_claim_begin(struct shm_seg *seg, uint64_t s, uint32_t cls, uint32_t rec)
{
	uint64_t w;

	atomic_store(&seg->leases[rec].pending, (uint32_t)s + 1);
	w = atomic_load(&seg->slabs[s].word);
	if (SHM_SLAB_STATE(w) != SHM_SMALL || SHM_SLAB_CLS(w) != cls) {
		slab_claim_end(seg, rec);
		return -ESTALE;
	}
	if (SHM_SLAB_OWNER(w) != rec + 1) {
		slab_claim_end(seg, rec);
		return -EBUSY;
	}
	return 0;
}

void
slab_claim_end(struct shm_seg *seg, uint32_t rec)
{
	atomic_store_explicit(&seg->leases[rec].pending, 0,
	    memory_order_release);
}

/*
 * Daemon only: gives small slab s another owner (a lease record + 1, or 0
 * for the daemon), unless the one it has is claiming in it right now
 * (-EBUSY, nothing changed).  The slab passes through the daemon's hands
 * (owner 0) while the old owner's announcement is read, and the move is
 * written down in the superblock meanwhile, so a daemon that dies in the
 * middle leaves start-up a clear choice (slab_owner_move_undo()): owner 0
 * means undecided, and the old owner gets the slab back (the daemon is
 * the only other claimer there, and it is starting); any other owner was
 * set only after the old one was seen idle, and keeps it.
 */
int
slab_owner_move(struct shm_seg *seg, uint64_t s, uint32_t to)
{
	uint32_t from = slab_affinity(seg, s);
	int rc = 0;

	if (from == to)
		return 0;
	seg->sb->move_from = from;
	atomic_store(&seg->sb->move_slab, (uint32_t)s + 1);
	slab_affinity_set(seg, s, 0);
	if (slab_announced(seg, s, from)) {
		slab_affinity_set(seg, s, from);
		rc = -EBUSY;
	} else
		slab_affinity_set(seg, s, to);
	atomic_store(&seg->sb->move_slab, 0);
	return rc;
}

/* Start-up: gives the slab of a move a crash left undecided back. */
void
slab_owner_move_undo(struct shm_seg *seg)
{
	uint32_t m = atomic_load(&seg->sb->move_slab);
	uint64_t w;

	if (m != 0 && m <= seg->nslabs && seg->sb->move_from <= seg_lease_hwm(seg)) {
		w = atomic_load(&seg->slabs[m - 1].word);
		if (SHM_SLAB_STATE(w) == SHM_SMALL && SHM_SLAB_OWNER(w) == 0)
			slab_affinity_set(seg, m - 1, seg->sb->move_from);
	}
	atomic_store(&seg->sb->move_slab, 0);
}

/*
 * Claims one free block of slab s for class cls and returns its index, or
 * -1 when the slab is full or not of that class.  *hint is the word to
 * start from and is left where the search ended.  The caller makes the
 * block live with slab_set_live().  For the daemon, in slabs it owns.
 */
long
slab_claim_one(struct shm_seg *seg, uint64_t s, uint32_t cls, uint32_t *hint)
{
	_Atomic uint64_t *bm = slab_bitmap(seg, s);
	uint32_t ready, nw, k, w;
	uint64_t free, bit, sw;

	sw = atomic_load(&seg->slabs[s].word);
	if (SHM_SLAB_STATE(sw) != SHM_SMALL || SHM_SLAB_CLS(sw) != cls)
		return -1;
	ready = slab_ready(seg, s, cls);
	if ((nw = (ready + 63) / 64) == 0)
		return -1;
	for (k = 0; k < nw; k++) {
		w = (*hint + k) % nw;
		/* The owner is the only one setting bits here, but a bit
		 * it finds set is never taken twice. */
		while ((free = slab_word_first(ready, w) &
		    ~atomic_load_explicit(&bm[w], memory_order_relaxed)) != 0) {
			bit = free & -free;
			if (atomic_fetch_or(&bm[w], bit) & bit)
				continue;
			*hint = w;
			return (long)w * 64 + __builtin_ctzll(bit);
		}
	}
	return -1;
}

/* A test's fault-injection point in claims (NULL outside tests). */
void (*slab_claim_hook)(int where);

/*
 * Claims every free block of word w of slab s, between slab_claim_begin()
 * and slab_claim_end() (the fast path's batch).  The bits go to *intent
 * (the claimer's lease record) before they are set, so a claimer that dies
 * has recorded all it may have taken.  Returns them, 0 when the word is
 * full.  Only the owner sets bits, so the swap fails only when a free came
 * in between, and the intent only grows.
 */
uint64_t
slab_claim_word(struct shm_seg *seg, uint64_t s, uint32_t cls, uint32_t w,
    _Atomic uint64_t *intent)
{
	_Atomic uint64_t *bm = &slab_bitmap(seg, s)[w];
	uint64_t valid = slab_word_first(slab_ready(seg, s, cls), w), cur, want;

	cur = atomic_load_explicit(bm, memory_order_relaxed);
	for (;;) {
		if ((want = valid & ~cur) == 0)
			return 0;
		atomic_store_explicit(intent, want, memory_order_release);
		if (slab_claim_hook != NULL)
			slab_claim_hook(SLAB_HOOK_INTENT);
		if (atomic_compare_exchange_weak(bm, &cur, cur | want))
			return want;
	}
}

/*
 * Frees a small block that slab_block_lookup() found live: takes its side
 * entry, clears its bit.  -EINVAL when a racing free took it first.
 */
int
slab_free_block(struct shm_seg *seg, const struct slab_block *b, size_t *req)
{
	uint32_t side;
	uint64_t bit;

	side = slab_side_xchg(b->sides, b->cls, b->index, 0);
	if (side == 0)
		return -EINVAL;
	bit = UINT64_C(1) << (b->index % 64);
	atomic_fetch_and(&slab_bitmap(seg, b->slab)[b->index / 64], ~bit);
	*req = slab_class_size[b->cls] - (side - 1u);
	return 0;
}

int
slab_empty(const struct shm_seg *seg, uint64_t s)
{
	_Atomic uint64_t *bm = slab_bitmap(seg, s);
	unsigned w;

	for (w = 0; w < SHM_BITMAP_WORDS; w++)
		if (atomic_load(&bm[w]) != 0)
			return 0;
	return 1;
}

/*
 * Daemon only: turns an empty, unleased small slab FREE.  -EBUSY if it holds
 * a claimed bit or its owner is claiming in it, in which case it stays
 * SMALL of its class.
 */
int
slab_reclaim(struct shm_seg *seg, uint64_t s)
{
	struct shm_slab *sl = &seg->slabs[s];
	uint64_t w = atomic_load(&sl->word);

	if (SHM_SLAB_STATE(w) != SHM_SMALL || SHM_SLAB_LEASE(w) != 0 ||
	    !slab_empty(seg, s))
		return -EBUSY;
	/* RECLAIMING first (naming the owner, for a start-up that has to
	 * decide), then the owner's announcement, then the bits: a claim
	 * that started before is seen by one of the two reads, one that
	 * starts after sees RECLAIMING and takes nothing. */
	atomic_store(&sl->word, SHM_SLAB_OWNED(SHM_SLAB_WORD(SHM_RECLAIMING,
	    SHM_SLAB_CLS(w), 0), SHM_SLAB_OWNER(w)));
	if (slab_announced(seg, s, SHM_SLAB_OWNER(w)) || !slab_empty(seg, s)) {
		atomic_store(&sl->word, w);
		return -EBUSY;
	}
	atomic_store(&sl->word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	return 0;
}

/*
 * Start-up: frees the extent and span tails a crash left without their
 * head.  A span is made tails first and unmade head first.  An
 * extent is made tails first and head last, freed head first, and shrunk
 * by writing its smaller request, then its shorter length, then freeing
 * the tails past it; so a daemon killed in the middle leaves tails that
 * no head covers, and nothing can be in them.  Left for the validator to
 * name: a tail of a head whose length is out of range, or too short for
 * the request it records (damage, not a cut shrink).  Their memory goes
 * back too.  Returns how many were freed.
 */
uint64_t
slab_settle_extents(struct shm_seg *seg)
{
	uint64_t s, h, n, freed = 0;
	uint64_t w, hw;

	for (s = 0; s < seg->nslabs; s++) {
		w = atomic_load(&seg->slabs[s].word);
		if (SHM_SLAB_STATE(w) == SHM_SPAN_TAIL) {
			/* A span is made tails first and unmade head first,
			 * and never changes length. */
			if (slab_span_head(seg, s) == UINT64_MAX)
				goto free;
			continue;
		}
		if (SHM_SLAB_STATE(w) != SHM_LARGE_TAIL)
			continue;
		h = seg->slabs[s].run;
		if (h >= s)
			continue;
		hw = atomic_load(&seg->slabs[h].word);
		n = seg->slabs[h].run;
		/* Kept unless its head is gone or was cut short before it
		 * (a length in range that fits the head's request). */
		if (SHM_SLAB_STATE(hw) == SHM_LARGE_HEAD &&
		    (n == 0 || n > seg->nslabs - h || n > s - h ||
		    seg->slabs[h].req > n * SHM_SLAB_SIZE))
			continue;
free:
		seg->slabs[s].run = 0;
		atomic_store(&seg->slabs[s].word, SHM_SLAB_WORD(SHM_FREE, 0,
		    0));
		(void)seg_decommit(seg, seg->sb->data_off +
		    s * SHM_SLAB_SIZE, SHM_SLAB_SIZE);
		freed++;
	}
	return freed;
}

/* Live blocks of a small slab and the bytes they asked for.  Only the
 * bits of ready blocks are looked at: the bitmap is client-writable, and
 * the side entry of a bit past the class's blocks would lie past the
 * in-slab side array, past the end of the segment in its last slab; one
 * past the ready blocks may lie in a hole. */
uint32_t
slab_used(const struct shm_seg *seg, uint64_t s, uint32_t cls,
    uint64_t *req_bytes)
{
	_Atomic uint64_t *bm = slab_bitmap(seg, s);
	uintptr_t sd = slab_side_base(seg, s, cls);
	uint32_t ready = slab_ready(seg, s, cls), nw = (ready + 63) / 64, w;
	uint32_t n = 0, side;
	uint64_t bits, r = 0;
	int i;

	for (w = 0; w < nw; w++) {
		bits = atomic_load_explicit(&bm[w], memory_order_relaxed) &
		    slab_word_first(ready, w);
		while (bits != 0) {
			i = __builtin_ctzll(bits);
			bits &= bits - 1;
			side = slab_side_load(sd, cls, w * 64 + (uint32_t)i);
			if (side != 0) {
				n++;
				r += slab_class_size[cls] - (side - 1u);
			}
		}
	}
	if (req_bytes != NULL)
		*req_bytes = r;
	return n;
}

/* Claimed bits among the ready blocks of small slab s of class cls (the
 * words they are in; a bit past them is damage the validator names). */
uint32_t
slab_claimed_ready(const struct shm_seg *seg, uint64_t s, uint32_t cls)
{
	_Atomic uint64_t *bm = slab_bitmap(seg, s);
	uint32_t ready = slab_ready(seg, s, cls), n = 0, w;

	for (w = 0; w < (ready + 63) / 64; w++)
		n += (uint32_t)__builtin_popcountll(atomic_load_explicit(&bm[w],
		    memory_order_relaxed) & slab_word_first(ready, w));
	return n;
}

/* Claimed bits of a slab, live or not. */
uint32_t
slab_claimed(const struct shm_seg *seg, uint64_t s)
{
	_Atomic uint64_t *bm = slab_bitmap(seg, s);
	uint32_t n = 0;
	unsigned w;

	for (w = 0; w < SHM_BITMAP_WORDS; w++)
		n += (uint32_t)__builtin_popcountll(atomic_load_explicit(&bm[w],
		    memory_order_relaxed));
	return n;
}

/*
 * The bytes of a small slab of cls, from its start and in whole pages,
 * that blocks from .. to-1 need committed when they are made ready (shm.h):
 * their data in [r[0], r[1]) and, below 1 KiB, their side entries in
 * [r[2], r[3]) (else an empty range).
 */
void
slab_ready_ranges(uint32_t cls, uint32_t from, uint32_t to, uint64_t r[4])
{
	const uint64_t pg = SHM_PAGE;
	uint64_t cs = slab_class_size[cls], so;

	r[0] = from * cs & ~(pg - 1);
	r[1] = (to * cs + pg - 1) & ~(pg - 1);
	r[2] = r[3] = 0;
	if (cls < SHM_NINBAND) {
		so = slab_class_sideoff[cls];
		r[2] = (so + 2 * (uint64_t)from) & ~(pg - 1);
		r[3] = (so + 2 * (uint64_t)to + pg - 1) & ~(pg - 1);
	}
	if (r[1] > SHM_SLAB_SIZE)
		r[1] = SHM_SLAB_SIZE;
	if (r[3] > SHM_SLAB_SIZE)
		r[3] = SHM_SLAB_SIZE;
}
