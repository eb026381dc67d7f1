#include <doctest/doctest.h>

#include <openssl/evp.h>

#include "responder/request.h"
#include "tests/support/test_pki.h"

using namespace ocsp;
using namespace ocsp::responder;
using ocsp::testing::MakeRequest;
using ocsp::testing::Serial;
using ocsp::testing::TestCa;

namespace {

std::string Base64(const Bytes& der) {
  std::string out(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), der.data(), static_cast<int>(der.size()));
  out.resize(static_cast<std::size_t>(length));
  return out;
}

std::string Replace(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// A request whose base64 contains '+', '/' and padding, so every tolerance is exercised.
Bytes AwkwardRequest(const TestCa& ca) {
  for (std::uint64_t serial = 1;; ++serial) {
    Bytes der = MakeRequest(ca.certificate.get(), {Serial(serial)}, EVP_sha1());
    const std::string text = Base64(der);
    if (text.find('+') != std::string::npos && text.find('/') != std::string::npos && text.back() == '=') return der;
  }
}

}  // namespace

TEST_CASE("request: a DER request decodes into its CertIDs, serials and nonce") {
  const TestCa ca = TestCa::Create();
  const Bytes nonce(16, 0x5a);
  auto decoded = DecodeRequest(MakeRequest(ca.certificate.get(), {Serial(0x1001), Serial(0x00ff)}, EVP_sha256(), nonce), {});
  REQUIRE(decoded.has_value());
  REQUIRE(decoded->certs.size() == 2);
  CHECK(decoded->certs[0].algorithm == store::HashAlgorithm::kSha256);
  CHECK(decoded->certs[0].serial == Serial(0x1001));
  CHECK(decoded->certs[1].serial == Bytes{0xff});
  CHECK(decoded->certs[0].key_hash.size() == 32);
  REQUIRE(decoded->nonce.has_value());
  CHECK(decoded->nonce->size() == 18);  // OCTET STRING header + 16 octets
}

TEST_CASE("request: what does not decode is malformed") {
  const TestCa ca = TestCa::Create();
  CHECK_FALSE(DecodeRequest(AsBytes("definitely not DER"), {}).has_value());
  CHECK_FALSE(DecodeRequest({}, {}).has_value());
  Bytes der = MakeRequest(ca.certificate.get(), {Serial(1)}, EVP_sha1());
  der.push_back(0);
  CHECK_FALSE(DecodeRequest(der, {}).has_value());
  der.resize(der.size() - 5);
  CHECK_FALSE(DecodeRequest(der, {}).has_value());
}

TEST_CASE("request: more CertIDs than allowed is malformed") {
  const TestCa ca = TestCa::Create();
  const Bytes der = MakeRequest(ca.certificate.get(), {Serial(1), Serial(2), Serial(3)}, EVP_sha1());
  CHECK(DecodeRequest(der, {.max_certids = 3}).has_value());
  auto refused = DecodeRequest(der, {.max_certids = 2});
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message.find("at most 2") != std::string::npos);
}

TEST_CASE("request: a nonce outside 1-128 octets is malformed") {
  const TestCa ca = TestCa::Create();
  CHECK(DecodeRequest(MakeRequest(ca.certificate.get(), {Serial(1)}, EVP_sha1(), Bytes(128, 1)), {}).has_value());
  CHECK(DecodeRequest(MakeRequest(ca.certificate.get(), {Serial(1)}, EVP_sha1(), Bytes(1, 1)), {}).has_value());
  CHECK_FALSE(DecodeRequest(MakeRequest(ca.certificate.get(), {Serial(1)}, EVP_sha1(), Bytes(129, 1)), {}).has_value());
}

TEST_CASE("request: GET paths decode however clients mangle them") {
  const TestCa ca = TestCa::Create();
  const Bytes der = AwkwardRequest(ca);
  const std::string plain = Base64(der);
  CHECK(*DecodeGetPath("/" + plain) == der);
  CHECK(*DecodeGetPath("//" + plain) == der);                              // doubled slash
  CHECK(*DecodeGetPath("/" + Replace(plain, "/", "%2F")) == der);         // escaped slash
  CHECK(*DecodeGetPath("/" + Replace(plain, "/", "%2f")) == der);         // lower-case escape
  CHECK(*DecodeGetPath("/" + Replace(plain, "+", "%2B")) == der);         // escaped plus
  CHECK(*DecodeGetPath("/" + Replace(plain, "+", " ")) == der);           // plus turned into a space
  CHECK(*DecodeGetPath("/" + Replace(plain, "=", "%3D")) == der);         // escaped padding
  CHECK(*DecodeGetPath("/" + Replace(plain, "=", "%3d")) == der);
  CHECK(*DecodeGetPath("/" + Replace(plain, "=", "")) == der);            // padding dropped
  CHECK(*DecodeGetPath("/" + Replace(Replace(plain, "+", "-"), "/", "_")) == der);  // URL-safe alphabet
  CHECK(*DecodeGetPath("/" + plain + "?cachebuster=1") == der);
}

TEST_CASE("request: GET paths that are not base64 are refused") {
  CHECK_FALSE(DecodeGetPath("/").has_value());
  CHECK_FALSE(DecodeGetPath("/MEIw*QD").has_value());
  CHECK_FALSE(DecodeGetPath("/MEIw%2").has_value());
  CHECK_FALSE(DecodeGetPath("/MEIw%zz").has_value());
  CHECK_FALSE(DecodeGetPath("/MA==MA").has_value());
  CHECK_FALSE(DecodeGetPath("/M").has_value());    // a lone character is not even one octet
  CHECK_FALSE(DecodeGetPath("/MEJ").has_value());  // non-zero leftover bits: not canonical
}

