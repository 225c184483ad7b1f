/* SPDX-License-Identifier: MIT */
/*
 * conn.c: the client's connection to aclheapd, attaching (Hello, the
 * segment's descriptor, the fixed mapping), reconnecting after a daemon
 * restart, and the per-thread error text.
 *
 * Reconnecting checks the heap's identity: the same heap may come back in a
 * new shared-memory object (a restart from the image), which is mapped over
 * our own range; a different heap is refused (EPROTO), never mapped.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "proto/request.h"
#include "proto/sockpath.h"

struct shm_seg conn_seg = { .fd = -1 };
_Atomic int conn_mapped;
_Atomic uint64_t conn_gen = 1;	/* bumped by fork and remap: caches die */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int conn_fd = -1;
static pid_t conn_pid;
static char sock_path[108];
static uint8_t identity[16];
static dev_t seg_dev;
static ino_t seg_ino;
static uint64_t next_id = 1;
/* Our session with the daemon (daemon/journal.h): its number + 1 and
 * token, taken up again after a reconnect, and the last seq we sent. */
static uint32_t sess_id;
static uint64_t sess_nonce, sess_seq;
static int sess_lost;	/* the last Hello gave a new session, same heap */

/* The thread's last error lives in its state block (client/fast.c); with
 * no memory for one, the errno the caller sets is all there is. */
void
conn_seterr(const char *fmt, ...)
{
	struct fast_cache *t;
	va_list ap;
	int saved = errno;

	if ((t = fast_thread()) != NULL) {
		va_start(ap, fmt);
		vsnprintf(t->lasterr, sizeof(t->lasterr), fmt, ap);
		va_end(ap);
	}
	errno = saved;
}

const char *
conn_lasterr(void)
{
	return fast_tcp->lasterr;
}

void
conn_clearerr(void)
{
	if (fast_tcp != &fast_empty)
		fast_tcp->lasterr[0] = '\0';
}

/* The child of fork() keeps the mapping but must not share our socket. */
static void
atfork_child(void)
{
	pthread_mutex_init(&lock, NULL);
	atomic_fetch_add(&conn_gen, 1);
	/* The parent's session is the parent's. */
	sess_id = 0;
	sess_nonce = 0;
	sess_seq = 0;
	if (conn_fd >= 0)
		close(conn_fd);
	conn_fd = -1;
}

static void
init_once(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}

/* Our own daemon's socket if it is there, else the system's: the daemon
 * computes its default with the same function (proto/sockpath.c). */
int
conn_default_socket(char *buf, size_t len)
{
	int rc;

	if ((rc = sockpath_client(buf, len, geteuid(),
	    getenv("XDG_RUNTIME_DIR"))) != 0)
		conn_seterr("the default socket path is longer than %zu "
		    "bytes ($XDG_RUNTIME_DIR is too long)", len - 1);
	return rc;
}

static int
resolve(const char *path, char *buf, size_t len)
{
	const char *e = getenv("ACLHEAP_SOCKET");

	if (path == NULL && e != NULL && *e != '\0')
		path = e;
	if (path == NULL)
		return conn_default_socket(buf, len);
	if (strlen(path) >= len) {
		conn_seterr("socket path '%s' is too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(buf, len, "%s", path);
	return 0;
}

static int
sock_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		if (saved == EACCES || saved == EPERM)
			conn_seterr("cannot connect to aclheapd at %s: %s (the "
			    "socket is there; ask to be added to its group or "
			    "allow list)", path, strerror(saved));
		else
			conn_seterr("cannot connect to aclheapd at %s: %s (is "
			    "the daemon running? start it with 'aclheapd' or "
			    "set ACLHEAP_SOCKET)", path, strerror(saved));
		return -saved;
	}
	return fd;
}

/* One request and its reply on the open socket, the descriptors it passes
 * in fds[0 .. nfds-1] (set to -1 by the caller).  Lock held. */
