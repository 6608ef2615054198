// Where the API server is and how to authenticate to it.
//
// Sources, in the order SNAPSHOT.md fixes: the --kubeconfig flag, else the
// in-cluster config (KUBERNETES_SERVICE_HOST/PORT and the service account's
// token, ca.crt and namespace under /var/run/secrets/kubernetes.io/serviceaccount),
// else the first existing file of $KUBECONFIG (a colon-separated list), else
// ~/.kube/config.
//
// A kubeconfig is read with yaml-cpp: current-context, the context's cluster
// (server, certificate-authority / certificate-authority-data,
// insecure-skip-tls-verify) and user (client-certificate(-data),
// client-key(-data), token, tokenFile). Relative file paths are relative to the
// kubeconfig's directory, as kubectl does. Files are read here, once, into PEM
// strings; only a token file is re-read later (ApiClient refreshes it), because
// projected service-account tokens rotate. Exec and auth-provider plugins are
// not supported: an error names them.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "proxy/base/result.h"

namespace gantry::controller::kube {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct ClusterAccess {
  std::string server;  // "https://10.0.0.1:443", no trailing slash
  std::string ca_pem;  // empty: the system's trust store
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;       // bearer token (read from token_file when that is set)
  std::string token_file;  // re-read periodically when set
  std::string namespace_;  // the context's namespace, or the pod's namespace in-cluster
  bool in_cluster = false;
  std::string origin;      // for logs: "kubeconfig /root/.kube/config (context kind)"
};

// Parses a kubeconfig's text; `base_dir` resolves relative paths; `origin` names
// the file in messages. Reads the files the kubeconfig points at.
Result<ClusterAccess> parse_kubeconfig(std::string_view text, const std::string& base_dir,
                                       const std::string& origin);
Result<ClusterAccess> load_kubeconfig(const std::string& path);

// The in-cluster config from `getenv` and the service-account directory.
using GetEnv = std::function<const char*(const char*)>;
Result<ClusterAccess> in_cluster_config(const GetEnv& getenv, const std::string& sa_dir);

// Picks the source: `flag_path` (--kubeconfig) > in-cluster (when
// KUBERNETES_SERVICE_HOST is set) > $KUBECONFIG > $HOME/.kube/config.
Result<ClusterAccess> resolve_cluster_access(const std::string& flag_path, const GetEnv& getenv,
                                             const std::string& sa_dir = kServiceAccountDir);

}  // namespace gantry::controller::kube
