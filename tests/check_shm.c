/* SPDX-License-Identifier: MIT */
/*
 * check_shm.c: unit tests of shm/: size classes, geometry, the fixed
 * mapping, block operations, reclaim and the validator, on a scratch
 * segment of this process (no daemon).
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/random.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm/shm.h"
#include "tests/testutil.h"

#define UNIT_BASE	UINT64_C(0x310000000000)
#define UNIT_SIZE	(UINT64_C(16) << 20)

static struct shm_seg seg;
static uint8_t id[16];

static void
scratch_up(void)
{
	char err[512];
	int fd;

	ck_assert_int_eq(getrandom(id, sizeof(id), 0), 16);
	ck_assert_int_eq(seg_create(id, UNIT_SIZE, &fd), 0);
	ck_assert_msg(seg_map(&seg, fd, UNIT_BASE, UNIT_SIZE, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(seg_format(&seg, id), 0);
	/* The tests set slab states by hand, anywhere. */
	atomic_store(&seg.sb->slab_hwm, seg.nslabs);
	/* ... and lease records, any of them. */
	atomic_store(&seg.sb->lease_hwm, seg.nleases);
}

static void
scratch_down(void)
{
	seg_unmap(&seg);
	seg_unlink(id);
}

/* A small slab of class cls at slab s, as the daemon would make it. */
static void
make_small(uint64_t s, uint32_t cls)
{
	atomic_store(&seg.slabs[s].word, SHM_SLAB_WORD(SHM_SMALL, cls, 0));
	atomic_store(&seg.slabs[s].ready, slab_class_nblocks[cls]);
}

/* Both checks, the live one (which looks again before it reports) and
 * the still one (which does not), must say the same. */
/* Roots 0 .. n-1 named r0, r1, ..., and counted; the rest cleared. */
static void
roots_fill(uint64_t n)
{
	uint64_t i;

	for (i = 0; i < 16; i++) {
		memset(&seg.roots[i], 0, sizeof(seg.roots[i]));
		if (i < n)
			seg.roots[i].len = (uint32_t)snprintf(seg.roots[i].name,
			    sizeof(seg.roots[i].name), "r%" PRIu64, i);
	}
	atomic_store(&seg.sb->roots_used, n);
}

