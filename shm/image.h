/* SPDX-License-Identifier: MIT */
/*
 * image.h: the on-disk image of a heap (STATE/heap.img).
 *
 * Theory of operation
 * -------------------
 *   +--------------------------------------------------------------+
 *   | header   magic, version, layout, identity, base, size,        |
 *   |          slab size, nslabs, generation, time, meta_len, kind, |
 *   |          seq, base/parent generation, parent digest, max size,|
 *   |          hash                                                 |
 *   +--------------------------------------------------------------+
 *   | section  META count=r: segment bytes [0, roots_off + r x     |
 *   |          root) then [slabs_off, meta_end): superblock, the r  |
 *   |          roots in use, the slab table's slabs in use (meta_len |
 *   |          bytes in all; no lease records, nothing of the room  |
 *   |          to grow)                                             |
 *   +--------------------------------------------------------------+
 *   | section  RUN first=s count=n: bitmaps, side arrays and data   |
 *   |          of slabs s .. s+n-1 (n <= IMAGE_RUN_MAX)             |
 *   | ...                                                           |
 *   +--------------------------------------------------------------+
 *   | section  END count=sections before it, payload: the digest    |
 *   +--------------------------------------------------------------+
 *
 *   section = | struct image_section (hash of its own fields) |
 *             | len bytes of payload | 8-byte XXH3 of the payload |
 *
 * Every byte is covered by a checksum (XXH3-64 from libxxhash), so a flip
 * anywhere is found, and the missing END section finds a truncation.  Every
 * section's hashes are seeded with the header's hash, and END carries a
 * digest of the header's and every section's hashes in order: a section
 * taken from another image, even of the same heap, is refused like any
 * other damage.
 *
 * A chain: STATE/heap.img is a base (kind FULL: every slab in use); each
 * heap.img.delta.K (K = 1, 2, ...) is a delta (kind DELTA): the whole
 * metadata and only the slabs whose contents changed since link K-1.  A delta names
 * its base's generation and the digest of the link before it, so a delta
 * of another chain is refused; one of an older base (a compaction renamed
 * a new base, and a crash kept it from removing the old deltas) is stale
 * and ends the chain.  Loading applies the links in order; a slab that
 * some link wrote and that the last metadata says is free reads as zeros.
 *
 * Writing is temp file, fsync, rename, fsync of the folder: at every instant
 * each file of the chain is whole, the old one or the new one, and a delta
 * counts only once it is renamed into place.
 *
 * Byte order.  The writer copies the header, the section headers, the
 * checksums and the segment's own bytes as they lie in memory, so every
 * integer is in the host's order; the build is for little-endian hosts
 * only (asserted below), which makes every image little-endian.  The
 * structs are laid out by hand, with no padding left for the compiler
 * to choose (sizes and offsets asserted below; shm.h does the same for
 * the segment's structs, which the metadata section copies).
 *
 * An image of a heap in use is captured block by block: a slab's bitmap
 * and its side entries are copied moments apart while clients claim and
 * free.  Every reader therefore settles what it loaded (image_settle):
 * bitmaps are rebuilt from the side entries, the only record of which
 * blocks are live, and lease records are dropped.  So an image does not
 * carry them at all (since layout 7): the lease region can be as large as
 * the heap has slabs without a checkpoint copying, hashing or writing it,
 * and a reader leaves it zero (lease_hwm 0: no record handed out).  Nor
 * does it carry the root table's room past the roots in use (layout 8):
 * the META section's count says how many roots it holds.
 */
#ifndef ACLHEAP_IMAGE_H
#define ACLHEAP_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/shm.h"

#define IMAGE_MAGIC	UINT64_C(0x00474d4950414548)	/* "HEAPIMG\0" */
#define IMAGE_VERSION	3u	/* 2: deltas; sections bound to their image;
				 * 3: max_size */
#define IMAGE_RUN_MAX	1024u		/* slabs per RUN section */
#define IMAGE_BATCH	64u		/* slabs per RUN section written */
#define IMAGE_CHAIN_MAX	64u		/* deltas after a base */

enum image_kind {
	IMAGE_FULL = 0,		/* self-contained: a base or a dump */
	IMAGE_DELTA = 1,	/* what changed since the link before */
};

enum image_section_type {
	IMG_META = 1,
	IMG_RUN = 2,
	IMG_END = 3,
};

