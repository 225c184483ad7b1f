/* SPDX-License-Identifier: MIT */
/*
 * restore.c: `restore FILE|-`, an image into the state folder of a heap
 * whose daemon is stopped, as STATE/heap.img, which the next aclheapd there
 * loads.  The state folder's lock (the one aclheapd holds while it runs) is
 * taken for the whole time, so no daemon serves that state meanwhile.  The
 * image is copied to a temporary file beside heap.img, checked as 'verify'
 * checks, and only then renamed over heap.img (fsync of file and folder):
 * a bad image changes nothing.
 *
 * A live segment of the heap (in /dev/shm, named by heap.id) would be
 * adopted at the next start in preference to any image; it is newer than
 * every image, so restore refuses unless told to discard it.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "proto/sockpath.h"
#include "shm/image.h"

/* What restore was asked to do. */
struct restore_args {
	const char *src;	/* a file, or "-" for standard input */
	char state[4096];	/* the state folder */
	int discard;		/* --discard-live */
};

/* The options, IMAGE, and the state folder: --state-dir, systemd's
 * $STATE_DIRECTORY, or the caller's own. */
static void
restore_args(int argc, char **argv, struct restore_args *a)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 'd' },
		{ "discard-live", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *e;
	int c;

	a->discard = 0;
	args_begin();
	while ((c = args_getopt(argc, argv, "d:", opts)) != -1)
		if (c == 'd')
			dir = optarg;
		else if (c == 'D')
			a->discard = 1;
	if (optind >= argc) {
		warnx("restore: IMAGE (a file, or - for standard input) is "
		    "missing");
		ctl_usage();
	}
	a->src = argv[optind++];
	args_end(argc, argv);
	if (dir == NULL && (e = getenv("STATE_DIRECTORY")) != NULL &&
	    *e == '/')
		dir = e;
	if (dir != NULL)
		snprintf(a->state, sizeof(a->state), "%s", dir);
	else if (statepath_own(a->state, sizeof(a->state), geteuid(),
	    getenv("XDG_STATE_HOME"), getenv("HOME")) != 0)
		errx(EXIT_USAGE, "restore: no state folder: give --state-dir");
}

/*
 * The daemon's lock, held until exit: a running daemon holds it, so a
 * failure to take it means one serves this state.  cmd names the command
 * in messages (repair takes it too).
 */
