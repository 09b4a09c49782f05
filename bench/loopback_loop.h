/* What bench/null_proxy.c and bench/canned_server.c share: a loopback listener in an epoll
 * set, TCP_NODELAY sockets, and a stop flag SIGTERM/SIGINT set. Header-only, so each tool
 * still builds with one `cc file.c`. */
#ifndef PGPIVOT_BENCH_LOOPBACK_LOOP_H
#define PGPIVOT_BENCH_LOOPBACK_LOOP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>

static volatile sig_atomic_t stopping;
static inline void on_term(int sig) { (void)sig; stopping = 1; }

/* SIGTERM and SIGINT end the loop; a peer gone mid-write is an error return, not a signal. */
static inline void handle_stop_signals(void) {
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
}

static inline struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static inline void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A non-blocking TCP socket with TCP_NODELAY, as a proxy opens towards its server. */
static inline int tcp_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) set_nodelay(fd);
  return fd;
}

/* Listens on 127.0.0.1:port and returns an epoll set holding the listener, whose events
 * carry data.ptr NULL; *listen_fd gets the listener. -1 (after perror) when it cannot. */
static inline int listen_loopback(int port, const char *who, int *listen_fd) {
  const int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = loopback(port);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 1024) != 0) {
    perror(who);
    return -1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  *listen_fd = lfd;
  return ep;
}

#endif
