/* SPDX-License-Identifier: MIT */
/*
 * check_scribble.c: the daemon trusts nothing it reads from shared memory.
 *
 * Every allowed client maps the segment read-write.  Each scenario starts
 * the real daemon, makes data with the library (blocks of every kind of
 * class with patterns, roots), checkpoints, and then a hostile client (a
 * child that opens /dev/shm/<segment> itself) writes into one region of
 * the segment: random words, adversarial values (UINT32_MAX, offsets past
 * the heap, a slab or class out of range), or a whole region of garbage.
 * A good client then makes ordinary requests, over the socket and the
 * fast path, aclheapctl runs status, verify, blocks, roots and
 * checkpoint, and the daemon is stopped with SIGTERM and started again,
 * twice.  Asserted:
 *
 *   no crash   the daemon is alive until it is stopped, and exits from
 *              SIGTERM without a signal of its own (SIGSEGV, SIGABRT)
 *   no hang    every step of the good client and every tool is done
 *              within a bound (alarm() in the child running it), and the
 *              daemon stops within one
 *   no loss    the daemon starts again after each stop (with the live
 *              segment, or, having refused it, from the last good image),
 *              passes verify, and the data checkpointed before the
 *              scribble is there: every block's bytes and every root
 *
 * The good client after the scribble writes into no block it gets: a
 * scribbled bitmap can hand out a block that overlaps checkpointed data,
 * and what it writes there would be a client's write, not the daemon's.
 *
 * Test cases: "client-writable" for what clients must be able to write
 * (bitmaps, side lines and in-slab side entries, lease records, block
 * data); "daemon-owned" for what only the daemon writes (superblock,
 * roots, slab table, sessions), which clients map read-only from the
 * meta object (read-only: their stores fault, mprotect() is refused),
 * and which the hostile here writes through the meta object itself, as
 * only the daemon's own user (or root) can: there too the
 * write must not crash or hang the daemon.
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
#include "shm/shm.h"
#include "tests/testutil.h"

#define SCRIBBLE_SIZE	"16M"
#define NBLOCKS		48
#define NROOTS		8
#define STEP_SECS	20	/* one step of a client or one tool */
#define STOP_MS		20000	/* SIGTERM to exit */

static struct td td;

/* The blocks the data step made: where, how many bytes, their pattern. */
struct rec {
	uint64_t addr;
	uint64_t size;
	uint64_t seed;
};

static const size_t sizes[] = {
	40,		/* in-band side entries */
	600,		/* in-band, a larger class */
	2000,		/* side line */
	6000,		/* side line */
	20000,		/* a span */
	300000,		/* a span of 40 slabs */
};
#define NSIZES	(sizeof(sizes) / sizeof(sizes[0]))
#define EXTENT	5000000	/* the last block: an extent */

static size_t
block_size(int i)
{
	return i == NBLOCKS - 1 ? EXTENT : sizes[i % NSIZES];
}

/* The hostile's own blocks: classes the good data does not use. */
static const size_t hostile_sizes[] = { 96, 4096, 100000 };

static uint64_t
rnd(uint64_t *x)
{
	/* xorshift64*: reproducible from the scenario's seed. */
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * UINT64_C(2685821657736338717);
}

static void
pattern(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;
	size_t i;

	for (i = 0; i < n; i++) {
		if (i % 8 == 0)
			(void)rnd(&x);
		p[i] = (uint8_t)(x >> (8 * (i % 8)));
	}
}

