// The WebSocket opening handshake's digest (RFC 6455 4.1-4.2), for a gateway
// that makes the HTTP/1.1 handshake itself: an HTTP/2 client's extended
// CONNECT (RFC 8441) carries no Sec-WebSocket-Key, so the proxy sends one of
// its own to the HTTP/1.1 backend and checks the 101's Sec-WebSocket-Accept.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace gantry::http {

// Sec-WebSocket-Key: 16 bytes (from the caller's random source) in base64, 24 characters.
std::string websocket_key(const std::array<uint8_t, 16>& nonce);

// Sec-WebSocket-Accept for `key`: base64(SHA-1(key + the RFC's GUID)).
std::string websocket_accept(std::string_view key);

}  // namespace gantry::http
