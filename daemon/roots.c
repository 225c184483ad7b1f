/* SPDX-License-Identifier: MIT */
/*
 * roots.c: the named roots in the segment's root table, by which a program
 * finds its data again after a restart.  Only the daemon reads and writes
 * the table; clients ask over the socket.
 *
 * The table is compact (shm.h): roots 0 .. roots_used-1.  A new root is
 * written at roots_used, then counted; a removed one is first uncounted
 * (the last root, now past the count, is still intact), then the last
 * root is copied into its place, then the last record is cleared.  At
 * every store the table below roots_used is valid, with no name twice, so
 * the validator never sees a half-done change; the journal's step says
 * where a crash stopped, and start-up goes on from there.
 *
 * Finding a root by name is a hash index private to the daemon: open
 * addressing with linear probing over slot + 1 (0 = empty), at most half
 * full, rebuilt from the table at each start (roots_index_build()), so
 * the segment and its images carry no index to keep right or to check.
 * The count the daemon goes by is its own too (h->roots_n): the
 * superblock's roots_used is what it publishes, for the validator and
 * images, in memory a client could scribble on; and names are compared
 * within their records, NUL or not.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"

#define IDX_MASK(h)	((h)->root_cap - 1)
#define NAME_CMP(a, b)	strncmp((a), (b), SHM_ROOT_NAME_MAX + 1)

static uint64_t
roots_used(struct heap *h)
{
	return h->roots_n;
}

/* The count, the daemon's and the published one. */
static void
roots_count(struct heap *h, uint64_t n)
{
	h->roots_n = n;
	atomic_store(&h->seg.sb->roots_used, n);
}

/* The published count, as far as the table has room: at start-up. */
static uint64_t
roots_published(struct heap *h)
{
	uint64_t n = atomic_load(&h->seg.sb->roots_used);

	return n < h->seg.roots_max ? n : h->seg.roots_max;
}

/* The index entry for name: the one holding it, or the empty one where
 * it would go. */
static uint64_t
idx_probe(struct heap *h, const char *name)
{
	uint64_t k;
	uint32_t e;

	for (k = shm_root_hash(name) & IDX_MASK(h); (e = h->root_idx[k]) != 0;
	    k = (k + 1) & IDX_MASK(h))
		if (NAME_CMP(h->seg.roots[e - 1].name, name) == 0)
			break;
	return k;
}

/* Removes entry k, moving back the entries of its cluster that probed
 * past it (deletion without tombstones). */
static void
idx_delete(struct heap *h, uint64_t k)
{
	uint64_t j = k, home;
	uint32_t e;

	h->root_idx[k] = 0;
	for (;;) {
		j = (j + 1) & IDX_MASK(h);
		if ((e = h->root_idx[j]) == 0)
			return;
		home = shm_root_hash(h->seg.roots[e - 1].name) & IDX_MASK(h);
		/* Stays unless its home is cyclically outside (k, j]. */
		if ((j > k && (home <= k || home > j)) ||
		    (j < k && home <= k && home > j)) {
			h->root_idx[k] = e;
			h->root_idx[j] = 0;
			k = j;
		}
	}
}

/*
 * The index, from the table as it is: at start-up, after the journal's
 * plans are finished.  A name twice (a table the validator would refuse)
 * keeps its first root.  0 or -ENOMEM.
 */
int
roots_index_build(struct heap *h)
{
	uint64_t n = roots_published(h), i, k, cap;

	for (cap = 64; cap < 2 * h->seg.roots_max; cap <<= 1)
		;
	if (h->root_idx == NULL &&
	    (h->root_idx = calloc(cap, sizeof(*h->root_idx))) == NULL)
		return -ENOMEM;
	h->root_cap = cap;
	memset(h->root_idx, 0, cap * sizeof(*h->root_idx));
	h->roots_n = n;
	for (i = 0; i < n; i++) {
		k = idx_probe(h, h->seg.roots[i].name);
		if (h->root_idx[k] == 0)
			h->root_idx[k] = (uint32_t)i + 1;
	}
	return 0;
}

