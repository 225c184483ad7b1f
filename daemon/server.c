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
#define BLOCKS_PAGE	1500
/* How long an admitted connection may take to say Hello.  The library
 * sends it right after connect(); 5 s covers a loaded machine.  Tests
 * shorten it through ACLHEAPD_TEST_HELLO_MS, read by server_setup(). */
#define HELLO_TIMEOUT_MS	5000
#define ACCEPT_BATCH	64	/* accepts per wake-up: a flood drains fast */
/* A Blocks cursor is slab << 12 | block, so a page can end inside a slab:
 * a slab of 16-byte blocks holds more live blocks than one page. */
#define BLOCKS_CURSOR_SHIFT	12
_Static_assert(SHM_MAX_BLOCKS == 1u << BLOCKS_CURSOR_SHIFT,
    "a Blocks cursor must be able to name every block of a slab");

struct conn {
	int fd;
	struct event *rev, *wev;
	struct event *hev;		/* Hello timeout, NULL once said */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	int passfd;			/* sent with the byte at passfd_at */
	size_t passfd_at;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int hello, privileged, closing, waiting;
	uint64_t wait_id;
	char name[32];
	uint64_t requests;
	time_t since;
	TAILQ_ENTRY(conn) link;
};

static TAILQ_HEAD(, conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static int nconns;
static struct event_base *base;
static struct event *accept_ev, *watchdog_ev, *reap_ev;
static struct config *cfg;
static struct heap *heap;
static time_t started;
static int accept_paused;
static int conn_max;		/* what the descriptor limit allows, 0: any */
static int hello_ms = HELLO_TIMEOUT_MS;
static int saved_argc;
static char **saved_argv;
static uint8_t arena_buf[256 * 1024];
static struct frame_arena arena;

static void conn_read(evutil_socket_t, short, void *);
static void conn_process(struct conn *);

int
server_client_count(void)
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

static int
out_reserve(struct conn *c, size_t n)
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

static int stopping;

static void
conn_close(struct conn *c)
{
	if (c->waiting)
		ckpt_cancel(c);
	/* At a stop the clients live on with their leases: keep them. */
	if (!stopping)
		heap_conn_gone(heap, c);
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
static int
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

static void
reply_send(struct conn *c, Aclheap__Reply *r)
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
	if (out_reserve(c, n + FRAME_HDR) != 0) {
		c->closing = 1;
		return;
	}
	/* Packed in place: the size is known, no second sizing pass. */
	protobuf_c_message_pack(&r->base, c->out + c->out_len + FRAME_HDR);
	frame_put_len(c->out + c->out_len, (uint32_t)n);
	c->out_len += n + FRAME_HDR;
}

static void
reply_error(struct conn *c, uint64_t id, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reply_error(struct conn *c, uint64_t id, int err, const char *fmt, ...)
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
	reply_send(c, &r);
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
	reply_error(c, 0, ETIMEDOUT, "no Hello within %d ms", hello_ms);
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
	if (!config_allowed(cfg, cred.uid, cred.gid, cred.pid)) {
		if (refuse_log_ok(&refused_stranger, more, sizeof(more)))
			log_notice("refused pid %d: user %s (uid %u) is not on "
			    "the allow list%s", (int)cred.pid,
			    peer_name(cred.uid), (unsigned)cred.uid, more);
		refuse_peer(fd, EACCES, "user %s (uid %u) is not allowed by "
		    "aclheapd (see --allow-user, --allow-group)",
		    peer_name(cred.uid), (unsigned)cred.uid);
		return NULL;
	}
	if (cfg->max_per_user > 0 &&
	    (have = conns_of(cred.uid)) >= (int)cfg->max_per_user) {
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
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read, c);
	c->wev = event_new(base, fd, EV_WRITE, conn_write, c);
	c->hev = evtimer_new(base, hello_timeout, c);
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

static void
do_hello(struct conn *c, uint64_t id, const Aclheap__Hello *m)
{
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	Aclheap__HelloReply hr = ACLHEAP__HELLO_REPLY__INIT;
	struct shm_seg *seg = &heap->seg;
	uint32_t n;

	if (m->version != PROTOCOL_VERSION) {
		reply_error(c, id, EPROTO, "client speaks protocol %u, aclheapd "
		    "speaks %u", m->version, PROTOCOL_VERSION);
		c->closing = 1;
		return;
	}
	/* The allow list was checked at accept (server_conn_new()). */
	if ((c->passfd = dup(seg->fd)) == -1) {
		reply_error(c, id, EMFILE, "aclheapd is out of descriptors");
		c->closing = 1;
		return;
	}
	c->passfd_at = c->out_len;
	c->hello = 1;
	event_free(c->hev);
	c->hev = NULL;
	c->privileged = c->uid == 0 || c->uid == geteuid();
	if (m->name != NULL && m->name[0] != '\0')
		snprintf(c->name, sizeof(c->name), "%s", m->name);
	n = heap_conn_adopt(heap, c, c->pid);
	if (n > 0)
		log_info("pid %d reconnected with %u leases", (int)c->pid, n);
	hr.version = PROTOCOL_VERSION;
	hr.heap_base = seg->base;
	hr.size = seg->size;
	hr.identity.data = heap->identity;
	hr.identity.len = 16;
	hr.layout = SHM_VERSION;
	hr.epoch = atomic_load(&seg->sb->epoch);
	hr.data_start = seg->data;
	hr.privileged = (uint32_t)c->privileged;
	r.id = id;
	r.body_case = ACLHEAP__REPLY__BODY_HELLO;
	r.hello = &hr;
	reply_send(c, &r);
	log_debug("hello from pid %d (%s), uid %u", (int)c->pid, c->name,
	    (unsigned)c->uid);
}

static void
fill_stats(Aclheap__StatsReply *s, Aclheap__ClassStats *cs,
    Aclheap__ClassStats **csp)
{
	static struct shm_stats st;
	const struct ckpt_result *lc = ckpt_last();
	struct shm_seg *seg = &heap->seg;
	static char img[4096];
	int i;

	shm_stats(&heap->seg, &st);
	image_path(cfg, img, sizeof(img), "");
	s->version = PACKAGE_VERSION;
	s->heap_base = seg->base;
	s->size = seg->size;
	s->data_start = seg->data;
	s->slabs_total = seg->nslabs;
	s->slabs_free = seg->nslabs - st.slabs_used;
	s->bytes_in_use = st.slabs_used << SHM_SLAB_SHIFT;
	s->blocks_in_use = st.blocks;
	s->bytes_requested = st.req;
	s->large_blocks = st.large_blocks;
	s->large_bytes = st.large_bytes;
	s->roots = st.roots;
	s->clients = (uint64_t)nconns;
	s->uptime_s = (uint64_t)(time(NULL) - started);
	s->ckpt_time = lc->time;
	s->ckpt_duration_us = lc->duration_us;
	s->ckpt_bytes = lc->bytes;
	s->ckpt_kind = lc->time != 0 && lc->why[0] != '\0' ?
	    (char *)ckpt_kind_name(lc->kind) : "";
	s->ckpt_reason = (char *)lc->why;
	s->ckpt_slabs = lc->slabs;
	ckpt_chain(&s->chain_deltas, &s->chain_bytes);
	s->image_path = img;
	s->generation = atomic_load(&seg->sb->generation);
	s->epoch = atomic_load(&seg->sb->epoch);
	s->blocks_cached = st.cached;
	s->identity.data = heap->identity;
	s->identity.len = 16;
	s->socket_path = cfg->socket_path;
	s->pid = (uint32_t)getpid();
	for (i = 0; i < SHM_NCLASSES; i++) {
		aclheap__class_stats__init(&cs[i]);
		cs[i].block_size = slab_class_size[i];
		cs[i].slabs = st.cls[i].slabs;
		cs[i].blocks_in_use = st.cls[i].used;
		cs[i].blocks_free = st.cls[i].free;
		cs[i].bytes_requested = st.cls[i].req;
		csp[i] = &cs[i];
	}
	s->n_classes = SHM_NCLASSES;
	s->classes = csp;
}

static void
ckpt_done(void *arg, const struct ckpt_result *res)
{
	struct conn *c = arg;
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	Aclheap__CheckpointReply cr = ACLHEAP__CHECKPOINT_REPLY__INIT;
	Aclheap__DumpReply dr = ACLHEAP__DUMP_REPLY__INIT;
	char path[4096];

	r.id = c->wait_id;
	if (res->error != 0) {
		r.error = res->error;
		r.message = (char *)res->message;
	} else if (res->fd >= 0) {
		if ((c->passfd = dup(res->fd)) == -1) {
			r.error = EMFILE;
			r.message = "aclheapd is out of descriptors";
		} else {
			c->passfd_at = c->out_len;
			dr.bytes = res->bytes;
			dr.generation = res->generation;
			r.body_case = ACLHEAP__REPLY__BODY_DUMP;
			r.dump = &dr;
		}
	} else {
		char sfx[32] = "";

		/* The file it wrote: the base or the delta. */
		if (res->seq != 0)
			snprintf(sfx, sizeof(sfx), ".delta.%u", res->seq);
		image_path(cfg, path, sizeof(path), sfx);
		cr.path = path;
		cr.bytes = res->bytes;
		cr.duration_us = res->duration_us;
		cr.generation = res->generation;
		cr.kind = (char *)ckpt_kind_name(res->kind);
		cr.reason = (char *)res->why;
		cr.slabs = res->slabs;
		r.body_case = ACLHEAP__REPLY__BODY_CHECKPOINT;
		r.checkpoint = &cr;
	}
	c->waiting = 0;
	reply_send(c, &r);
	if (conn_flush(c) != 0)
		return;
	event_add(c->rev, NULL);
	conn_process(c);
}

static int
addr_ok(uint64_t a)
{
	return a >= heap->seg.base && a < heap->seg.base + heap->seg.size;
}

static void
do_blocks(struct conn *c, Aclheap__Reply *r, const Aclheap__Blocks *m,
    Aclheap__BlocksReply *br)
{
	static Aclheap__Block blk[BLOCKS_PAGE], *blkp[BLOCKS_PAGE];
	struct shm_seg *seg = &heap->seg;
	struct slab_block b;
	uint64_t s, hi = m->hi ? m->hi : UINT64_MAX;
	uint32_t w, cls, i = 0, first;
	size_t n = 0;
	uintptr_t a;
	int full = 0;

	(void)c;
	first = (uint32_t)(m->cursor & (SHM_MAX_BLOCKS - 1));
	for (s = m->cursor >> BLOCKS_CURSOR_SHIFT; s < seg->nslabs;
	    s++, first = 0) {
		w = atomic_load(&seg->slabs[s].word);
		if (n + SHM_MAX_BLOCKS > BLOCKS_PAGE && n > 0)
			break;
		if (SHM_SLAB_STATE(w) == SHM_LARGE_HEAD) {
			a = slab_addr(seg, s);
			if (m->cls == -1 || m->cls == -2) {
				if (a >= m->lo && a < hi &&
				    slab_block_lookup(seg, a, &b) == 0) {
					aclheap__block__init(&blk[n]);
					blk[n].addr = a;
					blk[n].req = b.req;
					blk[n].usable = b.usable;
					blkp[n] = &blk[n];
					n++;
				}
			}
			continue;
		}
		if (SHM_SLAB_STATE(w) != SHM_SMALL)
			continue;
		cls = SHM_SLAB_CLS(w);
		/* Clients can write the slab table: never index by it
		 * unchecked. */
		if (cls >= SHM_NCLASSES || m->cls == -2 ||
		    (m->cls >= 0 && (uint32_t)m->cls != cls))
			continue;
		for (i = first; i < slab_class_nblocks[cls]; i++) {
			if (n == BLOCKS_PAGE) {
				full = 1;
				break;
			}
			a = slab_addr(seg, s) + (uintptr_t)i *
			    slab_class_size[cls];
			if (a < m->lo || a >= hi ||
			    slab_block_lookup(seg, a, &b) != 0)
				continue;
			aclheap__block__init(&blk[n]);
			blk[n].addr = a;
			blk[n].req = b.req;
			blk[n].usable = b.usable;
			blkp[n] = &blk[n];
			n++;
		}
		if (full)
			break;
	}
	br->n_blocks = n;
	br->blocks = blkp;
	/* Never 0 while blocks remain: a full page has passed block 0. */
	if (full)
		br->next = s << BLOCKS_CURSOR_SHIFT | i;
	else
		br->next = s < seg->nslabs ? s << BLOCKS_CURSOR_SHIFT : 0;
	r->body_case = ACLHEAP__REPLY__BODY_BLOCKS;
	r->blocks = br;
}

static void
do_clients(Aclheap__Reply *r, Aclheap__ClientsReply *cr)
{
	static Aclheap__ClientInfo *ci[1024];
	static Aclheap__ClientInfo cis[1024];
	struct conn *c;
	size_t n = 0;

	/* 700 entries of at most ~80 bytes stay under the frame cap. */
	TAILQ_FOREACH(c, &conns, link) {
		if (n == 700)
			break;
		aclheap__client_info__init(&cis[n]);
		cis[n].pid = (uint32_t)c->pid;
		cis[n].uid = (uint32_t)c->uid;
		cis[n].gid = (uint32_t)c->gid;
		cis[n].name = c->name;
		cis[n].leases = heap_conn_leases(heap, c);
		cis[n].requests = c->requests;
		cis[n].since = (uint64_t)c->since;
		ci[n] = &cis[n];
		n++;
	}
	cr->n_clients = n;
	cr->clients = ci;
	cr->total = (uint32_t)nconns;
	r->body_case = ACLHEAP__REPLY__BODY_CLIENTS;
	r->clients = cr;
}

/* Alloc and Free, for dispatch() and for the quick path alike: 0, or
 * -errno with the words for it in err. */
static int
op_alloc(uint64_t size, uint64_t align, uintptr_t *addr, uint64_t *usable,
    char *err, size_t errlen)
{
	int rc;

	if (align != 0 && ((align & (align - 1)) != 0 ||
	    align > (UINT64_C(1) << 30))) {
		snprintf(err, errlen, "alignment %" PRIu64 " is not a power "
		    "of two up to 1 GiB", align);
		return -EINVAL;
	}
	if ((rc = heap_alloc(heap, size, align, addr, usable)) != 0)
		snprintf(err, errlen, "no room for %" PRIu64 " bytes in the "
		    "heap", size);
	return rc;
}

static int
op_free(uint64_t addr, uint64_t *size, char *err, size_t errlen)
{
	int rc;

	if ((rc = heap_free(heap, addr, size)) != 0)
		snprintf(err, errlen, "0x%" PRIx64 " is not a live block",
		    addr);
	return rc;
}

/*
 * An Alloc or Free that quick_decode() recognised, answered in the bytes
 * quick_encode() writes; a refusal goes out as dispatch() words it.  Only
 * after Hello: everything before it takes the general way.
 */
static void
dispatch_quick(struct conn *c, const struct quick_req *q)
{
	char err[128];
	uintptr_t addr = 0;
	uint64_t v, usable = 0;
	size_t n;
	int rc;

	c->requests++;
	if (q->body == ACLHEAP__REQUEST__BODY_ALLOC)
		rc = op_alloc(q->a, q->b, &addr, &usable, err, sizeof(err));
	else
		rc = op_free(q->a, &v, err, sizeof(err));
	if (rc != 0) {
		log_debug("pid %d: refused %s: %s", (int)c->pid,
		    q->body == ACLHEAP__REQUEST__BODY_ALLOC ? "alloc" : "free",
		    err);
		reply_error(c, q->id, -rc, "%s", err);
		return;
	}
	if (out_reserve(c, FRAME_HDR + QUICK_MAX) != 0) {
		c->closing = 1;
		return;
	}
	n = q->body == ACLHEAP__REQUEST__BODY_ALLOC ?
	    quick_encode(c->out + c->out_len + FRAME_HDR,
	    ACLHEAP__REPLY__BODY_ALLOC, q->id, addr, usable) :
	    quick_encode(c->out + c->out_len + FRAME_HDR,
	    ACLHEAP__REPLY__BODY_FREE, q->id, v, 0);
	frame_put_len(c->out + c->out_len, (uint32_t)n);
	c->out_len += n + FRAME_HDR;
}

/* One request.  Everything it answers with lives until reply_send(). */
/*
 * A root name that holds a NUL byte: protobuf-c hands the string over cut
 * at the NUL, which would set a shorter name than was sent.  The cut shows
 * as a request that packs to fewer bytes than arrived (our clients pack
 * exactly what protobuf-c packs, so an honest request always matches).
 */
static int
root_name_cut(const Aclheap__Request *q, uint32_t len)
{
	if (q->body_case < ACLHEAP__REQUEST__BODY_ROOT_SET ||
	    q->body_case > ACLHEAP__REQUEST__BODY_ROOT_REMOVE)
		return 0;
	return protobuf_c_message_get_packed_size(&q->base) != len;
}

static void
dispatch(struct conn *c, const Aclheap__Request *q)
{
	static Aclheap__Root roots[SHM_ROOTS], *rootp[SHM_ROOTS];
	static Aclheap__ClassStats cs[SHM_NCLASSES], *csp[SHM_NCLASSES];
	static uint8_t rbuf[READ_MAX];
	/* Reply bodies are initialised where they are used: the hot
	 * requests (Alloc, Free) should not pay for the others. */
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	Aclheap__AllocReply ar;
	Aclheap__FreeReply fr;
	Aclheap__Root rt;
	Aclheap__RootListReply rl;
	Aclheap__StatsReply sr;
	Aclheap__VerifyReply vr;
	Aclheap__ReadReply rr;
	Aclheap__BlocksReply br;
	Aclheap__ClientsReply clr;
	Aclheap__LeaseReply lr;
	static Aclheap__Empty ok = ACLHEAP__EMPTY__INIT;
	struct shm_report rep;
	char err[512];
	uintptr_t addr;
	uint64_t v, usable;
	uint32_t rec;
	ssize_t got = 0;
	int rc = 0, i, n;

	c->requests++;
	err[0] = '\0';
	r.id = q->id;
	if (q->body_case == ACLHEAP__REQUEST__BODY_HELLO) {
		if (c->hello) {
			reply_error(c, q->id, EPROTO, "Hello sent twice");
			return;
		}
		do_hello(c, q->id, q->hello);
		return;
	}
	if (!c->hello) {
		reply_error(c, q->id, EPROTO, "the first request must be Hello");
		c->closing = 1;
		return;
	}
	switch (q->body_case) {
	case ACLHEAP__REQUEST__BODY_ALLOC:
		if ((rc = op_alloc(q->alloc->size, q->alloc->alignment, &addr,
		    &usable, err, sizeof(err))) != 0)
			break;
		aclheap__alloc_reply__init(&ar);
		ar.addr = addr;
		ar.usable = usable;
		r.body_case = ACLHEAP__REPLY__BODY_ALLOC;
		r.alloc = &ar;
		break;
	case ACLHEAP__REQUEST__BODY_FREE:
		if ((rc = op_free(q->free->addr, &v, err, sizeof(err))) != 0)
			break;
		aclheap__free_reply__init(&fr);
		fr.size = v;
		r.body_case = ACLHEAP__REPLY__BODY_FREE;
		r.free = &fr;
		break;
	case ACLHEAP__REQUEST__BODY_REALLOC:
		if ((rc = heap_realloc(heap, q->realloc->addr, q->realloc->size,
		    &addr, &usable)) != 0) {
			snprintf(err, sizeof(err), rc == -EINVAL ? "0x%" PRIx64
			    " is not a live block" : "no room for %" PRIu64
			    " bytes", rc == -EINVAL ? q->realloc->addr :
			    q->realloc->size);
			break;
		}
		aclheap__alloc_reply__init(&ar);
		ar.addr = addr;
		ar.usable = usable;
		r.body_case = ACLHEAP__REPLY__BODY_ALLOC;
		r.alloc = &ar;
		break;
	case ACLHEAP__REQUEST__BODY_ROOT_SET:
		rc = heap_root_set(heap, q->root_set->name, q->root_set->value);
		break;
	case ACLHEAP__REQUEST__BODY_ROOT_GET:
		if ((rc = heap_root_get(heap, q->root_get->name, &v)) != 0)
			break;
		aclheap__root__init(&rt);
		rt.name = q->root_get->name;
		rt.value = v;
		r.body_case = ACLHEAP__REPLY__BODY_ROOT;
		r.root = &rt;
		break;
	case ACLHEAP__REQUEST__BODY_ROOT_CAS:
		rc = heap_root_cas(heap, q->root_cas->name,
		    q->root_cas->expected, q->root_cas->desired);
		break;
	case ACLHEAP__REQUEST__BODY_ROOT_REMOVE:
		rc = heap_root_remove(heap, q->root_remove->name);
		break;
	case ACLHEAP__REQUEST__BODY_ROOT_LIST:
		for (i = 0, n = 0; i < SHM_ROOTS; i++) {
			if (heap->seg.roots[i].name[0] == '\0')
				continue;
			aclheap__root__init(&roots[n]);
			roots[n].name = heap->seg.roots[i].name;
			roots[n].value = atomic_load(&heap->seg.roots[i].value);
			rootp[n] = &roots[n];
			n++;
		}
		aclheap__root_list_reply__init(&rl);
		rl.n_roots = (size_t)n;
		rl.roots = rootp;
		r.body_case = ACLHEAP__REPLY__BODY_ROOTS;
		r.roots = &rl;
		break;
	case ACLHEAP__REQUEST__BODY_STATS:
		aclheap__stats_reply__init(&sr);
		fill_stats(&sr, cs, csp);
		r.body_case = ACLHEAP__REPLY__BODY_STATS;
		r.stats = &sr;
		break;
	case ACLHEAP__REQUEST__BODY_CHECKPOINT:
	case ACLHEAP__REQUEST__BODY_DUMP:
		if (!c->privileged) {
			rc = -EPERM;
			snprintf(err, sizeof(err), "%s is only for aclheapd's "
			    "user and root", frame_body_name(q));
			break;
		}
		if (q->body_case == ACLHEAP__REQUEST__BODY_CHECKPOINT &&
		    q->checkpoint->full)
			ckpt_want_full();
		if ((rc = ckpt_request(q->body_case ==
		    ACLHEAP__REQUEST__BODY_DUMP, ckpt_done, c)) != 0) {
			snprintf(err, sizeof(err), "cannot start: %s",
			    strerror(-rc));
			break;
		}
		c->waiting = 1;
		c->wait_id = q->id;
		return;
	case ACLHEAP__REQUEST__BODY_VERIFY:
		if ((rc = shm_check(&heap->seg, &rep, err, sizeof(err))) != 0)
			break;
		aclheap__verify_reply__init(&vr);
		vr.blocks_live = rep.blocks_live;
		vr.blocks_orphaned = rep.blocks_orphaned;
		vr.slabs_small = rep.slabs_small;
		vr.slabs_large = rep.slabs_large;
		vr.slabs_free = rep.slabs_free;
		r.body_case = ACLHEAP__REPLY__BODY_VERIFY;
		r.verify = &vr;
		break;
	case ACLHEAP__REQUEST__BODY_READ:
		if (!c->privileged) {
			rc = -EPERM;
			snprintf(err, sizeof(err), "reading heap bytes is only "
			    "for aclheapd's user and root");
			break;
		}
		v = q->read->addr;
		if (q->read->len > READ_MAX || !addr_ok(v) ||
		    q->read->len > heap->seg.base + heap->seg.size - v) {
			rc = -ERANGE;
			snprintf(err, sizeof(err), "0x%" PRIx64 "+%u is not "
			    "inside the heap 0x%" PRIxPTR "-0x%" PRIxPTR
			    " (or over %u bytes)", v, q->read->len,
			    heap->seg.base, (uintptr_t)(heap->seg.base +
			    heap->seg.size), READ_MAX);
			break;
		}
		/* Through the descriptor, not the mapping: a page nobody
		 * committed reads as zeros instead of being allocated, which
		 * on a full /dev/shm would be SIGBUS here. */
		for (n = 0; (uint32_t)n < q->read->len; n += (int)got) {
			got = pread(heap->seg.fd, rbuf + n, q->read->len -
			    (uint32_t)n, (off_t)(v - heap->seg.base) + n);
			if (got == -1 && errno == EINTR) {
				got = 0;
				continue;
			}
			if (got <= 0)
				break;
		}
		if ((uint32_t)n < q->read->len) {
			rc = -EIO;
			snprintf(err, sizeof(err), "reading the heap: %s",
			    got == -1 ? strerror(errno) : "short read");
			break;
		}
		aclheap__read_reply__init(&rr);
		rr.data.data = rbuf;
		rr.data.len = q->read->len;
		r.body_case = ACLHEAP__REPLY__BODY_READ;
		r.read = &rr;
		break;
	case ACLHEAP__REQUEST__BODY_BLOCKS:
		aclheap__blocks_reply__init(&br);
		do_blocks(c, &r, q->blocks, &br);
		break;
	case ACLHEAP__REQUEST__BODY_CLIENTS:
		aclheap__clients_reply__init(&clr);
		do_clients(&r, &clr);
		break;
	case ACLHEAP__REQUEST__BODY_LEASE:
		if ((rc = heap_lease(heap, c, c->pid, q->lease->cls,
		    q->lease->renew, q->lease->want, &v, &rec)) != 0) {
			if (rc == -EBUSY)
				snprintf(err, sizeof(err), "the lease table is "
				    "full (%d leases held); small blocks go "
				    "through aclheapd until one is released",
				    SHM_LEASES);
			else if (rc == -EINVAL)
				snprintf(err, sizeof(err), "no lease of class "
				    "%u to renew for this connection",
				    q->lease->cls);
			else
				snprintf(err, sizeof(err), rc == -EMFILE ?
				    "aclheapd is out of descriptors" : rc ==
				    -EAGAIN ? "the slab's owner is claiming in "
				    "it; ask again" : "no slab to lease for "
				    "class %u", q->lease->cls);
			break;
		}
		aclheap__lease_reply__init(&lr);
		lr.slab = v;
		lr.record = rec;
		r.body_case = ACLHEAP__REPLY__BODY_LEASE;
		r.lease = &lr;
		break;
	case ACLHEAP__REQUEST__BODY_RELEASE:
		rec = q->release->record;
		if (rec >= SHM_LEASES || heap->owners[rec].conn != c) {
			rc = -EINVAL;
			snprintf(err, sizeof(err), "lease %u is not yours", rec);
			break;
		}
		rc = heap_lease_release(heap, rec);
		break;
	default:
		rc = -EOPNOTSUPP;
		snprintf(err, sizeof(err), "unknown request");
		break;
	}
	if (rc != 0) {
		/* The roots' own words, for root requests only: another
		 * request's ENOENT or ENOSPC is not about roots. */
		int root_req = q->body_case >= ACLHEAP__REQUEST__BODY_ROOT_SET &&
		    q->body_case <= ACLHEAP__REQUEST__BODY_ROOT_LIST;

		r.body_case = ACLHEAP__REPLY__BODY__NOT_SET;
		r.error = -rc;
		r.message = err;
		if (root_req && rc == -EINVAL && err[0] == '\0')
			snprintf(err, sizeof(err), "root names are 1 to %d "
			    "printable ASCII bytes", SHM_ROOT_NAME_MAX);
		else if (root_req && rc == -ENOENT && err[0] == '\0')
			snprintf(err, sizeof(err), "no such root");
		else if (root_req && rc == -EAGAIN && err[0] == '\0')
			snprintf(err, sizeof(err), "root holds another value");
		else if (root_req && rc == -ENOSPC && err[0] == '\0')
			snprintf(err, sizeof(err), "the root table is full "
			    "(%d roots)", SHM_ROOTS);
		else if (err[0] == '\0')
			snprintf(err, sizeof(err), "%s", strerror(-rc));
		/* Every refusal, for whoever debugs a client. */
		log_debug("pid %d: refused %s: %s", (int)c->pid,
		    frame_body_name(q), err);
	} else if (r.body_case == ACLHEAP__REPLY__BODY__NOT_SET) {
		r.body_case = ACLHEAP__REPLY__BODY_OK;
		r.ok = &ok;
	}
	reply_send(c, &r);
}

/* Handles every complete frame in the input buffer. */
static void
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
			reply_error(c, 0, EMSGSIZE, "frame over %u bytes",
			    FRAME_MAX);
			c->closing = 1;
			break;
		}
		if (c->in_len - off < FRAME_HDR + len)
			break;
		if (c->hello && quick_decode(c->in + off + FRAME_HDR, len,
		    &qq)) {
			off += FRAME_HDR + len;
			heap->dirty = 1;
			dispatch_quick(c, &qq);
			continue;
		}
		frame_arena_reset(&arena);
		q = frame_unpack_request(&arena, c->in + off + FRAME_HDR, len);
		off += FRAME_HDR + len;
		if (q == NULL) {
			log_debug("pid %d sent a malformed message", (int)c->pid);
			reply_error(c, 0, EPROTO, "malformed message");
			if (!c->hello)
				c->closing = 1;
			continue;
		}
		if (root_name_cut(q, len)) {
			reply_error(c, q->id, EINVAL, "a root name must not "
			    "hold a NUL byte");
			continue;
		}
		heap->dirty = 1;
		dispatch(c, q);
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
			reply_error(c, q->id, ESHUTDOWN, "aclheapd is stopping; "
			    "not done");
	}
	c->in_len = 0;
	c->closing = 0;
	return conn_flush(c);	/* -1: it closed the connection itself */
}

