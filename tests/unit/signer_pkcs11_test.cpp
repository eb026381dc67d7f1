// The signer with keys in a real PKCS#11 token: SoftHSM2, through OpenSSL's pkcs11 engine (libp11). The tokens
// live in a temporary directory (SOFTHSM2_CONF); each test imports its keys with softhsm2-util, removes the key
// files, and signs through the token. scripts/setup.sh installs softhsm2 and libengine-pkcs11-openssl; a
// machine without them fails these tests rather than skipping them.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "signer/signer.h"
#include "tests/support/test_pki.h"
#include "tests/support/signer_support.h"

using namespace ocsp;
using namespace ocsp::signer;
using ocsp::testing::GenerateKey;
using ocsp::testing::KeyType;
using ocsp::testing::MakeCertId;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;
using namespace ocsp::testing::signer_support;

namespace {

constexpr const char* kSoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "615243";

// The SoftHSM2 tokens of this test process, under a temporary directory. A PKCS#11 module reads its
// configuration once per process (and libp11 keeps the module's state), so every test in a process shares
// one token directory; keys get unique labels. "ocsp-test" holds the keys; "ocsp-pin" is never logged into
// with its right PIN, so a wrong PIN is really checked there (a token already logged in accepts any).
class SoftHsm {
 public:
  static const SoftHsm& Get() {
    static const SoftHsm instance;
    return instance;
  }

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
  [[nodiscard]] const std::filesystem::path& pin_file() const { return pin_file_; }

  void Run(const std::string& command) const {
    const auto log = dir() / "command.log";
    const int status = std::system((command + " >'" + log.string() + "' 2>&1").c_str());
    auto output = ReadFile(log);
    INFO("output: ", output ? std::string(output->begin(), output->end()) : std::string());
    REQUIRE_MESSAGE(status == 0, command);
  }

  // Moves the PEM key of `files` into `token` under a fresh label and points `files` at it: the key file is
  // deleted, so only the token can sign.
  SignerFiles MoveIntoToken(SignerFiles files, const std::string& token = "ocsp-test") const {
    static int next = 1;
    const int number = next++;
    char id[8];
    std::snprintf(id, sizeof id, "%04x", number);
    const std::string label = "key" + std::to_string(number);
    Run("softhsm2-util --import '" + files.key + "' --token " + token + " --label " + label + " --id " + id +
        " --pin " + kPin);
    std::filesystem::remove(files.key);
    files.key = "pkcs11:token=" + token + ";object=" + label + ";type=private";
    files.pkcs11_module = kSoftHsmModule;
    files.pin_file = pin_file_;
    return files;
  }

 private:
  SoftHsm() {
    REQUIRE_MESSAGE(std::filesystem::exists(kSoftHsmModule),
                    "SoftHSM2 is missing: run scripts/setup.sh (softhsm2, libengine-pkcs11-openssl)");
    std::filesystem::create_directories(dir() / "tokens");
    const auto conf = dir() / "softhsm2.conf";
    ocsp::testing::WriteFile(conf, "directories.tokendir = " + (dir() / "tokens").string() +
                                       "\nobjectstore.backend = file\nlog.level = ERROR\n");
    // Read by the module at C_Initialize, in this process and in softhsm2-util alike.
    REQUIRE(::setenv("SOFTHSM2_CONF", conf.c_str(), 1) == 0);
    for (const char* label : {"ocsp-test", "ocsp-pin"}) {
      Run(std::string("softhsm2-util --init-token --free --label ") + label + " --so-pin 12345678 --pin " + kPin);
    }
    ocsp::testing::WriteFile(pin_file_, std::string(kPin) + "\n");
    std::filesystem::permissions(pin_file_, std::filesystem::perms::owner_read);
  }

  TempDir dir_;
  std::filesystem::path pin_file_ = dir_.path() / "pin";
};

}  // namespace

