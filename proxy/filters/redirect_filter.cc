// filters.requestRedirect as a chain filter (request_filters.h).
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

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
  std::string location = r.scheme.value_or("http");
  location += "://";
  location += r.hostname ? std::string_view(*r.hostname) : ex.req.host;
  if (r.port) location.append(":").append(std::to_string(*r.port));
  switch (r.path.type) {
    case snapshot::PathRewriteType::kNone: location += ex.req.path; break;
    case snapshot::PathRewriteType::kReplaceFullPath: location += r.path.value; break;
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
