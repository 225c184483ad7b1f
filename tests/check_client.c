/* SPDX-License-Identifier: MIT */
/*
 * check_client.c: the C API against a real daemon: every function, every
 * row of the bad-input table (documented error, heap unchanged), several
 * processes sharing blocks at the same addresses, fork, threads, and the
 * fixed range refused when it is taken.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aclheap.h"
#include "client/client.h"
#include "tests/testutil.h"

static struct td td;

static void
up(void)
{
	td_init(&td, "client");
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
}

static void
down(void)
{
	td_cleanup(&td);
}

static void
heap_ok(void)
{
	char err[512];

	ck_assert(conn_mapped);
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
}

static uint64_t
live_blocks(void)
{
	struct aclheap_stats st;

	ck_assert_int_eq(aclheap_stats(&st), 0);
	return st.blocks_in_use;
}

START_TEST(aclmalloc_sizes)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 1000, 8192,
	    8193, 65536, 65537, 1 << 20, 5 << 20 };
	void *p[sizeof(sizes) / sizeof(sizes[0])];
	size_t i, j;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p[i] = aclmalloc(sizes[i]);
		ck_assert_msg(p[i] != NULL, "%zu: %s", sizes[i],
		    aclheap_last_error());
		ck_assert_uint_eq((uintptr_t)p[i] % 16, 0);
		ck_assert(aclheap_contains(p[i]));
		ck_assert_uint_ge(aclheap_usable_size(p[i]), sizes[i]);
		memset(p[i], (int)i, sizes[i]);
		for (j = 0; j < i; j++)
			ck_assert_ptr_ne(p[i], p[j]);
	}
	heap_ok();
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		errno = 0;
		ck_assert_uint_eq(aclfree(p[i]), sizes[i]);
		ck_assert_int_eq(errno, 0);
	}
	ck_assert_uint_eq(live_blocks(), 0);
	heap_ok();
}
END_TEST

START_TEST(aclmalloc_zero_unique)
{
	void *a = aclmalloc(0), *b = aclmalloc(0);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	errno = 0;
	ck_assert_uint_eq(aclfree(a), 0);
	ck_assert_int_eq(errno, 0);		/* a size-0 block, not an error */
	errno = 0;
	ck_assert_uint_eq(aclfree(a), 0);
	ck_assert_int_eq(errno, EINVAL);	/* already freed */
	ck_assert_uint_eq(aclfree(b), 0);
}
END_TEST

START_TEST(aclmalloc_flags_table)
{
	void *p;

	p = aclmalloc_flags(10, ACLHEAP_RESTART_RELOCATION);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(aclfree(p), 10);
	errno = 0;
	ck_assert_ptr_null(aclmalloc_flags(10, 0x2));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(aclmalloc_flags(10, ~0u));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), "flags"));
}
END_TEST

/* Every way to pass aclfree something that is not a live block: 0,
 * EINVAL, and the block next door untouched. */
START_TEST(aclfree_bad_pointers)
{
	unsigned char *p = aclmalloc(100), *big = aclmalloc(100000);
	uint64_t before;
	int local;

	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(big);
	memset(p, 0x77, 100);
	before = live_blocks();
	ck_free_refused(NULL);
	ck_free_refused(&local);		/* not in the heap */
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), "not inside"));
	ck_free_refused(p + 16);		/* inside a block */
	ck_free_refused(p + 1);
	ck_free_refused(big + 65536);	/* inside an extent */
	ck_free_refused((void *)conn_seg.base);	/* metadata */
	ck_assert_uint_eq(live_blocks(), before);
	ck_assert_uint_eq(aclheap_usable_size(p), 112);
	ck_assert_uint_eq(p[0], 0x77);
	ck_assert_uint_eq(p[99], 0x77);
	ck_assert_uint_eq(aclfree(p), 100);
	ck_free_refused(p);		/* double free */
	ck_assert_uint_eq(aclfree(big), 100000);
	ck_free_refused(big);		/* double, extent */
	ck_assert_uint_eq(live_blocks(), before - 2);
	heap_ok();
}
END_TEST

