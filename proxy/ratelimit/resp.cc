#include "proxy/ratelimit/resp.h"

#include <hiredis/hiredis.h>

#include <cstdlib>
#include <vector>

namespace gantry::ratelimit {

namespace {

// The script's reply: five integers, allowed 0 or 1, the rest >= 0.
bool read_decision(const redisReply& r, filters::RateLimitDecision& d) {
  if (r.type != REDIS_REPLY_ARRAY || r.elements != 5 || r.element == nullptr) return false;
  long long v[5];
  for (size_t i = 0; i < 5; ++i) {
    const redisReply* e = r.element[i];
    if (e == nullptr || e->type != REDIS_REPLY_INTEGER || e->integer < 0) return false;
    v[i] = e->integer;
  }
  if (v[0] > 1) return false;
  d.allowed = v[0] == 1;
  d.limit = static_cast<uint64_t>(v[1]);
  d.remaining = static_cast<uint64_t>(v[2]);
  d.reset_seconds = static_cast<uint64_t>(v[3]);
  d.retry_after_seconds = d.allowed ? 0 : static_cast<uint64_t>(v[4]);
  return true;
}

}  // namespace

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  // At most a handful of arguments per command (EVALSHA sha 1 key a b c d).
  const char* argv[12];
  size_t lens[12];
  int argc = 0;
  for (std::string_view a : args) {
    if (argc == 12) break;
    argv[argc] = a.data();
    lens[argc] = a.size();
    ++argc;
  }
  char* cmd = nullptr;
  int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
  if (n > 0 && cmd != nullptr) out.append(cmd, static_cast<size_t>(n));
  std::free(cmd);  // redisFreeCommand's body
}

RespParser::RespParser() : reader_(redisReaderCreate()) {}

RespParser::~RespParser() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

Status RespParser::feed(const char* data, size_t n) {
  if (reader_ == nullptr) return Error{"out of memory"};
  if (redisReaderFeed(reader_, data, n) != REDIS_OK) return Error{std::string("RESP: ") + reader_->errstr};
  return ok_status();
}

Result<bool> RespParser::next(StoreReply& out) {
  if (reader_ == nullptr) return Error{"out of memory"};
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) return Error{std::string("RESP: ") + reader_->errstr};
  if (raw == nullptr) return false;
  const redisReply& r = *static_cast<redisReply*>(raw);
  out.text.clear();
  out.decision = {};
  switch (r.type) {
    case REDIS_REPLY_ERROR: {
      std::string_view e(r.str != nullptr ? r.str : "", r.str != nullptr ? r.len : 0);
      out.kind = e.starts_with("NOSCRIPT") ? StoreReply::kNoScript : StoreReply::kError;
      out.text.assign(e.substr(0, 256));
      break;
    }
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
      out.kind = StoreReply::kOk;
      if (r.str != nullptr) out.text.assign(r.str, std::min<size_t>(r.len, 256));
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = read_decision(r, out.decision) ? StoreReply::kDecision : StoreReply::kOther;
      break;
    default:
      out.kind = StoreReply::kOther;
  }
  freeReplyObject(raw);
  return true;
}

}  // namespace gantry::ratelimit
