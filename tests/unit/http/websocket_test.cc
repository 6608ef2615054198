// The WebSocket handshake digest against RFC 6455's own example (section 1.3).
#include <gtest/gtest.h>

#include "proxy/http/websocket.h"

namespace gantry::http {
namespace {

TEST(WebSocketHandshake, AcceptIsTheRfcExample) {
  EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshake, KeyIsSixteenBytesInBase64) {
  // "the sample nonce" is the RFC's 16-byte nonce.
  std::array<uint8_t, 16> nonce{};
  const std::string_view sample = "the sample nonce";
  for (size_t i = 0; i < nonce.size(); ++i) nonce[i] = static_cast<uint8_t>(sample[i]);
  EXPECT_EQ(websocket_key(nonce), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(websocket_key({}).size(), 24u);
}

}  // namespace
}  // namespace gantry::http
