/* SPDX-License-Identifier: MIT */
/*
 * repair.c: `repair --out FILE INPUT`, the salvage of a damaged heap, as
 * redis-check-rdb --fix, pmempool check --repair and e2fsck do it: offline,
 * on an image (a base and its deltas, or one file), a stopped heap's state
 * folder or its live segment.  It keeps every block, root and slab that
 * checks out, drops what does not, says what it dropped, one line per
 * item, and writes what is left as a new image to a new file, never over
 * its input.  `aclheapctl restore FILE` then puts it where aclheapd loads
 * it.
 *
 *   INPUT --load--> scratch heap --settle (every reader does)--> passes:
 *
 *     superblock  re-stamped from the image header's (or the segment's)
 *                 shape: magic, layout, identity, base, size, offsets
 *     slab words  unknown states freed; leases and owners cleared (no
 *                 process holds anything offline); lease records zeroed
 *     structure   small slabs of no class, spans and extents whose tails,
 *                 run or req disagree: freed, with the tails naming them;
 *                 tails no head covers: freed; the high-water mark set
 *     blocks      side entries out of range (I3): the block dropped; bits
 *                 and side entries past a class's blocks, bits with no
 *                 side entry (I2, I5), anything in a free slab (I1): cleared
 *     roots       a malformed name (I8), a second root of a name, a value
 *                 in the heap that no live block holds: dropped
 *
 *   --> shm_check_still() must pass --> image_write() to FILE.tmp --> read
 *   back and checked as verify checks --> linked to FILE (renamed over it
 *   with --force) and the folder synced.
 *
 * A side entry without its bit is a live block to every reader (the side
 * entries are the record of which blocks are live, image_settle()), so it
 * is kept, as the daemon's own load would keep it.  A root whose value is
 * not an address in the heap is kept: a root holds any value (aclheap.h).
 *
 * What the checksums refuse cannot be salvaged byte by byte: a base image
 * that does not read is a failure naming the file and the section; a delta
 * that does not is left out with the ones after it, and the result is the
 * generation of the link before it.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "shm/image.h"

/* One thing repair changed: what it is, what was done, and the line. */
struct item {
	const char *kind;	/* superblock, delta, slab, extent, block,
				 * root */
	const char *action;	/* dropped, freed, cleared, fixed */
	uint64_t slab, addr;	/* UINT64_MAX: none */
	char text[640];	/* a 255-byte name fits */
};

struct repair {
	const char *input;	/* as given */
	const char *out;	/* --out, NULL with --dry-run */
	int force, dry_run;
	char path[4200];	/* the image or segment read */
	char state[4096];	/* the state folder, if INPUT is one */
	int segment;		/* path is a live segment, not an image */
	uint8_t identity[16];
	uint64_t generation;	/* of the result */
	uint64_t deltas;	/* applied */
	int delta_dropped;	/* a damaged delta was left out */
	struct shm_seg seg;
	struct image_info info;
	struct item *items;
	size_t n, cap;
	uint64_t roots_dropped, blocks_dropped, extents_dropped, slabs_freed;
	uint64_t blocks_lost;	/* live blocks of slabs freed whole */
	struct shm_report rep;	/* of the result */
	uint64_t bytes;		/* written */
};

/* ------------------------------------------------------------------ */
/* Reporting */

static void __attribute__((format(printf, 6, 7)))
note(struct repair *r, const char *kind, const char *action, uint64_t slab,
    uint64_t addr, const char *fmt, ...)
{
	struct item *it;
	va_list ap;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		if ((r->items = reallocarray(r->items, r->cap,
		    sizeof(*r->items))) == NULL)
			err(EXIT_FAILURE, "repair");
	}
	it = &r->items[r->n++];
	it->kind = kind;
	it->action = action;
	it->slab = slab;
	it->addr = addr;
	va_start(ap, fmt);
	vsnprintf(it->text, sizeof(it->text), fmt, ap);
	va_end(ap);
}

/* A failure before anything is written: JSON says so too, then exit 1. */
static void __attribute__((noreturn, format(printf, 2, 3)))
fail(const struct repair *r, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ctl_json) {
		json_open(NULL, '{');
		json_str("input", r->input);
		json_bool("ok", 0);
		json_str("error", msg);
		json_close('}');
		fflush(stdout);
	}
	errx(EXIT_FAILURE, "repair: %s", msg);
}

/* A root's name as it can be printed: what is not printable as \xNN. */
static const char *
name_shown(const char *n, char *buf, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i <= SHM_ROOT_NAME_MAX && n[i] != '\0' && o + 5 < len;
	    i++) {
		if (n[i] >= 0x20 && n[i] <= 0x7e && n[i] != '\\' &&
		    n[i] != '"')
			buf[o++] = n[i];
		else
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x",
			    (unsigned char)n[i]);
	}
	buf[o] = '\0';
	return buf;
}

/* The heap address of a place in the scratch heap. */
static uint64_t
heap_addr(const struct shm_seg *seg, uintptr_t a)
{
	return seg->base + (a - (uintptr_t)seg->sb);
}

/* ------------------------------------------------------------------ */
/* Loading */

/* Whether base and size could be a heap's (as aclheapd's options). */
static int
shape_ok(uint64_t base, uint64_t size)
{
	return base != 0 && base % SHM_SLAB_SIZE == 0 && size >= SHM_SIZE_MIN &&
	    size <= SHM_SIZE_MAX && size % SHM_SLAB_SIZE == 0 &&
	    base < (UINT64_C(1) << 47) && size <= (UINT64_C(1) << 47) - base;
}

