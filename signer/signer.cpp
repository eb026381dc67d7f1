#include "signer/signer.h"

#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <mutex>

#include "signer/private_key.h"

namespace ocsp::signer {
namespace {

// ---- DER writing. Only what a BasicOCSPResponse needs: definite lengths, single-octet tags.

constexpr std::uint8_t kSequence = 0x30;
constexpr std::uint8_t kOctetString = 0x04;
constexpr std::uint8_t kGeneralizedTime = 0x18;
constexpr std::size_t kGeneralizedTimeSize = 2 + 15;  // 18 0f YYYYMMDDHHMMSSZ

std::size_t HeaderSize(std::size_t content) {
  if (content < 0x80) return 2;
  std::size_t octets = 0;
  for (std::size_t rest = content; rest != 0; rest >>= 8) ++octets;
  return 2 + octets;
}
std::size_t TlvSize(std::size_t content) { return HeaderSize(content) + content; }

void PutHeader(Bytes& out, std::uint8_t tag, std::size_t content) {
  out.push_back(tag);
  if (content < 0x80) {
    out.push_back(static_cast<std::uint8_t>(content));
    return;
  }
  std::size_t octets = 0;
  for (std::size_t rest = content; rest != 0; rest >>= 8) ++octets;
  out.push_back(static_cast<std::uint8_t>(0x80 | octets));
  for (std::size_t i = octets; i-- > 0;) out.push_back(static_cast<std::uint8_t>(content >> (8 * i)));
}

void Put(Bytes& out, ByteView bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }

// GeneralizedTime as RFC 5280 4.1.2.5.2 wants it (and ASN1_GENERALIZEDTIME_set writes it): YYYYMMDDHHMMSSZ.
bool PutTime(Bytes& out, UnixSeconds seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm utc{};
  if (::gmtime_r(&t, &utc) == nullptr) return false;
  const int year = utc.tm_year + 1900;
  if (year < 0 || year > 9999) return false;
  out.push_back(kGeneralizedTime);
  out.push_back(15);
  auto two = [&](int value) {
    out.push_back(static_cast<std::uint8_t>('0' + value / 10));
    out.push_back(static_cast<std::uint8_t>('0' + value % 10));
  };
  two(year / 100);
  two(year % 100);
  two(utc.tm_mon + 1);
  two(utc.tm_mday);
  two(utc.tm_hour);
  two(utc.tm_min);
  two(utc.tm_sec);
  out.push_back('Z');
  return true;
}

constexpr std::array<std::uint8_t, 11> kOidOcspBasic = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05,
                                                       0x07, 0x30, 0x01, 0x01};
constexpr std::array<std::uint8_t, 11> kOidOcspNonce = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05,
                                                       0x07, 0x30, 0x01, 0x02};
constexpr std::array<std::uint8_t, 5> kOidInvalidityDate = {0x06, 0x03, 0x55, 0x1d, 0x18};

