/* SPDX-License-Identifier: MIT */
/*
 * testutil.c: the daemon fixture and process helpers for the Check suites.
 *
 * Readiness is a real check, never a fixed sleep: td_wait_ready() connects
 * to the socket until the daemon accepts (or exits, or 20 s pass).
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/shm.h"
#include "tests/testutil.h"

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Path of a program built in this tree (ACLHEAP_BUILDDIR from make). */
const char *
td_prog(const char *name)
{
	static char buf[4][512];
	static int i;
	const char *b = getenv("ACLHEAP_BUILDDIR");

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", b ? b : ".", name);
	return buf[i];
}

/*
 * The fixture's folder, /tmp/aclheap-test-TAG-XXXXXX, and the paths in it;
 * the daemon's log level debug, its base TEST_BASE and size TEST_SIZE.
 * Needs no Check runner (the benchmark uses it): 0, or -errno.
 */
int
td_setup(struct td *t, const char *tag)
{
	memset(t, 0, sizeof(*t));
	t->pid = -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/aclheap-test-%s-XXXXXX", tag);
	if (mkdtemp(t->dir) == NULL) {
		t->dir[0] = '\0';
		return -errno;
	}
	snprintf(t->sock, sizeof(t->sock), "%s/sock", t->dir);
	snprintf(t->state, sizeof(t->state), "%s/state", t->dir);
	snprintf(t->log, sizeof(t->log), "%s/daemon.log", t->dir);
	snprintf(t->base, sizeof(t->base), "0x%llx",
	    (unsigned long long)TEST_BASE);
	snprintf(t->size, sizeof(t->size), "%s", TEST_SIZE);
	t->log_level = "debug";
	setenv("ACLHEAP_SOCKET", t->sock, 1);
	return 0;
}

void
td_init(struct td *t, const char *tag)
{
	ck_assert_int_eq(td_setup(t, tag), 0);
}

/* Puts the daemon and the fixture's socket, state folder, base, size and
 * config at argv[n]; the next free index. */
int
td_daemon_argv(const struct td *t, const char **argv, int n,
    const char *config)
{
	argv[n++] = td_prog("aclheapd");
	argv[n++] = "--foreground";
	argv[n++] = "--socket";
	argv[n++] = t->sock;
	argv[n++] = "--state-dir";
	argv[n++] = t->state;
	/* An empty base or size is left to the daemon (the heap's own). */
	if (t->base[0] != '\0') {
		argv[n++] = "--base";
		argv[n++] = t->base;
	}
	if (t->size[0] != '\0') {
		argv[n++] = "--size";
		argv[n++] = t->size;
	}
	if (strcmp(t->max, "-") != 0 && (t->max[0] != '\0' ||
	    t->size[0] != '\0')) {
		argv[n++] = "--max-size";
		argv[n++] = t->max[0] != '\0' ? t->max : t->size;
	}
	argv[n++] = "--config";
	argv[n++] = config;
	return n;
}

int
td_start_env(struct td *t, const char *const *extra, const char *const *env)
{
	const char *argv[64];
	int n, fd, i;
	pid_t pid;

	n = td_daemon_argv(t, argv, 0, "/dev/null");
	if (t->log_level != NULL) {
		argv[n++] = "--log-level";
		argv[n++] = t->log_level;
	}
	for (i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	if ((pid = fork()) == -1)
		return -errno;
	if (pid == 0) {
		fd = open(t->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		for (i = 0; env != NULL && env[i] != NULL; i++)
			putenv((char *)env[i]);
		if (t->nofile > 0) {
			struct rlimit rl = { (rlim_t)t->nofile,
			    (rlim_t)t->nofile };

			if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
				_exit(126);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	t->pid = pid;
	return 0;
}

int
td_start(struct td *t, const char *const *extra)
{
	int rc;

	if ((rc = td_start_env(t, extra, NULL)) != 0)
		return rc;
	return td_wait_ready(t);
}

/* The segment the daemon's heap.id names, "/aclheap-HEX": 0, or -1. */
static int
shm_name_of(const struct td *t, char *name, size_t len)
{
	char path[400], hex[64];
	FILE *f;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/heap.id", t->state);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fscanf(f, "%63s", hex) == 1) {
		snprintf(name, len, "/aclheap-%s", hex);
		rc = 0;
	}
	fclose(f);
	return rc;
}

/* Connects until the daemon accepts: 0, or -1 if it exited or took
 * ready_ms (20 s when 0). */
int
td_wait_ready(struct td *t)
{
	struct sockaddr_un sun;
	uint64_t end = now_ms() + (t->ready_ms > 0 ? (uint64_t)t->ready_ms :
	    20000);
	int fd, status;

	/* A path the kernel would cut short could name another socket. */
	if (strlen(t->sock) >= sizeof(sun.sun_path))
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, t->sock, strlen(t->sock) + 1);
	while (now_ms() < end) {
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			t->pid = -1;
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			/* Remembered for td_cleanup(), whatever the test does
			 * to the state folder. */
			if (shm_name_of(t, t->shm, sizeof(t->shm)) != 0)
				t->shm[0] = '\0';
			return 0;
		}
		close(fd);
		msleep(5);
	}
	return -1;
}

/* Waits for a child with a deadline; its raw wait status, or -1. */
int
wait_child(pid_t pid, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r == -1 || now_ms() >= end)
			return -1;
		msleep(2);
	}
}

