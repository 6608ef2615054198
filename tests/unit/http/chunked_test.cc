// ChunkedDecoder table: valid bodies (extensions, trailers, trailing bytes of the
// next message, incomplete input) and framing errors. Each row is fed in one
// shot, byte by byte, and split in two at every position; all must agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "proxy/http/parser.h"

namespace gantry::http {
namespace {

struct Row {
  const char* name;
  std::string input;
  bool ok;
  bool done = false;
  size_t consumed = 0;  // total over all feeds, when ok
  uint64_t data_bytes = 0;
  const char* payload = nullptr;  // the de-chunked data, when the row checks it
};
void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

struct Outcome {
  bool ok = true;
  bool done = false;
  size_t consumed = 0;
  uint64_t data_bytes = 0;
  std::string payload;  // what feed() appended to its payload sink
};

// Feeds `in` in pieces of the given sizes (the last piece takes the rest), the way
// the proxy does: bytes after `done` are not offered again.
Outcome feed_pieces(const std::string& in, const std::vector<size_t>& cuts) {
  ChunkedDecoder d;
  Outcome o;
  size_t pos = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(in.size());
  for (size_t end : ends) {
    if (end < pos) continue;
    auto r = d.feed(std::string_view(in).substr(pos, end - pos), &o.payload);
    if (!r.ok()) {
      o.ok = false;
      return o;
    }
    o.consumed += r->consumed;
    pos = end;
    if (r->done) {
      o.done = true;
      break;
    }
  }
  o.data_bytes = d.data_bytes();
  return o;
}

std::vector<Row> rows() {
  const std::string big_trailer = "0\r\nX-T: " + std::string(9000, 't') + "\r\n\r\n";
  const std::string long_ext = "5;x=" + std::string(5000, 'e') + "\r\nhello\r\n0\r\n\r\n";
  return {
      {"last_chunk_only", "0\r\n\r\n", true, true, 5, 0},
      {"one_chunk", "5\r\nhello\r\n0\r\n\r\n", true, true, 15, 5, "hello"},
      {"two_chunks_upper_hex", "A\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n", true, true, 28, 13, "0123456789abc"},
      {"lower_hex", "a\r\n0123456789\r\n0\r\n\r\n", true, true, 20, 10},
      {"leading_zeros", "0005\r\nhello\r\n000\r\n\r\n", true, true, 20, 5},
      {"extensions", "5;name=value\r\nhello\r\n0;last\r\n\r\n", true, true, 31, 5, "hello"},
      {"extension_with_bws", "5 ;a=b\r\nhello\r\n0\t; z\r\n\r\n", true, true, 24, 5},
      {"quoted_extension", "5;a=\"x y\"\r\nhello\r\n0\r\n\r\n", true, true, 23, 5},
      {"trailers", "0\r\nX-Checksum: abc\r\nX-B:c\r\n\r\n", true, true, 29, 0},
      {"data_with_crlf_inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", true, true, 14, 4, "\r\n\r\n"},
      {"next_message_not_consumed", "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", true, true, 13, 3, "abc"},
      {"incomplete_in_data", "5\r\nhel", true, false, 6, 3, "hel"},
      {"incomplete_in_size", "1", true, false, 1, 0},
      {"incomplete_in_trailers", "0\r\nX-A: b\r\n", true, false, 11, 0},
      {"max_chunk_size_accepted", "1000000000000000\r\nabc", true, false, 21, 3},
      // Errors.
      {"empty", "", true, false, 0, 0},
      {"bad_hex", "g\r\nx\r\n0\r\n\r\n", false},
      {"empty_size", "\r\n0\r\n\r\n", false},
      {"hex_prefix", "0x5\r\nhello\r\n0\r\n\r\n", false},
      {"negative_size", "-5\r\nhello\r\n0\r\n\r\n", false},
      {"plus_size", "+5\r\nhello\r\n0\r\n\r\n", false},
      {"space_without_extension", "5 \r\nhello\r\n0\r\n\r\n", false},
      {"leading_space", " 5\r\nhello\r\n0\r\n\r\n", false},
      {"bare_lf_after_size", "5\nhello\r\n0\r\n\r\n", false},
      {"bare_cr_after_size", "5\rhello\r\n0\r\n\r\n", false},
      {"data_longer_than_size", "5\r\nhelloX\r\n0\r\n\r\n", false},
      {"cr_without_lf_after_data", "5\r\nhello\rX0\r\n\r\n", false},
      {"bare_lf_after_data", "5\r\nhello\n0\r\n\r\n", false},
      {"size_over_2_pow_60", "1000000000000001\r\n", false},
      {"size_overflows_u64", "FFFFFFFFFFFFFFFFF\r\n", false},
      {"control_char_in_extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", false},
      {"lf_in_extension", "5;a\nb\r\nhello\r\n0\r\n\r\n", false},
      {"extension_too_long", long_ext, false},
      {"trailer_obs_fold", "0\r\nX-A: b\r\n c\r\n\r\n", false},
      {"trailer_without_colon", "0\r\nX-A b\r\n\r\n", false},
      {"trailer_name_with_space", "0\r\nX A: b\r\n\r\n", false},
      {"trailer_bare_cr", "0\r\nX-A: b\rc\r\n\r\n", false},
      {"trailer_too_big", big_trailer, false},
      {"bare_lf_final", "0\r\n\n", false},
      {"bare_lf_after_trailer", "0\r\nX-A: b\n\r\n", false},
  };
}

class Chunked : public ::testing::TestWithParam<Row> {};

void check(const Row& r, const Outcome& o) {
  ASSERT_EQ(o.ok, r.ok);
  if (!r.ok) return;
  EXPECT_EQ(o.done, r.done);
  EXPECT_EQ(o.consumed, r.consumed);
  EXPECT_EQ(o.data_bytes, r.data_bytes);
  EXPECT_EQ(o.payload.size(), o.data_bytes);  // the sink gets every data byte, nothing else
  if (r.payload) {
    EXPECT_EQ(o.payload, r.payload);
  }
}

TEST_P(Chunked, OneShot) { check(GetParam(), feed_pieces(GetParam().input, {})); }

TEST_P(Chunked, ByteByByte) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < GetParam().input.size(); ++i) cuts.push_back(i);
  check(GetParam(), feed_pieces(GetParam().input, cuts));
}

