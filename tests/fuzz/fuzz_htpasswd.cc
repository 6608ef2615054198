// Fuzzes the htpasswd parser (proxy/filters/htpasswd.h) and Basic credential
// decoding (proxy/filters/basic_auth.h). Invariants: every accepted user has
// a name without ':' or control characters and a hash accepted_hash_scheme()
// recognises; names are unique; each problem names its line; a user never
// comes from a blank or comment line. basic_credentials() never yields a user
// name with ':'.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "proxy/filters/basic_auth.h"
#include "proxy/filters/htpasswd.h"

using namespace gantry::filters;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  HtpasswdResult r = parse_htpasswd(text);
  std::set<std::string> names;
  for (const auto& u : r.users) {
    check(!u.name.empty());
    check(u.name.find(':') == std::string::npos);
    for (unsigned char c : u.name) check(c >= 0x20 && c != 0x7f);
    check(!accepted_hash_scheme(u.hash).empty());
    check(u.hash.find('\n') == std::string::npos);
    check(names.insert(u.name).second);
  }
  for (const auto& p : r.problems) check(p.starts_with("line "));
  size_t lines = 1;
  for (char c : text) lines += c == '\n';
  check(r.users.size() + r.problems.size() <= lines);

  if (auto c = basic_credentials(text)) check(c->first.find(':') == std::string::npos);
  return 0;
}
