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

TEST(WebSocketHandshake, AKeyIsSixteenBytesOfBase64) {
  EXPECT_TRUE(valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(valid_websocket_key(websocket_key({})));
  EXPECT_TRUE(valid_websocket_key("+/+/AAAAAAAAAAAAAAzz9w=="));
  EXPECT_FALSE(valid_websocket_key(""));
  EXPECT_FALSE(valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ="));    // 23 characters
  EXPECT_FALSE(valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==="));  // 25
  EXPECT_FALSE(valid_websocket_key("dGhlIHNhbXBsZSBub25jZQAA"));   // 18 bytes, no padding
  EXPECT_FALSE(valid_websocket_key("dGhlIHNhbXBsZSBub25jZ-=="));   // not the base64 alphabet
  EXPECT_FALSE(valid_websocket_key("dGhlIHNhbXBsZSBub25jZ =="));
  EXPECT_FALSE(valid_websocket_key("dGhlIHNhbXBsZSBub25j===="));   // 15 bytes
}

}  // namespace
}  // namespace gantry::http
