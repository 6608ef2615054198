// Fuzzes the ingress-nginx annotation reader (controller/core/ingress_nginx.h)
// and the translation of an Ingress of class nginx that carries them.
// Input: lines "name=value" (name without the nginx.ingress.kubernetes.io/
// prefix); the first line is the path of the Ingress's rule. Invariants: every
// annotation gets exactly one verdict; whatever translate emits passes the
// proxy's validator (translate checks each route with it, so an invalid route
// must come out as Accepted=False, never in the snapshot).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controller/core/ingress_nginx.h"
#include "controller/core/translate.h"
#include "proxy/snapshot/validate.h"

using namespace gantry::controller;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> annotations;
  std::string path = "/";
  size_t start = 0;
  bool first = true;
  while (start < in.size()) {
    size_t end = in.find('\n', start);
    if (end == std::string_view::npos) end = in.size();
    std::string_view line = in.substr(start, end - start);
    start = end + 1;
    if (first) {
      first = false;
      if (!line.empty()) path = std::string(line);
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    annotations[std::string(kNginxAnnotationPrefix).append(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  NginxParse p = parse_nginx_annotations(annotations);
  check(p.verdicts.size() == annotations.size());
  (void)parse_nginx_size(path);
  (void)nginx_rewrite_substitution(path);

  Cache cache;
  Service svc;
  svc.meta.name = "web";
  svc.ports.push_back({"http", 80, {}, "TCP"});
  cache.services["default/web"] = svc;
  Ingress ing;
  ing.meta.name = "fuzz";
  ing.meta.annotations = annotations;
  ing.ingress_class_name = "nginx";
  IngressRule rule;
  rule.host = "fuzz.example.com";
  IngressPath ip;
  ip.path = path;
  ip.path_type = "ImplementationSpecific";
  ip.backend.service_name = "web";
  ip.backend.port_number = 80;
  rule.paths.push_back(ip);
  ing.rules.push_back(rule);
  cache.ingresses["default/fuzz"] = ing;
  TranslateOptions o;
  o.ingress_nginx.enabled = true;
  o.ingress_nginx.classes = {"nginx"};
  o.ingress_nginx.serve_refused = true;
  TranslateResult r = translate(cache, o);
  r.snapshot.version = 1;
  check(gantry::snapshot::validate(r.snapshot).empty());
  check(r.ingress_nginx.size() == 1);
  return 0;
}
