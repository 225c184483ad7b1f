/* SPDX-License-Identifier: MIT */
/*
 * seed_image.c: a small, valid heap image made in memory, for the image
 * corpus (gen_corpus) and as the base that fuzz_image's patch mode edits.
 *
 * A 4 MiB heap, empty or with: small blocks of one class in slab 0, a
 * one-slab extent in slab 1, slab 2 caught RECLAIMING by a crash, a lease
 * record of a process that is gone, and two roots.  Identity and times are
 * fixed, so the bytes are the same on every run.  As a delta, it is the
 * first one after a base of generation 2 whose hashes are not the heap's,
 * so it carries every slab in use and loads alone.
 */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/image.h"
#include "tests/fuzz/fuzz.h"

#define SEED_BASE	UINT64_C(0x340000000000)
#define SEED_SIZE	(UINT64_C(4) << 20)
#define SEED_TIME	1700000000

static void
populate(struct shm_seg *seg)
{
	uint32_t hint = 0, i;
	long blk;

	atomic_store(&seg->sb->slab_hwm, 3);	/* slabs 0-2 are in use */
	atomic_store(&seg->slabs[0].ready, slab_class_nblocks[3] / 2);
	atomic_store(&seg->slabs[0].word, SHM_SLAB_WORD(SHM_SMALL, 3, 0));
	for (i = 0; i < 20; i++) {
		blk = slab_claim_one(seg, 0, 3, &hint);
		slab_set_live(seg, 0, (uint32_t)blk, 3, 40 + i);
		memset((void *)(slab_addr(seg, 0) + (uintptr_t)blk * 64),
		    (int)i, 40 + i);
	}
	seg->slabs[1].run = 1;
	seg->slabs[1].req = 30000;
	atomic_store(&seg->slabs[1].word, SHM_SLAB_WORD(SHM_LARGE_HEAD, 0, 0));
	memset((void *)slab_addr(seg, 1), 0x5a, 30000);
	atomic_store(&seg->slabs[2].ready, slab_class_nblocks[7]);
	atomic_store(&seg->slabs[2].word, SHM_SLAB_WORD(SHM_RECLAIMING, 7, 0));
	seg->leases[0].owner_pid = 999999;
	seg->leases[0].slab = 0;
	seg->leases[0].cls = 3;
	strcpy(seg->roots[0].name, "list");
	atomic_store(&seg->roots[0].value, SEED_BASE + (seg->data -
	    (uintptr_t)seg->sb));
	strcpy(seg->roots[1].name, "extent");
	atomic_store(&seg->roots[1].value, SEED_BASE + (slab_addr(seg, 1) -
	    (uintptr_t)seg->sb));
	seg->roots[0].len = 4;
	seg->roots[1].len = 6;
	atomic_store(&seg->sb->roots_used, FUZZ_SEED_ROOTS);
}

/*
 * The image's bytes in a malloc'd *out.  The segment lives in a memory
 * file mapped wherever the kernel likes: an image records the heap's base
 * but is written from any mapping.  0 or a negative errno.
 */
int
fuzz_seed_image(int filled, int delta, uint8_t **out, size_t *outlen)
{
	static const uint8_t id[16] = { 0xac, 0x1e, 0xa9, 0x00, 0xf0, 0x22 };
	struct image_spec sp;
	struct image_out io;
	struct shm_seg seg;
	uint64_t len;
	uint8_t *meta = NULL, *b = NULL;
	uint64_t *prev = NULL, *next = NULL;
	void *mem = MAP_FAILED;
	off_t size;
	int fd = -1, ifd = -1, rc = -ENOMEM;

	memset(&seg, 0, sizeof(seg));
	if ((fd = memfd_create("seed-heap", MFD_CLOEXEC)) == -1 ||
	    ftruncate(fd, (off_t)SEED_SIZE) == -1 ||
	    (mem = mmap(NULL, SEED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0)) == MAP_FAILED ||
	    (ifd = memfd_create("seed-image", MFD_CLOEXEC)) == -1) {
		rc = -errno;
		goto out;
	}
	seg_bind(&seg, mem, SEED_BASE, SEED_SIZE);
	seg.fd = fd;
	if ((rc = seg_format(&seg, id)) != 0)
		goto out;
	seg.sb->created = SEED_TIME;
	if (filled)
		populate(&seg);
	len = seg.sb->slabs_off + seg.nslabs * sizeof(struct shm_slab);
	if ((meta = malloc(len)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(meta, seg.sb, len);
	memset(&sp, 0, sizeof(sp));
	sp.seg = &seg;
	sp.identity = id;
	sp.meta = meta;
	sp.meta_len = len;
	sp.generation = 3;
	sp.time = SEED_TIME;
	if (delta) {
		if ((prev = calloc(seg.nslabs, sizeof(*prev))) == NULL ||
		    (next = calloc(seg.nslabs, sizeof(*next))) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		sp.kind = IMAGE_DELTA;
		sp.seq = 1;
		sp.base_generation = sp.parent_generation = 2;
		sp.parent_digest = UINT64_C(0x5eed5eed5eed5eed);
		sp.prev = prev;
		sp.next = next;
	}
	if (delta && (rc = image_scan(&seg, seg.slabs, prev, next, NULL,
	    &io.slabs)) != 0)
		goto out;
	if ((rc = image_write(ifd, &sp, &io)) != 0)
		goto out;
	if ((size = lseek(ifd, 0, SEEK_END)) == -1 ||
	    (b = malloc((size_t)size)) == NULL ||
	    pread(ifd, b, (size_t)size, 0) != size) {
		rc = -EIO;
		goto out;
	}
	*out = b;
	*outlen = (size_t)size;
	b = NULL;
	rc = 0;
out:
	free(b);
	free(meta);
	free(prev);
	free(next);
	if (mem != MAP_FAILED)
		munmap(mem, SEED_SIZE);
	if (fd >= 0)
		close(fd);
	if (ifd >= 0)
		close(ifd);
	return rc;
}