static int
roundtrip(Aclheap__Request *q, Aclheap__Reply **rp, struct frame_arena *a,
    int *fds, int nfds, int *sent)
{
	static uint8_t buf[FRAME_HDR + FRAME_MAX];	/* under the lock */
	Aclheap__Reply *r;
	uint32_t len;
	long n;
	int rc;

	q->id = next_id++;
	if ((n = frame_pack_request(q, buf, sizeof(buf))) < 0) {
		conn_seterr("request too large for one frame");
		return -EMSGSIZE;
	}
	*sent = 0;
	if ((rc = frame_send(conn_fd, buf, (size_t)n, -1)) != 0) {
		/* A daemon that closed at once (it refused us at accept, or
		 * we took too long to say Hello) may have said why first: an
		 * error reply with id 0, waiting in the socket.  Read it. */
		if (rc != -EPIPE || frame_recv_fds(conn_fd, buf,
		    sizeof(buf), &len, fds, nfds) != 0)
			return rc == -EPIPE ? -ECONNRESET : rc;
		frame_arena_reset(a);
		if ((r = frame_unpack_reply(a, buf, len)) == NULL ||
		    r->id != 0 || r->error == 0)
			return -ECONNRESET;
		*rp = r;
		return 0;
	}
	*sent = 1;
	if ((rc = frame_recv_fds(conn_fd, buf, sizeof(buf), &len, fds,
	    nfds)) != 0)
		return rc;
	frame_arena_reset(a);
	if ((r = frame_unpack_reply(a, buf, len)) == NULL) {
		conn_seterr("aclheapd sent a reply that does not decode");
		return -EPROTO;
	}
	if (r->id != q->id && r->error == 0) {
		conn_seterr("reply %llu to request %llu",
		    (unsigned long long)r->id, (unsigned long long)q->id);
		return -EPROTO;
	}
	conn_shape();
	*rp = r;
	return 0;
}

/*
 * The heap may have grown (or shrunk) since we last looked: the daemon
 * says how many slabs are in use in the superblock, which only it writes
 * (read-only here, shm.h), and every slab up to the maximum is mapped
 * already.  Called after each reply, so a thread sees growth at its next
 * request, and by the slow paths of the calls that look a block up (a
 * block another process made in the new space); the fast path reads
 * conn_seg.nslabs without the lock.  1 if the count changed.
 */
int
conn_shape(void)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	uint64_t n;
	int changed = 0;

	if (!conn_mapped || __atomic_load_n(&conn_seg.sb->nslabs,
	    __ATOMIC_ACQUIRE) == __atomic_load_n(&conn_seg.nslabs,
	    __ATOMIC_RELAXED))
		return 0;
	/* Read and stored under one lock, so that a thread holding an
	 * older count never stores it over a newer one. */
	pthread_mutex_lock(&mu);
	n = __atomic_load_n(&conn_seg.sb->nslabs, __ATOMIC_ACQUIRE);
	if (n != conn_seg.nslabs && n <= conn_seg.nslabs_max) {
		__atomic_store_n(&conn_seg.size, conn_seg.sb->size,
		    __ATOMIC_RELAXED);
		__atomic_store_n(&conn_seg.nslabs, n, __ATOMIC_RELEASE);
		changed = 1;
	}
	pthread_mutex_unlock(&mu);
	return changed;
}

static void
drop(void)
{
	if (conn_fd >= 0)
		close(conn_fd);
	conn_fd = -1;
}

/*
 * Connects and says Hello; maps the segment the first time, checks it is
 * the same heap every later time.  Lock held.
 */
