/* SPDX-License-Identifier: MIT */
/*
 * seg.c: the segment as an object: its name, its geometry, creating it,
 * mapping it at the fixed base, and committing memory to it.
 *
 * The mapping is never relocated.  MAP_FIXED_NOREPLACE makes the kernel
 * refuse a range that is taken; we also compare the returned address, for
 * kernels that treat the flag as a hint.  A refusal names the occupant from
 * /proc/self/maps, because "address in use" alone tells a user nothing.
 *
 * Memory is committed with fallocate() before any of it is handed out, so a
 * full /dev/shm shows up as ENOSPC here (ENOMEM to the caller) instead of a
 * SIGBUS in whichever client first touches the page.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

#define PAGE		SHM_PAGE
#define ROUND_UP(x, a)	(((x) + (a) - 1) & ~((uint64_t)(a) - 1))

/* The root table's room for a heap of size bytes (shm.h). */
uint64_t
seg_roots_max(uint64_t size)
{
	uint64_t n = size / SHM_ROOTS_PER;

	if (n < SHM_ROOTS_MIN)
		return SHM_ROOTS_MIN;
	return n > SHM_ROOTS_MAX ? SHM_ROOTS_MAX : n;
}

static uint64_t
geom_meta(uint64_t n, struct shm_geom *g)
{
	uint64_t off = SHM_SUPER_BYTES;

	g->nslabs = n;
	/* A lease holds a slab no other lease has (daemon/lease.c), so a
	 * heap never has more records in use than slabs: as many records as
	 * slabs, in whole pages, up to SHM_LEASES.  The region is address
	 * space, committed a page at a time as records are first handed out
	 * (seg_commit_leases()). */
	g->nleases = (uint32_t)ROUND_UP(n < SHM_LEASES ? n : SHM_LEASES,
	    SHM_LEASES_PAGE);
	if (g->nleases == 0)
		g->nleases = SHM_LEASES_PAGE;
	g->roots_off = off;
	off = ROUND_UP(off + g->roots_max * sizeof(struct shm_root), PAGE);
	g->leases_off = off;
	off += (uint64_t)g->nleases * sizeof(struct shm_lease);
	g->slabs_off = off;
	off = ROUND_UP(off + n * sizeof(struct shm_slab), PAGE);
	g->bitmaps_off = off;
	off = ROUND_UP(off + n * SHM_BITMAP_BYTES, PAGE);
	g->sides_off = off;
	off = ROUND_UP(off + n * SHM_SIDE_BYTES, PAGE);
	/* After the per-slab arrays, out of the image's metadata section:
	 * sessions are for one life of the heap (daemon/journal.h). */
	g->sessions_off = off;
	off = ROUND_UP(off + SHM_SESSIONS * sizeof(struct shm_session), PAGE);
	/* The data area starts on a 1 MiB boundary.  Measured, the 8..1024 B
	 * ring ran 1.6-2.5x glibc with it at 0xF0000 from the base, and
	 * 1.05-1.2x at 0xC0000 and at 1 MiB, an effect of cache placement we
	 * have not pinned down; the rounding costs only address space (the
	 * object is sparse), and at most 15 slabs of a 4 MiB heap. */
	g->data_off = ROUND_UP(off, UINT64_C(1) << 20);
	return g->data_off;
}

/* The most slabs a heap of size bytes holds with its metadata, placing
 * the rest in g; 0 if none fits. */
static uint64_t
geom_slabs(uint64_t size, uint64_t roots, struct shm_geom *g)
{
	uint64_t n, per = SHM_SLAB_SIZE + sizeof(struct shm_slab) +
	    SHM_BITMAP_BYTES + SHM_SIDE_BYTES + sizeof(struct shm_lease);

	g->roots_max = roots;
	n = size / per;
	while (n > 0 && geom_meta(n, g) + n * SHM_SLAB_SIZE > size)
		n--;
	if (n > 0)
		geom_meta(n, g);
	return n;
}

static int
size_ok(uint64_t size)
{
	return size >= SHM_SIZE_MIN && size <= SHM_SIZE_MAX &&
	    size % SHM_SLAB_SIZE == 0;
}

