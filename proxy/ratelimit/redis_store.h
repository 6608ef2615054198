// The Redis store of global rate limits (filters::RateLimitStore).
//
// One connection per worker thread (opened when the store is created, or
// when a worker starts while it exists; else on the worker's first global
// decision), non-blocking on the worker's io_context, plain TCP or TLS
// (OpenSSL through asio::ssl). hiredis only encodes commands and parses
// replies (resp.h): Debian 12's hiredis 0.14 has no TLS, and its async API
// would need an adapter to Asio anyway.
//  - One script call decides a batch: EVALSHA of the script
//    (global_rate_limit.h) with one (key, n) entry per key, n the decisions
//    pending on it (coalesced: Redis reads and writes the key once and
//    answers how many it admits; global_decision() gives each its numbers,
//    in submission order), loaded with SCRIPT LOAD
//    when the connection opens; a NOSCRIPT reply (the server restarted or
//    flushed its scripts) is retried once as EVAL. The decisions a worker
//    submits while its ready handlers run (the write is posted behind
//    them), or while a write is in flight, go out as one call of up to
//    kMaxBatch keys: Redis pays the script's fixed cost once per batch, and
//    a key's work once per batch. (Waiting for the previous call's reply
//    before sending the next made larger batches but more latency and more
//    budget misses under load; writing a decision at once when nothing was
//    out split batches, 2.2-2.7x the calls per decision at 16 connections,
//    for no measurable latency: neither kept.)
//  - Pipelining: the calls of a worker share its connection, and replies
//    are matched to calls in order. Plain TCP writes go straight to the
//    non-blocking socket (async_write only for what it does not take, and
//    for TLS): no completion handler per write. The read stays armed (Asio
//    1.74 tries each read at once, so after a reply one recvfrom finds
//    nothing; arming it only while calls are out would move that recvfrom
//    to after the write, not save it, and notice a closed connection later).
//  - Answers: done() runs from the reply's read handler, on the worker; the
//    exchange's wait (exchange_driver.cc, await_pending) cancels its timer
//    there and then, not through a posted cancel.
//  - Leases (filters/global_lease.h): a busy key's call also asks for the
//    decisions it will likely need in the next 25 ms, and submit() answers
//    from them without a round trip; settings().lease_percent bounds them.
//  - Budget: a decision not answered within settings().budget is answered
//    kUnavailable at once (one timer per connection, for the oldest waiting
//    request, left running while it wakes early enough: not re-armed per
//    batch); its reply, when it comes, is dropped.
//  - A connection that fails (connect, TLS, AUTH/SELECT, a protocol error, a
//    reply later than kStall) is closed; every waiting decision is answered
//    kUnavailable; it reconnects after a backoff (kBackoffMin doubling to
//    kBackoffMax, jittered) and, meanwhile, decisions are answered
//    kUnavailable without waiting.
// Counters are process-wide atomics (metrics(), exported on /metrics);
// note_fallback / note_refused log at most one line per kLogEvery.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "proxy/base/result.h"
#include "proxy/filters/global_rate_limit.h"
#include "proxy/snapshot/model.h"

namespace boost::asio {
class io_context;
}

namespace gantry::ratelimit {

constexpr std::chrono::milliseconds kBackoffMin{50};
constexpr std::chrono::milliseconds kBackoffMax{1000};
constexpr std::chrono::milliseconds kConnectTimeout{1000};
constexpr std::chrono::milliseconds kStall{1000};
constexpr std::chrono::seconds kLogEvery{5};

struct StoreMetrics {
  std::atomic<uint64_t> decisions{0};     // answered by the store
  std::atomic<uint64_t> unavailable{0};   // answered kUnavailable (down, error, budget)
  std::atomic<uint64_t> timeouts{0};      // of which: the budget passed
  std::atomic<uint64_t> round_trips{0};   // commands whose reply came back (EVALSHA, EVAL, handshake)
  std::atomic<uint64_t> writes{0};        // socket writes (each carries one or more commands)
  std::atomic<uint64_t> noscript{0};      // EVALSHA answered NOSCRIPT (retried as EVAL)
  std::atomic<uint64_t> connects{0};      // connections established
  std::atomic<uint64_t> failures{0};      // connections lost or refused
  std::atomic<int64_t> connected{0};      // workers' connections open now
  std::atomic<uint64_t> fallbacks{0};     // failureMode open: counted locally
  std::atomic<uint64_t> refused{0};       // failureMode closed: 503
  std::atomic<uint64_t> lease_decisions{0};  // answered from a lease (global_lease.h), no round trip
  std::atomic<uint64_t> leased{0};           // places leased by the store
  std::atomic<uint64_t> lease_unused{0};     // of which: ended unused (counted by the store, used by nobody)
};

// The process's counters (every store, every worker).
const StoreMetrics& store_metrics();

class RedisStore final : public filters::RateLimitStore {
 public:
  static Result<std::shared_ptr<RedisStore>> create(const snapshot::RateLimitStore& settings);
  ~RedisStore() override;

  void decide(filters::GlobalCheck check, Done done) override;
  void note_fallback(std::string_view route) override;
  void note_refused(std::string_view route) override;
  const snapshot::RateLimitStore& settings() const override;

  const StoreMetrics& metrics() const;

  struct Shared;  // settings, TLS context, counters: shared with the connections

 private:
  explicit RedisStore(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_;
};

// Binds the calling thread (a worker) to its io_context: global decisions
// made on it use a connection of that io_context. The destructor closes the
// thread's connections. Worker::run() holds one.
class WorkerBinding {
 public:
  explicit WorkerBinding(boost::asio::io_context& io);
  ~WorkerBinding();
  WorkerBinding(const WorkerBinding&) = delete;
  WorkerBinding& operator=(const WorkerBinding&) = delete;
};

}  // namespace gantry::ratelimit
