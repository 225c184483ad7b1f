/* SPDX-License-Identifier: MIT */
/*
 * check_proto.c: unit tests of proto/: frame headers, packing, arena
 * unpacking, and blocking frame I/O with descriptor passing.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "tests/testutil.h"

static uint8_t abuf[256 * 1024];

START_TEST(frame_peek_lengths)
{
	uint8_t b[8] = { 0 };
	uint32_t len = 7;

	ck_assert_int_eq(frame_peek(b, 0, &len), 0);
	frame_put_len(b, 5);
	ck_assert_int_eq(frame_peek(b, 3, &len), 0);	/* short header */
	ck_assert_int_eq(frame_peek(b, 4, &len), 1);
	ck_assert_uint_eq(len, 5);
	frame_put_len(b, FRAME_MAX);
	ck_assert_int_eq(frame_peek(b, 4, &len), 1);
	ck_assert_uint_eq(len, FRAME_MAX);
	frame_put_len(b, FRAME_MAX + 1);
	ck_assert_int_eq(frame_peek(b, 4, &len), -EMSGSIZE);
	memset(b, 0xff, 4);
	ck_assert_int_eq(frame_peek(b, 4, &len), -EMSGSIZE);
	/* Little endian on the wire. */
	b[0] = 0x34; b[1] = 0x12; b[2] = 0; b[3] = 0;
	ck_assert_int_eq(frame_peek(b, 4, &len), 1);
	ck_assert_uint_eq(len, 0x1234);
}
END_TEST

START_TEST(frame_pack_unpack_roundtrip)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT, *u;
	Aclheap__Alloc a = ACLHEAP__ALLOC__INIT;
	struct frame_arena ar;
	uint8_t buf[128];
	uint32_t len;
	long n;

	a.size = 123456789;
	a.alignment = 4096;
	q.id = 42;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &a;
	n = frame_pack_request(&q, buf, sizeof(buf));
	ck_assert_int_gt(n, FRAME_HDR);
	ck_assert_int_eq(frame_peek(buf, (size_t)n, &len), 1);
	ck_assert_uint_eq(len + FRAME_HDR, (uint32_t)n);
	frame_arena_init(&ar, abuf, sizeof(abuf));
	u = frame_unpack_request(&ar, buf + FRAME_HDR, len);
	ck_assert_ptr_nonnull(u);
	ck_assert_uint_eq(u->id, 42);
	ck_assert_int_eq(u->body_case, ACLHEAP__REQUEST__BODY_ALLOC);
	ck_assert_uint_eq(u->alloc->size, 123456789);
	ck_assert_uint_eq(u->alloc->alignment, 4096);
	ck_assert_str_eq(frame_body_name(u), "alloc");
	/* Too small a buffer: refused, not truncated. */
	ck_assert_int_eq(frame_pack_request(&q, buf, 5), -EMSGSIZE);
}
END_TEST

START_TEST(frame_unpack_garbage)
{
	static const uint8_t junk[][12] = {
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		  0xff, 0xff },
		{ 0x52, 0x80 },			/* field 10, truncated length */
		{ 0x52, 0x05, 0x08, 0x01 },	/* submessage shorter than said */
		{ 0x07 },			/* wire type 7 does not exist */
		{ 0x12, 0x7f },			/* length past the end */
	};
	static const size_t lens[] = { 12, 2, 4, 1, 2 };
	struct frame_arena ar;
	size_t i;

	frame_arena_init(&ar, abuf, sizeof(abuf));
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		frame_arena_reset(&ar);
		ck_assert_msg(frame_unpack_request(&ar, junk[i], lens[i]) ==
		    NULL, "garbage %zu decoded", i);
	}
	/* Empty is a valid message with no body; dispatch refuses it. */
	frame_arena_reset(&ar);
	ck_assert_ptr_nonnull(frame_unpack_request(&ar, junk[0], 0));
	ck_assert_ptr_null(frame_unpack_request(&ar, junk[0],
	    FRAME_MAX + 1));
}
END_TEST

/* Field number 0 never exists; protobuf-c lets it through when its tag is
 * padded to two bytes (0x82 0x00), so frame.c refuses it at every depth. */
