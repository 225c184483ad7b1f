/*
 * check_fault.c: aclheapd when the machine runs short.  A /dev/shm far
 * smaller than the heap, a state folder that fills up during a checkpoint,
 * a descriptor limit that runs out, and 64 clients at once.  In each case
 * the promise is the same: a clear error where something cannot be had,
 * no fault in any process, and the daemon serving on.
 *
 * The small file systems are tmpfs mounts in a private mount namespace of
 * the test's own process (Check runs each test in a child of its own), so
 * the daemon it starts sees them and nothing else on the machine does.
 * That needs root, as CI runs.
 */
#include "config.h"

#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

static void
need_root(void)
{
	if (geteuid() != 0)
		ck_abort_msg("this test mounts file systems: it must run as "
		    "root (CI does)");
}

/* A tmpfs of the given size on target, seen by this process and its
 * children only. */
static void
private_tmpfs(const char *target, const char *size)
{
	char opts[64];

	need_root();
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

static uint8_t *
slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* Polls the daemon's log for what, 20 s at most. */
static void
log_waits_for(const char *what)
{
	uint64_t end = now_ms() + 20000;

	while (strstr(td_log(&td), what) == NULL) {
		ck_assert_msg(now_ms() < end, "'%s' not logged:\n%s", what,
		    td_log(&td));
		msleep(5);
	}
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
		    s * SHM_SIDE_BYTES, 8192), 0);
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

	td_init(&td, "diskfull");
	ck_assert_int_eq(mkdir(td.state, 0700), 0);
	private_tmpfs(td.state, "16m");
	ck_assert_msg(td_start(&td, extra) == 0, "%s", td_log(&td));
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	snprintf(tmp, sizeof(tmp), "%s/heap.img.delta.1.tmp", td.state);
	snprintf(delta, sizeof(delta), "%s/heap.img.delta.1", td.state);
	memset(aclmalloc(1000), 1, 1000);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	before = slurp(img, &lb);
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
	after = slurp(img, &la);
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
	/* About 13 MB now: room again. */
	ck_assert_msg(aclheap_checkpoint() == 0, "%s", aclheap_last_error());
	ck_assert_int_eq(stat(delta, &st), 0);	/* a delta after the base */
	after = slurp(img, &la);
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
	before = slurp(img, &lb);
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 1);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "final checkpoint failed"));
	after = slurp(img, &la);
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

	td_init(&td, "nofile");
	td.nofile = 64;
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	for (i = 0; i < IDLE; i++)
		idle[i] = sock_open(0);
	log_waits_for("not accepting");
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
	ck_assert_int_eq(count(td_log(&td), "not accepting"), 1);
	for (i = 0; i < IDLE; i++)
		close(idle[i]);
	ck_assert_int_eq(hello_reply(late), 0);
	close(late);
	log_waits_for("accepting connections again");
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
	tcase_add_test(tc, many_clients_at_once);
	tcase_set_timeout(tc, 240);
	suite_add_tcase(s, tc);
	return s;
}
