/* SPDX-License-Identifier: MIT */
/*
 * aclheapctl.c: the administration tool.  It speaks the same protocol as
 * libaclheap, through the same connection code (client/conn.c), so it sees
 * the daemon exactly as a client does; the requests it sends are the
 * administration family of aclheap.proto (Stats, Dump, Blocks, Read, ...).
 *
 * Three commands work without a daemon: `verify IMAGE` and `inspect IMAGE`
 * load an image file into scratch memory with image_load_offline() and run
 * the same validator (shm_check) and the same per-slab counting
 * (slab_used, slab_claimed) that the daemon runs on the live heap, and
 * `restore` puts a checked image into a stopped daemon's state folder.
 *
 * Every command that prints figures also prints them as JSON with --json.
 * Messages go to stderr through err(3) and warnx(3).  The exit status says
 * what happened: 0 success, 1 failure (including a refusal by the daemon),
 * 2 bad usage, 3 daemon unreachable.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "proto/sockpath.h"
#include "shm/image.h"

#define EXIT_USAGE		2
#define EXIT_UNREACHABLE	3

#define HEXDUMP_DEFAULT		256u
#define HEXDUMP_MAX		(1u << 20)	/* more is a job for dump */
#define COPY_CHUNK		(1u << 20)

static const char *socket_opt;
static char socket_path[108];	/* sun_path's size */
static int json;

/* Replies are unpacked here; one reply is alive at a time. */
static uint8_t arena_buf[1 << 20];
static struct frame_arena arena;

static void usage(void) __attribute__((noreturn));
static const char usage_text[];

/* ------------------------------------------------------------------ */
/* Formatting */

static const char *
fmt_bytes(char *buf, size_t len, uint64_t n)
{
	static const char *unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return buf;
	}
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

static const char *
fmt_time(char *buf, size_t len, uint64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "@%" PRIu64, t);
	return buf;
}

static const char *
fmt_duration(char *buf, size_t len, uint64_t s)
{
	if (s >= 86400)
		snprintf(buf, len, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m",
		    s / 86400, s / 3600 % 24, s / 60 % 60);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s",
		    s / 3600, s / 60 % 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "s", s);
	return buf;
}

static const char *
fmt_hex(char *buf, size_t len, const uint8_t *p, size_t n)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < n && 2 * i + 2 < len; i++)
		snprintf(buf + 2 * i, len - 2 * i, "%02x", p[i]);
	return buf;
}

/* "1 block", "2 blocks". */
static const char *
plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

static double
pct(uint64_t part, uint64_t whole)
{
	return whole == 0 ? 0.0 : 100.0 * (double)part / (double)whole;
}

/* ------------------------------------------------------------------ */
/* A small JSON writer: compact, one value per call, commas by nesting. */

static int jfirst[16], jdepth;

