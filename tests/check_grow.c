/* SPDX-License-Identifier: MIT */
/*
 * check_grow.c: a heap that grows while it runs.  Processes allocate,
 * write and check patterns while the heap grows under them, and every
 * block, in old space and new, is checked and freed by another process
 * afterwards; a grown heap comes back grown from a restart, a SIGKILL and
 * a "reboot"; a daemon started with neither --base nor --size takes the
 * heap's own shape; the default maximum is a terabyte of address space
 * and no memory; a process that attached before the growth frees a block
 * another made in the new space without a request first; and every bad
 * size is refused with the heap unchanged.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aclheap.h"
#include "client/client.h"
#include "tests/testutil.h"

#define MiB	(UINT64_C(1) << 20)

static struct td td;

static void
up(void)
{
	td_init(&td, "grow");
	snprintf(td.size, sizeof(td.size), "8M");
	snprintf(td.max, sizeof(td.max), "1G");
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
}

static void
down(void)
{
	aclheap_detach();
	td_cleanup(&td);
}

static uint64_t
xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Fills n bytes at p from seed: every byte depends on both. */
static void
stamp(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15u + 1;
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(xs(&s) >> 24);
}

static int
stamped(const unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15u + 1;
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != (unsigned char)(xs(&s) >> 24))
			return 0;
	return 1;
}

/* What a worker leaves for the others: its live blocks. */
struct rec {
	uint64_t addr, size, seed;
};

#define NWORK	3
#define NKEEP	48

/* Shared with the workers: the parent says stop, they count. */
struct board {
	volatile int stop;
	volatile uint64_t allocs[NWORK];
	volatile uint64_t beyond[NWORK];	/* blocks past the first end */
};

static const size_t sizes[] = { 48, 3000, 20000, 300000, 5 * MiB, 900,
    70000 };

/*
 * A worker: allocates blocks of every kind (small, span, extent), stamps
 * them, checks an older one at each step and frees some, until told to
 * stop; a full heap (ENOMEM) is waited out, growth will come.  Then it
 * checks every block it holds and leaves them in root grow.K.
 */
static int
worker(int k, struct board *bd, uint64_t end0)
{
	struct rec keep[NKEEP], *out;
	uint64_t seed = 77 + (uint64_t)k, n = 0;
	unsigned char *p;
	size_t sz;
	int i, live = 0, j;

	if (aclheap_attach(td.sock) != 0)
		return 10;
	while (!bd->stop) {
		sz = sizes[(n + (uint64_t)k) % (sizeof(sizes) / sizeof(sizes[0]))];
		if ((p = aclmalloc(sz)) == NULL) {
			if (errno != ENOMEM)
				return 11;
			if (live > 0) {	/* make room: the oldest goes */
				if (aclfree((void *)(uintptr_t)keep[0].addr) !=
				    keep[0].size)
					return 12;
				memmove(keep, keep + 1, (size_t)(live - 1) *
				    sizeof(keep[0]));
				live--;
			}
			continue;
		}
		n++;
		stamp(p, sz, xs(&seed));
		if (live == NKEEP) {
			j = (int)(seed % NKEEP);
			if (!stamped((void *)(uintptr_t)keep[j].addr,
			    keep[j].size, keep[j].seed))
				return 13;
			if (aclfree((void *)(uintptr_t)keep[j].addr) !=
			    keep[j].size)
				return 14;
			keep[j] = keep[--live];
		}
		keep[live].addr = (uintptr_t)p;
		keep[live].size = sz;
		keep[live].seed = seed;
		live++;
		if ((uintptr_t)p + sz > end0)
			bd->beyond[k]++;
		bd->allocs[k] = n;
		j = (int)(xs(&seed) % (uint64_t)live);
		if (!stamped((void *)(uintptr_t)keep[j].addr, keep[j].size,
		    keep[j].seed))
			return 15;
	}
	for (i = 0; i < live; i++)
		if (!stamped((void *)(uintptr_t)keep[i].addr, keep[i].size,
		    keep[i].seed))
			return 16;
	if ((out = aclmalloc(sizeof(*out) * (size_t)(live + 1))) == NULL)
		return 17;
	out[0].addr = (uint64_t)live;
	memcpy(out + 1, keep, sizeof(*out) * (size_t)live);
	{
		char name[32];

		snprintf(name, sizeof(name), "grow.%d", k);
		if (aclheap_root_set(name, out) != 0)
			return 18;
	}
	return 0;
}

