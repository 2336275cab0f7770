/* llm.h — optional language-model backends, off unless --llm-url is set.
 *
 * Two dialects: Ollama (POST /api/chat, a JSON object a line) and
 * OpenAI-compatible servers (POST /v1/chat/completions, Server-Sent
 * Events), both asked to stream, so the answer arrives in pieces as the
 * model writes it. http:// or https:// (libcurl, net/client.h; the CAs
 * trusted are the system's or --llm-ca-file's). Calls block: run them on
 * a worker thread (the wait pool, http_req_defer). Thread-safe: each call
 * has its own connection. */
#ifndef GROVE_LLM_H
#define GROVE_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct llm_cfg {
  char *url;             /* "" (off) or http(s)://host:port[/prefix] */
  char *api;             /* "ollama" or "openai" */
  char *model;
  char *key;             /* sent as Authorization: Bearer, if set */
  uint64_t timeout_ms;   /* for the whole answer */
  char *ca_file;         /* PEM CAs for https; "": the system's store */
};

extern const struct cfg_opt llm_cfg_opts[];
extern const size_t llm_cfg_nopts;

bool llm_enabled(const struct llm_cfg *c);

/* Called with each piece of the answer as it arrives; nonzero stops. */
typedef int (*llm_delta_fn)(const char *text, size_t len, void *arg);

/* Sends a system and a user message and streams the reply to fn. Returns
 * 0, or GROVE_EUNAVAIL (cannot connect, TLS failed, or the server said
 * no), GROVE_ETIMEOUT, GROVE_EPROTO (an answer we cannot read: not HTTP,
 * a line that is not JSON or over 1 MiB), GROVE_ETOOBIG (an answer over
 * 64 MiB), GROVE_EINVAL (a bad --llm-url or --llm-api); err says why. */
int llm_chat(const struct llm_cfg *c, const char *system, const char *user, llm_delta_fn fn,
             void *arg, char *err, size_t errlen);

#endif
