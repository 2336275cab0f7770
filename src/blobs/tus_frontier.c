/* tus_frontier.c — the SHA-256 of a concatenation, computed while its
 * parts arrive (internal.h, "the frontier").
 *
 * SHA-256 does not compose: the hash of a final upload has to run over
 * its bytes in order. But it can run ahead of the final's POST: partial
 * uploads an owner creates one after another are guessed to be the parts
 * of one file in that order (a "chain": tus-js-client's parallelUploads
 * and bench/upload create them so), and a thread hashes the chain from
 * its first byte on, following the contiguous frontier: the first part's
 * bytes as they become durable, the second's once the first is complete
 * (read back from the page cache), and so on. At each part boundary it
 * keeps a copy of the hash state. When the final comes, the longest
 * prefix of its parts that a chain starts with gives the state to go on
 * from; only the rest is hashed then (often nothing).
 *
 * It is a cache, and a guess: bytes are read only below a durable offset
 * (they never change again), so a state is always true of the parts it
 * names; a wrong guess (another order, parts of two files interleaved),
 * a part deleted or expired (its chain stops there), a part written by
 * another instance (the frontier waits at what this one saw), or a
 * restart (nothing kept) only leave more to hash at the final, from
 * disk. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blobs/internal.h"
#include "core/error.h"
#include "core/log.h"

#define CHAINS 32          /* chains kept (the least recently touched goes) */
#define CHAIN_PARTS 64     /* parts of one chain; a longer file starts a new chain */
#define STEP (8u << 20)    /* bytes hashed between looks at the chains */
#define WINDOW (2u << 20)  /* bytes of a part mapped at a time */

struct chain_part {
  char id[TUS_ID_LEN];
  uint64_t length;
  uint64_t durable;        /* as this process last made it durable */
};

struct chain {
  bool used;
  bool closed;             /* a final took it: no part joins it any more */
  bool dead;               /* a part went away: the frontier stops */
  bool busy;               /* the hasher is hashing a step of it (it owns md) */
  char owner[64];
  int n;
  struct chain_part parts[CHAIN_PARTS];
  int64_t touched;         /* a sequence number: the least recent goes */
  EVP_MD_CTX *md;          /* covers parts [0, part) and [0, off) of parts[part] */
  int part;
  uint64_t off;
  EVP_MD_CTX *snap[CHAIN_PARTS]; /* snap[i]: parts [0, i] whole */
};

struct tus_frontier {
  char dir[PATH_MAX];
  pthread_mutex_t mu;
  pthread_cond_t work;     /* the hasher waits for work */
  pthread_cond_t idle;     /* takers wait for a step to end; tests for no work */
  pthread_t th;
  bool stop, hashing;
  int64_t seq;
  struct chain chains[CHAINS];
  uint64_t ahead;          /* bytes hashed ahead, in all (tus_frontier_ahead) */
};

static void chain_clear(struct chain *c) {
  EVP_MD_CTX_free(c->md);
  for (int i = 0; i < CHAIN_PARTS; i++)
    EVP_MD_CTX_free(c->snap[i]);
  memset(c, 0, sizeof *c);
}

/* Whether c has bytes to hash now. */
static bool chain_ready(const struct chain *c) {
  return c->used && !c->dead && !c->busy && c->md && c->part < c->n &&
         (c->parts[c->part].durable > c->off || c->parts[c->part].length == 0);
}

/* Hashes bytes [off, end) of the data file of id into md, straight from
 * the page cache. */
static int hash_range(const char *dir, const char *id, uint64_t off, uint64_t end,
                      EVP_MD_CTX *md) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%.32s", dir, id);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return GROVE_ENOENT;
  /* a file cut shorter than its durable offset would fault: check */
  off_t size = lseek(fd, 0, SEEK_END);
  int rc = size < 0 || (uint64_t)size < end ? GROVE_EIO : 0;
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  while (!rc && off < end) { /* a window at a time: the mapped pages count as resident */
    uint64_t base = off - off % page;
    size_t len = end - base < WINDOW ? (size_t)(end - base) : WINDOW;
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)base);
    if (map == MAP_FAILED) {
      rc = GROVE_EIO;
      break;
    }
    if (EVP_DigestUpdate(md, (const char *)map + (off - base), len - (size_t)(off - base)) != 1)
      rc = GROVE_EIO;
    munmap(map, len);
    off = base + len;
  }
  close(fd);
  return rc;
}

