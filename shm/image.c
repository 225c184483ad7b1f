/* SPDX-License-Identifier: MIT */
/*
 * image.c: writing heap images (the format is in image.h).
 *
 * The writer streams each section through a private buffer: it copies a
 * chunk out of the live mapping, hashes the copy and writes the copy, so the
 * checksum always matches the bytes on disk even while clients write.  A
 * delta checkpoint first asks image_scan() which slabs changed; the check
 * heap receives what a reader would load, for image_check_scratch().
 *
 * Reading is in image_read.c (one file) and image_chain.c (a base and its
 * deltas, settling, offline loads); what the three share is image_impl.h.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "shm/image.h"
#include "shm/image_impl.h"

void (*image_commit_hook)(int step);

uint64_t
image_hash(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}

uint64_t
image_hash_seeded(const void *p, size_t n, uint64_t seed)
{
	return XXH3_64bits_withSeed(p, n, seed);
}

/* What an image carries of the metadata at src, with roots roots in use
 * (at most roots_max), into dst, both segment-shaped: dst's superblock
 * says roots, and no lease record handed out (an image carries none). */
void
image_meta_copy(uint8_t *dst, const void *src, const struct shm_geom *g,
    uint64_t roots)
{
	uint64_t n = roots < g->roots_max ? roots : g->roots_max;

	memcpy(dst, src, seg_roots_end(g, n));
	atomic_store(&((struct shm_super *)dst)->roots_used, n);
	atomic_store(&((struct shm_super *)dst)->lease_hwm, 0);
	memcpy(dst + g->slabs_off, (const uint8_t *)src + g->slabs_off,
	    g->meta_end - g->slabs_off);
}

/* The hash of what an image carries of meta. */
uint64_t
image_meta_hash(const uint8_t *meta, const struct shm_geom *g)
{
	uint64_t h[2];

	h[0] = XXH3_64bits(meta, seg_roots_end(g, image_meta_roots(g, meta)));
	h[1] = XXH3_64bits(meta + g->slabs_off, g->meta_end - g->slabs_off);
	return XXH3_64bits(h, sizeof(h));
}

int
image_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
image_writer_open(const char *dir, const char *name, int *fdp, char *err,
    size_t errlen)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	*fdp = fd;
	return 0;
}

int
image_write_header(int fd, const struct image_header *h)
{
	struct image_header c = *h;

	c.hash = image_hash(&c, offsetof(struct image_header, hash));
	return image_write_all(fd, &c, sizeof(c));
}

/*
 * Copies n bytes of a part into buf.  A part inside the segment src is
 * read through the segment's descriptor when there is one: a page never
 * committed is a hole, which pread() returns as zeros, while touching it
 * through the mapping allocates it, and faults (SIGBUS) when /dev/shm is
 * full.  Extents leave the bitmaps and side arrays of their slabs
 * uncommitted, and those are part of every run.
 */
static int
part_copy(const struct shm_seg *src, void *buf, const char *p, size_t n)
{
	uintptr_t a = (uintptr_t)p, lo, hi;

	if (src != NULL && src->fd >= 0) {
		lo = (uintptr_t)src->sb;
		hi = lo + src->max;
		if (a >= lo && a < hi && n <= hi - a)
			return seg_pread(src, buf, n, a - lo);
	}
	memcpy(buf, p, n);
	return 0;
}

static int
all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t x = 0, v;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&v, b + i, 8);
		x |= v;
	}
	for (; i < n; i++)
		x |= b[i];
	return x == 0;
}

/* What a writer carries from section to section. */
struct writer {
	int fd;
	uint64_t seed;		/* the header's hash */
	XXH3_state_t *digest;	/* of every hash written so far */
	uint64_t sections;
};

/*
 * One section: its header, the parts one after the other as its payload
 * (private buffers: what is hashed is what is written), and the payload's
 * hash, both seeded with the image's header hash.
 */