/*
 * The geometry is a pure function of the size and the maximum, so an
 * image, a live segment and a daemon asked for them agree on it without
 * storing a table.  Everything is placed as for a heap of max bytes; size
 * says how many of its slabs are in use: about as many as a heap of size
 * bytes would have (below), so a heap that cannot grow (max == size) is
 * laid out as before there was growth, and growing never moves a byte.
 */
int
seg_geometry_max(uint64_t size, uint64_t max, struct shm_geom *g)
{
	struct shm_geom t;
	uint64_t n, rmax;

	if (!size_ok(size) || !size_ok(max) || size > max)
		return -EINVAL;
	/* Both counts against the maximum's layout, the size's with the
	 * maximum's root room past its own not charged to it: the budget
	 * then grows with the size (by 64 KiB less at most 8 roots a slab),
	 * so the count does too, up to the maximum's, and a size alone
	 * (max == size) is charged exactly what a heap of it holds.  (With
	 * each size's own room, a 1 MiB step of data_off could make a
	 * larger size hold fewer slabs.) */
	rmax = seg_roots_max(max);
	if ((n = geom_slabs(size + (rmax - seg_roots_max(size)) *
	    sizeof(struct shm_root), rmax, &t)) == 0 ||
	    geom_slabs(max, rmax, g) == 0)
		return -EINVAL;
	g->nslabs_max = g->nslabs;
	g->nslabs = n;
	g->meta_end = g->slabs_off + n * sizeof(struct shm_slab);
	return 0;
}

int
seg_geometry(uint64_t size, struct shm_geom *g)
{
	return seg_geometry_max(size, size, g);
}

void
seg_name(const uint8_t id[16], char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char h[33];
	int i;

	for (i = 0; i < 16; i++) {
		h[2 * i] = hex[id[i] >> 4];
		h[2 * i + 1] = hex[id[i] & 15];
	}
	h[32] = '\0';
	snprintf(buf, len, "/aclheap-%s", h);
}

/* Creates the object name, new, private to us and size bytes long:
 * 0 and its descriptor, or -errno with nothing left. */
static int
obj_create(const char *name, uint64_t size, int *fdp)
{
	int fd, saved;

	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return -errno;
	/* The umask may have narrowed the mode; it must not widen it. */
	if (fchmod(fd, 0600) == -1 || ftruncate(fd, (off_t)size) == -1) {
		saved = errno;
		close(fd);
		shm_unlink(name);
		return -saved;
	}
	*fdp = fd;
	return 0;
}

/* The segment is its maximum long from the start, sparse: growth writes
 * no byte of it (shm.h). */
int
seg_create(const uint8_t id[16], uint64_t max, int *fdp)
{
	char name[64];

	seg_name(id, name, sizeof(name));
	return obj_create(name, max, fdp);
}

int
seg_open(const uint8_t id[16], int *fdp)
{
	char name[64];
	int fd;

	seg_name(id, name, sizeof(name));
	fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	*fdp = fd;
	return 0;
}

int
seg_unlink(const uint8_t id[16])
{
	char name[80];
	int rc;

	seg_name(id, name, sizeof(name));
	rc = shm_unlink(name) == -1 ? -errno : 0;
	seg_meta_name(id, name, sizeof(name));
	if (shm_unlink(name) == -1 && errno != ENOENT && rc == 0)
		rc = -errno;
	return rc;
}

/* The meta object's name: the segment's, ".meta" after it. */
void
seg_meta_name(const uint8_t id[16], char *buf, size_t len)
{
	char name[64];

	seg_name(id, name, sizeof(name));
	snprintf(buf, len, "%s.meta", name);
}

/* Creates the meta object, as seg_create() the segment. */
int
seg_meta_create(const uint8_t id[16], uint64_t max, int *fdp)
{
	char name[80];
	int rc;

	seg_meta_name(id, name, sizeof(name));
	if ((rc = obj_create(name, max, fdp)) == -EEXIST) {
		/* Left by a segment made and removed in pieces (a crash
		 * between the two unlinks): the segment is new, so is this. */
		(void)shm_unlink(name);
		rc = obj_create(name, max, fdp);
	}
	return rc;
}

