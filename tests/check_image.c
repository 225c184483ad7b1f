/* SPDX-License-Identifier: MIT */
/*
 * check_image.c: unit tests of the image format: a scratch heap written,
 * read back offline and compared; every flipped byte and every truncation
 * refused with the section named; the file never written by the reader.
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

#include "shm/image.h"
#include "tests/testutil.h"

#define IMG_BASE	UINT64_C(0x320000000000)
#define IMG_SIZE	(UINT64_C(16) << 20)

static struct shm_seg seg;
static uint8_t id[16];
static char dir[64], path[128];
static uintptr_t blocks[40];

static void
img_up(void)
{
	uint32_t hint = 0, i;
	char err[512];
	long b;
	int fd;

	ck_assert_int_eq(getrandom(id, sizeof(id), 0), 16);
	ck_assert_int_eq(seg_create(id, IMG_SIZE, &fd), 0);
	ck_assert_msg(seg_map(&seg, fd, IMG_BASE, IMG_SIZE, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(seg_format(&seg, id), 0);
	atomic_store(&seg.sb->slab_hwm, 101);
	/* ... and lease records, any of them. */
	atomic_store(&seg.sb->lease_hwm, seg.nleases);
	/* Slab 0: forty 64-byte blocks with patterns.  Slabs 3-5: an
	 * extent.  Slab 100: an empty small slab.  A root. */
	atomic_store(&seg.slabs[0].word, SHM_SLAB_WORD(SHM_SMALL, 3, 0));
	atomic_store(&seg.slabs[0].ready, slab_class_nblocks[3]);
	for (i = 0; i < 40; i++) {
		b = slab_claim_one(&seg, 0, 3, &hint);
		slab_set_live(&seg, 0, (uint32_t)b, 3, 60);
		blocks[i] = slab_addr(&seg, 0) + (uintptr_t)b * 64;
		memset((void *)blocks[i], (int)(0x40 + i), 60);
	}
	seg.slabs[3].run = 3;
	seg.slabs[3].req = 3 * SHM_SLAB_SIZE - 5;
	seg.slabs[4].run = 3;
	seg.slabs[5].run = 3;
	atomic_store(&seg.slabs[4].word, SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	atomic_store(&seg.slabs[5].word, SHM_SLAB_WORD(SHM_LARGE_TAIL, 0, 0));
	atomic_store(&seg.slabs[3].word, SHM_SLAB_WORD(SHM_LARGE_HEAD, 0, 0));
	memset((void *)slab_addr(&seg, 3), 0xab, 3 * SHM_SLAB_SIZE - 5);
	atomic_store(&seg.slabs[100].word, SHM_SLAB_WORD(SHM_SMALL, 7, 0));
	atomic_store(&seg.slabs[100].ready, slab_class_nblocks[7]);
	strcpy(seg.roots[0].name, "list");
	seg.roots[0].len = 4;
	atomic_store(&seg.roots[0].value, blocks[7]);
	atomic_store(&seg.sb->roots_used, 1);
	ck_assert_msg(shm_check(&seg, NULL, err, sizeof(err)) == 0, "%s", err);
	snprintf(dir, sizeof(dir), "/tmp/aclheap-img-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/heap.img", dir);
}

