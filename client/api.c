/* SPDX-License-Identifier: MIT */
/*
 * api.c: the public API of <aclheap.h>.
 *
 * Allocation goes through fast.c's thread caches for small blocks and over
 * the socket for everything else.  Freeing a small block is local: an
 * atomic exchange of its side entry and an atomic clear of its bit, from
 * any process; large blocks are freed by the daemon.  Bad pointers are
 * refused before anything is written (shm/slab.c validates).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aclheap.h"
#include "client/client.h"

static int
fail_errno(int rc)
{
	errno = -rc;
	return rc;
}

/* The block an Alloc or Realloc reply names, checked to lie in the heap. */
static void *
reply_block(int rc, const Aclheap__Reply *r)
{
	if (rc != 0) {
		fail_errno(rc);
		return NULL;
	}
	if (!seg_in_data(&conn_seg, (uintptr_t)r->alloc->addr)) {
		conn_seterr("aclheapd answered Alloc with no block in the heap");
		errno = EPROTO;
		return NULL;
	}
	return (void *)(uintptr_t)r->alloc->addr;
}

static void *
alloc_remote(size_t size, size_t alignment)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Alloc m = ACLHEAP__ALLOC__INIT;
	Aclheap__Reply *r = NULL;
	int rc;

	m.size = size;
	m.alignment = alignment;
	q.body_case = ACLHEAP__REQUEST__BODY_ALLOC;
	q.alloc = &m;
	rc = conn_call(&q, ACLHEAP__REPLY__BODY_ALLOC, &r, 0);
	return reply_block(rc, r);
}

static __attribute__((noinline)) void *
alloc_any(size_t size, size_t alignment)
{
	int rc;

	conn_clearerr();
	if (!conn_mapped && (rc = conn_attach(NULL)) != 0) {
		fail_errno(rc);
		return NULL;
	}
	if (size > (conn_seg.nslabs << SHM_SLAB_SHIFT)) {
		conn_seterr("%zu bytes is more than the heap holds (%llu)",
		    size, (unsigned long long)(conn_seg.nslabs <<
		    SHM_SLAB_SHIFT));
		errno = ENOMEM;
		return NULL;
	}
	if (alignment <= SHM_ALIGN && size <= SHM_CLASS_MAX) {
		void *p = fast_alloc(size);

		if (p != NULL)
			return p;
	}
	return alloc_remote(size, alignment);
}

/* The fast path first; everything else (first call, new lease, extents,
 * errors) through alloc_any(). */
API void *
aclmalloc(size_t size)
{
	void *p;

	if (__builtin_expect(size <= SHM_CLASS_MAX, 1) &&
	    (p = fast_alloc(size)) != NULL)
		return p;
	return alloc_any(size, 0);
}

API void *
aclmalloc_flags(size_t size, unsigned flags)
{
	conn_clearerr();
	if ((flags & ~ACLHEAP_RESTART_RELOCATION) != 0) {
		conn_seterr("unknown flags 0x%x", flags &
		    ~ACLHEAP_RESTART_RELOCATION);
		errno = EINVAL;
		return NULL;
	}
	return alloc_any(size, 0);
}

static size_t
free_remote(uintptr_t addr)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Free m = ACLHEAP__FREE__INIT;
	Aclheap__Reply *r;
	int rc;

	m.addr = addr;
	q.body_case = ACLHEAP__REQUEST__BODY_FREE;
	q.free = &m;
	if ((rc = conn_call(&q, ACLHEAP__REPLY__BODY_FREE, &r, 0)) != 0) {
		fail_errno(rc);
		return 0;
	}
	return (size_t)r->free->size;
}

/*
 * slab_block_lookup() for the calls that take a block: once more after a
 * look at the heap's size when the first try fails, since p may be in
 * slabs another process grew the heap by (conn_shape()).
 */
static int
lookup(const void *p, struct slab_block *b)
{
	if (!conn_mapped)
		return -EINVAL;
	if (slab_block_lookup(&conn_seg, (uintptr_t)p, b) == 0)
		return 0;
	if (!conn_shape())
		return -EINVAL;
	return slab_block_lookup(&conn_seg, (uintptr_t)p, b);
}

