/* SPDX-License-Identifier: MIT */
/*
 * roots.c: the heap's named roots.  `roots` lists the daemon's (RootList);
 * inspect prints an image's roots through the same roots_print_one(), which
 * looks up the block a root points at in the mapping it is given, the live
 * heap here or an image in scratch memory there.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

/* A heap address as it lies in seg, which may be scratch memory. */
static int
lookup_block(const struct shm_seg *seg, uint64_t addr, struct slab_block *b)
{
	uintptr_t local;

	if (addr < seg->base || addr - seg->base >= seg_extent(seg))
		return -EINVAL;
	local = (uintptr_t)seg->sb + (uintptr_t)(addr - seg->base);
	return slab_block_lookup(seg, local, b);
}

static int
root_cmp(const void *a, const void *b)
{
	const Aclheap__Root *x = *(Aclheap__Root *const *)a;
	const Aclheap__Root *y = *(Aclheap__Root *const *)b;

	return strcmp(x->name, y->name);
}

void
roots_print_header(void)
{
	printf("%-16s %12s  %s\n", "address", "requested", "name");
}

/*
 * One root: its address and, when it points at a live block of seg (NULL:
 * no mapping to look in), its requested size.
 */
void
roots_print_one(const struct shm_seg *seg, const char *name, uint64_t value)
{
	struct slab_block b;
	int live = seg != NULL && lookup_block(seg, value, &b) == 0;
	char sz[32];

	if (ctl_json) {
		json_open(NULL, '{');
		json_str("name", name);
		json_u64("addr", value);
		if (live)
			json_u64("requested", b.req);
		else
			json_null("requested");
		json_close('}');
		return;
	}
	if (live)
		snprintf(sz, sizeof(sz), "%" PRIu64, b.req);
	else
		snprintf(sz, sizeof(sz), "-");
	printf("0x%-14" PRIx64 " %12s  %s\n", value, sz, name);
}

int
cmd_roots(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__RootList m = ACLHEAP__ROOT_LIST__INIT;
	Aclheap__RootListReply *rl;
	size_t i;

	args_begin();
	while (args_getopt(argc, argv, "", NULL) != -1)
		;
	args_end(argc, argv);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_LIST;
	q.root_list = &m;
	rl = ctl_request("roots", &q, ACLHEAP__REPLY__BODY_ROOTS, NULL)->roots;
	/* No roots decode as a NULL array, which qsort() may not be given. */
	if (rl->n_roots > 0)
		qsort(rl->roots, rl->n_roots, sizeof(rl->roots[0]), root_cmp);
	if (ctl_json)
		json_open(NULL, '[');
	else if (rl->n_roots == 0)
		printf("no roots\n");
	else
		roots_print_header();
	for (i = 0; i < rl->n_roots; i++)
		roots_print_one(conn_mapped ? &conn_seg : NULL,
		    rl->roots[i]->name, rl->roots[i]->value);
	if (ctl_json)
		json_close(']');
	return 0;
}