int
state_lock(const char *cmd, const char *state)
{
	char path[4200], pid[32];
	ssize_t n;
	int lfd;

	snprintf(path, sizeof(path), "%s/aclheapd.lock", state);
	if ((lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		err(EXIT_FAILURE, "%s: %s", cmd, path);
	if (flock(lfd, LOCK_EX | LOCK_NB) == -1) {
		n = pread(lfd, pid, 31, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		errx(EXIT_FAILURE, "%s: aclheapd (pid %s) serves %s; stop "
		    "it first (%s)", cmd, pid[0] ? pid : "?", state,
		    strcmp(cmd, "restore") == 0 ? "a running heap is replaced "
		    "by stopping it, not under it" : "repair works on a "
		    "stopped heap");
	}
	return lfd;
}

/*
 * The heap's live segment, named by STATE/heap.id, into live: 1 if it is
 * there, 0 if not (or the state has no heap.id).
 */
int
state_live_segment(const char *state, char *live, size_t len)
{
	uint8_t id[16];
	char name[64];

	if (heapid_read(state, id, name, sizeof(name)) != 0)
		return 0;
	snprintf(live, len, "/dev/shm%s", name);
	return access(live, F_OK) == 0;
}

/* The name of the image in messages. */
static const char *
src_name(const char *src)
{
	return strcmp(src, "-") == 0 ? "standard input" : src;
}

/*
 * Copies src to path (STATE/heap.img.restore), owned as the state folder
 * is; the open temporary file, and in *total its size.  On failure removes
 * it and exits.
 */
static int
restore_copy(const char *src, const char *state, const char *path,
    uint64_t *total)
{
	char buf[65536];
	struct stat sst;
	ssize_t n;
	int in, ofd, rc;

	if (strcmp(src, "-") == 0)
		in = STDIN_FILENO;
	else if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1)
		err(EXIT_FAILURE, "restore: %s", src);
	if ((ofd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		err(EXIT_FAILURE, "restore: %s", path);
	/* Root restoring for a daemon that runs as its own user (systemd's
	 * aclheap): the image is the state folder owner's, as the daemon's
	 * own images are, or that daemon could not read it. */
	if (geteuid() == 0 && stat(state, &sst) == 0 && sst.st_uid != 0 &&
	    fchown(ofd, sst.st_uid, sst.st_gid) == -1) {
		rc = errno;
		unlink(path);
		errno = rc;
		err(EXIT_FAILURE, "restore: giving %s to the state folder's "
		    "owner", path);
	}
	*total = 0;
	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0)
			break;
		if (n == -1 || (rc = image_write_all(ofd, buf,
		    (size_t)n)) != 0) {
			rc = n == -1 ? errno : -rc;
			unlink(path);
			errno = rc;
			err(EXIT_FAILURE, "restore: %s", n == -1 ? src : path);
		}
		*total += (uint64_t)n;
	}
	if (in != STDIN_FILENO)
		close(in);
	return ofd;
}

/* Checks the copy at path as verify would; on failure removes it and
 * exits.  The image stays loaded in seg. */
static void
restore_check(const char *src, const char *path, struct shm_seg *seg,
    struct image_info *info, struct shm_report *rep)
{
	char errbuf[1024], why[512];

	if (image_load_offline(path, seg, info, errbuf,
	    sizeof(errbuf)) != 0) {
		unlink(path);
		errx(EXIT_FAILURE, "restore: %s is not a good image, nothing "
		    "changed: %s", src_name(src), errbuf);
	}
	if (shm_check_still(seg, rep, why, sizeof(why)) != 0) {
		image_unload_offline(seg);
		unlink(path);
		errx(EXIT_FAILURE, "restore: %s is not a good image, nothing "
		    "changed: invariants: %s", src_name(src), why);
	}
}

/* Removes the deltas of a state folder's chain (heap.img.delta.*), and
 * makes that durable. */
static void
remove_deltas(const char *state)
{
	char p[PATH_MAX + 256];
	struct dirent *e;
	DIR *d;
	int fd;

	if ((d = opendir(state)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "heap.img.delta.", 15) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", state, e->d_name);
		if (unlink(p) == -1)
			warn("restore: removing %s", p);
	}
	closedir(d);
	if ((fd = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static void
restore_report(const char *state, uint64_t total,
    const struct image_info *info, const struct shm_report *rep,
    int have_live)
{
	char hb[32];

	if (ctl_json) {
		json_open(NULL, '{');
		json_str("state_dir", state);
		json_u64("bytes", total);
		json_u64("generation", info->hdr.generation);
		json_u64("base", info->hdr.base);
		json_u64("size", info->hdr.size);
		json_u64("max_size", info->hdr.max_size);
		json_u64("blocks_live", rep->blocks_live);
		json_u64("roots", rep->roots);
		json_bool("discarded_live", have_live);
		json_close('}');
	} else
		printf("restored %" PRIu64 " bytes (%s) of generation %" PRIu64
		    " into %s/heap.img: heap 0x%" PRIx64 ", size %" PRIu64
		    ", maximum %" PRIu64 " (start aclheapd with that --base "
		    "and --max-size), %" PRIu64
		    " block%s live, %" PRIu64 " root%s%s\n", total,
		    fmt_bytes(hb, sizeof(hb), total), info->hdr.generation,
		    state, info->hdr.base, info->hdr.size, info->hdr.max_size,
		    rep->blocks_live,
		    fmt_plural(rep->blocks_live), rep->roots,
		    fmt_plural(rep->roots),
		    have_live ? "; the old live segment is removed" : "");
}

int
cmd_restore(int argc, char **argv)
{
	struct restore_args a;
	char path[4200], live[128], errbuf[1024];
	struct shm_seg seg;
	struct image_info info;
	struct shm_report rep;
	uint64_t total;
	char mpath[300];
	int lfd, ofd, have_live;

	restore_args(argc, argv, &a);
	lfd = state_lock("restore", a.state);
	have_live = state_live_segment(a.state, live, sizeof(live));
	if (have_live && !a.discard)
		errx(EXIT_FAILURE, "restore: the heap's live segment %s is "
		    "still there and would be adopted instead of the image "
		    "(it is newer than any image); remove it, or pass "
		    "--discard-live", live);

	/* Copy to the temporary file and check it there. */
	snprintf(path, sizeof(path), "%s/heap.img.restore", a.state);
	ofd = restore_copy(a.src, a.state, path, &total);
	restore_check(a.src, path, &seg, &info, &rep);
	/* The deltas on top of the old base go first: on the new one they
	 * would be refused as damage (their parent is not it).  A crash
	 * before the rename leaves the old base alone, which loads. */
	remove_deltas(a.state);
	if (image_commit(ofd, a.state, "heap.img.restore", "heap.img", errbuf,
	    sizeof(errbuf)) != 0) {
		image_unload_offline(&seg);
		unlink(path);
		errx(EXIT_FAILURE, "restore: %s", errbuf);
	}
	/* Only now, with the image in place, does the live segment go. */
	if (have_live && unlink(live) == -1 && errno != ENOENT)
		warn("restore: removing %s", live);
	/* And its meta object (shm/shm.h), also one a crash left alone. */
	snprintf(mpath, sizeof(mpath), "%s.meta", live);
	if (live[0] != '\0' && unlink(mpath) == -1 && errno != ENOENT)
		warn("restore: removing %s", mpath);
	restore_report(a.state, total, &info, &rep, have_live);
	image_unload_offline(&seg);
	close(lfd);
	return 0;
}
