/* SPDX-License-Identifier: MIT */
/*
 * fuzz_live.c: the daemon's request path on a live heap whose
 * client-writable memory the input writes into between requests.
 *
 * Every allowed client maps the segment read-write: the bitmaps, the side
 * lines, the side entries small classes keep in their slabs, the lease
 * records and the data are theirs to write, rightly or not.  An input is
 * a sequence of steps, each one of
 *
 *   a write     (region, offset, bytes) into one of those regions, or an
 *               adversarial word (UINT32_MAX, nslabs, SHM_LEASES, the
 *               lease fields' 24-bit maximum, ...)
 *   a request   Alloc, Free, Realloc, roots, Stats, Verify, Blocks, Read,
 *               Lease, Release, Checkpoint, sent as a client would on one
 *               connection (as fuzz_dispatch.c, through server_conn_new(),
 *               the daemon's loop run by the harness)
 *   a fast-path claim or free, as client/fast.c makes them, in the slab
 *               the last Lease granted
 *
 * and after each request shm_check() and shm_stats() run over the heap;
 * at the end the connection closes, leases are reaped and released and
 * empty slabs reclaimed.  The verdict is the daemon's survival: no fault,
 * no sanitizer report, no hang (libFuzzer's -timeout; each request's
 * answer is waited for a bounded number of loop turns), no write outside
 * the segment (it is mapped at a fixed place with nothing next to it).
 * The heap's answers are not judged: a scribbled heap may refuse.
 *
 * Each input starts from the same empty heap: the metadata the first
 * input found (everything below the data area) is put back, the data
 * decommitted, and the daemon's derived state rebuilt from it
 * (heap_rebuild()).  The heap is made once per process: heap_open() on a
 * temporary state folder, 8 MiB at LIVE_BASE, its name removed at once.
 */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "tests/fuzz/fuzz.h"

#define LIVE_BASE	UINT64_C(0x340000000000)
#define LIVE_SIZE	(UINT64_C(8) << 20)
#define MAX_FDS		8
#define NADDR		16
#define TURNS		100000	/* loop turns a reply may take */

uint64_t fuzz_live_requests, fuzz_live_answered, fuzz_live_writes;

static struct config cfg;
static struct heap heap;
static struct event_base *eb;
static char state[64];
static int ready;
static uint8_t *snap;		/* the metadata of the empty heap */
static uint64_t snap_len;

/* The client's side of the connection. */
static int cfd = -1;
static uint8_t rbuf[FRAME_HDR + FRAME_MAX];
static size_t rlen;
static uint8_t abuf[256 * 1024];
static uint8_t obuf[FRAME_HDR + 4096];
static uint64_t next_id, answered;

/* What the replies said: blocks, and the last lease granted. */
static uint64_t addrs[NADDR];
static unsigned naddr;
static int leased;
static uint64_t lease_slab;
static uint32_t lease_rec, lease_cls;

/* The input, read as it is used; zeros once it is. */
static const uint8_t *in;
static size_t in_len, in_off;

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_live: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static uint8_t
get8(void)
{
	return in_off < in_len ? in[in_off++] : 0;
}

static uint32_t
get32(void)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < 4; i++)
		v |= (uint32_t)get8() << (8 * i);
	return v;
}

static void
remove_state(void)
{
	fuzz_remove_dir(state);
}

static void
setup(void)
{
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(state, sizeof(state), "%s/aclheap-fuzz-live-XXXXXX", tmp);
	if (mkdtemp(state) == NULL)
		die("mkdtemp %s: %s", state, strerror(errno));
	atexit(remove_state);
	log_init(LOG_CRIT, 1);
	config_defaults(&cfg);
	cfg.state_dir = strdup(state);
	cfg.socket_path = strdup("(fuzz)");
	cfg.config_path = strdup("(fuzz)");
	cfg.base = LIVE_BASE;
	cfg.size = LIVE_SIZE;
	cfg.max = LIVE_SIZE;
	cfg.checkpoint_interval = 0;
	cfg.log_level = LOG_CRIT;
	if (cfg.state_dir == NULL || cfg.socket_path == NULL ||
	    cfg.config_path == NULL)
		die("out of memory");
	signal(SIGPIPE, SIG_IGN);
	if (heap_open(&heap, &cfg) != 0)
		die("cannot open a scratch heap in %s", state);
	seg_unlink(heap.identity);
	if ((eb = event_base_new()) == NULL)
		die("event_base_new failed");
	if (server_setup(&cfg, &heap, eb) != 0)
		die("server_setup failed");
	snap_len = (uint64_t)(heap.seg.data - heap.seg.base);
	if ((snap = malloc(snap_len)) == NULL)
		die("out of memory");
	memcpy(snap, (void *)heap.seg.base, snap_len);
	ready = 1;
}

