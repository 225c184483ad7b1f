/* SPDX-License-Identifier: MIT */
/*
 * request.c: what aclheapd does for each request, one handler per kind of
 * the table in proto/request.h.
 *
 * request_dispatch() looks the kind up, refuses it if it is privileged and
 * the connection is not, marks the heap dirty if it may change it, and
 * calls its handler.  A handler fills the reply's body, or returns -errno
 * with its own words for the error in err: no other request's words can
 * be chosen for it afterwards.  One that must wait (Checkpoint, Dump)
 * returns REQUEST_LATER and answers from its callback, and its connection
 * reads nothing more meanwhile, so replies leave in request order.
 *
 * Reply bodies live in static storage until the reply is packed: there is
 * one loop and one request at a time.  Alloc and Free have a second way in,
 * request_quick(), for the frames quick_decode() recognises; it answers in
 * quick_encode()'s bytes and must stay as short as it is.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"
#include "proto/request.h"

#define BLOCKS_PAGE	1500
/* A Blocks cursor is slab << 12 | block, so a page can end inside a slab:
 * a slab of 16-byte blocks holds more live blocks than one page. */
#define BLOCKS_CURSOR_SHIFT	12
_Static_assert(SHM_MAX_BLOCKS == 1u << BLOCKS_CURSOR_SHIFT,
    "a Blocks cursor must be able to name every block of a slab");

/* A handler's answer when its reply comes later, from a callback. */
#define REQUEST_LATER	1

typedef int request_fn(struct conn *, const Aclheap__Request *,
    Aclheap__Reply *, char *err, size_t errlen);

#define H(name) \
	static int req_##name(struct conn *, const Aclheap__Request *, \
	    Aclheap__Reply *, char *, size_t);
#define DECLARE(kind, name, flags, retry)	H(name)
REQUEST_KINDS(DECLARE)
#undef DECLARE
#undef H

