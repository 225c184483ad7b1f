/* SPDX-License-Identifier: MIT */
/*
 * image_impl.h: what the image writer (image.c), the reader of one file
 * (image_read.c) and the reader of a chain (image_chain.c) share.  Not
 * for use outside shm/.
 */
#ifndef ACLHEAP_IMAGE_IMPL_H
#define ACLHEAP_IMAGE_IMPL_H

#include <stdint.h>

#include "shm/image.h"

/* How one link of a chain is read. */
struct link {
	image_put_fn put;
	void *ctx;
	int over;		/* an earlier link wrote the segment */
	uint8_t *written;	/* a bit per slab a RUN section carried */
	uint64_t *hashes;	/* per slab: its hash as carried, or NULL */
	uint8_t *meta;		/* the META payload, meta_len bytes */
	uint64_t digest;	/* out: the END section's */
};

/* image.c */
uint64_t slab_hash3(uint64_t bm, uint64_t sd, uint64_t data);
int	 slab_copy(const struct shm_seg *, uint64_t s, uint8_t *bm,
	    uint8_t *sd, uint8_t *data, struct shm_seg *check, uint64_t *h);
int	 table_used(const struct shm_slab *table, uint64_t s);

/* image_read.c */
int	 read_full(int fd, void *buf, size_t len);
int	 read_link(int fd, const char *path, struct link *,
	    struct image_info *, char *err, size_t errlen);

#endif /* ACLHEAP_IMAGE_IMPL_H */
