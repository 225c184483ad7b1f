/* SPDX-License-Identifier: MIT */
/*
 * check_examples.c: the programs in examples/ against a real daemon: the
 * README's list, the hash table (across a "reboot": daemon stopped, its
 * segment removed, a new one from the image) and the C++ containers.
 * What they print is checked, not only their exit status.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

static struct td td;
static char out[65536];

static void
up(void)
{
	td_init(&td, "examples");
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
}

static void
down(void)
{
	td_cleanup(&td);
}

/* Runs examples/NAME with up to three arguments; its exit status. */
static int
ex(const char *name, const char *a, const char *b, const char *c)
{
	char prog[64];
	const char *argv[] = { NULL, a, b, c, NULL };

	snprintf(prog, sizeof(prog), "examples/%s", name);
	argv[0] = td_prog(prog);
	return run_cmd(out, sizeof(out), argv);
}

#define ck_out_has(s) \
	ck_assert_msg(strstr(out, (s)) != NULL, "no '%s' in:\n%s", (s), out)

START_TEST(hello_list)
{
	int rc;

	rc = ex("hello", NULL, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_out_has("list: 1 node, the newest holds 42 at 0x");
	rc = ex("hello", NULL, NULL, NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_out_has("list: 2 nodes, the newest holds 43");
	/* No daemon: a clear error and exit 1, not a crash. */
	setenv("ACLHEAP_SOCKET", "/nonexistent/aclheap.sock", 1);
	rc = ex("hello", NULL, NULL, NULL);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ck_out_has("cannot attach");
	ck_out_has("/nonexistent/aclheap.sock");
}
END_TEST

START_TEST(hashtable_survives_reboot)
{
	char k[32], v[32];
	int i;

	ck_assert_int_eq(ex("hashtable", "put", "a", "1"), 0);
	ck_assert_int_eq(ex("hashtable", "put", "b", "2"), 0);
	ck_assert_int_eq(ex("hashtable", "get", "a", NULL), 0);
	ck_assert_str_eq(out, "1\n");
	ck_assert_int_eq(ex("hashtable", "put", "a", "3"), 0);
	ck_assert_int_eq(ex("hashtable", "get", "a", NULL), 0);
	ck_assert_str_eq(out, "3\n");
	ck_assert_int_eq(ex("hashtable", "del", "b", NULL), 0);
	ck_assert_int_eq(ex("hashtable", "get", "b", NULL), 1);
	ck_out_has("no key 'b'");
	ck_assert_int_eq(ex("hashtable", "del", "b", NULL), 1);
	for (i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "v%d", i * i);
		ck_assert_int_eq(ex("hashtable", "put", k, v), 0);
	}
	ck_assert_int_eq(ex("hashtable", "list", NULL, NULL), 0);
	ck_out_has("101 entries in 64 buckets");	/* grew twice */
	ck_out_has("k57=v3249\n");
	ck_assert_int_eq(ex("hashtable", "frob", NULL, NULL), 2);

	ck_assert_int_eq(td_stop(&td, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&td), 0);
	ck_assert_msg(td_start(&td, NULL) == 0, "daemon: %s", td_log(&td));
	ck_assert_int_eq(ex("hashtable", "get", "k57", NULL), 0);
	ck_assert_str_eq(out, "v3249\n");
	ck_assert_int_eq(ex("hashtable", "get", "a", NULL), 0);
	ck_assert_str_eq(out, "3\n");
	ck_assert_int_eq(ex("hashtable", "list", NULL, NULL), 0);
	ck_out_has("101 entries in 64 buckets");
}
END_TEST

START_TEST(cxx_containers)
{
	ck_assert_int_eq(ex("containers", "add", "apple", "3"), 0);
	ck_assert_int_eq(ex("containers", "add", "apple", "2"), 0);
	ck_assert_int_eq(ex("containers", "add", "pear", "1"), 0);
	ck_assert_int_eq(ex("containers", "add", "pear", "x"), 2);
	ck_assert_int_eq(ex("containers", "show", NULL, NULL), 0);
	ck_assert_str_eq(out, "apple 5\npear 1\n2 items, 3 changes\n");
}
END_TEST

static Suite *
examples_suite(void)
{
	Suite *s = suite_create("examples");
	TCase *tc = tcase_create("examples");

	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, hello_list);
	tcase_add_test(tc, hashtable_survives_reboot);
	tcase_add_test(tc, cxx_containers);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	static Suite *(*const suites[])(void) = { examples_suite };

	return check_run(suites, 1);
}
