#include <doctest/doctest.h>
#include <sched.h>

#include "config/config.h"

using namespace ocsp;
using namespace ocsp::config;

TEST_CASE("config: a complete file is read, relative paths against the file's directory") {
  auto config = ParseConfig(R"(
[responder]
listen = "[::1]:8443"
workers = 4
signer_threads = 3
max_request_bytes = 4096
next_update_grace_seconds = 600
[store]
path = "store"
map_size_mib = 2048
[metrics]
listen = "127.0.0.1:9900"
[import]
max_clock_skew_seconds = 60
[[issuer]]
name = "signing-2023"
certificate = "pki/ca.pem"
responder_certificate = "/etc/ocsp/responder.pem"
responder_key = "pki/responder.key"
)",
                            "/etc/ocsp-responder");
  REQUIRE(config.has_value());
  CHECK(config->listen.host == "::1");
  CHECK(config->listen.port == 8443);
  CHECK(config->listen.ToString() == "[::1]:8443");
  CHECK(config->workers == 4);
  CHECK(config->signer_threads == 3);
  CHECK(config->max_request_bytes == 4096);
  CHECK(config->next_update_grace_seconds == 600);
  CHECK(config->store_path == "/etc/ocsp-responder/store");
  CHECK(config->map_size_bytes == std::size_t{2048} << 20);
  REQUIRE(config->metrics_listen.has_value());
  CHECK(config->metrics_listen->port == 9900);
  CHECK(config->import_max_clock_skew_seconds == 60);
  REQUIRE(config->issuers.size() == 1);
  CHECK(config->issuers[0].certificate == "/etc/ocsp-responder/pki/ca.pem");
  REQUIRE(config->issuers[0].responders.size() == 1);
  CHECK(config->issuers[0].responders[0].certificate == "/etc/ocsp/responder.pem");
  CHECK(config->issuers[0].responders[0].key == "/etc/ocsp-responder/pki/responder.key");
}

TEST_CASE("config: defaults hold when sections are absent, and an empty metrics address turns metrics off") {
  auto config = ParseConfig("[metrics]\nlisten = \"\"\n", "/");
  REQUIRE(config.has_value());
  CHECK(config->listen.ToString() == "127.0.0.1:8080");
  CHECK_FALSE(config->metrics_listen.has_value());
  // One worker per CPU this process may use; connections steered by CPU.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  REQUIRE(sched_getaffinity(0, sizeof cpus, &cpus) == 0);
  CHECK(config->workers == static_cast<unsigned>(CPU_COUNT(&cpus)));
  CHECK(config->connection_steering == ConnectionSteering::kCpu);
}

TEST_CASE("config: connection_steering is \"hash\" or \"cpu\"") {
  auto steering = ParseConfig("[responder]\nconnection_steering = \"cpu\"\n", "/");
  REQUIRE(steering.has_value());
  CHECK(steering->connection_steering == ConnectionSteering::kCpu);
  auto wrong = ParseConfig("[responder]\nconnection_steering = \"rss\"\n", "/");
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().message.find("responder.connection_steering") != std::string::npos);
}

TEST_CASE("config: mistakes are refused with the key named") {
  auto message = [](std::string_view text) {
    auto config = ParseConfig(text, "/");
    REQUIRE_FALSE(config.has_value());
    return config.error().message;
  };
  CHECK(message("[responder]\nlisen = \"1.2.3.4:80\"\n").find("responder.lisen") != std::string::npos);
  CHECK(message("[responder]\nworkers = 0\n").find("responder.workers") != std::string::npos);
  CHECK(message("[responder]\nworkers = \"two\"\n").find("must be an integer") != std::string::npos);
  CHECK(message("[responder]\nlisten = \"localhost\"\n").find("host:port") != std::string::npos);
  CHECK(message("[responder]\nlisten = \"127.0.0.1:99999\"\n").find("port") != std::string::npos);
  CHECK(message("[[issuer]]\nname = \"x\"\n").find("issuer[0].certificate is required") != std::string::npos);
  CHECK(message("[responder\n").find("line 1") != std::string::npos);
  CHECK(message("surprise = 1\n").find("unknown key surprise") != std::string::npos);
}

