/* SPDX-License-Identifier: MIT */
/*
 * testutil.h: what the Check suites and the benchmark share: the runner's
 * suite list and a fixture that starts the real aclheapd on a private
 * socket, state folder and base address, waits until it accepts
 * connections, and stops it with a real signal.
 *
 *   td_setup/td_init  the folder /tmp/aclheap-test-TAG-XXXXXX and the
 *                     paths in it; set base, size, max, log_level, nofile
 *                     or ready_ms after it to change what the daemon gets
 *                     (a heap's maximum is its size unless max says
 *                     otherwise: the suites' heaps do not grow unless
 *                     they ask to)
 *   td_start          the daemon with --config /dev/null and the extra
 *                     arguments, ready when it accepts a connection
 *   td_stop           a signal, then the daemon reaped
 *   td_cleanup        the daemon killed, its segment and folder removed
 *
 * Everything but td_setup() reports a failure through Check, so only
 * td_setup(), td_start*(), td_stop(), td_shm_unlink() and td_cleanup()
 * may be used outside a test (the benchmark does).
 */
#ifndef ACLHEAP_TESTUTIL_H
#define ACLHEAP_TESTUTIL_H

#include <sys/types.h>

#include <check.h>
#include <stdint.h>

#define TEST_BASE	UINT64_C(0x300000000000)
#define TEST_SIZE	"64M"

struct td {
	char dir[256];		/* private folder for everything below */
	char sock[300];
	char state[300];
	char log[300];
	char base[32];
	char size[32];
	char max[32];		/* --max-size; "": as size, "-": none */
	int nofile;		/* the daemon's RLIMIT_NOFILE, 0: inherit */
	const char *log_level;	/* --log-level, NULL: the daemon's default */
	int ready_ms;		/* how long td_wait_ready() waits, 0: 20 s */
	pid_t pid;
	char shm[96];		/* its segment's name, once it was ready */
};

/* aclfree(p) refuses p: returns 0, errno EINVAL (for suites that include
 * aclheap.h). */
#define ck_free_refused(p) do {						\
	errno = 0;							\
	ck_assert_uint_eq(aclfree(p), 0);				\
	ck_assert_int_eq(errno, EINVAL);				\
} while (0)

/* tests/testutil.c */
int	 td_setup(struct td *, const char *tag);
void	 td_init(struct td *, const char *tag);
int	 td_daemon_argv(const struct td *, const char **argv, int n,
	    const char *config);
int	 td_start(struct td *, const char *const *extra);
int	 td_start_env(struct td *, const char *const *extra,
	    const char *const *env);
int	 td_wait_ready(struct td *);
int	 td_stop(struct td *, int sig);
int	 td_wait_exit(struct td *, int timeout_ms);
void	 td_cleanup(struct td *);
int	 td_shm_unlink(struct td *);
void	*td_seg_map(const struct td *, uint64_t size, int flags);
char	*td_log(struct td *);
void	 td_log_wait(struct td *, const char *what, int n, int timeout_ms);
int	 str_count(const char *hay, const char *needle);
void	*file_slurp(const char *path, size_t *len);
void	 file_spit(const char *path, const void *, size_t);
int	 run_cmd(char *out, size_t outlen, const char *const *argv);
const char *td_prog(const char *name);
const char *td_stage(struct td *, const char *prog);
int	 wait_child(pid_t pid, int timeout_ms);
void	 msleep(int ms);
uint64_t now_ms(void);

/* The suites, one per module. */
Suite	*shm_suite(void);
Suite	*proto_suite(void);
Suite	*image_suite(void);
Suite	*heap_suite(void);
Suite	*client_suite(void);
Suite	*daemon_suite(void);
Suite	*persist_suite(void);
Suite	*ctl_suite(void);
Suite	*systemd_suite(void);
Suite	*fast_suite(void);
Suite	*once_suite(void);
Suite	*fault_suite(void);
Suite	*scribble_suite(void);
Suite	*grow_suite(void);
Suite	*fuzz_suite(void);

int	 check_run(Suite *(*const *suites)(void), int n);

/*
 * A test that cannot run on this machine (no root, no mount namespaces)
 * says why and returns: check_run() reports it as TAP "ok N # SKIP
 * reason", which automake counts as SKIP (and CI refuses), not as a pass
 * or a failure.  Only in the test's own body (it returns from it).
 */
#define td_skip(...) do {						\
	td_skip_note(__func__, __VA_ARGS__);				\
	return;								\
} while (0)
void	 td_skip_note(const char *fn, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* 1 if this process may make mount namespaces (root, and the kernel and
 * container let it), else 0 with the reason in why. */
int	 td_can_unshare_mounts(char *why, size_t len);

/*
 * The heap as the daemon sees it, writable everywhere: the segment with
 * its meta object mapped read-write (only the daemon's user can do that;
 * a client's own mapping of the daemon's ranges is read-only), bound as a
 * segment at base for the library's functions.  For tests that scribble
 * daemon-owned metadata or act as the daemon.  Inline, so that tests
 * linked with the public library alone need nothing of shm/.
 */
#ifdef ACLHEAP_SHM_H
#include <sys/mman.h>

static inline void
td_seg_writable(const struct td *t, uintptr_t base, uint64_t size,
    struct shm_seg *out)
{
	void *m = td_seg_map(t, size, MAP_SHARED);

	ck_assert_msg(m != NULL, "cannot map %s with its meta object", t->shm);
	seg_bind(out, m, base, size);
}
#endif

#endif /* ACLHEAP_TESTUTIL_H */
