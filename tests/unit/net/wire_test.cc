// try_write_two (net/wire.h) on a real loopback TCP connection: a head alone
// (one buffer, send()) and a head with a body (a gather write) both leave the
// views as they were when everything went out, since callers count the bytes
// they wrote from them; a write the socket cannot take at once leaves the rest.
#include "proxy/net/wire.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <string>

namespace gantry::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

struct Pair {
  asio::io_context io;
  aio::tcp_socket a{io};
  aio::tcp_socket b{io};
  Pair() {
    aio::tcp_acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    a.connect(acc.local_endpoint());
    acc.accept(b);
    a.non_blocking(true);
  }
  std::string read(size_t n) {
    std::string s(n, '\0');
    asio::read(b, asio::buffer(s.data(), n));
    return s;
  }
};

TEST(TryWriteTwo, AllSentLeavesTheViewsAsTheyWere) {
  struct Case {
    const char* name;
    std::string head, body;
  } cases[] = {
      {"head alone", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
      {"head and body", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", "hello"},
      {"body alone", "", "hello"},
  };
  for (const Case& c : cases) {
    Pair p;
    std::string_view a(c.head), b(c.body);
    error_code ec;
    EXPECT_TRUE(try_write_two(p.a, a, b, ec)) << c.name;
    EXPECT_FALSE(ec) << c.name << ": " << ec.message();
    EXPECT_EQ(a, c.head) << c.name;
    EXPECT_EQ(b, c.body) << c.name;
    EXPECT_EQ(p.read(c.head.size() + c.body.size()), c.head + c.body) << c.name;
  }
}

TEST(TryWriteTwo, WhatTheSocketDoesNotTakeStaysInTheViews) {
  for (bool with_body : {false, true}) {
    Pair p;
    // More than the send and receive buffers hold while nobody reads.
    const std::string head(16 << 20, 'h');
    const std::string body = with_body ? std::string(1000, 'b') : std::string();
    std::string_view a(head), b(body);
    error_code ec;
    EXPECT_FALSE(try_write_two(p.a, a, b, ec)) << with_body;
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_GT(a.size(), 0u);
    EXPECT_LT(a.size(), head.size());
    EXPECT_EQ(a, std::string_view(head).substr(head.size() - a.size()));
    EXPECT_EQ(b.size(), body.size());
  }
}

}  // namespace
}  // namespace gantry::net
