#include <doctest/doctest.h>

#include <openssl/pem.h>

#include <filesystem>
#include <functional>

#include "signer/signer.h"
#include "tests/support/test_pki.h"
#include "tests/support/signer_support.h"

using namespace ocsp;
using namespace ocsp::signer;
using ocsp::testing::CertificateOptions;
using ocsp::testing::GenerateKey;
using ocsp::testing::KeyType;
using ocsp::testing::MakeCertId;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;
using namespace ocsp::testing::signer_support;

namespace {

struct Loaded {
  TempDir dir;
  TestCa ca = TestCa::Create();
  Signer Load() {
    ca.Write(dir.path());
    auto signer = Signer::Load({dir.path() / "responder.pem", dir.path() / "responder.key"}, ca.certificate.get(),
                               SystemClock().Now());
    REQUIRE(signer.has_value());
    return std::move(*signer);
  }
};

// What OpenSSL's own OCSP encoder makes of the same inputs: the yardstick for our hand-written DER.
Bytes ReferenceSign(const X509* certificate, EVP_PKEY* key, std::span<const SingleAnswer> answers,
                    std::optional<ByteView> nonce, UnixSeconds produced_at) {
  UniquePtr<OCSP_BASICRESP> basic(OCSP_BASICRESP_new());
  for (const SingleAnswer& answer : answers) {
    auto this_update = ToGeneralizedTime(answer.this_update);
    UniquePtr<ASN1_GENERALIZEDTIME> next_update, revoked_at;
    if (answer.next_update) next_update = ToGeneralizedTime(*answer.next_update);
    int status = V_OCSP_CERTSTATUS_UNKNOWN;
    if (answer.status == CertStatus::kGood) status = V_OCSP_CERTSTATUS_GOOD;
    if (answer.status == CertStatus::kRevoked) {
      status = V_OCSP_CERTSTATUS_REVOKED;
      revoked_at = ToGeneralizedTime(answer.revocation_time);
    }
    OCSP_SINGLERESP* single =
        OCSP_basic_add1_status(basic.get(), const_cast<OCSP_CERTID*>(answer.cert_id), status,
                               answer.reason.value_or(-1), revoked_at.get(), this_update.get(), next_update.get());
    REQUIRE(single != nullptr);
    if (answer.invalidity_date) {
      auto invalidity = ToGeneralizedTime(*answer.invalidity_date);
      REQUIRE(OCSP_SINGLERESP_add1_ext_i2d(single, NID_invalidity_date, invalidity.get(), 0, 0) == 1);
    }
  }
  if (nonce) {
    UniquePtr<ASN1_OCTET_STRING> value(ASN1_OCTET_STRING_new());
    ASN1_OCTET_STRING_set(value.get(), nonce->data(), static_cast<int>(nonce->size()));
    UniquePtr<X509_EXTENSION> extension(X509_EXTENSION_create_by_NID(nullptr, NID_id_pkix_OCSP_Nonce, 0, value.get()));
    REQUIRE(OCSP_BASICRESP_add_ext(basic.get(), extension.get(), -1) == 1);
  }
  UniquePtr<EVP_MD_CTX> context(EVP_MD_CTX_new());
  REQUIRE(EVP_DigestSignInit(context.get(), nullptr, nullptr, nullptr, key) == 1);
  auto* produced = const_cast<ASN1_GENERALIZEDTIME*>(OCSP_resp_get0_produced_at(basic.get()));
  ASN1_GENERALIZEDTIME_set(produced, static_cast<time_t>(produced_at));
  REQUIRE(OCSP_basic_sign_ctx(basic.get(), const_cast<X509*>(certificate), context.get(), nullptr,
                              OCSP_RESPID_KEY | OCSP_NOTIME) == 1);
  UniquePtr<OCSP_RESPONSE> response(OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  Bytes out(static_cast<std::size_t>(i2d_OCSP_RESPONSE(response.get(), nullptr)));
  unsigned char* cursor = out.data();
  i2d_OCSP_RESPONSE(response.get(), &cursor);
  return out;
}

}  // namespace

TEST_CASE("signer: a good answer is signed, verifiable, and keeps the request's SHA-256 CertID") {
  Loaded fixture;
  Signer signer = fixture.Load();
  auto cert_id = MakeCertId(fixture.ca.certificate.get(), Serial(0x1001), EVP_sha256());
  SingleAnswer answer{cert_id.get(), CertStatus::kGood, 1'800'000'000, 1'800'086'400, 0, {}, {}};
  const UnixSeconds now = SystemClock().Now();
  auto der = signer.Sign({&answer, 1}, std::nullopt, now);
  REQUIRE(der.has_value());
  auto basic = Parse(*der);
  CHECK(VerifiesAgainst(basic.get(), fixture.ca));

  int status = -1, reason = -1;
  ASN1_GENERALIZEDTIME *revoked_at = nullptr, *this_update = nullptr, *next_update = nullptr;
  // The lookup uses the same CertID, so it only matches if the response kept SHA-256.
  REQUIRE(OCSP_resp_find_status(basic.get(), cert_id.get(), &status, &reason, &revoked_at, &this_update,
                                &next_update) == 1);
  CHECK(status == V_OCSP_CERTSTATUS_GOOD);
  CHECK(*ToUnixSeconds(this_update) == 1'800'000'000);
  CHECK(*ToUnixSeconds(next_update) == 1'800'086'400);
  CHECK(*ToUnixSeconds(OCSP_resp_get0_produced_at(basic.get())) == now);

  // responderID by key hash.
  const ASN1_OCTET_STRING* key_id = nullptr;
  const X509_NAME* name = nullptr;
  REQUIRE(OCSP_resp_get0_id(basic.get(), &key_id, &name) == 1);
  CHECK(key_id != nullptr);
  CHECK(name == nullptr);
}

TEST_CASE("signer: a revoked answer carries time, reason and invalidity date") {
  Loaded fixture;
  Signer signer = fixture.Load();
  auto cert_id = MakeCertId(fixture.ca.certificate.get(), Serial(0x1002), EVP_sha1());
  SingleAnswer answer{cert_id.get(), CertStatus::kRevoked, 1'800'000'000, 1'800'086'400, 1'799'000'000, 1,
                      1'798'000'000};
  auto basic = Parse(*signer.Sign({&answer, 1}, std::nullopt, SystemClock().Now()));
  int status = -1, reason = -1;
  ASN1_GENERALIZEDTIME *revoked_at = nullptr, *this_update = nullptr, *next_update = nullptr;
  REQUIRE(OCSP_resp_find_status(basic.get(), cert_id.get(), &status, &reason, &revoked_at, &this_update,
                                &next_update) == 1);
  CHECK(status == V_OCSP_CERTSTATUS_REVOKED);
  CHECK(reason == 1);
  CHECK(*ToUnixSeconds(revoked_at) == 1'799'000'000);
  OCSP_SINGLERESP* single = OCSP_resp_get0(basic.get(), 0);
  UniquePtr<ASN1_GENERALIZEDTIME> invalidity(static_cast<ASN1_GENERALIZEDTIME*>(
      OCSP_SINGLERESP_get1_ext_d2i(single, NID_invalidity_date, nullptr, nullptr)));
  REQUIRE(invalidity);
  CHECK(*ToUnixSeconds(invalidity.get()) == 1'798'000'000);
}

TEST_CASE("signer: the request's nonce is echoed verbatim") {
  Loaded fixture;
  Signer signer = fixture.Load();
  auto cert_id = MakeCertId(fixture.ca.certificate.get(), Serial(1), EVP_sha1());
  SingleAnswer answer{cert_id.get(), CertStatus::kUnknown, 1'800'000'000, std::nullopt, 0, {}, {}};
  const Bytes nonce_value{0x04, 0x04, 0xde, 0xad, 0xbe, 0xef};  // OCTET STRING of 4 octets
  auto basic = Parse(*signer.Sign({&answer, 1}, ByteView(nonce_value), SystemClock().Now()));
  const int index = OCSP_BASICRESP_get_ext_by_NID(basic.get(), NID_id_pkix_OCSP_Nonce, -1);
  REQUIRE(index >= 0);
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(OCSP_BASICRESP_get_ext(basic.get(), index));
  CHECK(Bytes(data->data, data->data + data->length) == nonce_value);
}

TEST_CASE("signer: the hand-encoded response is byte for byte what OpenSSL's OCSP encoder writes") {
  // Ed25519 signatures are deterministic, so the whole DER can be compared, signature included.
  TempDir dir;
  const TestCa ca = TestCa::Create();
  auto key = GenerateKey(KeyType::kEd25519);
  const UnixSeconds now = SystemClock().Now();
  const auto files = WriteResponder(dir.path(), "ed", ca, key.get(), {});
  auto signer = Signer::Load(files, ca.certificate.get(), now);
  REQUIRE(signer.has_value());

  auto good = MakeCertId(ca.certificate.get(), Serial(0x1001), EVP_sha1());
  auto revoked = MakeCertId(ca.certificate.get(), Serial(0x1002), EVP_sha256());
  auto bare = MakeCertId(ca.certificate.get(), Serial(0x1003), EVP_sha512());
  auto unknown = MakeCertId(ca.certificate.get(), Bytes(20, 0x7f), EVP_sha384());
  const SingleAnswer answers[] = {
      {good.get(), CertStatus::kGood, now - 600, now + 86400, 0, {}, {}},
      {revoked.get(), CertStatus::kRevoked, now - 600, now + 86400, now - 7200, 6, now - 90000},
      {bare.get(), CertStatus::kRevoked, now - 600, now + 86400, now - 7200, {}, {}},
      {unknown.get(), CertStatus::kUnknown, now, std::nullopt, 0, {}, {}},
  };
  const Bytes nonce(130, 0x42);  // long enough for a two-octet length
  for (std::size_t count = 1; count <= std::size(answers); ++count) {
    for (const bool with_nonce : {false, true}) {
      std::optional<ByteView> nonce_view;
      if (with_nonce) nonce_view = ByteView(nonce);
      auto ours = signer->Sign({answers, count}, nonce_view, now);
      REQUIRE(ours.has_value());
      CHECK(*ours == ReferenceSign(signer->certificate(), key.get(), {answers, count}, nonce_view, now));
    }
  }
}

TEST_CASE("signer: a CertID given as DER signs the same response as the parsed CertID") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  auto key = GenerateKey(KeyType::kEd25519);  // deterministic: equal inputs give equal bytes
  const UnixSeconds now = SystemClock().Now();
  auto signer = Signer::Load(WriteResponder(dir.path(), "ed", ca, key.get(), {}), ca.certificate.get(), now);
  REQUIRE(signer.has_value());
  auto cert_id = MakeCertId(ca.certificate.get(), Serial(0x1002), EVP_sha256());
  Bytes der(static_cast<std::size_t>(i2d_OCSP_CERTID(cert_id.get(), nullptr)));
  unsigned char* cursor = der.data();
  i2d_OCSP_CERTID(cert_id.get(), &cursor);

  SingleAnswer parsed{cert_id.get(), CertStatus::kRevoked, now - 60, now + 3600, now - 7200, 3, {}};
  SingleAnswer encoded = parsed;
  encoded.cert_id = nullptr;
  encoded.cert_id_der = der;
  auto from_parsed = signer->Sign({&parsed, 1}, std::nullopt, now);
  auto from_der = signer->Sign({&encoded, 1}, std::nullopt, now);
  REQUIRE(from_parsed.has_value());
  REQUIRE(from_der.has_value());
  CHECK(*from_parsed == *from_der);
}

TEST_CASE("signer: every supported key type signs a response that OpenSSL verifies") {
  struct Case {
    const char* name;
    std::function<UniquePtr<EVP_PKEY>()> make_key;
    std::string signature;
    int algorithm;  // the NID of the response's signatureAlgorithm
    const EVP_MD* digest;  // nullptr: EdDSA, or whatever PSS says
  };
  const std::vector<Case> cases = {
      {"rsa2048-pkcs1", [] { return GenerateKey(KeyType::kRsa2048); }, "", NID_sha256WithRSAEncryption, nullptr},
      {"rsa2048-explicit-pkcs1", [] { return GenerateKey(KeyType::kRsa2048); }, "rsa-pkcs1",
       NID_sha256WithRSAEncryption, nullptr},
      {"rsa2048-pss", [] { return GenerateKey(KeyType::kRsa2048); }, "rsa-pss", NID_rsassaPss, EVP_sha256()},
      {"rsassa-pss-key", [] { return GenerateRsaPssKey(); }, "", NID_rsassaPss, EVP_sha256()},
      {"ecdsa-p256", [] { return GenerateKey(KeyType::kEcP256); }, "", NID_ecdsa_with_SHA256, nullptr},
      {"ecdsa-p384", [] { return GenerateKey(KeyType::kEcP384); }, "", NID_ecdsa_with_SHA384, nullptr},
      {"ed25519", [] { return GenerateKey(KeyType::kEd25519); }, "", NID_ED25519, nullptr},
  };
  TempDir dir;
  const TestCa ca = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Test Signing CA", KeyType::kRsa2048);
  ocsp::testing::WriteFile(dir.path() / "ca.pem", ocsp::testing::ToPem(ca.certificate.get()));
  const UnixSeconds now = SystemClock().Now();
  for (const Case& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    auto key = c.make_key();
    auto files = WriteResponder(dir.path(), c.name, ca, key.get(), {});
    files.signature = c.signature;
    auto signer = Signer::Load(files, ca.certificate.get(), now);
    REQUIRE_MESSAGE(signer.has_value(), signer.error().message);
    auto cert_id = MakeCertId(ca.certificate.get(), Serial(0x1002), EVP_sha1());
    SingleAnswer answer{cert_id.get(), CertStatus::kRevoked, now - 60, now + 86400, now - 3600, 1, {}};
    auto der = signer->Sign({&answer, 1}, std::nullopt, now);
    REQUIRE(der.has_value());
    auto basic = Parse(*der);
    CHECK(VerifiesAgainst(basic.get(), ca));
    CHECK(OBJ_obj2nid(OCSP_resp_get0_tbs_sigalg(basic.get())->algorithm) == c.algorithm);
    if (c.algorithm == NID_rsassaPss) CHECK(PssDigestOf(basic.get()) == EVP_MD_get_type(c.digest));

    // And the command-line client agrees, independently of our test helpers.
    const auto response_path = dir.path() / (std::string(c.name) + ".der");
    ocsp::testing::WriteFile(response_path, ByteView(*der));
    const auto [exit_code, output] = RunOpenSslOcsp(response_path, dir.path() / "ca.pem", "0x1002");
    CHECK_MESSAGE(exit_code == 0, output);
    CHECK_MESSAGE(output.find("Response verify OK") != std::string::npos, output);
    CHECK_MESSAGE(output.find("0x1002: revoked") != std::string::npos, output);
  }
}

TEST_CASE("signer: a signature scheme that does not fit the key is refused at load") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  const UnixSeconds now = SystemClock().Now();
  SUBCASE("rsa-pss for an EC key") {
    auto key = GenerateKey(KeyType::kEcP256);
    auto files = WriteResponder(dir.path(), "ec", ca, key.get(), {});
    files.signature = "rsa-pss";
    auto signer = Signer::Load(files, ca.certificate.get(), now);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().message.find("needs an RSA key") != std::string::npos);
  }
  SUBCASE("rsa-pkcs1 for an RSASSA-PSS key") {
    auto key = GenerateRsaPssKey();
    auto files = WriteResponder(dir.path(), "pss", ca, key.get(), {});
    files.signature = "rsa-pkcs1";
    auto signer = Signer::Load(files, ca.certificate.get(), now);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().message.find("RSASSA-PSS") != std::string::npos);
  }
  SUBCASE("an unknown scheme") {
    auto key = GenerateKey(KeyType::kRsa2048);
    auto files = WriteResponder(dir.path(), "rsa", ca, key.get(), {});
    files.signature = "rsa-x931";
    CHECK_FALSE(Signer::Load(files, ca.certificate.get(), now).has_value());
  }
}

TEST_CASE("signer: a key file readable by others is refused") {
  Loaded fixture;
  fixture.ca.Write(fixture.dir.path());
  std::filesystem::permissions(fixture.dir.path() / "responder.key", std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  auto signer = Signer::Load({fixture.dir.path() / "responder.pem", fixture.dir.path() / "responder.key"},
                             fixture.ca.certificate.get(), SystemClock().Now());
  REQUIRE_FALSE(signer.has_value());
  CHECK(signer.error().message.find("readable or writable by others") != std::string::npos);
}

TEST_CASE("signer: responder certificates that cannot answer for the CA are refused at load") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  const TestCa other = TestCa::Create("/C=JP/O=JPKI-TEST/OU=Other CA");
  ca.Write(dir.path());
  other.Write(dir.path(), "other-");
  const UnixSeconds now = SystemClock().Now();
  SUBCASE("issued by another CA") {
    auto signer = Signer::Load({dir.path() / "other-responder.pem", dir.path() / "other-responder.key"},
                               ca.certificate.get(), now);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().message.find("not issued by") != std::string::npos);
    CHECK(signer.error().message.find("other-responder.pem") != std::string::npos);
  }
  SUBCASE("key of another certificate") {
    auto signer = Signer::Load({dir.path() / "responder.pem", dir.path() / "other-responder.key"},
                               ca.certificate.get(), now);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().message.find("does not belong") != std::string::npos);
  }
  SUBCASE("without id-kp-OCSPSigning") {
    // The CA's own certificate and key: a matching pair that lacks the OCSP signing usage.
    ocsp::testing::WriteFile(dir.path() / "ca.key", ocsp::testing::PrivateKeyPem(ca.key.get()));
    std::filesystem::permissions(dir.path() / "ca.key", std::filesystem::perms::owner_read);
    auto signer = Signer::Load({dir.path() / "ca.pem", dir.path() / "ca.key"}, ca.certificate.get(), now);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().message.find("OCSPSigning") != std::string::npos);
  }
  SUBCASE("expired") {
    auto signer = Signer::Load({dir.path() / "responder.pem", dir.path() / "responder.key"}, ca.certificate.get(),
                               now + 2 * 365 * 86400);
    REQUIRE_FALSE(signer.has_value());
    CHECK(signer.error().message.find("responder.pem expired on") != std::string::npos);
  }
}

