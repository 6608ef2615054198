// filters.extAuth as a chain filter (ext_auth.h).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <optional>

#include "proxy/filters/access_decisions.h"
#include "proxy/filters/ext_auth.h"
#include "proxy/filters/ext_authz_proto.h"
#include "proxy/http/chars.h"
#include "proxy/http/message.h"

namespace gantry::filters {

namespace {

using exchange::Verdict;

// Percent-encodes everything but RFC 3986 unreserved characters (a query value).
void append_encoded(std::string& out, std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

bool listed(const std::vector<std::string>& lower_names, std::string_view name) {
  for (const auto& n : lower_names)
    if (http::iequals(n, name)) return true;
  return false;
}

// Fields of the service's answer that are not passed on to the client: the
// framing (the codec writes its own) and hop-by-hop ones.
bool relayed(std::string_view lower_name) {
  return lower_name != "content-length" && lower_name != "transfer-encoding" && lower_name != "date" &&
         !http::is_hop_by_hop(lower_name);
}

// The exchange's clock for the decision cache: when its head was complete.
ExtAuthDecisionCache::Clock::time_point now_of(const exchange::Exchange& ex) {
  return ex.started == exchange::SteadyTime{} ? ExtAuthDecisionCache::Clock::now() : ex.started;
}

// Verdicts as stored in Exchange::ext_auth_verdict (0: no decision).
uint8_t stored(Verdict v) { return static_cast<uint8_t>(static_cast<uint8_t>(v) + 1); }

// The wait for one call (exchange.h, PendingOp). The call's completion runs
// on the worker's thread and decides into the Exchange before done().
class ExtAuthOp final : public exchange::PendingOp {
 public:
  ExtAuthOp(const ExtAuthFilter& f, ExtAuthTransport& t, exchange::Exchange& ex, std::shared_ptr<ExtAuthCall> call,
            std::string key)
      : filter_(f), transport_(t), ex_(ex), call_(std::move(call)), key_(std::move(key)) {}
  ~ExtAuthOp() override { cancel(); }
  void start(std::function<void()> done) override {
    started_ = true;
    // Built now, not in on_request(): the driver has read the body the
    // filter asked for (withRequestBody) by the time the wait starts.
    filter_.prepare_call(ex_, *call_);
    transport_.start(call_, [f = &filter_, ex = &ex_, call = call_, key = std::move(key_), done = std::move(done)] {
      if (call->cancelled) return;
      ex->ext_auth_verdict = stored(f->decide(*ex, *call, key));
      call->cancelled = true;  // finished: nothing may touch the Exchange any more
      done();
    });
  }
  void cancel() override {
    if (call_->cancelled) return;
    call_->cancelled = true;
    if (started_) transport_.abort(*call_);
  }

 private:
  const ExtAuthFilter& filter_;
  ExtAuthTransport& transport_;
  exchange::Exchange& ex_;
  std::shared_ptr<ExtAuthCall> call_;
  std::string key_;
  bool started_ = false;
};

}  // namespace

// ---- decision cache

ExtAuthDecisionCache::ExtAuthDecisionCache(std::chrono::milliseconds ttl, size_t max_entries)
    : ttl_(ttl), max_per_shard_(std::max<size_t>(1, (max_entries + kShards - 1) / kShards)) {}

ExtAuthDecisionCache::Shard& ExtAuthDecisionCache::shard(std::string_view key) const {
  return shards_[std::hash<std::string_view>{}(key) % shards_.size()];
}

bool ExtAuthDecisionCache::find(const std::string& key, Clock::time_point now, Headers& out, Names* remove) const {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) return false;
  if (it->second.expires <= now) {
    s.map.erase(it);
    return false;
  }
  out = it->second.headers;
  if (remove != nullptr) *remove = it->second.remove;
  return true;
}

void ExtAuthDecisionCache::put(std::string key, Headers headers, Clock::time_point now, Names remove) {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  if (s.map.size() >= max_per_shard_ && !s.map.contains(key)) s.map.clear();  // bounded: a full shard starts over
  s.map.insert_or_assign(std::move(key), Entry{now + ttl_, std::move(headers), std::move(remove)});
}

size_t ExtAuthDecisionCache::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.map.size();
  }
  return n;
}

// ---- the filter

