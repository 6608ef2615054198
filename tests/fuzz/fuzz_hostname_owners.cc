// Fuzzes the hostname-owners ConfigMap parser and the ownership decision
// (controller/core/hostname_ownership.h). Invariants: a parsed table has only
// lower-case keys, each with at least one namespace; deciding ownership over
// claims made of the parsed hostnames keeps or refuses every hostname exactly
// once, and a hostname is kept only for a namespace the table lists.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controller/core/hostname_ownership.h"

using namespace gantry::controller;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto owners = parse_hostname_owners(in);
  if (!owners.ok()) return 0;
  std::vector<HostnameClaim> claims;
  int64_t ts = 0;
  for (const auto& [host, nss] : owners->allowed) {
    check(!nss.empty());
    for (char c : host) check(!(c >= 'A' && c <= 'Z'));
    claims.push_back({"GatewayRoute", nss.front(), "r" + std::to_string(ts), ts, {host}});
    claims.push_back({"GatewayRoute", "intruder", "r" + std::to_string(ts), ts + 1, {host}});
    ts += 2;
  }
  auto verdicts = decide_hostname_ownership(claims, *owners);
  check(verdicts.size() == claims.size());
  for (size_t i = 0; i < claims.size(); ++i) {
    check(verdicts[i].kept.size() + verdicts[i].refused.size() == claims[i].hostnames.size());
    if (i % 2 == 0) check(verdicts[i].refused.empty());
  }
  return 0;
}