/* Everything aclfree() does not do inline: extents, and every error. */
static __attribute__((noinline)) size_t
free_slow(void *p)
{
	uintptr_t a = (uintptr_t)p;
	struct slab_block b;
	size_t req;

	conn_clearerr();
	if (p == NULL || !conn_mapped || (!seg_in_data(&conn_seg, a) &&
	    (!conn_shape() || !seg_in_data(&conn_seg, a)))) {
		conn_seterr(p == NULL ? "aclfree(NULL)" :
		    "%p is not inside the heap", p);
		errno = EINVAL;
		return 0;
	}
	if (lookup(p, &b) != 0) {
		conn_seterr("%p is not the start of a live block (inside a "
		    "block, or already freed)", p);
		errno = EINVAL;
		return 0;
	}
	if (b.cls == UINT32_MAX)
		return free_remote(a);
	if (fast_free(&b, &req) != 0) {
		conn_seterr("%p is not the start of a live block (freed "
		    "concurrently)", p);
		errno = EINVAL;
		return 0;
	}
	return req;
}

/* A small block is freed here, without the daemon: a lookup and one
 * exchange.  errno is left alone on success. */
API size_t
aclfree(void *p)
{
	struct slab_block b;
	size_t req;

	if (fast_free_hot((uintptr_t)p, &req))
		return req;
	if (__builtin_expect(conn_mapped && slab_block_lookup(&conn_seg,
	    (uintptr_t)p, &b) == 0 && b.cls != UINT32_MAX &&
	    fast_free(&b, &req) == 0, 1))
		return req;
	return free_slow(p);
}

API intptr_t
aclheap_address_to_aligned(uintptr_t address)
{
	conn_clearerr();
	if (address % 8 != 0) {
		conn_seterr("0x%lx is not a multiple of 8",
		    (unsigned long)address);
		errno = EINVAL;
		return 0;
	}
	/* Arithmetic shift of the signed word, as Allegro does. */
	return (intptr_t)address >> 3;
}

API uintptr_t
aclheap_aligned_to_address(intptr_t aligned)
{
	conn_clearerr();
	return (uintptr_t)aligned << 3;
}

API intptr_t
aclmalloc_aligned(size_t size)
{
	void *p = aclmalloc(size);

	return p == NULL ? 0 : aclheap_address_to_aligned((uintptr_t)p);
}

API size_t
aclfree_aligned(intptr_t aligned)
{
	return aclfree((void *)aclheap_aligned_to_address(aligned));
}

API void *
aclcalloc(size_t n, size_t size)
{
	size_t total;
	void *p;

	conn_clearerr();
	if (__builtin_mul_overflow(n, size, &total)) {
		conn_seterr("%zu * %zu overflows", n, size);
		errno = ENOMEM;
		return NULL;
	}
	if ((p = aclmalloc(total)) != NULL)
		memset(p, 0, total);
	return p;
}

/*
 * Realloc of a block of a size class to another such size, in this
 * process: in place while the block holds the new size and is not more
 * than twice too big (the daemon's rule), else a new block, the bytes
 * copied, the old one freed.  Extents grow in place in the daemon.
 */
static void *
realloc_local(void *p, const struct slab_block *b, size_t size)
{
	int cls = slab_class_of(size);
	void *q;

	if (size <= b->usable && slab_class_size[cls] * 2 > b->usable) {
		slab_side_store(b->sides, b->cls, b->index,
		    (uint32_t)(b->usable - size + 1));
		return p;
	}
	if ((q = aclmalloc(size)) == NULL)
		return NULL;
	memcpy(q, p, b->req < size ? b->req : size);
	(void)aclfree(p);
	return q;
}

API void *
aclrealloc(void *p, size_t size)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Realloc m = ACLHEAP__REALLOC__INIT;
	Aclheap__Reply *r = NULL;
	struct slab_block b;
	int rc;

	if (p == NULL)
		return aclmalloc(size);
	conn_clearerr();
	if (lookup(p, &b) != 0) {
		conn_seterr("%p is not the start of a live block", p);
		errno = EINVAL;
		return NULL;
	}
	if (size > (conn_seg.nslabs << SHM_SLAB_SHIFT)) {
		conn_seterr("%zu bytes is more than the heap holds", size);
		errno = ENOMEM;
		return NULL;
	}
	if (b.cls != UINT32_MAX && size <= SHM_CLASS_MAX)
		return realloc_local(p, &b, size);
	m.addr = (uintptr_t)p;
	m.size = size;
	q.body_case = ACLHEAP__REQUEST__BODY_REALLOC;
	q.realloc = &m;
	rc = conn_call(&q, ACLHEAP__REPLY__BODY_ALLOC, &r, 0);
	return reply_block(rc, r);
}