/* One handler per row of REQUEST_KINDS: a row without one does not build. */
#define HANDLER(kind, name, flags, retry) \
	[ACLHEAP__REQUEST__BODY_##kind] = req_##name,
static request_fn *const handlers[REQUEST_BODY_END] = {
	REQUEST_KINDS(HANDLER)
};
#undef HANDLER

/* The session a Hello takes up again, or a new one (journal.h). */
static void
hello_session(struct conn *c, const Aclheap__Hello *m,
    Aclheap__HelloReply *hr)
{
	static int warned;
	struct heap *heap = server.heap;
	struct shm_session *ss;
	uint32_t idx;
	int resumed;

	if (journal_session_open(heap, c->pid, proc_start(c->pid), m->session,
	    m->nonce, &idx, &resumed) != 0) {
		if (!warned++)
			log_warnx("all %d sessions are taken: pid %d's requests "
			    "are not journaled (a crash may lose them)",
			    SHM_SESSIONS, (int)c->pid);
		return;
	}
	ss = journal_session(heap, idx);
	heap->sessions[idx] = c;
	c->session = idx + 1;
	hr->session = idx + 1;
	hr->nonce = ss->nonce;
	hr->seq = ss->seq;
	if (resumed)
		log_info("pid %d took session %u up again at request %" PRIu64,
		    (int)c->pid, idx, ss->seq);
}

static int
req_hello(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__HelloReply hr;
	const Aclheap__Hello *m = q->hello;
	struct heap *heap = server.heap;
	struct shm_seg *seg = &heap->seg;
	uint32_t n;
	int rc = 0;

	aclheap__hello_reply__init(&hr);
	if (c->hello) {
		snprintf(err, errlen, "Hello sent twice");
		return -EPROTO;
	}
	if (m->version != PROTOCOL_VERSION) {
		snprintf(err, errlen, "client speaks protocol %u, aclheapd "
		    "speaks %u", m->version, PROTOCOL_VERSION);
		c->closing = 1;
		return -EPROTO;
	}
	/* The allow list was checked at accept (server_conn_new()).  The
	 * segment goes read-write, its meta object read-only (shm.h). */
	if ((c->passfd = dup(seg->fd)) == -1 ||
	    (rc = seg_meta_open_ro(seg, heap->identity, &c->passfd2)) != 0) {
		snprintf(err, errlen, "aclheapd cannot pass the heap: %s",
		    rc != 0 ? strerror(-rc) : strerror(errno));
		if (c->passfd >= 0)
			close(c->passfd);
		c->passfd = -1;
		c->closing = 1;
		return -EMFILE;
	}
	/* The reply is the next bytes queued: the descriptor goes with it. */
	c->passfd_at = c->out_len;
	c->hello = 1;
	event_free(c->hev);
	c->hev = NULL;
	c->privileged = c->uid == 0 || c->uid == geteuid();
	if (m->name != NULL && m->name[0] != '\0')
		snprintf(c->name, sizeof(c->name), "%s", m->name);
	n = heap_conn_adopt(heap, c, c->pid);
	if (n > 0)
		log_info("pid %d reconnected with %u leases", (int)c->pid, n);
	hello_session(c, m, &hr);
	hr.version = PROTOCOL_VERSION;
	hr.heap_base = seg->base;
	hr.size = seg->size;
	hr.max_size = seg->max;
	hr.identity.data = heap->identity;
	hr.identity.len = 16;
	hr.layout = SHM_VERSION;
	hr.epoch = atomic_load(&seg->sb->epoch);
	hr.data_start = seg->data;
	hr.privileged = (uint32_t)c->privileged;
	r->body_case = ACLHEAP__REPLY__BODY_HELLO;
	r->hello = &hr;
	log_debug("hello from pid %d (%s), uid %u", (int)c->pid, c->name,
	    (unsigned)c->uid);
	return 0;
}

/* The journal of the request being handled: its session's record when it
 * is done exactly once, else a scratch record (journal.h). */
static struct shm_session *jr;

/* Alloc and Free, for their handlers and for the quick path alike: 0, or
 * -errno with the words for it in err. */
static int
op_alloc(uint64_t size, uint64_t align, uintptr_t *addr, uint64_t *usable,
    char *err, size_t errlen)
{
	return heap_alloc_once(server.heap, jr, size, align, addr, usable,
	    err, errlen);
}

static int
op_free(uint64_t addr, uint64_t *size, char *err, size_t errlen)
{
	return heap_free_once(server.heap, jr, addr, size, err, errlen);
}

static int
req_alloc(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__AllocReply ar;
	uintptr_t addr;
	uint64_t usable;
	int rc;

	(void)c;
	if ((rc = op_alloc(q->alloc->size, q->alloc->alignment, &addr,
	    &usable, err, errlen)) != 0)
		return rc;
	aclheap__alloc_reply__init(&ar);
	ar.addr = addr;
	ar.usable = usable;
	r->body_case = ACLHEAP__REPLY__BODY_ALLOC;
	r->alloc = &ar;
	return 0;
}

static int
req_free(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__FreeReply fr;
	uint64_t v;
	int rc;

	(void)c;
	if ((rc = op_free(q->free->addr, &v, err, errlen)) != 0)
		return rc;
	aclheap__free_reply__init(&fr);
	fr.size = v;
	r->body_case = ACLHEAP__REPLY__BODY_FREE;
	r->free = &fr;
	return 0;
}

static int
req_realloc(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__AllocReply ar;
	uintptr_t addr;
	uint64_t usable;
	int rc;

	(void)c;
	if ((rc = heap_realloc_once(server.heap, jr, q->realloc->addr,
	    q->realloc->size, &addr, &usable, err, errlen)) != 0)
		return rc;
	aclheap__alloc_reply__init(&ar);
	ar.addr = addr;
	ar.usable = usable;
	r->body_case = ACLHEAP__REPLY__BODY_ALLOC;
	r->alloc = &ar;
	return 0;
}

/* The roots' own words for what heap_root_*() return. */
static int
root_error(int rc, char *err, size_t errlen)
{
	switch (rc) {
	case -EINVAL:
		snprintf(err, errlen, "root names are 1 to %d bytes of "
		    "printable ASCII (0x20 to 0x7e)", SHM_ROOT_NAME_MAX);
		break;
	case -ENOENT:
		snprintf(err, errlen, "no such root");
		break;
	case -EAGAIN:
		snprintf(err, errlen, "root holds another value");
		break;
	case -ENOSPC:
		snprintf(err, errlen, "the root table is full (%" PRIu64
		    " roots, the room of a heap of this size)",
		    server.heap->seg.roots_max);
		break;
	case -ENOMEM:
		snprintf(err, errlen, "no memory for the root table's page "
		    "(/dev/shm is full)");
		break;
	}
	return rc;
}

static int
req_root_set(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	(void)c;
	(void)r;
	return root_error(heap_root_set_once(server.heap, jr,
	    q->root_set->name, q->root_set->value), err, errlen);
}

static int
req_root_get(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__Root rt;
	uint64_t v;
	int rc;

	(void)c;
	if ((rc = heap_root_get(server.heap, q->root_get->name, &v)) != 0)
		return root_error(rc, err, errlen);
	aclheap__root__init(&rt);
	rt.name = q->root_get->name;
	rt.value = v;
	r->body_case = ACLHEAP__REPLY__BODY_ROOT;
	r->root = &rt;
	return 0;
}

static int
req_root_cas(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	(void)c;
	(void)r;
	return root_error(heap_root_cas_once(server.heap, jr,
	    q->root_cas->name, q->root_cas->expected, q->root_cas->desired),
	    err, errlen);
}

static int
req_root_remove(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	(void)c;
	(void)r;
	return root_error(heap_root_remove_once(server.heap, jr,
	    q->root_remove->name), err, errlen);
}

/* A page's roots: 200 names of 255 bytes and their values pack to less
 * than FRAME_MAX (aclheap.proto). */
#define ROOT_PAGE	200

/* A prefix or cursor of RootList: "" or what a name may be. */
static int
root_list_arg_ok(const char *s)
{
	return s == NULL || s[0] == '\0' || shm_root_name_ok(s);
}

static int
req_root_list(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__Root roots[ROOT_PAGE], *rootp[ROOT_PAGE];
	static const struct shm_root *page[ROOT_PAGE];
	static Aclheap__RootListReply rl;
	const char *prefix = q->root_list->prefix, *after = q->root_list->after;
	size_t i, n;
	int more;

	(void)c;
	if (!root_list_arg_ok(prefix) || !root_list_arg_ok(after)) {
		snprintf(err, errlen, "a root prefix or cursor is 0 to %d bytes "
		    "of printable ASCII (0x20 to 0x7e)", SHM_ROOT_NAME_MAX);
		return -EINVAL;
	}
	n = heap_root_page(server.heap, prefix != NULL ? prefix : "",
	    after != NULL ? after : "", page, ROOT_PAGE, &more);
	for (i = 0; i < n; i++) {
		aclheap__root__init(&roots[i]);
		roots[i].name = (char *)page[i]->name;
		roots[i].value = atomic_load(&page[i]->value);
		rootp[i] = &roots[i];
	}
	aclheap__root_list_reply__init(&rl);
	rl.n_roots = n;
	rl.roots = rootp;
	rl.more = more;
	r->body_case = ACLHEAP__REPLY__BODY_ROOTS;
	r->roots = &rl;
	return 0;
}

static int
req_stats(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__StatsReply sr;

	(void)c;
	(void)q;
	(void)err;
	(void)errlen;
	aclheap__stats_reply__init(&sr);
	stats_fill(&sr);
	r->body_case = ACLHEAP__REPLY__BODY_STATS;
	r->stats = &sr;
	return 0;
}

/* A checkpoint or a dump is done: its waiter's reply, then the requests
 * that came after it. */
static void
ckpt_done(void *arg, const struct ckpt_result *res)
{
	struct conn *c = arg;
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	Aclheap__CheckpointReply cr = ACLHEAP__CHECKPOINT_REPLY__INIT;
	Aclheap__DumpReply dr = ACLHEAP__DUMP_REPLY__INIT;
	char path[4096], sfx[32] = "";

	r.id = c->wait_id;
	if (res->error != 0) {
		r.error = res->error;
		r.message = (char *)res->message;
	} else if (res->fd >= 0) {
		if ((c->passfd = dup(res->fd)) == -1) {
			r.error = EMFILE;
			r.message = "aclheapd is out of descriptors";
		} else {
			c->passfd_at = c->out_len;
			dr.bytes = res->bytes;
			dr.generation = res->generation;
			r.body_case = ACLHEAP__REPLY__BODY_DUMP;
			r.dump = &dr;
		}
	} else {
		/* The file it wrote: the base or the delta. */
		if (res->seq != 0)
			snprintf(sfx, sizeof(sfx), ".delta.%u", res->seq);
		image_path(server.cfg, path, sizeof(path), sfx);
		cr.path = path;
		cr.bytes = res->bytes;
		cr.duration_us = res->duration_us;
		cr.generation = res->generation;
		cr.kind = (char *)ckpt_kind_name(res->kind);
		cr.reason = (char *)res->why;
		cr.slabs = res->slabs;
		r.body_case = ACLHEAP__REPLY__BODY_CHECKPOINT;
		r.checkpoint = &cr;
	}
	c->waiting = 0;
	conn_reply(c, &r);
	conn_resume(c);
}

static int
ckpt_wait(struct conn *c, const Aclheap__Request *q, int dump, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = ckpt_request(dump, ckpt_done, c)) != 0) {
		snprintf(err, errlen, "cannot start: %s", strerror(-rc));
		return rc;
	}
	c->waiting = 1;
	c->wait_id = q->id;
	return REQUEST_LATER;
}

