// Decoding Kubernetes objects from a YAML::Node into the object model.
//
// One decoder serves both sources: the standalone YAML directory hands it the
// documents yaml-cpp parsed; the API-server watch hands it JSON, turned into a
// YAML::Node by json_to_node() (or parsed by decode_json_object()). Nothing is
// decoded twice in two dialects.
//
// What a CRD's structural schema would reject is a decode error naming the
// field and the line: a wrong type, a missing name, an enum value outside its
// list ("spec.rules[0].matches[0].path.type: unknown value \"Prefix\" (want
// Exact, PathPrefix, RegularExpression)"). What only the controller can judge
// (regexes, durations, sizes, hostnames, unknown filter names) is kept raw and
// left to translate, which turns it into the route's status.
//
// yaml-cpp throws; every exception stops here and becomes a DecodeError.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json_fwd.hpp>

#include "controller/core/objects.h"
#include "proxy/base/result.h"

namespace gantry::controller {

struct DecodeError {
  int line = 0;       // 1-based; 0 when unknown (nodes built from JSON)
  std::string field;  // "spec.rules[0].matches[0].path.type"; empty for the whole document
  std::string message;
  // "14: spec.rules[0]...: unknown value ..." (or without the line when unknown)
  std::string str() const;
};

// The objects of one document: one, several (kind: List) or none (an empty
// document, or a kind gantry does not use, reported in `warnings`). With an
// error, `objects` is empty: a document is taken whole or not at all.
struct DecodedDocument {
  std::vector<Object> objects;
  std::vector<std::string> warnings;
  std::optional<DecodeError> error;
};

// Decodes one parsed document. Never throws. `line_offset` is added to the
// lines yaml-cpp reports (for a document parsed out of a larger file).
DecodedDocument decode_document(const YAML::Node& doc, int line_offset = 0);

// For the watch source: one object, whose kind must be one gantry uses.
Result<Object> decode_object(const YAML::Node& node);
YAML::Node json_to_node(const nlohmann::json& j);
Result<Object> decode_json_object(std::string_view json);

// "2024-05-01T10:00:00Z", "2024-05-01T12:00:00.5+02:00" -> unix seconds.
Result<int64_t> parse_rfc3339(std::string_view s);
// Standard base64 (padding required, CR/LF ignored as Go's decoder does).
Result<std::string> decode_base64(std::string_view s);

}  // namespace gantry::controller
