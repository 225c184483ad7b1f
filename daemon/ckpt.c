/* SPDX-License-Identifier: MIT */
/*
 * ckpt.c: checkpoints (the heap written to the chain STATE/heap.img,
 * heap.img.delta.1, ...), dumps (one whole image in an unlinked file handed to
 * aclheapctl) and loading the chain at start-up.
 *
 * A checkpoint has two halves.  On the event loop, in one step: copy the
 * metadata (superblock, roots, lease records, slab table), freeze the slab
 * table (heap->frozen: no slab changes state until the end) and choose what
 * to write.  On a thread: hash and write, then fsync, rename, fsync the
 * folder.  The loop keeps serving meanwhile; blocks that clients change
 * during the copy are captured block by block.
 *
 * Clients write data straight into shared memory, so the daemon finds out
 * what changed by hashing: it keeps, per slab, the hash of what the chain
 * holds for it.  A delta checkpoint hashes every slab in use (XXH3, far
 * faster than the disk) and writes the metadata and the slabs whose hash
 * moved to heap.img.delta.K; nothing at all when neither did.  A full one
 * writes every slab in use to a new heap.img (a new base) and removes the
 * deltas: the first checkpoint after the daemon adopted a live segment
 * (the hashes are not known then), and whenever the deltas grew past half
 * the base or to 64 files (IMAGE_CHAIN_MAX).  Each image is checked as a
 * reader would check it before it is renamed into place; one that would
 * not verify never replaces a good one.
 *
 * Requests queue: whoever asks while a checkpoint runs is answered by the
 * next one, which starts after theirs, so its image holds their writes.
 *
 * Loading the chain at start-up is ckpt_load.c's.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/daemon.h"
#include "daemon/ckpt.h"

#define MAX_WAITERS	256

struct waiter {
	ckpt_done_fn fn;
	void *arg;
	int dump;
};

struct job {
	int dump;
	int kind;			/* CKPT_FULL or CKPT_DELTA, as planned */
	uint32_t seq;			/* delta: K of heap.img.delta.K */
	uint8_t *meta;
	uint64_t meta_len;
	uint64_t meta_hash;		/* with the generation zeroed */
	uint64_t generation;
	uint64_t *next;			/* per slab: hash after this one */
	struct shm_seg check;		/* what a reader would see */
	struct image_out out;
	int renamed;			/* the new file is in place */
	struct timespec start;
	struct ckpt_result res;
	struct waiter w[MAX_WAITERS];
	int nw;
};

/* What the daemon knows of the chain on disk. */
static struct {
	int valid;			/* slab_hash says what it holds */
	char why[96];			/* if not, why (the next is full) */
	uint32_t links;			/* deltas after the base */
	uint64_t base_generation, base_bytes, delta_bytes;
	uint64_t tip_generation, tip_digest;
	uint64_t meta_hash;		/* of the last metadata written */
} chain = { 0, "no image of this heap yet", 0, 0, 0, 0, 0, 0, 0 };
static uint64_t *slab_hash;		/* per slab, 0: not in the chain */
static uint64_t generation;		/* the last one written: ours, not
					 * the superblock's, which clients
					 * can write */

static struct heap *H;
static const struct config *C;
static struct event *done_ev, *timer_ev;
static int done_pipe[2] = { -1, -1 };
static pthread_t thread;
static struct job *running;
static struct waiter queue[MAX_WAITERS];
static int nqueue;
static struct ckpt_result last;		/* the last checkpoint that worked */
static struct ckpt_result latest;	/* the last one tried */
static int start_error;		/* a job that could not start */
static int want_full;		/* asked for: the next one is full */
static int final;		/* ckpt_sync runs: the daemon is stopping */
static const char *crash_at;	/* ACLHEAPD_TEST_CRASH: tests only */
static const char *crash_kind;

static const char *const kind_name[] = { "full", "delta", "nothing" };

void
image_path(const struct config *c, char *buf, size_t len, const char *suffix)
{
	snprintf(buf, len, "%s/heap.img%s", c->state_dir, suffix);
}

uint64_t
ckpt_elapsed_us(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Signed first: the nanoseconds part may well go down. */
	return (uint64_t)(((int64_t)t1.tv_sec - t0->tv_sec) * 1000000 +
	    ((int64_t)t1.tv_nsec - t0->tv_nsec) / 1000);
}