static int
req_checkpoint(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	(void)r;
	if (q->checkpoint->full)
		ckpt_want_full();
	return ckpt_wait(c, q, 0, err, errlen);
}

static int
req_grow(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__GrowReply gr;
	struct heap *h = server.heap;
	uint64_t old = h->seg.size;
	int rc;

	if ((rc = heap_resize(h, q->grow->size, err, errlen)) != 0)
		return rc;
	if (h->seg.size != old)
		log_notice("pid %d: heap %s from %" PRIu64 " to %" PRIu64
		    " bytes (%" PRIu64 " slabs, maximum %" PRIu64 ")",
		    (int)c->pid, h->seg.size > old ? "grown" : "shrunk", old,
		    h->seg.size, h->seg.nslabs, h->seg.max);
	aclheap__grow_reply__init(&gr);
	gr.size = h->seg.size;
	gr.old_size = old;
	gr.max_size = h->seg.max;
	gr.slabs = h->seg.nslabs;
	r->body_case = ACLHEAP__REPLY__BODY_GROW;
	r->grow = &gr;
	return 0;
}

static int
req_dump(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	(void)r;
	return ckpt_wait(c, q, 1, err, errlen);
}

static int
req_verify(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__VerifyReply vr;
	struct shm_report rep;
	int rc;

	(void)c;
	(void)q;
	if ((rc = shm_check(&server.heap->seg, &rep, err, errlen)) != 0)
		return rc;
	aclheap__verify_reply__init(&vr);
	vr.blocks_live = rep.blocks_live;
	vr.blocks_orphaned = rep.blocks_orphaned;
	vr.slabs_small = rep.slabs_small;
	vr.slabs_large = rep.slabs_large;
	vr.slabs_free = rep.slabs_free;
	r->body_case = ACLHEAP__REPLY__BODY_VERIFY;
	r->verify = &vr;
	return 0;
}