static struct shm_root *
root_find(struct heap *h, const char *name)
{
	uint32_t e = h->root_idx[idx_probe(h, name)];

	return e != 0 ? &h->seg.roots[e - 1] : NULL;
}

/*
 * Plans, in a session's journal: arg[0] what, arg[1] the slot, arg[2] the
 * value, arg[3] the last slot (a drop); text the name.  Each sub-step is
 * idempotent, and a drop's copy is done only while the step says it is
 * not done yet (the copy reads the last record, which the step after it
 * clears), so start-up does the plan again from where it stopped.
 */
enum { ROOT_VALUE = 1, ROOT_CREATE, ROOT_DROP };

static void
root_write(struct shm_root *r, const char *name, uint64_t v)
{
	size_t n = strnlen(name, SHM_ROOT_NAME_MAX);

	atomic_store(&r->value, v);
	memset(r->name, 0, sizeof(r->name));
	memcpy(r->name, name, n);
	r->len = (uint32_t)n;
	r->pad = 0;
}

static void
root_apply(struct heap *h, struct shm_session *ss, int redo)
{
	uint64_t slot = ss->arg[1], last = ss->arg[3];
	struct shm_root *r = &h->seg.roots[slot], *l;
	uint32_t from = redo ? atomic_load(&ss->step) : 0;

	switch (ss->arg[0]) {
	case ROOT_CREATE:
		/* Written past the count, then counted. */
		root_write(r, ss->text, ss->arg[2]);
		roots_count(h, slot + 1);
		break;
	case ROOT_VALUE:
		atomic_store(&r->value, ss->arg[2]);
		break;
	case ROOT_DROP:
		l = &h->seg.roots[last];
		if (from < 1) {
			roots_count(h, last);
			if (!redo)
				journal_step(ss, 1);
		}
		if (from < 2) {
			if (slot != last) {
				atomic_store(&r->value, atomic_load(&l->value));
				memcpy(r->name, l->name, sizeof(r->name));
				r->len = l->len;
				r->pad = 0;
			}
			if (!redo)
				journal_step(ss, 2);
		}
		memset(l, 0, sizeof(*l));
		break;
	}
}