static int
write_section(struct writer *w, uint32_t type, uint64_t first,
    uint64_t count, const void *const *parts, const size_t *lens, int nparts)
{
	struct image_section s;
	XXH3_state_t *st;
	uint64_t h, pair[2];
	off_t pos;
	int i, rc;

	memset(&s, 0, sizeof(s));
	s.type = type;
	s.first = first;
	s.count = count;
	for (i = 0; i < nparts; i++)
		s.len += lens[i];
	s.hash = image_hash_seeded(&s, offsetof(struct image_section, hash),
	    w->seed);
	pos = lseek(w->fd, 0, SEEK_CUR);
	if ((rc = image_write_all(w->fd, &s, sizeof(s))) != 0)
		return rc;
	if ((st = XXH3_createState()) == NULL)
		return -ENOMEM;
	XXH3_64bits_reset_withSeed(st, w->seed);
	for (i = 0; i < nparts && rc == 0; i++) {
		XXH3_64bits_update(st, parts[i], lens[i]);
		rc = image_write_all(w->fd, parts[i], lens[i]);
	}
	h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	if (rc != 0 || (rc = image_write_all(w->fd, &h, sizeof(h))) != 0)
		return rc;
	pair[0] = s.hash;
	pair[1] = h;
	XXH3_64bits_update(w->digest, pair, sizeof(pair));
	w->sections++;
	/* Start writeback now, so the disk works while we copy and hash the
	 * next batch, and the final fsync has little left to do. */
	if (pos >= 0 && s.len >= 65536)
		(void)sync_file_range(w->fd, pos, (off_t)(sizeof(s) + s.len),
		    SYNC_FILE_RANGE_WRITE);
	return 0;
}

/*
 * The hash of a slab as an image carries it, never 0 (0: not carried):
 * of the hashes of its bitmap, side array and data, each taken alone, so
 * that a reader, which meets them in three parts of a RUN section, gets
 * the same value as it reads.
 */
uint64_t
slab_hash3(uint64_t bm, uint64_t sd, uint64_t data)
{
	uint64_t v[3] = { bm, sd, data }, h;

	h = XXH3_64bits(v, sizeof(v));
	return h == 0 ? 1 : h;
}

static uint64_t
slab_hash(const void *bm, const void *sd, const void *data)
{
	return slab_hash3(XXH3_64bits(bm, SHM_BITMAP_BYTES),
	    XXH3_64bits(sd, SHM_SIDE_BYTES), XXH3_64bits(data, SHM_SLAB_SIZE));
}

static void
check_store(struct shm_seg *check, uint64_t s, const uint8_t *bm,
    const uint8_t *sd)
{
	void *cb = (void *)slab_bitmap(check, s);
	void *cs = (void *)slab_sides(check, s);

	if (!all_zero(bm, SHM_BITMAP_BYTES) || !all_zero(cb, SHM_BITMAP_BYTES))
		memcpy(cb, bm, SHM_BITMAP_BYTES);
	if (!all_zero(sd, SHM_SIDE_BYTES) || !all_zero(cs, SHM_SIDE_BYTES))
		memcpy(cs, sd, SHM_SIDE_BYTES);
}

/*
 * The check also needs the side entries a slab of a class below 1 KiB keeps
 * at its own end (shm.h): copied from data, the slab's bytes as written or
 * as they lie, into the check's copy of the slab, whose class the check's
 * slab table (the cut's) says.
 */
static int
check_store_inband(const struct shm_seg *seg, struct shm_seg *check,
    uint64_t s, const uint8_t *data)
{
	uint64_t w = atomic_load(&check->slabs[s].word);
	uint32_t cls, off;
	char *dst;

	cls = SHM_SLAB_CLS(w);
	if ((SHM_SLAB_STATE(w) != SHM_SMALL &&
	    SHM_SLAB_STATE(w) != SHM_RECLAIMING) || cls >= SHM_NINBAND)
		return 0;
	off = slab_class_sideoff[cls];
	dst = (char *)slab_addr(check, s) + off;
	if (data != NULL) {
		memcpy(dst, data + off, SHM_SLAB_SIZE - off);
		return 0;
	}
	return part_copy(seg, dst, (const char *)slab_addr(seg, s) + off,
	    SHM_SLAB_SIZE - off);
}

/*
 * Copies slab s's bitmap, side array and data out of the segment, and its
 * bitmap and side array into the scratch heap check (what a reader will
 * see).  Zeros are stored in check only over what is not zero already, so
 * extents' slabs cost the scratch heap no memory.
 */
