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
};

struct Config {
  std::filesystem::path source;  // the file this was read from

  ListenAddress listen{"127.0.0.1", 8080};
  unsigned workers = 1;
  unsigned signer_threads = 2;
  std::size_t max_request_bytes = 8192;
  std::size_t max_pending_signatures = 256;
  unsigned max_certids_per_request = 8;
  unsigned http_timeout_seconds = 30;
  // How long after the CRL's nextUpdate answers are still signed (0: none). Past it: tryLater.
  UnixSeconds next_update_grace_seconds = 0;

  std::filesystem::path store_path = "/var/lib/ocsp-responder/store";
  std::size_t map_size_bytes = std::size_t{1024} << 20;

  std::optional<ListenAddress> metrics_listen = ListenAddress{"127.0.0.1", 9810};

  UnixSeconds import_max_clock_skew_seconds = 300;

  std::vector<IssuerConfig> issuers;
};

// Reads and validates the file; the error names the file, the key and what is wrong.
Result<Config> LoadConfig(const std::filesystem::path& path);
// The same from text (for tests); `base` resolves relative paths.
Result<Config> ParseConfig(std::string_view text, const std::filesystem::path& base);

}  // namespace ocsp::config
