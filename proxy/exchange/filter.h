// Filters: objects in a chain with named phases (docs/ARCHITECTURE.md, "The
// exchange"). A filter implements the phases it needs; the chain calls each
// phase's filters in the chain's fixed order.
//
//   phase                may answer?  today's filters
//   on_request           yes          https_redirect, cors, rate_limit, source_range,
//                                     body_limit, jwt, redirect (any may wait: kPending)
//   on_upstream_request  no           url_rewrite, jwt (claims), request_headers
//   on_response          no           response_headers
//
// A filter object is built once per snapshot per rule (the chain of a rule,
// exchange/chain.h) and is shared by every worker: its hooks are const and
// thread-safe; per-request state lives in the Exchange. State that must
// outlive a snapshot (limiter buckets, caches) is held by shared_ptr and
// handed to the next snapshot's filter when the rule and its settings stay.
#pragma once

#include <cstdint>
#include <string_view>

#include "proxy/exchange/exchange.h"

namespace gantry::exchange {

// What a request-phase hook decides.
//   kContinue: go on with the next filter.
//   kRespond:  the filter filled ex.reply; the gateway answers it and the
//              exchange ends (later filters and the upstream are skipped).
//   kPending:  the filter must wait (extAuth, a global rate limit service):
//              it left a PendingOp in ex.pending (exchange.h has the whole
//              contract); the driver waits for it without blocking its worker,
//              then calls the filter's on_resume(), and the chain goes on
//              after the filter. Filters that never wait cost nothing for it.
enum class Verdict : uint8_t { kContinue, kRespond, kPending };

enum Phase : uint8_t {
  kOnRequest = 1 << 0,
  kOnUpstreamRequest = 1 << 1,
  kOnResponse = 1 << 2,
};

// The response head as response filters see it.
struct ResponseInfo {
  int status = 0;
  const std::vector<http::Header>* headers = nullptr;  // the upstream's (or the cached) fields
  bool from_cache = false;
};

class Filter {
 public:
  virtual ~Filter() = default;
  // The filter's name in logs and in the chain-order test ("cors", "jwt", ...).
  virtual std::string_view name() const = 0;
  // The phases this filter implements (a mask of Phase): the chain calls no other hook.
  virtual uint8_t phases() const = 0;

  virtual Verdict on_request(Exchange&) const { return Verdict::kContinue; }
  // After this filter's PendingOp finished: its verdict stands for the filter's.
  virtual Verdict on_resume(Exchange&) const { return Verdict::kContinue; }
  virtual void on_upstream_request(Exchange&, UpstreamRequest&) const {}
  // `edits`: what the response's header block will get (remove / set / add).
  virtual void on_response(Exchange&, const ResponseInfo&, HeaderEdits& /*edits*/) const {}
};

}  // namespace gantry::exchange
