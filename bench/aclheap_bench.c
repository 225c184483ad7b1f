/* SPDX-License-Identifier: MIT */
/*
 * aclheap_bench.c: the project's benchmark.  One run prints one table in
 * which every figure is a ratio against a baseline measured in the same
 * run on the same machine: glibc malloc for allocation, a raw Unix-socket
 * ping-pong for the socket path, a bare libevent echo server for daemon
 * throughput, raw write+fsync and raw read for checkpoints and loads.
 * Each figure is the median of REPS repetitions, with its spread.
 *
 *   make bench                       build and run
 *   bench/aclheap_bench [-r REPS] [-q]   (-q: skip the 16 GiB heap)
 *
 *   bench/aclheap_bench -o N          only section N (see main)
 *   bench/aclheap_bench -m MAX        heaps with room to grow to MAX
 *                                     (--max-size; default: none)
 *   ACLHEAP_BENCH_DETAIL=1            the memory rows say, per class, the
 *                                     slabs, bytes handed out and cached,
 *                                     and the slabs' resident bytes
 *
 * It starts its own aclheapd (ACLHEAP_BUILDDIR/aclheapd) on a private
 * socket, state folder and base, through the tests' fixture
 * (tests/testutil.c), and removes everything it made.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "aclheap.h"
#include "client/client.h"
#include "tests/testutil.h"

#define RING		10000
#define RING_OPS	2000000
#define PAIRS		10000000
#define RTT_OPS		20000
#define PIPE_BATCH	64
#define PIPE_OPS	1000000

static int reps = 5;
static int quick;	/* -q: no 16 GiB heap */
static char bench_max[32];	/* -m MAX: --max-size, "": the size */
static int only;	/* -o N: only section N (1 alloc, 2 memory, 3 socket,
			 * 4 throughput, 5 persistence, 6 big heap, 7 deltas,
			 * 8 blocks above 8 KiB, 9 only its
			 * memory rows) */
static struct td td;

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stat3 {
	double med, lo, hi;
};

static struct stat3
summarize(double *v, int n)
{
	struct stat3 s;

	qsort(v, (size_t)n, sizeof(double), cmp_double);
	s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	s.lo = v[0];
	s.hi = v[n - 1];
	return s;
}

/* --- the daemon ------------------------------------------------------- */

/*
 * The tests' fixture (tests/testutil.c): a private folder, socket and
 * state folder.  The bench's daemon has its own base, writes no timed
 * checkpoints, logs at its default level, and may take a minute to load
 * a large image.
 */
static void
daemon_start(const char *size)
{
	static const char *const extra[] = { "--checkpoint-interval", "0",
	    NULL };

	snprintf(td.size, sizeof(td.size), "%s", size);
	snprintf(td.max, sizeof(td.max), "%s", bench_max);
	if (td_start(&td, extra) != 0) {
		fprintf(stderr, "aclheapd did not come up; see %s\n", td.log);
		exit(1);
	}
}

static void
daemon_stop(void)
{
	td_stop(&td, SIGTERM);
}

static void
cleanup(void)
{
	td_cleanup(&td);
}

/* --- allocation ------------------------------------------------------- */

typedef void *(*alloc_fn)(size_t);
typedef void (*free_fn)(void *);

static void
acl_free_void(void *p)
{
	aclfree(p);
}

static double
pairs(alloc_fn a, free_fn f)
{
	double t0 = now_ns();
	int i;

	for (i = 0; i < PAIRS; i++) {
		void *p = a(64);

		__asm__ volatile("" : : "r"(p) : "memory");
		f(p);
	}
	return (now_ns() - t0) / PAIRS;
}

struct ring_arg {
	alloc_fn a;
	free_fn f;
	uint64_t seed;
	double ns;
	uint64_t requested;
	uint64_t in_use;	/* measure: slab bytes in use at the end */
	int measure;
	int n;			/* live blocks; 0: RING */
	int dist;		/* 0: 8..1024 B; 1: 8 B..256 KiB (ring_size()) */
	uint64_t resident;	/* measure: segment bytes resident at the end */
};

static inline uint64_t
xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A ring's next size: 8..1024 bytes uniformly, or (dist 1) 8 B to
 * 256 KiB log-uniformly by octave (an octave from 8 B up at random, then a
 * size in it uniformly). */
static uint32_t
ring_size(int dist, uint64_t *s)
{
	uint32_t o;

	if (dist == 0)
		return 8 + (uint32_t)(xs(s) % 1017);
	o = 3 + (uint32_t)(xs(s) % 15);
	return (UINT32_C(1) << o) + (uint32_t)(xs(s) % (UINT32_C(1) << o));
}

/* Writes a new block: all of it up to 4 KiB, one byte a page above (page
 * faults count, a memset of megabytes would hide the allocator). */
static void
ring_write(void *p, uint32_t size, int v)
{
	uint32_t k;

	if (size <= 4096) {
		memset(p, v, size);
		return;
	}
	for (k = 0; k < size; k += 4096)
		((volatile unsigned char *)p)[k] = (unsigned char)v;
}

/* This process's resident set, from /proc/self/statm. */
static uint64_t
rss_bytes(void)
{
	unsigned long size, res;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL || fscanf(f, "%lu %lu", &size, &res) != 2)
		exit(1);
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Bytes of the heap's segment in memory, metadata included. */
static uint64_t
seg_resident(void)
{
	size_t pages = seg_extent(&conn_seg) / 4096, i;
	unsigned char *vec = malloc(pages);
	uint64_t n = 0;

	if (vec == NULL || mincore((void *)conn_seg.base, seg_extent(&conn_seg),
	    vec) != 0)
		exit(1);
	for (i = 0; i < pages; i++)
		n += vec[i] & 1;
	free(vec);
	return n * 4096;
}

/*
 * ACLHEAP_BENCH_DETAIL=1: where the segment's resident pages are, per
 * class (the slabs' data) and in the per-slab metadata, with what the
 * class holds: blocks handed out and blocks claimed by leases.  To find
 * what the memory rows spend beyond the requests.
 */