int
td_wait_exit(struct td *t, int timeout_ms)
{
	int st;

	if (t->pid <= 0)
		return -1;
	st = wait_child(t->pid, timeout_ms);
	if (st != -1)
		t->pid = -1;
	return st;
}

/* Sends sig and reaps the daemon: its wait status, or -1. */
int
td_stop(struct td *t, int sig)
{
	int st;

	if (t->pid <= 0)
		return -1;
	kill(t->pid, sig);
	st = wait_child(t->pid, 60000);
	if (st == -1) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
	}
	t->pid = -1;
	return st;
}

/* The segment's meta object goes with it (shm/shm.h). */
static void
meta_unlink(const char *name)
{
	char m[300];

	snprintf(m, sizeof(m), "%s.meta", name);
	(void)shm_unlink(m);
}

/*
 * Maps the live segment of t (size bytes) at an address of the kernel's
 * choosing, with its meta object over the daemon's ranges, as every
 * process sees it: MAP_PRIVATE (a copy) or MAP_SHARED.  NULL on error.
 */
void *
td_seg_map(const struct td *t, uint64_t size, int flags)
{
	struct shm_super sb;
	uint64_t own[3][2];
	char m[300];
	void *mem;
	int fd, mfd, i;

	snprintf(m, sizeof(m), "%s.meta", t->shm);
	if ((fd = shm_open(t->shm, O_RDWR, 0)) == -1)
		return NULL;
	/* The ranges as the superblock gives them (seg_own_ranges()), so
	 * that this links without the library's internals. */
	if ((mfd = shm_open(m, O_RDWR, 0)) == -1 ||
	    pread(mfd, &sb, sizeof(sb), 0) != (ssize_t)sizeof(sb) ||
	    sb.magic != SHM_MAGIC || sb.data_off > size) {
		if (mfd >= 0)
			close(mfd);
		close(fd);
		return NULL;
	}
	own[0][0] = 0;
	own[0][1] = sb.leases_off;
	own[1][0] = sb.slabs_off;
	own[1][1] = sb.bitmaps_off;
	own[2][0] = sb.sessions_off;
	own[2][1] = sb.data_off;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
	for (i = 0; mem != MAP_FAILED && i < 3; i++)
		if (mmap((char *)mem + own[i][0], own[i][1] - own[i][0],
		    PROT_READ | PROT_WRITE, flags | MAP_FIXED, mfd,
		    (off_t)own[i][0]) == MAP_FAILED) {
			munmap(mem, size);
			mem = MAP_FAILED;
		}
	close(fd);
	close(mfd);
	return mem == MAP_FAILED ? NULL : mem;
}

/* Removes the live segment, as a reboot would. */
int
td_shm_unlink(struct td *t)
{
	char name[sizeof(t->shm)];
	int rc = -1;

	name[0] = '\0';
	if (shm_name_of(t, name, sizeof(name)) == 0) {
		rc = shm_unlink(name);
		meta_unlink(name);
	}
	/* A test may have removed the state folder since the daemon was
	 * ready: the segment named then goes too. */
	if (t->shm[0] != '\0' && strcmp(t->shm, name) != 0) {
		(void)shm_unlink(t->shm);
		meta_unlink(t->shm);
	}
	return rc;
}

