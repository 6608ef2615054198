// Snapshot codec benchmark: SNAPSHOT.md asks to "measure JSON against a binary
// format at 10k routes / 100k endpoints". Builds a synthetic snapshot of that
// size and prints, best of N runs, the time of encode / decode / validate and
// the encoded size, next to the same document encoded as MessagePack and CBOR
// (nlohmann's binary encoders over the codec's own document, codec_json.h), so
// the text-vs-binary question is answered with one schema. Ratios are against
// the JSON text path measured in the same run.
//
//   snapshot_codec_bench [routes=10000] [endpoints=100000] [runs=3]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "proxy/snapshot/codec.h"
#include "proxy/snapshot/codec_json.h"
#include "proxy/snapshot/validate.h"

namespace {

using namespace gantry::snapshot;
using Clock = std::chrono::steady_clock;

// 20 endpoints per cluster; every route has two rules (a PathPrefix with a
// header match, and one in ten a regular expression), backends on two
// clusters, request-header and retry settings: a realistic mid-size tenant mix.
Snapshot synthetic(size_t routes, size_t endpoints) {
  Snapshot s;
  s.version = 1;
  const size_t per_cluster = 20;
  size_t nclusters = std::max<size_t>(1, endpoints / per_cluster);
  s.clusters.reserve(nclusters);
  size_t made = 0;
  for (size_t c = 0; c < nclusters; ++c) {
    Cluster cl;
    cl.name = "ns" + std::to_string(c % 50) + "/svc" + std::to_string(c) + ":8080";
    for (size_t e = 0; e < per_cluster && made < endpoints; ++e, ++made) {
      cl.endpoints.push_back(Endpoint{"10." + std::to_string((made >> 16) & 255) + "." +
                                          std::to_string((made >> 8) & 255) + "." +
                                          std::to_string(made & 255),
                                      8080, e % 10 != 0});
    }
    s.clusters.push_back(std::move(cl));
  }
  s.routes.reserve(routes);
  for (size_t i = 0; i < routes; ++i) {
    Route r;
    r.namespace_ = "ns" + std::to_string(i % 50);
    r.name = "route-" + std::to_string(i);
    r.creation_timestamp = 1700000000 + static_cast<int64_t>(i);
    r.hostnames = {"app" + std::to_string(i) + ".example.com"};
    Rule api;
    RouteMatch m;
    m.path = {PathMatchType::kPathPrefix, "/api/v" + std::to_string(i % 3)};
    m.headers = {{ValueMatchType::kExact, "x-tenant", "t" + std::to_string(i % 100)}};
    api.matches = {m};
    api.filters.request_headers = HeaderModifier{{{"x-route", r.name}}, {}, {"x-debug"}};
    api.backends = {{s.clusters[i % nclusters].name, 90, ""},
                    {s.clusters[(i + 1) % nclusters].name, 10, ""}};
    api.policy.retry = Retry{2, true, false, {503}, Millis(1000), Millis(25), Millis(250)};
    api.policy.timeouts.request = Millis(15000);
    Rule other;
    if (i % 10 == 0) {
      other.matches = {RouteMatch{
          {PathMatchType::kRegularExpression, "/item/[0-9]+/detail"}, std::nullopt, {}, {}}};
    } else {
      other.matches = {RouteMatch{{PathMatchType::kExact, "/health"}, "GET", {}, {}}};
    }
    other.backends = {{s.clusters[i % nclusters].name, 1, ""}};
    r.rules = {api, other};
    s.routes.push_back(std::move(r));
  }
  return s;
}

double best_ms(int runs, const std::function<void()>& f) {
  double best = 1e300;
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    f();
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    best = std::min(best, ms);
  }
  return best;
}

