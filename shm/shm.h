/* SPDX-License-Identifier: MIT */
/*
 * shm.h: the segment, shared by the daemon, the client library and aclheapctl.
 *
 * Theory of operation
 * -------------------
 * One POSIX shared-memory object holds the whole heap, and a second one,
 * its meta object, the daemon's ranges of it (below, "The daemon's
 * ranges"), mapped read-only by clients.  Every process maps them at the
 * same base address, so a pointer stored in the heap means the same thing
 * everywhere.  The heap is laid out as:
 *
 *   base                                                                base + size
 *   | super | roots | leases | slab table | bitmaps | sides | sessions | slab 0 ...
 *   |<---------------------- meta (slab aligned) ---------------------->|<- data
 *
 *   super      struct shm_super: magic, version, identity, geometry (4 KiB)
 *   roots      roots_max x struct shm_root: named pointers, the first
 *              roots_used of them in use, the rest never read (below)
 *   leases     nleases x struct shm_lease: one cache line each, the private
 *              block set of one client thread's lease (fast path); as many
 *              as the heap has slabs (a lease holds a slab of its own),
 *              rounded up to a page, at most SHM_LEASES; pages committed
 *              as the daemon first hands out their records (lease_hwm)
 *   slab table nslabs x struct shm_slab: state, class, extent geometry
 *   bitmaps    nslabs x SHM_BITMAP_BYTES: one bit per block of a slab or span
 *   sides      nslabs x SHM_SIDE_BYTES: a slab's side line (below)
 *   sessions   SHM_SESSIONS x struct shm_session: one client process's
 *              journal of its last changing request (daemon/journal.h);
 *              not in images, which are loaded without sessions
 *
 * Slabs are SHM_SLAB_SIZE bytes and aligned to it relative to data_start:
 *
 *   slab(addr)  = (addr - data_start) >> SHM_SLAB_SHIFT
 *   block(addr) = (addr - span_start) / class_size
 *
 * Size classes.  Classes 0..SHM_NSMALL-1 (16 B .. 8 KiB) hold their
 * blocks in one slab.  Classes SHM_NSMALL.. (10 KiB .. SHM_CLASS_MAX, four
 * per doubling) hold theirs in a span: slab_class_slabs[cls] contiguous
 * slabs, the first (the head) SMALL of the class and carrying the span's
 * bitmap, owner and lease, the others SPAN_TAIL naming the head in run.
 * A span's blocks tile it exactly; everything said below of a small slab
 * is said of a span through its head.  Requests above SHM_CLASS_MAX take
 * an extent (LARGE_HEAD + LARGE_TAIL), allocated by the daemon alone.
 *
 * Ready blocks.  A small slab's memory is committed as its blocks are
 * needed, not all at once: the first `ready` blocks of a slab (its entry
 * in the slab table, written by the daemon alone, slab_ready()) have
 * their memory committed, data and in-slab side entries, and only they
 * are claimed; the daemon raises the count (commit first, then the
 * count) when a lease finds the slab full.  A slab made from memory still
 * committed, and every span, is ready whole (daemon/heap.c says when).
 *
 * Side entries record, per block, 0 = not live, else class_size -
 * requested + 1.  Where they live is a function of the class, so that
 * each slab's metadata costs what its blocks need (a heap of large blocks
 * reserves about 1% for metadata, not the 13% 16-byte blocks need):
 *
 *   cls < SHM_NINBAND (< 1 KiB)   uint16_t, in the slab itself, from
 *                                  slab_class_sideoff[cls] to its end
 *   cls < SHM_NSMALL               uint16_t, in the slab's side line
 *   cls >= SHM_NSMALL (spans)      uint32_t, in the side lines of the
 *                                  span's slabs, which are contiguous
 *
 * Invariants.  shm_check() and shm_check_still() check each of them, and
 * name it (I1 .. I8) in what they report:
 *
 *   I1  state FREE  =>  bitmap == 0 and side line == 0 (the side
 *       entries a class keeps in the slab itself are data once it is free)
 *   I2  state SMALL (or RECLAIMING) =>  cls < SHM_NCLASSES,
 *       1 <= ready <= nblocks(cls), bits only below ready and side
 *       entries only below nblocks(cls); cls >= SHM_NSMALL  =>  slabs
 *       s+1 .. s+K-1 are SPAN_TAIL with run == s, K = slab_class_slabs[cls],
 *       and every SPAN_TAIL is one of such a span
 *   I3  side[i] != 0 =>  bit i set, and side[i] <= class_size + 1
 *                                            (live implies claimed)
 *   I4  LARGE_HEAD at s with run n  =>  slabs s+1 .. s+n-1 are LARGE_TAIL
 *       with head == s, and req <= n * SHM_SLAB_SIZE; every LARGE_TAIL is
 *       one of such an extent
 *   I5  a bit set with side == 0 is a claimed block not yet handed out: it
 *       belongs to the lease whose record names its slab and word (in its
 *       mask), and every block a record in use lists is such a block
 *   I6  the slab word: a known state; a lease (record + 1 <= nleases)
 *       only on a SMALL slab, whose owner is then that record, or the
 *       daemon while it frees a block there (daemon/alloc.c's gate); an
 *       owner (<= nleases) only on a SMALL or RECLAIMING one; no record
 *       at or above lease_hwm <= nleases is in use or named
 *   I7  slab_hwm <= nslabs, and no slab at or above it is in use
 *   I8  roots_used <= roots_max, and each root below roots_used has a
 *       name of 1 .. SHM_ROOT_NAME_MAX printable ASCII bytes, NUL-
 *       terminated, len == strlen(name), and no two have the same name
 *
 * What a live heap allows.  shm_check() runs while clients claim and free:
 * a slab that breaks an invariant is read again, with growing waits, and
 * reported only when it stays broken.  I5 holds only between the steps of
 * a client's allocation and free: one killed between them leaves that one
 * block claimed and in no record (an orphan, client/fast.c), and a record
 * lists its intent before the bits are taken and a set it gives back until
 * after they are cleared.  So on a live heap I5 is counted, not checked:
 * claimed blocks that are not live are blocks_orphaned, and those in no
 * record's private set blocks_unlisted.  shm_check_still() is for a heap
 * nobody changes (an image read offline, a heap before any client
 * attaches), which image_settle() or seg_format() has made: no record in
 * use and no orphan.  There every check is strict and at once, I5 both
 * ways: an unlisted block, or a listed one that is not claimed or is live,
 * is an error.
 *
 * Who writes what
 * ---------------
 *   daemon only   super, roots, sessions, slab table (state, cls, lease,
 *                 owner, run, req): read-only to clients (the meta
 *                 object); lease ownership (owner fields)
 *   claimers      bitmap bits: set only by the slab's owner (below),
 *                 cleared with an atomic fetch_and (free).  The daemon
 *                 never clears a bit set by someone else, except the
 *                 private set of a lease whose owner is gone.
 *   bit owner     the side entry of a block whose bit it set, and its lease
 *                 record's set_slab, word and mask (plain stores) and
 *                 pending (sequentially consistent: the announcement)
 *
 * Claims.  A small slab's owner is the lease record its word names (its
 * affinity), or the daemon when it names none; only the owner sets bits
 * in it.  A client claiming in a slab first announces it in its record
 * (pending = slab + 1), then checks, in one load of the slab word, that
 * the slab is still SMALL of its class and still its own; it writes the
 * bits it is about to take into its record (its intent), sets them with a
 * compare-and-swap, and withdraws the announcement.  The daemon takes a
 * slab from its owner (owner 0), or starts to reclaim it (RECLAIMING),
 * with a store, then reads the owner's announcement, and gives the slab
 * back if it names it; only then does a new owner get it.  Both sides are
 * sequentially consistent, so one sees the other (Dekker): a claim never
 * lands in a slab that changed hands under it.  So if a client dies in a
 * claim, nobody else has set bits in that slab since, and the intent bits
 * that are set are exactly what it took: the daemon returns them with the
 * rest of its private set, and nothing leaks (slab_claim_begin(),
 * slab_claim_word(), slab_owner_move()).
 *
 * A slab leaves SMALL only through slab_reclaim(), which stores
 * RECLAIMING, reads the owner's announcement (backing off if it names the
 * slab), then reads the bitmap: a claim either finished before (its bits
 * are seen) or sees RECLAIMING and takes nothing.  A span is made tails
 * first, head last, and unmade head first, so a crash in between leaves
 * tails no head covers, which start-up frees (slab_settle_extents()).
 */
