/* SPDX-License-Identifier: MIT */
/*
 * check_daemon.c: aclheapd as a process: hostile and broken peers on the
 * socket, clients killed mid-work, signals, options, the state folder lock,
 * the allow list, and requests that would reach outside the heap.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aclheap.h"
#include "client/client.h"
#include "proto/proto.h"
#include "shm/image.h"
#include "tests/testutil.h"

static struct td td;
static uint8_t abuf[256 * 1024];
static struct frame_arena arena;

static void
up(void)
{
	td_init(&td, "daemon");
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
	frame_arena_init(&arena, abuf, sizeof(abuf));
}

static void
down(void)
{
	td_cleanup(&td);
}

static int
raw_connect(void)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, td.sock, strlen(td.sock));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

static void
raw_send(int fd, Aclheap__Request *q)
{
	static uint8_t buf[FRAME_HDR + FRAME_MAX];
	long n = frame_pack_request(q, buf, sizeof(buf));

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(frame_send(fd, buf, (size_t)n, -1), 0);
}

/* The next reply, or NULL at end of stream.  A passed fd is closed. */
static Aclheap__Reply *
raw_reply(int fd)
{
	static uint8_t buf[FRAME_MAX];
	uint32_t len;
	int pfd = -1, rc;
	Aclheap__Reply *r;

	rc = frame_recv(fd, buf, sizeof(buf), &len, &pfd);
	if (pfd >= 0)
		close(pfd);
	if (rc == -ECONNRESET)
		return NULL;
	ck_assert_int_eq(rc, 0);
	frame_arena_reset(&arena);
	r = frame_unpack_reply(&arena, buf, len);
	ck_assert_ptr_nonnull(r);
	return r;
}

static int
raw_hello(void)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Hello h = ACLHEAP__HELLO__INIT;
	Aclheap__Reply *r;
	int fd = raw_connect();

	h.version = PROTOCOL_VERSION;
	q.id = 1;
	q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
	q.hello = &h;
	raw_send(fd, &q);
	r = raw_reply(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, 0);
	ck_assert_int_eq(r->body_case, ACLHEAP__REPLY__BODY_HELLO);
	return fd;
}

static int
at_eof(int fd)
{
	char c;

	return recv(fd, &c, 1, 0) == 0;
}

/* A good client still gets served: the library allocates and frees. */
static void
still_serving(void)
{
	void *p = aclmalloc(100);

	ck_assert_msg(p != NULL, "%s", aclheap_last_error());
	ck_assert_uint_eq(aclfree(p), 100);
	p = aclmalloc(100000);
	ck_assert_msg(p != NULL, "%s", aclheap_last_error());
	ck_assert_uint_eq(aclfree(p), 100000);
}

START_TEST(garbage_bytes_then_good_client)
{
	static const char junk[] = "\x05\x00\x00\x00\xff\xff\xff\xff\xff";
	Aclheap__Reply *r;
	int fd;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	fd = raw_connect();
	ck_assert_int_eq(write(fd, junk, sizeof(junk) - 1), 9);
	r = raw_reply(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, EPROTO);
	ck_assert(at_eof(fd));		/* garbage before Hello: closed */
	close(fd);
	still_serving();
}
END_TEST

/* Descriptors the daemon has open: /proc/PID/fd's entries. */
static int
daemon_fds(void)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)td.pid);
	ck_assert_ptr_nonnull(d = opendir(path));
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Each Hello passes two descriptors (the segment, its meta object read
 * only); the daemon keeps neither once sent, and a connection that ends
 * takes nothing else with it. */
START_TEST(hello_keeps_no_descriptor)
{
	uint64_t end;
	int before, i, fd, n;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	still_serving();
	before = daemon_fds();
	for (i = 0; i < 64; i++) {
		fd = raw_hello();
		close(fd);
	}
	/* The daemon closes its side when it reads the end: wait for it. */
	for (end = now_ms() + 10000; (n = daemon_fds()) > before &&
	    now_ms() < end;)
		msleep(10);
	ck_assert_int_eq(n, before);
	still_serving();
}
END_TEST

START_TEST(oversized_frame_closed)
{
	uint8_t hdr[4];
	Aclheap__Reply *r;
	int fd;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	fd = raw_hello();
	frame_put_len(hdr, FRAME_MAX + 1);
	ck_assert_int_eq(write(fd, hdr, 4), 4);
	r = raw_reply(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, EMSGSIZE);
	ck_assert(at_eof(fd));
	close(fd);
	/* 4 GiB announced: same. */
	fd = raw_hello();
	memset(hdr, 0xff, 4);
	ck_assert_int_eq(write(fd, hdr, 4), 4);
	r = raw_reply(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, EMSGSIZE);
	close(fd);
	still_serving();
}
END_TEST

START_TEST(malformed_and_unknown_messages)
{
	static const uint8_t bad[] = { 3, 0, 0, 0, 0x52, 0x05, 0x08 };
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Reply *r;
	uint8_t unknown[] = { 3, 0, 0, 0, 0xf8, 0x07, 0x01 };	/* field 127 */
	int fd;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	fd = raw_hello();
	/* Malformed after Hello: an error reply, the connection goes on. */
	ck_assert_int_eq(write(fd, bad, sizeof(bad)), (ssize_t)sizeof(bad));
	r = raw_reply(fd);
	ck_assert_int_eq(r->error, EPROTO);
	/* A field this daemon does not know: no body, EOPNOTSUPP. */
	ck_assert_int_eq(write(fd, unknown, sizeof(unknown)),
	    (ssize_t)sizeof(unknown));
	r = raw_reply(fd);
	ck_assert_int_eq(r->error, EOPNOTSUPP);
	/* Hello twice. */
	{
		Aclheap__Hello h = ACLHEAP__HELLO__INIT;

		h.version = PROTOCOL_VERSION;
		q.id = 5;
		q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
		q.hello = &h;
		raw_send(fd, &q);
		r = raw_reply(fd);
		ck_assert_uint_eq(r->id, 5);
		ck_assert_int_eq(r->error, EPROTO);
	}
	/* Still usable: stats answers. */
	{
		Aclheap__Stats st = ACLHEAP__STATS__INIT;

		q.id = 6;
		q.body_case = ACLHEAP__REQUEST__BODY_STATS;
		q.stats = &st;
		raw_send(fd, &q);
		r = raw_reply(fd);
		ck_assert_uint_eq(r->id, 6);
		ck_assert_int_eq(r->error, 0);
		ck_assert_int_eq(r->body_case, ACLHEAP__REPLY__BODY_STATS);
	}
	close(fd);
	still_serving();
}
END_TEST

START_TEST(request_before_hello_refused)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc a = ACLHEAP__ALLOC__INIT;
	Aclheap__Reply *r;
	int fd = raw_connect();

	a.size = 10;
	q.id = 3;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &a;
	raw_send(fd, &q);
	r = raw_reply(fd);
	ck_assert_int_eq(r->error, EPROTO);
	ck_assert(at_eof(fd));
	close(fd);
	/* Wrong protocol version: refused, closed, no descriptor. */
	{
		Aclheap__Hello h = ACLHEAP__HELLO__INIT;

		fd = raw_connect();
		h.version = PROTOCOL_VERSION + 7;
		q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
		q.hello = &h;
		raw_send(fd, &q);
		r = raw_reply(fd);
		ck_assert_int_eq(r->error, EPROTO);
		ck_assert_ptr_nonnull(strstr(r->message, "protocol"));
		ck_assert(at_eof(fd));
		close(fd);
	}
	still_serving();
}
END_TEST

