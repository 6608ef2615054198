#include "proxy/upstream/cluster_state.h"

namespace gantry::upstream {

std::shared_ptr<ClusterState> ClusterRegistry::get(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = by_name_[name];
  if (!slot) slot = std::make_shared<ClusterState>(name);
  return slot;
}

}  // namespace gantry::upstream
