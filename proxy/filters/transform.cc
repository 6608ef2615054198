// JSON ↔ XML conversion for filters.transform (transform.h; the mapping is
// documented in docs/policies.md, "transform"). No exceptions: nlohmann-json
// is called with allow_exceptions = false and its SAX interface for the error
// position; libxml2 reports errors as values.
#include "proxy/filters/transform.h"

#include <algorithm>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

namespace gantry::filters {

namespace {

using ojson = nlohmann::ordered_json;

// Deeper documents are refused (libxml2 stops at 256 by itself; JSON is held
// to the same so both directions recurse a bounded amount).
constexpr int kMaxDepth = 256;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequal(s.substr(s.size() - suffix.size()), suffix);
}

// "line L, column C" of byte offset `at` in `text` (both 1-based).
std::string where(std::string_view text, size_t at) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < at && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  std::string out("line ");
  out.append(std::to_string(line)).append(", column ").append(std::to_string(col));
  return out;
}

// ---- JSON → XML

// An XML 1.0 Name (libxml2's check, which follows the spec's character classes).
bool xml_name(const std::string& s) {
  return !s.empty() && xmlValidateName(reinterpret_cast<const xmlChar*>(s.c_str()), 0) == 0;
}

class XmlWriter {
 public:
  XmlWriter(const TransformOptions& o, std::string& out) : opts_(o), out_(out) {}

  bool document(const ojson& v) {
    out_.assign("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // {"name": <object or scalar>} names the root; anything else is wrapped.
    if (v.is_object() && v.size() == 1) {
      auto first = v.begin();
      const std::string& key = first.key();
      const ojson& value = first.value();
      if (!key.empty() && key[0] != '@' && key != "#text" && !value.is_array()) return element(key, value, 1);
    }
    return element(std::string(opts_.root_element), v, 1);
  }

  std::string error;

 private:
  bool fail(std::string why, const std::string& path) {
    error = std::move(why);
    if (!path.empty()) error.append(" (at ").append(path).append(")");
    return false;
  }

  // Text with &, <, > (and in attributes ") escaped; characters XML 1.0 cannot
  // carry (C0 controls other than tab, LF, CR) are an error.
  bool text(std::string_view s, bool attribute, const std::string& path) {
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      switch (c) {
        case '&': out_.append("&amp;"); break;
        case '<': out_.append("&lt;"); break;
        case '>': out_.append("&gt;"); break;
        case '"':
          if (attribute) out_.append("&quot;");
          else out_.push_back('"');
          break;
        case '\t':
        case '\n':
        case '\r':
          if (attribute) out_.append(c == '\t' ? "&#9;" : c == '\n' ? "&#10;" : "&#13;");
          else out_.push_back(ch);
          break;
        default:
          // U+FFFE and U+FFFF (EF BF BE/BF) are not XML characters either.
          if (c == 0xBF && out_.size() >= 2 && static_cast<unsigned char>(out_[out_.size() - 1]) == 0xBF &&
              static_cast<unsigned char>(out_[out_.size() - 2]) == 0xEF)
            return fail("character U+FFFF cannot be written in XML", path);
          if (c == 0xBE && out_.size() >= 2 && static_cast<unsigned char>(out_[out_.size() - 1]) == 0xBF &&
              static_cast<unsigned char>(out_[out_.size() - 2]) == 0xEF)
            return fail("character U+FFFE cannot be written in XML", path);
          if (c < 0x20) {
            // Appended, not "literal" + std::string&&: GCC 12 at -O3 reports a false -Wrestrict (GCC PR 105329).
            std::string why("control character U+00");
            why.push_back("0123456789ABCDEF"[c >> 4]);
            why.push_back("0123456789ABCDEF"[c & 15]);
            return fail(why.append(" cannot be written in XML"), path);
          }
          out_.push_back(ch);
      }
    }
    return true;
  }

  bool scalar(const ojson& v, bool attribute, const std::string& path) {
    switch (v.type()) {
      case ojson::value_t::string: return text(v.get_ref<const std::string&>(), attribute, path);
      case ojson::value_t::boolean: out_.append(v.get<bool>() ? "true" : "false"); return true;
      case ojson::value_t::null: return true;
      default: out_.append(v.dump()); return true;  // numbers, as nlohmann writes them
    }
  }

