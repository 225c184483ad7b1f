/* SPDX-License-Identifier: MIT */
/*
 * client.h: the client side's internals, shared by libaclheap's API and by
 * aclheapctl.
 *
 * Theory of operation
 * -------------------
 * A process has one connection to one daemon and one mapping of its heap:
 *
 *   conn_seg   the segment, mapped at the daemon's base, kept for the life
 *              of the process (or until aclheap_detach); survives daemon
 *              restarts, and is replaced in place (same range) only when
 *              the daemon restarted into a new object of the same heap
 *   conn_fd    the socket; dropped on any I/O error and after fork(), and
 *              re-opened by the next request, which waits for the daemon up
 *              to ACLHEAP_RECONNECT_TIMEOUT seconds
 *
 * One mutex serializes requests on the socket.  The fast operations (free
 * of a small block, usable size, contains) read the mapping only and take
 * no lock.
 */
#ifndef ACLHEAP_CLIENT_H
#define ACLHEAP_CLIENT_H

#include <stdarg.h>
#include <stdint.h>

#include "shm/shm.h"
#include "proto/proto.h"

#define API __attribute__((visibility("default")))

extern struct shm_seg conn_seg;
extern _Atomic int conn_mapped;

/* client/conn.c */
int	 conn_attach(const char *path);
void	 conn_detach(void);
int	 conn_shape(void);
int	 conn_request(Aclheap__Request *, Aclheap__Reply **,
	    struct frame_arena *, int *fdp);
int	 conn_request_flags(Aclheap__Request *, Aclheap__Reply **,
	    struct frame_arena *, int *fdp, int flags);
#define CONN_NOWAIT	0x1	/* fail at once when the daemon is away */
int	 conn_call(Aclheap__Request *, Aclheap__Reply__BodyCase,
	    Aclheap__Reply **, int flags);
void	 conn_seterr(const char *, ...) __attribute__((format(printf, 1, 2)));
const char *conn_lasterr(void);
void	 conn_clearerr(void);
int	 conn_default_socket(char *, size_t);
int	 conn_identity(uint8_t out[16]);

extern _Atomic uint64_t conn_gen;

/*
 * client/fast.c: per thread and class, a leased slab and a private set of
 * claimed blocks (see fast.c's header comment for the protocol).
 */
#define FAST_HIST	8

struct fast_class {
	uint64_t mask;		/* private set of word `word` */
	uintptr_t base;		/* the word's first block */
	uintptr_t sides;	/* the word's side entries (slab_side_*()) */
	_Atomic uint64_t *recmask;	/* the lease record's mask */
	uint32_t slab;
	uint32_t word;
	uint32_t rec;		/* lease record, valid if leased */
	uint32_t leased;
	uint32_t cursor;	/* where scan_class() goes on looking */
	uint32_t nhist;		/* slabs leased so far (hist[nhist % 8]) */
	uint32_t hpos;		/* where scan_class() goes on in hist */
	uint32_t hist[FAST_HIST];	/* the last slabs this lease was on */
};

/*
 * The class whose current word this thread freed into last: a free that
 * lands in that word again needs neither the slab table nor the class
 * tables (see fast_free_hot()).  The word itself is the class's (base,
 * sides, recmask); kept here is what the free divides by.
 */
struct fast_hot {
	uint64_t span;		/* bytes of the word's blocks; 0: none */
	uint64_t magic;		/* slab_class_magic of the class */
	uint32_t cls;
	uint32_t size;		/* class size */
};

struct fast_cache {
	uint64_t gen;		/* conn_gen the leases belong to */
	struct fast_hot hot;
	struct fast_class cls[SHM_NCLASSES];
	char lasterr[512];	/* conn_seterr(): the last failure in words */
	/* conn_call()'s arena, FAST_REPLY_BYTES: a reply lives here until
	 * the thread's next request. */
	uint8_t reply[] __attribute__((aligned(16)));
};
#define FAST_REPLY_BYTES	16384

/* initial-exec: a direct %fs access instead of a __tls_get_addr call.
 * Static TLS is scarce in a library loaded with dlopen() (glibc keeps
 * about 1 KB for all of them), so it holds only this pointer; the thread's
 * state is allocated per thread (fast.c), and until then the pointer names
 * fast_empty, which nothing writes. */
#define FAST_TLS	__attribute__((tls_model("initial-exec")))
extern _Thread_local struct fast_cache *fast_tcp FAST_TLS;
extern const struct fast_cache fast_empty;
extern _Atomic uint64_t fast_socket_allocs;
#define fast_tc	(*fast_tcp)