START_TEST(aligned_conversions)
{
	intptr_t a;
	void *p;

	ck_assert_int_eq(aclheap_address_to_aligned(0x10000008), 33554433);
	ck_assert_uint_eq(aclheap_aligned_to_address(33554433), 0x10000008);
	ck_assert_int_eq(aclheap_address_to_aligned(0), 0);
	ck_assert_int_eq(aclheap_address_to_aligned(UINTPTR_MAX - 7), -1);
	ck_assert_uint_eq(aclheap_aligned_to_address(-1), UINTPTR_MAX - 7);
	errno = 0;
	ck_assert_int_eq(aclheap_address_to_aligned(0x10000004), 0);
	ck_assert_int_eq(errno, EINVAL);
	a = aclmalloc_aligned(48);
	ck_assert_int_ne(a, 0);
	p = (void *)aclheap_aligned_to_address(a);
	ck_assert(aclheap_contains(p));
	ck_assert_uint_eq(aclheap_usable_size(p), 48);
	/* Either family frees either family's blocks. */
	ck_assert_uint_eq(aclfree_aligned(a), 48);
	errno = 0;
	ck_assert_uint_eq(aclfree_aligned(a), 0);
	ck_assert_int_eq(errno, EINVAL);
	p = aclmalloc(33);
	ck_assert_uint_eq(aclfree_aligned(aclheap_address_to_aligned(
	    (uintptr_t)p)), 33);
	a = aclmalloc_aligned(20000);
	ck_assert_uint_eq(aclfree((void *)aclheap_aligned_to_address(a)),
	    20000);
}
END_TEST

START_TEST(aclcalloc_zero_and_overflow)
{
	unsigned char *p;
	size_t i;

	p = aclmalloc(500);
	memset(p, 0xff, 500);
	ck_assert_uint_eq(aclfree(p), 500);
	p = aclcalloc(5, 100);
	ck_assert_ptr_nonnull(p);
	for (i = 0; i < 500; i++)
		ck_assert_uint_eq(p[i], 0);
	ck_assert_uint_eq(aclfree(p), 500);
	errno = 0;
	ck_assert_ptr_null(aclcalloc(SIZE_MAX / 2, 3));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), "overflow"));
}
END_TEST

