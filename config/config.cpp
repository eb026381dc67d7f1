#include "config/config.h"

#include <sched.h>
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <sstream>

#include "common/openssl.h"

namespace ocsp::config {
namespace {

// The CPUs this process may run on (its affinity mask: taskset, systemd's CPUAffinity=, a container's cpuset).
unsigned UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
}

// Configuration errors travel inside this exception only within this file; LoadConfig turns it into a value.
struct ConfigError {
  std::string message;
};

void RejectUnknownKeys(const toml::table& table, const std::set<std::string_view>& known,
                       const std::string& where) {
  for (const auto& [key, value] : table) {
    if (!known.contains(key.str())) {
      throw ConfigError{"unknown key " + where + std::string(key.str())};
    }
  }
}

template <typename T>
T Integer(const toml::table& table, std::string_view key, T fallback, T minimum, T maximum,
          const std::string& where) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return fallback;
  const auto* value = node->as_integer();
  if (value == nullptr) throw ConfigError{where + std::string(key) + " must be an integer"};
  const std::int64_t v = value->get();
  if (v < static_cast<std::int64_t>(minimum) || v > static_cast<std::int64_t>(maximum)) {
    throw ConfigError{where + std::string(key) + " = " + std::to_string(v) + " is outside " +
                      std::to_string(minimum) + ".." + std::to_string(maximum)};
  }
  return static_cast<T>(v);
}

double Fraction(const toml::table& table, std::string_view key, double fallback, const std::string& where) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return fallback;
  double v = 0;
  if (const auto* floating = node->as_floating_point()) {
    v = floating->get();
  } else if (const auto* integer = node->as_integer()) {  // `= 0` and `= 1` are fractions too
    v = static_cast<double>(integer->get());
  } else {
    throw ConfigError{where + std::string(key) + " must be a number"};
  }
  if (!(v >= 0.0 && v <= 1.0)) {  // written so that NaN is refused too
    throw ConfigError{where + std::string(key) + " = " + std::to_string(v) + " is outside 0..1"};
  }
  return v;
}

std::optional<std::string> String(const toml::table& table, std::string_view key, const std::string& where) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return std::nullopt;
  const auto* value = node->as_string();
  if (value == nullptr) throw ConfigError{where + std::string(key) + " must be a string"};
  return value->get();
}

std::filesystem::path Path(const std::filesystem::path& base, const std::string& text) {
  std::filesystem::path path(text);
  return path.is_absolute() ? path : (base / path).lexically_normal();
}

const toml::table* Table(const toml::table& root, std::string_view key) {
  const toml::node* node = root.get(key);
  if (node == nullptr) return nullptr;
  if (!node->is_table()) throw ConfigError{"[" + std::string(key) + "] must be a table"};
  return node->as_table();
}

ListenAddress Listen(const std::string& text, const std::string& where) {
  auto address = ParseListenAddress(text);
  if (!address) throw ConfigError{where + ": " + address.error().message};
  return *address;
}

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char c = text[i] >= 'A' && text[i] <= 'Z' ? static_cast<char>(text[i] - 'A' + 'a') : text[i];
    if (c != prefix[i]) return false;
  }
  return true;
}

// Only what libcurl will be allowed to fetch: http and https with a host, nothing that could smuggle a header.
void CheckSourceUrl(const std::string& url, const std::string& where) {
  std::string_view rest;
  for (std::string_view scheme : {"http://", "https://"}) {
    if (StartsWithNoCase(url, scheme)) rest = std::string_view(url).substr(scheme.size());
  }
  if (rest.empty() || rest.front() == '/') {
    throw ConfigError{where + "url = \"" + url + "\" must be http://host/... or https://host/..."};
  }
  for (const char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      throw ConfigError{where + "url = \"" + url + "\" contains a space or control character"};
    }
  }
}