/* The identity in a segment's name, /dev/shm/aclheap-<32 hex>: 0 or -1. */
static int
identity_of_name(const char *path, uint8_t id[16])
{
	const char *b = strrchr(path, '/');
	unsigned v;
	int i;

	b = b != NULL ? b + 1 : path;
	if (strncmp(b, "aclheap-", 8) != 0 || strlen(b + 8) != 32)
		return -1;
	for (i = 0; i < 16; i++) {
		if (!isxdigit((unsigned char)b[8 + 2 * i]) ||
		    !isxdigit((unsigned char)b[9 + 2 * i]) ||
		    sscanf(b + 8 + 2 * i, "%2x", &v) != 1)
			return -1;
		id[i] = (uint8_t)v;
	}
	return 0;
}

/*
 * A daemon serving the segment holds a write lock on its byte 0
 * (daemon/seglock.c): repair is offline, and refuses.
 */
static void
segment_unserved(const struct repair *r, int fd)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_RDLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 1;
	if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
		fail(r, "%s is served by a running aclheapd; stop it first "
		    "(repair works on a stopped heap)", r->path);
}

struct copy_to {
	const struct repair *r;
	int fd;
	char *mem;
};

/* One data range of the segment into the scratch at the same offset. */
static int
copy_piece(void *arg, off_t pos, off_t len)
{
	const struct copy_to *c = arg;
	off_t end = pos + len;
	ssize_t n;

	while (pos < end) {
		n = pread(c->fd, c->mem + pos, (size_t)(end - pos), pos);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			fail(c->r, "%s: reading at %jd: %s", c->r->path,
			    (intmax_t)pos, n == 0 ? "end of file" :
			    strerror(errno));
		pos += n;
	}
	return 0;
}

/* Copies what SEEK_DATA finds of [lo, hi) of fd into mem at the same
 * offsets: holes stay holes of the scratch memory. */
static void
copy_data(const struct repair *r, int fd, void *mem, off_t lo, off_t hi)
{
	struct copy_to c = { r, fd, mem };
	int rc;

	if ((rc = fd_data_ranges(fd, lo, hi, copy_piece, &c)) != 0)
		fail(r, "%s: looking for data: %s", r->path, strerror(-rc));
}

/*
 * Copies a live segment into scratch memory: only its data ranges
 * (SEEK_DATA), so that neither the holes of the object nor the scratch
 * heap get memory.  The segment itself is only read.
 */
static void
load_segment(struct repair *r)
{
	struct image_header hdr;
	struct shm_super sb;
	struct shm_geom g;
	struct stat st;
	char img[4200], what[256], mpath[4300];
	uint64_t base = 0, size, max, own[SEG_OWN][2];
	off_t at = 0;
	void *mem;
	int fd, mfd, ifd, i;

	if ((fd = open(r->path, O_RDONLY | O_CLOEXEC)) == -1)
		fail(r, "%s: %s", r->path, strerror(errno));
	segment_unserved(r, fd);
	if (fstat(fd, &st) == -1)
		fail(r, "%s: %s", r->path, strerror(errno));
	/* The object is the heap's maximum long (shm.h); the size in use is
	 * the superblock's or, damaged, the image's. */
	size = max = (uint64_t)st.st_size;
	if (seg_geometry(max, &g) != 0)
		fail(r, "%s: a segment of %" PRIu64 " bytes is no heap's size",
		    r->path, max);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		fail(r, "scratch memory for %s: %s", r->path, strerror(errno));
	/* A live segment's daemon ranges are in its meta object (shm.h); a
	 * copy the daemon saved (heap.seg.damaged) has them in place. */
	snprintf(mpath, sizeof(mpath), "%s.meta", r->path);
	if ((mfd = open(mpath, O_RDONLY | O_CLOEXEC)) == -1) {
		copy_data(r, fd, mem, 0, (off_t)size);
	} else {
		seg_own_ranges(&g, own);
		for (i = 0; i < SEG_OWN; i++) {
			copy_data(r, fd, mem, at, (off_t)own[i][0]);
			copy_data(r, mfd, mem, (off_t)own[i][0],
			    (off_t)own[i][1]);
			at = (off_t)own[i][1];
		}
		copy_data(r, fd, mem, at, (off_t)size);
		close(mfd);
	}
	close(fd);
	memcpy(&sb, mem, sizeof(sb));
	/* The base is what the superblock says, when it is a base at all;
	 * else the state folder's image knows it. */
	if (sb.max_size == max && sb.size <= max &&
	    seg_geometry_max(sb.size, max, &g) == 0 && shape_ok(sb.base, max)) {
		base = sb.base;
		size = sb.size;
	} else if (r->state[0] != '\0') {
		snprintf(img, sizeof(img), "%s/heap.img", r->state);
		if ((ifd = open(img, O_RDONLY | O_CLOEXEC)) >= 0) {
			if (image_read_header(ifd, &hdr, what,
			    sizeof(what)) == 0 && hdr.max_size == max &&
			    seg_geometry_max(hdr.size, max, &g) == 0 &&
			    shape_ok(hdr.base, max)) {
				base = hdr.base;
				size = hdr.size;
			}
			close(ifd);
		}
	}
	if (base == 0)
		fail(r, "%s: the superblock's base and size are damaged and "
		    "no image of the heap tells them", r->path);
	if (r->state[0] == '\0' || heapid_read(r->state, r->identity, NULL,
	    0) != 0) {
		if (identity_of_name(r->path, r->identity) != 0)
			memcpy(r->identity, sb.identity, 16);
	}
	seg_bind_max(&r->seg, mem, (uintptr_t)base, size, max);
	/* As every reader of an image does: bitmaps from the side entries,
	 * no leases, no sessions. */
	image_settle(&r->seg);
	r->generation = sb.generation != UINT64_MAX ? sb.generation + 1 :
	    sb.generation;
}

