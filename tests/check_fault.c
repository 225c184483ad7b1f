/* SPDX-License-Identifier: MIT */
/*
 * check_fault.c: aclheapd when the machine runs short.  A /dev/shm far
 * smaller than the heap, a state folder that fills up during a checkpoint,
 * a descriptor limit that runs out, a flood of connections from users the
 * daemon does not admit (and of admitted ones that never say Hello), and
 * 64 clients at once.  In each case
 * the promise is the same: a clear error where something cannot be had,
 * no fault in any process, and the daemon serving on.
 *
 * The small file systems are tmpfs mounts in a private mount namespace of
 * the test's own process (Check runs each test in a child of its own), so
 * the daemon it starts sees them and nothing else on the machine does.
 * That needs root and mount namespaces, as CI has; elsewhere those tests
 * report SKIP with the reason.
 */
#include "config.h"

#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aclheap.h"
#include "client/client.h"
#include "shm/image.h"
#include "tests/testutil.h"

static struct td td;
static char mounted[300];

static void
down(void)
{
	if (td.pid > 0)
		td_stop(&td, SIGKILL);
	/* Our mount would keep rm -rf from the folder beneath it. */
	if (mounted[0] != '\0' && strcmp(mounted, "/dev/shm") != 0)
		umount2(mounted, MNT_DETACH);
	if (td.dir[0] != '\0')
		td_cleanup(&td);
}

/* The tests that mount a small file system skip, saying why, where this
 * process may not make a mount namespace. */
#define NEED_MOUNTS() do {						\
	char why_[200];							\
									\
	if (!td_can_unshare_mounts(why_, sizeof(why_)))			\
		td_skip("%s", why_);					\
} while (0)

/* A tmpfs of the given size on target, seen by this process and its
 * children only. */
static void
private_tmpfs(const char *target, const char *size)
{
	char opts[64];

	ck_assert_msg(unshare(CLONE_NEWNS) == 0, "unshare: %s",
	    strerror(errno));
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	snprintf(opts, sizeof(opts), "size=%s,mode=1777", size);
	ck_assert_msg(mount("tmpfs", target, "tmpfs", 0, opts) == 0,
	    "mount tmpfs on %s: %s", target, strerror(errno));
	snprintf(mounted, sizeof(mounted), "%s", target);
}

/* The daemon's own check of the live heap (the Verify request). */
static uint64_t
verify_live(void)
{
	uint8_t abuf[4096];
	struct frame_arena a;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Verify v = ACLHEAP__VERIFY__INIT;
	Aclheap__Reply *r;
	int rc;

	q.body_case = ACLHEAP__REQUEST__BODY_VERIFY;
	q.verify = &v;
	frame_arena_init(&a, abuf, sizeof(abuf));
	rc = conn_request(&q, &r, &a, NULL);
	ck_assert_msg(rc == 0, "verify: %s", aclheap_last_error());
	ck_assert_int_eq(r->body_case, ACLHEAP__REPLY__BODY_VERIFY);
	return r->verify->blocks_live;
}

/* Read (aclheapctl hexdump) of len bytes at addr: the reply's error. */
static int
read_at(uintptr_t addr, uint32_t len)
{
	static uint8_t abuf[FRAME_MAX + 4096];
	struct frame_arena a;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Read m = ACLHEAP__READ__INIT;
	Aclheap__Reply *r;
	int rc;

	m.addr = addr;
	m.len = len;
	q.body_case = ACLHEAP__REQUEST__BODY_READ;
	q.read = &m;
	frame_arena_init(&a, abuf, sizeof(abuf));
	rc = conn_request(&q, &r, &a, NULL);
	if (rc == 0)
		ck_assert_uint_eq(r->read->data.len, len);
	return -rc;
}

static void
heap_checks_out(void)
{
	char err[512];

	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	(void)verify_live();
}