API void *
aclmemalign(size_t alignment, size_t size)
{
	conn_clearerr();
	if (alignment == 0 || (alignment & (alignment - 1)) != 0 ||
	    alignment > ((size_t)1 << 30)) {
		conn_seterr("alignment %zu is not a power of two up to 1 GiB",
		    alignment);
		errno = EINVAL;
		return NULL;
	}
	return alloc_any(size, alignment > SHM_ALIGN ? alignment : 0);
}

API size_t
aclheap_usable_size(const void *p)
{
	struct slab_block b;

	conn_clearerr();
	if (lookup(p, &b) != 0)
		return 0;
	return (size_t)b.usable;
}

API int
aclheap_contains(const void *p)
{
	uintptr_t a = (uintptr_t)p;

	conn_clearerr();
	(void)conn_shape();
	return conn_mapped && a >= conn_seg.base &&
	    a - conn_seg.base < seg_extent(&conn_seg);
}

_Static_assert(ACLHEAP_ROOT_NAME_MAX == SHM_ROOT_NAME_MAX,
    "the API's root names are the segment's");

/* Checks a root name here, so a bad one costs no round trip, then asks. */
static int
root_call(Aclheap__Request *q, Aclheap__Reply__BodyCase want,
    Aclheap__Reply **r, const char *name)
{
	conn_clearerr();
	if (!shm_root_name_ok(name)) {
		conn_seterr("root names are 1 to %d bytes of printable ASCII "
		    "(0x20 to 0x7e)", ACLHEAP_ROOT_NAME_MAX);
		return -EINVAL;
	}
	return conn_call(q, want, r, 0);
}

API int
aclheap_root_set(const char *name, void *p)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Root m = ACLHEAP__ROOT__INIT;
	Aclheap__Reply *r;

	m.name = (char *)name;
	m.value = (uintptr_t)p;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_SET;
	q.root_set = &m;
	return root_call(&q, ACLHEAP__REPLY__BODY_OK, &r, name);
}

API void *
aclheap_root_get(const char *name)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__RootGet m = ACLHEAP__ROOT_GET__INIT;
	Aclheap__Reply *r;
	int rc;

	m.name = (char *)name;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_GET;
	q.root_get = &m;
	if ((rc = root_call(&q, ACLHEAP__REPLY__BODY_ROOT, &r, name)) != 0) {
		errno = -rc;
		return NULL;
	}
	errno = 0;
	return (void *)(uintptr_t)r->root->value;
}

API int
aclheap_root_cas(const char *name, void *expected, void *desired)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__RootCas m = ACLHEAP__ROOT_CAS__INIT;
	Aclheap__Reply *r;

	m.name = (char *)name;
	m.expected = (uintptr_t)expected;
	m.desired = (uintptr_t)desired;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_CAS;
	q.root_cas = &m;
	return root_call(&q, ACLHEAP__REPLY__BODY_OK, &r, name);
}

API int
aclheap_root_remove(const char *name)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__RootRemove m = ACLHEAP__ROOT_REMOVE__INIT;
	Aclheap__Reply *r;

	m.name = (char *)name;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_REMOVE;
	q.root_remove = &m;
	return root_call(&q, ACLHEAP__REPLY__BODY_OK, &r, name);
}

/* A page's reply unpacks to more than a thread's reply arena holds
 * (200 roots of 255 bytes), so the list gets an arena of its own, as large
 * as aclheapctl's. */
#define ROOT_LIST_ARENA	(16 * FRAME_MAX)

/*
 * Every root whose name starts with prefix, page by page (aclheap.proto's
 * RootList): up to n into out, in name order, and the count of them all.
 */
