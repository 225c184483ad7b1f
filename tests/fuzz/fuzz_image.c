/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.c: the image loader on hostile files.
 *
 * The input, less its first byte, is an image file.  It is read with
 * image_read() into scratch memory, as `aclheapctl verify IMAGE` does, and
 * an image that loads is then checked twice: by shm_check() as it is, and
 * after heap_rebuild(), in the order heap_open() runs them when the daemon
 * starts on an image.  Neither may fault, whatever the image says.  The
 * reader must store bytes only inside the segment the header describes and
 * must name the file in every refusal.
 *
 * The first byte says how the rest is read:
 *
 *   bit 0  fix checksums: checksums would stop nearly every mutation at
 *          the first hash, so the harness recomputes each one it can find
 *          (header, section headers, payloads) and the mutations reach the
 *          structure behind them
 *   bit 1  patch mode: the rest is not a file but edits of a valid image
 *          (seed_image.c), each | offset (4 bytes, LE) | n | n bytes |;
 *          the offset is into the metadata section (superblock, roots,
 *          slab table: images carry no lease records), or into the whole
 *          file when its top bit is set.
 *          Checksums are then always fixed.  A few bytes of input reach
 *          any field of a 200 KB image, which whole-file mutation rarely
 *          does.
 *
 * Heaps are limited to 64 MiB here: a hostile header may describe 16 TiB,
 * which the reader accepts as a size and which only costs time to check.
 */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_SIZE_MAX	(UINT64_C(64) << 20)
#define FUZZ_PATH	"fuzz.img"

uint64_t fuzz_image_loaded, fuzz_image_checked;

struct scratch {
	uint8_t *mem;
	uint64_t size;
};

static void
die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_image: %s%s%s\n", what, detail ? ": " : "",
	    detail ? detail : "");
	abort();
}

static int
put_checked(void *ctx, uint64_t off, const void *p, size_t n, int over)
{
	struct scratch *s = ctx;

	(void)over;
	if (off > s->size || n > s->size - off)
		die("image_read stores bytes outside the segment", NULL);
	if (p == NULL)
		memset(s->mem + off, 0, n);
	else
		memcpy(s->mem + off, p, n);
	return 0;
}

static void
fix_hashes(uint8_t *b, size_t len)
{
	image_reseal(b, len);
}

/* The seed image edited as the patch list says.  0, or -1 for no image. */
static int
apply_patches(const uint8_t *p, size_t n, uint8_t **out, size_t *outlen)
{
	static uint8_t *seed;
	static size_t seedlen;
	const size_t meta_at = sizeof(struct image_header) +
	    sizeof(struct image_section);
	struct image_header h;
	uint32_t off;
	size_t len, at, k;
	uint8_t *b;

	if (seed == NULL && fuzz_seed_image(1, 0, &seed, &seedlen) != 0)
		die("cannot make the seed image", NULL);
	if ((b = malloc(seedlen)) == NULL)
		return -1;
	memcpy(b, seed, seedlen);
	memcpy(&h, b, sizeof(h));
	while (n >= 5) {
		off = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
		    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		len = p[4];
		p += 5;
		n -= 5;
		if (len > n)
			len = n;
		if (off & 0x80000000u)
			at = (off & 0x7fffffffu) % seedlen;
		else
			at = meta_at + off % h.meta_len;
		for (k = 0; k < len && at + k < seedlen; k++)
			b[at + k] = p[k];
		p += len;
		n -= len;
	}
	*out = b;
	*outlen = seedlen;
	return 0;
}

/* heap_open()'s order: rebuild the derived state, then check. */
static void
rebuild_and_check(const struct shm_seg *seg)
{
	struct heap h;
	char err[1024];

	memset(&h, 0, sizeof(h));
	h.seg = *seg;
	if (heap_rebuild(&h) == 0)
		(void)shm_check_still(&h.seg, NULL, err, sizeof(err));
	/* Not heap_close(): the scratch is not mapped at the heap's base. */
	heap_forget(&h);
}

int
fuzz_image_one(const uint8_t *data, size_t size)
{
	struct image_header h;
	struct image_info info;
	struct scratch sc = { NULL, 0 };
	struct shm_seg seg;
	char err[1024];
	uint8_t *b = NULL;
	size_t blen;
	int fd = -1, rc;

	if (size < 1)
		return 0;
	log_init(LOG_CRIT, 1);	/* heap_rebuild() says why it refuses */
	if (data[0] & 2) {
		if (apply_patches(data + 1, size - 1, &b, &blen) != 0)
			return 0;
		fix_hashes(b, blen);
	} else {
		if ((b = malloc(size)) == NULL)
			return 0;
		blen = size - 1;
		memcpy(b, data + 1, blen);
		if (data[0] & 1)
			fix_hashes(b, blen);
	}
	if ((fd = memfd_create("fuzz-image", MFD_CLOEXEC)) == -1)
		die("memfd_create", strerror(errno));
	if (blen > 0 && write(fd, b, blen) != (ssize_t)blen)
		die("write", strerror(errno));
	/* What image_load_offline() does, with a put that checks bounds. */
	if (lseek(fd, 0, SEEK_SET) != 0)
		die("lseek", strerror(errno));
	if (image_read_header(fd, &h, err, sizeof(err)) != 0 ||
	    h.size < SHM_SIZE_MIN || h.max_size > FUZZ_SIZE_MAX ||
	    h.size > h.max_size)
		goto out;
	sc.size = h.max_size;
	sc.mem = mmap(NULL, h.max_size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (sc.mem == MAP_FAILED)
		die("mmap", strerror(errno));
	err[0] = '\0';
	rc = image_read(fd, FUZZ_PATH, put_checked, &sc, &info, err,
	    sizeof(err));
	if (rc != 0) {
		if (rc != -ENOMEM && strstr(err, FUZZ_PATH) == NULL)
			die("a refusal does not name the file", err);
		goto out;
	}
	seg_bind_max(&seg, sc.mem, (uintptr_t)h.base, h.size, h.max_size);
	image_settle(&seg);	/* as every reader does */
	fuzz_image_loaded++;
	if (shm_check_still(&seg, NULL, err, sizeof(err)) == 0)
		fuzz_image_checked++;
	rebuild_and_check(&seg);
out:
	if (sc.mem != NULL && sc.mem != MAP_FAILED)
		munmap(sc.mem, sc.size);
	if (fd >= 0)
		close(fd);
	free(b);
	return 0;
}

FUZZ_ENTRY(fuzz_image_one)
