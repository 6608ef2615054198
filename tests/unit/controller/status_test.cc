// Tests of the Programmed condition, the status change log lines and /status JSON.
#include "controller/core/status.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/controller/test_util.h"

namespace gantry::controller {
namespace {

constexpr std::string_view kObjects = R"(
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 80}]}
---
apiVersion: gantry.dev/v1alpha1
kind: GatewayRoute
metadata: {name: a}
spec: {rules: [{backendRefs: [{name: svc, port: 80}]}]}
---
apiVersion: gantry.dev/v1alpha1
kind: GatewayRoute
metadata: {name: bad}
spec: {rules: [{matches: [{path: {value: nope}}], backendRefs: [{name: svc, port: 80}]}]}
)";

std::string programmed(const std::vector<RouteStatus>& st) {
  std::string out;
  for (const auto& s : st) {
    const Condition* c = s.find("Programmed");
    out += s.name + "=" + (c ? (c->status ? "True" : "False(" + c->reason + ")") : "none") + " ";
  }
  return out;
}

TEST(SetProgrammed, PendingAckedRejected) {
  TranslateResult r = translate(testing::load(kObjects), {});
  r.snapshot.version = 7;

  auto st = r.statuses;
  set_programmed(st, r.snapshot, nullptr, "");
  EXPECT_EQ(programmed(st), "a=False(Pending) bad=False(NotAccepted) ");

  set_programmed(st, r.snapshot, &r.snapshot, "");
  EXPECT_EQ(programmed(st), "a=True bad=False(NotAccepted) ");
  EXPECT_EQ(st[0].conditions.size(), 3u) << "Programmed is replaced, not appended";
  EXPECT_NE(st[0].find("Programmed")->message.find("version 7"), std::string::npos);

  snapshot::Snapshot older = r.snapshot;
  older.routes[0].rules[0].backends[0].weight = 5;
  set_programmed(st, r.snapshot, &older, "route default/a: boom");
  EXPECT_EQ(programmed(st), "a=False(Rejected) bad=False(NotAccepted) ");
  EXPECT_NE(st[0].find("Programmed")->message.find("boom"), std::string::npos);
}

TEST(StatusChanges, LogsChangesAndRemovals) {
  TranslateResult r = translate(testing::load(kObjects), {});
  std::vector<std::string> first = status_changes({}, r.statuses);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0], "route default/a: Accepted=True, ResolvedRefs=True");
  EXPECT_EQ(
      first[1],
      "route default/bad: Accepted=False (Invalid): spec.rules[0].matches[0].path.value: path "
      "\"nope\" must start with \"/\", ResolvedRefs=True");
  EXPECT_TRUE(status_changes(r.statuses, r.statuses).empty());
  std::vector<RouteStatus> fewer(r.statuses.begin(), r.statuses.begin() + 1);
  EXPECT_EQ(status_changes(r.statuses, fewer),
            std::vector<std::string>{"route default/bad: removed"});
}

TEST(StatusJson, Shape) {
  TranslateResult r = translate(testing::load(kObjects), {});
  auto j = nlohmann::json::parse(statuses_to_json(r.statuses));
  ASSERT_EQ(j["routes"].size(), 2u);
  EXPECT_EQ(j["routes"][1]["name"], "bad");
  EXPECT_EQ(j["routes"][1]["kind"], "GatewayRoute");
  EXPECT_EQ(j["routes"][1]["conditions"][0]["type"], "Accepted");
  EXPECT_EQ(j["routes"][1]["conditions"][0]["status"], "False");
  EXPECT_EQ(j["routes"][1]["conditions"][0]["reason"], "Invalid");
}

}  // namespace
}  // namespace gantry::controller