/* Waits until every worker has made more than by allocations more than
 * in seen. */
static void
wait_progress(struct board *bd, uint64_t *seen, uint64_t by)
{
	uint64_t end = now_ms() + 60000;
	int k, all;

	do {
		for (all = 1, k = 0; k < NWORK; k++)
			all &= bd->allocs[k] > seen[k] + by;
		if (all)
			break;
		msleep(5);
	} while (now_ms() < end);
	ck_assert_msg(all, "workers stalled: %" PRIu64 " %" PRIu64 " %"
	    PRIu64, bd->allocs[0], bd->allocs[1], bd->allocs[2]);
	for (k = 0; k < NWORK; k++)
		seen[k] = bd->allocs[k];
}

static uint64_t
heap_size(void)
{
	struct aclheap_stats st;

	ck_assert_int_eq(aclheap_stats(&st), 0);
	return st.size;
}

START_TEST(grow_under_load)
{
	static const uint64_t steps[] = { 32 * MiB, 128 * MiB, 512 * MiB,
	    1024 * MiB };
	struct board *bd;
	uint64_t seen[NWORK] = { 0 }, end0;
	char err[512];
	pid_t pid[NWORK];
	size_t i;
	int k, st, n;

	bd = mmap(NULL, sizeof(*bd), PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(bd, MAP_FAILED);
	memset(bd, 0, sizeof(*bd));
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	end0 = seg_extent(&conn_seg) + conn_seg.base;
	aclheap_detach();
	for (k = 0; k < NWORK; k++) {
		ck_assert_int_ne(pid[k] = fork(), -1);
		if (pid[k] == 0)
			_exit(worker(k, bd, end0));
	}
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	wait_progress(bd, seen, 0);	/* the 8 MiB heap is full at once */
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		ck_assert_msg(aclheap_grow(steps[i]) == 0, "grow to %" PRIu64
		    ": %s", steps[i], aclheap_last_error());
		ck_assert_uint_eq(heap_size(), steps[i]);
		wait_progress(bd, seen, 20);
	}
	bd->stop = 1;
	for (k = 0; k < NWORK; k++) {
		st = wait_child(pid[k], 60000);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "worker %d: status %d", k, st);
		ck_assert_msg(bd->beyond[k] > 0, "worker %d never used the "
		    "space the heap grew by", k);
	}
	/* Another process checks every block the workers left, old space
	 * and new, and frees them. */
	for (k = 0; k < NWORK; k++) {
		char name[32];
		struct rec *r;

		snprintf(name, sizeof(name), "grow.%d", k);
		ck_assert_ptr_nonnull(r = aclheap_root_get(name));
		n = (int)r[0].addr;
		for (i = 1; i <= (size_t)n; i++) {
			ck_assert_msg(stamped((void *)(uintptr_t)r[i].addr,
			    r[i].size, r[i].seed), "worker %d block %zu "
			    "changed", k, i);
			ck_assert_uint_eq(aclfree((void *)(uintptr_t)r[i].addr),
			    r[i].size);
		}
		ck_assert_uint_eq(aclfree(r), sizeof(*r) * (size_t)(n + 1));
		ck_assert_int_eq(aclheap_root_remove(name), 0);
	}
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0,
	    "%s", err);
	munmap(bd, sizeof(*bd));
}
END_TEST

/* In a child of its own, attached afresh: fill or check NB blocks of
 * 200 KiB at the top of the heap, named by root "top". */
#define NB	16

static int
child_fill(uint64_t above)
{
	struct rec *r;
	unsigned char *p;
	int got = 0;

	if (aclheap_attach(td.sock) != 0 || (r = aclmalloc(sizeof(*r) *
	    (NB + 1))) == NULL)
		return 20;
	/* Fill the old space first, so that what follows lands above. */
	while (got < NB) {
		if ((p = aclmalloc(200000)) == NULL)
			return 21;
		if ((uintptr_t)p < above)
			continue;	/* kept: it holds the old space */
		stamp(p, 200000, (uint64_t)got + 5);
		r[got + 1].addr = (uintptr_t)p;
		r[got + 1].size = 200000;
		r[got + 1].seed = (uint64_t)got + 5;
		got++;
	}
	r[0].addr = NB;
	return aclheap_root_set("top", r) == 0 ? 0 : 22;
}

