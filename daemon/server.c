/* SPDX-License-Identifier: MIT */
/*
 * server.c: aclheapd's loop: setting it up, its signals and timers, and
 * the graceful stop.
 *
 *   listen fd --accept (listen.c)--> struct conn (conn.c) --frames-->
 *       request_dispatch() (request.c) --> heap_*(), ckpt_*()
 *
 * TERM and INT stop the loop: requests already here are answered "not
 * done", the connections closed (clients keep their leases), and the
 * final checkpoint written.  HUP reloads the settings that can change
 * while running; USR1 asks for a checkpoint.  A timer every 2 s returns
 * the leases of processes that are gone and the slabs clients emptied.
 */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "daemon/daemon.h"

struct server server;
static struct event *watchdog_ev, *reap_ev;
static int saved_argc;
static char **saved_argv;

int
server_client_count(void)
{
	return conn_count();
}

/*
 * SIGHUP: the log reopened, and the settings read again; those that can
 * change while running (log level, allow list, per-user cap, checkpoint
 * interval) take effect, the others wait for a restart.
 */
static void
server_reload(void)
{
	struct config nc, *cfg = server.cfg;

	notify_reloading();
	log_reopen();	/* a rotated log file starts anew */
	config_defaults(&nc);
	if (config_parse_args(&nc, saved_argc, saved_argv) != 0) {
		log_errx("reload: config has errors; keeping the running "
		    "settings");
		config_free(&nc);
		notify_ready();
		return;
	}
	cfg->log_level = nc.log_level;
	log_set_level(nc.log_level);
	memcpy(cfg->allow_uid, nc.allow_uid, sizeof(nc.allow_uid));
	cfg->nallow_uid = nc.nallow_uid;
	memcpy(cfg->allow_gid, nc.allow_gid, sizeof(nc.allow_gid));
	cfg->nallow_gid = nc.nallow_gid;
	cfg->max_per_user = nc.max_per_user;
	if (cfg->checkpoint_interval != nc.checkpoint_interval) {
		cfg->checkpoint_interval = nc.checkpoint_interval;
		ckpt_set_interval(nc.checkpoint_interval);
	}
	if ((nc.base_set && nc.base != cfg->base) ||
	    /* The heap keeps its own size: a smaller one in the file (from
	     * before a growth) is no change. */
	    (nc.size_set && nc.size > cfg->size) ||
	    (nc.max_set && nc.max != cfg->max) ||
	    strcmp(nc.socket_path ? nc.socket_path : cfg->socket_path,
	    cfg->socket_path) != 0)
		log_warnx("reload: base, size, maximum and socket change only "
		    "at restart; a running heap grows with aclheapctl grow");
	log_notice("reloaded %s: log level %d, %d users and %d groups "
	    "allowed, checkpoint every %us", cfg->config_path, cfg->log_level,
	    cfg->nallow_uid, cfg->nallow_gid, cfg->checkpoint_interval);
	config_free(&nc);
	notify_ready();
}

static void
sig_cb(evutil_socket_t sig, short what, void *arg)
{

	(void)what;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_notice("signal %d: stopping", (int)sig);
		notify_stopping();
		event_base_loopbreak(server.base);
		break;
	case SIGUSR1:
		log_info("SIGUSR1: checkpoint requested");
		ckpt_request(0, NULL, NULL);
		break;
	case SIGHUP:
		server_reload();
		break;
	}
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct heap *heap = server.heap;
	uint32_t n;

	(void)fd;
	(void)what;
	(void)arg;
	if ((n = heap_reap_leases(heap)) > 0)
		log_info("returned %u leases of processes that are gone", n);
	/* Slabs that clients emptied with local frees go back to the pool
	 * (and their memory to the system) without waiting for a shortage. */
	if ((n = (uint32_t)heap_reclaim_sweep(heap)) > 0)
		log_debug("reclaimed %u empty slabs", n);
	if ((n = (uint32_t)heap_decay(heap, 0)) > 0)
		log_debug("gave back the memory of %u slabs free for %u s", n,
		    heap->decay);
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	notify_watchdog();
}

/*
 * What serving needs besides sockets and signals: the settings, the heap,
 * the loop, the decoding arena and the checkpointer.  server_run() calls
 * it; so does the dispatch fuzzer, which then feeds connections made with
 * server_conn_new() and runs the loop itself.
 */
int
server_setup(struct config *c, struct heap *h, struct event_base *eb)
{
	server.cfg = c;
	server.heap = h;
	server.base = eb;
	server.started = time(NULL);
	conn_setup();
	return ckpt_init(h, c, eb);
}

/*
 * Runs the loop until TERM or INT, then writes the final checkpoint.
 * Returns the exit status.
 */
int
server_run(struct config *c, struct heap *h, int lfd, int argc, char **argv)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	struct event *sev[4];
	struct event_base *eb;
	sigset_t blocked;
	struct ckpt_result res;
	uint64_t wd;
	size_t i;
	int status = 0;

	saved_argc = argc;
	saved_argv = argv;
	signal(SIGPIPE, SIG_IGN);
	if ((eb = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (server_setup(c, h, eb) != 0)
		fatalx("cannot set up checkpoints");
	sigemptyset(&blocked);
	for (i = 0; i < 4; i++) {
		sev[i] = evsignal_new(server.base, sigs[i], sig_cb, NULL);
		if (sev[i] == NULL || evsignal_add(sev[i], NULL) != 0)
			fatalx("cannot watch signal %d", sigs[i]);
		sigaddset(&blocked, sigs[i]);
	}
	/* main() blocked them until now; any that came are delivered. */
	sigprocmask(SIG_UNBLOCK, &blocked, NULL);
	if (listen_start(lfd) != 0)
		fatalx("cannot watch the socket");
	{
		struct timeval tv = { 2, 0 };

		reap_ev = event_new(server.base, -1, EV_PERSIST, reap_cb, NULL);
		if (reap_ev == NULL || event_add(reap_ev, &tv) != 0)
			fatalx("cannot set up the lease reaper");
	}
	if ((wd = notify_watchdog_usec()) > 0) {
		struct timeval tv = { (time_t)(wd / 1000000),
		    (suseconds_t)(wd % 1000000) };

		watchdog_ev = event_new(server.base, -1, EV_PERSIST,
		    watchdog_cb, NULL);
		if (watchdog_ev != NULL)
			event_add(watchdog_ev, &tv);
		notify_watchdog();
	}
	notify_ready();
	log_notice("serving heap 0x%" PRIxPTR "+%" PRIu64 " on %s", h->seg.base,
	    h->seg.size, c->socket_path);
	event_base_dispatch(server.base);

	/* Graceful stop: no new requests, then the final checkpoint. */
	listen_stop();
	server.stopping = 1;
	conn_close_all();
	if (ckpt_sync(&res) != 0) {
		log_errx("final checkpoint failed: %s", res.message);
		status = 1;
	} else
		log_notice("final checkpoint %" PRIu64 " (%s): %" PRIu64
		    " bytes written", res.generation, ckpt_kind_name(res.kind),
		    res.bytes);
	for (i = 0; i < 4; i++)
		event_free(sev[i]);
	if (watchdog_ev != NULL)
		event_free(watchdog_ev);
	event_free(reap_ev);
	return status;
}

