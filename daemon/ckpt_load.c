/* SPDX-License-Identifier: MIT */
/*
 * ckpt_load.c: loading the chain of images (STATE/heap.img and its
 * deltas) into a new segment at start-up.
 *
 * The chain is read through the new object's descriptor, never its
 * mapping, so a load costs no page faults and allocates no page for the
 * zeros it does not write; then what the allocator promises is committed
 * is committed, so a /dev/shm too small for the heap refuses the start
 * instead of faulting a client later.  The hashes of what the chain holds
 * are taken as it is read and handed to ckpt.c, whose next delta compares
 * with them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/ckpt.h"

/* The new segment and its meta object, not mapped yet: offset I/O
 * only (seg_pwrite() routes each offset to its object). */
struct loader {
	struct shm_seg seg;
};

static int
pwrite_all(const struct shm_seg *seg, const char *b, size_t n, uint64_t off)
{
	int rc = seg_pwrite(seg, b, n, off);

	return rc == -ENOSPC ? -ENOMEM : rc;
}

static int
all_zero(const char *b, size_t n)
{
	uint64_t x = 0, v;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&v, b + i, 8);
		x |= v;
	}
	for (; i < n; i++)
		x |= (uint8_t)b[i];
	return x == 0;
}

/*
 * Stores what is not zero, a 4 KiB page of the segment at a time, runs of
 * pages in one write: the new object reads as zeros already, and writing
 * zeros would allocate pages for nothing (the bitmaps and side arrays of
 * extents are all zeros and never committed).  Over what an earlier link
 * of the chain wrote, zeros are holes punched instead; p NULL punches the
 * whole range.  What must be committed, load_commit() commits.
 */
static int
put_fd(void *ctx, uint64_t off, const void *p, size_t n, int over)
{
	struct loader *l = ctx;
	const char *b = p, *run = NULL;
	uint64_t run_off = 0, z_off = 0, zn = 0;
	size_t w;
	int rc;

	if (p == NULL)
		return seg_decommit(&l->seg, off, n);
	while (n > 0) {
		w = 4096 - (size_t)(off % 4096);
		if (w > n)
			w = n;
		if (!all_zero(b, w)) {
			if (zn > 0 && (rc = seg_decommit(&l->seg, z_off,
			    zn)) != 0)
				return rc;
			zn = 0;
			if (run == NULL) {
				run = b;
				run_off = off;
			}
		} else {
			if (run != NULL && (rc = pwrite_all(&l->seg, run,
			    (size_t)(b - run), run_off)) != 0)
				return rc;
			run = NULL;
			if (over) {
				if (zn == 0)
					z_off = off;
				zn += w;
			}
		}
		b += w;
		off += w;
		n -= w;
	}
	if (zn > 0 && (rc = seg_decommit(&l->seg, z_off, zn)) != 0)
		return rc;
	if (run != NULL)
		return pwrite_all(&l->seg, run, (size_t)(b - run), run_off);
	return 0;
}

/*
 * Commits what the allocator promises is committed (seg.c: memory is
 * committed before it is handed out): the metadata, the bitmap, side
 * array and data of every small slab (as far as its blocks are ready),
 * the data of every extent.  put_fd()
 * left zeros as holes, so a /dev/shm too small for the heap shows up here
 * as ENOMEM, not later as SIGBUS in a client.  An extent whose length is
 * out of range is left to heap_rebuild() to refuse.
 */
/* A small slab's (or span's) data: the pages of its ready blocks, or the
 * whole of it; a class out of range is left to the validator. */
static int
commit_ready(const struct shm_seg *seg, uint64_t s, uint32_t cls,
    uint64_t run)
{
	uint64_t off = seg->sb->data_off + (s << SHM_SLAB_SHIFT), r[4];
	uint32_t ready;
	int rc;

	if (cls >= SHM_NCLASSES || (ready = slab_ready(seg, s, cls)) == 0 ||
	    ready >= slab_class_nblocks[cls])
		return seg_commit(seg, off, run << SHM_SLAB_SHIFT);
	slab_ready_ranges(cls, 0, ready, r);
	if ((rc = seg_commit(seg, off + r[0], r[1] - r[0])) != 0 ||
	    r[3] == r[2])
		return rc;
	return seg_commit(seg, off + r[2], r[3] - r[2]);
}