static int
req_read(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static uint8_t rbuf[READ_MAX];
	static Aclheap__ReadReply rr;
	struct shm_seg *seg = &server.heap->seg;
	uint64_t v = q->read->addr;
	uint32_t len = q->read->len;
	int rc;

	(void)c;
	if (len > READ_MAX || v < seg->base ||
	    v - seg->base >= seg_extent(seg) ||
	    len > seg_extent(seg) - (v - seg->base)) {
		snprintf(err, errlen, "0x%" PRIx64 "+%u is not inside the heap "
		    "0x%" PRIxPTR "-0x%" PRIxPTR " (or over %u bytes)", v, len,
		    seg->base, (uintptr_t)(seg->base + seg_extent(seg)),
		    READ_MAX);
		return -ERANGE;
	}
	/* Through the descriptor, not the mapping: a page nobody committed
	 * reads as zeros instead of being allocated, which on a full
	 * /dev/shm would be SIGBUS here. */
	if ((rc = seg_pread(seg, rbuf, len, v - seg->base)) != 0) {
		snprintf(err, errlen, "reading the heap: %s", strerror(-rc));
		return -EIO;
	}
	aclheap__read_reply__init(&rr);
	rr.data.data = rbuf;
	rr.data.len = len;
	r->body_case = ACLHEAP__REPLY__BODY_READ;
	r->read = &rr;
	return 0;
}