/*
 * A 1 GiB heap on a 64 MiB /dev/shm: allocations fail with ENOMEM once the
 * memory is gone, every byte of every block handed out can be written (a
 * page the daemon did not commit would be SIGBUS here), the daemon goes on
 * verifying, checkpointing and freeing, the image comes back into the same
 * /dev/shm after a reboot with every byte writable again, and freed memory
 * can be had again.
 */
enum { MAXB = 200000 };
static void *blk[MAXB];
static size_t req[MAXB];
static size_t nblk;

/*
 * Allocates blocks of shrinking sizes until each size fails, which must be
 * with ENOMEM, writing every byte of each (every other block all zeros:
 * an image keeps those as holes).  The bytes requested.
 */
static size_t
fill_until_enomem(void)
{
	static const size_t sizes[] = { 1 << 20, 100000, 5000, 700, 100, 16 };
	size_t k, total = 0;
	void *p;

	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		for (;;) {
			ck_assert_uint_lt(nblk, MAXB);
			errno = 0;
			if ((p = aclmalloc(sizes[k])) == NULL) {
				ck_assert_msg(errno == ENOMEM, "aclmalloc(%zu): "
				    "errno %d: %s", sizes[k], errno,
				    aclheap_last_error());
				break;
			}
			memset(p, nblk % 2 ? 0xa5 : 0, aclheap_usable_size(p));
			blk[nblk] = p;
			req[nblk++] = sizes[k];
			total += sizes[k];
		}
	}
	return total;
}

START_TEST(tiny_shm_gives_enomem_not_sigbus)
{
	size_t n, i, k, total;
	void *p;

	NEED_MOUNTS();
	private_tmpfs("/dev/shm", "64m");
	td_init(&td, "tinyshm");
	snprintf(td.size, sizeof(td.size), "1G");
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	total = fill_until_enomem();
	n = nblk;
	/* Most of /dev/shm went to blocks before the first ENOMEM. */
	ck_assert_uint_gt(total, 32 << 20);
	ck_assert_uint_lt(total, 64 << 20);
	heap_checks_out();
	/* A full /dev/shm does not stop a checkpoint (the state folder is
	 * elsewhere). */
	ck_assert_msg(aclheap_checkpoint() == 0, "%s", aclheap_last_error());
	heap_checks_out();
	/* After a reboot (nobody maps the old segment any more) the image
	 * fits the same /dev/shm again... */
	aclheap_detach();
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "loaded image"));
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	for (i = 0; i < n; i++)
		ck_assert_uint_eq(((unsigned char *)blk[i])[req[i] - 1],
		    i % 2 ? 0xa5 : 0);
	/* ...with the all-zero blocks committed again: whatever room is
	 * left goes to new blocks, and then every byte of the old ones can
	 * still be written. */
	(void)fill_until_enomem();
	for (i = 0; i < nblk; i++)
		memset(blk[i], 0x77, aclheap_usable_size(blk[i]));
	/* Bytes nobody committed read as zeros; reading them must not
	 * fault the daemon either. */
	for (k = 1; k <= 64; k++) {
		uint64_t s = conn_seg.nslabs - k;

		ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(
		    &conn_seg.slabs[s].word)), SHM_FREE);
		ck_assert_int_eq(read_at(slab_addr(&conn_seg, s), 16384), 0);
		ck_assert_int_eq(read_at(conn_seg.base + conn_seg.sb->sides_off +
		    s * SHM_SIDE_BYTES, SHM_SIDE_BYTES), 0);
	}
	for (i = 0; i < nblk; i++)
		ck_assert_uint_eq(aclfree(blk[i]), req[i]);
	p = aclmalloc(32 << 20);
	ck_assert_msg(p != NULL, "after the frees: %s", aclheap_last_error());
	memset(p, 0x5a, 32 << 20);
	ck_assert_uint_eq(aclfree(p), 32 << 20);
	heap_checks_out();
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
}
END_TEST