/* Opens the meta object, read-write for the daemon, read-only to pass
 * to clients.  -ENOENT: the segment has none (damaged, or not ours). */
int
seg_meta_open(const uint8_t id[16], int rdonly, int *fdp)
{
	char name[80];
	int fd;

	seg_meta_name(id, name, sizeof(name));
	fd = shm_open(name, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	*fdp = fd;
	return 0;
}

/*
 * Names the first mapping of this process that overlaps [lo, hi), as
 * "0xSTART-0xEND PATH" (or "[anonymous]").  Returns 1 if one was found.
 */
int
seg_range_owner(uintptr_t lo, uintptr_t hi, char *buf, size_t len)
{
	char line[512];
	FILE *f;
	int found = 0;

	if (len > 0)
		buf[0] = '\0';
	if ((f = fopen("/proc/self/maps", "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long s, e;
		char *path;
		int n = 0;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &s, &e, &n) < 2)
			continue;
		if (e <= lo || s >= hi)
			continue;
		path = n > 0 ? line + n : line + strlen(line);
		path[strcspn(path, "\n")] = '\0';
		snprintf(buf, len, "0x%lx-0x%lx %s", s, e,
		    *path != '\0' ? path : "[anonymous]");
		found = 1;
		break;
	}
	fclose(f);
	return found;
}

void
seg_bind(struct shm_seg *seg, void *mem, uintptr_t base, uint64_t size)
{
	seg_bind_max(seg, mem, base, size, size);
}

/* mem holds max bytes laid out for a heap of size in use, max at most. */
void
seg_bind_max(struct shm_seg *seg, void *mem, uintptr_t base, uint64_t size,
    uint64_t max)
{
	struct shm_geom g;

	/* Callers have validated size; the geometry cannot fail here. */
	(void)seg_geometry_max(size, max, &g);
	seg->sb = mem;
	seg->base = base;
	seg->size = size;
	seg->nslabs = g.nslabs;
	seg->max = max;
	seg->nslabs_max = g.nslabs_max;
	seg->nleases = g.nleases;
	seg->roots_max = g.roots_max;
	seg->roots = (struct shm_root *)((char *)mem + g.roots_off);
	seg->leases = (struct shm_lease *)((char *)mem + g.leases_off);
	seg->sessions = (struct shm_session *)((char *)mem + g.sessions_off);
	seg->slabs = (struct shm_slab *)((char *)mem + g.slabs_off);
	seg->bitmaps = (_Atomic uint64_t *)((char *)mem + g.bitmaps_off);
	seg->sides = (_Atomic uint16_t *)((char *)mem + g.sides_off);
	seg->data = (uintptr_t)mem + g.data_off;
	seg_own_ranges(&g, seg->own);
	seg->mfd = -1;
}

/* The daemon's ranges of a segment of geometry g (shm.h). */
void
seg_own_ranges(const struct shm_geom *g, uint64_t r[SEG_OWN][2])
{
	r[0][0] = 0;
	r[0][1] = g->leases_off;
	r[1][0] = g->slabs_off;
	r[1][1] = g->bitmaps_off;
	r[2][0] = g->sessions_off;
	r[2][1] = g->data_off;
}

/*
 * A new read-only descriptor of seg's meta object, to pass to a client:
 * opened again through /proc (the object may have lost its name: a test
 * heap, an operator's rm), else by name.
 */
int
seg_meta_open_ro(const struct shm_seg *seg, const uint8_t id[16], int *fdp)
{
	char path[64];
	int fd;

	if (seg->mfd < 0)
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", seg->mfd);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		*fdp = fd;
		return 0;
	}
	return seg_meta_open(id, 1, fdp);
}

/*
 * Maps the meta object over the daemon's ranges of a mapped segment, at
 * their offsets, shared: read-write for the daemon, read-only for a
 * client (whose mfd is a read-only descriptor).  MAP_FIXED replaces only
 * pages of our own mapping of the segment.
 */
