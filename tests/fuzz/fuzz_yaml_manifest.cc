// Fuzz target: arbitrary bytes as a manifest file, then translate the result.
// Neither the YAML parser (which throws), the decoder nor translate may crash,
// and whatever translate emits must pass the proxy's validator.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controller/core/translate.h"
#include "controller/core/yaml_source.h"
#include "proxy/snapshot/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gantry::controller;
  ParsedFile f =
      parse_manifest("fuzz.yaml", std::string_view(reinterpret_cast<const char*>(data), size));
  Cache cache;
  for (auto& o : f.objects) cache.upsert(std::move(o));
  for (const auto& e : f.errors) (void)e.str();
  TranslateResult r = translate(cache, TranslateOptions{});
  r.snapshot.version = 1;
  if (!gantry::snapshot::validate(r.snapshot).empty()) std::abort();
  (void)statuses_to_json(r.statuses);
  return 0;
}