/*
 * Test-only: ACLHEAPD_TEST_CRASH=KIND-STEP (KIND full or delta; STEP
 * written, synced, renamed, unlinked, done) kills the daemon with SIGKILL
 * at that step of a checkpoint, so the tests can see that a crash at each
 * one leaves a chain that loads.
 */
static void
crash_point(const char *kind, const char *step)
{
	char name[64];

	if (crash_at == NULL)
		return;
	snprintf(name, sizeof(name), "%s-%s", kind, step);
	if (strcmp(name, crash_at) != 0)
		return;
	log_notice("test crash point %s", name);
	raise(SIGKILL);
}

static void
commit_hook(int step)
{
	crash_point(crash_kind, step == IMAGE_HOOK_SYNCED ? "synced" :
	    "renamed");
}

/* heap.img.delta.K or heap.img.delta.K.tmp: K, else 0. */
static uint32_t
delta_name(const char *name, int *tmp)
{
	const char *p;
	unsigned long k;
	char *end;

	if (strncmp(name, "heap.img.delta.", 15) != 0)
		return 0;
	p = name + 15;
	if (*p < '1' || *p > '9')
		return 0;
	k = strtoul(p, &end, 10);
	if (k == 0 || k > UINT32_MAX)
		return 0;
	*tmp = strcmp(end, ".tmp") == 0;
	if (*end != '\0' && !*tmp)
		return 0;
	return (uint32_t)k;
}

/* Removes the deltas (tmp: their temp files only) from the state folder.
 * The number removed. */
static int
unlink_deltas(int tmp_only)
{
	struct dirent *de;
	DIR *d;
	int n = 0, tmp, dfd;

	if ((d = opendir(C->state_dir)) == NULL)
		return 0;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (delta_name(de->d_name, &tmp) == 0 || (tmp_only && !tmp))
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0 && n++ == 0 && !tmp_only)
			crash_point("full", "unlinked");
	}
	closedir(d);
	return n;
}

/* Writes the image to fd.  Runs on the thread, reads live memory. */
static int
job_write(struct job *j, int fd)
{
	struct image_spec sp;

	memset(&sp, 0, sizeof(sp));
	sp.seg = &H->seg;
	sp.identity = H->identity;
	sp.meta = j->meta;
	sp.meta_len = j->meta_len;
	sp.generation = j->generation;
	sp.kind = j->kind == CKPT_DELTA ? IMAGE_DELTA : IMAGE_FULL;
	if (j->kind == CKPT_DELTA) {
		sp.seq = j->seq;
		sp.base_generation = chain.base_generation;
		sp.parent_generation = chain.tip_generation;
		sp.parent_digest = chain.tip_digest;
		sp.prev = slab_hash;
	}
	sp.next = j->next;
	sp.check = j->dump ? NULL : &j->check;
	return image_write(fd, &sp, &j->out);
}

#define MSG(...)	snprintf(j->res.message, sizeof(j->res.message), \
			    __VA_ARGS__)

