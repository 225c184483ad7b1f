/* SPDX-License-Identifier: MIT */
/*
 * daemon.h: aclheapd's internal interfaces, grouped by the file that defines
 * them.
 *
 * Theory of operation
 * -------------------
 * One thread runs one libevent loop.  Every change to the superblock, the
 * roots and the slab table happens on that loop, so those transitions are
 * serialized without locks.  Clients change bitmap bits and side entries
 * concurrently, through shm/'s atomic operations only.
 *
 *   listen fd --accept, admission (listen.c)--> struct conn (conn.c)
 *       --frames--> request_dispatch() (request.c): one handler per kind
 *                   of proto/request.h's table
 *                     |
 *       heap_*() (heap.c: allocation; roots.c; lease.c; open.c)
 *       ckpt_*() (ckpt.c: checkpoint, dump, load)
 *
 * server.c runs the loop: signals, the reload, the timers, the stop.
 *
 * The daemon's derived state (struct heap: the free-slab bitmap, per-class
 * slab lists, the lease owners) is rebuilt from the segment at every start
 * by heap_rebuild(); nothing in it is ever saved.  Debug builds (without
 * NDEBUG) assert it at points that walk it anyway:
 *
 *   nfree = popcount(free_map), no free bit below free_hint's word
 *       (heap_rebuild(), heap_reclaim_sweep())
 *   owners[rec].conn != NULL  =>  leases[rec].owner_pid != 0
 *       (heap_reap_leases())
 */
#ifndef ACLHEAP_DAEMON_H
#define ACLHEAP_DAEMON_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>

#include "shm/shm.h"
#include "shm/image.h"
#include "proto/proto.h"

#define MAX_ALLOW	32

struct config {
	char *socket_path;
	char *state_dir;
	char *config_path;
	uintptr_t base;
	uint64_t size;			/* of a new heap; or to grow to */
	uint64_t max;			/* the most it can grow to */
	unsigned checkpoint_interval;	/* seconds, 0: off */
	unsigned decay;			/* seconds freed memory stays */
	int log_level;			/* syslog priority, LOG_* */
	int foreground;
	uid_t allow_uid[MAX_ALLOW];
	int nallow_uid;
	gid_t allow_gid[MAX_ALLOW];
	int nallow_gid;
	char *socket_group;		/* group owning the socket */
	char *log_file;			/* NULL: stderr; "syslog" */
	int socket_mode;
	unsigned max_per_user;		/* connections per uid, 0: any */
	int base_set, size_set, max_set;
};

struct lease_owner {
	struct conn *conn;		/* NULL: record free or orphaned */
	uint64_t paced_ns;		/* its last lease request, monotonic */
	uint32_t pace;			/* pages its next new blocks take */
};

struct heap {
	struct shm_seg seg;
	uint8_t identity[16];
	uint64_t *free_map;		/* 1 bit per slab, 1 = free */
	uint64_t nfree;
	uint64_t free_hint;		/* lowest word that may hold a free bit */
	uint32_t *class_slabs[SHM_NCLASSES];	/* slabs of each class */
	uint32_t class_n[SHM_NCLASSES];
	uint32_t class_cap[SHM_NCLASSES];
	uint32_t cur[SHM_NCLASSES];	/* daemon's own slab per class + 1 */
	uint32_t cur_hint[SHM_NCLASSES];
	uint32_t plan_pos[SHM_NCLASSES];	/* lease_plan()'s next look */
	struct lease_owner owners[SHM_LEASES];	/* [0, lease_hwm) used */
	uint32_t lease_hint;		/* no free record below it */
	struct conn *sessions[SHM_SESSIONS];	/* bound sessions (journal.h) */
	int lockfd;			/* the segment lock (seglock.c), -1 */
	pid_t lock_pid;			/* the pid recorded in it */
	int adopted;			/* 1 if a live segment was adopted */
	int loaded;			/* 1 if loaded from an image */
	int dirty;			/* changed since the last checkpoint */
	int frozen;			/* a checkpoint is streaming slabs */
	uint64_t *limbo;		/* (slab, n) pairs freed while frozen */
	uint64_t nlimbo, limbo_cap;
	/* Free slabs whose memory is still committed, for reuse without a
	 * system call; given back once they have been free for decay
	 * seconds (heap_decay()). */
	uint64_t *held_map;		/* 1 bit per slab */
	struct heap_held {
		uint64_t s, n;
		uint64_t when;		/* CLOCK_MONOTONIC seconds */
	} *held;
	uint64_t nheld, held_cap;
	unsigned decay;
	/* The roots' index (roots.c): slot + 1 by name hash, 0 empty. */
	uint32_t *root_idx;
	uint64_t root_cap;		/* a power of two >= 2 roots_max */
	uint64_t roots_n;		/* roots in use, the daemon's count */
};