/*
 * Loads an image and its deltas.  A delta that does not read is left out
 * with those after it (read again up to the link before: what was stored
 * of it is partial); a base that does not read cannot be salvaged.
 */
static void
load_image(struct repair *r)
{
	char why[1024];
	uint32_t links = UINT32_MAX, failed;

	for (;;) {
		if (image_load_offline_upto(r->path, links, &r->seg, &r->info,
		    &failed, why, sizeof(why)) == 0)
			break;
		if (failed == 0)
			fail(r, "%s cannot be salvaged: it does not read as an "
			    "image, so nothing in it can be trusted: %s",
			    r->path, why);
		note(r, "delta", "dropped", UINT64_MAX, UINT64_MAX,
		    "delta %u and any after it, left out: %s", failed, why);
		r->delta_dropped = 1;
		links = failed - 1;
	}
	memcpy(r->identity, r->info.hdr.identity, 16);
	r->generation = r->info.hdr.generation;
	r->deltas = r->info.links;
}

/*
 * STATE/heap.seg.damaged, the copy of a live segment the daemon refused
 * at start-up (daemon/open.c): a segment whose superblock may be what was
 * damaged, so its folder is taken as the state folder, for the identity
 * (heap.id) and the base (heap.img).  1 if r->path is one.
 */
static int
damaged_copy(struct repair *r)
{
	const char *b = strrchr(r->path, '/');
	size_t n;

	if (strcmp(b != NULL ? b + 1 : r->path, "heap.seg.damaged") != 0)
		return 0;
	n = b != NULL ? (size_t)(b - r->path) : 0;
	if (n == 0)
		snprintf(r->state, sizeof(r->state), "%s", b != NULL ? "/" :
		    ".");
	else
		snprintf(r->state, sizeof(r->state), "%.*s", (int)n, r->path);
	return 1;
}

/*
 * INPUT: a state folder (its live segment if it has one, which the daemon
 * would adopt before any image, else its heap.img), an image, or a
 * segment (/dev/shm/aclheap-...).
 */
static void
repair_open(struct repair *r)
{
	struct stat st;
	uint64_t magic = 0;
	char live[128];
	int fd;

	if (stat(r->input, &st) == -1)
		fail(r, "%s: %s", r->input, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		snprintf(r->state, sizeof(r->state), "%s", r->input);
		(void)state_lock("repair", r->state);
		if (state_live_segment(r->state, live, sizeof(live))) {
			snprintf(r->path, sizeof(r->path), "%s", live);
			r->segment = 1;
		} else
			snprintf(r->path, sizeof(r->path), "%s/heap.img",
			    r->state);
		if (!r->segment && access(r->path, F_OK) != 0)
			fail(r, "%s holds neither a live segment nor an image "
			    "(heap.img)", r->state);
	} else {
		snprintf(r->path, sizeof(r->path), "%s", r->input);
		if ((fd = open(r->path, O_RDONLY | O_CLOEXEC)) == -1)
			fail(r, "%s: %s", r->path, strerror(errno));
		if (pread(fd, &magic, sizeof(magic), 0) != sizeof(magic))
			magic = 0;
		close(fd);
		if (magic == IMAGE_MAGIC)
			r->segment = 0;
		else if (damaged_copy(r))
			r->segment = 1;
		else if (magic == SHM_MAGIC ||
		    identity_of_name(r->path, r->identity) == 0)
			r->segment = 1;
		else
			fail(r, "%s is neither an aclheap image (its header "
			    "has no image magic) nor a heap's segment",
			    r->path);
	}
	if (r->segment)
		load_segment(r);
	else
		load_image(r);
}

/* ------------------------------------------------------------------ */
/* The passes */

static void
zero(void *p, size_t n)
{
	memset(p, 0, n);
}

/* Makes slab s free: word, extent fields, bitmap and side line. */
static void
slab_free(struct repair *r, uint64_t s)
{
	struct shm_seg *seg = &r->seg;

	atomic_store(&seg->slabs[s].word, 0);
	seg->slabs[s].run = 0;
	seg->slabs[s].req = 0;
	zero((void *)slab_bitmap(seg, s), SHM_BITMAP_BYTES);
	zero((void *)slab_sides(seg, s), SHM_SIDE_BYTES);
}

/* Frees the tails (of state st) after head s that name it; how many. */
static uint64_t
tails_free(struct repair *r, uint64_t s, uint32_t st)
{
	struct shm_seg *seg = &r->seg;
	uint64_t t, n = 0;

	for (t = s + 1; t < seg->nslabs && SHM_SLAB_STATE(atomic_load(
	    &seg->slabs[t].word)) == st && seg->slabs[t].run == s; t++) {
		slab_free(r, t);
		n++;
	}
	return n;
}

/* The live blocks (valid side entries) of small slab s of class cls. */
static uint64_t
slab_live(const struct shm_seg *seg, uint64_t s, uint32_t cls)
{
	uintptr_t sd = slab_side_base(seg, s, cls);
	uint32_t i, v, n = 0;

	if (slab_class_slabs[cls] > seg->nslabs - s)
		return 0;
	for (i = 0; i < slab_class_nblocks[cls]; i++)
		if ((v = slab_side_load(sd, cls, i)) != 0 &&
		    v <= slab_class_size[cls] + 1)
			n++;
	return n;
}

/* The superblock from what the image header (or the segment) says the
 * heap is; the fields that were wrong, named. */
