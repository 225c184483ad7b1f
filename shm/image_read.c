/* SPDX-License-Identifier: MIT */
/*
 * image_read.c: reading one image file (the format is in image.h).
 *
 * The reader verifies as it goes and hands each verified chunk to a put()
 * callback: pwrite() on a fresh segment's descriptor in the daemon, memcpy
 * into scratch memory for offline inspection.  A damaged image is reported
 * with the file, the section and its file offset; the file is only read.
 * A chain of files (a base and its deltas) is image_chain.c's.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "shm/image.h"
#include "shm/image_impl.h"

#define CHUNK	(UINT64_C(4) << 20)

int
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
 * lens[] long, through the pipeline (and, if tee is not NULL, into tee at
 * the same offsets as well).  Verifies the trailer, seeded with seed; *hp is the payload's
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
	uint64_t off, n, h, x;
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
			if (tee != NULL)	/* segment-shaped */
				memcpy(tee + offs[i] + off, buf, n);
			for (x = 0; ph != NULL && x + piece[i] <= n;
			    x += piece[i])
				ph[(uint64_t)i * npieces + (off + x) / piece[i]] =
				    XXH3_64bits(buf + x, piece[i]);
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

/* One file's read: where it goes and what has been read of it. */
struct link_read {
	int fd;
	const char *path;
	struct link *lk;
	struct image_info *info;
	struct shm_geom g;
	XXH3_state_t *dg;	/* of the hashes read so far, for END */
	struct pipeline pl;
	uint64_t *pieces;	/* a RUN's parts' hashes, per slab */
	char what[96];		/* the section, for messages */
	char *err;
	size_t errlen;
};

#define LR_FAIL(r, ...) do {						\
	int n_ = snprintf((r)->err, (r)->errlen, "%s: %s: ", (r)->path,	\
	    (r)->what);							\
	if (n_ >= 0 && (size_t)n_ < (r)->errlen)			\
		snprintf((r)->err + n_, (r)->errlen - (size_t)n_,	\
		    __VA_ARGS__);					\
	return -EUCLEAN;						\
} while (0)

/* The next section's header, verified; r->what names it. */
static int
section_next(struct link_read *r, struct image_section *s)
{
	uint64_t pos = (uint64_t)lseek(r->fd, 0, SEEK_CUR);
	int rc;

	snprintf(r->what, sizeof(r->what), "section %" PRIu64 " at offset %"
	    PRIu64, r->info->sections, pos);
	if ((rc = read_full(r->fd, s, sizeof(*s))) != 0)
		LR_FAIL(r, "%s", rc == -ENODATA ? "missing (truncated image)" :
		    strerror(-rc));
	if (s->hash != image_hash_seeded(s, offsetof(struct image_section,
	    hash), r->info->hdr.hash) || s->pad != 0)
		LR_FAIL(r, "header checksum mismatch");
	if (r->info->sections == 0 && s->type != IMG_META)
		LR_FAIL(r, "expected the metadata section first");
	return 0;
}

/* Where a META or RUN section's payload goes: its parts' offsets in the
 * segment and lengths. */
static int
section_place(struct link_read *r, const struct image_section *s,
    uint64_t *offs, uint64_t *lens, int *nparts)
{
	const struct image_header *h = &r->info->hdr;
	size_t at = strlen(r->what);

	switch (s->type) {
	case IMG_META:
		if (r->info->sections != 0 || s->len != h->meta_len ||
		    s->count > r->g.roots_max ||
		    s->len != image_meta_bytes(&r->g, s->count))
			LR_FAIL(r, "metadata section misplaced or of wrong "
			    "length");
		/* The roots in use, then the slab table (image.h). */
		offs[0] = 0;
		lens[0] = seg_roots_end(&r->g, s->count);
		offs[1] = r->g.slabs_off;
		lens[1] = r->g.meta_end - r->g.slabs_off;
		*nparts = 2;
		snprintf(r->what + at, sizeof(r->what) - at, " (metadata)");
		return 0;
	case IMG_RUN:
		if (s->count == 0 || s->count > IMAGE_RUN_MAX ||
		    s->first >= h->nslabs || s->count > h->nslabs - s->first ||
		    s->len != s->count * (SHM_BITMAP_BYTES + SHM_SIDE_BYTES +
		    SHM_SLAB_SIZE))
			LR_FAIL(r, "run of slabs %" PRIu64 "+%" PRIu64 " is "
			    "out of range", s->first, s->count);
		offs[0] = r->g.bitmaps_off + s->first * SHM_BITMAP_BYTES;
		lens[0] = s->count * SHM_BITMAP_BYTES;
		offs[1] = r->g.sides_off + s->first * SHM_SIDE_BYTES;
		lens[1] = s->count * SHM_SIDE_BYTES;
		offs[2] = r->g.data_off + s->first * SHM_SLAB_SIZE;
		lens[2] = s->count * SHM_SLAB_SIZE;
		*nparts = 3;
		snprintf(r->what + at, sizeof(r->what) - at, " (slabs %" PRIu64
		    "-%" PRIu64 ")", s->first, s->first + s->count - 1);
		return 0;
	default:
		LR_FAIL(r, "unknown section type %u", s->type);
	}
}

/* The END section: it counts the sections, carries their digest, and
 * nothing follows it. */
