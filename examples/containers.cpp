// SPDX-License-Identifier: MIT
/*
 * containers.cpp: standard C++ containers in the persistent heap, through
 * <aclheap.hpp>.  An inventory (a map from item names to counts, and a
 * log of what happened) lives in the heap under the root
 * "example.inventory"; every run, in any process, after a reboot too,
 * finds it and changes it.
 *
 *     containers add NAME N      adds N of NAME (N may be negative)
 *     containers show            prints the inventory and the log
 *
 *     c++ -std=c++17 containers.cpp $(pkg-config --cflags --libs aclheap)
 */
#include <aclheap.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace {

/* Constructed in the heap by aclheap::root, never on a stack: the
 * containers' own fields must be at heap addresses as well. */
struct inventory {
	aclheap::map<aclheap::string, long> counts;
	aclheap::vector<aclheap::string> log;
};

int
usage()
{
	std::fprintf(stderr, "usage: containers add NAME N | show\n");
	return 2;
}

} /* namespace */

int
main(int argc, char **argv)
{
	try {
		aclheap::root<inventory> root("example.inventory");

		if (aclheap_attach(nullptr) != 0) {
			std::fprintf(stderr, "containers: cannot attach: %s\n",
			    aclheap_last_error());
			return 1;
		}
		inventory *inv = root.get_or_create();

		if (argc == 4 && std::strcmp(argv[1], "add") == 0) {
			char *end;
			long n = std::strtol(argv[3], &end, 10);

			if (*end != '\0' || end == argv[3])
				return usage();
			inv->counts[aclheap::string(argv[2])] += n;
			inv->log.emplace_back(aclheap::string("add ") + argv[2] +
			    " " + argv[3]);
			return 0;
		}
		if (argc == 2 && std::strcmp(argv[1], "show") == 0) {
			for (const auto &kv : inv->counts)
				std::printf("%s %ld\n", kv.first.c_str(),
				    kv.second);
			std::printf("%zu item%s, %zu change%s\n",
			    inv->counts.size(), inv->counts.size() == 1 ? "" :
			    "s", inv->log.size(), inv->log.size() == 1 ? "" :
			    "s");
			return 0;
		}
		return usage();
	} catch (const std::exception &e) {
		/* aclheap::bad_alloc and std::system_error say why. */
		std::fprintf(stderr, "containers: %s\n", e.what());
		return 1;
	}
}