/*
 * A heap far bigger than /dev/shm is fine as long as what is used fits:
 * 16 GiB on 64 MiB.  Its bitmaps alone would take 128 MiB, so nothing may
 * touch those of unused slabs: not the check at start-up, not Verify, not
 * a checkpoint, not a client's shm_check().
 */
START_TEST(sparse_heap_bigger_than_shm)
{
	void *p[8];
	int i;

	NEED_MOUNTS();
	private_tmpfs("/dev/shm", "64m");
	td_init(&td, "sparse");
	snprintf(td.size, sizeof(td.size), "16G");
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	for (i = 0; i < 8; i++) {
		p[i] = aclmalloc(i % 2 ? 1 << 20 : 1000);
		ck_assert_msg(p[i] != NULL, "%s", aclheap_last_error());
		memset(p[i], i, aclheap_usable_size(p[i]));
	}
	heap_checks_out();
	ck_assert_msg(aclheap_checkpoint() == 0, "%s", aclheap_last_error());
	for (i = 0; i < 8; i++)
		ck_assert_uint_eq(aclfree(p[i]), i % 2 ? 1 << 20 : 1000);
	heap_checks_out();
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
	/* And it comes back from the image, still within 64 MiB. */
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "loaded image"));
	heap_checks_out();
}
END_TEST

/*
 * The state folder fills up during a checkpoint (a delta): the checkpoint
 * fails with the reason logged and returned, heap.img stays exactly the
 * previous image, no temp file is left, the daemon serves on, and a
 * checkpoint succeeds again once there is room.
 */
START_TEST(checkpoint_disk_full_keeps_image)
{
	const char *extra[] = { "--checkpoint-interval", "0", NULL };
	char img[400], tmp[400], delta[400], err[512];
	uint8_t *before, *after;
	size_t lb, la;
	struct image_info info;
	struct shm_seg off;
	struct stat st;
	void *big[20];
	uintptr_t a;
	int i;

	NEED_MOUNTS();
	td_init(&td, "diskfull");
	ck_assert_int_eq(mkdir(td.state, 0700), 0);
	private_tmpfs(td.state, "16m");
	ck_assert_msg(td_start(&td, extra) == 0, "%s", td_log(&td));
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	snprintf(tmp, sizeof(tmp), "%s/heap.img.delta.1.tmp", td.state);
	snprintf(delta, sizeof(delta), "%s/heap.img.delta.1", td.state);
	memset(aclmalloc(1000), 1, 1000);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	before = file_slurp(img, &lb);
	for (i = 0; i < 20; i++) {
		big[i] = aclmalloc(1 << 20);
		ck_assert_ptr_nonnull(big[i]);
		memset(big[i], 'a' + i, 1 << 20);
	}
	/* About 21 MB to write into 16 MB. */
	ck_assert_int_eq(aclheap_checkpoint(), -EIO);
	ck_assert_msg(strstr(aclheap_last_error(), strerror(ENOSPC)) != NULL &&
	    strstr(aclheap_last_error(), "heap.img.delta.1.tmp") != NULL, "%s",
	    aclheap_last_error());
	ck_assert_ptr_nonnull(strstr(td_log(&td), "checkpoint failed"));
	after = file_slurp(img, &la);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(before, after, lb), 0);
	free(after);
	ck_assert_int_ne(stat(tmp, &st), 0);
	ck_assert_int_ne(stat(delta, &st), 0);
	ck_assert_msg(image_load_offline(img, &off, &info, err, sizeof(err)) ==
	    0, "%s", err);
	image_unload_offline(&off);
	/* Serving on. */
	heap_checks_out();
	for (i = 12; i < 20; i++)
		ck_assert_uint_eq(aclfree(big[i]), 1 << 20);
	/* The freed blocks lie in two spans of four; the thread's private
	 * set keeps the last one until it gives its leases back. */
	aclheap_detach();
	/* About 13 MB now: room again. */
	ck_assert_msg(aclheap_checkpoint() == 0, "%s", aclheap_last_error());
	ck_assert_int_eq(stat(delta, &st), 0);	/* a delta after the base */
	after = file_slurp(img, &la);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(before, after, lb), 0);
	free(after);
	ck_assert_msg(image_load_offline(img, &off, &info, err, sizeof(err)) ==
	    0, "%s", err);
	ck_assert_msg(shm_check(&off, NULL, err, sizeof(err)) == 0, "%s", err);
	for (i = 0; i < 12; i++) {
		a = (uintptr_t)big[i] - conn_seg.data + off.data;
		ck_assert_uint_eq(((uint8_t *)a)[(1 << 20) - 1], 'a' + i);
	}
	image_unload_offline(&off);
	free(before);
	/* The deltas have outgrown the base: the final checkpoint is a new
	 * base, which needs room beside the chain, which 16 MB has not: the
	 * stop says it failed (exit 1), and the image that is there stays
	 * whole. */
	before = file_slurp(img, &lb);
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 1);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "final checkpoint failed"));
	after = file_slurp(img, &la);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(before, after, lb), 0);
	free(before);
	free(after);
}
END_TEST