// One result line; bytes == 0 for steps that produce no encoding.
void row(const char* what, double ms, double ref_ms, size_t bytes, size_t ref_bytes) {
  std::printf("%-34s %10.1f ms  x%-6.2f", what, ms, ms / ref_ms);
  if (bytes > 0) {
    std::printf(" %12zu bytes  x%.2f", bytes,
                static_cast<double>(bytes) / static_cast<double>(ref_bytes));
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  size_t routes = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000;
  size_t endpoints = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100000;
  int runs = argc > 3 ? std::atoi(argv[3]) : 3;

  Snapshot s = synthetic(routes, endpoints);
  std::printf("snapshot: %zu routes, %zu clusters, %zu endpoints; best of %d runs\n",
              s.routes.size(), s.clusters.size(), endpoints, runs);

  std::string text;
  double enc_ms = best_ms(runs, [&] { text = encode(s); });
  // Correctness is checked once, outside the timed loops.
  if (auto r = decode_snapshot(text); !r.ok() || !(*r == s)) std::abort();
  double dec_ms = best_ms(runs, [&] {
    if (!decode_snapshot(text).ok()) std::abort();
  });
  std::vector<std::string> errors;
  double val_ms = best_ms(runs, [&] { errors = validate(s); });
  if (!errors.empty()) {
    std::fprintf(stderr, "synthetic snapshot does not validate: %s\n", errors[0].c_str());
    return 1;
  }
  std::string pretty;
  double pretty_ms = best_ms(runs, [&] { pretty = to_pretty_json(s); });

  // Where the JSON time goes: model -> document -> text, and back.
  nlohmann::ordered_json doc;
  double to_doc_ms = best_ms(runs, [&] { doc = to_json(s); });
  double dump_ms = best_ms(runs, [&] { text = doc.dump(); });
  nlohmann::json parsed;
  double parse_ms = best_ms(runs, [&] { parsed = nlohmann::json::parse(text); });
  double from_doc_ms = best_ms(runs, [&] {
    if (!snapshot_from_json(parsed).ok()) std::abort();
  });

  // The binary reference: the same document as MessagePack and CBOR.
  std::vector<uint8_t> msgpack, cbor;
  double mp_enc_ms =
      best_ms(runs, [&] { msgpack = nlohmann::ordered_json::to_msgpack(to_json(s)); });
  double mp_dec_ms = best_ms(runs, [&] {
    if (!snapshot_from_json(nlohmann::json::from_msgpack(msgpack)).ok()) std::abort();
  });
  double cb_enc_ms = best_ms(runs, [&] { cbor = nlohmann::ordered_json::to_cbor(to_json(s)); });
  double cb_dec_ms = best_ms(runs, [&] {
    if (!snapshot_from_json(nlohmann::json::from_cbor(cbor)).ok()) std::abort();
  });

  if (auto r = snapshot_from_json(nlohmann::json::from_msgpack(msgpack)); !r.ok() || !(*r == s)) {
    std::abort();
  }

  // The endpoint fast path: one cluster's delta.
  EndpointDelta delta{1, 2, {s.clusters[0]}};
  std::string delta_text;
  double delta_ms = best_ms(runs, [&] {
    delta_text = encode(delta);
    if (!decode_delta(delta_text).ok()) std::abort();
  });

  std::printf("\n%-34s %13s  %-7s %18s  %s\n", "step", "time", "ratio", "size", "ratio");
  row("JSON encode (compact)", enc_ms, enc_ms, text.size(), text.size());
  row("JSON decode", dec_ms, enc_ms, text.size(), text.size());
  row("JSON pretty (/config_dump)", pretty_ms, enc_ms, pretty.size(), text.size());
  row("validate", val_ms, enc_ms, 0, text.size());
  row("  encode: model -> document", to_doc_ms, enc_ms, 0, text.size());
  row("  encode: document -> text", dump_ms, enc_ms, 0, text.size());
  row("  decode: text -> document", parse_ms, enc_ms, 0, text.size());
  row("  decode: document -> model", from_doc_ms, enc_ms, 0, text.size());
  row("MessagePack encode", mp_enc_ms, enc_ms, msgpack.size(), text.size());
  row("MessagePack decode", mp_dec_ms, enc_ms, msgpack.size(), text.size());
  row("CBOR encode", cb_enc_ms, enc_ms, cbor.size(), text.size());
  row("CBOR decode", cb_dec_ms, enc_ms, cbor.size(), text.size());
  row("delta (1 cluster) encode+decode", delta_ms, enc_ms, delta_text.size(), text.size());
  std::printf("\nJSON decode / MessagePack decode: %.2f; JSON size / MessagePack size: %.2f\n",
              dec_ms / mp_dec_ms,
              static_cast<double>(text.size()) / static_cast<double>(msgpack.size()));
  return 0;
}
