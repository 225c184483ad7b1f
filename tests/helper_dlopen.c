/* SPDX-License-Identifier: MIT */
/*
 * helper_dlopen.c: loads libaclheap.so with dlopen(), as a language
 * runtime's foreign-function interface does, and allocates and frees from
 * two threads through it.  It does not link the library.
 *
 *   helper_dlopen LIBRARY SOCKET
 *
 * Prints "ok" and exits 0, or says what failed and exits 1.
 */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void *(*acl_malloc)(size_t);
static size_t (*acl_free)(void *);

static void *
work(void *arg)
{
	uintptr_t seed = (uintptr_t)arg;
	void *p[64];
	size_t i, k, sz;

	for (i = 0; i < 20000; i++) {
		k = i % 64;
		if (i >= 64) {
			sz = 1 + (seed + i - 64) % 700;
			if (acl_free(p[k]) != sz)
				return (void *)1;
		}
		sz = 1 + (seed + i) % 700;
		if ((p[k] = acl_malloc(sz)) == NULL)
			return (void *)1;
		memset(p[k], (int)i, sz);
	}
	for (k = 0; k < 64; k++)
		if (acl_free(p[k]) == 0)
			return (void *)1;
	return NULL;
}

int
main(int argc, char **argv)
{
	int (*attach)(const char *);
	const char *(*last_error)(void);
	pthread_t t[2];
	void *rc;
	void *h;
	int i, bad = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: helper_dlopen LIBRARY SOCKET\n");
		return 2;
	}
	if ((h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL) {
		printf("dlopen: %s\n", dlerror());
		return 1;
	}
	*(void **)&attach = dlsym(h, "aclheap_attach");
	*(void **)&last_error = dlsym(h, "aclheap_last_error");
	*(void **)&acl_malloc = dlsym(h, "aclmalloc");
	*(void **)&acl_free = dlsym(h, "aclfree");
	if (attach == NULL || last_error == NULL || acl_malloc == NULL ||
	    acl_free == NULL) {
		printf("dlsym: %s\n", dlerror());
		return 1;
	}
	if (attach(argv[2]) != 0) {
		printf("attach: %s\n", last_error());
		return 1;
	}
	for (i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, work,
		    (void *)(uintptr_t)(i * 97)) != 0)
			return 1;
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], &rc);
		bad |= rc != NULL;
	}
	if (bad) {
		printf("allocation through the loaded library failed: %s\n",
		    last_error());
		return 1;
	}
	printf("ok\n");
	return 0;
}