/* Adds the live block at a to the page when it is in [lo, hi). */
static size_t
block_add(Aclheap__Block *blk, Aclheap__Block **blkp, size_t n,
    const struct shm_seg *seg, uintptr_t a, uint64_t lo, uint64_t hi)
{
	struct slab_block b;

	if (a < lo || a >= hi || slab_block_lookup(seg, a, &b) != 0)
		return n;
	aclheap__block__init(&blk[n]);
	blk[n].addr = a;
	blk[n].req = b.req;
	blk[n].usable = b.usable;
	blkp[n] = &blk[n];
	return n + 1;
}

static int
req_blocks(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__Block blk[BLOCKS_PAGE], *blkp[BLOCKS_PAGE];
	static Aclheap__BlocksReply br;
	const Aclheap__Blocks *m = q->blocks;
	struct shm_seg *seg = &server.heap->seg;
	uint64_t s, hi = m->hi ? m->hi : UINT64_MAX;
	uint64_t w;
	uint32_t cls, i = 0, first;
	size_t n = 0;
	int full = 0;

	(void)c;
	(void)err;
	(void)errlen;
	first = (uint32_t)(m->cursor & (SHM_MAX_BLOCKS - 1));
	for (s = m->cursor >> BLOCKS_CURSOR_SHIFT; s < seg->nslabs;
	    s++, first = 0) {
		w = atomic_load(&seg->slabs[s].word);
		if (n + SHM_MAX_BLOCKS > BLOCKS_PAGE && n > 0)
			break;
		if (SHM_SLAB_STATE(w) == SHM_LARGE_HEAD) {
			if (m->cls == -1 || m->cls == -2)
				n = block_add(blk, blkp, n, seg,
				    slab_addr(seg, s), m->lo, hi);
			continue;
		}
		if (SHM_SLAB_STATE(w) != SHM_SMALL)
			continue;
		cls = SHM_SLAB_CLS(w);
		/* Clients can write the slab table: never index by it
		 * unchecked. */
		if (cls >= SHM_NCLASSES || m->cls == -2 ||
		    (m->cls >= 0 && (uint32_t)m->cls != cls))
			continue;
		for (i = first; i < slab_ready(seg, s, cls); i++) {
			if (n == BLOCKS_PAGE) {
				full = 1;
				break;
			}
			n = block_add(blk, blkp, n, seg, slab_addr(seg, s) +
			    (uintptr_t)i * slab_class_size[cls], m->lo, hi);
		}
		if (full)
			break;
	}
	aclheap__blocks_reply__init(&br);
	br.n_blocks = n;
	br.blocks = blkp;
	/* Never 0 while blocks remain: a full page has passed block 0. */
	if (full)
		br.next = s << BLOCKS_CURSOR_SHIFT | i;
	else
		br.next = s < seg->nslabs ? s << BLOCKS_CURSOR_SHIFT : 0;
	r->body_case = ACLHEAP__REPLY__BODY_BLOCKS;
	r->blocks = &br;
	return 0;
}