static void
pass_super(struct repair *r)
{
	struct shm_super *sb = r->seg.sb, old = *sb;
	char what[256] = "";

	sb->magic = SHM_MAGIC;
	seg_super_stamp(sb, r->identity, r->seg.base, r->seg.size,
	    r->seg.max);
	atomic_store(&sb->move_slab, 0);
	sb->move_from = 0;
	atomic_store(&sb->lease_hwm, 0);	/* no record: settled */
#define DIFF(f, name) do {						\
	if (memcmp(&old.f, &sb->f, sizeof(old.f)) != 0)			\
		snprintf(what + strlen(what), sizeof(what) -		\
		    strlen(what), "%s%s", what[0] ? ", " : "", name);	\
} while (0)
	DIFF(magic, "magic");
	DIFF(version, "layout");
	DIFF(ptr_bits, "pointer width");
	DIFF(identity, "identity");
	DIFF(base, "base");
	DIFF(size, "size");
	DIFF(slab_size, "slab size");
	DIFF(nslabs, "slab count");
	DIFF(nleases, "lease record count");
	if (memcmp(&old.roots_off, &sb->roots_off, offsetof(struct shm_super,
	    created) - offsetof(struct shm_super, roots_off)) != 0 ||
	    old.sessions_off != sb->sessions_off)
		snprintf(what + strlen(what), sizeof(what) - strlen(what),
		    "%soffsets", what[0] ? ", " : "");
#undef DIFF
	if (what[0] != '\0')
		note(r, "superblock", "fixed", UINT64_MAX, UINT64_MAX,
		    "superblock: %s re-stamped from the %s's geometry", what,
		    r->segment ? "segment" : "image header");
}

/* Every slab word: a known state, no lease, no owner. */
static void
pass_words(struct repair *r)
{
	struct shm_seg *seg = &r->seg;
	uint64_t s;
	uint64_t w;
	uint32_t st;

	for (s = 0; s < seg->nslabs; s++) {
		w = atomic_load(&seg->slabs[s].word);
		st = SHM_SLAB_STATE(w);
		if (st > SHM_SPAN_TAIL) {
			slab_free(r, s);
			r->slabs_freed++;
			note(r, "slab", "freed", s, UINT64_MAX, "slab %" PRIu64
			    ": state %u is not a state (I6)", s, st);
			continue;
		}
		if (st == SHM_FREE) {
			if (SHM_SLAB_LEASE(w) != 0 || SHM_SLAB_OWNER(w) != 0)
				note(r, "slab", "cleared", s, UINT64_MAX,
				    "free slab %" PRIu64 ": its lease and "
				    "owner (I6)", s);
			atomic_store(&seg->slabs[s].word, 0);
			continue;
		}
		/* A small slab of no class is freed whole below. */
		if ((SHM_SLAB_LEASE(w) == 0 && SHM_SLAB_OWNER(w) == 0) ||
		    ((st == SHM_SMALL || st == SHM_RECLAIMING) &&
		    SHM_SLAB_CLS(w) >= SHM_NCLASSES))
			continue;
		atomic_store(&seg->slabs[s].word, SHM_SLAB_WORD(st,
		    SHM_SLAB_CLS(w), 0));
		note(r, "slab", "cleared", s, UINT64_MAX, "slab %" PRIu64
		    ": lease %u and owner %u (I6; offline, no process holds "
		    "one)", s, SHM_SLAB_LEASE(w), SHM_SLAB_OWNER(w));
	}
}

/* Why span head s of class cls is not whole, or NULL. */
static const char *
span_broken(const struct shm_seg *seg, uint64_t s, uint32_t cls,
    uint64_t *bad)
{
	uint64_t t, n = slab_class_slabs[cls];

	if (n > seg->nslabs - s)
		return "runs past the last slab";
	for (t = s + 1; t < s + n; t++)
		if (SHM_SLAB_STATE(atomic_load(&seg->slabs[t].word)) !=
		    SHM_SPAN_TAIL || seg->slabs[t].run != s) {
			*bad = t;
			return "is not its tail";
		}
	return NULL;
}

/* Why the extent at s is not whole, or NULL. */
static const char *
extent_broken(const struct shm_seg *seg, uint64_t s, uint64_t *bad)
{
	uint64_t t, n = seg->slabs[s].run;

	if (n == 0)
		return "has a run of 0 slabs";
	if (n > seg->nslabs - s)
		return "runs past the last slab";
	if (seg->slabs[s].req > n * SHM_SLAB_SIZE)
		return "records more bytes than its slabs hold";
	for (t = s + 1; t < s + n; t++)
		if (SHM_SLAB_STATE(atomic_load(&seg->slabs[t].word)) !=
		    SHM_LARGE_TAIL || seg->slabs[t].run != s) {
			*bad = t;
			return "is not its tail";
		}
	return NULL;
}

/* why, naming slab bad if it is one. */
static const char *
reason(const char *why, uint64_t bad, char *buf, size_t len)
{
	if (bad == UINT64_MAX)
		return why;
	snprintf(buf, len, "slab %" PRIu64 " %s", bad, why);
	return buf;
}

/*
 * Small slabs, spans and extents as wholes (I2, I4): one that is not is
 * freed with the tails that name it; a tail no head covers is freed.
 * Then the high-water mark covers every slab in use (I7).
 */