/*
 * A checkpoint that failed for want of room is tried again by the interval
 * timer once there is room, even when nothing changed in the heap since
 * and no client is connected: the delta appears.
 */
START_TEST(checkpoint_retried_when_room_returns)
{
	const char *extra[] = { "--checkpoint-interval", "1", NULL };
	char img[400], delta[400], filler[400], zero[65536];
	struct stat st;
	uint64_t end;
	char *p = NULL;
	int fd, i;

	NEED_MOUNTS();
	td_init(&td, "retry");
	ck_assert_int_eq(mkdir(td.state, 0700), 0);
	private_tmpfs(td.state, "16m");
	ck_assert_msg(td_start(&td, extra) == 0, "%s", td_log(&td));
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	snprintf(delta, sizeof(delta), "%s/heap.img.delta.1", td.state);
	snprintf(filler, sizeof(filler), "%s/filler", td.state);
	for (i = 0; i < 4; i++)
		memset(p = aclmalloc(1 << 20), 'x', 1 << 20);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	memset(p, 'y', 100);	/* something for the next one to write */
	/* Everything else of the file system goes to the filler. */
	memset(zero, 0, sizeof(zero));
	fd = open(filler, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	while (write(fd, zero, sizeof(zero)) > 0)
		;
	ck_assert_int_eq(errno, ENOSPC);
	close(fd);
	ck_assert_int_eq(aclheap_checkpoint(), -EIO);
	ck_assert_int_ne(stat(delta, &st), 0);
	aclheap_detach();
	ck_assert_int_eq(unlink(filler), 0);
	end = now_ms() + 20000;
	while (stat(delta, &st) != 0) {
		ck_assert_msg(now_ms() < end, "no checkpoint after the room "
		    "came back:\n%s", td_log(&td));
		msleep(20);
	}
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
}
END_TEST

static int
sock_open(int hello)
{
	static uint8_t buf[256];
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Hello h = ACLHEAP__HELLO__INIT;
	struct sockaddr_un sun;
	long n;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, td.sock, strlen(td.sock));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	if (hello) {
		h.version = PROTOCOL_VERSION;
		q.id = 1;
		q.body_case = ACLHEAP__REQUEST__BODY_HELLO;
		q.hello = &h;
		n = frame_pack_request(&q, buf, sizeof(buf));
		ck_assert_int_eq(frame_send(fd, buf, (size_t)n, -1), 0);
	}
	return fd;
}

/* The reply to the Hello sent on fd, within 20 s: its error. */
static int
hello_reply(int fd)
{
	static uint8_t buf[FRAME_MAX], abuf[16384];
	struct frame_arena a;
	struct pollfd pfd = { fd, POLLIN, 0 };
	Aclheap__Reply *r;
	uint32_t len;
	int sfd = -1;

	ck_assert_msg(poll(&pfd, 1, 20000) == 1, "no reply to Hello");
	ck_assert_int_eq(frame_recv(fd, buf, sizeof(buf), &len, &sfd), 0);
	if (sfd >= 0)
		close(sfd);
	frame_arena_init(&a, abuf, sizeof(abuf));
	r = frame_unpack_reply(&a, buf, len);
	ck_assert_ptr_nonnull(r);
	return r->error;
}