static int
req_clients(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__ClientInfo *ci[1024];
	static Aclheap__ClientInfo cis[1024];
	static Aclheap__ClientsReply cr;
	struct conn *o;
	size_t n = 0;

	(void)c;
	(void)q;
	(void)err;
	(void)errlen;
	/* 700 entries of at most ~80 bytes stay under the frame cap. */
	TAILQ_FOREACH(o, &conns, link) {
		if (n == 700)
			break;
		aclheap__client_info__init(&cis[n]);
		cis[n].pid = (uint32_t)o->pid;
		cis[n].uid = (uint32_t)o->uid;
		cis[n].gid = (uint32_t)o->gid;
		cis[n].name = o->name;
		cis[n].leases = heap_conn_leases(server.heap, o);
		cis[n].requests = o->requests;
		cis[n].since = (uint64_t)o->since;
		ci[n] = &cis[n];
		n++;
	}
	aclheap__clients_reply__init(&cr);
	cr.n_clients = n;
	cr.clients = ci;
	cr.total = (uint32_t)conn_count();
	r->body_case = ACLHEAP__REPLY__BODY_CLIENTS;
	r->clients = &cr;
	return 0;
}

static int
req_lease(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	static Aclheap__LeaseReply lr;
	const Aclheap__LeaseSlab *m = q->lease;
	uint64_t slab;
	uint32_t rec;
	int rc;

	rc = heap_lease_once(server.heap, jr, c, c->pid, m->cls, m->renew,
	    m->want, &slab, &rec);
	switch (rc) {
	case 0:
		break;
	case -EBUSY:
		snprintf(err, errlen, "the lease table is full (%u leases "
		    "held); small blocks go through aclheapd until one is "
		    "released", server.heap->seg.nleases);
		return rc;
	case -EINVAL:
		snprintf(err, errlen, "no lease of class %u to renew for this "
		    "connection", m->cls);
		return rc;
	case -EMFILE:
		snprintf(err, errlen, "aclheapd is out of descriptors");
		return rc;
	case -EAGAIN:
		snprintf(err, errlen, "the slab's owner is claiming in it; ask "
		    "again");
		return rc;
	default:
		snprintf(err, errlen, "no slab to lease for class %u", m->cls);
		return rc;
	}
	aclheap__lease_reply__init(&lr);
	lr.slab = slab;
	lr.record = rec;
	r->body_case = ACLHEAP__REPLY__BODY_LEASE;
	r->lease = &lr;
	return 0;
}

static int
req_release(struct conn *c, const Aclheap__Request *q, Aclheap__Reply *r,
    char *err, size_t errlen)
{
	uint32_t rec = q->release->record;

	(void)r;
	if (rec >= seg_lease_hwm(&server.heap->seg) ||
	    server.heap->owners[rec].conn != c) {
		snprintf(err, errlen, "lease %u is not yours", rec);
		return -EINVAL;
	}
	return heap_release_once(server.heap, jr, rec);
}

/*
 * A root name that holds a NUL byte: protobuf-c hands the string over cut
 * at the NUL, which would set a shorter name than was sent.  The cut shows
 * as a request that packs to fewer bytes than arrived (our clients pack
 * exactly what protobuf-c packs, so an honest request always matches).
 */
static int
root_name_cut(const Aclheap__Request *q, uint32_t len)
{
	if (q->body_case < ACLHEAP__REQUEST__BODY_ROOT_SET ||
	    q->body_case > ACLHEAP__REQUEST__BODY_ROOT_LIST)
		return 0;
	return protobuf_c_message_get_packed_size(&q->base) != len;
}

