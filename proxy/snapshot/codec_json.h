// The JSON document form of the codec, between the model and the text.
//
// codec.h is the API everyone uses; this header exposes the document step on
// its own so that benchmarks can compare JSON text with binary encodings of
// the same document (nlohmann's CBOR / MessagePack) without a second schema.
// from_json() never throws: a bad document is an Error naming the JSON path.
#pragma once

#include <nlohmann/json.hpp>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::snapshot {

// Field order is the order of the model, so dumps read top-down.
nlohmann::ordered_json to_json(const Snapshot& s);
nlohmann::ordered_json to_json(const EndpointDelta& d);

Result<Snapshot> snapshot_from_json(const nlohmann::json& j);
Result<EndpointDelta> delta_from_json(const nlohmann::json& j);

}  // namespace gantry::snapshot
