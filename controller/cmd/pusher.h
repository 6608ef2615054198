// The push client: keeps the proxy's snapshot equal to the desired one.
//
// Connects to the proxy's unix control socket, waits for HELLO, sends a FULL
// snapshot, then one frame at a time, each answered by ACK or NACK before the
// next is sent. Driven by the caller's poll loop (fd(), events(), deadline(),
// on_io(), tick()); never blocks.
//
// Invariants:
//  - versions strictly increase across pushes and across controller restarts
//    (they start at unix time in ms x 1000 and never go below a HELLO's);
//  - a change that touches only endpoints relative to the last ACKed snapshot
//    goes out as an ENDPOINTS delta at once; any other change goes as a FULL at
//    once after a quiet spell, and FULLs are at least the hold-off (20 ms)
//    apart so a burst's changes coalesce; a NACKed delta is followed by a FULL;
//  - a snapshot the proxy NACKed is not sent again on the same connection;
//  - when the proxy is absent or restarts, reconnects with jittered backoff
//    (100 ms doubling to 5 s) and re-sends the current snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "proxy/snapshot/frame.h"
#include "proxy/snapshot/model.h"

namespace gantry::controller {

class Pusher {
 public:
  using Clock = std::chrono::steady_clock;

  struct Stats {
    uint64_t pushes = 0;  // frames sent
    uint64_t acks = 0;
    uint64_t nacks = 0;
    uint64_t acked_version = 0;
    bool connected = false;
  };

  Pusher(std::string socket_path, uint64_t first_version,
         std::chrono::milliseconds hold_off = std::chrono::milliseconds(20));
  ~Pusher();
  Pusher(const Pusher&) = delete;
  Pusher& operator=(const Pusher&) = delete;

  // The snapshot the proxy should serve (its version is ignored).
  void set_desired(const snapshot::Snapshot& s, Clock::time_point now);

  int fd() const { return fd_; }  // -1 while disconnected
  short events() const;           // poll events to wait for on fd()
  std::optional<Clock::time_point> deadline() const;
  void on_io(short revents, Clock::time_point now);
  void tick(Clock::time_point now);  // runs due timers and sends what is due

  // The last snapshot the proxy ACKed (with its version), if any.
  const snapshot::Snapshot* applied() const { return applied_ ? &*applied_ : nullptr; }
  // The errors of the last NACK of the desired snapshot; empty if none.
  const std::string& rejection() const { return rejection_; }
  const Stats& stats() const { return stats_; }
  // Increases whenever applied() or rejection() changes.
  uint64_t generation() const { return generation_; }

 private:
  enum class State { kDisconnected, kAwaitHello, kReady, kInFlight };

  void connect(Clock::time_point now);
  void disconnect(const std::string& why, Clock::time_point now);
  void send_due(Clock::time_point now);
  void send(snapshot::FrameType type, const std::string& payload, Clock::time_point now);
  void flush(Clock::time_point now);
  void handle(const snapshot::Frame& f, Clock::time_point now);

  std::string path_;
  std::chrono::milliseconds hold_off_;
  int fd_ = -1;
  State state_ = State::kDisconnected;
  std::string out_;  // bytes not yet written
  snapshot::FrameDecoder decoder_;

  uint64_t next_version_;
  snapshot::Snapshot desired_;
  std::string desired_key_;  // encoding with version 0: equal keys, equal snapshots
  bool have_desired_ = false;
  std::optional<Clock::time_point> push_at_;
  std::optional<Clock::time_point> last_full_at_;  // when the last FULL was sent

  std::optional<snapshot::Snapshot> applied_;
  std::string applied_key_;
  std::string nacked_key_;
  std::string rejection_;
  bool force_full_ = true;

  // The frame in flight.
  snapshot::Snapshot inflight_;
  std::string inflight_key_;
  bool inflight_delta_ = false;
  Clock::time_point inflight_since_;

  Clock::time_point reconnect_at_{};
  std::chrono::milliseconds backoff_{100};
  bool quiet_failures_ = false;  // log repeated connect failures at debug level
  std::mt19937_64 rng_;
  Stats stats_;
  uint64_t generation_ = 0;
};

}  // namespace gantry::controller