// One SingleResponse (RFC 6960 4.2.1), appended to `out`.
Result<void> PutSingleResponse(Bytes& out, const SingleAnswer& answer, UnixSeconds not_after, Bytes& scratch) {
  ByteView cert_id = answer.cert_id_der;
  if (cert_id.empty()) {
    if (answer.cert_id == nullptr) return Fail(ErrorCode::kInternal, "an answer without a CertID");
    scratch.clear();
    const int length = i2d_OCSP_CERTID(const_cast<OCSP_CERTID*>(answer.cert_id), nullptr);
    if (length <= 0) return Fail(ErrorCode::kCrypto, "encoding a CertID: " + DrainOpenSslErrors());
    scratch.resize(static_cast<std::size_t>(length));
    unsigned char* cursor = scratch.data();
    i2d_OCSP_CERTID(const_cast<OCSP_CERTID*>(answer.cert_id), &cursor);
    cert_id = scratch;
  }
  const bool has_reason = answer.status == CertStatus::kRevoked && answer.reason && *answer.reason >= 0 &&
                          *answer.reason <= 127;
  const bool has_invalidity = answer.status == CertStatus::kRevoked && answer.invalidity_date.has_value();
  std::optional<UnixSeconds> next_update = answer.next_update;
  if (next_update) next_update = std::min(*next_update, not_after);

  std::size_t status_size = 2;  // [0] IMPLICIT NULL or [2] IMPLICIT NULL
  const std::size_t revoked_info = kGeneralizedTimeSize + (has_reason ? 5 : 0);
  if (answer.status == CertStatus::kRevoked) status_size = TlvSize(revoked_info);
  const std::size_t invalidity_extension = TlvSize(kOidInvalidityDate.size() + TlvSize(kGeneralizedTimeSize));
  const std::size_t content = cert_id.size() + status_size + kGeneralizedTimeSize +
                              (next_update ? TlvSize(kGeneralizedTimeSize) : 0) +
                              (has_invalidity ? TlvSize(TlvSize(invalidity_extension)) : 0);

  PutHeader(out, kSequence, content);
  Put(out, cert_id);
  bool times_ok = true;
  switch (answer.status) {
    case CertStatus::kGood: Put(out, std::array<std::uint8_t, 2>{0x80, 0x00}); break;
    case CertStatus::kUnknown: Put(out, std::array<std::uint8_t, 2>{0x82, 0x00}); break;
    case CertStatus::kRevoked:
      PutHeader(out, 0xa1, revoked_info);  // [1] IMPLICIT RevokedInfo
      times_ok &= PutTime(out, answer.revocation_time);
      if (has_reason) {  // [0] EXPLICIT CRLReason
        Put(out, std::array<std::uint8_t, 4>{0xa0, 0x03, 0x0a, 0x01});
        out.push_back(static_cast<std::uint8_t>(*answer.reason));
      }
      break;
  }
  times_ok &= PutTime(out, answer.this_update);
  if (next_update) {
    PutHeader(out, 0xa0, kGeneralizedTimeSize);
    times_ok &= PutTime(out, *next_update);
  }
  if (has_invalidity) {  // CRL entry extensions may travel as singleExtensions (RFC 6960 4.4)
    PutHeader(out, 0xa1, TlvSize(invalidity_extension));
    PutHeader(out, kSequence, invalidity_extension);
    PutHeader(out, kSequence, kOidInvalidityDate.size() + TlvSize(kGeneralizedTimeSize));
    Put(out, kOidInvalidityDate);
    PutHeader(out, kOctetString, kGeneralizedTimeSize);
    times_ok &= PutTime(out, *answer.invalidity_date);
  }
  if (!times_ok) return Fail(ErrorCode::kInvalidArgument, "a time outside years 0-9999");
  return {};
}

bool HasOcspSigningUsage(const X509* certificate) {
  const uint32_t flags = X509_get_extension_flags(const_cast<X509*>(certificate));
  if (!(flags & EXFLAG_XKUSAGE)) return false;
  return (X509_get_extended_key_usage(const_cast<X509*>(certificate)) & XKU_OCSP_SIGN) != 0;
}

std::string TimeText(UnixSeconds seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm utc{};
  char text[32] = "?";
  if (::gmtime_r(&t, &utc) != nullptr) std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

enum class Scheme { kRsaPkcs1, kRsaPss, kEcdsa, kEdDsa };

}  // namespace

// ---- The key and its pooled signing contexts.

struct Signer::Key {
  PrivateKey private_key;
  Scheme scheme = Scheme::kRsaPkcs1;
  UniquePtr<EVP_MD> digest;  // fetched once: an implicit fetch per call costs more than the hash (OpenSSL 3.0)
  std::size_t max_signature_size = 0;

  // A context is set up once (padding, digest, salt) and then signs many times; contexts are not shareable
  // between threads, so each caller leases one. The pool grows to the number of threads signing at once.
  struct Context {
    UniquePtr<EVP_PKEY_CTX> pkey;  // prehashed schemes: EVP_PKEY_sign over our digest
    UniquePtr<EVP_MD_CTX> message;  // EdDSA: one-shot EVP_DigestSign over the whole tbsResponseData
  };
  mutable std::mutex mutex;
  mutable std::vector<Context> idle;

