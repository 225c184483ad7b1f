/* SPDX-License-Identifier: MIT */
/*
 * open.c: where the heap comes from at a start, and where it goes at the
 * end.  The live segment that the state folder's heap.id names is adopted
 * (clients may still be using it); else the image is loaded into a new
 * segment; else a new heap is formatted.  Each way is locked (seglock.c)
 * before anything in the segment is trusted, then validated, then its
 * derived state rebuilt (heap_rebuild()).
 */
#include "config.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"

static int
ensure_dir(const char *path)
{
	char buf[4096], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return -errno;
	return 0;
}

static int
id_read(const char *dir, uint8_t id[16])
{
	return heapid_read(dir, id, NULL, 0);
}

int
heap_id_write(const char *dir, const uint8_t id[16])
{
	char err[512];
	int rc;

	if ((rc = heapid_write(dir, id, err, sizeof(err))) != 0)
		log_errx("%s", err);
	return rc;
}

/*
 * Maps the segment fd and its meta object mfd over the daemon's ranges
 * (shm.h), both read-write.  Both descriptors are the mapping's from
 * here on, also on failure, which unmaps and closes them.
 */
int
heap_map(struct heap *h, const struct config *c, uint64_t size, int fd,
    int mfd)
{
	char err[512];
	int rc;

	if ((rc = seg_map_max(&h->seg, fd, c->base, size, c->max, err,
	    sizeof(err))) != 0) {
		log_errx("cannot map the heap: %s", err);
		close(fd);
		close(mfd);
		return rc;
	}
	if ((rc = seg_map_meta(&h->seg, mfd, 1, err, sizeof(err))) != 0) {
		log_errx("cannot map the heap's metadata: %s", err);
		close(mfd);
		seg_unmap(&h->seg);
	}
	return rc;
}

/* Creates the segment and its meta object for h->identity: 0, or -errno
 * with neither left. */
int
heap_objects_create(const struct heap *h, const struct config *c, int *fd,
    int *mfd)
{
	char name[64];
	int rc;

	seg_name(h->identity, name, sizeof(name));
	if ((rc = seg_create(h->identity, c->max, fd)) != 0) {
		log_errx("cannot create segment /dev/shm%s: %s", name,
		    strerror(-rc));
		return rc;
	}
	if ((rc = seg_meta_create(h->identity, c->max, mfd)) != 0) {
		log_errx("cannot create /dev/shm%s.meta: %s", name,
		    strerror(-rc));
		close(*fd);
		seg_unlink(h->identity);
	}
	return rc;
}

/*
 * How an operator salvages a heap the daemon refuses (aclheapctl(1)'s
 * repair): from the live segment (the state folder names it) or from the
 * image.
 */
const char *
heap_repair_hint(const struct config *c, int segment, char *buf, size_t len)
{
	if (segment)
		snprintf(buf, len, "to salvage what checks out, stop every "
		    "client, then run 'aclheapctl repair --out FILE %s' and "
		    "'aclheapctl restore --state-dir %s --discard-live FILE'",
		    c->state_dir, c->state_dir);
	else
		snprintf(buf, len, "to salvage what checks out, run "
		    "'aclheapctl repair --out FILE %s/heap.img', then "
		    "'aclheapctl restore --state-dir %s FILE'", c->state_dir,
		    c->state_dir);
	return buf;
}

/* The layout version in the superblock of the live heap id (its meta
 * object), 0 if it cannot be read. */
static int
layout_of(const uint8_t id[16])
{
	struct shm_super sb;
	int fd, v = 0;

	if (seg_meta_open(id, 1, &fd) != 0)
		return 0;
	if (pread(fd, &sb, sizeof(sb), 0) == (ssize_t)sizeof(sb) &&
	    sb.magic == SHM_MAGIC && sb.version < 1000)
		v = (int)sb.version;
	close(fd);
	return v;
}

