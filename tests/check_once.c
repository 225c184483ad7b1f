/* SPDX-License-Identifier: MIT */
/*
 * check_once.c: requests done exactly once across daemon crashes.
 *
 * crash_points kills the real daemon (SIGKILL, from inside, at a test-only
 * crash point) at every step of every request that changes the heap, for
 * each case of each request, then starts it again, takes the session up
 * again and sends the same request with the same sequence number: the
 * answer must be what the request would have answered, the heap must
 * hold exactly what that answer says, shm_check() must pass and nothing
 * may be orphaned.  Every crash point `aclheapd --crash-points` lists must
 * be hit by some case.  The soak test kills the daemon at random moments
 * under clients that keep persistent tables and counts everything.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/aclheap.h"
#include "proto/proto.h"
#include "shm/shm.h"
#include "tests/testutil.h"

#define MIB		(UINT64_C(1) << 20)

/* A client that speaks the protocol itself, with a session. */
struct rc {
	int fd;
	uint32_t session;
	uint64_t nonce;
	uint64_t seq;
	uint64_t id;
	struct frame_arena a;
	uint8_t abuf[256 * 1024];
	uint8_t buf[FRAME_HDR + FRAME_MAX];
};

static int
rc_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request, one reply; NULL when the connection is gone. */
static Aclheap__Reply *
rc_roundtrip(struct rc *c, Aclheap__Request *q)
{
	Aclheap__Reply *r;
	uint32_t len;
	long n;
	int pfd = -1;

	q->id = ++c->id;
	n = frame_pack_request(q, c->buf, sizeof(c->buf));
	ck_assert_int_gt(n, 0);
	if (frame_send(c->fd, c->buf, (size_t)n, -1) != 0)
		return NULL;
	if (frame_recv(c->fd, c->buf, sizeof(c->buf), &len, &pfd) != 0)
		return NULL;
	if (pfd >= 0)
		close(pfd);
	frame_arena_reset(&c->a);
	r = frame_unpack_reply(&c->a, c->buf, len);
	ck_assert_ptr_nonnull(r);
	return r;
}

/* Connects and says Hello, naming the session it has; 1 if the daemon
 * took the session up again, 0 if it gave a new one. */
static int
rc_hello(struct rc *c, const char *sock)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Hello h = ACLHEAP__HELLO__INIT;
	Aclheap__Reply *r;
	int resumed;

	if (c->fd >= 0)
		close(c->fd);
	ck_assert_int_ge(c->fd = rc_connect(sock), 0);
	frame_arena_init(&c->a, c->abuf, sizeof(c->abuf));
	h.version = PROTOCOL_VERSION;
	h.pid = (uint32_t)getpid();
	h.name = "check_once";
	h.session = c->session;
	h.nonce = c->nonce;
	q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
	q.hello = &h;
	ck_assert_ptr_nonnull(r = rc_roundtrip(c, &q));
	ck_assert_int_eq(r->error, 0);
	ck_assert_int_eq(r->body_case, ACLHEAP__REPLY__BODY_HELLO);
	ck_assert_uint_ne(r->hello->session, 0);
	resumed = r->hello->session == c->session &&
	    r->hello->nonce == c->nonce;
	c->session = r->hello->session;
	c->nonce = r->hello->nonce;
	return resumed;
}

static void
rc_init(struct rc *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* What the heap holds, by the daemon's own count and check. */
struct census {
	uint64_t blocks;	/* live blocks, small and large */
	uint64_t large;
	uint64_t orphaned;	/* claimed, not live, in no lease's set */
	uint32_t leases;	/* lease records of this process */
};

static void
census(struct rc *c, struct census *out)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Stats st = ACLHEAP__STATS__INIT;
	Aclheap__Verify v = ACLHEAP__VERIFY__INIT;
	Aclheap__Clients cl = ACLHEAP__CLIENTS__INIT;
	Aclheap__Reply *r;
	size_t i;

	memset(out, 0, sizeof(*out));
	q.body_case = ACLHEAP__REQUEST__BODY_VERIFY;
	q.verify = &v;
	ck_assert_ptr_nonnull(r = rc_roundtrip(c, &q));
	ck_assert_msg(r->error == 0, "verify: %s", r->message);
	out->orphaned = r->verify->blocks_orphaned;
	q.body_case = ACLHEAP__REQUEST__BODY_STATS;
	q.stats = &st;
	ck_assert_ptr_nonnull(r = rc_roundtrip(c, &q));
	ck_assert_int_eq(r->error, 0);
	out->blocks = r->stats->blocks_in_use;
	out->large = r->stats->large_blocks;
	/* Claimed and not live, less what leases hold: in no one's hands. */
	out->orphaned -= r->stats->blocks_cached;
	q.body_case = ACLHEAP__REQUEST__BODY_CLIENTS;
	q.clients = &cl;
	ck_assert_ptr_nonnull(r = rc_roundtrip(c, &q));
	ck_assert_int_eq(r->error, 0);
	for (i = 0; i < r->clients->n_clients; i++)
		if (r->clients->clients[i]->pid == (uint32_t)getpid())
			out->leases += r->clients->clients[i]->leases;
}

/* A changing request with the next seq, once; the reply or NULL. */
static Aclheap__Reply *
rc_once(struct rc *c, Aclheap__Request *q)
{
	q->seq = ++c->seq;
	return rc_roundtrip(c, q);
}

static uint64_t
rc_alloc(struct rc *c, uint64_t size)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc m = ACLHEAP__ALLOC__INIT;
	Aclheap__Reply *r;

	m.size = size;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &m;
	ck_assert_ptr_nonnull(r = rc_once(c, &q));
	ck_assert_msg(r->error == 0, "alloc %llu: %s",
	    (unsigned long long)size, r->message);
	return r->alloc->addr;
}

