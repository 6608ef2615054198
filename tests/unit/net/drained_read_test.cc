// Reads that report a drained socket (net/drained_read.h), on real loopback
// TCP connections: what one recvmsg() reports with TCP_INQ (bytes left, none
// left, a FIN read with the last bytes, nothing to read, no TCP_INQ), and
// Asio reads into a DrainedReadBuffer: a read after a drained one still gets
// the next bytes, and a FIN that came with the last bytes is still seen.
#include "proxy/net/drained_read.h"
#include "proxy/base/aio.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

namespace gantry::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// A connected pair on loopback: `a` is the peer that writes, `b` reads.
struct Pair {
  asio::io_context io;
  aio::tcp_socket a{io};
  aio::tcp_socket b{io};
  explicit Pair(bool inq = true) {
    aio::tcp_acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    a.connect(acc.local_endpoint());
    acc.accept(b);
    b.non_blocking(true);
    if (inq) enable_drained_reads(b);
  }
  void send(const std::string& s) { asio::write(a, asio::buffer(s)); }
  // Until the kernel holds `n` unread bytes on `b` (loopback delivers at
  // once, but not inside write()'s return).
  void settle(size_t n) {
    for (int i = 0; i < 1000; ++i) {
      int pending = 0;
      if (::ioctl(b.native_handle(), FIONREAD, &pending) == 0 && static_cast<size_t>(pending) >= n) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  // Until `b` has seen the peer's FIN (POLLRDHUP).
  void settle_fin() {
    pollfd f{b.native_handle(), POLLRDHUP, 0};
    ::poll(&f, 1, 5000);
  }
};

struct Read {
  RecvResult result;
  size_t n = 0;
  error_code ec;
  std::string bytes;
};

Read read_once(Pair& p, size_t room) {
  Read r;
  std::string buf(room, '\0');
  r.result = recv_reporting_drained(p.b.native_handle(), asio::buffer(buf), 0, r.ec, r.n);
  r.bytes = buf.substr(0, r.n);
  return r;
}

TEST(RecvReportingDrained, Cases) {
  struct Case {
    const char* name;
    bool inq;
    std::string sent;
    bool fin;  // the peer shuts its side down after sending
    size_t room;
    RecvResult want;
    std::string want_bytes;
    bool want_eof;
  };
  const Case cases[] = {
      {"all read: drained", true, "hello", false, 64, RecvResult::kDrained, "hello", false},
      {"bytes left: not drained", true, "hello world", false, 5, RecvResult::kDone, "hello", false},
      {"nothing to read", true, "", false, 64, RecvResult::kWouldBlock, "", false},
      {"the last bytes and a FIN: not drained (the EOF is still to read)", true, "bye", true, 64, RecvResult::kDone,
       "bye", false},
      {"only a FIN: EOF, drained", true, "", true, 64, RecvResult::kDrained, "", true},
      {"no TCP_INQ on the socket: a plain read", false, "hello", false, 64, RecvResult::kDone, "hello", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Pair p(c.inq);
    if (!c.sent.empty()) p.send(c.sent);
    if (c.fin) p.a.shutdown(aio::tcp_socket::shutdown_send);
    p.settle(c.sent.size());
    if (c.fin) p.settle_fin();
    Read r = read_once(p, c.room);
    EXPECT_EQ(r.result, c.want);
    EXPECT_EQ(r.bytes, c.want_bytes);
    EXPECT_EQ(r.ec == asio::error::eof, c.want_eof) << r.ec.message();
  }
}

TEST(RecvReportingDrained, FinAfterLastBytesThenEof) {
  Pair p;
  p.send("bye");
  p.a.shutdown(aio::tcp_socket::shutdown_send);
  p.settle(3);
  p.settle_fin();
  Read first = read_once(p, 64);
  EXPECT_EQ(first.result, RecvResult::kDone);
  EXPECT_EQ(first.bytes, "bye");
  Read second = read_once(p, 64);
  EXPECT_EQ(second.result, RecvResult::kDrained);
  EXPECT_EQ(second.ec, asio::error::eof);
}

// One async_read_some into a DrainedReadBuffer, run until it completes; nullopt
// if it has not within `limit` (it waits for an edge that will not come).
std::optional<std::string> async_read(Pair& p, std::chrono::milliseconds limit, error_code& ec) {
  std::string buf(64, '\0');
  std::optional<std::string> got;
  p.b.async_read_some(drained_read_buffer(buf.data(), buf.size()), [&](error_code e, size_t n) {
    ec = e;
    got = buf.substr(0, n);
  });
  p.io.restart();
  p.io.run_for(limit);
  if (!got) {  // leave nothing pending on the socket
    p.b.cancel();
    p.io.restart();
    p.io.run();
  }
  return got;
}

TEST(DrainedReadBuffer, ReadAfterDrainedReadGetsTheNextBytes) {
  Pair p;
  for (const char* msg : {"one", "two", "three"}) {
    p.send(msg);
    error_code ec;
    auto got = async_read(p, std::chrono::seconds(5), ec);
    ASSERT_TRUE(got.has_value()) << "the read after a drained read never completed";
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(*got, msg);
  }
  // Bytes that arrive while the next read is already waiting.
  std::string buf(64, '\0');
  std::optional<std::string> got;
  p.b.async_read_some(drained_read_buffer(buf.data(), buf.size()), [&](error_code e, size_t n) {
    EXPECT_FALSE(e);
    got = buf.substr(0, n);
  });
  p.io.restart();
  p.io.poll();
  EXPECT_FALSE(got.has_value());
  p.send("four");
  p.io.run_for(std::chrono::seconds(5));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, "four");
}

TEST(DrainedReadBuffer, FinWithTheLastBytesIsSeen) {
  Pair p;
  p.send("first");
  error_code ec;
  ASSERT_EQ(async_read(p, std::chrono::seconds(5), ec).value_or("(none)"), "first");
  // The last bytes and the FIN come together, before the next read starts.
  p.send("last");
  p.a.shutdown(aio::tcp_socket::shutdown_send);
  p.settle(4);
  p.settle_fin();
  ASSERT_EQ(async_read(p, std::chrono::seconds(5), ec).value_or("(none)"), "last");
  auto eof = async_read(p, std::chrono::seconds(5), ec);
  ASSERT_TRUE(eof.has_value()) << "the EOF after the last bytes was never seen";
  EXPECT_EQ(ec, asio::error::eof);
}

}  // namespace
}  // namespace gantry::net