/* Tries the live segment named by heap.id: 1 adopted, 0 none, <0 refused. */
static int
heap_adopt(struct heap *h, const struct config *c)
{
	struct stat st;
	char err[512], name[64], hint[9000];
	int fd, mfd, rc;

	if (id_read(c->state_dir, h->identity) != 0)
		return 0;
	if (seg_open(h->identity, &fd) != 0)
		return 0;
	/* Locked before anything in it is trusted: another daemon may
	 * serve it (a copy of our state folder names it too). */
	if ((rc = seglock_take(h, fd)) != 0) {
		close(fd);
		return rc;
	}
	seg_name(h->identity, name, sizeof(name));
	if ((rc = layout_of(h->identity)) != 0 && rc != SHM_VERSION) {
		/* Another build's segment: its length means something else. */
		log_errx("live segment /dev/shm%s is of layout version %d, this "
		    "build reads %u; remove it to start from the image, or "
		    "serve it with the build that made it", name, rc,
		    SHM_VERSION);
		close(fd);
		seglock_release(h);
		return -EINVAL;
	}
	if (fstat(fd, &st) == -1 || (uint64_t)st.st_size != c->max) {
		log_errx("live segment /dev/shm%s has maximum size %lld, the "
		    "daemon is asked for %" PRIu64 "; start with --max-size "
		    "%lld or remove the segment", name, (long long)st.st_size,
		    c->max, (long long)st.st_size);
		close(fd);
		seglock_release(h);
		return -EINVAL;
	}
	if (seg_meta_open(h->identity, 0, &mfd) != 0) {
		log_errx("live segment /dev/shm%s has no metadata object "
		    "(/dev/shm%s.meta): it cannot be adopted; %s", name, name,
		    heap_repair_hint(c, 1, hint, sizeof(hint)));
		close(fd);
		seglock_release(h);
		return -EUCLEAN;
	}
	if ((rc = heap_map(h, c, c->size, fd, mfd)) != 0) {
		seglock_release(h);
		return rc;
	}
	if ((rc = seg_super_check(h->seg.sb, c->base, c->size, c->max, err,
	    sizeof(err))) != 0 || memcmp(h->seg.sb->identity, h->identity,
	    16) != 0) {
		log_errx("live segment /dev/shm%s does not check out: %s; "
		    "remove it to start from the image, or %s", name,
		    rc ? err : "identity differs from heap.id",
		    heap_repair_hint(c, 1, hint, sizeof(hint)));
		seg_unmap(&h->seg);
		seglock_release(h);
		return -EUCLEAN;
	}
	log_notice("adopted live segment /dev/shm%s", name);
	h->adopted = 1;
	return 1;
}

static int
heap_format(struct heap *h, const struct config *c)
{
	char name[64];
	int fd, mfd, rc;

	if (getrandom(h->identity, 16, 0) != 16)
		return -errno;
	if ((rc = heap_objects_create(h, c, &fd, &mfd)) != 0)
		return rc;
	if ((rc = seglock_take(h, fd)) != 0) {
		close(fd);
		close(mfd);
		goto fail;
	}
	if ((rc = heap_map(h, c, c->size, fd, mfd)) != 0)
		goto fail;
	if ((rc = seg_format(&h->seg, h->identity)) != 0) {
		log_errx("cannot commit the heap's metadata: %s",
		    strerror(-rc));
		goto fail;
	}
	if ((rc = heap_id_write(c->state_dir, h->identity)) != 0)
		goto fail;
	seg_name(h->identity, name, sizeof(name));
	log_notice("formatted a new heap in /dev/shm%s: base 0x%" PRIxPTR
	    ", %" PRIu64 " bytes, %" PRIu64 " slabs, room to grow to %"
	    PRIu64 " bytes", name, c->base, c->size, h->seg.nslabs, c->max);
	return 0;
fail:
	seg_unmap(&h->seg);
	seg_unlink(h->identity);
	seglock_release(h);
	return rc;
}

/* Whether base, size and max could be a heap's (as the options require). */
static int
shape_ok(uint64_t base, uint64_t size, uint64_t max)
{
	return base != 0 && base % SHM_SLAB_SIZE == 0 && size >= SHM_SIZE_MIN &&
	    max <= SHM_SIZE_MAX && size % SHM_SLAB_SIZE == 0 &&
	    max % SHM_SLAB_SIZE == 0 && size <= max &&
	    base < (UINT64_C(1) << 47) && max <= (UINT64_C(1) << 47) - base;
}

/*
 * The heap knows its shape: what the settings leave out comes from the
 * heap in the state folder, its live segment's superblock, else its
 * image's header.  A base or maximum given and different: adopting and
 * loading refuse as before, naming both.  The size is the heap's own
 * (it may have grown since the settings were written); a larger one
 * given is grown to once the heap is open (c->size, heap_open()), a
 * smaller one said and ignored: shrinking is aclheapctl grow's.
 */
