/* SPDX-License-Identifier: MIT */
/*
 * check_persist.c: the heap across restarts.  Graceful stops, SIGKILL of
 * the daemon (the live segment is adopted), "reboots" (the live segment is
 * removed and the image alone brings the heap back), kills in the middle of
 * checkpoints, damaged images refused, clients that keep working while
 * the daemon comes and goes, and one daemon per live heap (the segment
 * lock).  Data is written and checked by separate
 * helper processes, so every check is a fresh process reading the heap at
 * the addresses another one stored.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <inttypes.h>
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

static void
up(void)
{
	td_init(&td, "persist");
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
}

static void
down(void)
{
	td_cleanup(&td);
}

static int
helper(char *out, size_t len, const char *a1, const char *a2, const char *a3,
    const char *a4)
{
	const char *argv[] = { td_prog("tests/helper_client"), a1, a2, a3, a4,
	    NULL };

	return run_cmd(out, len, argv);
}

static void
fill(const char *root, const char *n, const char *seed, char *addr,
    size_t len)
{
	char out[4096];

	ck_assert_msg(helper(out, sizeof(out), "fill", root, n, seed) == 0,
	    "fill %s: %s", root, out);
	if (addr != NULL) {
		ck_assert_uint_lt(strlen(out), len);
		memcpy(addr, out, strlen(out) + 1);
	}
}

static void
check(const char *root, const char *seed, const char *addr)
{
	char out[4096];

	ck_assert_msg(helper(out, sizeof(out), "check", root, seed, NULL) == 0,
	    "check %s: %s\n%s", root, out, td_log(&td));
	if (addr != NULL) {
		ck_assert_int_eq(helper(out, sizeof(out), "addr", root, NULL,
		    NULL), 0);
		ck_assert_str_eq(out, addr);	/* the same address */
	}
}

static void
restart(int sig)
{
	int st = td_stop(&td, sig);

	if (sig == SIGTERM)
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "stop: %d\n%s", st, td_log(&td));
	ck_assert_msg(td_start(&td, NULL) == 0, "restart: %s", td_log(&td));
}

static void
image_verifies(const char *path, uint64_t *gen)
{
	struct image_info info;
	struct shm_seg seg;
	char err[1024];

	ck_assert_msg(image_load_offline(path, &seg, &info, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_msg(shm_check(&seg, NULL, err, sizeof(err)) == 0, "%s", err);
	if (gen != NULL)
		*gen = info.hdr.generation;
	image_unload_offline(&seg);
}

START_TEST(graceful_restart_keeps_heap)
{
	char a[64], b[64];

	fill("a", "300", "11", a, sizeof(a));
	fill("b", "50", "12", b, sizeof(b));
	restart(SIGTERM);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "adopted live segment"));
	check("a", "11", a);
	check("b", "12", b);
	restart(SIGTERM);
	check("a", "11", a);
}
END_TEST

START_TEST(sigkill_loses_nothing)
{
	char a[64], b[64], out[256];

	fill("a", "200", "21", a, sizeof(a));
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	fill("b", "200", "22", b, sizeof(b));	/* after the checkpoint */
	restart(SIGKILL);
	check("a", "21", a);
	check("b", "22", b);
	ck_assert_int_eq(helper(out, sizeof(out), "free", "b", NULL, NULL), 0);
	restart(SIGKILL);
	check("a", "21", a);
	ck_assert_int_ne(helper(out, sizeof(out), "check", "b", "22", NULL), 0);
}
END_TEST

START_TEST(reboot_restores_from_image)
{
	char a[64], b[64], img[400];

	fill("a", "400", "31", a, sizeof(a));
	fill("b", "100", "32", b, sizeof(b));
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	image_verifies(img, NULL);
	ck_assert_int_eq(td_shm_unlink(&td), 0);	/* the reboot */
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "loaded image"));
	check("a", "31", a);
	check("b", "32", b);
	/* The hashes read with the image are the heap's: the checkpoint
	 * after a load writes the metadata (a new epoch) and no slab. */
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_msg(strstr(td_log(&td), "0 slabs in") != NULL &&
	    strstr(td_log(&td), "(delta: metadata changed)") != NULL, "%s",
	    td_log(&td));
}
END_TEST

/* A power failure loses exactly what came after the last checkpoint. */
START_TEST(reboot_after_crash_keeps_last_checkpoint)
{
	char a[64], out[256];

	fill("a", "100", "41", a, sizeof(a));
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	fill("b", "100", "42", NULL, 0);
	td_stop(&td, SIGKILL);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	check("a", "41", a);
	ck_assert_int_ne(helper(out, sizeof(out), "addr", "b", NULL, NULL), 0);
}
END_TEST

/* Polls until heap.img is another file than ino (a checkpoint renamed a
 * new one over it), 30 s at most. */
static void
wait_replaced(const char *img, ino_t ino)
{
	uint64_t end = now_ms() + 30000;
	struct stat st;

	while (stat(img, &st) != 0 || st.st_ino == ino) {
		ck_assert_msg(now_ms() < end, "no checkpoint within 30 s:\n%s",
		    td_log(&td));
		msleep(10);
	}
}

/* SIGKILL at random moments during checkpoints: heap.img is always a whole
 * image (the previous or the new one) that loads and verifies. */
START_TEST(kill_during_checkpoint)
{
	char img[400], a[64];
	uint64_t gen, last = 0, seen_new = 0;
	unsigned seed = (unsigned)getpid();
	void *big[6];
	uint64_t t0;
	int trial, i, span;

	td_stop(&td, SIGKILL);
	td_shm_unlink(&td);
	snprintf(td.size, sizeof(td.size), "256M");
	ck_assert_int_eq(td_start(&td, NULL), 0);
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	fill("a", "200", "51", a, sizeof(a));
	for (i = 0; i < 6; i++) {		/* ~90 MiB to write */
		big[i] = aclmalloc(15 << 20);
		ck_assert_ptr_nonnull(big[i]);
		memset(big[i], 'A' + i, 15 << 20);
	}
	t0 = now_ms();
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	/* Kill anywhere from before the start to well after the end of a
	 * checkpoint, whatever this machine's disk takes for one. */
	span = (int)(now_ms() - t0) * 2 + 10;
	image_verifies(img, &last);
	for (trial = 0; trial < 16; trial++) {
		struct stat st;

		ck_assert_int_eq(stat(img, &st), 0);
		kill(td.pid, SIGUSR1);
		if (trial % 4 == 1)
			/* Some kills must come after a checkpoint is done,
			 * however long this disk takes for one. */
			wait_replaced(img, st.st_ino);
		else
			msleep((int)(rand_r(&seed) % (unsigned)span));
		td_stop(&td, SIGKILL);
		image_verifies(img, &gen);
		ck_assert(gen == last || gen == last + 1);
		seen_new += gen == last + 1;
		last = gen;
		if (trial % 4 == 3)
			ck_assert_int_eq(td_shm_unlink(&td), 0);
		ck_assert_msg(td_start(&td, NULL) == 0, "trial %d: %s", trial,
		    td_log(&td));
	}
	check("a", "51", a);
	aclheap_detach();
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	for (i = 0; i < 6; i++)
		ck_assert_uint_eq(((unsigned char *)big[i])[(15 << 20) - 1],
		    'A' + i);
	/* Some kills must have come after a checkpoint finished. */
	ck_assert_uint_gt(seen_new, 0);
}
END_TEST