/* The empty heap again: its metadata, no data, the derived state. */
static void
restore(void)
{
	memcpy((void *)heap.seg.base, snap, snap_len);
	(void)seg_decommit(&heap.seg, snap_len, heap.seg.nslabs <<
	    SHM_SLAB_SHIFT);
	if (heap_rebuild(&heap) != 0)
		die("the empty heap does not rebuild");
	naddr = 0;
	leased = 0;
}

static void
addr_add(uint64_t a)
{
	addrs[naddr++ % NADDR] = a;
}

static void
on_reply(const Aclheap__Reply *r)
{
	answered++;
	if (r->error != 0)
		return;
	fuzz_live_answered++;
	switch (r->body_case) {
	case ACLHEAP__REPLY__BODY_ALLOC:
		addr_add(r->alloc->addr);
		break;
	case ACLHEAP__REPLY__BODY_LEASE:
		leased = 1;
		lease_slab = r->lease->slab;
		lease_rec = r->lease->record;
		break;
	default:
		break;
	}
}

/* Reads what the daemon sent, closing passed descriptors.  1 at the end
 * of the stream. */
static int
drain(void)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(MAX_FDS * sizeof(int))];
	} u;
	struct frame_arena a;
	Aclheap__Reply *r;
	struct cmsghdr *c;
	struct msghdr msg;
	struct iovec iov;
	uint32_t len;
	size_t off, i, nfd;
	ssize_t n;
	int fd, rc;

	for (;;) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = rbuf + rlen;
		iov.iov_len = sizeof(rbuf) - rlen;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = u.b;
		msg.msg_controllen = sizeof(u.b);
		n = recvmsg(cfd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			if (errno == ECONNRESET)
				return 1;
			die("recvmsg: %s", strerror(errno));
		}
		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < nfd; i++) {
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
				    sizeof(int));
				close(fd);
			}
		}
		rlen += (size_t)n;
		for (off = 0;; off += FRAME_HDR + len) {
			rc = frame_peek(rbuf + off, rlen - off, &len);
			if (rc < 0)
				die("the daemon sent a frame over the cap");
			if (rc == 0 || rlen - off - FRAME_HDR < len)
				break;
			frame_arena_init(&a, abuf, sizeof(abuf));
			if ((r = frame_unpack_reply(&a, rbuf + off + FRAME_HDR,
			    len)) == NULL)
				die("the daemon sent a reply that does not "
				    "decode (%u bytes)", len);
			on_reply(r);
		}
		memmove(rbuf, rbuf + off, rlen - off);
		rlen -= off;
		if (n == 0)
			return 1;
	}
}

static void
hang_up(void)
{
	if (cfd < 0)
		return;
	close(cfd);
	cfd = -1;
	while (server_client_count() > 0 || ckpt_busy())
		event_base_loop(eb, EVLOOP_ONCE);
}

/*
 * Sends one request and runs the loop until it is answered, or the
 * daemon closed the connection (then the next request opens another).
 * A request that is never answered is a hang.
 */
