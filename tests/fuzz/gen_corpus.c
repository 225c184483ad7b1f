/* SPDX-License-Identifier: MIT */
/*
 * gen_corpus.c: writes the fuzzers' seed corpora.
 *
 *   make tests/fuzz/gen_corpus && tests/fuzz/gen_corpus tests/fuzz/corpus
 *
 *   frame/     one frame of each request and of each reply body
 *   dispatch/  Hello followed by each request, and whole sessions whose
 *              addresses are those the fuzz heap hands out from empty
 *   image/     images of a 4 MiB heap (seed_image.c): empty, and with
 *              small blocks, an extent, roots, a lease record and a slab
 *              caught reclaiming, and the latter as a delta, each
 *              prefixed by the byte 0x01 (the harness fixes checksums);
 *              and two patch-mode inputs
 *   live/      steps of fuzz_live.c (its op codes, below): requests of
 *              each kind with writes into each client-writable region
 *              between them, a lease and fast-path claims in its slab
 *
 * The output is committed; rerun this after a change to the wire format or
 * the image format.  Identities and times are fixed so reruns are stable.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "shm/image.h"
#include "tests/fuzz/fuzz.h"

/* Must match tests/fuzz/fuzz_dispatch.c. */
#define FUZZ_BASE	UINT64_C(0x330000000000)
#define FUZZ_SIZE	(UINT64_C(8) << 20)

static const char *outdir;
static uint8_t stream[1 << 20];
static size_t slen;
static uint64_t next_id = 1;

static void
spit(const char *sub, const char *name, const void *b, size_t len)
{
	char path[1024];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", outdir, sub);
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		err(1, "%s", path);
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
		err(1, "%s", path);
	if (write(fd, b, len) != (ssize_t)len || close(fd) == -1)
		err(1, "%s", path);
}

/* Appends one request frame to the stream. */
static void
add(Aclheap__Request *q)
{
	long n;

	q->id = next_id++;
	if ((n = frame_pack_request(q, stream + slen,
	    sizeof(stream) - slen)) < 0)
		errx(1, "request does not pack");
	slen += (size_t)n;
}

static void
add_hello(void)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Hello h = ACLHEAP__HELLO__INIT;

	h.version = PROTOCOL_VERSION;
	h.pid = 1234;
	h.name = "fuzz";
	q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
	q.hello = &h;
	add(&q);
}

static void
save_stream(const char *sub, const char *name)
{
	spit(sub, name, stream, slen);
	slen = 0;
	next_id = 1;
}

