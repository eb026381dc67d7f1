#include <doctest/doctest.h>

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
  CHECK(config->issuers[0].responder_certificate == "/etc/ocsp/responder.pem");
}

TEST_CASE("config: defaults hold when sections are absent, and an empty metrics address turns metrics off") {
  auto config = ParseConfig("[metrics]\nlisten = \"\"\n", "/");
  REQUIRE(config.has_value());
  CHECK(config->listen.ToString() == "127.0.0.1:8080");
  CHECK_FALSE(config->metrics_listen.has_value());
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