static void
request(Aclheap__Request *q)
{
	uint64_t want;
	long n;
	int turns;

	if (cfd < 0) {
		Aclheap__Request h = ACLHEAP__REQUEST__INIT;
		Aclheap__Hello hm = ACLHEAP__HELLO__INIT;
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0, sv) == -1)
			die("socketpair: %s", strerror(errno));
		if (server_conn_new(sv[0]) == NULL)
			die("server_conn_new failed");
		cfd = sv[1];
		rlen = 0;
		hm.version = PROTOCOL_VERSION;
		hm.pid = (uint32_t)getpid();
		hm.name = "fuzz-live";
		h.body_case = ACLHEAP__REQUEST__BODY_HELLO;
		h.hello = &hm;
		request(&h);
		if (cfd < 0)
			return;
	}
	q->id = ++next_id;
	if ((n = frame_pack_request(q, obuf, sizeof(obuf))) < 0)
		die("a request does not pack");
	if (send(cfd, obuf, (size_t)n, MSG_NOSIGNAL) != n) {
		hang_up();
		return;
	}
	fuzz_live_requests++;
	want = answered + 1;
	for (turns = 0; answered < want; turns++) {
		if (turns > TURNS)
			die("request %d was not answered", (int)q->body_case);
		event_base_loop(eb, ckpt_busy() ? EVLOOP_ONCE :
		    EVLOOP_NONBLOCK);
		if (drain()) {
			hang_up();
			return;
		}
	}
}

/* The validator and the figures over the heap as it is.  Nothing else
 * changes it meanwhile (one thread; a checkpoint's only reads), so the
 * still check: the live one waits out what looks broken, ~85 ms each. */
static void
checks(void)
{
	struct shm_report rep;
	struct shm_stats st;
	char err[1024];

	(void)shm_check_still(&heap.seg, &rep, err, sizeof(err));
	shm_stats(&heap.seg, &st);
}

/* ------------------------------------------------------------------ */
/* Writes */

static const uint32_t adversarial[] = { UINT32_MAX, 0x7fffffffu, 0x80000000u,
    0xffffu, 0x7ffu, 0xffffffu, SHM_LEASES, SHM_LEASES + 1, SHM_BITMAP_WORDS,
    SHM_NCLASSES, 127, 0, 1 };

static void
scribble(void)
{
	struct shm_seg *seg = &heap.seg;
	uint64_t hwm = atomic_load(&seg->sb->slab_hwm), len, off, s;
	uint32_t w, v, rnd_off;
	uint8_t *p, r = get8(), n, k = get8();

	/* Every step reads the same bytes whatever the heap's state, so
	 * that a seed means the same steps on any heap. */
	rnd_off = get32();
	if (hwm > seg->nslabs)
		hwm = seg->nslabs;
	s = hwm ? k % hwm : 0;
	switch ((r & 0x7f) % 6) {
	case 0:
		p = (uint8_t *)seg->bitmaps;
		len = (hwm + 1) * SHM_BITMAP_BYTES;
		break;
	case 1:
		p = (uint8_t *)seg->sides;
		len = (hwm + 1) * SHM_SIDE_BYTES;
		break;
	case 2:
		p = (uint8_t *)seg->leases;
		len = (uint64_t)seg->nleases * sizeof(struct shm_lease);
		break;
	case 3:
		/* The side entries a small class keeps in its slab. */
		w = atomic_load(&seg->slabs[s].word);
		if (SHM_SLAB_STATE(w) != SHM_SMALL ||
		    SHM_SLAB_CLS(w) >= SHM_NINBAND)
			return;
		off = slab_class_sideoff[SHM_SLAB_CLS(w)];
		p = (uint8_t *)slab_addr(seg, s) + off;
		len = SHM_SLAB_SIZE - off;
		break;
	case 4:
		p = (uint8_t *)slab_addr(seg, s);
		len = SHM_SLAB_SIZE;
		break;
	default:
		/* The record of the lease we hold. */
		if (!leased || lease_rec >= seg->nleases)
			return;
		p = (uint8_t *)&seg->leases[lease_rec];
		len = sizeof(struct shm_lease);
		break;
	}
	if (s >= seg->nslabs && ((r & 0x7f) % 6 == 3 || (r & 0x7f) % 6 == 4))
		return;
	/* Uncommitted data is memory like any other to a client: the
	 * write commits it. */
	off = rnd_off % len;
	fuzz_live_writes++;
	if (r & 0x80) {
		k = get8();
		v = adversarial[k % (sizeof(adversarial) /
		    sizeof(adversarial[0]))];
		if (v == 0x7ffu)
			v = (uint32_t)seg->nslabs + (k >> 7);
		off &= ~(uint64_t)3;
		if (off + 4 > len)
			return;
		memcpy(p + off, &v, 4);
		return;
	}
	n = (uint8_t)(1 + get8() % 16);
	if (off + n > len)
		n = (uint8_t)(len - off);
	for (; n > 0; n--)
		p[off++] = get8();
}

