/* SPDX-License-Identifier: MIT */
/*
 * journal.h: sessions, and requests done exactly once across daemon crashes.
 *
 * Theory of operation
 * -------------------
 * A client process says Hello and gets a session: a record in the segment
 * (struct shm_session, SHM_SESSIONS of them) that only the daemon writes,
 * named to the client by its number and a random token.  The record lives
 * as long as the process does, not as long as one connection: after the
 * daemon dies and comes back, the process says Hello with the token and
 * has its session again (only the same pid with the same start time may).
 *
 * Each request that changes the heap carries a sequence number, larger
 * than the session's last.  The session records the journal of the last
 * one, in three states:
 *
 *   IDLE    nothing to answer again: the recorded seq (its kind set by
 *           journal_open()) or a larger one is done as new
 *   INTENT  the plan is recorded (arg[], text): what the request will do,
 *           decided before the first store that changes the heap, with
 *           step counting the sub-steps done since
 *   DONE    the outcome is recorded (error, res[], text): the answer
 *
 * The daemon records INTENT, applies the plan one sub-step at a time
 * (each one idempotent: done twice, it does what it does once), records
 * DONE and only then answers.  The same seq again finds DONE and gets the
 * recorded answer, without doing anything; a smaller one is refused.
 *
 * Why this is exactly once.  The daemon is one thread, and what a plan
 * depends on is written only by the daemon (roots, the slab table, the
 * bits of slabs it owns, free slabs) or is closed to others for the
 * request's duration (a block being freed keeps its bit set until DONE is
 * recorded, so nobody can take it again; a slab a client owns is taken
 * from it first: journal.c, free_gated()).  So between INTENT and DONE
 * nothing but the plan changes what it touches, and a daemon killed at
 * any instruction leaves one of:
 *
 *   - no INTENT: the request had no effect; sent again, it is simply
 *     done then (it takes effect once, at the resend);
 *   - INTENT with step k: start-up (journal_recover(), after the heap's
 *     derived state is rebuilt and before any request is read) does the
 *     plan's sub-steps from k on, or undoes the plan where it cannot have
 *     been seen (a lease nobody was told of), and records DONE or IDLE;
 *   - DONE: the answer is there for the resend.
 *
 * An error is an outcome like any other: a Free refused as "not a live
 * block" is recorded, so that a resend after another client allocated
 * there cannot free the new block.  A success's DONE leaves the plan's
 * text alone (a root's create reads its name there until DONE).
 *
 * Start-up trusts no plan it reads back: one naming a slab, class or
 * block that cannot be, or a slab no longer of its class, is undone and
 * logged; a lease whose process died while the daemon was down is undone
 * (the rebuild gave its record back).  A client that finds, after a
 * reconnect to the same segment, that its session is gone fails the
 * request in flight with ECONNRESET rather than risk doing it twice.
 *
 * Limits.  One journaled request in flight per session (the library
 * sends one at a time per process).  A heap loaded from an image starts
 * with no sessions: its processes are gone with the machine, and a client
 * that survived a lost segment is told its session is new, so it sends its
 * request again as a new one against the reloaded heap.  Without a free
 * record (more than SHM_SESSIONS processes) a connection has no session
 * and its requests are not journaled, as for a peer without seq.
 *
 * Test-only crash points: with ACLHEAPD_CRASH_AT=KIND:STEP[:N] in its
 * environment the daemon kills itself with SIGKILL at that step of the
 * N-th (default first) request of that kind; `aclheapd --crash-points`
 * lists every point there is.
 */
#ifndef ACLHEAP_JOURNAL_H
#define ACLHEAP_JOURNAL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/shm.h"

enum {
	SESSION_FREE = 0,
	SESSION_IDLE = 1,
	SESSION_INTENT = 2,
	SESSION_DONE = 3,
};

/* Crash points of one request kind: "alloc:0" is right after INTENT, then
 * one point after each sub-step, and KIND:done after DONE, before the
 * answer leaves. */
struct journal_point {
	const char *kind;
	int steps;		/* points 0 .. steps-1, then "done" */
};
extern const struct journal_point journal_points[];

struct heap;

void	 journal_init(void);
void	 journal_list_points(FILE *);
void	 journal_count(const char *kind);
void	 journal_crash(const char *kind, int step);
int	 journal_session_open(struct heap *, pid_t, uint64_t start,
	    uint32_t want, uint64_t nonce, uint32_t *idx, int *resumed);
void	 journal_session_close(struct heap *, uint32_t idx);
uint32_t journal_reap(struct heap *);
struct shm_session *journal_session(struct heap *, uint32_t idx);
void	 journal_begin(struct shm_session *, const char *kind, uint32_t body,
	    const uint64_t arg[6], const char *text);
void	 journal_open(struct shm_session *, uint64_t seq, uint32_t body);
void	 journal_step(struct shm_session *, uint32_t step);
void	 journal_done(struct shm_session *, int err, uint64_t r0,
	    uint64_t r1, const char *text);
void	 journal_idle(struct shm_session *);
int	 journal_recover(struct heap *, char *err, size_t errlen);

/* The requests, as plans in a session's journal (alloc.c, roots.c,
 * lease.c); without a journal they are given a scratch record. */
struct conn;
int	 heap_alloc_once(struct heap *, struct shm_session *, uint64_t size,
	    uint64_t align, uintptr_t *addr, uint64_t *usable, char *err,
	    size_t errlen);
int	 heap_free_once(struct heap *, struct shm_session *, uintptr_t addr,
	    uint64_t *req, char *err, size_t errlen);
int	 heap_realloc_once(struct heap *, struct shm_session *, uintptr_t,
	    uint64_t size, uintptr_t *out, uint64_t *usable, char *err,
	    size_t errlen);
int	 heap_root_set_once(struct heap *, struct shm_session *, const char *,
	    uint64_t);
int	 heap_root_cas_once(struct heap *, struct shm_session *, const char *,
	    uint64_t expected, uint64_t desired);
int	 heap_root_remove_once(struct heap *, struct shm_session *,
	    const char *);
int	 heap_lease_once(struct heap *, struct shm_session *, struct conn *,
	    pid_t, uint32_t cls, uint32_t renew, uint32_t want, uint64_t *slab,
	    uint32_t *rec);
int	 heap_release_once(struct heap *, struct shm_session *, uint32_t rec);
/* After a crash: 0 finished (DONE recorded), 1 undone, -1 unreadable. */
int	 heap_redo_alloc(struct heap *, struct shm_session *);
int	 heap_redo_free(struct heap *, struct shm_session *);
int	 heap_redo_realloc(struct heap *, struct shm_session *);
int	 heap_redo_root(struct heap *, struct shm_session *);
int	 heap_redo_lease(struct heap *, struct shm_session *);
int	 heap_redo_release(struct heap *, struct shm_session *);

#endif /* ACLHEAP_JOURNAL_H */