/* Pipelined requests get their replies in order, with their ids. */
START_TEST(pipelined_requests)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc a = ACLHEAP__ALLOC__INIT;
	Aclheap__Free f = ACLHEAP__FREE__INIT;
	static uint8_t buf[64 * 40];
	uint64_t addr[32];
	Aclheap__Reply *r;
	size_t off = 0;
	long n;
	int fd, i;

	fd = raw_hello();
	for (i = 0; i < 32; i++) {
		a.size = (uint64_t)(i * 100);
		q.id = (uint64_t)(100 + i);
		q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
		q.alloc = &a;
		n = frame_pack_request(&q, buf + off, sizeof(buf) - off);
		ck_assert_int_gt(n, 0);
		off += (size_t)n;
	}
	ck_assert_int_eq(frame_send(fd, buf, off, -1), 0);
	for (i = 0; i < 32; i++) {
		r = raw_reply(fd);
		ck_assert_uint_eq(r->id, (uint64_t)(100 + i));
		ck_assert_int_eq(r->error, 0);
		addr[i] = r->alloc->addr;
	}
	for (i = 0; i < 32; i++) {
		f.addr = addr[i];
		q.id = (uint64_t)i;
		q.body_case = ACLHEAP__REQUEST__BODY_FREE;
		q.free = &f;
		raw_send(fd, &q);
		r = raw_reply(fd);
		ck_assert_int_eq(r->error, 0);
		ck_assert_uint_eq(r->free->size, (uint64_t)(i * 100));
	}
	close(fd);
}
END_TEST

/* Requests that would act outside the heap: refused, logged at debug. */
START_TEST(requests_outside_heap_refused)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Read rd = ACLHEAP__READ__INIT;
	Aclheap__Free f = ACLHEAP__FREE__INIT;
	Aclheap__Alloc a = ACLHEAP__ALLOC__INIT;
	Aclheap__RootGet g = ACLHEAP__ROOT_GET__INIT;
	Aclheap__Reply *r;
	int fd = raw_hello();

	rd.addr = 0x1000;
	rd.len = 16;
	q.body_case = ACLHEAP__REQUEST__BODY_READ;
	q.read = &rd;
	raw_send(fd, &q);
	r = raw_reply(fd);
	ck_assert_int_eq(r->error, ERANGE);
	rd.addr = TEST_BASE + (64 << 20) - 8;	/* runs past the end */
	raw_send(fd, &q);
	ck_assert_int_eq(raw_reply(fd)->error, ERANGE);
	rd.addr = TEST_BASE;
	rd.len = READ_MAX + 1;
	raw_send(fd, &q);
	ck_assert_int_eq(raw_reply(fd)->error, ERANGE);
	rd.len = 8;				/* inside: fine */
	raw_send(fd, &q);
	r = raw_reply(fd);
	ck_assert_int_eq(r->error, 0);
	ck_assert_uint_eq(r->read->data.len, 8);
	ck_assert_int_eq(memcmp(r->read->data.data, "!ACLHEAP", 8), 0);
	f.addr = 0xdeadbeef;
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &f;
	raw_send(fd, &q);
	ck_assert_int_eq(raw_reply(fd)->error, EINVAL);
	a.size = UINT64_C(1) << 40;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &a;
	raw_send(fd, &q);
	ck_assert_int_eq(raw_reply(fd)->error, ENOMEM);
	a.size = 10;
	a.alignment = 3;
	raw_send(fd, &q);
	ck_assert_int_eq(raw_reply(fd)->error, EINVAL);
	g.name = "bad\nname";
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_GET;
	q.root_get = &g;
	raw_send(fd, &q);
	ck_assert_int_eq(raw_reply(fd)->error, EINVAL);
	close(fd);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "<7>"));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "refused read: 0x1000+16"));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "refused free: 0xdeadbeef"));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "refused root_get: root "
	    "names are"));
}
END_TEST

static Aclheap__Reply *
raw_call(int fd, Aclheap__Request *q)
{
	raw_send(fd, q);
	return raw_reply(fd);
}

/* Live blocks, requested bytes and roots, as the daemon counts them. */
static void
raw_counts(int fd, uint64_t out[3])
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Stats st = ACLHEAP__STATS__INIT;
	Aclheap__Reply *r;

	q.body_case = ACLHEAP__REQUEST__BODY_STATS;
	q.stats = &st;
	r = raw_call(fd, &q);
	ck_assert_int_eq(r->body_case, ACLHEAP__REPLY__BODY_STATS);
	out[0] = r->stats->blocks_in_use;
	out[1] = r->stats->bytes_requested;
	out[2] = r->stats->roots;
}

/*
 * The rest of the bad-input table at the wire: root names that are not
 * 1 to 63 printable bytes for every root request, frees and reallocs of
 * what is not the start of a live block, sizes past the heap, leases of
 * classes that do not exist and of records that are not the caller's.
 * Each gets its errno, changes nothing, and is logged at debug.
 */
