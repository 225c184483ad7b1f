/* SPDX-License-Identifier: MIT */
/*
 * request.c: the table of request kinds (request.h), indexed by the body's
 * oneof case.  The daemon's handlers and the client's retry rule both read
 * it; nothing writes it.
 */
#include "config.h"

#include "proto/request.h"

#define KIND(kind, nm, fl, rt)						\
	[ACLHEAP__REQUEST__BODY_##kind] = {				\
		.name = #nm, .flags = (fl), .retry = REQUEST_##rt,	\
	},

const struct request_kind request_kinds[REQUEST_BODY_END] = {
	REQUEST_KINDS(KIND)
};
