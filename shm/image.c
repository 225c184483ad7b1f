/* SPDX-License-Identifier: MIT */
/*
 * image.c: writing and reading heap images (the format is in image.h).
 *
 * The writer streams each section through a private buffer: it copies a
 * chunk out of the live mapping, hashes the copy and writes the copy, so the
 * checksum always matches the bytes on disk even while clients write.
 *
 * The reader verifies as it goes and hands each verified chunk to a put()
 * callback: pwrite() on a fresh segment's descriptor in the daemon, memcpy
 * into scratch memory for offline inspection.  A damaged image is reported
 * with the file, the section and its file offset; the file is only read.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "shm/image.h"

#define CHUNK	(UINT64_C(4) << 20)

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
	size_t got = 0;
	ssize_t r;

	if (src != NULL && src->fd >= 0) {
		lo = (uintptr_t)src->sb;
		hi = lo + src->size;
		if (a >= lo && a < hi && n <= hi - a) {
			while (got < n) {
				r = pread(src->fd, (char *)buf + got, n - got,
				    (off_t)(a - lo + got));
				if (r == -1 && errno == EINTR)
					continue;
				if (r == -1)
					return -errno;
				if (r == 0)
					return -EIO;
				got += (size_t)r;
			}
			return 0;
		}
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
static uint64_t
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
	uint32_t w = atomic_load(&check->slabs[s].word), cls, off;
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
static int
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

static int
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
	const void *parts[1];
	size_t lens[1];
	uint64_t s, h, d;
	int rc;

	memset(out, 0, sizeof(*out));
	if (seg_geometry(seg->size, &g) != 0 || sp->meta_len != g.bitmaps_off)
		return -EINVAL;
	table = (const struct shm_slab *)(sp->meta + g.slabs_off);
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
	hdr.meta_len = sp->meta_len;
	hdr.kind = sp->kind;
	hdr.seq = sp->seq;
	hdr.base_generation = sp->base_generation;
	hdr.parent_generation = sp->parent_generation;
	hdr.parent_digest = sp->parent_digest;
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
	parts[0] = sp->meta;
	lens[0] = sp->meta_len;
	if ((rc = write_section(&w, IMG_META, 0, 0, parts, lens, 1)) != 0)
		goto out;
	if (sp->check != NULL)
		memcpy(sp->check->sb, sp->meta, sp->meta_len);
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
			if ((rc = batch_flush(&w, &b, out)) != 0)
				goto out;
			if (sp->check != NULL && ((rc = part_copy(seg, b.bm,
			    (const char *)slab_bitmap(seg, s),
			    SHM_BITMAP_BYTES)) != 0 || (rc = part_copy(seg,
			    b.sd, (const char *)slab_sides(seg, s),
			    SHM_SIDE_BYTES)) != 0))
				goto out;
			if (sp->check != NULL) {
				check_store(sp->check, s, b.bm, b.sd);
				if ((rc = check_store_inband(seg, sp->check,
				    s, NULL)) != 0)
					goto out;
			}
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
image_scratch(struct shm_seg *seg, uintptr_t base, uint64_t size)
{
	void *mem;

	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	seg_bind(seg, mem, base, size);
	return 0;
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

static int
read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
image_read_header(int fd, struct image_header *h, char *err, size_t errlen)
{
	int rc;

	if ((rc = read_full(fd, h, sizeof(*h))) != 0) {
		snprintf(err, errlen, "header: %s", rc == -ENODATA ?
		    "file is shorter than an image header (truncated)" :
		    strerror(-rc));
		return -EUCLEAN;
	}
	if (h->magic != IMAGE_MAGIC) {
		snprintf(err, errlen, "header: bad magic (not an aclheap "
		    "image)");
		return -EUCLEAN;
	}
	/* The version first: an older format's header is shorter, and its
	 * checksum is not where this one's is. */
	if (h->version != IMAGE_VERSION || h->layout != SHM_VERSION) {
		snprintf(err, errlen, "header: image format %u layout %u, this "
		    "build reads format %u layout %u", h->version, h->layout,
		    IMAGE_VERSION, SHM_VERSION);
		return -EUCLEAN;
	}
	if (h->hash != image_hash(h, offsetof(struct image_header, hash))) {
		snprintf(err, errlen, "header: checksum mismatch");
		return -EUCLEAN;
	}
	if (h->kind > IMAGE_DELTA || (h->kind == IMAGE_FULL && h->seq != 0) ||
	    (h->kind == IMAGE_DELTA && h->seq == 0)) {
		snprintf(err, errlen, "header: unknown kind %u (link %u)",
		    h->kind, h->seq);
		return -EUCLEAN;
	}
	if (h->slab_size != SHM_SLAB_SIZE) {
		snprintf(err, errlen, "header: slab size %" PRIu64 ", this "
		    "build uses %" PRIu64, h->slab_size,
		    (uint64_t)SHM_SLAB_SIZE);
		return -EUCLEAN;
	}
	return 0;
}