int
seg_map_meta(struct shm_seg *seg, int mfd, int writable, char *err,
    size_t errlen)
{
	struct stat st;
	void *p;
	int i, prot = PROT_READ | (writable ? PROT_WRITE : 0);

	if (fstat(mfd, &st) == -1) {
		snprintf(err, errlen, "the heap's metadata object: %s",
		    strerror(errno));
		return -errno;
	}
	if ((uint64_t)st.st_size != seg->max) {
		snprintf(err, errlen, "the heap's metadata object is %jd bytes, "
		    "not the heap's %" PRIu64, (intmax_t)st.st_size,
		    seg->max);
		return -EINVAL;
	}
	for (i = 0; i < SEG_OWN; i++) {
		p = mmap((char *)seg->sb + seg->own[i][0], seg->own[i][1] -
		    seg->own[i][0], prot, MAP_SHARED | MAP_FIXED, mfd,
		    (off_t)seg->own[i][0]);
		if (p == MAP_FAILED) {
			snprintf(err, errlen, "mmap of the heap's metadata at "
			    "0x%" PRIxPTR ": %s", seg->base +
			    (uintptr_t)seg->own[i][0], strerror(errno));
			return -errno;
		}
	}
	seg->mfd = mfd;
	return 0;
}

/*
 * The descriptor that holds offset off of the segment, and in *len (if
 * not NULL) how much of [off, off + *len) it holds from off on.
 */
int
seg_fd_at(const struct shm_seg *seg, uint64_t off, uint64_t *len)
{
	uint64_t end = len != NULL ? off + *len : off + 1;
	int i;

	if (seg->mfd < 0)
		return seg->fd;
	for (i = 0; i < SEG_OWN; i++) {
		if (off >= seg->own[i][0] && off < seg->own[i][1]) {
			if (len != NULL && end > seg->own[i][1])
				*len = seg->own[i][1] - off;
			return seg->mfd;
		}
		if (len != NULL && off < seg->own[i][0] &&
		    end > seg->own[i][0])
			end = seg->own[i][0];
	}
	if (len != NULL)
		*len = end - off;
	return seg->fd;
}

/* pread() of the segment at off, routed: n bytes or -errno (-EIO at the
 * end of an object). */