/* The daemon must refuse to start on img as it is now, say why, and leave
 * the file exactly as it was. */
static void
refused(const char *img, const char *why)
{
	uint8_t *before, *after;
	size_t lb, la;
	int st;

	before = file_slurp(img, &lb);
	ck_assert_int_eq(td_start_env(&td, NULL, NULL), 0);
	st = td_wait_exit(&td, 30000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
	ck_assert_msg(strstr(td_log(&td), why) != NULL, "'%s' not in:\n%s",
	    why, td_log(&td));
	ck_assert_ptr_nonnull(strstr(td_log(&td), img));
	after = file_slurp(img, &la);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(before, after, lb), 0);
	free(before);
	free(after);
}

START_TEST(damaged_image_refused)
{
	char img[400];
	uint8_t *b;
	size_t len;
	unsigned seed = (unsigned)getpid();
	int i;

	fill("a", "100", "61", NULL, 0);
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	b = file_slurp(img, &len);
	for (i = 0; i < 6; i++) {
		size_t at = (size_t)rand_r(&seed) % len;

		b[at] ^= 0x10;
		file_spit(img, b, len);
		refused(img, "refusing image");
		b[at] ^= 0x10;
	}
	file_spit(img, b, len / 2);
	refused(img, "truncated");
	file_spit(img, b, len);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	check("a", "61", NULL);
	free(b);
}
END_TEST

/* Checksums right, slab table wrong (written by a buggy build, or made by
 * hand): refused with the slab named, never loaded, and no crash. */
START_TEST(inconsistent_image_refused)
{
	struct image_header *h;
	struct shm_super *sb;
	struct shm_slab *sl;
	char img[400];
	uint8_t *b, *meta;
	uint64_t s;
	uint64_t w = 0, orig;
	size_t len;

	fill("a", "100", "65", NULL, 0);
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	b = file_slurp(img, &len);
	h = (struct image_header *)b;
	meta = b + sizeof(*h) + sizeof(struct image_section);
	sb = (struct shm_super *)meta;
	/* META carries the roots in use, then the slab table (not the
	 * lease region). */
	sl = (struct shm_slab *)(meta + sb->roots_off + sb->roots_used *
	    sizeof(struct shm_root));
	for (s = 0; s < sb->nslabs; s++) {
		memcpy(&w, &sl[s].word, sizeof(w));
		if (SHM_SLAB_STATE(w) == SHM_SMALL)
			break;
	}
	ck_assert_uint_lt(s, sb->nslabs);
	orig = w;
	w = SHM_SLAB_WORD(SHM_SMALL, 100, 0);
	memcpy(&sl[s].word, &w, sizeof(w));
	image_reseal(b, len);
	file_spit(img, b, len);
	refused(img, "has class 100");
	/* An extent longer than the heap: the same. */
	w = SHM_SLAB_WORD(SHM_LARGE_HEAD, 0, 0);
	memcpy(&sl[s].word, &w, sizeof(w));
	sl[s].run = UINT32_MAX;
	image_reseal(b, len);
	file_spit(img, b, len);
	refused(img, "runs 4294967295 slabs past the end");
	memcpy(&sl[s].word, &orig, sizeof(orig));
	sl[s].run = 0;
	image_reseal(b, len);
	file_spit(img, b, len);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	check("a", "65", NULL);
	free(b);
}
END_TEST

START_TEST(geometry_mismatch_refused)
{
	char img[400];

	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	fill("a", "10", "71", NULL, 0);
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	/* The live segment was made for another maximum: its address space
	 * is another heap's.  (Another size is not a mismatch: a heap
	 * grows, check_grow.) */
	snprintf(td.max, sizeof(td.max), "128M");
	ck_assert_int_eq(td_start_env(&td, NULL, NULL), 0);
	ck_assert_int_eq(WEXITSTATUS(td_wait_exit(&td, 30000)), 1);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "has maximum size 67108864"));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "134217728"));
	/* The image is of another maximum, then of another base. */
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	refused(img, "of maximum size 67108864, the daemon is asked for base "
	    "0x300000000000 maximum 134217728");
	td.max[0] = '\0';
	snprintf(td.base, sizeof(td.base), "0x340000000000");
	refused(img, "base 0x300000000000 of maximum size 67108864, the daemon "
	    "is asked for base 0x340000000000");
	snprintf(td.base, sizeof(td.base), "0x300000000000");
	/* A size past the maximum the heap was made with. */
	snprintf(td.size, sizeof(td.size), "128M");
	td.max[0] = '-';
	td.max[1] = '\0';
	refused(img, "--size 134217728 is past the heap's maximum 67108864");
	snprintf(td.size, sizeof(td.size), "%s", TEST_SIZE);
	td.max[0] = '\0';
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	check("a", "71", NULL);
}
END_TEST

/* Started without --base and --size, the daemon takes both from the heap
 * it finds: the live segment after a crash, the image after a reboot.
 * Given and different, they are still refused. */
