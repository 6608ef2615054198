// Kubeconfig and in-cluster config loading; see kubeconfig.h.
#include "controller/kube/kubeconfig.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "controller/core/decode.h"

namespace gantry::controller::kube {

namespace {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
  return s.substr(i);
}

std::string scalar(const YAML::Node& n, const char* key) {
  YAML::Node v = n[key];
  if (!v || !v.IsScalar()) return "";
  return v.Scalar();
}

// Finds the entry `name` in a kubeconfig list (clusters, users, contexts) and
// returns its `field` map (cluster, user, context).
YAML::Node find_named(const YAML::Node& root, const char* list, const std::string& name,
                      const char* field) {
  YAML::Node l = root[list];
  if (!l || !l.IsSequence()) return YAML::Node();
  for (const auto& e : l)
    if (e.IsMap() && scalar(e, "name") == name) return e[field];
  return YAML::Node();
}

// Reads a PEM from `<key>-data` (base64) or `<key>` (a file path).
Status read_pem(const YAML::Node& n, const std::string& key, const std::string& base_dir,
                const std::string& where, std::string& out) {
  std::string data = scalar(n, (key + "-data").c_str());
  if (!data.empty()) {
    auto d = decode_base64(data);
    if (!d.ok()) return Error{where + "." + key + "-data: " + d.error().message};
    out = std::move(*d);
    return ok_status();
  }
  std::string path = scalar(n, key.c_str());
  if (path.empty()) return ok_status();
  auto f = read_file(resolve(base_dir, path));
  if (!f.ok()) return Error{where + "." + key + ": " + f.error().message};
  out = std::move(*f);
  return ok_status();
}

}  // namespace

Result<ClusterAccess> parse_kubeconfig(std::string_view text, const std::string& base_dir,
                                       const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Error{origin + ": not valid YAML: " + e.what()};
  }
  if (!root.IsMap()) return Error{origin + ": not a kubeconfig (expected a map)"};
  try {
    std::string ctx_name = scalar(root, "current-context");
    if (ctx_name.empty()) return Error{origin + ": no current-context"};
    YAML::Node ctx = find_named(root, "contexts", ctx_name, "context");
    if (!ctx || !ctx.IsMap())
      return Error{origin + ": current-context \"" + ctx_name + "\" is not in contexts"};
    ClusterAccess a;
    a.origin = "kubeconfig " + origin + " (context " + ctx_name + ")";
    a.namespace_ = scalar(ctx, "namespace");
    std::string cluster_name = scalar(ctx, "cluster");
    YAML::Node cluster = find_named(root, "clusters", cluster_name, "cluster");
    if (!cluster || !cluster.IsMap())
      return Error{origin + ": cluster \"" + cluster_name + "\" of context \"" + ctx_name +
                   "\" is not in clusters"};
    a.server = scalar(cluster, "server");
    if (a.server.empty()) return Error{origin + ": cluster \"" + cluster_name + "\" has no server"};
    while (!a.server.empty() && a.server.back() == '/') a.server.pop_back();
    if (!a.server.starts_with("https://") && !a.server.starts_with("http://"))
      return Error{origin + ": cluster \"" + cluster_name + "\": server \"" + a.server +
                   "\" is not an http(s) URL"};
    a.insecure_skip_tls_verify = scalar(cluster, "insecure-skip-tls-verify") == "true";
    std::string where = "cluster " + cluster_name;
    if (auto s = read_pem(cluster, "certificate-authority", base_dir, origin + ": " + where,
                          a.ca_pem);
        !s.ok())
      return s.error();
    std::string user_name = scalar(ctx, "user");
    if (!user_name.empty()) {
      YAML::Node user = find_named(root, "users", user_name, "user");
      if (!user || !user.IsMap())
        return Error{origin + ": user \"" + user_name + "\" of context \"" + ctx_name +
                     "\" is not in users"};
      if (user["exec"] || user["auth-provider"])
        return Error{origin + ": user \"" + user_name +
                     "\" uses an exec or auth-provider plugin, which gantry does not support; "
                     "use a client certificate or a token"};
      std::string uw = origin + ": user " + user_name;
      if (auto s = read_pem(user, "client-certificate", base_dir, uw, a.client_cert_pem); !s.ok())
        return s.error();
      if (auto s = read_pem(user, "client-key", base_dir, uw, a.client_key_pem); !s.ok())
        return s.error();
      if (a.client_cert_pem.empty() != a.client_key_pem.empty())
        return Error{uw + ": client-certificate and client-key must be given together"};
      a.token = scalar(user, "token");
      std::string token_file = scalar(user, "tokenFile");
      if (a.token.empty() && !token_file.empty()) {
        a.token_file = resolve(base_dir, token_file);
        auto t = read_file(a.token_file);
        if (!t.ok()) return Error{uw + ": tokenFile: " + t.error().message};
        a.token = trim(std::move(*t));
      }
    }
    return a;
  } catch (const YAML::Exception& e) {
    return Error{origin + ": " + e.what()};
  }
}

Result<ClusterAccess> load_kubeconfig(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) return Error{"kubeconfig: " + text.error().message};
  std::string dir = std::filesystem::path(path).parent_path().string();
  return parse_kubeconfig(*text, dir, path);
}

Result<ClusterAccess> in_cluster_config(const GetEnv& getenv, const std::string& sa_dir) {
  const char* host = getenv("KUBERNETES_SERVICE_HOST");
  const char* port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port)
    return Error{"in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                 "must be set"};
  ClusterAccess a;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  a.server = "https://" + h + ":" + port;
  a.in_cluster = true;
  a.origin = "in-cluster config (" + sa_dir + ")";
  a.token_file = sa_dir + "/token";
  auto token = read_file(a.token_file);
  if (!token.ok()) return Error{"in-cluster config: " + token.error().message};
  a.token = trim(std::move(*token));
  auto ca = read_file(sa_dir + "/ca.crt");
  if (!ca.ok()) return Error{"in-cluster config: " + ca.error().message};
  a.ca_pem = std::move(*ca);
  if (auto ns = read_file(sa_dir + "/namespace"); ns.ok()) a.namespace_ = trim(std::move(*ns));
  return a;
}

Result<ClusterAccess> resolve_cluster_access(const std::string& flag_path, const GetEnv& getenv,
                                             const std::string& sa_dir) {
  if (!flag_path.empty()) return load_kubeconfig(flag_path);
  if (const char* h = getenv("KUBERNETES_SERVICE_HOST"); h && *h)
    return in_cluster_config(getenv, sa_dir);
  if (const char* kc = getenv("KUBECONFIG"); kc && *kc) {
    std::string list = kc;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      std::string p = list.substr(start, end - start);
      std::error_code ec;
      if (!p.empty() && std::filesystem::exists(p, ec)) return load_kubeconfig(p);
      start = end + 1;
    }
    return Error{"$KUBECONFIG (" + list + ") names no existing file"};
  }
  const char* home = getenv("HOME");
  std::string path = std::string(home && *home ? home : "") + "/.kube/config";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return Error{"no cluster configuration: pass --kubeconfig, run in a pod, set $KUBECONFIG, "
                 "or create " + path};
  return load_kubeconfig(path);
}

}  // namespace gantry::controller::kube