static void
resident_detail(void)
{
	struct shm_stats st;
	uint64_t res[SHM_NCLASSES] = { 0 }, ext = 0, s, w, n;
	unsigned char vec[16 * SHM_SPAN_MAX];
	uintptr_t a;
	int c, i;

	if (getenv("ACLHEAP_BENCH_DETAIL") == NULL)
		return;
	shm_stats(&conn_seg, &st);
	for (s = 0; s < conn_seg.nslabs; s++) {
		w = atomic_load(&conn_seg.slabs[s].word);
		if (SHM_SLAB_STATE(w) == SHM_FREE)
			continue;
		a = conn_seg.data + (s << SHM_SLAB_SHIFT);
		if (mincore((void *)a, SHM_SLAB_SIZE, vec) != 0)
			exit(1);
		for (n = 0, i = 0; i < 16; i++)
			n += vec[i] & 1;
		c = (int)SHM_SLAB_CLS(w);
		if ((SHM_SLAB_STATE(w) == SHM_SMALL ||
		    SHM_SLAB_STATE(w) == SHM_RECLAIMING) && c < SHM_NCLASSES)
			res[c] += n * 4096;
		else
			ext += n * 4096;	/* span tails, extents */
	}
	fprintf(stderr, "%7s %6s %10s %10s %10s %10s\n", "class", "slabs",
	    "handed", "cached", "requested", "resident");
	for (c = 0; c < SHM_NCLASSES; c++)
		if (st.cls[c].slabs != 0)
			fprintf(stderr, "%7u %6" PRIu64 " %10" PRIu64 " %10" PRIu64
			    " %10" PRIu64 " %10" PRIu64 "\n", slab_class_size[c],
			    st.cls[c].slabs, st.cls[c].used * slab_class_size[c],
			    st.cls[c].cached * slab_class_size[c], st.cls[c].req,
			    res[c]);
	fprintf(stderr, "tails and extents resident %" PRIu64 "\n", ext);
	{
		uint64_t lo = (uint64_t)((char *)conn_seg.bitmaps -
		    (char *)conn_seg.sb), hi = conn_seg.data -
		    (uintptr_t)conn_seg.sb, m = 0, p;
		unsigned char *v = malloc((hi - lo) / 4096 + 1);

		if (v == NULL || mincore((char *)conn_seg.sb + lo, hi - lo,
		    v) != 0)
			exit(1);
		for (p = 0; p < (hi - lo) / 4096; p++)
			m += v[p] & 1;
		free(v);
		fprintf(stderr, "bitmaps, side lines, sessions resident %"
		    PRIu64 "\n", m * 4096);
	}
}

/* 10,000 live blocks (ring_size()), replaced at random, each new block
 * written.  ns per replacement. */
static void *
ring_run(void *arg)
{
	struct ring_arg *r = arg;
	int n = r->n != 0 ? r->n : RING, i, k;
	int ops = r->dist ? RING_OPS / 4 : RING_OPS;
	void **slot = calloc((size_t)n, sizeof(*slot));
	uint32_t *sz = calloc((size_t)n, sizeof(*sz));
	uint64_t s = r->seed, req = 0;
	double t0;

	if (slot == NULL || sz == NULL)
		exit(1);
	/* The ring's own arrays are in memory before the baseline is taken:
	 * in glibc's and jemalloc's processes they would count as growth. */
	memset(slot, 0, (size_t)n * sizeof(*slot));
	memset(sz, 0, (size_t)n * sizeof(*sz));
	/* Growth, as for the RSS of glibc's and jemalloc's processes: what
	 * an empty heap has resident (superblock, roots, leases, slab
	 * table) is not the ring's. */
	if (r->measure == 2)
		r->resident = rss_bytes();
	else if (r->measure == 1)
		r->resident = seg_resident();
	for (i = 0; i < n; i++) {
		sz[i] = ring_size(r->dist, &s);
		if ((slot[i] = r->a(sz[i])) == NULL)
			exit(1);
		ring_write(slot[i], sz[i], i);
	}
	t0 = now_ns();
	for (i = 0; i < ops; i++) {
		k = (int)(xs(&s) % (uint64_t)n);
		r->f(slot[k]);
		sz[k] = ring_size(r->dist, &s);
		if ((slot[k] = r->a(sz[k])) == NULL)
			exit(1);
		ring_write(slot[k], sz[k], i);
	}
	r->ns = (now_ns() - t0) / ops;
	for (i = 0; i < n; i++)
		req += sz[i];
	r->requested = req;
	if (r->measure == 1) {
		struct aclheap_stats st;

		if (aclheap_stats(&st) != 0)
			exit(1);
		r->in_use = st.bytes_in_use;
		r->resident = seg_resident() - r->resident;
		resident_detail();
	} else if (r->measure == 2)
		r->resident = rss_bytes() - r->resident;
	for (i = 0; i < n; i++)
		r->f(slot[i]);
	free(slot);
	free(sz);
	return NULL;
}

/* Throughput (replacements per µs) of n threads, each with its ring. */
static double
ring_threads_d(alloc_fn a, free_fn f, int n, int dist)
{
	struct ring_arg r[4];
	pthread_t t[4];
	double tp = 0;
	int i;

	for (i = 0; i < n; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].a = a;
		r[i].f = f;
		r[i].seed = 0x9e3779b97f4a7c15ULL + (uint64_t)i;
		r[i].dist = dist;
		pthread_create(&t[i], NULL, ring_run, &r[i]);
	}
	for (i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		tp += 1e3 / r[i].ns;
	}
	return tp;
}

/* Throughput of n processes, each with its ring (in the shared heap for
 * aclheap, in their own heaps for glibc). */
static double
ring_procs(int acl, int n)
{
	int p[4][2], i;
	double tp = 0, ns;
	pid_t pid[4];

	for (i = 0; i < n; i++) {
		if (pipe(p[i]) != 0)
			exit(1);
		if ((pid[i] = fork()) == 0) {
			struct ring_arg r;

			memset(&r, 0, sizeof(r));
			r.a = acl ? aclmalloc : malloc;
			r.f = acl ? acl_free_void : free;
			r.seed = 77 + (uint64_t)i;
			ring_run(&r);
			if (write(p[i][1], &r.ns, sizeof(r.ns)) != sizeof(r.ns))
				_exit(1);
			_exit(0);
		}
		close(p[i][1]);
	}
	for (i = 0; i < n; i++) {
		if (read(p[i][0], &ns, sizeof(ns)) != sizeof(ns))
			exit(1);
		close(p[i][0]);
		waitpid(pid[i], NULL, 0);
		tp += 1e3 / ns;
	}
	return tp;
}

/* --- the socket path -------------------------------------------------- */

static long
pack_alloc(uint8_t *buf, size_t cap, uint64_t id, uint64_t size)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc m = ACLHEAP__ALLOC__INIT;

	m.size = size;
	q.id = id;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &m;
	return frame_pack_request(&q, buf, cap);
}