namespace {

// The two decoders agree on everything DecodeRequestQuick takes.
void CheckSameAsFull(const Bytes& der, const RequestLimits& limits = {}) {
  DecodedRequest quick;
  REQUIRE(DecodeRequestQuick(der, limits, quick));
  auto full = DecodeRequest(der, limits);
  REQUIRE(full.has_value());
  CHECK(quick.request == nullptr);
  REQUIRE(quick.certs.size() == full->certs.size());
  for (std::size_t i = 0; i < quick.certs.size(); ++i) {
    CHECK(quick.certs[i].cert_id == nullptr);
    CHECK(quick.certs[i].algorithm == full->certs[i].algorithm);
    CHECK(std::ranges::equal(quick.certs[i].name_hash, full->certs[i].name_hash));
    CHECK(std::ranges::equal(quick.certs[i].key_hash, full->certs[i].key_hash));
    CHECK(quick.certs[i].serial == full->certs[i].serial);
  }
  CHECK(quick.nonce == full->nonce);
}

}  // namespace

TEST_CASE("request: the hand decoder gives what OpenSSL's does for the common requests") {
  const TestCa ca = TestCa::Create();
  CheckSameAsFull(MakeRequest(ca.certificate.get(), {Serial(0x1001)}, EVP_sha1()));
  CheckSameAsFull(MakeRequest(ca.certificate.get(), {Serial(0x80)}, EVP_sha256()));  // a padded positive serial
  CheckSameAsFull(MakeRequest(ca.certificate.get(), {Serial(0)}, EVP_sha384()));
  CheckSameAsFull(MakeRequest(ca.certificate.get(), {Serial(0x1001), Serial(0xffff)}, EVP_sha512(), Bytes(16, 0x5a)));
  CheckSameAsFull(MakeRequest(ca.certificate.get(), {Serial(7)}, EVP_sha1(), Bytes(128, 1)));
  CheckSameAsFull(MakeRequest(ca.certificate.get(), {Serial(7)}, EVP_sha1(), Bytes(1, 1)));
  CheckSameAsFull(AwkwardRequest(ca));
  // The vector is reused from one request to the next.
  DecodedRequest reused;
  REQUIRE(DecodeRequestQuick(MakeRequest(ca.certificate.get(), {Serial(1), Serial(2)}, EVP_sha1()), {}, reused));
  REQUIRE(DecodeRequestQuick(MakeRequest(ca.certificate.get(), {Serial(3)}, EVP_sha1()), {}, reused));
  REQUIRE(reused.certs.size() == 1);
  CHECK(reused.certs[0].serial == Serial(3));
  CHECK_FALSE(reused.nonce.has_value());
}

TEST_CASE("request: the hand decoder leaves anything unusual to OpenSSL's decoder") {
  const TestCa ca = TestCa::Create();
  DecodedRequest out;
  const Bytes plain = MakeRequest(ca.certificate.get(), {Serial(0x1001)}, EVP_sha1());
  // Trailing bytes, a truncated request, garbage.
  Bytes trailing = plain;
  trailing.push_back(0);
  CHECK_FALSE(DecodeRequestQuick(trailing, {}, out));
  CHECK_FALSE(DecodeRequestQuick(ByteView(plain).first(plain.size() - 1), {}, out));
  CHECK_FALSE(DecodeRequestQuick(AsBytes("definitely not DER"), {}, out));
  // A non-minimal length: the same request with its outer length in long form.
  Bytes long_form = {0x30, 0x81};
  long_form.push_back(plain[1]);
  long_form.insert(long_form.end(), plain.begin() + 2, plain.end());
  REQUIRE(plain[1] < 0x80);
  CHECK_FALSE(DecodeRequestQuick(long_form, {}, out));
  // Over the CertID limit, and an unserved hash algorithm (the authority answers those).
  CHECK_FALSE(DecodeRequestQuick(MakeRequest(ca.certificate.get(), {Serial(1), Serial(2)}, EVP_sha1()), {1}, out));
  CHECK_FALSE(DecodeRequestQuick(MakeRequest(ca.certificate.get(), {Serial(1)}, EVP_sha224()), {}, out));
  // A nonce out of bounds is the full decoder's to refuse.
  CHECK_FALSE(DecodeRequestQuick(MakeRequest(ca.certificate.get(), {Serial(1)}, EVP_sha1(), Bytes(129, 1)), {}, out));
  // A version field (v1 spelled out) is legal but unusual: decoded by OpenSSL.
  {
    UniquePtr<OCSP_REQUEST> request(OCSP_REQUEST_new());
    UniquePtr<OCSP_CERTID> id(OCSP_cert_to_id(EVP_sha1(), nullptr, ca.certificate.get()));
    REQUIRE(request);
    REQUIRE(id);
    REQUIRE(OCSP_request_add0_id(request.get(), id.release()) != nullptr);
    REQUIRE(OCSP_request_set1_name(request.get(), X509_get_subject_name(ca.certificate.get())) == 1);  // a requestorName
    unsigned char* buffer = nullptr;
    const int length = i2d_OCSP_REQUEST(request.get(), &buffer);
    REQUIRE(length > 0);
    const Bytes der(buffer, buffer + length);
    OPENSSL_free(buffer);
    CHECK_FALSE(DecodeRequestQuick(der, {}, out));
    CHECK(DecodeRequest(der, {}).has_value());
  }
}
