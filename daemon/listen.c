/* SPDX-License-Identifier: MIT */
/*
 * listen.c: the listening socket, accepting, and admission.
 *
 * A peer costs nothing until it is admitted: its credentials (SO_PEERCRED)
 * are checked at accept, and one not on the allow list, or over its user's
 * cap on connections, gets one error reply and is closed there (conn.c
 * closes one that is admitted but says no Hello in time).  So a flood of
 * connections from anyone holds no descriptor for long, and allowed users
 * keep getting in.
 *
 * Connections may use the descriptors that are free when the loop starts,
 * less a reserve for the daemon's own work; at that limit, or when accept
 * runs out of descriptors, accepting pauses until a connection goes away
 * (listen_resume(), from conn_close()).
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"

#define ACCEPT_BATCH	64	/* accepts per wake-up: a flood drains fast */

static struct event *accept_ev;
static int accept_paused;
static int conn_max;		/* what the descriptor limit allows, 0: any */

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

/* Stops accepting until a connection goes away; says so once. */
static void
accept_pause(const char *why)
{
	if (accept_paused)
		return;
	log_warnx("%d clients, %s: not accepting until one leaves", conn_count(),
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

/* A connection went away: accept again if accepting had paused. */
void
listen_resume(void)
{
	if (accept_paused && accept_ev != NULL &&
	    (conn_max == 0 || conn_count() < conn_max)) {
		accept_paused = 0;
		event_add(accept_ev, NULL);
		log_notice("accepting connections again");
	}
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

/*
 * A connection on an accepted socket: its peer's credentials, checked
 * here, then its events and its Hello timeout.  NULL (fd closed, reason
 * logged) when it is refused or cannot be set up.  The fuzzer calls this
 * with one end of a socketpair.
 */
struct conn *
server_conn_new(int fd)
{
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
	if ((c = conn_new(fd, cred.pid, cred.uid, cred.gid)) == NULL)
		return NULL;
	if (conn_max > 0 && conn_count() >= conn_max && accept_ev != NULL)
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

/* Accepts on lfd from now on, up to what the descriptor limit allows. */
int
listen_start(int lfd)
{
	accept_ev = event_new(server.base, lfd, EV_READ | EV_PERSIST,
	    accept_cb, NULL);
	if (accept_ev == NULL || event_add(accept_ev, NULL) != 0)
		return -1;
	conn_limit_init();
	return 0;
}

/* At a stop: no more connections. */
void
listen_stop(void)
{
	if (accept_ev == NULL)
		return;
	event_del(accept_ev);
	event_free(accept_ev);
	accept_ev = NULL;
}
