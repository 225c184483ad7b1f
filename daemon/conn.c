/* SPDX-License-Identifier: MIT */
/*
 * conn.c: a client's connection: its buffers, reading frames and writing
 * replies.
 *
 * Plain read events, no bufferevents: each wake-up reads what is there,
 * handles every complete frame (request.c), and answers them all with one
 * write.  A connection is freed in exactly one place, conn_close(), which
 * also gives back its leases and forgets any checkpoint it waits for.
 *
 * A request that must wait (Checkpoint, Dump) pauses its connection, so
 * replies always leave in request order.  A frame whose length is over the
 * cap gets one error reply and the connection is closed: the stream cannot
 * be resynchronised.  A frame that does not decode gets an error reply and
 * the connection goes on.  An admitted connection that says no Hello
 * within HELLO_TIMEOUT_MS is closed.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"

#define IN_INIT		4096
#define OUT_PAUSE	(1u << 20)	/* stop reading above this backlog */
/* How long an admitted connection may take to say Hello.  The library
 * sends it right after connect(); 5 s covers a loaded machine.  Tests
 * shorten it through ACLHEAPD_TEST_HELLO_MS, read by conn_setup(). */
#define HELLO_TIMEOUT_MS	5000

struct conn_list conns = TAILQ_HEAD_INITIALIZER(conns);
static int nconns;
static int hello_ms = HELLO_TIMEOUT_MS;
static uint8_t arena_buf[256 * 1024];
static struct frame_arena arena;

static void conn_read(evutil_socket_t, short, void *);

/* The decoding arena, and the Hello timeout tests may shorten. */
void
conn_setup(void)
{
	const char *e = getenv("ACLHEAPD_TEST_HELLO_MS");

	if (e != NULL && atoi(e) > 0)
		hello_ms = atoi(e);	/* tests only: not a setting */
	frame_arena_init(&arena, arena_buf, sizeof(arena_buf));
}

int
conn_count(void)
{
	return nconns;
}

/* conn_reserve()'s slow half: a buffer to reset or to grow. */
int
conn_reserve_slow(struct conn *c, size_t n)
{
	uint8_t *p;
	size_t cap;

	if (c->out_off > 0 && c->out_off == c->out_len && c->passfd < 0) {
		c->out_off = c->out_len = 0;
	}
	if (c->out_cap - c->out_len >= n)
		return 0;
	cap = c->out_cap ? c->out_cap : 4096;
	while (cap - c->out_len < n)
		cap *= 2;
	if ((p = realloc(c->out, cap)) == NULL)
		return -ENOMEM;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

void
conn_close(struct conn *c)
{
	if (c->waiting)
		ckpt_cancel(c);
	/* At a stop the clients live on with their leases: keep them. */
	if (!server.stopping)
		heap_conn_gone(server.heap, c);
	/* Its process will not send this session's requests again, unless
	 * we are stopping: then they come to the next daemon. */
	if (c->session != 0) {
		server.heap->sessions[c->session - 1] = NULL;
		/* A reply not yet written may be the one the client comes
		 * back for: the reaper frees the session once it is gone. */
		if (!server.stopping && c->out_off >= c->out_len)
			journal_session_close(server.heap, c->session - 1);
	}
	TAILQ_REMOVE(&conns, c, link);
	nconns--;
	event_free(c->rev);
	event_free(c->wev);
	if (c->hev != NULL)
		event_free(c->hev);
	if (c->passfd >= 0)
		close(c->passfd);
	if (c->passfd2 >= 0)
		close(c->passfd2);
	close(c->fd);
	log_debug("client pid %d (%s) gone after %" PRIu64 " requests",
	    (int)c->pid, c->name, c->requests);
	free(c->in);
	free(c->out);
	free(c);
	listen_resume();
}

/* Writes what is queued, the passed descriptor (if any) with its byte.
 * 0, or -1 when the connection was closed. */
int
conn_flush(struct conn *c)
{
	size_t end;
	long n;
	int pass, fds[2];

	while (c->out_off < c->out_len) {
		end = c->out_len;
		if (c->passfd >= 0 && c->out_off < c->passfd_at)
			end = c->passfd_at;
		pass = c->passfd >= 0 && c->out_off == c->passfd_at ?
		    c->passfd : -1;
		fds[0] = pass;
		fds[1] = c->passfd2;
		n = frame_sendmsg(c->fd, c->out + c->out_off, end - c->out_off,
		    fds, pass < 0 ? 0 : c->passfd2 < 0 ? 1 : 2, MSG_DONTWAIT);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			event_add(c->wev, NULL);
			return 0;
		}
		if (n < 0) {
			conn_close(c);
			return -1;
		}
		if (pass >= 0) {
			close(c->passfd);
			c->passfd = -1;
			if (c->passfd2 >= 0)
				close(c->passfd2);
			c->passfd2 = -1;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->closing) {
		conn_close(c);
		return -1;
	}
	return 0;
}

static void
conn_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (conn_flush(c) != 0)
		return;
	if (c->out_len < OUT_PAUSE && !c->waiting) {
		event_add(c->rev, NULL);
		conn_process(c);
	}
}