static void
pass_structure(struct repair *r)
{
	struct shm_seg *seg = &r->seg;
	struct shm_super *sb = seg->sb;
	uint64_t s, next, bad, lost, t, top = 0, hwm, a;
	uint64_t w;
	uint32_t st, cls;
	const char *why;
	char buf[96];

	for (s = 0; s < seg->nslabs; s = next) {
		next = s + 1;
		w = atomic_load(&seg->slabs[s].word);
		st = SHM_SLAB_STATE(w);
		cls = SHM_SLAB_CLS(w);
		bad = UINT64_MAX;
		switch (st) {
		case SHM_SMALL:
		case SHM_RECLAIMING:
			if (cls >= SHM_NCLASSES) {
				slab_free(r, s);
				r->slabs_freed++;
				note(r, "slab", "freed", s, UINT64_MAX, "slab %"
				    PRIu64 ": class %u is not a size class "
				    "(I2); whatever blocks it held are lost",
				    s, cls);
				break;
			}
			if ((why = span_broken(seg, s, cls, &bad)) == NULL) {
				next = s + slab_class_slabs[cls];
				break;
			}
			lost = slab_live(seg, s, cls);
			slab_free(r, s);
			t = tails_free(r, s, SHM_SPAN_TAIL);
			r->slabs_freed += 1 + t;
			r->blocks_lost += lost;
			note(r, "slab", "freed", s, UINT64_MAX, "span at slab %"
			    PRIu64 " (%u-byte class, %u slabs): %s (I2); "
			    "freed with %" PRIu64 " tail%s, %" PRIu64 " live "
			    "block%s lost", s, slab_class_size[cls],
			    slab_class_slabs[cls], reason(why, bad, buf,
			    sizeof(buf)), t, fmt_plural(t), lost,
			    fmt_plural(lost));
			break;
		case SHM_LARGE_HEAD:
			if ((why = extent_broken(seg, s, &bad)) == NULL) {
				next = s + seg->slabs[s].run;
				break;
			}
			a = heap_addr(seg, slab_addr(seg, s));
			note(r, "extent", "dropped", s, a, "extent at 0x%"
			    PRIx64 " (slab %" PRIu64 ", run %u, %" PRIu64
			    " bytes): %s (I4)", a, s, seg->slabs[s].run,
			    seg->slabs[s].req, reason(why, bad, buf,
			    sizeof(buf)));
			slab_free(r, s);
			t = tails_free(r, s, SHM_LARGE_TAIL);
			r->slabs_freed += 1 + t;
			r->extents_dropped++;
			r->blocks_dropped++;
			break;
		case SHM_LARGE_TAIL:
		case SHM_SPAN_TAIL:
			slab_free(r, s);
			r->slabs_freed++;
			note(r, "slab", "freed", s, UINT64_MAX, "slab %" PRIu64
			    ": %s tail that no head covers (%s)", s,
			    st == SHM_LARGE_TAIL ? "an extent" : "a span",
			    st == SHM_LARGE_TAIL ? "I4" : "I2");
			break;
		default:
			break;
		}
	}
	for (s = 0; s < seg->nslabs; s++)
		if (SHM_SLAB_STATE(atomic_load(&seg->slabs[s].word)) !=
		    SHM_FREE)
			top = s + 1;
	hwm = atomic_load(&sb->slab_hwm);
	if (hwm > seg->nslabs || hwm < top) {
		note(r, "superblock", "fixed", UINT64_MAX, UINT64_MAX,
		    "high-water mark %" PRIu64 " set to %" PRIu64 ", past the "
		    "last slab in use (I7)", hwm, top);
		atomic_store(&sb->slab_hwm, top);
	}
}

/* Bits set in words [0, SHM_BITMAP_WORDS) of x. */
static uint32_t
popcount_words(const uint64_t *x)
{
	uint32_t k, n = 0;

	for (k = 0; k < SHM_BITMAP_WORDS; k++)
		n += (uint32_t)__builtin_popcountll(x[k]);
	return n;
}

/*
 * The blocks of small slab (or span head) s of class cls: a side entry out
 * of range drops its block (I3); side entries and bits past the class's
 * blocks (I2) and bits with no side entry (I5) are cleared.  The bitmap
 * is then exactly the live blocks.
 */
static void
blocks_small(struct repair *r, uint64_t s, uint32_t cls)
{
	struct shm_seg *seg = &r->seg;
	_Atomic uint64_t *bm = slab_bitmap(seg, s);
	uintptr_t sd = slab_side_base(seg, s, cls);
	uint32_t cs = slab_class_size[cls], nb = slab_class_nblocks[cls];
	uint32_t room = slab_side_room(cls), i, v, past_sides = 0, n;
	uint64_t live[SHM_BITMAP_WORDS], past[SHM_BITMAP_WORDS];
	uint64_t idle[SHM_BITMAP_WORDS], gone[SHM_BITMAP_WORDS], old, a;
	uint32_t k, ready = atomic_load(&seg->slabs[s].ready);

	/* Out of range, the count says nothing: the slab is taken as
	 * ready whole (the load commits it whole). */
	if (ready == 0 || ready > nb) {
		note(r, "slab", "fixed", s, UINT64_MAX, "slab %" PRIu64
		    ": %u of its %u blocks ready, set to all (I2)", s, ready,
		    nb);
		atomic_store(&seg->slabs[s].ready, nb);
		ready = nb;
	}
	nb = ready;
	memset(live, 0, sizeof(live));
	memset(gone, 0, sizeof(gone));
	for (i = 0; i < room; i++) {
		if ((v = slab_side_load(sd, cls, i)) == 0)
			continue;
		if (i >= nb) {
			slab_side_store(sd, cls, i, 0);
			past_sides++;
			continue;
		}
		if (v > cs + 1) {
			slab_side_store(sd, cls, i, 0);
			gone[i / 64] |= UINT64_C(1) << (i % 64);
			a = heap_addr(seg, slab_addr(seg, s)) +
			    (uint64_t)i * cs;
			r->blocks_dropped++;
			note(r, "block", "dropped", s, a, "block 0x%" PRIx64
			    " (slab %" PRIu64 ", block %u, %u-byte class): "
			    "its side entry %u says more slack than the class "
			    "has (I3)", a, s, i, cs, v);
			continue;
		}
		live[i / 64] |= UINT64_C(1) << (i % 64);
	}
	for (k = 0; k < SHM_BITMAP_WORDS; k++) {
		old = atomic_load_explicit(&bm[k], memory_order_relaxed);
		past[k] = old & ~slab_word_first(ready, k);
		idle[k] = old & slab_word_first(ready, k) & ~live[k] & ~gone[k];
		atomic_store_explicit(&bm[k], live[k], memory_order_relaxed);
	}
	if ((n = popcount_words(past)) != 0)
		note(r, "slab", "cleared", s, UINT64_MAX, "slab %" PRIu64
		    ": %u bit%s past its %u ready blocks (I2)", s, n,
		    fmt_plural(n), nb);
	if (past_sides != 0)
		note(r, "slab", "cleared", s, UINT64_MAX, "slab %" PRIu64
		    ": %u side entr%s past its %u ready blocks (I2)", s,
		    past_sides, past_sides == 1 ? "y" : "ies", nb);
	if ((n = popcount_words(idle)) != 0)
		note(r, "slab", "cleared", s, UINT64_MAX, "slab %" PRIu64
		    ": %u claimed block%s with no side entry, not live (I5)",
		    s, n, fmt_plural(n));
}

