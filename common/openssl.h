// RAII ownership of OpenSSL handles and the few OpenSSL helpers every module needs.
//
// UniquePtr<T> owns one OpenSSL object and frees it with its type's own free function (BoringSSL's pattern).
// Thread safety: the helpers are reentrant; an owned object follows OpenSSL's own rules (read-only use of a
// certificate or key from several threads is safe; mutation is not).
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"

namespace ocsp {

template <typename T>
struct OpenSslDeleter;

#define OCSP_DEFINE_OPENSSL_DELETER(Type, FreeFunction) \
  template <>                                           \
  struct OpenSslDeleter<Type> {                         \
    void operator()(Type* p) const noexcept { FreeFunction(p); } \
  };

OCSP_DEFINE_OPENSSL_DELETER(X509, X509_free)
OCSP_DEFINE_OPENSSL_DELETER(X509_CRL, X509_CRL_free)
OCSP_DEFINE_OPENSSL_DELETER(X509_NAME, X509_NAME_free)
OCSP_DEFINE_OPENSSL_DELETER(X509_EXTENSION, X509_EXTENSION_free)
OCSP_DEFINE_OPENSSL_DELETER(EVP_PKEY, EVP_PKEY_free)
OCSP_DEFINE_OPENSSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
OCSP_DEFINE_OPENSSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free)
OCSP_DEFINE_OPENSSL_DELETER(EVP_MD, EVP_MD_free)  // fetched digests (EVP_MD_fetch)
OCSP_DEFINE_OPENSSL_DELETER(BIO, BIO_free_all)
OCSP_DEFINE_OPENSSL_DELETER(BIGNUM, BN_free)
// ASN1_INTEGER, ASN1_TIME, ASN1_OCTET_STRING, ASN1_ENUMERATED, ASN1_GENERALIZEDTIME are all ASN1_STRING.
OCSP_DEFINE_OPENSSL_DELETER(ASN1_STRING, ASN1_STRING_free)
OCSP_DEFINE_OPENSSL_DELETER(AUTHORITY_KEYID, AUTHORITY_KEYID_free)
OCSP_DEFINE_OPENSSL_DELETER(EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free)
OCSP_DEFINE_OPENSSL_DELETER(X509_ALGOR, X509_ALGOR_free)
OCSP_DEFINE_OPENSSL_DELETER(RSA_PSS_PARAMS, RSA_PSS_PARAMS_free)
OCSP_DEFINE_OPENSSL_DELETER(OCSP_REQUEST, OCSP_REQUEST_free)
OCSP_DEFINE_OPENSSL_DELETER(OCSP_RESPONSE, OCSP_RESPONSE_free)
OCSP_DEFINE_OPENSSL_DELETER(OCSP_BASICRESP, OCSP_BASICRESP_free)
OCSP_DEFINE_OPENSSL_DELETER(OCSP_CERTID, OCSP_CERTID_free)
OCSP_DEFINE_OPENSSL_DELETER(STACK_OF(X509), sk_X509_free)
OCSP_DEFINE_OPENSSL_DELETER(X509_STORE, X509_STORE_free)

#undef OCSP_DEFINE_OPENSSL_DELETER

template <typename T>
using UniquePtr = std::unique_ptr<T, OpenSslDeleter<T>>;

// The OpenSSL error queue drained into one line ("error:...:bad signature; ..."). Empties the queue.
std::string DrainOpenSslErrors();

// Reads a whole file. Errors name the path.
Result<Bytes> ReadFile(const std::filesystem::path& path);

// Decodes the first PEM block of `label` ("CERTIFICATE", "X509 CRL", ...) or, if the data is not PEM,
// returns it unchanged as DER.
Result<Bytes> PemOrDer(ByteView data, const char* label);

Result<UniquePtr<X509>> ParseCertificate(ByteView pem_or_der);
Result<UniquePtr<X509>> LoadCertificate(const std::filesystem::path& path);

// A name in RFC 2253 form ("OU=Demo CA,O=JPKI,C=JP"), for messages; "(undecodable name)" if it is not one.
std::string NameText(const X509_NAME* name);
std::string NameText(ByteView name_der);

// DER encoding of an X.509 object (certificate, name, ...).
Bytes CertificateDer(const X509* cert);
Bytes NameDer(const X509_NAME* name);

// ASN.1 times (UTCTime or GeneralizedTime) to and from Unix seconds.
Result<UnixSeconds> ToUnixSeconds(const ASN1_TIME* time);
UniquePtr<ASN1_GENERALIZEDTIME> ToGeneralizedTime(UnixSeconds seconds);

// Unsigned big-endian magnitude of a non-negative INTEGER, minimal (no leading zero bytes; zero is {0}).
// Negative values are refused: RFC 5280 serials and CRL numbers are positive.
Result<Bytes> IntegerMagnitude(const ASN1_INTEGER* integer);
UniquePtr<ASN1_INTEGER> IntegerFromMagnitude(ByteView magnitude);

// Hash of the subjectPublicKey BIT STRING contents: CertID's issuerKeyHash, and (with SHA-1) the usual key id.
Result<Bytes> PublicKeyHash(const X509* cert, const EVP_MD* md);
Result<Bytes> NameHash(const X509_NAME* name, const EVP_MD* md);

}  // namespace ocsp
