// The HTTP/2 connection driver: see connection.h.
#include "proxy/http2/connection.h"

#include "proxy/base/block_pool.h"
#include "proxy/base/peek.h"
#include "proxy/net/drained_read.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include "proxy/base/aio.h"
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <type_traits>
#include <unordered_map>
#include <utility>

namespace gantry::http2 {

namespace asio = boost::asio;
using boost::system::error_code;

// The connection's state shared by its coroutines and its streams.
class Core : public Handler, public Drainable, public std::enable_shared_from_this<Core> {
 public:
  Core(aio::Executor ex, StreamRunner runner, std::chrono::milliseconds ack_timeout)
      : ex_(ex), runner_(std::move(runner)), write_signal_(ex), ack_timeout_(ack_timeout) {
    write_signal_.expires_at(aio::steady_timer::time_point::max());
  }

  void drain() override {
    if (over_ || session_->draining()) return;
    session_->drain();
    wake_writer();
    if (unpark) {  // a parked connection resumes to send its GOAWAY
      auto resume = std::move(unpark);
      unpark = nullptr;
      resume();
    }
    // Step two without the client's PING ack, at the latest after the timeout.
    drain_timer_ = std::make_unique<aio::steady_timer>(ex_);  // made only now: most connections never drain
    drain_timer_->expires_after(ack_timeout_);
    drain_timer_->async_wait([self = weak_from_this()](error_code ec) {
      auto core = self.lock();
      if (ec || !core || core->over_) return;
      core->session_->finish_drain();
      core->wake_writer();
    });
  }

  Status init(const Limits& limits) {
    auto s = ServerSession::create(limits, *this);
    if (!s.ok()) return s.error();
    session_ = std::move(s.value());
    return ok_status();
  }

  ServerSession& session() { return *session_; }
  aio::Executor executor() const { return ex_; }
  bool over() const { return over_; }
  void wake_writer() { write_signal_.cancel(); }

  // Which pass of the read loop an idle watch belongs to (IdleWatch).
  uint64_t idle_epoch = 0;
  // Parking (serve_parking()): the writer waits for output with nothing
  // queued; told to stop, it ends without ending the connection; while the
  // connection is parked, `unpark` resumes it (drain()).
  bool writer_waiting = false;
  bool writer_stop = false;
  std::function<void()> unpark;

  // Ends the connection for everyone: streams see closed, runners unwind.
  void end() {
    if (over_) return;
    over_ = true;
    if (drain_timer_) drain_timer_->cancel();
    auto streams = std::move(streams_);
    for (auto& st : streams) {
      st->closed_ = true;
      st->close_code_ = ErrorCode::kCancel;
      st->notify();
    }
    wake_writer();
  }

  aio::awaitable<void> wait_for_output() {
    error_code ec;
    write_signal_.expires_at(aio::steady_timer::time_point::max());
    co_await write_signal_.async_wait(asio::redirect_error(aio::use_awaitable, ec));
  }

  // ---- Handler
  void on_request(int32_t id, RequestHead&& head, bool end_stream) override {
    auto st = std::make_shared<Stream>(shared_from_this(), id, std::move(head), end_stream);
    streams_.push_back(st);
    aio::spawn_detached(ex_, runner_(st));
  }
  void on_data(int32_t id, std::string_view data) override {
    if (auto* st = find(id)) {
      st->in_.append(data);
      st->notify();
    }
  }
  void on_request_end(int32_t id, const std::vector<Field>* trailers) override {
    if (auto* st = find(id)) {
      st->ended_ = true;
      if (trailers) st->trailers_ = *trailers;
      st->notify();
    }
  }
  void on_closed(int32_t id, ErrorCode code) override {
    for (auto& slot : streams_) {
      if (slot->id_ != id) continue;
      std::shared_ptr<Stream> st = std::move(slot);
      slot = std::move(streams_.back());
      streams_.pop_back();
      st->closed_ = true;
      st->close_code_ = code;
      st->notify();
      return;
    }
  }
  void on_writable(int32_t id) override {
    if (auto* st = find(id)) st->notify();
  }

 private:
  Stream* find(int32_t id) {
    for (const auto& st : streams_)
      if (st->id_ == id) return st.get();
    return nullptr;
  }

