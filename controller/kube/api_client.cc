// The Kubernetes API client on cpprestsdk; see api_client.h.
#include "controller/kube/api_client.h"

#include <fstream>
#include <sstream>
#include <vector>

#include <boost/asio/ssl.hpp>
#include <cpprest/http_client.h>

#include "controller/kube/watch_protocol.h"

namespace gantry::controller::kube {

namespace http = web::http;
namespace client = web::http::client;

namespace {

constexpr std::chrono::seconds kCallTimeout{30};
constexpr std::chrono::seconds kTokenRefresh{60};
const char* kUserAgent = "gantry-controller/0.1";

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

struct ApiClient::Impl {
  std::function<void(boost::asio::ssl::context&)> tls_setup;
  std::unique_ptr<client::http_client> shared;  // call(): keep-alive connections
  pplx::cancellation_token_source cancel;

  client::http_client_config config(std::chrono::seconds timeout, bool insecure) const {
    client::http_client_config c;
    c.set_timeout(timeout);
    c.set_validate_certificates(!insecure);
    c.set_ssl_context_callback(tls_setup);
    return c;
  }
};

ApiClient::ApiClient(ClusterAccess access) : access_(std::move(access)), impl_(new Impl) {}

ApiClient::~ApiClient() { shutdown(); }

Result<std::unique_ptr<ApiClient>> ApiClient::create(ClusterAccess access) {
  std::unique_ptr<ApiClient> c(new ApiClient(std::move(access)));
  const ClusterAccess& a = c->access_;
  std::string ca = a.ca_pem, cert = a.client_cert_pem, key = a.client_key_pem;
  c->impl_->tls_setup = [ca, cert, key](boost::asio::ssl::context& ctx) {
    if (!ca.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca));
    if (!cert.empty()) ctx.use_certificate_chain(boost::asio::buffer(cert));
    if (!key.empty()) ctx.use_private_key(boost::asio::buffer(key), boost::asio::ssl::context::pem);
  };
  // Apply the TLS material once now, so a bad PEM fails at start-up with a clear message.
  try {
    boost::asio::ssl::context probe(boost::asio::ssl::context::tls_client);
    c->impl_->tls_setup(probe);
  } catch (const std::exception& e) {
    return Error{a.origin + ": the certificate authority, client certificate or key is not "
                 "usable PEM: " + e.what()};
  }
  try {
    c->impl_->shared = std::make_unique<client::http_client>(
        web::uri(a.server), c->impl_->config(kCallTimeout, a.insecure_skip_tls_verify));
  } catch (const std::exception& e) {
    return Error{a.origin + ": server \"" + a.server + "\": " + e.what()};
  }
  c->token_ = a.token;
  c->token_read_ = std::chrono::steady_clock::now();
  return c;
}

void ApiClient::shutdown() {
  if (stopping_.exchange(true)) return;
  impl_->cancel.cancel();
}

std::string ApiClient::bearer() {
  std::lock_guard<std::mutex> lock(token_mu_);
  auto now = std::chrono::steady_clock::now();
  if (!access_.token_file.empty() && now - token_read_ >= kTokenRefresh) {
    token_read_ = now;
    std::ifstream in(access_.token_file);
    std::ostringstream ss;
    if (in) {
      ss << in.rdbuf();
      std::string t = ss.str();
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      if (!t.empty()) token_ = std::move(t);
    }
  }
  return token_;
}

std::string ApiClient::describe_failure(const std::string& what, const std::exception& e) const {
  std::string msg = e.what();
  std::string l = lower(msg);
  if (l.find("handshake") != std::string::npos || l.find("certificate") != std::string::npos ||
      l.find("ssl") != std::string::npos || l.find("tls") != std::string::npos)
    return what + ": TLS with " + access_.server + " failed: " + msg +
           " (check the certificate authority and client certificate of " + access_.origin + ")";
  if (l.find("refused") != std::string::npos)
    return what + ": " + access_.server + " refused the connection (is the API server up?)";
  if (l.find("timed out") != std::string::npos || l.find("timeout") != std::string::npos)
    return what + ": " + access_.server + " timed out: " + msg;
  return what + ": " + access_.server + ": " + msg;
}

namespace {

http::http_request make_request(const std::string& method, const std::string& path,
                                const std::string& token) {
  http::http_request req(method);
  req.set_request_uri(web::uri(path));
  req.headers().add("Accept", "application/json");
  req.headers().add("User-Agent", kUserAgent);
  if (!token.empty()) req.headers().add("Authorization", "Bearer " + token);
  return req;
}

}  // namespace

Result<HttpResponse> ApiClient::call(const std::string& method, const std::string& path,
                                     const std::string& body, const std::string& content_type) {
  if (stopping_) return Error{method + " " + path + ": shutting down"};
  try {
    http::http_request req = make_request(method, path, bearer());
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
      req.set_body(body, content_type);
    http::http_response resp = impl_->shared->request(req, impl_->cancel.get_token()).get();
    HttpResponse out;
    out.status = resp.status_code();
    out.body = resp.extract_utf8string(true).get();
    return out;
  } catch (const std::exception& e) {
    return Error{describe_failure(method + " " + path, e)};
  }
}

Result<HttpResponse> ApiClient::stream(const std::string& path,
                                       const std::function<bool(std::string_view)>& on_line,
                                       std::chrono::seconds timeout) {
  if (stopping_) return Error{"GET " + path + ": shutting down"};
  try {
    // Its own client: a watch holds its connection for minutes.
    client::http_client c(web::uri(access_.server),
                          impl_->config(timeout, access_.insecure_skip_tls_verify));
    http::http_request req = make_request("GET", path, bearer());
    http::http_response resp = c.request(req, impl_->cancel.get_token()).get();
    HttpResponse out;
    out.status = resp.status_code();
    if (out.status != 200) {
      out.body = resp.extract_utf8string(true).get();
      return out;
    }
    auto buf = resp.body().streambuf();
    std::vector<uint8_t> chunk(64 * 1024);
    LineSplitter lines;
    while (!stopping_) {
      // Wait for one byte, then take whatever else is already buffered.
      size_t n = buf.getn(chunk.data(), 1).get();
      if (n == 0) break;  // end of the body
      size_t avail = buf.in_avail();
      if (avail > 0) n += buf.getn(chunk.data() + 1, std::min(avail, chunk.size() - 1)).get();
      auto fed = lines.feed(std::string_view(reinterpret_cast<const char*>(chunk.data()), n),
                            on_line);
      if (!fed.ok()) return Error{"GET " + path + ": " + fed.error().message};
      if (!*fed) break;  // the caller stopped
    }
    return out;
  } catch (const std::exception& e) {
    return Error{describe_failure("GET " + path, e)};
  }
}

}  // namespace gantry::controller::kube
