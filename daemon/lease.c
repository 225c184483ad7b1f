/* SPDX-License-Identifier: MIT */
/*
 * lease.c: slabs leased to clients' fast paths, and the records in the
 * segment that let a crash give their private blocks back.
 *
 * A lease record (struct shm_lease) names its owner by pid and start time
 * (proc.c) and the slab it claims in.  h->owners[rec] is the connection
 * that holds record rec, NULL while the record is free or orphaned (its
 * owner's connection is gone but the owner may live: it gets the record
 * back at its next Hello, or heap_reap_leases() returns it once the owner
 * is dead).  Only the daemon writes a record's owner fields, so
 *
 *   owners[rec].conn != NULL  =>  leases[rec].owner_pid != 0
 *
 * which heap_reap_leases() asserts in debug builds.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"

static int
lease_owner_alive(const struct shm_lease *l)
{
	uint64_t start;

	if (l->owner_pid == 0)
		return 0;
	start = proc_start((pid_t)l->owner_pid);
	if (start == PROC_UNKNOWN)
		return 1;	/* ask again later */
	return start != 0 && start == l->owner_start;
}

/* Clears the lease mark a record put on its slab's word. */
static void
lease_unmark(struct heap *h, uint32_t rec)
{
	struct shm_seg *seg = &h->seg;
	uint32_t s = seg->leases[rec].slab;
	uint64_t w;

	if (s >= seg->nslabs)
		return;
	w = atomic_load(&seg->slabs[s].word);
	if (SHM_SLAB_STATE(w) == SHM_SMALL && SHM_SLAB_LEASE(w) == rec + 1)
		atomic_store(&seg->slabs[s].word, SHM_SLAB_LEASED(w, 0));
}

/* The slabs record rec had as its own are the daemon's again: it is going
 * (its owner is gone or giving it back, so claims nothing), and may come
 * back for another class or another thread. */
static void
affinity_clear(struct heap *h, uint32_t rec)
{
	struct shm_seg *seg = &h->seg;
	uint32_t cls = seg->leases[rec].cls, i, t;

	if (cls >= SHM_NCLASSES)
		return;
	for (i = 0; i < h->class_n[cls]; i++) {
		t = h->class_slabs[cls][i];
		if (slab_affinity(seg, t) == rec + 1)
			slab_affinity_set(seg, t, 0);
	}
}

/*
 * Returns what a lease record holds privately (claimed, never handed out)
 * to the pool, clears the slab's lease mark and frees the record.  Only for
 * records whose owner is gone or has handed them back.  An owner that died
 * in a claim had announced it and recorded every bit it was taking before
 * taking it, and nobody else claims in its slab: of those, the ones set
 * are exactly what it took (shm/shm.h), returned like the rest.
 *
 * In a slab the record (or nobody) owns, nobody claims a bit we clear
 * before the record forgets it, so a crash in between only has the next
 * start-up clear it again.  In a slab that changed owner, the new owner
 * could, and clearing it again would take it out of its private set: so
 * there the record forgets first (a crash in between leaks the bits).
 * Not covered: start-up releases a dead record at once unless /proc
 * cannot say whether its owner lives; if that delays the second release
 * and the slab changes owner meanwhile, the bits the crash cleared could
 * be claimed and then cleared again.
 */