static int
pattern_ok(const uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;
	size_t i;

	for (i = 0; i < n; i++) {
		if (i % 8 == 0)
			(void)rnd(&x);
		if (p[i] != (uint8_t)(x >> (8 * (i % 8))))
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Children with a bound */

/*
 * Runs fn in a child that SIGALRM ends after secs: its wait status, or -1
 * when it was not reaped within a few seconds more (then it is killed).
 * A child reports failures on stderr and by its exit status, never
 * through Check.
 */
static int
bounded(int (*fn)(void *), void *arg, unsigned secs)
{
	pid_t pid;
	int st;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		alarm(secs);
		_exit(fn(arg));
	}
	if ((st = wait_child(pid, (int)(secs + 5) * 1000)) == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return st;
}

static const char *
status_str(int st)
{
	static char b[64];

	if (st == -1)
		snprintf(b, sizeof(b), "not reaped");
	else if (WIFSIGNALED(st))
		snprintf(b, sizeof(b), "signal %d (%s)", WTERMSIG(st),
		    strsignal(WTERMSIG(st)));
	else
		snprintf(b, sizeof(b), "exit %d", WEXITSTATUS(st));
	return b;
}

static void
assert_alive(const char *when)
{
	int st;

	ck_assert_msg(td.pid > 0, "%s: no daemon", when);
	if (waitpid(td.pid, &st, WNOHANG) == td.pid) {
		td.pid = -1;
		ck_abort_msg("%s: the daemon is gone, %s\n%s", when,
		    status_str(st), td_log(&td));
	}
}

/* A step of the good client, bounded: it must end, and well. */
static void
step(const char *what, int (*fn)(void *), void *arg)
{
	int st = bounded(fn, arg, STEP_SECS);

	ck_assert_msg(st != -1 && !(WIFSIGNALED(st) &&
	    WTERMSIG(st) == SIGALRM), "%s hung (%s)\n%s", what,
	    status_str(st), td_log(&td));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s\n%s",
	    what, status_str(st), td_log(&td));
}

/*
 * aclheapctl with a bound: alarm() survives the exec, so a tool waiting
 * on a daemon that never answers ends by SIGALRM.  Its exit status: 0 or
 * 1 (a damaged heap may fail verify, a request may be refused), never
 * 3 (the daemon unreachable) nor a signal.
 */
static int
tool(const char *cmd, const char *arg)
{
	char out[300];
	pid_t pid;
	int fd, st;

	snprintf(out, sizeof(out), "%s/tool.out", td.dir);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		if ((fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644)) >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		alarm(STEP_SECS);
		execl(td_prog("aclheapctl"), "aclheapctl", "-s", td.sock, cmd,
		    arg, (char *)NULL);
		_exit(127);
	}
	if ((st = wait_child(pid, (STEP_SECS + 5) * 1000)) == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	ck_assert_msg(st != -1 && !WIFSIGNALED(st), "aclheapctl %s: %s "
	    "(hung or crashed)\n%s", cmd, status_str(st), td_log(&td));
	ck_assert_msg(WEXITSTATUS(st) <= 1, "aclheapctl %s: %s\n%s", cmd,
	    status_str(st), td_log(&td));
	return WEXITSTATUS(st);
}

/* ------------------------------------------------------------------ */
/* The good client */

/* Blocks of every kind with patterns, a table of them under a root,
 * NROOTS roots more, then a checkpoint. */
static int
make_data(void *arg)
{
	struct rec *t;
	uint8_t *p;
	char name[32];
	int i, rc;

	(void)arg;
	if ((rc = aclheap_attach(td.sock)) != 0) {
		fprintf(stderr, "attach: %s\n", strerror(-rc));
		return 1;
	}
	if ((t = aclmalloc(NBLOCKS * sizeof(*t))) == NULL)
		return 2;
	for (i = 0; i < NBLOCKS; i++) {
		t[i].size = block_size(i);
		t[i].seed = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(i + 1);
		/* Every third block through aclmemalign, which takes the
		 * socket; the others the fast path, or the socket for an
		 * extent. */
		p = i % 3 == 2 ? aclmemalign(64, t[i].size) :
		    aclmalloc(t[i].size);
		if (p == NULL) {
			fprintf(stderr, "block %d of %" PRIu64 " bytes: %s\n",
			    i, t[i].size, aclheap_last_error());
			return 3;
		}
		pattern(p, t[i].size, t[i].seed);
		t[i].addr = (uint64_t)(uintptr_t)p;
	}
	if (aclheap_root_set("scribble.table", t) != 0)
		return 4;
	for (i = 0; i < NROOTS; i++) {
		snprintf(name, sizeof(name), "scribble.r%d", i);
		if (aclheap_root_set(name, (void *)(uintptr_t)t[i * 5].addr)
		    != 0)
			return 5;
	}
	if ((rc = aclheap_checkpoint()) != 0) {
		fprintf(stderr, "checkpoint: %s: %s\n", strerror(-rc),
		    aclheap_last_error());
		return 6;
	}
	return 0;
}

/* The data make_data() checkpointed: every byte, every root. */
static int
check_data(void *arg)
{
	struct rec *t;
	char name[32];
	void *v;
	int i, rc;

	(void)arg;
	if ((rc = aclheap_attach(td.sock)) != 0) {
		fprintf(stderr, "attach: %s\n", strerror(-rc));
		return 1;
	}
	if ((t = aclheap_root_get("scribble.table")) == NULL) {
		fprintf(stderr, "root scribble.table: %s\n",
		    strerror(errno));
		return 2;
	}
	for (i = 0; i < NBLOCKS; i++) {
		if (t[i].size != block_size(i) ||
		    !pattern_ok((const uint8_t *)(uintptr_t)t[i].addr,
		    t[i].size, t[i].seed)) {
			fprintf(stderr, "block %d at 0x%" PRIx64 " (%" PRIu64
			    " bytes) does not hold its pattern\n", i,
			    t[i].addr, t[i].size);
			return 3;
		}
	}
	for (i = 0; i < NROOTS; i++) {
		snprintf(name, sizeof(name), "scribble.r%d", i);
		if ((v = aclheap_root_get(name)) !=
		    (void *)(uintptr_t)t[i * 5].addr) {
			fprintf(stderr, "root %s is %p, was 0x%" PRIx64 "\n",
			    name, v, t[i * 5].addr);
			return 4;
		}
	}
	return 0;
}

/*
 * Ordinary requests after the scribble, over the fast path and the
 * socket.  Each may fail (a damaged slab is refused); each must answer.
 * Nothing is written into the blocks (the top of the file says why).
 */
static int
work(void *arg)
{
	struct aclheap_stats st;
	struct aclheap_root roots[16];
	void *p[64], *q;
	int i, j, rounds = arg != NULL ? *(int *)arg : 4;

	(void)aclheap_attach(td.sock);
	for (j = 0; j < rounds; j++) {
		for (i = 0; i < 64; i++)
			p[i] = aclmalloc(i == 63 ? EXTENT : sizes[i % NSIZES] /
			    (1 + j % 3));
		for (i = 0; i < 64; i += 4)
			if (p[i] != NULL && (q = aclrealloc(p[i],
			    aclheap_usable_size(p[i]) * 3 / 4)) != NULL)
				p[i] = q;
		for (i = 0; i < 64; i++)
			(void)aclfree(p[i]);
		q = aclmemalign(4096, 5000);
		(void)aclfree(q);
		q = aclmalloc(100);
		(void)aclheap_root_set("work.one", q);
		(void)aclheap_root_get("work.one");
		(void)aclheap_root_cas("work.one", q, NULL);
		(void)aclheap_root_remove("work.one");
		(void)aclheap_root_list(roots, 16);
		(void)aclfree(q);
		(void)aclheap_stats(&st);
		/* Freeing what is not a live block must be refused, also
		 * where the scribble made it look like one. */
		(void)aclfree((void *)(uintptr_t)(TEST_BASE + 4096));
	}
	(void)aclheap_checkpoint();
	return 0;
}

/* ------------------------------------------------------------------ */
/* The hostile client */

struct hostile {
	uint8_t *m;
	uint64_t size;
	struct shm_geom g;
	uint64_t hwm;		/* slabs in use are below, as it was read */
	uint64_t seed;
};

/* The roots the superblock says are in use, as far as the table has
 * room. */
static uint64_t
hostile_roots(const struct hostile *x)
{
	uint64_t n = atomic_load(&((struct shm_super *)x->m)->roots_used);

	return n < x->g.roots_max ? n : x->g.roots_max;
}

enum region { R_SUPER, R_ROOTS, R_LEASES, R_SLABS, R_BITMAPS, R_SIDES,
    R_SESSIONS, R_DATA };

static uint8_t *
region(struct hostile *x, int r, uint64_t *len)
{
	struct shm_geom *g = &x->g;

	switch (r) {
	case R_SUPER:
		*len = SHM_SUPER_BYTES;
		return x->m;
	case R_ROOTS:
		/* The roots in use: the table is compact, and nothing past
		 * them is read (shm.h). */
		*len = hostile_roots(x) * sizeof(struct shm_root);
		return x->m + g->roots_off;
	case R_LEASES:
		*len = (uint64_t)g->nleases * sizeof(struct shm_lease);
		return x->m + g->leases_off;
	case R_SLABS:
		*len = g->nslabs * sizeof(struct shm_slab);
		return x->m + g->slabs_off;
	case R_BITMAPS:
		*len = g->nslabs * SHM_BITMAP_BYTES;
		return x->m + g->bitmaps_off;
	case R_SIDES:
		*len = g->nslabs * SHM_SIDE_BYTES;
		return x->m + g->sides_off;
	case R_SESSIONS:
		*len = SHM_SESSIONS * sizeof(struct shm_session);
		return x->m + g->sessions_off;
	default:
		*len = g->nslabs * SHM_SLAB_SIZE;
		return x->m + g->data_off;
	}
}

static struct shm_slab *
slab_at(struct hostile *x, uint64_t s)
{
	return (struct shm_slab *)(x->m + x->g.slabs_off) + s;
}

static uint32_t
word_at(struct hostile *x, uint64_t s)
{
	return atomic_load(&slab_at(x, s)->word);
}

static void
garbage(struct hostile *x, uint8_t *p, uint64_t len)
{
	uint64_t v, i;

	for (i = 0; i < len; i += 8) {
		v = rnd(&x->seed);
		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* n random 32-bit words (values random, or one of the adversarial ones)
 * at random aligned places of [p, p + len). */
static void
words(struct hostile *x, uint8_t *p, uint64_t len, int n)
{
	static const uint32_t bad[] = { UINT32_MAX, 0x7fffffffu, 0x80000000u,
	    0xffffu, 0x10000u, 1u };
	uint32_t v;
	uint64_t off;

	if (len < 4)
		return;
	while (n-- > 0) {
		off = (rnd(&x->seed) % (len / 4)) * 4;
		v = rnd(&x->seed) % 2 ? (uint32_t)rnd(&x->seed) :
		    bad[rnd(&x->seed) % (sizeof(bad) / sizeof(bad[0]))];
		memcpy(p + off, &v, 4);
	}
}

typedef void (*scribble_fn)(struct hostile *);

/* Client-writable: bitmaps. */
static void
bitmaps_random(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_BITMAPS, &len);

	words(x, p, x->hwm * SHM_BITMAP_BYTES, 200);
}

static void
bitmaps_ones(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_BITMAPS, &len);

	memset(p, 0xff, (x->hwm + 2) * SHM_BITMAP_BYTES);
}

static void
bitmaps_garbage(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_BITMAPS, &len);

	garbage(x, p, len);
}

