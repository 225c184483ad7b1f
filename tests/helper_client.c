/* SPDX-License-Identifier: MIT */
/*
 * helper_client.c: a client process for the integration tests, linked with
 * the installed-style shared library (libaclheap.so.1) and nothing else.
 *
 *   helper_client fill ROOT N SEED     N blocks with patterns, an index
 *                                      block, and the root ROOT -> index
 *   helper_client check ROOT SEED      every block of ROOT's index has its
 *                                      pattern at the same address
 *   helper_client free ROOT            frees ROOT's blocks and the root
 *   helper_client churn MS SEED        allocate/free/check for MS ms
 *   helper_client hold                 allocates forever (to be killed)
 *   helper_client addr ROOT            prints ROOT's value
 *
 * Exit 0 when everything checked out; 1 with a message on stderr when not.
 */
#include <aclheap.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct entry {
	unsigned char *p;
	uint64_t size;
};

struct index {
	uint64_t n;
	uint64_t seed;
	struct entry e[];
};

static uint64_t rng;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned char
pattern(uint64_t seed, uint64_t i, uint64_t j)
{
	return (unsigned char)(seed * 31 + i * 7 + j + (j >> 8));
}

static int
fill_block(unsigned char *p, uint64_t size, uint64_t seed, uint64_t i)
{
	uint64_t j;

	for (j = 0; j < size; j++)
		p[j] = pattern(seed, i, j);
	return 0;
}

static int
check_block(const unsigned char *p, uint64_t size, uint64_t seed, uint64_t i)
{
	uint64_t j;

	for (j = 0; j < size; j++)
		if (p[j] != pattern(seed, i, j)) {
			fprintf(stderr, "block %" PRIu64 " at %p: byte %" PRIu64
			    " is %u, want %u\n", i, (void *)p, j, p[j],
			    pattern(seed, i, j));
			return -1;
		}
	return 0;
}

static uint64_t
pick_size(void)
{
	uint64_t r = next() % 100;

	if (r < 60)
		return next() % 129;		/* tiny, 0 included */
	if (r < 95)
		return 129 + next() % 8000;	/* small classes */
	return 8193 + next() % 200000;		/* extents */
}

static int
cmd_fill(const char *root, uint64_t n, uint64_t seed)
{
	struct index *ix;
	uint64_t i;

	rng = seed | 1;
	ix = aclmalloc(sizeof(*ix) + n * sizeof(ix->e[0]));
	if (ix == NULL) {
		fprintf(stderr, "index: %s\n", aclheap_last_error());
		return 1;
	}
	ix->n = n;
	ix->seed = seed;
	for (i = 0; i < n; i++) {
		ix->e[i].size = pick_size();
		ix->e[i].p = aclmalloc(ix->e[i].size);
		if (ix->e[i].p == NULL) {
			fprintf(stderr, "block %" PRIu64 ": %s\n", i,
			    aclheap_last_error());
			return 1;
		}
		fill_block(ix->e[i].p, ix->e[i].size, seed, i);
	}
	if (aclheap_root_set(root, ix) != 0) {
		fprintf(stderr, "root: %s\n", aclheap_last_error());
		return 1;
	}
	printf("%p\n", (void *)ix);
	return 0;
}

static int
cmd_check(const char *root, uint64_t seed)
{
	struct index *ix;
	uint64_t i;

	ix = aclheap_root_get(root);
	if (ix == NULL) {
		fprintf(stderr, "root %s: %s\n", root, aclheap_last_error());
		return 1;
	}
	if (ix->seed != seed) {
		fprintf(stderr, "index seed %" PRIu64 "\n", ix->seed);
		return 1;
	}
	for (i = 0; i < ix->n; i++) {
		if (aclheap_usable_size(ix->e[i].p) < ix->e[i].size) {
			fprintf(stderr, "block %" PRIu64 " at %p is not live\n",
			    i, (void *)ix->e[i].p);
			return 1;
		}
		if (check_block(ix->e[i].p, ix->e[i].size, seed, i) != 0)
			return 1;
	}
	printf("%" PRIu64 " blocks ok\n", ix->n);
	return 0;
}