static long
pack_free(uint8_t *buf, size_t cap, uint64_t id, uint64_t addr)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Free m = ACLHEAP__FREE__INIT;

	m.addr = addr;
	q.id = id;
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &m;
	return frame_pack_request(&q, buf, cap);
}

/* Alloc+Free of 64 bytes over the socket through the library's own
 * request path: ns per pair (two round trips). */
static double
socket_pairs(size_t *req_len, size_t *rep_len)
{
	static uint8_t abuf[8192];
	struct frame_arena a;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc am = ACLHEAP__ALLOC__INIT;
	Aclheap__Free fm = ACLHEAP__FREE__INIT;
	Aclheap__Reply *r;
	uint64_t addr;
	double t0;
	int i;

	frame_arena_init(&a, abuf, sizeof(abuf));
	am.size = 64;
	t0 = now_ns();
	for (i = 0; i < RTT_OPS; i++) {
		q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
		q.alloc = &am;
		if (conn_request(&q, &r, &a, NULL) != 0)
			exit(1);
		addr = r->alloc->addr;
		fm.addr = addr;
		q.body_case = ACLHEAP__REQUEST__BODY_FREE;
		q.free = &fm;
		if (conn_request(&q, &r, &a, NULL) != 0)
			exit(1);
	}
	if (req_len != NULL) {
		uint8_t b[128];
		Aclheap__Reply rep = ACLHEAP__REPLY__INIT;
		Aclheap__AllocReply ar = ACLHEAP__ALLOC_REPLY__INIT;

		*req_len = (size_t)pack_alloc(b, sizeof(b), 12345, 64);
		ar.addr = addr;
		ar.usable = 64;
		rep.id = 12345;
		rep.body_case = ACLHEAP__REPLY__BODY_ALLOC;
		rep.alloc = &ar;
		*rep_len = (size_t)frame_pack_reply(&rep, b, sizeof(b));
	}
	return (now_ns() - t0) / RTT_OPS;
}

static void
full_io(int fd, void *buf, size_t n, int wr)
{
	char *p = buf;
	ssize_t k;

	while (n > 0) {
		k = wr ? write(fd, p, n) : read(fd, p, n);
		if (k <= 0)
			exit(1);
		p += k;
		n -= (size_t)k;
	}
}

/* A raw ping-pong of the same frame sizes between two processes on a
 * Unix stream socket, same number of round trips as socket_pairs(). */
static double
raw_pingpong(size_t req_len, size_t rep_len)
{
	uint8_t buf[256];
	double t0, ns;
	int sv[2], i;
	pid_t pid;

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	memset(buf, 1, sizeof(buf));
	if ((pid = fork()) == 0) {
		close(sv[0]);
		for (i = 0; i < 2 * RTT_OPS; i++) {
			full_io(sv[1], buf, req_len, 0);
			full_io(sv[1], buf, rep_len, 1);
		}
		_exit(0);
	}
	close(sv[1]);
	t0 = now_ns();
	for (i = 0; i < 2 * RTT_OPS; i++) {
		full_io(sv[0], buf, req_len, 1);
		full_io(sv[0], buf, rep_len, 0);
	}
	ns = (now_ns() - t0) / RTT_OPS;
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return ns;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		exit(1);
	return fd;
}

/*
 * One pipelining client: batches of 64 Allocs, then 64 Frees of what came
 * back, each batch in one write.  With echo != 0 the same bytes go to an
 * echo server instead, and the replies are read back as equal-sized
 * frames.  Returns requests per second.
 */
static void
pipe_client(const char *path, int echo, int wfd)
{
	static uint8_t out[PIPE_BATCH * 64], in[FRAME_MAX + 4];
	static uint8_t abuf[16384];
	uint64_t addr[PIPE_BATCH];
	struct frame_arena a;
	double t0, rate;
	size_t off, got, want, have;
	int fd = connect_to(path), i, n, done = 0;
	uint32_t len;

	frame_arena_init(&a, abuf, sizeof(abuf));
	if (!echo) {
		Aclheap__Request q = ACLHEAP__REQUEST__INIT;
		Aclheap__Hello h = ACLHEAP__HELLO__INIT;
		int pfd = -1;

		h.version = PROTOCOL_VERSION;
		q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
		q.hello = &h;
		n = (int)frame_pack_request(&q, out, sizeof(out));
		frame_send(fd, out, (size_t)n, -1);
		if (frame_recv(fd, in, sizeof(in), &len, &pfd) != 0)
			exit(1);
		if (pfd >= 0)
			close(pfd);
	}
	for (i = 0; i < PIPE_BATCH; i++)
		addr[i] = 0x380000100000 + (uint64_t)i * 64;
	t0 = now_ns();
	while (done < PIPE_OPS) {
		for (n = 0; n < 2; n++) {
			off = 0;
			for (i = 0; i < PIPE_BATCH; i++)
				off += (size_t)(n == 0 ?
				    pack_alloc(out + off, sizeof(out) - off,
				    (uint64_t)i, 64) :
				    pack_free(out + off, sizeof(out) - off,
				    (uint64_t)i, addr[i]));
			full_io(fd, out, off, 1);
			if (echo) {
				/* The echo returns what we sent; decode it as
				 * the daemon's replies are decoded, so both
				 * servers face the same client. */
				full_io(fd, in, off, 0);
				for (i = 0, got = 0; i < PIPE_BATCH; i++) {
					frame_peek(in + got, off - got, &len);
					frame_arena_reset(&a);
					if (frame_unpack_request(&a, in + got + 4,
					    len) == NULL)
						exit(1);
					got += 4 + len;
				}
				done += PIPE_BATCH;
				continue;
			}
			/* Read the replies in as few reads as the kernel
			 * allows, as the echo client does, then parse. */
			for (i = 0, got = 0, have = 0; i < PIPE_BATCH; i++) {
				Aclheap__Reply *r;

				while (frame_peek(in + got, have - got, &len) <= 0
				    || have - got < 4 + len) {
					ssize_t k;

					if (got > 0) {
						memmove(in, in + got, have - got);
						have -= got;
						got = 0;
					}
					k = read(fd, in + have, sizeof(in) - have);
					if (k <= 0)
						exit(1);
					have += (size_t)k;
				}
				want = len;
				frame_arena_reset(&a);
				r = frame_unpack_reply(&a, in + got + 4, want);
				if (r == NULL || r->error != 0)
					exit(1);
				if (n == 0)
					addr[i] = r->alloc->addr;
				got += 4 + want;
			}
			done += PIPE_BATCH;
		}
	}
	rate = done / ((now_ns() - t0) / 1e9);
	if (write(wfd, &rate, sizeof(rate)) != sizeof(rate))
		_exit(1);
	close(fd);
}