namespace {

constexpr std::string_view kIssuers = R"(
[[issuer]]
name = "signing-2023"
certificate = "pki/ca.pem"
responder_certificate = "pki/responder.pem"
responder_key = "pki/responder.key"
[[issuer]]
name = "auth-2023"
certificate = "pki/auth.pem"
responder_certificate = "pki/auth-responder.pem"
responder_key = "pki/auth-responder.key"
)";

std::string WithIssuers(std::string_view text) { return std::string(kIssuers) + std::string(text); }

}  // namespace

TEST_CASE("config: [[source]] names an issuer and one URL or directory, relative directories resolved") {
  auto config = ParseConfig(WithIssuers(R"(
[[source]]
issuer = "signing-2023"
url = "https://crl.example.jp/signing-2023.crl"
[[source]]
issuer = "signing-2023"
directory = "incoming-crls"
[[source]]
issuer = "auth-2023"
url = "HTTP://crl.example.jp/auth.crl"
[[source]]
issuer = "auth-2023"
directory = "/srv/crl/auth"
)"),
                            "/etc/ocsp-responder");
  REQUIRE_MESSAGE(config.has_value(), config.error().message);
  REQUIRE(config->sources.size() == 4);
  CHECK(config->sources[0].issuer == "signing-2023");
  CHECK(config->sources[0].url == "https://crl.example.jp/signing-2023.crl");
  CHECK(config->sources[0].directory.empty());
  CHECK(config->sources[0].Location() == "https://crl.example.jp/signing-2023.crl");
  CHECK(config->sources[1].url.empty());
  CHECK(config->sources[1].directory == "/etc/ocsp-responder/incoming-crls");
  CHECK(config->sources[1].Location() == "/etc/ocsp-responder/incoming-crls");
  CHECK(config->sources[2].issuer == "auth-2023");
  CHECK(config->sources[3].directory == "/srv/crl/auth");
}

TEST_CASE("config: a [[source]] that is wrong is refused with the source named") {
  auto message = [](std::string_view sources) {
    auto config = ParseConfig(WithIssuers(sources), "/etc/ocsp-responder");
    REQUIRE_FALSE(config.has_value());
    return config.error().message;
  };
  CHECK(message("[[source]]\nurl = \"http://a/b.crl\"\n") == "source[0].issuer is required");
  CHECK(message("[[source]]\nissuer = \"nobody\"\nurl = \"http://a/b.crl\"\n") ==
        "source[0].issuer = \"nobody\" names no [[issuer]]");
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\n") == "source[0] needs exactly one of url and directory");
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\nurl = \"http://a/b.crl\"\ndirectory = \"/x\"\n") ==
        "source[0] needs exactly one of url and directory");
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\nurl = \"ftp://a/b.crl\"\n").find("source[0].url") !=
        std::string::npos);
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\nurl = \"file:///etc/passwd\"\n").find("https://") !=
        std::string::npos);
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\nurl = \"http://\"\n").find("source[0].url") !=
        std::string::npos);
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\nurl = \"http://a/b c.crl\"\n").find("space") !=
        std::string::npos);
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\ndirectory = \"\"\n") ==
        "source[0].directory must not be empty");
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\nurl = \"http://a/b.crl\"\nmirror = true\n") ==
        "unknown key source[0].mirror");
  CHECK(message("[[source]]\nissuer = \"auth-2023\"\nurl = \"http://a/b.crl\"\n"
                "[[source]]\nissuer = \"signing-2023\"\nurl = \"http://a/b.crl\"\n") ==
        "source[1] repeats source[0] (http://a/b.crl)");
  auto not_a_table = ParseConfig("source = \"http://a/b.crl\"\n", "/");
  REQUIRE_FALSE(not_a_table.has_value());
  CHECK(not_a_table.error().message == "source must be an array of tables ([[source]])");
}

