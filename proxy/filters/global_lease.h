// Leases of global decisions: for a busy key, a worker asks the store, in
// the same script call as the decisions it is waiting for, to decide a few
// more, and answers the key's next requests from those without a round trip.
//
// - What a lease is. The script decides the call's n + extra decisions of
//   a key at one instant, in order, admitting the first `admitted` (the n
//   real ones come first, so a lease only takes what they leave). The
//   admitted places beyond n are the lease. The store has counted them: no
//   other holder can admit them again, and the fleet never admits more
//   than the limit.
// - What a request answered from a lease is told: the numbers the store
//   would have given its place in the call at the call's instant
//   (global_decision), so RateLimit-Remaining counts down as if the requests
//   had all come at that instant. That instant is at most kTtl old; a token
//   bucket's refill since then is not in the numbers (they err low).
// - What it costs. Places a lease still holds when it ends (kTtl after its
//   call was sent, or at the end of the store's window for the sliding
//   window, whichever comes first) are lost: counted, used by nobody. That
//   happens when a key's demand drops, at most once per lease, and only ever
//   admits fewer than the limit, never more.
// - Sizing. A key is leased half as many places as it had decisions on this
//   worker in the last kTtl (the larger of the current and the previous
//   period: the lease should be used up in about kTtl / 2, well before it
//   ends), at most `cap` (cap():
//   the limit's capacity x percent / 100 / holders, holders being the expected
//   replicas x the workers of this process: with the default 1%, every
//   holder's leases together stay within about 1% of a limit). Below
//   kMinLease, for the cap or for the demand, no lease: one decision per
//   request, as without leases. Keys with a lease or a recent demand are kept
//   up to kMaxKeys per worker; beyond that, new keys go without leases.
// - One call asking for a lease per key at a time (ask() answers 0 while
//   one is out); its reply replaces the key's lease (grant()), or settle()
//   clears the ask when the call was not answered.
//
// Used from one worker thread (each worker's store connection has its own).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>

#include "proxy/filters/global_rate_limit.h"

namespace gantry::filters {

class LeaseBook {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kTtl{50};
  static constexpr uint64_t kMinLease = 4;
  static constexpr size_t kMaxKeys = 4096;

  // The most one holder may lease of `check`'s limit: capacity x percent /
  // 100 / holders (0 when that is below kMinLease: no leases for the limit).
  static uint64_t cap(const GlobalCheck& check, uint32_t percent, uint64_t holders);

  // Counts one decision of check's key (its demand) and, when the key holds
  // a live lease, answers it from the lease: true, and `out` is the decision.
  bool take(const GlobalCheck& check, Clock::time_point now, RateLimitDecision& out);

  // A call is about to carry `real` decisions of check's key: how many more
  // to ask for (0: none). Nonzero marks the key as asking until grant() or
  // settle().
  uint64_t ask(const GlobalCheck& check, uint64_t real, uint64_t cap, Clock::time_point now);

  // The call sent at `sent`, which asked for `extra` more than its `real`
  // decisions of check's key, was answered `s` (valid for real + extra): the
  // admitted places beyond `real` become the key's lease.
  void grant(const GlobalCheck& check, const GlobalKeyState& s, uint64_t real, uint64_t extra,
             Clock::time_point sent, Clock::time_point now);

  // The call that asked for more was not answered (the connection failed,
  // the budget passed, an unexpected reply): the key may ask again.
  void settle(const GlobalCheck& check);

  // Ends every lease (their store is retired, its connection closed): their
  // places count as unused.
  void end_all();

  // Places leased since the last call (for the metrics), and places whose
  // lease ended unused.
  uint64_t drain_leased() { return std::exchange(leased_, 0); }
  uint64_t drain_unused() { return std::exchange(unused_, 0); }

  size_t size() const { return keys_.size(); }

 private:
  struct Entry {
    // The lease: places [next, end) of the call that decided `state`, for the
    // limit of `requests`, `interval_us`, `capacity`, `sliding_window`.
    GlobalKeyState state;
    uint64_t next = 0, end = 0;
    Clock::time_point expires{};
    uint64_t requests = 0, interval_us = 0, capacity = 0;
    bool sliding_window = false;
    bool asking = false;
    // Demand: decisions in the current period (from `period`, kTtl long)
    // and the previous one.
    Clock::time_point period{};
    uint64_t curr = 0, prev = 0;
  };

  static void roll(Entry& e, Clock::time_point now);
  void end_lease(Entry& e);
  // Drops keys without a live lease, an ask out or a recent demand.
  void purge(Clock::time_point now);

  std::unordered_map<std::string, Entry> keys_;
  Clock::time_point last_purge_{};
  uint64_t leased_ = 0, unused_ = 0;
};

}  // namespace gantry::filters
