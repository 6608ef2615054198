#include "proxy/filters/global_lease.h"

#include <algorithm>

namespace gantry::filters {

uint64_t LeaseBook::cap(const GlobalCheck& check, uint32_t percent, uint64_t holders) {
  if (percent == 0 || holders == 0) return 0;
  // capacity stays below 2^53 (global_limit_fits): capacity x 100 fits.
  const uint64_t c = check.capacity * std::min<uint32_t>(percent, 100) / 100 / holders;
  return c < kMinLease ? 0 : c;
}

void LeaseBook::roll(Entry& e, Clock::time_point now) {
  if (now - e.period < kTtl) return;
  e.prev = now - e.period < 2 * kTtl ? e.curr : 0;
  e.curr = 0;
  e.period = now;
}

void LeaseBook::end_lease(Entry& e) {
  unused_ += e.end - e.next;
  e.next = e.end = 0;
}

bool LeaseBook::take(const GlobalCheck& check, Clock::time_point now, RateLimitDecision& out) {
  auto it = keys_.find(check.key);
  if (it == keys_.end()) {
    if (keys_.size() >= kMaxKeys) {
      // At most one sweep per period: with more busy keys than kMaxKeys, a
      // sweep per new key would cost a pass over the table per decision.
      if (now - last_purge_ < kTtl) return false;
      last_purge_ = now;
      purge(now);
      if (keys_.size() >= kMaxKeys) return false;
    }
    it = keys_.try_emplace(check.key).first;
    it->second.period = now;
  }
  Entry& e = it->second;
  roll(e, now);
  ++e.curr;
  if (e.next == e.end) return false;
  if (now >= e.expires || e.requests != check.requests || e.interval_us != check.interval_us ||
      e.capacity != check.capacity || e.sliding_window != check.sliding_window) {
    end_lease(e);
    return false;
  }
  out = global_decision(check, e.state, e.next++);
  return true;
}

uint64_t LeaseBook::ask(const GlobalCheck& check, uint64_t real, uint64_t cap, Clock::time_point now) {
  if (cap < kMinLease) return 0;
  auto it = keys_.find(check.key);
  if (it == keys_.end() || it->second.asking) return 0;
  Entry& e = it->second;
  // A live lease is used first: these real decisions missed it only because
  // they were submitted before its call was answered. (Asking now would
  // replace it, its places unused.)
  if (e.next < e.end && now < e.expires) return 0;
  roll(e, now);
  // Half the demand of one period (the real decisions of this call
  // included): at the rate seen, the lease is used up in about kTtl / 2,
  // well before it ends. (Sized for a whole kTtl, 5-10% of each lease's
  // places ended unused: it is used only from its reply on, and the demand
  // of a period is not steady.)
  const uint64_t want = std::max({e.prev, e.curr, real}) / 2;
  if (want < kMinLease) return 0;
  e.asking = true;
  return std::min(cap, want);
}

void LeaseBook::grant(const GlobalCheck& check, const GlobalKeyState& s, uint64_t real, uint64_t extra,
                      Clock::time_point sent, Clock::time_point now) {
  const uint64_t leased = s.admitted > real ? std::min(s.admitted - real, extra) : 0;
  leased_ += leased;
  auto it = keys_.find(check.key);
  if (it == keys_.end()) {  // purged meanwhile (not while asking: cannot happen, but lose nothing silently)
    unused_ += leased;
    return;
  }
  Entry& e = it->second;
  e.asking = false;
  if (leased == 0) return;  // the key is at its limit: the real decisions took what there was
  end_lease(e);             // an older lease's leftovers (exhausted or expired: ask() follows a miss)
  e.state = s;
  e.next = real;
  e.end = real + leased;
  e.requests = check.requests;
  e.interval_us = check.interval_us;
  e.capacity = check.capacity;
  e.sliding_window = check.sliding_window;
  // The store decided after `sent`: a lease counted in one window of the
  // store's ends when that window can have ended, not later.
  e.expires = sent + kTtl;
  if (check.sliding_window) {
    const uint64_t left = check.interval_us > s.elapsed ? check.interval_us - s.elapsed : 0;
    e.expires = std::min(e.expires, sent + std::chrono::microseconds(left));
  }
  if (now >= e.expires) end_lease(e);
}

void LeaseBook::end_all() {
  for (auto& [key, e] : keys_) end_lease(e);
  keys_.clear();
}

void LeaseBook::settle(const GlobalCheck& check) {
  if (auto it = keys_.find(check.key); it != keys_.end()) it->second.asking = false;
}

void LeaseBook::purge(Clock::time_point now) {
  for (auto it = keys_.begin(); it != keys_.end();) {
    Entry& e = it->second;
    const bool live = e.next < e.end && now < e.expires;
    if (!live && !e.asking && now - e.period >= 2 * kTtl) {
      end_lease(e);
      it = keys_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace gantry::filters
