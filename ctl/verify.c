/* SPDX-License-Identifier: MIT */
/*
 * verify.c: checking a heap.  `verify` asks the daemon to check the live
 * heap (Verify), or with IMAGE checks an image file and its deltas
 * offline; `inspect IMAGE` prints an image's status.  Offline, an image is
 * loaded into scratch memory with image_load_offline() and goes through the
 * same validator (shm_check) and the same per-slab counting (slab_used,
 * slab_claimed) that the daemon runs on the live heap, so no daemon is
 * needed and none is disturbed.
 */
#include "config.h"

#include <err.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl/ctl.h"
#include "shm/image.h"

/* Loads and validates an image; exits 1 with the precise error. */
static void
load_image(const char *what, const char *path, struct shm_seg *seg,
    struct image_info *info, struct shm_report *rep)
{
	char errbuf[1024], why[512];

	if (image_load_offline(path, seg, info, errbuf, sizeof(errbuf)) != 0)
		goto fail;
	/* Checksums prove the bytes are what was written; the invariants
	 * prove that what was written makes sense. */
	if (shm_check_still(seg, rep, why, sizeof(why)) != 0) {
		snprintf(errbuf, sizeof(errbuf), "%s: invariants: %s", path,
		    why);
		image_unload_offline(seg);
		goto fail;
	}
	return;
fail:
	if (ctl_json) {
		json_open(NULL, '{');
		json_str("image", path);
		json_bool("ok", 0);
		json_str("error", errbuf);
		json_close('}');
		fflush(stdout);
	}
	errx(EXIT_FAILURE, "%s: %s", what, errbuf);
}

/* ------------------------------------------------------------------ */
/* verify */

static int
verify_image(const char *path)
{
	struct shm_seg seg;
	struct image_info info;
	struct shm_report r;

	load_image("verify", path, &seg, &info, &r);
	if (ctl_json) {
		json_open(NULL, '{');
		json_str("image", path);
		json_bool("ok", 1);
		json_u64("generation", info.hdr.generation);
		json_u64("base_generation", info.base_generation);
		json_u64("deltas", info.links);
		json_u64("sections", info.sections);
		json_u64("bytes", info.bytes);
		json_u64("blocks_live", r.blocks_live);
		json_u64("blocks_orphaned", r.blocks_orphaned);
		json_u64("large_blocks", r.large_blocks);
		json_u64("slabs_small", r.slabs_small);
		json_u64("slabs_large", r.slabs_large);
		json_u64("slabs_free", r.slabs_free);
		json_u64("roots", r.roots);
		json_close('}');
	} else
		printf("OK: %s: checksums of %" PRIu64 " section%s (%" PRIu64
		    " delta%s) and all invariants hold; generation %" PRIu64
		    ", %" PRIu64 " block%s live (%" PRIu64 " large), %" PRIu64
		    " orphaned claim%s, %" PRIu64 " root%s\n", path,
		    info.sections, fmt_plural(info.sections), info.links,
		    fmt_plural(info.links), info.hdr.generation, r.blocks_live,
		    fmt_plural(r.blocks_live), r.large_blocks,
		    r.blocks_orphaned, fmt_plural(r.blocks_orphaned), r.roots,
		    fmt_plural(r.roots));
	image_unload_offline(&seg);
	return 0;
}

static int
verify_live(void)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Verify m = ACLHEAP__VERIFY__INIT;
	Aclheap__VerifyReply *v;
	Aclheap__Reply *r = NULL;
	int rc;

	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_VERIFY;
	q.verify = &m;
	/* Not ctl_request: a damaged heap is an answer worth printing. */
	rc = ctl_send(&q, &r, NULL);
	if (rc != 0 && r == NULL) {
		if (ctl_unreachable(rc))
			ctl_unreachable_exit(rc);
		errx(EXIT_FAILURE, "verify: %s", conn_lasterr());
	}
	if (rc != 0) {
		if (ctl_json) {
			json_open(NULL, '{');
			json_str("socket", ctl_socket);
			json_bool("ok", 0);
			json_str("error", conn_lasterr());
			json_close('}');
			fflush(stdout);
		}
		errx(EXIT_FAILURE, "verify: live heap at %s: %s", ctl_socket,
		    conn_lasterr());
	}
	if (r->body_case != ACLHEAP__REPLY__BODY_VERIFY)
		errx(EXIT_FAILURE, "verify: aclheapd answered with an "
		    "unexpected reply (%d)", (int)r->body_case);
	v = r->verify;
	if (ctl_json) {
		json_open(NULL, '{');
		json_str("socket", ctl_socket);
		json_bool("ok", 1);
		json_u64("blocks_live", v->blocks_live);
		json_u64("blocks_orphaned", v->blocks_orphaned);
		json_u64("slabs_small", v->slabs_small);
		json_u64("slabs_large", v->slabs_large);
		json_u64("slabs_free", v->slabs_free);
		json_close('}');
	} else
		printf("OK: live heap at %s: all invariants hold; %" PRIu64
		    " block%s live, %" PRIu64 " claimed not handed out; "
		    "slabs: %" PRIu64 " small, %" PRIu64 " large, %" PRIu64
		    " free\n",
		    ctl_socket, v->blocks_live, fmt_plural(v->blocks_live),
		    v->blocks_orphaned, v->slabs_small, v->slabs_large,
		    v->slabs_free);
	return 0;
}