static double
pipelined(const char *path, int echo, int clients)
{
	int p[2], i;
	double total = 0, r;
	pid_t pid[8];

	if (pipe(p) != 0)
		exit(1);
	for (i = 0; i < clients; i++)
		if ((pid[i] = fork()) == 0) {
			close(p[0]);
			pipe_client(path, echo, p[1]);
			_exit(0);
		}
	close(p[1]);
	for (i = 0; i < clients; i++) {
		if (read(p[0], &r, sizeof(r)) != sizeof(r))
			exit(1);
		total += r;
	}
	for (i = 0; i < clients; i++)
		waitpid(pid[i], NULL, 0);
	close(p[0]);
	return total;
}

/* The baseline server: libevent read events, echo everything back. */
static void
echo_read(evutil_socket_t fd, short what, void *arg)
{
	static uint8_t buf[65536];
	struct event *ev = *(struct event **)arg;
	ssize_t n = read(fd, buf, sizeof(buf));

	(void)what;
	if (n <= 0) {
		event_free(ev);
		free(arg);
		close(fd);
		return;
	}
	full_io(fd, buf, (size_t)n, 1);
}

static void
echo_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct event_base *eb = arg;
	struct event **evp = malloc(sizeof(*evp));
	int fd = accept(lfd, NULL, NULL);

	(void)what;
	*evp = event_new(eb, fd, EV_READ | EV_PERSIST, echo_read, evp);
	event_add(*evp, NULL);
}

static pid_t
echo_server(const char *path)
{
	struct sockaddr_un sun;
	int lfd;
	pid_t pid;

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(lfd, 16) != 0)
		exit(1);
	if ((pid = fork()) == 0) {
		struct event_base *eb = event_base_new();
		struct event *ev = event_new(eb, lfd, EV_READ | EV_PERSIST,
		    echo_accept, eb);

		event_add(ev, NULL);
		event_base_dispatch(eb);
		_exit(0);
	}
	close(lfd);
	return pid;
}

/* --- persistence ------------------------------------------------------ */

/* Writes bytes of a buffer to a file in the state folder, fsync: ns. */
static double
raw_write(uint64_t bytes)
{
	char path[400];
	size_t chunk = 4 << 20;
	char *buf = malloc(chunk);
	uint64_t done = 0;
	double t0;
	int fd;

	memset(buf, 0x5a, chunk);
	snprintf(path, sizeof(path), "%s/raw.bin", td.state);
	t0 = now_ns();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	while (done < bytes) {
		size_t n = bytes - done < chunk ? bytes - done : chunk;

		full_io(fd, buf, n, 1);
		done += n;
	}
	fsync(fd);
	close(fd);
	t0 = now_ns() - t0;
	free(buf);
	return t0;
}

static void
drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	sync();
	if (fd >= 0) {
		if (write(fd, "3\n", 2) != 2)
			(void)0;
		close(fd);
	}
}

static double
raw_read(const char *path)
{
	size_t chunk = 4 << 20;
	char *buf = malloc(chunk);
	double t0 = now_ns();
	ssize_t n;
	int fd = open(path, O_RDONLY);

	while ((n = read(fd, buf, chunk)) > 0)
		;
	close(fd);
	free(buf);
	return now_ns() - t0;
}

static uint64_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* ms the daemon's log says the last image load took. */
static double
logged_load_ms(void)
{
	char line[1024];
	double ms = -1;
	FILE *f = fopen(td.log, "r");
	char *p;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if ((p = strstr(line, "bytes) in ")) != NULL &&
		    strstr(line, "loaded image") != NULL)
			ms = strtod(p + 10, NULL);
	if (f != NULL)
		fclose(f);
	return ms;
}

/*
 * One checkpoint through aclheapctl (full: --full), which says what it
 * wrote: the daemon's own time for it in ns (the thread's, from the cut to
 * the durable file), the bytes written and the kind.
 */
static double
ctl_checkpoint(int full, uint64_t *bytes, char *kind, size_t klen)
{
	const char *b = getenv("ACLHEAP_BUILDDIR");
	char cmd[512], out[2048], *p, *e;
	double ms = -1;
	size_t n;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s/aclheapctl -s %s checkpoint %s--json",
	    b ? b : ".", td.sock, full ? "--full " : "");
	if ((f = popen(cmd, "r")) == NULL)
		exit(1);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	if (pclose(f) != 0) {
		fprintf(stderr, "checkpoint: %s\n", out);
		exit(1);
	}
	*bytes = 0;
	kind[0] = '\0';
	if ((p = strstr(out, "\"bytes\":")) != NULL)
		*bytes = strtoull(p + 8, NULL, 10);
	if ((p = strstr(out, "\"duration_ms\":")) != NULL)
		ms = strtod(p + 14, NULL);
	if ((p = strstr(out, "\"kind\":\"")) != NULL &&
	    (e = strchr(p + 8, '"')) != NULL)
		snprintf(kind, klen, "%.*s", (int)(e - p - 8), p + 8);
	return ms * 1e6;
}

/* --- the table -------------------------------------------------------- */

static void
row(const char *what, struct stat3 s, const char *goal, const char *unit)
{
	printf("| %-52s | %6.2f | %6.2f-%-6.2f | %-8s |%s\n", what, s.med,
	    s.lo, s.hi, goal, unit);
}

static double v[16], w[16], ratio[16];

/*
 * The ring's sizes replayed without allocating: the sum over size classes
 * of each class's highest population times its block size.  No allocator
 * with these size classes that keeps them apart (and gives memory back only
 * when a whole slab empties) can hold the ring in less, whatever its slab
 * size.
 */
