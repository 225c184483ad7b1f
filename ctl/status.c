/* SPDX-License-Identifier: MIT */
/*
 * status.c: the daemon's figures, from one Stats request: `status` prints
 * them for people (or as JSON), `metrics` in the OpenMetrics text format.
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/ctl.h"

/* ------------------------------------------------------------------ */
/* status */

static void
status_json(const Aclheap__StatsReply *s, const struct figures *f,
    const char *id)
{
	json_open(NULL, '{');
	json_str("version", s->version);
	json_u64("pid", s->pid);
	json_str("socket", s->socket_path[0] ? s->socket_path : ctl_socket);
	json_str("identity", id);
	json_u64("base", s->heap_base);
	json_u64("size", s->size);
	json_u64("max_size", s->max_size);
	json_u64("data_start", s->data_start);
	json_u64("slabs_total", s->slabs_total);
	json_u64("slabs_free", s->slabs_free);
	json_u64("bytes_in_use", s->bytes_in_use);
	json_u64("bytes_free", s->slabs_free << SHM_SLAB_SHIFT);
	json_u64("blocks_in_use", s->blocks_in_use);
	json_u64("blocks_cached", s->blocks_cached);
	json_u64("bytes_requested", s->bytes_requested);
	json_u64("large_blocks", s->large_blocks);
	json_u64("large_bytes", s->large_bytes);
	json_u64("roots", s->roots);
	json_u64("clients", s->clients);
	json_u64("generation", s->generation);
	json_u64("epoch", s->epoch);
	json_str("image_path", s->image_path);
	json_open("last_checkpoint", '{');
	if (s->ckpt_time != 0) {
		json_u64("time", s->ckpt_time);
		json_double("duration_ms", s->ckpt_duration_us / 1000.0);
		json_u64("bytes", s->ckpt_bytes);
	} else {
		json_null("time");
		json_null("duration_ms");
		json_null("bytes");
	}
	if (s->ckpt_kind[0] != '\0') {
		json_str("kind", s->ckpt_kind);
		json_str("reason", s->ckpt_reason);
		json_u64("slabs", s->ckpt_slabs);
	} else {
		json_null("kind");
		json_null("reason");
		json_null("slabs");
	}
	json_str("path", s->image_path);
	json_close('}');
	json_open("chain", '{');
	json_u64("deltas", s->chain_deltas);
	json_u64("bytes", s->chain_bytes);
	json_close('}');
	json_u64("uptime_s", s->uptime_s);
	figures_json_classes(f);
	json_close('}');
}

static void
status_print(const Aclheap__StatsReply *s, const struct figures *f,
    const char *id)
{
	char a[64], b[64], c[64];
	uint64_t now;

	figures_print_used(f);
	printf("heap        0x%" PRIx64 "-0x%" PRIx64 ", %s (%s metadata)\n",
	    s->heap_base, s->data_start + (s->slabs_total << SHM_SLAB_SHIFT),
	    fmt_bytes(a, sizeof(a), s->size), fmt_bytes(b, sizeof(b),
	    s->size - (s->slabs_total << SHM_SLAB_SHIFT)));
	if (s->max_size > s->size)
		printf("room        grows to %s (address space kept from "
		    "0x%" PRIx64 ")\n", fmt_bytes(a, sizeof(a), s->max_size),
		    s->heap_base);
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
	    ctl_socket);
	printf("identity    %s, epoch %" PRIu64 "\n", id, s->epoch);
	figures_print_classes(f);
}

