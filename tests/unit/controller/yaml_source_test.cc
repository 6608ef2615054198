// Tests of the YAML source and the object decoder: errors name file, line,
// document and field; a bad file contributes nothing; JSON decodes the same.
#include "controller/core/yaml_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "controller/core/decode.h"
#include "tests/unit/controller/test_util.h"

namespace gantry::controller {
namespace {

struct ErrorCase {
  const char* name;
  const char* yaml;
  const char* want;  // FileError::str()
};

class ParseErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ParseErrors, NameFileLineFieldAndDocument) {
  ParsedFile f = parse_manifest("routes.yaml", GetParam().yaml);
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_EQ(f.errors[0].str(), GetParam().want);
  EXPECT_TRUE(f.objects.empty()) << "a file with an error contributes nothing";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseErrors,
    ::testing::Values(
        ErrorCase{"EnumValue", R"(apiVersion: v1
kind: Service
metadata: {name: ok}
---
apiVersion: gantry.dev/v1alpha1
kind: GatewayRoute
metadata:
  name: shop
spec:
  rules:
  - matches:
    - path:
        type: Prefix
        value: /api
)",
                  "routes.yaml:13: spec.rules[0].matches[0].path.type: unknown value \"Prefix\" "
                  "(want Exact, PathPrefix, RegularExpression) [document 2]"},
        ErrorCase{"YamlSyntax", "apiVersion: v1\nkind: Service\nmetadata: {name: [unclosed\n",
                  "routes.yaml:4: yaml: end of sequence flow not found [document 1]"},
        ErrorCase{"MissingName", "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n",
                  "routes.yaml:3: metadata.name: required [document 1]"},
        ErrorCase{
            "BadName", "apiVersion: v1\nkind: Service\nmetadata: {name: Shop_1}\n",
            "routes.yaml:3: metadata.name: \"Shop_1\" is not a valid name (lower-case RFC 1123 "
            "subdomain) [document 1]"},
        ErrorCase{"WrongType",
                  "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: 80\n",
                  "routes.yaml:5: spec.ports: expected a list [document 1]"},
        ErrorCase{
            "NotAnInteger",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: http\n",
            "routes.yaml:6: spec.ports[0].port: expected an integer, got \"http\" [document 1]"},
        ErrorCase{
            "BadBase64", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  k: \"!!!\"\n",
            "routes.yaml:5: data.k: not valid base64 (length is not a multiple of 4) [document 1]"},
        ErrorCase{
            "BadTimestamp",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  creationTimestamp: yesterday\n",
            "routes.yaml:5: metadata.creationTimestamp: not an RFC 3339 timestamp: \"yesterday\" "
            "[document 1]"},
        ErrorCase{"NotAnObject", "- a\n- b\n",
                  "routes.yaml:1: expected a Kubernetes object (a map with apiVersion and kind) "
                  "[document 1]"},
        ErrorCase{"IngressPathType",
                  "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n"
                  "  rules:\n  - http:\n      paths:\n      - {path: /, pathType: Regex, backend: "
                  "{service: {name: s, port: {number: 1}}}}\n",
                  "routes.yaml:8: spec.rules[0].http.paths[0].pathType: unknown value \"Regex\" "
                  "(want Exact, Prefix, ImplementationSpecific) [document 1]"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

TEST(ParseManifest, DecodesEveryKind) {
  ParsedFile f = parse_manifest("all.yaml", R"(
apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: prod
  uid: 1234
  generation: 2
  resourceVersion: "77"
  creationTimestamp: "2024-01-02T03:04:05Z"
  labels: {app: shop}
  annotations: {note: hi}
spec:
  type: NodePort
  selector: {app: shop}
  ports:
  - {name: http, port: 80, targetPort: web, protocol: TCP}
  - {port: 81}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: shop-x, namespace: prod, labels: {kubernetes.io/service-name: shop}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: false, serving: true, terminating: true}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
type: kubernetes.io/tls
data: {tls.crt: aGVsbG8=, tls.key: d29ybGQ=}
stringData: {tls.key: override}
---
apiVersion: v1
kind: LimitRange
metadata: {name: ignored}
---
)");
  ASSERT_TRUE(f.errors.empty()) << f.errors[0].str();
  ASSERT_EQ(f.objects.size(), 3u);
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_EQ(f.warnings[0], "all.yaml: line 36: kind LimitRange (v1) is not used by gantry; skipped");

  const auto& svc = std::get<Service>(f.objects[0]);
  EXPECT_EQ(svc.meta.key(), "prod/shop");
  EXPECT_EQ(svc.meta.uid, "1234");
  EXPECT_EQ(svc.meta.generation, 2);
  EXPECT_EQ(svc.meta.resource_version, "77");
  EXPECT_EQ(svc.meta.creation_timestamp, 1704164645);
  EXPECT_EQ(svc.meta.labels.at("app"), "shop");
  EXPECT_EQ(svc.meta.annotations.at("note"), "hi");
  EXPECT_EQ(svc.type, "NodePort");
  ASSERT_EQ(svc.ports.size(), 2u);
  EXPECT_EQ(svc.ports[0].target_port, (IntOrString{std::nullopt, "web"}));
  EXPECT_EQ(svc.ports[1].target_port, IntOrString{});
  EXPECT_EQ(svc.ports[1].port, 81);

  const auto& slice = std::get<EndpointSlice>(f.objects[1]);
  EXPECT_EQ(slice.service_name(), "shop");
  ASSERT_EQ(slice.endpoints.size(), 1u);
  EXPECT_EQ(slice.endpoints[0].conditions, (EndpointConditions{false, true, true}));

  const auto& secret = std::get<Secret>(f.objects[2]);
  EXPECT_EQ(secret.meta.namespace_, "default");
  EXPECT_EQ(secret.data.at("tls.crt"), "hello");
  EXPECT_EQ(secret.data.at("tls.key"), "override");
}

TEST(ParseManifest, ListKindAndUnsupportedApiVersion) {
  ParsedFile f = parse_manifest("l.yaml", R"(
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: a}}
- {apiVersion: v1, kind: Service, metadata: {name: b}}
- {apiVersion: extensions/v1beta1, kind: Ingress, metadata: {name: old}}
)");
  ASSERT_TRUE(f.errors.empty());
  EXPECT_EQ(f.objects.size(), 2u);
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_NE(f.warnings[0].find("want networking.k8s.io/v1"), std::string::npos);
}

