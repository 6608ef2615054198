// The server name (SNI) of a TLS ClientHello, read from the bytes a client
// sent before any TLS library sees them: TLS passthrough (snapshot
// `passthrough`, docs/http.md) decides from it whether a connection is
// relayed as raw TCP or terminated here.
//
// Pure and bounded: the input is only ever the bytes received so far; the
// parser reads the record layer (handshake records, a ClientHello split over
// several records included), the handshake header and the ClientHello up to
// its extensions, and never reads past `bytes` or past kMaxClientHello
// bytes of handshake message (kMaxClientHelloBytes of input).
// Fuzzed (fuzz_client_hello), table-tested (tests/unit/tls).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gantry::tls {

// The largest ClientHello body accepted (after its 4-byte handshake header).
// Real ones are a few hundred bytes to ~2 KiB (post-quantum key shares);
// TLS allows 16 MiB, nobody sends that.
constexpr size_t kMaxClientHello = 32 * 1024;
// The most input bytes parse_client_hello() asks for: the message, its
// handshake header and the headers of the records it is split over. A hello
// still incomplete at this size is kNotHello (however it is split).
constexpr size_t kMaxClientHelloBytes = kMaxClientHello + 8 * 1024;

enum class HelloStatus {
  kNeedMore,  // a prefix of a ClientHello: read more (up to kMaxClientHelloBytes)
  kDone,      // a complete ClientHello; `server_name` is its SNI ("" without one)
  kNotHello,  // not a TLS ClientHello, malformed, or too large
};

struct ClientHello {
  HelloStatus status = HelloStatus::kNeedMore;
  // Lower case, without a trailing dot; empty when the hello has no
  // server_name extension, or its host_name is not a valid DNS name
  // (letters, digits, '-', '_', '.', at most 253 bytes).
  std::string server_name;
  std::string_view why;  // kNotHello: what is wrong (for logs and tests)
};

// Parses the bytes a client sent first. kNeedMore: `bytes` is a valid
// prefix; call again with more. The result depends only on `bytes`.
ClientHello parse_client_hello(std::string_view bytes);

}  // namespace gantry::tls
