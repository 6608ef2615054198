// The WebSocket opening handshake's digest (RFC 6455 4.1-4.2), for a gateway
// that makes one side of the HTTP/1.1 handshake itself:
// - an HTTP/2 client's extended CONNECT (RFC 8441) carries no
//   Sec-WebSocket-Key, so the proxy sends one of its own to the HTTP/1.1
//   backend and checks the 101's Sec-WebSocket-Accept;
// - an HTTP/1.1 client's Upgrade to an HTTP/2 backend goes on as an extended
//   CONNECT without the key, so the proxy answers the client's key itself.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace gantry::http {

// Sec-WebSocket-Key: 16 bytes (from the caller's random source) in base64, 24 characters.
std::string websocket_key(const std::array<uint8_t, 16>& nonce);

// Whether `key` is a Sec-WebSocket-Key a server may answer (RFC 6455 4.2.1):
// 16 bytes in base64, so 22 characters of the base64 alphabet and "==".
bool valid_websocket_key(std::string_view key);

// Sec-WebSocket-Accept for `key`: base64(SHA-1(key + the RFC's GUID)).
std::string websocket_accept(std::string_view key);

}  // namespace gantry::http
