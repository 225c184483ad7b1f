// SPDX-License-Identifier: MIT
/*
 * aclheap.hpp: C++ on the persistent heap, header-only, over <aclheap.h>.
 *
 * aclheap::allocator<T> is a standard allocator (raw pointers, always
 * equal) whose memory is the heap, so the standard containers built with
 * it keep their elements there:
 *
 *     aclheap::vector<int>, aclheap::string, aclheap::map<K, V>,
 *     aclheap::unordered_map<K, V>, ... (the aliases below)
 *
 * Every process maps the heap at the same address and images keep it
 * there, so the containers' own pointers mean the same thing in every
 * process and after a reboot.  What makes that true for the container
 * object itself is where it lives: it must be constructed in heap memory
 * too, not on a stack or in a process's own globals.  aclheap::make<T>()
 * does that (placement new into an aclmalloc'd block), and
 * aclheap::root<T> finds it again by name, or creates it once, safely,
 * among racing processes:
 *
 *     struct world { aclheap::vector<int> v; aclheap::string s; };
 *     aclheap::root<world> r("example.world");
 *     world *w = r.get_or_create();      // found, or made and published
 *     w->v.push_back(42);
 *
 * What does not carry over: anything holding a pointer outside the heap
 * (a std::string with the standard allocator, a std::function, a virtual
 * table of a class whose code moves between builds).  Allocators here are
 * stateless, so containers also work with std::hash and std::less.
 *
 * Failure: an allocation that fails throws aclheap::bad_alloc (a
 * std::bad_alloc whose what() is aclheap_last_error()); a root operation
 * that fails throws std::system_error with the errno value and the same
 * words.  C++17.  Link with -laclheap, as for C (pkg-config aclheap).
 */
#ifndef ACLHEAP_HPP
#define ACLHEAP_HPP

#include <aclheap.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace aclheap {

/* std::bad_alloc with the library's reason. */
class bad_alloc : public std::bad_alloc {
public:
	bad_alloc() noexcept
	{
		std::snprintf(msg_, sizeof(msg_), "aclheap: %s",
		    aclheap_last_error()[0] != '\0' ? aclheap_last_error() :
		    "out of heap memory");
	}
	const char *what() const noexcept override { return msg_; }

private:
	char msg_[512];
};

/* n bytes aligned for an object of alignment align; throws. */
inline void *
allocate_bytes(std::size_t n, std::size_t align)
{
	void *p = align > 16 ? aclmemalign(align, n) : aclmalloc(n);

	if (p == nullptr)
		throw bad_alloc();
	return p;
}

template <class T>
class allocator {
public:
	using value_type = T;
	using size_type = std::size_t;
	using difference_type = std::ptrdiff_t;
	using propagate_on_container_copy_assignment = std::true_type;
	using propagate_on_container_move_assignment = std::true_type;
	using propagate_on_container_swap = std::true_type;
	using is_always_equal = std::true_type;

	allocator() noexcept = default;
	template <class U>
	allocator(const allocator<U> &) noexcept {}

	T *
	allocate(std::size_t n)
	{
		if (n > std::numeric_limits<std::size_t>::max() / sizeof(T))
			throw std::bad_array_new_length();
		return static_cast<T *>(allocate_bytes(n * sizeof(T),
		    alignof(T)));
	}

	void
	deallocate(T *p, std::size_t) noexcept
	{
		aclfree(p);
	}
};

/* Every aclheap::allocator frees what any other allocated. */
template <class T, class U>
constexpr bool
operator==(const allocator<T> &, const allocator<U> &) noexcept
{
	return true;
}

template <class T, class U>
constexpr bool
operator!=(const allocator<T> &, const allocator<U> &) noexcept
{
	return false;
}

/* The standard containers, in the heap. */
template <class C, class Traits = std::char_traits<C>>
using basic_string = std::basic_string<C, Traits, allocator<C>>;
using string = basic_string<char>;
template <class T>
using vector = std::vector<T, allocator<T>>;
template <class K, class V, class Less = std::less<K>>
using map = std::map<K, V, Less, allocator<std::pair<const K, V>>>;
template <class K, class V, class Hash = std::hash<K>,
    class Eq = std::equal_to<K>>
using unordered_map = std::unordered_map<K, V, Hash, Eq,
    allocator<std::pair<const K, V>>>;

/* std::hash for aclheap::string, as for std::string. */
struct string_hash {
	std::size_t
	operator()(const string &s) const noexcept
	{
		return std::hash<std::string_view>()(
		    std::string_view(s.data(), s.size()));
	}
};

/* A T constructed in heap memory; throws (and frees) on failure. */
template <class T, class... Args>
T *
make(Args &&...args)
{
	void *p = allocate_bytes(sizeof(T), alignof(T));

	try {
		return ::new (p) T(std::forward<Args>(args)...);
	} catch (...) {
		aclfree(p);
		throw;
	}
}

/* Destroys and frees what make<T>() returned (nullptr: nothing). */
template <class T>
void
destroy(T *p) noexcept
{
	if (p != nullptr) {
		p->~T();
		aclfree(p);
	}
}

/*
 * A named root holding a T * (aclheap_root_*), typed.  The name is kept
 * here, in the process (it is not heap data).
 */
template <class T>
class root {
public:
	explicit root(std::string name) : name_(std::move(name)) {}

	const std::string &name() const noexcept { return name_; }

	/* The object, or nullptr when the root does not exist. */
	T *
	get() const
	{
		void *p;

		errno = 0;
		p = aclheap_root_get(name_.c_str());
		if (p == nullptr && errno != ENOENT && errno != 0)
			fail(-errno);
		return static_cast<T *>(p);
	}

	void
	set(T *p)
	{
		int rc = aclheap_root_set(name_.c_str(), p);

		if (rc != 0)
			fail(rc);
	}

	/* Sets p only if the root holds expected (nullptr: does not exist);
	 * false when it held something else. */
	bool
	cas(T *expected, T *desired)
	{
		int rc = aclheap_root_cas(name_.c_str(), expected, desired);

		if (rc == -EAGAIN)
			return false;
		if (rc != 0)
			fail(rc);
		return true;
	}

	/* false when there was no such root. */
	bool
	remove()
	{
		int rc = aclheap_root_remove(name_.c_str());

		if (rc == -ENOENT)
			return false;
		if (rc != 0)
			fail(rc);
		return true;
	}

	/*
	 * The object the root names; if there is none, constructs one in
	 * the heap from args and publishes it with a compare-and-swap.  Of
	 * processes racing here, one publishes and every other destroys its
	 * own and returns the winner's.
	 */
	template <class... Args>
	T *
	get_or_create(Args &&...args)
	{
		T *p, *mine;
		bool won;

		/* Again if the winner's object went before we read it. */
		while ((p = get()) == nullptr) {
			mine = make<T>(args...);
			try {
				won = cas(nullptr, mine);
			} catch (...) {
				destroy(mine);
				throw;
			}
			if (won)
				return mine;
			destroy(mine);
		}
		return p;
	}

private:
	[[noreturn]] void
	fail(int rc) const
	{
		throw std::system_error(-rc, std::generic_category(),
		    "aclheap root '" + name_ + "': " + aclheap_last_error());
	}

	std::string name_;
};

} /* namespace aclheap */

#endif /* ACLHEAP_HPP */