#ifndef ACLHEAP_SHM_H
#define ACLHEAP_SHM_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHM_MAGIC		UINT64_C(0x504145484c434121)	/* "!ACLHEAP" */
#define SHM_VERSION		10u	/* 2: slab_hwm, lease set_slab; 4: slab owners,
					 * announced claims; 5: spans, side lines;
					 * 6: sessions; 7: 64-bit slab word, lease
					 * records per slab, lease_hwm; 8: a
					 * compact root table of roots_max,
					 * 255-byte names; 9: max_size, the
					 * geometry of the maximum (growth);
					 * 10: a slab's ready blocks */

#define SHM_SLAB_SHIFT		16
#define SHM_SLAB_SIZE		(UINT64_C(1) << SHM_SLAB_SHIFT)
#define SHM_SLAB_MASK		(SHM_SLAB_SIZE - 1)
#define SHM_MIN_BLOCK		16
#define SHM_MAX_BLOCKS		(SHM_SLAB_SIZE / SHM_MIN_BLOCK)		/* 4096 */
#define SHM_BITMAP_WORDS	(SHM_MAX_BLOCKS / 64)			/* 64 */
#define SHM_BITMAP_BYTES	(SHM_BITMAP_WORDS * 8)			/* 512 */
#define SHM_SIDE_BYTES		128	/* a slab's side line */
#define SHM_NCLASSES		68
#define SHM_NSMALL		32	/* classes of blocks within one slab */
#define SHM_NINBAND		19	/* classes with sides in the slab */
#define SHM_SMALL_MAX		8192	/* largest class within one slab */
#define SHM_CLASS_MAX		(UINT64_C(4) << 20)	/* largest class */
#define SHM_SPAN_MAX		64	/* slabs in the largest span */
#define SHM_PAGE		UINT64_C(4096)	/* the unit /dev/shm commits in */
#define SHM_SUPER_BYTES		4096
/* The root table's room: one root per 32 KiB of heap, 512 (up to a 16 MiB
 * heap) to SHM_ROOTS_MAX (a heap of 2 GiB or more, and any heap whose
 * maximum is).  seg_geometry_max(). */
#define SHM_ROOTS_MIN		512
#define SHM_ROOTS_MAX		65536
#define SHM_ROOTS_PER		32768	/* heap bytes per root */
#define SHM_ROOT_NAME_MAX	255
/* Most lease records a heap has (a 4 GiB heap has that many slabs). */
#define SHM_LEASES		65536
#define SHM_LEASES_PAGE		64	/* records in a 4 KiB page */
#define SHM_SESSIONS		1024
#define SHM_SESSION_TEXT	256	/* a root's name and its NUL */
#define SHM_ALIGN		16