TEST_CASE("config: [sync] limits have defaults and ranges") {
  auto defaults = ParseConfig("", "/");
  REQUIRE(defaults.has_value());
  CHECK(defaults->sync.max_bytes == std::size_t{2} << 30);
  CHECK(defaults->sync.connect_timeout_seconds == 10);
  CHECK(defaults->sync.timeout_seconds == 600);
  CHECK(defaults->sources.empty());

  auto set = ParseConfig("[sync]\nmax_bytes = 1024\nconnect_timeout_seconds = 3\ntimeout_seconds = 60\n", "/");
  REQUIRE_MESSAGE(set.has_value(), set.error().message);
  CHECK(set->sync.max_bytes == 1024);
  CHECK(set->sync.connect_timeout_seconds == 3);
  CHECK(set->sync.timeout_seconds == 60);
  auto largest = ParseConfig("[sync]\nmax_bytes = 68719476736\n", "/");
  REQUIRE(largest.has_value());
  CHECK(largest->sync.max_bytes == std::size_t{64} << 30);

  auto message = [](std::string_view text) {
    auto config = ParseConfig(text, "/");
    REQUIRE_FALSE(config.has_value());
    return config.error().message;
  };
  CHECK(message("[sync]\nmax_bytes = 1023\n").find("sync.max_bytes = 1023 is outside") != std::string::npos);
  CHECK(message("[sync]\nmax_bytes = 68719476737\n").find("sync.max_bytes") != std::string::npos);
  CHECK(message("[sync]\nconnect_timeout_seconds = 0\n").find("sync.connect_timeout_seconds") !=
        std::string::npos);
  CHECK(message("[sync]\ntimeout_seconds = -1\n").find("sync.timeout_seconds") != std::string::npos);
  CHECK(message("[sync]\nmax_bytes = \"2G\"\n").find("must be an integer") != std::string::npos);
  CHECK(message("[sync]\nretries = 3\n") == "unknown key sync.retries");
}

TEST_CASE("config: [import] shrink limit and archive: defaults, off, relative paths") {
  auto defaults = ParseConfig("[store]\npath = \"/var/lib/ocsp/store\"\n", "/etc/ocsp-responder");
  REQUIRE(defaults.has_value());
  CHECK(defaults->import_max_shrink_fraction == doctest::Approx(0.10));
  CHECK(defaults->import_archive_directory == "/var/lib/ocsp/store/archive");
  CHECK(defaults->import_archive_retention_days == 90);

  auto empty_means_default = ParseConfig("[import]\narchive_directory = \"\"\n", "/");
  REQUIRE(empty_means_default.has_value());
  CHECK(empty_means_default->import_archive_directory == "/var/lib/ocsp-responder/store/archive");

  auto set = ParseConfig(
      "[import]\nmax_shrink_fraction = 0.5\narchive_directory = \"archive\"\narchive_retention_days = 0\n",
      "/etc/ocsp-responder");
  REQUIRE_MESSAGE(set.has_value(), set.error().message);
  CHECK(set->import_max_shrink_fraction == doctest::Approx(0.5));
  CHECK(set->import_archive_directory == "/etc/ocsp-responder/archive");
  CHECK(set->import_archive_retention_days == 0);

  auto off = ParseConfig("[import]\narchive_directory = \"off\"\nmax_shrink_fraction = 1\n", "/");
  REQUIRE(off.has_value());
  CHECK(off->import_archive_directory.empty());
  CHECK(off->import_max_shrink_fraction == doctest::Approx(1.0));

  auto message = [](std::string_view text) {
    auto config = ParseConfig(text, "/");
    REQUIRE_FALSE(config.has_value());
    return config.error().message;
  };
  CHECK(message("[import]\nmax_shrink_fraction = 1.5\n").find("import.max_shrink_fraction") != std::string::npos);
  CHECK(message("[import]\nmax_shrink_fraction = -0.1\n").find("outside 0..1") != std::string::npos);
  CHECK(message("[import]\nmax_shrink_fraction = nan\n").find("outside 0..1") != std::string::npos);
  CHECK(message("[import]\nmax_shrink_fraction = \"10%\"\n").find("must be a number") != std::string::npos);
  CHECK(message("[import]\narchive_retention_days = 36501\n").find("import.archive_retention_days") !=
        std::string::npos);
  CHECK(message("[import]\narchive_directory = 1\n").find("must be a string") != std::string::npos);
  CHECK(message("[import]\narchive = \"off\"\n") == "unknown key import.archive");
}

