/* SPDX-License-Identifier: MIT */
/*
 * check_ctl.c: aclheapctl against a real aclheapd.  Each test case has its
 * own daemon (started by an unchecked fixture, so that it is stopped even
 * when the test fails), puts known data in the heap through <aclheap.h>,
 * runs the real aclheapctl binary and checks what it prints, not only its
 * exit status.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aclheap.h"
#include "shm/image.h"
#include "tests/testutil.h"

#define OUT_MAX		(4u << 20)

static struct td td;
static char out[OUT_MAX];

/* ------------------------------------------------------------------ */
/* Fixtures: in the runner, around each test case (one test each). */

static void
setup_daemon(void)
{
	td_init(&td, "ctl");
	ck_assert_int_eq(td_start(&td, NULL), 0);
}

/* A daemon that admits nobody, on a socket nobody can reach. */
static void
setup_daemon_nobody(void)
{
	static const char *const extra[] = { "--allow-user", "nobody",
	    "--socket-mode", "0666", NULL };

	td_init(&td, "ctl");
	ck_assert_int_eq(chmod(td.dir, 0755), 0);
	ck_assert_int_eq(td_start(&td, extra), 0);
}

static void
teardown_daemon(void)
{
	/* Only matters without fork mode, where the test ran in here. */
	aclheap_detach();
	td_cleanup(&td);
}

/* ------------------------------------------------------------------ */
/* Helpers */

/* Runs aclheapctl with the arguments up to NULL; its exit status. */
static int
ctl(const char *arg, ...)
{
	const char *argv[32];
	va_list ap;
	int n = 0;

	argv[n++] = td_prog("aclheapctl");
	va_start(ap, arg);
	for (; arg != NULL && n < 31; arg = va_arg(ap, const char *))
		argv[n++] = arg;
	va_end(ap);
	argv[n] = NULL;
	return run_cmd(out, sizeof(out), argv);
}

/* Runs aclheapctl as nobody:nogroup with no supplementary groups. */
static int
ctl_nobody(const char *arg, ...)
{
	const char *argv[32];
	va_list ap;
	int n = 0;

	argv[n++] = "/usr/bin/setpriv";
	argv[n++] = "--reuid=nobody";
	argv[n++] = "--regid=nogroup";
	argv[n++] = "--clear-groups";
	argv[n++] = td_prog("aclheapctl");
	va_start(ap, arg);
	for (; arg != NULL && n < 31; arg = va_arg(ap, const char *))
		argv[n++] = arg;
	va_end(ap);
	argv[n] = NULL;
	return run_cmd(out, sizeof(out), argv);
}

#define ck_out_has(s) \
	ck_assert_msg(strstr(out, (s)) != NULL, "no '%s' in:\n%s", (s), out)
#define ck_out_lacks(s) \
	ck_assert_msg(strstr(out, (s)) == NULL, "'%s' in:\n%s", (s), out)

/* The unsigned number after "key": in JSON output (the first one). */
static uint64_t
json_u64(const char *json, const char *key)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	ck_assert_msg(p != NULL, "no key %s in:\n%s", key, json);
	p += strlen(pat);
	ck_assert_msg(*p >= '0' && *p <= '9', "key %s is not a number in:\n"
	    "%s", key, json);
	return strtoull(p, NULL, 10);
}

/* The line of out that contains s, copied to buf. */
static const char *
line_with(const char *s, char *buf, size_t len)
{
	const char *p = strstr(out, s), *b, *e;

	ck_assert_msg(p != NULL, "no '%s' in:\n%s", s, out);
	for (b = p; b > out && b[-1] != '\n'; b--)
		;
	e = strchr(p, '\n');
	if (e == NULL)
		e = p + strlen(p);
	snprintf(buf, len, "%.*s", (int)(e - b), b);
	return buf;
}

/*
 * Waits until nothing accepts on sock any more (a killed daemon's socket
 * closes when the kernel reaps its descriptors): 0, or -1 after 20 s.
 */
static int
wait_refused(const char *sock)
{
	struct sockaddr_un sun;
	uint64_t end = now_ms() + 20000;
	int fd, rc;

	ck_assert_uint_lt(strlen(sock), sizeof(sun.sun_path));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, sock, strlen(sock) + 1);
	while (now_ms() < end) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
		close(fd);
		if (rc == -1)
			return 0;
		msleep(5);
	}
	return -1;
}

static void *
alloc_ok(size_t n)
{
	void *p = aclmalloc(n);

	ck_assert_msg(p != NULL, "aclmalloc(%zu): %s", n,
	    aclheap_last_error());
	return p;
}

static off_t
file_size(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return st.st_size;
}

static void
dump_to(const char *path)
{
	int rc = ctl("dump", "--out", path, NULL);

	ck_assert_msg(rc == 0, "dump exit %d:\n%s", rc, out);
	ck_out_has(path);
}

static void
copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, o;

	ck_assert_int_ge(in = open(from, O_RDONLY), 0);
	ck_assert_int_ge(o = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(o, buf, (size_t)n), n);
	close(in);
	close(o);
}

/* ------------------------------------------------------------------ */
/* status */

