// parse_client_hello: real OpenSSL ClientHellos (whole, every prefix, split
// over records of every size), hand-built ones for each malformation.
#include "proxy/tls/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <string>
#include <vector>

namespace gantry::tls {
namespace {

std::string u8(size_t n) { return std::string(1, static_cast<char>(n & 0xff)); }
std::string u16(size_t n) { return u8(n >> 8) + u8(n); }
std::string u24(size_t n) { return u8(n >> 16) + u16(n); }

std::string sni_ext(const std::string& name, uint8_t name_type = 0) {
  std::string entry = u8(name_type) + u16(name.size()) + name;
  std::string data = u16(entry.size()) + entry;
  return u16(0) + u16(data.size()) + data;
}

// A ClientHello body: TLS 1.2 version, zero random, empty session id, one
// suite, null compression, then `exts` behind its length (none if nullopt).
std::string body(const std::optional<std::string>& exts) {
  std::string b = "\x03\x03" + std::string(32, '\0') + u8(0) + u16(2) + "\x13\x01" + u8(1) + u8(0);
  if (exts) b += u16(exts->size()) + *exts;
  return b;
}
std::string handshake(const std::string& body, uint8_t type = 1) { return u8(type) + u24(body.size()) + body; }
// `msg` in handshake records of at most `chunk` bytes.
std::string records(const std::string& msg, size_t chunk, uint8_t type = 22) {
  std::string out;
  for (size_t i = 0; i < msg.size(); i += chunk) {
    std::string part = msg.substr(i, chunk);
    out += u8(type) + "\x03\x01" + u16(part.size()) + part;
  }
  return out;
}

// What OpenSSL's client sends first, with `sni` as its server name (none if empty).
std::string openssl_hello(const char* sni) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  if (sni != nullptr) SSL_set_tlsext_host_name(ssl, sni);
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl);
  char* data = nullptr;
  long n = BIO_get_mem_data(wbio, &data);
  std::string out(data, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return out;
}

TEST(ClientHello, OpenSslHelloWithServerName) {
  const std::string hello = openssl_hello("Shop.Example.COM");
  ClientHello h = parse_client_hello(hello);
  ASSERT_EQ(h.status, HelloStatus::kDone) << h.why;
  EXPECT_EQ(h.server_name, "shop.example.com");
  // Every proper prefix is a ClientHello still arriving.
  for (size_t n = 0; n < hello.size(); ++n)
    ASSERT_EQ(parse_client_hello(std::string_view(hello).substr(0, n)).status, HelloStatus::kNeedMore) << n;
}

TEST(ClientHello, OpenSslHelloWithoutServerName) {
  ClientHello h = parse_client_hello(openssl_hello(nullptr));
  ASSERT_EQ(h.status, HelloStatus::kDone) << h.why;
  EXPECT_EQ(h.server_name, "");
}

TEST(ClientHello, SplitOverRecordsOfEverySize) {
  const std::string hello = openssl_hello("db.example.com");
  const std::string msg = hello.substr(5);  // OpenSSL sends it in one record
  for (size_t chunk = 1; chunk <= msg.size(); chunk = chunk < 16 ? chunk + 1 : chunk * 2) {
    const std::string split = records(msg, chunk);
    ClientHello h = parse_client_hello(split);
    ASSERT_EQ(h.status, HelloStatus::kDone) << chunk << ": " << h.why;
    EXPECT_EQ(h.server_name, "db.example.com") << chunk;
    for (size_t n = 0; n < split.size(); n += 7)
      ASSERT_EQ(parse_client_hello(std::string_view(split).substr(0, n)).status, HelloStatus::kNeedMore)
          << chunk << " " << n;
  }
}

TEST(ClientHello, RecordsAfterTheHelloAreNotLookedAt) {
  // TLS 1.3 middlebox compatibility: a ChangeCipherSpec record, then early data.
  std::string in = openssl_hello("a.example") + "\x14\x03\x03" + u16(1) + "\x01" + "\x17\x03\x03\xff\xff";
  ClientHello h = parse_client_hello(in);
  ASSERT_EQ(h.status, HelloStatus::kDone) << h.why;
  EXPECT_EQ(h.server_name, "a.example");
}

struct Case {
  const char* name;
  std::string in;
  HelloStatus status;
  std::string server_name;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ClientHelloTable : public ::testing::TestWithParam<Case> {};

TEST_P(ClientHelloTable, Parses) {
  const Case& c = GetParam();
  ClientHello h = parse_client_hello(c.in);
  EXPECT_EQ(static_cast<int>(h.status), static_cast<int>(c.status)) << h.why;
  EXPECT_EQ(h.server_name, c.server_name);
}

const std::string kSni = sni_ext("www.example.com");
const std::string kOther = u16(0x2b) + u16(3) + "\x02\x03\x04";  // supported_versions

INSTANTIATE_TEST_SUITE_P(
    Table, ClientHelloTable,
    ::testing::Values(
        Case{"minimal", records(handshake(body(kSni)), 16384), HelloStatus::kDone, "www.example.com"},
        Case{"sni_after_other_extension", records(handshake(body(kOther + kSni)), 16384), HelloStatus::kDone,
             "www.example.com"},
        Case{"no_extensions", records(handshake(body(std::nullopt)), 16384), HelloStatus::kDone, ""},
        Case{"empty_extensions", records(handshake(body(std::string())), 16384), HelloStatus::kDone, ""},
        Case{"other_name_type_only", records(handshake(body(sni_ext("x", 7))), 16384), HelloStatus::kDone, ""},
        Case{"underscore_and_digits", records(handshake(body(sni_ext("a_1-2.example"))), 99), HelloStatus::kDone,
             "a_1-2.example"},
        Case{"bad_byte_in_name", records(handshake(body(sni_ext("a b.example"))), 16384), HelloStatus::kDone, ""},
        Case{"nul_in_name", records(handshake(body(sni_ext(std::string("a\0b", 3)))), 16384), HelloStatus::kDone,
             ""},
        Case{"trailing_dot", records(handshake(body(sni_ext("a.example."))), 16384), HelloStatus::kDone, ""},
        Case{"empty_label", records(handshake(body(sni_ext("a..example"))), 16384), HelloStatus::kDone, ""},
        Case{"name_too_long", records(handshake(body(sni_ext(std::string(254, 'a')))), 16384),
             HelloStatus::kDone, ""},
        Case{"empty", "", HelloStatus::kNeedMore, ""},
        Case{"one_byte", "\x16", HelloStatus::kNeedMore, ""},
        Case{"http", "GET / HTTP/1.1\r\n", HelloStatus::kNotHello, ""},
        Case{"sslv2_hello", "\x80\x2e\x01\x03\x01", HelloStatus::kNotHello, ""},
        Case{"record_version_2", "\x16\x02\x01" + u16(5), HelloStatus::kNotHello, ""},
        Case{"empty_record", "\x16\x03\x01" + u16(0), HelloStatus::kNotHello, ""},
        Case{"record_over_2_14", "\x16\x03\x01\x40\x01", HelloStatus::kNotHello, ""},
        Case{"server_hello", records(handshake(body(kSni), 2), 16384), HelloStatus::kNotHello, ""},
        Case{"hello_too_large", records(u8(1) + u24(kMaxClientHello + 1), 16384), HelloStatus::kNotHello, ""},
        Case{"alert_between_records", records(handshake(body(kSni)).substr(0, 10), 16384) + "\x15\x03\x03" + u16(2),
             HelloStatus::kNotHello, ""},
        Case{"extensions_length_short", records(handshake(body(kSni) + "x"), 16384), HelloStatus::kNotHello, ""},
        Case{"extension_overruns", records(handshake(body(u16(0) + u16(40) + "abc")), 16384),
             HelloStatus::kNotHello, ""},
        Case{"two_sni_extensions", records(handshake(body(kSni + kSni)), 16384), HelloStatus::kNotHello, ""},
        Case{"two_host_names", records(handshake(body(u16(0) + u16(12) + u16(10) + u8(0) + u16(1) + "a" + u8(0) +
                                                       u16(1) + "b")), 16384),
             HelloStatus::kNotHello, ""},
        Case{"empty_server_name_list", records(handshake(body(u16(0) + u16(2) + u16(0))), 16384),
             HelloStatus::kNotHello, ""},
        Case{"truncated_body", records(handshake(body(std::nullopt).substr(0, 20)), 16384), HelloStatus::kNotHello,
             ""},
        Case{"no_cipher_suites", records(handshake("\x03\x03" + std::string(32, '\0') + u8(0) + u16(0) + u8(1) +
                                                   u8(0)), 16384),
             HelloStatus::kNotHello, ""},
        Case{"session_id_33", records(handshake("\x03\x03" + std::string(32, '\0') + u8(33) + std::string(33, 'x') +
                                                u16(2) + "\x13\x01" + u8(1) + u8(0)), 16384),
             HelloStatus::kNotHello, ""}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST(ClientHello, IncompleteAtTheSizeLimitIsRefused) {
  // A hello announced at the maximum, sent in records of 16 bytes: the
  // record headers push the input over the limit before the hello is whole.
  const std::string msg = handshake(std::string(kMaxClientHello, 'x'));
  std::string in = records(msg, 16).substr(0, kMaxClientHelloBytes);
  EXPECT_EQ(parse_client_hello(in).status, HelloStatus::kNotHello);
  EXPECT_EQ(parse_client_hello(std::string_view(in).substr(0, 1000)).status, HelloStatus::kNeedMore);
}

}  // namespace
}  // namespace gantry::tls
