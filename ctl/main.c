/* SPDX-License-Identifier: MIT */
/*
 * main.c: aclheapctl, the administration tool.  It speaks the same protocol
 * as libaclheap, through the same connection code (client/conn.c), so it
 * sees the daemon exactly as a client does; the requests it sends are the
 * administration family of aclheap.proto (Stats, Dump, Blocks, Read, ...).
 *
 * This file holds the global options and the command table: one entry per
 * command, with its handler, its line in --help, and whether it talks to
 * aclheapd.  Four commands work without a daemon: `verify IMAGE` and
 * `inspect IMAGE` (ctl/verify.c) check an image file with the validator the
 * daemon runs on the live heap, `restore` (ctl/restore.c) puts a checked
 * image into a stopped daemon's state folder, and `repair` (ctl/repair.c)
 * salvages a damaged heap into a new image.  ctl/ctl.h tells how
 * a command runs and what the exit statuses mean.
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "shm/image.h"

const struct ctl_cmd *ctl_cmd;
const char *ctl_socket_opt;
int ctl_json;

/* In the order --help lists them. */
static const struct ctl_cmd commands[] = {
	{ "status", cmd_status, "status",
	    "used and free, classes, checkpoint, daemon\n", CTL_DAEMON },
	{ "grow", cmd_grow, "grow SIZE|+SIZE",
	    "grow the live heap to SIZE (or by SIZE), up\n"
	    "to its maximum; shrink it if its tail is free\n", CTL_DAEMON },
	{ "dump", cmd_dump, "dump --out FILE|-",
	    "a consistent image of the live heap to FILE\n"
	    "(-: standard output)\n", CTL_DAEMON },
	{ "blocks", cmd_blocks,
	    "blocks [--class SIZE | --large] [--range LO-HI]",
	    "live blocks: address, requested, usable\n", CTL_DAEMON },
	{ "roots", cmd_roots, "roots [--prefix P]",
	    "named roots and their addresses\n", CTL_DAEMON },
	{ "hexdump", cmd_hexdump, "hexdump ADDR [LEN]",
	    "heap bytes at ADDR (LEN 256 unless given)\n", CTL_DAEMON },
	{ "checkpoint", cmd_checkpoint, "checkpoint [--full]",
	    "persist now (what changed, or with --full a\n"
	    "whole new image); bytes, kind, time taken\n", CTL_DAEMON },
	{ "verify", cmd_verify, "verify [IMAGE]",
	    "check the live heap, or an image and its\n"
	    "deltas offline\n", CTL_DAEMON | CTL_OFFLINE },
	{ "inspect", cmd_inspect, "inspect IMAGE",
	    "status of an image file, offline\n", CTL_OFFLINE },
	{ "clients", cmd_clients, "clients",
	    "connected clients and what they hold\n", CTL_DAEMON },
	{ "metrics", cmd_metrics, "metrics",
	    "status in the OpenMetrics text format\n", CTL_DAEMON },
	{ "restore", cmd_restore,
	    "restore [--state-dir DIR] [--discard-live] IMAGE|-",
	    "IMAGE (-: standard input) as the heap.img of\n"
	    "a stopped daemon's state folder\n", CTL_OFFLINE },
	{ "repair", cmd_repair,
	    "repair --out FILE [--force] [--dry-run] IMAGE|STATE|SEGMENT",
	    "keep what checks out of a damaged heap, say\n"
	    "what is dropped, write the rest to FILE\n", CTL_OFFLINE },
};
#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

/* --help's second column, where each command's description starts. */
#define HELP_COLUMN	29

static const char synopsis[] =
    "usage: aclheapctl [-s SOCKET] COMMAND [ARGS] [--json]\n";

static const char options_text[] =
"options:\n"
"  -s, --socket SOCKET        aclheapd's socket (else $ACLHEAP_SOCKET, else\n"
"                             the default)\n"
"      --json                 print JSON\n"
"  -h, --help                 this help\n"
"  -V, --version              print the version\n"
"\n"
"exit status: 0 done, 1 failed, 2 bad usage, 3 aclheapd unreachable\n";

/*
 * The whole help, asked for (-h, --help, help, COMMAND --help): on stdout.
 * A synopsis too long for the first column puts its description on the
 * next line.
 */
void
ctl_help(void)
{
	const char *p, *nl;
	size_t i;
	int col;

	printf("%s\ncommands:\n", synopsis);
	for (i = 0; i < NCOMMANDS; i++) {
		col = printf("  %s", commands[i].usage);
		if (col >= HELP_COLUMN - 1) {
			putchar('\n');
			col = 0;
		}
		for (p = commands[i].help; *p != '\0'; p = nl + 1) {
			nl = strchr(p, '\n');
			printf("%*s%.*s\n", HELP_COLUMN - col, "",
			    (int)(nl - p), p);
			col = 0;
		}
	}
	printf("\n%s", options_text);
}

/* Bad usage: the synopsis and where the rest is, not the whole help. */
void
ctl_usage(void)
{
	fprintf(stderr, "%s'aclheapctl --help' lists the commands and "
	    "options\n", synopsis);
	exit(EXIT_USAGE);
}

static const struct ctl_cmd *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
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
	int c, rc;

	/* '+': stop at the command; its own options are its own. */
	while ((c = getopt_long(argc, argv, "+s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			ctl_socket_opt = optarg;
			break;
		case 'j':
			ctl_json = 1;
			break;
		case 'h':
			ctl_help();
			return 0;
		case 'V':
			printf("aclheapctl %s (protocol %u, image format %u)\n",
			    PACKAGE_VERSION, PROTOCOL_VERSION, IMAGE_VERSION);
			return 0;
		default:
			ctl_usage();
		}
	}
	if (optind >= argc) {
		warnx("no command given");
		ctl_usage();
	}
	if (strcmp(argv[optind], "help") == 0) {
		ctl_help();
		return 0;
	}
	if ((ctl_cmd = find_command(argv[optind])) == NULL) {
		warnx("unknown command '%s'", argv[optind]);
		ctl_usage();
	}
	rc = ctl_cmd->exec(argc - optind, argv + optind);
	if (fflush(stdout) == EOF || ferror(stdout))
		err(EXIT_FAILURE, "writing the output");
	return rc;
}