std::vector<SourceConfig> Sources(const toml::node& node, const std::vector<IssuerConfig>& issuers,
                                  const std::filesystem::path& base) {
  const toml::array* list = node.as_array();
  if (list == nullptr) throw ConfigError{"source must be an array of tables ([[source]])"};
  std::vector<SourceConfig> sources;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const toml::table* table = list->get(i)->as_table();
    const std::string label = "source[" + std::to_string(i) + "]";
    const std::string where = label + ".";
    if (table == nullptr) throw ConfigError{label + " must be a table"};
    RejectUnknownKeys(*table, {"issuer", "url", "directory"}, where);
    SourceConfig source;
    auto issuer = String(*table, "issuer", where);
    if (!issuer || issuer->empty()) throw ConfigError{where + "issuer is required"};
    const auto named = std::count_if(issuers.begin(), issuers.end(),
                                     [&](const IssuerConfig& candidate) { return candidate.name == *issuer; });
    if (named == 0) throw ConfigError{where + "issuer = \"" + *issuer + "\" names no [[issuer]]"};
    if (named > 1) throw ConfigError{where + "issuer = \"" + *issuer + "\" names more than one [[issuer]]"};
    source.issuer = *issuer;

    auto url = String(*table, "url", where);
    auto directory = String(*table, "directory", where);
    if (url.has_value() == directory.has_value()) {
      throw ConfigError{label + " needs exactly one of url and directory"};
    }
    if (url) {
      CheckSourceUrl(*url, where);
      source.url = *url;
    } else {
      if (directory->empty()) throw ConfigError{where + "directory must not be empty"};
      source.directory = Path(base, *directory);
    }
    // The sync state is kept per location: two sources sharing one would overwrite each other's.
    for (std::size_t j = 0; j < sources.size(); ++j) {
      if (sources[j].url == source.url && sources[j].directory == source.directory) {
        throw ConfigError{label + " repeats source[" + std::to_string(j) + "] (" + source.Location() + ")"};
      }
    }
    sources.push_back(std::move(source));
  }
  return sources;
}

// A PEM key is a path, resolved like any other; a PKCS#11 URI is kept as written.
std::string KeyLocation(const std::filesystem::path& base, const std::string& text) {
  if (text.starts_with("pkcs11:")) return text;
  return Path(base, text).string();
}

std::vector<ResponderConfig> Responders(const toml::node& node, const std::filesystem::path& base,
                                        const std::string& issuer_where) {
  const toml::array* list = node.as_array();
  if (list == nullptr) throw ConfigError{issuer_where + "responder must be an array of tables ([[issuer.responder]])"};
  std::vector<ResponderConfig> responders;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const toml::table* table = list->get(i)->as_table();
    const std::string label = issuer_where + "responder[" + std::to_string(i) + "]";
    const std::string where = label + ".";
    if (table == nullptr) throw ConfigError{label + " must be a table"};
    RejectUnknownKeys(*table, {"certificate", "key", "pkcs11_module", "pin_file", "signature"}, where);
    ResponderConfig responder;
    auto certificate = String(*table, "certificate", where);
    if (!certificate || certificate->empty()) throw ConfigError{where + "certificate is required"};
    responder.certificate = Path(base, *certificate);
    auto key = String(*table, "key", where);
    if (!key || key->empty()) throw ConfigError{where + "key is required"};
    responder.key = KeyLocation(base, *key);
    const bool pkcs11 = key->starts_with("pkcs11:");
    auto module = String(*table, "pkcs11_module", where);
    auto pin_file = String(*table, "pin_file", where);
    if (pkcs11) {
      // The PIN lives in its own file, never in this one (which is readable by more people than the key).
      if (key->find("pin-value") != std::string::npos || key->find("pin-source") != std::string::npos) {
        throw ConfigError{where + "key must not carry a PIN; put it in the file pin_file names"};
      }
      if (!module || module->empty()) throw ConfigError{where + "pkcs11_module is required for a pkcs11: key"};
      if (!pin_file || pin_file->empty()) throw ConfigError{where + "pin_file is required for a pkcs11: key"};
      responder.pkcs11_module = Path(base, *module);
      responder.pin_file = Path(base, *pin_file);
    } else if (module || pin_file) {
      throw ConfigError{where + (module ? "pkcs11_module" : "pin_file") + " applies to pkcs11: keys only"};
    }
    if (auto signature = String(*table, "signature", where)) {
      if (*signature != "rsa-pkcs1" && *signature != "rsa-pss") {
        throw ConfigError{where + "signature = \"" + *signature + "\" is not \"rsa-pkcs1\" or \"rsa-pss\""};
      }
      responder.signature = *signature;
    }
    responders.push_back(std::move(responder));
  }
  return responders;
}

