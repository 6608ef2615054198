// Tests of the status write-back computation (what to PATCH, and when not to)
// and of Lease bookkeeping.
#include <gtest/gtest.h>

#include <algorithm>

#include "controller/kube/lease.h"
#include "controller/kube/status_patch.h"

namespace gantry::controller::kube {
namespace {

using nlohmann::json;

RouteStatus desired(int64_t gen, bool accepted, const std::string& programmed_msg =
                                                    "served by the proxy (snapshot version 12)") {
  RouteStatus s;
  s.namespace_ = "default";
  s.name = "shop";
  s.observed_generation = gen;
  s.conditions = {
      {"Accepted", accepted, accepted ? "Accepted" : "Invalid",
       accepted ? "the route is valid" : "spec.rules[0]: regex \"(\" does not compile", gen},
      {"ResolvedRefs", true, "ResolvedRefs", "all references are resolved", gen},
      {"Programmed", accepted, accepted ? "Programmed" : "NotAccepted", programmed_msg, gen},
  };
  return s;
}

// The event verdict: the first False condition among Accepted and
// ResolvedRefs, else Normal; Programmed alone never makes a Warning.
TEST(RouteEvent, VerdictFromTheConditions) {
  struct Row {
    const char* name;
    bool accepted, resolved, programmed;
    const char* type;
    const char* reason;
  };
  const Row rows[] = {
      {"all_true", true, true, true, "Normal", "Accepted"},
      {"not_accepted", false, true, false, "Warning", "Invalid"},
      {"unresolved", true, false, true, "Warning", "BackendNotFound"},
      {"both_false_accepted_first", false, false, false, "Warning", "Invalid"},
      {"only_programmed_false", true, true, false, "Normal", "Accepted"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    RouteStatus s;
    s.namespace_ = "default";
    s.name = "shop";
    s.conditions = {
        {"Accepted", r.accepted, r.accepted ? "Accepted" : "Invalid", "regex \"(\" does not compile", 1},
        {"ResolvedRefs", r.resolved, r.resolved ? "ResolvedRefs" : "BackendNotFound", "service web not found", 1},
        {"Programmed", r.programmed, "Pending", "waiting (snapshot version 4)", 1},
    };
    RouteEvent e = route_event(s);
    EXPECT_EQ(e.type, r.type);
    EXPECT_EQ(e.reason, r.reason);
    if (e.type == std::string("Warning")) {
      EXPECT_EQ(e.message, r.accepted ? "service web not found" : "regex \"(\" does not compile");
    }
  }
}

TEST(RouteEvent, EventObjectNamesTheRoute) {
  RouteEvent e{"Warning", "Invalid", std::string(2000, 'm')};
  json ev = event_object(e, "team-a", "shop", "0f1e-uid", 1893456000000042, "gantry-1");
  EXPECT_EQ(ev["metadata"]["namespace"], "team-a");
  EXPECT_EQ(ev["metadata"]["generateName"], "shop.");
  EXPECT_EQ(ev["involvedObject"], (json{{"apiVersion", "gantry.dev/v1alpha1"}, {"kind", "GatewayRoute"},
                                        {"namespace", "team-a"}, {"name", "shop"}, {"uid", "0f1e-uid"}}));
  EXPECT_EQ(ev["type"], "Warning");
  EXPECT_EQ(ev["reason"], "Invalid");
  EXPECT_EQ(ev["message"].get<std::string>().size(), 1024u);  // clipped
  EXPECT_EQ(ev["eventTime"], "2030-01-01T00:00:00.000042Z");  // the order within a second
  EXPECT_EQ(ev["firstTimestamp"], "2030-01-01T00:00:00Z");
  EXPECT_EQ(ev["lastTimestamp"], "2030-01-01T00:00:00Z");
  EXPECT_EQ(ev["reportingComponent"], "gantry.dev/controller");  // required with eventTime
  EXPECT_EQ(ev["action"], "Translate");                            // so is an action
  EXPECT_EQ(ev["reportingInstance"], "gantry-1");
  EXPECT_EQ(event_object(e, "ns", "r", "", 0, std::string(200, 'i'))["reportingInstance"],
            std::string(128, 'i'));
  EXPECT_FALSE(event_object(e, "ns", "r", "", 0, "i")["involvedObject"].contains("uid"));
}

TEST(RouteStatusUpdate, FirstWriteHasEveryConditionAtNow) {
  auto upd = route_status_update(desired(3, true), json(), "2030-01-01T00:00:00Z");
  ASSERT_TRUE(upd);
  EXPECT_EQ((*upd)["observedGeneration"], 3);
  ASSERT_EQ((*upd)["conditions"].size(), 3u);
  for (const auto& c : (*upd)["conditions"]) {
    EXPECT_EQ(c["lastTransitionTime"], "2030-01-01T00:00:00Z");
    EXPECT_EQ(c["observedGeneration"], 3);
    EXPECT_EQ(c["status"], "True");
  }
  EXPECT_EQ((*upd)["conditions"][2]["message"], "served by the proxy");  // version dropped
}

TEST(RouteStatusUpdate, NothingWhenTheObservedStatusSaysIt) {
  auto first = route_status_update(desired(3, true), json(), "2030-01-01T00:00:00Z");
  ASSERT_TRUE(first);
  // What the informer sees come back, later: no write, even with another
  // snapshot version in Programmed's message.
  EXPECT_FALSE(route_status_update(desired(3, true, "served by the proxy (snapshot version 99)"),
                                   *first, "2030-01-01T00:05:00Z"));
}

TEST(RouteStatusUpdate, ChangesAndTransitionTimes) {
  json observed = *route_status_update(desired(3, true), json(), "T0");
  struct Case {
    const char* name;
    RouteStatus want;
    bool write;
    const char* accepted_ltt;  // lastTransitionTime of Accepted in the write
    const char* resolved_ltt;
  } cases[] = {
      {"same", desired(3, true), false, "", ""},
      {"new generation, same statuses: times kept", desired(4, true), true, "T0", "T0"},
      {"Accepted flips: only its time moves", desired(3, false), true, "T1", "T0"},
  };
  for (const auto& c : cases) {
    auto upd = route_status_update(c.want, observed, "T1");
    ASSERT_EQ(upd.has_value(), c.write) << c.name;
    if (!upd) continue;
    EXPECT_EQ((*upd)["conditions"][0]["lastTransitionTime"], c.accepted_ltt) << c.name;
    EXPECT_EQ((*upd)["conditions"][1]["lastTransitionTime"], c.resolved_ltt) << c.name;
  }
}

TEST(RouteStatusUpdate, MessageChangeWritesAndForeignConditionsStay) {
  json observed = *route_status_update(desired(1, true), json(), "T0");
  observed["conditions"].push_back(
      {{"type", "example.com/Audited"}, {"status", "True"}, {"reason", "Ok"}, {"message", ""},
       {"lastTransitionTime", "T0"}});
  RouteStatus want = desired(1, true);
  want.conditions[1].message = "something else";
  auto upd = route_status_update(want, observed, "T1");
  ASSERT_TRUE(upd);
  ASSERT_EQ((*upd)["conditions"].size(), 4u);
  EXPECT_EQ((*upd)["conditions"][1]["message"], "something else");
  EXPECT_EQ((*upd)["conditions"][1]["lastTransitionTime"], "T0");  // status did not flip
  EXPECT_EQ((*upd)["conditions"][3]["type"], "example.com/Audited");
}

// Whatever someone else wrote into the status (wrong JSON types included)
// must not throw; conditions of types we do not own stay.
TEST(RouteStatusUpdate, MalformedObservedConditionsDoNotThrow) {
  json observed = {{"conditions", json::array({json{{"type", 5}, {"status", "True"}},
                                               json("not an object"),
                                               json{{"type", "Foreign"}, {"status", "True"}}})}};
  std::optional<json> upd;
  ASSERT_NO_THROW(upd = route_status_update(desired(2, true), observed, "2030-01-01T00:00:00Z"));
  ASSERT_TRUE(upd);
  std::vector<std::string> types;
  for (const auto& c : (*upd)["conditions"]) types.push_back(c["type"].is_string() ? c["type"].get<std::string>() : "?");
  EXPECT_NE(std::find(types.begin(), types.end(), "Foreign"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "Accepted"), types.end());
}

TEST(RouteStatusUpdate, HugeMessagesAreClipped) {
  RouteStatus want = desired(1, false);
  want.conditions[0].message = std::string(40000, 'x');
  auto upd = route_status_update(want, json(), "T0");
  ASSERT_TRUE(upd);
  EXPECT_LE((*upd)["conditions"][0]["message"].get<std::string>().size(), 32768u);
}

TEST(StableMessage, DropsOnlyTheVersion) {
  EXPECT_EQ(stable_message("served by the proxy (snapshot version 1795613682857001)"),
            "served by the proxy");
  EXPECT_EQ(stable_message("waiting for the proxy"), "waiting for the proxy");
}

TEST(IngressStatusUpdate, IpOrHostname) {
  struct Case {
    const char* address;
    const char* field;
  } cases[] = {{"192.0.2.10", "ip"}, {"2001:db8::1", "ip"}, {"lb.example.com", "hostname"}};
  for (const auto& c : cases) {
    auto upd = ingress_status_update(c.address, json());
    ASSERT_TRUE(upd) << c.address;
    EXPECT_EQ((*upd)["loadBalancer"]["ingress"][0][c.field], c.address);
    EXPECT_FALSE(ingress_status_update(c.address, *upd)) << c.address;  // already there
  }
  auto other = ingress_status_update("192.0.2.10", json());
  EXPECT_TRUE(ingress_status_update("192.0.2.11", *other));
}

TEST(Times, Rfc3339) {
  EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(1714557600), "2024-05-01T10:00:00Z");
  EXPECT_EQ(format_rfc3339_micro(1714557600000007), "2024-05-01T10:00:00.000007Z");
}

TEST(Lease, RoundTrip) {
  LeaseRecord r;
  r.holder = "host_1";
  r.lease_duration_seconds = 15;
  r.acquire_time = "2024-05-01T10:00:00.000000Z";
  r.renew_time = "2024-05-01T10:00:02.000000Z";
  r.transitions = 3;
  r.resource_version = "77";
  json obj = lease_object("kube-system", "gantry-controller", r);
  EXPECT_EQ(obj["metadata"]["resourceVersion"], "77");
  EXPECT_EQ(obj["metadata"]["namespace"], "kube-system");
  auto back = parse_lease(obj);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->same_record(r));
  EXPECT_EQ(back->resource_version, "77");

