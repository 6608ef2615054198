// filters.defaultBackend's request to the default backend in place of an
// intercepted upstream answer (ingress-nginx's custom error pages, its
// nginx.tmpl `location @custom_<upstream>_<code>`):
//   - the client's method, path "/" with the request's query (`rewrite (.*) / break`);
//   - Host: the client's; X-Code, X-Format (Accept), X-Original-URI,
//     X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port,
//     X-Request-ID and X-Forwarded-For (the client's address), each left out
//     when empty as nginx's proxy_set_header does;
//   - the other fields of the request as it went upstream (nginx passes the
//     client's fields), without its framing and without the X-* above;
//   - the body kept for it (Content-Length: its size) or none.
// Pure: the driver hands it the head it sent upstream.
#pragma once

#include <string>
#include <string_view>

#include "proxy/snapshot/model.h"

namespace gantry::exchange {

struct ErrorPageRequest {
  std::string_view sent_head;     // the upstream request head as sent ("METHOD target HTTP/1.1\r\n...\r\n\r\n")
  int code = 0;                   // X-Code: the intercepted status
  std::string_view host;          // the client's Host / :authority
  std::string_view original_uri;  // X-Original-URI: path and query as requested
  std::string_view query;         // without '?'
  std::string_view client_ip;     // X-Forwarded-For
  std::string_view request_id;    // X-Request-ID
  bool with_body = false;         // the method carries `body_size` bytes (Content-Length)
  uint64_t body_size = 0;
};

// The status of an upstream answer filters.defaultBackend replaces.
bool intercepts(const snapshot::DefaultBackend& d, int status);

// The head of the request to the default backend (ends with the empty line).
std::string error_page_head(const snapshot::DefaultBackend& d, const ErrorPageRequest& r);

}  // namespace gantry::exchange
