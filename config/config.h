// The appliance's configuration file (TOML; every key in docs/configuration.md).
//
// Unknown keys are errors: a misspelt key silently ignored is a 3 a.m. problem. Relative paths are resolved
// against the directory of the configuration file.
// Thread safety: a Config is a plain value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace ocsp::config {

struct ListenAddress {
  std::string host;  // "127.0.0.1", "::1", "0.0.0.0"
  std::uint16_t port = 0;
  [[nodiscard]] std::string ToString() const;
};

// "127.0.0.1:8080", "[::1]:8080", ":8080" (all addresses).
Result<ListenAddress> ParseListenAddress(std::string_view text);

// One delegated responder certificate and its key ([[issuer.responder]], or the issuer's
// responder_certificate / responder_key pair).
struct ResponderConfig {
  std::filesystem::path certificate{};
  std::string key{};                      // a PEM path (resolved) or a "pkcs11:" URI (kept as written)
  std::filesystem::path pkcs11_module{};  // pkcs11: keys only
  std::filesystem::path pin_file{};       // pkcs11: keys only
  std::string signature{};                // "", "rsa-pkcs1" or "rsa-pss"
};

struct IssuerConfig {
  std::string name;  // a label for logs and ocspctl
  std::filesystem::path certificate;
  // Every responder certificate of this CA: the responder_certificate / responder_key pair first (when
  // given), then the [[issuer.responder]] tables in file order. Never empty after parsing.
  std::vector<ResponderConfig> responders;
  // "production" or "test": which verifiers may query it (a verifier is registered for one environment).
  std::string environment = "production";
  // The serials this CA issued (responder/issued_serials.h); empty: no list, absence from the CRL is `good`.
  std::filesystem::path issued_serials = {};
};

// Where `ocspctl sync` fetches the CRLs of one issuer: exactly one of `url` and `directory` is set.
struct SourceConfig {
  std::string issuer;               // the name of an [[issuer]]
  std::string url;                  // "http://..." or "https://..."
  std::filesystem::path directory;  // every *.crl, *.der, *.pem in it
  // The URL or the directory, for messages.
  [[nodiscard]] std::string Location() const { return url.empty() ? directory.string() : url; }
};

struct SyncConfig {
  std::size_t max_bytes = std::size_t{2} << 30;  // largest CRL a source may deliver
  long connect_timeout_seconds = 10;
  long timeout_seconds = 600;  // a whole download, connection included
};

// What a request's nonce (RFC 9654) buys.
enum class NonceMode {
  kIgnore,  // serve the stored response (no nonce in it): the high-volume default
  kHonour,  // sign a fresh response echoing the nonce, within nonce_signatures_per_second
};
// Past the nonce signing budget.
enum class NonceOverBudget { kStored, kTryLater };

// Background signing of responses into the store (the presigner) and the kept set of good responses.
struct PresignConfig {
  bool enabled = true;
  unsigned threads = 0;  // 0: one per core; they run at idle priority, below serving and on-demand signing
  // CertID hash algorithms presigned for revoked serials (on-demand responses are kept for any algorithm).
  std::vector<std::string> hash_algorithms{"sha1"};
  // A stored response is re-signed from a newer CRL once it is this close to its nextUpdate.
  UnixSeconds resign_lead_seconds = 12 * 3600;
  std::uint64_t max_good_responses = 1'000'000;  // the kept hot set; least recently requested go first
  unsigned scan_interval_seconds = 30;            // how often the store is checked for work
  std::size_t batch = 4096;                       // responses signed per scan, newest revocations first
  // Also presign `good` for every serial of an issuer's issued_serials list that no CRL revokes, within
  // max_good_responses: for a CA whose issued set is small enough to keep signed.
  bool good_from_issued_serials = false;
};

// How new connections are spread over the workers (responder/cpu_steering.h): to the worker pinned to the CPU that
// processed the connection's SYN (where it applies: one worker per CPU), or by the kernel's SO_REUSEPORT hash of
// addresses and ports. Either way the workers then even out their shares (responder/connection_balancer.h).
enum class ConnectionSteering { kHash, kCpu };

