// filters.transform: JSON ↔ XML body conversion (docs/policies.md, "transform",
// has the mapping table and the selection rules). Pure: no sockets; the
// exchange driver buffers the bodies and calls these.
//
// XML is parsed with libxml2 without entity substitution, without DTD
// loading and without network access (XML_PARSE_NONET); a document with a
// DOCTYPE is refused before its internal subset is read, so external
// entities (XXE) and entity expansion (billion laughs) never happen. JSON is
// parsed with nlohmann-json, member order kept.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gantry::filters {

// The body formats the filter converts between.
enum class BodyFormat : uint8_t { kNone, kJson, kXml };

// The format of a Content-Type / Accept media type: application/json and any
// +json suffix → kJson; application/xml, text/xml and any +xml suffix → kXml;
// anything else → kNone. Parameters (charset=...) are ignored.
BodyFormat media_format(std::string_view media_type);

// What the client prefers, from its Accept field: the format whose best
// explicit media type has the higher q (q=0 excludes). kNone when Accept is
// absent, names neither format explicitly, or rates both the same.
BodyFormat accept_preference(std::string_view accept);

struct TransformOptions {
  std::string_view root_element = "root";  // the root of a JSON value that is not {"name": {...}}
  std::string_view item_element = "item";  // the elements of a top-level (or nested) array
};

// The outcome of one conversion. On failure `error` says what and where
// ("line 3, column 7: ..."), and `out` is unspecified.
struct TransformResult {
  bool ok = false;
  bool refused = false;  // the input was well-formed but refused (DOCTYPE / entities)
  std::string error;
};

// JSON text → XML document (UTF-8, with an XML declaration).
TransformResult json_to_xml(std::string_view json, const TransformOptions& opts, std::string& out);
// XML document → JSON text ({"<root name>": value}).
TransformResult xml_to_json(std::string_view xml, std::string& out);

// The media type each format is written as.
inline constexpr std::string_view kJsonMediaType = "application/json";
inline constexpr std::string_view kXmlMediaType = "application/xml; charset=utf-8";

}  // namespace gantry::filters
