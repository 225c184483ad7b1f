/* SPDX-License-Identifier: MIT */
/*
 * figures.c: the figures that status (from the daemon's Stats reply) and
 * inspect (from an image loaded offline) both print, gathered into one
 * struct figures from either source, so the two print the same lines and
 * the same class table in the same words.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

void
figures_from_stats(const Aclheap__StatsReply *s, struct figures *f)
{
	size_t i;
	uint64_t small_req = 0;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < s->n_classes && i < SHM_NCLASSES; i++) {
		f->cls[i].block_size = s->classes[i]->block_size;
		f->cls[i].slabs = s->classes[i]->slabs;
		f->cls[i].used = s->classes[i]->blocks_in_use;
		f->cls[i].free = s->classes[i]->blocks_free;
		f->cls[i].req = s->classes[i]->bytes_requested;
		small_req += f->cls[i].req;
	}
	f->ncls = (int)i;
	f->large_blocks = s->large_blocks;
	f->large_bytes = s->large_bytes;
	/* The daemon sends the total requested; the large share is the rest. */
	f->large_req = s->bytes_requested > small_req ?
	    s->bytes_requested - small_req : 0;
	f->blocks = s->blocks_in_use;
	f->req = s->bytes_requested;
	f->cached = s->blocks_cached;
	f->slabs_total = s->slabs_total;
	f->slabs_used = s->slabs_total - s->slabs_free;
}

/* The figures the daemon's status reports, from a loaded image. */
void
figures_from_seg(const struct shm_seg *seg, struct figures *f)
{
	struct shm_stats st;
	int i;

	shm_stats(seg, &st);
	memset(f, 0, sizeof(*f));
	f->ncls = SHM_NCLASSES;
	for (i = 0; i < SHM_NCLASSES; i++) {
		f->cls[i].block_size = slab_class_size[i];
		f->cls[i].slabs = st.cls[i].slabs;
		f->cls[i].used = st.cls[i].used;
		f->cls[i].free = st.cls[i].free;
		f->cls[i].req = st.cls[i].req;
	}
	f->slabs_total = seg->nslabs;
	f->slabs_used = st.slabs_used;
	f->large_blocks = st.large_blocks;
	f->large_bytes = st.large_bytes;
	f->large_req = st.large_req;
	f->blocks = st.blocks;
	f->req = st.req;
	f->cached = st.cached;
}

void
figures_print_used(const struct figures *f)
{
	char a[32], b[32], c[32];
	uint64_t used = f->slabs_used << SHM_SLAB_SHIFT;
	uint64_t total = f->slabs_total << SHM_SLAB_SHIFT;

	printf("used        %s of %s (%.1f%%), %s free\n",
	    fmt_bytes(a, sizeof(a), used), fmt_bytes(b, sizeof(b), total),
	    fmt_pct(used, total), fmt_bytes(c, sizeof(c), total - used));
}

/* The table's header, before its first line. */
static void
classes_header(int *any)
{
	if (!*any)
		printf("\n%7s %6s %9s %9s %11s %11s %7s\n", "block",
		    "slabs", "used", "free", "requested", "handed out",
		    "fill");
	*any = 1;
}

/* The class table in memcached's terms: block ~ chunk, slab ~ page. */
void
figures_print_classes(const struct figures *f)
{
	const struct figures_cls *c;
	char a[32], b[32];
	uint64_t out;
	int i, any = 0;

	for (i = 0; i < f->ncls; i++) {
		c = &f->cls[i];
		if (c->slabs == 0)
			continue;
		classes_header(&any);
		out = c->used * c->block_size;
		printf("%7u %6" PRIu64 " %9" PRIu64 " %9" PRIu64 " %11s "
		    "%11s %6.1f%%\n", c->block_size, c->slabs, c->used,
		    c->free, fmt_bytes(a, sizeof(a), c->req),
		    fmt_bytes(b, sizeof(b), out), fmt_pct(c->req, out));
	}
	if (f->large_blocks > 0) {
		classes_header(&any);
		printf("%7s %6" PRIu64 " %9" PRIu64 " %9s %11s %11s "
		    "%6.1f%%\n", "large", f->large_bytes >> SHM_SLAB_SHIFT,
		    f->large_blocks, "-", fmt_bytes(a, sizeof(a), f->large_req),
		    fmt_bytes(b, sizeof(b), f->large_bytes),
		    fmt_pct(f->large_req, f->large_bytes));
	}
	if (!any)
		printf("\nno blocks in use\n");
}

/* The same table as the "classes" array of an object. */
void
figures_json_classes(const struct figures *f)
{
	const struct figures_cls *c;
	int i;

	json_open("classes", '[');
	for (i = 0; i < f->ncls; i++) {
		c = &f->cls[i];
		json_open(NULL, '{');
		json_u64("block_size", c->block_size);
		json_u64("slabs", c->slabs);
		json_u64("blocks_in_use", c->used);
		json_u64("blocks_free", c->free);
		json_u64("bytes_requested", c->req);
		json_u64("bytes_handed_out", c->used * c->block_size);
		json_close('}');
	}
	json_close(']');
}
