/* SPDX-License-Identifier: MIT */
/*
 * heap.c: what the live heap holds, as the daemon reads it: `blocks` lists
 * the live blocks (Blocks, a page per request), `hexdump` shows bytes at an
 * address (Read, up to READ_MAX per request).
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

#define HEXDUMP_DEFAULT	256u
#define HEXDUMP_MAX	(1u << 20)	/* more is a job for dump */

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

/* blocks' options, into the request: m->cls, m->lo, m->hi. */
static void
blocks_args(int argc, char **argv, Aclheap__Blocks *m)
{
	static const struct option opts[] = {
		{ "class", required_argument, NULL, 'c' },
		{ "large", no_argument, NULL, 'l' },
		{ "range", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v, lo = 0, hi = 0;
	char *dash;
	int c, cls = -1, large = 0, have_cls = 0, i;

	args_begin();
	while ((c = args_getopt(argc, argv, "", opts)) != -1) {
		switch (c) {
		case 'c':
			if (args_u64(optarg, &v) != 0 ||
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
				ctl_usage();
			}
			*dash = '\0';
			if (args_u64(optarg, &lo) != 0 ||
			    args_u64(dash + 1, &hi) != 0 || hi <= lo) {
				warnx("blocks: --range LO-HI needs two "
				    "addresses with LO < HI");
				ctl_usage();
			}
			break;
		}
	}
	args_end(argc, argv);
	if (have_cls && large) {
		warnx("blocks: --class and --large exclude each other");
		ctl_usage();
	}
	m->cls = large ? -2 : have_cls ? cls : -1;
	m->lo = lo;
	m->hi = hi;
}

int
cmd_blocks(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Blocks m = ACLHEAP__BLOCKS__INIT;
	Aclheap__BlocksReply *br;
	Aclheap__Block *b;
	uint64_t count = 0, req = 0, usable = 0;
	char a[32], u[32];
	size_t k;

	blocks_args(argc, argv, &m);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_BLOCKS;
	q.blocks = &m;
	if (ctl_json)
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
			if (ctl_json)
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
	if (ctl_json)
		printf("%s]\n", count ? "\n" : "");
	else
		printf("%" PRIu64 " block%s, %s requested, %s usable\n",
		    count, fmt_plural(count), fmt_bytes(a, sizeof(a), req),
		    fmt_bytes(u, sizeof(u), usable));
	return 0;
}

/* ------------------------------------------------------------------ */
/* hexdump */

/* hexdump's arguments: ADDR [LEN]. */
static void
hexdump_args(int argc, char **argv, uint64_t *addr, uint64_t *len)
{
	args_begin();
	while (args_getopt(argc, argv, "", NULL) != -1)
		;
	if (optind >= argc) {
		warnx("hexdump: ADDR is missing");
		ctl_usage();
	}
	if (args_u64(argv[optind], addr) != 0) {
		warnx("hexdump: '%s' is not an address (hex needs 0x)",
		    argv[optind]);
		ctl_usage();
	}
	*len = HEXDUMP_DEFAULT;
	if (++optind < argc) {
		if (seg_parse_size(argv[optind], len) != 0 || *len == 0) {
			warnx("hexdump: '%s' is not a length", argv[optind]);
			ctl_usage();
		}
		optind++;
	}
	args_end(argc, argv);
	if (*len > HEXDUMP_MAX)
		errx(EXIT_FAILURE, "hexdump: %" PRIu64 " bytes is over the "
		    "limit of %u; use 'dump --out FILE' for whole heaps", *len,
		    HEXDUMP_MAX);
}

/* len bytes at addr, through as many Reads as it takes; malloc'ed. */
static uint8_t *
hexdump_read(uint64_t addr, uint64_t len)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Read m = ACLHEAP__READ__INIT;
	Aclheap__ReadReply *rr;
	uint64_t off = 0;
	uint8_t *data;

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
	return data;
}

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

static void
hexdump_print(uint64_t addr, const uint8_t *data, uint64_t len)
{
	uint64_t off;
	int squeezed = 0;

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
}

int
cmd_hexdump(int argc, char **argv)
{
	uint64_t addr, len, lo, hi;
	uint8_t *data;
	size_t i;

	hexdump_args(argc, argv, &addr, &len);
	ctl_connect();
	lo = conn_seg.base;
	hi = conn_seg.base + seg_extent(&conn_seg);
	/* Refuse here too, with the range in the message, rather than
	 * send a request that the daemon must refuse. */
	if (addr < lo || addr >= hi || len > hi - addr)
		errx(EXIT_FAILURE, "hexdump: 0x%" PRIx64 "+%" PRIu64 " is "
		    "outside the heap 0x%" PRIx64 "-0x%" PRIx64, addr, len, lo,
		    hi);
	data = hexdump_read(addr, len);
	if (ctl_json) {
		json_open(NULL, '{');
		json_u64("addr", addr);
		json_u64("len", len);
		json_key("hex");
		putchar('"');
		for (i = 0; i < len; i++)
			printf("%02x", data[i]);
		putchar('"');
		json_close('}');
	} else
		hexdump_print(addr, data, len);
	free(data);
	return 0;
}