  bool element(const std::string& name, const ojson& v, int depth) {
    const std::string& path = name;
    if (depth > kMaxDepth) return fail(std::string("nested deeper than ").append(std::to_string(kMaxDepth)), path);
    if (!xml_name(name)) return fail(std::string("key \"").append(name).append("\" is not an XML element name"), "");
    out_.push_back('<');
    out_.append(name);
    if (v.is_object()) {
      bool children = false;
      for (const auto& [key, value] : v.items()) {
        if (key.empty() || key[0] != '@') {
          children = true;
          continue;
        }
        std::string attr = key.substr(1);
        if (!xml_name(attr)) return fail(std::string("key \"").append(key).append("\" is not an XML attribute name"), name);
        if (value.is_structured()) return fail(std::string("attribute \"").append(key).append("\" must be a string, number, boolean or null"), name);
        out_.push_back(' ');
        out_.append(attr).append("=\"");
        if (!scalar(value, true, name)) return false;
        out_.push_back('"');
      }
      if (!children) {
        out_.append("/>");
        return true;
      }
      out_.push_back('>');
      for (const auto& [key, value] : v.items()) {
        if (!key.empty() && key[0] == '@') continue;
        if (key == "#text") {
          if (value.is_structured()) return fail("\"#text\" must be a string, number, boolean or null", name);
          if (!scalar(value, false, name)) return false;
        } else if (value.is_array()) {
          for (const auto& item : value)  // an array is the element repeated (a nested array: item elements)
            if (!element(key, item, depth + 1)) return false;
        } else if (!element(key, value, depth + 1)) {
          return false;
        }
      }
    } else if (v.is_array()) {
      out_.push_back('>');
      for (const auto& item : v)
        if (!element(std::string(opts_.item_element), item, depth + 1)) return false;
    } else if (v.is_null() || (v.is_string() && v.get_ref<const std::string&>().empty())) {
      out_.append("/>");
      return true;
    } else {
      out_.push_back('>');
      if (!scalar(v, false, name)) return false;
    }
    out_.append("</").append(name).push_back('>');
    return true;
  }

  const TransformOptions& opts_;
  std::string& out_;
};

// Records where nlohmann's parser stopped (its SAX interface, so no exception).
struct JsonErrorAt : nlohmann::json_sax<ojson> {
  size_t at = 0;
  std::string what;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) override {
    at = position > 0 ? position - 1 : 0;
    what = ex.what();
    // nlohmann's text: "[json.exception.parse_error.101] parse error at line 1, column 2: <why>"
    if (auto colon = what.find(": "); colon != std::string::npos) what.erase(0, colon + 2);
    if (!last_token.empty() && last_token.size() < 40) what.append(" (last read: '").append(last_token).append("')");
    return false;
  }
};

// ---- XML → JSON

void on_doctype(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
  auto* ctxt = static_cast<xmlParserCtxtPtr>(ctx);
  *static_cast<bool*>(ctxt->_private) = true;
  xmlStopParser(ctxt);
}

void quiet(void*, xmlErrorPtr) {}

std::string qname(const xmlChar* name, const xmlNs* ns) {
  std::string out;
  if (ns != nullptr && ns->prefix != nullptr) out.append(reinterpret_cast<const char*>(ns->prefix)).push_back(':');
  out.append(reinterpret_cast<const char*>(name));
  return out;
}

bool whitespace(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  return true;
}

ojson element_value(const xmlNode* node) {
  ojson obj = ojson::object();
  for (const xmlNs* ns = node->nsDef; ns != nullptr; ns = ns->next) {
    std::string key(ns->prefix != nullptr ? "@xmlns:" : "@xmlns");
    if (ns->prefix != nullptr) key.append(reinterpret_cast<const char*>(ns->prefix));
    obj[key] = reinterpret_cast<const char*>(ns->href != nullptr ? ns->href : BAD_CAST "");
  }
  for (const xmlAttr* a = node->properties; a != nullptr; a = a->next) {
    std::string value;
    for (const xmlNode* t = a->children; t != nullptr; t = t->next)
      if (t->content != nullptr) value.append(reinterpret_cast<const char*>(t->content));
    obj[std::string("@").append(qname(a->name, a->ns))] = std::move(value);
  }
  std::string text;
  for (const xmlNode* c = node->children; c != nullptr; c = c->next) {
    if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
      std::string_view t = c->content != nullptr ? reinterpret_cast<const char*>(c->content) : "";
      if (!whitespace(t)) text.append(t);
      continue;
    }
    if (c->type != XML_ELEMENT_NODE) continue;  // comments and processing instructions are dropped
    std::string key = qname(c->name, c->ns);
    ojson v = element_value(c);
    auto it = obj.find(key);
    if (it == obj.end()) {
      obj[key] = std::move(v);
    } else {  // a repeated element becomes an array, in document order
      if (!it->is_array()) {  // element values are never arrays: an array here is a repetition
        ojson arr = ojson::array();
        arr.push_back(std::move(*it));
        *it = std::move(arr);
      }
      it->push_back(std::move(v));
    }
  }
  if (obj.empty()) {
    if (text.empty()) return nullptr;  // <a/> and <a></a>
    return text;
  }
  if (!text.empty()) obj["#text"] = std::move(text);
  return obj;
}

}  // namespace

// ---- media types and Accept

BodyFormat media_format(std::string_view media_type) {
  std::string_view t = trim(media_type.substr(0, media_type.find(';')));
  if (iequal(t, "application/json") || iends_with(t, "+json")) return BodyFormat::kJson;
  if (iequal(t, "application/xml") || iequal(t, "text/xml") || iends_with(t, "+xml")) return BodyFormat::kXml;
  return BodyFormat::kNone;
}

