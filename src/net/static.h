/* static.h — serves the web console's files for GET/HEAD paths that no
 * route matches: "/" is web/index.html, and /javascript/… is a file of
 * GROVE_JAVASCRIPT_DIR (build option, /usr/share/javascript: Debian's
 * libjs-* packages, such as the console's Chart.js). Weak ETags (size and mtime) answer
 * If-None-Match with 304; HTML is revalidated on every load, other assets
 * are cached for an hour. Paths with "/." (so "..") are never served. */
#ifndef GROVE_STATIC_H
#define GROVE_STATIC_H

#include "net/http.h"

struct static_root;

/* Installs the router's fallback. An empty dir installs nothing. */
int static_create(struct static_root **out, struct router *rt, const char *dir);
void static_destroy(struct static_root *root);

#endif
