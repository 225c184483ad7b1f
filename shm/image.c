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

uint64_t
image_hash(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
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

/*
 * One section: its header, the parts one after the other as its payload, and
 * the payload's hash.  Parts may be live shared memory of src.
 */
static int
write_section(int fd, const struct shm_seg *src, uint32_t type,
    uint64_t first, uint64_t count, const void *const *parts,
    const size_t *lens, int nparts)
{
	struct image_section s;
	XXH3_state_t *st;
	uint64_t h;
	size_t off, n;
	char *buf = NULL;
	off_t pos;
	int i, rc;

	memset(&s, 0, sizeof(s));
	s.type = type;
	s.first = first;
	s.count = count;
	for (i = 0; i < nparts; i++)
		s.len += lens[i];
	s.hash = image_hash(&s, offsetof(struct image_section, hash));
	if ((rc = image_write_all(fd, &s, sizeof(s))) != 0)
		return rc;
	if ((st = XXH3_createState()) == NULL)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	if (s.len > 0 && (buf = malloc(CHUNK)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nparts; i++) {
		for (off = 0; off < lens[i]; off += n) {
			n = lens[i] - off < CHUNK ? lens[i] - off : CHUNK;
			if ((rc = part_copy(src, buf, (const char *)parts[i] +
			    off, n)) != 0)
				goto out;
			XXH3_64bits_update(st, buf, n);
			if ((rc = image_write_all(fd, buf, n)) != 0)
				goto out;
			/* Start writeback now, so the disk works while we copy
			 * and hash the next chunk, and the final fsync has
			 * little left to do. */
			pos = lseek(fd, 0, SEEK_CUR);
			if (pos >= (off_t)n)
				(void)sync_file_range(fd, pos - (off_t)n,
				    (off_t)n, SYNC_FILE_RANGE_WRITE);
		}
	}
	h = XXH3_64bits_digest(st);
	rc = image_write_all(fd, &h, sizeof(h));
out:
	free(buf);
	XXH3_freeState(st);
	return rc;
}

int
image_write_section(int fd, uint32_t type, uint64_t first, uint64_t count,
    const void *const *parts, const size_t *lens, int nparts)
{
	return write_section(fd, NULL, type, first, count, parts, lens,
	    nparts);
}

/* Whether block j of a span of cls at h is live in the segment. */
static int
span_live(const struct shm_seg *seg, uint64_t h, uint32_t cls, uint32_t j)
{
	return slab_side_load((uintptr_t)slab_sides(seg, h), cls, j) != 0;
}

/*
 * Whether slab s of a cut holds something an image must keep.  A small
 * slab with no claimed block holds nothing (I3: its side entries are zero
 * too).  A span keeps its head when a block in it is live (the head's side
 * line holds every side entry of the span) and a tail when a live block
 * reaches into it; blocks a thread holds privately are not live, and load
 * as free.  Without the live segment every slab in use is kept.
 */
static int
slab_kept(const struct shm_slab *slabs, const struct shm_seg *live,
    uint64_t s)
{
	uint32_t w = atomic_load(&((struct shm_slab *)slabs)[s].word), cls, j;
	uint64_t h, lo, hi, cs;
	unsigned k;

	switch (SHM_SLAB_STATE(w)) {
	case SHM_FREE:
		return 0;
	case SHM_SMALL:
	case SHM_RECLAIMING:
		cls = SHM_SLAB_CLS(w);
		if (live == NULL || cls >= SHM_NCLASSES)
			return 1;
		if (cls >= SHM_NSMALL) {
			for (j = 0; j < slab_class_nblocks[cls]; j++)
				if (span_live(live, s, cls, j))
					return 1;
			return 0;
		}
		for (k = 0; k < SHM_BITMAP_WORDS; k++)
			if (atomic_load_explicit(&slab_bitmap(live, s)[k],
			    memory_order_relaxed) != 0)
				return 1;
		return 0;
	case SHM_SPAN_TAIL:
		h = slabs[s].run;
		if (live == NULL || h >= s || s - h >= SHM_SPAN_MAX)
			return 1;
		w = atomic_load(&((struct shm_slab *)slabs)[h].word);
		cls = SHM_SLAB_CLS(w);
		if ((SHM_SLAB_STATE(w) != SHM_SMALL &&
		    SHM_SLAB_STATE(w) != SHM_RECLAIMING) ||
		    cls < SHM_NSMALL || cls >= SHM_NCLASSES)
			return 1;
		cs = slab_class_size[cls];
		lo = (s - h) << SHM_SLAB_SHIFT;
		hi = lo + SHM_SLAB_SIZE;
		for (j = (uint32_t)(lo / cs); j < slab_class_nblocks[cls] &&
		    j * cs < hi; j++)
			if (span_live(live, h, cls, j))
				return 1;
		return 0;
	default:
		return 1;
	}
}

/*
 * The runs of slabs to write from a slab table (a copy taken at the cut),
 * as (first, count) pairs of at most IMAGE_RUN_MAX slabs: those in use,
 * less those holding nothing when the live segment is given (slab_kept()).
 * *runs is malloc'd.
 */
int
image_runs(const struct shm_slab *slabs, uint64_t nslabs,
    const struct shm_seg *live, uint64_t **runs, uint64_t *nruns)
{
	uint64_t s, cap = 64, first = 0, n = 0, *r, *p;
	uint32_t st;

	*nruns = 0;
	if ((r = malloc(cap * 16)) == NULL)
		return -ENOMEM;
	for (s = 0; s <= nslabs; s++) {
		st = s < nslabs && slab_kept(slabs, live, s) ?
		    SHM_SMALL : SHM_FREE;
		if (st != SHM_FREE && n < IMAGE_RUN_MAX) {
			if (n++ == 0)
				first = s;
			continue;
		}
		if (n > 0) {
			if (*nruns == cap) {
				if ((p = reallocarray(r, cap * 2, 16)) == NULL) {
					free(r);
					return -ENOMEM;
				}
				r = p;
				cap *= 2;
			}
			r[2 * *nruns] = first;
			r[2 * *nruns + 1] = n;
			(*nruns)++;
			n = 0;
		}
		if (st != SHM_FREE) {
			first = s;
			n = 1;
		}
	}
	*runs = r;
	return 0;
}

/*
 * A whole image: the header, the metadata copy, then each run's bitmaps,
 * side arrays and data read from the segment, then the end marker.
 */
int
image_write(int fd, const struct shm_seg *seg, const uint8_t identity[16],
    const uint8_t *meta, uint64_t meta_len, const uint64_t *runs,
    uint64_t nruns, uint64_t generation)
{
	struct image_header hdr;
	const void *parts[3];
	size_t lens[3];
	uint64_t i, f, n, sections = 0;
	int rc;

	memset(&hdr, 0, sizeof(hdr));
	hdr.magic = IMAGE_MAGIC;
	hdr.version = IMAGE_VERSION;
	hdr.layout = SHM_VERSION;
	memcpy(hdr.identity, identity, 16);
	hdr.base = seg->base;
	hdr.size = seg->size;
	hdr.slab_size = SHM_SLAB_SIZE;
	hdr.nslabs = seg->nslabs;
	hdr.generation = generation;
	hdr.time = (uint64_t)time(NULL);
	hdr.meta_len = meta_len;
	if ((rc = image_write_header(fd, &hdr)) != 0)
		return rc;
	parts[0] = meta;
	lens[0] = meta_len;
	if ((rc = image_write_section(fd, IMG_META, 0, 0, parts, lens, 1))
	    != 0)
		return rc;
	sections++;
	for (i = 0; i < nruns; i++) {
		f = runs[2 * i];
		n = runs[2 * i + 1];
		parts[0] = (const void *)slab_bitmap(seg, f);
		lens[0] = n * SHM_BITMAP_BYTES;
		parts[1] = (const void *)slab_sides(seg, f);
		lens[1] = n * SHM_SIDE_BYTES;
		parts[2] = (const void *)slab_addr(seg, f);
		lens[2] = n << SHM_SLAB_SHIFT;
		if ((rc = write_section(fd, seg, IMG_RUN, f, n, parts, lens,
		    3)) != 0)
			return rc;
		sections++;
	}
	return image_write_section(fd, IMG_END, 0, sections, NULL, NULL, 0);
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
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return rc;
	}
	if (renameat(dfd, tmpname, dfd, name) == -1) {
		rc = -errno;
		snprintf(err, errlen, "rename %s/%s to %s: %s", dir, tmpname,
		    name, strerror(errno));
	} else if (fsync(dfd) == -1) {
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
	if (h->hash != image_hash(h, offsetof(struct image_header, hash))) {
		snprintf(err, errlen, "header: checksum mismatch");
		return -EUCLEAN;
	}
	if (h->version != IMAGE_VERSION || h->layout != SHM_VERSION) {
		snprintf(err, errlen, "header: image format %u layout %u, this "
		    "build reads format %u layout %u", h->version, h->layout,
		    IMAGE_VERSION, SHM_VERSION);
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
		    p->slot[t].buf, p->slot[t].n) : 0;
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
pipeline_start(struct pipeline *p, image_put_fn put, void *ctx)
{
	int i;

	memset(p, 0, sizeof(*p));
	p->put = put;
	p->ctx = ctx;
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
 * lens[] long, through the pipeline.  Verifies the trailer.  *bad: 1 for a
 * checksum mismatch, 2 when storing failed.
 */
static int
read_payload(int fd, struct pipeline *pl, const uint64_t *offs,
    const uint64_t *lens, int nparts, int *bad)
{
	XXH3_state_t *st;
	uint64_t off, n, h;
	char *buf;
	int i, rc = 0;

	*bad = 0;
	if ((st = XXH3_createState()) == NULL)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	for (i = 0; i < nparts && rc == 0; i++) {
		for (off = 0; off < lens[i]; off += n) {
			n = lens[i] - off < CHUNK ? lens[i] - off : CHUNK;
			buf = pipeline_buf(pl);
			if ((rc = read_full(fd, buf, n)) != 0)
				break;
			XXH3_64bits_update(st, buf, n);
			if ((rc = pipeline_put(pl, offs[i] + off, n)) != 0) {
				*bad = 2;
				break;
			}
		}
	}
	if (rc == 0 && (rc = read_full(fd, &h, sizeof(h))) == 0 &&
	    h != XXH3_64bits_digest(st)) {
		*bad = 1;
		rc = -EUCLEAN;
	}
	XXH3_freeState(st);
	return rc;
}

int
image_read(int fd, const char *path, image_put_fn put, void *ctx,
    struct image_info *info, char *err, size_t errlen)
{
	struct image_header *h = &info->hdr;
	struct image_section s;
	struct shm_geom g;
	struct stat sb;
	uint64_t offs[3], lens[3], pos, per;
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
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if ((rc = pipeline_start(&pl, put, ctx)) != 0)
		return rc;
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
		if (s.hash != image_hash(&s, offsetof(struct image_section,
		    hash)) || s.pad != 0) {
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
			if (s.count != info->sections || s.len != 0) {
				snprintf(err, errlen, "%s: %s: end marker counts "
				    "%" PRIu64 " sections, found %" PRIu64,
				    path, what, s.count, info->sections);
				rc = -EUCLEAN;
				goto out;
			}
			pos = (uint64_t)lseek(fd, 0, SEEK_CUR) + 8;
			if (pos > info->bytes) {
				/* Cut inside the trailer: not "garbage". */
				snprintf(err, errlen, "%s: %s: truncated image: "
				    "%" PRIu64 " byte%s missing at the end", path,
				    what, pos - info->bytes, pos - info->bytes ==
				    1 ? "" : "s");
				rc = -EUCLEAN;
				goto out;
			}
			if (pos != info->bytes) {
				snprintf(err, errlen, "%s: %s: %" PRIu64 " bytes "
				    "of garbage after the end marker", path,
				    what, info->bytes - pos);
				rc = -EUCLEAN;
				goto out;
			}
			nparts = 0;
			break;
		default:
			snprintf(err, errlen, "%s: %s: unknown section type %u",
			    path, what, s.type);
			rc = -EUCLEAN;
			goto out;
		}
		rc = read_payload(fd, &pl, offs, lens, nparts, &bad);
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
		if (s.type == IMG_END)
			break;
		info->sections++;
		if (s.type == IMG_RUN) {
			info->runs++;
			info->slabs += s.count;
		}
	}
	rc = 0;
out:
	bad = pipeline_finish(&pl);
	if (rc == 0 && bad != 0) {
		snprintf(err, errlen, "%s: cannot store: %s", path,
		    strerror(-bad));
		rc = bad;
	}
	return rc;
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
	uint64_t s, hwm = atomic_load(&seg->sb->slab_hwm), bits;
	uint32_t w, cls, nw, i, k;
	uintptr_t sd;

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
		for (k = 0; k < nw; k++) {
			bits = 0;
			for (i = 0; i < 64 && k * 64 + i < slab_class_nblocks[cls];
			    i++)
				if (slab_side_load(sd, cls, k * 64 + i) != 0)
					bits |= UINT64_C(1) << i;
			atomic_store_explicit(&slab_bitmap(seg, s)[k], bits,
			    memory_order_relaxed);
		}
	}
}

static int
put_mem(void *ctx, uint64_t off, const void *p, size_t n)
{
	memcpy((char *)ctx + off, p, n);
	return 0;
}

/*
 * Loads an image into scratch memory for offline work (verify, inspect):
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
	rc = image_read(fd, path, put_mem, mem, info, err, errlen);
	close(fd);
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
