/* SPDX-License-Identifier: MIT */
/*
 * ckpt.h: what the checkpointer (ckpt.c) and the loader of the chain at
 * start-up (ckpt_load.c) share.  The daemon's interface to both is in
 * daemon.h.
 */
#ifndef ACLHEAP_CKPT_H
#define ACLHEAP_CKPT_H

#include <stdint.h>
#include <time.h>

#include "shm/image.h"

uint64_t ckpt_elapsed_us(const struct timespec *);
void	 ckpt_chain_loaded(const struct image_info *, uint64_t *hashes);

#endif /* ACLHEAP_CKPT_H */