START_TEST(aclrealloc_cases)
{
	unsigned char *p, *q;
	int local, i;

	p = aclrealloc(NULL, 40);
	ck_assert_ptr_nonnull(p);
	for (i = 0; i < 40; i++)
		p[i] = (unsigned char)i;
	q = aclrealloc(p, 30);			/* fits: in place */
	ck_assert_ptr_eq(q, p);
	ck_assert_uint_eq(aclheap_usable_size(q), 48);
	q = aclrealloc(p, 5000);		/* moves, keeps the bytes */
	ck_assert_ptr_nonnull(q);
	ck_assert_ptr_ne(q, p);
	for (i = 0; i < 30; i++)
		ck_assert_uint_eq(q[i], i);
	ck_free_refused(p);	/* the old block is gone */
	p = aclrealloc(q, 300000);		/* to a span's block */
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(aclheap_usable_size(p), 327680);
	for (i = 0; i < 30; i++)
		ck_assert_uint_eq(p[i], i);
	q = aclrealloc(p, 200000);		/* shrinks in place */
	ck_assert_ptr_eq(q, p);
	q = aclrealloc(p, 70000);		/* a class down: moves */
	ck_assert_ptr_ne(q, p);
	ck_assert_uint_eq(aclheap_usable_size(q), 81920);
	ck_free_refused(p);
	p = aclrealloc(q, 5 << 20);		/* to an extent */
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(aclheap_usable_size(p), 5 << 20);
	q = aclrealloc(p, (9 << 19) + 1);	/* shrinks in place */
	ck_assert_ptr_eq(q, p);
	ck_assert_uint_eq(aclheap_usable_size(q), (9 << 19) + 65536);
	q = aclrealloc(p, 6 << 20);		/* grows into free slabs */
	ck_assert_ptr_eq(q, p);
	ck_assert_uint_eq(aclheap_usable_size(q), 6 << 20);
	for (i = 0; i < 30; i++)
		ck_assert_uint_eq(q[i], i);
	q[(6 << 20) - 1] = 0x5a;
	q = aclrealloc(q, 70000);		/* back to a class */
	ck_assert_ptr_nonnull(q);
	/* Bad pointers and impossible sizes: NULL, and p untouched. */
	errno = 0;
	ck_assert_ptr_null(aclrealloc(&local, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(aclrealloc(q + 16, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(aclrealloc(q, (size_t)1 << 40));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_eq(q[29], 29);
	ck_assert_uint_eq(aclfree(q), 70000);
	heap_ok();
}
END_TEST

/* An extent grows in place only into free slabs: with another block
 * right after it, it moves, bytes and all. */
START_TEST(aclrealloc_extent_blocked_moves)
{
	unsigned char *a, *b, *c;

	a = aclmalloc(5 << 20);
	b = aclmalloc(5 << 20);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	/* First fit in a fresh heap puts b right after a. */
	ck_assert_ptr_eq(b, a + (5 << 20));
	memset(a, 0x33, 5 << 20);
	c = aclrealloc(a, 6 << 20);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_ne(c, a);
	ck_assert_uint_eq(c[0], 0x33);
	ck_assert_uint_eq(c[(5 << 20) - 1], 0x33);
	ck_free_refused(a);
	ck_assert_uint_eq(aclfree(b), 5 << 20);
	ck_assert_uint_eq(aclfree(c), 6 << 20);
	heap_ok();
}
END_TEST

START_TEST(aclmemalign_alignments)
{
	static const size_t al[] = { 1, 2, 8, 16, 32, 64, 4096, 8192, 65536,
	    1 << 20 };
	size_t i;
	void *p;

	for (i = 0; i < sizeof(al) / sizeof(al[0]); i++) {
		p = aclmemalign(al[i], 100);
		ck_assert_msg(p != NULL, "%zu: %s", al[i], aclheap_last_error());
		ck_assert_uint_eq((uintptr_t)p % al[i], 0);
		ck_assert_uint_eq(aclfree(p), 100);
	}
	p = aclmemalign(1 << 20, 3 << 20);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq((uintptr_t)p % (1 << 20), 0);
	ck_assert_uint_eq(aclfree(p), 3 << 20);
	errno = 0;
	ck_assert_ptr_null(aclmemalign(0, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(aclmemalign(24, 10));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(aclmemalign((size_t)1 << 31, 10));
	ck_assert_int_eq(errno, EINVAL);
	heap_ok();
}
END_TEST

START_TEST(aclmalloc_past_heap_fails_fast)
{
	uint64_t before;
	void *p[64];
	int n = 0, i;

	before = live_blocks();
	errno = 0;
	ck_assert_ptr_null(aclmalloc((size_t)1 << 40));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(aclmalloc(SIZE_MAX));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_eq(live_blocks(), before);
	/* Fill the 64 MiB heap with 4 MiB extents: ENOMEM, then room again
	 * once they are freed. */
	while (n < 64 && (p[n] = aclmalloc(4 << 20)) != NULL)
		n++;
	ck_assert_int_lt(n, 64);
	ck_assert_int_ge(n, 10);
	ck_assert_int_eq(errno, ENOMEM);
	for (i = 0; i < n; i++)
		ck_assert_uint_eq(aclfree(p[i]), 4 << 20);
	p[0] = aclmalloc(4 << 20);
	ck_assert_ptr_nonnull(p[0]);
	aclfree(p[0]);
	heap_ok();
}
END_TEST

START_TEST(usable_size_and_contains)
{
	int local;
	void *p = aclmalloc(10);

	ck_assert_uint_eq(aclheap_usable_size(p), 16);
	ck_assert_uint_eq(aclheap_usable_size(&local), 0);
	ck_assert_uint_eq(aclheap_usable_size(NULL), 0);
	ck_assert_uint_eq(aclheap_usable_size((char *)p + 1), 0);
	ck_assert(aclheap_contains(p));
	ck_assert(aclheap_contains((void *)conn_seg.base));
	ck_assert(!aclheap_contains((void *)(conn_seg.base + conn_seg.size)));
	ck_assert(!aclheap_contains(&local));
	aclfree(p);
	ck_assert_uint_eq(aclheap_usable_size(p), 0);
}
END_TEST

START_TEST(roots_table)
{
	char longname[300];
	void *a = aclmalloc(8), *b = aclmalloc(8);

	memset(longname, 'x', 256);
	longname[256] = '\0';
	ck_assert_int_eq(aclheap_root_set("", a), -EINVAL);
	ck_assert_int_eq(aclheap_root_set(NULL, a), -EINVAL);
	ck_assert_int_eq(aclheap_root_set(longname, a), -EINVAL);
	ck_assert_int_eq(aclheap_root_set("tab\there", a), -EINVAL);
	ck_assert_int_eq(aclheap_root_set("caf\xc3\xa9", a), -EINVAL);
	longname[255] = '\0';
	ck_assert_int_eq(aclheap_root_set(longname, a), 0);	/* 255: fine */
	ck_assert_ptr_eq(aclheap_root_get(longname), a);
	errno = 0;
	ck_assert_ptr_null(aclheap_root_get("missing"));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_null(aclheap_root_get(""));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(aclheap_root_set("my data", a), 0);
	ck_assert_ptr_eq(aclheap_root_get("my data"), a);
	ck_assert_int_eq(aclheap_root_set("my data", b), 0);
	ck_assert_ptr_eq(aclheap_root_get("my data"), b);
	/* compare-and-set: create only if absent, swap only if equal. */
	ck_assert_int_eq(aclheap_root_cas("new", NULL, a), 0);
	ck_assert_int_eq(aclheap_root_cas("new", NULL, b), -EAGAIN);
	ck_assert_ptr_eq(aclheap_root_get("new"), a);
	ck_assert_int_eq(aclheap_root_cas("new", b, a), -EAGAIN);
	ck_assert_int_eq(aclheap_root_cas("new", a, b), 0);
	ck_assert_ptr_eq(aclheap_root_get("new"), b);
	ck_assert_int_eq(aclheap_root_cas("new", b, NULL), 0);	/* remove */
	errno = 0;
	ck_assert_ptr_null(aclheap_root_get("new"));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(aclheap_root_cas("", NULL, a), -EINVAL);
	ck_assert_int_eq(aclheap_root_remove("my data"), 0);
	ck_assert_int_eq(aclheap_root_remove("my data"), -ENOENT);
	ck_assert_int_eq(aclheap_root_remove("\x7f"), -EINVAL);
	heap_ok();
}
END_TEST

START_TEST(roots_table_full)
{
	char name[32];
	int i, rc = 0;
	/* A 64 MiB heap: one root per 32 KiB. */
	int room = (int)seg_roots_max(UINT64_C(64) << 20);

	ck_assert_int_eq(room, 2048);
	for (i = 0; i < room + 100 && rc == 0; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		rc = aclheap_root_set(name, (void *)(uintptr_t)(i + 1));
	}
	ck_assert_int_eq(rc, -ENOSPC);
	ck_assert_int_eq(i, room + 1);
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), "full"));
	ck_assert_int_eq(aclheap_root_remove("r7"), 0);
	ck_assert_int_eq(aclheap_root_set("again", (void *)8), 0);
}
END_TEST

START_TEST(root_list_snapshot)
{
	struct aclheap_root few[2], *all;
	char name[80];
	int i, n, seen;

	ck_assert_int_eq(aclheap_root_list(NULL, 0), 0);
	ck_assert_int_eq(aclheap_root_list(NULL, 1), -EINVAL);
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), "NULL"));
	ck_assert_int_eq(aclheap_root_set("a", (void *)16), 0);
	ck_assert_int_eq(aclheap_root_set("b b", (void *)32), 0);
	/* Fewer slots than roots: the count says so, one slot is written. */
	memset(few, 0x5a, sizeof(few));
	ck_assert_int_eq(aclheap_root_list(few, 1), 2);
	ck_assert(strcmp(few[0].name, "a") == 0 ||
	    strcmp(few[0].name, "b b") == 0);
	ck_assert_uint_eq((uintptr_t)few[0].value, few[0].name[0] == 'a' ?
	    16 : 32);
	ck_assert_int_eq((unsigned char)few[1].name[0], 0x5a);
	ck_assert_int_eq(aclheap_root_remove("a"), 0);
	ck_assert_int_eq(aclheap_root_remove("b b"), 0);
	ck_assert_int_eq(aclheap_root_list(few, 2), 0);
	/* A full table of 63-byte names is more than a thread's reply arena:
	 * every one must come back. */
	for (i = 0; i < 512; i++) {
		snprintf(name, sizeof(name), "%063d", i);
		ck_assert_int_eq(aclheap_root_set(name,
		    (void *)(uintptr_t)(i + 1)), 0);
	}
	ck_assert_ptr_nonnull(all = calloc(600, sizeof(*all)));
	ck_assert_int_eq(aclheap_root_list(all, 600), 512);
	for (i = 0, seen = 0; i < 512; i++) {
		n = atoi(all[i].name);
		ck_assert_uint_eq(strlen(all[i].name), 63);
		ck_assert_uint_eq((uintptr_t)all[i].value, (uintptr_t)n + 1);
		seen += n;
	}
	ck_assert_int_eq(seen, 511 * 512 / 2);
	free(all);
}
END_TEST