static int
child_check(void)
{
	struct rec *r;
	int i;

	if (aclheap_attach(td.sock) != 0 || (r = aclheap_root_get("top")) ==
	    NULL || r[0].addr != NB)
		return 30;
	for (i = 1; i <= NB; i++) {
		if (!stamped((void *)(uintptr_t)r[i].addr, r[i].size,
		    r[i].seed))
			return 31;
		if (aclheap_usable_size((void *)(uintptr_t)r[i].addr) <
		    r[i].size)
			return 32;
	}
	return 0;
}

static int
in_child(int (*fn)(uint64_t), uint64_t arg)
{
	pid_t pid;
	int st;

	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0)
		_exit(fn(arg));
	st = wait_child(pid, 60000);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int
check_fn(uint64_t arg)
{
	(void)arg;
	return child_check();
}

static void
status_json(char *out, size_t len)
{
	const char *argv[] = { td_prog("aclheapctl"), "-s", td.sock, "status",
	    "--json", NULL };

	ck_assert_int_eq(run_cmd(out, len, argv), 0);
}

static void
restart_with(int sig, const char *size, const char *base, const char *max)
{
	td_stop(&td, sig);
	snprintf(td.size, sizeof(td.size), "%s", size);
	snprintf(td.base, sizeof(td.base), "%s", base);
	snprintf(td.max, sizeof(td.max), "%s", max);
	ck_assert_msg(td_start(&td, NULL) == 0, "restart: %s", td_log(&td));
}

START_TEST(grown_heap_comes_back_grown)
{
	const char *grow[] = { td_prog("aclheapctl"), "-s", td.sock, "grow",
	    "128M", NULL };
	char out[8192], base[32];
	uint64_t end0;
	int rc;

	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	end0 = conn_seg.base + seg_extent(&conn_seg);
	aclheap_detach();
	rc = run_cmd(out, sizeof(out), grow);
	ck_assert_msg(rc == 0 && strstr(out, "grown from 8.0 MiB to 128.0 "
	    "MiB") != NULL, "%d: %s", rc, out);
	ck_assert_int_eq(in_child(child_fill, end0), 0);
	ck_assert_int_eq(in_child(check_fn, 0), 0);
	snprintf(base, sizeof(base), "%s", td.base);

	/* Neither base nor size nor maximum: the heap's own shape. */
	restart_with(SIGTERM, "", "", "-");
	ck_assert_int_eq(in_child(check_fn, 0), 0);
	status_json(out, sizeof(out));
	ck_assert_msg(strstr(out, "\"size\":134217728") != NULL &&
	    strstr(out, "\"max_size\":1073741824") != NULL, "%s", out);

	/* A crash: the live segment is adopted, grown. */
	restart_with(SIGKILL, "", "", "-");
	ck_assert_int_eq(in_child(check_fn, 0), 0);

	/* A reboot: the image alone, which records the grown size. */
	td_stop(&td, SIGTERM);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "reboot: %s", td_log(&td));
	ck_assert_int_eq(in_child(check_fn, 0), 0);
	status_json(out, sizeof(out));
	ck_assert_msg(strstr(out, "\"size\":134217728") != NULL, "%s", out);

	/* A smaller --size (a unit file written before the growth): said,
	 * and the heap keeps its size. */
	restart_with(SIGTERM, "8M", base, "1G");
	ck_assert_int_eq(in_child(check_fn, 0), 0);
	status_json(out, sizeof(out));
	ck_assert_msg(strstr(out, "\"size\":134217728") != NULL, "%s", out);
	ck_assert_msg(strstr(td_log(&td), "keeps its size") != NULL, "%s",
	    td_log(&td));

	/* A larger one grows it as it starts. */
	restart_with(SIGTERM, "200M", base, "1G");
	ck_assert_int_eq(in_child(check_fn, 0), 0);
	status_json(out, sizeof(out));
	ck_assert_msg(strstr(out, "\"size\":209715200") != NULL, "%s", out);

	/* A different maximum is another heap's address space: refused,
	 * and the heap is still there for the right one. */
	td_stop(&td, SIGTERM);
	snprintf(td.max, sizeof(td.max), "2G");
	ck_assert_int_ne(td_start(&td, NULL), 0);
	ck_assert_msg(strstr(td_log(&td), "--max-size 1073741824") != NULL,
	    "%s", td_log(&td));
	snprintf(td.max, sizeof(td.max), "-");
	snprintf(td.size, sizeof(td.size), "%s", "");
	ck_assert_msg(td_start(&td, NULL) == 0, "start: %s", td_log(&td));
	ck_assert_int_eq(in_child(check_fn, 0), 0);
}
END_TEST

