// HTTP/2 downstream codec: one client connection's libnghttp2 server session,
// turned into stream events (request head, body, trailers, close) and taking
// response events (head, body, trailers, reset). Sans-I/O: the caller feeds the
// bytes it read with receive() and writes what output() gives it; the codec
// never touches a socket, so it is unit-tested and fuzzed without one.
//
// Invariants:
// - Bounded memory whatever the peer does. Request bodies: the codec never
//   opens a flow-control window by itself; a stream's window reopens only as
//   the handler calls consume() for bytes it has passed on, so a slow upstream
//   stops the client at `stream_window` per stream and `connection_window` per
//   connection. Response bodies: send_data() accepts at most
//   `response_buffer` bytes per stream beyond what the client's window let
//   out, and output() serialises at most `output_high_water` bytes ahead of the
//   socket, so a slow reader stops the upstream instead of growing a buffer.
// - Limits a peer cannot talk its way around: SETTINGS_MAX_CONCURRENT_STREAMS
//   (default 100), the header list size (enforced here: nghttp2 only
//   advertises it; an oversized request gets 431), CONTINUATION frames per
//   header block, and flood counters for empty frames, PING, SETTINGS,
//   WINDOW_UPDATE, PRIORITY and streams reset before their answer (Rapid
//   Reset, CVE-2023-44487). A flood ends the connection with GOAWAY
//   ENHANCE_YOUR_CALM; a malformed request ends its stream with
//   RST_STREAM PROTOCOL_ERROR and the connection goes on.
// - Request heads reach the handler validated: pseudo-headers present,
//   connection-specific headers rejected, :authority equal to Host when both
//   are sent, crumbled cookies joined with "; " (RFC 9113 8.2.3).
// - Handler callbacks run inside receive() (request events) or output()
//   (on_writable, deferred until serialisation is done); the handler may call
//   any response method from them. After on_closed(id) no call names id again,
//   and response calls for a closed stream are ignored.
// - Extended CONNECT (RFC 8441): SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 is
//   advertised and `:protocol` reaches the handler (RequestHead::protocol).
//   A 2xx answer to a CONNECT opens a tunnel: its END_STREAM is a half-close
//   (the client may go on sending until it ends its side), not an answer
//   given before the request's end.
// - Drain is two-step (RFC 9113 6.8): drain() sends GOAWAY with the maximum
//   stream id and a PING; when the PING is acknowledged (or finish_drain() is
//   called) a second GOAWAY names the last stream that will be served. Streams
//   in flight finish; the connection is done() when they have.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"

