/* array.h — growing an array by doubling, with a maximum.
 *
 *   struct item *items = NULL; size_t n = 0, cap = 0;
 *   if ((rc = ARRAY_GROW(items, cap, n + 1, 64, MAX_ITEMS)))
 *     return rc;                       // items and cap are as they were
 *   items[n++] = x;
 *
 * ARRAY_GROW(arr, cap, need, first, max) makes room for `need` elements:
 * nothing when cap >= need; otherwise the capacity doubles from `first`
 * (cap 0) until it holds `need`, never past `max` elements, and the array
 * is realloc'ed. `arr` is any object pointer (owned by the caller, freed
 * with free), `cap` a size_t lvalue. Returns 0, GROVE_ETOOBIG when need >
 * max, or GROVE_ENOMEM (no memory, or the bytes overflow size_t); on error
 * arr and cap are unaltered. Like curl's dynbuf, every array that grows
 * from input says how far it may grow (ARRAY_NOMAX only where something
 * else bounds it). No locking: the caller's. */
#ifndef GROVE_ARRAY_H
#define GROVE_ARRAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define ARRAY_NOMAX SIZE_MAX

/* arrp: the address of the array pointer (read and written with memcpy,
 * so any object pointer type may be passed). */
static inline int array_grow_(void *arrp, size_t *cap, size_t need, size_t elem, size_t first,
                              size_t max) {
  if (need <= *cap)
    return 0;
  if (need > max)
    return GROVE_ETOOBIG;
  size_t n = *cap ? *cap : (first ? first : 1);
  while (n < need)
    n = n > max / 2 ? max : n * 2;
  if (n > max)
    n = max;
  size_t bytes;
  if (__builtin_mul_overflow(n, elem, &bytes))
    return GROVE_ENOMEM;
  void *old, *grown;
  memcpy(&old, arrp, sizeof old);
  if (!(grown = realloc(old, bytes)))
    return GROVE_ENOMEM;
  memcpy(arrp, &grown, sizeof grown);
  *cap = n;
  return 0;
}

#define ARRAY_GROW(arr, cap, need, first, max)                                                  \
  array_grow_(&(arr), &(cap), (need), sizeof *(arr), (first), (max))
/* The same for elements whose size is known only at run time (`elem`
 * bytes each; arr a char * or void *). */
#define ARRAY_GROW_SIZED(arr, cap, need, elem, first, max)                                      \
  array_grow_(&(arr), &(cap), (need), (elem), (first), (max))

#endif