TEST(ParseManifest, SemanticProblemsAreNotParseErrors) {
  ParsedFile f = parse_manifest("r.yaml", R"(
apiVersion: gantry.dev/v1alpha1
kind: GatewayRoute
metadata: {name: shop}
spec:
  hostnames: ["NOT VALID"]
  rules:
  - matches: [{path: {type: RegularExpression, value: "("}}]
    filters: {unknownFilter: {}}
    policy: {timeouts: {request: soon}}
)");
  EXPECT_TRUE(f.errors.empty());
  ASSERT_EQ(f.objects.size(), 1u);
  EXPECT_EQ(std::get<GatewayRoute>(f.objects[0]).rules[0].filters.unknown,
            std::vector<std::string>{"unknownFilter"});
}

// yaml-cpp's LoadAll loops forever, allocating, on some malformed streams
// (jbeder/yaml-cpp#1040); documents are loaded one at a time instead.
TEST(ParseManifest, DocumentsAreSplitAtMarkers) {
  ParsedFile loop = parse_manifest("loop.yaml", "{n},\n");
  ASSERT_EQ(loop.errors.size(), 1u);  // a map without kind, reported instead of a hang
  EXPECT_EQ(loop.errors[0].str(), "loop.yaml:1: kind: required [document 1]");
  ParsedFile f =
      parse_manifest("m.yaml",
                     "# leading comment\n---\n"
                     "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n...\n"
                     "--- {apiVersion: v1, kind: Service, metadata: {name: b}}\n"
                     "---\n---\n"
                     "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {ports: x}\n");
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_EQ(f.errors[0].str(), "m.yaml:13: spec.ports: expected a list [document 4]");
}

