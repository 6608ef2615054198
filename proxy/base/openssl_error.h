// The reason for OpenSSL's latest failure, for messages: the first error on
// the thread's queue, as OpenSSL words it, or `if_none` when the queue is
// empty (some calls fail without queuing one, e.g. PEM input with no PEM
// block). The queue is cleared either way, so a later failure is not
// blamed on this one. Header-only: its users link OpenSSL already.
#pragma once

#include <openssl/err.h>

#include <string>
#include <string_view>

namespace gantry {

inline std::string openssl_error(std::string_view if_none = "unknown OpenSSL error") {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return std::string(if_none);
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

}  // namespace gantry