/* Smallest and largest segment we agree to build. */
#define SHM_SIZE_MIN		(UINT64_C(4) << 20)
#define SHM_SIZE_MAX		(UINT64_C(1) << 44)
/* Default maximum a heap can grow to: address space reserved in every
 * process from the start, never memory (below, "Growth"). */
#define SHM_MAX_DEFAULT		(UINT64_C(1) << 40)
/* Default base: 32 TiB, inside ASan's HighMem, clear of PIE, brk and mmap. */
#define SHM_BASE_DEFAULT	UINT64_C(0x200000000000)

enum shm_slab_state {
	SHM_FREE = 0,
	SHM_SMALL = 1,
	SHM_LARGE_HEAD = 2,
	SHM_LARGE_TAIL = 3,
	SHM_RECLAIMING = 4,
	SHM_SPAN_TAIL = 5,	/* run: the span's head */
};

/* 24 bytes.  state, class, lease and owner share one atomic word, so that
 * a claimer reads them in one sequentially consistent load.  The word is
 * 64 bits wide (a 64-bit load or compare-and-swap costs what a 32-bit one
 * does on the hosts we build for) so that lease and owner name any of
 * SHM_LEASES records; req keeps its 64 bits, which is what makes the entry
 * 24 bytes rather than 16 (decision 2026-12-03-lease-records). */
struct shm_slab {
	_Atomic uint64_t word;	/* state | cls << 3 | lease << 16 | owner << 40 */
	uint32_t run;		/* LARGE_HEAD: slabs in the extent; TAILs: head */
	_Atomic uint32_t ready;	/* SMALL head: blocks committed, below */
	uint64_t req;		/* LARGE_HEAD: requested bytes */
};

/* The slab word: state (3 bits), class (7), 6 bits kept zero, lease
 * record + 1 (24, 0 = none) and, for a small slab, its owner (24): the
 * lease record + 1 it was last leased to (its affinity), 0 for the
 * daemon.  The daemon alone writes it.  Fields come out as uint32_t. */
#define SHM_SLAB_WORD(state, cls, lease) \
	((uint64_t)(state) | (uint64_t)(cls) << 3 | (uint64_t)(lease) << 16)
#define SHM_SLAB_STATE(w)	((uint32_t)(w) & 0x7u)
#define SHM_SLAB_CLS(w)		((uint32_t)((w) >> 3) & 0x7fu)
#define SHM_SLAB_LEASE(w)	((uint32_t)((w) >> 16) & 0xffffffu)
#define SHM_SLAB_OWNER(w)	((uint32_t)((w) >> 40) & 0xffffffu)
#define SHM_SLAB_LEASED(w, l)	(((w) & ~(UINT64_C(0xffffff) << 16)) | \
	(uint64_t)(l) << 16)
#define SHM_SLAB_OWNED(w, o)	(((w) & UINT64_C(0xffffffffff)) | \
	(uint64_t)(o) << 40)
_Static_assert(SHM_LEASES < 0xffffff && SHM_NCLASSES <= 128,
    "the slab word's fields are too narrow");
_Static_assert(SHM_LEASES % SHM_LEASES_PAGE == 0 &&
    SHM_LEASES_PAGE * 64 == 4096, "lease records fill whole pages");

/*
 * The root table is compact: roots 0 .. roots_used-1 are the heap's roots,
 * in no order, and nothing at or above roots_used is read (a removed root's
 * place is taken by the last one).  So an image carries roots_used records,
 * not the table's room, and a page of the table is committed only when a
 * root first lands on it.  Finding a root by name is the daemon's private
 * hash index (daemon/roots.c), rebuilt from the table at each start.
 */
struct shm_root {
	char name[SHM_ROOT_NAME_MAX + 1];	/* NUL padded */
	_Atomic uint64_t value;
	uint32_t len;		/* strlen(name) */
	uint32_t pad;
};

/* One cache line.  owner_pid, owner_start, slab and cls are the daemon's;
 * set_slab, word, mask and pending belong to the client thread holding
 * the lease, which claims in the slabs of its class it owns and says here
 * where its private set lies and where it is claiming. */
struct shm_lease {
	uint32_t owner_pid;	/* 0 = record unused */
	uint32_t slab;		/* leased slab (marked in its slab word) */
	uint64_t owner_start;	/* owner's start time (clock ticks) */
	_Atomic uint32_t word;	/* bitmap word the private set lies in */
	_Atomic uint32_t pending;	/* slab + 1 it is claiming in, 0 none */
	_Atomic uint64_t mask;	/* private set: claimed, not handed out */
	_Atomic uint32_t set_slab;	/* slab the private set lies in */
	uint8_t cls;
	uint8_t pad[27];
};

/*
 * Six cache lines.  A client process's session: who it is, and the
 * journal of its last request that changes the heap (daemon/journal.h
 * gives the states and the argument for exactly-once).  Daemon only.
 */
struct shm_session {
	_Atomic uint32_t state;	/* SESSION_FREE, _IDLE, _INTENT, _DONE */
	uint32_t pid;
	uint64_t start;		/* the process's start time (clock ticks) */
	uint64_t nonce;		/* the token's secret half */
	uint64_t seq;		/* the request the journal is about */
	uint32_t kind;		/* its body case (proto) */
	_Atomic uint32_t step;	/* sub-steps of it done */
	int32_t error;		/* DONE: 0 or its errno */
	uint32_t pad0;
	uint64_t arg[6];	/* INTENT: the plan */
	uint64_t res[2];	/* DONE: the outcome */
	char text[SHM_SESSION_TEXT];	/* a root's name; DONE: error text */
	uint8_t pad[16];
};
_Static_assert(sizeof(struct shm_session) == 384,
    "a session is six cache lines");

