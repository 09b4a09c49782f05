/* canned_server: answers pgbench by itself, without PostgreSQL behind it.
 *
 * Every login gets AuthenticationOk, the usual ParameterStatus set, BackendKeyData and
 * ReadyForQuery at once; every simple Query gets a one-row answer. One thread, one epoll
 * set. With `pgbench -S -C` (a new connection per transaction, pgbench blocking in each
 * connect) its TPS is the ceiling for any pooler on this machine: a pooler logs a client in
 * at best this fast and must, on top, forward the query to a backend. bench/run.sh runs it as
 * the `canned` target for the sel_connect workloads only: for anything else it is not a
 * proxy at all and its numbers would mean nothing.
 *
 *   canned_server PORT       on 127.0.0.1; runs until SIGTERM
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopback_loop.h"

enum { kInSize = 16 * 1024, kOutSize = 64 * 1024, kMaxAnswer = 512, kMaxEvents = 64 };
enum { kSslRequestCode = 80877103, kGssRequestCode = 80877104 };

struct conn {
  int fd;
  int logged_in;
  size_t len;
  char in[kInSize];
};

static size_t put32(char *p, uint32_t v) {
  v = htonl(v);
  memcpy(p, &v, 4);
  return 4;
}
static size_t put16(char *p, uint16_t v) {
  v = htons(v);
  memcpy(p, &v, 2);
  return 2;
}
static uint32_t get32(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return ntohl(v);
}
static size_t message(char *out, char type, const char *body, size_t n) {
  out[0] = type;
  put32(out + 1, (uint32_t)(n + 4));
  memcpy(out + 5, body, n);
  return n + 5;
}
static size_t parameter(char *out, const char *name, const char *value) {
  char body[128];
  size_t n = strlen(name) + 1, m = strlen(value) + 1;
  memcpy(body, name, n);
  memcpy(body + n, value, m);
  return message(out, 'S', body, n + m);
}

/* What PostgreSQL 15 sends after a trust login, so libpq sets itself up as usual. */
static size_t welcome(char *out) {
  static const char *const params[][2] = {
      {"application_name", "pgbench"},   {"client_encoding", "UTF8"},
      {"DateStyle", "ISO, MDY"},         {"integer_datetimes", "on"},
      {"IntervalStyle", "postgres"},     {"is_superuser", "on"},
      {"server_encoding", "UTF8"},       {"server_version", "15"},
      {"session_authorization", "bench"}, {"standard_conforming_strings", "on"},
      {"TimeZone", "UTC"},
  };
  char body[8];
  size_t n = 0;
  put32(body, 0);
  n += message(out + n, 'R', body, 4); /* AuthenticationOk */
  for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) n += parameter(out + n, params[i][0], params[i][1]);
  put32(body, 4242);
  put32(body + 4, 0x5eed);
  n += message(out + n, 'K', body, 8);
  n += message(out + n, 'Z', "I", 1);
  return n;
}

/* One text row of `ncol` columns; a NULL value is SQL NULL. */
static size_t row_answer(char *out, int ncol, const char *const *values) {
  char body[kMaxAnswer / 2];
  size_t n = 0, k = put16(body, (uint16_t)ncol);
  for (int i = 0; i < ncol; i++) {
    body[k++] = 'c';
    body[k++] = '\0';
    k += put32(body + k, 0);               /* table oid */
    k += put16(body + k, 0);               /* column number */
    k += put32(body + k, 25);              /* text */
    k += put16(body + k, (uint16_t)-1);    /* variable length */
    k += put32(body + k, (uint32_t)-1);    /* no typmod */
    k += put16(body + k, 0);               /* text format */
  }
  n += message(out + n, 'T', body, k);
  k = put16(body, (uint16_t)ncol);
  for (int i = 0; i < ncol; i++) {
    if (values[i] == NULL) {
      k += put32(body + k, (uint32_t)-1);
      continue;
    }
    size_t len = strlen(values[i]);
    k += put32(body + k, (uint32_t)len);
    memcpy(body + k, values[i], len);
    k += len;
  }
  n += message(out + n, 'D', body, k);
  n += message(out + n, 'C', "SELECT 1", 9);
  n += message(out + n, 'Z', "I", 1);
  return n;
}

/* pgbench's set-up queries get what a scale-10 database answers; its transactions get 0. */
static size_t answer(char *out, const char *query, size_t len) {
  static const char *const table_info[] = {"1", NULL, "0"}; /* not partitioned */
  static const char *const scale[] = {"10"}, *const balance[] = {"0"};
  if (memmem(query, len, "partstrat", 9)) return row_answer(out, 3, table_info);
  if (memmem(query, len, "count(*)", 8)) return row_answer(out, 1, scale);
  return row_answer(out, 1, balance);
}

static void drop(int ep, struct conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

/* Answers every whole message in c->in; returns 0 to keep the connection, -1 to close it. */
static int serve(struct conn *c) {
  static char out[kOutSize];
  size_t o = 0, p = 0;
  int keep = 1;
  while (keep) {
    if (!c->logged_in) { /* startup packet: length, code */
      if (c->len - p < 8 || c->len - p < get32(c->in + p)) break;
      const uint32_t len = get32(c->in + p), code = get32(c->in + p + 4);
      p += len;
      if (code == kSslRequestCode || code == kGssRequestCode) {
        out[o++] = 'N'; /* no encryption: libpq goes on in plain text */
        continue;
      }
      c->logged_in = 1;
      o += welcome(out + o);
      continue;
    }
    if (c->len - p < 5 || c->len - p < 1 + (size_t)get32(c->in + p + 1)) break;
    const char type = c->in[p];
    const uint32_t len = get32(c->in + p + 1);
    if (type == 'Q') o += answer(out + o, c->in + p + 5, len - 4);
    if (type == 'X') keep = 0;
    p += 1 + len;
    if (o > kOutSize - kMaxAnswer) break; /* the rest waits for the next read */
  }
  memmove(c->in, c->in + p, c->len - p);
  c->len -= p;
  /* Replies are small and pgbench reads them: a short write means the client is gone. */
  if (o > 0 && write(c->fd, out, o) != (ssize_t)o) return -1;
  return keep ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: canned_server PORT\n");
    return 2;
  }
  handle_stop_signals();
  int lfd = -1;
  const int ep = listen_loopback(atoi(argv[1]), "canned_server: listen", &lfd);
  if (ep < 0) return 1;
  struct epoll_event events[kMaxEvents];
  while (!stopping) {
    int n = epoll_wait(ep, events, kMaxEvents, 500);
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (c == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          set_nodelay(fd);
          struct conn *fresh = calloc(1, sizeof *fresh);
          fresh->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = fresh};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      ssize_t r = read(c->fd, c->in + c->len, sizeof c->in - c->len);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        drop(ep, c);
        continue;
      }
      c->len += (size_t)r;
      /* a full buffer holding no whole message is one larger than any pgbench sends */
      if (serve(c) != 0 || c->len == sizeof c->in) drop(ep, c);
    }
  }
  return 0;
}
