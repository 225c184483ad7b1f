/* SPDX-License-Identifier: MIT */
/*
 * proto.h: framing and the socket plumbing shared by the daemon, the client
 * library and aclheapctl.  The messages themselves are generated from
 * aclheap.proto into aclheap.pb-c.h.
 *
 * Theory of operation
 * -------------------
 *   frame = | len (4 bytes, little endian) | len bytes: a packed message |
 *
 *   0 <= len <= FRAME_MAX, checked on the 4 header bytes alone, before any
 *   byte of the body is read or buffered.  A reader that sees a bad length
 *   cannot find the next frame, so it answers once and closes.
 *
 * Unpacking uses a caller's arena (struct frame_arena), so decoding a
 * request allocates nothing from malloc and a hostile message can at most
 * exhaust the arena, which is an error like any other.
 */
#ifndef ACLHEAP_PROTO_H
#define ACLHEAP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "proto/aclheap.pb-c.h"

#define PROTOCOL_VERSION	3u	/* 2: Hello passes the meta object;
					 * 3: max_size, the whole maximum
					 * mapped; Grow */
#define FRAME_HDR		4u
#define FRAME_MAX		(64u * 1024u)
#define READ_MAX		(16u * 1024u)	/* Read request cap */

struct frame_arena {
	ProtobufCAllocator alloc;
	uint8_t *buf;
	size_t cap;
	size_t used;
};

/* proto/frame.c */
int	 frame_peek(const uint8_t *, size_t have, uint32_t *len);
void	 frame_put_len(uint8_t *, uint32_t);
long	 frame_pack_request(const Aclheap__Request *, uint8_t *, size_t cap);
long	 frame_pack_reply(const Aclheap__Reply *, uint8_t *, size_t cap);
void	 frame_arena_init(struct frame_arena *, void *, size_t);
void	 frame_arena_reset(struct frame_arena *);
Aclheap__Request *frame_unpack_request(struct frame_arena *, const uint8_t *,
	    size_t);
Aclheap__Reply *frame_unpack_reply(struct frame_arena *, const uint8_t *,
	    size_t);
#define FRAME_FDS	2	/* descriptors one frame can pass */
long	 frame_sendmsg(int fd, const uint8_t *, size_t, const int *pass,
	    int npass, int flags);
int	 frame_send(int fd, const uint8_t *, size_t, int passfd);
int	 frame_recv(int fd, uint8_t *, size_t cap, uint32_t *len, int *fdp);
int	 frame_recv_fds(int fd, uint8_t *, size_t cap, uint32_t *len, int *fds,
	    int nfds);
const char *frame_body_name(const Aclheap__Request *);

/* proto/quick.c: Alloc and Free in protobuf-c's own bytes, without it */
struct quick_req {
	uint64_t id;
	int body;		/* ACLHEAP__REQUEST__BODY_ALLOC or _FREE */
	uint64_t a;		/* Alloc: size; Free: addr */
	uint64_t b;		/* Alloc: alignment */
};
#define QUICK_MAX	(11 + 2 + 2 * 11)	/* longest quick_encode() */
int	 quick_decode(const uint8_t *, size_t, struct quick_req *);
size_t	 quick_encode(uint8_t *, int body, uint64_t id, uint64_t f1,
	    uint64_t f2);

#endif /* ACLHEAP_PROTO_H */
