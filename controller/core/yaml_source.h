// Standalone mode's source: Kubernetes manifests in a directory of YAML files.
//
// parse_manifest() turns one file's text (multi-document, `kind: List`
// allowed) into objects; load_directory() reads every *.yaml / *.yml file of a
// directory (sorted by name, not recursive, dotfiles skipped) into a Cache.
// A file is taken whole or not at all: a file with any error is reported by
// name, document and line, and contributes either nothing or, when the caller
// keeps a LastGood memory, the objects of its last version that parsed (a typo
// saved in an editor must not take down the routes that file served); the
// other files apply.
// Semantic problems of a GatewayRoute are not errors here: translate turns
// them into the route's status.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "controller/core/objects.h"

namespace gantry::controller {

struct FileError {
  std::string file;   // as given: the file name inside the directory
  int document = 0;   // 1-based index of the YAML document; 0: the file as a whole
  int line = 0;       // 1-based; 0: unknown
  std::string field;  // "spec.rules[0].matches[0].path.type"; may be empty
  std::string message;

  // "routes.yaml:14: spec.rules[0].matches[0].path.type: unknown value \"Prefix\"
  //  (want Exact, PathPrefix, RegularExpression) [document 2]"
  std::string str() const;
};

struct ParsedFile {
  std::vector<Object> objects;  // empty when errors is not
  std::vector<FileError> errors;
  std::vector<std::string> warnings;  // "routes.yaml:3: kind LimitRange (v1) is not used..."
};

// Never throws.
ParsedFile parse_manifest(std::string_view file_name, std::string_view text);

// The objects of each file's last version without errors, by file name.
using LastGood = std::map<std::string, std::vector<Object>>;

struct DirectoryLoad {
  Cache cache;
  size_t files = 0;              // manifest files read
  size_t files_with_errors = 0;  // of which had errors (new objects ignored)
  size_t files_kept = 0;         // of those, served from their last good version
  std::vector<FileError> errors;
  std::vector<std::string> warnings;  // skipped kinds, duplicate objects
};

// Reads `dir`. A directory that cannot be listed yields one error (file = dir)
// and an empty cache. An object defined twice (same kind, namespace and name)
// keeps its first definition in file order; the second is a warning.
// With `last_good`, each file that parses is remembered there, a file with
// errors contributes its remembered objects (with a warning saying so), and
// files no longer in the directory are forgotten. A listing failure leaves
// `last_good` untouched.
DirectoryLoad load_directory(const std::string& dir, LastGood* last_good = nullptr);

// True for the file names load_directory reads.
bool is_manifest_name(std::string_view file_name);

}  // namespace gantry::controller
