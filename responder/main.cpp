// ocsp-responder: answers OCSP requests over HTTP from the status store.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include "common/log.h"
#include "common/openssl.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "responder/appliance.h"
#include "metrics/store_collector.h"
#include "responder/access_log.h"
#include "responder/authority.h"
#include "responder/presigner.h"
#include "responder/response_writer.h"
#include "responder/server.h"
#include "responder/service_notify.h"
#include "responder/signing_pool.h"
#include "responder/snapshot.h"
#include "signer/signer.h"
#include "store/store.h"

#ifndef OCSP_VERSION
#define OCSP_VERSION "0.0.0"
#endif

namespace {

using namespace ocsp;

int Serve(const std::string& config_path, bool check_only, bool debug_flag) {
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

  // Taken first: the LISTEN_* variables must be gone before any thread or child could see them.
  auto sockets = responder::TakeListenSockets();
  if (!sockets) {
    std::cerr << "ocsp-responder: " << sockets.error().Describe() << "\n";
    return 2;
  }
  const bool socket_activated = sockets->ocsp.get() >= 0;
  const auto notifier = responder::ServiceNotifier::FromEnvironment();

  auto store = store::Store::Open(config->store_path, {config->map_size_bytes, false});
  if (!store) {
    std::cerr << "ocsp-responder: " << store.error().Describe() << "\n";
    return 1;
  }
  if (!debug_flag) {
    SetLogLevel(config->log_level == "debug"     ? LogLevel::kDebug
                : config->log_level == "warning" ? LogLevel::kWarning
                : config->log_level == "error"   ? LogLevel::kError
                                                 : LogLevel::kInfo);
  }
  std::unique_ptr<responder::AccessLog> access_log;
  if (!config->access_log.empty()) {
    auto opened = responder::AccessLog::Open(config->access_log);
    if (!opened) {
      std::cerr << "ocsp-responder: " << opened.error().Describe() << "\n";
      return 1;
    }
    access_log = std::move(*opened);
  }
  // Built before the snapshot: the verifier registry's names become its labels.
  metrics::ResponderMetrics metrics(OCSP_VERSION, {}, {.enabled = config->metrics_enabled});
  auto snapshot = responder::BuildSnapshot(*config, &*store, clock, 1, &metrics);
  if (!snapshot) {
    std::cerr << "ocsp-responder: " << snapshot.error().message << "\n";
    return 2;
  }
  metrics.AddCollectable(std::make_shared<metrics::StoreCollector>(*store, config->store_path,
                                                                   (*snapshot)->labels, clock));
  responder::SigningPool pool(config->signer_threads, config->max_pending_signatures);
  metrics.SetSigningLoadSource([&pool] {
    const auto load = pool.CurrentLoad();
    return metrics::SigningLoad{load.running, load.waiting, load.max_pending};
  });
  std::unique_ptr<responder::ResponseWriter> writer;
  if (config->presign.enabled) {
    writer = std::make_unique<responder::ResponseWriter>(*store, config->presign.max_good_responses);
  }
  auto server = responder::Server::Start(
      *config, {*snapshot, *store, metrics, pool, clock, writer.get(), access_log.get()},
      {&notifier, std::move(*sockets)});
  if (!server) {
    std::cerr << "ocsp-responder: " << server.error().Describe() << "\n";
    return 1;
  }
  for (config::ListenAddress ocsp : (*server)->ocsp_addresses()) {
    if (socket_activated) ocsp.host = "systemd";  // the passed socket's address is the .socket unit's business
    Log(LogLevel::kInfo, "listening",
        {{"address", ocsp.ToString()}, {"workers", std::to_string(config->workers)},
         {"socket_activated", socket_activated ? "yes" : "no"},
         {"watchdog_usec",
          notifier.watchdog_interval() ? std::to_string(notifier.watchdog_interval()->count()) : "off"},
         {"issuers", std::to_string(config->issuers.size())}, {"prefix", config->path_prefix},
         {"access", config->verifier_registry.empty() ? "open" : config->verifier_registry.string()},
         {"version", OCSP_VERSION}});
  }
  if (config->metrics_listen) {
    config::ListenAddress address = *config->metrics_listen;
    address.port = (*server)->metrics_port();
    Log(LogLevel::kInfo, "metrics_listening", {{"address", address.ToString()}});
  }
  std::unique_ptr<responder::Presigner> presigner;
  if (writer) {
    responder::Server* running = server->get();
    presigner = std::make_unique<responder::Presigner>(
        *store, [running] { return running->CurrentSnapshot(); }, *writer, clock,
        responder::PresignOptionsFrom(config->presign));
    presigner->Start();
  }
  notifier.Ready();
  notifier.Status("answering for " + std::to_string(config->issuers.size()) + " issuer(s) on " +
                  (*server)->ocsp_addresses().front().ToString() + " with " + std::to_string(config->workers) +
                  " worker(s)");
  (*server)->Run();
  if (presigner) presigner->Stop();
  if (writer) writer->Stop();
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
    return Serve(config_path, check_only, debug);
  } catch (const std::exception& error) {
    ocsp::Log(ocsp::LogLevel::kError, "fatal", {{"error", error.what()}});
    return 1;
  }
}