/* Fills the heap with 1 MiB blocks, left in root "full". */
static int
child_full(uint64_t arg)
{
	struct rec *r;
	void *p;
	int n = 0;

	(void)arg;
	if (aclheap_attach(td.sock) != 0 ||
	    (r = aclmalloc(sizeof(*r) * 65)) == NULL)
		return 50;
	while (n < 64 && (p = aclmalloc(1 * MiB)) != NULL)
		r[++n].addr = (uintptr_t)p;
	r[0].addr = (uint64_t)n;
	if (aclheap_root_set("full", r) != 0)
		return 51;
	/* Its leases go back now, not when the daemon finds it dead (the
	 * reaper, within 2 s): the blocks alone hold the tail. */
	aclheap_detach();
	return 0;
}

/* Every bad size is refused with a reason, and the heap is as it was. */
START_TEST(bad_sizes_change_nothing)
{
	static const uint64_t bad[] = { 2 * MiB, 8 * MiB + 4096,
	    2048 * MiB, UINT64_MAX, 0 };
	const char *ctl_past[] = { td_prog("aclheapctl"), "-s", td.sock,
	    "grow", "2G", NULL };
	const char *ctl_junk[] = { td_prog("aclheapctl"), "-s", td.sock,
	    "grow", "lots", NULL };
	const char *ctl_none[] = { td_prog("aclheapctl"), "-s", td.sock,
	    "grow", NULL };
	const char *ctl_shrink[] = { td_prog("aclheapctl"), "-s", td.sock,
	    "grow", "4M", NULL };
	struct rec *r;
	void *p[64];
	char out[4096], err[256];
	size_t i;
	int n = 0, rc;

	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	ck_assert_int_eq(aclheap_grow(16 * MiB), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(aclheap_grow(bad[i]), -EINVAL);
		ck_assert_msg(strstr(aclheap_last_error(), "maximum") != NULL,
		    "%s", aclheap_last_error());
		ck_assert_uint_eq(heap_size(), 16 * MiB);
	}
	rc = run_cmd(out, sizeof(out), ctl_past);
	ck_assert_msg(rc == 1 && strstr(out, "maximum") != NULL, "%d: %s",
	    rc, out);
	ck_assert_int_eq(run_cmd(out, sizeof(out), ctl_junk), 2);
	ck_assert_int_eq(run_cmd(out, sizeof(out), ctl_none), 2);

	/* A full heap cannot shrink: its tail is in use (blocks of a process
	 * gone since, which leaves no lease behind). */
	ck_assert_int_eq(in_child(child_full, 0), 0);
	ck_assert_ptr_nonnull(r = aclheap_root_get("full"));
	n = (int)r[0].addr;
	for (i = 0; i < (size_t)n; i++)
		p[i] = (void *)(uintptr_t)r[i + 1].addr;
	ck_assert_uint_eq(aclfree(r), sizeof(*r) * 65);
	ck_assert_int_gt(n, 8);
	ck_assert_int_eq(aclheap_grow(4 * MiB), -EBUSY);
	ck_assert_msg(strstr(aclheap_last_error(), "tail") != NULL, "%s",
	    aclheap_last_error());
	rc = run_cmd(out, sizeof(out), ctl_shrink);
	ck_assert_msg(rc == 1 && strstr(out, "in use") != NULL, "%d: %s",
	    rc, out);
	ck_assert_uint_eq(heap_size(), 16 * MiB);
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0,
	    "%s", err);

	/* Freed, it shrinks, gives the memory back, and grows again. */
	while (n > 0)
		ck_assert_uint_eq(aclfree(p[--n]), 1 * MiB);
	ck_assert_msg(aclheap_grow(4 * MiB) == 0, "%s", aclheap_last_error());
	ck_assert_uint_eq(heap_size(), 4 * MiB);
	ck_assert_ptr_null(aclmalloc(8 * MiB));
	ck_assert_int_eq(aclheap_grow(64 * MiB), 0);
	ck_assert_ptr_nonnull(p[0] = aclmalloc(8 * MiB));
	memset(p[0], 0x5a, 8 * MiB);
	ck_assert_uint_eq(aclfree(p[0]), 8 * MiB);
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0,
	    "%s", err);
}
END_TEST

/* Settings that cannot make a heap are refused before anything starts. */
START_TEST(max_below_size_refused)
{
	struct td t;

	td_init(&t, "growcfg");
	snprintf(t.size, sizeof(t.size), "64M");
	snprintf(t.max, sizeof(t.max), "32M");
	ck_assert_int_ne(td_start(&t, NULL), 0);
	ck_assert_msg(strstr(td_log(&t), "maximum size 33554432 is below "
	    "the size 67108864") != NULL, "%s", td_log(&t));
	td_cleanup(&t);
}
END_TEST