static int
section_end(struct link_read *r, const struct image_section *s)
{
	struct image_info *info = r->info;
	uint64_t pos, d, t;

	if (s->count != info->sections || s->len != sizeof(d))
		LR_FAIL(r, "end marker counts %" PRIu64 " sections, found %"
		    PRIu64, s->count, info->sections);
	pos = (uint64_t)lseek(r->fd, 0, SEEK_CUR) + sizeof(d) + sizeof(t);
	if (pos > info->bytes)	/* cut inside the trailer: not "garbage" */
		LR_FAIL(r, "truncated image: %" PRIu64 " byte%s missing at "
		    "the end", pos - info->bytes, pos - info->bytes == 1 ? "" :
		    "s");
	if (read_full(r->fd, &d, sizeof(d)) != 0 ||
	    read_full(r->fd, &t, sizeof(t)) != 0)
		LR_FAIL(r, "truncated");
	if (t != image_hash_seeded(&d, sizeof(d), info->hdr.hash))
		LR_FAIL(r, "checksum mismatch");
	if (d != XXH3_64bits_digest(r->dg))
		LR_FAIL(r, "the end marker's digest does not match the "
		    "sections before it (sections of another image)");
	pos = (uint64_t)lseek(r->fd, 0, SEEK_CUR);
	if (pos != info->bytes)
		LR_FAIL(r, "%" PRIu64 " bytes of garbage after the end marker",
		    info->bytes - pos);
	r->lk->digest = d;
	return 0;
}

/* A META or RUN section's payload, stored and verified, and what the
 * link records of it. */
static int
section_read(struct link_read *r, const struct image_section *s)
{
	static const uint64_t piece[3] = { SHM_BITMAP_BYTES, SHM_SIDE_BYTES,
	    SHM_SLAB_SIZE };
	struct link *lk = r->lk;
	uint64_t offs[3], lens[3], ph, pair[2], t;
	int rc, bad, nparts, hashed;

	if ((rc = section_place(r, s, offs, lens, &nparts)) != 0)
		return rc;
	hashed = s->type == IMG_RUN && lk->hashes != NULL;
	if (hashed && (r->pieces = reallocarray(r->pieces, 3 * s->count,
	    sizeof(*r->pieces))) == NULL) {
		snprintf(r->err, r->errlen, "%s: %s", r->path,
		    strerror(ENOMEM));
		return -ENOMEM;
	}
	rc = read_payload(r->fd, &r->pl, offs, lens, nparts, r->info->hdr.hash,
	    s->type == IMG_META ? lk->meta : NULL, piece, s->count,
	    hashed ? r->pieces : NULL, &ph, &bad);
	if (rc != 0) {
		if (bad == 2) {
			snprintf(r->err, r->errlen, "%s: %s: cannot store: %s",
			    r->path, r->what, strerror(-rc));
			return rc;
		}
		LR_FAIL(r, "%s", bad ? "checksum mismatch" : rc == -ENODATA ?
		    "truncated" : strerror(-rc));
	}
	pair[0] = s->hash;
	pair[1] = ph;
	XXH3_64bits_update(r->dg, pair, sizeof(pair));
	r->info->sections++;
	if (s->type != IMG_RUN)
		return 0;
	r->info->runs++;
	r->info->slabs += s->count;
	if (lk->written != NULL)
		for (t = s->first; t < s->first + s->count; t++)
			lk->written[t / 8] |= (uint8_t)(1u << (t % 8));
	for (t = 0; hashed && t < s->count; t++)
		lk->hashes[s->first + t] = slab_hash3(r->pieces[t],
		    r->pieces[s->count + t], r->pieces[2 * s->count + t]);
	return 0;
}

/*
 * Reads one file from its start: the header, then every section, each
 * verified before the next is read.  info counts this file's sections.
 */
int
read_link(int fd, const char *path, struct link *lk, struct image_info *info,
    char *err, size_t errlen)
{
	struct image_header *h = &info->hdr;
	struct image_section s;
	struct link_read r;
	struct stat sb;
	int rc, bad;

	memset(info, 0, sizeof(*info));
	memset(&r, 0, sizeof(r));
	r.fd = fd;
	r.path = path;
	r.lk = lk;
	r.info = info;
	r.err = err;
	r.errlen = errlen;
	if (lseek(fd, 0, SEEK_SET) == -1 || fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	info->bytes = (uint64_t)sb.st_size;
	if ((rc = image_read_header(fd, h, r.what, sizeof(r.what))) != 0) {
		snprintf(err, errlen, "%s: %s", path, r.what);
		return rc;
	}
	if (seg_geometry_max(h->size, h->max_size, &r.g) != 0 ||
	    r.g.nslabs != h->nslabs ||
	    !image_meta_len_ok(&r.g, h->meta_len)) {
		snprintf(err, errlen, "%s: header: geometry of size %" PRIu64
		    " does not match its %" PRIu64 " slabs", path, h->size,
		    h->nslabs);
		return -EUCLEAN;
	}
	if ((r.dg = XXH3_createState()) == NULL)
		return -ENOMEM;
	XXH3_64bits_reset_withSeed(r.dg, h->hash);
	XXH3_64bits_update(r.dg, &h->hash, sizeof(h->hash));
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if ((rc = pipeline_start(&r.pl, lk->put, lk->ctx, lk->over)) != 0) {
		XXH3_freeState(r.dg);
		return rc;
	}
	while ((rc = section_next(&r, &s)) == 0) {
		if (s.type == IMG_END) {
			rc = section_end(&r, &s);
			break;
		}
		if ((rc = section_read(&r, &s)) != 0)
			break;
	}
	free(r.pieces);
	XXH3_freeState(r.dg);
	bad = pipeline_finish(&r.pl);
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
