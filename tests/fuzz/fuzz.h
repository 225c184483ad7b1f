/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h: the fuzz harnesses' entry points.
 *
 * Each harness is one function from an input to a verdict: it returns 0,
 * and anything wrong (a fault, a sanitizer report, a broken invariant) ends
 * the process.  Built with -DFUZZ_LIBFUZZER (./configure --enable-fuzzing)
 * a harness also defines LLVMFuzzerTestOneInput and becomes a libFuzzer
 * program; built without, tests/check_fuzz.c calls the same function on the
 * seed corpora and on every input that once crashed (tests/fuzz/regress/),
 * so each finding stays fixed in an ordinary `make check`.
 */
#ifndef ACLHEAP_FUZZ_H
#define ACLHEAP_FUZZ_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * The counters say how far inputs got, so a replay can tell a seed that
 * reaches deep from one that is refused at its first byte.
 */

/* tests/fuzz/fuzz_frame.c: framing, then decoding as Request and Reply */
int	 fuzz_frame_one(const uint8_t *, size_t);
extern uint64_t fuzz_frame_decoded;	/* frames decoded as either */

/* tests/fuzz/fuzz_dispatch.c: one connection's bytes through the daemon */
int	 fuzz_dispatch_one(const uint8_t *, size_t);
extern uint64_t fuzz_dispatch_replies;	/* replies read */
extern uint64_t fuzz_dispatch_served;	/* of which without an error */

/* tests/fuzz/fuzz_live.c: writes into a live heap's client-writable
 * memory between requests */
int	 fuzz_live_one(const uint8_t *, size_t);
extern uint64_t fuzz_live_requests;	/* requests sent */
extern uint64_t fuzz_live_answered;	/* of which answered without error */
extern uint64_t fuzz_live_writes;	/* writes into the segment */

/* tests/fuzz/fuzz_image.c: an image file through the loader */
int	 fuzz_image_one(const uint8_t *, size_t);
extern uint64_t fuzz_image_loaded;	/* images that loaded */
extern uint64_t fuzz_image_checked;	/* of which passed shm_check() */

/* tests/fuzz/seed_image.c: a valid 4 MiB heap image, malloc'd; delta:
 * as the first delta of a chain (carrying every slab in use).  A filled
 * one has FUZZ_SEED_ROOTS roots, which its META section carries before
 * the slab table. */
#define FUZZ_SEED_ROOTS	2
int	 fuzz_seed_image(int filled, int delta, uint8_t **, size_t *);

/*
 * Removes a harness's scratch state folder with whatever the daemon wrote
 * there (images, deltas, a saved damaged segment): at exit, so that runs
 * leave nothing behind in /dev/shm.
 */
static inline void
fuzz_remove_dir(const char *dir)
{
	char path[4200];
	struct dirent *e;
	DIR *d;

	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

#ifdef FUZZ_LIBFUZZER
int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
#define FUZZ_ENTRY(fn)							\
int									\
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)		\
{									\
	return fn(data, size);						\
}
#else
#define FUZZ_ENTRY(fn)
#endif

#endif /* ACLHEAP_FUZZ_H */
