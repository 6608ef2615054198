// The proxy's transport for extAuth calls (filters/ext_auth.h): HTTP/1.1
// (plain or TLS) on keep-alive connections pooled per worker thread and per
// service address, or gRPC ext_authz on HTTP/2 connections (h2c, or h2 over
// TLS; net/h2_upstream.h) shared per worker and address, many calls each.
// TLS verifies the service's certificate for its host name (the route's CA,
// else the system store; tls/upstream_tls.h, one context per filter).
//
// Each worker thread attach()es its io_context when it starts and detach()es
// before it ends; a call runs as a coroutine on the calling thread's
// io_context, so it never blocks the worker. A pooled connection the service
// closed meanwhile gets one retry on a fresh one. Names are resolved when a
// connection opens (asio's resolver: getaddrinfo off the worker's thread).
// A thread that did not attach (a unit test) fails its calls at once.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <memory>

#include "proxy/filters/ext_auth.h"

namespace gantry::net {

class ExtAuthClient final : public filters::ExtAuthTransport {
 public:
  static constexpr size_t kMaxIdlePerService = 64;  // pooled connections per worker and address

  static ExtAuthClient& global();
  static void attach(boost::asio::io_context& io);
  static void detach();

  void start(std::shared_ptr<filters::ExtAuthCall> call, std::function<void()> done) override;
  void abort(filters::ExtAuthCall& call) override;
  std::shared_ptr<const void> prepare(const snapshot::ExtAuth& config, std::string& why) override;
};

}  // namespace gantry::net
