// Test fixtures made by code: CAs, delegated responder certificates, end-entity serials and CRLs, built with
// OpenSSL's API so every field can be chosen (and broken) on purpose.
// Thread safety: none needed; each test builds its own.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/openssl.h"

namespace ocsp::testing {

enum class KeyType { kEcP256, kRsa2048, kEd25519 };

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

struct RevokedSpec {
  Bytes serial;  // magnitude
  UnixSeconds revoked_at = 0;
  std::optional<int> reason;
  std::optional<UnixSeconds> invalidity_date;
  bool unknown_critical_extension = false;
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
};

UniquePtr<X509_CRL> MakeCrl(const X509* issuer, EVP_PKEY* signing_key, const CrlOptions& options);

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

}  // namespace ocsp::testing
