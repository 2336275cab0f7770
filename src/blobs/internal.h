/* internal.h — the blob store's own parts (blobs-internal): the storage
 * backend table and the store's state.
 *
 * A backend keeps bytes by content address (the SHA-256 in lowercase
 * hex) and knows nothing of owners, names or counts: those are the
 * metadata's (blobs.c). Every call blocks; every call may run on any
 * thread, several at once (the store serialises what touches one content
 * address, see blobs.c "locks"). A second backend (S3, a shared
 * filesystem) is one more table of these hooks; callers do not change. */
#ifndef GROVE_BLOBS_INTERNAL_H
#define GROVE_BLOBS_INTERNAL_H

#include <pthread.h>

#include <openssl/evp.h>

#include "blobs/blobs.h"
#include "blobs/tus.h"

struct blobs_ops {
  const char *name; /* --blobs-backend */
  /* Opens the backend rooted at `root` (made if missing); `instance`
   * (32 hex characters) names what this process alone owns in it when
   * several share it (its temporary objects). OUT: *be. GROVE_EIO with
   * err. */
  int (*open)(const char *root, const char *instance, void **be, char *err, size_t errlen);
  void (*close)(void *be);
  /* A temporary object to write an upload into, gone when discarded or
   * installed. OUT: *tmp. GROVE_EIO, GROVE_ENOSPC. */
  int (*tmp_create)(void *be, void **tmp);
  /* Appends n bytes. GROVE_ENOSPC, GROVE_EIO. */
  int (*tmp_write)(void *tmp, const void *data, size_t n);
  /* Makes the bytes written durable. */
  int (*tmp_sync)(void *tmp);
  void (*tmp_discard)(void *tmp);
  /* Makes tmp (synced) the content `sha`; tmp stays (for another try)
   * until tmp_discard. OUT: *created true when the content was not
   * stored before (else the existing bytes stay). */
  int (*tmp_install)(void *be, void *tmp, const char *sha, bool *created);
  /* The same for the file at path, linked when it can be, else copied;
   * path stays (the caller removes it once the blob is recorded).
   * GROVE_ENOENT, GROVE_EIO. */
  int (*file_install)(void *be, const char *path, const char *sha, bool *created);
  /* Removes the content's bytes (absent already is fine). Callers hold
   * it exclusively (hold). */
  int (*remove)(void *be, const char *sha);
  /* Locks the content's bytes against every process sharing the
   * backend: shared by an upload from finding or installing them through
   * its commit, exclusive by a removal through its check of the metadata
   * and its remove; so a delete on one instance never removes bytes an
   * upload on another has just found and is recording. OUT: *h, for
   * unhold. GROVE_ENOENT when the bytes are not there (removed
   * meanwhile), GROVE_EIO. Blocks while the other kind is held. */
  int (*hold)(void *be, const char *sha, bool exclusive, void **h);
  void (*unhold)(void *h);
  /* Opens the content for reading. OUT: *rd, *size. GROVE_ENOENT. */
  int (*open_read)(void *be, const char *sha, void **rd, uint64_t *size);
  int (*read_at)(void *rd, uint64_t off, void *buf, size_t n, size_t *got);
  void (*close_read)(void *rd);
  /* Removes every temporary object of this instance, and every content
   * for which keep(sha) says false (bytes a crash left unreferenced) that
   * has not changed since `before` (Unix s: another instance sharing the
   * backend may have just installed it and not yet committed). OUT:
   * *removed (may be NULL). keep returns -1 when it cannot tell: the
   * sweep stops with that error. */
  int (*sweep)(void *be, int (*keep)(const char *sha, void *arg), void *arg, int64_t before,
               int *removed);
  /* A folder on the same filesystem for files that become blobs (NULL:
   * none); the backend never cleans it. */
  const char *(*spool_dir)(void *be);
};

extern const struct blobs_ops blobs_local_ops;

#define BLOBS_LOCKS 64

struct blobs {
  struct store *store;
  const struct blobs_ops *ops;
  void *be;
  uint64_t max_size;
  uint64_t quota_bytes;
  int64_t quota_files;
  /* What touches one content address (install + metadata commit, or
   * metadata delete + remove) holds its stripe, so a delete cannot remove
   * bytes an upload of the same content has just found there. */
  pthread_mutex_t locks[BLOBS_LOCKS];
  char instance[BLOBS_ID_LEN]; /* blobs_instance */
  struct metric *uploads, *upload_bytes, *deduped, *deletes, *freed_bytes;
};

/* Whether s is 64 lowercase hex characters. */
bool blobs_sha_valid(const char *s);

/* Reads the id (32 lowercase hex characters) kept in the file at path,
 * or makes one and writes it there (fsync'd, renamed into place). OUT:
 * out. Returns 0 or GROVE_EIO with err. Blocking. */
int blobs_id_file(const char *path, char out[BLOBS_ID_LEN], char *err, size_t errlen);

/* ---- tus: the frontier (tus_frontier.c) ---------------------------------
 * The SHA-256 of a final concatenation computed while its parts arrive:
 * the partial uploads an owner creates one after another are taken for
 * the parts of one file, in that order (a chain), and a thread of its own
 * hashes them from the first byte on as their bytes become durable,
 * keeping the state at every part boundary. A cache: whatever it lacks
 * (another order, a restart, a part written by another instance) is
 * hashed at the final from disk. Every call may run on any thread. */
struct tus_frontier;
/* Starts the hasher; data files are dir/<id>. GROVE_ENOMEM. */
int tus_frontier_open(struct tus_frontier **out, const char *dir);
void tus_frontier_close(struct tus_frontier *f); /* NULL is fine */
/* A partial upload of `owner` was made (length bytes): the next part of
 * the owner's chain while that one is still being sent, else the first
 * of a new chain. */
void tus_frontier_created(struct tus_frontier *f, const char *owner, const char *id,
                          uint64_t length);
/* This process made id's bytes [0, durable) durable (they never change
 * again): the frontier may read them. */
void tus_frontier_durable(struct tus_frontier *f, const char *id, uint64_t durable);
/* id is gone (deleted, expired): its chain stops before it. */
void tus_frontier_forget(struct tus_frontier *f, const char *id);
/* For a final of ids[0..n): copies into md (a fresh SHA-256 context) the
 * state of the chain that starts with ids[0], as far as it matches ids;
 * OUT: *part, *off: md covers parts [0, *part) of ids and the first *off
 * bytes of ids[*part] (*part = n: all of them). The chain stops there
 * (no part joins it, nothing more is hashed) but keeps its states for a
 * retried final. Returns false (md untouched, 0 and 0) when no chain helps. Waits for at
 * most one step of the hasher (8 MiB). */
bool tus_frontier_take(struct tus_frontier *f, const char (*ids)[TUS_ID_LEN], int n,
                       EVP_MD_CTX *md, int *part, uint64_t *off);
/* Blocks until the hasher has nothing left to do (tests). */
void tus_frontier_wait(struct tus_frontier *f);
/* Bytes hashed ahead since open (tests, metrics). */
uint64_t tus_frontier_ahead(struct tus_frontier *f);

#endif
