// filters.connectionLimit (connection_limit.h).
#include <functional>

#include "proxy/filters/connection_limit.h"

namespace gantry::filters {

class ConnectionCounts::Held final : public exchange::Lease {
 public:
  Held(std::shared_ptr<ConnectionCounts> owner, std::string key) : owner_(std::move(owner)), key_(std::move(key)) {}
  ~Held() override { owner_->release(key_); }

 private:
  std::shared_ptr<ConnectionCounts> owner_;
  std::string key_;
};

std::shared_ptr<ConnectionCounts> ConnectionCounts::process() {
  static const std::shared_ptr<ConnectionCounts> counts = create();
  return counts;
}

ConnectionCounts::Shard& ConnectionCounts::shard(std::string_view key) const {
  return shards_[std::hash<std::string_view>{}(key) % kShards];
}

std::unique_ptr<exchange::Lease> ConnectionCounts::acquire(std::string_view key, uint32_t limit) {
  Shard& s = shard(key);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.taken.find(std::string(key));
    if (it == s.taken.end()) {
      if (limit == 0) return nullptr;
      s.taken.emplace(std::string(key), 1);
    } else {
      if (it->second >= limit) return nullptr;
      ++it->second;
    }
  }
  return std::make_unique<Held>(shared_from_this(), std::string(key));
}

void ConnectionCounts::release(const std::string& key) {
  Shard& s = shard(key);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.taken.find(key);
  if (it == s.taken.end()) return;
  if (--it->second == 0) s.taken.erase(it);
}

uint32_t ConnectionCounts::count(std::string_view key) const {
  Shard& s = shard(key);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.taken.find(std::string(key));
  return it == s.taken.end() ? 0 : it->second;
}

size_t ConnectionCounts::keys() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.taken.size();
  }
  return n;
}

ConnectionLimitFilter::ConnectionLimitFilter(const snapshot::ConnectionLimit& config,
                                             std::shared_ptr<ConnectionCounts> counts, std::string_view route)
    : limit_(config.per_client_ip),
      status_code_(config.status_code),
      zone_(config.zone.empty() ? std::string(route) : config.zone),
      counts_(std::move(counts)) {
  for (const auto& s : config.exempt_sources)
    if (auto c = net::parse_cidr(s); c.ok()) exempt_.push_back(*c);  // validated by the snapshot
  zone_.push_back('\n');  // never in a zone name nor an address: zone + "\n" + IP is unambiguous
}

exchange::Verdict ConnectionLimitFilter::on_request(exchange::Exchange& ex) const {
  if (!exempt_.empty() && net::contains(exempt_, ex.req.client_ip)) return exchange::Verdict::kContinue;
  std::string key(zone_);
  key.append(ex.req.client_ip);
  ex.connection_lease = counts_->acquire(key, limit_);
  if (ex.connection_lease) return exchange::Verdict::kContinue;
  ex.reply.status = status_code_;
  ex.reply.body = "too many requests in progress from this client";
  ex.reply.kind = "connection_limited";
  ex.reply.gateway_reason = "client-connection-limit";
  return exchange::Verdict::kRespond;
}

}  // namespace gantry::filters