static int
root_do(struct heap *h, struct shm_session *ss, const char *kind,
    uint32_t body, uint64_t what, struct shm_root *r, uint64_t v,
    const char *name)
{
	uint64_t arg[6] = { what, 0, v, 0, 0, 0 };
	uint64_t n = roots_used(h), slot, k, last;
	struct shm_geom g;
	int rc;

	if (r != NULL)
		slot = (uint64_t)(r - h->seg.roots);
	else {
		if (n >= h->seg.roots_max)
			return -ENOSPC;
		slot = n;
		/* The record's pages, before the first store to them: a full
		 * /dev/shm is ENOMEM here, not a SIGBUS. */
		if (seg_geometry_max(h->seg.size, h->seg.max, &g) != 0)
			return -EINVAL;
		if ((rc = seg_commit(&h->seg, g.roots_off + slot *
		    sizeof(struct shm_root), sizeof(struct shm_root))) != 0)
			return rc;
	}
	last = n - 1;
	arg[1] = slot;
	arg[3] = what == ROOT_DROP ? last : 0;
	journal_begin(ss, kind, body, arg, name);
	/* The index follows the table; it is rebuilt after a crash. */
	if (what == ROOT_DROP) {
		idx_delete(h, idx_probe(h, name));
		if (slot != last)
			k = idx_probe(h, h->seg.roots[last].name);
		else
			k = UINT64_MAX;
		root_apply(h, ss, 0);
		if (k != UINT64_MAX)
			h->root_idx[k] = (uint32_t)slot + 1;
	} else {
		root_apply(h, ss, 0);
		if (what == ROOT_CREATE)
			h->root_idx[idx_probe(h, name)] = (uint32_t)slot + 1;
		if (body != ACLHEAP__REQUEST__BODY_ROOT_SET) {
			/* The kinds that may drop have their steps. */
			journal_step(ss, 1);
			journal_step(ss, 2);
		}
	}
	journal_step(ss, body == ACLHEAP__REQUEST__BODY_ROOT_SET ? 1 : 3);
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

/*
 * After a crash: the plan again, from its step on.  Start-up builds the
 * index after every plan is finished.  A plan that names a slot the table
 * cannot have, or a create whose slot is not the next one, or a drop
 * whose last slot is not the last, is not the daemon's.
 */
int
heap_redo_root(struct heap *h, struct shm_session *ss)
{
	uint64_t n = roots_published(h), slot = ss->arg[1], last = ss->arg[3];
	uint32_t step = atomic_load(&ss->step);

	if (ss->arg[0] < ROOT_VALUE || ss->arg[0] > ROOT_DROP ||
	    slot >= h->seg.roots_max || !shm_root_name_ok(ss->text))
		return -1;
	switch (ss->arg[0]) {
	case ROOT_CREATE:
		if (slot != n && slot + 1 != n)
			return -1;
		break;
	case ROOT_VALUE:
		if (slot >= n)
			return -1;
		break;
	case ROOT_DROP:
		if (last >= h->seg.roots_max || slot > last ||
		    (n != last && (step >= 1 || n != last + 1)))
			return -1;
		break;
	}
	h->roots_n = n;
	root_apply(h, ss, 1);
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

/* A max-heap of root pointers by name: the page's largest on top. */
static void
page_sift(const struct shm_root **a, size_t n, size_t i)
{
	const struct shm_root *t;
	size_t c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= n)
			return;
		if (c + 1 < n && NAME_CMP(a[c + 1]->name, a[c]->name) > 0)
			c++;
		if (NAME_CMP(a[c]->name, a[i]->name) <= 0)
			return;
		t = a[i];
		a[i] = a[c];
		a[c] = t;
		i = c;
	}
}

static int
page_cmp(const void *x, const void *y)
{
	return NAME_CMP((*(const struct shm_root *const *)x)->name,
	    (*(const struct shm_root *const *)y)->name);
}

/*
 * A page of the roots whose names start with prefix, in name order: the
 * max first ones after `after` ("" from the start).  One pass over the
 * table, keeping the max smallest in a heap: a listing of n roots in pages
 * of max costs n / max passes, and a root that is there for the whole
 * listing is in exactly one page, whatever else is created or removed
 * meanwhile.  *more is 1 when roots are left after the page.
 */
size_t
heap_root_page(struct heap *h, const char *prefix, const char *after,
    const struct shm_root **out, size_t max, int *more)
{
	uint64_t n = roots_used(h), i;
	size_t plen = strlen(prefix), got = 0;
	const struct shm_root *r;

	*more = 0;
	if (max == 0)
		return 0;
	for (i = 0; i < n; i++) {
		r = &h->seg.roots[i];
		/* A record scribbled on: no name to pack (the validator
		 * reports it). */
		if (memchr(r->name, '\0', sizeof(r->name)) == NULL ||
		    strncmp(r->name, prefix, plen) != 0 ||
		    (after[0] != '\0' && strcmp(r->name, after) <= 0))
			continue;
		if (got < max) {
			out[got++] = r;
			if (got == max) {
				size_t j;

				for (j = max / 2 + 1; j-- > 0;)
					page_sift(out, max, j);
			}
			continue;
		}
		*more = 1;
		if (NAME_CMP(r->name, out[0]->name) < 0) {
			out[0] = r;
			page_sift(out, max, 0);
		}
	}
	qsort(out, got, sizeof(*out), page_cmp);
	return got;
}