/*
 * The reader's pipeline: this thread reads and hashes chunk k+1 while a
 * second one stores chunk k (pwrite into a fresh tmpfs object costs about
 * what reading the disk does, so doing both at once nearly halves a load).
 */
#define NSLOT	3

struct pipeline {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct {
		char *buf;
		uint64_t off;
		size_t n;
		int full;
	} slot[NSLOT];
	int head, tail, done, err;
	int over;
	image_put_fn put;
	void *ctx;
	pthread_t thread;
};

static void *
pipeline_run(void *arg)
{
	struct pipeline *p = arg;
	int rc, t;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		t = p->tail;
		while (!p->slot[t].full && !p->done)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->slot[t].full)
			break;
		pthread_mutex_unlock(&p->mu);
		rc = p->err == 0 ? p->put(p->ctx, p->slot[t].off,
		    p->slot[t].buf, p->slot[t].n, p->over) : 0;
		pthread_mutex_lock(&p->mu);
		if (rc != 0 && p->err == 0)
			p->err = rc;
		p->slot[t].full = 0;
		p->tail = (t + 1) % NSLOT;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int
pipeline_start(struct pipeline *p, image_put_fn put, void *ctx, int over)
{
	int i;

	memset(p, 0, sizeof(*p));
	p->put = put;
	p->ctx = ctx;
	p->over = over;
	for (i = 0; i < NSLOT; i++)
		if ((p->slot[i].buf = malloc(CHUNK)) == NULL)
			goto fail;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, pipeline_run, p) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		goto fail;
	}
	return 0;
fail:
	for (i = 0; i < NSLOT; i++)
		free(p->slot[i].buf);
	return -ENOMEM;
}

/* The next free buffer, once the storer has emptied it. */
static char *
pipeline_buf(struct pipeline *p)
{
	char *b;

	pthread_mutex_lock(&p->mu);
	while (p->slot[p->head].full)
		pthread_cond_wait(&p->cv, &p->mu);
	b = p->slot[p->head].buf;
	pthread_mutex_unlock(&p->mu);
	return b;
}

/* Hands the buffer from pipeline_buf() over; 0 or the storer's error. */
static int
pipeline_put(struct pipeline *p, uint64_t off, size_t n)
{
	int err;

	pthread_mutex_lock(&p->mu);
	p->slot[p->head].off = off;
	p->slot[p->head].n = n;
	p->slot[p->head].full = 1;
	p->head = (p->head + 1) % NSLOT;
	err = p->err;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return err;
}

/* Waits for everything handed over to be stored; the storer's error. */
static int
pipeline_finish(struct pipeline *p)
{
	int i;

	pthread_mutex_lock(&p->mu);
	p->done = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	for (i = 0; i < NSLOT; i++)
		free(p->slot[i].buf);
	return p->err;
}

