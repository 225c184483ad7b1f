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
	suite_add_tcase(s, tc);
	return s;
}
