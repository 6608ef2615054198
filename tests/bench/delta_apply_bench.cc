// Time for the proxy to apply one endpoint delta when it holds a large
// snapshot (default: 1,000 routes, 5,000 clusters, 100,000 endpoints): the
// same ConfigStore::apply_delta the control socket calls (decode, validate
// against the current clusters, publish), measured over many deltas.
//
//   delta_apply_bench [CLUSTERS] [ENDPOINTS_PER_CLUSTER] [DELTAS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "proxy/control/config_store.h"
#include "proxy/snapshot/codec.h"

using namespace gantry;

int main(int argc, char** argv) {
  size_t clusters = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 5000;
  size_t per = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 20;
  size_t deltas = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 200;

  auto endpoint = [](size_t c, size_t e, size_t salt) {
    return snapshot::Endpoint{"10." + std::to_string((c >> 8) & 255) + "." + std::to_string(c & 255) + "." +
                                  std::to_string((e + salt) % 250 + 1),
                              static_cast<uint16_t>(8000 + (e + salt) / 250), true};
  };
  snapshot::Snapshot s;
  s.version = 1;
  for (size_t c = 0; c < clusters; ++c) {
    snapshot::Cluster cl{"bench/svc-" + std::to_string(c) + ":80", {}};
    for (size_t e = 0; e < per; ++e) cl.endpoints.push_back(endpoint(c, e, 0));
    s.clusters.push_back(std::move(cl));
  }
  for (size_t r = 0; r < std::min<size_t>(clusters, 1000); ++r) {
    snapshot::Route route;
    route.namespace_ = "bench";
    route.name = "r" + std::to_string(r);
    route.hostnames = {"h" + std::to_string(r) + ".example.com"};
    snapshot::Rule rule;
    rule.backends.push_back({s.clusters[r].name, 1, ""});
    route.rules.push_back(rule);
    s.routes.push_back(route);
  }
  control::ConfigStore store;
  auto t0 = std::chrono::steady_clock::now();
  auto full = store.apply_full(s);
  double full_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!full.errors.empty()) {
    std::fprintf(stderr, "full snapshot rejected: %s\n", full.errors.front().c_str());
    return 1;
  }
  std::vector<double> ms;
  uint64_t version = 1;
  for (size_t i = 0; i < deltas; ++i) {
    snapshot::EndpointDelta d;
    d.base_version = version;
    d.version = ++version;
    size_t c = (i * 7919) % clusters;
    snapshot::Cluster cl{s.clusters[c].name, {}};
    for (size_t e = 0; e < per; ++e) cl.endpoints.push_back(endpoint(c, e, i + 1));
    d.clusters.push_back(std::move(cl));
    std::string json = snapshot::encode(d);
    auto a = std::chrono::steady_clock::now();
    auto out = store.apply_delta(json);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    if (!out.errors.empty()) {
      std::fprintf(stderr, "delta rejected: %s\n", out.errors.front().c_str());
      return 1;
    }
  }
  std::sort(ms.begin(), ms.end());
  std::printf("snapshot: %zu routes, %zu clusters, %zu endpoints; full apply %.1f ms\n", s.routes.size(),
              clusters, clusters * per, full_ms);
  std::printf("one-cluster endpoint delta (%zu deltas): p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", deltas,
              ms[ms.size() / 2], ms[ms.size() * 99 / 100], ms.back());
  return 0;
}
