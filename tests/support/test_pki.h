// Test fixtures made by code: CAs, delegated responder certificates, end-entity serials and CRLs, built with
// OpenSSL's API so every field can be chosen (and broken) on purpose.
// Thread safety: none needed; each test builds its own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/openssl.h"

namespace ocsp::testing {

enum class KeyType { kEcP256, kRsa2048, kEd25519, kEcP384 };

UniquePtr<EVP_PKEY> GenerateKey(KeyType type = KeyType::kEcP256);

struct CertificateOptions {
  std::string subject = "/C=JP/O=JPKI-TEST/OU=Test Signing CA";
  bool is_ca = true;
  bool ocsp_signing = false;  // id-kp-OCSPSigning + id-pkix-ocsp-nocheck
  UnixSeconds not_before = 0;  // 0: an hour ago
  UnixSeconds not_after = 0;   // 0: in a year
  long serial = 1;
};

UniquePtr<X509> MakeCertificate(EVP_PKEY* subject_key, const CertificateOptions& options, const X509* issuer,
                                EVP_PKEY* issuer_key);

// How a time is encoded. kAuto is RFC 5280's rule and ASN1_TIME_set's (UTCTime for 1950-2049, GeneralizedTime
// otherwise); the other two force a form (kUtcTime only exists for 1950-2049).
enum class TimeForm : std::uint8_t { kAuto, kUtcTime, kGeneralizedTime };
UniquePtr<ASN1_TIME> MakeTime(UnixSeconds seconds, TimeForm form);

struct RevokedSpec {
  Bytes serial;  // magnitude
  UnixSeconds revoked_at = 0;
  std::optional<int> reason;
  std::optional<UnixSeconds> invalidity_date;
  bool unknown_critical_extension = false;
  TimeForm revoked_at_form = TimeForm::kAuto;
};

// An issuingDistributionPoint built from its parts (RFC 5280 5.2.5).
struct DistributionPointSpec {
  std::string uri;             // a fullName uniformResourceIdentifier; empty: none
  std::string directory_name;  // a fullName directoryName ("/C=JP/CN=Partition 1"); empty: none
  bool only_user_certs = false;
  bool only_ca_certs = false;
  bool indirect_crl = false;
  bool critical = true;
};

struct CrlOptions {
  long number = 1;
  bool include_number = true;
  UnixSeconds this_update = 0;  // 0: now - 60
  std::optional<UnixSeconds> next_update;  // default: this_update + 1 day, unless omit_next_update
  bool omit_next_update = false;
  bool delta = false;
  bool issuing_distribution_point = false;
  bool unknown_critical_extension = false;
  std::vector<RevokedSpec> revoked;
  // Beyond the defaults above (all optional; the defaults keep the CRLs the other tests expect).
  TimeForm time_form = TimeForm::kAuto;         // thisUpdate and nextUpdate
  std::optional<Bytes> number_magnitude;        // cRLNumber as a magnitude of any length; overrides `number`
  std::optional<Bytes> delta_base_magnitude;    // with `delta`: BaseCRLNumber (default: number - 1)
  std::optional<DistributionPointSpec> distribution_point;  // overrides issuing_distribution_point
  bool include_authority_key_id = true;
  bool sort_entries = true;                     // false: entries stay in the order given
  const EVP_MD* digest = nullptr;               // nullptr: SHA-256 (nothing for Ed25519)
  bool rsa_pss = false;                         // RSASSA-PSS with MGF1(`digest`) and a `pss_salt` octet salt
  int pss_salt = 32;
};

UniquePtr<X509_CRL> MakeCrl(const X509* issuer, EVP_PKEY* signing_key, const CrlOptions& options);

// Signs (or re-signs, after a change) a CRL: `digest` nullptr means SHA-256, or none for Ed25519.
void SignCrl(X509_CRL* crl, EVP_PKEY* key, const EVP_MD* digest = nullptr, bool rsa_pss = false, int pss_salt = 32);

Bytes ToDer(const X509_CRL* crl);
std::string ToPem(const X509* certificate);
std::string ToPem(const X509_CRL* crl);
std::string PrivateKeyPem(EVP_PKEY* key);

Bytes Serial(std::uint64_t value);

// A CA with its delegated responder, ready to write to disk.
struct TestCa {
  UniquePtr<EVP_PKEY> key;
  UniquePtr<X509> certificate;
  UniquePtr<EVP_PKEY> responder_key;
  UniquePtr<X509> responder_certificate;

