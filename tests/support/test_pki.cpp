#include "tests/support/test_pki.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

namespace ocsp::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what + ": " + DrainOpenSslErrors());
}

UnixSeconds Now() { return SystemClock().Now(); }

UniquePtr<X509_NAME> ParseName(const std::string& text) {
  UniquePtr<X509_NAME> name(X509_NAME_new());
  std::size_t position = 1;  // skip leading '/'
  while (position < text.size()) {
    const auto next = text.find('/', position);
    const std::string part = text.substr(position, next == std::string::npos ? std::string::npos : next - position);
    const auto equals = part.find('=');
    Check(equals != std::string::npos, "name component");
    Check(X509_NAME_add_entry_by_txt(name.get(), part.substr(0, equals).c_str(), MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(part.c_str() + equals + 1), -1, -1,
                                     0) == 1,
          "name entry");
    if (next == std::string::npos) break;
    position = next + 1;
  }
  return name;
}

void AddExtension(X509* certificate, const X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, const_cast<X509*>(issuer), certificate, nullptr, nullptr, 0);
  UniquePtr<X509_EXTENSION> extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value));
  Check(extension != nullptr, "extension");
  Check(X509_add_ext(certificate, extension.get(), -1) == 1, "add extension");
}

const EVP_MD* DigestFor(EVP_PKEY* key) {
  const int type = EVP_PKEY_get_base_id(key);
  return (type == EVP_PKEY_ED25519 || type == EVP_PKEY_ED448) ? nullptr : EVP_sha256();
}

UniquePtr<ASN1_TIME> Time(UnixSeconds seconds) {
  return UniquePtr<ASN1_TIME>(ASN1_TIME_set(nullptr, static_cast<time_t>(seconds)));
}

void AddUnknownCriticalExtension(X509_EXTENSION** out) {
  UniquePtr<ASN1_OCTET_STRING> value(ASN1_OCTET_STRING_new());
  const unsigned char der[] = {0x05, 0x00};  // NULL
  ASN1_OCTET_STRING_set(value.get(), der, sizeof der);
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.4.1.99999.1", 1);
  *out = X509_EXTENSION_create_by_OBJ(nullptr, oid, 1, value.get());
  ASN1_OBJECT_free(oid);
  Check(*out != nullptr, "unknown extension");
}

}  // namespace

UniquePtr<EVP_PKEY> GenerateKey(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::kEcP256: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyType::kRsa2048: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)); break;
    case KeyType::kEd25519: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
  }
  Check(key != nullptr, "key generation");
  return UniquePtr<EVP_PKEY>(key);
}