static int
load_commit(const struct shm_seg *seg)
{
	const struct shm_super *sb = seg->sb;
	uint64_t s, run;
	uint64_t w;
	int rc;

	/* The root table as far as roots are in use: the rest is
	 * committed as roots land on it (roots.c).  Not the lease region:
	 * records are committed as they are handed out (those below an
	 * image's mark, which settling clears, too). */
	if ((rc = seg_commit(seg, 0, sb->roots_off +
	    (atomic_load(&sb->roots_used) < seg->roots_max ?
	    atomic_load(&sb->roots_used) : seg->roots_max) *
	    sizeof(struct shm_root))) != 0 ||
	    (rc = seg_commit_leases((struct shm_seg *)seg, 0,
	    seg_lease_hwm(seg))) != 0 ||
	    (rc = seg_commit(seg, sb->slabs_off, seg->nslabs *
	    sizeof(struct shm_slab))) != 0 ||
	    (rc = seg_commit(seg, sb->sessions_off,
	    SHM_SESSIONS * sizeof(struct shm_session))) != 0)
		return rc;
	for (s = 0; s < seg->nslabs; s++) {
		w = atomic_load(&seg->slabs[s].word);
		switch (SHM_SLAB_STATE(w)) {
		case SHM_SMALL:
		case SHM_RECLAIMING:
			/* A span's tails come with its head. */
			run = SHM_SLAB_CLS(w) < SHM_NCLASSES ?
			    slab_class_slabs[SHM_SLAB_CLS(w)] : 1;
			if (run > seg->nslabs - s)
				break;
			if ((rc = seg_commit(seg, sb->bitmaps_off +
			    s * SHM_BITMAP_BYTES, SHM_BITMAP_BYTES)) != 0 ||
			    (rc = seg_commit(seg, sb->sides_off +
			    s * SHM_SIDE_BYTES, run * SHM_SIDE_BYTES)) != 0 ||
			    (rc = commit_ready(seg, s, SHM_SLAB_CLS(w),
			    run)) != 0)
				return rc;
			s += run - 1;
			break;
		case SHM_LARGE_HEAD:
			run = seg->slabs[s].run;
			if (run == 0 || run > seg->nslabs - s)
				break;
			if ((rc = seg_commit(seg, sb->data_off +
			    (s << SHM_SLAB_SHIFT), run << SHM_SLAB_SHIFT)) != 0)
				return rc;
			s += run - 1;
			break;
		default:
			break;
		}
	}
	return 0;
}

/*
 * Loads an image into a new segment object through its descriptor (no page
 * faults).  On any damage the new object is removed, the image is left as it
 * is, and the daemon refuses to start.
 */
