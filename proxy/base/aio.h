// The data plane's one executor type: every coroutine, socket and timer of
// the proxy runs on a worker's io_context, so they name its concrete
// executor, io_context::executor_type, rather than Asio's default,
// any_io_executor.
//
// Why: any_io_executor is type-erased. Every completion, every coroutine
// resumption and every outstanding-work count went through it: copies and
// destructions of the erased object and calls through its function
// pointers, a few dozen indirect calls per proxied request. The concrete
// type is a pointer to the io_context plus a few bits, copied and called
// directly (docs/BENCHMARKS.md, "One executor type").
//
// A coroutine awaits only coroutines of its own executor type, so the whole
// proxy uses these names: aio::awaitable, aio::use_awaitable, and the socket,
// acceptor and timer types below.
#pragma once

#include <utility>  // before Asio: awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>
#if BOOST_VERSION != 107400
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#endif
#include <chrono>

namespace gantry::aio {

using Executor = boost::asio::io_context::executor_type;

template <class T = void>
using awaitable = boost::asio::awaitable<T, Executor>;

inline constexpr boost::asio::use_awaitable_t<Executor> use_awaitable{};

using tcp_socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using tcp_acceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, Executor>;
using steady_timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                       boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;

// Starts `a` after the running handler, detached, on a coroutine stack of
// its own: what co_spawn(ex, std::move(a), detached) does, without
// co_spawn's entry-point coroutine (it holds two outstanding-work guards,
// awaits a post, catches the coroutine's exception and dispatches its
// completion: three allocations and a scheduler round trip more). Used once
// per HTTP/2 stream. `a` must catch its own exceptions: one escaping it would
// leave io_context::run() (co_spawn with `detached` drops it silently).
// awaitable_thread is an Asio detail whose constructor changed in 1.77
// (cancellation): any other Boost gets co_spawn itself.
inline void spawn_detached(Executor ex, awaitable<void> a) {
#if BOOST_VERSION == 107400
  boost::asio::post(ex, [a = std::move(a), ex]() mutable {
    boost::asio::detail::awaitable_thread<Executor>(std::move(a), ex).launch();
  });
#else
  boost::asio::co_spawn(ex, std::move(a), boost::asio::detached);
#endif
}

}  // namespace gantry::aio
