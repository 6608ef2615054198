// What the proxy needs around the response cache store (response_cache.h) to
// use it on the request path: the cache key of a request, the response header
// fields worth storing, the decoding of a captured chunked body, and the host
// a mirrored request is sent with. Pure functions: no sockets, no clock.
//
// Invariants: a cache key names scheme, host and the normalised target (path
// and query as sent), so http and https, two hosts, or two queries never share
// an entry; stored headers never include hop-by-hop fields, fields named by
// Connection, Content-Length (the proxy writes its own from the stored body)
// or X-Request-Id (each answer carries its own request's id).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http/message.h"

namespace gantry::filters {

// "http://host/path?query" (the query part only when not empty).
std::string cache_key(bool tls, std::string_view host, std::string_view path,
                      std::string_view query);

// The end-to-end fields of a response head, as the cache should keep them.
std::vector<std::pair<std::string, std::string>> storable_headers(
    const std::vector<http::Header>& response_headers);

// Appends the payload of a complete chunked body (framing as validated by
// http::ChunkedDecoder; extensions and trailers are dropped) to `out`. False
// when `raw` is not a complete chunked body.
bool dechunk(std::string_view raw, std::string& out);

// The Host a mirrored copy of a request carries: "-shadow" appended to the
// host name, before any port ("api.example.com:8080" -> "api.example.com-shadow:8080"),
// as Envoy does, so the mirror backend can tell copies from real traffic.
std::string shadow_host(std::string_view host);

}  // namespace gantry::filters