static void
img_down(void)
{
	char cmd[128];

	seg_unmap(&seg);
	seg_unlink(id);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Where the slab table's slabs in use end: what an image's metadata
 * covers (image.h). */
static uint64_t
meta_end(void)
{
	return seg.sb->slabs_off + seg.nslabs * sizeof(struct shm_slab);
}

/* What an image of seg at generation gen holds: its metadata copied
 * (free sp->meta after), the rest left for the caller. */
static void
spec_of(struct image_spec *sp, uint64_t gen)
{
	uint64_t len = meta_end();

	memset(sp, 0, sizeof(*sp));
	sp->meta = malloc(len);
	ck_assert_ptr_nonnull(sp->meta);
	memcpy((void *)sp->meta, seg.sb, len);
	sp->seg = &seg;
	sp->identity = id;
	sp->meta_len = len;
	sp->generation = gen;
	sp->time = 1000 + gen;
}

/* Writes sp as dir/name, as a checkpoint does: temp file, rename. */
static void
commit_spec(const char *name, struct image_spec *sp, struct image_out *out)
{
	char err[512], tmp[80];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	ck_assert_int_eq(image_writer_open(dir, tmp, &fd, err, sizeof(err)),
	    0);
	ck_assert_int_eq(image_write(fd, sp, out), 0);
	ck_assert_msg(image_commit(fd, dir, tmp, name, err, sizeof(err)) == 0,
	    "%s", err);
	free((void *)sp->meta);
}

/* A whole image of seg (kind FULL) at generation gen into dir/name; the
 * per-slab hashes into next if not NULL. */
static void
write_full(const char *name, uint64_t gen, uint64_t *next,
    struct image_out *out)
{
	struct image_spec sp;
	struct image_out o;

	spec_of(&sp, gen);
	sp.next = next;
	commit_spec(name, &sp, out != NULL ? out : &o);
}

static void
write_image(void)
{
	struct image_out o;

	write_full("heap.img", 7, NULL, &o);
	ck_assert_uint_eq(o.slabs, 5);	/* 0, 3-5, 100 */
}

START_TEST(image_write_read_roundtrip)
{
	struct image_info info;
	struct shm_seg off;
	struct slab_block b;
	char err[512];
	uintptr_t a;
	int i;

	img_up();
	write_image();
	ck_assert_msg(image_load_offline(path, &off, &info, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(info.hdr.generation, 7);
	ck_assert_uint_eq(info.hdr.base, IMG_BASE);
	ck_assert_uint_eq(info.slabs, 5);
	ck_assert_int_eq(memcmp(info.hdr.identity, id, 16), 0);
	ck_assert_msg(shm_check(&off, NULL, err, sizeof(err)) == 0, "%s", err);
	for (i = 0; i < 40; i++) {
		a = blocks[i] - seg.data + off.data;
		ck_assert_int_eq(slab_block_lookup(&off, a, &b), 0);
		ck_assert_uint_eq(b.req, 60);
		ck_assert_int_eq(memcmp((void *)a, (void *)blocks[i], 60), 0);
	}
	ck_assert_int_eq(memcmp((void *)slab_addr(&off, 3),
	    (void *)slab_addr(&seg, 3), 3 * SHM_SLAB_SIZE), 0);
	ck_assert_str_eq(off.roots[0].name, "list");
	ck_assert_uint_eq(atomic_load(&off.roots[0].value), blocks[7]);
	/* What was never in use was not written: a small file. */
	ck_assert_uint_lt(info.bytes, meta_end() + 6 *
	    (SHM_SLAB_SIZE + SHM_SIDE_BYTES + SHM_BITMAP_BYTES));
	image_unload_offline(&off);
	img_down();
}
END_TEST

START_TEST(image_every_flip_detected)
{
	struct image_info info;
	struct shm_seg off;
	struct stat st;
	char err[512];
	uint8_t *b, r;
	size_t len, i, n = 0;

	img_up();
	write_image();
	b = file_slurp(path, &len);
	/* Every byte of the headers and trailers, a stride through the
	 * payloads: each flip must be refused, and the reader must never
	 * write the file. */
	for (i = 0; i < len; i += (i < 4096 || len - i < 64) ? 1 : 61) {
		r = (uint8_t)(1u << (i % 8));
		b[i] ^= r;
		file_spit(path, b, len);
		ck_assert_msg(image_load_offline(path, &off, &info, err,
		    sizeof(err)) == -EUCLEAN, "flip at %zu not detected", i);
		ck_assert_msg(strstr(err, path) != NULL &&
		    (strstr(err, "section") != NULL ||
		    strstr(err, "header") != NULL), "%s", err);
		b[i] ^= r;
		n++;
	}
	ck_assert_uint_gt(n, 5000);
	file_spit(path, b, len);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq((size_t)st.st_size, len);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), 0);
	image_unload_offline(&off);
	free(b);
	img_down();
}
END_TEST

START_TEST(image_every_truncation_detected)
{
	struct image_info info;
	struct shm_seg off;
	char err[512];
	uint8_t *b;
	size_t len, cut;

	img_up();
	write_image();
	b = file_slurp(path, &len);
	for (cut = 0; cut < len; cut += cut < 256 || len - cut < 256 ? 1 :
	    4093) {
		file_spit(path, b, cut);
		ck_assert_msg(image_load_offline(path, &off, &info, err,
		    sizeof(err)) == -EUCLEAN, "cut at %zu not detected", cut);
	}
	/* A longer file (garbage appended) is refused too. */
	b = realloc(b, len + 3);
	memset(b + len, 0, 3);
	file_spit(path, b, len + 3);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, "garbage") != NULL, "%s", err);
	free(b);
	img_down();
}
END_TEST

