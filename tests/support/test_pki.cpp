#include "tests/support/test_pki.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

namespace ocsp {
// Handles only the fixtures need (common/openssl.h has the ones the product uses).
template <>
struct OpenSslDeleter<ISSUING_DIST_POINT> {
  void operator()(ISSUING_DIST_POINT* p) const noexcept { ISSUING_DIST_POINT_free(p); }
};
template <>
struct OpenSslDeleter<GENERAL_NAME> {
  void operator()(GENERAL_NAME* p) const noexcept { GENERAL_NAME_free(p); }
};
template <>
struct OpenSslDeleter<ASN1_OBJECT> {
  void operator()(ASN1_OBJECT* p) const noexcept { ASN1_OBJECT_free(p); }
};
}  // namespace ocsp

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

void AddDistributionPoint(X509_CRL* crl, const DistributionPointSpec& spec) {
  UniquePtr<ISSUING_DIST_POINT> point(ISSUING_DIST_POINT_new());
  Check(point != nullptr, "IDP");
  if (!spec.uri.empty() || !spec.directory_name.empty()) {
    point->distpoint = DIST_POINT_NAME_new();
    point->distpoint->type = 0;  // fullName
    point->distpoint->name.fullname = GENERAL_NAMES_new();
    if (!spec.uri.empty()) {
      UniquePtr<GENERAL_NAME> name(GENERAL_NAME_new());
      UniquePtr<ASN1_STRING> uri(ASN1_IA5STRING_new());
      Check(ASN1_STRING_set(uri.get(), spec.uri.data(), static_cast<int>(spec.uri.size())) == 1, "IDP URI");
      GENERAL_NAME_set0_value(name.get(), GEN_URI, uri.release());
      Check(sk_GENERAL_NAME_push(point->distpoint->name.fullname, name.get()) > 0, "IDP name");
      name.release();
    }
    if (!spec.directory_name.empty()) {
      UniquePtr<GENERAL_NAME> name(GENERAL_NAME_new());
      GENERAL_NAME_set0_value(name.get(), GEN_DIRNAME, ParseName(spec.directory_name).release());
      Check(sk_GENERAL_NAME_push(point->distpoint->name.fullname, name.get()) > 0, "IDP name");
      name.release();
    }
  }
  // DER's TRUE is 0xff; OpenSSL writes the int's low octet as it is.
  point->onlyuser = spec.only_user_certs ? 0xff : 0;
  point->onlyCA = spec.only_ca_certs ? 0xff : 0;
  point->indirectCRL = spec.indirect_crl ? 0xff : 0;
  Check(X509_CRL_add1_ext_i2d(crl, NID_issuing_distribution_point, point.get(), spec.critical ? 1 : 0, 0) == 1,
        "add IDP");
}

}  // namespace

UniquePtr<EVP_PKEY> GenerateKey(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::kEcP256: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyType::kRsa2048: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)); break;
    case KeyType::kEd25519: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
    case KeyType::kEcP384: key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
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
  auto last = MakeTime(this_update, options.time_form);
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  if (!options.omit_next_update) {
    auto next = MakeTime(options.next_update.value_or(this_update + 86400), options.time_form);
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
  }
  for (const RevokedSpec& spec : options.revoked) {
    X509_REVOKED* revoked = X509_REVOKED_new();
    UniquePtr<ASN1_INTEGER> serial = IntegerFromMagnitude(spec.serial);
    X509_REVOKED_set_serialNumber(revoked, serial.get());
    auto when = MakeTime(spec.revoked_at ? spec.revoked_at : this_update - 3600, spec.revoked_at_form);
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
    if (options.number_magnitude) {
      number = IntegerFromMagnitude(*options.number_magnitude);
    } else {
      ASN1_INTEGER_set(number.get(), options.number);
    }
    X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0);
  }
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, const_cast<X509*>(issuer), nullptr, nullptr, crl.get(), 0);
  if (options.include_authority_key_id) {
    UniquePtr<X509_EXTENSION> aki(
        X509V3_EXT_conf_nid(nullptr, &context, NID_authority_key_identifier, "keyid:always"));
    Check(aki && X509_CRL_add_ext(crl.get(), aki.get(), -1) == 1, "CRL authority key identifier");
  }
  if (options.delta) {
    UniquePtr<ASN1_INTEGER> base(ASN1_INTEGER_new());
    if (options.delta_base_magnitude) {
      base = IntegerFromMagnitude(*options.delta_base_magnitude);
    } else {
      ASN1_INTEGER_set(base.get(), options.number - 1);
    }
    X509_CRL_add1_ext_i2d(crl.get(), NID_delta_crl, base.get(), 1, 0);
  }
  if (options.distribution_point) {
    AddDistributionPoint(crl.get(), *options.distribution_point);
  } else if (options.issuing_distribution_point) {
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
  if (options.sort_entries) X509_CRL_sort(crl.get());
  SignCrl(crl.get(), signing_key, options.digest, options.rsa_pss, options.pss_salt);
  return crl;
}

