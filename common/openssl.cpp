#include "common/openssl.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

namespace ocsp {

std::string DrainOpenSslErrors() {
  std::string out;
  char buffer[256];
  while (unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  return out.empty() ? std::string("no OpenSSL error recorded") : out;
}

Result<Bytes> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot open " + path.string() + ": " + std::strerror(errno));
  // One read of the size the file has now: the archive reads every imported CRL through here (1,900
  // partitions, 378 MB), and a byte at a time through istreambuf_iterator was ~0.4 s of CPU. Whatever is
  // left after it (a file that grew, or one without a size, like a pipe) is read as before.
  Bytes data;
  std::error_code error;
  const auto size = std::filesystem::is_regular_file(path, error) ? std::filesystem::file_size(path, error) : 0;
  if (!error && size > 0) {
    data.resize(size);
    in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(size));
    data.resize(static_cast<std::size_t>(in.gcount()));
  }
  if (!in.eof()) {
    in.clear(in.rdstate() & ~std::ios::failbit);
    data.insert(data.end(), std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (in.bad()) return Fail(ErrorCode::kIo, "cannot read " + path.string());
  return data;
}

Result<Bytes> PemOrDer(ByteView data, const char* label) {
  static constexpr std::string_view kPemStart = "-----BEGIN ";
  const auto* begin = reinterpret_cast<const char*>(data.data());
  std::string_view text(begin, data.size());
  if (text.find(kPemStart) == std::string_view::npos) return Bytes(data.begin(), data.end());

  UniquePtr<BIO> bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return Fail(ErrorCode::kCrypto, DrainOpenSslErrors());
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* der = nullptr;
  long der_length = 0;
  // Skip PEM blocks of other types (a bundle may hold a key and a certificate).
  while (PEM_read_bio(bio.get(), &name, &header, &der, &der_length) == 1) {
    const bool match = std::strcmp(name, label) == 0;
    Bytes out;
    if (match) out.assign(der, der + der_length);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    if (match) return out;
  }
  ERR_clear_error();
  return Fail(ErrorCode::kInvalidArgument, std::string("no PEM block of type ") + label);
}

Result<UniquePtr<X509>> ParseCertificate(ByteView pem_or_der) {
  auto der = PemOrDer(pem_or_der, "CERTIFICATE");
  if (!der) return std::unexpected(der.error());
  const unsigned char* cursor = der->data();
  UniquePtr<X509> cert(d2i_X509(nullptr, &cursor, static_cast<long>(der->size())));
  if (!cert) return Fail(ErrorCode::kInvalidArgument, "not a certificate: " + DrainOpenSslErrors());
  return cert;
}

Result<UniquePtr<X509>> LoadCertificate(const std::filesystem::path& path) {
  auto data = ReadFile(path);
  if (!data) return std::unexpected(data.error());
  auto cert = ParseCertificate(*data);
  if (!cert) return Fail(cert.error().code, path.string() + ": " + cert.error().message);
  return cert;
}

namespace {
template <typename T, typename Encoder>
Bytes EncodeDer(const T* object, Encoder encode) {
  const int length = encode(object, nullptr);
  if (length <= 0) return {};
  Bytes out(static_cast<std::size_t>(length));
  unsigned char* cursor = out.data();
  encode(object, &cursor);
  return out;
}
}  // namespace

std::string NameText(const X509_NAME* name) {
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "(undecodable name)";
  char* text = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &text);
  return std::string(text, static_cast<std::size_t>(length));
}

std::string NameText(ByteView name_der) {
  const unsigned char* cursor = name_der.data();
  UniquePtr<X509_NAME> name(d2i_X509_NAME(nullptr, &cursor, static_cast<long>(name_der.size())));
  if (!name) {
    ERR_clear_error();
    return "(undecodable name)";
  }
  return NameText(name.get());
}

Bytes CertificateDer(const X509* cert) { return EncodeDer(cert, i2d_X509); }
Bytes NameDer(const X509_NAME* name) { return EncodeDer(name, i2d_X509_NAME); }

Result<UnixSeconds> ToUnixSeconds(const ASN1_TIME* time) {
  if (time == nullptr) return Fail(ErrorCode::kInvalidArgument, "missing time");
  struct tm parts {};
  if (ASN1_TIME_to_tm(time, &parts) != 1) {
    return Fail(ErrorCode::kInvalidArgument, "malformed time: " + DrainOpenSslErrors());
  }
  return static_cast<UnixSeconds>(timegm(&parts));
}

UniquePtr<ASN1_GENERALIZEDTIME> ToGeneralizedTime(UnixSeconds seconds) {
  // OCSP times are GeneralizedTime (RFC 6960 4.2.2.1), whatever the year.
  return UniquePtr<ASN1_GENERALIZEDTIME>(ASN1_GENERALIZEDTIME_set(nullptr, static_cast<time_t>(seconds)));
}

Result<Bytes> IntegerMagnitude(const ASN1_INTEGER* integer) {
  if (integer == nullptr) return Fail(ErrorCode::kInvalidArgument, "missing integer");
  if (integer->type == V_ASN1_NEG_INTEGER) {
    return Fail(ErrorCode::kInvalidArgument, "negative integer where a positive one is required");
  }
  const std::uint8_t* begin = integer->data;
  const std::uint8_t* end = integer->data + integer->length;
  while (begin != end && *begin == 0) ++begin;
  if (begin == end) return Bytes{0};
  return Bytes(begin, end);
}

UniquePtr<ASN1_INTEGER> IntegerFromMagnitude(ByteView magnitude) {
  UniquePtr<BIGNUM> value(BN_bin2bn(magnitude.data(), static_cast<int>(magnitude.size()), nullptr));
  if (!value) return nullptr;
  return UniquePtr<ASN1_INTEGER>(BN_to_ASN1_INTEGER(value.get(), nullptr));
}

Result<Bytes> PublicKeyHash(const X509* cert, const EVP_MD* md) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_pubkey_digest(cert, md, digest, &length) != 1) {
    return Fail(ErrorCode::kCrypto, "hashing the public key: " + DrainOpenSslErrors());
  }
  return Bytes(digest, digest + length);
}

Result<Bytes> NameHash(const X509_NAME* name, const EVP_MD* md) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_NAME_digest(name, md, digest, &length) != 1) {
    return Fail(ErrorCode::kCrypto, "hashing the name: " + DrainOpenSslErrors());
  }
  return Bytes(digest, digest + length);
}

}  // namespace ocsp
