// Fuzzes extAuth's Envoy ext_authz CheckResponse decoder and gRPC unframing
// (proxy/filters/ext_authz_proto.h) with arbitrary bytes, as a service or
// anything in its place could answer. Invariants: no crash, no read past the
// input (ASan), and a decoded answer's strings are no longer than the input;
// a decoded header has a known action.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/filters/ext_authz_proto.h"

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace ea = gantry::filters::ext_authz;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string why;
  ea::CheckResult r;
  if (ea::decode_check_response(in, r, why)) {
    check(why.empty());
    check(r.message.size() <= size && r.body.size() <= size);
    for (const auto& h : r.headers) {
      check(h.key.size() + h.value.size() <= size);
      check(h.action <= ea::HeaderOp::Action::kOverwriteIfExists);
    }
  } else {
    check(!why.empty());
  }
  std::string_view msg;
  std::string why2;
  if (ea::grpc_unframe(in, msg, why2)) {
    check(msg.size() + 5 == size);
    check(ea::grpc_frame(msg) == in);
  }
  return 0;
}