static int
mem_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

/* Every slab's blocks; free ones below the mark have nothing set (I1). */
static void
pass_blocks(struct repair *r)
{
	struct shm_seg *seg = &r->seg;
	uint64_t s, next, hwm = atomic_load(&seg->sb->slab_hwm);
	uint64_t w;
	uint32_t st;

	for (s = 0; s < hwm; s = next) {
		next = s + 1;
		w = atomic_load(&seg->slabs[s].word);
		st = SHM_SLAB_STATE(w);
		if (st == SHM_SMALL || st == SHM_RECLAIMING) {
			blocks_small(r, s, SHM_SLAB_CLS(w));
			next = s + slab_class_slabs[SHM_SLAB_CLS(w)];
		} else if (st == SHM_LARGE_HEAD)
			next = s + seg->slabs[s].run;
		else if (st == SHM_FREE &&
		    (!mem_zero((void *)slab_bitmap(seg, s), SHM_BITMAP_BYTES) ||
		    !mem_zero((void *)slab_sides(seg, s), SHM_SIDE_BYTES))) {
			slab_free(r, s);
			note(r, "slab", "cleared", s, UINT64_MAX, "free slab %"
			    PRIu64 ": its bitmap and side line (I1)", s);
		}
	}
}

/* Whether heap address v (scratch a) lies in a live block, at its start
 * or inside it. */
static int
in_live_block(const struct shm_seg *seg, uintptr_t a)
{
	uint64_t s, h, off;
	uint64_t w;
	uint32_t cls, i, cs;

	if (!seg_in_data(seg, a))
		return 0;
	s = slab_index(seg, a);
	w = atomic_load(&seg->slabs[s].word);
	if (SHM_SLAB_STATE(w) == SHM_SPAN_TAIL) {
		if ((s = slab_span_head(seg, s)) == UINT64_MAX)
			return 0;
		w = atomic_load(&seg->slabs[s].word);
	} else if (SHM_SLAB_STATE(w) == SHM_LARGE_TAIL) {
		h = seg->slabs[s].run;
		if (h >= s || SHM_SLAB_STATE(atomic_load(
		    &seg->slabs[h].word)) != SHM_LARGE_HEAD ||
		    h + seg->slabs[h].run <= s)
			return 0;
		return 1;
	}
	off = a - slab_addr(seg, s);
	switch (SHM_SLAB_STATE(w)) {
	case SHM_SMALL:
	case SHM_RECLAIMING:
		cls = SHM_SLAB_CLS(w);
		cs = slab_class_size[cls];
		i = (uint32_t)(off / cs);
		return i < slab_class_nblocks[cls] &&
		    slab_side_load(slab_side_base(seg, s, cls), cls, i) != 0;
	case SHM_LARGE_HEAD:
		return off < ((uint64_t)seg->slabs[s].run << SHM_SLAB_SHIFT);
	default:
		return 0;
	}
}

/*
 * Roots (I8): a count past the table's room (cut to it), a malformed
 * name, a length that is not its name's, the second root of a name, a
 * value inside the heap that is in no live block (its block was freed,
 * or dropped above): dropped, one line each.  0 and values outside the
 * heap are any root's right.  The roots kept are moved down over those
 * dropped, so the table stays compact (shm.h).
 */