static void
jstring(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putchar('"');
	for (; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\t')
			fputs("\\t", stdout);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void
jkey(const char *key)
{
	if (jdepth > 0) {
		if (!jfirst[jdepth])
			putchar(',');
		jfirst[jdepth] = 0;
	}
	if (key != NULL) {
		jstring(key);
		putchar(':');
	}
}

static void
jopen(const char *key, int c)
{
	jkey(key);
	putchar(c);
	jfirst[++jdepth] = 1;
}

static void
jclose(int c)
{
	putchar(c);
	if (--jdepth == 0)
		putchar('\n');
}

static void
ju64(const char *key, uint64_t v)
{
	jkey(key);
	printf("%" PRIu64, v);
}

static void
jdouble(const char *key, double v)
{
	jkey(key);
	printf("%.3f", v);
}

static void
jstr(const char *key, const char *s)
{
	jkey(key);
	jstring(s != NULL ? s : "");
}

static void
jbool(const char *key, int v)
{
	jkey(key);
	fputs(v ? "true" : "false", stdout);
}

static void
jnull(const char *key)
{
	jkey(key);
	fputs("null", stdout);
}

/* ------------------------------------------------------------------ */
/* Talking to the daemon */

/* Errors that mean nobody answers on the socket (or stopped answering). */
static int
unreachable(int rc)
{
	switch (-rc) {
	case ENOENT:
	case ECONNREFUSED:
	case ENOTDIR:
	case ENOTSOCK:
	case ECONNRESET:
	case EPIPE:
	case ETIMEDOUT:
		return 1;
	default:
		return 0;
	}
}

static void
unreachable_exit(int rc) __attribute__((noreturn));

static void
unreachable_exit(int rc)
{
	if (json) {
		/* A script asked for JSON: it gets JSON, and the status. */
		jopen(NULL, '{');
		jstr("socket", socket_path);
		jbool("ok", 0);
		jbool("reachable", 0);
		jstr("error", conn_lasterr()[0] != '\0' ? conn_lasterr() :
		    strerror(-rc));
		jclose('}');
		fflush(stdout);
	}
	warnx("cannot reach aclheapd at %s: %s", socket_path,
	    strerror(-rc));
	warnx("start the daemon with 'aclheapd' (or 'systemctl start "
	    "aclheapd'), or name its socket with -s or ACLHEAP_SOCKET");
	exit(EXIT_UNREACHABLE);
}

/* Same resolution as the library: -s, $ACLHEAP_SOCKET, the default. */
static void
resolve_socket(void)
{
	const char *e = getenv("ACLHEAP_SOCKET");

	if (socket_opt == NULL && e != NULL && *e != '\0')
		socket_opt = e;
	if (socket_opt == NULL) {
		conn_default_socket(socket_path, sizeof(socket_path));
		return;
	}
	if (strlen(socket_opt) >= sizeof(socket_path))
		errx(EXIT_FAILURE, "socket path '%s' is longer than %zu bytes",
		    socket_opt, sizeof(socket_path) - 1);
	snprintf(socket_path, sizeof(socket_path), "%s", socket_opt);
}

/*
 * Attaches like any client.  This maps the heap at its base here too, which
 * the tool does not strictly need, but it keeps one code path for every
 * program that talks to aclheapd, and lets `roots` look up block sizes.
 */
static void
ctl_connect(void)
{
	int rc;

	resolve_socket();
	frame_arena_init(&arena, arena_buf, sizeof(arena_buf));
	if ((rc = conn_attach(socket_path)) == 0)
		return;
	if (unreachable(rc))
		unreachable_exit(rc);
	errx(EXIT_FAILURE, "%s", conn_lasterr()[0] != '\0' ? conn_lasterr() :
	    strerror(-rc));
}

/*
 * One request; its reply, or an exit with the right status.  A reply with an
 * error is the daemon's answer (exit 1); no reply at all means the daemon
 * went away (exit 3).
 */
static Aclheap__Reply *
ctl_request(const char *what, Aclheap__Request *q, int want, int *fdp)
{
	Aclheap__Reply *r = NULL;
	int rc;

	rc = conn_request(q, &r, &arena, fdp);
	if (rc != 0 && r == NULL && unreachable(rc))
		unreachable_exit(rc);
	if (rc != 0)
		errx(EXIT_FAILURE, "%s: %s (%s)", what, conn_lasterr()[0] ?
		    conn_lasterr() : "request failed", strerror(-rc));
	if ((int)r->body_case != want)
		errx(EXIT_FAILURE, "%s: aclheapd answered with an unexpected "
		    "reply (%d)", what, (int)r->body_case);
	return r;
}

/* ------------------------------------------------------------------ */
/* Figures shared by status (live) and inspect (offline) */

struct cls_fig {
	uint32_t block_size;
	uint64_t slabs, used, free, req;
};

struct figures {
	struct cls_fig cls[SHM_NCLASSES];
	int ncls;
	uint64_t large_blocks, large_bytes, large_req;
	uint64_t blocks, req, cached, slabs_used, slabs_total;
};

static void
print_used_line(const struct figures *f)
{
	char a[32], b[32], c[32];
	uint64_t used = f->slabs_used << SHM_SLAB_SHIFT;
	uint64_t total = f->slabs_total << SHM_SLAB_SHIFT;

	printf("used        %s of %s (%.1f%%), %s free\n",
	    fmt_bytes(a, sizeof(a), used), fmt_bytes(b, sizeof(b), total),
	    pct(used, total), fmt_bytes(c, sizeof(c), total - used));
}

/* The class table in memcached's terms: block ~ chunk, slab ~ page. */
static void
print_classes(const struct figures *f)
{
	const struct cls_fig *c;
	char a[32], b[32];
	uint64_t out;
	int i, any = 0;

	for (i = 0; i < f->ncls; i++) {
		c = &f->cls[i];
		if (c->slabs == 0)
			continue;
		if (!any)
			printf("\n%7s %6s %9s %9s %11s %11s %7s\n", "block",
			    "slabs", "used", "free", "requested",
			    "handed out", "fill");
		any = 1;
		out = c->used * c->block_size;
		printf("%7u %6" PRIu64 " %9" PRIu64 " %9" PRIu64 " %11s "
		    "%11s %6.1f%%\n", c->block_size, c->slabs, c->used,
		    c->free, fmt_bytes(a, sizeof(a), c->req),
		    fmt_bytes(b, sizeof(b), out), pct(c->req, out));
	}
	if (f->large_blocks > 0) {
		if (!any)
			printf("\n%7s %6s %9s %9s %11s %11s %7s\n", "block",
			    "slabs", "used", "free", "requested",
			    "handed out", "fill");
		any = 1;
		printf("%7s %6" PRIu64 " %9" PRIu64 " %9s %11s %11s "
		    "%6.1f%%\n", "large", f->large_bytes >> SHM_SLAB_SHIFT,
		    f->large_blocks, "-", fmt_bytes(a, sizeof(a), f->large_req),
		    fmt_bytes(b, sizeof(b), f->large_bytes),
		    pct(f->large_req, f->large_bytes));
	}
	if (!any)
		printf("\nno blocks in use\n");
}

static void
json_classes(const struct figures *f)
{
	const struct cls_fig *c;
	int i;

	jopen("classes", '[');
	for (i = 0; i < f->ncls; i++) {
		c = &f->cls[i];
		jopen(NULL, '{');
		ju64("block_size", c->block_size);
		ju64("slabs", c->slabs);
		ju64("blocks_in_use", c->used);
		ju64("blocks_free", c->free);
		ju64("bytes_requested", c->req);
		ju64("bytes_handed_out", c->used * c->block_size);
		jclose('}');
	}
	jclose(']');
}

/* ------------------------------------------------------------------ */
/* Argument helpers */

static int
parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/*
 * getopt_long over a command's own arguments; argv[0] is the command name.
 * Every command takes --json.  Returns the option, -1 at the end, and exits
 * 2 on an unknown option or a missing argument.
 */
static int
cmd_getopt(int argc, char **argv, const char *shortopts,
    const struct option *extra)
{
	static struct option opts[16];
	char shorts[32];
	int i, n = 0, c;

	for (i = 0; extra != NULL && extra[i].name != NULL && n < 13; i++)
		opts[n++] = extra[i];
	opts[n++] = (struct option){ "json", no_argument, NULL, 'j' };
	opts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	memset(&opts[n], 0, sizeof(opts[n]));
	snprintf(shorts, sizeof(shorts), "h%s", shortopts);
	c = getopt_long(argc, argv, shorts, opts, NULL);
	if (c == 'j') {
		json = 1;
		return cmd_getopt(argc, argv, shortopts, extra);
	}
	if (c == 'h') {
		/* Asked for: the whole help, on stdout, and success. */
		fputs(usage_text, stdout);
		exit(EXIT_SUCCESS);
	}
	if (c == '?') {
		warnx("%s: unknown option or missing argument: %s", argv[0],
		    argv[optind - 1]);
		usage();
	}
	return c;
}

static void
cmd_start(void)
{
	optind = 0;	/* GNU: re-initialise for a new argument vector */
	opterr = 0;
}

static void
no_more_args(int argc, char **argv)
{
	if (optind < argc) {
		warnx("%s: unexpected argument '%s'", argv[0], argv[optind]);
		usage();
	}
}

/* ------------------------------------------------------------------ */
/* status */

static void
figures_from_stats(const Aclheap__StatsReply *s, struct figures *f)
{
	size_t i;
	uint64_t small_req = 0;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < s->n_classes && i < SHM_NCLASSES; i++) {
		f->cls[i].block_size = s->classes[i]->block_size;
		f->cls[i].slabs = s->classes[i]->slabs;
		f->cls[i].used = s->classes[i]->blocks_in_use;
		f->cls[i].free = s->classes[i]->blocks_free;
		f->cls[i].req = s->classes[i]->bytes_requested;
		small_req += f->cls[i].req;
	}
	f->ncls = (int)i;
	f->large_blocks = s->large_blocks;
	f->large_bytes = s->large_bytes;
	/* The daemon sends the total requested; the large share is the rest. */
	f->large_req = s->bytes_requested > small_req ?
	    s->bytes_requested - small_req : 0;
	f->blocks = s->blocks_in_use;
	f->req = s->bytes_requested;
	f->cached = s->blocks_cached;
	f->slabs_total = s->slabs_total;
	f->slabs_used = s->slabs_total - s->slabs_free;
}

static int
cmd_status(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Stats m = ACLHEAP__STATS__INIT;
	Aclheap__StatsReply *s;
	struct figures f;
	char a[64], b[64], c[64], id[40];
	uint64_t end, now;

	cmd_start();
	while (cmd_getopt(argc, argv, "", NULL) != -1)
		;
	no_more_args(argc, argv);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_STATS;
	q.stats = &m;
	s = ctl_request("status", &q, ACLHEAP__REPLY__BODY_STATS, NULL)->stats;
	figures_from_stats(s, &f);
	fmt_hex(id, sizeof(id), s->identity.data, s->identity.len);
	end = s->heap_base + s->size;

	if (json) {
		jopen(NULL, '{');
		jstr("version", s->version);
		ju64("pid", s->pid);
		jstr("socket", s->socket_path[0] ? s->socket_path :
		    socket_path);
		jstr("identity", id);
		ju64("base", s->heap_base);
		ju64("size", s->size);
		ju64("data_start", s->data_start);
		ju64("slabs_total", s->slabs_total);
		ju64("slabs_free", s->slabs_free);
		ju64("bytes_in_use", s->bytes_in_use);
		ju64("bytes_free", s->slabs_free << SHM_SLAB_SHIFT);
		ju64("blocks_in_use", s->blocks_in_use);
		ju64("blocks_cached", s->blocks_cached);
		ju64("bytes_requested", s->bytes_requested);
		ju64("large_blocks", s->large_blocks);
		ju64("large_bytes", s->large_bytes);
		ju64("roots", s->roots);
		ju64("clients", s->clients);
		ju64("generation", s->generation);
		ju64("epoch", s->epoch);
		jstr("image_path", s->image_path);
		jopen("last_checkpoint", '{');
		if (s->ckpt_time != 0) {
			ju64("time", s->ckpt_time);
			jdouble("duration_ms", s->ckpt_duration_us / 1000.0);
			ju64("bytes", s->ckpt_bytes);
		} else {
			jnull("time");
			jnull("duration_ms");
			jnull("bytes");
		}
		if (s->ckpt_kind[0] != '\0') {
			jstr("kind", s->ckpt_kind);
			jstr("reason", s->ckpt_reason);
			ju64("slabs", s->ckpt_slabs);
		} else {
			jnull("kind");
			jnull("reason");
			jnull("slabs");
		}
		jstr("path", s->image_path);
		jclose('}');
		jopen("chain", '{');
		ju64("deltas", s->chain_deltas);
		ju64("bytes", s->chain_bytes);
		jclose('}');
		ju64("uptime_s", s->uptime_s);
		json_classes(&f);
		jclose('}');
		return 0;
	}

	print_used_line(&f);
	printf("heap        0x%" PRIx64 "-0x%" PRIx64 ", %s (%s metadata)\n",
	    s->heap_base, end, fmt_bytes(a, sizeof(a), s->size),
	    fmt_bytes(b, sizeof(b), s->data_start - s->heap_base));
	printf("blocks      %" PRIu64 " in use (%" PRIu64 " large), %s "
	    "requested, %" PRIu64 " cached\n", s->blocks_in_use,
	    s->large_blocks, fmt_bytes(a, sizeof(a), s->bytes_requested),
	    s->blocks_cached);
	printf("roots       %" PRIu64 "\n", s->roots);
	printf("clients     %" PRIu64 "\n", s->clients);
	if (s->ckpt_time != 0) {
		now = (uint64_t)time(NULL);
		printf("checkpoint  %s (%s ago), %s in %.1f ms",
		    fmt_time(a, sizeof(a), s->ckpt_time),
		    fmt_duration(b, sizeof(b), now > s->ckpt_time ?
		    now - s->ckpt_time : 0),
		    fmt_bytes(c, sizeof(c), s->ckpt_bytes),
		    s->ckpt_duration_us / 1000.0);
		if (s->ckpt_kind[0] != '\0')
			printf(", %s (%s)", s->ckpt_kind, s->ckpt_reason);
		printf("\n");
	} else
		printf("checkpoint  none since aclheapd started\n");
	printf("image       %s (generation %" PRIu64 ")\n", s->image_path,
	    s->generation);
	printf("chain       %s: the base and %u deltas\n", fmt_bytes(a,
	    sizeof(a), s->chain_bytes), s->chain_deltas);
	printf("daemon      aclheapd %s, pid %u, up %s\n", s->version, s->pid,
	    fmt_duration(a, sizeof(a), s->uptime_s));
	printf("socket      %s\n", s->socket_path[0] ? s->socket_path :
	    socket_path);
	printf("identity    %s, epoch %" PRIu64 "\n", id, s->epoch);
	print_classes(&f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* dump */

static void
split_path(const char *path, char *dir, size_t dlen, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		snprintf(dir, dlen, ".");
		*base = path;
	} else if (slash == path) {
		snprintf(dir, dlen, "/");
		*base = slash + 1;
	} else {
		snprintf(dir, dlen, "%.*s", (int)(slash - path), path);
		*base = slash + 1;
	}
}

/* Asks for a Dump; the image's descriptor (and *dp), or an exit. */
static int
dump_request(Aclheap__DumpReply **dp)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Dump m = ACLHEAP__DUMP__INIT;
	struct stat st;
	int fd = -1;

	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_DUMP;
	q.dump = &m;
	*dp = ctl_request("dump", &q, ACLHEAP__REPLY__BODY_DUMP, &fd)->dump;
	if (fd < 0)
		errx(EXIT_FAILURE, "dump: aclheapd sent no image descriptor");
	if (fstat(fd, &st) == -1)
		err(EXIT_FAILURE, "dump: the image descriptor");
	if ((uint64_t)st.st_size != (*dp)->bytes)
		errx(EXIT_FAILURE, "dump: the image holds %jd bytes, aclheapd "
		    "announced %" PRIu64, (intmax_t)st.st_size, (*dp)->bytes);
	return fd;
}

/*
 * Copies the image the daemon handed over (fd, bytes long) to ofd, named
 * what in messages; on failure removes unlink_on_error, if any, and exits.
 * Closes fd.
 */
static void
dump_copy(int fd, uint64_t bytes, int ofd, const char *what,
    const char *unlink_on_error)
{
	uint64_t off = 0;
	ssize_t n;
	char *buf;
	int rc;

	if ((buf = malloc(COPY_CHUNK)) == NULL)
		err(EXIT_FAILURE, "dump");
	while (off < bytes) {
		/* pread: the descriptor's offset is wherever the writer left
		 * it, and it is not ours to move. */
		n = pread(fd, buf, COPY_CHUNK, (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n == 0 ? ENODATA : errno;
			if (unlink_on_error != NULL)
				unlink(unlink_on_error);
			errno = rc;
			err(EXIT_FAILURE, "dump: reading the image at offset %"
			    PRIu64, off);
		}
		if ((rc = image_write_all(ofd, buf, (size_t)n)) != 0) {
			if (unlink_on_error != NULL)
				unlink(unlink_on_error);
			errno = -rc;
			err(EXIT_FAILURE, "dump: writing %s", what);
		}
		off += (uint64_t)n;
	}
	free(buf);
	close(fd);
}

/*
 * dump --out -: the image on standard output, for a pipe (to ssh and
 * 'aclheapctl restore -' on another host) or a redirection.  What was
 * written goes to standard error, which is not part of the image.
 */
static int
dump_stdout(void)
{
	Aclheap__DumpReply *d;
	char hb[32];
	int fd;

	if (isatty(STDOUT_FILENO))
		errx(EXIT_FAILURE, "dump: standard output is a terminal; "
		    "redirect it to a file or a pipe");
	fd = dump_request(&d);
	dump_copy(fd, d->bytes, STDOUT_FILENO, "standard output", NULL);
	if (!json)
		fprintf(stderr, "dumped %" PRIu64 " bytes (%s) of generation %"
		    PRIu64 " to standard output\n", d->bytes,
		    fmt_bytes(hb, sizeof(hb), d->bytes), d->generation);
	return 0;
}

static int
cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	Aclheap__DumpReply *d;
	const char *out = NULL, *name;
	char dir[4096], tmp[4200], tmpname[4200], errbuf[512], hb[32];
	int c, fd = -1, ofd;

	cmd_start();
	while ((c = cmd_getopt(argc, argv, "o:", opts)) != -1)
		if (c == 'o')
			out = optarg;
	no_more_args(argc, argv);
	if (out == NULL || *out == '\0') {
		warnx("dump: --out FILE (or - for standard output) is required");
		usage();
	}
	if (strcmp(out, "-") == 0)
		return dump_stdout();
	split_path(out, dir, sizeof(dir), &name);
	if (*name == '\0')
		errx(EXIT_FAILURE, "dump: %s names a folder, not a file", out);
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	snprintf(tmpname, sizeof(tmpname), "%s.tmp", name);

	fd = dump_request(&d);

	/* Same discipline as the daemon's own images: temp, fsync, rename. */
	ofd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ofd == -1)
		err(EXIT_FAILURE, "dump: %s", tmp);
	dump_copy(fd, d->bytes, ofd, tmp, tmp);
	if (image_commit(ofd, dir, tmpname, name, errbuf,
	    sizeof(errbuf)) != 0) {
		unlink(tmp);
		errx(EXIT_FAILURE, "dump: %s", errbuf);
	}
	if (json) {
		jopen(NULL, '{');
		jstr("path", out);
		ju64("bytes", d->bytes);
		ju64("generation", d->generation);
		jclose('}');
	} else
		printf("dumped %" PRIu64 " bytes (%s) of generation %" PRIu64
		    " to %s\n", d->bytes, fmt_bytes(hb, sizeof(hb), d->bytes),
		    d->generation, out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* blocks */

static int
class_index(uint64_t size)
{
	int i;

	for (i = 0; i < SHM_NCLASSES; i++)
		if (slab_class_size[i] == size)
			return i;
	return -1;
}

static int
cmd_blocks(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "class", required_argument, NULL, 'c' },
		{ "large", no_argument, NULL, 'l' },
		{ "range", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Blocks m = ACLHEAP__BLOCKS__INIT;
	Aclheap__BlocksReply *br;
	Aclheap__Block *b;
	uint64_t v, lo = 0, hi = 0, count = 0, req = 0, usable = 0;
	char *dash, a[32], u[32];
	int c, cls = -1, large = 0, have_cls = 0, i;
	size_t k;

	cmd_start();
	while ((c = cmd_getopt(argc, argv, "", opts)) != -1) {
		switch (c) {
		case 'c':
			if (parse_u64(optarg, &v) != 0 ||
			    (cls = class_index(v)) < 0) {
				warnx("blocks: --class takes a block size, one "
				    "of:");
				for (i = 0; i < SHM_NCLASSES; i++)
					fprintf(stderr, "%s%u", i ? " " : "  ",
					    slab_class_size[i]);
				fputc('\n', stderr);
				exit(EXIT_USAGE);
			}
			have_cls = 1;
			break;
		case 'l':
			large = 1;
			break;
		case 'r':
			if ((dash = strchr(optarg, '-')) == NULL) {
				warnx("blocks: --range takes LO-HI");
				usage();
			}
			*dash = '\0';
			if (parse_u64(optarg, &lo) != 0 ||
			    parse_u64(dash + 1, &hi) != 0 || hi <= lo) {
				warnx("blocks: --range LO-HI needs two "
				    "addresses with LO < HI");
				usage();
			}
			break;
		}
	}
	no_more_args(argc, argv);
	if (have_cls && large) {
		warnx("blocks: --class and --large exclude each other");
		usage();
	}
	ctl_connect();

	m.cls = large ? -2 : have_cls ? cls : -1;
	m.lo = lo;
	m.hi = hi;
	q.body_case = ACLHEAP__REQUEST__BODY_BLOCKS;
	q.blocks = &m;
	if (json)
		printf("[");
	else
		printf("%-16s %14s %14s\n", "address", "requested", "usable");
	/* Each page is printed as it arrives: a big heap never sits in our
	 * memory, and a pager shows the first lines at once. */
	for (;;) {
		br = ctl_request("blocks", &q, ACLHEAP__REPLY__BODY_BLOCKS,
		    NULL)->blocks;
		for (k = 0; k < br->n_blocks; k++) {
			b = br->blocks[k];
			if (json)
				printf("%s\n{\"addr\":%" PRIu64
				    ",\"requested\":%" PRIu64 ",\"usable\":%"
				    PRIu64 "}", count ? "," : "", b->addr,
				    b->req, b->usable);
			else
				printf("0x%-14" PRIx64 " %14" PRIu64 " %14"
				    PRIu64 "\n", b->addr, b->req, b->usable);
			count++;
			req += b->req;
			usable += b->usable;
		}
		fflush(stdout);
		if (br->next == 0)
			break;
		if (br->next <= m.cursor)
			errx(EXIT_FAILURE, "blocks: aclheapd's cursor went "
			    "backwards (%" PRIu64 " after %" PRIu64 ")",
			    br->next, m.cursor);
		m.cursor = br->next;
	}
	if (json)
		printf("%s]\n", count ? "\n" : "");
	else
		printf("%" PRIu64 " block%s, %s requested, %s usable\n",
		    count, plural(count), fmt_bytes(a, sizeof(a), req),
		    fmt_bytes(u, sizeof(u), usable));
	return 0;
}

/* ------------------------------------------------------------------ */
/* roots */

/* A heap address as it lies in seg, which may be scratch memory. */
static int
lookup_block(const struct shm_seg *seg, uint64_t addr, struct slab_block *b)
{
	uintptr_t local;

	if (addr < seg->base || addr - seg->base >= seg->size)
		return -EINVAL;
	local = (uintptr_t)seg->sb + (uintptr_t)(addr - seg->base);
	return slab_block_lookup(seg, local, b);
}

static int
root_cmp(const void *a, const void *b)
{
	const Aclheap__Root *x = *(Aclheap__Root *const *)a;
	const Aclheap__Root *y = *(Aclheap__Root *const *)b;

	return strcmp(x->name, y->name);
}

/* One root: its address and, when it points at a live block, its size. */
static void
print_root(const struct shm_seg *seg, const char *name, uint64_t value)
{
	struct slab_block b;
	int live = seg != NULL && lookup_block(seg, value, &b) == 0;
	char sz[32];

	if (json) {
		jopen(NULL, '{');
		jstr("name", name);
		ju64("addr", value);
		if (live)
			ju64("requested", b.req);
		else
			jnull("requested");
		jclose('}');
		return;
	}
	if (live)
		snprintf(sz, sizeof(sz), "%" PRIu64, b.req);
	else
		snprintf(sz, sizeof(sz), "-");
	printf("0x%-14" PRIx64 " %12s  %s\n", value, sz, name);
}

static int
cmd_roots(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__RootList m = ACLHEAP__ROOT_LIST__INIT;
	Aclheap__RootListReply *rl;
	size_t i;

	cmd_start();
	while (cmd_getopt(argc, argv, "", NULL) != -1)
		;
	no_more_args(argc, argv);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_LIST;
	q.root_list = &m;
	rl = ctl_request("roots", &q, ACLHEAP__REPLY__BODY_ROOTS, NULL)->roots;
	/* No roots decode as a NULL array, which qsort() may not be given. */
	if (rl->n_roots > 0)
		qsort(rl->roots, rl->n_roots, sizeof(rl->roots[0]), root_cmp);
	if (json)
		jopen(NULL, '[');
	else if (rl->n_roots == 0)
		printf("no roots\n");
	else
		printf("%-16s %12s  %s\n", "address", "requested", "name");
	for (i = 0; i < rl->n_roots; i++)
		print_root(conn_mapped ? &conn_seg : NULL, rl->roots[i]->name,
		    rl->roots[i]->value);
	if (json)
		jclose(']');
	return 0;
}

/* ------------------------------------------------------------------ */
/* hexdump */

static void
hex_line(uint64_t addr, const uint8_t *p, size_t n)
{
	char asc[17];
	size_t i;

	/* hexdump -C, with the heap address (12 digits) in place of the
	 * offset; one space, not two, each side of the bytes keeps a line
	 * at 80 columns. */
	printf("%012" PRIx64, addr);
	for (i = 0; i < 16; i++) {
		if (i == 8)
			putchar(' ');
		if (i < n)
			printf(" %02x", p[i]);
		else
			fputs("   ", stdout);
		asc[i] = i < n ? (p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] :
		    '.') : '\0';
	}
	asc[n < 16 ? n : 16] = '\0';
	printf(" |%s|\n", asc);
}

static int
cmd_hexdump(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Read m = ACLHEAP__READ__INIT;
	Aclheap__ReadReply *rr;
	uint64_t addr, len = HEXDUMP_DEFAULT, off = 0, lo, hi;
	uint8_t *data;
	size_t i;
	int squeezed = 0;

	cmd_start();
	while (cmd_getopt(argc, argv, "", NULL) != -1)
		;
	if (optind >= argc) {
		warnx("hexdump: ADDR is missing");
		usage();
	}
	if (parse_u64(argv[optind], &addr) != 0) {
		warnx("hexdump: '%s' is not an address (hex needs 0x)",
		    argv[optind]);
		usage();
	}
	if (++optind < argc) {
		if (seg_parse_size(argv[optind], &len) != 0 || len == 0) {
			warnx("hexdump: '%s' is not a length", argv[optind]);
			usage();
		}
		optind++;
	}
	no_more_args(argc, argv);
	if (len > HEXDUMP_MAX)
		errx(EXIT_FAILURE, "hexdump: %" PRIu64 " bytes is over the "
		    "limit of %u; use 'dump --out FILE' for whole heaps", len,
		    HEXDUMP_MAX);
	ctl_connect();
	lo = conn_seg.base;
	hi = conn_seg.base + conn_seg.size;
	/* Refuse here too, with the range in the message, rather than
	 * send a request that the daemon must refuse. */
	if (addr < lo || addr >= hi || len > hi - addr)
		errx(EXIT_FAILURE, "hexdump: 0x%" PRIx64 "+%" PRIu64 " is "
		    "outside the heap 0x%" PRIx64 "-0x%" PRIx64, addr, len, lo,
		    hi);
	if ((data = malloc(len)) == NULL)
		err(EXIT_FAILURE, "hexdump");
	q.body_case = ACLHEAP__REQUEST__BODY_READ;
	q.read = &m;
	while (off < len) {
		m.addr = addr + off;
		m.len = (uint32_t)(len - off < READ_MAX ? len - off : READ_MAX);
		rr = ctl_request("hexdump", &q, ACLHEAP__REPLY__BODY_READ,
		    NULL)->read;
		if (rr->data.len != m.len)
			errx(EXIT_FAILURE, "hexdump: asked for %u bytes at "
			    "0x%" PRIx64 ", got %zu", m.len, m.addr,
			    rr->data.len);
		memcpy(data + off, rr->data.data, rr->data.len);
		off += rr->data.len;
	}
	if (json) {
		jopen(NULL, '{');
		ju64("addr", addr);
		ju64("len", len);
		jkey("hex");
		putchar('"');
		for (i = 0; i < len; i++)
			printf("%02x", data[i]);
		putchar('"');
		jclose('}');
		free(data);
		return 0;
	}
	for (off = 0; off < len; off += 16) {
		/* Like hexdump: a run of lines equal to the one before is a
		 * single '*'. */
		if (off > 0 && len - off >= 16 &&
		    memcmp(data + off, data + off - 16, 16) == 0) {
			if (!squeezed)
				printf("*\n");
			squeezed = 1;
			continue;
		}
		squeezed = 0;
		hex_line(addr + off, data + off, len - off < 16 ? len - off :
		    16);
	}
	printf("%012" PRIx64 "\n", addr + len);
	free(data);
	return 0;
}

/* ------------------------------------------------------------------ */
/* checkpoint */

static int
cmd_checkpoint(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "full", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Checkpoint m = ACLHEAP__CHECKPOINT__INIT;
	Aclheap__CheckpointReply *cr;
	char hb[32];
	int c;

	cmd_start();
	while ((c = cmd_getopt(argc, argv, "f", opts)) != -1)
		if (c == 'f')
			m.full = 1;
	no_more_args(argc, argv);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_CHECKPOINT;
	q.checkpoint = &m;
	cr = ctl_request("checkpoint", &q, ACLHEAP__REPLY__BODY_CHECKPOINT,
	    NULL)->checkpoint;
	if (json) {
		jopen(NULL, '{');
		jstr("path", cr->path);
		ju64("bytes", cr->bytes);
		jdouble("duration_ms", cr->duration_us / 1000.0);
		ju64("generation", cr->generation);
		jstr("kind", cr->kind);
		jstr("reason", cr->reason);
		ju64("slabs", cr->slabs);
		jclose('}');
	} else if (strcmp(cr->kind, "nothing") == 0)
		printf("checkpoint %" PRIu64 " stands: nothing changed, nothing "
		    "written (%.1f ms)\n", cr->generation,
		    cr->duration_us / 1000.0);
	else
		printf("checkpoint %" PRIu64 " written to %s: %" PRIu64
		    " bytes (%s) in %.1f ms, %s (%s)\n", cr->generation,
		    cr->path, cr->bytes, fmt_bytes(hb, sizeof(hb), cr->bytes),
		    cr->duration_us / 1000.0, cr->kind, cr->reason);
	return 0;
}

/* ------------------------------------------------------------------ */
/* verify and inspect: images offline */

/* Loads and validates an image; exits 1 with the precise error. */
static void
load_image(const char *what, const char *path, struct shm_seg *seg,
    struct image_info *info, struct shm_report *rep)
{
	char errbuf[1024], why[512];

	if (image_load_offline(path, seg, info, errbuf, sizeof(errbuf)) != 0)
		goto fail;
	/* Checksums prove the bytes are what was written; the invariants
	 * prove that what was written makes sense. */
	if (shm_check_still(seg, rep, why, sizeof(why)) != 0) {
		snprintf(errbuf, sizeof(errbuf), "%s: invariants: %s", path,
		    why);
		image_unload_offline(seg);
		goto fail;
	}
	return;
fail:
	if (json) {
		jopen(NULL, '{');
		jstr("image", path);
		jbool("ok", 0);
		jstr("error", errbuf);
		jclose('}');
		fflush(stdout);
	}
	errx(EXIT_FAILURE, "%s: %s", what, errbuf);
}

static int
verify_image(const char *path)
{
	struct shm_seg seg;
	struct image_info info;
	struct shm_report r;

	load_image("verify", path, &seg, &info, &r);
	if (json) {
		jopen(NULL, '{');
		jstr("image", path);
		jbool("ok", 1);
		ju64("generation", info.hdr.generation);
		ju64("base_generation", info.base_generation);
		ju64("deltas", info.links);
		ju64("sections", info.sections);
		ju64("bytes", info.bytes);
		ju64("blocks_live", r.blocks_live);
		ju64("blocks_orphaned", r.blocks_orphaned);
		ju64("large_blocks", r.large_blocks);
		ju64("slabs_small", r.slabs_small);
		ju64("slabs_large", r.slabs_large);
		ju64("slabs_free", r.slabs_free);
		ju64("roots", r.roots);
		jclose('}');
	} else
		printf("OK: %s: checksums of %" PRIu64 " section%s (%" PRIu64
		    " delta%s) and all invariants hold; generation %" PRIu64
		    ", %" PRIu64 " block%s live (%" PRIu64 " large), %" PRIu64
		    " orphaned claim%s, %" PRIu64 " root%s\n", path,
		    info.sections, plural(info.sections), info.links,
		    plural(info.links), info.hdr.generation, r.blocks_live,
		    plural(r.blocks_live), r.large_blocks, r.blocks_orphaned,
		    plural(r.blocks_orphaned), r.roots, plural(r.roots));
	image_unload_offline(&seg);
	return 0;
}

static int
cmd_verify(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Verify m = ACLHEAP__VERIFY__INIT;
	Aclheap__VerifyReply *v;
	Aclheap__Reply *r = NULL;
	int rc;

	cmd_start();
	while (cmd_getopt(argc, argv, "", NULL) != -1)
		;
	if (optind < argc) {
		optind++;
		no_more_args(argc, argv);
		return verify_image(argv[optind - 1]);
	}
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_VERIFY;
	q.verify = &m;
	/* Not ctl_request: a damaged heap is an answer worth printing. */
	rc = conn_request(&q, &r, &arena, NULL);
	if (rc != 0 && r == NULL) {
		if (unreachable(rc))
			unreachable_exit(rc);
		errx(EXIT_FAILURE, "verify: %s", conn_lasterr());
	}
	if (rc != 0) {
		if (json) {
			jopen(NULL, '{');
			jstr("socket", socket_path);
			jbool("ok", 0);
			jstr("error", conn_lasterr());
			jclose('}');
			fflush(stdout);
		}
		errx(EXIT_FAILURE, "verify: live heap at %s: %s", socket_path,
		    conn_lasterr());
	}
	if (r->body_case != ACLHEAP__REPLY__BODY_VERIFY)
		errx(EXIT_FAILURE, "verify: aclheapd answered with an "
		    "unexpected reply (%d)", (int)r->body_case);
	v = r->verify;
	if (json) {
		jopen(NULL, '{');
		jstr("socket", socket_path);
		jbool("ok", 1);
		ju64("blocks_live", v->blocks_live);
		ju64("blocks_orphaned", v->blocks_orphaned);
		ju64("slabs_small", v->slabs_small);
		ju64("slabs_large", v->slabs_large);
		ju64("slabs_free", v->slabs_free);
		jclose('}');
	} else
		printf("OK: live heap at %s: all invariants hold; %" PRIu64
		    " block%s live, %" PRIu64 " claimed not handed out; slabs: %"
		    PRIu64 " small, %" PRIu64 " large, %" PRIu64 " free\n",
		    socket_path, v->blocks_live, plural(v->blocks_live),
		    v->blocks_orphaned, v->slabs_small, v->slabs_large, v->slabs_free);
	return 0;
}

/* The figures the daemon's status reports, from a loaded image. */
static void
figures_from_seg(const struct shm_seg *seg, struct figures *f)
{
	struct shm_stats st;
	int i;

	shm_stats(seg, &st);
	memset(f, 0, sizeof(*f));
	f->ncls = SHM_NCLASSES;
	for (i = 0; i < SHM_NCLASSES; i++) {
		f->cls[i].block_size = slab_class_size[i];
		f->cls[i].slabs = st.cls[i].slabs;
		f->cls[i].used = st.cls[i].used;
		f->cls[i].free = st.cls[i].free;
		f->cls[i].req = st.cls[i].req;
	}
	f->slabs_total = seg->nslabs;
	f->slabs_used = st.slabs_used;
	f->large_blocks = st.large_blocks;
	f->large_bytes = st.large_bytes;
	f->large_req = st.large_req;
	f->blocks = st.blocks;
	f->req = st.req;
	f->cached = st.cached;
}

static int
cmd_inspect(int argc, char **argv)
{
	struct shm_seg seg;
	struct image_info info;
	struct shm_report r;
	struct figures f;
	const struct image_header *h = &info.hdr;
	char a[64], b[64], id[40];
	const char *path;
	int i;

	cmd_start();
	while (cmd_getopt(argc, argv, "", NULL) != -1)
		;
	if (optind >= argc) {
		warnx("inspect: IMAGE is missing");
		usage();
	}
	path = argv[optind++];
	no_more_args(argc, argv);
	load_image("inspect", path, &seg, &info, &r);
	figures_from_seg(&seg, &f);
	fmt_hex(id, sizeof(id), h->identity, sizeof(h->identity));

	if (json) {
		jopen(NULL, '{');
		jstr("image", path);
		jbool("ok", 1);
		ju64("bytes", info.bytes);
		ju64("format", h->version);
		ju64("layout", h->layout);
		jstr("identity", id);
		ju64("base", h->base);
		ju64("size", h->size);
		ju64("slab_size", h->slab_size);
		ju64("slabs_total", h->nslabs);
		ju64("slabs_stored", info.slabs);
		ju64("sections", info.sections);
		ju64("generation", h->generation);
		ju64("base_generation", info.base_generation);
		ju64("base_bytes", info.base_bytes);
		ju64("deltas", info.links);
		ju64("time", h->time);
		ju64("created", seg.sb->created);
		ju64("epoch", atomic_load(&seg.sb->epoch));
		ju64("bytes_in_use", f.slabs_used << SHM_SLAB_SHIFT);
		ju64("bytes_free", (f.slabs_total - f.slabs_used) <<
		    SHM_SLAB_SHIFT);
		ju64("blocks_in_use", f.blocks);
		ju64("blocks_cached", f.cached);
		ju64("bytes_requested", f.req);
		ju64("large_blocks", f.large_blocks);
		ju64("large_bytes", f.large_bytes);
		json_classes(&f);
		jopen("roots", '[');
		for (i = 0; i < SHM_ROOTS; i++)
			if (seg.roots[i].name[0] != '\0')
				print_root(&seg, seg.roots[i].name,
				    atomic_load(&seg.roots[i].value));
		jclose(']');
		jclose('}');
		image_unload_offline(&seg);
		return 0;
	}

	print_used_line(&f);
	printf("image       %s, %s in %" PRIu64 " sections (%" PRIu64
	    " slabs stored)\n", path, fmt_bytes(a, sizeof(a), info.bytes),
	    info.sections, info.slabs);
	printf("written     %s, generation %" PRIu64 ", format %u layout %u\n",
	    fmt_time(a, sizeof(a), h->time), h->generation, h->version,
	    h->layout);
	printf("chain       base generation %" PRIu64 " (%s) and %" PRIu64
	    " deltas%s\n", info.base_generation, fmt_bytes(b, sizeof(b),
	    info.base_bytes), info.links, info.stale ?
	    " (stale deltas after them ignored)" : "");
	printf("heap        0x%" PRIx64 "-0x%" PRIx64 ", %s\n", h->base,
	    h->base + h->size, fmt_bytes(b, sizeof(b), h->size));
	printf("blocks      %" PRIu64 " in use (%" PRIu64 " large), %s "
	    "requested, %" PRIu64 " cached\n", f.blocks, f.large_blocks,
	    fmt_bytes(a, sizeof(a), f.req), f.cached);
	printf("roots       %" PRIu64 "\n", r.roots);
	printf("identity    %s, created %s\n", id, fmt_time(b, sizeof(b),
	    seg.sb->created));
	print_classes(&f);
	if (r.roots > 0) {
		printf("\n%-16s %12s  %s\n", "address", "requested", "name");
		for (i = 0; i < SHM_ROOTS; i++)
			if (seg.roots[i].name[0] != '\0')
				print_root(&seg, seg.roots[i].name,
				    atomic_load(&seg.roots[i].value));
	}
	image_unload_offline(&seg);
	return 0;
}

/* ------------------------------------------------------------------ */
/* clients */

static int
cmd_clients(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Clients m = ACLHEAP__CLIENTS__INIT;
	Aclheap__ClientsReply *cr;
	Aclheap__ClientInfo *ci;
	struct passwd *pw;
	char user[16], t[32];
	size_t i;

	cmd_start();
	while (cmd_getopt(argc, argv, "", NULL) != -1)
		;
	no_more_args(argc, argv);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_CLIENTS;
	q.clients = &m;
	cr = ctl_request("clients", &q, ACLHEAP__REPLY__BODY_CLIENTS,
	    NULL)->clients;
	if (json)
		jopen(NULL, '[');
	else
		printf("%7s %-10s %-16s %6s %10s  %s\n", "pid", "user", "name",
		    "leases", "requests", "since");
	for (i = 0; i < cr->n_clients; i++) {
		ci = cr->clients[i];
		if ((pw = getpwuid(ci->uid)) != NULL)
			snprintf(user, sizeof(user), "%s", pw->pw_name);
		else
			snprintf(user, sizeof(user), "%u", ci->uid);
		if (json) {
			jopen(NULL, '{');
			ju64("pid", ci->pid);
			ju64("uid", ci->uid);
			ju64("gid", ci->gid);
			jstr("user", user);
			jstr("name", ci->name);
			ju64("leases", ci->leases);
			ju64("requests", ci->requests);
			ju64("since", ci->since);
			jclose('}');
		} else
			printf("%7u %-10.10s %-16.16s %6u %10" PRIu64 "  %s\n",
			    ci->pid, user, ci->name, ci->leases, ci->requests,
			    fmt_time(t, sizeof(t), ci->since));
	}
	if (!json && cr->total > cr->n_clients)
		printf("(and %u more)\n", cr->total - (unsigned)cr->n_clients);
	if (json)
		jclose(']');
	return 0;
}

/* ------------------------------------------------------------------ */
/* restore */

/*
 * restore FILE|-: an image into the state folder of a heap whose daemon is
 * stopped, as STATE/heap.img, which the next aclheapd there loads.  The
 * state folder's lock (the one aclheapd holds while it runs) is taken for
 * the whole time, so no daemon serves that state meanwhile.  The image is
 * copied to a temporary file beside heap.img, checked as 'verify' checks,
 * and only then renamed over heap.img (fsync of file and folder): a bad
 * image changes nothing.
 *
 * A live segment of the heap (in /dev/shm, named by heap.id) would be
 * adopted at the next start in preference to any image; it is newer than
 * every image, so restore refuses unless told to discard it.
 */
/* Removes the deltas of a state folder's chain (heap.img.delta.*), and
 * makes that durable. */
static void
remove_deltas(const char *state)
{
	char p[PATH_MAX + 256];
	struct dirent *e;
	DIR *d;
	int fd;

	if ((d = opendir(state)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "heap.img.delta.", 15) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", state, e->d_name);
		if (unlink(p) == -1)
			warn("restore: removing %s", p);
	}
	closedir(d);
	if ((fd = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static int
cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 'd' },
		{ "discard-live", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	char state[4096], path[4200], live[128], name[64], buf[65536];
	char errbuf[1024], why[512], hb[32];
	const char *src, *dir = NULL, *e;
	struct shm_seg seg;
	struct image_info info;
	struct shm_report rep;
	struct stat sst;
	uint64_t total = 0;
	uint8_t liveid[16];
	ssize_t n;
	int c, lfd, in, ofd, rc, discard = 0, have_live = 0;

	cmd_start();
	while ((c = cmd_getopt(argc, argv, "d:", opts)) != -1)
		if (c == 'd')
			dir = optarg;
		else if (c == 'D')
			discard = 1;
	if (optind >= argc) {
		warnx("restore: IMAGE (a file, or - for standard input) is "
		    "missing");
		usage();
	}
	src = argv[optind++];
	no_more_args(argc, argv);
	if (dir == NULL && (e = getenv("STATE_DIRECTORY")) != NULL &&
	    *e == '/')
		dir = e;
	if (dir != NULL)
		snprintf(state, sizeof(state), "%s", dir);
	else if (statepath_own(state, sizeof(state), geteuid(),
	    getenv("XDG_STATE_HOME"), getenv("HOME")) != 0)
		errx(EXIT_USAGE, "restore: no state folder: give --state-dir");

	/* The daemon's lock: held by a running daemon, so a failure to take
	 * it means one serves this state. */
	snprintf(path, sizeof(path), "%s/aclheapd.lock", state);
	if ((lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		err(EXIT_FAILURE, "restore: %s", path);
	if (flock(lfd, LOCK_EX | LOCK_NB) == -1) {
		n = pread(lfd, buf, 31, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		errx(EXIT_FAILURE, "restore: aclheapd (pid %s) serves %s; stop "
		    "it first (a running heap is replaced by stopping it, not "
		    "under it)", buf[0] ? buf : "?", state);
	}
	if (heapid_read(state, liveid, name, sizeof(name)) == 0) {
		snprintf(live, sizeof(live), "/dev/shm%s", name);
		have_live = access(live, F_OK) == 0;
	}
	if (have_live && !discard)
		errx(EXIT_FAILURE, "restore: the heap's live segment %s is "
		    "still there and would be adopted instead of the image "
		    "(it is newer than any image); remove it, or pass "
		    "--discard-live", live);

	/* Copy to the temporary file and check it there. */
	if (strcmp(src, "-") == 0)
		in = STDIN_FILENO;
	else if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1)
		err(EXIT_FAILURE, "restore: %s", src);
	snprintf(path, sizeof(path), "%s/heap.img.restore", state);
	if ((ofd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		err(EXIT_FAILURE, "restore: %s", path);
	/* Root restoring for a daemon that runs as its own user (systemd's
	 * aclheap): the image is the state folder owner's, as the daemon's
	 * own images are, or that daemon could not read it. */
	if (geteuid() == 0 && stat(state, &sst) == 0 && sst.st_uid != 0 &&
	    fchown(ofd, sst.st_uid, sst.st_gid) == -1) {
		rc = errno;
		unlink(path);
		errno = rc;
		err(EXIT_FAILURE, "restore: giving %s to the state folder's "
		    "owner", path);
	}
	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0)
			break;
		if (n == -1 || (rc = image_write_all(ofd, buf,
		    (size_t)n)) != 0) {
			rc = n == -1 ? errno : -rc;
			unlink(path);
			errno = rc;
			err(EXIT_FAILURE, "restore: %s", n == -1 ? src : path);
		}
		total += (uint64_t)n;
	}
	if (in != STDIN_FILENO)
		close(in);
	if (image_load_offline(path, &seg, &info, errbuf,
	    sizeof(errbuf)) != 0) {
		unlink(path);
		errx(EXIT_FAILURE, "restore: %s is not a good image, nothing "
		    "changed: %s", strcmp(src, "-") == 0 ? "standard input" :
		    src, errbuf);
	}
	if (shm_check_still(&seg, &rep, why, sizeof(why)) != 0) {
		image_unload_offline(&seg);
		unlink(path);
		errx(EXIT_FAILURE, "restore: %s is not a good image, nothing "
		    "changed: invariants: %s", strcmp(src, "-") == 0 ?
		    "standard input" : src, why);
	}
	/* The deltas on top of the old base go first: on the new one they
	 * would be refused as damage (their parent is not it).  A crash
	 * before the rename leaves the old base alone, which loads. */
	remove_deltas(state);
	if (image_commit(ofd, state, "heap.img.restore", "heap.img", errbuf,
	    sizeof(errbuf)) != 0) {
		image_unload_offline(&seg);
		unlink(path);
		errx(EXIT_FAILURE, "restore: %s", errbuf);
	}
	/* Only now, with the image in place, does the live segment go. */
	if (have_live && unlink(live) == -1 && errno != ENOENT)
		warn("restore: removing %s", live);
	if (json) {
		jopen(NULL, '{');
		jstr("state_dir", state);
		ju64("bytes", total);
		ju64("generation", info.hdr.generation);
		ju64("base", info.hdr.base);
		ju64("size", info.hdr.size);
		ju64("blocks_live", rep.blocks_live);
		ju64("roots", rep.roots);
		jbool("discarded_live", have_live);
		jclose('}');
	} else
		printf("restored %" PRIu64 " bytes (%s) of generation %" PRIu64
		    " into %s/heap.img: heap 0x%" PRIx64 ", size %" PRIu64
		    " (start aclheapd with that --base and --size), %" PRIu64
		    " block%s live, %" PRIu64 " root%s%s\n", total,
		    fmt_bytes(hb, sizeof(hb), total), info.hdr.generation, state,
		    info.hdr.base, info.hdr.size, rep.blocks_live,
		    plural(rep.blocks_live), rep.roots, plural(rep.roots),
		    have_live ? "; the old live segment is removed" : "");
	image_unload_offline(&seg);
	close(lfd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* metrics */

/* One metric family: TYPE, HELP (and UNIT when it has one), then the
 * caller's samples. */
static void
om_family(const char *name, const char *type, const char *unit,
    const char *help)
{
	printf("# TYPE %s %s\n", name, type);
	if (unit != NULL)
		printf("# UNIT %s %s\n", name, unit);
	printf("# HELP %s %s\n", name, help);
}

static void
om_gauge(const char *name, const char *unit, const char *help, double v)
{
	om_family(name, "gauge", unit, help);
	printf("%s %.17g\n", name, v);
}

/* A label value, escaped as OpenMetrics wants (\\, \", \n). */
static void
om_label(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", stdout);
		else
			putchar(*s);
	}
	putchar('"');
}

/*
 * metrics: status's figures in the OpenMetrics text format, which
 * Prometheus scrapes and node-exporter's textfile collector reads.  An
 * unreachable daemon still gives a valid exposition, aclheap_up 0, so a
 * collector sees the outage (and the exit status is 3).
 */
static int
cmd_metrics(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Stats m = ACLHEAP__STATS__INIT;
	Aclheap__StatsReply *s;
	Aclheap__Reply *r = NULL;
	struct figures f;
	char id[40];
	int rc, i;

	cmd_start();
	while (cmd_getopt(argc, argv, "", NULL) != -1)
		;
	no_more_args(argc, argv);
	resolve_socket();
	frame_arena_init(&arena, arena_buf, sizeof(arena_buf));
	q.body_case = ACLHEAP__REQUEST__BODY_STATS;
	q.stats = &m;
	if ((rc = conn_attach(socket_path)) == 0)
		rc = conn_request(&q, &r, &arena, NULL);
	if (rc != 0 || r == NULL || r->body_case != ACLHEAP__REPLY__BODY_STATS) {
		om_gauge("aclheap_up", NULL, "1 if aclheapd answered", 0);
		printf("# EOF\n");
		fflush(stdout);
		warnx("metrics: aclheapd at %s: %s", socket_path,
		    conn_lasterr()[0] ? conn_lasterr() : strerror(-rc));
		exit(rc != 0 && unreachable(rc) ? EXIT_UNREACHABLE :
		    EXIT_FAILURE);
	}
	s = r->stats;
	figures_from_stats(s, &f);
	fmt_hex(id, sizeof(id), s->identity.data, s->identity.len);
	om_gauge("aclheap_up", NULL, "1 if aclheapd answered", 1);
	om_family("aclheap_daemon", "info", NULL, "aclheapd's version, "
	    "socket and heap identity");
	printf("aclheap_daemon_info{version=");
	om_label(s->version);
	printf(",socket=");
	om_label(s->socket_path[0] ? s->socket_path : socket_path);
	printf(",identity=");
	om_label(id);
	printf("} 1\n");
	om_gauge("aclheap_heap_size_bytes", "bytes", "bytes in the heap's "
	    "segment", (double)s->size);
	om_gauge("aclheap_data_bytes", "bytes", "bytes available to blocks",
	    (double)(s->slabs_total << SHM_SLAB_SHIFT));
	om_gauge("aclheap_free_bytes", "bytes", "bytes in free slabs",
	    (double)(s->slabs_free << SHM_SLAB_SHIFT));
	om_gauge("aclheap_in_use_bytes", "bytes", "bytes of slabs holding "
	    "blocks", (double)s->bytes_in_use);
	om_gauge("aclheap_requested_bytes", "bytes", "sum of the live blocks' "
	    "requested sizes", (double)s->bytes_requested);
	om_gauge("aclheap_blocks", NULL, "live blocks",
	    (double)s->blocks_in_use);
	om_gauge("aclheap_blocks_cached", NULL, "blocks claimed by clients' "
	    "caches and not handed out", (double)s->blocks_cached);
	om_gauge("aclheap_large_blocks", NULL, "live blocks of whole slabs "
	    "(extents)", (double)s->large_blocks);
	om_gauge("aclheap_large_bytes", "bytes", "bytes of extents",
	    (double)s->large_bytes);
	om_gauge("aclheap_roots", NULL, "named roots", (double)s->roots);
	om_gauge("aclheap_clients", NULL, "connected clients",
	    (double)s->clients);
	om_family("aclheap_checkpoints", "counter", NULL, "checkpoints "
	    "written (the image's generation)");
	printf("aclheap_checkpoints_total %" PRIu64 "\n", s->generation);
	if (s->ckpt_time != 0) {
		om_gauge("aclheap_last_checkpoint_timestamp_seconds", "seconds",
		    "when the last checkpoint was written, unix time",
		    (double)s->ckpt_time);
		om_gauge("aclheap_last_checkpoint_duration_seconds", "seconds",
		    "how long the last checkpoint took",
		    s->ckpt_duration_us / 1e6);
		om_gauge("aclheap_last_checkpoint_bytes", "bytes", "size of the "
		    "last checkpoint's image", (double)s->ckpt_bytes);
	}
	om_gauge("aclheap_uptime_seconds", "seconds", "seconds since aclheapd "
	    "started", (double)s->uptime_s);
	om_family("aclheap_class_slabs", "gauge", NULL, "slabs of each small "
	    "block size");
	for (i = 0; i < f.ncls; i++)
		printf("aclheap_class_slabs{block_size=\"%u\"} %" PRIu64 "\n",
		    f.cls[i].block_size, f.cls[i].slabs);
	om_family("aclheap_class_blocks", "gauge", NULL, "live blocks of each "
	    "small block size");
	for (i = 0; i < f.ncls; i++)
		printf("aclheap_class_blocks{block_size=\"%u\"} %" PRIu64 "\n",
		    f.cls[i].block_size, f.cls[i].used);
	om_family("aclheap_class_free_blocks", "gauge", NULL, "free blocks in "
	    "the slabs of each small block size");
	for (i = 0; i < f.ncls; i++)
		printf("aclheap_class_free_blocks{block_size=\"%u\"} %" PRIu64
		    "\n", f.cls[i].block_size, f.cls[i].free);
	om_family("aclheap_class_requested_bytes", "gauge", "bytes",
	    "requested bytes of each small block size's live blocks");
	for (i = 0; i < f.ncls; i++)
		printf("aclheap_class_requested_bytes{block_size=\"%u\"} %"
		    PRIu64 "\n", f.cls[i].block_size, f.cls[i].req);
	printf("# EOF\n");
	return 0;
}

/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*fn)(int, char **);
} commands[] = {
	{ "status", cmd_status },
	{ "dump", cmd_dump },
	{ "blocks", cmd_blocks },
	{ "roots", cmd_roots },
	{ "hexdump", cmd_hexdump },
	{ "checkpoint", cmd_checkpoint },
	{ "verify", cmd_verify },
	{ "inspect", cmd_inspect },
	{ "clients", cmd_clients },
	{ "metrics", cmd_metrics },
	{ "restore", cmd_restore },
};

static const char usage_text[] =
"usage: aclheapctl [-s SOCKET] COMMAND [ARGS] [--json]\n"
"\n"
"commands:\n"
"  status                     used and free, classes, checkpoint, daemon\n"
"  dump --out FILE|-          a consistent image of the live heap to FILE\n"
"                             (-: standard output)\n"
"  blocks [--class SIZE | --large] [--range LO-HI]\n"
"                             live blocks: address, requested, usable\n"
"  roots                      named roots and their addresses\n"
"  hexdump ADDR [LEN]         heap bytes at ADDR (LEN 256 unless given)\n"
"  checkpoint [--full]        persist now (what changed, or with --full a\n"
"                             whole new image); bytes, kind, time taken\n"
"  verify [IMAGE]             check the live heap, or an image and its\n"
"                             deltas offline\n"
"  inspect IMAGE              status of an image file, offline\n"
"  clients                    connected clients and what they hold\n"
"  metrics                    status in the OpenMetrics text format\n"
"  restore [--state-dir DIR] [--discard-live] IMAGE|-\n"
"                             IMAGE (-: standard input) as the heap.img of\n"
"                             a stopped daemon's state folder\n"
"\n"
"options:\n"
"  -s, --socket SOCKET        aclheapd's socket (else $ACLHEAP_SOCKET, else\n"
"                             the default)\n"
"      --json                 print JSON\n"
"  -h, --help                 this help\n"
"  -V, --version              print the version\n"
"\n"
"exit status: 0 done, 1 failed, 2 bad usage, 3 aclheapd unreachable\n";

/* Bad usage: the synopsis and where the rest is, not the whole help. */
static void
usage(void)
{
	fputs("usage: aclheapctl [-s SOCKET] COMMAND [ARGS] [--json]\n"
	    "'aclheapctl --help' lists the commands and options\n", stderr);
	exit(EXIT_USAGE);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	size_t i;
	int c, rc;

	/* '+': stop at the command; its own options are its own. */
	while ((c = getopt_long(argc, argv, "+s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_opt = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("aclheapctl %s (protocol %u, image format %u)\n",
			    PACKAGE_VERSION, PROTOCOL_VERSION, IMAGE_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind >= argc) {
		warnx("no command given");
		usage();
	}
	if (strcmp(argv[optind], "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) != 0)
			continue;
		rc = commands[i].fn(argc - optind, argv + optind);
		if (fflush(stdout) == EOF || ferror(stdout))
			err(EXIT_FAILURE, "writing the output");
		return rc;
	}
	warnx("unknown command '%s'", argv[optind]);
	usage();
}
