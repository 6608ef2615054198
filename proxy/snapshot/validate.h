// Semantic validation of a decoded snapshot. Every problem is reported with
// the object it belongs to, so a NACK tells the operator what to fix:
//   route default/shop rules[1].matches[0].path: value must start with "/"
// A snapshot with any error is never applied (the proxy keeps the last good one).
#pragma once

#include <string>
#include <vector>

#include "proxy/snapshot/model.h"

namespace gantry::snapshot {

// Returns an empty list when the snapshot can be applied.
std::vector<std::string> validate(const Snapshot& s);

// Checks a delta against the snapshot it would be applied to.
std::vector<std::string> validate(const EndpointDelta& d, const Snapshot& current);

// Applies a validated delta: a copy of `current` with the delta's endpoints and version.
Snapshot apply(const EndpointDelta& d, const Snapshot& current);

}  // namespace gantry::snapshot