int
cmd_status(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Stats m = ACLHEAP__STATS__INIT;
	Aclheap__StatsReply *s;
	struct figures f;
	char id[40];

	args_begin();
	while (args_getopt(argc, argv, "", NULL) != -1)
		;
	args_end(argc, argv);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_STATS;
	q.stats = &m;
	s = ctl_request("status", &q, ACLHEAP__REPLY__BODY_STATS, NULL)->stats;
	figures_from_stats(s, &f);
	fmt_hex(id, sizeof(id), s->identity.data, s->identity.len);
	if (ctl_json)
		status_json(s, &f, id);
	else
		status_print(s, &f, id);
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

static void
metrics_daemon(const Aclheap__StatsReply *s)
{
	char id[40];

	fmt_hex(id, sizeof(id), s->identity.data, s->identity.len);
	om_gauge("aclheap_up", NULL, "1 if aclheapd answered", 1);
	om_family("aclheap_daemon", "info", NULL, "aclheapd's version, "
	    "socket and heap identity");
	printf("aclheap_daemon_info{version=");
	om_label(s->version);
	printf(",socket=");
	om_label(s->socket_path[0] ? s->socket_path : ctl_socket);
	printf(",identity=");
	om_label(id);
	printf("} 1\n");
}

static void
metrics_heap(const Aclheap__StatsReply *s)
{
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
}

static void
metrics_checkpoint(const Aclheap__StatsReply *s)
{
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
		om_gauge("aclheap_last_checkpoint_bytes", "bytes", "size of "
		    "the last checkpoint's image", (double)s->ckpt_bytes);
	}
	om_gauge("aclheap_uptime_seconds", "seconds", "seconds since aclheapd "
	    "started", (double)s->uptime_s);
}

static void
metrics_classes(const struct figures *f)
{
	int i;

	om_family("aclheap_class_slabs", "gauge", NULL, "slabs of each small "
	    "block size");
	for (i = 0; i < f->ncls; i++)
		printf("aclheap_class_slabs{block_size=\"%u\"} %" PRIu64 "\n",
		    f->cls[i].block_size, f->cls[i].slabs);
	om_family("aclheap_class_blocks", "gauge", NULL, "live blocks of each "
	    "small block size");
	for (i = 0; i < f->ncls; i++)
		printf("aclheap_class_blocks{block_size=\"%u\"} %" PRIu64 "\n",
		    f->cls[i].block_size, f->cls[i].used);
	om_family("aclheap_class_free_blocks", "gauge", NULL, "free blocks in "
	    "the slabs of each small block size");
	for (i = 0; i < f->ncls; i++)
		printf("aclheap_class_free_blocks{block_size=\"%u\"} %" PRIu64
		    "\n", f->cls[i].block_size, f->cls[i].free);
	om_family("aclheap_class_requested_bytes", "gauge", "bytes",
	    "requested bytes of each small block size's live blocks");
	for (i = 0; i < f->ncls; i++)
		printf("aclheap_class_requested_bytes{block_size=\"%u\"} %"
		    PRIu64 "\n", f->cls[i].block_size, f->cls[i].req);
}

/*
 * metrics: status's figures in the OpenMetrics text format, which
 * Prometheus scrapes and node-exporter's textfile collector reads.  An
 * unreachable daemon still gives a valid exposition, aclheap_up 0, so a
 * collector sees the outage (and the exit status is 3).
 */
int
cmd_metrics(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Stats m = ACLHEAP__STATS__INIT;
	Aclheap__Reply *r = NULL;
	struct figures f;
	int rc;

	args_begin();
	while (args_getopt(argc, argv, "", NULL) != -1)
		;
	args_end(argc, argv);
	q.body_case = ACLHEAP__REQUEST__BODY_STATS;
	q.stats = &m;
	if ((rc = ctl_attach()) == 0)
		rc = ctl_send(&q, &r, NULL);
	if (rc != 0 || r == NULL ||
	    r->body_case != ACLHEAP__REPLY__BODY_STATS) {
		om_gauge("aclheap_up", NULL, "1 if aclheapd answered", 0);
		printf("# EOF\n");
		fflush(stdout);
		warnx("metrics: aclheapd at %s: %s", ctl_socket,
		    conn_lasterr()[0] ? conn_lasterr() : strerror(-rc));
		exit(rc != 0 && ctl_unreachable(rc) ? EXIT_UNREACHABLE :
		    EXIT_FAILURE);
	}
	figures_from_stats(r->stats, &f);
	metrics_daemon(r->stats);
	metrics_heap(r->stats);
	metrics_checkpoint(r->stats);
	metrics_classes(&f);
	printf("# EOF\n");
	return 0;
}