static void
sig_cb(evutil_socket_t sig, short what, void *arg)
{
	struct config nc;

	(void)what;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_notice("signal %d: stopping", (int)sig);
		notify_stopping();
		event_base_loopbreak(base);
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

	cfg = c;
	heap = h;
	base = eb;
	started = time(NULL);
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
		sev[i] = evsignal_new(base, sigs[i], sig_cb, NULL);
		if (sev[i] == NULL || evsignal_add(sev[i], NULL) != 0)
			fatalx("cannot watch signal %d", sigs[i]);
		sigaddset(&blocked, sigs[i]);
	}
	/* main() blocked them until now; any that came are delivered. */
	sigprocmask(SIG_UNBLOCK, &blocked, NULL);
	accept_ev = event_new(base, lfd, EV_READ | EV_PERSIST, accept_cb, NULL);
	if (accept_ev == NULL || event_add(accept_ev, NULL) != 0)
		fatalx("cannot watch the socket");
	{
		struct timeval tv = { 2, 0 };

		reap_ev = event_new(base, -1, EV_PERSIST, reap_cb, NULL);
		if (reap_ev == NULL || event_add(reap_ev, &tv) != 0)
			fatalx("cannot set up the lease reaper");
	}
	conn_limit_init();
	if ((wd = notify_watchdog_usec()) > 0) {
		struct timeval tv = { (time_t)(wd / 1000000),
		    (suseconds_t)(wd % 1000000) };

		watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
		if (watchdog_ev != NULL)
			event_add(watchdog_ev, &tv);
		notify_watchdog();
	}
	notify_ready();
	log_notice("serving heap 0x%" PRIxPTR "+%" PRIu64 " on %s", h->seg.base,
	    h->seg.size, c->socket_path);
	event_base_dispatch(base);

	/* Graceful stop: no new requests, then the final checkpoint. */
	event_del(accept_ev);
	stopping = 1;
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