/* Frees addr: the size it was asked for, or -errno. */
static long
rc_free(struct rc *c, uint64_t addr)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Free m = ACLHEAP__FREE__INIT;
	Aclheap__Reply *r;

	m.addr = addr;
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &m;
	ck_assert_ptr_nonnull(r = rc_once(c, &q));
	return r->error != 0 ? -r->error : (long)r->free->size;
}

static uint64_t
rc_root_get(struct rc *c, const char *name, int *err)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__RootGet m = ACLHEAP__ROOT_GET__INIT;
	Aclheap__Reply *r;

	m.name = (char *)name;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_GET;
	q.root_get = &m;
	ck_assert_ptr_nonnull(r = rc_roundtrip(c, &q));
	*err = r->error;
	return r->error == 0 ? r->root->value : 0;
}

/* ------------------------------------------------------------------ */
/* The cases: each sets the heap up, builds one changing request, and
 * checks its answer and the heap after it. */

struct ctx {
	struct td td;
	struct rc c;
	struct census before;
	uint64_t a, b;		/* blocks the setup made */
	uint64_t size_a;	/* what a was asked for */
	uint8_t seed;		/* what a was filled with */
	void *lib;		/* a block the library made on its fast path */
	uint32_t lease_rec;
	/* bodies the request points into */
	Aclheap__Alloc alloc;
	Aclheap__Free free;
	Aclheap__Realloc realloc;
	Aclheap__Root root;
	Aclheap__RootCas cas;
	Aclheap__RootRemove remove;
	Aclheap__LeaseSlab lease;
	Aclheap__ReleaseSlab release;
	char name[256];
	char other[256];	/* a root made after name's */
};

/* What a reply said, copied out of the arena the next request reuses. */
struct answer {
	int error;
	int body;
	uint64_t addr, usable, size, record;
	char message[256];
};

static void
answer_of(const Aclheap__Reply *r, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	a->error = r->error;
	a->body = r->body_case;
	snprintf(a->message, sizeof(a->message), "%s",
	    r->message != NULL ? r->message : "");
	if (r->body_case == ACLHEAP__REPLY__BODY_ALLOC) {
		a->addr = r->alloc->addr;
		a->usable = r->alloc->usable;
	} else if (r->body_case == ACLHEAP__REPLY__BODY_FREE)
		a->size = r->free->size;
	else if (r->body_case == ACLHEAP__REPLY__BODY_LEASE) {
		a->addr = r->lease->slab;
		a->record = r->lease->record;
	}
}

struct kase {
	const char *kind;	/* its crash points' kind */
	const char *what;
	void (*setup)(struct ctx *);
	void (*request)(struct ctx *, Aclheap__Request *);
	void (*check)(struct ctx *, const struct answer *);
};

static unsigned long serial;

static void
fill(uint64_t addr, size_t n, uint8_t seed)
{
	uint8_t *p = (uint8_t *)(uintptr_t)addr;
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void
ck_filled(uint64_t addr, size_t n, uint8_t seed)
{
	const uint8_t *p = (const uint8_t *)(uintptr_t)addr;
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != (uint8_t)(seed + i * 7))
			ck_abort_msg("byte %zu of 0x%llx is %u, not %u", i,
			    (unsigned long long)addr, p[i],
			    (uint8_t)(seed + i * 7));
}

static void
setup_none(struct ctx *x)
{
	(void)x;
}

static void
req_alloc_small(struct ctx *x, Aclheap__Request *q)
{
	aclheap__alloc__init(&x->alloc);
	x->alloc.size = 100;
	q->body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q->alloc = &x->alloc;
}

static void
req_alloc_large(struct ctx *x, Aclheap__Request *q)
{
	aclheap__alloc__init(&x->alloc);
	x->alloc.size = 8 * MIB + 5;
	q->body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q->alloc = &x->alloc;
}

/* One more live block, the one answered, of the size asked for. */
static void
check_alloc(struct ctx *x, const struct answer *r)
{
	struct census now;

	ck_assert_msg(r->error == 0, "alloc: %s", r->message);
	ck_assert_int_eq(r->body, ACLHEAP__REPLY__BODY_ALLOC);
	ck_assert_uint_ge(r->usable, x->alloc.size);
	census(&x->c, &now);
	ck_assert_uint_eq(now.blocks, x->before.blocks + 1);
	fill(r->addr, (size_t)x->alloc.size, 3);
	ck_assert_int_eq(rc_free(&x->c, r->addr), (long)x->alloc.size);
}

static void
setup_daemon_block(struct ctx *x)
{
	x->a = rc_alloc(&x->c, x->size_a = 100);
}

static void
setup_extent(struct ctx *x)
{
	x->a = rc_alloc(&x->c, x->size_a = 8 * MIB + 5);
	fill(x->a, 4096, x->seed = 9);
}

/* A block of a slab the library's thread owns (its lease). */
static void
setup_lib_block(struct ctx *x)
{
	ck_assert_ptr_nonnull(x->lib = aclmalloc(100));
	x->a = (uint64_t)(uintptr_t)x->lib;
	x->size_a = 100;
	fill(x->a, 100, x->seed = 5);
}

static void
req_free(struct ctx *x, Aclheap__Request *q)
{
	aclheap__free__init(&x->free);
	x->free.addr = x->a;
	q->body_case = ACLHEAP__REQUEST__BODY_FREE;
	q->free = &x->free;
}