static uint64_t
ring_class_peaks(uint64_t seed, int n)
{
	uint64_t pop[SHM_NCLASSES] = { 0 }, peak[SHM_NCLASSES] = { 0 }, s = seed;
	uint64_t total = 0;
	uint32_t *sz = calloc((size_t)n, sizeof(*sz));
	int i, k, c;

	if (sz == NULL)
		exit(1);
	for (i = 0; i < n; i++) {
		sz[i] = 8 + (uint32_t)(xs(&s) % 1017);
		c = slab_class_of(sz[i]);
		if (++pop[c] > peak[c])
			peak[c] = pop[c];
	}
	for (i = 0; i < RING_OPS; i++) {
		k = (int)(xs(&s) % (uint64_t)n);
		pop[slab_class_of(sz[k])]--;
		sz[k] = 8 + (uint32_t)(xs(&s) % 1017);
		c = slab_class_of(sz[k]);
		if (++pop[c] > peak[c])
			peak[c] = pop[c];
	}
	for (c = 0; c < SHM_NCLASSES; c++)
		total += peak[c] * slab_class_size[c];
	free(sz);
	return total;
}

/* A new daemon on a new, empty heap of the given size, attached. */
static void
fresh_heap(const char *size)
{
	char cmd[400];

	aclheap_detach();
	daemon_stop();
	td_shm_unlink(&td);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", td.state);
	if (system(cmd) != 0)
		exit(1);
	daemon_start(size);
	if (aclheap_attach(td.sock) != 0)
		exit(1);
}

/* Memory first, each on a fresh heap: slab bytes in use with a ring live,
 * over what the ring asked for, for the ring and for ten times its blocks
 * (to show what is fixed per size class and what grows with the heap).
 * Both are freed: the sections after start from an empty heap, as glibc's
 * runs do (a 5 MB ring left live in the heap, untouched, still cost the
 * 2-thread ring about a tenth of its scaling). */
static void
sec_memory(void)
{
	static const int sizes[] = { 10 * RING, RING };
	struct ring_arg r[2];
	pthread_t t;
	struct stat3 s;
	int i, k;

	for (k = 0; k < 2; k++) {
		memset(&r[k], 0, sizeof(r[k]));
		r[k].a = aclmalloc;
		r[k].f = acl_free_void;
		r[k].seed = 4242;
		r[k].measure = 1;
		r[k].n = sizes[k];
		if (k > 0)
			fresh_heap("1G");
		/* In a thread of its own, whose leases go with it, as the
		 * rings of the sections after run. */
		if (pthread_create(&t, NULL, ring_run, &r[k]) != 0 ||
		    pthread_join(t, NULL) != 0)
			exit(1);
	}
	for (k = 1; k >= 0; k--) {
		for (i = 0; i < reps; i++)
			ratio[i] = (double)r[k].in_use /
			    (double)r[k].requested;
		s = summarize(ratio, reps);
		if (sizes[k] == RING)
			row("memory: slab bytes in use / bytes requested (ring)",
			    s, "<= 1.2", "");
		else
			row("memory, ring of 100k blocks (51 MB)", s, "", "");
		printf("|   %" PRIu64 " B in slabs for %" PRIu64 " B requested; "
		    "%" PRIu64 " B of the segment resident\n", r[k].in_use,
		    r[k].requested, r[k].resident);
		printf("|   floor with these size classes kept apart (each "
		    "class's peak population): %.2f\n",
		    (double)ring_class_peaks(r[k].seed, sizes[k]) /
		    (double)r[k].requested);
	}
}

/* The ring of dist in one thread and two, against glibc, and how two
 * threads scale over one. */
static void
ring_rows(int dist, const char *one, const char *two, const char *scaling)
{
	double x[16], g1[16];
	struct stat3 s;
	int i;

	for (i = 0; i < reps; i++) {
		v[i] = ring_threads_d(aclmalloc, acl_free_void, 1, dist);
		w[i] = ring_threads_d(malloc, free, 1, dist);
		ratio[i] = w[i] / v[i];		/* time ratio */
	}
	s = summarize(ratio, reps);
	row(one, s, "<= 1.5", "");
	printf("|   aclheap %.1f ns, glibc %.1f ns per replacement\n",
	    1e3 / summarize(v, reps).med, 1e3 / summarize(w, reps).med);
	memcpy(x, v, sizeof(x));
	memcpy(g1, w, sizeof(g1));
	for (i = 0; i < reps; i++) {
		v[i] = ring_threads_d(aclmalloc, acl_free_void, 2, dist);
		w[i] = ring_threads_d(malloc, free, 2, dist);
		ratio[i] = w[i] / v[i];
	}
	s = summarize(ratio, reps);
	row(two, s, "<= 1.5", "");
	for (i = 0; i < reps; i++)
		ratio[i] = v[i] / summarize(x, reps).med;
	s = summarize(ratio, reps);
	row(scaling, s, ">= 1.8", "");
	printf("|   glibc on this machine: %.2f\n", summarize(w, reps).med /
	    summarize(g1, reps).med);
}

/*
 * A fresh heap filled with n blocks of size bytes, each written, then all
 * freed: ns per block.  What building a large structure costs, memory
 * committed as it goes (for glibc, in a child of its own, whose heap is
 * as fresh).
 */
static double
fill_once(alloc_fn a, free_fn f, size_t size, int n)
{
	void **p = malloc((size_t)n * sizeof(*p));
	double t0;
	int i;

	if (p == NULL)
		exit(1);
	memset(p, 0, (size_t)n * sizeof(*p));
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		if ((p[i] = a(size)) == NULL)
			exit(1);
		memset(p[i], i, 8);
	}
	for (i = 0; i < n; i++)
		f(p[i]);
	t0 = (now_ns() - t0) / n;
	free(p);
	return t0;
}

static double
fill_glibc(size_t size, int n)
{
	double ns = -1;
	int p[2], st;
	pid_t pid;

	if (pipe(p) != 0)
		exit(1);
	if ((pid = fork()) == 0) {
		ns = fill_once(malloc, free, size, n);
		if (write(p[1], &ns, sizeof(ns)) != (ssize_t)sizeof(ns))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &ns, sizeof(ns)) != (ssize_t)sizeof(ns))
		exit(1);
	close(p[0]);
	waitpid(pid, &st, 0);
	return ns;
}

static void
fill_row(size_t size, int n, const char *what)
{
	struct stat3 s;
	int i;

	for (i = 0; i < reps; i++) {
		fresh_heap("2G");
		v[i] = fill_once(aclmalloc, acl_free_void, size, n);
		w[i] = fill_glibc(size, n);
		ratio[i] = v[i] / w[i];
	}
	s = summarize(ratio, reps);
	row(what, s, "", "");
	printf("|   aclheap %.1f ns, glibc %.1f ns per block\n",
	    summarize(v, reps).med, summarize(w, reps).med);
}