/* Client-writable: side lines. */
static void
sides_random(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_SIDES, &len);

	words(x, p, x->hwm * SHM_SIDE_BYTES, 200);
}

static void
sides_max(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_SIDES, &len);

	memset(p, 0xff, (x->hwm + 2) * SHM_SIDE_BYTES);
}

static void
sides_garbage(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_SIDES, &len);

	garbage(x, p, len);
}

/* Client-writable: the side entries small classes keep in their slabs:
 * random words in some, all ones in others. */
static void
inslab_sides(struct hostile *x)
{
	uint64_t len, s;
	uint8_t *d = region(x, R_DATA, &len), *p;
	uint32_t w, cls, off;

	for (s = 0; s < x->hwm; s++) {
		w = word_at(x, s);
		cls = SHM_SLAB_CLS(w);
		if (SHM_SLAB_STATE(w) != SHM_SMALL || cls >= SHM_NINBAND)
			continue;
		off = slab_class_sideoff[cls];
		p = d + (s << SHM_SLAB_SHIFT) + off;
		if (s % 2)
			memset(p, 0xff, SHM_SLAB_SIZE - off);
		else
			words(x, p, SHM_SLAB_SIZE - off, 100);
	}
}

/* Client-writable: lease records, the fields their holder writes. */
static void
leases_client(struct hostile *x)
{
	uint64_t len, i;
	struct shm_lease *l = (struct shm_lease *)region(x, R_LEASES, &len);
	static const uint32_t slabs[] = { UINT32_MAX, 0x7fffffffu, 0 };

	for (i = 0; i < x->g.nleases; i++) {
		if (i >= 8 && l[i].owner_pid == 0 && i % 37 != 0)
			continue;
		atomic_store(&l[i].word, i % 2 ? UINT32_MAX :
		    SHM_BITMAP_WORDS);
		atomic_store(&l[i].mask, UINT64_MAX);
		atomic_store(&l[i].pending, i % 3 == 0 ? UINT32_MAX :
		    (uint32_t)(x->g.nslabs + 1 + i));
		atomic_store(&l[i].set_slab, i % 4 == 3 ?
		    (uint32_t)(rnd(&x->seed) % (x->hwm + 1)) :
		    i % 4 == 2 ? (uint32_t)x->g.nslabs : slabs[i % 3]);
	}
}

