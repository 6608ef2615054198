// RESP (the Redis protocol) for the global rate limit store: commands encoded
// and replies parsed by hiredis (redisFormatCommandArgv, redisReader), with
// none of hiredis's I/O: the connection is Gantry's own (redis_store.h, Asio,
// plain or TLS). Pure: bytes in, replies out; fuzzed (tests/fuzz/fuzz_resp.cc).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "proxy/base/result.h"
#include "proxy/filters/global_rate_limit.h"

struct redisReader;

namespace gantry::ratelimit {

// The most keys one script call decides (a batch; each key for every
// decision pending on it), and so the largest array a reply may hold: five
// integers per key.
constexpr size_t kMaxBatch = 32;

// Appends one command (a RESP array of bulk strings) to `out`.
void append_command(std::string& out, std::initializer_list<std::string_view> args);
void append_command(std::string& out, std::span<const std::string_view> args);

// A reply as the store's connection needs it.
struct StoreReply {
  enum Kind : uint8_t {
    kDecision,  // the script's {admitted, tokens, prev, curr, elapsed} per key of the call
    kNoScript,  // -NOSCRIPT: EVALSHA of a script the server does not hold
    kError,     // any other -ERR (text in `error`)
    kOk,        // +OK and other status replies, bulk strings (SCRIPT LOAD's SHA-1)
    kOther,     // integers, nil, arrays that are not decisions
  } kind = kOther;
  std::array<filters::GlobalKeyState, kMaxBatch> keys;  // kDecision: the first `count`
  size_t count = 0;
  std::string text;  // kError: the error; kOk: the status or bulk string
};

// Incremental reply parser: feed() what the socket read, then next() until
// it returns false. A protocol error is final (the connection must close).
class RespParser {
 public:
  RespParser();
  ~RespParser();
  RespParser(const RespParser&) = delete;
  RespParser& operator=(const RespParser&) = delete;

  Status feed(const char* data, size_t n);
  // True with `out` filled when a whole reply is buffered; false when more
  // bytes are needed; an error on a protocol error.
  Result<bool> next(StoreReply& out);

 private:
  redisReader* reader_;
};

}  // namespace gantry::ratelimit