static void
check_free(struct ctx *x, const struct answer *r)
{
	struct census now;

	ck_assert_msg(r->error == 0, "free: %s", r->message);
	ck_assert_int_eq(r->body, ACLHEAP__REPLY__BODY_FREE);
	ck_assert_uint_eq(r->size, x->size_a);
	census(&x->c, &now);
	ck_assert_uint_eq(now.blocks, x->before.blocks - 1);
	/* Gone: freeing it again is refused. */
	ck_assert_int_eq(rc_free(&x->c, x->a), -EINVAL);
	if (x->lib != NULL) {
		/* The library's thread goes on using its slab. */
		void *p = aclmalloc(100);

		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(aclfree(p), 100);
		x->lib = NULL;
	}
}

/* A second block right after the extent, so that it cannot grow. */
static void
setup_extent_pinned(struct ctx *x)
{
	setup_extent(x);
	x->b = rc_alloc(&x->c, 64 * 1024);
}

static void
setup_small_filled(struct ctx *x)
{
	x->a = rc_alloc(&x->c, x->size_a = 100);
	fill(x->a, 100, x->seed = 11);
}

static void
req_realloc_to(struct ctx *x, Aclheap__Request *q, uint64_t size)
{
	aclheap__realloc__init(&x->realloc);
	x->realloc.addr = x->a;
	x->realloc.size = size;
	q->body_case = ACLHEAP__REQUEST__BODY_REALLOC;
	q->realloc = &x->realloc;
}

static void req_realloc_3000(struct ctx *x, Aclheap__Request *q)
{ req_realloc_to(x, q, 3000); }
static void req_realloc_90(struct ctx *x, Aclheap__Request *q)
{ req_realloc_to(x, q, 90); }
static void req_realloc_12m(struct ctx *x, Aclheap__Request *q)
{ req_realloc_to(x, q, 12 * MIB); }
static void req_realloc_5m(struct ctx *x, Aclheap__Request *q)
{ req_realloc_to(x, q, 5 * MIB); }

/* The answered block holds the old bytes and the new size; the old one
 * is gone unless it is the same; as many blocks as before. */
static void
check_realloc(struct ctx *x, const struct answer *r)
{
	struct census now;
	uint64_t keep = x->realloc.size < x->size_a ? x->realloc.size :
	    x->size_a;

	ck_assert_msg(r->error == 0, "realloc: %s", r->message);
	ck_assert_int_eq(r->body, ACLHEAP__REPLY__BODY_ALLOC);
	ck_assert_uint_ge(r->usable, x->realloc.size);
	if (keep > 4096)
		keep = 4096;	/* what the setup filled */
	ck_filled(r->addr, (size_t)keep, x->seed);
	census(&x->c, &now);
	ck_assert_uint_eq(now.blocks, x->before.blocks);
	if (r->addr != x->a)
		ck_assert_int_eq(rc_free(&x->c, x->a), -EINVAL);
	ck_assert_int_eq(rc_free(&x->c, r->addr),
	    (long)x->realloc.size);
	if (x->b != 0)
		ck_assert_int_eq(rc_free(&x->c, x->b), 64 * 1024);
	x->lib = NULL;
}

static void
setup_root(struct ctx *x)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Root m = ACLHEAP__ROOT__INIT;
	Aclheap__Reply *r;

	snprintf(x->name, sizeof(x->name), "once.%lu", serial);
	m.name = x->name;
	m.value = 0x1000;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
	q.root_set = &m;
	ck_assert_ptr_nonnull(r = rc_once(&x->c, &q));
	ck_assert_int_eq(r->error, 0);
}

static void
setup_root_name(struct ctx *x)
{
	snprintf(x->name, sizeof(x->name), "once.%lu", serial);
}

/* A name of 255 bytes, the longest there is: the journal keeps it whole. */
static void
long_name(struct ctx *x)
{
	int n = snprintf(x->name, sizeof(x->name), "once.%lu.", serial);

	memset(x->name + n, 'L', sizeof(x->name) - 1 - (size_t)n);
	x->name[sizeof(x->name) - 1] = '\0';
}

static void
setup_root_long_name(struct ctx *x)
{
	long_name(x);
}

/* A root of a 255-byte name with another made after it: removing it moves
 * the last root into its place. */
static void
setup_root_long_inner(struct ctx *x)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Root m = ACLHEAP__ROOT__INIT;
	Aclheap__Reply *r;

	long_name(x);
	m.name = x->name;
	m.value = 0x1000;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
	q.root_set = &m;
	ck_assert_ptr_nonnull(r = rc_once(&x->c, &q));
	ck_assert_int_eq(r->error, 0);
	snprintf(x->other, sizeof(x->other), "once.%lu.after", serial);
	m.name = x->other;
	m.value = 0x4000;
	ck_assert_ptr_nonnull(r = rc_once(&x->c, &q));
	ck_assert_int_eq(r->error, 0);
}

static void
req_root_set(struct ctx *x, Aclheap__Request *q)
{
	aclheap__root__init(&x->root);
	x->root.name = x->name;
	x->root.value = 0x2000;
	q->body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
	q->root_set = &x->root;
}

static void
check_root_2000(struct ctx *x, const struct answer *r)
{
	int err;

	ck_assert_msg(r->error == 0, "root: %s", r->message);
	ck_assert_uint_eq(rc_root_get(&x->c, x->name, &err), 0x2000);
	ck_assert_int_eq(err, 0);
}

