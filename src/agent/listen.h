/* listen.h — `grove-agent --listen`: serves the latest sample's Prometheus
 * exposition (expo.h) at GET /metrics for a scrape, through libmicrohttpd
 * (Debian libmicrohttpd-dev; its own thread, at most 16 connections, 10 s
 * idle timeout), so that users who run Prometheus can scrape the agent as
 * they scrape node_exporter.
 *
 *   GET|HEAD /metrics  200 text/plain; version=0.0.4 — the latest page;
 *                      503 with Retry-After before the first sample
 *   GET|HEAD /         200 a line pointing at /metrics
 *   other methods      405 with Allow: GET, HEAD
 *   other paths        404
 *
 * Thread-safety: listener_publish may be called from any thread while the
 * daemon serves; the page is swapped under a mutex and each answer is a
 * copy, so a slow scraper never holds the sampler. */
#ifndef GROVE_AGENT_LISTEN_H
#define GROVE_AGENT_LISTEN_H

#include <stddef.h>

#include "core/buf.h"

struct listener;

/* Parses addr ("HOST:PORT", ":PORT" for every interface, "[V6]:PORT";
 * PORT 0 picks a free one) and starts serving. OUT: *out. Returns 0,
 * GROVE_EINVAL (a bad address; err says why), GROVE_EIO (cannot listen:
 * port taken, no permission; err says why) or GROVE_ENOMEM. */
int listener_start(struct listener **out, const char *addr, char *err, size_t errlen);
/* The port it listens on (useful after PORT 0). */
int listener_port(const struct listener *l);
/* Replaces the page served with page's contents; takes them (page is
 * re-initialised, keeping its maximum). */
void listener_publish(struct listener *l, struct buf *page);
/* Stops serving (finishes answers in flight) and frees l. NULL is fine. */
void listener_stop(struct listener *l);

#endif