int
slab_copy(const struct shm_seg *seg, uint64_t s, uint8_t *bm, uint8_t *sd,
    uint8_t *data, struct shm_seg *check, uint64_t *h)
{
	int rc;

	if ((rc = part_copy(seg, bm, (const char *)slab_bitmap(seg, s),
	    SHM_BITMAP_BYTES)) != 0 ||
	    (rc = part_copy(seg, sd, (const char *)slab_sides(seg, s),
	    SHM_SIDE_BYTES)) != 0)
		return rc;
	if (data == NULL)	/* image_scan(): hashed where it lies */
		*h = slab_hash(bm, sd, (const void *)slab_addr(seg, s));
	else if ((rc = part_copy(seg, data, (const char *)slab_addr(seg, s),
	    SHM_SLAB_SIZE)) != 0)
		return rc;
	else
		*h = slab_hash(bm, sd, data);
	if (check != NULL) {
		check_store(check, s, bm, sd);
		return check_store_inband(seg, check, s, data);
	}
	return 0;
}

/*
 * Whether every page of slab s's data is in memory, so that reading it
 * through the mapping allocates nothing (a page never committed would be
 * allocated by the read, and fault when /dev/shm is full).  The data of a
 * slab in use is committed; a page swapped out is read through the
 * descriptor like a hole.  Memory that is not a segment's is.
 */
static int
data_resident(const struct shm_seg *seg, uint64_t s)
{
	static size_t page;
	unsigned char vec[SHM_SLAB_SIZE / 4096];
	long pg;
	size_t i, n;

	if (seg->fd < 0)
		return 1;
	if (page == 0) {
		pg = sysconf(_SC_PAGESIZE);
		page = pg >= 4096 && pg <= (long)SHM_SLAB_SIZE ? (size_t)pg :
		    4096;
	}
	n = SHM_SLAB_SIZE / page;
	if (mincore((void *)slab_addr(seg, s), SHM_SLAB_SIZE, vec) != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!(vec[i] & 1))
			return 0;
	return 1;
}

int
table_used(const struct shm_slab *table, uint64_t s)
{
	return image_slab_used(atomic_load_explicit(
	    &((struct shm_slab *)table)[s].word, memory_order_relaxed));
}

/*
 * Hashes every slab the table says is in use into next[] (0 for the
 * others), copying its bitmap and side array into check, and counts those
 * whose hash differs from prev[] (every one when prev is NULL).  Writes
 * nothing: a delta checkpoint asks this first whether there is anything
 * to write at all.
 */
int
image_scan(const struct shm_seg *seg, const struct shm_slab *table,
    const uint64_t *prev, uint64_t *next, struct shm_seg *check,
    uint64_t *changed)
{
	uint8_t *buf;
	uint64_t s, h;
	int rc = 0;

	*changed = 0;
	if ((buf = malloc(SHM_BITMAP_BYTES + SHM_SIDE_BYTES +
	    SHM_SLAB_SIZE)) == NULL)
		return -ENOMEM;
	for (s = 0; s < seg->nslabs; s++) {
		if (!table_used(table, s)) {
			next[s] = 0;
			continue;
		}
		/* The data, most of the bytes, is hashed in place when it
		 * can be: a scan that finds nothing copies little. */
		if ((rc = slab_copy(seg, s, buf, buf + SHM_BITMAP_BYTES,
		    data_resident(seg, s) ? NULL : buf + SHM_BITMAP_BYTES +
		    SHM_SIDE_BYTES, check, &h)) != 0)
			break;
		next[s] = h;
		if (prev == NULL || prev[s] != h)
			(*changed)++;
	}
	free(buf);
	return rc;
}

/* The batch of consecutive slabs the next RUN section carries. */
struct batch {
	uint8_t *bm, *sd, *data;
	uint64_t first, n;
};

static int
batch_flush(struct writer *w, struct batch *b, struct image_out *out)
{
	const void *parts[3];
	size_t lens[3];
	int rc;

	if (b->n == 0)
		return 0;
	parts[0] = b->bm;
	lens[0] = b->n * SHM_BITMAP_BYTES;
	parts[1] = b->sd;
	lens[1] = b->n * SHM_SIDE_BYTES;
	parts[2] = b->data;
	lens[2] = b->n << SHM_SLAB_SHIFT;
	rc = write_section(w, IMG_RUN, b->first, b->n, parts, lens, 3);
	out->slabs += b->n;
	b->n = 0;
	return rc;
}

/* A slab a delta leaves out: the check still gets its bitmap and side
 * array (b's buffers as scratch). */
