#include "proxy/exchange/default_backend.h"

#include <algorithm>
#include <array>

#include "proxy/http/message.h"

namespace gantry::exchange {

namespace {

void field(std::string& out, std::string_view name, std::string_view value) {
  if (value.empty()) return;  // nginx: proxy_set_header with an empty value sends nothing
  out.append(name).append(": ").append(value).append("\r\n");
}

// Fields of the sent head that the request to the default backend sets itself.
constexpr std::array<std::string_view, 15> kReplaced = {
    "host",           "content-length", "transfer-encoding", "connection",     "upgrade",
    "x-code",         "x-format",       "x-original-uri",    "x-namespace",    "x-ingress-name",
    "x-service-name", "x-service-port", "x-request-id",      "x-forwarded-for", "expect"};

}  // namespace

bool intercepts(const snapshot::DefaultBackend& d, int status) {
  return std::find(d.intercept_statuses.begin(), d.intercept_statuses.end(), status) != d.intercept_statuses.end();
}

std::string error_page_head(const snapshot::DefaultBackend& d, const ErrorPageRequest& r) {
  std::string_view head = r.sent_head;
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::string out(line.substr(0, line.find(' ')));  // the method
  out.append(" /");
  if (!r.query.empty()) out.append("?").append(r.query);
  out.append(" HTTP/1.1\r\n");
  field(out, "host", r.host);
  field(out, "x-code", std::to_string(r.code));
  std::string_view accept;
  // The sent fields: Accept for X-Format, the others passed on.
  std::string rest;
  size_t at = eol == std::string_view::npos ? head.size() : eol + 2;
  while (at < head.size()) {
    size_t end = head.find("\r\n", at);
    if (end == std::string_view::npos) end = head.size();
    std::string_view f = head.substr(at, end - at);
    at = end + 2;
    if (f.empty()) break;  // the end of the head
    size_t colon = f.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = f.substr(0, colon);
    if (http::iequals(name, "accept") && accept.empty()) {
      accept = f.substr(colon + 1);
      while (!accept.empty() && (accept.front() == ' ' || accept.front() == '\t')) accept.remove_prefix(1);
    }
    if (std::any_of(kReplaced.begin(), kReplaced.end(), [&](std::string_view n) { return http::iequals(name, n); }))
      continue;
    rest.append(f).append("\r\n");
  }
  field(out, "x-format", accept);
  field(out, "x-original-uri", r.original_uri);
  field(out, "x-namespace", d.namespace_);
  field(out, "x-ingress-name", d.ingress_name);
  field(out, "x-service-name", d.service_name);
  field(out, "x-service-port", d.service_port);
  field(out, "x-request-id", r.request_id);
  field(out, "x-forwarded-for", r.client_ip);
  out.append(rest);
  if (r.with_body) out.append("content-length: ").append(std::to_string(r.body_size)).append("\r\n");
  out.append("\r\n");
  return out;
}

}  // namespace gantry::exchange
