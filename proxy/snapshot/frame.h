// Frames on the controller <-> proxy unix stream socket:
//   u32 payload length (big endian) | u8 type | payload
// The length counts the payload only. Payloads are JSON (codec.h for FULL and
// ENDPOINTS; small objects for the rest). Frames larger than kMaxFrame are a
// protocol error and the connection is closed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"

namespace gantry::snapshot {

enum class FrameType : uint8_t {
  kFull = 1,       // whole snapshot (codec JSON)
  kEndpoints = 2,  // EndpointDelta (codec JSON)
  kAck = 3,        // {"version": N}
  kNack = 4,       // {"version": N, "errors": ["..."]}
  kHello = 5,      // {"proxyId": "...", "lastVersion": N}
};

constexpr size_t kFrameHeaderSize = 5;
constexpr uint32_t kMaxFrame = 256u << 20;

struct Frame {
  FrameType type;
  std::string payload;
};

std::string encode_frame(FrameType type, std::string_view payload);

// Incremental decoder: feed bytes as they arrive, take frames as they complete.
class FrameDecoder {
 public:
  // Appends bytes; returns an error for an unknown type or an oversized frame
  // (the stream is then unusable).
  Status feed(std::string_view bytes);
  std::optional<Frame> next();

 private:
  std::string buf_;
  size_t pos_ = 0;
};

struct Ack { uint64_t version = 0; };
struct Nack { uint64_t version = 0; std::vector<std::string> errors; };
struct Hello { std::string proxy_id; uint64_t last_version = 0; };

std::string encode(const Ack& a);
std::string encode(const Nack& n);
std::string encode(const Hello& h);
Result<Ack> decode_ack(std::string_view json);
Result<Nack> decode_nack(std::string_view json);
Result<Hello> decode_hello(std::string_view json);

}  // namespace gantry::snapshot
