#include "proxy/ratelimit/redis_store.h"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include "proxy/base/aio.h"
#include <boost/asio/write.hpp>
#include <algorithm>
#include <array>
#include <charconv>
#include <deque>
#include <mutex>
#include <span>
#include <random>
#include <vector>

#include "proxy/filters/global_lease.h"
#include "proxy/ratelimit/resp.h"

namespace gantry::ratelimit {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

StoreMetrics& counters() {
  static StoreMetrics m;
  return m;
}

// "host:port" or "[v6]:port" → host, port (validated by the snapshot).
void split_address(const std::string& a, std::string& host, std::string& port) {
  auto colon = a.rfind(':');
  host = a.substr(0, colon);
  port = a.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
}

// "what: detail", built by appends (GCC 12 at -O3 warns falsely on
// "literal" + std::string&&, PR 105329).
std::string cat(std::string_view what, std::string_view detail) {
  return std::string(what).append(": ").append(detail);
}

}  // namespace

const StoreMetrics& store_metrics() { return counters(); }

struct RedisStore::Shared {
  snapshot::RateLimitStore settings;
  std::string host, port;
  std::unique_ptr<ssl::context> tls;
  std::atomic<bool> retired{false};
  // One log line per kLogEvery per store, with the count of those suppressed.
  std::mutex log_mu;
  Clock::time_point last_log{};
  uint64_t suppressed = 0;

  template <class... A>
  void log(fmt::format_string<A...> f, A&&... a) {
    std::lock_guard lock(log_mu);
    const Clock::time_point now = Clock::now();
    if (last_log != Clock::time_point{} && now - last_log < kLogEvery) {
      ++suppressed;
      return;
    }
    last_log = now;
    std::string line = fmt::format(f, std::forward<A>(a)...);
    if (suppressed > 0) {
      spdlog::warn("ratelimit store {}: {} ({} similar lines suppressed)", settings.address, line, suppressed);
    } else {
      spdlog::warn("ratelimit store {}: {}", settings.address, line);
    }
    suppressed = 0;
  }
};

namespace {

using Done = filters::RateLimitStore::Done;

// One worker's connection to the store (redis_store.h has the behaviour).
// Used from its worker thread only.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(asio::io_context& io, std::shared_ptr<RedisStore::Shared> shared)
      : io_(io), shared_(std::move(shared)), sock_(io), timer_(io), retry_timer_(io) {}

  const RedisStore::Shared* shared() const { return shared_.get(); }

  void submit(filters::GlobalCheck check, Done done, uint64_t lease_cap) {
    if (lease_cap != 0) {
      filters::RateLimitDecision d;
      const bool leased = leases_.take(check, Clock::now(), d);
      note_leases();
      if (leased) {
        counters().lease_decisions.fetch_add(1, std::memory_order_relaxed);
        done(filters::StoreOutcome::kDecided, d);
        return;
      }
    }
    if (state_ == kIdle) connect();
    if (state_ != kReady && state_ != kConnecting) {
      unavailable(done);
      return;
    }
    if (inflight_.size() >= kMaxInflight) {
      shared_->log("{} decisions waiting on one connection: answering unavailable", inflight_.size());
      unavailable(done);
      return;
    }
    Slot s;
    s.kind = Slot::kScript;
    s.sent = Clock::now();
    s.deadline = s.sent + shared_->settings.budget;
    s.done = std::move(done);
    s.check = std::move(check);
    s.lease_cap = lease_cap;
    s.hash_slot = filters::cluster_slot(s.check.key);
    inflight_.push_back(std::move(s));
    ++queued_;
    arm();
    // (Writing a decision at once when nothing was out on the connection
    // saved one reactor poll per request at -c1, no measurable latency, and
    // split batches: 2.2-2.7x the script calls per decision at -c16. Not
    // kept: docs/BENCHMARKS.md.)
    schedule_flush();
  }

  // Opens the connection ahead of the first decision.
  void warm() {
    if (state_ == kIdle) connect();
  }

