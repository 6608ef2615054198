// The API server's list and watch wire format, as pure functions.
//
// A watch response is a stream of JSON objects, one per line:
//   {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}
// An ERROR event's object is a metav1.Status; code 410 (Gone / Expired) means
// the resourceVersion we resumed from is compacted away: relist. A BOOKMARK
// only advances the resourceVersion. LineSplitter cuts a byte stream into
// lines however it arrives in chunks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/base/result.h"

namespace gantry::controller::kube {

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError };
  Type type = Type::kAdded;
  nlohmann::json object;         // the object; for kError the Status
  std::string resource_version;  // object's metadata.resourceVersion (empty for kError)
  int error_code = 0;            // kError: Status.code (410: relist)
  std::string error_message;     // kError: Status.message
};

// Parses one line of a watch stream. A malformed line is an error.
Result<WatchEvent> parse_watch_event(std::string_view line);

// A list response: its items and the list's resourceVersion and continue token.
struct ListPage {
  std::vector<nlohmann::json> items;
  std::string resource_version;
  std::string continue_token;
};
// `kind` and `api_version` are set on each item (list items carry neither).
Result<ListPage> parse_list(std::string_view body, const std::string& kind,
                            const std::string& api_version);

// metav1.Status of an error response: "message" (or the body's start when it is not a Status).
std::string status_message(std::string_view body);

// Cuts a byte stream into '\n'-terminated lines ('\r' before '\n' dropped;
// empty lines skipped). A line longer than `max_line` is an error.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = 64u << 20) : max_line_(max_line) {}
  // Calls on_line for each complete line; stops early (returns false) when on_line does.
  Result<bool> feed(std::string_view bytes, const std::function<bool(std::string_view)>& on_line);
  size_t pending() const { return buf_.size(); }

 private:
  size_t max_line_;
  std::string buf_;
};

// One kind the controller lists and watches.
struct Resource {
  std::string kind;         // "Service"
  std::string api_version;  // "v1", "discovery.k8s.io/v1"
  std::string plural;       // "services"
  bool namespaced = true;
  // A fieldSelector sent with every list and watch ("type=kubernetes.io/tls",
  // "metadata.name=x"); empty: none. The API server filters: objects that do
  // not match never reach the controller.
  std::string field_selector;
  // A labelSelector sent likewise ("gantry.dev/api-key=shop"); empty: none.
  std::string label_selector;
  // A kind whose API may be absent (a CRD not installed): a 404 on list counts
  // as an empty, synced list, and the informer lists again every 30 s.
  bool optional = false;

  // "/api/v1/namespaces/NS/services" or "/apis/discovery.k8s.io/v1/endpointslices"
  // (all namespaces when `namespace_` is empty or the kind is cluster-scoped).
  std::string collection_path(const std::string& namespace_) const;
  // The path of one object: collection_path(ns) + "/" + name.
  std::string object_path(const std::string& namespace_, const std::string& name) const;
  // "services" or "services in namespace NS" (and " with type=..."), for messages.
  std::string describe(const std::string& namespace_) const;
};

// Query-string escaping of one value (RFC 3986 unreserved characters kept).
std::string url_escape(std::string_view s);

}  // namespace gantry::controller::kube