/* A block in a session's plan (daemon/alloc.c): slab | index << 32 |
 * class << 48 for a small block, slab | slabs << 32 | SHM_REF_LARGE for an
 * extent.  A Free's plan names its block in arg[0], a Realloc's in arg[1];
 * shm_check() reads them to tell a slab the daemon holds for a free. */
#define SHM_REF_LARGE		(UINT64_C(1) << 63)
#define SHM_REF_SLAB(r)		((r) & 0xffffffffu)
#define SHM_REF_INDEX(r)	(((r) >> 32) & 0xffffu)
#define SHM_REF_CLS(r)		(((r) >> 48) & 0x7fu)
#define SHM_REF_SLABS(r)	(((r) >> 32) & 0x7fffffffu)
/* The states and kinds shm_check() reads (daemon/journal.h has the rest):
 * kinds are aclheap.proto's body field numbers, asserted in journal.c. */
#define SHM_SESSION_INTENT	2
#define SHM_KIND_FREE		11
#define SHM_KIND_REALLOC	12

struct shm_super {
	uint64_t magic;
	uint32_t version;
	uint32_t ptr_bits;
	uint8_t identity[16];
	uint64_t base;
	uint64_t size;
	uint64_t slab_size;
	uint64_t nslabs;
	uint64_t roots_off;
	uint64_t leases_off;
	uint64_t slabs_off;
	uint64_t bitmaps_off;
	uint64_t sides_off;
	uint64_t data_off;
	uint64_t created;	/* unix time of format */
	_Atomic uint64_t generation;	/* bumped by each checkpoint */
	_Atomic uint64_t epoch;	/* bumped by each daemon start */
	_Atomic uint64_t slab_hwm;	/* no slab at or above is in use */
	/* A change of a small slab's owner in progress (slab_owner_move()):
	 * the slab + 1 and its owner before; start-up puts that owner back. */
	_Atomic uint32_t move_slab;
	uint32_t move_from;
	uint64_t sessions_off;	/* layout 6 */
	/* Layout 7: no lease record at or above lease_hwm has been handed
	 * out since the heap was made or loaded (their pages may not be
	 * committed: nobody reads them), lease_hwm <= nleases.  The daemon
	 * raises it before it hands out such a record. */
	_Atomic uint32_t lease_hwm;
	uint32_t nleases;	/* records in [leases_off, slabs_off) */
	uint64_t roots_max;	/* layout 8: the root table's room */
	_Atomic uint64_t roots_used;	/* roots in use, the first ones */
	/* Layout 9: the most the heap can grow to.  The geometry is that of
	 * a heap of max_size; size and nslabs are what is in use, raised by
	 * growth (size first, then nslabs: a reader of nslabs may use that
	 * many slabs).  The segment and the meta object are max_size bytes. */
	uint64_t max_size;
};

/*
 * The layout is shared by every process mapping the segment, whatever
 * build it comes from, and an image copies it byte for byte, all but the
 * lease records (image.h):
 * a change to any of these is a new SHM_VERSION.  The atomics must be
 * plain words, lock-free, as other processes use them.
 */
_Static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint64_t) == 8 &&
    sizeof(_Atomic uint16_t) == 2, "atomics are not plain words");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
    "shared atomics must be lock-free");
_Static_assert(sizeof(struct shm_slab) == 24 &&
    offsetof(struct shm_slab, run) == 8 &&
    offsetof(struct shm_slab, req) == 16, "struct shm_slab changed");
_Static_assert(sizeof(struct shm_root) == 272 &&
    offsetof(struct shm_root, value) == 256 &&
    offsetof(struct shm_root, len) == 264, "struct shm_root changed");
_Static_assert(sizeof(struct shm_lease) == 64 &&
    offsetof(struct shm_lease, slab) == 4 &&
    offsetof(struct shm_lease, owner_start) == 8 &&
    offsetof(struct shm_lease, word) == 16 &&
    offsetof(struct shm_lease, pending) == 20 &&
    offsetof(struct shm_lease, mask) == 24 &&
    offsetof(struct shm_lease, set_slab) == 32 &&
    offsetof(struct shm_lease, cls) == 36, "struct shm_lease changed");
_Static_assert(sizeof(struct shm_super) == 192 &&
    sizeof(struct shm_super) <= SHM_SUPER_BYTES &&
    offsetof(struct shm_super, version) == 8 &&
    offsetof(struct shm_super, ptr_bits) == 12 &&
    offsetof(struct shm_super, identity) == 16 &&
    offsetof(struct shm_super, base) == 32 &&
    offsetof(struct shm_super, size) == 40 &&
    offsetof(struct shm_super, slab_size) == 48 &&
    offsetof(struct shm_super, nslabs) == 56 &&
    offsetof(struct shm_super, roots_off) == 64 &&
    offsetof(struct shm_super, leases_off) == 72 &&
    offsetof(struct shm_super, slabs_off) == 80 &&
    offsetof(struct shm_super, bitmaps_off) == 88 &&
    offsetof(struct shm_super, sides_off) == 96 &&
    offsetof(struct shm_super, data_off) == 104 &&
    offsetof(struct shm_super, created) == 112 &&
    offsetof(struct shm_super, generation) == 120 &&
    offsetof(struct shm_super, epoch) == 128 &&
    offsetof(struct shm_super, slab_hwm) == 136 &&
    offsetof(struct shm_super, move_slab) == 144 &&
    offsetof(struct shm_super, move_from) == 148 &&
    offsetof(struct shm_super, sessions_off) == 152 &&
    offsetof(struct shm_super, lease_hwm) == 160 &&
    offsetof(struct shm_super, nleases) == 164 &&
    offsetof(struct shm_super, roots_max) == 168 &&
    offsetof(struct shm_super, roots_used) == 176 &&
    offsetof(struct shm_super, max_size) == 184,
    "struct shm_super changed");
