// The responder's HTTP front end (responder::Server) running inside the test process on 127.0.0.1 with a
// fresh store, a test CA and its delegated responder: for tests that want ThreadSanitizer to see both the
// clients and the server's workers and signing threads, and for the HTTP fuzz target.
//
// The store holds one CRL of the CA: 0x1002 revoked (keyCompromise), 0x1003 revoked (affiliationChanged);
// every other serial is good.
// Thread safety: construct and destroy on one thread; port(), ca() and the request helpers from any thread.
// One instance per process at a time (the server's control loop takes SIGINT and SIGTERM).
#pragma once

#include <cstdint>
#include <memory>
#include <thread>

#include "common/bytes.h"
#include "config/config.h"
#include "tests/support/test_pki.h"

namespace ocsp::responder {
struct FrontEndCounters;
}

namespace ocsp::testing {

struct InProcessOptions {
  unsigned workers = 2;
  unsigned signer_threads = 2;
  std::size_t max_pending_signatures = 256;
  std::size_t max_request_bytes = 4096;
  unsigned http_timeout_seconds = 5;
  config::ConnectionSteering connection_steering = config::ConnectionSteering::kHash;
};

class InProcessResponder {
 public:
  explicit InProcessResponder(const InProcessOptions& options = {});
  ~InProcessResponder();  // stops the server: pending signatures finish, then the loops end
  InProcessResponder(const InProcessResponder&) = delete;
  InProcessResponder& operator=(const InProcessResponder&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] const TestCa& ca() const { return ca_; }
  // The server's front-end counters (relaxed atomics): refusals, and the connections it still holds.
  [[nodiscard]] const responder::FrontEndCounters& counters() const;
  // A DER OCSP request for `serial` of the test CA (SHA-1 CertID, no nonce).
  [[nodiscard]] Bytes Request(std::uint64_t serial) const;

 private:
  struct Parts;
  TempDir dir_;
  TestCa ca_;
  std::unique_ptr<Parts> parts_;
  std::thread runner_;
};

}  // namespace ocsp::testing
