/* SPDX-License-Identifier: MIT */
/*
 * stats.c: the Stats reply, the heap's figures (shm_stats(), one pass over
 * the slab table) with the daemon's own: clients, uptime, the last
 * checkpoint and the image chain on disk.
 */
#include "config.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"

/* Fills s; what it points to is static, and lives until the next call. */
void
stats_fill(Aclheap__StatsReply *s)
{
	static Aclheap__ClassStats cs[SHM_NCLASSES], *csp[SHM_NCLASSES];
	static struct shm_stats st;
	static char img[4096];
	const struct ckpt_result *lc = ckpt_last();
	struct heap *heap = server.heap;
	struct shm_seg *seg = &heap->seg;
	int i;

	shm_stats(seg, &st);
	image_path(server.cfg, img, sizeof(img), "");
	s->version = PACKAGE_VERSION;
	s->heap_base = seg->base;
	s->size = seg->size;
	s->max_size = seg->max;
	s->data_start = seg->data;
	s->slabs_total = st.slabs_total;
	s->slabs_free = st.slabs_free;
	s->bytes_in_use = st.bytes_in_use;
	s->blocks_in_use = st.blocks;
	s->bytes_requested = st.req;
	s->large_blocks = st.large_blocks;
	s->large_bytes = st.large_bytes;
	s->roots = st.roots;
	s->blocks_cached = st.cached;
	s->clients = (uint64_t)conn_count();
	s->uptime_s = (uint64_t)(time(NULL) - server.started);
	s->ckpt_time = lc->time;
	s->ckpt_duration_us = lc->duration_us;
	s->ckpt_bytes = lc->bytes;
	s->ckpt_kind = lc->time != 0 && lc->why[0] != '\0' ?
	    (char *)ckpt_kind_name(lc->kind) : "";
	s->ckpt_reason = (char *)lc->why;
	s->ckpt_slabs = lc->slabs;
	ckpt_chain(&s->chain_deltas, &s->chain_bytes);
	s->image_path = img;
	s->generation = atomic_load(&seg->sb->generation);
	s->epoch = atomic_load(&seg->sb->epoch);
	s->identity.data = heap->identity;
	s->identity.len = 16;
	s->socket_path = server.cfg->socket_path;
	s->pid = (uint32_t)getpid();
	for (i = 0; i < SHM_NCLASSES; i++) {
		aclheap__class_stats__init(&cs[i]);
		cs[i].block_size = slab_class_size[i];
		cs[i].slabs = st.cls[i].slabs;
		cs[i].blocks_in_use = st.cls[i].used;
		cs[i].blocks_free = st.cls[i].free;
		cs[i].bytes_requested = st.cls[i].req;
		csp[i] = &cs[i];
	}
	s->n_classes = SHM_NCLASSES;
	s->classes = csp;
}
