/* SPDX-License-Identifier: MIT */
/*
 * proc.c: whether a process lives, from /proc.  A lease is its owner's
 * while the owner lives; the pid alone cannot say so (pids are reused), so
 * a lease records the owner's start time too, and a process is the same
 * one only if both agree.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"

/* Threads of a process, from /proc/PID/status; 0 if it cannot be read. */
static long
proc_threads(pid_t pid)
{
	char path[64], line[256];
	long n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Threads:", 8) == 0)
			n = strtol(line + 8, NULL, 10);
	fclose(f);
	return n;
}

/*
 * Process start time, to tell a live lease owner from a reused pid.  0 when
 * the process is gone or a zombie with no thread left; PROC_UNKNOWN when
 * /proc will not say (out of descriptors, say: then it counts as alive,
 * since releasing a live process's leases would hand its private blocks
 * out twice).  A zombie leader whose other threads still run is alive:
 * its threads go on allocating.
 */
uint64_t
proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	int fd, i;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return errno == ENOENT || errno == ESRCH ? 0 : PROC_UNKNOWN;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n == 0 || errno == ESRCH ? 0 : PROC_UNKNOWN;
	buf[n] = '\0';
	/* Field 2 is "(comm)" and may hold spaces: skip past its ')'. */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return PROC_UNKNOWN;
	if ((p[2] == 'Z' || p[2] == 'X') && proc_threads(pid) <= 1)
		return 0;
	for (i = 2; i < 22 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	if (p != NULL)
		start = strtoull(p + 1, NULL, 10);
	return start != 0 ? start : PROC_UNKNOWN;
}