struct image_header {
	uint64_t magic;
	uint32_t version;
	uint32_t layout;
	uint8_t identity[16];
	uint64_t base;
	uint64_t size;
	uint64_t slab_size;
	uint64_t nslabs;
	uint64_t generation;
	uint64_t time;
	uint64_t meta_len;
	uint32_t kind;		/* enum image_kind */
	uint32_t seq;		/* delta: K of heap.img.delta.K, full: 0 */
	uint64_t base_generation;	/* delta: its base's generation */
	uint64_t parent_generation;	/* delta: the link before's */
	uint64_t parent_digest;		/* delta: the link before's digest */
	uint64_t max_size;	/* the most the heap can grow to */
	uint64_t hash;		/* XXH3 of the bytes above */
};

struct image_section {
	uint32_t type;
	uint32_t pad;
	uint64_t first;
	uint64_t count;
	uint64_t len;
	uint64_t hash;		/* XXH3 of the bytes above */
};

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
    "images and the segment are little-endian: a big-endian host needs a "
    "reader and writer that swap");
_Static_assert(sizeof(struct image_header) == 136 &&
    offsetof(struct image_header, version) == 8 &&
    offsetof(struct image_header, layout) == 12 &&
    offsetof(struct image_header, identity) == 16 &&
    offsetof(struct image_header, base) == 32 &&
    offsetof(struct image_header, size) == 40 &&
    offsetof(struct image_header, slab_size) == 48 &&
    offsetof(struct image_header, nslabs) == 56 &&
    offsetof(struct image_header, generation) == 64 &&
    offsetof(struct image_header, time) == 72 &&
    offsetof(struct image_header, meta_len) == 80 &&
    offsetof(struct image_header, kind) == 88 &&
    offsetof(struct image_header, seq) == 92 &&
    offsetof(struct image_header, base_generation) == 96 &&
    offsetof(struct image_header, parent_generation) == 104 &&
    offsetof(struct image_header, parent_digest) == 112 &&
    offsetof(struct image_header, max_size) == 120 &&
    offsetof(struct image_header, hash) == 128,
    "struct image_header changed: that is a new IMAGE_VERSION");
_Static_assert(sizeof(struct image_section) == 40 &&
    offsetof(struct image_section, pad) == 4 &&
    offsetof(struct image_section, first) == 8 &&
    offsetof(struct image_section, count) == 16 &&
    offsetof(struct image_section, len) == 24 &&
    offsetof(struct image_section, hash) == 32,
    "struct image_section changed: that is a new IMAGE_VERSION");

/*
 * Where a reader puts what it loads: at offset off of the segment.  p NULL:
 * the range must read as zeros.  over: an earlier link of the chain may
 * have written the range (zeros in p must then be stored as well).
 */
typedef int (*image_put_fn)(void *ctx, uint64_t off, const void *p,
    size_t n, int over);

struct image_info {
	struct image_header hdr;	/* the last link's (the base's if alone) */
	uint64_t sections;	/* of every link */
	uint64_t runs;
	uint64_t slabs;		/* slabs carried by RUN sections */
	uint64_t bytes;		/* of every link's file */
	uint64_t base_generation;
	uint64_t base_bytes;
	uint64_t links;		/* deltas applied after the base */
	uint64_t stale;		/* 1: a stale delta ended the chain */
	uint64_t digest;	/* the last link's */
};

/*
 * What image_write() is to write.  Slabs in use are those the slab table
 * in meta says are (image_slab_used()).  prev == NULL: every one of them;
 * else those whose hash in next (from image_scan(), or copied from prev)
 * differs from prev.  next, if not NULL, receives each slab's hash as
 * written (0: free).  check, if not NULL, is a scratch heap that receives
 * meta and every copied bitmap and side array: what a reader of the
 * image would see, for image_check_scratch().  meta is laid out as the
 * segment, meta_end bytes, of which the lease region is not read.
 */
struct image_spec {
	const struct shm_seg *seg;
	const uint8_t *identity;
	const uint8_t *meta;
	uint64_t meta_len;
	uint64_t generation;
	uint64_t time;		/* 0: now */
	uint32_t kind, seq;
	uint64_t base_generation, parent_generation, parent_digest;
	const uint64_t *prev;
	uint64_t *next;
	struct shm_seg *check;
};

struct image_out {
	uint64_t slabs;		/* slabs written */
	uint64_t sections;
	uint64_t digest;	/* what the next delta names */
};

