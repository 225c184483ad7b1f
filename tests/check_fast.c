/* SPDX-License-Identifier: MIT */
/*
 * check_fast.c: the fast path under stress.  Processes and threads claim
 * blocks in shared slabs while the daemon reclaims emptied slabs (a small
 * heap makes it do so all the time); every block carries its owner's tag
 * and a pattern, checked at free, so a block handed out twice is caught.
 * Clients are killed in the middle of claiming; what they held privately
 * must come back.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
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
	td_init(&td, "fast");
	snprintf(td.size, sizeof(td.size), "8M");	/* ~110 slabs */
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
}

static void
down(void)
{
	td_cleanup(&td);
}

struct tagged {
	uint64_t owner;		/* pid << 16 | thread */
	uint64_t seq;
	uint64_t size;
};

static uint64_t
xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
stamp(unsigned char *p, size_t size, uint64_t owner, uint64_t seq)
{
	struct tagged t = { owner, seq, size };
	size_t j;

	if (size < sizeof(t)) {
		memset(p, (int)(seq & 0xff), size);
		return;
	}
	memcpy(p, &t, sizeof(t));
	for (j = sizeof(t); j < size; j++)
		p[j] = (unsigned char)(owner + seq + j);
}

static int
verify(const unsigned char *p, size_t size, uint64_t owner, uint64_t seq)
{
	struct tagged t;
	size_t j;

	if (size < sizeof(t)) {
		for (j = 0; j < size; j++)
			if (p[j] != (unsigned char)(seq & 0xff))
				return -1;
		return 0;
	}
	memcpy(&t, p, sizeof(t));
	if (t.owner != owner || t.seq != seq || t.size != size)
		return -1;
	for (j = sizeof(t); j < size; j++)
		if (p[j] != (unsigned char)(owner + seq + j))
			return -1;
	return 0;
}

/*
 * Fills up to n blocks of random sizes (ENOMEM is fine: the heap is small
 * on purpose), checks and frees them, again and again for ms.  Returns 0,
 * or 1 at the first block found changed or freed with the wrong size.
 */
static int
churn(uint64_t owner, int ms, int n)
{
	unsigned char **p = calloc((size_t)n, sizeof(*p));
	size_t *sz = calloc((size_t)n, sizeof(*sz));
	uint64_t end = now_ms() + (uint64_t)ms, seed = owner | 1, seq = 0;
	int i, k, rc = 0;

	while (rc == 0 && now_ms() < end) {
		for (k = 0; k < n; k++) {
			uint64_t r = xs(&seed) % 100;

			/* Few classes, so slabs fill and empty often; an
			 * extent now and then. */
			sz[k] = r < 60 ? 33 + xs(&seed) % 32 : r < 98 ?
			    1500 + xs(&seed) % 500 : 70000;
			if ((p[k] = aclmalloc(sz[k])) == NULL) {
				/* ENOMEM: the heap is small on purpose;
				 * ECONNRESET: the daemon went away in the
				 * middle of an extent's Alloc. */
				if (errno != ENOMEM && errno != ECONNRESET) {
					fprintf(stderr, "aclmalloc: %s (%s)\n",
					    strerror(errno),
					    aclheap_last_error());
					rc = 1;
				}
				break;
			}
			stamp(p[k], sz[k], owner, seq + (uint64_t)k);
		}
		/* Free in a shuffled order, checking every byte first. */
		for (i = 0; i < k; i++) {
			int j = (int)(xs(&seed) % (uint64_t)k);
			unsigned char *tp = p[i];
			size_t ts = sz[i];

			p[i] = p[j], sz[i] = sz[j];
			p[j] = tp, sz[j] = ts;
		}
		for (i = 0; i < k && rc == 0; i++) {
			uint64_t s;

			for (s = seq; s < seq + (uint64_t)k; s++)
				if (verify(p[i], sz[i], owner, s) == 0)
					break;
			if (s == seq + (uint64_t)k) {
				fprintf(stderr, "block %p of %zu bytes was "
				    "changed by someone else\n", (void *)p[i],
				    sz[i]);
				rc = 1;
			} else if (aclfree(p[i]) != sz[i]) {
				fprintf(stderr, "aclfree(%p) lost its size\n",
				    (void *)p[i]);
				rc = 1;
			}
		}
		seq += (uint64_t)n;
	}
	free(p);
	free(sz);
	return rc;
}

struct thr {
	uint64_t owner;
	int rc;
};

static void *
churn_thread(void *arg)
{
	struct thr *t = arg;

	t->rc = churn(t->owner, 4000, 800);
	return NULL;
}

static void
wait_no_orphans(uint64_t live, uint64_t max_orphans)
{
	struct shm_report rep;
	char err[256];
	uint64_t end = now_ms() + 20000;

	for (;;) {
		ck_assert_msg(shm_check(&conn_seg, &rep, err, sizeof(err)) == 0,
		    "%s", err);
		if ((rep.blocks_orphaned <= max_orphans &&
		    rep.blocks_live == live) || now_ms() > end)
			break;
		msleep(50);
	}
	ck_assert_uint_eq(rep.blocks_live, live);
	ck_assert_uint_le(rep.blocks_orphaned, max_orphans);
}

/* Processes and threads racing for blocks while slabs are reclaimed and
 * reused under them: nobody ever gets a block somebody else holds. */
START_TEST(claims_race_reclaim)
{
	enum { PROCS = 3, THREADS = 2 };
	pid_t pid[PROCS];
	int k, st;

	for (k = 0; k < PROCS; k++) {
		if ((pid[k] = fork()) == 0) {
			struct thr t[THREADS];
			pthread_t th[THREADS];
			int i, rc = 0;

			for (i = 0; i < THREADS; i++) {
				t[i].owner = (uint64_t)getpid() << 16 |
				    (uint64_t)i;
				pthread_create(&th[i], NULL, churn_thread,
				    &t[i]);
			}
			for (i = 0; i < THREADS; i++) {
				pthread_join(th[i], NULL);
				rc |= t[i].rc;
			}
			_exit(rc);
		}
	}
	for (k = 0; k < PROCS; k++) {
		st = wait_child(pid[k], 60000);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "process %d: status %d", k, st);
	}
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	wait_no_orphans(0, 0);
	/* Slabs were really taken back and reused: the daemon said so. */
	ck_assert_ptr_nonnull(strstr(td_log(&td), "reclaimed"));
}
END_TEST

