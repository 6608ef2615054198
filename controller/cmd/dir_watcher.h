// Watches one directory with inotify and says when it changed.
//
// Events: IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_DELETE, IN_MOVED_FROM
// (and the directory's own deletion or move). Kubernetes ConfigMap volumes
// swap a `..data` symlink by rename, which shows up as IN_MOVED_TO. The caller
// debounces: drain() only reports whether anything happened.
#pragma once

#include <memory>
#include <string>

#include "proxy/base/result.h"

namespace gantry::controller {

class DirWatcher {
 public:
  static Result<std::unique_ptr<DirWatcher>> create(const std::string& dir);
  ~DirWatcher();

  int fd() const { return fd_; }
  // Reads pending events; true if any concerns the directory. Sets lost()
  // when the directory itself went away (re-arm with rewatch()).
  bool drain();
  bool lost() const { return wd_ < 0; }
  bool rewatch();

 private:
  DirWatcher(int fd, std::string dir) : fd_(fd), dir_(std::move(dir)) {}
  int fd_;
  int wd_ = -1;
  std::string dir_;
};

}  // namespace gantry::controller
