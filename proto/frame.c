/* SPDX-License-Identifier: MIT */
/*
 * frame.c: length-prefixed frames, arena unpacking, and blocking frame I/O
 * with descriptor passing.  The daemon uses the parsing half on its own
 * non-blocking buffers; the client and aclheapctl use frame_send() and
 * frame_recv() on a blocking socket.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"

/*
 * 1 with *len when a whole header is there, 0 when more bytes are needed,
 * -EMSGSIZE when the header announces more than FRAME_MAX.
 */
int
frame_peek(const uint8_t *buf, size_t have, uint32_t *len)
{
	uint32_t n;

	if (have < FRAME_HDR)
		return 0;
	n = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 |
	    (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
	if (n > FRAME_MAX)
		return -EMSGSIZE;
	*len = n;
	return 1;
}

void
frame_put_len(uint8_t *buf, uint32_t n)
{
	buf[0] = (uint8_t)n;
	buf[1] = (uint8_t)(n >> 8);
	buf[2] = (uint8_t)(n >> 16);
	buf[3] = (uint8_t)(n >> 24);
}

static long
pack(const ProtobufCMessage *m, uint8_t *buf, size_t cap)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	if (n > FRAME_MAX || n + FRAME_HDR > cap)
		return -EMSGSIZE;
	protobuf_c_message_pack(m, buf + FRAME_HDR);
	frame_put_len(buf, (uint32_t)n);
	return (long)(n + FRAME_HDR);
}

long
frame_pack_request(const Aclheap__Request *m, uint8_t *buf, size_t cap)
{
	return pack(&m->base, buf, cap);
}

long
frame_pack_reply(const Aclheap__Reply *m, uint8_t *buf, size_t cap)
{
	return pack(&m->base, buf, cap);
}

static void *
arena_alloc(void *ctx, size_t n)
{
	struct frame_arena *a = ctx;
	/* 16-byte aligned in memory, whatever the buffer's own alignment. */
	size_t at = a->used + ((16 - ((uintptr_t)a->buf + a->used) % 16) % 16);
	void *p;

	if (n > a->cap || at > a->cap - n)
		return NULL;
	p = a->buf + at;
	a->used = at + n;
	return p;
}

static void
arena_free(void *ctx, void *p)
{
	/* Released all at once by frame_arena_reset(). */
	(void)ctx;
	(void)p;
}

void
frame_arena_init(struct frame_arena *a, void *buf, size_t cap)
{
	a->alloc.alloc = arena_alloc;
	a->alloc.free = arena_free;
	a->alloc.allocator_data = a;
	a->buf = buf;
	a->cap = cap;
	a->used = 0;
}

void
frame_arena_reset(struct frame_arena *a)
{
	a->used = 0;
}

/*
 * No valid message has a field numbered 0.  protobuf-c 1.4 refuses one
 * whose tag is written in one byte, but keeps it as an unknown field when
 * the tag is padded to more bytes, and then packs it back in the one-byte
 * form that it refuses.  Such a message is malformed, at any depth.
 */
static int
fields_valid(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const ProtobufCFieldDescriptor *f;
	const ProtobufCMessage *const *arr, *sub;
	const char *base = (const char *)m;
	size_t k, n;
	unsigned i;

	for (i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return 0;
	for (i = 0; i < d->n_fields; i++) {
		f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			memcpy(&n, base + f->quantifier_offset, sizeof(n));
			memcpy(&arr, base + f->offset, sizeof(arr));
			for (k = 0; k < n; k++)
				if (!fields_valid(arr[k]))
					return 0;
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which;

			memcpy(&which, base + f->quantifier_offset,
			    sizeof(which));
			if (which != f->id)
				continue;
		}
		memcpy(&sub, base + f->offset, sizeof(sub));
		if (sub != NULL && !fields_valid(sub))
			return 0;
	}
	return 1;
}

/* What is refused stays in the arena, released by frame_arena_reset(). */
Aclheap__Request *
frame_unpack_request(struct frame_arena *a, const uint8_t *buf, size_t len)
{
	Aclheap__Request *q;

	if (len > FRAME_MAX)
		return NULL;
	q = aclheap__request__unpack(&a->alloc, len, buf);
	return q != NULL && fields_valid(&q->base) ? q : NULL;
}

