#include "proxy/ratelimit/resp.h"

#include <hiredis/hiredis.h>

#include <cstdlib>
#include <type_traits>
#include <vector>

namespace gantry::ratelimit {

namespace {

// The script's reply: five integers >= 0 per key (admitted, tokens, prev,
// curr, elapsed), at least one key and at most kMaxBatch.
bool read_decisions(const redisReply& r, StoreReply& out) {
  if (r.type != REDIS_REPLY_ARRAY || r.element == nullptr || r.elements == 0 || r.elements % 5 != 0 ||
      r.elements / 5 > kMaxBatch)
    return false;
  const size_t n = r.elements / 5;
  for (size_t k = 0; k < n; ++k) {
    uint64_t v[5];
    for (size_t i = 0; i < 5; ++i) {
      const redisReply* e = r.element[5 * k + i];
      if (e == nullptr || e->type != REDIS_REPLY_INTEGER || e->integer < 0) return false;
      v[i] = static_cast<uint64_t>(e->integer);
    }
    out.keys[k] = filters::GlobalKeyState{v[0], v[1], v[2], v[3], v[4]};
  }
  out.count = n;
  return true;
}

// The store's replies are small (five integers per key of a batch, a
// status, an error), but hiredis 0.14 allocates an array's element table
// from the count on the wire: "*555555555" asks for 4.4 GB (fuzz_resp found it).
// Its reply-object functions are copied with createArray bounded; a larger
// array makes the reader fail ("Out of memory", from hiredis), which the
// connection treats as a protocol error. Version-agnostic: the count is an
// int in hiredis 0.14, a size_t in 1.x.
constexpr unsigned long long kMaxArrayElements = 5 * kMaxBatch;

template <class F>
struct BoundedArrays;
template <class R, class Task, class Count>
struct BoundedArrays<R (*)(Task, Count)> {
  static inline R (*original)(Task, Count) = nullptr;
  static R create(Task task, Count elements) {
    if constexpr (std::is_signed_v<Count>) {
      if (elements < 0) return original(task, elements);  // a nil array: no table
    }
    if (static_cast<unsigned long long>(elements) > kMaxArrayElements) return nullptr;
    return original(task, elements);
  }
};
using ArrayHook = BoundedArrays<decltype(redisReplyObjectFunctions::createArray)>;

redisReplyObjectFunctions* bounded_functions(const redisReplyObjectFunctions& defaults) {
  static redisReplyObjectFunctions bounded = [&] {
    redisReplyObjectFunctions f = defaults;
    ArrayHook::original = f.createArray;
    f.createArray = &ArrayHook::create;
    return f;
  }();
  return &bounded;
}

}  // namespace

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  append_command(out, std::span<const std::string_view>(args.begin(), args.size()));
}

void append_command(std::string& out, std::span<const std::string_view> args) {
  // At most a batch's arguments: EVALSHA sha n, n keys, 5n values.
  constexpr size_t kMaxArgs = 3 + 6 * kMaxBatch;
  const char* argv[kMaxArgs];
  size_t lens[kMaxArgs];
  int argc = 0;
  for (std::string_view a : args) {
    if (argc == static_cast<int>(kMaxArgs)) break;
    argv[argc] = a.data();
    lens[argc] = a.size();
    ++argc;
  }
  char* cmd = nullptr;
  int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
  if (n > 0 && cmd != nullptr) out.append(cmd, static_cast<size_t>(n));
  std::free(cmd);  // redisFreeCommand's body
}

RespParser::RespParser() : reader_(redisReaderCreate()) {
  if (reader_ != nullptr && reader_->fn != nullptr) reader_->fn = bounded_functions(*reader_->fn);
}

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
  out.count = 0;
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
      out.kind = read_decisions(r, out) ? StoreReply::kDecision : StoreReply::kOther;
      break;
    default:
      out.kind = StoreReply::kOther;
  }
  freeReplyObject(raw);
  return true;
}

}  // namespace gantry::ratelimit