  static TestCa Create(const std::string& subject = "/C=JP/O=JPKI-TEST/OU=Test Signing CA",
                       KeyType type = KeyType::kEcP256);
  [[nodiscard]] UniquePtr<X509_CRL> Crl(const CrlOptions& options) const {
    return MakeCrl(certificate.get(), key.get(), options);
  }
  // Writes ca.pem, responder.pem and responder.key (mode 0600) under `directory` with the given prefix.
  void Write(const std::filesystem::path& directory, const std::string& prefix = "") const;
};

void WriteFile(const std::filesystem::path& path, ByteView data);
void WriteFile(const std::filesystem::path& path, std::string_view text);

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// OCSP requests as a client would build them.
UniquePtr<OCSP_CERTID> MakeCertId(const X509* issuer, ByteView serial, const EVP_MD* md);
Bytes MakeRequest(const X509* issuer, const std::vector<Bytes>& serials, const EVP_MD* md,
                  std::optional<Bytes> nonce = std::nullopt);

// Hand-built DER, for inputs OpenSSL's encoder will not produce.
namespace der {
Bytes Length(std::size_t length);                     // minimal definite length octets
Bytes Tlv(std::uint8_t tag, ByteView contents);       // tag, minimal length, contents
Bytes Tlv(std::uint8_t tag, std::initializer_list<ByteView> parts);
Bytes Cat(std::initializer_list<ByteView> parts);
Bytes Integer(ByteView magnitude);                    // a non-negative INTEGER from its magnitude (pads a 0x00)
Bytes Oid(std::string_view dotted);                   // "2.5.29.20"
Bytes Extension(std::string_view oid, bool critical, ByteView value);  // value: the extnValue contents
}  // namespace der

// What OpenSSL's own parser makes of a CRL, in plain values, to compare with another reader field by field.
struct CrlSummary {
  struct Entry {
    Bytes serial;  // minimal magnitude
    UnixSeconds revocation_time = 0;
    std::optional<int> reason;
    std::optional<UnixSeconds> invalidity_date;
    bool operator==(const Entry&) const = default;
  };
  Bytes issuer;                   // Name DER
  Bytes signature_algorithm;      // outer AlgorithmIdentifier DER
  Bytes tbs;                      // tbsCertList (OpenSSL's: re-encoded from what it parsed, DER)
  Bytes signature;                // BIT STRING contents without the unused-bits octet
  UnixSeconds this_update = 0;
  std::optional<UnixSeconds> next_update;
  std::optional<Bytes> crl_number;
  std::optional<Bytes> delta_base;
  std::optional<Bytes> authority_key_id;
  bool has_distribution_point = false;
  Bytes distribution_point_name;  // DER of the DistributionPointName (empty when absent)
  int scope = 0;                  // 0: no IDP, 1: user certificates, 2: CA certificates (importer::PartitionScope)
  // What RFC 5280 defines but a complete-CRL reader without indirect CRLs must refuse (empty: nothing):
  // an IDP with indirectCRL / onlySomeReasons / onlyContainsAttributeCerts, a certificateIssuer entry extension,
  // an unknown critical CRL or entry extension. OpenSSL itself decodes all of these.
  std::string unsupported;
  std::vector<Entry> entries;     // file order
  bool operator==(const CrlSummary&) const = default;
};
std::string Describe(const CrlSummary& summary);

struct OpenSslCrlReading {
  CrlSummary summary;
  // What d2i_X509_CRL lets through but OpenSSL then cannot use: an extension it cannot decode or finds twice
  // (X509_CRL_get_ext_d2i fails; OpenSSL marks the CRL invalid), a delta CRL without a cRLNumber, a time it
  // cannot convert, a negative serial or CRL number, an IDP both "only user" and "only CA". Empty for a sound CRL.
  std::vector<std::string> problems;
};
// nullopt when d2i_X509_CRL refuses the bytes or does not consume all of them.
std::optional<OpenSslCrlReading> ReadCrlWithOpenSsl(ByteView der);

}  // namespace ocsp::testing