static void
sec_alloc(void)
{
	struct stat3 s;
	int i;

	for (i = 0; i < reps; i++) {
		v[i] = pairs(aclmalloc, acl_free_void);
		w[i] = pairs(malloc, free);
		ratio[i] = v[i] / w[i];
	}
	s = summarize(ratio, reps);
	row("64 B alloc+free pairs, 1 thread: aclheap / glibc", s, "<= 1.5",
	    "");
	printf("|   aclheap %.2f ns, glibc %.2f ns per pair\n",
	    summarize(v, reps).med, summarize(w, reps).med);

	ring_rows(0, "ring 10k x 8..1024 B, 1 thread: aclheap / glibc",
	    "ring, 2 threads: aclheap / glibc",
	    "ring, 2 threads / 1 thread throughput (aclheap)");
	for (i = 0; i < reps; i++) {
		v[i] = ring_procs(1, 2);
		w[i] = ring_procs(0, 2);
		ratio[i] = w[i] / v[i];
	}
	s = summarize(ratio, reps);
	row("ring, 2 processes sharing the heap / glibc", s, "", "");
	fill_row(64, 1000000, "fill a fresh heap, 1M x 64 B, free: / glibc");
	fill_row(1024, 100000, "fill a fresh heap, 100k x 1 KiB, free: / glibc");
	fresh_heap("1G");
}

static void
sec_socket(void)
{
	struct stat3 s;
	size_t ql = 0, pl = 0;
	int i;

	for (i = 0; i < reps; i++) {
		v[i] = socket_pairs(&ql, &pl);
		w[i] = raw_pingpong(ql, pl);
		ratio[i] = v[i] / w[i];
	}
	s = summarize(ratio, reps);
	row("socket Alloc+Free round trips / raw ping-pong", s, "<= 1.3",
	    "");
	printf("|   aclheap %.2f us, raw %.2f us per Alloc+Free (%zu/%zu B "
	    "frames)\n", summarize(v, reps).med / 1e3,
	    summarize(w, reps).med / 1e3, ql, pl);
}

/*
 * Root operations with 20,000 roots in the table: ns per operation of
 * set, get and remove of a name not among them (each one round trip).
 * The 20,000 stay for the whole measure, so a linear search would show.
 */
#define ROOTS_KEPT	20000
#define ROOTS_OPS	3000

static double
roots_ops(void)
{
	char name[64];
	double t0 = now_ns(), ns;
	int i;

	for (i = 0; i < ROOTS_OPS; i++) {
		snprintf(name, sizeof(name), "bench.op/%d", i);
		if (aclheap_root_set(name, (void *)(uintptr_t)16) != 0 ||
		    aclheap_root_get(name) != (void *)(uintptr_t)16 ||
		    aclheap_root_remove(name) != 0)
			exit(1);
		if (i == 0)
			t0 = now_ns();
	}
	ns = (now_ns() - t0) / (3.0 * (ROOTS_OPS - 1));
	return ns;
}

static void
sec_roots(void)
{
	struct stat3 s;
	char name[64];
	int i;

	for (i = 0; i < ROOTS_KEPT; i++) {
		snprintf(name, sizeof(name), "bench.kept/%05d", i);
		if (aclheap_root_set(name, (void *)(uintptr_t)(16 * i)) != 0) {
			fprintf(stderr, "root_set: %s\n", aclheap_last_error());
			exit(1);
		}
	}
	for (i = 0; i < reps; i++) {
		v[i] = roots_ops();
		/* raw_pingpong() times two round trips a pair. */
		w[i] = raw_pingpong(40, 20) / 2;
		ratio[i] = v[i] / w[i];
	}
	s = summarize(ratio, reps);
	row("roots: set+get+remove, 20k roots / raw round trip", s, "",
	    "");
	printf("|   %.0f root ops/s (%.2f us each), raw round trip %.2f us\n",
	    1e9 / summarize(v, reps).med, summarize(v, reps).med / 1e3,
	    summarize(w, reps).med / 1e3);
	for (i = 0; i < ROOTS_KEPT; i++) {
		snprintf(name, sizeof(name), "bench.kept/%05d", i);
		(void)aclheap_root_remove(name);
	}
}

static void
sec_throughput(void)
{
	char echo_path[320], what[80];
	int nc[] = { 1, 2, 4 }, n, i;
	struct stat3 s;
	pid_t ep;

	snprintf(echo_path, sizeof(echo_path), "%s/echo.sock", td.dir);
	ep = echo_server(echo_path);
	for (n = 0; n < 3; n++) {
		for (i = 0; i < reps; i++) {
			v[i] = pipelined(td.sock, 0, nc[n]);
			w[i] = pipelined(echo_path, 1, nc[n]);
			ratio[i] = v[i] / w[i];
		}
		s = summarize(ratio, reps);
		snprintf(what, sizeof(what), "daemon throughput, %d pipelining "
		    "client%s / libevent echo", nc[n], nc[n] > 1 ? "s" : "");
		row(what, s, ">= 0.7", "");
		printf("|   aclheapd %.0f k req/s, echo %.0f k msg/s\n",
		    summarize(v, reps).med / 1e3, summarize(w, reps).med / 1e3);
	}
	kill(ep, SIGTERM);
	waitpid(ep, NULL, 0);
}

/* Checkpoint and load of 256 MiB of data against raw disk I/O. */
static void
sec_persist(void)
{
	char img[400];
	uint64_t bytes = 0;
	struct stat3 s;
	void *blk;
	int i;

	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	for (i = 0; i < 16; i++) {
		blk = aclmalloc(16 << 20);
		memset(blk, i + 1, 16 << 20);
	}
	for (i = 0; i < reps; i++) {
		char kind[16];

		/* Whole images: the heap does not change between them, and
		 * a plain checkpoint would write nothing. */
		v[i] = ctl_checkpoint(1, &bytes, kind, sizeof(kind));
		bytes = file_size(img);
		w[i] = raw_write(bytes);
		ratio[i] = w[i] / v[i];		/* throughput ratio */
	}
	s = summarize(ratio, reps);
	row("checkpoint throughput / raw write+fsync", s, ">= 0.8", "");
	printf("|   %.0f MiB image: checkpoint %.0f MB/s, raw %.0f MB/s\n",
	    bytes / 1048576.0, bytes / (summarize(v, reps).med / 1e3),
	    bytes / (summarize(w, reps).med / 1e3));
	aclheap_detach();
	for (i = 0; i < reps; i++) {
		daemon_stop();
		td_shm_unlink(&td);
		drop_caches();
		daemon_start("1G");
		v[i] = logged_load_ms() * 1e6;
		drop_caches();
		w[i] = raw_read(img);
		ratio[i] = w[i] / v[i];
		if (getenv("BENCH_DEBUG"))
			fprintf(stderr, "load %.1f ms, raw read %.1f ms\n",
			    v[i] / 1e6, w[i] / 1e6);
	}
	s = summarize(ratio, reps);
	row("image load throughput / raw read", s, ">= 0.8", "");
	printf("|   load %.0f MB/s, raw read %.0f MB/s (page cache %s)\n",
	    bytes / (summarize(v, reps).med / 1e3),
	    bytes / (summarize(w, reps).med / 1e3),
	    access("/proc/sys/vm/drop_caches", W_OK) == 0 ? "dropped" :
	    "warm");
	if (aclheap_attach(td.sock) != 0)
		exit(1);
}