namespace gantry::http2 {

// RFC 9113 error codes used by the codec and its callers.
enum class ErrorCode : uint32_t {
  kNoError = 0x0,
  kProtocolError = 0x1,
  kInternalError = 0x2,
  kFlowControlError = 0x3,
  kStreamClosed = 0x5,
  kFrameSizeError = 0x6,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kCompressionError = 0x9,
  kConnectError = 0xa,
  kEnhanceYourCalm = 0xb,
};

// The client connection preface (RFC 9113 3.4). A cleartext listener serves
// h2c with prior knowledge when a connection starts with it.
inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// The first bytes of a cleartext connection against the client preface:
// kPartial while they are a proper prefix of it (read more), kFull when they
// start with all of it, kNo otherwise (another protocol, e.g. HTTP/1.1).
enum class PrefaceMatch { kNo, kPartial, kFull };
inline PrefaceMatch match_preface(std::string_view first_bytes) {
  if (first_bytes.size() >= kClientPreface.size())
    return first_bytes.substr(0, kClientPreface.size()) == kClientPreface ? PrefaceMatch::kFull : PrefaceMatch::kNo;
  return kClientPreface.substr(0, first_bytes.size()) == first_bytes ? PrefaceMatch::kPartial : PrefaceMatch::kNo;
}

struct Limits {
  uint32_t max_concurrent_streams = 100;
  // Sum over fields of name + value + 32 (RFC 9113 6.5.2), per header block.
  uint32_t max_header_list_bytes = 64 * 1024;
  // Receive windows, raised from the protocol's 64 KiB default: they bound
  // what a client may send ahead of the upstream.
  uint32_t stream_window = 256 * 1024;
  uint32_t connection_window = 1024 * 1024;
  // Response body bytes held per stream beyond the client's window.
  size_t response_buffer = 64 * 1024;
  // output() stops serialising frames past this many unwritten bytes.
  size_t output_high_water = 64 * 1024;
  // CONTINUATION frames after one HEADERS frame (CVE-2024-28182).
  uint32_t max_continuations = 8;
  // Flood counters (each exceeded -> GOAWAY ENHANCE_YOUR_CALM):
  uint32_t max_consecutive_empty_frames = 10;  // DATA/HEADERS/CONTINUATION without payload or end
  uint32_t ping_burst = 50;                    // PING and SETTINGS: token buckets,
  uint32_t ping_per_second = 5;                //   refilled per second
  // Beyond its bucket, a PING is also allowed in proportion to the traffic:
  // gRPC clients (grpc-go's BDP estimator) send one each time DATA arrives
  // and none is outstanding, hundreds per second on a busy connection. At
  // most per_stream * streams opened + per_data_frame * DATA frames sent:
  // a flood then costs its sender real requests, and the ACKs stay in
  // proportion to what the connection carries.
  uint32_t ping_per_stream = 1;
  uint32_t ping_per_data_frame = 1;
  uint32_t settings_burst = 50;
  uint32_t settings_per_second = 5;
  // WINDOW_UPDATE and PRIORITY are only useful in proportion to what the
  // connection carries: at most base + per_stream * streams opened +
  // per_data_frame * DATA frames sent.
  uint32_t window_update_base = 100;
  uint32_t window_update_per_stream = 2;
  uint32_t window_update_per_data_frame = 2;
  uint32_t priority_base = 100;
  uint32_t priority_per_stream = 10;
  // Rapid Reset: a connection whose client reset at least this many streams
  // before their answer, and at least half of all its streams, is ended.
  uint32_t premature_reset_limit = 100;
  // SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441) is advertised.
  bool connect_protocol = true;
};

struct Field {
  std::string name;  // lower case
  std::string value;
};

// A field of an answer as respond() takes it: views, read during the call
// only (the codec copies them), so an answer relayed from an HTTP/1.1
// upstream goes out without copying its fields first.
struct FieldView {
  std::string_view name;
  std::string_view value;
};

struct RequestHead {
  std::string method;
  std::string scheme;
  std::string authority;  // :authority, or Host when :authority is absent
  std::string path;       // :path as sent (empty for a plain CONNECT)
  std::vector<Field> headers;  // regular fields in order; cookies joined into one
  std::optional<uint64_t> content_length;
  // :protocol of an extended CONNECT (RFC 8441, e.g. "websocket"); empty
  // otherwise. Accepted because the codec advertises
  // SETTINGS_ENABLE_CONNECT_PROTOCOL = 1; nghttp2 checks that it comes with
  // :method CONNECT, :scheme, :path and :authority.
  std::string protocol;
};

// What the codec tells its user. Stream ids are the client's (odd, > 0).
class Handler {
 public:
  virtual ~Handler() = default;
  // A complete, validated request head. end_stream: no body follows.
  virtual void on_request(int32_t id, RequestHead&& head, bool end_stream) = 0;
  // Body bytes, valid during the call. The window they used reopens only when
  // consume(id, n) is called for them.
  virtual void on_data(int32_t id, std::string_view data) = 0;
  // The request ended (END_STREAM), with its trailers when it had some.
  virtual void on_request_end(int32_t id, const std::vector<Field>* trailers) = 0;
  // The stream is gone: answered in full (kNoError), reset by the client, or
  // reset by the codec. Nothing names this id afterwards.
  virtual void on_closed(int32_t id, ErrorCode code) = 0;
  // send_data() would accept bytes again on this stream.
  virtual void on_writable(int32_t /*id*/) {}
};

struct Counters {
  uint64_t streams_opened = 0;
  uint64_t premature_resets = 0;
  uint64_t data_frames_sent = 0;
  uint64_t pings = 0;
  uint64_t settings = 0;
  uint64_t window_updates = 0;
  uint64_t priorities = 0;
};

class ServerSession {
 public:
  // Milliseconds on a monotonic clock; tests pass a fixed one.
  using Clock = uint64_t (*)();

