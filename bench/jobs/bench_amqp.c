/* bench_amqp.c — the RabbitMQ peer of bench/jobs: durable jobs per second
 * and publish→delivery latency through a durable queue, with persistent
 * messages (delivery mode 2), publisher confirms and manual acks, so a
 * message counts only once RabbitMQ confirmed it (after its fsync) and a
 * consumer acknowledged it. Built by bench/jobs/run.sh on librabbitmq
 * (librabbitmq-dev); not part of grove.
 *
 * Throughput: PRODUCERS connections each publish their share in batches
 * of BATCH messages and wait for the batch's confirms before the next (the
 * pipelining a fast client does); one consumer connection with a prefetch
 * of PREFETCH takes deliveries and acks them (multiple=true every 64, or
 * when no more is buffered). The clock stops at the last delivery.
 * Latency: then 2,000 messages published one at a time (each confirmed
 * before the next); the consumer measures publish → delivery.
 * Prints `<label>_jobs_per_s`, `<label>_start_p50_ms`, `<label>_start_p99_ms`.
 * usage: bench_amqp LABEL PORT JOBS PRODUCERS BATCH PREFETCH */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#define QUEUE "bench_jobs"
#define LATENCY_N 2000

static int port;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die_on(amqp_rpc_reply_t r, const char *what) {
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    fprintf(stderr, "bench_amqp: %s failed (reply type %d)\n", what, r.reply_type);
    exit(1);
  }
}

static amqp_connection_state_t connect_to(void) {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  if (!s || amqp_socket_open(s, "127.0.0.1", port)) {
    fprintf(stderr, "bench_amqp: cannot connect to 127.0.0.1:%d\n", port);
    exit(1);
  }
  die_on(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
  amqp_channel_open(c, 1);
  die_on(amqp_get_rpc_reply(c), "channel.open");
  return c;
}

static void done_with(amqp_connection_state_t c) {
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

/* Publishes n persistent messages (body: the publish time, ns) in
 * batches, each batch's confirms awaited before the next. */
static void publish(amqp_connection_state_t c, int n, int batch) {
  amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 2};
  uint64_t sent = 0, confirmed = 0;
  for (int i = 0; i < n;) {
    int k = n - i < batch ? n - i : batch;
    for (int b = 0; b < k; b++, i++) {
      char body[32];
      int len = snprintf(body, sizeof body, "%llu", (unsigned long long)mono_ns());
      amqp_bytes_t msg = {(size_t)len, body};
      if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(QUEUE), 0, 0, &props,
                             msg)) {
        fprintf(stderr, "bench_amqp: publish failed\n");
        exit(1);
      }
      sent++;
    }
    while (confirmed < sent) {
      amqp_frame_t f;
      if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) {
        fprintf(stderr, "bench_amqp: lost the connection waiting for confirms\n");
        exit(1);
      }
      if (f.frame_type != AMQP_FRAME_METHOD)
        continue;
      if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        fprintf(stderr, "bench_amqp: a publish was nacked\n");
        exit(1);
      }
      if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        amqp_basic_ack_t *a = f.payload.method.decoded;
        confirmed = a->multiple ? a->delivery_tag : confirmed + 1;
      }
    }
    amqp_maybe_release_buffers(c);
  }
}

struct producer {
  int n, batch;
};

static void *produce(void *arg) {
  struct producer *p = arg;
  amqp_connection_state_t c = connect_to();
  amqp_confirm_select(c, 1);
  die_on(amqp_get_rpc_reply(c), "confirm.select");
  publish(c, p->n, p->batch);
  done_with(c);
  return NULL;
}

struct consumer {
  int prefetch;
  int want;           /* deliveries to take */
  uint64_t *lat;      /* publish → delivery, ns, for the last LATENCY_N */
  int lat_from;       /* deliveries before the latency phase */
  uint64_t t_last;    /* when the throughput phase's last delivery came */
  int throughput_n;
};