TEST_CASE("signer: a signer is never used outside its certificate's validity") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  const UnixSeconds now = SystemClock().Now();
  auto key = GenerateKey(KeyType::kEcP256);
  // Valid from tomorrow for a week: the next rollover.
  const auto files = WriteResponder(dir.path(), "next", ca, key.get(), {now + 86400, now + 8 * 86400});
  auto signer = Signer::Load(files, ca.certificate.get(), now);
  REQUIRE_MESSAGE(signer.has_value(), "a certificate not yet valid is accepted at load");
  CHECK_FALSE(signer->ValidAt(now));
  auto cert_id = MakeCertId(ca.certificate.get(), Serial(7), EVP_sha1());
  SingleAnswer answer{cert_id.get(), CertStatus::kGood, now, now + 30 * 86400, 0, {}, {}};

  auto early = signer->Sign({&answer, 1}, std::nullopt, now);
  REQUIRE_FALSE(early.has_value());
  CHECK(early.error().code == ErrorCode::kRefused);
  auto late = signer->Sign({&answer, 1}, std::nullopt, now + 8 * 86400 + 1);
  REQUIRE_FALSE(late.has_value());
  CHECK(late.error().code == ErrorCode::kRefused);

  // Inside: nextUpdate (30 days away) is cut to the certificate's notAfter.
  auto inside = signer->Sign({&answer, 1}, std::nullopt, now + 2 * 86400);
  REQUIRE(inside.has_value());
  auto basic = Parse(*inside);
  int status = -1, reason = -1;
  ASN1_GENERALIZEDTIME *revoked_at = nullptr, *this_update = nullptr, *next_update = nullptr;
  REQUIRE(OCSP_resp_find_status(basic.get(), cert_id.get(), &status, &reason, &revoked_at, &this_update,
                                &next_update) == 1);
  CHECK(*ToUnixSeconds(next_update) == now + 8 * 86400);
  CHECK(*ToUnixSeconds(this_update) == now);
}

