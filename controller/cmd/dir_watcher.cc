// inotify watcher; see dir_watcher.h.
#include "controller/cmd/dir_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace gantry::controller {

namespace {
constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                           IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;
}

Result<std::unique_ptr<DirWatcher>> DirWatcher::create(const std::string& dir) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return Error{std::string("inotify_init1: ") + std::strerror(errno)};
  std::unique_ptr<DirWatcher> w(new DirWatcher(fd, dir));
  if (!w->rewatch()) return Error{"inotify_add_watch " + dir + ": " + std::strerror(errno)};
  return w;
}

DirWatcher::~DirWatcher() { ::close(fd_); }

bool DirWatcher::rewatch() {
  wd_ = inotify_add_watch(fd_, dir_.c_str(), kMask | IN_ONLYDIR);
  return wd_ >= 0;
}

bool DirWatcher::drain() {
  alignas(inotify_event) char buf[16384];
  bool changed = false;
  while (true) {
    ssize_t n = ::read(fd_, buf, sizeof(buf));
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      if (ev->wd == wd_) {
        changed = true;
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
          if (!(ev->mask & IN_IGNORED)) inotify_rm_watch(fd_, wd_);
          wd_ = -1;
        }
      }
      if (ev->mask & IN_Q_OVERFLOW) changed = true;
      p += sizeof(inotify_event) + ev->len;
    }
  }
  return changed;
}

}  // namespace gantry::controller