START_TEST(image_refuses_foreign_files)
{
	struct image_info info;
	struct shm_seg off;
	char err[512];
	uint8_t b[256];

	img_up();
	memset(b, 'x', sizeof(b));
	file_spit(path, b, sizeof(b));
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, "bad magic") != NULL, "%s", err);
	file_spit(path, b, 0);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, "truncated") != NULL, "%s", err);
	ck_assert_int_eq(image_load_offline("/nonexistent/heap.img", &off,
	    &info, err, sizeof(err)), -ENOENT);
	img_down();
}
END_TEST

/* A delta of seg after the base or delta whose digest is parent: only
 * the slabs whose hash differs from prev (image_scan() fills next). */
static uint64_t
write_delta(uint32_t seq, uint64_t gen, uint64_t base_gen,
    uint64_t parent_gen, uint64_t parent, const uint64_t *prev,
    uint64_t *next, uint64_t *slabs)
{
	struct image_spec sp;
	struct image_out o;
	uint64_t changed;
	char name[64];

	ck_assert_int_eq(image_scan(&seg, seg.slabs, prev, next, NULL,
	    &changed), 0);
	spec_of(&sp, gen);
	sp.kind = IMAGE_DELTA;
	sp.seq = seq;
	sp.base_generation = base_gen;
	sp.parent_generation = parent_gen;
	sp.parent_digest = parent;
	sp.prev = prev;
	sp.next = next;
	snprintf(name, sizeof(name), "heap.img.delta.%u", seq);
	commit_spec(name, &sp, &o);
	ck_assert_uint_eq(o.slabs, changed);
	if (slabs != NULL)
		*slabs = o.slabs;
	return o.digest;
}

/* Changes between the base and the delta: a block rewritten, the extent
 * freed (its bytes left behind, as a reader must not keep them), a block
 * in the empty slab. */