START_TEST(bad_requests_change_nothing)
{
	static char long_name[SHM_ROOT_NAME_MAX + 2];
	static const char *const bad_names[] = { "", "tab\there", "\x7f",
	    "caf\xc3\xa9", long_name };
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc a = ACLHEAP__ALLOC__INIT;
	Aclheap__Free f = ACLHEAP__FREE__INIT;
	Aclheap__Realloc re = ACLHEAP__REALLOC__INIT;
	Aclheap__Root rs = ACLHEAP__ROOT__INIT;
	Aclheap__RootCas rc = ACLHEAP__ROOT_CAS__INIT;
	Aclheap__RootRemove rr = ACLHEAP__ROOT_REMOVE__INIT;
	Aclheap__LeaseSlab ls = ACLHEAP__LEASE_SLAB__INIT;
	Aclheap__ReleaseSlab rel = ACLHEAP__RELEASE_SLAB__INIT;
	Aclheap__Reply *r;
	uint64_t before[3], after[3], blk, big, heap_size = UINT64_C(64) << 20;
	size_t i;
	int fd = raw_hello();
	char *log;

	memset(long_name, 'n', SHM_ROOT_NAME_MAX + 1);
	/* Something to aim at: a small block, an extent, a root. */
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &a;
	a.size = 100;
	blk = raw_call(fd, &q)->alloc->addr;
	a.size = 200000;
	big = raw_call(fd, &q)->alloc->addr;
	rs.name = "kept";
	rs.value = blk;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
	q.root_set = &rs;
	ck_assert_int_eq(raw_call(fd, &q)->error, 0);
	raw_counts(fd, before);

	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		rs.name = (char *)bad_names[i];
		q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
		q.root_set = &rs;
		ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
		rc.name = (char *)bad_names[i];
		rc.desired = blk;
		q.body_case = ACLHEAP__REQUEST__BODY_ROOT_CAS;
		q.root_cas = &rc;
		ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
		rr.name = (char *)bad_names[i];
		q.body_case = ACLHEAP__REQUEST__BODY_ROOT_REMOVE;
		q.root_remove = &rr;
		ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	}
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &f;
	f.addr = blk + 16;			/* inside a block */
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	f.addr = big + 65536;			/* inside an extent */
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	f.addr = TEST_BASE + heap_size;		/* just past the heap */
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	f.addr = TEST_BASE;			/* the superblock */
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	q.body_case = ACLHEAP__REQUEST__BODY_REALLOC;
	q.realloc = &re;
	re.addr = 0xdeadbeef;
	re.size = 10;
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	re.addr = blk;
	re.size = heap_size;			/* more than the heap */
	ck_assert_int_eq(raw_call(fd, &q)->error, ENOMEM);
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &a;
	a.size = heap_size + 1;
	ck_assert_int_eq(raw_call(fd, &q)->error, ENOMEM);
	a.size = UINT64_MAX;
	ck_assert_int_eq(raw_call(fd, &q)->error, ENOMEM);
	a.size = 10;
	a.alignment = UINT64_C(1) << 40;	/* past the 1 GiB maximum */
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	q.body_case = ACLHEAP__REQUEST__BODY_LEASE;
	q.lease = &ls;
	ls.cls = SHM_NCLASSES;
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	q.body_case = ACLHEAP__REQUEST__BODY_RELEASE;
	q.release = &rel;
	rel.record = 3;				/* not ours */
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);
	rel.record = UINT32_MAX;
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);

	/* Nothing changed: same blocks and roots, the root as it was, the
	 * block still live with its size, and the heap checks out. */
	raw_counts(fd, after);
	ck_assert_int_eq(memcmp(before, after, sizeof(before)), 0);
	{
		Aclheap__RootGet g = ACLHEAP__ROOT_GET__INIT;

		g.name = "kept";
		q.body_case = ACLHEAP__REQUEST__BODY_ROOT_GET;
		q.root_get = &g;
		r = raw_call(fd, &q);
		ck_assert_int_eq(r->error, 0);
		ck_assert_uint_eq(r->root->value, blk);
	}
	{
		Aclheap__Verify v = ACLHEAP__VERIFY__INIT;

		q.body_case = ACLHEAP__REQUEST__BODY_VERIFY;
		q.verify = &v;
		r = raw_call(fd, &q);
		ck_assert_int_eq(r->error, 0);
		ck_assert_uint_eq(r->verify->blocks_live, 2);
	}
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &f;
	f.addr = blk;
	r = raw_call(fd, &q);
	ck_assert_int_eq(r->error, 0);
	ck_assert_uint_eq(r->free->size, 100);
	ck_assert_int_eq(raw_call(fd, &q)->error, EINVAL);	/* twice */
	close(fd);
	log = td_log(&td);
	ck_assert_ptr_nonnull(strstr(log, "<7>"));
	ck_assert_ptr_nonnull(strstr(log, "refused root_set: root names"));
	ck_assert_ptr_nonnull(strstr(log, "refused root_cas: root names"));
	ck_assert_ptr_nonnull(strstr(log, "refused root_remove: root names"));
	ck_assert_ptr_nonnull(strstr(log, "refused realloc: 0xdeadbeef"));
	ck_assert_ptr_nonnull(strstr(log, "refused alloc: no room"));
	ck_assert_ptr_nonnull(strstr(log, "refused lease:"));
	ck_assert_ptr_nonnull(strstr(log, "refused release: lease 3 is not "
	    "yours"));
}
END_TEST

/* LeaseSlab{cls, renew, want}: slab and record of the reply, asserted ok. */
static void
raw_lease(int fd, uint32_t cls, uint32_t renew, uint32_t want,
    uint64_t *slab, uint32_t *rec)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__LeaseSlab ls = ACLHEAP__LEASE_SLAB__INIT;
	Aclheap__Reply *r;

	ls.cls = cls;
	ls.renew = renew;
	ls.want = want;
	q.body_case = ACLHEAP__REQUEST__BODY_LEASE;
	q.lease = &ls;
	r = raw_call(fd, &q);
	ck_assert_int_eq(r->error, 0);
	ck_assert_int_eq(r->body_case, ACLHEAP__REPLY__BODY_LEASE);
	*slab = r->lease->slab;
	*rec = r->lease->record;
}

/*
 * A client may name the slab it wants to lease (one it found with free
 * blocks); the daemon gives it only a slab of the class that is unleased
 * and no other live lease's own, and otherwise chooses as usual.  A
 * released lease's slabs are anyone's.
 */
START_TEST(lease_wants_only_free_slabs)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__ReleaseSlab rel = ACLHEAP__RELEASE_SLAB__INIT;
	int a = raw_hello(), b = raw_hello();
	uint64_t sa, sa2, sb, s, other;
	uint32_t ra, rb, r2;
	int n;

	raw_lease(a, 3, 0, 0, &sa, &ra);
	/* A renewal makes more of the lease's slab ready, until it is ready
	 * whole; the next one moves the lease: sa is a's own, unleased. */
	raw_lease(a, 3, ra + 1, 0, &sa2, &r2);
	ck_assert_uint_eq(sa2, sa);
	for (n = 0; n < 64 && sa2 == sa; n++)
		raw_lease(a, 3, ra + 1, 0, &sa2, &r2);
	ck_assert_uint_eq(r2, ra);
	ck_assert_uint_ne(sa2, sa);
	raw_lease(b, 5, 0, 0, &other, &rb);	/* a slab of another class */
	raw_lease(b, 3, 0, (uint32_t)sa + 1, &sb, &rb);
	ck_assert_uint_ne(sb, sa);		/* a's own */
	ck_assert_uint_ne(sb, sa2);		/* a's lease */
	raw_lease(b, 3, rb + 1, (uint32_t)sa2 + 1, &s, &r2);
	ck_assert_uint_ne(s, sa2);
	raw_lease(b, 3, rb + 1, (uint32_t)other + 1, &s, &r2);
	ck_assert_uint_ne(s, other);		/* another class */
	raw_lease(b, 3, rb + 1, UINT32_MAX, &s, &r2);	/* no such slab */
	ck_assert_uint_ne(s, sa);
	ck_assert_uint_ne(s, sa2);
	/* a lets go: its slabs are free to take. */
	rel.record = ra;
	q.body_case = ACLHEAP__REQUEST__BODY_RELEASE;
	q.release = &rel;
	ck_assert_int_eq(raw_call(a, &q)->error, 0);
	raw_lease(b, 3, rb + 1, (uint32_t)sa + 1, &s, &r2);
	ck_assert_uint_eq(s, sa);
	close(a);
	close(b);
}
END_TEST

#define SOCKET_SMALL	1500

/*
 * The daemon's own slabs are committed as they fill too: 1,500 16-byte
 * blocks from the socket (past the first page of a slab and the next
 * steps) are distinct, inside their slab's ready blocks, keep their bytes
 * and free once each; the heap checks out throughout.
 */
START_TEST(socket_small_blocks_past_first_page)
{
	static uint64_t addr[SOCKET_SMALL];
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc a = ACLHEAP__ALLOC__INIT;
	Aclheap__Free f = ACLHEAP__FREE__INIT;
	Aclheap__Reply *r;
	char err[512];
	uint64_t s;
	int fd, i;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	fd = raw_hello();
	a.size = 16;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &a;
	for (i = 0; i < SOCKET_SMALL; i++) {
		r = raw_call(fd, &q);
		ck_assert_int_eq(r->error, 0);
		addr[i] = r->alloc->addr;
		s = slab_index(&conn_seg, (uintptr_t)addr[i]);
		ck_assert_uint_lt((addr[i] - slab_addr(&conn_seg, s)) / 16,
		    atomic_load(&conn_seg.slabs[s].ready));
		memset((void *)addr[i], i & 0xff, 16);
		if (i > 0)
			ck_assert_uint_ne(addr[i], addr[i - 1]);
	}
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &f;
	for (i = 0; i < SOCKET_SMALL; i++) {
		ck_assert_uint_eq(((unsigned char *)addr[i])[15], i & 0xff);
		f.addr = addr[i];
		r = raw_call(fd, &q);
		ck_assert_int_eq(r->error, 0);
		ck_assert_uint_eq(r->free->size, 16);
	}
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	close(fd);
	aclheap_detach();
}
END_TEST

