/* SPDX-License-Identifier: MIT */
/*
 * roots.c: the heap's named roots.  `roots` lists the daemon's (RootList);
 * inspect prints an image's roots through the same roots_print_one(), which
 * looks up the block a root points at in the mapping it is given, the live
 * heap here or an image in scratch memory there.
 */
#include "config.h"

#include <err.h>
#include <errno.h>
#include <getopt.h>
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

/*
 * `roots [--prefix P]`: page by page (RootList), each page in name order
 * after the one before, so the whole list is sorted and printed as it
 * comes, in the memory of one page.
 */
int
cmd_roots(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__RootList m = ACLHEAP__ROOT_LIST__INIT;
	Aclheap__RootListReply *rl;
	char after[SHM_ROOT_NAME_MAX + 1] = "";
	const char *prefix = "";
	uint64_t total = 0;
	size_t i;
	int c;

	args_begin();
	while ((c = args_getopt(argc, argv, "", opts)) != -1)
		if (c == 'p')
			prefix = optarg;
	args_end(argc, argv);
	if (prefix[0] != '\0' && !shm_root_name_ok(prefix))
		errx(2, "roots: --prefix takes 1 to %d bytes of printable "
		    "ASCII", SHM_ROOT_NAME_MAX);
	ctl_connect();
	m.prefix = (char *)prefix;
	m.after = after;
	q.body_case = ACLHEAP__REQUEST__BODY_ROOT_LIST;
	q.root_list = &m;
	if (ctl_json)
		json_open(NULL, '[');
	do {
		rl = ctl_request("roots", &q, ACLHEAP__REPLY__BODY_ROOTS,
		    NULL)->roots;
		for (i = 0; i < rl->n_roots; i++, total++) {
			if (total == 0 && !ctl_json)
				roots_print_header();
			roots_print_one(conn_mapped ? &conn_seg : NULL,
			    rl->roots[i]->name, rl->roots[i]->value);
		}
		if (rl->n_roots > 0)
			snprintf(after, sizeof(after), "%s",
			    rl->roots[rl->n_roots - 1]->name);
	} while (rl->more && rl->n_roots > 0);
	if (ctl_json)
		json_close(']');
	else if (total == 0 && prefix[0] != '\0')
		printf("no roots starting with \"%s\"\n", prefix);
	else if (total == 0)
		printf("no roots\n");
	return 0;
}