static void
change_heap(void)
{
	uint32_t hint = 0;
	long b;

	memset((void *)blocks[3], 'Z', 60);
	atomic_store(&seg.slabs[3].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	atomic_store(&seg.slabs[4].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	atomic_store(&seg.slabs[5].word, SHM_SLAB_WORD(SHM_FREE, 0, 0));
	seg.slabs[3].run = seg.slabs[4].run = seg.slabs[5].run = 0;
	seg.slabs[3].req = 0;
	b = slab_claim_one(&seg, 100, 7, &hint);
	ck_assert_int_ge(b, 0);
	slab_set_live(&seg, 100, (uint32_t)b, 7, 100);
	memset((void *)slab_addr(&seg, 100), 'N', 100);
}

START_TEST(image_delta_roundtrip)
{
	uint64_t *h0, *h1, d0, slabs;
	struct image_out o;
	struct image_info info;
	struct shm_seg off;
	char err[512], dpath[160];
	struct stat sb, sd;
	uint64_t i;

	img_up();
	h0 = calloc(seg.nslabs, 8);
	h1 = calloc(seg.nslabs, 8);
	write_full("heap.img", 7, h0, &o);
	d0 = o.digest;
	change_heap();
	write_delta(1, 8, 7, 7, d0, h0, h1, &slabs);
	ck_assert_uint_eq(slabs, 2);	/* slab 0 and slab 100 */
	ck_assert_msg(image_load_offline(path, &off, &info, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(info.links, 1);
	ck_assert_uint_eq(info.hdr.generation, 8);
	ck_assert_uint_eq(info.base_generation, 7);
	ck_assert_msg(shm_check(&off, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(memcmp((void *)(blocks[3] - seg.data + off.data),
	    (void *)blocks[3], 60), 0);
	ck_assert_int_eq(memcmp((void *)slab_addr(&off, 100),
	    (void *)slab_addr(&seg, 100), SHM_SLAB_SIZE), 0);
	for (i = 0; i < 3 * SHM_SLAB_SIZE; i++)
		ck_assert_msg(((uint8_t *)slab_addr(&off, 3))[i] == 0,
		    "freed extent byte %" PRIu64 " kept", i);
	image_unload_offline(&off);
	snprintf(dpath, sizeof(dpath), "%s.delta.1", path);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(stat(dpath, &sd), 0);
	/* The base carries five slabs, the delta two. */
	ck_assert_uint_le((uint64_t)sd.st_size + 3 * SHM_SLAB_SIZE,
	    (uint64_t)sb.st_size);
	/* Nothing changed since: a scan finds nothing to write. */
	ck_assert_int_eq(image_scan(&seg, seg.slabs, h1, h0, NULL, &i), 0);
	ck_assert_uint_eq(i, 0);
	free(h0);
	free(h1);
	img_down();
}
END_TEST

/* Every flip in a delta, and every cut of it, refused with the delta
 * named; the files are never written. */
START_TEST(image_delta_flips_refused)
{
	uint64_t *h0, *h1;
	struct image_out o;
	struct image_info info;
	struct shm_seg off;
	char err[512], dpath[160];
	uint8_t *b, r;
	size_t len, i, n = 0;

	img_up();
	h0 = calloc(seg.nslabs, 8);
	h1 = calloc(seg.nslabs, 8);
	write_full("heap.img", 7, h0, &o);
	change_heap();
	write_delta(1, 8, 7, 7, o.digest, h0, h1, NULL);
	snprintf(dpath, sizeof(dpath), "%s.delta.1", path);
	b = file_slurp(dpath, &len);
	for (i = 0; i < len; i += (i < 4096 || len - i < 64) ? 1 : 97) {
		r = (uint8_t)(1u << (i % 8));
		b[i] ^= r;
		file_spit(dpath, b, len);
		ck_assert_msg(image_load_offline(path, &off, &info, err,
		    sizeof(err)) == -EUCLEAN, "flip at %zu not detected", i);
		ck_assert_msg(strstr(err, dpath) != NULL, "%s", err);
		b[i] ^= r;
		n++;
	}
	ck_assert_uint_gt(n, 4000);
	for (i = 0; i < len; i += i < 128 || len - i < 128 ? 1 : 4093) {
		file_spit(dpath, b, i);
		ck_assert_msg(image_load_offline(path, &off, &info, err,
		    sizeof(err)) == -EUCLEAN, "cut at %zu not detected", i);
		ck_assert_msg(strstr(err, dpath) != NULL, "%s", err);
	}
	file_spit(dpath, b, len);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(info.links, 1);
	image_unload_offline(&off);
	free(b);
	free(h0);
	free(h1);
	img_down();
}
END_TEST

/* Two images of the same heap spliced (one's header and metadata, the
 * other's runs and end, every section's own checksum intact) are refused;
 * so is a delta put after a base it was not written after; a delta of an
 * older base is stale and ends the chain. */
START_TEST(image_splice_refused)
{
	uint64_t *h0, *h1, d7;
	struct image_out o;
	struct image_info info;
	struct shm_seg off;
	char err[512], dpath[160];
	uint8_t *a, *b, *sp, *dl;
	size_t la, lb, ld, cut;

	img_up();
	h0 = calloc(seg.nslabs, 8);
	h1 = calloc(seg.nslabs, 8);
	write_full("heap.img", 7, h0, &o);
	d7 = o.digest;
	a = file_slurp(path, &la);
	change_heap();
	write_full("heap.img", 8, NULL, NULL);
	b = file_slurp(path, &lb);
	/* After the META section, as long as the roots in use make it. */
	cut = sizeof(struct image_header) + sizeof(struct image_section) +
	    ((const struct image_header *)a)->meta_len + 8;
	ck_assert_uint_lt(cut, la);
	sp = malloc(lb);
	memcpy(sp, a, cut);
	memcpy(sp + cut, b + cut, lb - cut);
	file_spit(path, sp, lb);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, "section 1") != NULL &&
	    strstr(err, "checksum mismatch") != NULL, "%s", err);
	/* Whole sections moved with their hashes recomputed for the new
	 * header: the end marker's digest still tells. */
	image_reseal(sp, cut);
	file_spit(path, sp, lb);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);

	/* A delta of base 7 (digest d7) after another base 7. */
	file_spit(path, a, la);
	write_delta(1, 8, 7, 7, d7, h0, h1, NULL);
	snprintf(dpath, sizeof(dpath), "%s.delta.1", path);
	dl = file_slurp(dpath, &ld);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), 0);
	image_unload_offline(&off);
	write_full("heap.img", 7, NULL, NULL);	/* same generation, new time */
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, "does not follow") != NULL &&
	    strstr(err, dpath) != NULL, "%s", err);
	/* A newer base: the delta is stale, the base alone loads. */
	write_full("heap.img", 9, NULL, NULL);
	ck_assert_msg(image_load_offline(path, &off, &info, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(info.links, 0);
	ck_assert_uint_eq(info.stale, 1);
	ck_assert_uint_eq(info.hdr.generation, 9);
	image_unload_offline(&off);
	/* A delta where the base belongs. */
	file_spit(path, dl, ld);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, "not a whole image") != NULL, "%s", err);
	free(a);
	free(b);
	free(sp);
	free(dl);
	free(h0);
	free(h1);
	img_down();
}
END_TEST