/* Each request alone as a frame, and after a Hello as a session. */
static void
one_of_each(uintptr_t data)
{
	Aclheap__Alloc al = ACLHEAP__ALLOC__INIT;
	Aclheap__Free fr = ACLHEAP__FREE__INIT;
	Aclheap__Realloc re = ACLHEAP__REALLOC__INIT;
	Aclheap__Root rs = ACLHEAP__ROOT__INIT;
	Aclheap__RootGet rg = ACLHEAP__ROOT_GET__INIT;
	Aclheap__RootCas rc = ACLHEAP__ROOT_CAS__INIT;
	Aclheap__RootRemove rr = ACLHEAP__ROOT_REMOVE__INIT;
	Aclheap__RootList rl = ACLHEAP__ROOT_LIST__INIT;
	Aclheap__Stats st = ACLHEAP__STATS__INIT;
	Aclheap__Checkpoint ck = ACLHEAP__CHECKPOINT__INIT;
	Aclheap__Verify ve = ACLHEAP__VERIFY__INIT;
	Aclheap__Read rd = ACLHEAP__READ__INIT;
	Aclheap__Blocks bl = ACLHEAP__BLOCKS__INIT;
	Aclheap__Clients cl = ACLHEAP__CLIENTS__INIT;
	Aclheap__Dump du = ACLHEAP__DUMP__INIT;
	Aclheap__LeaseSlab ls = ACLHEAP__LEASE_SLAB__INIT;
	Aclheap__ReleaseSlab rl2 = ACLHEAP__RELEASE_SLAB__INIT;
	Aclheap__Grow gr = ACLHEAP__GROW__INIT;
	struct {
		const char *name;
		Aclheap__Request q;
	} t[18];
	size_t i, n = 0;

#define REQ(nm, field, kase, msg) do {					\
	Aclheap__Request q0 = ACLHEAP__REQUEST__INIT;			\
									\
	t[n].name = nm;							\
	t[n].q = q0;							\
	t[n].q.body_case = ACLHEAP__REQUEST__BODY_##kase;		\
	t[n].q.field = msg;						\
	n++;								\
} while (0)
	al.size = 100;
	REQ("alloc", alloc, ALLOC, &al);
	fr.addr = data;
	REQ("free", free, FREE, &fr);
	re.addr = data;
	re.size = 5000;
	REQ("realloc", realloc, REALLOC, &re);
	rs.name = "root";
	rs.value = data;
	REQ("root-set", root_set, ROOT_SET, &rs);
	rg.name = "root";
	REQ("root-get", root_get, ROOT_GET, &rg);
	rc.name = "root";
	rc.expected = 0;
	rc.desired = data;
	REQ("root-cas", root_cas, ROOT_CAS, &rc);
	rr.name = "root";
	REQ("root-remove", root_remove, ROOT_REMOVE, &rr);
	REQ("root-list", root_list, ROOT_LIST, &rl);
	REQ("stats", stats, STATS, &st);
	REQ("checkpoint", checkpoint, CHECKPOINT, &ck);
	REQ("verify", verify, VERIFY, &ve);
	rd.addr = FUZZ_BASE;
	rd.len = 64;
	REQ("read", read, READ, &rd);
	bl.cls = -1;
	REQ("blocks", blocks, BLOCKS, &bl);
	REQ("clients", clients, CLIENTS, &cl);
	REQ("dump", dump, DUMP, &du);
	ls.cls = 3;
	REQ("lease", lease, LEASE, &ls);
	rl2.record = 0;
	REQ("release", release, RELEASE, &rl2);
	gr.size = FUZZ_SIZE - SHM_SLAB_SIZE;	/* a shrink of a free tail */
	REQ("grow", grow, GROW, &gr);
#undef REQ
	for (i = 0; i < n; i++) {
		char name[64];

		add(&t[i].q);
		snprintf(name, sizeof(name), "req-%s", t[i].name);
		save_stream("frame", name);
		add_hello();
		add(&t[i].q);
		snprintf(name, sizeof(name), "hello-%s", t[i].name);
		save_stream("dispatch", name);
	}
}

/*
 * A session on the empty fuzz heap: a small block lands at the start of
 * slab 0, an extent at slab 1, a lease takes slab 2 and record 0.
 */