static void *
job_thread(void *arg)
{
	struct job *j = arg;
	const struct shm_slab *table;
	const char *kind = kind_name[j->kind];
	struct shm_geom g;
	struct stat st;
	uint64_t changed = 0;
	char name[64], tmpname[80], why[200];
	char *dir = C->state_dir;
	int fd = -1, rc = 0;
	char b = 1;

	if (j->kind == CKPT_DELTA)
		snprintf(name, sizeof(name), "heap.img.delta.%u", j->seq);
	else
		snprintf(name, sizeof(name), "heap.img");
	snprintf(tmpname, sizeof(tmpname), "%s.tmp", name);
	if (j->kind == CKPT_DELTA) {
		(void)seg_geometry_max(H->seg.size, H->seg.max, &g);
		table = (const struct shm_slab *)(j->meta + g.slabs_off);
		if ((rc = image_scan(&H->seg, table, slab_hash, j->next, NULL,
		    &changed)) != 0) {
			MSG("hashing the heap: %s", strerror(-rc));
			goto out;
		}
		if (changed == 0 && j->meta_hash == chain.meta_hash) {
			j->kind = CKPT_NOTHING;
			snprintf(j->res.why, sizeof(j->res.why), "nothing "
			    "changed");
			goto out;
		}
		if (changed == 0)
			snprintf(j->res.why, sizeof(j->res.why), "metadata "
			    "changed");
		else
			snprintf(j->res.why, sizeof(j->res.why), "%" PRIu64
			    " slabs changed", changed);
	}
	if (j->dump) {
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd == -1) {
			rc = -errno;
			MSG("dump file in %s: %s", dir, strerror(errno));
			goto out;
		}
	} else if ((rc = image_writer_open(dir, tmpname, &fd,
	    j->res.message, sizeof(j->res.message))) != 0)
		goto out;
	if ((rc = job_write(j, fd)) != 0) {
		MSG("writing %s/%s: %s", dir, j->dump ? "(dump)" : tmpname,
		    strerror(-rc));
		goto out;
	}
	if (fstat(fd, &st) == 0)
		j->res.bytes = (uint64_t)st.st_size;
	j->res.slabs = j->out.slabs;
	if (j->dump) {
		if (fsync(fd) == -1) {
			rc = -errno;
			MSG("fsync of dump: %s", strerror(errno));
			goto out;
		}
		j->res.fd = fd;
		fd = -1;
		goto out;
	}
	crash_point(kind, "written");
	/* What a reader would refuse is never renamed over what it loads. */
	if (image_check_scratch(&j->check, why, sizeof(why)) != 0) {
		rc = -EUCLEAN;
		MSG("the heap fails its check, %s/%s not written (the last good "
		    "image stays): %s", dir, name, why);
		goto out;
	}
	crash_kind = kind;
	rc = image_commit(fd, dir, tmpname, name, j->res.message,
	    sizeof(j->res.message));
	fd = -1;
	if (rc != 0)
		goto out;
	j->renamed = 1;
	if (j->kind == CKPT_FULL)
		(void)unlink_deltas(0);
	crash_point(kind, "done");
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0 && !j->dump && j->kind != CKPT_NOTHING) {
		char tmp[4200];

		snprintf(tmp, sizeof(tmp), "%s/%s", dir, tmpname);
		unlink(tmp);
	}
	j->res.error = -rc;
	j->res.duration_us = ckpt_elapsed_us(&j->start);
	j->res.generation = j->kind == CKPT_NOTHING ? generation :
	    j->generation;
	j->res.time = (uint64_t)time(NULL);
	j->res.kind = j->kind;
	j->res.seq = j->kind == CKPT_DELTA ? j->seq : 0;
	while (write(done_pipe[1], &b, 1) == -1 && errno == EINTR)
		;
	return NULL;
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->meta);
	free(j->next);
	if (j->check.sb != NULL)
		image_scratch_free(&j->check);
	free(j);
}

/*
 * The loop half: copy the metadata, freeze, choose full or delta, start.
 * Geometry is the daemon's own (seg), never the copied superblock's.
 */
