// List + watch of one kind; see informer.h.
#include "controller/kube/informer.h"

#include <random>

#include <spdlog/spdlog.h>

namespace gantry::controller::kube {

namespace {

constexpr int kPageSize = 500;

}  // namespace

Informer::Informer(ApiClient& api, Resource resource, size_t index, std::string namespace_,
                   Sink sink, uint64_t seed)
    : api_(api),
      resource_(std::move(resource)),
      index_(index),
      namespace_(std::move(namespace_)),
      sink_(std::move(sink)),
      backoff_(seed) {}

Informer::~Informer() {
  stop();
  if (thread_.joinable()) thread_.detach();  // a request may still be blocked; the process ends
}

void Informer::start() { thread_ = std::thread([this] { run(); }); }

void Informer::stop() {
  stop_ = true;
  cv_.notify_all();
}

void Informer::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, d, [this] { return stop_.load(); });
}

void Informer::fail(const std::string& verb, int status, const std::string& detail) {
  std::string what = resource_.describe(namespace_);
  std::string msg;
  if (status == 401)
    msg = "cannot " + verb + " " + what + ": unauthorized (401): the credentials of " +
          api_.access().origin + " were rejected";
  else if (status == 403)
    msg = "cannot " + verb + " " + what + ": forbidden (403): grant the controller's service "
          "account \"" + verb + "\" on " + what + " (RBAC): " + detail;
  else if (status != 0)
    msg = "cannot " + verb + " " + what + ": HTTP " + std::to_string(status) + ": " + detail;
  else
    msg = "cannot " + verb + " " + what + ": " + detail;
  auto delay = backoff_.next();
  if (!failing_ || status == 401 || status == 403)
    spdlog::error("{}; retrying in {} ms", msg, delay.count());
  else
    spdlog::debug("{}; retrying in {} ms", msg, delay.count());
  failing_ = true;
  sleep_for(delay);
}

void Informer::run() {
  while (!stop_) {
    if (need_list_) {
      if (!list()) continue;
      need_list_ = false;
    }
    watch();
  }
  done_ = true;
}

bool Informer::list() {
  std::vector<nlohmann::json> all;
  std::string cont, rv;
  std::string base = resource_.collection_path(namespace_);
  do {
    std::string path = base + "?limit=" + std::to_string(kPageSize);
    if (!resource_.field_selector.empty())
      path += "&fieldSelector=" + url_escape(resource_.field_selector);
    if (!resource_.label_selector.empty())
      path += "&labelSelector=" + url_escape(resource_.label_selector);
    if (!cont.empty()) path += "&continue=" + url_escape(cont);
    auto r = api_.call("GET", path);
    if (stop_) return false;
    if (!r.ok()) {
      fail("list", 0, r.error().message);
      return false;
    }
    if (r->status == 410 && !cont.empty()) {  // the continue token expired: start over
      all.clear();
      cont.clear();
      continue;
    }
    if (r->status == 404 && resource_.optional && cont.empty()) {
      // Not served (its CRD is not installed): nothing of it exists. Deliver
      // the empty list (so the kind counts as synced) and look again later.
      if (!absent_)
        spdlog::info("{} are not served by the API server (CRD not installed?): none; "
                     "listing again every 30 s", resource_.describe(namespace_));
      absent_ = true;
      sink_(InformerEvent{index_, InformerEvent::Type::kReplace, {}});
      synced_ = true;
      sleep_for(std::chrono::seconds(30));
      return false;
    }
    if (r->status != 200) {
      fail("list", r->status, status_message(r->body));
      return false;
    }
    auto page = parse_list(r->body, resource_.kind, resource_.api_version);
    if (!page.ok()) {
      fail("list", 0, page.error().message);
      return false;
    }
    for (auto& it : page->items) all.push_back(std::move(it));
    cont = page->continue_token;
    rv = page->resource_version;
  } while (!cont.empty());
  resource_version_ = rv;
  bool first = !synced_.load() || absent_;
  absent_ = false;
  size_t n = all.size();
  sink_(InformerEvent{index_, InformerEvent::Type::kReplace, std::move(all)});
  synced_ = true;
  if (!first) ++relists_;
  if (failing_ || !first)
    spdlog::info("listed {} {} at resourceVersion {}", n, resource_.describe(namespace_), rv);
  else
    spdlog::debug("listed {} {} at resourceVersion {}", n, resource_.describe(namespace_), rv);
  failing_ = false;
  backoff_.reset();
  return true;
}

