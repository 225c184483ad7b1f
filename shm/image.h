/* SPDX-License-Identifier: MIT */
/*
 * image.h: the on-disk image of a heap (STATE/heap.img).
 *
 * Theory of operation
 * -------------------
 *   +--------------------------------------------------------------+
 *   | header   magic, version, layout, identity, base, size,        |
 *   |          slab size, nslabs, generation, time, meta_len, hash  |
 *   +--------------------------------------------------------------+
 *   | section  META: segment bytes [0, meta_len): superblock,      |
 *   |          roots, lease records, slab table                     |
 *   +--------------------------------------------------------------+
 *   | section  RUN first=s count=n: bitmaps, side arrays and data   |
 *   |          of slabs s .. s+n-1 (only slabs in use; n <= 1024)   |
 *   | ...                                                           |
 *   +--------------------------------------------------------------+
 *   | section  END count=number of sections before it               |
 *   +--------------------------------------------------------------+
 *
 *   section = | struct image_section (hash of its own fields) |
 *             | len bytes of payload | 8-byte XXH3 of the payload |
 *
 * Every byte is covered by a checksum (XXH3-64 from libxxhash), so a flip
 * anywhere is found, and the missing END section finds a truncation.  Slabs
 * that hold nothing are not written: the image of a big, mostly empty heap
 * is as small as what it holds.
 *
 * Writing is temp file, fsync, rename, fsync of the folder: at every instant
 * heap.img is a whole image, the old one or the new one.
 *
 * An image of a heap in use is captured block by block: a slab's bitmap
 * and its side entries are copied moments apart while clients claim and
 * free.  Every reader therefore settles what it loaded (image_settle):
 * bitmaps are rebuilt from the side entries, the only record of which
 * blocks are live, and lease records are dropped.
 */
#ifndef ACLHEAP_IMAGE_H
#define ACLHEAP_IMAGE_H

#include <stdint.h>
#include <sys/types.h>

#include "shm/shm.h"

#define IMAGE_MAGIC	UINT64_C(0x00474d4950414548)	/* "HEAPIMG\0" */
#define IMAGE_VERSION	1u
#define IMAGE_RUN_MAX	1024u		/* slabs per RUN section */

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

/* Where a reader puts what it loads: at offset off of the segment. */
typedef int (*image_put_fn)(void *ctx, uint64_t off, const void *, size_t);

struct image_info {
	struct image_header hdr;
	uint64_t sections;
	uint64_t runs;
	uint64_t slabs;		/* slabs carried by RUN sections */
	uint64_t bytes;		/* file size */
};

/* shm/image.c */
uint64_t image_hash(const void *, size_t);
int	 image_writer_open(const char *dir, const char *name, int *fdp,
	    char *err, size_t errlen);
int	 image_write_all(int fd, const void *, size_t);
int	 image_write_header(int fd, const struct image_header *);
int	 image_write_section(int fd, uint32_t type, uint64_t first,
	    uint64_t count, const void *const *parts, const size_t *lens,
	    int nparts);
int	 image_runs(const struct shm_slab *, uint64_t nslabs,
	    const struct shm_seg *live, uint64_t **runs,
	    uint64_t *nruns);
int	 image_write(int fd, const struct shm_seg *, const uint8_t identity[16],
	    const uint8_t *meta, uint64_t meta_len, const uint64_t *runs,
	    uint64_t nruns, uint64_t generation);
int	 image_commit(int fd, const char *dir, const char *tmpname,
	    const char *name, char *err, size_t errlen);
int	 image_read_header(int fd, struct image_header *, char *err,
	    size_t errlen);
int	 image_read(int fd, const char *path, image_put_fn, void *ctx,
	    struct image_info *, char *err, size_t errlen);
int	 image_load_offline(const char *path, struct shm_seg *,
	    struct image_info *, char *err, size_t errlen);
void	 image_unload_offline(struct shm_seg *);
void	 image_settle(struct shm_seg *);

#endif /* ACLHEAP_IMAGE_H */