static struct job *
job_prepare(int dump)
{
	struct shm_seg *seg = &H->seg;
	struct shm_super *sb;
	struct shm_geom g;
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->dump = dump;
	j->res.fd = -1;
	j->check.fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &j->start);
	/* Slabs and spans clients emptied go back first (the sweep would
	 * within 2 s): a checkpoint need not write what nobody holds. */
	if (!H->frozen)
		(void)heap_reclaim_sweep(H);
	if (seg_geometry_max(seg->size, seg->max, &g) != 0)
		goto fail;
	/* Segment-shaped, but only what an image carries is copied (and
	 * written): the root table's room past roots_used, the lease
	 * region and the slab table's room to grow stay untouched zeros
	 * or out (shm/image.h). */
	j->meta_len = g.meta_end;
	if ((j->meta = calloc(1, j->meta_len)) == NULL)
		goto fail;
	image_meta_copy(j->meta, seg->sb, &g, H->roots_n);
	j->generation = generation + (dump ? 0 : 1);
	sb = (struct shm_super *)j->meta;
	/* The superblock is in memory every client can write: the image
	 * says what the daemon knows of the heap's shape. */
	sb->magic = SHM_MAGIC;
	seg_super_stamp(sb, H->identity, seg->base, seg->size, seg->max);
	atomic_store(&sb->generation, 0);
	atomic_store(&sb->lease_hwm, 0);	/* the image carries no record */
	j->meta_hash = image_meta_hash(j->meta, &g);
	atomic_store(&sb->generation, j->generation);
	if (dump) {
		j->kind = CKPT_FULL;
		H->frozen = 1;
		return j;
	}
	if ((j->next = calloc(seg->nslabs, sizeof(*j->next))) == NULL ||
	    image_scratch(&j->check, seg->base, seg->size, seg->max) != 0)
		goto fail;
	if (!chain.valid) {
		j->kind = CKPT_FULL;
		snprintf(j->res.why, sizeof(j->res.why), "%s", chain.why);
	} else if (want_full) {
		j->kind = CKPT_FULL;
		snprintf(j->res.why, sizeof(j->res.why), "asked for");
	} else if (chain.links >= IMAGE_CHAIN_MAX) {
		j->kind = CKPT_FULL;
		snprintf(j->res.why, sizeof(j->res.why), "compaction: %u "
		    "deltas", chain.links);
	} else if (chain.delta_bytes >= chain.base_bytes / 2) {
		j->kind = CKPT_FULL;
		snprintf(j->res.why, sizeof(j->res.why), "compaction: the "
		    "deltas are %" PRIu64 "%% of the base", chain.base_bytes ?
		    chain.delta_bytes * 100 / chain.base_bytes : 100);
	} else {
		j->kind = CKPT_DELTA;
		j->seq = chain.links + 1;
	}
	if (j->kind == CKPT_FULL)
		want_full = 0;
	H->frozen = 1;
	return j;
fail:
	job_free(j);
	return NULL;
}

static void
job_finish(struct job *j)
{
	struct ckpt_result r = j->res;
	uint64_t *t;
	int i;

	heap_thaw(H);
	if (!j->dump)
		latest = r;
	if (r.error == 0 && !j->dump && j->kind == CKPT_NOTHING) {
		last = r;
		log_debug("checkpoint: nothing changed since %" PRIu64
		    ", nothing written (%" PRIu64 " ms)", generation,
		    r.duration_us / 1000);
	} else if (r.error == 0 && !j->dump) {
		if (j->kind == CKPT_FULL) {
			chain.links = 0;
			chain.base_generation = j->generation;
			chain.base_bytes = r.bytes;
			chain.delta_bytes = 0;
		} else {
			chain.links = j->seq;
			chain.delta_bytes += r.bytes;
		}
		chain.valid = 1;
		chain.tip_generation = j->generation;
		chain.tip_digest = j->out.digest;
		chain.meta_hash = j->meta_hash;
		t = slab_hash;
		slab_hash = j->next;
		j->next = t;
		generation = j->generation;
		atomic_store(&H->seg.sb->generation, generation);
		last = r;
		log_info("checkpoint %" PRIu64 ": %" PRIu64 " bytes, %" PRIu64
		    " slabs in %" PRIu64 " ms (%s: %s)", r.generation, r.bytes,
		    r.slabs, r.duration_us / 1000, kind_name[j->kind], r.why);
	} else if (r.error != 0) {
		log_errx("%s failed: %s", j->dump ? "dump" : "checkpoint",
		    r.message);
		/* Nothing was saved: the interval timer must try again,
		 * even if the heap does not change meanwhile. */
		if (!j->dump)
			H->dirty = 1;
		/* A base in place that we did not finish with (say its
		 * folder's fsync failed): the deltas we would add next may
		 * name the old one; start over with a whole image. */
		if (!j->dump && j->kind == CKPT_FULL && j->renamed) {
			chain.valid = 0;
			snprintf(chain.why, sizeof(chain.why), "the last "
			    "whole image failed after it was renamed");
		}
	}
	/* At a stop the status stays "final checkpoint" until the end. */
	if (!final) {
		if (r.error != 0)
			notify_status("serving; %s failed: %s", j->dump ?
			    "dump" : "checkpoint", r.message);
		else
			notify_status("serving");
	}
	for (i = 0; i < j->nw; i++) {
		if (j->w[i].fn != NULL)
			j->w[i].fn(j->w[i].arg, &r);
	}
	if (r.fd >= 0)
		close(r.fd);
}