/* The answer recorded in a session's journal, as a reply. */
static void
journal_reply(const struct shm_session *ss, Aclheap__Reply *r)
{
	static Aclheap__AllocReply ar;
	static Aclheap__FreeReply fr;
	static Aclheap__LeaseReply lr;
	static char text[SHM_SESSION_TEXT];

	if (ss->error != 0) {
		r->error = ss->error;
		memcpy(text, ss->text, sizeof(text));
		text[sizeof(text) - 1] = '\0';
		r->message = text;
		return;
	}
	switch (ss->kind) {
	case ACLHEAP__REQUEST__BODY_ALLOC:
	case ACLHEAP__REQUEST__BODY_REALLOC:
		aclheap__alloc_reply__init(&ar);
		ar.addr = ss->res[0];
		ar.usable = ss->res[1];
		r->body_case = ACLHEAP__REPLY__BODY_ALLOC;
		r->alloc = &ar;
		break;
	case ACLHEAP__REQUEST__BODY_FREE:
		aclheap__free_reply__init(&fr);
		fr.size = ss->res[0];
		r->body_case = ACLHEAP__REPLY__BODY_FREE;
		r->free = &fr;
		break;
	case ACLHEAP__REQUEST__BODY_LEASE:
		aclheap__lease_reply__init(&lr);
		lr.slab = ss->res[0];
		lr.record = (uint32_t)ss->res[1];
		r->body_case = ACLHEAP__REPLY__BODY_LEASE;
		r->lease = &lr;
		break;
	}
}

/* What a reply says, into the journal: the answer to give again. */
static void
journal_record(struct shm_session *ss, int rc, const Aclheap__Reply *r,
    const char *err)
{
	uint64_t r0 = 0, r1 = 0;

	if (rc == 0 && r->body_case == ACLHEAP__REPLY__BODY_ALLOC) {
		r0 = r->alloc->addr;
		r1 = r->alloc->usable;
	} else if (rc == 0 && r->body_case == ACLHEAP__REPLY__BODY_FREE)
		r0 = r->free->size;
	else if (rc == 0 && r->body_case == ACLHEAP__REPLY__BODY_LEASE) {
		r0 = r->lease->slab;
		r1 = r->lease->record;
	}
	journal_done(ss, -rc, r0, r1, rc != 0 ? err : NULL);
}

/*
 * Where a changing request's journal goes: the connection's session when
 * the request has a seq, else scratch.  1 when the request is the one the
 * session answered last: r then holds that answer, and nothing is done.
 * -EPROTO for a seq behind the session's.
 */
static int
journal_for(struct conn *c, const Aclheap__Request *q,
    struct shm_session *scratch, Aclheap__Reply *r, char *err, size_t errlen)
{
	struct shm_session *ss;

	memset(scratch, 0, sizeof(*scratch));
	jr = scratch;
	if (q->seq == 0 || c->session == 0 ||
	    (ss = journal_session(server.heap, c->session - 1)) == NULL)
		return 0;
	if (q->seq == ss->seq && atomic_load(&ss->state) == SESSION_DONE &&
	    ss->kind == (uint32_t)q->body_case) {
		journal_reply(ss, r);
		log_info("pid %d: %s %" PRIu64 " answered again", (int)c->pid,
		    frame_body_name(q), q->seq);
		return 1;
	}
	if (q->seq < ss->seq || (q->seq == ss->seq &&
	    atomic_load(&ss->state) != SESSION_IDLE)) {
		snprintf(err, errlen, "seq %" PRIu64 " is behind this session's "
		    "%" PRIu64, q->seq, ss->seq);
		return -EPROTO;
	}
	journal_open(ss, q->seq, (uint32_t)q->body_case);
	jr = ss;
	return 0;
}

/*
 * One decoded request of len bytes: its kind's handler, then its reply.
 * Everything the reply points to lives until conn_reply() has packed it.
 * A changing request with a seq is done once in its session: its answer
 * is recorded before it leaves, and given again to the same seq.
 */
