// Helpers shared by the controller's unit tests: manifests in, a compact and
// readable dump of the snapshot and the statuses out.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "controller/core/translate.h"
#include "controller/core/yaml_source.h"

namespace gantry::controller::testing {

// Parses `yaml` (must be free of errors) into a cache.
inline Cache load(std::string_view yaml) {
  ParsedFile f = parse_manifest("test.yaml", yaml);
  Cache c;
  for (const auto& e : f.errors) ADD_FAILURE() << e.str();
  for (auto& o : f.objects) c.upsert(std::move(o));
  return c;
}

inline std::string ms(snapshot::Millis d) { return std::to_string(d.count()) + "ms"; }

// One line per route, rule, cluster and certificate:
//   route default/shop (GatewayRoute) hosts=a.com,b.com
//    rule0 PathPrefix:/api GET -> default/shop:8080*90 !"why"*10
//   cluster default/shop:8080 10.0.0.1:8080 10.0.0.2:8080(not-ready)
//   cert default/tls a.com
//   listener 10.0.0.1:80 http foo.com *.bar.com
//   listener 10.0.0.1:443 https clientcert   (clientcert-fallback: AllowInsecureFallback)
// (a route served on snapshot listeners ends with " on=10.0.0.1:80,...").
inline std::string dump(const snapshot::Snapshot& s) {
  static const char* kPath[] = {"Exact", "PathPrefix", "RegularExpression"};
  std::string out;
  for (const auto& r : s.routes) {
    out += "route " + r.id() + " (" + r.kind + ")";
    if (!r.hostnames.empty()) {
      out += " hosts=";
      for (size_t i = 0; i < r.hostnames.size(); ++i) out += (i ? "," : "") + r.hostnames[i];
    }
    if (!r.listeners.empty()) {
      out += " on=";
      for (size_t i = 0; i < r.listeners.size(); ++i) {
        if (i) out += ',';
        out += r.listeners[i];
      }
    }
    out += "\n";
    for (size_t i = 0; i < r.rules.size(); ++i) {
      out += " rule" + std::to_string(i);
      for (const auto& m : r.rules[i].matches) {
        out += std::string(" ") + kPath[static_cast<int>(m.path.type)] + ":" + m.path.value;
        if (m.method) out += " " + *m.method;
        for (const auto& h : m.headers) out += " h:" + h.name + "=" + h.value;
        for (const auto& q : m.query_params) out += " q:" + q.name + "=" + q.value;
      }
      out += " ->";
      for (const auto& b : r.rules[i].backends) {
        // Appended piece by piece, not "literal" + std::string&&: GCC 12 at -O3
        // reports a false -Wrestrict there (GCC PR 105329).
        out += ' ';
        if (b.unresolved.empty()) out += b.cluster; else out.append("!\"").append(b.unresolved).append("\"");
        if (b.weight != 1) out.append("*").append(std::to_string(b.weight));
      }
      out += "\n";
    }
  }
  for (const auto& c : s.clusters) {
    out += "cluster " + c.name;
    for (const auto& e : c.endpoints)
      out += " " + e.address + ":" + std::to_string(e.port) + (e.ready ? "" : "(not-ready)");
    out += "\n";
  }
  for (const auto& c : s.certificates) {
    out += "cert " + c.name;
    for (const auto& h : c.hostnames) out += " " + h;
    out += "\n";
  }
  for (const auto& l : s.listeners) {
    out += "listener ";
    out += l.name;
    out += l.tls ? " https" : " http";
    for (const auto& h : l.hostnames) {
      out += ' ';
      out += h;
    }
    if (l.client_validation) out += l.client_validation->insecure_fallback ? " clientcert-fallback" : " clientcert";
    out += '\n';
  }
  return out;
}

// "GatewayRoute default/shop Accepted=True ResolvedRefs=False(BackendNotFound)"
inline std::string dump(const std::vector<RouteStatus>& statuses) {
  std::string out;
  for (const auto& s : statuses) {
    out += s.kind + " " + s.id();
    for (const auto& c : s.conditions) {
      out += " " + c.type + "=" + (c.status ? "True" : "False");
      if (!c.status) out += "(" + c.reason + ")";
    }
    out += "\n";
  }
  return out;
}

inline std::string all_messages(const std::vector<RouteStatus>& statuses) {
  std::string out;
  for (const auto& s : statuses)
    for (const auto& c : s.conditions) out += c.message + "\n";
  return out;
}

}  // namespace gantry::controller::testing