static void
sessions(uintptr_t data)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc al = ACLHEAP__ALLOC__INIT;
	Aclheap__Free fr = ACLHEAP__FREE__INIT;
	Aclheap__Realloc re = ACLHEAP__REALLOC__INIT;
	Aclheap__Root rs = ACLHEAP__ROOT__INIT;
	Aclheap__LeaseSlab ls = ACLHEAP__LEASE_SLAB__INIT;
	Aclheap__ReleaseSlab rel = ACLHEAP__RELEASE_SLAB__INIT;
	Aclheap__Read rd = ACLHEAP__READ__INIT;
	Aclheap__Blocks bl = ACLHEAP__BLOCKS__INIT;
	Aclheap__Verify ve = ACLHEAP__VERIFY__INIT;
	Aclheap__Checkpoint ck = ACLHEAP__CHECKPOINT__INIT;
	int i;

	add_hello();
	al.size = 100;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &al;
	add(&q);
	al.size = 20000;
	add(&q);
	rs.name = "list";
	rs.value = data;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
	q.root_set = &rs;
	add(&q);
	re.addr = data + 65536;
	re.size = 200000;
	q.body_case = ACLHEAP__REQUEST__BODY_REALLOC;
	q.realloc = &re;
	add(&q);
	ls.cls = 5;
	q.body_case = ACLHEAP__REQUEST__BODY_LEASE;
	q.lease = &ls;
	add(&q);
	rd.addr = data;
	rd.len = 128;
	q.body_case = ACLHEAP__REQUEST__BODY_READ;
	q.read = &rd;
	add(&q);
	bl.cls = -1;
	q.body_case = ACLHEAP__REQUEST__BODY_BLOCKS;
	q.blocks = &bl;
	add(&q);
	q.body_case = ACLHEAP__REQUEST__BODY_VERIFY;
	q.verify = &ve;
	add(&q);
	q.body_case = ACLHEAP__REQUEST__BODY_CHECKPOINT;
	q.checkpoint = &ck;
	add(&q);
	rel.record = 0;
	q.body_case = ACLHEAP__REQUEST__BODY_RELEASE;
	q.release = &rel;
	add(&q);
	fr.addr = data;
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &fr;
	add(&q);
	add(&q);		/* a double free */
	save_stream("dispatch", "session-mixed");

	/* Many small blocks of one class, then their frees: slab turnover. */
	add_hello();
	al.size = 48;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &al;
	for (i = 0; i < 200; i++)
		add(&q);
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &fr;
	for (i = 0; i < 200; i++) {
		fr.addr = data + (uintptr_t)i * 48;
		add(&q);
	}
	save_stream("dispatch", "session-churn");

	/* Journaled requests: a seq each, one sent twice (answered again),
	 * one behind the session's (refused). */
	add_hello();
	al.size = 100;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &al;
	q.seq = 1;
	add(&q);
	add(&q);
	al.size = 5u << 20;
	q.seq = 2;
	add(&q);
	fr.addr = data;
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &fr;
	q.seq = 3;
	add(&q);
	add(&q);
	rs.name = "once";
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
	q.root_set = &rs;
	q.seq = 4;
	add(&q);
	q.seq = 1;
	add(&q);
	re.addr = data;
	q.body_case = ACLHEAP__REQUEST__BODY_REALLOC;
	q.realloc = &re;
	q.seq = 5;
	add(&q);
	q.seq = 0;
	save_stream("dispatch", "session-once");

	/* Broken framing after a good start. */
	add_hello();
	memcpy(stream + slen, "\x03\x00\x00\x00\x52\x05\x08", 7);
	slen += 7;
	memcpy(stream + slen, "\xff\xff\xff\xff", 4);
	slen += 4;
	save_stream("dispatch", "session-bad-frames");
}

static void
replies(void)
{
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	Aclheap__HelloReply h = ACLHEAP__HELLO_REPLY__INIT;
	Aclheap__AllocReply a = ACLHEAP__ALLOC_REPLY__INIT;
	Aclheap__StatsReply s = ACLHEAP__STATS_REPLY__INIT;
	Aclheap__BlocksReply b = ACLHEAP__BLOCKS_REPLY__INIT;
	Aclheap__Block blk = ACLHEAP__BLOCK__INIT, *blkp[2] = { &blk, &blk };
	Aclheap__ClassStats cs = ACLHEAP__CLASS_STATS__INIT, *csp[1] = { &cs };
	static uint8_t id[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 };
	long n;

	r.id = 1;
	h.version = PROTOCOL_VERSION;
	h.heap_base = FUZZ_BASE;
	h.size = FUZZ_SIZE;
	h.max_size = FUZZ_SIZE;
	h.identity.data = id;
	h.identity.len = 16;
	h.layout = SHM_VERSION;
	r.body_case = ACLHEAP__REPLY__BODY_HELLO;
	r.hello = &h;
	n = frame_pack_reply(&r, stream, sizeof(stream));
	spit("frame", "reply-hello", stream, (size_t)n);
	a.addr = FUZZ_BASE + 0x100000;
	a.usable = 112;
	r.body_case = ACLHEAP__REPLY__BODY_ALLOC;
	r.alloc = &a;
	n = frame_pack_reply(&r, stream, sizeof(stream));
	spit("frame", "reply-alloc", stream, (size_t)n);
	s.version = "0.1.0";
	s.heap_base = FUZZ_BASE;
	s.n_classes = 1;
	s.classes = csp;
	cs.block_size = 16;
	cs.slabs = 2;
	r.body_case = ACLHEAP__REPLY__BODY_STATS;
	r.stats = &s;
	n = frame_pack_reply(&r, stream, sizeof(stream));
	spit("frame", "reply-stats", stream, (size_t)n);
	blk.addr = FUZZ_BASE + 0x100000;
	blk.req = 5;
	blk.usable = 16;
	b.n_blocks = 2;
	b.blocks = blkp;
	b.next = 77;
	r.body_case = ACLHEAP__REPLY__BODY_BLOCKS;
	r.blocks = &b;
	n = frame_pack_reply(&r, stream, sizeof(stream));
	spit("frame", "reply-blocks", stream, (size_t)n);
	r.body_case = ACLHEAP__REPLY__BODY__NOT_SET;
	r.error = 22;
	r.message = "0xdeadbeef is not a live block";
	n = frame_pack_reply(&r, stream, sizeof(stream));
	spit("frame", "reply-error", stream, (size_t)n);
}