static void
pass_roots(struct repair *r)
{
	struct shm_seg *seg = &r->seg;
	struct shm_root *rt;
	char shown[300];
	uint64_t v, n, i, k, cap, keep = 0;
	uint32_t *set;

	n = atomic_load(&seg->sb->roots_used);
	if (n > seg->roots_max) {
		note(r, "roots", "cut", UINT64_MAX, n, "%" PRIu64 " roots in "
		    "use, the table has room for %" PRIu64 " (I8)", n,
		    seg->roots_max);
		n = seg->roots_max;
	}
	/* The names kept so far, by hash (keep + 1, 0 empty). */
	for (cap = 16; cap < 2 * n; cap <<= 1)
		;
	if ((set = calloc(cap, sizeof(*set))) == NULL)
		fail(r, "no memory to check the roots");
	for (i = 0; i < n; i++) {
		rt = &seg->roots[i];
		v = atomic_load(&rt->value);
		if (!shm_root_name_ok(rt->name)) {
			note(r, "root", "dropped", UINT64_MAX, v, "root %"
			    PRIu64 " \"%s\" = 0x%" PRIx64 ": its name is not "
			    "1 to %d printable characters and a NUL (I8)", i,
			    name_shown(rt->name, shown, sizeof(shown)), v,
			    SHM_ROOT_NAME_MAX);
			goto drop;
		}
		if (rt->len != strlen(rt->name)) {
			note(r, "root", "dropped", UINT64_MAX, v, "root %"
			    PRIu64 " \"%s\" = 0x%" PRIx64 ": it says its name "
			    "is %u bytes (I8)", i, rt->name, v, rt->len);
			goto drop;
		}
		for (k = shm_root_hash(rt->name) & (cap - 1); set[k] != 0;
		    k = (k + 1) & (cap - 1))
			if (strcmp(seg->roots[set[k] - 1].name, rt->name) == 0)
				break;
		if (set[k] != 0) {
			note(r, "root", "dropped", UINT64_MAX, v, "root %"
			    PRIu64 " \"%s\" = 0x%" PRIx64 ": a second root of "
			    "that name (the first is kept)", i, rt->name, v);
			goto drop;
		}
		if (v != 0 && v >= seg->base && v - seg->base < seg_extent(seg) &&
		    !in_live_block(seg, (uintptr_t)seg->sb + (v - seg->base))) {
			note(r, "root", "dropped", UINT64_MAX, v, "root \"%s\" "
			    "= 0x%" PRIx64 ": no live block holds that address",
			    rt->name, v);
			goto drop;
		}
		if (keep != i)
			memcpy(&seg->roots[keep], rt, sizeof(*rt));
		seg->roots[keep].pad = 0;
		/* Where the moved name now probes from is the same: only its
		 * slot changed. */
		set[k] = (uint32_t)++keep;
		continue;
drop:
		r->roots_dropped++;
	}
	free(set);
	for (i = keep; i < n; i++)
		if (!mem_zero(&seg->roots[i], sizeof(seg->roots[i])))
			zero(&seg->roots[i], sizeof(seg->roots[i]));
	if (atomic_load(&seg->sb->roots_used) != keep)
		atomic_store(&seg->sb->roots_used, keep);
}

/* ------------------------------------------------------------------ */
/* Writing */

/* Whether path is the file st describes. */
static int
same_inode(const char *path, const struct stat *st)
{
	struct stat o;

	return stat(path, &o) == 0 && o.st_dev == st->st_dev &&
	    o.st_ino == st->st_ino;
}

/*
 * --out must be a new file: never the input (the image, a delta of its
 * chain, the segment, the state folder's heap.img), even with --force;
 * another existing file only with --force.  Checked before the work, and
 * the final link refuses a file that appeared meanwhile.
 */
static void
out_check(const struct repair *r)
{
	char p[4300];
	struct stat st;
	const char *img;
	uint32_t k;

	if (stat(r->out, &st) == -1)
		return;
	if (S_ISDIR(st.st_mode))
		fail(r, "--out %s is a folder, not a file", r->out);
	img = r->path;
	if (r->segment && r->state[0] != '\0') {
		snprintf(p, sizeof(p), "%s/heap.img", r->state);
		img = p;
	}
	if (same_inode(r->path, &st) || same_inode(img, &st))
		fail(r, "--out %s is the input; repair writes a new file and "
		    "never over what it reads", r->out);
	for (k = 1; k <= IMAGE_CHAIN_MAX; k++) {
		char d[4400];

		snprintf(d, sizeof(d), "%s.delta.%u", img, k);
		if (same_inode(d, &st))
			fail(r, "--out %s is delta %u of the input; repair "
			    "writes a new file and never over what it reads",
			    r->out, k);
	}
	if (!r->force)
		fail(r, "--out %s exists; give a new file, or --force to "
		    "replace it", r->out);
}

/*
 * The result to --out: image_write() from the scratch heap to FILE.tmp,
 * read back and checked as verify checks, then in place.
 */
static void
repair_write(struct repair *r)
{
	struct image_spec sp;
	struct image_out io;
	struct shm_seg chk;
	struct image_info ci;
	struct shm_geom g;
	struct stat st;
	char dir[4096], tmp[8400], tmpname[4200], why[1024];
	const char *name;
	int fd, dfd, rc;

	split_path(r->out, dir, sizeof(dir), &name);
	if (*name == '\0')
		fail(r, "--out %s names a folder, not a file", r->out);
	snprintf(tmpname, sizeof(tmpname), "%s.tmp", name);
	snprintf(tmp, sizeof(tmp), "%s/%s", dir, tmpname);
	if (image_writer_open(dir, tmpname, &fd, why, sizeof(why)) != 0)
		fail(r, "%s", why);
	(void)seg_geometry_max(r->seg.size, r->seg.max, &g);
	memset(&sp, 0, sizeof(sp));
	sp.seg = &r->seg;
	sp.identity = r->identity;
	sp.meta = (const uint8_t *)r->seg.sb;
	sp.meta_len = g.meta_end;
	sp.generation = r->generation;
	sp.kind = IMAGE_FULL;
	if ((rc = image_write(fd, &sp, &io)) != 0 || fsync(fd) == -1) {
		unlink(tmp);
		fail(r, "writing %s: %s", tmp, strerror(rc ? -rc : errno));
	}
	if (fstat(fd, &st) == 0)
		r->bytes = (uint64_t)st.st_size;
	close(fd);
	if (image_load_offline(tmp, &chk, &ci, why, sizeof(why)) != 0) {
		unlink(tmp);
		fail(r, "the image written does not read back, nothing "
		    "written: %s", why);
	}
	rc = shm_check_still(&chk, NULL, why, sizeof(why));
	image_unload_offline(&chk);
	if (rc != 0) {
		unlink(tmp);
		fail(r, "the image written fails its check, nothing written: "
		    "%s", why);
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		unlink(tmp);
		fail(r, "%s: %s", dir, strerror(errno));
	}
	/* A link cannot replace a file: one that appeared since out_check()
	 * is still not written over without --force. */
	rc = r->force ? renameat(dfd, tmpname, dfd, name) :
	    linkat(dfd, tmpname, dfd, name, 0);
	if (rc == -1) {
		rc = errno;
		unlinkat(dfd, tmpname, 0);
		close(dfd);
		fail(r, "%s: %s%s", r->out, strerror(rc), rc == EEXIST ?
		    " (give a new file, or --force to replace it)" : "");
	}
	if (!r->force)
		(void)unlinkat(dfd, tmpname, 0);
	if (fsync(dfd) == -1)
		warn("repair: fsync %s", dir);
	close(dfd);
}