/* Blocks allocated by one process are freed by another, locally. */
START_TEST(free_across_processes)
{
	enum { N = 2000 };
	uintptr_t *tab = aclcalloc(N, sizeof(*tab));
	int i, st;
	pid_t pid;

	for (i = 0; i < N; i++) {
		tab[i] = (uintptr_t)aclmalloc((size_t)(i % 500));
		ck_assert_uint_ne(tab[i], 0);
		memset((void *)tab[i], i & 0xff, (size_t)(i % 500));
	}
	if ((pid = fork()) == 0) {
		for (i = 0; i < N; i++)
			if (aclfree((void *)tab[i]) != (size_t)(i % 500))
				_exit(1);
		_exit(0);
	}
	st = wait_child(pid, 30000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (i = 0; i < N; i++) {
		errno = 0;
		ck_assert_uint_eq(aclfree((void *)tab[i]), 0);
		ck_assert_int_eq(errno, EINVAL);
	}
	/* Everything freed is found again by the fast path. */
	ck_assert_int_eq(churn((uint64_t)getpid() << 16, 300, 200), 0);
	aclfree(tab);
	wait_no_orphans(0, 64 * SHM_NCLASSES);
}
END_TEST

/* A client killed at random moments while claiming: the heap checks out
 * each time, and what it held privately goes back (a kill between a
 * free's or an allocation's two steps can leave that one block claimed:
 * at most one each). */
START_TEST(killed_while_claiming)
{
	struct shm_report rep;
	char err[256];
	uint64_t live_before;
	int i, st;
	pid_t pid;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	ck_assert_int_eq(shm_check(&conn_seg, &rep, err, sizeof(err)), 0);
	live_before = rep.blocks_live;
	for (i = 0; i < 12; i++) {
		int p[2];
		char c;

		ck_assert_int_eq(pipe(p), 0);
		if ((pid = fork()) == 0) {
			uint64_t seed = (uint64_t)getpid();
			int n = 0;

			close(p[0]);
			if (write(p[1], "x", 1) != 1)
				_exit(2);
			for (;;) {
				void *q = aclmalloc(xs(&seed) % 3000);

				if (q == NULL)
					continue;
				if (n < 64)
					n++;	/* the first 64 stay allocated */
				else
					aclfree(q);
			}
		}
		close(p[1]);
		ck_assert_int_eq(read(p[0], &c, 1), 1);
		close(p[0]);
		msleep(5 + i * 7);
		kill(pid, SIGKILL);
		st = wait_child(pid, 10000);
		ck_assert(WIFSIGNALED(st));
		ck_assert_msg(shm_check(&conn_seg, &rep, err, sizeof(err)) == 0,
		    "after kill %d: %s", i, err);
	}
	/* The private sets come back; the blocks each client kept (up to 64
	 * each) stay, as persistent data does. */
	{
		uint64_t end = now_ms() + 20000;

		do {
			ck_assert_int_eq(shm_check(&conn_seg, &rep, err,
			    sizeof(err)), 0);
			if (rep.blocks_orphaned <= 12)
				break;
			msleep(50);
		} while (now_ms() < end);
		ck_assert_uint_le(rep.blocks_orphaned, 12);
		ck_assert_uint_le(rep.blocks_live, live_before + 12 * 65);
		ck_assert_uint_ge(rep.blocks_live, live_before + 12);
	}
	/* And the daemon serves a fresh client. */
	ck_assert_int_eq(churn((uint64_t)getpid() << 16, 300, 100), 0);
}
END_TEST

/* Stops or kills the process at one point of its next claim. */
static int trap_where = -1, trap_sig;

static void
claim_trap(int where)
{
	if (where == trap_where)
		raise(trap_sig);
}

/* Lease records in use that announce a claim. */
static unsigned
claims_announced(void)
{
	unsigned n = 0, i;

	for (i = 0; i < seg_lease_hwm(&conn_seg); i++)
		if (conn_seg.leases[i].owner_pid != 0 &&
		    atomic_load(&conn_seg.leases[i].pending) != 0)
			n++;
	return n;
}

/* The daemon returns a dead claimer's lease, which can wait for the
 * reaper (the socket can close before the process is gone). */
static void
wait_unannounced(void)
{
	uint64_t end = now_ms() + 20000;

	while (claims_announced() != 0 && now_ms() < end)
		msleep(20);
	ck_assert_uint_eq(claims_announced(), 0);
}

/*
 * A child that allocates 48-byte blocks, telling the parent of each on fd,
 * with the trap set after its first claim: the next one stops or kills it
 * at `where`.  Returns its pid; exits 3 if no claim came.
 */
static size_t trap_size = 48;
static int trap_count = 300;

static pid_t
trapped_client(int where, int sig, int *fd)
{
	int p[2], i;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		for (i = 0; i < trap_count; i++) {
			if (aclmalloc(trap_size) == NULL ||
			    write(p[1], "b", 1) != 1)
				_exit(2);
			if (i == 0) {
				trap_where = where;
				trap_sig = sig;
				slab_claim_hook = claim_trap;
			}
		}
		_exit(3);
	}
	close(p[1]);
	*fd = p[0];
	return pid;
}

/* What the child handed out before it died. */
static uint64_t
count_blocks(int fd)
{
	uint64_t n = 0;
	char buf[64];
	ssize_t k;

	while ((k = read(fd, buf, sizeof(buf))) > 0)
		n += (uint64_t)k;
	close(fd);
	return n;
}

/*
 * A client killed at each point of a claim (announced; bits it is taking
 * recorded; bits taken) leaks nothing: the daemon returns exactly what it
 * took, every block it handed out stays live, and the record is freed.
 * The last round stops the client inside a claim, crashes and restarts
 * the daemon (which must leave a live claimer's slab alone), then kills
 * it.
 */
static void
claim_kills(void)
{
	static const int where[] = { SLAB_HOOK_ANNOUNCED, SLAB_HOOK_INTENT,
	    SLAB_HOOK_TAKEN, SLAB_HOOK_TAKEN };
	struct shm_report rep;
	char err[256];
	uint64_t live;
	unsigned k;
	int st, fd;
	pid_t pid;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	for (k = 0; k < 4; k++) {
		ck_assert_int_eq(shm_check(&conn_seg, &rep, err, sizeof(err)),
		    0);
		live = rep.blocks_live;
		if (k < 3) {
			pid = trapped_client(where[k], SIGKILL, &fd);
			st = wait_child(pid, 10000);
		} else {
			pid = trapped_client(where[k], SIGSTOP, &fd);
			ck_assert_int_eq(waitpid(pid, &st, WUNTRACED), pid);
			ck_assert_msg(WIFSTOPPED(st), "status %d", st);
			ck_assert_uint_eq(claims_announced(), 1);
			ck_assert_int_eq(td_stop(&td, SIGKILL), SIGKILL);
			ck_assert_msg(td_start(&td, NULL) == 0, "%s",
			    td_log(&td));
			ck_assert_int_eq(aclheap_attach(NULL), 0);
			ck_assert_uint_eq(claims_announced(), 1);
			kill(pid, SIGKILL);
			st = wait_child(pid, 10000);
		}
		ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		    "round %u: status %d", k, st);
		live += count_blocks(fd);
		wait_no_orphans(live, 0);
		wait_unannounced();
	}
}