  aio::Executor ex_;
  StreamRunner runner_;
  std::unique_ptr<ServerSession> session_;
  // Open streams in no order: a few, at most MAX_CONCURRENT_STREAMS (a scan,
  // no node allocated per stream).
  std::vector<std::shared_ptr<Stream>> streams_;
  aio::steady_timer write_signal_;
  std::unique_ptr<aio::steady_timer> drain_timer_;
  std::chrono::milliseconds ack_timeout_;
  bool over_ = false;
};

Stream::Stream(std::shared_ptr<Core> core, int32_t id, RequestHead head, bool ended)
    : core_(std::move(core)),
      id_(id),
      head_(std::move(head)),
      ended_(ended),
      head_ended_(ended) {}

void Stream::notify() {
  if (signal_) signal_->cancel();
  if (write_signal_) write_signal_->cancel();
}

// Reader and writer wait on timers of their own: an exchange may read the
// request body while it relays the response (gRPC bidi), and expires_at() on
// a shared timer would cancel the other side's wait.
aio::awaitable<void> Stream::wait(bool writer) {
  error_code ec;
  std::optional<aio::steady_timer>& t = writer ? write_signal_ : signal_;
  if (!t) t.emplace(core_->executor());
  t->expires_at(aio::steady_timer::time_point::max());
  co_await t->async_wait(asio::redirect_error(aio::use_awaitable, ec));
}

aio::awaitable<BodyPiece> Stream::read_body() {
  if (!handed_.empty()) {
    // The previous piece has been passed on: its window reopens.
    if (!closed_) core_->session().consume(id_, handed_.size());
    handed_.clear();
    core_->wake_writer();
  }
  while (in_.empty() && !ended_ && !closed_) co_await wait(false);
  if (!in_.empty()) {
    handed_.swap(in_);
    const bool end = ended_ && !end_told_ ? (end_told_ = true) : false;
    co_return BodyPiece{handed_, end, false, end && !trailers_.empty() ? &trailers_ : nullptr};
  }
  if (ended_ && !end_told_) {
    end_told_ = true;
    co_return BodyPiece{{}, true, false, trailers_.empty() ? nullptr : &trailers_};
  }
  co_return BodyPiece{{}, ended_, !ended_, nullptr};
}

bool Stream::send_head_now(int status, std::span<const Field> fields, bool end_stream) {
  if (closed_) return false;
  core_->session().respond(id_, status, fields, end_stream);
  core_->wake_writer();
  return true;
}

bool Stream::send_head_now(int status, std::span<const FieldView> fields, bool end_stream) {
  if (closed_) return false;
  core_->session().respond(id_, status, fields, end_stream);
  core_->wake_writer();
  return true;
}

aio::awaitable<bool> Stream::send_head(int status, std::span<const Field> fields, bool end_stream) {
  co_return send_head_now(status, fields, end_stream);
}

size_t Stream::send_body_now(std::string_view data, bool end_stream) {
  if (closed_) return 0;
  const size_t n = data.empty() ? 0 : core_->session().send_data(id_, data);
  if (n > 0) core_->wake_writer();
  if (n == data.size() && end_stream) {
    core_->session().end_response(id_);
    core_->wake_writer();
  }
  return n;
}

aio::awaitable<bool> Stream::send_body(std::string_view data, bool end_stream) {
  while (!data.empty()) {
    if (closed_) co_return false;
    const size_t n = core_->session().send_data(id_, data);
    data.remove_prefix(n);
    core_->wake_writer();
    if (!data.empty()) co_await wait(true);  // on_writable, or the stream closed
  }
  if (closed_) co_return false;
  if (end_stream) {
    core_->session().end_response(id_);
    core_->wake_writer();
  }
  co_return true;
}

aio::awaitable<bool> Stream::send_trailers(std::span<const Field> fields) {
  if (closed_) co_return false;
  core_->session().end_response(id_, fields);
  core_->wake_writer();
  co_return true;
}

void Stream::reset(ErrorCode code) {
  if (closed_) return;
  core_->session().reset(id_, code);
  core_->wake_writer();
}

namespace {

template <class Socket>
aio::awaitable<void> writer(Socket& sock, std::shared_ptr<Core> core) {
  while (true) {
    std::string_view out = core->session().output();
    if (out.empty()) {
      if (core->session().done() || core->over()) break;
      if (core->writer_stop) co_return;  // the connection parks: it goes on without this coroutine
      core->writer_waiting = true;
      co_await core->wait_for_output();
      core->writer_waiting = false;
      continue;
    }
    error_code ec;
    const size_t n =
        co_await asio::async_write(sock, asio::buffer(out.data(), out.size()),
                                   asio::redirect_error(aio::use_awaitable, ec));
    core->session().written(n);
    if (ec) break;
  }
  core->end();
}

// An idle connection (no stream open, nothing read) gives the pages of its
// session's large buffers back after this long, and its session hibernates,
// as an idle HTTP/1.1 connection gives back its read buffer.
constexpr std::chrono::milliseconds kReleaseIdleAfter{1000};
// A cleartext connection quiet this long parks, at the owner's next sweep
// (park_quiet_connections()): its reader's and writer's coroutine frames
// go (serve_parking()). Sooner than the session: frames freed a second after
// they were made sat as holes between the objects of the connections opened
// meanwhile, and a burst of connections kept those pages resident. Waking a
// parked connection whose session is kept costs a coroutine's start, not a
// new session; and the sweep, which runs anyway, asks, not a timer of the
// connection's own, so parking costs no wake-up (docs/BENCHMARKS.md).
constexpr std::chrono::milliseconds kParkAfter{100};

// The connections of this thread whose read loop is running a pass and that
// may park: what park_quiet_connections() walks (a parked one is not on it,
// so idle connections cost the sweep nothing).
struct ParkOfferBase {
  ParkOfferBase* prev = nullptr;
  ParkOfferBase* next = nullptr;
  virtual void offer(std::chrono::steady_clock::time_point now) = 0;

