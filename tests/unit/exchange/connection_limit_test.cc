// filters.connectionLimit: the shared count (places taken and given back,
// across threads) and the filter against bare Exchanges (its refusal, the
// exempt sources, the zone shared by the rules of one route).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "proxy/exchange/chain.h"
#include "proxy/filters/connection_limit.h"
#include "proxy/snapshot/model.h"
#include "tests/unit/exchange/fake_exchange.h"

namespace gantry::exchange {
namespace {

using testing::FakeExchange;
using testing::FakeRequest;

TEST(ConnectionCounts, PlacesAreTakenUpToTheLimitAndGivenBack) {
  auto counts = filters::ConnectionCounts::create();
  auto a = counts->acquire("k", 2);
  auto b = counts->acquire("k", 2);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(counts->acquire("k", 2), nullptr);
  EXPECT_NE(counts->acquire("other", 2), nullptr) << "another key has its own places";
  EXPECT_EQ(counts->count("k"), 2u);
  a.reset();
  EXPECT_EQ(counts->count("k"), 1u);
  auto c = counts->acquire("k", 2);
  EXPECT_NE(c, nullptr);
  b.reset();
  c.reset();
  EXPECT_EQ(counts->count("k"), 0u);
  EXPECT_EQ(counts->keys(), 0u) << "a key holding no place is forgotten";
}

TEST(ConnectionCounts, ALeaseKeepsItsCountsAlive) {
  auto counts = filters::ConnectionCounts::create();
  auto lease = counts->acquire("k", 1);
  std::weak_ptr<filters::ConnectionCounts> weak = counts;
  counts.reset();
  EXPECT_FALSE(weak.expired());
  lease.reset();  // gives its place back to the counts it came from, then frees them
  EXPECT_TRUE(weak.expired());
}

TEST(ConnectionCounts, ThreadsNeverHoldMoreThanTheLimit) {
  auto counts = filters::ConnectionCounts::create();
  constexpr uint32_t kLimit = 3;
  std::atomic<int> holding{0}, most{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto l = counts->acquire("10.0.0.1", kLimit);
        if (!l) {
          ++refused;
          continue;
        }
        int now = ++holding;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --holding;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), static_cast<int>(kLimit));
  EXPECT_EQ(counts->count("10.0.0.1"), 0u);
}

struct Case {
  const char* name;
  snapshot::ConnectionLimit config;
  std::vector<std::string> held_by;  // client IPs of requests in progress
  std::string client;
  int want_status;  // 0: continues
};

TEST(ConnectionLimitFilter, Table) {
  const Case cases[] = {
      {"under the limit", {2, 503, {}, ""}, {"10.0.0.7"}, "10.0.0.7", 0},
      {"at the limit: 503", {2, 503, {}, ""}, {"10.0.0.7", "10.0.0.7"}, "10.0.0.7", 503},
      {"the status is the config's", {1, 429, {}, ""}, {"10.0.0.7"}, "10.0.0.7", 429},
      {"other clients do not count", {1, 503, {}, ""}, {"10.0.0.8", "10.0.0.9"}, "10.0.0.7", 0},
      {"exempt sources are not counted", {1, 503, {"10.0.0.0/24"}, ""}, {"10.0.0.7"}, "10.0.0.7", 0},
      {"exempt is per source", {1, 503, {"10.0.1.0/24"}, ""}, {"10.0.0.7"}, "10.0.0.7", 503},
      {"IPv6 clients", {1, 503, {}, ""}, {"2001:db8::1"}, "2001:db8::1", 503},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto counts = filters::ConnectionCounts::create();
    snapshot::Rule rule;
    rule.filters.connection_limit = c.config;
    ChainParts parts;
    parts.connection_counts = counts;
    parts.rule_label = "default/shop#0";
    FilterChain chain = build_chain(rule, parts);
    std::vector<std::unique_ptr<FakeExchange>> held;
    for (const auto& ip : c.held_by) {
      FakeRequest r;
      r.client_ip = ip;
      held.push_back(std::make_unique<FakeExchange>(r));
      Exchange& ex = held.back()->get();
      EXPECT_EQ(chain.run_request(ex), Verdict::kContinue);
    }
    FakeRequest r;
    r.client_ip = c.client;
    FakeExchange fx(r);
    Exchange& ex = fx.get();
    Verdict v = chain.run_request(ex);
    if (c.want_status == 0) {
      EXPECT_EQ(v, Verdict::kContinue);
      if (c.config.exempt_sources.empty()) {
        EXPECT_NE(ex.connection_lease, nullptr);
      }
    } else {
      EXPECT_EQ(v, Verdict::kRespond);
      EXPECT_EQ(ex.reply.status, c.want_status);
      EXPECT_EQ(ex.reply.gateway_reason, "client-connection-limit");
      EXPECT_EQ(ex.connection_lease, nullptr);
    }
  }
}

TEST(ConnectionLimitFilter, TheEndOfAnExchangeGivesThePlaceBack) {
  auto counts = filters::ConnectionCounts::create();
  snapshot::Rule rule;
  rule.filters.connection_limit = snapshot::ConnectionLimit{1, 503, {}, ""};
  ChainParts parts;
  parts.connection_counts = counts;
  parts.rule_label = "default/shop#0";
  FilterChain chain = build_chain(rule, parts);
  FakeExchange a(FakeRequest{}), b(FakeRequest{});
  EXPECT_EQ(chain.run_request(a.get()), Verdict::kContinue);
  EXPECT_EQ(chain.run_request(b.get()), Verdict::kRespond);
  a.get();  // reset(): the connection's next request, or the driver's end of the exchange
  EXPECT_EQ(chain.run_request(b.get()), Verdict::kContinue);
}

TEST(ConnectionLimitFilter, RulesOfOneZoneCountTogether) {
  auto counts = filters::ConnectionCounts::create();
  ChainParts parts;
  parts.connection_counts = counts;
  snapshot::Rule r1, r2, other;
  r1.filters.connection_limit = snapshot::ConnectionLimit{1, 503, {}, ""};
  r2.filters.connection_limit = r1.filters.connection_limit;
  other.filters.connection_limit = r1.filters.connection_limit;
  parts.rule_label = "default/shop#0";
  FilterChain c1 = build_chain(r1, parts);
  parts.rule_label = "default/shop#1";  // another rule of the same route: the same zone
  FilterChain c2 = build_chain(r2, parts);
  parts.rule_label = "default/blog#0";
  FilterChain c3 = build_chain(other, parts);
  FakeExchange a(FakeRequest{}), b(FakeRequest{}), c(FakeRequest{});
  EXPECT_EQ(c1.run_request(a.get()), Verdict::kContinue);
  EXPECT_EQ(c2.run_request(b.get()), Verdict::kRespond);
  EXPECT_EQ(c3.run_request(c.get()), Verdict::kContinue) << "another route is another zone";

  // An explicit zone joins routes (ingress-nginx: one zone per Ingress, whose hosts are routes of their own).
  snapshot::Rule z1, z2;
  z1.filters.connection_limit = snapshot::ConnectionLimit{1, 503, {}, "Ingress/default/web"};
  z2.filters.connection_limit = z1.filters.connection_limit;
  parts.rule_label = "default/web@a.example#0";
  FilterChain d1 = build_chain(z1, parts);
  parts.rule_label = "default/web@b.example#0";
  FilterChain d2 = build_chain(z2, parts);
  FakeExchange x(FakeRequest{}), y(FakeRequest{});
  EXPECT_EQ(d1.run_request(x.get()), Verdict::kContinue);
  EXPECT_EQ(d2.run_request(y.get()), Verdict::kRespond);
}

}  // namespace
}  // namespace gantry::exchange