  // Final: every waiting decision is answered, nothing is reused.
  void close() {
    fail_all();
    leases_.end_all();
    note_leases();
    state_ = kClosed;
    ++gen_;
    timer_.cancel();
    retry_timer_.cancel();
    shutdown_socket();
  }

 private:
  static constexpr size_t kMaxInflight = 16384;

  struct Slot {
    enum Kind : uint8_t { kHandshake, kScript } kind = kScript;
    bool answered = false;
    bool eval = false;
    uint16_t hash_slot = 0;  // the key's Redis Cluster slot: a call's keys share one
    uint32_t batch = 0;  // on the first slot of a command: how many slots its reply answers
    uint32_t run = 0;    // on the first slot of a key's run in a call: how many decisions the run has
    uint32_t nth = 0;    // the slot's place in its run
    uint64_t extra = 0;  // on the first slot of a run: places asked beyond the run, for a lease
    uint64_t lease_cap = 0;  // the most a lease of the key may hold (0: no leases)
    Clock::time_point sent, deadline;
    Done done;
    filters::GlobalCheck check;
  };
  enum State : uint8_t { kIdle, kConnecting, kReady, kBackoff, kClosed };

  void note_leases() {
    if (uint64_t n = leases_.drain_leased()) counters().leased.fetch_add(n, std::memory_order_relaxed);
    if (uint64_t n = leases_.drain_unused()) counters().lease_unused.fetch_add(n, std::memory_order_relaxed);
  }

  static void unavailable(Done& done) {
    counters().unavailable.fetch_add(1, std::memory_order_relaxed);
    done(filters::StoreOutcome::kUnavailable, filters::RateLimitDecision{});
  }

  // Encodes inflight_[first, first + n), runs of decisions on one key (a run
  // starts at a slot whose `run` is its length), as one script call
  // (EVALSHA, or EVAL with the script's text): one (key, n) entry per run.
  void append_batch(size_t first, size_t n, bool eval) {
    char nums[kMaxBatch][4][24];
    char count[24];
    std::array<std::string_view, 3 + 6 * kMaxBatch> args;
    std::array<size_t, kMaxBatch> runs;
    size_t keys = 0;
    for (size_t k = 0; k < n; k += inflight_[first + k].run) {
      if (inflight_[first + k].run == 0 || keys == kMaxBatch) break;  // not from encode_queued: no reply will match
      runs[keys++] = first + k;
    }
    size_t a = 0;
    // The script's numbers in hexadecimal (its tonumber(x, 16) is one strtoul;
    // global_rate_limit.cc); the key count in decimal, for Redis.
    auto num = [](char* buf, uint64_t v, int base = 16) {
      auto r = std::to_chars(buf, buf + 24, v, base);
      return std::string_view(buf, static_cast<size_t>(r.ptr - buf));
    };
    args[a++] = eval ? "EVAL" : "EVALSHA";
    args[a++] = eval ? filters::global_script() : std::string_view(filters::global_script_sha1());
    args[a++] = num(count, keys, 10);
    for (size_t k = 0; k < keys; ++k) args[a++] = inflight_[runs[k]].check.key;
    for (size_t k = 0; k < keys; ++k) {
      const Slot& s = inflight_[runs[k]];
      args[a++] = s.check.sliding_window ? "w" : "t";
      args[a++] = num(nums[k][0], s.check.requests);
      args[a++] = num(nums[k][1], s.check.interval_us);
      args[a++] = num(nums[k][2], s.check.capacity);
      args[a++] = num(nums[k][3], s.run + s.extra);
    }
    for (size_t k = 0; k < n; ++k) {
      inflight_[first + k].eval = eval;
      inflight_[first + k].batch = 0;
    }
    inflight_[first].batch = static_cast<uint32_t>(n);
    append_command(out_, std::span<const std::string_view>(args.data(), a));
  }

  static bool same_limit(const filters::GlobalCheck& a, const filters::GlobalCheck& b) {
    return a.key == b.key && a.sliding_window == b.sliding_window && a.requests == b.requests &&
           a.interval_us == b.interval_us && a.capacity == b.capacity;
  }