/* A 16 GiB heap holding 10 MiB: time of one checkpoint. */
static void
sec_big(void)
{
	char img[400];
	struct stat3 s;
	void *p;
	int i;

	fresh_heap("16G");
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	p = aclmalloc(10 << 20);
	memset(p, 7, 10 << 20);
	for (i = 0; i < reps; i++) {
		double t0 = now_ns();

		aclheap_checkpoint();
		v[i] = (now_ns() - t0) / 1e6;
	}
	s = summarize(v, reps);
	printf("| %-52s | %6.1f | %6.1f-%-6.1f | %-8s | ms, image %.1f MiB\n",
	    "checkpoint of a 16 GiB heap holding 10 MiB", s.med, s.lo, s.hi,
	    "", file_size(img) / 1048576.0);
}

/* --- blocks above 8 KiB ---------------------------------------------- */

static double
pairs_of(alloc_fn a, free_fn f, size_t size, int n)
{
	double t0;
	void *p;
	int i;

	/* One pair first: glibc raises its mmap threshold at the first free
	 * of a mapped chunk, aclheap leases its span. */
	f(a(size));
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		p = a(size);
		__asm__ volatile("" : : "r"(p) : "memory");
		f(p);
	}
	return (now_ns() - t0) / n;
}

typedef void *(*realloc_fn)(void *, size_t);

/* A vector of 8-byte items grown by doubling to 16 MiB, every item
 * written: ns in all. */
static double
vector_grow(realloc_fn r, free_fn f)
{
	uint64_t *vec = NULL, cap = 0, i;
	double t0 = now_ns();

	for (i = 0; i < (UINT64_C(16) << 20) / 8; i++) {
		if (i == cap) {
			cap = cap ? cap * 2 : 16;
			if ((vec = r(vec, cap * 8)) == NULL)
				exit(1);
		}
		vec[i] = i;
	}
	f(vec);
	return now_ns() - t0;
}

/*
 * The ring of dist in a separate process with the system's allocator (or
 * jemalloc preloaded): its resident set's growth over what it asked for,
 * with the ring live.  -1 when it could not be run.
 */
static double
ring_rss_child(int dist, const char *preload)
{
	char self[512], arg[8], line[128];
	uint64_t req, grew;
	int p[2], st;
	pid_t pid;
	FILE *f;

	if (readlink("/proc/self/exe", self, sizeof(self) - 1) < 0 ||
	    pipe(p) != 0)
		return -1;
	self[sizeof(self) - 1] = '\0';
	if ((pid = fork()) == 0) {
		dup2(p[1], 1);
		close(p[0]);
		if (preload != NULL)
			setenv("LD_PRELOAD", preload, 1);
		snprintf(arg, sizeof(arg), "%d", dist);
		execl(self, self, "-M", arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (f == NULL || fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "%" SCNu64 " %" SCNu64, &req, &grew) != 2)
		req = 0;
	if (f != NULL)
		fclose(f);
	waitpid(pid, &st, 0);
	return req == 0 ? -1 : (double)grew / (double)req;
}

/* -M DIST: the child of ring_rss_child(). */
static int
ring_rss_main(int dist)
{
	struct ring_arg r;

	memset(&r, 0, sizeof(r));
	r.a = malloc;
	r.f = free;
	r.seed = 4242;
	r.measure = 2;
	r.dist = dist;
	ring_run(&r);
	printf("%" PRIu64 " %" PRIu64 "\n", r.requested, r.resident);
	return 0;
}

static const char *
jemalloc_path(void)
{
	static const char *const paths[] = {
		"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
		"/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
		"/usr/lib/libjemalloc.so.2",
	};
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], R_OK) == 0)
			return paths[i];
	return NULL;
}

/* Resident segment memory per byte asked for, with the ring of dist
 * live, on a fresh heap; next to glibc's and jemalloc's RSS growth. */
static void
large_memory(int dist, const char *what)
{
	struct ring_arg r;
	pthread_t t;
	struct stat3 s;
	const char *je = jemalloc_path();
	double g, j = -1;
	int i;

	fresh_heap("2G");
	memset(&r, 0, sizeof(r));
	r.a = aclmalloc;
	r.f = acl_free_void;
	r.seed = 4242;
	r.measure = 1;
	r.dist = dist;
	if (pthread_create(&t, NULL, ring_run, &r) != 0 ||
	    pthread_join(t, NULL) != 0)
		exit(1);
	for (i = 0; i < reps; i++)
		ratio[i] = (double)r.resident / (double)r.requested;
	s = summarize(ratio, reps);
	g = ring_rss_child(dist, NULL);
	if (je != NULL)
		j = ring_rss_child(dist, je);
	row(what, s, "<= jemal", "");
	printf("|   %" PRIu64 " B more resident for %" PRIu64 " B requested; glibc "
	    "%.2f, jemalloc %s%.2f (RSS growth, own process)\n", r.resident,
	    r.requested, g, je != NULL ? "" : "not installed ", j);
}

static void
sec_ring_memory(void)
{
	large_memory(0, "memory: resident / requested, ring 8..1024 B");
	large_memory(1, "memory: resident / requested, ring 8 B..256 KiB");
}

