// ocsp-responder: answers OCSP requests over HTTP from the status store.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>

#include "common/log.h"
#include "common/openssl.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "responder/authority.h"
#include "responder/server.h"
#include "responder/signing_pool.h"
#include "signer/signer.h"
#include "store/store.h"

#ifndef OCSP_VERSION
#define OCSP_VERSION "0.0.0"
#endif

namespace {

using namespace ocsp;

// Everything the configuration names, loaded and checked.
struct Appliance {
  store::IssuerDirectory issuers;
  std::vector<std::unique_ptr<signer::SignerSet>> signers;  // parallel to issuers
};

Result<Appliance> LoadIssuers(const config::Config& config, UnixSeconds now) {
  Appliance appliance;
  if (config.issuers.empty()) return Fail(ErrorCode::kInvalidArgument, "no [[issuer]] is configured");
  for (const config::IssuerConfig& issuer : config.issuers) {
    auto ca = LoadCertificate(issuer.certificate);
    if (!ca) return Fail(ca.error().code, "issuer " + issuer.name + ": " + ca.error().message);
    auto identity = store::IssuerIdentity::FromCertificate(ca->get());
    if (!identity) return Fail(identity.error().code, "issuer " + issuer.name + ": " + identity.error().message);
    std::vector<signer::SignerFiles> responders;
    for (const config::ResponderConfig& responder : issuer.responders) {
      responders.push_back(
          {responder.certificate, responder.key, responder.pkcs11_module, responder.pin_file, responder.signature});
    }
    auto signers = signer::SignerSet::Load(responders, ca->get(), now);
    if (!signers) return Fail(signers.error().code, "issuer " + issuer.name + ": " + signers.error().message);
    if (auto added = appliance.issuers.Add(std::move(*identity)); !added) return std::unexpected(added.error());
    appliance.signers.push_back(std::make_unique<signer::SignerSet>(std::move(*signers)));
  }
  return appliance;
}

int Serve(const std::string& config_path, bool check_only) {
  auto config = config::LoadConfig(config_path);
  if (!config) {
    std::cerr << "ocsp-responder: " << config.error().message << "\n";
    return 2;
  }
  SystemClock clock;
  auto appliance = LoadIssuers(*config, clock.Now());
  if (!appliance) {
    std::cerr << "ocsp-responder: " << appliance.error().message << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << "configuration OK: " << config->issuers.size() << " issuer(s), listen "
              << config->listen.ToString() << ", store " << config->store_path.string() << "\n";
    return 0;
  }

  auto store = store::Store::Open(config->store_path, {config->map_size_bytes, false});
  if (!store) {
    std::cerr << "ocsp-responder: " << store.error().Describe() << "\n";
    return 1;
  }
  metrics::ResponderMetrics metrics(OCSP_VERSION);
  std::vector<const signer::SignerSet*> signers;
  for (const auto& signer : appliance->signers) signers.push_back(signer.get());
  responder::StatusAuthority authority(*store, appliance->issuers, std::move(signers), clock,
                                       config->next_update_grace_seconds);
  responder::SigningPool pool(config->signer_threads, config->max_pending_signatures);
  auto server = responder::Server::Start(*config, {authority, *store, metrics, pool, clock});
  if (!server) {
    std::cerr << "ocsp-responder: " << server.error().Describe() << "\n";
    return 1;
  }
  config::ListenAddress ocsp = config->listen;
  ocsp.port = (*server)->ocsp_port();
  Log(LogLevel::kInfo, "listening",
      {{"address", ocsp.ToString()}, {"workers", std::to_string(config->workers)},
       {"issuers", std::to_string(config->issuers.size())}, {"version", OCSP_VERSION}});
  if (config->metrics_listen) {
    config::ListenAddress address = *config->metrics_listen;
    address.port = (*server)->metrics_port();
    Log(LogLevel::kInfo, "metrics_listening", {{"address", address.ToString()}});
  }
  (*server)->Run();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ocsp-responder: answers OCSP requests (RFC 6960) from the status store"};
  std::string config_path;
  bool check_only = false;
  bool debug = false;
  app.add_option("-c,--config", config_path, "configuration file (TOML)")->required();
  app.add_flag("--check-config", check_only, "load and check the configuration, certificates and keys, then exit");
  app.add_flag("--debug", debug, "log per-request events");
  app.set_version_flag("--version", std::string(OCSP_VERSION));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  if (debug) ocsp::SetLogLevel(ocsp::LogLevel::kDebug);
  try {
    return Serve(config_path, check_only);
  } catch (const std::exception& error) {
    ocsp::Log(ocsp::LogLevel::kError, "fatal", {{"error", error.what()}});
    return 1;
  }
}
