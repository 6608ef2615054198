// filters.transform's converter (proxy/filters/transform.h): the documented
// mapping, error positions, and the refusal of DOCTYPEs (XXE, billion laughs).
#include "proxy/filters/transform.h"

#include <gtest/gtest.h>

#include <string>

namespace gantry::filters {
namespace {

constexpr std::string_view kDecl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

struct J2X {
  std::string name, json, xml;
};

class JsonToXml : public ::testing::TestWithParam<J2X> {};

TEST_P(JsonToXml, Maps) {
  const auto& c = GetParam();
  std::string out;
  auto r = json_to_xml(c.json, TransformOptions{}, out);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(out, std::string(kDecl) + c.xml);
}

INSTANTIATE_TEST_SUITE_P(
    Mapping, JsonToXml,
    ::testing::Values(
        J2X{"single_key_names_root", R"({"order":{"id":7}})", "<order><id>7</id></order>"},
        J2X{"several_keys_wrapped", R"({"a":1,"b":2})", "<root><a>1</a><b>2</b></root>"},
        J2X{"member_order_kept", R"({"z":{"b":1,"a":2}})", "<z><b>1</b><a>2</a></z>"},
        J2X{"array_repeats_element", R"({"o":{"item":[1,2,3]}})", "<o><item>1</item><item>2</item><item>3</item></o>"},
        J2X{"top_array_items", R"([1,"x"])", "<root><item>1</item><item>x</item></root>"},
        J2X{"single_key_array_wrapped", R"({"k":[1,2]})", "<root><k>1</k><k>2</k></root>"},
        J2X{"nested_array_items", R"({"o":{"m":[[1,2],3]}})", "<o><m><item>1</item><item>2</item></m><m>3</m></o>"},
        J2X{"attributes", R"({"a":{"@id":"x1","@n":3,"b":true}})", "<a id=\"x1\" n=\"3\"><b>true</b></a>"},
        J2X{"text_and_attributes", R"({"p":{"@lang":"en","#text":"hi"}})", "<p lang=\"en\">hi</p>"},
        J2X{"only_attributes_empty_element", R"({"e":{"@k":"v"}})", "<e k=\"v\"/>"},
        J2X{"null_empty_element", R"({"o":{"n":null}})", "<o><n/></o>"},
        J2X{"empty_string_empty_element", R"({"o":{"s":""}})", "<o><s/></o>"},
        J2X{"empty_object", R"({"o":{}})", "<o/>"},
        J2X{"booleans_numbers", R"({"o":{"t":true,"f":false,"i":-12,"d":1.5}})",
            "<o><t>true</t><f>false</f><i>-12</i><d>1.5</d></o>"},
        J2X{"scalar_root", R"("hi")", "<root>hi</root>"},
        J2X{"escaping", R"({"o":{"@q":"a\"<b","t":"x & <y>"}})", "<o q=\"a&quot;&lt;b\"><t>x &amp; &lt;y&gt;</t></o>"},
        J2X{"namespaces_written_as_given", R"({"s:Env":{"@xmlns:s":"urn:s","s:Body":"x"}})",
            "<s:Env xmlns:s=\"urn:s\"><s:Body>x</s:Body></s:Env>"},
        J2X{"unicode", R"({"o":"caf\u00e9 \u2603"})", "<o>café ☃</o>"}),
    [](const auto& info) { return info.param.name; });

struct X2J {
  std::string name, xml, json;
};

class XmlToJson : public ::testing::TestWithParam<X2J> {};

TEST_P(XmlToJson, Maps) {
  const auto& c = GetParam();
  std::string out;
  auto r = xml_to_json(c.xml, out);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(out, c.json);
}