static void
sec_large(void)
{
	static const size_t sizes[] = { 16384, 65536, 262144, 1 << 20 };
	char what[64];
	struct stat3 s;
	size_t k;
	int i;

	fresh_heap("1G");
	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		for (i = 0; i < reps; i++) {
			v[i] = pairs_of(aclmalloc, acl_free_void, sizes[k],
			    PAIRS / 10);
			w[i] = pairs_of(malloc, free, sizes[k], PAIRS / 10);
			ratio[i] = v[i] / w[i];
		}
		s = summarize(ratio, reps);
		snprintf(what, sizeof(what), "%zu KiB alloc+free pairs: aclheap "
		    "/ glibc", sizes[k] >> 10);
		row(what, s, "<= 2", "");
		printf("|   aclheap %.2f ns, glibc %.2f ns per pair\n",
		    summarize(v, reps).med, summarize(w, reps).med);
	}
	fresh_heap("2G");
	ring_rows(1, "ring 10k x 8 B..256 KiB, 1 thread: aclheap / glibc",
	    "ring 8 B..256 KiB, 2 threads: aclheap / glibc",
	    "ring 8 B..256 KiB, 2 threads / 1 thread (aclheap)");
	for (i = 0; i < reps; i++) {
		v[i] = vector_grow(aclrealloc, acl_free_void);
		w[i] = vector_grow(realloc, free);
		ratio[i] = v[i] / w[i];
	}
	s = summarize(ratio, reps);
	row("vector of 8 B items doubled to 16 MiB: aclheap / glibc", s,
	    "<= 3", "");
	printf("|   aclheap %.2f ms, glibc %.2f ms\n", summarize(v, reps).med /
	    1e6, summarize(w, reps).med / 1e6);
	sec_ring_memory();
}

/*
 * 1 GiB in use in a 4 GiB heap, half in 16 MiB blocks, half in 4000-byte
 * ones: a whole checkpoint against a delta after 8 MiB changed (4 MiB in
 * one large block, 4 MiB of small blocks), in the same run; and what a
 * checkpoint of the unchanged heap writes (the timer's case with an idle
 * client connected).
 */
static void
sec_delta(void)
{
	static uint8_t *small[131072];
	uint8_t *big[32];
	uint64_t fb[16], db[16], nb[16];
	double ft[16], dt[16], nt[16], r1[16], r2[16];
	char kind[16];
	int i, k;

	fresh_heap("4G");
	for (i = 0; i < 32; i++) {
		if ((big[i] = aclmalloc(16 << 20)) == NULL)
			exit(1);
		memset(big[i], i + 1, 16 << 20);
	}
	for (i = 0; i < 131072; i++) {
		if ((small[i] = aclmalloc(4000)) == NULL)
			exit(1);
		memset(small[i], i, 4000);
	}
	for (i = 0; i < reps; i++) {
		ft[i] = ctl_checkpoint(1, &fb[i], kind, sizeof(kind));
		memset(big[i % 32] + (4 << 20), 0x80 + i, 4 << 20);
		for (k = 0; k < 1024; k++)
			memset(small[(i * 1024 + k) % 131072], 0x40 + i, 4096 -
			    96);
		dt[i] = ctl_checkpoint(0, &db[i], kind, sizeof(kind));
		if (strcmp(kind, "delta") != 0) {
			fprintf(stderr, "8 MiB changed: a %s checkpoint\n",
			    kind);
			exit(1);
		}
		nt[i] = ctl_checkpoint(0, &nb[i], kind, sizeof(kind));
		if (strcmp(kind, "nothing") != 0) {
			fprintf(stderr, "unchanged: a %s checkpoint\n", kind);
			exit(1);
		}
		r1[i] = (double)db[i] / (double)fb[i];
		r2[i] = dt[i] / ft[i];
		v[i] = (double)fb[i];
		w[i] = (double)db[i];
		ratio[i] = (double)nb[i];
	}
	row("delta bytes / full, 8 MiB of 1 GiB changed", summarize(r1, reps),
	    "<= 0.05", "");
	row("delta time / full, 8 MiB of 1 GiB changed", summarize(r2, reps),
	    "", "");
	printf("|   full %.1f MiB in %.0f ms, delta %.2f MiB (%.2f%%) in %.0f "
	    "ms, unchanged %.0f bytes in %.0f ms (goal < 1 MiB)\n",
	    summarize(v, reps).med / 1048576.0, summarize(ft, reps).med / 1e6,
	    summarize(w, reps).med / 1048576.0, summarize(r1, reps).med * 100,
	    summarize(dt, reps).med / 1e6, summarize(ratio, reps).med,
	    summarize(nt, reps).med / 1e6);
	for (i = 0; i < 32; i++)
		aclfree(big[i]);
	for (i = 0; i < 131072; i++)
		aclfree(small[i]);
}

int
main(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "r:qo:M:m:")) != -1) {
		if (c == 'M')
			return ring_rss_main(atoi(optarg));
		if (c == 'm')
			snprintf(bench_max, sizeof(bench_max), "%s", optarg);
		else if (c == 'o')
			only = atoi(optarg);
		else if (c == 'r')
			reps = atoi(optarg) > 0 && atoi(optarg) <= 16 ?
			    atoi(optarg) : 5;
		else if (c == 'q')
			quick = 1;
		else {
			fprintf(stderr, "usage: aclheap_bench [-r REPS] [-q] "
			    "[-o SECTION] [-m MAX]\n");
			return 2;
		}
	}
	if (td_setup(&td, "bench") != 0) {
		perror("aclheap_bench: mkdtemp");
		return 1;
	}
	snprintf(td.base, sizeof(td.base), "0x380000000000");
	td.log_level = NULL;
	td.ready_ms = 60000;
	atexit(cleanup);
	daemon_start("1G");
	if (aclheap_attach(td.sock) != 0) {
		fprintf(stderr, "attach: %s\n", aclheap_last_error());
		return 1;
	}
	printf("aclheap %s benchmark: medians of %d runs (spread min-max)\n\n",
	    PACKAGE_VERSION, reps);
	printf("| %-52s | %6s | %-13s | %-8s |\n", "figure", "ratio",
	    "spread", "goal");
	printf("|%s|\n", "------------------------------------------------------"
	    "-----------------------------------");
	if (!only || only == 2)
		sec_memory();
	if (!only || only == 1)
		sec_alloc();
	if (!only || only == 3) {
		sec_socket();
		sec_roots();
	}
	if (!only || only == 4)
		sec_throughput();
	if (!only || only == 5)
		sec_persist();
	if (!only || only == 8)
		sec_large();
	if (only == 9)
		sec_ring_memory();
	if ((!only && !quick) || only == 6)
		sec_big();
	if ((!only && !quick) || only == 7)
		sec_delta();
	return 0;
}
