/* SPDX-License-Identifier: MIT */
/*
 * server.c: the socket side of aclheapd: listening, connections, framing,
 * and the dispatch of each request to heap.c and ckpt.c.
 *
 * Plain read events, no bufferevents: each wake-up reads what is there,
 * handles every complete frame, and answers them all with one write.  A
 * connection is freed in exactly one place, conn_close(), which also gives
 * back its leases and forgets any checkpoint it waits for.
 *
 * A peer costs nothing until it is admitted: its credentials (SO_PEERCRED)
 * are checked at accept, and one not on the allow list, or over its user's
 * cap on connections, gets one error reply and is closed there; one that
 * is admitted but says no Hello within HELLO_TIMEOUT_MS is closed too.  So
 * a flood of connections from anyone holds no descriptor for long, and
 * allowed users keep getting in.
 *
 * A request that must wait (Checkpoint, Dump) pauses its connection, so
 * replies always leave in request order.  A frame whose length is over the
 * cap gets one error reply and the connection is closed: the stream cannot
 * be resynchronised.  A frame that does not decode gets an error reply and
 * the connection goes on.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"

#define IN_INIT		4096
#define OUT_PAUSE	(1u << 20)	/* stop reading above this backlog */
/* How long an admitted connection may take to say Hello.  The library
 * sends it right after connect(); 5 s covers a loaded machine.  Tests
 * shorten it through ACLHEAPD_TEST_HELLO_MS, read by server_setup(). */
#define HELLO_TIMEOUT_MS	5000
#define ACCEPT_BATCH	64	/* accepts per wake-up: a flood drains fast */

struct conn_list conns = TAILQ_HEAD_INITIALIZER(conns);
struct server server;
static int nconns;
static struct event *accept_ev, *watchdog_ev, *reap_ev;
static int accept_paused;
static int conn_max;		/* what the descriptor limit allows, 0: any */
static int hello_ms = HELLO_TIMEOUT_MS;
static int saved_argc;
static char **saved_argv;
static uint8_t arena_buf[256 * 1024];
static struct frame_arena arena;

static void conn_read(evutil_socket_t, short, void *);

int
server_client_count(void)
{
	return nconns;
}

int
conn_count(void)
{
	return nconns;
}

/*
 * The listening socket: systemd's, if it passed one, else our own at the
 * configured path with the configured mode and group.  A live daemon on
 * the path is never displaced.
 */
int
server_listen(const struct config *c, int *activated)
{
	struct sockaddr_un sun;
	struct group *gr;
	char dir[sizeof(sun.sun_path)], *slash;
	int fd, probe;

	*activated = 0;
	if ((fd = notify_listen_fd()) >= 0) {
		*activated = 1;
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
			return -errno;
		return fd;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->socket_path);
	snprintf(dir, sizeof(dir), "%s", c->socket_path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		/* Our umask is 077; the folder must let the socket's group
		 * reach the 0660 socket inside. */
		if (mkdir(dir, 0755) == 0)
			(void)chmod(dir, 0755);
		else if (errno != EEXIST) {
			log_warn("socket folder %s", dir);
			return -errno;
		}
	}
	if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -errno;
	if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		log_errx("another aclheapd already listens on %s",
		    c->socket_path);
		return -EADDRINUSE;
	}
	close(probe);
	unlink(c->socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(c->socket_path, (mode_t)c->socket_mode) == -1)
		goto fail;
	if (c->socket_group != NULL) {
		if ((gr = getgrnam(c->socket_group)) == NULL) {
			log_errx("socket group %s does not exist",
			    c->socket_group);
			errno = ENOENT;
			goto fail;
		}
		if (chown(c->socket_path, (uid_t)-1, gr->gr_gid) == -1)
			goto fail;
	}
	if (listen(fd, 128) == -1)
		goto fail;
	return fd;
fail:
	log_warn("socket %s", c->socket_path);
	{
		int saved = errno;

		close(fd);
		return -saved;
	}
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
	TAILQ_REMOVE(&conns, c, link);
	nconns--;
	event_free(c->rev);
	event_free(c->wev);
	if (c->hev != NULL)
		event_free(c->hev);
	if (c->passfd >= 0)
		close(c->passfd);
	close(c->fd);
	log_debug("client pid %d (%s) gone after %" PRIu64 " requests",
	    (int)c->pid, c->name, c->requests);
	free(c->in);
	free(c->out);
	free(c);
	if (accept_paused && (conn_max == 0 || nconns < conn_max)) {
		accept_paused = 0;
		event_add(accept_ev, NULL);
		log_notice("accepting connections again");
	}
}