START_TEST(killed_inside_a_claim)
{
	claim_kills();
	/* And the slabs serve the next client. */
	ck_assert_int_eq(churn((uint64_t)getpid() << 16, 300, 100), 0);
}
END_TEST

/*
 * A client that dies while it gives back its private set (detach) has
 * cleared the bits while its record still lists them: nobody may claim
 * them until the daemon has seen to the record, or the daemon would clear
 * them again out of the new claimer's set.  The client owns the slab and
 * announces what it is doing, so the daemon cannot give the slab to
 * anyone meanwhile; once it has returned the lease the bits are free.
 */
START_TEST(killed_giving_back)
{
	struct shm_seg w;
	struct slab_block b;
	uintptr_t *p;
	uint32_t rec;
	int st;
	pid_t pid;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	ck_assert(p != MAP_FAILED);
	if ((pid = fork()) == 0) {
		*p = (uintptr_t)aclmalloc(48);	/* a lease, a private set */
		trap_where = SLAB_HOOK_DROP;
		trap_sig = SIGSTOP;
		slab_claim_hook = claim_trap;
		aclheap_detach();
		_exit(3);
	}
	ck_assert_int_eq(waitpid(pid, &st, WUNTRACED), pid);
	ck_assert_msg(WIFSTOPPED(st), "status %d", st);
	ck_assert_int_eq(slab_block_lookup(&conn_seg, *p, &b), 0);
	/* Stopped with bits cleared, its record still listing them and
	 * announcing the slab, which it owns: the daemon's move of the slab
	 * to another owner (done here as the daemon does it) backs off. */
	rec = slab_affinity(&conn_seg, b.slab);
	ck_assert_uint_ne(rec, 0);
	ck_assert_uint_ne(atomic_load(&conn_seg.leases[rec - 1].mask), 0);
	ck_assert_uint_eq(atomic_load(&conn_seg.leases[rec - 1].pending),
	    b.slab + 1);
	td_seg_writable(&td, conn_seg.base, conn_seg.size, &w);
	ck_assert_int_eq(slab_owner_move(&w, b.slab, 0), -EBUSY);
	munmap(w.sb, w.size);
	ck_assert_uint_eq(slab_affinity(&conn_seg, b.slab), rec);
	kill(pid, SIGKILL);
	st = wait_child(pid, 10000);
	ck_assert(WIFSIGNALED(st));
	wait_no_orphans(1, 0);
	wait_unannounced();
	ck_assert_int_eq(aclfree((void *)*p), 48);
	munmap(p, sizeof(*p));
}
END_TEST

static int ready_fd = -1;

static void *
worker(void *arg)
{
	int *rc = arg;
	void *p = aclmalloc(48);	/* a lease and a private set */

	/* _exit: this process is a fork of the test runner, whose memory
	 * is not ours to tear down (LeakSanitizer would call it leaked). */
	if (p == NULL || write(ready_fd, "r", 1) != 1)
		_exit(2);
	*rc = churn((uint64_t)getpid() << 16 | 7, 2500, 300);
	_exit(*rc);
}

/* A process whose main thread has exited while another thread allocates
 * is alive: a daemon restart must not take its private blocks away. */
START_TEST(zombie_leader_keeps_leases)
{
	char err[512];
	int st;
	pid_t pid;

	int rd[2];
	char c;

	ck_assert_int_eq(pipe(rd), 0);
	if ((pid = fork()) == 0) {
		static int rc;
		pthread_t t;

		ready_fd = rd[1];
		pthread_create(&t, NULL, worker, &rc);
		pthread_exit(NULL);
	}
	close(rd[1]);
	ck_assert_int_eq(read(rd[0], &c, 1), 1);	/* the worker holds leases */
	close(rd[0]);
	/* Wait until only the worker runs: the leader is a zombie. */
	{
		char path[64], line[128];
		uint64_t end = now_ms() + 10000;
		int zombie = 0;

		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		while (!zombie && now_ms() < end) {
			FILE *f = fopen(path, "r");

			while (f != NULL && fgets(line, sizeof(line), f))
				if (strncmp(line, "State:", 6) == 0 &&
				    strchr(line, 'Z') != NULL)
					zombie = 1;
			if (f != NULL)
				fclose(f);
		}
		ck_assert(zombie);
	}
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	/* While the worker goes on: its blocks keep their bits. */
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	{
		uint64_t end = now_ms() + 1500;

		while (now_ms() < end)
			ck_assert_msg(shm_check(&conn_seg, NULL, err,
			    sizeof(err)) == 0, "%s", err);
	}
	st = wait_child(pid, 30000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker: %d", st);
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
}
END_TEST

/* Live blocks in slabs nobody leases (the daemon's own) stay live while
 * the daemon sweeps for empty slabs. */
START_TEST(live_blocks_survive_sweeps)
{
	enum { N = 3000 };
	static void *p[N];
	uint64_t end;
	int i, bad = 0;
	pid_t pid;

	for (i = 0; i < N; i++) {
		/* 32-byte alignment goes to the daemon: unleased slabs. */
		p[i] = aclmemalign(32, 40);
		ck_assert_ptr_nonnull(p[i]);
	}
	/* Another process exhausts the heap and keeps asking for more:
	 * each refusal makes the daemon sweep every small slab. */
	if ((pid = fork()) == 0) {
		uint64_t stop = now_ms() + 4000;

		while (aclmalloc(1 << 20) != NULL)
			;
		while (now_ms() < stop)
			(void)aclmalloc(1 << 20);
		_exit(0);
	}
	end = now_ms() + 4000;
	while (now_ms() < end)
		for (i = 0; i < N; i++)
			bad += aclheap_usable_size(p[i]) != 64;
	ck_assert_int_eq(WEXITSTATUS(wait_child(pid, 30000)), 0);
	ck_assert_int_eq(bad, 0);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "on demand"));
	for (i = 0; i < N; i++)
		ck_assert_uint_eq(aclfree(p[i]), 40);
}
END_TEST

/* Live blocks, counted in the segment itself. */
static uint64_t
live_blocks(void)
{
	struct shm_stats st;

	shm_stats(&conn_seg, &st);
	return st.blocks;
}