/* Lease records: the daemon's fields (a record naming a slab past the
 * end, a class out of range, an owner that is alive). */
static void
leases_daemon(struct hostile *x)
{
	uint64_t len, i;
	struct shm_lease *l = (struct shm_lease *)region(x, R_LEASES, &len);

	for (i = 0; i < 64; i++) {
		l[i].owner_pid = i % 2 ? 1 : (uint32_t)getppid();
		l[i].owner_start = rnd(&x->seed);
		l[i].slab = i % 3 == 0 ? UINT32_MAX : i % 3 == 1 ?
		    (uint32_t)x->g.nslabs + (uint32_t)i :
		    (uint32_t)(rnd(&x->seed) % (x->hwm + 1));
		l[i].cls = (uint8_t)(i % 2 ? 255 : rnd(&x->seed));
		atomic_store(&l[i].set_slab, (uint32_t)(rnd(&x->seed) %
		    (x->hwm + 1)));
		atomic_store(&l[i].word, (uint32_t)rnd(&x->seed) % 80);
		atomic_store(&l[i].mask, rnd(&x->seed));
	}
}

static void
leases_garbage(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_LEASES, &len);

	garbage(x, p, len);
}

/* Client-writable: block data.  Slabs past the high-water mark (free
 * memory), and the hostile's own blocks (hostile_blocks(), listed under
 * the root "hostile.table"), whole slabs of those whose class keeps its
 * side entries in the slab: a client may write anything in its blocks. */