START_TEST(frame_unpack_refuses_field_zero)
{
	static const uint8_t top[] = { 0x08, 0x3f, 0x82, 0x00, 0x00 };
	static const uint8_t in_alloc[] = { 0x52, 0x03, 0x82, 0x00, 0x00 };
	static const uint8_t in_root[] = { 0xc2, 0x01, 0x05, 0x0a, 0x03,
	    0x82, 0x00, 0x00 };
	static const uint8_t field_127[] = { 0x08, 0x3f, 0xf8, 0x07, 0x01 };
	static const uint8_t root_ok[] = { 0xc2, 0x01, 0x05, 0x0a, 0x03,
	    0x0a, 0x01, 0x78 };
	struct frame_arena ar;

	frame_arena_init(&ar, abuf, sizeof(abuf));
	ck_assert_ptr_null(frame_unpack_request(&ar, top, sizeof(top)));
	ck_assert_ptr_null(frame_unpack_reply(&ar, top, sizeof(top)));
	ck_assert_ptr_null(frame_unpack_request(&ar, in_alloc,
	    sizeof(in_alloc)));
	ck_assert_ptr_null(frame_unpack_reply(&ar, in_root, sizeof(in_root)));
	/* Unknown fields that can exist still pass, for newer peers. */
	ck_assert_ptr_nonnull(frame_unpack_request(&ar, field_127,
	    sizeof(field_127)));
	ck_assert_ptr_nonnull(frame_unpack_reply(&ar, root_ok,
	    sizeof(root_ok)));
}
END_TEST

START_TEST(frame_arena_exhaustion)
{
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	Aclheap__RootListReply rl = ACLHEAP__ROOT_LIST_REPLY__INIT;
	Aclheap__Root roots[200], *rp[200];
	struct frame_arena ar;
	static uint8_t buf[FRAME_MAX + FRAME_HDR], tiny[512];
	char names[200][64];
	long n;
	int i;

	for (i = 0; i < 200; i++) {
		aclheap__root__init(&roots[i]);
		snprintf(names[i], sizeof(names[i]), "root-%03d-%040d", i, i);
		roots[i].name = names[i];
		roots[i].value = (uint64_t)i;
		rp[i] = &roots[i];
	}
	rl.n_roots = 200;
	rl.roots = rp;
	r.body_case = ACLHEAP__REPLY__BODY_ROOTS;
	r.roots = &rl;
	n = frame_pack_reply(&r, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	frame_arena_init(&ar, tiny, sizeof(tiny));
	ck_assert_ptr_null(frame_unpack_reply(&ar, buf + FRAME_HDR,
	    (size_t)n - FRAME_HDR));
	frame_arena_init(&ar, abuf, sizeof(abuf));
	ck_assert_ptr_nonnull(frame_unpack_reply(&ar, buf + FRAME_HDR,
	    (size_t)n - FRAME_HDR));
}
END_TEST

START_TEST(frame_send_recv_with_fd)
{
	uint8_t out[64], in[64];
	struct stat a, b;
	uint32_t len;
	int sv[2], fd = -1, tmp;
	long n;
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	tmp = open("/dev/null", O_RDONLY);
	ck_assert_int_ge(tmp, 0);
	r.id = 9;
	n = frame_pack_reply(&r, out, sizeof(out));
	ck_assert_int_eq(frame_send(sv[0], out, (size_t)n, tmp), 0);
	ck_assert_int_eq(frame_recv(sv[1], in, sizeof(in), &len, &fd), 0);
	ck_assert_uint_eq(len + FRAME_HDR, (uint32_t)n);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(tmp, &a), 0);
	ck_assert_int_eq(fstat(fd, &b), 0);
	ck_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	close(fd);
	close(tmp);
	/* An announced length over the cap: refused before reading it. */
	frame_put_len(out, FRAME_MAX + 1);
	ck_assert_int_eq(frame_send(sv[0], out, 4, -1), 0);
	fd = -1;
	ck_assert_int_eq(frame_recv(sv[1], in, sizeof(in), &len, &fd),
	    -EMSGSIZE);
	/* Longer than the reader's buffer. */
	frame_put_len(out, 100);
	ck_assert_int_eq(frame_send(sv[0], out, 4, -1), 0);
	ck_assert_int_eq(frame_recv(sv[1], in, sizeof(in), &len, &fd),
	    -EMSGSIZE);
	/* Truncated by the peer: end of stream. */
	frame_put_len(out, 10);
	ck_assert_int_eq(frame_send(sv[0], out, 6, -1), 0);
	close(sv[0]);
	ck_assert_int_eq(frame_recv(sv[1], in, sizeof(in), &len, &fd),
	    -ECONNRESET);
	close(sv[1]);
}
END_TEST