Aclheap__Reply *
frame_unpack_reply(struct frame_arena *a, const uint8_t *buf, size_t len)
{
	Aclheap__Reply *r;

	if (len > FRAME_MAX)
		return NULL;
	r = aclheap__reply__unpack(&a->alloc, len, buf);
	return r != NULL && fields_valid(&r->base) ? r : NULL;
}

/*
 * One sendmsg() of len bytes, passing the npass descriptors of pass (at
 * most FRAME_FDS) with the first of them, never raising SIGPIPE.  Bytes
 * sent, or -errno.  The daemon's non-blocking writer and frame_send()
 * share it.
 */
long
frame_sendmsg(int fd, const uint8_t *buf, size_t len, const int *pass,
    int npass, int flags)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(FRAME_FDS * sizeof(int))];
	} u;
	struct msghdr msg;
	struct iovec iov;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (npass > FRAME_FDS)
		return -EINVAL;
	if (npass > 0) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.b;
		msg.msg_controllen = CMSG_SPACE((size_t)npass * sizeof(int));
		u.h.cmsg_level = SOL_SOCKET;
		u.h.cmsg_type = SCM_RIGHTS;
		u.h.cmsg_len = CMSG_LEN((size_t)npass * sizeof(int));
		memcpy(CMSG_DATA(&u.h), pass, (size_t)npass * sizeof(int));
	}
	n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
	return n == -1 ? -errno : (long)n;
}

/* Writes a whole frame to a blocking socket, passing passfd (if >= 0)
 * with its first byte. */
int
frame_send(int fd, const uint8_t *buf, size_t len, int passfd)
{
	long n;

	while (len > 0) {
		n = frame_sendmsg(fd, buf, len, &passfd, passfd >= 0, 0);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		passfd = -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
recv_some(int fd, uint8_t *buf, size_t want, int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(FRAME_FDS * sizeof(int))];
	} u;
	struct cmsghdr *c;
	struct msghdr msg;
	struct iovec iov;
	size_t got = 0, k, nr;
	ssize_t n;
	int rfd, i;

	while (got < want) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf + got;
		iov.iov_len = want - got;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = u.b;
		msg.msg_controllen = sizeof(u.b);
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS ||
			    c->cmsg_len < CMSG_LEN(0))
				continue;
			nr = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (k = 0; k < nr; k++) {
				memcpy(&rfd, CMSG_DATA(c) + k * sizeof(int),
				    sizeof(int));
				/* Into the first free slot; what there is no
				 * slot for is closed, never leaked. */
				for (i = 0; i < nfds && fds[i] >= 0; i++)
					;
				if (i < nfds)
					fds[i] = rfd;
				else
					close(rfd);
			}
		}
		got += (size_t)n;
	}
	return 0;
}

/*
 * Reads one whole frame from a blocking socket into buf.  fds[0 ..
 * nfds-1] (initialise them to -1) receive the descriptors passed with
 * it, in order; any more are closed.  -EMSGSIZE for a frame longer than
 * cap, -ECONNRESET at end of stream.
 */
int
frame_recv_fds(int fd, uint8_t *buf, size_t cap, uint32_t *len, int *fds,
    int nfds)
{
	uint8_t hdr[FRAME_HDR];
	int rc;

	if ((rc = recv_some(fd, hdr, FRAME_HDR, fds, nfds)) != 0)
		return rc;
	if ((rc = frame_peek(hdr, FRAME_HDR, len)) < 0)
		return rc;
	if (*len > cap)
		return -EMSGSIZE;
	return recv_some(fd, buf, *len, fds, nfds);
}

/* frame_recv_fds() keeping one passed descriptor in *fdp, if not NULL. */
int
frame_recv(int fd, uint8_t *buf, size_t cap, uint32_t *len, int *fdp)
{
	return frame_recv_fds(fd, buf, cap, len, fdp, fdp != NULL);
}

const char *
frame_body_name(const Aclheap__Request *r)
{
	const ProtobufCFieldDescriptor *f;

	f = protobuf_c_message_descriptor_get_field(
	    &aclheap__request__descriptor, (unsigned)r->body_case);
	return f != NULL ? f->name : "none";
}