  // Applies the scheme's parameters to a signing EVP_PKEY_CTX (prehash or DigestSign).
  [[nodiscard]] bool Configure(EVP_PKEY_CTX* context) const {
    if (scheme == Scheme::kRsaPss) {
      return EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(context, digest.get()) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(context, RSA_PSS_SALTLEN_DIGEST) > 0;
    }
    if (scheme == Scheme::kRsaPkcs1) return EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) > 0;
    return true;
  }

  Result<Context> NewContext() const {
    Context context;
    if (scheme == Scheme::kEdDsa) {
      context.message.reset(EVP_MD_CTX_new());
      if (!context.message ||
          EVP_DigestSignInit(context.message.get(), nullptr, nullptr, nullptr, private_key.key.get()) != 1) {
        return Fail(ErrorCode::kCrypto, "preparing to sign: " + DrainOpenSslErrors());
      }
      return context;
    }
    context.pkey.reset(EVP_PKEY_CTX_new(private_key.key.get(), nullptr));
    if (!context.pkey || EVP_PKEY_sign_init(context.pkey.get()) != 1 ||
        EVP_PKEY_CTX_set_signature_md(context.pkey.get(), digest.get()) <= 0 || !Configure(context.pkey.get())) {
      return Fail(ErrorCode::kCrypto, "preparing to sign: " + DrainOpenSslErrors());
    }
    return context;
  }

  Result<Context> Lease() const {
    {
      std::lock_guard lock(mutex);
      if (!idle.empty()) {
        Context context = std::move(idle.back());
        idle.pop_back();
        return context;
      }
    }
    return NewContext();
  }
  void Return(Context context) const {
    std::lock_guard lock(mutex);
    idle.push_back(std::move(context));
  }
};

Signer::Signer(Signer&&) noexcept = default;
Signer& Signer::operator=(Signer&&) noexcept = default;
Signer::~Signer() = default;