static int
job_start(void)
{
	struct job *j;
	int i, k, dump, rc;

	if (running != NULL || nqueue == 0)
		return 0;
	dump = queue[0].dump;
	if ((j = job_prepare(dump)) == NULL) {
		log_errx("no memory to copy the heap's metadata for a %s",
		    dump ? "dump" : "checkpoint");
		start_error = ENOMEM;
		event_active(done_ev, EV_READ, 0);
		return -ENOMEM;
	}
	/* A checkpoint answers every checkpoint waiter; a dump only one. */
	for (i = 0, k = 0; i < nqueue; i++) {
		if (queue[i].dump == dump && (!dump || j->nw == 0))
			j->w[j->nw++] = queue[i];
		else
			queue[k++] = queue[i];
	}
	nqueue = k;
	if (!dump)
		H->dirty = 0;
	if (!final)
		notify_status("%s", dump ? "writing a dump" : "checkpointing");
	if ((rc = pthread_create(&thread, NULL, job_thread, j)) != 0) {
		/* Put the waiters back; they hear of it from done_cb(), on
		 * the loop, never from inside the request that got here. */
		log_errx("cannot start the checkpoint writer: %s",
		    strerror(rc));
		memmove(queue + j->nw, queue, (size_t)nqueue * sizeof(*queue));
		memcpy(queue, j->w, (size_t)j->nw * sizeof(*queue));
		nqueue += j->nw;
		heap_thaw(H);
		job_free(j);
		start_error = rc;
		event_active(done_ev, EV_READ, 0);
		return -rc;
	}
	running = j;
	return 0;
}

static void
job_reap(void)
{
	struct job *j = running;
	char b;

	if (j == NULL)
		return;
	pthread_join(thread, NULL);
	while (read(done_pipe[0], &b, 1) == -1 && errno == EINTR)
		;
	running = NULL;
	job_finish(j);
	job_free(j);
}

/* The loop's side of the writer: reap what finished, start what waits,
 * and tell waiters when a checkpoint could not even start. */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ckpt_result r;
	struct waiter w[MAX_WAITERS];
	int i, n;

	(void)fd;
	(void)what;
	(void)arg;
	job_reap();
	if (running == NULL && start_error != 0) {
		memset(&r, 0, sizeof(r));
		r.error = start_error;
		r.fd = -1;
		snprintf(r.message, sizeof(r.message), "cannot start: %s",
		    strerror(start_error));
		start_error = 0;
		n = nqueue;
		memcpy(w, queue, (size_t)n * sizeof(*w));
		nqueue = 0;
		for (i = 0; i < n; i++)
			if (w[i].fn != NULL)
				w[i].fn(w[i].arg, &r);
		return;
	}
	(void)job_start();
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (running == NULL && nqueue == 0 &&
	    (H->dirty || server_client_count() > 0))
		ckpt_request(0, NULL, NULL);
}

void
ckpt_set_interval(unsigned seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	if (timer_ev == NULL)
		return;
	evtimer_del(timer_ev);
	if (seconds > 0)
		evtimer_add(timer_ev, &tv);
}

int
ckpt_init(struct heap *h, const struct config *c, struct event_base *eb)
{
	char tmp[4096];

	H = h;
	C = c;
	image_path(c, tmp, sizeof(tmp), ".tmp");
	unlink(tmp);		/* a checkpoint cut short by a crash */
	(void)unlink_deltas(1);
	if ((crash_at = getenv("ACLHEAPD_TEST_CRASH")) != NULL &&
	    *crash_at != '\0')
		image_commit_hook = commit_hook;
	if (!h->loaded) {
		/* Adopted or new: what the chain holds is not known. */
		generation = atomic_load(&h->seg.sb->generation);
		chain.valid = 0;
		snprintf(chain.why, sizeof(chain.why), "%s", h->adopted ?
		    "first since the live segment was adopted" :
		    "no image of this heap yet");
	}
	if (pipe2(done_pipe, O_CLOEXEC) == -1)
		return -errno;
	done_ev = event_new(eb, done_pipe[0], EV_READ | EV_PERSIST, done_cb,
	    NULL);
	timer_ev = event_new(eb, -1, EV_PERSIST, timer_cb, NULL);
	if (done_ev == NULL || timer_ev == NULL || event_add(done_ev, NULL))
		return -ENOMEM;
	ckpt_set_interval(c->checkpoint_interval);
	return 0;
}