TEST(ParseManifest, AliasBombIsBounded) {
  std::string text =
      "apiVersion: gantry.dev/v1alpha1\nkind: GatewayRoute\nmetadata: {name: x}\n"
      "a: &a {path: {value: /}, headers: [{name: a, value: b}]}\n"
      "spec:\n  rules:\n";
  std::string m = "{matches: [";
  for (int i = 0; i < 60; ++i) m += std::string(i ? "," : "") + "*a";
  m += "]}";
  text += "  - &r " + m + "\n";
  for (int i = 0; i < 2000; ++i) text += "  - *r\n";
  ParsedFile f = parse_manifest("bomb.yaml", text);
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_NE(f.errors[0].message.find("too large"), std::string::npos) << f.errors[0].str();
}

TEST(Decode, JsonDecodesLikeYaml) {
  auto from_json = decode_json_object(R"({"apiVersion":"gantry.dev/v1alpha1","kind":"GatewayRoute",
    "metadata":{"name":"shop","namespace":"web","generation":4},
    "spec":{"hostnames":["a.com"],"rules":[{"matches":[{"path":{"type":"Exact","value":"/x"}}],
    "backendRefs":[{"name":"svc","port":8080,"weight":3}],
    "policy":{"circuitBreaker":{"failureRatio":0.25},"retry":{"on":[503,"reset"]}}}]}})");
  ASSERT_TRUE(from_json.ok()) << from_json.error().message;
  ParsedFile from_yaml = parse_manifest("x.yaml", R"(
apiVersion: gantry.dev/v1alpha1
kind: GatewayRoute
metadata: {name: shop, namespace: web, generation: 4}
spec:
  hostnames: [a.com]
  rules:
  - matches: [{path: {type: Exact, value: /x}}]
    backendRefs: [{name: svc, port: 8080, weight: 3}]
    policy: {circuitBreaker: {failureRatio: 0.25}, retry: {on: [503, reset]}}
)");
  ASSERT_EQ(from_yaml.objects.size(), 1u);
  EXPECT_EQ(std::get<GatewayRoute>(*from_json), std::get<GatewayRoute>(from_yaml.objects[0]));

  auto bad = decode_json_object(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
    "spec":{"ports":[{"port":"x"}]}})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "spec.ports[0].port: expected an integer, got \"x\"");
  EXPECT_FALSE(decode_json_object("{").ok());
  EXPECT_FALSE(
      decode_json_object(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}})").ok());
}

TEST(Decode, Rfc3339AndBase64) {
  EXPECT_EQ(*parse_rfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*parse_rfc3339("2024-01-02T03:04:05.123Z"), 1704164645);
  EXPECT_EQ(*parse_rfc3339("2024-01-02T05:04:05+02:00"), 1704164645);
  for (const char* bad : {"2024-01-02", "2024-13-02T00:00:00Z", "2024-01-02T00:00:00", "x"})
    EXPECT_FALSE(parse_rfc3339(bad).ok()) << bad;
  EXPECT_EQ(*decode_base64("aGVsbG8="), "hello");
  EXPECT_EQ(*decode_base64("aGVs\nbG8h"),
            "hell"
            "o!");
  EXPECT_EQ(*decode_base64(""), "");
  for (const char* bad : {"aGVsbG8", "a===", "aG=s", "****"})
    EXPECT_FALSE(decode_base64(bad).ok()) << bad;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gantry-ctl-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
  }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(LoadDirectory, SortedFilesBadFileContributesNothingDuplicatesWarn) {
  TempDir dir;
  dir.write("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n");
  dir.write("a.yml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n"
            "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {type: Other}\n");
  dir.write("c.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: c}\n---\n"
            "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n");
  dir.write("notes.txt", "not a manifest");
  dir.write(".hidden.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: hidden}\n");
  std::filesystem::create_directory(dir.str() + "/sub.yaml");

  DirectoryLoad d = load_directory(dir.str());
  EXPECT_EQ(d.files, 3u);
  EXPECT_EQ(d.files_with_errors, 1u);
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0].str(),
            "a.yml:8: spec.type: unknown value \"Other\" (want ClusterIP, NodePort, LoadBalancer, "
            "ExternalName) [document 2]");
  std::vector<std::string> names;
  for (const auto& [k, v] : d.cache.services) names.push_back(k);
  EXPECT_EQ(names, (std::vector<std::string>{"default/b", "default/c"}));
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_EQ(d.warnings[0],
            "c.yaml: Service default/b is already defined in b.yaml; this definition is ignored");
}

