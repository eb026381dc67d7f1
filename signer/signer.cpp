#include "signer/signer.h"

#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstring>

namespace ocsp::signer {
namespace {

Result<UniquePtr<EVP_PKEY>> LoadPrivateKey(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return Fail(ErrorCode::kNotFound, "cannot open the responder key " + path.string() + ": " + std::strerror(errno));
  }
  if (info.st_mode & (S_IROTH | S_IWOTH)) {
    return Fail(ErrorCode::kRefused, "the responder key " + path.string() +
                                         " is readable or writable by others; run chmod o-rwx on it");
  }
  auto data = ReadFile(path);
  if (!data) return std::unexpected(data.error());
  UniquePtr<BIO> bio(BIO_new_mem_buf(data->data(), static_cast<int>(data->size())));
  UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  // The key bytes are not needed any longer; do not leave them in freed heap memory.
  OPENSSL_cleanse(data->data(), data->size());
  if (!key) {
    // The OpenSSL error text never contains key material, only the reason the decoding failed.
    return Fail(ErrorCode::kInvalidArgument,
                "the responder key " + path.string() + " is not a PEM private key: " + DrainOpenSslErrors());
  }
  return key;
}

bool HasOcspSigningUsage(const X509* certificate) {
  const uint32_t flags = X509_get_extension_flags(const_cast<X509*>(certificate));
  if (!(flags & EXFLAG_XKUSAGE)) return false;
  return (X509_get_extended_key_usage(const_cast<X509*>(certificate)) & XKU_OCSP_SIGN) != 0;
}

}  // namespace

Bytes ExceptionResponse(ResponseStatus status) {
  UniquePtr<OCSP_RESPONSE> response(OCSP_response_create(static_cast<int>(status), nullptr));
  Bytes out;
  if (!response) return out;
  const int length = i2d_OCSP_RESPONSE(response.get(), nullptr);
  if (length <= 0) return out;
  out.resize(static_cast<std::size_t>(length));
  unsigned char* cursor = out.data();
  i2d_OCSP_RESPONSE(response.get(), &cursor);
  return out;
}

Result<Signer> Signer::Load(const SignerFiles& files, const X509* issuer, UnixSeconds now) {
  auto certificate = LoadCertificate(files.certificate);
  if (!certificate) return std::unexpected(certificate.error());
  auto key = LoadPrivateKey(files.private_key);
  if (!key) return std::unexpected(key.error());
  const std::string name = files.certificate.string();

  if (X509_check_private_key(certificate->get(), key->get()) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument,
                "the key " + files.private_key.string() + " does not belong to the certificate " + name);
  }
  if (!HasOcspSigningUsage(certificate->get())) {
    return Fail(ErrorCode::kInvalidArgument, name + " lacks extended key usage id-kp-OCSPSigning");
  }
  if (X509_check_issued(const_cast<X509*>(issuer), certificate->get()) != X509_V_OK ||
      X509_verify(certificate->get(), X509_get0_pubkey(issuer)) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kVerificationFailed, name + " was not issued by the CA it is configured to answer for");
  }
  auto not_before = ToUnixSeconds(X509_get0_notBefore(certificate->get()));
  auto not_after = ToUnixSeconds(X509_get0_notAfter(certificate->get()));
  if (!not_before || !not_after) return Fail(ErrorCode::kInvalidArgument, name + " has an undecodable validity");
  if (now < *not_before || now > *not_after) {
    return Fail(ErrorCode::kRefused, name + " is not valid now");
  }

  const int key_type = EVP_PKEY_get_base_id(key->get());
  const EVP_MD* digest = (key_type == EVP_PKEY_ED25519 || key_type == EVP_PKEY_ED448) ? nullptr : EVP_sha256();
  return Signer(std::move(*certificate), std::move(*key), digest, *not_after);
}