/*
 * A free into the hot word (the current word of the class this thread last
 * freed into its own set) skips the slab table: it must refuse what the
 * general path refuses, change nothing when it does, and stop applying once
 * the word is no longer the thread's.
 */
/* Where the hot word starts: its class's current word. */
static uintptr_t
hot_lo(void)
{
	return fast_tc.cls[fast_tc.hot.cls].base;
}

/* No hot word, or cls's current word with that word's size. */
static int
hot_follows(uint32_t cls)
{
	const struct fast_class *c = &fast_tc.cls[cls];

	return fast_tc.hot.span == 0 || (fast_tc.hot.cls == cls &&
	    fast_tc.hot.span == (uint64_t)(64 - __builtin_clzll(
	    slab_word_valid(cls, c->word))) * slab_class_size[cls]);
}

START_TEST(hot_word_frees)
{
	enum { N = 300 };
	static unsigned char *x[N];
	unsigned char *a, *b, *c;
	_Atomic uint16_t *side;
	uint64_t before, s;
	uint32_t cls = (uint32_t)slab_class_of(64);
	uint16_t saved;
	char err[512];
	int i;

	a = aclmalloc(64);
	b = aclmalloc(64);
	c = aclmalloc(60);
	ck_assert(a != NULL && b != NULL && c != NULL);
	before = live_blocks();
	ck_assert_uint_eq(aclfree(a), 64);
	ck_assert_uint_ne(fast_tc.hot.span, 0);
	ck_assert_uint_eq(fast_tc.hot.cls, cls);
	ck_assert_uint_lt((uintptr_t)b - hot_lo(), fast_tc.hot.span);
	ck_assert_uint_lt((uintptr_t)c - hot_lo(), fast_tc.hot.span);

	ck_free_refused(a);		/* double free */
	ck_free_refused(b + 16);		/* inside a block */
	ck_free_refused(b + 1);
	/* A scribbled side entry is refused and left as it was. */
	s = slab_index(&conn_seg, (uintptr_t)b);
	side = (_Atomic uint16_t *)slab_side_base(&conn_seg, s, cls) +
	    ((uintptr_t)b - slab_addr(&conn_seg, s)) / 64;
	saved = atomic_load(side);
	atomic_store(side, 200);
	ck_free_refused(b);
	ck_assert_uint_eq(atomic_load(side), 200);
	atomic_store(side, saved);
	ck_assert_uint_eq(live_blocks(), before - 1);
	ck_assert_uint_eq(aclfree(c), 60);
	ck_assert_uint_eq(aclfree(b), 64);
	ck_assert_uint_eq(live_blocks(), before - 3);

	/* Words change under allocation; the hot word follows or goes. */
	for (i = 0; i < N; i++) {
		ck_assert_ptr_nonnull(x[i] = aclmalloc(64));
		memset(x[i], i, 64);
		ck_assert(hot_follows(cls));
	}
	for (i = 0; i < N; i++) {
		ck_assert_uint_eq(x[i][63], (unsigned char)i);
		ck_assert_uint_eq(aclfree(x[i]), 64);
		ck_assert(hot_follows(cls));
	}
	ck_assert_uint_eq(live_blocks(), before - 3);
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
}
END_TEST

/*
 * Slabs a live thread was leased stay its own: another thread allocating
 * the same class gets other slabs, even while the first one's slabs have
 * holes (sharing them would put both threads' frees on the same cache
 * lines).  Once the owner is gone, its slabs' holes are everybody's again.
 */
enum { AFF_N = 3000 };
static void *aff_a[AFF_N];

static void *
aff_owner(void *arg)
{
	void *p;
	int i;

	(void)arg;
	for (i = 0; i < AFF_N; i++) {
		if ((p = aclmalloc(64)) == NULL)
			return (void *)1;
		__atomic_store_n(&aff_a[i], p, __ATOMIC_RELEASE);
	}
	/* Holes everywhere: every other block goes back. */
	for (i = 0; i < AFF_N; i += 2) {
		aclfree(aff_a[i]);
		__atomic_store_n(&aff_a[i], NULL, __ATOMIC_RELEASE);
	}
	return NULL;
}

static int aff_stop_fd[2];

static void *
aff_owner_waits(void *arg)
{
	char ch;

	if (aff_owner(arg) != NULL)
		return (void *)1;
	/* Alive (leases held) until told to go. */
	if (read(aff_stop_fd[0], &ch, 1) != 1)
		return (void *)1;
	return NULL;
}

static int
in_owner_slabs(const void *p)
{
	uint64_t s = slab_index(&conn_seg, (uintptr_t)p);
	int i;

	for (i = 1; i < AFF_N; i += 2)
		if (slab_index(&conn_seg, (uintptr_t)aff_a[i]) == s)
			return 1;
	return 0;
}

START_TEST(threads_keep_to_their_slabs)
{
	static void *b[AFF_N], *c[AFF_N];
	pthread_t t;
	void *rc;
	int i, shared = 0, reused = 0;

	ck_assert_int_eq(pipe(aff_stop_fd), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, aff_owner_waits, NULL), 0);
	/* The owner has made its holes when it blocks on the pipe; poll
	 * its last free instead of sleeping. */
	while (__atomic_load_n(&aff_a[AFF_N - 2], __ATOMIC_ACQUIRE) != NULL ||
	    __atomic_load_n(&aff_a[AFF_N - 1], __ATOMIC_ACQUIRE) == NULL)
		sched_yield();
	for (i = 0; i < AFF_N; i++) {
		ck_assert_ptr_nonnull(b[i] = aclmalloc(64));
		shared += in_owner_slabs(b[i]);
	}
	ck_assert_int_eq(shared, 0);
	/* The owner goes (its leases with it); its holes are reused. */
	ck_assert_int_eq(write(aff_stop_fd[1], "x", 1), 1);
	ck_assert_int_eq(pthread_join(t, &rc), 0);
	ck_assert_ptr_null(rc);
	for (i = 0; i < AFF_N; i++) {
		ck_assert_ptr_nonnull(c[i] = aclmalloc(64));
		reused += in_owner_slabs(c[i]);
	}
	ck_assert_int_gt(reused, 0);
	for (i = 0; i < AFF_N; i++) {
		ck_assert_uint_eq(aclfree(b[i]), 64);
		ck_assert_uint_eq(aclfree(c[i]), 64);
		if (aff_a[i] != NULL)
			ck_assert_uint_eq(aclfree(aff_a[i]), 64);
	}
	close(aff_stop_fd[0]);
	close(aff_stop_fd[1]);
}
END_TEST

