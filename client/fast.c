/* SPDX-License-Identifier: MIT */
/*
 * fast.c: allocations up to SHM_CLASS_MAX without the daemon.
 *
 * Each thread keeps, per size class, a lease on one slab and a private set:
 * the free blocks of one bitmap word that it claimed at once (shm/slab.c,
 * slab_claim_word).  An allocation pops a bit off the private set and
 * writes the block's side entry: no system call, no lock, no atomic
 * read-modify-write.  A free takes the side entry with one atomic
 * exchange; a block of the thread's current word goes back to its private
 * set, any other has its bit cleared.  The word a thread last freed into
 * is its hot word: a free that lands there again is recognised by address
 * alone (fast_free_hot()), without the slab table, so a thread that frees
 * what it just allocated pays about what malloc's thread cache does.
 *
 * The private set is mirrored in the thread's lease record in the segment
 * (stores to a cache line the daemon writes only when it grants or takes
 * back the lease), so when the process dies the daemon gives the set
 * back.  Only a slab's owner claims in it,
 * announcing each claim in its record and recording its bits before it
 * takes them (shm/shm.h), so a crash in the middle of one leaks nothing.
 * Ordering that makes this hold: the daemon returns only listed bits
 * whose side entry is 0, and an allocation unlists its block before it
 * writes the side entry (a kill in between orphans that one block);
 * record slab and word before the announcement.
 *
 * Caches die with conn_gen: fork() (the child must not hand out its
 * parent's blocks) and a remap of the segment (the new object knows nothing
 * of our claims).  Why claims are safe against the daemon reclaiming the
 * slab meanwhile is argued in shm/shm.h.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"

/*
 * A thread's state (cache, error text, reply arena) is allocated at its
 * first slow-path allocation or request; until then (and after the
 * thread's exit handler) fast_tcp points at this empty one, whose masks
 * and hot word make every fast path go the general way and whose error
 * text is "".  It is const: nothing may write it, and a write would fault
 * rather than be shared by every thread.  Only the pointer is
 * thread-local, so the library's static TLS stays small enough for
 * dlopen().
 */
const struct fast_cache fast_empty;
_Thread_local struct fast_cache *fast_tcp FAST_TLS =
    (struct fast_cache *)&fast_empty;
#define tc fast_tc
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void
thread_exit(void *arg)
{
	struct fast_cache *t = arg;

	if (fast_tcp == t) {
		fast_flush();
		fast_tcp = (struct fast_cache *)&fast_empty;
	}
	free(t);
}

static int key_ok;

static void
key_init(void)
{
	key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
}

/* This thread's cache, allocated at its first use; NULL when there is no
 * memory for it. */
struct fast_cache *
fast_thread(void)
{
	struct fast_cache *t;

	if (fast_tcp != &fast_empty)
		return fast_tcp;
	/* Without the key the state could not be given back at exit. */
	pthread_once(&key_once, key_init);
	if (!key_ok || (t = calloc(1, sizeof(*t) + FAST_REPLY_BYTES)) == NULL)
		return NULL;
	if (pthread_setspecific(exit_key, t) != 0) {
		free(t);
		return NULL;
	}
	t->gen = atomic_load(&conn_gen);
	fast_tcp = t;
	return t;
}

#define rec_of	fast_rec
#define pop	fast_pop

/* c's current word stops being the hot word (it changes, or goes). */
static inline void
hot_drop(uint32_t cls)
{
	if (tc.hot.cls == cls)
		tc.hot.span = 0;
}

/* The hot word becomes c's current word. */
void
fast_hot_set(struct fast_class *c, uint32_t cls)
{
	struct fast_hot *h = &tc.hot;

	/* The word's ready blocks: a free past them is looked up in full
	 * (and refused), never read where memory may be a hole. */
	h->span = (uint64_t)(64 - __builtin_clzll(slab_word_first(
	    slab_ready(&conn_seg, c->slab, cls), c->word))) *
	    slab_class_size[cls];
	h->magic = slab_class_magic[cls];
	h->cls = cls;
	h->size = slab_class_size[cls];
}