 protected:
  ~ParkOfferBase() = default;
};
thread_local ParkOfferBase* t_awake = nullptr;

// What a parking connection (serve_parking()) and its read loop share.
struct ParkState {
  std::function<void(std::weak_ptr<Drainable>)> on_start;  // instead of the options' (serve_parking())
  bool requested = false;  // the idle watch asks the read loop to park
  bool timed_out = false;  // resumed by the idle timeout: the connection ends
  std::chrono::steady_clock::time_point idle_deadline;
  // When the connection last read bytes: its session's memory goes back
  // kReleaseIdleAfter later, parked or not.
  std::chrono::steady_clock::time_point quiet_since = std::chrono::steady_clock::now();
  // The parked connection was resumed once to send what hibernation needs
  // (a SETTINGS whose acknowledgement has not come): not again until the
  // client sends something, or a client that never acknowledges would have
  // it resumed at every sweep.
  bool hibernation_asked = false;
};

// The read loop's idle timer. Fired while no stream is open: first (after
// kReleaseIdleAfter) the session's memory goes back (and the session
// hibernates, ServerSession::hibernate()), and a parking connection parks
// (the read loop's wait is cancelled) if the sweep has not parked it before;
// a parking connection parked meanwhile hibernates on its park deadline
// instead. At the idle timeout the read is cancelled and the connection
// ends. A watch belongs to one pass of the loop (`epoch`): once
// the loop has moved on it touches nothing, not even the timer and socket it
// names.
template <class Socket>
struct IdleWatch {
  aio::steady_timer& timer;
  Socket& sock;
  std::shared_ptr<Core> core;
  uint64_t epoch;
  std::chrono::milliseconds idle_timeout;
  std::chrono::steady_clock::time_point deadline;
  ParkState* park;  // null: the connection never parks