struct fast_cache *fast_thread(void);
void	*fast_alloc_slow(uint32_t cls, size_t);
void	 fast_flush(void);

static inline struct shm_lease *
fast_rec(const struct fast_class *c)
{
	return &conn_seg.leases[c->rec];
}

static inline __attribute__((always_inline)) void *
fast_pop(struct fast_class *c, uint32_t cls, size_t size)
{
	uint32_t j = (uint32_t)__builtin_ctzll(c->mask);
	uint32_t cs = slab_class_size[cls];

	/* The record forgets the block before it is made live: a kill in
	 * between leaves it claimed and unlisted (orphaned, back at the next
	 * image load), not live and unreachable forever. */
	c->mask &= c->mask - 1;
	atomic_store_explicit(c->recmask, c->mask, memory_order_release);
	slab_side_store(c->sides, cls, j, (uint32_t)(cs - size + 1));
	return (void *)(c->base + (uintptr_t)j * cs);
}

/*
 * The allocation fast path, for size <= SHM_CLASS_MAX: one branch (a
 * private block of this generation to hand out), then the pop.  NULL means
 * "ask the daemon".
 */
static inline __attribute__((always_inline)) void *
fast_alloc(size_t size)
{
	uint32_t cls = (uint32_t)slab_class_of(size);
	struct fast_class *c = &fast_tc.cls[cls];

	if (__builtin_expect(c->mask != 0 && fast_tc.gen ==
	    atomic_load_explicit(&conn_gen, memory_order_relaxed), 1))
		return fast_pop(c, cls, size);
	return fast_alloc_slow(cls, size);
}

void	 fast_hot_set(struct fast_class *, uint32_t cls);

/*
 * Frees p if it is a block of the hot word: 1 with *req, 0 when p is
 * anything else (the caller goes the general way, which also reports
 * errors).
 */
static inline __attribute__((always_inline)) int
fast_free_hot(uintptr_t p, size_t *req)
{
	struct fast_hot *h = &fast_tc.hot;
	struct fast_class *c = &fast_tc.cls[h->cls];
	uint64_t d = p - c->base, j;
	uint32_t side;

	if (d >= h->span)
		return 0;
	j = (d * h->magic) >> 48;
	/* Our private bits in the word are what keep its slab of this
	 * class: a slab with claimed bits is never reclaimed.  Without
	 * them the slab may have been emptied by others' frees, swept and
	 * reused for another class, and only the slab table can tell. */
	if (d != j * h->size || c->mask == 0 || fast_tc.gen !=
	    atomic_load_explicit(&conn_gen, memory_order_relaxed))
		return 0;
	side = slab_side_xchg(c->sides, h->cls, (uint32_t)j, 0);
	if (__builtin_expect(side == 0 || side > h->size + 1, 0)) {
		/* Not live, or scribbled: left as found, for the general
		 * path to report. */
		if (side != 0)
			slab_side_store(c->sides, h->cls, (uint32_t)j, side);
		return 0;
	}
	*req = h->size - (side - 1u);
	c->mask |= UINT64_C(1) << j;
	atomic_store_explicit(c->recmask, c->mask, memory_order_release);
	return 1;
}

/*
 * Frees a small block that slab_block_lookup() found live: one exchange of
 * its side entry (so one of two racing frees loses), then back into this
 * thread's private set if it lies in its current word, else its bit is
 * cleared.  0 with *req, or -EINVAL when another free won.
 */
static inline __attribute__((always_inline)) int
fast_free(const struct slab_block *b, size_t *req)
{
	struct fast_class *c = &fast_tc.cls[b->cls];
	uint64_t bit = UINT64_C(1) << (b->index % 64);
	uint32_t side;

	side = slab_side_xchg(b->sides, b->cls, b->index, 0);
	if (__builtin_expect(side == 0, 0))
		return -EINVAL;
	*req = slab_class_size[b->cls] - (side - 1u);
	if (c->leased && c->slab == b->slab && c->word == b->index / 64 &&
	    fast_tc.gen == atomic_load_explicit(&conn_gen,
	    memory_order_relaxed)) {
		c->mask |= bit;
		atomic_store_explicit(c->recmask, c->mask,
		    memory_order_release);
		if (fast_tc.hot.cls != b->cls || fast_tc.hot.span == 0)
			fast_hot_set(c, b->cls);
		return 0;
	}
	atomic_fetch_and(&slab_bitmap(&conn_seg, b->slab)[b->index / 64],
	    ~bit);
	return 0;
}

#endif /* ACLHEAP_CLIENT_H */
