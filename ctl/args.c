/* SPDX-License-Identifier: MIT */
/*
 * args.c: a command's own options and arguments.  main() stops at the
 * command's name ('+' in its getopt string), and the command parses the
 * rest with getopt_long over its own argument vector, argv[0] being its
 * name; every command takes --json and --help besides its own options.
 * Bad usage exits 2 through ctl_usage(), before any request is sent.
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

/* Before a command's first args_getopt(). */
void
args_begin(void)
{
	optind = 0;	/* GNU: re-initialise for a new argument vector */
	opterr = 0;
}

/*
 * getopt_long over a command's own arguments.  Returns the option, -1 at
 * the end, and exits 2 on an unknown option or a missing argument.
 */
int
args_getopt(int argc, char **argv, const char *shortopts,
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
		ctl_json = 1;
		return args_getopt(argc, argv, shortopts, extra);
	}
	if (c == 'h') {
		/* Asked for: the whole help, on stdout, and success. */
		ctl_help();
		exit(EXIT_SUCCESS);
	}
	if (c == '?') {
		warnx("%s: unknown option or missing argument: %s", argv[0],
		    argv[optind - 1]);
		ctl_usage();
	}
	return c;
}

/* After the last argument a command takes: anything left is bad usage. */
void
args_end(int argc, char **argv)
{
	if (optind < argc) {
		warnx("%s: unexpected argument '%s'", argv[0], argv[optind]);
		ctl_usage();
	}
}

/* A number as C writes it (decimal, 0x hex, 0 octal), unsigned; 0 or -1. */
int
args_u64(const char *s, uint64_t *out)
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