  void operator()(error_code e) {
    if (e || core->idle_epoch != epoch) return;
    const auto now = std::chrono::steady_clock::now();
    if (core->session().open_streams() != 0) {
      // Not idle: streams in flight with nothing to read (a slow upstream, a
      // server-streaming call). Looked at again an idle timeout later.
      deadline = now + idle_timeout;
      timer.expires_at(deadline);
      timer.async_wait(std::move(*this));
      return;
    }
    if (park == nullptr || now - park->quiet_since >= kReleaseIdleAfter) {
      core->session().release_idle_memory();
      // The libnghttp2 session goes, or the SETTINGS that prepares it is
      // queued: a parking writer sends it before it ends, any other is woken.
      core->session().hibernate();
    }
    if (park != nullptr && core->writer_waiting && !core->session().draining()) {
      park->requested = true;
      error_code ignored;
      sock.lowest_layer().cancel(ignored);
      return;
    }
    core->wake_writer();
    if (now < deadline) {
      timer.expires_at(deadline);
      timer.async_wait(std::move(*this));
      return;
    }
    error_code ignored;
    sock.lowest_layer().cancel(ignored);
  }
};

// Serves the connection until it ends (false), or, with `park`, until it
// parks (true): its reader and writer coroutines are then gone and the
// caller waits for the socket to be readable before calling again. `core` is
// made on the first call (from `runner`), and `already_read` fed to it.
template <class Socket>
aio::awaitable<bool> run_connection(Socket& sock, std::shared_ptr<Core>& core, std::string already_read,
                                     const ConnectionOptions& opts, StreamRunner& runner, ParkState* park) {
  auto ex = co_await asio::this_coro::executor;
  bool reading = true;
  if (!core) {
    core = std::make_shared<Core>(ex, std::move(runner), opts.drain_ack_timeout);
    if (!core->init(opts.limits).ok()) co_return false;
    if (park != nullptr && park->on_start) {
      std::exchange(park->on_start, nullptr)(core);
    } else if (opts.on_start) {
      opts.on_start(core);
    }
    if (!already_read.empty() && !core->session().receive(already_read).ok()) reading = false;
  }
  core->writer_stop = false;
  bool peer_gone = false;
  if (park != nullptr && park->timed_out) {  // the idle timeout passed while parked
    reading = false;
    peer_gone = true;
  }

  // The writer runs beside the reader; it ends the connection when the
  // session has nothing more to say.
  bool writer_done = false;
  aio::steady_timer writer_finished(ex, aio::steady_timer::time_point::max());
  asio::co_spawn(
      ex,
      [&sock, core, &writer_done, &writer_finished]() -> aio::awaitable<void> {
        co_await writer(sock, core);
        writer_done = true;
        error_code ignored;
        sock.lowest_layer().cancel(ignored);  // wakes the reader
        writer_finished.cancel();
      },
      asio::detached);
  // The sweep's offer to park (park_quiet_connections()), for this pass: on
  // the thread's list while the pass runs (a node on this frame).
  struct ParkOffer final : ParkOfferBase {
    Core& core;
    Socket& sock;
    ParkState* park;
    ParkOffer(Core& c, Socket& s, ParkState* p) : core(c), sock(s), park(p) {
      if (park == nullptr) return;
      next = t_awake;
      if (next != nullptr) next->prev = this;
      t_awake = this;
    }
    ~ParkOffer() {
      if (park == nullptr) return;
      if (prev != nullptr) prev->next = next;
      else t_awake = next;
      if (next != nullptr) next->prev = prev;
    }
    ParkOffer(const ParkOffer&) = delete;
    ParkOffer& operator=(const ParkOffer&) = delete;
    void offer(std::chrono::steady_clock::time_point now) override {
      if (core.session().open_streams() != 0) {  // quiet counts from when the sweep last saw one open
        park->quiet_since = now;
        return;
      }
      if (now - park->quiet_since < kParkAfter || park->requested || core.over() || !core.writer_waiting ||
          core.session().draining()) {
        return;
      }
      park->requested = true;
      error_code ignored;
      sock.lowest_layer().cancel(ignored);
    }
  } offer{*core, sock, park};
  auto wait_writer = [&]() -> aio::awaitable<void> {
    while (!writer_done) {
      error_code ec;
      writer_finished.expires_at(aio::steady_timer::time_point::max());
      co_await writer_finished.async_wait(asio::redirect_error(aio::use_awaitable, ec));
    }
  };

  // Idle: a timer re-armed on every read (IdleWatch).
  aio::steady_timer idle(ex);
  // The read buffer, a pooled block (base/block_pool.h). On h2c it is held
  // only while streams are open: a connection without streams waits for
  // readability with no buffer, then reads what came without blocking, so
  // idle connections cost almost nothing (nginx's habit). TLS streams keep
  // theirs (Asio's SSL engine holds its own buffers anyway).
  constexpr bool kPlain = std::is_same_v<Socket, aio::tcp_socket>;
  struct Block {
    char* p = nullptr;
    ~Block() { give_back(); }
    char* get() { return p != nullptr ? p : (p = block_pool::acquire()); }
    void give_back() {
      if (p != nullptr) block_pool::release(std::exchange(p, nullptr), false);
    }
  } buf;
  if constexpr (kPlain) {
    error_code ignored;
    sock.non_blocking(true, ignored);  // read_some() after a readiness wait never blocks
  }
  while (reading && !core->over()) {
    core->wake_writer();
    if (park != nullptr) park->requested = false;  // a request of an earlier pass (its wait had completed)
    error_code ec;
    const auto deadline = std::chrono::steady_clock::now() + opts.idle_timeout;
    idle.expires_at(std::min(deadline, std::chrono::steady_clock::now() + kReleaseIdleAfter));
    idle.async_wait(IdleWatch<Socket>{idle, sock, core, ++core->idle_epoch, opts.idle_timeout, deadline, park});
    size_t n = 0;
    if (kPlain && core->session().open_streams() == 0) {
      buf.give_back();
      if (nothing_to_read(sock.lowest_layer().native_handle()))  // base/peek.h: no edge is missed
        co_await sock.lowest_layer().async_wait(aio::tcp_socket::wait_read,
                                                asio::redirect_error(aio::use_awaitable, ec));
      if (!ec) {
        n = sock.read_some(asio::buffer(buf.get(), block_pool::kBlockSize), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
          idle.cancel();
          continue;  // a spurious wake-up: wait again
        }
      }
    } else {
      n = co_await sock.async_read_some(net::drained_read_buffer(buf.get(), block_pool::kBlockSize),
                                        asio::redirect_error(aio::use_awaitable, ec));
    }
    idle.cancel();
    if (park != nullptr && park->requested && ec == asio::error::operation_aborted) {
      // The idle watch asked to park: when still idle, the writer ends, then
      // this coroutine; the caller waits for readability without either.
      park->requested = false;
      if (core->session().open_streams() == 0 && core->writer_waiting && !core->session().draining() &&
          !core->over()) {
        core->writer_stop = true;
        core->wake_writer();
        co_await wait_writer();
        if (!core->over()) {
          ++core->idle_epoch;  // a late IdleWatch finds nothing to do
          park->idle_deadline = deadline;
          co_return true;
        }
        break;  // the connection ended meanwhile
      }
      continue;  // no longer idle (a drain's GOAWAY to write): read on
    }
    if (ec || n == 0) {
      peer_gone = true;
      break;
    }
    if (park != nullptr) {
      park->quiet_since = std::chrono::steady_clock::now();
      park->hibernation_asked = false;
    }
    if (!core->session().receive(std::string_view(buf.p, n)).ok()) break;
    if (core->session().done()) break;
  }
  ++core->idle_epoch;  // a late IdleWatch finds nothing to do
  buf.give_back();
  // The session ended (GOAWAY after an error or a drain): let the writer flush
  // what is queued, for a bounded time. A peer that went away gets nothing.
  core->wake_writer();
  if (!peer_gone && !writer_done) {
    bool timed_out = false;
    aio::steady_timer flush(ex, std::chrono::seconds(5));
    flush.async_wait([&writer_finished, &timed_out](error_code e) {
      if (!e) {
        timed_out = true;
        writer_finished.cancel();
      }
    });
    while (!writer_done && !timed_out) {
      error_code ec;
      writer_finished.expires_at(aio::steady_timer::time_point::max());
      co_await writer_finished.async_wait(asio::redirect_error(aio::use_awaitable, ec));
    }
    flush.cancel();
  }
  core->end();
  if (opts.on_end) opts.on_end(core->session());
  error_code ignored;
  sock.lowest_layer().shutdown(asio::socket_base::shutdown_both, ignored);
  // The writer may still be suspended in async_write: closing wakes it.
  sock.lowest_layer().close(ignored);
  co_await wait_writer();
  co_return false;
}

template <class Socket>
aio::awaitable<void> serve_on(Socket sock, std::string already_read, const ConnectionOptions& opts,
                               StreamRunner runner) {
  std::shared_ptr<Core> core;
  co_await run_connection(sock, core, std::move(already_read), opts, runner, nullptr);
}

// A cleartext connection that parks while idle (serve_parking()): it owns
// what a parked connection keeps (the socket, the session, its options) and
// runs run_connection() again when the socket becomes readable, the idle
// timeout passes (then the connection ends) or a drain wants its GOAWAY out.
class ParkingConnection : public std::enable_shared_from_this<ParkingConnection> {
 public:
  ParkingConnection(aio::tcp_socket sock, const ConnectionOptions& opts, StreamRunner runner,
                    std::function<void(std::exception_ptr)> done,
                    std::function<void(std::weak_ptr<Drainable>)> on_start)
      : sock_(std::move(sock)), opts_(opts), runner_(std::move(runner)), done_(std::move(done)),
        deadline_(sock_.get_executor()) {
    park_.on_start = std::move(on_start);
  }

