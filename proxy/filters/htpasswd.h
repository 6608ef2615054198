// htpasswd files (Apache's format, what `htpasswd` writes): one
// `user:hash` per line. The controller reads a basicAuth Secret with this;
// the proxy gets only the accepted users (snapshot::BasicAuthUser).
//
// Accepted hashes: bcrypt ($2a$, $2b$, $2y$) and SHA-256 / SHA-512 crypt
// ($5$, $6$), which crypt_rn(3) of libxcrypt verifies. Refused, each with its
// line: Apache MD5 ($apr1$), MD5 crypt ($1$), {SHA} (unsalted SHA-1), plain
// text and anything else (DES crypt, yescrypt, ...). Blank lines and lines
// starting with '#' are skipped. Pure: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gantry::filters {

struct HtpasswdUser {
  std::string name;
  std::string hash;
};

struct HtpasswdResult {
  std::vector<HtpasswdUser> users;     // in file order, first line of a name wins
  std::vector<std::string> problems;   // "line 3: user \"bob\": MD5 ($apr1$) hashes are refused ..."
};

HtpasswdResult parse_htpasswd(std::string_view text);

// The scheme of a crypt(3) hash as a short name ("bcrypt", "sha256-crypt",
// "sha512-crypt"), or empty when it is not one gantry accepts.
std::string_view accepted_hash_scheme(std::string_view hash);

}  // namespace gantry::filters