/* By default a heap can grow to a terabyte: address space in every
 * process, no memory, and a file that is sparse. */
START_TEST(default_maximum_is_address_space)
{
	char out[8192];
	struct stat st;
	void *p;
	int i;

	td_stop(&td, SIGTERM);
	td_cleanup(&td);
	td_init(&td, "growdef");
	snprintf(td.size, sizeof(td.size), "16M");
	snprintf(td.max, sizeof(td.max), "-");
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
	status_json(out, sizeof(out));
	ck_assert_msg(strstr(out, "\"max_size\":1099511627776") != NULL, "%s",
	    out);
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	ck_assert_uint_eq(conn_seg.max, UINT64_C(1) << 40);
	{
		char path[128];

		snprintf(path, sizeof(path), "/dev/shm%s", td.shm);
		ck_assert_int_eq(stat(path, &st), 0);
	}
	ck_assert_uint_eq((uint64_t)st.st_size, UINT64_C(1) << 40);
	ck_assert_uint_lt((uint64_t)st.st_blocks * 512, 64 * MiB);
	ck_assert_int_eq(aclheap_grow(UINT64_C(2) << 30), 0);
	ck_assert_ptr_nonnull(p = aclmalloc(512 * MiB));
	memset(p, 1, 512 * MiB);
	ck_assert_uint_eq(aclfree(p), 512 * MiB);
	/* Checkpoints map what is in use, not the terabyte: more of them
	 * than 128 TiB of address space holds terabytes. */
	for (i = 0; i < 140; i++) {
		ck_assert_ptr_nonnull(p = aclmalloc(100));
		ck_assert_msg(aclheap_checkpoint() == 0, "checkpoint %d: %s",
		    i, aclheap_last_error());
	}
}
END_TEST

/*
 * A process attached before the heap grew is given a block another
 * process made in the new space (an address in a pipe, no request of
 * its own in between): its size and its free work, from this process.
 */
START_TEST(old_client_frees_new_block)
{
	uintptr_t a, end0;
	int to[2], from[2];
	pid_t pid;
	void *keep;
	size_t got;
	int st;

	ck_assert_int_eq(pipe(to), 0);
	ck_assert_int_eq(pipe(from), 0);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		int rc = 0;

		if (aclheap_attach(td.sock) != 0 || (keep = aclmalloc(64)) ==
		    NULL)
			_exit(40);
		a = 1;
		if (write(from[1], &a, sizeof(a)) != sizeof(a) ||
		    read(to[0], &a, sizeof(a)) != sizeof(a))
			_exit(41);
		if (aclheap_usable_size((void *)a) < 100000)
			rc = 42;
		else if (((unsigned char *)a)[99999] != 0xa5)
			rc = 43;
		else if ((got = aclfree((void *)a)) != 100000)
			rc = 44;
		(void)got;
		_exit(rc);
	}
	ck_assert_int_eq(read(from[0], &a, sizeof(a)), sizeof(a));
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	end0 = conn_seg.base + seg_extent(&conn_seg);
	ck_assert_int_eq(aclheap_grow(256 * MiB), 0);
	/* The first 100000-byte block past the old end. */
	for (;;) {
		void *p = aclmalloc(100000);

		ck_assert_ptr_nonnull(p);
		if ((uintptr_t)p >= end0) {
			a = (uintptr_t)p;
			break;
		}
	}
	memset((void *)a, 0xa5, 100000);
	ck_assert_int_eq(write(to[1], &a, sizeof(a)), sizeof(a));
	st = wait_child(pid, 30000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %d", st);
	ck_assert_int_eq(aclheap_usable_size((void *)a), 0);
}
END_TEST

Suite *
grow_suite(void)
{
	Suite *s = suite_create("grow");
	TCase *tc;

	tc = tcase_create("grow");
	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, grow_under_load);
	tcase_add_test(tc, grown_heap_comes_back_grown);
	tcase_add_test(tc, bad_sizes_change_nothing);
	tcase_add_test(tc, max_below_size_refused);
	tcase_add_test(tc, default_maximum_is_address_space);
	tcase_add_test(tc, old_client_frees_new_block);
	tcase_set_timeout(tc, 240);
	suite_add_tcase(s, tc);
	return s;
}
