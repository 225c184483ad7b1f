/* SPDX-License-Identifier: MIT */
/*
 * config.c: aclheapd's settings, from defaults, then the config file, then
 * the command line (each overriding the one before), and the allow list
 * that decides who may attach.
 *
 * The config file holds the long option names without dashes:
 *     # comment
 *     size = 4G
 *     allow-user = alice
 */
#include "config.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/journal.h"
#include "proto/sockpath.h"

/* The build says where (daemon/include.am): --sysconfdir's aclheap/. */
#ifndef ACLHEAP_CONFDIR
#error "ACLHEAP_CONFDIR is not defined: build with the project's Makefile"
#endif
#define DEFAULT_CONFIG	ACLHEAP_CONFDIR "/aclheapd.conf"
#define DEFAULT_SIZE	(UINT64_C(1) << 30)
/* Connections one user may hold: room for a big worker pool, and still a
 * small share of the descriptors a unit's LimitNOFILE (65536) gives. */
#define DEFAULT_MAX_PER_USER	256

enum {
	OPT_SOCKET = 's', OPT_STATE = 'd', OPT_BASE = 'b', OPT_SIZE = 'S',
	OPT_INTERVAL = 'i', OPT_FOREGROUND = 'f', OPT_CONFIG = 'c',
	OPT_HELP = 'h', OPT_VERSION = 'V', OPT_LOGLEVEL = 'l',
	OPT_ALLOW_USER = 256, OPT_ALLOW_GROUP, OPT_SOCKET_GROUP,
	OPT_SOCKET_MODE, OPT_DECAY, OPT_LOG_FILE, OPT_MAX_PER_USER,
	OPT_CRASH_POINTS, OPT_MAX_SIZE,
};

static const struct option longopts[] = {
	{ "socket",		required_argument, NULL, OPT_SOCKET },
	{ "state-dir",		required_argument, NULL, OPT_STATE },
	{ "base",		required_argument, NULL, OPT_BASE },
	{ "size",		required_argument, NULL, OPT_SIZE },
	{ "max-size",		required_argument, NULL, OPT_MAX_SIZE },
	{ "checkpoint-interval", required_argument, NULL, OPT_INTERVAL },
	{ "decay",		required_argument, NULL, OPT_DECAY },
	{ "allow-user",		required_argument, NULL, OPT_ALLOW_USER },
	{ "allow-group",	required_argument, NULL, OPT_ALLOW_GROUP },
	{ "socket-group",	required_argument, NULL, OPT_SOCKET_GROUP },
	{ "socket-mode",	required_argument, NULL, OPT_SOCKET_MODE },
	{ "max-clients-per-user", required_argument, NULL, OPT_MAX_PER_USER },
	{ "foreground",		no_argument,	   NULL, OPT_FOREGROUND },
	{ "log-level",		required_argument, NULL, OPT_LOGLEVEL },
	{ "log-file",		required_argument, NULL, OPT_LOG_FILE },
	{ "config",		required_argument, NULL, OPT_CONFIG },
	{ "help",		no_argument,	   NULL, OPT_HELP },
	{ "version",		no_argument,	   NULL, OPT_VERSION },
	{ "crash-points",	no_argument,	   NULL, OPT_CRASH_POINTS },
	{ NULL, 0, NULL, 0 },
};