/* ------------------------------------------------------------------ */
/* The fast path, as client/fast.c takes it */

static void
fast_claim(void)
{
	struct shm_seg *seg = &heap.seg;
	struct shm_lease *l;
	uint64_t got, bit;
	uint32_t w, cls, i, k = get8() % 8, wk = get8();

	if (!leased || lease_rec >= seg->nleases || lease_slab >= seg->nslabs)
		return;
	w = atomic_load(&seg->slabs[lease_slab].word);
	if ((cls = SHM_SLAB_CLS(w)) >= SHM_NCLASSES)
		return;
	l = &seg->leases[lease_rec];
	if (slab_claim_begin(seg, lease_slab, cls, lease_rec) != 0)
		return;
	w = wk % ((slab_class_nblocks[cls] + 63) / 64);
	atomic_store(&l->set_slab, (uint32_t)lease_slab);
	atomic_store(&l->word, w);
	got = slab_claim_word(seg, lease_slab, cls, w, &l->mask);
	slab_claim_end(seg, lease_rec);
	/* Some blocks handed out, the rest kept in the private set. */
	while (got != 0 && k-- > 0) {
		bit = got & -got;
		got &= got - 1;
		i = w * 64 + (uint32_t)__builtin_ctzll(bit);
		slab_set_live(seg, lease_slab, i, cls, slab_class_size[cls]);
		atomic_store(&l->mask, got);
		addr_add(slab_addr(seg, lease_slab) + (uint64_t)i *
		    slab_class_size[cls]);
	}
}

static void
fast_free(void)
{
	struct slab_block b;
	size_t req;
	uint8_t k = get8();

	if (naddr == 0 || slab_block_lookup(&heap.seg,
	    (uintptr_t)addrs[k % NADDR], &b) != 0 ||
	    b.cls == UINT32_MAX)
		return;
	(void)slab_free_block(&heap.seg, &b, &req);
}

/* ------------------------------------------------------------------ */

static uint64_t
some_addr(void)
{
	uint8_t k = get8();
	uint32_t off = get32();

	if (k & 0x80 || naddr == 0)
		return heap.seg.data + off % (heap.seg.nslabs <<
		    SHM_SLAB_SHIFT);
	return addrs[k % NADDR];
}

