#include "proxy/http/chars.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace gantry::http::chars {
namespace {

bool octet_by_octet(std::string_view v) {
  for (char c : v)
    if (!is_field_char(c)) return false;
  return true;
}

TEST(FieldValue, EveryOctetAtEveryPositionAgreesWithTheOctetCheck) {
  // Lengths around the 8-octet words, every octet value at every position, in
  // a value otherwise made of allowed octets (letters, then obs-text, which
  // has the high bit the word check relies on).
  for (char filler : {'a', '\x80', '\xff', ' ', '\t'}) {
    for (size_t len = 1; len <= 25; ++len) {
      for (size_t pos = 0; pos < len; ++pos) {
        for (int c = 0; c < 256; ++c) {
          std::string v(len, filler);
          v[pos] = static_cast<char>(c);
          ASSERT_EQ(is_field_value(v), octet_by_octet(v)) << "len " << len << " pos " << pos << " octet " << c;
        }
      }
    }
  }
  EXPECT_TRUE(is_field_value(""));
}

TEST(FieldValue, RandomValuesAgreeWithTheOctetCheck) {
  std::mt19937 rng(7);
  // Mostly allowed octets, sometimes a CTL, DEL or HTAB.
  const std::string rare = std::string("\t\x7f\x00\x01\x1f\r\n\x0b", 8);
  for (int i = 0; i < 200000; ++i) {
    std::string v(rng() % 40, 'x');
    for (char& c : v) {
      const unsigned r = rng() % 100;
      c = r < 2 ? rare[rng() % rare.size()] : static_cast<char>(0x20 + rng() % 224);
    }
    ASSERT_EQ(is_field_value(v), octet_by_octet(v)) << i;
  }
}

TEST(LowerAscii, EveryOctetAtEveryPositionIsLoweredOnlyWhenAnUpperCaseLetter) {
  for (size_t len = 1; len <= 19; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int c = 0; c < 256; ++c) {
        for (char filler : {'A', 'z', '\x80', '@', '['}) {
          std::string v(len, filler);
          v[pos] = static_cast<char>(c);
          std::string want = v;
          for (char& o : want)
            if (o >= 'A' && o <= 'Z') o = static_cast<char>(o + 32);
          lower_ascii(v);
          ASSERT_EQ(v, want) << "len " << len << " pos " << pos << " octet " << c;
        }
      }
    }
  }
  std::string empty;
  lower_ascii(empty);
  EXPECT_EQ(empty, "");
  std::string name = "Content-Type";
  lower_ascii(name);
  EXPECT_EQ(name, "content-type");
}

}  // namespace
}  // namespace gantry::http::chars