int
heap_lease_release(struct heap *h, uint32_t rec)
{
	struct shm_seg *seg = &h->seg;
	struct shm_lease *l;
	uint64_t mask, bit;
	uint64_t w;
	uint32_t word, set, owner, cls;
	uintptr_t sd;

	if (rec >= seg_lease_hwm(seg) || seg->leases[rec].owner_pid == 0)
		return -EINVAL;
	l = &seg->leases[rec];
	set = atomic_load(&l->set_slab);
	word = atomic_load(&l->word);
	mask = atomic_load(&l->mask);
	if (set < seg->nslabs && word < SHM_BITMAP_WORDS &&
	    SHM_SLAB_STATE(w = atomic_load(&seg->slabs[set].word)) ==
	    SHM_SMALL && (cls = SHM_SLAB_CLS(w)) < SHM_NCLASSES) {
		owner = SHM_SLAB_OWNER(w);
		if (owner != 0 && owner != rec + 1)
			atomic_store(&l->mask, 0);
		sd = slab_side_base(seg, set, cls);
		/* Bits past the ready blocks were never claimed. */
		mask &= slab_word_first(slab_ready(seg, set, cls), word);
		while (mask != 0) {
			bit = mask & -mask;
			mask &= mask - 1;
			/* Never a block its owner handed out. */
			if (slab_side_load(sd, cls, word * 64 +
			    (uint32_t)__builtin_ctzll(bit)) == 0)
				atomic_fetch_and(&slab_bitmap(seg, set)[word],
				    ~bit);
		}
	}
	atomic_store(&l->mask, 0);
	atomic_store(&l->pending, 0);
	lease_unmark(h, rec);
	affinity_clear(h, rec);
	atomic_store(&l->set_slab, 0);
	l->slab = 0;
	l->owner_start = 0;
	l->owner_pid = 0;
	h->owners[rec].conn = NULL;
	if (rec < h->lease_hint)
		h->lease_hint = rec;
	return 0;
}

/*
 * At a start, after the slab table is rebuilt: leases of processes that
 * are gone give back their private sets; those of live ones stay until
 * the owner reconnects or dies.  Then every slab's affinity must name a
 * live record of the slab's class (a crash can cut affinity_clear()
 * short).
 */
void
lease_rebuild(struct heap *h)
{
	struct shm_seg *seg = &h->seg;
	uint32_t i, n, kept;

	for (i = 0, n = 0, kept = 0; i < seg_lease_hwm(seg); i++) {
		if (seg->leases[i].owner_pid == 0)
			continue;
		if (!lease_owner_alive(&seg->leases[i])) {
			if (heap_lease_release(h, i) == 0)
				n++;
		} else
			kept++;
	}
	if (n > 0 || kept > 0)
		log_info("leases: returned %u of processes that are gone, kept "
		    "%u of live ones", n, kept);
	for (i = 0; i < SHM_NCLASSES; i++)
		for (n = 0; n < h->class_n[i]; n++) {
			uint32_t a = slab_affinity(seg, h->class_slabs[i][n]);

			if (a != 0 && (a > seg_lease_hwm(seg) ||
			    seg->leases[a - 1].owner_pid == 0 ||
			    seg->leases[a - 1].cls != i))
				slab_affinity_set(seg,
				    h->class_slabs[i][n], 0);
		}
}

/*
 * A free lease record for a new lease: the lowest one below the high-water
 * mark that nobody holds (a record a thread gave back at its exit serves
 * the next thread, so the records in use stay dense at the bottom of the
 * region), else the one at the mark, whose page is committed before the
 * mark rises past it: clients write their records, and an uncommitted page
 * on a full /dev/shm would be a SIGBUS in the client, not an error here.
 * -EBUSY when all nleases are held (the heap has no slab left for another
 * lease anyway: a lease holds a slab of its own).
 */
static int
lease_record_free(struct heap *h, uint32_t *recp)
{
	struct shm_seg *seg = &h->seg;
	uint32_t hwm = seg_lease_hwm(seg), rec;
	int rc;

	for (rec = h->lease_hint < hwm ? h->lease_hint : hwm; rec < hwm; rec++)
		if (seg->leases[rec].owner_pid == 0) {
			*recp = h->lease_hint = rec;
			return 0;
		}
	if (hwm >= seg->nleases)
		return -EBUSY;
	if ((rc = seg_commit_leases(seg, hwm, hwm + 1)) != 0)
		return rc;
	atomic_store(&seg->sb->lease_hwm, hwm + 1);
	*recp = h->lease_hint = hwm;
	return 0;
}

/* Slabs of the class a lease plan looks at for one with room. */
#define PLAN_LOOK	256

/* How soon a lease asking again counts as allocating fast. */
#define PACE_NS		UINT64_C(1000000)
#define PACE_MAX	(SHM_SLAB_SIZE / SHM_PAGE)