/* --- the quick path (proto/quick.c) ----------------------------------- */

static uint64_t qseed = 0x2545f4914f6cdd1dULL;

/* Values with every varint length, zero and the extremes among them. */
static uint64_t
qval(void)
{
	uint64_t v;

	qseed ^= qseed << 13;
	qseed ^= qseed >> 7;
	qseed ^= qseed << 17;
	v = qseed;
	switch (v % 8) {
	case 0:
		return 0;
	case 1:
		return UINT64_MAX;
	case 2:
		return v >> 57;				/* one byte */
	default:
		return v >> (v % 64);
	}
}

static long
pack_quick_request(uint8_t *buf, size_t cap, int body, uint64_t id,
    uint64_t a, uint64_t b)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc m = ACLHEAP__ALLOC__INIT;
	Aclheap__Free f = ACLHEAP__FREE__INIT;

	q.id = id;
	q.body_case = (Aclheap__Request__BodyCase)body;
	if (body == ACLHEAP__REQUEST__BODY_ALLOC) {
		m.size = a;
		m.alignment = b;
		q.alloc = &m;
	} else {
		f.addr = a;
		q.free = &f;
	}
	return frame_pack_request(&q, buf, cap);
}

/* Whatever quick_decode() accepts, protobuf-c decodes to the same. */
static int
quick_agrees(const uint8_t *buf, size_t len)
{
	struct frame_arena ar;
	struct quick_req qq;
	Aclheap__Request *u;

	if (!quick_decode(buf, len, &qq))
		return 0;
	frame_arena_init(&ar, abuf, sizeof(abuf));
	u = frame_unpack_request(&ar, buf, len);
	ck_assert_msg(u != NULL, "quick path accepts what protobuf-c refuses");
	ck_assert_uint_eq(u->id, qq.id);
	ck_assert_int_eq(u->body_case, qq.body);
	if (qq.body == ACLHEAP__REQUEST__BODY_ALLOC) {
		ck_assert_uint_eq(u->alloc->size, qq.a);
		ck_assert_uint_eq(u->alloc->alignment, qq.b);
	} else {
		ck_assert_uint_eq(u->free->addr, qq.a);
		ck_assert_uint_eq(qq.b, 0);
	}
	return 1;
}

START_TEST(quick_decode_reads_protobuf_c)
{
	uint8_t buf[64];
	struct quick_req qq;
	uint64_t id, a, b;
	long n;
	int i, body;

	for (i = 0; i < 20000; i++) {
		body = i % 2 ? ACLHEAP__REQUEST__BODY_FREE :
		    ACLHEAP__REQUEST__BODY_ALLOC;
		id = qval();
		a = qval();
		b = body == ACLHEAP__REQUEST__BODY_ALLOC ? qval() : 0;
		n = pack_quick_request(buf, sizeof(buf), body, id, a, b);
		ck_assert_int_gt(n, FRAME_HDR);
		ck_assert_msg(quick_decode(buf + FRAME_HDR, (size_t)n -
		    FRAME_HDR, &qq), "protobuf-c's own bytes not recognised");
		ck_assert_uint_eq(qq.id, id);
		ck_assert_int_eq(qq.body, body);
		ck_assert_uint_eq(qq.a, a);
		ck_assert_uint_eq(qq.b, b);
	}
}
END_TEST

/* Mutated and random messages: the quick path may decline any of them,
 * but never accept one that protobuf-c reads differently or refuses. */