Config Build(const toml::table& root, const std::filesystem::path& base) {
  Config config;
  config.workers = std::clamp(UsableCpus(), 1u, 256u);
  RejectUnknownKeys(root, {"responder", "store", "metrics", "log", "import", "issuer", "source", "sync", "presign",
                          "access"},
                    "");

  if (const toml::table* responder = Table(root, "responder")) {
    const std::string where = "responder.";
    RejectUnknownKeys(*responder,
                      {"listen", "workers", "signer_threads", "max_request_bytes", "max_pending_signatures",
                       "max_certids_per_request", "http_timeout_seconds", "next_update_grace_seconds",
                       "max_response_validity_seconds", "nonce", "nonce_signatures_per_second", "nonce_over_budget",
                       "drain_timeout_seconds",
                       "path_prefix", "header_timeout_seconds", "max_connections", "max_connections_per_address",
                       "max_cache_age_seconds", "connection_steering"},
                      where);
    if (const toml::node* listen = responder->get("listen")) {
      // One address or several (IPv4 and IPv6 listeners).
      config.listen_addresses.clear();
      if (const toml::array* list = listen->as_array()) {
        for (const toml::node& item : *list) {
          const auto* text = item.as_string();
          if (text == nullptr) throw ConfigError{where + "listen must be a string or an array of strings"};
          config.listen_addresses.push_back(Listen(text->get(), where + "listen"));
        }
        if (config.listen_addresses.empty()) throw ConfigError{where + "listen must name at least one address"};
      } else if (const auto* text = listen->as_string()) {
        config.listen_addresses.push_back(Listen(text->get(), where + "listen"));
      } else {
        throw ConfigError{where + "listen must be a string or an array of strings"};
      }
      config.listen = config.listen_addresses.front();
    }
    if (auto prefix = String(*responder, "path_prefix", where)) {
      std::string value = *prefix;
      while (value.size() > 1 && value.back() == '/') value.pop_back();
      if (value.empty() || value.front() != '/' || value.find_first_of("?#% \t") != std::string::npos) {
        throw ConfigError{where + "path_prefix = \"" + *prefix + "\" must be an absolute path such as \"/ocsp\""};
      }
      config.path_prefix = value;
    }
    config.header_timeout_seconds =
        Integer<unsigned>(*responder, "header_timeout_seconds", config.header_timeout_seconds, 1, 3600, where);
    config.max_connections =
        Integer<unsigned>(*responder, "max_connections", config.max_connections, 1, 1000000, where);
    config.max_connections_per_address = Integer<unsigned>(
        *responder, "max_connections_per_address", config.max_connections_per_address, 1, 1000000, where);
    config.max_cache_age_seconds =
        Integer<UnixSeconds>(*responder, "max_cache_age_seconds", config.max_cache_age_seconds, 0, 7 * 86400, where);
    config.workers = Integer<unsigned>(*responder, "workers", config.workers, 1, 256, where);
    if (auto steering = String(*responder, "connection_steering", where)) {
      if (*steering == "hash") {
        config.connection_steering = ConnectionSteering::kHash;
      } else if (*steering == "cpu") {
        config.connection_steering = ConnectionSteering::kCpu;
      } else {
        throw ConfigError{where + "connection_steering = \"" + *steering + "\" is neither \"hash\" nor \"cpu\""};
      }
    }
    config.signer_threads = Integer<unsigned>(*responder, "signer_threads", config.signer_threads, 1, 256, where);
    config.max_request_bytes =
        Integer<std::size_t>(*responder, "max_request_bytes", config.max_request_bytes, 256, 1 << 20, where);
    config.max_pending_signatures = Integer<std::size_t>(*responder, "max_pending_signatures",
                                                         config.max_pending_signatures, 1, 1 << 20, where);
    config.max_certids_per_request =
        Integer<unsigned>(*responder, "max_certids_per_request", config.max_certids_per_request, 1, 1000, where);
    config.http_timeout_seconds =
        Integer<unsigned>(*responder, "http_timeout_seconds", config.http_timeout_seconds, 1, 3600, where);
    config.next_update_grace_seconds = Integer<UnixSeconds>(
        *responder, "next_update_grace_seconds", config.next_update_grace_seconds, 0, 7 * 86400, where);
    config.max_response_validity_seconds = Integer<UnixSeconds>(
        *responder, "max_response_validity_seconds", config.max_response_validity_seconds, 3600, 366 * 86400, where);
    if (auto nonce = String(*responder, "nonce", where)) {
      if (*nonce == "ignore") {
        config.nonce = NonceMode::kIgnore;
      } else if (*nonce == "honour" || *nonce == "honor") {
        config.nonce = NonceMode::kHonour;
      } else {
        throw ConfigError{where + "nonce = \"" + *nonce + "\" is neither \"ignore\" nor \"honour\""};
      }
    }
    config.nonce_signatures_per_second = Integer<unsigned>(*responder, "nonce_signatures_per_second",
                                                           config.nonce_signatures_per_second, 0, 1'000'000, where);
    if (auto over = String(*responder, "nonce_over_budget", where)) {
      if (*over == "stored") {
        config.nonce_over_budget = NonceOverBudget::kStored;
      } else if (*over == "tryLater") {
        config.nonce_over_budget = NonceOverBudget::kTryLater;
      } else {
        throw ConfigError{where + "nonce_over_budget = \"" + *over + "\" is neither \"stored\" nor \"tryLater\""};
      }
    }
    config.drain_timeout_seconds =
        Integer<unsigned>(*responder, "drain_timeout_seconds", config.drain_timeout_seconds, 0, 3600, where);
  }

  if (const toml::table* presign = Table(root, "presign")) {
    const std::string where = "presign.";
    RejectUnknownKeys(*presign,
                      {"enabled", "threads", "hash_algorithms", "resign_lead_seconds", "max_good_responses",
                       "scan_interval_seconds", "batch", "good_from_issued_serials"},
                      where);
    if (const toml::node* enabled = presign->get("enabled")) {
      if (!enabled->is_boolean()) throw ConfigError{where + "enabled must be true or false"};
      config.presign.enabled = enabled->as_boolean()->get();
    }
    config.presign.threads = Integer<unsigned>(*presign, "threads", config.presign.threads, 0, 256, where);
    if (const toml::node* algorithms = presign->get("hash_algorithms")) {
      const toml::array* list = algorithms->as_array();
      if (list == nullptr) throw ConfigError{where + "hash_algorithms must be a list of strings"};
      config.presign.hash_algorithms.clear();
      for (const toml::node& item : *list) {
        const auto* name = item.as_string();
        if (name == nullptr || (name->get() != "sha1" && name->get() != "sha256")) {
          throw ConfigError{where + "hash_algorithms: each must be \"sha1\" or \"sha256\""};
        }
        config.presign.hash_algorithms.push_back(name->get());
      }
    }
    config.presign.resign_lead_seconds =
        Integer<UnixSeconds>(*presign, "resign_lead_seconds", config.presign.resign_lead_seconds, 0, 30 * 86400, where);
    config.presign.max_good_responses = Integer<std::uint64_t>(*presign, "max_good_responses",
                                                               config.presign.max_good_responses, 0, 1'000'000'000, where);
    config.presign.scan_interval_seconds =
        Integer<unsigned>(*presign, "scan_interval_seconds", config.presign.scan_interval_seconds, 1, 86400, where);
    config.presign.batch = Integer<std::size_t>(*presign, "batch", config.presign.batch, 1, 1 << 20, where);
    if (const toml::node* from_issued = presign->get("good_from_issued_serials")) {
      if (!from_issued->is_boolean()) throw ConfigError{where + "good_from_issued_serials must be true or false"};
      config.presign.good_from_issued_serials = from_issued->as_boolean()->get();
    }
  }

  if (const toml::table* store = Table(root, "store")) {
    const std::string where = "store.";
    RejectUnknownKeys(*store, {"path", "map_size_mib"}, where);
    if (auto path = String(*store, "path", where)) config.store_path = Path(base, *path);
    config.map_size_bytes =
        Integer<std::size_t>(*store, "map_size_mib", config.map_size_bytes >> 20, 1, std::size_t{1} << 24, where)
        << 20;
  }

  if (const toml::table* log = Table(root, "log")) {
    const std::string where = "log.";
    RejectUnknownKeys(*log, {"level", "access_log"}, where);
    if (auto level = String(*log, "level", where)) {
      if (*level != "debug" && *level != "info" && *level != "warning" && *level != "error") {
        throw ConfigError{where + "level = \"" + *level + "\" is not one of debug, info, warning, error"};
      }
      config.log_level = *level;
    }
    if (auto access_log = String(*log, "access_log", where); access_log && !access_log->empty()) {
      config.access_log = Path(base, *access_log);
    }
  }

  if (const toml::table* metrics = Table(root, "metrics")) {
    const std::string where = "metrics.";
    RejectUnknownKeys(*metrics, {"listen", "enabled"}, where);
    if (const toml::node* enabled = metrics->get("enabled")) {
      if (!enabled->is_boolean()) throw ConfigError{where + "enabled must be true or false"};
      config.metrics_enabled = enabled->as_boolean()->get();
    }
    if (auto listen = String(*metrics, "listen", where)) {
      if (listen->empty()) {
        config.metrics_listen.reset();
      } else {
        config.metrics_listen = Listen(*listen, where + "listen");
      }
    }
  }

  if (const toml::table* access = Table(root, "access")) {
    const std::string where = "access.";
    RejectUnknownKeys(*access, {"registry", "over_rate_limit"}, where);
    if (auto registry = String(*access, "registry", where); registry && !registry->empty()) {
      config.verifier_registry = Path(base, *registry);
    }
    if (auto over = String(*access, "over_rate_limit", where)) {
      if (*over == "429") {
        config.over_rate_limit_http_429 = true;
      } else if (*over != "tryLater") {
        throw ConfigError{where + "over_rate_limit = \"" + *over + "\" must be \"tryLater\" or \"429\""};
      }
    }
  }

  std::optional<std::string> archive_directory;  // resolved after [store]: its default lives under store.path
  if (const toml::table* import = Table(root, "import")) {
    const std::string where = "import.";
    RejectUnknownKeys(*import,
                      {"max_clock_skew_seconds", "max_shrink_fraction", "archive_directory",
                       "archive_retention_days"},
                      where);
    config.import_max_clock_skew_seconds = Integer<UnixSeconds>(
        *import, "max_clock_skew_seconds", config.import_max_clock_skew_seconds, 0, 86400, where);
    config.import_max_shrink_fraction =
        Fraction(*import, "max_shrink_fraction", config.import_max_shrink_fraction, where);
    archive_directory = String(*import, "archive_directory", where);
    config.import_archive_retention_days = Integer<unsigned>(
        *import, "archive_retention_days", config.import_archive_retention_days, 0, 36500, where);
  }
  if (!archive_directory || archive_directory->empty()) {
    config.import_archive_directory = config.store_path / "archive";
  } else if (*archive_directory != "off") {
    config.import_archive_directory = Path(base, *archive_directory);
  }

  if (const toml::table* sync = Table(root, "sync")) {
    const std::string where = "sync.";
    RejectUnknownKeys(*sync, {"max_bytes", "connect_timeout_seconds", "timeout_seconds"}, where);
    config.sync.max_bytes = Integer<std::size_t>(*sync, "max_bytes", config.sync.max_bytes, std::size_t{1} << 10,
                                                 std::size_t{64} << 30, where);
    config.sync.connect_timeout_seconds =
        Integer<long>(*sync, "connect_timeout_seconds", config.sync.connect_timeout_seconds, 1, 600, where);
    config.sync.timeout_seconds =
        Integer<long>(*sync, "timeout_seconds", config.sync.timeout_seconds, 1, 86400, where);
  }

  if (const toml::node* issuers = root.get("issuer")) {
    const toml::array* list = issuers->as_array();
    if (list == nullptr) throw ConfigError{"issuer must be an array of tables ([[issuer]])"};
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::table* table = list->get(i)->as_table();
      const std::string where = "issuer[" + std::to_string(i) + "].";
      if (table == nullptr) throw ConfigError{where + " must be a table"};
      RejectUnknownKeys(*table,
                        {"name", "certificate", "responder_certificate", "responder_key", "responder", "environment",
                         "issued_serials"},
                        where);
      IssuerConfig issuer;
      auto require = [&](std::string_view key) {
        auto value = String(*table, key, where);
        if (!value || value->empty()) throw ConfigError{where + std::string(key) + " is required"};
        return *value;
      };
      issuer.name = require("name");
      issuer.certificate = Path(base, require("certificate"));
      const auto pair_certificate = String(*table, "responder_certificate", where);
      const auto pair_key = String(*table, "responder_key", where);
      if (pair_certificate.has_value() != pair_key.has_value()) {
        throw ConfigError{where + "responder_certificate and responder_key go together"};
      }
      if (pair_certificate) {
        if (pair_certificate->empty()) throw ConfigError{where + "responder_certificate must not be empty"};
        if (pair_key->empty()) throw ConfigError{where + "responder_key must not be empty"};
        issuer.responders.push_back({Path(base, *pair_certificate), KeyLocation(base, *pair_key), {}, {}, {}});
      }
      if (const toml::node* responders = table->get("responder")) {
        for (ResponderConfig& responder : Responders(*responders, base, where)) {
          issuer.responders.push_back(std::move(responder));
        }
      }
      if (issuer.responders.empty()) {
        throw ConfigError{"issuer[" + std::to_string(i) +
                          "] needs a responder certificate: [[issuer.responder]] or responder_certificate"};
      }
      if (auto environment = String(*table, "environment", where)) {
        if (*environment != "production" && *environment != "test") {
          throw ConfigError{where + "environment = \"" + *environment + "\" must be \"production\" or \"test\""};
        }
        issuer.environment = *environment;
      }
      if (auto issued = String(*table, "issued_serials", where); issued && !issued->empty()) {
        issuer.issued_serials = Path(base, *issued);
      }
      config.issuers.push_back(std::move(issuer));
    }
  }

  if (const toml::node* sources = root.get("source")) config.sources = Sources(*sources, config.issuers, base);
  return config;
}

}  // namespace

