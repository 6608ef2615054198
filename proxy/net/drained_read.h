// Reads that tell Asio's reactor when a socket is drained, so that the next
// read waits for readiness instead of trying a recv that finds nothing.
//
// Asio 1.74's epoll reactor tries every read first ("speculatively") and
// waits for an edge only after that recv fails with EAGAIN; it stops trying
// only after an EOF. A proxy's reads mostly come after its own write (the
// upstream's answer after the request, the client's next request after the
// answer), so nearly every one of them cost a recv that found nothing:
// 1.1 per h2 request and 2 per HTTP/1.1 request, where nginx and HAProxy
// pay none (docs/BENCHMARKS.md, "Reads that know the socket is drained").
//
// A read into a DrainedReadBuffer is a recvmsg() that also asks the kernel,
// with TCP_INQ (Linux 4.18), how many bytes are left after it. Nothing left
// means the socket is drained: the op reports "done and exhausted", which
// makes the reactor skip the speculative try of the socket's next read until
// epoll reports the socket readable again. The decision is made inside the
// recv's own operation, so an edge that comes between the recv and its
// handler is not lost. A short read alone would not do: a FIN consumed with
// the last bytes leaves nothing to read and no edge to come, and TCP_INQ
// reports 1 after a FIN for exactly this reason (the next read then finds the
// EOF at once).
//
// Without TCP_INQ on the socket (enable_drained_reads() not called, or
// refused), or with another Boost than the one this was written against, a
// DrainedReadBuffer read is a plain read. TLS streams take it as any buffer
// sequence (their engine reads the socket with its own buffers).
#pragma once

#include "proxy/base/aio.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>
#include <cerrno>
#include <cstring>

namespace gantry::net {

// One buffer, as a buffer sequence of its own type (see above).
struct DrainedReadBuffer {
  using value_type = boost::asio::mutable_buffer;
  using const_iterator = const boost::asio::mutable_buffer*;
  boost::asio::mutable_buffer buf;
  const_iterator begin() const { return &buf; }
  const_iterator end() const { return &buf + 1; }
};

inline DrainedReadBuffer drained_read_buffer(void* p, size_t n) { return {boost::asio::mutable_buffer(p, n)}; }

// Asks the kernel to report the bytes left after each read (TCP_INQ). Once
// per plain TCP socket, after accept or connect.
inline void enable_drained_reads(::gantry::aio::tcp_socket& s) {
  int one = 1;
  (void)::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_INQ, &one, sizeof one);
}

enum class RecvResult { kWouldBlock, kDone, kDrained };

// One non-blocking recvmsg() into `b`: kWouldBlock (nothing to read, try
// again on readiness), kDone, or kDrained (done, and the kernel reported
// nothing left; an EOF counts as drained, as Asio counts it). Errors and EOF
// come back in `ec` with kDone / kDrained.
inline RecvResult recv_reporting_drained(int fd, boost::asio::mutable_buffer b, int flags,
                                         boost::system::error_code& ec, size_t& n) {
  iovec iov{b.data(), b.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  for (;;) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    // The system call itself, not libc's recvmsg(): that wrapper is a
    // cancellation point, and in a threaded process it switches the thread's
    // cancellation type around every call with two atomic exchanges (0.7% of
    // the proxy's CPU under h2 load). The proxy never cancels threads.
    const ssize_t r = ::syscall(SYS_recvmsg, fd, &msg, flags);
    if (r > 0) {
      ec = {};
      n = static_cast<size_t>(r);
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) {
          int left;
          std::memcpy(&left, CMSG_DATA(c), sizeof left);
          return left == 0 ? RecvResult::kDrained : RecvResult::kDone;
        }
      }
      return RecvResult::kDone;  // no TCP_INQ on this socket: as a plain read
    }
    if (r == 0) {
      ec = boost::asio::error::eof;
      n = 0;
      return RecvResult::kDrained;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return RecvResult::kWouldBlock;
    ec = boost::system::error_code(errno, boost::system::system_category());
    n = 0;
    return RecvResult::kDone;
  }
}

}  // namespace gantry::net

// Asio's receive operation for this buffer type: the same as its generic one
// (boost/asio/detail/reactive_socket_recv_op.hpp, 1.74) but for the recv,
// which reports "exhausted" when the kernel says the socket is drained. Tied
// to 1.74's reactor: another Boost gets the generic operation (plain reads).
#if BOOST_VERSION == 107400 && !defined(BOOST_ASIO_HAS_IO_URING)
#include <boost/asio/detail/reactive_socket_recv_op.hpp>

namespace boost::asio::detail {

template <>
class reactive_socket_recv_op_base<gantry::net::DrainedReadBuffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const boost::system::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state, const gantry::net::DrainedReadBuffer& buffers,
                               socket_base::message_flags flags, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        buffer_(buffers.buf),
        flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    if ((o->state_ & socket_ops::stream_oriented) == 0) {  // not TCP: Asio's own single-buffer read
      return socket_ops::non_blocking_recv1(o->socket_, o->buffer_.data(), o->buffer_.size(), o->flags_, false,
                                            o->ec_, o->bytes_transferred_)
                 ? done
                 : not_done;
    }
    switch (gantry::net::recv_reporting_drained(o->socket_, o->buffer_, o->flags_, o->ec_, o->bytes_transferred_)) {
      case gantry::net::RecvResult::kWouldBlock:
        return not_done;
      case gantry::net::RecvResult::kDone:
        return done;
      case gantry::net::RecvResult::kDrained:
        return done_and_exhausted;
    }
    return done;
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  boost::asio::mutable_buffer buffer_;
  socket_base::message_flags flags_;
};

}  // namespace boost::asio::detail
#endif