static void
step(void)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc al = ACLHEAP__ALLOC__INIT;
	Aclheap__Free fr = ACLHEAP__FREE__INIT;
	Aclheap__Realloc re = ACLHEAP__REALLOC__INIT;
	Aclheap__Root rs = ACLHEAP__ROOT__INIT;
	Aclheap__RootGet rg = ACLHEAP__ROOT_GET__INIT;
	Aclheap__RootRemove rr = ACLHEAP__ROOT_REMOVE__INIT;
	Aclheap__RootList rl = ACLHEAP__ROOT_LIST__INIT;
	Aclheap__Stats st = ACLHEAP__STATS__INIT;
	Aclheap__Verify ve = ACLHEAP__VERIFY__INIT;
	Aclheap__Blocks bl = ACLHEAP__BLOCKS__INIT;
	Aclheap__Read rd = ACLHEAP__READ__INIT;
	Aclheap__Clients cl = ACLHEAP__CLIENTS__INIT;
	Aclheap__Checkpoint ck = ACLHEAP__CHECKPOINT__INIT;
	Aclheap__LeaseSlab ls = ACLHEAP__LEASE_SLAB__INIT;
	Aclheap__ReleaseSlab rel = ACLHEAP__RELEASE_SLAB__INIT;
	static const char *const names[] = { "a", "b", "c", "d" };
	uint8_t op = get8(), k;

	switch (op % 16) {
	case 0: case 1: case 2: case 3: case 4:
		scribble();
		return;
	case 5:
		k = get8();
		al.size = k & 1 ? get32() % (6u << 20) : get32() % 9000;
		al.alignment = k & 2 ? UINT64_C(1) << (get8() % 21) : 0;
		q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
		q.alloc = &al;
		break;
	case 6:
		fr.addr = some_addr();
		q.body_case = ACLHEAP__REQUEST__BODY_FREE;
		q.free = &fr;
		break;
	case 7:
		re.addr = some_addr();
		re.size = get8() & 1 ? get32() % (6u << 20) : get32() % 9000;
		q.body_case = ACLHEAP__REQUEST__BODY_REALLOC;
		q.realloc = &re;
		break;
	case 8:
		k = get8();
		if (k & 1) {
			rs.name = (char *)names[k / 2 % 4];
			rs.value = some_addr();
			q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
			q.root_set = &rs;
		} else if (k & 2) {
			rg.name = (char *)names[k / 4 % 4];
			q.body_case = ACLHEAP__REQUEST__BODY_ROOT_GET;
			q.root_get = &rg;
		} else {
			rr.name = (char *)names[k / 4 % 4];
			q.body_case = ACLHEAP__REQUEST__BODY_ROOT_REMOVE;
			q.root_remove = &rr;
		}
		break;
	case 9:
		k = get8() % 3;
		if (k == 0) {
			q.body_case = ACLHEAP__REQUEST__BODY_STATS;
			q.stats = &st;
		} else if (k == 1) {
			q.body_case = ACLHEAP__REQUEST__BODY_ROOT_LIST;
			q.root_list = &rl;
		} else {
			q.body_case = ACLHEAP__REQUEST__BODY_CLIENTS;
			q.clients = &cl;
		}
		break;
	case 10:
		k = get8();
		if (k % 3 == 0) {
			q.body_case = ACLHEAP__REQUEST__BODY_VERIFY;
			q.verify = &ve;
		} else if (k % 3 == 1) {
			bl.cls = (int32_t)(k / 3 % (SHM_NCLASSES + 2)) - 1;
			q.body_case = ACLHEAP__REQUEST__BODY_BLOCKS;
			q.blocks = &bl;
		} else {
			rd.addr = some_addr();
			rd.len = get8() * 16u;
			q.body_case = ACLHEAP__REQUEST__BODY_READ;
			q.read = &rd;
		}
		break;
	case 11:
		k = get8();
		ls.cls = (k & 0x7f) % SHM_NCLASSES;
		ls.renew = k & 0x80 && leased ? lease_rec + 1 : 0;
		ls.want = get8();
		if (ls.want & 0x80)
			ls.want = 0;
		lease_cls = ls.cls;
		q.body_case = ACLHEAP__REQUEST__BODY_LEASE;
		q.lease = &ls;
		break;
	case 12:
		k = get8();
		rel.record = get32() % 1100;
		if (k & 1 && leased)
			rel.record = lease_rec;
		if (rel.record == lease_rec)
			leased = 0;
		q.body_case = ACLHEAP__REQUEST__BODY_RELEASE;
		q.release = &rel;
		break;
	case 13:
		fast_claim();
		return;
	case 14:
		fast_free();
		return;
	default:
		/* Checkpoints write files: one in eight of these. */
		if (get8() % 8 != 0)
			return;
		q.body_case = ACLHEAP__REQUEST__BODY_CHECKPOINT;
		q.checkpoint = &ck;
		break;
	}
	request(&q);
	checks();
}

int
fuzz_live_one(const uint8_t *data, size_t size)
{
	uint32_t i;

	if (!ready)
		setup();
	restore();
	in = data;
	in_len = size;
	in_off = 0;
	while (in_off < in_len)
		step();
	hang_up();
	/* The timers' work, then every lease given back, whatever its
	 * record now says. */
	(void)heap_reap_leases(&heap);
	for (i = 0; i < seg_lease_hwm(&heap.seg); i++)
		if (heap.seg.leases[i].owner_pid != 0)
			(void)heap_lease_release(&heap, i);
	(void)heap_reclaim_sweep(&heap);
	(void)heap_decay(&heap, 1);
	checks();
	return 0;
}

FUZZ_ENTRY(fuzz_live_one)