/* The seed images, with the byte that has the harness fix checksums. */
static void
image(const char *name, int filled, int delta)
{
	uint8_t *b, *f;
	size_t len;

	if (fuzz_seed_image(filled, delta, &b, &len) != 0)
		errx(1, "cannot make the seed image");
	if ((f = malloc(len + 1)) == NULL)
		err(1, "malloc");
	f[0] = 0x01;
	memcpy(f + 1, b, len);
	spit("image", name, f, len + 1);
	free(f);
	free(b);
}

/*
 * Patch mode (first byte 0x02): edits of the seed image, each a 4-byte
 * offset into its metadata, a length and the bytes.  One seed edits
 * nothing; one writes slab 0's state word with the value it has; one
 * gives slab 0 another ready count.
 */
static void
patches(void)
{
	struct shm_geom g;
	uint32_t w = (uint32_t)SHM_SLAB_WORD(SHM_SMALL, 3, 0), off;
	uint8_t p[16];
	size_t n = 0;

	if (seg_geometry(UINT64_C(4) << 20, &g) != 0)
		errx(1, "geometry");
	p[n++] = 0x02;
	spit("image", "patch-none", p, n);
	/* In the META section the slab table follows the roots in use (the
	 * root table's room past them and the lease region are left out);
	 * the word's low 4 bytes hold state and class. */
	off = (uint32_t)(g.roots_off + FUZZ_SEED_ROOTS *
	    sizeof(struct shm_root));
	p[n++] = (uint8_t)off;
	p[n++] = (uint8_t)(off >> 8);
	p[n++] = (uint8_t)(off >> 16);
	p[n++] = (uint8_t)(off >> 24);
	p[n++] = 4;
	p[n++] = (uint8_t)w;
	p[n++] = (uint8_t)(w >> 8);
	p[n++] = (uint8_t)(w >> 16);
	p[n++] = (uint8_t)(w >> 24);
	spit("image", "patch-slab0", p, n);
	/* Slab 0's ready count (after its word and run): 64, past its 20
	 * blocks in use (the fuzzer's edits of it start here). */
	off += (uint32_t)offsetof(struct shm_slab, ready);
	n = 1;
	p[n++] = (uint8_t)off;
	p[n++] = (uint8_t)(off >> 8);
	p[n++] = (uint8_t)(off >> 16);
	p[n++] = (uint8_t)(off >> 24);
	p[n++] = 4;
	p[n++] = 64;
	p[n++] = 0;
	p[n++] = 0;
	p[n++] = 0;
	spit("image", "patch-ready", p, n);
}