/* Gives back what the private set holds and the lease itself. */
static void
lease_drop(struct fast_class *c, int tell_daemon)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__ReleaseSlab m = ACLHEAP__RELEASE_SLAB__INIT;
	Aclheap__Reply *r;
	uint32_t cls = (uint32_t)(c - tc.cls);
	int owned;

	if (!c->leased)
		return;
	if (c->mask != 0) {
		/* While the slab is ours and we say we are working in it,
		 * nobody else can claim there, so the bits can go before the
		 * record forgets them: if we die in between, the daemon
		 * clears bits nobody has taken since.  If it is no longer
		 * ours, the record forgets first: dying in between leaks
		 * them, and never lets them be handed out twice. */
		owned = slab_claim_begin(&conn_seg, c->slab, cls, c->rec) == 0;
		if (!owned)
			atomic_store(&rec_of(c)->mask, 0);
		atomic_fetch_and(&slab_bitmap(&conn_seg, c->slab)[c->word],
		    ~c->mask);
		if (slab_claim_hook != NULL)
			slab_claim_hook(SLAB_HOOK_DROP);
		atomic_store(&rec_of(c)->mask, 0);
		if (owned)
			slab_claim_end(&conn_seg, c->rec);
		c->mask = 0;
	}
	hot_drop(cls);
	if (tell_daemon) {
		m.record = c->rec;
		q.body_case = ACLHEAP__REQUEST__BODY_RELEASE;
		q.release = &m;
		/* Never wait for an absent daemon here (thread exit): the
		 * reaper returns the lease when the process goes. */
		(void)conn_call(&q, ACLHEAP__REPLY__BODY_OK, &r, CONN_NOWAIT);
	}
	memset(c, 0, sizeof(*c));
}

/* Asks for a slab of cls: a new lease, or (renew) ours moved to another
 * slab, slab want - 1 if the daemon agrees.  Afterwards c->slab is the
 * leased slab and no word is current. */
static int
lease_take(struct fast_class *c, uint32_t cls, int renew, uint32_t want)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__LeaseSlab m = ACLHEAP__LEASE_SLAB__INIT;
	Aclheap__Reply *r;
	int rc;

	m.cls = cls;
	m.renew = renew ? c->rec + 1 : 0;
	m.want = want;
	q.body_case = ACLHEAP__REQUEST__BODY_LEASE;
	q.lease = &m;
	if ((rc = conn_call(&q, ACLHEAP__REPLY__BODY_LEASE, &r, 0)) != 0)
		return rc;
	if (r->lease->slab >= conn_seg.nslabs ||
	    r->lease->record >= conn_seg.nleases)
		return -EPROTO;
	c->slab = (uint32_t)r->lease->slab;
	c->rec = r->lease->record;
	c->hist[c->nhist++ % FAST_HIST] = c->slab;
	hot_drop(cls);
	c->word = UINT32_MAX;
	c->mask = 0;
	c->leased = 1;
	return 0;
}

/* The first word of slab s, from w0 on, with a free block of cls (a bit
 * clear among the ready ones); the number of ready words when there is
 * none. */
static uint32_t
word_with_room(uint32_t cls, uint32_t s, uint32_t w0)
{
	_Atomic uint64_t *bm = slab_bitmap(&conn_seg, s);
	uint32_t ready = slab_ready(&conn_seg, s, cls), nw = (ready + 63) / 64;
	uint32_t w;
	uint64_t valid;

	for (w = w0; w < nw; w++) {
		valid = slab_word_first(ready, w);
		if ((atomic_load_explicit(&bm[w], memory_order_relaxed) &
		    valid) != valid)
			break;
	}
	return w;
}

/*
 * Claims the first word of slab s, from word w0 on, that has free blocks;
 * it becomes the private set.  1 on success, 0 when no word from w0 on has
 * any or the slab is no longer ours, -1 when it is no longer of class cls.
 * The record names the slab and announces the claim before we look at the
 * slab, and lists the bits before we take them (shm/shm.h), so a crash
 * anywhere in between leaves the daemon knowing exactly what was ours.
 */