/*
 * With few descriptors, idle connections use them up: the daemon stops
 * accepting (and says so once), keeps serving the clients it has, their
 * checkpoints included, and lets new clients in once idle ones leave.
 */
START_TEST(fd_exhaustion_pauses_accept)
{
	enum { IDLE = 100 };
	int idle[IDLE], late, i;
	void *p;

	/* Idle connections of an admitted user: their Hello timeout must
	 * not end the test's waits before it is done with them. */
	static const char *const env[] = { "ACLHEAPD_TEST_HELLO_MS=600000",
	    NULL };

	td_init(&td, "nofile");
	td.nofile = 64;
	ck_assert_int_eq(td_start_env(&td, NULL, env), 0);
	ck_assert_msg(td_wait_ready(&td) == 0, "%s", td_log(&td));
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	for (i = 0; i < IDLE; i++)
		idle[i] = sock_open(0);
	td_log_wait(&td, "not accepting", 1, 20000);
	/* Connected clients are served, checkpoints too. */
	p = aclmalloc(100000);
	ck_assert_msg(p != NULL, "%s", aclheap_last_error());
	memset(p, 1, 100000);
	ck_assert_uint_eq(aclfree(p), 100000);
	ck_assert_msg(aclheap_checkpoint() == 0, "%s", aclheap_last_error());
	heap_checks_out();
	/* A newcomer waits in the backlog: said once, not once a loop. */
	late = sock_open(1);
	ck_assert_ptr_nonnull(aclmalloc(10));
	ck_assert_int_eq(str_count(td_log(&td), "not accepting"), 1);
	for (i = 0; i < IDLE; i++)
		close(idle[i]);
	ck_assert_int_eq(hello_reply(late), 0);
	close(late);
	td_log_wait(&td, "accepting connections again", 1, 20000);
	{
		char out[4096];
		const char *argv[] = { td_prog("tests/helper_client"), "fill",
		    "late", "50", "7", NULL };

		ck_assert_msg(run_cmd(out, sizeof(out), argv) == 0, "%s", out);
	}
	ck_assert_ptr_nonnull(aclheap_root_get("late"));
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
}
END_TEST

/* Becomes user name (its primary group, no others); exits 126 if not.
 * Dies with the test: a failed assertion must not leave it running (the
 * setting is cleared by the uid change, so it is made after it). */