ExtAuthFilter::ExtAuthFilter(const snapshot::ExtAuth& config, ExtAuthTransport* transport)
    : config_(config), transport_(transport) {
  if (config.cache_ttl.count() > 0 && config.cache_max_entries > 0)
    cache_ = std::make_unique<ExtAuthDecisionCache>(config.cache_ttl, config.cache_max_entries);
  if (config.tls && transport != nullptr) {
    tls_ = transport->prepare(config, tls_error_);
    if (!tls_ && tls_error_.empty()) tls_error_ = "no TLS context for the service";
  }
}

void ExtAuthFilter::prepare_call(const exchange::Exchange& ex, ExtAuthCall& call) const {
  call.tls = tls_;
  if (!config_.grpc) {
    call.request = build_request(ex);
    return;
  }
  call.grpc = true;
  call.authority = config_.authority;
  call.path = config_.path;
  call.request = build_check_request(ex);
}

std::string ExtAuthFilter::build_check_request(const exchange::Exchange& ex) const {
  ext_authz::CheckInput in;
  in.source_ip = ex.req.client_ip;
  in.destination_port = ex.req.listener_port;
  const auto wall = std::chrono::system_clock::now().time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(wall);
  in.time_seconds = secs.count();
  in.time_nanos = static_cast<int32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(wall - secs).count());
  if (auto id = ex.header("x-request-id")) in.id = *id;
  in.method = ex.req.method;
  std::string path(ex.req.path);
  if (!ex.req.query.empty()) path.append("?").append(ex.req.query);
  in.path = path;
  in.host = ex.req.host_header.empty() ? ex.req.host : ex.req.host_header;
  in.scheme = ex.req.tls ? "https" : "http";
  in.query = ex.req.query;
  in.protocol = ex.req.proto;
  // Every field, as Envoy sends them: lower-case names, pseudo-headers
  // first, repeated fields' values joined with ','.
  auto add = [&](std::string name, std::string_view value) {
    for (auto& [n, v] : in.headers)
      if (n == name) {
        v.append(",").append(value);
        return;
      }
    in.headers.emplace_back(std::move(name), std::string(value));
  };
  add(":authority", in.host);
  add(":method", in.method);
  add(":path", path);
  add(":scheme", in.scheme);
  if (ex.req.headers != nullptr)
    for (const auto& h : *ex.req.headers) {
      std::string name(h.name);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (name == "host") continue;  // :authority
      add(std::move(name), h.value);
    }
  if (ex.req.body == http::BodyKind::kContentLength) in.size = static_cast<int64_t>(ex.req.content_length);
  else if (ex.req.body == http::BodyKind::kNone) in.size = 0;
  if (config_.body_max_bytes > 0) {
    add("x-envoy-auth-partial-body", ex.request_body.partial ? "true" : "false");
    in.with_body = ex.request_body.read;
    in.body = ex.request_body.data;
  }
  return ext_authz::grpc_frame(ext_authz::encode_check_request(in));
}

std::string ExtAuthFilter::original_url(const exchange::Exchange& ex) {
  std::string url(ex.req.tls ? "https://" : "http://");
  url.append(ex.req.host_header.empty() ? ex.req.host : ex.req.host_header).append(ex.req.path);
  if (!ex.req.query.empty()) url.append("?").append(ex.req.query);
  return url;
}

std::string ExtAuthFilter::build_request(const exchange::Exchange& ex) const {
  std::string_view method = config_.method.empty() ? ex.req.method : std::string_view(config_.method);
  std::string out;
  out.reserve(512);
  out.append(method).append(" ").append(config_.path).append(" HTTP/1.1\r\n");
  append_field(out, "host", config_.authority);
  if (ex.req.headers != nullptr)
    for (const auto& h : *ex.req.headers)
      if (listed(config_.request_headers, h.name) && !http::iequals(h.name, "host") &&
          !http::iequals(h.name, "content-length") && !http::iequals(h.name, "transfer-encoding") &&
          !http::is_hop_by_hop(h.name))
        append_field(out, h.name, h.value);
  std::string uri(ex.req.path);
  if (!ex.req.query.empty()) uri.append("?").append(ex.req.query);
  append_field(out, "x-original-url", original_url(ex));
  append_field(out, "x-original-uri", uri);
  append_field(out, "x-original-method", ex.req.method);
  append_field(out, "x-auth-request-redirect", uri);
  append_field(out, "x-forwarded-for", ex.req.client_ip);
  append_field(out, "x-real-ip", ex.req.client_ip);
  append_field(out, "x-forwarded-host", ex.req.host_header.empty() ? ex.req.host : ex.req.host_header);
  append_field(out, "x-forwarded-proto", ex.req.tls ? "https" : "http");
  append_field(out, "x-forwarded-uri", uri);
  append_field(out, "x-forwarded-method", ex.req.method);
  if (config_.body_max_bytes > 0) {  // withRequestBody: what the driver read (ex.request_body)
    append_field(out, "x-envoy-auth-partial-body", ex.request_body.partial ? "true" : "false");
    if (ex.request_body.read && !ex.request_body.data.empty()) {
      if (auto ct = ex.header("content-type")) append_field(out, "content-type", *ct);
      append_field(out, "content-length", std::to_string(ex.request_body.data.size()));
      out.append("\r\n").append(ex.request_body.data);
      return out;
    }
  }
  if (method != "GET" && method != "HEAD") append_field(out, "content-length", "0");
  out.append("\r\n");
  return out;
}

