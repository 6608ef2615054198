// Fuzzes kubeconfig parsing (YAML via yaml-cpp, contexts, clusters, users,
// inline base64 data). Relative file references resolve under a directory
// that does not exist, so the fuzzer never reads the machine's files.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "controller/kube/kubeconfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = gantry::controller::kube::parse_kubeconfig(text, "/nonexistent-gantry-fuzz", "fuzz.kubeconfig");
  (void)r;
  return 0;
}
