#include "proxy/tracing/otlp_json.h"

#include <charconv>

namespace gantry::tracing {

namespace {

// Written by hand rather than through a JSON DOM: the encoder runs for every
// exported span, and building the document as objects cost several times
// the request's own instructions (tests/bench/tracing_bench.sh). The unit
// test parses the output back with nlohmann/json.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  Writer& raw(std::string_view s) {
    out_.append(s);
    return *this;
  }
  Writer& str(std::string_view s) {  // a JSON string, escaped
    out_.push_back('"');
    for (char ch : s) {
      auto c = static_cast<unsigned char>(ch);
      if (c == '"' || c == '\\') {
        out_.push_back('\\');
        out_.push_back(ch);
      } else if (c < 0x20 || c == 0x7f) {
        static constexpr char kHex[] = "0123456789abcdef";
        out_.append("\\u00");
        out_.push_back(kHex[c >> 4]);
        out_.push_back(kHex[c & 0xf]);
      } else if (c >= 0x80) {
        out_.push_back('?');  // attribute values are ASCII on the request path; never emit invalid UTF-8
      } else {
        out_.push_back(ch);
      }
    }
    out_.push_back('"');
    return *this;
  }
  Writer& num(uint64_t v, bool quoted) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    if (quoted) out_.push_back('"');
    out_.append(buf, static_cast<size_t>(r.ptr - buf));
    if (quoted) out_.push_back('"');
    return *this;
  }
  Writer& inum(int64_t v) {  // OTLP JSON: int64 as a decimal string
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.push_back('"');
    out_.append(buf, static_cast<size_t>(r.ptr - buf));
    out_.push_back('"');
    return *this;
  }
  template <size_t N>
  Writer& hexid(const std::array<uint8_t, N>& id) {
    char buf[2 * N];
    to_hex(id.data(), N, buf);
    out_.push_back('"');
    out_.append(buf, sizeof buf);
    out_.push_back('"');
    return *this;
  }

 private:
  std::string& out_;
};

void attributes(Writer& w, const Attributes& attrs) {
  w.raw("[");
  bool first = true;
  for (const auto& [k, v] : attrs) {
    if (!first) w.raw(",");
    first = false;
    w.raw("{\"key\":").str(k).raw(",\"value\":{");
    if (const auto* s = std::get_if<std::string>(&v)) w.raw("\"stringValue\":").str(*s);
    else if (const auto* i = std::get_if<int64_t>(&v)) w.raw("\"intValue\":").inum(*i);
    else w.raw(std::get<bool>(v) ? "\"boolValue\":true" : "\"boolValue\":false");
    w.raw("}}");
  }
  w.raw("]");
}

void string_attr(Writer& w, std::string_view key, std::string_view value) {
  w.raw("{\"key\":").str(key).raw(",\"value\":{\"stringValue\":").str(value).raw("}}");
}

}  // namespace

std::string encode_otlp_json(std::span<const Span> spans, std::string_view service_name,
                             std::string_view service_version) {
  std::string out;
  out.reserve(512 + spans.size() * 900);
  Writer w(out);
  w.raw("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  string_attr(w, "service.name", service_name);
  w.raw(",");
  string_attr(w, "service.version", service_version);
  w.raw(",");
  string_attr(w, "telemetry.sdk.name", "gantry");
  w.raw(",");
  string_attr(w, "telemetry.sdk.language", "cpp");
  w.raw("]},\"scopeSpans\":[{\"scope\":{\"name\":\"gantry\",\"version\":").str(service_version).raw("},\"spans\":[");
  bool first = true;
  for (const Span& s : spans) {
    if (!first) w.raw(",");
    first = false;
    w.raw("{\"traceId\":").hexid(s.trace_id).raw(",\"spanId\":").hexid(s.span_id);
    if (s.parent_span_id) w.raw(",\"parentSpanId\":").hexid(*s.parent_span_id);
    if (!s.trace_state.empty()) w.raw(",\"traceState\":").str(s.trace_state);
    w.raw(",\"name\":").str(s.name);
    w.raw(",\"kind\":2");  // SPAN_KIND_SERVER
    w.raw(",\"startTimeUnixNano\":").num(s.start_unix_ns, true);
    w.raw(",\"endTimeUnixNano\":").num(s.end_unix_ns, true);
    w.raw(",\"attributes\":");
    attributes(w, s.attributes);
    if (!s.events.empty()) {
      w.raw(",\"events\":[");
      bool first_event = true;
      for (const auto& e : s.events) {
        if (!first_event) w.raw(",");
        first_event = false;
        w.raw("{\"name\":").str(e.name).raw(",\"timeUnixNano\":").num(e.time_unix_ns, true).raw(",\"attributes\":");
        attributes(w, e.attributes);
        w.raw("}");
      }
      w.raw("]");
    }
    // STATUS_CODE_ERROR = 2; unset otherwise, as the HTTP conventions say for
    // server spans below 500.
    if (s.error) w.raw(",\"status\":{\"code\":2,\"message\":").str(s.status_message).raw("}");
    w.raw("}");
  }
  w.raw("]}]}]}");
  return out;
}

}  // namespace gantry::tracing