TEST_P(Chunked, EverySplitPoint) {
  for (size_t i = 0; i <= GetParam().input.size(); ++i) {
    SCOPED_TRACE(i);
    check(GetParam(), feed_pieces(GetParam().input, {i}));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, Chunked, ::testing::ValuesIn(rows()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ChunkedDecoder, ErrorIsStickyUntilReset) {
  ChunkedDecoder d;
  EXPECT_FALSE(d.feed("zz\r\n").ok());
  EXPECT_FALSE(d.feed("0\r\n\r\n").ok());
  d.reset();
  auto r = d.feed("0\r\n\r\n");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->done);
}

TEST(ChunkedDecoder, DoneConsumesNothingMore) {
  ChunkedDecoder d;
  auto r = d.feed("0\r\n\r\n");
  ASSERT_TRUE(r.ok() && r->done);
  auto again = d.feed("more");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->done);
  EXPECT_EQ(again->consumed, 0u);
}

TEST(ChunkedDecoder, LargeChunkCountsDataBytes) {
  ChunkedDecoder d;
  const std::string data(100000, 'd');
  ASSERT_TRUE(d.feed("186A0\r\n").ok());
  for (size_t i = 0; i < data.size(); i += 4096) {
    auto r = d.feed(std::string_view(data).substr(i, 4096));
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->done);
  }
  EXPECT_EQ(d.data_bytes(), 100000u);
  auto r = d.feed("\r\n0\r\n\r\n");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->done);
}

// The trailer section is collected as read, whatever the cuts, without the
// final CRLF; parse_trailer_fields() splits it into trimmed fields. Each body
// is fed in fixed steps (whole, byte by byte, 7 bytes) and in two pieces cut
// at every point.
struct TrailerCase {
  std::string body;
  std::string payload;
  std::string section;
  std::vector<std::pair<std::string, std::string>> fields;
};

TEST(ChunkedDecoder, CollectsTrailers) {
  const std::vector<TrailerCase> cases = {
      {"3\r\nabc\r\n0\r\nX-Checksum:  abc123 \r\nX-Empty:\r\nx-two: a b\r\n\r\nNEXT", "abc",
       "X-Checksum:  abc123 \r\nX-Empty:\r\nx-two: a b\r\n",
       {{"X-Checksum", "abc123"}, {"X-Empty", ""}, {"x-two", "a b"}}},
      {"5\r\nhello\r\n0\r\nX-Checksum: abc \r\nGrpc-Status:0\r\n\r\nNEXT", "hello",
       "X-Checksum: abc \r\nGrpc-Status:0\r\n", {{"X-Checksum", "abc"}, {"Grpc-Status", "0"}}},
  };
  for (const auto& c : cases) {
    std::vector<std::vector<size_t>> splits;  // piece lengths
    for (size_t step : {c.body.size(), size_t{1}, size_t{7}}) splits.push_back({step});
    for (size_t cut = 0; cut <= c.body.size(); ++cut) splits.push_back({cut, c.body.size()});
    for (const auto& split : splits) {
      ChunkedDecoder d;
      std::string payload, trailers;
      size_t pos = 0, piece = 0;
      bool done = false;
      while (!done && pos < c.body.size()) {
        // One step: up to the piece's end (a fixed step repeats).
        const size_t end = split.size() == 1 ? pos + split[0] : std::max(pos, split[piece]);
        if (end == pos) {
          ++piece;
          continue;
        }
        auto r = d.feed(std::string_view(c.body).substr(pos, end - pos), &payload, &trailers);
        ASSERT_TRUE(r.ok());
        pos += r->consumed;
        done = r->done;
        if (split.size() > 1 && pos >= split[piece]) ++piece;
      }
      const std::string where = c.payload + " split " + std::to_string(split[0]);
      ASSERT_TRUE(done) << where;
      EXPECT_EQ(c.body.substr(pos), "NEXT") << where;
      EXPECT_EQ(payload, c.payload) << where;
      EXPECT_EQ(trailers, c.section) << where;
      std::vector<Header> fields;
      parse_trailer_fields(trailers, fields);
      ASSERT_EQ(fields.size(), c.fields.size()) << where;
      for (size_t i = 0; i < fields.size(); ++i) {
        EXPECT_EQ(fields[i].name, c.fields[i].first) << where;
        EXPECT_EQ(fields[i].value, c.fields[i].second) << where;
      }
    }
  }
  ChunkedDecoder none;
  std::string trailers;
  ASSERT_TRUE(none.feed("0\r\n\r\n", nullptr, &trailers).ok());
  EXPECT_EQ(trailers, "");
}

}  // namespace
}  // namespace gantry::http