static int
hello(const char *path)
{
	uint8_t abuf[4096];
	struct frame_arena a;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Hello h = ACLHEAP__HELLO__INIT;
	Aclheap__Reply *r;
	Aclheap__HelloReply *hr;
	struct stat st;
	char err[512];
	int fd, fds[2] = { -1, -1 }, sfd, mfd, rc, sent, same_object = 0;

	if ((fd = sock_connect(path)) < 0)
		return fd;
	conn_fd = fd;
	conn_pid = getpid();
	h.version = PROTOCOL_VERSION;
	h.pid = (uint32_t)getpid();
	h.name = program_invocation_short_name;
	h.session = sess_id;
	h.nonce = sess_nonce;
	q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
	q.hello = &h;
	frame_arena_init(&a, abuf, sizeof(abuf));
	rc = roundtrip(&q, &r, &a, fds, 2, &sent);
	sfd = fds[0];	/* the segment, read-write */
	mfd = fds[1];	/* its meta object, read-only (shm.h) */
	if (rc != 0) {
		if (rc == -ECONNRESET)
			conn_seterr("aclheapd at %s closed the connection at "
			    "Hello", path);
		goto fail;
	}
	if (r->error != 0) {
		conn_seterr("aclheapd at %s refused: %s", path,
		    r->message ? r->message : strerror(r->error));
		rc = -r->error;
		goto fail;
	}
	if (r->body_case != ACLHEAP__REPLY__BODY_HELLO || sfd < 0 ||
	    mfd < 0 || r->hello->identity.len != 16 ||
	    fstat(sfd, &st) == -1) {
		conn_seterr("aclheapd at %s sent a malformed Hello reply",
		    path);
		rc = -EPROTO;
		goto fail;
	}
	hr = r->hello;
	if ((uint64_t)st.st_size != hr->max_size) {
		/* Mapping past the object's end would fault on touch. */
		conn_seterr("segment from %s is %lld bytes, the heap's maximum "
		    "%llu", path, (long long)st.st_size,
		    (unsigned long long)hr->max_size);
		rc = -EPROTO;
		goto fail;
	}
	if (!conn_mapped) {
		if ((rc = seg_map_max(&conn_seg, sfd, hr->heap_base, hr->size,
		    hr->max_size, err, sizeof(err))) != 0) {
			conn_seterr("%s", err);
			goto fail;
		}
		sfd = -1;	/* the mapping keeps the object */
		close(conn_seg.fd);
		conn_seg.fd = -1;
		if ((rc = seg_map_meta(&conn_seg, mfd, 0, err,
		    sizeof(err))) != 0) {
			conn_seterr("%s", err);
			seg_unmap(&conn_seg);
			goto fail;
		}
		close(mfd);	/* the mapping keeps it too */
		mfd = conn_seg.mfd = -1;
		memcpy(identity, hr->identity.data, 16);
		if (memcmp(conn_seg.sb->identity, identity, 16) != 0) {
			conn_seterr("segment from %s does not carry the heap's "
			    "identity", path);
			seg_unmap(&conn_seg);
			rc = -EPROTO;
			goto fail;
		}
		seg_dev = st.st_dev;
		seg_ino = st.st_ino;
		conn_mapped = 1;
	} else {
		same_object = st.st_dev == seg_dev && st.st_ino == seg_ino;
		if (memcmp(identity, hr->identity.data, 16) != 0 ||
		    hr->heap_base != conn_seg.base ||
		    hr->max_size != conn_seg.max) {
			conn_seterr("aclheapd at %s now serves a different heap "
			    "than the one mapped at 0x%lx; refusing to remap",
			    path, (unsigned long)conn_seg.base);
			rc = -EPROTO;
			goto fail;
		}
		if (st.st_dev != seg_dev || st.st_ino != seg_ino) {
			/* Same heap, new object: replace our own range. */
			if ((rc = seg_remap(&conn_seg, sfd, mfd, err,
			    sizeof(err))) != 0) {
				conn_seterr("%s", err);
				goto fail;
			}
			conn_seg.fd = -1;
			conn_seg.mfd = -1;
			atomic_fetch_add(&conn_gen, 1);
			seg_dev = st.st_dev;
			seg_ino = st.st_ino;
		}
	}
	if (sfd >= 0)
		close(sfd);
	if (mfd >= 0)
		close(mfd);
	/* A session we had and did not get back, in the same object: the
	 * daemon may have done our pending request and forgotten it. */
	sess_lost = sess_id != 0 && same_object &&
	    (hr->session != sess_id || hr->nonce != sess_nonce);
	sess_id = hr->session;
	sess_nonce = hr->nonce;
	conn_shape();
	return 0;
fail:
	if (sfd >= 0)
		close(sfd);
	if (mfd >= 0)
		close(mfd);
	drop();
	return rc;
}

static int reconnect_budget(long *);