struct event;
struct event_base;

/* A client's connection: its buffers, its peer and where it stands. */
struct conn {
	int fd;
	struct event *rev, *wev;
	struct event *hev;		/* Hello timeout, NULL once said */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	int passfd;			/* sent with the byte at passfd_at */
	int passfd2;			/* and this one with it (Hello) */
	size_t passfd_at;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int hello, privileged, closing, waiting;
	uint64_t wait_id;
	char name[32];
	uint64_t requests;
	time_t since;
	uint32_t session;		/* its session + 1, 0: none */
	TAILQ_ENTRY(conn) link;
};
TAILQ_HEAD(conn_list, conn);

/* What the parts of the loop share, set once by server_setup(). */
struct server {
	struct config *cfg;
	struct heap *heap;
	struct event_base *base;
	time_t started;
	int stopping;			/* at a stop, clients keep leases */
};

/* daemon/log.c */
void	 log_init(int level, int to_syslog_prefix);
void	 log_set_level(int);
void	 log_to_syslog(void);
int	 log_to_file(const char *path);
void	 log_reopen(void);
int	 log_level_parse(const char *);
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_notice(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_errx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/* daemon/config.c */
void	 config_defaults(struct config *);
int	 config_parse_args(struct config *, int, char **);
int	 config_load_file(struct config *, const char *path, int required);
int	 config_finish(struct config *);
void	 config_free(struct config *);
void	 config_usage(FILE *);
int	 config_allowed(const struct config *, uid_t, gid_t, pid_t);
int	 config_warn_unreachable(const struct config *, const char *path,
	    mode_t, uid_t, gid_t);

/* daemon/heap.c */
int	 heap_rebuild(struct heap *);
int	 heap_alloc(struct heap *, uint64_t size, uint64_t align,
	    uintptr_t *addr, uint64_t *usable);
int	 heap_free(struct heap *, uintptr_t addr, uint64_t *req);
int	 heap_realloc(struct heap *, uintptr_t addr, uint64_t size,
	    uintptr_t *out, uint64_t *usable);
int	 heap_reclaim_sweep(struct heap *);
uint64_t heap_decay(struct heap *, int all);
void	 heap_thaw(struct heap *);
int64_t	 heap_slab_new(struct heap *, uint32_t cls, uint32_t pages);
int	 heap_daemon_block(struct heap *, uint32_t cls, uint64_t *s,
	    uint32_t *i);
int64_t	 heap_take_run(struct heap *, uint64_t n, uint64_t align);
int	 heap_run_free(const struct heap *, uint64_t s, uint64_t n);
int	 heap_extent_make(struct heap *, uint64_t s, uint64_t n,
	    uint64_t size);
int	 heap_extent_grow(struct heap *, uint64_t s, uint64_t old, uint64_t n,
	    uint64_t size);
void	 heap_slabs_release(struct heap *, uint64_t s, uint64_t n);
void	 heap_maybe_reclaim(struct heap *, uint32_t cls, uint64_t s,
	    uint32_t index);
int	 heap_slab_has_room(const struct heap *, uint64_t s, uint32_t cls);
int	 heap_slab_extend(struct heap *, uint64_t s, uint32_t cls,
	    uint32_t pages);
int64_t	 heap_extend_class(struct heap *, uint32_t cls, uint32_t owner,
	    uint32_t pages);

/* daemon/open.c */
int	 heap_open(struct heap *, struct config *);
void	 heap_close(struct heap *);
void	 heap_forget(struct heap *);
int	 heap_id_write(const char *dir, const uint8_t id[16]);
int	 heap_map(struct heap *, const struct config *, uint64_t size, int fd,
	    int mfd);
int	 heap_resize(struct heap *, uint64_t size, char *err, size_t errlen);
int	 heap_objects_create(const struct heap *, const struct config *,
	    int *fd, int *mfd);
const char *heap_repair_hint(const struct config *, int segment, char *,
	    size_t);

/* daemon/roots.c */
int	 heap_root_set(struct heap *, const char *, uint64_t);
int	 heap_root_get(struct heap *, const char *, uint64_t *);
int	 heap_root_cas(struct heap *, const char *, uint64_t, uint64_t);
int	 heap_root_remove(struct heap *, const char *);
int	 roots_index_build(struct heap *);
size_t	 heap_root_page(struct heap *, const char *prefix, const char *after,
	    const struct shm_root **, size_t max, int *more);

/* daemon/lease.c */
void	 lease_rebuild(struct heap *);
int	 heap_lease(struct heap *, struct conn *, pid_t, uint32_t cls,
	    uint32_t renew, uint32_t want, uint64_t *slab, uint32_t *rec);
int	 heap_lease_release(struct heap *, uint32_t rec);
void	 heap_conn_gone(struct heap *, struct conn *);
uint32_t heap_conn_adopt(struct heap *, struct conn *, pid_t);
uint32_t heap_reap_leases(struct heap *);
uint32_t heap_conn_leases(const struct heap *, const struct conn *);

/* daemon/proc.c */
#define PROC_UNKNOWN	UINT64_MAX	/* proc_start(): cannot tell */
uint64_t proc_start(pid_t);

/* daemon/ckpt.c */
enum { CKPT_FULL, CKPT_DELTA, CKPT_NOTHING };
struct ckpt_result {
	int error;			/* 0 or a positive errno */
	char message[512];
	int kind;			/* CKPT_*: what it wrote */
	char why[96];
	uint64_t slabs;			/* slabs written */
	uint32_t seq;			/* delta: K of heap.img.delta.K */
	uint64_t bytes;
	uint64_t duration_us;
	uint64_t generation;
	uint64_t time;
	int fd;				/* dump: the unlinked image, else -1 */
};
typedef void (*ckpt_done_fn)(void *arg, const struct ckpt_result *);
void	 image_path(const struct config *, char *, size_t, const char *suffix);
int	 ckpt_load(struct heap *, const struct config *, const char *path);
int	 ckpt_init(struct heap *, const struct config *,
	    struct event_base *);
int	 ckpt_request(int dump, ckpt_done_fn, void *arg);
void	 ckpt_cancel(void *arg);
int	 ckpt_sync(struct ckpt_result *);
const struct ckpt_result *ckpt_last(void);
const char *ckpt_kind_name(int kind);
void	 ckpt_chain(uint32_t *deltas, uint64_t *bytes);
void	 ckpt_want_full(void);
void	 ckpt_chain_reset(const char *why);
void	 ckpt_set_interval(unsigned);
/* For the dispatch fuzzer only (tests/fuzz/), which runs the loop itself
 * and must wait out a checkpoint's thread: nothing in the daemon asks. */
int	 ckpt_busy(void);

/* daemon/seglock.c */
int	 seglock_take(struct heap *, int segfd);
void	 seglock_owner(struct heap *);
pid_t	 seglock_holder(int fd);
void	 seglock_release(struct heap *);

/* daemon/server.c */
extern struct server server;
int	 server_run(struct config *, struct heap *, int lfd, int argc,
	    char **argv);
int	 server_setup(struct config *, struct heap *, struct event_base *);
int	 server_client_count(void);

/* daemon/listen.c */
int	 server_listen(const struct config *, int *activated);
struct conn *server_conn_new(int fd);
int	 listen_start(int lfd);
void	 listen_stop(void);
void	 listen_resume(void);

/* daemon/conn.c */
extern struct conn_list conns;
void	 conn_setup(void);
struct conn *conn_new(int fd, pid_t, uid_t, gid_t);
int	 conn_count(void);
void	 conn_close(struct conn *);
void	 conn_close_all(void);
int	 conn_flush(struct conn *);
void	 conn_process(struct conn *);
void	 conn_resume(struct conn *);
void	 conn_reply(struct conn *, Aclheap__Reply *);
void	 conn_error(struct conn *, uint64_t id, int err, const char *, ...)
	    __attribute__((format(printf, 4, 5)));
int	 conn_reserve_slow(struct conn *, size_t);

/* Room for n more bytes of output.  The usual case, an empty buffer with
 * room, is one branch; anything else is conn_reserve_slow()'s. */
static inline int
conn_reserve(struct conn *c, size_t n)
{
	if (__builtin_expect(c->out_off == 0 && c->out_cap - c->out_len >= n,
	    1))
		return 0;
	return conn_reserve_slow(c, n);
}

/* daemon/request.c */
void	 request_dispatch(struct conn *, const Aclheap__Request *,
	    uint32_t len);
void	 request_quick(struct conn *, const struct quick_req *);

/* daemon/stats.c */
void	 stats_fill(Aclheap__StatsReply *);

/* daemon/notify.c */
void	 notify_ready(void);
void	 notify_status(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 notify_stopping(void);
void	 notify_reloading(void);
uint64_t notify_watchdog_usec(void);
void	 notify_watchdog(void);
int	 notify_listen_fd(void);

#endif /* ACLHEAP_DAEMON_H */