/*
 * The metadata an image carries: the superblock, the roots in use (the
 * superblock's roots_used, at most roots_max) and the slab table of the
 * slabs in use.  The root table's room past roots_used is not carried,
 * so a heap with few roots has small images however many it may hold,
 * nor are the lease records (above), nor the slab table's room to grow.
 * meta is segment-shaped: bytes [0, meta_end).
 */
static inline uint64_t
image_meta_roots(const struct shm_geom *g, const uint8_t *meta)
{
	uint64_t n = atomic_load(&((const struct shm_super *)meta)->roots_used);

	return n < g->roots_max ? n : g->roots_max;
}

static inline uint64_t
image_meta_bytes(const struct shm_geom *g, uint64_t roots)
{
	return seg_roots_end(g, roots) + (g->meta_end - g->slabs_off);
}

/* Whether len can be a META section's length in a heap of geometry g. */
static inline int
image_meta_len_ok(const struct shm_geom *g, uint64_t len)
{
	uint64_t fixed = image_meta_bytes(g, 0);

	return len >= fixed && (len - fixed) % sizeof(struct shm_root) == 0 &&
	    (len - fixed) / sizeof(struct shm_root) <= g->roots_max;
}

/* A slab whose bitmap, side array and data an image carries. */
static inline int
image_slab_used(uint64_t word)
{
	return SHM_SLAB_STATE(word) != SHM_FREE;
}

/* Test-only: called between the steps of image_commit(). */
enum { IMAGE_HOOK_SYNCED, IMAGE_HOOK_RENAMED };
extern void (*image_commit_hook)(int step);

/* shm/image.c */
uint64_t image_hash(const void *, size_t);
void	 image_meta_copy(uint8_t *dst, const void *src, const struct shm_geom *,
	    uint64_t roots);
uint64_t image_meta_hash(const uint8_t *meta, const struct shm_geom *);
uint64_t image_hash_seeded(const void *, size_t, uint64_t seed);
int	 image_writer_open(const char *dir, const char *name, int *fdp,
	    char *err, size_t errlen);
int	 image_write_all(int fd, const void *, size_t);
int	 image_write_header(int fd, const struct image_header *);
int	 image_write(int fd, const struct image_spec *, struct image_out *);
int	 image_scan(const struct shm_seg *, const struct shm_slab *table,
	    const uint64_t *prev, uint64_t *next, struct shm_seg *check,
	    uint64_t *changed);
int	 image_scratch(struct shm_seg *, uintptr_t base, uint64_t size,
	    uint64_t max);
uint64_t image_scratch_len(uint64_t size, uint64_t max);
void	 image_scratch_free(struct shm_seg *);
int	 image_check_scratch(struct shm_seg *, char *err, size_t errlen);
int	 image_commit(int fd, const char *dir, const char *tmpname,
	    const char *name, char *err, size_t errlen);
int	 image_read_header(int fd, struct image_header *, char *err,
	    size_t errlen);
int	 image_read(int fd, const char *path, image_put_fn, void *ctx,
	    struct image_info *, char *err, size_t errlen);
int	 image_read_chain(const char *path, image_put_fn, void *ctx,
	    struct image_info *, uint64_t *hashes, char *err, size_t errlen);
int	 image_read_chain_upto(const char *path, uint32_t links,
	    image_put_fn, void *ctx, struct image_info *, uint64_t *hashes,
	    uint32_t *failed, char *err, size_t errlen);
int	 image_load_offline(const char *path, struct shm_seg *,
	    struct image_info *, char *err, size_t errlen);
int	 image_load_offline_upto(const char *path, uint32_t links,
	    struct shm_seg *, struct image_info *, uint32_t *failed, char *err,
	    size_t errlen);
void	 image_unload_offline(struct shm_seg *);
void	 image_settle(struct shm_seg *);
void	 image_settle_hashed(struct shm_seg *, uint64_t *hashes);
void	 image_reseal(uint8_t *file, size_t len);

/* shm/heapid.c: STATE/heap.id, the identity of the heap's segment */
int	 heapid_read(const char *dir, uint8_t id[16], char *name,
	    size_t namelen);
int	 heapid_write(const char *dir, const uint8_t id[16], char *err,
	    size_t errlen);

#endif /* ACLHEAP_IMAGE_H */
