// Frame tests: the wire layout, incremental decoding under every way of
// splitting the bytes, protocol errors, and the ACK / NACK / HELLO payloads.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "proxy/snapshot/codec.h"
#include "proxy/snapshot/frame.h"
#include "tests/unit/snapshot/snapshot_fixtures.h"

namespace gantry::snapshot {
namespace {

std::vector<Frame> drain(FrameDecoder& d) {
  std::vector<Frame> out;
  while (auto f = d.next()) out.push_back(std::move(*f));
  return out;
}

std::string header(uint32_t len, uint8_t type) {
  std::string h;
  h += static_cast<char>(len >> 24);
  h += static_cast<char>((len >> 16) & 0xff);
  h += static_cast<char>((len >> 8) & 0xff);
  h += static_cast<char>(len & 0xff);
  h += static_cast<char>(type);
  return h;
}

TEST(FrameTest, EncodesLengthTypeAndPayload) {
  std::string f = encode_frame(FrameType::kAck, "{\"version\":3}");
  EXPECT_EQ(f, header(13, 3) + "{\"version\":3}");
  EXPECT_EQ(encode_frame(FrameType::kFull, ""), header(0, 1));
  std::string big(70000, 'x');
  EXPECT_EQ(encode_frame(FrameType::kEndpoints, big).substr(0, 5), header(70000, 2));
}

// Several frames of several types, including an empty payload and a payload
// that looks like a header.
std::vector<Frame> sample_frames() {
  Snapshot s = testing::rich_snapshot();
  return {Frame{FrameType::kHello, encode(Hello{"proxy-a", 4})}, Frame{FrameType::kFull, encode(s)},
          Frame{FrameType::kAck, ""}, Frame{FrameType::kEndpoints, header(9, 9)},
          Frame{FrameType::kNack, encode(Nack{5, {"route a/b: bad", "cluster c: bad"}})}};
}

std::string wire(const std::vector<Frame>& frames) {
  std::string w;
  for (const auto& f : frames) w += encode_frame(f.type, f.payload);
  return w;
}

void expect_same(const std::vector<Frame>& got, const std::vector<Frame>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].type, want[i].type) << i;
    EXPECT_EQ(got[i].payload, want[i].payload) << i;
  }
}

TEST(FrameTest, SeveralFramesInOneFeed) {
  auto frames = sample_frames();
  FrameDecoder d;
  ASSERT_TRUE(d.feed(wire(frames)).ok());
  expect_same(drain(d), frames);
  EXPECT_FALSE(d.next().has_value());
}

TEST(FrameTest, ByteByByte) {
  auto frames = sample_frames();
  std::string w = wire(frames);
  FrameDecoder d;
  std::vector<Frame> got;
  for (char c : w) {
    ASSERT_TRUE(d.feed(std::string_view(&c, 1)).ok());
    while (auto f = d.next()) got.push_back(std::move(*f));
  }
  expect_same(got, frames);
}

TEST(FrameTest, EverySplitPointOfTwoFeeds) {
  std::vector<Frame> frames = {Frame{FrameType::kAck, encode(Ack{1})},
                               Frame{FrameType::kHello, encode(Hello{"p", 2})},
                               Frame{FrameType::kAck, encode(Ack{3})}};
  std::string w = wire(frames);
  for (size_t cut = 0; cut <= w.size(); ++cut) {
    FrameDecoder d;
    ASSERT_TRUE(d.feed(std::string_view(w).substr(0, cut)).ok());
    auto got = drain(d);
    ASSERT_TRUE(d.feed(std::string_view(w).substr(cut)).ok());
    for (auto& f : drain(d)) got.push_back(std::move(f));
    expect_same(got, frames);
  }
}

TEST(FrameTest, PartialFrameIsNotReturned) {
  std::string w = encode_frame(FrameType::kFull, "abcdef");
  FrameDecoder d;
  ASSERT_TRUE(d.feed(w.substr(0, w.size() - 1)).ok());
  EXPECT_FALSE(d.next().has_value());
  ASSERT_TRUE(d.feed(w.substr(w.size() - 1)).ok());
  auto f = d.next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload, "abcdef");
}

TEST(FrameTest, UnknownTypeIsAnError) {
  for (uint8_t type : {0, 6, 255}) {
    FrameDecoder d;
    auto st = d.feed(header(2, type) + "{}");
    ASSERT_FALSE(st.ok()) << int(type);
    EXPECT_EQ(st.error().message, "unknown frame type " + std::to_string(type));
    EXPECT_FALSE(d.next().has_value());
    EXPECT_FALSE(d.feed(encode_frame(FrameType::kAck, "{}")).ok()) << "decoder must stay broken";
  }
}

