// new_request_id and hex8 (net/wire.h): a request id is 32 lower-case hex
// digits, and hex8 writes every nibble value as its digit.
#include "proxy/net/wire.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace gantry::net {
namespace {

TEST(Hex8, WritesEachNibbleLowestFirst) {
  char out[8];
  hex8(0x76543210u, out);
  EXPECT_EQ(std::string(out, 8), "01234567");
  hex8(0xfedcba98u, out);
  EXPECT_EQ(std::string(out, 8), "89abcdef");
  hex8(0u, out);
  EXPECT_EQ(std::string(out, 8), "00000000");
  hex8(0xffffffffu, out);
  EXPECT_EQ(std::string(out, 8), "ffffffff");
  hex8(0x0a09f0a9u, out);
  EXPECT_EQ(std::string(out, 8), "9a0f90a0");
}

TEST(NewRequestId, IsThirtyTwoLowerCaseHexDigitsAndDiffers) {
  std::set<std::string> seen;
  std::set<char> digits;
  for (int i = 0; i < 1000; ++i) {
    std::string id = "left over";
    new_request_id(id);
    ASSERT_EQ(id.size(), 32u);
    for (char c : id) {
      ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
      digits.insert(c);
    }
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(digits.size(), 16u);  // every digit turns up in 32,000 random ones
}

}  // namespace
}  // namespace gantry::net