  void run(std::string already_read) {
    asio::co_spawn(sock_.get_executor(),
                   run_connection(sock_, core_, std::move(already_read), opts_, runner_, &park_),
                   [self = shared_from_this()](std::exception_ptr e, bool parked) {
                     if (parked && !e) self->wait_parked();
                     else self->done_(e);
                   });
  }

 private:
  // Parked: one readiness wait, the idle deadline, and the drain's way in.
  void wait_parked() {
    const uint64_t epoch = ++epoch_;
    parked_ = true;
    if (!nothing_to_read(sock_.native_handle())) {  // bytes (or EOF) came meanwhile: base/peek.h
      resume(epoch, false);
      return;
    }
    auto self = shared_from_this();
    sock_.async_wait(aio::tcp_socket::wait_read, [self, epoch](error_code) { self->resume(epoch, false); });
    wait_deadline(epoch);
    core_->unpark = [weak = weak_from_this(), epoch] {
      if (auto s = weak.lock()) s->resume(epoch, false);
    };
  }

  // The idle timeout, or before it the time for the session to hibernate.
  void wait_deadline(uint64_t epoch) {
    auto at = park_.idle_deadline;
    if (!core_->session().hibernated() && !park_.hibernation_asked) {
      at = std::min(at, park_.quiet_since + kReleaseIdleAfter);
    }
    deadline_.expires_at(at);
    deadline_.async_wait([self = shared_from_this(), epoch](error_code e) {
      if (!e) self->on_deadline(epoch);
    });
  }

