// WebSocket handshake digest: see websocket.h.
#include "proxy/http/websocket.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace gantry::http {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string base64(const uint8_t* p, size_t n) {
  std::string out(4 * ((n + 2) / 3), '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

}  // namespace

std::string websocket_key(const std::array<uint8_t, 16>& nonce) { return base64(nonce.data(), nonce.size()); }

bool valid_websocket_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (char c : key.substr(0, 22))
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
      return false;
  return true;
}

std::string websocket_accept(std::string_view key) {
  std::string in(key);
  in.append(kGuid);
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  return base64(digest, sizeof digest);
}

}  // namespace gantry::http