INSTANTIATE_TEST_SUITE_P(
    Mapping, XmlToJson,
    ::testing::Values(
        X2J{"root_name_kept", "<order><id>7</id></order>", R"({"order":{"id":"7"}})"},
        X2J{"declaration_ignored", "<?xml version=\"1.0\"?>\n<a>x</a>", R"({"a":"x"})"},
        X2J{"repeated_become_array", "<o><i>1</i><x/><i>2</i><i>3</i></o>", R"({"o":{"i":["1","2","3"],"x":null}})"},
        X2J{"single_not_array", "<o><i>1</i></o>", R"({"o":{"i":"1"}})"},
        X2J{"attributes", "<a id=\"x1\" n=\"3\"><b>t</b></a>", R"({"a":{"@id":"x1","@n":"3","b":"t"}})"},
        X2J{"text_with_attributes", "<p lang=\"en\">hi</p>", R"({"p":{"@lang":"en","#text":"hi"}})"},
        X2J{"mixed_content_concatenated", "<p>a <b>bold</b> c</p>", R"({"p":{"b":"bold","#text":"a  c"}})"},
        X2J{"whitespace_only_text_dropped", "<o>\n  <a>1</a>\n</o>", R"({"o":{"a":"1"}})"},
        X2J{"empty_elements_null", "<o><a/><b></b></o>", R"({"o":{"a":null,"b":null}})"},
        X2J{"cdata_is_text", "<o><![CDATA[<x> & y]]></o>", R"({"o":"<x> & y"})"},
        X2J{"entities_predefined_and_numeric", "<o>&lt;&amp;&#233;&#x2603;</o>", R"({"o":"<&é☃"})"},
        X2J{"comments_pi_dropped", "<o><!-- c --><?pi x?><a>1</a></o>", R"({"o":{"a":"1"}})"},
        X2J{"namespaces", "<s:Env xmlns:s=\"urn:s\" xmlns=\"urn:d\"><s:Body><v>1</v></s:Body></s:Env>",
            R"({"s:Env":{"@xmlns:s":"urn:s","@xmlns":"urn:d","s:Body":{"v":"1"}}})"},
        X2J{"prefixed_attribute", "<a xmlns:x=\"urn:x\" x:k=\"v\"/>", R"({"a":{"@xmlns:x":"urn:x","@x:k":"v"}})"},
        X2J{"json_escapes", "<o>\"q\" \\ </o>", R"({"o":"\"q\" \\ "})"}),
    [](const auto& info) { return info.param.name; });

struct Bad {
  std::string name, input, error_has;
  bool refused = false;
};

class BadXml : public ::testing::TestWithParam<Bad> {};

TEST_P(BadXml, Refused) {
  const auto& c = GetParam();
  std::string out;
  auto r = xml_to_json(c.input, out);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.refused, c.refused);
  EXPECT_NE(r.error.find(c.error_has), std::string::npos) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadXml,
    ::testing::Values(
        Bad{"unclosed", "<a>\n<b>x</a>", "line 2"},
        Bad{"column_reported", "<a><b x=1/></a>", "column"},
        Bad{"empty", "", "malformed XML"},
        Bad{"two_roots", "<a/><b/>", "malformed XML"},
        Bad{"undeclared_entity", "<a>&xxe;</a>", "malformed XML"},
        Bad{"xxe_file", "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<r>&xxe;</r>",
            "DOCTYPE", true},
        Bad{"xxe_network", "<!DOCTYPE r SYSTEM \"http://127.0.0.1:1/evil.dtd\"><r/>", "DOCTYPE", true},
        Bad{"billion_laughs",
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
            "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
            "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
            "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
            "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
            "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
            "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
            "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
            "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
            "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"
            "<lolz>&lol9;</lolz>",
            "DOCTYPE", true},
        Bad{"doctype_without_subset", "<!DOCTYPE html><html/>", "DOCTYPE", true},
        // libxml2 stops at a NUL: the rest (here a DOCTYPE) must not go unseen.
        Bad{"nul_then_doctype", std::string("<a>x</a>\0<!DOCTYPE r><r/>", 25), "line 1, column 9: a NUL byte"},
        Bad{"nul_on_line_two", std::string("<a>\n<b>\0</b></a>", 16), "line 2, column 4: a NUL byte"}),
    [](const auto& info) { return info.param.name; });

TEST(BadXml, ErrorNamesLineAndColumn) {
  std::string out;
  auto r = xml_to_json("<a>\n  <b>\n</a>", out);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("line 3, column"), std::string::npos) << r.error;
}

