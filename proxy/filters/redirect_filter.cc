// filters.requestRedirect as a chain filter (request_filters.h).
#include <re2/re2.h>

#include "proxy/filters/request_filters.h"

namespace gantry::filters {

namespace {

// locationPattern, or the pattern of a RegexReplace path (the validator compiled it already).
std::unique_ptr<const re2::RE2> compile_location(const snapshot::RequestRedirect& r) {
  const std::string* pattern = nullptr;
  if (r.location && !r.location_pattern.empty()) pattern = &r.location_pattern;
  else if (r.path.type == snapshot::PathRewriteType::kRegexReplace) pattern = &r.path.pattern;
  if (pattern == nullptr) return nullptr;
  re2::RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_unique<const re2::RE2>(*pattern, opts);
  return re->ok() ? std::move(re) : nullptr;
}

}  // namespace

RedirectFilter::RedirectFilter(const snapshot::RequestRedirect& config)
    : config_(config), re_(compile_location(config)) {}

RedirectFilter::~RedirectFilter() = default;

void rewrite_prefix(std::string_view path, size_t matched, std::string_view replacement, std::string& out) {
  std::string_view rest = path.substr(std::min(matched, path.size()));
  out.assign(replacement);
  if (!out.empty() && out.back() == '/' && !rest.empty() && rest.front() == '/') out.pop_back();
  out.append(rest);
  // push_back, not = "/": GCC 12 at -O3 reports a false -Wrestrict there (GCC PR 105329).
  if (out.empty()) out.push_back('/');
}

exchange::Verdict RedirectFilter::on_request(exchange::Exchange& ex) const {
  const auto& r = config_;
  if (r.location) {
    std::string location;
    if (!r.location_pattern.empty()) {
      if (!re_ || !re2::RE2::Extract(ex.req.path, *re_, *r.location, &location))
        return exchange::Verdict::kContinue;
    } else {
      location = *r.location;
    }
    if (r.keep_query && !ex.req.query.empty())
      location.append(location.find('?') == std::string::npos ? "?" : "&").append(ex.req.query);
    ex.reply.status = r.status_code;
    ex.reply.body.assign("redirecting to ").append(location);
    ex.reply.headers.emplace_back("location", std::move(location));
    ex.reply.kind = "redirect";
    return exchange::Verdict::kRespond;
  }
  // Gateway API: no scheme keeps the request's; no port is the scheme's
  // well-known port when a scheme is given, else the listener's port; a
  // scheme's well-known port is left out of the Location.
  std::string location = r.scheme.value_or(ex.req.tls ? "https" : "http");
  uint16_t port = r.port ? *r.port : r.scheme ? 0 : ex.req.listener_port;
  bool well_known = (location == "http" && port == 80) || (location == "https" && port == 443);
  location += "://";
  location += r.hostname ? std::string_view(*r.hostname) : ex.req.host;
  if (port != 0 && !well_known) location.append(":").append(std::to_string(port));
  switch (r.path.type) {
    case snapshot::PathRewriteType::kNone: location += ex.req.path; break;
    case snapshot::PathRewriteType::kReplaceFullPath: location += r.path.value; break;
    case snapshot::PathRewriteType::kRegexReplace: {
      std::string p;
      if (re_ && re2::RE2::Extract(ex.req.path, *re_, r.path.value, &p))
        location += p;
      else
        location += ex.req.path;
      break;
    }
    case snapshot::PathRewriteType::kReplacePrefixMatch: {
      std::string p;
      rewrite_prefix(ex.req.path, ex.matched_prefix, r.path.value, p);
      location += p;
      break;
    }
  }
  if (!ex.req.query.empty()) location.append("?").append(ex.req.query);
  ex.reply.status = r.status_code;
  ex.reply.body.assign("redirecting to ").append(location);
  ex.reply.headers.emplace_back("location", std::move(location));
  ex.reply.kind = "redirect";
  return exchange::Verdict::kRespond;
}

}  // namespace gantry::filters
