#include "tests/support/inprocess_responder.h"

#include <stdexcept>

#include "config/config.h"
#include "importer/import.h"
#include "metrics/metrics.h"
#include "responder/response_writer.h"
#include "responder/snapshot.h"
#include "responder/server.h"
#include "responder/signing_pool.h"
#include "signer/signer.h"
#include "store/issuer.h"
#include "store/store.h"

namespace ocsp::testing {

namespace {
template <typename T>
T Required(Result<T> result, const char* what) {
  if (!result) throw std::runtime_error(std::string(what) + ": " + result.error().Describe());
  return std::move(*result);
}
}  // namespace

// Declared in the order they must be built; destroyed in reverse, the server first.
struct InProcessResponder::Parts {
  SystemClock clock;
  config::Config config;
  store::Store store;
  metrics::ResponderMetrics metrics{"test"};
  std::shared_ptr<const responder::Snapshot> snapshot;
  responder::SigningPool pool;
  responder::ResponseWriter writer;  // on-demand answers are kept: the stored path runs too
  std::unique_ptr<responder::Server> server;

  Parts(config::Config config_in, store::Store store_in)
      : config(std::move(config_in)),
        store(std::move(store_in)),
        snapshot(Required(responder::BuildSnapshot(config, &store, clock, 1, &metrics), "snapshot")),
        pool(config.signer_threads, config.max_pending_signatures),
        writer(store, config.presign.max_good_responses) {}
};

InProcessResponder::InProcessResponder(const InProcessOptions& options) : ca_(TestCa::Create()) {
  ca_.Write(dir_.path());
  const UnixSeconds now = SystemClock().Now();
  CrlOptions crl;
  crl.number = 1;
  crl.this_update = now - 600;
  crl.next_update = now + 86400;
  crl.revoked = {{Serial(0x1002), now - 7200, 1, std::nullopt}, {Serial(0x1003), now - 7200, 3, std::nullopt}};
  WriteFile(dir_.path() / "crl.der", ToDer(ca_.Crl(crl).get()));

  config::Config config;
  config.listen = {"127.0.0.1", 0};
  config.listen_addresses = {config.listen};
  config::IssuerConfig issuer;
  issuer.name = "test-ca";
  issuer.certificate = dir_.path() / "ca.pem";
  issuer.responders.push_back({dir_.path() / "responder.pem", (dir_.path() / "responder.key").string(), {}, {}, {}});
  config.issuers.push_back(std::move(issuer));
  config.workers = options.workers;
  config.signer_threads = options.signer_threads;
  config.max_pending_signatures = options.max_pending_signatures;
  config.max_request_bytes = options.max_request_bytes;
  config.http_timeout_seconds = options.http_timeout_seconds;
  config.connection_steering = options.connection_steering;
  config.metrics_listen = std::nullopt;
  config.store_path = dir_.path() / "store";
  config.map_size_bytes = std::size_t{64} << 20;

  auto store = Required(store::Store::Open(config.store_path, {config.map_size_bytes, false}), "store");
  SystemClock clock;
  Required(importer::Importer(store, config.store_path, clock)
               .Import(ca_.certificate.get(), {{dir_.path() / "crl.der", "crl.der"}}),
           "import");
  parts_ = std::make_unique<Parts>(std::move(config), std::move(store));
  parts_->server = Required(responder::Server::Start(parts_->config, {parts_->snapshot, parts_->store, parts_->metrics,
                                                                      parts_->pool, parts_->clock, &parts_->writer}),
                            "server");
  runner_ = std::thread([server = parts_->server.get()] { server->Run(); });
}

InProcessResponder::~InProcessResponder() {
  parts_->server->RequestStop();
  runner_.join();
}

std::uint16_t InProcessResponder::port() const { return parts_->server->ocsp_port(); }

const responder::FrontEndCounters& InProcessResponder::counters() const { return parts_->server->counters(); }

Bytes InProcessResponder::Request(std::uint64_t serial) const {
  return MakeRequest(ca_.certificate.get(), {Serial(serial)}, EVP_sha1());
}

}  // namespace ocsp::testing