  // The decisions submitted since the last write (the last queued_ slots of
  // inflight_) go into out_. Those on one key (and limit) become one run,
  // one (key, n) entry of a call: Redis reads and writes the key once for
  // all of them and the proxy derives each one's numbers in the order they
  // were submitted (global_decision). One script call per run of equal hash
  // slots, at most kMaxBatch keys each (Redis Cluster refuses a call whose
  // keys span slots; a standalone server does not care, and keys of one
  // limit, the hot ones, share a slot). Queued decisions are concurrent:
  // grouping reorders them freely, except within a key.
  void encode_queued() {
    if (queued_ == 0) return;
    const size_t begin = inflight_.size() - queued_;
    const size_t end = inflight_.size();
    if (queued_ > 1) {
      bool sorted = true;
      for (size_t k = begin + 1; k < end && sorted; ++k)
        sorted = inflight_[k - 1].hash_slot == inflight_[k].hash_slot &&
                 inflight_[k - 1].check.key == inflight_[k].check.key;
      if (!sorted)
        std::stable_sort(inflight_.begin() + static_cast<std::ptrdiff_t>(begin), inflight_.end(),
                         [](const Slot& a, const Slot& b) {
                           return a.hash_slot != b.hash_slot ? a.hash_slot < b.hash_slot : a.check.key < b.check.key;
                         });
    }
    const Clock::time_point now = Clock::now();
    size_t i = begin;
    while (i < end) {
      size_t j = i, keys = 0;
      while (j < end && keys < kMaxBatch && inflight_[j].hash_slot == inflight_[i].hash_slot) {
        size_t r = 1;
        while (j + r < end && same_limit(inflight_[j + r].check, inflight_[j].check)) ++r;
        for (size_t t = 0; t < r; ++t) {
          inflight_[j + t].run = t == 0 ? static_cast<uint32_t>(r) : 0;
          inflight_[j + t].nth = static_cast<uint32_t>(t);
        }
        inflight_[j].extra = leases_.ask(inflight_[j].check, r, inflight_[j].lease_cap, now);
        ++keys;
        j += r;
      }
      append_batch(i, j - i, /*eval=*/false);
      i = j;
    }
    queued_ = 0;
  }

  // A write once the handlers that are ready have run: decisions they submit
  // meanwhile join one batch. While a write is in flight, its completion
  // writes what was submitted meanwhile.
  void schedule_flush() {
    if (writing_ || flush_posted_ || state_ != kReady) return;
    flush_posted_ = true;
    asio::post(io_, [self = shared_from_this(), gen = gen_] {
      if (gen != self->gen_) return;
      self->flush_posted_ = false;
      self->flush();
    });
  }

  void shutdown_socket() {
    error_code ec;
    if (tls_) {
      tls_->next_layer().close(ec);
      tls_.reset();
    }
    sock_.close(ec);
  }

  aio::tcp_socket& lowest() { return tls_ ? tls_->next_layer() : sock_; }