std::string ExtAuthFilter::cache_key(const exchange::Exchange& ex) const {
  std::string key;
  for (const auto& name : config_.request_headers) {
    key.append(name).push_back('\0');
    if (ex.req.headers != nullptr)
      for (const auto& h : *ex.req.headers)
        if (http::iequals(h.name, name)) key.append(h.value).push_back('\1');
    key.push_back('\0');
  }
  return key;
}

Verdict ExtAuthFilter::fail(exchange::Exchange& ex, std::string_view why) const {
  count_access(AccessFilter::kExtAuth, AccessDecision::kError);
  if (config_.fail_open) return Verdict::kContinue;
  ex.reply.status = config_.status_on_error;
  ex.reply.body = "authorization service failed: ";
  ex.reply.body.append(why);
  ex.reply.kind = "ext_auth_error";
  ex.reply.gateway_reason = "ext-auth-error";
  return Verdict::kRespond;
}

Verdict ExtAuthFilter::decide_grpc(exchange::Exchange& ex, const ExtAuthCall& call, const std::string& key) const {
  if (call.status != 200) return fail(ex, std::string("HTTP status ").append(std::to_string(call.status)));
  std::string_view grpc_status, grpc_message;
  for (const auto& [name, value] : call.headers) {
    if (name == "grpc-status") grpc_status = value;
    if (name == "grpc-message") grpc_message = value;
  }
  if (grpc_status.empty()) return fail(ex, "no grpc-status in the answer");
  if (grpc_status != "0")
    return fail(ex, std::string("grpc-status ").append(grpc_status).append(" ").append(grpc_message));
  std::string_view message;
  std::string why;
  ext_authz::CheckResult r;
  if (!ext_authz::grpc_unframe(call.body, message, why) || !ext_authz::decode_check_response(message, r, why))
    return fail(ex, why);
  using Action = ext_authz::HeaderOp::Action;
  if (r.code == 0) {
    count_access(AccessFilter::kExtAuth, AccessDecision::kAllowed);
    ex.ext_auth_headers.clear();
    ex.ext_auth_remove.clear();
    // Every operation becomes the field's final value (set on the upstream
    // request, replacing the client's): an append joins the client's value
    // (or an earlier operation's) with ','.
    for (auto& op : r.headers) {
      for (auto& ch : op.key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (!http::chars::is_token_string(op.key) || http::is_hop_by_hop(op.key) || op.key == "host" || op.key.starts_with(":"))
        continue;
      std::string* mine = nullptr;
      for (auto& [n, v] : ex.ext_auth_headers)
        if (n == op.key) mine = &v;
      std::optional<std::string> current;
      if (mine != nullptr) current = *mine;
      else if (auto c = ex.header(op.key)) current = std::string(*c);
      if ((op.action == Action::kAddIfAbsent && current) || (op.action == Action::kOverwriteIfExists && !current))
        continue;
      std::string value = op.action == Action::kAppend && current ? *current + "," + op.value : op.value;
      if (mine != nullptr) *mine = std::move(value);
      else ex.ext_auth_headers.emplace_back(op.key, std::move(value));
    }
    for (auto& name : r.headers_to_remove) {
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (!http::chars::is_token_string(name) || name == "host" || name.starts_with(":")) continue;
      ex.ext_auth_remove.push_back(std::move(name));
    }
    if (cache_) cache_->put(key, ex.ext_auth_headers, now_of(ex), ex.ext_auth_remove);
    return Verdict::kContinue;
  }
  count_access(AccessFilter::kExtAuth, AccessDecision::kDenied);
  ex.reply.kind = "ext_auth_denied";
  ex.reply.status = r.http_status >= 200 && r.http_status <= 599 ? r.http_status : 403;
  ex.reply.body = std::move(r.body);
  ex.reply.verbatim = true;
  for (auto& op : r.headers) {
    for (auto& ch : op.key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (http::chars::is_token_string(op.key) && relayed(op.key) && !op.key.starts_with(":"))
      ex.reply.headers.emplace_back(std::move(op.key), std::move(op.value));
  }
  return Verdict::kRespond;
}

Verdict ExtAuthFilter::decide(exchange::Exchange& ex, const ExtAuthCall& call, const std::string& key) const {
  if (!call.ok) return fail(ex, call.error);
  if (config_.grpc) return decide_grpc(ex, call, key);
  if (call.status >= 200 && call.status < 300) {
    count_access(AccessFilter::kExtAuth, AccessDecision::kAllowed);
    ex.ext_auth_headers.clear();
    for (const auto& [name, value] : call.headers)
      if (listed(config_.response_headers, name)) ex.ext_auth_headers.emplace_back(name, value);
    if (cache_) cache_->put(key, ex.ext_auth_headers, now_of(ex));
    return Verdict::kContinue;
  }
  count_access(AccessFilter::kExtAuth, AccessDecision::kDenied);
  ex.reply.kind = "ext_auth_denied";
  if (call.status == 401 && !config_.signin.empty()) {
    std::string location(config_.signin);
    location += config_.signin.find('?') == std::string::npos ? '?' : '&';
    location.append(config_.signin_redirect_param).push_back('=');
    append_encoded(location, original_url(ex));
    ex.reply.status = 302;
    ex.reply.headers.emplace_back("location", std::move(location));
    for (const auto& [name, value] : call.headers)  // a cookie the service sets (oauth2-proxy's CSRF) goes along
      if (name == "set-cookie") ex.reply.headers.emplace_back(name, value);
    ex.reply.body = "sign-in required";
    return Verdict::kRespond;
  }
  ex.reply.status = call.status;
  ex.reply.body = call.body;
  ex.reply.verbatim = true;
  for (const auto& [name, value] : call.headers)
    if (relayed(name)) ex.reply.headers.emplace_back(name, value);
  return Verdict::kRespond;
}

Verdict ExtAuthFilter::on_request(exchange::Exchange& ex) const {
  std::string key;
  if (cache_) {
    key = cache_key(ex);
    ExtAuthDecisionCache::Headers hit;
    if (cache_->find(key, now_of(ex), hit, &ex.ext_auth_remove)) {
      count_access(AccessFilter::kExtAuth, AccessDecision::kAllowed);
      ex.ext_auth_headers = std::move(hit);
      return Verdict::kContinue;
    }
  }
  if (transport_ == nullptr) return fail(ex, "no transport in this process");
  if (config_.tls && !tls_) return fail(ex, tls_error_);
  auto call = std::make_shared<ExtAuthCall>();
  call->host = config_.host;
  call->port = config_.port;
  if (config_.body_max_bytes > 0 && ex.req.body != http::BodyKind::kNone) {
    ex.request_body.want = true;  // read by the driver before the wait starts
    ex.request_body.max_bytes = config_.body_max_bytes;
    ex.request_body.allow_partial = config_.body_allow_partial;
  }
  call->timeout = config_.timeout;
  call->head_only = (config_.method.empty() ? ex.req.method : std::string_view(config_.method)) == "HEAD";
  ex.pending = std::make_unique<ExtAuthOp>(*this, *transport_, ex, std::move(call), std::move(key));
  return Verdict::kPending;
}

Verdict ExtAuthFilter::on_resume(exchange::Exchange& ex) const {
  uint8_t v = ex.ext_auth_verdict;
  ex.ext_auth_verdict = 0;
  if (v == 0) return fail(ex, "the call ended without an answer");
  return static_cast<Verdict>(v - 1);
}

void ExtAuthFilter::on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const {
  for (const auto& name : ex.ext_auth_remove) up.headers.remove.push_back(name);
  for (const auto& [name, value] : ex.ext_auth_headers) up.headers.set.push_back({name, value});
}

}  // namespace gantry::filters
