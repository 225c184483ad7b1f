/* SPDX-License-Identifier: MIT */
/*
 * clients.c: `clients`, the processes connected to aclheapd and what they
 * hold (Clients): pid, user, name, leased slabs, requests, since when.
 */
#include "config.h"

#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>

#include "ctl/ctl.h"

static void
client_print(const Aclheap__ClientInfo *ci)
{
	struct passwd *pw;
	char user[16], t[32];

	if ((pw = getpwuid(ci->uid)) != NULL)
		snprintf(user, sizeof(user), "%s", pw->pw_name);
	else
		snprintf(user, sizeof(user), "%u", ci->uid);
	if (ctl_json) {
		json_open(NULL, '{');
		json_u64("pid", ci->pid);
		json_u64("uid", ci->uid);
		json_u64("gid", ci->gid);
		json_str("user", user);
		json_str("name", ci->name);
		json_u64("leases", ci->leases);
		json_u64("requests", ci->requests);
		json_u64("since", ci->since);
		json_close('}');
	} else
		printf("%7u %-10.10s %-16.16s %6u %10" PRIu64 "  %s\n",
		    ci->pid, user, ci->name, ci->leases, ci->requests,
		    fmt_time(t, sizeof(t), ci->since));
}

int
cmd_clients(int argc, char **argv)
{
	Aclheap__Request q = ACLHEAP__REQUEST__INIT;
	Aclheap__Clients m = ACLHEAP__CLIENTS__INIT;
	Aclheap__ClientsReply *cr;
	size_t i;

	args_begin();
	while (args_getopt(argc, argv, "", NULL) != -1)
		;
	args_end(argc, argv);
	ctl_connect();
	q.body_case = ACLHEAP__REQUEST__BODY_CLIENTS;
	q.clients = &m;
	cr = ctl_request("clients", &q, ACLHEAP__REPLY__BODY_CLIENTS,
	    NULL)->clients;
	if (ctl_json)
		json_open(NULL, '[');
	else
		printf("%7s %-10s %-16s %6s %10s  %s\n", "pid", "user", "name",
		    "leases", "requests", "since");
	for (i = 0; i < cr->n_clients; i++)
		client_print(cr->clients[i]);
	if (!ctl_json && cr->total > cr->n_clients)
		printf("(and %u more)\n", cr->total - (unsigned)cr->n_clients);
	if (ctl_json)
		json_close(']');
	return 0;
}
