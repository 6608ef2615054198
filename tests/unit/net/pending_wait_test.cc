// await_pending (net/exchange_driver.h): how the exchange driver waits for a
// filter's PendingOp (Verdict::kPending) on a real io_context: done() from
// inside start(), from another thread, never (the deadline cancels the op),
// twice, and after the driver gave up.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <atomic>
#include <memory>
#include <optional>
#include <thread>

#include "proxy/net/exchange_driver.h"

namespace gantry::net {
namespace {

using std::chrono::milliseconds;

enum class When { kInsideStart, kOtherThread, kNever, kTwice };

class TestOp final : public exchange::PendingOp {
 public:
  explicit TestOp(When w) : when_(w) {}
  ~TestOp() override {
    if (thread_.joinable()) thread_.join();
  }
  void start(std::function<void()> done) override {
    ++started;
    done_ = std::move(done);
    switch (when_) {
      case When::kInsideStart: done_(); break;
      case When::kTwice:
        done_();
        done_();
        break;
      case When::kOtherThread: thread_ = std::thread([this] { done_(); }); break;
      case When::kNever: break;
    }
  }
  void cancel() override { ++cancelled; }
  // A done() that comes after the driver gave up.
  void late_done() { done_(); }

  int started = 0;
  int cancelled = 0;

 private:
  When when_;
  std::function<void()> done_;
  std::thread thread_;
};

// Runs await_pending on its own io_context to the end; the result, or
// nullopt if the coroutine did not finish.
std::optional<bool> wait(TestOp& op, milliseconds limit) {
  boost::asio::io_context io;
  auto alive = std::make_shared<std::atomic<bool>>(true);
  std::optional<bool> result;
  boost::asio::co_spawn(io, await_pending(io, op, limit, alive), [&](std::exception_ptr e, bool r) {
    if (!e) result = r;
  });
  io.run();
  return result;
}

TEST(AwaitPending, Table) {
  struct Case {
    const char* name;
    When when;
    milliseconds limit;
    bool finished;
    int cancelled;
  };
  // A long limit where the op finishes: reaching it would only make the test
  // slow, never wrong. kNever's short limit is the deadline path itself.
  const Case cases[] = {
      {"done inside start", When::kInsideStart, milliseconds(60000), true, 0},
      {"done from another thread", When::kOtherThread, milliseconds(60000), true, 0},
      {"done twice counts once", When::kTwice, milliseconds(60000), true, 0},
      {"never done: deadline, cancel", When::kNever, milliseconds(20), false, 1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TestOp op(c.when);
    EXPECT_EQ(wait(op, c.limit), std::optional<bool>(c.finished));
    EXPECT_EQ(op.started, 1);
    EXPECT_EQ(op.cancelled, c.cancelled);
  }
}

TEST(AwaitPending, DoneAfterTheDriverGaveUpIsHarmless) {
  TestOp op(When::kNever);
  EXPECT_EQ(wait(op, milliseconds(10)), std::optional<bool>(false));
  op.late_done();  // the timer and the io_context are gone: nothing happens
  EXPECT_EQ(op.cancelled, 1);
}

}  // namespace
}  // namespace gantry::net
