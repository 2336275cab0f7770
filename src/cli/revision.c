/* revision.c — the source revision this binary was built from, in a file
 * of its own so that a new revision recompiles only this file. The header
 * is written at every build by cmake/revision.cmake. */
#include "app/app.h"
#include "grove_revision.h"

const char *grove_revision(void) { return GROVE_REVISION; }