TEST_CASE("signer (PKCS#11): RSA and ECDSA keys in SoftHSM2 sign responses that OpenSSL verifies") {
  const SoftHsm& hsm = SoftHsm::Get();
  TempDir dir;
  const TestCa ca = TestCa::Create();
  ocsp::testing::WriteFile(dir.path() / "ca.pem", ocsp::testing::ToPem(ca.certificate.get()));
  const UnixSeconds now = SystemClock().Now();
  auto rsa = GenerateKey(KeyType::kRsa2048);
  auto ec = GenerateKey(KeyType::kEcP256);
  const SignerFiles rsa_files = hsm.MoveIntoToken(WriteResponder(dir.path(), "rsa", ca, rsa.get(), {}));
  const SignerFiles ec_files = hsm.MoveIntoToken(WriteResponder(dir.path(), "ec", ca, ec.get(), {}));
  SignerFiles rsa_pss_files = rsa_files;
  rsa_pss_files.signature = "rsa-pss";
  CHECK_FALSE(std::filesystem::exists(dir.path() / "rsa-responder.key"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "ec-responder.key"));

  struct Case {
    const char* name;
    SignerFiles files;
    int algorithm;
  };
  for (const Case& c : {Case{"rsa-pkcs1", rsa_files, NID_sha256WithRSAEncryption},
                        Case{"rsa-pss", rsa_pss_files, NID_rsassaPss},
                        Case{"ecdsa-p256", ec_files, NID_ecdsa_with_SHA256}}) {
    const std::string name = c.name;
    CAPTURE(name);
    auto signer = Signer::Load(c.files, ca.certificate.get(), now);
    REQUIRE_MESSAGE(signer.has_value(), signer.error().message);
    auto cert_id = MakeCertId(ca.certificate.get(), Serial(0x1002), EVP_sha1());
    SingleAnswer answer{cert_id.get(), CertStatus::kRevoked, now - 60, now + 86400, now - 3600, 1, {}};
    auto der = signer->Sign({&answer, 1}, std::nullopt, now);
    REQUIRE_MESSAGE(der.has_value(), der.error().message);
    auto basic = Parse(*der);
    CHECK(VerifiesAgainst(basic.get(), ca));
    CHECK(OBJ_obj2nid(OCSP_resp_get0_tbs_sigalg(basic.get())->algorithm) == c.algorithm);

    const auto response_path = dir.path() / (name + ".der");
    ocsp::testing::WriteFile(response_path, ByteView(*der));
    const auto [exit_code, output] = RunOpenSslOcsp(response_path, dir.path() / "ca.pem", "0x1002");
    CHECK_MESSAGE(exit_code == 0, output);
    CHECK_MESSAGE(output.find("Response verify OK") != std::string::npos, output);
    CHECK_MESSAGE(output.find("0x1002: revoked") != std::string::npos, output);
  }
}

TEST_CASE("signer (PKCS#11): several threads sign with one token key at once") {
  const SoftHsm& hsm = SoftHsm::Get();
  TempDir dir;
  const TestCa ca = TestCa::Create();
  const UnixSeconds now = SystemClock().Now();
  for (const KeyType type : {KeyType::kEcP256, KeyType::kRsa2048}) {
    auto key = GenerateKey(type);
    auto files = hsm.MoveIntoToken(WriteResponder(dir.path(), type == KeyType::kEcP256 ? "ec" : "rsa", ca,
                                                  key.get(), {}));
    auto signer = Signer::Load(files, ca.certificate.get(), now);
    REQUIRE_MESSAGE(signer.has_value(), signer.error().message);
    CHECK(SignsConcurrently(*signer, ca, 4, 25));
  }
}

TEST_CASE("signer (PKCS#11): a token key and a file key roll over in one set, and outlive each other") {
  const SoftHsm& hsm = SoftHsm::Get();
  TempDir dir;
  const TestCa ca = TestCa::Create();
  const UnixSeconds now = SystemClock().Now();
  auto hsm_key = GenerateKey(KeyType::kEcP256);
  auto file_key = GenerateKey(KeyType::kEcP256);
  const std::vector<SignerFiles> files = {
      hsm.MoveIntoToken(WriteResponder(dir.path(), "hsm", ca, hsm_key.get(), {})),
      WriteResponder(dir.path(), "file", ca, file_key.get(), {now + 86400, now + 30 * 86400}),
  };
  auto set = SignerSet::Load(files, ca.certificate.get(), now);
  REQUIRE_MESSAGE(set.has_value(), set.error().message);
  auto cert_id = MakeCertId(ca.certificate.get(), Serial(5), EVP_sha1());
  SingleAnswer answer{cert_id.get(), CertStatus::kGood, now, now + 3600, 0, {}, {}};
  for (const UnixSeconds at : {now, now + 2 * 86400}) {
    const Signer* active = set->Active(at);
    REQUIRE(active != nullptr);
    CHECK(active->source().filename() == (at == now ? "hsm-responder.pem" : "file-responder.pem"));
    auto der = active->Sign({&answer, 1}, std::nullopt, at);
    REQUIRE(der.has_value());
    CHECK(VerifiesAgainst(Parse(*der).get(), ca, at));
  }
  // A second set from the same token shares the loaded module; loading it (a second login) leaves the first
  // one's key usable, and dropping the first leaves the second working.
  auto second = SignerSet::Load({files.data(), 1}, ca.certificate.get(), now);
  REQUIRE(second.has_value());
  auto first_again = set->Active(now)->Sign({&answer, 1}, std::nullopt, now);
  REQUIRE(first_again.has_value());
  CHECK(VerifiesAgainst(Parse(*first_again).get(), ca));
  set = Fail(ErrorCode::kInternal, "dropped");
  auto der = second->Active(now)->Sign({&answer, 1}, std::nullopt, now);
  REQUIRE(der.has_value());
  CHECK(VerifiesAgainst(Parse(*der).get(), ca));
}