START_TEST(heap_knows_its_shape)
{
	char a[64], want[128];

	fill("a", "100", "81", a, sizeof(a));
	ck_assert_int_eq(td_stop(&td, SIGKILL), SIGKILL);
	td.base[0] = td.size[0] = '\0';
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "adopted live segment"));
	snprintf(want, sizeof(want), "shape from its live segment: base "
	    "0x%" PRIx64 ", size %" PRIu64, (uint64_t)TEST_BASE,
	    (uint64_t)64 << 20);
	ck_assert_msg(strstr(td_log(&td), want) != NULL, "%s", td_log(&td));
	check("a", "81", a);
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);	/* the reboot */
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "loaded image"));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "/heap.img: base 0x"));
	check("a", "81", a);
	/* Only what is given is taken as given: a maximum that is not the
	 * heap's is refused. */
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	snprintf(td.max, sizeof(td.max), "128M");
	ck_assert_int_eq(td_start_env(&td, NULL, NULL), 0);
	ck_assert_int_eq(WEXITSTATUS(td_wait_exit(&td, 30000)), 1);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "134217728"));
	td.max[0] = '\0';
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	check("a", "81", a);
	snprintf(td.base, sizeof(td.base), "0x%" PRIx64, (uint64_t)TEST_BASE);
	snprintf(td.size, sizeof(td.size), "%s", TEST_SIZE);
}
END_TEST

/* Clients keep allocating, freeing and checking while the daemon is killed
 * and restarted: no wrong byte, no lost block, nothing leaked. */
START_TEST(clients_survive_daemon_restarts)
{
	const char *argv[] = { td_prog("tests/helper_client"), "churn", "6000",
	    NULL, NULL };
	char seeds[3][8];
	pid_t kids[3];
	uint64_t end;
	int k, i, st;

	setenv("ACLHEAP_RECONNECT_TIMEOUT", "30", 1);
	fill("keep", "100", "81", NULL, 0);
	for (k = 0; k < 3; k++) {
		snprintf(seeds[k], sizeof(seeds[k]), "%d", 90 + k);
		argv[3] = seeds[k];
		if ((kids[k] = fork()) == 0) {
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
	}
	for (i = 0; i < 4; i++) {
		msleep(700);
		restart(i % 2 ? SIGTERM : SIGKILL);
	}
	for (k = 0; k < 3; k++) {
		st = wait_child(kids[k], 60000);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "churn %d: status %d\n%s", k, st, td_log(&td));
	}
	check("keep", "81", NULL);
	/* Every churned block was freed by its owner; what the clients held
	 * privately went back when they left. */
	ck_assert_int_eq(aclheap_attach(NULL), 0);
	end = now_ms() + 15000;
	for (;;) {
		char err[256];
		struct shm_report rep;

		ck_assert_int_eq(shm_check(&conn_seg, &rep, err, sizeof(err)), 0);
		if ((rep.blocks_orphaned == 0 && rep.blocks_live == 101) ||
		    now_ms() > end) {
			ck_assert_uint_eq(rep.blocks_live, 101);
			ck_assert_uint_eq(rep.blocks_orphaned, 0);
			break;
		}
		msleep(50);
	}
}
END_TEST

START_TEST(reconnect_gives_up_after_timeout)
{
	uint64_t t0;
	void *p;

	setenv("ACLHEAP_RECONNECT_TIMEOUT", "1", 1);
	p = aclmalloc(100000);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	t0 = now_ms();
	errno = 0;
	ck_assert_ptr_null(aclheap_root_get("x"));
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_uint_ge(now_ms() - t0, 900);
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), "did not come back"));
	/* The mapping stayed: the block is still readable here. */
	ck_assert(aclheap_contains(p));
	ck_assert_uint_eq(aclheap_usable_size(p), 114688);
	/* Back within the budget: the call goes through. */
	setenv("ACLHEAP_RECONNECT_TIMEOUT", "30", 1);
	ck_assert_int_eq(td_start(&td, NULL), 0);
	ck_assert_uint_eq(aclfree(p), 100000);
}
END_TEST

START_TEST(different_heap_refused)
{
	char cmd[600];
	void *p = aclmalloc(10);

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", td.state);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(td_start(&td, NULL), 0);	/* a new heap */
	errno = 0;
	ck_assert_ptr_null(aclheap_root_get("x"));
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_ptr_nonnull(strstr(aclheap_last_error(), "different heap"));
	/* Never remapped: our old mapping is still in place. */
	ck_assert_uint_eq(aclheap_usable_size(p), 16);
}
END_TEST

/* After a reboot the same heap comes back in a new object: a client that
 * stayed up maps it over its own range and sees the restored data. */
START_TEST(client_follows_reloaded_heap)
{
	char *p = aclmalloc(100);

	strcpy(p, "before");
	ck_assert_int_eq(aclheap_root_set("s", p), 0);
	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_int_eq(td_start(&td, NULL), 0);
	ck_assert_ptr_eq(aclheap_root_get("s"), p);
	ck_assert_str_eq(p, "before");
	strcpy(p, "after");
	ck_assert_uint_eq(aclfree(aclmalloc(5)), 5);
}
END_TEST

/* The state folder's files, names, sizes and inodes, as one string. */
static void
state_files(char *buf, size_t len)
{
	char cmd[600];
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "ls -i -l --time-style=+%%s.%%N '%s' | "
	    "grep heap.img", td.state);
	ck_assert_ptr_nonnull(f = popen(cmd, "r"));
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	pclose(f);
}

/* The timer checkpoints while a client is connected; when nothing changed
 * it writes nothing at all; a change is written as a delta. */
START_TEST(idle_client_writes_nothing)
{
	const char *extra[] = { "--checkpoint-interval", "1", NULL };
	char img[400], delta[420], before[4096], after[4096];
	struct stat st;
	uint64_t gen = 0;
	char *p;
	int n;

	td_stop(&td, SIGTERM);
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	snprintf(delta, sizeof(delta), "%s.delta.1", img);
	unlink(img);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_int_eq(td_start(&td, extra), 0);
	ck_assert_ptr_nonnull(p = aclmalloc(5000));	/* a connected client */
	memset(p, 'x', 5000);
	td_log_wait(&td, "(full: no image of this heap yet)", 1, 30000);
	/* Two intervals after it may still write the metadata the first one
	 * raced with; after those, nothing. */
	n = str_count(td_log(&td), "nothing changed since");
	td_log_wait(&td, "nothing changed since", n + 2, 30000);
	state_files(before, sizeof(before));
	n = str_count(td_log(&td), "nothing changed since");
	td_log_wait(&td, "nothing changed since", n + 3, 30000);
	state_files(after, sizeof(after));
	ck_assert_str_eq(before, after);
	ck_assert_ptr_null(strstr(after, "tmp"));
	/* A client's store, which the daemon never sees: a delta. */
	n = str_count(td_log(&td), "(delta: ");
	memset(p, 'y', 100);
	td_log_wait(&td, "(delta: ", n + 1, 30000);
	ck_assert_int_eq(stat(delta, &st), 0);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "(delta: 1 slabs changed)"));
	/* Small: the metadata and one slab. */
	ck_assert_uint_lt((uint64_t)st.st_size, 123112 + 2 * 75000);
	image_verifies(img, &gen);
	ck_assert_uint_ge(gen, 2);
}
END_TEST