/* The identity is the daemon's heap.id, the same across a SIGKILL, and
 * another heap's is another. */
START_TEST(identity_names_the_heap)
{
	unsigned char a[16], b[16];
	char hex[40];
	struct td other;
	int i;

	ck_assert_int_eq(aclheap_identity(NULL), -EINVAL);
	ck_assert_int_eq(aclheap_identity(a), 0);
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", a[i]);
	ck_assert_str_eq(hex, td.shm + strlen("/aclheap-"));
	ck_assert_int_ne(td_stop(&td, SIGKILL), -1);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	aclheap_detach();
	ck_assert_int_eq(aclheap_identity(b), 0);
	ck_assert_mem_eq(a, b, 16);
	aclheap_detach();
	td_init(&other, "client-other");
	ck_assert_msg(td_start(&other, NULL) == 0, "%s", td_log(&other));
	ck_assert_int_eq(aclheap_identity(b), 0);
	ck_assert(memcmp(a, b, 16) != 0);
	aclheap_detach();
	td_cleanup(&other);
	setenv("ACLHEAP_SOCKET", td.sock, 1);
}
END_TEST

START_TEST(stats_and_checkpoint)
{
	struct aclheap_stats st;
	void *p = aclmalloc(1000);

	ck_assert_int_eq(aclheap_stats(NULL), -EINVAL);
	ck_assert_int_eq(aclheap_stats(&st), 0);
	ck_assert_uint_eq(st.base, 0x300000000000);
	ck_assert_uint_eq(st.size, 64 << 20);
	ck_assert_uint_eq(st.blocks_in_use, 1);
	ck_assert_uint_eq(st.bytes_requested, 1000);
	ck_assert_uint_eq(st.bytes_in_use, 65536);
	ck_assert_uint_eq(st.generation, 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(aclheap_stats(&st), 0);
	ck_assert_uint_eq(st.generation, 1);
	ck_assert_uint_ne(st.last_checkpoint, 0);
	aclfree(p);
}
END_TEST

/* Blocks written by one process are read by others at the same address. */
START_TEST(processes_share_addresses)
{
	enum { KIDS = 4, N = 200 };
	uintptr_t *tab;
	pid_t pid[KIDS];
	int k, i, st;

	tab = aclcalloc(KIDS * N, sizeof(*tab));
	ck_assert_ptr_nonnull(tab);
	ck_assert_int_eq(aclheap_root_set("table", tab), 0);
	for (k = 0; k < KIDS; k++) {
		if ((pid[k] = fork()) == 0) {
			uintptr_t *t = aclheap_root_get("table");
			unsigned char *p;

			if (t != tab)
				_exit(10);
			for (i = 0; i < N; i++) {
				if ((p = aclmalloc((size_t)(i * 13 + k))) ==
				    NULL)
					_exit(11);
				memset(p, k * N + i, (size_t)(i * 13 + k));
				t[k * N + i] = (uintptr_t)p;
			}
			_exit(0);
		}
	}
	for (k = 0; k < KIDS; k++) {
		st = wait_child(pid[k], 30000);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "child %d: %d", k, st);
	}
	/* Every block is where its writer put it, with its bytes, and
	 * nobody got a block twice. */
	for (k = 0; k < KIDS; k++) {
		for (i = 0; i < N; i++) {
			unsigned char *p = (unsigned char *)tab[k * N + i];
			size_t sz = (size_t)(i * 13 + k), j;

			ck_assert_uint_ge(aclheap_usable_size(p), sz);
			for (j = 0; j < sz; j++)
				ck_assert_uint_eq(p[j],
				    (unsigned char)(k * N + i));
			ck_assert_uint_eq(aclfree(p), sz);
		}
	}
	ck_assert_uint_eq(live_blocks(), 1);
	heap_ok();
}
END_TEST