// With a LastGood memory, a file saved with an error keeps serving what its
// previous version defined, while the error is still reported; a fix replaces
// it; a deleted file is forgotten; a file that never parsed contributes nothing.
TEST(LoadDirectory, BrokenFileKeepsItsLastGoodVersion) {
  TempDir dir;
  auto service_names = [](const DirectoryLoad& d) {
    std::vector<std::string> names;
    for (const auto& [k, v] : d.cache.services) names.push_back(k);
    return names;
  };
  using Names = std::vector<std::string>;
  LastGood last_good;
  dir.write("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a1}\n---\n"
                      "apiVersion: v1\nkind: Service\nmetadata: {name: a2}\n");
  dir.write("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n");
  dir.write("never.yaml", "kind: [\n");
  DirectoryLoad d = load_directory(dir.str(), &last_good);
  EXPECT_EQ(service_names(d), (Names{"default/a1", "default/a2", "default/b"}));
  EXPECT_EQ(d.files_with_errors, 1u);
  EXPECT_EQ(d.files_kept, 0u);  // never.yaml never parsed: nothing to keep

  // a.yaml is saved half-edited: still reported, but a1 and a2 keep serving.
  dir.write("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a1\n");
  d = load_directory(dir.str(), &last_good);
  EXPECT_EQ(service_names(d), (Names{"default/a1", "default/a2", "default/b"}));
  EXPECT_EQ(d.files_with_errors, 2u);
  EXPECT_EQ(d.files_kept, 1u);
  ASSERT_EQ(d.errors.size(), 2u);
  EXPECT_EQ(d.errors[0].file, "a.yaml");
  bool warned = false;
  for (const auto& w : d.warnings) warned = warned || w.starts_with("a.yaml: has errors; its last good version (2 objects)");
  EXPECT_TRUE(warned);

  // Without the memory, the same directory drops a.yaml's objects.
  EXPECT_EQ(service_names(load_directory(dir.str())), (Names{"default/b"}));

  // The fix applies; then deleting the file forgets it.
  dir.write("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a3}\n");
  d = load_directory(dir.str(), &last_good);
  EXPECT_EQ(service_names(d), (Names{"default/a3", "default/b"}));
  std::filesystem::remove(dir.str() + "/a.yaml");
  d = load_directory(dir.str(), &last_good);
  EXPECT_EQ(service_names(d), (Names{"default/b"}));
  EXPECT_EQ(last_good.count("a.yaml"), 0u);
  // A new broken a.yaml has no memory to fall back to.
  dir.write("a.yaml", "kind: [\n");
  d = load_directory(dir.str(), &last_good);
  EXPECT_EQ(service_names(d), (Names{"default/b"}));
  EXPECT_EQ(d.files_kept, 0u);
}

TEST(LoadDirectory, MissingDirectory) {
  DirectoryLoad d = load_directory("/nonexistent/gantry");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_NE(d.errors[0].str().find("cannot read directory"), std::string::npos);
  EXPECT_EQ(d.cache.size(), 0u);
}

TEST(Cache, UpsertReportsChangesOnly) {
  Cache c;
  Service s;
  s.meta.name = "a";
  EXPECT_TRUE(c.upsert(s));
  EXPECT_FALSE(c.upsert(s));
  s.ports.push_back({"http", 80, {}, "TCP"});
  EXPECT_TRUE(c.upsert(s));
  EXPECT_TRUE(c.contains(s));
  EXPECT_TRUE(c.erase("Service", "default/a"));
  EXPECT_FALSE(c.erase("Service", "default/a"));
  EXPECT_EQ(c.size(), 0u);
}

}  // namespace
}  // namespace gantry::controller