/* ------------------------------------------------------------------ */
/* The report */

static void
report_json(const struct repair *r)
{
	const struct item *it;
	size_t i;

	json_open(NULL, '{');
	json_str("input", r->input);
	json_str("source", r->segment ? "segment" : "image");
	json_str("path", r->path);
	json_bool("ok", 1);
	json_u64("generation", r->generation);
	json_u64("deltas", r->deltas);
	json_bool("delta_dropped", r->delta_dropped);
	json_open("changes", '[');
	for (i = 0; i < r->n; i++) {
		it = &r->items[i];
		json_open(NULL, '{');
		json_str("kind", it->kind);
		json_str("action", it->action);
		if (it->slab != UINT64_MAX)
			json_u64("slab", it->slab);
		if (it->addr != UINT64_MAX)
			json_u64("address", it->addr);
		json_str("what", it->text);
		json_close('}');
	}
	json_close(']');
	json_u64("roots_dropped", r->roots_dropped);
	json_u64("blocks_dropped", r->blocks_dropped);
	json_u64("extents_dropped", r->extents_dropped);
	json_u64("slabs_freed", r->slabs_freed);
	json_u64("blocks_lost", r->blocks_lost);
	json_u64("blocks_live", r->rep.blocks_live);
	json_u64("large_blocks", r->rep.large_blocks);
	json_u64("roots", r->rep.roots);
	if (r->out != NULL) {
		json_str("out", r->out);
		json_u64("bytes", r->bytes);
	} else
		json_null("out");
	json_close('}');
}

static void
report_text(const struct repair *r)
{
	char hb[32];
	size_t i;

	for (i = 0; i < r->n; i++)
		printf("%s %s\n", r->items[i].action, r->items[i].text);
	if (r->n == 0)
		printf("nothing to drop: every block, root and slab of %s "
		    "checks out\n", r->path);
	printf("repair: %s (%s, generation %" PRIu64 "%s): dropped %" PRIu64
	    " root%s, %" PRIu64 " block%s (%" PRIu64 " extent%s), freed %"
	    PRIu64 " slab%s", r->path, r->segment ? "live segment" : "image",
	    r->generation, r->delta_dropped ? ", after leaving out a damaged "
	    "delta" : "", r->roots_dropped, fmt_plural(r->roots_dropped),
	    r->blocks_dropped, fmt_plural(r->blocks_dropped),
	    r->extents_dropped, fmt_plural(r->extents_dropped),
	    r->slabs_freed, fmt_plural(r->slabs_freed));
	if (r->blocks_lost != 0)
		printf(" (%" PRIu64 " live block%s lost with them)",
		    r->blocks_lost, fmt_plural(r->blocks_lost));
	printf("; kept %" PRIu64 " block%s (%" PRIu64 " large), %" PRIu64
	    " root%s\n", r->rep.blocks_live, fmt_plural(r->rep.blocks_live),
	    r->rep.large_blocks, r->rep.roots, fmt_plural(r->rep.roots));
	if (r->out != NULL && r->state[0] != '\0')
		printf("wrote %s: %" PRIu64 " bytes (%s), generation %" PRIu64
		    "; put it in place with 'aclheapctl restore --state-dir %s"
		    "%s %s'\n", r->out, r->bytes, fmt_bytes(hb, sizeof(hb),
		    r->bytes), r->generation, r->state, r->segment ?
		    " --discard-live" : "", r->out);
	else if (r->out != NULL)
		printf("wrote %s: %" PRIu64 " bytes (%s), generation %" PRIu64
		    "; put it in place with 'aclheapctl restore [--state-dir "
		    "DIR] %s'\n", r->out, r->bytes, fmt_bytes(hb, sizeof(hb),
		    r->bytes), r->generation, r->out);
	else
		printf("nothing written (--dry-run)\n");
}

int
cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct repair r;
	char why[1024];
	int c;

	memset(&r, 0, sizeof(r));
	r.seg.fd = -1;
	args_begin();
	while ((c = args_getopt(argc, argv, "o:fn", opts)) != -1)
		if (c == 'o')
			r.out = optarg;
		else if (c == 'f')
			r.force = 1;
		else if (c == 'n')
			r.dry_run = 1;
	if (optind >= argc) {
		warnx("repair: INPUT (an image, a state folder or a heap's "
		    "segment) is missing");
		ctl_usage();
	}
	r.input = argv[optind++];
	args_end(argc, argv);
	if (r.dry_run)
		r.out = NULL;
	else if (r.out == NULL || *r.out == '\0') {
		warnx("repair: --out FILE (a new file) or --dry-run is "
		    "required");
		ctl_usage();
	}

	repair_open(&r);
	if (r.out != NULL)
		out_check(&r);
	pass_super(&r);
	pass_words(&r);
	pass_structure(&r);
	/* Slabs above a damaged mark were not settled at the load. */
	image_settle(&r.seg);
	pass_blocks(&r);
	pass_roots(&r);
	atomic_store(&r.seg.sb->generation, r.generation);
	if (shm_check_still(&r.seg, &r.rep, why, sizeof(why)) != 0)
		fail(&r, "%s: what is left still fails its check, nothing "
		    "written: %s", r.path, why);
	if (r.out != NULL)
		repair_write(&r);
	if (ctl_json)
		report_json(&r);
	else
		report_text(&r);
	image_unload_offline(&r.seg);
	free(r.items);
	return 0;
}
