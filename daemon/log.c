/* SPDX-License-Identifier: MIT */
/*
 * log.c: the daemon's log.  Lines go to stderr with a syslog priority
 * prefix ("<3>"), which journald files at the right level; on a terminal the
 * prefix is left out.  errno is preserved across every call, so a caller can
 * log and then return -errno.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon/daemon.h"

static int log_max = LOG_INFO;
static int log_prefix = 1;
static int log_syslog;

/* Detached daemons have no stderr worth writing to: use syslog(3). */
void
log_to_syslog(void)
{
	openlog("aclheapd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = 1;
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
	if (log_syslog)
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
