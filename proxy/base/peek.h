// Whether a socket has nothing to read right now: no bytes, no EOF, no error
// (one non-blocking MSG_PEEK of a byte). Used before waiting for readiness:
// Asio's epoll reactor is edge-triggered and a readiness wait (async_wait) is
// not tried speculatively, so bytes or an EOF that arrived while no operation
// was queued would not wake it; a check in the same handler that starts the
// wait closes that window (a single-threaded io_context cannot consume the
// next edge in between).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>

namespace gantry {

inline bool nothing_to_read(int fd) {
  char b;
  const ssize_t n = ::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace gantry
