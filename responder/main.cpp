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
#include "responder/snapshot.h"
#include "signer/signer.h"
#include "store/store.h"

#ifndef OCSP_VERSION
#define OCSP_VERSION "0.0.0"
#endif

namespace {

using namespace ocsp;

int Serve(const std::string& config_path, bool check_only) {
  auto config = config::LoadConfig(config_path);
  if (!config) {
    std::cerr << "ocsp-responder: " << config.error().message << "\n";
    return 2;
  }
  SystemClock clock;
  // Without the store: checks every file the configuration names (certificates, keys, lists, registry).
  if (auto checked = responder::BuildSnapshot(*config, nullptr, clock, 1); !checked) {
    std::cerr << "ocsp-responder: " << checked.error().message << "\n";
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
  auto snapshot = responder::BuildSnapshot(*config, &*store, clock, 1);
  if (!snapshot) {
    std::cerr << "ocsp-responder: " << snapshot.error().message << "\n";
    return 2;
  }
  metrics::ResponderMetrics metrics(OCSP_VERSION);
  responder::SigningPool pool(config->signer_threads, config->max_pending_signatures);
  auto server = responder::Server::Start(*config, {std::move(*snapshot), *store, metrics, pool, clock});
  if (!server) {
    std::cerr << "ocsp-responder: " << server.error().Describe() << "\n";
    return 1;
  }
  for (const config::ListenAddress& ocsp : (*server)->ocsp_addresses()) {
    Log(LogLevel::kInfo, "listening",
        {{"address", ocsp.ToString()}, {"workers", std::to_string(config->workers)},
         {"issuers", std::to_string(config->issuers.size())}, {"prefix", config->path_prefix},
         {"access", config->verifier_registry.empty() ? "open" : config->verifier_registry.string()},
         {"version", OCSP_VERSION}});
  }
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