/*
 * The hot word is trusted by address only while the thread still holds
 * private blocks in it: those keep its slab from being reclaimed.  Here the
 * thread has handed out its whole word, the slab is emptied by another
 * thread, swept, and made again for 48-byte blocks; a free of one of those
 * at an address the old 64-byte word covered must free exactly it.
 */
struct stale {
	void **p;
	int n;
	uint64_t slab;		/* fill: stop once a block lies here */
	uintptr_t lo, hi;	/* ... at a 64-byte step in [lo, hi) */
	void *hit;
	void *keep[40000];
	int kept;
};

static void *
free_all(void *arg)
{
	struct stale *st = arg;
	int i;

	for (i = 0; i < st->n; i++)
		if (aclfree(st->p[i]) != 64)
			return (void *)1;
	return NULL;
}

static void *
fill_48(void *arg)
{
	struct stale *st = arg;
	void *q;

	while (st->kept < (int)(sizeof(st->keep) / sizeof(st->keep[0]))) {
		/* Sizes 33..48: each block's request tells it apart. */
		if ((q = aclmalloc(33 + st->kept % 16)) == NULL)
			return (void *)1;
		st->keep[st->kept++] = q;
		if (slab_index(&conn_seg, (uintptr_t)q) == st->slab &&
		    (uintptr_t)q >= st->lo && (uintptr_t)q < st->hi &&
		    ((uintptr_t)q - st->lo) % 64 == 0 &&
		    (uintptr_t)q != st->lo)
			st->hit = q;
		if (st->hit != NULL)
			return NULL;
	}
	return (void *)1;
}

START_TEST(stale_hot_word_is_not_trusted)
{
	static struct stale st;
	static void *blk[64];
	uint32_t cls = (uint32_t)slab_class_of(64), w;
	struct fast_class *c;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__ReleaseSlab rel = ACLHEAP__RELEASE_SLAB__INIT;
	Aclheap__Reply *r;
	uint64_t end, s, i48;
	size_t want, got;
	pthread_t t;
	void *rc;
	int n = 0, k;
	char err[512];

	/* Hand out the whole current word, with the hot word set on it.
	 * (The thread's cache exists once it has allocated.) */
	ck_assert_ptr_nonnull(fast_thread());
	c = &fast_tc.cls[cls];
	do {
		ck_assert_ptr_nonnull(blk[n] = aclmalloc(64));
		n++;
	} while (c->mask != 0 && n < 64);
	ck_assert_uint_eq(c->mask, 0);
	ck_assert_uint_eq(aclfree(blk[n - 1]), 64);
	ck_assert_uint_ne(fast_tc.hot.span, 0);
	ck_assert_ptr_nonnull(blk[n - 1] = aclmalloc(64));
	ck_assert_uint_eq(c->mask, 0);
	ck_assert_uint_ne(fast_tc.hot.span, 0);
	s = slab_index(&conn_seg, hot_lo());
	ck_assert_uint_eq(slab_index(&conn_seg, (uintptr_t)blk[0]), s);

	/* Another thread frees the lot; the lease goes back behind the
	 * thread cache's back; the sweep returns the slab. */
	st.p = blk;
	st.n = n;
	ck_assert_int_eq(pthread_create(&t, NULL, free_all, &st), 0);
	ck_assert_int_eq(pthread_join(t, &rc), 0);
	ck_assert_ptr_null(rc);
	rel.record = c->rec;
	q.body_case = ACLHEAP__REQUEST__BODY_RELEASE;
	q.release = &rel;
	ck_assert_int_eq(conn_call(&q, ACLHEAP__REPLY__BODY_OK, &r, 0), 0);
	end = now_ms() + 20000;
	while (SHM_SLAB_STATE(atomic_load(&conn_seg.slabs[s].word)) !=
	    SHM_FREE && now_ms() < end)
		msleep(20);
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&conn_seg.slabs[s].word)),
	    SHM_FREE);

	/* 48-byte blocks until one lies in the old hot word's range. */
	st.slab = s;
	st.lo = hot_lo();
	st.hi = hot_lo() + fast_tc.hot.span;
	ck_assert_int_eq(pthread_create(&t, NULL, fill_48, &st), 0);
	ck_assert_int_eq(pthread_join(t, &rc), 0);
	ck_assert_ptr_null(rc);
	ck_assert_ptr_nonnull(st.hit);
	for (k = 0; k < st.kept && st.keep[k] != st.hit; k++)
		;
	want = 33 + (size_t)k % 16;
	/* The block the stale word would have taken: side entry j of the
	 * old word, a different 48-byte block. */
	w = (uint32_t)((st.lo - slab_addr(&conn_seg, s)) / (64 * 64));
	i48 = w * 64 + ((uintptr_t)st.hit - st.lo) / 64;
	got = aclfree(st.hit);
	ck_assert_uint_eq(got, want);
	ck_assert_uint_eq(aclheap_usable_size(st.hit), 0);
	ck_assert_uint_eq(aclheap_usable_size((void *)(slab_addr(&conn_seg, s) +
	    i48 * 48)), 48);
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	for (k = 0; k < st.kept; k++)
		if (st.keep[k] != st.hit)
			ck_assert_uint_ne(aclfree(st.keep[k]), 0);
}
END_TEST

/* --- blocks above 8 KiB, in spans --------------------------------- */

static void
heap_checks(void)
{
	char err[512];

	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
}

static void
up_big(void)
{
	td_init(&td, "spans");
	snprintf(td.size, sizeof(td.size), "256M");
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
}

/* The claim's kill points for spans: a 64 KiB block (eight to a span of
 * eight slabs) and a 1 MiB one (four to 64 slabs). */
START_TEST(killed_inside_a_span_claim)
{
	trap_size = 65536;
	trap_count = 100;
	claim_kills();
	trap_size = 1 << 20;
	trap_count = 40;
	claim_kills();
}
END_TEST

static const size_t span_sizes[] = { 8193, 16384, 65536, 100000, 262144,
    1 << 20, 3 << 20, 4 << 20 };
#define NSPAN	(sizeof(span_sizes) / sizeof(span_sizes[0]))

/*
 * Once a thread holds a span of a class, a free followed by an allocation
 * of the same size is served in the process: with the daemon stopped
 * (SIGSTOP: any request would hang), a child goes on allocating and
 * freeing every size, and writes every byte it gets.
 */