int
conn_attach(const char *path)
{
	char p[sizeof(sock_path)];
	long ms;
	int rc;

	pthread_once(&once, init_once);
	/* A setting that is wrong is said at once, not found out at the
	 * first restart of the daemon. */
	if ((rc = reconnect_budget(&ms)) != 0)
		return rc;
	if ((rc = resolve(path, p, sizeof(p))) != 0)
		return rc;
	pthread_mutex_lock(&lock);
	if (conn_mapped && conn_fd >= 0 && conn_pid == getpid()) {
		rc = strcmp(p, sock_path) == 0 ? 0 : -EISCONN;
		if (rc != 0)
			conn_seterr("already attached to %s", sock_path);
		pthread_mutex_unlock(&lock);
		return rc;
	}
	if (conn_mapped && strcmp(p, sock_path) != 0 && path != NULL) {
		pthread_mutex_unlock(&lock);
		conn_seterr("already attached to %s", sock_path);
		return -EISCONN;
	}
	if (!conn_mapped)
		snprintf(sock_path, sizeof(sock_path), "%s", p);
	drop();
	rc = hello(sock_path);
	pthread_mutex_unlock(&lock);
	return rc;
}

void
conn_detach(void)
{
	pthread_mutex_lock(&lock);
	drop();
	if (conn_mapped) {
		conn_mapped = 0;
		atomic_fetch_add(&conn_gen, 1);
		seg_unmap(&conn_seg);
	}
	sock_path[0] = '\0';
	sess_id = 0;	/* the daemon ends it with the connection */
	sess_nonce = 0;
	pthread_mutex_unlock(&lock);
}

/* $ACLHEAP_RECONNECT_TIMEOUT in ms (5 s unset): 0, or -EINVAL with the
 * thread's last error saying what is wrong with it. */
static int
reconnect_budget(long *ms)
{
	const char *e = getenv("ACLHEAP_RECONNECT_TIMEOUT");
	char *end;
	double v;

	*ms = 5000;
	if (e == NULL || *e == '\0')
		return 0;
	errno = 0;
	v = strtod(e, &end);
	if (end == e || *end != '\0' || errno != 0 || !(v >= 0) ||
	    v > 86400) {
		conn_seterr("ACLHEAP_RECONNECT_TIMEOUT='%s' is not a number of "
		    "seconds from 0 to 86400", e);
		return -EINVAL;
	}
	*ms = (long)(v * 1000);
	return 0;
}

