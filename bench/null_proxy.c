/* null_proxy: the cheapest proxy that can stand between pgbench and PostgreSQL.
 *
 * One thread, one epoll set, one upstream connection per client, bytes copied as they come:
 * no protocol parsing, no pooling, no login handling. What it costs per transaction is the
 * kernel's price for one more TCP hop (two reads, two writes and the wake-ups they cause),
 * which any user-space proxy pays. bench/run.sh runs it as the "floor" target so the
 * ratios of pgpivot and PgBouncer can be read against it.
 *
 *   null_proxy LISTEN_PORT UPSTREAM_PORT      both on 127.0.0.1; runs until SIGTERM
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopback_loop.h"

enum { kBufSize = 64 * 1024, kMaxEvents = 64 };

/* One direction of a client's pair: bytes read from fd wait in buf until the peer takes them. */
struct end {
  int fd;
  struct end *peer;
  char *buf; /* bytes read from this end, not yet written to the peer */
  size_t len, off;
};

static void close_pair(int ep, struct end *e) {
  struct end *p = e->peer;
  epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, NULL);
  epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
  close(e->fd);
  close(p->fd);
  free(e->buf);
  free(p->buf);
  free(e);
  free(p);
}

/* Interest of one end: read while nothing of ours waits for the peer (backpressure), and
 * want writability while the peer's bytes wait for us. */
static void rearm(int ep, struct end *e) {
  struct epoll_event ev = {.data.ptr = e};
  if (e->len == e->off) ev.events |= EPOLLIN;
  if (e->peer->len != e->peer->off) ev.events |= EPOLLOUT;
  epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev);
}

/* Write what e holds to its peer; returns -1 when the pair is dead. */
static int flush_to_peer(int ep, struct end *e) {
  while (e->off < e->len) {
    ssize_t n = write(e->peer->fd, e->buf + e->off, e->len - e->off);
    if (n < 0 && errno == EAGAIN) {
      rearm(ep, e);
      rearm(ep, e->peer);
      return 0;
    }
    if (n <= 0) return -1;
    e->off += (size_t)n;
  }
  e->len = e->off = 0;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: null_proxy LISTEN_PORT UPSTREAM_PORT\n");
    return 2;
  }
  const int upstream_port = atoi(argv[2]);
  handle_stop_signals();
  int lfd = -1;
  const int ep = listen_loopback(atoi(argv[1]), "null_proxy: listen", &lfd);
  if (ep < 0) return 1;

  struct epoll_event events[kMaxEvents];
  while (!stopping) {
    int n = epoll_wait(ep, events, kMaxEvents, 500);
    for (int i = 0; i < n; i++) {
      struct end *e = events[i].data.ptr;
      if (e == (void *)-1) continue; /* its pair was closed earlier in this batch */
      if (e == NULL) { /* new client: pair it with a fresh upstream connection */
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) continue;
        set_nodelay(cfd);
        int sfd = tcp_socket();
        struct sockaddr_in ua = loopback(upstream_port);
        if (connect(sfd, (struct sockaddr *)&ua, sizeof ua) != 0 && errno != EINPROGRESS) {
          close(cfd);
          close(sfd);
          continue;
        }
        struct end *c = calloc(1, sizeof *c), *s = calloc(1, sizeof *s);
        c->fd = cfd, s->fd = sfd, c->peer = s, s->peer = c;
        c->buf = malloc(kBufSize), s->buf = malloc(kBufSize);
        /* The client's startup packet waits in its socket until the upstream connects:
         * an upstream end that is writable with nothing to write is harmless. */
        struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
        struct epoll_event sev = {.events = EPOLLIN, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev);
        continue;
      }
      int dead = 0;
      if (events[i].events & EPOLLOUT) { /* the peer's bytes can go out now */
        dead = flush_to_peer(ep, e->peer) != 0;
        if (!dead) {
          rearm(ep, e);
          rearm(ep, e->peer);
        }
      }
      if (!dead && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        if (e->len == e->off) {
          ssize_t r = read(e->fd, e->buf, kBufSize);
          if (r > 0) {
            e->len = (size_t)r, e->off = 0;
            dead = flush_to_peer(ep, e) != 0;
          } else if (r == 0 || errno != EAGAIN) {
            dead = 1;
          }
        }
      }
      if (dead) {
        /* the other end may have an event later in this batch: drop it */
        for (int j = i + 1; j < n; j++)
          if (events[j].data.ptr == e->peer || events[j].data.ptr == e) events[j].data.ptr = (void *)-1;
        close_pair(ep, e);
      }
    }
  }
  return 0;
}
