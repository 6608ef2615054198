// Fire-and-forget copies of requests for rules with filters.requestMirrors:
// one RequestMirror per worker, used only on that worker's thread.
// sample_mirrors() decides which mirrors of a rule copy a request.
//
// The session hands over a complete HTTP/1.1 request (head with the shadow
// Host, then the buffered body) and goes on with the real request at once:
// send() only spawns a coroutine on the worker's io_context. The copy is
// written to the chosen endpoint of the mirror cluster in the cluster's own
// protocol: as it is to an HTTP/1.1 cluster (over TLS for a TLS one), as one stream (h2_request_head(),
// DATA) on an HTTP/2 connection (net/h2_upstream.h; h2c, or h2 over TLS) to
// an HTTP/2 one. The response is read to its end and discarded, so the
// connection can be pooled for the next copy (HTTP/2: shared by copies).
//
// Invariants: at most max_in_flight copies per worker are out at any time (a
// copy over the bound is dropped, never queued); every copy ends within
// `timeout` (connect, write and response together); nothing a mirror backend
// does (refuse, reset, stall, answer garbage) reaches the client; each copy is
// counted once in gantry_mirror_requests_total as sent, failed or dropped
// (the session counts "skipped" itself). Connections are its own, never the
// ones of the worker's upstream pool.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/admin/metrics.h"
#include "proxy/snapshot/model.h"
#include "proxy/tls/upstream_tls.h"

namespace gantry::net {

class RequestMirror {
 public:
  struct Options {
    size_t max_in_flight = 64;                 // per worker
    std::chrono::milliseconds timeout{10000};  // per copy: connect + write + response
    size_t max_idle_per_endpoint = 8;          // pooled mirror connections
    std::chrono::milliseconds h2_keepalive_interval{0};  // HTTP/2 mirror connections (0: none)
    std::chrono::milliseconds h2_keepalive_timeout{10000};
  };

  RequestMirror(boost::asio::io_context& io, admin::WorkerMetrics& metrics, Options opts);
  ~RequestMirror();
  RequestMirror(const RequestMirror&) = delete;
  RequestMirror& operator=(const RequestMirror&) = delete;

  // Where a copy goes: endpoint `ep` of mirror cluster `cluster`, over
  // HTTP/2 when `h2`, over TLS with `tls` (the cluster's context: SNI,
  // verification); its connections pooled under `pool_key` ("ip:port", plus
  // the cluster's pool suffix for TLS).
  struct Target {
    std::string cluster;
    snapshot::Endpoint ep;
    bool h2 = false;
    std::shared_ptr<const tls::UpstreamTlsContext> tls;
    std::string pool_key;
  };
  // Sends `request` to `to` in the background. False when the copy was
  // dropped because max_in_flight copies are already out.
  bool send(Target to, std::string request);
  size_t in_flight() const;
  // The idle sweep (Worker::reap_idle): HTTP/2 mirror connections without a
  // copy in flight for `limit` end with GOAWAY(NO_ERROR).
  void reap_idle(std::chrono::steady_clock::time_point now, std::chrono::milliseconds limit);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// Which of a rule's mirrors copy one request: bit i for mirrors[i] (the
// first 64), each set with probability numerator / denominator on its own
// (always for a share of 1/1, never for 0/n). `random`: one uniformly random
// value per request; each mirror draws its own value from it.
uint64_t sample_mirrors(const std::vector<snapshot::RequestMirror>& mirrors, uint64_t random);

}  // namespace gantry::net
