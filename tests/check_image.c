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
	/* Slab 0: forty 64-byte blocks with patterns.  Slabs 3-5: an
	 * extent.  Slab 100: an empty small slab.  A root. */
	atomic_store(&seg.slabs[0].word, SHM_SLAB_WORD(SHM_SMALL, 3, 0));
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
	strcpy(seg.roots[0].name, "list");
	atomic_store(&seg.roots[0].value, blocks[7]);
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

/* A whole image of seg (kind FULL) at generation gen into dir/name; the
 * per-slab hashes into next if not NULL. */
static void
write_full(const char *name, uint64_t gen, uint64_t *next,
    struct image_out *out)
{
	struct image_spec sp;
	struct image_out o;
	uint64_t len = seg.sb->bitmaps_off;
	uint8_t *meta;
	char err[512], tmp[64];
	int fd;

	meta = malloc(len);
	memcpy(meta, seg.sb, len);
	memset(&sp, 0, sizeof(sp));
	sp.seg = &seg;
	sp.identity = id;
	sp.meta = meta;
	sp.meta_len = len;
	sp.generation = gen;
	sp.time = 1000 + gen;
	sp.next = next;
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	ck_assert_int_eq(image_writer_open(dir, tmp, &fd, err, sizeof(err)),
	    0);
	ck_assert_int_eq(image_write(fd, &sp, out != NULL ? out : &o), 0);
	ck_assert_msg(image_commit(fd, dir, tmp, name, err, sizeof(err)) == 0,
	    "%s", err);
	free(meta);
}

static void
write_image(void)
{
	struct image_out o;

	write_full("heap.img", 7, NULL, &o);
	ck_assert_uint_eq(o.slabs, 5);	/* 0, 3-5, 100 */
}

static uint8_t *
slurp(size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd;

	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size);
	ck_assert_int_eq(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void
spit(const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, b, len), (ssize_t)len);
	close(fd);
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
	ck_assert_uint_lt(info.bytes, seg.sb->bitmaps_off + 6 *
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
	b = slurp(&len);
	/* Every byte of the headers and trailers, a stride through the
	 * payloads: each flip must be refused, and the reader must never
	 * write the file. */
	for (i = 0; i < len; i += (i < 4096 || len - i < 64) ? 1 : 61) {
		r = (uint8_t)(1u << (i % 8));
		b[i] ^= r;
		spit(b, len);
		ck_assert_msg(image_load_offline(path, &off, &info, err,
		    sizeof(err)) == -EUCLEAN, "flip at %zu not detected", i);
		ck_assert_msg(strstr(err, path) != NULL &&
		    (strstr(err, "section") != NULL ||
		    strstr(err, "header") != NULL), "%s", err);
		b[i] ^= r;
		n++;
	}
	ck_assert_uint_gt(n, 5000);
	spit(b, len);
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
	b = slurp(&len);
	for (cut = 0; cut < len; cut += cut < 256 || len - cut < 256 ? 1 :
	    4093) {
		spit(b, cut);
		ck_assert_msg(image_load_offline(path, &off, &info, err,
		    sizeof(err)) == -EUCLEAN, "cut at %zu not detected", cut);
	}
	/* A longer file (garbage appended) is refused too. */
	b = realloc(b, len + 3);
	memset(b + len, 0, 3);
	spit(b, len + 3);
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
	spit(b, sizeof(b));
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, "bad magic") != NULL, "%s", err);
	spit(b, 0);
	ck_assert_int_eq(image_load_offline(path, &off, &info, err,
	    sizeof(err)), -EUCLEAN);
	ck_assert_msg(strstr(err, "truncated") != NULL, "%s", err);
	ck_assert_int_eq(image_load_offline("/nonexistent/heap.img", &off,
	    &info, err, sizeof(err)), -ENOENT);
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
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	return s;
}