TEST_CASE("signer: id() is the first 8 octets of the certificate's SHA-256, and differs per certificate") {
  Loaded fixture;
  Signer signer = fixture.Load();
  const Bytes der = CertificateDer(signer.certificate());
  unsigned char digest[32];
  REQUIRE(EVP_Digest(der.data(), der.size(), digest, nullptr, EVP_sha256(), nullptr) == 1);
  std::uint64_t expected = 0;
  for (int i = 0; i < 8; ++i) expected = (expected << 8) | digest[i];
  CHECK(signer.id() == expected);

  // Loading the same files again gives the same id; another certificate another one.
  auto again = Signer::Load({fixture.dir.path() / "responder.pem", fixture.dir.path() / "responder.key"},
                            fixture.ca.certificate.get(), SystemClock().Now());
  REQUIRE(again.has_value());
  CHECK(again->id() == signer.id());
  auto key = GenerateKey(KeyType::kEcP256);
  auto other = Signer::Load(WriteResponder(fixture.dir.path(), "other", fixture.ca, key.get(), {}),
                            fixture.ca.certificate.get(), SystemClock().Now());
  REQUIRE(other.has_value());
  CHECK(other->id() != signer.id());
}

TEST_CASE("signer set: the active certificate is the valid one with the latest notBefore, and rolls over") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  const UnixSeconds now = SystemClock().Now();
  auto old_key = GenerateKey(KeyType::kEcP256);
  auto current_key = GenerateKey(KeyType::kEcP256);
  auto next_key = GenerateKey(KeyType::kRsa2048);
  const std::vector<SignerFiles> files = {
      WriteResponder(dir.path(), "old", ca, old_key.get(), {now - 30 * 86400, now + 10 * 86400}),
      WriteResponder(dir.path(), "next", ca, next_key.get(), {now + 5 * 86400, now + 60 * 86400}),
      WriteResponder(dir.path(), "current", ca, current_key.get(), {now - 86400, now + 20 * 86400}),
  };
  auto set = SignerSet::Load(files, ca.certificate.get(), now);
  REQUIRE_MESSAGE(set.has_value(), set.error().message);
  REQUIRE(set->signers().size() == 3);
  auto source_at = [&](UnixSeconds t) {
    const Signer* active = set->Active(t);
    return active == nullptr ? std::string("none") : active->source().filename().string();
  };
  CHECK(source_at(now - 20 * 86400) == "old-responder.pem");
  CHECK(source_at(now) == "current-responder.pem");
  CHECK(source_at(now + 5 * 86400) == "next-responder.pem");
  CHECK(source_at(now + 59 * 86400) == "next-responder.pem");
  CHECK(source_at(now + 61 * 86400) == "none");
  CHECK(source_at(now - 31 * 86400) == "none");

  // Stored responses find the certificate that signed them by id.
  for (const auto& signer : set->signers()) CHECK(set->Find(signer->id()) == signer.get());
  CHECK(set->Find(0) == nullptr);

  // The active signer signs a response that verifies.
  auto cert_id = MakeCertId(ca.certificate.get(), Serial(9), EVP_sha1());
  SingleAnswer answer{cert_id.get(), CertStatus::kGood, now, now + 86400, 0, {}, {}};
  const UnixSeconds later = now + 6 * 86400;
  auto der = set->Active(later)->Sign({&answer, 1}, std::nullopt, later);
  REQUIRE(der.has_value());
  CHECK(VerifiesAgainst(Parse(*der).get(), ca, later));
}

