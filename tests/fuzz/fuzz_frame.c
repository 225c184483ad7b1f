/* SPDX-License-Identifier: MIT */
/*
 * fuzz_frame.c: framing and message decoding on hostile bytes.
 *
 * The input is a byte stream cut into frames with frame_peek(), as the
 * daemon cuts its read buffer.  Each frame's body is decoded with the arena
 * both as a Request (what the daemon does) and as a Reply (what a client
 * does with a daemon's answer).  Whatever decodes must pack again, and the
 * packed bytes must decode and pack to the very same bytes: a message the
 * decoder accepts is one the rest of the code can hold and send.  The
 * daemon's quick path for Alloc and Free (proto/quick.c) must decode what it
 * accepts exactly as protobuf-c does, and write replies as it would.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

#define ARENA	(256 * 1024)	/* the daemon's arena size */

uint64_t fuzz_frame_decoded;

static uint8_t abuf[2][ARENA];
static uint8_t pbuf[2][FRAME_HDR + FRAME_MAX];

static void
die(const char *what, size_t off)
{
	fprintf(stderr, "fuzz_frame: %s (frame at offset %zu)\n", what, off);
	abort();
}

/* The bytes packed from the decoded copy (pbuf[1]) equal the first
 * packing (pbuf[0]). */
static void
same_bytes(long n1, long n2, size_t off)
{
	if (n2 != n1 || memcmp(pbuf[0], pbuf[1], (size_t)n1) != 0)
		die("a message does not pack to the same bytes twice", off);
}

static void
packs_as(long n1, size_t packed, size_t off)
{
	if (n1 < 0 && packed <= FRAME_MAX)
		die("a message that fits a frame does not pack", off);
	if (n1 >= 0 && (size_t)n1 != packed + FRAME_HDR)
		die("a message packed to an unexpected length", off);
}

static void
roundtrip_request(const Aclheap__Request *q, size_t off)
{
	struct frame_arena a2;
	Aclheap__Request *q2;
	long n1;

	n1 = frame_pack_request(q, pbuf[0], sizeof(pbuf[0]));
	packs_as(n1, protobuf_c_message_get_packed_size(&q->base), off);
	if (n1 < 0)
		return;
	frame_arena_init(&a2, abuf[1], sizeof(abuf[1]));
	q2 = frame_unpack_request(&a2, pbuf[0] + FRAME_HDR,
	    (size_t)n1 - FRAME_HDR);
	if (q2 == NULL)
		die("a request we packed does not decode", off);
	same_bytes(n1, frame_pack_request(q2, pbuf[1], sizeof(pbuf[1])), off);
}

static void
roundtrip_reply(const Aclheap__Reply *r, size_t off)
{
	struct frame_arena a2;
	Aclheap__Reply *r2;
	long n1;

	n1 = frame_pack_reply(r, pbuf[0], sizeof(pbuf[0]));
	packs_as(n1, protobuf_c_message_get_packed_size(&r->base), off);
	if (n1 < 0)
		return;
	frame_arena_init(&a2, abuf[1], sizeof(abuf[1]));
	r2 = frame_unpack_reply(&a2, pbuf[0] + FRAME_HDR,
	    (size_t)n1 - FRAME_HDR);
	if (r2 == NULL)
		die("a reply we packed does not decode", off);
	same_bytes(n1, frame_pack_reply(r2, pbuf[1], sizeof(pbuf[1])), off);
}

/* quick_decode() accepts only what protobuf-c reads the same way; the
 * reply quick_encode() writes for it is protobuf-c's. */
static void
quick_agrees(const uint8_t *body, uint32_t len, const Aclheap__Request *q,
    size_t off)
{
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	Aclheap__AllocReply ar = ACLHEAP__ALLOC_REPLY__INIT;
	Aclheap__FreeReply fr = ACLHEAP__FREE_REPLY__INIT;
	struct quick_req qq;
	size_t n;

	if (!quick_decode(body, len, &qq))
		return;
	if (q == NULL || q->id != qq.id || (int)q->body_case != qq.body ||
	    (qq.body == ACLHEAP__REQUEST__BODY_ALLOC ? q->alloc->size !=
	    qq.a || q->alloc->alignment != qq.b : q->free->addr != qq.a))
		die("the quick path reads a request differently", off);
	/* Answer with the request's own numbers as the reply's. */
	r.id = qq.id;
	if (qq.body == ACLHEAP__REQUEST__BODY_ALLOC) {
		ar.addr = qq.a;
		ar.usable = qq.b;
		r.body_case = ACLHEAP__REPLY__BODY_ALLOC;
		r.alloc = &ar;
		n = quick_encode(pbuf[1], ACLHEAP__REPLY__BODY_ALLOC, qq.id,
		    qq.a, qq.b);
	} else {
		fr.size = qq.a;
		r.body_case = ACLHEAP__REPLY__BODY_FREE;
		r.free = &fr;
		n = quick_encode(pbuf[1], ACLHEAP__REPLY__BODY_FREE, qq.id,
		    qq.a, 0);
	}
	if (protobuf_c_message_pack(&r.base, pbuf[0]) != n ||
	    memcmp(pbuf[0], pbuf[1], n) != 0)
		die("the quick path writes a reply differently", off);
}

int
fuzz_frame_one(const uint8_t *data, size_t size)
{
	struct frame_arena a;
	Aclheap__Request *q;
	Aclheap__Reply *r;
	const uint8_t *body;
	size_t off = 0;
	uint32_t len, raw;
	int rc;

	frame_arena_init(&a, abuf[0], sizeof(abuf[0]));
	while (off < size) {
		rc = frame_peek(data + off, size - off, &len);
		if (rc == 0)
			break;
		if (rc < 0) {
			raw = (uint32_t)data[off] | (uint32_t)data[off + 1] << 8 |
			    (uint32_t)data[off + 2] << 16 |
			    (uint32_t)data[off + 3] << 24;
			if (rc != -EMSGSIZE || raw <= FRAME_MAX)
				die("frame_peek refused a good length", off);
			break;	/* the stream cannot be resynchronised */
		}
		if (len > FRAME_MAX)
			die("frame_peek passed a length over the cap", off);
		if (size - off - FRAME_HDR < len)
			break;	/* incomplete: the daemon waits for more */
		body = data + off + FRAME_HDR;
		frame_arena_reset(&a);
		q = frame_unpack_request(&a, body, len);
		quick_agrees(body, len, q, off);
		if (q != NULL) {
			(void)frame_body_name(q);
			roundtrip_request(q, off);
			fuzz_frame_decoded++;
		}
		frame_arena_reset(&a);
		if ((r = frame_unpack_reply(&a, body, len)) != NULL) {
			roundtrip_reply(r, off);
			fuzz_frame_decoded++;
		}
		off += FRAME_HDR + len;
	}
	return 0;
}

FUZZ_ENTRY(fuzz_frame_one)
