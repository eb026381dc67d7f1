#include <doctest/doctest.h>

#include <filesystem>

#include "signer/signer.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::signer;
using ocsp::testing::MakeCertId;
using ocsp::testing::Serial;
using ocsp::testing::TempDir;
using ocsp::testing::TestCa;

namespace {

UniquePtr<OCSP_BASICRESP> Parse(const Bytes& der) {
  const unsigned char* cursor = der.data();
  UniquePtr<OCSP_RESPONSE> response(d2i_OCSP_RESPONSE(nullptr, &cursor, static_cast<long>(der.size())));
  REQUIRE(response);
  REQUIRE(OCSP_response_status(response.get()) == OCSP_RESPONSE_STATUS_SUCCESSFUL);
  return UniquePtr<OCSP_BASICRESP>(OCSP_response_get1_basic(response.get()));
}

// Verifies the way a client does: signature by a delegated responder whose certificate chains to the CA.
bool VerifiesAgainst(OCSP_BASICRESP* basic, const TestCa& ca) {
  X509_STORE* trust = X509_STORE_new();
  X509_STORE_add_cert(trust, ca.certificate.get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  const int ok = OCSP_basic_verify(basic, untrusted, trust, 0);
  sk_X509_free(untrusted);
  X509_STORE_free(trust);
  return ok == 1;
}

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

}  // namespace

TEST_CASE("signer: a good answer is signed, verifiable, and keeps the request's SHA-256 CertID") {
  Loaded fixture;
  Signer signer = fixture.Load();
  auto cert_id = MakeCertId(fixture.ca.certificate.get(), Serial(0x1001), EVP_sha256());
  SingleAnswer answer{cert_id.get(), CertStatus::kGood, 1'800'000'000, 1'800'086'400, 0, {}, {}};
  auto der = signer.Sign({&answer, 1}, std::nullopt, 1'800'000'100);
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
  CHECK(*ToUnixSeconds(OCSP_resp_get0_produced_at(basic.get())) == 1'800'000'100);

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
  auto basic = Parse(*signer.Sign({&answer, 1}, std::nullopt, 1'800'000'100));
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
  auto basic = Parse(*signer.Sign({&answer, 1}, ByteView(nonce_value), 1'800'000'100));
  const int index = OCSP_BASICRESP_get_ext_by_NID(basic.get(), NID_id_pkix_OCSP_Nonce, -1);
  REQUIRE(index >= 0);
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(OCSP_BASICRESP_get_ext(basic.get(), index));
  CHECK(Bytes(data->data, data->data + data->length) == nonce_value);
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
    CHECK(signer.error().message.find("not valid now") != std::string::npos);
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