_Static_assert(offsetof(struct shm_session, seq) == 24 &&
    offsetof(struct shm_session, arg) == 48 &&
    offsetof(struct shm_session, res) == 96 &&
    offsetof(struct shm_session, text) == 112, "struct shm_session changed");
_Static_assert(SHM_BITMAP_BYTES == SHM_BITMAP_WORDS * 8 &&
    SHM_SIDE_BYTES % 8 == 0, "bitmap or side line size");

/* A mapped segment as a process sees it.  sb is where it is mapped here:
 * base itself, or scratch memory when an image is examined offline. */
#define SEG_OWN	3	/* the daemon's ranges (seg_own_ranges()) */

struct shm_seg {
	struct shm_super *sb;
	uintptr_t base;
	uint64_t size;		/* the heap's size: what is in use */
	uint64_t nslabs;	/* slabs in use, of size */
	uint64_t max;		/* its maximum: the mapping's length */
	uint64_t nslabs_max;	/* slabs of a heap of max */
	uint32_t nleases;	/* lease records (geometry) */
	uint64_t roots_max;	/* the root table's room */
	struct shm_root *roots;
	struct shm_lease *leases;
	struct shm_session *sessions;
	struct shm_slab *slabs;
	_Atomic uint64_t *bitmaps;
	_Atomic uint16_t *sides;
	uintptr_t data;		/* where slab 0 is mapped here */
	int fd;			/* -1 once closed */
	int mfd;		/* the meta object, -1 if none (below) */
	uint64_t own[SEG_OWN][2];	/* its ranges: [off, end) */
};

struct shm_geom {
	uint64_t nslabs;	/* of the size */
	uint64_t nslabs_max;	/* of the maximum, which places the rest */
	uint64_t meta_end;	/* end of the slab table's slabs in use */
	uint32_t nleases;
	uint64_t roots_max;
	uint64_t roots_off, leases_off, sessions_off, slabs_off, bitmaps_off;
	uint64_t sides_off;
	uint64_t data_off;
};

/*
 * The daemon's ranges.  What only the daemon writes (super and roots, the
 * slab table, the sessions) lies in SEG_OWN page-aligned ranges of the
 * segment.  A second object, the meta object (seg_meta_name()), the size
 * of the segment and sparse, backs exactly those ranges: every process
 * maps the segment, then the meta object over them, at the same offsets.
 * The daemon maps it read-write; clients get a descriptor opened
 * read-only, and map it PROT_READ: a store faults, and mprotect() cannot
 * make a mapping of a read-only descriptor writable.  The segment's own
 * pages there are never read by anyone.  Offset I/O on the segment goes
 * to the object that holds the offset: seg_fd_at(), seg_pread(),
 * seg_pwrite(), seg_commit() and seg_decommit() do the routing.  A
 * segment without a meta object (unit tests, scratch copies) has mfd -1:
 * everything is then in fd.
 */
void	 seg_own_ranges(const struct shm_geom *, uint64_t r[SEG_OWN][2]);

/* shm/seg.c: naming, creating, mapping */
int	 seg_geometry(uint64_t size, struct shm_geom *);
int	 seg_geometry_max(uint64_t size, uint64_t max, struct shm_geom *);
void	 seg_name(const uint8_t identity[16], char *, size_t);
int	 seg_create(const uint8_t identity[16], uint64_t max, int *fdp);
int	 seg_open(const uint8_t identity[16], int *fdp);
int	 seg_unlink(const uint8_t identity[16]);
int	 seg_map(struct shm_seg *, int fd, uintptr_t base, uint64_t size,
	    char *err, size_t errlen);
int	 seg_map_max(struct shm_seg *, int fd, uintptr_t base, uint64_t size,
	    uint64_t max, char *err, size_t errlen);
int	 seg_remap(struct shm_seg *, int fd, int mfd, char *err, size_t errlen);
void	 seg_unmap(struct shm_seg *);
void	 seg_bind(struct shm_seg *, void *mem, uintptr_t base, uint64_t size);
void	 seg_bind_max(struct shm_seg *, void *mem, uintptr_t base,
	    uint64_t size, uint64_t max);
int	 seg_resize(struct shm_seg *, uint64_t size);
int	 seg_format(struct shm_seg *, const uint8_t identity[16]);
void	 seg_super_stamp(struct shm_super *, const uint8_t identity[16],
	    uintptr_t base, uint64_t size, uint64_t max);
int	 seg_super_check(const struct shm_super *, uintptr_t base,
	    uint64_t size, uint64_t max, char *err, size_t errlen);
void	 seg_meta_name(const uint8_t identity[16], char *, size_t);
int	 seg_meta_create(const uint8_t identity[16], uint64_t max, int *fdp);
int	 seg_meta_open(const uint8_t identity[16], int rdonly, int *fdp);
int	 seg_meta_open_ro(const struct shm_seg *, const uint8_t identity[16],
	    int *fdp);
int	 seg_map_meta(struct shm_seg *, int mfd, int writable, char *err,
	    size_t errlen);
