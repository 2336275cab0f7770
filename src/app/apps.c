/* apps.c — the table of apps `grove serve` runs, in start order: one line
 * per app. --help, the console's pages and the routes come from each
 * app's own table (app.h). */
#include "app/app.h"

extern const struct grove_app ops_app;
extern const struct grove_app flow_app;
extern const struct grove_app matrix_app;

const struct grove_app *const grove_apps[] = {
    &ops_app,
    &flow_app,
    &matrix_app,
};
const size_t grove_napps = sizeof grove_apps / sizeof grove_apps[0];
