// Fuzzes filters::dechunk (the response cache's decoding of a captured
// chunked body) against http::ChunkedDecoder: whenever the streaming decoder
// accepts a whole body, dechunk of exactly those bytes must succeed and yield
// as many payload bytes as the decoder counted; dechunk never reads past its
// input whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/filters/response_capture.h"
#include "proxy/http/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string any;
  (void)gantry::filters::dechunk(in, any);  // must not crash on arbitrary bytes

  gantry::http::ChunkedDecoder d;
  auto step = d.feed(in);
  if (!step.ok() || !step->done) return 0;
  std::string out;
  if (!gantry::filters::dechunk(in.substr(0, step->consumed), out)) std::abort();
  if (out.size() != d.data_bytes()) std::abort();
  return 0;
}
