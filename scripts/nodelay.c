/* LD_PRELOAD shim for scripts/bench.sh: sets TCP_NODELAY on every socket a server
 * accepts. s3s-fs 0.14 does not set it, so a GET's body waits behind its headers for the
 * client's delayed ACK (~40 ms, Nagle's algorithm); running the small-object set once
 * with and once without this shim shows how much of the time that stall is. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static int nodelay(int fd) {
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

int accept4(int s, struct sockaddr *a, socklen_t *l, int flags) {
  static int (*real)(int, struct sockaddr *, socklen_t *, int);
  if (!real) real = dlsym(RTLD_NEXT, "accept4");
  return nodelay(real(s, a, l, flags));
}

int accept(int s, struct sockaddr *a, socklen_t *l) {
  static int (*real)(int, struct sockaddr *, socklen_t *);
  if (!real) real = dlsym(RTLD_NEXT, "accept");
  return nodelay(real(s, a, l));
}
