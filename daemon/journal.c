/* SPDX-License-Identifier: MIT */
/*
 * journal.c: sessions, their journals, and the crash points that test
 * them (the argument is in journal.h).
 */
#include "config.h"

#include <sys/random.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"

/* Every crash point, kind by kind: KIND:0 .. KIND:steps-1, then KIND:done.
 * The numbers are the sub-steps the heap's code counts (heap_*_redo()). */
const struct journal_point journal_points[] = {
	{ "alloc", 2 },		/* planned; made */
	{ "free", 5 },		/* planned; gated; taken; cleared; ungated */
	{ "realloc", 7 },	/* planned; gated; new block; copied; taken;
				 * cleared; ungated */
	{ "root_set", 2 },	/* planned; written (or counted) */
	{ "root_cas", 4 },	/* planned; uncounted; moved; cleared */
	{ "root_remove", 4 },
	{ "lease", 3 },		/* planned; the slab moved; recorded */
	{ "release", 2 },
	{ NULL, 0 },
};

_Static_assert(SESSION_INTENT == SHM_SESSION_INTENT &&
    ACLHEAP__REQUEST__BODY_FREE == SHM_KIND_FREE &&
    ACLHEAP__REQUEST__BODY_REALLOC == SHM_KIND_REALLOC,
    "shm_check() reads sessions with the journal's numbers");

static char crash_kind[32];
static const char *cur_kind = "";	/* of the plan being applied */
static int crash_step = -2;	/* -2: no crash point; -1: "done" */
static unsigned long crash_nth = 1;

/* `aclheapd --crash-points`: every point, KIND:STEP a line. */
void
journal_list_points(FILE *f)
{
	const struct journal_point *p;
	int i;

	for (p = journal_points; p->kind != NULL; p++) {
		for (i = 0; i < p->steps; i++)
			fprintf(f, "%s:%d\n", p->kind, i);
		fprintf(f, "%s:done\n", p->kind);
	}
}

/* Reads ACLHEAPD_CRASH_AT once: tests only (journal.h). */
void
journal_init(void)
{
	const char *v = getenv("ACLHEAPD_CRASH_AT");
	char step[16] = "";
	int n;

	if (v == NULL || v[0] == '\0')
		return;
	n = sscanf(v, "%31[a-z_]:%15[a-z0-9]:%lu", crash_kind, step,
	    &crash_nth);
	if (n < 2) {
		log_warnx("ACLHEAPD_CRASH_AT=%s is not KIND:STEP[:N]; ignored",
		    v);
		return;
	}
	crash_step = strcmp(step, "done") == 0 ? -1 : atoi(step);
	log_warnx("test crash point armed: %s:%s, request %lu of the kind",
	    crash_kind, step, crash_nth);
}

static unsigned long crash_seen;	/* requests of crash_kind so far */

/* A request of kind begins: counted, for ACLHEAPD_CRASH_AT's N. */
void
journal_count(const char *kind)
{
	cur_kind = kind;
	if (crash_step != -2 && strcmp(kind, crash_kind) == 0)
		crash_seen++;
}

/* Dies at step (-1: done) of the current request of kind, if armed. */
void
journal_crash(const char *kind, int step)
{
	if (crash_step == -2 || strcmp(kind, crash_kind) != 0)
		return;
	if (crash_seen == crash_nth && step == crash_step)
		raise(SIGKILL);
}

struct shm_session *
journal_session(struct heap *h, uint32_t idx)
{
	if (idx >= SHM_SESSIONS)
		return NULL;
	return &h->seg.sessions[idx];
}

/*
 * A session for a client at Hello: the one want names (idx + 1) if its
 * token and process match, else a new one.  0 with *idx, *resumed; -ENOSPC
 * when every record is taken.
 */
int
journal_session_open(struct heap *h, pid_t pid, uint64_t start,
    uint32_t want, uint64_t nonce, uint32_t *idx, int *resumed)
{
	struct shm_session *ss;
	uint32_t i;

	*resumed = 0;
	if (want != 0 && want <= SHM_SESSIONS) {
		ss = &h->seg.sessions[want - 1];
		if (atomic_load(&ss->state) != SESSION_FREE &&
		    h->sessions[want - 1] == NULL && ss->pid == (uint32_t)pid &&
		    (ss->start == start || start == PROC_UNKNOWN) &&
		    ss->nonce == nonce && nonce != 0) {
			*idx = want - 1;
			*resumed = 1;
			return 0;
		}
	}
	for (i = 0; i < SHM_SESSIONS; i++)
		if (atomic_load(&h->seg.sessions[i].state) == SESSION_FREE)
			break;
	if (i == SHM_SESSIONS && journal_reap(h) > 0)
		for (i = 0; i < SHM_SESSIONS; i++)
			if (atomic_load(&h->seg.sessions[i].state) ==
			    SESSION_FREE)
				break;
	if (i == SHM_SESSIONS)
		return -ENOSPC;
	ss = &h->seg.sessions[i];
	memset((char *)ss + sizeof(ss->state), 0,
	    sizeof(*ss) - sizeof(ss->state));
	ss->pid = (uint32_t)pid;
	ss->start = start;
	while (ss->nonce == 0)
		if (getrandom(&ss->nonce, sizeof(ss->nonce), 0) !=
		    sizeof(ss->nonce))
			ss->nonce = (uint64_t)pid << 32 ^ start ^ i;
	atomic_store(&ss->state, SESSION_IDLE);
	*idx = i;
	return 0;
}

/* Its process closed the connection (or the daemon closed on it): the
 * process will not send this session's requests again. */