void
config_usage(FILE *f)
{
	fprintf(f,
"usage: aclheapd [options]\n"
"\n"
"Serves a persistent shared-memory heap at a fixed address.\n"
"\n"
"  -s, --socket PATH            listening socket\n"
"                               (root: /run/aclheap/aclheap.sock,\n"
"                               else $XDG_RUNTIME_DIR/aclheap/aclheap.sock)\n"
"  -d, --state-dir DIR          where images live (root: /var/lib/aclheap,\n"
"                               else $XDG_STATE_HOME/aclheap)\n"
"  -b, --base ADDR              base address of the heap (default 0x%" PRIx64 ")\n"
"  -S, --size SIZE              heap size, suffixes K M G T (default 1G);\n"
"                               more than an existing heap's grows it\n"
"      --max-size SIZE          the most a new heap can grow to: address\n"
"                               space only (default 1T)\n"
"  -i, --checkpoint-interval N  seconds between checkpoints while the heap\n"
"                               changes (default 60, 0: only on request)\n"
"      --decay N                seconds freed memory stays committed for\n"
"                               reuse before it goes back (default 10)\n"
"      --allow-user USER        also admit USER (repeatable)\n"
"      --allow-group GROUP      also admit members of GROUP (repeatable)\n"
"      --socket-group GROUP     group of the socket (admitted too)\n"
"      --socket-mode MODE       socket mode, octal (default 0660)\n"
"      --max-clients-per-user N connections one user may hold\n"
"                               (default %d, 0: no cap)\n"
"  -f, --foreground             do not detach\n"
"  -l, --log-level LEVEL        debug, info, notice, warning, err\n"
"      --log-file FILE          log to FILE (appended), or 'syslog'\n"
"                               (detached default: STATE-DIR/aclheapd.log)\n"
"  -c, --config FILE            config file (default, where it exists:\n"
"                               " DEFAULT_CONFIG ")\n"
"  -V, --version                print version and build features\n"
"  -h, --help                   this help\n"
"      --crash-points           (tests) where ACLHEAPD_CRASH_AT can stop it\n"
"\n"
"Signals: TERM, INT stop with a final checkpoint; HUP reloads the config\n"
"(log level, allow list, checkpoint interval); USR1 checkpoints.\n"
"See aclheapd(8).\n", SHM_BASE_DEFAULT, DEFAULT_MAX_PER_USER);
}

/*
 * A settings error goes to the log: at start-up, before log_init(), that
 * is standard error, as "aclheapd: ...", where the one starting the daemon
 * reads it; once the daemon runs (a reload by SIGHUP), the log it keeps.
 */
#define cfg_err(...)	log_errx(__VA_ARGS__)

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatal("strdup");
	return p;
}

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->base = SHM_BASE_DEFAULT;
	c->size = DEFAULT_SIZE;
	c->checkpoint_interval = 60;
	c->decay = 10;
	c->log_level = LOG_INFO;
	c->socket_mode = 0660;
	c->max_per_user = DEFAULT_MAX_PER_USER;
}

void
config_free(struct config *c)
{
	free(c->socket_path);
	free(c->state_dir);
	free(c->config_path);
	free(c->socket_group);
	free(c->log_file);
	memset(c, 0, sizeof(*c));
}

static int
parse_uint(const char *v, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	*out = strtoull(v, &end, 0);
	if (errno != 0 || *end != '\0' || *out > max)
		return -EINVAL;
	return 0;
}

static int
lookup_uid(const char *v, uid_t *uid)
{
	struct passwd *pw;
	unsigned long long n;

	if ((pw = getpwnam(v)) != NULL) {
		*uid = pw->pw_uid;
		return 0;
	}
	if (parse_uint(v, UINT_MAX - 1, &n) == 0) {
		*uid = (uid_t)n;
		return 0;
	}
	return -ENOENT;
}

static int
lookup_gid(const char *v, gid_t *gid)
{
	struct group *gr;
	unsigned long long n;

	if ((gr = getgrnam(v)) != NULL) {
		*gid = gr->gr_gid;
		return 0;
	}
	if (parse_uint(v, UINT_MAX - 1, &n) == 0) {
		*gid = (gid_t)n;
		return 0;
	}
	return -ENOENT;
}

/* A heap size setting (--size, --max-size): 0, or -1 said in the log. */
static int
heap_size_arg(const char *v, const char *what, const char *where,
    uint64_t *out)
{
	uint64_t sz;

	if (seg_parse_size(v, &sz) != 0 || sz < SHM_SIZE_MIN ||
	    sz > SHM_SIZE_MAX || sz % SHM_SLAB_SIZE != 0) {
		cfg_err("%s: %s '%s' must be a multiple of 64K from 4M to 16T",
		    where, what, v);
		return -1;
	}
	*out = sz;
	return 0;
}

/* One setting, from the command line or the file.  0, or -1 with a message
 * on stderr. */