  static Result<std::unique_ptr<ServerSession>> create(const Limits& limits, Handler& handler,
                                                       Clock clock = nullptr);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Feeds bytes read from the client (the preface first). An error means the
  // connection is over: flush output() (it may hold a GOAWAY), then close.
  Status receive(std::string_view bytes);

  // Bytes to write to the client, serialised up to output_high_water; call
  // written(n) for what the socket took. Empty when there is nothing to send.
  std::string_view output();
  void written(size_t n);

  // Response side. Names are sent in lower case (an HTTP/1.1 upstream's
  // are lowered here); connection-specific fields (Connection, Keep-Alive,
  // Proxy-Connection, Transfer-Encoding, Upgrade, TE) are dropped. Calls
  // for a stream that is not open are ignored.
  void respond(int32_t id, int status, std::span<const FieldView> headers, bool end_stream);
  void respond(int32_t id, int status, std::span<const Field> headers, bool end_stream);
  // Accepts up to room(id) bytes; returns how many it took.
  size_t send_data(int32_t id, std::string_view data);
  size_t room(int32_t id) const;
  // Ends the response body, with trailers when given (non-empty).
  void end_response(int32_t id, std::span<const Field> trailers = {});
  void reset(int32_t id, ErrorCode code);
  // Request body bytes passed on: their flow-control window reopens.
  void consume(int32_t id, size_t n);

  void drain();         // step one: GOAWAY(2^31-1) + PING
  void finish_drain();  // step two now, without waiting for the PING ack
  bool draining() const;

  // No stream open, nothing more to read or write: close the connection.
  bool done() const;
  size_t open_streams() const;
  // While no stream is open and nothing is queued to send: gives the pages of
  // the session's large buffers back to the kernel (session_memory.h) and
  // returns how many bytes that was; otherwise does nothing and returns 0.
  // For a connection that has been idle a while (each call costs a system
  // call or two).
  size_t release_idle_memory();
  // Hibernation, for a connection that has been idle a while: the libnghttp2
  // session (its state, HPACK tables, stream map and buffers, ~10 KiB) is
  // deleted and the few numbers that matter kept (the client's settings, the
  // connection windows, the last stream id); the next receive() or drain()
  // makes a new session from them, which the client cannot tell apart.
  // HPACK: the new session's encoder starts with a dynamic table size update
  // to 0 (the client empties its table of ours); the client's own table, when
  // it indexed fields, is emptied first by SETTINGS_HEADER_TABLE_SIZE = 0
  // (RFC 7541 4.2: once that is acknowledged, its next header block starts
  // with a size update to 0), raised back to 4,096 with its next request.
  // While no stream is open and nothing is queued or half received: when no
  // such SETTINGS is needed, or it has been acknowledged, hibernates now
  // (true); otherwise queues it (write output()) and the session hibernates
  // by itself when the acknowledgement arrives with the connection still
  // idle (false).
  bool hibernate();
  bool hibernated() const;
  // The error code of the GOAWAY the codec sent to end the connection, if any.
  std::optional<ErrorCode> goaway_sent() const;
  // The error code of the last GOAWAY the client sent, if any.
  std::optional<ErrorCode> goaway_received() const;
  const Counters& counters() const;

  struct Impl;

 private:
  explicit ServerSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::http2
