// Fuzzes the Kubernetes watch wire format: the stream is cut into lines at
// random split points (the result must not depend on where the bytes were
// cut), each line is parsed as a watch event, and each line also as a list
// response. Nothing may crash; splitting must be deterministic.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "controller/kube/watch_protocol.h"

using gantry::controller::kube::LineSplitter;
using gantry::controller::kube::parse_list;
using gantry::controller::kube::parse_watch_event;
using gantry::controller::kube::status_message;

namespace {

std::vector<std::string> split(std::string_view data, size_t step) {
  std::vector<std::string> lines;
  LineSplitter splitter(1 << 16);
  for (size_t at = 0; at < data.size(); at += step) {
    auto r = splitter.feed(data.substr(at, step), [&](std::string_view line) {
      lines.emplace_back(line);
      return true;
    });
    if (!r.ok()) {
      lines.emplace_back("<error>");
      break;
    }
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t step = 1 + data[0] % 7;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto whole = split(input, input.size() + 1);
  auto pieces = split(input, step);
  // An over-long line errors in both; otherwise the lines must be identical.
  bool whole_err = !whole.empty() && whole.back() == "<error>";
  bool pieces_err = !pieces.empty() && pieces.back() == "<error>";
  if (!whole_err && !pieces_err && whole != pieces) std::abort();
  for (const auto& line : whole) {
    auto ev = parse_watch_event(line);
    (void)ev;
    auto page = parse_list(line, "Service", "v1");
    (void)page;
  }
  (void)status_message(input);
  return 0;
}