START_TEST(test_status_json)
{
	const char *cls;
	void *p[100];
	int i, rc;

	/* 50 bytes land in the 64-byte class: 50 requested, 64 handed out. */
	for (i = 0; i < 100; i++)
		p[i] = alloc_ok(50);
	ck_assert_int_eq(aclheap_root_set("first", p[0]), 0);
	ck_assert_int_eq(aclheap_root_set("last", p[99]), 0);

	rc = ctl("status", "--json", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_assert_uint_eq(json_u64(out, "blocks_in_use"), 100);
	ck_assert_uint_eq(json_u64(out, "bytes_requested"), 5000);
	ck_assert_uint_eq(json_u64(out, "roots"), 2);
	ck_assert_uint_eq(json_u64(out, "base"), TEST_BASE);
	ck_assert_uint_eq(json_u64(out, "size"), 64u << 20);
	ck_assert_uint_eq(json_u64(out, "large_blocks"), 0);
	ck_assert_uint_ge(json_u64(out, "clients"), 1);
	ck_assert_uint_ge(json_u64(out, "bytes_in_use"), 65536);
	(void)json_u64(out, "uptime_s");
	ck_out_has("\"version\":\"" PACKAGE_VERSION "\"");
	ck_out_has("\"last_checkpoint\":{\"time\":null");

	cls = strstr(out, "{\"block_size\":64,");
	ck_assert_msg(cls != NULL, "no class 64 in:\n%s", out);
	ck_assert_uint_ge(json_u64(cls, "slabs"), 1);
	ck_assert_uint_eq(json_u64(cls, "blocks_in_use"), 100);
	ck_assert_uint_eq(json_u64(cls, "bytes_requested"), 5000);
	ck_assert_uint_eq(json_u64(cls, "bytes_handed_out"), 6400);
	ck_assert_uint_eq(json_u64(cls, "blocks_in_use") +
	    json_u64(cls, "blocks_free") <= 1024 * json_u64(cls, "slabs"), 1);
	cls = strstr(out, "{\"block_size\":128,");
	ck_assert_ptr_nonnull(cls);
	ck_assert_uint_eq(json_u64(cls, "slabs"), 0);

	/* After a checkpoint, last_checkpoint has a time and bytes. */
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(ctl("status", "--json", NULL), 0);
	cls = strstr(out, "\"last_checkpoint\":{");
	ck_assert_ptr_nonnull(cls);
	ck_assert_uint_gt(json_u64(cls, "time"), 0);
	ck_assert_uint_gt(json_u64(cls, "bytes"), 0);
	ck_assert_uint_gt(json_u64(cls, "slabs"), 0);
	ck_out_has("\"kind\":\"full\",\"reason\":\"no image of this heap yet\"");
	ck_out_has("/heap.img\"");
	cls = strstr(out, "\"chain\":{");
	ck_assert_ptr_nonnull(cls);
	ck_assert_uint_eq(json_u64(cls, "deltas"), 0);
	ck_assert_uint_gt(json_u64(cls, "bytes"), 0);
	/* Nothing changed: a checkpoint that wrote nothing. */
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(ctl("status", "--json", NULL), 0);
	cls = strstr(out, "\"last_checkpoint\":{");
	ck_assert_uint_eq(json_u64(cls, "bytes"), 0);
	ck_out_has("\"kind\":\"nothing\"");
	ck_assert_int_eq(ctl("status", NULL), 0);
	ck_out_has(", nothing (nothing changed)\n");
}
END_TEST

START_TEST(test_status_human)
{
	char line[256], want[512];
	const char *p;
	int i, rc;

	for (i = 0; i < 10; i++)
		(void)alloc_ok(60);
	(void)alloc_ok(5000000);	/* above the classes: an extent */
	ck_assert_int_eq(aclheap_root_set("r", alloc_ok(8)), 0);

	rc = ctl("status", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	/* Used against the limit comes first. */
	ck_assert_msg(strncmp(out, "used ", 5) == 0, "first line:\n%s", out);
	line_with("used ", line, sizeof(line));
	ck_assert_msg(strstr(line, " of ") && strstr(line, " free"),
	    "%s", line);
	snprintf(want, sizeof(want), "heap        0x%" PRIx64 "-",
	    (uint64_t)TEST_BASE);
	ck_out_has(want);
	ck_out_has("blocks      12 in use (1 large)");
	ck_out_has("roots       1\n");
	ck_out_has("checkpoint  none");
	snprintf(want, sizeof(want), "socket      %s\n", td.sock);
	ck_out_has(want);
	ck_out_has("/heap.img");
	ck_out_has("aclheapd " PACKAGE_VERSION);
	/* The class table lists only classes with slabs: 16 (the root's
	 * block), 64, and the large extent. */
	line_with("     64 ", line, sizeof(line));
	ck_assert_msg(strstr(line, " 10 ") != NULL, "64 row: %s", line);
	line_with("  large ", line, sizeof(line));
	ck_out_lacks("    128 ");
	/* Everything fits an 80-column terminal. */
	for (p = out; *p != '\0'; p = strchr(p, '\n') + 1) {
		ck_assert_msg(strcspn(p, "\n") <= 80, "long line: %.*s",
		    (int)strcspn(p, "\n"), p);
		if (strchr(p, '\n') == NULL)
			break;
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* roots */

START_TEST(test_roots)
{
	char want[256], line[256];
	void *a = alloc_ok(100), *b = alloc_ok(3000);
	int rc;

	ck_assert_int_eq(aclheap_root_set("alpha", a), 0);
	ck_assert_int_eq(aclheap_root_set("beta.with-dots", b), 0);

	rc = ctl("roots", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	line_with("alpha", line, sizeof(line));
	snprintf(want, sizeof(want), "0x%" PRIxPTR " ", (uintptr_t)a);
	ck_assert_msg(strstr(line, want) && strstr(line, " 100 "),
	    "alpha: %s", line);
	line_with("beta.with-dots", line, sizeof(line));
	snprintf(want, sizeof(want), "0x%" PRIxPTR " ", (uintptr_t)b);
	ck_assert_msg(strstr(line, want) && strstr(line, " 3000 "),
	    "beta: %s", line);

	ck_assert_int_eq(ctl("roots", "--json", NULL), 0);
	snprintf(want, sizeof(want), "{\"name\":\"alpha\",\"addr\":%" PRIuPTR
	    ",\"requested\":100}", (uintptr_t)a);
	ck_out_has(want);
	ck_assert_uint_eq(str_count(out, "\"name\":"), 2);

	/* A removed root is gone from the list. */
	ck_assert_int_eq(aclheap_root_remove("alpha"), 0);
	ck_assert_int_eq(ctl("roots", NULL), 0);
	ck_out_lacks("alpha");
	ck_out_has("beta.with-dots");
}
END_TEST

/* ------------------------------------------------------------------ */
/* blocks */

START_TEST(test_blocks)
{
	static const size_t sizes[] = { 24, 100, 1000, 8000, 5000000 };
	void *p[5];
	char want[128], line[256];
	size_t i;
	int rc;

	for (i = 0; i < 5; i++)
		p[i] = alloc_ok(sizes[i]);

	rc = ctl("blocks", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	for (i = 0; i < 5; i++) {
		snprintf(want, sizeof(want), "0x%" PRIxPTR " ",
		    (uintptr_t)p[i]);
		line_with(want, line, sizeof(line));
		snprintf(want, sizeof(want), " %zu ", sizes[i]);
		ck_assert_msg(strstr(line, want) != NULL, "%s", line);
	}
	ck_out_has("5 blocks");

	/* --class takes a block size: 24 bytes live in the 32-byte class. */
	ck_assert_int_eq(ctl("blocks", "--class", "32", NULL), 0);
	snprintf(want, sizeof(want), "0x%" PRIxPTR " ", (uintptr_t)p[0]);
	ck_out_has(want);
	ck_out_has("\n1 block, ");
	snprintf(want, sizeof(want), "0x%" PRIxPTR " ", (uintptr_t)p[1]);
	ck_out_lacks(want);

	ck_assert_int_eq(ctl("blocks", "--large", NULL), 0);
	snprintf(want, sizeof(want), "0x%" PRIxPTR " ", (uintptr_t)p[4]);
	ck_out_has(want);
	ck_out_has("\n1 block, ");

	/* A range around one block finds that block only. */
	snprintf(want, sizeof(want), "0x%" PRIxPTR "-0x%" PRIxPTR,
	    (uintptr_t)p[2], (uintptr_t)p[2] + 1);
	ck_assert_int_eq(ctl("blocks", "--range", want, "--json", NULL), 0);
	snprintf(want, sizeof(want), "{\"addr\":%" PRIuPTR ",\"requested\":"
	    "1000,\"usable\":1024}", (uintptr_t)p[2]);
	ck_out_has(want);
	ck_assert_uint_eq(str_count(out, "{\"addr\":"), 1);
	ck_assert_msg(out[0] == '[' && strstr(out, "]\n") != NULL, "%s", out);

	/* A freed block is no longer listed. */
	ck_assert_uint_eq(aclfree(p[1]), 100);
	ck_assert_int_eq(ctl("blocks", NULL), 0);
	snprintf(want, sizeof(want), "0x%" PRIxPTR " ", (uintptr_t)p[1]);
	ck_out_lacks(want);
	ck_out_has("4 blocks");
}
END_TEST

/* More blocks than fit one reply page, in one slab and across slabs. */
START_TEST(test_blocks_pages)
{
	enum { N = 5000 };
	static uintptr_t addr[N];
	char want[64];
	int i, rc;

	for (i = 0; i < N; i++)
		addr[i] = (uintptr_t)alloc_ok(16);
	rc = ctl("blocks", "--class", "16", "--json", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%.2000s", rc, out);
	ck_assert_uint_eq(str_count(out, "{\"addr\":"), N);
	for (i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "{\"addr\":%" PRIuPTR ",",
		    addr[i]);
		ck_assert_msg(strstr(out, want) != NULL, "block %d at 0x%"
		    PRIxPTR " is missing", i, addr[i]);
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* hexdump */

START_TEST(test_hexdump)
{
	static const char msg[] = "Hello, aclheap!";
	enum { BIG = 40000 };
	char want[128], line[256], *hex;
	uint8_t *p, *big;
	size_t i;
	int rc;

	p = alloc_ok(64);
	memcpy(p, msg, 16);
	for (i = 16; i < 32; i++)
		p[i] = (uint8_t)(0xf0 + i - 16);

	snprintf(want, sizeof(want), "0x%" PRIxPTR, (uintptr_t)p);
	rc = ctl("hexdump", want, "32", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	snprintf(want, sizeof(want), "%012" PRIxPTR " ", (uintptr_t)p);
	line_with(want, line, sizeof(line));
	ck_assert_msg(strstr(line, " 48 65 6c 6c 6f 2c 20 61  63 6c 68 65 61 "
	    "70 21 00 |Hello, aclheap!.|") != NULL, "%s", line);
	ck_assert_uint_eq(strlen(line), 80);
	snprintf(want, sizeof(want), "%012" PRIxPTR " ", (uintptr_t)p + 16);
	line_with(want, line, sizeof(line));
	ck_assert_msg(strstr(line, " f0 f1 f2 f3 f4 f5 f6 f7  f8 f9 fa fb fc "
	    "fd fe ff |................|") != NULL, "%s", line);

	/* Longer than one Read request: every byte comes back in order. */
	big = alloc_ok(BIG);
	for (i = 0; i < BIG; i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	snprintf(want, sizeof(want), "0x%" PRIxPTR, (uintptr_t)big);
	rc = ctl("hexdump", want, "40000", "--json", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%.500s", rc, out);
	ck_assert_uint_eq(json_u64(out, "len"), BIG);
	hex = strstr(out, "\"hex\":\"");
	ck_assert_ptr_nonnull(hex);
	hex += 7;
	for (i = 0; i < BIG; i++) {
		snprintf(want, sizeof(want), "%02x", big[i]);
		ck_assert_msg(strncmp(hex + 2 * i, want, 2) == 0,
		    "byte %zu: %.2s, wrote %s", i, hex + 2 * i, want);
	}
	ck_assert_int_eq(hex[2 * BIG], '"');
}
END_TEST

START_TEST(test_hexdump_outside)
{
	char a[64];
	int rc;

	rc = ctl("hexdump", "0x1000", "16", NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("outside the heap");
	/* Starts inside, runs past the end. */
	snprintf(a, sizeof(a), "0x%" PRIx64, (uint64_t)TEST_BASE +
	    (64u << 20) - 8);
	rc = ctl("hexdump", a, "64", NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("outside the heap");
	/* The last 8 bytes themselves are fine. */
	rc = ctl("hexdump", a, "8", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	/* Not an address, or too much: bad usage and a refusal. */
	ck_assert_int_eq(ctl("hexdump", "heap", NULL), 2);
	snprintf(a, sizeof(a), "0x%" PRIx64, (uint64_t)TEST_BASE);
	ck_assert_int_eq(ctl("hexdump", a, "2M", NULL), 1);
	ck_out_has("limit");
}
END_TEST

/* ------------------------------------------------------------------ */
/* checkpoint, dump, verify, inspect */

START_TEST(test_checkpoint)
{
	char path[400], delta[420], want[512];
	uint64_t bytes;
	const char *p;
	char *blk;
	int rc;

	ck_assert_int_eq(aclheap_root_set("ck", blk = alloc_ok(5000)), 0);
	snprintf(path, sizeof(path), "%s/heap.img", td.state);
	snprintf(delta, sizeof(delta), "%s.delta.1", path);
	ck_assert_int_eq(access(path, F_OK), -1);

	rc = ctl("checkpoint", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has(path);
	p = strstr(out, ": ");
	ck_assert_ptr_nonnull(p);
	bytes = strtoull(p + 2, NULL, 10);
	ck_assert_uint_eq(bytes, (uint64_t)file_size(path));
	ck_out_has(" ms, full (no image of this heap yet)");

	/* Nothing changed since: nothing written, the generation stands. */
	ck_assert_int_eq(ctl("checkpoint", "--json", NULL), 0);
	ck_assert_uint_eq(json_u64(out, "bytes"), 0);
	ck_assert_uint_eq(json_u64(out, "generation"), 1);
	ck_out_has("\"kind\":\"nothing\"");
	ck_assert_int_eq(ctl("checkpoint", NULL), 0);
	ck_out_has("checkpoint 1 stands: nothing changed, nothing written");
	ck_assert_int_eq(access(delta, F_OK), -1);

	/* A client's store: a delta of one slab. */
	memset(blk, 'd', 100);
	ck_assert_int_eq(ctl("checkpoint", "--json", NULL), 0);
	ck_assert_uint_eq(json_u64(out, "generation"), 2);
	ck_assert_uint_eq(json_u64(out, "slabs"), 1);
	ck_assert_uint_eq(json_u64(out, "bytes"), (uint64_t)file_size(delta));
	ck_out_has("\"kind\":\"delta\",\"reason\":\"1 slabs changed\"");
	snprintf(want, sizeof(want), "\"path\":\"%s\"", delta);
	ck_out_has(want);
	rc = ctl("inspect", path, NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("generation 2");
	ck_out_has("base generation 1 (");
	ck_out_has(") and 1 deltas\n");
	ck_assert_int_eq(ctl("verify", path, NULL), 0);
	ck_out_has("(1 delta)");

	/* --full: a new base, the delta gone. */
	ck_assert_int_eq(ctl("checkpoint", "--full", "--json", NULL), 0);
	ck_assert_uint_eq(json_u64(out, "bytes"), (uint64_t)file_size(path));
	ck_assert_uint_eq(json_u64(out, "generation"), 3);
	ck_out_has("\"kind\":\"full\",\"reason\":\"asked for\"");
	snprintf(want, sizeof(want), "\"path\":\"%s\"", path);
	ck_out_has(want);
	ck_assert_int_eq(access(delta, F_OK), -1);
	ck_assert_int_eq(ctl("checkpoint", "--bogus", NULL), 2);

	/* The daemon's own image inspects like a dump. */
	rc = ctl("inspect", path, NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("generation 3");
	ck_out_has(") and 0 deltas\n");
	ck_out_has("  ck\n");
}
END_TEST

/* A dump is one whole image, whatever the chain on disk: it verifies and
 * inspects alone. */
START_TEST(test_dump_alone)
{
	char img[400], want[512];
	char *blk = alloc_ok(3000);
	int rc;

	memset(blk, 1, 3000);
	ck_assert_int_eq(aclheap_root_set("one", blk), 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	memset(blk, 2, 3000);
	ck_assert_int_eq(aclheap_checkpoint(), 0);	/* a delta */
	snprintf(img, sizeof(img), "%s/heap.img.delta.1", td.state);
	ck_assert_int_eq(access(img, F_OK), 0);
	snprintf(img, sizeof(img), "%s/alone.img", td.dir);
	dump_to(img);
	rc = ctl("inspect", img, "--json", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_assert_uint_eq(json_u64(out, "deltas"), 0);
	ck_assert_uint_eq(json_u64(out, "generation"), 2);
	ck_assert_uint_eq(json_u64(out, "bytes"), (uint64_t)file_size(img));
	snprintf(want, sizeof(want), "\"name\":\"one\",\"addr\":%" PRIuPTR,
	    (uintptr_t)blk);
	ck_out_has(want);
}
END_TEST

START_TEST(test_dump_verify_inspect)
{
	char img[400], want[512], line[256];
	void *a, *b;
	int i, rc;

	a = alloc_ok(48);
	strcpy(a, "persistent");
	b = alloc_ok(5000000);
	for (i = 0; i < 30; i++)
		(void)alloc_ok(300);
	ck_assert_int_eq(aclheap_root_set("gamma", a), 0);
	ck_assert_int_eq(aclheap_root_set("delta", b), 0);

	snprintf(img, sizeof(img), "%s/dump.img", td.dir);
	dump_to(img);
	snprintf(want, sizeof(want), "dumped %" PRIu64 " bytes",
	    (uint64_t)file_size(img));
	ck_out_has(want);
	snprintf(want, sizeof(want), "%s.tmp", img);
	ck_assert_int_eq(access(want, F_OK), -1);

	rc = ctl("verify", img, NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("OK");
	ck_out_has("32 blocks live (1 large)");
	ck_out_has("2 roots");

	rc = ctl("inspect", img, NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_assert_msg(strncmp(out, "used ", 5) == 0, "%s", out);
	ck_out_has("blocks      32 in use (1 large)");
	snprintf(want, sizeof(want), "heap        0x%" PRIx64 "-",
	    (uint64_t)TEST_BASE);
	ck_out_has(want);
	line_with("  gamma", line, sizeof(line));
	snprintf(want, sizeof(want), "0x%" PRIxPTR " ", (uintptr_t)a);
	ck_assert_msg(strstr(line, want) && strstr(line, " 48 "), "%s",
	    line);
	line_with("    320 ", line, sizeof(line));
	ck_assert_msg(strstr(line, " 30 ") != NULL, "%s", line);

	rc = ctl("inspect", img, "--json", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_assert_uint_eq(json_u64(out, "blocks_in_use"), 32);
	ck_assert_uint_eq(json_u64(out, "large_blocks"), 1);
	ck_assert_uint_eq(json_u64(out, "base"), TEST_BASE);
	snprintf(want, sizeof(want), "{\"name\":\"delta\",\"addr\":%" PRIuPTR
	    ",\"requested\":5000000}", (uintptr_t)b);
	ck_out_has(want);
	ck_assert_uint_eq(json_u64(strstr(out, "{\"block_size\":320,"),
	    "blocks_in_use"), 30);

	/* Live verification agrees. */
	rc = ctl("verify", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("OK: live heap");
	ck_out_has(" 32 blocks live");
}
END_TEST

START_TEST(test_verify_damaged)
{
	char img[400], bad[400], want[512];
	off_t size;
	uint8_t c;
	int fd, rc;
	int i;

	for (i = 0; i < 20; i++)
		(void)alloc_ok(1000);
	snprintf(img, sizeof(img), "%s/good.img", td.dir);
	snprintf(bad, sizeof(bad), "%s/bad.img", td.dir);
	dump_to(img);
	size = file_size(img);

	/* One flipped bit in the last slab run's data. */
	copy_file(img, bad);
	ck_assert_int_ge(fd = open(bad, O_RDWR), 0);
	ck_assert_int_eq(pread(fd, &c, 1, size - 48 - 8 - 1000), 1);
	c ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &c, 1, size - 48 - 8 - 1000), 1);
	close(fd);
	rc = ctl("verify", bad, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	snprintf(want, sizeof(want), "%s: section", bad);
	ck_out_has(want);
	ck_out_has("(slabs ");
	ck_out_has("checksum mismatch");
	rc = ctl("inspect", bad, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("checksum mismatch");
	rc = ctl("verify", bad, "--json", NULL);
	ck_assert_int_eq(rc, 1);
	ck_out_has("\"ok\":false");

	/* A flip in the metadata section is named as such. */
	copy_file(img, bad);
	ck_assert_int_ge(fd = open(bad, O_RDWR), 0);
	ck_assert_int_eq(pread(fd, &c, 1, 4096), 1);
	c ^= 1;
	ck_assert_int_eq(pwrite(fd, &c, 1, 4096), 1);
	close(fd);
	ck_assert_int_eq(ctl("verify", bad, NULL), 1);
	ck_out_has("(metadata): checksum mismatch");

	/* Truncated: the end marker is gone. */
	copy_file(img, bad);
	ck_assert_int_eq(truncate(bad, size - 48), 0);
	rc = ctl("verify", bad, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has(bad);
	ck_out_has("truncated");
	ck_assert_int_eq(ctl("inspect", bad, NULL), 1);
	ck_out_has("truncated");

	/* One byte short: truncated, not "garbage" of a huge size. */
	copy_file(img, bad);
	ck_assert_int_eq(truncate(bad, size - 1), 0);
	rc = ctl("verify", bad, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("truncated image: 1 byte missing");
	ck_out_lacks("garbage");

	/* Truncated inside the header. */
	ck_assert_int_eq(truncate(bad, 10), 0);
	ck_assert_int_eq(ctl("verify", bad, NULL), 1);
	ck_out_has("header");

	/* No such file. */
	snprintf(bad, sizeof(bad), "%s/none.img", td.dir);
	ck_assert_int_eq(ctl("verify", bad, NULL), 1);
	ck_out_has("No such file");

	/* The original is untouched and still good. */
	ck_assert_int_eq(ctl("verify", img, NULL), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* clients */

START_TEST(test_clients)
{
	char want[64], line[256];
	int rc;

	(void)alloc_ok(10);		/* attaches this process */
	rc = ctl("clients", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	snprintf(want, sizeof(want), "%7d ", (int)getpid());
	line_with(want, line, sizeof(line));
	ck_assert_msg(strstr(line, program_invocation_short_name) &&
	    strstr(line, " root "), "%s", line);
	ck_out_has(" aclheapctl ");

	ck_assert_int_eq(ctl("clients", "--json", NULL), 0);
	snprintf(want, sizeof(want), "{\"pid\":%d,\"uid\":%d,", (int)getpid(),
	    (int)getuid());
	ck_out_has(want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* exit statuses */

START_TEST(test_unreachable)
{
	char sock[400], want[500];
	int rc;

	snprintf(sock, sizeof(sock), "%s/no-such.sock", td.dir);
	setenv("ACLHEAP_SOCKET", sock, 1);
	rc = ctl("status", NULL);
	ck_assert_msg(rc == 3, "exit %d:\n%s", rc, out);
	snprintf(want, sizeof(want), "at %s:", sock);
	ck_out_has(want);
	ck_out_has("aclheapd");
	ck_out_has("systemctl start aclheapd");
	/* With --json, still JSON, before or after the command. */
	rc = ctl("status", "--json", NULL);
	ck_assert_msg(rc == 3, "exit %d:\n%s", rc, out);
	ck_assert_msg(strncmp(out, "{\"socket\":", 10) == 0, "%s", out);
	ck_out_has("\"reachable\":false");
	ck_out_has(sock);
	rc = ctl("--json", "roots", NULL);
	ck_assert_msg(rc == 3 && out[0] == '{', "exit %d:\n%s", rc, out);

	/* -s wins over the environment. */
	ck_assert_int_eq(ctl("-s", td.sock, "roots", NULL), 0);
	rc = ctl("--socket", sock, "checkpoint", NULL);
	ck_assert_int_eq(rc, 3);
	ck_out_has(sock);

	/* A daemon that is gone: its socket file is left behind. */
	setenv("ACLHEAP_SOCKET", td.sock, 1);
	ck_assert_int_eq(ctl("status", NULL), 0);
	/* The runner reaps it in the teardown; we only kill it. */
	ck_assert_int_eq(kill(td.pid, SIGKILL), 0);
	ck_assert_int_eq(wait_refused(td.sock), 0);
	rc = ctl("roots", NULL);
	ck_assert_msg(rc == 3, "exit %d:\n%s", rc, out);
	ck_out_has(td.sock);

	/* Offline commands need no daemon. */
	ck_assert_int_eq(ctl("verify", sock, NULL), 1);
}
END_TEST

START_TEST(test_usage)
{
	int rc;

	ck_assert_int_eq(ctl(NULL), 2);
	ck_out_has("usage:");
	ck_assert_int_eq(ctl("frobnicate", NULL), 2);
	ck_out_has("frobnicate");
	ck_assert_int_eq(ctl("status", "extra", NULL), 2);
	ck_assert_int_eq(ctl("status", "--bogus", NULL), 2);
	ck_assert_int_eq(ctl("-x", "status", NULL), 2);
	ck_assert_int_eq(ctl("-s", NULL), 2);
	ck_assert_int_eq(ctl("dump", NULL), 2);
	ck_out_has("--out");
	ck_assert_int_eq(ctl("dump", "--out", NULL), 2);
	ck_assert_int_eq(ctl("hexdump", NULL), 2);
	ck_assert_int_eq(ctl("hexdump", "0x1000", "lots", NULL), 2);
	ck_assert_int_eq(ctl("blocks", "--class", "17", NULL), 2);
	ck_out_has("64");
	ck_assert_int_eq(ctl("blocks", "--class", "64", "--large", NULL), 2);
	ck_assert_int_eq(ctl("blocks", "--range", "9-3", NULL), 2);
	ck_assert_int_eq(ctl("inspect", NULL), 2);
	ck_assert_int_eq(ctl("verify", "a", "b", NULL), 2);
	ck_assert_int_eq(ctl("repair", NULL), 2);
	ck_assert_int_eq(ctl("repair", "heap.img", NULL), 2);
	ck_out_has("--out");
	ck_assert_int_eq(ctl("repair", "--out", "x", NULL), 2);

	ck_assert_int_eq(ctl("--help", NULL), 0);
	ck_out_has("hexdump ADDR");
	{
		static const char *const cmds[] = { "status", "dump",
		    "blocks", "roots", "hexdump", "checkpoint", "verify",
		    "inspect", "clients", "metrics", "restore", "repair" };
		size_t i;

		/* Every command's --help is help, not a usage error. */
		for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			rc = ctl(cmds[i], "--help", NULL);
			ck_assert_msg(rc == 0, "%s --help: exit %d:\n%s",
			    cmds[i], rc, out);
			ck_out_has("hexdump ADDR");
			ck_assert_int_eq(ctl(cmds[i], "-h", NULL), 0);
		}
	}
	ck_assert_int_eq(ctl("--version", NULL), 0);
	ck_out_has(PACKAGE_VERSION);
	/* --json goes before or after the command. */
	ck_assert_int_eq(ctl("--json", "roots", NULL), 0);
	ck_assert_str_eq(out, "[]\n");
}
END_TEST

/* ------------------------------------------------------------------ */
/* privileged requests */

START_TEST(test_privileged)
{
	char a[64], path[400];
	void *p;
	int rc;

	if (geteuid() != 0)
		td_skip("needs root to run aclheapctl as another user (CI runs "
		    "as root)");
	p = alloc_ok(64);
	ck_assert_int_eq(aclheap_root_set("mine", p), 0);
	snprintf(path, sizeof(path), "%s/heap.img", td.state);

	/* nobody is admitted and may look ... */
	rc = ctl_nobody("status", "--json", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_assert_uint_eq(json_u64(out, "roots"), 1);
	rc = ctl_nobody("roots", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("mine");

	/* ... but not checkpoint, dump or read heap bytes. */
	rc = ctl_nobody("checkpoint", NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("only for aclheapd's user and root");
	ck_out_has("not permitted");
	ck_assert_int_eq(access(path, F_OK), -1);

	rc = ctl_nobody("dump", "--out", "/tmp/aclheap-ctl-never.img", NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("only for aclheapd's user and root");
	ck_assert_int_eq(access("/tmp/aclheap-ctl-never.img", F_OK), -1);
	ck_assert_int_eq(access("/tmp/aclheap-ctl-never.img.tmp", F_OK), -1);

	snprintf(a, sizeof(a), "0x%" PRIxPTR, (uintptr_t)p);
	rc = ctl_nobody("hexdump", a, "16", NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("only for aclheapd's user and root");

	/* The daemon's own user still may. */
	ck_assert_int_eq(ctl("checkpoint", NULL), 0);
	ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* dump to standard output, restore */

/*
 * Runs aclheapctl with stdin from in (NULL: /dev/null) and stdout into
 * the file outpath (NULL: into out, with stderr); stderr goes to out.
 * Its exit status.
 */
static int
ctl_io(const char *in, const char *outpath, const char *arg, ...)
{
	const char *argv[32];
	char errpath[400];
	va_list ap;
	pid_t pid;
	ssize_t n;
	int st, fd, n_ = 0;

	argv[n_++] = td_prog("aclheapctl");
	va_start(ap, arg);
	for (; arg != NULL && n_ < 31; arg = va_arg(ap, const char *))
		argv[n_++] = arg;
	va_end(ap);
	argv[n_] = NULL;
	snprintf(errpath, sizeof(errpath), "%s/ctl.err", td.dir);
	if ((pid = fork()) == 0) {
		if ((fd = open(in != NULL ? in : "/dev/null", O_RDONLY)) < 0 ||
		    dup2(fd, 0) < 0)
			_exit(126);
		if ((fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC,
		    0600)) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		if ((fd = open(outpath != NULL ? outpath : errpath, O_WRONLY |
		    O_CREAT | (outpath != NULL ? O_TRUNC : O_APPEND),
		    0600)) < 0 || dup2(fd, 1) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	fd = open(errpath, O_RDONLY);
	n = fd >= 0 ? read(fd, out, sizeof(out) - 1) : 0;
	out[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int
same_file(const char *a, const char *b)
{
	size_t la, lb;
	char *x = file_slurp(a, &la), *y = file_slurp(b, &lb);
	int same = la == lb && memcmp(x, y, la) == 0;

	free(x);
	free(y);
	return same;
}

/*
 * dump --out - writes the image to standard output; restore puts one
 * into a stopped heap's state folder: not while a daemon serves it, not a
 * damaged one, not over a live segment unless told, and from a file or
 * standard input.  The restarted daemon serves the restored heap.
 */
START_TEST(test_dump_stdout_restore)
{
	char dump[400], bad[400], img[400], keep[400], tmp[400], shm[200];
	char delta[400];
	struct td t;
	char *p;
	int fd, rc;
	uint8_t c;

	td_init(&t, "restore");
	ck_assert_int_eq(td_start(&t, NULL), 0);
	snprintf(dump, sizeof(dump), "%s/dump.img", t.dir);
	snprintf(bad, sizeof(bad), "%s/bad.img", t.dir);
	snprintf(img, sizeof(img), "%s/heap.img", t.state);
	snprintf(keep, sizeof(keep), "%s/kept.img", t.dir);
	snprintf(tmp, sizeof(tmp), "%s/heap.img.restore", t.state);
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	p = alloc_ok(100);
	strcpy(p, "before the dump");
	ck_assert_int_eq(aclheap_root_set("r", p), 0);

	rc = ctl_io(NULL, dump, "-s", t.sock, "dump", "--out", "-", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("to standard output");
	ck_assert_int_eq(ctl("verify", dump, NULL), 0);

	/* A base and a delta on top of it, which a restore must not leave
	 * over the image it puts there. */
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(aclheap_root_set("later", p), 0);
	ck_assert_int_eq(aclheap_root_remove("r"), 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	snprintf(delta, sizeof(delta), "%s/heap.img.delta.1", t.state);
	ck_assert_int_eq(access(delta, F_OK), 0);
	aclheap_detach();

	/* Refused while the daemon serves the state. */
	rc = ctl("restore", "--state-dir", t.state, dump, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("serves");
	ck_assert(!same_file(img, dump));

	/* Stopped: its final checkpoint is the image now. */
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
	copy_file(img, keep);

	/* A damaged image changes nothing. */
	copy_file(dump, bad);
	ck_assert_int_ge(fd = open(bad, O_RDWR), 0);
	ck_assert_int_eq(pread(fd, &c, 1, 5000), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, 5000), 1);
	close(fd);
	rc = ctl("restore", "--state-dir", t.state, "--discard-live", bad,
	    NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("nothing changed");
	ck_assert(same_file(img, keep));
	ck_assert_int_eq(access(tmp, F_OK), -1);
	rc = ctl_io("/dev/null", NULL, "restore", "--state-dir", t.state,
	    "--discard-live", "-", NULL);
	ck_assert_msg(rc == 1, "empty input: exit %d:\n%s", rc, out);
	ck_assert(same_file(img, keep));

	/* The stopped heap's live segment would win over the image. */
	snprintf(shm, sizeof(shm), "/dev/shm%s", t.shm);
	ck_assert_int_eq(access(shm, F_OK), 0);
	rc = ctl("restore", "--state-dir", t.state, dump, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("--discard-live");
	ck_assert(same_file(img, keep));
	ck_assert_int_eq(access(shm, F_OK), 0);

	/* From standard input, as from a pipe of 'dump --out -'. */
	rc = ctl_io(dump, NULL, "restore", "--state-dir", t.state,
	    "--discard-live", "-", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("restored");
	ck_assert(same_file(img, dump));
	ck_assert_int_eq(access(shm, F_OK), -1);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(access(delta, F_OK), -1);

	/* The next daemon there serves the dumped heap. */
	ck_assert_int_eq(td_start(&t, NULL), 0);
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	ck_assert_ptr_eq(aclheap_root_get("r"), p);
	ck_assert_str_eq(p, "before the dump");
	ck_assert_ptr_null(aclheap_root_get("later"));
	ck_assert_int_eq(errno, ENOENT);
	aclheap_detach();
	td_cleanup(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* metrics */

/*
 * Checks an OpenMetrics text exposition: every family declared once by
 * TYPE (with HELP) before its samples, each sample of the family named
 * last (name, name_total for a counter, name_info for an info), a label
 * set {k="v",...}, a number; "# EOF" last.  The value of the sample
 * `want` (with its labels, if any) into *v.  The number of samples.
 */
static int
om_parse(const char *text, const char *want, double *v)
{
	char fam[128] = "", type[32] = "", seen[8192] = " ", name[200];
	const char *l = text, *e, *sp;
	int samples = 0, eof = 0;
	size_t n;
	char *end;

	for (; *l != '\0'; l = e + 1) {
		ck_assert_msg(!eof, "text after # EOF: %s", l);
		ck_assert_ptr_nonnull(e = strchr(l, '\n'));
		n = (size_t)(e - l);
		if (n == 5 && strncmp(l, "# EOF", 5) == 0) {
			eof = 1;
			continue;
		}
		if (strncmp(l, "# TYPE ", 7) == 0) {
			ck_assert_int_eq(sscanf(l + 7, "%127s %31s", fam, type),
			    2);
			snprintf(name, sizeof(name), " %s ", fam);
			ck_assert_msg(strstr(seen, name) == NULL,
			    "family %s twice", fam);
			ck_assert_uint_lt(strlen(seen) + strlen(name),
			    sizeof(seen));
			strcat(seen, fam);
			strcat(seen, " ");
			ck_assert_msg(strcmp(type, "gauge") == 0 ||
			    strcmp(type, "counter") == 0 ||
			    strcmp(type, "info") == 0, "type %s", type);
			continue;
		}
		if (strncmp(l, "# HELP ", 7) == 0 ||
		    strncmp(l, "# UNIT ", 7) == 0) {
			ck_assert_msg(strncmp(l + 7, fam, strlen(fam)) == 0 &&
			    l[7 + strlen(fam)] == ' ', "%.*s", (int)n, l);
			continue;
		}
		ck_assert_msg(l[0] != '#', "unknown comment %.*s", (int)n, l);
		ck_assert_msg(fam[0] != '\0', "sample before TYPE");
		ck_assert_ptr_nonnull(sp = memchr(l, ' ', n));
		snprintf(name, sizeof(name), "%.*s", (int)(sp - l), l);
		if (strchr(name, '{') != NULL) {
			ck_assert_msg(name[strlen(name) - 1] == '}' &&
			    strstr(name, "=\"") != NULL, "labels: %s", name);
		}
		{
			size_t base = strcspn(name, "{");
			char bare[200];

			snprintf(bare, sizeof(bare), "%.*s", (int)base, name);
			if (strcmp(type, "counter") == 0)
				ck_assert_msg(strlen(bare) == strlen(fam) + 6 &&
				    strncmp(bare, fam, strlen(fam)) == 0 &&
				    strcmp(bare + strlen(fam), "_total") == 0,
				    "counter sample %s", bare);
			else if (strcmp(type, "info") == 0)
				ck_assert_msg(strlen(bare) == strlen(fam) + 5 &&
				    strcmp(bare + strlen(fam), "_info") == 0,
				    "info sample %s", bare);
			else
				ck_assert_str_eq(bare, fam);
		}
		strtod(sp + 1, &end);
		ck_assert_msg(end == e && end > sp + 1, "value of %.*s",
		    (int)n, l);
		if (strcmp(name, want) == 0)
			*v = strtod(sp + 1, NULL);
		samples++;
	}
	ck_assert_msg(eof, "no # EOF");
	return samples;
}

START_TEST(test_metrics)
{
	char sock[400];
	double v = -1;
	int rc, i;

	for (i = 0; i < 3; i++)
		(void)alloc_ok(100);
	ck_assert_int_eq(aclheap_root_set("m1", alloc_ok(10)), 0);
	ck_assert_int_eq(aclheap_root_set("m2", alloc_ok(10)), 0);
	rc = ctl("metrics", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_assert_int_gt(om_parse(out, "aclheap_up", &v), 20);
	ck_assert(v == 1);
	om_parse(out, "aclheap_roots", &v);
	ck_assert(v == 2);
	om_parse(out, "aclheap_blocks", &v);
	ck_assert(v >= 5);
	om_parse(out, "aclheap_heap_size_bytes", &v);
	ck_assert(v == 64 << 20);
	v = -1;
	om_parse(out, "aclheap_class_blocks{block_size=\"112\"}", &v);
	if (v < 0)
		om_parse(out, "aclheap_class_blocks{block_size=\"128\"}", &v);
	ck_assert_msg(v >= 3, "100-byte blocks' class: %g\n%s", v, out);
	ck_out_has("aclheap_checkpoints_total ");
	ck_out_has("aclheap_daemon_info{version=\"" PACKAGE_VERSION "\"");

	/* No daemon: still an exposition, with up 0, and exit 3. */
	snprintf(sock, sizeof(sock), "%s/none.sock", td.dir);
	rc = ctl("-s", sock, "metrics", NULL);
	ck_assert_msg(rc == 3, "exit %d:\n%s", rc, out);
	*strstr(out, "# EOF\n") = '\0';
	strcat(out, "# EOF\n");
	v = -1;
	om_parse(out, "aclheap_up", &v);
	ck_assert(v == 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* repair */

/* Where heap address a lies in an image loaded offline. */
static void *
off_at(const struct shm_seg *seg, const void *a)
{
	return (char *)seg->sb + ((uintptr_t)a - seg->base);
}

static struct shm_root *
off_root(const struct shm_seg *seg, const char *name)
{
	uint64_t i;

	for (i = 0; i < atomic_load(&seg->sb->roots_used); i++)
		if (strcmp(seg->roots[i].name, name) == 0)
			return &seg->roots[i];
	ck_abort_msg("no root %s in the image", name);
	return NULL;
}

/*
 * Writes the heap loaded offline in seg as a whole image to path, with
 * the image writer: the damage a test made to seg is in it, under good
 * checksums, as a scribble the daemon checkpointed would be.
 */
static void
write_image(const struct shm_seg *seg, const struct image_info *info,
    const char *path)
{
	struct image_spec sp;
	struct image_out io;
	struct shm_geom g;
	int fd;

	ck_assert_int_eq(seg_geometry_max(seg->size, seg->max, &g), 0);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC,
	    0600), 0);
	memset(&sp, 0, sizeof(sp));
	sp.seg = seg;
	sp.identity = info->hdr.identity;
	sp.meta = (const uint8_t *)seg->sb;
	/* The segment's metadata as it lies, segment-shaped (the writer
	 * leaves the lease region and the unused roots out, which makes
	 * the header's meta_len shorter); from the geometry, as the
	 * superblock may be what was scribbled on. */
	sp.meta_len = g.meta_end;
	sp.generation = info->hdr.generation;
	sp.kind = IMAGE_FULL;
	ck_assert_int_eq(image_write(fd, &sp, &io), 0);
	close(fd);
}

/* The class and block index of small block p in seg, and its slab. */
static uint64_t
off_block(const struct shm_seg *seg, const void *p, uint32_t *cls,
    uint32_t *index)
{
	uintptr_t a = (uintptr_t)off_at(seg, p);
	uint64_t s = slab_index(seg, a);
	uint64_t w = atomic_load(&seg->slabs[s].word);

	ck_assert_uint_eq(SHM_SLAB_STATE(w), SHM_SMALL);
	*cls = SHM_SLAB_CLS(w);
	*index = (uint32_t)((a - slab_addr(seg, s)) / slab_class_size[*cls]);
	return s;
}

/*
 * A heap made by the real daemon and checkpointed, then damaged in its
 * image in five ways (a root's name, a slab word, a bitmap word, a side
 * entry, an extent's run): verify refuses it; repair lists what it drops,
 * one line each, refuses to write over a file or its input, and writes an
 * image that verifies, restores, and starts a daemon serving every block
 * and root that was intact, with their bytes.
 */
/*
 * Damage to the root table in an image: a name twice, a length that is
 * not its name's, a name cut short of its NUL.  verify refuses it naming
 * I8; repair drops each, one line each, keeps the rest (a 255-byte name
 * among them) compact, and the daemon serves them after a restore.
 */
START_TEST(test_repair_roots)
{
	char img[400], bad[400], fixed[400], line[600], longname[256];
	struct shm_seg off;
	struct image_info info;
	struct shm_root *rt;
	char err[512];
	struct td t;
	int rc;

	td_init(&t, "repair-roots");
	ck_assert_int_eq(td_start(&t, NULL), 0);
	snprintf(img, sizeof(img), "%s/heap.img", t.state);
	snprintf(bad, sizeof(bad), "%s/bad.img", t.dir);
	snprintf(fixed, sizeof(fixed), "%s/fixed.img", t.dir);
	memset(longname, 'L', 255);
	longname[255] = '\0';
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	ck_assert_int_eq(aclheap_root_set("first", (void *)16), 0);
	ck_assert_int_eq(aclheap_root_set("twin", (void *)32), 0);
	ck_assert_int_eq(aclheap_root_set("lenbad", (void *)48), 0);
	ck_assert_int_eq(aclheap_root_set(longname, (void *)64), 0);
	ck_assert_int_eq(aclheap_root_set("unended", (void *)80), 0);
	ck_assert_int_eq(aclheap_root_set("last", (void *)96), 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	aclheap_detach();
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
	ck_assert_int_eq(ctl("verify", img, NULL), 0);

	ck_assert_msg(image_load_offline(img, &off, &info, err,
	    sizeof(err)) == 0, "%s", err);
	rt = off_root(&off, "last");
	memcpy(rt->name, "twin", 5);		/* the second "twin" */
	rt->len = 4;
	off_root(&off, "lenbad")->len = 3;
	rt = off_root(&off, "unended");
	memset(rt->name, 'u', sizeof(rt->name));
	rt->len = sizeof(rt->name);
	write_image(&off, &info, bad);
	image_unload_offline(&off);

	rc = ctl("verify", bad, NULL);
	ck_assert_msg(rc == 1, "verify: exit %d:\n%s", rc, out);
	ck_out_has("I8");
	rc = ctl("repair", "--out", fixed, bad, NULL);
	ck_assert_msg(rc == 0, "repair: exit %d:\n%s", rc, out);
	line_with("a second root of that name", line, sizeof(line));
	ck_assert_msg(strstr(line, "dropped root") == line &&
	    strstr(line, "\"twin\"") != NULL, "%s", line);
	line_with("\"lenbad\"", line, sizeof(line));
	ck_assert_msg(strstr(line, "says its name is 3 bytes") != NULL, "%s",
	    line);
	line_with("\"uuuu", line, sizeof(line));
	ck_assert_msg(strstr(line, "(I8)") != NULL, "%s", line);
	ck_assert_int_eq(ctl("verify", fixed, NULL), 0);

	rc = ctl("restore", "--state-dir", t.state, "--discard-live", fixed,
	    NULL);
	ck_assert_msg(rc == 0, "restore: exit %d:\n%s", rc, out);
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	ck_assert_int_eq(aclheap_root_list(NULL, 0), 3);
	ck_assert_ptr_eq(aclheap_root_get("first"), (void *)16);
	ck_assert_ptr_eq(aclheap_root_get("twin"), (void *)32);
	ck_assert_ptr_eq(aclheap_root_get(longname), (void *)64);
	ck_assert_ptr_null(aclheap_root_get("lenbad"));
	/* The prefix listing of aclheapctl. */
	ck_assert_int_eq(ctl("-s", t.sock, "roots", "--prefix", "tw", NULL), 0);
	ck_out_has("twin");
	ck_out_lacks("first");
	ck_assert_int_eq(ctl("-s", t.sock, "roots", "--prefix", "nothing", NULL), 0);
	ck_out_has("no roots starting with \"nothing\"");
	ck_assert_int_eq(ctl("-s", t.sock, "roots", "--json", "--prefix", "fi", NULL), 0);
	ck_out_has("first");
	ck_out_lacks("twin");
	aclheap_detach();
	td_cleanup(&t);
}
END_TEST

START_TEST(test_repair)
{
	char img[400], bad[400], fixed[400], line[600];
	struct shm_seg off;
	struct image_info info;
	struct shm_root *rt;
	char err[512], *small, *victim, *sidev, *big, *big2, *p;
	uint32_t cls, idx, vcls;
	uint64_t s;
	struct td t;
	int rc, i;

	td_init(&t, "repair");
	ck_assert_int_eq(td_start(&t, NULL), 0);
	snprintf(img, sizeof(img), "%s/heap.img", t.state);
	snprintf(bad, sizeof(bad), "%s/bad.img", t.dir);
	snprintf(fixed, sizeof(fixed), "%s/fixed.img", t.dir);
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	/* Each damaged thing is in a slab of its own class. */
	small = alloc_ok(100);
	memset(small, 's', 100);
	victim = alloc_ok(3000);
	memset(victim, 'v', 3000);
	sidev = alloc_ok(200);
	memset(sidev, 'd', 200);
	big = alloc_ok(5u << 20);
	for (i = 0; i < 5 << 20; i += 4096)
		big[i] = (char)(i >> 12);
	big2 = alloc_ok(6u << 20);
	memset(big2, 'b', 64);
	ck_assert_int_eq(aclheap_root_set("small", small), 0);
	ck_assert_int_eq(aclheap_root_set("big", big), 0);
	ck_assert_int_eq(aclheap_root_set("victim", victim), 0);
	ck_assert_int_eq(aclheap_root_set("sidev", sidev), 0);
	ck_assert_int_eq(aclheap_root_set("big2", big2), 0);
	ck_assert_int_eq(aclheap_root_set("badname", small + 16), 0);
	ck_assert_int_eq(aclheap_root_set("number", (void *)42), 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	aclheap_detach();
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
	ck_assert_int_eq(ctl("verify", img, NULL), 0);

	/* The damage, in the image's copy of the heap. */
	ck_assert_msg(image_load_offline(img, &off, &info, err,
	    sizeof(err)) == 0, "%s", err);
	rt = off_root(&off, "badname");
	rt->name[3] = 0x01;
	s = off_block(&off, victim, &vcls, &idx);
	atomic_store(&off.slabs[s].word, SHM_SLAB_WORD(SHM_SMALL, 127, 0));
	s = off_block(&off, small, &cls, &idx);
	ck_assert_uint_lt(slab_class_nblocks[cls], 63 * 64);
	atomic_fetch_or(&slab_bitmap(&off, s)[63], UINT64_C(1) << 63);
	s = off_block(&off, sidev, &cls, &idx);
	slab_side_store(slab_side_base(&off, s, cls), cls, idx,
	    slab_class_size[cls] + 100);
	s = slab_index(&off, (uintptr_t)off_at(&off, big2));
	ck_assert_uint_eq(SHM_SLAB_STATE(atomic_load(&off.slabs[s].word)),
	    SHM_LARGE_HEAD);
	off.slabs[s].run += 1000;
	write_image(&off, &info, bad);
	image_unload_offline(&off);

	rc = ctl("verify", bad, NULL);
	ck_assert_msg(rc == 1, "verify of the damaged image: exit %d:\n%s", rc,
	    out);
	ck_out_has("invariants");

	/* What would go, without writing anything. */
	rc = ctl("repair", "--dry-run", "--json", bad, NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_assert_uint_eq(json_u64(out, "roots_dropped"), 4);
	ck_assert_uint_eq(json_u64(out, "blocks_dropped"), 2);
	ck_assert_uint_eq(json_u64(out, "extents_dropped"), 1);
	ck_assert_uint_eq(json_u64(out, "roots"), 3);
	ck_assert_uint_eq(json_u64(out, "large_blocks"), 1);
	ck_assert_uint_ge(json_u64(out, "slabs_freed"), 1 + 96);
	ck_out_has("\"out\":null");
	ck_assert_int_eq(access(fixed, F_OK), -1);

	rc = ctl("repair", "--out", fixed, bad, NULL);
	ck_assert_msg(rc == 0, "repair: exit %d:\n%s", rc, out);
	line_with("\"bad\\x01ame\"", line, sizeof(line));
	ck_assert_msg(strstr(line, "dropped root") == line &&
	    strstr(line, "(I8)") != NULL, "%s", line);
	line_with("class 127", line, sizeof(line));
	ck_assert_msg(strstr(line, "freed slab") == line, "%s", line);
	line_with("(I3)", line, sizeof(line));
	ck_assert_msg(strstr(line, "dropped block") == line, "%s", line);
	ck_out_lacks("(I5)");	/* the dropped block's bit goes with it */
	line_with("(I4)", line, sizeof(line));
	ck_assert_msg(strstr(line, "dropped extent") == line, "%s", line);
	line_with("past its", line, sizeof(line));
	ck_assert_msg(strstr(line, "cleared slab") == line &&
	    strstr(line, "1 bit ") != NULL, "%s", line);
	line_with("\"victim\"", line, sizeof(line));
	ck_assert_msg(strstr(line, "no live block") != NULL, "%s", line);
	line_with("\"sidev\"", line, sizeof(line));
	line_with("\"big2\"", line, sizeof(line));
	ck_out_lacks("\"small\"");
	ck_out_lacks("\"number\"");
	ck_out_lacks("\"big\"");
	ck_out_has("wrote ");
	ck_assert_int_eq(ctl("verify", fixed, NULL), 0);

	/* A new file only, never the input. */
	rc = ctl("repair", "--out", fixed, bad, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("exists");
	ck_assert_int_eq(ctl("repair", "--force", "--out", fixed, bad, NULL),
	    0);
	rc = ctl("repair", "--force", "--out", bad, bad, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("is the input");
	ck_assert_int_eq(ctl("verify", fixed, NULL), 0);
	/* Nothing left to drop in what repair wrote. */
	rc = ctl("repair", "--dry-run", fixed, NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("nothing to drop");

	/* Restored, the heap serves what was intact, with its bytes. */
	rc = ctl("restore", "--state-dir", t.state, "--discard-live", fixed,
	    NULL);
	ck_assert_msg(rc == 0, "restore: exit %d:\n%s", rc, out);
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	ck_assert_ptr_eq(aclheap_root_get("small"), small);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(small[i], 's');
	ck_assert_ptr_eq(aclheap_root_get("big"), big);
	for (i = 0; i < 5 << 20; i += 4096)
		ck_assert_int_eq(big[i], (char)(i >> 12));
	ck_assert_ptr_eq(aclheap_root_get("number"), (void *)42);
	ck_assert_ptr_null(aclheap_root_get("victim"));
	ck_assert_ptr_null(aclheap_root_get("sidev"));
	ck_assert_ptr_null(aclheap_root_get("big2"));
	ck_free_refused(big2);
	ck_free_refused(sidev);
	p = alloc_ok(100);
	ck_assert_uint_eq(aclfree(p), 100);
	ck_assert_uint_eq(aclfree(small), 100);
	aclheap_detach();
	rc = ctl("-s", t.sock, "verify", NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	(void)vcls;
	td_cleanup(&t);
}
END_TEST

/*
 * Random words written over each region of a checkpointed heap's image
 * (superblock, roots, leases, slab table, bitmaps, side lines, in-band
 * side entries): whatever they break, repair salvages the rest, and what
 * it writes verifies.
 */
START_TEST(test_repair_scribble)
{
	static const char *const region[] = { "super", "roots", "leases",
	    "slabs", "bitmaps", "sides", "inband" };
	char img[400], bad[400], fixed[400], err[512];
	struct shm_seg off;
	struct image_info info;
	struct shm_geom g;
	uint64_t lo, len, x;
	unsigned seed = 14;
	size_t r;
	struct td t;
	char *p;
	int i, k, rc;

	td_init(&t, "repair");
	ck_assert_int_eq(td_start(&t, NULL), 0);
	snprintf(img, sizeof(img), "%s/heap.img", t.state);
	snprintf(bad, sizeof(bad), "%s/bad.img", t.dir);
	snprintf(fixed, sizeof(fixed), "%s/fixed.img", t.dir);
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	for (i = 0; i < 400; i++) {
		p = alloc_ok((size_t)(16 + (i * 37) % 3000));
		if (i % 40 == 0) {
			char name[16];

			snprintf(name, sizeof(name), "r%d", i);
			ck_assert_int_eq(aclheap_root_set(name, p), 0);
		}
	}
	(void)alloc_ok(100000);
	(void)alloc_ok(5u << 20);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	aclheap_detach();
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
	ck_assert_int_eq(seg_geometry(64u << 20, &g), 0);
	for (r = 0; r < sizeof(region) / sizeof(region[0]); r++)
		for (k = 0; k < 4; k++) {
			ck_assert_msg(image_load_offline(img, &off, &info, err,
			    sizeof(err)) == 0, "%s", err);
			switch (r) {
			case 0: lo = 0; len = sizeof(struct shm_super); break;
			case 1: lo = g.roots_off; len = 16 * 72; break;
			case 2: lo = g.leases_off; len = 64 * 64; break;
			case 3: lo = g.slabs_off; len = 16 * 16; break;
			case 4: lo = g.bitmaps_off; len = 8 * SHM_BITMAP_BYTES;
				break;
			case 5: lo = g.sides_off; len = 8 * SHM_SIDE_BYTES;
				break;
			default: lo = g.data_off + SHM_SLAB_SIZE - 4096;
				len = 4096; break;
			}
			/* One byte, then a few words, then many. */
			for (i = 0; i < (k == 0 ? 1 : k * k * 4); i++) {
				x = ((uint64_t)rand_r(&seed) << 33) ^
				    ((uint64_t)rand_r(&seed) << 11) ^
				    (uint64_t)rand_r(&seed);
				if (k == 0)
					((uint8_t *)off.sb)[lo + x % len] ^=
					    (uint8_t)(1 + x % 255);
				else
					memcpy((char *)off.sb + lo +
					    (x % (len / 8)) * 8, &x, 8);
			}
			write_image(&off, &info, bad);
			image_unload_offline(&off);
			rc = ctl("repair", "--force", "--out", fixed, bad,
			    NULL);
			ck_assert_msg(rc == 0, "%s %d: repair exit %d:\n%s",
			    region[r], k, rc, out);
			rc = ctl("verify", fixed, NULL);
			ck_assert_msg(rc == 0, "%s %d: verify exit %d:\n%s",
			    region[r], k, rc, out);
		}
	td_cleanup(&t);
}
END_TEST

/*
 * What repair cannot salvage, said clearly: not an image at all, a base
 * whose checksums fail (the file and the section named).  A damaged
 * delta is left out, and the result is its base's generation.  A live
 * segment the daemon refuses at its start: the log says how to repair it,
 * and repair of the state folder salvages it.
 */
START_TEST(test_repair_refused)
{
	char img[400], copy[400], delta[400], dcopy[400], junk[400];
	char fixed[400], shm[200], damaged[400];
	struct shm_seg off;
	struct image_info info;
	struct shm_geom g;
	char err[512], *p, *log;
	uint64_t gen;
	struct td t;
	int fd, rc;
	uint8_t c;

	td_init(&t, "repair");
	ck_assert_int_eq(td_start(&t, NULL), 0);
	snprintf(img, sizeof(img), "%s/heap.img", t.state);
	snprintf(delta, sizeof(delta), "%s/heap.img.delta.1", t.state);
	snprintf(copy, sizeof(copy), "%s/copy.img", t.dir);
	snprintf(dcopy, sizeof(dcopy), "%s/copy.img.delta.1", t.dir);
	snprintf(junk, sizeof(junk), "%s/junk", t.dir);
	snprintf(fixed, sizeof(fixed), "%s/fixed.img", t.dir);
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	p = alloc_ok(64);
	strcpy(p, "kept");
	ck_assert_int_eq(aclheap_root_set("kept", p), 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(aclheap_root_set("later", p), 0);
	ck_assert_int_eq(aclheap_checkpoint(), 0);
	ck_assert_int_eq(access(delta, F_OK), 0);
	/* The chain as it is now (the checkpoint at the stop may compact
	 * it). */
	copy_file(img, copy);
	copy_file(delta, dcopy);
	aclheap_detach();
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);

	/* Not an image. */
	file_spit(junk, "hello, world\n", 13);
	rc = ctl("repair", "--out", fixed, junk, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("neither an aclheap image");
	ck_assert_int_eq(access(fixed, F_OK), -1);

	/* A damaged delta: left out, the base's generation is the result. */
	ck_assert_int_eq(ctl("verify", copy, NULL), 0);
	ck_assert_int_ge(fd = open(copy, O_RDONLY), 0);
	ck_assert_int_eq(pread(fd, &gen, 8, offsetof(struct image_header,
	    generation)), 8);
	close(fd);
	ck_assert_int_ge(fd = open(dcopy, O_RDWR), 0);
	ck_assert_int_eq(pread(fd, &c, 1, 300), 1);
	c ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &c, 1, 300), 1);
	close(fd);
	ck_assert_int_eq(ctl("verify", copy, NULL), 1);
	rc = ctl("repair", "--json", "--out", fixed, copy, NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("\"delta_dropped\":true");
	ck_out_has("delta 1 and any after it");
	ck_out_has("copy.img.delta.1");
	ck_assert_uint_eq(json_u64(out, "generation"), gen);
	ck_assert_int_eq(ctl("verify", fixed, NULL), 0);
	ck_out_has("generation");
	unlink(fixed);

	/* The base's checksum broken: nothing can be trusted, nothing is
	 * written, and the message names the file and the section. */
	ck_assert_int_ge(fd = open(copy, O_RDWR), 0);
	ck_assert_int_eq(pread(fd, &c, 1, 5000), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, 5000), 1);
	close(fd);
	rc = ctl("repair", "--out", fixed, copy, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("cannot be salvaged");
	ck_out_has("copy.img: section 0");
	ck_out_has("checksum mismatch");
	ck_assert_int_eq(access(fixed, F_OK), -1);
	rc = ctl("repair", "--json", "--out", fixed, copy, NULL);
	ck_assert_int_eq(rc, 1);
	ck_out_has("\"ok\":false");

	/* A root's name scribbled in the stopped heap's metadata (its meta
	 * object, which only the daemon's user can write): the daemon
	 * refuses it, saves it as heap.seg.damaged, starts from the
	 * last image, and says how to repair the saved copy. */
	snprintf(shm, sizeof(shm), "/dev/shm%s.meta", t.shm);
	ck_assert_int_eq(seg_geometry(64u << 20, &g), 0);
	ck_assert_int_ge(fd = open(shm, O_RDWR), 0);
	c = 0x07;
	ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)g.roots_off + 1), 1);
	close(fd);
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	log = td_log(&t);
	ck_assert_msg(strstr(log, "aclheapctl repair --out FILE") != NULL,
	    "%s", log);
	ck_assert_msg(strstr(log, "heap.seg.damaged") != NULL, "%s", log);
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	ck_assert_ptr_eq(aclheap_root_get("kept"), p);
	aclheap_detach();
	ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
	snprintf(damaged, sizeof(damaged), "%s/heap.seg.damaged", t.state);
	/* Repair refuses to write over what it reads, the copy included. */
	rc = ctl("repair", "--force", "--out", damaged, damaged, NULL);
	ck_assert_msg(rc == 1, "exit %d:\n%s", rc, out);
	ck_out_has("is the input");
	rc = ctl("repair", "--out", fixed, damaged, NULL);
	ck_assert_msg(rc == 0, "exit %d:\n%s", rc, out);
	ck_out_has("live segment");
	ck_out_has("(I8)");
	ck_assert_int_eq(ctl("verify", fixed, NULL), 0);
	rc = ctl("restore", "--state-dir", t.state, "--discard-live", fixed,
	    NULL);
	ck_assert_msg(rc == 0, "restore: exit %d:\n%s", rc, out);
	ck_assert_msg(td_start(&t, NULL) == 0, "%s", td_log(&t));
	ck_assert_int_eq(aclheap_attach(t.sock), 0);
	ck_assert_ptr_eq(aclheap_root_get("later"), p);
	ck_assert_str_eq(p, "kept");
	aclheap_detach();
	(void)off;
	(void)info;
	(void)err;
	td_cleanup(&t);
}
END_TEST

/* ------------------------------------------------------------------ */

static void
add(Suite *s, const char *name, const TTest *t, void (*setup)(void))
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, setup, teardown_daemon);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t);
	suite_add_tcase(s, tc);
}

Suite *
ctl_suite(void)
{
	Suite *s = suite_create("ctl");

	add(s, "status", test_status_json, setup_daemon);
	add(s, "status_human", test_status_human, setup_daemon);
	add(s, "roots", test_roots, setup_daemon);
	add(s, "blocks", test_blocks, setup_daemon);
	add(s, "blocks_pages", test_blocks_pages, setup_daemon);
	add(s, "hexdump", test_hexdump, setup_daemon);
	add(s, "hexdump_outside", test_hexdump_outside, setup_daemon);
	add(s, "checkpoint", test_checkpoint, setup_daemon);
	add(s, "dump", test_dump_verify_inspect, setup_daemon);
	add(s, "dump_alone", test_dump_alone, setup_daemon);
	add(s, "verify_damaged", test_verify_damaged, setup_daemon);
	add(s, "clients", test_clients, setup_daemon);
	add(s, "unreachable", test_unreachable, setup_daemon);
	add(s, "usage", test_usage, setup_daemon);
	add(s, "privileged", test_privileged, setup_daemon_nobody);
	add(s, "dump_restore", test_dump_stdout_restore, setup_daemon);
	add(s, "metrics", test_metrics, setup_daemon);
	add(s, "repair", test_repair, setup_daemon);
	add(s, "repair_refused", test_repair_refused, setup_daemon);
	add(s, "repair_scribble", test_repair_scribble, setup_daemon);
	add(s, "repair_roots", test_repair_roots, setup_daemon);
	return s;
}