class BadJson : public ::testing::TestWithParam<Bad> {};

TEST_P(BadJson, Refused) {
  const auto& c = GetParam();
  std::string out;
  auto r = json_to_xml(c.input, TransformOptions{}, out);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find(c.error_has), std::string::npos) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadJson,
    ::testing::Values(Bad{"position", "{\"a\":\n  [1,]}", "line 2, column 6"},
                      Bad{"byte_offset", "{\"a\" 1}", "byte 5"},
                      Bad{"empty", "", "malformed JSON"},
                      Bad{"trailing", "{} x", "malformed JSON"},
                      Bad{"bad_key", R"({"o":{"1x":1}})", "not an XML element name"},
                      Bad{"bad_root_key", R"({"a b":1})", "not an XML element name"},
                      Bad{"structured_attribute", R"({"o":{"@a":[1]}})", "attribute \"@a\""},
                      Bad{"structured_text", R"({"o":{"#text":{}}})", "#text"},
                      Bad{"control_char", R"({"o":"a\u0001"})", "U+0001"}),
    [](const auto& info) { return info.param.name; });

TEST(JsonToXmlLimits, DeepNestingRefused) {
  std::string deep;
  for (int i = 0; i < 300; ++i) deep += "{\"a\":";
  deep += "1";
  for (int i = 0; i < 300; ++i) deep += "}";
  std::string out;
  auto r = json_to_xml(deep, TransformOptions{}, out);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("nested deeper"), std::string::npos) << r.error;
}

TEST(JsonToXmlOptions, RootAndItemNames) {
  TransformOptions o;
  o.root_element = "Request";
  o.item_element = "Entry";
  std::string out;
  ASSERT_TRUE(json_to_xml("[1]", o, out).ok);
  EXPECT_EQ(out, std::string(kDecl) + "<Request><Entry>1</Entry></Request>");
}

TEST(RoundTrip, XmlJsonXml) {
  const std::string xml = "<o a=\"1\"><i>x</i><i>y</i><e/><p xmlns:q=\"urn:q\"><q:v>2</q:v></p></o>";
  std::string json, back;
  ASSERT_TRUE(xml_to_json(xml, json).ok);
  ASSERT_TRUE(json_to_xml(json, TransformOptions{}, back).ok) << json;
  EXPECT_EQ(back, std::string(kDecl) + xml);
}

struct Media {
  std::string value;
  BodyFormat want;
};

TEST(MediaFormat, Table) {
  for (const auto& [v, want] : std::initializer_list<Media>{
           {"application/json", BodyFormat::kJson},
           {"Application/JSON; charset=utf-8", BodyFormat::kJson},
           {"application/problem+json", BodyFormat::kJson},
           {"application/xml", BodyFormat::kXml},
           {"text/xml;charset=iso-8859-1", BodyFormat::kXml},
           {"application/soap+xml", BodyFormat::kXml},
           {"text/plain", BodyFormat::kNone},
           {"", BodyFormat::kNone},
           {"application/jsonx", BodyFormat::kNone}})
    EXPECT_EQ(media_format(v), want) << v;
}

TEST(AcceptPreference, Table) {
  for (const auto& [v, want] : std::initializer_list<Media>{
           {"", BodyFormat::kNone},
           {"*/*", BodyFormat::kNone},
           {"application/json", BodyFormat::kJson},
           {"application/xml", BodyFormat::kXml},
           {"text/html, application/xml;q=0.9, */*;q=0.8", BodyFormat::kXml},
           {"application/xml;q=0.5, application/json", BodyFormat::kJson},
           {"application/json;q=0.2, text/xml;q=0.25", BodyFormat::kXml},
           {"application/json, application/xml", BodyFormat::kNone},  // a tie: no preference
           {"application/json;q=0", BodyFormat::kNone},
           {"application/json;q=0, application/xml;q=0.1", BodyFormat::kXml},
           {"application/json ; Q=1.0", BodyFormat::kJson}})
    EXPECT_EQ(accept_preference(v), want) << v;
}

}  // namespace
}  // namespace gantry::filters
