/* SPDX-License-Identifier: MIT */
/*
 * main.c: aclheapd's start and stop.  Settings, the state folder's lock,
 * the heap (adopted, loaded or formatted), the socket, optionally detaching,
 * then the loop until TERM or INT and the final checkpoint.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"

/* One daemon per state folder: a second one would fight over the image. */
static int
lock_state(const char *dir)
{
	char path[4096], buf[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/aclheapd.lock", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		log_warn("%s", path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = (int)read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_errx("another aclheapd (pid %s) uses state folder %s",
		    buf[0] ? buf : "?", dir);
		close(fd);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)n, 0) != n)
		log_warn("%s", path);
	return fd;
}

/*
 * Where the log goes from here on: the --log-file, or for a daemon about
 * to detach (whose standard error becomes /dev/null) the state folder's
 * aclheapd.log.  0, or -1 after saying why on standard error.
 */
static int
open_log(struct config *c, int detaching)
{
	int rc;

	if (c->log_file == NULL && detaching &&
	    asprintf(&c->log_file, "%s/aclheapd.log", c->state_dir) == -1) {
		c->log_file = NULL;
		log_warn("log file");
		return -1;
	}
	if (c->log_file == NULL || strcmp(c->log_file, "syslog") == 0)
		return 0;
	if ((rc = log_to_file(c->log_file)) != 0) {
		errno = -rc;
		log_warn("log file %s", c->log_file);
		return -1;
	}
	if (detaching)
		fprintf(stderr, "aclheapd: detached; logging to %s\n",
		    c->log_file);
	return 0;
}

/* systemd made the socket: its path, from the socket itself, tells its
 * mode and group, which the allow list must agree with too. */
static void
warn_activated(const struct config *c, int lfd)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	struct stat st;

	memset(&sun, 0, sizeof(sun));
	if (getsockname(lfd, (struct sockaddr *)&sun, &len) == -1 ||
	    sun.sun_family != AF_UNIX || sun.sun_path[0] != '/' ||
	    stat(sun.sun_path, &st) == -1)
		return;
	config_warn_unreachable(c, sun.sun_path, st.st_mode & 0777, st.st_uid,
	    st.st_gid);
}

/* How to reach this daemon with aclheapctl: the one beside us when there
 * is one (a build folder), else the one on $PATH. */
static void
ctl_hint(char *buf, size_t len)
{
	char exe[4096], *slash;
	ssize_t n;

	snprintf(buf, len, "aclheapctl");
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 16)) <= 0)
		return;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return;
	snprintf(slash, sizeof(exe) - (size_t)(slash - exe), "/aclheapctl");
	if (access(exe, X_OK) == 0)
		snprintf(buf, len, "%s", exe);
}

static int
detach(int lockfd)
{
	char buf[32];
	pid_t pid;
	int fd, n;

	if ((pid = fork()) == -1)
		return -1;
	if (pid > 0)
		_exit(0);
	setsid();
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(lockfd, 0) == -1 || pwrite(lockfd, buf, (size_t)n, 0) != n)
		log_warn("lock file");
	return 0;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct heap heap;
	struct stat st, sock_st;
	sigset_t sigs;
	char hint[4200];
	int rc, lfd, lockfd = -1, activated, status = 1, opened = 0, detaching;

	/*
	 * The signals the loop handles wait, blocked, until server_run()
	 * watches them: before that their default action would end the
	 * daemon, and the socket already accepts clients (and an admin's
	 * kill -USR1) before the loop runs.  A TERM during a long image load
	 * is then a graceful stop once the heap is up.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	config_defaults(&cfg);
	if ((rc = config_parse_args(&cfg, argc, argv)) != 0) {
		status = rc > 0 ? 0 : 2;
		goto out;
	}
	if (config_finish(&cfg) != 0) {
		status = 2;
		goto out;
	}
	log_init(cfg.log_level, !isatty(STDERR_FILENO));
	journal_init();
	umask(077);
	if (mkdir(cfg.state_dir, 0700) == -1 && errno != EEXIST) {
		char *p, tmp[4096];

		/* Create the parents too (~/.local/state may not exist). */
		snprintf(tmp, sizeof(tmp), "%s", cfg.state_dir);
		for (p = tmp + 1; *p; p++)
			if (*p == '/') {
				*p = '\0';
				(void)mkdir(tmp, 0755);
				*p = '/';
			}
		if (mkdir(cfg.state_dir, 0700) == -1 && errno != EEXIST) {
			log_warn("state folder %s", cfg.state_dir);
			goto out;
		}
	}
	if ((lockfd = lock_state(cfg.state_dir)) == -1)
		goto out;
	notify_status("opening heap");
	opened = 1;
	if (heap_open(&heap, &cfg) != 0)
		goto out;
	notify_status("%s heap", heap.adopted ? "adopted live" :
	    heap.loaded ? "loaded" : "formatted new");
	if ((lfd = server_listen(&cfg, &activated)) < 0) {
		log_errx("cannot listen on %s: %s", cfg.socket_path,
		    strerror(-lfd));
		goto out;
	}
	memset(&sock_st, 0, sizeof(sock_st));
	if (!activated && stat(cfg.socket_path, &sock_st) == -1)
		log_warn("%s", cfg.socket_path);
	else if (!activated)
		config_warn_unreachable(&cfg, cfg.socket_path,
		    sock_st.st_mode & 0777, sock_st.st_uid, sock_st.st_gid);
	else
		warn_activated(&cfg, lfd);
	detaching = !cfg.foreground && !activated &&
	    getenv("NOTIFY_SOCKET") == NULL;
	if (open_log(&cfg, detaching) != 0)
		goto out;
	if (detaching && detach(lockfd) != 0) {
		log_warn("fork");
		goto out;
	}
	seglock_owner(&heap);	/* the detached child's pid, if it forked */
	if (cfg.log_file != NULL && strcmp(cfg.log_file, "syslog") == 0)
		log_to_syslog();
	if (cfg.foreground) {
		ctl_hint(hint, sizeof(hint));
		fprintf(stderr, "aclheapd: heap at 0x%" PRIxPTR " (%" PRIu64
		    " MiB), images in %s\naclheapd: listening on %s\n"
		    "aclheapd: try: %s -s %s status; stop with Ctrl-C\n",
		    heap.seg.base, heap.seg.size >> 20, cfg.state_dir,
		    cfg.socket_path, hint, cfg.socket_path);
	}
	status = server_run(&cfg, &heap, lfd, argc, argv);
	/* Remove the socket only if it is still the one we bound: a daemon
	 * started while we stopped may own the path by now. */
	if (!activated && stat(cfg.socket_path, &st) == 0 &&
	    st.st_dev == sock_st.st_dev && st.st_ino == sock_st.st_ino)
		unlink(cfg.socket_path);
out:
	/* Everything freed, so that LeakSanitizer sees real leaks only. */
	if (opened)
		heap_close(&heap);
	config_free(&cfg);
	if (lockfd >= 0)
		close(lockfd);
	return status;
}