static int
cmd_free(const char *root)
{
	struct index *ix;
	uint64_t i;
	size_t got;

	if ((ix = aclheap_root_get(root)) == NULL) {
		fprintf(stderr, "root %s: %s\n", root, aclheap_last_error());
		return 1;
	}
	for (i = 0; i < ix->n; i++) {
		errno = 0;
		got = aclfree(ix->e[i].p);
		if (got != ix->e[i].size || errno != 0) {
			fprintf(stderr, "free of block %" PRIu64 " returned %zu, "
			    "want %" PRIu64 ": %s\n", i, got, ix->e[i].size,
			    aclheap_last_error());
			return 1;
		}
	}
	aclfree(ix);
	return aclheap_root_remove(root) == 0 ? 0 : 1;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A ring of live blocks, replaced at random, each checked before its free:
 * no wrong byte, and aclfree always returns what was asked. */
static int
cmd_churn(uint64_t ms, uint64_t seed)
{
	enum { RING = 512 };
	static struct entry ring[RING];
	static uint64_t tag[RING];
	uint64_t end = now_ms() + ms, ops = 0, i, k = 0;
	size_t got;

	rng = seed | 1;
	while (now_ms() < end) {
		for (i = 0; i < 256; i++, ops++) {
			k = next() % RING;
			if (ring[k].p != NULL) {
				if (check_block(ring[k].p, ring[k].size, seed,
				    tag[k]) != 0)
					return 1;
				got = aclfree(ring[k].p);
				if (got != ring[k].size) {
					fprintf(stderr, "aclfree returned %zu, "
					    "want %" PRIu64 ": %s\n", got,
					    ring[k].size, aclheap_last_error());
					return 1;
				}
			}
			ring[k].size = next() % 2000;
			ring[k].p = aclmalloc(ring[k].size);
			if (ring[k].p == NULL) {
				fprintf(stderr, "aclmalloc(%" PRIu64 "): %s\n",
				    ring[k].size, aclheap_last_error());
				return 1;
			}
			tag[k] = ops;
			fill_block(ring[k].p, ring[k].size, seed, ops);
		}
	}
	for (k = 0; k < RING; k++) {
		if (ring[k].p == NULL)
			continue;
		if (check_block(ring[k].p, ring[k].size, seed, tag[k]) != 0 ||
		    aclfree(ring[k].p) != ring[k].size)
			return 1;
	}
	printf("ops %" PRIu64 "\n", ops);
	return 0;
}

static int
cmd_hold(void)
{
	unsigned char *p;

	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if ((p = aclmalloc(100)) != NULL)
			memset(p, 0x5a, 100);
		if ((p = aclmalloc(20000)) != NULL) {
			memset(p, 0x5b, 20000);
			aclfree(p);
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "fill") == 0)
		return cmd_fill(argv[2], strtoull(argv[3], NULL, 0),
		    strtoull(argv[4], NULL, 0));
	if (argc == 4 && strcmp(argv[1], "check") == 0)
		return cmd_check(argv[2], strtoull(argv[3], NULL, 0));
	if (argc == 3 && strcmp(argv[1], "free") == 0)
		return cmd_free(argv[2]);
	if (argc == 4 && strcmp(argv[1], "churn") == 0)
		return cmd_churn(strtoull(argv[2], NULL, 0),
		    strtoull(argv[3], NULL, 0));
	if (argc == 2 && strcmp(argv[1], "hold") == 0)
		return cmd_hold();
	if (argc == 3 && strcmp(argv[1], "addr") == 0) {
		void *p = aclheap_root_get(argv[2]);

		if (p == NULL) {
			fprintf(stderr, "root %s: %s\n", argv[2],
			    aclheap_last_error());
			return 1;
		}
		printf("%p\n", p);
		return 0;
	}
	fprintf(stderr, "usage: helper_client fill|check|free|churn|hold|addr "
	    "...\n");
	return 2;
}
