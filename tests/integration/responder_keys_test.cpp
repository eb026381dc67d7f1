// End to end with [[issuer.responder]] tables: ocsp-responder signs with a key held in a SoftHSM2 token (beside a
// file key waiting for its rollover), and openssl ocsp verifies the answer; --check-config names an expired
// responder certificate.
#include <doctest/doctest.h>

#include <cstdlib>
#include <regex>

#include "tests/integration/process.h"
#include "tests/support/signer_support.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::testing;
using ocsp::testing::signer_support::WriteResponder;

namespace {

constexpr const char* kSoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "246810";

}  // namespace

TEST_CASE("integration: the responder signs with a SoftHSM2 key from [[issuer.responder]], and openssl verifies it") {
  REQUIRE_MESSAGE(std::filesystem::exists(kSoftHsmModule), "SoftHSM2 is missing: run scripts/setup.sh");
  TempDir dir;
  const auto path = [&](const std::string& name) { return dir.path() / name; };
  const TestCa ca = TestCa::Create();
  WriteFile(path("ca.pem"), ToPem(ca.certificate.get()));
  const UnixSeconds now = SystemClock().Now();

  // The token, in this test's directory; the responder inherits SOFTHSM2_CONF.
  std::filesystem::create_directories(path("tokens"));
  WriteFile(path("softhsm2.conf"), "directories.tokendir = " + path("tokens").string() +
                                       "\nobjectstore.backend = file\nlog.level = ERROR\n");
  REQUIRE(::setenv("SOFTHSM2_CONF", path("softhsm2.conf").c_str(), 1) == 0);
  auto hsm_key = GenerateKey(KeyType::kEcP256);
  const auto hsm = WriteResponder(dir.path(), "hsm", ca, hsm_key.get(), {});
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"softhsm2-util", "--init-token", "--free", "--label", "ocsp", "--so-pin", "12345678",
                                 "--pin", kPin},
        std::vector<std::string>{"softhsm2-util", "--import", hsm.key, "--token", "ocsp", "--label", "responder",
                                 "--id", "01", "--pin", kPin}}) {
    CommandResult result = Run(command);
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
  }
  std::filesystem::remove(hsm.key);
  WriteFile(path("pin"), std::string(kPin) + "\n");
  std::filesystem::permissions(path("pin"), std::filesystem::perms::owner_read);

  // The next certificate (a file key, RSA) is already configured and waits for its notBefore.
  auto next_key = GenerateKey(KeyType::kRsa2048);
  const auto next = WriteResponder(dir.path(), "next", ca, next_key.get(), {now + 86400, now + 60 * 86400});

  const std::string config = std::string(R"(
[responder]
listen = "127.0.0.1:0"
[store]
path = "store"
map_size_mib = 64
[metrics]
listen = ""
[[issuer]]
name = "test-signing-ca"
certificate = "ca.pem"
[[issuer.responder]]
certificate = "hsm-responder.pem"
key = "pkcs11:token=ocsp;object=responder;type=private"
pkcs11_module = ")") + kSoftHsmModule + R"("
pin_file = "pin"
[[issuer.responder]]
certificate = "next-responder.pem"
key = "next-responder.key"
signature = "rsa-pss"
)";
  WriteFile(path("ocsp-responder.toml"), config);

  CommandResult check =
      Run({OCSP_RESPONDER_BINARY, "--config", path("ocsp-responder.toml").string(), "--check-config"});
  INFO(check.output);
  REQUIRE(check.exit_code == 0);

  CrlOptions crl;
  crl.number = 1;
  crl.this_update = now - 600;
  crl.next_update = now + 86400;
  crl.revoked = {{Serial(0x1002), now - 7200, 3, std::nullopt}};
  WriteFile(path("crl.der"), ToDer(ca.Crl(crl).get()));
  CommandResult import = Run({OCSP_CTL_BINARY, "--config", path("ocsp-responder.toml").string(), "import",
                              "--issuer", path("ca.pem").string(), path("crl.der").string()});
  INFO(import.output);
  REQUIRE(import.exit_code == 0);

  Background responder({OCSP_RESPONDER_BINARY, "--config", path("ocsp-responder.toml").string()},
                       path("responder.log"));
  // Generous: the token login and the load-time test signature share two cores with the rest of the suite.
  const std::string log = responder.WaitForLog("event=listening", std::chrono::seconds(90));
  std::smatch match;
  REQUIRE(std::regex_search(log, match, std::regex("event=listening address=127\\.0\\.0\\.1:(\\d+)")));
  CommandResult query = Run({"openssl", "ocsp", "-issuer", path("ca.pem").string(), "-serial", "0x1002", "-url",
                             "http://127.0.0.1:" + match[1].str() + "/", "-CAfile", path("ca.pem").string(),
                             "-resp_text"});
  const auto responder_log = ReadFile(path("responder.log"));
  REQUIRE(responder_log.has_value());
  const std::string responder_text(responder_log->begin(), responder_log->end());
  INFO(query.output);
  INFO("responder log: ", responder_text);
  CHECK(query.exit_code == 0);
  CHECK(query.output.find("Response verify OK") != std::string::npos);
  CHECK(query.output.find("0x1002: revoked") != std::string::npos);
  // Signed by the token's certificate (the active one), which travels in the response.
  CHECK(query.output.find("Subject: C=JP, O=JPKI-TEST, CN=OCSP Responder hsm") != std::string::npos);
  CHECK(query.output.find("ecdsa-with-SHA256") != std::string::npos);
  CHECK(query.output.find(kPin) == std::string::npos);
  CHECK(responder_text.find(kPin) == std::string::npos);
}

TEST_CASE("integration: --check-config names an expired responder certificate") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  WriteFile(dir.path() / "ca.pem", ToPem(ca.certificate.get()));
  const UnixSeconds now = SystemClock().Now();
  auto current_key = GenerateKey(KeyType::kEcP256);
  auto old_key = GenerateKey(KeyType::kEcP256);
  WriteResponder(dir.path(), "current", ca, current_key.get(), {});
  WriteResponder(dir.path(), "old", ca, old_key.get(), {now - 90 * 86400, now - 86400});
  WriteFile(dir.path() / "ocsp-responder.toml", std::string(R"(
[store]
path = "store"
[[issuer]]
name = "test-signing-ca"
certificate = "ca.pem"
responder_certificate = "current-responder.pem"
responder_key = "current-responder.key"
[[issuer.responder]]
certificate = "old-responder.pem"
key = "old-responder.key"
)"));
  CommandResult check =
      Run({OCSP_RESPONDER_BINARY, "--config", (dir.path() / "ocsp-responder.toml").string(), "--check-config"});
  INFO(check.output);
  CHECK(check.exit_code == 2);
  CHECK(check.output.find("old-responder.pem expired on") != std::string::npos);
  CHECK(check.output.find("issuer test-signing-ca") != std::string::npos);
}