/*
 * A client that speaks only the protocol gets every size from the socket:
 * small, span and extent blocks, rounded as the library's are, freed with
 * their requested size returned once, refused the second time; a span
 * block reallocated within its class stays, beyond it moves with its
 * bytes.
 */
START_TEST(socket_path_every_size)
{
	static const uint64_t sizes[] = { 0, 100, 8192, 8193, 65536, 100000,
	    1 << 20, 4 << 20, (4 << 20) + 1, 9 << 20 };
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc a = ACLHEAP__ALLOC__INIT;
	Aclheap__Free f = ACLHEAP__FREE__INIT;
	Aclheap__Realloc re = ACLHEAP__REALLOC__INIT;
	uint64_t addr[sizeof(sizes) / sizeof(sizes[0])], usable;
	Aclheap__Reply *r;
	size_t i, n = sizeof(sizes) / sizeof(sizes[0]);
	char err[512];
	int fd;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	fd = raw_hello();
	for (i = 0; i < n; i++) {
		a.size = sizes[i];
		q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
		q.alloc = &a;
		r = raw_call(fd, &q);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(r->error, 0);
		addr[i] = r->alloc->addr;
		usable = r->alloc->usable;
		ck_assert_uint_ge(usable, sizes[i]);
		if (sizes[i] > 8192)
			ck_assert_uint_le(usable * 4, sizes[i] * 5);
		ck_assert_uint_eq(aclheap_usable_size((void *)addr[i]), usable);
		memset((void *)addr[i], (int)i, sizes[i]);
	}
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	/* A span block within its class, then past it. */
	re.addr = addr[5];
	re.size = 90000;
	q.body_case = ACLHEAP__REQUEST__BODY_REALLOC;
	q.realloc = &re;
	r = raw_call(fd, &q);
	ck_assert_int_eq(r->error, 0);
	ck_assert_uint_eq(r->alloc->addr, addr[5]);
	re.size = 300000;
	r = raw_call(fd, &q);
	ck_assert_int_eq(r->error, 0);
	ck_assert_uint_ne(r->alloc->addr, addr[5]);
	ck_assert_uint_eq(((unsigned char *)r->alloc->addr)[89999], 5);
	addr[5] = r->alloc->addr;
	for (i = 0; i < n; i++) {
		f.addr = addr[i];
		q.body_case = ACLHEAP__REQUEST__BODY_FREE;
		q.free = &f;
		r = raw_call(fd, &q);
		ck_assert_int_eq(r->error, 0);
		ck_assert_uint_eq(r->free->size, i == 5 ? 300000 : sizes[i]);
		r = raw_call(fd, &q);
		ck_assert_int_eq(r->error, EINVAL);
	}
	close(fd);
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
}
END_TEST

/* Clients map the slab table read-only, but the daemon's own user can
 * write it: a slab table scribbled on must get errors, never make the
 * daemon walk or index out of bounds. */
START_TEST(scribbled_slab_table_survived)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Free f = ACLHEAP__FREE__INIT;
	Aclheap__Blocks bl = ACLHEAP__BLOCKS__INIT;
	Aclheap__Alloc al = ACLHEAP__ALLOC__INIT;
	Aclheap__Reply *r;
	unsigned char *big, *small;
	uint64_t sb, ss;
	uint64_t saved;
	uint32_t run;
	struct shm_seg w;
	int fd;

	big = aclmalloc(5 << 20);	/* an extent */
	small = aclmalloc(40);
	ck_assert_ptr_nonnull(big);
	ck_assert_ptr_nonnull(small);
	sb = slab_index(&conn_seg, (uintptr_t)big);
	ss = slab_index(&conn_seg, (uintptr_t)small);
	td_seg_writable(&td, conn_seg.base, conn_seg.size, &w);
	run = conn_seg.slabs[sb].run;
	w.slabs[sb].run = UINT32_MAX;
	saved = atomic_load(&conn_seg.slabs[ss].word);
	atomic_store(&w.slabs[ss].word,
	    SHM_SLAB_WORD(SHM_SMALL, 127, 0));	/* the largest it can say */
	fd = raw_hello();
	f.addr = (uintptr_t)big;
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &f;
	raw_send(fd, &q);
	r = raw_reply(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, EINVAL);
	bl.cls = -1;
	q.body_case = ACLHEAP__REQUEST__BODY_BLOCKS;
	q.blocks = &bl;
	raw_send(fd, &q);
	r = raw_reply(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, 0);
	/* The daemon's own allocations of the scribbled slab's class pass
	 * it over (it used to be chosen and fail, forever). */
	al.size = 40;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &al;
	r = raw_call(fd, &q);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->error, 0);
	ck_assert_uint_ne(slab_index(&conn_seg, r->alloc->addr), ss);
	close(fd);
	ck_assert_int_gt(td.pid, 0);
	ck_assert_int_eq(kill(td.pid, 0), 0);
	atomic_store(&w.slabs[ss].word, saved);
	w.slabs[sb].run = run;
	munmap(w.sb, w.size);
	still_serving();
}
END_TEST

/* The superblock is read-only to clients, but the daemon's own user can
 * write it (its meta object): a checkpoint takes
 * the heap's shape from the daemon's own geometry (it used to index by the
 * superblock's offsets and crash), and the image it writes says what is
 * true, not what was scribbled. */
START_TEST(scribbled_superblock_checkpoints)
{
	struct shm_super saved;
	struct image_info info;
	struct shm_seg off, w;
	char img[400], err[512];
	unsigned char *p;

	ck_assert_ptr_nonnull(p = aclmalloc(3000));
	memset(p, 0x6b, 3000);
	ck_assert_int_eq(aclheap_root_set("kept", p), 0);
	td_seg_writable(&td, conn_seg.base, conn_seg.size, &w);
	memcpy(&saved, conn_seg.sb, sizeof(saved));
	w.sb->magic = 0;
	w.sb->bitmaps_off = UINT64_C(1) << 40;
	w.sb->slabs_off = UINT64_MAX / 3;
	w.sb->sides_off = 12345;
	w.sb->data_off = 7;
	w.sb->size = 1;
	ck_assert_msg(aclheap_checkpoint() == 0, "%s", aclheap_last_error());
	ck_assert_int_eq(kill(td.pid, 0), 0);
	memcpy(w.sb, &saved, sizeof(saved));
	munmap(w.sb, w.size);
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	ck_assert_msg(image_load_offline(img, &off, &info, err, sizeof(err)) ==
	    0, "%s", err);
	ck_assert_msg(shm_check(&off, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(off.sb->bitmaps_off, saved.bitmaps_off);
	ck_assert_uint_eq(off.sb->size, saved.size);
	image_unload_offline(&off);
	still_serving();
}
END_TEST

/* A client killed at any point leaves a heap that checks out, its blocks
 * allocated, and the daemon serving. */
START_TEST(client_killed_mid_work)
{
	const char *argv[] = { td_prog("tests/helper_client"), "hold", NULL };
	char err[512], line[16];
	int p[2], i, st;
	pid_t pid;

	ck_assert_int_eq(aclheap_attach(NULL), 0);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(pipe(p), 0);
		if ((pid = fork()) == 0) {
			dup2(p[1], 1);
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
		close(p[1]);
		ck_assert_int_eq(read(p[0], line, 6), 6);	/* "ready\n" */
		close(p[0]);
		msleep(20 * i);		/* let it run into the middle */
		kill(pid, SIGKILL);
		st = wait_child(pid, 10000);
		ck_assert(WIFSIGNALED(st));
		ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0,
		    "after kill %d: %s", i, err);
	}
	still_serving();
	{
		struct aclheap_stats s;

		ck_assert_int_eq(aclheap_stats(&s), 0);
		ck_assert_uint_gt(s.blocks_in_use, 5);	/* theirs persist */
	}
}
END_TEST

START_TEST(term_stops_cleanly)
{
	char img[400];
	struct stat st;
	int status;

	ck_assert_ptr_nonnull(aclmalloc(10));
	status = td_stop(&td, SIGTERM);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	ck_assert_int_eq(stat(img, &st), 0);
	ck_assert_int_ne(stat(td.sock, &st), 0);	/* socket removed */
	ck_assert_ptr_nonnull(strstr(td_log(&td), "final checkpoint"));
}
END_TEST

/* A final checkpoint that cannot be written is an error, not a success:
 * exit status 1 and the reason in the log. */
START_TEST(term_reports_failed_final_checkpoint)
{
	char cmd[400];
	int status;

	ck_assert_ptr_nonnull(aclmalloc(10));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", td.state);
	ck_assert_int_eq(system(cmd), 0);
	status = td_stop(&td, SIGTERM);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "final checkpoint failed"));
	ck_assert_ptr_null(strstr(td_log(&td), "final checkpoint 1 written"));
}
END_TEST