/* A new heap in an empty state folder (of td.size); this process is a
 * client of the new one. */
static void
fresh(void)
{
	char cmd[600];

	aclheap_detach();
	td_stop(&td, SIGKILL);
	td_shm_unlink(&td);
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/heap.*", td.state);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_int_eq(aclheap_attach(NULL), 0);
}

/* Starts the daemon to be killed at step (KIND-STEP) of a checkpoint. */
static void
start_crashing(const char *step)
{
	char env[64];
	const char *envv[] = { env, NULL };

	snprintf(env, sizeof(env), "ACLHEAPD_TEST_CRASH=%s", step);
	ck_assert_int_eq(td_start_env(&td, NULL, envv), 0);
	ck_assert_msg(td_wait_ready(&td) == 0, "%s", td_log(&td));
}

/* Asks for a checkpoint (SIGUSR1) and sees the daemon die at step. */
static void
crash_in_checkpoint(const char *step)
{
	char what[64];
	int st;

	ck_assert_int_eq(kill(td.pid, SIGUSR1), 0);
	st = td_wait_exit(&td, 60000);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "status %d\n%s", st, td_log(&td));
	snprintf(what, sizeof(what), "test crash point %s", step);
	ck_assert_ptr_nonnull(strstr(td_log(&td), what));
}

/* After a reboot: is root r there? */
static int
root_there(const char *r)
{
	char out[256];

	return helper(out, sizeof(out), "addr", r, NULL, NULL) == 0;
}

/* A delta checkpoint killed at each of its steps: the chain loads after a
 * reboot, with the delta's changes exactly when its rename happened, and
 * the next checkpoint carries on from there. */
START_TEST(kills_at_every_delta_step)
{
	static const char *steps[] = { "written", "synced", "renamed",
	    "done" };
	char img[400], step[32];
	uint64_t g0, gen;
	int i, renamed;

	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	for (i = 0; i < 4; i++) {
		renamed = i >= 2;
		fresh();
		fill("a", "50", "81", NULL, 0);
		ck_assert_int_eq(aclheap_checkpoint(), 0);	/* the base */
		image_verifies(img, &g0);
		/* A reboot: the chain is read, the next one is a delta. */
		td_stop(&td, SIGKILL);
		ck_assert_int_eq(td_shm_unlink(&td), 0);
		snprintf(step, sizeof(step), "delta-%s", steps[i]);
		start_crashing(step);
		fill("b", "50", "82", NULL, 0);
		crash_in_checkpoint(step);
		ck_assert_int_eq(td_shm_unlink(&td), 0);
		ck_assert_msg(td_start(&td, NULL) == 0, "%s: %s", step,
		    td_log(&td));
		check("a", "81", NULL);
		if (renamed)
			check("b", "82", NULL);
		else
			ck_assert_msg(!root_there("b"), "%s", step);
		image_verifies(img, &gen);
		ck_assert_uint_eq(gen, g0 + (uint64_t)renamed);
		fill("c", "20", "83", NULL, 0);
		ck_assert_int_eq(aclheap_checkpoint(), 0);
		image_verifies(img, &gen);
		ck_assert_uint_eq(gen, g0 + (uint64_t)renamed + 1);
	}
}
END_TEST

/* A whole image replacing a chain (here: the first checkpoint after an
 * adopted start), killed at each step: the old chain or the new base
 * loads, never a mix; stale deltas are ignored, then replaced. */
START_TEST(kills_at_every_compaction_step)
{
	static const char *steps[] = { "written", "synced", "renamed",
	    "unlinked", "done" };
	char img[400], delta[420], step[32];
	uint64_t g0, gen;
	struct stat st;
	int i, renamed;

	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	snprintf(delta, sizeof(delta), "%s.delta.1", img);
	for (i = 0; i < 5; i++) {
		renamed = i >= 2;
		fresh();
		fill("a", "50", "91", NULL, 0);
		ck_assert_int_eq(aclheap_checkpoint(), 0);	/* base */
		fill("b", "50", "92", NULL, 0);
		ck_assert_int_eq(aclheap_checkpoint(), 0);	/* delta */
		ck_assert_int_eq(stat(delta, &st), 0);
		image_verifies(img, &g0);
		/* Killed, not rebooted: the live segment is adopted, so the
		 * next checkpoint writes a new base. */
		td_stop(&td, SIGKILL);
		snprintf(step, sizeof(step), "full-%s", steps[i]);
		start_crashing(step);
		fill("c", "50", "93", NULL, 0);
		crash_in_checkpoint(step);
		ck_assert_int_eq(td_shm_unlink(&td), 0);
		ck_assert_msg(td_start(&td, NULL) == 0, "%s: %s", step,
		    td_log(&td));
		check("a", "91", NULL);
		check("b", "92", NULL);
		if (renamed)
			check("c", "93", NULL);
		else
			ck_assert_msg(!root_there("c"), "%s", step);
		if (i == 2)
			ck_assert_ptr_nonnull(strstr(td_log(&td),
			    "and stale ones after them"));
		if (i >= 3)
			ck_assert_int_ne(stat(delta, &st), 0);
		image_verifies(img, &gen);
		ck_assert_uint_eq(gen, g0 + (uint64_t)renamed);
		fill("d", "20", "94", NULL, 0);
		ck_assert_int_eq(aclheap_checkpoint(), 0);
		image_verifies(img, &gen);
		ck_assert_uint_eq(gen, g0 + (uint64_t)renamed + 1);
	}
}
END_TEST

/* The heap a chain of a base and two deltas loads is the live heap at the
 * last checkpoint, byte for byte (both settled as every reader settles):
 * changed blocks, freed small slabs and extents, new ones. */