static int
root_list(const char *prefix, struct aclheap_root *out, size_t n)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__RootList m = ACLHEAP__ROOT_LIST__INIT;
	Aclheap__Reply *r = NULL;
	Aclheap__RootListReply *rl;
	char after[ACLHEAP_ROOT_NAME_MAX + 1] = "";
	struct frame_arena a;
	size_t i, total = 0;
	void *buf;
	int rc;

	conn_clearerr();
	if (out == NULL && n > 0) {
		conn_seterr("aclheap_root_list(NULL, %zu)", n);
		return -EINVAL;
	}
	if (prefix != NULL && prefix[0] != '\0' && !shm_root_name_ok(prefix)) {
		conn_seterr("a root prefix is 0 to %d bytes of printable ASCII",
		    ACLHEAP_ROOT_NAME_MAX);
		return -EINVAL;
	}
	if (!conn_mapped && (rc = conn_attach(NULL)) != 0)
		return rc;
	if ((buf = malloc(ROOT_LIST_ARENA)) == NULL) {
		conn_seterr("no memory for the root list");
		return -ENOMEM;
	}
	m.prefix = (char *)(prefix != NULL ? prefix : "");
	m.after = after;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_LIST;
	q.root_list = &m;
	for (;;) {
		frame_arena_init(&a, buf, ROOT_LIST_ARENA);
		if ((rc = conn_request(&q, &r, &a, NULL)) != 0)
			goto done;
		if (r->body_case != ACLHEAP__REPLY__BODY_ROOTS ||
		    (r->roots->more && r->roots->n_roots == 0)) {
			conn_seterr("aclheapd answered RootList with the wrong "
			    "reply");
			rc = -EPROTO;
			goto done;
		}
		rl = r->roots;
		for (i = 0; i < rl->n_roots; i++, total++) {
			if (total >= n)
				continue;
			snprintf(out[total].name, sizeof(out[total].name), "%s",
			    rl->roots[i]->name);
			out[total].value = (void *)(uintptr_t)rl->roots[i]->value;
		}
		if (total > INT_MAX) {
			conn_seterr("more roots than an int counts");
			rc = -EOVERFLOW;
			goto done;
		}
		if (!rl->more)
			break;
		snprintf(after, sizeof(after), "%s",
		    rl->roots[rl->n_roots - 1]->name);
	}
	rc = (int)total;
done:
	free(buf);
	return rc;
}

API int
aclheap_root_list(struct aclheap_root *out, size_t n)
{
	return root_list(NULL, out, n);
}

API int
aclheap_root_list_prefix(const char *prefix, struct aclheap_root *out,
    size_t n)
{
	return root_list(prefix, out, n);
}

API int
aclheap_attach(const char *socket_path)
{
	conn_clearerr();
	return conn_attach(socket_path);
}

API void
aclheap_detach(void)
{
	conn_clearerr();
	fast_flush();
	conn_detach();
}

API int
aclheap_checkpoint(void)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Checkpoint m = ACLHEAP__CHECKPOINT__INIT;
	Aclheap__Reply *r;
	int rc;

	conn_clearerr();
	q.body_case = ACLHEAP__REQUEST__BODY_CHECKPOINT;
	q.checkpoint = &m;
	rc = conn_call(&q, ACLHEAP__REPLY__BODY_CHECKPOINT, &r, 0);
	/* What the daemon could not write (disk full, ...) is EIO; a user
	 * who may not checkpoint gets the daemon's EPERM as it is. */
	if (rc == -ENOSPC || rc == -EDQUOT || rc == -EROFS || rc == -EACCES)
		rc = -EIO;
	return rc;
}

API int
aclheap_grow(uint64_t size)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Grow m = ACLHEAP__GROW__INIT;
	Aclheap__Reply *r;

	conn_clearerr();
	m.size = size;
	q.body_case = ACLHEAP__REQUEST__BODY_GROW;
	q.grow = &m;
	return conn_call(&q, ACLHEAP__REPLY__BODY_GROW, &r, 0);
}

API int
aclheap_stats(struct aclheap_stats *out)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Stats m = ACLHEAP__STATS__INIT;
	Aclheap__Reply *r;
	Aclheap__StatsReply *s;
	int rc;

	conn_clearerr();
	if (out == NULL) {
		conn_seterr("aclheap_stats(NULL)");
		return -EINVAL;
	}
	q.body_case = ACLHEAP__REQUEST__BODY_STATS;
	q.stats = &m;
	if ((rc = conn_call(&q, ACLHEAP__REPLY__BODY_STATS, &r, 0)) != 0)
		return rc;
	s = r->stats;
	memset(out, 0, sizeof(*out));
	out->base = (uintptr_t)s->heap_base;
	out->size = s->size;
	out->data_size = s->slabs_total << SHM_SLAB_SHIFT;
	out->bytes_in_use = s->bytes_in_use;
	out->bytes_requested = s->bytes_requested;
	out->blocks_in_use = s->blocks_in_use;
	out->last_checkpoint = s->ckpt_time;
	out->generation = s->generation;
	return 0;
}

API int
aclheap_identity(unsigned char out[16])
{
	int rc;

	conn_clearerr();
	if (out == NULL) {
		conn_seterr("aclheap_identity(NULL)");
		return -EINVAL;
	}
	if (!conn_mapped && (rc = conn_attach(NULL)) != 0)
		return rc;
	return conn_identity(out);
}

API const char *
aclheap_last_error(void)
{
	return conn_lasterr();
}
