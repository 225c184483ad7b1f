/*
 * fast.c: small allocations without the daemon.
 *
 * Each thread keeps, per size class, a lease on one slab and a private set:
 * the free blocks of one bitmap word that it claimed in a single atomic
 * fetch_or (shm/slab.c, slab_claim_word).  An allocation pops a bit off the
 * private set and writes the block's side entry: no system call, no lock,
 * no atomic read-modify-write.  A free takes the side entry with one atomic
 * exchange; a block of the thread's current word goes back to its private
 * set, any other has its bit cleared.
 *
 * The private set is mirrored in the thread's lease record in the segment
 * (plain stores to a cache line nobody else writes), so when the process
 * dies the daemon gives the set back: a crash leaks at most the block being
 * handed out.  Ordering that makes this hold: side entry before removing a
 * bit from the record (the daemon returns only bits whose side entry is 0),
 * record word and pending flag before a claim.
 *
 * Caches die with conn_gen: fork() (the child must not hand out its
 * parent's blocks) and a remap of the segment (the new object knows nothing
 * of our claims).  Why claims are safe against the daemon reclaiming the
 * slab meanwhile is argued in shm/shm.h.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "client/client.h"

struct fast_class {
	uint64_t mask;		/* private set of word `word` */
	uint32_t slab;
	uint32_t word;
	uint32_t rec;		/* lease record, valid if leased */
	uint32_t leased;
};

struct fast_cache {
	uint64_t gen;		/* conn_gen the leases belong to */
	int keyed;
	struct fast_class cls[SHM_NCLASSES];
};

static _Thread_local struct fast_cache tc;
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void
thread_exit(void *arg)
{
	(void)arg;
	fast_flush();
}

static void
key_init(void)
{
	pthread_key_create(&exit_key, thread_exit);
}

static inline struct shm_lease *
rec_of(const struct fast_class *c)
{
	return &conn_seg.leases[c->rec];
}

static void *
pop(struct fast_class *c, uint32_t cls, size_t size)
{
	uint32_t b = (uint32_t)__builtin_ctzll(c->mask);
	uint32_t i = c->word * 64 + b;

	slab_set_live(&conn_seg, c->slab, i, cls, size);
	c->mask &= c->mask - 1;
	atomic_store_explicit(&rec_of(c)->mask, c->mask, memory_order_release);
	return (void *)(slab_addr(&conn_seg, c->slab) +
	    (uintptr_t)i * slab_class_size[cls]);
}

/* Gives back what the private set holds and the lease itself. */
static void
lease_drop(struct fast_class *c, int tell_daemon)
{
	uint8_t abuf[1024];
	struct frame_arena a;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__ReleaseSlab m = ACLHEAP__RELEASE_SLAB__INIT;
	Aclheap__Reply *r;

	if (!c->leased)
		return;
	if (c->mask != 0) {
		atomic_fetch_and(&slab_bitmap(&conn_seg, c->slab)[c->word],
		    ~c->mask);
		c->mask = 0;
		atomic_store(&rec_of(c)->mask, 0);
	}
	if (tell_daemon) {
		m.record = c->rec;
		q.body_case = ACLHEAP__REQUEST__BODY_RELEASE;
		q.release = &m;
		frame_arena_init(&a, abuf, sizeof(abuf));
		(void)conn_request(&q, &r, &a, NULL);
	}
	memset(c, 0, sizeof(*c));
}

static int
lease_take(struct fast_class *c, uint32_t cls)
{
	uint8_t abuf[1024];
	struct frame_arena a;
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__LeaseSlab m = ACLHEAP__LEASE_SLAB__INIT;
	Aclheap__Reply *r;
	int rc;

	m.cls = cls;
	q.body_case = ACLHEAP__REQUEST__BODY_LEASE;
	q.lease = &m;
	frame_arena_init(&a, abuf, sizeof(abuf));
	if ((rc = conn_request(&q, &r, &a, NULL)) != 0)
		return rc;
	if (r->body_case != ACLHEAP__REPLY__BODY_LEASE ||
	    r->lease->slab >= conn_seg.nslabs ||
	    r->lease->record >= SHM_LEASES)
		return -EPROTO;
	c->slab = (uint32_t)r->lease->slab;
	c->rec = r->lease->record;
	c->word = 0;
	c->mask = 0;
	c->leased = 1;
	return 0;
}