START_TEST(chain_reload_equals_live_heap)
{
	char img[400], err[1024], out[256];
	struct image_info info;
	struct shm_seg live, off;
	uint8_t *big[4];
	uint64_t size = UINT64_C(256) << 20, o, n;
	void *mem;
	int i;

	td_stop(&td, SIGKILL);
	td_shm_unlink(&td);
	snprintf(td.size, sizeof(td.size), "256M");
	fresh();
	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	fill("a", "300", "101", NULL, 0);
	fill("b", "200", "102", NULL, 0);
	for (i = 0; i < 3; i++) {
		big[i] = aclmalloc((size_t)(3 + i) << 20);
		ck_assert_ptr_nonnull(big[i]);
		memset(big[i], 'P' + i, (size_t)(3 + i) << 20);
	}
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(helper(out, sizeof(out), "free", "b", NULL, NULL), 0);
	fill("c", "100", "103", NULL, 0);
	memset(big[1] + 12345, 'q', 8192);
	ck_assert_uint_eq(aclfree(big[2]), (size_t)5 << 20);
	big[3] = aclmalloc(1 << 20);
	memset(big[3], 'R', 1 << 20);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	big[0][1] ^= 1;
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "(delta: 1 slabs changed)"));
	td_stop(&td, SIGKILL);	/* nothing changes the segment after this */

	ck_assert_ptr_nonnull(mem = td_seg_map(&td, size, MAP_PRIVATE));
	memset(&live, 0, sizeof(live));
	seg_bind(&live, mem, TEST_BASE, size);
	live.fd = -1;
	image_settle(&live);
	ck_assert_msg(image_load_offline(img, &off, &info, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(info.links, 2);
	for (o = 0; o < size; o += n) {
		n = size - o < (1u << 20) ? size - o : (1u << 20);
		/* A free slab's bytes are nobody's: the live heap keeps a
		 * freed slab's memory for a while (--decay), an image loads
		 * it as zeros. */
		if (o >= live.data - (uintptr_t)mem) {
			uint64_t sl = (o - (live.data - (uintptr_t)mem)) >>
			    SHM_SLAB_SHIFT;

			n = SHM_SLAB_SIZE;
			if (sl >= live.nslabs || SHM_SLAB_STATE(atomic_load(
			    &live.slabs[sl].word)) == SHM_FREE)
				continue;
		}
		if (memcmp((char *)mem + o, (char *)off.sb + o, n) == 0)
			continue;
		while (((char *)mem)[o] == ((char *)off.sb)[o])
			o++;
		ck_abort_msg("the reloaded heap differs at offset %" PRIu64
		    " (data starts at %" PRIu64 ")", o, live.data -
		    (uintptr_t)mem);
	}
	image_unload_offline(&off);
	munmap(mem, size);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	check("a", "101", NULL);
	check("c", "103", NULL);
	ck_assert(!root_there("b"));
}
END_TEST

/* A heap that fails its check is not checkpointed over the good image:
 * the request fails naming the damage, the chain stays as it was, and
 * once the damage is gone checkpoints go on. */
START_TEST(bad_checkpoint_not_renamed)
{
	char img[400], before[4096], after[4096];
	struct slab_block b;
	uint8_t *ib, *ia;
	size_t lb, la;
	uint64_t gen;
	char *p;
	uint16_t old;
	_Atomic uint16_t *side;

	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	ck_assert_ptr_nonnull(p = aclmalloc(64));
	strcpy(p, "good");
	ck_assert_int_eq(aclheap_root_set("p", p), 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	state_files(before, sizeof(before));
	ib = file_slurp(img, &lb);
	ck_assert_int_eq(slab_block_lookup(&conn_seg, (uintptr_t)p, &b), 0);
	side = (_Atomic uint16_t *)b.sides + b.index;
	old = atomic_load(side);
	atomic_store(side, 0xffff);	/* more slack than the class has */
	strcpy(p, "bad");
	ck_assert_int_ne(aclheap_checkpoint(), 0);
	ck_assert_msg(strstr(aclheap_last_error(), "fails its check") != NULL &&
	    strstr(aclheap_last_error(), "bytes of slack") != NULL, "%s",
	    aclheap_last_error());
	ck_assert_ptr_nonnull(strstr(td_log(&td), "checkpoint failed: the heap "
	    "fails its check"));
	state_files(after, sizeof(after));
	ck_assert_str_eq(before, after);
	ia = file_slurp(img, &la);
	ck_assert_uint_eq(la, lb);
	ck_assert_int_eq(memcmp(ia, ib, lb), 0);
	free(ia);
	free(ib);
	atomic_store(side, old);
	ck_assert_msg(aclheap_checkpoint() == 0, "%s", aclheap_last_error());
	image_verifies(img, &gen);
	ck_assert_uint_eq(gen, 2);
}
END_TEST

static void
copy_file(const char *from, const char *to)
{
	size_t len;
	uint8_t *b = file_slurp(from, &len);
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, b, len), (ssize_t)len);
	close(fd);
	free(b);
}

/* Checkpoints taken while clients claim and free: each image loads and
 * verifies, and a reboot from any of them starts. */
START_TEST(checkpoints_under_load_load)
{
	const char *argv[] = { td_prog("tests/helper_client"), "churn", "3000",
	    NULL, NULL };
	char seeds[2][8], img[400], copy[420];
	pid_t kids[2];
	int k, i, st;

	snprintf(img, sizeof(img), "%s/heap.img", td.state);
	for (k = 0; k < 2; k++) {
		snprintf(seeds[k], sizeof(seeds[k]), "%d", 30 + k);
		argv[3] = seeds[k];
		if ((kids[k] = fork()) == 0) {
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
	}
	for (i = 0; i < 8; i++) {
		ck_assert_int_eq(aclheap_checkpoint(), 0);
		snprintf(copy, sizeof(copy), "%s.%d", img, i);
		copy_file(img, copy);
	}
	for (k = 0; k < 2; k++) {
		st = wait_child(kids[k], 60000);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (i = 0; i < 8; i++) {
		snprintf(copy, sizeof(copy), "%s.%d", img, i);
		image_verifies(copy, NULL);
	}
	td_stop(&td, SIGKILL);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	snprintf(copy, sizeof(copy), "%s.%d", img, 4);
	copy_file(copy, img);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "loaded image"));
}
END_TEST

/* A large block freed while a checkpoint streams: the live heap checks
 * out at once, and a daemon killed then restarts on it. */
