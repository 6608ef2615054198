// The controller's cluster mode loop; see kube_mode.h.
#include "controller/cmd/kube_mode.h"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include <spdlog/spdlog.h>

#include "controller/cmd/pusher.h"
#include "controller/core/translate.h"

namespace gantry::controller {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kStatusSettle{300};
constexpr milliseconds kStatusResync{10000};
constexpr milliseconds kTick{1000};

class KubeController {
 public:
  KubeController(KubeModeConfig cfg, std::unique_ptr<kube::KubeSource> source,
                 std::unique_ptr<HealthServer> health, int signal_fd)
      : cfg_(std::move(cfg)),
        source_(std::move(source)),
        health_(std::move(health)),
        signal_fd_(signal_fd),
        pusher_(cfg_.proxy_socket, cfg_.first_version) {}

  int run() {
    source_->start();
    Clock::time_point next_resync = Clock::now() + kStatusResync;
    while (true) {
      Clock::time_point now = Clock::now();
      Clock::time_point wake = now + kTick;
      if (auto d = pusher_.deadline(); d && *d < wake) wake = *d;
      if (status_due_ && *status_due_ < wake) wake = *status_due_;
      auto ms = std::chrono::duration_cast<milliseconds>(wake - now).count();
      int timeout = static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 60000));
      pollfd fds[3] = {{signal_fd_, POLLIN, 0},
                       {source_->fd(), POLLIN, 0},
                       {pusher_.fd(), pusher_.events(), 0}};
      int n = ::poll(fds, pusher_.fd() >= 0 ? 3 : 2, timeout);
      if (n < 0 && errno != EINTR) {
        spdlog::critical("poll: {}", std::strerror(errno));
        return 1;
      }
      now = Clock::now();
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si;
        if (::read(signal_fd_, &si, sizeof(si)) > 0) {
          spdlog::info("signal {}: shutting down", si.ssi_signo);
          source_->shutdown();
          return 0;
        }
      }
      if (fds[1].revents & POLLIN) {
        bool changed = source_->drain();
        if (source_->synced() && (changed || !translated_)) retranslate(now);
      }
      if (pusher_.fd() >= 0 && n > 0 && fds[2].revents) pusher_.on_io(fds[2].revents, now);
      pusher_.tick(now);
      publish(now);
      bool leading = source_->may_write_status();
      if (leading != was_leading_) {
        was_leading_ = leading;
        if (leading) status_due_ = now;  // a new leader writes what is due at once
      }
      if (translated_ && ((status_due_ && now >= *status_due_) || now >= next_resync)) {
        status_due_.reset();
        next_resync = now + kStatusResync;
        source_->sync_statuses(statuses_);
        source_->sync_object_statuses(object_statuses_);
        source_->sync_infrastructure(infrastructure_, infrastructure_stale_);
      }
    }
  }

 private:
  void retranslate(Clock::time_point now) {
    if (!translated_) spdlog::info("every informer has synced: {} objects", source_->cache().size());
    translated_ = true;
    TranslateResult r = translate(source_->cache(), source_->translate_options());
    for (const auto& w : r.warnings) spdlog::warn("{}", w);
    for (const auto& line : status_changes(statuses_, r.statuses)) {
      if (line.find("=False") != std::string::npos)
        spdlog::warn("{}", line);
      else
        spdlog::info("{}", line);
    }
    statuses_ = std::move(r.statuses);
    // Gateway API statuses do not wait for the proxy's answer (docs/gateway-api.md).
    if (!status_due_) status_due_ = now + kStatusSettle;
    object_statuses_ = std::move(r.object_statuses);
    infrastructure_ = std::move(r.infrastructure);
    infrastructure_stale_ = std::move(r.infrastructure_stale);
    nginx_json_ = nginx_report_json(r.ingress_nginx);
    nginx_metrics_ = nginx_report_metrics(r.ingress_nginx);
    desired_ = std::move(r.snapshot);
    pusher_.set_desired(desired_, now);
    ++translations_;
    programmed_generation_ = ~uint64_t{0};
  }

  void publish(Clock::time_point now) {
    if (translated_ && pusher_.generation() != programmed_generation_) {
      programmed_generation_ = pusher_.generation();
      set_programmed(statuses_, desired_, pusher_.applied(), pusher_.rejection());
      if (!status_due_) status_due_ = now + kStatusSettle;
      status_json_ = statuses_to_json(statuses_);
    }
    const auto& st = pusher_.stats();
    kube::KubeSourceStats ks = source_->stats();
    HealthState h;
    h.ready = ks.synced && pusher_.applied() != nullptr;
    if (!ks.synced)
      h.not_ready_reason = "informers not synced: " + source_->not_synced();
    else if (!pusher_.applied())
      h.not_ready_reason = st.connected ? "waiting for the proxy to acknowledge the first snapshot"
                                        : "proxy not connected at " + cfg_.proxy_socket;
    h.pushes = st.pushes;
    h.acks = st.acks;
    h.nacks = st.nacks;
    h.acked_version = st.acked_version;
    h.proxy_connected = st.connected;
    h.loads = translations_;
    h.objects = source_->cache().size();
    for (const auto& s : statuses_)
      if (const Condition* c = s.find("Accepted"); c && !c->status) ++h.routes_not_accepted;
    h.status_json = status_json_;
    h.ingress_nginx_json = nginx_json_;
    std::string& m = h.extra_metrics;
    m += nginx_metrics_;
    auto metric = [&](const char* name, const char* kind, const char* help, uint64_t v) {
      m += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + kind + "\n" +
           name + " " + std::to_string(v) + "\n";
    };
    metric("gantry_controller_kube_synced", "gauge", "1 once every informer has listed.",
           ks.synced ? 1 : 0);
    metric("gantry_controller_leader", "gauge",
           "1 while this replica writes status (holds the Lease, or no --leader-elect).",
           ks.leading ? 1 : 0);
    metric("gantry_controller_kube_events_total", "counter", "Objects received from informers.",
           ks.events);
    metric("gantry_controller_kube_decode_errors_total", "counter",
           "Objects the decoder rejected.", ks.decode_errors);
    metric("gantry_controller_kube_relists_total", "counter",
           "Lists after the first (410 Gone, errors).", ks.relists);
    metric("gantry_controller_kube_watch_restarts_total", "counter",
           "Watches that ended and were resumed.", ks.watch_restarts);
    metric("gantry_controller_status_writes_total", "counter", "Status writes that succeeded.",
           ks.status_writes);
    metric("gantry_controller_status_write_errors_total", "counter", "Status writes that failed.",
           ks.status_write_errors);
    metric("gantry_controller_secrets_held", "gauge",
           "Secrets whose data the controller holds (the ones routes reference).", ks.secrets_held);
    metric("gantry_controller_secrets_known_by_name", "gauge",
           "Unreferenced TLS Secrets: only their namespace/name is kept.", ks.secrets_known_by_name);
    metric("gantry_controller_secret_watches_by_name", "gauge",
           "Watches of single referenced Secrets (fieldSelector metadata.name).", ks.secret_watches);
    health_->update(h);
  }

  KubeModeConfig cfg_;
  std::unique_ptr<kube::KubeSource> source_;
  std::unique_ptr<HealthServer> health_;
  int signal_fd_;
  Pusher pusher_;
  bool translated_ = false;
  bool was_leading_ = false;
  snapshot::Snapshot desired_;
  std::vector<RouteStatus> statuses_;
  std::vector<ObjectStatus> object_statuses_;
  std::vector<nlohmann::json> infrastructure_;  // --gateway-bind-address service
  std::vector<ObjectKey> infrastructure_stale_;
  std::string status_json_ = "{\"routes\":[]}";
  std::string nginx_json_ = "{\"ingresses\":[]}";
  std::string nginx_metrics_;
  uint64_t programmed_generation_ = ~uint64_t{0};
  uint64_t translations_ = 0;
  std::optional<Clock::time_point> status_due_;
};

}  // namespace

int run_kube_mode(KubeModeConfig config, std::unique_ptr<kube::KubeSource> source,
                  std::unique_ptr<HealthServer> health, int signal_fd) {
  // Deliberately never destroyed: informer threads may still sit in cancelled
  // requests that reference the source; the caller ends the process with _Exit.
  auto* c = new KubeController(std::move(config), std::move(source), std::move(health), signal_fd);
  return c->run();
}

}  // namespace gantry::controller