static void
req_cas_hit(struct ctx *x, Aclheap__Request *q)
{
	aclheap__root_cas__init(&x->cas);
	x->cas.name = x->name;
	x->cas.expected = 0x1000;
	x->cas.desired = 0x2000;
	q->body_case = ACLHEAP__REQUEST__BODY_ROOT_CAS;
	q->root_cas = &x->cas;
}

/* Expects what the root does not hold: the first answer, EAGAIN, is the
 * answer again, even though the root changes before the resend... */
static void
req_cas_miss(struct ctx *x, Aclheap__Request *q)
{
	aclheap__root_cas__init(&x->cas);
	x->cas.name = x->name;
	x->cas.expected = 0x3000;
	x->cas.desired = 0x2000;
	q->body_case = ACLHEAP__REQUEST__BODY_ROOT_CAS;
	q->root_cas = &x->cas;
}

static void
check_cas_miss(struct ctx *x, const struct answer *r)
{
	int err;

	ck_assert_int_eq(r->error, EAGAIN);
	ck_assert_uint_eq(rc_root_get(&x->c, x->name, &err), 0x1000);
}

static void
req_remove(struct ctx *x, Aclheap__Request *q)
{
	aclheap__root_remove__init(&x->remove);
	x->remove.name = x->name;
	q->body_case = ACLHEAP__REQUEST__BODY_ROOT_REMOVE;
	q->root_remove = &x->remove;
}

static void
check_removed(struct ctx *x, const struct answer *r)
{
	int err;

	ck_assert_msg(r->error == 0, "remove: %s", r->message);
	(void)rc_root_get(&x->c, x->name, &err);
	ck_assert_int_eq(err, ENOENT);
}

/* A CAS to 0: a removal. */
static void
req_cas_drop(struct ctx *x, Aclheap__Request *q)
{
	aclheap__root_cas__init(&x->cas);
	x->cas.name = x->name;
	x->cas.expected = 0x1000;
	x->cas.desired = 0;
	q->body_case = ACLHEAP__REQUEST__BODY_ROOT_CAS;
	q->root_cas = &x->cas;
}

/* Removed, and the root moved into its place is whole. */
static void
check_removed_other(struct ctx *x, const struct answer *r)
{
	int err;

	ck_assert_msg(r->error == 0, "remove: %s", r->message);
	(void)rc_root_get(&x->c, x->name, &err);
	ck_assert_int_eq(err, ENOENT);
	ck_assert_uint_eq(rc_root_get(&x->c, x->other, &err), 0x4000);
	ck_assert_int_eq(err, 0);
}

static void
req_lease(struct ctx *x, Aclheap__Request *q)
{
	aclheap__lease_slab__init(&x->lease);
	x->lease.cls = 5;
	q->body_case = ACLHEAP__REQUEST__BODY_LEASE;
	q->lease = &x->lease;
}

/* One lease more, the one answered; released, one less again. */
static void
check_lease(struct ctx *x, const struct answer *r)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__ReleaseSlab m = ACLHEAP__RELEASE_SLAB__INIT;
	Aclheap__Reply *rr;
	struct census now;

	ck_assert_msg(r->error == 0, "lease: %s", r->message);
	ck_assert_int_eq(r->body, ACLHEAP__REPLY__BODY_LEASE);
	census(&x->c, &now);
	ck_assert_uint_eq(now.leases, x->before.leases + 1);
	m.record = r->record;
	q.body_case = ACLHEAP__REQUEST__BODY_RELEASE;
	q.release = &m;
	ck_assert_ptr_nonnull(rr = rc_once(&x->c, &q));
	ck_assert_msg(rr->error == 0, "release: %s", rr->message);
	census(&x->c, &now);
	ck_assert_uint_eq(now.leases, x->before.leases);
}

static void
setup_lease(struct ctx *x)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Reply *r;

	req_lease(x, &q);
	ck_assert_ptr_nonnull(r = rc_once(&x->c, &q));
	ck_assert_msg(r->error == 0, "lease: %s", r->message);
	x->lease_rec = r->lease->record;
}

static void
req_release(struct ctx *x, Aclheap__Request *q)
{
	aclheap__release_slab__init(&x->release);
	x->release.record = x->lease_rec;
	q->body_case = ACLHEAP__REQUEST__BODY_RELEASE;
	q->release = &x->release;
}

static void
check_release(struct ctx *x, const struct answer *r)
{
	struct census now;

	ck_assert_msg(r->error == 0, "release: %s", r->message);
	census(&x->c, &now);
	ck_assert_uint_eq(now.leases, x->before.leases - 1);
}

static const struct kase kases[] = {
	{ "alloc", "a small block", setup_none, req_alloc_small, check_alloc },
	{ "alloc", "an extent", setup_none, req_alloc_large, check_alloc },
	{ "free", "a block of the daemon's slab", setup_daemon_block,
	    req_free, check_free },
	{ "free", "a block of a slab a client owns", setup_lib_block,
	    req_free, check_free },
	{ "free", "an extent", setup_extent, req_free, check_free },
	{ "realloc", "a small block, moved", setup_small_filled,
	    req_realloc_3000, check_realloc },
	{ "realloc", "a small block, in place", setup_small_filled,
	    req_realloc_90, check_realloc },
	{ "realloc", "a block of a client's slab, moved", setup_lib_block,
	    req_realloc_3000, check_realloc },
	{ "realloc", "an extent grown in place", setup_extent,
	    req_realloc_12m, check_realloc },
	{ "realloc", "an extent shrunk", setup_extent, req_realloc_5m,
	    check_realloc },
	{ "realloc", "an extent moved", setup_extent_pinned,
	    req_realloc_12m, check_realloc },
	{ "root_set", "a new root", setup_root_name, req_root_set,
	    check_root_2000 },
	{ "root_set", "a root's new value", setup_root, req_root_set,
	    check_root_2000 },
	{ "root_cas", "a CAS that succeeds", setup_root, req_cas_hit,
	    check_root_2000 },
	{ "root_cas", "a CAS that fails", setup_root, req_cas_miss,
	    check_cas_miss },
	{ "root_remove", "a root removed", setup_root, req_remove,
	    check_removed },
	{ "root_set", "a new root of 255 bytes", setup_root_long_name,
	    req_root_set, check_root_2000 },
	{ "root_cas", "a CAS that removes a 255-byte root, not the last",
	    setup_root_long_inner, req_cas_drop, check_removed_other },
	{ "root_remove", "a 255-byte root removed, not the last",
	    setup_root_long_inner, req_remove, check_removed_other },
	{ "lease", "a new lease", setup_none, req_lease, check_lease },
	{ "release", "a lease given back", setup_lease, req_release,
	    check_release },
};