static void
become(const char *name)
{
	struct passwd *pw = getpwnam(name);

	if (pw == NULL || setgroups(0, NULL) == -1 ||
	    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
		_exit(126);
	if (getppid() == 1)
		_exit(126);
}

/* A connected socket to the daemon, or -1 (errno says why: EAGAIN when
 * the listen backlog is full). */
static int
try_connect(int flags)
{
	struct sockaddr_un sun;
	int fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, td.sock, strlen(td.sock));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* The error of the first reply on fd, within ms: -1 if none came. */
static int
first_error(int fd, int ms)
{
	static uint8_t buf[FRAME_MAX], ab[16384];
	struct frame_arena a;
	struct pollfd pfd = { fd, POLLIN, 0 };
	Aclheap__Reply *r;
	uint32_t len;
	int sfd = -1;

	if (poll(&pfd, 1, ms) != 1 ||
	    frame_recv(fd, buf, sizeof(buf), &len, &sfd) != 0)
		return -1;
	if (sfd >= 0)
		close(sfd);
	frame_arena_init(&a, ab, sizeof(ab));
	if ((r = frame_unpack_reply(&a, buf, len)) == NULL)
		return -1;
	return (int)r->error;
}

/*
 * The flood: as nobody (not on the allow list), connect as fast as the
 * socket takes it until killed, keeping up to 1500 connections open (the
 * daemon's side is what matters; ours are closed oldest first).  Writes
 * how many connections it made to out when it gets SIGTERM.
 */
static volatile sig_atomic_t flood_stop;

static void
flood_term(int sig)
{
	(void)sig;
	flood_stop = 1;
}

static void
flood(int out)
{
	enum { KEEP = 1500 };
	struct rlimit rl = { 4096, 4096 };
	static int fds[KEEP];
	unsigned long made = 0;
	int i, n = 0, fd;

	(void)setrlimit(RLIMIT_NOFILE, &rl);
	signal(SIGTERM, flood_term);
	become("nobody");
	for (i = 0; i < KEEP; i++)
		fds[i] = -1;
	while (!flood_stop) {
		if ((fd = try_connect(SOCK_NONBLOCK)) == -1) {
			if (errno == ECONNREFUSED || errno == ENOENT)
				break;	/* the daemon is gone */
			continue;
		}
		made++;
		if (fds[n] >= 0)
			close(fds[n]);
		fds[n] = fd;
		n = (n + 1) % KEEP;
	}
	if (write(out, &made, sizeof(made)) != (ssize_t)sizeof(made))
		_exit(1);
	_exit(0);
}

/*
 * Admitted but silent: as user daemon, open `open` connections and say
 * nothing.  Those past the cap are refused with EUSERS at once; the child
 * writes how many were to out, then holds the rest until killed.
 */
static void
silent(int open, int out)
{
	static int fds[64];
	int i, refused = 0;

	become("daemon");
	for (i = 0; i < open && i < 64; i++)
		if ((fds[i] = try_connect(0)) == -1)
			_exit(2);
	for (i = 0; i < open && i < 64; i++)
		if (first_error(fds[i], 300) == EUSERS)
			refused++;
	if (write(out, &refused, sizeof(refused)) != (ssize_t)sizeof(refused))
		_exit(1);
	pause();
	_exit(0);
}

/*
 * Unauthenticated peers cost nothing.  Under a 64-descriptor limit (about
 * 40 connections), nobody floods the socket for the whole test and user
 * daemon, admitted, holds its cap of 8 silent connections and is refused
 * more; meanwhile root's clients attach, allocate, write and check, each
 * within 10 s (a limit the flood kept them far under).  Before the check
 * moved to accept, the flood took every descriptor the daemon had and no
 * client got in at all.
 */
START_TEST(flood_of_strangers_costs_nothing)
{
	const char *extra[] = { "--allow-user", "daemon",
	    "--max-clients-per-user", "8", "--socket-mode", "0666", NULL };
	const char *argv[] = { td_prog("tests/helper_client"), "fill", NULL,
	    "50", "7", NULL };
	char roots[8][16];
	unsigned long made = 0;
	uint64_t t0, worst = 0, took;
	int fp[2], sp[2], refused = -1, k, st;
	pid_t flooder, quiet, cl;

	if (geteuid() != 0)
		td_skip("this test runs clients as nobody and daemon: it "
		    "needs root");
	if (getpwnam("nobody") == NULL || getpwnam("daemon") == NULL)
		ck_abort_msg("users nobody and daemon must exist");
	td_init(&td, "flood");
	td.nofile = 64;
	ck_assert_int_eq(chmod(td.dir, 0755), 0);
	ck_assert_msg(td_start(&td, extra) == 0, "%s", td_log(&td));
	ck_assert_int_eq(pipe(fp), 0);
	ck_assert_int_eq(pipe(sp), 0);
	if ((flooder = fork()) == 0)
		flood(fp[1]);
	ck_assert_int_gt(flooder, 0);
	if ((quiet = fork()) == 0)
		silent(20, sp[1]);
	ck_assert_int_gt(quiet, 0);
	{
		struct pollfd pfd = { sp[0], POLLIN, 0 };

		ck_assert_msg(poll(&pfd, 1, 20000) == 1, "user daemon's "
		    "connections got no answer during the flood\n%s",
		    td_log(&td));
	}
	ck_assert_int_eq(read(sp[0], &refused, sizeof(refused)),
	    (ssize_t)sizeof(refused));
	for (k = 0; k < 8; k++) {
		snprintf(roots[k], sizeof(roots[k]), "flood%d", k);
		argv[2] = roots[k];
		t0 = now_ms();
		if ((cl = fork()) == 0) {
			int devnull = open("/dev/null", O_WRONLY);

			dup2(devnull, 1);
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
		ck_assert_int_gt(cl, 0);
		st = wait_child(cl, 10000);
		if (st == -1) {
			kill(cl, SIGKILL);
			waitpid(cl, NULL, 0);
		}
		took = now_ms() - t0;
		ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "client %d not served during the flood (status %d)\n%s", k,
		    st, td_log(&td));
		if (took > worst)
			worst = took;
	}
	kill(flooder, SIGTERM);
	ck_assert_int_eq(read(fp[0], &made, sizeof(made)),
	    (ssize_t)sizeof(made));
	ck_assert_int_eq(WEXITSTATUS(wait_child(flooder, 20000)), 0);
	kill(quiet, SIGKILL);
	waitpid(quiet, NULL, 0);
	ck_assert_int_eq(refused, 12);
	fprintf(stderr, "flood: %lu connections refused at accept, 12 over "
	    "the cap; clients served in %llu ms at worst\n", made,
	    (unsigned long long)worst);
	/* A flood it was: many times what the descriptors would hold. */
	ck_assert_uint_gt(made, 1000);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "is not on the allow list"));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "has 8 connections"));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "more not logged"));
	ck_assert_ptr_null(strstr(td_log(&td), "not accepting"));
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	for (k = 0; k < 8; k++)
		ck_assert_ptr_nonnull(aclheap_root_get(roots[k]));
	heap_checks_out();
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
}
END_TEST

