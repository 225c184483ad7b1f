/* SPDX-License-Identifier: MIT */
/*
 * image_chain.c: a heap's chain of images read as one (a base and the
 * deltas that follow it, image.h), settling what was loaded, and loading
 * into scratch memory for offline work (verify, inspect).
 */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/image.h"
#include "shm/image_impl.h"

/*
 * Whether delta d (heap.img.delta.K, named path) follows the chain read so far:
 * 1 yes, 0 stale (of an older base: the chain ends before it), -EUCLEAN
 * refused (err says why).
 */
static int
link_follows(const char *path, const struct image_header *d, uint32_t k,
    const struct image_header *base, const struct image_info *sofar,
    char *err, size_t errlen)
{
	if (d->kind != IMAGE_DELTA) {
		snprintf(err, errlen, "%s: header: a whole image where delta %u "
		    "of the chain belongs", path, k);
		return -EUCLEAN;
	}
	if (memcmp(d->identity, base->identity, 16) != 0 ||
	    d->base != base->base || d->size != base->size ||
	    d->max_size != base->max_size) {
		snprintf(err, errlen, "%s: header: a delta of another heap "
		    "than its base's", path);
		return -EUCLEAN;
	}
	if (d->base_generation < base->generation)
		return 0;
	if (d->base_generation != base->generation || d->seq != k ||
	    d->parent_generation != sofar->hdr.generation ||
	    d->parent_digest != sofar->digest ||
	    d->generation <= d->parent_generation) {
		snprintf(err, errlen, "%s: header: delta %u (generation %"
		    PRIu64 ", of base %" PRIu64 ") does not follow generation "
		    "%" PRIu64 " of base %" PRIu64 " (a link of another chain)",
		    path, d->seq, d->generation, d->base_generation,
		    sofar->hdr.generation, base->generation);
		return -EUCLEAN;
	}
	return 1;
}

/*
 * The chain ends at delta k, which is not there: refused if a later delta
 * of the same base is (a link is missing from the middle, never the way
 * a crash leaves it), else 0.  Deltas are at most IMAGE_CHAIN_MAX.
 */
static int
link_missing(const char *path, uint32_t k, const struct image_header *base,
    char *err, size_t errlen)
{
	struct image_header h;
	char lpath[4200], what[256];
	uint32_t m;
	int fd, rc;

	for (m = k + 1; m <= IMAGE_CHAIN_MAX; m++) {
		snprintf(lpath, sizeof(lpath), "%s.delta.%u", path, m);
		if ((fd = open(lpath, O_RDONLY | O_CLOEXEC)) == -1)
			continue;
		rc = image_read_header(fd, &h, what, sizeof(what));
		close(fd);
		if (rc == 0 && h.kind == IMAGE_DELTA &&
		    h.base_generation < base->generation)
			continue;	/* stale, as are those before it */
		snprintf(err, errlen, "%s.delta.%u: missing, but %s is there%s",
		    path, k, lpath, rc != 0 ? " (and damaged)" :
		    " (a link is missing from the chain)");
		return -EUCLEAN;
	}
	return 0;
}

/* What the chain wrote and the last metadata says is free reads as
 * zeros (its hash with them). */