std::string ListenAddress::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress address;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Fail(ErrorCode::kInvalidArgument, "\"" + std::string(text) + "\" is not [IPv6]:port");
    }
    address.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Fail(ErrorCode::kInvalidArgument, "\"" + std::string(text) + "\" is not host:port");
    }
    address.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  if (address.host.empty()) address.host = "0.0.0.0";
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return Fail(ErrorCode::kInvalidArgument, "\"" + std::string(port) + "\" is not a port number");
  }
  address.port = static_cast<std::uint16_t>(value);
  return address;
}

Result<Config> ParseConfig(std::string_view text, const std::filesystem::path& base) {
  try {
    const toml::table root = toml::parse(text);
    return Build(root, base);
  } catch (const toml::parse_error& error) {
    std::ostringstream message;
    message << error.description() << " at line " << error.source().begin.line << ", column "
            << error.source().begin.column;
    return Fail(ErrorCode::kInvalidArgument, message.str());
  } catch (const ConfigError& error) {
    return Fail(ErrorCode::kInvalidArgument, error.message);
  }
}

Result<Config> LoadConfig(const std::filesystem::path& path) {
  auto data = ReadFile(path);
  if (!data) return std::unexpected(data.error());
  const std::filesystem::path base = std::filesystem::absolute(path).parent_path();
  auto config = ParseConfig(std::string_view(reinterpret_cast<const char*>(data->data()), data->size()), base);
  if (!config) return Fail(config.error().code, path.string() + ": " + config.error().message);
  config->source = path;
  return config;
}

}  // namespace ocsp::config