static void
data_garbage(struct hostile *x)
{
	struct shm_root *r = (struct shm_root *)(x->m + x->g.roots_off);
	uint64_t len, s, i, off, *t = NULL;
	uint8_t *d = region(x, R_DATA, &len);
	uintptr_t base = (uintptr_t)atomic_load(&((struct shm_super *)
	    x->m)->base);
	int cls;

	for (s = x->hwm; s < x->g.nslabs && s < x->hwm + 16; s++)
		garbage(x, d + (s << SHM_SLAB_SHIFT), SHM_SLAB_SIZE);
	for (i = 0; i < hostile_roots(x); i++)
		if (strncmp(r[i].name, "hostile.table", 14) == 0 &&
		    (off = atomic_load(&r[i].value) - base) < x->size - 240)
			t = (uint64_t *)(x->m + off);
	for (i = 0; t != NULL && i < 30; i++) {
		if ((off = t[i] - base) < x->g.data_off || off >= x->size)
			continue;
		cls = slab_class_of(hostile_sizes[i % 3]);
		if (cls < SHM_NINBAND)
			garbage(x, x->m + (off & ~SHM_SLAB_MASK),
			    SHM_SLAB_SIZE);
		else
			garbage(x, x->m + off, slab_class_size[cls]);
	}
}

/* Daemon-owned: the superblock. */
static void
super_random(struct hostile *x)
{
	words(x, x->m, sizeof(struct shm_super), 12);
}

static void
super_offsets(struct hostile *x)
{
	struct shm_super *sb = (struct shm_super *)x->m;

	switch (x->seed % 4) {
	case 0:
		sb->bitmaps_off = x->size * 2;
		sb->sides_off = UINT64_MAX - 4096;
		sb->data_off = x->size - 4096;
		break;
	case 1:
		sb->nslabs = UINT64_MAX / 2;
		sb->slabs_off = x->size;
		sb->size = UINT64_C(2) << 30;
		break;
	case 2:
		atomic_store(&sb->slab_hwm, UINT64_MAX);
		atomic_store(&sb->move_slab, UINT32_MAX);
		sb->move_from = UINT32_MAX;
		sb->sessions_off = x->size + 1;
		break;
	default:
		sb->magic ^= 1;
		sb->roots_off = UINT64_MAX;
		sb->leases_off = x->size - 64;
		break;
	}
}

/* Daemon-owned: the roots. */
static void
roots_byte(struct hostile *x)
{
	uint64_t len, i;
	struct shm_root *r = (struct shm_root *)region(x, R_ROOTS, &len);

	for (i = 0; i < len / sizeof(*r); i++)
		if (strncmp(r[i].name, "scribble.r3", 12) == 0)
			r[i].name[3] = 0x01;
}

static void
roots_garbage(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_ROOTS, &len);

	garbage(x, p, len);
}

/* Daemon-owned: the slab table. */
static void
slabs_random(struct hostile *x)
{
	words(x, x->m + x->g.slabs_off, (x->hwm + 1) * sizeof(struct shm_slab),
	    40);
}

/* The slab word of one slab of each kind in use made to name a huge
 * class, a run past the end, a lease past the records, a tail naming
 * itself. */
static void
slabs_adversarial(struct hostile *x)
{
	struct shm_slab *sl;
	uint64_t s;
	uint32_t w, st, seen = 0;

	for (s = 0; s < x->hwm; s++) {
		sl = slab_at(x, s);
		w = atomic_load(&sl->word);
		st = SHM_SLAB_STATE(w);
		if (seen & (1u << st))
			continue;
		seen |= 1u << st;
		switch (st) {
		case SHM_SMALL:
			atomic_store(&sl->word, SHM_SLAB_OWNED(SHM_SLAB_WORD(
			    SHM_SMALL, 127, 0xffffffu), 0xffffffu));
			break;
		case SHM_LARGE_HEAD:
			sl->run = UINT32_MAX;
			sl->req = UINT64_MAX;
			break;
		case SHM_SPAN_TAIL:
		case SHM_LARGE_TAIL:
			sl->run = (uint32_t)s;
			break;
		default:
			atomic_store(&sl->word, SHM_SLAB_WORD(SHM_SMALL,
			    SHM_NCLASSES - 1, 0) | 7u);
			sl->run = UINT32_MAX;
			break;
		}
	}
}