int	 seg_fd_at(const struct shm_seg *, uint64_t off, uint64_t *len);
int	 seg_pread(const struct shm_seg *, void *, size_t, uint64_t off);
int	 seg_pwrite(const struct shm_seg *, const void *, size_t, uint64_t off);
int	 seg_commit(const struct shm_seg *, uint64_t off, uint64_t len);
int	 seg_commit_sessions(const struct shm_seg *, const struct shm_geom *);
int	 seg_decommit(const struct shm_seg *, uint64_t off, uint64_t len);
int	 fd_data_ranges(int fd, off_t lo, off_t hi,
	    int (*)(void *, off_t, off_t), void *arg);
int	 seg_commit_leases(struct shm_seg *, uint32_t from, uint32_t to);
int	 seg_range_owner(uintptr_t lo, uintptr_t hi, char *, size_t);
int	 seg_parse_size(const char *, uint64_t *);
uint64_t seg_roots_max(uint64_t size);
/* Bytes of [0, leases_off) that hold the superblock and n roots. */
static inline uint64_t
seg_roots_end(const struct shm_geom *g, uint64_t n)
{
	return g->roots_off + n * sizeof(struct shm_root);
}

/* shm/slab.c: size classes and block operations */
extern const uint32_t slab_class_size[SHM_NCLASSES];
extern const uint64_t slab_class_magic[SHM_NCLASSES];	/* ceil(2^48/size) */
extern const uint16_t slab_class_nblocks[SHM_NCLASSES];
extern const uint8_t slab_class_slabs[SHM_NCLASSES];	/* slabs a span */
extern const uint16_t slab_class_sideoff[SHM_NINBAND];	/* in-slab sides */
int	 slab_class_aligned(size_t size, size_t alignment);

/* The class of a request, or -1 when it needs an extent.  One compare
 * for the 16-byte steps, a bit scan for the rest. */
static inline int
slab_class_of(size_t size)
{
	size_t m;
	int p;

	if (size <= 128)
		return size == 0 ? 0 : (int)((size - 1) >> 4);
	if (size > SHM_CLASS_MAX)
		return -1;
	m = size - 1;
	p = 63 - __builtin_clzll(m);
	return 8 + (p - 7) * 4 + (int)(m >> (p - 2)) - 4;
}

static inline struct shm_slab *
slab_of(const struct shm_seg *seg, uintptr_t addr)
{
	return &seg->slabs[(addr - seg->data) >> SHM_SLAB_SHIFT];
}

static inline uint64_t
slab_index(const struct shm_seg *seg, uintptr_t addr)
{
	return (addr - seg->data) >> SHM_SLAB_SHIFT;
}

static inline uintptr_t
slab_addr(const struct shm_seg *seg, uint64_t s)
{
	return seg->data + (s << SHM_SLAB_SHIFT);
}

static inline _Atomic uint64_t *
slab_bitmap(const struct shm_seg *seg, uint64_t s)
{
	return seg->bitmaps + s * SHM_BITMAP_WORDS;
}

/*
 * How many of the blocks of small slab (or span head) s of class cls are
 * ready: their memory committed, so they may be claimed.  Blocks from it
 * on are neither claimed nor live, and their memory (and, below 1 KiB,
 * their side entries') may be a hole that nobody reads.  The daemon alone
 * raises it, after committing; it never falls while the slab is of cls.
 */
static inline uint32_t
slab_ready(const struct shm_seg *seg, uint64_t s, uint32_t cls)
{
	uint32_t r = atomic_load_explicit(&seg->slabs[s].ready,
	    memory_order_acquire);

	return r < slab_class_nblocks[cls] ? r : slab_class_nblocks[cls];
}

/* Slab s's side line (contiguous with the next slab's). */
static inline _Atomic uint16_t *
slab_sides(const struct shm_seg *seg, uint64_t s)
{
	return seg->sides + s * (SHM_SIDE_BYTES / 2);
}

/* Where the side entries of a slab (or span head) s of class cls begin:
 * 16-bit entries below SHM_NSMALL, 32-bit ones from it on (shm.h's top). */
static inline uintptr_t
slab_side_base(const struct shm_seg *seg, uint64_t s, uint32_t cls)
{
	if (cls < SHM_NINBAND)
		return slab_addr(seg, s) + slab_class_sideoff[cls];
	return (uintptr_t)slab_sides(seg, s);
}

/* How many side entries a slab of cls has room for out of the slab
 * (in-band classes have exactly nblocks). */
static inline uint32_t
slab_side_room(uint32_t cls)
{
	if (cls < SHM_NINBAND)
		return slab_class_nblocks[cls];
	if (cls < SHM_NSMALL)
		return SHM_SIDE_BYTES / 2;
	return (uint32_t)slab_class_slabs[cls] * (SHM_SIDE_BYTES / 4);
}

static inline uint32_t
slab_side_load(uintptr_t base, uint32_t cls, uint32_t i)
{
	if (cls >= SHM_NSMALL)
		return atomic_load_explicit((_Atomic uint32_t *)base + i,
		    memory_order_acquire);
	return atomic_load_explicit((_Atomic uint16_t *)base + i,
	    memory_order_acquire);
}

static inline uint32_t
slab_side_xchg(uintptr_t base, uint32_t cls, uint32_t i, uint32_t v)
{
	if (cls >= SHM_NSMALL)
		return atomic_exchange_explicit((_Atomic uint32_t *)base + i,
		    v, memory_order_acq_rel);
	return atomic_exchange_explicit((_Atomic uint16_t *)base + i,
	    (uint16_t)v, memory_order_acq_rel);
}