TEST_CASE("signer (PKCS#11): a wrong PIN, a missing object or an exposed PIN file is refused, the PIN unsaid") {
  const SoftHsm& hsm = SoftHsm::Get();
  TempDir dir;
  const TestCa ca = TestCa::Create();
  const UnixSeconds now = SystemClock().Now();
  auto key = GenerateKey(KeyType::kEcP256);
  const SignerFiles files = hsm.MoveIntoToken(WriteResponder(dir.path(), "r", ca, key.get(), {}));
  auto refusal = [&](const SignerFiles& attempt) {
    auto signer = Signer::Load(attempt, ca.certificate.get(), now);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().message.find(kPin) == std::string::npos);
    CHECK(signer.error().message.find("99999999") == std::string::npos);
    return signer.error().message;
  };
  SUBCASE("wrong PIN") {
    auto other = GenerateKey(KeyType::kEcP256);
    SignerFiles wrong = hsm.MoveIntoToken(WriteResponder(dir.path(), "pin", ca, other.get(), {}), "ocsp-pin");
    wrong.pin_file = dir.path() / "wrong-pin";
    ocsp::testing::WriteFile(wrong.pin_file, "99999999\n");
    std::filesystem::permissions(wrong.pin_file, std::filesystem::perms::owner_read);
    CHECK(refusal(wrong).find("cannot load the PKCS#11 key pkcs11:token=ocsp-pin;object=") != std::string::npos);
  }
  SUBCASE("no such object") {
    SignerFiles missing = files;
    missing.key = "pkcs11:token=ocsp-test;object=absent;type=private";
    CHECK(refusal(missing).find("object=absent") != std::string::npos);
  }
  SUBCASE("PIN file readable by others") {
    SignerFiles exposed = files;
    exposed.pin_file = dir.path() / "exposed-pin";
    ocsp::testing::WriteFile(exposed.pin_file, std::string(kPin) + "\n");
    std::filesystem::permissions(exposed.pin_file, std::filesystem::perms::owner_read |
                                                       std::filesystem::perms::others_read);
    CHECK(refusal(exposed).find("readable or writable by others") != std::string::npos);
  }
  SUBCASE("PIN in the URI") {
    SignerFiles in_uri = files;
    in_uri.key += "?pin-value=" + std::string(kPin);
    auto signer = Signer::Load(in_uri, ca.certificate.get(), now);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().message.find("must not carry a PIN") != std::string::npos);
  }
  SUBCASE("a module that is not there") {
    SignerFiles no_module = files;
    no_module.pkcs11_module = dir.path() / "missing.so";
    CHECK(refusal(no_module).find("missing.so") != std::string::npos);
  }
  SUBCASE("a second module beside the first") {
    REQUIRE(Signer::Load(files, ca.certificate.get(), now).has_value());
    SignerFiles second = files;
    second.pkcs11_module = dir.path() / "other-module.so";
    ocsp::testing::WriteFile(second.pkcs11_module, "not really a module");
    CHECK(refusal(second).find("one pkcs11_module for every key") != std::string::npos);
  }
  SUBCASE("the token key of another certificate") {
    auto other = GenerateKey(KeyType::kEcP256);
    SignerFiles mismatched = WriteResponder(dir.path(), "other", ca, other.get(), {});
    mismatched.key = files.key;
    mismatched.pkcs11_module = files.pkcs11_module;
    mismatched.pin_file = files.pin_file;
    const std::string message = refusal(mismatched);
    CHECK_MESSAGE(message.find("does not belong") != std::string::npos, message);
  }
}