Result<Bytes> Signer::Sign(std::span<const SingleAnswer> answers, std::optional<ByteView> nonce_extension_value,
                           UnixSeconds produced_at) const {
  if (answers.empty()) return Fail(ErrorCode::kInternal, "a response needs at least one answer");
  UniquePtr<OCSP_BASICRESP> basic(OCSP_BASICRESP_new());
  if (!basic) return Fail(ErrorCode::kCrypto, DrainOpenSslErrors());

  for (const SingleAnswer& answer : answers) {
    UniquePtr<ASN1_GENERALIZEDTIME> this_update = ToGeneralizedTime(answer.this_update);
    UniquePtr<ASN1_GENERALIZEDTIME> next_update;
    if (answer.next_update) next_update = ToGeneralizedTime(*answer.next_update);
    UniquePtr<ASN1_GENERALIZEDTIME> revoked_at;
    int status = V_OCSP_CERTSTATUS_UNKNOWN;
    int reason = -1;
    switch (answer.status) {
      case CertStatus::kGood: status = V_OCSP_CERTSTATUS_GOOD; break;
      case CertStatus::kUnknown: status = V_OCSP_CERTSTATUS_UNKNOWN; break;
      case CertStatus::kRevoked:
        status = V_OCSP_CERTSTATUS_REVOKED;
        revoked_at = ToGeneralizedTime(answer.revocation_time);
        reason = answer.reason.value_or(-1);
        break;
    }
    // OCSP_basic_add1_status copies the CertID; it does not modify it.
    OCSP_SINGLERESP* single =
        OCSP_basic_add1_status(basic.get(), const_cast<OCSP_CERTID*>(answer.cert_id), status, reason,
                               revoked_at.get(), this_update.get(), next_update.get());
    if (single == nullptr) return Fail(ErrorCode::kCrypto, "adding a status: " + DrainOpenSslErrors());
    if (answer.status == CertStatus::kRevoked && answer.invalidity_date) {
      // CRL entry extensions may travel as singleExtensions (RFC 6960 4.4).
      UniquePtr<ASN1_GENERALIZEDTIME> invalidity = ToGeneralizedTime(*answer.invalidity_date);
      if (OCSP_SINGLERESP_add1_ext_i2d(single, NID_invalidity_date, invalidity.get(), 0, 0) != 1) {
        return Fail(ErrorCode::kCrypto, "adding the invalidity date: " + DrainOpenSslErrors());
      }
    }
  }

  if (nonce_extension_value) {
    UniquePtr<ASN1_OCTET_STRING> value(ASN1_OCTET_STRING_new());
    if (!value || ASN1_OCTET_STRING_set(value.get(), nonce_extension_value->data(),
                                        static_cast<int>(nonce_extension_value->size())) != 1) {
      return Fail(ErrorCode::kCrypto, DrainOpenSslErrors());
    }
    UniquePtr<X509_EXTENSION> extension(
        X509_EXTENSION_create_by_NID(nullptr, NID_id_pkix_OCSP_Nonce, 0, value.get()));
    if (!extension || OCSP_BASICRESP_add_ext(basic.get(), extension.get(), -1) != 1) {
      return Fail(ErrorCode::kCrypto, "echoing the nonce: " + DrainOpenSslErrors());
    }
  }

  UniquePtr<EVP_MD_CTX> context(EVP_MD_CTX_new());
  if (!context || EVP_DigestSignInit(context.get(), nullptr, digest_, nullptr, key_.get()) != 1) {
    return Fail(ErrorCode::kCrypto, "preparing to sign: " + DrainOpenSslErrors());
  }
  // OCSP_basic_sign_ctx would stamp producedAt from the system clock; OCSP_NOTIME leaves it to us, so the
  // injected clock decides. OpenSSL has no setter: the getter's field is the one X509_gmtime_adj would set.
  auto* produced = const_cast<ASN1_GENERALIZEDTIME*>(OCSP_resp_get0_produced_at(basic.get()));
  if (produced == nullptr || ASN1_GENERALIZEDTIME_set(produced, static_cast<time_t>(produced_at)) == nullptr) {
    return Fail(ErrorCode::kCrypto, "setting producedAt");
  }
  if (OCSP_basic_sign_ctx(basic.get(), certificate_.get(), context.get(), nullptr,
                          OCSP_RESPID_KEY | OCSP_NOTIME) != 1) {
    return Fail(ErrorCode::kCrypto, "signing: " + DrainOpenSslErrors());
  }

  UniquePtr<OCSP_RESPONSE> response(OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  if (!response) return Fail(ErrorCode::kCrypto, "wrapping the response: " + DrainOpenSslErrors());
  const int length = i2d_OCSP_RESPONSE(response.get(), nullptr);
  if (length <= 0) return Fail(ErrorCode::kCrypto, "encoding the response: " + DrainOpenSslErrors());
  Bytes out(static_cast<std::size_t>(length));
  unsigned char* cursor = out.data();
  i2d_OCSP_RESPONSE(response.get(), &cursor);
  return out;
}

}  // namespace ocsp::signer