/* A child of fork keeps the mapping, talks on its own connection, and
 * never hands out a block its parent may hand out. */
START_TEST(fork_child_reattaches)
{
	enum { N = 300 };
	uintptr_t mine[N], theirs[N];
	void *p = aclmalloc(64);
	int fds[2], i, j, st;
	pid_t pid;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		for (i = 0; i < N; i++)
			theirs[i] = (uintptr_t)aclmalloc(64);
		if (write(fds[1], theirs, sizeof(theirs)) !=
		    (ssize_t)sizeof(theirs))
			_exit(1);
		/* The parent's block is visible at the same address. */
		_exit(aclheap_usable_size(p) == 64 ? 0 : 2);
	}
	close(fds[1]);
	for (i = 0; i < N; i++)
		mine[i] = (uintptr_t)aclmalloc(64);
	ck_assert_int_eq(read(fds[0], theirs, sizeof(theirs)),
	    (ssize_t)sizeof(theirs));
	st = wait_child(pid, 30000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (i = 0; i < N; i++) {
		ck_assert_uint_ne(theirs[i], 0);
		for (j = 0; j < N; j++)
			ck_assert_uint_ne(mine[i], theirs[j]);
	}
	for (i = 0; i < N; i++) {
		ck_assert_uint_eq(aclfree((void *)mine[i]), 64);
		ck_assert_uint_eq(aclfree((void *)theirs[i]), 64);
	}
	heap_ok();
}
END_TEST

