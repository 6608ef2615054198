// Tests of kubeconfig parsing, in-cluster config and the choice between them.
#include "controller/kube/kubeconfig.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

namespace gantry::controller::kube {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gantry-kubeconfig-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    fs::path p = fs::path(path_) / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// base64("CA-PEM"), base64("CERT"), base64("KEY")
constexpr const char* kInline = R"(
apiVersion: v1
kind: Config
current-context: b
contexts:
- name: a
  context: {cluster: one, user: u1}
- name: b
  context: {cluster: two, user: u2, namespace: team}
clusters:
- name: one
  cluster: {server: "https://one:6443"}
- name: two
  cluster:
    server: "https://two:6443/"
    certificate-authority-data: Q0EtUEVN
users:
- name: u1
  user: {token: t1}
- name: u2
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
)";

TEST(Kubeconfig, InlineDataOfTheCurrentContext) {
  auto a = parse_kubeconfig(kInline, "/nowhere", "cfg");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->server, "https://two:6443");  // trailing slash dropped
  EXPECT_EQ(a->ca_pem, "CA-PEM");
  EXPECT_EQ(a->client_cert_pem, "CERT");
  EXPECT_EQ(a->client_key_pem, "KEY");
  EXPECT_EQ(a->namespace_, "team");
  EXPECT_TRUE(a->token.empty());
  EXPECT_FALSE(a->insecure_skip_tls_verify);
  EXPECT_FALSE(a->in_cluster);
  EXPECT_NE(a->origin.find("context b"), std::string::npos);
}

TEST(Kubeconfig, FilesRelativeToTheKubeconfigAndTokenFile) {
  TempDir d;
  d.write("pki/ca.crt", "FILE-CA");
  d.write("pki/c.crt", "FILE-CERT");
  d.write("pki/c.key", "FILE-KEY");
  d.write("tok", "secret-token\n");
  std::string path = d.write("config", R"(
current-context: x
contexts: [{name: x, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "https://h:1", certificate-authority: pki/ca.crt,
            insecure-skip-tls-verify: true}}]
users: [{name: u, user: {client-certificate: pki/c.crt, client-key: pki/c.key, tokenFile: tok}}]
)");
  auto a = load_kubeconfig(path);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->ca_pem, "FILE-CA");
  EXPECT_EQ(a->client_cert_pem, "FILE-CERT");
  EXPECT_EQ(a->client_key_pem, "FILE-KEY");
  EXPECT_EQ(a->token, "secret-token");
  EXPECT_EQ(a->token_file, d.path() + "/tok");
  EXPECT_TRUE(a->insecure_skip_tls_verify);
}

TEST(Kubeconfig, ErrorsNameTheProblem) {
  struct Case {
    const char* name;
    const char* text;
    const char* want;
  } cases[] = {
      {"not yaml", "a: [", "not valid YAML"},
      {"no current context", "contexts: []", "no current-context"},
      {"unknown context", "current-context: x\ncontexts: []", "\"x\" is not in contexts"},
      {"unknown cluster",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: []",
       "cluster \"c\" of context \"x\" is not in clusters"},
      {"no server",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
       "clusters: [{name: c, cluster: {}}]",
       "has no server"},
      {"not a URL",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
       "clusters: [{name: c, cluster: {server: 'h:1'}}]",
       "is not an http(s) URL"},
      {"bad base64",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
       "clusters: [{name: c, cluster: {server: 'https://h', certificate-authority-data: '@@'}}]",
       "certificate-authority-data"},
      {"missing CA file",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
       "clusters: [{name: c, cluster: {server: 'https://h', certificate-authority: /no/ca}}]",
       "cannot read /no/ca"},
      {"exec plugin",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
       "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
       "users: [{name: u, user: {exec: {command: aws}}}]",
       "exec or auth-provider plugin"},
      {"cert without key",
       "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
       "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
       "users: [{name: u, user: {client-certificate-data: Q0VSVA==}}]",
       "must be given together"},
  };
  for (const auto& c : cases) {
    auto a = parse_kubeconfig(c.text, "/", "cfg");
    ASSERT_FALSE(a.ok()) << c.name;
    EXPECT_NE(a.error().message.find(c.want), std::string::npos)
        << c.name << ": " << a.error().message;
  }
}

