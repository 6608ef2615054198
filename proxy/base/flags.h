// Command-line flags shared by gantry-proxy and gantry-controller.
//
// Every flag `--some-name` also reads the environment variable
// `<PREFIX>SOME_NAME` (e.g. GANTRY_HTTP_LISTEN); a flag on the command line
// wins. `--help` prints every flag with its default. An unknown flag, a
// missing value or a value its parser rejects exits 2 with one line naming
// the flag — the contract users and the chart depend on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"

namespace gantry {

class FlagSet {
 public:
  FlagSet(std::string program, std::string summary, std::string env_prefix = "GANTRY_");

  // A flag with a value. `parse` stores the value or returns an error message.
  void add(std::string name, std::string value_name, std::string default_text, std::string help,
           std::function<Status(std::string_view)> parse);
  // A boolean flag (--name, --name=true|false; env: 1/true/0/false).
  void add_bool(std::string name, std::string help, bool* target);

  // Parses argv and the environment. On --help prints usage and exits 0; on
  // any error prints "<program>: <reason>" to stderr and exits 2.
  void parse_or_exit(int argc, char** argv);

  std::string usage() const;

  // After parse_or_exit: rejects a combination of values the same way (one
  // line "<program>: <reason> (see --help)" on stderr, exit 2).
  [[noreturn]] void fail(const std::string& reason) const;

 private:
  struct Flag {
    std::string name, value_name, default_text, help;
    std::function<Status(std::string_view)> parse;
    bool is_bool = false;
  };
  Flag* find(std::string_view name);
  std::string program_, summary_, env_prefix_;
  std::vector<Flag> flags_;
};

// Value parsers shared by both binaries.
struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string str() const;
};
Result<HostPort> parse_host_port(std::string_view s);  // "0.0.0.0:8080", "[::1]:80", ":8080"
// True for 127.0.0.0/8 and ::1 (a management listener that only this pod reaches).
bool is_loopback_host(const std::string& host);
// "10s", "250ms", "1m", "2h", "1.5s"; a bare number is seconds.
Result<std::chrono::milliseconds> parse_duration(std::string_view s);
Result<uint64_t> parse_uint(std::string_view s, uint64_t min, uint64_t max);

}  // namespace gantry