static int
heap_shape(struct config *c, uint64_t *grow_to)
{
	struct image_header hdr;
	struct shm_super sb;
	char path[4096], err[256];
	const char *from = NULL;
	uint64_t base = 0, size = 0, max = 0;
	uint8_t id[16];
	int fd;

	*grow_to = 0;
	/* The superblock is in the meta object; the segment must be there
	 * too, or there is no live heap to take a shape from. */
	if (id_read(c->state_dir, id) == 0 && seg_open(id, &fd) == 0 &&
	    close(fd) == 0 && seg_meta_open(id, 1, &fd) == 0) {
		if (pread(fd, &sb, sizeof(sb), 0) == (ssize_t)sizeof(sb) &&
		    sb.magic == SHM_MAGIC) {
			base = sb.base;
			size = sb.size;
			max = sb.max_size;
			from = "its live segment";
		}
		close(fd);
	} else {
		image_path(c, path, sizeof(path), "");
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			if (image_read_header(fd, &hdr, err, sizeof(err)) == 0) {
				base = hdr.base;
				size = hdr.size;
				max = hdr.max_size;
				from = path;
			}
			close(fd);
		}
	}
	if (from == NULL || !shape_ok(base, size, max))
		return 0;
	if (!c->base_set)
		c->base = (uintptr_t)base;
	if (!c->max_set)
		c->max = max;
	if (c->size_set && c->size > size && c->size > max) {
		log_errx("--size %" PRIu64 " is past the heap's maximum %"
		    PRIu64 " (it is %" PRIu64 " bytes, from %s); its maximum "
		    "is fixed when it is made", c->size, max, size, from);
		return -EINVAL;
	}
	if (c->size_set && c->size > size)
		*grow_to = c->size;
	else if (c->size_set && c->size != size)
		log_notice("the heap is %" PRIu64 " bytes (maximum %" PRIu64
		    "), not the %" PRIu64 " asked for; it keeps its size "
		    "(aclheapctl grow changes it)", size, max, c->size);
	c->size = size;
	log_info("heap's own shape from %s: base 0x%" PRIx64 ", size %"
	    PRIu64 ", maximum %" PRIu64, from, base, size, max);
	return 0;
}

struct save_to {
	int in, out;
};

/* One data range of the segment to the same offsets of the file. */
static int
save_piece(void *arg, off_t at, off_t len)
{
	static uint8_t buf[1 << 20];
	const struct save_to *t = arg;
	off_t off;
	ssize_t n;

	for (off = at; off < at + len; off += n) {
		n = pread(t->in, buf, (size_t)(at + len - off) < sizeof(buf) ?
		    (size_t)(at + len - off) : sizeof(buf), off);
		if (n <= 0 || pwrite(t->out, buf, (size_t)n, off) != n)
			return n == 0 ? -EIO : -errno;
	}
	return 0;
}

/* Copies what SEEK_DATA finds of [lo, hi) of in to the same offsets of
 * out.  0 or -errno. */
static int
save_range(int in, int out, off_t lo, off_t hi)
{
	struct save_to t = { in, out };

	return fd_data_ranges(in, lo, hi, save_piece, &t);
}

/*
 * Copies the segment (fd, and its meta object mfd over the daemon's
 * ranges, if >= 0) to path as one file, sparse: only what SEEK_DATA finds
 * is read and written (free slabs are holes), and the file ends at the
 * segment's size.  Written as a temporary file, synced, renamed.  0 or
 * -errno.
 */
static int
seg_save(int fd, int mfd, uint64_t size, uint64_t max, const char *path)
{
	uint64_t own[SEG_OWN][2], at = 0;
	struct shm_geom g;
	char tmp[4200];
	int out, i, rc = 0;

	if (seg_geometry_max(size, max, &g) != 0)
		return -EINVAL;
	size = max;	/* the object's length */
	seg_own_ranges(&g, own);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		return -errno;
	if (mfd < 0)
		rc = save_range(fd, out, 0, (off_t)size);
	for (i = 0; mfd >= 0 && i < SEG_OWN && rc == 0; i++) {
		if ((rc = save_range(fd, out, (off_t)at,
		    (off_t)own[i][0])) == 0)
			rc = save_range(mfd, out, (off_t)own[i][0],
			    (off_t)own[i][1]);
		at = own[i][1];
	}
	if (mfd >= 0 && rc == 0)
		rc = save_range(fd, out, (off_t)at, (off_t)size);
	if (rc == 0 && (ftruncate(out, (off_t)size) == -1 || fsync(out) == -1))
		rc = -errno;
	if (close(out) == -1 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) == -1)
		rc = -errno;
	if (rc != 0)
		(void)unlink(tmp);
	return rc;
}