static void
check_ok(void)
{
	char err[512];

	ck_assert_msg(shm_check(&seg, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(shm_check_still(&seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
}

/* The live check passes, with so many claimed blocks that are not live
 * and, of those, so many in no private set (I5's counts). */
static void
check_live_counts(uint64_t orphaned, uint64_t unlisted)
{
	struct shm_report rep;
	char err[512];

	ck_assert_msg(shm_check(&seg, &rep, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(rep.blocks_orphaned, orphaned);
	ck_assert_uint_eq(rep.blocks_unlisted, unlisted);
}

/* Only the still check, which is strict, finds what. */
static void
check_still_fails(const char *what)
{
	char err[512];

	ck_assert_int_eq(shm_check_still(&seg, NULL, err, sizeof(err)),
	    -EUCLEAN);
	ck_assert_msg(strstr(err, what) != NULL, "still: '%s' lacks '%s'", err,
	    what);
}

static void
check_fails(const char *what)
{
	char err[512];

	ck_assert_int_eq(shm_check(&seg, NULL, err, sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, what) != NULL, "'%s' lacks '%s'", err, what);
	err[0] = '\0';
	ck_assert_int_eq(shm_check_still(&seg, NULL, err, sizeof(err)),
	    -EUCLEAN);
	ck_assert_msg(strstr(err, what) != NULL, "still: '%s' lacks '%s'", err,
	    what);
}

/*
 * Frees a small block as a client's aclfree() does: looks it up, then
 * slab_free_block().  -EINVAL for anything that is not a live small block
 * (then nothing was written), -EOPNOTSUPP for a large block (the daemon
 * frees those).
 */
static int
slab_free_small(struct shm_seg *s, uintptr_t addr, size_t *req)
{
	struct slab_block b;
	int rc;

	if ((rc = slab_block_lookup(s, addr, &b)) != 0)
		return rc;
	if (b.cls == UINT32_MAX)
		return -EOPNOTSUPP;
	return slab_free_block(s, &b, req);
}

START_TEST(slab_class_of_bounds)
{
	uint64_t bad;
	size_t sz;
	int c;

	ck_assert_int_eq(slab_class_of(0), 0);
	ck_assert_int_eq(slab_class_of(1), 0);
	ck_assert_int_eq(slab_class_of(16), 0);
	ck_assert_int_eq(slab_class_of(17), 1);
	ck_assert_int_eq(slab_class_of(128), 7);
	ck_assert_int_eq(slab_class_size[slab_class_of(129)], 160);
	ck_assert_int_eq(slab_class_size[slab_class_of(8192)], 8192);
	ck_assert_int_eq(slab_class_size[slab_class_of(8193)], 10240);
	ck_assert_int_eq(slab_class_of(8193), SHM_NSMALL);
	ck_assert_int_eq(slab_class_size[slab_class_of(SHM_CLASS_MAX)],
	    SHM_CLASS_MAX);
	ck_assert_int_eq(slab_class_of(SHM_CLASS_MAX + 1), -1);
	ck_assert_int_eq(slab_class_of((size_t)-1), -1);
	/* Every size gets the smallest class that holds it, and above 8 KiB
	 * wastes at most a fifth of the block (usable / requested <= 1.25).
	 * Counted, then asserted once (4 million sizes). */
	for (sz = 0, bad = 0; sz <= SHM_CLASS_MAX; sz++) {
		c = slab_class_of(sz);
		if (c < 0 || slab_class_size[c] < sz ||
		    (c > 0 && slab_class_size[c - 1] >= sz) ||
		    (sz > SHM_SMALL_MAX && slab_class_size[c] * 4 > sz * 5))
			bad++;
	}
	ck_assert_uint_eq(bad, 0);
}
END_TEST

/*
 * The class tables follow from their rules: blocks within a slab up to
 * 8 KiB, below 1 KiB with their 16-bit side entries at the slab's end,
 * from 1 KiB in the slab's side line; above 8 KiB spans the blocks tile
 * exactly, about eight blocks a span up to 4 MiB spans, whose 32-bit side
 * entries fit the span's side lines.
 */
START_TEST(slab_class_tables_follow_rules)
{
	uint64_t span, lcm, g, a, b;
	uint32_t cs, n;
	int c, r;

	for (c = 0; c < SHM_NCLASSES; c++) {
		cs = slab_class_size[c];
		n = slab_class_nblocks[c];
		ck_assert_uint_eq(cs % SHM_ALIGN, 0);
		ck_assert_uint_le(n, SHM_MAX_BLOCKS);
		if (c < SHM_NINBAND) {
			ck_assert_uint_eq(slab_class_slabs[c], 1);
			ck_assert_uint_eq(n, SHM_SLAB_SIZE / (cs + 2));
			ck_assert_uint_eq(slab_class_sideoff[c],
			    SHM_SLAB_SIZE - 2 * n);
			ck_assert_uint_le((uint64_t)n * cs,
			    slab_class_sideoff[c]);
			continue;
		}
		if (c < SHM_NSMALL) {
			ck_assert_uint_eq(slab_class_slabs[c], 1);
			ck_assert_uint_eq(n, SHM_SLAB_SIZE / cs);
			ck_assert_uint_le(n * 2, SHM_SIDE_BYTES);
			continue;
		}
		for (a = cs, b = SHM_SLAB_SIZE; b != 0; g = a % b, a = b,
		    b = g)
			;
		lcm = cs / a * SHM_SLAB_SIZE;
		for (r = 1; lcm * (r + 1) <= SHM_CLASS_MAX && lcm * r / cs < 8;
		    r++)
			;
		span = lcm * r;
		ck_assert_uint_eq(slab_class_slabs[c], span / SHM_SLAB_SIZE);
		ck_assert_uint_le(slab_class_slabs[c], SHM_SPAN_MAX);
		ck_assert_uint_eq((uint64_t)n * cs, span);
		ck_assert_uint_le(n * 4, slab_class_slabs[c] * SHM_SIDE_BYTES);
		ck_assert_uint_le(n, 64);
	}
}
END_TEST

/* The lookup divides by multiplying: exact for every offset in a slab. */
START_TEST(slab_class_magic_divides)
{
	uint64_t off, wrong = 0, first = 0;
	int c;

	/* Counted, then asserted once: 2 million ck_asserts take longer
	 * than the test's timeout under valgrind. */
	for (c = 0; c < SHM_NSMALL; c++)
		for (off = 0; off < SHM_SLAB_SIZE; off++)
			if ((off * slab_class_magic[c]) >> 48 !=
			    off / slab_class_size[c] && wrong++ == 0)
				first = (uint64_t)c << 32 | off;
	/* In a span only a block's start must divide exactly (anything
	 * else fails the multiply-back check whatever it gives), and the
	 * offsets around it must not round up to it. */
	for (; c < SHM_NCLASSES; c++)
		for (off = 0; off <= (uint64_t)slab_class_nblocks[c] *
		    slab_class_size[c]; off += slab_class_size[c]) {
			if ((off * slab_class_magic[c]) >> 48 !=
			    off / slab_class_size[c] && wrong++ == 0)
				first = (uint64_t)c << 32 | off;
			if (off > 0 && ((off - 1) * slab_class_magic[c]) >> 48
			    != (off - 1) / slab_class_size[c] && wrong++ == 0)
				first = (uint64_t)c << 32 | (off - 1);
		}
	ck_assert_msg(wrong == 0, "%" PRIu64 " offsets divided wrong, the "
	    "first: class %" PRIu64 ", offset %" PRIu64, wrong, first >> 32,
	    first & 0xffffffff);
}
END_TEST

START_TEST(slab_class_aligned_power_of_two)
{
	size_t a;
	int c;

	for (a = 32; a <= SHM_SMALL_MAX; a *= 2) {
		c = slab_class_aligned(100, a);
		ck_assert_int_ge(c, 0);
		ck_assert_uint_eq(slab_class_size[c] % a, 0);
		ck_assert_uint_ge(slab_class_size[c], 100);
	}
	/* Spans start on a slab: their blocks can promise 64 KiB. */
	for (a = 16384; a <= SHM_SLAB_SIZE; a *= 2) {
		c = slab_class_aligned(100, a);
		ck_assert_int_ge(c, SHM_NSMALL);
		ck_assert_uint_eq(slab_class_size[c] % a, 0);
	}
	ck_assert_int_eq(slab_class_aligned(100, 8), slab_class_of(100));
	ck_assert_int_eq(slab_class_aligned(100, 2 * SHM_SLAB_SIZE), -1);
	ck_assert_int_eq(slab_class_aligned(SHM_CLASS_MAX + 1, 64), -1);
}
END_TEST

START_TEST(seg_geometry_layout)
{
	struct shm_geom g;
	uint64_t sizes[] = { SHM_SIZE_MIN, UNIT_SIZE, UINT64_C(128) << 20,
	    UINT64_C(256) << 20, UINT64_C(512) << 20, UINT64_C(1) << 30,
	    UINT64_C(16) << 30, SHM_SIZE_MAX };
	size_t i;

	ck_assert_int_eq(seg_geometry(SHM_SIZE_MIN - SHM_SLAB_SIZE, &g),
	    -EINVAL);
	ck_assert_int_eq(seg_geometry(UNIT_SIZE + 4096, &g), -EINVAL);
	ck_assert_int_eq(seg_geometry(SHM_SIZE_MAX + SHM_SLAB_SIZE, &g),
	    -EINVAL);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ck_assert_int_eq(seg_geometry(sizes[i], &g), 0);
		ck_assert_uint_gt(g.nslabs, 0);
		ck_assert_uint_eq(g.data_off % SHM_SLAB_SIZE, 0);
		ck_assert_uint_le(g.data_off + g.nslabs * SHM_SLAB_SIZE,
		    sizes[i]);
		/* One more slab would not fit: nothing is wasted. */
		ck_assert_uint_le(SHM_SUPER_BYTES, g.roots_off);
		ck_assert_uint_ge(g.roots_max, SHM_ROOTS_MIN);
		ck_assert_uint_le(g.roots_max, SHM_ROOTS_MAX);
		ck_assert_uint_le(g.roots_off + g.roots_max *
		    sizeof(struct shm_root), g.leases_off);
		/* A record for every slab (a lease holds one), at most
		 * SHM_LEASES, in whole pages. */
		ck_assert_uint_ge(g.nleases, g.nslabs < SHM_LEASES ?
		    g.nslabs : SHM_LEASES);
		ck_assert_uint_le(g.nleases, SHM_LEASES);
		ck_assert_uint_eq(g.nleases % SHM_LEASES_PAGE, 0);
		ck_assert_uint_eq(g.leases_off % 4096, 0);
		ck_assert_uint_eq(g.leases_off + g.nleases *
		    sizeof(struct shm_lease), g.slabs_off);
		ck_assert_uint_le(g.slabs_off + g.nslabs *
		    sizeof(struct shm_slab), g.bitmaps_off);
		ck_assert_uint_le(g.bitmaps_off + g.nslabs * SHM_BITMAP_BYTES,
		    g.sides_off);
		ck_assert_uint_le(g.sides_off + g.nslabs * SHM_SIDE_BYTES,
		    g.data_off);
		/* What a slab needs out of the data area is 1%, the root
		 * room under 1%: the reserve stays under 3% from 128 MiB
		 * heaps on (below, the data area's 1 MiB alignment is the
		 * most of it). */
		if (sizes[i] >= (UINT64_C(128) << 20))
			ck_assert_msg(g.data_off * 100 <= sizes[i] * 3,
			    "%" PRIu64 " of %" PRIu64, g.data_off, sizes[i]);
	}
	ck_assert_uint_eq(sizeof(struct shm_lease), 64);
	ck_assert_uint_eq(sizeof(struct shm_slab), 24);
	ck_assert_uint_le(sizeof(struct shm_super), SHM_SUPER_BYTES);
}
END_TEST

START_TEST(seg_parse_size_suffixes)
{
	uint64_t v;

	ck_assert_int_eq(seg_parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(seg_parse_size("64K", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(seg_parse_size("64M", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(64) << 20);
	ck_assert_int_eq(seg_parse_size("1G", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(1) << 30);
	ck_assert_int_eq(seg_parse_size("2TiB", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(2) << 40);
	ck_assert_int_eq(seg_parse_size("", &v), -EINVAL);
	ck_assert_int_eq(seg_parse_size("M", &v), -EINVAL);
	ck_assert_int_eq(seg_parse_size("-1", &v), -EINVAL);
	ck_assert_int_eq(seg_parse_size("1Z", &v), -EINVAL);
	ck_assert_int_eq(seg_parse_size("1G2", &v), -EINVAL);
	ck_assert_int_eq(seg_parse_size("99999999999T", &v), -EINVAL);
	ck_assert_int_eq(seg_parse_size("99999999999999999999", &v), -EINVAL);
}
END_TEST

START_TEST(seg_map_refuses_taken_range)
{
	struct shm_seg s2;
	char err[512];
	void *p;
	int fd;

	/* Occupy a page in the middle of the range, then try to map. */
	p = mmap((void *)(UNIT_BASE + (UINT64_C(5) << 20)), 4096,
	    PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	    -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert_int_eq(getrandom(id, sizeof(id), 0), 16);
	ck_assert_int_eq(seg_create(id, UNIT_SIZE, &fd), 0);
	memset(&s2, 0, sizeof(s2));
	ck_assert_int_eq(seg_map(&s2, fd, UNIT_BASE, UNIT_SIZE, err,
	    sizeof(err)), -EADDRINUSE);
	ck_assert_msg(strstr(err, "0x310000000000-0x310001000000") != NULL,
	    "%s", err);
	ck_assert_msg(strstr(err, "0x310000500000-0x310000501000") != NULL,
	    "occupant not named: %s", err);
	/* Nothing was mapped anywhere: the page is still the only one. */
	ck_assert_ptr_null(s2.sb);
	ck_assert_int_eq(seg_range_owner(UNIT_BASE, UNIT_BASE + UNIT_SIZE,
	    err, sizeof(err)), 1);
	ck_assert_msg(strstr(err, "0x310000500000") != NULL, "%s", err);
	close(fd);
	seg_unlink(id);
	munmap(p, 4096);
}
END_TEST

START_TEST(seg_map_rejects_bad_geometry)
{
	struct shm_seg s2;
	char err[256];

	memset(&s2, 0, sizeof(s2));
	ck_assert_int_eq(seg_map(&s2, -1, UNIT_BASE + 4096, UNIT_SIZE, err,
	    sizeof(err)), -EINVAL);
	ck_assert_int_eq(seg_map(&s2, -1, UNIT_BASE, 12345, err,
	    sizeof(err)), -EINVAL);
	ck_assert_int_eq(seg_map(&s2, -1, 0, UNIT_SIZE, err, sizeof(err)),
	    -EINVAL);
}
END_TEST

/* A heap that can grow: the slabs in use only grow with the size, never
 * past the maximum's, and everything is where the maximum puts it. */
START_TEST(seg_geometry_grows)
{
	struct shm_geom g, m;
	uint64_t size, max = UINT64_C(1) << 30, last = 0;

	ck_assert_int_eq(seg_geometry(max, &m), 0);
	ck_assert_int_eq(seg_geometry_max(max, max, &g), 0);
	ck_assert_uint_eq(g.nslabs, m.nslabs);
	ck_assert_int_eq(seg_geometry_max(max + SHM_SLAB_SIZE, max, &g),
	    -EINVAL);
	for (size = SHM_SIZE_MIN; size <= (UINT64_C(96) << 20);
	    size += SHM_SLAB_SIZE) {
		ck_assert_int_eq(seg_geometry_max(size, max, &g), 0);
		ck_assert_uint_ge(g.nslabs, last);
		ck_assert_uint_le(g.nslabs, g.nslabs_max);
		ck_assert_uint_eq(g.nslabs_max, m.nslabs);
		ck_assert_uint_eq(g.data_off, m.data_off);
		ck_assert_uint_eq(g.sides_off, m.sides_off);
		ck_assert_uint_eq(g.meta_end, g.slabs_off + g.nslabs *
		    sizeof(struct shm_slab));
		last = g.nslabs;
	}
}
END_TEST

START_TEST(seg_super_check_mismatch)
{
	char err[512];

	scratch_up();
	ck_assert_int_eq(seg_super_check(seg.sb, UNIT_BASE, UNIT_SIZE,
	    UNIT_SIZE, err, sizeof(err)), 0);
	ck_assert_int_eq(seg_super_check(seg.sb, UNIT_BASE + SHM_SLAB_SIZE,
	    UNIT_SIZE, UNIT_SIZE, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "0x310000000000") != NULL &&
	    strstr(err, "0x310000010000") != NULL, "%s", err);
	seg.sb->version = 99;
	ck_assert_int_eq(seg_super_check(seg.sb, UNIT_BASE, UNIT_SIZE,
	    UNIT_SIZE, err, sizeof(err)), -EPROTO);
	ck_assert_msg(strstr(err, "version 99") != NULL, "%s", err);
	/* The layout before (8: the root table, no maximum) is refused
	 * with both versions named. */
	seg.sb->version = SHM_VERSION - 1;
	ck_assert_int_eq(seg_super_check(seg.sb, UNIT_BASE, UNIT_SIZE,
	    UNIT_SIZE, err, sizeof(err)), -EPROTO);
	ck_assert_msg(strstr(err, "layout version 9, this build reads 10") !=
	    NULL, "%s", err);
	seg.sb->version = SHM_VERSION;
	seg.sb->magic ^= 1;
	ck_assert_int_eq(seg_super_check(seg.sb, UNIT_BASE, UNIT_SIZE,
	    UNIT_SIZE, err, sizeof(err)), -EPROTO);
	seg.sb->magic ^= 1;
	seg.sb->sides_off += 4096;
	ck_assert_int_eq(seg_super_check(seg.sb, UNIT_BASE, UNIT_SIZE,
	    UNIT_SIZE, err, sizeof(err)), -EPROTO);
	seg.sb->sides_off -= 4096;
	scratch_down();
}
END_TEST

START_TEST(slab_claim_one_fills_slab)
{
	uint32_t cls = 3, hint = 0, n = slab_class_nblocks[3], i;
	long b;

	scratch_up();
	make_small(0, cls);
	for (i = 0; i < n; i++) {
		b = slab_claim_one(&seg, 0, cls, &hint);
		ck_assert_int_eq(b, i);
		slab_set_live(&seg, 0, (uint32_t)b, cls, 50);
	}
	ck_assert_int_eq(slab_claim_one(&seg, 0, cls, &hint), -1);
	ck_assert_uint_eq(slab_claimed(&seg, 0), n);
	ck_assert_uint_eq(slab_used(&seg, 0, cls, NULL), n);
	check_ok();
	scratch_down();
}
END_TEST

START_TEST(slab_claim_one_refuses_other_class)
{
	uint32_t hint = 0;

	scratch_up();
	make_small(0, 3);
	ck_assert_int_eq(slab_claim_one(&seg, 0, 4, &hint), -1);
	/* The failed claim was undone. */
	ck_assert(slab_empty(&seg, 0));
	scratch_down();
}
END_TEST

START_TEST(slab_claim_word_batch_and_stale)
{
	_Atomic uint64_t intent = 0;
	uint32_t hint = 0;
	long b;

	scratch_up();
	make_small(2, 0);		/* 16-byte blocks, 4096 per slab */
	b = slab_claim_one(&seg, 2, 0, &hint);
	ck_assert_int_eq(b, 0);
	/* Record 9 owns the slab and announces its claim. */
	slab_affinity_set(&seg, 2, 10);
	ck_assert_int_eq(slab_claim_begin(&seg, 2, 0, 9), 0);
	ck_assert_uint_eq(atomic_load(&seg.leases[9].pending), 3);
	/* All but block 0, written to the intent first. */
	ck_assert_uint_eq(slab_claim_word(&seg, 2, 0, 0, &intent),
	    ~UINT64_C(1));
	ck_assert_uint_eq(atomic_load(&intent), ~UINT64_C(1));
	atomic_store(&intent, 0);
	ck_assert_uint_eq(slab_claim_word(&seg, 2, 0, 0, &intent), 0);
	ck_assert_uint_eq(atomic_load(&intent), 0);	/* word full */
	slab_claim_end(&seg, 9);
	ck_assert_uint_eq(atomic_load(&seg.leases[9].pending), 0);
	/* Only in a slab of the class, and only the owner. */
	ck_assert_int_eq(slab_claim_begin(&seg, 2, 1, 9), -ESTALE);
	ck_assert_int_eq(slab_claim_begin(&seg, 2, 0, 8), -EBUSY);
	ck_assert_uint_eq(atomic_load(&seg.leases[8].pending), 0);
	scratch_down();
}
END_TEST

/* While a record announces a claim in its slab, the daemon can neither
 * give the slab to someone else nor reclaim it; otherwise it can. */
START_TEST(announced_claim_keeps_slab)
{
	scratch_up();
	make_small(3, 4);
	slab_affinity_set(&seg, 3, 13);
	ck_assert_int_eq(slab_claim_begin(&seg, 3, 4, 12), 0);
	ck_assert_int_eq(slab_owner_move(&seg, 3, 0), -EBUSY);
	ck_assert_uint_eq(slab_affinity(&seg, 3), 13);
	ck_assert_int_eq(slab_reclaim(&seg, 3), -EBUSY);
	ck_assert_uint_eq(atomic_load(&seg.slabs[3].word),
	    SHM_SLAB_OWNED(SHM_SLAB_WORD(SHM_SMALL, 4, 0), 13));
	/* An announcement for another slab, or by another record, is no
	 * obstacle. */
	atomic_store(&seg.leases[12].pending, 5);
	ck_assert_int_eq(slab_owner_move(&seg, 3, 7), 0);
	ck_assert_uint_eq(slab_affinity(&seg, 3), 7);
	atomic_store(&seg.leases[12].pending, 4);
	ck_assert_int_eq(slab_owner_move(&seg, 3, 0), 0);
	slab_claim_end(&seg, 12);
	ck_assert_int_eq(slab_reclaim(&seg, 3), 0);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&seg.slabs[3].word)),
	    SHM_FREE);
	/* A free slab is nobody's to claim in, nor is an extent whose
	 * length happens to be the record's number. */
	ck_assert_int_eq(slab_claim_begin(&seg, 3, 4, 12), -ESTALE);
	seg.slabs[3].run = 13;
	atomic_store(&seg.slabs[3].word, SHM_SLAB_WORD(SHM_LARGE_HEAD, 0, 0));
	ck_assert_int_eq(slab_claim_begin(&seg, 3, 0, 12), -ESTALE);
	seg.slabs[3].run = 0;
	atomic_store(&seg.slabs[3].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	check_ok();
	/* An owner on a slab that is not small is damage. */
	atomic_store(&seg.slabs[3].word, SHM_SLAB_OWNED(
	    SHM_SLAB_WORD(SHM_FREE, 0, 0), 13));
	check_fails("names owner 13");
	atomic_store(&seg.slabs[3].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	scratch_down();
}
END_TEST

START_TEST(slab_block_lookup_and_free)
{
	uint32_t cls = slab_class_of(100), hint = 0;
	struct slab_block b;
	uintptr_t a;
	size_t req;
	long i;

	scratch_up();
	make_small(1, cls);
	i = slab_claim_one(&seg, 1, cls, &hint);
	ck_assert_int_ge(i, 0);
	slab_set_live(&seg, 1, (uint32_t)i, cls, 100);
	a = slab_addr(&seg, 1) + (uintptr_t)i * slab_class_size[cls];
	ck_assert_int_eq(slab_block_lookup(&seg, a, &b), 0);
	ck_assert_uint_eq(b.req, 100);
	ck_assert_uint_eq(b.usable, slab_class_size[cls]);
	/* Interior, foreign and never-allocated addresses. */
	ck_assert_int_eq(slab_block_lookup(&seg, a + 8, &b), -EINVAL);
	ck_assert_int_eq(slab_block_lookup(&seg, a + slab_class_size[cls],
	    &b), -EINVAL);
	ck_assert_int_eq(slab_block_lookup(&seg, seg.base, &b), -EINVAL);
	ck_assert_int_eq(slab_block_lookup(&seg, slab_addr(&seg, 0), &b),
	    -EINVAL);
	ck_assert_int_eq(slab_block_lookup(&seg, (uintptr_t)&b, &b), -EINVAL);
	ck_assert_int_eq(slab_free_small(&seg, a + 16, &req), -EINVAL);
	ck_assert_int_eq(slab_free_small(&seg, a, &req), 0);
	ck_assert_uint_eq(req, 100);
	/* Double free: refused, nothing written. */
	ck_assert_int_eq(slab_free_small(&seg, a, &req), -EINVAL);
	ck_assert(slab_empty(&seg, 1));
	check_ok();
	scratch_down();
}
END_TEST

/* A span of the 16 KiB class (two slabs, eight blocks): blocks in its
 * tail resolve through the head; 32-bit side entries keep requests that
 * 16 bits could not. */
START_TEST(span_block_lookup_and_free)
{
	uint32_t cls = (uint32_t)slab_class_of(16384), hint = 0;
	struct slab_block b;
	uintptr_t a;
	size_t req;
	long i;

	scratch_up();
	ck_assert_uint_eq(slab_class_slabs[cls], 2);
	seg.slabs[6].run = 5;
	atomic_store(&seg.slabs[6].word, SHM_SLAB_WORD(SHM_SPAN_TAIL, 0, 0));
	make_small(5, cls);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(slab_claim_one(&seg, 5, cls, &hint), i);
	ck_assert_int_eq(slab_claim_one(&seg, 5, cls, &hint), -1);
	slab_set_live(&seg, 5, 6, cls, 12289);
	a = slab_addr(&seg, 5) + 6 * 16384;
	ck_assert_uint_eq(slab_index(&seg, a), 6);
	ck_assert_int_eq(slab_block_lookup(&seg, a, &b), 0);
	ck_assert_uint_eq(b.slab, 5);
	ck_assert_uint_eq(b.index, 6);
	ck_assert_uint_eq(b.req, 12289);
	ck_assert_uint_eq(b.usable, 16384);
	/* Interior, an unused block of the span, a tail of another head. */
	ck_assert_int_eq(slab_block_lookup(&seg, a + 16, &b), -EINVAL);
	ck_assert_int_eq(slab_block_lookup(&seg, a - 16384, &b), -EINVAL);
	seg.slabs[6].run = 4;
	ck_assert_int_eq(slab_block_lookup(&seg, a, &b), -EINVAL);
	seg.slabs[6].run = 5;
	ck_assert_int_eq(slab_free_small(&seg, a, &req), 0);
	ck_assert_uint_eq(req, 12289);
	ck_assert_int_eq(slab_free_small(&seg, a, &req), -EINVAL);
	/* The other seven are claimed, not live and in no private set:
	 * orphans on a live heap, counted, not damage; a still heap has
	 * none (settling rebuilt its bitmaps), so there they break I5.
	 * Listed in a record's private set, they are what I5 says. */
	check_live_counts(7, 7);
	check_still_fails("I5: slab 5 block 0 is claimed, not live");
	seg.leases[2].owner_pid = 1;
	atomic_store(&seg.leases[2].set_slab, 5);
	atomic_store(&seg.leases[2].word, 0);
	atomic_store(&seg.leases[2].mask, 0xbf);
	check_ok();
	check_live_counts(7, 0);
	scratch_down();
}
END_TEST

START_TEST(slab_side_records_size_zero)
{
	uint32_t hint = 0;
	struct slab_block b;
	uintptr_t a;
	size_t req = 99;
	long i;

	scratch_up();
	make_small(0, 0);
	i = slab_claim_one(&seg, 0, 0, &hint);
	slab_set_live(&seg, 0, (uint32_t)i, 0, 0);
	a = slab_addr(&seg, 0) + (uintptr_t)i * 16;
	ck_assert_int_eq(slab_block_lookup(&seg, a, &b), 0);
	ck_assert_uint_eq(b.req, 0);
	ck_assert_int_eq(slab_free_small(&seg, a, &req), 0);
	ck_assert_uint_eq(req, 0);
	scratch_down();
}
END_TEST

START_TEST(slab_reclaim_only_empty)
{
	uint32_t hint = 0;
	long i;

	scratch_up();
	make_small(4, 2);
	i = slab_claim_one(&seg, 4, 2, &hint);
	ck_assert_int_eq(slab_reclaim(&seg, 4), -EBUSY);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&seg.slabs[4].word)),
	    SHM_SMALL);
	ck_assert_uint_eq(SHM_SLAB_CLS(atomic_load(&seg.slabs[4].word)), 2);
	atomic_fetch_and(&slab_bitmap(&seg, 4)[0], ~(UINT64_C(1) << i));
	/* A leased slab stays, empty or not. */
	atomic_store(&seg.slabs[4].word, SHM_SLAB_WORD(SHM_SMALL, 2, 7));
	ck_assert_int_eq(slab_reclaim(&seg, 4), -EBUSY);
	make_small(4, 2);
	ck_assert_int_eq(slab_reclaim(&seg, 4), 0);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&seg.slabs[4].word)),
	    SHM_FREE);
	check_ok();
	scratch_down();
}
END_TEST

/*
 * A slab's ready count bounds everything that claims or looks up blocks:
 * claims stop at it, a pointer past it is no block (and its side entry,
 * which may lie in a hole, is not read), and the validator names a bit
 * past it and a count out of range.
 */
START_TEST(ready_blocks_bound_claims)
{
	struct slab_block b;
	uint32_t hint = 0, n = 0;
	uint64_t got, r[4];
	uintptr_t a;
	long i, last = -1;

	scratch_up();
	make_small(0, 0);	/* 16 B: 3640 blocks, sides in the slab */
	atomic_store(&seg.slabs[0].ready, 100);
	while ((i = slab_claim_one(&seg, 0, 0, &hint)) >= 0) {
		ck_assert_int_lt(i, 100);
		last = i;
		n++;
	}
	ck_assert_uint_eq(n, 100);
	ck_assert_int_eq(last, 99);
	slab_set_live(&seg, 0, 99, 0, 16);
	a = slab_addr(&seg, 0) + 99 * 16;
	ck_assert_int_eq(slab_block_lookup(&seg, a, &b), 0);
	ck_assert_int_eq(slab_block_lookup(&seg, a + 16, &b), -EINVAL);
	ck_assert_uint_eq(slab_used(&seg, 0, 0, NULL), 1);
	/* A claim of a whole word takes only its ready blocks. */
	memset((void *)slab_bitmap(&seg, 0), 0, SHM_BITMAP_BYTES);
	slab_side_store(slab_side_base(&seg, 0, 0), 0, 99, 0);
	got = slab_claim_word(&seg, 0, 0, 1, &seg.leases[0].mask);
	ck_assert_uint_eq(got, (UINT64_C(1) << 36) - 1);
	ck_assert_uint_eq(slab_claim_word(&seg, 0, 0, 2, &seg.leases[0].mask),
	    0);
	memset((void *)slab_bitmap(&seg, 0), 0, SHM_BITMAP_BYTES);
	check_ok();
	/* The validator: a bit past the ready blocks, a count of none or
	 * of more blocks than the class has. */
	atomic_store(&slab_bitmap(&seg, 0)[1], UINT64_C(1) << 36);
	check_fails("I2: slab 0 (class 16) has bit 100 set past its 100 "
	    "ready blocks");
	atomic_store(&slab_bitmap(&seg, 0)[1], 0);
	atomic_store(&seg.slabs[0].ready, 0);
	check_fails("I2: slab 0 (class 16) has 0 of its 3640 blocks ready");
	atomic_store(&seg.slabs[0].ready, 3641);
	check_fails("I2: slab 0 (class 16) has 3641 of its 3640 blocks ready");
	atomic_store(&seg.slabs[0].ready, 3640);
	check_ok();
	/* What blocks 100 .. 199 of a 16-byte slab need committed: their
	 * data (bytes 1600 .. 3199, page 0) and their side entries (at
	 * 58240 + 200 .. 58240 + 400, page 14). */
	slab_ready_ranges(0, 100, 200, r);
	ck_assert_uint_eq(r[0], 0);
	ck_assert_uint_eq(r[1], 4096);
	ck_assert_uint_eq(r[2], 14 * 4096);
	ck_assert_uint_eq(r[3], 15 * 4096);
	/* Above 1 KiB the sides are in the side line: data only. */
	slab_ready_ranges(SHM_NINBAND, 0, 3, r);
	ck_assert_uint_eq(r[1], ((uint64_t)3 * slab_class_size[SHM_NINBAND] +
	    4095) / 4096 * 4096);
	ck_assert_uint_eq(r[2], r[3]);
	scratch_down();
}
END_TEST

START_TEST(shm_check_finds_broken_invariants)
{
	struct shm_report rep;
	char err[256];
	uint32_t hint = 0;
	long i;

	scratch_up();
	check_ok();
	/* I3: a live side entry without its bit, in the slab and in a
	 * side line. */
	make_small(0, 1);
	slab_side_store(slab_side_base(&seg, 0, 1), 1, 5, 3);
	check_fails("live without its bit");
	slab_side_store(slab_side_base(&seg, 0, 1), 1, 5, 0);
	make_small(0, SHM_NINBAND);
	slab_side_store(slab_side_base(&seg, 0, SHM_NINBAND), SHM_NINBAND, 5,
	    3);
	check_fails("live without its bit");
	slab_side_store(slab_side_base(&seg, 0, SHM_NINBAND), SHM_NINBAND, 5,
	    0);
	make_small(0, 1);
	/* I2: a bit past the class's last block (class 8192: 8 blocks). */
	make_small(1, SHM_NSMALL - 1);
	atomic_store(&slab_bitmap(&seg, 1)[0], UINT64_C(1) << 9);
	check_fails("past its 8 blocks");
	atomic_store(&slab_bitmap(&seg, 1)[0], 0);
	/* I1: a free slab with a claimed block. */
	atomic_store(&seg.slabs[1].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	atomic_store(&slab_bitmap(&seg, 1)[3], 1);
	check_fails("free slab 1 has claimed blocks");
	atomic_store(&slab_bitmap(&seg, 1)[3], 0);
	/* I4: an extent whose tail is missing, and a lone tail. */
	seg.slabs[10].run = 3;
	seg.slabs[10].req = 150000;
	atomic_store(&seg.slabs[10].word, SHM_SLAB_WORD(SHM_LARGE_HEAD, 0, 0));
	seg.slabs[11].run = 10;
	atomic_store(&seg.slabs[11].word, SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	check_fails("not its tail");
	seg.slabs[12].run = 10;
	atomic_store(&seg.slabs[12].word, SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	check_ok();
	seg.slabs[10].req = 4 * SHM_SLAB_SIZE;
	check_fails("records");
	seg.slabs[10].req = 150000;
	atomic_store(&seg.slabs[20].word, SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	check_fails("tail without a head");
	atomic_store(&seg.slabs[20].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	/* I2 for spans: a head without its tails, a tail of another
	 * head, a lone tail; then a whole one. */
	make_small(30, SHM_NSMALL);	/* 10 KiB: 5 slabs */
	check_fails("span at slab 30: slab 31 is not its tail");
	for (i = 31; i < 35; i++) {
		seg.slabs[i].run = i == 33 ? 29 : 30;
		atomic_store(&seg.slabs[i].word, SHM_SLAB_WORD(SHM_SPAN_TAIL, 0,
		    0));
	}
	check_fails("slab 33 is not its tail");
	seg.slabs[33].run = 30;
	check_ok();
	seg.slabs[40].run = 30;
	atomic_store(&seg.slabs[40].word, SHM_SLAB_WORD(SHM_SPAN_TAIL, 0, 0));
	check_fails("span tail without a head");
	atomic_store(&seg.slabs[40].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	seg.slabs[40].run = 0;
	/* A span's side entry past its blocks. */
	slab_side_store(slab_side_base(&seg, 30, SHM_NSMALL), SHM_NSMALL, 32,
	    1);
	check_fails("past its 32 blocks");
	slab_side_store(slab_side_base(&seg, 30, SHM_NSMALL), SHM_NSMALL, 32,
	    0);
	for (i = 30; i < 35; i++) {
		seg.slabs[i].run = 0;
		atomic_store(&seg.slabs[i].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	}
	/* A slab in use above the high-water mark. */
	atomic_store(&seg.sb->slab_hwm, 10);
	check_fails("above the high-water mark");
	atomic_store(&seg.sb->slab_hwm, seg.nslabs);
	/* A bad root name. */
	roots_fill(4);
	memcpy(seg.roots[3].name, "ok\x01", 4);
	check_fails("root 3");
	roots_fill(0);
	/* Counts of a healthy heap: one live block, one orphaned claim. */
	i = slab_claim_one(&seg, 0, 1, &hint);
	slab_set_live(&seg, 0, (uint32_t)i, 1, 20);
	(void)slab_claim_one(&seg, 0, 1, &hint);
	ck_assert_int_eq(shm_check(&seg, &rep, err, sizeof(err)), 0);
	ck_assert_uint_eq(rep.blocks_live, 2);	/* + the extent */
	ck_assert_uint_eq(rep.blocks_orphaned, 1);
	ck_assert_uint_eq(rep.large_blocks, 1);
	ck_assert_uint_eq(rep.bytes_requested, 20 + 150000);
	scratch_down();
}
END_TEST

/* Each invariant of shm.h broken on its own, and named by both checks
 * (I5 by the still one only: a live heap's are counted). */
START_TEST(check_names_i1)
{
	scratch_up();
	atomic_store(&slab_bitmap(&seg, 1)[3], 1);
	check_fails("I1: free slab 1 has claimed blocks");
	atomic_store(&slab_bitmap(&seg, 1)[3], 0);
	/* A side line left behind: a free slab's must be zeros... */
	slab_side_store((uintptr_t)slab_sides(&seg, 2), SHM_NINBAND, 7, 9);
	check_fails("I1: free slab 2 has side entries");
	slab_side_store((uintptr_t)slab_sides(&seg, 2), SHM_NINBAND, 7, 0);
	check_ok();
	/* ... while in-slab side entries are the free slab's data. */
	memset((void *)slab_side_base(&seg, 2, 0), 0xa5, 64);
	check_ok();
	scratch_down();
}
END_TEST

START_TEST(check_names_i2)
{
	uint32_t big = SHM_NSMALL;	/* 10 KiB: five slabs a span */

	scratch_up();
	atomic_store(&seg.slabs[1].word, SHM_SLAB_WORD(SHM_SMALL,
	    SHM_NCLASSES, 0));
	check_fails("I2: slab 1 has class 68");
	make_small(1, SHM_NSMALL - 1);
	atomic_store(&slab_bitmap(&seg, 1)[0], UINT64_C(1) << 9);
	check_fails("I2: slab 1 (class 8192) has bit 9 set past its 8 blocks");
	atomic_store(&slab_bitmap(&seg, 1)[0], 0);
	slab_side_store(slab_side_base(&seg, 1, SHM_NSMALL - 1),
	    SHM_NSMALL - 1, 8, 1);
	check_fails("I2: slab 1 has a side entry at 8 past its 8 blocks");
	slab_side_store(slab_side_base(&seg, 1, SHM_NSMALL - 1),
	    SHM_NSMALL - 1, 8, 0);
	make_small(10, big);
	check_fails("I2: span at slab 10: slab 11 is not its tail");
	atomic_store(&seg.slabs[10].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	seg.slabs[20].run = 10;
	atomic_store(&seg.slabs[20].word, SHM_SLAB_WORD(SHM_SPAN_TAIL, 0, 0));
	check_fails("I2: slab 20 is a span tail without a head");
	scratch_down();
}
END_TEST

START_TEST(check_names_i3)
{
	uint32_t hint = 0;
	long i;

	scratch_up();
	make_small(0, 1);	/* 32 bytes */
	slab_side_store(slab_side_base(&seg, 0, 1), 1, 5, 3);
	check_fails("I3: slab 0 block 5 is live without its bit");
	slab_side_store(slab_side_base(&seg, 0, 1), 1, 5, 0);
	i = slab_claim_one(&seg, 0, 1, &hint);
	slab_side_store(slab_side_base(&seg, 0, 1), 1, (uint32_t)i, 34);
	check_fails("I3: slab 0 block 0 records 33 bytes of slack in a "
	    "32-byte class");
	slab_side_store(slab_side_base(&seg, 0, 1), 1, (uint32_t)i, 33);
	check_ok();
	scratch_down();
}
END_TEST

START_TEST(check_names_i4)
{
	scratch_up();
	seg.slabs[10].run = 2;
	seg.slabs[10].req = 100000;
	atomic_store(&seg.slabs[10].word, SHM_SLAB_WORD(SHM_LARGE_HEAD, 0, 0));
	check_fails("I4: extent at slab 10: slab 11 is not its tail");
	seg.slabs[11].run = 10;
	atomic_store(&seg.slabs[11].word, SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	check_ok();
	seg.slabs[10].req = 2 * SHM_SLAB_SIZE + 1;
	check_fails("I4: extent at slab 10 records 131073 bytes in 2 slabs");
	seg.slabs[10].req = 100000;
	seg.slabs[10].run = 0;
	check_fails("I4: extent at slab 10 runs 0 slabs");
	seg.slabs[10].run = 2;
	seg.slabs[20].run = 10;
	atomic_store(&seg.slabs[20].word, SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	check_fails("I4: slab 20 is an extent tail without a head");
	scratch_down();
}
END_TEST

START_TEST(check_names_i5)
{
	struct shm_lease *l;
	uint32_t hint = 0;
	long i, j;

	scratch_up();
	l = &seg.leases[9];
	make_small(3, 2);	/* 48 bytes */
	i = slab_claim_one(&seg, 3, 2, &hint);
	j = slab_claim_one(&seg, 3, 2, &hint);
	slab_set_live(&seg, 3, (uint32_t)j, 2, 40);
	/* Block i claimed, not live, in nobody's set. */
	check_live_counts(1, 1);
	check_still_fails("I5: slab 3 block 0 is claimed, not live, and in "
	    "no lease record's private set");
	/* In record 9's set it is what I5 says. */
	l->owner_pid = 1;
	atomic_store(&l->set_slab, 3);
	atomic_store(&l->word, 0);
	atomic_store(&l->mask, UINT64_C(1) << i);
	check_ok();
	check_live_counts(1, 0);
	/* A record listing a live block, one not claimed, blocks past the
	 * class's, of a slab not small, outside the heap. */
	atomic_store(&l->mask, UINT64_C(1) << i | UINT64_C(1) << j);
	check_still_fails("I5: lease record 9 lists block 1 of slab 3, which "
	    "is live");
	atomic_store(&l->mask, UINT64_C(1) << i | UINT64_C(1) << 5);
	check_still_fails("I5: lease record 9 lists block 5 of slab 3, which "
	    "is not claimed");
	atomic_store(&l->word, slab_class_nblocks[2] / 64);
	atomic_store(&l->mask, ~UINT64_C(0));
	check_still_fails("I5: lease record 9 lists blocks of slab 3 past its");
	atomic_store(&l->word, 0);
	atomic_store(&l->mask, 1);
	atomic_store(&l->set_slab, 4);
	check_still_fails("I5: lease record 9 lists blocks of slab 4, which is "
	    "not small");
	atomic_store(&l->set_slab, (uint32_t)seg.nslabs);
	check_still_fails("outside the heap");
	/* A record nobody holds lists nothing. */
	l->owner_pid = 0;
	check_live_counts(1, 1);
	atomic_store(&l->set_slab, 3);
	atomic_store(&l->mask, UINT64_C(1) << i);
	l->owner_pid = 1;
	check_ok();
	scratch_down();
}
END_TEST

START_TEST(check_names_i6)
{
	scratch_up();
	atomic_store(&seg.slabs[2].word, SHM_SLAB_WORD(SHM_FREE, 0, 4));
	check_fails("I6: free slab 2 is leased");
	atomic_store(&seg.slabs[2].word, SHM_SLAB_OWNED(SHM_SLAB_WORD(
	    SHM_LARGE_HEAD, 0, 0), 3));
	seg.slabs[2].run = 1;
	check_fails("I6: slab 2 (state 2) names owner 3");
	atomic_store(&seg.slabs[2].ready, slab_class_nblocks[1]);
	atomic_store(&seg.slabs[2].word, SHM_SLAB_OWNED(SHM_SLAB_WORD(
	    SHM_SMALL, 1, 4), 5));
	check_fails("I6: slab 2 is leased to record 3 but owned by 5");
	atomic_store(&seg.slabs[2].word, SHM_SLAB_OWNED(SHM_SLAB_WORD(
	    SHM_RECLAIMING, 1, 4), 4));
	check_fails("I6: slab 2 is leased while reclaimed");
	atomic_store(&seg.slabs[2].word, 7);
	check_fails("I6: slab 2 has state 7");
	atomic_store(&seg.slabs[2].word, SHM_SLAB_OWNED(SHM_SLAB_WORD(
	    SHM_SMALL, 1, 4), 4));
	check_ok();
	scratch_down();
}
END_TEST

START_TEST(check_names_i7)
{
	scratch_up();
	make_small(12, 1);
	atomic_store(&seg.sb->slab_hwm, 12);
	check_fails("I7: slab 12 is in use above the high-water mark 12");
	atomic_store(&seg.sb->slab_hwm, seg.nslabs + 1);
	check_fails("I7: high-water mark");
	atomic_store(&seg.sb->slab_hwm, 13);
	check_ok();
	scratch_down();
}
END_TEST

START_TEST(check_names_i8)
{
	scratch_up();
	roots_fill(8);
	memcpy(seg.roots[7].name, "tab\there", 9);
	check_fails("I8: root 7 has a malformed name");
	memset(seg.roots[7].name, 'x', sizeof(seg.roots[7].name));
	check_fails("I8: root 7");
	memcpy(seg.roots[7].name, "fine", 5);
	memset(seg.roots[7].name + 5, 0, sizeof(seg.roots[7].name) - 5);
	seg.roots[7].len = 4;
	check_ok();
	/* The length a record gives must be its name's. */
	seg.roots[7].len = 5;
	check_fails("I8: root 7 says its name is 5 bytes");
	seg.roots[7].len = 4;
	/* No name twice. */
	memcpy(seg.roots[7].name, "r2", 3);
	memset(seg.roots[7].name + 3, 0, sizeof(seg.roots[7].name) - 3);
	seg.roots[7].len = 2;
	check_fails("I8: roots 2 and 7 have the same name");
	/* A count past the table's room. */
	roots_fill(8);
	atomic_store(&seg.sb->roots_used, seg.roots_max + 1);
	check_fails("I8: ");
	atomic_store(&seg.sb->roots_used, 8);
	check_ok();
	/* A 255-byte name is a name; records past the count are not read. */
	memset(seg.roots[7].name, 'y', SHM_ROOT_NAME_MAX);
	seg.roots[7].len = SHM_ROOT_NAME_MAX;
	memset(seg.roots[8].name, 1, sizeof(seg.roots[8].name));
	check_ok();
	scratch_down();
}
END_TEST

Suite *
shm_suite(void)
{
	Suite *s = suite_create("shm");
	TCase *tc = tcase_create("shm");

	tcase_add_test(tc, slab_class_of_bounds);
	tcase_add_test(tc, slab_class_tables_follow_rules);
	tcase_add_test(tc, slab_class_magic_divides);
	tcase_add_test(tc, slab_class_aligned_power_of_two);
	tcase_add_test(tc, seg_geometry_layout);
	tcase_add_test(tc, seg_parse_size_suffixes);
	tcase_add_test(tc, seg_map_refuses_taken_range);
	tcase_add_test(tc, seg_map_rejects_bad_geometry);
	tcase_add_test(tc, seg_super_check_mismatch);
	tcase_add_test(tc, seg_geometry_grows);
	tcase_add_test(tc, slab_claim_one_fills_slab);
	tcase_add_test(tc, slab_claim_one_refuses_other_class);
	tcase_add_test(tc, slab_claim_word_batch_and_stale);
	tcase_add_test(tc, announced_claim_keeps_slab);
	tcase_add_test(tc, slab_block_lookup_and_free);
	tcase_add_test(tc, span_block_lookup_and_free);
	tcase_add_test(tc, slab_side_records_size_zero);
	tcase_add_test(tc, slab_reclaim_only_empty);
	tcase_add_test(tc, ready_blocks_bound_claims);
	tcase_add_test(tc, shm_check_finds_broken_invariants);
	tcase_add_test(tc, check_names_i1);
	tcase_add_test(tc, check_names_i2);
	tcase_add_test(tc, check_names_i3);
	tcase_add_test(tc, check_names_i4);
	tcase_add_test(tc, check_names_i5);
	tcase_add_test(tc, check_names_i6);
	tcase_add_test(tc, check_names_i7);
	tcase_add_test(tc, check_names_i8);
	suite_add_tcase(s, tc);
	return s;
}