/*
 * grow SIZE | +SIZE: puts the live heap at SIZE bytes (or SIZE more), up
 * to its maximum; smaller is a shrink, which the daemon does only when
 * the tail is free.  A checkpoint being written makes the daemon say
 * EAGAIN: asked again a few times, the checkpoint's own pace.
 */
int
cmd_grow(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Grow m = ACLHEAP__GROW__INIT;
	Aclheap__StatsReply *st;
	Aclheap__GrowReply *gr;
	Aclheap__Stats sm = ACLHEAP__STATS__INIT;
	Aclheap__Reply *r = NULL;
	char a[32], b[32], c[32];
	const char *arg;
	uint64_t v;
	int rc, tries, more;

	args_begin();
	while (args_getopt(argc, argv, "", NULL) != -1)
		;
	if (optind >= argc) {
		warnx("grow: a size is needed (SIZE or +SIZE)");
		ctl_usage();
	}
	arg = argv[optind++];
	args_end(argc, argv);
	more = arg[0] == '+';
	if (seg_parse_size(arg + more, &v) != 0 || v == 0) {
		warnx("grow: '%s' is not a size (a number with K, M, G or T)",
		    arg);
		ctl_usage();
	}
	ctl_connect();
	if (more) {
		q.body_case = ACLHEAP__REQUEST__BODY_STATS;
		q.stats = &sm;
		st = ctl_request("grow", &q, ACLHEAP__REPLY__BODY_STATS,
		    NULL)->stats;
		if (v > UINT64_MAX - st->size)
			errx(EXIT_FAILURE, "grow: %s more is past any size",
			    arg + 1);
		v += st->size;
	}
	q.body_case = ACLHEAP__REQUEST__BODY_GROW;
	q.grow = &m;
	m.size = v;
	for (tries = 0;; tries++) {
		rc = ctl_send(&q, &r, NULL);
		if (rc != -EAGAIN || tries == 600)
			break;
		(void)poll(NULL, 0, 100);	/* a checkpoint is being written */
	}
	if (rc != 0 && r == NULL && ctl_unreachable(rc))
		ctl_unreachable_exit(rc);
	if (rc != 0)
		errx(EXIT_FAILURE, "grow: %s (%s)", conn_lasterr()[0] ?
		    conn_lasterr() : "request failed", strerror(-rc));
	if (r->body_case != ACLHEAP__REPLY__BODY_GROW)
		errx(EXIT_FAILURE, "grow: aclheapd answered with an unexpected "
		    "reply (%d)", (int)r->body_case);
	gr = r->grow;
	if (ctl_json) {
		json_open(NULL, '{');
		json_u64("size", gr->size);
		json_u64("old_size", gr->old_size);
		json_u64("max_size", gr->max_size);
		json_u64("slabs", gr->slabs);
		json_close('}');
	} else if (gr->size == gr->old_size)
		printf("heap stays %s (%" PRIu64 " slabs), maximum %s\n",
		    fmt_bytes(a, sizeof(a), gr->size), gr->slabs,
		    fmt_bytes(c, sizeof(c), gr->max_size));
	else
		printf("heap %s from %s to %s (%" PRIu64 " slabs), maximum "
		    "%s\n", gr->size > gr->old_size ? "grown" : "shrunk",
		    fmt_bytes(a, sizeof(a), gr->old_size), fmt_bytes(b,
		    sizeof(b), gr->size), gr->slabs, fmt_bytes(c, sizeof(c),
		    gr->max_size));
	return 0;
}