struct FakeEnv {
  std::map<std::string, std::string> vars;
  GetEnv fn() const {
    return [this](const char* n) -> const char* {
      auto it = vars.find(n);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

TEST(InCluster, ReadsTheServiceAccount) {
  TempDir d;
  d.write("sa/token", "tok\n");
  d.write("sa/ca.crt", "SA-CA");
  d.write("sa/namespace", "gantry-system");
  FakeEnv env{{{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}};
  auto a = in_cluster_config(env.fn(), d.path() + "/sa");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->server, "https://10.0.0.1:443");
  EXPECT_EQ(a->token, "tok");
  EXPECT_EQ(a->token_file, d.path() + "/sa/token");
  EXPECT_EQ(a->ca_pem, "SA-CA");
  EXPECT_EQ(a->namespace_, "gantry-system");
  EXPECT_TRUE(a->in_cluster);

  FakeEnv v6{{{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "443"}}};
  auto b = in_cluster_config(v6.fn(), d.path() + "/sa");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->server, "https://[fd00::1]:443");

  auto missing = in_cluster_config(env.fn(), d.path() + "/nothing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("token"), std::string::npos);
}

TEST(Resolve, FlagThenInClusterThenKubeconfigEnvThenHome) {
  TempDir d;
  d.write("sa/token", "tok");
  d.write("sa/ca.crt", "CA");
  auto cfg = [](const char* server) {
    return std::string("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
                       "clusters: [{name: c, cluster: {server: '") +
           server + "'}}]\n";
  };
  std::string flag = d.write("flag.yaml", cfg("https://flag"));
  std::string envcfg = d.write("env.yaml", cfg("https://env"));
  d.write("home/.kube/config", cfg("https://home"));
  std::string sa = d.path() + "/sa";
  const std::string in_cluster_host = "10.0.0.1";
  struct Case {
    const char* name;
    std::string flag;
    std::map<std::string, std::string> env;
    std::string want_server;  // empty: an error
  } cases[] = {
      {"flag wins", flag,
       {{"KUBERNETES_SERVICE_HOST", in_cluster_host}, {"KUBERNETES_SERVICE_PORT", "443"},
        {"KUBECONFIG", envcfg}, {"HOME", d.path() + "/home"}},
       "https://flag"},
      {"in-cluster before $KUBECONFIG", "",
       {{"KUBERNETES_SERVICE_HOST", in_cluster_host}, {"KUBERNETES_SERVICE_PORT", "443"},
        {"KUBECONFIG", envcfg}},
       "https://10.0.0.1:443"},
      {"$KUBECONFIG list: first existing", "",
       {{"KUBECONFIG", d.path() + "/none.yaml:" + envcfg}, {"HOME", d.path() + "/home"}},
       "https://env"},
      {"home", "", {{"HOME", d.path() + "/home"}}, "https://home"},
      {"nothing", "", {{"HOME", d.path() + "/empty"}}, ""},
      {"$KUBECONFIG names nothing", "", {{"KUBECONFIG", d.path() + "/none.yaml"}}, ""},
  };
  for (const auto& c : cases) {
    FakeEnv env{c.env};
    auto a = resolve_cluster_access(c.flag, env.fn(), sa);
    if (c.want_server.empty()) {
      EXPECT_FALSE(a.ok()) << c.name;
      continue;
    }
    ASSERT_TRUE(a.ok()) << c.name << ": " << a.error().message;
    EXPECT_EQ(a->server, c.want_server) << c.name;
  }
}

}  // namespace
}  // namespace gantry::controller::kube