UniquePtr<ASN1_TIME> MakeTime(UnixSeconds seconds, TimeForm form) {
  ASN1_TIME* time = nullptr;
  switch (form) {
    case TimeForm::kAuto: time = ASN1_TIME_set(nullptr, static_cast<time_t>(seconds)); break;
    case TimeForm::kUtcTime: time = ASN1_UTCTIME_set(nullptr, static_cast<time_t>(seconds)); break;
    case TimeForm::kGeneralizedTime: time = ASN1_GENERALIZEDTIME_set(nullptr, static_cast<time_t>(seconds)); break;
  }
  Check(time != nullptr, "time (UTCTime only exists for 1950-2049)");
  return UniquePtr<ASN1_TIME>(time);
}

void SignCrl(X509_CRL* crl, EVP_PKEY* key, const EVP_MD* digest, bool rsa_pss, int pss_salt) {
  const int type = EVP_PKEY_get_base_id(key);
  const bool pure = type == EVP_PKEY_ED25519 || type == EVP_PKEY_ED448;
  const EVP_MD* md = pure ? nullptr : (digest != nullptr ? digest : EVP_sha256());
  UniquePtr<EVP_MD_CTX> context(EVP_MD_CTX_new());
  EVP_PKEY_CTX* key_context = nullptr;  // owned by `context`
  Check(context && EVP_DigestSignInit(context.get(), &key_context, md, nullptr, key) == 1, "CRL signing init");
  if (rsa_pss) {
    Check(EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PSS_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_mgf1_md(key_context, md) == 1 &&
              EVP_PKEY_CTX_set_rsa_pss_saltlen(key_context, pss_salt) == 1,
          "RSASSA-PSS parameters");
  }
  Check(X509_CRL_sign_ctx(crl, context.get()) > 0, "sign CRL");
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

namespace der {

Bytes Length(std::size_t length) {
  if (length < 0x80) return {static_cast<std::uint8_t>(length)};
  Bytes octets;
  for (std::size_t rest = length; rest != 0; rest >>= 8) octets.insert(octets.begin(), static_cast<std::uint8_t>(rest));
  octets.insert(octets.begin(), static_cast<std::uint8_t>(0x80 | octets.size()));
  return octets;
}

Bytes Cat(std::initializer_list<ByteView> parts) {
  Bytes out;
  for (ByteView part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

Bytes Tlv(std::uint8_t tag, ByteView contents) {
  Bytes out{tag};
  const Bytes length = Length(contents.size());
  out.insert(out.end(), length.begin(), length.end());
  out.insert(out.end(), contents.begin(), contents.end());
  return out;
}

Bytes Tlv(std::uint8_t tag, std::initializer_list<ByteView> parts) { return Tlv(tag, Cat(parts)); }

Bytes Integer(ByteView magnitude) {
  Bytes contents(magnitude.begin(), magnitude.end());
  if (contents.empty() || (contents[0] & 0x80) != 0) contents.insert(contents.begin(), 0x00);
  return Tlv(0x02, contents);
}

Bytes Oid(std::string_view dotted) {
  UniquePtr<ASN1_OBJECT> object(OBJ_txt2obj(std::string(dotted).c_str(), 1));
  Check(object != nullptr, "OID");
  const int length = i2d_ASN1_OBJECT(object.get(), nullptr);
  Bytes out(static_cast<std::size_t>(length));
  unsigned char* cursor = out.data();
  i2d_ASN1_OBJECT(object.get(), &cursor);
  return out;
}

Bytes Extension(std::string_view oid, bool critical, ByteView value) {
  const Bytes flag = critical ? Bytes{0x01, 0x01, 0xff} : Bytes{};
  return Tlv(0x30, {Oid(oid), flag, Tlv(0x04, value)});
}

}  // namespace der

namespace {

template <typename T>
Bytes I2d(const T* object, int (*encode)(const T*, unsigned char**)) {
  const int length = encode(object, nullptr);
  if (length <= 0) return {};
  Bytes out(static_cast<std::size_t>(length));
  unsigned char* cursor = out.data();
  encode(object, &cursor);
  return out;
}

bool KnownCrlExtensionNid(int nid) {
  return nid == NID_crl_number || nid == NID_authority_key_identifier || nid == NID_issuer_alt_name ||
         nid == NID_delta_crl || nid == NID_issuing_distribution_point || nid == NID_freshest_crl ||
         nid == NID_info_access;
}

}  // namespace

std::string Describe(const CrlSummary& summary) {
  auto optional_hex = [](const std::optional<Bytes>& bytes) { return bytes ? ToHex(*bytes) : std::string("-"); };
  auto optional_time = [](const std::optional<UnixSeconds>& time) {
    return time ? std::to_string(*time) : std::string("-");
  };
  std::string text = "issuer=" + ToHex(summary.issuer) + " alg=" + ToHex(summary.signature_algorithm) +
                     " thisUpdate=" + std::to_string(summary.this_update) +
                     " nextUpdate=" + optional_time(summary.next_update) +
                     " number=" + optional_hex(summary.crl_number) + " base=" + optional_hex(summary.delta_base) +
                     " akid=" + optional_hex(summary.authority_key_id) +
                     " idp=" + (summary.has_distribution_point ? ToHex(summary.distribution_point_name) : "-") +
                     " scope=" + std::to_string(summary.scope) +
                     " entries=" + std::to_string(summary.entries.size());
  for (const CrlSummary::Entry& entry : summary.entries) {
    text += "\n  serial=" + ToHex(entry.serial) + " at=" + std::to_string(entry.revocation_time) +
            " reason=" + (entry.reason ? std::to_string(*entry.reason) : "-") +
            " invalidity=" + optional_time(entry.invalidity_date);
  }
  return text;
}

std::optional<OpenSslCrlReading> ReadCrlWithOpenSsl(ByteView der) {
  const unsigned char* cursor = der.data();
  UniquePtr<X509_CRL> crl(d2i_X509_CRL(nullptr, &cursor, static_cast<long>(der.size())));
  if (!crl || cursor != der.data() + der.size()) {
    ERR_clear_error();
    return std::nullopt;
  }
  OpenSslCrlReading reading;
  CrlSummary& summary = reading.summary;
  auto problem = [&](std::string what) { reading.problems.push_back(std::move(what)); };
  // X509V3_get_d2i's protocol: NULL with *critical == -1 is "absent", -2 "more than once", 0/1 "undecodable".
  auto extension = [&](auto get, int nid, const char* name) -> void* {
    int critical = -1;
    void* value = get(nid, &critical);
    if (value == nullptr && critical == -2) problem(std::string(name) + " appears more than once");
    if (value == nullptr && critical >= 0) problem(std::string(name) + " is undecodable");
    return value;
  };
  auto magnitude = [&](const ASN1_INTEGER* integer, const char* name) -> std::optional<Bytes> {
    auto bytes = IntegerMagnitude(integer);
    if (!bytes) {
      problem(std::string(name) + ": " + bytes.error().message);
      return std::nullopt;
    }
    return *bytes;
  };
  auto seconds = [&](const ASN1_TIME* time, const char* name) -> UnixSeconds {
    auto value = ToUnixSeconds(time);
    if (!value) {
      problem(std::string(name) + ": " + value.error().message);
      return 0;
    }
    return *value;
  };

  summary.issuer = NameDer(X509_CRL_get_issuer(crl.get()));
  const ASN1_BIT_STRING* signature = nullptr;
  const X509_ALGOR* algorithm = nullptr;
  X509_CRL_get0_signature(crl.get(), &signature, &algorithm);
  summary.signature_algorithm = I2d<X509_ALGOR>(algorithm, i2d_X509_ALGOR);
  // OpenSSL 3.0 has no accessor for the inner AlgorithmIdentifier; re-encoding the tbsCertList from what it
  // parsed gives it, and more: for DER input, the re-encoding is the input's bytes exactly.
  summary.tbs = I2d<X509_CRL>(crl.get(), [](const X509_CRL* item, unsigned char** out) {
    return i2d_re_X509_CRL_tbs(const_cast<X509_CRL*>(item), out);
  });
  summary.signature.assign(signature->data, signature->data + signature->length);
  summary.this_update = seconds(X509_CRL_get0_lastUpdate(crl.get()), "thisUpdate");
  if (const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get())) summary.next_update = seconds(next, "nextUpdate");

  auto crl_extension = [&](int nid, int* critical) { return X509_CRL_get_ext_d2i(crl.get(), nid, critical, nullptr); };
  if (UniquePtr<ASN1_INTEGER> number(
          static_cast<ASN1_INTEGER*>(extension(crl_extension, NID_crl_number, "cRLNumber")));
      number) {
    summary.crl_number = magnitude(number.get(), "cRLNumber");
  }
  if (UniquePtr<ASN1_INTEGER> base(
          static_cast<ASN1_INTEGER*>(extension(crl_extension, NID_delta_crl, "deltaCRLIndicator")));
      base) {
    summary.delta_base = magnitude(base.get(), "deltaCRLIndicator");
  }
  if (summary.delta_base && !summary.crl_number) problem("a delta CRL without a cRLNumber (OpenSSL marks it invalid)");
  if (UniquePtr<AUTHORITY_KEYID> key_id(static_cast<AUTHORITY_KEYID*>(
          extension(crl_extension, NID_authority_key_identifier, "authorityKeyIdentifier")));
      key_id && key_id->keyid != nullptr) {
    summary.authority_key_id = Bytes(key_id->keyid->data, key_id->keyid->data + key_id->keyid->length);
  }
  if (UniquePtr<ISSUING_DIST_POINT> point(static_cast<ISSUING_DIST_POINT*>(
          extension(crl_extension, NID_issuing_distribution_point, "issuingDistributionPoint")));
      point) {
    summary.has_distribution_point = true;
    if (point->distpoint != nullptr) summary.distribution_point_name = I2d<DIST_POINT_NAME>(point->distpoint, i2d_DIST_POINT_NAME);
    summary.scope = point->onlyCA > 0 ? 2 : 1;
    if (point->onlyuser > 0 && point->onlyCA > 0) problem("IDP is both onlyContainsUserCerts and onlyContainsCACerts");
    if (point->indirectCRL > 0) summary.unsupported = "indirectCRL";
    if (point->onlysomereasons != nullptr) summary.unsupported = "onlySomeReasons";
    if (point->onlyattr > 0) summary.unsupported = "onlyContainsAttributeCerts";
  }
  for (int i = 0; i < X509_CRL_get_ext_count(crl.get()); ++i) {
    X509_EXTENSION* item = X509_CRL_get_ext(crl.get(), i);
    if (X509_EXTENSION_get_critical(item) && !KnownCrlExtensionNid(OBJ_obj2nid(X509_EXTENSION_get_object(item)))) {
      summary.unsupported = "an unknown critical CRL extension";
    }
  }

  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    const X509_REVOKED* item = sk_X509_REVOKED_value(revoked, i);
    CrlSummary::Entry entry;
    entry.serial = magnitude(X509_REVOKED_get0_serialNumber(item), "serial").value_or(Bytes{});
    entry.revocation_time = seconds(X509_REVOKED_get0_revocationDate(item), "revocationDate");
    auto entry_extension = [&](int nid, int* critical) {
      return X509_REVOKED_get_ext_d2i(item, nid, critical, nullptr);
    };
    if (UniquePtr<ASN1_STRING> reason(
            static_cast<ASN1_STRING*>(extension(entry_extension, NID_crl_reason, "reasonCode")));
        reason) {
      entry.reason = static_cast<int>(ASN1_ENUMERATED_get(reason.get()));
    }
    if (UniquePtr<ASN1_STRING> date(
            static_cast<ASN1_STRING*>(extension(entry_extension, NID_invalidity_date, "invalidityDate")));
        date) {
      entry.invalidity_date = seconds(date.get(), "invalidityDate");
    }
    for (int j = 0; j < X509_REVOKED_get_ext_count(item); ++j) {
      X509_EXTENSION* item_extension = X509_REVOKED_get_ext(item, j);
      const int nid = OBJ_obj2nid(X509_EXTENSION_get_object(item_extension));
      if (nid == NID_certificate_issuer) summary.unsupported = "a certificateIssuer entry extension";
      const bool known = nid == NID_crl_reason || nid == NID_invalidity_date || nid == NID_hold_instruction_code;
      if (X509_EXTENSION_get_critical(item_extension) && !known && nid != NID_certificate_issuer) {
        summary.unsupported = "an unknown critical entry extension";
      }
    }
    summary.entries.push_back(std::move(entry));
  }
  return reading;
}

}  // namespace ocsp::testing
