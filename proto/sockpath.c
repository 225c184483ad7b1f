/* SPDX-License-Identifier: MIT */
/*
 * sockpath.c: the default socket path, one computation for aclheapd and
 * its clients (see sockpath.h).  Before this was shared, a daemon run by
 * an ordinary user without XDG_RUNTIME_DIR listened in /tmp while the
 * library looked in /run, and the message sent the user after a group.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>

#include "proto/sockpath.h"

int
sockpath_own(char *buf, size_t len, uid_t uid, const char *xdg)
{
	int n;

	if (uid == 0)
		n = snprintf(buf, len, "%s", SOCKPATH_SYSTEM);
	else if (xdg != NULL && xdg[0] == '/')
		n = snprintf(buf, len, "%s/aclheap/aclheap.sock", xdg);
	else
		n = snprintf(buf, len, "/tmp/aclheap-%u/aclheap.sock",
		    (unsigned)uid);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A socket is there, and for the /tmp folder anyone can create: in a
 * folder of uid's own that nobody else may write, so another user cannot
 * plant a daemon of theirs in front of ours. */
static int
usable(const char *path, uid_t uid)
{
	char dir[256];
	struct stat st;
	int n = 0;

	if (stat(path, &st) == -1 || !S_ISSOCK(st.st_mode))
		return 0;
	(void)sscanf(path, "/tmp/aclheap-%*u/%n", &n);
	if (n <= 0)
		return 1;
	snprintf(dir, sizeof(dir), "%.*s", n - 1, path);
	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_uid == uid && (st.st_mode & 022) == 0;
}

int
sockpath_client(char *buf, size_t len, uid_t uid, const char *xdg)
{
	int rc;

	if ((rc = sockpath_own(buf, len, uid, xdg)) != 0 || uid == 0)
		return rc;
	if (usable(buf, uid))
		return 0;
	if (usable(SOCKPATH_SYSTEM, 0)) {
		snprintf(buf, len, "%s", SOCKPATH_SYSTEM);
		return 0;
	}
	return 0;
}

int
statepath_own(char *buf, size_t len, uid_t uid, const char *xdg_state,
    const char *home)
{
	int n;

	if (uid == 0)
		n = snprintf(buf, len, "/var/lib/aclheap");
	else if (xdg_state != NULL && xdg_state[0] == '/')
		n = snprintf(buf, len, "%s/aclheap", xdg_state);
	else if (home != NULL && home[0] == '/')
		n = snprintf(buf, len, "%s/.local/state/aclheap", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