char *
td_log(struct td *t)
{
	static char buf[65536];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	if ((fd = open(t->log, O_RDONLY)) == -1)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

/* Polls the daemon's log until it holds what n times, timeout_ms at
 * most; fails the test, with the log, when it does not. */
void
td_log_wait(struct td *t, const char *what, int n, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	while (str_count(td_log(t), what) < n) {
		ck_assert_msg(now_ms() < end, "'%s' not logged %d times in "
		    "%d ms:\n%s", what, n, timeout_ms, td_log(t));
		msleep(5);
	}
}

/* How many times needle stands in hay, not overlapping. */
int
str_count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* A whole file, malloc'd and NUL-terminated; its length in *len. */
void *
file_slurp(const char *path, size_t *len)
{
	struct stat st;
	char *b;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_msg(read(fd, b, (size_t)st.st_size) == st.st_size,
	    "%s: short read", path);
	close(fd);
	b[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return b;
}

/* Writes b as the whole of path. */
void
file_spit(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, b, len), (ssize_t)len);
	close(fd);
}

void
td_cleanup(struct td *t)
{
	char cmd[400];

	if (t->pid > 0)
		td_stop(t, SIGKILL);
	td_shm_unlink(t);
	if (t->dir[0] != '\0' && strncmp(t->dir, "/tmp/aclheap-test-", 18) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", t->dir);
	}
}

/*
 * Runs a program, capturing stdout (and stderr) into out.  Returns its exit
 * status, 128+N for a signal, -1 if it could not run.
 */
int
run_cmd(char *out, size_t outlen, const char *const *argv)
{
	int p[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(p) == -1)
		return -1;
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 1);
		dup2(p[1], 2);
		/* Only 1 and 2 hold the pipe: a daemon that detaches closes
		 * those, and the reader sees the end. */
		if (p[1] > 2)
			close(p[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (outlen > 0 && got < outlen - 1 &&
	    (n = read(p[0], out + got, outlen - 1 - got)) > 0)
		got += (size_t)n;
	if (outlen > 0)
		out[got] = '\0';
	{
		char sink[4096];

		while (read(p[0], sink, sizeof(sink)) > 0)
			;
	}
	close(p[0]);
	if (waitpid(pid, &status, 0) == -1)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/*
 * Notes a skipped test in the file check_run() named in
 * $ACLHEAP_SKIP_FILE: the test runs in a child (Check forks), so the note
 * goes through the file system.  fn is the test's function, "<name>_fn".
 */
void
td_skip_note(const char *fn, const char *fmt, ...)
{
	const char *path = getenv("ACLHEAP_SKIP_FILE");
	char reason[400], line[600];
	size_t n = strlen(fn);
	va_list ap;
	int fd, len;

	if (n > 3 && strcmp(fn + n - 3, "_fn") == 0)
		n -= 3;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	reason[strcspn(reason, "\n")] = '\0';
	len = snprintf(line, sizeof(line), "%.*s\t%s\n", (int)n, fn, reason);
	/* No file (a suite run by hand outside check_run()): a skip must
	 * not pass unseen, so it fails with its reason. */
	if (path == NULL)
		ck_abort_msg("SKIP: %s", reason);
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 || write(fd, line, (size_t)len) != len)
		ck_abort_msg("SKIP (not recorded): %s", reason);
	close(fd);
}

int
td_can_unshare_mounts(char *why, size_t len)
{
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		snprintf(why, len, "needs root to mount file systems (CI runs "
		    "as root)");
		return 0;
	}
	/* Tried in a child, so this process keeps its namespace. */
	if ((pid = fork()) == 0)
		_exit(unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL,
		    MS_REC | MS_PRIVATE, NULL) == 0 ? 0 : 1);
	if (pid == -1 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		snprintf(why, len, "this machine does not allow mount "
		    "namespaces (unshare(CLONE_NEWNS) or a private mount "
		    "failed; a container without CAP_SYS_ADMIN?)");
		return 0;
	}
	return 1;
}

