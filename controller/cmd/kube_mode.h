// gantry-controller's cluster mode (`--source kube`): the KubeSource's
// informers feed the Cache; every batch of events is translated at once and
// handed to the pusher (which sends endpoint-only changes immediately as
// ENDPOINTS deltas and holds route changes up to 100 ms); statuses are written
// back 300 ms after they settle (so a route's brief Programmed=Pending between
// push and ACK is never written), and re-checked every 10 s.
//
// Nothing is pushed before every informer has listed once: a half-filled cache
// would replace the proxy's good snapshot with a partial one. /readyz is 200
// once every informer has synced and the proxy has ACKed.
#pragma once

#include <memory>
#include <string>

#include "controller/cmd/health_server.h"
#include "controller/kube/kube_source.h"

namespace gantry::controller {

struct KubeModeConfig {
  kube::KubeSourceOptions source;
  std::string proxy_socket;
  uint64_t first_version = 0;
};

// Runs until SIGINT/SIGTERM arrives on `signal_fd`; returns the exit code. The
// source is not destroyed (its threads may still be unwinding): the caller
// must end the process (std::_Exit) after this returns.
int run_kube_mode(KubeModeConfig config, std::unique_ptr<kube::KubeSource> source,
                  std::unique_ptr<HealthServer> health, int signal_fd);

}  // namespace gantry::controller