static int
config_set(struct config *c, int opt, const char *v, const char *where)
{
	unsigned long long n;
	int lvl;

	switch (opt) {
	case OPT_SOCKET:
		set_str(&c->socket_path, v);
		break;
	case OPT_STATE:
		set_str(&c->state_dir, v);
		break;
	case OPT_BASE:
		if (parse_uint(v, UINT64_MAX, &n) != 0 || n == 0 ||
		    n % SHM_SLAB_SIZE != 0) {
			cfg_err("%s: base '%s' is not a "
			    "non-zero multiple of %" PRIu64 "", where, v,
			    (uint64_t)SHM_SLAB_SIZE);
			return -1;
		}
		c->base = (uintptr_t)n;
		c->base_set = 1;
		break;
	case OPT_SIZE:
		if (heap_size_arg(v, "size", where, &c->size) != 0)
			return -1;
		c->size_set = 1;
		break;
	case OPT_MAX_SIZE:
		if (heap_size_arg(v, "maximum size", where, &c->max) != 0)
			return -1;
		c->max_set = 1;
		break;
	case OPT_INTERVAL:
		if (parse_uint(v, 86400 * 365, &n) != 0) {
			cfg_err("%s: checkpoint interval "
			    "'%s' is not a number of seconds", where, v);
			return -1;
		}
		c->checkpoint_interval = (unsigned)n;
		break;
	case OPT_DECAY:
		if (parse_uint(v, 86400, &n) != 0) {
			cfg_err("%s: decay '%s' is not a number of seconds up "
			    "to a day", where, v);
			return -1;
		}
		c->decay = (unsigned)n;
		break;
	case OPT_ALLOW_USER:
		if (c->nallow_uid == MAX_ALLOW ||
		    lookup_uid(v, &c->allow_uid[c->nallow_uid]) != 0) {
			cfg_err("%s: unknown user '%s' (or "
			    "more than %d)", where, v, MAX_ALLOW);
			return -1;
		}
		c->nallow_uid++;
		break;
	case OPT_ALLOW_GROUP:
		if (c->nallow_gid == MAX_ALLOW ||
		    lookup_gid(v, &c->allow_gid[c->nallow_gid]) != 0) {
			cfg_err("%s: unknown group '%s' (or "
			    "more than %d)", where, v, MAX_ALLOW);
			return -1;
		}
		c->nallow_gid++;
		break;
	case OPT_SOCKET_GROUP:
		set_str(&c->socket_group, v);
		break;
	case OPT_SOCKET_MODE:
		if (parse_uint(v, 0777, &n) != 0 && (*v != '0' ||
		    sscanf(v, "%llo", &n) != 1 || n > 0777)) {
			cfg_err("%s: socket mode '%s' is not "
			    "an octal mode", where, v);
			return -1;
		}
		c->socket_mode = (int)n;
		break;
	case OPT_MAX_PER_USER:
		if (parse_uint(v, 1000000, &n) != 0) {
			cfg_err("%s: max-clients-per-user '%s' is not a number "
			    "from 0 to 1000000", where, v);
			return -1;
		}
		c->max_per_user = (unsigned)n;
		break;
	case OPT_FOREGROUND:
		c->foreground = 1;
		break;
	case OPT_LOG_FILE:
		if (*v == '\0') {
			cfg_err("%s: log file '' is not a path (or 'syslog')",
			    where);
			return -1;
		}
		set_str(&c->log_file, v);
		break;
	case OPT_LOGLEVEL:
		if ((lvl = log_level_parse(v)) < 0) {
			cfg_err("%s: log level '%s' is not "
			    "one of debug, info, notice, warning, err",
			    where, v);
			return -1;
		}
		c->log_level = lvl;
		break;
	default:
		return -1;
	}
	return 0;
}

/*
 * Reads a config file.  A missing file is fine unless required.  Returns 0,
 * or -1 after printing what is wrong and where.
 */
int
config_load_file(struct config *c, const char *path, int required)
{
	char line[1024], where[PATH_MAX + 32], *k, *v, *e;
	const struct option *o;
	FILE *f;
	int lineno = 0, rc = 0;

	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT && !required)
			return 0;
		cfg_err("%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		k = line + strspn(line, " \t");
		if (*k == '#' || *k == '\n' || *k == '\0')
			continue;
		if ((v = strchr(k, '=')) == NULL) {
			cfg_err("%s: expected 'key = value'",
			    where);
			rc = -1;
			continue;
		}
		*v++ = '\0';
		for (e = v - 2; e >= k && isspace((unsigned char)*e); e--)
			*e = '\0';
		v += strspn(v, " \t");
		v[strcspn(v, "\r\n")] = '\0';
		for (e = v + strlen(v); e > v && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		for (o = longopts; o->name != NULL; o++)
			if (strcmp(o->name, k) == 0)
				break;
		if (o->name == NULL || o->val == OPT_CONFIG ||
		    o->val == OPT_HELP || o->val == OPT_VERSION ||
		    o->val == OPT_CRASH_POINTS) {
			cfg_err("%s: unknown setting '%s'",
			    where, k);
			rc = -1;
			continue;
		}
		if (o->has_arg == no_argument) {
			if (strcmp(v, "yes") != 0 && strcmp(v, "true") != 0 &&
			    strcmp(v, "1") != 0)
				continue;
		}
		if (config_set(c, o->val, v, where) != 0)
			rc = -1;
	}
	fclose(f);
	return rc;
}

