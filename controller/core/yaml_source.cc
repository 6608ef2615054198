// Reading manifests from files; see yaml_source.h. yaml-cpp and the file
// system throw: both are caught here, at the edge, and reported as values.
#include "controller/core/yaml_source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include <yaml-cpp/yaml.h>

#include "controller/core/decode.h"

namespace gantry::controller {

std::string FileError::str() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  if (document > 0) out += " [document " + std::to_string(document) + "]";
  return out;
}

bool is_manifest_name(std::string_view name) {
  if (name.empty() || name.front() == '.') return false;
  auto ends_with = [&](std::string_view suffix) {
    return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  return ends_with(".yaml") || ends_with(".yml");
}

ParsedFile parse_manifest(std::string_view file_name, std::string_view text) {
  ParsedFile out;
  std::string file(file_name);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    out.errors.push_back({file, 0, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "yaml: " + e.msg});
    return out;
  } catch (const std::exception& e) {
    out.errors.push_back({file, 0, 0, "", std::string("yaml: ") + e.what()});
    return out;
  }
  for (size_t i = 0; i < docs.size(); ++i) {
    DecodedDocument d = decode_document(docs[i]);
    int doc_index = static_cast<int>(i + 1);
    for (auto& w : d.warnings) out.warnings.push_back(file + ": " + w);
    if (d.error) {
      out.errors.push_back({file, doc_index, d.error->line, d.error->field, d.error->message});
      continue;
    }
    for (auto& o : d.objects) out.objects.push_back(std::move(o));
  }
  if (!out.errors.empty()) out.objects.clear();
  return out;
}

DirectoryLoad load_directory(const std::string& dir) {
  namespace fs = std::filesystem;
  DirectoryLoad out;
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    out.errors.push_back({dir, 0, 0, "", "cannot read directory: " + ec.message()});
    return out;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    std::error_code sec;
    if (is_manifest_name(name) && fs::is_regular_file(it->path(), sec)) names.push_back(name);
  }
  if (ec) {
    out.errors.push_back({dir, 0, 0, "", "cannot read directory: " + ec.message()});
    return out;
  }
  std::sort(names.begin(), names.end());

  std::map<std::string, std::string> origin;  // "Kind ns/name" -> file
  for (const std::string& name : names) {
    std::ifstream in(fs::path(dir) / name, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof()) {
      out.errors.push_back({name, 0, 0, "", "cannot read file"});
      ++out.files_with_errors;
      continue;
    }
    ++out.files;
    ParsedFile parsed = parse_manifest(name, text.str());
    for (auto& w : parsed.warnings) out.warnings.push_back(std::move(w));
    if (!parsed.errors.empty()) {
      ++out.files_with_errors;
      for (auto& e : parsed.errors) out.errors.push_back(std::move(e));
      continue;
    }
    for (auto& o : parsed.objects) {
      std::string id = std::string(kind_of(o)) + " " + meta_of(o).key();
      auto [pos, inserted] = origin.emplace(id, name);
      if (!inserted) {
        out.warnings.push_back(name + ": " + id + " is already defined in " + pos->second +
                               "; this definition is ignored");
        continue;
      }
      out.cache.upsert(std::move(o));
    }
  }
  return out;
}

}  // namespace gantry::controller