Result<Bytes> Signer::SignTbs(ByteView tbs) const {
  auto context = key_->Lease();
  if (!context) return std::unexpected(context.error());
  Bytes signature(key_->max_signature_size);
  std::size_t length = signature.size();
  bool ok = false;
  if (key_->scheme == Scheme::kEdDsa) {
    EVP_MD_CTX* message = context->message.get();
    ok = EVP_DigestSign(message, signature.data(), &length, tbs.data(), tbs.size()) == 1;
    if (!ok) {
      // OpenSSL 3.0 lets a one-shot context sign again; 3.2 refuses a finalised one (openssl#23075) until it is
      // initialised anew. Pay for that only where it is needed.
      ERR_clear_error();
      length = signature.size();
      ok = EVP_DigestSignInit(message, nullptr, nullptr, nullptr, key_->private_key.key.get()) == 1 &&
           EVP_DigestSign(message, signature.data(), &length, tbs.data(), tbs.size()) == 1;
    }
  } else {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    ok = EVP_Digest(tbs.data(), tbs.size(), digest, &digest_length, key_->digest.get(), nullptr) == 1 &&
         EVP_PKEY_sign(context->pkey.get(), signature.data(), &length, digest, digest_length) == 1;
  }
  if (!ok) return Fail(ErrorCode::kCrypto, "signing: " + DrainOpenSslErrors());  // the context is dropped
  key_->Return(std::move(*context));
  signature.resize(length);
  return signature;
}

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
  const std::string name = files.certificate.string();
  auto certificate = LoadCertificate(files.certificate);
  if (!certificate) return std::unexpected(certificate.error());
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
  if (now > *not_after) {
    return Fail(ErrorCode::kRefused, name + " expired on " + TimeText(*not_after) + "; remove it or renew it");
  }

  auto loaded = LoadPrivateKey(files.key, files.pkcs11_module, files.pin_file);
  if (!loaded) return std::unexpected(loaded.error());
  const std::string mismatch = "the key " + files.key + " does not belong to the certificate " + name;
  // Compares the public halves (libp11 fills them in from the token); the signature check at the end of Load
  // then proves the private half.
  if (X509_check_private_key(certificate->get(), loaded->key.get()) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument, mismatch);
  }

  auto key = std::make_unique<Key>();
  EVP_PKEY* pkey = loaded->key.get();
  const int type = EVP_PKEY_get_base_id(pkey);
  const std::string& wanted = files.signature;
  if (!wanted.empty() && std::find(std::begin(kSignatureSchemes), std::end(kSignatureSchemes), wanted) ==
                             std::end(kSignatureSchemes)) {
    return Fail(ErrorCode::kInvalidArgument, "signature = \"" + wanted + "\" is not rsa-pkcs1 or rsa-pss");
  }
  const char* digest_name = "SHA256";
  switch (type) {
    case EVP_PKEY_RSA: key->scheme = wanted == "rsa-pss" ? Scheme::kRsaPss : Scheme::kRsaPkcs1; break;
    case EVP_PKEY_RSA_PSS:
      if (wanted == "rsa-pkcs1") {
        return Fail(ErrorCode::kInvalidArgument, "the key " + files.key + " is an RSASSA-PSS key; it cannot " +
                                                     "sign with signature = \"rsa-pkcs1\"");
      }
      key->scheme = Scheme::kRsaPss;
      break;
    case EVP_PKEY_EC:
      key->scheme = Scheme::kEcdsa;
      // The hash matches the curve's strength (RFC 5480 4): P-256/SHA-256, P-384/SHA-384, P-521/SHA-512.
      digest_name = EVP_PKEY_get_bits(pkey) > 384 ? "SHA512" : EVP_PKEY_get_bits(pkey) > 256 ? "SHA384" : "SHA256";
      break;
    case EVP_PKEY_ED25519:
    case EVP_PKEY_ED448: key->scheme = Scheme::kEdDsa; break;
    default: return Fail(ErrorCode::kInvalidArgument, "the key " + files.key + " is of an unsupported type");
  }
  if (!wanted.empty() && type != EVP_PKEY_RSA && type != EVP_PKEY_RSA_PSS) {
    return Fail(ErrorCode::kInvalidArgument,
                "signature = \"" + wanted + "\" needs an RSA key; " + files.key + " is not one");
  }
  if (key->scheme != Scheme::kEdDsa) {
    key->digest.reset(EVP_MD_fetch(nullptr, digest_name, nullptr));
    if (!key->digest) {
      return Fail(ErrorCode::kCrypto, "fetching " + std::string(digest_name) + ": " + DrainOpenSslErrors());
    }
  }
  key->max_signature_size = static_cast<std::size_t>(EVP_PKEY_get_size(pkey));
  key->private_key = std::move(*loaded);

  Signer signer;
  signer.source_ = files.certificate;
  signer.not_before_ = *not_before;
  signer.not_after_ = *not_after;
  signer.key_ = std::move(key);

  const Bytes certificate_der = CertificateDer(certificate->get());
  unsigned char sha256[32];
  if (EVP_Digest(certificate_der.data(), certificate_der.size(), sha256, nullptr, EVP_sha256(), nullptr) != 1) {
    return Fail(ErrorCode::kCrypto, DrainOpenSslErrors());
  }
  for (int i = 0; i < 8; ++i) signer.id_ = (signer.id_ << 8) | sha256[i];

  auto key_hash = PublicKeyHash(certificate->get(), EVP_sha1());  // ResponderID byKey (RFC 6960 4.2.1)
  if (!key_hash) return std::unexpected(key_hash.error());
  PutHeader(signer.responder_id_der_, 0xa2, TlvSize(key_hash->size()));
  PutHeader(signer.responder_id_der_, kOctetString, key_hash->size());
  Put(signer.responder_id_der_, *key_hash);

  PutHeader(signer.certs_der_, 0xa0, TlvSize(certificate_der.size()));
  PutHeader(signer.certs_der_, kSequence, certificate_der.size());
  Put(signer.certs_der_, certificate_der);

  // The AlgorithmIdentifier (PSS parameters included) is whatever OpenSSL itself writes for this key and
  // scheme: sign one throwaway response its way once and keep the encoding.
  {
    UniquePtr<OCSP_BASICRESP> basic(OCSP_BASICRESP_new());
    UniquePtr<EVP_MD_CTX> context(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pkey_context = nullptr;
    if (!basic || !context ||
        EVP_DigestSignInit(context.get(), &pkey_context, signer.key_->digest.get(), nullptr, pkey) != 1 ||
        !signer.key_->Configure(pkey_context) ||
        OCSP_basic_sign_ctx(basic.get(), certificate->get(), context.get(), nullptr,
                            OCSP_RESPID_KEY | OCSP_NOCERTS) != 1) {
      return Fail(ErrorCode::kCrypto, "the key " + files.key + " cannot sign: " + DrainOpenSslErrors());
    }
    const X509_ALGOR* algorithm = OCSP_resp_get0_tbs_sigalg(basic.get());
    const int length = i2d_X509_ALGOR(const_cast<X509_ALGOR*>(algorithm), nullptr);
    if (length <= 0) return Fail(ErrorCode::kCrypto, "encoding the signature algorithm: " + DrainOpenSslErrors());
    signer.signature_algorithm_der_.resize(static_cast<std::size_t>(length));
    unsigned char* cursor = signer.signature_algorithm_der_.data();
    i2d_X509_ALGOR(const_cast<X509_ALGOR*>(algorithm), &cursor);
  }
  signer.certificate_ = std::move(*certificate);

  // The key proves it belongs to the certificate by signing: a response signed here must verify with the
  // certificate's public key (this also catches an HSM key that loads but cannot sign).
  UniquePtr<OCSP_CERTID> probe_id(OCSP_cert_id_new(EVP_sha1(), X509_get_issuer_name(signer.certificate_.get()),
                                                   X509_get0_pubkey_bitstr(issuer),
                                                   X509_get0_serialNumber(signer.certificate_.get())));
  const UnixSeconds probe_time = std::max(now, signer.not_before_);
  SingleAnswer probe{probe_id.get(), CertStatus::kGood, probe_time, std::nullopt, 0, {}, {}, {}};
  auto probe_der = signer.Sign({&probe, 1}, std::nullopt, probe_time);
  if (!probe_der) {
    return Fail(probe_der.error().code, "the key " + files.key + " cannot sign: " + probe_der.error().message);
  }
  const unsigned char* cursor = probe_der->data();
  UniquePtr<OCSP_RESPONSE> response(d2i_OCSP_RESPONSE(nullptr, &cursor, static_cast<long>(probe_der->size())));
  UniquePtr<OCSP_BASICRESP> basic(response ? OCSP_response_get1_basic(response.get()) : nullptr);
  UniquePtr<X509_STORE> no_trust(X509_STORE_new());
  if (!basic || OCSP_basic_verify(basic.get(), nullptr, no_trust.get(), OCSP_NOVERIFY) != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument, mismatch);
  }
  return signer;
}

