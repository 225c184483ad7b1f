/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dispatch.c: the daemon's request path on a scratch heap.
 *
 * An input is what one client sends on one connection.  It goes through
 * the daemon's own code from the socket on: server_conn_new() on one end
 * of a socketpair, conn_read(), framing, decoding, dispatch, heap.c,
 * checkpoints and dumps on their thread, replies and passed descriptors,
 * conn_close().  The harness plays the client on the other end and runs
 * the daemon's libevent loop itself.
 *
 * Verdicts, besides the sanitizers: every reply is a frame under the cap
 * that decodes; the connection ends by itself or once the input is used
 * up; afterwards the heap passes shm_check() with no orphaned block, and
 * once everything the input allocated is freed, every slab is free again
 * (the daemon's derived state agrees with the slab table).  That also
 * makes each input start from an empty heap.
 *
 * The heap is made once per process: heap_open() on a temporary state
 * folder, 8 MiB at FUZZ_BASE.  Its shared-memory name is removed at once,
 * so a crash leaves nothing in /dev/shm.
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

#define FUZZ_BASE	UINT64_C(0x330000000000)
#define FUZZ_SIZE	(UINT64_C(8) << 20)
#define MAX_FDS		8

uint64_t fuzz_dispatch_replies, fuzz_dispatch_served;

static struct config cfg;
static struct heap heap;
static struct event_base *eb;
static char state[64];
static int ready;

/* The client's side: replies read so far, not yet a whole frame. */
static uint8_t rbuf[FRAME_HDR + FRAME_MAX];
static size_t rlen;
static uint8_t abuf[256 * 1024];

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_dispatch: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static void
remove_state(void)
{
	fuzz_remove_dir(state);
}

static void
setup(void)
{
	/* Checkpoints fsync: on tmpfs that costs nothing. */
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(state, sizeof(state), "%s/aclheap-fuzz-XXXXXX", tmp);
	if (mkdtemp(state) == NULL)
		die("mkdtemp %s: %s", state, strerror(errno));
	atexit(remove_state);
	log_init(LOG_CRIT, 1);
	config_defaults(&cfg);
	cfg.state_dir = strdup(state);
	cfg.socket_path = strdup("(fuzz)");
	cfg.config_path = strdup("(fuzz)");
	cfg.base = FUZZ_BASE;
	cfg.size = FUZZ_SIZE;
	cfg.max = FUZZ_SIZE;
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
	ready = 1;
}

/*
 * Reads what the daemon sent, closing any descriptor that came with it,
 * and checks each whole reply.  1 at end of stream (the daemon closed).
 */
static int
drain(int cfd)
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
		if (msg.msg_flags & MSG_CTRUNC)
			die("more descriptors in one read than %d", MAX_FDS);
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
			fuzz_dispatch_replies++;
			if (r->error == 0)
				fuzz_dispatch_served++;
		}
		memmove(rbuf, rbuf + off, rlen - off);
		rlen -= off;
		if (n == 0)
			return 1;
	}
}

/*
 * Sends the input and runs the loop until the daemon has read all of it
 * and answered what it could (or closed the connection).
 */
static void
converse(int dfd, int cfd, const uint8_t *data, size_t size)
{
	size_t off = 0;
	ssize_t n;
	int unread;

	for (;;) {
		if (off < size) {
			n = send(cfd, data + off, size - off,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n == -1 && errno != EAGAIN && errno != EINTR)
				off = size;	/* the daemon closed */
		}
		event_base_loop(eb, EVLOOP_NONBLOCK);
		/* Only while it is open is dfd still the daemon's socket. */
		if (drain(cfd))
			return;
		if (off < size)
			continue;
		if (ioctl(dfd, FIONREAD, &unread) == -1)
			die("FIONREAD: %s", strerror(errno));
		if (unread == 0 && !ckpt_busy())
			return;
		if (ckpt_busy())
			event_base_loop(eb, EVLOOP_ONCE);
	}
}

/* Checks the heap, then frees all the input left in it. */
static void
sweep(void)
{
	struct shm_seg *seg = &heap.seg;
	struct shm_report rep;
	struct slab_block b;
	char err[1024], name[SHM_ROOT_NAME_MAX + 1];
	uint64_t s, req;
	uint64_t w;
	uint32_t i, cls;
	uintptr_t a;
	int rc;

	/* The harness is the owner of every lease: give them all back. */
	for (i = 0; i < seg_lease_hwm(seg); i++)
		if (seg->leases[i].owner_pid != 0 &&
		    heap_lease_release(&heap, i) != 0)
			die("lease record %u does not release", i);
	if (shm_check(seg, &rep, err, sizeof(err)) != 0)
		die("the heap fails its check: %s", err);
	if (rep.blocks_orphaned != 0)
		die("%" PRIu64 " blocks claimed and never handed out",
		    rep.blocks_orphaned);
	for (s = 0; s < seg->nslabs; s++) {
		w = atomic_load(&seg->slabs[s].word);
		if (SHM_SLAB_STATE(w) == SHM_LARGE_HEAD) {
			a = slab_addr(seg, s);
			if ((rc = heap_free(&heap, a, &req)) != 0)
				die("extent at slab %" PRIu64 " does not free: "
				    "%s", s, strerror(-rc));
			continue;
		}
		if (SHM_SLAB_STATE(w) != SHM_SMALL)
			continue;
		cls = SHM_SLAB_CLS(w);
		for (i = 0; i < slab_class_nblocks[cls]; i++) {
			a = slab_addr(seg, s) + (uintptr_t)i *
			    slab_class_size[cls];
			if (slab_block_lookup(seg, a, &b) != 0)
				continue;
			if ((rc = heap_free(&heap, a, &req)) != 0)
				die("block 0x%" PRIxPTR " does not free: %s", a,
				    strerror(-rc));
		}
	}
	/* The table is compact: the last root goes each time. */
	while ((s = atomic_load(&seg->sb->roots_used)) > 0) {
		memcpy(name, seg->roots[s - 1].name, sizeof(name));
		name[SHM_ROOT_NAME_MAX] = '\0';
		if (heap_root_remove(&heap, name) != 0)
			die("root %" PRIu64 " does not remove", s - 1);
	}
	heap_reclaim_sweep(&heap);
	for (s = 0; s < seg->nslabs; s++)
		if (SHM_SLAB_STATE(atomic_load(&seg->slabs[s].word)) !=
		    SHM_FREE)
			die("slab %" PRIu64 " is still in use after every block "
			    "was freed", s);
	if (heap.nfree != seg->nslabs)
		die("the daemon counts %" PRIu64 " free slabs of %" PRIu64,
		    heap.nfree, seg->nslabs);
}

int
fuzz_dispatch_one(const uint8_t *data, size_t size)
{
	int sv[2];

	if (!ready)
		setup();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		die("socketpair: %s", strerror(errno));
	if (server_conn_new(sv[0]) == NULL)
		die("server_conn_new failed");
	rlen = 0;
	converse(sv[0], sv[1], data, size);
	/* The client hangs up; the daemon forgets the connection. */
	close(sv[1]);
	while (server_client_count() > 0 || ckpt_busy())
		event_base_loop(eb, EVLOOP_ONCE);
	sweep();
	return 0;
}

FUZZ_ENTRY(fuzz_dispatch_one)