/* Claims the next word of the leased slab with free blocks.  1 when the
 * private set is refilled, 0 when the slab is full or no longer ours. */
static int
refill(struct fast_class *c, uint32_t cls)
{
	uint32_t nw = (slab_class_nblocks[cls] + 63) / 64, k, w;
	struct shm_lease *l = rec_of(c);
	uint64_t got;

	for (k = 0; k < nw; k++) {
		w = (c->word + k) % nw;
		atomic_store(&l->word, w);
		atomic_store(&l->pending, 1);
		if (slab_claim_word(&conn_seg, c->slab, cls, w, &got) != 0) {
			atomic_store(&l->pending, 0);
			return 0;
		}
		if (got != 0) {
			atomic_store(&l->mask, got);
			atomic_store(&l->pending, 0);
			c->word = w;
			c->mask = got;
			return 1;
		}
	}
	atomic_store(&l->pending, 0);
	return 0;
}

static __attribute__((noinline)) void *
fast_alloc_slow(uint32_t cls, size_t size)
{
	struct fast_class *c = &tc.cls[cls];
	uint64_t gen = atomic_load(&conn_gen);
	int tries;

	if (tc.gen != gen) {
		/* Forked or remapped: these leases are not ours to use. */
		memset(tc.cls, 0, sizeof(tc.cls));
		tc.gen = gen;
	}
	if (!tc.keyed) {
		pthread_once(&key_once, key_init);
		pthread_setspecific(exit_key, &tc);
		tc.keyed = 1;
	}
	for (tries = 0; tries < 3; tries++) {
		if (c->leased && refill(c, cls))
			return pop(c, cls, size);
		lease_drop(c, 1);
		if (lease_take(c, cls) != 0)
			return NULL;	/* the socket path decides */
	}
	return NULL;
}

/*
 * The fast path: two branches (a private block to hand out; caches of this
 * generation) before the pop.  NULL means "ask the daemon".
 */
void *
fast_alloc(size_t size)
{
	uint32_t cls = (uint32_t)slab_class_of(size);
	struct fast_class *c = &tc.cls[cls];

	if (__builtin_expect(c->mask != 0 &&
	    tc.gen == atomic_load_explicit(&conn_gen, memory_order_relaxed),
	    1))
		return pop(c, cls, size);
	return fast_alloc_slow(cls, size);
}

/* Frees a small block that slab_block_lookup() found live. */
int
fast_free(uintptr_t addr, const struct slab_block *b, size_t *req)
{
	struct fast_class *c = &tc.cls[b->cls];
	uint64_t bit = UINT64_C(1) << (b->index % 64);
	uint16_t side;

	(void)addr;
	side = atomic_exchange(&slab_sides(&conn_seg, b->slab)[b->index], 0);
	if (side == 0)
		return -EINVAL;
	*req = slab_class_size[b->cls] - (side - 1u);
	if (c->leased && c->slab == b->slab && c->word == b->index / 64 &&
	    tc.gen == atomic_load_explicit(&conn_gen, memory_order_relaxed)) {
		c->mask |= bit;
		atomic_store_explicit(&rec_of(c)->mask, c->mask,
		    memory_order_release);
		return 0;
	}
	atomic_fetch_and(&slab_bitmap(&conn_seg, b->slab)[b->index / 64],
	    ~bit);
	return 0;
}

/* This thread's private sets and leases go back (thread exit, detach). */
void
fast_flush(void)
{
	uint32_t i;

	if (!conn_mapped || tc.gen != atomic_load(&conn_gen))
		return;
	for (i = 0; i < SHM_NCLASSES; i++)
		lease_drop(&tc.cls[i], 1);
}