static void
slabs_garbage(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_SLABS, &len);

	garbage(x, p, len);
}

/* Daemon-owned: the sessions (journals of requests in flight). */
static void
sessions_random(struct hostile *x)
{
	uint64_t len, i;
	struct shm_session *ss = (struct shm_session *)region(x, R_SESSIONS,
	    &len);

	for (i = 0; i < 32; i++) {
		atomic_store(&ss[i].state, (uint32_t)(i % 5));
		ss[i].pid = (uint32_t)getppid();
		ss[i].kind = (uint32_t)rnd(&x->seed) % 40;
		atomic_store(&ss[i].step, (uint32_t)rnd(&x->seed) % 8);
		garbage(x, (uint8_t *)ss[i].arg, sizeof(ss[i].arg));
		garbage(x, (uint8_t *)ss[i].text, sizeof(ss[i].text));
	}
}

static void
sessions_garbage(struct hostile *x)
{
	uint64_t len;
	uint8_t *p = region(x, R_SESSIONS, &len);

	garbage(x, p, len);
}

/* Client-writable regions, random words in a loop, while the good client
 * runs: values change between its requests. */
static void
concurrent_once(struct hostile *x)
{
	static const int rs[] = { R_BITMAPS, R_SIDES, R_LEASES };
	uint64_t len;
	int r = rs[rnd(&x->seed) % 3];
	uint8_t *p = region(x, r, &len);

	if (r == R_LEASES)
		words(x, p, len / 16, 4);
	else
		words(x, p, (x->hwm + 1) * (len / x->g.nslabs), 4);
	if (rnd(&x->seed) % 4 == 0)
		inslab_sides(x);
}

struct scenario {
	const char *name;
	scribble_fn fn;
	int concurrent;		/* scribble while the good client runs */
};

static const struct scenario client_writable[] = {
	{ "bitmaps: random words", bitmaps_random, 0 },
	{ "bitmaps: all ones", bitmaps_ones, 0 },
	{ "bitmaps: garbage", bitmaps_garbage, 0 },
	{ "side lines: random words", sides_random, 0 },
	{ "side lines: all ones", sides_max, 0 },
	{ "side lines: garbage", sides_garbage, 0 },
	{ "in-slab side entries", inslab_sides, 0 },
	{ "lease records: client fields", leases_client, 0 },
	{ "lease records: daemon fields", leases_daemon, 0 },
	{ "lease records: garbage", leases_garbage, 0 },
	{ "block data: garbage", data_garbage, 0 },
	{ "between requests", concurrent_once, 1 },
};

static const struct scenario daemon_owned[] = {
	{ "superblock: random words", super_random, 0 },
	{ "superblock: offsets 0", super_offsets, 0 },
	{ "superblock: offsets 1", super_offsets, 0 },
	{ "superblock: offsets 2", super_offsets, 0 },
	{ "superblock: offsets 3", super_offsets, 0 },
	{ "roots: a byte of a name", roots_byte, 0 },
	{ "roots: garbage", roots_garbage, 0 },
	{ "slab table: random words", slabs_random, 0 },
	{ "slab table: adversarial", slabs_adversarial, 0 },
	{ "slab table: garbage", slabs_garbage, 0 },
	{ "sessions: random", sessions_random, 0 },
	{ "sessions: garbage", sessions_garbage, 0 },
};

struct hostile_arg {
	const struct scenario *sc;
	uint64_t seed;
	unsigned ms;		/* concurrent: how long */
};

/* The hostile client: maps the segment itself, as any allowed user can
 * (the daemon made it rw for them), and writes. */
static int
hostile(void *arg)
{
	struct hostile_arg *a = arg;
	struct hostile x;
	struct stat st;
	uint64_t end;
	int fd;

	memset(&x, 0, sizeof(x));
	x.seed = a->seed;
	if ((fd = shm_open(td.shm, O_RDWR, 0)) == -1 || fstat(fd, &st) == -1) {
		fprintf(stderr, "hostile: %s: %s\n", td.shm, strerror(errno));
		return 1;
	}
	x.size = (uint64_t)st.st_size;
	close(fd);
	if (seg_geometry(x.size, &x.g) != 0)
		return 2;
	/* With the meta object over the daemon's ranges, as the daemon sees
	 * them: a client cannot write those (client_cannot_write_them), but
	 * the daemon must survive it from whoever can. */
	if ((x.m = td_seg_map(&td, x.size, MAP_SHARED)) == NULL)
		return 3;
	x.hwm = atomic_load(&((struct shm_super *)x.m)->slab_hwm);
	if (x.hwm > x.g.nslabs)
		x.hwm = x.g.nslabs;
	if (!a->sc->concurrent) {
		a->sc->fn(&x);
		return 0;
	}
	for (end = now_ms() + a->ms; now_ms() < end;) {
		a->sc->fn(&x);
		msleep(1);
	}
	return 0;
}

