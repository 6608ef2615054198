// HTTP/2 upstream codec: one connection to a backend (h2c or h2 over TLS) as
// a libnghttp2 client session, sans-I/O like ServerSession: requests go out
// as streams multiplexed on the connection, responses come back as events.
// It is the building block of the h2 upstream pools (net/h2_upstream.h).
//
// Invariants:
// - Bounded memory: response windows reopen only as the caller consume()s
//   what it passed downstream; send_data() accepts at most room(id) bytes per
//   stream; output() serialises at most `output_high_water` bytes ahead.
// - request() refuses a stream the connection cannot carry (the server's
//   SETTINGS_MAX_CONCURRENT_STREAMS reached, a GOAWAY received, or stream ids
//   exhausted): the pool then opens another connection.
// - reset(id, kCancel) is how a client cancel reaches the backend
//   (RST_STREAM CANCEL); each direction half-closes on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/http2/server_session.h"

namespace gantry::http2 {

struct ClientLimits {
  uint32_t stream_window = 256 * 1024;
  uint32_t connection_window = 1024 * 1024;
  uint32_t max_header_list_bytes = 64 * 1024;
  size_t request_buffer = 64 * 1024;
  size_t output_high_water = 64 * 1024;
};

class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  // The final response head (1xx heads are skipped). end_stream: no body.
  virtual void on_response(int32_t id, int status, std::vector<Field>&& headers, bool end_stream) = 0;
  virtual void on_data(int32_t id, std::string_view data) = 0;  // consume() it later
  // The response ended, with its trailers when it had some.
  virtual void on_response_end(int32_t id, const std::vector<Field>* trailers) = 0;
  // The stream is gone (kNoError when both directions completed).
  virtual void on_closed(int32_t id, ErrorCode code) = 0;
  virtual void on_writable(int32_t /*id*/) {}
  // The server will not take streams above last_id.
  virtual void on_goaway(int32_t /*last_id*/, ErrorCode /*code*/) {}
};

class ClientSession {
 public:
  static Result<std::unique_ptr<ClientSession>> create(const ClientLimits& limits,
                                                       ClientHandler& handler);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  Status receive(std::string_view bytes);
  std::string_view output();  // the connection preface and SETTINGS come first
  void written(size_t n);

  // Opens a stream for `head` (method, scheme, authority, path, fields). A
  // head with `protocol` is an extended CONNECT (RFC 8441: :method CONNECT,
  // :protocol), refused unless connect_protocol().
  Result<int32_t> request(const RequestHead& head, bool end_stream);
  size_t send_data(int32_t id, std::string_view data);
  size_t room(int32_t id) const;
  void end_request(int32_t id, std::span<const Field> trailers = {});
  void reset(int32_t id, ErrorCode code);
  void consume(int32_t id, size_t n);
  // A PING (keepalive: any frame received after it shows the server alive).
  void ping();
  // GOAWAY(code): no stream is opened after it (can_open() is false); the
  // caller flushes output() and closes.
  void goaway(ErrorCode code);
  // The server's first SETTINGS arrived: it speaks HTTP/2 on this connection.
  bool settings_received() const;
  // The server sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441): it
  // takes extended CONNECT (WebSocket over HTTP/2).
  bool connect_protocol() const;

  bool can_open() const;  // a new stream would be accepted now
  size_t open_streams() const;
  bool done() const;

  struct Impl;

 private:
  explicit ClientSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::http2