static inline void
slab_side_store(uintptr_t base, uint32_t cls, uint32_t i, uint32_t v)
{
	if (cls >= SHM_NSMALL)
		atomic_store_explicit((_Atomic uint32_t *)base + i, v,
		    memory_order_release);
	else
		atomic_store_explicit((_Atomic uint16_t *)base + i,
		    (uint16_t)v, memory_order_release);
}

/* Bytes from the base to the end of the last slab in use. */
static inline uint64_t
seg_extent(const struct shm_seg *seg)
{
	return (uint64_t)(seg->data - (uintptr_t)seg->sb) +
	    (seg->nslabs << SHM_SLAB_SHIFT);
}

static inline int
seg_in_data(const struct shm_seg *seg, uintptr_t addr)
{
	return addr >= seg->data &&
	    addr - seg->data < (seg->nslabs << SHM_SLAB_SHIFT);
}

/* The head of the span slab s is a tail of, or UINT64_MAX.  run comes
 * from the slab table and is bounded before anyone walks it. */
static inline uint64_t
slab_span_head(const struct shm_seg *seg, uint64_t s)
{
	uint64_t h = seg->slabs[s].run, w;
	uint32_t st, cls;

	if (h >= s || s - h >= SHM_SPAN_MAX)
		return UINT64_MAX;
	w = atomic_load_explicit(&seg->slabs[h].word, memory_order_acquire);
	st = SHM_SLAB_STATE(w);
	cls = SHM_SLAB_CLS(w);
	if ((st != SHM_SMALL && st != SHM_RECLAIMING) || cls < SHM_NSMALL ||
	    cls >= SHM_NCLASSES || s - h >= slab_class_slabs[cls])
		return UINT64_MAX;
	return h;
}

/* The lease records that may be in use: [0, this).  The superblock is the
 * daemon's, but bounded all the same before anyone walks the records. */
static inline uint32_t
seg_lease_hwm(const struct shm_seg *seg)
{
	uint32_t n = atomic_load_explicit(&seg->sb->lease_hwm,
	    memory_order_acquire);

	return n < seg->nleases ? n : seg->nleases;
}

/* What a pointer is, for free, usable_size and validation. */
struct slab_block {
	uint64_t slab;		/* the slab, or the span's head */
	uint32_t index;		/* block index (small) */
	uint32_t cls;		/* small: class; large: UINT32_MAX */
	uint64_t req;		/* requested size */
	uint64_t usable;	/* usable size */
	uintptr_t sides;	/* small: where its side entries begin */
};

/*
 * Resolves a pointer to the live block that starts there.  Anything else
 * (outside the data area, inside a block, a free or never-used block, a
 * tail of an extent) is -EINVAL, and nothing is written.  Inline: it is
 * half of every aclfree().
 */
static inline __attribute__((always_inline)) int
slab_block_lookup(const struct shm_seg *seg, uintptr_t addr,
    struct slab_block *b)
{
	uint64_t s, off, w;
	uint32_t cls, cs, i, side;
	uintptr_t sides;

	if (!seg_in_data(seg, addr))
		return -EINVAL;
	s = slab_index(seg, addr);
	w = atomic_load_explicit(&seg->slabs[s].word, memory_order_acquire);
	if (__builtin_expect(SHM_SLAB_STATE(w) == SHM_SPAN_TAIL, 0)) {
		if ((s = slab_span_head(seg, s)) == UINT64_MAX)
			return -EINVAL;
		w = atomic_load_explicit(&seg->slabs[s].word,
		    memory_order_acquire);
	}
	off = addr - slab_addr(seg, s);
	/* RECLAIMING keeps its class and its blocks: a live block holds its
	 * bit, so the reclaim of its slab cannot succeed; it is looked up
	 * like any other. */
	if (__builtin_expect(SHM_SLAB_STATE(w) == SHM_SMALL, 1) ||
	    SHM_SLAB_STATE(w) == SHM_RECLAIMING) {
		cls = SHM_SLAB_CLS(w);
		if (cls >= SHM_NCLASSES)
			return -EINVAL;
		cs = slab_class_size[cls];
		/* off / cs without a divide: exact for every offset in a
		 * slab or span. */
		i = (uint32_t)((off * slab_class_magic[cls]) >> 48);
		if (off != (uint64_t)i * cs || i >= slab_ready(seg, s, cls))
			return -EINVAL;
		sides = slab_side_base(seg, s, cls);
		side = slab_side_load(sides, cls, i);
		if (side == 0 || side > cs + 1)
			return -EINVAL;
		b->slab = s;
		b->index = i;
		b->cls = cls;
		b->req = cs - (side - 1u);
		b->usable = cs;
		b->sides = sides;
		return 0;
	}
	/* run comes from shared memory: bounded before anyone walks it. */
	if (SHM_SLAB_STATE(w) != SHM_LARGE_HEAD || off != 0 ||
	    seg->slabs[s].run == 0 || seg->slabs[s].run > seg->nslabs - s)
		return -EINVAL;
	b->slab = s;
	b->index = 0;
	b->cls = UINT32_MAX;
	b->req = seg->slabs[s].req;
	b->usable = (uint64_t)seg->slabs[s].run << SHM_SLAB_SHIFT;
	b->sides = 0;
	return 0;
}

/* Bits of word w that stand for the first n blocks of a slab. */
static inline uint64_t
slab_word_first(uint32_t n, uint32_t w)
{
	if (n >= (w + 1) * 64)
		return ~UINT64_C(0);
	if (n <= w * 64)
		return 0;
	return (UINT64_C(1) << (n - w * 64)) - 1;
}