int
ckpt_load(struct heap *h, const struct config *c, const char *path)
{
	struct image_header hdr;
	struct image_info info;
	struct loader l;
	struct timespec t0;
	struct shm_geom g;
	char err[1024], name[64], hint[9000];
	uint64_t *hashes = NULL;
	int fd, sfd, mfd = -1, rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Reading a large image takes a while: say so in systemctl status. */
	notify_status("loading image %s", path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_errx("%s: %s", path, strerror(errno));
		return -errno;
	}
	if ((rc = image_read_header(fd, &hdr, err, sizeof(err))) != 0) {
		log_errx("refusing image %s: %s; %s", path, err,
		    heap_repair_hint(c, 0, hint, sizeof(hint)));
		close(fd);
		return rc;
	}
	/* Its size is its own (a live segment that grew since may have
	 * been set aside for it); base and maximum are the address space
	 * every process keeps for the heap. */
	if (hdr.base != c->base || hdr.max_size != c->max) {
		log_errx("refusing image %s: it holds a heap at base 0x%" PRIx64
		    " of maximum size %" PRIu64 ", the daemon is asked for "
		    "base 0x%" PRIxPTR " maximum %" PRIu64 " (start with "
		    "--base 0x%" PRIx64 " --max-size %" PRIu64 ")", path,
		    hdr.base, hdr.max_size, c->base, c->max, hdr.base,
		    hdr.max_size);
		close(fd);
		return -EINVAL;
	}
	memcpy(h->identity, hdr.identity, 16);
	seg_name(h->identity, name, sizeof(name));
	if ((rc = heap_objects_create(h, c, &sfd, &mfd)) != 0) {
		log_errx("cannot load image %s", path);
		close(fd);
		return rc;
	}
	close(fd);
	/* Locked before a byte is in it: no other daemon adopts it. */
	if ((rc = seglock_take(h, sfd)) != 0)
		goto fail;
	/* What the chain holds for each slab, as the next delta compares
	 * it: hashed as it is read. */
	if (seg_geometry_max(hdr.size, c->max, &g) != 0) {
		rc = -EUCLEAN;
		log_errx("refusing image %s: size %" PRIu64 " and maximum %"
		    PRIu64 " make no heap; %s", path, hdr.size, c->max,
		    heap_repair_hint(c, 0, hint, sizeof(hint)));
		goto fail;
	}
	if ((hashes = calloc(g.nslabs, sizeof(*hashes))) == NULL) {
		rc = -ENOMEM;
		log_errx("no memory for the hashes of image %s", path);
		goto fail;
	}
	memset(&l, 0, sizeof(l));
	l.seg.size = hdr.size;
	l.seg.max = c->max;
	l.seg.fd = sfd;
	l.seg.mfd = mfd;
	seg_own_ranges(&g, l.seg.own);
	rc = image_read_chain(path, put_fd, &l, &info, hashes, err,
	    sizeof(err));
	if (rc != 0) {
		log_errx("refusing image: %s; %s", err, heap_repair_hint(c, 0,
		    hint, sizeof(hint)));
		goto fail;
	}
	rc = heap_map(h, c, hdr.size, sfd, mfd);
	sfd = mfd = -1;
	if (rc != 0)
		goto fail;
	if ((rc = seg_super_check(h->seg.sb, c->base, hdr.size, c->max, err,
	    sizeof(err))) != 0 || memcmp(h->seg.sb->identity, hdr.identity,
	    16) != 0) {
		log_errx("refusing image %s: its superblock does not match "
		    "its header: %s; %s", path, rc ? err : "identity",
		    heap_repair_hint(c, 0, hint, sizeof(hint)));
		rc = -EUCLEAN;
		goto fail;
	}
	if ((rc = load_commit(&h->seg)) != 0) {
		log_errx("cannot load image %s: the heap it holds does not fit "
		    "in /dev/shm: %s", path, strerror(-rc));
		goto fail;
	}
	/* Settling rewrites some bitmaps: their slabs' hashes with them. */
	image_settle_hashed(&h->seg, hashes);
	if ((rc = heap_id_write(c->state_dir, h->identity)) != 0)
		goto fail;
	atomic_store(&h->seg.sb->generation, info.hdr.generation);
	ckpt_chain_loaded(&info, hashes);
	h->loaded = 1;
	log_notice("loaded image %s (generation %" PRIu64 ", %" PRIu64
	    " deltas%s, %" PRIu64 " slabs, %" PRIu64 " bytes) in %" PRIu64
	    " ms into /dev/shm%s", path, info.hdr.generation, info.links,
	    info.stale ? " and stale ones after them" : "", info.slabs,
	    info.bytes, ckpt_elapsed_us(&t0) / 1000, name);
	return 0;
fail:
	free(hashes);
	if (h->seg.sb != NULL)
		seg_unmap(&h->seg);
	if (sfd >= 0)
		close(sfd);
	if (mfd >= 0)
		close(mfd);
	seg_unlink(h->identity);
	seglock_release(h);
	return rc;
}
