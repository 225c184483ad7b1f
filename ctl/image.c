/* SPDX-License-Identifier: MIT */
/*
 * image.c: images of the live heap.  `dump` copies one the daemon makes
 * for it (Dump: a consistent image, handed over as a descriptor) to a file
 * or to standard output; `checkpoint` has the daemon persist the heap into
 * its own state folder now (Checkpoint).
 */
#include "config.h"

#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "shm/image.h"

#define COPY_CHUNK		(1u << 20)

/* ------------------------------------------------------------------ */
/* dump */

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
	if (!ctl_json)
		fprintf(stderr, "dumped %" PRIu64 " bytes (%s) of generation %"
		    PRIu64 " to standard output\n", d->bytes,
		    fmt_bytes(hb, sizeof(hb), d->bytes), d->generation);
	return 0;
}

int
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

	args_begin();
	while ((c = args_getopt(argc, argv, "o:", opts)) != -1)
		if (c == 'o')
			out = optarg;
	args_end(argc, argv);
	if (out == NULL || *out == '\0') {
		warnx("dump: --out FILE (or - for standard output) is "
		    "required");
		ctl_usage();
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
	if (ctl_json) {
		json_open(NULL, '{');
		json_str("path", out);
		json_u64("bytes", d->bytes);
		json_u64("generation", d->generation);
		json_close('}');
	} else
		printf("dumped %" PRIu64 " bytes (%s) of generation %" PRIu64
		    " to %s\n", d->bytes, fmt_bytes(hb, sizeof(hb), d->bytes),
		    d->generation, out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* checkpoint */

int
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

	args_begin();
	while ((c = args_getopt(argc, argv, "f", opts)) != -1)
		if (c == 'f')
			m.full = 1;
	args_end(argc, argv);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_CHECKPOINT;
	q.checkpoint = &m;
	cr = ctl_request("checkpoint", &q, ACLHEAP__REPLY__BODY_CHECKPOINT,
	    NULL)->checkpoint;
	if (ctl_json) {
		json_open(NULL, '{');
		json_str("path", cr->path);
		json_u64("bytes", cr->bytes);
		json_double("duration_ms", cr->duration_us / 1000.0);
		json_u64("generation", cr->generation);
		json_str("kind", cr->kind);
		json_str("reason", cr->reason);
		json_u64("slabs", cr->slabs);
		json_close('}');
	} else if (strcmp(cr->kind, "nothing") == 0)
		printf("checkpoint %" PRIu64 " stands: nothing changed, "
		    "nothing written (%.1f ms)\n", cr->generation,
		    cr->duration_us / 1000.0);
	else
		printf("checkpoint %" PRIu64 " written to %s: %" PRIu64
		    " bytes (%s) in %.1f ms, %s (%s)\n", cr->generation,
		    cr->path, cr->bytes, fmt_bytes(hb, sizeof(hb), cr->bytes),
		    cr->duration_us / 1000.0, cr->kind, cr->reason);
	return 0;
}