/* Hostile blocks, for the data scenario: of classes the good data does
 * not use, listed under a root for the hostile to find. */
static int
hostile_blocks(void *arg)
{
	uint64_t *t;
	int i;

	(void)arg;
	if (aclheap_attach(td.sock) != 0 ||
	    (t = aclmalloc(30 * sizeof(*t))) == NULL)
		return 1;
	for (i = 0; i < 30; i++)
		if ((t[i] = (uint64_t)(uintptr_t)aclmalloc(
		    hostile_sizes[i % 3])) == 0)
			return 2;
	return aclheap_root_set("hostile.table", t) == 0 ? 0 : 3;
}

/* ------------------------------------------------------------------ */

static void
up(void)
{
	td_init(&td, "scribble");
	snprintf(td.size, sizeof(td.size), "%s", SCRIBBLE_SIZE);
	td.log_level = "info";
	/* Every request of the good client is bounded by its alarm; a
	 * reconnect waits 1 s at most. */
	setenv("ACLHEAP_RECONNECT_TIMEOUT", "1", 1);
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
}

static void
down(void)
{
	td_cleanup(&td);
}

/* SIGTERM: the daemon ends within STOP_MS by its own exit, then starts
 * again. */
static void
restart(const char *when)
{
	int st;

	assert_alive(when);
	kill(td.pid, SIGTERM);
	st = td_wait_exit(&td, STOP_MS);
	if (st == -1) {
		kill(td.pid, SIGKILL);
		(void)td_wait_exit(&td, 5000);
		td.pid = -1;
		ck_abort_msg("%s: the daemon did not stop within %d ms of "
		    "SIGTERM\n%s", when, STOP_MS, td_log(&td));
	}
	ck_assert_msg(WIFEXITED(st), "%s: the daemon ended by %s\n%s", when,
	    status_str(st), td_log(&td));
	ck_assert_msg(td_start(&td, NULL) == 0, "%s: the daemon does not start "
	    "again\n%s", when, td_log(&td));
}

/* A live segment the daemon refused is saved for salvage, and the log
 * says so. */
static void
refused_saved(void)
{
	char path[400];
	struct stat st;

	if (strstr(td_log(&td), "refused live segment") == NULL)
		return;
	snprintf(path, sizeof(path), "%s/heap.seg.damaged", td.state);
	ck_assert_msg(stat(path, &st) == 0, "%s: %s\n%s", path,
	    strerror(errno), td_log(&td));
	ck_assert_int_eq(st.st_size, 16 << 20);
}

static void
scenario_run(const struct scenario *sc, int k)
{
	struct hostile_arg ha = { sc, UINT64_C(0x5eed0000) + (uint64_t)k, 1500 };
	int rounds = 4, st;
	pid_t hp;

	fprintf(stderr, "# scribble: %s (seed 0x%" PRIx64 ")\n", sc->name,
	    ha.seed);
	step("making the data", make_data, NULL);
	if (sc->fn == data_garbage)
		step("the hostile's own blocks", hostile_blocks, NULL);
	if (!sc->concurrent) {
		st = bounded(hostile, &ha, STEP_SECS);
		ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "the hostile client: %s", status_str(st));
		step("requests after the scribble", work, &rounds);
	} else {
		if ((hp = fork()) == 0) {
			alarm(STEP_SECS);
			_exit(hostile(&ha));
		}
		ck_assert_int_gt(hp, 0);
		rounds = 40;
		step("requests while scribbling", work, &rounds);
		st = wait_child(hp, STEP_SECS * 1000);
		ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "the hostile client: %s", status_str(st));
	}
	assert_alive("after the requests");
	(void)tool("status", NULL);
	(void)tool("verify", NULL);
	(void)tool("blocks", NULL);
	(void)tool("roots", NULL);
	(void)tool("checkpoint", NULL);
	assert_alive("after the tools");
	restart("first restart");
	refused_saved();
	rounds = 1;
	step("requests after the first restart", work, &rounds);
	restart("second restart");
	step("the data checkpointed before the scribble", check_data, NULL);
	ck_assert_msg(tool("verify", NULL) == 0, "the heap does not verify "
	    "after two restarts\n%s", td_log(&td));
	step("requests after the second restart", work, &rounds);
	assert_alive("at the end");
	/* SCRIBBLE_LOG=1: what the daemon said, for one who reads a run. */
	if (getenv("SCRIBBLE_LOG") != NULL)
		fprintf(stderr, "%s\n", td_log(&td));
}

