/* SPDX-License-Identifier: MIT */
/*
 * request.c: how aclheapctl talks to aclheapd.  The socket is found as the
 * library finds it, the tool attaches as any client does, and a request
 * that fails exits with the status that says why: 3 when nobody answers on
 * the socket (or stopped answering), 1 when the daemon answered with an
 * error.
 */
#include "config.h"

#include <assert.h>
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

char ctl_socket[108];

/* Replies are unpacked here; one reply is alive at a time. */
static uint8_t arena_buf[1 << 20];
static struct frame_arena arena;

/* Errors that mean nobody answers on the socket (or stopped answering). */
int
ctl_unreachable(int rc)
{
	switch (-rc) {
	case ENOENT:
	case ECONNREFUSED:
	case ENOTDIR:
	case ENOTSOCK:
	case ECONNRESET:
	case EPIPE:
	case ETIMEDOUT:
		return 1;
	default:
		return 0;
	}
}

void
ctl_unreachable_exit(int rc)
{
	if (ctl_json) {
		/* A script asked for JSON: it gets JSON, and the status. */
		json_open(NULL, '{');
		json_str("socket", ctl_socket);
		json_bool("ok", 0);
		json_bool("reachable", 0);
		json_str("error", conn_lasterr()[0] != '\0' ? conn_lasterr() :
		    strerror(-rc));
		json_close('}');
		fflush(stdout);
	}
	warnx("cannot reach aclheapd at %s: %s", ctl_socket, strerror(-rc));
	warnx("start the daemon with 'aclheapd' (or 'systemctl start "
	    "aclheapd'), or name its socket with -s or ACLHEAP_SOCKET");
	exit(EXIT_UNREACHABLE);
}

/* Same resolution as the library: -s, $ACLHEAP_SOCKET, the default. */
void
ctl_resolve_socket(void)
{
	const char *e = getenv("ACLHEAP_SOCKET");

	if (ctl_socket_opt == NULL && e != NULL && *e != '\0')
		ctl_socket_opt = e;
	if (ctl_socket_opt == NULL) {
		conn_default_socket(ctl_socket, sizeof(ctl_socket));
		return;
	}
	if (strlen(ctl_socket_opt) >= sizeof(ctl_socket))
		errx(EXIT_FAILURE, "socket path '%s' is longer than %zu bytes",
		    ctl_socket_opt, sizeof(ctl_socket) - 1);
	snprintf(ctl_socket, sizeof(ctl_socket), "%s", ctl_socket_opt);
}

/*
 * Attaches like any client; 0 or the negative errno, for a command that
 * reports a failure its own way (metrics).  This maps the heap at its base
 * here too, which the tool does not strictly need, but it keeps one code
 * path for every program that talks to aclheapd, and lets `roots` look up
 * block sizes.
 */
int
ctl_attach(void)
{
	/* The command table says which commands talk to the daemon. */
	assert(ctl_cmd == NULL || (ctl_cmd->flags & CTL_DAEMON) != 0);
	ctl_resolve_socket();
	frame_arena_init(&arena, arena_buf, sizeof(arena_buf));
	return conn_attach(ctl_socket);
}

/* Attaches, or exits: 3 if nobody answers, else 1. */
void
ctl_connect(void)
{
	int rc;

	if ((rc = ctl_attach()) == 0)
		return;
	if (ctl_unreachable(rc))
		ctl_unreachable_exit(rc);
	errx(EXIT_FAILURE, "%s", conn_lasterr()[0] != '\0' ? conn_lasterr() :
	    strerror(-rc));
}

/*
 * One request, its reply unpacked into the arena (which holds the reply
 * before it, if any, no longer); conn_request()'s result.  For a command
 * that tells the failures apart itself.
 */
int
ctl_send(Aclheap__Request *q, Aclheap__Reply **rp, int *fdp)
{
	return conn_request(q, rp, &arena, fdp);
}

/*
 * One request; its reply, or an exit with the right status.  A reply with
 * an error is the daemon's answer (exit 1); no reply at all means the
 * daemon went away (exit 3).
 */
Aclheap__Reply *
ctl_request(const char *what, Aclheap__Request *q, int want, int *fdp)
{
	Aclheap__Reply *r = NULL;
	int rc;

	rc = ctl_send(q, &r, fdp);
	if (rc != 0 && r == NULL && ctl_unreachable(rc))
		ctl_unreachable_exit(rc);
	if (rc != 0)
		errx(EXIT_FAILURE, "%s: %s (%s)", what, conn_lasterr()[0] ?
		    conn_lasterr() : "request failed", strerror(-rc));
	if ((int)r->body_case != want)
		errx(EXIT_FAILURE, "%s: aclheapd answered with an unexpected "
		    "reply (%d)", what, (int)r->body_case);
	return r;
}