/*
 * Streams a payload from fd: the parts to the offsets in offs[], each
 * lens[] long, through the pipeline (and, if tee is not NULL, into tee as
 * well).  Verifies the trailer, seeded with seed; *hp is the payload's
 * hash.  *bad: 1 for a checksum mismatch, 2 when storing failed.  If ph is
 * not NULL, part i is made of pieces of piece[i] bytes (a divisor of
 * CHUNK), and ph[i * npieces + k] receives the hash of its piece k.
 */
static int
read_payload(int fd, struct pipeline *pl, const uint64_t *offs,
    const uint64_t *lens, int nparts, uint64_t seed, uint8_t *tee,
    const uint64_t *piece, uint64_t npieces, uint64_t *ph, uint64_t *hp,
    int *bad)
{
	XXH3_state_t *st;
	uint64_t off, n, h, at = 0, x;
	char *buf;
	int i, rc = 0;

	*bad = 0;
	if ((st = XXH3_createState()) == NULL)
		return -ENOMEM;
	XXH3_64bits_reset_withSeed(st, seed);
	for (i = 0; i < nparts && rc == 0; i++) {
		for (off = 0; off < lens[i]; off += n) {
			n = lens[i] - off < CHUNK ? lens[i] - off : CHUNK;
			buf = pipeline_buf(pl);
			if ((rc = read_full(fd, buf, n)) != 0)
				break;
			XXH3_64bits_update(st, buf, n);
			if (tee != NULL)
				memcpy(tee + at, buf, n);
			for (x = 0; ph != NULL && x + piece[i] <= n;
			    x += piece[i])
				ph[(uint64_t)i * npieces + (off + x) / piece[i]] =
				    XXH3_64bits(buf + x, piece[i]);
			at += n;
			if ((rc = pipeline_put(pl, offs[i] + off, n)) != 0) {
				*bad = 2;
				break;
			}
		}
	}
	*hp = XXH3_64bits_digest(st);
	if (rc == 0 && (rc = read_full(fd, &h, sizeof(h))) == 0 && h != *hp) {
		*bad = 1;
		rc = -EUCLEAN;
	}
	XXH3_freeState(st);
	return rc;
}

/* How one link of a chain is read. */
struct link {
	image_put_fn put;
	void *ctx;
	int over;		/* an earlier link wrote the segment */
	uint8_t *written;	/* a bit per slab a RUN section carried */
	uint64_t *hashes;	/* per slab: its hash as carried, or NULL */
	uint8_t *meta;		/* the META payload, meta_len bytes */
	uint64_t digest;	/* out: the END section's */
};

/*
 * Reads one file from its start: the header, then every section, each
 * verified before the next is read.  info counts this file's sections.
 */