static int
chain_zero_freed(const char *path, const struct link *lk,
    const struct shm_geom *g, uint64_t *hashes, char *err, size_t errlen)
{
	const struct shm_slab *table;
	uint64_t s;
	int rc;

	table = (const struct shm_slab *)(lk->meta + g->slabs_off);
	for (s = 0; s < g->nslabs; s++) {
		if (!(lk->written[s / 8] & (1u << (s % 8))) ||
		    table_used(table, s))
			continue;
		if (hashes != NULL)
			hashes[s] = 0;
		if ((rc = lk->put(lk->ctx, g->bitmaps_off +
		    s * SHM_BITMAP_BYTES, NULL, SHM_BITMAP_BYTES, 1)) != 0 ||
		    (rc = lk->put(lk->ctx, g->sides_off + s * SHM_SIDE_BYTES,
		    NULL, SHM_SIDE_BYTES, 1)) != 0 ||
		    (rc = lk->put(lk->ctx, g->data_off + s * SHM_SLAB_SIZE,
		    NULL, SHM_SLAB_SIZE, 1)) != 0) {
			snprintf(err, errlen, "%s: cannot store: %s", path,
			    strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/*
 * Reads a chain: the base at path, then path.delta.1, path.delta.2, ...
 * while they follow.  Slabs an earlier link wrote and the last metadata
 * says are free are put as zeros.  info describes the whole chain, hdr its last link.
 */
int
image_read_chain(const char *path, image_put_fn put, void *ctx,
    struct image_info *info, uint64_t *hashes, char *err, size_t errlen)
{
	return image_read_chain_upto(path, UINT32_MAX, put, ctx, info, hashes,
	    NULL, err, errlen);
}

/*
 * The same, applying at most links deltas (those after them are not
 * looked at).  On a refusal, *failed (if not NULL) says which link it
 * was: 0 the base, K heap.img.delta.K; what was put by then is partial,
 * so a salvage reads again with links K - 1.
 */
int
image_read_chain_upto(const char *path, uint32_t links, image_put_fn put,
    void *ctx, struct image_info *info, uint64_t *hashes, uint32_t *failed,
    char *err, size_t errlen)
{
	struct image_header base, dh;
	struct image_info one;
	struct shm_geom g;
	struct link lk;
	char lpath[4200], what[256];
	uint32_t k;
	int fd, rc;

	memset(info, 0, sizeof(*info));
	memset(&lk, 0, sizeof(lk));
	if (failed != NULL)
		*failed = 0;
	lk.put = put;
	lk.ctx = ctx;
	lk.hashes = hashes;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if ((rc = image_read_header(fd, &base, what, sizeof(what))) != 0) {
		snprintf(err, errlen, "%s: %s", path, what);
		goto out;
	}
	if (base.kind != IMAGE_FULL) {
		snprintf(err, errlen, "%s: header: a delta (link %u of a "
		    "chain), not a whole image", path, base.seq);
		rc = -EUCLEAN;
		goto out;
	}
	if (seg_geometry_max(base.size, base.max_size, &g) != 0 ||
	    g.nslabs != base.nslabs ||
	    !image_meta_len_ok(&g, base.meta_len)) {
		snprintf(err, errlen, "%s: header: geometry of size %" PRIu64
		    " does not match its %" PRIu64 " slabs", path, base.size,
		    base.nslabs);
		rc = -EUCLEAN;
		goto out;
	}
	if ((lk.written = calloc(1, (size_t)(g.nslabs + 7) / 8)) == NULL ||
	    (lk.meta = malloc(g.meta_end)) == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto out;
	}
	if ((rc = read_link(fd, path, &lk, info, err, errlen)) != 0)
		goto out;
	info->digest = lk.digest;
	info->base_generation = base.generation;
	info->base_bytes = info->bytes;
	lk.over = 1;
	for (k = 1;; k++) {
		close(fd);
		fd = -1;
		if (failed != NULL)
			*failed = k;
		if (k > links)
			break;
		snprintf(lpath, sizeof(lpath), "%s.delta.%u", path, k);
		if ((fd = open(lpath, O_RDONLY | O_CLOEXEC)) == -1) {
			if (errno == ENOENT) {
				rc = link_missing(path, k, &base, err, errlen);
				if (rc != 0)
					goto out;
				break;
			}
			rc = -errno;
			snprintf(err, errlen, "%s: %s", lpath, strerror(errno));
			goto out;
		}
		if ((rc = image_read_header(fd, &dh, what,
		    sizeof(what))) != 0) {
			snprintf(err, errlen, "%s: %s", lpath, what);
			goto out;
		}
		if ((rc = link_follows(lpath, &dh, k, &base, info, err,
		    errlen)) < 0)
			goto out;
		if (rc == 0) {
			info->stale = 1;
			break;
		}
		if ((rc = read_link(fd, lpath, &lk, &one, err, errlen)) != 0)
			goto out;
		info->hdr = one.hdr;
		info->digest = lk.digest;
		info->sections += one.sections;
		info->runs += one.runs;
		info->slabs += one.slabs;
		info->bytes += one.bytes;
		info->links++;
	}
	fd = -1;
	rc = chain_zero_freed(path, &lk, &g, hashes, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	free(lk.written);
	free(lk.meta);
	return rc;
}

/*
 * Recomputes every checksum of an image held in memory as the writer makes
 * them: the header's, then each section's header and payload seeded with
 * it, and the end marker's digest of them all (one XXH3 over the hashes in
 * order).  For tests and fuzzers that edit images on purpose; stops at the
 * first section that does not fit.
 */
void
image_reseal(uint8_t *b, size_t len)
{
	struct image_header h;
	struct image_section s;
	uint64_t x, *dg;
	size_t pos, nd = 0;

	if (len < sizeof(h))
		return;
	memcpy(&h, b, sizeof(h));
	h.hash = image_hash(&h, offsetof(struct image_header, hash));
	memcpy(b, &h, sizeof(h));
	if ((dg = malloc((len / sizeof(s) + 1) * 2 * sizeof(*dg))) == NULL)
		return;
	dg[nd++] = h.hash;
	pos = sizeof(h);
	while (len - pos >= sizeof(s)) {
		memcpy(&s, b + pos, sizeof(s));
		s.hash = image_hash_seeded(&s, offsetof(struct image_section,
		    hash), h.hash);
		memcpy(b + pos, &s, sizeof(s));
		pos += sizeof(s);
		if (s.len > len - pos || len - pos - s.len < sizeof(x))
			break;
		if (s.type == IMG_END && s.len == sizeof(x)) {
			x = image_hash_seeded(dg, nd * sizeof(*dg), h.hash);
			memcpy(b + pos, &x, sizeof(x));
		}
		x = image_hash_seeded(b + pos, s.len, h.hash);
		memcpy(b + pos + s.len, &x, sizeof(x));
		if (s.type != IMG_END) {
			dg[nd++] = s.hash;
			dg[nd++] = x;
		}
		pos += s.len + sizeof(x);
	}
	free(dg);
}

/*
 * Makes a freshly loaded image consistent.  A checkpoint copies a slab's
 * bitmap and its side entries at slightly different moments while clients
 * claim and free, so they can disagree by the blocks that changed in
 * between; and the lease records name processes that hold nothing in a
 * reloaded heap.  The side entries say which blocks are live: each small
 * slab's bitmap is rebuilt from them, and the leases (and the slabs'
 * affinities to them) are dropped.
 */
void
image_settle(struct shm_seg *seg)
{
	image_settle_hashed(seg, NULL);
}

/* The same, and the hash in hashes[] (as image_write() makes them) of
 * each slab whose bitmap it rewrote. */
void
image_settle_hashed(struct shm_seg *seg, uint64_t *hashes)
{
	uint64_t s, hwm = atomic_load(&seg->sb->slab_hwm), bits, w;
	uint32_t cls, nw, i, k, ready;
	uintptr_t sd;
	uint8_t *buf = NULL;
	int moved;

	if (hwm > seg->nslabs)
		hwm = seg->nslabs;
	/* Only the records ever handed out can hold anything (an image
	 * carries none): clearing the rest would commit their pages. */
	memset(seg->leases, 0, seg_lease_hwm(seg) * sizeof(struct shm_lease));
	atomic_store(&seg->sb->lease_hwm, 0);
	/* The processes the sessions were for are gone with the heap's
	 * last life; no journal of an image is in flight (a checkpoint is
	 * taken between requests). */
	memset(seg->sessions, 0, SHM_SESSIONS * sizeof(struct shm_session));
	atomic_store(&seg->sb->move_slab, 0);
	for (s = 0; s < hwm; s++) {
		w = atomic_load(&seg->slabs[s].word);
		if (SHM_SLAB_STATE(w) != SHM_SMALL &&
		    SHM_SLAB_STATE(w) != SHM_RECLAIMING)
			continue;
		cls = SHM_SLAB_CLS(w);
		if (cls >= SHM_NCLASSES)
			continue;	/* shm_check() will name it */
		atomic_store(&seg->slabs[s].word,
		    SHM_SLAB_WORD(SHM_SLAB_STATE(w), cls, 0));
		sd = slab_side_base(seg, s, cls);
		ready = slab_ready(seg, s, cls);
		nw = (slab_class_nblocks[cls] + 63) / 64;
		moved = 0;
		for (k = 0; k < nw; k++) {
			bits = 0;
			for (i = 0; i < 64 && k * 64 + i < ready; i++)
				if (slab_side_load(sd, cls, k * 64 + i) != 0)
					bits |= UINT64_C(1) << i;
			if (atomic_load_explicit(&slab_bitmap(seg, s)[k],
			    memory_order_relaxed) != bits)
				moved = 1;
			atomic_store_explicit(&slab_bitmap(seg, s)[k], bits,
			    memory_order_relaxed);
		}
		if (!moved || hashes == NULL)
			continue;
		if (buf == NULL && (buf = malloc(SHM_BITMAP_BYTES +
		    SHM_SIDE_BYTES + SHM_SLAB_SIZE)) == NULL) {
			hashes[s] = 0;	/* unknown: the next delta writes it */
			continue;
		}
		if (slab_copy(seg, s, buf, buf + SHM_BITMAP_BYTES, buf +
		    SHM_BITMAP_BYTES + SHM_SIDE_BYTES, NULL, &hashes[s]) != 0)
			hashes[s] = 0;
	}
	free(buf);
}

static int
put_mem(void *ctx, uint64_t off, const void *p, size_t n, int over)
{
	(void)over;
	if (p == NULL)
		memset((char *)ctx + off, 0, n);
	else
		memcpy((char *)ctx + off, p, n);
	return 0;
}

/*
 * Loads an image, with the deltas that follow it, into scratch memory for
 * offline work (verify, inspect, repair):
 * seg->base is the image's base, seg->sb wherever the scratch landed.
 */
int
image_load_offline(const char *path, struct shm_seg *seg,
    struct image_info *info, char *err, size_t errlen)
{
	return image_load_offline_upto(path, UINT32_MAX, seg, info, NULL, err,
	    errlen);
}

/* The same, with at most links deltas; *failed as image_read_chain_upto()
 * says (aclheapctl repair keeps the links before a damaged one). */
int
image_load_offline_upto(const char *path, uint32_t links, struct shm_seg *seg,
    struct image_info *info, uint32_t *failed, char *err, size_t errlen)
{
	struct image_header h;
	void *mem;
	int fd, rc;

	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
	if (failed != NULL)
		*failed = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if ((rc = image_read_header(fd, &h, err, errlen)) != 0) {
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, errlen, "%s: %s", path, tmp);
		close(fd);
		return rc;
	}
	if (h.size < SHM_SIZE_MIN || h.max_size > SHM_SIZE_MAX ||
	    h.size > h.max_size) {
		snprintf(err, errlen, "%s: header: size %" PRIu64 " or "
		    "maximum %" PRIu64 " out of range", path, h.size,
		    h.max_size);
		close(fd);
		return -EUCLEAN;
	}
	if (image_scratch_len(h.size, h.max_size) == 0) {
		snprintf(err, errlen, "%s: header: size %" PRIu64 " and "
		    "maximum %" PRIu64 " make no heap", path, h.size,
		    h.max_size);
		close(fd);
		return -EUCLEAN;
	}
	mem = mmap(NULL, image_scratch_len(h.size, h.max_size), PROT_READ |
	    PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		rc = -errno;
		snprintf(err, errlen, "%s: scratch memory: %s", path,
		    strerror(errno));
		close(fd);
		return rc;
	}
	close(fd);
	rc = image_read_chain_upto(path, links, put_mem, mem, info, NULL,
	    failed, err, errlen);
	if (rc != 0) {
		munmap(mem, image_scratch_len(h.size, h.max_size));
		return rc;
	}
	seg_bind_max(seg, mem, (uintptr_t)h.base, h.size, h.max_size);
	image_settle(seg);
	return 0;
}

void
image_unload_offline(struct shm_seg *seg)
{
	image_scratch_free(seg);
}