/*
 * The live segment was refused (it fails its checks: a client wrote where
 * it must not, or a bug did), and the state folder has an image: the
 * segment is saved as STATE/heap.seg.damaged, for an operator or a repair
 * to salvage what was written since the last checkpoint, and removed, so
 * that the start goes on from the image.  Without an image, or without
 * the lock, the refusal stands: -EUCLEAN.  A segment that cannot be saved
 * (the disk is full) is still removed: the heap must come back.
 */
static int
heap_set_aside(struct heap *h, const struct config *c)
{
	char img[4096], path[4096], name[64];
	int fd, mfd = -1, rc;

	image_path(c, img, sizeof(img), "");
	if (access(img, F_OK) != 0) {
		log_errx("no image to start from instead: the heap does not "
		    "start; save /dev/shm%s and its .meta elsewhere to "
		    "salvage it",
		    (seg_name(h->identity, name, sizeof(name)), name));
		return -EUCLEAN;
	}
	seg_name(h->identity, name, sizeof(name));
	if (seg_open(h->identity, &fd) != 0)
		return 0;	/* gone meanwhile: nothing to set aside */
	if (seglock_take(h, fd) != 0) {
		close(fd);
		return -EUCLEAN;
	}
	snprintf(path, sizeof(path), "%s/heap.seg.damaged", c->state_dir);
	(void)seg_meta_open(h->identity, 0, &mfd);	/* lost: zeros */
	if ((rc = seg_save(fd, mfd, c->size, c->max, path)) != 0)
		log_errx("cannot save the refused segment /dev/shm%s as %s: "
		    "%s; what was written since the last checkpoint is lost",
		    name, path, strerror(-rc));
	else
		log_warnx("refused live segment /dev/shm%s saved as %s (what "
		    "was written since the last checkpoint is there)", name,
		    path);
	close(fd);
	if (mfd >= 0)
		close(mfd);
	(void)seg_unlink(h->identity);
	seglock_release(h);
	log_warnx("starting from the last good image %s instead of the "
	    "refused live segment", img);
	return 0;
}

/*
 * Adopts the live segment (adopt), else loads the image, else formats a
 * new heap.  Then rebuilds the derived state and runs the validator.  A
 * segment made here from the image (or formatted) that fails is removed
 * again: left in /dev/shm, it would be adopted at the next start in place
 * of the image.  An adopted one stays, since it may hold writes the image
 * does not; *refused says it was refused (-EUCLEAN), unmapped and
 * unlocked.
 */