START_TEST(large_free_during_checkpoint)
{
	char tmp[400], err[512];
	void *big[10], *victim;
	uint64_t end;
	pid_t kid;
	int i, st;

	td_stop(&td, SIGKILL);
	td_shm_unlink(&td);
	snprintf(td.size, sizeof(td.size), "512M");
	ck_assert_int_eq(td_start(&td, NULL), 0);
	for (i = 0; i < 10; i++) {
		big[i] = aclmalloc(20 << 20);
		ck_assert_ptr_nonnull(big[i]);
		memset(big[i], i, 20 << 20);
	}
	victim = big[3];
	snprintf(tmp, sizeof(tmp), "%s/heap.img.tmp", td.state);
	if ((kid = fork()) == 0)
		_exit(aclheap_checkpoint() == 0 ? 0 : 1);
	end = now_ms() + 20000;
	while (access(tmp, F_OK) != 0 && now_ms() < end)
		;
	ck_assert_uint_eq(aclfree(victim), 20 << 20);
	ck_assert_uint_eq(aclfree(aclrealloc(big[5], 100000)), 100000);
	ck_assert_msg(shm_check(&conn_seg, NULL, err, sizeof(err)) == 0, "%s",
	    err);
	st = wait_child(kid, 60000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	restart(SIGKILL);
	ck_assert_ptr_nonnull(strstr(td_log(&td), "adopted live segment"));
	ck_assert_uint_eq(aclheap_usable_size(big[4]), 20 << 20);
}
END_TEST

/*
 * The segment lock as another process sees it (daemon/seglock.c): -1 if
 * no one holds byte 0 of the segment, else the pid the holder recorded as
 * the start of its one-byte lock at 2^40 + pid (0 if none).
 */
static long
seg_lock_pid(const char *shm)
{
	const off_t pid_base = (off_t)1 << 40;
	struct flock fl;
	long pid = -1;
	int fd;

	ck_assert_msg((fd = shm_open(shm, O_RDWR, 0)) >= 0, "%s: %s", shm,
	    strerror(errno));
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 1;
	ck_assert_int_eq(fcntl(fd, F_OFD_GETLK, &fl), 0);
	if (fl.l_type != F_UNLCK) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		fl.l_start = pid_base + 1;
		fl.l_len = 0;
		ck_assert_int_eq(fcntl(fd, F_OFD_GETLK, &fl), 0);
		pid = fl.l_type != F_UNLCK ? (long)(fl.l_start - pid_base) : 0;
	}
	close(fd);
	return pid;
}

static void
copy_into(const char *from_dir, const char *to_dir, const char *name)
{
	char from[400], to[400];

	snprintf(from, sizeof(from), "%s/%s", from_dir, name);
	snprintf(to, sizeof(to), "%s/%s", to_dir, name);
	copy_file(from, to);
}

/*
 * A copy of a live daemon's state folder (heap.id and image) names the
 * heap the first daemon serves.  A daemon started on the copy finds the
 * segment locked and exits 1 naming the first one's pid, without
 * listening; the first one's heap still verifies and holds its data.
 * Without the lock the second daemon adopted the segment and served it.
 */
START_TEST(copied_state_folder_refused)
{
	const char *verify[] = { NULL, "-s", td.sock, "verify", NULL };
	char a[64], out[4096], want[128], path[400];
	struct td t2;
	int st;

	fill("a", "200", "31", a, sizeof(a));
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(seg_lock_pid(td.shm), (long)td.pid);
	td_init(&t2, "copy");
	ck_assert_int_eq(mkdir(t2.state, 0700), 0);
	copy_into(td.state, t2.state, "heap.id");
	copy_into(td.state, t2.state, "heap.img");
	ck_assert_int_eq(td_start_env(&t2, NULL, NULL), 0);
	st = td_wait_exit(&t2, 20000);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
	    "second daemon: status %d\n%s", st, td_log(&t2));
	snprintf(want, sizeof(want), "served by another aclheapd, pid %d",
	    (int)td.pid);
	ck_assert_msg(strstr(td_log(&t2), want) != NULL, "%s", td_log(&t2));
	ck_assert_ptr_null(strstr(td_log(&t2), "adopted"));
	ck_assert_int_eq(access(t2.sock, F_OK), -1);
	/* Its heap.id names the first daemon's segment: the cleanup must
	 * not remove that. */
	snprintf(path, sizeof(path), "%s/heap.id", t2.state);
	ck_assert_int_eq(unlink(path), 0);
	td_cleanup(&t2);
	setenv("ACLHEAP_SOCKET", td.sock, 1);
	ck_assert_int_eq(seg_lock_pid(td.shm), (long)td.pid);
	verify[0] = td_prog("aclheapctl");
	ck_assert_msg(run_cmd(out, sizeof(out), verify) == 0, "%s", out);
	ck_assert_msg(strncmp(out, "OK", 2) == 0, "%s", out);
	check("a", "31", a);
	ck_assert_ptr_nonnull(aclmalloc(10));
}
END_TEST

/*
 * The lock dies with its holder.  This process is attached (its mapping
 * holds the description the daemon passed at Hello) when the daemon is
 * SIGKILLed: the segment is unlocked at once, and the next daemon adopts
 * it and records its own pid.  A lock on the passed descriptor would have
 * lived on in this client and refused the successor.  A heap loaded from
 * the image (after a "reboot") is locked by its loader too.
 */
START_TEST(killed_daemon_successor_adopts)
{
	const char *verify[] = { NULL, "-s", td.sock, "verify", NULL };
	char a[64], out[4096];
	uint64_t t0;
	long pid;
	char *p;

	ck_assert_int_eq(seg_lock_pid(td.shm), (long)td.pid);	/* formatted */
	fill("a", "100", "41", a, sizeof(a));
	ck_assert_ptr_nonnull(p = aclmalloc(100));
	strcpy(p, "mapped here");
	ck_assert_int_eq(aclheap_root_set("p", p), 0);
	pid = td.pid;
	td_stop(&td, SIGKILL);
	ck_assert_int_eq(seg_lock_pid(td.shm), -1);
	t0 = now_ms();
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	fprintf(stderr, "successor of a SIGKILLed daemon ready in %llu ms\n",
	    (unsigned long long)(now_ms() - t0));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "adopted live segment"));
	ck_assert_ptr_null(strstr(td_log(&td), "served by another"));
	ck_assert_int_ne(td.pid, pid);
	ck_assert_int_eq(seg_lock_pid(td.shm), (long)td.pid);	/* adopted */
	check("a", "41", a);
	ck_assert_ptr_eq(aclheap_root_get("p"), p);
	ck_assert_str_eq(p, "mapped here");
	verify[0] = td_prog("aclheapctl");
	ck_assert_msg(run_cmd(out, sizeof(out), verify) == 0, "%s", out);
	ck_assert_msg(strncmp(out, "OK", 2) == 0, "%s", out);
	/* A reboot: the image is loaded into a new object, locked. */
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "%s", td_log(&td));
	ck_assert_ptr_nonnull(strstr(td_log(&td), "loaded image"));
	ck_assert_int_eq(seg_lock_pid(td.shm), (long)td.pid);	/* loaded */
	check("a", "41", a);
}
END_TEST

