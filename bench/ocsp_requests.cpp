// ocsp-requests: writes the OCSP requests the responder benchmark sends (bench/responder.sh), one per serial,
// in the two forms wrk's Lua script reads: the GET path (base64, '/', '+' and '=' percent-encoded, RFC 6960
// A.1) and the POST body (DER, as hex, since Lua has no base64).
//
//   ocsp-requests CA.pem FIRST_SERIAL COUNT OUT_DIR
// writes OUT_DIR/get.txt, OUT_DIR/post.txt and OUT_DIR/serials.txt (hex, one per line): serials FIRST_SERIAL,
// FIRST_SERIAL + 1, ... as SHA-1 CertIDs without a nonce (the RFC 9919 profile; what caches and presigned
// responders serve). Exit status: 0 written; 1 failed; 2 bad usage.
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/openssl.h"

namespace {

std::string PercentEncodedBase64(const std::vector<unsigned char>& der) {
  std::string base64(4 * ((der.size() + 2) / 3) + 1, '\0');
  base64.resize(static_cast<std::size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(base64.data()), der.data(),
                                                         static_cast<int>(der.size()))));
  std::string out;
  for (const char c : base64) out += c == '/' ? "%2F" : c == '+' ? "%2B" : c == '=' ? "%3D" : std::string(1, c);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: ocsp-requests CA.pem FIRST_SERIAL COUNT OUT_DIR\n";
    return 2;
  }
  auto ca = ocsp::LoadCertificate(argv[1]);
  if (!ca) {
    std::cerr << "ocsp-requests: " << ca.error().message << "\n";
    return 1;
  }
  const unsigned long long first = std::strtoull(argv[2], nullptr, 0);
  const unsigned long long count = std::strtoull(argv[3], nullptr, 0);
  const std::string dir = argv[4];
  std::ofstream get(dir + "/get.txt");
  std::ofstream post(dir + "/post.txt");
  std::ofstream serials(dir + "/serials.txt");
  for (unsigned long long i = 0; i < count; ++i) {
    ocsp::UniquePtr<ASN1_INTEGER> serial(ASN1_INTEGER_new());
    ASN1_INTEGER_set_uint64(serial.get(), first + i);
    OCSP_CERTID* id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(ca->get()),
                                       X509_get0_pubkey_bitstr(ca->get()), serial.get());
    ocsp::UniquePtr<OCSP_REQUEST> request(OCSP_REQUEST_new());
    if (id == nullptr || !request || OCSP_request_add0_id(request.get(), id) == nullptr) {
      std::cerr << "ocsp-requests: cannot build a request\n";
      return 1;
    }
    unsigned char* der = nullptr;
    const int length = i2d_OCSP_REQUEST(request.get(), &der);
    if (length <= 0) return 1;
    const std::vector<unsigned char> bytes(der, der + length);
    OPENSSL_free(der);
    get << PercentEncodedBase64(bytes) << "\n";
    static const char* kHex = "0123456789abcdef";
    std::string hex;
    for (const unsigned char b : bytes) {
      hex += kHex[b >> 4];
      hex += kHex[b & 15];
    }
    post << hex << "\n";
    char text[32];
    std::snprintf(text, sizeof text, "%llx", first + i);
    serials << text << "\n";
  }
  if (!get || !post || !serials) {
    std::cerr << "ocsp-requests: cannot write to " << dir << "\n";
    return 1;
  }
  return 0;
}