START_TEST(span_pairs_need_no_daemon)
{
	int go[2], done[2], st;
	size_t k, i;
	char c;
	pid_t pid;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	ck_assert_int_eq(pipe(go), 0);
	ck_assert_int_eq(pipe(done), 0);
	if ((pid = fork()) == 0) {
		unsigned char *p;

		for (k = 0; k < NSPAN; k++)
			if (aclfree(aclmalloc(span_sizes[k])) != span_sizes[k])
				_exit(2);
		if (write(done[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		for (i = 0; i < 2000; i++)
			for (k = 0; k < NSPAN; k++) {
				if ((p = aclmalloc(span_sizes[k])) == NULL)
					_exit(4);
				p[0] = p[span_sizes[k] - 1] = (unsigned char)i;
				if (aclheap_usable_size(p) < span_sizes[k] ||
				    aclheap_usable_size(p) * 4 >
				    span_sizes[k] * 5 ||
				    aclfree(p) != span_sizes[k])
					_exit(5);
			}
		_exit(0);
	}
	ck_assert_int_eq(read(done[0], &c, 1), 1);
	ck_assert_int_eq(kill(td.pid, SIGSTOP), 0);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	st = wait_child(pid, 20000);
	kill(td.pid, SIGCONT);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %d", st);
	heap_checks();
}
END_TEST

/*
 * Blocks of every span class allocated here are freed by another process,
 * which gets the requested sizes back and sees our bytes; afterwards they
 * can be had again, and nothing leaks.
 */
START_TEST(span_blocks_freed_by_other_process)
{
	enum { PER = 5 };
	unsigned char *p[NSPAN * PER];
	uint64_t before;
	size_t k, i;
	int st;
	pid_t pid;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	before = live_blocks();
	for (i = 0; i < NSPAN * PER; i++) {
		k = i % NSPAN;
		ck_assert_ptr_nonnull(p[i] = aclmalloc(span_sizes[k]));
		memset(p[i], (int)i, span_sizes[k]);
	}
	ck_assert_uint_eq(live_blocks(), before + NSPAN * PER);
	if ((pid = fork()) == 0) {
		for (i = 0; i < NSPAN * PER; i++) {
			k = i % NSPAN;
			if (p[i][span_sizes[k] - 1] != (unsigned char)i ||
			    aclfree(p[i]) != span_sizes[k])
				_exit(2);
		}
		/* A second free of each is refused. */
		for (i = 0; i < NSPAN * PER; i++)
			if (aclfree(p[i]) != 0 || errno != EINVAL)
				_exit(3);
		_exit(0);
	}
	st = wait_child(pid, 30000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %d", st);
	ck_assert_uint_eq(live_blocks(), before);
	for (i = 0; i < NSPAN * PER; i++)
		ck_free_refused(p[i]);
	for (i = 0; i < NSPAN * PER; i++)
		ck_assert_ptr_nonnull(p[i] = aclmalloc(span_sizes[i % NSPAN]));
	for (i = 0; i < NSPAN * PER; i++)
		ck_assert_uint_eq(aclfree(p[i]), span_sizes[i % NSPAN]);
	heap_checks();
}
END_TEST

/* Bytes of the segment in memory (pages of its object that exist). */
static uint64_t
seg_allocated(void)
{
	size_t pages = conn_seg.size / 4096, i;
	unsigned char *vec = malloc(pages);
	uint64_t n = 0;

	ck_assert_ptr_nonnull(vec);
	ck_assert_int_eq(mincore((void *)conn_seg.base, conn_seg.size, vec),
	    0);
	for (i = 0; i < pages; i++)
		n += vec[i] & 1;
	free(vec);
	return n * 4096;
}

static void *
span_churn(void *arg)
{
	void *p[64];
	int i;

	(void)arg;
	for (i = 0; i < 64; i++) {
		if ((p[i] = aclmalloc(i % 2 ? 1 << 20 : 100000)) == NULL)
			return (void *)1;
		memset(p[i], i, i % 2 ? 1 << 20 : 100000);
	}
	for (i = 0; i < 64; i++)
		aclfree(p[i]);
	return NULL;	/* the thread's exit gives its spans back */
}

/*
 * Freed memory stays committed while it may be used again, and goes back
 * to the system once it has been free for --decay seconds.  The spans a
 * thread filled and emptied are reclaimed by the daemon's sweep, held,
 * then punched: the object's allocated size falls back.
 */
START_TEST(decay_gives_memory_back)
{
	const char *extra[] = { "--decay", "1", NULL };
	uint64_t empty, full, end;
	pthread_t t;
	void *rv;

	aclheap_detach();
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, extra) == 0, "daemon: %s", td_log(&td));
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	empty = seg_allocated();
	ck_assert_int_eq(pthread_create(&t, NULL, span_churn, NULL), 0);
	ck_assert_int_eq(pthread_join(t, &rv), 0);
	ck_assert_ptr_null(rv);
	full = seg_allocated();
	ck_assert_uint_gt(full, empty + (32 << 20));
	/* The sweep runs every 2 s, the decay is 1 s. */
	end = now_ms() + 20000;
	while (seg_allocated() > empty + (1 << 20) && now_ms() < end)
		msleep(100);
	ck_assert_msg(seg_allocated() <= empty + (1 << 20), "%" PRIu64
	    " bytes still allocated, %" PRIu64 " when empty, %" PRIu64
	    " when full", seg_allocated(), empty, full);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "gave back the memory"));
	heap_checks();
}
END_TEST

/* --- threads without a fixed count -------------------------------- */

#define MANY_THREADS	3000
#define MANY_ROUNDS	20
#define MANY_BLOCKS	32

static void
up_threads(void)
{
	td_init(&td, "threads");
	/* A lease holds a slab of its own: room for one a thread. */
	snprintf(td.size, sizeof(td.size), "512M");
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
}

/* Lease records in use (of any process). */
static unsigned
records_in_use(void)
{
	unsigned n = 0, i;

	for (i = 0; i < seg_lease_hwm(&conn_seg); i++)
		if (__atomic_load_n(&conn_seg.leases[i].owner_pid,
		    __ATOMIC_ACQUIRE) != 0)
			n++;
	return n;
}

static pthread_barrier_t many_alive, many_counted;
static _Atomic uint64_t many_allocs;

/* Allocates and frees 64-byte blocks, tagged, while all the others are
 * alive; waits to be counted, then exits (its record goes back). */
static void *
many_worker(void *arg)
{
	uint64_t owner = (uint64_t)getpid() << 16 | (uintptr_t)arg;
	unsigned char *p[MANY_BLOCKS];
	int r, k;

	if ((p[0] = aclmalloc(64)) == NULL)
		return (void *)1;
	aclfree(p[0]);
	atomic_fetch_add(&many_allocs, 1);
	pthread_barrier_wait(&many_alive);
	for (r = 0; r < MANY_ROUNDS; r++) {
		for (k = 0; k < MANY_BLOCKS; k++) {
			if ((p[k] = aclmalloc(64)) == NULL)
				return (void *)2;
			stamp(p[k], 64, owner, (uint64_t)(r * MANY_BLOCKS + k));
		}
		for (k = 0; k < MANY_BLOCKS; k++)
			if (verify(p[k], 64, owner,
			    (uint64_t)(r * MANY_BLOCKS + k)) != 0 ||
			    aclfree(p[k]) != 64)
				return (void *)3;
	}
	atomic_fetch_add(&many_allocs, MANY_ROUNDS * MANY_BLOCKS);
	pthread_barrier_wait(&many_counted);
	pthread_barrier_wait(&many_counted);
	return NULL;
}