static void *
thread_work(void *arg)
{
	uintptr_t seed = (uintptr_t)arg, i;
	unsigned char *p[256];
	size_t j;

	for (i = 0; i < 20000; i++) {
		size_t k = i % 256, sz = (i * 7 + seed) % 700;

		if (i >= 256) {
			size_t want = ((i - 256) * 7 + seed) % 700;

			for (j = 0; j < want; j++)
				if (p[k][j] != (unsigned char)(seed + k))
					return (void *)1;
			if (aclfree(p[k]) != want)
				return (void *)2;
		}
		if ((p[k] = aclmalloc(sz)) == NULL)
			return (void *)3;
		memset(p[k], (int)(seed + k), sz);
	}
	for (i = 0; i < 256; i++)
		aclfree(p[i]);
	return NULL;
}

START_TEST(threads_allocate_concurrently)
{
	pthread_t t[4];
	void *r;
	uintptr_t i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, thread_work,
		    (void *)(i * 50)), 0);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(t[i], &r), 0);
		ck_assert_ptr_null(r);
	}
	ck_assert_uint_eq(live_blocks(), 0);
	heap_ok();
}
END_TEST

/* The fixed range is taken in this process: EADDRINUSE naming it and its
 * occupant, and nothing mapped anywhere else. */
START_TEST(attach_range_taken)
{
	char before[16384], after[16384];
	const char *const cat[] = { "/bin/cat", "/proc/self/maps", NULL };
	void *blk;
	int rc;

	blk = mmap((void *)(TEST_BASE + (UINT64_C(1) << 20)), 8192,
	    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
	    MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_ptr_ne(blk, MAP_FAILED);
	(void)cat;
	rc = aclheap_attach(NULL);
	ck_assert_int_eq(rc, -EADDRINUSE);
	ck_assert_msg(strstr(aclheap_last_error(),
	    "0x300000000000-0x300004000000") != NULL, "%s",
	    aclheap_last_error());
	ck_assert_msg(strstr(aclheap_last_error(), "0x300000100000") != NULL,
	    "occupant missing: %s", aclheap_last_error());
	errno = 0;
	ck_assert_ptr_null(aclmalloc(10));
	ck_assert_int_eq(errno, EADDRINUSE);
	ck_assert(!conn_mapped);
	/* No shared mapping of the heap anywhere in this process. */
	{
		FILE *f = fopen("/proc/self/maps", "r");
		size_t n = fread(before, 1, sizeof(before) - 1, f);

		before[n] = '\0';
		fclose(f);
	}
	ck_assert_ptr_null(strstr(before, "/dev/shm/aclheap-"));
	munmap(blk, 8192);
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	{
		FILE *f = fopen("/proc/self/maps", "r");
		size_t n = fread(after, 1, sizeof(after) - 1, f);

		after[n] = '\0';
		fclose(f);
	}
	/* Mapped where it belongs: the superblock's page read-only from
	 * the meta object, the data up to the heap's end read-write. */
	{
		const char *l = strstr(after, "300000000000-");

		ck_assert_msg(l != NULL, "no heap mapping");
		ck_assert_msg(strncmp(strchr(l, ' '), " r--s ", 6) == 0 &&
		    strstr(l, ".meta") != NULL && strstr(l, ".meta") <
		    strchr(l + 1, '\n'), "%.200s", l);
		l = strstr(after, "-300004000000 rw-s ");
		ck_assert_msg(l != NULL, "%.3000s", strstr(after,
		    "300000000000-"));
	}
}
END_TEST

START_TEST(attach_no_daemon)
{
	char path[400];
	int rc;

	snprintf(path, sizeof(path), "%s/nothing.sock", td.dir);
	rc = aclheap_attach(path);
	ck_assert(rc == -ENOENT || rc == -ECONNREFUSED);
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), path));
	setenv("ACLHEAP_SOCKET", path, 1);
	errno = 0;
	ck_assert_ptr_null(aclmalloc(1));
	ck_assert(errno == ENOENT || errno == ECONNREFUSED);
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), "aclheapd"));
	setenv("ACLHEAP_SOCKET", td.sock, 1);
	ck_assert_ptr_nonnull(aclmalloc(1));
	/* Attached: another socket is refused, the same one is fine. */
	ck_assert_int_eq(aclheap_attach(path), -EISCONN);
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
}
END_TEST

