/* SPDX-License-Identifier: MIT */
/*
 * check_systemd.c: aclheapd as systemd runs it, without a running systemd.
 * The built units must pass systemd-analyze verify and keep the settings
 * the heap depends on; systemd-socket-activate hands the daemon its socket
 * the way aclheapd.socket does; a NOTIFY_SOCKET of the test's own receives
 * what systemd would (READY=1, STATUS=, WATCHDOG=1, RELOADING=1,
 * STOPPING=1); and SIGHUP, what ExecReload= sends, reloads the config while
 * clients stay connected.
 *
 * The daemons here are started by spawn() rather than td_start_env(): the
 * fixture always passes --config /dev/null and --log-level debug, which
 * would override the very settings the reload test changes, and socket
 * activation puts another program in front of the daemon.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aclheap.h"
#include "proto/proto.h"
#include "tests/testutil.h"

#define DEADLINE_MS	20000

/* Where a program is on $PATH, or NULL. */
static const char *
find_tool(const char *name)
{
	static char buf[512];
	const char *path = getenv("PATH"), *p, *e;

	if (path == NULL || *path == '\0')
		path = "/usr/bin:/bin:/usr/sbin:/sbin";
	for (p = path; *p != '\0'; p = *e ? e + 1 : e) {
		e = p + strcspn(p, ":");
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)(e - p), p, name);
		if (e > p && access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

static char *
read_file(const char *path)
{
	static char buf[2][32768];
	static int i;
	ssize_t n;
	int fd;

	i ^= 1;
	if ((fd = open(path, O_RDONLY)) == -1)
		return NULL;
	n = read(fd, buf[i], sizeof(buf[i]) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[i][n] = '\0';
	return buf[i];
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

/* A file's text in memory of its own, or the test fails. */
static char *
must_read(const char *path)
{
	char *text = read_file(path);

	ck_assert_msg(text != NULL, "%s: %s (run make first)", path,
	    strerror(errno));
	ck_assert_ptr_nonnull(text = strdup(text));
	return text;
}

/*
 * Starts the daemon on the fixture's socket, state folder, base and size,
 * with config as its config file and the programs in front of it (NULL:
 * none).  Its output goes to the fixture's log; the systemd variables this
 * test may have inherited do not reach it.
 */
static void
spawn(struct td *t, const char *const *front, const char *config)
{
	const char *argv[32];
	pid_t pid;
	int fd, n = 0;

	for (; front != NULL && *front != NULL; front++)
		argv[n++] = *front;
	n = td_daemon_argv(t, argv, n, config);
	argv[n] = NULL;
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		fd = open(t->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		unsetenv("NOTIFY_SOCKET");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("WATCHDOG_USEC");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	t->pid = pid;
}

/* Polls the daemon's log for text: 1 once it is there, 0 after ms. */
static int
log_wait(struct td *t, const char *text, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	do {
		if (strstr(td_log(t), text) != NULL)
			return 1;
		msleep(10);
	} while (now_ms() < end);
	return 0;
}

static int
sock_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------------ */
/* The units */

/*
 * 1 if a line of the unit starts with s (whole: is exactly s).  Comments
 * start with '#', so they never match a setting.
 */
static int
unit_match(const char *text, const char *s, int whole)
{
	size_t n = strlen(s);
	const char *p = text;

	for (;;) {
		if (strncmp(p, s, n) == 0 &&
		    (!whole || p[n] == '\n' || p[n] == '\0'))
			return 1;
		if ((p = strchr(p, '\n')) == NULL)
			return 0;
		p++;
	}
}

static int
unit_has(const char *text, const char *line)
{
	return unit_match(text, line, 1);
}

/* key is given with its '=': "RemoveIPC=". */
static int
unit_sets(const char *text, const char *key)
{
	return unit_match(text, key, 0);
}

/*
 * Copies a built unit into dir, pointing ExecStart= at the daemon in the
 * build tree: the installed path need not exist, and systemd-analyze
 * checks that the command does.
 */
static void
unit_stage(const char *dir, const char *from, const char *name)
{
	char to[400], daemon[PATH_MAX], *text, *line, *nl, *sp;
	FILE *f;

	text = read_file(from);
	ck_assert_msg(text != NULL, "%s: %s (run make first)", from,
	    strerror(errno));
	ck_assert_msg(strstr(text, "@sbindir@") == NULL,
	    "%s: @sbindir@ was not substituted", from);
	/* systemd wants an absolute path; ACLHEAP_BUILDDIR may be "." */
	ck_assert_ptr_nonnull(realpath(td_prog("aclheapd"), daemon));
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	ck_assert_ptr_nonnull(f = fopen(to, "w"));
	for (line = text; *line != '\0'; line = nl) {
		nl = line + strcspn(line, "\n");
		nl += *nl == '\n';
		if (strncmp(line, "ExecStart=", 10) == 0 &&
		    (sp = strstr(line, "/aclheapd ")) != NULL && sp < nl)
			fprintf(f, "ExecStart=%s%.*s", daemon,
			    (int)(nl - sp - 9), sp + 9);
		else
			fprintf(f, "%.*s", (int)(nl - line), line);
	}
	ck_assert_int_eq(fclose(f), 0);
}

/* Runs systemd-analyze verify on units in dir: its exit status, output. */
static int
verify(const char *dir, const char *a, const char *b, char *out, size_t len)
{
	const char *tool = find_tool("systemd-analyze");
	char pa[400], pb[400];
	const char *argv[6];

	ck_assert_msg(tool != NULL, "systemd-analyze not found (Debian: "
	    "systemd)");
	snprintf(pa, sizeof(pa), "%s/%s", dir, a);
	snprintf(pb, sizeof(pb), "%s/%s", dir, b);
	argv[0] = tool;
	argv[1] = "verify";
	argv[2] = "--man=no";	/* the man pages are not installed yet */
	argv[3] = pa;
	argv[4] = pb;
	argv[5] = NULL;
	return run_cmd(out, len, argv);
}

/*
 * systemd-analyze verify returns 0 even for an unknown key or a bad value,
 * which it only prints; so a clean unit is exit status 0 and no output.
 */
START_TEST(test_units_verify)
{
	struct td t;
	char out[8192], path[400];
	FILE *f;

	td_init(&t, "units");
	/* The services are made by make, the sockets are sources. */
	unit_stage(t.dir, td_prog("systemd/aclheapd.service"),
	    "aclheapd.service");
	unit_stage(t.dir, td_prog("systemd/aclheapd@.service"),
	    "aclheapd@.service");
	unit_stage(t.dir, ACLHEAP_SRCDIR "/systemd/aclheapd.socket",
	    "aclheapd.socket");
	unit_stage(t.dir, ACLHEAP_SRCDIR "/systemd/aclheapd@.socket",
	    "aclheapd@.socket");

	ck_assert_msg(verify(t.dir, "aclheapd.service", "aclheapd.socket",
	    out, sizeof(out)) == 0 && out[0] == '\0',
	    "aclheapd.service: %s", out);
	/* A template verifies as an instance of itself. */
	ck_assert_msg(verify(t.dir, "aclheapd@t1.service", "aclheapd@t1.socket",
	    out, sizeof(out)) == 0 && out[0] == '\0',
	    "aclheapd@.service: %s", out);

	/* The check itself must see a mistake. */
	snprintf(path, sizeof(path), "%s/aclheapd.service", t.dir);
	ck_assert_ptr_nonnull(f = fopen(path, "a"));
	fputs("ProtectSytem=strict\n", f);
	ck_assert_int_eq(fclose(f), 0);
	verify(t.dir, "aclheapd.service", "aclheapd.socket", out, sizeof(out));
	ck_assert_msg(strstr(out, "ProtectSytem") != NULL,
	    "systemd-analyze did not report a misspelled key: '%s'", out);
	td_cleanup(&t);
}
END_TEST

/*
 * What the heap depends on, so that an edit cannot quietly drop it: the
 * readiness protocol, the directories, the user, and none of the options
 * that would delete or hide the live segment in /dev/shm.
 */
START_TEST(test_units_settings)
{
	static const char *const never[] = {
		"DynamicUser=", "RemoveIPC=", "PrivateDevices=",
		"PrivateUsers=", "ProtectProc=", NULL,
	};
	static const char *const svc_want[] = {
		"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID",
		"User=aclheap", "Group=aclheap", "RuntimeDirectoryPreserve=yes",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX",
		"PrivateNetwork=yes", "CapabilityBoundingSet=",
		"MemoryDenyWriteExecute=yes", "TimeoutStopSec=10min", NULL,
	};
	static const char *const sock_want[] = {
		"SocketMode=0660", "SocketUser=aclheap", "SocketGroup=aclheap",
		NULL,
	};
	const char *src = ACLHEAP_SRCDIR "/systemd";
	char path[400], *svc, *tpl, *sock, *tsock, *sysu;
	int i;

	svc = must_read(td_prog("systemd/aclheapd.service"));
	tpl = must_read(td_prog("systemd/aclheapd@.service"));
	snprintf(path, sizeof(path), "%s/aclheapd.socket", src);
	sock = must_read(path);
	snprintf(path, sizeof(path), "%s/aclheapd@.socket", src);
	tsock = must_read(path);
	snprintf(path, sizeof(path), "%s/aclheap.sysusers", src);
	sysu = must_read(path);

	for (i = 0; svc_want[i] != NULL; i++) {
		ck_assert_msg(unit_has(svc, svc_want[i]),
		    "aclheapd.service lacks %s", svc_want[i]);
		ck_assert_msg(unit_has(tpl, svc_want[i]),
		    "aclheapd@.service lacks %s", svc_want[i]);
	}
	for (i = 0; never[i] != NULL; i++) {
		ck_assert_msg(!unit_sets(svc, never[i]),
		    "aclheapd.service sets %s", never[i]);
		ck_assert_msg(!unit_sets(tpl, never[i]),
		    "aclheapd@.service sets %s", never[i]);
	}
	for (i = 0; sock_want[i] != NULL; i++) {
		ck_assert_msg(unit_has(sock, sock_want[i]),
		    "aclheapd.socket lacks %s", sock_want[i]);
		ck_assert_msg(unit_has(tsock, sock_want[i]),
		    "aclheapd@.socket lacks %s", sock_want[i]);
	}
	ck_assert(unit_has(svc, "StateDirectory=aclheap"));
	ck_assert(unit_has(svc, "RuntimeDirectory=aclheap"));
	ck_assert(unit_has(sock, "ListenStream=/run/aclheap/aclheap.sock"));
	ck_assert(strstr(svc, "/aclheapd --foreground") != NULL);
	ck_assert(unit_has(tpl, "StateDirectory=aclheap/%i"));
	ck_assert(unit_has(tpl, "RuntimeDirectory=aclheap/%i"));
	ck_assert(unit_has(tsock, "ListenStream=/run/aclheap/%i/aclheap.sock"));
	/* The config folder follows --sysconfdir, like the daemon's own
	 * default (tests/install.sh checks the installed units). */
	ck_assert(strstr(tpl, "--config " ACLHEAP_SYSCONFDIR
	    "/aclheap/%i.conf") != NULL);
	/* The daemon takes its socket and state folder from the
	 * directories above ($RUNTIME_DIRECTORY, $STATE_DIRECTORY). */
	ck_assert(strstr(svc, "--socket ") == NULL);
	ck_assert(strstr(svc, "--state-dir") == NULL);
	ck_assert(strstr(tpl, "--socket ") == NULL);
	ck_assert(strstr(tpl, "--state-dir") == NULL);
	ck_assert(unit_has(sysu,
	    "u aclheap - \"aclheap persistent heap\" /var/lib/aclheap"));
	free(svc);
	free(tpl);
	free(sock);
	free(tsock);
	free(sysu);
}
END_TEST

/* systemd-sysusers, applied to an empty root, makes the units' user. */
START_TEST(test_sysusers)
{
	const char *tool = find_tool("systemd-sysusers");
	char root[400], conf[400], path[400], out[4096], *text;
	const char *argv[4];
	struct td t;
	int rc;

	ck_assert_msg(tool != NULL, "systemd-sysusers not found (Debian: "
	    "systemd)");
	if (geteuid() != 0)
		td_skip("systemd-sysusers --root needs root to write the "
		    "passwd and group files (CI runs as root)");
	td_init(&t, "sysusers");
	snprintf(root, sizeof(root), "--root=%s", t.dir);
	snprintf(path, sizeof(path), "%s/etc", t.dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/systemd/aclheap.sysusers",
	    ACLHEAP_SRCDIR);
	argv[0] = tool;
	argv[1] = root;
	argv[2] = conf;
	argv[3] = NULL;
	rc = run_cmd(out, sizeof(out), argv);
	ck_assert_msg(rc == 0, "systemd-sysusers: %d: %s", rc, out);
	snprintf(path, sizeof(path), "%s/etc/passwd", t.dir);
	ck_assert_ptr_nonnull(text = read_file(path));
	ck_assert_msg(strncmp(text, "aclheap:x:", 10) == 0 &&
	    strstr(text, ":/var/lib/aclheap:") != NULL, "passwd: %s", text);
	snprintf(path, sizeof(path), "%s/etc/group", t.dir);
	ck_assert_ptr_nonnull(text = read_file(path));
	ck_assert_msg(strncmp(text, "aclheap:x:", 10) == 0, "group: %s", text);
	td_cleanup(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Socket activation */

/*
 * systemd-socket-activate listens, and on the first connection execs the
 * daemon in its own process with the socket as fd 3 (LISTEN_FDS=1), which
 * is what aclheapd.socket does.
 */
START_TEST(test_socket_activation)
{
	const char *tool = find_tool("systemd-socket-activate");
	const char *front[5];
	char exe[512], self[64];
	struct aclheap_stats st;
	struct stat before, after;
	struct td t;
	uint64_t end;
	void *p;
	int status;
	ssize_t len;

	ck_assert_msg(tool != NULL, "systemd-socket-activate not found "
	    "(Debian: systemd)");
	td_init(&t, "activate");
	front[0] = tool;
	front[1] = "-l";
	front[2] = t.sock;
	front[3] = "--";
	front[4] = NULL;
	spawn(&t, front, "/dev/null");

	/* Listening, but no daemon yet: the process is still the activator
	 * and nothing has touched the state folder. */
	/* The socket's file appears at bind(), before listen(): a client
	 * connecting in between is refused.  The activator says
	 * "Listening on" once it listens. */
	end = now_ms() + DEADLINE_MS;
	while (strstr(td_log(&t), "Listening on") == NULL && now_ms() < end)
		msleep(5);
	ck_assert_msg(stat(t.sock, &before) == 0 && S_ISSOCK(before.st_mode),
	    "no socket at %s: %s", t.sock, td_log(&t));
	snprintf(self, sizeof(self), "/proc/%d/exe", (int)t.pid);
	len = readlink(self, exe, sizeof(exe) - 1);
	ck_assert_int_gt(len, 0);
	exe[len] = '\0';
	ck_assert_msg(strstr(exe, "systemd-socket-activate") != NULL,
	    "before any client: %s", exe);
	ck_assert_int_eq(access(t.state, F_OK), -1);

	/* The first client starts it, and is served on that socket. */
	ck_assert_msg(aclheap_attach(t.sock) == 0, "attach: %s: %s",
	    aclheap_last_error(), td_log(&t));
	len = readlink(self, exe, sizeof(exe) - 1);
	ck_assert_int_gt(len, 0);
	exe[len] = '\0';
	ck_assert_msg(strstr(exe, "/aclheapd") != NULL, "after attach: %s",
	    exe);
	ck_assert_ptr_nonnull(p = aclmalloc(100));
	memset(p, 0x5a, 100);
	ck_assert_int_eq(aclheap_stats(&st), 0);
	ck_assert_uint_eq(st.base, TEST_BASE);
	ck_assert_uint_eq(aclfree(p), 100);
	aclheap_detach();

	/* A graceful stop leaves systemd's socket where it was: the daemon
	 * neither rebound it nor removed it. */
	kill(t.pid, SIGTERM);
	status = td_wait_exit(&t, 60000);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "exit status %d: %s", status,
	    td_log(&t));
	ck_assert_int_eq(stat(t.sock, &after), 0);
	ck_assert_uint_eq(after.st_ino, before.st_ino);
	ck_assert_ptr_nonnull(strstr(td_log(&t), "final checkpoint"));
	td_cleanup(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* sd_notify */

struct notify {
	int fd;
	char path[320];
	char env[340];		/* NOTIFY_SOCKET=path, for the daemon */
	int watchdogs;		/* WATCHDOG=1 lines seen so far */
	int readies;		/* READY=1 lines seen so far */
	char seen[8192];	/* every line, in order */
};

static void
notify_open(struct notify *n, const struct td *t)
{
	struct sockaddr_un sun;

	memset(n, 0, sizeof(*n));
	snprintf(n->path, sizeof(n->path), "%s/notify", t->dir);
	snprintf(n->env, sizeof(n->env), "NOTIFY_SOCKET=%s", n->path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(n->path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, n->path, strlen(n->path));
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(n->fd, 0);
	ck_assert_int_eq(bind(n->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
}

/*
 * Reads datagrams until one has the line want (NULL: none does), for at
 * most ms.  Counts READY=1 and WATCHDOG=1 on the way.  1 if want came.
 */
static int
notify_wait(struct notify *n, const char *want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms, now;
	struct pollfd pfd = { n->fd, POLLIN, 0 };
	char buf[4096], *line, *save;
	int found = 0, rc;
	ssize_t len;

	while (!found) {
		now = now_ms();
		rc = poll(&pfd, 1, now < end ? (int)(end - now) : 0);
		if (rc == -1 && errno == EINTR)
			continue;
		/* The time is up, and nothing is queued. */
		if (rc <= 0)
			break;
		if ((len = recv(n->fd, buf, sizeof(buf) - 1, 0)) <= 0)
			continue;
		buf[len] = '\0';
		for (line = strtok_r(buf, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save)) {
			if (strcmp(line, "WATCHDOG=1") == 0)
				n->watchdogs++;
			else if (strlen(n->seen) + strlen(line) + 2 <
			    sizeof(n->seen)) {
				strcat(n->seen, line);
				strcat(n->seen, "\n");
			}
			if (strcmp(line, "READY=1") == 0)
				n->readies++;
			if (want != NULL && strcmp(line, want) == 0)
				found = 1;
		}
	}
	return found;
}

/* Starts the fixture's daemon with the notify socket (and env) set. */
static void
notify_start(struct td *t, struct notify *n, const char *more_env)
{
	const char *env[3] = { n->env, more_env, NULL };

	ck_assert_int_eq(td_start_env(t, NULL, env), 0);
}

/*
 * READY=1 comes once the socket accepts connections, after the STATUS=
 * lines of the start; USR1 shows as checkpointing and back to serving;
 * HUP as RELOADING=1 then READY=1; TERM as STOPPING=1.  With no watchdog
 * asked for, there is no WATCHDOG=1.
 */
START_TEST(test_notify_ready)
{
	struct notify n;
	struct td t;
	char *ready, *p;
	int fd, status;

	td_init(&t, "notify");
	notify_open(&n, &t);
	notify_start(&t, &n, NULL);
	ck_assert_msg(notify_wait(&n, "READY=1", DEADLINE_MS),
	    "no READY=1; got '%s': %s", n.seen, td_log(&t));
	fd = sock_connect(t.sock);
	ck_assert_msg(fd >= 0, "READY=1 came before %s accepted: %s", t.sock,
	    strerror(errno));
	close(fd);
	ready = strstr(n.seen, "READY=1");
	p = strstr(n.seen, "STATUS=opening heap\n");
	ck_assert_msg(p != NULL && p < ready, "seen: %s", n.seen);
	p = strstr(n.seen, "STATUS=formatted new heap\n");
	ck_assert_msg(p != NULL && p < ready, "seen: %s", n.seen);
	ck_assert_ptr_nonnull(strstr(ready, "STATUS=serving\n"));

	kill(t.pid, SIGUSR1);
	ck_assert_msg(notify_wait(&n, "STATUS=checkpointing", DEADLINE_MS),
	    "seen: %s", n.seen);
	ck_assert_msg(notify_wait(&n, "STATUS=serving", DEADLINE_MS),
	    "seen: %s", n.seen);

	kill(t.pid, SIGHUP);
	ck_assert_msg(notify_wait(&n, "RELOADING=1", DEADLINE_MS), "seen: %s",
	    n.seen);
	ck_assert_msg(notify_wait(&n, "READY=1", DEADLINE_MS), "seen: %s",
	    n.seen);
	ck_assert_int_eq(n.readies, 2);

	kill(t.pid, SIGTERM);
	ck_assert_msg(notify_wait(&n, "STOPPING=1", DEADLINE_MS), "seen: %s",
	    n.seen);
	status = td_wait_exit(&t, 60000);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "exit status %d: %s", status,
	    td_log(&t));
	notify_wait(&n, NULL, 0);
	ck_assert_int_eq(n.watchdogs, 0);
	/* No "serving" after the final checkpoint: the stop is what shows. */
	p = strstr(n.seen, "STOPPING=1\n");
	ck_assert_ptr_null(strstr(p, "STATUS=serving"));
	close(n.fd);
	td_cleanup(&t);
}
END_TEST

/*
 * WatchdogSec=200ms hands the daemon WATCHDOG_USEC=200000 (and the daemon's
 * own WATCHDOG_PID, which a forked test cannot know; without it
 * sd_watchdog_enabled() takes the setting as meant for us).  The daemon
 * pings at half the period: ten a second; at least three in two seconds
 * is all this asks, so a loaded machine does not fail it.
 */
START_TEST(test_notify_watchdog)
{
	struct notify n;
	struct td t;
	int status, before;

	td_init(&t, "watchdog");
	notify_open(&n, &t);
	notify_start(&t, &n, "WATCHDOG_USEC=200000");
	ck_assert_msg(notify_wait(&n, "READY=1", DEADLINE_MS),
	    "no READY=1; got '%s': %s", n.seen, td_log(&t));
	before = n.watchdogs;
	notify_wait(&n, NULL, 2000);
	ck_assert_msg(n.watchdogs - before >= 3, "%d WATCHDOG=1 in 2 s",
	    n.watchdogs - before);
	/* A timer that fired without pause would be far above 20. */
	ck_assert_msg(n.watchdogs - before <= 200, "%d WATCHDOG=1 in 2 s",
	    n.watchdogs - before);

	kill(t.pid, SIGTERM);
	ck_assert_msg(notify_wait(&n, "STOPPING=1", DEADLINE_MS), "seen: %s",
	    n.seen);
	status = td_wait_exit(&t, 60000);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "exit status %d", status);
	close(n.fd);
	td_cleanup(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* SIGHUP */

struct probe {
	int fd;
	uint8_t abuf[65536];
	struct frame_arena arena;
};

/* One request on the probe's own connection; the reply, or NULL. */
static Aclheap__Reply *
probe_call(struct probe *pr, Aclheap__Request *q)
{
	static uint8_t buf[FRAME_HDR + FRAME_MAX];
	Aclheap__Reply *r;
	uint32_t len;
	long n;
	int sfd = -1;

	q->id++;
	if ((n = frame_pack_request(q, buf, sizeof(buf))) < 0 ||
	    frame_send(pr->fd, buf, (size_t)n, -1) != 0 ||
	    frame_recv(pr->fd, buf, sizeof(buf), &len, &sfd) != 0)
		return NULL;
	if (sfd >= 0)
		close(sfd);
	frame_arena_reset(&pr->arena);
	r = frame_unpack_reply(&pr->arena, buf, len);
	return r != NULL && r->error == 0 ? r : NULL;
}

/* A raw connection that said Hello as name. */
static void
probe_open(struct probe *pr, const char *sock, const char *name)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Hello h = ACLHEAP__HELLO__INIT;

	frame_arena_init(&pr->arena, pr->abuf, sizeof(pr->abuf));
	ck_assert_int_ge(pr->fd = sock_connect(sock), 0);
	h.version = PROTOCOL_VERSION;
	h.pid = (uint32_t)getpid();
	h.name = (char *)name;
	q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
	q.hello = &h;
	ck_assert_ptr_nonnull(probe_call(pr, &q));
}

/*
 * The library's connection as the daemon sees it: how many clients there
 * are, and how many requests the one that is not the probe has made.  A
 * connection that was dropped and made again starts counting anew.
 */
static void
probe_clients(struct probe *pr, uint64_t *nclients, uint64_t *requests)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Clients m = ACLHEAP__CLIENTS__INIT;
	Aclheap__Reply *r;
	size_t i;

	q.body_case = ACLHEAP__REQUEST__BODY_CLIENTS;
	q.clients = &m;
	ck_assert_msg((r = probe_call(pr, &q)) != NULL,
	    "the probe's connection failed");
	ck_assert_int_eq(r->body_case, ACLHEAP__REPLY__BODY_CLIENTS);
	*nclients = r->clients->n_clients;
	*requests = 0;
	for (i = 0; i < r->clients->n_clients; i++)
		if (r->clients->clients[i]->pid == (uint32_t)getpid() &&
		    strncmp(r->clients->clients[i]->name, "probe", 5) != 0)
			*requests = r->clients->clients[i]->requests;
}

/* The number of the last "checkpoint N:" line in the log, 0: none. */
static int
last_checkpoint(struct td *t)
{
	const char *p = td_log(t);
	size_t k;
	int n = 0;

	while ((p = strstr(p, "checkpoint ")) != NULL) {
		p += 11;
		k = strspn(p, "0123456789");
		if (k > 0 && k < 10 && p[k] == ':')
			n = atoi(p);
	}
	return n;
}

/*
 * HUP reloads log level, allow list and checkpoint interval from the file,
 * on the connections that are open: the library's connection keeps working
 * and keeps its request count (it was not dropped and made again).  A
 * broken file keeps the running settings, all of them, and says so.
 */
START_TEST(test_hup_reload)
{
	char conf[400], text[512];
	struct probe *pr, *pr2, *pr3;
	uint64_t n0, r0, n1, r1, n2, r2, end;
	struct td t;
	void *big, *p;
	int i, ck, nothing, status;

	td_init(&t, "hup");
	snprintf(conf, sizeof(conf), "%s/aclheapd.conf", t.dir);
	write_file(conf, "log-level = info\n");
	spawn(&t, NULL, conf);
	ck_assert_msg(td_wait_ready(&t) == 0, "not ready: %s", td_log(&t));

	/* Extents (above the largest class, 4 MiB) go through the daemon,
	 * not a leased slab. */
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	ck_assert_ptr_nonnull(big = aclmalloc(5 << 20));
	memset(big, 0xa5, 5 << 20);
	for (i = 0; i < 4; i++)
		ck_assert_ptr_nonnull(p = aclmalloc(5 << 20));
	ck_assert_ptr_nonnull(pr = calloc(3, sizeof(*pr)));
	pr2 = pr + 1;
	pr3 = pr + 2;
	probe_open(pr, t.sock, "probe");
	probe_clients(pr, &n0, &r0);
	ck_assert_uint_eq(n0, 2);
	ck_assert_uint_ge(r0, 6);
	/* At info the probe's Hello (a debug line) is not logged. */
	ck_assert_ptr_null(strstr(td_log(&t), "(probe)"));
	ck_assert_ptr_null(strstr(td_log(&t), "checkpoint 1:"));

	write_file(conf, "log-level = debug\ncheckpoint-interval = 1\n");
	kill(t.pid, SIGHUP);
	ck_assert_msg(log_wait(&t, "reloaded ", DEADLINE_MS), "%s",
	    td_log(&t));
	snprintf(text, sizeof(text), "reloaded %s: log level 7,", conf);
	ck_assert_msg(strstr(td_log(&t), text) != NULL, "%s", td_log(&t));
	ck_assert_ptr_nonnull(strstr(td_log(&t), "checkpoint every 1s"));

	/* The same connections, still serving. */
	ck_assert_uint_eq(aclfree(big), 5 << 20);
	ck_assert_ptr_nonnull(p = aclmalloc(5 << 20));
	ck_assert_uint_eq(aclfree(p), 5 << 20);
	probe_clients(pr, &n1, &r1);
	ck_assert_uint_eq(n1, n0);
	ck_assert_uint_ge(r1, r0 + 3);
	/* Debug now: a new connection's Hello is logged... */
	probe_open(pr2, t.sock, "probe2");
	ck_assert_msg(log_wait(&t, "(probe2)", DEADLINE_MS), "%s", td_log(&t));
	/* ...and checkpoints come every second while clients are there. */
	ck_assert_msg(log_wait(&t, "checkpoint 1:", DEADLINE_MS), "%s",
	    td_log(&t));

	/* A broken file: an error, and nothing of it applies, not even its
	 * good lines. */
	write_file(conf, "log-level = loud\ncheckpoint-interval = 600\n");
	kill(t.pid, SIGHUP);
	ck_assert_msg(log_wait(&t, "config has errors; keeping the running "
	    "settings", DEADLINE_MS), "%s", td_log(&t));
	ck_assert_ptr_nonnull(strstr(td_log(&t), "log level 'loud'"));
	ck = last_checkpoint(&t);
	nothing = str_count(td_log(&t), "checkpoint: nothing changed");
	probe_open(pr3, t.sock, "probe3");
	ck_assert_msg(log_wait(&t, "(probe3)", DEADLINE_MS), "%s", td_log(&t));
	/* The timer still runs every second: a checkpoint, or one that
	 * found nothing changed and wrote nothing. */
	end = now_ms() + DEADLINE_MS;
	while (last_checkpoint(&t) <= ck && str_count(td_log(&t),
	    "checkpoint: nothing changed") <= nothing) {
		ck_assert_msg(now_ms() < end, "no checkpoint after %d: %s",
		    ck, td_log(&t));
		msleep(10);
	}
	ck_assert_ptr_nonnull(p = aclmalloc(5 << 20));
	ck_assert_uint_eq(aclfree(p), 5 << 20);
	probe_clients(pr, &n2, &r2);
	ck_assert_uint_eq(n2, n0 + 2);
	ck_assert_uint_ge(r2, r1 + 2);

	close(pr->fd);
	close(pr2->fd);
	close(pr3->fd);
	free(pr);
	aclheap_detach();
	kill(t.pid, SIGTERM);
	status = td_wait_exit(&t, 60000);
	ck_assert_msg(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "exit status %d: %s", status,
	    td_log(&t));
	td_cleanup(&t);
}
END_TEST

Suite *
systemd_suite(void)
{
	Suite *s = suite_create("systemd");
	TCase *tc;

	tc = tcase_create("units");
	tcase_add_test(tc, test_units_verify);
	tcase_add_test(tc, test_units_settings);
	tcase_add_test(tc, test_sysusers);
	suite_add_tcase(s, tc);

	tc = tcase_create("activation");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_socket_activation);
	suite_add_tcase(s, tc);

	tc = tcase_create("notify");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_notify_ready);
	tcase_add_test(tc, test_notify_watchdog);
	suite_add_tcase(s, tc);

	tc = tcase_create("reload");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hup_reload);
	suite_add_tcase(s, tc);
	return s;
}
