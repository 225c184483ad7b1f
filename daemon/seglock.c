/* SPDX-License-Identifier: MIT */
/*
 * seglock.c: one live heap, one daemon.  The daemon holds a lock on the
 * segment object itself for as long as it serves it, so a second daemon
 * that reaches the same object (a copied state folder holds the same
 * heap.id) is refused instead of handing out the same blocks.
 *
 * The lock is an open file description (OFD) lock, F_OFD_SETLK, a write
 * lock on byte 0 of the object.  It belongs to the open file description,
 * so it dies with the last descriptor of it: a SIGKILLed daemon never
 * blocks its successor, and the fork() that detaches the daemon keeps it.
 * That same rule is why the lock is taken on a second open of the object,
 * never on the descriptor the heap is mapped from: that one is duplicated
 * to every client at Hello (SCM_RIGHTS passes the description, not a copy)
 * and its mappings hold it too, so a lock on it would outlive the daemon
 * in every client that ever attached.  The lock descriptor is never
 * mapped, passed or duplicated.
 *
 * The holder's pid is written into the lock itself: a second write lock,
 * one byte long, at LOCK_PID_BASE + pid.  F_OFD_GETLK reports -1 as the
 * pid of an OFD lock, but it reports the conflicting lock's range, and
 * the range says the pid.  No file has to be kept next to the segment or
 * cleaned up after a crash, and nothing a client can write (the segment
 * is writable by every client) can forge the answer.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"

#define LOCK_GATE	0			/* the byte that is the lock */
#define LOCK_PID_BASE	((off_t)1 << 40)	/* + pid: who holds it */

static int
lock_range(int fd, int cmd, short type, off_t start)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = 1;
	return fcntl(fd, cmd, &fl);
}

/* The start of a write lock someone holds on [start, start + len) (len 0:
 * every offset from start on), or -1 if there is none. */
static off_t
lock_found(int fd, off_t start, off_t len)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	if (fcntl(fd, F_OFD_GETLK, &fl) == -1 || fl.l_type == F_UNLCK)
		return -1;
	return fl.l_start;
}

/*
 * The pid recorded by the holder of fd's object: the holder takes the gate
 * first and records its pid right after, so a reader that lost the gate
 * may be early by a few instructions; it waits up to 100 ms for the
 * record.  0 if none came, -1 if no one holds the gate any more.
 */
pid_t
seglock_holder(int fd)
{
	struct timespec ms = { 0, 1000 * 1000 };
	off_t at;
	int i;

	for (i = 0; i < 100; i++) {
		if ((at = lock_found(fd, LOCK_PID_BASE + 1, 0)) > 0)
			return (pid_t)(at - LOCK_PID_BASE);
		if (lock_found(fd, LOCK_GATE, 1) < 0)
			return -1;
		nanosleep(&ms, NULL);
	}
	return 0;
}

/*
 * Writes our pid into the lock: at the first lock, and again in the child
 * of the fork() that detaches (the lock is the child's now, its pid is
 * not).  The new record goes in before the old one goes, so a reader
 * always finds one.
 */
void
seglock_owner(struct heap *h)
{
	pid_t me = getpid();

	if (h->lockfd < 0 || h->lock_pid == me)
		return;
	if (lock_range(h->lockfd, F_OFD_SETLK, F_WRLCK,
	    LOCK_PID_BASE + me) == -1) {
		log_warn("cannot record pid %d in the segment lock", (int)me);
		return;
	}
	if (h->lock_pid > 0)
		(void)lock_range(h->lockfd, F_OFD_SETLK, F_UNLCK,
		    LOCK_PID_BASE + h->lock_pid);
	h->lock_pid = me;
}

/*
 * Locks the segment whose descriptor (the one to be mapped) is fd, before
 * anything in it is trusted: 0, or a negative errno after logging why.  A
 * segment another daemon serves is -EBUSY, with that daemon's pid.
 */
int
seglock_take(struct heap *h, int fd)
{
	struct stat a, b;
	char name[64];
	pid_t holder;
	int lfd, rc, tries = 0;

	seg_name(h->identity, name, sizeof(name));
	if ((rc = seg_open(h->identity, &lfd)) != 0) {
		log_errx("cannot open segment /dev/shm%s to lock it: %s", name,
		    strerror(-rc));
		return rc;
	}
	/* Opened twice by name: both must be the one object. */
	if (fstat(fd, &a) == -1 || fstat(lfd, &b) == -1 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		log_errx("segment /dev/shm%s was replaced while the daemon "
		    "opened it; is another aclheapd starting on this heap?",
		    name);
		close(lfd);
		return -EAGAIN;
	}
	while (lock_range(lfd, F_OFD_SETLK, F_WRLCK, LOCK_GATE) == -1) {
		rc = errno;
		if (rc != EAGAIN && rc != EACCES) {
			log_errx("cannot lock segment /dev/shm%s: %s", name,
			    strerror(rc));
			close(lfd);
			return -rc;
		}
		/* The holder may be gone by now: then try again. */
		if ((holder = seglock_holder(lfd)) == -1 && tries++ < 3)
			continue;
		close(lfd);
		if (holder > 0)
			log_errx("segment /dev/shm%s is served by another "
			    "aclheapd, pid %d: one heap has one daemon (a "
			    "copied state folder names the same heap in its "
			    "heap.id); stop that daemon, or give this one a "
			    "heap of its own", name, (int)holder);
		else
			log_errx("segment /dev/shm%s is locked by another "
			    "aclheapd (pid not recorded): one heap has one "
			    "daemon", name);
		return -EBUSY;
	}
	h->lockfd = lfd;
	h->lock_pid = 0;
	seglock_owner(h);
	return 0;
}

/* At close, and when a segment made at start-up is given up. */
void
seglock_release(struct heap *h)
{
	if (h->lockfd >= 0)
		close(h->lockfd);
	h->lockfd = -1;
	h->lock_pid = 0;
}