START_TEST(detach_and_reattach)
{
	void *p = aclmalloc(77);

	ck_assert_int_eq(aclheap_root_set("keep", p), 0);
	aclheap_detach();
	ck_assert(!aclheap_contains(p));
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	ck_assert_ptr_eq(aclheap_root_get("keep"), p);
	ck_assert_uint_eq(aclheap_usable_size(p), 80);
	ck_assert_uint_eq(aclfree(p), 77);
}
END_TEST

/*
 * A language runtime loads the library with dlopen(): its static TLS must
 * fit what glibc keeps for such libraries (a 16 KB thread-local arena and
 * a 3 KB thread cache once made it fail with "cannot allocate memory in
 * static TLS block").
 */
START_TEST(dlopen_loads_library)
{
	const char *argv[] = { td_prog("tests/helper_dlopen"),
	    td_prog(".libs/libaclheap.so"), td.sock, NULL };
	char out[1024];
	int rc;

	rc = run_cmd(out, sizeof(out), argv);
	ck_assert_msg(rc == 0 && strstr(out, "ok") != NULL,
	    "helper_dlopen: status %d: %s", rc, out);
}
END_TEST

/* Fails a call on purpose, so the thread has a last error to lose. */
static void
fail_once(void)
{
	errno = 0;
	ck_assert_uint_eq(aclfree(NULL), 0);
	ck_assert_str_ne(aclheap_last_error(), "");
}

#define ck_cleared(what) ck_assert_msg(aclheap_last_error()[0] == '\0',	\
	"%s kept '%s'", what, aclheap_last_error())

/* A call that succeeds leaves no stale message behind (the small-block
 * fast path of aclmalloc and aclfree excepted, as aclheap.h says). */
START_TEST(last_error_cleared_on_success)
{
	struct aclheap_stats st;
	void *p, *q;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	fail_once();
	ck_assert_ptr_nonnull(p = aclmalloc(5 << 20));	/* the slow path */
	ck_cleared("aclmalloc of an extent");
	fail_once();
	ck_assert_uint_eq(aclfree(p), 5 << 20);
	ck_cleared("aclfree of an extent");
	fail_once();
	ck_assert_ptr_nonnull(p = aclmalloc_flags(64, 0));
	ck_cleared("aclmalloc_flags");
	fail_once();
	ck_assert_ptr_nonnull(q = aclmemalign(4096, 64));
	ck_cleared("aclmemalign");
	fail_once();
	ck_assert_ptr_nonnull(q = aclrealloc(q, 200));
	ck_cleared("aclrealloc");
	fail_once();
	ck_assert_ptr_nonnull(aclcalloc(4, 8));
	ck_cleared("aclcalloc");
	fail_once();
	ck_assert_int_eq(aclheap_root_set("le", p), 0);
	ck_cleared("aclheap_root_set");
	fail_once();
	ck_assert_ptr_eq(aclheap_root_get("le"), p);
	ck_cleared("aclheap_root_get");
	fail_once();
	ck_assert_int_eq(aclheap_stats(&st), 0);
	ck_cleared("aclheap_stats");
	fail_once();
	ck_assert_uint_ge(aclheap_usable_size(p), 64);
	ck_cleared("aclheap_usable_size");
	fail_once();
	ck_assert_int_eq(aclheap_contains(p), 1);
	ck_cleared("aclheap_contains");
	fail_once();
	ck_assert_int_ne(aclheap_address_to_aligned((uintptr_t)p), 0);
	ck_cleared("aclheap_address_to_aligned");
	fail_once();
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_cleared("aclheap_checkpoint");
	fail_once();
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	ck_cleared("aclheap_attach");
}
END_TEST