/* The test name of a TAP line "ok N - file:tcase:name: Passed", or NULL. */
static const char *
tap_name(char *line, size_t *n)
{
	char *end = strstr(line, ": Passed"), *p;

	if (strncmp(line, "ok ", 3) != 0 || end == NULL)
		return NULL;
	for (p = end; p > line && p[-1] != ':'; p--)
		;
	*n = (size_t)(end - p);
	return p;
}

/* The reason the skip file gives for test name, or NULL. */
static const char *
skip_reason(const char *skips, const char *name, size_t n)
{
	const char *p;

	for (p = skips; p != NULL && *p != '\0'; p = strchr(p, '\n'),
	    p = p != NULL ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == '\t')
			return p + n + 1;
	return NULL;
}

/*
 * Runs the suites with TAP on stdout, one "ok" line per test.  Check
 * writes its TAP to a file first; the lines of tests that called
 * td_skip() get their "# SKIP reason" directive on the way to stdout.
 */
int
check_run(Suite *(*const *suites)(void), int n)
{
	char tap[] = "/tmp/aclheap-tap-XXXXXX", skip[] = "/tmp/aclheap-skip-XXXXXX";
	char line[1024], skips[16384];
	const char *name, *why;
	SRunner *sr;
	ssize_t got;
	size_t len;
	FILE *f;
	int i, failed, fd;

	if ((fd = mkstemp(tap)) == -1 || close(fd) == -1 ||
	    (fd = mkstemp(skip)) == -1) {
		perror("check_run: mkstemp");
		return 99;
	}
	setenv("ACLHEAP_SKIP_FILE", skip, 1);
	sr = srunner_create(suites[0]());
	for (i = 1; i < n; i++)
		srunner_add_suite(sr, suites[i]());
	srunner_set_tap(sr, tap);
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	got = pread(fd, skips, sizeof(skips) - 1, 0);
	skips[got > 0 ? got : 0] = '\0';
	close(fd);
	if ((f = fopen(tap, "r")) == NULL) {
		perror(tap);
		return 99;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((name = tap_name(line, &len)) != NULL &&
		    (why = skip_reason(skips, name, len)) != NULL)
			printf("%.*s # SKIP %.*s\n", (int)(name + len - line),
			    line, (int)strcspn(why, "\n"), why);
		else
			printf("%s\n", line);
	}
	fclose(f);
	fflush(stdout);
	unlink(tap);
	unlink(skip);
	return failed == 0 ? 0 : 1;
}

static int
copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, out, rc = 0;

	if ((in = open(from, O_RDONLY)) == -1)
		return -1;
	if ((out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755)) == -1) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			rc = -1;
	close(in);
	if (close(out) == -1 || n < 0)
		rc = -1;
	return rc;
}

/*
 * Copies a built program (and libaclheap.so.1) into the test's own folder,
 * readable by every user, so a test can run it as another uid wherever the
 * build tree lives.  Returns the copy's path.
 */
const char *
td_stage(struct td *t, const char *prog)
{
	static char path[400];
	char from[600], lib[600], libto[400];
	const char *base = strrchr(prog, '/');

	base = base != NULL ? base + 1 : prog;
	snprintf(from, sizeof(from), "%s", td_prog(prog));
	{
		/* libtool keeps the real binary of a shared-linked program in
		 * .libs/ beside its wrapper script. */
		char real[600];
		const char *slash = strrchr(from, '/');

		snprintf(real, sizeof(real), "%.*s/.libs/%s",
		    (int)(slash - from), from, base);
		if (access(real, X_OK) == 0)
			snprintf(from, sizeof(from), "%s", real);
	}
	snprintf(path, sizeof(path), "%s/%s", t->dir, base);
	ck_assert_msg(copy_file(from, path) == 0, "copy %s", from);
	snprintf(lib, sizeof(lib), "%s", td_prog(".libs/libaclheap.so.1"));
	snprintf(libto, sizeof(libto), "%s/libaclheap.so.1", t->dir);
	if (access(lib, R_OK) == 0)
		ck_assert_msg(copy_file(lib, libto) == 0, "copy %s", lib);
	setenv("LD_LIBRARY_PATH", t->dir, 1);
	ck_assert_int_eq(chmod(t->dir, 0755), 0);
	return path;
}