int
seg_pread(const struct shm_seg *seg, void *buf, size_t n, uint64_t off)
{
	uint64_t k;
	ssize_t r;
	int fd;

	while (n > 0) {
		k = n;
		fd = seg_fd_at(seg, off, &k);
		r = pread(fd, buf, (size_t)k, (off_t)off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -errno;
		if (r == 0)
			return -EIO;
		buf = (char *)buf + r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}

int
seg_pwrite(const struct shm_seg *seg, const void *buf, size_t n,
    uint64_t off)
{
	uint64_t k;
	ssize_t r;
	int fd;

	while (n > 0) {
		k = n;
		fd = seg_fd_at(seg, off, &k);
		r = pwrite(fd, buf, (size_t)k, (off_t)off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? -EIO : -errno;
		buf = (const char *)buf + r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}

int
seg_map(struct shm_seg *seg, int fd, uintptr_t base, uint64_t size,
    char *err, size_t errlen)
{
	return seg_map_max(seg, fd, base, size, size, err, errlen);
}

/*
 * Maps the whole object, max bytes: the range the heap may grow into is
 * ours from the start, so growing maps nothing and a pointer into grown
 * space is good in every process at once.  Pages no slab in use covers
 * are never touched and cost nothing.
 */
int
seg_map_max(struct shm_seg *seg, int fd, uintptr_t base, uint64_t size,
    uint64_t max, char *err, size_t errlen)
{
	struct shm_geom g;
	char owner[300];
	uint64_t len;
	void *p;
	int saved;

	if (base == 0 || base % SHM_SLAB_SIZE != 0 || base + max < base ||
	    seg_geometry_max(size, max, &g) != 0) {
		snprintf(err, errlen, "bad segment geometry: base 0x%" PRIxPTR
		    " size %" PRIu64 " max %" PRIu64, base, size, max);
		return -EINVAL;
	}
	len = max;
	p = mmap((void *)base, len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	if (p == MAP_FAILED) {
		saved = errno;
		if (saved == EEXIST) {
			if (!seg_range_owner(base, base + len, owner,
			    sizeof(owner)))
				snprintf(owner, sizeof(owner), "unknown");
			snprintf(err, errlen, "heap range 0x%" PRIxPTR "-0x%"
			    PRIxPTR " is already mapped in this process by %s",
			    base, (uintptr_t)(base + len), owner);
			return -EADDRINUSE;
		}
		snprintf(err, errlen, "mmap of heap at 0x%" PRIxPTR ": %s",
		    base, strerror(saved));
		return saved == ENOMEM ? -ENOMEM : -saved;
	}
	if ((uintptr_t)p != base) {
		/* The flag was taken as a hint (kernels before 4.17, and
		 * valgrind): never keep a relocation, and still name what
		 * is in the way. */
		munmap(p, len);
		if (seg_range_owner(base, base + len, owner, sizeof(owner)))
			snprintf(err, errlen, "heap range 0x%" PRIxPTR "-0x%"
			    PRIxPTR " is already mapped in this process by %s",
			    base, (uintptr_t)(base + len), owner);
		else
			snprintf(err, errlen, "heap range 0x%" PRIxPTR "-0x%"
			    PRIxPTR " is not available (kernel offered 0x%"
			    PRIxPTR ")", base, (uintptr_t)(base + len),
			    (uintptr_t)p);
		return -EADDRINUSE;
	}
	seg_bind_max(seg, p, base, size, max);
	seg->fd = fd;
	return 0;
}

/*
 * Replaces our own mapping with another object of the same heap (the daemon
 * restarted from an image into a new object).  The range is ours already, so
 * MAP_FIXED replaces only what we own.
 */
int
seg_remap(struct shm_seg *seg, int fd, int mfd, char *err, size_t errlen)
{
	void *p;
	int rc;

	p = mmap((void *)seg->base, seg->max, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED || (uintptr_t)p != seg->base) {
		snprintf(err, errlen, "remap of heap at 0x%" PRIxPTR ": %s",
		    seg->base, strerror(errno));
		return -EADDRINUSE;
	}
	seg->fd = fd;
	seg->mfd = -1;
	if (mfd >= 0 && (rc = seg_map_meta(seg, mfd, 0, err, errlen)) != 0)
		return rc;
	return 0;
}

void
seg_unmap(struct shm_seg *seg)
{
	if (seg->sb != NULL)
		munmap((void *)seg->base, seg->max);
	if (seg->fd >= 0)
		close(seg->fd);
	if (seg->mfd >= 0)
		close(seg->mfd);
	memset(seg, 0, sizeof(*seg));
	seg->fd = -1;
	seg->mfd = -1;
}

/* The session table is written by the daemon at once, never a page at a
 * time: committed with the metadata. */
int
seg_commit_sessions(const struct shm_seg *seg, const struct shm_geom *g)
{
	return seg_commit(seg, g->sessions_off,
	    SHM_SESSIONS * sizeof(struct shm_session));
}

/* Lease records [from, to) (whole pages of them) are about to be handed
 * out for the first time: committed before any client writes one, so a
 * full /dev/shm is an error reply, never a SIGBUS. */
int
seg_commit_leases(struct shm_seg *seg, uint32_t from, uint32_t to)
{
	uint64_t lo = from / SHM_LEASES_PAGE * PAGE;
	uint64_t hi = ROUND_UP(to, SHM_LEASES_PAGE) / SHM_LEASES_PAGE * PAGE;
	uint64_t off = (uint64_t)((char *)seg->leases - (char *)seg->sb);

	if (to > seg->nleases || from >= to)
		return from >= to ? 0 : -EINVAL;
	return seg_commit(seg, off + lo, hi - lo);
}

/* fallocate() over [off, off + len) of the segment, each piece in the
 * object that holds it. */
static int
seg_fallocate(const struct shm_seg *seg, int mode, uint64_t off,
    uint64_t len)
{
	uint64_t k;
	int fd;

	while (len > 0) {
		k = len;
		fd = seg_fd_at(seg, off, &k);
		if (fallocate(fd, mode, (off_t)off, (off_t)k) == -1)
			return -errno;
		off += k;
		len -= k;
	}
	return 0;
}

int
seg_commit(const struct shm_seg *seg, uint64_t off, uint64_t len)
{
	int rc = seg_fallocate(seg, 0, off, len);

	return rc == -ENOSPC ? -ENOMEM : rc;
}

int
seg_decommit(const struct shm_seg *seg, uint64_t off, uint64_t len)
{
	return seg_fallocate(seg, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	    off, len);
}

/*
 * Writes what a superblock says of the heap's shape (all but the magic,
 * the creation time and the counters) from the caller's own values: a
 * checkpoint stamps its copy so, since clients can write the live one.
 */
void
seg_super_stamp(struct shm_super *sb, const uint8_t id[16], uintptr_t base,
    uint64_t size, uint64_t max)
{
	struct shm_geom g;

	(void)seg_geometry_max(size, max, &g);
	sb->version = SHM_VERSION;
	sb->ptr_bits = sizeof(void *) * 8;
	memcpy(sb->identity, id, 16);
	sb->base = base;
	sb->size = size;
	sb->slab_size = SHM_SLAB_SIZE;
	sb->nslabs = g.nslabs;
	sb->nleases = g.nleases;
	sb->roots_off = g.roots_off;
	sb->leases_off = g.leases_off;
	sb->sessions_off = g.sessions_off;
	sb->slabs_off = g.slabs_off;
	sb->bitmaps_off = g.bitmaps_off;
	sb->sides_off = g.sides_off;
	sb->data_off = g.data_off;
	sb->roots_max = g.roots_max;
	sb->max_size = max;
}

/*
 * Lays a new heap into a zero-filled object: the superblock and the fixed
 * metadata.  Bitmaps and side arrays are committed slab by slab as slabs are
 * put to use, lease records a page at a time as they are first handed out,
 * and the root table as roots land on it, so an empty corner of a big heap
 * costs nothing.
 */
int
seg_format(struct shm_seg *seg, const uint8_t id[16])
{
	struct shm_super *sb = seg->sb;
	struct shm_geom g;
	int rc;

	if ((rc = seg_geometry_max(seg->size, seg->max, &g)) != 0)
		return rc;
	/* The root table is committed a page at a time as roots land on
	 * it (daemon/roots.c), and lease records as they are first handed
	 * out: a heap with few roots and few threads pays for few pages.
	 * The slab table as far as slabs are in use: growth commits more
	 * (seg_resize()). */
	if ((rc = seg_commit(seg, 0, g.roots_off)) != 0 ||
	    (rc = seg_commit(seg, g.slabs_off, g.meta_end - g.slabs_off)) != 0 ||
	    (rc = seg_commit_sessions(seg, &g)) != 0)
		return rc;
	memset(sb, 0, SHM_SUPER_BYTES);
	seg_super_stamp(sb, id, seg->base, seg->size, seg->max);
	sb->created = (uint64_t)time(NULL);
	/* The magic goes last: a half-formatted object is never adopted. */
	atomic_thread_fence(memory_order_seq_cst);
	sb->magic = SHM_MAGIC;
	return 0;
}

/*
 * Whether sb is a heap of this build at base whose maximum is max, and of
 * size bytes if size is not 0 (a grown heap is of any size up to max), and
 * whether what it says of its shape is what its size and maximum make.
 */
int
seg_super_check(const struct shm_super *sb, uintptr_t base, uint64_t size,
    uint64_t max, char *err, size_t errlen)
{
	struct shm_geom g;

	if (sb->magic != SHM_MAGIC) {
		snprintf(err, errlen, "bad magic 0x%016" PRIx64, sb->magic);
		return -EPROTO;
	}
	if (sb->version != SHM_VERSION) {
		snprintf(err, errlen, "layout version %u, this build reads %u",
		    sb->version, SHM_VERSION);
		return -EPROTO;
	}
	if (sb->ptr_bits != sizeof(void *) * 8 ||
	    sb->slab_size != SHM_SLAB_SIZE) {
		snprintf(err, errlen, "made for %u-bit pointers and %" PRIu64
		    "-byte slabs, this build uses %zu and %" PRIu64,
		    sb->ptr_bits, sb->slab_size, sizeof(void *) * 8,
		    (uint64_t)SHM_SLAB_SIZE);
		return -EPROTO;
	}
	if (sb->base != base || sb->max_size != max ||
	    (size != 0 && sb->size != size)) {
		snprintf(err, errlen, "heap has base 0x%" PRIx64 " size %"
		    PRIu64 " max %" PRIu64 ", asked for base 0x%" PRIxPTR
		    " size %" PRIu64 " max %" PRIu64, sb->base, sb->size,
		    sb->max_size, base, size != 0 ? size : sb->size, max);
		return -EINVAL;
	}
	if (seg_geometry_max(sb->size, max, &g) != 0 ||
	    sb->nslabs != g.nslabs || sb->nleases != g.nleases ||
	    sb->roots_off != g.roots_off || sb->leases_off != g.leases_off ||
	    sb->sessions_off != g.sessions_off ||
	    sb->slabs_off != g.slabs_off || sb->bitmaps_off != g.bitmaps_off ||
	    sb->sides_off != g.sides_off || sb->data_off != g.data_off ||
	    sb->roots_max != g.roots_max) {
		snprintf(err, errlen, "superblock geometry does not match its "
		    "size %" PRIu64 " and maximum %" PRIu64, sb->size, max);
		return -EPROTO;
	}
	return 0;
}

/*
 * Puts size bytes of the heap in use (growth, or shrinking once the tail
 * is free, which the caller has made sure of): the slab table's pages of
 * the slabs added are committed, those of the slabs taken away given
 * back, and the superblock says the new size, then the new slab count.
 * Nothing is mapped or moved: every process maps the maximum already.
 * The daemon alone calls this, between requests.
 */
int
seg_resize(struct shm_seg *seg, uint64_t size)
{
	struct shm_geom g, o;
	uint64_t lo, hi;
	int rc;

	if (seg_geometry_max(size, seg->max, &g) != 0 ||
	    seg_geometry_max(seg->size, seg->max, &o) != 0)
		return -EINVAL;
	if (g.nslabs > o.nslabs) {
		lo = o.meta_end & ~(PAGE - 1);
		if ((rc = seg_commit(seg, lo, ROUND_UP(g.meta_end, PAGE) -
		    lo)) != 0)
			return rc;
	}
	seg->sb->size = size;
	__atomic_store_n(&seg->sb->nslabs, g.nslabs, __ATOMIC_RELEASE);
	seg->size = size;
	seg->nslabs = g.nslabs;
	/* A shrink gives the table's pages back once the smaller count is
	 * out: nobody reads past it (a read would commit them again). */
	if (g.nslabs < o.nslabs) {
		lo = ROUND_UP(g.meta_end, PAGE);
		hi = ROUND_UP(o.meta_end, PAGE);
		if (hi > lo)
			(void)seg_decommit(seg, lo, hi - lo);
	}
	return 0;
}

/* "64M", "1G", "4096", "2T": bytes.  Rejects overflow and junk. */
int
seg_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default:
		return -EINVAL;
	}
	if (*end == 'i' && shift != 0)
		end++;
	if ((*end == 'b' || *end == 'B') && shift != 0)
		end++;
	if (*end != '\0' || (shift != 0 && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/*
 * Calls fn(arg, off, len) for each range of [lo, hi) of fd that holds data
 * (SEEK_DATA to SEEK_HOLE), in order; holes are skipped, so a copy made
 * through it stays sparse.  0, fn's first non-zero return, or -errno.
 */
int
fd_data_ranges(int fd, off_t lo, off_t hi,
    int (*fn)(void *, off_t, off_t), void *arg)
{
	off_t data, hole;
	int rc;

	for (data = lo; data < hi; data = hole) {
		if ((data = lseek(fd, data, SEEK_DATA)) == -1)
			return errno == ENXIO ? 0 : -errno;	/* no more */
		if (data >= hi)
			return 0;
		if ((hole = lseek(fd, data, SEEK_HOLE)) == -1)
			return -errno;
		if (hole > hi)
			hole = hi;
		if ((rc = fn(arg, data, hole - data)) != 0)
			return rc;
	}
	return 0;
}
