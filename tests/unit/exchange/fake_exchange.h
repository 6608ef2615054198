// A request for filter tests: owns the strings an Exchange's RequestInfo
// points to, and runs a rule's chain the way the exchange driver does.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proxy/exchange/chain.h"
#include "proxy/exchange/exchange.h"

namespace gantry::exchange::testing {

struct FakeRequest {
  std::string method = "GET";
  std::string host = "shop.example.com";
  std::string path = "/";
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  http::BodyKind body = http::BodyKind::kNone;
  uint64_t content_length = 0;
  std::string client_ip = "10.0.0.7";
  size_t matched_prefix = 0;
  bool tls = false;
  uint16_t listener_port = 0;
};

// What a chain did to one request.
struct Outcome {
  Verdict verdict = Verdict::kContinue;
  LocalReply reply;
  OwnedHeaders response_headers;   // ex.response_headers, then the response edits' set + add
  std::vector<std::string> response_removed;
  std::optional<uint64_t> body_limit;
  std::string upstream_path, upstream_host;
  OwnedHeaders upstream_set, upstream_add;
  std::vector<std::string> upstream_removed;
  std::optional<std::string> upstream_query;  // set when a filter changed the query
  std::string consumer;                       // ex.consumer after the request phase
};

class FakeExchange {
 public:
  explicit FakeExchange(FakeRequest r) : r_(std::move(r)) {
    for (const auto& [n, v] : r_.headers) fields_.push_back({n, v});
  }
  Exchange& get(SteadyTime now = SteadyTime(std::chrono::seconds(1000))) {
    ex_.reset();
    ex_.req.method = r_.method;
    ex_.req.host = r_.host;
    ex_.req.host_header = r_.host;
    ex_.req.path = r_.path;
    ex_.req.query = r_.query;
    ex_.req.headers = &fields_;
    ex_.req.body = r_.body;
    ex_.req.content_length = r_.content_length;
    ex_.req.client_ip = r_.client_ip;
    ex_.req.proto = "HTTP/1.1";
    ex_.req.tls = r_.tls;
    ex_.req.listener_port = r_.listener_port;
    ex_.matched_prefix = r_.matched_prefix;
    ex_.started = now;
    ex_.set_wall_now(WallTime(std::chrono::seconds(1700000000)));
    return ex_;
  }

  // Request phase; then, when it continued, the upstream-request and
  // response phases as the driver runs them.
  Outcome run(const FilterChain& chain, SteadyTime now = SteadyTime(std::chrono::seconds(1000))) {
    Exchange& ex = get(now);
    Outcome o;
    o.verdict = chain.run_request(ex);
    o.reply = ex.reply;
    o.body_limit = ex.body_limit;
    o.consumer = std::string(ex.consumer);
    if (o.verdict != Verdict::kContinue) return o;
    UpstreamRequest up;
    up.path = std::string(ex.req.path);
    up.host = ex.req.host_header;
    chain.run_upstream_request(ex, up);
    o.upstream_path = up.path;
    o.upstream_host = std::string(up.host);
    for (auto n : up.headers.remove) o.upstream_removed.emplace_back(n);
    for (const auto& h : up.headers.set) o.upstream_set.emplace_back(h.name, h.value);
    for (const auto& h : up.headers.add) o.upstream_add.emplace_back(h.name, h.value);
    o.upstream_query = up.query;
    HeaderEdits edits;
    std::vector<http::Header> resp_fields;
    ResponseInfo resp{200, &resp_fields, false};
    chain.run_response(ex, resp, edits);
    o.response_headers = ex.response_headers;
    for (auto n : edits.remove) o.response_removed.emplace_back(n);
    for (const auto& h : edits.set) o.response_headers.emplace_back(h.name, h.value);
    for (const auto& h : edits.add) o.response_headers.emplace_back(h.name, h.value);
    return o;
  }

 private:
  FakeRequest r_;
  std::vector<http::Header> fields_;
  Exchange ex_;
};

}  // namespace gantry::exchange::testing