TEST_CASE("config: metrics.enabled, log.level and log.access_log, with their defaults and mistakes") {
  auto defaults = ParseConfig("", "/etc/ocsp");
  REQUIRE(defaults.has_value());
  CHECK(defaults->metrics_enabled);
  CHECK(defaults->log_level == "info");
  CHECK(defaults->access_log.empty());

  auto set = ParseConfig("[metrics]\nenabled = false\n[log]\nlevel = \"warning\"\naccess_log = \"log/access.log\"\n",
                         "/etc/ocsp");
  REQUIRE(set.has_value());
  CHECK_FALSE(set->metrics_enabled);
  CHECK(set->log_level == "warning");
  CHECK(set->access_log == "/etc/ocsp/log/access.log");

  auto bad_level = ParseConfig("[log]\nlevel = \"verbose\"\n", "/");
  REQUIRE_FALSE(bad_level.has_value());
  CHECK(bad_level.error().message.find("log.level") != std::string::npos);
  auto bad_enabled = ParseConfig("[metrics]\nenabled = \"no\"\n", "/");
  REQUIRE_FALSE(bad_enabled.has_value());
  CHECK(bad_enabled.error().message.find("metrics.enabled") != std::string::npos);
  CHECK_FALSE(ParseConfig("[log]\nformat = \"json\"\n", "/").has_value());
}

TEST_CASE("config: [[issuer.responder]] tables add responder certificates, PEM or PKCS#11, after the pair") {
  auto config = ParseConfig(R"(
[[issuer]]
name = "signing-2023"
certificate = "pki/ca.pem"
responder_certificate = "pki/responder-2026.pem"
responder_key = "pki/responder-2026.key"
[[issuer.responder]]
certificate = "pki/responder-2027.pem"
key = "/etc/ocsp-responder/keys/responder-2027.key"
signature = "rsa-pss"
[[issuer.responder]]
certificate = "/etc/ocsp-responder/pki/responder-hsm.pem"
key = "pkcs11:token=ocsp;object=responder-2027;type=private"
pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"
pin_file = "secret/pin"
[[issuer]]
name = "auth-2023"
certificate = "pki/auth.pem"
[[issuer.responder]]
certificate = "pki/auth-responder.pem"
key = "pki/auth-responder.key"
signature = "rsa-pkcs1"
)",
                            "/etc/ocsp-responder");
  REQUIRE_MESSAGE(config.has_value(), config.error().message);
  REQUIRE(config->issuers.size() == 2);
  const auto& signing = config->issuers[0].responders;
  REQUIRE(signing.size() == 3);
  CHECK(signing[0].certificate == "/etc/ocsp-responder/pki/responder-2026.pem");
  CHECK(signing[0].key == "/etc/ocsp-responder/pki/responder-2026.key");
  CHECK(signing[0].signature.empty());
  CHECK(signing[1].key == "/etc/ocsp-responder/keys/responder-2027.key");
  CHECK(signing[1].signature == "rsa-pss");
  CHECK(signing[1].pkcs11_module.empty());
  CHECK(signing[2].key == "pkcs11:token=ocsp;object=responder-2027;type=private");
  CHECK(signing[2].pkcs11_module == "/usr/lib/softhsm/libsofthsm2.so");
  CHECK(signing[2].pin_file == "/etc/ocsp-responder/secret/pin");
  const auto& auth = config->issuers[1].responders;
  REQUIRE(auth.size() == 1);
  CHECK(auth[0].certificate == "/etc/ocsp-responder/pki/auth-responder.pem");
  CHECK(auth[0].signature == "rsa-pkcs1");
}