/*
 * How many pages the blocks made ready for record rec take (slow start):
 * one when it asks seldom, twice the last when it asks again within
 * PACE_NS, up to a whole slab.  A thread filling memory fast makes a
 * round trip per slab, as if slabs were ready whole; one whose classes
 * grow now and then keeps a page or two committed beyond its blocks.
 */
static uint32_t
lease_pace(struct heap *h, uint32_t rec)
{
	struct lease_owner *o = &h->owners[rec];
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (o->pace != 0 && now - o->paced_ns < PACE_NS)
		o->pace = o->pace < PACE_MAX / 2 ? o->pace * 2 : PACE_MAX;
	else
		o->pace = 1;
	o->paced_ns = now;
	return o->pace;
}

/*
 * Leases a slab of cls to a client: the slab it wants (want: slab + 1) if
 * that is an unleased slab of the class that no other live lease has as
 * its own, else a partly used unleased slab of the class, else a fresh
 * slab.  The lease record in the segment is
 * where the client keeps its private set, so a crash can give it back.
 * renew (record + 1) moves a lease the connection holds to a new slab
 * instead of taking a new record: one round trip when a slab is full.
 */
static int
lease_plan(struct heap *h, struct conn *c, pid_t pid, uint32_t cls,
    uint32_t renew, uint32_t want, uint64_t *slab, uint32_t *recp,
    uint64_t *startp)
{
	struct shm_seg *seg = &h->seg;
	uint64_t w;
	uint32_t rec, i, k, n, best_free = 0, f, pages;
	uint64_t start = 0;
	int64_t s = -1;
	int pass, rc;

	if (cls >= SHM_NCLASSES)
		return -EINVAL;
	if (renew != 0) {
		rec = renew - 1;
		if (rec >= seg_lease_hwm(seg) || h->owners[rec].conn != c ||
		    seg->leases[rec].cls != cls)
			return -EINVAL;
		start = seg->leases[rec].owner_start;
	} else {
		/* Without the owner's start time the lease could not be
		 * told from one of a later process with the same pid. */
		if ((start = proc_start(pid)) == PROC_UNKNOWN)
			return -EMFILE;
		if ((rc = lease_record_free(h, &rec)) != 0)
			return rc;
		h->owners[rec].pace = 0;	/* a new thread's pace */
	}
	pages = lease_pace(h, rec);
	/* The unleased slab of the class with the most room, if it has at
	 * least a quarter of its blocks free and no other live lease has it
	 * as its own (affinity); then a fresh slab; then, with no fresh slab
	 * left, any unleased slab with room.  Never one whose owner is
	 * claiming in it: it could not be moved (slab_owner_move()). */
	if (want != 0 && want <= seg->nslabs && h->cur[cls] != want) {
		w = atomic_load(&seg->slabs[want - 1].word);
		if (SHM_SLAB_STATE(w) == SHM_SMALL && SHM_SLAB_CLS(w) == cls &&
		    SHM_SLAB_LEASE(w) == 0 &&
		    !slab_affine_other(seg, want - 1, rec) &&
		    heap_slab_has_room(h, want - 1, cls))
			s = want - 1;
	}
	for (pass = 0; pass < 2 && s < 0; pass++) {
		/* At most PLAN_LOOK slabs a lease, from where the last look
		 * stopped (every one when no fresh slab is left): a lease
		 * costs the same in a class of a million slabs. */
		n = h->class_n[cls];
		if (pass == 0 && n > PLAN_LOOK)
			n = PLAN_LOOK;
		for (k = 0; k < n; k++) {
			uint32_t t;

			i = h->plan_pos[cls]++ % h->class_n[cls];
			t = h->class_slabs[cls][i];

			w = atomic_load(&seg->slabs[t].word);
			if (SHM_SLAB_LEASE(w) != 0 || h->cur[cls] == t + 1 ||
			    (pass == 0 && slab_affine_other(seg, t, rec)) ||
			    slab_announced(seg, t, SHM_SLAB_OWNER(w)))
				continue;
			f = slab_ready(seg, t, cls) -
			    slab_claimed_ready(seg, t, cls);
			if ((pass == 1 || f * 4 >= slab_class_nblocks[cls]) &&
			    f > best_free) {
				best_free = f;
				s = t;
			}
		}
		/* Before a fresh slab, more of a slab not yet ready whole:
		 * the one this lease is full in, or one nobody owns. */
		if (pass == 0 && s < 0 && (s = heap_extend_class(h, cls,
		    rec + 1, pages)) == -1)
			s = heap_slab_new(h, cls, pages);
	}
	if (s < 0)
		return (int)s;
	*slab = (uint64_t)s;
	*recp = rec;
	*startp = start;
	return 0;
}

