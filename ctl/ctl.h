/* SPDX-License-Identifier: MIT */
/*
 * ctl.h: aclheapctl's internal interfaces, grouped by the file that defines
 * them.
 *
 * Theory of operation
 * -------------------
 * aclheapctl is one table of commands (ctl/main.c) and one file per family
 * of commands, as tmux's cmd-*.c:
 *
 *   main.c     global options, the command table, --help, main()
 *   args.c     each command's own options and arguments
 *   request.c  the socket, attaching, one request and its reply
 *   json.c     the JSON writer        fmt.c     sizes, times, hex
 *   figures.c  the class table that status and inspect both print
 *   status.c   status, metrics        heap.c    blocks, hexdump
 *   roots.c    roots                  clients.c clients
 *   image.c    dump, checkpoint       verify.c  verify, inspect
 *   restore.c  restore                repair.c  repair
 *
 *   argv --main()--> struct ctl_cmd --exec(argc, argv)--> cmd_<name>()
 *                                                  |
 *        args_*()  ctl_connect()  ctl_request()  json_*() or printf
 *
 * A handler gets its command's arguments, argv[0] being the command's
 * name; it parses them with args_*() before anything else, so bad usage is
 * status 2 even without a daemon.  Only then does a command that talks to
 * aclheapd (CTL_DAEMON in its entry) attach, with ctl_connect().  A
 * command that prints figures prints them as text, or as one JSON value
 * with --json (ctl_json), on stdout; messages go to stderr through err(3)
 * and warnx(3).  The handler returns 0, and every failure exits there and
 * then with its status:
 *
 *   0 done   1 failed (a refusal by aclheapd too)   2 bad usage (EXIT_USAGE)
 *   3 aclheapd unreachable (EXIT_UNREACHABLE)
 *
 * Replies are unpacked into one arena in request.c, so one reply is alive
 * at a time: the next request reuses the memory of the one before.
 */
#ifndef ACLHEAP_CTL_H
#define ACLHEAP_CTL_H

#include <stdint.h>
#include <stdio.h>

#include "client/client.h"

#define EXIT_USAGE		2
#define EXIT_UNREACHABLE	3

struct option;
struct shm_seg;

/* ctl/main.c */

/* One command: what main() finds by name and --help lists. */
struct ctl_cmd {
	const char *name;
	int (*exec)(int, char **);
	const char *usage;	/* synopsis: the name and its arguments */
	const char *help;	/* what it does; lines end with \n */
	int flags;
#define CTL_DAEMON	0x1	/* may talk to aclheapd (and exit 3) */
#define CTL_OFFLINE	0x2	/* may work on files without aclheapd */
};

extern const struct ctl_cmd *ctl_cmd;	/* the command that runs */
extern const char *ctl_socket_opt;	/* -s, or NULL */
extern int ctl_json;			/* --json */
void	 ctl_help(void);
void	 ctl_usage(void) __attribute__((noreturn));

/* ctl/args.c */
void	 args_begin(void);
int	 args_getopt(int, char **, const char *, const struct option *);
void	 args_end(int, char **);
int	 args_u64(const char *, uint64_t *);

/* ctl/request.c */
extern char ctl_socket[108];		/* sun_path's size */
void	 ctl_resolve_socket(void);
int	 ctl_unreachable(int);
void	 ctl_unreachable_exit(int) __attribute__((noreturn));
int	 ctl_attach(void);
void	 ctl_connect(void);
int	 ctl_send(Aclheap__Request *, Aclheap__Reply **, int *fdp);
Aclheap__Reply *ctl_request(const char *, Aclheap__Request *, int,
	    int *fdp);

/* ctl/json.c: compact, one value per call, commas by nesting. */
void	 json_key(const char *);
void	 json_open(const char *, int);
void	 json_close(int);
void	 json_u64(const char *, uint64_t);
void	 json_double(const char *, double);
void	 json_str(const char *, const char *);
void	 json_bool(const char *, int);
void	 json_null(const char *);

/* ctl/fmt.c */
const char *fmt_bytes(char *, size_t, uint64_t);
const char *fmt_time(char *, size_t, uint64_t);
const char *fmt_duration(char *, size_t, uint64_t);
const char *fmt_hex(char *, size_t, const uint8_t *, size_t);
const char *fmt_plural(uint64_t);
double	 fmt_pct(uint64_t, uint64_t);
void	 split_path(const char *path, char *dir, size_t dlen,
	    const char **base);

/* ctl/figures.c: what status (live) and inspect (offline) both show. */
struct figures_cls {
	uint32_t block_size;
	uint64_t slabs, used, free, req;
};

struct figures {
	struct figures_cls cls[SHM_NCLASSES];
	int ncls;
	uint64_t large_blocks, large_bytes, large_req;
	uint64_t blocks, req, cached, slabs_used, slabs_total;
};

void	 figures_from_stats(const Aclheap__StatsReply *, struct figures *);
void	 figures_from_seg(const struct shm_seg *, struct figures *);
void	 figures_print_used(const struct figures *);
void	 figures_print_classes(const struct figures *);
void	 figures_json_classes(const struct figures *);

/* ctl/status.c */
int	 cmd_status(int, char **);
int	 cmd_metrics(int, char **);
int	 cmd_grow(int, char **);

/* ctl/heap.c */
int	 cmd_blocks(int, char **);
int	 cmd_hexdump(int, char **);

/* ctl/roots.c */
int	 cmd_roots(int, char **);
void	 roots_print_header(void);
void	 roots_print_one(const struct shm_seg *, const char *, uint64_t);

/* ctl/clients.c */
int	 cmd_clients(int, char **);

/* ctl/image.c */
int	 cmd_dump(int, char **);
int	 cmd_checkpoint(int, char **);

/* ctl/verify.c */
int	 cmd_verify(int, char **);
int	 cmd_inspect(int, char **);

/* ctl/restore.c */
int	 cmd_restore(int, char **);
int	 state_lock(const char *cmd, const char *state);
int	 state_live_segment(const char *state, char *live, size_t len);

/* ctl/repair.c */
int	 cmd_repair(int, char **);

#endif /* ACLHEAP_CTL_H */
