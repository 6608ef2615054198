// Control-socket frames (u32 big-endian payload length | u8 type | payload) and
// the small ACK / NACK / HELLO payloads.
//
// FrameDecoder invariants: buf_[pos_, size) holds bytes not yet returned by
// next(); every complete header in that range has been checked by feed() (type
// known, length <= kMaxFrame). Consumed bytes are dropped once they are more
// than half the buffer, so a big frame fed byte by byte costs amortised O(1)
// per byte. After a protocol error the decoder is poisoned (pos_ == kBroken):
// feed() keeps failing and next() returns nothing.
#include <nlohmann/json.hpp>

#include <limits>
#include <string>

#include "proxy/snapshot/frame.h"

namespace gantry::snapshot {
namespace {

using json = nlohmann::json;
constexpr size_t kBroken = std::numeric_limits<size_t>::max();

uint32_t read_be32(const char* p) {
  auto b = [p](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

bool known_type(uint8_t t) {
  return t >= static_cast<uint8_t>(FrameType::kFull) &&
         t <= static_cast<uint8_t>(FrameType::kHello);
}

// ---- payload helpers: strict types, unknown fields ignored, null = absent.

struct PayloadError {
  std::string message;
};

const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

uint64_t get_u64(const json& j, const char* what, const char* key) {
  const json* v = field(j, key);
  if (!v) return 0;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  throw PayloadError{std::string(what) + "." + key + ": expected a non-negative integer, got " +
                     (v->is_number() ? "another number" : v->type_name())};
}

std::string get_string(const json& j, const char* what, const char* key) {
  const json* v = field(j, key);
  if (!v) return "";
  if (!v->is_string()) {
    throw PayloadError{std::string(what) + "." + key + ": expected string, got " + v->type_name()};
  }
  return v->get<std::string>();
}

template <typename T, typename F>
Result<T> decode_payload(std::string_view text, const char* what, F fill) {
  try {
    json j = json::parse(text.begin(), text.end());
    if (!j.is_object()) {
      return Error{std::string(what) + ": expected object, got " + j.type_name()};
    }
    T out;
    fill(j, out);
    return out;
  } catch (const PayloadError& e) {
    return Error{e.message};
  } catch (const std::exception& e) {
    return Error{std::string(what) + ": invalid JSON: " + e.what()};
  }
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string encode_frame(FrameType type, std::string_view payload) {
  // A payload over kMaxFrame is the caller's bug; the peer's decoder rejects it.
  uint32_t n = static_cast<uint32_t>(payload.size());
  std::string out;
  out.reserve(kFrameHeaderSize + payload.size());
  out += static_cast<char>((n >> 24) & 0xff);
  out += static_cast<char>((n >> 16) & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>(type);
  out.append(payload);
  return out;
}

Status FrameDecoder::feed(std::string_view bytes) {
  if (pos_ == kBroken) return Error{"frame stream unusable after an earlier protocol error"};
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
  // Check every header now complete, so a bad one is reported as soon as it arrives.
  size_t at = pos_;
  while (buf_.size() - at >= kFrameHeaderSize) {
    uint32_t len = read_be32(buf_.data() + at);
    auto type = static_cast<uint8_t>(buf_[at + 4]);
    std::string problem;
    if (!known_type(type)) {
      problem = "unknown frame type " + std::to_string(type);
    } else if (len > kMaxFrame) {
      problem = "frame of " + std::to_string(len) + " bytes exceeds the limit of " +
                std::to_string(kMaxFrame) + " bytes";
    }
    if (!problem.empty()) {
      buf_.clear();
      buf_.shrink_to_fit();
      pos_ = kBroken;
      return Error{std::move(problem)};
    }
    if (buf_.size() - at - kFrameHeaderSize < len) break;
    at += kFrameHeaderSize + len;
  }
  return ok_status();
}

std::optional<Frame> FrameDecoder::next() {
  if (pos_ == kBroken || buf_.size() - pos_ < kFrameHeaderSize) return std::nullopt;
  uint32_t len = read_be32(buf_.data() + pos_);
  if (buf_.size() - pos_ - kFrameHeaderSize < len) return std::nullopt;
  Frame f{static_cast<FrameType>(buf_[pos_ + 4]), buf_.substr(pos_ + kFrameHeaderSize, len)};
  pos_ += kFrameHeaderSize + len;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return f;
}

std::string encode(const Ack& a) { return dump(json{{"version", a.version}}); }

std::string encode(const Nack& n) {
  return dump(json{{"version", n.version}, {"errors", n.errors}});
}

std::string encode(const Hello& h) {
  return dump(json{{"proxyId", h.proxy_id}, {"lastVersion", h.last_version}});
}

Result<Ack> decode_ack(std::string_view text) {
  return decode_payload<Ack>(
      text, "ack", [](const json& j, Ack& a) { a.version = get_u64(j, "ack", "version"); });
}

Result<Nack> decode_nack(std::string_view text) {
  return decode_payload<Nack>(text, "nack", [](const json& j, Nack& n) {
    n.version = get_u64(j, "nack", "version");
    if (const json* errs = field(j, "errors")) {
      if (!errs->is_array()) {
        throw PayloadError{std::string("nack.errors: expected array, got ") + errs->type_name()};
      }
      for (size_t i = 0; i < errs->size(); ++i) {
        if (!(*errs)[i].is_string()) {
          throw PayloadError{"nack.errors[" + std::to_string(i) + "]: expected string"};
        }
        n.errors.push_back((*errs)[i].get<std::string>());
      }
    }
  });
}

// Spelled proxyId / lastVersion like the rest of the codec; the snake_case
// spelling of frame.h's first draft is read too.
Result<Hello> decode_hello(std::string_view text) {
  return decode_payload<Hello>(text, "hello", [](const json& j, Hello& h) {
    h.proxy_id = get_string(j, "hello", field(j, "proxyId") ? "proxyId" : "proxy_id");
    h.last_version = get_u64(j, "hello", field(j, "lastVersion") ? "lastVersion" : "last_version");
  });
}

}  // namespace gantry::snapshot