/*
 * The plan's stores (arg: record, slab, class, renew, pid, start), each
 * idempotent: the slab becomes the record's own (step 1), then the record
 * and the slab's lease mark say so (step 2).  -EAGAIN when the slab's
 * owner is claiming in it this very moment (then the client asks again,
 * or uses the socket); then nothing was done.
 */
static int
lease_apply(struct heap *h, struct shm_session *ss)
{
	struct shm_seg *seg = &h->seg;
	uint32_t rec = (uint32_t)ss->arg[0];
	uint64_t s = ss->arg[1];
	struct shm_lease *l = &seg->leases[rec];

	if (slab_owner_move(seg, s, rec + 1) != 0)
		return -EAGAIN;
	journal_step(ss, 1);
	if (ss->arg[3] != 0)
		lease_unmark(h, rec);
	else {
		l->cls = (uint8_t)ss->arg[2];
		l->owner_start = ss->arg[5];
		atomic_store(&l->word, 0);
		atomic_store(&l->mask, 0);
		atomic_store(&l->pending, 0);
		atomic_store(&l->set_slab, (uint32_t)s);
		l->owner_pid = (uint32_t)ss->arg[4];
	}
	l->slab = (uint32_t)s;
	atomic_store(&seg->slabs[s].word,
	    SHM_SLAB_LEASED(atomic_load(&seg->slabs[s].word), rec + 1));
	journal_step(ss, 2);
	h->dirty = 1;
	return 0;
}

int
heap_lease_once(struct heap *h, struct shm_session *ss, struct conn *c,
    pid_t pid, uint32_t cls, uint32_t renew, uint32_t want, uint64_t *slab,
    uint32_t *recp)
{
	uint64_t arg[6], start = 0;
	int rc;

	if ((rc = lease_plan(h, c, pid, cls, renew, want, slab, recp,
	    &start)) != 0)
		return rc;
	arg[0] = *recp;
	arg[1] = *slab;
	arg[2] = cls;
	arg[3] = renew;
	arg[4] = (uint64_t)pid;
	arg[5] = start;
	journal_begin(ss, "lease", ACLHEAP__REQUEST__BODY_LEASE, arg, NULL);
	if ((rc = lease_apply(h, ss)) != 0)
		return rc;
	if (renew == 0)
		h->owners[*recp].conn = c;
	return 0;
}

int
heap_lease(struct heap *h, struct conn *c, pid_t pid, uint32_t cls,
    uint32_t renew, uint32_t want, uint64_t *slab, uint32_t *recp)
{
	struct shm_session ss = { 0 };

	return heap_lease_once(h, &ss, c, pid, cls, renew, want, slab, recp);
}

/* After a crash: the grant again (its owner takes it up at Hello), or,
 * if the slab cannot be had, the record as it was: nobody was told. */
