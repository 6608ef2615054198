// LastHitMap: the remembered entry answers only for its own key, and no
// erasure leaves it pointing at a freed node (the ASan build would report it).
#include "proxy/base/last_hit_map.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gantry {
namespace {

TEST(LastHitMap, LookupsAlternatingBetweenKeysGetEachKeysEntry) {
  LastHitMap<int> m;
  const std::vector<std::string> keys = {"a/one:80", "a/two:80", "a/one:8", "", "a/one:80x"};
  for (size_t i = 0; i < keys.size(); ++i) m[keys[i]] = static_cast<int>(i);
  for (int round = 0; round < 3; ++round)
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(m[keys[i]], static_cast<int>(i)) << keys[i];
      EXPECT_EQ(m[keys[i]], static_cast<int>(i)) << keys[i] << " (remembered)";
      ASSERT_NE(m.find(keys[i]), nullptr);
      EXPECT_EQ(*m.find(keys[i]), static_cast<int>(i));
    }
  EXPECT_EQ(m.size(), keys.size());
  EXPECT_EQ(m.find("absent"), nullptr);
  EXPECT_EQ(m.size(), keys.size()) << "find does not insert";
}

TEST(LastHitMap, ErasingTheRememberedEntryForgetsIt) {
  LastHitMap<std::string> m;
  m["x"] = std::string(1, '1');
  ASSERT_NE(m.find("x"), nullptr);  // remembered
  m.erase("x");
  EXPECT_EQ(m.find("x"), nullptr);
  EXPECT_EQ(m["x"], "") << "a new entry, not the erased one";

  m["y"] = std::string(1, '2');
  m.erase_if([](const auto& e) { return e.first == "y"; });
  EXPECT_EQ(m.find("y"), nullptr);
  ASSERT_NE(m.find("x"), nullptr);

  m.clear();
  EXPECT_EQ(m.find("x"), nullptr);
  EXPECT_EQ(m.size(), 0u);
}

TEST(LastHitMap, EraseIfSeesEveryEntryAndCanEditThem) {
  LastHitMap<std::vector<int>> m;
  for (int i = 0; i < 20; ++i) m[std::to_string(i)] = {i, i + 1};
  int seen = 0;
  m.erase_if([&](auto& e) {
    std::vector<int>& v = e.second;
    ++seen;
    v.pop_back();
    return v.front() % 2 == 0;
  });
  EXPECT_EQ(seen, 20);
  EXPECT_EQ(m.size(), 10u);
  for (const auto& [k, v] : m) {
    EXPECT_EQ(v.size(), 1u) << k;
    EXPECT_EQ(v.front() % 2, 1) << k;
  }
}

}  // namespace
}  // namespace gantry