static int
read_link(int fd, const char *path, struct link *lk, struct image_info *info,
    char *err, size_t errlen)
{
	struct image_header *h = &info->hdr;
	struct image_section s;
	struct shm_geom g;
	struct stat sb;
	static const uint64_t piece[3] = { SHM_BITMAP_BYTES, SHM_SIDE_BYTES,
	    SHM_SLAB_SIZE };
	uint64_t offs[3], lens[3], pos, per, ph, pair[2], d, t;
	uint64_t *pieces = NULL;
	XXH3_state_t *dg = NULL;
	struct pipeline pl;
	char what[96];
	int rc, bad, nparts;

	memset(info, 0, sizeof(*info));
	if (lseek(fd, 0, SEEK_SET) == -1 || fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	info->bytes = (uint64_t)sb.st_size;
	if ((rc = image_read_header(fd, h, what, sizeof(what))) != 0) {
		snprintf(err, errlen, "%s: %s", path, what);
		return rc;
	}
	if (seg_geometry(h->size, &g) != 0 || g.nslabs != h->nslabs ||
	    h->meta_len != g.bitmaps_off) {
		snprintf(err, errlen, "%s: header: geometry of size %" PRIu64
		    " does not match its %" PRIu64 " slabs", path, h->size,
		    h->nslabs);
		return -EUCLEAN;
	}
	if ((dg = XXH3_createState()) == NULL)
		return -ENOMEM;
	XXH3_64bits_reset_withSeed(dg, h->hash);
	XXH3_64bits_update(dg, &h->hash, sizeof(h->hash));
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if ((rc = pipeline_start(&pl, lk->put, lk->ctx, lk->over)) != 0) {
		XXH3_freeState(dg);
		return rc;
	}
	per = SHM_BITMAP_BYTES + SHM_SIDE_BYTES + SHM_SLAB_SIZE;
	for (;;) {
		pos = (uint64_t)lseek(fd, 0, SEEK_CUR);
		snprintf(what, sizeof(what), "section %" PRIu64 " at offset %"
		    PRIu64, info->sections, pos);
		if ((rc = read_full(fd, &s, sizeof(s))) != 0) {
			snprintf(err, errlen, "%s: %s: %s", path, what,
			    rc == -ENODATA ? "missing (truncated image)" :
			    strerror(-rc));
			rc = -EUCLEAN;
			goto out;
		}
		if (s.hash != image_hash_seeded(&s, offsetof(struct
		    image_section, hash), h->hash) || s.pad != 0) {
			snprintf(err, errlen, "%s: %s: header checksum "
			    "mismatch", path, what);
			rc = -EUCLEAN;
			goto out;
		}
		if (info->sections == 0 && s.type != IMG_META) {
			snprintf(err, errlen, "%s: %s: expected the metadata "
			    "section first", path, what);
			rc = -EUCLEAN;
			goto out;
		}
		switch (s.type) {
		case IMG_META:
			if (info->sections != 0 || s.len != h->meta_len) {
				snprintf(err, errlen, "%s: %s: metadata section "
				    "misplaced or of wrong length", path, what);
				rc = -EUCLEAN;
				goto out;
			}
			offs[0] = 0;
			lens[0] = s.len;
			nparts = 1;
			snprintf(what + strlen(what), sizeof(what) -
			    strlen(what), " (metadata)");
			break;
		case IMG_RUN:
			if (s.count == 0 || s.count > IMAGE_RUN_MAX ||
			    s.first >= h->nslabs ||
			    s.count > h->nslabs - s.first ||
			    s.len != s.count * per) {
				snprintf(err, errlen, "%s: %s: run of slabs %"
				    PRIu64 "+%" PRIu64 " is out of range",
				    path, what, s.first, s.count);
				rc = -EUCLEAN;
				goto out;
			}
			offs[0] = g.bitmaps_off + s.first * SHM_BITMAP_BYTES;
			lens[0] = s.count * SHM_BITMAP_BYTES;
			offs[1] = g.sides_off + s.first * SHM_SIDE_BYTES;
			lens[1] = s.count * SHM_SIDE_BYTES;
			offs[2] = g.data_off + s.first * SHM_SLAB_SIZE;
			lens[2] = s.count * SHM_SLAB_SIZE;
			nparts = 3;
			snprintf(what + strlen(what), sizeof(what) -
			    strlen(what), " (slabs %" PRIu64 "-%" PRIu64 ")",
			    s.first, s.first + s.count - 1);
			break;
		case IMG_END:
			if (s.count != info->sections || s.len != sizeof(d)) {
				snprintf(err, errlen, "%s: %s: end marker counts "
				    "%" PRIu64 " sections, found %" PRIu64,
				    path, what, s.count, info->sections);
				rc = -EUCLEAN;
				goto out;
			}
			pos = (uint64_t)lseek(fd, 0, SEEK_CUR) + sizeof(d) +
			    sizeof(t);
			if (pos > info->bytes) {
				/* Cut inside the trailer: not "garbage". */
				snprintf(err, errlen, "%s: %s: truncated image: "
				    "%" PRIu64 " byte%s missing at the end", path,
				    what, pos - info->bytes, pos - info->bytes ==
				    1 ? "" : "s");
				rc = -EUCLEAN;
				goto out;
			}
			if ((rc = read_full(fd, &d, sizeof(d))) != 0 ||
			    (rc = read_full(fd, &t, sizeof(t))) != 0) {
				snprintf(err, errlen, "%s: %s: truncated", path,
				    what);
				rc = -EUCLEAN;
				goto out;
			}
			if (t != image_hash_seeded(&d, sizeof(d), h->hash)) {
				snprintf(err, errlen, "%s: %s: checksum "
				    "mismatch", path, what);
				rc = -EUCLEAN;
				goto out;
			}
			if (d != XXH3_64bits_digest(dg)) {
				snprintf(err, errlen, "%s: %s: the end marker's "
				    "digest does not match the sections before "
				    "it (sections of another image)", path,
				    what);
				rc = -EUCLEAN;
				goto out;
			}
			if ((uint64_t)lseek(fd, 0, SEEK_CUR) != info->bytes) {
				snprintf(err, errlen, "%s: %s: %" PRIu64 " bytes "
				    "of garbage after the end marker", path,
				    what, info->bytes - (uint64_t)lseek(fd, 0,
				    SEEK_CUR));
				rc = -EUCLEAN;
				goto out;
			}
			lk->digest = d;
			rc = 0;
			goto out;
		default:
			snprintf(err, errlen, "%s: %s: unknown section type %u",
			    path, what, s.type);
			rc = -EUCLEAN;
			goto out;
		}
		if (s.type == IMG_RUN && lk->hashes != NULL &&
		    (pieces = reallocarray(pieces, 3 * s.count,
		    sizeof(*pieces))) == NULL) {
			snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
			rc = -ENOMEM;
			goto out;
		}
		rc = read_payload(fd, &pl, offs, lens, nparts, h->hash,
		    s.type == IMG_META ? lk->meta : NULL, piece, s.count,
		    s.type == IMG_RUN && lk->hashes != NULL ? pieces : NULL,
		    &ph, &bad);
		if (rc != 0) {
			if (bad == 2)
				snprintf(err, errlen, "%s: %s: cannot store: %s",
				    path, what, strerror(-rc));
			else
				snprintf(err, errlen, "%s: %s: %s", path, what,
				    bad ? "checksum mismatch" :
				    rc == -ENODATA ? "truncated" :
				    strerror(-rc));
			if (bad != 2)
				rc = -EUCLEAN;
			goto out;
		}
		pair[0] = s.hash;
		pair[1] = ph;
		XXH3_64bits_update(dg, pair, sizeof(pair));
		info->sections++;
		if (s.type == IMG_RUN) {
			info->runs++;
			info->slabs += s.count;
			if (lk->written != NULL)
				for (t = s.first; t < s.first + s.count; t++)
					lk->written[t / 8] |=
					    (uint8_t)(1u << (t % 8));
			for (t = 0; lk->hashes != NULL && t < s.count; t++)
				lk->hashes[s.first + t] = slab_hash3(pieces[t],
				    pieces[s.count + t], pieces[2 * s.count + t]);
		}
	}
out:
	free(pieces);
	XXH3_freeState(dg);
	bad = pipeline_finish(&pl);
	if (rc == 0 && bad != 0) {
		snprintf(err, errlen, "%s: cannot store: %s", path,
		    strerror(-bad));
		rc = bad;
	}
	return rc;
}

/* One file, a base or a delta, on its own (the fuzzer's entry). */
int
image_read(int fd, const char *path, image_put_fn put, void *ctx,
    struct image_info *info, char *err, size_t errlen)
{
	struct link lk;
	int rc;

	memset(&lk, 0, sizeof(lk));
	lk.put = put;
	lk.ctx = ctx;
	rc = read_link(fd, path, &lk, info, err, errlen);
	info->digest = lk.digest;
	info->base_generation = info->hdr.generation;
	info->base_bytes = info->bytes;
	return rc;
}

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
	    d->base != base->base || d->size != base->size) {
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

/*
 * Reads a chain: the base at path, then path.delta.1, path.delta.2, ...
 * while they follow.  Slabs an earlier link wrote and the last metadata
 * says are free are put as zeros.  info describes the whole chain, hdr its last link.
 */
int
image_read_chain(const char *path, image_put_fn put, void *ctx,
    struct image_info *info, uint64_t *hashes, char *err, size_t errlen)
{
	struct image_header base, dh;
	struct image_info one;
	struct shm_geom g;
	struct link lk;
	const struct shm_slab *table;
	char lpath[4200], what[256];
	uint64_t s;
	uint32_t k;
	int fd, rc;

	memset(info, 0, sizeof(*info));
	memset(&lk, 0, sizeof(lk));
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
	if (seg_geometry(base.size, &g) != 0 || g.nslabs != base.nslabs ||
	    base.meta_len != g.bitmaps_off) {
		snprintf(err, errlen, "%s: header: geometry of size %" PRIu64
		    " does not match its %" PRIu64 " slabs", path, base.size,
		    base.nslabs);
		rc = -EUCLEAN;
		goto out;
	}
	if ((lk.written = calloc(1, (size_t)(g.nslabs + 7) / 8)) == NULL ||
	    (lk.meta = malloc(g.bitmaps_off)) == NULL) {
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
	/* What the chain wrote and the end says is free reads as zeros. */
	table = (const struct shm_slab *)(lk.meta + g.slabs_off);
	for (s = 0; s < g.nslabs; s++) {
		if (!(lk.written[s / 8] & (1u << (s % 8))) ||
		    table_used(table, s))
			continue;
		if (hashes != NULL)
			hashes[s] = 0;
		if ((rc = put(ctx, g.bitmaps_off + s * SHM_BITMAP_BYTES, NULL,
		    SHM_BITMAP_BYTES, 1)) != 0 ||
		    (rc = put(ctx, g.sides_off + s * SHM_SIDE_BYTES, NULL,
		    SHM_SIDE_BYTES, 1)) != 0 ||
		    (rc = put(ctx, g.data_off + s * SHM_SLAB_SIZE, NULL,
		    SHM_SLAB_SIZE, 1)) != 0) {
			snprintf(err, errlen, "%s: cannot store: %s", path,
			    strerror(-rc));
			goto out;
		}
	}
	rc = 0;
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
	uint64_t s, hwm = atomic_load(&seg->sb->slab_hwm), bits;
	uint32_t w, cls, nw, i, k;
	uintptr_t sd;
	uint8_t *buf = NULL;
	int moved;

	if (hwm > seg->nslabs)
		hwm = seg->nslabs;
	memset(seg->leases, 0, SHM_LEASES * sizeof(struct shm_lease));
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
		nw = (slab_class_nblocks[cls] + 63) / 64;
		moved = 0;
		for (k = 0; k < nw; k++) {
			bits = 0;
			for (i = 0; i < 64 && k * 64 + i < slab_class_nblocks[cls];
			    i++)
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
 * offline work (verify, inspect):
 * seg->base is the image's base, seg->sb wherever the scratch landed.
 */
int
image_load_offline(const char *path, struct shm_seg *seg,
    struct image_info *info, char *err, size_t errlen)
{
	struct image_header h;
	void *mem;
	int fd, rc;

	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
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
	if (h.size < SHM_SIZE_MIN || h.size > SHM_SIZE_MAX) {
		snprintf(err, errlen, "%s: header: size %" PRIu64 " out of "
		    "range", path, h.size);
		close(fd);
		return -EUCLEAN;
	}
	mem = mmap(NULL, h.size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		rc = -errno;
		snprintf(err, errlen, "%s: scratch memory: %s", path,
		    strerror(errno));
		close(fd);
		return rc;
	}
	close(fd);
	rc = image_read_chain(path, put_mem, mem, info, NULL, err, errlen);
	if (rc != 0) {
		munmap(mem, h.size);
		return rc;
	}
	seg_bind(seg, mem, (uintptr_t)h.base, h.size);
	image_settle(seg);
	return 0;
}

void
image_unload_offline(struct shm_seg *seg)
{
	if (seg->sb != NULL)
		munmap(seg->sb, seg->size);
	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
}