/*
 * The command line: --config first (so the file sits under the arguments),
 * then every other option.  Returns 0 to run, 1 when --help or --version
 * was handled, -1 on a usage error (exit status 2).
 */
int
config_parse_args(struct config *c, int argc, char **argv)
{
	const char *cfg = NULL;
	int ch, required = 0;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:d:b:S:i:fl:c:hV", longopts,
	    NULL)) != -1) {
		if (ch == OPT_CONFIG) {
			cfg = optarg;
			required = 1;
		} else if (ch == OPT_HELP) {
			config_usage(stdout);
			return 1;
		} else if (ch == OPT_VERSION) {
			printf("aclheapd %s (protocol %u, layout %u, %s)\n",
			    PACKAGE_VERSION, PROTOCOL_VERSION, SHM_VERSION,
#ifdef HAVE_SYSTEMD
			    "systemd notify and socket activation"
#else
			    "built without systemd support"
#endif
			    );
			return 1;
		} else if (ch == OPT_CRASH_POINTS) {
			journal_list_points(stdout);
			return 1;
		} else if (ch == '?' || ch == ':') {
			cfg_err("bad option '%s'",
			    argv[optind - 1]);
			config_usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		cfg_err("unexpected argument '%s'",
		    argv[optind]);
		config_usage(stderr);
		return -1;
	}
	set_str(&c->config_path, cfg != NULL ? cfg : DEFAULT_CONFIG);
	if (config_load_file(c, c->config_path, required) != 0)
		return -1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:d:b:S:i:fl:c:hV", longopts,
	    NULL)) != -1) {
		if (ch == OPT_CONFIG)
			continue;
		if (config_set(c, ch, optarg, "command line") != 0)
			return -1;
	}
	return 0;
}

static char *
join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s%s", a, b) == -1)
		fatal("asprintf");
	return p;
}

/*
 * Fills in the defaults that depend on who we are: systemd's directories
 * when it gave them, root's system paths, else the user's XDG folders.
 */
int
config_finish(struct config *c)
{
	const char *rt = getenv("RUNTIME_DIRECTORY");
	const char *st = getenv("STATE_DIRECTORY");
	const char *home = getenv("HOME");
	char buf[108];

	if (c->socket_path == NULL) {
		/* The clients find this one without being told: the same
		 * function computes their default (proto/sockpath.c). */
		if (rt != NULL && *rt == '/')
			c->socket_path = join(rt, "/aclheap.sock");
		else if (sockpath_own(buf, sizeof(buf), geteuid(),
		    getenv("XDG_RUNTIME_DIR")) == 0)
			c->socket_path = xstrdup(buf);
		else {
			cfg_err("the default socket path in $XDG_RUNTIME_DIR is "
			    "longer than a Unix socket address allows (107 "
			    "bytes); set --socket");
			return -1;
		}
	}
	if (c->state_dir == NULL) {
		/* aclheapctl restore finds it the same way. */
		char sd[4096];

		if (st != NULL && *st == '/')
			c->state_dir = xstrdup(st);
		else if (statepath_own(sd, sizeof(sd), geteuid(),
		    getenv("XDG_STATE_HOME"), home) == 0)
			c->state_dir = xstrdup(sd);
		else {
			cfg_err("no state folder: set --state-dir, "
			    "XDG_STATE_HOME or HOME");
			return -1;
		}
	}
	if (strlen(c->socket_path) >= 108) {
		cfg_err("socket path '%s' is longer than a Unix socket "
		    "address allows (107 bytes)", c->socket_path);
		return -1;
	}
	if (c->base + c->size < c->base ||
	    c->base + c->size > UINT64_C(0x800000000000)) {
		cfg_err("heap 0x%" PRIxPTR "+%" PRIu64 " does not fit below "
		    "the 128 TiB user address limit", c->base, c->size);
		return -1;
	}
	if (!c->max_set) {
		/* The default shrinks to what fits below the limit, and
		 * never below the size asked for. */
		c->max = SHM_MAX_DEFAULT;
		if (c->max > UINT64_C(0x800000000000) - c->base)
			c->max = (UINT64_C(0x800000000000) - c->base) &
			    ~(uint64_t)SHM_SLAB_MASK;
		if (c->max < c->size)
			c->max = c->size;
	}
	if (c->max_set && !c->size_set && c->max < c->size)
		c->size = c->max;	/* a small maximum, no size: as large */
	if (c->max < c->size) {
		cfg_err("maximum size %" PRIu64 " is below the size %" PRIu64,
		    c->max, c->size);
		return -1;
	}
	if (c->base + c->max < c->base ||
	    c->base + c->max > UINT64_C(0x800000000000)) {
		cfg_err("heap 0x%" PRIxPTR " of maximum size %" PRIu64 " does "
		    "not fit below the 128 TiB user address limit", c->base,
		    c->max);
		return -1;
	}
	return 0;
}