/* n threads with small stacks; the caller counts between the barriers. */
static void
many_start(pthread_t *t, int n)
{
	pthread_attr_t a;
	int i;

	ck_assert_int_eq(pthread_attr_init(&a), 0);
	ck_assert_int_eq(pthread_attr_setstacksize(&a, 128 << 10), 0);
	ck_assert_int_eq(pthread_barrier_init(&many_alive, NULL,
	    (unsigned)n), 0);
	ck_assert_int_eq(pthread_barrier_init(&many_counted, NULL,
	    (unsigned)n + 1), 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(pthread_create(&t[i], &a, many_worker,
		    (void *)(uintptr_t)i), 0);
	pthread_attr_destroy(&a);
}

static void
many_join(pthread_t *t, int n)
{
	void *rc;
	int i, bad = 0;

	for (i = 0; i < n; i++) {
		ck_assert_int_eq(pthread_join(t[i], &rc), 0);
		bad += rc != NULL;
	}
	ck_assert_int_eq(bad, 0);
	pthread_barrier_destroy(&many_alive);
	pthread_barrier_destroy(&many_counted);
}

/*
 * 3,000 threads alive at once each allocate and free on the fast path:
 * more threads than older layouts had lease records.  Each holds a record
 * while it lives; at its exit the record goes back, and the next 3,000
 * threads take the same records again (the high-water mark stays put).
 */
START_TEST(many_threads_each_on_the_fast_path)
{
	static pthread_t t[MANY_THREADS];
	uint64_t socket0, socket1, total;
	unsigned base, alive, hwm1 = 0, round;
	uint64_t end;
	double share;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	base = records_in_use();
	for (round = 0; round < 2; round++) {
		atomic_store(&many_allocs, 0);
		socket0 = atomic_load(&fast_socket_allocs);
		many_start(t, MANY_THREADS);
		pthread_barrier_wait(&many_counted);
		/* Every thread is alive and has allocated. */
		alive = records_in_use();
		socket1 = atomic_load(&fast_socket_allocs);
		total = atomic_load(&many_allocs);
		pthread_barrier_wait(&many_counted);
		many_join(t, MANY_THREADS);
		share = 1.0 - (double)(socket1 - socket0) / (double)total;
		fprintf(stderr, "many_threads round %u: %d threads, %" PRIu64
		    " allocations, %" PRIu64 " through the socket: %.4f on "
		    "the fast path; %u records in use, high-water mark %u\n",
		    round, MANY_THREADS, total, socket1 - socket0, share,
		    alive - base, seg_lease_hwm(&conn_seg));
		ck_assert_uint_eq(total, (uint64_t)MANY_THREADS *
		    (MANY_ROUNDS * MANY_BLOCKS + 1));
		ck_assert_msg(share >= 0.999, "%.4f on the fast path", share);
		ck_assert_uint_ge(alive, base + MANY_THREADS);
		/* Each exit gave its record back, at the exit. */
		end = now_ms() + 2000;
		while (records_in_use() > base && now_ms() < end)
			msleep(10);
		ck_assert_uint_eq(records_in_use(), base);
		if (round == 0)
			hwm1 = seg_lease_hwm(&conn_seg);
		else
			ck_assert_uint_le(seg_lease_hwm(&conn_seg), hwm1 + 64);
	}
	heap_checks();
}
END_TEST

/* A process killed with a thousand threads holding leases gives every
 * record back, and their blocks with them. */
START_TEST(killed_with_many_threads_gives_all_back)
{
	int ready[2], st, n = 1000;
	unsigned base;
	uint64_t end;
	pid_t pid;
	char c;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	base = records_in_use();
	ck_assert_int_eq(pipe(ready), 0);
	if ((pid = fork()) == 0) {
		static pthread_t t[1000];

		many_start(t, n);
		pthread_barrier_wait(&many_counted);
		if (write(ready[1], "r", 1) != 1)
			_exit(2);
		pause();
		_exit(3);
	}
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_uint_ge(records_in_use(), base + (unsigned)n);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	st = wait_child(pid, 20000);
	ck_assert(WIFSIGNALED(st));
	end = now_ms() + 10000;
	while (records_in_use() > base && now_ms() < end)
		msleep(50);
	ck_assert_uint_eq(records_in_use(), base);
	heap_checks();
	close(ready[0]);
	close(ready[1]);
}
END_TEST

/* --- ready blocks: memory committed as slabs fill ----------------- */

/* Pages of slab s's memory that exist in the segment's object. */
static unsigned
slab_pages(uint64_t s)
{
	unsigned char vec[SHM_SLAB_SIZE / 4096];
	unsigned n = 0, i;

	ck_assert_int_eq(mincore((void *)slab_addr(&conn_seg, s),
	    SHM_SLAB_SIZE, vec), 0);
	for (i = 0; i < sizeof(vec); i++)
		n += vec[i] & 1;
	return n;
}

#define READY_N		700	/* 16-byte blocks: past the first page */

/*
 * A thread whose blocks of a class grow slowly (a pause longer than the
 * daemon's pace between its lease requests) gets a page's worth of blocks
 * ready at a time: its slab has memory for the blocks it holds, a page
 * and a private set more, not 64 KiB; no block past the ready ones is
 * handed out; every block keeps its bytes; the heap checks out.
 */
START_TEST(slabs_are_ready_as_they_fill)
{
	static unsigned char *p[READY_N];
	uint64_t s, rd = 0, last = 0;
	uint32_t nb = slab_class_nblocks[0], r;
	int i;

	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	ck_assert_ptr_nonnull(p[0] = aclmalloc(16));
	s = slab_index(&conn_seg, (uintptr_t)p[0]);
	r = atomic_load(&conn_seg.slabs[s].ready);
	ck_assert_uint_ge(r, 1);
	ck_assert_uint_le(r, 4096 / 16);
	/* A data page and a page of side entries, not sixteen. */
	ck_assert_uint_le(slab_pages(s), 2);
	stamp(p[0], 16, 1, 0);
	for (i = 1; i < READY_N; i++) {
		r = atomic_load(&conn_seg.slabs[s].ready);
		if (r != last) {
			msleep(3);	/* longer than the pace */
			last = r;
		}
		ck_assert_ptr_nonnull(p[i] = aclmalloc(16));
		stamp(p[i], 16, 1, (uint64_t)i);
		ck_assert_uint_eq(slab_index(&conn_seg, (uintptr_t)p[i]), s);
		ck_assert_uint_lt(((uintptr_t)p[i] - slab_addr(&conn_seg, s)) /
		    16, atomic_load(&conn_seg.slabs[s].ready));
	}
	rd = atomic_load(&conn_seg.slabs[s].ready);
	ck_assert_uint_lt(rd, nb);
	/* Blocks held, one private set of 64 and a page of 256 more. */
	ck_assert_uint_le(rd, READY_N + 64 + 256);
	ck_assert_uint_le(slab_pages(s), (rd * 16 + 4095) / 4096 + 1);
	for (i = 0; i < READY_N; i++)
		ck_assert_int_eq(verify(p[i], 16, 1, (uint64_t)i), 0);
	heap_checks();
	for (i = 0; i < READY_N; i++)
		ck_assert_uint_eq(aclfree(p[i]), 16);
	heap_checks();
	aclheap_detach();
}
END_TEST

#define FEW_THREADS	64

static pthread_barrier_t few_held;

static void *
one_block(void *arg)
{
	unsigned char *q = aclmalloc(64);

	(void)arg;
	if (q == NULL)
		return (void *)1;
	memset(q, 0x5a, 64);
	pthread_barrier_wait(&few_held);	/* all hold theirs */
	pthread_barrier_wait(&few_held);	/* measured */
	aclfree(q);
	return NULL;
}

/*
 * Sixty-four threads holding one 64-byte block each: every thread leases
 * a slab of its own, and each slab has a page of blocks ready, so the
 * heap grows by a few pages a thread rather than by a slab (64 KiB) a
 * thread.
 */
START_TEST(threads_each_commit_a_page)
{
	pthread_t t[FEW_THREADS];
	uint64_t before, held;
	void *rv;
	int i;

	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	before = seg_allocated();
	ck_assert_int_eq(pthread_barrier_init(&few_held, NULL,
	    FEW_THREADS + 1), 0);
	for (i = 0; i < FEW_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, one_block, NULL),
		    0);
	pthread_barrier_wait(&few_held);
	held = seg_allocated() - before;
	pthread_barrier_wait(&few_held);
	for (i = 0; i < FEW_THREADS; i++) {
		ck_assert_int_eq(pthread_join(t[i], &rv), 0);
		ck_assert_ptr_null(rv);
	}
	pthread_barrier_destroy(&few_held);
	/* A data page, a page of side entries, and the thread's share of
	 * lease records and bitmap pages. */
	ck_assert_msg(held <= FEW_THREADS * 12 * 1024, "%" PRIu64 " bytes for "
	    "%d threads of one block", held, FEW_THREADS);
	heap_checks();
	aclheap_detach();
}
END_TEST