START_TEST(scribble_client_writable)
{
	scenario_run(&client_writable[_i], _i);
}
END_TEST

START_TEST(scribble_daemon_owned)
{
	scenario_run(&daemon_owned[_i], 100 + _i);
}
END_TEST

/* ------------------------------------------------------------------ */
/* What a client maps of the daemon's ranges is read-only. */

struct poke {
	uintptr_t addr;
	const char *what;
};

#define FAULTED	42	/* poke()'s exit when its store faulted */

static void
on_segv(int sig)
{
	(void)sig;
	_exit(FAULTED);
}

/* In a child of an attached process: the page cannot be made writable,
 * and a store into it faults (SIGSEGV, caught here so that a sanitizer's
 * own handler does not stand in for it).  Exit 0 is a failure to fault. */
static int
poke(void *arg)
{
	struct poke *k = arg;
	volatile uint8_t *b = (volatile uint8_t *)k->addr;
	void *page = (void *)(k->addr & ~(uintptr_t)4095);
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	if (sigaction(SIGSEGV, &sa, NULL) != 0)
		return 5;

	if (mprotect(page, 4096, PROT_READ | PROT_WRITE) == 0) {
		fprintf(stderr, "%s: mprotect made it writable\n", k->what);
		return 3;
	}
	if (errno != EACCES) {
		fprintf(stderr, "%s: mprotect: %s\n", k->what, strerror(errno));
		return 4;
	}
	*b = (uint8_t)(*b ^ 0x5a);
	return 0;
}

START_TEST(client_cannot_write_them)
{
	struct shm_geom g;
	struct poke k[8];
	uint8_t before[8];
	uint64_t own[SEG_OWN][2], size = (uint64_t)16 << 20;
	void *blk;
	int i, n = 0, st;

	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	ck_assert_ptr_nonnull(blk = aclmalloc(100));
	ck_assert_int_eq(aclheap_root_set("ro.root", blk), 0);
	ck_assert_int_eq(seg_geometry(size, &g), 0);
	seg_own_ranges(&g, own);
	k[n++] = (struct poke){ TEST_BASE, "superblock" };
	k[n++] = (struct poke){ TEST_BASE + g.roots_off, "roots" };
	k[n++] = (struct poke){ TEST_BASE + own[0][1] - 1, "roots' end" };
	k[n++] = (struct poke){ TEST_BASE + g.slabs_off, "slab table" };
	k[n++] = (struct poke){ TEST_BASE + g.bitmaps_off - 1,
	    "slab table's end" };
	k[n++] = (struct poke){ TEST_BASE + g.sessions_off, "sessions" };
	k[n++] = (struct poke){ TEST_BASE + g.data_off - 1, "sessions' end" };
	for (i = 0; i < n; i++) {
		before[i] = *(volatile uint8_t *)k[i].addr;
		st = bounded(poke, &k[i], STEP_SECS);
		ck_assert_msg(st != -1 && WIFEXITED(st) &&
		    WEXITSTATUS(st) == FAULTED, "a client's store into the %s "
		    "(0x%" PRIxPTR "): %s, not SIGSEGV", k[i].what, k[i].addr,
		    status_str(st));
		ck_assert_uint_eq(*(volatile uint8_t *)k[i].addr, before[i]);
	}
	/* What clients must write stays writable to them: a lease record's
	 * page and the first slab's bitmap, and the data. */
	memset(blk, 0x77, 100);
	for (i = 0; i < 2; i++) {
		uintptr_t a = TEST_BASE + (i == 0 ? g.leases_off :
		    g.bitmaps_off);

		ck_assert_int_eq(mprotect((void *)(a & ~(uintptr_t)4095), 4096,
		    PROT_READ | PROT_WRITE), 0);
	}
	ck_assert_ptr_eq(aclheap_root_get("ro.root"), blk);
	aclfree(blk);
	aclheap_detach();
	assert_alive("after the stores");
	ck_assert_int_eq(tool("verify", NULL), 0);
}
END_TEST

Suite *
scribble_suite(void)
{
	Suite *s = suite_create("scribble");
	TCase *tc;

	tc = tcase_create("client-writable");
	tcase_add_checked_fixture(tc, up, down);
	tcase_add_loop_test(tc, scribble_client_writable, 0,
	    (int)(sizeof(client_writable) / sizeof(client_writable[0])));
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("read-only");
	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, client_cannot_write_them);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("daemon-owned");
	tcase_add_checked_fixture(tc, up, down);
	tcase_add_loop_test(tc, scribble_daemon_owned, 0,
	    (int)(sizeof(daemon_owned) / sizeof(daemon_owned[0])));
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