START_TEST(quick_decode_never_disagrees)
{
	static const uint8_t other[][8] = {
		{ 0x08, 0x01, 0x12, 0x00 },		/* Hello */
		{ 0x08, 0x01, 0x62, 0x02, 0x08, 0x05 },	/* Realloc */
		{ 0x5a, 0x02, 0x10, 0x05 },	/* Free with a field 2 */
		{ 0x52, 0x02, 0x10, 0x05, 0x08, 0x01 },	/* length short */
		{ 0x52, 0x04, 0x10, 0x05, 0x08, 0x01 },	/* out of order */
		{ 0x52, 0x00, 0x08, 0x01 },	/* id after the body */
		{ 0x08, 0x01, 0x08, 0x02, 0x52, 0x00 },	/* id twice */
		/* a length in 6 bytes: protobuf-c allows 5 */
		{ 0x52, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 },
	};
	static const size_t olen[] = { 4, 6, 4, 6, 6, 4, 6, 7 };
	uint8_t buf[64], m[64];
	struct quick_req qq;
	size_t len, k;
	long n;
	int i, j, accepted = 0, declined = 0;

	for (k = 0; k < sizeof(olen) / sizeof(olen[0]); k++) {
		ck_assert_msg(!quick_decode(other[k], olen[k], &qq),
		    "message %zu is not a canonical Alloc or Free", k);
		(void)quick_agrees(other[k], olen[k]);
	}
	for (i = 0; i < 200000; i++) {
		n = pack_quick_request(buf, sizeof(buf), i % 2 ?
		    ACLHEAP__REQUEST__BODY_FREE : ACLHEAP__REQUEST__BODY_ALLOC,
		    qval(), qval(), qval());
		len = (size_t)n - FRAME_HDR;
		memcpy(m, buf + FRAME_HDR, len);
		for (j = 0; j < 1 + (int)(qval() % 3); j++) {
			uint64_t r = qval();

			switch (r % 5) {
			case 0:		/* a byte changed */
				m[r / 5 % len] = (uint8_t)(r >> 40);
				break;
			case 1:		/* cut short */
				len = r / 5 % (len + 1);
				break;
			case 2:		/* a byte more */
				if (len < sizeof(m))
					m[len++] = (uint8_t)(r >> 32);
				break;
			case 3:		/* a varint padded: 0x80 put in */
				if (len < sizeof(m)) {
					size_t at = r / 5 % (len + 1);

					memmove(m + at + 1, m + at, len - at);
					m[at] = 0x80;
					len++;
				}
				break;
			default:	/* a varint byte's high bit flipped */
				m[r / 5 % len] ^= 0x80;
				break;
			}
			if (len == 0)
				break;
		}
		if (quick_agrees(m, len))
			accepted++;
		else
			declined++;
	}
	/* Both ways were taken many times. */
	ck_assert_int_gt(accepted, 1000);
	ck_assert_int_gt(declined, 1000);
}
END_TEST

/* The replies it writes are protobuf-c's, byte for byte. */
START_TEST(quick_encode_writes_protobuf_c)
{
	Aclheap__Reply r;
	Aclheap__AllocReply ar;
	Aclheap__FreeReply fr;
	uint8_t want[64], got[QUICK_MAX + 8];
	size_t n, m;
	int i;

	for (i = 0; i < 20000; i++) {
		aclheap__reply__init(&r);
		r.id = qval();
		if (i % 2) {
			aclheap__alloc_reply__init(&ar);
			ar.addr = qval();
			ar.usable = qval();
			r.body_case = ACLHEAP__REPLY__BODY_ALLOC;
			r.alloc = &ar;
			n = quick_encode(got, ACLHEAP__REPLY__BODY_ALLOC, r.id,
			    ar.addr, ar.usable);
		} else {
			aclheap__free_reply__init(&fr);
			fr.size = qval();
			r.body_case = ACLHEAP__REPLY__BODY_FREE;
			r.free = &fr;
			n = quick_encode(got, ACLHEAP__REPLY__BODY_FREE, r.id,
			    fr.size, 0);
		}
		m = protobuf_c_message_pack(&r.base, want);
		ck_assert_uint_le(n, QUICK_MAX);
		ck_assert_uint_eq(n, m);
		ck_assert_msg(memcmp(got, want, n) == 0, "reply %d differs", i);
	}
}
END_TEST

Suite *
proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("proto");

	tcase_add_test(tc, frame_peek_lengths);
	tcase_add_test(tc, frame_pack_unpack_roundtrip);
	tcase_add_test(tc, frame_unpack_garbage);
	tcase_add_test(tc, frame_unpack_refuses_field_zero);
	tcase_add_test(tc, frame_arena_exhaustion);
	tcase_add_test(tc, frame_send_recv_with_fd);
	tcase_add_test(tc, quick_decode_reads_protobuf_c);
	tcase_add_test(tc, quick_decode_never_disagrees);
	tcase_add_test(tc, quick_encode_writes_protobuf_c);
	suite_add_tcase(s, tc);
	return s;
}
