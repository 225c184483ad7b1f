/* SPDX-License-Identifier: MIT */
/*
 * aclheap.h: a persistent heap in shared memory, at one fixed address.
 *
 * A daemon, aclheapd(8), owns the heap: a POSIX shared-memory segment that
 * every client maps at the same virtual address, and that the daemon saves
 * to disk.  A pointer stored inside the heap therefore means the same thing
 * in every process, and keeps meaning it after a client restart, a daemon
 * restart or crash, and a reboot (from the last checkpoint).
 *
 * The core API is Allegro CL's aclmalloc family.  Everything else is
 * aclheap_*.  Link with -laclheap (pkg-config aclheap).
 *
 * Conventions
 * -----------
 * Functions returning int return 0 (or a documented non-negative value) on
 * success and a negative errno value on failure.  Functions returning a
 * pointer or an address return NULL/0 on failure and set errno.  After any
 * failure, aclheap_last_error() gives the detail in words; a call that
 * succeeds clears it, except aclmalloc() and aclfree() of small blocks,
 * which never touch it (that is their fast path): read it right after the
 * failing call.  The library never prints.
 *
 * Attaching
 * ---------
 * Any allocating call attaches on first use: it connects to the socket named
 * by $ACLHEAP_SOCKET, else the default socket ($XDG_RUNTIME_DIR/aclheap/
 * aclheap.sock for an ordinary user, /run/aclheap/aclheap.sock for root),
 * receives the segment and maps it at the daemon's base address.  The
 * default is the one aclheapd computes for the same user without
 * --socket, so a daemon and a client started the same way meet; an
 * ordinary user whose own daemon is not running reaches the system's.
 * (Without XDG_RUNTIME_DIR an ordinary user's daemon listens on
 * /tmp/aclheap-UID/aclheap.sock.)  The range
 * is never relocated: if it is taken in this process, attaching fails with
 * EADDRINUSE and aclheap_last_error() names the range and its occupant.  A
 * program that wants the range guaranteed attaches first thing in main().
 * Errors common to every attaching call:
 *   ECONNREFUSED, ENOENT  no daemon listens on the socket (the message names
 *                         the socket tried)
 *   EACCES                the daemon refused this user (allow list)
 *   EADDRINUSE            the heap's range is occupied in this process
 *   EPROTO                the daemon speaks another protocol version, or
 *                         now serves a different heap than the one mapped
 *   ETIMEDOUT             the daemon went away and did not come back within
 *                         $ACLHEAP_RECONNECT_TIMEOUT seconds (default 5)
 *   EINVAL                $ACLHEAP_RECONNECT_TIMEOUT is not a number of
 *                         seconds from 0 to 86400 (checked at attach)
 *   ECONNRESET            the daemon went away while handling a request
 *                         that changes the heap and this process has no
 *                         session with it (more than 1024 client processes
 *                         at once): it may or may not have been done.
 *                         Otherwise such a request is sent again, with its
 *                         sequence number, once the daemon is back, and it
 *                         answers what it did: every call that changes the
 *                         heap is done exactly once across daemon crashes.
 *
 * Threads and fork
 * ----------------
 * Every function is thread-safe.  After fork() the child keeps the mapping
 * (same address, same heap) and opens its own connection on its next call;
 * the two processes share nothing else of the library's state.
 *
 * Lifetime of blocks
 * ------------------
 * Blocks are persistent data: they stay allocated when the process that
 * allocated them exits or dies, until some process frees them.  Find them
 * again through named roots (aclheap_root_set/get).
 */
#ifndef ACLHEAP_H
#define ACLHEAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#if defined(__GNUC__)
/* aclheap_stats() is a function and a struct, as in C; C++'s -Wshadow
 * would call the function a shadow of the struct's constructor. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif
#endif

#define ACLHEAP_VERSION_MAJOR	0
#define ACLHEAP_VERSION_MINOR	1

/* Flags for aclmalloc_flags(). */
#define ACLHEAP_RESTART_RELOCATION	0x1u	/* accepted; no effect yet */

/* Longest root name, in bytes, without the NUL. */
#define ACLHEAP_ROOT_NAME_MAX	255

/*
 * aclmalloc: a block of at least size bytes, aligned to 16 bytes.
 * size 0 is legal and returns a unique block (aclfree returns 0 for it).
 * Up to 4 MiB the block is of a size class (above 8 KiB at most 1.25 times
 * size) and comes from the calling thread's own slabs or spans, without a
 * request to the daemon once the thread holds one of that class; larger
 * blocks are whole 64 KiB slabs from the daemon.
 * NULL with errno:
 *   ENOMEM   the heap has no room, size exceeds the heap, or /dev/shm is
 *            full (never a SIGBUS later)
 *   and the attach errors above.
 */
