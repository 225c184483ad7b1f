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
int	 conn_request(Aclheap__Request *, Aclheap__Reply **,
	    struct frame_arena *, int *fdp);
void	 conn_seterr(const char *, ...) __attribute__((format(printf, 1, 2)));
const char *conn_lasterr(void);
void	 conn_clearerr(void);
const char *conn_socket_path(void);
int	 conn_default_socket(char *, size_t);
int	 conn_privileged(void);

extern _Atomic uint64_t conn_gen;

/* client/fast.c */
void	*fast_alloc(size_t);
int	 fast_free(uintptr_t, const struct slab_block *, size_t *);
void	 fast_flush(void);

#endif /* ACLHEAP_CLIENT_H */
