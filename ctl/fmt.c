/* SPDX-License-Identifier: MIT */
/*
 * fmt.c: figures as people read them: sizes in binary units, local times,
 * durations, hex.  Each writes into the caller's buffer and returns it, so
 * a printf can take several.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl/ctl.h"

/* "512 B", "1.5 KiB", ... up to PiB. */
const char *
fmt_bytes(char *buf, size_t len, uint64_t n)
{
	static const char *unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return buf;
	}
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

/* A unix time as local time; "@T" if it cannot be shown. */
const char *
fmt_time(char *buf, size_t len, uint64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "@%" PRIu64, t);
	return buf;
}

/* Seconds as the two or three largest units: "3d 4h 5m", "42s". */
const char *
fmt_duration(char *buf, size_t len, uint64_t s)
{
	if (s >= 86400)
		snprintf(buf, len, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m",
		    s / 86400, s / 3600 % 24, s / 60 % 60);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s",
		    s / 3600, s / 60 % 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "s", s);
	return buf;
}

/* n bytes as lower-case hex, as many as fit. */
const char *
fmt_hex(char *buf, size_t len, const uint8_t *p, size_t n)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < n && 2 * i + 2 < len; i++)
		snprintf(buf + 2 * i, len - 2 * i, "%02x", p[i]);
	return buf;
}

/* "1 block", "2 blocks". */
const char *
fmt_plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/* part as a percentage of whole; 0 of nothing. */
double
fmt_pct(uint64_t part, uint64_t whole)
{
	return whole == 0 ? 0.0 : 100.0 * (double)part / (double)whole;
}

/* A path's folder (".", "/" or the part before the last slash) into dir,
 * and its last part. */
void
split_path(const char *path, char *dir, size_t dlen, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		snprintf(dir, dlen, ".");
		*base = path;
	} else if (slash == path) {
		snprintf(dir, dlen, "/");
		*base = slash + 1;
	} else {
		snprintf(dir, dlen, "%.*s", (int)(slash - path), path);
		*base = slash + 1;
	}
}