/* Stops accepting until a connection goes away; says so once. */
static void
accept_pause(const char *why)
{
	if (accept_paused)
		return;
	log_warnx("%d clients, %s: not accepting until one leaves", nconns,
	    why);
	accept_paused = 1;
	event_del(accept_ev);
}

/*
 * Connections may use the descriptors that are free when the loop starts,
 * less FD_RESERVE for the daemon's own work: a checkpoint opens two, a
 * dump one and one to pass it, each Hello passes a duplicate of the
 * segment's, and the lease reaper reads /proc.  Without the reserve, idle
 * clients could take the last descriptor and every checkpoint would fail.
 */
#define FD_RESERVE	16

static void
conn_limit_init(void)
{
	struct rlimit rl;
	struct dirent *e;
	DIR *d;
	int open_fds = -1;	/* the one opendir() holds */

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX)
		return;
	if ((d = opendir("/proc/self/fd")) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			open_fds++;
	closedir(d);
	conn_max = (int)rl.rlim_cur - open_fds - FD_RESERVE;
	if (conn_max < 1)
		conn_max = 1;
	log_debug("descriptor limit %d: up to %d clients", (int)rl.rlim_cur,
	    conn_max);
}

/* Writes what is queued, the passed descriptor (if any) with its byte.
 * 0, or -1 when the connection was closed. */
