// An informer: lists one kind, then watches it from the list's resourceVersion.
//
// One thread per kind. The list (paged, 500 per page) is handed to the sink as
// one kReplace event (the consumer replaces everything it holds of the kind,
// so objects deleted while we were away disappear); then each watch event as
// kUpsert / kDelete. Bookmarks (allowWatchBookmarks) only advance the
// resourceVersion. A watch that ends normally (the server's timeoutSeconds, a
// closed connection) is resumed from the last resourceVersion; a 410 Gone —
// as the HTTP status or as an ERROR event — relists. Failures back off with
// jitter from 0.8 s to 30 s and are logged once per streak, with 401/403 named
// by verb and resource.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/kube/api_client.h"
#include "controller/kube/backoff.h"
#include "controller/kube/watch_protocol.h"

namespace gantry::controller::kube {

struct InformerEvent {
  enum class Type { kReplace, kUpsert, kDelete };
  size_t resource = 0;  // index of the informer's Resource, as given to the constructor
  Type type = Type::kUpsert;
  std::vector<nlohmann::json> objects;
};

class Informer {
 public:
  using Sink = std::function<void(InformerEvent)>;

  Informer(ApiClient& api, Resource resource, size_t index, std::string namespace_, Sink sink,
           uint64_t seed);
  ~Informer();

  void start();
  void stop();  // wakes the thread; it ends once its current request returns
  bool synced() const { return synced_.load(); }
  // True once the thread has returned after stop(): the informer may be destroyed.
  bool done() const { return done_.load(); }
  uint64_t relists() const { return relists_.load(); }
  uint64_t watch_restarts() const { return watch_restarts_.load(); }
  const Resource& resource() const { return resource_; }

 private:
  void run();
  bool list();   // true on success
  void watch();  // returns when the watch ended; sets need_list_ on 410
  void fail(const std::string& verb, int status, const std::string& detail);
  void sleep_for(std::chrono::milliseconds d);

  ApiClient& api_;
  Resource resource_;
  size_t index_;
  std::string namespace_;
  Sink sink_;
  Backoff backoff_;
  std::string resource_version_;
  bool need_list_ = true;
  bool failing_ = false;  // a failure was logged; log the recovery
  bool absent_ = false;   // an optional kind's list answered 404 (informer.cc)
  std::atomic<bool> synced_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::atomic<uint64_t> relists_{0};
  std::atomic<uint64_t> watch_restarts_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace gantry::controller::kube