void
journal_session_close(struct heap *h, uint32_t idx)
{
	if (idx < SHM_SESSIONS)
		atomic_store(&h->seg.sessions[idx].state, SESSION_FREE);
}

/* Frees the sessions of processes that are gone; how many. */
uint32_t
journal_reap(struct heap *h)
{
	struct shm_session *ss;
	uint64_t st;
	uint32_t i, n = 0;

	for (i = 0; i < SHM_SESSIONS; i++) {
		ss = &h->seg.sessions[i];
		if (atomic_load(&ss->state) == SESSION_FREE ||
		    h->sessions[i] != NULL)
			continue;
		st = proc_start((pid_t)ss->pid);
		if (st == PROC_UNKNOWN || (st != 0 && st == ss->start))
			continue;
		atomic_store(&ss->state, SESSION_FREE);
		n++;
	}
	return n;
}

/* The plan of request seq is recorded: from here on it is done once. */
void
journal_begin(struct shm_session *ss, const char *kind, uint32_t body,
    const uint64_t arg[6], const char *text)
{
	ss->kind = body;
	memcpy(ss->arg, arg, sizeof(ss->arg));
	if (text != NULL)
		snprintf(ss->text, sizeof(ss->text), "%s", text);
	else
		ss->text[0] = '\0';
	atomic_store(&ss->step, 0);
	atomic_store(&ss->state, SESSION_INTENT);
	journal_crash(kind, 0);
}

/* Sub-step `step` of the plan is done (1-based). */
void
journal_step(struct shm_session *ss, uint32_t step)
{
	atomic_store(&ss->step, step);
	journal_crash(cur_kind, (int)step);
}

/* A new request seq in the session: nothing to answer again until its
 * outcome is recorded. */
void
journal_open(struct shm_session *ss, uint64_t seq, uint32_t body)
{
	atomic_store(&ss->state, SESSION_IDLE);
	ss->seq = seq;
	/* The kind and a blank outcome now: a request refused before its
	 * plan is recorded answers as itself. */
	ss->kind = body;
	ss->error = 0;
	ss->res[0] = ss->res[1] = 0;
}

/* Finishes (0) or undoes (1) the plan a crash cut short; -1 unreadable. */
static int
heap_redo(struct heap *h, struct shm_session *ss)
{
	switch (ss->kind) {
	case ACLHEAP__REQUEST__BODY_ALLOC:
		return heap_redo_alloc(h, ss);
	case ACLHEAP__REQUEST__BODY_FREE:
		return heap_redo_free(h, ss);
	case ACLHEAP__REQUEST__BODY_REALLOC:
		return heap_redo_realloc(h, ss);
	case ACLHEAP__REQUEST__BODY_ROOT_SET:
	case ACLHEAP__REQUEST__BODY_ROOT_CAS:
	case ACLHEAP__REQUEST__BODY_ROOT_REMOVE:
		return heap_redo_root(h, ss);
	case ACLHEAP__REQUEST__BODY_LEASE:
		return heap_redo_lease(h, ss);
	case ACLHEAP__REQUEST__BODY_RELEASE:
		return heap_redo_release(h, ss);
	default:
		return -1;
	}
}

/* The outcome, to answer the same seq with again. */
void
journal_done(struct shm_session *ss, int err, uint64_t r0, uint64_t r1,
    const char *text)
{
	ss->error = err;
	ss->res[0] = r0;
	ss->res[1] = r1;
	/* Only an error's words: a success leaves the plan's text alone, for
	 * until DONE is stored a crash has start-up redo the plan, and a
	 * root's create reads its name there.  No plan that uses the text
	 * fails once it is recorded. */
	if (err != 0)
		snprintf(ss->text, sizeof(ss->text), "%s", text != NULL ?
		    text : "");
	atomic_store(&ss->state, SESSION_DONE);
}

/* The plan was undone: the same seq, sent again, is done anew. */
void
journal_idle(struct shm_session *ss)
{
	atomic_store(&ss->state, SESSION_IDLE);
}

/*
 * Start-up on an adopted segment, after heap_rebuild(): finishes or undoes
 * every plan a crash left.  Sessions of processes that are gone go too.
 * 0, or -EUCLEAN with the words in err when a journal cannot be read.
 */
int
journal_recover(struct heap *h, char *err, size_t errlen)
{
	struct shm_session *ss;
	uint32_t i, st, done = 0, undone = 0;
	int rc;

	(void)err;	/* nothing here refuses a start: a bad plan is undone */
	(void)errlen;
	for (i = 0; i < SHM_SESSIONS; i++) {
		ss = &h->seg.sessions[i];
		st = atomic_load(&ss->state);
		if (st > SESSION_DONE) {
			log_warnx("session %u is in state %u: dropped", i, st);
			atomic_store(&ss->state, SESSION_FREE);
			continue;
		}
		if (st != SESSION_INTENT)
			continue;
		if ((rc = heap_redo(h, ss)) < 0) {
			/* Written by someone else than the daemon: its plan
			 * names nothing it could have made. */
			log_warnx("session %u: the plan of request %" PRIu64
			    " (kind %u) does not hold; undone", i, ss->seq,
			    ss->kind);
			rc = 1;
		}
		if (rc == 0)
			done++;
		else {
			journal_idle(ss);
			undone++;
		}
		h->dirty = 1;
	}
	if (done + undone > 0)
		log_info("journal: finished %u request%s a crash cut short, "
		    "undid %u", done, done == 1 ? "" : "s", undone);
	(void)journal_reap(h);
	return 0;
}