static int
claim_in(struct fast_class *c, uint32_t cls, uint32_t s, uint32_t w0)
{
	uint32_t nw = (slab_ready(&conn_seg, s, cls) + 63) / 64, w;
	struct shm_lease *l = rec_of(c);
	uint64_t got = 0;
	int rc;

	if ((w = word_with_room(cls, s, w0)) >= nw)
		return 0;
	atomic_store_explicit(&l->set_slab, s, memory_order_relaxed);
	atomic_store_explicit(&l->word, w, memory_order_relaxed);
	if ((rc = slab_claim_begin(&conn_seg, s, cls, c->rec)) != 0)
		goto none;
	if (slab_claim_hook != NULL)
		slab_claim_hook(SLAB_HOOK_ANNOUNCED);
	for (; w < nw; w = word_with_room(cls, s, w + 1)) {
		atomic_store_explicit(&l->word, w, memory_order_relaxed);
		if ((got = slab_claim_word(&conn_seg, s, cls, w,
		    &l->mask)) != 0)
			break;
	}
	if (got != 0 && slab_claim_hook != NULL)
		slab_claim_hook(SLAB_HOOK_TAKEN);
	slab_claim_end(&conn_seg, c->rec);
	if (got == 0)
		goto none;
	hot_drop(cls);
	c->slab = s;
	c->word = w;
	c->base = slab_addr(&conn_seg, s) +
	    (uintptr_t)w * 64 * slab_class_size[cls];
	c->sides = slab_side_base(&conn_seg, s, cls) +
	    (uintptr_t)w * 64 * (cls < SHM_NSMALL ? 2 : 4);
	c->recmask = &l->mask;
	c->mask = got;
	return 1;
none:
	/* The record goes back to naming the current word: frees into it
	 * keep the mirrored mask true (the daemon returns those bits from
	 * the slab and word the record names). */
	atomic_store_explicit(&l->set_slab, c->slab, memory_order_relaxed);
	atomic_store_explicit(&l->word, c->word, memory_order_relaxed);
	atomic_store_explicit(&l->mask, c->mask, memory_order_release);
	return rc == -ESTALE ? -1 : 0;
}

/* Whether slab s holds blocks of cls that no other live lease has as its
 * own (a leased slab is its lessee's own). */
static int
slab_adoptable(const struct fast_class *c, uint32_t cls, uint32_t s)
{
	uint64_t w;
	uint32_t owner;

	w = atomic_load_explicit(&conn_seg.slabs[s].word, memory_order_relaxed);
	owner = SHM_SLAB_OWNER(w);
	return SHM_SLAB_STATE(w) == SHM_SMALL && SHM_SLAB_CLS(w) == cls &&
	    (owner == 0 || owner == c->rec + 1);
}

/* Whether slab s's affinity names our lease record. */
static int
slab_ours(const struct fast_class *c, uint32_t s)
{
	return SHM_SLAB_OWNER(atomic_load_explicit(&conn_seg.slabs[s].word,
	    memory_order_relaxed)) == c->rec + 1;
}

/* Whether some word of slab s has a free block of cls (what claim_in()
 * looks for), so that adopting it is worth a round trip. */
static int
slab_has_room(uint32_t cls, uint32_t s)
{
	return word_with_room(cls, s, 0) <
	    (slab_ready(&conn_seg, s, cls) + 63u) / 64;
}

/*
 * Looks through the slab table, from this class's cursor, for another slab
 * of the class with free blocks that nobody else leases: blocks freed by
 * anyone are reused without asking the daemon.  Bounded, so a heap whose
 * slabs of this class are all full costs one scan, then a lease.
 */