TEST_CASE("signer set: loading needs one certificate valid now, and refuses an expired one or a duplicate") {
  TempDir dir;
  const TestCa ca = TestCa::Create();
  const UnixSeconds now = SystemClock().Now();
  auto key = GenerateKey(KeyType::kEcP256);
  SUBCASE("only a future certificate") {
    const std::vector<SignerFiles> files = {
        WriteResponder(dir.path(), "future", ca, key.get(), {now + 86400, now + 9 * 86400})};
    auto set = SignerSet::Load(files, ca.certificate.get(), now);
    REQUIRE_FALSE(set.has_value());
    CHECK(set.error().message.find("no responder certificate is valid now") != std::string::npos);
    CHECK(set.error().message.find("future-responder.pem") != std::string::npos);
  }
  SUBCASE("an expired certificate beside a valid one") {
    auto other = GenerateKey(KeyType::kEcP256);
    const std::vector<SignerFiles> files = {
        WriteResponder(dir.path(), "valid", ca, key.get(), {}),
        WriteResponder(dir.path(), "expired", ca, other.get(), {now - 9 * 86400, now - 86400})};
    auto set = SignerSet::Load(files, ca.certificate.get(), now);
    REQUIRE_FALSE(set.has_value());
    CHECK(set.error().message.find("expired-responder.pem expired on") != std::string::npos);
  }
  SUBCASE("the same certificate twice") {
    const auto once = WriteResponder(dir.path(), "twice", ca, key.get(), {});
    const std::vector<SignerFiles> files = {once, once};
    auto set = SignerSet::Load(files, ca.certificate.get(), now);
    REQUIRE_FALSE(set.has_value());
    CHECK(set.error().message.find("same certificate") != std::string::npos);
  }
  SUBCASE("nothing configured") {
    CHECK_FALSE(SignerSet::Load({}, ca.certificate.get(), now).has_value());
  }
}