/* Queues a checkpoint (or a dump); fn(arg, result) runs on the loop when it
 * is durable or has failed. */
int
ckpt_request(int dump, ckpt_done_fn fn, void *arg)
{
	int rc, i;

	if (nqueue == MAX_WAITERS)
		return -EBUSY;
	queue[nqueue].fn = fn;
	queue[nqueue].arg = arg;
	queue[nqueue].dump = dump;
	nqueue++;
	if ((rc = job_start()) == 0)
		return 0;
	/* Not started: this caller hears it now, and waits for nothing. */
	for (i = nqueue - 1; i >= 0; i--)
		if (queue[i].fn == fn && queue[i].arg == arg &&
		    queue[i].dump == dump) {
			memmove(queue + i, queue + i + 1,
			    (size_t)(nqueue - i - 1) * sizeof(*queue));
			nqueue--;
			break;
		}
	return rc;
}

/* A waiter that goes away (client disconnected) is forgotten. */
void
ckpt_cancel(void *arg)
{
	int i, k;

	for (i = 0, k = 0; i < nqueue; i++)
		if (queue[i].arg != arg)
			queue[k++] = queue[i];
	nqueue = k;
	if (running != NULL)
		for (i = 0; i < running->nw; i++)
			if (running->w[i].arg == arg)
				running->w[i].fn = NULL;
}

int
ckpt_busy(void)
{
	return running != NULL;
}

/* The final checkpoint at a graceful stop: waits out a running one, then
 * writes a fresh image and returns its result. */
int
ckpt_sync(struct ckpt_result *out)
{
	final = 1;
	job_reap();
	while (nqueue > 0) {
		if (job_start() != 0)
			break;
		job_reap();
	}
	queue[0].fn = NULL;
	queue[0].arg = NULL;
	queue[0].dump = 0;
	nqueue = 1;
	if (job_start() != 0 || running == NULL) {
		nqueue = 0;
		return -ENOMEM;
	}
	latest.error = EIO;
	snprintf(latest.message, sizeof(latest.message), "did not run");
	job_reap();
	*out = latest;
	return latest.error == 0 ? 0 : -EIO;
}

const struct ckpt_result *
ckpt_last(void)
{
	return &last;
}

const char *
ckpt_kind_name(int kind)
{
	return kind >= CKPT_FULL && kind <= CKPT_NOTHING ? kind_name[kind] :
	    "";
}

/* The next checkpoint (the one a request made now waits for) writes a
 * whole image: a new base, the deltas removed. */
void
ckpt_want_full(void)
{
	want_full = 1;
}

/*
 * The heap changed shape (heap_resize()): the chain on disk is of
 * another size, and what it holds per slab was hashed for another count,
 * so every checkpoint is a whole image until one is written (a failed
 * one keeps it so, unlike ckpt_want_full()).
 */
void
ckpt_chain_reset(const char *why)
{
	chain.valid = 0;
	snprintf(chain.why, sizeof(chain.why), "%s", why);
}

/* The chain on disk as far as the daemon wrote or read it. */
void
ckpt_chain(uint32_t *deltas, uint64_t *bytes)
{
	*deltas = chain.valid ? chain.links : 0;
	*bytes = chain.valid ? chain.base_bytes + chain.delta_bytes : 0;
}

/* ckpt_load() read the chain: what it holds is known (hashes, per slab,
 * become ours). */
void
ckpt_chain_loaded(const struct image_info *info, uint64_t *hashes)
{
	free(slab_hash);
	slab_hash = hashes;
	generation = info->hdr.generation;
	chain.valid = 1;
	chain.links = (uint32_t)info->links;
	chain.base_generation = info->base_generation;
	chain.base_bytes = info->base_bytes;
	chain.delta_bytes = info->bytes - info->base_bytes;
	chain.tip_generation = info->hdr.generation;
	chain.tip_digest = info->digest;
	chain.meta_hash = 0;
	last.generation = info->hdr.generation;
	last.time = info->hdr.time;
	last.bytes = info->bytes;
}
