/* SPDX-License-Identifier: MIT */
/*
 * notify.c: the systemd glue.  With libsystemd: sd_notify() for READY=1,
 * STATUS=, WATCHDOG=1, RELOADING=1 and STOPPING=1, and sd_listen_fds() for
 * socket activation.  Without it every call is a no-op and the daemon runs
 * the same, minus those two features (aclheapd --version says which).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "daemon/daemon.h"

void
notify_ready(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1\nSTATUS=serving");
#endif
}

void
notify_status(const char *fmt, ...)
{
#ifdef HAVE_SYSTEMD
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", buf);
#else
	(void)fmt;
#endif
}

void
notify_stopping(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1\nSTATUS=final checkpoint");
#endif
}

void
notify_reloading(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "RELOADING=1");
#endif
}

/* Half the watchdog period when WatchdogSec= is set for us, else 0. */
uint64_t
notify_watchdog_usec(void)
{
#ifdef HAVE_SYSTEMD
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec / 2;
#endif
	return 0;
}

void
notify_watchdog(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "WATCHDOG=1");
#endif
}

/* The socket systemd passed us, or -1. */
int
notify_listen_fd(void)
{
#ifdef HAVE_SYSTEMD
	int n = sd_listen_fds(1);

	if (n >= 1)
		return SD_LISTEN_FDS_START;
#endif
	return -1;
}