static int
heap_open_from(struct heap *h, struct config *c, int adopt, int *refused,
    uint64_t *grow_to)
{
	char path[4096], err[1024], hint[9000];
	const char *from = "the live segment";
	uint64_t n;
	int rc;

	*refused = 0;
	memset(h, 0, sizeof(*h));
	h->seg.fd = -1;
	h->seg.mfd = -1;
	h->decay = c->decay;
	h->lockfd = -1;
	if ((rc = ensure_dir(c->state_dir)) != 0) {
		log_errx("state folder %s: %s", c->state_dir, strerror(-rc));
		return rc;
	}
	if ((rc = heap_shape(c, grow_to)) != 0)
		return rc;
	if (adopt && (rc = heap_adopt(h, c)) < 0) {
		*refused = rc == -EUCLEAN;
		return rc;
	}
	if (!adopt || rc == 0) {
		image_path(c, path, sizeof(path), "");
		if (access(path, F_OK) == 0) {
			if ((rc = ckpt_load(h, c, path)) != 0)
				return rc;
			from = path;
		} else if ((rc = heap_format(h, c)) != 0)
			return rc;
		else
			from = "the new heap";
	}
	if ((n = slab_settle_extents(&h->seg)) != 0)
		log_notice("freed %" PRIu64 " extent slabs a crash left "
		    "without their head", n);
	/* Validate before deriving anything: the rebuild indexes by class
	 * and walks extents, and the segment is writable by every client.
	 * Only an adopted segment can have clients changing it now. */
	if ((h->adopted ? shm_check(&h->seg, NULL, err, sizeof(err)) :
	    shm_check_still(&h->seg, NULL, err, sizeof(err))) != 0) {
		log_errx("heap from %s fails its check: %s; %s", from, err,
		    heap_repair_hint(c, h->adopted, hint, sizeof(hint)));
		rc = -EUCLEAN;
		goto fail;
	}
	atomic_fetch_add(&h->seg.sb->epoch, 1);
	if ((rc = heap_rebuild(h)) != 0) {
		log_errx("cannot rebuild the heap's state from %s: %s", from,
		    strerror(-rc));
		goto fail;
	}
	/* Requests a crash cut short are finished (or undone) before any
	 * new one is read (journal.h). */
	if ((rc = journal_recover(h, err, sizeof(err))) != 0) {
		log_errx("heap from %s: %s", from, err);
		goto fail;
	}
	if ((rc = roots_index_build(h)) != 0) {
		log_errx("no memory for the roots' index");
		goto fail;
	}
	if ((h->adopted ? shm_check(&h->seg, NULL, err, sizeof(err)) :
	    shm_check_still(&h->seg, NULL, err, sizeof(err))) != 0) {
		log_errx("heap from %s fails its check after the rebuild: %s; "
		    "%s", from, err, heap_repair_hint(c, h->adopted, hint,
		    sizeof(hint)));
		rc = -EUCLEAN;
		goto fail;
	}
	return 0;
fail:
	if (!h->adopted) {
		seg_unmap(&h->seg);
		seg_unlink(h->identity);
	} else if (rc == -EUCLEAN) {
		*refused = 1;
		seg_unmap(&h->seg);
		heap_forget(h);
	}
	seglock_release(h);
	return rc;
}

/* A --size larger than the heap's, once it is open: grown to. */
static int
heap_open_grow(struct heap *h, uint64_t grow_to)
{
	char err[256];
	int rc;

	if (grow_to == 0 || grow_to <= h->seg.size)
		return 0;
	if ((rc = heap_resize(h, grow_to, err, sizeof(err))) != 0) {
		log_errx("cannot grow the heap to --size %" PRIu64 ": %s",
		    grow_to, err);
		return rc;
	}
	log_notice("grew the heap to --size %" PRIu64 " (%" PRIu64 " slabs)",
	    grow_to, h->seg.nslabs);
	return 0;
}

/*
 * The live segment, else the image, else a new heap (heap_open_from()).
 * A live segment that is refused as damaged does not keep the heap down:
 * the last good image is loaded in its place (heap_set_aside()).
 */
int
heap_open(struct heap *h, struct config *c)
{
	uint8_t id[16];
	uint64_t grow_to;
	int rc, refused;

	if ((rc = heap_open_from(h, c, 1, &refused, &grow_to)) == 0)
		return heap_open_grow(h, grow_to);
	if (!refused)
		return rc;
	memcpy(id, h->identity, sizeof(id));
	memset(h, 0, sizeof(*h));
	h->lockfd = -1;
	h->seg.fd = -1;
	h->seg.mfd = -1;
	memcpy(h->identity, id, sizeof(id));
	if (heap_set_aside(h, c) != 0)
		return rc;
	if ((rc = heap_open_from(h, c, 0, &refused, &grow_to)) == 0)
		return heap_open_grow(h, grow_to);
	return rc;
}

/* Frees the derived state, leaving the segment as it is. */
void
heap_forget(struct heap *h)
{
	int i;

	free(h->free_map);
	free(h->held_map);
	free(h->held);
	for (i = 0; i < SHM_NCLASSES; i++)
		free(h->class_slabs[i]);
	free(h->limbo);
	free(h->root_idx);
	h->root_idx = NULL;
	h->free_map = h->held_map = h->limbo = NULL;
	h->held = NULL;
	memset(h->class_slabs, 0, sizeof(h->class_slabs));
}

void
heap_close(struct heap *h)
{
	seg_unmap(&h->seg);
	seglock_release(h);
	heap_forget(h);
	memset(h, 0, sizeof(*h));
	h->seg.fd = -1;
	h->seg.mfd = -1;
	h->lockfd = -1;
}
