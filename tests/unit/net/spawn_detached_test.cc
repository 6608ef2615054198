// aio::spawn_detached (proxy/base/aio.h): how each HTTP/2 stream's coroutine
// starts. What it must keep of co_spawn(ex, a, detached): the coroutine starts
// after the running handler (in post order), runs across its suspensions to
// the end, and one still suspended when its io_context goes is destroyed, not
// leaked.
#include "proxy/base/aio.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <chrono>
#include <memory>
#include <string>

namespace gantry {
namespace {

namespace asio = boost::asio;

aio::awaitable<void> note(std::string& log, std::string what) {
  log += what;
  co_return;
}

TEST(SpawnDetached, StartsAfterTheRunningHandlerInPostOrder) {
  asio::io_context io(1);
  std::string log;
  asio::post(io, [&] {
    asio::post(io, [&] { log += "a"; });
    aio::spawn_detached(io.get_executor(), note(log, "b"));
    asio::post(io, [&] { log += "c"; });
    log += "0";  // the handler that spawned it goes on first
  });
  io.run();
  EXPECT_EQ(log, "0abc");
}

aio::awaitable<void> sleep_then_note(std::string& log, std::shared_ptr<int> held) {
  log += "1";
  aio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(aio::use_awaitable, ec));
  log += ec ? "E" : "2";
  co_await note(log, "3");  // a nested coroutine of the same executor type
  held.reset();
}

TEST(SpawnDetached, RunsAcrossSuspensionsToTheEnd) {
  asio::io_context io(1);
  std::string log;
  auto held = std::make_shared<int>(7);
  aio::spawn_detached(io.get_executor(), sleep_then_note(log, held));
  EXPECT_EQ(log, "");  // not started inline
  io.run();
  EXPECT_EQ(log, "123");
  EXPECT_EQ(held.use_count(), 1);  // the coroutine's copy went with its frame
}

aio::awaitable<void> wait_forever(std::shared_ptr<int> held) {
  const std::shared_ptr<int> kept = std::move(held);  // in the frame until it goes
  aio::steady_timer t(co_await asio::this_coro::executor, aio::steady_timer::time_point::max());
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(aio::use_awaitable, ec));
}

TEST(SpawnDetached, ASuspendedCoroutineGoesWithItsIoContext) {
  auto held = std::make_shared<int>(7);
  {
    asio::io_context io(1);
    aio::spawn_detached(io.get_executor(), wait_forever(held));
    io.run_for(std::chrono::milliseconds(20));
    EXPECT_EQ(held.use_count(), 2);  // suspended on its timer, frame alive
  }
  EXPECT_EQ(held.use_count(), 1);
}

}  // namespace
}  // namespace gantry
