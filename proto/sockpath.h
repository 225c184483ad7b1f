/* SPDX-License-Identifier: MIT */
/*
 * sockpath.h: where aclheapd listens when nobody says otherwise.  The
 * daemon and every client (the library, aclheapctl) compute the default
 * here, from the same inputs, so the two sides cannot disagree.
 */
#ifndef ACLHEAP_SOCKPATH_H
#define ACLHEAP_SOCKPATH_H

#include <sys/types.h>

#include <stddef.h>

#define SOCKPATH_SYSTEM	"/run/aclheap/aclheap.sock"

/*
 * The socket a daemon run by uid listens on by default: the system path
 * for root, $XDG_RUNTIME_DIR/aclheap/aclheap.sock for an ordinary user
 * with a runtime folder (xdg, absolute), else /tmp/aclheap-UID/aclheap.sock.
 * 0, or -ENAMETOOLONG when it does not fit in len.
 */
int	 sockpath_own(char *buf, size_t len, uid_t uid, const char *xdg);

/*
 * The socket a client run by uid tries by default: its own daemon's
 * (sockpath_own()) when that socket exists, else the system daemon's
 * when that exists, else its own (which a message then names, with
 * "start aclheapd").  Root tries the system path only.
 */
int	 sockpath_client(char *buf, size_t len, uid_t uid, const char *xdg);

/*
 * The state folder a daemon run by uid uses by default (systemd's
 * STATE_DIRECTORY aside): /var/lib/aclheap for root, else
 * $XDG_STATE_HOME/aclheap, else $HOME/.local/state/aclheap.  0,
 * -ENOENT when an ordinary user has neither, -ENAMETOOLONG.
 */
int	 statepath_own(char *buf, size_t len, uid_t uid, const char *xdg_state,
	    const char *home);

#endif /* ACLHEAP_SOCKPATH_H */