void
request_dispatch(struct conn *c, const Aclheap__Request *q, uint32_t len)
{
	static Aclheap__Empty ok = ACLHEAP__EMPTY__INIT;
	const struct request_kind *k = request_kind((int)q->body_case);
	Aclheap__Reply r = ACLHEAP__REPLY__INIT;
	struct shm_session scratch;
	char err[512];
	int rc, once = 0;

	if (root_name_cut(q, len)) {
		conn_error(c, q->id, EINVAL, "a root name must not hold a NUL "
		    "byte");
		return;
	}
	c->requests++;
	if (!c->hello && q->body_case != ACLHEAP__REQUEST__BODY_HELLO) {
		conn_error(c, q->id, EPROTO, "the first request must be Hello");
		c->closing = 1;
		return;
	}
	err[0] = '\0';
	r.id = q->id;
	if (k == NULL) {
		rc = -EOPNOTSUPP;
		snprintf(err, sizeof(err), "unknown request");
	} else if ((k->flags & REQUEST_PRIVILEGED) && !c->privileged) {
		rc = -EPERM;
		snprintf(err, sizeof(err), "%s is only for aclheapd's user and "
		    "root", k->name);
	} else if ((k->flags & REQUEST_CHANGES) && (rc = journal_for(c, q,
	    &scratch, &r, err, sizeof(err))) != 0) {
		if (rc == 1) {
			conn_reply(c, &r);
			return;
		}
	} else {
		if (k->flags & REQUEST_CHANGES) {
			server.heap->dirty = 1;
			once = jr != &scratch;
			journal_count(k->name);
		}
		rc = handlers[q->body_case](c, q, &r, err, sizeof(err));
	}
	if (rc == REQUEST_LATER)
		return;
	if (rc != 0 && err[0] == '\0')
		snprintf(err, sizeof(err), "%s", strerror(-rc));
	if (once) {
		journal_record(jr, rc, &r, err);
		journal_crash(k->name, -1);
	}
	jr = NULL;	/* scratch lived in this frame */
	if (rc != 0) {
		r.body_case = ACLHEAP__REPLY__BODY__NOT_SET;
		r.error = -rc;
		r.message = err;
		/* Every refusal, for whoever debugs a client. */
		log_debug("pid %d: refused %s: %s", (int)c->pid,
		    frame_body_name(q), err);
	} else if (r.body_case == ACLHEAP__REPLY__BODY__NOT_SET) {
		r.body_case = ACLHEAP__REPLY__BODY_OK;
		r.ok = &ok;
	}
	conn_reply(c, &r);
}

/*
 * An Alloc or Free that quick_decode() recognised, answered in the bytes
 * quick_encode() writes; a refusal goes out as request_dispatch() words
 * it.  Only after Hello: everything before it takes the general way.
 */
void
request_quick(struct conn *c, const struct quick_req *q)
{
	char err[128];
	uintptr_t addr = 0;
	uint64_t v, usable = 0;
	uint8_t *p;
	size_t n;
	int rc;
	struct shm_session scratch = { 0 };

	c->requests++;
	server.heap->dirty = 1;
	jr = &scratch;
	journal_count(q->body == ACLHEAP__REQUEST__BODY_ALLOC ? "alloc" :
	    "free");
	if (q->body == ACLHEAP__REQUEST__BODY_ALLOC)
		rc = op_alloc(q->a, q->b, &addr, &usable, err, sizeof(err));
	else
		rc = op_free(q->a, &v, err, sizeof(err));
	jr = NULL;
	if (rc != 0) {
		log_debug("pid %d: refused %s: %s", (int)c->pid,
		    q->body == ACLHEAP__REQUEST__BODY_ALLOC ? "alloc" : "free",
		    err);
		conn_error(c, q->id, -rc, "%s", err);
		return;
	}
	if (conn_reserve(c, FRAME_HDR + QUICK_MAX) != 0) {
		c->closing = 1;
		return;
	}
	p = c->out + c->out_len;
	n = q->body == ACLHEAP__REQUEST__BODY_ALLOC ?
	    quick_encode(p + FRAME_HDR, ACLHEAP__REPLY__BODY_ALLOC, q->id,
	    addr, usable) :
	    quick_encode(p + FRAME_HDR, ACLHEAP__REPLY__BODY_FREE, q->id, v, 0);
	frame_put_len(p, (uint32_t)n);
	c->out_len += n + FRAME_HDR;
}