void Informer::watch() {
  // Spread the server-side timeouts so the informers do not all reconnect at once.
  static thread_local std::mt19937 rng(std::random_device{}());
  int timeout = 240 + static_cast<int>(rng() % 60);
  std::string path = resource_.collection_path(namespace_) +
                     "?watch=1&allowWatchBookmarks=true&resourceVersion=" +
                     url_escape(resource_version_) + "&timeoutSeconds=" + std::to_string(timeout);
  if (!resource_.field_selector.empty())
    path += "&fieldSelector=" + url_escape(resource_.field_selector);
  if (!resource_.label_selector.empty())
    path += "&labelSelector=" + url_escape(resource_.label_selector);
  bool gone = false;
  uint64_t events = 0;
  std::string error;
  auto on_line = [&](std::string_view line) -> bool {
    if (stop_) return false;
    auto ev = parse_watch_event(line);
    if (!ev.ok()) {
      error = ev.error().message;
      return false;
    }
    ++events;
    switch (ev->type) {
      case WatchEvent::Type::kBookmark:
        resource_version_ = ev->resource_version;
        return true;
      case WatchEvent::Type::kError:
        if (ev->error_code == 410) {
          gone = true;
          error = ev->error_message;
        } else {
          error = "watch ERROR " + std::to_string(ev->error_code) + ": " + ev->error_message;
        }
        return false;
      case WatchEvent::Type::kAdded:
      case WatchEvent::Type::kModified:
      case WatchEvent::Type::kDeleted: {
        resource_version_ = ev->resource_version;
        InformerEvent out{index_,
                          ev->type == WatchEvent::Type::kDeleted ? InformerEvent::Type::kDelete
                                                                 : InformerEvent::Type::kUpsert,
                          {}};
        out.objects.push_back(std::move(ev->object));
        sink_(std::move(out));
        return true;
      }
    }
    return true;
  };
  auto r = api_.stream(path, on_line, std::chrono::seconds(timeout + 30));
  if (stop_) return;
  ++watch_restarts_;
  if (!r.ok()) {
    // A watch cut mid-stream (the API server restarting, a proxy in between)
    // is routine: resume from where it was.
    auto delay = backoff_.next();
    auto level = failing_ ? spdlog::level::debug : spdlog::level::warn;
    spdlog::log(level, "watch of {} interrupted: {}; resuming from resourceVersion {} in {} ms",
                resource_.describe(namespace_), r.error().message, resource_version_,
                delay.count());
    failing_ = true;
    sleep_for(delay);
    return;
  }
  if (r->status == 410 || gone) {
    spdlog::info("watch of {}: resourceVersion {} is gone (410{}); relisting",
                 resource_.describe(namespace_), resource_version_,
                 error.empty() ? "" : ": " + error);
    need_list_ = true;
    return;
  }
  if (r->status != 200) {
    fail("watch", r->status, status_message(r->body));
    return;
  }
  if (!error.empty()) {
    fail("watch", 0, error);
    return;
  }
  if (failing_) {
    spdlog::info("watch of {} is back", resource_.describe(namespace_));
    failing_ = false;
  }
  if (events > 0) backoff_.reset();
  // A watch that ended at once without a single event (a proxy cutting it?) is paced.
  if (events == 0) sleep_for(std::chrono::milliseconds(200));
}

}  // namespace gantry::controller::kube
