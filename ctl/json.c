/* SPDX-License-Identifier: MIT */
/*
 * json.c: a small JSON writer for --json, on stdout.  Compact, one value
 * per call; the commas come from the nesting, which it counts itself, so a
 * caller only opens, writes and closes.  A key is NULL inside an array and
 * at the top.  Closing the outermost value ends the line.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>

#include "ctl/ctl.h"

/* jfirst[d]: nothing written yet at depth d, so no comma before the next. */
static int jfirst[16], jdepth;

static void
json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putchar('"');
	for (; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\t')
			fputs("\\t", stdout);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/* The comma before a value, if one came before it, and its key. */
void
json_key(const char *key)
{
	if (jdepth > 0) {
		if (!jfirst[jdepth])
			putchar(',');
		jfirst[jdepth] = 0;
	}
	if (key != NULL) {
		json_string(key);
		putchar(':');
	}
}

/* An object ('{') or an array ('['). */
void
json_open(const char *key, int c)
{
	json_key(key);
	putchar(c);
	jfirst[++jdepth] = 1;
}

void
json_close(int c)
{
	putchar(c);
	if (--jdepth == 0)
		putchar('\n');
}

void
json_u64(const char *key, uint64_t v)
{
	json_key(key);
	printf("%" PRIu64, v);
}

void
json_double(const char *key, double v)
{
	json_key(key);
	printf("%.3f", v);
}

/* A string; NULL is written as "". */
void
json_str(const char *key, const char *s)
{
	json_key(key);
	json_string(s != NULL ? s : "");
}

void
json_bool(const char *key, int v)
{
	json_key(key);
	fputs(v ? "true" : "false", stdout);
}

void
json_null(const char *key)
{
	json_key(key);
	fputs("null", stdout);
}
