/* SPDX-License-Identifier: MIT */
/*
 * quick.c: Alloc and Free, the requests that come by the million, without
 * protobuf-c's generic machinery.
 *
 * protobuf-c decodes a message by walking its descriptor and allocating
 * each submessage; for a 10-byte Alloc that is about 60 ns, and packing the
 * reply another 70, most of what aclheapd spends on such a request.  The
 * functions here read and write the exact bytes protobuf-c itself produces
 * for these two requests and their replies (fields in number order, zero
 * scalars left out):
 *
 *   Request  [08 id]  52|5a len  [08 size|addr]  [10 alignment]
 *   Reply    [08 id]  52|5a len  [08 addr|size]  [10 usable]
 *
 * Anything else (another field order, a repeated or unknown field, another
 * body) is not recognised, and the caller hands the frame to the generic
 * unpacker, which decides.  So the quick path adds no meaning of its own:
 * whatever it accepts, protobuf-c decodes to the same values, and what it
 * writes is what protobuf-c would have written.  check_proto.c holds it to
 * both, on random and mutated messages.
 */
#include "config.h"

#include "proto/proto.h"

#define TAG_ID		0x08	/* field 1, varint */
#define TAG_F1		0x08
#define TAG_F2		0x10	/* field 2, varint */
#define TAG_ALLOC	0x52	/* field 10, length-delimited */
#define TAG_FREE	0x5a	/* field 11, length-delimited */

/* A varint of at most max bytes (10 for a value, 5 for a length, as
 * protobuf-c reads them) whose value fits 64 bits. */
static int
get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v, unsigned max)
{
	const uint8_t *p = *pp;
	uint64_t x = 0;
	unsigned s;

	for (s = 0; s < 7 * max && p < end; s += 7) {
		uint8_t b = *p++;

		if (s == 63 && b > 1)
			return 0;
		x |= (uint64_t)(b & 0x7f) << s;
		if (b < 0x80) {
			*pp = p;
			*v = x;
			return 1;
		}
	}
	return 0;
}

int
quick_decode(const uint8_t *buf, size_t len, struct quick_req *q)
{
	const uint8_t *p = buf, *end = buf + len;
	uint64_t n;

	q->id = q->a = q->b = 0;
	if (p < end && *p == TAG_ID) {
		p++;
		if (!get_varint(&p, end, &q->id, 10))
			return 0;
	}
	if (p == end || (*p != TAG_ALLOC && *p != TAG_FREE))
		return 0;
	q->body = *p++ == TAG_ALLOC ? ACLHEAP__REQUEST__BODY_ALLOC :
	    ACLHEAP__REQUEST__BODY_FREE;
	if (!get_varint(&p, end, &n, 5) || n != (uint64_t)(end - p))
		return 0;
	if (p < end && *p == TAG_F1) {
		p++;
		if (!get_varint(&p, end, &q->a, 10))
			return 0;
	}
	if (q->body == ACLHEAP__REQUEST__BODY_ALLOC && p < end &&
	    *p == TAG_F2) {
		p++;
		if (!get_varint(&p, end, &q->b, 10))
			return 0;
	}
	return p == end;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static size_t
field_len(uint64_t v)
{
	size_t n = 2;	/* tag and the last byte */

	if (v == 0)
		return 0;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t
quick_encode(uint8_t *buf, int body, uint64_t id, uint64_t f1, uint64_t f2)
{
	uint8_t *p = buf;

	if (id != 0) {
		*p++ = TAG_ID;
		p = put_varint(p, id);
	}
	*p++ = body == ACLHEAP__REPLY__BODY_ALLOC ? TAG_ALLOC : TAG_FREE;
	*p++ = (uint8_t)(field_len(f1) + field_len(f2));	/* <= 22 */
	if (f1 != 0) {
		*p++ = TAG_F1;
		p = put_varint(p, f1);
	}
	if (f2 != 0) {
		*p++ = TAG_F2;
		p = put_varint(p, f2);
	}
	return (size_t)(p - buf);
}