/*
 * An admitted connection that says no Hello is closed after the timeout
 * (300 ms here, 5 s in production) with ETIMEDOUT; one that said Hello
 * and is idle stays.
 */
START_TEST(silent_connection_times_out)
{
	static const char *const env[] = { "ACLHEAPD_TEST_HELLO_MS=300",
	    NULL };
	struct pollfd pfd;
	uint64_t t0, took;
	char c;
	int good, mute;

	td_init(&td, "hello");
	ck_assert_int_eq(td_start_env(&td, NULL, env), 0);
	ck_assert_msg(td_wait_ready(&td) == 0, "%s", td_log(&td));
	good = sock_open(1);
	ck_assert_int_eq(hello_reply(good), 0);
	t0 = now_ms();
	mute = sock_open(0);
	ck_assert_int_eq(first_error(mute, 10000), ETIMEDOUT);
	took = now_ms() - t0;
	ck_assert_int_eq(read(mute, &c, 1), 0);		/* and closed */
	fprintf(stderr, "hello timeout: closed after %llu ms\n",
	    (unsigned long long)took);
	ck_assert_uint_ge(took, 250);
	ck_assert_uint_lt(took, 5000);
	/* The one that said Hello was older, and is still open. */
	pfd.fd = good;
	pfd.events = POLLIN;
	pfd.revents = 0;
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "said no Hello within 300"));
	close(good);
	close(mute);
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
}
END_TEST

/*
 * The per-user cap: a user at its cap is refused with a message that names
 * the option, through the library as any program sees it; once one of its
 * connections leaves, it gets in again.  A bad value is a usage error.
 */
