/* SPDX-License-Identifier: MIT */
/*
 * log.c: the daemon's log.  Lines go to stderr with a syslog priority
 * prefix ("<3>"), which journald files at the right level; on a terminal the
 * prefix is left out.  A daemon that detached has no stderr worth writing
 * to: it appends to a log file (with the time and its pid on every line),
 * reopened at SIGHUP for log rotation, or uses syslog(3) when asked.  errno
 * is preserved across every call, so a caller can log and then return
 * -errno.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"

static int log_max = LOG_INFO;
/* Until log_init(), lines read "aclheapd: ...": the settings' errors at
 * start-up (config.c), for whoever starts the daemon. */
static int log_prefix;
static int log_syslog;
static int log_fd = -1;
static char log_path[4096];

/* Asked for with --log-file syslog. */
void
log_to_syslog(void)
{
	openlog("aclheapd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = 1;
}

/* Appends the log to path from now on: 0, or -errno (nothing changed). */
int
log_to_file(const char *path)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600)) == -1)
		return -errno;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	snprintf(log_path, sizeof(log_path), "%s", path);
	return 0;
}

/* After a rotation the old file was moved away: a new one at the path. */
void
log_reopen(void)
{
	char path[sizeof(log_path)];
	int rc;

	if (log_fd < 0)
		return;
	snprintf(path, sizeof(path), "%s", log_path);
	if ((rc = log_to_file(path)) != 0) {
		errno = -rc;
		log_warn("cannot reopen log file %s; logging on to the old "
		    "one", path);
	}
}

void
log_init(int level, int prefix)
{
	log_max = level;
	log_prefix = prefix;
}

void
log_set_level(int level)
{
	log_max = level;
}

int
log_level_parse(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO },
		{ "notice", LOG_NOTICE }, { "warning", LOG_WARNING },
		{ "warn", LOG_WARNING }, { "err", LOG_ERR },
		{ "error", LOG_ERR },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].level;
	return -1;
}

static void
vlog(int pri, const char *fmt, va_list ap, const char *tail)
    __attribute__((format(printf, 2, 0)));

static void
vlog(int pri, const char *fmt, va_list ap, const char *tail)
{
	char buf[1024];
	int saved = errno;

	if (pri > log_max) {
		errno = saved;
		return;
	}
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (log_fd >= 0) {
		char line[1400], stamp[32];
		struct tm tm;
		time_t now = time(NULL);
		int n;

		if (gmtime_r(&now, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ",
		    &tm) == 0)
			stamp[0] = '\0';
		n = snprintf(line, sizeof(line), "%s aclheapd[%d]: <%d>%s%s%s\n",
		    stamp, (int)getpid(), pri, buf, tail ? ": " : "",
		    tail ? tail : "");
		if (n > (int)sizeof(line) - 1)
			n = (int)sizeof(line) - 1;
		/* One write per line: O_APPEND keeps lines whole. */
		if (write(log_fd, line, (size_t)n) != n) {
			/* Nowhere left to say it. */
		}
	} else if (log_syslog)
		syslog(pri, "%s%s%s", buf, tail ? ": " : "", tail ? tail : "");
	else if (log_prefix)
		fprintf(stderr, "<%d>%s%s%s\n", pri, buf, tail ? ": " : "",
		    tail ? tail : "");
	else
		fprintf(stderr, "aclheapd: %s%s%s\n", buf, tail ? ": " : "",
		    tail ? tail : "");
	errno = saved;
}

#define LOGFN(fn, pri, witherr)					\
void								\
fn(const char *fmt, ...)					\
{								\
	va_list ap;						\
	const char *e = (witherr) ? strerror(errno) : NULL;	\
								\
	va_start(ap, fmt);					\
	vlog(pri, fmt, ap, e);					\
	va_end(ap);						\
}

LOGFN(log_debug, LOG_DEBUG, 0)
LOGFN(log_info, LOG_INFO, 0)
LOGFN(log_notice, LOG_NOTICE, 0)
LOGFN(log_warnx, LOG_WARNING, 0)
LOGFN(log_warn, LOG_WARNING, 1)
LOGFN(log_errx, LOG_ERR, 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;
	const char *e = strerror(errno);

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, e);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