/* Connects until the daemon accepts, 20 s at most: 0 or -1. */
static int
sock_ready(const char *path)
{
	struct sockaddr_un sun;
	uint64_t end = now_ms() + 20000;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	while (now_ms() < end) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			return 0;
		}
		close(fd);
		msleep(5);
	}
	return -1;
}

/*
 * A daemon that detaches records the pid of the child that serves, not
 * of the parent that exited: the refusal must name a process that is
 * there to stop.
 */
START_TEST(detached_daemon_lock_names_the_server)
{
	const char *argv[] = { td_prog("aclheapd"), "--socket", NULL,
	    "--state-dir", NULL, "--base", NULL, "--size", "64M", "--config",
	    "/dev/null", NULL };
	char path[400], shm[96], hex[64];
	uint64_t end;
	long pid = 0;
	pid_t starter;
	FILE *f;
	int st;

	/* The fixture's daemon makes room: this one takes its base. */
	ck_assert_int_eq(WEXITSTATUS(td_stop(&td, SIGTERM)), 0);
	td_cleanup(&td);
	td_init(&td, "detach");
	argv[2] = td.sock;
	argv[4] = td.state;
	argv[6] = td.base;
	/* Not run_cmd(): the daemon would keep its pipe open for good. */
	if ((starter = fork()) == 0) {
		int fd = open(td.log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_gt(starter, 0);
	st = wait_child(starter, 20000);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "start: %d\n%s", st, td_log(&td));
	ck_assert_int_eq(sock_ready(td.sock), 0);
	snprintf(path, sizeof(path), "%s/heap.id", td.state);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_int_eq(fscanf(f, "%63s", hex), 1);
	fclose(f);
	snprintf(shm, sizeof(shm), "/aclheap-%s", hex);
	snprintf(td.shm, sizeof(td.shm), "%s", shm);
	/* The child writes its pid into the lock file and then into the
	 * segment lock just after the parent exits: wait for both to name
	 * the same live process. */
	snprintf(path, sizeof(path), "%s/aclheapd.lock", td.state);
	end = now_ms() + 20000;
	for (;;) {
		pid = 0;
		if ((f = fopen(path, "r")) != NULL) {
			if (fscanf(f, "%ld", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if ((pid > 0 && kill((pid_t)pid, 0) == 0 &&
		    seg_lock_pid(shm) == pid) || now_ms() > end)
			break;
		msleep(5);
	}
	ck_assert_int_gt(pid, 0);
	td.pid = (pid_t)pid;	/* a failure below SIGKILLs it (down()) */
	ck_assert_int_eq(kill((pid_t)pid, 0), 0);
	ck_assert_int_eq(seg_lock_pid(shm), pid);
	/* Not our child: stop it and wait for it to be gone. */
	ck_assert_int_eq(kill((pid_t)pid, SIGTERM), 0);
	end = now_ms() + 60000;
	while (kill((pid_t)pid, 0) == 0 && now_ms() < end)
		msleep(10);
	ck_assert_int_eq(kill((pid_t)pid, 0), -1);
	td.pid = -1;
	ck_assert_int_eq(seg_lock_pid(shm), -1);
}
END_TEST

/*
 * Roots by the ten thousand: 20,000 of them, some with names of 255
 * bytes, set, read, CAS'd, listed whole and by prefix, and removed, kept
 * across a checkpoint, a restart, a kill -9 and a reboot; bad names are
 * refused and change nothing.  The heap is 256 MiB: room for 32768.
 */
#define MANY	20000

static void
many_name(char *buf, size_t len, int i)
{
	int n = snprintf(buf, len, "%s/%05d", i % 2 ? "odd" : "even", i);

	/* Every 500th a name of 255 bytes. */
	if (i % 500 == 0 && len > SHM_ROOT_NAME_MAX) {
		memset(buf + n, '.', SHM_ROOT_NAME_MAX - (size_t)n);
		buf[SHM_ROOT_NAME_MAX] = '\0';
	}
}

static void
many_check(int from, int step, uint64_t plus)
{
	char name[ACLHEAP_ROOT_NAME_MAX + 1];
	int i;

	for (i = from; i < MANY; i += step) {
		many_name(name, sizeof(name), i);
		errno = 0;
		ck_assert_msg((uint64_t)(uintptr_t)aclheap_root_get(name) ==
		    (uint64_t)i * 16 + plus, "%s: %s", name,
		    aclheap_last_error());
	}
}

static struct aclheap_root many_out[MANY + 10];

static void
many_listed(const char *prefix, int want)
{
	int n, i;

	n = prefix != NULL ? aclheap_root_list_prefix(prefix, many_out,
	    MANY + 10) : aclheap_root_list(many_out, MANY + 10);
	ck_assert_msg(n == want, "%d roots listed, %d wanted: %s", n, want,
	    aclheap_last_error());
	for (i = 1; i < n; i++)
		ck_assert_int_lt(strcmp(many_out[i - 1].name,
		    many_out[i].name), 0);
	for (i = 0; prefix != NULL && i < n; i++)
		ck_assert_int_eq(strncmp(many_out[i].name, prefix,
		    strlen(prefix)), 0);
}

START_TEST(twenty_thousand_roots)
{
	static struct td t;
	char name[ACLHEAP_ROOT_NAME_MAX + 1], longer[300], img[400];
	const char *bad[4];
	struct stat st;
	uint64_t t0, ops;
	int i, k;

	td_init(&t, "roots");
	snprintf(t.size, sizeof(t.size), "1G");
	ck_assert_msg(td_start(&t, NULL) == 0, "daemon: %s", td_log(&t));
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	/* Room for 32768 roots (8.5 MiB of table) and none in use: the
	 * image carries none of the room. */
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	snprintf(img, sizeof(img), "%s/heap.img", t.state);
	ck_assert_int_eq(stat(img, &st), 0);
	ck_assert_int_lt(st.st_size, 2 << 20);
	t0 = now_ms();
	for (i = 0; i < MANY; i++) {
		many_name(name, sizeof(name), i);
		ck_assert_msg(aclheap_root_set(name, (void *)(uintptr_t)
		    ((uint64_t)i * 16)) == 0, "%s: %s", name,
		    aclheap_last_error());
	}
	many_check(0, 1, 0);
	for (i = 0; i < MANY; i++) {
		many_name(name, sizeof(name), i);
		ck_assert_int_eq(aclheap_root_cas(name, (void *)(uintptr_t)
		    ((uint64_t)i * 16 + 1), NULL), -EAGAIN);
		ck_assert_int_eq(aclheap_root_cas(name, (void *)(uintptr_t)
		    ((uint64_t)i * 16), (void *)(uintptr_t)((uint64_t)i * 16 +
		    1)), 0);
	}
	ops = 4 * MANY;
	printf("# roots: %d set, got, CAS'd twice in %" PRIu64 " ms: %.0f "
	    "ops/s\n", MANY, now_ms() - t0, (double)ops * 1000.0 /
	    (double)(now_ms() - t0 + 1));
	many_check(0, 1, 1);
	many_listed(NULL, MANY);
	many_listed("odd/", MANY / 2);
	many_listed("even/00", 500);
	many_listed("nothing", 0);
	ck_assert_int_eq(aclheap_root_list(NULL, 0), MANY);

	/* Bad names: refused with EINVAL and words, nothing changed. */
	memset(longer, 'x', sizeof(longer));
	longer[SHM_ROOT_NAME_MAX + 1] = '\0';		/* 256 bytes */
	bad[0] = "";
	bad[1] = longer;
	bad[2] = "bell\a";
	bad[3] = "caf\xc3\xa9";
	for (k = 0; k < 4; k++) {
		ck_assert_int_eq(aclheap_root_set(bad[k], NULL), -EINVAL);
		ck_assert_ptr_nonnull(strstr(aclheap_last_error(),
		    "printable ASCII"));
		ck_assert_int_eq(aclheap_root_cas(bad[k], NULL, longer),
		    -EINVAL);
		ck_assert_int_eq(aclheap_root_remove(bad[k]), -EINVAL);
		errno = 0;
		ck_assert_ptr_null(aclheap_root_get(bad[k]));
		ck_assert_int_eq(errno, EINVAL);
		ck_assert_int_eq(aclheap_root_list_prefix(bad[k], NULL, 0),
		    k == 0 ? MANY : -EINVAL);
	}
	ck_assert_int_eq(aclheap_root_list(NULL, 0), MANY);
	many_check(0, 1, 1);
	/* The image grows by the roots in use, 272 bytes each. */
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	snprintf(img, sizeof(img), "%s/heap.img", t.state);
	ck_assert_int_eq(stat(img, &st), 0);
	ck_assert_int_lt(st.st_size, (2 << 20) + MANY * 272);

	/* Kept across a checkpoint, a restart, a kill -9 and a reboot. */
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	many_check(0, 1, 1);
	ck_assert_int_eq(td_stop(&t, SIGKILL), SIGKILL);
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	many_check(0, 1, 1);
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&t), 0);
	/* The segment is gone: what comes back comes from the image. */
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	many_check(0, 1, 1);
	many_listed(NULL, MANY);

	/* Half removed, from the middle of the table: the rest is whole. */
	for (i = 0; i < MANY; i += 2) {
		many_name(name, sizeof(name), i);
		ck_assert_int_eq(aclheap_root_remove(name), 0);
		ck_assert_int_eq(aclheap_root_remove(name), -ENOENT);
	}
	many_check(1, 2, 1);
	many_listed("even/", 0);
	many_listed(NULL, MANY / 2);
	ck_assert_int_eq(td_stop(&t, SIGKILL), SIGKILL);
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	many_check(1, 2, 1);
	many_listed(NULL, MANY / 2);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&t), 0);
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	many_check(1, 2, 1);
	many_listed("odd/", MANY / 2);
	aclheap_detach();
	td_cleanup(&t);
}
END_TEST

