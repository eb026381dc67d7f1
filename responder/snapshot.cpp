#include "responder/snapshot.h"

#include "common/openssl.h"
#include "responder/appliance.h"

namespace ocsp::responder {

Result<std::shared_ptr<const Snapshot>> BuildSnapshot(const config::Config& config, const store::Store* store,
                                                      const Clock& clock, std::uint64_t generation,
                                                      metrics::ResponderMetrics* metrics) {
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->generation = generation;
  snapshot->config = config;
  auto loaded = LoadIssuers(config, clock.Now());
  if (!loaded) return std::unexpected(loaded.error());
  snapshot->issuers = std::move(loaded->issuers);
  snapshot->signers = std::move(loaded->signers);
  snapshot->labels = std::move(loaded->labels);
  for (const config::IssuerConfig& issuer : config.issuers) {
    const std::string label = "issuer " + issuer.name + ": ";
    auto environment = ParseEnvironment(issuer.environment);
    if (!environment) return Fail(environment.error().code, label + environment.error().message);
    snapshot->environments.push_back(*environment);
    std::unique_ptr<IssuedSerials> issued;
    if (!issuer.issued_serials.empty()) {
      auto list = IssuedSerials::Load(issuer.issued_serials);
      if (!list) return Fail(list.error().code, label + "issued_serials: " + list.error().message);
      issued = std::make_unique<IssuedSerials>(std::move(*list));
    }
    snapshot->issued.push_back(std::move(issued));
  }
  if (!config.verifier_registry.empty()) {
    auto registry = VerifierRegistry::Load(config.verifier_registry);
    if (!registry) return Fail(registry.error().code, "access.registry: " + registry.error().message);
    snapshot->registry.emplace(std::move(*registry));
    if (metrics != nullptr) {
      std::vector<std::string> names;
      for (std::size_t i = 0; i < snapshot->registry->size(); ++i) names.push_back(snapshot->registry->at(i).name);
      auto slots = metrics->SetVerifiers(names);
      if (!slots) return std::unexpected(slots.error());
      snapshot->verifier_slots = std::move(*slots);
    }
  }
  if (store != nullptr) {
    std::vector<const signer::SignerSet*> signers;
    std::vector<const IssuedSerials*> issued;
    for (const auto& signer : snapshot->signers) signers.push_back(signer.get());
    for (const auto& list : snapshot->issued) issued.push_back(list.get());
    snapshot->authority = std::make_unique<StatusAuthority>(*store, snapshot->issuers, std::move(signers), clock,
                                                            config.next_update_grace_seconds,
                                                            config.max_response_validity_seconds, std::move(issued));
  }
  return std::shared_ptr<const Snapshot>(std::move(snapshot));
}

std::vector<std::string> RestartOnlyChanges(const config::Config& running, const config::Config& loaded) {
  std::vector<std::string> changed;
  auto listens = [](const config::Config& c) {
    std::string text;
    for (const auto& address : c.listen_addresses) text += address.ToString() + " ";
    return text;
  };
  auto check = [&](bool differs, const char* key) {
    if (differs) changed.emplace_back(key);
  };
  check(listens(running) != listens(loaded), "responder.listen");
  check(running.workers != loaded.workers, "responder.workers");
  check(running.signer_threads != loaded.signer_threads, "responder.signer_threads");
  check(running.max_request_bytes != loaded.max_request_bytes, "responder.max_request_bytes");
  check(running.max_pending_signatures != loaded.max_pending_signatures, "responder.max_pending_signatures");
  check(running.max_certids_per_request != loaded.max_certids_per_request, "responder.max_certids_per_request");
  check(running.http_timeout_seconds != loaded.http_timeout_seconds, "responder.http_timeout_seconds");
  check(running.header_timeout_seconds != loaded.header_timeout_seconds, "responder.header_timeout_seconds");
  check(running.max_connections != loaded.max_connections, "responder.max_connections");
  check(running.max_connections_per_address != loaded.max_connections_per_address,
        "responder.max_connections_per_address");
  check(running.store_path != loaded.store_path, "store.path");
  check(running.map_size_bytes != loaded.map_size_bytes, "store.map_size_mib");
  const auto metrics = [](const config::Config& c) { return c.metrics_listen ? c.metrics_listen->ToString() : ""; };
  check(metrics(running) != metrics(loaded), "metrics.listen");
  return changed;
}

}  // namespace ocsp::responder