/* A delta missing from the middle of a chain is refused, naming it: the
 * deltas after it cannot stand without it. */
START_TEST(image_missing_link_refused)
{
	uint64_t *h0, *h1, d;
	struct image_out o;
	struct image_info info;
	struct shm_seg off;
	char err[512], d1[160], moved[170];

	img_up();
	h0 = calloc(seg.nslabs, 8);
	h1 = calloc(seg.nslabs, 8);
	write_full("heap.img", 7, h0, &o);
	change_heap();
	d = write_delta(1, 8, 7, 7, o.digest, h0, h1, NULL);
	memset((void *)blocks[5], 'F', 60);
	write_delta(2, 9, 7, 8, d, h1, h0, NULL);
	ck_assert_msg(image_load_offline(path, &off, &info, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(info.links, 2);
	ck_assert_uint_eq(info.hdr.generation, 9);
	ck_assert_int_eq(memcmp((void *)(blocks[5] - seg.data + off.data),
	    (void *)blocks[5], 60), 0);
	image_unload_offline(&off);
	snprintf(d1, sizeof(d1), "%s.delta.1", path);
	snprintf(moved, sizeof(moved), "%s.moved", d1);
	ck_assert_int_eq(rename(d1, moved), 0);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, d1) != NULL && strstr(err, "missing") !=
	    NULL, "%s", err);
	ck_assert_int_eq(rename(moved, d1), 0);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), 0);
	image_unload_offline(&off);
	free(h0);
	free(h1);
	img_down();
}
END_TEST

Suite *
image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("image");

	tcase_add_test(tc, image_write_read_roundtrip);
	tcase_add_test(tc, image_every_flip_detected);
	tcase_add_test(tc, image_every_truncation_detected);
	tcase_add_test(tc, image_refuses_foreign_files);
	tcase_add_test(tc, image_delta_roundtrip);
	tcase_add_test(tc, image_delta_flips_refused);
	tcase_add_test(tc, image_splice_refused);
	tcase_add_test(tc, image_missing_link_refused);
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	return s;
}