Suite *
persist_suite(void)
{
	Suite *s = suite_create("persist");
	TCase *tc = tcase_create("persist");

	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, graceful_restart_keeps_heap);
	tcase_add_test(tc, sigkill_loses_nothing);
	tcase_add_test(tc, reboot_restores_from_image);
	tcase_add_test(tc, reboot_after_crash_keeps_last_checkpoint);
	tcase_add_test(tc, kill_during_checkpoint);
	tcase_add_test(tc, damaged_image_refused);
	tcase_add_test(tc, inconsistent_image_refused);
	tcase_add_test(tc, geometry_mismatch_refused);
	tcase_add_test(tc, heap_knows_its_shape);
	tcase_add_test(tc, clients_survive_daemon_restarts);
	tcase_add_test(tc, reconnect_gives_up_after_timeout);
	tcase_add_test(tc, different_heap_refused);
	tcase_add_test(tc, client_follows_reloaded_heap);
	tcase_add_test(tc, idle_client_writes_nothing);
	tcase_add_test(tc, kills_at_every_delta_step);
	tcase_add_test(tc, kills_at_every_compaction_step);
	tcase_add_test(tc, chain_reload_equals_live_heap);
	tcase_add_test(tc, bad_checkpoint_not_renamed);
	tcase_add_test(tc, checkpoints_under_load_load);
	tcase_add_test(tc, large_free_during_checkpoint);
	tcase_add_test(tc, copied_state_folder_refused);
	tcase_add_test(tc, killed_daemon_successor_adopts);
	tcase_add_test(tc, detached_daemon_lock_names_the_server);
	tcase_set_timeout(tc, 240);
	suite_add_tcase(s, tc);
	tc = tcase_create("roots");
	tcase_add_test(tc, twenty_thousand_roots);
	tcase_set_timeout(tc, 240);
	suite_add_tcase(s, tc);
	return s;
}