static long
reconnect_budget_ms(void)
{
	long ms;

	(void)reconnect_budget(&ms);	/* checked at attach */
	return ms;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Whether a request may be sent again when the daemon went away after
 * getting it: its row in the table of kinds (proto/request.h) says.  A
 * kind that may or may not have happened (an Alloc, a Free, a RootCas...)
 * is not: sending it again could free someone else's new block, so the
 * caller gets ECONNRESET instead.
 */
static int
resendable(const Aclheap__Request *q)
{
	const struct request_kind *k = request_kind((int)q->body_case);

	return k == NULL || k->retry == REQUEST_RESEND ||
	    (k->retry == REQUEST_ONCE && q->seq != 0);
}

/* A Free or Realloc the daemon answers EAGAIN: it could not take a
 * block's slab from its owner this instant (daemon/alloc.c's gate). */
static int
gated(const Aclheap__Request *q)
{
	return q->body_case == ACLHEAP__REQUEST__BODY_FREE ||
	    q->body_case == ACLHEAP__REQUEST__BODY_REALLOC;
}

/* A changing request gets its seq once, in the first session it is sent
 * in; a resend keeps it (a new session takes any seq as new). */
static void
number(Aclheap__Request *q)
{
	const struct request_kind *k = request_kind((int)q->body_case);

	if (q->seq == 0 && sess_id != 0 && k != NULL &&
	    k->retry == REQUEST_ONCE)
		q->seq = ++sess_seq;
}

/*
 * Sends a request and returns its reply.  Reconnects when the socket is
 * gone (daemon restarted, or we are a fork child), waiting for the daemon
 * up to the reconnect budget.  0 or a negative errno (the reply's own error
 * included, with its message as the thread's last error).
 */
int
conn_request(Aclheap__Request *q, Aclheap__Reply **rp, struct frame_arena *a,
    int *fdp)
{
	return conn_request_flags(q, rp, a, fdp, 0);
}

int
conn_request_flags(Aclheap__Request *q, Aclheap__Reply **rp,
    struct frame_arena *a, int *fdp, int flags)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	struct timespec brief = { 0, 1000 * 1000 };
	int busy = 0;
	long deadline = -1;
	int rc, sent = 0;

	pthread_once(&once, init_once);
	pthread_mutex_lock(&lock);
	if (conn_pid != getpid())
		drop();
	q->seq = 0;
	for (;;) {
		if (conn_fd < 0) {
			if (sock_path[0] == '\0' && resolve(NULL, sock_path,
			    sizeof(sock_path)) != 0) {
				rc = -ENAMETOOLONG;
				break;
			}
			rc = hello(sock_path);
			if (rc == 0 && sent && q->seq != 0 && sess_lost) {
				conn_seterr("aclheapd at %s went away while "
				    "handling %s and did not take this "
				    "process's session up again; it may or may "
				    "not have been done", sock_path,
				    frame_body_name(q));
				rc = -ECONNRESET;
				break;
			}
		} else
			rc = 0;
		if (rc == 0) {
			number(q);
			rc = roundtrip(q, rp, a, fdp, fdp != NULL, &sent);
			if (rc == 0 && (*rp)->error == EAGAIN &&
			    gated(q) && busy++ < 200) {
				/* A slab's owner was claiming while the daemon
				 * freed a block of it: a new request, soon. */
				q->seq = 0;
				nanosleep(&brief, NULL);
				continue;
			}
			if (rc == 0 && (*rp)->error == ESHUTDOWN) {
				/* The daemon is stopping and did not do it:
				 * safe to send again to the next one. */
				rc = -ECONNRESET;
				sent = 0;
			}
			if (rc == 0)
				break;
			drop();
			if (sent && !resendable(q)) {
				conn_seterr("aclheapd at %s went away while "
				    "handling %s; it may or may not have been "
				    "done", sock_path, frame_body_name(q));
				rc = -ECONNRESET;
				break;
			}
		}
		/* Only a daemon that is away is worth waiting for. */
		if (rc != -ECONNRESET && rc != -ECONNREFUSED && rc != -ENOENT &&
		    rc != -EPIPE && rc != -ESHUTDOWN)
			break;
		if (!conn_mapped || (flags & CONN_NOWAIT))
			break;	/* first attach, or asked not to wait */
		if (deadline < 0)
			deadline = now_ms() + reconnect_budget_ms();
		if (now_ms() >= deadline) {
			conn_seterr("aclheapd at %s did not come back within "
			    "%.1f s", sock_path, reconnect_budget_ms() / 1000.0);
			rc = -ETIMEDOUT;
			break;
		}
		nanosleep(&pause, NULL);
	}
	pthread_mutex_unlock(&lock);
	if (rc == 0 && (*rp)->error != 0) {
		conn_seterr("%s", (*rp)->message != NULL && (*rp)->message[0] ?
		    (*rp)->message : strerror((*rp)->error));
		rc = -(*rp)->error;
	}
	return rc;
}

/*
 * One request on behalf of the API: attaches first if needed, and checks
 * that the reply carries the body `want` (ACLHEAP__REPLY__BODY_OK for
 * requests that answer with nothing).  The reply lives in the calling
 * thread's arena (struct fast_cache) until its next call.  0 or a
 * negative errno, with the thread's last error set (-ENOMEM without one:
 * no memory for the thread's state).
 */
int
conn_call(Aclheap__Request *q, Aclheap__Reply__BodyCase want,
    Aclheap__Reply **rp, int flags)
{
	struct frame_arena a;
	struct fast_cache *t;
	int rc;

	if (!conn_mapped && (rc = conn_attach(NULL)) != 0)
		return rc;
	if ((t = fast_thread()) == NULL)
		return -ENOMEM;
	frame_arena_init(&a, t->reply, FAST_REPLY_BYTES);
	if ((rc = conn_request_flags(q, rp, &a, NULL, flags)) != 0)
		return rc;
	if ((*rp)->body_case != want) {
		conn_seterr("aclheapd answered %s with the wrong reply",
		    frame_body_name(q));
		return -EPROTO;
	}
	return 0;
}

/* The identity of the heap mapped here: every reconnect checked it is the
 * daemon's, so it needs no round trip.  0, or -ENOTCONN when detached. */
int
conn_identity(uint8_t out[16])
{
	int rc = 0;

	pthread_mutex_lock(&lock);
	if (conn_mapped)
		memcpy(out, identity, sizeof(identity));
	else {
		conn_seterr("not attached to a heap");
		rc = -ENOTCONN;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}