static void *hasher_main(void *arg) {
  struct tus_frontier *f = arg;
  pthread_mutex_lock(&f->mu);
  while (!f->stop) {
    struct chain *c = NULL;
    for (int i = 0; i < CHAINS && !c; i++)
      if (chain_ready(&f->chains[i]))
        c = &f->chains[i];
    if (!c) {
      f->hashing = false;
      pthread_cond_broadcast(&f->idle);
      pthread_cond_wait(&f->work, &f->mu);
      continue;
    }
    f->hashing = true;
    c->busy = true;
    struct chain_part p = c->parts[c->part];
    uint64_t off = c->off;
    uint64_t end = p.durable - off > STEP ? off + STEP : p.durable;
    pthread_mutex_unlock(&f->mu);
    int rc = end > off ? hash_range(f->dir, p.id, off, end, c->md) : 0;
    pthread_mutex_lock(&f->mu);
    c->busy = false;
    if (rc) {
      c->dead = true; /* the states up to here stay true */
    } else {
      f->ahead += end - off;
      c->off = end;
      if (c->off == p.length) {
        EVP_MD_CTX *s = EVP_MD_CTX_new();
        if (s && EVP_MD_CTX_copy_ex(s, c->md) == 1) {
          c->snap[c->part] = s;
        } else {
          EVP_MD_CTX_free(s);
          c->dead = true;
        }
        c->part++;
        c->off = 0;
      }
    }
    pthread_cond_broadcast(&f->idle);
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

int tus_frontier_open(struct tus_frontier **out, const char *dir) {
  *out = NULL;
  struct tus_frontier *f = calloc(1, sizeof *f);
  if (!f)
    return GROVE_ENOMEM;
  snprintf(f->dir, sizeof f->dir, "%s", dir);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->work, NULL);
  pthread_cond_init(&f->idle, NULL);
  if (pthread_create(&f->th, NULL, hasher_main, f)) {
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->work);
    pthread_cond_destroy(&f->idle);
    free(f);
    return GROVE_ENOMEM;
  }
  *out = f;
  return 0;
}

void tus_frontier_close(struct tus_frontier *f) {
  if (!f)
    return;
  pthread_mutex_lock(&f->mu);
  f->stop = true;
  pthread_cond_signal(&f->work);
  pthread_mutex_unlock(&f->mu);
  pthread_join(f->th, NULL);
  for (int i = 0; i < CHAINS; i++)
    chain_clear(&f->chains[i]);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->work);
  pthread_cond_destroy(&f->idle);
  free(f);
}

/* The chain holding id and its index there, or NULL. */
static struct chain *find_part(struct tus_frontier *f, const char *id, int *at) {
  for (int i = 0; i < CHAINS; i++) {
    struct chain *c = &f->chains[i];
    for (int j = 0; c->used && j < c->n; j++)
      if (strcmp(c->parts[j].id, id) == 0) {
        *at = j;
        return c;
      }
  }
  return NULL;
}