/* The crash points the daemon has, from `aclheapd --crash-points`. */
static int
crash_points(char pts[][32], int max)
{
	const char *argv[] = { td_prog("aclheapd"), "--crash-points",
	    NULL };
	char out[4096], *line, *save = NULL;
	int n = 0;

	ck_assert_int_eq(run_cmd(out, sizeof(out), argv), 0);
	for (line = strtok_r(out, "\n", &save); line != NULL && n < max;
	    line = strtok_r(NULL, "\n", &save))
		snprintf(pts[n++], 32, "%s", line);
	return n;
}

static int
point_kind_is(const char *pt, const char *kind)
{
	size_t n = strlen(kind);

	return strncmp(pt, kind, n) == 0 && pt[n] == ':';
}

/*
 * One case at one point: sets up on the running daemon, starts it again
 * armed, sends the request (the daemon dies, or answers if this case has
 * no such step), starts it again plain, takes the session up again and
 * sends the same seq.  1 if the daemon died at the point.
 */
static int
run_point(struct ctx *x, const struct kase *k, const char *pt)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Reply *r;
	char env[64];
	const char *envp[] = { env, NULL };
	struct answer first, again;
	uint64_t seq;
	int st;

	serial++;
	printf("# %s: %s\n", pt, k->what);
	fflush(stdout);
	x->a = x->b = 0;
	x->lib = NULL;
	k->setup(x);
	census(&x->c, &x->before);
	ck_assert_uint_eq(x->before.orphaned, 0);
	ck_assert_int_ne(td_stop(&x->td, SIGKILL), -1);
	snprintf(env, sizeof(env), "ACLHEAPD_CRASH_AT=%.31s:1", pt);
	ck_assert_int_eq(td_start_env(&x->td, NULL, envp), 0);
	ck_assert_int_eq(td_wait_ready(&x->td), 0);
	ck_assert_int_eq(rc_hello(&x->c, x->td.sock), 1);
	k->request(x, &q);
	if ((r = rc_once(&x->c, &q)) != NULL) {
		/* This case has no such step: it was simply answered. */
		answer_of(r, &first);
		k->check(x, &first);
		return 0;
	}
	seq = x->c.seq;
	st = td_wait_exit(&x->td, 20000);
	ck_assert_msg(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "%s (%s): the daemon did not die at its crash point (%d)", pt,
	    k->what, st);
	ck_assert_int_eq(td_start(&x->td, NULL), 0);
	ck_assert_msg(rc_hello(&x->c, x->td.sock) == 1,
	    "%s: the session was not taken up again", pt);
	q.seq = seq;
	ck_assert_ptr_nonnull(r = rc_roundtrip(&x->c, &q));
	answer_of(r, &first);
	/* The same seq a third time: the same answer, nothing done. */
	ck_assert_ptr_nonnull(r = rc_roundtrip(&x->c, &q));
	answer_of(r, &again);
	ck_assert_int_eq(again.error, first.error);
	ck_assert_int_eq(again.body, first.body);
	ck_assert_uint_eq(again.addr, first.addr);
	ck_assert_uint_eq(again.size, first.size);
	ck_assert_uint_eq(again.record, first.record);
	k->check(x, &again);
	return 1;
}

START_TEST(every_crash_point)
{
	static struct ctx x;
	char pts[64][32];
	int npts, i, hits[64];
	size_t k;
	struct census end;

	memset(&x, 0, sizeof(x));
	memset(hits, 0, sizeof(hits));
	td_init(&x.td, "once");
	setenv("ACLHEAP_RECONNECT_TIMEOUT", "20", 1);
	ck_assert_int_eq(td_start(&x.td, NULL), 0);
	ck_assert_int_eq(aclheap_attach(x.td.sock), 0);
	rc_init(&x.c);
	ck_assert_int_eq(rc_hello(&x.c, x.td.sock), 0);
	npts = crash_points(pts, 64);
	ck_assert_int_ge(npts, 20);
	for (i = 0; i < npts; i++)
		for (k = 0; k < sizeof(kases) / sizeof(kases[0]); k++)
			if (point_kind_is(pts[i], kases[k].kind))
				hits[i] += run_point(&x, &kases[k], pts[i]);
	for (i = 0; i < npts; i++)
		ck_assert_msg(hits[i] > 0, "no case reached crash point %s",
		    pts[i]);
	census(&x.c, &end);
	ck_assert_uint_eq(end.orphaned, 0);
	aclheap_detach();
	close(x.c.fd);
	td_stop(&x.td, SIGTERM);
	td_cleanup(&x.td);
}
END_TEST