BodyFormat accept_preference(std::string_view accept) {
  int best_json = -1, best_xml = -1;  // q in thousandths; -1: not named
  while (!accept.empty()) {
    size_t comma = accept.find(',');
    std::string_view item = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    std::string_view type = item.substr(0, item.find(';'));
    int q = 1000;
    for (size_t semi = item.find(';'); semi != std::string_view::npos; semi = item.find(';', semi + 1)) {
      std::string_view p = trim(item.substr(semi + 1, item.find(';', semi + 1) - semi - 1));
      if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
        std::string_view num = trim(p.substr(2));
        // q = 0, 0.x, 1, 1.0 (RFC 9110 12.4.2): thousandths.
        q = (!num.empty() && num[0] == '1') ? 1000 : 0;
        if (!num.empty() && num[0] == '0' && num.size() > 2 && num[1] == '.') {
          int scale = 100;
          for (size_t i = 2; i < num.size() && i < 5; ++i, scale /= 10)
            if (num[i] >= '0' && num[i] <= '9') q += (num[i] - '0') * scale;
        }
      }
    }
    switch (media_format(type)) {
      case BodyFormat::kJson: best_json = std::max(best_json, q); break;
      case BodyFormat::kXml: best_xml = std::max(best_xml, q); break;
      case BodyFormat::kNone: break;
    }
  }
  if (best_json > best_xml && best_json > 0) return BodyFormat::kJson;
  if (best_xml > best_json && best_xml > 0) return BodyFormat::kXml;
  return BodyFormat::kNone;
}

// ---- conversions

TransformResult json_to_xml(std::string_view json, const TransformOptions& opts, std::string& out) {
  TransformResult r;
  ojson v = ojson::parse(json, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    JsonErrorAt at;
    ojson::sax_parse(json, &at, nlohmann::detail::input_format_t::json, /*strict=*/true);
    r.error.assign("malformed JSON at ").append(where(json, at.at)).append(" (byte ").append(std::to_string(at.at))
        .append("): ").append(at.what);
    return r;
  }
  XmlWriter w(opts, out);
  if (!w.document(v)) {
    r.error.assign("JSON cannot be written as XML: ").append(w.error);
    return r;
  }
  r.ok = true;
  return r;
}

TransformResult xml_to_json(std::string_view xml, std::string& out) {
  static std::once_flag init;
  std::call_once(init, [] { xmlInitParser(); });
  TransformResult r;
  // U+0000 is no XML character, and libxml2 stops reading at one: what came
  // after it (a second document, a DOCTYPE) would be dropped unseen while the
  // part before it converts. A body holding one is malformed, whole.
  if (const size_t nul = xml.find('\0'); nul != std::string_view::npos) {
    const std::string_view before = xml.substr(0, nul);
    const size_t line_start = before.rfind('\n');
    const size_t line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
    const size_t column = line_start == std::string_view::npos ? nul + 1 : nul - line_start;
    r.error.assign("malformed XML at line ").append(std::to_string(line)).append(", column ")
        .append(std::to_string(column)).append(": a NUL byte (U+0000 is not an XML character)");
    return r;
  }
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  if (ctxt == nullptr) {
    r.error = "out of memory";
    return r;
  }
  bool doctype = false;
  ctxt->_private = &doctype;
  ctxt->sax->internalSubset = on_doctype;  // any DOCTYPE stops the parse before its subset
  ctxt->sax->serror = quiet;               // errors are read from ctxt->lastError, not printed
  // No XML_PARSE_NOENT (no entity substitution), no XML_PARSE_DTDLOAD /
  // DTDATTR / DTDVALID (no external subset), XML_PARSE_NONET (no network
  // even if a later change loads something), XML_PARSE_NOCDATA (CDATA as text).
  const int options = XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOWARNING;
  xmlDocPtr doc = xmlCtxtReadMemory(ctxt, xml.data(), static_cast<int>(xml.size()), nullptr, nullptr, options);
  if (doctype) {
    r.refused = true;
    r.error = "XML with a DOCTYPE is refused (no DTDs, entity declarations or external entities)";
  } else if (doc == nullptr || !ctxt->wellFormed) {
    const xmlError& e = ctxt->lastError;
    std::string msg = e.message != nullptr ? e.message : "not well-formed";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    r.error.assign("malformed XML at line ").append(std::to_string(e.line)).append(", column ")
        .append(std::to_string(e.int2)).append(": ").append(msg);
  } else if (xmlNode* root = xmlDocGetRootElement(doc); root == nullptr) {
    r.error = "XML document without a root element";
  } else {
    ojson j = ojson::object();
    j[qname(root->name, root->ns)] = element_value(root);
    out = j.dump(-1, ' ', false, ojson::error_handler_t::replace);
    r.ok = true;
  }
  if (doc != nullptr) xmlFreeDoc(doc);
  xmlFreeParserCtxt(ctxt);
  return r;
}

}  // namespace gantry::filters