int
cmd_verify(int argc, char **argv)
{
	args_begin();
	while (args_getopt(argc, argv, "", NULL) != -1)
		;
	if (optind < argc) {
		optind++;
		args_end(argc, argv);
		return verify_image(argv[optind - 1]);
	}
	return verify_live();
}

/* ------------------------------------------------------------------ */
/* inspect */

/* The image's roots, in the order of its root table. */
static void
inspect_roots(const struct shm_seg *seg)
{
	uint64_t n = atomic_load(&seg->sb->roots_used), i;

	for (i = 0; i < n && i < seg->roots_max; i++)
		roots_print_one(seg, seg->roots[i].name,
		    atomic_load(&seg->roots[i].value));
}

static void
inspect_json(const char *path, const struct shm_seg *seg,
    const struct image_info *info, const struct figures *f, const char *id)
{
	const struct image_header *h = &info->hdr;

	json_open(NULL, '{');
	json_str("image", path);
	json_bool("ok", 1);
	json_u64("bytes", info->bytes);
	json_u64("format", h->version);
	json_u64("layout", h->layout);
	json_str("identity", id);
	json_u64("base", h->base);
	json_u64("size", h->size);
	json_u64("max_size", h->max_size);
	json_u64("slab_size", h->slab_size);
	json_u64("slabs_total", h->nslabs);
	json_u64("slabs_stored", info->slabs);
	json_u64("sections", info->sections);
	json_u64("generation", h->generation);
	json_u64("base_generation", info->base_generation);
	json_u64("base_bytes", info->base_bytes);
	json_u64("deltas", info->links);
	json_u64("time", h->time);
	json_u64("created", seg->sb->created);
	json_u64("epoch", atomic_load(&seg->sb->epoch));
	json_u64("bytes_in_use", f->slabs_used << SHM_SLAB_SHIFT);
	json_u64("bytes_free", (f->slabs_total - f->slabs_used) <<
	    SHM_SLAB_SHIFT);
	json_u64("blocks_in_use", f->blocks);
	json_u64("blocks_cached", f->cached);
	json_u64("bytes_requested", f->req);
	json_u64("large_blocks", f->large_blocks);
	json_u64("large_bytes", f->large_bytes);
	figures_json_classes(f);
	json_open("roots", '[');
	inspect_roots(seg);
	json_close(']');
	json_close('}');
}

static void
inspect_print(const char *path, const struct shm_seg *seg,
    const struct image_info *info, const struct shm_report *r,
    const struct figures *f, const char *id)
{
	const struct image_header *h = &info->hdr;
	char a[64], b[64];

	figures_print_used(f);
	printf("image       %s, %s in %" PRIu64 " sections (%" PRIu64
	    " slabs stored)\n", path, fmt_bytes(a, sizeof(a), info->bytes),
	    info->sections, info->slabs);
	printf("written     %s, generation %" PRIu64 ", format %u layout %u\n",
	    fmt_time(a, sizeof(a), h->time), h->generation, h->version,
	    h->layout);
	printf("chain       base generation %" PRIu64 " (%s) and %" PRIu64
	    " deltas%s\n", info->base_generation, fmt_bytes(b, sizeof(b),
	    info->base_bytes), info->links, info->stale ?
	    " (stale deltas after them ignored)" : "");
	printf("heap        0x%" PRIx64 "-0x%" PRIx64 ", %s\n", h->base,
	    (uint64_t)(seg->base + seg_extent(seg)), fmt_bytes(b, sizeof(b),
	    h->size));
	if (h->max_size > h->size)
		printf("room        grows to %s\n", fmt_bytes(a, sizeof(a),
		    h->max_size));
	printf("blocks      %" PRIu64 " in use (%" PRIu64 " large), %s "
	    "requested, %" PRIu64 " cached\n", f->blocks, f->large_blocks,
	    fmt_bytes(a, sizeof(a), f->req), f->cached);
	printf("roots       %" PRIu64 "\n", r->roots);
	printf("identity    %s, created %s\n", id, fmt_time(b, sizeof(b),
	    seg->sb->created));
	figures_print_classes(f);
	if (r->roots > 0) {
		putchar('\n');
		roots_print_header();
		inspect_roots(seg);
	}
}

int
cmd_inspect(int argc, char **argv)
{
	struct shm_seg seg;
	struct image_info info;
	struct shm_report r;
	struct figures f;
	char id[40];
	const char *path;

	args_begin();
	while (args_getopt(argc, argv, "", NULL) != -1)
		;
	if (optind >= argc) {
		warnx("inspect: IMAGE is missing");
		ctl_usage();
	}
	path = argv[optind++];
	args_end(argc, argv);
	load_image("inspect", path, &seg, &info, &r);
	figures_from_seg(&seg, &f);
	fmt_hex(id, sizeof(id), info.hdr.identity, sizeof(info.hdr.identity));
	if (ctl_json)
		inspect_json(path, &seg, &info, &f, id);
	else
		inspect_print(path, &seg, &info, &r, &f, id);
	image_unload_offline(&seg);
	return 0;
}