static void *consume(void *arg) {
  struct consumer *k = arg;
  amqp_connection_state_t c = connect_to();
  amqp_basic_qos(c, 1, 0, (uint16_t)k->prefetch, 0);
  die_on(amqp_get_rpc_reply(c), "basic.qos");
  amqp_basic_consume(c, 1, amqp_cstring_bytes(QUEUE), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  die_on(amqp_get_rpc_reply(c), "basic.consume");
  uint64_t unacked = 0, last_tag = 0;
  for (int got = 0; got < k->want;) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, &env, NULL, 0);
    die_on(r, "consume");
    uint64_t now = mono_ns();
    if (got >= k->lat_from) {
      char body[32] = {0};
      memcpy(body, env.message.body.bytes,
             env.message.body.len < sizeof body - 1 ? env.message.body.len : sizeof body - 1);
      uint64_t sent = strtoull(body, NULL, 10);
      k->lat[got - k->lat_from] = now > sent ? now - sent : 0;
    }
    got++;
    if (got == k->throughput_n)
      k->t_last = now;
    last_tag = env.delivery_tag;
    unacked++;
    amqp_destroy_envelope(&env);
    /* the job (a no-op) is done: ack, many at once when more are waiting */
    if (unacked >= 64 || !amqp_data_in_buffer(c) || got >= k->lat_from) {
      amqp_basic_ack(c, 1, last_tag, 1);
      unacked = 0;
    }
  }
  done_with(c);
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: bench_amqp LABEL PORT JOBS PRODUCERS BATCH PREFETCH\n");
    return 2;
  }
  const char *label = argv[1];
  port = atoi(argv[2]);
  int total = atoi(argv[3]), np = atoi(argv[4]), batch = atoi(argv[5]);
  int prefetch = atoi(argv[6]);
  if (total < 1 || np < 1 || batch < 1 || prefetch < 1 || prefetch > 65535) {
    fprintf(stderr, "bench_amqp: bad arguments\n");
    return 2;
  }
  /* a durable queue, emptied */
  amqp_connection_state_t c = connect_to();
  amqp_queue_declare(c, 1, amqp_cstring_bytes(QUEUE), 0, 1, 0, 0, amqp_empty_table);
  die_on(amqp_get_rpc_reply(c), "queue.declare");
  amqp_queue_purge(c, 1, amqp_cstring_bytes(QUEUE));
  die_on(amqp_get_rpc_reply(c), "queue.purge");

  struct consumer k = {prefetch, total + LATENCY_N, calloc(LATENCY_N, sizeof(uint64_t)), total, 0,
                       total};
  pthread_t ct;
  pthread_create(&ct, NULL, consume, &k);
  struct producer *ps = calloc((size_t)np, sizeof *ps);
  pthread_t *th = calloc((size_t)np, sizeof *th);
  uint64_t t0 = mono_ns();
  for (int i = 0; i < np; i++) {
    ps[i] = (struct producer){total / np + (i < total % np), batch};
    pthread_create(&th[i], NULL, produce, &ps[i]);
  }
  for (int i = 0; i < np; i++)
    pthread_join(th[i], NULL);
  /* latency: one message at a time, each confirmed before the next */
  amqp_confirm_select(c, 1);
  die_on(amqp_get_rpc_reply(c), "confirm.select");
  publish(c, LATENCY_N, 1);
  pthread_join(ct, NULL);
  done_with(c);
  qsort(k.lat, LATENCY_N, sizeof *k.lat, cmp_u64);
  printf("%s_jobs_per_s %.0f jobs/s\n", label, total / ((double)(k.t_last - t0) / 1e9));
  printf("%s_start_p50_ms %.2f ms\n", label, (double)k.lat[LATENCY_N / 2] / 1e6);
  printf("%s_start_p99_ms %.2f ms\n", label, (double)k.lat[LATENCY_N * 99 / 100] / 1e6);
  free(k.lat);
  free(ps);
  free(th);
  return 0;
}