START_TEST(int_stops_cleanly)
{
	int status = td_stop(&td, SIGINT);

	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(usr1_checkpoints)
{
	char img[400];
	struct stat st;
	uint64_t end = now_ms() + 10000;

	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	ck_assert_int_ne(stat(img, &st), 0);
	kill(td.pid, SIGUSR1);
	while (stat(img, &st) != 0 && now_ms() < end)
		msleep(5);
	ck_assert_int_eq(stat(img, &st), 0);
}
END_TEST

/* A signal that comes as soon as the socket exists, before the loop
 * watches signals, waits for it instead of killing the daemon. */
START_TEST(early_signal_waits_for_the_loop)
{
	char img[400];
	struct stat st;
	struct td t2;
	uint64_t end;
	int i, status;

	for (i = 0; i < 5; i++) {
		td_init(&t2, "early");
		ck_assert_int_eq(td_start_env(&t2, NULL, NULL), 0);
		end = now_ms() + 20000;
		while (stat(t2.sock, &st) != 0)
			ck_assert_msg(now_ms() < end, "no socket: %s",
			    td_log(&t2));
		kill(t2.pid, SIGUSR1);
		snprintf(img, sizeof(img), "%s/heap.img", t2.state);
		while (stat(img, &st) != 0) {
			ck_assert_msg(waitpid(t2.pid, &status, WNOHANG) == 0,
			    "trial %d: aclheapd died, status %d", i, status);
			ck_assert_msg(now_ms() < end, "no checkpoint: %s",
			    td_log(&t2));
			msleep(5);
		}
		status = td_stop(&t2, SIGTERM);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "trial %d: status %d", i, status);
		td_cleanup(&t2);
	}
	setenv("ACLHEAP_SOCKET", td.sock, 1);
}
END_TEST

