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
  // Appended, not "literal" + std::string&&: GCC 12 at -O3 reports a false -Wrestrict there (GCC PR 105329).
  if (line > 0) out.append(":").append(std::to_string(line));
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

namespace {

struct Chunk {
  std::string text;
  int first_line = 0;  // 0-based line of the chunk's first line in the file
};

bool is_marker(std::string_view line, std::string_view marker) {
  if (line.substr(0, 3) != marker) return false;
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' ||
         line[3] == '\n';
}

bool blank(std::string_view text) {
  bool in_comment = false;
  for (char c : text) {
    if (c == '\n')
      in_comment = false;
    else if (c == '#')
      in_comment = true;
    else if (!in_comment && c != ' ' && c != '\t' && c != '\r')
      return false;
  }
  return true;
}

// Splits a stream into documents at "---" lines (a "..." line ends one).
// YAML forbids both markers at column 0 inside content, so this split is
// exact. yaml-cpp's own LoadAll can loop forever, allocating, on some
// malformed streams (jbeder/yaml-cpp#1040); loading one document at a time
// with YAML::Load cannot.
std::vector<Chunk> split_documents(std::string_view text) {
  std::vector<Chunk> out(1);
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view line = text.substr(pos, next - pos);
    if (is_marker(line, "---") && !blank(out.back().text)) {
      out.push_back({"", line_no});
    } else if (is_marker(line, "---")) {
      out.back() = {"", line_no};
    }
    out.back().text += line;
    if (is_marker(line, "...")) out.push_back({"", line_no + 1});
    pos = next;
    ++line_no;
  }
  return out;
}

}  // namespace

ParsedFile parse_manifest(std::string_view file_name, std::string_view text) {
  ParsedFile out;
  std::string file(file_name);
  int doc_index = 0;
  for (const Chunk& chunk : split_documents(text)) {
    if (blank(chunk.text)) continue;
    ++doc_index;
    YAML::Node doc;
    try {
      doc = YAML::Load(chunk.text);
    } catch (const YAML::Exception& e) {
      int line = e.mark.line >= 0 ? e.mark.line + 1 + chunk.first_line : 0;
      out.errors.push_back({file, doc_index, line, "", "yaml: " + e.msg});
      continue;
    } catch (const std::exception& e) {
      out.errors.push_back({file, doc_index, 0, "", std::string("yaml: ") + e.what()});
      continue;
    }
    DecodedDocument d = decode_document(doc, chunk.first_line);
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

DirectoryLoad load_directory(const std::string& dir, LastGood* last_good) {
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
  if (last_good) {
    for (auto it = last_good->begin(); it != last_good->end();)
      it = std::binary_search(names.begin(), names.end(), it->first) ? std::next(it) : last_good->erase(it);
  }

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
      auto kept = last_good ? last_good->find(name) : LastGood::iterator{};
      if (!last_good || kept == last_good->end()) continue;
      ++out.files_kept;
      out.warnings.push_back(name + ": has errors; its last good version (" +
                             std::to_string(kept->second.size()) + " objects) stays applied");
      parsed.objects = kept->second;
    } else if (last_good) {
      (*last_good)[name] = parsed.objects;
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