Result<Bytes> Signer::Sign(std::span<const SingleAnswer> answers, std::optional<ByteView> nonce_extension_value,
                           UnixSeconds produced_at) const {
  if (answers.empty()) return Fail(ErrorCode::kInternal, "a response needs at least one answer");
  if (!ValidAt(produced_at)) {
    return Fail(ErrorCode::kRefused, "the responder certificate " + source_.string() + " is not valid at " +
                                         TimeText(produced_at) + " (valid " + TimeText(not_before_) + " to " +
                                         TimeText(not_after_) + ")");
  }

  // tbsResponseData: SEQUENCE { responderID, producedAt, responses, [1] responseExtensions }
  Bytes responses;
  responses.reserve(answers.size() * 128);
  Bytes scratch;
  for (const SingleAnswer& answer : answers) {
    if (auto put = PutSingleResponse(responses, answer, not_after_, scratch); !put) return std::unexpected(put.error());
  }
  std::size_t extensions = 0;  // the content of [1]
  std::size_t nonce_extension = 0;
  if (nonce_extension_value) {
    nonce_extension = kOidOcspNonce.size() + TlvSize(nonce_extension_value->size());
    extensions = TlvSize(TlvSize(nonce_extension));
  }
  const std::size_t tbs_content = responder_id_der_.size() + kGeneralizedTimeSize + TlvSize(responses.size()) +
                                  (nonce_extension_value ? TlvSize(extensions) : 0);
  Bytes tbs;
  tbs.reserve(TlvSize(tbs_content));
  PutHeader(tbs, kSequence, tbs_content);
  Put(tbs, responder_id_der_);
  if (!PutTime(tbs, produced_at)) return Fail(ErrorCode::kInvalidArgument, "producedAt outside years 0-9999");
  PutHeader(tbs, kSequence, responses.size());
  Put(tbs, responses);
  if (nonce_extension_value) {
    PutHeader(tbs, 0xa1, extensions);
    PutHeader(tbs, kSequence, TlvSize(nonce_extension));
    PutHeader(tbs, kSequence, nonce_extension);
    Put(tbs, kOidOcspNonce);
    PutHeader(tbs, kOctetString, nonce_extension_value->size());
    Put(tbs, *nonce_extension_value);
  }

  auto signature = SignTbs(tbs);
  if (!signature) return std::unexpected(signature.error());

  // OCSPResponse { successful, [0] { id-pkix-ocsp-basic, OCTET STRING { BasicOCSPResponse } } }
  const std::size_t bit_string = 1 + signature->size();
  const std::size_t basic_content =
      tbs.size() + signature_algorithm_der_.size() + TlvSize(bit_string) + certs_der_.size();
  const std::size_t response_bytes = kOidOcspBasic.size() + TlvSize(TlvSize(basic_content));
  const std::size_t outer = 3 + TlvSize(TlvSize(response_bytes));
  Bytes out;
  out.reserve(TlvSize(outer));
  PutHeader(out, kSequence, outer);
  Put(out, std::array<std::uint8_t, 3>{0x0a, 0x01, 0x00});  // responseStatus successful
  PutHeader(out, 0xa0, TlvSize(response_bytes));
  PutHeader(out, kSequence, response_bytes);
  Put(out, kOidOcspBasic);
  PutHeader(out, kOctetString, TlvSize(basic_content));
  PutHeader(out, kSequence, basic_content);
  Put(out, tbs);
  Put(out, signature_algorithm_der_);
  PutHeader(out, 0x03, bit_string);
  out.push_back(0x00);  // no unused bits
  Put(out, *signature);
  Put(out, certs_der_);
  return out;
}