/*
 * fuzz_live.c's steps.  A step is an op byte (its value mod 16 says
 * which) and the bytes it reads, the same whatever the heap holds:
 *
 *   0..4  write: region (mod 6: bitmaps, side lines, lease records,
 *         in-slab sides, a slab's data, our lease record; +0x80: one
 *         adversarial word), slab, offset (4), then an adversarial
 *         index, or a count and that many bytes
 *   5 alloc: flags, size (4), [alignment shift if flags & 2]
 *   6 free, 7 realloc (+ flag, size 4): an address is a byte (ring
 *         index, +0x80 raw) and 4 bytes of raw offset
 *   8 roots, 9 stats/list/clients, 10 verify/blocks/read: a selector
 *         (blocks: of class selector / 3 - 1; read: then an address
 *         and a length byte)
 *   11 lease: cls (+0x80 renew), want; 12 release: flag, record (4)
 *   13 fast claim: count, word; 14 fast free: ring index; 15 checkpoint
 */
enum { L_WRITE = 0, L_ALLOC = 5, L_FREE, L_REALLOC, L_ROOT, L_STATS,
    L_VERIFY, L_LEASE, L_RELEASE, L_CLAIM, L_FFREE, L_CKPT };
enum { LR_BITMAPS, LR_SIDES, LR_LEASES, LR_INSLAB, LR_DATA, LR_MYLEASE };

static void
lb(uint8_t b)
{
	stream[slen++] = b;
}

static void
l32(uint32_t v)
{
	lb((uint8_t)v);
	lb((uint8_t)(v >> 8));
	lb((uint8_t)(v >> 16));
	lb((uint8_t)(v >> 24));
}

static void
l_write(uint8_t region, uint8_t slab, uint32_t off, const char *bytes,
    uint8_t n)
{
	lb(L_WRITE);
	lb(region);
	lb(slab);
	l32(off);
	lb((uint8_t)(n - 1));
	while (n-- > 0)
		lb((uint8_t)*bytes++);
}

static void
l_bad(uint8_t region, uint8_t slab, uint32_t off, uint8_t which)
{
	lb(L_WRITE);
	lb(region | 0x80);
	lb(slab);
	l32(off);
	lb(which);
}

static void
l_alloc(uint32_t size, int aligned)
{
	lb(L_ALLOC);
	lb(aligned ? 3 : 1);
	l32(size);
	if (aligned)
		lb(12);
}

static void
l_addr(uint8_t ring)
{
	lb(ring);
	l32(ring * 4096u);
}

static void
l_free(uint8_t ring)
{
	lb(L_FREE);
	l_addr(ring);
}

static void
l_realloc(uint8_t ring, uint32_t size)
{
	lb(L_REALLOC);
	l_addr(ring);
	lb(1);
	l32(size);
}

static void
l_two(uint8_t op, uint8_t sel)
{
	lb(op);
	lb(sel);
}

static void
l_read(uint8_t ring)
{
	l_two(L_VERIFY, 2);
	l_addr(ring);
	lb(4);
}

static void
l_checks(void)
{
	l_two(L_VERIFY, 0);
	l_two(L_VERIFY, 1);	/* Blocks, every class */
	l_two(L_VERIFY, 3 * 3 + 1);	/* Blocks of 32-byte class 2 */
	l_two(L_STATS, 0);
	l_two(L_STATS, 1);	/* RootList */
}

static void
l_lease(uint8_t cls)
{
	lb(L_LEASE);
	lb(cls);
	lb(0x80);	/* no wanted slab */
}

static void
l_release(void)
{
	lb(L_RELEASE);
	lb(1);
	l32(0);
}

static void
l_claim(uint8_t n, uint8_t word)
{
	lb(L_CLAIM);
	lb(n);
	lb(word);
}

static void
l_ckpt(void)
{
	lb(L_CKPT);
	lb(0);
}

