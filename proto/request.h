/* SPDX-License-Identifier: MIT */
/*
 * request.h: every kind of request, what it may touch and how it is
 * retried, in one table that the daemon and the client library share.
 *
 * Theory of operation
 * -------------------
 * A request is an Aclheap__Request whose oneof body names its kind.  Each
 * kind is one row of REQUEST_KINDS below:
 *
 *   kind     the oneof's case, ACLHEAP__REQUEST__BODY_<kind>
 *   name     its field in aclheap.proto, as frame_body_name() says it
 *   flags    REQUEST_PRIVILEGED: only for aclheapd's own user and root;
 *            REQUEST_CHANGES: may change the heap (marks it dirty, so the
 *            next interval checkpoints it)
 *   retry    what the client does when the daemon went away after the
 *            request was sent and before its reply came:
 *            RESEND  done twice is done once; sent again after a reconnect
 *            FAIL    may or may not have been done; the caller gets
 *                    ECONNRESET
 *            ONCE    sent again with its sequence number, in the session
 *                    the client takes up again: the daemon did it exactly
 *                    once and answers as it did the first time
 *                    (daemon/journal.h); FAIL for a connection without
 *                    a session
 *
 * The daemon builds its handler table from the same rows
 * (daemon/request.c), one handler per kind, so a kind added here without
 * a handler does not compile, and the privilege check and the dirty mark
 * are made once, from the flags, before the handler runs.  A per-kind
 * property (a new retry kind, a flag) is a column added here.
 *
 *   invariants: request_kind(b) != NULL  <=>  b is a row's kind
 *               REQUEST_PRIVILEGED rows never run for an unprivileged
 *               connection; a row without REQUEST_CHANGES leaves the heap
 *               as it found it
 */
#ifndef ACLHEAP_PROTO_REQUEST_H
#define ACLHEAP_PROTO_REQUEST_H

#include "proto/aclheap.pb-c.h"

#define REQUEST_PRIVILEGED	0x1u
#define REQUEST_CHANGES		0x2u

enum request_retry {
	REQUEST_RESEND,
	REQUEST_FAIL,
	REQUEST_ONCE,
};

/*	  kind		name		flags			retry */
#define REQUEST_KINDS(X)						\
	X(HELLO,	hello,		0,			RESEND)	\
	X(ALLOC,	alloc,		REQUEST_CHANGES,	ONCE)	\
	X(FREE,		free,		REQUEST_CHANGES,	ONCE)	\
	X(REALLOC,	realloc,	REQUEST_CHANGES,	ONCE)	\
	X(ROOT_SET,	root_set,	REQUEST_CHANGES,	ONCE)	\
	X(ROOT_GET,	root_get,	0,			RESEND)	\
	X(ROOT_CAS,	root_cas,	REQUEST_CHANGES,	ONCE)	\
	X(ROOT_REMOVE,	root_remove,	REQUEST_CHANGES,	ONCE)	\
	X(ROOT_LIST,	root_list,	0,			RESEND)	\
	X(STATS,	stats,		0,			RESEND)	\
	X(CHECKPOINT,	checkpoint,	REQUEST_PRIVILEGED,	RESEND)	\
	X(VERIFY,	verify,		0,			RESEND)	\
	X(READ,		read,		REQUEST_PRIVILEGED,	RESEND)	\
	X(BLOCKS,	blocks,		0,			RESEND)	\
	X(CLIENTS,	clients,	0,			RESEND)	\
	X(DUMP,		dump,		REQUEST_PRIVILEGED,	FAIL)	\
	X(GROW,		grow,		REQUEST_PRIVILEGED | REQUEST_CHANGES, RESEND) \
	X(LEASE,	lease,		REQUEST_CHANGES,	ONCE)	\
	X(RELEASE,	release,	REQUEST_CHANGES,	ONCE)

/* One past the highest oneof case of a request body. */
#define REQUEST_BODY_END	(ACLHEAP__REQUEST__BODY_RELEASE + 1)

struct request_kind {
	const char *name;		/* NULL: no such kind */
	unsigned flags;			/* REQUEST_* */
	enum request_retry retry;
};

/* proto/request.c */
extern const struct request_kind request_kinds[REQUEST_BODY_END];

/* The row of body case b, or NULL for a case no row names. */
static inline const struct request_kind *
request_kind(int b)
{
	if (b < 0 || b >= REQUEST_BODY_END || request_kinds[b].name == NULL)
		return NULL;
	return &request_kinds[b];
}

#endif /* ACLHEAP_PROTO_REQUEST_H */