int
heap_redo_lease(struct heap *h, struct shm_session *ss)
{
	struct shm_seg *seg = &h->seg;
	uint32_t rec = (uint32_t)ss->arg[0];
	uint64_t w;
	uint64_t s = ss->arg[1], st;
	struct shm_lease *l;

	if (rec >= seg_lease_hwm(seg) || s >= seg->nslabs ||
	    ss->arg[2] >= SHM_NCLASSES)
		return -1;
	l = &seg->leases[rec];
	/* Its process died while we were down (the rebuild gave back what
	 * it held), or a renewed record is no longer its: nobody is to be
	 * told, so the grant is undone, the slab left to nobody. */
	st = proc_start((pid_t)ss->arg[4]);
	if ((st != PROC_UNKNOWN && st != ss->arg[5]) || (ss->arg[3] != 0 &&
	    (l->owner_pid != (uint32_t)ss->arg[4] ||
	    l->owner_start != ss->arg[5]))) {
		w = atomic_load(&seg->slabs[s].word);
		if (SHM_SLAB_STATE(w) == SHM_SMALL) {
			if (SHM_SLAB_LEASE(w) == rec + 1)
				w = SHM_SLAB_LEASED(w, 0);
			if (SHM_SLAB_OWNER(w) == rec + 1)
				w = SHM_SLAB_OWNED(w, 0);
			atomic_store(&seg->slabs[s].word, w);
		}
		if (ss->arg[3] == 0 && l->owner_pid == (uint32_t)ss->arg[4])
			(void)heap_lease_release(h, rec);
		return 1;
	}
	if (lease_apply(h, ss) != 0) {
		if (ss->arg[3] == 0 && l->owner_pid == (uint32_t)ss->arg[4])
			(void)heap_lease_release(h, rec);
		return 1;
	}
	journal_done(ss, 0, ss->arg[1], rec, NULL);
	return 0;
}

/* Release: the record goes back (arg[0]); done again, it finds it gone. */
int
heap_release_once(struct heap *h, struct shm_session *ss, uint32_t rec)
{
	uint64_t arg[6] = { rec, 0, 0, 0, 0, 0 };
	int rc;

	journal_begin(ss, "release", ACLHEAP__REQUEST__BODY_RELEASE, arg,
	    NULL);
	rc = heap_lease_release(h, rec);
	journal_step(ss, 1);
	return rc;
}

int
heap_redo_release(struct heap *h, struct shm_session *ss)
{
	uint32_t rec = (uint32_t)ss->arg[0];

	if (rec >= seg_lease_hwm(&h->seg))
		return -1;
	if (h->seg.leases[rec].owner_pid != 0)
		(void)heap_lease_release(h, rec);
	journal_done(ss, 0, 0, 0, NULL);
	return 0;
}

/*
 * A connection is gone.  Its leases go back only if the process is gone
 * too: a live process (the daemon closed on it, or it detached) may still
 * hand out its private sets, so those leases wait, orphaned, until it says
 * Hello again or heap_reap_leases() sees it dead.
 */
void
heap_conn_gone(struct heap *h, struct conn *c)
{
	uint32_t i;

	for (i = 0; i < seg_lease_hwm(&h->seg); i++) {
		if (h->owners[i].conn != c)
			continue;
		h->owners[i].conn = NULL;
		if (!lease_owner_alive(&h->seg.leases[i]))
			heap_lease_release(h, i);
	}
}

/* Leases kept for a process that never came back to claim them (it did
 * not need the socket again before it died) go back once it is gone. */
uint32_t
heap_reap_leases(struct heap *h)
{
	uint32_t i, n = 0;

	for (i = 0; i < seg_lease_hwm(&h->seg); i++) {
		assert(h->owners[i].conn == NULL ||
		    h->seg.leases[i].owner_pid != 0);
		if (h->seg.leases[i].owner_pid == 0 || h->owners[i].conn != NULL)
			continue;
		if (!lease_owner_alive(&h->seg.leases[i]) &&
		    heap_lease_release(h, i) == 0)
			n++;
	}
	return n;
}

/* Leases a restarted daemon kept for a live process come back to it. */
uint32_t
heap_conn_adopt(struct heap *h, struct conn *c, pid_t pid)
{
	uint64_t start = proc_start(pid);
	uint32_t i, n = 0;

	for (i = 0; i < seg_lease_hwm(&h->seg); i++) {
		/* Same pid and same start: the same process, not a reuse. */
		if (h->seg.leases[i].owner_pid == (uint32_t)pid &&
		    h->seg.leases[i].owner_start == start &&
		    h->owners[i].conn == NULL) {
			h->owners[i].conn = c;
			n++;
		}
	}
	return n;
}

uint32_t
heap_conn_leases(const struct heap *h, const struct conn *c)
{
	uint32_t i, n = 0;

	for (i = 0; i < seg_lease_hwm(&h->seg); i++)
		if (h->owners[i].conn == c)
			n++;
	return n;
}
