#include "proxy/filters/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>
#include <memory>

namespace gantry::filters {

namespace {

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Standard base64 with padding (RFC 4648 section 4), as Basic credentials are.
std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > 8192) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = in.ends_with("==") ? 2 : in.ends_with("=") ? 1 : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace

std::optional<std::pair<std::string, std::string>> basic_credentials(std::string_view h) {
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  auto sp = h.find(' ');
  if (sp == std::string_view::npos || !iequals_ascii(h.substr(0, sp), "basic")) return std::nullopt;
  std::string_view b64 = h.substr(sp + 1);
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  while (!b64.empty() && (b64.back() == ' ' || b64.back() == '\t')) b64.remove_suffix(1);
  auto raw = base64_decode(b64);
  if (!raw) return std::nullopt;
  auto colon = raw->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(raw->substr(0, colon), raw->substr(colon + 1));
}

size_t BasicAuthVerifier::DigestHash::operator()(const Digest& d) const {
  size_t h;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

BasicAuthVerifier::BasicAuthVerifier(const std::vector<snapshot::BasicAuthUser>& users, size_t max_remembered)
    : users_(users), per_shard_(std::max<size_t>(1, max_remembered / 16)) {
  for (size_t i = 0; i < users_.size(); ++i) index_.emplace(users_[i].name, i);  // first wins
}

std::optional<size_t> BasicAuthVerifier::verify(std::string_view user, std::string_view password) const {
  auto it = index_.find(std::string(user));
  if (it == index_.end()) {
    // An unknown user costs a crypt as a known one does (against the first
    // user's hash, the result thrown away): the answer's time does not tell
    // which user names exist.
    if (!users_.empty()) (void)run_crypt(password, users_.front().hash);
    return std::nullopt;
  }
  const std::string& stored = users_[it->second].hash;

  Digest key;
  std::string credential;
  credential.reserve(user.size() + 1 + password.size());
  credential.append(user).append(":").append(password);
  SHA256(reinterpret_cast<const unsigned char*>(credential.data()), credential.size(), key.data());
  OPENSSL_cleanse(credential.data(), credential.size());
  Shard& s = shards_[key[8] & 15];
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto hit = s.ok.find(key);
    if (hit != s.ok.end() && hit->second == it->second) {
      remembered_hits_.fetch_add(1, std::memory_order_relaxed);
      return it->second;
    }
  }

  if (!run_crypt(password, stored)) return std::nullopt;
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.ok.size() >= per_shard_) s.ok.clear();
  s.ok[key] = it->second;
  return it->second;
}

bool BasicAuthVerifier::run_crypt(std::string_view password, const std::string& stored) const {
  // A password with a NUL would be cut short by crypt: never equal.
  if (password.find('\0') != std::string_view::npos || password.size() > 1024) return false;
  thread_local std::unique_ptr<crypt_data> data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  std::string phrase(password);
  const char* out = crypt_rn(phrase.c_str(), stored.c_str(), data.get(), sizeof(crypt_data));
  OPENSSL_cleanse(phrase.data(), phrase.size());
  crypt_calls_.fetch_add(1, std::memory_order_relaxed);
  if (out == nullptr || out[0] == '*') return false;
  size_t n = std::strlen(out);
  return n == stored.size() && CRYPTO_memcmp(out, stored.data(), n) == 0;
}

BasicAuthVerifier::Stats BasicAuthVerifier::stats() const {
  return {crypt_calls_.load(std::memory_order_relaxed), remembered_hits_.load(std::memory_order_relaxed)};
}

}  // namespace gantry::filters