START_TEST(per_user_cap)
{
	const char *extra[] = { "--max-clients-per-user", "3", NULL };
	const char *argv[] = { td_prog("tests/helper_client"), "fill", "cap",
	    "5", "3", NULL };
	const char *bad[] = { td_prog("aclheapd"), "--max-clients-per-user",
	    "lots", NULL };
	char out[4096];
	uint64_t end;
	int held[3], i, rc;

	ck_assert_int_eq(run_cmd(out, sizeof(out), bad), 2);
	ck_assert_msg(strstr(out, "max-clients-per-user 'lots'") != NULL, "%s",
	    out);
	td_init(&td, "cap");
	ck_assert_msg(td_start(&td, extra) == 0, "%s", td_log(&td));
	for (i = 0; i < 3; i++) {
		held[i] = sock_open(1);
		ck_assert_int_eq(hello_reply(held[i]), 0);
	}
	ck_assert_int_eq(run_cmd(out, sizeof(out), argv), 1);
	ck_assert_msg(strstr(out, "has 3 connections") != NULL &&
	    strstr(out, "--max-clients-per-user") != NULL, "%s", out);
	close(held[0]);
	/* The daemon notices the close at its next wake-up. */
	end = now_ms() + 20000;
	while ((rc = run_cmd(out, sizeof(out), argv)) != 0 && now_ms() < end)
		msleep(10);
	ck_assert_msg(rc == 0, "%s", out);
	close(held[1]);
	close(held[2]);
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
}
END_TEST

/*
 * 64 client processes allocate, write, check and free for 3 s at once:
 * every request is answered (a client exits 1 at the first failure or
 * wrong byte), and the heap verifies afterwards, with nothing left.
 */
START_TEST(many_clients_at_once)
{
	enum { CLIENTS = 64 };
	const char *argv[] = { td_prog("tests/helper_client"), "churn", "3000",
	    NULL, NULL };
	char seeds[CLIENTS][16], err[512];
	struct shm_report rep;
	pid_t kids[CLIENTS];
	uint64_t end;
	int k, st;

	td_init(&td, "many");
	snprintf(td.size, sizeof(td.size), "512M");
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	for (k = 0; k < CLIENTS; k++) {
		snprintf(seeds[k], sizeof(seeds[k]), "%d", 1000 + k);
		argv[3] = seeds[k];
		if ((kids[k] = fork()) == 0) {
			int devnull = open("/dev/null", O_WRONLY);

			dup2(devnull, 1);
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
		ck_assert_int_gt(kids[k], 0);
	}
	for (k = 0; k < CLIENTS; k++) {
		st = wait_child(kids[k], 120000);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "client %d: status %d\n%s", k, st, td_log(&td));
	}
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	/* What the clients held privately goes back as their leases are
	 * reaped; nothing else is left. */
	end = now_ms() + 20000;
	for (;;) {
		ck_assert_msg(shm_check(&conn_seg, &rep, err, sizeof(err)) == 0,
		    "%s", err);
		if ((rep.blocks_live == 0 && rep.blocks_orphaned == 0) ||
		    now_ms() > end)
			break;
		msleep(50);
	}
	ck_assert_uint_eq(rep.blocks_live, 0);
	ck_assert_uint_eq(rep.blocks_orphaned, 0);
	ck_assert_uint_eq(verify_live(), 0);
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
}
END_TEST

Suite *
fault_suite(void)
{
	Suite *s = suite_create("fault");
	TCase *tc = tcase_create("fault");

	tcase_add_checked_fixture(tc, NULL, down);
	tcase_add_test(tc, tiny_shm_gives_enomem_not_sigbus);
	tcase_add_test(tc, sparse_heap_bigger_than_shm);
	tcase_add_test(tc, checkpoint_disk_full_keeps_image);
	tcase_add_test(tc, checkpoint_retried_when_room_returns);
	tcase_add_test(tc, fd_exhaustion_pauses_accept);
	tcase_add_test(tc, flood_of_strangers_costs_nothing);
	tcase_add_test(tc, silent_connection_times_out);
	tcase_add_test(tc, per_user_cap);
	tcase_add_test(tc, many_clients_at_once);
	tcase_set_timeout(tc, 240);
	suite_add_tcase(s, tc);
	return s;
}