void	*aclmalloc(size_t size);

/*
 * aclmalloc_flags: aclmalloc with the Allegro keyword flags.
 * ACLHEAP_RESTART_RELOCATION is accepted and has no effect.
 * NULL with errno EINVAL for any other flag bit, else as aclmalloc.
 */
void	*aclmalloc_flags(size_t size, unsigned flags);

/*
 * aclfree: frees a block from any allocating call of this library, from any
 * process.  Returns the size that was requested when the block was
 * allocated.  Returns 0 and changes nothing for NULL (errno EINVAL) and for
 * an address that is not the start of a live block: outside the heap, inside
 * a block, or already freed (errno EINVAL).  Freeing a size-0 block also
 * returns 0 but leaves errno at 0, which tells the two apart:
 *     errno = 0; n = aclfree(p); if (n == 0 && errno != 0) ...error...
 * Two threads freeing the same block at the same instant: one succeeds and
 * the other gets EINVAL, unless the block is reallocated in between.
 */
size_t	 aclfree(void *p);

/*
 * aclmalloc_aligned: allocates like aclmalloc and returns the block's
 * aligned representation (address >> 3, arithmetically, as a signed word),
 * or 0 with errno as aclmalloc.
 */
intptr_t aclmalloc_aligned(size_t size);

/*
 * aclfree_aligned: frees a block given its aligned representation; accepts
 * blocks from either family.  Returns as aclfree.
 */
size_t	 aclfree_aligned(intptr_t aligned);

/*
 * aclheap_address_to_aligned: address >> 3 as a signed word.  An address
 * that is not a multiple of 8 cannot be represented: 0, errno EINVAL.
 * Example: 0x10000008 gives 33554433.  Needs no daemon.
 */
intptr_t aclheap_address_to_aligned(uintptr_t address);

/*
 * aclheap_aligned_to_address: the inverse, aligned << 3.  Needs no daemon.
 */
uintptr_t aclheap_aligned_to_address(intptr_t aligned);

/*
 * aclcalloc: n * size zeroed bytes.  NULL with ENOMEM when n * size
 * overflows, else as aclmalloc.
 */
void	*aclcalloc(size_t n, size_t size);

/*
 * aclrealloc: as realloc(3), inside the heap.  NULL p allocates; size 0 with
 * a live p returns a size-0 block in place of p.  The block stays in place
 * when the new size fits its usable size and is at least half of it, and a
 * block of more than 4 MiB grows in place into free slabs after it.  Blocks
 * of up to 4 MiB are reallocated without a request to the daemon.  On
 * failure returns NULL, sets
 * errno (EINVAL: p is not a live block; ENOMEM) and p is untouched.
 */
void	*aclrealloc(void *p, size_t size);

/*
 * aclmemalign: a block of size bytes aligned to alignment, a power of two
 * from 1 up to 1 GiB.  NULL with EINVAL for any other alignment, else as
 * aclmalloc.
 */
void	*aclmemalign(size_t alignment, size_t size);

/*
 * aclheap_usable_size: the bytes usable in the live block at p (at least
 * what was requested), 0 for anything else.  Never fails loudly.
 */
size_t	 aclheap_usable_size(const void *p);

/*
 * aclheap_contains: 1 if p lies inside the heap's segment (attached in this
 * process), else 0.  Does not attach.
 */
int	 aclheap_contains(const void *p);

/*
 * Named roots, persisted with the heap: how a restarted program finds its
 * data.  A name is 1 to 255 bytes of printable ASCII (0x20 to 0x7e); an
 * empty name, a longer one, a NUL inside it or any other byte is -EINVAL
 * and changes nothing.  A root holds any pointer-sized value; by
 * convention an address in the heap.  A heap has room for one root per
 * 8 KiB of its size, from 512 (a 4 MiB heap) to 65536 (512 MiB and more);
 * set, get, CAS and remove take the same time however many there are (a
 * hash index in the daemon), one round trip to it.
 *
 * aclheap_root_set: creates or replaces.  -EINVAL bad name, -ENOSPC the
 *   root table is full, -ENOMEM no memory for it (/dev/shm full).
 * aclheap_root_get: the value, or NULL with errno ENOENT (no such root) or
 *   EINVAL (bad name).
 * aclheap_root_cas: sets name to desired only if it holds expected (NULL
 *   expected: only if it does not exist; NULL desired: removes it).
 *   0 on success, -EAGAIN if the current value differs (nothing changed),
 *   -EINVAL bad name, -ENOSPC table full.  The way two processes race to
 *   create one structure safely.
 * aclheap_root_remove: 0, -ENOENT, -EINVAL.
 */