  void connect() {
    state_ = kConnecting;
    const uint64_t gen = ++gen_;
    parser_ = std::make_unique<RespParser>();
    out_.clear();
    shutdown_socket();
    if (shared_->tls) {
      tls_ = std::make_unique<ssl::stream<aio::tcp_socket>>(io_, *shared_->tls);
      const std::string& name =
          shared_->settings.tls_server_name.empty() ? shared_->host : shared_->settings.tls_server_name;
      SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str());
      tls_->set_verify_mode(ssl::verify_peer);
      tls_->set_verify_callback(ssl::host_name_verification(name));
    } else {
      sock_ = aio::tcp_socket(io_);
    }
    // The handshake goes first in the pipeline: AUTH, SELECT, SCRIPT LOAD.
    const auto& st = shared_->settings;
    auto handshake = [this](std::initializer_list<std::string_view> args) {
      append_command(out_, args);
      Slot s;
      s.kind = Slot::kHandshake;
      s.sent = Clock::now();
      s.deadline = Clock::time_point::max();
      s.batch = 1;
      inflight_.push_back(std::move(s));
    };
    if (!st.password.empty()) {
      if (!st.username.empty()) handshake({"AUTH", st.username, st.password});
      else handshake({"AUTH", st.password});
    }
    if (st.database != 0) {
      const std::string db = std::to_string(st.database);
      handshake({"SELECT", db});
    }
    handshake({"SCRIPT", "LOAD", filters::global_script()});
    arm();
    auto self = shared_from_this();
    retry_timer_.expires_after(kConnectTimeout);
    retry_timer_.async_wait([self, gen](error_code ec) {
      if (ec || gen != self->gen_ || self->state_ != kConnecting) return;
      self->fail("connect timed out");
    });
    auto resolver = std::make_shared<tcp::resolver>(io_);
    resolver->async_resolve(
        shared_->host, shared_->port, [self, gen, resolver](error_code ec, tcp::resolver::results_type r) {
          if (gen != self->gen_) return;
          if (ec) return self->fail(cat("resolve", ec.message()));
          asio::async_connect(self->lowest(), r, [self, gen](error_code ec, const tcp::endpoint&) {
            if (gen != self->gen_) return;
            if (ec) return self->fail(cat("connect", ec.message()));
            error_code ignore;
            self->lowest().set_option(tcp::no_delay(true), ignore);
            self->lowest().non_blocking(true, ignore);  // flush()'s write_some never waits
            if (!self->tls_) return self->ready();
            self->tls_->async_handshake(ssl::stream_base::client, [self, gen](error_code ec) {
              if (gen != self->gen_) return;
              if (ec) return self->fail(cat("TLS handshake", ec.message()));
              self->ready();
            });
          });
        });
  }

  void ready() {
    state_ = kReady;
    retry_timer_.cancel();
    counters().connects.fetch_add(1, std::memory_order_relaxed);
    counters().connected.fetch_add(1, std::memory_order_relaxed);
    counted_connected_ = true;
    backoff_ = kBackoffMin;  // the backoff restarts from its minimum after a connection that worked
    read();
    flush();
  }

  // Plain TCP writes what the socket takes at once (the common case: no
  // asynchronous write, whose completion would be one more posted handler
  // and reactor poll per batch); the rest, and TLS, go by async_write.
  void flush() {
    if (writing_ || state_ != kReady) return;
    encode_queued();
    if (out_.empty()) return;
    counters().writes.fetch_add(1, std::memory_order_relaxed);
    size_t sent = 0;
    if (!tls_) {
      error_code ec;
      sent = sock_.write_some(asio::buffer(out_), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        sent = 0;
      } else if (ec) {
        fail(cat("write", ec.message()));
        return;
      }
      if (sent == out_.size()) {
        out_.clear();
        return;
      }
    }
    writing_ = true;
    wbuf_.assign(out_, sent);
    out_.clear();
    auto cb = [self = shared_from_this(), gen = gen_](error_code ec, size_t) {
      if (gen != self->gen_) return;
      self->writing_ = false;
      self->wbuf_.clear();
      if (ec) return self->fail(cat("write", ec.message()));
      self->flush();
    };
    if (tls_) asio::async_write(*tls_, asio::buffer(wbuf_), std::move(cb));
    else asio::async_write(sock_, asio::buffer(wbuf_), std::move(cb));
  }

  void read() {
    auto cb = [self = shared_from_this(), gen = gen_](error_code ec, size_t n) {
      if (gen != self->gen_) return;
      if (ec) return self->fail(ec == asio::error::eof ? std::string("closed by the server") : cat("read", ec.message()));
      if (auto st = self->parser_->feed(self->rbuf_.data(), n); !st.ok()) return self->fail(st.error().message);
      StoreReply reply;
      while (true) {
        auto more = self->parser_->next(reply);
        if (!more.ok()) return self->fail(more.error().message);
        if (!*more) break;
        if (!self->on_reply(reply)) return;
        if (gen != self->gen_) return;
      }
      self->read();
    };
    if (tls_) tls_->async_read_some(asio::buffer(rbuf_), std::move(cb));
    else sock_.async_read_some(asio::buffer(rbuf_), std::move(cb));
  }

  // False when the connection failed.
  bool on_reply(const StoreReply& reply) {
    if (inflight_.size() <= queued_ || inflight_.front().batch == 0 ||
        inflight_.front().batch > inflight_.size() - queued_) {
      fail("a reply nobody asked for");
      return false;
    }
    counters().round_trips.fetch_add(1, std::memory_order_relaxed);
    if (inflight_.front().kind == Slot::kHandshake) {
      inflight_.pop_front();
      if (reply.kind == StoreReply::kError || reply.kind == StoreReply::kNoScript) {
        fail(cat("handshake refused", reply.text));
        return false;
      }
      arm();
      return true;
    }
    // The call's slots leave the queue before any of them is answered: an
    // answer may submit the next decision.
    const size_t n = inflight_.front().batch;
    answering_.clear();
    for (size_t k = 0; k < n; ++k) {
      answering_.push_back(std::move(inflight_.front()));
      inflight_.pop_front();
    }
    if (reply.kind == StoreReply::kNoScript) {
      counters().noscript.fetch_add(1, std::memory_order_relaxed);
      if (!answering_.front().eval) {  // once, as EVAL (which also caches it again)
        encode_queued();  // out_ keeps inflight_'s order
        const size_t first = inflight_.size();
        for (Slot& s : answering_) inflight_.push_back(std::move(s));
        append_batch(first, n, /*eval=*/true);
        answering_.clear();
        arm();
        flush();
        return true;
      }
    } else if (reply.kind == StoreReply::kDecision && valid_reply(reply)) {
      size_t key = 0;
      const Clock::time_point now = Clock::now();
      for (size_t k = 0; k < n; ++k) {
        Slot& s = answering_[k];
        if (k > 0 && s.run != 0) ++key;
        // The store counted the lease whether or not the run's decisions are
        // still waiting (the budget may have passed): it is the key's now.
        if (s.extra != 0) leases_.grant(s.check, reply.keys[key], s.run, s.extra, s.sent, now);
        if (s.answered) continue;
        counters().decisions.fetch_add(1, std::memory_order_relaxed);
        s.done(filters::StoreOutcome::kDecided, filters::global_decision(s.check, reply.keys[key], s.nth));
      }
      note_leases();
      answering_.clear();
      arm();
      return true;
    }
    if (reply.kind != StoreReply::kNoScript)
      shared_->log("unexpected reply to the rate limit script: {}",
                   reply.kind == StoreReply::kError ? reply.text : std::string("not a decision per key"));
    for (Slot& s : answering_) {
      if (s.extra != 0) leases_.settle(s.check);
      if (!s.answered) unavailable(s.done);
    }
    answering_.clear();
    arm();
    return true;
  }

  // Whether `reply` answers answering_'s runs: one state per run, each one the
  // script can have answered (the connection's peer is trusted, not blindly).
  bool valid_reply(const StoreReply& reply) const {
    size_t key = 0;
    for (size_t k = 0; k < answering_.size(); k += answering_[k].run) {
      const Slot& s = answering_[k];
      if (s.run == 0 || key == reply.count ||
          !filters::global_state_valid(s.check, reply.keys[key], s.run + s.extra))
        return false;
      ++key;
    }
    return key == reply.count;
  }

  // The timer: wakes for the oldest unanswered decision's budget, or for the
  // oldest reply's stall limit. Left to run while it wakes no later than
  // needed (early when its decision was answered meanwhile: expire() then
  // arms it for the oldest one left), so under load it is set about once per
  // budget period: re-arming it per batch, or cancelling it when nothing
  // waits, cost a timerfd_settime per batch (Asio's epoll reactor sets its
  // timerfd whenever the earliest timer changes).
  void arm() {
    if (state_ == kClosed || state_ == kBackoff) {
      if (armed_) timer_.cancel();
      armed_ = false;
      return;
    }
    if (inflight_.empty()) return;
    Clock::time_point at = inflight_.front().sent + kStall;
    for (const Slot& s : inflight_)
      if (s.kind == Slot::kScript && !s.answered) {
        at = std::min(at, s.deadline);
        break;  // budgets are equal: the first unanswered one is the earliest
      }
    if (armed_ && armed_at_ <= at) return;
    armed_ = true;
    armed_at_ = at;
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this(), gen = gen_, at](error_code ec) {
      if (ec || gen != self->gen_ || self->armed_at_ != at) return;
      self->armed_ = false;
      self->expire();
    });
  }

  void expire() {
    const Clock::time_point now = Clock::now();
    size_t late = 0;
    for (Slot& s : inflight_) {
      if (s.kind != Slot::kScript || s.answered) continue;
      if (s.deadline > now) break;
      s.answered = true;
      ++late;
      counters().timeouts.fetch_add(1, std::memory_order_relaxed);
      unavailable(s.done);
      s.done = nullptr;
    }
    if (late > 0) shared_->log("{} decision(s) not answered within the budget of {} ms", late,
                                shared_->settings.budget.count());
    if (!inflight_.empty() && now - inflight_.front().sent >= kStall) {
      fail(std::string("no reply for ").append(std::to_string(kStall.count())).append(" ms"));
      return;
    }
    arm();
  }

  void fail_all() {
    for (Slot& s : inflight_) {
      if (s.extra != 0) leases_.settle(s.check);
      if (s.kind == Slot::kScript && !s.answered) {
        s.answered = true;
        unavailable(s.done);
      }
    }
    inflight_.clear();
    queued_ = 0;
  }

  void fail(const std::string& why) {
    if (state_ == kClosed || state_ == kBackoff) return;
    shared_->log("{}; reconnecting in {} ms", why, backoff_.count());
    counters().failures.fetch_add(1, std::memory_order_relaxed);
    if (counted_connected_) counters().connected.fetch_sub(1, std::memory_order_relaxed);
    counted_connected_ = false;
    state_ = kBackoff;
    const uint64_t gen = ++gen_;
    writing_ = false;
    flush_posted_ = false;
    out_.clear();
    wbuf_.clear();
    shutdown_socket();
    timer_.cancel();
    armed_ = false;
    fail_all();
    // Jittered: [backoff / 2, backoff]; then doubled up to kBackoffMax.
    thread_local std::mt19937 rng{std::random_device{}()};
    const auto half = backoff_ / 2;
    const auto wait = half + std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(0, half.count())(rng));
    backoff_ = std::min(backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffMax));
    retry_timer_.expires_after(wait);
    retry_timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (ec || gen != self->gen_ || self->state_ != kBackoff) return;
      if (self->shared_->retired.load()) return;
      self->connect();
    });
  }

  asio::io_context& io_;
  std::shared_ptr<RedisStore::Shared> shared_;
  State state_ = kIdle;
  uint64_t gen_ = 0;  // bumped by every (re)connect and failure: late handlers are ignored
  aio::tcp_socket sock_;
  std::unique_ptr<ssl::stream<aio::tcp_socket>> tls_;
  aio::steady_timer timer_, retry_timer_;
  bool armed_ = false;
  Clock::time_point armed_at_{};
  bool writing_ = false;
  bool flush_posted_ = false;
  bool counted_connected_ = false;
  size_t queued_ = 0;  // the last queued_ slots of inflight_ are not encoded yet
  std::vector<Slot> answering_;  // the slots of the reply being answered
  std::string out_, wbuf_;
  std::array<char, 16384> rbuf_{};
  std::unique_ptr<RespParser> parser_;
  std::deque<Slot> inflight_;
  std::chrono::milliseconds backoff_ = kBackoffMin;
  filters::LeaseBook leases_;
};