/* A smaller seq than the session's is refused; a Hello with a wrong token
 * or from another process gets a new session. */
START_TEST(stale_and_foreign_sessions)
{
	struct td td;
	static struct rc c, d;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc m = ACLHEAP__ALLOC__INIT;
	Aclheap__Reply *r;
	uint32_t sess;
	uint64_t nonce, addr;
	struct census n0, n1;

	td_init(&td, "once-bad");
	ck_assert_int_eq(td_start(&td, NULL), 0);
	rc_init(&c);
	ck_assert_int_eq(rc_hello(&c, td.sock), 0);
	m.size = 64;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &m;
	c.seq = 10;
	ck_assert_ptr_nonnull(r = rc_once(&c, &q));
	ck_assert_int_eq(r->error, 0);
	addr = r->alloc->addr;
	census(&c, &n0);
	/* seq 5 < 11: refused, nothing done. */
	q.seq = 5;
	ck_assert_ptr_nonnull(r = rc_roundtrip(&c, &q));
	ck_assert_int_eq(r->error, EPROTO);
	ck_assert_ptr_nonnull(strstr(r->message, "seq"));
	/* seq 11 again: the same block. */
	q.seq = 11;
	ck_assert_ptr_nonnull(r = rc_roundtrip(&c, &q));
	ck_assert_int_eq(r->error, 0);
	ck_assert_uint_eq(r->alloc->addr, addr);
	census(&c, &n1);
	ck_assert_uint_eq(n1.blocks, n0.blocks);
	/* Another connection naming c's session with a wrong token gets a
	 * session of its own. */
	rc_init(&d);
	d.session = c.session;
	d.nonce = c.nonce ^ 1;
	ck_assert_int_eq(rc_hello(&d, td.sock), 0);
	ck_assert_uint_ne(d.session, c.session);
	/* A second connection of c's own process with c's token while c
	 * holds it: a session of its own too. */
	sess = c.session;
	nonce = c.nonce;
	close(d.fd);
	rc_init(&d);
	d.session = sess;
	d.nonce = nonce;
	ck_assert_int_eq(rc_hello(&d, td.sock), 0);
	close(d.fd);
	close(c.fd);
	td_stop(&td, SIGTERM);
	td_cleanup(&td);
}
END_TEST

/* Waits for the armed daemon to die, then starts it plain. */
static void *
restarter(void *arg)
{
	struct td *td = arg;
	int st = td_wait_exit(td, 30000);

	ck_assert_msg(st != -1 && WIFSIGNALED(st), "the daemon did not die");
	ck_assert_int_eq(td_start(td, NULL), 0);
	return NULL;
}

/* The library resends across a crash: no ECONNRESET, one block. */
START_TEST(library_resends)
{
	struct td td;
	char env[64] = "ACLHEAPD_CRASH_AT=alloc:1:1";
	const char *envp[] = { env, NULL };
	struct aclheap_stats s0, s1;
	pthread_t t;
	void *p;

	td_init(&td, "once-lib");
	setenv("ACLHEAP_RECONNECT_TIMEOUT", "20", 1);
	ck_assert_int_eq(td_start(&td, NULL), 0);
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	ck_assert_int_eq(aclheap_stats(&s0), 0);
	ck_assert_int_ne(td_stop(&td, SIGKILL), -1);
	ck_assert_int_eq(td_start_env(&td, NULL, envp), 0);
	ck_assert_int_eq(td_wait_ready(&td), 0);
	/* A thread starts the daemon again once it died; we are blocked
	 * in aclmalloc meanwhile, which must then succeed, once. */
	ck_assert_int_eq(pthread_create(&t, NULL, restarter, &td), 0);
	p = aclmalloc(8 * MIB + 1);
	ck_assert_msg(p != NULL, "aclmalloc across a crash: %s",
	    aclheap_last_error());
	pthread_join(t, NULL);
	ck_assert_int_eq(aclheap_stats(&s1), 0);
	ck_assert_uint_eq(s1.blocks_in_use, s0.blocks_in_use + 1);
	ck_assert_uint_eq(aclfree(p), 8 * MIB + 1);
	aclheap_detach();
	td_stop(&td, SIGTERM);
	td_cleanup(&td);
}
END_TEST


/* ------------------------------------------------------------------ */
/* The soak: clients with persistent tables under roots, the daemon
 * killed at random moments many times. */

#define SOAK_CLIENTS	4
#define SOAK_SLOTS	64
#define SOAK_KILLS	30

struct soak_report {
	uint64_t ops, failed, live, bad;
};

static volatile sig_atomic_t soak_stop;

static void
soak_on_usr1(int sig)
{
	(void)sig;
	soak_stop = 1;
}

/* A block's first word says which slot of which client holds it and its
 * size, so that every entry of a table can be checked at the end. */
static uint64_t
soak_tag(int who, int slot, uint64_t size)
{
	return (uint64_t)who << 56 | (uint64_t)slot << 40 | size;
}

static uint64_t
soak_size(unsigned *seed)
{
	switch (rand_r(seed) % 8) {
	case 0:
		return 4 * MIB + 4096 + (uint64_t)(rand_r(seed) % (1 << 20));
	case 1:
		return 16 * 1024 + (uint64_t)(rand_r(seed) % 65536);
	default:
		return 16 + (uint64_t)(rand_r(seed) % 4000);
	}
}