int	 aclheap_root_set(const char *name, void *p);
void	*aclheap_root_get(const char *name);
int	 aclheap_root_cas(const char *name, void *expected, void *desired);
int	 aclheap_root_remove(const char *name);

/* One root, as aclheap_root_list() reports it. */
struct aclheap_root {
	char name[ACLHEAP_ROOT_NAME_MAX + 1];
	void *value;
};

/*
 * aclheap_root_list: every root, in name order (strcmp).  Stores up to n
 * roots in out and returns how many roots there are, which may be more
 * than n: call again with room for that many.  out may be NULL when n is
 * 0, to count.  The daemon answers in pages of 200, so a listing of many
 * roots is as many round trips over n / 200; a root that exists for the
 * whole call is listed exactly once, one created or removed meanwhile may
 * or may not be.  Negative errno: -EINVAL (NULL out with n > 0), -ENOMEM,
 * -EOVERFLOW (more than INT_MAX), and the attach errors.
 *
 * aclheap_root_list_prefix: the same for the roots whose names start with
 * prefix (NULL or "": all).  -EINVAL also for a prefix that is not 0 to
 * 255 bytes of printable ASCII.
 */
int	 aclheap_root_list(struct aclheap_root *out, size_t n);
int	 aclheap_root_list_prefix(const char *prefix, struct aclheap_root *out,
	    size_t n);

/*
 * aclheap_attach: attaches explicitly to the daemon at socket_path (NULL:
 * $ACLHEAP_SOCKET, then the default).  0 if attached (or already attached
 * to that heap), else a negative errno among the attach errors above.
 * -EISCONN if already attached to another socket.
 * aclheap_detach: closes the connection and unmaps the heap.  Pointers into
 * the heap are invalid in this process afterwards (the blocks live on).
 */
int	 aclheap_attach(const char *socket_path);
void	 aclheap_detach(void);

/*
 * aclheap_checkpoint: asks the daemon to write an image now; returns 0 once
 * it is durable on disk (fsync of file and directory).  -EIO with the reason
 * in aclheap_last_error() when the daemon could not write it (disk full,
 * unwritable state folder); the previous image is then still in place.
 * -EPERM when this user may not ask for one (only aclheapd's own user and
 * root may), and the attach errors.
 */
int	 aclheap_checkpoint(void);

/*
 * aclheap_grow: puts the heap at size bytes while it runs: larger, up to
 * the maximum it was made with (aclheapd --max-size), or smaller when
 * every slab past the new end is free.  Nothing moves: every process maps
 * the whole maximum from the start, so blocks in the new space are good
 * everywhere at once, and each process uses the new space from its next
 * request.  Done twice is done once.  0; -EINVAL for a size that is not a
 * multiple of 64 KiB from 4 MiB to the maximum, -EBUSY for a shrink past
 * a slab in use, -EAGAIN while a checkpoint is being written, -EPERM for
 * a user who may not (as aclheap_checkpoint()), and the attach errors;
 * aclheap_last_error() says which.
 */
int	 aclheap_grow(uint64_t size);

struct aclheap_stats {
	uintptr_t base;			/* first byte of the segment */
	uint64_t size;			/* bytes in the segment */
	uint64_t data_size;		/* bytes available to blocks */
	uint64_t bytes_in_use;		/* bytes of slabs holding blocks */
	uint64_t bytes_requested;	/* sum of requested sizes */
	uint64_t blocks_in_use;		/* live blocks */
	uint64_t last_checkpoint;	/* unix time, 0: never */
	uint64_t generation;		/* checkpoints written */
};

/*
 * aclheap_stats: fills *out from the daemon.  0 or a negative errno
 * (-EINVAL for NULL out).
 */
int	 aclheap_stats(struct aclheap_stats *out);

/*
 * aclheap_identity: copies the attached heap's identity, 16 bytes, into
 * out.  The identity names one heap for its whole life: it stays the same
 * across daemon restarts, crashes and reboots (the image carries it) and
 * differs for any other heap.  A program that keeps heap addresses outside
 * the heap (a saved Lisp image, a file) compares it to know it is back on
 * the same heap.  Attaches on first use.  0, or -EINVAL for NULL out,
 * -ENOTCONN if another thread detached meanwhile, and the attach errors.
 */
int	 aclheap_identity(unsigned char out[16]);

/*
 * aclheap_last_error: the calling thread's last failure in words, with the
 * detail errno cannot carry; "" when none.  Valid until the thread's next
 * call into the library: every call that succeeds sets it to "", except
 * aclmalloc() (and aclmalloc_aligned()) of a small block and aclfree() of
 * a small block, which leave it as it was so as to cost nothing.
 */
const char *aclheap_last_error(void);

#ifdef __cplusplus
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}
#endif

#endif /* ACLHEAP_H */
