// filters.connectionLimit (ingress-nginx limit-connections, nginx limit_conn):
// requests in progress per client IP, counted across every worker of the
// proxy (one process is one nginx shared zone).
//
// ConnectionCounts is the shared count: acquire() takes a place for a key
// when fewer than `limit` are taken and returns a lease that gives it back
// when destroyed. A key's entry exists only while it holds a place, so memory
// is bounded by the requests in progress. Thread-safe: keys are sharded by
// hash, a mutex per shard. A lease holds its counts alive (shared_ptr), so a
// snapshot swap while requests are in progress neither loses nor frees them.
//
// ConnectionLimitFilter takes the lease in on_request() and leaves it in
// Exchange::connection_lease: the exchange driver destroys it when the
// exchange ends (answered, client gone, upstream error, stream reset).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/exchange/filter.h"
#include "proxy/net/cidr.h"
#include "proxy/snapshot/model.h"

namespace gantry::filters {

class ConnectionCounts : public std::enable_shared_from_this<ConnectionCounts> {
 public:
  // The proxy's one instance (every snapshot's filters count on it).
  static std::shared_ptr<ConnectionCounts> process();
  static std::shared_ptr<ConnectionCounts> create() { return std::shared_ptr<ConnectionCounts>(new ConnectionCounts); }

  // A place for `key` if fewer than `limit` are taken; null when full.
  std::unique_ptr<exchange::Lease> acquire(std::string_view key, uint32_t limit);
  uint32_t count(std::string_view key) const;  // places taken (tests, metrics)
  size_t keys() const;                         // keys holding a place

 private:
  class Held;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, uint32_t> taken;
  };
  static constexpr size_t kShards = 16;
  ConnectionCounts() = default;
  Shard& shard(std::string_view key) const;
  void release(const std::string& key);

  mutable Shard shards_[kShards];
};

// The filter: 503 (statusCode) with x-gateway-reason client-connection-limit
// for the request over perClientIp; exemptSources are never counted.
class ConnectionLimitFilter final : public exchange::Filter {
 public:
  // `route`: the zone when the config names none (the route's namespace/name).
  ConnectionLimitFilter(const snapshot::ConnectionLimit& config, std::shared_ptr<ConnectionCounts> counts,
                        std::string_view route);
  std::string_view name() const override { return "connection_limit"; }
  uint8_t phases() const override { return exchange::kOnRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;

 private:
  uint32_t limit_;
  int status_code_;
  std::vector<net::Cidr> exempt_;
  std::string zone_;
  std::shared_ptr<ConnectionCounts> counts_;
};

}  // namespace gantry::filters