/* A connection that waited for a checkpoint goes on: its reply out, then
 * the requests that came meanwhile. */
void
conn_resume(struct conn *c)
{
	if (conn_flush(c) != 0)
		return;
	event_add(c->rev, NULL);
	conn_process(c);
}

void
conn_reply(struct conn *c, Aclheap__Reply *r)
{
	size_t n = protobuf_c_message_get_packed_size(&r->base);

	if (n > FRAME_MAX) {
		/* Cannot happen for replies we build; fail the request. */
		log_errx("reply of %zu bytes to pid %d over the frame cap",
		    n, (int)c->pid);
		r->body_case = ACLHEAP__REPLY__BODY__NOT_SET;
		r->error = EMSGSIZE;
		r->message = "reply too large";
		n = protobuf_c_message_get_packed_size(&r->base);
	}
	if (conn_reserve(c, n + FRAME_HDR) != 0) {
		c->closing = 1;
		return;
	}
	/* Packed in place: the size is known, no second sizing pass. */
	protobuf_c_message_pack(&r->base, c->out + c->out_len + FRAME_HDR);
	frame_put_len(c->out + c->out_len, (uint32_t)n);
	c->out_len += n + FRAME_HDR;
}

void
conn_error(struct conn *c, uint64_t id, int err, const char *fmt, ...)
{
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.id = id;
	r.error = err;
	r.message = msg;
	conn_reply(c, &r);
}

static void
hello_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	log_info("pid %d (uid %u) said no Hello within %d ms; closing",
	    (int)c->pid, (unsigned)c->uid, hello_ms);
	conn_error(c, 0, ETIMEDOUT, "no Hello within %d ms", hello_ms);
	c->closing = 1;
	/* A peer that does not read must not keep it open either. */
	if (conn_flush(c) == 0)
		conn_close(c);
}

/*
 * A connection for an admitted peer on socket fd: its buffers, its events
 * and its Hello timeout.  NULL (fd closed, reason logged) when it cannot
 * be set up.
 */
struct conn *
conn_new(int fd, pid_t pid, uid_t uid, gid_t gid)
{
	struct timeval tv = { hello_ms / 1000, (hello_ms % 1000) * 1000 };
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("new connection");
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->pid = pid;
	c->uid = uid;
	c->gid = gid;
	c->passfd = -1;
	c->passfd2 = -1;
	c->since = time(NULL);
	snprintf(c->name, sizeof(c->name), "?");
	c->rev = event_new(server.base, fd, EV_READ | EV_PERSIST, conn_read, c);
	c->wev = event_new(server.base, fd, EV_WRITE, conn_write, c);
	c->hev = evtimer_new(server.base, hello_timeout, c);
	if (c->rev == NULL || c->wev == NULL || c->hev == NULL ||
	    (c->in = malloc(IN_INIT)) == NULL) {
		log_warnx("new connection: out of memory");
		if (c->rev)
			event_free(c->rev);
		if (c->wev)
			event_free(c->wev);
		if (c->hev)
			event_free(c->hev);
		close(fd);
		free(c);
		return NULL;
	}
	c->in_cap = IN_INIT;
	TAILQ_INSERT_TAIL(&conns, c, link);
	nconns++;
	event_add(c->rev, NULL);
	event_add(c->hev, &tv);
	return c;
}