START_TEST(second_daemon_refused)
{
	struct td t2;
	int st;

	/* Same state folder, other socket: the lock refuses it. */
	td_init(&t2, "second");
	snprintf(t2.state, sizeof(t2.state), "%s", td.state);
	ck_assert_int_eq(td_start_env(&t2, NULL, NULL), 0);
	st = td_wait_exit(&t2, 20000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	ck_assert_ptr_nonnull(strstr(td_log(&t2), "uses state folder"));
	snprintf(t2.state, sizeof(t2.state), "%s/state", t2.dir);
	/* Same socket, other state: never displaces a live daemon. */
	snprintf(t2.sock, sizeof(t2.sock), "%s", td.sock);
	ck_assert_int_eq(td_start_env(&t2, NULL, NULL), 0);
	st = td_wait_exit(&t2, 20000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	ck_assert_ptr_nonnull(strstr(td_log(&t2), "already listens"));
	td_cleanup(&t2);
	setenv("ACLHEAP_SOCKET", td.sock, 1);
	still_serving();
}
END_TEST

START_TEST(options_checked)
{
	char out[8192];
	const char *help[] = { td_prog("aclheapd"), "--help", NULL };
	const char *ver[] = { td_prog("aclheapd"), "--version", NULL };
	const char *bad[] = { td_prog("aclheapd"), "--bogus", NULL };
	const char *sz[] = { td_prog("aclheapd"), "--config", "/dev/null",
	    "--size", "12Q", NULL };
	const char *bs[] = { td_prog("aclheapd"), "--config", "/dev/null",
	    "--base", "0x1234", NULL };
	const char *cf[] = { td_prog("aclheapd"), "--config",
	    "/nonexistent/aclheapd.conf", NULL };
	const char *arg[] = { td_prog("aclheapd"), "--config", "/dev/null",
	    "stray", NULL };

	ck_assert_int_eq(run_cmd(out, sizeof(out), help), 0);
	ck_assert_ptr_nonnull(strstr(out, "--checkpoint-interval"));
	ck_assert_ptr_nonnull(strstr(out, "--allow-group"));
	ck_assert_int_eq(run_cmd(out, sizeof(out), ver), 0);
	ck_assert_ptr_nonnull(strstr(out, PACKAGE_VERSION));
	ck_assert_int_eq(run_cmd(out, sizeof(out), bad), 2);
	ck_assert_ptr_nonnull(strstr(out, "--bogus"));
	ck_assert_int_eq(run_cmd(out, sizeof(out), sz), 2);
	ck_assert_ptr_nonnull(strstr(out, "12Q"));
	ck_assert_int_eq(run_cmd(out, sizeof(out), bs), 2);
	ck_assert_ptr_nonnull(strstr(out, "0x1234"));
	ck_assert_int_eq(run_cmd(out, sizeof(out), cf), 2);
	ck_assert_ptr_nonnull(strstr(out, "/nonexistent/aclheapd.conf"));
	ck_assert_int_eq(run_cmd(out, sizeof(out), arg), 2);
}
END_TEST

START_TEST(config_file_settings)
{
	char cfg[400], out[4096];
	struct td t2;
	FILE *f;
	const char *bad[] = { td_prog("aclheapd"), "--config", cfg, NULL };
	const char *extra[] = { "--config", cfg, NULL };

	td_init(&t2, "config");
	snprintf(cfg, sizeof(cfg), "%s/aclheapd.conf", t2.dir);
	f = fopen(cfg, "w");
	fprintf(f, "# a comment\nsize = 4M\nnonsense = 1\n");
	fclose(f);
	ck_assert_int_eq(run_cmd(out, sizeof(out), bad), 2);
	ck_assert_ptr_nonnull(strstr(out, "aclheapd.conf:3"));
	f = fopen(cfg, "w");
	fprintf(f, "# a comment\n  size = 8M  \ncheckpoint-interval=0\n");
	fclose(f);
	/* --config given last wins over the fixture's /dev/null. */
	snprintf(t2.size, sizeof(t2.size), "8M");
	ck_assert_int_eq(td_start(&t2, extra), 0);
	ck_assert_int_eq(aclheap_attach(t2.sock), 0);
	{
		struct aclheap_stats s;

		ck_assert_int_eq(aclheap_stats(&s), 0);
		ck_assert_uint_eq(s.size, 8 << 20);
	}
	td_cleanup(&t2);
}
END_TEST

/* A user not on the allow list is refused at Hello and never receives the
 * segment; the segment is not openable by name by another user. */
START_TEST(allow_list_refuses_other_uid)
{
	char out[4096], name[200], idpath[400], hex[64];
	const char *as_nobody[] = { "/usr/bin/setpriv", "--reuid=nobody",
	    "--regid=nogroup", "--clear-groups",
	    td_stage(&td, "tests/helper_client"), "addr", "x", NULL };
	const char *open_shm[] = { "/usr/bin/setpriv", "--reuid=nobody",
	    "--regid=nogroup", "--clear-groups", "/bin/cat", name, NULL };
	struct stat st;
	FILE *f;
	int rc;

	if (geteuid() != 0)
		td_skip("needs root to run a client as another user (CI runs "
		    "as root)");
	ck_assert_int_eq(chmod(td.dir, 0755), 0);
	ck_assert_int_eq(stat(td.sock, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0660);
	ck_assert_int_eq(chmod(td.sock, 0666), 0);	/* reachable, yet refused */
	setenv("ACLHEAP_SOCKET", td.sock, 1);
	rc = run_cmd(out, sizeof(out), as_nobody);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(out, "not allowed") != NULL, "%s", out);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "not on the allow list"));
	snprintf(idpath, sizeof(idpath), "%s/heap.id", td.state);
	f = fopen(idpath, "r");
	ck_assert_int_eq(fscanf(f, "%63s", hex), 1);
	fclose(f);
	snprintf(name, sizeof(name), "/dev/shm/aclheap-%s", hex);
	ck_assert_int_eq(stat(name, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_ne(run_cmd(out, sizeof(out), open_shm), 0);
	ck_assert_ptr_nonnull(strstr(out, "Permission denied"));
	still_serving();
}
END_TEST

START_TEST(allow_user_admits_other_uid)
{
	char out[4096];
	const char *extra[] = { "--allow-user", "nobody", "--socket-mode",
	    "0666", NULL };
	const char *as_nobody[] = { "/usr/bin/setpriv", "--reuid=nobody",
	    "--regid=nogroup", "--clear-groups", NULL, "fill", "mine", "20",
	    "5", NULL };

	if (geteuid() != 0)
		td_skip("needs root to run a client as another user (CI runs "
		    "as root)");
	td_cleanup(&td);
	td_init(&td, "allow");
	ck_assert_int_eq(td_start(&td, extra), 0);
	as_nobody[4] = td_stage(&td, "tests/helper_client");
	ck_assert_msg(run_cmd(out, sizeof(out), as_nobody) == 0, "%s", out);
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	ck_assert_ptr_nonnull(aclheap_root_get("mine"));
}
END_TEST

/*
 * An ordinary user without XDG_RUNTIME_DIR starts aclheapd with no
 * --socket, then aclheapctl and a library client with no -s and no
 * ACLHEAP_SOCKET: both sides compute the same default socket, so the
 * clients find the daemon.  As root the test becomes a uid nobody uses
 * (so its /tmp/aclheap-UID folder is its own); otherwise it runs as
 * itself.
 */
START_TEST(default_socket_agrees)
{
	char sock[108], state[300], daemon[400], ctl[400], helper[400];
	char uid_s[32], out[8192], cmd[200];
	const char *argv[32];
	struct td d;
	struct stat st;
	uid_t uid = geteuid();
	int n, k, rc;

	if (uid == 0)
		uid = (uid_t)(61000 + getpid() % 4000);
	snprintf(sock, sizeof(sock), "/tmp/aclheap-%u/aclheap.sock",
	    (unsigned)uid);
	if (stat(sock, &st) == 0)
		td_skip("%s is in use by a daemon of this user", sock);
	snprintf(uid_s, sizeof(uid_s), "%u", (unsigned)uid);
	snprintf(daemon, sizeof(daemon), "%s", td_stage(&td, "aclheapd"));
	snprintf(ctl, sizeof(ctl), "%s", td_stage(&td, "aclheapctl"));
	snprintf(helper, sizeof(helper), "%s",
	    td_stage(&td, "tests/helper_client"));
	snprintf(state, sizeof(state), "%s/own-state", td.dir);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	ck_assert_int_eq(chown(state, uid, uid), 0);
	unsetenv("ACLHEAP_SOCKET");
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("RUNTIME_DIRECTORY");

	n = 0;
	if (geteuid() == 0) {
		static char ru[48], rg[48];

		snprintf(ru, sizeof(ru), "--reuid=%s", uid_s);
		snprintf(rg, sizeof(rg), "--regid=%s", uid_s);
		argv[n++] = "/usr/bin/setpriv";
		argv[n++] = ru;
		argv[n++] = rg;
		argv[n++] = "--clear-groups";
	}
	k = n;
	memcpy(&d, &td, sizeof(d));
	snprintf(d.sock, sizeof(d.sock), "%s", sock);
	snprintf(d.state, sizeof(d.state), "%s", state);
	d.shm[0] = '\0';
	if ((d.pid = fork()) == 0) {
		argv[n++] = daemon;
		argv[n++] = "--foreground";
		argv[n++] = "--state-dir";
		argv[n++] = state;
		argv[n++] = "--base";
		argv[n++] = td.base;
		argv[n++] = "--size";
		argv[n++] = "8M";
		argv[n++] = "--config";
		argv[n++] = "/dev/null";
		argv[n] = NULL;
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_gt(d.pid, 0);
	rc = td_wait_ready(&d);
	if (rc == 0) {
		argv[k] = ctl;
		argv[k + 1] = "status";
		argv[k + 2] = "--json";
		argv[k + 3] = NULL;
		rc = run_cmd(out, sizeof(out), argv);
		if (rc == 0 && strstr(out, sock) == NULL)
			rc = -2;
	}
	if (rc == 0) {
		argv[k] = helper;
		argv[k + 1] = "fill";
		argv[k + 2] = "own";
		argv[k + 3] = "10";
		argv[k + 4] = "3";
		argv[k + 5] = NULL;
		rc = run_cmd(out, sizeof(out), argv);
	}
	td_stop(&d, SIGTERM);
	td_shm_unlink(&d);
	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/aclheap-%u", (unsigned)uid);
	if (geteuid() == 0 && system(cmd) != 0)
		fprintf(stderr, "cannot remove /tmp/aclheap-%u\n",
		    (unsigned)uid);
	ck_assert_msg(rc == 0, "daemon on its default %s, client: %d: %s",
	    sock, rc, out);
}
END_TEST

/* An allowed user whom the socket's mode shuts out is warned about at
 * start-up; with a mode or group that lets the user in, it is not. */
/* The socket answers before the daemon's start-up lines are all in its
 * log: "serving heap" comes after every warning of the start. */
static void
serving_logged(struct td *t)
{
	uint64_t end = now_ms() + 20000;

	while (strstr(td_log(t), "serving heap") == NULL && now_ms() < end)
		msleep(10);
	ck_assert_msg(strstr(td_log(t), "serving heap") != NULL, "%s",
	    td_log(t));
}

START_TEST(allow_user_unreachable_warned)
{
	const char *shut[] = { "--allow-user", "nobody", NULL };
	const char *open_mode[] = { "--allow-user", "nobody",
	    "--socket-mode", "0666", NULL };
	const char *by_group[] = { "--allow-user", "nobody",
	    "--socket-group", "nogroup", NULL };
	struct passwd *pw = getpwnam("nobody");

	if (pw == NULL)
		td_skip("no user 'nobody' on this machine");

	td_cleanup(&td);
	td_init(&td, "reach");
	ck_assert_int_eq(td_start(&td, shut), 0);
	serving_logged(&td);
	ck_assert_msg(strstr(td_log(&td), "--allow-user nobody (uid") != NULL &&
	    strstr(td_log(&td), "has no effect") != NULL, "%s", td_log(&td));
	td_cleanup(&td);
	td_init(&td, "reach");
	ck_assert_int_eq(td_start(&td, open_mode), 0);
	serving_logged(&td);
	ck_assert_msg(strstr(td_log(&td), "has no effect") == NULL, "%s",
	    td_log(&td));
	if (geteuid() != 0 || getgrnam("nogroup") == NULL ||
	    pw->pw_gid != getgrnam("nogroup")->gr_gid)
		return;	/* the group case needs root to give the socket away */
	td_cleanup(&td);
	td_init(&td, "reach");
	ck_assert_int_eq(td_start(&td, by_group), 0);
	serving_logged(&td);
	ck_assert_msg(strstr(td_log(&td), "has no effect") == NULL, "%s",
	    td_log(&td));
}
END_TEST

/* Polls the file at path for needle, up to ms: 1 if it appeared. */
static int
file_gets(const char *path, const char *needle, int ms)
{
	static char buf[65536];
	uint64_t end = now_ms() + (uint64_t)ms;
	ssize_t n;
	int fd;

	do {
		if ((fd = open(path, O_RDONLY)) >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			buf[n > 0 ? n : 0] = '\0';
			if (strstr(buf, needle) != NULL)
				return 1;
		}
		msleep(10);
	} while (now_ms() < end);
	return 0;
}

/*
 * A daemon that detached logs to its state folder's aclheapd.log, and a
 * SIGHUP with a broken config file logs the reason there (standard error
 * is /dev/null by then).
 */
START_TEST(detached_logs_and_reload_reason)
{
	char cfgp[400], logp[400], out[8192], *p;
	const char *argv[32];
	const char *ctl[] = { td_prog("aclheapctl"), "-s", NULL, "status",
	    "--json", NULL };
	pid_t pid;
	FILE *f;
	int n, i;

	td_stop(&td, SIGTERM);
	td_shm_unlink(&td);
	snprintf(cfgp, sizeof(cfgp), "%s/d.conf", td.dir);
	snprintf(logp, sizeof(logp), "%s/aclheapd.log", td.state);
	ck_assert_ptr_nonnull(f = fopen(cfgp, "w"));
	fprintf(f, "checkpoint-interval = 0\n");
	fclose(f);
	n = td_daemon_argv(&td, argv, 0, cfgp);
	for (i = 1; i < n - 1; i++)	/* without --foreground */
		argv[i] = argv[i + 1];
	argv[n - 1] = NULL;
	ck_assert_str_eq(argv[1], "--socket");
	ck_assert_msg(run_cmd(out, sizeof(out), argv) == 0, "%s", out);
	ck_assert_msg(strstr(out, logp) != NULL, "%s", out);
	ctl[2] = td.sock;
	ck_assert_msg(run_cmd(out, sizeof(out), ctl) == 0, "%s", out);
	ck_assert_ptr_nonnull(p = strstr(out, "\"pid\":"));
	pid = (pid_t)strtol(p + 6, NULL, 10);
	ck_assert_int_gt(pid, 1);
	ck_assert_msg(file_gets(logp, "serving heap", 5000), "no log in %s",
	    logp);

	ck_assert_ptr_nonnull(f = fopen(cfgp, "w"));
	fprintf(f, "nonsense = 1\n");
	fclose(f);
	ck_assert_int_eq(kill(pid, SIGHUP), 0);
	ck_assert_msg(file_gets(logp, "unknown setting 'nonsense'", 10000),
	    "the reload's reason is not in %s", logp);
	ck_assert(file_gets(logp, "keeping the running settings", 1000));

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	for (i = 0; i < 2000 && kill(pid, 0) == 0; i++)
		msleep(10);
	ck_assert_msg(kill(pid, 0) == -1, "detached daemon %d did not stop",
	    (int)pid);
	ck_assert(file_gets(logp, "final checkpoint", 1000));
}
END_TEST

/*
 * A root name with a NUL byte inside, as the protocol can carry it (from
 * C the API takes a C string): refused whole, not set under the shorter
 * name protobuf-c would hand over.
 */
START_TEST(root_name_with_nul_refused)
{
	static uint8_t buf[FRAME_HDR + FRAME_MAX];
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Root rs = ACLHEAP__ROOT__INIT;
	Aclheap__RootGet g = ACLHEAP__ROOT_GET__INIT;
	Aclheap__Reply *r;
	uint8_t *x;
	long n;
	int fd = raw_hello();

	rs.name = "nulXname";
	rs.value = 0x1234;
	q.id = 7;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
	q.root_set = &rs;
	ck_assert_int_gt(n = frame_pack_request(&q, buf, sizeof(buf)), 0);
	ck_assert_ptr_nonnull(x = memmem(buf, (size_t)n, "nulXname", 8));
	x[3] = '\0';
	ck_assert_int_eq(frame_send(fd, buf, (size_t)n, -1), 0);
	ck_assert_ptr_nonnull(r = raw_reply(fd));
	ck_assert_int_eq(r->error, EINVAL);
	ck_assert_msg(strstr(r->message, "NUL") != NULL, "%s", r->message);
	g.name = "nul";
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_GET;
	q.root_get = &g;
	ck_assert_int_eq(raw_call(fd, &q)->error, ENOENT);
	close(fd);
}
END_TEST

/*
 * The lease table has a record for every slab (a lease holds a slab of its
 * own), so it is never what runs out first: a heap that has lent out every
 * slab says there is no slab to lease, after far more leases than the
 * 1024 records of older layouts, and never that the table is full.
 */
START_TEST(lease_table_full_said)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__LeaseSlab ls = ACLHEAP__LEASE_SLAB__INIT;
	Aclheap__Reply *r = NULL;
	struct shm_geom g;
	uint64_t size;
	int fd, i;

	td_cleanup(&td);
	td_init(&td, "leases");
	/* A slab each: a heap of about 250 MiB whose slabs are not a whole
	 * number of pages of records, which are rounded up. */
	for (size = UINT64_C(250) << 20;; size += SHM_SLAB_SIZE) {
		ck_assert_int_eq(seg_geometry(size, &g), 0);
		if (g.nslabs < g.nleases)
			break;
	}
	snprintf(td.size, sizeof(td.size), "%" PRIu64, size);
	ck_assert_int_eq(td_start(&td, NULL), 0);
	fd = raw_hello();
	q.body_case = ACLHEAP__REQUEST__BODY_LEASE;
	q.lease = &ls;
	for (i = 0; i <= (int)g.nleases; i++) {
		r = raw_call(fd, &q);
		if (r->error != 0)
			break;
	}
	/* Every slab but the few the daemon holds for itself. */
	ck_assert_int_ge(i, (int)g.nslabs - 4);
	ck_assert_int_lt(i, (int)g.nleases);
	ck_assert_int_eq(r->error, ENOMEM);
	ck_assert_msg(strstr(r->message, "no slab") != NULL &&
	    strstr(r->message, "lease table is full") == NULL, "%s",
	    r->message);
	close(fd);
}
END_TEST

/* The foreground banner names the aclheapctl beside the daemon (a build
 * folder), else the one on PATH; never "the build folder" for a daemon
 * that is not in one. */
START_TEST(banner_names_aclheapctl)
{
	char want[600], exe[600];
	const char *argv[16];
	int k;

	ck_assert_msg(strstr(td_log(&td), "build folder") == NULL, "%s",
	    td_log(&td));
	ck_assert_msg(strstr(td_log(&td), "/aclheapctl -s ") != NULL, "%s",
	    td_log(&td));
	/* A daemon alone in a folder, as installed in sbin. */
	td_stop(&td, SIGTERM);
	td_shm_unlink(&td);
	snprintf(exe, sizeof(exe), "%s", td_stage(&td, "aclheapd"));
	k = td_daemon_argv(&td, argv, 0, "/dev/null");
	argv[0] = exe;
	argv[k] = NULL;
	if ((td.pid = fork()) == 0) {
		int fd = open(td.log, O_WRONLY | O_TRUNC);

		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_eq(td_wait_ready(&td), 0);
	snprintf(want, sizeof(want), "try: aclheapctl -s %s status", td.sock);
	ck_assert_msg(strstr(td_log(&td), want) != NULL, "%s", td_log(&td));
}
END_TEST

/* An ENOENT that is not about roots keeps its own words: a checkpoint
 * whose state folder went away is not "no such root". */
START_TEST(enoent_not_a_root_message)
{
	char gone[400];
	int rc;

	snprintf(gone, sizeof(gone), "%s.gone", td.state);
	ck_assert_int_eq(aclheap_attach(td.sock), 0);
	ck_assert_int_eq(rename(td.state, gone), 0);
	rc = aclheap_checkpoint();
	ck_assert_int_eq(rename(gone, td.state), 0);
	ck_assert_int_ne(rc, 0);
	ck_assert_msg(strstr(aclheap_last_error(), "root") == NULL,
	    "%d: %s", rc, aclheap_last_error());
	ck_assert_msg(aclheap_last_error()[0] != '\0', "no reason");
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	aclheap_detach();
}
END_TEST

/* Memory a heap takes from /dev/shm, from its segment's blocks. */
static uint64_t
shm_bytes(const struct td *t)
{
	char idpath[400], name[200], hex[64];
	struct stat st;
	FILE *f;

	snprintf(idpath, sizeof(idpath), "%s/heap.id", t->state);
	ck_assert_ptr_nonnull(f = fopen(idpath, "r"));
	ck_assert_int_eq(fscanf(f, "%63s", hex), 1);
	fclose(f);
	snprintf(name, sizeof(name), "/dev/shm/aclheap-%s", hex);
	ck_assert_int_eq(stat(name, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* An empty corner of a big heap costs nothing: a fresh 4 GiB heap takes
 * only its slab table from /dev/shm, before and after a verify. */
START_TEST(big_empty_heap_costs_little)
{
	struct td t;
	const char *verify[] = { td_prog("aclheapctl"), "-s", t.sock, "verify",
	    NULL };
	char out[4096];

	td_init(&t, "sparse");
	snprintf(t.size, sizeof(t.size), "4G");
	ck_assert_int_eq(td_start(&t, NULL), 0);
	ck_assert_uint_lt(shm_bytes(&t), 2 << 20);
	ck_assert_msg(run_cmd(out, sizeof(out), verify) == 0, "%s", out);
	ck_assert_uint_lt(shm_bytes(&t), 2 << 20);
	td_cleanup(&t);
}
END_TEST

/* --allow-group admits a user by its group and no one else: nobody in
 * group nogroup gets in, nobody in group daemon is refused. */
START_TEST(allow_group_admits_its_members)
{
	char out[4096];
	const char *extra[] = { "--allow-group", "nogroup", "--socket-mode",
	    "0666", NULL };
	const char *member[] = { "/usr/bin/setpriv", "--reuid=nobody",
	    "--regid=nogroup", "--clear-groups", NULL, "fill", "grp", "20",
	    "5", NULL };
	const char *other[] = { "/usr/bin/setpriv", "--reuid=nobody",
	    "--regid=daemon", "--clear-groups", NULL, "addr", "grp", NULL };

	if (geteuid() != 0)
		td_skip("needs root to run a client as another user (CI runs "
		    "as root)");
	td_cleanup(&td);
	td_init(&td, "group");
	ck_assert_int_eq(td_start(&td, extra), 0);
	member[4] = td_stage(&td, "tests/helper_client");
	other[4] = member[4];
	ck_assert_msg(run_cmd(out, sizeof(out), member) == 0, "%s", out);
	ck_assert_int_eq(run_cmd(out, sizeof(out), other), 1);
	ck_assert_msg(strstr(out, "not allowed") != NULL, "%s", out);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "not on the allow list"));
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	ck_assert_ptr_nonnull(aclheap_root_get("grp"));
}
END_TEST

/* The default base, which must stay clear of the usual process layout and
 * of AddressSanitizer's shadow (the sanitizer build runs this too). */
START_TEST(default_base_works)
{
	char base[32];
	unsigned char *p;

	td_cleanup(&td);
	td_init(&td, "defbase");
	snprintf(base, sizeof(base), "0x%llx",
	    (unsigned long long)SHM_BASE_DEFAULT);
	snprintf(td.base, sizeof(td.base), "%s", base);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	p = aclmalloc(100000);
	ck_assert_msg(p != NULL, "%s", aclheap_last_error());
	ck_assert_uint_ge((uintptr_t)p, SHM_BASE_DEFAULT);
	ck_assert_uint_lt((uintptr_t)p, SHM_BASE_DEFAULT + (64 << 20));
	memset(p, 0x11, 100000);
	ck_assert_uint_eq(aclfree(p), 100000);
	p = aclmalloc(100);
	ck_assert_ptr_nonnull(p);
	memset(p, 0x22, 100);
	ck_assert_uint_eq(aclfree(p), 100);
}
END_TEST

Suite *
daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("daemon");

	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, garbage_bytes_then_good_client);
	tcase_add_test(tc, hello_keeps_no_descriptor);
	tcase_add_test(tc, oversized_frame_closed);
	tcase_add_test(tc, malformed_and_unknown_messages);
	tcase_add_test(tc, request_before_hello_refused);
	tcase_add_test(tc, pipelined_requests);
	tcase_add_test(tc, requests_outside_heap_refused);
	tcase_add_test(tc, bad_requests_change_nothing);
	tcase_add_test(tc, lease_wants_only_free_slabs);
	tcase_add_test(tc, scribbled_slab_table_survived);
	tcase_add_test(tc, socket_path_every_size);
	tcase_add_test(tc, socket_small_blocks_past_first_page);
	tcase_add_test(tc, scribbled_superblock_checkpoints);
	tcase_add_test(tc, client_killed_mid_work);
	tcase_add_test(tc, term_stops_cleanly);
	tcase_add_test(tc, term_reports_failed_final_checkpoint);
	tcase_add_test(tc, int_stops_cleanly);
	tcase_add_test(tc, usr1_checkpoints);
	tcase_add_test(tc, early_signal_waits_for_the_loop);
	tcase_add_test(tc, second_daemon_refused);
	tcase_add_test(tc, options_checked);
	tcase_add_test(tc, config_file_settings);
	tcase_add_test(tc, allow_list_refuses_other_uid);
	tcase_add_test(tc, allow_user_admits_other_uid);
	tcase_add_test(tc, big_empty_heap_costs_little);
	tcase_add_test(tc, allow_group_admits_its_members);
	tcase_add_test(tc, default_base_works);
	tcase_add_test(tc, default_socket_agrees);
	tcase_add_test(tc, allow_user_unreachable_warned);
	tcase_add_test(tc, detached_logs_and_reload_reason);
	tcase_add_test(tc, root_name_with_nul_refused);
	tcase_add_test(tc, lease_table_full_said);
	tcase_add_test(tc, banner_names_aclheapctl);
	tcase_add_test(tc, enoent_not_a_root_message);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
