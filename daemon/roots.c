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
#include "daemon/journal.h"

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

/* A free slot of the table, or -ENOSPC. */
static int
root_slot(struct heap *h)
{
	int i;

	for (i = 0; i < SHM_ROOTS; i++)
		if (h->seg.roots[i].name[0] == '\0')
			return i;
	return -ENOSPC;
}

/*
 * Plans, in a session's journal: arg[0] what, arg[1] the slot, arg[2] the
 * value; text the name.  Each store is idempotent, so start-up does the
 * plan again after a crash.
 */
enum { ROOT_VALUE = 1, ROOT_CREATE, ROOT_DROP };

static void
root_apply(struct heap *h, const struct shm_session *ss)
{
	struct shm_root *r = &h->seg.roots[ss->arg[1] % SHM_ROOTS];

	switch (ss->arg[0]) {
	case ROOT_CREATE:
		/* Value first, then the name that makes it visible. */
		atomic_store(&r->value, ss->arg[2]);
		memset(r->name, 0, sizeof(r->name));
		memcpy(r->name, ss->text, strnlen(ss->text, sizeof(r->name) - 1));
		break;
	case ROOT_VALUE:
		atomic_store(&r->value, ss->arg[2]);
		break;
	case ROOT_DROP:
		memset(r->name, 0, sizeof(r->name));
		atomic_store(&r->value, 0);
		break;
	}
}

static int
root_do(struct heap *h, struct shm_session *ss, const char *kind,
    uint32_t body, uint64_t what, struct shm_root *r, uint64_t v,
    const char *name)
{
	uint64_t arg[6] = { what, 0, v, 0, 0, 0 };
	int slot;

	if (r != NULL)
		slot = (int)(r - h->seg.roots);
	else if ((slot = root_slot(h)) < 0)
		return slot;
	arg[1] = (uint64_t)slot;
	journal_begin(ss, kind, body, arg, name);
	root_apply(h, ss);
	journal_step(ss, 1);
	h->dirty = 1;
	return 0;
}

int
heap_root_set_once(struct heap *h, struct shm_session *ss, const char *name,
    uint64_t v)
{
	struct shm_root *r;

	if (!shm_root_name_ok(name))
		return -EINVAL;
	r = root_find(h, name);
	return root_do(h, ss, "root_set", ACLHEAP__REQUEST__BODY_ROOT_SET,
	    r != NULL ? ROOT_VALUE : ROOT_CREATE, r, v, name);
}

int
heap_root_cas_once(struct heap *h, struct shm_session *ss, const char *name,
    uint64_t expected, uint64_t desired)
{
	struct shm_root *r;

	if (!shm_root_name_ok(name))
		return -EINVAL;
	if ((r = root_find(h, name)) == NULL) {
		if (expected != 0)
			return -EAGAIN;
		if (desired == 0)
			return 0;
		return root_do(h, ss, "root_cas",
		    ACLHEAP__REQUEST__BODY_ROOT_CAS, ROOT_CREATE, NULL, desired,
		    name);
	}
	if (atomic_load(&r->value) != expected)
		return -EAGAIN;
	return root_do(h, ss, "root_cas", ACLHEAP__REQUEST__BODY_ROOT_CAS,
	    desired == 0 ? ROOT_DROP : ROOT_VALUE, r, desired, name);
}

int
heap_root_remove_once(struct heap *h, struct shm_session *ss,
    const char *name)
{
	struct shm_root *r;

	if (!shm_root_name_ok(name))
		return -EINVAL;
	if ((r = root_find(h, name)) == NULL)
		return -ENOENT;
	return root_do(h, ss, "root_remove",
	    ACLHEAP__REQUEST__BODY_ROOT_REMOVE, ROOT_DROP, r, 0, name);
}

/* After a crash: the plan again. */
int
heap_redo_root(struct heap *h, struct shm_session *ss)
{
	if (ss->arg[1] >= SHM_ROOTS || ss->arg[0] < ROOT_VALUE ||
	    ss->arg[0] > ROOT_DROP)
		return -1;
	root_apply(h, ss);
	journal_done(ss, 0, 0, 0, NULL);
	return 0;
}

int
heap_root_set(struct heap *h, const char *name, uint64_t v)
{
	struct shm_session ss = { 0 };

	return heap_root_set_once(h, &ss, name, v);
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
	struct shm_session ss = { 0 };

	return heap_root_cas_once(h, &ss, name, expected, desired);
}

int
heap_root_remove(struct heap *h, const char *name)
{
	struct shm_session ss = { 0 };

	return heap_root_remove_once(h, &ss, name);
}
