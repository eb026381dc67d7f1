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

struct IssuerConfig {
  std::string name;  // a label for logs and ocspctl
  std::filesystem::path certificate;
  std::filesystem::path responder_certificate;
  std::filesystem::path responder_key;
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

struct Config {
  std::filesystem::path source;  // the file this was read from

  ListenAddress listen{"127.0.0.1", 8080};  // the first of listen_addresses
  std::vector<ListenAddress> listen_addresses{ListenAddress{"127.0.0.1", 8080}};
  // Where OCSP requests are served: POST to the prefix, GET to prefix + "/" + base64. Always starts with '/'
  // and has no trailing '/' unless it is "/".
  std::string path_prefix = "/";
  unsigned workers = 1;
  unsigned signer_threads = 2;
  std::size_t max_request_bytes = 8192;
  std::size_t max_pending_signatures = 256;
  unsigned max_certids_per_request = 8;
  unsigned http_timeout_seconds = 30;    // evhttp's per-read/write timeout: also the keep-alive idle timeout
  unsigned header_timeout_seconds = 10;  // from a request's first byte to its last (slowloris)
  unsigned max_connections = 10000;      // open OCSP connections, all workers together
  unsigned max_connections_per_address = 256;
  UnixSeconds max_cache_age_seconds = 3600;  // cap of Cache-Control max-age on cacheable answers
  // How long after the CRL's nextUpdate answers are still signed (0: none). Past it: tryLater.
  UnixSeconds next_update_grace_seconds = 0;

  std::filesystem::path store_path = "/var/lib/ocsp-responder/store";
  std::size_t map_size_bytes = std::size_t{64} << 30;  // address space only: see store::kDefaultMapSizeBytes

  // [access]: the verifier registry (responder/verifiers.h); empty: open access.
  std::filesystem::path verifier_registry;
  bool over_rate_limit_http_429 = false;  // false: answer tryLater (OCSP); true: HTTP 429

  std::optional<ListenAddress> metrics_listen = ListenAddress{"127.0.0.1", 9810};

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