TEST(FrameTest, UnknownTypeAfterGoodFrameInSameFeed) {
  FrameDecoder d;
  auto st = d.feed(encode_frame(FrameType::kAck, "{}") + header(0, 42));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("unknown frame type 42"), std::string::npos);
}

TEST(FrameTest, OversizedLengthIsRejectedFromTheHeaderAlone) {
  FrameDecoder d;
  auto st = d.feed(header(kMaxFrame + 1, 1));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("exceeds the limit of 268435456 bytes"), std::string::npos)
      << st.error().message;
  FrameDecoder at_limit;  // exactly kMaxFrame is allowed (only the header is fed)
  EXPECT_TRUE(at_limit.feed(header(kMaxFrame, 1)).ok());
  EXPECT_FALSE(at_limit.next().has_value());
}

TEST(FrameTest, OversizedHeaderArrivingByteByByte) {
  std::string h = header(0xffffffffu, 2);
  FrameDecoder d;
  for (size_t i = 0; i + 1 < h.size(); ++i) ASSERT_TRUE(d.feed(h.substr(i, 1)).ok()) << i;
  EXPECT_FALSE(d.feed(h.substr(h.size() - 1)).ok());
}

TEST(FramePayloadTest, AckRoundTrip) {
  EXPECT_EQ(encode(Ack{12}), "{\"version\":12}");
  auto a = decode_ack(encode(Ack{12}));
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->version, 12u);
}

TEST(FramePayloadTest, NackRoundTrip) {
  Nack n{9, {"route default/shop rules[0]: bad", "snapshot: version must be > 0"}};
  auto got = decode_nack(encode(n));
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->version, 9u);
  EXPECT_EQ(got->errors, n.errors);
}

TEST(FramePayloadTest, HelloRoundTripAndSpelling) {
  EXPECT_EQ(encode(Hello{"gantry-0", 7}), "{\"lastVersion\":7,\"proxyId\":\"gantry-0\"}");
  auto got = decode_hello(encode(Hello{"gantry-0", 7}));
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->proxy_id, "gantry-0");
  EXPECT_EQ(got->last_version, 7u);
  auto snake = decode_hello(R"({"proxy_id": "p1", "last_version": 3})");
  ASSERT_TRUE(snake.ok()) << snake.error().message;
  EXPECT_EQ(snake->proxy_id, "p1");
  EXPECT_EQ(snake->last_version, 3u);
}

struct BadPayload {
  const char* name;
  int kind;  // 0 ack, 1 nack, 2 hello
  const char* json;
  const char* want;
};

void PrintTo(const BadPayload& c, std::ostream* os) { *os << c.name; }

class FramePayloadErrorTest : public ::testing::TestWithParam<BadPayload> {};

TEST_P(FramePayloadErrorTest, Rejects) {
  const auto& p = GetParam();
  std::string msg;
  if (p.kind == 0) {
    auto r = decode_ack(p.json);
    ASSERT_FALSE(r.ok());
    msg = r.error().message;
  } else if (p.kind == 1) {
    auto r = decode_nack(p.json);
    ASSERT_FALSE(r.ok());
    msg = r.error().message;
  } else {
    auto r = decode_hello(p.json);
    ASSERT_FALSE(r.ok());
    msg = r.error().message;
  }
  EXPECT_NE(msg.find(p.want), std::string::npos) << msg;
}

const BadPayload kBadPayloads[] = {
    {"AckNotJson", 0, "version=1", "ack: invalid JSON"},
    {"AckArray", 0, "[1]", "ack: expected object, got array"},
    {"AckNegative", 0, R"({"version": -1})", "ack.version: expected a non-negative integer"},
    {"NackErrorsNotArray", 1, R"({"version": 1, "errors": "x"})",
     "nack.errors: expected array, got string"},
    {"NackErrorNotString", 1, R"({"version": 1, "errors": ["a", 2]})",
     "nack.errors[1]: expected string"},
    {"HelloIdNotString", 2, R"({"proxyId": 5})", "hello.proxyId: expected string, got number"},
    {"HelloVersionString", 2, R"({"proxyId": "p", "lastVersion": "3"})",
     "hello.lastVersion: expected a non-negative integer, got string"},
};

INSTANTIATE_TEST_SUITE_P(Table, FramePayloadErrorTest, ::testing::ValuesIn(kBadPayloads),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace gantry::snapshot