/* Handles every complete frame in the input buffer. */
void
conn_process(struct conn *c)
{
	struct quick_req qq;
	Aclheap__Request *q;
	size_t off = 0;
	uint32_t len;
	int rc;

	while (!c->waiting && !c->closing) {
		rc = frame_peek(c->in + off, c->in_len - off, &len);
		if (rc == 0)
			break;
		if (rc < 0) {
			log_info("pid %d sent a frame over %u bytes; closing",
			    (int)c->pid, FRAME_MAX);
			conn_error(c, 0, EMSGSIZE, "frame over %u bytes",
			    FRAME_MAX);
			c->closing = 1;
			break;
		}
		if (c->in_len - off < FRAME_HDR + len)
			break;
		if (c->hello && quick_decode(c->in + off + FRAME_HDR, len,
		    &qq)) {
			off += FRAME_HDR + len;
			request_quick(c, &qq);
			continue;
		}
		frame_arena_reset(&arena);
		q = frame_unpack_request(&arena, c->in + off + FRAME_HDR, len);
		off += FRAME_HDR + len;
		if (q == NULL) {
			log_debug("pid %d sent a malformed message", (int)c->pid);
			conn_error(c, 0, EPROTO, "malformed message");
			if (!c->hello)
				c->closing = 1;
			continue;
		}
		request_dispatch(c, q, len);
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (conn_flush(c) != 0)
		return;
	if (c->waiting || c->out_len >= OUT_PAUSE)
		event_del(c->rev);
}

static void
conn_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint32_t len;
	size_t want;
	ssize_t n;
	uint8_t *p;

	(void)what;
	want = c->in_len + 4096;
	if (frame_peek(c->in, c->in_len, &len) > 0 &&
	    FRAME_HDR + len > want)
		want = FRAME_HDR + len;
	if (want > FRAME_HDR + FRAME_MAX)
		want = FRAME_HDR + FRAME_MAX;
	if (want > c->in_cap) {
		if ((p = realloc(c->in, want)) == NULL) {
			conn_close(c);
			return;
		}
		c->in = p;
		c->in_cap = want;
	}
	n = recv(fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		conn_close(c);
		return;
	}
	if (n > 0)
		c->in_len += (size_t)n;
	conn_process(c);
}

/*
 * At a stop: every request already here (buffered, or in the socket) is
 * answered ESHUTDOWN, "not done", so its sender can safely send it again
 * to the next daemon instead of wondering whether it happened.
 */
static int
conn_refuse_pending(struct conn *c)
{
	Aclheap__Request *q;
	size_t off = 0;
	uint32_t len;
	ssize_t n;
	uint8_t *p;

	if (c->in_cap < FRAME_HDR + FRAME_MAX &&
	    (p = realloc(c->in, FRAME_HDR + FRAME_MAX)) != NULL) {
		c->in = p;
		c->in_cap = FRAME_HDR + FRAME_MAX;
	}
	while (c->in_len < c->in_cap && (n = recv(c->fd, c->in + c->in_len,
	    c->in_cap - c->in_len, MSG_DONTWAIT)) > 0)
		c->in_len += (size_t)n;
	while (frame_peek(c->in + off, c->in_len - off, &len) > 0 &&
	    c->in_len - off >= FRAME_HDR + len) {
		frame_arena_reset(&arena);
		q = frame_unpack_request(&arena, c->in + off + FRAME_HDR, len);
		off += FRAME_HDR + len;
		if (q != NULL)
			conn_error(c, q->id, ESHUTDOWN, "aclheapd is stopping; "
			    "not done");
	}
	c->in_len = 0;
	c->closing = 0;
	return conn_flush(c);	/* -1: it closed the connection itself */
}

/* At a stop: every connection answers what it has and is closed. */
void
conn_close_all(void)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&conns)) != NULL)
		if (conn_refuse_pending(c) == 0)
			conn_close(c);
}