// ---- SignerSet

Result<SignerSet> SignerSet::FromSigners(std::vector<Signer> signers) {
  if (signers.empty()) return Fail(ErrorCode::kInvalidArgument, "no responder certificate is configured");
  SignerSet set;
  for (Signer& signer : signers) {
    if (const Signer* twin = set.Find(signer.id())) {
      return Fail(ErrorCode::kInvalidArgument, signer.source().string() + " is the same certificate as " +
                                                   twin->source().string());
    }
    set.signers_.push_back(std::make_unique<Signer>(std::move(signer)));
  }
  return set;
}

Result<SignerSet> SignerSet::Load(std::span<const SignerFiles> responders, const X509* issuer, UnixSeconds now) {
  std::vector<Signer> signers;
  for (const SignerFiles& files : responders) {
    auto signer = Signer::Load(files, issuer, now);
    if (!signer) return std::unexpected(signer.error());
    signers.push_back(std::move(*signer));
  }
  auto set = FromSigners(std::move(signers));
  if (!set) return set;
  if (set->Active(now) == nullptr) {
    std::string list;
    for (const auto& signer : set->signers_) {
      list += (list.empty() ? "" : ", ") + signer->source().string() + " (valid from " +
              TimeText(signer->not_before()) + ")";
    }
    return Fail(ErrorCode::kRefused, "no responder certificate is valid now: " + list);
  }
  return set;
}

const Signer* SignerSet::Active(UnixSeconds now) const {
  const Signer* best = nullptr;
  for (const auto& signer : signers_) {
    if (!signer->ValidAt(now)) continue;
    if (best == nullptr || signer->not_before() > best->not_before() ||
        (signer->not_before() == best->not_before() && signer->not_after() > best->not_after())) {
      best = signer.get();
    }
  }
  return best;
}

const Signer* SignerSet::Find(std::uint64_t id) const {
  for (const auto& signer : signers_) {
    if (signer->id() == id) return signer.get();
  }
  return nullptr;
}

}  // namespace ocsp::signer