static void
soak_client(int who, int out)
{
	struct soak_report rep = { 0, 0, 0, 0 };
	struct sigaction sa;
	uint64_t *tab, size, *p, *q;
	unsigned seed = (unsigned)(who * 7919 + 1);
	char name[32];
	int i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = soak_on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	if (aclheap_attach(NULL) != 0)
		_exit(2);
	if ((tab = aclcalloc(SOAK_SLOTS, sizeof(*tab))) == NULL)
		_exit(3);
	snprintf(name, sizeof(name), "soak.%d", who);
	if (aclheap_root_set(name, tab) != 0)
		_exit(4);
	while (!soak_stop) {
		i = rand_r(&seed) % SOAK_SLOTS;
		rep.ops++;
		if (tab[i] == 0) {
			size = soak_size(&seed);
			if ((p = aclmalloc(size)) == NULL) {
				rep.failed++;
				continue;
			}
			p[0] = soak_tag(who, i, size);
			tab[i] = (uint64_t)(uintptr_t)p;
		} else if (rand_r(&seed) % 3 == 0) {
			p = (uint64_t *)(uintptr_t)tab[i];
			size = soak_size(&seed);
			if ((q = aclrealloc(p, size)) == NULL) {
				rep.failed++;
				continue;
			}
			q[0] = soak_tag(who, i, size);
			tab[i] = (uint64_t)(uintptr_t)q;
		} else {
			p = (uint64_t *)(uintptr_t)tab[i];
			size = p[0] & ((UINT64_C(1) << 40) - 1);
			tab[i] = 0;
			if (aclfree(p) != size)
				rep.failed++;
		}
		if (rep.ops % 8 == 0) {
			snprintf(name, sizeof(name), "soak.%d.last", who);
			if (aclheap_root_set(name, (void *)(uintptr_t)
			    tab[i]) != 0 && tab[i] != 0)
				rep.failed++;
		}
	}
	for (i = 0; i < SOAK_SLOTS; i++) {
		if (tab[i] == 0)
			continue;
		rep.live++;
		p = (uint64_t *)(uintptr_t)tab[i];
		if ((p[0] >> 56) != (uint64_t)who ||
		    ((p[0] >> 40) & 0xffff) != (uint64_t)i ||
		    aclheap_usable_size(p) < (p[0] & ((UINT64_C(1) << 40) - 1)))
			rep.bad++;
	}
	if (write(out, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(5);
	_exit(0);
}

/* Counts "journal: finished N ... undid M" and "answered again" in the
 * daemon's log. */
static void
soak_log_counts(struct td *td, unsigned long *finished, unsigned long *undone,
    unsigned long *replayed)
{
	size_t len;
	char *log = file_slurp(td->log, &len), *p;
	unsigned long a, b;

	*finished = *undone = *replayed = 0;
	for (p = log; p != NULL && (p = strstr(p, "journal: finished ")) !=
	    NULL; p++)
		if (sscanf(p, "journal: finished %lu %*s %*s %*s %*s %*s "
		    "undid %lu", &a, &b) == 2) {
			*finished += a;
			*undone += b;
		}
	for (p = log; p != NULL && (p = strstr(p, "answered again")) != NULL;
	    p++)
		(*replayed)++;
	free(log);
}

START_TEST(soak_kills)
{
	struct td td;
	static struct rc c;
	struct soak_report rep, sum = { 0, 0, 0, 0 };
	pid_t kids[SOAK_CLIENTS];
	int fds[SOAK_CLIENTS][2], i, st;
	unsigned seed = 12345, kills = 0;
	unsigned long fin, undone, replayed;
	struct census end;

	td_init(&td, "once-soak");
	snprintf(td.size, sizeof(td.size), "1G");
	setenv("ACLHEAP_RECONNECT_TIMEOUT", "30", 1);
	ck_assert_int_eq(td_start(&td, NULL), 0);
	for (i = 0; i < SOAK_CLIENTS; i++) {
		ck_assert_int_eq(pipe(fds[i]), 0);
		if ((kids[i] = fork()) == 0) {
			close(fds[i][0]);
			soak_client(i, fds[i][1]);
		}
		ck_assert_int_gt(kids[i], 0);
		close(fds[i][1]);
	}
	for (kills = 0; kills < SOAK_KILLS; kills++) {
		/* A random moment, not a wait for anything. */
		msleep(20 + rand_r(&seed) % 200);
		ck_assert_int_ne(td_stop(&td, SIGKILL), -1);
		ck_assert_int_eq(td_start(&td, NULL), 0);
	}
	msleep(200);
	for (i = 0; i < SOAK_CLIENTS; i++)
		kill(kids[i], SIGUSR1);
	for (i = 0; i < SOAK_CLIENTS; i++) {
		ck_assert_int_eq(read(fds[i][0], &rep, sizeof(rep)),
		    (ssize_t)sizeof(rep));
		close(fds[i][0]);
		ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "soak client %d: status %d", i, st);
		sum.ops += rep.ops;
		sum.failed += rep.failed;
		sum.live += rep.live;
		sum.bad += rep.bad;
	}
	rc_init(&c);
	(void)rc_hello(&c, td.sock);
	census(&c, &end);
	soak_log_counts(&td, &fin, &undone, &replayed);
	printf("# soak: %u kills, %llu operations, %lu requests cut short "
	    "(%lu finished, %lu undone), %lu answered again, %llu failed "
	    "calls, %llu blocks in tables, %llu in the heap, %llu orphaned\n",
	    kills, (unsigned long long)sum.ops, fin + undone, fin, undone,
	    replayed, (unsigned long long)sum.failed,
	    (unsigned long long)sum.live + SOAK_CLIENTS,
	    (unsigned long long)end.blocks, (unsigned long long)end.orphaned);
	ck_assert_uint_eq(sum.failed, 0);
	ck_assert_uint_eq(sum.bad, 0);
	ck_assert_uint_gt(sum.ops, 1000);
	/* The tables themselves are blocks too. */
	ck_assert_uint_eq(end.blocks, sum.live + SOAK_CLIENTS);
	ck_assert_uint_eq(end.orphaned, 0);
	close(c.fd);
	td_stop(&td, SIGTERM);
	td_cleanup(&td);
}
END_TEST

/* A request refused before its plan is recorded is answered again as
 * itself: the same seq gets the same refusal, not "behind". */
START_TEST(refusals_answered_again)
{
	struct td td;
	static struct rc c;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Free fm = ACLHEAP__FREE__INIT;
	Aclheap__Alloc am = ACLHEAP__ALLOC__INIT;
	Aclheap__RootCas cm = ACLHEAP__ROOT_CAS__INIT;
	Aclheap__Reply *r;
	uint64_t seq;

	td_init(&td, "once-refused");
	ck_assert_int_eq(td_start(&td, NULL), 0);
	rc_init(&c);
	ck_assert_int_eq(rc_hello(&c, td.sock), 0);
	/* First request of the session fails its plan. */
	fm.addr = 0x1234;
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &fm;
	ck_assert_ptr_nonnull(r = rc_once(&c, &q));
	ck_assert_int_eq(r->error, EINVAL);
	ck_assert_ptr_nonnull(r = rc_roundtrip(&c, &q));
	ck_assert_int_eq(r->error, EINVAL);
	/* An alloc, then a CAS that misses. */
	am.size = 64;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &am;
	ck_assert_ptr_nonnull(r = rc_once(&c, &q));
	ck_assert_int_eq(r->error, 0);
	cm.name = "rv";
	cm.expected = 5;
	cm.desired = 6;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_CAS;
	q.root_cas = &cm;
	ck_assert_ptr_nonnull(r = rc_once(&c, &q));
	seq = q.seq;
	ck_assert_int_eq(r->error, EAGAIN);
	q.seq = seq;
	ck_assert_ptr_nonnull(r = rc_roundtrip(&c, &q));
	ck_assert_msg(r->error == EAGAIN, "CAS miss replayed as %d: %s",
	    r->error, r->message);
	close(c.fd);
	td_stop(&td, SIGTERM);
	td_cleanup(&td);
}
END_TEST

/* A lease renewal cut short by a crash whose process dies before the
 * restart: the rebuild gives its record back, and the redo must not lease
 * the new slab to that free record. */
START_TEST(renewal_of_a_dead_process)
{
	struct td td;
	static struct rc c;
	char env[64] = "ACLHEAPD_CRASH_AT=lease:2:2";
	const char *envp[] = { env, NULL };
	struct aclheap_stats stt;
	const struct shm_super *sb;
	const struct shm_slab *slabs;
	const struct shm_lease *leases;
	int pfd[2], st;
	uint32_t rec = 0;
	uint64_t w;
	uint64_t s;
	pid_t kid;

	td_init(&td, "once-renew");
	ck_assert_int_eq(td_start(&td, NULL), 0);
	ck_assert_int_ne(td_stop(&td, SIGKILL), -1);
	ck_assert_int_eq(td_start_env(&td, NULL, envp), 0);
	ck_assert_int_eq(td_wait_ready(&td), 0);
	ck_assert_int_eq(pipe(pfd), 0);
	if ((kid = fork()) == 0) {
		Aclheap__Request q = ACLHEAP__REQUEST__INIT;
		Aclheap__LeaseSlab m = ACLHEAP__LEASE_SLAB__INIT;
		Aclheap__Reply *r;

		rc_init(&c);
		rc_hello(&c, td.sock);
		m.cls = 5;
		q.body_case = ACLHEAP__REQUEST__BODY_LEASE;
		q.lease = &m;
		r = rc_once(&c, &q);
		rec = r->lease->record;
		if (write(pfd[1], &rec, sizeof(rec)) != sizeof(rec))
			_exit(2);
		m.renew = rec + 1;
		(void)rc_once(&c, &q);	/* the daemon dies here */
		_exit(0);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &rec, sizeof(rec)), (ssize_t)sizeof(rec));
	st = td_wait_exit(&td, 20000);
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(wait_child(kid, 20000), 0);
	ck_assert_int_eq(td_start(&td, NULL), 0);
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	ck_assert_int_eq(aclheap_stats(&stt), 0);
	sb = (const struct shm_super *)stt.base;
	slabs = (const struct shm_slab *)(stt.base + sb->slabs_off);
	leases = (const struct shm_lease *)(stt.base + sb->leases_off);
	for (s = 0; s < sb->nslabs; s++) {
		w = atomic_load(&((struct shm_slab *)&slabs[s])->word);
		ck_assert_msg(SHM_SLAB_LEASE(w) == 0 ||
		    leases[SHM_SLAB_LEASE(w) - 1].owner_pid != 0,
		    "slab %llu is leased to free record %u",
		    (unsigned long long)s, SHM_SLAB_LEASE(w) - 1);
	}
	aclheap_detach();
	td_stop(&td, SIGTERM);
	td_cleanup(&td);
}
END_TEST

Suite *
once_suite(void)
{
	Suite *s = suite_create("once");
	TCase *tc = tcase_create("once");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, every_crash_point);
	tcase_add_test(tc, stale_and_foreign_sessions);
	tcase_add_test(tc, library_resends);
	tcase_add_test(tc, soak_kills);
	tcase_add_test(tc, refusals_answered_again);
	tcase_add_test(tc, renewal_of_a_dead_process);
	suite_add_tcase(s, tc);
	return s;
}