/*
 * A slab only partly ready comes back from an image as it was: through a
 * checkpoint, a SIGKILL and the loss of the segment (a reboot), its blocks
 * hold their bytes, its ready count is the same and only its ready pages
 * are committed; then it fills further, past the old count.
 */
START_TEST(partly_ready_slab_comes_back)
{
	static unsigned char *p[READY_N];
	uint64_t s = 0;
	uint32_t r0, last = 0, r;
	int i;

	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	for (i = 0; i < 300; i++) {
		r = atomic_load(&conn_seg.slabs[s].ready);
		if (i > 0 && r != last) {
			msleep(3);
			last = r;
		}
		ck_assert_ptr_nonnull(p[i] = aclmalloc(16));
		stamp(p[i], 16, 2, (uint64_t)i);
		if (i == 0)
			s = slab_index(&conn_seg, (uintptr_t)p[0]);
	}
	r0 = atomic_load(&conn_seg.slabs[s].ready);
	ck_assert_uint_lt(r0, slab_class_nblocks[0]);
	ck_assert_int_eq(aclheap_root_set("ready", p[0]), 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	aclheap_detach();
	ck_assert_int_eq(td_stop(&td, SIGKILL), SIGKILL);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	ck_assert_uint_eq(atomic_load(&conn_seg.slabs[s].ready), r0);
	ck_assert_uint_le(slab_pages(s), (r0 * 16 + 4095) / 4096 + 1);
	for (i = 0; i < 300; i++)
		ck_assert_int_eq(verify(p[i], 16, 2, (uint64_t)i), 0);
	heap_checks();
	for (i = 300; i < READY_N; i++) {
		ck_assert_ptr_nonnull(p[i] = aclmalloc(16));
		stamp(p[i], 16, 2, (uint64_t)i);
	}
	ck_assert_uint_gt(atomic_load(&conn_seg.slabs[s].ready), r0);
	for (i = 0; i < READY_N; i++) {
		ck_assert_int_eq(verify(p[i], 16, 2, (uint64_t)i), 0);
		ck_assert_uint_eq(aclfree(p[i]), 16);
	}
	heap_checks();
	aclheap_detach();
}
END_TEST

Suite *
fast_suite(void)
{
	Suite *s = suite_create("fast");
	TCase *tc = tcase_create("fast");

	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, claims_race_reclaim);
	tcase_add_test(tc, free_across_processes);
	tcase_add_test(tc, killed_while_claiming);
	tcase_add_test(tc, killed_inside_a_claim);
	tcase_add_test(tc, killed_giving_back);
	tcase_add_test(tc, zombie_leader_keeps_leases);
	tcase_add_test(tc, live_blocks_survive_sweeps);
	tcase_add_test(tc, hot_word_frees);
	tcase_add_test(tc, threads_keep_to_their_slabs);
	tcase_add_test(tc, stale_hot_word_is_not_trusted);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	tc = tcase_create("spans");
	tcase_add_checked_fixture(tc, up_big, down);
	tcase_add_test(tc, killed_inside_a_span_claim);
	tcase_add_test(tc, span_pairs_need_no_daemon);
	tcase_add_test(tc, span_blocks_freed_by_other_process);
	tcase_add_test(tc, decay_gives_memory_back);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	tc = tcase_create("ready");
	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, slabs_are_ready_as_they_fill);
	tcase_add_test(tc, threads_each_commit_a_page);
	tcase_add_test(tc, partly_ready_slab_comes_back);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	tc = tcase_create("threads");
	tcase_add_checked_fixture(tc, up_threads, down);
	tcase_add_test(tc, many_threads_each_on_the_fast_path);
	tcase_add_test(tc, killed_with_many_threads_gives_all_back);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	return s;
}