int
conn_flush(struct conn *c)
{
	size_t end;
	long n;
	int pass;

	while (c->out_off < c->out_len) {
		end = c->out_len;
		if (c->passfd >= 0 && c->out_off < c->passfd_at)
			end = c->passfd_at;
		pass = c->passfd >= 0 && c->out_off == c->passfd_at ?
		    c->passfd : -1;
		n = frame_sendmsg(c->fd, c->out + c->out_off, end - c->out_off,
		    pass, MSG_DONTWAIT);
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

static const char *
user_name(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);

	return pw != NULL ? pw->pw_name : "?";
}

/*
 * A refused peer's user name: one lookup a second per user at most, since
 * a flood from one user would otherwise read the password database at
 * every connection.
 */
static const char *
peer_name(uid_t uid)
{
	static char name[64];
	static uid_t last = (uid_t)-1;
	static time_t when;
	time_t now = time(NULL);

	if (uid != last || now != when) {
		snprintf(name, sizeof(name), "%s", user_name(uid));
		last = uid;
		when = now;
	}
	return name;
}

/*
 * Refusals at accept are logged, but at most REFUSE_LOG_MAX a second for
 * each reason: a flood must not fill the log (nor cost a write each), nor
 * hide the other reason's lines.  The next line logged says how many were
 * not.
 */
#define REFUSE_LOG_MAX	5

struct refuse_log {
	time_t sec;
	unsigned n, skipped;
};

static struct refuse_log refused_stranger, refused_cap;

static int
refuse_log_ok(struct refuse_log *l, char *more, size_t len)
{
	time_t now = time(NULL);

	if (now != l->sec) {
		l->sec = now;
		l->n = 0;
	}
	if (l->n >= REFUSE_LOG_MAX) {
		l->skipped++;
		return 0;
	}
	l->n++;
	more[0] = '\0';
	if (l->skipped > 0)
		snprintf(more, len, " (and %u more not logged)", l->skipped);
	l->skipped = 0;
	return 1;
}

/* One error reply, written if the socket takes it now, and the close. */
static void
refuse_peer(int fd, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
refuse_peer(int fd, int err, const char *fmt, ...)
{
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	uint8_t buf[FRAME_HDR + 600];
	char msg[512];
	va_list ap;
	long n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.error = err;
	r.message = msg;
	if ((n = frame_pack_reply(&r, buf, sizeof(buf))) > 0)
		(void)send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static int
conns_of(uid_t uid)
{
	struct conn *c;
	int n = 0;

	TAILQ_FOREACH(c, &conns, link)
		if (c->uid == uid)
			n++;
	return n;
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
 * A connection on an accepted socket: its peer's credentials, checked
 * here, then its events and its Hello timeout.  NULL (fd closed, reason
 * logged) when it is refused or cannot be set up.  The fuzzer calls this
 * with one end of a socketpair.
 */
struct conn *
server_conn_new(int fd)
{
	struct timeval tv = { hello_ms / 1000, (hello_ms % 1000) * 1000 };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c;
	char more[64];
	int have;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("new connection");
		close(fd);
		return NULL;
	}
	if (!config_allowed(server.cfg, cred.uid, cred.gid, cred.pid)) {
		if (refuse_log_ok(&refused_stranger, more, sizeof(more)))
			log_notice("refused pid %d: user %s (uid %u) is not on "
			    "the allow list%s", (int)cred.pid,
			    peer_name(cred.uid), (unsigned)cred.uid, more);
		refuse_peer(fd, EACCES, "user %s (uid %u) is not allowed by "
		    "aclheapd (see --allow-user, --allow-group)",
		    peer_name(cred.uid), (unsigned)cred.uid);
		return NULL;
	}
	if (server.cfg->max_per_user > 0 &&
	    (have = conns_of(cred.uid)) >= (int)server.cfg->max_per_user) {
		if (refuse_log_ok(&refused_cap, more, sizeof(more)))
			log_notice("refused pid %d: user %s (uid %u) has %d "
			    "connections, its cap (--max-clients-per-user)%s",
			    (int)cred.pid, peer_name(cred.uid),
			    (unsigned)cred.uid, have, more);
		refuse_peer(fd, EUSERS, "user %s (uid %u) has %d connections "
		    "to aclheapd, the most it allows one user "
		    "(--max-clients-per-user)", peer_name(cred.uid),
		    (unsigned)cred.uid, have);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("new connection");
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->passfd = -1;
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
	if (conn_max > 0 && nconns >= conn_max && accept_ev != NULL)
		accept_pause("all the descriptor limit (RLIMIT_NOFILE) allows");
	return c;
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	int fd, i;

	(void)what;
	(void)arg;
	for (i = 0; i < ACCEPT_BATCH && !accept_paused; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				accept_pause("out of file descriptors");
			else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		(void)server_conn_new(fd);
	}
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

static void
sig_cb(evutil_socket_t sig, short what, void *arg)
{
	struct config nc, *cfg = server.cfg;

	(void)what;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_notice("signal %d: stopping", (int)sig);
		notify_stopping();
		event_base_loopbreak(server.base);
		break;
	case SIGUSR1:
		log_info("SIGUSR1: checkpoint requested");
		ckpt_request(0, NULL, NULL);
		break;
	case SIGHUP:
		notify_reloading();
		log_reopen();	/* a rotated log file starts anew */
		config_defaults(&nc);
		if (config_parse_args(&nc, saved_argc, saved_argv) != 0) {
			log_errx("reload: config has errors; keeping the "
			    "running settings");
			config_free(&nc);
			notify_ready();
			break;
		}
		cfg->log_level = nc.log_level;
		log_set_level(nc.log_level);
		memcpy(cfg->allow_uid, nc.allow_uid, sizeof(nc.allow_uid));
		cfg->nallow_uid = nc.nallow_uid;
		memcpy(cfg->allow_gid, nc.allow_gid, sizeof(nc.allow_gid));
		cfg->nallow_gid = nc.nallow_gid;
		cfg->max_per_user = nc.max_per_user;
		if (cfg->checkpoint_interval != nc.checkpoint_interval) {
			cfg->checkpoint_interval = nc.checkpoint_interval;
			ckpt_set_interval(nc.checkpoint_interval);
		}
		if ((nc.base_set && nc.base != cfg->base) ||
		    (nc.size_set && nc.size != cfg->size) || strcmp(nc.socket_path ? nc.socket_path : cfg->socket_path,
		    cfg->socket_path) != 0)
			log_warnx("reload: base, size and socket change only "
			    "at restart");
		log_notice("reloaded %s: log level %d, %d users and %d groups "
		    "allowed, checkpoint every %us", cfg->config_path,
		    cfg->log_level, cfg->nallow_uid, cfg->nallow_gid,
		    cfg->checkpoint_interval);
		config_free(&nc);
		notify_ready();
		break;
	}
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct heap *heap = server.heap;
	uint32_t n;

	(void)fd;
	(void)what;
	(void)arg;
	if ((n = heap_reap_leases(heap)) > 0)
		log_info("returned %u leases of processes that are gone", n);
	/* Slabs that clients emptied with local frees go back to the pool
	 * (and their memory to the system) without waiting for a shortage. */
	if ((n = (uint32_t)heap_reclaim_sweep(heap)) > 0)
		log_debug("reclaimed %u empty slabs", n);
	if ((n = (uint32_t)heap_decay(heap, 0)) > 0)
		log_debug("gave back the memory of %u slabs free for %u s", n,
		    heap->decay);
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	notify_watchdog();
}

/*
 * What serving needs besides sockets and signals: the settings, the heap,
 * the loop, the decoding arena and the checkpointer.  server_run() calls
 * it; so does the dispatch fuzzer, which then feeds connections made with
 * server_conn_new() and runs the loop itself.
 */
int
server_setup(struct config *c, struct heap *h, struct event_base *eb)
{
	const char *e = getenv("ACLHEAPD_TEST_HELLO_MS");

	server.cfg = c;
	server.heap = h;
	server.base = eb;
	server.started = time(NULL);
	if (e != NULL && atoi(e) > 0)
		hello_ms = atoi(e);	/* tests only: not a setting */
	frame_arena_init(&arena, arena_buf, sizeof(arena_buf));
	return ckpt_init(h, c, eb);
}

/*
 * Runs the loop until TERM or INT, then writes the final checkpoint.
 * Returns the exit status.
 */
int
server_run(struct config *c, struct heap *h, int lfd, int argc, char **argv)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	struct event *sev[4];
	struct event_base *eb;
	sigset_t blocked;
	struct ckpt_result res;
	struct conn *cn;
	uint64_t wd;
	size_t i;
	int status = 0;

	saved_argc = argc;
	saved_argv = argv;
	signal(SIGPIPE, SIG_IGN);
	if ((eb = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (server_setup(c, h, eb) != 0)
		fatalx("cannot set up checkpoints");
	sigemptyset(&blocked);
	for (i = 0; i < 4; i++) {
		sev[i] = evsignal_new(server.base, sigs[i], sig_cb, NULL);
		if (sev[i] == NULL || evsignal_add(sev[i], NULL) != 0)
			fatalx("cannot watch signal %d", sigs[i]);
		sigaddset(&blocked, sigs[i]);
	}
	/* main() blocked them until now; any that came are delivered. */
	sigprocmask(SIG_UNBLOCK, &blocked, NULL);
	accept_ev = event_new(server.base, lfd, EV_READ | EV_PERSIST, accept_cb, NULL);
	if (accept_ev == NULL || event_add(accept_ev, NULL) != 0)
		fatalx("cannot watch the socket");
	{
		struct timeval tv = { 2, 0 };

		reap_ev = event_new(server.base, -1, EV_PERSIST, reap_cb, NULL);
		if (reap_ev == NULL || event_add(reap_ev, &tv) != 0)
			fatalx("cannot set up the lease reaper");
	}
	conn_limit_init();
	if ((wd = notify_watchdog_usec()) > 0) {
		struct timeval tv = { (time_t)(wd / 1000000),
		    (suseconds_t)(wd % 1000000) };

		watchdog_ev = event_new(server.base, -1, EV_PERSIST, watchdog_cb, NULL);
		if (watchdog_ev != NULL)
			event_add(watchdog_ev, &tv);
		notify_watchdog();
	}
	notify_ready();
	log_notice("serving heap 0x%" PRIxPTR "+%" PRIu64 " on %s", h->seg.base,
	    h->seg.size, c->socket_path);
	event_base_dispatch(server.base);

	/* Graceful stop: no new requests, then the final checkpoint. */
	event_del(accept_ev);
	server.stopping = 1;
	while ((cn = TAILQ_FIRST(&conns)) != NULL)
		if (conn_refuse_pending(cn) == 0)
			conn_close(cn);
	if (ckpt_sync(&res) != 0) {
		log_errx("final checkpoint failed: %s", res.message);
		status = 1;
	} else
		log_notice("final checkpoint %" PRIu64 " (%s): %" PRIu64
		    " bytes written", res.generation, ckpt_kind_name(res.kind),
		    res.bytes);
	for (i = 0; i < 4; i++)
		event_free(sev[i]);
	event_free(accept_ev);
	if (watchdog_ev != NULL)
		event_free(watchdog_ev);
	event_free(reap_ev);
	return status;
}