TEST_CASE("config: responder certificates that are wrong are refused with the table named") {
  auto message = [](std::string_view tables) {
    auto config = ParseConfig("[[issuer]]\nname = \"ca\"\ncertificate = \"ca.pem\"\n" + std::string(tables), "/");
    REQUIRE_FALSE(config.has_value());
    return config.error().message;
  };
  CHECK(message("") == "issuer[0] needs a responder certificate: [[issuer.responder]] or responder_certificate");
  CHECK(message("responder_certificate = \"r.pem\"\n") ==
        "issuer[0].responder_certificate and responder_key go together");
  CHECK(message("[[issuer.responder]]\nkey = \"r.key\"\n") == "issuer[0].responder[0].certificate is required");
  CHECK(message("[[issuer.responder]]\ncertificate = \"r.pem\"\n") == "issuer[0].responder[0].key is required");
  CHECK(message("[[issuer.responder]]\ncertificate = \"r.pem\"\nkey = \"r.key\"\npin = \"1234\"\n") ==
        "unknown key issuer[0].responder[0].pin");
  CHECK(message("[[issuer.responder]]\ncertificate = \"r.pem\"\nkey = \"r.key\"\nsignature = \"pss\"\n") ==
        "issuer[0].responder[0].signature = \"pss\" is not \"rsa-pkcs1\" or \"rsa-pss\"");
  CHECK(message("[[issuer.responder]]\ncertificate = \"r.pem\"\nkey = \"r.key\"\npin_file = \"pin\"\n") ==
        "issuer[0].responder[0].pin_file applies to pkcs11: keys only");
  CHECK(message("[[issuer.responder]]\ncertificate = \"r.pem\"\nkey = \"pkcs11:object=r\"\npin_file = \"pin\"\n") ==
        "issuer[0].responder[0].pkcs11_module is required for a pkcs11: key");
  CHECK(message("[[issuer.responder]]\ncertificate = \"r.pem\"\nkey = \"pkcs11:object=r\"\n"
                "pkcs11_module = \"/m.so\"\n") == "issuer[0].responder[0].pin_file is required for a pkcs11: key");
  CHECK(message("[[issuer.responder]]\ncertificate = \"r.pem\"\nkey = \"pkcs11:object=r?pin-value=1234\"\n"
                "pkcs11_module = \"/m.so\"\npin_file = \"pin\"\n")
            .find("must not carry a PIN") != std::string::npos);
}

TEST_CASE("config: several listen addresses, a path prefix, limits, the registry and issuer environments") {
  auto config = ParseConfig(R"(
[responder]
listen = ["127.0.0.1:8080", "[::1]:8080"]
path_prefix = "/ocsp/"
header_timeout_seconds = 5
max_connections = 500
max_connections_per_address = 20
max_cache_age_seconds = 900
[access]
registry = "verifiers.toml"
over_rate_limit = "429"
[[issuer]]
name = "test-ca"
certificate = "ca.pem"
responder_certificate = "responder.pem"
responder_key = "responder.key"
environment = "test"
issued_serials = "issued.txt"
)",
                            "/etc/ocsp-responder");
  REQUIRE(config.has_value());
  REQUIRE(config->listen_addresses.size() == 2);
  CHECK(config->listen.ToString() == "127.0.0.1:8080");
  CHECK(config->listen_addresses[1].ToString() == "[::1]:8080");
  CHECK(config->path_prefix == "/ocsp");
  CHECK(config->header_timeout_seconds == 5);
  CHECK(config->max_connections == 500);
  CHECK(config->max_connections_per_address == 20);
  CHECK(config->max_cache_age_seconds == 900);
  CHECK(config->verifier_registry == "/etc/ocsp-responder/verifiers.toml");
  CHECK(config->over_rate_limit_http_429);
  CHECK(config->issuers[0].environment == "test");
  CHECK(config->issuers[0].issued_serials == "/etc/ocsp-responder/issued.txt");

  auto defaults = ParseConfig("", "/");
  REQUIRE(defaults.has_value());
  CHECK(defaults->path_prefix == "/");
  CHECK(defaults->listen_addresses.size() == 1);
  CHECK(defaults->verifier_registry.empty());
  CHECK_FALSE(defaults->over_rate_limit_http_429);

  CHECK_FALSE(ParseConfig("[responder]\npath_prefix = \"ocsp\"\n", "/").has_value());
  CHECK_FALSE(ParseConfig("[responder]\nlisten = []\n", "/").has_value());
  CHECK_FALSE(ParseConfig("[access]\nover_rate_limit = \"drop\"\n", "/").has_value());
  CHECK_FALSE(ParseConfig("[[issuer]]\nname = \"a\"\ncertificate = \"c\"\nresponder_certificate = \"r\"\n"
                          "responder_key = \"k\"\nenvironment = \"staging\"\n",
                          "/")
                  .has_value());
}