/* A reconnect timeout that is not a number is refused at attach, with a
 * message naming it, instead of silently becoming 5 s. */
START_TEST(reconnect_timeout_checked)
{
	setenv("ACLHEAP_RECONNECT_TIMEOUT", "abc", 1);
	ck_assert_int_eq(aclheap_attach(NULL), -EINVAL);
	ck_assert_msg(strstr(aclheap_last_error(),
	    "ACLHEAP_RECONNECT_TIMEOUT='abc'") != NULL, "%s",
	    aclheap_last_error());
	errno = 0;
	ck_assert_ptr_null(aclmalloc(100000));
	ck_assert_int_eq(errno, EINVAL);
	setenv("ACLHEAP_RECONNECT_TIMEOUT", "-1", 1);
	ck_assert_int_eq(aclheap_attach(NULL), -EINVAL);
	setenv("ACLHEAP_RECONNECT_TIMEOUT", "2.5", 1);
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	unsetenv("ACLHEAP_RECONNECT_TIMEOUT");
}
END_TEST

/* aclheap_checkpoint() as a user who may not: -EPERM, as documented. */
START_TEST(checkpoint_refused_is_eperm)
{
	struct passwd *pw = getpwnam("nobody");
	char sock[300];
	pid_t pid;
	int st, rc;

	if (geteuid() != 0 || pw == NULL)
		td_skip("needs root and user nobody to run a client as "
		    "another user (CI runs as root)");
	td_cleanup(&td);
	td_init(&td, "eperm");
	{
		const char *extra[] = { "--allow-user", "nobody",
		    "--socket-mode", "0666", NULL };

		ck_assert_int_eq(chmod(td.dir, 0755), 0);
		ck_assert_int_eq(td_start(&td, extra), 0);
	}
	snprintf(sock, sizeof(sock), "%s", td.sock);
	if ((pid = fork()) == 0) {
		if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
		    setuid(pw->pw_uid) != 0)
			_exit(100);
		if (aclheap_attach(sock) != 0)
			_exit(101);
		rc = aclheap_checkpoint();
		if (rc != -EPERM)
			_exit(rc == -EIO ? 102 : 103);
		_exit(strstr(aclheap_last_error(), "only for") != NULL ? 0 :
		    104);
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child: status %d (102: EIO)", st);
}
END_TEST

Suite *
client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("client");

	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, aclmalloc_sizes);
	tcase_add_test(tc, aclmalloc_zero_unique);
	tcase_add_test(tc, aclmalloc_flags_table);
	tcase_add_test(tc, aclfree_bad_pointers);
	tcase_add_test(tc, aligned_conversions);
	tcase_add_test(tc, aclcalloc_zero_and_overflow);
	tcase_add_test(tc, aclrealloc_cases);
	tcase_add_test(tc, aclrealloc_extent_blocked_moves);
	tcase_add_test(tc, aclmemalign_alignments);
	tcase_add_test(tc, aclmalloc_past_heap_fails_fast);
	tcase_add_test(tc, usable_size_and_contains);
	tcase_add_test(tc, roots_table);
	tcase_add_test(tc, roots_table_full);
	tcase_add_test(tc, root_list_snapshot);
	tcase_add_test(tc, identity_names_the_heap);
	tcase_add_test(tc, stats_and_checkpoint);
	tcase_add_test(tc, processes_share_addresses);
	tcase_add_test(tc, fork_child_reattaches);
	tcase_add_test(tc, threads_allocate_concurrently);
	tcase_add_test(tc, attach_range_taken);
	tcase_add_test(tc, attach_no_daemon);
	tcase_add_test(tc, detach_and_reattach);
	tcase_add_test(tc, dlopen_loads_library);
	tcase_add_test(tc, last_error_cleared_on_success);
	tcase_add_test(tc, reconnect_timeout_checked);
	tcase_add_test(tc, checkpoint_refused_is_eperm);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
