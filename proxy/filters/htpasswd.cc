#include "proxy/filters/htpasswd.h"

#include <set>

namespace gantry::filters {

namespace {

// crypt(3)'s alphabet ("./0-9A-Za-z"), the characters of salts and digests.
bool crypt_chars(std::string_view s) {
  for (char c : s) {
    bool ok = c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
              (c >= 'a' && c <= 'z');
    if (!ok) return false;
  }
  return true;
}

bool bcrypt_shape(std::string_view h) {
  // $2b$NN$ + 22 salt characters + 31 digest characters.
  if (h.size() != 60 || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$') return false;
  if (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') return false;
  if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9') return false;
  int cost = (h[4] - '0') * 10 + (h[5] - '0');
  return cost >= 4 && cost <= 31 && crypt_chars(h.substr(7));
}

// $5$[rounds=N$]salt$digest or $6$...: salt up to 16 characters, digest 43 / 86.
bool sha_crypt_shape(std::string_view h, char id) {
  if (h.size() < 4 || h[0] != '$' || h[1] != id || h[2] != '$') return false;
  std::string_view rest = h.substr(3);
  if (rest.starts_with("rounds=")) {
    auto d = rest.find('$');
    if (d == std::string_view::npos) return false;
    std::string_view n = rest.substr(7, d - 7);
    if (n.empty() || n.size() > 10 || n.find_first_not_of("0123456789") != std::string_view::npos) return false;
    rest.remove_prefix(d + 1);
  }
  auto d = rest.find('$');
  if (d == std::string_view::npos || d > 16) return false;
  std::string_view salt = rest.substr(0, d), digest = rest.substr(d + 1);
  if (salt.find_first_of(":\n") != std::string_view::npos) return false;
  size_t want = id == '5' ? 43 : 86;
  return digest.size() == want && crypt_chars(digest);
}

std::string refused_why(std::string_view hash) {
  if (hash.starts_with("$apr1$")) return "MD5 ($apr1$) hashes are refused: re-create it with htpasswd -B (bcrypt)";
  if (hash.starts_with("$1$")) return "MD5 crypt ($1$) hashes are refused: re-create it with htpasswd -B (bcrypt)";
  if (hash.starts_with("{SHA}")) return "unsalted SHA-1 ({SHA}) hashes are refused: re-create it with htpasswd -B (bcrypt)";
  if (hash.starts_with("$2") || hash.starts_with("$5$") || hash.starts_with("$6$")) return "malformed hash";
  if (hash.starts_with("$")) return "unsupported hash scheme (want bcrypt, SHA-256 or SHA-512 crypt)";
  return "plain-text or DES crypt passwords are refused: re-create it with htpasswd -B (bcrypt)";
}

}  // namespace

std::string_view accepted_hash_scheme(std::string_view h) {
  if (bcrypt_shape(h)) return "bcrypt";
  if (sha_crypt_shape(h, '5')) return "sha256-crypt";
  if (sha_crypt_shape(h, '6')) return "sha512-crypt";
  return {};
}

HtpasswdResult parse_htpasswd(std::string_view text) {
  HtpasswdResult out;
  std::set<std::string, std::less<>> seen;
  size_t line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t lead = line.find_first_not_of(" \t");
    if (lead == std::string_view::npos || line[lead] == '#') continue;
    std::string where("line ");  // appended: GCC PR 105329 (false -Wrestrict at -O3)
    where.append(std::to_string(line_no)).append(": ");
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      out.problems.push_back(where + "not user:hash");
      continue;
    }
    std::string_view name = line.substr(0, colon), hash = line.substr(colon + 1);
    bool bad_name = false;
    for (unsigned char c : name) bad_name = bad_name || c < 0x20 || c == 0x7f;
    if (bad_name) {
      out.problems.push_back(where + "the user name has control characters");
      continue;
    }
    where.append("user \"").append(name).append("\": ");
    if (accepted_hash_scheme(hash).empty()) {
      out.problems.push_back(where + refused_why(hash));
      continue;
    }
    if (seen.count(name)) {
      out.problems.push_back(where + "listed again; the first line wins");
      continue;
    }
    seen.emplace(name);
    out.users.push_back({std::string(name), std::string(hash)});
  }
  return out;
}

}  // namespace gantry::filters