  void on_deadline(uint64_t epoch) {
    if (!parked_ || epoch != epoch_) return;
    if (std::chrono::steady_clock::now() >= park_.idle_deadline) {
      resume(epoch, true);
      return;
    }
    // Quiet for kReleaseIdleAfter: the session's memory goes. It hibernates
    // at once, or after a SETTINGS exchange, which needs the connection run.
    core_->session().release_idle_memory();
    const bool asleep = core_->session().hibernate();
    park_.hibernation_asked = true;
    if (asleep) {
      wait_deadline(epoch);
    } else {
      resume(epoch, false);
    }
  }

  void resume(uint64_t epoch, bool timed_out) {
    if (!parked_ || epoch != epoch_) return;  // a wake-up of an earlier park, or a second one
    parked_ = false;
    core_->unpark = nullptr;
    error_code ignored;
    sock_.cancel(ignored);
    deadline_.cancel();
    park_.timed_out = timed_out;
    run({});
  }

  aio::tcp_socket sock_;
  const ConnectionOptions& opts_;
  StreamRunner runner_;  // moved into the session's Core on the first run
  std::function<void(std::exception_ptr)> done_;
  std::shared_ptr<Core> core_;
  aio::steady_timer deadline_;
  ParkState park_;
  uint64_t epoch_ = 0;
  bool parked_ = false;
};

}  // namespace

// Not coroutines themselves: the connection's one frame is serve_on's, which
// owns the socket (a frame fewer per connection, idle ones included).
aio::awaitable<void> serve(aio::tcp_socket socket, std::string already_read,
                            const ConnectionOptions& options, StreamRunner runner) {
  return serve_on(std::move(socket), std::move(already_read), options, std::move(runner));
}

aio::awaitable<void> serve(asio::ssl::stream<aio::tcp_socket> socket, std::string already_read,
                            const ConnectionOptions& options, StreamRunner runner) {
  return serve_on(std::move(socket), std::move(already_read), options, std::move(runner));
}

void park_quiet_connections(std::chrono::steady_clock::time_point now) {
  // An offer parks by cancelling a wait, whose handler runs later: nothing
  // leaves the list during the walk.
  for (ParkOfferBase* o = t_awake; o != nullptr; o = o->next) o->offer(now);
}

void serve_parking(aio::tcp_socket socket, std::string already_read, const ConnectionOptions& options,
                   StreamRunner runner, std::function<void(std::exception_ptr)> done,
                   std::function<void(std::weak_ptr<Drainable>)> on_start) {
  std::make_shared<ParkingConnection>(std::move(socket), options, std::move(runner), std::move(done),
                                      std::move(on_start))
      ->run(std::move(already_read));
}

}  // namespace gantry::http2