UniquePtr<X509> MakeCertificate(EVP_PKEY* subject_key, const CertificateOptions& options, const X509* issuer,
                                EVP_PKEY* issuer_key) {
  UniquePtr<X509> certificate(X509_new());
  Check(X509_set_version(certificate.get(), 2) == 1, "version");
  ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), options.serial);
  UniquePtr<X509_NAME> subject = ParseName(options.subject);
  X509_set_subject_name(certificate.get(), subject.get());
  X509_set_issuer_name(certificate.get(), issuer ? X509_get_subject_name(issuer) : subject.get());
  const UnixSeconds now = Now();
  auto not_before = Time(options.not_before ? options.not_before : now - 3600);
  auto not_after = Time(options.not_after ? options.not_after : now + 365 * 86400);
  X509_set1_notBefore(certificate.get(), not_before.get());
  X509_set1_notAfter(certificate.get(), not_after.get());
  X509_set_pubkey(certificate.get(), subject_key);
  const X509* signer = issuer ? issuer : certificate.get();
  AddExtension(certificate.get(), signer, NID_subject_key_identifier, "hash");
  if (issuer) AddExtension(certificate.get(), signer, NID_authority_key_identifier, "keyid:always");
  if (options.is_ca) {
    AddExtension(certificate.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(certificate.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(certificate.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(certificate.get(), signer, NID_key_usage, "critical,digitalSignature");
  }
  if (options.ocsp_signing) {
    AddExtension(certificate.get(), signer, NID_ext_key_usage, "OCSPSigning");
    AddExtension(certificate.get(), signer, NID_id_pkix_OCSP_noCheck, "ignored");
  }
  Check(X509_sign(certificate.get(), issuer ? issuer_key : subject_key,
                  DigestFor(issuer ? issuer_key : subject_key)) > 0,
        "sign certificate");
  return certificate;
}

UniquePtr<X509_CRL> MakeCrl(const X509* issuer, EVP_PKEY* signing_key, const CrlOptions& options) {
  UniquePtr<X509_CRL> crl(X509_CRL_new());
  Check(X509_CRL_set_version(crl.get(), 1) == 1, "CRL version");
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer));
  const UnixSeconds this_update = options.this_update ? options.this_update : Now() - 60;
  auto last = Time(this_update);
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  if (!options.omit_next_update) {
    auto next = Time(options.next_update.value_or(this_update + 86400));
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
  }
  for (const RevokedSpec& spec : options.revoked) {
    X509_REVOKED* revoked = X509_REVOKED_new();
    UniquePtr<ASN1_INTEGER> serial = IntegerFromMagnitude(spec.serial);
    X509_REVOKED_set_serialNumber(revoked, serial.get());
    auto when = Time(spec.revoked_at ? spec.revoked_at : this_update - 3600);
    X509_REVOKED_set_revocationDate(revoked, when.get());
    if (spec.reason) {
      UniquePtr<ASN1_ENUMERATED> reason(ASN1_ENUMERATED_new());
      ASN1_ENUMERATED_set(reason.get(), *spec.reason);
      X509_REVOKED_add1_ext_i2d(revoked, NID_crl_reason, reason.get(), 0, 0);
    }
    if (spec.invalidity_date) {
      UniquePtr<ASN1_GENERALIZEDTIME> date = ToGeneralizedTime(*spec.invalidity_date);
      X509_REVOKED_add1_ext_i2d(revoked, NID_invalidity_date, date.get(), 0, 0);
    }
    if (spec.unknown_critical_extension) {
      X509_EXTENSION* extension = nullptr;
      AddUnknownCriticalExtension(&extension);
      X509_REVOKED_add_ext(revoked, extension, -1);
      X509_EXTENSION_free(extension);
    }
    X509_CRL_add0_revoked(crl.get(), revoked);
  }
  if (options.include_number) {
    UniquePtr<ASN1_INTEGER> number(ASN1_INTEGER_new());
    ASN1_INTEGER_set(number.get(), options.number);
    X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0);
  }
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, const_cast<X509*>(issuer), nullptr, nullptr, crl.get(), 0);
  UniquePtr<X509_EXTENSION> aki(X509V3_EXT_conf_nid(nullptr, &context, NID_authority_key_identifier, "keyid:always"));
  Check(aki && X509_CRL_add_ext(crl.get(), aki.get(), -1) == 1, "CRL authority key identifier");
  if (options.delta) {
    UniquePtr<ASN1_INTEGER> base(ASN1_INTEGER_new());
    ASN1_INTEGER_set(base.get(), options.number - 1);
    X509_CRL_add1_ext_i2d(crl.get(), NID_delta_crl, base.get(), 1, 0);
  }
  if (options.issuing_distribution_point) {
    UniquePtr<X509_EXTENSION> idp(
        X509V3_EXT_conf_nid(nullptr, &context, NID_issuing_distribution_point, "critical,fullname:URI:http://crl.test/p1.crl"));
    Check(idp && X509_CRL_add_ext(crl.get(), idp.get(), -1) == 1, "issuing distribution point");
  }
  if (options.unknown_critical_extension) {
    X509_EXTENSION* extension = nullptr;
    AddUnknownCriticalExtension(&extension);
    X509_CRL_add_ext(crl.get(), extension, -1);
    X509_EXTENSION_free(extension);
  }
  X509_CRL_sort(crl.get());
  Check(X509_CRL_sign(crl.get(), signing_key, DigestFor(signing_key)) > 0, "sign CRL");
  return crl;
}