TEST_CASE("signer: several threads sign with one signer at once") {
  for (const KeyType type : {KeyType::kEcP256, KeyType::kRsa2048, KeyType::kEd25519}) {
    TempDir dir;
    const TestCa ca = TestCa::Create();
    auto key = GenerateKey(type);
    const UnixSeconds now = SystemClock().Now();
    auto signer = Signer::Load(WriteResponder(dir.path(), "r", ca, key.get(), {}), ca.certificate.get(), now);
    REQUIRE(signer.has_value());
    CHECK(SignsConcurrently(*signer, ca, 4, 25));
  }
}

TEST_CASE("signer: exception responses are unsigned and carry only their status") {
  for (auto status : {ResponseStatus::kMalformedRequest, ResponseStatus::kInternalError, ResponseStatus::kTryLater,
                      ResponseStatus::kUnauthorized}) {
    const Bytes der = ExceptionResponse(status);
    const unsigned char* cursor = der.data();
    UniquePtr<OCSP_RESPONSE> response(d2i_OCSP_RESPONSE(nullptr, &cursor, static_cast<long>(der.size())));
    REQUIRE(response);
    CHECK(OCSP_response_status(response.get()) == static_cast<int>(status));
    CHECK(OCSP_response_get1_basic(response.get()) == nullptr);
  }
}
