// HTTP Basic authentication against crypt(3) hashes (filters.basicAuth).
//
// verify(user, password) runs crypt_rn(3) (libxcrypt: bcrypt, SHA-256/512
// crypt) with the user's stored hash as the setting and compares the result
// with the hash in constant time (CRYPTO_memcmp). bcrypt is slow by design
// (cost 10 ≈ 50-100 ms), so successful verifications are remembered: keyed by
// SHA-256("user:password"), never the password itself, at most
// `max_remembered` in 16 locked shards (a full shard is emptied). A failure is
// never remembered. The memory belongs to the verifier, which lives as long as
// the snapshot's filter: new users or hashes start an empty memory.
// Thread-safe; no I/O.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "proxy/snapshot/model.h"

namespace gantry::filters {

// "Basic <base64(user:password)>" (scheme case-insensitive) → user, password.
std::optional<std::pair<std::string, std::string>> basic_credentials(std::string_view authorization);

class BasicAuthVerifier {
 public:
  explicit BasicAuthVerifier(const std::vector<snapshot::BasicAuthUser>& users, size_t max_remembered = 4096);

  // The index of the user whose hash `password` verifies against, or nullopt.
  std::optional<size_t> verify(std::string_view user, std::string_view password) const;

  struct Stats {
    uint64_t crypt_calls = 0;
    uint64_t remembered_hits = 0;
  };
  Stats stats() const;

 private:
  bool run_crypt(std::string_view password, const std::string& stored) const;
  using Digest = std::array<unsigned char, 32>;
  struct DigestHash {
    size_t operator()(const Digest& d) const;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<Digest, size_t, DigestHash> ok;  // digest → user index
  };
  std::unordered_map<std::string, size_t> index_;  // user → position in users_
  std::vector<snapshot::BasicAuthUser> users_;
  size_t per_shard_;
  mutable std::array<Shard, 16> shards_;
  mutable std::atomic<uint64_t> crypt_calls_{0};
  mutable std::atomic<uint64_t> remembered_hits_{0};
};

}  // namespace gantry::filters
