// The snapshot codec: Snapshot and EndpointDelta to and from JSON text.
//
// Decoding is strict about types and enum spellings and names the offending
// path in its error ("routes[2].rules[0].matches[1].path.type: unknown value
// \"Prefix\""), but tolerant of unknown fields so an older proxy can read a
// newer controller's snapshot. Decoding does not validate semantics; call
// validate() before applying.
#pragma once

#include <string>
#include <string_view>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::snapshot {

std::string encode(const Snapshot& s);
Result<Snapshot> decode_snapshot(std::string_view json);

std::string encode(const EndpointDelta& d);
Result<EndpointDelta> decode_delta(std::string_view json);

// Pretty JSON for /config_dump and golden files (same schema as encode()).
std::string to_pretty_json(const Snapshot& s);

}  // namespace gantry::snapshot
