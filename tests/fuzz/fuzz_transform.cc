// Fuzzes filters.transform's converter (proxy/filters/transform.h) in both
// directions. The first byte picks the direction. Invariants: no crash, no
// unbounded recursion; a failure always has an error text; a DOCTYPE is
// never accepted; XML → JSON output is valid JSON; JSON → XML output parses
// back as XML (and so converts to JSON again); Accept / Content-Type parsing
// never crashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "proxy/filters/transform.h"

using namespace gantry::filters;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

// A DOCTYPE declaration in the markup (the parser refuses them); the same
// characters inside a CDATA section, a comment or a processing instruction
// (`<?x <!DOCTYPE ?>`) are not a declaration.
bool has_doctype(std::string_view text) {
  std::string markup;
  for (size_t i = 0; i < text.size();) {
    std::string_view close;
    if (text.substr(i, 9) == "<![CDATA[") close = "]]>";
    else if (text.substr(i, 4) == "<!--") close = "-->";
    else if (text.substr(i, 2) == "<?") close = "?>";
    if (!close.empty()) {
      size_t end = text.find(close, i + 2);
      if (end == std::string_view::npos) break;
      i = end + close.size();
    } else {
      markup += text[i++];
    }
  }
  return markup.find("<!DOCTYPE") != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool to_xml = (data[0] & 1) != 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)media_format(text);
  (void)accept_preference(text);
  std::string out;
  if (to_xml) {
    TransformResult r = json_to_xml(text, TransformOptions{}, out);
    if (!r.ok) {
      check(!r.error.empty());
      return 0;
    }
    std::string json;
    TransformResult back = xml_to_json(out, json);
    check(back.ok);  // what the writer produces is well-formed XML
    check(nlohmann::json::accept(json));
  } else {
    TransformResult r = xml_to_json(text, out);
    if (!r.ok) {
      check(!r.error.empty());
      return 0;
    }
    check(!has_doctype(text));
    check(nlohmann::json::accept(out));
    std::string xml;
    (void)json_to_xml(out, TransformOptions{}, xml);  // may refuse names JSON allows but XML does not
  }
  return 0;
}