void tus_frontier_created(struct tus_frontier *f, const char *owner, const char *id,
                          uint64_t length) {
  if (!f)
    return;
  pthread_mutex_lock(&f->mu);
  /* the owner's latest chain, while it is open and still being sent (a
   * part not complete yet: the parts of one file are created before the
   * last of them is done) */
  struct chain *c = NULL;
  for (int i = 0; i < CHAINS; i++) {
    struct chain *k = &f->chains[i];
    if (k->used && strcmp(k->owner, owner) == 0 && (!c || k->touched > c->touched))
      c = k;
  }
  bool open = c && !c->closed && !c->dead && c->n < CHAIN_PARTS;
  bool sending = false;
  for (int j = 0; open && j < c->n && !sending; j++)
    sending = c->parts[j].durable < c->parts[j].length;
  if (!open || !sending) {
    c = NULL;
    for (int i = 0; i < CHAINS && !c; i++)
      if (!f->chains[i].used)
        c = &f->chains[i];
    for (int i = 0; i < CHAINS && !c; i++) /* full: the least recent not being hashed */
      if (!f->chains[i].busy && (!c || f->chains[i].touched < c->touched))
        c = &f->chains[i];
    if (!c) {
      pthread_mutex_unlock(&f->mu);
      return;
    }
    chain_clear(c);
    if (!(c->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
      chain_clear(c);
      pthread_mutex_unlock(&f->mu);
      return;
    }
    c->used = true;
    snprintf(c->owner, sizeof c->owner, "%s", owner);
  }
  struct chain_part *p = &c->parts[c->n++];
  snprintf(p->id, sizeof p->id, "%s", id);
  p->length = length;
  p->durable = 0;
  c->touched = ++f->seq;
  if (chain_ready(c))
    pthread_cond_signal(&f->work);
  pthread_mutex_unlock(&f->mu);
}

void tus_frontier_durable(struct tus_frontier *f, const char *id, uint64_t durable) {
  if (!f)
    return;
  pthread_mutex_lock(&f->mu);
  int at;
  struct chain *c = find_part(f, id, &at);
  if (c && durable > c->parts[at].durable && durable <= c->parts[at].length) {
    c->parts[at].durable = durable;
    c->touched = ++f->seq;
    if (chain_ready(c))
      pthread_cond_signal(&f->work);
  }
  pthread_mutex_unlock(&f->mu);
}

void tus_frontier_forget(struct tus_frontier *f, const char *id) {
  if (!f)
    return;
  pthread_mutex_lock(&f->mu);
  int at;
  struct chain *c = find_part(f, id, &at);
  /* a part gone before the frontier passed it: the chain stops (the
   * states kept before it stay true, the parts' bytes never changed) */
  if (c && c->part <= at)
    c->dead = true;
  pthread_mutex_unlock(&f->mu);
}

bool tus_frontier_take(struct tus_frontier *f, const char (*ids)[TUS_ID_LEN], int n,
                       EVP_MD_CTX *md, int *part, uint64_t *off) {
  *part = 0;
  *off = 0;
  if (!f || n <= 0)
    return false;
  pthread_mutex_lock(&f->mu);
  struct chain *c = NULL;
  int m = 0; /* how many of ids the chain starts with */
  for (int i = 0; i < CHAINS && !c; i++) {
    struct chain *k = &f->chains[i];
    if (!k->used || k->n == 0 || strcmp(k->parts[0].id, ids[0]) != 0)
      continue;
    c = k;
    while (m < n && m < k->n && strcmp(k->parts[m].id, ids[m]) == 0)
      m++;
  }
  bool got = false;
  if (c) {
    /* nothing more is hashed of it (set first: the hasher would take it
     * again before this thread got the lock back) */
    c->closed = true;
    c->dead = true;
    while (c->busy) /* a step (at most STEP bytes) is being hashed */
      pthread_cond_wait(&f->idle, &f->mu);
    if (c->part >= m && c->snap[m - 1]) {
      got = EVP_MD_CTX_copy_ex(md, c->snap[m - 1]) == 1;
      *part = m;
    } else if (c->part < m && c->md) {
      got = EVP_MD_CTX_copy_ex(md, c->md) == 1;
      *part = c->part;
      *off = c->off;
    }
    if (!got)
      *part = 0, *off = 0;
    c->touched = 0; /* its states stay for a retry, until a chain needs room */
  }
  pthread_mutex_unlock(&f->mu);
  return got;
}

void tus_frontier_wait(struct tus_frontier *f) {
  if (!f)
    return;
  pthread_mutex_lock(&f->mu);
  for (;;) {
    bool ready = false;
    for (int i = 0; i < CHAINS && !ready; i++)
      ready = chain_ready(&f->chains[i]);
    if (!ready && !f->hashing)
      break;
    if (ready && !f->hashing)
      pthread_cond_signal(&f->work);
    pthread_cond_wait(&f->idle, &f->mu);
  }
  pthread_mutex_unlock(&f->mu);
}

uint64_t tus_frontier_ahead(struct tus_frontier *f) {
  if (!f)
    return 0;
  pthread_mutex_lock(&f->mu);
  uint64_t n = f->ahead;
  pthread_mutex_unlock(&f->mu);
  return n;
}