static void
live(void)
{
	static const char ones[16] = "\xff\xff\xff\xff\xff\xff\xff\xff"
	    "\xff\xff\xff\xff\xff\xff\xff\xff";
	static const char junk[16] = "scribbled bytes";
	int i;

	/* Every kind of request on an unharmed heap. */
	l_alloc(100, 0);
	l_alloc(20000, 0);
	l_alloc(5u << 20, 0);
	l_alloc(3000, 1);
	l_two(L_ROOT, 1);	/* RootSet "a" */
	l_two(L_ROOT, 2);	/* RootGet "a" */
	l_realloc(0, 200);
	l_realloc(2, 6u << 20);
	l_checks();
	l_two(L_STATS, 2);	/* Clients */
	l_read(0);
	l_lease(3);
	l_claim(4, 0);
	l_free(0);
	l_free(1);
	l_free(2);
	l_two(L_ROOT, 0);	/* RootRemove "a" */
	l_release();
	save_stream("live", "requests");

	/* Bitmaps: all ones over a slab in use, then random bytes. */
	l_alloc(100, 0);
	l_alloc(3000, 0);
	l_write(LR_BITMAPS, 0, 0, ones, 16);
	l_alloc(100, 0);
	l_write(LR_BITMAPS, 1, 520, junk, 16);
	l_alloc(3000, 0);
	l_checks();
	l_free(0);
	l_free(1);
	save_stream("live", "bitmaps");

	/* Side lines and in-slab side entries: huge slack, then junk. */
	l_alloc(3000, 0);
	l_alloc(40, 0);
	l_alloc(20000, 0);
	l_write(LR_SIDES, 0, 0, ones, 16);
	l_write(LR_INSLAB, 1, 0, ones, 16);
	l_write(LR_SIDES, 2, 130, junk, 16);
	l_checks();
	l_free(0);
	l_free(1);
	l_realloc(2, 100);
	l_free(2);
	save_stream("live", "sides");

	/* Lease records: our own with an adversarial word in each field,
	 * and another with junk; then claims, frees and a release. */
	l_lease(5);
	l_claim(3, 0);
	for (i = 0; i < 10; i++)
		l_bad(LR_MYLEASE, 0, (uint32_t)i * 4, (uint8_t)i);
	l_claim(3, 1);
	l_write(LR_LEASES, 0, 64, junk, 16);
	l_lease(5 | 0x80);	/* renew */
	l_lease(9);
	l_bad(LR_LEASES, 0, 4, 4);	/* the record's slab past the end */
	l_bad(LR_LEASES, 0, 32, 0);	/* its set in slab UINT32_MAX */
	l_lease(9 | 0x80);
	l_two(L_FFREE, 0);
	l_checks();
	l_release();
	save_stream("live", "leases");

	/* Data: junk over a slab of small blocks, in-band sides and all. */
	l_alloc(48, 0);
	l_alloc(48, 0);
	for (i = 0; i < 8; i++)
		l_write(LR_DATA, 0, 65536u - 16 * (uint32_t)(i + 1), junk, 16);
	l_read(0);
	l_checks();
	l_free(0);
	l_free(1);
	save_stream("live", "data");

	/* Adversarial words into the bitmaps and side lines of a span and
	 * an extent's neighbours, then a checkpoint, which must refuse. */
	l_alloc(20000, 0);
	l_alloc(100000, 0);
	for (i = 0; i < 12; i++) {
		l_bad(LR_BITMAPS, (uint8_t)i, (uint32_t)i * 8, (uint8_t)i);
		l_bad(LR_SIDES, (uint8_t)i, (uint32_t)i * 4, (uint8_t)i);
	}
	l_ckpt();
	l_alloc(20000, 0);
	l_free(0);
	l_free(1);
	l_checks();
	save_stream("live", "adversarial");

	/* A checkpoint of a good heap, then damage, then another. */
	l_alloc(100, 0);
	l_alloc(70000, 0);
	l_ckpt();
	l_write(LR_SIDES, 0, 0, ones, 8);
	l_ckpt();
	l_free(0);
	l_free(1);
	save_stream("live", "checkpoint");
}

int
main(int argc, char **argv)
{
	struct shm_geom g;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) == -1 && errno != EEXIST)
		err(1, "%s", outdir);
	if (seg_geometry(FUZZ_SIZE, &g) != 0)
		errx(1, "geometry");
	one_of_each(FUZZ_BASE + g.data_off);
	sessions(FUZZ_BASE + g.data_off);
	replies();
	image("empty-heap", 0, 0);
	image("small-heap", 1, 0);
	image("small-heap-delta", 1, 1);
	patches();
	live();
	return 0;
}