/* 1 if uid's groups (its passwd group and the group file's) hold gid. */
static int
user_in_group(uid_t uid, gid_t gid)
{
	struct passwd *pw;
	gid_t groups[256];
	int n = 256, i;

	if ((pw = getpwuid(uid)) == NULL)
		return 0;
	if (pw->pw_gid == gid)
		return 1;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) == -1)
		return 0;	/* more than 256: cannot tell, do not warn */
	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/*
 * The allow list decides who may speak to the daemon, but the socket's
 * mode decides who may connect at all: a user the mode shuts out is on
 * the list for nothing.  Warns, at start-up, for each allowed user that
 * is neither the socket's owner, nor root, nor (with the group's write
 * bit) in its group, when others may not write; and for each allowed
 * group other than the socket's.  Returns the number of warnings.
 */
int
config_warn_unreachable(const struct config *c, const char *path,
    mode_t mode, uid_t owner, gid_t group)
{
	struct passwd *pw;
	struct group *gr;
	int i, n = 0;

	if ((mode & 0002) != 0)
		return 0;
	for (i = 0; i < c->nallow_uid; i++) {
		if (c->allow_uid[i] == 0 || c->allow_uid[i] == owner ||
		    ((mode & 0020) != 0 && user_in_group(c->allow_uid[i],
		    group)))
			continue;
		pw = getpwuid(c->allow_uid[i]);
		gr = getgrgid(group);
		log_warnx("--allow-user %s (uid %u) has no effect: socket %s "
		    "is mode %04o, owner uid %u, group %s, and the user is "
		    "not in that group; give the socket a group of the "
		    "user's (--socket-group; SocketGroup= under systemd) or "
		    "mode 0666", pw != NULL ?
		    pw->pw_name : "?", (unsigned)c->allow_uid[i],
		    path, (unsigned)mode, (unsigned)owner,
		    gr != NULL ? gr->gr_name : "?");
		n++;
	}
	for (i = 0; i < c->nallow_gid; i++) {
		if ((mode & 0020) != 0 && c->allow_gid[i] == group)
			continue;
		gr = getgrgid(c->allow_gid[i]);
		log_warnx("--allow-group %s (gid %u) admits only those of its "
		    "members who can reach socket %s (mode %04o, group gid "
		    "%u); give the socket group %s, or mode 0666",
		    gr != NULL ? gr->gr_name : "?",
		    (unsigned)c->allow_gid[i], path, (unsigned)mode,
		    (unsigned)group, gr != NULL ? gr->gr_name : "GROUP");
		n++;
	}
	return n;
}

static int
in_groups(pid_t pid, const gid_t *g, int n)
{
	char path[64], line[4096], *p, *end;
	unsigned long v;
	FILE *f;
	int i, found = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (p = line + 7;; p = end) {
			v = strtoul(p, &end, 10);
			if (end == p)
				break;
			for (i = 0; i < n; i++)
				if (g[i] == (gid_t)v)
					found = 1;
		}
	}
	fclose(f);
	return found;
}

/* The allow list: our own user, root, the allowed users, and members of the
 * socket's group and of the allowed groups. */
int
config_allowed(const struct config *c, uid_t uid, gid_t gid, pid_t pid)
{
	gid_t groups[MAX_ALLOW + 1];
	int i, n = 0;

	if (uid == 0 || uid == geteuid())
		return 1;
	for (i = 0; i < c->nallow_uid; i++)
		if (c->allow_uid[i] == uid)
			return 1;
	for (i = 0; i < c->nallow_gid; i++)
		groups[n++] = c->allow_gid[i];
	if (c->socket_group != NULL && lookup_gid(c->socket_group,
	    &groups[n]) == 0)
		n++;
	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return n > 0 && in_groups(pid, groups, n);
}
