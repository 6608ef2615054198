// gRPC over HTTP/2 as the gateway sees it: which requests are gRPC, their
// deadline (`grpc-timeout`), and the status the gateway answers them with.
//
// Invariants:
// - Pure functions of their arguments; no allocation but the returned string.
// - parse_grpc_timeout() accepts exactly the grammar of gRPC's PROTOCOL-HTTP2
//   (1 to 8 ASCII digits, then one unit of H M S m u n) and nothing else; a
//   value that does not parse is no deadline (the field is forwarded as sent).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace gantry::exchange {

// content-type application/grpc, application/grpc+proto, application/grpc;...
// (not gRPC-Web, whose type is application/grpc-web*).
bool is_grpc_content_type(std::string_view content_type);

// The `grpc-timeout` value as a duration, rounded up to whole milliseconds
// (1n is 1 ms: a deadline never moves earlier than 0). Nullopt: malformed.
std::optional<std::chrono::milliseconds> parse_grpc_timeout(std::string_view value);

// A `grpc-timeout` value for `left` (negative counts as 0): milliseconds
// while they fit the 8 digits, else seconds, minutes or hours (rounded down).
std::string format_grpc_timeout(std::chrono::milliseconds left);

// The gRPC status the gateway answers a gRPC request with instead of HTTP
// status `status` (a trailers-only answer). Envoy's table (the official
// HTTP → gRPC mapping: 400 INTERNAL 13, 401 UNAUTHENTICATED 16, 403
// PERMISSION_DENIED 7, 404 UNIMPLEMENTED 12, 429/502/503 UNAVAILABLE 14,
// anything else UNKNOWN 2), except 504: every 504 the gateway answers itself
// is a deadline it enforced (route timeout, grpc-timeout, upstream timeout),
// so it is DEADLINE_EXCEEDED 4.
int grpc_status_for(int status);

// The HTTP status a gRPC status stands for, for the gateway's own accounting
// of gRPC answers (outlier detection, circuit breaking, retry statuses): the
// official mapping of gRPC to HTTP codes, as Envoy's grpcToHttpStatus (OK
// 200, CANCELLED 499, INVALID_ARGUMENT/FAILED_PRECONDITION/OUT_OF_RANGE 400,
// DEADLINE_EXCEEDED 504, NOT_FOUND 404, ALREADY_EXISTS/ABORTED 409,
// PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429, UNIMPLEMENTED 501,
// UNAVAILABLE 503, UNAUTHENTICATED 401; UNKNOWN, INTERNAL, DATA_LOSS and any
// other value 500).
int http_status_for_grpc(int grpc_status);

// Percent-encodes a grpc-message value (gRPC over HTTP/2: bytes outside
// 0x20-0x7E and '%' are escaped).
std::string grpc_message_encode(std::string_view text);

// The gRPC health checking protocol (grpc.health.v1), for active health
// checks: the request message of Health/Check for `service`, framed as one
// uncompressed gRPC message (5-byte prefix, then the protobuf encoding of
// HealthCheckRequest{service = 1}).
std::string grpc_health_check_request(std::string_view service);

// HealthCheckResponse.ServingStatus (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING,
// 3 SERVICE_UNKNOWN) of a response body holding exactly one uncompressed
// gRPC message; -1 when the body is not that (truncated, compressed, several
// messages, a malformed protobuf). Unknown fields are skipped; an absent
// status field is UNKNOWN (0), protobuf's default.
int grpc_health_status(std::string_view body);

}  // namespace gantry::exchange
