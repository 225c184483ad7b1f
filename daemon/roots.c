/* SPDX-License-Identifier: MIT */
/*
 * roots.c: the named roots in the segment's root table, by which a program
 * finds its data again after a restart.  A root is visible once its name
 * is: a new one gets its value first, then its name; a removed one loses
 * its name first.  Clients read the table directly; only the daemon
 * writes it.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "daemon/daemon.h"

static struct shm_root *
root_find(struct heap *h, const char *name)
{
	int i;

	for (i = 0; i < SHM_ROOTS; i++)
		if (strncmp(h->seg.roots[i].name, name,
		    sizeof(h->seg.roots[i].name)) == 0)
			return &h->seg.roots[i];
	return NULL;
}

static int
root_create(struct heap *h, const char *name, uint64_t v)
{
	struct shm_root *r;
	int i;

	for (i = 0; i < SHM_ROOTS; i++) {
		r = &h->seg.roots[i];
		if (r->name[0] != '\0')
			continue;
		/* Value first, then the name that makes it visible. */
		atomic_store(&r->value, v);
		memset(r->name, 0, sizeof(r->name));
		memcpy(r->name, name, strlen(name));
		return 0;
	}
	return -ENOSPC;
}

int
heap_root_set(struct heap *h, const char *name, uint64_t v)
{
	struct shm_root *r;

	if (!shm_root_name_ok(name))
		return -EINVAL;
	h->dirty = 1;
	if ((r = root_find(h, name)) != NULL) {
		atomic_store(&r->value, v);
		return 0;
	}
	return root_create(h, name, v);
}

int
heap_root_get(struct heap *h, const char *name, uint64_t *v)
{
	struct shm_root *r;

	if (!shm_root_name_ok(name))
		return -EINVAL;
	if ((r = root_find(h, name)) == NULL)
		return -ENOENT;
	*v = atomic_load(&r->value);
	return 0;
}

int
heap_root_cas(struct heap *h, const char *name, uint64_t expected,
    uint64_t desired)
{
	struct shm_root *r;

	if (!shm_root_name_ok(name))
		return -EINVAL;
	r = root_find(h, name);
	if (r == NULL) {
		if (expected != 0)
			return -EAGAIN;
		if (desired == 0)
			return 0;
		h->dirty = 1;
		return root_create(h, name, desired);
	}
	if (atomic_load(&r->value) != expected)
		return -EAGAIN;
	h->dirty = 1;
	if (desired == 0) {
		memset(r->name, 0, sizeof(r->name));
		atomic_store(&r->value, 0);
	} else
		atomic_store(&r->value, desired);
	return 0;
}

int
heap_root_remove(struct heap *h, const char *name)
{
	struct shm_root *r;

	if (!shm_root_name_ok(name))
		return -EINVAL;
	if ((r = root_find(h, name)) == NULL)
		return -ENOENT;
	memset(r->name, 0, sizeof(r->name));
	atomic_store(&r->value, 0);
	h->dirty = 1;
	return 0;
}