  r.resource_version.clear();
  EXPECT_FALSE(lease_object("ns", "n", r)["metadata"].contains("resourceVersion"));
  auto no_spec = parse_lease(json{{"metadata", {{"resourceVersion", "1"}}}});
  ASSERT_TRUE(no_spec.ok());
  EXPECT_TRUE(no_spec->holder.empty());
  EXPECT_FALSE(parse_lease(json("x")).ok());
}

TEST(LeaseTracker, ExpiresByOurClockOnlyWhenTheRecordStopsChanging) {
  using Clock = LeaseTracker::Clock;
  using std::chrono::seconds;
  Clock::time_point t0{};
  LeaseRecord held;
  held.holder = "other";
  held.lease_duration_seconds = 15;
  held.renew_time = "r1";

  LeaseTracker t;
  EXPECT_TRUE(t.free(t0));  // nothing seen yet
  t.observe(held, t0);
  EXPECT_FALSE(t.free(t0 + seconds(14)));
  // A renewal (new renewTime) restarts the clock; a new resourceVersion alone does not.
  LeaseRecord renewed = held;
  renewed.renew_time = "r2";
  t.observe(renewed, t0 + seconds(10));
  EXPECT_FALSE(t.free(t0 + seconds(20)));
  LeaseRecord same = renewed;
  same.resource_version = "999";
  t.observe(same, t0 + seconds(20));
  EXPECT_TRUE(t.free(t0 + seconds(25)));

  LeaseRecord released = held;
  released.holder = "";
  t.observe(released, t0 + seconds(30));
  EXPECT_TRUE(t.free(t0 + seconds(30)));  // no holder: free at once
}

}  // namespace
}  // namespace gantry::controller::kube