thread_local asio::io_context* tl_io = nullptr;
thread_local std::vector<std::shared_ptr<Conn>> tl_conns;

// The workers' io_contexts and the live stores: a new store has every worker
// connect at once, a new worker connects to every live store, so the first
// decisions do not pay for the connection (nor fall back for it).
std::mutex g_mu;
std::vector<asio::io_context*> g_ios;
std::atomic<uint64_t> g_workers{0};  // g_ios.size(): the holders of leases in this process
std::vector<std::weak_ptr<RedisStore::Shared>> g_stores;

// On a worker thread: its connection to `sh`'s store (made when missing);
// connections of retired stores are closed on the way.
Conn& conn_for(const std::shared_ptr<RedisStore::Shared>& sh) {
  Conn* conn = nullptr;
  for (size_t i = 0; i < tl_conns.size();) {
    if (tl_conns[i]->shared() == sh.get()) {
      conn = tl_conns[i].get();
      ++i;
    } else if (tl_conns[i]->shared()->retired.load()) {
      tl_conns[i]->close();  // the store of an older snapshot
      tl_conns.erase(tl_conns.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  if (conn == nullptr) {
    tl_conns.push_back(std::make_shared<Conn>(*tl_io, sh));
    conn = tl_conns.back().get();
  }
  return *conn;
}

}  // namespace

WorkerBinding::WorkerBinding(asio::io_context& io) {
  tl_io = &io;
  std::vector<std::shared_ptr<RedisStore::Shared>> live;
  {
    std::lock_guard lock(g_mu);
    g_ios.push_back(&io);
    g_workers.store(g_ios.size(), std::memory_order_relaxed);
    for (const auto& w : g_stores)
      if (auto sh = w.lock(); sh && !sh->retired.load()) live.push_back(std::move(sh));
  }
  for (const auto& sh : live) conn_for(sh).warm();
}

WorkerBinding::~WorkerBinding() {
  {
    std::lock_guard lock(g_mu);
    g_ios.erase(std::remove(g_ios.begin(), g_ios.end(), tl_io), g_ios.end());
    g_workers.store(g_ios.size(), std::memory_order_relaxed);
  }
  for (auto& c : tl_conns) c->close();
  tl_conns.clear();
  tl_io = nullptr;
}

Result<std::shared_ptr<RedisStore>> RedisStore::create(const snapshot::RateLimitStore& settings) {
  auto sh = std::make_shared<Shared>();
  sh->settings = settings;
  split_address(settings.address, sh->host, sh->port);
  if (settings.tls) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (settings.ca_pem.empty()) {
      ctx->set_default_verify_paths(ec);
    } else {
      ctx->add_certificate_authority(asio::buffer(settings.ca_pem), ec);
    }
    if (ec) return Error{cat("rateLimitStore: CA certificates", ec.message())};
    sh->tls = std::move(ctx);
  }
  std::lock_guard lock(g_mu);
  std::erase_if(g_stores, [](const std::weak_ptr<Shared>& w) { return w.expired(); });
  g_stores.push_back(sh);
  for (asio::io_context* io : g_ios)
    asio::post(*io, [sh] {
      if (tl_io != nullptr && !sh->retired.load()) conn_for(sh).warm();
    });
  return std::shared_ptr<RedisStore>(new RedisStore(std::move(sh)));
}

RedisStore::RedisStore(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

RedisStore::~RedisStore() { shared_->retired.store(true); }

const snapshot::RateLimitStore& RedisStore::settings() const { return shared_->settings; }

void RedisStore::decide(filters::GlobalCheck check, Done done) {
  if (tl_io == nullptr) {  // not a worker thread
    counters().unavailable.fetch_add(1, std::memory_order_relaxed);
    done(filters::StoreOutcome::kUnavailable, filters::RateLimitDecision{});
    return;
  }
  const auto& st = shared_->settings;
  const uint64_t holders = uint64_t{std::max<uint32_t>(1, st.expected_replicas)} *
                           std::max<uint64_t>(1, g_workers.load(std::memory_order_relaxed));
  const uint64_t lease_cap = filters::LeaseBook::cap(check, st.lease_percent, holders);
  conn_for(shared_).submit(std::move(check), std::move(done), lease_cap);
}

void RedisStore::note_fallback(std::string_view route) {
  counters().fallbacks.fetch_add(1, std::memory_order_relaxed);
  shared_->log("unavailable: route {} counts on its local fallback limit", route);
}

void RedisStore::note_refused(std::string_view route) {
  counters().refused.fetch_add(1, std::memory_order_relaxed);
  shared_->log("unavailable: route {} answers 503 (failureMode closed)", route);
}

const StoreMetrics& RedisStore::metrics() const { return counters(); }

}  // namespace gantry::ratelimit
