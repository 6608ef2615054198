// A WebSocket frame as the test backends echo it (RFC 6455 5.2): a server's
// frame, unmasked, with the first byte `b0` (FIN bit and opcode) and the
// payload's length in the shortest form. gantry-echo (HTTP/1.1) and
// gantry-h2-echo (RFC 8441) share it; neither shares code with the proxy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gantry::test_backends {

inline std::string websocket_frame(unsigned char b0, std::string_view payload) {
  std::string frame(1, static_cast<char>(b0));
  if (payload.size() < 126) {
    frame += static_cast<char>(payload.size());
  } else if (payload.size() <= 0xffff) {
    frame += static_cast<char>(126);
    frame += static_cast<char>(payload.size() >> 8);
    frame += static_cast<char>(payload.size() & 0xff);
  } else {
    frame += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8)
      frame += static_cast<char>((static_cast<uint64_t>(payload.size()) >> shift) & 0xff);
  }
  frame += payload;
  return frame;
}

}  // namespace gantry::test_backends