static int
check_unchanged(const struct image_spec *sp, uint64_t s, struct batch *b)
{
	const struct shm_seg *seg = sp->seg;
	int rc;

	if (sp->check == NULL)
		return 0;
	if ((rc = part_copy(seg, b->bm, (const char *)slab_bitmap(seg, s),
	    SHM_BITMAP_BYTES)) != 0 || (rc = part_copy(seg, b->sd,
	    (const char *)slab_sides(seg, s), SHM_SIDE_BYTES)) != 0)
		return rc;
	check_store(sp->check, s, b->bm, b->sd);
	return check_store_inband(seg, sp->check, s, NULL);
}

/*
 * An image: the header, the metadata copy, then the bitmaps, side arrays
 * and data of the slabs the spec asks for, copied out of the segment in
 * batches of IMAGE_BATCH consecutive slabs, then the end marker.
 */
int
image_write(int fd, const struct image_spec *sp, struct image_out *out)
{
	const struct shm_seg *seg = sp->seg;
	const struct shm_slab *table;
	struct image_header hdr;
	struct writer w;
	struct batch b;
	struct shm_geom g;
	const void *parts[2];
	size_t lens[2];
	uint64_t s, h, d, nroots;
	int rc;

	memset(out, 0, sizeof(*out));
	if (seg_geometry_max(seg->size, seg->max, &g) != 0 ||
	    sp->meta_len != g.meta_end)
		return -EINVAL;
	table = (const struct shm_slab *)(sp->meta + g.slabs_off);
	nroots = image_meta_roots(&g, sp->meta);
	memset(&hdr, 0, sizeof(hdr));
	hdr.magic = IMAGE_MAGIC;
	hdr.version = IMAGE_VERSION;
	hdr.layout = SHM_VERSION;
	memcpy(hdr.identity, sp->identity, 16);
	hdr.base = seg->base;
	hdr.size = seg->size;
	hdr.slab_size = SHM_SLAB_SIZE;
	hdr.nslabs = seg->nslabs;
	hdr.generation = sp->generation;
	hdr.time = sp->time != 0 ? sp->time : (uint64_t)time(NULL);
	hdr.meta_len = image_meta_bytes(&g, nroots);
	hdr.kind = sp->kind;
	hdr.seq = sp->seq;
	hdr.base_generation = sp->base_generation;
	hdr.parent_generation = sp->parent_generation;
	hdr.parent_digest = sp->parent_digest;
	hdr.max_size = seg->max;
	hdr.hash = image_hash(&hdr, offsetof(struct image_header, hash));
	if ((rc = image_write_all(fd, &hdr, sizeof(hdr))) != 0)
		return rc;
	memset(&b, 0, sizeof(b));
	w.fd = fd;
	w.seed = hdr.hash;
	w.sections = 0;
	if ((w.digest = XXH3_createState()) == NULL)
		return -ENOMEM;
	XXH3_64bits_reset_withSeed(w.digest, w.seed);
	XXH3_64bits_update(w.digest, &hdr.hash, sizeof(hdr.hash));
	/* The roots in use and the slab table: the root table's room past
	 * them and the lease region stay out (image.h). */
	parts[0] = sp->meta;
	lens[0] = seg_roots_end(&g, nroots);
	parts[1] = sp->meta + g.slabs_off;
	lens[1] = g.meta_end - g.slabs_off;
	if ((rc = write_section(&w, IMG_META, 0, nroots, parts, lens,
	    2)) != 0)
		goto out;
	if (sp->check != NULL)
		image_meta_copy((uint8_t *)sp->check->sb, sp->meta, &g,
		    nroots);
	b.bm = malloc(IMAGE_BATCH * SHM_BITMAP_BYTES);
	b.sd = malloc(IMAGE_BATCH * SHM_SIDE_BYTES);
	b.data = malloc(IMAGE_BATCH << SHM_SLAB_SHIFT);
	if (b.bm == NULL || b.sd == NULL || b.data == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (s = 0; s < seg->nslabs; s++) {
		if (!table_used(table, s)) {
			if (sp->next != NULL)
				sp->next[s] = 0;
			if ((rc = batch_flush(&w, &b, out)) != 0)
				goto out;
			continue;
		}
		/* A delta: what image_scan() found unchanged stays out;
		 * the check still needs its bitmap and side array (the scan
		 * did not copy them, so that one finding nothing is cheap). */
		if (sp->prev != NULL && sp->next != NULL &&
		    sp->next[s] == sp->prev[s]) {
			if ((rc = batch_flush(&w, &b, out)) != 0 ||
			    (rc = check_unchanged(sp, s, &b)) != 0)
				goto out;
			continue;
		}
		if ((rc = slab_copy(seg, s, b.bm + b.n * SHM_BITMAP_BYTES,
		    b.sd + b.n * SHM_SIDE_BYTES,
		    b.data + (b.n << SHM_SLAB_SHIFT), sp->check, &h)) != 0)
			goto out;
		if (sp->next != NULL)
			sp->next[s] = h;
		if (b.n++ == 0)
			b.first = s;
		if (b.n == IMAGE_BATCH && (rc = batch_flush(&w, &b, out)) != 0)
			goto out;
	}
	if ((rc = batch_flush(&w, &b, out)) != 0)
		goto out;
	d = XXH3_64bits_digest(w.digest);
	parts[0] = &d;
	lens[0] = sizeof(d);
	if ((rc = write_section(&w, IMG_END, 0, w.sections, parts, lens,
	    1)) != 0)
		goto out;
	out->sections = w.sections;
	out->digest = d;
out:
	free(b.bm);
	free(b.sd);
	free(b.data);
	XXH3_freeState(w.digest);
	return rc;
}

/*
 * A scratch heap at no address in particular (seg->sb), standing for one
 * at base: what image_write() copies for the check, or what a reader loads.
 * Untouched, it costs no memory.
 */
int
image_scratch(struct shm_seg *seg, uintptr_t base, uint64_t size,
    uint64_t max)
{
	void *mem;
	uint64_t len = image_scratch_len(size, max);

	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
	if (len == 0)
		return -EINVAL;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	seg_bind_max(seg, mem, base, size, max);
	return 0;
}

/*
 * A scratch copy holds what is in use, not the room to grow: mapped as
 * far as the last slab in use, so that a heap of a large maximum needs
 * no more private address space (which strict overcommit would count)
 * than one that cannot grow.  0 for a size and maximum no heap has.
 */
uint64_t
image_scratch_len(uint64_t size, uint64_t max)
{
	struct shm_geom g;

	if (seg_geometry_max(size, max, &g) != 0)
		return 0;
	return g.data_off + (g.nslabs << SHM_SLAB_SHIFT);
}

void
image_scratch_free(struct shm_seg *seg)
{
	if (seg->sb != NULL)
		munmap(seg->sb, image_scratch_len(seg->size, seg->max));
	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
}

/*
 * What `aclheapctl verify` would say of the image whose bitmaps, side
 * arrays and metadata image_write() copied into check: settled as every
 * reader settles, then every invariant.  A checkpoint that fails this is
 * not renamed over the last good one.
 */
int
image_check_scratch(struct shm_seg *check, char *err, size_t errlen)
{
	image_settle(check);
	return shm_check_still(check, NULL, err, errlen);
}

/* fsync the file, rename it into place, fsync the folder.  Closes fd. */
int
image_commit(int fd, const char *dir, const char *tmpname, const char *name,
    char *err, size_t errlen)
{
	int dfd, rc = 0;

	if (fsync(fd) == -1) {
		rc = -errno;
		snprintf(err, errlen, "fsync %s/%s: %s", dir, tmpname,
		    strerror(errno));
		close(fd);
		return rc;
	}
	if (close(fd) == -1) {
		rc = -errno;
		snprintf(err, errlen, "close %s/%s: %s", dir, tmpname,
		    strerror(errno));
		return rc;
	}
	if (image_commit_hook != NULL)
		image_commit_hook(IMAGE_HOOK_SYNCED);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return rc;
	}
	if (renameat(dfd, tmpname, dfd, name) == -1) {
		rc = -errno;
		snprintf(err, errlen, "rename %s/%s to %s: %s", dir, tmpname,
		    name, strerror(errno));
		close(dfd);
		return rc;
	}
	if (image_commit_hook != NULL)
		image_commit_hook(IMAGE_HOOK_RENAMED);
	if (fsync(dfd) == -1) {
		rc = -errno;
		snprintf(err, errlen, "fsync %s: %s", dir, strerror(errno));
	}
	close(dfd);
	return rc;
}