/* Bits of word w that stand for real blocks of a class. */
static inline uint64_t
slab_word_valid(uint32_t cls, uint32_t w)
{
	return slab_word_first(slab_class_nblocks[cls], w);
}

/*
 * A small slab's owner (affinity) is the only one to claim in it.  The
 * daemon clears it when the record it names is released, so a named
 * record is a live one serving the slab's class.  Threads leave others'
 * slabs alone, as malloc leaves a thread's blocks in its arena (two
 * threads claiming in one slab write each other's cache lines on every
 * free).  Daemon only: small slab s's owner becomes a (a record + 1, 0
 * itself), as a plain store, for owners that cannot be claiming (gone,
 * giving the slab back themselves, start-up); any other change goes
 * through slab_owner_move().
 */
static inline void
slab_affinity_set(struct shm_seg *seg, uint64_t s, uint32_t a)
{
	uint64_t w = atomic_load(&seg->slabs[s].word);

	atomic_store(&seg->slabs[s].word, SHM_SLAB_OWNED(w, a));
}

static inline uint32_t
slab_affinity(const struct shm_seg *seg, uint64_t s)
{
	return SHM_SLAB_OWNER(atomic_load(&seg->slabs[s].word));
}

static inline int
slab_affine_other(const struct shm_seg *seg, uint64_t s, uint32_t rec)
{
	uint32_t a = SHM_SLAB_OWNER(atomic_load_explicit(&seg->slabs[s].word,
	    memory_order_relaxed));

	return a != 0 && a != rec + 1;
}

/* Makes a claimed block live: its side entry records the request. */
static inline void
slab_set_live(struct shm_seg *seg, uint64_t s, uint32_t i, uint32_t cls,
    size_t req)
{
	slab_side_store(slab_side_base(seg, s, cls), cls, i,
	    (uint32_t)(slab_class_size[cls] - req + 1));
}

int	 slab_claim_begin(struct shm_seg *, uint64_t s, uint32_t cls,
	    uint32_t rec);
void	 slab_claim_end(struct shm_seg *, uint32_t rec);
int	 slab_owner_move(struct shm_seg *, uint64_t s, uint32_t to);
void	 slab_owner_move_undo(struct shm_seg *);
int	 slab_announced(const struct shm_seg *, uint64_t s, uint32_t who);
long	 slab_claim_one(struct shm_seg *, uint64_t s, uint32_t cls, uint32_t *hint);
uint64_t slab_claim_word(struct shm_seg *, uint64_t s, uint32_t cls, uint32_t w,
	    _Atomic uint64_t *intent);

/* Where a claim calls slab_claim_hook, for tests that kill a claimer at
 * each point: announced, intent recorded, bits taken; and a private set
 * given back: bits cleared, the record not told yet. */
enum { SLAB_HOOK_ANNOUNCED, SLAB_HOOK_INTENT, SLAB_HOOK_TAKEN,
    SLAB_HOOK_DROP };
extern void (*slab_claim_hook)(int where);
int	 slab_free_block(struct shm_seg *, const struct slab_block *, size_t *req);
int	 slab_reclaim(struct shm_seg *, uint64_t s);
uint64_t slab_settle_extents(struct shm_seg *);
uint32_t slab_used(const struct shm_seg *, uint64_t s, uint32_t cls,
	    uint64_t *req_bytes);
void	 slab_ready_ranges(uint32_t cls, uint32_t from, uint32_t to,
	    uint64_t r[4]);
uint32_t slab_claimed(const struct shm_seg *, uint64_t s);
uint32_t slab_claimed_ready(const struct shm_seg *, uint64_t s, uint32_t cls);
int	 slab_empty(const struct shm_seg *, uint64_t s);

/* shm/check.c: the validator */
struct shm_report {
	uint64_t slabs_free, slabs_small, slabs_large;
	uint64_t blocks_live;
	uint64_t blocks_orphaned;	/* claimed, not live (I5) */
	uint64_t blocks_unlisted;	/* of those, in no private set */
	uint64_t bytes_requested, bytes_live;
	uint64_t large_blocks;
	uint64_t roots;
};
int	 shm_check(const struct shm_seg *, struct shm_report *, char *err,
	    size_t errlen);
/* The same for a heap nobody else is changing (an image read offline, a
 * heap before any client attaches): what looks broken is, at once. */
int	 shm_check_still(const struct shm_seg *, struct shm_report *,
	    char *err, size_t errlen);

int	 shm_root_name_ok(const char *);
uint32_t shm_root_hash(const char *);

/*
 * The heap's figures, one pass over the slab table: the one place that
 * says what each means.  The Stats reply carries them as they are
 * (daemon/stats.c); aclheap_stats() and aclheapctl show them.
 *
 *   slabs_used = sum of small slabs (spans count all theirs) + extent slabs
 *   slabs_free = slabs_total - slabs_used,  bytes_in_use = slabs_used *
 *   SHM_SLAB_SIZE,  blocks = large_blocks + sum of cls[].used
 */
struct shm_stats {
	struct {
		uint64_t slabs, used, free, cached, req;
	} cls[SHM_NCLASSES];
	uint64_t slabs_total, slabs_free, bytes_in_use;
	uint64_t slabs_used;		/* small slabs + extent slabs */
	uint64_t blocks, req, cached;	/* live blocks, their requests */
	uint64_t large_blocks, large_bytes, large_req;
	uint64_t roots;
};
void	 shm_stats(const struct shm_seg *, struct shm_stats *);

#endif /* ACLHEAP_SHM_H */
