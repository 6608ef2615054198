#include "proxy/base/flags.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace gantry {

namespace {

std::string env_name(const std::string& prefix, std::string_view flag) {
  std::string out = prefix;
  for (char c : flag) out += (c == '-') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

[[noreturn]] void die(const std::string& program, const std::string& reason) {
  std::cerr << program << ": " << reason << " (see --help)\n";
  std::exit(2);
}

Result<bool> parse_bool(std::string_view v) {
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return Error{"expected true or false, got \"" + std::string(v) + "\""};
}

}  // namespace

FlagSet::FlagSet(std::string program, std::string summary, std::string env_prefix)
    : program_(std::move(program)), summary_(std::move(summary)), env_prefix_(std::move(env_prefix)) {}

void FlagSet::add(std::string name, std::string value_name, std::string default_text, std::string help,
                  std::function<Status(std::string_view)> parse) {
  flags_.push_back({std::move(name), std::move(value_name), std::move(default_text), std::move(help),
                    std::move(parse), false});
}

void FlagSet::add_bool(std::string name, std::string help, bool* target) {
  flags_.push_back({std::move(name), "", "false", std::move(help),
                    [target](std::string_view v) -> Status {
                      auto b = parse_bool(v);
                      if (!b.ok()) return b.error();
                      *target = *b;
                      return ok_status();
                    },
                    true});
}

FlagSet::Flag* FlagSet::find(std::string_view name) {
  for (auto& f : flags_)
    if (f.name == name) return &f;
  return nullptr;
}

std::string FlagSet::usage() const {
  std::string out = "Usage: " + program_ + " [flags]\n" + summary_ + "\n\nFlags (each also read from the environment):\n";
  for (const auto& f : flags_) {
    std::string left = "  --" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    if (left.size() < 34) left.resize(34, ' ');
    out += left + " " + f.help + " (default " + f.default_text + "; env " + env_name(env_prefix_, f.name) + ")\n";
  }
  out += "  --help                             print this help\n";
  return out;
}

void FlagSet::fail(const std::string& reason) const { die(program_, reason); }

void FlagSet::parse_or_exit(int argc, char** argv) {
  // Environment first, so that flags given on the command line win.
  for (auto& f : flags_) {
    const char* v = std::getenv(env_name(env_prefix_, f.name).c_str());
    if (v == nullptr) continue;
    if (auto st = f.parse(v); !st.ok())
      die(program_, "bad value for " + env_name(env_prefix_, f.name) + ": " + st.error().message);
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << usage();
      std::exit(0);
    }
    if (arg.substr(0, 2) != "--") die(program_, "unexpected argument \"" + std::string(arg) + "\"");
    arg.remove_prefix(2);
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    Flag* f = find(arg);
    if (f == nullptr) die(program_, "unknown flag --" + std::string(arg));
    if (!value) {
      if (f->is_bool) {
        value = "true";
      } else {
        if (i + 1 >= argc) die(program_, "flag --" + f->name + " needs a value " + f->value_name);
        value = argv[++i];
      }
    }
    if (auto st = f->parse(*value); !st.ok())
      die(program_, "bad value for --" + f->name + ": " + st.error().message);
  }
}

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<uint64_t> parse_uint(std::string_view s, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return Error{"expected a whole number, got \"" + std::string(s) + "\""};
  if (v < min || v > max)
    return Error{"expected a number from " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                 std::string(s)};
  return v;
}

Result<HostPort> parse_host_port(std::string_view s) {
  HostPort hp;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return Error{"expected [IPv6]:PORT, got \"" + std::string(s) + "\""};
    hp.host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return Error{"expected ADDR:PORT, got \"" + std::string(s) + "\""};
    hp.host = std::string(s.substr(0, colon));
    if (hp.host.find(':') != std::string::npos)
      return Error{"IPv6 addresses need brackets: [ADDR]:PORT, got \"" + std::string(s) + "\""};
    port = s.substr(colon + 1);
  }
  if (hp.host.empty()) hp.host = "0.0.0.0";
  auto p = parse_uint(port, 0, 65535);
  if (!p.ok()) return Error{"bad port in \"" + std::string(s) + "\": " + p.error().message};
  hp.port = static_cast<uint16_t>(*p);
  return hp;
}

bool is_loopback_host(const std::string& host) {
  return host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}

Result<std::chrono::milliseconds> parse_duration(std::string_view s) {
  if (s.empty()) return Error{"empty duration"};
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  std::string number(s.substr(0, i));
  std::string_view unit = s.substr(i);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || errno != 0 || !std::isfinite(v) || v < 0)
    return Error{"expected a duration such as 10s or 250ms, got \"" + std::string(s) + "\""};
  double ms;
  if (unit.empty() || unit == "s") ms = v * 1000;
  else if (unit == "ms") ms = v;
  else if (unit == "m") ms = v * 60000;
  else if (unit == "h") ms = v * 3600000;
  else return Error{"unknown duration unit \"" + std::string(unit) + "\" in \"" + std::string(s) + "\" (use ms, s, m, h)"};
  if (ms > 1e12) return Error{"duration too long: " + std::string(s)};
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

}  // namespace gantry
