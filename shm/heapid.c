/* SPDX-License-Identifier: MIT */
/*
 * heapid.c: STATE/heap.id, which names the heap's segment.
 *
 * The daemon writes the heap's identity there (32 hex digits and a
 * newline, temp file, fsync, rename) whenever it creates or loads a
 * segment, so that the next start adopts the live segment
 * /dev/shm/aclheap-HEX instead of loading an older image.  aclheapctl
 * restore looks at it to refuse a restore that the live segment would
 * shadow, and the benchmark to remove the segment it made.  This is the
 * one reader and the one writer of the file.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm/image.h"

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Reads dir/heap.id into id and, when name is not NULL, the segment's
 * name (seg_name(): "/aclheap-HEX") into name.  0; -ENOENT when there is
 * no such file; -EINVAL when it does not hold 32 hex digits; else -errno.
 */
int
heapid_read(const char *dir, uint8_t id[16], char *name, size_t namelen)
{
	char path[4096], hex[40];
	FILE *f;
	int i, hi, lo, rc = 0;

	snprintf(path, sizeof(path), "%s/heap.id", dir);
	if ((f = fopen(path, "re")) == NULL)
		return -errno;
	if (fscanf(f, "%39s", hex) != 1 || strlen(hex) != 32)
		rc = -EINVAL;
	fclose(f);
	for (i = 0; rc == 0 && i < 16; i++) {
		hi = hex_digit(hex[2 * i]);
		lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			rc = -EINVAL;
		else
			id[i] = (uint8_t)(hi << 4 | lo);
	}
	if (rc == 0 && name != NULL)
		seg_name(id, name, namelen);
	return rc;
}

/* Writes id to dir/heap.id, durably; err says what failed. */
int
heapid_write(const char *dir, const uint8_t id[16], char *err, size_t errlen)
{
	char line[40];
	int fd, rc, i, n = 0;

	if ((rc = image_writer_open(dir, "heap.id.tmp", &fd, err,
	    errlen)) != 0)
		return rc;
	for (i = 0; i < 16; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x",
		    id[i]);
	line[n++] = '\n';
	if ((rc = image_write_all(fd, line, (size_t)n)) != 0) {
		snprintf(err, errlen, "%s/heap.id.tmp: %s", dir, strerror(-rc));
		close(fd);
		return rc;
	}
	return image_commit(fd, dir, "heap.id.tmp", "heap.id", err, errlen);
}
