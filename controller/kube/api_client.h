// A small Kubernetes API client on cpprestsdk (http_client, OpenSSL via Boost.Asio).
//
// TLS: the cluster's CA, client certificate and key are installed from memory
// into each connection's boost::asio::ssl::context (set_ssl_context_callback);
// a bad PEM is reported by create(), not at the first request. Bearer tokens
// go in the Authorization header; a token file (in-cluster, tokenFile) is
// re-read every minute because projected tokens rotate.
//
// call() is one request with a 30 s timeout on a shared keep-alive client.
// stream() opens a long GET (a watch) on its own connection and hands each
// line of the body to a callback as it arrives. Transport failures are errors
// whose message says what failed (connection refused, TLS handshake, timeout);
// HTTP statuses are returned as they are: the caller decides what a 401, 403
// or 410 means. shutdown() cancels everything in flight.
//
// Every method is safe to call from several threads.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "controller/kube/kubeconfig.h"
#include "proxy/base/result.h"

namespace gantry::controller::kube {

struct HttpResponse {
  int status = 0;
  std::string body;  // for stream(): only when status is not 200
};

class ApiClient {
 public:
  static Result<std::unique_ptr<ApiClient>> create(ClusterAccess access);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  Result<HttpResponse> call(const std::string& method, const std::string& path_and_query,
                            const std::string& body = "",
                            const std::string& content_type = "application/json");

  // GETs `path_and_query` and calls on_line for each line of a 200 body until
  // the body ends (the response then has status 200), on_line returns false,
  // or `timeout` passes without the stream ending (an error).
  Result<HttpResponse> stream(const std::string& path_and_query,
                              const std::function<bool(std::string_view)>& on_line,
                              std::chrono::seconds timeout);

  void shutdown();
  bool stopping() const { return stopping_.load(); }
  const ClusterAccess& access() const { return access_; }

 private:
  struct Impl;
  explicit ApiClient(ClusterAccess access);
  std::string bearer();
  std::string describe_failure(const std::string& what, const std::exception& e) const;

  ClusterAccess access_;
  std::unique_ptr<Impl> impl_;
  std::mutex token_mu_;
  std::string token_;
  std::chrono::steady_clock::time_point token_read_{};
  std::atomic<bool> stopping_{false};
};

}  // namespace gantry::controller::kube
