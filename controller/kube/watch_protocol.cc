// List and watch wire format; see watch_protocol.h.
#include "controller/kube/watch_protocol.h"

namespace gantry::controller::kube {

namespace {

std::string resource_version_of(const nlohmann::json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  auto rv = m->find("resourceVersion");
  if (rv == m->end() || !rv->is_string()) return "";
  return rv->get<std::string>();
}

// Typed field lookups that never throw: a field of another type reads as
// absent (json::value() throws type_error on a mismatch, and watch streams
// come from the network).
std::string string_field(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int int_field(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return 0;
  auto v = it->get<int64_t>();
  return v < 0 || v > 999 ? 0 : static_cast<int>(v);
}

}  // namespace

Result<WatchEvent> parse_watch_event(std::string_view line) {
  nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{"watch event is not a JSON object"};
  auto t = j.find("type");
  auto o = j.find("object");
  if (t == j.end() || !t->is_string()) return Error{"watch event without a type"};
  if (o == j.end() || !o->is_object()) return Error{"watch event without an object"};
  WatchEvent e;
  const std::string& type = t->get_ref<const std::string&>();
  if (type == "ADDED")
    e.type = WatchEvent::Type::kAdded;
  else if (type == "MODIFIED")
    e.type = WatchEvent::Type::kModified;
  else if (type == "DELETED")
    e.type = WatchEvent::Type::kDeleted;
  else if (type == "BOOKMARK")
    e.type = WatchEvent::Type::kBookmark;
  else if (type == "ERROR")
    e.type = WatchEvent::Type::kError;
  else
    return Error{"unknown watch event type \"" + type + "\""};
  e.object = std::move(*o);
  if (e.type == WatchEvent::Type::kError) {
    e.error_code = int_field(e.object, "code");
    e.error_message = string_field(e.object, "message");
    if (e.error_message.empty()) e.error_message = string_field(e.object, "reason");
    return e;
  }
  e.resource_version = resource_version_of(e.object);
  if (e.resource_version.empty()) return Error{"watch event " + type + " without resourceVersion"};
  return e;
}

Result<ListPage> parse_list(std::string_view body, const std::string& kind,
                            const std::string& api_version) {
  nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{"list response is not a JSON object"};
  ListPage page;
  if (auto m = j.find("metadata"); m != j.end() && m->is_object()) {
    page.resource_version = string_field(*m, "resourceVersion");
    page.continue_token = string_field(*m, "continue");
  }
  if (page.resource_version.empty()) return Error{"list response without resourceVersion"};
  auto items = j.find("items");
  if (items != j.end() && items->is_array()) {
    page.items.reserve(items->size());
    for (auto& it : *items) {
      if (!it.is_object()) return Error{"list item is not an object"};
      it["kind"] = kind;
      it["apiVersion"] = api_version;
      page.items.push_back(std::move(it));
    }
  } else if (items != j.end() && !items->is_null()) {
    return Error{"list items is not an array"};
  }
  return page;
}

std::string status_message(std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_object()) {
    if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
  }
  std::string s(body.substr(0, 200));
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

Result<bool> LineSplitter::feed(std::string_view bytes,
                                const std::function<bool(std::string_view)>& on_line) {
  size_t start = 0;
  while (start < bytes.size()) {
    size_t nl = bytes.find('\n', start);
    if (nl == std::string_view::npos) {
      if (buf_.size() + (bytes.size() - start) > max_line_)
        return Error{"watch line longer than " + std::to_string(max_line_) + " bytes"};
      buf_.append(bytes.substr(start));
      break;
    }
    std::string_view piece = bytes.substr(start, nl - start);
    start = nl + 1;
    std::string_view line;
    if (!buf_.empty()) {
      buf_.append(piece);
      line = buf_;
    } else {
      line = piece;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool go_on = line.empty() || on_line(line);
    buf_.clear();
    if (!go_on) return false;
  }
  return true;
}

std::string Resource::collection_path(const std::string& namespace_) const {
  std::string p = api_version.find('/') == std::string::npos ? "/api/" : "/apis/";
  p += api_version;
  if (namespaced && !namespace_.empty()) p += "/namespaces/" + namespace_;
  return p + "/" + plural;
}

std::string Resource::object_path(const std::string& namespace_, const std::string& name) const {
  return collection_path(namespace_) + "/" + name;
}

std::string Resource::describe(const std::string& namespace_) const {
  std::string group = api_version.find('/') == std::string::npos
                          ? std::string()
                          // Appended, not "." + std::string&&: GCC 12 at -O3 reports a false -Wrestrict (GCC PR 105329).
                          : std::string(".").append(api_version, 0, api_version.find('/'));
  std::string out = plural + group;
  if (namespaced && !namespace_.empty()) out += " in namespace " + namespace_;
  if (!field_selector.empty()) out += " with " + field_selector;
  if (!label_selector.empty()) out += " labelled " + label_selector;
  return out;
}

std::string url_escape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

}  // namespace gantry::controller::kube
