/* SPDX-License-Identifier: MIT */
/*
 * check_fuzz.c: the fuzz harnesses without libFuzzer.  Every seed of
 * tests/fuzz/corpus/NAME/ and every input that once crashed, kept in
 * tests/fuzz/regress/NAME/, goes through the harness NAME as in a fuzzing
 * run; a crash or a broken invariant fails the test that names the file
 * (Check runs each test in a child, so a fault is a failure, not the end
 * of the run).
 */
#include "config.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "tests/testutil.h"

typedef int (*harness_fn)(const uint8_t *, size_t);

static const char *
srcdir(void)
{
	const char *s = getenv("ACLHEAP_SRCDIR");

	return s != NULL ? s : ".";
}

/* Runs every regular file of DIR/NAME/ through fn; the count. */
static int
replay_dir(const char *dir, const char *name, harness_fn fn)
{
	char path[1024], file[1300];
	struct dirent **ents;
	uint8_t *b;
	size_t len;
	int i, n, ran = 0;

	snprintf(path, sizeof(path), "%s/tests/fuzz/%s/%s", srcdir(), dir,
	    name);
	n = scandir(path, &ents, NULL, alphasort);
	if (n < 0) {
		ck_assert_msg(errno == ENOENT, "%s: %s", path, strerror(errno));
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.') {
			snprintf(file, sizeof(file), "%s/%s", path,
			    ents[i]->d_name);
			b = file_slurp(file, &len);
			/* Named on stderr first: a crash leaves the name. */
			fprintf(stderr, "# %s\n", file);
			ck_assert_int_eq(fn(b, len), 0);
			free(b);
			ran++;
		}
		free(ents[i]);
	}
	free(ents);
	return ran;
}

static int
seeds(const char *name, harness_fn fn, int min)
{
	int n = replay_dir("corpus", name, fn);

	ck_assert_msg(n >= min, "tests/fuzz/corpus/%s has %d seeds, expected "
	    "at least %d", name, n, min);
	return n;
}

/* The seeds must reach past the first checks, or fuzzing from them
 * would mostly test refusals: each frame seed decodes, the dispatch
 * seeds get answers, the image seeds load and verify.  Then the inputs
 * that once crashed. */
START_TEST(fuzz_frame_inputs)
{
	static const uint8_t empty[1];
	int n;

	ck_assert_int_eq(fuzz_frame_one(empty, 0), 0);
	n = seeds("frame", fuzz_frame_one, 10);
	ck_assert_uint_ge(fuzz_frame_decoded, (uint64_t)n);
	replay_dir("regress", "frame", fuzz_frame_one);
}
END_TEST

START_TEST(fuzz_dispatch_inputs)
{
	static const uint8_t empty[1];
	int n;

	ck_assert_int_eq(fuzz_dispatch_one(empty, 0), 0);
	n = seeds("dispatch", fuzz_dispatch_one, 10);
	/* Hello and one more request at least, nearly all served. */
	ck_assert_uint_ge(fuzz_dispatch_replies, 2 * (uint64_t)n);
	ck_assert_uint_ge(fuzz_dispatch_served, fuzz_dispatch_replies * 3 / 4);
	replay_dir("regress", "dispatch", fuzz_dispatch_one);
}
END_TEST

START_TEST(fuzz_image_inputs)
{
	static const uint8_t empty[1];
	int n;

	ck_assert_int_eq(fuzz_image_one(empty, 0), 0);
	n = seeds("image", fuzz_image_one, 4);
	ck_assert_uint_eq(fuzz_image_loaded, (uint64_t)n);
	ck_assert_uint_eq(fuzz_image_checked, (uint64_t)n);
	replay_dir("regress", "image", fuzz_image_one);
}
END_TEST

/* The live seeds write into each client-writable region and make each
 * kind of request; most requests are answered, scribbled heap or not. */
START_TEST(fuzz_live_inputs)
{
	static const uint8_t empty[1];
	int n;

	ck_assert_int_eq(fuzz_live_one(empty, 0), 0);
	n = seeds("live", fuzz_live_one, 6);
	ck_assert_uint_ge(fuzz_live_requests, 4 * (uint64_t)n);
	ck_assert_uint_ge(fuzz_live_writes, (uint64_t)n);
	ck_assert_uint_ge(fuzz_live_answered, fuzz_live_requests / 2);
	replay_dir("regress", "live", fuzz_live_one);
}
END_TEST

Suite *
fuzz_suite(void)
{
	Suite *s = suite_create("fuzz");
	TCase *tc = tcase_create("fuzz");

	tcase_add_test(tc, fuzz_frame_inputs);
	tcase_add_test(tc, fuzz_dispatch_inputs);
	tcase_add_test(tc, fuzz_image_inputs);
	tcase_add_test(tc, fuzz_live_inputs);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