Bytes ToDer(const X509_CRL* crl) {
  const int length = i2d_X509_CRL(crl, nullptr);
  Bytes out(static_cast<std::size_t>(length));
  unsigned char* cursor = out.data();
  i2d_X509_CRL(crl, &cursor);
  return out;
}

namespace {
template <typename Writer>
std::string WritePem(Writer write) {
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  Check(write(bio.get()) == 1, "PEM");
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(length));
}
}  // namespace

std::string ToPem(const X509* certificate) {
  return WritePem([&](BIO* bio) { return PEM_write_bio_X509(bio, certificate); });
}
std::string ToPem(const X509_CRL* crl) {
  return WritePem([&](BIO* bio) { return PEM_write_bio_X509_CRL(bio, const_cast<X509_CRL*>(crl)); });
}
std::string PrivateKeyPem(EVP_PKEY* key) {
  return WritePem([&](BIO* bio) { return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr); });
}

Bytes Serial(std::uint64_t value) {
  Bytes out;
  for (int shift = 56; shift >= 0; shift -= 8) {
    const auto byte = static_cast<std::uint8_t>(value >> shift);
    if (!out.empty() || byte != 0) out.push_back(byte);
  }
  if (out.empty()) out.push_back(0);
  return out;
}

TestCa TestCa::Create(const std::string& subject, KeyType type) {
  TestCa ca;
  ca.key = GenerateKey(type);
  CertificateOptions ca_options;
  ca_options.subject = subject;
  ca.certificate = MakeCertificate(ca.key.get(), ca_options, nullptr, nullptr);
  ca.responder_key = GenerateKey(type);
  CertificateOptions responder_options;
  responder_options.subject = "/C=JP/O=JPKI-TEST/CN=OCSP Responder";
  responder_options.is_ca = false;
  responder_options.ocsp_signing = true;
  responder_options.serial = 2;
  ca.responder_certificate =
      MakeCertificate(ca.responder_key.get(), responder_options, ca.certificate.get(), ca.key.get());
  return ca;
}

void TestCa::Write(const std::filesystem::path& directory, const std::string& prefix) const {
  std::filesystem::create_directories(directory);
  WriteFile(directory / (prefix + "ca.pem"), ToPem(certificate.get()));
  WriteFile(directory / (prefix + "responder.pem"), ToPem(responder_certificate.get()));
  const auto key_path = directory / (prefix + "responder.key");
  WriteFile(key_path, PrivateKeyPem(responder_key.get()));
  std::filesystem::permissions(key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

void WriteFile(const std::filesystem::path& path, ByteView data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void WriteFile(const std::filesystem::path& path, std::string_view text) { WriteFile(path, AsBytes(text)); }

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ocsp-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

UniquePtr<OCSP_CERTID> MakeCertId(const X509* issuer, ByteView serial, const EVP_MD* md) {
  UniquePtr<ASN1_INTEGER> number = IntegerFromMagnitude(serial);
  UniquePtr<OCSP_CERTID> id(OCSP_cert_id_new(md, X509_get_subject_name(issuer),
                                             X509_get0_pubkey_bitstr(issuer), number.get()));
  Check(id != nullptr, "CertID");
  return id;
}

Bytes MakeRequest(const X509* issuer, const std::vector<Bytes>& serials, const EVP_MD* md,
                  std::optional<Bytes> nonce) {
  UniquePtr<OCSP_REQUEST> request(OCSP_REQUEST_new());
  for (const Bytes& serial : serials) {
    OCSP_CERTID* id = MakeCertId(issuer, serial, md).release();
    Check(OCSP_request_add0_id(request.get(), id) != nullptr, "add CertID");
  }
  if (nonce) Check(OCSP_request_add1_nonce(request.get(), nonce->data(), static_cast<int>(nonce->size())) == 1, "nonce");
  const int length = i2d_OCSP_REQUEST(request.get(), nullptr);
  Bytes out(static_cast<std::size_t>(length));
  unsigned char* cursor = out.data();
  i2d_OCSP_REQUEST(request.get(), &cursor);
  return out;
}

}  // namespace ocsp::testing