struct Config {
  std::filesystem::path source;  // the file this was read from

  ListenAddress listen{"127.0.0.1", 8080};  // the first of listen_addresses
  std::vector<ListenAddress> listen_addresses{ListenAddress{"127.0.0.1", 8080}};
  // Where OCSP requests are served: POST to the prefix, GET to prefix + "/" + base64. Always starts with '/'
  // and has no trailing '/' unless it is "/".
  std::string path_prefix = "/";
  // Event-loop threads. A parsed configuration without `workers` gets the number of CPUs the process may use.
  unsigned workers = 1;
  ConnectionSteering connection_steering = ConnectionSteering::kCpu;
  unsigned signer_threads = 2;
  std::size_t max_request_bytes = 8192;
  std::size_t max_pending_signatures = 256;
  unsigned max_certids_per_request = 8;
  unsigned http_timeout_seconds = 30;    // evhttp's per-read/write timeout: also the keep-alive idle timeout
  unsigned header_timeout_seconds = 10;  // from a request's first byte to its last (slowloris)
  unsigned max_connections = 10000;      // open OCSP connections, all workers together
  unsigned max_connections_per_address = 256;
  UnixSeconds max_cache_age_seconds = 3600;  // cap of Cache-Control max-age on cacheable answers
  // On SIGTERM: how long in-flight requests may take to finish before the process leaves anyway. Keep it below
  // the unit's TimeoutStopSec=.
  unsigned drain_timeout_seconds = 10;
  // How long after the CRL's nextUpdate answers are still signed (0: none). Past it: tryLater.
  UnixSeconds next_update_grace_seconds = 0;
  // A response's nextUpdate is at most this long after its thisUpdate (and never beyond the CRL's).
  UnixSeconds max_response_validity_seconds = 10 * 86400;
  NonceMode nonce = NonceMode::kIgnore;
  unsigned nonce_signatures_per_second = 100;
  NonceOverBudget nonce_over_budget = NonceOverBudget::kStored;

  PresignConfig presign;

  std::filesystem::path store_path = "/var/lib/ocsp-responder/store";
  std::size_t map_size_bytes = std::size_t{64} << 30;  // address space only: see store::kDefaultMapSizeBytes

  // [access]: the verifier registry (responder/verifiers.h); empty: open access.
  std::filesystem::path verifier_registry;
  bool over_rate_limit_http_429 = false;  // false: answer tryLater (OCSP); true: HTTP 429

  std::optional<ListenAddress> metrics_listen = ListenAddress{"127.0.0.1", 9810};
  // false: requests are not counted or timed (the listener, if any, still serves the store's gauges). The
  // metrics-cost benchmark compares both.
  bool metrics_enabled = true;

  std::string log_level = "info";  // "debug", "info", "warning", "error"
  // One logfmt line per request, with the verifier, in this file (reopened on SIGUSR1); empty: no access log.
  std::filesystem::path access_log;

  UnixSeconds import_max_clock_skew_seconds = 300;
  // Refuse a CRL with this fraction fewer entries than the one it replaces (0..1).
  double import_max_shrink_fraction = 0.10;
  // Where imported CRL files are archived. Parsing fills in `<store_path>/archive` when the key is absent or
  // "", and leaves it empty when it is "off": empty means no archive.
  std::filesystem::path import_archive_directory;
  unsigned import_archive_retention_days = 90;

  std::vector<IssuerConfig> issuers;
  std::vector<SourceConfig> sources;  // [[source]]: each names one of `issuers`
  SyncConfig sync;
};

// Reads and validates the file; the error names the file, the key and what is wrong.
Result<Config> LoadConfig(const std::filesystem::path& path);
// The same from text (for tests); `base` resolves relative paths.
Result<Config> ParseConfig(std::string_view text, const std::filesystem::path& base);

}  // namespace ocsp::config
