// SPDX-License-Identifier: MIT
/*
 * check_cxx.cpp: <aclheap.hpp> against the real daemon and the installed
 * library.  One process builds standard containers with
 * aclheap::allocator (a vector, strings, a map, an unordered_map, in an
 * object placed in the heap and published by aclheap::root); another
 * process reads them at the same addresses; then, after a "reboot" (the
 * daemon stopped, its /dev/shm segment removed, a new daemon from the
 * image), a third reads them again and goes on changing them.
 *
 * The processes are fork() children that attach on their own: the test's
 * process never maps the heap, so every read is another process's.
 */
#include "config.h"

#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <unistd.h>

#include <aclheap.hpp>

extern "C" {
#include "tests/testutil.h"
}

namespace {

struct world {
	aclheap::vector<int> numbers;
	aclheap::string title;
	aclheap::vector<aclheap::string> words;
	aclheap::map<aclheap::string, long> counts;
	aclheap::unordered_map<int, aclheap::string, std::hash<int>> names;
	aclheap::unordered_map<aclheap::string, int, aclheap::string_hash>
	    index;
};

struct td d;

/* A child's verdict: 0 when every check held, else the line that failed. */
#define CHECK(c) do {							\
	if (!(c)) {							\
		std::fprintf(stderr, "%s:%d: %s (%s)\n", __FILE__,	\
		    __LINE__, #c, aclheap_last_error());		\
		std::_Exit(__LINE__ % 250 + 1);				\
	}								\
} while (0)

/* Long enough that no string keeps it inside its own object (SSO). */
const char *const long_text = "a title long enough to live in the heap, "
    "not inside the string object";

aclheap::string
word(int i)
{
	char buf[64];

	std::snprintf(buf, sizeof(buf), "word-%d-of-a-longer-kind", i);
	return aclheap::string(buf);
}

void
build(void)
{
	aclheap::root<world> r("cxx.world");
	world *w;

	CHECK(aclheap_attach(d.sock) == 0);
	CHECK(r.get() == nullptr);
	w = r.get_or_create();
	CHECK(w != nullptr && aclheap_contains(w));
	for (int i = 0; i < 10000; i++)
		w->numbers.push_back(i * 3);
	w->title = long_text;
	for (int i = 0; i < 200; i++) {
		w->words.push_back(word(i));
		w->counts[word(i)] = i;
		w->names[i] = word(i);
		w->index.emplace(word(i), i);
	}
	CHECK(aclheap_contains(w->numbers.data()));
	CHECK(aclheap_contains(w->title.data()));
	CHECK(aclheap_contains(&*w->counts.begin()));
	CHECK(aclheap_contains(&*w->names.begin()));
	/* The same object comes back, not a second one. */
	CHECK(r.get_or_create() == w);
	std::printf("%p %p\n", static_cast<void *>(w),
	    static_cast<void *>(w->numbers.data()));
}

/* Reads what build() made; grow > 0 then adds and checks again. */
void
check(int grow)
{
	aclheap::root<world> r("cxx.world");
	world *w;

	CHECK(aclheap_attach(d.sock) == 0);
	CHECK((w = r.get()) != nullptr);
	CHECK(w->numbers.size() >= 10000);
	for (int i = 0; i < 10000; i++)
		CHECK(w->numbers[(size_t)i] == i * 3);
	CHECK(w->title == long_text);
	CHECK(w->words.size() == 200 && w->counts.size() == 200);
	for (int i = 0; i < 200; i++) {
		CHECK(w->words[(size_t)i] == word(i));
		CHECK(w->counts.at(word(i)) == i);
		CHECK(w->names.at(i) == word(i));
		CHECK(w->index.at(word(i)) == i);
	}
	CHECK(w->counts.find(word(200)) == w->counts.end());
	if (grow > 0) {
		/* Containers loaded from an image grow and shrink as ever. */
		for (int i = 200; i < 200 + grow; i++) {
			w->counts[word(i)] = i;
			w->names[i] = word(i);
			w->index.emplace(word(i), i);
		}
		w->numbers.resize(20000, 7);
		w->title += " and a tail";
		CHECK(w->counts.size() == (size_t)(200 + grow));
		CHECK(w->names.at(199 + grow) == word(199 + grow));
		CHECK(w->numbers[19999] == 7);
		CHECK(w->counts.erase(word(0)) == 1);
	}
}

/* Runs fn in a fresh child process; its exit status (0: all held). */
int
in_child(void (*fn)(int), int arg, char *out, size_t outlen)
{
	int p[2], st;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		dup2(p[1], 1);
		close(p[1]);
		try {
			fn(arg);
		} catch (const std::exception &e) {
			std::fprintf(stderr, "exception: %s\n", e.what());
			std::_Exit(99);
		}
		std::fflush(stdout);
		std::_Exit(0);
	}
	close(p[1]);
	while (got < outlen - 1 && (n = read(p[0], out + got,
	    outlen - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void
build_fn(int)
{
	build();
}

void
check_fn(int grow)
{
	check(grow);
}

void
check_grown_fn(int grow)
{
	aclheap::root<world> r("cxx.world");
	world *w;

	CHECK(aclheap_attach(d.sock) == 0);
	CHECK((w = r.get()) != nullptr);
	CHECK(w->counts.size() == (size_t)(200 + grow - 1));
	CHECK(w->counts.find(word(0)) == w->counts.end());
	CHECK(w->names.at(199 + grow) == word(199 + grow));
	CHECK(w->numbers.size() == 20000 && w->numbers[19999] == 7);
	CHECK(w->title == aclheap::string(long_text) + " and a tail");
}

} /* namespace */

START_TEST(containers_across_processes_and_reboot)
{
	char a[256], b[256];

	td_init(&d, "cxx");
	ck_assert_msg(td_start(&d, NULL) == 0, "daemon: %s", td_log(&d));
	ck_assert_int_eq(in_child(build_fn, 0, a, sizeof(a)), 0);
	ck_assert_int_eq(in_child(check_fn, 0, b, sizeof(b)), 0);

	/* Reboot: stop (final checkpoint), the segment gone, a new daemon
	 * from the image. */
	ck_assert_int_eq(td_stop(&d, SIGTERM), 0);
	ck_assert_int_eq(td_shm_unlink(&d), 0);
	ck_assert_msg(td_start(&d, NULL) == 0, "daemon: %s", td_log(&d));
	ck_assert_msg(strstr(td_log(&d), "loaded") != NULL, "%s",
	    td_log(&d));
	ck_assert_int_eq(in_child(check_fn, 50, b, sizeof(b)), 0);
	ck_assert_int_eq(in_child(check_grown_fn, 50, b, sizeof(b)), 0);
	td_cleanup(&d);
}
END_TEST

/* The allocator's failure is an exception with the library's reason, and
 * the allocator is what the standard asks of one. */
START_TEST(allocator_contract)
{
	aclheap::allocator<int> ai;
	aclheap::allocator<double> ad(ai);
	bool threw = false;

	static_assert(aclheap::allocator<int>::is_always_equal::value, "");
	ck_assert(ai == ad);
	ck_assert(!(ai != ad));
	td_init(&d, "cxxalloc");
	ck_assert_msg(td_start(&d, NULL) == 0, "daemon: %s", td_log(&d));
	ck_assert_int_eq(aclheap_attach(d.sock), 0);
	try {
		(void)ai.allocate((size_t)1 << 40);	/* more than the heap */
	} catch (const std::bad_alloc &e) {
		threw = std::strstr(e.what(), "more than the heap") != nullptr;
	}
	ck_assert(threw);
	threw = false;
	try {
		(void)ai.allocate(std::numeric_limits<size_t>::max() / 2);
	} catch (const std::bad_array_new_length &) {
		threw = true;
	}
	ck_assert(threw);
	{
		int *p = ai.allocate(100);

		ck_assert(aclheap_contains(p));
		ai.deallocate(p, 100);
	}
	threw = false;
	try {
		aclheap::root<int> bad("");
		(void)bad.get();
	} catch (const std::system_error &e) {
		threw = e.code().value() == EINVAL;
	}
	ck_assert(threw);
	aclheap_detach();
	td_cleanup(&d);
}
END_TEST

static Suite *
cxx_suite(void)
{
	Suite *s = suite_create("cxx");
	TCase *tc = tcase_create("cxx");

	tcase_add_test(tc, containers_across_processes_and_reboot);
	tcase_add_test(tc, allocator_contract);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	static Suite *(*const suites[])(void) = { cxx_suite };

	return check_run(suites, 1);
}