static int
scan_class(struct fast_class *c, uint32_t cls)
{
	uint32_t i, k, s, n, nh, limit, adopted = 0;

	/* Nothing above the high-water mark has ever been in use. */
	n = (uint32_t)atomic_load_explicit(&conn_seg.sb->slab_hwm,
	    memory_order_relaxed);
	if (n > conn_seg.nslabs)
		n = (uint32_t)conn_seg.nslabs;
	limit = n < 4096 ? n : 4096;

	/* First the slabs this thread was leased: blocks it freed there
	 * come back to it, and two threads stay out of each other's cache
	 * lines (as a thread's blocks return to its own arena in malloc).
	 * They are visited in turn, from the one after the slab claimed in
	 * last, and the current slab is searched only past its current word
	 * (claim_in() does not wrap around): a word is claimed again only
	 * after the others were, when it has gathered the most frees, so
	 * claims are fewer and bring more blocks.  A slab whose affinity is
	 * no longer ours (emptied, reclaimed, made again) is left to the
	 * scan below, which adopts it properly. */
	nh = c->nhist < FAST_HIST ? c->nhist : FAST_HIST;
	for (i = 0; i < nh; i++) {
		k = (c->hpos + i) % nh;
		s = c->hist[k];
		if (s < n && slab_ours(c, s) && claim_in(c, cls, s, 0) > 0) {
			c->hpos = k + 1;
			return 1;
		}
	}
	for (i = 0; i < limit; i++) {
		s = c->cursor++;
		if (c->cursor >= n)
			c->cursor = 0;
		if (s >= n || s == c->slab || !slab_adoptable(c, cls, s) ||
		    !slab_has_room(cls, s))
			continue;
		/* A slab nobody has as its own becomes ours before we claim
		 * in it (one round trip): only a slab's owner claims there.
		 * At most two adoptions a scan: past that, the caller's
		 * lease is as good. */
		if (!slab_ours(c, s)) {
			if (adopted++ == 2 || lease_take(c, cls, 1, s + 1) != 0)
				return 0;
			s = c->slab;
		}
		if (claim_in(c, cls, s, 0) > 0)
			return 1;
	}
	return 0;
}

/* Everything but popping a private block: a new generation, refilling
 * from the current slab, from other slabs of the class, from a new lease.
 * NULL sends the caller to the socket path, which decides (and reports)
 * what is possible. */
static void *alloc_refill(uint32_t, size_t);

/* Small allocations the fast path could not serve, sent to the socket
 * instead: what tests measure the fast path's share by.  Counted here,
 * off the fast path. */
_Atomic uint64_t fast_socket_allocs;

__attribute__((noinline)) void *
fast_alloc_slow(uint32_t cls, size_t size)
{
	void *p;

	if ((p = alloc_refill(cls, size)) == NULL)
		atomic_fetch_add_explicit(&fast_socket_allocs, 1,
		    memory_order_relaxed);
	return p;
}

static void *
alloc_refill(uint32_t cls, size_t size)
{
	struct fast_class *c;
	uint64_t gen;
	int tries;

	/* Without memory for the thread's state nothing can be asked of the
	 * daemon either; the caller's request reports ENOMEM. */
	if (!conn_mapped || fast_thread() == NULL)
		return NULL;
	gen = atomic_load(&conn_gen);
	if (tc.gen != gen) {
		/* Forked or remapped: these leases are not ours to use. */
		memset(tc.cls, 0, sizeof(tc.cls));
		tc.hot.span = 0;
		tc.gen = gen;
	}
	c = &tc.cls[cls];
	if (c->mask != 0)
		return pop(c, cls, size);
	if (!c->leased && lease_take(c, cls, 0, 0) != 0)
		return NULL;
	for (tries = 0; tries < 3; tries++) {
		if (claim_in(c, cls, c->slab, c->word + 1) > 0 ||
		    scan_class(c, cls) > 0)
			return pop(c, cls, size);
		if (lease_take(c, cls, 1, 0) != 0)
			return NULL;
	}
	return NULL;
}

/* This thread's private sets and leases go back (thread exit, detach). */
void
fast_flush(void)
{
	uint32_t i;

	/* Each time: giving a lease back can reconnect to a daemon that
	 * replaced the segment, and then the rest are not ours to touch. */
	for (i = 0; i < SHM_NCLASSES; i++) {
		if (!conn_mapped || tc.gen != atomic_load(&conn_gen))
			return;
		lease_drop(&tc.cls[i], 1);
	}
}
